//! A `poortwachter serve` process as a test runs it, and radclient run from a blocking context:
//! the test sees the service from outside, as an access point and an administrator would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A UDP port nobody uses now on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A TCP port nobody uses now on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs `c`; panics with what it printed unless it succeeds; its stdout.
pub fn run_ok(c: &mut Command) -> String {
    let out = c.output().expect("run");
    assert!(
        out.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `serve`, stopped by its PID with SIGTERM on drop.
pub struct Serving {
    child: Option<Child>,
    log: PathBuf,
    port: u16,
    secret: String,
}

impl Serving {
    /// Starts `command` (stderr to a file in `dir`); returns once it answers RADIUS.
    pub fn start(mut command: Command, dir: &Path, port: u16, secret: &str) -> Serving {
        let log = dir.join(format!("serve-{port}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start serve");
        let mut s = Serving {
            child: Some(child),
            log,
            port,
            secret: secret.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                s.child = None;
                panic!("serve ended ({status}): {}", s.log_text());
            }
            if s.ask("02:00:00:00:00:99").contains("Received ") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not answer within 30 s: {}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Its process id (for `kill -HUP`, as the unit's ExecReload does).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(|c| c.id())
            .expect("serve is running")
    }

    /// Whether it still runs (not ended, not stopped).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A MAB request for `mac`; what radclient printed.
    pub fn ask(&self, mac: &str) -> String {
        radclient_text(self.port, "auth", &self.secret, &mab(mac))
    }

    /// Stops it (SIGTERM); its log.
    pub fn stop(mut self) -> String {
        self.terminate();
        self.log_text()
    }

    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(40);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Runs radclient once (`kind`: auth, acct, status, disconnect...) to 127.0.0.1:`port`, one
/// try with a 1 s timeout; what it printed.
pub fn radclient_text(port: u16, kind: &str, secret: &str, attrs: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("radclient")
        .args([
            "-x",
            "-r",
            "1",
            "-t",
            "1",
            &format!("127.0.0.1:{port}"),
            kind,
            secret,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("radclient not found: install Debian's freeradius-utils (scripts/test does)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(attrs.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("radclient ran");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn mab(mac: &str) -> String {
    format!(
        "User-Name = \"{mac}\"\nUser-Password = \"{mac}\"\nCalling-Station-Id = \"{mac}\"\n\
         Called-Station-Id = \"00-11-22-33-44-55:Gemeente-Werkplek\"\nMessage-Authenticator = 0x00\n"
    )
}

/// The reply code and VLAN radclient received.
pub fn verdict(printed: &str) -> (String, Option<String>) {
    let code = printed
        .lines()
        .find_map(|l| l.strip_prefix("Received "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("none")
        .to_string();
    let vlan = printed
        .lines()
        .find(|l| l.contains("Tunnel-Private-Group-Id"))
        .and_then(|l| l.split_once(" = "))
        .map(|(_, v)| v.trim().trim_matches('"').to_string());
    (code, vlan)
}

/// A `serve` process of a node that a test starts, stops, kills and starts again, its stderr
/// kept line by line over every start (a node's whole story, for assertions and failure
/// messages). Ready once it answers Status-Server. Killed (SIGKILL) on drop.
pub struct ServeProcess {
    name: String,
    child: Option<Child>,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServeProcess {
    pub fn new(name: &str) -> ServeProcess {
        ServeProcess {
            name: name.to_string(),
            child: None,
            log: Default::default(),
        }
    }

    /// Starts `command` (a `serve`, stderr taken here) and returns once it answers
    /// Status-Server on `auth` signed with `secret`; panics if it ends or after `limit`.
    pub async fn start(
        &mut self,
        mut command: Command,
        auth: std::net::SocketAddr,
        secret: &str,
        limit: Duration,
    ) {
        use std::io::{BufRead, BufReader};
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        self.child = Some(child);
        let start = Instant::now();
        loop {
            let r =
                super::radclient(auth, "status", secret, "Message-Authenticator = 0x00\n").await;
            if r.code.is_some() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("{} exited with {status}:\n{}", self.name, self.log_text());
            }
            assert!(
                start.elapsed() < limit,
                "{} did not answer within {limit:?}:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything it wrote to stderr, over every start.
    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Whether a line holds `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Waits until a line holds `needle` (panics after `limit`).
    pub async fn wait_logged(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.logged(needle) {
            assert!(
                start.elapsed() < limit,
                "{}: no `{needle}` in the log within {limit:?}:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM to the process we started, by its PID; waits for its end within the service's
    /// own stop bound (panics past 40 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(40);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{} did not stop within 40 s", self.name);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// SIGKILL: the node dies.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET /api/v1/ready` of a plain-HTTP API on `api` with curl: the status code (0 when none
/// came) and the body.
pub async fn api_ready(api: std::net::SocketAddr) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "-w", "\n%{http_code}"])
        .arg(format!("http://{api}/api/v1/ready"))
        .output()
        .await
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    match text.rsplit_once('\n') {
        Some((body, status)) => (status.trim().parse().unwrap_or(0), body.to_string()),
        None => (0, text),
    }
}
