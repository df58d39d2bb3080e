//! The RADIUS server: the UDP listeners for authentication (RFC 2865) and accounting
//! (RFC 2866), the threads and tasks, the semaphores that bound the work waiting, the registry
//! reads behind the caches, and shutdown. The request path itself, from a datagram to reply
//! bytes, is the sans-IO core in [`access`]; this module only carries out what it asks for.

pub mod access;
pub mod acct;
pub mod aggregate;
pub mod cache;
pub mod coalesce;
pub mod dedup;
pub mod eap;
pub mod liveness;
pub mod recorder;
pub mod request;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod stats;
pub mod systemd;

use std::future::Future;
use std::net::SocketAddr;
use std::net::UdpSocket;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use crate::config::Config;
use crate::mac::MacAddr;
use crate::policy;
use crate::radius::MAX_PACKET_LEN;
use crate::registry::{Store, StoreError};
use crate::sync::lock;

use self::access::{Access, AcctWork, Client, EapTurn, Now, Pending, Port, Step, Want};
use self::acct::AcctAction;
use self::cache::{Lookup, Subject, SubjectCache};
use self::coalesce::Coalescer;
use self::dedup::DedupCache;
use self::liveness::{Liveness, STALL_AFTER};
use self::recorder::{Record, Recorder};
use self::stats::Stats;

/// Requests that may wait for the registry at once; more are dropped (and counted) rather than
/// queued without bound while the database is slow.
const MAX_BACKLOG: usize = 4_096;

/// EAP requests that may wait for a TLS step at once (a few seconds of handshakes on two
/// cores); more are dropped and counted, and the NAS retransmits.
pub(super) const EAP_BACKLOG: usize = 1_024;

/// Requests the duplicate cache remembers, and bytes of replies it holds: about 24 MB at most
/// (`dedup::ENTRY_BYTES`, some 240 bytes, each, plus the replies), and five seconds of requests
/// up to 13,000 requests/s; beyond that rate a retransmission may be decided again, which is
/// harmless.
const DEDUP_ENTRIES: usize = 65_536;
const DEDUP_REPLY_BYTES: usize = 8 << 20;

/// Keys the decision folding remembers (about 280 bytes each with the expiry queue) and full
/// records it holds (up to about 1.5 KB each): under 16 MB in all. Decisions about unregistered devices never reach it
/// (they are counted per minute instead), so the keys are registered devices seen within the
/// window.
const COALESCE_KEYS: usize = 32_768;
const COALESCE_HELD: usize = 4_096;

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
    /// The request path.
    access: Access,
    store: Arc<dyn Store>,
    stats: Arc<Stats>,
    cache: SubjectCache,
    /// The same for EAP-TLS: certificate fingerprint → subject.
    cert_cache: SubjectCache<String>,
    recorder: Mutex<Option<Recorder>>,
    inflight: InFlight,
    runtime: tokio::runtime::Handle,
    /// Bounds the requests waiting for the registry (cache misses, accounting).
    backlog: Arc<tokio::sync::Semaphore>,
    /// Bounds the EAP requests waiting for a TLS step.
    eap_slots: Arc<tokio::sync::Semaphore>,
    /// The listeners' heartbeats.
    liveness: Arc<Liveness>,
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
            .map(|c| Client::from_config(c, &config.radius))
            .collect();
        let stats = Arc::new(Stats::default());
        let enforcer = crate::coa::enforcer::Enforcer::new(config, store.clone());
        let (recorder, writer) = Recorder::start(
            store.clone(),
            stats.clone(),
            config.log.decision_retention.chrono(),
        );
        let access = Access::new(
            clients,
            policy::Rules::from_config(config),
            stats.clone(),
            DedupCache::new(
                config.radius.duplicate_window.0,
                DEDUP_ENTRIES,
                DEDUP_REPLY_BYTES,
            ),
            Coalescer::new(config.log.decision_coalesce.0, COALESCE_KEYS, COALESCE_HELD),
            eap,
        );
        let shared = Arc::new(Shared {
            access,
            store,
            stats,
            cache: SubjectCache::new(config.cache.enabled, Duration::from_secs(300), 1_000_000),
            cert_cache: SubjectCache::new(
                config.cache.enabled,
                Duration::from_secs(300),
                1_000_000,
            ),
            recorder: Mutex::new(Some(recorder)),
            inflight: InFlight::default(),
            runtime: tokio::runtime::Handle::current(),
            backlog: Arc::new(tokio::sync::Semaphore::new(MAX_BACKLOG)),
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
        self.shared.access.eap().cloned()
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
            clients = self.shared.access.clients().len(),
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
        for r in self.shared.access.drain() {
            self.shared.record(r);
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
        let span = tracing::debug_span!(
            "radius",
            %src,
            port = ?port,
            outcome = tracing::field::Empty,
            reason = tracing::field::Empty
        );
        // a bug must cost one packet, not the listener
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _enter = span.enter();
            let step = shared.access.datagram(data, src, port, Now::system());
            drive(&shared, &sock, src, step, On::Listener, &span);
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

/// Which thread carries out a step: a TLS step never runs on an async worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    /// The listener thread: a TLS step runs here only when no other one is waiting.
    Listener,
    /// A runtime worker (after a registry read).
    Async,
    /// A blocking-pool thread already given to EAP.
    Blocking,
}

/// Carries out what the core asks for until a reply is sent, nothing is, or the work moves
/// to another thread (a registry read, a TLS step, an accounting write).
fn drive(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    src: SocketAddr,
    mut step: Step,
    on: On,
    span: &tracing::Span,
) {
    loop {
        step = match step {
            Step::Send(reply) => {
                send(sock, &reply.bytes, src);
                for r in reply.records {
                    shared.record(r);
                }
                return;
            }
            Step::Silent => return,
            Step::Need(pending) => {
                let now = Instant::now();
                let cached = match pending.want() {
                    Want::Mac(mac) => shared.cache.get(mac, now),
                    Want::Certificate(fp) => shared.cert_cache.get(fp.as_str(), now),
                };
                match cached {
                    Lookup::Hit(subject) => shared.access.resolve(pending, subject, Now::system()),
                    Lookup::Miss(generation) => {
                        return spawn_lookup(shared, sock, src, pending, generation, span);
                    }
                }
            }
            Step::Eap(turn) => match on {
                On::Blocking => shared.access.eap_turn(turn, Now::system()),
                On::Async => return spawn_eap(shared, sock, src, turn, span),
                On::Listener => {
                    let Ok(permit) = shared.eap_slots.clone().try_acquire_owned() else {
                        Stats::inc(&shared.stats.dropped_overload);
                        return;
                    };
                    // alone: no thread hand-off, the cheapest path for a lone supplicant
                    if shared.eap_slots.available_permits() + 1 != EAP_BACKLOG {
                        drop(permit);
                        return spawn_eap(shared, sock, src, turn, span);
                    }
                    let next = shared.access.eap_turn(turn, Now::system());
                    drop(permit);
                    next
                }
            },
            Step::Account(work) => return spawn_account(shared, sock, work, span),
        };
    }
}

/// A TLS step on the blocking pool, at most `EAP_BACKLOG` waiting (more are dropped and
/// counted; the NAS retransmits).
fn spawn_eap(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    src: SocketAddr,
    turn: Box<EapTurn>,
    span: &tracing::Span,
) {
    let Ok(permit) = shared.eap_slots.clone().try_acquire_owned() else {
        Stats::inc(&shared.stats.dropped_overload);
        return;
    };
    let guard = shared.begin();
    let shared = shared.clone();
    let sock = sock.clone();
    let span = span.clone();
    let runtime = shared.runtime.clone();
    runtime.spawn_blocking(move || {
        let _guard = guard;
        let _permit = permit;
        let _enter = span.enter();
        let step = shared.access.eap_turn(turn, Now::system());
        drive(&shared, &sock, src, step, On::Blocking, &span);
    });
}

/// The registry read of a cache miss on the runtime, at most `MAX_BACKLOG` waiting; a
/// certificate's read is tried once more (a conversation cannot simply be retransmitted).
fn spawn_lookup(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    src: SocketAddr,
    pending: Box<Pending>,
    generation: u64,
    span: &tracing::Span,
) {
    let Ok(permit) = shared.backlog.clone().try_acquire_owned() else {
        Stats::inc(&shared.stats.dropped_overload);
        return;
    };
    let guard = shared.begin();
    let shared = shared.clone();
    let sock = sock.clone();
    let task_span = span.clone();
    let span = span.clone();
    let runtime = shared.runtime.clone();
    runtime.spawn(
        async move {
            let _guard = guard;
            let _permit = permit;
            let step = match pending.want().clone() {
                Want::Mac(mac) => match load_subject(&*shared.store, mac).await {
                    Ok(subject) => {
                        shared
                            .cache
                            .store(mac, subject.clone(), generation, Instant::now());
                        shared.access.resolve(pending, subject, Now::system())
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "registry lookup failed");
                        shared.access.unresolved(pending, Now::system())
                    }
                },
                Want::Certificate(fp) => {
                    let mut found = load_by_certificate(&*shared.store, &fp).await;
                    if found.is_err() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        found = load_by_certificate(&*shared.store, &fp).await;
                    }
                    match found {
                        Ok(subject) => {
                            shared.cert_cache.store(
                                fp,
                                subject.clone(),
                                generation,
                                Instant::now(),
                            );
                            shared.access.resolve(pending, subject, Now::system())
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "registry lookup failed");
                            shared.access.unresolved(pending, Now::system())
                        }
                    }
                }
            };
            drive(&shared, &sock, src, step, On::Async, &span);
        }
        .instrument(task_span),
    );
}

/// An accounting update stored on the runtime; answered once stored.
fn spawn_account(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    mut work: Box<AcctWork>,
    span: &tracing::Span,
) {
    let Ok(permit) = shared.backlog.clone().try_acquire_owned() else {
        Stats::inc(&shared.stats.dropped_overload);
        return;
    };
    let guard = shared.begin();
    let shared = shared.clone();
    let sock = sock.clone();
    let task_span = span.clone();
    let span = span.clone();
    let runtime = shared.runtime.clone();
    runtime.spawn(
        async move {
            let _guard = guard;
            let _permit = permit;
            let nas = work.nas.clone();
            let stored = match &mut work.action {
                AcctAction::Session(u) => {
                    if u.device_id.is_none() {
                        if let Some(mac) = u.mac {
                            if let Ok(Some(s)) = load_subject(&*shared.store, mac).await {
                                u.device_id = Some(s.0.id);
                                u.owner = Some(s.1.username.clone());
                            }
                        }
                    }
                    tracing::debug!(kind = ?u.kind, session = %crate::text::Escaped(&u.acct_session_id), "accounting");
                    shared.store.record_accounting(u).await
                }
                AcctAction::NasRestart { nas_key, cause } => {
                    let closed = shared
                        .store
                        .close_sessions(&nas, nas_key, Utc::now().trunc_subsecs(6), cause)
                        .await;
                    if let Ok(n) = closed {
                        tracing::info!(nas = %nas, ap = %crate::text::Escaped(nas_key), closed = n, cause, "NAS restarted: its open sessions closed");
                    }
                    closed.map(|_| ())
                }
                AcctAction::Ignore(why) => {
                    tracing::debug!(why, "accounting request not stored");
                    Ok(())
                }
            };
            if let Err(e) = &stored {
                tracing::error!(error = %e, "storing accounting failed; not answered");
            }
            let src = work.src;
            let step = shared.access.accounted(work, stored.is_ok());
            drive(&shared, &sock, src, step, On::Async, &span);
        }
        .instrument(task_span),
    );
}

impl Shared {
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

async fn load_by_certificate(
    store: &dyn Store,
    fingerprint: &str,
) -> Result<Option<Subject>, StoreError> {
    let Some(device) = store.device_by_cert_fingerprint(fingerprint).await? else {
        return Ok(None);
    };
    let Some(owner) = store.owner(&device.owner).await? else {
        return Ok(None);
    };
    Ok(Some(Arc::new((device, owner))))
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
        for r in shared.access.sweep(Now::system()) {
            shared.record(r);
        }
        if let Some(eap) = shared.access.eap() {
            eap.sweep(Instant::now());
        }
        seconds += 1;
        if seconds % 60 != 0 {
            continue;
        }
        if let Some(eap) = shared.access.eap() {
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
