//! The accounting spool over a database outage (issue 11), with the real binary and a
//! PostgreSQL server that the test stops and starts: accounting acknowledged while the
//! database is down, `serve` killed (SIGKILL) during the outage and again in the middle of the
//! replay; in the end every acknowledged update is in the database, each session exactly once.
//!
//! The test is the access point: a few hundred sessions, each Start, Interim-Update and Stop in
//! that order, sent over UDP with its own RADIUS encoder and retransmitted like a NAS until an
//! authentic Accounting-Response comes back.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poortwachter::radius::crypto::{check_response, sign_request};
use poortwachter::radius::dict::{self, code};
use poortwachter::radius::{Builder, Packet};
use support::serving::free_udp_port;
use support::PgServer;
use tokio::net::UdpSocket;

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");
const SECRET: &[u8; 26] = b"outage-test-secret-0123456";

/// Sessions answered while the database is up.
const BEFORE: usize = 200;
/// Sessions sent during the outage (three updates each): enough for a replay that takes a
/// while, so that it can be killed in the middle.
const DURING: usize = 1_500;
/// Start, Interim-Update, Stop.
const STEPS: u8 = 3;
/// Senders at once, each with its own socket (as many access points).
const SENDERS: usize = 32;

fn config_text(url: &str, auth: u16, acct: u16, state: &Path) -> String {
    format!(
        r#"
[database]
url = "{url}"

[radius]
auth_listen = "127.0.0.1:{auth}"
acct_listen = "127.0.0.1:{acct}"

[[radius.clients]]
name = "ap-outage"
network = "127.0.0.1/32"
secret = "{secret}"

[vlans]
workspace = 100
guest = 200
quarantine = 666

[node]
state_dir = "{state}"
"#,
        secret = std::str::from_utf8(SECRET).expect("ascii"),
        state = state.display(),
    )
}

fn session_id(n: usize) -> String {
    format!("out-{n:05}")
}

/// The update's counters identify it: `n * 10 + step`.
fn octets(n: usize, step: u8) -> u32 {
    (n * 10 + usize::from(step)) as u32
}

fn accounting_request(id: u8, n: usize, step: u8) -> Vec<u8> {
    let status = match step {
        0 => dict::acct_status::START,
        1 => dict::acct_status::INTERIM_UPDATE,
        _ => dict::acct_status::STOP,
    };
    let mut b = Builder::new(code::ACCOUNTING_REQUEST, id);
    b.add_u32(dict::ACCT_STATUS_TYPE, status)
        .and_then(|b| b.add_text(dict::ACCT_SESSION_ID, &session_id(n)))
        .and_then(|b| b.add_text(dict::USER_NAME, &format!("user{n}")))
        .and_then(|b| {
            b.add_text(
                dict::CALLING_STATION_ID,
                &format!("02-00-00-00-{:02X}-{:02X}", n / 256, n % 256),
            )
        })
        .and_then(|b| b.add_text(dict::NAS_IDENTIFIER, "ap-outage-1"))
        .and_then(|b| b.add_u32(dict::ACCT_SESSION_TIME, u32::from(step) * 30))
        .and_then(|b| b.add_u32(dict::ACCT_INPUT_OCTETS, octets(n, step)))
        .map(|_| ())
        .expect("fits");
    let (mut buf, off) = b.into_unsigned();
    sign_request(&mut buf, off, &[0; 16], SECRET);
    buf
}

fn status_server(id: u8) -> Vec<u8> {
    let b = Builder::with_message_authenticator(code::STATUS_SERVER, id);
    let (mut buf, off) = b.into_unsigned();
    sign_request(&mut buf, off, &[7; 16], SECRET);
    buf
}

/// One exchange: sends `request` and waits up to `wait` for its authentic answer.
async fn exchange(sock: &UdpSocket, request: &[u8], want: u8, wait: Duration) -> bool {
    let mut auth = [0u8; 16];
    auth.copy_from_slice(&request[4..20]);
    if sock.send(request).await.is_err() {
        tokio::time::sleep(wait.min(Duration::from_millis(200))).await;
        return false;
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 4096];
    loop {
        let got = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await;
        let n = match got {
            Err(_) => return false,
            // the port is closed (serve is down): ICMP says so at once; wait out the try
            Ok(Err(_)) => {
                tokio::time::sleep_until(deadline).await;
                return false;
            }
            Ok(Ok(n)) => n,
        };
        let Ok(reply) = Packet::parse(&buf[..n]) else {
            continue;
        };
        if reply.identifier() == request[1]
            && reply.code() == want
            && check_response(&reply, &auth, SECRET, false)
        {
            return true;
        }
    }
}

/// What the access point knows: per session, how many of its updates were acknowledged
/// (they are sent in order, so always the first ones).
#[derive(Default)]
struct Nas {
    acked: Mutex<HashMap<usize, u8>>,
    /// Acknowledgements counted as they come (for the test to act on).
    count: AtomicU64,
}

impl Nas {
    fn acked(&self, n: usize) -> u8 {
        self.acked
            .lock()
            .expect("lock")
            .get(&n)
            .copied()
            .unwrap_or(0)
    }

    fn total(&self) -> u64 {
        self.acked
            .lock()
            .expect("lock")
            .values()
            .map(|&v| u64::from(v))
            .sum()
    }

    /// Sends what is not yet acknowledged of `sessions`, each session's updates in order, from
    /// `SENDERS` sockets, each update tried up to `tries` times `wait` apart. A session stops
    /// at its first update without an answer; once `halt` is set, an update without an answer
    /// stops that sender altogether.
    async fn send(
        self: &Arc<Self>,
        to: SocketAddr,
        sessions: Vec<usize>,
        tries: u32,
        wait: Duration,
        halt: Arc<AtomicBool>,
    ) {
        let queue = Arc::new(Mutex::new(sessions));
        let mut senders = Vec::new();
        for _ in 0..SENDERS {
            let nas = self.clone();
            let queue = queue.clone();
            let halt = halt.clone();
            senders.push(tokio::spawn(async move {
                let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
                sock.connect(to).await.expect("connect");
                let mut id = 0u8;
                'sessions: loop {
                    let Some(n) = queue.lock().expect("lock").pop() else {
                        return;
                    };
                    for step in nas.acked(n)..STEPS {
                        id = id.wrapping_add(1);
                        let request = accounting_request(id, n, step);
                        let mut ok = false;
                        for _ in 0..tries {
                            ok = exchange(&sock, &request, code::ACCOUNTING_RESPONSE, wait).await;
                            if ok || halt.load(Ordering::Relaxed) {
                                break;
                            }
                        }
                        if !ok {
                            if halt.load(Ordering::Relaxed) {
                                return;
                            }
                            continue 'sessions;
                        }
                        nas.acked.lock().expect("lock").insert(n, step + 1);
                        nas.count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for s in senders {
            s.await.expect("sender");
        }
    }
}

/// One run of `serve`, its log in `log`.
struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
    async fn start(config: &Path, dir: &Path, run: u32, acct: SocketAddr) -> Serve {
        let log = dir.join(format!("serve-{run}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start serve");
        let mut serve = Serve { child, log };
        // answering Status-Server on the accounting port: ready
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        sock.connect(acct).await.expect("connect");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut id = 0u8;
        loop {
            id = id.wrapping_add(1);
            let wait = Duration::from_millis(200);
            if exchange(&sock, &status_server(id), code::ACCOUNTING_RESPONSE, wait).await {
                return serve;
            }
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("serve ended ({status}): {}", serve.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "serve never answered: {}",
                serve.log_text()
            );
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL; returns its log.
    fn kill(mut self) -> String {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
        self.log_text()
    }

    /// SIGTERM; returns its log.
    fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(35);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "serve failed: {}", self.log_text());
                break;
            }
            assert!(Instant::now() < deadline, "serve did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.log_text()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn count(url: &str, sql: &str) -> Option<i64> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .ok()?;
    let n = sqlx::query_scalar(sql).fetch_one(&pool).await.ok();
    pool.close().await;
    n
}

/// The number `name=` on the first line of `log` that contains `line`.
fn field(log: &str, line: &str, name: &str) -> Option<u64> {
    log.lines()
        .find(|l| l.contains(line))?
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_accounting_is_stored_exactly_once_across_crashes() {
    let started = Instant::now();
    let pg = PgServer::start();
    let url = pg.url();
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path().join("state");
    let journal = state.join("accounting.spool");
    let config = dir.path().join("poortwachter.toml");
    let (auth, acct_port) = (free_udp_port(), free_udp_port());
    std::fs::write(&config, config_text(&url, auth, acct_port, &state)).expect("config");
    let acct: SocketAddr = ([127, 0, 0, 1], acct_port).into();
    let nas = Arc::new(Nas::default());
    let never = Arc::new(AtomicBool::new(false));
    let during: Vec<usize> = (BEFORE..BEFORE + DURING).collect();
    let everything: Vec<usize> = (0..BEFORE + DURING).collect();
    let ours = "SELECT count(*) FROM sessions WHERE acct_session_id LIKE 'out-%'";

    // 1. the database is up: accounting goes straight to it
    let serve = Serve::start(&config, dir.path(), 1, acct).await;
    let wait = Duration::from_millis(500);
    nas.send(acct, (0..BEFORE).collect(), 3, wait, never.clone())
        .await;
    assert_eq!(nas.total(), (BEFORE * 3) as u64);
    assert!(
        !journal.exists(),
        "nothing spooled while the database is up"
    );

    // 2. the outage: acknowledged from the spool; serve killed in the middle of it
    pg.stop_immediate();
    let halt = Arc::new(AtomicBool::new(false));
    let before_outage = nas.count.load(Ordering::Relaxed);
    let sender = {
        let nas = nas.clone();
        let halt = halt.clone();
        let during = during.clone();
        // a try waits out the store's 2 s bound once, before the spool takes over
        tokio::spawn(async move {
            nas.send(acct, during, 2, Duration::from_secs(3), halt)
                .await
        })
    };
    let want = (DURING * 3 * 3 / 4) as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while nas.count.load(Ordering::Relaxed) - before_outage < want {
        assert!(Instant::now() < deadline, "the spool does not acknowledge");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    halt.store(true, Ordering::Relaxed);
    serve.kill();
    sender.await.expect("sender");
    let spooled = nas.count.load(Ordering::Relaxed) - before_outage;
    let journal_bytes = std::fs::metadata(&journal).expect("a journal").len();

    // 3. the database returns; serve replays, and is killed in the middle of the replay
    pg.restart();
    let stored_before = count(&url, ours).await.expect("count");
    let serve = Serve::start(&config, dir.path(), 2, acct).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let sessions_spooled = during.iter().filter(|&&n| nas.acked(n) > 0).count() as i64;
    let killed_at = loop {
        let n = count(&url, ours).await.unwrap_or(0) - stored_before;
        if n >= sessions_spooled / 4 {
            break n;
        }
        assert!(Instant::now() < deadline, "the replay does not progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let log2 = serve.kill();
    assert!(
        killed_at < sessions_spooled,
        "the replay ended before the kill ({killed_at} of {sessions_spooled} sessions)"
    );
    assert!(journal.exists(), "killed in the middle of the replay");

    // 4. serve again: the replay resumes; the access point retransmits what got no answer
    let serve = Serve::start(&config, dir.path(), 3, acct).await;
    nas.send(
        acct,
        everything.clone(),
        5,
        Duration::from_secs(1),
        never.clone(),
    )
    .await;
    assert_eq!(
        nas.total(),
        ((BEFORE + DURING) * 3) as u64,
        "every update acknowledged in the end"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while journal.exists() {
        assert!(Instant::now() < deadline, "the spool was not replayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log3 = serve.stop();
    let kept = "replaying what an earlier run kept";

    // every acknowledged update is in the store, and each session is there once
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let rows: Vec<(String, i64, i64, bool)> = sqlx::query_as(
        "SELECT acct_session_id, session_time, input_octets, stopped_at IS NOT NULL \
         FROM sessions WHERE acct_session_id LIKE 'out-%'",
    )
    .fetch_all(&pool)
    .await
    .expect("sessions");
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT acct_session_id FROM sessions \
         WHERE acct_session_id LIKE 'out-%' GROUP BY nas, nas_key, acct_session_id \
         HAVING count(*) > 1) d",
    )
    .fetch_one(&pool)
    .await
    .expect("duplicates");
    pool.close().await;
    let mut by_id: HashMap<String, (i64, i64, bool)> = HashMap::new();
    for (id, time, octets, stopped) in &rows {
        by_id.insert(id.clone(), (*time, *octets, *stopped));
    }
    let mut wrong = Vec::new();
    for n in everything {
        // all three acknowledged: the row holds the Stop
        let want = (60, i64::from(octets(n, 2)), true);
        match by_id.get(&session_id(n)) {
            Some(got) if *got == want => {}
            got => wrong.push(format!("{}: {got:?}, want {want:?}", session_id(n))),
        }
    }
    let figures = format!(
        "acknowledged {} updates of {} sessions ({spooled} from the spool during the outage, \
         journal {journal_bytes} bytes at the kill); run 2 found {:?} records to replay and \
         was killed with {killed_at} of {sessions_spooled} spooled sessions stored; run 3 \
         found {:?} records to replay, then spooled {:?} and replayed {:?}; stored {} \
         sessions, {duplicates} stored twice; {:.1} s",
        nas.total(),
        BEFORE + DURING,
        field(&log2, kept, "records"),
        field(&log3, kept, "records"),
        field(&log3, "poortwachter stopped:", "spooled"),
        field(&log3, "poortwachter stopped:", "replayed"),
        rows.len(),
        started.elapsed().as_secs_f64(),
    );
    println!("{figures}");
    assert_eq!(duplicates, 0, "{figures}");
    assert_eq!(rows.len(), BEFORE + DURING, "{figures}");
    assert!(wrong.is_empty(), "{figures}\n{}", wrong.join("\n"));
    assert!(started.elapsed() < Duration::from_secs(90), "{figures}");
}
