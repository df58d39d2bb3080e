//! Whether the registry database can be read, as the request path sees it. A failed or
//! timed-out read turns the node *degraded*: from then on a request whose cached data is not
//! fresh is decided at once on last-known-good data (`cache.stale_grace`) instead of waiting
//! for a database that is known to be away; the registry watcher probes the database and
//! ends the degraded state when a read succeeds again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::sync::lock;

/// Since when, and why, the registry cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// When the first failure was seen (wall clock, for people).
    pub since: DateTime<Utc>,
    /// The same on the monotonic clock.
    pub since_mono: Instant,
    /// The first error, in words (no secrets: database errors carry no password).
    pub why: String,
}

/// The registry's reachability, shared by the request path, the watcher and the API.
#[derive(Debug, Default)]
pub struct StoreHealth {
    degraded: AtomicBool,
    outage: Mutex<Option<Outage>>,
}

impl StoreHealth {
    /// A read failed. True when this starts an outage (log it once).
    pub fn failed(&self, why: &str, now: Instant, wall: DateTime<Utc>) -> bool {
        let mut outage = lock(&self.outage);
        if outage.is_some() {
            return false;
        }
        *outage = Some(Outage {
            since: wall,
            since_mono: now,
            why: why.to_string(),
        });
        self.degraded.store(true, Ordering::Release);
        true
    }

    /// A read succeeded again: the outage it ends, if there was one.
    pub fn recovered(&self) -> Option<Outage> {
        let mut outage = lock(&self.outage);
        self.degraded.store(false, Ordering::Release);
        outage.take()
    }

    /// Whether requests are decided on last-known-good data now (one atomic load: the hot
    /// path asks on every cache miss).
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// The current outage.
    pub fn outage(&self) -> Option<Outage> {
        lock(&self.outage).clone()
    }

    /// How long the current outage has lasted.
    pub fn down_for(&self, now: Instant) -> Option<Duration> {
        lock(&self.outage)
            .as_ref()
            .map(|o| now.saturating_duration_since(o.since_mono))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_starts_once_and_ends_at_recovery() {
        let h = StoreHealth::default();
        let t = Instant::now();
        assert!(!h.is_degraded());
        assert!(h.failed("connection refused", t, Utc::now()));
        assert!(!h.failed("again", t + Duration::from_secs(1), Utc::now()));
        assert!(h.is_degraded());
        assert_eq!(h.outage().map(|o| o.why), Some("connection refused".into()));
        assert_eq!(
            h.down_for(t + Duration::from_secs(5)),
            Some(Duration::from_secs(5))
        );
        assert!(h.recovered().is_some());
        assert!(!h.is_degraded());
        assert!(h.recovered().is_none());
    }
}
