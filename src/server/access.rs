//! The request path as a sans-IO core: a datagram in, reply bytes (or nothing) out. Admission
//! (known client, size, framing), the Message-Authenticator rules (BlastRADIUS), Status-Server
//! (RFC 5997), Proxy-State, duplicate detection (RFC 5080), the MAB/EAP split, the policy and
//! the reply all live here; the clock is passed in and the registry is an input the core asks
//! for ([`Step::Need`]). The server (`super`) owns the sockets, threads, semaphores, the
//! registry reads behind the cache, and shutdown; the fuzz target and the unit tests drive
//! this core the same way with an in-memory registry.
//!
//! A request being answered holds an [`Answering`] guard: the reply cache learns the reply
//! when one is built, and forgets the request (so that the NAS's retransmission is processed
//! anew) whenever the guard is dropped unanswered, on whatever path.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use chrono::{DateTime, SubsecRound, Utc};
use ipnetwork::IpNetwork;
use zeroize::Zeroizing;

use crate::activity::{DecisionRecord, Sighting};
use crate::eap::eaptls::Established;
use crate::eap::tls::Refusal;
use crate::eap::{Answer, EapFailure, EapServer, Incoming, Suspended};
use crate::mac::MacAddr;
use crate::policy::{self, AuthMethod, Decision, Outcome, Reason};
use crate::radius::crypto::{
    check_accounting_authenticator, check_request_ma, sign_response, Key as SecretKey, MaCheck,
};
use crate::radius::dict::{self, code};
use crate::radius::{Builder, EncodeError, Packet, MAX_PACKET_LEN};
use crate::secret::Secret;
use crate::sync::lock;

use super::acct::{self, AcctAction};
use super::cache::Subject;
use super::coalesce::{self, Coalescer, Fold};
use super::dedup::{DedupCache, Key, Seen};
use super::recorder::Record;
use super::request::{self, MabProblem};
use super::stats::Stats;

/// The clock, passed in: monotonic for windows and expiry, wall time for records and
/// certificate validity.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// For windows, timeouts and expiry.
    pub mono: Instant,
    /// For records, certificate validity and contract dates.
    pub wall: DateTime<Utc>,
}

impl Now {
    /// The system clock, read once (for the edges only).
    pub fn system() -> Now {
        Now {
            mono: Instant::now(),
            wall: Utc::now(),
        }
    }
}

/// Which listener a datagram came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Authentication (1812).
    Auth,
    /// Accounting (1813).
    Acct,
}

/// A configured NAS client.
#[derive(Debug)]
pub struct Client {
    /// Its name in the config and the records.
    pub name: String,
    /// The addresses it sends from.
    pub network: IpNetwork,
    /// The shared secret.
    pub secret: Secret,
    /// The secret, keyed for HMAC-MD5.
    pub key: SecretKey,
    /// Requests without a Message-Authenticator are dropped.
    pub require_ma: bool,
    /// MAC authentication is served.
    pub mab: bool,
    /// MAB needs a Calling-Station-Id that is a MAC (RFC 3580 §3.21).
    pub mab_require_calling_station: bool,
}

impl Client {
    /// A `[[radius.clients]]` entry, with the `[radius]` defaults it does not override.
    pub fn from_config(
        c: &crate::config::ClientConfig,
        radius: &crate::config::RadiusConfig,
    ) -> Client {
        Client {
            name: c.name.clone(),
            network: c.network,
            secret: c.secret.clone(),
            key: SecretKey::new(c.secret.expose().as_bytes()),
            require_ma: c
                .require_message_authenticator
                .unwrap_or(radius.require_message_authenticator),
            mab: c.mab.unwrap_or(radius.mab),
            mab_require_calling_station: c
                .mab_require_calling_station_id
                .unwrap_or(radius.mab_require_calling_station_id),
        }
    }
}

/// What the core says to do.
#[derive(Debug)]
pub enum Step {
    /// Send this to the request's source.
    Send(Reply),
    /// Send nothing: dropped (and counted), or a copy of a request being answered.
    Silent,
    /// The device behind [`Pending::want`] is needed: look it up (cache, then registry) and
    /// hand it to [`Access::resolve`], or to [`Access::unresolved`] when the registry fails.
    Need(Box<Pending>),
    /// An EAP step: CPU work (a TLS handshake step) to run where it suits, with
    /// [`Access::eap_turn`].
    Eap(Box<EapTurn>),
    /// An accounting update to store; then [`Access::accounted`].
    Account(Box<AcctWork>),
}

/// A reply, and the records it leaves for the decision log.
#[derive(Debug)]
pub struct Reply {
    /// The datagram.
    pub bytes: Vec<u8>,
    /// Decisions and sightings to store (empty for challenges and repeats).
    pub records: Vec<Record>,
}

impl Reply {
    fn bare(bytes: Vec<u8>) -> Reply {
        Reply {
            bytes,
            records: Vec::new(),
        }
    }
}

/// Marks a request as being answered in the reply cache; forgets it when dropped unanswered.
pub struct Answering {
    dedup: Arc<Mutex<DedupCache>>,
    key: Key,
    done: bool,
}

impl Answering {
    /// Caches `reply` for retransmissions (before it is sent: a retransmission that overtakes
    /// a slow answer must find it).
    fn answered(mut self, reply: &[u8]) {
        lock(&self.dedup).answered(&self.key, reply.to_vec());
        self.done = true;
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.dedup).forget(&self.key);
        }
    }
}

impl std::fmt::Debug for Answering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answering")
            .field("src", &self.key.src)
            .field("id", &self.key.id)
            .finish_non_exhaustive()
    }
}

/// What an Access-Request says, owned so that it can wait for the registry.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// Where it came from.
    pub src: SocketAddr,
    /// The client entry.
    pub client: usize,
    identifier: u8,
    authenticator: [u8; 16],
    username: String,
    mac: Option<MacAddr>,
    ssid: Option<String>,
    nas_ip: IpAddr,
    /// Proxy-State attributes, echoed in the reply in order (RFC 2865 §5.33).
    proxy_state: Vec<Vec<u8>>,
    /// Whether a valid Message-Authenticator proved the request came from the client.
    authenticated: bool,
    method: AuthMethod,
}

/// How an authentication ends on the EAP side: nothing (MAB), an EAP-Failure in a reject, or
/// an EAP-Success with the keys in an accept.
enum EapEnd {
    None,
    Failure(u8),
    Success { id: u8, msk: Zeroizing<[u8; 64]> },
}

/// The one outcome of MAB and EAP alike: the reply is built from it once.
struct Verdict {
    decision: Decision,
    subject: Option<Subject>,
    eap: EapEnd,
}

/// Which registry entry a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// The device with this MAC (MAB).
    Mac(MacAddr),
    /// The device holding the certificate with this SHA-256 fingerprint (EAP-TLS).
    Certificate(String),
}

enum Then {
    /// Decide and answer; with the EAP end of a finished handshake.
    Decide(EapEnd),
    /// TLS 1.2 held before the server's Finished: judge, then resume the handshake.
    Judge(Box<Suspended>),
    /// The handshake refused the device: record and answer why.
    Refused(u8),
}

/// A request waiting for the registry.
pub struct Pending {
    req: AuthRequest,
    answering: Answering,
    want: Want,
    then: Then,
}

impl Pending {
    /// The registry entry it needs.
    pub fn want(&self) -> &Want {
        &self.want
    }

    /// Where the request came from.
    pub fn src(&self) -> SocketAddr {
        self.req.src
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("src", &self.req.src)
            .field("want", &self.want)
            .finish_non_exhaustive()
    }
}

/// The EAP part of one Access-Request.
struct EapInput {
    eap: Vec<u8>,
    state: Option<Vec<u8>>,
    framed_mtu: Option<u32>,
}

enum Turn {
    Handle(EapInput),
    Resume(Box<Suspended>, Option<Refusal>),
}

/// An EAP step to run.
pub struct EapTurn {
    req: AuthRequest,
    answering: Answering,
    turn: Turn,
}

impl EapTurn {
    /// Where the request came from.
    pub fn src(&self) -> SocketAddr {
        self.req.src
    }
}

impl std::fmt::Debug for EapTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EapTurn")
            .field("src", &self.req.src)
            .finish_non_exhaustive()
    }
}

/// An accounting update waiting to be stored.
pub struct AcctWork {
    /// Where it came from.
    pub src: SocketAddr,
    /// The client entry's name.
    pub nas: String,
    /// What to store.
    pub action: AcctAction,
    client: usize,
    identifier: u8,
    authenticator: [u8; 16],
    proxy_state: Vec<Vec<u8>>,
    answering: Answering,
}

impl std::fmt::Debug for AcctWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcctWork")
            .field("src", &self.src)
            .field("nas", &self.nas)
            .finish_non_exhaustive()
    }
}

/// The request path's state: clients, rules, the reply cache, the decision folding, the EAP
/// engine and the counters.
pub struct Access {
    clients: Vec<Client>,
    rules: policy::Rules,
    stats: Arc<Stats>,
    dedup: Arc<Mutex<DedupCache>>,
    coalescer: Mutex<Coalescer>,
    eap: Option<Arc<EapServer>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

/// A peer's text for a message: control characters replaced, at most 64 characters.
fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn proxy_states(p: &Packet<'_>) -> Vec<Vec<u8>> {
    p.attributes()
        .filter(|(t, _)| *t == dict::PROXY_STATE)
        .map(|(_, v)| v.to_vec())
        .collect()
}

fn status_reply(code: u8, p: &Packet<'_>, secret: &SecretKey) -> Vec<u8> {
    let (mut buf, off) = Builder::with_message_authenticator(code, p.identifier()).into_unsigned();
    sign_response(&mut buf, off, &p.authenticator(), secret);
    buf
}

impl Access {
    /// A core over `clients` and `rules`, with a reply cache of `dedup` and decisions folded
    /// by `coalescer`.
    pub fn new(
        clients: Vec<Client>,
        rules: policy::Rules,
        stats: Arc<Stats>,
        dedup: DedupCache,
        coalescer: Coalescer,
        eap: Option<Arc<EapServer>>,
    ) -> Access {
        Access {
            clients,
            rules,
            stats,
            dedup: Arc::new(Mutex::new(dedup)),
            coalescer: Mutex::new(coalescer),
            eap,
        }
    }

    /// The configured clients.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// The EAP engine, when EAP-TLS is on.
    pub fn eap(&self) -> Option<&Arc<EapServer>> {
        self.eap.as_ref()
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Folded decisions whose window has passed, for the decision log.
    pub fn sweep(&self, now: Instant) -> Vec<Record> {
        let swept = lock(&self.coalescer).sweep(now);
        swept.into_iter().map(Record::Decision).collect()
    }

    /// Every folded decision, at shutdown.
    pub fn drain(&self) -> Vec<Record> {
        let drained = lock(&self.coalescer).drain();
        drained.into_iter().map(Record::Decision).collect()
    }

    fn client_for(&self, ip: IpAddr) -> Option<usize> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.clients
            .iter()
            .enumerate()
            .filter(|(_, c)| c.network.contains(ip))
            .max_by_key(|(_, c)| c.network.prefix())
            .map(|(i, _)| i)
    }

    /// Known client, size, framing: the client's index and the parsed packet, or `None`
    /// (dropped and counted; an unknown client is visible in the log).
    fn admit<'a>(&self, data: &'a [u8], src: SocketAddr) -> Option<(usize, Packet<'a>)> {
        let Some(ci) = self.client_for(src.ip()) else {
            Stats::inc(&self.stats.dropped_unknown_client);
            tracing::debug!(%src, "dropped: unknown client");
            return None;
        };
        if data.len() > MAX_PACKET_LEN {
            Stats::inc(&self.stats.dropped_malformed);
            tracing::debug!(%src, client = %self.clients[ci].name, "dropped: datagram over 4096 bytes");
            return None;
        }
        match Packet::parse(data) {
            Ok(p) => Some((ci, p)),
            Err(e) => {
                Stats::inc(&self.stats.dropped_malformed);
                tracing::debug!(%src, client = %self.clients[ci].name, error = %e, "dropped: malformed");
                None
            }
        }
    }

    /// The reply cache: a guard for a new request, or what to do with a repeated one.
    fn first_time(&self, key: Key, now: Instant) -> Result<Answering, Step> {
        let seen = lock(&self.dedup).check(key, now);
        match seen {
            Seen::New => Ok(Answering {
                dedup: self.dedup.clone(),
                key,
                done: false,
            }),
            Seen::InProgress => {
                Stats::inc(&self.stats.duplicates);
                Err(Step::Silent)
            }
            Seen::Answered(reply) => {
                Stats::inc(&self.stats.duplicates);
                tracing::debug!(src = %key.src, id = key.id, "retransmission: repeating the reply");
                Err(Step::Send(Reply::bare(reply)))
            }
        }
    }

    /// One datagram from `src` on `port`.
    pub fn datagram(&self, data: &[u8], src: SocketAddr, port: Port, now: Now) -> Step {
        match port {
            Port::Auth => self.access_request(data, src, now),
            Port::Acct => self.accounting_request(data, src, now),
        }
    }

    fn access_request(&self, data: &[u8], src: SocketAddr, now: Now) -> Step {
        let Some((ci, p)) = self.admit(data, src) else {
            return Step::Silent;
        };
        let client = &self.clients[ci];
        let is_status = match p.code() {
            code::ACCESS_REQUEST => false,
            code::STATUS_SERVER => true,
            other => {
                Stats::inc(&self.stats.dropped_unexpected_code);
                tracing::debug!(%src, client = %client.name, code = dict::code::name(other), "dropped: not served on the authentication port");
                return Step::Silent;
            }
        };
        let ma = check_request_ma(&p, &client.key);
        match ma {
            MaCheck::Valid => {}
            MaCheck::Invalid => {
                Stats::inc(&self.stats.dropped_bad_authenticator);
                tracing::debug!(%src, client = %client.name, "dropped: Message-Authenticator does not verify (wrong secret?)");
                return Step::Silent;
            }
            // RFC 5997 and RFC 3579 require it on Status-Server and on EAP; config on the
            // rest. Where it is not required, Proxy-State without it is still refused:
            // echoing an attacker's Proxy-State is what BlastRADIUS exploits
            MaCheck::Absent
                if is_status
                    || client.require_ma
                    || p.attr(dict::EAP_MESSAGE).is_some()
                    || p.attr(dict::PROXY_STATE).is_some() =>
            {
                Stats::inc(&self.stats.dropped_missing_message_authenticator);
                tracing::debug!(%src, client = %client.name, "dropped: no Message-Authenticator (BlastRADIUS protection)");
                return Step::Silent;
            }
            MaCheck::Absent => {}
        }
        if is_status {
            Stats::inc(&self.stats.status);
            return Step::Send(Reply::bare(status_reply(
                code::ACCESS_ACCEPT,
                &p,
                &client.key,
            )));
        }
        let answering = match self.first_time(Key::of(src, &p), now.mono) {
            Ok(a) => a,
            Err(step) => return step,
        };
        let username = p
            .text(dict::USER_NAME)
            .map(str::to_string)
            .unwrap_or_else(|| {
                p.attr(dict::USER_NAME)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            });
        let mut req = AuthRequest {
            src,
            client: ci,
            identifier: p.identifier(),
            authenticator: p.authenticator(),
            username,
            mac: request::calling_station_mac(&p),
            ssid: request::ssid(&p),
            nas_ip: p
                .ipv4(dict::NAS_IP_ADDRESS)
                .map(IpAddr::V4)
                .unwrap_or_else(|| src.ip()),
            proxy_state: proxy_states(&p),
            authenticated: ma == MaCheck::Valid,
            method: AuthMethod::Mab,
        };
        if let Some(eap) = p.concat(dict::EAP_MESSAGE) {
            req.method = AuthMethod::EapTls;
            if self.eap.is_none() {
                let id = eap.get(1).copied().unwrap_or(0);
                let decision = Decision::reject(
                    Reason::UnsupportedMethod,
                    "rejected: 802.1X EAP is not enabled on this server (eap.enabled, or no server certificate: `poortwachter ca init`)".to_string(),
                );
                return self.answer(&req, answering, decision, None, EapEnd::Failure(id), now);
            }
            return Step::Eap(Box::new(EapTurn {
                req,
                answering,
                turn: Turn::Handle(EapInput {
                    eap,
                    state: p.attr(dict::STATE).map(<[u8]>::to_vec),
                    framed_mtu: p.u32(dict::FRAMED_MTU),
                }),
            }));
        }
        let secret = client.secret.expose().as_bytes();
        let refuse = |req: &AuthRequest, answering, decision| {
            self.answer(req, answering, decision, None, EapEnd::None, now)
        };
        let mac = match request::mab(&p, secret) {
            Ok(mac) => mac,
            Err(problem) => {
                let decision = mab_problem(problem, &req.username);
                return refuse(&req, answering, decision);
            }
        };
        req.mac = Some(mac);
        if !client.mab {
            let decision = Decision::reject(
                Reason::MabDisabled,
                format!(
                    "rejected: MAC authentication is disabled for {}",
                    client.name
                ),
            );
            return refuse(&req, answering, decision);
        }
        if client.mab_require_calling_station && request::calling_station_mac(&p).is_none() {
            let decision = Decision::reject(
                Reason::NoMac,
                match p.text(dict::CALLING_STATION_ID) {
                    Some(cs) => format!("rejected: MAB with Calling-Station-Id `{}`, which is not a MAC address (radius.mab_require_calling_station_id)", printable(cs)),
                    None => "rejected: MAB without a Calling-Station-Id: the access point must send the device's MAC in it (RFC 3580 §3.21; radius.mab_require_calling_station_id)".to_string(),
                },
            );
            return refuse(&req, answering, decision);
        }
        Step::Need(Box::new(Pending {
            req,
            answering,
            want: Want::Mac(mac),
            then: Then::Decide(EapEnd::None),
        }))
    }

    /// Carries on with the registry's answer for a [`Step::Need`] (`None`: no such device).
    pub fn resolve(&self, pending: Box<Pending>, subject: Option<Subject>, now: Now) -> Step {
        let Pending {
            req,
            answering,
            want,
            then,
        } = *pending;
        match then {
            Then::Decide(end) => {
                let decision = match (&want, &subject) {
                    (Want::Certificate(fp), None) => certificate_unknown(fp),
                    _ => self.policy(&req, subject.as_ref(), now.wall),
                };
                let end = match (decision.outcome, end) {
                    (Outcome::Accept, end) => end,
                    (Outcome::Reject, EapEnd::Success { id, .. }) => EapEnd::Failure(id),
                    (Outcome::Reject, end) => end,
                };
                self.answer(&req, answering, decision, subject, end, now)
            }
            Then::Judge(suspended) => {
                let refusal = self.judgement(&req, subject.as_ref(), now.wall);
                if let Some(r) = refusal {
                    tracing::debug!(alert = ?r, "refusing the device inside the TLS handshake");
                }
                Step::Eap(Box::new(EapTurn {
                    req,
                    answering,
                    turn: Turn::Resume(suspended, refusal),
                }))
            }
            Then::Refused(id) => {
                let decision = match (&want, &subject) {
                    (Want::Certificate(fp), None) => certificate_unknown(fp),
                    _ => self.policy(&req, subject.as_ref(), now.wall),
                };
                // no keys after a refused handshake: should the registry allow the device
                // by now, it is still refused, and its next attempt is decided anew
                let decision = match decision.outcome {
                    Outcome::Reject => decision,
                    Outcome::Accept => Decision::reject(
                        Reason::TlsFailed,
                        "rejected: refused inside the TLS handshake, but the registry allows the device by now; its next attempt is decided anew".to_string(),
                    ),
                };
                self.answer(&req, answering, decision, subject, EapEnd::Failure(id), now)
            }
        }
    }

    /// Carries on when the registry could not be read for a [`Step::Need`]: a handshake
    /// waiting for its judgement finishes (the decision after it reads again), a refusal
    /// is answered as such, anything else is dropped (the NAS retransmits).
    pub fn unresolved(&self, pending: Box<Pending>, now: Now) -> Step {
        let Pending {
            req,
            answering,
            then,
            ..
        } = *pending;
        match then {
            Then::Judge(suspended) => Step::Eap(Box::new(EapTurn {
                req,
                answering,
                turn: Turn::Resume(suspended, None),
            })),
            Then::Refused(id) => {
                let decision = Decision::reject(
                    Reason::TlsFailed,
                    "rejected: refused inside the TLS handshake; the registry could not be read again to record why".to_string(),
                );
                self.answer(&req, answering, decision, None, EapEnd::Failure(id), now)
            }
            Then::Decide(_) => {
                Stats::inc(&self.stats.dropped_backend);
                tracing::error!("registry lookup failed; request dropped");
                drop(answering);
                Step::Silent
            }
        }
    }

    /// Runs one EAP step (TLS work: CPU) and says what follows.
    pub fn eap_turn(&self, turn: Box<EapTurn>, now: Now) -> Step {
        let EapTurn {
            mut req,
            answering,
            turn,
        } = *turn;
        let Some(engine) = self.eap.as_ref() else {
            // EAP was on when the turn was made; never panic on a peer's packet
            return Step::Silent;
        };
        let wall = SystemTime::from(now.wall);
        let answer = match turn {
            Turn::Handle(input) => engine.handle(
                Incoming {
                    peer: (req.client, req.src.ip()),
                    state: input.state.as_deref(),
                    eap: &input.eap,
                    framed_mtu: input.framed_mtu,
                },
                now.mono,
                wall,
            ),
            Turn::Resume(suspended, refusal) => engine.resume(suspended, refusal, now.mono, wall),
        };
        match answer {
            Answer::Challenge { eap, state } => {
                let client = &self.clients[req.client];
                match challenge(&req, &eap, &state, &client.key) {
                    Ok(bytes) => {
                        answering.answered(&bytes);
                        Stats::inc(&self.stats.challenges);
                        Step::Send(Reply::bare(bytes))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not encode the challenge; dropped");
                        Step::Silent
                    }
                }
            }
            Answer::Discard(why) => {
                Stats::inc(&self.stats.dropped_eap);
                tracing::debug!("dropped: {why}");
                Step::Silent
            }
            Answer::Judge(suspended) => {
                if !suspended.identity().is_empty() {
                    req.username = suspended.identity().to_string();
                }
                let want = Want::Certificate(crate::pki::fingerprint(suspended.certificate()));
                Step::Need(Box::new(Pending {
                    req,
                    answering,
                    want,
                    then: Then::Judge(suspended),
                }))
            }
            Answer::Failed {
                identity,
                eap_id,
                why,
            } => {
                if !identity.is_empty() {
                    req.username = identity;
                }
                let reason = match why {
                    EapFailure::MethodRefused { .. } => Reason::EapMethodRefused,
                    EapFailure::Tls(_) => Reason::TlsFailed,
                    EapFailure::Protocol(_) => Reason::EapProtocol,
                    // the supplicant heard the refusal as a TLS alert; the decision row
                    // says why, as for any other refusal
                    EapFailure::Refused { certificate } => {
                        return Step::Need(Box::new(Pending {
                            req,
                            answering,
                            want: Want::Certificate(crate::pki::fingerprint(&certificate)),
                            then: Then::Refused(eap_id),
                        }));
                    }
                };
                let decision = Decision::reject(reason, format!("rejected: {why}"));
                self.answer(
                    &req,
                    answering,
                    decision,
                    None,
                    EapEnd::Failure(eap_id),
                    now,
                )
            }
            Answer::Authenticated {
                identity,
                eap_id,
                tls,
            } => {
                if !identity.is_empty() {
                    req.username = identity;
                }
                let Established {
                    peer_certificate,
                    version,
                    keys,
                } = *tls;
                let fingerprint = crate::pki::fingerprint(&peer_certificate);
                tracing::debug!(
                    tls = version.as_str(),
                    certificate = &fingerprint[..16],
                    "EAP-TLS handshake complete"
                );
                Step::Need(Box::new(Pending {
                    req,
                    answering,
                    want: Want::Certificate(fingerprint),
                    then: Then::Decide(EapEnd::Success {
                        id: eap_id,
                        msk: keys.msk,
                    }),
                }))
            }
        }
    }

    /// The policy's decision for the device the request names.
    fn policy(&self, req: &AuthRequest, subject: Option<&Subject>, now: DateTime<Utc>) -> Decision {
        let client = &self.clients[req.client];
        let preq = policy::Request {
            method: req.method,
            identity: &req.username,
            mac: req.mac,
            nas: &client.name,
            ssid: req.ssid.as_deref(),
        };
        policy::decide(&preq, subject.map(|s| (&s.0, &s.1)), now, &self.rules)
    }

    /// The TLS alert, if any, that refuses the device behind a client certificate: the
    /// same policy as after the handshake, asked before it may finish.
    fn judgement(
        &self,
        req: &AuthRequest,
        subject: Option<&Subject>,
        now: DateTime<Utc>,
    ) -> Option<Refusal> {
        let Some(subject) = subject else {
            return Some(Refusal::Denied);
        };
        let decision = self.policy(req, Some(subject), now);
        match (decision.outcome, decision.reason) {
            (Outcome::Accept, _) => None,
            (_, Reason::DeviceRevoked | Reason::DeviceLost) => Some(Refusal::Revoked),
            _ => Some(Refusal::Denied),
        }
    }

    /// Builds, caches and counts the reply to a decided request, with its records.
    fn answer(
        &self,
        req: &AuthRequest,
        answering: Answering,
        decision: Decision,
        subject: Option<Subject>,
        eap: EapEnd,
        now: Now,
    ) -> Step {
        let verdict = Verdict {
            decision,
            subject,
            eap,
        };
        let client = &self.clients[req.client];
        let bytes = match reply_packet(req, &verdict, client) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "could not encode the reply; request dropped");
                return Step::Silent;
            }
        };
        answering.answered(&bytes);
        let Verdict {
            decision, subject, ..
        } = verdict;
        let accepted = decision.outcome == Outcome::Accept;
        Stats::inc(if accepted {
            &self.stats.accepts
        } else {
            &self.stats.rejects
        });
        let span = tracing::Span::current();
        span.record("outcome", decision.outcome.as_str());
        span.record("reason", decision.reason.as_str());
        tracing::debug!(
            outcome = decision.outcome.as_str(),
            reason = decision.reason.as_str(),
            vlan = decision.vlan.map(|v| v.get()),
            mac = req.mac.map(|m| m.to_string()),
            "{}",
            crate::text::Escaped(&decision.message)
        );
        let records = self.records(req, decision, subject.as_ref(), now);
        Step::Send(Reply { bytes, records })
    }

    /// What a decision leaves for the decision log: repeats within the window are folded
    /// into one row; an authenticated accept moves the device's last-seen.
    fn records(
        &self,
        req: &AuthRequest,
        decision: Decision,
        subject: Option<&Subject>,
        now: Now,
    ) -> Vec<Record> {
        let client = &self.clients[req.client];
        let at = now.wall.trunc_subsecs(6);
        let accepted = decision.outcome == Outcome::Accept;
        let device = subject.map(|s| &s.0);
        let owner = subject.map(|s| &s.1);
        let fold_key = req.mac.map(|mac| coalesce::Key {
            client: req.client,
            mac,
            accept: accepted,
            reason: decision.reason.as_str(),
            vlan: decision.vlan.map(|v| v.get()),
        });
        let repeats = match fold_key {
            Some(key) => {
                let folded = lock(&self.coalescer).fold(key, now.mono, at);
                match folded {
                    Fold::Folded => return Vec::new(),
                    Fold::Store { repeats } => repeats,
                }
            }
            None => 0,
        };
        let mut out = Vec::with_capacity(2);
        // a request without a Message-Authenticator may be forged by anyone who can use the
        // client's source address: it does not move the device's last-seen
        if let (true, true, Some(d)) = (accepted, req.authenticated, device) {
            out.push(Record::Seen(Sighting {
                device_id: d.id,
                at,
                nas: client.name.clone(),
                ssid: req.ssid.clone(),
                mac: req.mac,
            }));
        }
        let record = DecisionRecord {
            id: 0,
            at,
            nas: client.name.clone(),
            nas_ip: Some(req.nas_ip.to_string()),
            username: req.username.chars().take(253).collect(),
            mac: req.mac,
            ssid: req.ssid.clone(),
            method: req.method.as_str().to_string(),
            device_id: device.map(|d| d.id),
            owner: owner.map(|o| o.username.clone()),
            outcome: decision.outcome.as_str().to_string(),
            vlan: decision.vlan.map(|v| v.get()),
            reason: decision.reason.as_str().to_string(),
            message: decision.message,
            repeats,
        };
        if let Some(key) = fold_key {
            let given_up = lock(&self.coalescer).stored(key, Arc::new(record.clone()), now.mono);
            out.extend(given_up.into_iter().map(Record::Decision));
        }
        out.push(Record::Decision(record));
        out
    }

    fn accounting_request(&self, data: &[u8], src: SocketAddr, now: Now) -> Step {
        let Some((ci, p)) = self.admit(data, src) else {
            return Step::Silent;
        };
        let client = &self.clients[ci];
        match p.code() {
            code::ACCOUNTING_REQUEST => {}
            code::STATUS_SERVER => {
                if check_request_ma(&p, &client.key) != MaCheck::Valid {
                    Stats::inc(&self.stats.dropped_bad_authenticator);
                    return Step::Silent;
                }
                Stats::inc(&self.stats.status);
                return Step::Send(Reply::bare(status_reply(
                    code::ACCOUNTING_RESPONSE,
                    &p,
                    &client.key,
                )));
            }
            other => {
                Stats::inc(&self.stats.dropped_unexpected_code);
                tracing::debug!(%src, client = %client.name, code = dict::code::name(other), "dropped: not served on the accounting port");
                return Step::Silent;
            }
        }
        if !check_accounting_authenticator(&p, &client.key)
            || check_request_ma(&p, &client.key) == MaCheck::Invalid
        {
            Stats::inc(&self.stats.dropped_bad_authenticator);
            tracing::debug!(%src, client = %client.name, "dropped: accounting authenticator does not verify (wrong secret?)");
            return Step::Silent;
        }
        let answering = match self.first_time(Key::of(src, &p), now.mono) {
            Ok(a) => a,
            Err(step) => return step,
        };
        let action = acct::read(
            &p,
            &client.name,
            src.ip().to_string(),
            now.wall.trunc_subsecs(6),
        );
        Step::Account(Box::new(AcctWork {
            src,
            nas: client.name.clone(),
            action,
            client: ci,
            identifier: p.identifier(),
            authenticator: p.authenticator(),
            proxy_state: proxy_states(&p),
            answering,
        }))
    }

    /// The Accounting-Response once the update is stored; nothing when storing failed (the
    /// NAS retransmits, and the retransmission is processed anew).
    pub fn accounted(&self, work: Box<AcctWork>, stored: bool) -> Step {
        if !stored {
            Stats::inc(&self.stats.dropped_backend);
            return Step::Silent;
        }
        let client = &self.clients[work.client];
        // no Message-Authenticator: RFC 2866 does not define one here, and implementations
        // disagree on its input (FreeRADIUS zeroes the vector); the Response Authenticator
        // already covers the reply
        let mut b = Builder::new(code::ACCOUNTING_RESPONSE, work.identifier);
        for ps in &work.proxy_state {
            // each came in a packet of at most 4096 bytes: it fits
            let _ = b.add(dict::PROXY_STATE, ps);
        }
        let (mut buf, off) = b.into_unsigned();
        sign_response(&mut buf, off, &work.authenticator, &client.key);
        work.answering.answered(&buf);
        Stats::inc(&self.stats.accounting);
        Step::Send(Reply::bare(buf))
    }
}

fn certificate_unknown(fingerprint: &str) -> Decision {
    Decision::reject(
        Reason::CertificateUnknown,
        format!(
            "rejected: the certificate (SHA-256 {}…) is valid but belongs to no registered device; it was replaced or never issued here",
            &fingerprint[..16.min(fingerprint.len())]
        ),
    )
}

fn mab_problem(problem: MabProblem, username: &str) -> Decision {
    match problem {
        MabProblem::NotMab => Decision::reject(
            Reason::UnsupportedMethod,
            format!("rejected: User-Name `{}` is not a MAC address and only MAC authentication is enabled", printable(username)),
        ),
        MabProblem::NoPassword | MabProblem::PasswordMismatch => Decision::reject(
            Reason::MabBadPassword,
            "rejected: the MAB password is not the device's MAC address".to_string(),
        ),
        MabProblem::ShortChapChallenge(len) => Decision::reject(
            Reason::MabBadPassword,
            format!("rejected: a CHAP-Challenge of {len} octets (at least 5, RFC 2865 §5.40)"),
        ),
        MabProblem::MacMismatch {
            user_name,
            calling_station,
        } => Decision::reject(
            Reason::MacMismatch,
            format!("rejected: User-Name says {user_name} but Calling-Station-Id says {calling_station}"),
        ),
    }
}

/// An Access-Challenge (RFC 3579 §2.6.4): the EAP-Request split over EAP-Message
/// attributes, the State, Proxy-State echoed, signed with a Message-Authenticator.
fn challenge(
    req: &AuthRequest,
    eap: &[u8],
    state: &[u8; 16],
    secret: &SecretKey,
) -> Result<Vec<u8>, EncodeError> {
    let mut b = Builder::with_message_authenticator(code::ACCESS_CHALLENGE, req.identifier);
    for ps in &req.proxy_state {
        b.add(dict::PROXY_STATE, ps)?;
    }
    b.add_split(dict::EAP_MESSAGE, eap)?;
    b.add(dict::STATE, state)?;
    let (mut buf, off) = b.into_unsigned();
    sign_response(&mut buf, off, &req.authenticator, secret);
    Ok(buf)
}

/// The Access-Accept or Access-Reject of a verdict, MAB and EAP alike.
fn reply_packet(req: &AuthRequest, v: &Verdict, client: &Client) -> Result<Vec<u8>, EncodeError> {
    let decision = &v.decision;
    let accepted = decision.outcome == Outcome::Accept;
    let code = if accepted {
        code::ACCESS_ACCEPT
    } else {
        code::ACCESS_REJECT
    };
    let mut b = Builder::with_message_authenticator(code, req.identifier);
    for ps in &req.proxy_state {
        b.add(dict::PROXY_STATE, ps)?;
    }
    match &v.eap {
        EapEnd::None => {}
        // RFC 3579 §2.6.3: a reject to an EAP request carries an EAP-Failure
        EapEnd::Failure(id) => {
            b.add(dict::EAP_MESSAGE, &crate::eap::packet::failure(*id))?;
        }
        EapEnd::Success { id, msk } => {
            if accepted {
                add_success(
                    &mut b,
                    *id,
                    msk,
                    client.secret.expose().as_bytes(),
                    &req.authenticator,
                )?;
            } else {
                b.add(dict::EAP_MESSAGE, &crate::eap::packet::failure(*id))?;
            }
        }
    }
    if accepted {
        if let Some(vlan) = decision.vlan {
            // RFC 3580 §3.31: the three tunnel attributes, untagged (tag 0)
            b.add_tagged_u32(dict::TUNNEL_TYPE, 0, dict::TUNNEL_TYPE_VLAN)?;
            b.add_tagged_u32(dict::TUNNEL_MEDIUM_TYPE, 0, dict::TUNNEL_MEDIUM_IEEE_802)?;
            b.add_text(dict::TUNNEL_PRIVATE_GROUP_ID, &vlan.get().to_string())?;
        }
        if let Some(t) = decision.session_timeout {
            b.add_u32(dict::SESSION_TIMEOUT, t)?;
            // re-authenticate at the timeout rather than just cut off: the next decision
            // applies the contract end and compliance then
            b.add_u32(dict::TERMINATION_ACTION, 1)?;
        }
        if let Some(class) = &decision.class {
            b.add_text(dict::CLASS, class)?;
        }
    }
    let (mut buf, off) = b.into_unsigned();
    sign_response(&mut buf, off, &req.authenticator, &client.key);
    Ok(buf)
}

/// The EAP-Success and the MS-MPPE keys (RFC 2548, salt-encrypted with the client's secret
/// and this request's authenticator).
fn add_success(
    b: &mut Builder,
    id: u8,
    msk: &[u8; 64],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<(), EncodeError> {
    b.add(dict::EAP_MESSAGE, &crate::eap::packet::success(id))?;
    // two different salts (RFC 2548 §2.4.2: each salt unique within a packet)
    let salt: u16 = rand::random::<u16>() & 0x7ffe;
    let recv = crate::radius::crypto::salt_encrypt(&msk[..32], secret, authenticator, salt);
    let send = crate::radius::crypto::salt_encrypt(&msk[32..], secret, authenticator, salt | 1);
    b.add_vendor(dict::VENDOR_MICROSOFT, dict::MS_MPPE_RECV_KEY, &recv)?;
    b.add_vendor(dict::VENDOR_MICROSOFT, dict::MS_MPPE_SEND_KEY, &send)?;
    Ok(())
}
