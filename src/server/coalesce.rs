//! Folding repeated identical decisions into one stored row (as Cisco ISE suppresses repeated
//! successful authentications): the same MAC on the same client with the same outcome, reason
//! and VLAN within the window is counted, not stored again. The next stored row for that key
//! carries the count (`repeats`), and whatever is still pending is written at shutdown, so
//! every decision is accounted for. Pure: the clock is passed in.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::activity::DecisionRecord;
use crate::mac::MacAddr;

/// What makes two decisions the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// Client index.
    pub client: usize,
    /// Device MAC.
    pub mac: MacAddr,
    /// Accepted or not.
    pub accept: bool,
    /// Reason code.
    pub reason: &'static str,
    /// VLAN handed out.
    pub vlan: Option<u16>,
}

#[derive(Debug)]
struct Entry {
    stored_at: Instant,
    stored: Arc<DecisionRecord>,
    pending: u32,
    last_at: DateTime<Utc>,
}

/// The fold state, bounded in entries.
#[derive(Debug)]
pub struct Coalescer {
    window: Duration,
    max_entries: usize,
    entries: HashMap<Key, Entry>,
}

/// What to do with a decision.
#[derive(Debug, PartialEq, Eq)]
pub enum Fold {
    /// Store it, with this many earlier identical decisions folded into it.
    Store {
        /// Identical decisions since the previous stored row.
        repeats: u32,
    },
    /// Counted; not stored now.
    Folded,
}

impl Coalescer {
    /// Folds identical decisions within `window` (zero stores every decision).
    pub fn new(window: Duration, max_entries: usize) -> Self {
        Coalescer {
            window,
            max_entries: max_entries.max(1),
            entries: HashMap::new(),
        }
    }

    /// Whether this decision must be stored now.
    pub fn fold(&mut self, key: Key, now: Instant, at: DateTime<Utc>) -> Fold {
        if self.window.is_zero() {
            return Fold::Store { repeats: 0 };
        }
        match self.entries.get_mut(&key) {
            Some(e) if now.saturating_duration_since(e.stored_at) < self.window => {
                e.pending += 1;
                e.last_at = at;
                Fold::Folded
            }
            Some(e) => Fold::Store { repeats: e.pending },
            None => Fold::Store { repeats: 0 },
        }
    }

    /// Remembers the row stored for `key` (after [`Fold::Store`]). Returns rows for pending
    /// counts that had to be given up to stay within bounds.
    pub fn stored(
        &mut self,
        key: Key,
        record: Arc<DecisionRecord>,
        now: Instant,
    ) -> Vec<DecisionRecord> {
        if self.window.is_zero() {
            return Vec::new();
        }
        let mut flushed = Vec::new();
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(&key) {
            flushed = self.drain();
        }
        let last_at = record.at;
        self.entries.insert(
            key,
            Entry {
                stored_at: now,
                stored: record,
                pending: 0,
                last_at,
            },
        );
        flushed
    }

    /// Forgets keys whose window has passed; rows for those with pending counts. Called every
    /// second, so a folded decision reaches the log within a window and a second, and the map
    /// holds only MACs seen within the window.
    pub fn sweep(&mut self, now: Instant) -> Vec<DecisionRecord> {
        let window = self.window;
        let mut rows = Vec::new();
        self.entries.retain(|_, e| {
            if now.saturating_duration_since(e.stored_at) < window {
                return true;
            }
            if e.pending > 0 {
                let mut r = (*e.stored).clone();
                r.id = 0;
                r.at = e.last_at;
                r.repeats = e.pending - 1;
                rows.push(r);
            }
            false
        });
        rows
    }

    /// Rows for every pending count (shutdown): a copy of the last stored row for that key, at
    /// the time of the last folded decision, carrying the count.
    pub fn drain(&mut self) -> Vec<DecisionRecord> {
        self.entries
            .drain()
            .filter(|(_, e)| e.pending > 0)
            .map(|(_, e)| {
                let mut r = (*e.stored).clone();
                r.id = 0;
                r.at = e.last_at;
                r.repeats = e.pending - 1;
                r
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key {
            client: 0,
            mac: MacAddr::parse_any("02:00:00:00:00:01").expect("mac"),
            accept: true,
            reason: "compliant",
            vlan: Some(100),
        }
    }

    fn record(at: DateTime<Utc>) -> Arc<DecisionRecord> {
        Arc::new(DecisionRecord {
            id: 0,
            at,
            nas: "ap".into(),
            nas_ip: None,
            username: "x".into(),
            mac: None,
            ssid: None,
            method: "mab".into(),
            device_id: None,
            owner: None,
            outcome: "accept".into(),
            vlan: Some(100),
            reason: "compliant".into(),
            message: "m".into(),
            repeats: 0,
            degraded: false,
        })
    }

    #[test]
    fn folds_within_the_window_and_counts_into_the_next_row() {
        let t = Instant::now();
        let at = Utc::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 10);
        assert_eq!(c.fold(key(), t, at), Fold::Store { repeats: 0 });
        c.stored(key(), record(at), t);
        for i in 1..=5 {
            assert_eq!(c.fold(key(), t + Duration::from_secs(i), at), Fold::Folded);
        }
        assert_eq!(
            c.fold(key(), t + Duration::from_secs(61), at),
            Fold::Store { repeats: 5 }
        );
        // another reason is another key
        let mut other = key();
        other.reason = "noncompliant";
        assert_eq!(c.fold(other, t, at), Fold::Store { repeats: 0 });
    }

    #[test]
    fn pending_counts_are_written_at_drain() {
        let t = Instant::now();
        let at = Utc::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 10);
        c.fold(key(), t, at);
        c.stored(key(), record(at), t);
        let later = at + chrono::Duration::seconds(3);
        for _ in 0..3 {
            c.fold(key(), t + Duration::from_secs(3), later);
        }
        let rows = c.drain();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].at, later);
        // the drained row is the third folded decision; two more were folded into it
        assert_eq!(rows[0].repeats, 2);
        assert!(c.drain().is_empty());
    }

    #[test]
    fn sweep_writes_pending_counts_after_the_window_and_forgets() {
        let t = Instant::now();
        let at = Utc::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 10);
        c.fold(key(), t, at);
        c.stored(key(), record(at), t);
        c.fold(key(), t + Duration::from_secs(1), at);
        assert!(c.sweep(t + Duration::from_secs(30)).is_empty());
        let rows = c.sweep(t + Duration::from_secs(61));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].repeats, 0);
        // forgotten: the next identical decision is stored at once, with no count
        assert_eq!(
            c.fold(key(), t + Duration::from_secs(62), at),
            Fold::Store { repeats: 0 }
        );
    }

    #[test]
    fn zero_window_stores_everything() {
        let t = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO, 10);
        for _ in 0..3 {
            assert_eq!(c.fold(key(), t, Utc::now()), Fold::Store { repeats: 0 });
        }
    }

    #[test]
    fn bounded_without_losing_counts() {
        let t = Instant::now();
        let at = Utc::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 2);
        let mut keys = Vec::new();
        for n in 0..2u8 {
            let mut k = key();
            k.mac = MacAddr::parse_any(&format!("02:00:00:00:00:{n:02x}")).expect("mac");
            c.fold(k, t, at);
            c.stored(k, record(at), t);
            c.fold(k, t, at); // one pending each
            keys.push(k);
        }
        let mut k = key();
        k.mac = MacAddr::parse_any("02:00:00:00:00:ff").expect("mac");
        c.fold(k, t, at);
        let flushed = c.stored(k, record(at), t);
        assert_eq!(flushed.len(), 2);
    }
}
