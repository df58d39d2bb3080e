//! Whether the RADIUS listeners make progress: each listener thread beats once per turn of its
//! loop (at least every receive timeout, 100 ms, when idle), and a listener whose last beat is
//! older than a bound is stalled. The health endpoint answers 503 naming it, and the systemd
//! watchdog is fed only while no listener is stalled, so a hung server is restarted. The clock
//! is passed in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A listener without a beat for this long is stalled (fifty receive timeouts).
pub const STALL_AFTER: Duration = Duration::from_secs(5);

/// The listeners, in the order of [`Liveness::beat`]'s index.
pub const LISTENERS: [&str; 2] = ["radius-auth", "radius-acct"];

/// The last beat of each listener, as milliseconds since `origin`.
#[derive(Debug)]
pub struct Liveness {
    origin: Instant,
    beats: [AtomicU64; 2],
}

/// A listener that stopped beating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// Its thread's name (`radius-auth`, `radius-acct`).
    pub listener: &'static str,
    /// Since its last beat.
    pub silent_for: Duration,
}

impl Liveness {
    /// Every listener counts as having beaten at `now`.
    pub fn new(now: Instant) -> Liveness {
        Liveness {
            origin: now,
            beats: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    /// Listener `index` made progress at `now`.
    pub fn beat(&self, index: usize, now: Instant) {
        if let Some(b) = self.beats.get(index) {
            b.store(self.millis(now), Ordering::Relaxed);
        }
    }

    /// The listeners silent for longer than `bound` at `now`.
    pub fn stalled(&self, now: Instant, bound: Duration) -> Vec<Stall> {
        let at = self.millis(now);
        LISTENERS
            .iter()
            .zip(&self.beats)
            .filter_map(|(name, beat)| {
                let silent_for =
                    Duration::from_millis(at.saturating_sub(beat.load(Ordering::Relaxed)));
                (silent_for > bound).then_some(Stall {
                    listener: name,
                    silent_for,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_without_beats_is_stalled_after_the_bound() {
        let t0 = Instant::now();
        let l = Liveness::new(t0);
        let s = Duration::from_secs;
        assert!(l.stalled(t0 + s(5), STALL_AFTER).is_empty());
        l.beat(0, t0 + s(4));
        let stalled = l.stalled(t0 + s(7), STALL_AFTER);
        assert_eq!(
            stalled,
            vec![Stall {
                listener: "radius-acct",
                silent_for: s(7)
            }]
        );
        l.beat(1, t0 + s(7));
        assert!(l.stalled(t0 + s(8), STALL_AFTER).is_empty());
        // an index past the listeners is ignored, not a panic
        l.beat(9, t0);
    }
}
