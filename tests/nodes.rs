//! Nodes and a PostgreSQL that fails (issue 11), with the real `serve` binary, radclient as the
//! access point, a UDP socket in the test as the access point's dynamic-authorization port,
//! and a PostgreSQL server of the test's own that it stops (`pg_ctl stop -m immediate`) and
//! starts again:
//! - a hot outage: a known compliant device keeps getting Access-Accept; the decisions are
//!   stored marked degraded once the database is back; a revoke right after the return
//!   disconnects a session admitted while degraded;
//! - a cold start from the node's snapshot while the database is down, and a snapshot older
//!   than `cache.stale_grace` refused;
//! - two nodes on one database: a revoke through node A's API makes node B refuse within a
//!   second, each affected session gets exactly one Disconnect-Request, an accounting Start on
//!   A and Stop on B close one session, and the other node takes over the enforcing when the
//!   enforcer dies.
//!
//! `OUTAGE_SECS` (default 15) sets how long the hot and cold outages last (the README's figure
//! is taken with 60).
//!
//! `cache.unseen_while_degraded`: the hot outage checks `unknown` (an unseen device refused),
//! the cold start `no_answer` (no answer at all).

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use poortwachter::radius::crypto::{check_request_ma, sign_response, MaCheck};
use poortwachter::radius::dict::{self, code};
use poortwachter::radius::{Builder, Packet};
use poortwachter::registry::{Change, DeviceRef, Registry, Rules};
use support::serving::{api_ready, free_tcp_port, free_udp_port, ServeProcess};
use support::{PgServer, Reply};
use tokio::net::UdpSocket;

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");
const SECRET: &str = "nodes-test-secret-0123456789";

fn outage() -> Duration {
    let secs = std::env::var("OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15u64)
        .clamp(2, 120);
    Duration::from_secs(secs)
}

/// One node: its ports, state directory and config file.
struct Node {
    name: &'static str,
    auth: SocketAddr,
    acct: SocketAddr,
    api: SocketAddr,
    dir: tempfile::TempDir,
    /// Its `serve`, with everything it wrote over every start.
    process: ServeProcess,
}

impl Node {
    fn new(name: &'static str, url: &str, nas_port: u16, extra: &str) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let auth: SocketAddr = format!("127.0.0.1:{}", free_udp_port())
            .parse()
            .expect("addr");
        let acct: SocketAddr = format!("127.0.0.1:{}", free_udp_port())
            .parse()
            .expect("addr");
        let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port())
            .parse()
            .expect("addr");
        let text = format!(
            r#"
[database]
url = "{url}"
max_connections = 8

[radius]
auth_listen = "{auth}"
acct_listen = "{acct}"

[[radius.clients]]
name = "ap-nodes"
network = "127.0.0.1/32"
secret = "{SECRET}"
coa_port = {nas_port}

[vlans]
workspace = 100
guest = 200
quarantine = 666

[policy]
compliance_max_age = "30d"

[cache]
poll_interval = "100ms"

[coa]
timeout = "300ms"
retries = 2
check_interval = "1h"

[api]
listen = "{api}"

[node]
state_dir = "{state}"
snapshot_interval = "10s"
{extra}
"#,
            state = dir.path().join("state").display(),
        );
        std::fs::write(dir.path().join("poortwachter.toml"), text).expect("config");
        Node {
            name,
            auth,
            acct,
            api,
            dir,
            process: ServeProcess::new(name),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("poortwachter.toml")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(self.config()).args(args);
        c.env("RUST_LOG", "info,sqlx=warn");
        c
    }

    /// Starts `serve` and waits until it answers Status-Server (or panics after `limit`).
    async fn start(&mut self, envs: &[(&str, &str)], limit: Duration) {
        let mut c = self.command(&["serve"]);
        for (k, v) in envs {
            c.env(k, v);
        }
        self.process.start(c, self.auth, SECRET, limit).await;
    }

    fn log_text(&self) -> String {
        self.process.log_text()
    }

    fn logged(&self, needle: &str) -> bool {
        self.process.logged(needle)
    }

    /// SIGTERM and wait (bounded by the service's own stop bound).
    fn stop(&mut self) {
        self.process.stop();
    }

    /// SIGKILL: the node dies.
    fn kill(&mut self) {
        self.process.kill();
    }

    async fn mab(&self, mac: &str) -> Reply {
        support::radclient(self.auth, "auth", SECRET, &mab_attrs(mac)).await
    }

    /// An accounting packet, sent until answered (as a NAS retransmits), at most `limit`.
    async fn account(&self, status: &str, session: &str, mac: &str, limit: Duration) {
        let attrs = format!(
            "Acct-Status-Type = {status}\nAcct-Session-Id = \"{session}\"\nUser-Name = \"{mac}\"\n\
             Calling-Station-Id = \"{}\"\nNAS-IP-Address = 127.0.0.1\nNAS-Identifier = \"ap-1\"\n",
            mac.to_uppercase()
        );
        let start = Instant::now();
        loop {
            let r = support::radclient(self.acct, "acct", SECRET, &attrs).await;
            if r.code.as_deref() == Some("Accounting-Response") {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{}: accounting {status} {session} not answered within {limit:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `GET /api/v1/ready`: the status code and body.
    async fn ready(&self) -> (u16, String) {
        api_ready(self.api).await
    }

    async fn wait_ready(&self, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.ready().await.0 == 200 {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{} not ready within {limit:?}: {:?}\n{}",
                self.name,
                self.ready().await,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn mab_attrs(mac: &str) -> String {
    format!(
        "User-Name = \"{mac}\"\nUser-Password = \"{mac}\"\nCalling-Station-Id = \"{}\"\n\
         Called-Station-Id = \"00-11-22-33-44-55:Gemeente-Werkplek\"\nNAS-IP-Address = 127.0.0.1\n\
         NAS-Identifier = \"ap-1\"\nNAS-Port-Type = Wireless-802.11\nService-Type = Call-Check\n\
         Message-Authenticator = 0x00\n",
        mac.to_uppercase()
    )
}

/// The registry of the test's own server, migrated.
async fn registry(url: &str) -> Registry {
    let r = Registry::connect(
        url,
        4,
        Rules {
            max_devices_per_owner: 5,
            timezone: chrono_tz::Europe::Amsterdam,
        },
    )
    .await
    .expect("connect");
    r.migrate().await.expect("migrate");
    r
}

/// The access point's dynamic-authorization port: counts Disconnect-Requests per session and
/// acknowledges each (RFC 5176).
struct Nas {
    sock: UdpSocket,
}

impl Nas {
    async fn bind() -> Nas {
        Nas {
            sock: UdpSocket::bind("127.0.0.1:0").await.expect("bind NAS"),
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().expect("addr").port()
    }

    /// Every Disconnect-Request arriving within `window`, by Acct-Session-Id, each answered
    /// with a Disconnect-ACK.
    async fn disconnects(&self, window: Duration) -> Vec<(String, Instant)> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        let mut buf = vec![0u8; 4096];
        while let Ok(Ok((n, from))) =
            tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await
        {
            let Ok(p) = Packet::parse(&buf[..n]) else {
                continue;
            };
            assert_eq!(p.code(), code::DISCONNECT_REQUEST);
            assert_eq!(check_request_ma(&p, SECRET.as_bytes()), MaCheck::Valid);
            let session = p
                .text(dict::ACCT_SESSION_ID)
                .unwrap_or_default()
                .to_string();
            got.push((session, Instant::now()));
            let b = Builder::with_message_authenticator(
                poortwachter::coa::packet::DISCONNECT_ACK,
                p.identifier(),
            );
            let (mut out, off) = b.into_unsigned();
            sign_response(&mut out, off, &p.authenticator(), SECRET.as_bytes());
            let _ = self.sock.send_to(&out, from).await;
        }
        got
    }
}

async fn degraded_decisions(url: &str, mac: &str) -> (i64, i64) {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let row: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE degraded), count(*) FILTER (WHERE NOT degraded) \
         FROM decisions WHERE mac = $1",
    )
    .bind(mac.replace('-', ":").to_lowercase())
    .fetch_one(&pool)
    .await
    .expect("decisions");
    pool.close().await;
    row
}

/// Sends MAB for `mac` every 500 ms for `span`; returns (accepts, other answers, unanswered).
async fn keep_authenticating(node: &Node, mac: &str, span: Duration) -> (u32, u32, u32) {
    let (mut ok, mut other, mut silent) = (0, 0, 0);
    let start = Instant::now();
    while start.elapsed() < span {
        let r = node.mab(mac).await;
        match r.code.as_deref() {
            Some("Access-Accept") => {
                assert_eq!(r.attr("Tunnel-Private-Group-Id"), Some("100"), "{r:?}");
                ok += 1
            }
            Some(_) => other += 1,
            None => silent += 1,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (ok, other, silent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_outage_keeps_a_known_device_in_and_a_revoke_after_it_disconnects() {
    let pg = PgServer::start();
    let url = pg.url();
    let reg = registry(&url).await;
    let known = "02-00-00-00-a0-01";
    let id = support::seed(&reg, "k.bekend", known).await;
    let nas = Nas::bind().await;
    let mut node = Node::new("node", &url, nas.port(), "");
    node.start(&[], Duration::from_secs(30)).await;
    assert_eq!(node.mab(known).await.code.as_deref(), Some("Access-Accept"));
    assert_eq!(node.ready().await.0, 200);

    // the outage
    pg.stop_immediate();
    let down = Instant::now();
    let span = outage();
    // a session admitted while degraded: its Start is acknowledged from the spool
    let first = node.mab(known).await;
    assert_eq!(first.code.as_deref(), Some("Access-Accept"), "{first:?}");
    node.account("Start", "hot-1", known, Duration::from_secs(10))
        .await;
    let (ok, other, silent) = keep_authenticating(&node, known, span).await;
    let (status, body) = node.ready().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("degraded"), "{body}");
    // a device never seen: answered as not registered (cache.unseen_while_degraded)
    let unseen = node.mab("02-00-00-00-a0-99").await;
    assert_eq!(unseen.code.as_deref(), Some("Access-Reject"), "{unseen:?}");
    eprintln!(
        "outage of {:?}: {ok} Access-Accept, {other} other answers, {silent} unanswered",
        down.elapsed()
    );
    assert_eq!(
        (other, silent),
        (0, 0),
        "every request answered with Accept"
    );
    assert!(ok as u64 >= span.as_secs(), "{ok}");

    // the database returns
    pg.restart();
    let back = node.wait_ready(Duration::from_secs(15)).await;
    eprintln!("ready {back:?} after the database returned");
    // the session Start spooled during the outage is stored
    let start = Instant::now();
    loop {
        let n: i64 = {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            let n = sqlx::query_scalar(
                "SELECT count(*) FROM sessions WHERE acct_session_id = 'hot-1' AND stopped_at IS NULL",
            )
            .fetch_one(&pool)
            .await
            .expect("sessions");
            pool.close().await;
            n
        };
        if n == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the spooled Start was not replayed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // decisions taken during the outage are stored, marked degraded
    let start = Instant::now();
    let (degraded, normal) = loop {
        let (d, n) = degraded_decisions(&url, known).await;
        if d >= i64::from(ok) || start.elapsed() > Duration::from_secs(10) {
            break (d, n);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        degraded >= i64::from(ok),
        "{degraded} degraded rows for {ok} accepts"
    );
    assert!(normal >= 1);

    // a revoke just after the return disconnects the session admitted while degraded
    let revoked_at = Instant::now();
    reg.set_device_status(
        &DeviceRef::Id(id),
        poortwachter::model::DeviceStatus::Revoked,
        Some("lost on the train".into()),
        &Change::by("ict.test"),
    )
    .await
    .expect("revoke");
    let got = nas.disconnects(Duration::from_secs(5)).await;
    let hot: Vec<_> = got.iter().filter(|(s, _)| s == "hot-1").collect();
    assert_eq!(
        hot.len(),
        1,
        "one Disconnect-Request for the session: {got:?}"
    );
    eprintln!(
        "Disconnect-Request {:?} after the revoke",
        hot[0].1.duration_since(revoked_at)
    );
    assert_eq!(node.mab(known).await.code.as_deref(), Some("Access-Reject"));
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_from_the_snapshot_and_a_too_old_snapshot_refused() {
    use std::os::unix::fs::PermissionsExt;
    let pg = PgServer::start();
    let url = pg.url();
    let reg = registry(&url).await;
    let known = "02-00-00-00-b0-01";
    support::seed(&reg, "k.koud", known).await;
    let nas = Nas::bind().await;
    let mut node = Node::new("node", &url, nas.port(), "");
    node.start(&[], Duration::from_secs(30)).await;
    assert_eq!(node.mab(known).await.code.as_deref(), Some("Access-Accept"));
    // the snapshot is written at the stop (and every snapshot_interval)
    node.stop();
    let snap = node.state().join("snapshot.json");
    let mode = std::fs::metadata(&snap)
        .expect("a snapshot")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    pg.stop_immediate();
    let begun = Instant::now();
    // this node stays silent for devices it holds no data for (the AP asks its other server)
    node.start(
        &[("POORTWACHTER_CACHE__UNSEEN_WHILE_DEGRADED", "no_answer")],
        Duration::from_secs(20),
    )
    .await;
    let started = begun.elapsed();
    assert!(node.logged("UNREACHABLE"), "{}", node.log_text());
    let unseen = node.mab("02-00-00-00-b0-99").await;
    assert_eq!(
        unseen.code, None,
        "no answer for an unseen device: {unseen:?}"
    );
    let (ok, other, silent) = keep_authenticating(&node, known, outage()).await;
    eprintln!(
        "cold start in {started:?}; then {ok} Access-Accept, {other} other, {silent} unanswered"
    );
    assert_eq!((other, silent), (0, 0));
    assert_eq!(node.ready().await.0, 503);
    pg.restart();
    node.wait_ready(Duration::from_secs(15)).await;
    assert_eq!(node.mab(known).await.code.as_deref(), Some("Access-Accept"));
    // the decisions taken degraded are stored once the database takes them
    let start = Instant::now();
    loop {
        let (degraded, _) = degraded_decisions(&url, known).await;
        if degraded >= i64::from(ok) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{degraded} degraded rows for {ok} accepts"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    node.stop();

    // a snapshot older than cache.stale_grace is not used: serve says why and exits
    pg.stop_immediate();
    std::thread::sleep(Duration::from_millis(2_100));
    let out = node
        .command(&["serve"])
        .env("POORTWACHTER_CACHE__STALE_GRACE", "2s")
        .output()
        .expect("serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("older than cache.stale_grace"), "{err}");
    pg.restart();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_one_database() {
    let pg = PgServer::start();
    let url = pg.url();
    let reg = registry(&url).await;
    let (_, token) = reg
        .create_token(
            "ict",
            poortwachter::registry::tokens::TokenScope::Admin,
            &Change::by("ict.setup"),
        )
        .await
        .expect("token");
    let macs = [
        "02-00-00-00-c0-01",
        "02-00-00-00-c0-02",
        "02-00-00-00-c0-03",
    ];
    let mut ids = Vec::new();
    for (i, mac) in macs.iter().enumerate() {
        ids.push(support::seed(&reg, &format!("twee.{i}"), mac).await);
    }
    let nas = Nas::bind().await;
    let mut a = Node::new("node A", &url, nas.port(), "");
    let mut b = Node::new("node B", &url, nas.port(), "");
    a.start(&[], Duration::from_secs(30)).await;
    b.start(&[], Duration::from_secs(30)).await;
    for mac in macs {
        assert_eq!(a.mab(mac).await.code.as_deref(), Some("Access-Accept"));
        assert_eq!(b.mab(mac).await.code.as_deref(), Some("Access-Accept"));
    }

    // an accounting Start on A and the Stop on B close one session
    a.account("Start", "twee-s0", macs[0], Duration::from_secs(5))
        .await;
    b.account("Stop", "twee-s0", macs[0], Duration::from_secs(5))
        .await;
    {
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        let rows: Vec<(Option<chrono::DateTime<Utc>>,)> =
            sqlx::query_as("SELECT stopped_at FROM sessions WHERE acct_session_id = 'twee-s0'")
                .fetch_all(&pool)
                .await
                .expect("sessions");
        pool.close().await;
        assert_eq!(rows.len(), 1, "one session row");
        assert!(rows[0].0.is_some(), "closed by the Stop on B");
    }

    // sessions for devices 1 and 2, opened through A
    a.account("Start", "twee-s1", macs[1], Duration::from_secs(5))
        .await;
    a.account("Start", "twee-s2", macs[2], Duration::from_secs(5))
        .await;

    // a revoke through A's API: B refuses within a second; one Disconnect-Request
    let body = r#"{"reason": "gestolen"}"#;
    let revoked_at = Instant::now();
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-X", "POST"])
        .args(["-H", &format!("Authorization: Bearer {}", token.expose())])
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("http://{}/api/v1/devices/{}/revoke", a.api, ids[1]))
        .output()
        .await
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("200"), "{text}");
    let refused_after = loop {
        let r = b.mab(macs[1]).await;
        if r.code.as_deref() == Some("Access-Reject") {
            break revoked_at.elapsed();
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(3),
            "B still accepts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("node B refused the revoked device {refused_after:?} after the revoke on A");
    assert!(refused_after < Duration::from_secs(1));
    let got = nas.disconnects(Duration::from_secs(4)).await;
    let s1: Vec<_> = got.iter().filter(|(s, _)| s == "twee-s1").collect();
    assert_eq!(s1.len(), 1, "exactly one Disconnect-Request: {got:?}");
    assert_eq!(got.len(), 1, "{got:?}");

    // the enforcer dies: the other node takes over
    let leader_is_a = a.logged("this node enforces");
    let leader_is_b = b.logged("this node enforces");
    assert!(
        leader_is_a ^ leader_is_b,
        "one enforcer:\nA:\n{}\nB:\n{}",
        a.log_text(),
        b.log_text()
    );
    let (dead, alive) = if leader_is_a {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    dead.kill();
    let killed = Instant::now();
    let took_over = loop {
        if alive.logged("this node enforces") {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "no takeover:\n{}",
            alive.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "{} took over the enforcing {took_over:?} after {} died",
        alive.name, dead.name
    );
    let r = reg
        .set_device_status(
            &DeviceRef::Id(ids[2]),
            poortwachter::model::DeviceStatus::Lost,
            Some("kwijt".into()),
            &Change::by("ict.test"),
        )
        .await;
    r.expect("lost");
    let got = nas.disconnects(Duration::from_secs(4)).await;
    let s2: Vec<_> = got.iter().filter(|(s, _)| s == "twee-s2").collect();
    assert_eq!(
        s2.len(),
        1,
        "exactly one Disconnect-Request after the takeover: {got:?}"
    );
    assert_eq!(got.len(), 1, "{got:?}");
    alive.stop();
}
