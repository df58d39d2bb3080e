//! The ICT command line: subcommands, config and registry setup, and who the actor is.

mod ca;
mod check;
mod device;
mod owner;
mod radius;
mod table;
mod token;

use anyhow::Result;
use clap::Subcommand;
use poortwachter::config::{redact_url, Config};
use poortwachter::registry::{AuditFilter, Change, Registry, Rules};

use crate::Args;

/// Everything `poortwachter` can be asked to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config file and exit (non-zero with the problems).
    CheckConfig,
    /// Apply database migrations (they also run before every other command).
    Migrate,
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
    },
}

/// What a command runs with.
pub struct Context {
    pub registry: Registry,
    pub json: bool,
    actor: String,
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
    init_logging(&config.log.level);
    if let Command::CheckConfig = args.command {
        return check_config(&config, args.json).await;
    }
    // the CA is made before there is anything to record: no registry needed
    if let Command::Ca(ca::CaCommand::Init { key_type, force }) = &args.command {
        return ca::init(&config, key_type.as_deref(), *force, args.json);
    }
    // serve starts from its snapshot when the database does not answer
    if let Command::Serve = args.command {
        return radius::serve_command(&config, &args.config, rules(&config)).await;
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
    registry.migrate().await?;
    let ctx = Context {
        registry,
        json: args.json,
        actor: actor(args.actor)?,
    };
    match args.command {
        Command::CheckConfig => Ok(()),
        Command::Migrate => {
            println!(
                "registry is up to date ({})",
                redact_url(&config.database.url)
            );
            Ok(())
        }
        Command::Serve => unreachable!("handled above"),
        Command::Why { who, limit } => {
            radius::why(&config, ctx.registry.store(), &who, limit, ctx.json).await
        }
        Command::Sessions { active, mac, limit } => {
            radius::sessions(&config, ctx.registry.store(), active, mac, limit, ctx.json).await
        }
        Command::Session(cmd) => {
            let actor = ctx.change().actor;
            radius::session(&config, ctx.registry.store(), &actor, cmd, ctx.json).await
        }
        Command::Owner(cmd) => owner::run(&ctx, cmd).await,
        Command::Device(cmd) => device::run(&ctx, &config, cmd).await,
        Command::Ca(cmd) => ca::run(&ctx, &config, cmd).await,
        Command::Token(cmd) => token::run(&ctx, cmd).await,
        Command::Audit { target, by, limit } => {
            let entries = ctx
                .registry
                .store()
                .audit(&AuditFilter {
                    target_id: target,
                    actor: by,
                    limit: Some(limit),
                })
                .await?;
            if ctx.json {
                return table::print_json(&entries);
            }
            table::print_audit(&entries, true);
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
            "ok": errors == 0,
            "database": redact_url(&config.database.url),
            "auth_listen": config.radius.auth_listen.to_string(),
            "acct_listen": config.radius.acct_listen.to_string(),
            "clients": clients,
            "checks": findings,
        }))?;
        anyhow::ensure!(errors == 0, "check-config: {errors} problem(s)");
        return Ok(());
    }
    println!("config OK");
    println!("  database     {}", redact_url(&config.database.url));
    println!(
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
        println!("  client       {} {}", c.name, c.network);
    }
    println!(
        "  vlans        workspace {}  guest {}  quarantine {}",
        config.vlans.workspace, config.vlans.guest, config.vlans.quarantine
    );
    println!(
        "  policy       at most {} devices per owner; contract dates in {}",
        config.policy.max_devices_per_owner, config.policy.timezone
    );
    println!(
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
    println!(
        "  mab          {}; registry cache {}",
        if config.radius.mab { "on" } else { "off" },
        if config.cache.enabled { "on" } else { "off" }
    );
    for f in &findings {
        let level = match f.level {
            check::Level::Ok => "",
            check::Level::Warning => "WARNING: ",
            check::Level::Error => "ERROR: ",
        };
        println!("  {:<12} {level}{}", f.area, f.message);
    }
    anyhow::ensure!(
        errors == 0,
        "check-config: {errors} problem(s) above must be solved before `serve`"
    );
    Ok(())
}

/// `--actor`, else the OS user.
fn actor(explicit: Option<String>) -> Result<String> {
    if let Some(a) = explicit {
        let a = a.trim().to_string();
        anyhow::ensure!(!a.is_empty(), "--actor: must not be empty");
        return Ok(a);
    }
    Ok(os_user().unwrap_or_else(|| "unknown".to_string()))
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

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // colours only on a terminal: journald and log files get plain text
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
