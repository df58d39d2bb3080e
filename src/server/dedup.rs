//! Duplicate detection (RFC 5080 §2.2.2): a retransmitted request (same client, source
//! address and port, identifier and authenticator) within the window gets the cached reply
//! instead of a second decision. Pure: the clock is passed in.
//!
//! Bounded in bytes as well as in time: at most `max_entries` requests (each costs about
//! [`ENTRY_BYTES`] in the hash table and the expiry queue) and `max_reply_bytes` of cached
//! replies. A flood fills the cache up to its bound and then forgets the oldest requests
//! early, as it would after the window: a retransmission of one of those is decided again.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What one remembered request costs besides its reply, in bytes: its slot in the hash table
/// (kept at most 7/8 full, so up to twice the slots in use) and its pair in the expiry queue.
pub const ENTRY_BYTES: usize = 2 * (std::mem::size_of::<Key>() + std::mem::size_of::<Value>() + 1)
    + std::mem::size_of::<(Instant, Key)>();

type Value = (Instant, Option<Box<[u8]>>);

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

/// The reply cache, bounded in time, in entries and in reply bytes.
#[derive(Debug)]
pub struct DedupCache {
    window: Duration,
    max_entries: usize,
    max_reply_bytes: usize,
    reply_bytes: usize,
    entries: HashMap<Key, Value>,
    order: VecDeque<(Instant, Key)>,
}

impl DedupCache {
    /// A cache keeping replies for `window`, at most `max_entries` requests and
    /// `max_reply_bytes` of replies.
    pub fn new(window: Duration, max_entries: usize, max_reply_bytes: usize) -> Self {
        DedupCache {
            window,
            max_entries: max_entries.max(1),
            max_reply_bytes,
            reply_bytes: 0,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, key)) = self.order.front().copied() {
            let too_old = now.saturating_duration_since(at) >= self.window;
            if too_old
                || self.order.len() > self.max_entries
                || self.reply_bytes > self.max_reply_bytes
            {
                self.order.pop_front();
                // a key forgotten and seen again has a newer entry: leave that one
                if self.entries.get(&key).is_some_and(|(t, _)| *t == at) {
                    self.remove(&key);
                }
            } else {
                break;
            }
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some((_, Some(reply))) = self.entries.remove(key) {
            self.reply_bytes -= reply.len();
        }
    }

    /// Looks a request up; a new one is recorded as in progress.
    pub fn check(&mut self, key: Key, now: Instant) -> Seen {
        self.expire(now);
        if self.window.is_zero() {
            return Seen::New;
        }
        match self.entries.get(&key) {
            Some((_, Some(reply))) => Seen::Answered(reply.to_vec()),
            Some((_, None)) => Seen::InProgress,
            None => {
                self.entries.insert(key, (now, None));
                self.order.push_back((now, key));
                Seen::New
            }
        }
    }

    /// Stores the reply to a request marked by [`DedupCache::check`].
    pub fn answered(&mut self, key: &Key, reply: &[u8]) {
        if let Some((_, slot)) = self.entries.get_mut(key) {
            self.reply_bytes += reply.len();
            if let Some(old) = slot.replace(reply.into()) {
                self.reply_bytes -= old.len();
            }
        }
    }

    /// Drops what has expired even when no request comes (after a flood the cache would keep
    /// its last 65,536 requests until traffic returns), and gives back the table's memory once
    /// it is mostly empty.
    pub fn sweep(&mut self, now: Instant) {
        self.expire(now);
        if self.entries.capacity() > 4 * self.entries.len().max(1_024) {
            self.entries.shrink_to_fit();
            self.order.shrink_to_fit();
        }
    }

    /// Forgets a request that got no answer (dropped later), so a retransmission is processed.
    pub fn forget(&mut self, key: &Key) {
        self.remove(key);
    }

    /// Requests remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of replies held.
    pub fn reply_bytes(&self) -> usize {
        self.reply_bytes
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
        let mut c = DedupCache::new(Duration::from_secs(5), 100, 1 << 20);
        assert_eq!(c.check(key(1), t0), Seen::New);
        assert_eq!(c.check(key(1), t0), Seen::InProgress);
        c.answered(&key(1), b"reply");
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
        let mut c = DedupCache::new(Duration::from_secs(5), 3, 1 << 20);
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
        let mut c = DedupCache::new(Duration::from_secs(5), 100, 1 << 20);
        c.check(key(1), t0);
        c.forget(&key(1));
        let t1 = t0 + Duration::from_secs(4);
        assert_eq!(c.check(key(1), t1), Seen::New);
        c.answered(&key(1), b"r");
        // the first entry's time has passed; the second's has not
        assert_eq!(
            c.check(key(1), t0 + Duration::from_secs(6)),
            Seen::Answered(b"r".to_vec())
        );
    }

    #[test]
    fn bounded_in_reply_bytes() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::from_secs(5), 1_000, 100);
        for id in 0..50 {
            c.check(key(id), t0);
            c.answered(&key(id), &[0; 20]);
        }
        // the oldest replies were forgotten as the newest came in: at most one over
        assert!(c.reply_bytes() <= 120, "{}", c.reply_bytes());
        assert_eq!(c.check(key(49), t0), Seen::Answered(vec![0; 20]));
        assert_eq!(c.check(key(0), t0), Seen::New);
        for id in 0..50 {
            c.forget(&key(id));
        }
        assert_eq!(c.reply_bytes(), 0);
    }

    #[test]
    fn zero_window_disables() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::ZERO, 3, 1 << 20);
        assert_eq!(c.check(key(1), t0), Seen::New);
        assert_eq!(c.check(key(1), t0), Seen::New);
        assert!(c.is_empty());
    }

    fn key_n(n: u32) -> Key {
        let mut authenticator = [0u8; 16];
        authenticator[..4].copy_from_slice(&n.to_be_bytes());
        Key {
            src: "127.0.0.1:5000".parse().expect("addr"),
            code: 1,
            id: 0,
            authenticator,
        }
    }

    #[test]
    fn a_sweep_expires_without_traffic_and_gives_memory_back() {
        let mut c = DedupCache::new(Duration::from_secs(5), 100_000, 1 << 20);
        let t = Instant::now();
        for n in 0..50_000u32 {
            let k = key_n(n);
            assert_eq!(c.check(k, t), Seen::New);
            c.answered(&k, b"reply");
        }
        assert_eq!(c.len(), 50_000);
        let big = c.entries.capacity();
        c.sweep(t + Duration::from_secs(4));
        assert_eq!(c.len(), 50_000);
        c.sweep(t + Duration::from_secs(6));
        assert!(c.is_empty());
        assert_eq!(c.reply_bytes(), 0);
        assert!(c.entries.capacity() < big);
    }
}
