//! Dynamic authorization (RFC 5176) end to end, on both stores: our server in-process,
//! radclient as the access point for authentication and accounting, and a UDP socket in the
//! test as the NAS's dynamic-authorization port. A registry change must bring a signed
//! Disconnect-Request for the right session to that socket within a second.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use poortwachter::activity::{Session, SessionFilter};
use poortwachter::coa::packet::{DISCONNECT_ACK, DISCONNECT_NAK};
use poortwachter::config::Config;
use poortwachter::mac::MacAddr;
use poortwachter::model::{Compliance, DeviceStatus};
use poortwachter::radius::crypto::{
    check_accounting_authenticator, check_request_ma, sign_response, MaCheck,
};
use poortwachter::radius::dict::{self, code};
use poortwachter::radius::{Builder, Packet};
use poortwachter::registry::coa::CoaRecord;
use poortwachter::registry::{AuditFilter, Change, DeviceRef, Registry, Rules};
use poortwachter::server::Server;
use support::{Backend, Reply, TestDb};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const SECRET: &str = "coa-test-secret-0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");

/// `client_extra`: more keys for the `[[radius.clients]]` entry.
fn config_text(url: &str, coa_port: u16, client_extra: &str) -> String {
    format!(
        r#"
[database]
url = "{url}"

[radius]
auth_listen = "127.0.0.1:0"
acct_listen = "127.0.0.1:0"

[[radius.clients]]
name = "ap-test"
network = "127.0.0.1/32"
secret = "{SECRET}"
coa_port = {coa_port}
{client_extra}

[vlans]
workspace = 100
guest = 200
quarantine = 666

[policy]
compliance_max_age = "30d"
session_timeout = "8h"

[cache]
poll_interval = "100ms"

[coa]
timeout = "200ms"
retries = 2
check_interval = "1s"
"#
    )
}

/// The server on ephemeral ports, a registry, and the test's NAS socket.
struct Rig {
    db: TestDb,
    registry: Registry,
    auth: SocketAddr,
    acct: SocketAddr,
    nas: UdpSocket,
    config_path: tempfile::NamedTempFile,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Rig {
    async fn start(backend: Backend) -> Rig {
        Rig::start_with(backend, "").await
    }

    /// With more keys for the client entry.
    async fn start_with(backend: Backend, client_extra: &str) -> Rig {
        let db = TestDb::new(backend).await;
        let nas = UdpSocket::bind("127.0.0.1:0").await.expect("bind NAS");
        let port = nas.local_addr().expect("addr").port();
        let text = config_text(&db.url, port, client_extra);
        let cfg = Config::from_toml(&text, Path::new("test.toml"), Vec::new()).expect("config");
        let config_path = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(config_path.path(), &text).expect("write config");
        let registry = Registry::connect(
            &cfg.database.url,
            4,
            Rules {
                max_devices_per_owner: 5,
                timezone: cfg.policy.timezone,
            },
        )
        .await
        .expect("connect");
        registry.migrate().await.expect("migrate");
        let server = Server::bind(&cfg, registry.store_arc())
            .await
            .expect("bind");
        let auth = server.auth_addr().expect("auth");
        let acct = server.acct_addr().expect("acct");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Rig {
            db,
            registry,
            auth,
            acct,
            nas,
            config_path,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
    }

    /// The next datagram at the NAS socket, within `limit`.
    async fn nas_receive(&self, limit: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(limit, self.nas.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => Some((buf[..n].to_vec(), from)),
            _ => None,
        }
    }

    /// Answers a request at the NAS socket.
    async fn nas_answer(&self, request: &[u8], to: SocketAddr, code: u8, cause: Option<u32>) {
        let p = Packet::parse(request).expect("request parses");
        let mut b = Builder::with_message_authenticator(code, p.identifier());
        if let Some(c) = cause {
            b.add_u32(dict::ERROR_CAUSE, c).expect("fits");
        }
        let (mut buf, off) = b.into_unsigned();
        sign_response(&mut buf, off, &p.authenticator(), SECRET.as_bytes());
        self.nas.send_to(&buf, to).await.expect("answer");
    }

    async fn coa_records(&self) -> Vec<CoaRecord> {
        self.registry
            .coa_requests(None, 50)
            .await
            .expect("coa_requests")
    }

    /// Waits (up to 3 s) for a recorded request with a final result.
    async fn coa_record(&self, n: usize) -> Vec<CoaRecord> {
        let start = Instant::now();
        loop {
            let rows = self.coa_records().await;
            if rows.len() >= n || start.elapsed() > Duration::from_secs(3) {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// radclient (the AP) with the client's secret.
async fn radclient(to: SocketAddr, kind: &str, attrs: &str) -> Reply {
    support::radclient(to, kind, SECRET, attrs).await
}

fn mab_attrs(mac: &str) -> String {
    format!(
        "User-Name = \"{mac}\"\nUser-Password = \"{mac}\"\nCalling-Station-Id = \"{}\"\n\
         Called-Station-Id = \"00-11-22-33-44-55:Gemeente-Werkplek\"\nNAS-IP-Address = 127.0.0.1\n\
         NAS-Port-Type = Wireless-802.11\nService-Type = Call-Check\nMessage-Authenticator = 0x00\n",
        mac.to_uppercase()
    )
}

fn ict() -> Change {
    Change::by("ict.test")
}

/// MAB with radclient, then an accounting Start echoing the Class: the device is connected
/// in the workspace VLAN. Returns its open session.
async fn connect(rig: &Rig, mac: &str, acct_session_id: &str) -> Session {
    let reply = radclient(rig.auth, "auth", &mab_attrs(mac)).await;
    assert_eq!(reply.code.as_deref(), Some("Access-Accept"), "{reply:?}");
    assert_eq!(reply.attr("Tunnel-Private-Group-Id"), Some("100"));
    let class = reply.attr("Class").expect("a Class").to_string();
    let start = format!(
        "Acct-Status-Type = Start\nAcct-Session-Id = \"{acct_session_id}\"\nUser-Name = \"{mac}\"\n\
         Calling-Station-Id = \"{}\"\nNAS-IP-Address = 127.0.0.1\nClass = {class}\n",
        mac.to_uppercase()
    );
    let reply = radclient(rig.acct, "acct", &start).await;
    assert_eq!(reply.code.as_deref(), Some("Accounting-Response"));
    let sessions = rig
        .registry
        .sessions(&SessionFilter {
            active_only: true,
            mac: None,
            limit: None,
        })
        .await
        .expect("sessions");
    let s = sessions
        .into_iter()
        .find(|s| s.acct_session_id == acct_session_id)
        .expect("the session is open");
    assert!(s.device_id.is_some());
    s
}

/// The Disconnect-Request must arrive within `limit`, be signed with the client's secret, and
/// name the session. Returns it, its sender and how long it took.
async fn expect_disconnect(
    rig: &Rig,
    since: Instant,
    limit: Duration,
    acct_session_id: &str,
    mac: &str,
) -> (Vec<u8>, SocketAddr, Duration) {
    let (req, from) = rig
        .nas_receive(limit)
        .await
        .expect("a Disconnect-Request at the NAS");
    let took = since.elapsed();
    let p = Packet::parse(&req).expect("parses");
    assert_eq!(p.code(), code::DISCONNECT_REQUEST);
    // RFC 5176 §2.3 Request Authenticator, §3.3 Message-Authenticator
    assert!(check_accounting_authenticator(&p, SECRET.as_bytes()));
    assert_eq!(check_request_ma(&p, SECRET.as_bytes()), MaCheck::Valid);
    assert_eq!(p.text(dict::ACCT_SESSION_ID), Some(acct_session_id));
    assert_eq!(
        p.text(dict::CALLING_STATION_ID),
        Some(mac.to_uppercase().as_str())
    );
    assert_eq!(p.ipv4(dict::NAS_IP_ADDRESS), Some([127, 0, 0, 1].into()));
    assert!(p.u32(dict::EVENT_TIMESTAMP).is_some());
    (req, from, took)
}

async fn expect_audit(rig: &Rig, device: uuid::Uuid, action: &str) {
    let start = Instant::now();
    loop {
        let entries = rig
            .registry
            .audit(&AuditFilter {
                target_id: Some(device.to_string()),
                actor: None,
                limit: Some(20),
                offset: 0,
            })
            .await
            .expect("audit");
        if let Some(e) = entries.iter().find(|e| e.action == action) {
            let after = e.after.as_ref().expect("after");
            assert!(after.get("result").is_some(), "{after}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "no {action} audit entry for {device}: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

both_stores!(noncompliant_device_is_disconnected, |backend| async move {
    let mut rig = Rig::start(backend).await;
    let mac = "02-00-00-00-c0-01";
    let device = support::seed(&rig.registry, "a.staff", mac).await;
    let session = connect(&rig, mac, "sess-nc-1").await;

    let t0 = Instant::now();
    rig.registry
        .set_compliance(
            &DeviceRef::Id(device),
            Compliance::Noncompliant,
            Some("antivirus off".into()),
            &ict(),
        )
        .await
        .expect("noncompliant");
    let (req, from, took) =
        expect_disconnect(&rig, t0, Duration::from_secs(1), "sess-nc-1", mac).await;
    eprintln!("{backend:?}: registry change to Disconnect-Request: {took:?}");
    rig.nas_answer(&req, from, DISCONNECT_ACK, None).await;

    let rows = rig.coa_record(1).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].result, "ack");
    assert_eq!(rows[0].kind, "disconnect");
    assert_eq!(rows[0].session_id, Some(session.id));
    assert_eq!(rows[0].device_id, Some(device));
    assert!(
        rows[0].reason.starts_with("device.compliance by ict.test"),
        "{}",
        rows[0].reason
    );
    assert!(rows[0].answered_at.is_some());
    expect_audit(&rig, device, "session.disconnect").await;

    // the device comes back, and lands in quarantine
    let reply = radclient(rig.auth, "auth", &mab_attrs(mac)).await;
    assert_eq!(reply.code.as_deref(), Some("Access-Accept"));
    assert_eq!(reply.attr("Tunnel-Private-Group-Id"), Some("666"));

    // one trigger, one request: nothing more arrives (the periodic check agrees)
    assert!(rig.nas_receive(Duration::from_millis(1500)).await.is_none());
    rig.stop().await;
});

both_stores!(revoked_device_is_disconnected, |backend| async move {
    let mut rig = Rig::start(backend).await;
    let mac = "02-00-00-00-c0-02";
    let device = support::seed(&rig.registry, "b.staff", mac).await;
    connect(&rig, mac, "sess-rv-1").await;

    let t0 = Instant::now();
    rig.registry
        .set_device_status(
            &DeviceRef::Id(device),
            DeviceStatus::Revoked,
            Some("left the municipality".into()),
            &ict(),
        )
        .await
        .expect("revoke");
    let (req, from, took) =
        expect_disconnect(&rig, t0, Duration::from_secs(1), "sess-rv-1", mac).await;
    eprintln!("{backend:?}: revoke to Disconnect-Request: {took:?}");
    rig.nas_answer(&req, from, DISCONNECT_ACK, None).await;
    let rows = rig.coa_record(1).await;
    assert_eq!(rows[0].result, "ack");
    assert!(rows[0].reason.starts_with("device.revoke by ict.test"));
    expect_audit(&rig, device, "session.disconnect").await;

    let reply = radclient(rig.auth, "auth", &mab_attrs(mac)).await;
    assert_eq!(reply.code.as_deref(), Some("Access-Reject"));
    rig.stop().await;
});

both_stores!(
    ended_contract_is_disconnected_by_the_check,
    |backend| async move {
        let mut rig = Rig::start(backend).await;
        let mac = "02-00-00-00-c0-03";
        let device = support::seed(&rig.registry, "c.temp", mac).await;
        connect(&rig, mac, "sess-ct-1").await;

        // let the enforcer see the seeding changes first, so that only the check is left
        tokio::time::sleep(Duration::from_millis(500)).await;
        // the contract ended (midnight passed): no registry change, only the clock
        rig.db
            .execute("UPDATE owners SET valid_until = '2020-01-31' WHERE username = 'c.temp'")
            .await
            .expect("update");
        let t0 = Instant::now();
        // check_interval is 1 s
        let (req, from, took) =
            expect_disconnect(&rig, t0, Duration::from_millis(1500), "sess-ct-1", mac).await;
        eprintln!("{backend:?}: contract end found by the check after {took:?}");
        rig.nas_answer(&req, from, DISCONNECT_ACK, None).await;
        let rows = rig.coa_record(1).await;
        assert_eq!(rows[0].result, "ack");
        assert!(
            rows[0].reason.starts_with("periodic check"),
            "{}",
            rows[0].reason
        );
        expect_audit(&rig, device, "session.disconnect").await;

        // the disconnect's audit entry moved the change marker: the cache is dropped
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reply = radclient(rig.auth, "auth", &mab_attrs(mac)).await;
        assert_eq!(reply.code.as_deref(), Some("Access-Reject"));
        rig.stop().await;
    }
);

both_stores!(
    nak_503_is_recorded_and_closes_the_session,
    |backend| async move {
        let mut rig = Rig::start(backend).await;
        let mac = "02-00-00-00-c0-04";
        let device = support::seed(&rig.registry, "d.staff", mac).await;
        let session = connect(&rig, mac, "sess-nak-1").await;
        let t0 = Instant::now();
        rig.registry
            .set_device_status(&DeviceRef::Id(device), DeviceStatus::Lost, None, &ict())
            .await
            .expect("lost");
        let (req, from, _) =
            expect_disconnect(&rig, t0, Duration::from_secs(1), "sess-nak-1", mac).await;
        rig.nas_answer(&req, from, DISCONNECT_NAK, Some(503)).await;
        let rows = rig.coa_record(1).await;
        assert_eq!(rows[0].result, "nak");
        assert_eq!(rows[0].error_cause, Some(503));
        // the NAS has no such session: the row is closed
        let start = Instant::now();
        loop {
            let s = rig
                .registry
                .session_by_id(session.id)
                .await
                .expect("session")
                .expect("exists");
            if s.stopped_at.is_some() {
                assert_eq!(s.terminate_cause.as_deref(), Some("NAS-Session-Not-Found"));
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "session not closed"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        expect_audit(&rig, device, "session.disconnect").await;
        rig.stop().await;
    }
);

both_stores!(
    silent_nas_gets_retransmissions_then_timeout,
    |backend| async move {
        let mut rig = Rig::start(backend).await;
        let mac = "02-00-00-00-c0-05";
        let device = support::seed(&rig.registry, "e.staff", mac).await;
        connect(&rig, mac, "sess-to-1").await;
        let t0 = Instant::now();
        rig.registry
            .set_compliance(
                &DeviceRef::Id(device),
                Compliance::Noncompliant,
                None,
                &ict(),
            )
            .await
            .expect("noncompliant");
        let (first, _, _) =
            expect_disconnect(&rig, t0, Duration::from_secs(1), "sess-to-1", mac).await;
        // timeout 200 ms, doubled: retransmissions after 200 and 600 ms, identical datagrams
        for _ in 0..2 {
            let (again, _) = rig
                .nas_receive(Duration::from_secs(1))
                .await
                .expect("a retransmission");
            assert_eq!(again, first, "same identifier and authenticator");
        }
        let rows = rig.coa_record(1).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].result, "timeout");
        assert_eq!(rows[0].attempts, 3);
        assert!(rows[0].answered_at.is_none());
        rig.stop().await;
    }
);

fn cli(rig: &Rig, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        // the OS user is the declared actor: recorded as is, without "(os: ...)"
        .env("USER", "helpdesk.test")
        .env_remove("SUDO_USER")
        .arg("--config")
        .arg(rig.config_path.path())
        .args(["--actor", "helpdesk.test"])
        .args(args)
        .output()
        .expect("run poortwachter")
}

both_stores!(session_kick_from_the_cli, |backend| async move {
    let mut rig = Rig::start(backend).await;
    let mac = "02-00-00-00-c0-06";
    let device = support::seed(&rig.registry, "f.staff", mac).await;
    let session = connect(&rig, mac, "sess-kick-1").await;
    let id = format!("#{}", session.id);
    let config = rig.config_path.path().to_path_buf();
    let cmd = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            // the OS user is the declared actor: recorded as is, without "(os: ...)"
            .env("USER", "helpdesk.test")
            .env_remove("SUDO_USER")
            .arg("--config")
            .arg(&config)
            .args(["--actor", "helpdesk.test", "session", "kick", &id])
            .args(["--reason", "user asked"])
            .output()
            .expect("run poortwachter")
    });
    let (req, from, _) = expect_disconnect(
        &rig,
        Instant::now(),
        Duration::from_secs(5),
        "sess-kick-1",
        mac,
    )
    .await;
    rig.nas_answer(&req, from, DISCONNECT_ACK, None).await;
    let out = cmd.await.expect("cli");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Disconnect-ACK"), "{stdout}");
    let rows = rig.coa_record(1).await;
    assert_eq!(rows[0].actor, "helpdesk.test");
    assert_eq!(rows[0].result, "ack");
    assert_eq!(rows[0].reason, "session kick by helpdesk.test: user asked");
    expect_audit(&rig, device, "session.disconnect").await;

    // by Acct-Session-Id, and the NAS answers NAK 503: recorded, non-zero exit
    let config = rig.config_path.path().to_path_buf();
    let cmd = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            // the OS user is the declared actor: recorded as is, without "(os: ...)"
            .env("USER", "helpdesk.test")
            .env_remove("SUDO_USER")
            .arg("--config")
            .arg(&config)
            .args(["session", "kick", "sess-kick-1"])
            .output()
            .expect("run poortwachter")
    });
    let (req, from) = rig
        .nas_receive(Duration::from_secs(5))
        .await
        .expect("second kick");
    rig.nas_answer(&req, from, DISCONNECT_NAK, Some(503)).await;
    let out = cmd.await.expect("cli");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Session Context Not Found"), "{stdout}");
    // the session is closed now: a third kick is refused without sending
    let out = cli(&rig, &["session", "kick", "--row", &session.id.to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already ended"));
    // a bare number is an Acct-Session-Id, never a row id: refused with a hint
    let out = cli(&rig, &["session", "kick", &session.id.to_string()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("give `#{}`", session.id)),
        "{stderr}"
    );
    // an all-digit Acct-Session-Id is kicked as such
    let mac2 = "02-00-00-00-c0-16";
    support::seed(&rig.registry, "f2.staff", mac2).await;
    connect(&rig, mac2, "4711").await;
    let config = rig.config_path.path().to_path_buf();
    let cmd = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            // the OS user is the declared actor: recorded as is, without "(os: ...)"
            .env("USER", "helpdesk.test")
            .env_remove("SUDO_USER")
            .arg("--config")
            .arg(&config)
            .args(["session", "kick", "4711"])
            .output()
            .expect("run poortwachter")
    });
    let (req, from, _) =
        expect_disconnect(&rig, Instant::now(), Duration::from_secs(5), "4711", mac2).await;
    rig.nas_answer(&req, from, DISCONNECT_ACK, None).await;
    let out = cmd.await.expect("cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rig.stop().await;
});

/// A change made by the CLI in another process: the SQLite poll finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_from_another_process_disconnects_sqlite() {
    let mut rig = Rig::start(Backend::Sqlite).await;
    let mac = "02-00-00-00-c0-07";
    let device = support::seed(&rig.registry, "g.staff", mac).await;
    connect(&rig, mac, "sess-cli-1").await;
    let t0 = Instant::now();
    let out = cli(
        &rig,
        &[
            "device",
            "revoke",
            &device.to_string(),
            "--reason",
            "stolen",
        ],
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_done = t0.elapsed();
    let (req, from, took) = expect_disconnect(
        &rig,
        t0,
        cli_done + Duration::from_secs(1),
        "sess-cli-1",
        mac,
    )
    .await;
    eprintln!("sqlite, CLI in another process: {took:?} (the CLI itself took {cli_done:?})");
    rig.nas_answer(&req, from, DISCONNECT_ACK, None).await;
    let rows = rig.coa_record(1).await;
    assert!(rows[0].reason.starts_with("device.revoke by helpdesk.test"));
    rig.stop().await;
}

/// `curl` as the MDM or ICT's tool: a JSON POST with a bearer token; the status and body.
async fn api_post(api: SocketAddr, token: &str, path: &str, body: &str) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-X", "POST"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("http://{api}/api/v1{path}"))
        .output()
        .await
        .expect("curl (Debian curl; scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').expect("a status line");
    (status.trim().parse().expect("a status"), body.to_string())
}

both_stores!(
    api_posture_and_revoke_move_a_connected_device_out_within_a_second,
    |backend| async move {
        // the issue's "done when": an MDM posting a failing report, or ICT revoking a device
        // through the API, moves a connected device out of the workspace VLAN within a
        // second, and every step is in the audit log
        let mut rig = Rig::start(backend).await;
        let text = std::fs::read_to_string(rig.config_path.path()).expect("config");
        let cfg = Config::from_toml(&text, Path::new("test.toml"), Vec::new()).expect("config");
        let setup = Change::by("ict.setup");
        let (_, mdm) = rig
            .registry
            .create_token(
                "intune",
                poortwachter::registry::tokens::TokenScope::Posture,
                &setup,
            )
            .await
            .expect("token");
        let (_, ict_token) = rig
            .registry
            .create_token(
                "ict-portal",
                poortwachter::registry::tokens::TokenScope::Admin,
                &setup,
            )
            .await
            .expect("token");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind API");
        let api =
            poortwachter::api::Api::serve(std::sync::Arc::new(cfg), rig.registry.clone(), listener)
                .expect("API");
        let addr = api.local_addr();

        // 1. the MDM reports antivirus off on a connected laptop
        let mac = "02-00-00-00-c0-a1";
        let device = support::seed(&rig.registry, "m.staff", mac).await;
        connect(&rig, mac, "sess-api-1").await;
        // the report must be measured after the seeded compliance check (a whole second
        // later, as the report's time has no fraction) or it is kept without being applied
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = Utc::now().trunc_subsecs(0).to_rfc3339();
        let report = format!(
            r#"{{"os_name":"windows","os_version":"10.0.22631","pending_updates":0,
                "antivirus_enabled":false,"antivirus_signatures_updated":"{now}",
                "firewall_enabled":true,"disk_encrypted":true,"screen_lock":true,
                "collected_at":"{now}","source":"intune"}}"#
        );
        let t0 = Instant::now();
        let (status, body) = api_post(
            addr,
            mdm.expose(),
            &format!("/devices/{device}/posture"),
            &report,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("noncompliant") && body.contains("antivirus"),
            "{body}"
        );
        let (req, from, took) =
            expect_disconnect(&rig, t0, Duration::from_secs(1), "sess-api-1", mac).await;
        eprintln!("{backend:?}: posture POST to Disconnect-Request: {took:?}");
        rig.nas_answer(&req, from, DISCONNECT_ACK, None).await;
        expect_audit(&rig, device, "session.disconnect").await;
        let reply = radclient(rig.auth, "auth", &mab_attrs(mac)).await;
        assert_eq!(
            reply.attr("Tunnel-Private-Group-Id"),
            Some("666"),
            "{reply:?}"
        );

        // 2. ICT revokes another connected laptop through the API
        let mac2 = "02-00-00-00-c0-a2";
        let device2 = support::seed(&rig.registry, "n.staff", mac2).await;
        connect(&rig, mac2, "sess-api-2").await;
        let t0 = Instant::now();
        let (status, body) = api_post(
            addr,
            ict_token.expose(),
            &format!("/devices/{device2}/revoke"),
            r#"{"reason":"stolen"}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (req, from, took) =
            expect_disconnect(&rig, t0, Duration::from_secs(1), "sess-api-2", mac2).await;
        eprintln!("{backend:?}: revoke POST to Disconnect-Request: {took:?}");
        rig.nas_answer(&req, from, DISCONNECT_ACK, None).await;
        expect_audit(&rig, device2, "session.disconnect").await;
        let reply = radclient(rig.auth, "auth", &mab_attrs(mac2)).await;
        assert_eq!(reply.code.as_deref(), Some("Access-Reject"), "{reply:?}");

        // every step in the audit log, under who did it
        for (target, steps) in [
            (
                device,
                vec![("device.posture", "api:intune"), ("session.disconnect", "")],
            ),
            (
                device2,
                vec![
                    ("device.revoke", "api:ict-portal"),
                    ("session.disconnect", ""),
                ],
            ),
        ] {
            let entries = rig
                .registry
                .audit(&AuditFilter {
                    target_id: Some(target.to_string()),
                    actor: None,
                    limit: Some(50),
                    offset: 0,
                })
                .await
                .expect("audit");
            for (action, actor) in steps {
                assert!(
                    entries
                        .iter()
                        .any(|e| e.action == action && (actor.is_empty() || e.actor == actor)),
                    "no {action} by {actor:?} for {target}: {entries:?}"
                );
            }
        }
        api.shutdown().await;
        rig.stop().await;
    }
);

// A NAS that sends Calling-Station-Id in its own spelling, no NAS-IP-Address and no
// NAS-Identifier, and does not echo Class, for a device registered after the session started
// (the session row has no device id; RFC 5176 §3):
// the registry change still reaches it, the request repeats the Calling-Station-Id as sent and
// names the NAS by the accounting source address; a NAK 503 to that fallback does not close
// the session row.
both_stores!(
    session_without_class_is_found_by_mac_and_named_as_sent,
    |backend| async move {
        let mut rig = Rig::start(backend).await;
        let mac = "02-00-00-00-c0-0c";
        let csi = "02:00:00:00:c0:0c";
        let start = format!(
            "Acct-Status-Type = Start\nAcct-Session-Id = \"sess-nc-raw\"\nUser-Name = \"{mac}\"\n\
         Calling-Station-Id = \"{csi}\"\n"
        );
        let reply = radclient(rig.acct, "acct", &start).await;
        assert_eq!(reply.code.as_deref(), Some("Accounting-Response"));
        let open = rig
            .registry
            .sessions_by_acct_id("sess-nc-raw")
            .await
            .expect("sessions");
        let session = open.first().expect("stored").clone();
        assert_eq!(session.device_id, None);
        assert_eq!(session.raw.calling_station_id.as_deref(), Some(csi));
        assert_eq!(session.raw.nas_ip_address, None);
        assert_eq!(session.raw.nas_identifier, None);
        assert_eq!(session.raw.source_ip.as_deref(), Some("127.0.0.1"));
        // registered only after the session started: the session row has no device
        let device = support::seed(&rig.registry, "c.staff", mac).await;

        rig.registry
            .set_device_status(
                &DeviceRef::Id(device),
                DeviceStatus::Revoked,
                Some("stolen".into()),
                &ict(),
            )
            .await
            .expect("revoke");
        let (req, from) = rig
            .nas_receive(Duration::from_secs(1))
            .await
            .expect("a Disconnect-Request at the NAS");
        let p = Packet::parse(&req).expect("parses");
        assert_eq!(p.code(), code::DISCONNECT_REQUEST);
        assert_eq!(p.text(dict::ACCT_SESSION_ID), Some("sess-nc-raw"));
        assert_eq!(p.text(dict::CALLING_STATION_ID), Some(csi));
        assert_eq!(p.attr(dict::NAS_IDENTIFIER), None);
        assert_eq!(p.ipv4(dict::NAS_IP_ADDRESS), Some([127, 0, 0, 1].into()));
        rig.nas_answer(&req, from, DISCONNECT_NAK, Some(503)).await;
        let rows = rig.coa_record(1).await;
        assert_eq!(rows[0].result, "nak");
        assert_eq!(rows[0].error_cause, Some(503));
        // the registry change or, on a busy machine, the periodic check that ran first
        assert!(rows[0].reason.contains("revoked"), "{}", rows[0].reason);
        // recorded under the device the MAC named
        assert_eq!(rows[0].device_id, Some(device));
        expect_audit(&rig, device, "session.disconnect").await;
        // only a fallback NAS identification: the NAS may simply not have matched it
        let again = rig
            .registry
            .session_by_id(session.id)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(again.stopped_at, None);
        rig.stop().await;
    }
);

// A CoA-NAK for another reason than 503: the NAS cannot move the session, so it gets a
// Disconnect-Request for it.
both_stores!(coa_nak_falls_back_to_disconnect, |backend| async move {
    let mut rig = Rig::start_with(backend, "coa_action = \"coa\"").await;
    let mac = "02-00-00-00-c0-0d";
    let device = support::seed(&rig.registry, "d2.staff", mac).await;
    connect(&rig, mac, "sess-coa-nak").await;
    rig.registry
        .set_compliance(
            &DeviceRef::Id(device),
            Compliance::Noncompliant,
            Some("firewall off".into()),
            &ict(),
        )
        .await
        .expect("noncompliant");
    let (req, from) = rig
        .nas_receive(Duration::from_secs(1))
        .await
        .expect("a CoA-Request");
    let p = Packet::parse(&req).expect("parses");
    assert_eq!(p.code(), code::COA_REQUEST);
    // 502 Request Not Routable
    rig.nas_answer(&req, from, poortwachter::coa::packet::COA_NAK, Some(502))
        .await;
    let (req, from) = rig
        .nas_receive(Duration::from_secs(1))
        .await
        .expect("then a Disconnect-Request");
    let p = Packet::parse(&req).expect("parses");
    assert_eq!(p.code(), code::DISCONNECT_REQUEST);
    assert_eq!(p.text(dict::ACCT_SESSION_ID), Some("sess-coa-nak"));
    rig.nas_answer(&req, from, DISCONNECT_ACK, None).await;
    let rows = rig.coa_record(2).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    // newest first
    assert_eq!(
        (rows[0].kind.as_str(), rows[0].result.as_str()),
        ("disconnect", "ack")
    );
    assert_eq!(
        (rows[1].kind.as_str(), rows[1].result.as_str()),
        ("coa", "nak")
    );
    assert_eq!(rows[1].error_cause, Some(502));
    rig.stop().await;
});

// A session of a client no longer configured: an `error` row and audit entry, not silence;
// old rows go with the decision retention.
both_stores!(
    missing_client_is_recorded_and_old_requests_purged,
    |backend| async move {
        use poortwachter::activity::{AccountingUpdate, AcctKind, NasIdentity};
        use poortwachter::coa::enforcer::{kick, Kick, KickError, NasClients};
        use poortwachter::coa::packet::Kind;
        let mut rig = Rig::start(backend).await;
        let shared = rig.registry.store_arc();
        let store = shared.as_ref();
        let now = Utc::now().trunc_subsecs(6);
        store
            .record_accounting(&AccountingUpdate {
                kind: AcctKind::Start,
                at: now,
                nas: "ap-gone".into(),
                nas_key: "ap-gone-1".into(),
                acct_session_id: "sess-gone".into(),
                nas_ip: Some("127.0.0.1".into()),
                nas_port: None,
                username: None,
                mac: MacAddr::parse_any("02:00:00:00:c0:0e").ok(),
                ssid: None,
                device_id: None,
                owner: None,
                framed_ip: None,
                class: None,
                session_time: 0,
                input_octets: 0,
                output_octets: 0,
                input_packets: 0,
                output_packets: 0,
                terminate_cause: None,
                raw: NasIdentity {
                    nas_identifier: Some("ap-gone-1".into()),
                    source_ip: Some("127.0.0.1".into()),
                    ..NasIdentity::default()
                },
            })
            .await
            .expect("accounting");
        let session = store
            .sessions_by_acct_id("sess-gone")
            .await
            .expect("read")
            .remove(0);
        let text = std::fs::read_to_string(rig.config_path.path()).expect("config");
        let cfg = Config::from_toml(&text, Path::new("test.toml"), Vec::new()).expect("config");
        let what = Kick {
            kind: Kind::Disconnect,
            change: None,
            reason: "test".into(),
            actor: "ict.test".into(),
        };
        let retransmit = poortwachter::coa::client::Retransmit {
            first_wait: Duration::from_millis(100),
            retries: 0,
        };
        let out = kick(
            store,
            &NasClients::from_config(&cfg),
            &session,
            &what,
            retransmit,
        )
        .await;
        assert!(matches!(out, Err(KickError::UnknownClient(_))), "{out:?}");
        let rows = rig.coa_records().await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].result, "error");
        assert_eq!(rows[0].attempts, 0);
        let audit = store
            .audit(&AuditFilter {
                target_id: Some(format!("session {}", session.id)),
                actor: None,
                limit: Some(5),
                offset: 0,
            })
            .await
            .expect("audit");
        assert_eq!(audit.len(), 1, "{audit:?}");
        assert_eq!(audit[0].action, "session.disconnect");
        let after = audit[0].after.as_ref().expect("after");
        assert!(
            after["error"]
                .as_str()
                .is_some_and(|e| e.contains("ap-gone")),
            "{after}"
        );
        // nothing was sent, and the session stays open
        assert!(rig.nas_receive(Duration::from_millis(200)).await.is_none());
        let again = store
            .session_by_id(session.id)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(again.stopped_at, None);

        // retention
        assert_eq!(
            store
                .purge_coa_requests(now - chrono::Duration::hours(1))
                .await
                .expect("purge"),
            0
        );
        assert_eq!(
            store
                .purge_coa_requests(now + chrono::Duration::seconds(1))
                .await
                .expect("purge"),
            1
        );
        assert!(rig.coa_records().await.is_empty());
        rig.stop().await;
    }
);

// `coa_action = "coa"`: a device that turns noncompliant is moved to quarantine in place by a
// CoA-Request carrying the quarantine VLAN (RFC 3580 tunnel attributes), signed like a
// Disconnect; the ACK is recorded.
both_stores!(
    coa_request_moves_a_session_to_quarantine,
    |backend| async move {
        let mut rig = Rig::start_with(backend, "coa_action = \"coa\"").await;
        let mac = "02-00-00-00-c0-0e";
        let device = support::seed(&rig.registry, "d3.staff", mac).await;
        connect(&rig, mac, "sess-coa-ack").await;
        let t0 = Instant::now();
        rig.registry
            .set_compliance(
                &DeviceRef::Id(device),
                Compliance::Noncompliant,
                Some("disk not encrypted".into()),
                &ict(),
            )
            .await
            .expect("noncompliant");
        let (req, from) = rig
            .nas_receive(Duration::from_secs(1))
            .await
            .expect("a CoA-Request within a second");
        eprintln!(
            "{backend:?}: registry change to CoA-Request: {:?}",
            t0.elapsed()
        );
        let p = Packet::parse(&req).expect("parses");
        assert_eq!(p.code(), code::COA_REQUEST);
        assert!(check_accounting_authenticator(&p, SECRET.as_bytes()));
        assert_eq!(check_request_ma(&p, SECRET.as_bytes()), MaCheck::Valid);
        assert_eq!(p.text(dict::ACCT_SESSION_ID), Some("sess-coa-ack"));
        assert_eq!(
            p.text(dict::CALLING_STATION_ID),
            Some(mac.to_uppercase().as_str())
        );
        // the quarantine VLAN: Tunnel-Private-Group-Id (tag 0 omitted) and the VLAN tunnel type
        assert_eq!(p.text(dict::TUNNEL_PRIVATE_GROUP_ID), Some("666"));
        assert_eq!(
            p.attr(dict::TUNNEL_TYPE).map(|v| v[1..].to_vec()),
            Some(vec![0, 0, 13])
        );
        rig.nas_answer(&req, from, poortwachter::coa::packet::COA_ACK, None)
            .await;
        let rows = rig.coa_record(1).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(
            (rows[0].kind.as_str(), rows[0].result.as_str()),
            ("coa", "ack")
        );
        expect_audit(&rig, device, "session.coa").await;
        // moved, not disconnected: nothing else follows
        assert!(rig.nas_receive(Duration::from_millis(1500)).await.is_none());
        rig.stop().await;
    }
);
