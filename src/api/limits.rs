//! The admin API's connection limits as plain data, with the clock passed in: the caps on
//! connections held (in all and per source address), the deadline a connection is held to
//! in each phase (request head, handling, keep-alive idle), the counters, and the rate limit
//! on the warning for refused connections. `conn.rs` puts them on the sockets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::ops::ApiConfig;
use crate::sync::lock;

/// The limits from `[api]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `api.header_timeout`
    pub header: Duration,
    /// `api.idle_timeout`
    pub idle: Duration,
    /// `api.request_timeout`
    pub request: Duration,
    /// `api.max_connections`
    pub max_connections: usize,
    /// `api.max_connections_per_ip`
    pub max_per_ip: usize,
}

impl Limits {
    /// The limits a config sets.
    pub fn from_config(api: &ApiConfig) -> Limits {
        Limits {
            header: api.header_timeout.0,
            idle: api.idle_timeout.0,
            request: api.request_timeout.0,
            max_connections: api.max_connections,
            max_per_ip: api.max_connections_per_ip,
        }
    }
}

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `api.max_connections` are held.
    Total,
    /// `api.max_connections_per_ip` are held from this address.
    PerIp,
}

impl Refusal {
    /// The key that set the cap, for the log.
    pub fn key(self) -> &'static str {
        match self {
            Refusal::Total => "api.max_connections",
            Refusal::PerIp => "api.max_connections_per_ip",
        }
    }
}

/// The connections held, in all and per source address. A connection holds a [`Slot`];
/// dropping the slot gives its place back.
#[derive(Debug)]
pub struct Caps {
    max_total: usize,
    max_per_ip: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    /// Only addresses with at least one connection: the map is bounded by `max_total`.
    per_ip: HashMap<IpAddr, usize>,
}

impl Caps {
    /// Caps of `max_total` connections, `max_per_ip` from one address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Caps> {
        Arc::new(Caps {
            max_total,
            max_per_ip,
            held: Mutex::new(Held::default()),
        })
    }

    /// A place for a connection from `ip`, or why there is none. An IPv4-mapped IPv6 address
    /// counts as the IPv4 address it maps (a dual-stack listener sees both).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let ip = ip.to_canonical();
        let mut held = lock(&self.held);
        if held.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let from_ip = held.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *from_ip += 1;
        held.total += 1;
        Ok(Slot {
            caps: Arc::clone(self),
            ip,
        })
    }

    /// Connections held now.
    pub fn open(&self) -> usize {
        lock(&self.held).total
    }

    /// Connections held now from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        lock(&self.held)
            .per_ip
            .get(&ip.to_canonical())
            .copied()
            .unwrap_or(0)
    }
}

/// One connection's place under the [`Caps`]: given back when dropped, on every path
/// (closed by the peer, by a timeout, a failed TLS handshake, shutdown, a panic).
#[derive(Debug)]
pub struct Slot {
    caps: Arc<Caps>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = lock(&self.caps.held);
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Which deadline closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The request head (or the TLS handshake) did not arrive within `api.header_timeout`.
    Header,
    /// No request came within `api.idle_timeout` after the last answer.
    Idle,
}

/// Where a connection is, and so which deadline holds it. Every phase but `Handling` has a
/// deadline; `Handling` is bounded by `api.request_timeout` around the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading a request head (for the first one: from the accept, TLS handshake included;
    /// later ones: from their first byte). The deadline is not moved by bytes that arrive,
    /// so dribbling them does not help.
    Head {
        /// When the head must be complete.
        deadline: Instant,
    },
    /// A request is being handled.
    Handling,
    /// Answered; waiting for the next request (or for the answer to be taken).
    Idle {
        /// When the connection is closed if nothing arrives.
        deadline: Instant,
    },
}

impl Phase {
    /// A connection just accepted.
    pub fn accepted(now: Instant, limits: &Limits) -> Phase {
        Phase::Head {
            deadline: now + limits.header,
        }
    }

    /// Bytes arrived: on an idle connection they start the next request head.
    pub fn on_bytes(&mut self, now: Instant, limits: &Limits) {
        if let Phase::Idle { .. } = self {
            *self = Phase::Head {
                deadline: now + limits.header,
            };
        }
    }

    /// The head is complete: the handler runs.
    pub fn on_request(&mut self) {
        *self = Phase::Handling;
    }

    /// The handler answered (or gave up).
    pub fn on_answer(&mut self, now: Instant, limits: &Limits) {
        *self = Phase::Idle {
            deadline: now + limits.idle,
        };
    }

    /// The deadline now, and which one it is.
    pub fn deadline(&self) -> Option<(Instant, Expiry)> {
        match *self {
            Phase::Head { deadline } => Some((deadline, Expiry::Header)),
            Phase::Handling => None,
            Phase::Idle { deadline } => Some((deadline, Expiry::Idle)),
        }
    }
}

/// The API's connection counters, for `/api/v1/metrics`.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections accepted and admitted.
    pub accepted: AtomicU64,
    /// Closed at accept: `api.max_connections` held.
    pub refused_total_cap: AtomicU64,
    /// Closed at accept: `api.max_connections_per_ip` held from the address.
    pub refused_ip_cap: AtomicU64,
    /// Closed: the head (or TLS handshake) not in within `api.header_timeout`.
    pub closed_header_timeout: AtomicU64,
    /// Closed: idle for `api.idle_timeout`.
    pub closed_idle_timeout: AtomicU64,
    /// Answered 503: the handler ran past `api.request_timeout`.
    pub request_timeouts: AtomicU64,
}

impl ConnStats {
    /// Adds one.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counter that a refusal adds to.
    pub fn refused(&self, why: Refusal) -> &AtomicU64 {
        match why {
            Refusal::Total => &self.refused_total_cap,
            Refusal::PerIp => &self.refused_ip_cap,
        }
    }

    /// The counter that an expiry adds to.
    pub fn expired(&self, why: Expiry) -> &AtomicU64 {
        match why {
            Expiry::Header => &self.closed_header_timeout,
            Expiry::Idle => &self.closed_idle_timeout,
        }
    }

    /// `(name, value)` of each counter, in a fixed order.
    pub fn snapshot(&self) -> [(&'static str, u64); 6] {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("accepted", v(&self.accepted)),
            ("refused_max_connections", v(&self.refused_total_cap)),
            ("refused_max_connections_per_ip", v(&self.refused_ip_cap)),
            ("closed_header_timeout", v(&self.closed_header_timeout)),
            ("closed_idle_timeout", v(&self.closed_idle_timeout)),
            ("request_timeouts", v(&self.request_timeouts)),
        ]
    }
}

/// At most one warning per `every`: under a flood of refused connections the log says how
/// many there were, not one line each.
#[derive(Debug)]
pub struct WarnEvery {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl WarnEvery {
    /// One warning per `every`.
    pub fn new(every: Duration) -> WarnEvery {
        WarnEvery {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// One more event at `now`: `Some(n)` when it is time to warn, `n` being the events
    /// since the last warning, this one included; `None` to stay quiet.
    pub fn event(&self, now: Instant) -> Option<u64> {
        let mut state = lock(&self.state);
        let (last, pending) = &mut *state;
        *pending += 1;
        let due = last.is_none_or(|at| now.saturating_duration_since(at) >= self.every);
        if !due {
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_refuse_over_the_total_and_per_address_and_slots_give_back() {
        let caps = Caps::new(3, 2);
        let a1 = caps.admit(ip("10.0.0.1")).unwrap();
        // the v4-mapped form is the same address
        let a2 = caps.admit(ip("::ffff:10.0.0.1")).unwrap();
        assert_eq!(caps.admit(ip("10.0.0.1")).unwrap_err(), Refusal::PerIp);
        let b1 = caps.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(caps.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Total);
        assert_eq!(caps.open(), 3);
        drop(a2);
        assert_eq!((caps.open(), caps.open_from(ip("10.0.0.1"))), (2, 1));
        let a3 = caps.admit(ip("10.0.0.1")).unwrap();
        drop((a1, a3, b1));
        assert_eq!(caps.open(), 0);
        // an address with nothing held leaves no entry behind
        assert!(lock(&caps.held).per_ip.is_empty());
        // a refusal takes no place
        let _c = caps.admit(ip("10.0.0.3")).unwrap();
        assert_eq!(caps.open(), 1);
    }

    #[test]
    fn phases_and_their_deadlines() {
        let limits = Limits {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            request: Duration::from_secs(30),
            max_connections: 1,
            max_per_ip: 1,
        };
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Phase::accepted(t0, &limits);
        assert_eq!(p.deadline(), Some((t0 + s(10), Expiry::Header)));
        // bytes of the head do not move its deadline
        p.on_bytes(t0 + s(9), &limits);
        assert_eq!(p.deadline(), Some((t0 + s(10), Expiry::Header)));
        p.on_request();
        assert_eq!(p.deadline(), None);
        // request bytes (the body) while handling change nothing
        p.on_bytes(t0 + s(11), &limits);
        assert_eq!(p, Phase::Handling);
        p.on_answer(t0 + s(12), &limits);
        assert_eq!(p.deadline(), Some((t0 + s(72), Expiry::Idle)));
        // the next request's first byte starts its head deadline
        p.on_bytes(t0 + s(20), &limits);
        assert_eq!(p.deadline(), Some((t0 + s(30), Expiry::Header)));
    }

    #[test]
    fn warnings_at_most_once_per_period_with_the_count() {
        let w = WarnEvery::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(w.event(t0), Some(1));
        assert_eq!(w.event(t0 + Duration::from_secs(1)), None);
        assert_eq!(w.event(t0 + Duration::from_secs(4)), None);
        assert_eq!(w.event(t0 + Duration::from_secs(5)), Some(3));
        assert_eq!(w.event(t0 + Duration::from_secs(6)), None);
    }
}
