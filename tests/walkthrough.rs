//! The README's install walkthrough, run as a municipality's ICT would on a fresh machine, and
//! the first months after it: from the Debian package to a production service on PostgreSQL
//! (an owner role for migrations, a runtime role for the service, passwords apart from the
//! URL), with the HTTPS admin API, EAP-TLS and two access-point groups; then a third group of
//! access points added and the RADIUS server certificate renewed, each with a reload
//! (`ExecReload`: SIGHUP) and no restart, while a device stays connected.
//!
//! The steps are the README's ("Install"; "Day two"), in its order, with the same commands;
//! the test checks that the README still says each one it runs. The edits the README leaves
//! to an editor are made on the installed `/etc/poortwachter/poortwachter.toml`, each one
//! checked to find the line it replaces, so the shipped example cannot drift from the
//! walkthrough unnoticed. There is no systemd in CI: the service is run as the installed unit
//! says (its `User=`, `Environment=`, `EnvironmentFile=`, `ExecStartPre=`, `ExecStart=`,
//! `ExecReload=`, read from the unit file).
//!
//! What counts is the peers' verdict: wpa_supplicant's `CTRL-EVENT-EAP-SUCCESS`, the VLAN
//! hostapd put each station in (`hostapd_cli sta`), the server certificate the supplicant was
//! shown (`CTRL-EVENT-EAP-PEER-CERT`), curl's HTTPS exchange verified against the API
//! certificate, and the service's own log.
//!
//! Runs as root (dpkg, network namespaces, the service user); fails, never skips, otherwise.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::install::{Installed, Package};
use support::peers::{gist, AccessPoint, ApSettings, Issued, Outcome, Station};
use support::serving::{free_tcp_port, free_udp_port, run_ok, Serving};
use support::PgServer;

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");
const CONFIG: &str = "/etc/poortwachter/poortwachter.toml";
const ENV_FILE: &str = "/etc/poortwachter/env";
const UNIT: &str = "/lib/systemd/system/poortwachter.service";
/// `eap.server_name` of the shipped example; the Wi-Fi profiles pin it.
const SERVER_NAME: &str = "radius.gemeente.example";
const SSID: &str = "Gemeente-Werkplek";

/// Passwords with characters a URL cannot carry raw, given apart from the URL.
const OWNER_PW: &str = "eig!naar#2026-db";
const RUNTIME_PW: &str = "dien!st#2026-db";
const SECRET_CONTROLLERS: &str = "stadhuis-controllers-0123456789";
const SECRET_STADSKANTOOR: &str = "stadskantoor-aps-0123456789ab";
const SECRET_BIBLIOTHEEK: &str = "bibliotheek-aps-0123456789abcd";

/// The README's install section and the day-two section after it.
fn readme_walkthrough() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme.find("### Install").expect("README: ### Install");
    let end = readme[start..]
        .find("### Upgrades")
        .map(|i| start + i)
        .expect("README: ### Upgrades after ### Install");
    readme[start..end].to_string()
}

/// The README says `what`, or the walkthrough has drifted from it.
fn readme_says(walkthrough: &str, what: &str) {
    assert!(
        walkthrough.contains(what),
        "the README's install walkthrough no longer says `{what}`; keep README and this test \
         in step"
    );
}

/// Replaces the one line of `text` that is `from` (trimmed) with `to`; panics if it is not
/// there exactly once.
fn edit(text: &mut String, from: &str, to: &str) {
    let hits = text.lines().filter(|l| l.trim() == from).count();
    assert_eq!(
        hits, 1,
        "the installed config has {hits} lines `{from}`: the example changed, update the README \
         walkthrough and this test"
    );
    *text = text
        .lines()
        .map(|l| if l.trim() == from { to } else { l })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
}

/// `KEY=VALUE` lines of a systemd `EnvironmentFile=` (comments and blanks skipped).
fn environment_file(path: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The installed unit's settings that matter for running it by hand.
struct Unit {
    user: String,
    environment: Vec<(String, String)>,
    environment_file: String,
    exec_start_pre: Vec<String>,
    exec_start: Vec<String>,
    exec_reload: Vec<String>,
}

impl Unit {
    fn read() -> Unit {
        let text = std::fs::read_to_string(UNIT).expect("the installed unit");
        let mut keys: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some((k, v)) = line.split_once('=') {
                keys.entry(k.trim()).or_default().push(v.trim());
            }
        }
        let one = |k: &str| -> String {
            keys.get(k)
                .and_then(|v| v.first())
                .unwrap_or_else(|| panic!("the unit has no {k}=:\n{text}"))
                .to_string()
        };
        let words =
            |k: &str| -> Vec<String> { one(k).split_whitespace().map(String::from).collect() };
        Unit {
            user: one("User"),
            environment: keys
                .get("Environment")
                .into_iter()
                .flatten()
                .filter_map(|v| v.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            environment_file: one("EnvironmentFile").trim_start_matches('-').to_string(),
            exec_start_pre: words("ExecStartPre"),
            exec_start: words("ExecStart"),
            exec_reload: words("ExecReload"),
        }
    }

    /// A command line of the unit, run as its user with its environment, from `/`. `setpriv`
    /// (util-linux) executes it in place as systemd does, so that the process id is the
    /// service's own (`$MAINPID`); `runuser` would stay in between as a parent.
    fn command(&self, argv: &[String]) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.user))
            .arg(format!("--regid={}", self.user))
            .args(["--init-groups", "--"])
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(self.environment.iter().map(|(k, v)| (k, v)))
            .envs(environment_file(&self.environment_file))
            .current_dir("/");
        c
    }
}

/// The command line as ICT runs it as root on the server: the installed binary from `/`, with
/// the secrets of /etc/poortwachter/env in the environment (`set -a; . /etc/poortwachter/env`).
fn as_root(args: &[&str]) -> Command {
    let mut c = Command::new("/usr/bin/poortwachter");
    c.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SUDO_USER", "ict.beheer")
        .envs(environment_file(ENV_FILE))
        .current_dir("/");
    c
}

/// The command line as the service user (`sudo -u poortwachter poortwachter ...`).
fn as_service(args: &[&str]) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "poortwachter", "--", "/usr/bin/poortwachter"])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(environment_file(ENV_FILE))
        .current_dir("/");
    c
}

/// Runs; panics with what it printed unless it succeeds; stdout and stderr together.
fn ok(c: &mut Command) -> String {
    let out = c.output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{c:?} failed:\n{text}");
    text
}

/// The admin API over HTTPS with curl, verified against the API's certificate; (status, body).
fn api(
    port: u16,
    ca: &Path,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "15", "--cacert"])
        .arg(ca)
        .args(["-X", method, "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .args(["-w", "\n%{http_code}"]);
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    c.arg(format!("https://localhost:{port}/api/v1{path}"));
    let out = c
        .output()
        .expect("curl (Debian's curl; scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {method} {path}: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = text.rsplit_once('\n').expect("curl's status line");
    (code.trim().parse().expect("status"), body.to_string())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The SHA-256 of a PEM certificate's DER, lower-case hex, as wpa_supplicant prints it.
fn cert_hash(pem: &Path) -> String {
    let der = run_ok(Command::new("sh").arg("-c").arg(format!(
        "openssl x509 -in '{}' -outform DER | openssl dgst -sha256 -r",
        pem.display()
    )));
    der.split_whitespace().next().expect("a digest").to_string()
}

/// The hashes of the server certificates (depth 0) the supplicant was shown, in order, in its
/// log beyond `mark`.
fn peer_certs(station: &Station, mark: usize) -> Vec<String> {
    station
        .log()
        .get(mark..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("CTRL-EVENT-EAP-PEER-CERT depth=0"))
        .filter_map(|l| l.split("hash=").nth(1))
        .map(|h| h.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

/// A device registered and given a certificate through the API, as the service desk would;
/// the bundle written where the supplicant reads it.
fn onboard(
    api_port: u16,
    api_ca: &Path,
    token: &str,
    dir: &Path,
    owner: &str,
    mac: &str,
    label: &str,
) -> Issued {
    let (code, body) = api(
        api_port,
        api_ca,
        token,
        "POST",
        "/devices",
        Some(&format!(
            r#"{{"owner":"{owner}","macs":["{mac}"],"label":"{label}","kind":"laptop"}}"#
        )),
    );
    assert_eq!(code, 201, "{body}");
    let id = json(&body)["device"]["id"]
        .as_str()
        .expect("device id")
        .to_string();
    let (code, body) = api(
        api_port,
        api_ca,
        token,
        "PUT",
        &format!("/devices/{id}/compliance"),
        Some(r#"{"state":"compliant","note":"intake"}"#),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = api(
        api_port,
        api_ca,
        token,
        "POST",
        &format!("/devices/{id}/certificate"),
        Some("{}"),
    );
    assert_eq!(code, 201, "{body}");
    let bundle = json(&body);
    use base64::Engine;
    let p12 = base64::engine::general_purpose::STANDARD
        .decode(bundle["pkcs12"].as_str().expect("pkcs12"))
        .expect("base64");
    let p12_path = dir.join(format!("{label}.p12"));
    std::fs::write(&p12_path, p12).expect("write p12");
    let ca = dir.join(format!("{label}-ca.pem"));
    std::fs::write(&ca, bundle["ca_pem"].as_str().expect("ca_pem")).expect("write ca");
    Issued {
        label: label.to_string(),
        p12: p12_path,
        password: bundle["password"].as_str().expect("password").to_string(),
        ca,
    }
}

/// A station that must get in: the supplicant's own EAP success and an authorized port, and
/// hostapd put it in `vlan`.
async fn admitted(ap: &AccessPoint, station: &Station, mac: &str, vlan: u16) {
    let outcome = station.outcome(Duration::from_secs(20)).await;
    assert!(
        matches!(outcome, Some((Outcome::Success, _))),
        "{mac}: {outcome:?}\n--- wpa_supplicant:\n{}\n--- hostapd:\n{}",
        gist(&station.log()),
        gist(&ap.log())
    );
    let status = station.status().await;
    assert!(status.contains("suppPortStatus=Authorized"), "{status}");
    assert_eq!(
        ap.vlan_of(mac).await,
        Some(vlan),
        "hostapd's station {mac}:\n{}\n--- hostapd:\n{}",
        ap.sta(mac).await,
        gist(&ap.log())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_the_package_to_production_and_a_reload_while_connected() {
    let walkthrough = readme_walkthrough();
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path();

    // --- apt install ./poortwachter_<version>_amd64.deb
    readme_says(&walkthrough, "apt install ./poortwachter_");
    let package = Package::build(BIN);
    let _installed = Installed::install(&package);
    let unit = Unit::read();
    assert_eq!(unit.user, "poortwachter");

    // --- PostgreSQL: the owner role and the runtime role, from the packaged script
    readme_says(
        &walkthrough,
        "-f /usr/share/poortwachter/postgres-setup.sql",
    );
    let pg = PgServer::start();
    let sock = pg.socket_dir().display().to_string();
    // the service user reaches the server's socket (on a real server: TCP and sslmode)
    run_ok(Command::new("chmod").args(["0755", &sock]));
    let out = pg
        .client("psql")
        .args(["-h", &sock, "-U", "postgres", "-d", "postgres", "-q"])
        .arg("-v")
        .arg(format!("owner_password={OWNER_PW}"))
        .arg("-v")
        .arg(format!("runtime_password={RUNTIME_PW}"))
        .args(["-f", "/usr/share/poortwachter/postgres-setup.sql"])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "postgres-setup.sql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pg.require_passwords();
    let db_url = |role: &str| format!("postgres://{role}@localhost:5432/poortwachter?host={sock}");

    // --- the API's HTTPS certificate: the municipality's own (here: made with openssl)
    readme_says(&walkthrough, "/etc/poortwachter/api.pem");
    let made = dir.join("api");
    std::fs::create_dir_all(&made).expect("dir");
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "365", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost"])
            .arg("-keyout")
            .arg(made.join("api.key"))
            .arg("-out")
            .arg(made.join("api.pem")),
    );
    for f in ["api.pem", "api.key"] {
        run_ok(
            Command::new("install")
                .args(["-m", "0640", "-g", "poortwachter"])
                .arg(made.join(f))
                .arg(format!("/etc/poortwachter/{f}")),
        );
    }
    let api_ca = PathBuf::from("/etc/poortwachter/api.pem");

    // --- editor /etc/poortwachter/poortwachter.toml
    let auth = free_udp_port();
    let acct = free_udp_port();
    let api_port = free_tcp_port();
    let (das1, das2, das3) = (free_udp_port(), free_udp_port(), free_udp_port());
    let mut config = std::fs::read_to_string(CONFIG).expect("the installed config");
    edit(
        &mut config,
        r#"url = "postgres://poortwachter@db.gemeente.example/poortwachter?sslmode=verify-full""#,
        &format!(r#"url = "{}""#, db_url("poortwachter")),
    );
    readme_says(&walkthrough, "migrate_on_start = false");
    edit(
        &mut config,
        "migrate_on_start = true",
        "migrate_on_start = false",
    );
    edit(
        &mut config,
        r#"auth_listen = "0.0.0.0:1812""#,
        &format!(r#"auth_listen = "127.0.0.1:{auth}""#),
    );
    edit(
        &mut config,
        r#"acct_listen = "0.0.0.0:1813""#,
        &format!(r#"acct_listen = "127.0.0.1:{acct}""#),
    );
    // two groups of access points: the controllers at the town hall, the town office's APs;
    // their secrets by name from /etc/poortwachter/env, not in this file
    edit(
        &mut config,
        r#"network = "10.10.0.0/24""#,
        r#"network = "127.0.0.1/32""#,
    );
    edit(
        &mut config,
        r#"secret = "replace-with-a-long-random-secret-1""#,
        "",
    );
    edit(
        &mut config,
        "coa_port = 3799",
        &format!("coa_port = {das1}"),
    );
    edit(
        &mut config,
        r#"network = "10.20.0.0/16""#,
        r#"network = "127.0.0.2/32""#,
    );
    edit(
        &mut config,
        r#"secret = "replace-with-a-long-random-secret-2""#,
        "",
    );
    edit(
        &mut config,
        "coa_port = 1700",
        &format!("coa_port = {das2}"),
    );
    edit(&mut config, "# [api]", "[api]");
    edit(
        &mut config,
        r#"# listen = "10.20.0.5:8443""#,
        &format!(r#"listen = "127.0.0.1:{api_port}""#),
    );
    edit(
        &mut config,
        r#"# tls_cert = "/etc/poortwachter/api.pem""#,
        r#"tls_cert = "/etc/poortwachter/api.pem""#,
    );
    edit(
        &mut config,
        r#"# tls_key = "/etc/poortwachter/api.key""#,
        r#"tls_key = "/etc/poortwachter/api.key""#,
    );
    std::fs::write(CONFIG, &config).expect("write the config");

    // --- editor /etc/poortwachter/env: the runtime role's password, the client secrets
    readme_says(&walkthrough, "POORTWACHTER_DATABASE__PASSWORD=");
    readme_says(&walkthrough, "POORTWACHTER_CLIENT_SECRET_");
    let mut env = std::fs::read_to_string(ENV_FILE).expect("the installed env file");
    env.push_str(&format!(
        "POORTWACHTER_DATABASE__PASSWORD={RUNTIME_PW}\n\
         POORTWACHTER_CLIENT_SECRET_WLAN_CONTROLLERS={SECRET_CONTROLLERS}\n\
         POORTWACHTER_CLIENT_SECRET_STADSKANTOOR_APS={SECRET_STADSKANTOOR}\n"
    ));
    std::fs::write(ENV_FILE, env).expect("write the env file");

    // --- the schema, as the owner role
    readme_says(&walkthrough, "poortwachter migrate");
    let migrated = ok(as_root(&["migrate"])
        .env("POORTWACHTER_DATABASE__URL", db_url("poortwachter_owner"))
        .env("POORTWACHTER_DATABASE__PASSWORD", OWNER_PW));
    assert!(migrated.contains("registry is up to date"), "{migrated}");

    // --- the CA and the RADIUS server certificate, as the service user
    readme_says(&walkthrough, "poortwachter ca init");
    ok(&mut as_service(&["ca", "init"]));
    let server_pem = Path::new("/var/lib/poortwachter/pki/server.pem");
    let first_cert = cert_hash(server_pem);

    // --- check-config, as root and as the unit's ExecStartPre
    readme_says(&walkthrough, "poortwachter check-config");
    let checked = ok(&mut as_root(&["check-config"]));
    assert!(checked.contains("config OK"), "{checked}");
    for part in ["wlan-controllers", "stadskantoor-aps", "HTTPS", "EAP"] {
        assert!(
            checked.contains(part),
            "check-config says nothing of {part}:\n{checked}"
        );
    }
    assert!(!checked.contains(RUNTIME_PW) && !checked.contains(SECRET_CONTROLLERS));
    ok(&mut unit.command(&unit.exec_start_pre));

    // --- systemctl enable --now poortwachter
    readme_says(&walkthrough, "systemctl enable --now poortwachter");
    let mut serving = Serving::start(
        unit.command(&unit.exec_start),
        dir,
        auth,
        SECRET_CONTROLLERS,
    );
    let pid = serving.pid();

    // --- a token for the service desk's tools, then owners and devices over HTTPS
    readme_says(&walkthrough, "poortwachter token create --name");
    let printed = ok(&mut as_root(&[
        "token",
        "create",
        "--name",
        "servicedesk",
        "--scope",
        "admin",
    ]));
    let token = printed
        .split_whitespace()
        .find(|w| w.starts_with("pw_"))
        .unwrap_or_else(|| panic!("no token printed:\n{printed}"))
        .to_string();
    // curl verifies the API's certificate: HTTPS, not plain HTTP
    let (code, body) = api(api_port, &api_ca, &token, "GET", "/ready", None);
    assert_eq!(code, 200, "{body}");
    for (username, name, role) in [
        ("j.devries", "Jan de Vries", "staff"),
        ("a.bakker", "Anna Bakker", "intern"),
        ("p.jansen", "Pieter Jansen", "staff"),
    ] {
        let until = if role == "intern" {
            format!(
                r#","valid_until":"{}""#,
                (chrono::Utc::now() + chrono::Duration::days(90)).format("%Y-%m-%d")
            )
        } else {
            String::new()
        };
        let (code, body) = api(
            api_port,
            &api_ca,
            &token,
            "POST",
            "/owners",
            Some(&format!(
                r#"{{"username":"{username}","display_name":"{name}","role":"{role}"{until}}}"#
            )),
        );
        assert_eq!(code, 201, "{body}");
    }
    let (mac1, mac2, mac3) = (
        "02:77:00:00:00:01",
        "02:77:00:00:00:02",
        "02:77:00:00:00:03",
    );
    let laptop1 = onboard(
        api_port,
        &api_ca,
        &token,
        dir,
        "j.devries",
        mac1,
        "laptop-jan",
    );
    let laptop2 = onboard(
        api_port,
        &api_ca,
        &token,
        dir,
        "a.bakker",
        mac2,
        "laptop-anna",
    );
    let laptop3 = onboard(
        api_port,
        &api_ca,
        &token,
        dir,
        "p.jansen",
        mac3,
        "laptop-pieter",
    );

    // --- the town hall's access point (group wlan-controllers) and a staff laptop: workspace
    let (auth_addr, acct_addr): (SocketAddr, SocketAddr) =
        (([127, 0, 0, 1], auth).into(), ([127, 0, 0, 1], acct).into());
    let vlans = [100u16, 200, 666];
    let ap_dir = |n: &str| {
        let d = dir.join(n);
        std::fs::create_dir_all(&d).expect("dir");
        d
    };
    let (dir1, dir2, dir3) = (ap_dir("ap1"), ap_dir("ap2"), ap_dir("ap3"));
    // an access point of a group: its source address, secret and DAS port; the SSID and VLANs
    // of the site
    let group = |das_port: u16, secret: &'static str, source: &'static str| ApSettings {
        auth: auth_addr,
        acct: acct_addr,
        das_port,
        secret,
        source: Some(source),
        ssid: Some(SSID),
        vlans: &vlans,
    };
    let ap1 = AccessPoint::start_with(&dir1, &group(das1, SECRET_CONTROLLERS, "127.0.0.1")).await;
    let station1 = Station::start(&ap1, &dir1, &laptop1, true, mac1, SERVER_NAME);
    admitted(&ap1, &station1, mac1, 100).await;
    assert_eq!(peer_certs(&station1, 0).last(), Some(&first_cert));

    // --- the town office's access point (group stadskantoor-aps), an intern: guest VLAN
    let ap2 = AccessPoint::start_with(&dir2, &group(das2, SECRET_STADSKANTOOR, "127.0.0.2")).await;
    let station2 = Station::start(&ap2, &dir2, &laptop2, false, mac2, SERVER_NAME);
    admitted(&ap2, &station2, mac2, 200).await;

    // --- day two: the library's access points, not yet a client: ignored, and logged
    let ap3 = AccessPoint::start_with(&dir3, &group(das3, SECRET_BIBLIOTHEEK, "127.0.0.3")).await;
    let station3 = Station::start(&ap3, &dir3, &laptop3, true, mac3, SERVER_NAME);
    let early = station3.outcome(Duration::from_secs(4)).await;
    assert!(early.is_none(), "an unknown client was answered: {early:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !serving.log_text().contains("127.0.0.3") {
        assert!(
            Instant::now() < deadline,
            "the unknown access point is not in the log:\n{}",
            serving.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // the library's group, its secret in a file (the unit reads its env file only at start)
    readme_says(&walkthrough, "secret_file = \"/etc/poortwachter/secrets/");
    std::fs::create_dir_all("/etc/poortwachter/secrets").expect("secrets dir");
    let secret_file = "/etc/poortwachter/secrets/bibliotheek-aps";
    std::fs::write(dir.join("secret"), format!("{SECRET_BIBLIOTHEEK}\n")).expect("write");
    run_ok(
        Command::new("install")
            .args(["-m", "0640", "-g", "poortwachter"])
            .arg(dir.join("secret"))
            .arg(secret_file),
    );
    let mut config = std::fs::read_to_string(CONFIG).expect("config");
    config.push_str(&format!(
        "\n[[radius.clients]]\nname = \"bibliotheek-aps\"\nnetwork = \"127.0.0.3/32\"\n\
         secret_file = \"{secret_file}\"\ncoa_port = {das3}\n"
    ));
    // appended after [api]: the [[radius.clients]] array of tables continues there in TOML
    std::fs::write(CONFIG, config).expect("write the config");
    // and the server certificate, renewed weeks ahead, by the service user
    readme_says(&walkthrough, "poortwachter ca renew-server");
    let renewed = ok(&mut as_service(&["ca", "renew-server"]));
    assert!(
        renewed.contains("renewed the RADIUS server certificate"),
        "{renewed}"
    );
    let second_cert = cert_hash(server_pem);
    assert_ne!(first_cert, second_cert);

    readme_says(&walkthrough, "systemctl reload poortwachter");
    let checked = ok(&mut as_root(&["check-config"]));
    assert!(checked.contains("bibliotheek-aps"), "{checked}");
    let hostapd1_mark = ap1.log().len();
    let station1_mark = station1.log().len();
    let reload: Vec<String> = unit
        .exec_reload
        .iter()
        .map(|w| w.replace("$MAINPID", &pid.to_string()))
        .collect();
    ok(Command::new(&reload[0]).args(&reload[1..]));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !serving.log_text().contains("configuration reloaded") {
        assert!(
            !serving.log_text().contains("reload REFUSED"),
            "{}",
            serving.log_text()
        );
        assert!(
            Instant::now() < deadline,
            "no reload within 15 s:\n{}",
            serving.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = serving.log_text();
    assert!(log.contains("clients added: bibliotheek-aps"), "{log}");

    // no restart: the same process, started once
    assert!(serving.is_running());
    assert_eq!(serving.pid(), pid);
    assert_eq!(log.matches("poortwachter stopped").count(), 0, "{log}");

    // the library's laptop gets in now (the supplicant asks again)
    let again = station3.reauthenticate().await;
    assert!(
        matches!(again, Some((Outcome::Success, _))),
        "after the reload: {again:?}\n--- wpa_supplicant:\n{}\n--- hostapd:\n{}\n--- serve:\n{}",
        gist(&station3.log()),
        gist(&ap3.log()),
        serving.log_text()
    );
    assert_eq!(ap3.vlan_of(mac3).await, Some(100));

    // the town hall's laptop stayed connected through both changes: its port authorized all
    // along, hostapd never took it off
    let status = station1.status().await;
    assert!(status.contains("suppPortStatus=Authorized"), "{status}");
    assert!(ap1.sta(mac1).await.contains("flags=[AUTHORIZED]"));
    let since = ap1
        .log()
        .get(hostapd1_mark..)
        .unwrap_or_default()
        .to_string();
    assert!(
        !since.contains(&format!("AP-STA-DISCONNECTED {mac1}")),
        "{}",
        gist(&since)
    );
    assert!(peer_certs(&station1, station1_mark).is_empty());
    // and at its next authentication it is shown the renewed certificate, and trusts it
    let again = station1.reauthenticate().await;
    assert!(
        matches!(again, Some((Outcome::Success, _))),
        "{again:?}\n{}",
        gist(&station1.log())
    );
    assert_eq!(
        peer_certs(&station1, station1_mark).last(),
        Some(&second_cert),
        "{}",
        gist(&station1.log())
    );
    assert_eq!(ap1.vlan_of(mac1).await, Some(100));

    // the decisions at info name each group (for the SOC), and the accounting of all three
    // is in the registry (the decision rows follow within log.decision_coalesce)
    let log = serving.log_text();
    for (client, mac) in [
        ("wlan-controllers", mac1),
        ("stadskantoor-aps", mac2),
        ("bibliotheek-aps", mac3),
    ] {
        assert!(
            log.lines().any(|l| l.contains("poortwachter::decision")
                && l.contains(&format!("client=\"{client}\""))
                && l.contains(&format!("mac=\"{mac}\""))
                && l.contains("decision=\"accept\"")),
            "no accept of {mac} from {client} in the log:\n{log}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body) = api(
            api_port,
            &api_ca,
            &token,
            "GET",
            "/sessions?active=true",
            None,
        );
        assert_eq!(code, 200, "{body}");
        let missing: Vec<&str> = [mac1, mac2, mac3]
            .into_iter()
            .filter(|m| !body.contains(m))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no open session of {missing:?} within 15 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    station1.stop();
    station2.stop();
    station3.stop();
    drop((ap1, ap2, ap3));
    let log = serving.stop();
    assert!(log.contains("poortwachter stopped"), "{log}");
    // the reload took over all it was given, Disconnect/CoA to the new group included
    assert!(!log.contains("needs a restart"), "{log}");
    for secret in [
        RUNTIME_PW,
        OWNER_PW,
        SECRET_CONTROLLERS,
        SECRET_BIBLIOTHEEK,
        &token,
    ] {
        assert!(!log.contains(secret), "a secret in the log");
    }
}
