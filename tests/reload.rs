//! Reload without restart, secrets by name, secret rotation and misconfigured access points,
//! against the real `poortwachter serve` process: radclient and eapol_test as the access
//! point, `kill -HUP` as systemd's `ExecReload` sends it, the server's own log read back.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::nas::FakeNas;
use support::serving::{free_tcp_port, free_udp_port};
use support::{radclient, Backend, Reply, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");

const SECRET_A: &str = "campus-secret-0123456789";
const SECRET_B: &str = "ap-b-secret-9876543210";
const NEXT: &str = "campus-next-secret-24680";
const WRONG: &str = "wrong-secret-1357913579";

fn mab(mac: &str) -> String {
    format!(
        "User-Name = \"{mac}\"\nUser-Password = \"{mac}\"\nCalling-Station-Id = \"{mac}\"\n\
         Called-Station-Id = \"00-11-22-33-44-55:Werkplek\"\nMessage-Authenticator = 0x00\n"
    )
}

/// A config with `clients` (TOML `[[radius.clients]]` entries) and `extra` sections.
fn config_text(url: &str, dir: &Path, auth: u16, acct: u16, clients: &str, extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"
[database]
url = "{url}"

[radius]
auth_listen = "127.0.0.1:{auth}"
acct_listen = "127.0.0.1:{acct}"

{clients}

[vlans]
workspace = 100
guest = 200
quarantine = 666

[log]
decision_coalesce = "0s"

[node]
state_dir = "{d}/state"

[pki]
ca_cert = "{d}/pki/ca.pem"
ca_key = "{d}/pki/ca.key"

[eap]
server_cert = "{d}/pki/server.pem"
server_key = "{d}/pki/server.key"
server_name = "radius.poortwachter.test"

[wifi]
ssid = "Werkplek"
{extra}
"#
    )
}

fn client(name: &str, network: &str, secret_lines: &str) -> String {
    format!("[[radius.clients]]\nname = \"{name}\"\nnetwork = \"{network}\"\n{secret_lines}\n")
}

/// Runs the CLI once with `config`; its output, or a panic with it.
fn cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["--actor", "ict.test"])
        .args(args)
        .env_remove("RUST_LOG")
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

/// Runs the CLI once with `--json` and `config`; what it printed on stdout, parsed.
fn cli_json(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["--actor", "ict.test", "--json"])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run poortwachter");
    assert!(
        out.status.success(),
        "poortwachter {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// A running `poortwachter serve`, its log in a file; stopped by its PID when dropped.
struct Node {
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    child: Child,
    auth: SocketAddr,
    url: String,
    ports: (u16, u16),
}

impl Node {
    /// Writes the config and starts `serve`; waits (up to 15 s) for the listeners.
    fn start(url: &str, clients: &str, extra: &str, env: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let (auth, acct) = (free_udp_port(), free_udp_port());
        let config = dir.path().join("poortwachter.toml");
        std::fs::write(
            &config,
            config_text(url, dir.path(), auth, acct, clients, extra),
        )
        .expect("write config");
        cli(&config, &["migrate"]);
        Self::spawn(dir, config, url, (auth, acct), env)
    }

    fn spawn(
        dir: tempfile::TempDir,
        config: PathBuf,
        url: &str,
        (auth, acct): (u16, u16),
        env: &[(&str, &str)],
    ) -> Node {
        let log = dir.path().join("serve.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start serve");
        let node = Node {
            dir,
            config,
            log,
            child,
            auth: SocketAddr::from(([127, 0, 0, 1], auth)),
            url: url.to_string(),
            ports: (auth, acct),
        };
        node.wait_log("RADIUS server listening", 1);
        node
    }

    fn text(&self, clients: &str, extra: &str) -> String {
        config_text(
            &self.url,
            self.dir.path(),
            self.ports.0,
            self.ports.1,
            clients,
            extra,
        )
    }

    fn rewrite(&self, clients: &str, extra: &str) {
        std::fs::write(&self.config, self.text(clients, extra)).expect("rewrite config");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 15 s) until `needle` is in the log `n` times; the log.
    fn wait_log(&self, needle: &str, n: usize) -> String {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.log_text();
            if text.matches(needle).count() >= n {
                return text;
            }
            assert!(
                Instant::now() < until,
                "`{needle}` not logged {n} time(s) within 15 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -HUP <pid>`, as `systemctl reload` does (ExecReload).
    fn hup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Still the same process.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(40);
        while Instant::now() < until {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

/// radclient's verdict on a MAB request with `secret`.
async fn mab_with(node: &Node, secret: &str, mac: &str) -> Reply {
    radclient(node.auth, "auth", secret, &mab(mac)).await
}

/// Asks again (up to 10 s) until the server answers with `secret`.
async fn answered_within(node: &Node, secret: &str, mac: &str) -> Reply {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let r = mab_with(node, secret, mac).await;
        if r.code.is_some() || Instant::now() > until {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_a_client_refuses_a_bad_config_and_keeps_the_process() {
    let db = TestDb::new(Backend::Sqlite).await;
    let a = client("campus", "127.0.0.0/8", &format!("secret = \"{SECRET_A}\""));
    let mut node = Node::start(&db.url, &a, "", &[]);
    let pid = node.child.id();
    let mac = "02:00:00:00:0b:01";

    // client A answers (an unknown device: the peer hears Access-Reject); B's secret does not
    let r = answered_within(&node, SECRET_A, mac).await;
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    let r = mab_with(&node, SECRET_B, mac).await;
    assert_eq!(r.code, None, "{}", r.output);
    // dropped, and a warning names the source and the client
    let wrong = "does not verify with the client's shared secret";
    let log = node.wait_log(wrong, 1);
    let line = log
        .lines()
        .find(|l| l.contains(wrong))
        .expect("the warning");
    assert!(
        line.contains("WARN") && line.contains("src=127.0.0.1") && line.contains("client=campus"),
        "{line}"
    );

    // add client B (the more specific network for our loopback source) and reload
    let b = client("ap-b", "127.0.0.1/32", &format!("secret = \"{SECRET_B}\""));
    node.rewrite(&format!("{a}\n{b}"), "");
    node.hup();
    let log = node.wait_log("configuration reloaded", 1);
    assert!(log.contains("clients added: ap-b"), "{log}");
    assert!(!log.contains(SECRET_B), "a secret in the log:\n{log}");
    // the CoA sender takes the new client too: nothing needs a restart
    assert!(!log.contains("needs a restart"), "{log}");
    let r = answered_within(&node, SECRET_B, mac).await;
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert!(node.alive(), "serve ended");
    assert_eq!(node.child.id(), pid);

    // A's secret from B's address now: dropped; the same source within the minute adds no
    // line (rate-limited)
    for _ in 0..2 {
        let r = mab_with(&node, SECRET_A, mac).await;
        assert_eq!(r.code, None, "{}", r.output);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.log_text().matches(wrong).count(), 1);

    // a bad config: refused with the key named, the old one still serves
    node.rewrite(
        &format!("{a}\n{b}").replace("127.0.0.1/32", "127.0.0.1/33"),
        "",
    );
    node.hup();
    let log = node.wait_log("configuration reload REFUSED", 1);
    let line = log
        .lines()
        .find(|l| l.contains("configuration reload REFUSED"))
        .expect("the error");
    assert!(line.contains("ERROR"), "{line}");
    assert!(log.contains("radius.clients[1].network"), "{log}");
    let r = mab_with(&node, SECRET_B, mac).await;
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);

    // what needs a restart is named and not applied: the listener stays where it was
    let text = node
        .text(&format!("{a}\n{b}"), "")
        .replace(&format!("127.0.0.1:{}", node.ports.0), "127.0.0.1:1");
    std::fs::write(&node.config, text).unwrap();
    node.hup();
    let log = node.wait_log("radius.auth_listen", 1);
    assert!(
        log.lines()
            .any(|l| l.contains("needs a restart") && l.contains("radius.auth_listen")),
        "{log}"
    );
    let r = mab_with(&node, SECRET_B, mac).await;
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert!(node.alive());
    assert_eq!(node.child.id(), pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_rotation_by_file_with_counters_per_secret() {
    let db = TestDb::new(Backend::Postgres).await;
    let secrets = tempfile::tempdir().unwrap();
    let primary = secrets.path().join("campus");
    std::fs::write(&primary, format!("{SECRET_A}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&primary, std::fs::Permissions::from_mode(0o600)).unwrap();
    let api = free_tcp_port();
    let c = client(
        "campus",
        "127.0.0.0/8",
        &format!(
            "secret_file = \"{}\"\nsecret_next = \"{NEXT}\"",
            primary.display()
        ),
    );
    let node = Node::start(
        &db.url,
        &c,
        &format!("[api]\nlisten = \"127.0.0.1:{api}\""),
        &[],
    );
    let mac = "02:00:00:00:0b:02";
    // the primary (from the file, newline trimmed) and the secondary are both answered, and
    // radclient verifies each reply with the secret it sent: signed with the one that verified
    let r = answered_within(&node, SECRET_A, mac).await;
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    for _ in 0..2 {
        let r = mab_with(&node, NEXT, mac).await;
        assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    }
    // a wrong one: not answered, a warning naming the source and the client
    let r = mab_with(&node, WRONG, mac).await;
    assert_eq!(r.code, None, "{}", r.output);
    let log = node.wait_log("does not verify with the client's shared secret", 1);
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("src=127.0.0.1")
            && l.contains("client=campus")),
        "{log}"
    );
    assert!(!log.contains(SECRET_A) && !log.contains(NEXT), "{log}");

    // the counters per secret, in the metrics
    let token = cli_json(
        &node.config,
        &[
            "token",
            "create",
            "--name",
            "monitoring",
            "--scope",
            "helpdesk",
        ],
    );
    let token = token["token"].as_str().expect("token").to_string();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("http://127.0.0.1:{api}/api/v1/metrics"),
        ])
        .output()
        .expect("curl");
    let metrics = String::from_utf8_lossy(&out.stdout);
    assert!(
        metrics.contains(
            "poortwachter_radius_client_secret_used_total{client=\"campus\",secret=\"primary\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "poortwachter_radius_client_secret_used_total{client=\"campus\",secret=\"secondary\"} 2"
        ),
        "{metrics}"
    );

    // the rotation ends: the new secret becomes the primary (in the file), reloaded
    std::fs::write(&primary, format!("{NEXT}\n")).unwrap();
    std::fs::write(
        &node.config,
        node.text(
            &client(
                "campus",
                "127.0.0.0/8",
                &format!("secret_file = \"{}\"", primary.display()),
            ),
            &format!("[api]\nlisten = \"127.0.0.1:{api}\""),
        ),
    )
    .unwrap();
    node.hup();
    let log = node.wait_log("configuration reloaded", 1);
    assert!(log.contains("changed: campus"), "{log}");
    let r = answered_within(&node, NEXT, mac).await;
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    let r = mab_with(&node, SECRET_A, mac).await;
    assert_eq!(
        r.code, None,
        "the retired secret is still answered: {}",
        r.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_by_name_from_the_environment() {
    let db = TestDb::new(Backend::Sqlite).await;
    // the file's placeholder is replaced by the variable named after the client
    let c = client(
        "wlc-stadhuis",
        "127.0.0.0/8",
        "secret = \"replace-with-a-long-random-secret-1\"",
    );
    let node = Node::start(
        &db.url,
        &c,
        "",
        &[("POORTWACHTER_CLIENT_SECRET_WLC_STADHUIS", SECRET_B)],
    );
    let mac = "02:00:00:00:0b:03";
    let r = answered_within(&node, SECRET_B, mac).await;
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    let r = mab_with(&node, "replace-with-a-long-random-secret-1", mac).await;
    assert_eq!(r.code, None, "{}", r.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_refuses_an_index_override_that_moved_and_reports_production_checks() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let clients = format!(
        "{}\n{}",
        client(
            "nieuw-gebouw",
            "10.30.0.0/16",
            "secret = \"replace-with-a-long-random-secret-2\""
        ),
        client(
            "wlan-controllers",
            "10.10.0.0/24",
            &format!("secret = \"{SECRET_A}\"")
        ),
    );
    let config = dir.path().join("poortwachter.toml");
    std::fs::write(
        &config,
        config_text(&db.url, dir.path(), 18120, 18130, &clients, ""),
    )
    .unwrap();
    cli(&config, &["migrate"]);
    let run = |env: &[(&str, &str)], json: bool| {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(&config);
        if json {
            cmd.arg("--json");
        }
        cmd.arg("check-config")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    // the override was written when wlan-controllers was entry 0; an entry was added above it
    let out = run(
        &[
            ("POORTWACHTER_RADIUS__CLIENTS__0__SECRET", SECRET_B),
            ("POORTWACHTER_RADIUS__CLIENTS__0__NAME", "wlan-controllers"),
        ],
        false,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("POORTWACHTER_RADIUS__CLIENTS__0__NAME"),
        "{err}"
    );
    assert!(
        err.contains("POORTWACHTER_CLIENT_SECRET_WLAN_CONTROLLERS"),
        "{err}"
    );
    assert!(!err.contains(SECRET_B), "{err}");
    // without the name: refused, naming the variable and the by-name way
    let out = run(
        &[("POORTWACHTER_RADIUS__CLIENTS__0__SECRET", SECRET_B)],
        false,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("POORTWACHTER_RADIUS__CLIENTS__0__SECRET"),
        "{err}"
    );
    assert!(
        err.contains("POORTWACHTER_CLIENT_SECRET_NIEUW_GEBOUW"),
        "{err}"
    );

    // the by-name variable instead: accepted; the report names sources, the placeholder left,
    // the database's schema
    let out = run(
        &[("POORTWACHTER_CLIENT_SECRET_WLAN_CONTROLLERS", SECRET_B)],
        false,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("client wlan-controllers: from the environment POORTWACHTER_CLIENT_SECRET_WLAN_CONTROLLERS"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("WARNING") && l.contains("client nieuw-gebouw")),
        "{text}"
    );
    assert!(text.contains("up to date"), "{text}");
    assert!(
        !text.contains(SECRET_B) && !text.contains("random-secret-2"),
        "{text}"
    );
    let out = run(&[], true);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let checks = v["checks"].as_array().expect("checks");
    let db_check = checks
        .iter()
        .find(|c| c["area"] == "database")
        .expect("a database check");
    assert_eq!(db_check["level"], "ok", "{db_check}");
    assert!(checks.iter().any(|c| c["area"] == "eap"), "{v}");

    // a database that does not answer: a warning, within the short timeout
    let started = Instant::now();
    let out = run(
        &[(
            "POORTWACHTER_DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/none?connect_timeout=1",
        )],
        false,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        text.lines()
            .any(|l| l.contains("database") && l.contains("UNREACHABLE")),
        "{text}"
    );

    // an API certificate the service user cannot read: an error naming the file
    let cert = dir.path().join("api.pem");
    let key = dir.path().join("api.key");
    std::fs::write(&key, "not read").unwrap();
    let out = run(
        &[
            ("POORTWACHTER_API__LISTEN", "127.0.0.1:8443"),
            ("POORTWACHTER_API__TLS_CERT", cert.to_str().unwrap()),
            ("POORTWACHTER_API__TLS_KEY", key.to_str().unwrap()),
        ],
        false,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("ERROR") && l.contains("api.pem")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eap_tls_conversation_goes_on_across_reloads() {
    let db = TestDb::new(Backend::Sqlite).await;
    let c = client("campus", "127.0.0.0/8", &format!("secret = \"{SECRET_A}\""));
    // the CA and server certificate first, so that serve starts with EAP on
    let dir = tempfile::tempdir().unwrap();
    let (auth, acct) = (free_udp_port(), free_udp_port());
    let config = dir.path().join("poortwachter.toml");
    std::fs::write(
        &config,
        config_text(&db.url, dir.path(), auth, acct, &c, ""),
    )
    .unwrap();
    cli(&config, &["migrate"]);
    cli(&config, &["ca", "init"]);
    cli(
        &config,
        &[
            "owner",
            "add",
            "j.devries",
            "--name",
            "Jan de Vries",
            "--role",
            "staff",
        ],
    );
    let mac = "02:00:00:00:0b:04";
    let device = cli_json(
        &config,
        &[
            "device",
            "register",
            "--owner",
            "j.devries",
            "--mac",
            mac,
            "--label",
            "Laptop",
            "--kind",
            "laptop",
        ],
    );
    let id = device["id"].as_str().expect("id").to_string();
    let out = dir.path().join("bundle");
    let printed = cli(
        &config,
        &["device", "issue-cert", &id, "--out", out.to_str().unwrap()],
    );
    let password = printed
        .lines()
        .skip_while(|l| !l.to_lowercase().contains("password"))
        .nth(1)
        .map(|l| l.trim().to_string())
        .expect("one-time password");
    let p12 = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "p12"))
        .expect("a .p12");
    let node = Node::spawn(dir, config, &db.url, (auth, acct), &[]);
    assert!(node.log_text().contains("802.1X EAP-TLS enabled"));

    let conf = node.dir.path().join("eapol.conf");
    std::fs::write(
        &conf,
        format!(
            "network={{\n  key_mgmt=WPA-EAP\n  eap=TLS\n  identity=\"host/device\"\n  \
             ca_cert=\"{}\"\n  private_key=\"{}\"\n  private_key_passwd=\"{password}\"\n  \
             domain_match=\"radius.poortwachter.test\"\n  fragment_size=400\n}}\n",
            out.join("ca.pem").display(),
            p12.display(),
        ),
    )
    .unwrap();
    // reloads every 20 ms for as long as the conversation runs: each one reads the
    // certificate, key and CA again and puts a new TLS configuration in force
    let mut eapol = tokio::process::Command::new("eapol_test")
        .arg("-c")
        .arg(&conf)
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &auth.to_string(),
            "-s",
            SECRET_A,
            "-M",
            mac,
        ])
        .args(["-N30:s:00-11-22-33-44-55:Werkplek", "-t", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("eapol_test not found: install Debian's eapoltest (scripts/test does)");
    let mut sent = 0;
    let status = loop {
        if let Some(s) = eapol.try_wait().expect("eapol_test") {
            break s;
        }
        assert!(sent < 1_000, "eapol_test ran for over 20 s");
        node.hup();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let output = eapol.wait_with_output().await.expect("eapol_test output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        status.success() && text.trim_end().ends_with("SUCCESS"),
        "eapol_test failed across {sent} reloads:\n{text}\n{}",
        node.log_text()
    );
    // the conversation took several rounds; reloads happened between them
    let rounds = text.matches("Received RADIUS message").count();
    assert!(rounds >= 4, "{rounds} rounds:\n{text}");
    assert!(sent >= 2, "only {sent} reload(s) during the conversation");
    let log = node.wait_log("configuration reloaded", 2);
    assert!(log.contains("EAP: certificate reloaded"), "{log}");
}

/// `GET /api/v1/metrics` with `token`, as Prometheus scrapes it.
fn scrape(api: u16, token: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("http://127.0.0.1:{api}/api/v1/metrics"),
        ])
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Scrapes (up to 10 s) until the metrics hold `line`; the last scrape.
fn scrape_until(api: u16, token: &str, line: &str) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(api, token);
        if text.lines().any(|l| l == line) || Instant::now() > until {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn helpdesk_token(config: &Path) -> String {
    let token = cli_json(
        config,
        &[
            "token",
            "create",
            "--name",
            "monitoring",
            "--scope",
            "helpdesk",
        ],
    );
    token["token"].as_str().expect("token").to_string()
}

/// A registered device (owner `username`, staff) for `mac`; its id.
fn register(config: &Path, username: &str, mac: &str) -> String {
    cli(
        config,
        &[
            "owner",
            "add",
            username,
            "--name",
            "Test Owner",
            "--role",
            "staff",
        ],
    );
    let device = cli_json(
        config,
        &[
            "device", "register", "--owner", username, "--mac", mac, "--label", "Laptop", "--kind",
            "laptop",
        ],
    );
    device["id"].as_str().expect("id").to_string()
}

/// MAB with radclient, then an accounting Start echoing the Class, both with `secret`: the
/// device is connected, its session open at the server.
async fn connect(node: &Node, secret: &str, mac: &str, acct_session_id: &str) {
    let r = answered_within(node, secret, mac).await;
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    let class = r.attr("Class").expect("a Class").to_string();
    let start = format!(
        "Acct-Status-Type = Start\nAcct-Session-Id = \"{acct_session_id}\"\nUser-Name = \"{mac}\"\n\
         Calling-Station-Id = \"{mac}\"\nNAS-IP-Address = 127.0.0.1\nClass = {class}\n"
    );
    let acct = SocketAddr::from(([127, 0, 0, 1], node.ports.1));
    let r = radclient(acct, "acct", secret, &start).await;
    assert_eq!(
        r.code.as_deref(),
        Some("Accounting-Response"),
        "{}",
        r.output
    );
}

/// What the registry recorded for the Disconnect/CoA-Requests of a session. The enforcer
/// writes a request's row once its answer is in, after the NAS has sent it: read until there
/// is one (at most 10 s).
async fn coa_results(url: &str, acct_session_id: &str) -> Vec<(String, String, String)> {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let until = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT kind, result, nas_addr FROM coa_requests WHERE acct_session_id = $1 ORDER BY id",
        )
        .bind(acct_session_id)
        .fetch_all(&pool)
        .await
        .expect("coa_requests");
        if !rows.is_empty() || Instant::now() > until {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    pool.close().await;
    rows
}

/// The metrics count `n` acknowledged Disconnect-Requests (within 10 s).
async fn assert_acked(api: u16, token: &str, n: u32) {
    let line = format!("poortwachter_coa_requests_total{{kind=\"disconnect\",result=\"ack\"}} {n}");
    let metrics = scrape_until(api, token, &line);
    assert!(metrics.lines().any(|l| l == line), "{metrics}");
}

/// The registry recorded exactly one Disconnect-Request for the session, acknowledged by the
/// NAS on 127.0.0.1:`port`.
async fn assert_one_acked_disconnect(url: &str, acct_session_id: &str, port: u16) {
    let rows = coa_results(url, acct_session_id).await;
    assert_eq!(
        rows,
        [(
            "disconnect".to_string(),
            "ack".to_string(),
            format!("127.0.0.1:{port}")
        )]
    );
}

/// A client added by a reload gets Disconnect-Requests for its sessions, signed with its
/// `secret` (not `secret_next`) and sent to its `coa_port`; a second reload that finishes the
/// rotation and moves the port is used for the next one. No restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_added_by_reload_is_sent_disconnects_with_its_secret_and_port() {
    let db = TestDb::new(Backend::Postgres).await;
    let api = free_tcp_port();
    let extra = format!("[api]\nlisten = \"127.0.0.1:{api}\"");
    // at start no client covers the loopback source
    let campus = client(
        "campus",
        "10.99.0.0/16",
        &format!("secret = \"{SECRET_A}\""),
    );
    let mut node = Node::start(&db.url, &campus, &extra, &[]);
    let pid = node.child.id();
    let token = helpdesk_token(&node.config);
    let (mac1, mac2) = ("02-00-00-00-0c-01", "02-00-00-00-0c-02");
    let device1 = register(&node.config, "a.staff", mac1);
    let device2 = register(&node.config, "b.staff", mac2);
    let r = mab_with(&node, SECRET_B, mac1).await;
    assert_eq!(
        r.code, None,
        "answered before the client exists: {}",
        r.output
    );

    // the access point's client is added by a reload, in the middle of a secret rotation
    let (nas1, nas2) = (FakeNas::bind().await, FakeNas::bind().await);
    let ap = |secret_lines: &str, port: u16| {
        client(
            "ap-new",
            "127.0.0.1/32",
            &format!("{secret_lines}\ncoa_port = {port}"),
        )
    };
    let rotating = format!("secret = \"{SECRET_B}\"\nsecret_next = \"{NEXT}\"");
    node.rewrite(&format!("{campus}\n{}", ap(&rotating, nas1.port())), &extra);
    node.hup();
    let log = node.wait_log("configuration reloaded", 1);
    assert!(log.contains("clients added: ap-new"), "{log}");
    connect(&node, SECRET_B, mac1, "sess-reload-1").await;

    // revoked through the CLI: the Disconnect-Request reaches the new client's DAS port
    cli(
        &node.config,
        &["device", "revoke", &device1, "--reason", "stolen"],
    );
    nas1.acknowledge_disconnect("sess-reload-1", SECRET_B, NEXT)
        .await;
    assert_acked(api, &token, 1).await;
    assert_one_acked_disconnect(&db.url, "sess-reload-1", nas1.port()).await;

    // the rotation ends (the new secret becomes `secret`) and the DAS port moves: reloaded,
    // and the next Disconnect-Request uses both
    node.rewrite(
        &format!(
            "{campus}\n{}",
            ap(&format!("secret = \"{NEXT}\""), nas2.port())
        ),
        &extra,
    );
    node.hup();
    let log = node.wait_log("configuration reloaded", 2);
    assert!(log.contains("changed: ap-new"), "{log}");
    connect(&node, NEXT, mac2, "sess-reload-2").await;
    cli(
        &node.config,
        &["device", "revoke", &device2, "--reason", "sold"],
    );
    nas2.acknowledge_disconnect("sess-reload-2", NEXT, SECRET_B)
        .await;
    assert!(
        nas1.receive(Duration::from_millis(300)).await.is_none(),
        "a request went to the old port"
    );
    assert_acked(api, &token, 2).await;
    assert_one_acked_disconnect(&db.url, "sess-reload-2", nas2.port()).await;
    // nothing of this needed a restart, and it is the same process
    let log = node.log_text();
    assert!(!log.contains("needs a restart"), "{log}");
    assert!(node.alive());
    assert_eq!(node.child.id(), pid);
}

/// EAP-TLS off at start (no certificate yet): its metrics are there, zero, and after `ca init`
/// and a reload that turns EAP on they count the engine in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eap_metrics_exist_before_and_after_a_reload_turns_eap_on() {
    let db = TestDb::new(Backend::Sqlite).await;
    let api = free_tcp_port();
    let extra = format!("[api]\nlisten = \"127.0.0.1:{api}\"");
    let c = client("campus", "127.0.0.0/8", &format!("secret = \"{SECRET_A}\""));
    let node = Node::start(&db.url, &c, &extra, &[]);
    assert!(
        !node.log_text().contains("802.1X EAP-TLS enabled"),
        "{}",
        node.log_text()
    );
    let token = helpdesk_token(&node.config);
    let metrics = scrape(api, &token);
    for line in [
        "poortwachter_eap_conversations 0",
        "poortwachter_eap_conversations_evicted_total 0",
        "poortwachter_eap_conversations_expired_total 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }

    // the certificate appears, and a reload turns EAP-TLS on
    cli(&node.config, &["ca", "init"]);
    node.hup();
    let log = node.wait_log("configuration reloaded", 1);
    assert!(log.contains("EAP: enabled"), "{log}");

    // a supplicant's EAP-Response/Identity opens a conversation: answered with a challenge
    // (EAP-TLS Start), and the gauge counts it
    let identity = "host/laptop";
    let eap = format!(
        "0201{:04x}01{}",
        5 + identity.len(),
        identity
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let attrs = format!(
        "User-Name = \"{identity}\"\nCalling-Station-Id = \"02-00-00-00-0e-01\"\n\
         Called-Station-Id = \"00-11-22-33-44-55:Werkplek\"\nNAS-Port-Type = Wireless-802.11\n\
         EAP-Message = 0x{eap}\nMessage-Authenticator = 0x00\n"
    );
    let r = radclient(node.auth, "auth", SECRET_A, &attrs).await;
    assert_eq!(r.code.as_deref(), Some("Access-Challenge"), "{}", r.output);
    let metrics = scrape_until(api, &token, "poortwachter_eap_conversations 1");
    assert!(
        metrics
            .lines()
            .any(|l| l == "poortwachter_eap_conversations 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "# TYPE poortwachter_eap_conversations_evicted_total counter"),
        "{metrics}"
    );
}

/// A reload that changes the policy re-decides the open sessions at once, not at the next
/// periodic check (`coa.check_interval`, 60 s): a device admitted into quarantine under
/// `not_compliant = "quarantine"` is disconnected when the reload says "reject".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_the_policy_re_decides_open_sessions() {
    let db = TestDb::new(Backend::Postgres).await;
    let nas = FakeNas::bind().await;
    let ap = client(
        "ap",
        "127.0.0.1/32",
        &format!("secret = \"{SECRET_A}\"\ncoa_port = {}", nas.port()),
    );
    let mut node = Node::start(&db.url, &ap, "", &[]);
    let mac = "02-00-00-00-0d-01";
    // registered, its compliance never checked: quarantine
    register(&node.config, "c.staff", mac);
    let r = answered_within(&node, SECRET_A, mac).await;
    assert_eq!(
        r.attr("Tunnel-Private-Group-Id"),
        Some("666"),
        "{}",
        r.output
    );
    connect(&node, SECRET_A, mac, "sess-policy-1").await;
    assert!(
        nas.receive(Duration::from_millis(500)).await.is_none(),
        "a request before any change"
    );

    let started = Instant::now();
    node.rewrite(&ap, "[policy]\nnot_compliant = \"reject\"\n");
    node.hup();
    let log = node.wait_log("configuration reloaded", 1);
    assert!(log.contains("rules changed: policy"), "{log}");
    nas.acknowledge_disconnect("sess-policy-1", SECRET_A, SECRET_B)
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the Disconnect came {:?} after the reload",
        started.elapsed()
    );
    assert_one_acked_disconnect(&db.url, "sess-policy-1", nas.port()).await;
    // and the device is refused from now on
    let r = mab_with(&node, SECRET_A, mac).await;
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert!(node.alive());
}

/// `eap.enabled = false` at start: no server certificate gauge (EAP-TLS is off, its
/// certificate is not a dependency); a reload with EAP-TLS on brings the gauge of the
/// certificate now served, as the daily expiry log follows the configuration in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_certificate_gauge_follows_a_reload_that_turns_eap_on() {
    let db = TestDb::new(Backend::Sqlite).await;
    let api = free_tcp_port();
    let extra = format!("[api]\nlisten = \"127.0.0.1:{api}\"");
    let c = client("campus", "127.0.0.0/8", &format!("secret = \"{SECRET_A}\""));
    let dir = tempfile::tempdir().expect("tempdir");
    let (auth, acct) = (free_udp_port(), free_udp_port());
    let config = dir.path().join("poortwachter.toml");
    let on = config_text(&db.url, dir.path(), auth, acct, &c, &extra);
    let off = on.replace("[eap]\n", "[eap]\nenabled = false\n");
    assert_ne!(on, off);
    std::fs::write(&config, &off).expect("write config");
    cli(&config, &["migrate"]);
    cli(&config, &["ca", "init"]);
    let node = Node::spawn(dir, config, &db.url, (auth, acct), &[]);
    let token = helpdesk_token(&node.config);
    let gauge = "poortwachter_certificate_expiry_seconds{kind=\"server\"";
    let metrics = scrape(api, &token);
    assert!(
        metrics.contains("poortwachter_certificate_expiry_seconds{kind=\"ca\""),
        "{metrics}"
    );
    assert!(!metrics.contains(gauge), "EAP-TLS is off:\n{metrics}");

    std::fs::write(&node.config, &on).expect("rewrite config");
    node.hup();
    let log = node.wait_log("configuration reloaded", 1);
    assert!(log.contains("EAP: enabled"), "{log}");
    let metrics = scrape(api, &token);
    let seconds: f64 = metrics
        .lines()
        .find(|l| l.starts_with(gauge))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no server certificate gauge after the reload:\n{metrics}"));
    // `ca init` made it for server_cert_lifetime (730 days by default)
    assert!(
        seconds > 700.0 * 86_400.0 && seconds <= 731.0 * 86_400.0,
        "{seconds}"
    );
}
