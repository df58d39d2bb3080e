//! SCIM 2.0 provisioning (RFC 7643, RFC 7644) over real HTTPS, on both stores: curl as the
//! identity provider, checked against our own CA, sending requests shaped as RFC 7644's
//! examples and as Entra ID and Okta document theirs. What counts is the registry after each
//! request (the owner, its source and state, the audit actor) and, for a delete, the
//! Disconnect-Request at a fake NAS from a real `poortwachter serve`.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poortwachter::api::Api;
use poortwachter::config::Config;
use poortwachter::model::{NewOwner, OwnerSource, Role};
use poortwachter::registry::tokens::TokenScope;
use poortwachter::registry::{AuditFilter, Change, Registry, Rules};
use serde_json::{json, Value};
use support::nas::FakeNas;
use support::serving::{free_tcp_port, free_udp_port, Serving};
use support::{radclient, Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");
const DEACTIVATED: &str = "uitgeschakeld via SCIM / deactivated by the identity provider";
const DELETED: &str = "verwijderd via SCIM / deprovisioned";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const OURS: &str = "urn:poortwachter:params:scim:schemas:extension:2.0:User";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const SERVER_NAME: &str = "radius.test";

fn config_text(url: &str, dir: &Path, extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"
[database]
url = "{url}"

[radius]
auth_listen = "127.0.0.1:18121"
acct_listen = "127.0.0.1:18131"

[[radius.clients]]
name = "test-ap"
network = "127.0.0.1/32"
secret = "test-secret-0123456789"

[vlans]
workspace = 100
guest = 200
quarantine = 666

[pki]
ca_cert = "{d}/ca.pem"
ca_key = "{d}/ca.key"

[eap]
server_cert = "{d}/server.pem"
server_key = "{d}/server.key"
server_name = "{SERVER_NAME}"

[api]
listen = "127.0.0.1:0"
max_body = 4096
tls_cert = "{d}/server.pem"
tls_key = "{d}/server.key"
{extra}
"#
    )
}

/// What curl received.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status and the SCIM answer's media type; the body.
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/scim+json"),
            "{self:?}"
        );
        self.json()
    }

    /// Asserts a SCIM error (RFC 7644 §3.12) with `status` and `scim_type`.
    fn error(&self, status: u16, scim_type: Option<&str>) -> String {
        let body = self.expect(status);
        assert_eq!(body["schemas"], json!([ERROR_SCHEMA]), "{body}");
        assert_eq!(body["status"], status.to_string(), "{body}");
        assert_eq!(body["scimType"].as_str(), scim_type, "{body}");
        body["detail"].as_str().expect("detail").to_string()
    }
}

/// One request with curl over HTTPS to `port`, checked against the CA in `ca`.
async fn curl(
    ca: &Path,
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Option<&str>,
) -> Resp {
    let mut c = tokio::process::Command::new("curl");
    c.args(["-sS", "-i", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{SERVER_NAME}:{port}:127.0.0.1")])
        .args(["-X", method]);
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(b) = body {
        c.args(["-H", &format!("Content-Type: {content_type}")])
            .args(["--data-binary", b]);
    }
    let out = c
        .arg(format!("https://{SERVER_NAME}:{port}{path}"))
        .output()
        .await
        .expect("curl not found: install Debian's curl (scripts/test does)");
    assert!(
        out.status.success(),
        "curl {method} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {text}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A query string value, percent-encoded.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The API over HTTPS on a fresh database, with a token of each scope.
struct Env {
    db: TestDb,
    registry: Registry,
    api: Option<Api>,
    port: u16,
    dir: tempfile::TempDir,
    scim: String,
    admin: String,
    helpdesk: String,
}

impl Env {
    async fn new(backend: Backend) -> Env {
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(&db.url, dir.path(), "");
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
            ("entra", TokenScope::Scim),
            ("admin-1", TokenScope::Admin),
            ("helpdesk-1", TokenScope::Helpdesk),
        ] {
            let (_, secret) = registry.create_token(name, scope, &setup).await.unwrap();
            tokens.push(secret.expose().to_string());
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let api = Api::serve(Arc::new(config), registry.clone(), listener).unwrap();
        assert!(api.is_https());
        let port = api.local_addr().port();
        Env {
            db,
            registry,
            api: Some(api),
            port,
            dir,
            scim: tokens[0].clone(),
            admin: tokens[1].clone(),
            helpdesk: tokens[2].clone(),
        }
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        let body = body.map(|b| b.to_string());
        curl(
            &self.dir.path().join("ca.pem"),
            self.port,
            method,
            path,
            Some(token),
            "application/scim+json",
            body.as_deref(),
        )
        .await
    }

    async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &self.scim, None).await
    }

    /// `GET /Users?filter=...`: the ListResponse.
    async fn filter(&self, filter: &str) -> Value {
        self.get(&format!("/scim/v2/Users?filter={}", enc(filter)))
            .await
            .expect(200)
    }

    /// A raw body (not JSON, or another content type).
    async fn raw(&self, method: &str, path: &str, content_type: &str, body: &str) -> Resp {
        curl(
            &self.dir.path().join("ca.pem"),
            self.port,
            method,
            path,
            Some(&self.scim),
            content_type,
            Some(body),
        )
        .await
    }

    /// Rows of owners and of the audit log.
    async fn counts(&self) -> [i64; 2] {
        [
            self.db.count("owners").await,
            self.db.count("audit_log").await,
        ]
    }

    async fn owner(&self, username: &str) -> poortwachter::model::Owner {
        self.registry
            .owner(username)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no owner {username}"))
    }

    async fn stop(mut self) {
        if let Some(api) = self.api.take() {
            api.shutdown().await;
        }
    }
}

/// Entra ID's create request, as Microsoft's SCIM endpoint tutorial documents it.
fn entra_create(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "emails": [{
            "primary": true,
            "type": "work",
            "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2b@testuser.com"
        }],
        "meta": {"resourceType": "User"},
        "name": {
            "formatted": "givenName familyName",
            "familyName": "familyName",
            "givenName": "givenName"
        },
        "roles": []
    })
}

/// Okta's create request, as Okta's SCIM 2.0 guide documents it.
fn okta_create() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

fn patch_op(operations: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
}

both_stores!(
    entra_id_and_okta_provision_change_and_deprovision,
    |b| async move {
        let env = Env::new(b).await;

        // discovery
        let spc = env.get("/scim/v2/ServiceProviderConfig").await.expect(200);
        assert_eq!(spc["patch"]["supported"], true);
        assert_eq!(spc["filter"]["supported"], true);
        assert_eq!(spc["bulk"]["supported"], false);
        let types = env.get("/scim/v2/ResourceTypes").await.expect(200);
        assert_eq!(types["Resources"][0]["endpoint"], "/Users");
        assert_eq!(
            types["Resources"][0]["schemaExtensions"][0]["schema"],
            ENTERPRISE
        );
        let schemas = env.get("/scim/v2/Schemas").await.expect(200);
        let ids: Vec<&str> = schemas["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                ENTERPRISE,
                OURS
            ]
        );

        // Entra ID: does the user exist? (its own probe with a name that cannot be a username)
        let none = env.filter(r#"userName eq "non-existent user""#).await;
        assert_eq!(none["totalResults"], 0);
        assert_eq!(none["Resources"], json!([]));

        // create
        let user_name = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1";
        let external = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef";
        let r = env
            .call(
                "POST",
                "/scim/v2/Users",
                &env.scim,
                Some(entra_create(user_name, external)),
            )
            .await;
        let created = r.expect(201);
        let id = created["id"].as_str().unwrap().to_string();
        uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(created["userName"], user_name);
        assert_eq!(created["externalId"], external);
        assert_eq!(created["active"], true);
        assert_eq!(created["displayName"], "givenName familyName");
        assert_eq!(created["userType"], "Employee");
        assert_eq!(created["meta"]["resourceType"], "User");
        let location = format!("https://{SERVER_NAME}:{}/scim/v2/Users/{id}", env.port);
        assert_eq!(created["meta"]["location"], location.as_str());
        assert_eq!(r.header("location"), Some(location.as_str()));
        assert_eq!(r.header("etag"), created["meta"]["version"].as_str());
        let owner = env.owner(user_name).await;
        assert_eq!(owner.id.to_string(), id);
        assert_eq!(owner.source, OwnerSource::Scim);
        assert_eq!(owner.external_id.as_deref(), Some(external));
        assert_eq!(owner.role, Role::Staff);
        assert_eq!(
            owner.email.as_deref(),
            Some("Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2b@testuser.com")
        );
        assert!(!owner.disabled);
        let audit = env
            .registry
            .audit(&AuditFilter {
                target_id: Some(user_name.to_string()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].actor, "scim:entra");
        assert_eq!(audit[0].action, "owner.scim.add");

        // read back: by id, by userName (any case), by externalId
        let got = env.get(&format!("/scim/v2/Users/{id}")).await.expect(200);
        assert_eq!(got, created);
        let found = env
            .filter(&format!(r#"userName eq "{}""#, user_name.to_uppercase()))
            .await;
        assert_eq!(found["totalResults"], 1);
        assert_eq!(found["startIndex"], 1);
        assert_eq!(
            found["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:ListResponse"
        );
        assert_eq!(found["Resources"][0]["id"], id.as_str());
        let found = env.filter(&format!(r#"externalId eq "{external}""#)).await;
        assert_eq!(found["Resources"][0]["id"], id.as_str());

        // the same userName again: 409 uniqueness, nothing written
        let before = env.counts().await;
        env.call(
            "POST",
            "/scim/v2/Users",
            &env.scim,
            Some(entra_create(user_name, "other")),
        )
        .await
        .error(409, Some("uniqueness"));
        assert_eq!(env.counts().await, before);

        // Entra ID's PATCH of the work address and the family name, and department by extension
        let r = env
        .call(
            "PATCH",
            &format!("/scim/v2/Users/{id}"),
            &env.scim,
            Some(patch_op(json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.formatted", "value": "Jan updatedFamilyName"},
                {"op": "Add", "path": format!("{ENTERPRISE}:department"), "value": "Burgerzaken"}
            ]))),
        )
        .await
        .expect(200);
        assert_eq!(r["emails"][0]["value"], "updatedEmail@microsoft.com");
        assert_eq!(r["displayName"], "Jan updatedFamilyName");
        assert_eq!(r[ENTERPRISE]["department"], "Burgerzaken");
        let owner = env.owner(user_name).await;
        assert_eq!(owner.email.as_deref(), Some("updatedEmail@microsoft.com"));
        assert_eq!(owner.display_name, "Jan updatedFamilyName");
        assert_eq!(owner.department.as_deref(), Some("Burgerzaken"));

        // Entra ID deactivates with a string boolean and a capitalised op
        let r = env
            .call(
                "PATCH",
                &format!("/scim/v2/Users/{id}"),
                &env.scim,
                Some(patch_op(
                    json!([{"op": "Replace", "path": "active", "value": "False"}]),
                )),
            )
            .await
            .expect(200);
        assert_eq!(r["active"], false);
        let owner = env.owner(user_name).await;
        assert!(owner.disabled);
        assert_eq!(owner.disabled_reason.as_deref(), Some(DEACTIVATED));
        let show = cli(&env, &["owner", "show", user_name]);
        assert!(show.contains(DEACTIVATED), "{show}");
        let shown = cli_json(&env, &["owner", "show", user_name]);
        assert_eq!(shown["owner"]["disabled"], true);
        assert_eq!(shown["owner"]["source"], "scim");
        // still a User (inactive), and found by a filter on active
        assert_eq!(
            env.get(&format!("/scim/v2/Users/{id}")).await.expect(200)["active"],
            false
        );
        assert_eq!(env.filter("active eq false").await["totalResults"], 1);
        // and back
        let r = env
            .call(
                "PATCH",
                &format!("/scim/v2/Users/{id}"),
                &env.scim,
                Some(patch_op(
                    json!([{"op": "Replace", "path": "active", "value": "True"}]),
                )),
            )
            .await
            .expect(200);
        assert_eq!(r["active"], true);
        assert!(!env.owner(user_name).await.disabled);

        // Okta: create, replace (PUT), deactivate with a PATCH without path
        let r = env
            .call("POST", "/scim/v2/Users", &env.scim, Some(okta_create()))
            .await
            .expect(201);
        let okta_id = r["id"].as_str().unwrap().to_string();
        assert_eq!(r["displayName"], "Test User");
        let found = env.filter(r#"userName eq "test.user@okta.local""#).await;
        assert_eq!(found["totalResults"], 1);
        let mut put = okta_create();
        put["id"] = Value::from(okta_id.as_str());
        put["name"] = json!({"givenName": "Another", "middleName": "", "familyName": "User"});
        put["displayName"] = Value::from("Another User");
        put["userType"] = Value::from("Contractor");
        put[OURS] = json!({"validUntil": "2030-06-30"});
        let r = env
            .call(
                "PUT",
                &format!("/scim/v2/Users/{okta_id}"),
                &env.scim,
                Some(put.clone()),
            )
            .await
            .expect(200);
        assert_eq!(r["displayName"], "Another User");
        assert_eq!(r["userType"], "Contractor");
        assert_eq!(r[OURS]["validUntil"], "2030-06-30");
        let owner = env.owner("test.user@okta.local").await;
        assert_eq!(owner.display_name, "Another User");
        assert_eq!(owner.role, Role::Contractor);
        assert_eq!(
            owner.valid_until,
            chrono::NaiveDate::from_ymd_opt(2030, 6, 30)
        );
        let r = env
            .call(
                "PATCH",
                &format!("/scim/v2/Users/{okta_id}"),
                &env.scim,
                Some(patch_op(
                    json!([{"op": "replace", "value": {"active": false}}]),
                )),
            )
            .await
            .expect(200);
        assert_eq!(r["active"], false);
        assert!(env.owner("test.user@okta.local").await.disabled);

        // paging over both (RFC 7644 §3.4.2.4)
        let page = env
            .get("/scim/v2/Users?startIndex=2&count=1")
            .await
            .expect(200);
        assert_eq!(page["totalResults"], 2);
        assert_eq!(page["itemsPerPage"], 1);
        assert_eq!(page["startIndex"], 2);
        assert_eq!(page["Resources"].as_array().unwrap().len(), 1);
        let page = env.get("/scim/v2/Users?count=0").await.expect(200);
        assert_eq!(page["totalResults"], 2);
        assert_eq!(page["Resources"], json!([]));

        // delete: disabled with its reason, kept; 404 from then on
        let r = env
            .call("DELETE", &format!("/scim/v2/Users/{id}"), &env.scim, None)
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
        let owner = env.owner(user_name).await;
        assert!(owner.disabled);
        assert_eq!(owner.disabled_reason.as_deref(), Some(DELETED));
        env.get(&format!("/scim/v2/Users/{id}"))
            .await
            .error(404, None);
        assert_eq!(
            env.filter(&format!(r#"userName eq "{user_name}""#)).await["totalResults"],
            0
        );
        env.call("DELETE", &format!("/scim/v2/Users/{id}"), &env.scim, None)
            .await
            .error(404, None);
        // the deactivated Okta user is deleted too: its reason becomes the deletion's
        let r = env
            .call(
                "DELETE",
                &format!("/scim/v2/Users/{okta_id}"),
                &env.scim,
                None,
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
        env.get(&format!("/scim/v2/Users/{okta_id}"))
            .await
            .error(404, None);
        assert_eq!(
            env.owner("test.user@okta.local")
                .await
                .disabled_reason
                .as_deref(),
            Some(DELETED)
        );

        // re-hired: the identity provider creates the userName again; the same owner comes back
        let r = env
            .call(
                "POST",
                "/scim/v2/Users",
                &env.scim,
                Some(entra_create(user_name, "new-object-id")),
            )
            .await
            .expect(201);
        assert_eq!(r["id"], id.as_str());
        assert_eq!(r["active"], true);
        let owner = env.owner(user_name).await;
        assert!(!owner.disabled);
        assert_eq!(owner.external_id.as_deref(), Some("new-object-id"));
        // and one created again inactive comes back deactivated: a User again, still refused
        let mut inactive = okta_create();
        inactive["active"] = Value::Bool(false);
        let r = env
            .call("POST", "/scim/v2/Users", &env.scim, Some(inactive))
            .await
            .expect(201);
        assert_eq!(r["id"], okta_id.as_str());
        assert_eq!(r["active"], false);
        let owner = env.owner("test.user@okta.local").await;
        assert!(owner.disabled);
        assert_eq!(owner.disabled_reason.as_deref(), Some(DEACTIVATED));
        env.get(&format!("/scim/v2/Users/{okta_id}"))
            .await
            .expect(200);
        env.stop().await;
    }
);

both_stores!(
    scopes_bad_bodies_and_owners_scim_does_not_manage,
    |b| async move {
        let env = Env::new(b).await;

        // only a scim token reaches /scim, and it reaches nothing else
        for token in [&env.helpdesk, &env.admin] {
            env.call("GET", "/scim/v2/Users", token, None)
                .await
                .error(403, None);
            env.call("POST", "/scim/v2/Users", token, Some(okta_create()))
                .await
                .error(403, None);
        }
        let r = curl(
            &env.dir.path().join("ca.pem"),
            env.port,
            "GET",
            "/scim/v2/Users",
            None,
            "",
            None,
        )
        .await;
        r.error(401, None);
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        env.call("GET", "/scim/v2/Users", "pw_not-a-token", None)
            .await
            .error(401, None);
        for (method, path) in [
            ("GET", "/api/v1/owners"),
            ("POST", "/api/v1/owners"),
            ("GET", "/api/v1/audit"),
        ] {
            let r = env.call(method, path, &env.scim, Some(json!({}))).await;
            assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
            assert!(
                r.json()["error"].as_str().unwrap().contains("scope scim"),
                "{}",
                r.body
            );
        }
        assert_eq!(env.counts().await[0], 0);

        // the OpenAPI document (public) lists the SCIM routes
        let doc = curl(
            &env.dir.path().join("ca.pem"),
            env.port,
            "GET",
            "/api/v1/openapi.json",
            None,
            "",
            None,
        )
        .await
        .json();
        for (path, methods) in [
            ("/scim/v2/Users", &["get", "post"][..]),
            (
                "/scim/v2/Users/{id}",
                &["get", "put", "patch", "delete"][..],
            ),
            ("/scim/v2/ServiceProviderConfig", &["get"][..]),
            ("/scim/v2/ResourceTypes", &["get"][..]),
            ("/scim/v2/Schemas", &["get"][..]),
        ] {
            for m in methods {
                assert!(
                    doc["paths"][path][m].is_object(),
                    "{m} {path} missing from OpenAPI"
                );
            }
            assert_eq!(doc["paths"][path]["servers"][0]["url"], "/");
        }
        assert!(doc["components"]["schemas"]["ScimUser"].is_object());

        // bad bodies: a SCIM error, and nothing written
        let before = env.counts().await;
        let intern = json!({"userName": "s.stagiair", "userType": "Intern", "displayName": "Sara"});
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!({"displayName": "No Name"}),
                "invalidValue",
                "userName",
            ),
            (json!({"userName": "has space"}), "invalidValue", "userName"),
            (json!({"userName": 42}), "invalidValue", "userName"),
            (
                json!({"userName": "a.b", "emails": [{"value": "not-an-address", "primary": true}]}),
                "invalidValue",
                "emails",
            ),
            (
                json!({"userName": "a.b", "active": "perhaps"}),
                "invalidValue",
                "active",
            ),
            (
                json!({"userName": "a.b", "userType": "Guest"}),
                "invalidValue",
                "userType",
            ),
            (intern.clone(), "invalidValue", "validUntil"),
            (
                json!({"userName": "a.b", OURS: {"validUntil": "2020-01-31", "validFrom": "2019-01-01"}, "userType": "Temp"}),
                "invalidValue",
                "validUntil",
            ),
            (
                json!({"userName": "a.b", OURS: {"validUntil": "31-12-2030"}}),
                "invalidValue",
                "validUntil",
            ),
            (
                json!({"userName": "a.b", "name": "Jan"}),
                "invalidValue",
                "name",
            ),
        ];
        for (body, scim_type, attribute) in cases {
            let detail = env
                .call("POST", "/scim/v2/Users", &env.scim, Some(body.clone()))
                .await
                .error(400, Some(scim_type));
            assert!(detail.contains(attribute), "{body}: {detail}");
        }
        env.raw(
            "POST",
            "/scim/v2/Users",
            "application/scim+json",
            r#"{"userName": "#,
        )
        .await
        .error(400, Some("invalidSyntax"));
        env.raw(
            "POST",
            "/scim/v2/Users",
            "application/scim+json",
            r#"["a"]"#,
        )
        .await
        .error(400, Some("invalidSyntax"));
        env.raw(
            "POST",
            "/scim/v2/Users",
            "text/plain",
            r#"{"userName": "a.b"}"#,
        )
        .await
        .error(415, None);
        let big = json!({"userName": "a.b", "displayName": "x".repeat(5000)});
        env.call("POST", "/scim/v2/Users", &env.scim, Some(big))
            .await
            .error(413, None);
        env.get(&format!(
            "/scim/v2/Users?filter={}",
            enc(r#"userName equals "x""#)
        ))
        .await
        .error(400, Some("invalidFilter"));
        env.get("/scim/v2/Users?startIndex=one")
            .await
            .error(400, Some("invalidValue"));
        env.get("/scim/v2/Groups").await.error(404, None);
        env.call("DELETE", "/scim/v2/Users", &env.scim, None)
            .await
            .error(405, None);
        assert_eq!(env.counts().await, before);

        // a SCIM owner, then bad PATCHes and PUTs of it: refused, the owner as it was
        let created = env
            .call("POST", "/scim/v2/Users", &env.scim, Some(intern_with_end()))
            .await
            .expect(201);
        assert_eq!(created["userType"], "Intern");
        let id = created["id"].as_str().unwrap().to_string();
        let stored = env.owner("s.stagiair").await;
        assert_eq!(stored.role, Role::Intern);
        let before = env.counts().await;
        let path = format!("/scim/v2/Users/{id}");
        for (body, scim_type) in [
            (
                json!({"Operations": [{"op": "Move", "path": "active", "value": false}]}),
                "invalidSyntax",
            ),
            (patch_op(json!([])), "invalidSyntax"),
            (patch_op(json!([{"op": "remove"}])), "noTarget"),
            (
                patch_op(json!([{"op": "replace", "path": "emails[type eq", "value": "x"}])),
                "invalidPath",
            ),
            (
                patch_op(json!([{"op": "replace", "path": "id", "value": "x"}])),
                "mutability",
            ),
            (
                patch_op(json!([{"op": "replace", "path": "userName", "value": "other.name"}])),
                "mutability",
            ),
            (
                patch_op(json!([{"op": "remove", "path": format!("{OURS}:validUntil")}])),
                "invalidValue",
            ),
            (
                patch_op(json!([{"op": "replace", "path": "active", "value": "nee"}])),
                "invalidValue",
            ),
            // a good operation before a bad one: neither is applied
            (
                patch_op(
                    json!([{"op": "replace", "path": "displayName", "value": "Changed"},
                         {"op": "replace", "path": "emails[value co \"nowhere\"].value", "value": "a@b.nl"}]),
                ),
                "noTarget",
            ),
        ] {
            env.call("PATCH", &path, &env.scim, Some(body.clone()))
                .await
                .error(400, Some(scim_type));
        }
        let mut renamed = intern_with_end();
        renamed["userName"] = Value::from("someone.else");
        env.call("PUT", &path, &env.scim, Some(renamed))
            .await
            .error(400, Some("mutability"));
        assert_eq!(env.counts().await, before);
        assert_eq!(env.owner("s.stagiair").await, stored);

        // an owner ICT added by hand: not SCIM's to see or change
        let setup = Change::by("ict.anna");
        let manual = env
            .registry
            .add_owner(
                NewOwner {
                    username: "h.handmatig".into(),
                    display_name: "Henk Handmatig".into(),
                    email: None,
                    role: Role::Staff,
                    department: None,
                    valid_from: None,
                    valid_until: None,
                },
                &setup,
            )
            .await
            .unwrap();
        let before = env.counts().await;
        assert_eq!(
            env.filter(r#"userName eq "h.handmatig""#).await["totalResults"],
            0
        );
        let manual_path = format!("/scim/v2/Users/{}", manual.id);
        env.get(&manual_path).await.error(404, None);
        env.call(
            "PATCH",
            &manual_path,
            &env.scim,
            Some(patch_op(
                json!([{"op": "replace", "value": {"active": false}}]),
            )),
        )
        .await
        .error(404, None);
        env.call("DELETE", &manual_path, &env.scim, None)
            .await
            .error(404, None);
        let detail = env
            .call(
                "POST",
                "/scim/v2/Users",
                &env.scim,
                Some(json!({"userName": "H.Handmatig"})),
            )
            .await
            .error(409, Some("uniqueness"));
        assert!(detail.contains("by hand"), "{detail}");
        assert_eq!(env.counts().await, before);
        assert_eq!(env.owner("h.handmatig").await, manual);

        // an owner of the CSV import: SCIM finds it and takes it over with its first change
        let imported = env
            .registry
            .add_owner_from(
                NewOwner {
                    username: "i.import".into(),
                    display_name: "Ilse Import".into(),
                    email: None,
                    role: Role::Staff,
                    department: None,
                    valid_from: None,
                    valid_until: None,
                },
                OwnerSource::Import,
                None,
                &setup,
            )
            .await
            .unwrap();
        let found = env.filter(r#"userName eq "i.import""#).await;
        assert_eq!(found["Resources"][0]["id"], imported.id.to_string());
        env.call(
            "PATCH",
            &format!("/scim/v2/Users/{}", imported.id),
            &env.scim,
            Some(patch_op(
                json!([{"op": "add", "path": "externalId", "value": "aad-1"}]),
            )),
        )
        .await
        .expect(200);
        let taken = env.owner("i.import").await;
        assert_eq!(taken.source, OwnerSource::Scim);
        assert_eq!(taken.external_id.as_deref(), Some("aad-1"));

        // SCIM does not enable an owner ICT disabled by hand
        env.registry
            .set_owner_disabled(
                "i.import",
                true,
                Some("onderzoek / under investigation".into()),
                &setup,
            )
            .await
            .unwrap();
        let r = env
            .call(
                "PATCH",
                &format!("/scim/v2/Users/{}", imported.id),
                &env.scim,
                Some(patch_op(
                    json!([{"op": "replace", "path": "active", "value": true}]),
                )),
            )
            .await
            .expect(200);
        assert_eq!(r["active"], false);
        let still = env.owner("i.import").await;
        assert!(still.disabled);
        assert_eq!(
            still.disabled_reason.as_deref(),
            Some("onderzoek / under investigation")
        );
        env.stop().await;
    }
);

fn intern_with_end() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", OURS],
        "userName": "s.stagiair",
        "displayName": "Sara Stagiair",
        "userType": "Intern",
        OURS: {"validFrom": "2026-09-01", "validUntil": "2031-01-31T00:00:00Z"}
    })
}

/// The CLI on the env's database; what it printed, or a panic with it.
fn cli(env: &Env, args: &[&str]) -> String {
    let config = env.dir.path().join("poortwachter.toml");
    std::fs::write(&config, config_text(&env.db.url, env.dir.path(), "")).unwrap();
    run_cli(&config, args)
}

fn cli_json(env: &Env, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&cli(env, &all)).expect("JSON from the CLI")
}

fn run_cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["--actor", "ict.test"])
        .args(args)
        .env_remove("POORTWACHTER_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run poortwachter");
    assert!(
        out.status.success(),
        "poortwachter {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SECRET: &str = "campus-secret-0123456789";

// A SCIM delete of an owner whose device is connected: `serve`'s enforcer sends the
// access point a Disconnect-Request for the session, and the owner stays, disabled.
both_stores!(
    a_scim_delete_disconnects_the_owners_connected_device,
    |b| async move {
        let db = TestDb::new(b).await;
        let nas = FakeNas::bind().await;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (auth, acct, api) = (free_udp_port(), free_udp_port(), free_tcp_port());
        let config = dir.path().join("poortwachter.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[database]
url = "{url}"

[radius]
auth_listen = "127.0.0.1:{auth}"
acct_listen = "127.0.0.1:{acct}"

[[radius.clients]]
name = "ap-1"
network = "127.0.0.1/32"
secret = "{SECRET}"
coa_port = {coa}

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
server_name = "{SERVER_NAME}"

[wifi]
ssid = "Werkplek"

[api]
listen = "127.0.0.1:{api}"
tls_cert = "{d}/pki/server.pem"
tls_key = "{d}/pki/server.key"
"#,
                url = db.url,
                coa = nas.port(),
            ),
        )
        .unwrap();
        run_cli(&config, &["migrate"]);
        run_cli(&config, &["ca", "init"]);
        let token: Value = serde_json::from_str(&run_cli(
            &config,
            &[
                "--json", "token", "create", "--name", "okta", "--scope", "scim",
            ],
        ))
        .unwrap();
        assert_eq!(token["scope"], "scim");
        let token = token["token"].as_str().unwrap().to_string();
        let mut serve = Command::new(BIN);
        serve
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .env_remove("POORTWACHTER_CONFIG");
        let server = Serving::start(serve, dir.path(), auth, SECRET);

        // provisioned by the identity provider, the device registered by ICT
        let ca = dir.path().join("pki/ca.pem");
        let body = okta_create().to_string();
        let r = curl(
            &ca,
            api,
            "POST",
            "/scim/v2/Users",
            Some(&token),
            "application/scim+json",
            Some(&body),
        )
        .await;
        let id = r.expect(201)["id"].as_str().unwrap().to_string();
        let mac = "02-00-00-00-5c-01";
        run_cli(
            &config,
            &[
                "device",
                "register",
                "--owner",
                "test.user@okta.local",
                "--mac",
                mac,
                "--label",
                "Laptop",
                "--kind",
                "laptop",
            ],
        );

        // connected: MAB accepted, accounting started with the Class
        let to = std::net::SocketAddr::from(([127, 0, 0, 1], auth));
        let mab = format!(
            "User-Name = \"{mac}\"\nUser-Password = \"{mac}\"\nCalling-Station-Id = \"{mac}\"\n\
         Called-Station-Id = \"00-11-22-33-44-55:Werkplek\"\nMessage-Authenticator = 0x00\n"
        );
        let until = Instant::now() + Duration::from_secs(10);
        let accept = loop {
            let r = radclient(to, "auth", SECRET, &mab).await;
            if r.code.is_some() || Instant::now() > until {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            accept.code.as_deref(),
            Some("Access-Accept"),
            "{}",
            accept.output
        );
        let class = accept.attr("Class").expect("a Class").to_string();
        let session = "sess-scim-1";
        let start = format!(
            "Acct-Status-Type = Start\nAcct-Session-Id = \"{session}\"\nUser-Name = \"{mac}\"\n\
         Calling-Station-Id = \"{mac}\"\nNAS-IP-Address = 127.0.0.1\nClass = {class}\n"
        );
        let r = radclient(
            std::net::SocketAddr::from(([127, 0, 0, 1], acct)),
            "acct",
            SECRET,
            &start,
        )
        .await;
        assert_eq!(
            r.code.as_deref(),
            Some("Accounting-Response"),
            "{}",
            r.output
        );

        // deprovisioned: the NAS is told to disconnect the session
        let r = curl(
            &ca,
            api,
            "DELETE",
            &format!("/scim/v2/Users/{id}"),
            Some(&token),
            "",
            None,
        )
        .await;
        assert_eq!(r.status, 204, "{}", r.body);
        nas.acknowledge_disconnect(session, SECRET, "not-the-secret-0000")
            .await;
        let shown: Value = serde_json::from_str(&run_cli(
            &config,
            &["--json", "owner", "show", "test.user@okta.local"],
        ))
        .unwrap();
        assert_eq!(shown["owner"]["disabled"], true, "{shown}");
        assert_eq!(shown["owner"]["disabled_reason"], DELETED);
        // kept with its device and history
        assert_eq!(shown["devices"][0]["macs"][0], "02:00:00:00:5c:01");
        let r = radclient(to, "auth", SECRET, &mab).await;
        assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
        curl(
            &ca,
            api,
            "GET",
            &format!("/scim/v2/Users/{id}"),
            Some(&token),
            "",
            None,
        )
        .await
        .error(404, None);
        server.stop();
    }
);

both_stores!(rfc_7644_examples, |b| async move {
    let env = Env::new(b).await;
    // §3.3: creating a User
    let created = env
        .call(
            "POST",
            "/scim/v2/Users",
            &env.scim,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "bjensen",
                "externalId": "bjensen",
                "name": {
                    "formatted": "Ms. Barbara J Jensen III",
                    "familyName": "Jensen",
                    "givenName": "Barbara"
                }
            })),
        )
        .await
        .expect(201);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        env.owner("bjensen").await.display_name,
        "Ms. Barbara J Jensen III"
    );
    // §3.4.2.2: filters
    for (filter, hits) in [
        (r#"userName eq "bjensen""#, 1),
        (r#"name.familyName co "O'Malley""#, 0),
        (r#"userName sw "J""#, 0),
        (r#"title pr"#, 0),
        (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, 1),
        (
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            0,
        ),
        (
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            0,
        ),
        (
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            0,
        ),
    ] {
        assert_eq!(env.filter(filter).await["totalResults"], hits, "{filter}");
    }
    let path = format!("/scim/v2/Users/{id}");
    // §3.5.2.1: add without a path
    let r = env
        .call(
            "PATCH",
            &path,
            &env.scim,
            Some(patch_op(json!([{
                "op": "add",
                "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}], "nickname": "Babs"}
            }]))),
        )
        .await
        .expect(200);
    assert_eq!(r["emails"][0]["value"], "babs@jensen.org");
    assert_eq!(
        env.owner("bjensen").await.email.as_deref(),
        Some("babs@jensen.org")
    );
    // the owner keeps one address: it is shown as the primary work one
    assert_eq!(
        env.filter(r#"emails[type eq "work" and value co "@jensen.org"]"#)
            .await["totalResults"],
        1
    );
    // §3.5.2.3: replace a filtered value (none matches: it is added, and is primary)
    env.call(
        "PATCH",
        &path,
        &env.scim,
        Some(patch_op(json!([{
            "op": "replace",
            "path": "emails[type eq \"work\" and value eq \"bjensen@example.com\"]",
            "value": {"type": "work", "value": "bjensen@example.com", "primary": true}
        }]))),
    )
    .await
    .expect(200);
    assert_eq!(
        env.owner("bjensen").await.email.as_deref(),
        Some("bjensen@example.com")
    );
    // §3.5.2.2: remove the values a filter selects
    let r = env
        .call(
            "PATCH",
            &path,
            &env.scim,
            Some(patch_op(json!([{
                "op": "remove",
                "path": "emails[type eq \"work\" and value ew \"example.com\"]"
            }]))),
        )
        .await
        .expect(200);
    assert!(r.get("emails").is_none(), "{r}");
    assert_eq!(env.owner("bjensen").await.email, None);
    // §3.6: delete
    let r = env.call("DELETE", &path, &env.scim, None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    env.get(&path).await.error(404, None);
    env.stop().await;
});
