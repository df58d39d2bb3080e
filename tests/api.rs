//! The admin HTTP API over real HTTP, on both stores: each scope refused where it must be,
//! bad bodies refused with the field named and nothing written, the audit trail complete,
//! HTTPS with a certificate from our own CA, and the `token` commands of the CLI.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poortwachter::api::Api;
use poortwachter::config::Config;
use poortwachter::registry::tokens::TokenScope;
use poortwachter::registry::{Change, Registry, Rules};
use poortwachter::server::liveness::Liveness;
use serde_json::{json, Value};
use support::{Backend, TestDb};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");

fn config_text(url: &str, dir: &Path, extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"
[database]
url = "{url}"

[radius]
auth_listen = "127.0.0.1:18120"
acct_listen = "127.0.0.1:18130"

[[radius.clients]]
name = "test-ap"
network = "127.0.0.1/32"
secret = "test-secret-0123456789"

[vlans]
workspace = 100
guest = 200
quarantine = 666

[policy]
max_devices_per_owner = 2

[pki]
ca_cert = "{d}/ca.pem"
ca_key = "{d}/ca.key"

[eap]
server_cert = "{d}/server.pem"
server_key = "{d}/server.key"
server_name = "radius.test"

[api]
listen = "127.0.0.1:0"
max_body = 1024
{extra}
"#
    )
}

/// A running API over a fresh database, with one token of each scope.
struct Env {
    db: TestDb,
    registry: Registry,
    api: Option<Api>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    admin: String,
    helpdesk: String,
    posture: String,
    /// The RADIUS counters the API's /metrics shows.
    stats: Arc<poortwachter::server::stats::Stats>,
    /// The listeners' heartbeats /health reads; its origin a minute ago, so a listener that
    /// does not beat in a test counts as stalled.
    liveness: Arc<Liveness>,
}

impl Env {
    async fn new(backend: Backend) -> Env {
        Env::with(backend, false).await
    }

    async fn with(backend: Backend, https: bool) -> Env {
        Env::with_api(backend, https, "").await
    }

    /// An API with more `[api]` keys (`api_extra`).
    async fn with_api(backend: Backend, https: bool, api_extra: &str) -> Env {
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let mut extra = if https {
            format!(
                "tls_cert = \"{0}/server.pem\"\ntls_key = \"{0}/server.key\"\n",
                dir.path().display()
            )
        } else {
            String::new()
        };
        extra.push_str(api_extra);
        let text = config_text(&db.url, dir.path(), &extra);
        let config = Config::from_toml(&text, Path::new("test.toml"), Vec::new()).unwrap();
        poortwachter::pki::init_ca(
            &poortwachter::pki::CaFiles::from_config(&config),
            &config.pki,
            &config.eap.server_name,
            config.pki.key_type,
            false,
            chrono::Utc::now(),
        )
        .unwrap();
        let registry = Registry::connect(
            &db.url,
            4,
            Rules {
                max_devices_per_owner: 2,
                timezone: config.policy.timezone,
            },
        )
        .await
        .unwrap();
        registry.migrate().await.unwrap();
        let setup = Change::by("test-setup");
        let mut tokens = Vec::new();
        for (name, scope) in [
            ("admin-1", TokenScope::Admin),
            ("helpdesk-1", TokenScope::Helpdesk),
            ("posture-1", TokenScope::Posture),
        ] {
            let (_, secret) = registry.create_token(name, scope, &setup).await.unwrap();
            tokens.push(secret.expose().to_string());
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stats = Arc::new(poortwachter::server::stats::Stats::default());
        let origin = Instant::now()
            .checked_sub(Duration::from_secs(60))
            .expect("up for a minute");
        let liveness = Arc::new(Liveness::new(origin));
        let metrics = poortwachter::api::Metrics {
            stats: stats.clone(),
            eap: None,
            liveness: Some(liveness.clone()),
            registry: None,
            decisions: None,
            coa: None,
            directory: None,
            config: None,
        };
        let api =
            Api::serve_with(Arc::new(config), registry.clone(), listener, Some(metrics)).unwrap();
        let addr = api.local_addr();
        Env {
            db,
            registry,
            api: Some(api),
            addr,
            dir,
            admin: tokens[0].clone(),
            helpdesk: tokens[1].clone(),
            posture: tokens[2].clone(),
            stats,
            liveness,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Resp {
        let ct = body.map(|_| "application/json");
        http(
            self.addr,
            method,
            path,
            token,
            ct,
            body.unwrap_or("").as_bytes(),
        )
        .await
    }

    async fn get(&self, path: &str, token: &str) -> Resp {
        self.call("GET", path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call("POST", path, Some(token), Some(&body.to_string()))
            .await
    }

    /// Rows in the tables a change writes.
    async fn counts(&self) -> [i64; 5] {
        [
            self.db.count("owners").await,
            self.db.count("devices").await,
            self.db.count("device_macs").await,
            self.db.count("audit_log").await,
            self.db.count("certificates").await,
        ]
    }

    /// Both RADIUS listeners beat now: `/api/v1/health` answers 200 for the next 5 s.
    fn beat(&self) {
        self.liveness.beat(0, Instant::now());
        self.liveness.beat(1, Instant::now());
    }

    async fn stop(mut self) {
        if let Some(api) = self.api.take() {
            api.shutdown().await;
        }
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status and that the answer is a JSON error; returns its `field`.
    fn error(&self, status: u16) -> Option<String> {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        assert!(v["error"].is_string(), "no error message: {v}");
        v["field"].as_str().map(str::to_string)
    }
}

/// A tiny HTTP/1.1 client: one request per connection (`Connection: close`).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Resp {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    // the server may answer (413) and close before reading all of it
    let _ = stream.write_all(&request).await;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // a reset after the answer (unread request body) still leaves the answer
            Err(_) if !raw.is_empty() => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap().trim(), 16)
                .unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[end + 2..end + 2 + size]);
            rest = &rest[end + 2 + size + 2..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn owner_body(username: &str) -> Value {
    json!({"username": username, "display_name": "Jan de Vries", "role": "staff",
           "email": "jan@example.org"})
}

both_stores!(each_scope_is_refused_where_it_must_be, |b| async move {
    let env = Env::new(b).await;
    // public: health and the OpenAPI document. A listener without a heartbeat for a
    // minute: 503, naming it
    env.liveness.beat(0, Instant::now());
    let r = env.call("GET", "/api/v1/health", None, None).await;
    assert_eq!(r.status, 503);
    let body = r.json();
    assert_eq!(body["status"], "stalled");
    assert_eq!(body["stalled"][0]["listener"], "radius-acct");
    assert!(body["stalled"][0]["silent_seconds"].as_f64().unwrap() >= 60.0);
    assert_eq!(body["stalled"].as_array().unwrap().len(), 1);
    // both beating: healthy
    env.liveness.beat(1, Instant::now());
    let r = env.call("GET", "/api/v1/health", None, None).await;
    assert_eq!(r.status, 200);
    let doc = env
        .call("GET", "/api/v1/openapi.json", None, None)
        .await
        .json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/owners",
        "/owners/{username}",
        "/owners/{username}/disable",
        "/owners/{username}/enable",
        "/devices",
        "/devices/{id}",
        "/devices/{id}/revoke",
        "/devices/{id}/lost",
        "/devices/{id}/found",
        "/devices/{id}/compliance",
        "/devices/{id}/certificate",
        "/devices/{id}/posture",
        "/sessions",
        "/decisions",
        "/audit",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // no token, a wrong one, another scheme: 401 with a Bearer challenge
    for auth in [None, Some("pw_not-a-token"), Some("garbage")] {
        let r = env.call("GET", "/api/v1/owners", auth, None).await;
        r.error(401);
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    }
    let r = http(env.addr, "GET", "/api/v1/owners", None, None, b"").await;
    r.error(401);

    // helpdesk reads, does not write
    assert_eq!(env.get("/api/v1/owners", &env.helpdesk).await.status, 200);
    assert_eq!(env.get("/api/v1/audit", &env.helpdesk).await.status, 200);
    assert_eq!(
        env.get("/api/v1/sessions?active=true", &env.helpdesk)
            .await
            .status,
        200
    );
    assert_eq!(
        env.get("/api/v1/decisions?limit=5", &env.helpdesk)
            .await
            .status,
        200
    );
    let before = env.counts().await;
    env.post("/api/v1/owners", &env.helpdesk, owner_body("j.devries"))
        .await
        .error(403);
    // admin writes
    let r = env
        .post("/api/v1/owners", &env.admin, owner_body("j.devries"))
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let r = env
        .post(
            "/api/v1/devices",
            &env.admin,
            json!({"owner": "j.devries", "macs": ["00:1b:21:0a:bc:01"], "label": "ThinkPad"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let id = r.json()["device"]["id"].as_str().unwrap().to_string();
    for path in [
        format!("/api/v1/devices/{id}/revoke"),
        format!("/api/v1/devices/{id}/lost"),
        format!("/api/v1/devices/{id}/compliance"),
        format!("/api/v1/devices/{id}/certificate"),
        format!("/api/v1/devices/{id}/posture"),
        "/api/v1/owners/j.devries/disable".to_string(),
    ] {
        let r = env.post(&path, &env.helpdesk, json!({"reason": "x"})).await;
        r.error(403);
    }
    let r = env
        .call(
            "PUT",
            &format!("/api/v1/devices/{id}/compliance"),
            Some(&env.helpdesk),
            Some(r#"{"state": "compliant"}"#),
        )
        .await;
    r.error(403);
    // posture: only posture reports
    for path in ["/api/v1/owners", "/api/v1/devices", "/api/v1/audit"] {
        env.get(path, &env.posture).await.error(403);
    }
    env.get(&format!("/api/v1/devices/{id}"), &env.posture)
        .await
        .error(403);
    env.post(
        &format!("/api/v1/devices/{id}/lost"),
        &env.posture,
        json!({}),
    )
    .await
    .error(403);
    env.post("/api/v1/owners", &env.posture, owner_body("x.y"))
        .await
        .error(403);
    let r = env
        .post(
            &format!("/api/v1/devices/{id}/posture"),
            &env.posture,
            json!({"os_name": "windows", "os_version": "10.0.19045", "shoe_size": 3}),
        )
        .await;
    assert_eq!(r.error(400).as_deref(), Some("shoe_size"));
    let r = env
        .post(
            &format!("/api/v1/devices/{id}/posture"),
            &env.posture,
            json!({"os_name": "windows", "os_version": "10.0.19045", "pending_updates": 0,
                   "antivirus_enabled": true,
                   "antivirus_signatures_updated": chrono::Utc::now().to_rfc3339(),
                   "firewall_enabled": true, "disk_encrypted": false, "screen_lock": true,
                   "source": "intune"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let outcome = r.json();
    assert_eq!(outcome["compliance"], "noncompliant");
    assert_eq!(outcome["failed"][0]["check"], "disk_encryption");
    let after = env.counts().await;
    // the admin's owner and device and the posture report, each with its audit entry:
    // nothing from refused calls
    assert_eq!(after[0], before[0] + 1);
    assert_eq!(after[1], before[1] + 1);
    assert_eq!(after[3], before[3] + 3);
    let log = env
        .get("/api/v1/audit?by=api:posture-1", &env.admin)
        .await
        .json();
    assert_eq!(log["items"][0]["action"], "device.posture");
    assert_eq!(log["items"].as_array().unwrap().len(), 1);
    assert_eq!(outcome["applied"], true);
    // a report collected before that one: still 200, stored, the device left alone
    let r = env
        .post(
            &format!("/api/v1/devices/{id}/posture"),
            &env.posture,
            json!({"os_name": "windows", "os_version": "10.0.19045", "pending_updates": 0,
                   "antivirus_enabled": true,
                   "antivirus_signatures_updated":
                       (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339(),
                   "firewall_enabled": true, "disk_encrypted": true, "screen_lock": true,
                   "collected_at": (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let older = r.json();
    assert_eq!(older["applied"], false);
    assert_eq!(older["compliance"], "noncompliant");
    assert!(older["failed"].as_array().unwrap().is_empty());
    // a lost device's report: 409, as for its certificate; nothing written
    let r = env
        .post(&format!("/api/v1/devices/{id}/lost"), &env.admin, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let counts = env.counts().await;
    let reports = env.db.count("posture_reports").await;
    let r = env
        .post(
            &format!("/api/v1/devices/{id}/posture"),
            &env.posture,
            json!({"os_name": "windows", "os_version": "10.0.22631"}),
        )
        .await;
    let body = r.json();
    assert_eq!(r.error(409).as_deref(), Some("status"));
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("is lost; only an active device has its posture recorded"),
        "{message}"
    );
    assert_eq!(env.counts().await, counts);
    assert_eq!(env.db.count("posture_reports").await, reports);

    // a revoked token is refused from then on
    env.registry
        .revoke_token("helpdesk-1", &Change::by("test"))
        .await
        .unwrap();
    let r = env.get("/api/v1/owners", &env.helpdesk).await;
    r.error(401);
    assert!(r.header("www-authenticate").is_some());
    // the token's use was recorded
    let tokens = env.registry.tokens().await.unwrap();
    let admin = tokens.iter().find(|t| t.name == "admin-1").unwrap();
    assert!(admin.last_used_at.is_some());
    env.stop().await;
});

both_stores!(bad_requests_are_refused_and_write_nothing, |b| async move {
    let env = Env::new(b).await;
    let r = env
        .post("/api/v1/owners", &env.admin, owner_body("a.bakker"))
        .await;
    assert_eq!(r.status, 201);
    let start = env.counts().await;
    let admin = Some(env.admin.as_str());
    let cases: &[(&str, &str, Option<&str>)] = &[
        // (path, body, field)
        (
            "/api/v1/owners",
            r#"{"username": "x", "display_name": "#,
            None,
        ),
        (
            "/api/v1/owners",
            r#"{"username": "x", "role": "staff"}"#,
            Some("display_name"),
        ),
        (
            "/api/v1/owners",
            r#"{"username": "x", "display_name": "X", "role": 7}"#,
            Some("role"),
        ),
        (
            "/api/v1/owners",
            r#"{"username": "x", "display_name": "X", "role": "boss"}"#,
            Some("role"),
        ),
        (
            "/api/v1/owners",
            r#"{"username": "x", "display_name": "X", "role": "staff", "shoe_size": 44}"#,
            Some("shoe_size"),
        ),
        (
            "/api/v1/owners",
            r#"{"username": "x y", "display_name": "X", "role": "staff"}"#,
            Some("username"),
        ),
        (
            "/api/v1/owners",
            r#"{"username": "t.emp", "display_name": "X", "role": "temp"}"#,
            Some("valid_until"),
        ),
        (
            "/api/v1/owners",
            r#"{"username": "t.emp", "display_name": "X", "role": "temp", "valid_until": "31-12-2030"}"#,
            Some("valid_until"),
        ),
        ("/api/v1/owners", r#"[1, 2]"#, None),
        (
            "/api/v1/owners",
            r#"{"username": "x", "display_name": "X", "role": "staff"} trailing"#,
            None,
        ),
        (
            "/api/v1/devices",
            r#"{"owner": "a.bakker", "label": "L"}"#,
            Some("macs"),
        ),
        (
            "/api/v1/devices",
            r#"{"owner": "a.bakker", "macs": "00:1b:21:0a:bc:01", "label": "L"}"#,
            Some("macs"),
        ),
        (
            "/api/v1/devices",
            r#"{"owner": "a.bakker", "macs": ["00:1b:21:0a:bc:01", 5], "label": "L"}"#,
            Some("macs[1]"),
        ),
        (
            "/api/v1/devices",
            r#"{"owner": "a.bakker", "macs": ["not-a-mac"], "label": "L"}"#,
            Some("macs[0]"),
        ),
        (
            "/api/v1/devices",
            r#"{"owner": "a.bakker", "macs": ["ff:ff:ff:ff:ff:ff"], "label": "L"}"#,
            Some("macs[0]"),
        ),
        (
            "/api/v1/devices",
            r#"{"owner": "a.bakker", "macs": [], "label": "L"}"#,
            Some("macs"),
        ),
        (
            "/api/v1/devices",
            r#"{"owner": "a.bakker", "macs": ["00:1b:21:0a:bc:01"], "label": " "}"#,
            Some("label"),
        ),
        (
            "/api/v1/devices",
            r#"{"owner": "a.bakker", "macs": ["00:1b:21:0a:bc:01"], "label": "L", "kind": "fridge"}"#,
            Some("kind"),
        ),
        (
            "/api/v1/devices",
            r#"{"owner": "a.bakker", "macs": ["00:1b:21:0a:bc:01"], "label": "L", "vlan": 5}"#,
            Some("vlan"),
        ),
    ];
    for (path, body, field) in cases {
        let r = env.call("POST", path, admin, Some(body)).await;
        assert_eq!(
            r.error(400).as_deref(),
            *field,
            "{path} {body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // a device to act on
    let r = env
        .post(
            "/api/v1/devices",
            &env.admin,
            json!({"owner": "a.bakker", "macs": ["00:1b:21:0a:bc:02"], "label": "Phone", "kind": "phone"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let id = r.json()["device"]["id"].as_str().unwrap().to_string();
    let start = [start[0], start[1] + 1, start[2] + 1, start[3] + 1, start[4]];
    let revoke = format!("/api/v1/devices/{id}/revoke");
    let compliance = format!("/api/v1/devices/{id}/compliance");
    for (path, body, field) in [
        (revoke.as_str(), "{}", Some("reason")),
        (revoke.as_str(), r#"{"reason": "  "}"#, Some("reason")),
        (revoke.as_str(), r#"{"reason": 3}"#, Some("reason")),
        (compliance.as_str(), r#"{"state": "green"}"#, Some("state")),
        (compliance.as_str(), r#"{"note": "x"}"#, Some("state")),
        (
            compliance.as_str(),
            &format!(r#"{{"state": "compliant", "note": "{}"}}"#, "n".repeat(501)),
            Some("note"),
        ),
    ] {
        let r = env.call("POST", path, admin, Some(body)).await;
        assert_eq!(r.error(400).as_deref(), field, "{path} {body}");
    }
    // bad query parameters
    env.get("/api/v1/owners?limit=0", &env.admin)
        .await
        .error(400);
    assert_eq!(
        env.get("/api/v1/owners?limit=5000", &env.admin)
            .await
            .error(400)
            .as_deref(),
        Some("limit")
    );
    assert_eq!(
        env.get("/api/v1/owners?limit=x", &env.admin)
            .await
            .error(400)
            .as_deref(),
        Some("limit")
    );
    assert_eq!(
        env.get("/api/v1/owners?colour=red", &env.admin)
            .await
            .error(400)
            .as_deref(),
        Some("colour")
    );
    assert_eq!(
        env.get("/api/v1/devices?status=gone", &env.admin)
            .await
            .error(400)
            .as_deref(),
        Some("status")
    );
    assert_eq!(
        env.get("/api/v1/sessions?mac=nope", &env.admin)
            .await
            .error(400)
            .as_deref(),
        Some("mac")
    );
    // not JSON: 415
    let r = http(
        env.addr,
        "POST",
        "/api/v1/owners",
        admin,
        Some("text/plain"),
        b"username=x",
    )
    .await;
    r.error(415);
    let r = http(
        env.addr,
        "POST",
        "/api/v1/owners",
        admin,
        None,
        br#"{"username": "x"}"#,
    )
    .await;
    r.error(415);
    // too large: 413
    let big = format!(
        r#"{{"username": "x", "display_name": "{}", "role": "staff"}}"#,
        "x".repeat(2000)
    );
    let r = env.call("POST", "/api/v1/owners", admin, Some(&big)).await;
    r.error(413);
    // unknown route: 404; wrong method: 405 with Allow
    env.get("/api/v1/nothing", &env.admin).await.error(404);
    env.get("/nothing", &env.admin).await.error(404);
    let r = env.call("DELETE", "/api/v1/owners", admin, None).await;
    r.error(405);
    let allow = r.header("allow").unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    env.call("GET", &revoke, admin, None).await.error(405);
    // not found, conflicts: 404, 409
    env.get("/api/v1/owners/nobody", &env.admin)
        .await
        .error(404);
    env.get(
        "/api/v1/devices/00000000-0000-0000-0000-000000000000",
        &env.admin,
    )
    .await
    .error(404);
    env.get("/api/v1/devices/zz", &env.admin).await.error(400);
    assert_eq!(
        env.post("/api/v1/owners", &env.admin, owner_body("A.Bakker"))
            .await
            .error(409)
            .as_deref(),
        Some("username")
    );
    assert_eq!(
        env.post(
            "/api/v1/devices",
            &env.admin,
            json!({"owner": "a.bakker", "macs": ["00-1B-21-0A-BC-02"], "label": "Again"})
        )
        .await
        .error(409)
        .as_deref(),
        Some("macs")
    );
    assert_eq!(
        env.post(
            "/api/v1/devices",
            &env.admin,
            json!({"owner": "nobody", "macs": ["00:1b:21:0a:bc:09"], "label": "X"})
        )
        .await
        .error(404)
        .as_deref(),
        Some("owner")
    );
    env.post(
        &format!("/api/v1/devices/{id}/found"),
        &env.admin,
        json!({}),
    )
    .await
    .error(409);
    assert_eq!(
        env.counts().await,
        start,
        "a refused request wrote something"
    );
    env.stop().await;
});

both_stores!(every_change_is_audited_under_the_token, |b| async move {
    let env = Env::new(b).await;
    let actor = "api:admin-1";
    let mut expected: Vec<(String, String)> = Vec::new();
    for (i, (name, role)) in [
        ("b.one", "staff"),
        ("a.two", "contractor"),
        ("c.three", "staff"),
    ]
    .iter()
    .enumerate()
    {
        let mut body = owner_body(name);
        body["role"] = json!(role);
        if *role != "staff" {
            body["valid_until"] = json!("2999-12-31");
        }
        let r = env.post("/api/v1/owners", &env.admin, body).await;
        assert_eq!(r.status, 201, "{i}: {}", r.json());
        expected.push(("owner.add".into(), name.to_string()));
    }
    let r = env
        .post("/api/v1/devices", &env.admin,
              json!({"owner": "b.one", "macs": ["00:1b:21:0a:bc:11", "001b.210a.bc12"], "label": "Laptop"}))
        .await;
    assert_eq!(r.status, 201);
    let d1 = r.json()["device"]["id"].as_str().unwrap().to_string();
    expected.push(("device.register".into(), d1.clone()));
    let r = env
        .post("/api/v1/devices", &env.admin,
              json!({"owner": "b.one", "macs": ["00:1b:21:0a:bc:13"], "label": "Tablet", "kind": "tablet"}))
        .await;
    let d2 = r.json()["device"]["id"].as_str().unwrap().to_string();
    expected.push(("device.register".into(), d2.clone()));
    // the device limit (2)
    env.post(
        "/api/v1/devices",
        &env.admin,
        json!({"owner": "b.one", "macs": ["00:1b:21:0a:bc:14"], "label": "Third"}),
    )
    .await
    .error(409);

    let r = env
        .post(
            &format!("/api/v1/devices/{d1}/lost"),
            &env.admin,
            json!({"reason": "left on the train"}),
        )
        .await;
    assert_eq!(r.json()["status"], "lost");
    expected.push(("device.lost".into(), d1.clone()));
    // by MAC, no body at all
    let r = env
        .call(
            "POST",
            "/api/v1/devices/00-1B-21-0A-BC-11/found",
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["status"], "active");
    expected.push(("device.found".into(), d1.clone()));
    let r = env
        .call(
            "PUT",
            &format!("/api/v1/devices/{d1}/compliance"),
            Some(&env.admin),
            Some(r#"{"state": "compliant", "note": "checked by hand"}"#),
        )
        .await;
    assert_eq!(r.json()["compliance"], "compliant");
    expected.push(("device.compliance".into(), d1.clone()));
    let r = env
        .post(
            &format!("/api/v1/devices/{d2}/revoke"),
            &env.admin,
            json!({"reason": "sold"}),
        )
        .await;
    assert_eq!(r.json()["status"], "revoked");
    expected.push(("device.revoke".into(), d2.clone()));
    let r = env
        .post("/api/v1/owners/a.two/disable", &env.admin, json!({}))
        .await;
    assert_eq!(r.json()["disabled"], true);
    expected.push(("owner.disable".into(), "a.two".into()));
    let r = env
        .call(
            "POST",
            "/api/v1/owners/a.two/enable",
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(r.json()["disabled"], false);
    expected.push(("owner.enable".into(), "a.two".into()));
    // a certificate: the bundle and its password, once; the registry records it
    let r = env
        .post(
            &format!("/api/v1/devices/{d1}/certificate"),
            &env.admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let issued = r.json();
    assert!(issued["pkcs12"].as_str().unwrap().len() > 100);
    assert!(issued["password"].as_str().unwrap().len() >= 16);
    // every file of the bundle, as issue-cert writes them: the same function made them
    let names: Vec<&str> = issued["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"LEESMIJ.txt"), "{names:?}");
    assert!(
        names.iter().any(|n| n.ends_with(".mobileconfig")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with("-installeren.cmd")),
        "{names:?}"
    );
    assert_eq!(issued["files"][0]["private"], true);
    assert_eq!(issued["files"][0]["content"], issued["pkcs12"]);
    // a bundle for one system; an unknown system is refused by name and issues nothing
    let r = env
        .post(
            &format!("/api/v1/devices/{d1}/certificate"),
            &env.admin,
            json!({"os": ["android"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let android = r.json();
    let names: Vec<&str> = android["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    expected.push(("device.issue_cert".into(), d1.clone()));
    let r = env
        .post(
            &format!("/api/v1/devices/{d1}/certificate"),
            &env.admin,
            json!({"os": ["amiga"]}),
        )
        .await;
    assert_eq!(r.error(400).as_deref(), Some("os[0]"));
    let issued = android;
    expected.push(("device.issue_cert".into(), d1.clone()));
    let device = env
        .get(&format!("/api/v1/devices/{d1}"), &env.helpdesk)
        .await
        .json();
    assert_eq!(device["cert_fingerprint"], issued["fingerprint"]);
    assert_eq!(device["certificates"].as_array().unwrap().len(), 2);
    assert_eq!(env.db.count("certificates").await, 2);
    // a revoked device gets none
    env.post(
        &format!("/api/v1/devices/{d2}/certificate"),
        &env.admin,
        json!({}),
    )
    .await
    .error(409);

    // the audit log: one entry per change, newest first, all by the token
    let log = env
        .get(
            &format!("/api/v1/audit?by={actor}&limit=1000"),
            &env.helpdesk,
        )
        .await
        .json();
    let got: Vec<(String, String)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["target_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert!(log["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] == actor));
    // the certificate's entry holds no key material
    assert!(!log
        .to_string()
        .contains(issued["password"].as_str().unwrap()));
    assert_eq!(
        env.db.count("audit_log").await as usize,
        expected.len() + 3,
        "3 token.create"
    );
    // audit pages
    let p1 = env
        .get(&format!("/api/v1/audit?by={actor}&limit=4"), &env.helpdesk)
        .await
        .json();
    assert_eq!(p1["items"].as_array().unwrap().len(), 4);
    assert_eq!(p1["next_offset"], 4);
    let p2 = env
        .get(
            &format!("/api/v1/audit?by={actor}&limit=4&offset=4"),
            &env.helpdesk,
        )
        .await
        .json();
    assert_ne!(p1["items"][0]["id"], p2["items"][0]["id"]);
    let target = env
        .get(&format!("/api/v1/audit?target={d1}"), &env.helpdesk)
        .await
        .json();
    assert_eq!(target["items"].as_array().unwrap().len(), 6);

    // owners: pages, filters
    let p = env
        .get("/api/v1/owners?limit=2", &env.helpdesk)
        .await
        .json();
    let names: Vec<&str> = p["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.two", "b.one"]);
    assert_eq!(p["total"], 3);
    assert_eq!(p["next_offset"], 2);
    let p = env
        .get("/api/v1/owners?limit=2&offset=2", &env.helpdesk)
        .await
        .json();
    assert_eq!(p["items"][0]["username"], "c.three");
    assert_eq!(p["next_offset"], Value::Null);
    let p = env
        .get("/api/v1/owners?role=contractor", &env.helpdesk)
        .await
        .json();
    assert_eq!(p["total"], 1);
    let p = env
        .get("/api/v1/owners?disabled=false&role=staff", &env.helpdesk)
        .await
        .json();
    assert_eq!(p["total"], 2);
    assert_eq!(
        env.get("/api/v1/owners/B.ONE", &env.helpdesk).await.json()["username"],
        "b.one"
    );
    // devices: filters
    let p = env
        .get("/api/v1/devices?owner=b.one&status=revoked", &env.helpdesk)
        .await
        .json();
    assert_eq!(p["total"], 1);
    assert_eq!(p["items"][0]["id"], d2.as_str());
    let p = env
        .get("/api/v1/devices?limit=1", &env.helpdesk)
        .await
        .json();
    assert_eq!(p["total"], 2);
    assert_eq!(p["items"].as_array().unwrap().len(), 1);
    env.get("/api/v1/devices?owner=nobody", &env.helpdesk)
        .await
        .error(404);
    env.stop().await;
});

/// HTTPS with the server certificate `ca init` makes, checked by curl against our CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_our_ca() {
    let env = Env::with(Backend::Sqlite, true).await;
    let port = env.addr.port();
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(env.dir.path().join("ca.pem"))
        .args(["--resolve", &format!("radius.test:{port}:127.0.0.1")])
        .args(["-H", &format!("Authorization: Bearer {}", env.admin)])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("https://radius.test:{port}/api/v1/owners"))
        .output()
        .await
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "200", "{body}");
    assert_eq!(serde_json::from_str::<Value>(body).unwrap()["total"], 0);
    // plain HTTP on the HTTPS port gets no answer
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(env.addr),
    )
    .await;
    assert!(r.is_ok());
    env.stop().await;
}

both_stores!(token_commands_store_only_a_hash, |b| async move {
    let db = TestDb::new(b).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("poortwachter.toml");
    std::fs::write(&config, config_text(&db.url, dir.path(), "")).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["--actor", "ict.anna"])
            .args(args)
            .env_remove("POORTWACHTER_CONFIG")
            .env_remove("RUST_LOG")
            .output()
            .expect("run poortwachter")
    };
    assert!(run(&["migrate"]).status.success());
    let out = run(&[
        "--json",
        "token",
        "create",
        "--name",
        "servicedesk",
        "--scope",
        "helpdesk",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("pw_"));
    assert_eq!(created["scope"], "helpdesk");
    // refused: same name (any case), bad scope, bad name
    for args in [
        [
            "token",
            "create",
            "--name",
            "ServiceDesk",
            "--scope",
            "admin",
        ],
        ["token", "create", "--name", "other", "--scope", "root"],
        ["token", "create", "--name", "has space", "--scope", "admin"],
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?}");
    }
    // the table holds the SHA-256, never the token
    let hash = poortwachter::registry::tokens::token_hash(&token);
    // (an UPDATE that changes nothing counts the rows it matches)
    let matching = format!(
        "UPDATE api_tokens SET scope = scope WHERE token_hash = '{hash}' AND name = 'servicedesk'"
    );
    assert_eq!(db.execute(&matching).await.unwrap(), 1);
    if b == Backend::Sqlite {
        let file = db.url.strip_prefix("sqlite:").unwrap();
        let mut bytes = std::fs::read(file).unwrap();
        for ext in ["-wal", "-shm"] {
            bytes.extend(std::fs::read(format!("{file}{ext}")).unwrap_or_default());
        }
        let secret = &token.as_bytes()[3..];
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "the token is in the database file"
        );
        assert!(bytes.windows(hash.len()).any(|w| w == hash.as_bytes()));
    }
    let secret_part = &token[3..];
    assert_eq!(
        db.execute(&format!(
            "UPDATE api_tokens SET scope = scope WHERE token_hash LIKE '%{secret_part}%' OR name LIKE '%{secret_part}%'"
        ))
        .await
        .unwrap(),
        0
    );
    // list, revoke, list
    let out = run(&["token", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("servicedesk") && text.contains("helpdesk"),
        "{text}"
    );
    assert!(!text.contains(secret_part));
    let out = run(&["token", "revoke", "SERVICEDESK"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["--json", "token", "list"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(list[0]["revoked_at"].is_string());
    assert!(!run(&["token", "revoke", "nobody"]).status.success());
    // both changes audited by the CLI's actor, without the token
    let out = run(&["--json", "audit", "--by", "ict.anna"]);
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["token.revoke", "token.create"]);
    assert!(!log.to_string().contains(secret_part));
    assert!(!log.to_string().contains(&hash));
});

both_stores!(
    metrics_for_readers_in_the_prometheus_format,
    |backend| async move {
        let env = Env::new(backend).await;
        poortwachter::server::stats::Stats::inc(&env.stats.accepts);
        poortwachter::server::stats::Stats::inc(&env.stats.dropped_bad_authenticator);
        let r = http(
            env.addr,
            "GET",
            "/api/v1/metrics",
            Some(&env.helpdesk),
            None,
            b"",
        )
        .await;
        assert_eq!(r.status, 200);
        let body = String::from_utf8_lossy(&r.body).to_string();
        assert!(
            body.contains("\npoortwachter_radius_accepts_total 1\n"),
            "{body}"
        );
        assert!(
            body.contains("\npoortwachter_radius_dropped_bad_authenticator_total 1\n"),
            "{body}"
        );
        assert!(body.contains("# TYPE poortwachter_radius_rejects_total counter"));
        // readers only: no token, and the posture scope, are refused
        let r = http(env.addr, "GET", "/api/v1/metrics", None, None, b"").await;
        assert_eq!(r.status, 401);
        let r = http(
            env.addr,
            "GET",
            "/api/v1/metrics",
            Some(&env.posture),
            None,
            b"",
        )
        .await;
        assert_eq!(r.status, 403);
    }
);

// ---- connection limits (issue 11): what a client sees

/// Reads until the peer closes (EOF or reset) or `within` passes: how long that took, or
/// `None` if it was still open. Bytes it sends meanwhile are kept in `got`.
async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    within: Duration,
    got: &mut Vec<u8>,
) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A sample's value in a Prometheus text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

/// One keep-alive request on an open connection, and its whole answer (by Content-Length).
async fn keep_alive_get(stream: &mut tokio::net::TcpStream, path: &str) -> Resp {
    let req = format!("GET {path} HTTP/1.1\r\nHost: api.test\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .expect("content-length");
            if raw.len() >= end + 4 + len {
                return parse_response(&raw);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before the answer: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    }
}

/// A connection from `source` (any 127/8 address on loopback) to the API.
async fn connect_from(source: &str, to: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// 200 clients that send their request head one byte a second are all closed by the server
/// at `api.header_timeout` (2 s), and a normal request meanwhile is answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_and_the_api_answers_meanwhile() {
    const SLOW: usize = 200;
    let header_timeout = Duration::from_secs(2);
    let env = Env::with_api(
        Backend::Sqlite,
        false,
        "header_timeout = \"2s\"\nmax_connections = 512\nmax_connections_per_ip = 256",
    )
    .await;
    let head = b"GET /api/v1/health HTTP/1.1\r\nHost: api.test\r\nX-Slow: aaaaaaaaaaaaaaaa\r\n\r\n";
    let mut slow = tokio::task::JoinSet::new();
    // one after the other, so that none waits in the listen backlog
    for _ in 0..SLOW {
        let mut stream = tokio::net::TcpStream::connect(env.addr).await.unwrap();
        let start = Instant::now();
        slow.spawn(async move {
            let mut got = Vec::new();
            // one byte a second, never the whole head; stop at 3x the timeout in any case
            for byte in head.iter().take(6) {
                if stream.write_all(&[*byte]).await.is_err() {
                    return (start.elapsed(), got);
                }
                if closed_within(&mut stream, Duration::from_secs(1), &mut got)
                    .await
                    .is_some()
                {
                    return (start.elapsed(), got);
                }
            }
            (Duration::MAX, got)
        });
    }
    // while they are held: the API answers, quickly
    let t = Instant::now();
    while env.api.as_ref().unwrap().open_connections() < SLOW && t.elapsed() < header_timeout / 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open = env.api.as_ref().unwrap().open_connections();
    assert!(
        open >= SLOW,
        "the slow clients are held, not refused: {open}"
    );
    env.beat();
    let asked = Instant::now();
    let r = http(env.addr, "GET", "/api/v1/health", None, None, b"").await;
    let latency = asked.elapsed();
    assert_eq!(r.status, 200);
    assert!(latency < Duration::from_millis(500), "{latency:?}");
    let mut closed_after = Vec::new();
    while let Some(joined) = slow.join_next().await {
        let (after, got) = joined.unwrap();
        // closed without an answer (the head never came)
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        closed_after.push(after);
    }
    closed_after.sort();
    let (first, last) = (closed_after[0], closed_after[SLOW - 1]);
    assert!(
        first >= header_timeout - Duration::from_millis(100),
        "closed before api.header_timeout: {first:?}"
    );
    assert!(
        last <= header_timeout + Duration::from_millis(1500),
        "still open after api.header_timeout: {last:?}"
    );
    // and their places are given back
    let t = Instant::now();
    while env.api.as_ref().unwrap().open_connections() > 0 && t.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.api.as_ref().unwrap().open_connections(), 0);
    let metrics = http(
        env.addr,
        "GET",
        "/api/v1/metrics",
        Some(&env.helpdesk),
        None,
        b"",
    )
    .await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert_eq!(
        metric(&text, "poortwachter_api_closed_header_timeout_total"),
        SLOW as u64
    );
    env.stop().await;
}

/// With `max_connections_per_ip = 2` and `max_connections = 3`, the third connection from one
/// address and the fourth in all are closed at once; those admitted work, and a closed one
/// gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_a_cap_are_closed_at_once() {
    let env = Env::with_api(
        Backend::Sqlite,
        false,
        "max_connections = 3\nmax_connections_per_ip = 2",
    )
    .await;
    let mut a1 = connect_from("127.0.0.1", env.addr).await;
    let mut a2 = connect_from("127.0.0.1", env.addr).await;
    // the accept loop runs apart from the client: let it take these two first
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut a3 = connect_from("127.0.0.1", env.addr).await;
    let mut none = Vec::new();
    let refused = closed_within(&mut a3, Duration::from_secs(1), &mut none).await;
    assert!(
        refused.is_some(),
        "a third connection from one address is held"
    );
    let mut b1 = connect_from("127.0.0.2", env.addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c1 = connect_from("127.0.0.3", env.addr).await;
    let refused = closed_within(&mut c1, Duration::from_secs(1), &mut none).await;
    assert!(refused.is_some(), "a fourth connection in all is held");
    assert!(none.is_empty());
    // the admitted ones work
    env.beat();
    for stream in [&mut a1, &mut a2, &mut b1] {
        let r = keep_alive_get(stream, "/api/v1/health").await;
        assert_eq!(r.status, 200);
    }
    // a closed connection gives its place back
    drop(a2);
    let t = Instant::now();
    let mut a4 = loop {
        let mut s = connect_from("127.0.0.1", env.addr).await;
        let mut none = Vec::new();
        if closed_within(&mut s, Duration::from_millis(200), &mut none)
            .await
            .is_none()
        {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "the place is not given back"
        );
    };
    assert_eq!(keep_alive_get(&mut a4, "/api/v1/health").await.status, 200);
    let auth = format!(
        "GET /api/v1/metrics HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {}\r\n\r\n",
        env.helpdesk
    );
    a4.write_all(auth.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = closed_within(&mut a4, Duration::from_millis(500), &mut got).await;
    let text = String::from_utf8_lossy(&got).to_string();
    // (the retries above may have been refused too, by either cap, until the place was back)
    assert!(
        metric(
            &text,
            "poortwachter_api_refused_max_connections_per_ip_total"
        ) >= 1
    );
    assert!(metric(&text, "poortwachter_api_refused_max_connections_total") >= 1);
    assert_eq!(metric(&text, "poortwachter_api_connections_open"), 3);
    env.stop().await;
}

/// A keep-alive connection is held to `api.idle_timeout` (3 s) between requests, not to the
/// shorter `api.header_timeout` (1 s): it still works after 1.5 s idle, and is closed 3 s
/// after its last answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_after_idle_timeout() {
    let env = Env::with_api(
        Backend::Sqlite,
        false,
        "header_timeout = \"1s\"\nidle_timeout = \"3s\"",
    )
    .await;
    env.beat();
    let mut stream = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    assert_eq!(
        keep_alive_get(&mut stream, "/api/v1/health").await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        keep_alive_get(&mut stream, "/api/v1/health").await.status,
        200
    );
    let mut got = Vec::new();
    let closed = closed_within(&mut stream, Duration::from_secs(6), &mut got)
        .await
        .expect("closed after api.idle_timeout");
    assert!(got.is_empty());
    assert!(
        closed >= Duration::from_millis(2800) && closed <= Duration::from_millis(4500),
        "closed {closed:?} after the answer"
    );
    env.stop().await;
}

/// A request whose body does not come is answered 503 at `api.request_timeout`, as JSON, and
/// the connection closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_request_timeout_is_answered_503() {
    let env = Env::with_api(Backend::Sqlite, false, "request_timeout = \"1s\"").await;
    let mut stream = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/owners HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"user",
        env.admin
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let closed = closed_within(&mut stream, Duration::from_secs(4), &mut got)
        .await
        .expect("closed after api.request_timeout");
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
    let r = parse_response(&got);
    assert_eq!(r.status, 503);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("api.request_timeout"));
    assert_eq!(env.counts().await[0], 0);
    env.stop().await;
}

/// HTTPS: a client that opens a connection and never finishes the TLS handshake is closed
/// at `api.header_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_closed_at_header_timeout() {
    let env = Env::with_api(Backend::Sqlite, true, "header_timeout = \"1s\"").await;
    let mut stream = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    // the first bytes of a ClientHello record, then nothing
    stream.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
    let mut got = Vec::new();
    let closed = closed_within(&mut stream, Duration::from_secs(4), &mut got)
        .await
        .expect("closed after api.header_timeout");
    assert!(
        closed >= Duration::from_millis(900) && closed <= Duration::from_millis(2500),
        "{closed:?}"
    );
    env.stop().await;
}

both_stores!(patch_and_delete_owners_and_devices, |b| async move {
    let env = Env::new(b).await;
    let mut body = owner_body("t.tijdelijk");
    body["role"] = json!("temp");
    body["valid_until"] = json!("2026-12-31");
    body["department"] = json!("ICT");
    env.post("/api/v1/owners", &env.admin, body).await;
    let r = env
        .post(
            "/api/v1/devices",
            &env.admin,
            json!({"owner": "t.tijdelijk", "macs": ["02:00:5e:10:00:01"], "label": "Telefoon", "kind": "phone"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let id = r.json()["device"]["id"].as_str().unwrap().to_string();

    // a contract extension; null clears the department
    let patch = |path: &str, token: &str, body: &str| {
        let (path, token, body) = (path.to_string(), token.to_string(), body.to_string());
        let env = &env;
        async move { env.call("PATCH", &path, Some(&token), Some(&body)).await }
    };
    let r = patch(
        "/api/v1/owners/t.tijdelijk",
        &env.admin,
        r#"{"valid_until": "2027-06-30", "department": null}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["valid_until"], "2027-06-30");
    assert_eq!(r.json()["department"], Value::Null);
    assert_eq!(r.json()["email"], "jan@example.org");

    // refused, naming the field, writing nothing
    let counts = env.counts().await;
    for (body, field, status) in [
        (r#"{"valid_until": null}"#, "valid_until", 400),
        (r#"{"valid_until": "30-06-2027"}"#, "valid_until", 400),
        (r#"{"email": "geen"}"#, "email", 400),
        (r#"{"username": "ander"}"#, "username", 400),
        (r#"{"display_name": ""}"#, "display_name", 400),
    ] {
        let r = patch("/api/v1/owners/t.tijdelijk", &env.admin, body).await;
        assert_eq!(r.error(status).as_deref(), Some(field), "{body}");
    }
    patch("/api/v1/owners/niemand", &env.admin, "{}")
        .await
        .error(404);
    // a reading token reads only
    patch(
        "/api/v1/owners/t.tijdelijk",
        &env.helpdesk,
        r#"{"role": "staff"}"#,
    )
    .await
    .error(403);
    env.call(
        "DELETE",
        "/api/v1/owners/t.tijdelijk",
        Some(&env.helpdesk),
        None,
    )
    .await
    .error(403);
    env.call(
        "DELETE",
        &format!("/api/v1/devices/{id}"),
        Some(&env.helpdesk),
        None,
    )
    .await
    .error(403);
    // an owner with a device is not deleted
    let r = env
        .call(
            "DELETE",
            "/api/v1/owners/t.tijdelijk",
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(r.error(409).as_deref(), Some("username"));
    assert_eq!(env.counts().await, counts, "refused: nothing written");

    // the device: a new private MAC, the old one freed
    let r = patch(
        &format!("/api/v1/devices/{id}"),
        &env.admin,
        r#"{"add_macs": ["02:00:5e:10:00:02"], "remove_macs": ["02-00-5E-10-00-01"], "label": "Telefoon (nieuw)"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["macs"], json!(["02:00:5e:10:00:02"]));
    assert_eq!(r.json()["id"], id.as_str());
    let counts = env.counts().await;
    for (body, field, status) in [
        (r#"{"add_macs": ["zz:zz"]}"#, "add_macs", 400),
        (
            r#"{"remove_macs": ["02:00:5e:10:00:02"]}"#,
            "remove_macs",
            400,
        ),
        (
            r#"{"remove_macs": ["02:00:5e:10:00:09"]}"#,
            "remove_macs",
            400,
        ),
        (r#"{"kind": "fiets"}"#, "kind", 400),
        (r#"{"macs": []}"#, "macs", 400),
    ] {
        let r = patch(&format!("/api/v1/devices/{id}"), &env.admin, body).await;
        assert_eq!(r.error(status).as_deref(), Some(field), "{body}");
    }
    assert_eq!(env.counts().await, counts, "refused: nothing written");
    let compliant = env
        .get("/api/v1/devices?compliance=compliant", &env.helpdesk)
        .await
        .json();
    assert_eq!(compliant["items"], json!([]));
    let unknown = env
        .get("/api/v1/devices?compliance=unknown", &env.helpdesk)
        .await
        .json();
    assert_eq!(unknown["items"][0]["id"], id.as_str());
    let found = env
        .get("/api/v1/owners?search=tijdelijk%20VRIES", &env.helpdesk)
        .await
        .json();
    assert_eq!(found["items"][0]["username"], "t.tijdelijk");
    assert_eq!(found["items"][0]["source"], "manual");

    // delete the device, then the owner
    let r = env
        .call(
            "DELETE",
            &format!("/api/v1/devices/{id}"),
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = env
        .call(
            "DELETE",
            "/api/v1/owners/t.tijdelijk",
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(env.db.count("owners").await, 0);
    let audit = env
        .get("/api/v1/audit?target=t.tijdelijk", &env.helpdesk)
        .await
        .json();
    assert_eq!(audit["items"][0]["action"], "owner.delete");
    assert_eq!(audit["items"][0]["actor"], "api:admin-1");
    assert_eq!(audit["items"][1]["action"], "owner.edit");

    // disable with a reason
    env.post("/api/v1/owners", &env.admin, owner_body("v.vertrek"))
        .await;
    let r = env
        .post(
            "/api/v1/owners/v.vertrek/disable",
            &env.admin,
            json!({"reason": "uit dienst"}),
        )
        .await;
    assert_eq!(r.json()["disabled_reason"], "uit dienst");
    env.stop().await;
});

both_stores!(
    export_is_admin_only_and_erase_needs_a_leaver,
    |b| async move {
        let env = Env::new(b).await;
        env.post("/api/v1/owners", &env.admin, owner_body("l.leaver"))
            .await;
        let r = env.get("/api/v1/owners/l.leaver/export", &env.admin).await;
        assert_eq!(r.status, 200, "{}", r.json());
        assert_eq!(r.json()["owner"]["email"], "jan@example.org");
        assert_eq!(r.json()["audit"][0]["action"], "owner.add");
        env.get("/api/v1/owners/l.leaver/export", &env.helpdesk)
            .await
            .error(403);
        env.get("/api/v1/owners/niemand/export", &env.admin)
            .await
            .error(404);
        let counts = env.counts().await;
        let r = env
            .post(
                "/api/v1/owners/l.leaver/erase",
                &env.admin,
                json!({"confirm": "l.leaver"}),
            )
            .await;
        assert_eq!(r.error(409).as_deref(), Some("username"));
        let r = env
            .post(
                "/api/v1/owners/l.leaver/erase",
                &env.admin,
                json!({"confirm": "iemand"}),
            )
            .await;
        assert_eq!(r.error(400).as_deref(), Some("confirm"));
        assert_eq!(env.counts().await, counts, "refused: nothing written");
        env.post("/api/v1/owners/l.leaver/disable", &env.admin, json!({}))
            .await;
        let r = env
            .post(
                "/api/v1/owners/l.leaver/erase",
                &env.admin,
                json!({"confirm": "l.leaver"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.json());
        assert!(r.json()["username"]
            .as_str()
            .unwrap()
            .starts_with("gewist-"));
        assert_eq!(r.json()["email"], Value::Null);
        env.get("/api/v1/owners/l.leaver", &env.admin)
            .await
            .error(404);
        env.stop().await;
    }
);
