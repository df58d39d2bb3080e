//! The hot path's copy of registry entries: MAC (MAB) or certificate fingerprint (EAP-TLS) →
//! (device, owner), or "not registered".
//!
//! An entry is *fresh* for `ttl` after it was read, and only while no change that touches it
//! has been seen: a change notice for its device or owner drops it at once (this process, a
//! PostgreSQL notification, or the SQLite change poll). When the registry may have changed
//! unseen (the notification connection was lost), entries are not dropped but marked for a
//! re-read: the next request reads the registry again, and while the registry cannot be read
//! the last data read is still there as *last known good*, for up to `grace` after it was
//! read (degraded mode, `cache.stale_grace`).
//!
//! A generation number keeps a lookup that raced a change from caching what it read before
//! the change. Devices that are registered are bounded by the registry itself; answers "not
//! registered" are what a flood of made-up MACs produces, so they live apart in a
//! fixed-capacity two-generation table (the older half is dropped when the newer fills):
//! at most `2 × negative_capacity` keys whatever arrives.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::mac::MacAddr;
use crate::model::{Device, Owner};

/// A device with its owner.
pub type Subject = Arc<(Device, Owner)>;

#[derive(Debug, Clone)]
struct Entry {
    subject: Option<Subject>,
    /// When the registry was last read for it.
    loaded: Instant,
    /// The cache's epoch at that read: an older epoch means "read again first".
    epoch: u64,
}

/// "Not registered" answers: two generations of bounded maps.
#[derive(Debug)]
struct Negative<K> {
    young: HashMap<K, (Instant, u64)>,
    old: HashMap<K, (Instant, u64)>,
    capacity: usize,
}

impl<K: Hash + Eq> Negative<K> {
    fn get<Q>(&self, key: &Q) -> Option<(Instant, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.young.get(key).or_else(|| self.old.get(key)).copied()
    }

    fn insert(&mut self, key: K, at: Instant, epoch: u64) {
        if self.young.len() >= self.capacity {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, (at, epoch));
    }

    fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.young.remove(key);
        self.old.remove(key);
    }

    fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[derive(Debug)]
struct Maps<K> {
    known: HashMap<K, Entry>,
    unknown: Negative<K>,
}

/// Key → subject, bounded, with invalidation and last-known-good data.
#[derive(Debug)]
pub struct SubjectCache<K = MacAddr> {
    enabled: bool,
    ttl: Duration,
    grace: Duration,
    max_known: usize,
    generation: AtomicU64,
    epoch: AtomicU64,
    maps: RwLock<Maps<K>>,
}

/// Last-known-good data for a key whose fresh copy is missing.
#[derive(Debug, Clone)]
pub struct Stale {
    /// The subject, or `None` for "not registered".
    pub subject: Option<Subject>,
    /// How long ago it was read.
    pub age: Duration,
}

/// A cache answer.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Known and fresh: the subject, or `None` for a key not registered.
    Hit(Option<Subject>),
    /// Not fresh: read the registry, then [`SubjectCache::store`] with this generation; if
    /// the registry cannot be read, `stale` is what was last read (within the grace).
    Miss {
        /// Pass to [`SubjectCache::store`].
        generation: u64,
        /// Last known good.
        stale: Option<Stale>,
    },
}

/// What a registry change touched, as far as cached subjects go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// One device (by id): its entries, and every "not registered" answer (it may have
    /// gained a MAC or a certificate).
    Device(Uuid),
    /// One owner (by username, any case): the entries of their devices.
    Owner(String),
}

impl<K: Hash + Eq> SubjectCache<K> {
    /// A cache (or a pass-through when `enabled` is false). `ttl` bounds how long an entry is
    /// trusted without a re-read, `grace` how long it may stand in while the registry cannot
    /// be read; at most `max_known` registered keys and `2 × negative_capacity` unregistered
    /// ones are held.
    pub fn new(
        enabled: bool,
        ttl: Duration,
        grace: Duration,
        max_known: usize,
        negative_capacity: usize,
    ) -> Self {
        SubjectCache {
            enabled,
            ttl,
            grace,
            max_known,
            generation: AtomicU64::new(0),
            epoch: AtomicU64::new(1),
            maps: RwLock::new(Maps {
                known: HashMap::new(),
                unknown: Negative {
                    young: HashMap::new(),
                    old: HashMap::new(),
                    capacity: negative_capacity.max(1),
                },
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Maps<K>> {
        match self.maps.read() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, Maps<K>> {
        match self.maps.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Looks a key up.
    pub fn get<Q>(&self, key: &Q, now: Instant) -> Lookup
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let generation = self.generation.load(Ordering::Acquire);
        if !self.enabled {
            return Lookup::Miss {
                generation,
                stale: None,
            };
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let found = {
            let maps = self.read();
            match maps.known.get(key) {
                Some(e) => Some((e.subject.clone(), e.loaded, e.epoch)),
                None => maps.unknown.get(key).map(|(at, ep)| (None, at, ep)),
            }
        };
        let Some((subject, loaded, at_epoch)) = found else {
            return Lookup::Miss {
                generation,
                stale: None,
            };
        };
        let age = now.saturating_duration_since(loaded);
        if at_epoch == epoch && age < self.ttl {
            return Lookup::Hit(subject);
        }
        Lookup::Miss {
            generation,
            stale: (age < self.grace).then_some(Stale { subject, age }),
        }
    }

    /// Stores what a miss read, unless the registry changed since the miss.
    pub fn store(&self, key: K, subject: Option<Subject>, generation: u64, now: Instant) {
        if !self.enabled {
            return;
        }
        let mut maps = self.write();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        Self::put(&mut maps, self.max_known, key, subject, now, epoch);
    }

    fn put(
        maps: &mut Maps<K>,
        max_known: usize,
        key: K,
        subject: Option<Subject>,
        loaded: Instant,
        epoch: u64,
    ) {
        match subject {
            Some(s) => {
                maps.unknown.remove(&key);
                // registered keys are bounded by the registry; past the bound a key is simply
                // read every time rather than pushing others out
                if maps.known.len() < max_known || maps.known.contains_key(&key) {
                    maps.known.insert(
                        key,
                        Entry {
                            subject: Some(s),
                            loaded,
                            epoch,
                        },
                    );
                }
            }
            None => {
                maps.known.remove(&key);
                maps.unknown.insert(key, loaded, epoch);
            }
        }
    }

    /// Fills the cache from a snapshot read at `loaded`: usable as last known good only
    /// (every entry is read again before it counts as fresh).
    pub fn seed(&self, entries: impl IntoIterator<Item = (K, Subject)>, loaded: Instant) {
        if !self.enabled {
            return;
        }
        let mut maps = self.write();
        let stale_epoch = self.epoch.load(Ordering::Acquire).wrapping_sub(1);
        for (key, subject) in entries {
            if !maps.known.contains_key(&key) {
                Self::put(
                    &mut maps,
                    self.max_known,
                    key,
                    Some(subject),
                    loaded,
                    stale_epoch,
                );
            }
        }
    }

    /// Drops what a change touched.
    pub fn forget(&self, touched: &Touched) {
        let mut maps = self.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        match touched {
            Touched::Device(id) => {
                maps.known
                    .retain(|_, e| e.subject.as_ref().is_none_or(|s| s.0.id != *id));
                maps.unknown.clear();
            }
            // an audit entry names an owner by id (a notification) or by username (read
            // back with its personal part)
            Touched::Owner(name) => {
                maps.known.retain(|_, e| {
                    e.subject.as_ref().is_none_or(|s| {
                        !s.1.username.eq_ignore_ascii_case(name)
                            && !s.1.id.to_string().eq_ignore_ascii_case(name)
                    })
                });
            }
        }
    }

    /// The registry may have changed unseen: every entry is read again before it counts as
    /// fresh, and stays as last known good meanwhile.
    pub fn revalidate(&self) {
        let _maps = self.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Forgets everything.
    pub fn invalidate(&self) {
        let mut maps = self.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        maps.known.clear();
        maps.unknown.clear();
    }

    /// Drops entries too old to stand in even while degraded.
    pub fn expire(&self, now: Instant) {
        let grace = self.grace.max(self.ttl);
        let mut maps = self.write();
        maps.known
            .retain(|_, e| now.saturating_duration_since(e.loaded) < grace);
    }

    /// Every registered entry with the time it was read.
    pub fn subjects(&self) -> Vec<(Subject, Instant)> {
        self.read()
            .known
            .values()
            .filter_map(|e| e.subject.clone().map(|s| (s, e.loaded)))
            .collect()
    }

    /// How long last-known-good data may stand in.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Entries held (registered and not).
    pub fn len(&self) -> usize {
        let maps = self.read();
        maps.known.len() + maps.unknown.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Compliance, DeviceKind, DeviceStatus, Role};

    fn mac(n: u32) -> MacAddr {
        let b = n.to_be_bytes();
        MacAddr::parse_any(&format!(
            "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3]
        ))
        .expect("mac")
    }

    fn subject(owner: &str) -> Subject {
        let at = chrono::Utc::now();
        let o = Owner {
            id: Uuid::new_v4(),
            username: owner.into(),
            display_name: owner.into(),
            email: None,
            role: Role::Staff,
            department: None,
            valid_from: None,
            valid_until: None,
            disabled: false,
            created_at: at,
            updated_at: at,
            source: crate::model::OwnerSource::Manual,
            external_id: None,
            disabled_reason: None,
            disabled_at: None,
            disabled_by_source: None,
            erased_at: None,
        };
        let d = Device {
            id: Uuid::new_v4(),
            owner_id: o.id,
            owner: o.username.clone(),
            label: "laptop".into(),
            kind: DeviceKind::Laptop,
            macs: vec![mac(1)],
            status: DeviceStatus::Active,
            status_reason: None,
            status_changed_at: None,
            compliance: Compliance::Compliant,
            compliance_checked_at: Some(at),
            compliance_note: None,
            cert_fingerprint: None,
            cert_serial: None,
            created_by: "test".into(),
            created_at: at,
            updated_at: at,
            last_seen_at: None,
            last_seen_nas: None,
            last_seen_ssid: None,
        };
        Arc::new((d, o))
    }

    const H: Duration = Duration::from_secs(3600);

    fn cache() -> SubjectCache {
        SubjectCache::new(true, Duration::from_secs(60), H, 10, 10)
    }

    fn miss(l: Lookup) -> (u64, Option<Stale>) {
        match l {
            Lookup::Miss { generation, stale } => (generation, stale),
            Lookup::Hit(_) => panic!("expected a miss"),
        }
    }

    #[test]
    fn miss_store_hit_and_invalidate() {
        let c = cache();
        let t = Instant::now();
        let (g, stale) = miss(c.get(&mac(1), t));
        assert!(stale.is_none());
        c.store(mac(1), None, g, t);
        assert!(matches!(c.get(&mac(1), t), Lookup::Hit(None)));
        c.invalidate();
        assert!(miss(c.get(&mac(1), t)).1.is_none());
    }

    #[test]
    fn a_lookup_that_raced_a_change_is_not_cached() {
        let c = cache();
        let t = Instant::now();
        let (g, _) = miss(c.get(&mac(1), t));
        c.forget(&Touched::Owner("x".into()));
        c.store(mac(1), None, g, t);
        assert!(miss(c.get(&mac(1), t)).1.is_none());
    }

    #[test]
    fn past_the_ttl_an_entry_is_read_again_and_stands_in_within_the_grace() {
        let c = cache();
        let t = Instant::now();
        c.store(mac(1), Some(subject("a")), 0, t);
        let (_, stale) = miss(c.get(&mac(1), t + Duration::from_secs(61)));
        let stale = stale.expect("last known good");
        assert_eq!(stale.age, Duration::from_secs(61));
        assert!(stale.subject.is_some());
        // past the grace: nothing to stand in
        assert!(miss(c.get(&mac(1), t + H)).1.is_none());
        c.expire(t + H);
        assert!(c.is_empty());
    }

    #[test]
    fn a_change_drops_only_what_it_touched() {
        let c = cache();
        let t = Instant::now();
        let a = subject("a");
        let id = a.0.id;
        c.store(mac(1), Some(a), 0, t);
        c.store(mac(2), Some(subject("b")), 0, t);
        c.store(mac(3), None, 0, t);
        c.forget(&Touched::Owner("B".into()));
        assert!(matches!(c.get(&mac(1), t), Lookup::Hit(Some(_))));
        assert!(miss(c.get(&mac(2), t)).1.is_none());
        assert!(matches!(c.get(&mac(3), t), Lookup::Hit(None)));
        // a device change may have given an unregistered MAC a device
        c.forget(&Touched::Device(id));
        assert!(miss(c.get(&mac(1), t)).1.is_none());
        assert!(miss(c.get(&mac(3), t)).1.is_none());
    }

    #[test]
    fn revalidation_keeps_last_known_good_until_a_read_replaces_it() {
        let c = cache();
        let t = Instant::now();
        c.store(mac(1), Some(subject("a")), 0, t);
        c.revalidate();
        let (g, stale) = miss(c.get(&mac(1), t));
        assert!(stale.expect("kept").subject.is_some());
        c.store(mac(1), None, g, t);
        assert!(matches!(c.get(&mac(1), t), Lookup::Hit(None)));
    }

    #[test]
    fn seeded_entries_are_last_known_good_only() {
        let c = cache();
        let t = Instant::now();
        c.seed([(mac(1), subject("a"))], t);
        let (_, stale) = miss(c.get(&mac(1), t));
        assert!(stale.expect("seeded").subject.is_some());
        assert_eq!(c.subjects().len(), 1);
    }

    #[test]
    fn disabled_is_a_pass_through() {
        let off = SubjectCache::new(false, Duration::from_secs(60), H, 10, 10);
        let t = Instant::now();
        off.store(mac(1), None, 0, t);
        assert!(miss(off.get(&mac(1), t)).1.is_none());
    }

    #[test]
    fn a_flood_of_unregistered_keys_stays_bounded_and_keeps_registered_ones() {
        let c = cache();
        let t = Instant::now();
        c.store(mac(0), Some(subject("a")), 0, t);
        for n in 1..10_000 {
            c.store(mac(n), None, 0, t);
        }
        assert!(c.len() <= 1 + 2 * 10);
        assert!(matches!(c.get(&mac(0), t), Lookup::Hit(Some(_))));
        // the newest unregistered answers are still there
        assert!(matches!(c.get(&mac(9_999), t), Lookup::Hit(None)));
    }

    #[test]
    fn registered_keys_past_the_bound_are_not_cached() {
        let c = SubjectCache::new(true, Duration::from_secs(60), H, 2, 10);
        let t = Instant::now();
        for n in 0..5 {
            c.store(mac(n), Some(subject("a")), 0, t);
        }
        assert_eq!(c.len(), 2);
    }
}
