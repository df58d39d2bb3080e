//! ICT's actions in the console over real HTTP, on both stores: editing an owner (a Dutch
//! date), disabling and enabling, registering and editing a device and its compliance, the
//! API tokens page (the secret shown once, working against the registry as the API checks
//! it). Every change is audited as `web:<user>`; a service-desk post, a post without its CSRF
//! token and bad input are refused and write nothing.

mod support;

use poortwachter::model::{Compliance, DeviceKind, DeviceStatus, Role};
use poortwachter::registry::AuditFilter;
use support::web::{Env, ADMIN_PW, DESK_PW};

impl Env {
    /// The newest audit entry about `target`: (actor, action).
    async fn last_audit(&self, target: &str) -> (String, String) {
        let log = self
            .registry
            .audit(&AuditFilter {
                target_id: Some(target.to_string()),
                actor: None,
                limit: Some(1),
                offset: 0,
            })
            .await
            .unwrap();
        let e = log
            .first()
            .unwrap_or_else(|| panic!("no audit entry for {target}"));
        (e.actor.clone(), e.action.clone())
    }
}

/// Form encoding of a value (spaces, colons, newlines).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

both_stores!(
    ict_edits_owners_and_devices_from_the_console,
    |b| async move {
        let env = Env::new(b).await;
        let device = support::seed(&env.registry, "j.devries", "3c:22:fb:00:00:01").await;
        let ict = env.login("ict.anna", ADMIN_PW).await;
        let desk = env.login("sd.bert", DESK_PW).await;

        // the owner page links to the edit page for ICT, not for the service desk
        let r = env.get("/owners/j.devries", Some(&ict), "nl").await;
        assert!(r.body.contains("/owners/j.devries/edit"), "{}", r.body);
        let r = env.get("/owners/j.devries", Some(&desk), "nl").await;
        assert!(!r.body.contains("/owners/j.devries/edit"));
        assert_eq!(
            env.get("/owners/j.devries/edit", Some(&desk), "nl")
                .await
                .status,
            403
        );

        // edit: name, e-mail, department, role with a contract end typed the Dutch way
        let page = env.get("/owners/j.devries/edit", Some(&ict), "nl").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("Eigenaar bewerken"));
        let csrf = page.csrf();
        let r = env
        .post(
            "/owners/j.devries/edit",
            Some(&ict),
            &format!(
                "csrf={csrf}&name={}&email={}&department=Burgerzaken&role=temp&valid_until=31-03-2027",
                enc("Jan de Vries"),
                enc("j.devries@gemeente.example")
            ),
        )
        .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(r.header("location"), Some("/owners/j.devries"));
        let o = env.registry.owner("j.devries").await.unwrap().unwrap();
        assert_eq!(o.display_name, "Jan de Vries");
        assert_eq!(o.email.as_deref(), Some("j.devries@gemeente.example"));
        assert_eq!(o.department.as_deref(), Some("Burgerzaken"));
        assert_eq!(o.role, Role::Temp);
        assert_eq!(o.valid_until, chrono::NaiveDate::from_ymd_opt(2027, 3, 31));
        assert_eq!(
            env.last_audit("j.devries").await,
            ("web:ict.anna".into(), "owner.edit".into())
        );

        // a bad date: the form again, the field named, the typed values kept, nothing written
        let audit_before = env.db.count("audit_log").await;
        let r = env
            .post(
                "/owners/j.devries/edit",
                Some(&ict),
                &format!("csrf={csrf}&name=Jan+Anders&role=temp&valid_until=31%2F03%2F2027"),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(
            r.body.contains("Contract tot en met: `31/03/2027`"),
            "{}",
            r.body
        );
        assert!(r.body.contains("value=\"Jan Anders\""), "{}", r.body);
        // a temp without an end date: the registry's rule, named by the same field
        let r = env
            .post(
                "/owners/j.devries/edit",
                Some(&ict),
                &format!("csrf={csrf}&name=Jan+Anders&role=temp&valid_until="),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(
            r.body.contains("Contract tot en met: a temp needs"),
            "{}",
            r.body
        );
        assert_eq!(env.db.count("audit_log").await, audit_before);
        assert_eq!(
            env.registry
                .owner("j.devries")
                .await
                .unwrap()
                .unwrap()
                .display_name,
            "Jan de Vries"
        );

        // disable needs a reason; with one, disabled and audited; enable again
        let r = env
            .post(
                "/owners/j.devries/disable",
                Some(&ict),
                &format!("csrf={csrf}&reason="),
            )
            .await;
        assert_eq!(r.status, 400);
        assert!(
            r.body.contains("Reden van uitschakelen: vul in waarom"),
            "{}",
            r.body
        );
        assert_eq!(env.db.count("audit_log").await, audit_before);
        let r = env
            .post(
                "/owners/j.devries/disable",
                Some(&ict),
                &format!("csrf={csrf}&reason={}", enc("laptop gestolen")),
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        let o = env.registry.owner("j.devries").await.unwrap().unwrap();
        assert!(o.disabled);
        assert_eq!(o.disabled_reason.as_deref(), Some("laptop gestolen"));
        let (actor, action) = env.last_audit("j.devries").await;
        assert_eq!(actor, "web:ict.anna");
        assert!(action.starts_with("owner."), "{action}");
        let page = env.get("/owners/j.devries/edit", Some(&ict), "en").await;
        assert!(page.body.contains("Enable again"), "{}", page.body);
        let r = env
            .post(
                "/owners/j.devries/enable",
                Some(&ict),
                &format!("csrf={csrf}"),
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert!(
            !env.registry
                .owner("j.devries")
                .await
                .unwrap()
                .unwrap()
                .disabled
        );

        // register a device with two MACs
        let page = env
            .get("/owners/j.devries/devices/new", Some(&ict), "nl")
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let r = env
            .post(
                "/owners/j.devries/devices/new",
                Some(&ict),
                &format!(
                    "csrf={csrf}&label={}&kind=phone&macs={}",
                    enc("telefoon Jan"),
                    enc("3c:22:fb:00:00:02\n3C-22-FB-00-00-03")
                ),
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        let phone = env
            .registry
            .devices(Some("j.devries"))
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.label == "telefoon Jan")
            .expect("the phone");
        assert_eq!(phone.kind, DeviceKind::Phone);
        assert_eq!(phone.macs.len(), 2);
        assert_eq!(
            r.header("location"),
            Some(format!("/devices/{}", phone.id).as_str())
        );
        assert_eq!(
            env.last_audit(&phone.id.to_string()).await,
            ("web:ict.anna".into(), "device.register".into())
        );

        // a bad MAC: the field named, the typed values kept, nothing written
        let audit_before = env.db.count("audit_log").await;
        let devices_before = env.db.count("devices").await;
        let r = env
            .post(
                "/owners/j.devries/devices/new",
                Some(&ict),
                &format!(
                    "csrf={csrf}&label=tablet&kind=tablet&macs={}",
                    enc("3c:22:fb:00:00:04 zz:zz")
                ),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(
            r.body.contains("MAC-adressen (een per regel): zz:zz"),
            "{}",
            r.body
        );
        assert!(
            r.body.contains("3c:22:fb:00:00:04 zz:zz</textarea>"),
            "{}",
            r.body
        );
        assert!(r.body.contains("value=\"tablet\""));
        // a MAC another device holds: refused by the registry, said on the form
        let r = env
            .post(
                "/owners/j.devries/devices/new",
                Some(&ict),
                &format!("csrf={csrf}&label=tablet&kind=tablet&macs=3c:22:fb:00:00:01"),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains("already registered"), "{}", r.body);
        assert_eq!(env.db.count("audit_log").await, audit_before);
        assert_eq!(env.db.count("devices").await, devices_before);

        // a randomized (locally administered) MAC: registered, and said so on the answer
        let r = env
            .post(
                "/owners/j.devries/devices/new",
                Some(&ict),
                &format!("csrf={csrf}&label=tablet&kind=tablet&macs=3e:22:fb:00:00:06"),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("Apparaat geregistreerd."), "{}", r.body);
        assert!(
            r.body
                .contains("3e:22:fb:00:00:06: Let op: dit is een willekeurig"),
            "{}",
            r.body
        );
        assert_eq!(env.db.count("devices").await, devices_before + 1);

        // edit the device: label, kind, a MAC added and one removed
        let page = env
            .get(&format!("/devices/{device}/edit"), Some(&ict), "nl")
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let r = env
        .post(
            &format!("/devices/{device}/edit"),
            Some(&ict),
            &format!(
                "csrf={csrf}&label={}&kind=tablet&add_macs=3c:22:fb:00:00:05&remove=3c:22:fb:00:00:01",
                enc("tablet Jan")
            ),
        )
        .await;
        assert_eq!(r.status, 303, "{}", r.body);
        let d = env.registry.device(device).await.unwrap().unwrap();
        assert_eq!(d.label, "tablet Jan");
        assert_eq!(d.kind, DeviceKind::Tablet);
        assert_eq!(
            d.macs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["3c:22:fb:00:00:05".to_string()]
        );
        assert_eq!(
            env.last_audit(&device.to_string()).await,
            ("web:ict.anna".into(), "device.edit".into())
        );
        // removing the last MAC is refused, named, nothing written
        let audit_before = env.db.count("audit_log").await;
        let r = env
            .post(
                &format!("/devices/{device}/edit"),
                Some(&ict),
                &format!(
                    "csrf={csrf}&label=tablet+Jan&kind=tablet&add_macs=&remove=3c:22:fb:00:00:05"
                ),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(
            r.body.contains("MAC-adressen verwijderen: a device keeps"),
            "{}",
            r.body
        );
        assert_eq!(env.db.count("audit_log").await, audit_before);

        // compliance with a note
        let r = env
            .post(
                &format!("/devices/{device}/compliance"),
                Some(&ict),
                &format!(
                    "csrf={csrf}&state=noncompliant&note={}",
                    enc("geen updates")
                ),
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        let d = env.registry.device(device).await.unwrap().unwrap();
        assert_eq!(d.compliance, Compliance::Noncompliant);
        let (actor, _) = env.last_audit(&device.to_string()).await;
        assert_eq!(actor, "web:ict.anna");

        // the service desk, with its own valid CSRF token: every action refused, nothing written
        let desk_csrf = env.get("/", Some(&desk), "nl").await.csrf();
        let audit_before = env.db.count("audit_log").await;
        for (path, form) in [
            (
                "/owners/j.devries/edit".to_string(),
                "name=X&role=staff&valid_until=".to_string(),
            ),
            (
                "/owners/j.devries/disable".to_string(),
                "reason=weg".to_string(),
            ),
            (
                "/owners/j.devries/devices/new".to_string(),
                "label=x&kind=laptop&macs=3c:22:fb:00:00:09".to_string(),
            ),
            (
                format!("/devices/{device}/edit"),
                "label=x&kind=laptop".to_string(),
            ),
            (
                format!("/devices/{device}/compliance"),
                "state=compliant".to_string(),
            ),
            ("/tokens".to_string(), "name=desk&scope=admin".to_string()),
        ] {
            let r = env
                .post(&path, Some(&desk), &format!("csrf={desk_csrf}&{form}"))
                .await;
            assert_eq!(r.status, 403, "{path}");
            assert!(r.body.contains("Dit mag uw rol niet"), "{path}");
            // ICT without the token, or with the desk's: refused as well
            for f in [form.clone(), format!("csrf={desk_csrf}&{form}")] {
                let r = env.post(&path, Some(&ict), &f).await;
                assert_eq!(r.status, 403, "{path} {f}");
                assert!(r.body.contains("Het formulier is verlopen"), "{path}");
            }
        }
        assert_eq!(env.db.count("audit_log").await, audit_before);
        let d = env.registry.device(device).await.unwrap().unwrap();
        assert_eq!(d.compliance, Compliance::Noncompliant);
        assert_eq!(d.status, DeviceStatus::Active);
        assert!(env.registry.tokens().await.unwrap().is_empty());
    }
);

both_stores!(ict_manages_api_tokens_from_the_console, |b| async move {
    let env = Env::new(b).await;
    let ict = env.login("ict.anna", ADMIN_PW).await;
    let desk = env.login("sd.bert", DESK_PW).await;

    // the nav entry and the page are ICT's only
    let home = env.get("/", Some(&ict), "nl").await;
    assert!(home.body.contains("href=\"/tokens\""), "{}", home.body);
    assert!(!env
        .get("/", Some(&desk), "nl")
        .await
        .body
        .contains("href=\"/tokens\""));
    assert_eq!(env.get("/tokens", Some(&desk), "nl").await.status, 403);
    assert_eq!(env.get("/tokens", None, "nl").await.status, 303);

    let page = env.get("/tokens", Some(&ict), "nl").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("API-sleutels"));
    let csrf = page.csrf();

    // create: the secret is on the answer, once
    let r = env
        .post(
            "/tokens",
            Some(&ict),
            &format!("csrf={csrf}&name=intune&scope=posture"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let at = r.body.find("id=\"secret\">").expect("the secret") + "id=\"secret\">".len();
    let secret = r.body[at..at + r.body[at..].find('<').unwrap()].to_string();
    assert!(secret.starts_with("pw_"), "{secret}");
    // it is the bearer token the API accepts (the API's own check)
    let token = env
        .registry
        .authenticate_token(&secret, chrono::Utc::now())
        .await
        .unwrap()
        .expect("the token authenticates");
    assert_eq!(token.name, "intune");
    assert_eq!(token.scope.as_str(), "posture");
    assert_eq!(token.created_by, "web:ict.anna");
    assert_eq!(
        env.last_audit("intune").await,
        ("web:ict.anna".into(), "token.create".into())
    );
    // the list shows it, never the secret again
    let list = env.get("/tokens", Some(&ict), "nl").await;
    assert!(list.body.contains("<code>intune</code>"), "{}", list.body);
    assert!(list.body.contains("posture"));
    assert!(!list.body.contains(&secret));

    // a name taken, a bad scope: the form again, the field named, nothing written
    let audit_before = env.db.count("audit_log").await;
    let r = env
        .post(
            "/tokens",
            Some(&ict),
            &format!("csrf={csrf}&name=intune&scope=admin"),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body
            .contains("Naam (wie of wat de sleutel gebruikt): intune bestaat al"),
        "{}",
        r.body
    );
    let r = env
        .post(
            "/tokens",
            Some(&ict),
            &format!("csrf={csrf}&name=nieuw&scope=god"),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("Bevoegdheid: `god`"), "{}", r.body);
    assert!(r.body.contains("value=\"nieuw\""));
    assert_eq!(env.db.count("audit_log").await, audit_before);

    // revoke: a confirmation page, then refused by the registry from now on
    let confirm = env.get("/tokens/intune/revoke", Some(&ict), "nl").await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(confirm.body.contains("Sleutel intrekken?"));
    // not by the service desk, not without the CSRF token
    let desk_csrf = env.get("/", Some(&desk), "nl").await.csrf();
    let r = env
        .post(
            "/tokens/intune/revoke",
            Some(&desk),
            &format!("csrf={desk_csrf}"),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = env.post("/tokens/intune/revoke", Some(&ict), "").await;
    assert_eq!(r.status, 403);
    assert_eq!(env.db.count("audit_log").await, audit_before);
    let r = env
        .post(
            "/tokens/intune/revoke",
            Some(&ict),
            &format!("csrf={}", confirm.csrf()),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(env
        .registry
        .authenticate_token(&secret, chrono::Utc::now())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        env.last_audit("intune").await,
        ("web:ict.anna".into(), "token.revoke".into())
    );
    let list = env.get("/tokens", Some(&ict), "en").await;
    assert!(list.body.contains("revoked"), "{}", list.body);
    assert!(!list.body.contains("/tokens/intune/revoke"));
});
