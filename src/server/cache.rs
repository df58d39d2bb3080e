//! The hot path's copy of registry entries: MAC (MAB) or certificate fingerprint (EAP-TLS) →
//! (device, owner), or "not registered".
//! Emptied whenever the registry changes (this process, a PostgreSQL notification, or the
//! SQLite change poll), so a revoke or compliance change applies to the next authentication
//! after it is seen. A generation number keeps a lookup that raced a change from caching
//! what it read before the change.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::mac::MacAddr;
use crate::model::{Device, Owner};

/// A device with its owner.
pub type Subject = Arc<(Device, Owner)>;

#[derive(Debug, Clone)]
struct Entry {
    subject: Option<Subject>,
    loaded: Instant,
}

/// Key → subject, bounded, with invalidation.
#[derive(Debug)]
pub struct SubjectCache<K = MacAddr> {
    enabled: bool,
    ttl: Duration,
    max_entries: usize,
    generation: AtomicU64,
    map: RwLock<HashMap<K, Entry>>,
}

/// A cache answer.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Known: the subject, or `None` for a MAC not registered.
    Hit(Option<Subject>),
    /// Not known: read the registry, then [`SubjectCache::store`] with this generation.
    Miss(u64),
}

impl<K: Hash + Eq> SubjectCache<K> {
    /// A cache (or a pass-through when `enabled` is false). `ttl` bounds how long an entry is
    /// trusted even without a change signal.
    pub fn new(enabled: bool, ttl: Duration, max_entries: usize) -> Self {
        SubjectCache {
            enabled,
            ttl,
            max_entries,
            generation: AtomicU64::new(0),
            map: RwLock::new(HashMap::new()),
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
            return Lookup::Miss(generation);
        }
        let map = match self.map.read() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        match map.get(key) {
            Some(e) if now.saturating_duration_since(e.loaded) < self.ttl => {
                Lookup::Hit(e.subject.clone())
            }
            _ => Lookup::Miss(generation),
        }
    }

    /// Stores what a miss read, unless the registry changed since the miss.
    pub fn store(&self, key: K, subject: Option<Subject>, generation: u64, now: Instant) {
        if !self.enabled {
            return;
        }
        let mut map = match self.map.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= self.max_entries {
            map.clear();
        }
        map.insert(
            key,
            Entry {
                subject,
                loaded: now,
            },
        );
    }

    /// Forgets everything: the registry changed.
    pub fn invalidate(&self) {
        let mut map = match self.map.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        match self.map.read() {
            Ok(m) => m.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr::parse_any(&format!("00:11:22:33:44:{n:02x}")).expect("mac")
    }

    #[test]
    fn miss_store_hit_and_invalidate() {
        let c = SubjectCache::new(true, Duration::from_secs(60), 10);
        let t = Instant::now();
        let Lookup::Miss(g) = c.get(&mac(1), t) else {
            panic!("expected a miss")
        };
        c.store(mac(1), None, g, t);
        assert!(matches!(c.get(&mac(1), t), Lookup::Hit(None)));
        c.invalidate();
        assert!(matches!(c.get(&mac(1), t), Lookup::Miss(_)));
    }

    #[test]
    fn a_lookup_that_raced_a_change_is_not_cached() {
        let c = SubjectCache::new(true, Duration::from_secs(60), 10);
        let t = Instant::now();
        let Lookup::Miss(g) = c.get(&mac(1), t) else {
            panic!("expected a miss")
        };
        c.invalidate();
        c.store(mac(1), None, g, t);
        assert!(matches!(c.get(&mac(1), t), Lookup::Miss(_)));
    }

    #[test]
    fn ttl_bound_and_disabled() {
        let c = SubjectCache::new(true, Duration::from_secs(1), 10);
        let t = Instant::now();
        c.store(mac(1), None, 0, t);
        assert!(matches!(
            c.get(&mac(1), t + Duration::from_secs(2)),
            Lookup::Miss(_)
        ));
        let off = SubjectCache::new(false, Duration::from_secs(60), 10);
        off.store(mac(1), None, 0, t);
        assert!(matches!(off.get(&mac(1), t), Lookup::Miss(_)));
    }

    #[test]
    fn bounded() {
        let c = SubjectCache::new(true, Duration::from_secs(60), 3);
        let t = Instant::now();
        for n in 0..10 {
            c.store(mac(n), None, 0, t);
        }
        assert!(c.len() <= 3);
    }
}
