//! The ICT command line: subcommands, config and registry setup, and who the actor is.

/// `println!` for a command's output. A reader that went away (`device list | head`) ends the
/// command quietly, as for any Unix tool, where `println!` would panic. SIGPIPE stays ignored
/// (Rust's default), so a database connection closed in the middle of a command is an error
/// with its message, never a silent death by signal.
macro_rules! outln {
    () => {
        $crate::cli::emit(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::emit(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod backup;
mod ca;
mod check;
mod device;
mod directory;
mod owner;
mod radius;
mod table;
mod token;
mod user;
mod when;

use anyhow::Result;
use clap::Subcommand;
use poortwachter::config::{redact_url, Config};
use poortwachter::registry::{AuditFilter, Change, Registry, Rules};

use crate::Args;

/// Writes a command's output to stdout; a closed pipe ends the process quietly (status 0), any
/// other write error with its message (status 1).
pub(crate) fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Everything `poortwachter` can be asked to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config file and exit (non-zero with the problems).
    CheckConfig,
    /// Apply database migrations. Only this and `serve` (database.migrate_on_start) migrate;
    /// every other command refuses a registry older than the binary.
    Migrate,
    /// Back up the registry: an SQLite registry is copied while in use; for PostgreSQL, says
    /// which pg_dump command to run.
    Backup {
        /// The new file to write (an existing file is refused).
        #[arg(long, value_name = "FILE")]
        to: std::path::PathBuf,
    },
    /// People who own devices: employees, temps, interns, contractors.
    #[command(subcommand)]
    Owner(owner::OwnerCommand),
    /// Registered devices.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// The onboarding CA: create it (with the RADIUS server's certificate), export its CRL.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Bearer tokens of the admin HTTP API (`[api]`).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Local accounts of the web console (admin, helpdesk), for when the directory is down.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Run the RADIUS service (authentication and accounting) until SIGTERM or SIGINT.
    Serve,
    /// Why a device was accepted or refused: its latest decisions, in plain words.
    Why {
        /// A MAC address (any spelling) or a username.
        who: String,
        /// How many, newest first.
        #[arg(long, default_value_t = 10)]
        limit: u32,
    },
    /// Accounting sessions reported by the access points.
    Sessions {
        /// Only sessions that have not stopped.
        #[arg(long)]
        active: bool,
        /// Only this device MAC.
        #[arg(long)]
        mac: Option<String>,
        /// How many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One accounting session: disconnect it (RFC 5176).
    #[command(subcommand)]
    Session(radius::SessionCommand),
    /// The audit log: every registry change, who made it, before and after.
    Audit {
        /// Only changes to this owner (username) or device (id).
        #[arg(long)]
        target: Option<String>,
        /// Only changes by this actor.
        #[arg(long = "by", value_name = "ACTOR")]
        by: Option<String>,
        /// How many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Check instead that the log was only ever appended to: every entry's link in the
        /// hash chain, up to the newest. Exits 1 if it does not verify.
        #[arg(long, conflicts_with_all = ["target", "by"])]
        verify: bool,
    },
    /// The AVG: what is kept how long, and erasing who left (see also owner export/erase).
    #[command(subcommand)]
    Privacy(PrivacyCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum PrivacyCommand {
    /// Delete what is past its retention and erase the owners who left longer than
    /// privacy.erase_after ago, now (`serve` does it hourly).
    Sweep,
    /// The owners who left longer than privacy.erase_after ago and are not erased yet.
    Due,
}

/// What a command runs with.
pub struct Context {
    pub registry: Registry,
    pub json: bool,
    actor: String,
    /// `policy.timezone`: human output shows times in it, with the zone ([`when`]).
    pub tz: chrono_tz::Tz,
}

impl Context {
    /// A change by the current actor, now.
    pub fn change(&self) -> Change {
        Change::by(self.actor.clone())
    }
}

/// Runs one command.
pub async fn run(args: Args) -> Result<()> {
    let config = Config::load(&args.config)?;
    init_logging(&config.log);
    if let Command::CheckConfig = args.command {
        return check_config(&config, args.json).await;
    }
    // the CA is made before there is anything to record: no registry needed
    if let Command::Ca(cmd) = &args.command {
        if let Some(done) = ca::without_registry(&config, cmd, args.json) {
            return done;
        }
    }
    // serve starts from its snapshot when the database does not answer
    if let Command::Serve = args.command {
        // in the log, in its format (a JSON log stays JSON on every line)
        tracing::info!(
            config = %args.config.display(),
            registry = %redact_url(&config.database.url),
            "poortwachter serve"
        );
        return radius::serve_command(&config, &args.config, rules(&config)).await;
    }
    if let Command::Backup { to } = &args.command {
        backup::refuse_postgres(&config, to)?;
    }
    let registry = Registry::connect(
        &config.database.url,
        config.database.max_connections,
        rules(&config),
    )
    .await
    .map_err(|e| {
        let url = redact_url(&config.database.url);
        if e.is_unavailable() {
            anyhow::anyhow!("the registry database is UNREACHABLE ({url}): {e}\n(a running `serve` keeps answering RADIUS from its last-known-good data meanwhile; see `GET /api/v1/ready`)")
        } else {
            anyhow::anyhow!("cannot open the registry ({url}): {e}")
        }
    })?;
    eprintln!("{}", working_on(&args.config, &config));
    if let Command::Migrate = args.command {
        registry.migrate().await?;
    }
    if let Some(warning) = registry.check_schema().await?.warning() {
        eprintln!("warning: {warning}");
    }
    let ctx = Context {
        registry,
        json: args.json,
        actor: actor(args.actor)?,
        tz: config.policy.timezone,
    };
    match args.command {
        Command::CheckConfig => Ok(()),
        Command::Migrate => {
            outln!(
                "registry is up to date ({})",
                redact_url(&config.database.url)
            );
            Ok(())
        }
        Command::Serve => unreachable!("handled above"),
        Command::Backup { to } => backup::copy(&ctx, &config, &to).await,
        Command::Why { who, limit } => {
            radius::why(&config, &ctx.registry, &who, limit, ctx.json).await
        }
        Command::Sessions { active, mac, limit } => {
            radius::sessions(&config, &ctx.registry, active, mac, limit, ctx.json).await
        }
        Command::Session(cmd) => {
            let actor = ctx.change().actor;
            radius::session(&config, &ctx.registry, &actor, cmd, ctx.json).await
        }
        // it reads `[directory]`
        Command::Owner(owner::OwnerCommand::Sync(args)) => {
            directory::run(&ctx, &config, args).await
        }
        Command::Owner(cmd) => owner::run(&ctx, cmd).await,
        Command::Device(cmd) => device::run(&ctx, &config, cmd).await,
        Command::Ca(cmd) => ca::run(&ctx, &config, cmd).await,
        Command::Token(cmd) => token::run(&ctx, cmd).await,
        Command::User(cmd) => user::run(&ctx, cmd).await,
        Command::Audit { verify: true, .. } => {
            let v = ctx.registry.verify_audit().await?;
            if ctx.json {
                table::print_json(&v)?;
            } else if v.ok() {
                outln!(
                    "audit log verifies: {} entries linked, up to the newest{}",
                    v.verified,
                    if v.unchained > 0 {
                        format!(" ({} older entries from before the chain)", v.unchained)
                    } else {
                        String::new()
                    }
                );
            }
            match v.broken_at {
                Some(id) => anyhow::bail!(
                    "the audit log does NOT verify: entry {id} is not the one that was \
                     appended (changed, or an entry before it removed)"
                ),
                None if !v.head_matches => {
                    anyhow::bail!("the audit log does NOT verify: its newest entries are missing")
                }
                None => Ok(()),
            }
        }
        Command::Privacy(PrivacyCommand::Sweep) => {
            let sweep = ctx
                .registry
                .privacy_sweep(&config.privacy.retention(), &ctx.change())
                .await?;
            if ctx.json {
                return table::print_json(&sweep);
            }
            outln!(
                "{} session(s) past privacy.session_retention deleted; {} owner(s) erased; \
                 {} personal part(s) of old audit entries about nobody registered deleted",
                sweep.sessions,
                sweep.erased.len(),
                sweep.orphan_audit
            );
            Ok(())
        }
        Command::Privacy(PrivacyCommand::Due) => {
            let due = ctx
                .registry
                .erasure_due(config.privacy.erase_after.chrono(), ctx.change().now)
                .await?;
            if ctx.json {
                let rows: Vec<_> = due
                    .iter()
                    .map(|(o, left)| serde_json::json!({"username": o.username, "left_at": left}))
                    .collect();
                return table::print_json(&rows);
            }
            table::print(
                &["USERNAME", "LEFT"],
                due.iter()
                    .map(|(o, left)| vec![o.username.clone(), when::minute(*left, ctx.tz)])
                    .collect(),
            );
            Ok(())
        }
        Command::Audit {
            target, by, limit, ..
        } => {
            let entries = ctx
                .registry
                .audit(&AuditFilter {
                    target_id: target,
                    actor: by,
                    limit: Some(limit),
                    offset: 0,
                })
                .await?;
            if ctx.json {
                return table::print_json(&entries);
            }
            table::print_audit(&entries, true, ctx.tz);
            Ok(())
        }
    }
}

fn rules(config: &Config) -> Rules {
    Rules {
        max_devices_per_owner: config.policy.max_devices_per_owner,
        timezone: config.policy.timezone,
    }
}

async fn check_config(config: &Config, json: bool) -> Result<()> {
    let certificates = ca::CertificateReport::new(config, chrono::Utc::now());
    let findings = check::production(config).await;
    let errors = findings
        .iter()
        .filter(|f| f.level == check::Level::Error)
        .count();
    if json {
        let clients: Vec<_> = config
            .radius
            .clients
            .iter()
            .map(|c| serde_json::json!({"name": c.name, "network": c.network.to_string()}))
            .collect();
        table::print_json(&serde_json::json!({
            "ok": errors == 0 && certificates.is_ok(),
            "database": redact_url(&config.database.url),
            "auth_listen": config.radius.auth_listen.to_string(),
            "acct_listen": config.radius.acct_listen.to_string(),
            "clients": clients,
            "certificates": certificates.json(),
            "checks": findings,
        }))?;
        anyhow::ensure!(errors == 0, "check-config: {errors} problem(s)");
        return certificates.result();
    }
    outln!("config OK");
    outln!("  database     {}", redact_url(&config.database.url));
    outln!(
        "  radius       auth {}  acct {}  Message-Authenticator {}",
        config.radius.auth_listen,
        config.radius.acct_listen,
        if config.radius.require_message_authenticator {
            "required"
        } else {
            "NOT required"
        }
    );
    for c in &config.radius.clients {
        outln!("  client       {} {}", c.name, c.network);
    }
    outln!(
        "  vlans        workspace {}  guest {}  quarantine {}",
        config.vlans.workspace,
        config.vlans.guest,
        config.vlans.quarantine
    );
    outln!(
        "  policy       at most {} devices per owner; contract dates in {}",
        config.policy.max_devices_per_owner,
        config.policy.timezone
    );
    outln!(
        "  decisions    compliance older than {} is stale; not compliant -> {}; unknown device -> {}; SSIDs {}",
        config.policy.compliance_max_age,
        format!("{:?}", config.policy.not_compliant).to_lowercase(),
        format!("{:?}", config.policy.unknown_device).to_lowercase(),
        if config.policy.ssids.is_empty() {
            "any".to_string()
        } else {
            config.policy.ssids.join(", ")
        }
    );
    outln!(
        "  mab          {}; registry cache {}",
        if config.radius.mab { "on" } else { "off" },
        if config.cache.enabled { "on" } else { "off" }
    );
    certificates.print();
    for f in &findings {
        let level = match f.level {
            check::Level::Ok => "",
            check::Level::Warning => "WARNING: ",
            check::Level::Error => "ERROR: ",
        };
        outln!("  {:<12} {level}{}", f.area, f.message);
    }
    anyhow::ensure!(
        errors == 0,
        "check-config: {errors} problem(s) above must be solved before `serve`"
    );
    certificates.result()
}

/// The one line on stderr that says what a command works on.
fn working_on(path: &std::path::Path, config: &Config) -> String {
    format!(
        "poortwachter: config {}, registry {}",
        path.display(),
        redact_url(&config.database.url)
    )
}

/// Who makes the change, for the audit log.
fn actor(explicit: Option<String>) -> Result<String> {
    let sudo_user = std::env::var("SUDO_USER").ok();
    actor_of(
        explicit.as_deref(),
        os_user().as_deref(),
        sudo_user.as_deref(),
    )
    .map_err(|m| anyhow::anyhow!("--actor: {m}"))
}

/// The person behind the command: the user who ran `sudo` (SUDO_USER, when the OS user is
/// root), else the OS user. A declared `--actor` that is someone else keeps the OS user
/// next to it: `alice (os: root via sudo bob)`, `alice (os: bob)`. `audit --by alice` finds
/// both.
fn actor_of(
    explicit: Option<&str>,
    os_user: Option<&str>,
    sudo_user: Option<&str>,
) -> Result<String, &'static str> {
    let os = os_user.unwrap_or("unknown");
    let sudo = sudo_user
        .map(str::trim)
        .filter(|s| os == "root" && !s.is_empty() && *s != "root");
    let person = sudo.unwrap_or(os);
    let Some(declared) = explicit else {
        return Ok(person.to_string());
    };
    let declared = declared.trim();
    if declared.is_empty() {
        return Err("must not be empty");
    }
    if declared.contains(" (os: ") {
        return Err("must not contain \" (os: \"");
    }
    if declared == person {
        return Ok(declared.to_string());
    }
    Ok(match sudo {
        Some(s) => format!("{declared} (os: root via sudo {s})"),
        None => format!("{declared} (os: {os})"),
    })
}

fn os_user() -> Option<String> {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var) {
            if !u.trim().is_empty() {
                return Some(u);
            }
        }
    }
    // no login variables (a service, cron): look the real uid up in /etc/passwd
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == uid)
        .map(|f| f[0].to_string())
        .or(Some(format!("uid {uid}")))
}

fn init_logging(log: &poortwachter::config::LogConfig) {
    use std::io::IsTerminal;
    // colours only on a terminal: journald and log files get plain text
    poortwachter::logging::init(log.format, &log.level, std::io::stderr().is_terminal());
}

#[cfg(test)]
mod tests {
    use super::actor_of;

    #[test]
    fn the_actor_is_the_person_behind_the_command() {
        assert_eq!(actor_of(None, Some("bob"), None).unwrap(), "bob");
        // under sudo: the user who ran sudo
        assert_eq!(actor_of(None, Some("root"), Some("bob")).unwrap(), "bob");
        // SUDO_USER means nothing unless the OS user is root
        assert_eq!(actor_of(None, Some("carol"), Some("bob")).unwrap(), "carol");
        assert_eq!(actor_of(None, Some("root"), Some("")).unwrap(), "root");
        // a declared actor keeps the OS user next to it
        assert_eq!(
            actor_of(Some("alice"), Some("root"), Some("bob")).unwrap(),
            "alice (os: root via sudo bob)"
        );
        assert_eq!(
            actor_of(Some("alice"), Some("root"), None).unwrap(),
            "alice (os: root)"
        );
        assert_eq!(
            actor_of(Some(" bob "), Some("root"), Some("bob")).unwrap(),
            "bob"
        );
        assert!(actor_of(Some("  "), Some("bob"), None).is_err());
        assert!(actor_of(Some("x (os: y)"), Some("bob"), None).is_err());
    }
}
