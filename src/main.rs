//! The `poortwachter` command: the ICT command line and (later) the service. `anyhow` lives
//! here and in the `cli` modules of this binary, nowhere in the library.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Network access control for the municipality's BYOD Wi-Fi.
#[derive(Debug, Parser)]
#[command(name = "poortwachter", version, about, propagate_version = true)]
pub struct Args {
    /// Config file [default: /etc/poortwachter/poortwachter.toml when it exists (an installed
    /// server), else config/poortwachter.toml (a checkout)].
    #[arg(
        long,
        global = true,
        env = "POORTWACHTER_CONFIG",
        default_value_os_t = default_config(),
        hide_default_value = true
    )]
    config: PathBuf,
    /// Who makes the change, for the audit log (default: the OS user).
    #[arg(long, global = true, env = "POORTWACHTER_ACTOR")]
    actor: Option<String>,
    /// Print JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: cli::Command,
}

/// Where the package installs the config.
const INSTALLED_CONFIG: &str = "/etc/poortwachter/poortwachter.toml";

/// The config of an installed server wherever the command is run from; in a checkout without
/// one, the development config (`cargo run -- serve`).
fn default_config() -> PathBuf {
    if std::path::Path::new(INSTALLED_CONFIG).exists() {
        PathBuf::from(INSTALLED_CONFIG)
    } else {
        PathBuf::from("config/poortwachter.toml")
    }
}

/// Gives memory freed on other threads back to the OS. glibc keeps what the EAP and runtime
/// threads freed in their arenas (after an EAP flood had expired, RSS stayed 85 MiB above
/// idle); `serve` calls this every 10 s, so RSS comes down once a flood is over.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only walks glibc's own free lists, under
    // glibc's own arena locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli::run(args));
    // a task stuck in a blocking call must not hold the exit: give the rest a second
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
