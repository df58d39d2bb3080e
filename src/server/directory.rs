//! `serve`'s scheduled directory sync: every `directory.interval` (the first at once), on one
//! node among those sharing the registry ([`Store::try_lead_for`] with
//! [`Duty::DirectorySync`], as the enforcer leads for its own duty). A sync runs as its own
//! task, bounded by `directory.timeout` plus as long again for the registry; one that fails or
//! is refused by `directory.max_disable` logs a warning, counts, and has changed nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::directory::DirectoryConfig;
use crate::config::Config;
use crate::directory::{self, SyncCounters, SyncOptions};
use crate::registry::{Change, Duty, Registry, Rules, Store};

/// The actor of the scheduled sync's audit entries.
pub const SYNC_ACTOR: &str = "poortwachter (directory sync)";

/// How often a node that does not lead tries again.
const LEAD_RETRY: Duration = Duration::from_secs(5);

/// The scheduled sync of one node.
pub struct DirectorySync {
    store: Arc<dyn Store>,
    registry: Registry,
    config: DirectoryConfig,
    interval: Duration,
    counters: Arc<SyncCounters>,
}

impl DirectorySync {
    /// The task `[directory]` asks for: none without the section or with `interval = 0s`.
    pub fn new(config: &Config, store: Arc<dyn Store>) -> Option<DirectorySync> {
        let d = config.directory.as_ref()?;
        if d.interval.0.is_zero() {
            return None;
        }
        let rules = Rules {
            max_devices_per_owner: config.policy.max_devices_per_owner,
            timezone: config.policy.timezone,
        };
        Some(DirectorySync {
            registry: Registry::new(store.clone(), rules),
            store,
            config: d.clone(),
            interval: d.interval.0,
            counters: Arc::new(SyncCounters::default()),
        })
    }

    /// Its results, for the metrics.
    pub fn counters(&self) -> Arc<SyncCounters> {
        self.counters.clone()
    }

    /// Runs until `stop` turns true. A sync under way at the stop is cancelled: its
    /// transaction is rolled back.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut waiting_said = false;
        'lead: loop {
            let mut lead = tokio::select! {
                _ = stop.changed() => return,
                got = self.store.try_lead_for(Duty::DirectorySync) => match got {
                    Ok(Some(l)) => l,
                    other => {
                        if !waiting_said {
                            waiting_said = true;
                            match other {
                                Err(e) => tracing::warn!(error = %e, "cannot ask the registry which node syncs the directory; retrying"),
                                _ => tracing::info!("another node syncs the directory; standing by"),
                            }
                        }
                        tokio::select! {
                            _ = stop.changed() => return,
                            _ = tokio::time::sleep(LEAD_RETRY) => continue 'lead,
                        }
                    }
                },
            };
            waiting_said = false;
            tracing::info!(
                interval = %self.config.interval,
                "this node syncs the directory"
            );
            let mut tick = tokio::time::interval(self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => {}
                }
                if !lead.holds().await {
                    tracing::warn!("this node lost the directory sync role (its database connection ended); trying to take it again");
                    continue 'lead;
                }
                if self.once(&mut stop).await.is_break() {
                    return;
                }
            }
        }
    }

    /// One sync; `Break` when the stop came first.
    async fn once(&self, stop: &mut watch::Receiver<bool>) -> std::ops::ControlFlow<()> {
        let (registry, config) = (self.registry.clone(), self.config.clone());
        let change = Change::by(SYNC_ACTOR);
        let task = tokio::spawn(async move {
            directory::sync(&registry, &config, SyncOptions::default(), &change).await
        });
        let abort = task.abort_handle();
        let limit = self.config.timeout.0.saturating_mul(2);
        let outcome = tokio::select! {
            _ = stop.changed() => {
                abort.abort();
                return std::ops::ControlFlow::Break(());
            }
            done = tokio::time::timeout(limit, task) => done,
        };
        match outcome {
            Ok(Ok(Ok(o))) => {
                self.counters.succeeded(chrono::Utc::now().timestamp(), &o);
                let r = &o.report;
                tracing::info!(
                    entries = o.entries,
                    disabled_in_directory = o.disabled_in_directory,
                    added = r.added,
                    updated = r.updated,
                    disabled = r.disabled,
                    enabled = r.enabled,
                    left_alone = r.left_alone,
                    unchanged = r.unchanged,
                    skipped = r.skipped.len(),
                    "directory sync applied"
                );
                for p in &r.skipped {
                    tracing::warn!(entry = %p, "directory sync skipped an entry");
                }
            }
            Ok(Ok(Err(e))) => {
                self.counters.failed(matches!(
                    e,
                    directory::DirectoryError::TooManyDisabled { .. }
                ));
                tracing::warn!(error = %e, "directory sync failed; nothing changed");
            }
            Ok(Err(e)) => {
                self.counters.failed(false);
                tracing::warn!(error = %e, "directory sync task ended abnormally; nothing changed");
            }
            Err(_) => {
                abort.abort();
                self.counters.failed(false);
                tracing::warn!(
                    after = ?limit,
                    "directory sync did not finish in time: cancelled, nothing changed"
                );
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}
