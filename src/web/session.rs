//! Logins to the console and the portal: a random session id in an HttpOnly, Secure,
//! SameSite=Strict cookie, kept here (only its SHA-256) with who it is, their role, a CSRF
//! token and when it was last used; idle and absolute timeouts, a cap on how many are held
//! (past it the least recently used ends), and failed-login counting per username and per
//! address. Pure over the clock passed in; the lock is never held across an await.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;

/// The cookie's name.
pub const COOKIE: &str = "poortwachter_sessie";

/// What a login may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// ICT: everything.
    Admin,
    /// The service desk: reads everything, changes nothing (as the API's helpdesk scope).
    Helpdesk,
    /// An employee on the portal: their own devices only.
    Employee,
}

impl Role {
    /// Whether this role may change the registry from the console.
    pub fn may_change(self) -> bool {
        self == Role::Admin
    }

    /// Whether this role uses the console (not the portal).
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Admin | Role::Helpdesk)
    }
}

/// One login.
#[derive(Debug, Clone)]
pub struct Session {
    /// The username.
    pub user: String,
    /// The name to greet.
    pub display_name: String,
    /// What they may do.
    pub role: Role,
    /// The token every form must carry back.
    pub csrf: String,
    /// When it began.
    pub started: DateTime<Utc>,
    /// Last request.
    pub last_seen: DateTime<Utc>,
}

impl Session {
    /// The actor in the audit log: `web:<user>`.
    pub fn actor(&self) -> String {
        format!("web:{}", self.user)
    }

    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, token: &str) -> bool {
        !token.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// The limits of [`Sessions`].
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Idle timeout.
    pub idle: Duration,
    /// Absolute lifetime.
    pub lifetime: Duration,
    /// How many at once.
    pub max: usize,
    /// Failed logins allowed per window.
    pub failures: u32,
    /// The failed-login window.
    pub window: Duration,
}

/// The sessions and the failed-login counters.
#[derive(Debug)]
pub struct Sessions {
    limits: SessionLimits,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By SHA-256 of the cookie value.
    sessions: HashMap<[u8; 32], Session>,
    /// Failed logins: key -> (window start, count).
    failures: HashMap<String, (DateTime<Utc>, u32)>,
}

/// A random 32-byte token as lowercase hex.
fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(cookie: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, cookie.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Most failed-login keys remembered: a flood of made-up usernames cannot grow memory past it.
const MAX_FAILURE_KEYS: usize = 100_000;

impl Sessions {
    /// No sessions yet.
    pub fn new(limits: SessionLimits) -> Sessions {
        Sessions {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // a panic while holding it leaves plain data behind: still usable
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new login; the cookie value to set. Past the cap, the least recently used ends.
    pub fn start(
        &self,
        user: &str,
        display_name: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> (String, Session) {
        let cookie = token();
        let session = Session {
            user: user.to_string(),
            display_name: display_name.to_string(),
            role,
            csrf: token(),
            started: now,
            last_seen: now,
        };
        let mut inner = self.lock();
        inner.sessions.retain(|_, s| self.alive(s, now));
        while inner.sessions.len() >= self.limits.max {
            let oldest = inner
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => inner.sessions.remove(&k),
                None => break,
            };
        }
        inner.sessions.insert(digest(&cookie), session.clone());
        (cookie, session)
    }

    fn alive(&self, s: &Session, now: DateTime<Utc>) -> bool {
        now - s.last_seen < self.limits.idle && now - s.started < self.limits.lifetime
    }

    /// The session of a cookie value, touched; `None` when unknown or timed out (then
    /// forgotten).
    pub fn get(&self, cookie: &str, now: DateTime<Utc>) -> Option<Session> {
        let key = digest(cookie);
        let mut inner = self.lock();
        let alive = inner.sessions.get(&key).map(|s| self.alive(s, now))?;
        if !alive {
            inner.sessions.remove(&key);
            return None;
        }
        let s = inner.sessions.get_mut(&key)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends the session of a cookie value.
    pub fn end(&self, cookie: &str) {
        self.lock().sessions.remove(&digest(cookie));
    }

    /// Ends every session of `user` (disabled, password changed).
    pub fn end_all_of(&self, user: &str) {
        self.lock().sessions.retain(|_, s| s.user != user);
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a login for `user` from `ip` may be tried now: not while either has used up
    /// its failures in the window.
    pub fn may_try(&self, user: &str, ip: IpAddr, now: DateTime<Utc>) -> bool {
        let inner = self.lock();
        [user_key(user), ip_key(ip)].iter().all(|k| {
            inner.failures.get(k).is_none_or(|(since, n)| {
                now - *since >= self.limits.window || *n < self.limits.failures
            })
        })
    }

    /// Counts a failed login for `user` and for `ip`.
    pub fn failed(&self, user: &str, ip: IpAddr, now: DateTime<Utc>) {
        let mut inner = self.lock();
        let window = self.limits.window;
        if inner.failures.len() >= MAX_FAILURE_KEYS {
            inner.failures.retain(|_, (since, _)| now - *since < window);
        }
        for k in [user_key(user), ip_key(ip)] {
            if inner.failures.len() >= MAX_FAILURE_KEYS && !inner.failures.contains_key(&k) {
                continue;
            }
            let e = inner.failures.entry(k).or_insert((now, 0));
            if now - e.0 >= window {
                *e = (now, 0);
            }
            e.1 = e.1.saturating_add(1);
        }
    }

    /// Forgets the failures of `user` after a good login (the address keeps its count).
    pub fn succeeded(&self, user: &str) {
        self.lock().failures.remove(&user_key(user));
    }
}

fn user_key(user: &str) -> String {
    format!("u:{}", user.to_lowercase())
}

fn ip_key(ip: IpAddr) -> String {
    format!("a:{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SessionLimits {
        SessionLimits {
            idle: Duration::minutes(30),
            lifetime: Duration::hours(12),
            max: 3,
            failures: 3,
            window: Duration::minutes(15),
        }
    }

    fn t0() -> DateTime<Utc> {
        "2026-12-02T09:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_session_lives_while_used_and_ends_when_idle_or_old() {
        let s = Sessions::new(limits());
        let (cookie, session) = s.start("anna", "Anna", Role::Admin, t0());
        assert_eq!(session.actor(), "web:anna");
        assert_eq!(cookie.len(), 64);
        assert!(s.get(&cookie, t0() + Duration::minutes(29)).is_some());
        // touched at 29 minutes: still there at 58
        assert!(s.get(&cookie, t0() + Duration::minutes(58)).is_some());
        assert!(s.get(&cookie, t0() + Duration::minutes(89)).is_none());
        assert!(s.is_empty());
        // busy all day, still ends after 12 hours
        let (cookie, _) = s.start("anna", "Anna", Role::Admin, t0());
        let mut at = t0();
        while at < t0() + Duration::hours(12) - Duration::minutes(10) {
            at += Duration::minutes(10);
            assert!(s.get(&cookie, at).is_some());
        }
        assert!(s.get(&cookie, t0() + Duration::hours(12)).is_none());
        assert!(s.get("made-up", t0()).is_none());
    }

    #[test]
    fn the_cap_ends_the_least_recently_used() {
        let s = Sessions::new(limits());
        let (a, _) = s.start("a", "A", Role::Helpdesk, t0());
        let (b, _) = s.start("b", "B", Role::Helpdesk, t0() + Duration::seconds(1));
        let (c, _) = s.start("c", "C", Role::Helpdesk, t0() + Duration::seconds(2));
        assert!(s.get(&a, t0() + Duration::seconds(3)).is_some());
        let (d, _) = s.start("d", "D", Role::Helpdesk, t0() + Duration::seconds(4));
        assert_eq!(s.len(), 3);
        assert!(s.get(&b, t0() + Duration::seconds(5)).is_none());
        for k in [&a, &c, &d] {
            assert!(s.get(k, t0() + Duration::seconds(5)).is_some());
        }
        s.end_all_of("a");
        assert!(s.get(&a, t0() + Duration::seconds(6)).is_none());
        s.end(&c);
        assert!(s.get(&c, t0() + Duration::seconds(6)).is_none());
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        let s = Sessions::new(limits());
        let (_, session) = s.start("a", "A", Role::Admin, t0());
        assert!(session.csrf_ok(&session.csrf.clone()));
        assert!(!session.csrf_ok(""));
        assert!(!session.csrf_ok(&session.csrf[..63]));
    }

    #[test]
    fn failures_lock_out_a_username_and_an_address_for_the_window() {
        let s = Sessions::new(limits());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..3 {
            assert!(s.may_try("anna", ip, t0()));
            s.failed("anna", ip, t0());
        }
        assert!(!s.may_try("anna", ip, t0()));
        // the username from elsewhere, and another name from this address: both refused
        assert!(!s.may_try("ANNA", other, t0()));
        assert!(!s.may_try("bert", ip, t0()));
        assert!(s.may_try("bert", other, t0()));
        assert!(s.may_try("anna", ip, t0() + Duration::minutes(15)));
    }
}
