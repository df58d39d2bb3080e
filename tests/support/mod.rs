//! Test support: throwaway databases for both stores. PostgreSQL is a real server that this
//! harness starts itself (initdb + postgres on a temp dir and unix socket, as the `postgres`
//! user when running as root), shared by the tests of one test binary and stopped when that
//! binary exits. Set POORTWACHTER_TEST_POSTGRES_URL to use an existing server instead.
#![allow(dead_code)]

pub mod browser;
pub mod install;
pub mod nas;
pub mod peers;
pub mod serving;
pub mod slapd;
pub mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The two registry backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of one backend. SQLite files live in `dir`, removed on drop.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite:{}", dir.path().join("registry.db").display());
                TestDb {
                    url,
                    backend,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => TestDb {
                url: postgres_database().await,
                backend,
                _dir: None,
            },
        }
    }

    /// Runs one SQL statement directly (for checks the registry API does not offer).
    pub async fn execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await?;
                let r = sqlx::query(sql).execute(&pool).await?.rows_affected();
                pool.close().await;
                Ok(r)
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await?;
                let r = sqlx::query(sql).execute(&pool).await?.rows_affected();
                pool.close().await;
                Ok(r)
            }
        }
    }

    /// Every row of every table as text, one line per row (`table: values`): what a search
    /// for personal data left behind reads.
    #[allow(dead_code)]
    pub async fn dump(&self) -> String {
        let mut out = String::new();
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.expect("connect");
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                )
                .fetch_all(&pool)
                .await
                .expect("tables");
                for t in tables {
                    let columns: Vec<String> =
                        sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{t}')"))
                            .fetch_all(&pool)
                            .await
                            .expect("columns");
                    let row = columns
                        .iter()
                        .map(|c| format!("quote(\"{c}\")"))
                        .collect::<Vec<_>>()
                        .join(" || ',' || ");
                    let rows: Vec<String> =
                        sqlx::query_scalar(&format!("SELECT {row} FROM \"{t}\""))
                            .fetch_all(&pool)
                            .await
                            .expect("rows");
                    for r in rows {
                        out.push_str(&format!("{t}: {r}\n"));
                    }
                }
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.expect("connect");
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
                )
                .fetch_all(&pool)
                .await
                .expect("tables");
                for t in tables {
                    let rows: Vec<String> =
                        sqlx::query_scalar(&format!("SELECT r::text FROM \"{t}\" r"))
                            .fetch_all(&pool)
                            .await
                            .expect("rows");
                    for r in rows {
                        out.push_str(&format!("{t}: {r}\n"));
                    }
                }
                pool.close().await;
            }
        }
        out
    }

    /// `SELECT count(*) FROM table`, straight from the database.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.expect("connect");
                let n = sqlx::query_scalar(&sql)
                    .fetch_one(&pool)
                    .await
                    .expect("count");
                pool.close().await;
                n
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.expect("connect");
                let n = sqlx::query_scalar(&sql)
                    .fetch_one(&pool)
                    .await
                    .expect("count");
                pool.close().await;
                n
            }
        }
    }
}

/// Where the shared PostgreSQL server listens: a URL to its `postgres` database.
struct Cluster {
    admin_url: String,
    /// The watchdog shell; it ends itself (and the server) when this process is gone.
    _server: Option<std::process::Child>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// Creates a new database on the shared server and returns its URL.
pub async fn postgres_database() -> String {
    let cluster = CLUSTER.get_or_init(start_cluster);
    let name = format!(
        "pw_test_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let pool = sqlx::PgPool::connect(&cluster.admin_url)
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("CREATE DATABASE");
    pool.close().await;
    with_database(&cluster.admin_url, &name)
}

fn with_database(admin_url: &str, name: &str) -> String {
    // admin_url is postgres://user@host:port/postgres?query
    match admin_url.rsplit_once("/postgres") {
        Some((head, tail)) => format!("{head}/{name}{tail}"),
        None => panic!("POORTWACHTER_TEST_POSTGRES_URL must name the `postgres` database"),
    }
}

/// A temporary directory for a cluster, kept (its server's watchdog removes it), owned by
/// `postgres` when running as root: PostgreSQL refuses to run as root.
fn cluster_root(prefix: &str) -> PathBuf {
    let root = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir for PostgreSQL")
        .keep();
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&root)
            .status()
            .expect("run chown");
        assert!(status.success(), "chown postgres {} failed", root.display());
    }
    root
}

/// `initdb` (the command given, run as the right user) for a trusting UTF-8 cluster in `data`.
fn initdb(mut initdb: Command, data: &Path) {
    let out = initdb
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ])
        .stdout(Stdio::null())
        .output()
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_cluster() -> Cluster {
    if let Ok(url) = std::env::var("POORTWACHTER_TEST_POSTGRES_URL") {
        return Cluster {
            admin_url: url,
            _server: None,
        };
    }
    let bin = postgres_bindir();
    let root = cluster_root("poortwachter-pg-");
    let as_root = is_root();
    let data = root.join("data");
    let log = root.join("server.log");
    let run = |program: &Path| -> Command {
        if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    initdb(run(&bin.join("initdb")), &data);
    // The server runs under a small shell that stops it, and removes the cluster, once this
    // test process is gone: statics are never dropped, so nothing else would.
    let script = format!(
        "{postgres} -D {data} -k {sock} -p 5432 -c listen_addresses= -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
         >{log} 2>&1 & pg=$!; \
         while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 0.5; done; \
         kill -INT $pg 2>/dev/null; wait $pg; rm -rf {root}",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        sock = root.display(),
        log = log.display(),
        parent = std::process::id(),
        root = root.display(),
    );
    let sh = Path::new("/bin/sh");
    let server = run(sh)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .arg("-h")
            .arg(&root)
            .args(["-p", "5432", "-U", "postgres", "-q"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("PostgreSQL did not start within 60 s; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Cluster {
        // the host in the authority is required by the URL parser; `host=` (a socket directory) wins
        admin_url: format!(
            "postgres://postgres@localhost:5432/postgres?host={}",
            root.display()
        ),
        _server: Some(server),
    }
}

/// A PostgreSQL server of its own for one test, which the test may stop and start again (a
/// database outage, a database crash) while the binary's other tests keep the shared server.
/// Made with initdb in a temp dir, listening only on a unix socket in that dir, run as the
/// `postgres` user when the tests run as root. Stopped and removed on drop, and by a watchdog
/// shell should the test process end without dropping it (a failed assertion in another
/// thread, SIGKILL).
///
/// `fsync` is off (speed) but `synchronous_commit` stays on: [`PgServer::stop_immediate`] is a
/// crash of the database processes, not of the machine, so every transaction the server
/// reported committed survives it, as on a real server.
///
/// ```ignore
/// let pg = PgServer::start();
/// let url = pg.url();           // its `postgres` database
/// pg.stop_immediate();          // the outage: connections cut, no checkpoint
/// pg.restart();                 // crash recovery; accepts connections again on return
/// ```
pub struct PgServer {
    bin: PathBuf,
    root: PathBuf,
    data: PathBuf,
    log: PathBuf,
    as_root: bool,
    /// The shell that cleans up should the drop never run.
    watchdog: Option<std::process::Child>,
}

impl PgServer {
    /// initdb and start; returns once the server accepts connections (panics after 60 s).
    pub fn start() -> PgServer {
        let bin = postgres_bindir();
        let root = cluster_root("poortwachter-pg-own-");
        let as_root = is_root();
        let mut pg = PgServer {
            data: root.join("data"),
            log: root.join("server.log"),
            bin,
            root,
            as_root,
            watchdog: None,
        };
        initdb(pg.command("initdb"), &pg.data);
        // should this process end without the drop, the server and its files go anyway
        let script = format!(
            "while [ -d /proc/{parent} ]; do sleep 0.5; done; \
             {pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {root}",
            parent = std::process::id(),
            pg_ctl = pg.bin.join("pg_ctl").display(),
            data = pg.data.display(),
            root = pg.root.display(),
        );
        let mut watchdog = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "/bin/sh"]);
            c
        } else {
            Command::new("/bin/sh")
        };
        let watchdog = watchdog
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the PostgreSQL watchdog");
        pg.watchdog = Some(watchdog);
        pg.restart();
        pg
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    /// A URL to its `postgres` database.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// A URL to database `name` on it.
    pub fn url_of(&self, name: &str) -> String {
        format!(
            "postgres://postgres@localhost:5432/{name}?host={}",
            self.root.display()
        )
    }

    /// The directory of its unix socket (the `host=` of its URLs, `-h` of psql and pg_dump).
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// A PostgreSQL client program (psql, pg_dump, pg_restore) of the server's version, to
    /// run with `-h socket_dir() -U postgres`.
    pub fn client(&self, program: &str) -> Command {
        Command::new(self.bin.join(program))
    }

    /// From now on every role but `postgres` logs in with its password (scram-sha-256), as on
    /// a production server: a wrong or mangled password is refused.
    pub fn require_passwords(&self) {
        let hba = "local all postgres trust\nlocal all all scram-sha-256\n";
        std::fs::write(self.data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("reload")
            .output()
            .expect("run pg_ctl reload");
        assert!(
            out.status.success(),
            "pg_ctl reload failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // the postmaster reads pg_hba.conf on SIGHUP: give it a moment
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Whether it accepts connections now.
    pub fn is_ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .arg("-h")
            .arg(&self.root)
            .args(["-p", "5432", "-U", "postgres", "-q"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Stops it the way a crash would (`pg_ctl stop -m immediate`: every connection cut, no
    /// checkpoint); returns once it is down.
    pub fn stop_immediate(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w", "-t", "30"])
            .output()
            .expect("run pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts it (again, after [`PgServer::stop_immediate`]: crash recovery first); returns
    /// once it accepts connections, panics after 60 s. A running server is stopped first.
    pub fn restart(&self) {
        if self.is_ready() {
            self.stop_immediate();
        }
        let options = format!(
            "-k {} -p 5432 -c listen_addresses='' -c fsync=off -c full_page_writes=off \
             -c max_connections=100",
            self.root.display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .output()
            .expect("run pg_ctl start");
        if !out.status.success() || !self.is_ready() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!(
                "PostgreSQL did not start: {}\nits log:\n{log}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w", "-t", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// The PostgreSQL server binaries, or a failure that says which package to install: the
/// PostgreSQL tests never skip.
fn postgres_bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists() && p.join("postgres").exists())
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    if let Some(newest) = candidates.pop() {
        return newest;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    panic!(
        "PostgreSQL server binaries (initdb, postgres) not found: install the Debian package \
         `postgresql-15` (apt-get install postgresql-15), or set PG_BINDIR, or point \
         POORTWACHTER_TEST_POSTGRES_URL at a server"
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// What radclient printed about the reply.
#[derive(Debug)]
pub struct Reply {
    /// `Access-Accept`, `Accounting-Response`...; `None` without an answer.
    pub code: Option<String>,
    /// The reply's attributes as radclient printed them.
    pub attrs: Vec<(String, String)>,
    /// Everything radclient printed.
    pub output: String,
}

impl Reply {
    /// The value of the attribute `name` (tagged ones too).
    pub fn attr(&self, name: &str) -> Option<&str> {
        // radclient prints tagged attributes as `Name:tag`
        self.attrs
            .iter()
            .find(|(k, _)| k == name || k.split_once(':').is_some_and(|(n, _)| n == name))
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `radclient -x` once (no retries) with `attrs` on stdin.
pub async fn radclient(to: std::net::SocketAddr, kind: &str, secret: &str, attrs: &str) -> Reply {
    let mut child = tokio::process::Command::new("radclient")
        .args(["-x", "-r", "1", "-t", "1", &to.to_string(), kind, secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("radclient not found: install Debian's freeradius-utils (scripts/test does)");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(attrs.as_bytes()).await.expect("write");
    }
    let out = child.wait_with_output().await.expect("radclient ran");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut code = None;
    let mut attrs = Vec::new();
    let mut in_reply = false;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("Received ") {
            code = rest.split_whitespace().next().map(str::to_string);
            in_reply = true;
            continue;
        }
        if line.starts_with("Sent ") {
            in_reply = false;
        }
        if in_reply {
            if let Some((k, v)) = line.trim().split_once(" = ") {
                attrs.push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
            }
        }
    }
    Reply {
        code,
        attrs,
        output,
    }
}

/// Declares one test per backend from one async body taking a [`Backend`]:
/// `both_stores!(name, |backend| async move { ... });`
#[macro_export]
macro_rules! both_stores {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)($crate::support::Backend::Postgres).await
            }
        }
    };
}

/// An owner (staff, registered 40 days ago) with one compliant device; returns the device id.
pub async fn seed(reg: &poortwachter::registry::Registry, username: &str, mac: &str) -> uuid::Uuid {
    let month_ago = poortwachter::registry::Change {
        actor: "ict.test".into(),
        now: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now() - chrono::Days::new(40), 6),
    };
    reg.add_owner(
        poortwachter::model::NewOwner {
            username: username.into(),
            display_name: format!("Test {username}"),
            email: None,
            role: poortwachter::model::Role::Staff,
            department: None,
            valid_from: None,
            valid_until: None,
        },
        &month_ago,
    )
    .await
    .expect("owner");
    let id = reg
        .register_device(
            poortwachter::model::NewDevice {
                owner: username.into(),
                macs: vec![poortwachter::mac::MacAddr::parse_any(mac).expect("mac")],
                label: format!("laptop {mac}"),
                kind: poortwachter::model::DeviceKind::Laptop,
            },
            &month_ago,
        )
        .await
        .expect("device")
        .id;
    reg.set_compliance(
        &poortwachter::registry::DeviceRef::Id(id),
        poortwachter::model::Compliance::Compliant,
        None,
        &poortwachter::registry::Change::by("ict.test"),
    )
    .await
    .expect("compliance");
    id
}
