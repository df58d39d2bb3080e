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
    let mut held = Held::default();
    let mut purging: Option<JoinHandle<()>> = None;
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
                // on a task of its own: a slow or unreachable database must not hold the
                // decision writes (or the last flush at a stop)
                if purging.as_ref().is_none_or(|p| p.is_finished()) {
                    let before = Utc::now() - retention;
                    purging = Some(tokio::spawn(purge_old(store.clone(), before)));
                }
                continue;
            }
        }
        let closed = loop {
            match rx.try_recv() {
                Ok(r) => {
                    buf.push(r);
                    if buf.len() >= BATCH {
                        flush(&*store, &stats, &mut buf, &mut seen_written, &mut held).await;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break false,
                Err(mpsc::error::TryRecvError::Disconnected) => break true,
            }
        };
        flush(&*store, &stats, &mut buf, &mut seen_written, &mut held).await;
        if closed {
            if let Some(p) = purging {
                p.abort();
            }
            return;
        }
    }
}

/// Deletes what is past its retention: decisions, posture reports (each device's latest
/// kept) and Disconnect/CoA requests.
async fn purge_old(store: Arc<dyn Store>, before: chrono::DateTime<Utc>) {
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
    match crate::registry::posture::PostureStore::purge_posture_reports(&*store, before).await {
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
}

/// Decisions held while the database cannot take them (an outage: the degraded decisions are
/// what ICT wants to see afterwards), written when it can again; at most [`MAX_HELD`], the
/// oldest given up first (counted as lost).
#[derive(Default)]
struct Held {
    decisions: std::collections::VecDeque<DecisionRecord>,
    /// No write is tried before this (a failing database is not asked at every flush).
    retry_at: Option<std::time::Instant>,
}

/// Decisions held at most (about 400 bytes each).
const MAX_HELD: usize = 20_000;
/// How long a write may take before it counts as failed.
const WRITE_WITHIN: Duration = Duration::from_secs(3);
/// How long after a failed write the next is tried.
const RETRY_AFTER: Duration = Duration::from_secs(2);

impl Held {
    fn hold(&mut self, rows: Vec<DecisionRecord>, stats: &Stats) {
        self.decisions.extend(rows);
        let over = self.decisions.len().saturating_sub(MAX_HELD);
        if over > 0 {
            self.decisions.drain(..over);
            stats
                .decisions_lost
                .fetch_add(over as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Per-minute counts not stored: counted as lost decisions.
fn lose_counts(counts: &[DecisionAggregate], stats: &Stats) {
    let lost: u64 = counts.iter().map(|a| a.count).sum();
    stats
        .decisions_lost
        .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
}

async fn flush(
    store: &dyn Store,
    stats: &Stats,
    buf: &mut Vec<Record>,
    seen_written: &mut HashMap<uuid::Uuid, (chrono::DateTime<Utc>, Option<MacAddr>)>,
    held: &mut Held,
) {
    if buf.is_empty() && held.decisions.is_empty() {
        return;
    }
    let mut decisions: Vec<DecisionRecord> = held.decisions.drain(..).collect();
    decisions.reserve(buf.len());
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
    let waiting = held.retry_at.is_some_and(|t| std::time::Instant::now() < t);
    if waiting {
        held.hold(decisions, stats);
        lose_counts(&counts, stats);
        return;
    }
    if !decisions.is_empty() {
        let written = tokio::time::timeout(WRITE_WITHIN, store.insert_decisions(&decisions)).await;
        let failure = match written {
            Ok(Ok(())) => None,
            // refused rather than unreachable: holding them would not help
            Ok(Err(e)) if !e.is_unavailable() => {
                tracing::error!(error = %e, count = decisions.len(), "storing decisions failed");
                stats
                    .decisions_lost
                    .fetch_add(decisions.len() as u64, std::sync::atomic::Ordering::Relaxed);
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {} s", WRITE_WITHIN.as_secs())),
        };
        match failure {
            None => {
                if held.retry_at.take().is_some() {
                    tracing::info!(
                        count = decisions.len(),
                        "decisions held during the outage stored"
                    );
                }
            }
            Some(e) => {
                if held.retry_at.is_none() {
                    tracing::error!(error = %e, count = decisions.len(), "storing decisions failed; holding them (at most {MAX_HELD}) until the database takes them");
                }
                held.retry_at = Some(std::time::Instant::now() + RETRY_AFTER);
                held.hold(decisions, stats);
                lose_counts(&counts, stats);
                return;
            }
        }
    }
    if !counts.is_empty() {
        let written =
            tokio::time::timeout(WRITE_WITHIN, store.insert_decision_aggregates(&counts)).await;
        let failure = match written {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {} s", WRITE_WITHIN.as_secs())),
        };
        if let Some(e) = failure {
            tracing::error!(error = %e, count = counts.len(), "storing unknown-device counts failed");
            lose_counts(&counts, stats);
        }
    }
    if !seen.is_empty() {
        if seen_written.len() > 1_000_000 {
            seen_written.clear();
        }
        let seen: Vec<Sighting> = seen.into_values().collect();
        match tokio::time::timeout(WRITE_WITHIN, store.record_sightings(&seen)).await {
            Err(_) => tracing::warn!("storing last-seen times took too long; skipped"),
            Ok(Ok(())) => {
                for s in &seen {
                    seen_written.insert(s.device_id, (s.at, s.mac));
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "storing last-seen times failed"),
        }
    }
}
