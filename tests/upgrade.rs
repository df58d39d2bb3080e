//! An upgrade with real binaries on one PostgreSQL schema (issue 12, "Run it for years"): an
//! older and a newer node side by side, and the runtime role's return from its snapshot.
//!
//! The *older* binary is this test's own (`CARGO_BIN_EXE_poortwachter`). The *newer* one is
//! built by the test: the same sources plus one expand migration (a nullable column on
//! `devices` and a new table, version [`EXPAND_VERSION`], later than every real one), added to
//! both `migrations/postgres` and `migrations/sqlite`. The migrations are embedded with
//! `sqlx::migrate!`, so only a build carries a new one; inserting a row into
//! `_sqlx_migrations` (tests/ops.rs) is not the same thing.
//!
//! The build ([`newer_binary`]): Cargo.toml, Cargo.lock, src/ and migrations/ are mirrored
//! into `target/upgrade-newer/source` (a file is written only when its content changed, so
//! an unchanged tree is not rebuilt; when anything changed, the three files that embed the
//! migrations are touched, since `sqlx::migrate!` does not make cargo watch the directory),
//! and built with `cargo build --locked --offline` into `target/upgrade-newer`, whose `deps`,
//! `build` and `.fingerprint` are first hard-linked from the warm `target/debug` (everything
//! but the poortwachter crate's own files, which cargo rewrites in place). The build also
//! names a one-line example, `upgrade_unify`: building an example makes cargo resolve the
//! dependencies with the dev-dependencies' features (tokio's `process`), as `cargo test`
//! built the warm tree; without it tokio and everything above it would be rebuilt.
//! With `CARGO_INCREMENTAL=0` only the poortwachter crate compiles.
//!
//! Its cost, measured on the 2-core machine with two other builds running (load 6 to 7),
//! debug profile:
//! - cold (an empty target dir): 7 min 33 s, all 351 packages of Cargo.lock;
//! - seeded from the warm `target/debug`: 51 to 68 s, the poortwachter crate alone (library,
//!   binary, the empty example); the hard links take well under a second;
//! - the tree unchanged since the last run: about 1 s (cargo finds everything fresh).
//!
//! What counts is what the peers conclude: radclient's printed reply (code and VLAN), the
//! binaries' own output and log lines, and the schema PostgreSQL holds.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use support::serving::{api_ready, free_tcp_port, free_udp_port, ServeProcess};
use support::{Backend, PgServer, Reply, TestDb};

/// The older binary: this test's own.
const OLDER: &str = env!("CARGO_BIN_EXE_poortwachter");
const SECRET: &str = "upgrade-test-secret-0123456789";

/// The newer build's expand migration: later than every migration of the tree.
const EXPAND_VERSION: i64 = 29990101000001;
/// Its file name's description; sqlx keeps it with spaces for underscores.
const EXPAND_FILE: &str = "upgrade_test_expand";
const EXPAND_NAME: &str = "upgrade test expand";
const EXPAND_POSTGRES: &str = "\
-- tests/upgrade.rs: the expand step of the newer build. A nullable column on a table the older
-- binary reads and writes, and a table it does not know: older binaries keep working.
ALTER TABLE devices ADD COLUMN upgrade_test_note text;
CREATE TABLE upgrade_test_expand (
    device_id uuid PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    note      text NOT NULL
);
";
const EXPAND_SQLITE: &str = "\
-- tests/upgrade.rs: the expand step of the newer build (see the PostgreSQL one).
ALTER TABLE devices ADD COLUMN upgrade_test_note TEXT;
CREATE TABLE upgrade_test_expand (
    device_id TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    note      TEXT NOT NULL
);
";

/// What an older binary says on the newer schema (src/registry/schema.rs
/// `SchemaVerdict::warning`), up to the advice that follows it.
fn newer_compatible() -> String {
    format!(
        "the registry schema is newer than this binary ({EXPAND_VERSION} {EXPAND_NAME}); it is \
         compatible, so this binary works on it"
    )
}

// ---------------------------------------------------------------------------------------------
// The newer binary
// ---------------------------------------------------------------------------------------------

/// The newer binary, built once per test process (the tests that need it wait for the one
/// build).
fn newer_binary() -> PathBuf {
    static NEWER: OnceLock<PathBuf> = OnceLock::new();
    NEWER.get_or_init(build_newer).clone()
}

fn build_newer() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // target/debug, wherever CARGO_TARGET_DIR put it
    let warm = Path::new(OLDER).parent().expect("the binary's directory");
    let target = warm
        .parent()
        .expect("the target directory")
        .join("upgrade-newer");
    let source = target.join("source");

    // the tree: the package's own files, the expand, the example that unifies features
    let mut files = BTreeMap::new();
    for top in ["Cargo.toml", "Cargo.lock", "src", "migrations"] {
        collect(&manifest.join(top), Path::new(top), &mut files);
    }
    for (dir, sql) in [("postgres", EXPAND_POSTGRES), ("sqlite", EXPAND_SQLITE)] {
        let existing: Vec<i64> = files
            .keys()
            .filter(|p| p.starts_with(format!("migrations/{dir}")))
            .filter_map(|p| p.file_name()?.to_str()?.split('_').next()?.parse().ok())
            .collect();
        assert!(
            existing.iter().all(|v| *v < EXPAND_VERSION),
            "a migration of the tree is not older than the test's expand {EXPAND_VERSION}: {existing:?}"
        );
        files.insert(
            PathBuf::from(format!(
                "migrations/{dir}/{EXPAND_VERSION}_{EXPAND_FILE}.sql"
            )),
            sql.as_bytes().to_vec(),
        );
    }
    files.insert(
        PathBuf::from("examples/upgrade_unify.rs"),
        b"//! Built with the newer binary so that cargo resolves the dev-dependencies' features.\nfn main() {}\n".to_vec(),
    );
    if mirror(&source, &files) {
        // sqlx::migrate! does not make cargo watch the migrations: recompile what embeds them
        for embeds in [
            "src/registry/postgres.rs",
            "src/registry/sqlite.rs",
            "src/registry/probe.rs",
        ] {
            std::fs::File::options()
                .write(true)
                .open(source.join(embeds))
                .and_then(|f| f.set_modified(SystemTime::now()))
                .expect("touch");
        }
    }

    // the profile the tests were built with, so that the seed is of use
    let profile = warm.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let started = Instant::now();
    let seeded = seed_target(warm, &target.join(profile));
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--locked", "--offline", "--bin", "poortwachter"])
        .args(["--example", "upgrade_unify"])
        // the `dev` profile's directory is `debug`; the others are named as their profile
        .args([
            "--profile",
            if profile == "debug" { "dev" } else { profile },
        ])
        .current_dir(&source)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_TERM_COLOR", "never");
    // what cargo set for this test process describes this package, not the build's
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_str(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cargo.env_remove(key);
        }
    }
    let out = cargo.output().expect("run cargo");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the newer build failed:\n{err}");
    let compiled: Vec<&str> = err
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Compiling "))
        .collect();
    eprintln!(
        "newer binary seeded and built in {:.1} s ({seeded} files seeded from {}; compiled: {compiled:?})",
        started.elapsed().as_secs_f64(),
        warm.display()
    );
    let bin = target.join(profile).join("poortwachter");
    assert!(bin.is_file(), "{} missing:\n{err}", bin.display());
    bin
}

/// Every file under `path` (or `path` itself), by its path relative to the package.
fn collect(path: &Path, rel: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).expect("read_dir") {
            let entry = entry.expect("entry");
            collect(&entry.path(), &rel.join(entry.file_name()), files);
        }
    } else {
        files.insert(rel.to_path_buf(), std::fs::read(path).expect("read"));
    }
}

/// Makes `root` hold exactly `files`, writing only what differs; true if anything changed.
fn mirror(root: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) -> bool {
    let mut changed = false;
    for (rel, content) in files {
        let path = root.join(rel);
        if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&path, content).expect("write");
            changed = true;
        }
    }
    let mut present = BTreeMap::new();
    if root.exists() {
        collect(root, Path::new(""), &mut present);
    }
    for rel in present.keys() {
        if !files.contains_key(rel) {
            std::fs::remove_file(root.join(rel)).expect("remove");
            changed = true;
        }
    }
    changed
}

/// Hard-links (or copies, across file systems) the warm build's `deps`, `build` and
/// `.fingerprint` into `to`, except the poortwachter crate's own files; returns how many
/// files were added.
fn seed_target(warm: &Path, to: &Path) -> usize {
    fn link_tree(from: &Path, to: &Path, top: bool, added: &mut usize) {
        let Ok(entries) = std::fs::read_dir(from) else {
            return;
        };
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in entries {
            let entry = entry.expect("entry");
            let name = entry.file_name();
            if top && name.to_string_lossy().contains("poortwachter") {
                continue;
            }
            let kind = entry.file_type().expect("file type");
            let dest = to.join(&name);
            if kind.is_dir() {
                link_tree(&entry.path(), &dest, false, added);
            } else if kind.is_file() && std::fs::symlink_metadata(&dest).is_err() {
                if std::fs::hard_link(entry.path(), &dest).is_err() {
                    std::fs::copy(entry.path(), &dest).expect("copy");
                }
                *added += 1;
            }
        }
    }
    let mut added = 0;
    for dir in ["deps", "build", ".fingerprint"] {
        link_tree(&warm.join(dir), &to.join(dir), true, &mut added);
    }
    added
}

// ---------------------------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------------------------

/// One node: a binary, its config (own ports, own state directory) and, while it serves,
/// its process and log.
struct Node {
    name: &'static str,
    bin: PathBuf,
    auth: SocketAddr,
    api: SocketAddr,
    dir: tempfile::TempDir,
    /// Its `serve`, with what it wrote to stderr over every start.
    process: ServeProcess,
}

impl Node {
    /// `database` is added to the `[database]` table.
    fn new(name: &'static str, bin: &Path, url: &str, database: &str) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let auth: SocketAddr = format!("127.0.0.1:{}", free_udp_port())
            .parse()
            .expect("addr");
        let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port())
            .parse()
            .expect("addr");
        let text = format!(
            r#"
[database]
url = "{url}"
max_connections = 4
{database}

[radius]
auth_listen = "{auth}"
acct_listen = "127.0.0.1:{acct}"

[[radius.clients]]
name = "ap-upgrade"
network = "127.0.0.1/32"
secret = "{SECRET}"

[vlans]
workspace = 100
guest = 200
quarantine = 666

[api]
listen = "{api}"

[node]
state_dir = "{state}"
snapshot_interval = "10s"
"#,
            acct = free_udp_port(),
            state = dir.path().join("state").display(),
        );
        std::fs::write(dir.path().join("poortwachter.toml"), text).expect("config");
        Node {
            name,
            bin: bin.to_path_buf(),
            auth,
            api,
            dir,
            process: ServeProcess::new(name),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--config")
            .arg(self.dir.path().join("poortwachter.toml"))
            .args(args)
            .env_remove("POORTWACHTER_CONFIG")
            .env_remove("POORTWACHTER_ACTOR")
            .env_remove("POORTWACHTER_DATABASE__URL")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path());
        c
    }

    /// A command of this node's binary and config; expects success; returns (stdout, stderr).
    fn ok(&self, args: &[&str]) -> (String, String) {
        let out: Output = self.command(args).output().expect("run poortwachter");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "{}: {args:?} failed: {stderr}",
            self.name
        );
        (stdout, stderr)
    }

    /// Starts `serve`; returns once it answers Status-Server (panics after 30 s).
    async fn start(&mut self) {
        let mut c = self.command(&["serve"]);
        c.env("RUST_LOG", "info,sqlx=warn");
        self.process
            .start(c, self.auth, SECRET, Duration::from_secs(30))
            .await;
    }

    fn log_text(&self) -> String {
        self.process.log_text()
    }

    fn logged(&self, needle: &str) -> bool {
        self.process.logged(needle)
    }

    /// Waits until a log line holds `needle` (panics after `limit`).
    async fn wait_logged(&self, needle: &str, limit: Duration) {
        self.process.wait_logged(needle, limit).await;
    }

    /// SIGTERM to the process we started, by its PID; waits (bounded) for the end.
    fn stop(&mut self) {
        self.process.stop();
    }

    /// MAB for `mac`: the reply code and VLAN radclient printed.
    async fn mab(&self, mac: &str) -> (String, Option<String>) {
        verdict(&support::radclient(self.auth, "auth", SECRET, &mab_attrs(mac)).await)
    }

    /// Asks until the reply is `want` (panics after `limit`); how long it took.
    async fn until_decided(
        &self,
        mac: &str,
        want: (&str, Option<&str>),
        limit: Duration,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let got = self.mab(mac).await;
            if (got.0.as_str(), got.1.as_deref()) == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{}: {mac} still {got:?}, not {want:?}, after {limit:?}:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /api/v1/ready`: the status code and body.
    async fn ready(&self) -> (u16, String) {
        api_ready(self.api).await
    }

    /// Waits for `GET /api/v1/ready` 200 (panics after `limit`); how long it took.
    async fn wait_ready(&self, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let (status, body) = self.ready().await;
            if status == 200 {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{} not ready within {limit:?}: {status} {body}\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn mab_attrs(mac: &str) -> String {
    format!(
        "User-Name = \"{mac}\"\nUser-Password = \"{mac}\"\nCalling-Station-Id = \"{}\"\n\
         Called-Station-Id = \"00-11-22-33-44-55:Gemeente-Werkplek\"\nNAS-IP-Address = 127.0.0.1\n\
         NAS-Identifier = \"ap-1\"\nNAS-Port-Type = Wireless-802.11\nService-Type = Call-Check\n\
         Message-Authenticator = 0x00\n",
        mac.to_uppercase()
    )
}

/// The reply code (`none` without an answer) and the VLAN.
fn verdict(r: &Reply) -> (String, Option<String>) {
    (
        r.code.clone().unwrap_or_else(|| "none".into()),
        r.attr("Tunnel-Private-Group-Id").map(str::to_string),
    )
}

const ACCEPT_100: (&str, Option<&str>) = ("Access-Accept", Some("100"));
const QUARANTINE: (&str, Option<&str>) = ("Access-Accept", Some("666"));
const REJECT: (&str, Option<&str>) = ("Access-Reject", None);

fn owned((code, vlan): (&str, Option<&str>)) -> (String, Option<String>) {
    (code.to_string(), vlan.map(str::to_string))
}

/// An owner and compliant devices, through `node`'s command line.
fn seed(node: &Node, owner: &str, macs: &[&str]) {
    node.ok(&[
        "owner",
        "add",
        owner,
        "--name",
        "Test Owner",
        "--role",
        "staff",
    ]);
    for mac in macs {
        register(node, owner, mac);
    }
}

fn register(node: &Node, owner: &str, mac: &str) {
    node.ok(&[
        "device", "register", "--owner", owner, "--mac", mac, "--label", "laptop",
    ]);
    node.ok(&["device", "compliance", mac, "compliant"]);
}

/// The migration versions PostgreSQL holds, and whether the expand's column is there.
async fn schema_facts(url: &str) -> (Vec<i64>, bool) {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&pool)
            .await
            .expect("migrations");
    let column: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
         WHERE table_name = 'devices' AND column_name = 'upgrade_test_note')",
    )
    .fetch_one(&pool)
    .await
    .expect("columns");
    pool.close().await;
    (versions, column)
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

/// An older and a newer node side by side on one schema: the newer one applies its expand
/// while the older one serves; both decide alike, a change through either command line is
/// decided alike by the other node; the older binary says the schema is newer and
/// compatible; the rollback (the newer node stopped, the older one restarted on the newer
/// schema) keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_and_a_newer_node_side_by_side_on_one_schema() {
    let building = tokio::task::spawn_blocking(newer_binary);
    let db = TestDb::new(Backend::Postgres).await;
    let macs = [
        "3c:22:fb:10:00:01",
        "3c:22:fb:10:00:02",
        "3c:22:fb:10:00:03",
    ];

    let mut older = Node::new("older node", Path::new(OLDER), &db.url, "");
    let (out, _) = older.ok(&["migrate"]);
    assert!(out.contains("registry is up to date"), "{out}");
    seed(&older, "o.ouder", &macs);
    older.start().await;
    for mac in macs {
        older
            .until_decided(mac, ACCEPT_100, Duration::from_secs(5))
            .await;
    }
    let (versions, column) = schema_facts(&db.url).await;
    assert!(!versions.contains(&EXPAND_VERSION) && !column);

    // the newer node starts (database.migrate_on_start, the default) while the older serves
    let newer_bin = building.await.expect("the newer build");
    let mut newer = Node::new("newer node", &newer_bin, &db.url, "");
    newer.start().await;
    let (versions, column) = schema_facts(&db.url).await;
    assert_eq!(versions.last(), Some(&EXPAND_VERSION), "{versions:?}");
    assert!(column, "the expand's column");
    assert!(
        !newer.logged("newer than this binary"),
        "{}",
        newer.log_text()
    );

    // the same devices, the same answers
    for mac in macs {
        let (a, b) = (older.mab(mac).await, newer.mab(mac).await);
        assert_eq!((a.0.as_str(), a.1.as_deref()), ACCEPT_100, "older, {mac}");
        assert_eq!(b, a, "newer, {mac}");
    }

    // a change through the older command line, which says the schema is newer and compatible
    let (_, err) = older.ok(&["device", "compliance", macs[1], "noncompliant"]);
    assert!(
        err.contains(&format!("warning: {}", newer_compatible())),
        "{err}"
    );
    let took = newer
        .until_decided(macs[1], QUARANTINE, Duration::from_secs(5))
        .await;
    older
        .until_decided(macs[1], QUARANTINE, Duration::from_secs(5))
        .await;
    eprintln!(
        "the newer node quarantined {} {took:?} after the older CLI's change",
        macs[1]
    );

    // and one through the newer command line, which has no warning
    let (_, err) = newer.ok(&["device", "revoke", macs[2], "--reason", "gestolen"]);
    assert!(!err.contains("warning"), "{err}");
    let took = older
        .until_decided(macs[2], REJECT, Duration::from_secs(5))
        .await;
    newer
        .until_decided(macs[2], REJECT, Duration::from_secs(5))
        .await;
    eprintln!(
        "the older node refused {} {took:?} after the newer CLI's revoke",
        macs[2]
    );

    // rollback: the newer node goes, the older keeps answering
    newer.stop();
    assert_eq!(older.mab(macs[0]).await, owned(ACCEPT_100));
    // it started on its own schema: nothing to warn about then
    assert!(
        !older.logged("newer than this binary"),
        "{}",
        older.log_text()
    );
    // restarted on the newer schema, it starts, says so and answers
    older.stop();
    older.start().await;
    assert!(older.logged(&newer_compatible()), "{}", older.log_text());
    for (mac, want) in [
        (macs[0], ACCEPT_100),
        (macs[1], QUARANTINE),
        (macs[2], REJECT),
    ] {
        older.until_decided(mac, want, Duration::from_secs(5)).await;
    }
    // the older `migrate` leaves the newer schema as it is
    let (out, err) = older.ok(&["migrate"]);
    assert!(out.contains("registry is up to date"), "{out}");
    assert!(err.contains(&newer_compatible()), "{err}");
    assert_eq!(schema_facts(&db.url).await, (versions, true));
    older.stop();
}

/// The runtime role of deploy/postgres-setup.sql (no DDL rights), `database.migrate_on_start
/// = false`, returning from its snapshot:
/// - on its own schema: it starts degraded while the database is down and, once the database
///   is back, leaves degraded and answers from the database (a device registered after the
///   snapshot is accepted);
/// - upgraded to the newer binary while the database is down: back, the database's schema is
///   older than the binary; the node changes nothing (the runtime role may not), says to run
///   `poortwachter migrate` and stays degraded until the owner role has, then leaves degraded
///   and accepts a device registered while it was degraded.
///
/// Commit 67790d8 made the return check the schema, and migrate only with
/// `database.migrate_on_start`; before it, the return always migrated: the second part then
/// logs the runtime role's "permission denied" instead of the advice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_role_returns_from_its_snapshot() {
    let pg = PgServer::start();
    let sock = pg.socket_dir().display().to_string();
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/postgres-setup.sql");
    let out = pg
        .client("psql")
        .args(["-h", &sock, "-U", "postgres", "-d", "postgres", "-q"])
        .args([
            "-v",
            "owner_password=owner-pw",
            "-v",
            "runtime_password=runtime-pw",
        ])
        .arg("-f")
        .arg(&setup)
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "postgres-setup.sql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the server trusts local connections: what each role may do is the point, not its login
    let url = |role: &str| format!("postgres://{role}@localhost:5432/poortwachter?host={sock}");
    let owner = Node::new("owner", Path::new(OLDER), &url("poortwachter_owner"), "");
    owner.ok(&["migrate"]);
    let mut node = Node::new(
        "runtime node",
        Path::new(OLDER),
        &url("poortwachter"),
        "migrate_on_start = false",
    );
    let known = "3c:22:fb:20:00:01";
    let late = "3c:22:fb:20:00:02";
    let while_degraded = "3c:22:fb:20:00:03";
    seed(&node, "r.runtime", &[known]);
    node.start().await;
    node.until_decided(known, ACCEPT_100, Duration::from_secs(5))
        .await;
    // the snapshot is written at the stop
    node.stop();
    assert!(node.dir.path().join("state/snapshot.json").is_file());
    // a device the snapshot does not hold
    register(&node, "r.runtime", late);

    pg.stop_immediate();
    node.start().await;
    assert!(node.logged("UNREACHABLE"), "{}", node.log_text());
    assert_eq!(node.mab(known).await, owned(ACCEPT_100));
    assert_eq!(
        node.mab(late).await.0,
        "Access-Reject",
        "not in the snapshot"
    );
    assert_eq!(node.ready().await.0, 503);
    pg.restart();
    let back = node.wait_ready(Duration::from_secs(20)).await;
    eprintln!("the runtime node left degraded {back:?} after the database returned");
    node.wait_logged("no longer degraded", Duration::from_secs(5))
        .await;
    // answered from the database now
    node.until_decided(late, ACCEPT_100, Duration::from_secs(5))
        .await;
    assert!(!node.logged("still degraded"), "{}", node.log_text());
    assert!(!node.logged("permission denied"), "{}", node.log_text());

    // the node's package is upgraded while the database is down
    let newer_bin = tokio::task::spawn_blocking(newer_binary)
        .await
        .expect("the newer build");
    node.stop();
    pg.stop_immediate();
    node.bin = newer_bin.clone();
    let seen = node.log_text().len();
    node.start().await;
    pg.restart();
    // back: the schema is older than this binary, which may not migrate it
    let advice = format!(
        "the registry schema is older than this binary (1 pending: {EXPAND_VERSION} {EXPAND_NAME}): run `poortwachter migrate`"
    );
    node.wait_logged(&advice, Duration::from_secs(20)).await;
    let since = node.log_text()[seen..].to_string();
    assert!(since.contains("still degraded"), "{since}");
    assert!(!since.contains("permission denied"), "{since}");
    assert!(!since.contains("no longer degraded"), "{since}");
    let (status, body) = node.ready().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(node.mab(known).await, owned(ACCEPT_100));
    // registered with the older command line while the node is degraded
    let older_cli = Node::new("older cli", Path::new(OLDER), &url("poortwachter"), "");
    register(&older_cli, "r.runtime", while_degraded);
    let (versions, column) = schema_facts(&pg.url_of("poortwachter")).await;
    assert!(
        !versions.contains(&EXPAND_VERSION) && !column,
        "the node changed the schema"
    );

    // the owner role migrates with the newer binary: the node leaves degraded
    let newer_owner = Node::new("newer owner", &newer_bin, &url("poortwachter_owner"), "");
    newer_owner.ok(&["migrate"]);
    let (versions, _) = schema_facts(&pg.url_of("poortwachter")).await;
    assert_eq!(versions.last(), Some(&EXPAND_VERSION));
    node.wait_ready(Duration::from_secs(20)).await;
    node.until_decided(while_degraded, ACCEPT_100, Duration::from_secs(5))
        .await;
    node.until_decided(late, ACCEPT_100, Duration::from_secs(5))
        .await;
    assert!(!node.logged("permission denied"), "{}", node.log_text());
    node.stop();
}
