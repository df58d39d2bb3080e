//! `poortwachter owner ...`: add, list, show, disable, enable, and the HR CSV import.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use poortwachter::model::{parse_date, NewOwner, Owner, Role};
use poortwachter::registry::{ImportColumns, ImportRow, RegistryError};
use poortwachter::text::escape;

use super::table::{self, or_dash};
use super::Context;

#[derive(Debug, Subcommand)]
pub enum OwnerCommand {
    /// Register a person. Temps, interns and contractors need --until.
    Add {
        /// Directory username (unique regardless of case).
        username: String,
        /// Full name.
        #[arg(long)]
        name: String,
        /// staff, temp, intern or contractor.
        #[arg(long)]
        role: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        department: Option<String>,
        /// First day of access, YYYY-MM-DD.
        #[arg(long)]
        from: Option<String>,
        /// Last day of access (end of contract), YYYY-MM-DD.
        #[arg(long)]
        until: Option<String>,
    },
    /// All owners.
    List {
        /// Only this role.
        #[arg(long)]
        role: Option<String>,
    },
    /// One owner with their devices.
    Show { username: String },
    /// Refuse all of this owner's devices from now on.
    Disable { username: String },
    /// Undo `disable`.
    Enable { username: String },
    /// Add or update owners from an HR or directory export (CSV with a header row:
    /// username, name, email, role, department, valid_until; optionally valid_from).
    Import {
        file: PathBuf,
        /// Import the good rows and report the bad ones, instead of importing nothing.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Sync owners from the directory (`[directory]`, LDAP): adds and updates the owners it
    /// has, disables those it no longer has (or has disabled), leaves owners added by hand
    /// alone. Prints the diff.
    Sync(super::directory::SyncArgs),
}

pub async fn run(ctx: &Context, cmd: OwnerCommand) -> Result<()> {
    match cmd {
        OwnerCommand::Add {
            username,
            name,
            role,
            email,
            department,
            from,
            until,
        } => {
            let role: Role = role
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
            let new = NewOwner {
                username,
                display_name: name,
                email,
                role,
                department,
                valid_from: from.map(|d| parse_date("--from", &d)).transpose()?,
                valid_until: until.map(|d| parse_date("--until", &d)).transpose()?,
            };
            let owner = ctx
                .registry
                .add_owner(new, &ctx.change())
                .await
                .map_err(cli_field_names)?;
            if ctx.json {
                return table::print_json(&owner);
            }
            outln!(
                "added {} ({}, {})",
                owner.username,
                escape(&owner.display_name),
                owner.role
            );
            Ok(())
        }
        OwnerCommand::List { role } => {
            let role: Option<Role> = role
                .map(|r| {
                    r.parse()
                        .map_err(|e: String| anyhow::anyhow!("--role: {e}"))
                })
                .transpose()?;
            let owners: Vec<Owner> = ctx
                .registry
                .owners()
                .await?
                .into_iter()
                .filter(|o| role.is_none_or(|r| o.role == r))
                .collect();
            if ctx.json {
                return table::print_json(&owners);
            }
            let mut counts: HashMap<uuid::Uuid, usize> = HashMap::new();
            for d in ctx.registry.devices(None).await? {
                if d.status != poortwachter::model::DeviceStatus::Revoked {
                    *counts.entry(d.owner_id).or_default() += 1;
                }
            }
            let rows = owners
                .iter()
                .map(|o| {
                    vec![
                        o.username.clone(),
                        o.display_name.clone(),
                        o.role.to_string(),
                        or_dash(o.department.as_ref()),
                        or_dash(o.valid_until),
                        state(ctx, o).to_string(),
                        counts.get(&o.id).copied().unwrap_or(0).to_string(),
                    ]
                })
                .collect();
            table::print(
                &[
                    "USERNAME",
                    "NAME",
                    "ROLE",
                    "DEPARTMENT",
                    "UNTIL",
                    "STATE",
                    "DEVICES",
                ],
                rows,
            );
            Ok(())
        }
        OwnerCommand::Show { username } => {
            let owner = ctx
                .registry
                .owner(&username)
                .await?
                .ok_or(RegistryError::UnknownOwner(username))?;
            let devices = ctx.registry.devices(Some(&owner.username)).await?;
            if ctx.json {
                return table::print_json(&serde_json::json!({"owner": owner, "devices": devices}));
            }
            table::print_fields(&[
                ("username", owner.username.clone()),
                ("name", owner.display_name.clone()),
                ("email", or_dash(owner.email.as_ref())),
                ("role", owner.role.to_string()),
                ("department", or_dash(owner.department.as_ref())),
                ("valid from", or_dash(owner.valid_from)),
                ("valid until", or_dash(owner.valid_until)),
                ("state", state(ctx, &owner).to_string()),
                ("registered", super::when::minute(owner.created_at, ctx.tz)),
            ]);
            outln!();
            super::device::print_devices(&devices, ctx.tz);
            Ok(())
        }
        OwnerCommand::Disable { username } => set_disabled(ctx, &username, true).await,
        OwnerCommand::Enable { username } => set_disabled(ctx, &username, false).await,
        OwnerCommand::Import { file, skip_bad } => import(ctx, &file, skip_bad).await,
        OwnerCommand::Sync(_) => unreachable!("cli::run sends it to cli::directory"),
    }
}

fn state(ctx: &Context, o: &Owner) -> &'static str {
    let now = chrono::Utc::now();
    let tz = &ctx.registry.rules().timezone;
    if o.disabled {
        "disabled"
    } else if o.has_expired(now, tz) {
        "expired"
    } else if o.not_yet_valid(now, tz) {
        "not yet valid"
    } else {
        "active"
    }
}

async fn set_disabled(ctx: &Context, username: &str, disabled: bool) -> Result<()> {
    let before = ctx.registry.owner(username).await?;
    let owner = ctx
        .registry
        .set_owner_disabled(username, disabled, &ctx.change())
        .await?;
    if ctx.json {
        return table::print_json(&owner);
    }
    let word = if disabled { "disabled" } else { "enabled" };
    if before.is_some_and(|b| b.disabled == disabled) {
        outln!("{} was already {word}; nothing changed", owner.username);
    } else {
        outln!("{} {word}", owner.username);
    }
    Ok(())
}

/// Field names as the CLI user typed them.
fn cli_field_names(e: RegistryError) -> RegistryError {
    match e {
        RegistryError::Field(mut f) => {
            f.field = match f.field {
                "until" => "--until",
                "name" => "--name",
                "email" => "--email",
                "department" => "--department",
                other => other,
            };
            RegistryError::Field(f)
        }
        other => other,
    }
}

const COLUMNS: &[(&str, &[&str], bool)] = &[
    (
        "username",
        &["username", "user", "uid", "gebruikersnaam"],
        true,
    ),
    (
        "name",
        &["name", "display_name", "displayname", "naam"],
        true,
    ),
    ("email", &["email", "mail", "e-mail"], false),
    ("role", &["role", "rol"], true),
    ("department", &["department", "afdeling"], false),
    ("valid_from", &["valid_from", "start", "from"], false),
    (
        "valid_until",
        &["valid_until", "end", "until", "einddatum"],
        false,
    ),
];

/// Reads the CSV into rows (bad ones carry their reason), then imports in one transaction.
async fn import(ctx: &Context, file: &Path, skip_bad: bool) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (rows, columns) = parse_csv(&text).with_context(|| format!("{}", file.display()))?;
    let total = rows.len() as u64;
    let tty = std::io::stderr().is_terminal();
    let mut last_step = 0;
    let mut progress = move |done: u64, total: u64| {
        if total < 1000 {
            return;
        }
        if tty {
            eprint!("\rimporting {done}/{total} rows");
            if done == total {
                eprintln!();
            }
        } else {
            let step = done * 10 / total.max(1);
            if step > last_step || done == total {
                last_step = step;
                eprintln!("importing: {done}/{total} rows");
            }
        }
    };
    let report = ctx
        .registry
        .import_owners(rows, columns, skip_bad, &ctx.change(), &mut progress)
        .await?;
    if ctx.json {
        return table::print_json(&report);
    }
    outln!(
        "{total} rows: {} added, {} updated, {} unchanged, {} skipped",
        report.added,
        report.updated,
        report.unchanged,
        report.skipped.len()
    );
    for p in &report.skipped {
        outln!("  skipped {p}");
    }
    Ok(())
}

fn parse_csv(text: &str) -> Result<(Vec<ImportRow>, ImportColumns)> {
    let first_line = text.lines().next().unwrap_or_default();
    // Dutch spreadsheet exports use ';'
    let delimiter = if first_line.contains(';') && !first_line.contains(',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .context("cannot read the header row")?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let mut index = HashMap::new();
    for (name, aliases, required) in COLUMNS {
        match headers.iter().position(|h| aliases.contains(&h.as_str())) {
            Some(i) => {
                index.insert(*name, i);
            }
            None if *required => anyhow::bail!(
                "the header row has no `{name}` column (found: {})",
                headers.join(", ")
            ),
            None => {}
        }
    }
    let columns = ImportColumns {
        email: index.contains_key("email"),
        department: index.contains_key("department"),
        valid_from: index.contains_key("valid_from"),
        valid_until: index.contains_key("valid_until"),
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                rows.push(ImportRow {
                    line,
                    owner: Err(format!("not readable as CSV: {e}")),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        let field = |name: &str| -> Option<String> {
            index
                .get(name)
                .and_then(|&i| record.get(i))
                .map(str::to_string)
                .filter(|s| !s.is_empty())
        };
        rows.push(ImportRow {
            line,
            owner: row_owner(&field),
        });
    }
    Ok((rows, columns))
}

fn row_owner(field: &dyn Fn(&str) -> Option<String>) -> Result<NewOwner, String> {
    let role_text = field("role").ok_or("role: empty")?;
    let role: Role = role_text.parse().map_err(|e| format!("role: {e}"))?;
    let date = |name: &'static str| -> Result<Option<chrono::NaiveDate>, String> {
        field(name)
            .map(|d| parse_date(name, &d).map_err(|e| e.to_string()))
            .transpose()
    };
    Ok(NewOwner {
        username: field("username").unwrap_or_default(),
        display_name: field("name").unwrap_or_default(),
        email: field("email"),
        role,
        department: field("department"),
        valid_from: date("valid_from")?,
        valid_until: date("valid_until")?,
    })
}
