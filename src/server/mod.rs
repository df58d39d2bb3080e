//! The RADIUS server: UDP listeners for authentication (RFC 2865) and accounting
//! (RFC 2866), NAS client matching, the drop rules, duplicate detection, and the glue from
//! codec to policy to registry. The protocol lives in `crate::radius`, the decision in
//! `crate::policy`; this module owns the sockets and the tasks.

pub mod acct;
pub mod cache;
pub mod coalesce;
pub mod dedup;
pub mod eap;
pub mod liveness;
pub mod recorder;
pub mod request;
pub mod stats;
pub mod systemd;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use ipnetwork::IpNetwork;
use std::net::UdpSocket;
use std::sync::atomic::AtomicBool;
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use crate::activity::{DecisionRecord, Sighting};
use crate::config::Config;
use crate::mac::MacAddr;
use crate::policy::{self, AuthMethod, Decision, Outcome, Reason};
use crate::radius::crypto::{
    check_accounting_authenticator, check_request_ma, sign_response, Key as SecretKey, MaCheck,
};
use crate::radius::dict::{self, code};
use crate::radius::{Builder, Packet, MAX_PACKET_LEN};
use crate::registry::{Store, StoreError};
use crate::secret::Secret;
use crate::sync::lock;

use self::acct::AcctAction;
use self::cache::{Lookup, Subject, SubjectCache};
use self::coalesce::{Coalescer, Fold};
use self::dedup::{DedupCache, Key, Seen};
use self::liveness::{Liveness, STALL_AFTER};
use self::recorder::{Record, Recorder};
use self::request::MabProblem;
use self::stats::Stats;

/// Requests that may wait for the registry at once; more are dropped (and counted) rather than
/// queued without bound while the database is slow.
const MAX_BACKLOG: usize = 4_096;

/// EAP requests that may wait for a TLS step at once (a few seconds of handshakes on two
/// cores); more are dropped and counted, and the NAS retransmits.
pub(super) const EAP_BACKLOG: usize = 1_024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The registry failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The EAP-TLS server certificate, key or trusted CAs cannot be used.
    #[error("802.1X EAP-TLS: {0}")]
    Eap(#[from] crate::eap::tls::TlsSetupError),
}

/// A configured NAS client, as the listeners use it.
#[derive(Debug)]
struct Client {
    name: String,
    network: IpNetwork,
    secret: Secret,
    key: SecretKey,
    require_ma: bool,
    mab: bool,
}

/// Requests being answered, so that shutdown can wait for them.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

struct InFlightGuard(Arc<Shared>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.inflight.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.inflight.idle.notify_waiters();
        }
    }
}

struct Shared {
    clients: Vec<Client>,
    store: Arc<dyn Store>,
    rules: policy::Rules,
    stats: Arc<Stats>,
    dedup: Mutex<DedupCache>,
    cache: SubjectCache,
    /// The same for EAP-TLS: certificate fingerprint → subject.
    cert_cache: SubjectCache<String>,
    recorder: Mutex<Option<Recorder>>,
    coalescer: Mutex<Coalescer>,
    inflight: InFlight,
    runtime: tokio::runtime::Handle,
    /// Bounds the requests waiting for the registry (cache misses, accounting).
    backlog: Arc<tokio::sync::Semaphore>,
    /// The EAP engine, when EAP-TLS is set up.
    eap: Option<Arc<crate::eap::EapServer>>,
    /// Bounds the EAP requests waiting for a TLS step.
    eap_slots: Arc<tokio::sync::Semaphore>,
    /// The listeners' heartbeats.
    liveness: Arc<Liveness>,
}

/// What the listeners need from one Access-Request, owned so that a registry lookup can
/// finish it on another task.
#[derive(Debug, Clone)]
struct AuthRequest {
    src: SocketAddr,
    client: usize,
    key: Key,
    identifier: u8,
    authenticator: [u8; 16],
    username: String,
    mac: Option<MacAddr>,
    ssid: Option<String>,
    nas_ip: IpAddr,
    /// Proxy-State attributes, echoed in the reply.
    proxy_state: Vec<Vec<u8>>,
    /// Whether a valid Message-Authenticator proved the request came from the client.
    authenticated: bool,
    /// The EAP identifier, for an EAP-Failure in a reject.
    eap_id: Option<u8>,
    /// How the device authenticated.
    method: AuthMethod,
    /// A finished EAP-TLS conversation: the Access-Accept carries its EAP-Success and keys.
    eap_success: Option<eap::EapSuccess>,
}

/// The running listeners.
pub struct Server {
    shared: Arc<Shared>,
    auth: Arc<UdpSocket>,
    acct: Arc<UdpSocket>,
    poll_interval: Duration,
    writer: tokio::task::JoinHandle<()>,
    /// Disconnects sessions whose device lost its access (RFC 5176), unless `coa.enabled` is off.
    enforcer: Option<crate::coa::enforcer::Enforcer>,
}

impl Server {
    /// Binds both listeners and starts the decision writer.
    pub async fn bind(config: &Config, store: Arc<dyn Store>) -> Result<Server, ServerError> {
        let bind = |addr: SocketAddr| async move {
            let sock =
                UdpSocket::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
            // the listener threads wake up this often to see a shutdown
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .map_err(|source| ServerError::Bind { addr, source })?;
            // a full send buffer must not hold a runtime worker: the reply is dropped instead
            // (the NAS retransmits and gets it from the duplicate cache)
            sock.set_write_timeout(Some(Duration::from_millis(50)))
                .map_err(|source| ServerError::Bind { addr, source })?;
            Ok::<_, ServerError>(sock)
        };
        let eap = eap::build(config)?;
        let auth = Arc::new(bind(config.radius.auth_listen).await?);
        let acct = Arc::new(bind(config.radius.acct_listen).await?);
        let clients = config
            .radius
            .clients
            .iter()
            .map(|c| Client {
                name: c.name.clone(),
                network: c.network,
                secret: c.secret.clone(),
                key: SecretKey::new(c.secret.expose().as_bytes()),
                require_ma: c
                    .require_message_authenticator
                    .unwrap_or(config.radius.require_message_authenticator),
                mab: c.mab.unwrap_or(config.radius.mab),
            })
            .collect();
        let stats = Arc::new(Stats::default());
        let enforcer = crate::coa::enforcer::Enforcer::new(config, store.clone());
        let (recorder, writer) = Recorder::start(
            store.clone(),
            stats.clone(),
            config.log.decision_retention.chrono(),
        );
        let shared = Arc::new(Shared {
            clients,
            store,
            rules: policy::Rules::from_config(config),
            stats,
            dedup: Mutex::new(DedupCache::new(config.radius.duplicate_window.0, 262_144)),
            cache: SubjectCache::new(config.cache.enabled, Duration::from_secs(300), 1_000_000),
            cert_cache: SubjectCache::new(
                config.cache.enabled,
                Duration::from_secs(300),
                1_000_000,
            ),
            recorder: Mutex::new(Some(recorder)),
            coalescer: Mutex::new(Coalescer::new(config.log.decision_coalesce.0, 200_000)),
            inflight: InFlight::default(),
            runtime: tokio::runtime::Handle::current(),
            backlog: Arc::new(tokio::sync::Semaphore::new(MAX_BACKLOG)),
            eap,
            eap_slots: Arc::new(tokio::sync::Semaphore::new(EAP_BACKLOG)),
            liveness: Arc::new(Liveness::new(Instant::now())),
        });
        Ok(Server {
            shared,
            auth,
            acct,
            poll_interval: config.cache.poll_interval.0,
            writer,
            enforcer,
        })
    }

    /// The bound authentication address (useful with port 0).
    pub fn auth_addr(&self) -> std::io::Result<SocketAddr> {
        self.auth.local_addr()
    }

    /// The bound accounting address.
    pub fn acct_addr(&self) -> std::io::Result<SocketAddr> {
        self.acct.local_addr()
    }

    /// The counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// The EAP engine, when EAP-TLS is set up (for its conversation counts).
    pub fn eap_engine(&self) -> Option<Arc<crate::eap::EapServer>> {
        self.shared.eap.clone()
    }

    /// The listeners' heartbeats (for the health endpoint).
    pub fn liveness(&self) -> Arc<Liveness> {
        self.shared.liveness.clone()
    }

    /// Forgets cached registry entries (after a change made in this process).
    pub fn invalidate_cache(&self) {
        self.shared.invalidate_caches();
    }

    /// Serves until `shutdown` completes, then stops within [`STOP_WITHIN`]; returns the
    /// counters (see [`Server::run_until`]).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Arc<Stats> {
        self.run_until(shutdown).await.stats
    }

    /// Serves until `shutdown` completes; then stops reading, answers what is in flight (up
    /// to 10 s), flushes the decision log (up to 5 s) and returns the counters and what it
    /// had to abandon. Every wait is bounded: a stuck listener, enforcer or database costs
    /// its share of [`STOP_WITHIN`], never the stop itself.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Stopped {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (sock, port, name) in [
            (self.auth.clone(), Port::Auth, liveness::LISTENERS[0]),
            (self.acct.clone(), Port::Acct, liveness::LISTENERS[1]),
        ] {
            let shared = self.shared.clone();
            let stopping = stopping.clone();
            let spawned = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || listen(shared, sock, stopping, port));
            match spawned {
                Ok(t) => threads.push((name, t)),
                Err(e) => tracing::error!(error = %e, "cannot start the {name} listener thread"),
            }
        }
        // every registry change wakes the enforcer too
        let changed = Arc::new(Notify::new());
        let watcher = tokio::spawn(watch_registry(
            self.shared.clone(),
            self.poll_interval,
            changed.clone(),
            stop_rx.clone(),
        ));
        let enforcer = self
            .enforcer
            .take()
            .map(|e| tokio::spawn(e.run(changed, stop_rx.clone())));
        let reporter = tokio::spawn(report(self.shared.clone(), stop_rx.clone()));
        let watchdog = tokio::spawn(feed_watchdog(self.shared.liveness.clone(), stop_rx));
        tracing::info!(
            auth = %self.auth.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            acct = %self.acct.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            clients = self.shared.clients.len(),
            "RADIUS server listening"
        );
        if let Err(e) = systemd::notify("READY=1\nSTATUS=answering RADIUS") {
            tracing::warn!(error = %e, "cannot tell systemd the service is ready");
        }
        shutdown.await;
        tracing::info!("shutting down: no new requests; answering those in flight");
        let _ = systemd::notify("STOPPING=1");
        let mut abandoned = Vec::new();
        let _ = stop_tx.send(true);
        stopping.store(true, Ordering::Release);
        // listeners see `stopping` within one receive timeout (100 ms)
        for (name, t) in threads {
            let joined = tokio::task::spawn_blocking(move || t.join());
            if tokio::time::timeout(Duration::from_secs(2), joined)
                .await
                .is_err()
            {
                abandoned.push(format!("the {name} listener thread (stuck for over 2 s)"));
            }
        }
        let mut tasks = vec![
            ("the registry watcher", watcher),
            ("the health reporter", reporter),
            ("the systemd watchdog", watchdog),
        ];
        if let Some(e) = enforcer {
            tasks.push(("the disconnect enforcer", e));
        }
        for (name, task) in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
                abandoned.push(format!("{name} (stuck for over 2 s)"));
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        loop {
            let idle = self.shared.inflight.idle.notified();
            let left = self.shared.inflight.count.load(Ordering::Acquire);
            if left == 0 {
                break;
            }
            tokio::select! {
                _ = idle => {}
                _ = &mut deadline => {
                    abandoned.push(format!("{left} request(s) in flight after 10 s"));
                    break;
                }
            }
        }
        // decisions still folded are written, then the writer ends after a last flush once
        // its sender is gone
        let pending = lock(&self.shared.coalescer).drain();
        for r in pending {
            self.shared.record(Record::Decision(r));
        }
        drop(lock(&self.shared.recorder).take());
        let abort = self.writer.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), &mut self.writer)
            .await
            .is_err()
        {
            abort.abort();
            abandoned.push("the decision log flush (the database did not answer in 5 s)".into());
        }
        if abandoned.is_empty() {
            tracing::info!(counters = %self.shared.stats, "stopped");
        } else {
            tracing::error!(counters = %self.shared.stats, abandoned = %abandoned.join("; "), "stopped, abandoning work");
        }
        Stopped {
            stats: self.shared.stats.clone(),
            abandoned,
        }
    }
}

/// The longest a stop takes once asked: 2 s per listener thread and per background task, 10 s
/// for requests in flight, 5 s for the decision log (`serve` ends the process at this bound
/// whatever is still running).
pub const STOP_WITHIN: Duration = Duration::from_secs(30);

/// How a server stopped.
#[derive(Debug)]
pub struct Stopped {
    /// The counters.
    pub stats: Arc<Stats>,
    /// What did not finish within its bound (empty: a clean stop).
    pub abandoned: Vec<String>,
}

/// Feeds the systemd watchdog (`WatchdogSec`) while every listener makes progress; a stalled
/// listener stops the feeding, so systemd restarts the service.
async fn feed_watchdog(liveness: Arc<Liveness>, mut stop: watch::Receiver<bool>) {
    let Some(every) = systemd::watchdog_interval() else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    let mut was_stalled = false;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let stalled = liveness.stalled(Instant::now(), STALL_AFTER);
        if stalled.is_empty() {
            was_stalled = false;
            if let Err(e) = systemd::notify("WATCHDOG=1") {
                tracing::warn!(error = %e, "cannot feed the systemd watchdog");
            }
        } else if !was_stalled {
            was_stalled = true;
            let names: Vec<&str> = stalled.iter().map(|s| s.listener).collect();
            tracing::error!(stalled = ?names, "a RADIUS listener makes no progress: not feeding the systemd watchdog");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    Auth,
    Acct,
}

/// One listener thread: blocking receives on its own socket, so the hot path (a cache hit)
/// costs two system calls and no task switch; registry work goes to the runtime.
fn listen(shared: Arc<Shared>, sock: Arc<UdpSocket>, stopping: Arc<AtomicBool>, port: Port) {
    // one byte more than the largest packet, to tell an oversized datagram
    let mut buf = vec![0u8; MAX_PACKET_LEN + 1];
    let index = match port {
        Port::Auth => 0,
        Port::Acct => 1,
    };
    while !stopping.load(Ordering::Acquire) {
        shared.liveness.beat(index, Instant::now());
        let (n, src) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems
                tracing::debug!(error = %e, "receive failed");
                continue;
            }
        };
        Stats::inc(&shared.stats.received);
        let data = &buf[..n];
        // a bug must cost one packet, not the listener
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match port {
            Port::Auth => on_auth_packet(&shared, &sock, data, src),
            Port::Acct => on_acct_packet(&shared, &sock, data, src),
        }));
        if handled.is_err() {
            Stats::inc(&shared.stats.dropped_malformed);
            tracing::error!(%src, "internal error while handling a packet; dropped");
        }
    }
}

fn send(sock: &UdpSocket, reply: &[u8], to: SocketAddr) {
    if let Err(e) = sock.send_to(reply, to) {
        tracing::warn!(error = %e, %to, "sending a reply failed");
    }
}

impl Shared {
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

    /// Forgets every cached registry entry: the registry changed.
    fn invalidate_caches(&self) {
        self.cache.invalidate();
        self.cert_cache.invalidate();
    }

    fn begin(self: &Arc<Self>) -> InFlightGuard {
        self.inflight.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.clone())
    }

    fn record(&self, record: Record) {
        // try_send only: the guard is held across no lock, await or I/O
        let recorder = lock(&self.recorder);
        if let Some(r) = recorder.as_ref() {
            r.record(record, &self.stats);
        }
    }

    /// Common checks: known client, framing. Returns the client index and parsed packet.
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

    /// Duplicate check; true when the request is new and must be processed.
    fn first_time(&self, sock: &Arc<UdpSocket>, key: Key) -> bool {
        let seen = lock(&self.dedup).check(key, Instant::now());
        match seen {
            Seen::New => true,
            Seen::InProgress => {
                Stats::inc(&self.stats.duplicates);
                false
            }
            Seen::Answered(reply) => {
                Stats::inc(&self.stats.duplicates);
                tracing::debug!(src = %key.src, id = key.id, "retransmission: repeating the reply");
                send(sock, &reply, key.src);
                false
            }
        }
    }
}

fn status_reply(code: u8, p: &Packet<'_>, secret: &SecretKey) -> Vec<u8> {
    let (mut buf, off) = Builder::with_message_authenticator(code, p.identifier()).into_unsigned();
    sign_response(&mut buf, off, &p.authenticator(), secret);
    buf
}

fn on_auth_packet(shared: &Arc<Shared>, sock: &Arc<UdpSocket>, data: &[u8], src: SocketAddr) {
    let Some((ci, p)) = shared.admit(data, src) else {
        return;
    };
    let client = &shared.clients[ci];
    let secret = client.secret.expose().as_bytes();
    let is_status = match p.code() {
        code::ACCESS_REQUEST => false,
        code::STATUS_SERVER => true,
        other => {
            Stats::inc(&shared.stats.dropped_unexpected_code);
            tracing::debug!(%src, client = %client.name, code = dict::code::name(other), "dropped: not served on the authentication port");
            return;
        }
    };
    let ma = check_request_ma(&p, &client.key);
    match ma {
        MaCheck::Valid => {}
        MaCheck::Invalid => {
            Stats::inc(&shared.stats.dropped_bad_authenticator);
            tracing::debug!(%src, client = %client.name, "dropped: Message-Authenticator does not verify (wrong secret?)");
            return;
        }
        MaCheck::Absent => {
            // RFC 5997 and RFC 3579 require it on Status-Server and on EAP; config on the rest.
            // Where it is not required, Proxy-State without it is still refused: echoing an
            // attacker's Proxy-State is what BlastRADIUS exploits ("limit_proxy_state")
            if is_status
                || client.require_ma
                || p.attr(dict::EAP_MESSAGE).is_some()
                || p.attr(dict::PROXY_STATE).is_some()
            {
                Stats::inc(&shared.stats.dropped_missing_message_authenticator);
                tracing::debug!(%src, client = %client.name, "dropped: no Message-Authenticator (BlastRADIUS protection)");
                return;
            }
        }
    }
    if is_status {
        Stats::inc(&shared.stats.status);
        send(
            sock,
            &status_reply(code::ACCESS_ACCEPT, &p, &client.key),
            src,
        );
        return;
    }
    let key = Key::of(src, &p);
    if !shared.first_time(sock, key) {
        return;
    }
    let guard = shared.begin();
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
        key,
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
        eap_id: p.attr(dict::EAP_MESSAGE).and_then(|m| m.get(1).copied()),
        method: AuthMethod::Mab,
        eap_success: None,
    };
    let span = tracing::debug_span!(
        "access_request",
        nas = %client.name,
        %src,
        id = req.identifier,
        user = %req.username,
    );
    let _enter = span.enter();

    let early = if let Some(eap) = p.concat(dict::EAP_MESSAGE) {
        req.method = AuthMethod::EapTls;
        match shared.eap {
            Some(_) => {
                let input = eap::EapRequest {
                    eap,
                    state: p.attr(dict::STATE).map(<[u8]>::to_vec),
                    framed_mtu: p.u32(dict::FRAMED_MTU),
                };
                drop(_enter);
                eap::on_eap(shared, sock, req, input, guard, span.clone());
                return;
            }
            None => Some(Decision::reject(
                Reason::UnsupportedMethod,
                "rejected: 802.1X EAP is not enabled on this server (eap.enabled, or no server certificate: `poortwachter ca init`)".to_string(),
            )),
        }
    } else {
        match request::mab(&p, secret) {
            Ok(mac) if !client.mab => {
                req.mac = Some(mac);
                Some(Decision::reject(
                    Reason::MabDisabled,
                    format!(
                        "rejected: MAC authentication is disabled for {}",
                        client.name
                    ),
                ))
            }
            Ok(mac) => {
                req.mac = Some(mac);
                None
            }
            Err(problem) => Some(mab_problem(problem, &req.username)),
        }
    };
    if let Some(decision) = early {
        finish(shared, sock, &req, None, decision);
        drop(guard);
        return;
    }
    let Some(mac) = req.mac else {
        // `mab` returned a MAC; unreachable, but never panic on a peer's packet
        return;
    };
    match shared.cache.get(&mac, Instant::now()) {
        Lookup::Hit(subject) => {
            decide_and_answer(shared, sock, &req, subject);
            drop(guard);
        }
        Lookup::Miss(generation) => {
            let Ok(permit) = shared.backlog.clone().try_acquire_owned() else {
                Stats::inc(&shared.stats.dropped_overload);
                lock(&shared.dedup).forget(&req.key);
                return;
            };
            let shared = shared.clone();
            let sock = sock.clone();
            drop(_enter);
            let runtime = shared.runtime.clone();
            runtime.spawn(
                async move {
                    let _guard = guard;
                    let _permit = permit;
                    match load_subject(&*shared.store, mac).await {
                        Ok(subject) => {
                            shared
                                .cache
                                .store(mac, subject.clone(), generation, Instant::now());
                            decide_and_answer(&shared, &sock, &req, subject);
                        }
                        Err(e) => {
                            Stats::inc(&shared.stats.dropped_backend);
                            lock(&shared.dedup).forget(&req.key);
                            tracing::error!(error = %e, "registry lookup failed; request dropped");
                        }
                    }
                }
                .instrument(span.clone()),
            );
        }
    }
}

fn proxy_states(p: &Packet<'_>) -> Vec<Vec<u8>> {
    p.attributes()
        .filter(|(t, _)| *t == dict::PROXY_STATE)
        .map(|(_, v)| v.to_vec())
        .collect()
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
        MabProblem::MacMismatch {
            user_name,
            calling_station,
        } => Decision::reject(
            Reason::MacMismatch,
            format!("rejected: User-Name says {user_name} but Calling-Station-Id says {calling_station}"),
        ),
    }
}

/// A peer's text for a message: control characters replaced, at most 64 characters.
fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

async fn load_subject(store: &dyn Store, mac: MacAddr) -> Result<Option<Subject>, StoreError> {
    let Some(device) = store.device_by_mac(mac).await? else {
        return Ok(None);
    };
    let Some(owner) = store.owner(&device.owner).await? else {
        return Ok(None);
    };
    Ok(Some(Arc::new((device, owner))))
}

/// The policy's decision for the device the request names (by MAC, or by certificate for
/// EAP-TLS), now.
fn policy_decision(shared: &Shared, req: &AuthRequest, subject: Option<&Subject>) -> Decision {
    let client = &shared.clients[req.client];
    let preq = policy::Request {
        method: req.method,
        identity: &req.username,
        mac: req.mac,
        nas: &client.name,
        ssid: req.ssid.as_deref(),
    };
    policy::decide(
        &preq,
        subject.map(|s| (&s.0, &s.1)),
        Utc::now(),
        &shared.rules,
    )
}

/// The policy for the device the request names, answered.
fn decide_and_answer(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    req: &AuthRequest,
    subject: Option<Subject>,
) {
    let decision = policy_decision(shared, req, subject.as_ref());
    finish(shared, sock, req, subject.as_ref(), decision);
}

fn finish(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    req: &AuthRequest,
    subject: Option<&Subject>,
    decision: Decision,
) {
    let client = &shared.clients[req.client];
    let reply = match reply_packet(req, &decision, client) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "could not encode the reply; request dropped");
            lock(&shared.dedup).forget(&req.key);
            return;
        }
    };
    // cached before it is sent: a retransmission that overtakes a slow answer must find it
    lock(&shared.dedup).answered(&req.key, reply.clone());
    send(sock, &reply, req.src);
    let accepted = decision.outcome == Outcome::Accept;
    Stats::inc(if accepted {
        &shared.stats.accepts
    } else {
        &shared.stats.rejects
    });
    tracing::debug!(
        outcome = decision.outcome.as_str(),
        reason = decision.reason.as_str(),
        vlan = decision.vlan.map(|v| v.get()),
        mac = req.mac.map(|m| m.to_string()),
        "{}",
        decision.message
    );
    let now = Utc::now().trunc_subsecs(6);
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
            let folded = lock(&shared.coalescer).fold(key, Instant::now(), now);
            match folded {
                Fold::Folded => return,
                Fold::Store { repeats } => repeats,
            }
        }
        None => 0,
    };
    // a request without a Message-Authenticator may be forged by anyone who can use the
    // client's source address: it does not move the device's last-seen
    if let (true, true, Some(d)) = (accepted, req.authenticated, device) {
        shared.record(Record::Seen(Sighting {
            device_id: d.id,
            at: now,
            nas: client.name.clone(),
            ssid: req.ssid.clone(),
            mac: req.mac,
        }));
    }
    let record = DecisionRecord {
        id: 0,
        at: now,
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
        let given_up =
            lock(&shared.coalescer).stored(key, Arc::new(record.clone()), Instant::now());
        for r in given_up {
            shared.record(Record::Decision(r));
        }
    }
    shared.record(Record::Decision(record));
}

fn reply_packet(
    req: &AuthRequest,
    decision: &Decision,
    client: &Client,
) -> Result<Vec<u8>, crate::radius::EncodeError> {
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
    if let (false, Some(id)) = (accepted, req.eap_id) {
        // RFC 3579 §2.6.3: a reject to an EAP request carries an EAP-Failure
        b.add(dict::EAP_MESSAGE, &[4, id, 0, 4])?;
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
        if let Some(success) = &req.eap_success {
            eap::add_success(
                &mut b,
                success,
                client.secret.expose().as_bytes(),
                &req.authenticator,
            )?;
        }
    }
    let (mut buf, off) = b.into_unsigned();
    sign_response(&mut buf, off, &req.authenticator, &client.key);
    Ok(buf)
}

fn on_acct_packet(shared: &Arc<Shared>, sock: &Arc<UdpSocket>, data: &[u8], src: SocketAddr) {
    let Some((ci, p)) = shared.admit(data, src) else {
        return;
    };
    let client = &shared.clients[ci];
    match p.code() {
        code::ACCOUNTING_REQUEST => {}
        code::STATUS_SERVER => {
            if check_request_ma(&p, &client.key) != MaCheck::Valid {
                Stats::inc(&shared.stats.dropped_bad_authenticator);
                return;
            }
            Stats::inc(&shared.stats.status);
            send(
                sock,
                &status_reply(code::ACCOUNTING_RESPONSE, &p, &client.key),
                src,
            );
            return;
        }
        other => {
            Stats::inc(&shared.stats.dropped_unexpected_code);
            tracing::debug!(%src, client = %client.name, code = dict::code::name(other), "dropped: not served on the accounting port");
            return;
        }
    }
    if !check_accounting_authenticator(&p, &client.key)
        || check_request_ma(&p, &client.key) == MaCheck::Invalid
    {
        Stats::inc(&shared.stats.dropped_bad_authenticator);
        tracing::debug!(%src, client = %client.name, "dropped: accounting authenticator does not verify (wrong secret?)");
        return;
    }
    let key = Key::of(src, &p);
    if !shared.first_time(sock, key) {
        return;
    }
    let Ok(permit) = shared.backlog.clone().try_acquire_owned() else {
        Stats::inc(&shared.stats.dropped_overload);
        lock(&shared.dedup).forget(&key);
        return;
    };
    let guard = shared.begin();
    let action = acct::read(
        &p,
        &client.name,
        src.ip().to_string(),
        Utc::now().trunc_subsecs(6),
    );
    let identifier = p.identifier();
    let authenticator = p.authenticator();
    let proxy_state = proxy_states(&p);
    let shared = shared.clone();
    let sock = sock.clone();
    let span =
        tracing::debug_span!("accounting_request", nas = %client.name, %src, id = identifier);
    let runtime = shared.runtime.clone();
    runtime.spawn(
        async move {
            let _guard = guard;
            let _permit = permit;
            let client = &shared.clients[ci];
            let stored = match action {
                AcctAction::Session(mut u) => {
                    if u.device_id.is_none() {
                        if let Some(mac) = u.mac {
                            if let Ok(Some(s)) = load_subject(&*shared.store, mac).await {
                                u.device_id = Some(s.0.id);
                                u.owner = Some(s.1.username.clone());
                            }
                        }
                    }
                    tracing::debug!(kind = ?u.kind, session = %u.acct_session_id, "accounting");
                    shared.store.record_accounting(&u).await
                }
                AcctAction::NasRestart { nas_key, cause } => {
                    match shared
                        .store
                        .close_sessions(&client.name, &nas_key, Utc::now().trunc_subsecs(6), cause)
                        .await
                    {
                        Ok(n) => {
                            tracing::info!(nas = %client.name, ap = %nas_key, closed = n, cause, "NAS restarted: its open sessions closed");
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                AcctAction::Ignore(why) => {
                    tracing::debug!(why, "accounting request not stored");
                    Ok(())
                }
            };
            match stored {
                Ok(()) => {
                    // no Message-Authenticator: RFC 2866 does not define one here, and
                    // implementations disagree on its input (FreeRADIUS zeroes the vector);
                    // the Response Authenticator already covers the reply
                    let mut b = Builder::new(code::ACCOUNTING_RESPONSE, identifier);
                    for ps in &proxy_state {
                        // each came in a packet of at most 4096 bytes: it fits
                        let _ = b.add(dict::PROXY_STATE, ps);
                    }
                    let (mut buf, off) = b.into_unsigned();
                    sign_response(&mut buf, off, &authenticator, &client.key);
                    lock(&shared.dedup).answered(&key, buf.clone());
                    send(&sock, &buf, src);
                    Stats::inc(&shared.stats.accounting);
                }
                Err(e) => {
                    // no answer: the NAS retransmits, and the retransmission is processed anew
                    Stats::inc(&shared.stats.dropped_backend);
                    lock(&shared.dedup).forget(&key);
                    tracing::error!(error = %e, "storing accounting failed; not answered");
                }
            }
        }
        .instrument(span),
    );
}

async fn watch_registry(
    shared: Arc<Shared>,
    poll: Duration,
    changed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    match shared.store.watch_changes().await {
        Ok(Some(mut changes)) => loop {
            tokio::select! {
                _ = stop.changed() => return,
                c = changes.recv() => match c {
                    Some(()) => {
                        shared.invalidate_caches();
                        changed.notify_one();
                    }
                    None => return,
                },
            }
        },
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for registry changes; polling instead");
        }
    }
    let mut last = shared.store.change_marker().await.ok();
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        match shared.store.change_marker().await {
            Ok(m) if Some(m) != last => {
                last = Some(m);
                shared.invalidate_caches();
                changed.notify_one();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "registry change poll failed; cache dropped");
                shared.invalidate_caches();
                last = None;
            }
        }
    }
}

async fn report(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let stats = shared.stats.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut seconds = 0u64;
    let mut last = String::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        // folded decisions whose window has passed go to the log
        let swept = lock(&shared.coalescer).sweep(Instant::now());
        for r in swept {
            shared.record(Record::Decision(r));
        }
        if let Some(eap) = &shared.eap {
            eap.sweep(Instant::now());
        }
        seconds += 1;
        if seconds % 60 != 0 {
            continue;
        }
        if let Some(eap) = &shared.eap {
            let (open, evicted, expired) = eap.conversations();
            tracing::info!(open, evicted, expired, "EAP conversations");
        }
        let now = stats.to_string();
        if now != last {
            tracing::info!(counters = %now, "RADIUS counters");
            last = now;
        }
    }
}
