//! Directory sync against a real OpenLDAP (`slapd`, started by tests/support/slapd.rs), driven
//! as ICT would: `poortwachter owner sync` on the command line, and `serve` on its schedule
//! with a fake access point that must receive the Disconnect-Request for a leaver's session.
//! On both stores where the registry is involved.

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::serving::{free_tcp_port, free_udp_port};
use support::slapd::{Slapd, SERVICE_DN, SERVICE_PW, SUFFIX};
use support::{radclient, Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");
const MISSING: &str = "niet (meer) actief in de directory / not active in the directory";
const SECRET: &str = "campus-secret-0123456789";

/// A site: a registry, a slapd, and a config that syncs from it.
struct Site {
    _dir: tempfile::TempDir,
    config: PathBuf,
    db: TestDb,
    slapd: Slapd,
}

impl Site {
    /// A registry of `backend` (migrated), slapd with `people` loaded, and a config whose
    /// `[directory]` is [`openldap_directory`] with `extra` keys.
    async fn new(backend: Backend, people: &str, extra: &str) -> Site {
        let slapd = Slapd::start();
        slapd.add(people);
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("poortwachter.toml");
        let site = Site {
            config,
            db,
            slapd,
            _dir: dir,
        };
        site.write(&openldap_directory(&site.slapd, extra));
        cli(&site.config, &["migrate"]);
        site
    }

    /// Rewrites the config with this `[directory]` section.
    fn write(&self, directory: &str) {
        let pw = self.config.with_file_name("ldap.pw");
        write_secret(&pw, SERVICE_PW);
        let text = format!(
            "[database]\nurl = \"{}\"\n\n[vlans]\nworkspace = 100\nguest = 200\nquarantine = 666\n\n{}",
            self.db.url,
            directory.replace("@PWFILE@", &pw.display().to_string())
        );
        std::fs::write(&self.config, text).expect("config");
    }

    fn owners(&self) -> Value {
        cli_json(&self.config, &["owner", "list"])
    }

    fn owner(&self, username: &str) -> Value {
        let all = self.owners();
        all.as_array()
            .expect("a list")
            .iter()
            .find(|o| o["username"] == username)
            .unwrap_or_else(|| panic!("no owner {username} in {all:#}"))
            .clone()
    }

    fn audit_len(&self) -> usize {
        cli_json(&self.config, &["audit", "--limit", "10000"])
            .as_array()
            .expect("a list")
            .len()
    }

    fn sync(&self, args: &[&str]) -> Value {
        let mut all = vec!["owner", "sync"];
        all.extend_from_slice(args);
        cli_json(&self.config, &all)
    }
}

/// `[directory]` for the test slapd as an OpenLDAP site keeps it: inetOrgPerson, groupOfNames
/// role groups, the contract end in `employeeEndDate`, leavers marked by `employeeType`.
fn openldap_directory(slapd: &Slapd, extra: &str) -> String {
    format!(
        r#"[directory]
url = "{url}"
bind_dn = "{SERVICE_DN}"
bind_password_file = "@PWFILE@"
base_dn = "ou=Mensen,{SUFFIX}"
filter = "(objectClass=inetOrgPerson)"
membership = "group_member"
{extra}

[directory.attributes]
contract_end = "employeeEndDate"
external_id = "entryUUID"

[directory.disabled]
attribute = "employeeType"
values = ["uit dienst"]

[[directory.role_groups]]
group = "cn=Stagiairs,ou=Groepen,{SUFFIX}"
role = "intern"

[[directory.role_groups]]
group = "cn=Inhuur,ou=Groepen,{SUFFIX}"
role = "contractor"
"#,
        url = slapd.url()
    )
}

/// A secret file: one line, mode 0600.
fn write_secret(path: &Path, secret: &str) {
    std::fs::write(path, format!("{secret}\n")).expect("secret file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

fn person(uid: &str, name: &str, department: &str, extra: &str) -> String {
    let sn = name.rsplit(' ').next().unwrap_or(name);
    format!(
        "dn: uid={uid},ou=Mensen,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: gemeentePerson\n\
         uid: {uid}\ncn: {name}\nsn: {sn}\ndisplayName: {name}\nmail: {uid}@gemeente.test\n\
         departmentNumber: {department}\n{extra}\n"
    )
}

fn dn(uid: &str) -> String {
    format!("uid={uid},ou=Mensen,{SUFFIX}")
}

/// Five people and the two role groups: a staff member, an intern and a contractor (with
/// their contract ends), one who will leave, and one ICT also added by hand.
fn people() -> String {
    [
        person("j.jansen", "Jan Jansen", "Burgerzaken", ""),
        person(
            "s.stagiair",
            "Sanne Stagiair",
            "ICT",
            "employeeEndDate: 2027-01-31\n",
        ),
        person(
            "p.inhuur",
            "Piet Inhuur",
            "Ruimte",
            "employeeEndDate: 2027-06-30\n",
        ),
        person("k.vertrekker", "Kees Vertrekker", "Financien", ""),
        person("m.handmatig", "Mieke Handmatig", "Directie", ""),
        format!(
            "dn: cn=Stagiairs,ou=Groepen,{SUFFIX}\nobjectClass: groupOfNames\ncn: Stagiairs\n\
             member: {}\n\n\
             dn: cn=Inhuur,ou=Groepen,{SUFFIX}\nobjectClass: groupOfNames\ncn: Inhuur\n\
             member: {}\n",
            dn("s.stagiair"),
            dn("p.inhuur")
        ),
    ]
    .join("\n")
}

fn command(config: &Path, json: bool, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.arg("--config").arg(config).args(["--actor", "ict.test"]);
    if json {
        c.arg("--json");
    }
    c.args(args)
        .env_remove("RUST_LOG")
        .env_remove("POORTWACHTER_DIRECTORY__BIND_PASSWORD")
        .output()
        .expect("run poortwachter")
}

/// Runs the CLI; its output, or a panic with it.
fn cli(config: &Path, args: &[&str]) -> String {
    let out = command(config, false, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "poortwachter {args:?} failed:\n{text}"
    );
    text
}

/// Runs the CLI with `--json`; stdout parsed.
fn cli_json(config: &Path, args: &[&str]) -> Value {
    let out = command(config, true, args);
    assert!(
        out.status.success(),
        "poortwachter {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Runs the CLI expecting a failure; what it printed.
fn cli_fails(config: &Path, args: &[&str]) -> String {
    let out = command(config, false, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "poortwachter {args:?} succeeded:\n{text}"
    );
    text
}

fn counts(sync: &Value) -> [u64; 6] {
    let r = &sync["report"];
    [
        "added",
        "updated",
        "disabled",
        "enabled",
        "left_alone",
        "unchanged",
    ]
    .map(|k| {
        r[k].as_u64()
            .unwrap_or_else(|| panic!("no {k} in {sync:#}"))
    })
}

fn change<'a>(sync: &'a Value, username: &str) -> &'a Value {
    sync["report"]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["username"] == username)
        .unwrap_or_else(|| panic!("no change for {username} in {sync:#}"))
}

both_stores!(
    a_sync_adds_updates_disables_and_leaves_owners_added_by_hand_alone,
    |backend| async move {
        let site = Site::new(backend, &people(), "max_disable = 10").await;
        cli(
            &site.config,
            &[
                "owner",
                "add",
                "m.handmatig",
                "--name",
                "M. Handmatig",
                "--role",
                "staff",
            ],
        );

        // the first sync, dry: everything reported, nothing written
        let (before, audit) = (site.owners(), site.audit_len());
        let dry = site.sync(&["--dry-run"]);
        assert_eq!(counts(&dry), [4, 0, 0, 0, 1, 0], "{dry:#}");
        assert_eq!(dry["report"]["dry_run"], true);
        assert_eq!(dry["entries"], 5);
        assert_eq!(site.owners(), before);
        assert_eq!(site.audit_len(), audit);
        let text = cli(&site.config, &["owner", "sync", "--dry-run"]);
        assert!(text.contains("dry run: nothing written"), "{text}");

        // applied: added with their roles from the groups and contract ends
        let first = site.sync(&[]);
        assert_eq!(counts(&first), [4, 0, 0, 0, 1, 0], "{first:#}");
        assert_eq!(change(&first, "m.handmatig")["managed_by"], "manual");
        let jan = site.owner("j.jansen");
        assert_eq!(jan["role"], "staff");
        assert_eq!(jan["display_name"], "Jan Jansen");
        assert_eq!(jan["email"], "j.jansen@gemeente.test");
        assert_eq!(jan["department"], "Burgerzaken");
        assert_eq!(jan["source"], "directory");
        assert_eq!(
            jan["external_id"].as_str().map(str::len),
            Some(36),
            "{jan:#}"
        );
        let intern = site.owner("s.stagiair");
        assert_eq!(intern["role"], "intern");
        assert_eq!(intern["valid_until"], "2027-01-31");
        let contractor = site.owner("p.inhuur");
        assert_eq!(contractor["role"], "contractor");
        assert_eq!(contractor["valid_until"], "2027-06-30");
        let by_hand = site.owner("m.handmatig");
        assert_eq!(by_hand["source"], "manual");
        assert_eq!(by_hand["display_name"], "M. Handmatig");

        // an attribute changes in the directory: dry run reports it, writes nothing
        site.slapd.modify(&format!(
            "dn: {}\nchangetype: modify\nreplace: departmentNumber\ndepartmentNumber: Financien\n",
            dn("j.jansen")
        ));
        let (before, audit) = (site.owners(), site.audit_len());
        let dry = site.sync(&["--dry-run"]);
        assert_eq!(counts(&dry), [0, 1, 0, 0, 1, 3], "{dry:#}");
        assert_eq!(
            change(&dry, "j.jansen")["fields"],
            serde_json::json!(["department"])
        );
        assert_eq!(site.owners(), before);
        assert_eq!(site.audit_len(), audit);
        let applied = site.sync(&[]);
        assert_eq!(counts(&applied), [0, 1, 0, 0, 1, 3], "{applied:#}");
        assert_eq!(site.owner("j.jansen")["department"], "Financien");

        // one leaves (deleted), one is marked gone: both disabled with the reason
        site.slapd.delete(&dn("k.vertrekker"));
        site.slapd.modify(&format!(
            "dn: {}\nchangetype: modify\nadd: employeeType\nemployeeType: Uit dienst\n",
            dn("p.inhuur")
        ));
        let text = cli(&site.config, &["owner", "sync"]);
        assert!(text.contains("2 disabled"), "{text}");
        assert!(text.contains("k.vertrekker"), "{text}");
        for gone in ["k.vertrekker", "p.inhuur"] {
            let o = site.owner(gone);
            assert_eq!(o["disabled"], true, "{o:#}");
            assert_eq!(o["disabled_reason"], MISSING, "{o:#}");
        }
        assert_eq!(site.owner("m.handmatig")["disabled"], false);
        assert_eq!(site.owner("j.jansen")["disabled"], false);
        // nothing more to do
        let again = site.sync(&[]);
        assert_eq!(counts(&again), [0, 0, 0, 0, 1, 2], "{again:#}");

        // a value the sync cannot read: reported, and the owner kept as they were (not
        // taken for gone from the directory)
        site.slapd.modify(&format!(
            "dn: {}\nchangetype: modify\nadd: employeeEndDate\nemployeeEndDate: morgen\n",
            dn("j.jansen")
        ));
        let bad = site.sync(&[]);
        assert_eq!(counts(&bad), [0, 0, 0, 0, 1, 2], "{bad:#}");
        let skipped = bad["report"]["skipped"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            skipped.starts_with(&dn("j.jansen")) && skipped.contains("kept as it was"),
            "{bad:#}"
        );
        assert_eq!(site.owner("j.jansen")["disabled"], false);
        site.slapd.modify(&format!(
            "dn: {}\nchangetype: modify\nreplace: employeeEndDate\nemployeeEndDate: 2030-12-31\n",
            dn("j.jansen")
        ));
        let fixed = site.sync(&[]);
        assert_eq!(counts(&fixed), [0, 1, 0, 0, 1, 1], "{fixed:#}");
        assert_eq!(site.owner("j.jansen")["valid_until"], "2030-12-31");

        // back in the directory: enabled again by the feed that disabled them
        site.slapd
            .add(&person("k.vertrekker", "Kees Vertrekker", "Financien", ""));
        let back = site.sync(&[]);
        assert_eq!(counts(&back), [0, 0, 0, 1, 1, 2], "{back:#}");
        assert_eq!(site.owner("k.vertrekker")["disabled"], false);
        assert_eq!(site.owner("p.inhuur")["disabled"], true);
    }
);

both_stores!(
    the_safeguard_refuses_a_sync_that_would_disable_too_many,
    |backend| async move {
        let site = Site::new(backend, &people(), "max_disable = \"50%\"").await;
        let first = site.sync(&[]);
        assert_eq!(counts(&first)[0], 5, "{first:#}");
        // three of five leave at once (a search that came back short): 50% of 5 is 3 at most
        // ... and four is past it
        for uid in ["j.jansen", "s.stagiair", "p.inhuur", "k.vertrekker"] {
            site.slapd.delete(&dn(uid));
        }
        let (before, audit) = (site.owners(), site.audit_len());
        let refused = cli_fails(&site.config, &["owner", "sync"]);
        assert!(
            refused.contains("refused: this sync would disable 4 of the 5 owners"),
            "{refused}"
        );
        assert!(refused.contains("--force"), "{refused}");
        assert_eq!(site.owners(), before);
        assert_eq!(site.audit_len(), audit);
        // a dry run is refused the same way: it says what a real one would do
        let dry = cli_fails(&site.config, &["owner", "sync", "--dry-run"]);
        assert!(dry.contains("refused"), "{dry}");
        // forced, after ICT checked the directory
        let forced = site.sync(&["--force"]);
        assert_eq!(counts(&forced)[2], 4, "{forced:#}");
        assert_eq!(site.owner("j.jansen")["disabled"], true);
        assert_eq!(site.owner("m.handmatig")["disabled"], false);
    }
);

/// LDAPS and StartTLS with the directory's CA; a server certificate from another CA and a
/// wrong password are refused, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_directory_ca_and_refusals() {
    let site = Site::new(Backend::Sqlite, &people(), "").await;
    let tls = |url: &str, ca: &Path, extra: &str| {
        openldap_directory(
            &site.slapd,
            &format!("ca_file = \"{}\"\n{extra}", ca.display()),
        )
        .replace(&site.slapd.url(), url)
    };
    // LDAPS
    site.write(&tls(&site.slapd.ldaps_url(), &site.slapd.ca_file(), ""));
    let first = site.sync(&[]);
    assert_eq!(counts(&first)[0], 5, "{first:#}");
    // check-config binds and reads the base DN, and says so
    let checked = cli_json(&site.config, &["check-config"]);
    let found = checked["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|f| f["area"] == "directory"))
        .unwrap_or_else(|| panic!("no directory check in {checked:#}"))
        .clone();
    assert_eq!(found["level"], "ok", "{found:#}");
    assert!(
        found["message"].as_str().is_some_and(
            |m| m.contains(&format!("bound as {SERVICE_DN}")) && m.contains("not scheduled")
        ),
        "{found:#}"
    );
    // StartTLS on the plain port
    let starttls = format!("ldap://localhost:{}", site.slapd.port);
    site.write(&tls(&starttls, &site.slapd.ca_file(), "starttls = true"));
    let again = site.sync(&["--dry-run"]);
    assert_eq!(counts(&again)[5], 5, "{again:#}");
    // a CA that did not sign the directory's certificate
    site.write(&tls(
        &site.slapd.ldaps_url(),
        &site.slapd.other_ca_file(),
        "",
    ));
    let err = cli_fails(&site.config, &["owner", "sync"]);
    assert!(err.contains("cannot connect to the directory"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    site.write(&tls(
        &starttls,
        &site.slapd.other_ca_file(),
        "starttls = true",
    ));
    let err = cli_fails(&site.config, &["owner", "sync"]);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // a wrong password: refused, never printed
    site.write(&tls(&site.slapd.ldaps_url(), &site.slapd.ca_file(), ""));
    // a password file others can read is refused, as every secret file
    let pw = site.config.with_file_name("ldap.pw");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = cli_fails(&site.config, &["owner", "sync"]);
    assert!(err.contains("readable or writable by others"), "{err}");
    write_secret(&pw, "not-the-password");
    let text = std::fs::read_to_string(&site.config).expect("config");
    std::fs::write(
        &site.config,
        text.replace("bind_password_file", "#bind_password_file"),
    )
    .expect("config");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&site.config)
        .args(["owner", "sync"])
        .env("POORTWACHTER_DIRECTORY__BIND_PASSWORD", "wrong-password-42")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(err.contains("refused the bind"), "{err}");
    assert!(!err.contains("wrong-password-42"), "{err}");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&site.config)
        .arg("check-config")
        .env("POORTWACHTER_DIRECTORY__BIND_PASSWORD", "wrong-password-42")
        .output()
        .expect("run");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // a warning, not an error: RADIUS starts without the directory
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("directory    WARNING") && text.contains("refused the bind"),
        "{text}"
    );
    assert!(!text.contains("wrong-password-42"), "{text}");
    // plain LDAP to a host that is not loopback is refused by the configuration
    site.write(
        &openldap_directory(&site.slapd, "").replace(&site.slapd.url(), "ldap://dc1.gemeente.test"),
    );
    let err = cli_fails(&site.config, &["check-config"]);
    assert!(
        err.contains("directory.url") && err.contains("clear text"),
        "{err}"
    );
}

/// An Active Directory-shaped directory (Debian's msuser schema): `sAMAccountName`,
/// `userAccountControl` with ACCOUNTDISABLE, `accountExpires` as FILETIME, `memberOf` on the
/// user, a binary `objectGUID`; read in pages of two (the Paged Results control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_directory_shaped_directory_in_pages() {
    use base64::Engine as _;
    let guid = [
        0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
        0x00,
    ];
    let b64 = base64::engine::general_purpose::STANDARD.encode(guid);
    // "end of 31-10-2027" in Amsterdam: 2027-11-01 00:00 CET = 2027-10-31T23:00:00Z
    let expires = 1_825_023_600_i64 * 10_000_000 + 116_444_736_000_000_000;
    let user = |sam: &str, uac: u32, extra: &str| {
        format!(
            "dn: cn={sam},ou=Mensen,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: extensibleObject\n\
             cn: {sam}\nsn: {sam}\nsAMAccountName: {sam}\ndisplayName: AD {sam}\n\
             userAccountControl: {uac}\ndepartment: Publiekszaken\n{extra}\n"
        )
    };
    let stagiairs = format!("CN=Stagiairs,OU=Groepen,{}", SUFFIX.to_uppercase());
    let entries = [
        user("ad.staff1", 512, &format!("objectGUID:: {b64}\n")),
        user("ad.staff2", 66048, ""),
        user(
            "ad.intern",
            512,
            &format!("accountExpires: {expires}\nmemberOf: {stagiairs}\n"),
        ),
        user("ad.never", 512, "accountExpires: 9223372036854775807\n"),
        user("ad.disabled", 514, ""),
    ]
    .join("\n");
    let slapd = Slapd::start();
    slapd.add(&entries);
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("poortwachter.toml");
    let site = Site {
        config,
        db,
        slapd,
        _dir: dir,
    };
    site.write(&format!(
        r#"[directory]
url = "{}"
bind_dn = "{SERVICE_DN}"
bind_password_file = "@PWFILE@"
base_dn = "ou=Mensen,{SUFFIX}"
filter = "(sAMAccountName=*)"
page_size = 2

[directory.attributes]
username = "sAMAccountName"
display_name = "displayName"
department = "department"
contract_end = "accountExpires"
external_id = "objectGUID"

[directory.disabled]
attribute = "userAccountControl"

[[directory.role_groups]]
group = "cn=stagiairs, ou=groepen, {SUFFIX}"
role = "intern"
"#,
        site.slapd.url()
    ));
    cli(&site.config, &["migrate"]);
    let out = site.sync(&["--dry-run"]);
    assert_eq!(out["entries"], 5, "{out:#}");
    assert_eq!(out["disabled_in_directory"], 1, "{out:#}");
    // ad.staff2..ad.never have no objectGUID: bad entries, skipped with the DN and reason
    let skipped = out["report"]["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 3, "{out:#}");
    assert!(
        skipped[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cn=ad.staff2") && m.contains("objectGUID")),
        "{out:#}"
    );
    // with the DN as the external id every entry reads
    let text = std::fs::read_to_string(&site.config).expect("config");
    std::fs::write(
        &site.config,
        text.replace("external_id = \"objectGUID\"\n", ""),
    )
    .expect("config");
    let applied = site.sync(&[]);
    assert_eq!(counts(&applied)[0], 4, "{applied:#}");
    assert!(applied["report"]["skipped"]
        .as_array()
        .is_some_and(Vec::is_empty));
    let intern = site.owner("ad.intern");
    assert_eq!(intern["role"], "intern");
    assert_eq!(intern["valid_until"], "2027-10-31");
    assert_eq!(intern["department"], "Publiekszaken");
    assert_eq!(site.owner("ad.never")["valid_until"], Value::Null);
    assert_eq!(site.owner("ad.staff1")["role"], "staff");
    assert!(site
        .owners()
        .as_array()
        .is_some_and(|all| all.iter().all(|o| o["username"] != "ad.disabled")));
    // a filter that matches nothing (msuser's sAMAccountName has no equality rule): the
    // empty result would disable everyone, and is refused
    std::fs::write(
        &site.config,
        text.replace("(sAMAccountName=*)", "(sAMAccountName=ad.staff1)"),
    )
    .expect("config");
    let refused = cli_fails(&site.config, &["owner", "sync"]);
    assert!(refused.contains("would disable 4 of the 4"), "{refused}");
    // the GUID read as AD writes it (first three fields little-endian): only the entry
    // that has one in the search, the others disabled (forced past the safeguard)
    std::fs::write(
        &site.config,
        text.replace("(sAMAccountName=*)", "(cn=ad.staff1)"),
    )
    .expect("config");
    let refused = cli_fails(&site.config, &["owner", "sync"]);
    assert!(refused.contains("would disable 3 of the 4"), "{refused}");
    let one = site.sync(&["--force"]);
    assert_eq!(counts(&one)[..3], [0, 1, 3], "{one:#}");
    assert_eq!(
        site.owner("ad.staff1")["external_id"],
        uuid::Uuid::from_bytes_le(guid).to_string().as_str()
    );
    assert_eq!(
        uuid::Uuid::from_bytes_le(guid).to_string(),
        "ccddeeff-aabb-8899-7766-554433221100"
    );
}

/// A UDP socket standing in for an access point's dynamic-authorization port (RFC 5176).
struct FakeNas(tokio::net::UdpSocket);

impl FakeNas {
    async fn bind() -> FakeNas {
        FakeNas(
            tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind the NAS socket"),
        )
    }

    fn port(&self) -> u16 {
        self.0.local_addr().expect("addr").port()
    }

    /// A Disconnect-Request for `acct_session_id` must arrive within `limit`, signed with the
    /// client's secret; it is answered with a Disconnect-ACK, as the NAS does.
    async fn acknowledge_disconnect(&self, acct_session_id: &str, limit: Duration) {
        use poortwachter::radius::crypto::{
            check_accounting_authenticator, check_request_ma, sign_response, MaCheck,
        };
        use poortwachter::radius::dict::{self, code};
        use poortwachter::radius::{Builder, Packet};
        let mut buf = vec![0u8; 4096];
        let (n, from) = tokio::time::timeout(limit, self.0.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no Disconnect-Request at the NAS within {limit:?}"))
            .expect("receive");
        let p = Packet::parse(&buf[..n]).expect("the request parses");
        assert_eq!(p.code(), code::DISCONNECT_REQUEST);
        assert!(check_accounting_authenticator(&p, SECRET.as_bytes()));
        assert_eq!(check_request_ma(&p, SECRET.as_bytes()), MaCheck::Valid);
        assert_eq!(p.text(dict::ACCT_SESSION_ID), Some(acct_session_id));
        let (mut ack, off) = Builder::with_message_authenticator(
            poortwachter::coa::packet::DISCONNECT_ACK,
            p.identifier(),
        )
        .into_unsigned();
        sign_response(&mut ack, off, &p.authenticator(), SECRET.as_bytes());
        self.0.send_to(&ack, from).await.expect("answer");
    }
}

/// `serve` with its stderr in a file; stopped by its PID when dropped.
struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
    /// Writes `NAME.toml` next to the site's config (its `[database]` and `[directory]`, a
    /// client for 127.0.0.1 whose DAS is `nas_port`, the API on `api`) and starts `serve`
    /// with it; waits until it listens. Its RADIUS ports.
    fn start(site: &Site, name: &str, nas_port: u16, api: Option<u16>) -> (Serve, u16, u16) {
        let (auth, acct) = (free_udp_port(), free_udp_port());
        let dir = site.config.parent().expect("dir").join(name);
        std::fs::create_dir_all(&dir).expect("node dir");
        let base = std::fs::read_to_string(&site.config).expect("config");
        let directory = &base[base.find("[directory]").expect("section")..];
        let api = api.map_or(String::new(), |p| {
            format!("[api]\nlisten = \"127.0.0.1:{p}\"\n")
        });
        let text = format!(
            "[database]\nurl = \"{}\"\n\n[radius]\nauth_listen = \"127.0.0.1:{auth}\"\n\
             acct_listen = \"127.0.0.1:{acct}\"\n\n[[radius.clients]]\nname = \"ap\"\n\
             network = \"127.0.0.1/32\"\nsecret = \"{SECRET}\"\ncoa_port = {nas_port}\n\n\
             [vlans]\nworkspace = 100\nguest = 200\nquarantine = 666\n\n\
             [node]\nstate_dir = \"{}/state\"\n\n{api}\n{directory}",
            site.db.url,
            dir.display()
        );
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, text).expect("config");
        let log = dir.join("serve.log");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start serve");
        let serve = Serve { child, log };
        serve.wait_log("RADIUS server listening", 1, Duration::from_secs(15));
        (serve, auth, acct)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to `limit`) until `needle` is in the log `n` times.
    fn wait_log(&self, needle: &str, n: usize, limit: Duration) -> String {
        let until = Instant::now() + limit;
        loop {
            let text = self.log_text();
            if text.matches(needle).count() >= n {
                return text;
            }
            assert!(
                Instant::now() < until,
                "`{needle}` not logged {n} time(s) within {limit:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(40);
        while Instant::now() < until {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

/// `GET /api/v1/metrics` with `token`, as Prometheus scrapes it.
fn scrape(api: u16, token: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("http://127.0.0.1:{api}/api/v1/metrics"),
        ])
        .output()
        .expect("curl not found: install Debian's curl (scripts/test does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mab(mac: &str) -> String {
    format!(
        "User-Name = \"{mac}\"\nUser-Password = \"{mac}\"\nCalling-Station-Id = \"{mac}\"\n\
         Called-Station-Id = \"00-11-22-33-44-55:Werkplek\"\nMessage-Authenticator = 0x00\n"
    )
}

both_stores!(
    a_leavers_connected_device_is_disconnected_by_the_scheduled_sync,
    |backend| async move {
        let site = Site::new(backend, &people(), "max_disable = 10\ninterval = \"10s\"").await;
        let nas = FakeNas::bind().await;
        let api = free_tcp_port();
        let (serve, auth, acct) = Serve::start(&site, "node", nas.port(), Some(api));
        // the first sync runs at start
        serve.wait_log("directory sync applied", 1, Duration::from_secs(15));
        assert_eq!(site.owner("k.vertrekker")["source"], "directory");

        // the leaver's laptop connects: MAB, then accounting opens its session
        let mac = "02-00-00-00-1d-01";
        cli(
            &site.config,
            &[
                "device",
                "register",
                "--owner",
                "k.vertrekker",
                "--mac",
                mac,
                "--label",
                "Laptop",
                "--kind",
                "laptop",
            ],
        );
        let to = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let r = radclient(to(auth), "auth", SECRET, &mab(mac)).await;
        assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
        let class = r.attr("Class").expect("a Class").to_string();
        let start = format!(
            "Acct-Status-Type = Start\nAcct-Session-Id = \"sess-leaver\"\nUser-Name = \"{mac}\"\n\
             Calling-Station-Id = \"{mac}\"\nNAS-IP-Address = 127.0.0.1\nClass = {class}\n"
        );
        let r = radclient(to(acct), "acct", SECRET, &start).await;
        assert_eq!(
            r.code.as_deref(),
            Some("Accounting-Response"),
            "{}",
            r.output
        );

        // the leaver goes from the directory; the next scheduled sync disables them and the
        // access point is told to disconnect the session
        site.slapd.delete(&dn("k.vertrekker"));
        nas.acknowledge_disconnect("sess-leaver", Duration::from_secs(30))
            .await;
        let o = site.owner("k.vertrekker");
        assert_eq!(o["disabled"], true, "{o:#}");
        assert_eq!(o["disabled_reason"], MISSING, "{o:#}");
        let log = serve.wait_log("directory sync applied", 2, Duration::from_secs(5));
        assert!(!log.contains("bind_password"), "{log}");
        assert!(!log.contains(SERVICE_PW), "{log}");
        // and refused now at the door
        let r = radclient(to(auth), "auth", SECRET, &mab(mac)).await;
        assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
        // the monitoring sees when the last sync applied, and no failure
        let token = cli_json(
            &site.config,
            &[
                "token",
                "create",
                "--name",
                "monitoring",
                "--scope",
                "helpdesk",
            ],
        )["token"]
            .as_str()
            .expect("token")
            .to_string();
        let metrics = scrape(api, &token);
        let value = |name: &str| -> i64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
        };
        let last = value("poortwachter_directory_sync_last_success_timestamp_seconds");
        let now = chrono::Utc::now().timestamp();
        assert!(last > now - 60 && last <= now, "{last} vs {now}");
        assert_eq!(value("poortwachter_directory_sync_failures_total"), 0);
        assert!(value("poortwachter_directory_sync_disabled_owners_total") >= 1);
    }
);

/// Two nodes on one PostgreSQL: one syncs the directory, the other stands by and takes over
/// when the first stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_one_syncs_and_the_other_takes_over() {
    let site = Site::new(Backend::Postgres, &people(), "interval = \"10s\"").await;
    let nas = FakeNas::bind().await;
    let (a, _, _) = Serve::start(&site, "a", nas.port(), None);
    a.wait_log("this node syncs the directory", 1, Duration::from_secs(15));
    a.wait_log("directory sync applied", 1, Duration::from_secs(15));
    let (b, _, _) = Serve::start(&site, "b", nas.port(), None);
    b.wait_log(
        "another node syncs the directory; standing by",
        1,
        Duration::from_secs(15),
    );
    assert_eq!(site.owners().as_array().map(Vec::len), Some(5));
    // the syncing node stops: the other takes the duty and syncs
    drop(a);
    b.wait_log("this node syncs the directory", 1, Duration::from_secs(20));
    let log = b.wait_log("directory sync applied", 1, Duration::from_secs(20));
    assert!(!log.contains("directory sync failed"), "{log}");
}

/// A scheduled sync that fails (the directory refuses the bind) changes nothing, logs a
/// warning and counts; the metrics say no sync has applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_scheduled_sync_warns_counts_and_changes_nothing() {
    let site = Site::new(Backend::Sqlite, &people(), "interval = \"10s\"").await;
    cli(
        &site.config,
        &[
            "owner",
            "add",
            "m.handmatig",
            "--name",
            "M. Handmatig",
            "--role",
            "staff",
        ],
    );
    write_secret(&site.config.with_file_name("ldap.pw"), "not-the-password");
    let (before, audit) = (site.owners(), site.audit_len());
    let nas = FakeNas::bind().await;
    let api = free_tcp_port();
    let (serve, _, _) = Serve::start(&site, "node", nas.port(), Some(api));
    let log = serve.wait_log("directory sync failed", 1, Duration::from_secs(15));
    assert!(log.contains("refused the bind"), "{log}");
    assert!(!log.contains("not-the-password"), "{log}");
    assert_eq!(site.owners(), before);
    assert_eq!(site.audit_len(), audit);
    let token = cli_json(
        &site.config,
        &[
            "token",
            "create",
            "--name",
            "monitoring",
            "--scope",
            "helpdesk",
        ],
    )["token"]
        .as_str()
        .expect("token")
        .to_string();
    let metrics = scrape(api, &token);
    assert!(
        metrics
            .lines()
            .any(|l| l == "poortwachter_directory_sync_last_success_timestamp_seconds 0"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "poortwachter_directory_sync_failures_total 1"),
        "{metrics}"
    );
}
