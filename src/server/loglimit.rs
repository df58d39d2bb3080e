//! How many decision lines for unknown devices the log gets: the first per MAC in a minute,
//! at most [`LINES_PER_WINDOW`] in all, and a count of the rest once the minute is over. A
//! flood of never-seen MACs must not write a line per request (the decision log in the
//! database counts them per access point and minute, [`super::aggregate`]). Clock passed in.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::mac::MacAddr;

/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Lines at most per window (each MAC at most once).
pub const LINES_PER_WINDOW: usize = 100;

/// A finished window in which lines were held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Lines written in the window.
    pub logged: u64,
    /// Decisions not written.
    pub held: u64,
}

/// The limiter: at most [`LINES_PER_WINDOW`] MACs remembered.
#[derive(Debug)]
pub struct LogLimit {
    window: Duration,
    cap: usize,
    started: Option<Instant>,
    seen: HashSet<MacAddr>,
    logged: u64,
    held: u64,
    /// A window that ended while a decision came in, before the sweep saw it.
    ended: Option<Held>,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new(WINDOW, LINES_PER_WINDOW)
    }
}

impl LogLimit {
    /// At most `cap` lines per `window`.
    pub fn new(window: Duration, cap: usize) -> LogLimit {
        LogLimit {
            window,
            cap,
            started: None,
            seen: HashSet::new(),
            logged: 0,
            held: 0,
            ended: None,
        }
    }

    /// Ends the window if it has passed, keeping its count for [`LogLimit::sweep`].
    fn roll(&mut self, now: Instant) {
        let Some(started) = self.started else { return };
        if now.saturating_duration_since(started) < self.window {
            return;
        }
        if self.held > 0 {
            let prev = self.ended.take().map_or((0, 0), |h| (h.logged, h.held));
            self.ended = Some(Held {
                logged: prev.0 + self.logged,
                held: prev.1 + self.held,
            });
        }
        self.started = None;
        self.seen.clear();
        self.logged = 0;
        self.held = 0;
    }

    /// Whether the decision for `mac` gets its line.
    pub fn admit(&mut self, mac: Option<MacAddr>, now: Instant) -> bool {
        self.roll(now);
        if self.started.is_none() {
            self.started = Some(now);
        }
        let fresh = match mac {
            Some(m) => !self.seen.contains(&m),
            None => true,
        };
        if !fresh || self.seen.len() >= self.cap || self.logged >= self.cap as u64 {
            self.held += 1;
            return false;
        }
        if let Some(m) = mac {
            self.seen.insert(m);
        }
        self.logged += 1;
        true
    }

    /// The count of a window that is over and held lines back, once.
    pub fn sweep(&mut self, now: Instant) -> Option<Held> {
        self.roll(now);
        self.ended.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(i: u32) -> Option<MacAddr> {
        let b = i.to_be_bytes();
        Some(
            MacAddr::parse_any(&format!(
                "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
                b[0], b[1], b[2], b[3]
            ))
            .unwrap(),
        )
    }

    #[test]
    fn one_line_per_mac_per_window() {
        let t0 = Instant::now();
        let mut l = LogLimit::new(Duration::from_secs(60), 100);
        assert!(l.admit(mac(1), t0));
        assert!(!l.admit(mac(1), t0 + Duration::from_secs(1)));
        assert!(!l.admit(mac(1), t0 + Duration::from_secs(59)));
        assert!(l.admit(mac(2), t0 + Duration::from_secs(59)));
        assert_eq!(l.sweep(t0 + Duration::from_secs(59)), None);
        assert_eq!(
            l.sweep(t0 + Duration::from_secs(60)),
            Some(Held { logged: 2, held: 2 })
        );
        assert_eq!(l.sweep(t0 + Duration::from_secs(61)), None, "reported once");
        assert!(
            l.admit(mac(1), t0 + Duration::from_secs(61)),
            "a new window"
        );
        // a window without anything held back is not reported
        assert_eq!(l.sweep(t0 + Duration::from_secs(200)), None);
    }

    #[test]
    fn a_flood_of_new_macs_is_capped_and_counted() {
        let t0 = Instant::now();
        let mut l = LogLimit::new(Duration::from_secs(60), 100);
        let logged = (0..10_000)
            .filter(|i| l.admit(mac(*i), t0 + Duration::from_millis(*i as u64)))
            .count();
        assert_eq!(logged, 100);
        assert!(l.seen.len() <= 100, "memory bounded");
        // the window ends while decisions come in: its count is kept for the sweep
        assert!(l.admit(mac(20_000), t0 + Duration::from_secs(61)));
        assert_eq!(
            l.sweep(t0 + Duration::from_secs(62)),
            Some(Held {
                logged: 100,
                held: 9_900
            })
        );
        // without a MAC, only the cap applies
        let mut l = LogLimit::new(Duration::from_secs(60), 2);
        assert!(l.admit(None, t0));
        assert!(l.admit(None, t0));
        assert!(!l.admit(None, t0));
    }
}
