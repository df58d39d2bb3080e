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
pub mod degraded;
pub mod directory;
pub mod eap;
pub mod labelled;
pub mod liveness;
pub mod loglimit;
pub mod recorder;
pub mod reload;
pub mod request;
pub mod secrets;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod snapshot;
pub mod spool;
pub mod stats;
pub mod systemd;
pub mod warn;

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

use crate::config::{Config, UnseenWhileDegraded};
use crate::mac::MacAddr;
use crate::policy;
use crate::radius::MAX_PACKET_LEN;
use crate::registry::{RegistryChange, Store, StoreError};
use crate::sync::lock;

use self::access::{Access, AcctWork, Client, EapTurn, Now, Pending, Port, Step, Want};
use self::acct::AcctAction;
use self::cache::{Lookup, Stale, Subject, SubjectCache, Touched};
use self::coalesce::Coalescer;
use self::dedup::DedupCache;
use self::degraded::StoreHealth;
use self::liveness::{Liveness, STALL_AFTER};
use self::recorder::{Record, Recorder};
use self::stats::Stats;

/// Requests that may wait for the registry at once; more are dropped (and counted) rather than
/// queued without bound while the database is slow.
const MAX_BACKLOG: usize = 4_096;

/// How long a cached entry is trusted without reading the registry again (a change seen
/// drops it sooner).
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Registered keys (MACs, certificate fingerprints) cached at most: bounded by the registry
/// itself, this is only a backstop.
const MAX_KNOWN: usize = 1_000_000;
/// "Not registered" answers cached, per generation (two generations): what a flood of
/// made-up MACs can fill, about 3 MiB.
const MAX_UNKNOWN: usize = 32_768;
/// The longest a registry read for a request may take before the request is decided on
/// last-known-good data (a NAS retransmits after 2-5 s).
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(1_500);

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
/// records it holds (about 400 bytes each, 1.5 KB with the longest messages): under 35 MB in
/// all, some 15 MB in practice. Decisions about unregistered devices never reach it (they are
/// counted per minute instead), so the keys are registered devices seen within the window; a
/// device with a repeat needs a held record, so past `COALESCE_HELD` devices repeating within
/// one window each repeat is a row of its own (4,096 halved the MAB throughput with 10,000
/// devices: `scripts/bench`).
const COALESCE_KEYS: usize = 32_768;
const COALESCE_HELD: usize = 16_384;

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
    /// The accounting spool left by an earlier run cannot be read.
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
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
    /// Whether the registry can be read.
    health: Arc<StoreHealth>,
    /// What a device this node has no data for gets while degraded.
    unseen: UnseenWhileDegraded,
    /// Degraded answers are off (`cache.stale_grace = 0s`).
    no_grace: bool,
    /// Migrations still to run once the database answers (started from the snapshot).
    migrate_pending: AtomicBool,
    /// `database.migrate_on_start`: whether this node may change the schema (a runtime role
    /// without DDL rights may not) when the database returns after a start from the snapshot.
    migrate_on_start: bool,
    /// When the schema failure of a return from the snapshot was last logged, and how many
    /// tries failed since: the probe retries every second, the log hears of it once a minute.
    schema_failure_logged: std::sync::Mutex<Option<(Instant, u64)>>,
    /// What wakes the enforcer: registry changes, a return from an outage, a reload that
    /// changed the rules.
    signals: Arc<Signals>,
    /// Gives freed memory back to the OS (set by the binary: the library has no unsafe code).
    release_memory: std::sync::OnceLock<fn()>,
    /// Accounting waiting for the registry database.
    spool: Arc<spool::Spool>,
}

/// The enforcer's view of the configuration: the request path's own clients and rules, as
/// the last reload left them (no copy of its own to keep in step).
impl crate::coa::enforcer::NasDirectory for Shared {
    fn nas_client(&self, name: &str) -> Option<Arc<crate::coa::enforcer::NasClient>> {
        let live = self.access.live();
        let client = live.clients.iter().find(|c| c.name == name)?;
        Some(client.coa.clone())
    }
}

impl crate::coa::enforcer::InForce for Shared {
    fn rules(&self) -> policy::Rules {
        self.access.live().rules.clone()
    }
}

/// The EAP engine a server has in force, looked up at each use: none while EAP-TLS is off.
#[derive(Clone)]
pub struct LiveEap(Arc<Shared>);

impl LiveEap {
    /// The engine now, if EAP-TLS is on.
    pub fn engine(&self) -> Option<Arc<crate::eap::EapServer>> {
        self.0.access.eap()
    }
}

/// The running listeners.
pub struct Server {
    shared: Arc<Shared>,
    auth: Arc<UdpSocket>,
    acct: Arc<UdpSocket>,
    poll_interval: Duration,
    /// Where the snapshot is written, and how often.
    state_dir: std::path::PathBuf,
    snapshot_interval: Duration,
    /// Retention and erasure (`[privacy]`), run hourly, with the registry rules it needs.
    privacy: (crate::registry::privacy::Retention, crate::registry::Rules),
    writer: tokio::task::JoinHandle<()>,
    /// Disconnects sessions whose device lost its access (RFC 5176), unless `coa.enabled` is off.
    enforcer: Option<crate::coa::enforcer::Enforcer>,
    /// The enforcer's Disconnect/CoA results (zeros when `coa.enabled` is off).
    coa_counts: Arc<crate::coa::counters::CoaCounters>,
    /// The scheduled directory sync (`directory.interval`), if any.
    directory: Option<directory::DirectorySync>,
    /// Its results.
    directory_counts: Option<Arc<crate::directory::SyncCounters>>,
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
        let (dir, max) = (
            config.node.state_dir.clone(),
            config.node.spool_max_mib.saturating_mul(1 << 20),
        );
        let spool = tokio::task::spawn_blocking(move || spool::Spool::open(&dir, max))
            .await
            .map_err(|e| spool::SpoolError::Io {
                path: config.node.state_dir.clone(),
                source: std::io::Error::other(e),
            })??;
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
            cache: SubjectCache::new(
                config.cache.enabled,
                CACHE_TTL,
                config.cache.stale_grace.0,
                MAX_KNOWN,
                MAX_UNKNOWN,
            ),
            cert_cache: SubjectCache::new(
                config.cache.enabled,
                CACHE_TTL,
                config.cache.stale_grace.0,
                MAX_KNOWN,
                MAX_UNKNOWN,
            ),
            recorder: Mutex::new(Some(recorder)),
            inflight: InFlight::default(),
            runtime: tokio::runtime::Handle::current(),
            backlog: Arc::new(tokio::sync::Semaphore::new(MAX_BACKLOG)),
            eap_slots: Arc::new(tokio::sync::Semaphore::new(EAP_BACKLOG)),
            liveness: Arc::new(Liveness::new(Instant::now())),
            health: Arc::new(StoreHealth::default()),
            unseen: config.cache.unseen_while_degraded,
            no_grace: config.cache.stale_grace.0.is_zero(),
            migrate_pending: AtomicBool::new(false),
            migrate_on_start: config.database.migrate_on_start,
            schema_failure_logged: std::sync::Mutex::new(None),
            signals: Arc::new(Signals::default()),
            release_memory: std::sync::OnceLock::new(),
            spool: Arc::new(spool),
        });
        // it decides with the clients and rules the request path has in force
        let enforcer =
            crate::coa::enforcer::Enforcer::new(config, shared.store.clone(), shared.clone());
        let directory = directory::DirectorySync::new(config, shared.store.clone());
        Ok(Server {
            shared,
            auth,
            acct,
            poll_interval: config.cache.poll_interval.0,
            state_dir: config.node.state_dir.clone(),
            snapshot_interval: config.node.snapshot_interval.0,
            privacy: (
                config.privacy.retention(),
                crate::registry::Rules {
                    max_devices_per_owner: config.policy.max_devices_per_owner,
                    timezone: config.policy.timezone,
                },
            ),
            writer,
            coa_counts: enforcer.as_ref().map(|e| e.counters()).unwrap_or_default(),
            enforcer,
            directory_counts: directory.as_ref().map(|d| d.counters()),
            directory,
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

    /// Decisions per client and reason (for the metrics).
    pub fn decisions(&self) -> Arc<labelled::DecisionCounters> {
        self.shared.access.decisions().clone()
    }

    /// Disconnect/CoA results (for the metrics).
    pub fn coa_counters(&self) -> Arc<crate::coa::counters::CoaCounters> {
        self.coa_counts.clone()
    }

    /// The scheduled directory sync's results (for the metrics), when `directory.interval`
    /// schedules one.
    pub fn directory_counters(&self) -> Option<Arc<crate::directory::SyncCounters>> {
        self.directory_counts.clone()
    }

    /// The EAP engine now in force, when EAP-TLS is set up.
    pub fn eap_engine(&self) -> Option<Arc<crate::eap::EapServer>> {
        self.shared.access.eap()
    }

    /// The EAP engine in force at each look (for the metrics, made once at start while a
    /// reload may turn EAP-TLS on or off).
    pub fn live_eap(&self) -> LiveEap {
        LiveEap(self.shared.clone())
    }

    /// The listeners' heartbeats (for the health endpoint).
    pub fn liveness(&self) -> Arc<Liveness> {
        self.shared.liveness.clone()
    }

    /// A function that gives freed memory back to the OS, called every
    /// [`RELEASE_MEMORY_EVERY`] on a blocking thread (glibc's `malloc_trim`, from the binary).
    pub fn release_memory_with(&self, release: fn()) {
        let _ = self.shared.release_memory.set(release);
    }

    /// Whether the registry can be read (for readiness and metrics).
    pub fn store_health(&self) -> Arc<StoreHealth> {
        self.shared.health.clone()
    }

    /// Starts degraded from a snapshot because the database does not answer: its devices
    /// are last-known-good data (as old as the snapshot), and once the database answers the
    /// pending migrations run before anything else.
    pub fn start_from_snapshot(&self, snap: snapshot::Snapshot, why: &str) {
        let age = (Utc::now() - snap.written_at).to_std().unwrap_or_default();
        let now = Instant::now();
        let loaded = now.checked_sub(age).unwrap_or(now);
        let mut macs = Vec::new();
        let mut certs = Vec::new();
        for (device, owner) in snap.subjects {
            let subject: Subject = Arc::new((device, owner));
            for mac in &subject.0.macs {
                macs.push((*mac, subject.clone()));
            }
            if let Some(fp) = &subject.0.cert_fingerprint {
                certs.push((fp.to_ascii_lowercase(), subject.clone()));
            }
        }
        tracing::warn!(
            written_at = %snap.written_at,
            macs = macs.len(),
            certificates = certs.len(),
            "starting from the last-known-good snapshot: DEGRADED until the registry database answers"
        );
        self.shared.cache.seed(macs, loaded);
        self.shared.cert_cache.seed(certs, loaded);
        self.shared.migrate_pending.store(true, Ordering::Release);
        self.shared
            .health
            .failed(&format!("at start: {why}"), now, Utc::now());
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
        let signals = self.shared.signals.clone();
        let watcher = tokio::spawn(watch_registry(
            self.shared.clone(),
            self.poll_interval,
            signals.clone(),
            stop_rx.clone(),
        ));
        let enforcer = self.enforcer.take().map(|e| {
            tokio::spawn(e.run(
                signals.changed.clone(),
                signals.recheck.clone(),
                stop_rx.clone(),
            ))
        });
        let directory = self
            .directory
            .take()
            .map(|d| tokio::spawn(d.run(stop_rx.clone())));
        let reporter = tokio::spawn(report(self.shared.clone(), stop_rx.clone()));
        let snapshots = tokio::spawn(keep_snapshot(
            self.shared.clone(),
            self.state_dir.clone(),
            self.snapshot_interval,
            stop_rx.clone(),
        ));
        let replayer = tokio::spawn(spool::replay(
            self.shared.spool.clone(),
            self.shared.store.clone(),
            self.shared.stats.clone(),
            stop_rx.clone(),
        ));
        let privacy = tokio::spawn(keep_privacy(
            crate::registry::Registry::new(self.shared.store.clone(), self.privacy.1.clone()),
            self.privacy.0,
            stop_rx.clone(),
        ));
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
            ("the snapshot writer", snapshots),
            ("the privacy sweep", privacy),
            ("the accounting spool replay", replayer),
            ("the systemd watchdog", watchdog),
        ];
        // a sync under way is cancelled at the stop (its transaction rolls back)
        tasks.extend(directory.map(|d| ("the directory sync", d)));
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
        // The enforcer holds nothing that a stop must keep: a Disconnect it sent whose answer
        // it has not stored yet is sent again by the next enforcer (at worst a second
        // Disconnect-Request, NAKed with Session-Context-Not-Found once the session is gone).
        // Stuck on a database that does not answer, it is cancelled and said so, not counted
        // as abandoned work.
        if let Some(e) = enforcer {
            let abort = e.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), e)
                .await
                .is_err()
            {
                abort.abort();
                tracing::warn!(
                    "the disconnect enforcer was waiting on the registry database for over 2 s: cancelled (it keeps no state a stop must save)"
                );
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
            reason = tracing::field::Empty,
            degraded = tracing::field::Empty
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
                    // the database is known to be away: no waiting for it
                    Lookup::Miss { stale, .. } if shared.health.is_degraded() => {
                        shared.fall_back(pending, stale)
                    }
                    Lookup::Miss { generation, stale } => {
                        return spawn_lookup(shared, sock, src, pending, generation, stale, span);
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

/// The registry read of a cache miss on the runtime, at most `MAX_BACKLOG` waiting and for
/// at most [`LOOKUP_TIMEOUT`]; when it fails the node turns degraded and the request is
/// decided on last-known-good data (`stale`).
#[allow(clippy::too_many_arguments)]
fn spawn_lookup(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    src: SocketAddr,
    pending: Box<Pending>,
    generation: u64,
    stale: Option<Stale>,
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
            let want = pending.want().clone();
            let read = match &want {
                Want::Mac(mac) => {
                    tokio::time::timeout(LOOKUP_TIMEOUT, load_subject(&*shared.store, *mac)).await
                }
                Want::Certificate(fp) => {
                    tokio::time::timeout(LOOKUP_TIMEOUT, load_by_certificate(&*shared.store, fp))
                        .await
                }
            };
            let read = match read {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!(
                    "no answer within {} ms",
                    LOOKUP_TIMEOUT.as_millis()
                )),
            };
            let step = match read {
                Ok(subject) => {
                    match want {
                        Want::Mac(mac) => {
                            shared
                                .cache
                                .store(mac, subject.clone(), generation, Instant::now())
                        }
                        Want::Certificate(fp) => {
                            shared
                                .cert_cache
                                .store(fp, subject.clone(), generation, Instant::now())
                        }
                    }
                    shared.access.resolve(pending, subject, Now::system())
                }
                Err(why) => {
                    shared.store_failed(&why);
                    shared.fall_back(pending, stale)
                }
            };
            drive(&shared, &sock, src, step, On::Async, &span);
        }
        .instrument(task_span),
    );
}

/// An accounting update stored on the runtime; answered once stored, or once durable in the
/// accounting spool while the registry database cannot take it ([`spool`]).
fn spawn_account(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    work: Box<AcctWork>,
    span: &tracing::Span,
) {
    let Ok(permit) = shared.backlog.clone().try_acquire_owned() else {
        Stats::inc(&shared.stats.dropped_overload);
        return;
    };
    let guard = shared.begin();
    // an Accounting-On/Off closes what was open when it came in, however late it is stored
    let received = Utc::now().trunc_subsecs(6);
    let shared = shared.clone();
    let sock = sock.clone();
    let task_span = span.clone();
    let span = span.clone();
    let runtime = shared.runtime.clone();
    runtime.spawn(
        async move {
            let _guard = guard;
            let _permit = permit;
            let entry = match &work.action {
                AcctAction::Session(u) => {
                    tracing::debug!(kind = ?u.kind, session = %crate::text::Escaped(&u.acct_session_id), "accounting");
                    Some(spool::Entry::Session(u.clone()))
                }
                AcctAction::NasRestart { nas_key, cause } => Some(spool::Entry::NasRestart {
                    nas: work.nas.clone(),
                    nas_key: nas_key.clone(),
                    at: received,
                    cause: (*cause).to_string(),
                }),
                AcctAction::Ignore(why) => {
                    tracing::debug!(why, "accounting request not stored");
                    None
                }
            };
            let stored = match entry {
                Some(entry) => {
                    spool::store_or_spool(
                        &shared.spool,
                        &*shared.store,
                        &shared.stats,
                        entry,
                        shared.health.is_degraded(),
                    )
                    .await
                }
                None => true,
            };
            let src = work.src;
            let step = shared.access.accounted(work, stored);
            drive(&shared, &sock, src, step, On::Async, &span);
        }
        .instrument(task_span),
    );
}

impl Shared {
    /// Forgets every cached registry entry.
    fn invalidate_caches(&self) {
        self.cache.invalidate();
        self.cert_cache.invalidate();
    }

    /// Drops the cached entries an audit entry's target touches.
    fn forget(&self, target_type: &str, target_id: &str) {
        let touched = match target_type {
            "device" => match uuid::Uuid::parse_str(target_id) {
                Ok(id) => Touched::Device(id),
                Err(_) => return self.revalidate_caches(),
            },
            "owner" => Touched::Owner(target_id.to_string()),
            // tokens, sessions, the CA: nothing a cached subject holds
            _ => return,
        };
        self.cache.forget(&touched);
        self.cert_cache.forget(&touched);
    }

    /// The registry may have changed unseen: read every entry again before trusting it.
    fn revalidate_caches(&self) {
        self.cache.revalidate();
        self.cert_cache.revalidate();
    }

    /// A registry read failed: the node turns degraded (logged once per outage).
    fn store_failed(&self, why: &str) {
        if self.health.failed(why, Instant::now(), Utc::now()) {
            tracing::error!(
                error = %why,
                grace = %crate::config::HumanDuration(self.cache_grace()),
                "the registry database cannot be read: DEGRADED, deciding on last-known-good data until it answers again"
            );
        }
    }

    fn cache_grace(&self) -> Duration {
        self.cache.grace()
    }

    /// Decides a request the registry cannot be read for: on its last-known-good data, or,
    /// for a device this node holds none for, as `cache.unseen_while_degraded` says.
    fn fall_back(&self, pending: Box<Pending>, stale: Option<Stale>) -> Step {
        let now = Now::system();
        match stale {
            Some(Stale { subject, age }) => {
                tracing::debug!(age_s = age.as_secs(), "deciding on last-known-good data");
                self.access.resolve_degraded(pending, subject, now)
            }
            None if self.no_grace => self.access.unresolved(pending, now),
            None => match self.unseen {
                UnseenWhileDegraded::Unknown => self.access.resolve_degraded(pending, None, now),
                UnseenWhileDegraded::NoAnswer => self.access.unseen_while_degraded(pending),
            },
        }
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

/// What the registry watcher wakes others for.
#[derive(Default)]
struct Signals {
    /// The registry changed (the enforcer follows the audit log).
    changed: Arc<Notify>,
    /// The registry answers again after an outage, this node became the enforcer, or a
    /// reload changed the policy, VLANs or roles: every open session is re-decided (those
    /// admitted while degraded included).
    recheck: Arc<Notify>,
}

/// How often the watcher probes a database that does not answer.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Audit entries read per SQLite poll; more at once and every entry is read again instead.
const POLL_PAGE: u32 = 500;

/// Follows registry changes, drops the cached entries each touches, and ends an outage:
/// PostgreSQL pushes change notifications naming their target; SQLite is polled (the audit
/// log after the last entry seen). While the node is degraded the database is probed every
/// second; when it answers, pending migrations run (a start from the snapshot), every cached
/// entry is marked to be read again (changes may have been missed) and the enforcer
/// re-decides every open session.
async fn watch_registry(
    shared: Arc<Shared>,
    poll: Duration,
    signals: Arc<Signals>,
    mut stop: watch::Receiver<bool>,
) {
    let store = shared.store.clone();
    // None: not known yet (the database did not answer); Some(false): SQLite, poll
    let mut pushes: Option<bool> = None;
    let mut changes: Option<crate::registry::ChangeWatch> = None;
    let mut last: Option<i64> = None;
    let mut poll_tick = tokio::time::interval(poll);
    poll_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if pushes.is_none() && !shared.health.is_degraded() {
            match tokio::time::timeout(LOOKUP_TIMEOUT * 2, store.watch_changes()).await {
                Ok(Ok(Some(rx))) => {
                    changes = Some(rx);
                    pushes = Some(true);
                }
                Ok(Ok(None)) => pushes = Some(false),
                Ok(Err(e)) => shared.store_failed(&format!("change listener: {e}")),
                Err(_) => shared.store_failed("change listener: no answer"),
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            c = async { match changes.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => match c {
                Some(RegistryChange::Changed { target_type, target_id }) => {
                    shared.forget(&target_type, &target_id);
                    signals.changed.notify_one();
                }
                Some(RegistryChange::Missed) => {
                    shared.revalidate_caches();
                    // while degraded the recovery wakes the enforcer, once
                    if !shared.health.is_degraded() {
                        signals.changed.notify_one();
                    }
                }
                None => {
                    // the listener task ended: set it up again
                    changes = None;
                    pushes = None;
                }
            },
            _ = poll_tick.tick(), if pushes == Some(false) && !shared.health.is_degraded() => {
                if let Some(changed) = poll_changes(&shared, &mut last).await {
                    if changed {
                        signals.changed.notify_one();
                    }
                }
            }
            _ = probe.tick(), if shared.health.is_degraded() => {
                let answer = tokio::time::timeout(LOOKUP_TIMEOUT, store.change_marker()).await;
                if let Ok(Ok(_)) = answer {
                    if recover(&shared).await {
                        signals.recheck.notify_one();
                        signals.changed.notify_one();
                    }
                }
            }
        }
    }
}

/// One SQLite poll: `Some(true)` if the registry changed, `None` if it could not be read.
async fn poll_changes(shared: &Shared, last: &mut Option<i64>) -> Option<bool> {
    let marker = match tokio::time::timeout(LOOKUP_TIMEOUT, shared.store.change_marker()).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            shared.store_failed(&format!("change poll: {e}"));
            return None;
        }
        Err(_) => {
            shared.store_failed("change poll: no answer");
            return None;
        }
    };
    let Some(before) = *last else {
        *last = Some(marker);
        return Some(false);
    };
    if marker == before {
        return Some(false);
    }
    match shared.store.audit_after(before, POLL_PAGE).await {
        Ok(entries) if entries.len() < POLL_PAGE as usize => {
            for e in &entries {
                shared.forget(&e.target_type, &e.target_id);
            }
        }
        // a burst (an import): read everything again instead
        Ok(_) => shared.revalidate_caches(),
        Err(e) => {
            shared.store_failed(&format!("change poll: {e}"));
            return None;
        }
    }
    *last = Some(marker);
    Some(true)
}

/// The database answers again: runs what a start from the snapshot left pending, marks the
/// cache for re-reading and ends the outage. False if the database failed again meanwhile.
async fn recover(shared: &Shared) -> bool {
    if shared.migrate_pending.load(Ordering::Acquire) {
        // what a start with the database does: migrate if this node may, then check that
        // this binary can work on the schema (`database.migrate_on_start = false`: check only)
        let migrated = if shared.migrate_on_start {
            shared.store.migrate().await
        } else {
            Ok(())
        };
        let checked = match migrated {
            Ok(()) => crate::registry::check_store_schema(shared.store.as_ref())
                .await
                .map(|verdict| {
                    if let Some(warning) = verdict.warning() {
                        tracing::warn!("{warning}");
                    }
                }),
            Err(e) => Err(e),
        };
        match checked {
            Ok(()) => {
                shared.migrate_pending.store(false, Ordering::Release);
                *shared
                    .schema_failure_logged
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
                tracing::info!(
                    "registry schema checked (and migrated, with database.migrate_on_start) after the start from the snapshot"
                );
            }
            Err(e) => {
                // the guard lives only for this bookkeeping, never across an await
                let failed_since = {
                    let now = Instant::now();
                    let mut last = shared
                        .schema_failure_logged
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    match *last {
                        Some((at, ref mut n))
                            if now.duration_since(at) < SCHEMA_FAILURE_LOG_EVERY =>
                        {
                            *n += 1;
                            None
                        }
                        Some((_, n)) => {
                            *last = Some((now, 0));
                            Some(n)
                        }
                        None => {
                            *last = Some((now, 0));
                            Some(0)
                        }
                    }
                };
                if let Some(not_logged) = failed_since {
                    tracing::error!(error = %e, failed_since_last_line = not_logged, "the registry answers but its schema cannot be used (migration or check failed); still degraded");
                }
                return false;
            }
        }
    }
    shared.revalidate_caches();
    if let Some(outage) = shared.health.recovered() {
        tracing::warn!(
            down_s = outage.since_mono.elapsed().as_secs(),
            since = %outage.since,
            degraded_decisions = shared.stats.degraded.load(Ordering::Relaxed),
            "the registry database answers again: no longer degraded; re-deciding open sessions"
        );
    }
    true
}

/// How often a schema that keeps a returning node degraded is logged again.
const SCHEMA_FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// How often freed memory is given back to the OS.
pub const RELEASE_MEMORY_EVERY: Duration = Duration::from_secs(10);

/// The longest a periodic snapshot may take.
const SNAPSHOT_WITHIN: Duration = Duration::from_secs(30);

/// Writes the last-known-good snapshot every `every` and once more at the stop, while the
/// registry answers (a degraded node keeps the snapshot it has).
/// Runs the privacy sweep (retention, erasure after leaving) a minute after the start and
/// hourly after that. A sweep that fails is logged and tried again at the next hour; one that
/// a stop interrupts rolls back (each erasure is one transaction).
async fn keep_privacy(
    registry: crate::registry::Registry,
    retention: crate::registry::privacy::Retention,
    mut stop: watch::Receiver<bool>,
) {
    const EVERY: Duration = Duration::from_secs(3600);
    let start = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(start, EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let change = crate::registry::Change::by("poortwachter (privacy)");
        let swept = tokio::select! {
            _ = stop.changed() => return,
            s = tokio::time::timeout(EVERY / 2, registry.privacy_sweep(&retention, &change)) => s,
        };
        match swept {
            Ok(Ok(s)) => {
                if s.sessions > 0 || s.orphan_audit > 0 || !s.erased.is_empty() {
                    tracing::info!(
                        sessions = s.sessions,
                        audit_personal = s.orphan_audit,
                        erased = s.erased.len(),
                        "privacy: deleted what is past its retention, erased who left"
                    );
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "privacy sweep failed; trying again in an hour")
            }
            Err(_) => tracing::warn!("privacy sweep took over 30 minutes; trying again in an hour"),
        }
    }
}

async fn keep_snapshot(
    shared: Arc<Shared>,
    dir: std::path::PathBuf,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = stop.changed() => true,
            _ = tick.tick() => false,
        };
        if !shared.health.is_degraded() {
            // within the 2 s a stopping task is given
            let bound = if last {
                Duration::from_millis(1_500)
            } else {
                SNAPSHOT_WITHIN
            };
            // a stop ends a periodic write too (the last snapshot stays)
            let written = tokio::select! {
                w = tokio::time::timeout(bound, write_snapshot(&shared, &dir)) => Some(w),
                _ = stop.changed(), if !last => None,
            };
            match written {
                Some(Ok(Ok(n))) => {
                    tracing::debug!(devices = n, dir = %dir.display(), "snapshot written")
                }
                Some(Ok(Err(e))) => {
                    tracing::warn!(error = %e, dir = %dir.display(), "cannot write the last-known-good snapshot")
                }
                Some(Err(_)) => {
                    tracing::warn!("writing the last-known-good snapshot took too long; abandoned")
                }
                None => return,
            }
        }
        if last {
            return;
        }
    }
}

/// Reads every device with its owner and writes them as the snapshot; returns how many.
async fn write_snapshot(shared: &Shared, dir: &std::path::Path) -> Result<usize, String> {
    let at = Utc::now();
    let devices = shared
        .store
        .devices(None)
        .await
        .map_err(|e| e.to_string())?;
    let owners = shared.store.owners().await.map_err(|e| e.to_string())?;
    let by_name: std::collections::HashMap<String, crate::model::Owner> = owners
        .into_iter()
        .map(|o| (o.username.to_lowercase(), o))
        .collect();
    let subjects: Vec<_> = devices
        .into_iter()
        .filter_map(|d| {
            let o = by_name.get(&d.owner.to_lowercase())?.clone();
            Some((d, o))
        })
        .collect();
    let n = subjects.len();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || snapshot::write(&dir, subjects, at))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(n)
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
        if seconds % RELEASE_MEMORY_EVERY.as_secs() == 0 {
            if let Some(release) = shared.release_memory.get().copied() {
                drop(tokio::task::spawn_blocking(release));
            }
        }
        if seconds % 60 != 0 {
            continue;
        }
        if let Some(eap) = shared.access.eap() {
            let (open, evicted, expired) = eap.conversations();
            tracing::info!(open, evicted, expired, "EAP conversations");
        }
        // data too old to stand in even while degraded
        shared.cache.expire(Instant::now());
        shared.cert_cache.expire(Instant::now());
        if let Some(outage) = shared.health.outage() {
            tracing::warn!(
                since = %outage.since,
                why = %outage.why,
                degraded_decisions = stats.degraded.load(Ordering::Relaxed),
                unanswered = stats.dropped_degraded.load(Ordering::Relaxed),
                "DEGRADED: the registry database cannot be read; deciding on last-known-good data"
            );
        }
        let now = stats.to_string();
        if now != last {
            tracing::info!(counters = %now, "RADIUS counters");
            last = now;
        }
    }
}
