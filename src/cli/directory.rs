//! `poortwachter owner sync`: one directory sync now ([`poortwachter::directory::sync`]), its
//! diff printed; `--dry-run` writes nothing.

use anyhow::Result;
use clap::Args;
use poortwachter::config::Config;
use poortwachter::directory::{self, SyncOptions, SyncOutcome};
use poortwachter::registry::ChangeKind;

use super::table;
use super::Context;

/// `owner sync` flags.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Show what the sync would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply even when it disables more owners than `directory.max_disable` allows.
    #[arg(long)]
    pub force: bool,
}

/// Runs one sync with `[directory]` and prints what it did (or would do).
pub async fn run(ctx: &Context, config: &Config, args: SyncArgs) -> Result<()> {
    let Some(dir) = &config.directory else {
        anyhow::bail!("no [directory] section in the configuration: nothing to sync from");
    };
    let opts = SyncOptions {
        dry_run: args.dry_run,
        force: args.force,
    };
    let outcome = directory::sync(&ctx.registry, dir, opts, &ctx.change()).await?;
    if ctx.json {
        return table::print_json(&outcome);
    }
    print(&outcome);
    Ok(())
}

fn print(o: &SyncOutcome) {
    let r = &o.report;
    outln!(
        "directory: {} entries ({} disabled there), {} skipped",
        o.entries,
        o.disabled_in_directory,
        r.skipped.len()
    );
    outln!(
        "{}{} added, {} updated, {} disabled, {} enabled, {} left alone (not managed by the directory), {} unchanged",
        if r.dry_run { "would be: " } else { "" },
        r.added,
        r.updated,
        r.disabled,
        r.enabled,
        r.left_alone,
        r.unchanged
    );
    let rows: Vec<Vec<String>> = r
        .changes
        .iter()
        .map(|c| {
            let (what, detail) = match c.kind {
                ChangeKind::Added => ("added", String::new()),
                ChangeKind::Updated => ("updated", c.fields.join(", ")),
                ChangeKind::Disabled => ("disabled", directory::MISSING_REASON.to_string()),
                ChangeKind::Enabled => ("enabled", String::new()),
                ChangeKind::LeftAlone => (
                    "left alone",
                    c.managed_by
                        .map(|s| format!("source: {s}"))
                        .unwrap_or_default(),
                ),
            };
            vec![what.to_string(), c.username.clone(), detail]
        })
        .collect();
    if !rows.is_empty() {
        outln!();
        table::print(&["CHANGE", "USERNAME", "DETAIL"], rows);
    }
    // the message names the entry's DN
    for p in &r.skipped {
        outln!("  skipped {}", p.message);
    }
    if r.dry_run {
        outln!("(dry run: nothing written)");
    }
}
