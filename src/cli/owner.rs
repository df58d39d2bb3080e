//! `poortwachter owner ...`: add, list, show, edit, disable, enable, delete, and the HR CSV
//! import.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use poortwachter::import::read_owner_csv;
use poortwachter::model::{parse_date, NewOwner, Owner, Role};
use poortwachter::registry::{
    ChangeKind, ImportOptions, ImportReport, OwnerEdit, OwnerQuery, RegistryError,
};
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
    /// Owners, by username; all of them unless filtered.
    List {
        /// Words that must each occur in the username, name or e-mail address.
        #[arg(long)]
        search: Option<String>,
        /// Only this role.
        #[arg(long)]
        role: Option<String>,
        /// Only owners managed by: manual, import, directory or scim.
        #[arg(long)]
        source: Option<String>,
        /// Only disabled owners.
        #[arg(long, conflicts_with = "enabled")]
        disabled: bool,
        /// Only enabled owners.
        #[arg(long)]
        enabled: bool,
    },
    /// One owner with their devices.
    Show { username: String },
    /// Change an owner's details: a contract extension, a new department, a corrected name.
    /// `--email ''` (an empty value) clears an optional field.
    Edit {
        username: String,
        /// Full name.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// staff, temp, intern or contractor.
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        department: Option<String>,
        /// First day of access, YYYY-MM-DD.
        #[arg(long)]
        from: Option<String>,
        /// Last day of access (end of contract), YYYY-MM-DD.
        #[arg(long)]
        until: Option<String>,
        /// What manages the record: `manual` keeps the directory sync and imports away from
        /// it; import, directory or scim hands it to that feed.
        #[arg(long)]
        source: Option<String>,
    },
    /// Refuse all of this owner's devices from now on, and disconnect their sessions.
    Disable {
        username: String,
        /// Why, as the service desk will read it ("uit dienst per 1 december").
        #[arg(long)]
        reason: Option<String>,
    },
    /// Undo `disable`.
    Enable { username: String },
    /// Delete an owner registered by mistake. Refused while they have devices; a leaver is
    /// disabled instead, which keeps their history until it is erased.
    Delete { username: String },
    /// Everything held about this person, as one JSON document (AVG art. 15: the right of
    /// access): owner, devices, certificates, sessions, decisions, posture reports,
    /// Disconnect/CoA records and the audit entries about them.
    Export {
        username: String,
        /// Write it to this file (0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Erase a person who has left, now (AVG art. 17), instead of privacy.erase_after after
    /// leaving: their name, e-mail, username, MACs, sessions and decisions go; the audit log
    /// keeps what happened, not to whom. Cannot be undone.
    Erase {
        username: String,
        /// Confirm: the username again.
        #[arg(long, value_name = "USERNAME")]
        confirm: String,
    },
    /// Add or update owners from an HR export (CSV, `;` or `,`, UTF-8 or Windows-1252, with a
    /// header row: username, name, email, role, department, valid_from, valid_until, or the
    /// Dutch gebruikersnaam, naam, e-mailadres, rol, afdeling, begindatum, einddatum).
    Import {
        file: PathBuf,
        /// Import the good rows and report the bad ones, instead of importing nothing.
        #[arg(long)]
        skip_bad: bool,
        /// The file is everyone (a full export): owners it manages that the file lacks are
        /// disabled. Refused unless --confirm-disable gives at least their number.
        #[arg(long)]
        disable_missing: bool,
        /// How many owners --disable-missing may disable (the count a dry run reported).
        #[arg(long, value_name = "COUNT", requires = "disable_missing")]
        confirm_disable: Option<u64>,
        /// Show what would change, and write nothing.
        #[arg(long)]
        dry_run: bool,
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
        OwnerCommand::List {
            search,
            role,
            source,
            disabled,
            enabled,
        } => {
            let query = OwnerQuery {
                search,
                role: role.map(|r| word("--role", &r)).transpose()?,
                source: source.map(|s| word("--source", &s)).transpose()?,
                disabled: (disabled || enabled).then_some(disabled),
            };
            let owners: Vec<Owner> = ctx.registry.find_owners(&query).await?;
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
                (
                    "disabled",
                    match (&owner.disabled_at, &owner.disabled_reason) {
                        (Some(at), reason) => format!(
                            "{} ({}{})",
                            super::when::minute(*at, ctx.tz),
                            owner
                                .disabled_by_source
                                .map(|s| format!("by the {s} feed: "))
                                .unwrap_or_default(),
                            reason
                                .as_deref()
                                .map(escape)
                                .unwrap_or("no reason given".into())
                        ),
                        (None, _) => "-".into(),
                    },
                ),
                ("managed by", owner.source.to_string()),
                ("registered", super::when::minute(owner.created_at, ctx.tz)),
            ]);
            outln!();
            super::device::print_devices(&devices, ctx.tz);
            Ok(())
        }
        OwnerCommand::Edit {
            username,
            name,
            email,
            role,
            department,
            from,
            until,
            source,
        } => {
            let edit = OwnerEdit {
                display_name: name,
                email: email.map(optional),
                role: role.map(|r| word("--role", &r)).transpose()?,
                department: department.map(optional),
                valid_from: from.map(|d| optional_date("--from", d)).transpose()?,
                valid_until: until.map(|d| optional_date("--until", d)).transpose()?,
                source: source.map(|s| word("--source", &s)).transpose()?,
                external_id: None,
            };
            if edit == OwnerEdit::default() {
                anyhow::bail!(
                    "nothing to change: give --name, --email, --role, --department, --from, \
                     --until or --source"
                );
            }
            let before = ctx.registry.owner(&username).await?;
            let owner = ctx
                .registry
                .edit_owner(&username, edit, &ctx.change())
                .await
                .map_err(cli_field_names)?;
            if ctx.json {
                return table::print_json(&owner);
            }
            if before.as_ref() == Some(&owner) {
                outln!(
                    "{} already had these details; nothing changed",
                    owner.username
                );
            } else {
                outln!("{} changed", owner.username);
            }
            Ok(())
        }
        OwnerCommand::Disable { username, reason } => {
            set_disabled(ctx, &username, true, reason).await
        }
        OwnerCommand::Enable { username } => set_disabled(ctx, &username, false, None).await,
        OwnerCommand::Export { username, out } => {
            let export = ctx
                .registry
                .export_owner(&username, ctx.change().now)
                .await?;
            let text = serde_json::to_string_pretty(&export)?;
            match out {
                None => {
                    outln!("{text}");
                }
                Some(path) => {
                    write_private(&path, text.as_bytes())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!(
                        "wrote everything held about {} to {} ({} devices, {} sessions, {} \
                         decisions, {} audit entries)",
                        export.owner.username,
                        path.display(),
                        export.devices.len(),
                        export.sessions.len(),
                        export.decisions.len(),
                        export.audit.len()
                    );
                }
            }
            Ok(())
        }
        OwnerCommand::Erase { username, confirm } => {
            if !confirm.eq_ignore_ascii_case(&username) {
                anyhow::bail!("--confirm: give the username again ({username}) to erase");
            }
            let owner = ctx.registry.erase_owner(&username, &ctx.change()).await?;
            if ctx.json {
                return table::print_json(&owner);
            }
            outln!(
                "{username} erased: now {} (its sessions, decisions and MACs deleted; the audit \
                 log keeps what happened, not to whom)",
                owner.username
            );
            Ok(())
        }
        OwnerCommand::Delete { username } => {
            let owner = ctx.registry.delete_owner(&username, &ctx.change()).await?;
            if ctx.json {
                return table::print_json(&owner);
            }
            outln!(
                "deleted {} ({}); the audit log keeps the record",
                owner.username,
                escape(&owner.display_name)
            );
            Ok(())
        }
        OwnerCommand::Import {
            file,
            skip_bad,
            disable_missing,
            confirm_disable,
            dry_run,
        } => {
            import(
                ctx,
                &file,
                Feed {
                    skip_bad,
                    disable_missing,
                    confirm_disable,
                    dry_run,
                },
            )
            .await
        }
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

async fn set_disabled(
    ctx: &Context,
    username: &str,
    disabled: bool,
    reason: Option<String>,
) -> Result<()> {
    let before = ctx.registry.owner(username).await?;
    let owner = ctx
        .registry
        .set_owner_disabled(username, disabled, reason, &ctx.change())
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

/// A closed word (`--role intern`), its error naming the option.
fn word<T: std::str::FromStr<Err = String>>(option: &str, text: &str) -> Result<T> {
    text.parse()
        .map_err(|e: String| anyhow::anyhow!("{option}: {e}"))
}

/// An optional text option: empty clears it.
fn optional(text: String) -> Option<String> {
    Some(text).filter(|t| !t.trim().is_empty())
}

/// An optional date option: empty clears it.
fn optional_date(option: &'static str, text: String) -> Result<Option<chrono::NaiveDate>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(parse_date(option, &text)?))
}

/// How `owner import` applies the file.
struct Feed {
    skip_bad: bool,
    disable_missing: bool,
    confirm_disable: Option<u64>,
    dry_run: bool,
}

/// Reads the CSV into rows (bad ones carry their reason), then imports in one transaction.
async fn import(ctx: &Context, file: &Path, feed: Feed) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let csv = read_owner_csv(&bytes).with_context(|| format!("{}", file.display()))?;
    for warning in &csv.warnings {
        eprintln!("warning: {}: {warning}", file.display());
    }
    let total = csv.rows.len() as u64;
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
    let mut options = ImportOptions::import(csv.columns, feed.skip_bad);
    options.disable_missing = feed.disable_missing;
    options.missing_reason = "niet meer in de HR-export / no longer in the HR export".to_string();
    // a dry run shows everything it would disable; a real one needs the count confirmed
    options.max_disable = (!feed.dry_run).then(|| feed.confirm_disable.unwrap_or(0));
    options.dry_run = feed.dry_run;
    let result = ctx
        .registry
        .import_owners(csv.rows.clone(), &options, &ctx.change(), &mut progress)
        .await;
    let report = match result {
        Err(RegistryError::TooManyMissing { missing, .. }) if !feed.dry_run => {
            // name them: what a confirmation would disable
            let preview = ImportOptions {
                max_disable: None,
                dry_run: true,
                ..options.clone()
            };
            let report = ctx
                .registry
                .import_owners(csv.rows, &preview, &ctx.change(), &mut |_, _| {})
                .await?;
            for c in report
                .changes
                .iter()
                .filter(|c| c.kind == ChangeKind::Disabled)
            {
                eprintln!("  would disable {}", c.username);
            }
            anyhow::bail!(
                "{missing} owner(s) managed by the import are not in {} and would be disabled; \
                 nothing changed. If the file is complete, run again with \
                 --disable-missing --confirm-disable {missing}",
                file.display()
            );
        }
        other => other?,
    };
    if ctx.json {
        return table::print_json(&report);
    }
    print_report(total, &report);
    Ok(())
}

/// An import's or sync's report: the counts, and every change on a dry run.
pub fn print_report(total: u64, report: &ImportReport) {
    if report.dry_run {
        outln!("dry run: nothing was written");
        for c in &report.changes {
            let what = match c.kind {
                ChangeKind::Added => "add".to_string(),
                ChangeKind::Updated => format!("update ({})", c.fields.join(", ")),
                ChangeKind::Enabled => "enable again".to_string(),
                ChangeKind::Disabled => "disable".to_string(),
                ChangeKind::LeftAlone => format!(
                    "leave alone (managed by {})",
                    c.managed_by.map(|s| s.to_string()).unwrap_or_default()
                ),
            };
            outln!("  {what:<24} {}", c.username);
        }
    }
    outln!(
        "{total} rows: {} added, {} updated, {} unchanged, {} disabled, {} enabled again, \
         {} left alone, {} skipped",
        report.added,
        report.updated,
        report.unchanged,
        report.disabled,
        report.enabled,
        report.left_alone,
        report.skipped.len()
    );
    if report.left_alone > 0 && !report.dry_run {
        outln!(
            "  left alone: owners added by hand or managed by another feed (owner edit \
             --source to hand one over)"
        );
    }
    for p in &report.skipped {
        outln!("  skipped {p}");
    }
}

/// Writes a file only its owner can read: an export holds personal data.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}
