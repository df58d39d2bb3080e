//! The employees' portal in a real browser (headless Chromium) against `serve`, on both
//! stores, with people from a real OpenLDAP (slapd): an unknown laptop lands in the
//! registration VLAN; its owner logs in with their directory account, finds the laptop's MAC
//! filled in (from its accounting session), registers it, gets the Windows bundle and its
//! one-time password; the certificate in that bundle then authenticates with wpa_supplicant's
//! eapol_test, first into quarantine (compliance not yet known), then, compliant, into the
//! workspace VLAN. Someone else's device is not theirs to touch; their own they can mark lost.
//! Screenshots in Dutch and English.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::browser::{Browser, WAIT};
use support::serving::{free_tcp_port, free_udp_port, Serving};
use support::slapd::{Slapd, SERVICE_DN, SERVICE_PW, SUFFIX};
use support::{radclient, TestDb};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");
const SECRET: &str = "registratie-secret-0123456789";
const SERVER_NAME: &str = "radius.gemeente.test";
const EMPLOYEE_PW: &str = "Welkom-in-2026!";

fn cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("POORTWACHTER_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run poortwachter");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(config: &Path, args: &[&str]) -> serde_json::Value {
    let mut with = vec!["--json"];
    with.extend_from_slice(args);
    serde_json::from_str(&cli(config, &with)).expect("JSON")
}

fn person(uid: &str, name: &str) -> String {
    let sn = name.rsplit(' ').next().unwrap_or(name);
    format!(
        "dn: uid={uid},ou=Mensen,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\n\
         sn: {sn}\ndisplayName: {name}\nmail: {uid}@gemeente.test\nuserPassword: {EMPLOYEE_PW}\n"
    )
}

/// One GET with a cookie, the body (a download as the browser would fetch it).
async fn get_with_cookie(port: u16, path: &str, cookie: &str) -> (u16, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (status, raw[split + 4..].to_vec())
}

/// eapol_test with the bundle's PKCS#12; whether it succeeded, the VLAN, its output.
fn eapol_test(
    auth: u16,
    dir: &Path,
    p12: &Path,
    password: &str,
    mac: &str,
) -> (bool, Option<String>, String) {
    let conf = dir.join(format!("eapol-{}.conf", uuid::Uuid::new_v4()));
    std::fs::write(
        &conf,
        format!(
            "network={{\n  key_mgmt=WPA-EAP\n  eap=TLS\n  identity=\"host/laptop\"\n  \
             ca_cert=\"{}\"\n  private_key=\"{}\"\n  private_key_passwd=\"{password}\"\n  \
             domain_match=\"{SERVER_NAME}\"\n}}\n",
            dir.join("bundle/ca.pem").display(),
            p12.display(),
        ),
    )
    .unwrap();
    let out = Command::new("eapol_test")
        .arg("-c")
        .arg(&conf)
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &auth.to_string(),
            "-s",
            SECRET,
            "-M",
            mac,
        ])
        .args(["-N30:s:00-11-22-33-44-55:Werkplek", "-t", "10"])
        .output()
        .expect("eapol_test not found: install Debian's eapoltest");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let vlan = output.find("(Access-Accept)").and_then(|i| {
        let a = &output[i..];
        let j = a.find("(Tunnel-Private-Group-Id)")?;
        let hex = a[j..]
            .lines()
            .nth(1)?
            .trim()
            .strip_prefix("Value: ")?
            .to_string();
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|k| u8::from_str_radix(&hex[2 * k..2 * k + 2], 16).ok())
            .collect();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    });
    let ok = out.status.success() && output.contains("CTRL-EVENT-EAP-SUCCESS");
    (ok, vlan, output)
}

both_stores!(an_employee_onboards_their_own_laptop, |b| async move {
    let slapd = Slapd::start();
    slapd.add(
        &[
            person("e.werknemer", "Eva Werknemer"),
            person("a.ander", "Arie Ander"),
        ]
        .join("\n"),
    );
    let db = TestDb::new(b).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let (auth, acct, portal) = (free_udp_port(), free_udp_port(), free_tcp_port());
    let pw = dir.path().join("ldap.pw");
    std::fs::write(&pw, format!("{SERVICE_PW}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
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
name = "ap-hal"
network = "127.0.0.1/32"
secret = "{SECRET}"

[vlans]
workspace = 100
guest = 200
quarantine = 666
registration = 300

[policy]
unknown_device = "registration"

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

[web]
portal_listen = "127.0.0.1:{portal}"

[directory]
url = "{ldap}"
bind_dn = "{SERVICE_DN}"
bind_password_file = "{pw}"
base_dn = "ou=Mensen,{SUFFIX}"
filter = "(objectClass=inetOrgPerson)"
interval = "0s"
"#,
            url = db.url,
            ldap = slapd.url(),
            pw = pw.display(),
        ),
    )
    .unwrap();
    cli(&config, &["migrate"]);
    cli(&config, &["ca", "init"]);
    // the people come from the directory
    cli(&config, &["owner", "sync"]);
    let other = json(
        &config,
        &[
            "device",
            "register",
            "--owner",
            "a.ander",
            "--mac",
            "02:00:00:00:9a:01",
            "--label",
            "Ander",
        ],
    );
    let other_id = other["id"].as_str().unwrap().to_string();

    let mut serve = Command::new(BIN);
    serve
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "info")
        .env_remove("POORTWACHTER_CONFIG");
    let _server = Serving::start(serve, dir.path(), auth, SECRET);

    // the new laptop is unknown: the registration VLAN, and its session names its address
    let laptop = "02:00:00:00:9b:07";
    let mab = format!(
        "User-Name = \"{laptop}\"\nUser-Password = \"{laptop}\"\nCalling-Station-Id = \"{laptop}\"\n\
         Called-Station-Id = \"00-11-22-33-44-55:Werkplek\"\nMessage-Authenticator = 0x00\n"
    );
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], auth));
    let r = radclient(to, "auth", SECRET, &mab).await;
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    assert!(
        r.output.contains("\"300\""),
        "registration VLAN: {}",
        r.output
    );
    let class = r.attr("Class").expect("a Class").to_string();
    let start = format!(
        "Acct-Status-Type = Start\nAcct-Session-Id = \"reg-0001\"\nUser-Name = \"{laptop}\"\n\
         Calling-Station-Id = \"{laptop}\"\nNAS-IP-Address = 127.0.0.1\n\
         Framed-IP-Address = 127.0.0.1\nClass = {class}\n"
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
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backend = format!("{b:?}").to_lowercase();
    let base = format!("http://127.0.0.1:{portal}");

    // English, for the screenshots: the login page and the empty list
    let en = Browser::start("en").await;
    en.goto(&format!("{base}/login")).await;
    en.wait_for_text("Log in with your municipality account", WAIT)
        .await;
    en.screenshot(&format!("portal-login-en-{backend}")).await;
    en.close().await;

    let browser = Browser::start("nl").await;
    browser.goto(&format!("{base}/login")).await;
    browser
        .wait_for_text("Log in met uw account van de gemeente", WAIT)
        .await;
    browser
        .screenshot(&format!("portal-login-nl-{backend}"))
        .await;
    // a wrong password: refused
    browser.fill("#username", "e.werknemer").await;
    browser.fill("#password", "niet-het-wachtwoord").await;
    browser.submit("form[action='/login']").await;
    browser
        .wait_for_text("Gebruikersnaam of wachtwoord onjuist", WAIT)
        .await;
    browser.fill("#password", EMPLOYEE_PW).await;
    browser.submit("form[action='/login']").await;
    browser.wait_for_text("Mijn apparaten", WAIT).await;
    assert!(browser.page_text().await.contains("Eva Werknemer"));
    let cookie = browser
        .cookie("poortwachter_portaal")
        .await
        .expect("the portal's cookie");
    assert!(cookie.http_only && cookie.secure, "{cookie:?}");
    assert_eq!(cookie.same_site.as_deref(), Some("Strict"));

    // register this device: its MAC is already there
    browser.click("a[href='/register']").await;
    browser.wait_for("#mac", WAIT).await;
    let mac_value = browser
        .client()
        .find(fantoccini::Locator::Css("#mac"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(mac_value, laptop);
    browser.fill("#label", "Mijn laptop").await;
    browser
        .client()
        .find(fantoccini::Locator::Css("#os option[value='windows']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .screenshot(&format!("portal-register-nl-{backend}"))
        .await;
    browser.submit("form[action='/register']").await;
    browser.wait_for("#eenmalig-wachtwoord", WAIT).await;
    let password = browser.text_of("#eenmalig-wachtwoord").await;
    assert_eq!(password.len(), 23, "{password}");
    browser
        .screenshot(&format!("portal-bundle-nl-{backend}"))
        .await;
    let href = browser
        .client()
        .find(fantoccini::Locator::Css("#download"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("a download link");

    // the download, as the browser fetches it, with its cookie: once only
    let session_cookie = format!("poortwachter_portaal={}", cookie.value);
    let (status, zip) = get_with_cookie(portal, &href, &session_cookie).await;
    assert_eq!(status, 200);
    let (again, _) = get_with_cookie(portal, &href, &session_cookie).await;
    assert_eq!(again, 404, "a bundle is downloaded once");
    let zip_file = dir.path().join("bundel.zip");
    std::fs::write(&zip_file, &zip).unwrap();
    let unzip = Command::new("python3")
        .args(["-c", "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; z.extractall(sys.argv[2]); print('\\n'.join(z.namelist()))"])
        .arg(&zip_file)
        .arg(dir.path().join("bundle"))
        .output()
        .unwrap();
    assert!(
        unzip.status.success(),
        "{}",
        String::from_utf8_lossy(&unzip.stderr)
    );
    let names = String::from_utf8_lossy(&unzip.stdout).into_owned();
    for f in [
        "mijn-laptop.p12",
        "ca.pem",
        "mijn-laptop-wlan.xml",
        "mijn-laptop-installeren.cmd",
        "LEESMIJ.txt",
        "README.txt",
    ] {
        assert!(names.lines().any(|n| n == f), "{f} not in {names}");
    }
    assert!(!names.contains(".mobileconfig"), "only Windows: {names}");
    let p12 = dir.path().join("bundle/mijn-laptop.p12");

    // the certificate connects: quarantine until the device's compliance is known...
    let (ok, vlan, out) = eapol_test(auth, dir.path(), &p12, &password, laptop);
    assert!(ok, "{out}");
    assert_eq!(vlan.as_deref(), Some("666"), "{out}");
    // ...then, reported compliant (as the MDM would), the workspace
    cli(&config, &["device", "compliance", laptop, "compliant"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, vlan, out) = eapol_test(auth, dir.path(), &p12, &password, laptop);
    assert!(ok, "{out}");
    assert_eq!(vlan.as_deref(), Some("100"), "{out}");
    let shown = json(&config, &["device", "show", laptop]);
    assert_eq!(shown["device"]["owner"], "e.werknemer");
    // registered and issued by the employee, audited as such
    let by_employee: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["actor"] == "web:e.werknemer")
        .filter_map(|h| h["action"].as_str())
        .collect();
    assert!(
        by_employee.contains(&"device.register") && by_employee.contains(&"device.issue_cert"),
        "{:#}",
        shown["history"]
    );

    // someone else's device: not found, nothing written
    browser.goto(&format!("{base}/")).await;
    browser.wait_for_text("Mijn laptop", WAIT).await;
    browser
        .screenshot(&format!("portal-devices-nl-{backend}"))
        .await;
    let csrf = browser
        .client()
        .find(fantoccini::Locator::Css("input[name=csrf]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    let answer = browser
        .submit_form_to(
            &format!("{base}/devices/{other_id}/lost"),
            &[("csrf", &csrf)],
        )
        .await;
    assert!(answer.contains("Niet gevonden"), "{answer}");
    assert_eq!(
        json(&config, &["device", "show", &other_id])["device"]["status"],
        "active"
    );
    // and without the CSRF token, not even their own
    let own_id = shown["device"]["id"].as_str().unwrap().to_string();
    browser.goto(&format!("{base}/")).await;
    let answer = browser
        .submit_form_to(&format!("{base}/devices/{own_id}/lost"), &[])
        .await;
    assert!(answer.contains("Het formulier is verlopen"), "{answer}");
    assert_eq!(
        json(&config, &["device", "show", laptop])["device"]["status"],
        "active"
    );

    // lost: their own, confirmed, refused from then on
    browser.goto(&format!("{base}/")).await;
    browser
        .click(&format!("a[href='/devices/{own_id}/lost']"))
        .await;
    browser
        .wait_for_text("direct van het netwerk gehaald", WAIT)
        .await;
    browser
        .submit(&format!("form[action='/devices/{own_id}/lost']"))
        .await;
    browser.wait_for_text("verloren", WAIT).await;
    assert_eq!(
        json(&config, &["device", "show", laptop])["device"]["status"],
        "lost"
    );
    let (ok, _, out) = eapol_test(auth, dir.path(), &p12, &password, laptop);
    assert!(!ok, "a lost device is refused: {out}");
    browser.close().await;
});

/// One POST of a form; status, headers, body.
async fn post_form(port: u16, path: &str, form: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        head,
        String::from_utf8_lossy(&raw[split + 4..]).into_owned(),
    )
}

// The console takes the service desk and ICT from their directory groups: a member logs in
// with their directory password and gets the group's role; a wrong or empty password, or a
// person in neither group, is refused.
both_stores!(directory_groups_log_in_to_the_console, |b| async move {
    let slapd = Slapd::start();
    slapd.add(&format!(
        "{}\n{}\n{}\ndn: cn=Servicedesk,ou=Groepen,{SUFFIX}\nobjectClass: groupOfNames\n\
         cn: Servicedesk\nmember: uid=s.desk,ou=Mensen,{SUFFIX}\n\n\
         dn: cn=ICT,ou=Groepen,{SUFFIX}\nobjectClass: groupOfNames\ncn: ICT\n\
         member: uid=i.beheer,ou=Mensen,{SUFFIX}\n",
        person("s.desk", "Sam Desk"),
        person("i.beheer", "Ilse Beheer"),
        person("g.gewoon", "Gert Gewoon"),
    ));
    let db = TestDb::new(b).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("ldap.pw");
    std::fs::write(&pw, format!("{SERVICE_PW}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        r#"
[database]
url = "{url}"

[vlans]
workspace = 100
guest = 200
quarantine = 666

[web]
listen = "127.0.0.1:0"
admin_groups = ["cn=ICT,ou=Groepen,{SUFFIX}"]
helpdesk_groups = ["cn=Servicedesk,ou=Groepen,{SUFFIX}"]

[directory]
url = "{ldap}"
bind_dn = "{SERVICE_DN}"
bind_password_file = "{pw}"
base_dn = "ou=Mensen,{SUFFIX}"
filter = "(objectClass=inetOrgPerson)"
"#,
        url = db.url,
        ldap = slapd.url(),
        pw = pw.display(),
    );
    let config =
        poortwachter::config::Config::from_toml(&text, Path::new("t.toml"), Vec::new()).unwrap();
    let registry = poortwachter::registry::Registry::connect(
        &db.url,
        2,
        poortwachter::registry::Rules {
            max_devices_per_owner: 3,
            timezone: config.policy.timezone,
        },
    )
    .await
    .unwrap();
    registry.migrate().await.unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let console =
        poortwachter::web::serve(std::sync::Arc::new(config), registry, listener).unwrap();
    let port = console.local_addr().port();
    let pw_form = |user: &str, password: &str| {
        format!("username={user}&password={}", password.replace('!', "%21"))
    };
    for (user, role) in [("s.desk", "servicedesk"), ("i.beheer", "ICT-beheerder")] {
        let (status, head, body) = post_form(port, "/login", &pw_form(user, EMPLOYEE_PW)).await;
        assert_eq!(status, 303, "{user}: {head}{body}");
        let cookie = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("set-cookie: ")
                    .or_else(|| l.strip_prefix("Set-Cookie: "))
            })
            .expect("a cookie")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let (status, page) = get_with_cookie(port, "/", &cookie).await;
        assert_eq!(status, 200);
        let page = String::from_utf8_lossy(&page);
        assert!(page.contains(&format!("({role})")), "{user}: {page}");
    }
    for (user, password) in [
        ("s.desk", "fout-wachtwoord"),
        ("s.desk", ""),
        ("g.gewoon", EMPLOYEE_PW),
        ("nobody", EMPLOYEE_PW),
        ("s.desk)(uid=*", EMPLOYEE_PW),
    ] {
        let (status, head, _) = post_form(port, "/login", &pw_form(user, password)).await;
        assert_eq!(status, 401, "{user}/{password}: {head}");
    }
    console.shutdown().await;
});
