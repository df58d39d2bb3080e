//! Directory sync: owners pulled from the municipality's directory over LDAP (Active Directory
//! or OpenLDAP). One sync reads every owner entry ([`ldap`]), maps them to import rows
//! ([`map`], pure) and hands them to [`Registry::import_owners`] as the `directory` feed with
//! `disable_missing`: owners the directory added or claimed are added and updated, those gone
//! from it (or disabled there) are disabled, which disconnects their sessions (the enforcer
//! follows the audit log); owners added by hand are left alone; an entry that cannot be read
//! is reported and keeps its owner as stored ([`map::keep_as_stored`]). A sync that would
//! disable more than `directory.max_disable` owners is refused unless forced. The CLI (`owner sync`) and
//! `serve`'s schedule ([`crate::server::directory`]) both run [`sync`].

pub mod ldap;
pub mod map;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::config::directory::DirectoryConfig;
use crate::model::OwnerSource;
use crate::registry::{
    Change, ImportColumns, ImportOptions, ImportReport, Registry, RegistryError,
};

/// The reason written on an owner the directory no longer has as active (Dutch first: the
/// service desk reads it).
pub const MISSING_REASON: &str = "niet (meer) actief in de directory / not active in the directory";

/// Why a sync did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// `[directory]` is missing or wrong.
    #[error("directory configuration: {0}")]
    Config(String),
    /// The bind password cannot be had.
    #[error("directory bind password: {0}")]
    Password(String),
    /// The TLS setup (the CA file) failed.
    #[error("directory TLS: {0}")]
    Tls(String),
    /// No connection (TCP, TLS, StartTLS).
    #[error("cannot connect to the directory at {url}: {error}")]
    Connect {
        /// The URL.
        url: String,
        /// What failed (its own causes in its text: not a `source`, which would print them
        /// twice).
        error: Box<::ldap3::LdapError>,
    },
    /// The bind was refused.
    #[error("the directory refused the bind as {dn}: {error}")]
    Bind {
        /// The bind DN.
        dn: String,
        /// The directory's answer.
        error: Box<::ldap3::LdapError>,
    },
    /// The search failed.
    #[error("the directory search under {base} failed: {error}")]
    Search {
        /// The base DN.
        base: String,
        /// What failed (its own causes in its text: not a `source`, which would print them
        /// twice).
        error: Box<::ldap3::LdapError>,
    },
    /// A role group could not be read.
    #[error("cannot read the role group {group}: {error}")]
    Group {
        /// Its DN.
        group: String,
        /// What failed (its own causes in its text: not a `source`, which would print them
        /// twice).
        error: Box<::ldap3::LdapError>,
    },
    /// A role group is not in the directory (its members would silently get the default
    /// role).
    #[error("the role group {0} is not in the directory")]
    GroupMissing(String),
    /// The directory sent an entry that cannot be parsed.
    #[error("the directory sent an entry that cannot be read (malformed LDAP)")]
    Malformed,
    /// The search matched more entries than [`ldap::MAX_ENTRIES`].
    #[error("the directory search matched more than {0} entries; narrow directory.filter or directory.base_dn")]
    TooManyEntries(usize),
    /// The read did not end in time.
    #[error("the directory did not answer within {0:?} (directory.timeout)")]
    Timeout(Duration),
    /// The safeguard: the sync would disable too many owners; nothing was written.
    #[error(
        "refused: this sync would disable {would} of the {managed} owners the directory manages \
         (directory.max_disable = {max}, at most {limit}); nothing was changed. Check the \
         directory (an empty or partial search result?), then run `poortwachter owner sync \
         --force` to apply it anyway"
    )]
    TooManyDisabled {
        /// How many it would disable.
        would: u64,
        /// Enabled owners of the directory before.
        managed: u64,
        /// The setting.
        max: crate::config::directory::MaxDisable,
        /// The limit it gives for `managed`.
        limit: u64,
    },
    /// The registry failed or refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// How to sync.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncOptions {
    /// Compute and report, write nothing.
    pub dry_run: bool,
    /// Apply even past `max_disable`.
    pub force: bool,
}

/// What a sync did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct SyncOutcome {
    /// Entries the search returned.
    pub entries: u64,
    /// Of those, left out as disabled in the directory.
    pub disabled_in_directory: u64,
    /// The import's report: counts, changes, skipped entries.
    pub report: ImportReport,
}

/// Reads the directory and imports its owners (see the module's header). With `dry_run` the
/// report says what would change and nothing is written.
pub async fn sync(
    registry: &Registry,
    config: &DirectoryConfig,
    opts: SyncOptions,
    change: &Change,
) -> Result<SyncOutcome, DirectoryError> {
    let mapping = config.mapping();
    let fetched = ldap::fetch(config, &mapping).await?;
    let mapped = map::map_entries(
        &fetched.entries,
        &fetched.groups,
        &mapping,
        &registry.rules().timezone,
    );
    let owners = registry.owners().await?;
    let managed = owners
        .iter()
        .filter(|o| o.source == OwnerSource::Directory && !o.disabled)
        .count() as u64;
    let (rows, kept) = map::keep_as_stored(mapped.rows, &mapped.named, &owners);
    let limit = config.max_disable.limit(managed);
    let import = ImportOptions {
        columns: ImportColumns::ALL,
        skip_bad: true,
        source: OwnerSource::Directory,
        disable_missing: true,
        missing_reason: MISSING_REASON.to_string(),
        // the registry refuses, writing nothing, past the limit
        max_disable: (!opts.force).then_some(limit),
        dry_run: opts.dry_run,
    };
    let mut report = registry
        .import_owners(rows, &import, change, &mut |_, _| {})
        .await
        .map_err(|e| match e {
            RegistryError::TooManyMissing { missing, .. } => DirectoryError::TooManyDisabled {
                would: missing,
                managed,
                max: config.max_disable,
                limit,
            },
            other => DirectoryError::Registry(other),
        })?;
    report.skipped.extend(kept);
    report.skipped.sort_by_key(|p| p.line);
    Ok(SyncOutcome {
        entries: fetched.entries.len() as u64,
        disabled_in_directory: mapped.disabled.len() as u64,
        report,
    })
}

/// `serve`'s sync results, for `/api/v1/metrics`.
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Unix time of the last sync that applied (0: none yet).
    last_success: AtomicI64,
    /// Syncs that failed (directory, registry, refused by the safeguard).
    failures: AtomicU64,
    /// Of those, refused by the safeguard.
    refused: AtomicU64,
    /// Owners disabled by syncs.
    disabled: AtomicU64,
}

impl SyncCounters {
    /// A sync applied at `at` (Unix seconds).
    pub fn succeeded(&self, at: i64, outcome: &SyncOutcome) {
        self.last_success.store(at, Ordering::Relaxed);
        self.disabled
            .fetch_add(outcome.report.disabled, Ordering::Relaxed);
    }

    /// A sync failed; `refused` by the safeguard.
    pub fn failed(&self, refused: bool) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if refused {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text.
    pub fn render(&self, out: &mut String) {
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        metric(
            "poortwachter_directory_sync_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last directory sync that applied; 0 before the first.",
            self.last_success.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "poortwachter_directory_sync_failures_total",
            "counter",
            "Directory syncs that failed or were refused; each changed nothing.",
            self.failures.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "poortwachter_directory_sync_refused_total",
            "counter",
            "Directory syncs refused by directory.max_disable.",
            self.refused.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "poortwachter_directory_sync_disabled_owners_total",
            "counter",
            "Owners disabled by directory syncs.",
            self.disabled.load(Ordering::Relaxed).to_string(),
        );
    }
}
