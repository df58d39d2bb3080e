//! The table of unfinished EAP conversations, keyed by the RADIUS State attribute: bounded in
//! size (the least recently active conversation goes first) and in time (idle ones expire).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The State value that ties the rounds of one conversation together.
pub type StateKey = [u8; 16];

/// Who may continue a conversation: the RADIUS client entry and the source address the
/// conversation started from (one client entry often covers a whole range of APs).
pub type Peer = (usize, IpAddr);

struct Slot<T> {
    /// `None` while a request of the conversation is being answered.
    value: Option<T>,
    peer: Peer,
    touched: Instant,
    seq: u64,
}

/// Why a conversation could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeError {
    /// No such State: expired, evicted, finished, or never sent.
    Unknown,
    /// A request of this conversation is being answered right now.
    Busy,
    /// The State belongs to a conversation of another RADIUS client or access point.
    OtherPeer,
}

/// Conversations by State. A conversation is taken out while a request of it is answered
/// (its slot stays, marked busy) and put back or removed after, so the lock is never held
/// during a handshake step.
pub struct Table<T> {
    slots: HashMap<StateKey, Slot<T>>,
    /// (key, seq) in the order they were touched; stale pairs are skipped lazily.
    order: VecDeque<(StateKey, u64)>,
    seq: u64,
    max: usize,
    timeout: Duration,
    evicted: u64,
    expired: u64,
}

impl<T> Table<T> {
    /// A table of at most `max` conversations, each dropped after `timeout` without a round.
    pub fn new(max: usize, timeout: Duration) -> Table<T> {
        Table {
            slots: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
            max: max.max(1),
            timeout,
            evicted: 0,
            expired: 0,
        }
    }

    /// Conversations held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Conversations dropped to make room, and dropped for idling, since the start.
    pub fn dropped(&self) -> (u64, u64) {
        (self.evicted, self.expired)
    }

    /// Stores a conversation under `key` for `peer` at `now`, expiring idle ones and, when
    /// full, dropping the least recently active one.
    pub fn put(&mut self, key: StateKey, peer: Peer, value: T, now: Instant) {
        self.sweep(now);
        while self.slots.len() >= self.max && !self.slots.contains_key(&key) {
            if !self.pop_oldest() {
                break;
            }
        }
        self.seq += 1;
        let seq = self.seq;
        self.slots.insert(
            key,
            Slot {
                value: Some(value),
                peer,
                touched: now,
                seq,
            },
        );
        self.order.push_back((key, seq));
        // the order queue holds at most one live entry per slot; compact when stale ones pile up
        if self.order.len() > 2 * self.slots.len() + 64 {
            let slots = &self.slots;
            self.order
                .retain(|(k, s)| slots.get(k).is_some_and(|slot| slot.seq == *s));
        }
    }

    /// Takes the conversation of `key` out for `peer`; its slot stays, busy, until
    /// [`Table::put`] or [`Table::remove`].
    pub fn take(&mut self, key: &StateKey, peer: Peer, now: Instant) -> Result<T, TakeError> {
        self.sweep(now);
        match self.slots.get_mut(key) {
            None => Err(TakeError::Unknown),
            Some(slot) if slot.peer != peer => Err(TakeError::OtherPeer),
            Some(slot) => slot.value.take().ok_or(TakeError::Busy),
        }
    }

    /// Forgets a conversation (finished, or replaced by a new one).
    pub fn remove(&mut self, key: &StateKey) {
        self.slots.remove(key);
    }

    /// Drops conversations idle for longer than the timeout.
    pub fn sweep(&mut self, now: Instant) {
        while let Some(&(key, seq)) = self.order.front() {
            let live = self.slots.get(&key).filter(|s| s.seq == seq);
            match live {
                None => {
                    self.order.pop_front();
                }
                Some(slot) if now.saturating_duration_since(slot.touched) >= self.timeout => {
                    self.order.pop_front();
                    self.slots.remove(&key);
                    self.expired += 1;
                }
                Some(_) => break,
            }
        }
    }

    fn pop_oldest(&mut self) -> bool {
        while let Some((key, seq)) = self.order.pop_front() {
            if self.slots.get(&key).is_some_and(|s| s.seq == seq) {
                self.slots.remove(&key);
                self.evicted += 1;
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> StateKey {
        [n; 16]
    }

    const P: Peer = (0, IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    fn peer(client: usize, last: u8) -> Peer {
        (client, IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn bounded_by_size_least_recent_first() {
        let t0 = Instant::now();
        let mut t: Table<u32> = Table::new(3, Duration::from_secs(30));
        for n in 0..3 {
            t.put(k(n), P, u32::from(n), t0);
        }
        // conversation 0 has a round: it becomes the most recent
        let v = t.take(&k(0), P, t0).unwrap();
        t.put(k(0), P, v, t0 + Duration::from_millis(1));
        t.put(k(9), P, 9, t0 + Duration::from_millis(2));
        assert_eq!(t.len(), 3);
        assert_eq!(t.take(&k(1), P, t0), Err(TakeError::Unknown));
        assert!(t.take(&k(0), P, t0).is_ok());
        assert_eq!(t.dropped(), (1, 0));
    }

    #[test]
    fn idle_conversations_expire() {
        let t0 = Instant::now();
        let mut t: Table<u32> = Table::new(100, Duration::from_secs(30));
        t.put(k(1), P, 1, t0);
        t.put(k(2), P, 2, t0 + Duration::from_secs(20));
        t.sweep(t0 + Duration::from_secs(31));
        assert_eq!(t.len(), 1);
        assert_eq!(t.take(&k(2), P, t0 + Duration::from_secs(31)), Ok(2));
        assert_eq!(t.dropped(), (0, 1));
    }

    #[test]
    fn a_state_works_only_for_its_peer_and_one_request_at_a_time() {
        let t0 = Instant::now();
        let mut t: Table<u32> = Table::new(10, Duration::from_secs(30));
        t.put(k(1), peer(4, 1), 1, t0);
        assert_eq!(t.take(&k(1), peer(5, 1), t0), Err(TakeError::OtherPeer));
        assert_eq!(t.take(&k(1), peer(4, 2), t0), Err(TakeError::OtherPeer));
        assert_eq!(t.take(&k(1), peer(4, 1), t0), Ok(1));
        // being answered: a second request with the same State waits its turn
        assert_eq!(t.take(&k(1), peer(4, 1), t0), Err(TakeError::Busy));
        t.put(k(1), peer(4, 1), 2, t0);
        assert_eq!(t.take(&k(1), peer(4, 1), t0), Ok(2));
        t.remove(&k(1));
        assert_eq!(t.take(&k(1), peer(4, 1), t0), Err(TakeError::Unknown));
    }

    #[test]
    fn a_thousand_abandoned_leave_room_and_memory_bounded() {
        let t0 = Instant::now();
        let mut t: Table<Vec<u8>> = Table::new(100, Duration::from_secs(30));
        for i in 0..1000u32 {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&i.to_be_bytes());
            t.put(key, P, vec![0; 10], t0);
        }
        assert_eq!(t.len(), 100);
        assert!(t.order.len() <= 2 * 100 + 64);
        // a live conversation still gets its place
        t.put(k(0xee), P, vec![], t0);
        assert!(t.take(&k(0xee), P, t0).is_ok());
    }
}
