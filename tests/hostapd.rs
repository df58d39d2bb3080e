//! 802.1X with real network software, on both stores: hostapd (`driver=wired`) as the access
//! point on one end of a veth pair in the root namespace, wpa_supplicant (`driver=wired`,
//! EAP-TLS with the PKCS#12 bundle our CLI issued) in a network namespace of its own on the
//! other end; our server in-process on 127.0.0.1. What counts is what the peers conclude:
//! wpa_supplicant's own EAP result (`CTRL-EVENT-EAP-SUCCESS` / `-FAILURE`, `wpa_cli status`),
//! the VLAN hostapd put the station in (`hostapd_cli sta`: `vlan_id=`), hostapd's accounting
//! in `sessions`, and hostapd's own log of our Disconnect-Request and CoA-Request (RFC 5176)
//! with its answers in `coa_requests`.
//!
//! A wired supplicant is not told when the authenticator takes it off the port, so a
//! disconnect is seen on hostapd's side (`AP-STA-DISCONNECTED`, its accounting Stop).
//!
//! Needs root (network namespaces, veths) and Debian's hostapd, wpasupplicant and iproute2;
//! without them the tests fail, never skip. Traffic stays on loopback and the veth pairs.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use poortwachter::activity::{Session, SessionFilter};
use poortwachter::config::Config;
use poortwachter::mac::MacAddr;
use poortwachter::model::{Compliance, DeviceKind, NewDevice, NewOwner, Role};
use poortwachter::registry::coa::CoaRecord;
use poortwachter::registry::{Change, DeviceRef, Registry, Rules};
use poortwachter::server::Server;
use support::peers::{
    gist, hostapd, hostapd_cli, ip_program, wpa_cli, wpa_supplicant, AccessPoint, Issued, Outcome,
    Station,
};
use support::serving::free_udp_port;
use support::{Backend, TestDb};
use tempfile::TempDir;
use tokio::sync::oneshot;

const SECRET: &str = "hostapd-test-secret-0123456";
const SERVER_NAME: &str = "radius.poortwachter.test";

fn config_text(url: &str, dir: &Path, das_port: u16, client_extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"
[database]
url = "{url}"

[radius]
auth_listen = "127.0.0.1:0"
acct_listen = "127.0.0.1:0"

[[radius.clients]]
name = "ap-test"
network = "127.0.0.0/8"
secret = "{SECRET}"
coa_port = {das_port}
{client_extra}

[vlans]
workspace = 100
guest = 200
quarantine = 666

[policy]
compliance_max_age = "30d"
session_timeout = "8h"

[log]
decision_coalesce = "0s"

[cache]
poll_interval = "100ms"

[coa]
timeout = "300ms"
retries = 2
check_interval = "60s"

[pki]
ca_cert = "{d}/pki/ca.pem"
ca_key = "{d}/pki/ca.key"

[eap]
server_cert = "{d}/pki/server.pem"
server_key = "{d}/pki/server.key"
server_name = "{SERVER_NAME}"
"#
    )
}

/// Runs our CLI with `config` (in another process, as ICT would); panics with its output
/// unless it succeeds.
async fn cli(config: &Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_poortwachter"))
        .arg("--config")
        .arg(config)
        .args(["--actor", "ict.test"])
        .args(args)
        .output()
        .await
        .expect("run poortwachter");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "poortwachter {args:?} failed:\n{text}"
    );
    text
}

/// Our server with EAP-TLS (its CA from `poortwachter ca init`) and dynamic authorization to
/// hostapd's DAS port, over a fresh registry; and hostapd in front of it.
struct Rig {
    _db: TestDb,
    dir: TempDir,
    config: PathBuf,
    registry: Registry,
    ap: AccessPoint,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Rig {
    async fn start(backend: Backend, client_extra: &str) -> Rig {
        // before anything else: the tools, or a failure naming their packages
        for p in [
            hostapd(),
            hostapd_cli(),
            wpa_supplicant(),
            wpa_cli(),
            ip_program(),
        ] {
            assert!(p.is_file());
        }
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let das_port = free_udp_port();
        let text = config_text(&db.url, dir.path(), das_port, client_extra);
        let config = dir.path().join("poortwachter.toml");
        std::fs::write(&config, &text).expect("write config");
        let cfg = Config::from_toml(&text, Path::new("test.toml"), Vec::new()).expect("config");
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
        let init = cli(&config, &["ca", "init"]).await;
        assert!(dir.path().join("pki/server.pem").exists(), "{init}");
        let server = Server::bind(&cfg, registry.store_arc())
            .await
            .expect("bind");
        let auth = server.auth_addr().expect("auth addr");
        let acct = server.acct_addr().expect("acct addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = rx.await;
                })
                .await;
        });
        let ap = AccessPoint::start(dir.path(), auth, acct, das_port, SECRET).await;
        Rig {
            _db: db,
            dir,
            config,
            registry,
            ap,
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

    /// `poortwachter device issue-cert`; the one-time password from what it printed.
    async fn issue(&self, device: uuid::Uuid) -> Issued {
        let out = self
            .dir
            .path()
            .join(format!("out-{}", uuid::Uuid::new_v4()));
        let printed = cli(
            &self.config,
            &[
                "device",
                "issue-cert",
                &device.to_string(),
                "--out",
                out.to_str().expect("utf-8"),
            ],
        )
        .await;
        let password = printed
            .lines()
            .skip_while(|l| !l.to_lowercase().contains("password"))
            .nth(1)
            .map(|l| l.trim().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| panic!("no password printed:\n{printed}"));
        let p12 = std::fs::read_dir(&out)
            .expect("out dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "p12"))
            .unwrap_or_else(|| panic!("no .p12 in {}: {printed}", out.display()));
        Issued {
            label: p12
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            p12,
            password,
            ca: out.join("ca.pem"),
        }
    }

    fn station(&self, cert: &Issued, tls13: bool, mac: &str) -> Station {
        Station::start(&self.ap, self.dir.path(), cert, tls13, mac, SERVER_NAME)
    }

    /// A station that must get in: the supplicant reports EAP success and an authorized port,
    /// with the TLS version asked for, and hostapd put it in `vlan`. Left running.
    async fn admit(&self, cert: &Issued, tls13: bool, mac: &str, vlan: u16) -> Station {
        let station = self.station(cert, tls13, mac);
        let outcome = station.outcome(Duration::from_secs(15)).await;
        assert!(
            matches!(outcome, Some((Outcome::Success, _))),
            "{mac} (TLS 1.{}): {outcome:?}\n--- wpa_supplicant:\n{}\n--- hostapd:\n{}",
            if tls13 { 3 } else { 2 },
            gist(&station.log()),
            gist(&self.ap.log())
        );
        let status = station.status().await;
        assert!(status.contains("suppPortStatus=Authorized"), "{status}");
        assert!(status.contains("EAP state=SUCCESS"), "{status}");
        let version = if tls13 { "TLSv1.3" } else { "TLSv1.2" };
        assert!(
            status.contains(&format!("eap_tls_version={version}")),
            "{status}"
        );
        let sta = self.ap.sta(mac).await;
        assert!(sta.contains("flags=[AUTHORIZED]"), "{sta}");
        assert_eq!(
            self.ap.vlan_of(mac).await,
            Some(vlan),
            "hostapd's station {mac}:\n{sta}\n--- hostapd:\n{}",
            gist(&self.ap.log())
        );
        station
    }

    /// A station that must be refused: the supplicant itself reports EAP failure within 5 s of
    /// starting.
    async fn refuse(&self, cert: &Issued, tls13: bool, mac: &str) {
        let station = self.station(cert, tls13, mac);
        let outcome = station.outcome(Duration::from_secs(5)).await;
        let log = station.log();
        station.stop();
        assert!(
            matches!(outcome, Some((Outcome::Failure, _))),
            "{mac} (TLS 1.{}): {outcome:?} within 5 s of starting wpa_supplicant, not \
             CTRL-EVENT-EAP-FAILURE\n--- wpa_supplicant:\n{}\n--- hostapd:\n{}",
            if tls13 { 3 } else { 2 },
            gist(&log),
            gist(&self.ap.log())
        );
        let sta = self.ap.sta(mac).await;
        assert!(!sta.contains("flags=[AUTHORIZED]"), "{sta}");
    }

    /// The open session of `mac` that hostapd's accounting Start made, within 5 s.
    async fn open_session(&self, mac: &str) -> Session {
        let want = MacAddr::parse_any(mac).expect("mac");
        let start = Instant::now();
        loop {
            let sessions = self
                .registry
                .sessions(&SessionFilter {
                    active_only: true,
                    mac: Some(want),
                    limit: None,
                })
                .await
                .expect("sessions");
            if let Some(s) = sessions.into_iter().next() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no open session for {mac}\n--- hostapd:\n{}",
                gist(&self.ap.log())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The session row `id` once it has stopped, within 5 s.
    async fn stopped_session(&self, id: i64) -> Session {
        let start = Instant::now();
        loop {
            let s = self
                .registry
                .session_by_id(id)
                .await
                .expect("read")
                .expect("the row");
            if s.stopped_at.is_some() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "session {id} still open: {s:?}\n--- hostapd:\n{}",
                gist(&self.ap.log())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `coa_requests` rows, newest first, once there are `n` with a final result (5 s).
    async fn coa_records(&self, n: usize) -> Vec<CoaRecord> {
        let start = Instant::now();
        loop {
            let rows = self
                .registry
                .coa_requests(None, 50)
                .await
                .expect("coa_requests");
            if rows.len() >= n || start.elapsed() > Duration::from_secs(5) {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // a panicking test leaves the server task to the runtime; hostapd and the wire go by
        // the AccessPoint's own drop
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn ict() -> Change {
    Change::by("ict.test")
}

fn today() -> chrono::NaiveDate {
    Utc::now()
        .with_timezone(&chrono_tz::Europe::Amsterdam)
        .date_naive()
}

async fn add_owner(reg: &Registry, username: &str, role: Role) {
    let until = (role != Role::Staff).then(|| today() + Days::new(60));
    reg.add_owner(
        NewOwner {
            username: username.into(),
            display_name: format!("Test {username}"),
            email: None,
            role,
            department: None,
            valid_from: None,
            valid_until: until,
        },
        &ict(),
    )
    .await
    .expect("owner");
}

/// An owner's device with a compliance state.
async fn device(reg: &Registry, owner: &str, mac: &str, label: &str, c: Compliance) -> uuid::Uuid {
    let id = reg
        .register_device(
            NewDevice {
                owner: owner.into(),
                macs: vec![MacAddr::parse_any(mac).expect("mac")],
                label: label.into(),
                kind: DeviceKind::Laptop,
            },
            &ict(),
        )
        .await
        .expect("register")
        .id;
    reg.set_compliance(&DeviceRef::Id(id), c, Some("test".into()), &ict())
        .await
        .expect("compliance");
    id
}

both_stores!(
    vlans_accounting_and_a_revoke_that_disconnects,
    |backend| async move {
        let mut rig = Rig::start(backend, "").await;
        add_owner(&rig.registry, "s.staff", Role::Staff).await;
        add_owner(&rig.registry, "i.intern", Role::Intern).await;
        let reg = &rig.registry;
        let staff = device(
            reg,
            "s.staff",
            "02:00:00:00:a1:01",
            "staff-laptop",
            Compliance::Compliant,
        )
        .await;
        let intern = device(
            reg,
            "i.intern",
            "02:00:00:00:a1:02",
            "intern-laptop",
            Compliance::Compliant,
        )
        .await;
        let sick = device(
            reg,
            "s.staff",
            "02:00:00:00:a1:03",
            "sick-laptop",
            Compliance::Noncompliant,
        )
        .await;
        let staff_cert = rig.issue(staff).await;
        let intern_cert = rig.issue(intern).await;
        let sick_cert = rig.issue(sick).await;

        // staff, TLS 1.2 and 1.3: the workspace VLAN; an intern in contract: guest; a
        // noncompliant device: quarantine. Each connection is a session of its device, opened
        // by hostapd's accounting Start and closed by its Stop when the station logs off.
        for (cert, tls13, mac, vlan, id) in [
            (&staff_cert, false, "02:00:00:00:a1:01", 100, staff),
            (&intern_cert, true, "02:00:00:00:a1:02", 200, intern),
            (&sick_cert, true, "02:00:00:00:a1:03", 666, sick),
        ] {
            let station = rig.admit(cert, tls13, mac, vlan).await;
            let session = rig.open_session(mac).await;
            assert_eq!(session.device_id, Some(id), "{session:?}");
            assert_eq!(session.nas_key, rig.ap.nas_identifier);
            assert_eq!(
                session.username.as_deref(),
                Some(format!("host/{}", cert.label).as_str())
            );
            station.leave(&rig.ap, mac).await;
            let closed = rig.stopped_session(session.id).await;
            assert_eq!(
                closed.terminate_cause.as_deref(),
                Some("User-Request"),
                "{closed:?}"
            );
        }

        let mac = "02:00:00:00:a1:11";
        let station = rig.admit(&staff_cert, true, mac, 100).await;
        let session = rig.open_session(mac).await;
        assert_eq!(session.device_id, Some(staff), "{session:?}");
        assert_eq!(session.owner.as_deref(), Some("s.staff"));
        assert!(
            session
                .class
                .as_deref()
                .is_some_and(|c| c.starts_with("pw1;")),
            "hostapd echoes our Class: {session:?}"
        );

        // ICT revokes the device from the command line: hostapd gets a Disconnect-Request,
        // takes the station off the port and acknowledges
        let t0 = Instant::now();
        cli(
            &rig.config,
            &["device", "revoke", &staff.to_string(), "--reason", "stolen"],
        )
        .await;
        let rows = rig.coa_records(1).await;
        let took = t0.elapsed();
        let log = rig.ap.log();
        assert_eq!(rows.len(), 1, "{rows:?}\n--- hostapd:\n{}", gist(&log));
        assert_eq!(
            (rows[0].kind.as_str(), rows[0].result.as_str()),
            ("disconnect", "ack"),
            "{rows:?}\n--- hostapd:\n{}",
            gist(&log)
        );
        assert_eq!(rows[0].session_id, Some(session.id));
        assert_eq!(rows[0].device_id, Some(staff));
        assert!(
            rows[0].reason.starts_with("device.revoke by ict.test"),
            "{}",
            rows[0].reason
        );
        eprintln!("{backend:?}: CLI revoke to Disconnect-ACK recorded: {took:?}");
        for expected in [
            "RADIUS message: code=40 (Disconnect-Request)".to_string(),
            format!("RADIUS DAS: Found a matching session {mac} - disconnecting"),
            format!("AP-STA-DISCONNECTED {mac}"),
            "RADIUS message: code=41 (Disconnect-ACK)".to_string(),
        ] {
            assert!(
                log.contains(&expected),
                "hostapd did not log `{expected}`:\n{}",
                gist(&log)
            );
        }
        let sta = rig.ap.sta(mac).await;
        assert!(!sta.contains("AUTHORIZED"), "{sta}");
        // and its accounting Stop closed the session
        let closed = rig.stopped_session(session.id).await;
        assert!(closed.stopped_at.is_some());
        station.stop();

        // the revoked device tries again, TLS 1.3: refused
        rig.refuse(&staff_cert, true, "02:00:00:00:a1:12").await;
        rig.stop().await;
    }
);

both_stores!(
    a_revoked_device_is_refused_on_tls_1_3_and_1_2,
    |backend| async move {
        let mut rig = Rig::start(backend, "").await;
        add_owner(&rig.registry, "r.staff", Role::Staff).await;
        let id = device(
            &rig.registry,
            "r.staff",
            "02:00:00:00:a2:01",
            "revoked-laptop",
            Compliance::Compliant,
        )
        .await;
        let cert = rig.issue(id).await;
        cli(
            &rig.config,
            &["device", "revoke", &id.to_string(), "--reason", "stolen"],
        )
        .await;
        // the supplicant's own verdict, within 5 s of its start, whatever the TLS version
        rig.refuse(&cert, true, "02:00:00:00:a2:01").await;
        rig.refuse(&cert, false, "02:00:00:00:a2:02").await;
        rig.stop().await;
    }
);

// `coa_action = "coa"`: hostapd 2.10 refuses a CoA-Request that moves the station to
// another VLAN (CoA-NAK), so the enforcer falls back to a Disconnect-Request, which it
// acknowledges; the device comes back into quarantine.
both_stores!(
    hostapd_refuses_a_coa_and_the_disconnect_follows,
    |backend| async move {
        let mut rig = Rig::start(backend, "coa_action = \"coa\"").await;
        add_owner(&rig.registry, "c.staff", Role::Staff).await;
        let id = device(
            &rig.registry,
            "c.staff",
            "02:00:00:00:a3:01",
            "coa-laptop",
            Compliance::Compliant,
        )
        .await;
        let cert = rig.issue(id).await;
        let mac = "02:00:00:00:a3:01";
        let station = rig.admit(&cert, true, mac, 100).await;
        let session = rig.open_session(mac).await;

        cli(
            &rig.config,
            &["device", "compliance", &id.to_string(), "noncompliant"],
        )
        .await;
        let rows = rig.coa_records(2).await;
        let log = rig.ap.log();
        assert_eq!(rows.len(), 2, "{rows:?}\n--- hostapd:\n{}", gist(&log));
        // newest first: the CoA-Request refused with 401 Unsupported Attribute (Tunnel-Type,
        // RFC 5176 §3.5), then the Disconnect-Request acknowledged
        assert_eq!(
            (rows[1].kind.as_str(), rows[1].result.as_str()),
            ("coa", "nak"),
            "{rows:?}"
        );
        assert_eq!(rows[1].error_cause, Some(401), "{rows:?}");
        assert_eq!(
            (rows[0].kind.as_str(), rows[0].result.as_str()),
            ("disconnect", "ack"),
            "{rows:?}"
        );
        assert!(
            rows.iter().all(|r| r.session_id == Some(session.id)),
            "{rows:?}"
        );
        for expected in [
            "RADIUS message: code=43 (CoA-Request)".to_string(),
            "DAS: Unsupported attribute 64 in CoA-Request".to_string(),
            "RADIUS message: code=45 (CoA-NAK)".to_string(),
            format!("RADIUS DAS: Found a matching session {mac} - disconnecting"),
            format!("AP-STA-DISCONNECTED {mac}"),
            "RADIUS message: code=41 (Disconnect-ACK)".to_string(),
        ] {
            assert!(
                log.contains(&expected),
                "hostapd did not log `{expected}`:\n{}",
                gist(&log)
            );
        }
        rig.stopped_session(session.id).await;

        // the station authenticates again: quarantine
        let again = station.reauthenticate().await;
        assert!(
            matches!(again, Some((Outcome::Success, _))),
            "{again:?}\n{}",
            gist(&station.log())
        );
        assert_eq!(
            rig.ap.vlan_of(mac).await,
            Some(666),
            "{}",
            gist(&rig.ap.log())
        );
        station.stop();
        rig.stop().await;
    }
);
