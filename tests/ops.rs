//! Running it for years, with the real binary: schema versions across binaries (an older binary
//! on a newer schema), least privilege in PostgreSQL and passwords with URL characters,
//! backups and restores, the audit actor under sudo, a broken pipe, and the Debian package
//! installed and serving.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::install::{require_root_and_no_install, Installed, Package};
use support::serving::{free_udp_port, run_ok, verdict, Serving};
use support::{Backend, PgServer, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");
const SECRET: &str = "ops-test-secret-0123456789";
const MAC: &str = "3c:22:fb:00:00:01";

fn config_text(url: &str, auth: u16, acct: u16) -> String {
    format!(
        r#"
[database]
url = "{url}"

[radius]
auth_listen = "127.0.0.1:{auth}"
acct_listen = "127.0.0.1:{acct}"

[[radius.clients]]
name = "test-ap"
network = "127.0.0.1/32"
secret = "{SECRET}"

[vlans]
workspace = 100
guest = 200
quarantine = 666
"#
    )
}

/// A config file in a temp dir (also the working directory of every command).
struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
    auth: u16,
    env: Vec<(String, String)>,
}

impl Site {
    fn new(url: &str) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("poortwachter.toml");
        let auth = free_udp_port();
        std::fs::write(&config, config_text(url, auth, free_udp_port())).expect("config");
        Site {
            dir,
            config,
            auth,
            env: Vec::new(),
        }
    }

    fn with_env(mut self, key: &str, value: &str) -> Site {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("POORTWACHTER_CONFIG")
            .env_remove("POORTWACHTER_ACTOR")
            .env_remove("POORTWACHTER_DATABASE__URL")
            .env_remove("SUDO_USER")
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run poortwachter")
    }

    /// Runs, expects success; returns (stdout, stderr).
    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs, expects failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "{args:?} should fail but printed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// An owner with one compliant device.
    fn seed(&self, mac: &str) {
        self.ok(&[
            "owner",
            "add",
            "j.devries",
            "--name",
            "Jan de Vries",
            "--role",
            "staff",
        ]);
        self.ok(&[
            "device",
            "register",
            "--owner",
            "j.devries",
            "--mac",
            mac,
            "--label",
            "ThinkPad",
        ]);
        self.ok(&["device", "compliance", mac, "compliant"]);
    }

    fn serve(&self) -> Serving {
        Serving::start(self.command(&["serve"]), self.dir.path(), self.auth, SECRET)
    }
}

/// Adds a migration row the binary does not know, as a newer binary's `migrate` would.
async fn apply_future_migration(db: &TestDb, version: i64, description: &str, breaking: bool) {
    let checksum = match db.backend {
        Backend::Sqlite => "X'00'",
        Backend::Postgres => "'\\x00'::bytea",
    };
    db.execute(&format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ({version}, '{description}', true, {checksum}, 0)"
    ))
    .await
    .expect("future migration row");
    db.execute(&format!("CREATE TABLE future_{version} (id integer)"))
        .await
        .expect("future table");
    if breaking {
        db.execute(&format!(
            "INSERT INTO schema_compat (migration, min_binary_migration) VALUES ({version}, {version})"
        ))
        .await
        .expect("compat mark");
    }
}

// Upgrades: only `migrate` and `serve` migrate; an older binary works on a newer schema that
// is compatible with it (and says so), and refuses one that is not.
both_stores!(an_older_binary_on_a_newer_schema, |b| async move {
    let db = TestDb::new(b).await;
    let site = Site::new(&db.url);

    // a fresh database: the command line does not migrate, it says what to run
    let err = site.fails(&["owner", "list"]);
    assert!(err.contains("run `poortwachter migrate`"), "{err}");
    assert!(err.contains("pending"), "{err}");
    let (out, err) = site.ok(&["migrate"]);
    assert!(out.contains("registry is up to date"), "{out}");
    // every command names the config and the registry it works on, on stderr, once
    let config = site.config.display().to_string();
    let line = format!("poortwachter: config {config}, registry ");
    assert_eq!(err.matches(&line).count(), 1, "{err}");
    site.seed(MAC);

    // a newer binary applied a compatible migration (expand)
    apply_future_migration(&db, 29991231000001, "future expand", false).await;
    let out = site.run(&["owner", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("j.devries"));
    assert!(
        err.contains("warning: the registry schema is newer than this binary")
            && err.contains("29991231000001 future expand")
            && err.contains("compatible"),
        "{err}"
    );
    site.ok(&["migrate"]);
    let serving = site.serve();
    let (code, vlan) = verdict(&serving.ask(MAC));
    assert_eq!(
        (code.as_str(), vlan.as_deref()),
        ("Access-Accept", Some("100"))
    );
    let log = serving.stop();
    assert!(
        log.contains("newer than this binary") && log.contains("29991231000001"),
        "serve says so: {log}"
    );

    // and then one that breaks older binaries (contract)
    apply_future_migration(&db, 29991231000002, "future contract", true).await;
    for args in [&["owner", "list"][..], &["migrate"][..], &["serve"][..]] {
        let err = site.fails(args);
        assert!(
            err.contains("not compatible")
                && err.contains("needs a binary with migration 29991231000002 or later"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(db.count("owners").await, 1, "nothing changed");
});

// Least privilege: the owner role migrates, the runtime role serves and runs the command
// line, and cannot change the audit log's history. Both passwords hold URL characters
// (`!#@:/`) and are given apart from the URL (environment and password file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_privilege_roles_with_url_character_passwords() {
    let pg = PgServer::start();
    let sock = pg.socket_dir().display().to_string();
    let owner_pw = "own!#@:/er pw";
    let runtime_pw = "run!#@:/time%+pw";
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/postgres-setup.sql");
    let out = pg
        .client("psql")
        .args(["-h", &sock, "-U", "postgres", "-d", "postgres", "-q"])
        .arg("-v")
        .arg(format!("owner_password={owner_pw}"))
        .arg("-v")
        .arg(format!("runtime_password={runtime_pw}"))
        .arg("-f")
        .arg(&setup)
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "postgres-setup.sql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pg.require_passwords();
    let url = |role: &str| format!("postgres://{role}@localhost:5432/poortwachter?host={sock}");

    // the owner migrates, its password from the environment
    let owner =
        Site::new(&url("poortwachter_owner")).with_env("POORTWACHTER_DATABASE__PASSWORD", owner_pw);
    owner.ok(&["migrate"]);
    // the password is checked: a wrong one is refused
    let wrong = Site::new(&url("poortwachter_owner"))
        .with_env("POORTWACHTER_DATABASE__PASSWORD", "not-the-password");
    let err = wrong.fails(&["owner", "list"]);
    assert!(err.contains("password authentication failed"), "{err}");
    // written raw into the URL, the driver cannot read it: the error says what to do
    let raw = Site::new(&format!(
        "postgres://poortwachter:{runtime_pw}@localhost:5432/poortwachter?host={sock}"
    ));
    let err = raw.fails(&["owner", "list"]);
    assert!(
        err.contains("percent-encoded") && err.contains("database.password_file"),
        "{err}"
    );
    assert!(!err.contains("time%+pw"), "the password is printed: {err}");

    // the runtime role, its password from a file, as the service has it
    let runtime = Site::new(&url("poortwachter"));
    let pw_file = runtime.dir.path().join("db-password");
    std::fs::write(&pw_file, format!("{runtime_pw}\n")).expect("password file");
    let text = std::fs::read_to_string(&runtime.config)
        .expect("config")
        .replace(
            "[database]\n",
            &format!(
                "[database]\nmigrate_on_start = false\npassword_file = \"{}\"\n",
                pw_file.display()
            ),
        );
    std::fs::write(&runtime.config, text).expect("config");
    runtime.seed(MAC);
    let (_, err) = runtime.ok(&["owner", "list"]);
    assert!(!err.contains("run!#"), "the password is printed: {err}");
    let serving = runtime.serve();
    let (code, vlan) = verdict(&serving.ask(MAC));
    assert_eq!(
        (code.as_str(), vlan.as_deref()),
        ("Access-Accept", Some("100"))
    );

    // the decision is written by the runtime role
    let admin = sqlx::PgPool::connect(&pg.url_of("poortwachter"))
        .await
        .expect("connect as postgres");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM decisions) + (SELECT count(*) FROM decision_aggregates)",
        )
        .fetch_one(&admin)
        .await
        .expect("count decisions");
        if n > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no decision row within 20 s: {}",
            serving.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = serving.stop();
    assert!(!log.contains("permission denied"), "{log}");
    // the purge of old decisions and sessions may delete
    for table in [
        "decisions",
        "decision_aggregates",
        "sessions",
        "posture_reports",
    ] {
        let may: bool =
            sqlx::query_scalar("SELECT has_table_privilege('poortwachter', $1, 'DELETE')")
                .bind(table)
                .fetch_one(&admin)
                .await
                .expect("privilege");
        assert!(may, "the runtime role cannot purge {table}");
    }
    admin.close().await;

    // and the audit log is append-only for it, whatever it tries
    let as_runtime =
        poortwachter::config::url_with_password(&url("poortwachter"), runtime_pw).expect("url");
    let conn = sqlx::PgPool::connect(&as_runtime)
        .await
        .expect("connect as the runtime role");
    let audit_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&conn)
        .await
        .expect("it reads the audit log");
    assert!(audit_rows >= 3, "the seed was audited");
    for (sql, refusal) in [
        ("DELETE FROM audit_log", "permission denied"),
        ("UPDATE audit_log SET actor = 'nobody'", "permission denied"),
        ("TRUNCATE audit_log", "permission denied"),
        (
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
            "must be owner",
        ),
        ("DROP TABLE audit_log", "must be owner"),
        ("DELETE FROM _sqlx_migrations", "permission denied"),
        (
            "INSERT INTO schema_compat VALUES (1, 1)",
            "permission denied",
        ),
        ("CREATE TABLE mine (id integer)", "permission denied"),
    ] {
        let err = sqlx::query(sql)
            .execute(&conn)
            .await
            .expect_err(&format!("the runtime role may not: {sql}"));
        assert!(err.to_string().contains(refusal), "{sql}: {err}");
    }
    conn.close().await;
}

// Backups, PostgreSQL: pg_dump of a seeded registry restored into a new database; the binary
// reads it back (the same devices) and decides a request the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_dump_restores() {
    let pg = PgServer::start();
    let sock = pg.socket_dir().display().to_string();
    let psql = |sql: &str| {
        let out = pg
            .client("psql")
            .args([
                "-h", &sock, "-U", "postgres", "-d", "postgres", "-q", "-c", sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql("CREATE DATABASE registry");
    let site = Site::new(&pg.url_of("registry"));
    site.ok(&["migrate"]);
    site.seed(MAC);
    site.ok(&[
        "device",
        "register",
        "--owner",
        "j.devries",
        "--mac",
        "3c:22:fb:00:00:02",
        "--label",
        "Telefoon",
    ]);
    let dump = site.dir.path().join("registry.dump");
    // `backup` does not dump PostgreSQL: it names the command
    let err = site.fails(&["backup", "--to", dump.to_str().expect("utf-8")]);
    assert!(
        err.contains("pg_dump --format=custom") && err.contains("pg_restore"),
        "{err}"
    );
    let serving = site.serve();
    let original = (
        verdict(&serving.ask(MAC)),
        verdict(&serving.ask("3c:22:fb:00:00:02")),
    );
    drop(serving);
    // after serve, which recorded where the devices were last seen
    let before = site.ok(&["--json", "device", "list"]).0;

    let out = pg
        .client("pg_dump")
        .args(["-h", &sock, "-U", "postgres", "--format=custom", "--file"])
        .arg(&dump)
        .arg("registry")
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    psql("CREATE DATABASE restored");
    let out = pg
        .client("pg_restore")
        .args([
            "-h",
            &sock,
            "-U",
            "postgres",
            "--dbname=restored",
            "--exit-on-error",
        ])
        .arg(&dump)
        .output()
        .expect("pg_restore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let restored = Site::new(&pg.url_of("restored"));
    let after = restored.ok(&["--json", "device", "list"]).0;
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("json");
    assert_eq!(
        parse(&after),
        parse(&before),
        "the restored registry differs"
    );
    assert_eq!(parse(&after).as_array().map(Vec::len), Some(2));
    let serving = restored.serve();
    let again = (
        verdict(&serving.ask(MAC)),
        verdict(&serving.ask("3c:22:fb:00:00:02")),
    );
    assert_eq!(again, original);
    assert_eq!(original.0 .0, "Access-Accept");
}

// Backups, SQLite: an online copy with `backup --to`, and `serve` from the copy.
#[test]
fn an_sqlite_backup_serves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("registry.db");
    let site = Site::new(&format!("sqlite:{}", db.display()));
    site.ok(&["migrate"]);
    site.seed(MAC);
    // while `serve` runs on it
    let serving = site.serve();
    let copy = dir.path().join("backup.db");
    let (out, _) = site.ok(&["backup", "--to", copy.to_str().expect("utf-8")]);
    assert!(out.contains("copied to"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy).expect("copy").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "it holds personal data");
    let err = site.fails(&["backup", "--to", copy.to_str().expect("utf-8")]);
    assert!(err.contains("exists"), "{err}");
    drop(serving);

    std::fs::remove_file(&db).expect("the original is gone");
    let restored = Site::new(&format!("sqlite:{}", copy.display()));
    let serving = restored.serve();
    let (code, vlan) = verdict(&serving.ask(MAC));
    assert_eq!(
        (code.as_str(), vlan.as_deref()),
        ("Access-Accept", Some("100"))
    );
    let (code, _) = verdict(&serving.ask("3c:22:fb:00:00:77"));
    assert_eq!(code, "Access-Reject");
}

// The audit actor: the person behind sudo, and the OS user next to a declared actor.
#[test]
fn the_audit_actor_under_sudo() {
    let dir = tempfile::tempdir().expect("temp dir");
    let site = Site::new(&format!("sqlite:{}", dir.path().join("r.db").display()));
    site.ok(&["migrate"]);
    let run = |args: &[&str], actor: Option<&str>| {
        let mut c = site.command(args);
        c.env("USER", "root").env("SUDO_USER", "bob");
        if let Some(a) = actor {
            c.env("POORTWACHTER_ACTOR", a);
        }
        let out = c.output().expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        &["owner", "add", "a.a", "--name", "A", "--role", "staff"],
        None,
    );
    run(
        &["owner", "add", "b.b", "--name", "B", "--role", "staff"],
        Some("alice"),
    );
    let audit: serde_json::Value =
        serde_json::from_str(&site.ok(&["--json", "audit"]).0).expect("json");
    let actors: Vec<&str> = audit
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert_eq!(actors, ["alice (os: root via sudo bob)", "bob"]);
    // `--by` finds the declared actor
    let by: serde_json::Value =
        serde_json::from_str(&site.ok(&["--json", "audit", "--by", "alice"]).0).expect("json");
    assert_eq!(by.as_array().map(Vec::len), Some(1));
    let table = site.ok(&["audit"]).0;
    assert!(table.contains("alice (os: root via sudo bob)"), "{table}");
}

// `device list | head`: the reader goes away, the command ends quietly (no panic).
#[test]
fn a_closed_pipe_ends_the_listing_quietly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let site = Site::new(&format!("sqlite:{}", dir.path().join("r.db").display()));
    site.ok(&["migrate"]);
    site.seed(MAC);
    for args in [
        &["device", "list"][..],
        &["audit"][..],
        &["--json", "owner", "list"][..],
    ] {
        let mut child = site
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // the reader closes before the first line is written
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        // ends quietly, with status 0 (SIGPIPE stays ignored: it is not killed by a signal)
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(!err.contains("error"), "{args:?}: {err}");
    }
}

/// Runs `dpkg --purge poortwachter` and removes what the test made, whatever happens.
/// The Debian package, installed for real and serving.
///
/// Why for real: the package's promises are its maintainer scripts (the system user, the
/// modes and group of /etc/poortwachter and /var/lib/poortwachter) and the unit's paths, and
/// only `dpkg -i` runs them as a municipality's server would; extracting the files into a temp
/// root would test the file list and nothing else. So this test builds the package from the
/// test binary (scripts/package-deb with BIN=, no release build), checks its contents, then
/// `dpkg -i` on this machine, starts `/usr/bin/poortwachter serve` as the `poortwachter` user
/// with the installed config (only the database, listeners and client network overridden
/// from the environment, as /etc/poortwachter/env would), gets Access-Accept and
/// Access-Reject from radclient, and `dpkg --purge`s it. It runs as root, as CI does, and
/// fails (never skips) otherwise. It leaves the `poortwachter` system user behind (the
/// package never removes it, as Debian packages do not), and refuses to run where
/// poortwachter is installed already.
#[test]
fn the_debian_package_installs_and_serves() {
    require_root_and_no_install();
    let package = Package::build(BIN);
    let deb = package.deb.clone();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        deb.file_name().and_then(|n| n.to_str()),
        Some(format!("poortwachter_{version}_amd64.deb").as_str())
    );

    let conffiles = run_ok(
        Command::new("dpkg-deb")
            .arg("-I")
            .arg(&deb)
            .arg("conffiles"),
    );
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        [
            "/etc/poortwachter/poortwachter.toml",
            "/etc/poortwachter/env"
        ]
    );
    let contents = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for (mode, path) in [
        ("-rwxr-xr-x", "./usr/bin/poortwachter"),
        ("-rw-r--r--", "./lib/systemd/system/poortwachter.service"),
        ("-rw-r-----", "./etc/poortwachter/poortwachter.toml"),
        ("-rw-r-----", "./etc/poortwachter/env"),
        ("-rw-r--r--", "./usr/share/doc/poortwachter/README.md"),
        ("-rw-r--r--", "./usr/share/poortwachter/postgres-setup.sql"),
    ] {
        assert!(
            contents
                .lines()
                .any(|l| l.starts_with(mode) && l.ends_with(path)),
            "{mode} {path} not in:\n{contents}"
        );
    }

    let _guard = Installed::install(&package);
    use std::os::unix::fs::MetadataExt;
    let passwd = run_ok(Command::new("getent").args(["passwd", "poortwachter"]));
    assert!(passwd.contains(":/var/lib/poortwachter:"), "{passwd}");
    let group = run_ok(Command::new("getent").args(["group", "poortwachter"]));
    let gid: u32 = group
        .split(':')
        .nth(2)
        .and_then(|g| g.parse().ok())
        .expect("gid");
    let state = std::fs::metadata("/var/lib/poortwachter").expect("state dir");
    assert_eq!(state.mode() & 0o7777, 0o750);
    assert_eq!(state.gid(), gid);
    for file in [
        "/etc/poortwachter/env",
        "/etc/poortwachter/poortwachter.toml",
    ] {
        let m = std::fs::metadata(file).expect(file);
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o640, 0, gid),
            "{file}"
        );
    }
    let unit = std::fs::read_to_string("/lib/systemd/system/poortwachter.service").expect("unit");
    assert!(
        unit.contains(
            "ExecStart=/usr/bin/poortwachter --config /etc/poortwachter/poortwachter.toml serve"
        ) && !unit.contains("/usr/local"),
        "{unit}"
    );

    // as the service: the installed config, secrets from the environment (/etc/poortwachter/env)
    let auth = free_udp_port();
    let env = [
        (
            "POORTWACHTER_DATABASE__URL",
            "sqlite:/var/lib/poortwachter/registry.db".to_string(),
        ),
        (
            "POORTWACHTER_RADIUS__AUTH_LISTEN",
            format!("127.0.0.1:{auth}"),
        ),
        (
            "POORTWACHTER_RADIUS__ACCT_LISTEN",
            format!("127.0.0.1:{}", free_udp_port()),
        ),
        // an override by position names its entry; the secrets go by the client's name
        (
            "POORTWACHTER_RADIUS__CLIENTS__0__NAME",
            "wlan-controllers".to_string(),
        ),
        (
            "POORTWACHTER_RADIUS__CLIENTS__0__NETWORK",
            "127.0.0.1/32".to_string(),
        ),
        (
            "POORTWACHTER_CLIENT_SECRET_WLAN_CONTROLLERS",
            SECRET.to_string(),
        ),
        (
            "POORTWACHTER_CLIENT_SECRET_STADSKANTOOR_APS",
            format!("{SECRET}-2"),
        ),
    ];
    let as_service = |args: &[&str]| {
        let mut c = Command::new("runuser");
        c.args(["-u", "poortwachter", "--", "/usr/bin/poortwachter"])
            .args(args)
            .env_remove("POORTWACHTER_CONFIG")
            .env_remove("POORTWACHTER_ACTOR")
            .env_remove("RUST_LOG")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir("/");
        c
    };
    run_ok(&mut as_service(&["ca", "init"]));
    let key = std::fs::metadata("/var/lib/poortwachter/pki/ca.key").expect("CA key");
    assert_eq!(key.mode() & 0o777, 0o600);
    let checked = run_ok(&mut as_service(&["check-config"]));
    assert!(checked.contains("config OK"), "{checked}");
    // `serve` as the unit runs it, migrating its SQLite registry at start
    let log_dir = tempfile::tempdir().expect("temp dir");
    let serving = Serving::start(
        as_service(&["--config", "/etc/poortwachter/poortwachter.toml", "serve"]),
        log_dir.path(),
        auth,
        SECRET,
    );
    // the command line, from / with no --config: the installed config
    let out = as_service(&[
        "owner",
        "add",
        "j.devries",
        "--name",
        "Jan de Vries",
        "--role",
        "staff",
    ])
    .output()
    .expect("owner add");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "poortwachter: config /etc/poortwachter/poortwachter.toml, registry sqlite:/var/lib/poortwachter/registry.db"
        ),
        "{err}"
    );
    run_ok(&mut as_service(&[
        "device",
        "register",
        "--owner",
        "j.devries",
        "--mac",
        MAC,
        "--label",
        "ThinkPad",
    ]));
    run_ok(&mut as_service(&["device", "compliance", MAC, "compliant"]));
    // the production example serves the SSID Gemeente-Werkplek with workspace VLAN 100
    let deadline = Instant::now() + Duration::from_secs(10);
    let accepted = loop {
        let v = verdict(&serving.ask(MAC));
        if v.0 == "Access-Accept" || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        (accepted.0.as_str(), accepted.1.as_deref()),
        ("Access-Accept", Some("100")),
        "{}",
        serving.log_text()
    );
    assert_eq!(
        verdict(&serving.ask("3c:22:fb:00:00:66")).0,
        "Access-Reject"
    );
    let log = serving.stop();
    assert!(log.contains("poortwachter stopped"), "{log}");

    run_ok(Command::new("dpkg").args(["--purge", "poortwachter"]));
    assert!(!Path::new("/usr/bin/poortwachter").exists());
    assert!(!Path::new("/etc/poortwachter/poortwachter.toml").exists());
    assert!(
        Path::new("/var/lib/poortwachter/pki/ca.key").exists(),
        "a purge keeps the CA key"
    );
}
