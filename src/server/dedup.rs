//! Duplicate detection (RFC 5080 §2.2.2): a retransmitted request (same client, source
//! address and port, identifier and authenticator) within the window gets the cached reply
//! instead of a second decision. Pure: the clock is passed in.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What identifies one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// Source address and port.
    pub src: SocketAddr,
    /// Code (authentication and accounting requests never share a key).
    pub code: u8,
    /// Identifier.
    pub id: u8,
    /// Request Authenticator.
    pub authenticator: [u8; 16],
}

impl Key {
    /// The key of a request received from `src`.
    pub fn of(src: SocketAddr, p: &crate::radius::Packet<'_>) -> Key {
        Key {
            src,
            code: p.code(),
            id: p.identifier(),
            authenticator: p.authenticator(),
        }
    }
}

/// What the cache knows of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// New: now marked in progress.
    New,
    /// Seen, still being answered: drop the copy.
    InProgress,
    /// Answered: send this again.
    Answered(Vec<u8>),
}

/// The reply cache, bounded in time and in entries.
#[derive(Debug)]
pub struct DedupCache {
    window: Duration,
    max_entries: usize,
    entries: HashMap<Key, (Instant, Option<Vec<u8>>)>,
    order: VecDeque<(Instant, Key)>,
}

impl DedupCache {
    /// A cache keeping replies for `window`, at most `max_entries` requests.
    pub fn new(window: Duration, max_entries: usize) -> Self {
        DedupCache {
            window,
            max_entries: max_entries.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, key)) = self.order.front().copied() {
            let too_old = now.saturating_duration_since(at) >= self.window;
            if too_old || self.order.len() > self.max_entries {
                self.order.pop_front();
                // a key forgotten and seen again has a newer entry: leave that one
                if self.entries.get(&key).is_some_and(|(t, _)| *t == at) {
                    self.entries.remove(&key);
                }
            } else {
                break;
            }
        }
    }

    /// Looks a request up; a new one is recorded as in progress.
    pub fn check(&mut self, key: Key, now: Instant) -> Seen {
        self.expire(now);
        if self.window.is_zero() {
            return Seen::New;
        }
        match self.entries.get(&key) {
            Some((_, Some(reply))) => Seen::Answered(reply.clone()),
            Some((_, None)) => Seen::InProgress,
            None => {
                self.entries.insert(key, (now, None));
                self.order.push_back((now, key));
                Seen::New
            }
        }
    }

    /// Stores the reply to a request marked by [`DedupCache::check`].
    pub fn answered(&mut self, key: &Key, reply: Vec<u8>) {
        if let Some((_, slot)) = self.entries.get_mut(key) {
            *slot = Some(reply);
        }
    }

    /// Forgets a request that got no answer (dropped later), so a retransmission is processed.
    pub fn forget(&mut self, key: &Key) {
        self.entries.remove(key);
    }

    /// Requests remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8) -> Key {
        Key {
            src: "127.0.0.1:5000".parse().expect("addr"),
            code: 1,
            id,
            authenticator: [id; 16],
        }
    }

    #[test]
    fn retransmission_gets_the_same_reply_within_the_window() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::from_secs(5), 100);
        assert_eq!(c.check(key(1), t0), Seen::New);
        assert_eq!(c.check(key(1), t0), Seen::InProgress);
        c.answered(&key(1), b"reply".to_vec());
        assert_eq!(
            c.check(key(1), t0 + Duration::from_secs(4)),
            Seen::Answered(b"reply".to_vec())
        );
        // another identifier is another request
        assert_eq!(c.check(key(2), t0), Seen::New);
        // after the window it is new again
        assert_eq!(c.check(key(1), t0 + Duration::from_secs(6)), Seen::New);
    }

    #[test]
    fn bounded_in_entries_and_forget() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::from_secs(5), 3);
        for id in 0..10 {
            c.check(key(id), t0);
        }
        assert!(c.len() <= 4);
        c.forget(&key(9));
        assert_eq!(c.check(key(9), t0), Seen::New);
    }

    #[test]
    fn a_forgotten_key_seen_again_is_not_expired_by_its_old_entry() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::from_secs(5), 100);
        c.check(key(1), t0);
        c.forget(&key(1));
        let t1 = t0 + Duration::from_secs(4);
        assert_eq!(c.check(key(1), t1), Seen::New);
        c.answered(&key(1), b"r".to_vec());
        // the first entry's time has passed; the second's has not
        assert_eq!(
            c.check(key(1), t0 + Duration::from_secs(6)),
            Seen::Answered(b"r".to_vec())
        );
    }

    #[test]
    fn zero_window_disables() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::ZERO, 3);
        assert_eq!(c.check(key(1), t0), Seen::New);
        assert_eq!(c.check(key(1), t0), Seen::New);
        assert!(c.is_empty());
    }
}
