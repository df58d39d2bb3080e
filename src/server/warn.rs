//! Rate-limited warnings about misconfigured access points (a wrong shared secret, an
//! unknown source address): one line per source and kind per interval, with how many were
//! not logged since; a bounded table, so that a flood from many addresses cannot grow
//! memory (beyond the bound, the rest share one line). Clock passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What was wrong with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Misconfig {
    /// No `[[radius.clients]]` network covers the source address.
    UnknownSource,
    /// The Message-Authenticator or the authenticator does not verify with the client's
    /// secret(s).
    WrongSecret,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    logged: Instant,
    suppressed: u64,
}

/// Decides which warnings are logged.
#[derive(Debug)]
pub struct Warnings {
    every: Duration,
    max: usize,
    /// `None` as the address: the sources beyond `max`, together.
    table: HashMap<(Option<IpAddr>, Misconfig), Entry>,
}

impl Warnings {
    /// At most one line per source and kind per `every`; at most `max` sources held.
    pub fn new(every: Duration, max: usize) -> Warnings {
        Warnings {
            every,
            max: max.max(1),
            table: HashMap::new(),
        }
    }

    /// One more `kind` from `src`: `Some(suppressed)` when a line is to be logged now, with
    /// how many were not logged since the last one (for `None` sources: others beyond the
    /// table). `Some((false, n))`: for this source; `Some((true, n))`: for the overflow.
    pub fn hit(&mut self, src: IpAddr, kind: Misconfig, now: Instant) -> Option<(bool, u64)> {
        let mut key = (Some(src), kind);
        if !self.table.contains_key(&key) && self.table.len() >= self.max {
            // forget sources quiet for a whole interval before sharing the overflow line
            let every = self.every;
            self.table
                .retain(|_, e| now.saturating_duration_since(e.logged) < every);
            if self.table.len() >= self.max {
                key = (None, kind);
            }
        }
        let overflow = key.0.is_none();
        match self.table.get_mut(&key) {
            Some(e) if now.saturating_duration_since(e.logged) < self.every => {
                e.suppressed += 1;
                None
            }
            Some(e) => {
                let n = e.suppressed;
                *e = Entry {
                    logged: now,
                    suppressed: 0,
                };
                Some((overflow, n))
            }
            None => {
                self.table.insert(
                    key,
                    Entry {
                        logged: now,
                        suppressed: 0,
                    },
                );
                Some((overflow, 0))
            }
        }
    }

    /// Sources held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn one_line_per_source_per_interval_with_the_count() {
        let mut w = Warnings::new(Duration::from_secs(60), 16);
        let t0 = Instant::now();
        assert_eq!(w.hit(ip(1), Misconfig::WrongSecret, t0), Some((false, 0)));
        for s in 1..=5 {
            assert_eq!(
                w.hit(ip(1), Misconfig::WrongSecret, t0 + Duration::from_secs(s)),
                None
            );
        }
        // another kind and another source log on their own
        assert_eq!(w.hit(ip(1), Misconfig::UnknownSource, t0), Some((false, 0)));
        assert_eq!(w.hit(ip(2), Misconfig::WrongSecret, t0), Some((false, 0)));
        assert_eq!(
            w.hit(ip(1), Misconfig::WrongSecret, t0 + Duration::from_secs(61)),
            Some((false, 5))
        );
    }

    #[test]
    fn a_flood_from_many_sources_stays_bounded() {
        let mut w = Warnings::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let mut lines = 0;
        for n in 0..100_000 {
            if w.hit(ip(n), Misconfig::UnknownSource, t0).is_some() {
                lines += 1;
            }
        }
        // 100 sources and one overflow line
        assert_eq!(lines, 101);
        assert!(w.len() <= 101, "{}", w.len());
        // a minute later the quiet ones are forgotten and new sources are named again
        let later = t0 + Duration::from_secs(61);
        assert_eq!(
            w.hit(ip(200_000), Misconfig::UnknownSource, later),
            Some((false, 0))
        );
        assert!(w.len() <= 101);
    }
}
