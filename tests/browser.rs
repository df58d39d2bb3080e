//! The service as a real browser sees it: Debian's headless Chromium, driven over WebDriver
//! (tests/support/browser.rs), against a running `poortwachter serve`. Without chromium and
//! chromium-driver these tests fail, naming the packages.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::browser::{self, Browser, WAIT};
use support::serving::{free_tcp_port, free_udp_port, Serving};
use support::{Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");
const SECRET: &str = "browser-test-secret-0123456";

/// A registry, a config and the ports `serve` listens on (RADIUS, the admin API).
struct Site {
    _db: TestDb,
    dir: tempfile::TempDir,
    config: PathBuf,
    auth: u16,
    api: u16,
}

impl Site {
    async fn new(backend: Backend) -> Site {
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("poortwachter.toml");
        let (auth, api) = (free_udp_port(), free_tcp_port());
        let text = format!(
            r#"
[database]
url = "{url}"

[radius]
auth_listen = "127.0.0.1:{auth}"
acct_listen = "127.0.0.1:0"

[[radius.clients]]
name = "test-ap"
network = "127.0.0.1/32"
secret = "{SECRET}"

[vlans]
workspace = 100
guest = 200
quarantine = 666

[api]
listen = "127.0.0.1:{api}"
"#,
            url = db.url,
        );
        std::fs::write(&config, text).expect("write config");
        Site {
            _db: db,
            dir,
            config,
            auth,
            api,
        }
    }

    /// `serve`, once it answers RADIUS and its API accepts connections.
    fn serve(&self) -> Serving {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env_remove("RUST_LOG")
            .env_remove("POORTWACHTER_CONFIG")
            .env_remove("POORTWACHTER_DATABASE__URL")
            .current_dir(self.dir.path());
        let serving = Serving::start(c, self.dir.path(), self.auth, SECRET);
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.api)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the API did not listen within {WAIT:?}: {}",
                serving.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        serving
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api)
    }
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

// The browser opens the liveness endpoint of a running server and renders its JSON.
both_stores!(chromium_reads_the_api_health_page, |b| async move {
    let site = Site::new(b).await;
    let _serving = site.serve();
    let browser = Browser::start("nl").await;

    let url = site.url("/api/v1/health");
    browser.goto(&url).await;
    assert_eq!(browser.current_url().await, url);
    let text = browser.page_text().await;
    let health: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("the page is not the health JSON ({e}):\n{text}"));
    assert_eq!(health["status"], "ok", "{text}");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"), "{text}");

    let shot = browser
        .screenshot(&format!("api-health-{}", backend_name(b)))
        .await;
    let png = std::fs::read(&shot).expect("the screenshot file");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", shot.display());
    browser.close().await;
});

/// A loopback HTTP server that answers every request with a page showing the Accept-Language
/// header it received (`<p id="lang">`): what the browser asks for, seen from the server.
fn accept_language_echo() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the echo server");
    let port = listener.local_addr().expect("its address").port();
    // the thread ends with the test binary; it holds nothing else
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut lang = String::from("(none)");
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("accept-language") {
                        lang = value.trim().to_string();
                    }
                }
                line.clear();
            }
            let body = format!("<!doctype html><title>echo</title><p id=\"lang\">{lang}</p>");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

// Every helper the page tests use, each checked once against what the browser itself
// reports: the language it asks for, a form filled, clicked and submitted, waits, cookies with
// their flags, a raw POST without a token, and a bounded wait that fails with the page text.
// The server is only the origin here (no store is read), so SQLite alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_helpers_do_what_they_say() {
    let echo = accept_language_echo();
    for lang in ["nl", "en"] {
        let b = Browser::start(lang).await;
        b.goto(&format!("http://127.0.0.1:{echo}/")).await;
        let sent = b.text_of("#lang").await;
        assert!(sent.starts_with(lang), "{lang}: Accept-Language {sent:?}");
        b.close().await;
    }

    let site = Site::new(Backend::Sqlite).await;
    let _serving = site.serve();
    let b = Browser::start("nl").await;
    // a page of the site's origin, then a form put into it (the pages themselves come later)
    b.goto(&site.url("/api/v1/health")).await;
    b.client()
        .execute(
            r#"document.body.innerHTML =
                '<form id="zoek" method="get" action="/api/v1/health">' +
                '<input name="q" required><button type="submit" name="knop" value="ja">Zoek</button>' +
                '</form><button id="tel" onclick="this.textContent = \'geteld\'">tel</button>';"#,
            vec![],
        )
        .await
        .expect("put a form in the page");
    b.click("#tel").await;
    assert_eq!(b.text_of("#tel").await, "geteld");
    b.fill("input[name=q]", "eerst").await;
    b.fill("input[name=q]", "hallo wereld").await;
    b.submit("form#zoek").await;
    b.wait_for_text("\"status\":\"ok\"", WAIT).await;
    assert_eq!(
        b.current_url().await,
        site.url("/api/v1/health?q=hallo+wereld&knop=ja")
    );

    // cookies: as the browser stores them, HttpOnly and SameSite included
    let secret = fantoccini::cookies::Cookie::parse(
        "sessie=geheim; HttpOnly; SameSite=Strict; Path=/; Domain=127.0.0.1",
    )
    .expect("a cookie");
    b.client().add_cookie(secret).await.expect("add a cookie");
    b.client()
        .execute("document.cookie = 'taal=nl; path=/';", vec![])
        .await
        .expect("set a cookie from the page");
    let sessie = b.cookie("sessie").await.expect("the HttpOnly cookie");
    assert_eq!(sessie.value, "geheim");
    assert!(sessie.http_only, "{sessie:?}");
    assert_eq!(sessie.same_site.as_deref(), Some("Strict"), "{sessie:?}");
    assert_eq!(sessie.path.as_deref(), Some("/"), "{sessie:?}");
    let taal = b.cookie("taal").await.expect("the page's cookie");
    assert!(!taal.http_only, "{taal:?}");
    let seen_by_script = b
        .client()
        .execute("return document.cookie;", vec![])
        .await
        .expect("document.cookie");
    assert_eq!(seen_by_script, "taal=nl", "HttpOnly stays out of scripts");
    assert!(b.cookie("geen").await.is_none());

    // a raw POST: what the server answers, seen by the browser
    let posted = b
        .post_form(
            &site.url("/api/v1/devices"),
            &[("mac", "02:00:00:00:00:01")],
        )
        .await;
    assert_eq!(posted.status, 401, "{posted:?}");
    assert_eq!(posted.url, site.url("/api/v1/devices"));
    assert!(!posted.redirected);
    assert!(posted.body.contains("error"), "{posted:?}");

    // a wait that cannot succeed ends within its bound, with the page text in the message
    let b = std::sync::Arc::new(b);
    let started = Instant::now();
    let waited = tokio::spawn({
        let b = std::sync::Arc::clone(&b);
        async move {
            b.wait_for("#bestaat-niet", Duration::from_secs(1)).await;
        }
    })
    .await;
    let message = panic_text(waited.expect_err("the wait should fail").into_panic());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(
        message.contains("no element `#bestaat-niet` within 1s"),
        "{message}"
    );
    assert!(message.contains("\"status\":\"ok\""), "{message}");
    let b = std::sync::Arc::into_inner(b).expect("the one browser");

    b.screenshot("browser-helpers").await;
    b.close().await;
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

// Missing programs fail the test with the Debian package names; they never skip it.
#[test]
fn a_missing_chromium_fails_naming_the_debian_packages() {
    for program in [browser::CHROMIUM, browser::CHROMEDRIVER] {
        let missing = std::panic::catch_unwind(|| browser::require(program, "/nonexistent"));
        let message = panic_text(missing.expect_err("require should fail"));
        assert!(message.contains(program.0), "{message}");
        assert!(
            message.contains("apt-get install chromium chromium-driver"),
            "{message}"
        );
        assert!(message.contains("scripts/test"), "{message}");
    }
    assert!(browser::require(browser::CHROMEDRIVER, "/usr/bin").ends_with("chromedriver"));
    assert_eq!(
        browser::listening_port("ChromeDriver was started successfully on port 39969."),
        Some(39969)
    );
    assert_eq!(
        browser::listening_port("Only local connections are allowed."),
        None
    );
}
