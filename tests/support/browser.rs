//! A real headless Chromium for the tests of the web pages (console and portal): Debian's
//! `chromium`, driven through its `chromedriver` over WebDriver with fantoccini, so that a test
//! sees what an employee's browser sees: the rendered text, the cookies as the browser keeps
//! them, the language it asks for (Accept-Language).
//!
//! Each [`Browser`] has its own chromedriver (on a port it picks itself, `--port=0`: no race
//! for a free port) and its own throwaway profile, so tests run side by side. Every wait is
//! bounded by [`WAIT`] and a timeout panics with the URL and the text of the page. A missing
//! `chromium` or `chromedriver` fails the test with the Debian package names: it never skips.
//!
//! ```ignore
//! let b = Browser::start("nl").await;
//! b.goto(&format!("http://127.0.0.1:{api}/console/login")).await;
//! b.fill("input[name=username]", "ict.beheer").await;
//! b.submit("form#login").await;
//! b.wait_for_text("Apparaten", WAIT).await;
//! let session = b.cookie("session").await.expect("session cookie");
//! assert!(session.http_only);
//! assert_eq!(session.same_site.as_deref(), Some("Strict"));
//! b.screenshot("console-devices").await;
//! b.close().await;
//! ```

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

/// The bound on every wait: an element to appear, a page to load, a script to finish,
/// chromedriver to start.
pub const WAIT: Duration = Duration::from_secs(10);

/// The package that puts each program on PATH, for the message when one is missing.
pub const CHROMIUM: (&str, &str) = ("chromium", "chromium");
pub const CHROMEDRIVER: (&str, &str) = ("chromedriver", "chromium-driver");

/// One headless Chromium session and the chromedriver that runs it. On drop, chromedriver's
/// process group (chromedriver, the browser and its helpers) is killed by its id; [`close`]
/// ends the session properly first.
///
/// [`close`]: Browser::close
pub struct Browser {
    client: Client,
    driver: Option<Child>,
    /// A shell that kills chromedriver's group should this test process end without the
    /// drop (SIGKILL, a CI timeout): chromedriver does not end with its parent.
    watchdog: Option<Child>,
    /// What chromedriver printed (stdout and stderr), for failure messages.
    driver_log: Arc<Mutex<Vec<String>>>,
    /// The `--user-data-dir`, removed on drop (after the browser is gone).
    profile: Option<tempfile::TempDir>,
}

/// A cookie as the browser stored it (WebDriver's view, which includes HttpOnly cookies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCookie {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Whether scripts are kept from it (`HttpOnly`).
    pub http_only: bool,
    /// Whether it goes over HTTPS only (`Secure`).
    pub secure: bool,
    /// `"Strict"`, `"Lax"` or `"None"` as stored; `None` when the browser reports none.
    pub same_site: Option<String>,
    /// Its path.
    pub path: Option<String>,
}

impl From<&Cookie<'static>> for StoredCookie {
    fn from(c: &Cookie<'static>) -> StoredCookie {
        StoredCookie {
            name: c.name().to_string(),
            value: c.value().to_string(),
            http_only: c.http_only().unwrap_or(false),
            secure: c.secure().unwrap_or(false),
            same_site: c.same_site().map(|s| s.to_string()),
            path: c.path().map(str::to_string),
        }
    }
}

/// The answer to [`Browser::post_form`].
#[derive(Debug, Clone)]
pub struct Posted {
    /// The HTTP status of the final response (after redirects, as `fetch` follows them).
    pub status: u16,
    /// The URL of the final response.
    pub url: String,
    /// Whether a redirect was followed on the way.
    pub redirected: bool,
    /// The body of the final response, as text.
    pub body: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium whose language (the `--lang` flag and the
    /// `intl.accept_languages` preference, so its Accept-Language header) is `lang`, e.g.
    /// `"nl"` or `"en"`. Panics naming the Debian packages when chromium or chromedriver is
    /// missing, and with chromedriver's output when it does not start within [`WAIT`].
    pub async fn start(lang: &str) -> Browser {
        let chromium = require(CHROMIUM, &search_path());
        let chromedriver = require(CHROMEDRIVER, &search_path());
        let profile = tempfile::Builder::new()
            .prefix("poortwachter-chromium-")
            .tempdir()
            .expect("temp dir for the Chromium profile");

        let (driver, port, driver_log) = start_chromedriver(&chromedriver);
        let mut watchdog = watchdog(driver.id());
        let mut browser_args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--window-size=1280,1000".to_string(),
            format!("--lang={lang}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        // quiet and quick: no first-run work, no calls home
        browser_args.extend(
            [
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-sync",
                "--disable-component-update",
            ]
            .map(String::from),
        );
        let ms = u64::try_from(WAIT.as_millis()).unwrap_or(u64::MAX);
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "timeouts": {"pageLoad": ms, "script": ms, "implicit": 0},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": browser_args,
                "prefs": {"intl": {"accept_languages": lang}},
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let url = format!("http://127.0.0.1:{port}");
        // a new session starts the browser: the slowest step, so a bound of its own
        let connected = tokio::time::timeout(3 * WAIT, builder.connect(&url)).await;
        let client = match connected {
            Ok(Ok(client)) => client,
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no session within {:?}", 3 * WAIT),
                };
                let log = driver_log.lock().map(|l| l.join("\n")).unwrap_or_default();
                kill_group(driver);
                let _ = watchdog.kill();
                let _ = watchdog.wait();
                panic!("Chromium did not start through chromedriver: {why}\nchromedriver:\n{log}");
            }
        };
        Browser {
            client,
            driver: Some(driver),
            watchdog: Some(watchdog),
            driver_log,
            profile: Some(profile),
        }
    }

    /// The fantoccini client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for the page to load (bounded by [`WAIT`]).
    pub async fn goto(&self, url: &str) {
        let done = self.bounded(self.client.goto(url)).await;
        if let Err(e) = done {
            panic!("could not open {url}: {e}\n{}", self.context().await);
        }
    }

    /// The URL the browser shows now (after redirects).
    pub async fn current_url(&self) -> String {
        match self.bounded(self.client.current_url()).await {
            Ok(url) => url.to_string(),
            Err(e) => panic!("no current URL: {e}"),
        }
    }

    /// Waits (at most `timeout`) until an element matches `css`; that element. Panics with
    /// the URL and the page text on timeout.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(e) = self.bounded(self.client.find(Locator::Css(css))).await {
                return e;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no element `{css}` within {timeout:?}\n{}",
                    self.context().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (at most `timeout`) until the page text contains `text`. Panics with the URL and
    /// the page text on timeout.
    pub async fn wait_for_text(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.try_page_text().await.is_some_and(|t| t.contains(text)) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no text {text:?} within {timeout:?}\n{}",
                    self.context().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the field `css` (waited for), replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for(css, WAIT).await;
        let typed = self
            .bounded(async {
                field.clear().await?;
                field.send_keys(text).await
            })
            .await;
        if let Err(e) = typed {
            panic!("could not type into `{css}`: {e}\n{}", self.context().await);
        }
    }

    /// Clicks the element `css` (waited for), as a user does: it must be visible and enabled.
    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css, WAIT).await;
        if let Err(e) = self.bounded(element.click()).await {
            panic!("could not click `{css}`: {e}\n{}", self.context().await);
        }
    }

    /// Submits the form `css` (waited for) by clicking its first submit button, as a user
    /// does, so the browser's own checks (`required`, field types) and the button's
    /// `name=value` apply. Returns at once: wait for what the next page shows.
    pub async fn submit(&self, form_css: &str) {
        self.wait_for(form_css, WAIT).await;
        let submitted = self
            .bounded(async {
                let form = self.client.form(Locator::Css(form_css)).await?;
                form.submit().await
            })
            .await;
        if let Err(e) = submitted {
            panic!(
                "could not submit `{form_css}` (a submit button in it?): {e}\n{}",
                self.context().await
            );
        }
    }

    /// The rendered text of the element `css` (waited for), as the user reads it.
    pub async fn text_of(&self, css: &str) -> String {
        let element = self.wait_for(css, WAIT).await;
        match self.bounded(element.text()).await {
            Ok(text) => text,
            Err(e) => panic!("no text of `{css}`: {e}\n{}", self.context().await),
        }
    }

    /// The rendered text of the whole page (the body's `innerText`).
    pub async fn page_text(&self) -> String {
        match self.try_page_text().await {
            Some(text) => text,
            None => panic!("could not read the page text\n{}", self.context().await),
        }
    }

    /// Saves a PNG of the window to `target/screenshots/<name>.png` (the CI keeps that
    /// folder); its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = match self.bounded(self.client.screenshot()).await {
            Ok(png) => png,
            Err(e) => panic!("no screenshot {name}: {e}\n{}", self.context().await),
        };
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("screenshots");
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Every cookie the browser keeps for the current page, with the flags it stored,
    /// HttpOnly ones included.
    pub async fn cookies(&self) -> Vec<StoredCookie> {
        match self.bounded(self.client.get_all_cookies()).await {
            Ok(cookies) => cookies.iter().map(StoredCookie::from).collect(),
            Err(e) => panic!("could not read the cookies: {e}\n{}", self.context().await),
        }
    }

    /// The cookie `name` for the current page, if the browser keeps one.
    pub async fn cookie(&self, name: &str) -> Option<StoredCookie> {
        self.cookies().await.into_iter().find(|c| c.name == name)
    }

    /// POSTs `fields` as `application/x-www-form-urlencoded` to `url` from the current page
    /// with `fetch`, with the browser's cookies but only the fields given: a form without its
    /// CSRF token, or one a forged page would send. Open a page of the site first (the
    /// request comes from its origin). Redirects are followed; the final response.
    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Posted {
        let pairs: Vec<_> = fields
            .iter()
            .map(|(k, v)| serde_json::json!([k, v]))
            .collect();
        let script = r#"
            const [url, pairs, done] = arguments;
            fetch(url, {
                method: "POST",
                credentials: "include",
                body: new URLSearchParams(pairs),
            })
                .then(async (r) => done({
                    status: r.status, url: r.url, redirected: r.redirected, body: await r.text(),
                }))
                .catch((e) => done({error: String(e)}));
        "#;
        let answer = self
            .bounded(
                self.client
                    .execute_async(script, vec![url.into(), pairs.into()]),
            )
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => panic!("POST {url} failed: {e}\n{}", self.context().await),
        };
        if let Some(error) = answer.get("error") {
            panic!("POST {url} failed in the browser: {error}");
        }
        Posted {
            status: answer["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .expect("a status"),
            url: answer["url"].as_str().unwrap_or_default().to_string(),
            redirected: answer["redirected"].as_bool().unwrap_or_default(),
            body: answer["body"].as_str().unwrap_or_default().to_string(),
        }
    }

    /// Submits a form made on the spot in the current page: `method=post` to `url` with only
    /// `fields`, as a forged page would (no CSRF token unless given). Unlike [`post_form`] it
    /// needs no `fetch`, so it works under a Content-Security-Policy that forbids connections
    /// (`default-src 'none'`) but allows forms to the site (`form-action 'self'`). Waits for
    /// the answer page; its text.
    ///
    /// [`post_form`]: Browser::post_form
    pub async fn submit_form_to(&self, url: &str, fields: &[(&str, &str)]) -> String {
        let pairs: Vec<_> = fields
            .iter()
            .map(|(k, v)| serde_json::json!([k, v]))
            .collect();
        let marker = format!("forged-{}", std::process::id());
        let script = r#"
            const [url, pairs, marker] = arguments;
            document.body.setAttribute("data-left", marker);
            const f = document.createElement("form");
            f.method = "post";
            f.action = url;
            for (const [k, v] of pairs) {
                const i = document.createElement("input");
                i.type = "hidden"; i.name = k; i.value = v;
                f.appendChild(i);
            }
            document.body.appendChild(f);
            f.submit();
        "#;
        if let Err(e) = self
            .bounded(self.client.execute(
                script,
                vec![url.into(), pairs.into(), marker.clone().into()],
            ))
            .await
        {
            panic!(
                "POST {url} from the page failed: {e}\n{}",
                self.context().await
            );
        }
        // the answer is a new document: the marker on the old one is gone
        let deadline = Instant::now() + WAIT;
        loop {
            let left = self
                .client
                .execute(
                    "return document.body ? document.body.getAttribute('data-left') : null;",
                    vec![],
                )
                .await
                .ok();
            let still_old = left.as_ref().and_then(|v| v.as_str()) == Some(marker.as_str());
            if !still_old && self.client.find(Locator::Css("body")).await.is_ok() {
                return self.page_text().await;
            }
            if Instant::now() > deadline {
                panic!(
                    "no answer to the POST to {url} within {WAIT:?}\n{}",
                    self.context().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the session (the browser quits) and stops chromedriver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        // best effort: drop kills whatever is left anyway
        let _ = tokio::time::timeout(WAIT, client.close()).await;
        self.stop();
    }

    /// What chromedriver printed so far.
    pub fn driver_log(&self) -> String {
        self.driver_log
            .lock()
            .map(|l| l.join("\n"))
            .unwrap_or_default()
    }

    /// `fut` bounded by [`WAIT`] and a little more (the browser's own timeouts are [`WAIT`]:
    /// its error, with what it says, should come first).
    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(WAIT + Duration::from_secs(5), fut).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer from the browser within {WAIT:?}")),
        }
    }

    async fn try_page_text(&self) -> Option<String> {
        let body = self.bounded(async {
            let body = self.client.find(Locator::Css("body")).await?;
            body.text().await
        });
        body.await.ok()
    }

    /// The URL and the page text, for a failure message (each bounded, so a hung browser
    /// still gives a message).
    async fn context(&self) -> String {
        let url = tokio::time::timeout(Duration::from_secs(5), self.client.current_url()).await;
        let url = match url {
            Ok(Ok(u)) => u.to_string(),
            _ => "(unknown)".to_string(),
        };
        let text = tokio::time::timeout(Duration::from_secs(5), self.try_page_text()).await;
        let text = text.ok().flatten().unwrap_or_else(|| "(unreadable)".into());
        format!("at {url}, the page reads:\n{text}")
    }

    fn stop(&mut self) {
        if let Some(driver) = self.driver.take() {
            kill_group(driver);
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        // the profile goes once nothing writes to it any more
        self.profile.take();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

/// PATH as this process has it, with Debian's /usr/bin in any case.
fn search_path() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{path}:/usr/bin")
}

/// `program` found on `path`; panics naming the Debian package (and scripts/test, which
/// installs it) when it is missing.
pub fn require((program, package): (&str, &str), path: &str) -> PathBuf {
    let found = std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p));
    match found {
        Some(p) => p,
        None => panic!(
            "{program} not found: the browser tests need Debian's packages chromium and \
             chromium-driver (`apt-get install chromium chromium-driver`; scripts/test \
             installs them); {program} comes with {package}"
        ),
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Starts chromedriver on a port of its choosing in a process group of its own (so the
/// browser it starts is stopped with it); returns once it says it listens: the child, the
/// port and its output so far and from then on.
fn start_chromedriver(program: &Path) -> (Child, u16, Arc<Mutex<Vec<String>>>) {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(program)
        .arg("--port=0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", program.display()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (port_tx, port_rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    collect_lines(stdout, Arc::clone(&log), Some(port_tx));
    collect_lines(stderr, Arc::clone(&log), None);
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(port) = port_rx.recv_timeout(Duration::from_millis(100)) {
            return (child, port, log);
        }
        let ended = child.try_wait().ok().flatten();
        if ended.is_some() || Instant::now() >= deadline {
            let why = match ended {
                Some(status) => format!("chromedriver ended ({status})"),
                None => format!("chromedriver did not listen within {WAIT:?}"),
            };
            kill_group(child);
            let log = log.lock().map(|l| l.join("\n")).unwrap_or_default();
            panic!("{why}:\n{log}");
        }
    }
}

/// Reads `from` line by line into `log` on a thread of its own (so chromedriver never blocks
/// on a full pipe); sends the port of "ChromeDriver was started successfully on port N." to
/// `port`.
fn collect_lines(
    from: impl Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
    port: Option<mpsc::Sender<u16>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &port {
                if let Some(p) = listening_port(&line) {
                    let _ = tx.send(p);
                }
            }
            if let Ok(mut l) = log.lock() {
                l.push(line);
            }
        }
    });
}

/// The port in chromedriver's "ChromeDriver was started successfully on port 39969."
pub fn listening_port(line: &str) -> Option<u16> {
    line.split_once("started successfully on port ")
        .and_then(|(_, rest)| rest.trim_end_matches('.').trim().parse().ok())
}

/// A shell, outside chromedriver's group, that SIGKILLs the group `group` once this process
/// is gone, and ends by itself once the group is.
fn watchdog(group: u32) -> Child {
    let script = format!(
        "while [ -d /proc/{parent} ] && kill -0 -{group} 2>/dev/null; do sleep 0.5; done; \
         kill -KILL -{group} 2>/dev/null",
        parent = std::process::id(),
    );
    Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the chromedriver watchdog")
}

/// Kills the process group led by `child` (chromedriver, the browser and its helpers) with
/// SIGKILL, by its id, and reaps the child.
fn kill_group(mut child: Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}
