//! 802.1X EAP-TLS end to end, on both stores: our server on real UDP sockets, wpa_supplicant's
//! `eapol_test` (Debian `eapoltest`) as the supplicant behind an access point, certificates
//! made by our own CLI (`ca init`, `device issue-cert`: the PKCS#12 bundle the owner gets).
//! Assertions on what eapol_test reports (EAP result, MPPE keys compared on both sides, the
//! RADIUS attributes of the Access-Accept) and on the rows stored.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, Utc};
use poortwachter::activity::DecisionFilter;
use poortwachter::config::Config;
use poortwachter::eap::EapServer;
use poortwachter::mac::MacAddr;
use poortwachter::model::{Compliance, DeviceKind, DeviceStatus, NewDevice, NewOwner, Role};
use poortwachter::radius::crypto::{check_response, sign_request};
use poortwachter::radius::dict::{self, code};
use poortwachter::radius::{Builder, Packet};
use poortwachter::registry::{Change, DeviceRef, Registry, Rules};
use poortwachter::server::stats::Stats;
use poortwachter::server::Server;
use support::{Backend, TestDb};
use tempfile::TempDir;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const SECRET: &str = "eapol-test-secret-0123456";
const SERVER_NAME: &str = "radius.poortwachter.test";

fn config_text(url: &str, dir: &Path, extra_eap: &str) -> String {
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

[vlans]
workspace = 100
guest = 200
quarantine = 666

[policy]
compliance_max_age = "30d"
session_timeout = "8h"

[log]
decision_coalesce = "0s"

[pki]
ca_cert = "{d}/pki/ca.pem"
ca_key = "{d}/pki/ca.key"

[eap]
server_cert = "{d}/pki/server.pem"
server_key = "{d}/pki/server.key"
server_name = "{SERVER_NAME}"
{extra_eap}

[wifi]
ssid = "Werkplek"
"#
    )
}

/// Runs our CLI with `config`; panics with its output unless it succeeds.
fn cli(config: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poortwachter"))
        .arg("--config")
        .arg(config)
        .args(["--actor", "ict.test"])
        .args(args)
        .output()
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

/// A certificate our CLI issued, as the owner receives it.
struct Issued {
    p12: PathBuf,
    password: String,
    ca: PathBuf,
}

/// A server with EAP-TLS over a fresh registry, its CA made by `poortwachter ca init`.
struct Rig {
    _db: TestDb,
    dir: TempDir,
    config: PathBuf,
    registry: Registry,
    auth: SocketAddr,
    stats: Arc<Stats>,
    eap: Arc<EapServer>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Arc<Stats>>>,
}

impl Rig {
    async fn start(backend: Backend, extra_eap: &str) -> Rig {
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let text = config_text(&db.url, dir.path(), extra_eap);
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
        let init = cli(&config, &["ca", "init"]);
        assert!(dir.path().join("pki/server.pem").exists(), "{init}");
        let server = Server::bind(&cfg, registry.store_arc())
            .await
            .expect("bind");
        let auth = server.auth_addr().expect("auth addr");
        let stats = server.stats();
        let eap = server.eap_engine().expect("EAP-TLS is on after `ca init`");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Rig {
            _db: db,
            dir,
            config,
            registry,
            auth,
            stats,
            eap,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn stop(&mut self) -> Arc<Stats> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => t.await.expect("server task"),
            None => self.stats.clone(),
        }
    }

    /// `poortwachter device issue-cert` into a fresh directory; the one-time password from
    /// what it printed.
    fn issue(&self, device: uuid::Uuid) -> Issued {
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
        );
        let password = one_time_password(&printed);
        let p12 = std::fs::read_dir(&out)
            .expect("out dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "p12"))
            .unwrap_or_else(|| panic!("no .p12 in {}: {printed}", out.display()));
        Issued {
            p12,
            password,
            ca: out.join("ca.pem"),
        }
    }

    async fn decisions(&self, mac: &str) -> Vec<poortwachter::activity::DecisionRecord> {
        // the decision writer flushes every 100 ms
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.registry
            .decisions(&DecisionFilter {
                mac: Some(MacAddr::parse_any(mac).expect("mac")),
                username: None,
                limit: None,
            })
            .await
            .expect("decisions")
    }
}

/// The password `issue-cert` prints once: the line after the one that announces it.
fn one_time_password(printed: &str) -> String {
    printed
        .lines()
        .skip_while(|l| !l.to_lowercase().contains("password"))
        .nth(1)
        .map(|l| l.trim().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| panic!("no password printed:\n{printed}"))
}

/// What eapol_test reported.
#[derive(Debug)]
struct Eapol {
    success: bool,
    mppe_ok: bool,
    vlan: Option<String>,
    tls_version: Option<String>,
    output: String,
}

/// Runs eapol_test (EAP-TLS with the owner's PKCS#12) against `server` as the access point
/// would, with the device's Calling-Station-Id.
async fn eapol_test(server: SocketAddr, cert: &Issued, tls13: bool, mac: &str) -> Eapol {
    eapol_run(server, &eapol_conf(cert, tls13, ""), mac).await
}

/// An eapol_test network block for EAP-TLS with `cert`, plus `extra` lines.
fn eapol_conf(cert: &Issued, tls13: bool, extra: &str) -> String {
    format!(
        "network={{\n  key_mgmt=WPA-EAP\n  eap=TLS\n  identity=\"host/device\"\n  \
         ca_cert=\"{}\"\n  private_key=\"{}\"\n  private_key_passwd=\"{}\"\n  \
         domain_match=\"{SERVER_NAME}\"\n  phase1=\"tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 \
         tls_disable_tlsv1_2={} tls_disable_tlsv1_3={}\"\n{extra}\n}}\n",
        cert.ca.display(),
        cert.p12.display(),
        cert.password,
        u8::from(tls13),
        u8::from(!tls13),
    )
}

/// Runs eapol_test with the network block `conf`.
async fn eapol_run(server: SocketAddr, conf_text: &str, mac: &str) -> Eapol {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("eapol.conf");
    std::fs::write(&conf, conf_text).expect("write eapol.conf");
    let out = tokio::process::Command::new("eapol_test")
        .arg("-c")
        .arg(&conf)
        .args([
            "-a",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
            "-s",
            SECRET,
            "-M",
            mac,
            "-N30:s:00-11-22-33-44-55:Werkplek",
            "-t",
            "10",
        ])
        .output()
        .await
        .expect("eapol_test not found: install Debian's eapoltest (scripts/test does)");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let accept = output.find("(Access-Accept)").map(|i| &output[i..]);
    let vlan = accept.and_then(|a| {
        let i = a.find("(Tunnel-Private-Group-Id)")?;
        let line = a[i..].lines().nth(1)?;
        let hex = line.trim().strip_prefix("Value: ")?;
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    });
    let tls_version = output
        .lines()
        .find_map(|l| l.split("Using TLS version ").nth(1))
        .map(|v| v.trim().to_string());
    Eapol {
        success: out.status.success() && output.trim_end().ends_with("SUCCESS"),
        mppe_ok: output.contains("MPPE keys OK: 1  mismatch: 0"),
        vlan,
        tls_version,
        output,
    }
}

fn owner(username: &str, role: Role, until: Option<chrono::NaiveDate>) -> NewOwner {
    NewOwner {
        username: username.into(),
        display_name: format!("Test {username}"),
        email: None,
        role,
        department: None,
        valid_from: None,
        valid_until: until,
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

/// An owner's device, with a compliance state.
async fn device(reg: &Registry, owner: &str, mac: &str, c: Compliance) -> uuid::Uuid {
    let id = reg
        .register_device(
            NewDevice {
                owner: owner.into(),
                macs: vec![MacAddr::parse_any(mac).expect("mac")],
                label: format!("laptop {mac}"),
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

async fn seed(reg: &Registry) {
    let later = today() + Days::new(60);
    reg.add_owner(owner("s.staff", Role::Staff, None), &ict())
        .await
        .expect("owner");
    reg.add_owner(owner("t.temp", Role::Temp, Some(later)), &ict())
        .await
        .expect("owner");
}

both_stores!(
    eap_tls_12_and_13_with_vlans_and_keys,
    |backend| async move {
        let mut rig = Rig::start(backend, "").await;
        seed(&rig.registry).await;
        let staff = device(
            &rig.registry,
            "s.staff",
            "02-00-00-00-01-01",
            Compliance::Compliant,
        )
        .await;
        let temp = device(
            &rig.registry,
            "t.temp",
            "02-00-00-00-01-02",
            Compliance::Compliant,
        )
        .await;
        let sick = device(
            &rig.registry,
            "s.staff",
            "02-00-00-00-01-03",
            Compliance::Noncompliant,
        )
        .await;
        let staff_cert = rig.issue(staff);
        let temp_cert = rig.issue(temp);
        let sick_cert = rig.issue(sick);

        let r = eapol_test(rig.auth, &staff_cert, false, "02:00:00:00:01:01").await;
        assert!(r.success, "{}", r.output);
        assert!(r.mppe_ok, "MPPE keys differ:\n{}", r.output);
        assert_eq!(r.vlan.as_deref(), Some("100"));
        assert_eq!(r.tls_version.as_deref(), Some("TLSv1.2"));

        // TLS 1.3, and a temp: the guest VLAN
        let r = eapol_test(rig.auth, &temp_cert, true, "02:00:00:00:01:02").await;
        assert!(r.success, "{}", r.output);
        assert!(r.mppe_ok, "MPPE keys differ:\n{}", r.output);
        assert_eq!(r.vlan.as_deref(), Some("200"));
        assert_eq!(r.tls_version.as_deref(), Some("TLSv1.3"));

        // noncompliant: accepted into quarantine
        let r = eapol_test(rig.auth, &sick_cert, true, "02:00:00:00:01:03").await;
        assert!(r.success, "{}", r.output);
        assert_eq!(r.vlan.as_deref(), Some("666"));

        // the certificate, not the MAC, says which device it is: a randomized MAC is fine
        let r = eapol_test(rig.auth, &staff_cert, true, "0a:11:22:33:44:55").await;
        assert!(r.success, "{}", r.output);
        assert_eq!(r.vlan.as_deref(), Some("100"));

        let rows = rig.decisions("0a:11:22:33:44:55").await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].method, "eap-tls");
        assert_eq!(rows[0].outcome, "accept");
        assert_eq!(rows[0].reason, "compliant");
        assert_eq!(rows[0].device_id, Some(staff));
        assert_eq!(rows[0].owner.as_deref(), Some("s.staff"));
        assert_eq!(rows[0].vlan, Some(100));
        assert_eq!(rows[0].username, "host/device");
        let rows = rig.decisions("02:00:00:00:01:03").await;
        assert_eq!(rows[0].reason, "noncompliant");
        assert_eq!(rows[0].vlan, Some(666));

        // last seen recorded by the sighting writer (every 100 ms)
        let d = rig
            .registry
            .find_device(&DeviceRef::Id(staff))
            .await
            .expect("device");
        assert!(d.last_seen_at.is_some(), "{d:?}");
        // the MAC it came from last: the randomized one
        let seen_mac = rig
            ._db
            .count(&format!(
                "devices WHERE id = {} AND CAST(last_seen_mac AS TEXT) = '0a:11:22:33:44:55'",
                match backend {
                    Backend::Sqlite => format!("x'{}'", staff.simple()),
                    Backend::Postgres => format!("'{staff}'"),
                }
            ))
            .await;
        assert_eq!(seen_mac, 1);

        // revoked while its certificate is in the server's cache: refused at the next login
        rig.registry
            .set_device_status(
                &DeviceRef::Id(staff),
                DeviceStatus::Revoked,
                Some("stolen".into()),
                &ict(),
            )
            .await
            .expect("revoke");
        // the change reaches the server by NOTIFY (PostgreSQL) or the 100 ms poll (SQLite)
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = eapol_test(rig.auth, &staff_cert, true, "02:00:00:00:01:01").await;
        assert!(!r.success, "{}", r.output);
        let rows = rig.decisions("02:00:00:00:01:01").await;
        assert_eq!(rows[0].reason, "device_revoked", "{rows:?}");

        let stats = rig.stop().await;
        assert_eq!(stats.accepts.load(std::sync::atomic::Ordering::Relaxed), 4);
        assert!(stats.challenges.load(std::sync::atomic::Ordering::Relaxed) >= 12);
    }
);

both_stores!(
    every_refusal_is_a_failure_with_its_reason,
    |backend| async move {
        let mut rig = Rig::start(backend, "").await;
        seed(&rig.registry).await;
        let revoked = device(
            &rig.registry,
            "s.staff",
            "02-00-00-00-02-01",
            Compliance::Compliant,
        )
        .await;
        let lost = device(
            &rig.registry,
            "s.staff",
            "02-00-00-00-02-02",
            Compliance::Compliant,
        )
        .await;
        let temp = device(
            &rig.registry,
            "t.temp",
            "02-00-00-00-02-03",
            Compliance::Compliant,
        )
        .await;
        let reissued = device(
            &rig.registry,
            "s.staff",
            "02-00-00-00-02-04",
            Compliance::Compliant,
        )
        .await;
        let revoked_cert = rig.issue(revoked);
        let lost_cert = rig.issue(lost);
        let temp_cert = rig.issue(temp);
        let old_cert = rig.issue(reissued);
        let new_cert = rig.issue(reissued);

        // revoked and lost after the certificate was issued
        rig.registry
            .set_device_status(
                &DeviceRef::Id(revoked),
                DeviceStatus::Revoked,
                Some("left".into()),
                &ict(),
            )
            .await
            .expect("revoke");
        rig.registry
            .set_device_status(
                &DeviceRef::Id(lost),
                DeviceStatus::Lost,
                Some("train".into()),
                &ict(),
            )
            .await
            .expect("lost");
        // the temp's contract ended yesterday (as an HR import would set it)
        let yesterday = today() - Days::new(1);
        rig._db
            .execute(&format!(
                "UPDATE owners SET valid_until = '{yesterday}' WHERE username = 't.temp'"
            ))
            .await
            .expect("end contract");

        for (cert, mac, reason) in [
            (&revoked_cert, "02:00:00:00:02:01", "device_revoked"),
            (&lost_cert, "02:00:00:00:02:02", "device_lost"),
            (&temp_cert, "02:00:00:00:02:03", "owner_expired"),
            (&old_cert, "02:00:00:00:02:04", "certificate_unknown"),
        ] {
            for tls13 in [false, true] {
                let r = eapol_test(rig.auth, cert, tls13, mac).await;
                assert!(!r.success, "{reason} tls13={tls13}: {}", r.output);
                assert!(r.output.contains("Access-Reject"), "{}", r.output);
                // the supplicant's own verdict
                assert!(
                    r.output.contains("CTRL-EVENT-EAP-FAILURE"),
                    "{reason} tls13={tls13}: {}",
                    r.output
                );
                if !tls13 {
                    // TLS 1.2: refused inside the handshake, before our Finished; the
                    // supplicant hears why (issue 10)
                    let alert = match reason {
                        "device_revoked" | "device_lost" => "fatal:certificate revoked",
                        _ => "fatal:access denied",
                    };
                    assert!(
                        r.output
                            .contains(&format!("remote end reported an error):{alert}")),
                        "{reason}: {}",
                        r.output
                    );
                    assert!(!r.output.contains("DISCARD"), "{}", r.output);
                }
            }
            let rows = rig.decisions(mac).await;
            assert_eq!(rows.len(), 2, "{reason}");
            assert!(
                rows.iter()
                    .all(|r| r.reason == reason && r.outcome == "reject"),
                "{rows:?}"
            );
        }
        // the new certificate of the re-issued device works
        let r = eapol_test(rig.auth, &new_cert, true, "02:00:00:00:02:04").await;
        assert!(r.success, "{}", r.output);

        // a certificate from another CA: the handshake itself fails
        let other = tempfile::tempdir().expect("tempdir");
        let other_cfg = other.path().join("other.toml");
        let text = config_text(
            &format!("sqlite:{}/other.db", other.path().display()),
            other.path(),
            "",
        );
        std::fs::write(&other_cfg, text).expect("write");
        cli(&other_cfg, &["migrate"]);
        cli(&other_cfg, &["ca", "init"]);
        cli(
            &other_cfg,
            &["owner", "add", "x.other", "--name", "X", "--role", "staff"],
        );
        let printed = cli(
            &other_cfg,
            &[
                "device",
                "register",
                "--owner",
                "x.other",
                "--mac",
                "02:00:00:00:02:09",
                "--label",
                "x",
            ],
        );
        let id = printed
            .split_whitespace()
            .find_map(|w| uuid::Uuid::parse_str(w).ok())
            .unwrap_or_else(|| panic!("no id in {printed}"));
        let out = other.path().join("out");
        let printed = cli(
            &other_cfg,
            &[
                "device",
                "issue-cert",
                &id.to_string(),
                "--out",
                out.to_str().expect("utf-8"),
            ],
        );
        let foreign = Issued {
            p12: std::fs::read_dir(&out)
                .expect("out")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.extension().is_some_and(|x| x == "p12"))
                .expect("p12"),
            password: one_time_password(&printed),
            // the supplicant trusts our server; only its own certificate is foreign
            ca: rig.dir.path().join("pki/ca.pem"),
        };
        for tls13 in [false, true] {
            let r = eapol_test(rig.auth, &foreign, tls13, "02:00:00:00:02:09").await;
            assert!(!r.success, "{}", r.output);
        }
        let rows = rig.decisions("02:00:00:00:02:09").await;
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(
            rows.iter()
                .all(|r| r.reason == "tls_failed" && r.device_id.is_none()),
            "{rows:?}"
        );
        assert!(
            rows[0].message.contains("certificate"),
            "{}",
            rows[0].message
        );
        rig.stop().await;
    }
);

/// An Access-Request carrying EAP-Response/Identity, as an AP sends it first.
fn identity_request(
    id: u8,
    authenticator: [u8; 16],
    mac: &str,
    state: Option<&[u8]>,
    eap: &[u8],
) -> Vec<u8> {
    let mut b = Builder::with_message_authenticator(code::ACCESS_REQUEST, id);
    b.add_text(dict::USER_NAME, "bot").expect("fits");
    b.add_text(dict::CALLING_STATION_ID, mac).expect("fits");
    b.add_split(dict::EAP_MESSAGE, eap).expect("fits");
    if let Some(s) = state {
        b.add(dict::STATE, s).expect("fits");
    }
    let (mut buf, off) = b.into_unsigned();
    sign_request(&mut buf, off, &authenticator, SECRET.as_bytes());
    buf
}

both_stores!(
    abandoned_conversations_are_evicted_and_do_not_starve_others,
    |backend| async move {
        let mut rig = Rig::start(
            backend,
            "max_conversations = 50\nconversation_timeout = \"2s\"",
        )
        .await;
        seed(&rig.registry).await;
        let dev = device(
            &rig.registry,
            "s.staff",
            "02-00-00-00-03-01",
            Compliance::Compliant,
        )
        .await;
        let cert = rig.issue(dev);

        // 300 supplicants say who they are and never answer the TLS start
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let mut first_state = None;
        for i in 0..300u32 {
            let auth: [u8; 16] = rand::random();
            let eap = [2, 1, 0, 8, 1, b'b', b'o', b't'];
            sock.send_to(
                &identity_request((i % 256) as u8, auth, "02-00-00-00-09-09", None, &eap),
                rig.auth,
            )
            .await
            .expect("send");
            let mut buf = [0u8; 4096];
            let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
                .await
                .expect("a challenge")
                .expect("recv");
            let p = Packet::parse(&buf[..n]).expect("parses");
            assert_eq!(p.code(), code::ACCESS_CHALLENGE);
            assert!(check_response(&p, &auth, SECRET.as_bytes(), true));
            if first_state.is_none() {
                first_state = Some(p.attr(dict::STATE).expect("State").to_vec());
            }
        }
        let (open, evicted, _) = rig.eap.conversations();
        assert_eq!(open, 50);
        assert_eq!(evicted, 250);

        // a real supplicant still gets through
        let r = eapol_test(rig.auth, &cert, true, "02:00:00:00:03:01").await;
        assert!(r.success, "{}", r.output);

        // the first bot's conversation was evicted: its State is unknown, and the answer is
        // an Access-Reject with EAP-Failure (the supplicant starts over at once)
        let eap_tls_empty = [2, 0, 0, 6, 13, 0];
        let auth: [u8; 16] = rand::random();
        sock.send_to(
            &identity_request(
                1,
                auth,
                "02-00-00-00-09-09",
                first_state.as_deref(),
                &eap_tls_empty,
            ),
            rig.auth,
        )
        .await
        .expect("send");
        let mut buf = [0u8; 4096];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
            .await
            .expect("an answer to an evicted conversation")
            .expect("recv");
        let p = Packet::parse(&buf[..n]).expect("parses");
        assert_eq!(p.code(), code::ACCESS_REJECT);
        assert!(check_response(&p, &auth, SECRET.as_bytes(), true));
        assert_eq!(p.attr(dict::EAP_MESSAGE), Some(&[4u8, 0, 0, 4][..]));

        // the same State from another source address (another AP in the client's range) is
        // not answered: a State belongs to where it was sent
        let dropped = rig
            .stats
            .dropped_eap
            .load(std::sync::atomic::Ordering::Relaxed);
        let other = UdpSocket::bind("127.0.0.2:0")
            .await
            .expect("bind 127.0.0.2");
        let live_state = {
            let auth: [u8; 16] = rand::random();
            let eap = [2, 9, 0, 8, 1, b'b', b'o', b't'];
            sock.send_to(
                &identity_request(200, auth, "02-00-00-00-09-0a", None, &eap),
                rig.auth,
            )
            .await
            .expect("send");
            let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
                .await
                .expect("a challenge")
                .expect("recv");
            Packet::parse(&buf[..n])
                .expect("parses")
                .attr(dict::STATE)
                .expect("State")
                .to_vec()
        };
        let auth: [u8; 16] = rand::random();
        other
            .send_to(
                &identity_request(
                    2,
                    auth,
                    "02-00-00-00-09-0a",
                    Some(&live_state),
                    &[2, 10, 0, 6, 13, 0],
                ),
                rig.auth,
            )
            .await
            .expect("send");
        assert!(
            tokio::time::timeout(Duration::from_millis(500), other.recv_from(&mut buf))
                .await
                .is_err(),
            "no answer to a State from another address"
        );
        assert_eq!(
            rig.stats
                .dropped_eap
                .load(std::sync::atomic::Ordering::Relaxed),
            dropped + 1
        );

        // idle ones expire after conversation_timeout (swept every second)
        tokio::time::sleep(Duration::from_millis(3200)).await;
        assert_eq!(rig.eap.conversations().0, 0);
        rig.stop().await;
    }
);

both_stores!(
    fragments_both_ways_methods_and_the_message_authenticator,
    |backend| async move {
        // the server fragments at 200 bytes, the supplicant at 100
        let mut rig = Rig::start(backend, "fragment_size = 200").await;
        seed(&rig.registry).await;
        let dev = device(
            &rig.registry,
            "s.staff",
            "02-00-00-00-04-01",
            Compliance::Compliant,
        )
        .await;
        let cert = rig.issue(dev);
        let challenges = rig
            .stats
            .challenges
            .load(std::sync::atomic::Ordering::Relaxed);
        for tls13 in [false, true] {
            let r = eapol_run(
                rig.auth,
                &eapol_conf(&cert, tls13, "  fragment_size=100"),
                "02:00:00:00:04:01",
            )
            .await;
            assert!(r.success, "{}", r.output);
            assert!(r.mppe_ok, "{}", r.output);
            assert_eq!(r.vlan.as_deref(), Some("100"));
            // fragments went both ways: ours with L and M (0xc0), then M (0x40); the
            // supplicant's at 100 bytes, each acknowledged by an empty request (0x00)
            assert!(r.output.contains("- Flags 0xc0"), "{}", r.output);
            assert!(r.output.contains("- Flags 0x40"), "{}", r.output);
            assert!(
                r.output
                    .contains("SSL: sending 100 bytes, more fragments will follow"),
                "{}",
                r.output
            );
        }
        let rounds = rig
            .stats
            .challenges
            .load(std::sync::atomic::Ordering::Relaxed)
            - challenges;
        assert!(
            rounds >= 20,
            "{rounds} challenges: the flights were not fragmented"
        );

        // a supplicant that only speaks PEAP is refused with EAP-Failure and the reason
        let peap = "network={\n  key_mgmt=WPA-EAP\n  eap=PEAP\n  identity=\"j.user\"\n  \
                    password=\"secret\"\n  phase2=\"auth=MSCHAPV2\"\n}\n";
        let r = eapol_run(rig.auth, peap, "02:00:00:00:04:02").await;
        assert!(!r.success, "{}", r.output);
        assert!(r.output.contains("Access-Reject"), "{}", r.output);
        let rows = rig.decisions("02:00:00:00:04:02").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].reason, "eap_method_refused");
        assert_eq!(rows[0].method, "eap-tls");

        // EAP without a Message-Authenticator (RFC 3579 §3.2) is dropped and counted, never answered
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let mut b = Builder::new(code::ACCESS_REQUEST, 5);
        b.add_text(dict::USER_NAME, "bot").expect("fits");
        b.add(dict::EAP_MESSAGE, &[2, 5, 0, 8, 1, b'b', b'o', b't'])
            .expect("fits");
        let (mut buf, _) = b.into_unsigned();
        buf[4..20].copy_from_slice(&rand::random::<[u8; 16]>());
        let before = rig
            .stats
            .dropped_missing_message_authenticator
            .load(std::sync::atomic::Ordering::Relaxed);
        sock.send_to(&buf, rig.auth).await.expect("send");
        let mut reply = [0u8; 4096];
        assert!(
            tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut reply))
                .await
                .is_err()
        );
        assert_eq!(
            rig.stats
                .dropped_missing_message_authenticator
                .load(std::sync::atomic::Ordering::Relaxed),
            before + 1
        );

        // a retransmitted Access-Request gets the identical challenge, and TLS does not advance
        let auth: [u8; 16] = rand::random();
        let request = identity_request(
            9,
            auth,
            "02-00-00-00-04-03",
            None,
            &[2, 9, 0, 8, 1, b'b', b'o', b't'],
        );
        let mut replies = Vec::new();
        for _ in 0..2 {
            sock.send_to(&request, rig.auth).await.expect("send");
            let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut reply))
                .await
                .expect("a challenge")
                .expect("recv");
            replies.push(reply[..n].to_vec());
        }
        assert_eq!(replies[0], replies[1]);
        let p = Packet::parse(&replies[0]).expect("parses");
        assert_eq!(p.code(), code::ACCESS_CHALLENGE);
        // the first request's identifier is the response's plus one (RFC 3748 §4.1)
        assert_eq!(
            p.attr(dict::EAP_MESSAGE).map(|m| (m[0], m[1])),
            Some((1, 10))
        );
        rig.stop().await;
    }
);

both_stores!(
    an_unknown_state_with_an_identity_starts_over_and_the_server_keeps_answering,
    |backend| async move {
        // the packet of issue 10: an EAP-Response/Identity with a State this server never
        // sent (an AP re-sending a forgotten State does the same); it once deadlocked the
        // conversation table and silenced every listener
        let mut rig = Rig::start(backend, "").await;
        seed(&rig.registry).await;
        let dev = device(
            &rig.registry,
            "s.staff",
            "02-00-00-00-0a-01",
            Compliance::Compliant,
        )
        .await;
        let cert = rig.issue(dev);
        let packet = "User-Name = \"host/x\"\nEAP-Message = 0x0201000b01686f73742f78\n\
                      State = 0x00112233445566778899aabbccddeeff\nMessage-Authenticator = 0x00\n";
        for round in 0..3 {
            let r = support::radclient(rig.auth, "auth", SECRET, packet).await;
            assert_eq!(
                r.code.as_deref(),
                Some("Access-Challenge"),
                "round {round}: a new conversation begins\n{}",
                r.output
            );
            assert!(r.attr("State").is_some(), "{}", r.output);
        }
        // MAB and EAP still answered
        let r = support::radclient(
            rig.auth,
            "auth",
            SECRET,
            "User-Name = \"020000000a99\"\nUser-Password = \"020000000a99\"\n\
             Calling-Station-Id = \"02-00-00-00-0A-99\"\nMessage-Authenticator = 0x00\n",
        )
        .await;
        assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
        let r = eapol_test(rig.auth, &cert, false, "02:00:00:00:0a:01").await;
        assert!(r.success, "{}", r.output);
        // and the server stops when told
        let stopped = tokio::time::timeout(Duration::from_secs(15), rig.stop()).await;
        assert!(stopped.is_ok(), "the server did not stop");
    }
);
