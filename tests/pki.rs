//! The onboarding CA end to end: through the library (what `ca init` writes loads into a
//! rustls server, the identity in the owner's PKCS#12 bundle completes a mutual TLS handshake
//! with it, the CRL lists each reason as openssl reads it), and through the real binary for
//! running it for years: `ca renew-server`, expiry under a moved clock (`faketime`), the
//! metrics, `device list/reissue --expiring-within`, a CA rollover with eapol_test as the
//! supplicant, an offline CA key, and files the service user cannot read.

mod support;

use support::serving::{free_tcp_port, free_udp_port};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use poortwachter::config::tls::{KeyType, PkiConfig};
use poortwachter::pki::{self, Ca, CaFiles};
use poortwachter::registry::{Revocation, RevocationCause};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use uuid::Uuid;

fn files(dir: &Path) -> CaFiles {
    CaFiles {
        ca_cert: dir.join("pki/ca.pem"),
        ca_key: dir.join("pki/ca.key"),
        server_cert: dir.join("pki/server.pem"),
        server_key: dir.join("pki/server.key"),
    }
}

fn init(dir: &Path) -> (CaFiles, Ca) {
    let files = files(dir);
    let pki_config = PkiConfig {
        ca_name: "Gemeente Test CA".into(),
        organization: "Gemeente Test".into(),
        ..PkiConfig::default()
    };
    pki::init_ca(
        &files,
        &pki_config,
        "radius.gemeente.test",
        KeyType::EcdsaP256,
        false,
        Utc::now(),
    )
    .expect("ca init");
    let ca = Ca::load(&files.ca_cert, &files.ca_key).expect("load the CA");
    (files, ca)
}

fn issue(ca: &Ca) -> pki::IssuedCertificate {
    let now = Utc::now();
    let (nb, na) = pki::device_cert_validity(now, chrono::Duration::days(365), None);
    pki::issue_device_certificate(
        ca,
        KeyType::EcdsaP256,
        Uuid::new_v4(),
        "j.devries",
        "Gemeente Test",
        nb,
        na,
        now,
    )
    .expect("issue")
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (Debian package `openssl`)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Moves TLS records between the two ends until neither has anything to say.
fn handshake(client: &mut rustls::ClientConnection, server: &mut rustls::ServerConnection) {
    for _ in 0..20 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        let moved = !buf.is_empty();
        server.read_tls(&mut buf.as_slice()).unwrap();
        server.process_new_packets().expect("server accepts");
        let mut back = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut back).unwrap();
        }
        let answered = !back.is_empty();
        client.read_tls(&mut back.as_slice()).unwrap();
        client.process_new_packets().expect("client accepts");
        if !moved && !answered && !client.is_handshaking() && !server.is_handshaking() {
            return;
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn the_bundle_identity_authenticates_to_a_server_made_by_ca_init() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca) = init(dir.path());
    let issued = issue(&ca);
    let password = pki::one_time_password();
    let bundle = pki::pkcs12(
        &issued.der,
        &issued.key_pkcs8,
        ca.der(),
        "Werkplek",
        &password,
    )
    .unwrap();

    // the owner's device: identity from the bundle, trusting the CA for the server's name
    let store = p12_keystore::KeyStore::from_pkcs12(
        &bundle,
        password.expose(),
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .unwrap();
    let (_, chain) = store.private_key_chain().unwrap();
    let client_chain: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    let client_key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(
            pki::load_ca_der(&files.ca_cert).unwrap(),
        ))
        .unwrap();
    let roots = Arc::new(roots);
    let client_config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(client_chain, client_key)
        .unwrap();

    // the RADIUS server: the chain and key `ca init` wrote, client certificates from the CA
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            pki::load_cert_chain(&files.server_cert).unwrap(),
            pki::load_private_key(&files.server_key).unwrap(),
        )
        .unwrap();

    let mut client = rustls::ClientConnection::new(
        Arc::new(client_config),
        ServerName::try_from("radius.gemeente.test").unwrap(),
    )
    .unwrap();
    let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
    handshake(&mut client, &mut server);
    let peer = server.peer_certificates().expect("a client certificate");
    // what the EAP server looks the device up by
    assert_eq!(pki::fingerprint(&peer[0]), issued.fingerprint);
}

#[test]
fn openssl_reads_the_bundle_and_the_crl() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca) = init(dir.path());
    let (old, lost, revoked) = (issue(&ca), issue(&ca), issue(&ca));
    let password = pki::one_time_password();
    let p12 = dir.path().join("device.p12");
    let bundle = pki::pkcs12(&old.der, &old.key_pkcs8, ca.der(), "Werkplek", &password).unwrap();
    pki::write_file(&p12, &bundle, pki::PRIVATE).unwrap();
    let certs = openssl(&[
        "pkcs12",
        "-in",
        p12.to_str().unwrap(),
        "-passin",
        &format!("pass:{}", password.expose()),
        "-nokeys",
    ]);
    assert_eq!(certs.matches("BEGIN CERTIFICATE").count(), 2, "{certs}");

    let now = Utc::now();
    let entry = |c: &pki::IssuedCertificate, cause| Revocation {
        serial: c.serial.clone(),
        at: now,
        cause,
        device_id: Uuid::new_v4(),
        issued_at: now,
    };
    let crl = pki::make_crl(
        &ca,
        &[
            entry(&old, RevocationCause::Superseded),
            entry(&lost, RevocationCause::DeviceLost),
            entry(&revoked, RevocationCause::DeviceRevoked),
        ],
        now,
        chrono::Duration::days(7),
    )
    .unwrap();
    let der = dir.path().join("crl.der");
    pki::write_file(&der, &crl.der, pki::PUBLIC).unwrap();
    let text = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    for (cert, reason) in [
        (&old, "Superseded"),
        (&lost, "Certificate Hold"),
        (&revoked, "Cessation Of Operation"),
    ] {
        let at = text
            .find(&format!("Serial Number: {}", cert.serial.to_uppercase()))
            .unwrap_or_else(|| panic!("{} not listed:\n{text}", cert.serial));
        let entry = &text[at..];
        let next = entry[1..]
            .find("Serial Number")
            .map_or(entry.len(), |n| n + 1);
        assert!(entry[..next].contains(reason), "{reason}:\n{text}");
    }
    assert!(text.contains(&crl.number.to_string()), "{text}");
    let pem = dir.path().join("crl.pem");
    pki::write_file(&pem, crl.pem().as_bytes(), pki::PUBLIC).unwrap();
    let checked = Command::new("openssl")
        .args(["crl", "-in", pem.to_str().unwrap(), "-noout", "-CAfile"])
        .arg(&files.ca_cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&checked.stderr).contains("verify OK"),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

// ---- the real binary

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");
const SECRET: &str = "pki-test-secret-0123456";
const SERVER_NAME: &str = "radius.gemeente.test";

/// A site: a registry, a config, a PKI directory and the ports `serve` listens on.
struct Site {
    _db: support::TestDb,
    dir: tempfile::TempDir,
    config: PathBuf,
    auth: u16,
    api: u16,
}

impl Site {
    async fn new(backend: support::Backend, pki_extra: &str, eap_extra: &str) -> Site {
        let db = support::TestDb::new(backend).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (auth, api) = (free_udp_port(), free_tcp_port());
        let site = Site {
            _db: db,
            config: dir.path().join("poortwachter.toml"),
            dir,
            auth,
            api,
        };
        site.write_config(pki_extra, eap_extra);
        // only `migrate` and `serve` change the schema; the other commands need it current
        site.ok(&["migrate"]);
        site
    }

    fn write_config(&self, pki_extra: &str, eap_extra: &str) {
        let d = self.dir.path().display();
        let text = format!(
            r#"
[database]
url = "{url}"

[radius]
auth_listen = "127.0.0.1:{auth}"
acct_listen = "127.0.0.1:0"

[[radius.clients]]
name = "ap-test"
network = "127.0.0.0/8"
secret = "{SECRET}"

[vlans]
workspace = 100
guest = 200
quarantine = 666

[log]
decision_coalesce = "0s"

[pki]
ca_cert = "{d}/pki/ca.pem"
ca_key = "{d}/pki/ca.key"
ca_name = "Gemeente Test CA"
organization = "Gemeente Test"
{pki_extra}

[eap]
server_cert = "{d}/pki/server.pem"
server_key = "{d}/pki/server.key"
server_name = "{SERVER_NAME}"
{eap_extra}

[api]
listen = "127.0.0.1:{api}"

[node]
state_dir = "{d}/state"
"#,
            url = self._db.url,
            auth = self.auth,
            api = self.api,
        );
        std::fs::write(&self.config, text).expect("write config");
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&self.config)
            .args(["--actor", "ict.test"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("POORTWACHTER_CONFIG")
            .current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run poortwachter")
    }

    /// Runs, expects success; stdout and stderr.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?} failed:\n{text}");
        text
    }

    /// Runs, expects failure; stdout and stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{args:?} should fail:\n{text}");
        text
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut with = vec!["--json"];
        with.extend_from_slice(args);
        let out = self.run(&with);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    }

    /// An owner with a compliant device; its id.
    fn device(&self, owner: &str, mac: &str) -> String {
        if !self.ok(&["owner", "list"]).contains(owner) {
            self.ok(&["owner", "add", owner, "--name", owner, "--role", "staff"]);
        }
        let d = self.json(&[
            "device", "register", "--owner", owner, "--mac", mac, "--label", "Laptop",
        ]);
        self.ok(&["device", "compliance", mac, "compliant"]);
        d["id"].as_str().expect("id").to_string()
    }

    /// `device issue-cert` into a fresh directory.
    fn issue(&self, device: &str) -> Issued {
        let out = self.path(&format!("out-{}", uuid::Uuid::new_v4()));
        let r = self.json(&[
            "device",
            "issue-cert",
            device,
            "--out",
            out.to_str().unwrap(),
        ]);
        issued_from(&r, &out)
    }

    /// `serve`, ready when its API port accepts connections.
    fn serve(&self) -> Serve {
        let child = self
            .command(&["serve"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start serve");
        let mut serve = Serve { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.api)).is_ok() {
                return serve;
            }
            if let Some(status) = serve
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let out = serve.child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "serve exited with {status}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(Instant::now() < deadline, "serve did not start within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `serve` expected to refuse to start: its exit status and stderr (bounded: killed and
    /// failed after 30 s).
    fn serve_refuses(&self, wrap: Option<&[&str]>) -> String {
        let mut cmd = match wrap {
            None => self.command(&["serve"]),
            Some(prefix) => {
                let mut c = Command::new(prefix[0]);
                c.args(&prefix[1..])
                    .arg(BIN)
                    .arg("--config")
                    .arg(&self.config)
                    .arg("serve")
                    .env_remove("RUST_LOG")
                    .current_dir(self.dir.path());
                c
            }
        };
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start serve");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let out = child.wait_with_output().expect("output");
                let text = String::from_utf8_lossy(&out.stderr).into_owned();
                assert!(!status.success(), "serve should refuse to start:\n{text}");
                return text;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "serve ran on instead of refusing:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// curl to the API; (HTTP status, body).
    fn curl(&self, method: &str, path: &str, token: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-H", "Content-Type: application/json"])
            .args(if method == "POST" {
                vec!["-d", "{}"]
            } else {
                vec![]
            })
            .arg(format!("http://127.0.0.1:{}{path}", self.api))
            .output()
            .expect("curl (Debian package `curl`)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (code.trim().parse().expect("status"), body.to_string())
    }

    fn token(&self) -> String {
        let t = self.json(&["token", "create", "--name", "ict-test", "--scope", "admin"]);
        t["token"].as_str().expect("token").to_string()
    }
}

/// A `serve` we started; stopped with SIGTERM (by its PID) when dropped.
struct Serve {
    child: Option<std::process::Child>,
}

impl Serve {
    /// SIGTERM and wait (bounded); its stderr.
    fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return String::new();
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let out = child.wait_with_output().expect("serve output");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the owner got from `issue-cert`.
struct Issued {
    p12: PathBuf,
    password: String,
    ca: PathBuf,
    serial: String,
}

fn issued_from(r: &serde_json::Value, out: &Path) -> Issued {
    let files: Vec<PathBuf> = r["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| PathBuf::from(f.as_str().unwrap()))
        .collect();
    Issued {
        p12: files
            .iter()
            .find(|f| f.extension().is_some_and(|e| e == "p12"))
            .expect("a .p12")
            .clone(),
        password: r["password"].as_str().expect("password").to_string(),
        ca: out.join("ca.pem"),
        serial: r["serial"].as_str().expect("serial").to_string(),
    }
}

/// What eapol_test concluded, and everything it printed.
struct Eapol {
    success: bool,
    output: String,
}

/// eapol_test (wpa_supplicant's test supplicant) with the owner's bundle, trusting the CA
/// file the owner got for the server, against `serve` as an access point would.
fn eapol_test(site: &Site, cert: &Issued, mac: &str) -> Eapol {
    eapol_test_with(
        site,
        &format!(
            "network={{\n  key_mgmt=WPA-EAP\n  eap=TLS\n  identity=\"host/device\"\n  \
             ca_cert=\"{}\"\n  private_key=\"{}\"\n  private_key_passwd=\"{}\"\n  \
             domain_match=\"{SERVER_NAME}\"\n}}\n",
            cert.ca.display(),
            cert.p12.display(),
            cert.password
        ),
        mac,
    )
}

/// eapol_test with this configuration.
fn eapol_test_with(site: &Site, network: &str, mac: &str) -> Eapol {
    let conf = site.path(&format!("eapol-{}.conf", uuid::Uuid::new_v4()));
    std::fs::write(&conf, network).unwrap();
    let out = Command::new("eapol_test")
        .arg("-c")
        .arg(&conf)
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &site.auth.to_string(),
            "-s",
            SECRET,
        ])
        .args(["-M", mac, "-N30:s:00-11-22-33-44-55:Werkplek", "-t", "10"])
        .output()
        .expect("eapol_test not found: install Debian's eapoltest");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Eapol {
        success: out.status.success() && output.trim_end().ends_with("SUCCESS"),
        output,
    }
}

/// The value after `key ` in a NetworkManager script line, unquoted.
fn nm_setting(script: &str, key: &str) -> String {
    let line = script
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{script}"));
    let value = line.trim().trim_start_matches(key).trim();
    let value = value.trim_end_matches('\\').trim();
    value.trim_matches('\'').to_string()
}

/// What the Linux and Android instructions tell an employee to set, set in wpa_supplicant (the
/// supplicant NetworkManager and Android both drive): the identity, the server's domain and
/// the CA from the bundle, and its PKCS#12 with the one-time password. The supplicant's own
/// verdict decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_linux_and_android_settings_of_a_bundle_connect() {
    let site = Site::new(support::Backend::Sqlite, "", "enabled = true").await;
    site.ok(&["ca", "init"]);
    let id = site.device("j.devries", "3c:22:fb:00:00:07");
    let out = site.path("bundle-linux");
    let r = site.json(&[
        "device",
        "issue-cert",
        &id,
        "--os",
        "linux,android",
        "--out",
        out.to_str().unwrap(),
    ]);
    let issued = issued_from(&r, &out);
    let script = std::fs::read_to_string(out.join("laptop-networkmanager.sh")).unwrap();
    let identity = nm_setting(&script, "802-1x.identity");
    let domain = nm_setting(&script, "802-1x.domain-suffix-match");
    assert_eq!(identity, id);
    assert_eq!(domain, SERVER_NAME);
    assert_eq!(nm_setting(&script, "802-1x.eap"), "tls");
    // the Android steps name the same values
    let leesmij = std::fs::read_to_string(out.join("LEESMIJ.txt")).unwrap();
    assert!(leesmij.contains(&format!("Domein: {domain}")), "{leesmij}");
    assert!(
        leesmij.contains(&format!("Identiteit: {identity}")),
        "{leesmij}"
    );
    assert!(!leesmij.contains("Windows 10"), "{leesmij}");
    // only what was asked for
    assert!(!out.join("laptop.mobileconfig").exists());
    assert!(!out.join("laptop-wlan.xml").exists());

    let _serve = site.serve();
    let network = format!(
        "network={{\n  key_mgmt=WPA-EAP\n  eap=TLS\n  identity=\"{identity}\"\n  \
         ca_cert=\"{}\"\n  private_key=\"{}\"\n  private_key_passwd=\"{}\"\n  \
         domain_suffix_match=\"{domain}\"\n}}\n",
        out.join("ca.pem").display(),
        issued.p12.display(),
        issued.password
    );
    let r = eapol_test_with(&site, &network, "3c:22:fb:00:00:07");
    assert!(r.success, "{}", r.output);
    assert!(r.output.contains("CTRL-EVENT-EAP-SUCCESS"), "{}", r.output);
    // a server under another name is refused by the same settings
    let wrong = network.replace(&domain, "elders.example");
    let r = eapol_test_with(&site, &wrong, "3c:22:fb:00:00:07");
    assert!(!r.success, "{}", r.output);
}

/// The SHA-256 of the server certificate eapol_test was shown (its PEER-CERT event, depth 0).
fn presented_server_cert(output: &str) -> Option<String> {
    output
        .lines()
        .filter(|l| l.contains("CTRL-EVENT-EAP-PEER-CERT") && l.contains("depth=0"))
        .find_map(|l| l.split("hash=").nth(1))
        .map(|h| h.split_whitespace().next().unwrap_or("").to_lowercase())
}

fn sha256_of_first_cert(path: &Path) -> String {
    pki::fingerprint(pki::load_cert_chain(path).unwrap()[0].as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_server_keeps_the_ca_and_devices_keep_connecting() {
    let site = Site::new(support::Backend::Sqlite, "", "enabled = true").await;
    let out = site.fails(&["ca", "renew-server"]);
    assert!(out.contains("poortwachter ca init"), "{out}");
    site.ok(&["ca", "init"]);
    let ca_before = std::fs::read(site.path("pki/ca.pem")).unwrap();
    let ca_fp = openssl(&[
        "x509",
        "-in",
        site.path("pki/ca.pem").to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    let old_server = sha256_of_first_cert(&site.path("pki/server.pem"));
    let id = site.device("j.devries", "3c:22:fb:00:00:01");
    let before = site.issue(&id);

    let mut serve = site.serve();
    let r = eapol_test(&site, &before, "3c:22:fb:00:00:01");
    assert!(r.success, "{}", r.output);
    assert_eq!(
        presented_server_cert(&r.output).as_deref(),
        Some(old_server.as_str()),
        "{}",
        r.output
    );
    serve.stop();

    // weeks ahead of the end: a new server certificate and key, the CA untouched
    let renewed = site.json(&["ca", "renew-server", "--days", "400"]);
    assert_eq!(std::fs::read(site.path("pki/ca.pem")).unwrap(), ca_before);
    assert_eq!(
        openssl(&[
            "x509",
            "-in",
            site.path("pki/ca.pem").to_str().unwrap(),
            "-noout",
            "-fingerprint",
            "-sha256"
        ]),
        ca_fp
    );
    let new_server = sha256_of_first_cert(&site.path("pki/server.pem"));
    assert_ne!(new_server, old_server);
    assert_eq!(renewed["fingerprint"].as_str(), Some(new_server.as_str()));
    assert_eq!(renewed["capped_by_ca"], false);
    let verified = openssl(&[
        "verify",
        "-CAfile",
        site.path("pki/ca.pem").to_str().unwrap(),
        site.path("pki/server.pem").to_str().unwrap(),
    ]);
    assert!(verified.trim_end().ends_with(": OK"), "{verified}");
    use std::os::unix::fs::PermissionsExt;
    for key in ["pki/server.key", "pki/server.key.previous"] {
        let mode = std::fs::metadata(site.path(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    assert_eq!(
        sha256_of_first_cert(&site.path("pki/server.pem.previous")),
        old_server
    );
    let days = openssl(&[
        "x509",
        "-in",
        site.path("pki/server.pem").to_str().unwrap(),
        "-noout",
        "-checkend",
        &(399 * 86_400).to_string(),
    ]);
    assert!(days.contains("will not expire"), "{days}");

    // after a restart the supplicant with the certificate from before the renewal still
    // gets in, shown the new server certificate
    let _serve = site.serve();
    let r = eapol_test(&site, &before, "3c:22:fb:00:00:01");
    assert!(r.success, "{}", r.output);
    assert_eq!(
        presented_server_cert(&r.output).as_deref(),
        Some(new_server.as_str()),
        "{}",
        r.output
    );

    // the gauges, from the running service
    let token = site.token();
    let (status, text) = site.curl("GET", "/api/v1/metrics", &token);
    assert_eq!(status, 200, "{text}");
    let gauge = |kind: &str| -> i64 {
        text.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "poortwachter_certificate_expiry_seconds{{kind=\"{kind}\""
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {kind} gauge:\n{text}"))
    };
    let server_left = gauge("server");
    assert!(
        (399 * 86_400..=400 * 86_400).contains(&server_left),
        "{server_left}"
    );
    assert!(gauge("ca") > 9 * 365 * 86_400);
}

#[test]
fn ca_init_says_to_renew_when_only_the_server_certificate_is_gone_and_force_warns() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("poortwachter.toml");
    let d = dir.path().display();
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite:{d}/r.db\"\n[radius]\nauth_listen = \"127.0.0.1:0\"\n\
             acct_listen = \"127.0.0.1:0\"\n[pki]\nca_cert = \"{d}/pki/ca.pem\"\n\
             ca_key = \"{d}/pki/ca.key\"\n[eap]\nserver_cert = \"{d}/pki/server.pem\"\n\
             server_key = \"{d}/pki/server.key\"\nserver_name = \"{SERVER_NAME}\"\n\
             [vlans]\nworkspace = 100\nguest = 200\nquarantine = 666\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["ca", "init"]).status.success());
    std::fs::remove_file(dir.path().join("pki/server.pem")).unwrap();
    let out = run(&["ca", "init"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("ca renew-server"), "{err}");
    assert!(err.contains("strand every device"), "{err}");
    let ca_before = std::fs::read(dir.path().join("pki/ca.pem")).unwrap();
    let out = run(&["ca", "renew-server"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.path().join("pki/ca.pem")).unwrap(),
        ca_before
    );
    let out = run(&["ca", "init", "--force"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("WARNING: --force REPLACES the CA"), "{err}");
    assert_ne!(
        std::fs::read(dir.path().join("pki/ca.pem")).unwrap(),
        ca_before
    );
}

/// libfaketime (Debian package `faketime`), preloaded into the binary itself (not through
/// the `faketime` wrapper, which would stand between us and the PID we stop): the clock
/// starts at `at` and runs on.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn faketime_command(site: &Site, at: &str, args: &[&str]) -> Command {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} not found: install Debian's faketime"
    );
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(&site.config)
        .args(args)
        .env_remove("RUST_LOG")
        .env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME", format!("@{at}"))
        .env("FAKETIME_DONT_RESET", "1")
        .current_dir(site.dir.path());
    c
}

fn faketime(site: &Site, at: &str, args: &[&str]) -> Output {
    faketime_command(site, at, args)
        .output()
        .expect("run poortwachter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_warnings_under_a_moved_clock() {
    let site = Site::new(support::Backend::Sqlite, "", "").await;
    site.ok(&["ca", "init"]);
    let server_end = pki::read_cert_info(&site.path("pki/server.pem"))
        .unwrap()
        .not_after;
    let ca_end = pki::read_cert_info(&site.path("pki/ca.pem"))
        .unwrap()
        .not_after;
    let device = site.device("j.devries", "3c:22:fb:00:00:01");
    let day = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();

    let out = site.ok(&["check-config"]);
    assert!(
        out.contains("certificate  ok: RADIUS server certificate"),
        "{out}"
    );
    assert!(out.contains("certificate  ok: CA certificate"), "{out}");

    // 20 days before the server certificate ends: a warning, still OK
    let at = day(server_end - chrono::Duration::days(20) + chrono::Duration::hours(1));
    let out = faketime(&site, &at, &["check-config"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("WARNING: RADIUS server certificate"),
        "{text}"
    );
    assert!(
        text.contains("(19 days left)") || text.contains("(20 days left)"),
        "{text}"
    );
    assert!(
        text.contains("warning: RADIUS server certificate"),
        "{text}"
    );
    let json: serde_json::Value = {
        let out = faketime(&site, &at, &["--json", "check-config"]);
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let server = json["certificates"]["checked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "server")
        .unwrap()
        .clone();
    assert_eq!(server["level"], "warning");
    assert_eq!(json["ok"], true);

    // serve logs it at start
    let mut serve = Serve {
        child: Some(
            faketime_command(&site, &at, &["serve"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("serve under libfaketime"),
        ),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", site.api)).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        let exited = serve
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        assert!(exited.is_none(), "serve exited: {}", serve.stop());
        std::thread::sleep(Duration::from_millis(100));
    }
    // the warning is logged before the API listens
    let log = serve.stop();
    assert!(
        log.contains("WARN") && log.contains("RADIUS server certificate"),
        "{log}"
    );
    assert!(log.contains("days left"), "{log}");

    // after the end: check-config fails, serve refuses to start (EAP cannot be served)
    let at = day(server_end + chrono::Duration::days(2));
    let out = faketime(&site, &at, &["check-config"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("EXPIRED"), "{text}");
    let preload = format!("LD_PRELOAD={LIBFAKETIME}");
    let fake = format!("FAKETIME=@{at}");
    let refused = site.serve_refuses(Some(&["env", &preload, &fake]));
    assert!(refused.contains("expired on"), "{refused}");
    assert!(refused.contains("ca renew-server"), "{refused}");

    // after the CA's end: both expired, and nothing can be issued
    let at = day(ca_end + chrono::Duration::days(1));
    let out = faketime(&site, &at, &["check-config"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(text.contains("EXPIRED: CA certificate"), "{text}");
    let out = faketime(&site, &at, &["ca", "renew-server"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("the CA expired on"), "{text}");
    let dir = site.path("late");
    let out = faketime(
        &site,
        &at,
        &[
            "device",
            "issue-cert",
            &device,
            "--out",
            dir.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("the CA expired on"), "{text}");
    assert!(!dir.exists(), "nothing written");
}

both_stores!(device_list_and_reissue_expiring_within, |b| async move {
    let site = Site::new(b, "device_cert_lifetime = \"20d\"", "").await;
    site.ok(&["ca", "init"]);
    let soon = site.device("j.devries", "3c:22:fb:00:00:01");
    let first = site.issue(&soon);
    site.write_config("device_cert_lifetime = \"365d\"", "");
    let later = site.device("a.bakker", "3c:22:fb:00:00:02");
    site.issue(&later);
    let _no_cert = site.device("c.jansen", "3c:22:fb:00:00:03");

    let listed = site.ok(&["device", "list", "--expiring-within", "30"]);
    assert!(listed.contains(&soon[..8]), "{listed}");
    assert!(listed.contains("j.devries"), "{listed}");
    assert!(!listed.contains(&later[..8]), "{listed}");
    assert!(!listed.contains("c.jansen"), "{listed}");
    let json = site.json(&["device", "list", "--expiring-within", "30"]);
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["certificate"]["serial"], first.serial.as_str());
    assert_eq!(
        site.json(&["device", "list", "--expiring-within", "400"])
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // dry run: named, nothing issued
    let dry = site.json(&["device", "reissue", "--expiring-within", "30", "--dry-run"]);
    assert_eq!(dry["would_reissue"].as_array().unwrap().len(), 1);
    assert_eq!(dry["would_reissue"][0]["device"]["id"], soon.as_str());
    let serial_now = |id: &str| site.json(&["device", "show", id])["device"]["cert_serial"].clone();
    assert_eq!(serial_now(&soon), first.serial.as_str());

    let out = site.path("reissued");
    let done = site.json(&[
        "device",
        "reissue",
        "--expiring-within",
        "30",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(done["reissued"].as_array().unwrap().len(), 1);
    assert_eq!(done["failed"].as_array().unwrap().len(), 0);
    let new_serial = done["reissued"][0]["serial"].as_str().unwrap().to_string();
    assert_ne!(new_serial, first.serial);
    assert_eq!(serial_now(&soon), new_serial.as_str());
    assert!(out.join(&soon).join("ca.pem").exists());
    // audited as every issue is
    let audit = site.json(&["audit", "--target", &soon]);
    let issues = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "device.issue_cert")
        .count();
    assert_eq!(issues, 2, "{audit}");
    assert!(site
        .json(&["device", "list", "--expiring-within", "30"])
        .as_array()
        .unwrap()
        .is_empty());

    // the API's device list, the same rule
    let token = site.token();
    let _serve = site.serve();
    let (status, body) = site.curl("GET", "/api/v1/devices?expiring_within=400", &token);
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{page}");
    assert!(
        ids.contains(&soon.as_str()) && ids.contains(&later.as_str()),
        "{page}"
    );
    let (status, body) = site.curl("GET", "/api/v1/devices?expiring_within=30", &token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["items"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "{body}"
    );
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_rollover_keeps_every_device_connected_until_the_old_ca_is_retired() {
    let site = Site::new(support::Backend::Sqlite, "", "enabled = true").await;
    site.ok(&["ca", "init"]);
    let old_ca = sha256_of_first_cert(&site.path("pki/ca.pem"));
    let (mac_a, mac_b) = ("3c:22:fb:00:00:0a", "3c:22:fb:00:00:0b");
    let a = site.device("j.devries", mac_a);
    let b = site.device("a.bakker", mac_b);
    let a_old = site.issue(&a);

    let rolled = site.json(&["ca", "rollover"]);
    assert_eq!(rolled["previous_fingerprint"], old_ca.as_str());
    let new_ca = sha256_of_first_cert(&site.path("pki/ca.pem"));
    assert_ne!(new_ca, old_ca);
    assert_eq!(
        sha256_of_first_cert(&site.path("pki/ca-previous.pem")),
        old_ca
    );
    // a certificate issued in the rollover's own second counts as the previous CA's (whole
    // seconds in X.509): B is issued after it
    std::thread::sleep(Duration::from_millis(1100));
    let b_new = site.issue(&b);
    // B's certificate is the new CA's; its owner trusts both CAs for the server
    let b_cert = openssl(&[
        "pkcs12",
        "-in",
        b_new.p12.to_str().unwrap(),
        "-passin",
        &format!("pass:{}", b_new.password),
        "-nokeys",
        "-clcerts",
    ]);
    let b_pem = site.path("b.pem");
    std::fs::write(&b_pem, &b_cert).unwrap();
    let v = openssl(&[
        "verify",
        "-CAfile",
        site.path("pki/ca.pem").to_str().unwrap(),
        b_pem.to_str().unwrap(),
    ]);
    assert!(v.trim_end().ends_with(": OK"), "{v}");
    assert_eq!(pki::load_cert_chain(&b_new.ca).unwrap().len(), 2);

    {
        let _serve = site.serve();
        let r = eapol_test(&site, &a_old, mac_a);
        assert!(r.success, "old-CA device: {}", r.output);
        let r = eapol_test(&site, &b_new, mac_b);
        assert!(r.success, "new-CA device: {}", r.output);
    }

    // A still depends on the old CA: retiring is refused, naming the count
    let refused = site.fails(&["ca", "retire-old"]);
    assert!(refused.contains("1 device(s)"), "{refused}");
    assert!(refused.contains(&a), "{refused}");
    assert!(site.path("pki/ca-previous.pem").exists());
    let dry = site.json(&["ca", "retire-old", "--dry-run"]);
    assert_eq!(dry["can_retire"], false);

    // each CA its own CRL
    let crl = site.ok(&[
        "ca",
        "crl",
        "--previous",
        "--out",
        site.path("old.crl").to_str().unwrap(),
    ]);
    assert!(crl.contains("CRL number"), "{crl}");
    let checked = Command::new("openssl")
        .args([
            "crl",
            "-in",
            site.path("old.crl").to_str().unwrap(),
            "-noout",
            "-CAfile",
            site.path("pki/ca-previous.pem").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&checked.stderr).contains("verify OK"));

    let out = site.path("rolled");
    let re = site.json(&[
        "device",
        "reissue",
        "--from-previous-ca",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(re["reissued"].as_array().unwrap().len(), 1);
    let a_new = issued_from(&re["reissued"][0], &out.join(&a));
    let retired = site.json(&["ca", "retire-old"]);
    assert!(retired["retired_ca_cert"]
        .as_str()
        .unwrap()
        .ends_with("ca-previous.pem.retired"));
    assert!(!site.path("pki/ca-previous.pem").exists());
    assert!(!site.path("pki/ca-previous.key").exists());
    let v = openssl(&[
        "verify",
        "-CAfile",
        site.path("pki/ca.pem").to_str().unwrap(),
        site.path("pki/server.pem").to_str().unwrap(),
    ]);
    assert!(v.trim_end().ends_with(": OK"), "{v}");

    let _serve = site.serve();
    let r = eapol_test(&site, &a_old, mac_a);
    assert!(!r.success, "the old CA is no longer trusted: {}", r.output);
    assert!(r.output.contains("FAILURE"), "{}", r.output);
    let r = eapol_test(&site, &a_new, mac_a);
    assert!(r.success, "re-issued device: {}", r.output);
    let r = eapol_test(&site, &b_new, mac_b);
    assert!(
        r.success,
        "new-CA device after the retirement: {}",
        r.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_ca_key_makes_api_issuing_answer_503() {
    let site = Site::new(support::Backend::Sqlite, "", "").await;
    site.ok(&["ca", "init"]);
    let id = site.device("j.devries", "3c:22:fb:00:00:01");
    let token = site.token();
    // the key goes to the offline machine; the certificate stays
    std::fs::rename(site.path("pki/ca.key"), site.path("offline-ca.key")).unwrap();
    let err = site.fails(&[
        "device",
        "issue-cert",
        &id,
        "--out",
        site.path("o").to_str().unwrap(),
    ]);
    assert!(err.contains("issuing is offline"), "{err}");
    let _serve = site.serve();
    let (status, body) = site.curl("POST", &format!("/api/v1/devices/{id}/certificate"), &token);
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("issuing is offline"), "{message}");
    assert!(
        !message.contains("offline-ca.key") && !message.contains("/pki/"),
        "{message}"
    );
    // nothing recorded
    assert!(site.json(&["device", "show", &id])["device"]["cert_serial"].is_null());
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().next().map(|u| u == "0"))
        })
        .expect("/proc/self/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pki_files_the_service_user_cannot_read_are_named() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new(support::Backend::Sqlite, "", "").await;
    // `ca init` as root, as the administrator did: a 0750 directory the service user (here
    // `nobody`) cannot enter
    site.ok(&["ca", "init"]);
    site.ok(&["migrate"]);
    let open = |p: &Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    open(site.dir.path(), 0o755);
    open(&site.config, 0o644);
    let db_dir = site
        ._db
        .url
        .strip_prefix("sqlite:")
        .map(|f| Path::new(f).parent().unwrap().to_path_buf());
    let as_service: Vec<&str> = if is_root() {
        // root reads anything: the check runs as another user, the way the service does
        let nobody = Command::new("id")
            .args(["-u", "nobody"])
            .output()
            .expect("id");
        assert!(nobody.status.success(), "a `nobody` user is needed");
        let uid = String::from_utf8_lossy(&nobody.stdout).trim().to_string();
        std::fs::create_dir_all(site.path("state")).unwrap();
        for p in [
            site.path("state"),
            db_dir.clone().unwrap(),
            PathBuf::from(site._db.url.strip_prefix("sqlite:").unwrap()),
        ] {
            let st = Command::new("chown")
                .args(["-R", &uid])
                .arg(&p)
                .status()
                .unwrap();
            assert!(st.success());
        }
        vec!["runuser", "-u", "nobody", "--"]
    } else {
        open(&site.path("pki"), 0o000);
        vec!["env"]
    };
    let server_pem = site.path("pki/server.pem");
    let mut check = Command::new(as_service[0]);
    check
        .args(&as_service[1..])
        .arg(BIN)
        .arg("--config")
        .arg(&site.config)
        .arg("check-config")
        .current_dir(site.dir.path());
    let out = check.output().expect("check-config as the service user");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("permission denied on {}", server_pem.display())),
        "{text}"
    );

    let refused = site.serve_refuses(Some(&as_service));
    assert!(
        refused.contains(&format!("permission denied on {}", server_pem.display())),
        "{refused}"
    );
    assert!(!refused.contains("no server certificate yet"), "{refused}");
    open(&site.path("pki"), 0o750);
}
