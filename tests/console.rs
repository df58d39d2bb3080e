//! The console in a real browser (headless Chromium through chromedriver) against `serve`, on
//! both stores: the service desk finds an owner by name, opens the latest refusals of an
//! access point and sees why a revoked device was refused; ICT revokes a connected device and
//! the access point gets its Disconnect-Request; a post without the CSRF token and the
//! service desk on an ICT action are refused and write nothing. Each page is saved as a
//! screenshot (target/screenshots/), in Dutch and in English.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::browser::{Browser, WAIT};
use support::nas::FakeNas;
use support::serving::{free_tcp_port, free_udp_port, Serving};
use support::{radclient, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");
const SECRET: &str = "bibliotheek-secret-0123456789";
const DESK_PW: &str = "servicedesk-wachtwoord-1";
const ICT_PW: &str = "ict-beheer-wachtwoord-22";

fn cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("POORTWACHTER_CONFIG")
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

/// One GET with a cookie; the body.
async fn http_get(port: u16, path: &str, cookie: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
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
    String::from_utf8_lossy(&raw[split + 4..]).into_owned()
}

fn mab(mac: &str) -> String {
    format!(
        "User-Name = \"{mac}\"\nUser-Password = \"{mac}\"\nCalling-Station-Id = \"{mac}\"\n\
         Called-Station-Id = \"00-11-22-33-44-55:Werkplek\"\nMessage-Authenticator = 0x00\n"
    )
}

async fn log_in(b: &Browser, web: u16, user: &str, password: &str) {
    b.goto(&format!("http://127.0.0.1:{web}/login")).await;
    b.fill("#username", user).await;
    b.fill("#password", password).await;
    b.submit("form[action='/login']").await;
    b.wait_for("header.top .who strong", WAIT).await;
}

both_stores!(the_service_desk_and_ict_in_a_real_browser, |b| async move {
    let db = TestDb::new(b).await;
    let nas = FakeNas::bind().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let (auth, acct, web) = (free_udp_port(), free_udp_port(), free_tcp_port());
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
name = "ap-bibliotheek"
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

[wifi]
ssid = "Werkplek"

[web]
listen = "127.0.0.1:{web}"

[[occupancy.locations]]
name = "Bibliotheek"
access_points = ["ap-bib*"]
workplaces = 10
"#,
            url = db.url,
            coa = nas.port(),
        ),
    )
    .unwrap();
    cli(&config, &["migrate"]);
    cli(&config, &["ca", "init"]);
    for (user, name, role, pw) in [
        ("sd.bert", "Bert Jansen", "helpdesk", DESK_PW),
        ("ict.anna", "Anna de Vries", "admin", ICT_PW),
    ] {
        let file = dir.path().join(format!("{user}.pw"));
        std::fs::write(&file, pw).unwrap();
        cli(
            &config,
            &[
                "user",
                "add",
                user,
                "--name",
                name,
                "--role",
                role,
                "--password-file",
                file.to_str().unwrap(),
            ],
        );
    }
    cli(
        &config,
        &[
            "owner",
            "add",
            "j.devries",
            "--name",
            "Jan de Vries",
            "--role",
            "staff",
        ],
    );
    let sold = "02:00:00:00:7a:01";
    let laptop = "02:00:00:00:7a:02";
    for (mac, label) in [(sold, "Oude laptop"), (laptop, "ThinkPad (privé)")] {
        cli(
            &config,
            &[
                "device",
                "register",
                "--owner",
                "j.devries",
                "--mac",
                mac,
                "--label",
                label,
            ],
        );
        cli(&config, &["device", "compliance", mac, "compliant"]);
    }
    cli(&config, &["device", "revoke", sold, "--reason", "verkocht"]);
    let laptop_id: String = {
        let v: serde_json::Value =
            serde_json::from_str(&cli(&config, &["--json", "device", "show", laptop])).unwrap();
        v["device"]["id"].as_str().unwrap().to_string()
    };

    let mut serve = Command::new(BIN);
    serve
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "info")
        .env_remove("POORTWACHTER_CONFIG");
    let server = Serving::start(serve, dir.path(), auth, SECRET);
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], auth));

    // the revoked laptop tries: refused; the other connects and starts its session
    let r = radclient(to, "auth", SECRET, &mab(sold)).await;
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    let r = radclient(to, "auth", SECRET, &mab(laptop)).await;
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    let class = r.attr("Class").expect("a Class").to_string();
    let session = "bieb-0001";
    let start = format!(
        "Acct-Status-Type = Start\nAcct-Session-Id = \"{session}\"\nUser-Name = \"{laptop}\"\n\
         Calling-Station-Id = \"{laptop}\"\nNAS-IP-Address = 127.0.0.1\nClass = {class}\n"
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
    // the decision writer flushes every 100 ms
    tokio::time::sleep(Duration::from_millis(500)).await;

    let backend = format!("{b:?}").to_lowercase();
    for lang in ["nl", "en"] {
        let browser = Browser::start(lang).await;
        log_in(&browser, web, "sd.bert", DESK_PW).await;
        // the cookie as the browser keeps it
        let cookie = browser
            .cookie("poortwachter_sessie")
            .await
            .expect("session cookie");
        assert!(cookie.http_only && cookie.secure, "{cookie:?}");
        assert_eq!(cookie.same_site.as_deref(), Some("Strict"));
        let text = browser.page_text().await;
        let (dash, sessions_now) = if lang == "nl" {
            ("Overzicht", "Verbonden apparaten nu")
        } else {
            ("Dashboard", "Devices connected now")
        };
        assert!(text.contains(dash) && text.contains(sessions_now), "{text}");
        browser.wait_for("svg.chart", WAIT).await;
        browser
            .screenshot(&format!("console-dashboard-{lang}-{backend}"))
            .await;

        // find the owner by name: straight to their page
        browser
            .goto(&format!("http://127.0.0.1:{web}/search"))
            .await;
        browser.fill("#q", "jan de vries").await;
        browser.submit("form[role=search]").await;
        browser.wait_for_text("ThinkPad (privé)", WAIT).await;
        assert!(browser.current_url().await.ends_with("/owners/j.devries"));
        let text = browser.page_text().await;
        let why = if lang == "nl" {
            "apparaat is ingetrokken"
        } else {
            "device was revoked"
        };
        assert!(text.contains(why), "{text}");
        let connected = if lang == "nl" {
            "nog verbonden"
        } else {
            "still connected"
        };
        assert!(text.contains(connected), "{text}");
        browser
            .screenshot(&format!("console-owner-{lang}-{backend}"))
            .await;

        // the latest refusals of the access point the caller is at
        browser
            .goto(&format!("http://127.0.0.1:{web}/refusals"))
            .await;
        browser
            .client()
            .find(fantoccini::Locator::Css(
                "#ap option[value='ap-bibliotheek']",
            ))
            .await
            .expect("the access point is a choice")
            .click()
            .await
            .unwrap();
        browser.submit("form.filters").await;
        browser.wait_for_text(sold, WAIT).await;
        assert!(browser.current_url().await.contains("ap=ap-bibliotheek"));
        assert!(browser.page_text().await.contains(why));
        browser
            .screenshot(&format!("console-refusals-{lang}-{backend}"))
            .await;

        // occupancy: the library's laptop counts in this hour, on the page and in the CSV
        browser
            .goto(&format!("http://127.0.0.1:{web}/occupancy"))
            .await;
        browser.wait_for("svg.chart", WAIT).await;
        let text = browser.page_text().await;
        assert!(text.contains("Bibliotheek"), "{text}");
        assert!(text.contains("10%"), "one of ten workplaces: {text}");
        browser
            .screenshot(&format!("console-occupancy-{lang}-{backend}"))
            .await;
        let csv = http_get(
            web,
            "/occupancy.csv",
            &format!("poortwachter_sessie={}", cookie.value),
        )
        .await;
        assert!(
            csv.starts_with("start,location,devices,workplaces,occupancy_percent\n"),
            "{csv}"
        );
        assert!(csv.contains(",Bibliotheek,1,10,10.0\n"), "{csv}");

        // the service desk has no revoke button; a forged post is refused, nothing written
        browser
            .goto(&format!("http://127.0.0.1:{web}/devices/{laptop_id}"))
            .await;
        browser.wait_for_text("ThinkPad (privé)", WAIT).await;
        assert!(browser
            .client()
            .find(fantoccini::Locator::Css("a[href$='/revoke']"))
            .await
            .is_err());
        browser
            .screenshot(&format!("console-device-{lang}-{backend}"))
            .await;
        let forged = browser
            .submit_form_to(
                &format!("http://127.0.0.1:{web}/devices/{laptop_id}/revoke"),
                &[("reason", "gestolen")],
            )
            .await;
        assert!(
            forged.contains("Het formulier is verlopen") || forged.contains("The form has expired"),
            "{forged}"
        );
        browser
            .screenshot(&format!("console-forged-post-refused-{lang}-{backend}"))
            .await;
        browser.close().await;
    }
    let shown: serde_json::Value =
        serde_json::from_str(&cli(&config, &["--json", "device", "show", laptop])).unwrap();
    assert_eq!(shown["device"]["status"], "active");

    // ICT revokes the connected laptop from the console: confirmed, audited, disconnected
    let browser = Browser::start("nl").await;
    log_in(&browser, web, "ict.anna", ICT_PW).await;
    browser
        .goto(&format!("http://127.0.0.1:{web}/devices/{laptop_id}"))
        .await;
    browser.click("a[href$='/revoke']").await;
    browser.wait_for_text("Apparaat intrekken?", WAIT).await;
    browser
        .screenshot(&format!("console-revoke-confirm-nl-{backend}"))
        .await;
    browser.fill("#reason", "gestolen in de trein").await;
    browser.submit("form[action$='/revoke']").await;
    browser.wait_for_text("ingetrokken", WAIT).await;
    nas.acknowledge_disconnect(session, SECRET, "not-the-secret-0123456789")
        .await;
    let shown: serde_json::Value =
        serde_json::from_str(&cli(&config, &["--json", "device", "show", laptop])).unwrap();
    assert_eq!(shown["device"]["status"], "revoked");
    let audit = cli(&config, &["audit", "--by", "web:ict.anna"]);
    assert!(audit.contains("device.revoke"), "{audit}");
    browser.close().await;
    drop(server);
});
