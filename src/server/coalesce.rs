//! Folding repeated identical decisions into one stored row (as Cisco ISE suppresses repeated
//! successful authentications): the same MAC on the same client with the same outcome, reason
//! and VLAN within the window is counted, not stored again. The next stored row for that key
//! carries the count (`repeats`), and whatever is still pending is written at shutdown, so
//! every decision is accounted for. Pure: the clock is passed in.
//!
//! Bounded in bytes: a key whose decision was stored keeps only its key, time and count (about
//! 280 bytes with the hash table and the expiry queue); a full record is held only once a
//! decision has been folded into it, and only for `max_held` keys at once. When the table is
//! full the key stored longest ago goes first (its pending count written out); when the held
//! records are, a decision that would be folded is stored instead. Memory stays fixed;
//! only the folding gets less thorough.

use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, VecDeque};
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
    pending: u32,
    last_at: DateTime<Utc>,
    /// The first folded decision, written with the count when the window ends.
    held: Option<Box<DecisionRecord>>,
}

/// The fold state, bounded in entries and in held records.
#[derive(Debug)]
pub struct Coalescer {
    window: Duration,
    max_entries: usize,
    max_held: usize,
    held: usize,
    entries: HashMap<Key, Entry>,
    /// (stored_at, key) in the order stored, which is the order the windows end; a pair whose
    /// key was stored again since is stale and skipped.
    order: VecDeque<(Instant, Key)>,
}

/// What to do with a decision.
#[derive(Debug, PartialEq, Eq)]
pub enum Fold {
    /// Store it, with this many earlier identical decisions folded into it; then call
    /// [`Coalescer::stored`].
    Store {
        /// Identical decisions since the previous stored row.
        repeats: u32,
    },
    /// Counted; not stored now.
    Folded,
}

impl Coalescer {
    /// Folds identical decisions within `window` (zero stores every decision), for at most
    /// `max_entries` keys at once, holding at most `max_held` records.
    pub fn new(window: Duration, max_entries: usize, max_held: usize) -> Self {
        Coalescer {
            window,
            max_entries: max_entries.max(1),
            max_held,
            held: 0,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether this decision must be stored now. `record` builds it, called only when the
    /// decision is the first one folded into the stored row (it is held until the window
    /// ends).
    pub fn fold(
        &mut self,
        key: Key,
        now: Instant,
        at: DateTime<Utc>,
        record: impl FnOnce() -> DecisionRecord,
    ) -> Fold {
        if self.window.is_zero() {
            return Fold::Store { repeats: 0 };
        }
        let Some(e) = self.entries.get_mut(&key) else {
            return Fold::Store { repeats: 0 };
        };
        if now.saturating_duration_since(e.stored_at) >= self.window {
            return Fold::Store { repeats: e.pending };
        }
        if e.held.is_none() {
            if self.held >= self.max_held {
                return Fold::Store { repeats: 0 };
            }
            e.held = Some(Box::new(record()));
            self.held += 1;
        }
        e.pending += 1;
        e.last_at = at;
        Fold::Folded
    }

    /// Remembers that a decision for `key` was stored (after [`Fold::Store`]). Returns rows
    /// for pending counts that had to be written early to stay within bounds.
    pub fn stored(&mut self, key: Key, now: Instant, at: DateTime<Utc>) -> Vec<DecisionRecord> {
        if self.window.is_zero() {
            return Vec::new();
        }
        let mut flushed = Vec::new();
        match self.entries.entry(key) {
            Slot::Occupied(mut o) => {
                let e = o.get_mut();
                if now.saturating_duration_since(e.stored_at) < self.window {
                    // stored within its window (no room to hold a record): the window and the
                    // queue position stay, the pending count with them
                    return flushed;
                }
                if e.held.take().is_some() {
                    self.held -= 1;
                }
                *e = Entry {
                    stored_at: now,
                    pending: 0,
                    last_at: at,
                    held: None,
                };
            }
            Slot::Vacant(v) => {
                v.insert(Entry {
                    stored_at: now,
                    pending: 0,
                    last_at: at,
                    held: None,
                });
            }
        }
        self.order.push_back((now, key));
        while self.entries.len() > self.max_entries {
            match self.pop_oldest() {
                Some(Some(row)) => flushed.push(row),
                Some(None) => {}
                None => break,
            }
        }
        // stale pairs (keys stored again after their window) leave with the sweep; should
        // they pile up between sweeps, drop them now
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order
                .retain(|(t, k)| entries.get(k).is_some_and(|e| e.stored_at == *t));
        }
        flushed
    }

    /// Takes the front of the queue out: `None` when empty, `Some(None)` for a stale pair or a
    /// key with nothing pending, `Some(Some(row))` for a pending count.
    fn pop_oldest(&mut self) -> Option<Option<DecisionRecord>> {
        let (t, key) = self.order.pop_front()?;
        match self.entries.get(&key) {
            Some(e) if e.stored_at == t => {}
            _ => return Some(None),
        }
        let e = self.entries.remove(&key)?;
        Some(self.row(e))
    }

    fn row(&mut self, e: Entry) -> Option<DecisionRecord> {
        let held = e.held?;
        self.held -= 1;
        let mut r = *held;
        r.id = 0;
        r.at = e.last_at;
        r.repeats = e.pending.saturating_sub(1);
        Some(r)
    }

    /// Forgets keys whose window has passed; rows for those with pending counts. Called every
    /// second, so a folded decision reaches the log within a window and a second, and the map
    /// holds only MACs seen within the window.
    pub fn sweep(&mut self, now: Instant) -> Vec<DecisionRecord> {
        let mut rows = Vec::new();
        while let Some((t, _)) = self.order.front() {
            if now.saturating_duration_since(*t) < self.window {
                break;
            }
            if let Some(Some(row)) = self.pop_oldest() {
                rows.push(row);
            }
        }
        // the table's memory goes back once it is mostly empty (after a burst)
        if self.entries.capacity() > 4 * self.entries.len().max(1_024) {
            self.entries.shrink_to_fit();
            self.order.shrink_to_fit();
        }
        rows
    }

    /// Rows for every pending count (shutdown): the first folded decision of each key, at the
    /// time of the last one, carrying the count.
    pub fn drain(&mut self) -> Vec<DecisionRecord> {
        self.order.clear();
        let entries: Vec<Entry> = self.entries.drain().map(|(_, e)| e).collect();
        entries.into_iter().filter_map(|e| self.row(e)).collect()
    }

    /// Keys remembered, and records held.
    pub fn len(&self) -> (usize, usize) {
        (self.entries.len(), self.held)
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

    fn key_n(n: u16) -> Key {
        let [a, b] = n.to_be_bytes();
        Key {
            mac: MacAddr::parse_any(&format!("02:00:00:00:{a:02x}:{b:02x}")).expect("mac"),
            ..key()
        }
    }

    fn record(at: DateTime<Utc>) -> DecisionRecord {
        DecisionRecord {
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
        }
    }

    /// One decision through the coalescer, as the request path does it: folded, or stored
    /// (returned, with what had to be written early).
    fn decide(
        c: &mut Coalescer,
        k: Key,
        now: Instant,
        at: DateTime<Utc>,
    ) -> (Option<u32>, Vec<DecisionRecord>) {
        match c.fold(k, now, at, || record(at)) {
            Fold::Folded => (None, Vec::new()),
            Fold::Store { repeats } => (Some(repeats), c.stored(k, now, at)),
        }
    }

    #[test]
    fn folds_within_the_window_and_counts_into_the_next_row() {
        let t = Instant::now();
        let at = Utc::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 10, 10);
        assert_eq!(decide(&mut c, key(), t, at).0, Some(0));
        for i in 1..=5 {
            assert_eq!(
                decide(&mut c, key(), t + Duration::from_secs(i), at).0,
                None
            );
        }
        assert_eq!(
            decide(&mut c, key(), t + Duration::from_secs(61), at).0,
            Some(5)
        );
        // the count went into that row: nothing is held or pending any more
        assert_eq!(c.len(), (1, 0));
        assert!(c.drain().is_empty());
        // another reason is another key
        let mut other = key();
        other.reason = "noncompliant";
        assert_eq!(decide(&mut c, other, t, at).0, Some(0));
    }

    #[test]
    fn a_record_is_built_and_held_only_once_something_is_folded() {
        let t = Instant::now();
        let at = Utc::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 10, 10);
        let mut built = 0;
        assert_eq!(
            c.fold(key(), t, at, || {
                built += 1;
                record(at)
            }),
            Fold::Store { repeats: 0 }
        );
        c.stored(key(), t, at);
        assert_eq!((built, c.len()), (0, (1, 0)));
        for _ in 0..3 {
            c.fold(key(), t, at, || {
                built += 1;
                record(at)
            });
        }
        assert_eq!((built, c.len()), (1, (1, 1)));
    }

    #[test]
    fn pending_counts_are_written_at_drain() {
        let t = Instant::now();
        let at = Utc::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 10, 10);
        decide(&mut c, key(), t, at);
        let later = at + chrono::Duration::seconds(3);
        for _ in 0..3 {
            decide(&mut c, key(), t + Duration::from_secs(3), later);
        }
        let rows = c.drain();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].at, later);
        // the drained row is the third folded decision; two more were folded into it
        assert_eq!(rows[0].repeats, 2);
        assert!(c.drain().is_empty());
        assert_eq!(c.len(), (0, 0));
    }

    #[test]
    fn sweep_writes_pending_counts_after_the_window_and_forgets() {
        let t = Instant::now();
        let at = Utc::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 10, 10);
        decide(&mut c, key(), t, at);
        decide(&mut c, key(), t + Duration::from_secs(1), at);
        assert!(c.sweep(t + Duration::from_secs(30)).is_empty());
        let rows = c.sweep(t + Duration::from_secs(61));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].repeats, 0);
        assert_eq!(c.len(), (0, 0));
        // forgotten: the next identical decision is stored at once, with no count
        assert_eq!(
            decide(&mut c, key(), t + Duration::from_secs(62), at).0,
            Some(0)
        );
    }

    #[test]
    fn zero_window_stores_everything() {
        let t = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO, 10, 10);
        for _ in 0..3 {
            assert_eq!(decide(&mut c, key(), t, Utc::now()).0, Some(0));
        }
        assert_eq!(c.len(), (0, 0));
    }

    #[test]
    fn when_full_the_oldest_key_goes_first_with_its_count() {
        let t = Instant::now();
        let at = Utc::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 2, 10);
        for n in 0..2 {
            let now = t + Duration::from_secs(u64::from(n));
            decide(&mut c, key_n(n), now, at);
            decide(&mut c, key_n(n), now, at); // one pending each
        }
        let (stored, flushed) = decide(&mut c, key_n(9), t + Duration::from_secs(2), at);
        assert_eq!(stored, Some(0));
        // only the oldest had to go, and its count with it
        assert_eq!(flushed.len(), 1);
        assert_eq!(c.len(), (2, 1));
        // the second key still folds
        assert_eq!(
            decide(&mut c, key_n(1), t + Duration::from_secs(3), at).0,
            None
        );
    }

    #[test]
    fn when_no_record_may_be_held_decisions_are_stored_and_memory_stays_bounded() {
        let t = Instant::now();
        let at = Utc::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 1_000, 1);
        decide(&mut c, key_n(0), t, at);
        decide(&mut c, key_n(0), t, at); // holds the one record
        decide(&mut c, key_n(1), t, at);
        for _ in 0..10_000 {
            assert_eq!(decide(&mut c, key_n(1), t, at).0, Some(0));
        }
        assert_eq!(c.len(), (2, 1));
        // re-storing within the window does not grow the expiry queue
        assert!(c.order.len() <= 2);
        let rows = c.sweep(t + Duration::from_secs(60));
        assert_eq!(rows.len(), 1);
        assert_eq!(c.len(), (0, 0));
    }

    #[test]
    fn a_key_stored_again_after_its_window_is_not_expired_by_its_old_queue_entry() {
        let t = Instant::now();
        let at = Utc::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 10, 10);
        decide(&mut c, key(), t, at);
        let t1 = t + Duration::from_secs(70);
        assert_eq!(decide(&mut c, key(), t1, at).0, Some(0));
        decide(&mut c, key(), t1, at);
        // the first pair is stale: the key (stored at t1) stays
        assert!(c.sweep(t1 + Duration::from_secs(1)).is_empty());
        assert_eq!(c.len(), (1, 1));
        assert_eq!(c.sweep(t1 + Duration::from_secs(60)).len(), 1);
    }
}
