//! Logs and metrics for a security operations centre, with the real binary: `serve` under
//! `log.format = "json"` (on PostgreSQL) and `"journald"`, radclient as the access point, curl
//! as Prometheus, a UDP socket as the access point's dynamic-authorization port, the Grafana
//! dashboard against a real scrape, and the CLI's times shown in one zone.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use poortwachter::coa::packet::DISCONNECT_ACK;
use poortwachter::radius::crypto::sign_response;
use poortwachter::radius::dict::code;
use poortwachter::radius::{Builder, Packet};
use poortwachter::registry::{Registry, Rules};
use serde_json::Value;
use support::serving::{free_tcp_port, free_udp_port};
use support::{Backend, TestDb};
use tokio::net::UdpSocket;

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");
const SECRET: &str = "soc-test-secret-0123456789";
const CLIENT: &str = "ap-stadhuis";

/// Metrics the dashboard queries that a scrape of this test's server may lack: none. (Kept as
/// a list so that a metric added to the dashboard before its code is named here, not skipped.)
const PENDING: &[&str] = &[];

struct Ports {
    auth: u16,
    acct: u16,
    api: u16,
    coa: u16,
}

fn config_text(url: &str, dir: &Path, ports: &Ports, format: &str) -> String {
    let d = dir.display();
    format!(
        r#"
[database]
url = "{url}"

[radius]
auth_listen = "127.0.0.1:{auth}"
acct_listen = "127.0.0.1:{acct}"

[[radius.clients]]
name = "{CLIENT}"
network = "127.0.0.1/32"
secret = "{SECRET}"
coa_port = {coa}

[vlans]
workspace = 100
guest = 200
quarantine = 666

[policy]
timezone = "Asia/Tokyo"
compliance_max_age = "30d"
session_timeout = "8h"

[log]
level = "info,sqlx=warn"
format = "{format}"
decision_coalesce = "0s"

[api]
listen = "127.0.0.1:{api}"

[pki]
ca_cert = "{d}/pki/ca.pem"
ca_key = "{d}/pki/ca.key"

[eap]
server_cert = "{d}/pki/server.pem"
server_key = "{d}/pki/server.key"
server_name = "radius.poortwachter.test"

[wifi]
ssid = "Werkplek"

[cache]
poll_interval = "100ms"

[node]
state_dir = "{d}/state"

[coa]
timeout = "200ms"
retries = 2
check_interval = "1s"
"#,
        auth = ports.auth,
        acct = ports.acct,
        api = ports.api,
        coa = ports.coa,
    )
}

/// Our CLI with `config`; its stdout, or a panic with its output.
fn cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["--actor", "ict.soc"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("POORTWACHTER_CONFIG")
        .output()
        .expect("run poortwachter");
    assert!(
        out.status.success(),
        "poortwachter {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `serve` with its stdout and stderr in files (read after it stopped).
struct Serve {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Serve {
    async fn start(config: &Path, dir: &Path, auth: u16) -> Serve {
        let out = dir.join("serve.stdout");
        let err = dir.join("serve.stderr");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env_remove("RUST_LOG")
            .env_remove("POORTWACHTER_CONFIG")
            .stdout(Stdio::from(
                std::fs::File::create(&out).expect("stdout file"),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(&err).expect("stderr file"),
            ))
            .spawn()
            .expect("start serve");
        let mut serve = Serve { child, out, err };
        // ready when Status-Server is answered
        let to: SocketAddr = ([127, 0, 0, 1], auth).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r =
                support::radclient(to, "status", SECRET, "Message-Authenticator = 0x00\n").await;
            if r.code.as_deref() == Some("Access-Accept") {
                break;
            }
            if let Some(status) = serve.child.try_wait().expect("wait") {
                panic!(
                    "serve ended ({status}): {}",
                    std::fs::read_to_string(&serve.err).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "serve never answered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        serve
    }

    /// SIGTERM (by PID), then its stdout and stderr.
    async fn stop(mut self) -> (String, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(40);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "serve did not stop");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let out = std::fs::read_to_string(&self.out).expect("stdout");
        let err = std::fs::read_to_string(&self.err).expect("stderr");
        assert!(status.success(), "{err}");
        (out, err)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // a failed assertion must not leave our server running
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn mab(mac: &str) -> String {
    format!(
        "User-Name = \"{mac}\"\nUser-Password = \"{mac}\"\nCalling-Station-Id = \"{}\"\n\
         Called-Station-Id = \"00-11-22-33-44-55:Gemeente-Werkplek\"\nNAS-IP-Address = 127.0.0.1\n\
         NAS-Identifier = \"ap-3e-verdieping\"\nMessage-Authenticator = 0x00\n",
        mac.to_uppercase()
    )
}

/// `curl` as Prometheus: the status and body of a GET with a bearer token.
async fn get(api: u16, token: &str, path: &str) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{api}/api/v1{path}"))
        .output()
        .await
        .expect("curl (Debian curl; scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').expect("a status line");
    (status.trim().parse().expect("a status"), body.to_string())
}

/// The value of the sample `series` (`name{labels}` exactly as rendered) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<u64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The metric names a scrape declares (`# TYPE name kind`).
fn declared(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every metric name the dashboard's queries use.
fn dashboard_metrics() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana-dashboard.json");
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("JSON");
    // an importable Grafana model: a title, a uid, panels, a Prometheus datasource variable
    assert!(dash["title"].is_string() && dash["uid"].is_string());
    assert!(dash["schemaVersion"].as_u64().is_some_and(|v| v >= 30));
    let vars = dash["templating"]["list"].as_array().expect("variables");
    assert!(vars
        .iter()
        .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"));
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            exprs.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    for v in vars {
        if let Some(q) = v["query"]["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    let mut names = BTreeSet::new();
    for e in exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("poortwachter_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names
}

/// Waits until the NAS socket gets a datagram; answers a Disconnect-Request with an ACK.
async fn ack_disconnect(nas: &UdpSocket) {
    let mut buf = vec![0u8; 4096];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), nas.recv_from(&mut buf))
        .await
        .expect("a Disconnect-Request within 5 s")
        .expect("receive");
    let p = Packet::parse(&buf[..n]).expect("parses");
    assert_eq!(p.code(), code::DISCONNECT_REQUEST);
    let (mut reply, off) =
        Builder::with_message_authenticator(DISCONNECT_ACK, p.identifier()).into_unsigned();
    sign_response(&mut reply, off, &p.authenticator(), SECRET.as_bytes());
    nas.send_to(&reply, from).await.expect("answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_decisions_metrics_dashboard_and_one_time_zone() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("temp");
    let nas = UdpSocket::bind("127.0.0.1:0").await.expect("NAS socket");
    let ports = Ports {
        auth: free_udp_port(),
        acct: free_udp_port(),
        api: free_tcp_port(),
        coa: nas.local_addr().expect("addr").port(),
    };
    let config = dir.path().join("poortwachter.toml");
    std::fs::write(&config, config_text(&db.url, dir.path(), &ports, "json")).expect("config");
    cli(&config, &["ca", "init"]);
    let registry = Registry::connect(
        &db.url,
        2,
        Rules {
            max_devices_per_owner: 5,
            timezone: chrono_tz::Tz::Asia__Tokyo,
        },
    )
    .await
    .expect("connect");
    registry.migrate().await.expect("migrate");
    let known = "3c-22-fb-00-00-01";
    support::seed(&registry, "j.devries", known).await;
    let created = cli(
        &config,
        &[
            "--json",
            "token",
            "create",
            "--name",
            "grafana-soc",
            "--scope",
            "helpdesk",
        ],
    );
    let token: Value = serde_json::from_str(&created).expect("token JSON");
    let token = token["token"].as_str().expect("the token").to_string();

    let serve = Serve::start(&config, dir.path(), ports.auth).await;
    let auth: SocketAddr = ([127, 0, 0, 1], ports.auth).into();
    let acct: SocketAddr = ([127, 0, 0, 1], ports.acct).into();
    let accept = support::radclient(auth, "auth", SECRET, &mab(known)).await;
    assert_eq!(accept.code.as_deref(), Some("Access-Accept"), "{accept:?}");
    // an unregistered device tries three times: three rejects, one log line (a line per
    // MAC per minute)
    let unknown = "02-00-00-5e-00-99";
    for _ in 0..3 {
        let r = support::radclient(auth, "auth", SECRET, &mab(unknown)).await;
        assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{r:?}");
    }
    // the device connects: an accounting Start with the Class, so that a revoke kicks it
    let class = accept.attr("Class").expect("a Class").to_string();
    let start = format!(
        "Acct-Status-Type = Start\nAcct-Session-Id = \"soc-1\"\nUser-Name = \"{known}\"\n\
         Calling-Station-Id = \"{}\"\nNAS-IP-Address = 127.0.0.1\nClass = {class}\n",
        known.to_uppercase()
    );
    let r = support::radclient(acct, "acct", SECRET, &start).await;
    assert_eq!(r.code.as_deref(), Some("Accounting-Response"), "{r:?}");

    // per client and reason, with the right counts
    let (status, scrape) = get(ports.api, &token, "/metrics").await;
    assert_eq!(status, 200, "{scrape}");
    let series = |decision: &str, reason: &str| {
        format!(
            "poortwachter_decisions_total{{client=\"{CLIENT}\",decision=\"{decision}\",reason=\"{reason}\"}}"
        )
    };
    assert_eq!(
        sample(&scrape, &series("accept", "compliant")),
        Some(1),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, &series("reject", "unknown_device")),
        Some(3),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, &series("reject", "device_revoked")),
        Some(0),
        "{scrape}"
    );
    let disconnect_ack = "poortwachter_coa_requests_total{kind=\"disconnect\",result=\"ack\"}";
    assert_eq!(sample(&scrape, disconnect_ack), Some(0), "{scrape}");
    assert!(
        !scrape.contains("3c:22:fb") && !scrape.contains(unknown),
        "never a MAC"
    );

    // every metric the dashboard queries is in the scrape (or pending on another branch)
    let have = declared(&scrape);
    let missing: Vec<_> = dashboard_metrics()
        .into_iter()
        .filter(|m| !have.contains(m) && !PENDING.contains(&m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, not in:\n{scrape}"
    );

    // a revoke: the enforcer's Disconnect-Request, ACKed by the access point, is counted
    cli(
        &config,
        &["device", "revoke", known, "--reason", "gestolen"],
    );
    ack_disconnect(&nas).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let scrape = loop {
        let (_, scrape) = get(ports.api, &token, "/metrics").await;
        if sample(&scrape, disconnect_ack) == Some(1) || Instant::now() > deadline {
            break scrape;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sample(&scrape, disconnect_ack), Some(1), "{scrape}");
    // the registry change reaches the request path within a second too
    let deadline = Instant::now() + Duration::from_secs(2);
    let r = loop {
        let r = support::radclient(auth, "auth", SECRET, &mab(known)).await;
        if r.code.as_deref() == Some("Access-Reject") || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{r:?}");
    let (status, _) = get(ports.api, "pw_not-a-token", "/metrics").await;
    assert_eq!(status, 401);

    let (stdout, stderr) = serve.stop().await;
    let lines: Vec<Value> = format!("{stdout}{stderr}")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for l in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(l[key].is_string(), "no {key}: {l}");
        }
        let ts = l["timestamp"].as_str().unwrap_or_default();
        assert!(
            ts.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
            "{ts}"
        );
    }
    let decisions: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "poortwachter::decision" && l["level"] == "INFO")
        .collect();
    let accepted = decisions
        .iter()
        .find(|l| l["decision"] == "accept")
        .unwrap_or_else(|| panic!("no accept line: {decisions:?}"));
    for (key, want) in [
        ("client", Value::from(CLIENT)),
        ("nas_ip", "127.0.0.1".into()),
        ("nas_identifier", "ap-3e-verdieping".into()),
        (
            "called_station",
            "00-11-22-33-44-55:Gemeente-Werkplek".into(),
        ),
        ("ssid", "Gemeente-Werkplek".into()),
        ("mac", "3c:22:fb:00:00:01".into()),
        ("owner", "j.devries".into()),
        ("method", "mab".into()),
        ("reason", "compliant".into()),
        ("vlan", 100.into()),
        ("vlan_name", "workspace".into()),
        ("degraded", false.into()),
    ] {
        assert_eq!(accepted[key], want, "{key} in {accepted}");
    }
    assert!(accepted["username"].is_string(), "{accepted}");
    let unknown_lines: Vec<_> = decisions
        .iter()
        .filter(|l| l["mac"] == "02:00:00:5e:00:99")
        .collect();
    assert_eq!(
        unknown_lines.len(),
        1,
        "one line per MAC per minute: {unknown_lines:?}"
    );
    assert_eq!(unknown_lines[0]["decision"], "reject");
    assert_eq!(unknown_lines[0]["reason"], "unknown_device");
    assert!(decisions
        .iter()
        .any(|l| l["decision"] == "reject" && l["reason"] == "device_revoked"));
    // API requests: client address, method, path, status, the token's name
    let api: Vec<_> = lines
        .iter()
        .filter(|l| l["span"] == "api" && l["path"] == "/api/v1/metrics")
        .collect();
    assert!(
        api.iter().any(|l| l["status"] == 200
            && l["method"] == "GET"
            && l["token"] == "grafana-soc"
            && l["client_addr"]
                .as_str()
                .is_some_and(|a| a.starts_with("127.0.0.1:"))),
        "{api:?}"
    );
    assert!(api.iter().any(|l| l["status"] == 401), "{api:?}");
    // secrets never in the log
    let all = format!("{stdout}{stderr}");
    assert!(!all.contains(SECRET) && !all.contains(&token));

    // one time zone rule: local time of policy.timezone with the zone, in every command
    for args in [
        &["why", known][..],
        &["sessions"][..],
        &["device", "show", known][..],
        &["audit"][..],
    ] {
        let out = cli(&config, args);
        let stamped: Vec<&str> = out
            .lines()
            .filter(|l| {
                l.contains(&chrono::Utc::now().format("%Y-").to_string()) || l.contains(" JST")
            })
            .collect();
        assert!(!stamped.is_empty(), "{args:?}: {out}");
        assert!(
            stamped.iter().all(|l| l.contains(" JST")),
            "{args:?} shows a time without its zone:\n{out}"
        );
        assert!(!out.contains(" UTC"), "{args:?}: {out}");
    }
    // JSON output: RFC 3339 in UTC
    let audit: Value = serde_json::from_str(&cli(&config, &["--json", "audit"])).expect("JSON");
    let at = audit[0]["at"].as_str().expect("at");
    assert!(
        at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(at).is_ok(),
        "{at}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journald_lines_carry_a_priority_and_no_timestamp() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("temp");
    let ports = Ports {
        auth: free_udp_port(),
        acct: free_udp_port(),
        api: free_tcp_port(),
        coa: 3799,
    };
    let config = dir.path().join("poortwachter.toml");
    std::fs::write(
        &config,
        config_text(&db.url, dir.path(), &ports, "journald"),
    )
    .expect("config");
    cli(&config, &["ca", "init"]);
    let serve = Serve::start(&config, dir.path(), ports.auth).await;
    let auth: SocketAddr = ([127, 0, 0, 1], ports.auth).into();
    let r = support::radclient(auth, "auth", SECRET, &mab("02-00-00-5e-00-42")).await;
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{r:?}");
    // a wrong secret: dropped, and no line leaks either secret
    let r = support::radclient(
        auth,
        "auth",
        "wrong-secret-0123456789",
        &mab("02-00-00-5e-00-43"),
    )
    .await;
    assert_eq!(r.code, None, "{r:?}");
    let (stdout, stderr) = serve.stop().await;
    let all = format!("{stdout}{stderr}");
    assert!(!all.is_empty());
    for line in all.lines() {
        let prio = line
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .map(|(p, _)| p);
        assert!(
            matches!(prio, Some("3" | "4" | "6" | "7")),
            "no sd-daemon priority: {line}"
        );
        assert!(!line.contains('\u{1b}'), "colours: {line}");
        // journald adds the time: none of ours
        assert!(
            !line.contains(&chrono::Utc::now().format("%Y-%m-%dT").to_string()),
            "{line}"
        );
    }
    let decision = all
        .lines()
        .find(|l| l.contains("poortwachter::decision"))
        .unwrap_or_else(|| panic!("no decision line:\n{all}"));
    assert!(decision.starts_with("<6>"), "{decision}");
    assert!(
        decision.contains("mac=\"02:00:00:5e:00:42\"")
            || decision.contains("mac=02:00:00:5e:00:42"),
        "{decision}"
    );
    assert!(
        decision.contains("reason=\"unknown_device\"")
            || decision.contains("reason=unknown_device"),
        "{decision}"
    );
    assert!(!all.contains(SECRET) && !all.contains("wrong-secret-0123456789"));
}
