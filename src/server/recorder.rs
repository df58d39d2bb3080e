//! The decision log writer: decisions and device sightings go through a bounded queue to one
//! task that stores them in batches (one transaction per batch), so the hot path never waits
//! for the database. Flushed on shutdown; old decisions purged per the retention period.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::activity::{DecisionAggregate, DecisionRecord, Sighting};
use crate::mac::MacAddr;
use crate::registry::Store;

use super::stats::Stats;

/// Something to store.
#[derive(Debug)]
pub enum Record {
    /// An access decision.
    Decision(DecisionRecord),
    /// A minute's count of decisions about unregistered devices.
    Aggregate(DecisionAggregate),
    /// A device authenticated.
    Seen(Sighting),
}

/// The sending side, cloned into the listeners.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Record>,
}

impl Recorder {
    /// Starts the writer task. It ends, after a last flush, when every `Recorder` is dropped.
    pub fn start(
        store: Arc<dyn Store>,
        stats: Arc<Stats>,
        retention: chrono::Duration,
    ) -> (Recorder, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(262_144);
        let handle = tokio::spawn(write_loop(store, stats, rx, retention));
        (Recorder { tx }, handle)
    }

    /// Queues a record; when the queue is full the record is counted as lost, never awaited.
    pub fn record(&self, record: Record, stats: &Stats) {
        if self.tx.try_send(record).is_err() {
            Stats::inc(&stats.decisions_lost);
        }
    }
}

/// How often the writer wakes up to store what was queued: the listeners never wake it, so a
/// busy server pays one database transaction per interval, not one per request.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Largest batch per transaction.
const BATCH: usize = 8_192;
/// A device's last-seen time is written at most this often.
const SEEN_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

async fn write_loop(
    store: Arc<dyn Store>,
    stats: Arc<Stats>,
    mut rx: mpsc::Receiver<Record>,
    retention: chrono::Duration,
) {
    let mut buf = Vec::with_capacity(BATCH);
    // per device: when its last-seen was last written, and from which MAC
    let mut seen_written: HashMap<uuid::Uuid, (chrono::DateTime<Utc>, Option<MacAddr>)> =
        HashMap::new();
    let mut purge = tokio::time::interval(Duration::from_secs(3600));
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = purge.tick() => {
                let before = Utc::now() - retention;
                match store.purge_decisions(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, %before, "purged old decisions"),
                    Err(e) => tracing::warn!(error = %e, "purging old decisions failed"),
                }
                match store.purge_decision_aggregates(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, %before, "purged old unknown-device counts"),
                    Err(e) => tracing::warn!(error = %e, "purging old unknown-device counts failed"),
                }
                // posture reports too, each device's latest kept
                match crate::registry::posture::PostureStore::purge_posture_reports(&*store, before)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, %before, "purged old posture reports"),
                    Err(e) => tracing::warn!(error = %e, "purging old posture reports failed"),
                }
                // Disconnect/CoA requests sent are kept as long as decisions
                match store.purge_coa_requests(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, %before, "purged old Disconnect/CoA requests"),
                    Err(e) => tracing::warn!(error = %e, "purging old Disconnect/CoA requests failed"),
                }
                continue;
            }
        }
        let closed = loop {
            match rx.try_recv() {
                Ok(r) => {
                    buf.push(r);
                    if buf.len() >= BATCH {
                        flush(&*store, &stats, &mut buf, &mut seen_written).await;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break false,
                Err(mpsc::error::TryRecvError::Disconnected) => break true,
            }
        };
        flush(&*store, &stats, &mut buf, &mut seen_written).await;
        if closed {
            return;
        }
    }
}

async fn flush(
    store: &dyn Store,
    stats: &Stats,
    buf: &mut Vec<Record>,
    seen_written: &mut HashMap<uuid::Uuid, (chrono::DateTime<Utc>, Option<MacAddr>)>,
) {
    if buf.is_empty() {
        return;
    }
    let mut decisions = Vec::with_capacity(buf.len());
    let mut counts = Vec::new();
    let mut seen: HashMap<uuid::Uuid, Sighting> = HashMap::new();
    for r in buf.drain(..) {
        match r {
            Record::Decision(d) => decisions.push(d),
            Record::Aggregate(a) => counts.push(a),
            Record::Seen(s) => {
                // a new MAC (a randomized address, another adapter) is written at once
                let recent = seen_written
                    .get(&s.device_id)
                    .is_some_and(|(at, mac)| s.at - *at < SEEN_EVERY && *mac == s.mac);
                if !recent {
                    seen.insert(s.device_id, s);
                }
            }
        }
    }
    if !decisions.is_empty() {
        if let Err(e) = store.insert_decisions(&decisions).await {
            tracing::error!(error = %e, count = decisions.len(), "storing decisions failed");
            stats
                .decisions_lost
                .fetch_add(decisions.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
    if !counts.is_empty() {
        if let Err(e) = store.insert_decision_aggregates(&counts).await {
            tracing::error!(error = %e, count = counts.len(), "storing unknown-device counts failed");
            let lost: u64 = counts.iter().map(|a| a.count).sum();
            stats
                .decisions_lost
                .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
        }
    }
    if !seen.is_empty() {
        if seen_written.len() > 1_000_000 {
            seen_written.clear();
        }
        let seen: Vec<Sighting> = seen.into_values().collect();
        match store.record_sightings(&seen).await {
            Ok(()) => {
                for s in &seen {
                    seen_written.insert(s.device_id, (s.at, s.mac));
                }
            }
            Err(e) => tracing::warn!(error = %e, "storing last-seen times failed"),
        }
    }
}
