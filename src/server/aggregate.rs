//! Counting decisions about requests that named no registered device (an unknown MAC, a
//! registration answer, a refused handshake) instead of storing a row for each: one count per
//! client, access point, method, outcome, reason and wall-clock minute, with the first
//! [`AGGREGATE_SAMPLE`] distinct MACs, written once its minute is over. A flood of never-seen
//! MACs (a misbehaving access point, randomized or spoofed addresses) then costs a fixed amount
//! of memory and a bounded number of rows per minute, whatever its rate. Pure: the wall clock
//! is passed in (rows are per wall-clock minute).
//!
//! Bounds: at most `max_keys` keys with their own access point at once; beyond that a
//! request counts under its client's [`Ap::Other`] key (the access point is the one part
//! of the key a NAS chooses freely: NAS-IP-Address). Other keys are few (clients × methods ×
//! outcomes × reasons), and should they ever reach `max_keys` more, everything counted is
//! written out early rather than held.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::activity::AGGREGATE_SAMPLE;
use crate::mac::MacAddr;

/// The longest example message kept per key, in characters.
const MESSAGE_CHARS: usize = 160;

/// The access point a request came through, or the overflow row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ap {
    /// NAS-IP-Address, else the source address.
    Addr(IpAddr),
    /// Too many access points at once: counted together per client.
    Other,
}

/// What a count is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// Client index.
    pub client: usize,
    /// The access point.
    pub ap: Ap,
    /// `mab` or `eap-tls`.
    pub method: &'static str,
    /// Accepted (registration VLAN) or not.
    pub accept: bool,
    /// Reason code.
    pub reason: &'static str,
}

#[derive(Debug)]
struct Count {
    minute: DateTime<Utc>,
    count: u64,
    macs: Vec<MacAddr>,
    message: String,
}

/// One key's count for one minute, to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    /// What was counted.
    pub key: Key,
    /// The start of the minute.
    pub minute: DateTime<Utc>,
    /// Requests.
    pub count: u64,
    /// The first distinct MACs.
    pub macs: Vec<MacAddr>,
    /// The first decision's message.
    pub message: String,
}

/// The counts of the current minute, bounded in keys.
#[derive(Debug)]
pub struct Aggregator {
    max_keys: usize,
    counts: HashMap<Key, Count>,
}

/// The start of the minute `at` falls in.
pub fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp().div_euclid(60) * 60, 0).unwrap_or(at)
}

impl Aggregator {
    /// At most `max_keys` access-point keys at once (and as many overflow keys).
    pub fn new(max_keys: usize) -> Self {
        Aggregator {
            max_keys: max_keys.max(1),
            counts: HashMap::new(),
        }
    }

    /// Counts one decision taken at `at`. Returns rows that are complete: the key's previous
    /// minute, or everything when even the overflow keys are full.
    pub fn count(
        &mut self,
        key: Key,
        mac: Option<MacAddr>,
        message: &str,
        at: DateTime<Utc>,
    ) -> Vec<Tally> {
        let minute = minute_of(at);
        let key = if self.counts.len() < self.max_keys || self.counts.contains_key(&key) {
            key
        } else {
            Key {
                ap: Ap::Other,
                ..key
            }
        };
        let mut done = Vec::new();
        if let Some(c) = self.counts.get_mut(&key) {
            if c.minute == minute {
                c.count += 1;
                if let Some(mac) = mac {
                    if c.macs.len() < AGGREGATE_SAMPLE && !c.macs.contains(&mac) {
                        c.macs.push(mac);
                    }
                }
                return done;
            }
            // the key's minute is over (the sweep had not come yet): write it, start anew
            if let Some(old) = self.counts.remove(&key) {
                done.push(tally(key, old));
            }
        } else if self.counts.len() >= 2 * self.max_keys {
            done = self.drain();
        }
        self.counts.insert(
            key,
            Count {
                minute,
                count: 1,
                macs: mac.into_iter().collect(),
                message: message.chars().take(MESSAGE_CHARS).collect(),
            },
        );
        done
    }

    /// Rows for every minute that is over at `now`; called every second, so a count reaches
    /// the log within a second of its minute's end.
    pub fn sweep(&mut self, now: DateTime<Utc>) -> Vec<Tally> {
        let current = minute_of(now);
        if self.counts.values().all(|c| c.minute == current) {
            return Vec::new();
        }
        let (done, keep): (HashMap<Key, Count>, HashMap<Key, Count>) =
            self.counts.drain().partition(|(_, c)| c.minute != current);
        self.counts = keep;
        done.into_iter().map(|(k, c)| tally(k, c)).collect()
    }

    /// Rows for everything counted (shutdown).
    pub fn drain(&mut self) -> Vec<Tally> {
        self.counts.drain().map(|(k, c)| tally(k, c)).collect()
    }

    /// Keys counted now.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

fn tally(key: Key, c: Count) -> Tally {
    Tally {
        key,
        minute: c.minute,
        count: c.count,
        macs: c.macs,
        message: c.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key(ap: u8) -> Key {
        Key {
            client: 0,
            ap: Ap::Addr(IpAddr::from([10, 0, 0, ap])),
            method: "mab",
            accept: false,
            reason: "unknown_device",
        }
    }

    fn mac(n: u32) -> MacAddr {
        let b = n.to_be_bytes();
        MacAddr::parse_any(&format!(
            "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3]
        ))
        .expect("mac")
    }

    fn t(min: u32, sec: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 10, min, sec)
            .single()
            .expect("time")
    }

    #[test]
    fn one_row_per_key_and_minute_with_a_bounded_sample() {
        let mut a = Aggregator::new(16);
        for n in 0..1_000 {
            assert!(a
                .count(
                    key(1),
                    Some(mac(n)),
                    "rejected: not registered",
                    t(0, n % 60)
                )
                .is_empty());
        }
        // the same MAC again is counted, not sampled twice
        a.count(key(1), Some(mac(0)), "x", t(0, 59));
        assert_eq!(a.len(), 1);
        assert!(a.sweep(t(0, 59)).is_empty());
        let rows = a.sweep(t(1, 0));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].count, 1_001);
        assert_eq!(rows[0].minute, t(0, 0));
        assert_eq!(rows[0].macs.len(), AGGREGATE_SAMPLE);
        assert_eq!(rows[0].macs[..2], [mac(0), mac(1)]);
        assert_eq!(rows[0].message, "rejected: not registered");
        assert!(a.is_empty());
    }

    #[test]
    fn a_new_minute_writes_the_previous_one_before_the_sweep() {
        let mut a = Aggregator::new(16);
        a.count(key(1), Some(mac(1)), "m", t(0, 10));
        a.count(key(1), Some(mac(2)), "m", t(0, 20));
        let done = a.count(key(1), Some(mac(3)), "m", t(1, 5));
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].minute, done[0].count), (t(0, 0), 2));
        let rest = a.drain();
        assert_eq!((rest[0].minute, rest[0].count), (t(1, 0), 1));
        assert_eq!(rest[0].macs, vec![mac(3)]);
    }

    #[test]
    fn access_points_beyond_the_bound_share_one_other_row_per_client() {
        let mut a = Aggregator::new(4);
        for ap in 0..200u8 {
            assert!(a
                .count(key(ap), Some(mac(u32::from(ap))), "m", t(0, 0))
                .is_empty());
        }
        // four access points of their own, and the other row for the rest
        assert_eq!(a.len(), 5);
        let rows = a.sweep(t(1, 0));
        let other = rows.iter().find(|r| r.key.ap == Ap::Other).expect("other");
        assert_eq!(other.count, 196);
        assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), 200);
        // a new minute: room again for access points of their own
        a.count(key(9), None, "m", t(1, 1));
        assert_eq!(a.drain()[0].key, key(9));
    }

    #[test]
    fn bounded_in_keys_even_when_other_keys_pile_up() {
        let mut a = Aggregator::new(2);
        let mut written = 0;
        for client in 0..50 {
            let k = Key { client, ..key(1) };
            written += a
                .count(k, None, "m", t(0, 0))
                .iter()
                .map(|r| r.count)
                .sum::<u64>();
            assert!(a.len() <= 4);
        }
        written += a.drain().iter().map(|r| r.count).sum::<u64>();
        assert_eq!(written, 50);
    }
}
