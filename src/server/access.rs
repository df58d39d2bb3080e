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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use chrono::{DateTime, SubsecRound, Utc};
use ipnetwork::IpNetwork;
use zeroize::Zeroizing;

use crate::activity::{DecisionAggregate, DecisionRecord, Sighting, AGGREGATE_OTHER_AP};
use crate::coa::enforcer::NasClient;
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
use super::aggregate::{self, Aggregator, Ap, Tally};
use super::cache::Subject;
use super::coalesce::{self, Coalescer, Fold};
use super::dedup::{DedupCache, Key, Seen};
use super::labelled::{ClientDecisions, DecisionCounters};
use super::loglimit::LogLimit;
use super::recorder::Record;
use super::request::{self, MabProblem};
use super::secrets::{Used, Which};
use super::stats::Stats;
use super::warn::{Misconfig, Warnings};

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
    /// Stable for its name for the life of the process (reloads included): the key of its
    /// EAP conversations, folded decisions and counts.
    pub id: usize,
    /// Its name in the config and the records.
    pub name: String,
    /// The addresses it sends from.
    pub network: IpNetwork,
    /// The shared secret.
    pub secret: Secret,
    /// The secret, keyed for HMAC-MD5.
    pub key: SecretKey,
    /// The second secret accepted during a rotation (`secret_next`), tried only when the
    /// first does not verify.
    pub next: Option<(Secret, SecretKey)>,
    /// Requests each secret verified.
    pub used: Arc<Used>,
    /// Requests without a Message-Authenticator are dropped.
    pub require_ma: bool,
    /// MAC authentication is served.
    pub mab: bool,
    /// MAB needs a Calling-Station-Id that is a MAC (RFC 3580 §3.21).
    pub mab_require_calling_station: bool,
    /// Its decision counters (`poortwachter_decisions_total`), found by name on first use.
    pub decisions: OnceLock<Arc<ClientDecisions>>,
    /// The client as a Disconnect/CoA target (its `coa_port`, `coa_action` and the secret
    /// requests to it are signed with): the enforcer finds it here, so a reload reaches it.
    pub coa: Arc<NasClient>,
}

impl Client {
    /// A `[[radius.clients]]` entry, with the `[radius]` defaults it does not override.
    pub fn from_config(
        c: &crate::config::ClientConfig,
        radius: &crate::config::RadiusConfig,
    ) -> Client {
        Client {
            id: 0,
            name: c.name.clone(),
            network: c.network,
            secret: c.secret.clone(),
            key: SecretKey::new(c.secret.expose().as_bytes()),
            next: c
                .secret_next
                .as_ref()
                .map(|s| (s.clone(), SecretKey::new(s.expose().as_bytes()))),
            used: Arc::default(),
            require_ma: c
                .require_message_authenticator
                .unwrap_or(radius.require_message_authenticator),
            mab: c.mab.unwrap_or(radius.mab),
            mab_require_calling_station: c
                .mab_require_calling_station_id
                .unwrap_or(radius.mab_require_calling_station_id),
            decisions: OnceLock::new(),
            coa: Arc::new(NasClient::from_config(c)),
        }
    }

    /// One of its secrets, keyed.
    pub fn key(&self, which: Which) -> &SecretKey {
        match (which, &self.next) {
            (Which::Secondary, Some((_, key))) => key,
            _ => &self.key,
        }
    }

    /// One of its secrets.
    pub fn secret(&self, which: Which) -> &Secret {
        match (which, &self.next) {
            (Which::Secondary, Some((secret, _))) => secret,
            _ => &self.secret,
        }
    }

    /// The request's Message-Authenticator checked with the first secret, then (only when
    /// that fails) with the second: the result and the secret that decided it.
    fn check_ma(&self, p: &Packet<'_>) -> (MaCheck, Which) {
        match check_request_ma(p, &self.key) {
            MaCheck::Invalid => match &self.next {
                Some((_, key)) if check_request_ma(p, key) == MaCheck::Valid => {
                    (MaCheck::Valid, Which::Secondary)
                }
                _ => (MaCheck::Invalid, Which::Primary),
            },
            other => (other, Which::Primary),
        }
    }

    /// The secret an Accounting-Request's authenticator verifies with, if any.
    fn check_accounting(&self, p: &Packet<'_>) -> Option<Which> {
        if check_accounting_authenticator(p, &self.key) {
            return Some(Which::Primary);
        }
        match &self.next {
            Some((_, key)) if check_accounting_authenticator(p, key) => Some(Which::Secondary),
            _ => None,
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
        lock(&self.dedup).answered(&self.key, reply);
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
    /// The client entry (as it was when the request came: a reload does not change it).
    pub client: Arc<Client>,
    /// The client's secret the request verified with; the reply is signed with it.
    secret: Which,
    identifier: u8,
    authenticator: [u8; 16],
    username: String,
    mac: Option<MacAddr>,
    ssid: Option<String>,
    nas_ip: IpAddr,
    /// NAS-Identifier (the access point's name), for the decision's log line.
    nas_identifier: Option<String>,
    /// Called-Station-Id (the access point's MAC and SSID), for the decision's log line.
    called_station: Option<String>,
    /// Proxy-State attributes, echoed in the reply in order (RFC 2865 §5.33).
    proxy_state: Vec<Vec<u8>>,
    /// Whether a valid Message-Authenticator proved the request came from the client.
    authenticated: bool,
    method: AuthMethod,
    /// Decided on last-known-good data while the registry could not be read.
    degraded: bool,
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
    client: Arc<Client>,
    secret: Which,
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

/// Access points counted apart at once in the unknown-device counts (beyond them, each
/// client's overflow row): with at most [`crate::activity::AGGREGATE_SAMPLE`] MACs and a 160-character message
/// a key costs under 600 bytes, so the counts stay under about 1.2 MB with the overflow keys.
pub const AGGREGATE_KEYS: usize = 1_024;

/// What a reload replaces as a whole: the clients, the rules and the EAP engine. A request
/// reads it once per step (lock-free), so a reload never waits for requests nor they for it.
pub struct Live {
    /// The configured clients.
    pub clients: Vec<Arc<Client>>,
    /// The decision rules (policy, VLANs).
    pub rules: policy::Rules,
    /// The EAP engine, when EAP-TLS is on.
    pub eap: Option<Arc<EapServer>>,
}

/// Client ids by name: a client keeps its id across reloads, a new name gets a new one.
#[derive(Debug, Default)]
struct ClientIds {
    by_name: HashMap<String, usize>,
    names: Vec<String>,
}

/// How often a misconfigured source is logged at most, and how many sources are told apart.
const WARN_EVERY: Duration = Duration::from_secs(60);
const WARN_SOURCES: usize = 1_024;

/// The request path's state: clients, rules, the reply cache, the decision folding, the
/// unknown-device counts, the EAP engine and the counters.
pub struct Access {
    live: ArcSwap<Live>,
    ids: Mutex<ClientIds>,
    stats: Arc<Stats>,
    dedup: Arc<Mutex<DedupCache>>,
    coalescer: Mutex<Coalescer>,
    aggregator: Mutex<Aggregator>,
    decisions: Arc<DecisionCounters>,
    /// Log lines for unregistered devices (not one per request in a flood).
    unknown_lines: Mutex<LogLimit>,
    warnings: Mutex<Warnings>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("clients", &self.live.load().clients.len())
            .finish_non_exhaustive()
    }
}

/// Gives each client its id (kept by name), its secret counters and its decision counters
/// (both found by name: a client added by a reload gets new ones, a kept one its own).
fn adopt(
    ids: &Mutex<ClientIds>,
    stats: &Stats,
    decisions: &DecisionCounters,
    clients: Vec<Client>,
) -> Vec<Arc<Client>> {
    let mut guard = lock(ids);
    let ClientIds { by_name, names } = &mut *guard;
    clients
        .into_iter()
        .map(|mut c| {
            c.id = *by_name.entry(c.name.clone()).or_insert_with(|| {
                names.push(c.name.clone());
                names.len() - 1
            });
            c.used = stats.secrets.for_client(&c.name);
            let _ = c.decisions.set(decisions.slot(&c.name));
            Arc::new(c)
        })
        .collect()
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
        let decisions = Arc::new(DecisionCounters::new(
            clients.iter().map(|c| c.name.as_str()),
        ));
        let ids = Mutex::new(ClientIds::default());
        let clients = adopt(&ids, &stats, &decisions, clients);
        Access {
            live: ArcSwap::from_pointee(Live {
                clients,
                rules,
                eap,
            }),
            ids,
            stats,
            dedup: Arc::new(Mutex::new(dedup)),
            coalescer: Mutex::new(coalescer),
            aggregator: Mutex::new(Aggregator::new(AGGREGATE_KEYS)),
            decisions,
            unknown_lines: Mutex::new(LogLimit::default()),
            warnings: Mutex::new(Warnings::new(WARN_EVERY, WARN_SOURCES)),
        }
    }

    /// The decision counters per client and reason.
    pub fn decisions(&self) -> &Arc<DecisionCounters> {
        &self.decisions
    }

    /// Replaces the clients, the rules and the EAP engine at once (a reload). Requests in
    /// progress finish with the client entry they came in with; EAP conversations go on when
    /// the engine is the same (its certificate replaced inside it).
    pub fn replace(&self, clients: Vec<Client>, rules: policy::Rules, eap: Option<Arc<EapServer>>) {
        let clients = adopt(&self.ids, &self.stats, &self.decisions, clients);
        self.live.store(Arc::new(Live {
            clients,
            rules,
            eap,
        }));
    }

    /// The clients, rules and EAP engine now in force.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// The configured clients.
    pub fn clients(&self) -> Vec<Arc<Client>> {
        self.live.load().clients.clone()
    }

    /// The EAP engine, when EAP-TLS is on.
    pub fn eap(&self) -> Option<Arc<EapServer>> {
        self.live.load().eap.clone()
    }

    /// Logs a misconfigured access point at warning level, at most once a minute per source
    /// (with how many were not logged since).
    fn warn(&self, src: SocketAddr, client: Option<&Client>, kind: Misconfig) {
        let hit = lock(&self.warnings).hit(src.ip(), kind, Instant::now());
        let Some((overflow, suppressed)) = hit else {
            return;
        };
        match (kind, client) {
            _ if overflow => tracing::warn!(
                suppressed,
                "RADIUS requests dropped from more misconfigured sources than are told apart ({WARN_SOURCES}): unknown sources or wrong shared secrets"
            ),
            (Misconfig::UnknownSource, _) | (Misconfig::WrongSecret, None) => tracing::warn!(
                src = %src.ip(),
                suppressed,
                "RADIUS request from an unknown source address dropped: no [[radius.clients]] network covers it"
            ),
            (Misconfig::WrongSecret, Some(c)) => tracing::warn!(
                src = %src.ip(),
                client = %c.name,
                suppressed,
                "RADIUS request dropped: its Message-Authenticator or authenticator does not verify with the client's shared secret (wrong secret on the access point?)"
            ),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Folded decisions whose window has passed, and counts whose minute is over, for the
    /// decision log.
    pub fn sweep(&self, now: Now) -> Vec<Record> {
        lock(&self.dedup).sweep(now.mono);
        let held = lock(&self.unknown_lines).sweep(now.mono);
        if let Some(h) = held {
            tracing::info!(
                target: "poortwachter::decision",
                logged = h.logged,
                not_logged = h.held,
                "unregistered devices: {} more decisions in the last minute not logged one by one (a line per MAC per minute, at most {} a minute); `poortwachter why` and the decision log count them per access point",
                h.held,
                super::loglimit::LINES_PER_WINDOW
            );
        }
        let swept = lock(&self.coalescer).sweep(now.mono);
        let counted = lock(&self.aggregator).sweep(now.wall);
        let mut out: Vec<Record> = swept.into_iter().map(Record::Decision).collect();
        out.extend(counted.into_iter().map(|t| self.aggregate(t)));
        out
    }

    /// Every folded decision and count, at shutdown.
    pub fn drain(&self) -> Vec<Record> {
        let drained = lock(&self.coalescer).drain();
        let counted = lock(&self.aggregator).drain();
        let mut out: Vec<Record> = drained.into_iter().map(Record::Decision).collect();
        out.extend(counted.into_iter().map(|t| self.aggregate(t)));
        out
    }

    fn client_for(&self, ip: IpAddr) -> Option<Arc<Client>> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.live
            .load()
            .clients
            .iter()
            .filter(|c| c.network.contains(ip))
            .max_by_key(|c| c.network.prefix())
            .cloned()
    }

    /// Known client, size, framing: the client and the parsed packet, or `None` (dropped and
    /// counted; an unknown client is logged, rate-limited).
    fn admit<'a>(&self, data: &'a [u8], src: SocketAddr) -> Option<(Arc<Client>, Packet<'a>)> {
        let Some(client) = self.client_for(src.ip()) else {
            Stats::inc(&self.stats.dropped_unknown_client);
            tracing::debug!(%src, "dropped: unknown client");
            self.warn(src, None, Misconfig::UnknownSource);
            return None;
        };
        if data.len() > MAX_PACKET_LEN {
            Stats::inc(&self.stats.dropped_malformed);
            tracing::debug!(%src, client = %client.name, "dropped: datagram over 4096 bytes");
            return None;
        }
        match Packet::parse(data) {
            Ok(p) => Some((client, p)),
            Err(e) => {
                Stats::inc(&self.stats.dropped_malformed);
                tracing::debug!(%src, client = %client.name, error = %e, "dropped: malformed");
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
        let Some((client, p)) = self.admit(data, src) else {
            return Step::Silent;
        };
        let is_status = match p.code() {
            code::ACCESS_REQUEST => false,
            code::STATUS_SERVER => true,
            other => {
                Stats::inc(&self.stats.dropped_unexpected_code);
                tracing::debug!(%src, client = %client.name, code = dict::code::name(other), "dropped: not served on the authentication port");
                return Step::Silent;
            }
        };
        let (ma, which) = client.check_ma(&p);
        match ma {
            MaCheck::Valid => client.used.count(which),
            MaCheck::Invalid => {
                Stats::inc(&self.stats.dropped_bad_authenticator);
                tracing::debug!(%src, client = %client.name, "dropped: Message-Authenticator does not verify (wrong secret?)");
                self.warn(src, Some(&client), Misconfig::WrongSecret);
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
                client.key(which),
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
        let req = AuthRequest {
            src,
            client,
            secret: which,
            identifier: p.identifier(),
            authenticator: p.authenticator(),
            username,
            mac: request::calling_station_mac(&p),
            ssid: request::ssid(&p),
            nas_ip: p
                .ipv4(dict::NAS_IP_ADDRESS)
                .map(IpAddr::V4)
                .unwrap_or_else(|| src.ip()),
            nas_identifier: p.text(dict::NAS_IDENTIFIER).map(printable),
            called_station: p.text(dict::CALLED_STATION_ID).map(printable),
            proxy_state: proxy_states(&p),
            authenticated: ma == MaCheck::Valid,
            method: AuthMethod::Mab,
            degraded: false,
        };
        match p.concat(dict::EAP_MESSAGE) {
            Some(eap) => self.eap_request(req, answering, eap, &p, now),
            None => self.mab_request(req, answering, &p, now),
        }
    }

    /// The EAP split: an EAP step to run, or a refusal when EAP is off.
    fn eap_request(
        &self,
        mut req: AuthRequest,
        answering: Answering,
        eap: Vec<u8>,
        p: &Packet<'_>,
        now: Now,
    ) -> Step {
        req.method = AuthMethod::EapTls;
        if self.live.load().eap.is_none() {
            let id = eap.get(1).copied().unwrap_or(0);
            let decision = Decision::reject(
                Reason::UnsupportedMethod,
                "rejected: 802.1X EAP is not enabled on this server (eap.enabled, or no server certificate: `poortwachter ca init`)".to_string(),
            );
            return self.answer(&req, answering, decision, None, EapEnd::Failure(id), now);
        }
        Step::Eap(Box::new(EapTurn {
            req,
            answering,
            turn: Turn::Handle(EapInput {
                eap,
                state: p.attr(dict::STATE).map(<[u8]>::to_vec),
                framed_mtu: p.u32(dict::FRAMED_MTU),
            }),
        }))
    }

    /// MAC authentication: the MAB rules, then the device by its MAC from the registry.
    fn mab_request(
        &self,
        mut req: AuthRequest,
        answering: Answering,
        p: &Packet<'_>,
        now: Now,
    ) -> Step {
        let client = req.client.clone();
        let refuse = |req: &AuthRequest, answering, decision| {
            self.answer(req, answering, decision, None, EapEnd::None, now)
        };
        let mut mab = request::mab(p, client.secret(req.secret).expose().as_bytes());
        // without a Message-Authenticator, the User-Password is what shows the secret: during
        // a rotation it may be the second one
        if !req.authenticated {
            if let (Err(MabProblem::PasswordMismatch), Some((next, _))) = (&mab, &client.next) {
                if let Ok(mac) = request::mab(p, next.expose().as_bytes()) {
                    req.secret = Which::Secondary;
                    mab = Ok(mac);
                }
            }
            if mab.is_ok() {
                client.used.count(req.secret);
            }
        }
        let mac = match mab {
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
        if client.mab_require_calling_station && request::calling_station_mac(p).is_none() {
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

    /// Carries on with last-known-good data for a [`Step::Need`] while the registry cannot
    /// be read (`None`: the device is not known to this node, answered as not registered):
    /// the same policy decides, and the decision is marked degraded.
    pub fn resolve_degraded(
        &self,
        mut pending: Box<Pending>,
        subject: Option<Subject>,
        now: Now,
    ) -> Step {
        pending.req.degraded = true;
        Stats::inc(&self.stats.degraded);
        tracing::Span::current().record("degraded", true);
        self.resolve(pending, subject, now)
    }

    /// Drops a request whose device this node holds no data for while the registry cannot
    /// be read (`cache.unseen_while_degraded = no_answer`): the NAS retransmits, then asks
    /// its other RADIUS server.
    pub fn unseen_while_degraded(&self, pending: Box<Pending>) -> Step {
        Stats::inc(&self.stats.dropped_degraded);
        tracing::debug!("registry unreachable and no data for this device; not answered");
        drop(pending);
        Step::Silent
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
        let Some(engine) = self.live.load().eap.clone() else {
            // EAP was on when the turn was made; never panic on a peer's packet
            return Step::Silent;
        };
        let wall = SystemTime::from(now.wall);
        let answer = match turn {
            Turn::Handle(input) => engine.handle(
                Incoming {
                    peer: (req.client.id, req.src.ip()),
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
                match challenge(&req, &eap, &state, req.client.key(req.secret)) {
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
        let preq = policy::Request {
            method: req.method,
            identity: &req.username,
            mac: req.mac,
            nas: &req.client.name,
            ssid: req.ssid.as_deref(),
        };
        let live = self.live.load();
        policy::decide(&preq, subject.map(|s| (&s.0, &s.1)), now, &live.rules)
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
        let bytes = match reply_packet(req, &verdict) {
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
        req.client
            .decisions
            .get_or_init(|| self.decisions.slot(&req.client.name))
            .count(decision.outcome, decision.reason);
        let span = tracing::Span::current();
        span.record("outcome", decision.outcome.as_str());
        span.record("reason", decision.reason.as_str());
        self.log_decision(req, &decision, subject.as_ref(), now.mono);
        let records = self.records(req, decision, subject.as_ref(), now);
        Step::Send(Reply { bytes, records })
    }

    /// The decision's line, at info under the target `poortwachter::decision`: the one place
    /// every accept and reject is logged. A request for an unregistered device gets its line
    /// only through [`LogLimit`] (a flood of new MACs must not write a line each); the fields
    /// are formatted only when the line is written.
    fn log_decision(
        &self,
        req: &AuthRequest,
        decision: &Decision,
        subject: Option<&Subject>,
        now: Instant,
    ) {
        if !tracing::enabled!(target: "poortwachter::decision", tracing::Level::INFO) {
            return;
        }
        let unregistered = subject.is_none()
            && matches!(
                decision.reason,
                Reason::UnknownDevice | Reason::Registration
            );
        if unregistered && !lock(&self.unknown_lines).admit(req.mac, now) {
            return;
        }
        let client = &req.client;
        tracing::info!(
            target: "poortwachter::decision",
            client = client.name.as_str(),
            nas_ip = %req.nas_ip,
            nas_identifier = req.nas_identifier.as_deref(),
            called_station = req.called_station.as_deref(),
            ssid = req.ssid.as_deref().map(printable),
            mac = req.mac.map(|m| m.to_string()),
            username = printable(&req.username),
            owner = subject.map(|s| s.1.username.as_str()),
            method = req.method.as_str(),
            decision = decision.outcome.as_str(),
            vlan = decision.vlan.map(|v| v.get()),
            vlan_name = decision.vlan_name.map(|v| v.to_string()),
            reason = decision.reason.as_str(),
            degraded = req.degraded,
            "{}",
            crate::text::Escaped(&decision.message)
        );
    }

    /// What a decision leaves for the decision log: a request for an unregistered device is
    /// counted per client, access point and minute (a flood of never-seen MACs must not cost
    /// a row each); repeats within the window are folded into one row; an authenticated
    /// accept moves the device's last-seen.
    fn records(
        &self,
        req: &AuthRequest,
        decision: Decision,
        subject: Option<&Subject>,
        now: Now,
    ) -> Vec<Record> {
        let client = &req.client;
        let at = now.wall.trunc_subsecs(6);
        let accepted = decision.outcome == Outcome::Accept;
        if subject.is_none()
            && matches!(
                decision.reason,
                Reason::UnknownDevice | Reason::Registration
            )
        {
            let key = aggregate::Key {
                client: req.client.id,
                ap: Ap::Addr(req.nas_ip),
                method: req.method.as_str(),
                accept: accepted,
                reason: decision.reason.as_str(),
            };
            let done = lock(&self.aggregator).count(key, req.mac, &decision.message, at);
            return done.into_iter().map(|t| self.aggregate(t)).collect();
        }
        let device = subject.map(|s| &s.0);
        let owner = subject.map(|s| &s.1);
        let Decision {
            outcome,
            vlan,
            reason,
            message,
            ..
        } = decision;
        let vlan = vlan.map(|v| v.get());
        let record = |repeats: u32, message: String| DecisionRecord {
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
            outcome: outcome.as_str().to_string(),
            vlan,
            reason: reason.as_str().to_string(),
            message,
            repeats,
            degraded: req.degraded,
        };
        // a degraded decision keeps its own row: folded, it would hide that it was degraded
        let fold_key = req.mac.filter(|_| !req.degraded).map(|mac| coalesce::Key {
            client: req.client.id,
            mac,
            accept: accepted,
            reason: reason.as_str(),
            vlan,
        });
        let mut out = Vec::with_capacity(2);
        let repeats = match fold_key {
            Some(key) => {
                let mut coalescer = lock(&self.coalescer);
                match coalescer.fold(key, now.mono, at, || record(0, message.clone())) {
                    Fold::Folded => return Vec::new(),
                    Fold::Store { repeats } => {
                        let given_up = coalescer.stored(key, now.mono, at);
                        out.extend(given_up.into_iter().map(Record::Decision));
                        repeats
                    }
                }
            }
            None => 0,
        };
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
        out.push(Record::Decision(record(repeats, message)));
        out
    }

    /// A minute's count as the row the decision log stores.
    fn aggregate(&self, t: Tally) -> Record {
        Record::Aggregate(DecisionAggregate {
            id: 0,
            minute: t.minute,
            nas: lock(&self.ids)
                .names
                .get(t.key.client)
                .cloned()
                .unwrap_or_default(),
            ap: match t.key.ap {
                Ap::Addr(ip) => ip.to_string(),
                Ap::Other => AGGREGATE_OTHER_AP.to_string(),
            },
            method: t.key.method.to_string(),
            outcome: if t.key.accept { "accept" } else { "reject" }.to_string(),
            reason: t.key.reason.to_string(),
            count: t.count,
            macs: t.macs,
            message: t.message,
        })
    }

    fn accounting_request(&self, data: &[u8], src: SocketAddr, now: Now) -> Step {
        let Some((client, p)) = self.admit(data, src) else {
            return Step::Silent;
        };
        match p.code() {
            code::ACCOUNTING_REQUEST => {}
            code::STATUS_SERVER => {
                let (ma, which) = client.check_ma(&p);
                if ma != MaCheck::Valid {
                    Stats::inc(&self.stats.dropped_bad_authenticator);
                    if ma == MaCheck::Invalid {
                        self.warn(src, Some(&client), Misconfig::WrongSecret);
                    }
                    return Step::Silent;
                }
                client.used.count(which);
                Stats::inc(&self.stats.status);
                return Step::Send(Reply::bare(status_reply(
                    code::ACCOUNTING_RESPONSE,
                    &p,
                    client.key(which),
                )));
            }
            other => {
                Stats::inc(&self.stats.dropped_unexpected_code);
                tracing::debug!(%src, client = %client.name, code = dict::code::name(other), "dropped: not served on the accounting port");
                return Step::Silent;
            }
        }
        let which = client
            .check_accounting(&p)
            .filter(|w| check_request_ma(&p, client.key(*w)) != MaCheck::Invalid);
        let Some(which) = which else {
            Stats::inc(&self.stats.dropped_bad_authenticator);
            tracing::debug!(%src, client = %client.name, "dropped: accounting authenticator does not verify (wrong secret?)");
            self.warn(src, Some(&client), Misconfig::WrongSecret);
            return Step::Silent;
        };
        client.used.count(which);
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
            client: client.clone(),
            secret: which,
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
        let key = work.client.key(work.secret);
        // no Message-Authenticator: RFC 2866 does not define one here, and implementations
        // disagree on its input (FreeRADIUS zeroes the vector); the Response Authenticator
        // already covers the reply
        let mut b = Builder::new(code::ACCOUNTING_RESPONSE, work.identifier);
        for ps in &work.proxy_state {
            // each came in a packet of at most 4096 bytes: it fits
            let _ = b.add(dict::PROXY_STATE, ps);
        }
        let (mut buf, off) = b.into_unsigned();
        sign_response(&mut buf, off, &work.authenticator, key);
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
fn reply_packet(req: &AuthRequest, v: &Verdict) -> Result<Vec<u8>, EncodeError> {
    let client = &req.client;
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
                    client.secret(req.secret).expose().as_bytes(),
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
    sign_response(&mut buf, off, &req.authenticator, client.key(req.secret));
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

#[cfg(test)]
mod tests {
    //! The RADIUS rules against the core: the RFC 2865 §7 example packets, and radius-rs (an
    //! implementation no one here wrote) as the oracle for requests and replies.

    use super::*;
    use crate::radius::crypto::{decode_user_password, sign_request};
    use crate::server::sim::{mac, AP_SECRET, LEGACY_SECRET};
    use hmac::{Hmac, Mac as _};
    use radius::core::code::Code;
    use radius::core::packet::Packet as RsPacket;
    use radius::core::{rfc2865, rfc2868};
    use std::time::Duration;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn client(name: &str, network: &str, secret: &str, require_ma: bool) -> Client {
        Client {
            id: 0,
            name: name.into(),
            network: network.parse().unwrap(),
            secret: Secret::new(secret),
            key: SecretKey::new(secret.as_bytes()),
            next: None,
            used: Arc::default(),
            require_ma,
            mab: true,
            mab_require_calling_station: require_ma,
            decisions: OnceLock::new(),
            coa: Arc::new(NasClient::new(
                name,
                network.parse().unwrap(),
                &Secret::new(secret),
                3799,
                crate::config::ops::CoaAction::Disconnect,
            )),
        }
    }

    fn rules() -> policy::Rules {
        let config = crate::config::Config::from_toml(
            "[database]\nurl = \"sqlite://unused.db\"\n[vlans]\nworkspace = 100\nguest = 200\nquarantine = 666\n",
            std::path::Path::new("t.toml"),
            Vec::new(),
        )
        .unwrap();
        policy::Rules::from_config(&config)
    }

    fn core(clients: Vec<Client>) -> Access {
        Access::new(
            clients,
            rules(),
            Arc::new(Stats::default()),
            DedupCache::new(Duration::from_secs(5), 100, 1 << 20),
            Coalescer::new(Duration::ZERO, 100, 100),
            None,
        )
    }

    /// Access points on loopback (Message-Authenticator required) and a legacy switch at
    /// 192.0.2.0/24 (not required, MAB without Calling-Station-Id allowed).
    fn sim_core() -> Access {
        core(vec![
            client("ap", "127.0.0.0/8", AP_SECRET, true),
            client("legacy", "192.0.2.0/24", LEGACY_SECRET, false),
        ])
    }

    fn now() -> Now {
        Now {
            mono: Instant::now(),
            wall: Utc::now(),
        }
    }

    fn ap() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    fn legacy() -> SocketAddr {
        "192.0.2.1:40000".parse().unwrap()
    }

    /// Carries out the steps with `registry` as the registry; the reply, if any.
    fn run(
        access: &Access,
        data: &[u8],
        src: SocketAddr,
        port: Port,
        registry: impl Fn(&Want) -> Option<Subject>,
    ) -> Option<Reply> {
        let mut step = access.datagram(data, src, port, now());
        for _ in 0..8 {
            step = match step {
                Step::Send(r) => return Some(r),
                Step::Silent => return None,
                Step::Need(p) => {
                    let s = registry(p.want());
                    access.resolve(p, s, now())
                }
                Step::Eap(t) => access.eap_turn(t, now()),
                Step::Account(w) => access.accounted(w, true),
            };
        }
        panic!("too many steps")
    }

    fn nobody(_: &Want) -> Option<Subject> {
        None
    }

    fn staff_device(want: &Want) -> Option<Subject> {
        match want {
            Want::Mac(m) if *m == mac(1) => Some(sim_subject()),
            _ => None,
        }
    }

    fn sim_subject() -> Subject {
        use crate::model::{Compliance, Device, DeviceKind, DeviceStatus, Owner, Role};
        let at = Utc::now() - chrono::Duration::days(1);
        let owner = Owner {
            id: uuid::Uuid::from_u128(1),
            username: "s.staff".into(),
            display_name: "S Staff".into(),
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
        let device = Device {
            id: uuid::Uuid::from_u128(2),
            owner_id: owner.id,
            owner: owner.username.clone(),
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
            created_by: "t".into(),
            created_at: at,
            updated_at: at,
            last_seen_at: None,
            last_seen_nas: None,
            last_seen_ssid: None,
        };
        Arc::new((device, owner))
    }

    /// The Message-Authenticator of a reply, checked with HMAC-MD5 directly (RFC 3579 §3.2:
    /// over the reply with the request's authenticator in place and the attribute zeroed).
    fn ma_verifies(reply: &[u8], request: &[u8], secret: &[u8]) -> bool {
        let p = RsPacket::decode(reply, secret).unwrap();
        let Some(ma) = radius::core::rfc2869::lookup_message_authenticator(&p) else {
            return false;
        };
        let mut copy = reply.to_vec();
        copy[4..20].copy_from_slice(&request[4..20]);
        let mut i = 20;
        while i + 2 <= copy.len() {
            let (t, l) = (copy[i], usize::from(copy[i + 1]));
            if t == 80 && l == 18 {
                copy[i + 2..i + 18].fill(0);
            }
            i += l.max(2);
        }
        let mut h = Hmac::<md5::Md5>::new_from_slice(secret).unwrap();
        h.update(&copy);
        h.verify_slice(&ma).is_ok()
    }

    fn reason(r: &Reply) -> String {
        r.records
            .iter()
            .find_map(|r| match r {
                Record::Decision(d) => Some(d.reason.clone()),
                Record::Aggregate(_) | Record::Seen(_) => None,
            })
            .unwrap_or_default()
    }

    /// RFC 2865 §7.1: the example Access-Request (user nemo, password arctangent, secret
    /// xyzzy5461) from NAS 192.168.1.16; and the example Access-Accept, whose Response
    /// Authenticator our check verifies.
    #[test]
    fn rfc2865_section_7_1_example() {
        let request = hex("01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
             98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d
             93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8
             01 10 05 06 00 00 00 03");
        let accept = hex("02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
             9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00
             0e 06 c0 a8 01 03");
        let secret = b"xyzzy5461";
        let p = Packet::parse(&request).unwrap();
        let hidden = p.attr(dict::USER_PASSWORD).unwrap();
        let pw = decode_user_password(hidden, secret, &p.authenticator()).unwrap();
        assert_eq!(&pw[..], b"arctangent");
        let a = Packet::parse(&accept).unwrap();
        assert!(crate::radius::crypto::check_response(
            &a,
            &p.authenticator(),
            &secret[..],
            false
        ));

        // the server requires a Message-Authenticator by default: the RFC's packet has none
        let strict = core(vec![client("nas", "192.168.1.16/32", "xyzzy5461", true)]);
        let src: SocketAddr = "192.168.1.16:1645".parse().unwrap();
        assert!(run(&strict, &request, src, Port::Auth, nobody).is_none());
        assert_eq!(
            strict
                .stats()
                .dropped_missing_message_authenticator
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        // a client allowed without: "nemo" is no MAC, so MAB refuses; radius-rs verifies
        // the reply against the RFC's request
        let lax = core(vec![client("nas", "192.168.1.16/32", "xyzzy5461", false)]);
        let r = run(&lax, &request, src, Port::Auth, nobody).unwrap();
        assert!(RsPacket::is_authentic_response(&r.bytes, &request, secret));
        let rs = RsPacket::decode(&r.bytes, secret).unwrap();
        assert_eq!(rs.get_code(), Code::AccessReject);
        assert_eq!(rs.get_identifier(), 0);
        assert!(ma_verifies(&r.bytes, &request, secret));
        assert_eq!(reason(&r), "unsupported_method");
        // from any other address: not a client, dropped and counted
        let other: SocketAddr = "192.168.1.17:1645".parse().unwrap();
        assert!(run(&lax, &request, other, Port::Auth, nobody).is_none());
        assert_eq!(
            lax.stats()
                .dropped_unknown_client
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    /// A MAB request made by radius-rs (PAP hidden by radius-rs) from a client that needs no
    /// Message-Authenticator: accepted into the workspace VLAN, radius-rs reads the reply.
    #[test]
    fn mab_request_from_radius_rs_is_answered_with_the_vlan() {
        let access = sim_core();
        let mut req = RsPacket::new(Code::AccessRequest, LEGACY_SECRET.as_bytes());
        rfc2865::add_user_name(&mut req, "02-00-00-00-00-01");
        rfc2865::add_user_password(&mut req, b"02-00-00-00-00-01").unwrap();
        rfc2865::add_calling_station_id(&mut req, "02-00-00-00-00-01");
        rfc2865::add_proxy_state(&mut req, b"one");
        rfc2865::add_proxy_state(&mut req, b"two");
        let bytes = req.encode().unwrap();
        // Proxy-State without a Message-Authenticator: refused even where not required
        assert!(run(&access, &bytes, legacy(), Port::Auth, staff_device).is_none());
        let mut req = RsPacket::new(Code::AccessRequest, LEGACY_SECRET.as_bytes());
        rfc2865::add_user_name(&mut req, "02-00-00-00-00-01");
        rfc2865::add_user_password(&mut req, b"02-00-00-00-00-01").unwrap();
        rfc2865::add_calling_station_id(&mut req, "02-00-00-00-00-01");
        let bytes = req.encode().unwrap();
        let r = run(&access, &bytes, legacy(), Port::Auth, staff_device).unwrap();
        assert!(RsPacket::is_authentic_response(
            &r.bytes,
            &bytes,
            LEGACY_SECRET.as_bytes()
        ));
        assert!(ma_verifies(&r.bytes, &bytes, LEGACY_SECRET.as_bytes()));
        let rs = RsPacket::decode(&r.bytes, LEGACY_SECRET.as_bytes()).unwrap();
        assert_eq!(rs.get_code(), Code::AccessAccept);
        let (vlan, _) = rfc2868::lookup_tunnel_private_group_id(&rs)
            .unwrap()
            .unwrap();
        assert_eq!(vlan, "100");
        assert_eq!(
            rfc2865::lookup_session_timeout(&rs).unwrap().unwrap(),
            28_800
        );
        assert_eq!(reason(&r), "compliant");
    }

    fn signed(b: Builder, secret: &str, auth: [u8; 16]) -> Vec<u8> {
        let (mut buf, off) = b.into_unsigned();
        sign_request(&mut buf, off, &auth, secret.as_bytes());
        buf
    }

    /// A second secret during a rotation: both verify, the reply is signed with the one
    /// that did, each is counted; a third is dropped. A reload swaps the clients.
    #[test]
    fn a_second_secret_during_a_rotation_and_a_reload_of_the_clients() {
        const NEXT: &str = "the-next-ap-secret-0123";
        let mut rotating = client("ap", "127.0.0.0/8", AP_SECRET, true);
        rotating.next = Some((Secret::new(NEXT), SecretKey::new(NEXT.as_bytes())));
        let access = core(vec![rotating]);
        let mab = |secret: &str, id: u8| {
            let mut b = Builder::with_message_authenticator(code::ACCESS_REQUEST, id);
            b.add_text(dict::USER_NAME, "02-00-00-00-00-01").unwrap();
            b.add_text(dict::CALLING_STATION_ID, "02-00-00-00-00-01")
                .unwrap();
            let (mut buf, off) = b.into_unsigned();
            let auth = [id; 16];
            sign_request(&mut buf, off, &auth, secret.as_bytes());
            buf
        };
        for (secret, id) in [(AP_SECRET, 1), (NEXT, 2), (NEXT, 3)] {
            let req = mab(secret, id);
            let r = run(&access, &req, ap(), Port::Auth, staff_device)
                .unwrap_or_else(|| panic!("{secret} not answered"));
            assert!(RsPacket::is_authentic_response(
                &r.bytes,
                &req,
                secret.as_bytes()
            ));
            assert!(ma_verifies(&r.bytes, &req, secret.as_bytes()));
        }
        assert!(run(
            &access,
            &mab("a-third-secret-0123456", 4),
            ap(),
            Port::Auth,
            staff_device
        )
        .is_none());
        assert_eq!(
            access.stats().secrets.snapshot(),
            vec![("ap".to_string(), 1, 2)]
        );
        assert_eq!(
            access
                .stats()
                .dropped_bad_authenticator
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );

        // a reload: the old secret retired, the id and the counters kept by name
        let id = access.clients()[0].id;
        access.replace(vec![client("ap", "127.0.0.0/8", NEXT, true)], rules(), None);
        assert_eq!(access.clients()[0].id, id);
        assert!(run(&access, &mab(AP_SECRET, 5), ap(), Port::Auth, staff_device).is_none());
        assert!(run(&access, &mab(NEXT, 6), ap(), Port::Auth, staff_device).is_some());
        assert_eq!(
            access.stats().secrets.snapshot(),
            vec![("ap".to_string(), 2, 2)]
        );
        // a client no longer configured: its source is unknown now
        access.replace(
            vec![client("other", "192.0.2.0/24", NEXT, true)],
            rules(),
            None,
        );
        assert!(run(&access, &mab(NEXT, 7), ap(), Port::Auth, staff_device).is_none());
        assert_ne!(access.clients()[0].id, id);
    }

    /// RFC 5997 Status-Server, and the Message-Authenticator rules (BlastRADIUS).
    #[test]
    fn status_server_and_the_message_authenticator_rules() {
        let access = sim_core();
        let status = signed(
            Builder::with_message_authenticator(code::STATUS_SERVER, 9),
            AP_SECRET,
            [3; 16],
        );
        let r = run(&access, &status, ap(), Port::Auth, nobody).unwrap();
        let rs = RsPacket::decode(&r.bytes, AP_SECRET.as_bytes()).unwrap();
        assert_eq!(rs.get_code(), Code::AccessAccept);
        assert!(RsPacket::is_authentic_response(
            &r.bytes,
            &status,
            AP_SECRET.as_bytes()
        ));
        assert!(ma_verifies(&r.bytes, &status, AP_SECRET.as_bytes()));
        let r = run(&access, &status, ap(), Port::Acct, nobody).unwrap();
        assert_eq!(
            RsPacket::decode(&r.bytes, AP_SECRET.as_bytes())
                .unwrap()
                .get_code(),
            Code::AccountingResponse
        );
        // without Message-Authenticator (RFC 5997 §3 requires it), with a wrong one
        let bare = signed(Builder::new(code::STATUS_SERVER, 9), AP_SECRET, [3; 16]);
        assert!(run(&access, &bare, ap(), Port::Auth, nobody).is_none());
        let mut forged = status.clone();
        let n = forged.len();
        forged[n - 1] ^= 1;
        assert!(run(&access, &forged, ap(), Port::Auth, nobody).is_none());
        // an Access-Request without Message-Authenticator from a client that requires it
        let mut b = Builder::new(code::ACCESS_REQUEST, 1);
        b.add_text(dict::USER_NAME, "020000000001").unwrap();
        let r = signed(b, AP_SECRET, [4; 16]);
        assert!(run(&access, &r, ap(), Port::Auth, staff_device).is_none());
        // an EAP-Message without one, even where not required (RFC 3579 §3.2)
        let mut b = Builder::new(code::ACCESS_REQUEST, 1);
        b.add(dict::EAP_MESSAGE, &[2, 1, 0, 5, 1]).unwrap();
        let r = signed(b, LEGACY_SECRET, [4; 16]);
        assert!(run(&access, &r, legacy(), Port::Auth, nobody).is_none());
        // an Accounting-Request on the authentication port; a datagram over 4096 bytes
        let mut b = Builder::new(code::ACCOUNTING_REQUEST, 1);
        b.add_u32(dict::ACCT_STATUS_TYPE, 1).unwrap();
        let acct = signed(b, AP_SECRET, [0; 16]);
        assert!(run(&access, &acct, ap(), Port::Auth, nobody).is_none());
        assert!(run(&access, &vec![1u8; 4097], ap(), Port::Auth, nobody).is_none());
        let s = access.stats();
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(get(&s.status), 2);
        assert_eq!(get(&s.dropped_missing_message_authenticator), 3);
        assert_eq!(get(&s.dropped_bad_authenticator), 1);
        assert_eq!(get(&s.dropped_unexpected_code), 1);
        assert_eq!(get(&s.dropped_malformed), 1);
    }

    fn mab(id: u8, user: &str, calling: Option<&str>, chap: Option<&[u8]>) -> Vec<u8> {
        let auth = [id; 16];
        let mut b = Builder::with_message_authenticator(code::ACCESS_REQUEST, id);
        b.add_text(dict::USER_NAME, user).unwrap();
        match chap {
            None => {
                let pw = crate::radius::crypto::encode_user_password(
                    user.as_bytes(),
                    AP_SECRET.as_bytes(),
                    &auth,
                );
                b.add(dict::USER_PASSWORD, &pw).unwrap();
            }
            Some(challenge) => {
                use md5::{Digest, Md5};
                let mut h = Md5::new();
                h.update([1u8]);
                h.update(user.as_bytes());
                h.update(challenge);
                let mut v = vec![1u8];
                v.extend_from_slice(&h.finalize());
                b.add(dict::CHAP_PASSWORD, &v).unwrap();
                b.add(dict::CHAP_CHALLENGE, challenge).unwrap();
            }
        }
        if let Some(cs) = calling {
            b.add_text(dict::CALLING_STATION_ID, cs).unwrap();
        }
        signed(b, AP_SECRET, auth)
    }

    /// RFC 2865 §5.40: a CHAP-Challenge attribute has Length >= 7 (5 octets of value); MAB
    /// needs the NAS's own Calling-Station-Id unless configured otherwise.
    #[test]
    fn short_chap_challenges_and_mab_without_calling_station_id_are_refused() {
        let access = sim_core();
        let user = "02-00-00-00-00-01";
        for (len, want) in [
            (4usize, "mab_bad_password"),
            (5, "compliant"),
            (16, "compliant"),
        ] {
            let challenge = vec![9u8; len];
            let r = run(
                &access,
                &mab(len as u8, user, Some(user), Some(&challenge)),
                ap(),
                Port::Auth,
                staff_device,
            )
            .unwrap();
            assert_eq!(reason(&r), want, "challenge of {len}");
        }
        let r = run(
            &access,
            &mab(30, user, None, None),
            ap(),
            Port::Auth,
            staff_device,
        )
        .unwrap();
        assert_eq!(reason(&r), "no_mac");
        let r = run(
            &access,
            &mab(31, user, Some("not-a-mac"), None),
            ap(),
            Port::Auth,
            staff_device,
        )
        .unwrap();
        assert_eq!(reason(&r), "no_mac");
        let r = run(
            &access,
            &mab(32, user, Some(user), None),
            ap(),
            Port::Auth,
            staff_device,
        )
        .unwrap();
        assert_eq!(reason(&r), "compliant");
        // a client configured without the requirement (a switch that sends none)
        let lax = core(vec![Client {
            mab_require_calling_station: false,
            ..client("ap", "127.0.0.0/8", AP_SECRET, true)
        }]);
        let r = run(
            &lax,
            &mab(33, user, None, None),
            ap(),
            Port::Auth,
            staff_device,
        )
        .unwrap();
        assert_eq!(reason(&r), "compliant");
    }

    /// RFC 5080 §2.2.2: a copy of a request being answered is dropped, an answered one gets
    /// the same bytes again; a request whose answer was abandoned is processed anew.
    #[test]
    fn duplicates_and_the_answering_guard() {
        let access = sim_core();
        let user = "02-00-00-00-00-01";
        let req = mab(40, user, Some(user), None);
        let Step::Need(pending) = access.datagram(&req, ap(), Port::Auth, now()) else {
            panic!("a registry read")
        };
        assert!(matches!(
            access.datagram(&req, ap(), Port::Auth, now()),
            Step::Silent
        ));
        // the read failed: dropped, and the guard forgets the request
        assert!(matches!(access.unresolved(pending, now()), Step::Silent));
        let Step::Need(pending) = access.datagram(&req, ap(), Port::Auth, now()) else {
            panic!("processed anew")
        };
        let Step::Send(first) = access.resolve(pending, Some(sim_subject()), now()) else {
            panic!("answered")
        };
        let Step::Send(again) = access.datagram(&req, ap(), Port::Auth, now()) else {
            panic!("the cached reply")
        };
        assert_eq!(first.bytes, again.bytes);
        assert!(again.records.is_empty(), "a repeat is no new decision");
        // dropping a pending request without an answer (an overload drop) forgets it too
        let other = mab(41, user, Some(user), None);
        let Step::Need(pending) = access.datagram(&other, ap(), Port::Auth, now()) else {
            panic!()
        };
        drop(pending);
        assert!(matches!(
            access.datagram(&other, ap(), Port::Auth, now()),
            Step::Need(_)
        ));
        assert_eq!(
            access
                .stats()
                .duplicates
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }
}
