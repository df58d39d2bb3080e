//! The console over real HTTP for the tests: a console over a fresh database with an ICT and
//! a service-desk account, and a tiny HTTP/1.1 client that keeps the session cookie and
//! reads the CSRF token from a page.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use poortwachter::config::Config;
use poortwachter::registry::accounts::{NewWebAccount, WebRole};
use poortwachter::registry::{Change, Registry, Rules};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::TestDb;

pub fn config_text(url: &str, dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"
[database]
url = "{url}"

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
server_name = "radius.test"

[web]
listen = "127.0.0.1:0"
login_failures = 3
"#
    )
}

/// A console over a fresh database, with an ICT and a service-desk account.
pub struct Env {
    pub db: TestDb,
    pub registry: Registry,
    pub addr: SocketAddr,
    _console: poortwachter::api::Api,
    _dir: tempfile::TempDir,
}

pub const ADMIN_PW: &str = "correct horse battery";
pub const DESK_PW: &str = "servicedesk wachtwoord";

impl Env {
    pub async fn new(backend: super::Backend) -> Env {
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_toml(
            &config_text(&db.url, dir.path()),
            Path::new("test.toml"),
            Vec::new(),
        )
        .unwrap();
        let registry = Registry::connect(
            &db.url,
            4,
            Rules {
                max_devices_per_owner: 3,
                timezone: config.policy.timezone,
            },
        )
        .await
        .unwrap();
        registry.migrate().await.unwrap();
        let setup = Change::by("test-setup");
        for (user, name, role, pw) in [
            ("ict.anna", "Anna de Vries", WebRole::Admin, ADMIN_PW),
            ("sd.bert", "Bert Jansen", WebRole::Helpdesk, DESK_PW),
        ] {
            registry
                .add_web_account(
                    NewWebAccount {
                        username: user.into(),
                        display_name: name.into(),
                        role,
                        password: zeroize::Zeroizing::new(pw.into()),
                    },
                    &setup,
                )
                .await
                .unwrap();
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let console =
            poortwachter::web::serve(Arc::new(config), registry.clone(), listener).unwrap();
        let addr = console.local_addr();
        Env {
            db,
            registry,
            addr,
            _console: console,
            _dir: dir,
        }
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>, lang: &str) -> Resp {
        http(self.addr, "GET", path, cookie, lang, "").await
    }

    pub async fn post(&self, path: &str, cookie: Option<&str>, form: &str) -> Resp {
        http(self.addr, "POST", path, cookie, "nl", form).await
    }

    /// Logs in; the session cookie's `name=value`.
    pub async fn login(&self, user: &str, password: &str) -> String {
        let r = self
            .post(
                "/login",
                None,
                &format!("username={user}&password={}", password.replace(' ', "+")),
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        let set = r.header("set-cookie").expect("a cookie").to_string();
        set.split(';').next().unwrap().to_string()
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The CSRF token in the page's forms.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

/// One request per connection.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    lang: &str,
    form: &str,
) -> Resp {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept-Language: {lang}\r\nContent-Length: {}\r\n",
        form.len()
    );
    if let Some(c) = cookie {
        head.push_str(&format!("Cookie: {c}\r\n"));
    }
    if method == "POST" {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    head.push_str("\r\n");
    head.push_str(form);
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
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
    let body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(&body) } else { body };
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[end + 2..end + 2 + size]);
        rest = &rest[end + 2 + size + 2..];
    }
}
