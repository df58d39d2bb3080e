//! The console over real HTTP, on both stores: login with a local account, the cookie's
//! flags, the security headers, search and the owner page with the `why` timeline in Dutch
//! and English, and the refusals: a post without its CSRF token, a service-desk user on an
//! ICT action and too many failed logins are refused and write nothing.
//! (tests/browser.rs drives the same pages in a real Chromium.)

mod support;

use poortwachter::activity::DecisionRecord;
use poortwachter::registry::Change;
use support::web::{Env, ADMIN_PW, DESK_PW};

/// A refusal of the device's certificate as the server logs it.
fn refusal(device: uuid::Uuid, mac: &str, reason: &str, message: &str) -> DecisionRecord {
    DecisionRecord {
        id: 0,
        at: chrono::Utc::now() - chrono::Duration::minutes(5),
        nas: "ap-bibliotheek".into(),
        nas_ip: Some("10.0.8.21".into()),
        username: "host/laptop".into(),
        mac: Some(poortwachter::mac::MacAddr::parse_any(mac).unwrap()),
        ssid: Some("Werkplek".into()),
        method: "eap-tls".into(),
        device_id: Some(device),
        owner: None,
        outcome: "reject".into(),
        vlan: None,
        reason: reason.into(),
        message: message.into(),
        repeats: 0,
        degraded: false,
    }
}

both_stores!(the_console_for_the_service_desk_and_ict, |b| async move {
    let env = Env::new(b).await;
    let device = support::seed(&env.registry, "j.devries", "3c:22:fb:00:00:01").await;
    env.registry
        .edit_owner(
            "j.devries",
            poortwachter::registry::OwnerEdit {
                display_name: Some("Jan de Vries".into()),
                ..Default::default()
            },
            &Change::by("test"),
        )
        .await
        .unwrap();
    // a refusal linked to the device's MAC only (a superseded certificate names no owner)
    env.registry
        .store_arc()
        .insert_decisions(&[refusal(
            device,
            "3c:22:fb:00:00:01",
            "certificate_unknown",
            "certificate of no registered device",
        )])
        .await
        .unwrap();

    // not logged in: to the login page; the headers of every answer
    let r = env.get("/", None, "nl").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login"));
    let r = env.get("/login", None, "nl").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<html lang=\"nl\""), "{}", r.body);
    assert!(r.body.contains("Gebruikersnaam"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let r = env.get("/login", None, "en-GB,en;q=0.9").await;
    assert!(r.body.contains("<html lang=\"en\"") && r.body.contains("Username"));

    // a wrong password: refused, no cookie
    let r = env
        .post("/login", None, "username=ict.anna&password=wrong+password")
        .await;
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    assert!(
        r.body.contains("Gebruikersnaam of wachtwoord onjuist."),
        "{}",
        r.body
    );

    // the service desk: the cookie is HttpOnly, Secure, SameSite=Strict
    let r = env
        .post(
            "/login",
            None,
            &format!("username=sd.bert&password={}", DESK_PW.replace(' ', "+")),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let set = r.header("set-cookie").unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    let desk = set.split(';').next().unwrap().to_string();

    // finds the owner by name: one result goes straight to the owner's page
    let r = env.get("/search?q=jan+de+vries", Some(&desk), "nl").await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/owners/j.devries"));
    let r = env.get("/owners/j.devries", Some(&desk), "nl").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Jan de Vries"));
    assert!(r.body.contains("laptop 3c:22:fb:00:00:01"));
    // the refusal of the superseded certificate is on the owner's timeline, in Dutch
    assert!(
        r.body
            .contains("certificaat hoort bij geen geregistreerd apparaat"),
        "{}",
        r.body
    );
    assert!(r.body.contains("ap-bibliotheek"));
    // English on request
    let r = env.get("/owners/j.devries", Some(&desk), "en").await;
    assert!(r
        .body
        .contains("certificate belongs to no registered device"));
    // a MAC finds the device
    let r = env
        .get("/search?q=3C-22-FB-00-00-01", Some(&desk), "nl")
        .await;
    assert_eq!(
        r.header("location"),
        Some(format!("/devices/{device}").as_str())
    );
    // the refusals of an access point
    let r = env
        .get("/refusals?ap=ap-bibliotheek", Some(&desk), "nl")
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("3c:22:fb:00:00:01"), "{}", r.body);
    let r = env.get("/refusals?ap=ap-raadzaal", Some(&desk), "nl").await;
    assert!(!r.body.contains("3c:22:fb:00:00:01"));
    // the dashboard draws its charts
    let r = env.get("/", Some(&desk), "nl").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<svg"), "{}", r.body);
    assert!(r.body.contains("Weigeringen per uur"));

    // the service desk may not revoke: refused, nothing written
    let audit_before = env.db.count("audit_log").await;
    let page = env
        .get(&format!("/devices/{device}"), Some(&desk), "nl")
        .await;
    assert!(
        !page.body.contains("/revoke"),
        "no revoke button for the service desk"
    );
    let csrf = page.csrf();
    let r = env
        .post(
            &format!("/devices/{device}/revoke"),
            Some(&desk),
            &format!("csrf={csrf}&reason=verkocht"),
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Dit mag uw rol niet"));
    assert_eq!(env.db.count("audit_log").await, audit_before);

    // ICT: a post without the CSRF token, or with another session's, is refused
    let ict = env.login("ict.anna", ADMIN_PW).await;
    for form in [
        "reason=verkocht".to_string(),
        format!("csrf={csrf}&reason=verkocht"),
    ] {
        let r = env
            .post(&format!("/devices/{device}/revoke"), Some(&ict), &form)
            .await;
        assert_eq!(r.status, 403, "{form}");
        assert!(r.body.contains("Het formulier is verlopen"));
    }
    assert_eq!(env.db.count("audit_log").await, audit_before);
    let d = env.registry.device(device).await.unwrap().unwrap();
    assert_eq!(d.status, poortwachter::model::DeviceStatus::Active);

    // with its token: the confirmation page, then revoked, audited as web:ict.anna
    let confirm = env
        .get(&format!("/devices/{device}/revoke"), Some(&ict), "nl")
        .await;
    assert!(
        confirm.body.contains("Apparaat intrekken?"),
        "{}",
        confirm.body
    );
    let r = env
        .post(
            &format!("/devices/{device}/revoke"),
            Some(&ict),
            &format!("csrf={}&reason=verkocht", confirm.csrf()),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let d = env.registry.device(device).await.unwrap().unwrap();
    assert_eq!(d.status, poortwachter::model::DeviceStatus::Revoked);
    let log = env
        .registry
        .audit(&poortwachter::registry::AuditFilter {
            target_id: Some(device.to_string()),
            actor: None,
            limit: Some(1),
            offset: 0,
        })
        .await
        .unwrap();
    assert_eq!(log[0].actor, "web:ict.anna");
    assert_eq!(log[0].action, "device.revoke");

    // logging out ends the session
    let home = env.get("/", Some(&ict), "nl").await;
    let r = env
        .post("/logout", Some(&ict), &format!("csrf={}", home.csrf()))
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(env.get("/", Some(&ict), "nl").await.status, 303);

    // failures are counted per username and per address (login_failures = 3): with the
    // wrong password above, two more from this address lock it out, the right password too
    for _ in 0..2 {
        let r = env
            .post("/login", None, "username=sd.bert&password=nope+nope+nope")
            .await;
        assert_eq!(r.status, 401);
    }
    let r = env
        .post(
            "/login",
            None,
            &format!("username=sd.bert&password={}", DESK_PW.replace(' ', "+")),
        )
        .await;
    assert_eq!(r.status, 429);
    assert!(r.header("set-cookie").is_none());
});
