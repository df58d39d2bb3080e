//! The request path run in memory: the sans-IO core ([`super::access`]) with an in-memory
//! registry, a clock that moves only when told, and every step carried out at once. The
//! stateful fuzz target and the unit tests drive it with sequences of operations decoded from
//! bytes ([`Sim::run`]): MAB, EAP with fresh, known, stale and forged States, accounting,
//! Status-Server, raw datagrams, retransmissions, held registry reads, registry changes,
//! a registry that fails, and time passing. Every reply is checked against the request it
//! answers (code, identifier, Response Authenticator and Message-Authenticator), a
//! retransmission's reply against the first, and no datagram may take more than a few steps.
//! Built only for tests and with the `sim` feature.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::vec_box
)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use uuid::Uuid;

use super::access::{Access, Client, Now, Pending, Port, Step, Want};
use super::cache::Subject;
use super::coalesce::Coalescer;
use super::dedup::DedupCache;
use super::stats::Stats;
use crate::config::Config;
use crate::eap::packet::{code as eap_code, typ, EapPacket};
use crate::eap::{EapServer, EapSettings};
use crate::mac::MacAddr;
use crate::model::{Compliance, Device, DeviceKind, DeviceStatus, Owner, Role};
use crate::policy;
use crate::radius::crypto::{check_response, encode_user_password, sign_request};
use crate::radius::dict::{self, code};
use crate::radius::{Builder, Packet};

/// The secret of the access points (127.0.0.0/8, Message-Authenticator required).
pub const AP_SECRET: &str = "sim-ap-secret-0123456789";
/// The secret of the legacy switches (192.0.2.0/24: no Message-Authenticator required, MAB
/// without Calling-Station-Id allowed).
pub const LEGACY_SECRET: &str = "sim-legacy-secret-012345";
/// The duplicate window.
const WINDOW: Duration = Duration::from_secs(5);

const CONFIG: &str = r#"
[database]
url = "sqlite://sim-unused.db"

[radius]
duplicate_window = "5s"

[[radius.clients]]
name = "ap"
network = "127.0.0.0/8"
secret = "sim-ap-secret-0123456789"

[[radius.clients]]
name = "legacy"
network = "192.0.2.0/24"
secret = "sim-legacy-secret-012345"
require_message_authenticator = false
mab_require_calling_station_id = false

[vlans]
workspace = 100
guest = 200
quarantine = 666

[policy]
compliance_max_age = "30d"
session_timeout = "8h"

[log]
decision_coalesce = "10s"
"#;

/// The registered devices, by MAC: staff compliant, temp compliant, staff noncompliant,
/// revoked, lost; `02:00:00:00:00:06` is unknown.
pub fn mac(n: u8) -> MacAddr {
    MacAddr::from_octets([2, 0, 0, 0, 0, n])
}

/// 2026-11-15 12:00 UTC.
fn start() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 15, 12, 0, 0)
        .single()
        .expect("a valid date")
}

fn owner(n: u128, username: &str, role: Role) -> Owner {
    let at = start() - chrono::Duration::days(100);
    Owner {
        id: Uuid::from_u128(n),
        username: username.into(),
        display_name: username.into(),
        email: None,
        role,
        department: None,
        valid_from: None,
        valid_until: (role != Role::Staff)
            .then(|| chrono::NaiveDate::from_ymd_opt(2027, 6, 30).expect("a valid date")),
        disabled: false,
        created_at: at,
        updated_at: at,
        source: crate::model::OwnerSource::Manual,
        external_id: None,
        disabled_reason: None,
        disabled_at: None,
        disabled_by_source: None,
        erased_at: None,
    }
}

fn device(n: u8, o: &Owner, status: DeviceStatus, compliance: Compliance) -> Device {
    let at = start() - chrono::Duration::days(1);
    Device {
        id: Uuid::from_u128(0x1000 + u128::from(n)),
        owner_id: o.id,
        owner: o.username.clone(),
        label: format!("laptop {n}"),
        kind: DeviceKind::Laptop,
        macs: vec![mac(n)],
        status,
        status_reason: None,
        status_changed_at: None,
        compliance,
        compliance_checked_at: Some(at),
        compliance_note: None,
        cert_fingerprint: None,
        cert_serial: None,
        created_by: "sim".into(),
        created_at: at,
        updated_at: at,
        last_seen_at: None,
        last_seen_nas: None,
        last_seen_ssid: None,
    }
}

/// What the simulated access point saw of one answered request.
struct Answered {
    reply: Vec<u8>,
    at: Duration,
}

/// The core, an in-memory registry and the access points' memory of what they sent.
pub struct Sim {
    access: Access,
    devices: HashMap<MacAddr, Subject>,
    certs: HashMap<String, Subject>,
    elapsed: Duration,
    db_down: bool,
    /// Requests sent: (port, source, bytes), for retransmissions.
    sent: Vec<(Port, SocketAddr, Vec<u8>)>,
    /// First replies by (source, code, identifier, authenticator).
    answers: HashMap<(SocketAddr, u8, u8, [u8; 16]), Answered>,
    /// States from our challenges, with the EAP identifier they asked for.
    states: Vec<([u8; 16], u8)>,
    /// Registry reads held back (the NAS retransmits meanwhile).
    held: Vec<Box<Pending>>,
    /// Flights of a real TLS client (a ClientHello) to make EAP-TLS go somewhere.
    client_hello: Vec<u8>,
    next_id: u8,
    /// How many datagrams were answered, and how many steps the longest took.
    pub replies: u64,
}

impl Sim {
    /// A fresh core; with `tls`, EAP-TLS on (`client_hello` is a supplicant's first flight).
    pub fn new(tls: Option<(crate::eap::tls::TlsServer, Vec<u8>)>) -> Sim {
        static CONFIG_ONCE: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
        let config = CONFIG_ONCE.get_or_init(|| {
            Config::from_toml(CONFIG, Path::new("sim.toml"), Vec::new())
                .expect("the simulation's config is valid")
        });
        let clients: Vec<Client> = config
            .radius
            .clients
            .iter()
            .map(|c| Client::from_config(c, &config.radius))
            .collect();
        let (eap, client_hello) = match tls {
            Some((server, hello)) => (
                Some(Arc::new(EapServer::new(
                    server,
                    EapSettings {
                        fragment_size: 1024,
                        max_conversations: 64,
                        conversation_timeout: Duration::from_secs(30),
                    },
                ))),
                hello,
            ),
            None => (None, Vec::new()),
        };
        let access = Access::new(
            clients,
            policy::Rules::from_config(config),
            Arc::new(Stats::default()),
            DedupCache::new(WINDOW, 1024, 1 << 20),
            Coalescer::new(Duration::from_secs(10), 1024, 256),
            eap,
        );
        let staff = owner(1, "s.staff", Role::Staff);
        let temp = owner(2, "t.temp", Role::Temp);
        let mut devices = HashMap::new();
        for (n, o, status, compliance) in [
            (1, &staff, DeviceStatus::Active, Compliance::Compliant),
            (2, &temp, DeviceStatus::Active, Compliance::Compliant),
            (3, &staff, DeviceStatus::Active, Compliance::Noncompliant),
            (4, &staff, DeviceStatus::Revoked, Compliance::Compliant),
            (5, &staff, DeviceStatus::Lost, Compliance::Compliant),
        ] {
            let d = device(n, o, status, compliance);
            devices.insert(mac(n), Arc::new((d, o.clone())));
        }
        Sim {
            access,
            devices,
            certs: HashMap::new(),
            elapsed: Duration::ZERO,
            db_down: false,
            sent: Vec::new(),
            answers: HashMap::new(),
            states: Vec::new(),
            held: Vec::new(),
            client_hello,
            next_id: 0,
            replies: 0,
        }
    }

    /// The certificate with this fingerprint names the device with MAC `n`.
    pub fn register_certificate(&mut self, fingerprint: String, n: u8) {
        if let Some(s) = self.devices.get(&mac(n)).cloned() {
            self.certs.insert(fingerprint, s);
        }
    }

    /// The core, for its counters.
    pub fn access(&self) -> &Access {
        &self.access
    }

    fn now(&self) -> Now {
        // a fixed origin: runs are reproducible; Instant cannot be made, so the monotonic
        // clock is the process's own plus what the simulation moved on
        Now {
            mono: origin() + self.elapsed,
            wall: start() + chrono::Duration::from_std(self.elapsed).unwrap_or_default(),
        }
    }

    fn lookup(&self, want: &Want) -> Option<Subject> {
        match want {
            Want::Mac(m) => self.devices.get(m).cloned(),
            Want::Certificate(fp) => self.certs.get(fp).cloned(),
        }
    }

    /// Delivers one datagram and carries out every step; returns what was sent back.
    pub fn deliver(&mut self, port: Port, src: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
        let step = self.access.datagram(data, src, port, self.now());
        self.carry(step, Some((port, src, data)))
    }

    /// Like [`Sim::deliver`], but a registry read is held back until [`Sim::release`].
    fn deliver_held(&mut self, port: Port, src: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
        match self.access.datagram(data, src, port, self.now()) {
            Step::Need(p) => {
                self.held.push(p);
                None
            }
            other => self.carry(other, Some((port, src, data))),
        }
    }

    /// Answers the held registry reads (or fails them when the registry is down).
    fn release(&mut self) {
        let now = self.now();
        for p in std::mem::take(&mut self.held) {
            let step = if self.db_down {
                self.access.unresolved(p, now)
            } else {
                let subject = self.lookup(p.want());
                self.access.resolve(p, subject, now)
            };
            // the request's bytes are no longer here: its reply is checked for framing only
            self.carry(step, None);
        }
    }

    /// Carries out steps until a reply or nothing; a reply is checked against `request`.
    fn carry(
        &mut self,
        mut step: Step,
        request: Option<(Port, SocketAddr, &[u8])>,
    ) -> Option<Vec<u8>> {
        let now = self.now();
        for _ in 0..8 {
            step = match step {
                Step::Send(reply) => {
                    match request {
                        Some((port, src, data)) => self.check(port, src, data, &reply.bytes),
                        None => {
                            Packet::parse(&reply.bytes).expect("our reply parses");
                        }
                    }
                    return Some(reply.bytes);
                }
                Step::Silent => return None,
                Step::Need(p) if self.db_down => self.access.unresolved(p, now),
                Step::Need(p) => {
                    let subject = self.lookup(p.want());
                    self.access.resolve(p, subject, now)
                }
                Step::Eap(turn) => self.access.eap_turn(turn, now),
                Step::Account(work) => self.access.accounted(work, !self.db_down),
            };
        }
        panic!("a datagram took more than 8 steps");
    }

    /// A reply must answer its request: the right code, identifier and authenticators; a
    /// repeat within the window the same bytes; a challenge its State and EAP-Request.
    fn check(&mut self, port: Port, src: SocketAddr, request: &[u8], reply: &[u8]) {
        self.replies += 1;
        let req = Packet::parse(request).expect("a request we answered parses");
        let rep = Packet::parse(reply).expect("our reply parses");
        assert_eq!(rep.identifier(), req.identifier(), "identifier");
        let secret = if src.ip().is_loopback() {
            AP_SECRET
        } else {
            LEGACY_SECRET
        };
        let codes: &[u8] = match (port, req.code()) {
            (Port::Auth, code::STATUS_SERVER) => &[code::ACCESS_ACCEPT],
            (Port::Acct, code::STATUS_SERVER) => &[code::ACCOUNTING_RESPONSE],
            (Port::Auth, _) => &[
                code::ACCESS_ACCEPT,
                code::ACCESS_REJECT,
                code::ACCESS_CHALLENGE,
            ],
            (Port::Acct, _) => &[code::ACCOUNTING_RESPONSE],
        };
        assert!(codes.contains(&rep.code()), "reply code {}", rep.code());
        // every authentication reply carries a Message-Authenticator (BlastRADIUS)
        let require_ma = port == Port::Auth;
        assert!(
            check_response(&rep, &req.authenticator(), secret.as_bytes(), require_ma),
            "the reply's authenticators verify"
        );
        // Proxy-State comes back in order
        let sent: Vec<&[u8]> = req
            .attributes()
            .filter(|(t, _)| *t == dict::PROXY_STATE)
            .map(|(_, v)| v)
            .collect();
        let back: Vec<&[u8]> = rep
            .attributes()
            .filter(|(t, _)| *t == dict::PROXY_STATE)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(sent, back, "Proxy-State echoed");
        if rep.code() == code::ACCESS_CHALLENGE {
            let state = rep.attr(dict::STATE).expect("a challenge has a State");
            let eap = rep.concat(dict::EAP_MESSAGE).expect("and an EAP-Request");
            let p = EapPacket::parse(&eap).expect("a well-formed EAP-Request");
            assert_eq!(p.code, eap_code::REQUEST);
            if let Ok(s) = <[u8; 16]>::try_from(state) {
                if self.states.len() >= 32 {
                    self.states.remove(0);
                }
                self.states.push((s, p.id));
            }
        }
        let key = (src, req.code(), req.identifier(), req.authenticator());
        if req.code() != code::STATUS_SERVER {
            match self.answers.get(&key) {
                Some(first) if self.elapsed.saturating_sub(first.at) < WINDOW => {
                    assert_eq!(first.reply, reply, "a retransmission gets the same reply");
                }
                _ => {
                    self.answers.insert(
                        key,
                        Answered {
                            reply: reply.to_vec(),
                            at: self.elapsed,
                        },
                    );
                }
            }
        }
    }

    /// Runs the operations that `bytes` encode (see [`Op`]).
    pub fn run(&mut self, bytes: &[u8]) {
        let mut r = Reader(bytes);
        let mut ops = 0;
        while !r.0.is_empty() && ops < 256 {
            ops += 1;
            let Some(op) = Op::read(&mut r) else { break };
            self.apply(op);
        }
        self.release();
    }

    fn id(&mut self) -> u8 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    fn source(legacy: bool, port_bit: u8) -> SocketAddr {
        let ip = if legacy {
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + port_bit % 4))
        } else {
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + port_bit % 4))
        };
        SocketAddr::new(ip, 40_000 + u16::from(port_bit % 3))
    }

    fn send(&mut self, port: Port, src: SocketAddr, bytes: Vec<u8>, hold: bool) {
        if self.sent.len() >= 64 {
            self.sent.remove(0);
        }
        self.sent.push((port, src, bytes.clone()));
        if hold {
            let _ = self.deliver_held(port, src, &bytes);
        } else {
            let _ = self.deliver(port, src, &bytes);
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Mab {
                legacy,
                who,
                n,
                flavour,
                with_ma,
                hold,
            } => {
                let secret = if legacy { LEGACY_SECRET } else { AP_SECRET };
                let id = self.id();
                let auth: [u8; 16] = [n ^ flavour; 16];
                let m = mac(n % 7);
                let name = match flavour % 3 {
                    0 => m.to_string(),
                    1 => m.to_string().replace(':', ""),
                    _ => m.to_string().replace(':', "-").to_uppercase(),
                };
                let mut b = if with_ma {
                    Builder::with_message_authenticator(code::ACCESS_REQUEST, id)
                } else {
                    Builder::new(code::ACCESS_REQUEST, id)
                };
                let _ = b.add_text(dict::USER_NAME, &name);
                match flavour % 5 {
                    0 | 1 => {
                        let pw = encode_user_password(name.as_bytes(), secret.as_bytes(), &auth);
                        let _ = b.add(dict::USER_PASSWORD, &pw);
                    }
                    2 => {
                        // CHAP, challenge of (flavour / 5) % 18 octets: short ones refused
                        let len = usize::from(flavour / 5 % 18);
                        let challenge = vec![7u8; len];
                        let mut chap = vec![1u8];
                        chap.extend_from_slice(&md5_chap(1, name.as_bytes(), &challenge));
                        let _ = b.add(dict::CHAP_PASSWORD, &chap);
                        if len > 0 {
                            let _ = b.add(dict::CHAP_CHALLENGE, &challenge);
                        }
                    }
                    3 => {}
                    _ => {
                        let _ = b.add(dict::USER_PASSWORD, &[0u8; 16]);
                    }
                }
                if who % 3 != 0 {
                    let cs = if who % 3 == 1 {
                        m.to_string()
                    } else {
                        "not a mac".to_string()
                    };
                    let _ = b.add_text(dict::CALLING_STATION_ID, &cs);
                }
                if who & 4 != 0 {
                    let _ = b.add(dict::PROXY_STATE, &[who, n]);
                    let _ = b.add(dict::PROXY_STATE, b"second");
                }
                let (mut buf, off) = b.into_unsigned();
                sign_request(&mut buf, off, &auth, secret.as_bytes());
                self.send(Port::Auth, Sim::source(legacy, who), buf, hold);
            }
            Op::Eap {
                legacy,
                who,
                state,
                body,
            } => {
                let secret = if legacy { LEGACY_SECRET } else { AP_SECRET };
                let id = self.id();
                let (state, eap_id) = match state {
                    StateChoice::None => (None, who),
                    StateChoice::Known(k) if !self.states.is_empty() => {
                        let (s, i) = self.states[usize::from(k) % self.states.len()];
                        (Some(s.to_vec()), i)
                    }
                    StateChoice::Known(_) | StateChoice::Stale => (Some(vec![0x5a; 16]), who),
                    StateChoice::Forged(bytes) => (Some(bytes), who),
                };
                let eap = match body {
                    EapBody::Start => Vec::new(),
                    EapBody::Identity => eap_response(eap_id, typ::IDENTITY, b"host/sim"),
                    EapBody::Nak(types) => eap_response(eap_id, typ::NAK, &types),
                    EapBody::ClientHello => {
                        let mut data = vec![0u8];
                        data.extend_from_slice(&self.client_hello);
                        eap_response(eap_id, typ::TLS, &data)
                    }
                    EapBody::Tls(data) => eap_response(eap_id, typ::TLS, &data),
                    EapBody::Raw(bytes) => bytes,
                };
                let mut b = Builder::with_message_authenticator(code::ACCESS_REQUEST, id);
                let _ = b.add_text(dict::USER_NAME, "host/sim");
                let _ = b.add_text(dict::CALLING_STATION_ID, &mac(who % 7).to_string());
                if b.add_split(dict::EAP_MESSAGE, &eap).is_err() {
                    return;
                }
                if let Some(s) = state {
                    let _ = b.add(dict::STATE, &s);
                }
                if who & 8 != 0 {
                    let _ = b.add_u32(dict::FRAMED_MTU, 100 + u32::from(who) * 5);
                }
                let auth = [id; 16];
                let (mut buf, off) = b.into_unsigned();
                sign_request(&mut buf, off, &auth, secret.as_bytes());
                self.send(Port::Auth, Sim::source(legacy, who), buf, false);
            }
            Op::Acct {
                legacy,
                who,
                status,
                session,
                good,
            } => {
                let secret = if legacy { LEGACY_SECRET } else { AP_SECRET };
                let id = self.id();
                let mut b = Builder::new(code::ACCOUNTING_REQUEST, id);
                let _ = b.add_u32(dict::ACCT_STATUS_TYPE, u32::from(status % 9));
                let _ = b.add_text(dict::ACCT_SESSION_ID, &format!("s{session}"));
                let _ = b.add_text(dict::CALLING_STATION_ID, &mac(session % 7).to_string());
                let _ = b.add_text(dict::NAS_IDENTIFIER, &format!("ap-{who}"));
                if who & 4 != 0 {
                    let _ = b.add(dict::PROXY_STATE, b"acct");
                }
                let (mut buf, off) = b.into_unsigned();
                let key = if good {
                    secret
                } else {
                    "a-wrong-secret-000000"
                };
                sign_request(&mut buf, off, &[0; 16], key.as_bytes());
                self.send(Port::Acct, Sim::source(legacy, who), buf, false);
            }
            Op::Status { acct, with_ma, who } => {
                let id = self.id();
                let mut b = if with_ma {
                    Builder::with_message_authenticator(code::STATUS_SERVER, id)
                } else {
                    Builder::new(code::STATUS_SERVER, id)
                };
                let _ = b.add_text(dict::NAS_IDENTIFIER, "ap");
                let (mut buf, off) = b.into_unsigned();
                sign_request(&mut buf, off, &[id; 16], AP_SECRET.as_bytes());
                let port = if acct { Port::Acct } else { Port::Auth };
                self.send(port, Sim::source(false, who), buf, false);
            }
            Op::Raw { acct, who, bytes } => {
                let port = if acct { Port::Acct } else { Port::Auth };
                let src = if who & 16 != 0 {
                    // an address no client covers
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 1812)
                } else {
                    Sim::source(who & 1 != 0, who)
                };
                let _ = self.deliver(port, src, &bytes);
            }
            Op::Retransmit(k) => {
                if !self.sent.is_empty() {
                    let (port, src, bytes) = self.sent[usize::from(k) % self.sent.len()].clone();
                    let _ = self.deliver(port, src, &bytes);
                }
            }
            Op::Release => self.release(),
            Op::Advance(ms) => {
                self.elapsed += Duration::from_millis(u64::from(ms) * 50);
                self.access.sweep(self.now());
                if let Some(e) = self.access.eap() {
                    e.sweep(self.now().mono);
                }
            }
            Op::Database(up) => self.db_down = !up,
            Op::Change(n) => {
                // the registry changed: a device is revoked, or comes back
                let m = mac(n % 7);
                if let Some(s) = self.devices.get(&m).cloned() {
                    let (mut d, o) = (s.0.clone(), s.1.clone());
                    d.status = if d.status == DeviceStatus::Active {
                        DeviceStatus::Revoked
                    } else {
                        DeviceStatus::Active
                    };
                    let subject = Arc::new((d, o));
                    for v in self.certs.values_mut() {
                        if v.0.id == subject.0.id {
                            *v = subject.clone();
                        }
                    }
                    self.devices.insert(m, subject);
                }
            }
        }
    }
}

fn origin() -> std::time::Instant {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

fn md5_chap(id: u8, password: &[u8], challenge: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update([id]);
    h.update(password);
    h.update(challenge);
    h.finalize().into()
}

fn eap_response(id: u8, t: u8, data: &[u8]) -> Vec<u8> {
    let mut v = crate::eap::packet::request(id, t, data);
    if let Some(c) = v.first_mut() {
        *c = eap_code::RESPONSE;
    }
    v
}

/// Reads operations from fuzz bytes.
pub struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// A big-endian u16 length, then that many bytes (at most `max`).
    fn exact(&mut self, max: usize) -> Vec<u8> {
        let hi = usize::from(self.u8().unwrap_or(0));
        let lo = usize::from(self.u8().unwrap_or(0));
        let n = ((hi << 8) | lo).min(max).min(self.0.len());
        let (take, rest) = self.0.split_at(n);
        self.0 = rest;
        take.to_vec()
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = usize::from(self.u8().unwrap_or(0)) * max / 256;
        let n = n.min(self.0.len());
        let (take, rest) = self.0.split_at(n);
        self.0 = rest;
        take.to_vec()
    }
}

enum StateChoice {
    None,
    Known(u8),
    Stale,
    Forged(Vec<u8>),
}

enum EapBody {
    Start,
    Identity,
    Nak(Vec<u8>),
    ClientHello,
    Tls(Vec<u8>),
    Raw(Vec<u8>),
}

/// One thing that happens to the server.
enum Op {
    Mab {
        legacy: bool,
        who: u8,
        n: u8,
        flavour: u8,
        with_ma: bool,
        hold: bool,
    },
    Eap {
        legacy: bool,
        who: u8,
        state: StateChoice,
        body: EapBody,
    },
    Acct {
        legacy: bool,
        who: u8,
        status: u8,
        session: u8,
        good: bool,
    },
    Status {
        acct: bool,
        with_ma: bool,
        who: u8,
    },
    Raw {
        acct: bool,
        who: u8,
        bytes: Vec<u8>,
    },
    Retransmit(u8),
    Release,
    Advance(u8),
    Database(bool),
    Change(u8),
}

impl Op {
    fn read(r: &mut Reader<'_>) -> Option<Op> {
        let tag = r.u8()?;
        let a = r.u8().unwrap_or(0);
        let b = r.u8().unwrap_or(0);
        Some(match tag % 16 {
            0..=3 => Op::Mab {
                legacy: a & 1 != 0,
                who: a >> 1,
                n: b,
                flavour: r.u8().unwrap_or(0),
                with_ma: a & 0x40 == 0,
                hold: b & 0x80 != 0,
            },
            4..=7 => {
                let state = match b % 5 {
                    0 | 1 => StateChoice::None,
                    2 => StateChoice::Known(r.u8().unwrap_or(0)),
                    3 => StateChoice::Stale,
                    _ => StateChoice::Forged(r.bytes(24)),
                };
                let body = match b / 5 % 8 {
                    0 => EapBody::Start,
                    1 | 2 => EapBody::Identity,
                    3 => EapBody::Nak(r.bytes(4)),
                    4 => EapBody::ClientHello,
                    5 => EapBody::Tls(r.bytes(64)),
                    _ => EapBody::Raw(r.bytes(48)),
                };
                Op::Eap {
                    legacy: a & 1 != 0,
                    who: a >> 1,
                    state,
                    body,
                }
            }
            8 | 9 => Op::Acct {
                legacy: a & 1 != 0,
                who: a >> 1,
                status: b,
                session: r.u8().unwrap_or(0) % 8,
                good: b & 0x80 == 0,
            },
            10 => Op::Status {
                acct: a & 1 != 0,
                with_ma: a & 2 == 0,
                who: b,
            },
            // a whole datagram (the seeds are captured radclient and eapol_test traffic)
            11 => Op::Raw {
                acct: a & 1 != 0,
                who: b,
                bytes: r.exact(4096),
            },
            12 => Op::Retransmit(a),
            13 => match a % 3 {
                0 => Op::Release,
                1 => Op::Database(b & 1 != 0),
                _ => Op::Change(b),
            },
            _ => Op::Advance(a),
        })
    }
}

/// A supplicant's first TLS flight (a ClientHello) and a server for the simulation.
pub fn tls_setup() -> (crate::eap::tls::TlsServer, Vec<u8>) {
    use crate::config::tls::TlsVersion;
    let p = crate::eap::testpki::pki();
    let server = crate::eap::testpki::server(&p, TlsVersion::Tls12, TlsVersion::Tls13);
    let mut c = crate::eap::testpki::client(
        &p.ca,
        Some((p.client_chain.clone(), p.client_key.clone())),
        TlsVersion::Tls13,
    );
    let mut hello = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut hello).unwrap();
    }
    (server, hello)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    /// The stateful harness of the fuzz target `request_path`, on fixed seeds, so that the
    /// normal suite runs it too.
    #[test]
    fn request_path_on_fixed_seeds() {
        let tls = tls_setup();
        let mut replies = 0;
        for seed in 0..200u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut bytes = vec![0u8; 64 + (seed as usize % 16) * 128];
            rng.fill_bytes(&mut bytes);
            let mut sim = Sim::new(Some(tls.clone()));
            sim.run(&bytes);
            replies += sim.replies;
        }
        // the seeds reach the answering paths, not only the drops
        assert!(replies > 1000, "only {replies} replies");
    }

    /// The checked-in corpus of the fuzz target runs clean too.
    #[test]
    fn request_path_corpus() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/request_path");
        let tls = tls_setup();
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus is checked in") {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            Sim::new(Some(tls.clone())).run(&bytes);
            n += 1;
        }
        assert!(n > 0, "no corpus in {}", dir.display());
    }
}
