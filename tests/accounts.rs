//! Local accounts of the web console on both stores: add, log in (good and bad password,
//! disabled, unknown), the password rule refusing without writing, change the password,
//! disable and enable, remove; the audit entries name the actor and hold neither the password
//! nor its hash (checked on every row of every table), and the stored hash is argon2id.

mod support;

use chrono::{TimeZone, Utc};
use poortwachter::registry::accounts::{NewWebAccount, WebAccountError, WebRole};
use poortwachter::registry::{AuditFilter, Change, Registry, RegistryError, Rules};
use support::{Backend, TestDb};
use zeroize::Zeroizing;

async fn registry(backend: Backend) -> (TestDb, Registry) {
    let db = TestDb::new(backend).await;
    let reg = Registry::connect(
        &db.url,
        4,
        Rules {
            max_devices_per_owner: 3,
            timezone: chrono_tz::Europe::Amsterdam,
        },
    )
    .await
    .expect("connect");
    reg.migrate().await.expect("migrate");
    (db, reg)
}

fn at(hour: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, hour, 0, 0).unwrap()
}

fn ict() -> Change {
    Change {
        actor: "ict.beheer".into(),
        now: at(9),
    }
}

const PASSWORD: &str = "Lange zin als wachtwoord 7";

fn helpdesk(username: &str, password: &str) -> NewWebAccount {
    NewWebAccount {
        username: username.into(),
        display_name: "Sanne Servicedesk".into(),
        role: WebRole::Helpdesk,
        password: Zeroizing::new(password.into()),
    }
}

/// Every stored password hash, straight from the database.
async fn hashes(db: &TestDb) -> Vec<String> {
    let sql = "SELECT password_hash FROM web_accounts ORDER BY username";
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            let h = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            h
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let h = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            h
        }
    }
}

fn field_of(e: &WebAccountError) -> Option<&'static str> {
    match e {
        WebAccountError::Registry(RegistryError::Field(f)) => Some(f.field),
        _ => None,
    }
}

both_stores!(add_and_log_in, |b| async move {
    let (db, reg) = registry(b).await;
    let added = reg
        .add_web_account(helpdesk(" S.Servicedesk ", PASSWORD), &ict())
        .await
        .unwrap();
    assert_eq!(added.username, "s.servicedesk");
    assert_eq!(added.display_name, "Sanne Servicedesk");
    assert_eq!(added.role, WebRole::Helpdesk);
    assert!(!added.disabled);
    assert_eq!(added.created_by, "ict.beheer");
    assert_eq!(added.created_at, at(9));
    assert_eq!(added.password_changed_at, at(9));
    assert_eq!(added.last_login_at, None);
    assert_eq!(
        reg.web_account("S.SERVICEDESK").await.unwrap(),
        Some(added.clone())
    );
    assert_eq!(reg.web_accounts().await.unwrap(), vec![added.clone()]);

    let stored = hashes(&db).await;
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        stored[0]
    );
    assert!(!stored[0].contains(PASSWORD));
    // the struct and its Debug never hold the hash
    let debug = format!("{added:?}");
    assert!(!debug.contains("argon2") && !debug.contains(&stored[0]));

    // a good password, in any case of the username: the account, and the login recorded
    let ok = reg
        .verify_web_login("S.Servicedesk", PASSWORD, at(10))
        .await
        .unwrap()
        .expect("logged in");
    assert_eq!(ok.username, "s.servicedesk");
    assert_eq!(ok.last_login_at, Some(at(10)));
    let reread = reg.web_account("s.servicedesk").await.unwrap().unwrap();
    assert_eq!(reread.last_login_at, Some(at(10)));

    // a wrong password, an unknown user, a malformed username: None, nothing recorded
    let wrong = format!("{PASSWORD}!");
    assert_eq!(
        reg.verify_web_login("s.servicedesk", &wrong, at(11))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        reg.verify_web_login("s.servicedesk", "", at(11))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        reg.verify_web_login("niemand", PASSWORD, at(11))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        reg.verify_web_login("niet geldig", PASSWORD, at(11))
            .await
            .unwrap(),
        None
    );
    let reread = reg.web_account("s.servicedesk").await.unwrap().unwrap();
    assert_eq!(reread.last_login_at, Some(at(10)));
    // a login is not a change: only the add is in the audit log
    let audit = reg.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "web_account.add");
    assert_eq!(audit[0].actor, "ict.beheer");
    assert_eq!(audit[0].target_type, "web_account");
    assert_eq!(audit[0].target_id, "s.servicedesk");

    // the same username in another case is the same account
    let e = reg
        .add_web_account(helpdesk("s.SERVICEDESK", PASSWORD), &ict())
        .await
        .unwrap_err();
    assert!(
        matches!(e, WebAccountError::Exists(ref u) if u == "s.servicedesk"),
        "{e}"
    );
    assert_eq!(db.count("web_accounts").await, 1);
    assert_eq!(db.count("audit_log").await, 1);
});

both_stores!(refusals_name_the_field_and_write_nothing, |b| async move {
    let (db, reg) = registry(b).await;
    let cases: Vec<(NewWebAccount, &str)> = vec![
        (helpdesk("anna", "elf tekens!"), "password"),
        (helpdesk("anna.de.boer.1", "Anna.De.Boer.1"), "password"),
        (helpdesk("anna", &"x".repeat(1025)), "password"),
        (helpdesk("anna de boer", PASSWORD), "username"),
        (helpdesk("", PASSWORD), "username"),
        (helpdesk(&"a".repeat(65), PASSWORD), "username"),
        (
            NewWebAccount {
                display_name: "  ".into(),
                ..helpdesk("anna", PASSWORD)
            },
            "name",
        ),
    ];
    for (new, field) in cases {
        let shown = format!("{new:?}");
        let e = reg.add_web_account(new, &ict()).await.unwrap_err();
        assert_eq!(field_of(&e), Some(field), "{shown}: {e}");
        assert!(e.to_string().starts_with(&format!("{field}: ")), "{e}");
    }
    assert_eq!(db.count("web_accounts").await, 0);
    assert_eq!(db.count("audit_log").await, 0);

    // a new password follows the same rule; the old one keeps working
    reg.add_web_account(helpdesk("anna", PASSWORD), &ict())
        .await
        .unwrap();
    for bad in ["kort", "ANNA"] {
        let e = reg
            .set_web_account_password("anna", Zeroizing::new(bad.into()), &ict())
            .await
            .unwrap_err();
        assert_eq!(field_of(&e), Some("password"), "{e}");
    }
    let e = reg
        .set_web_account_password("niemand", Zeroizing::new(PASSWORD.into()), &ict())
        .await
        .unwrap_err();
    assert!(matches!(e, WebAccountError::Unknown(_)), "{e}");
    assert_eq!(db.count("audit_log").await, 1);
    assert!(reg
        .verify_web_login("anna", PASSWORD, at(10))
        .await
        .unwrap()
        .is_some());
    assert!(matches!(
        reg.set_web_account_disabled("niemand", true, &ict()).await,
        Err(WebAccountError::Unknown(_))
    ));
    assert!(matches!(
        reg.remove_web_account("niemand", &ict()).await,
        Err(WebAccountError::Unknown(_))
    ));
    assert_eq!(db.count("audit_log").await, 1);
});

both_stores!(
    password_disable_enable_remove_are_audited_without_secrets,
    |b| async move {
        let (db, reg) = registry(b).await;
        reg.add_web_account(
            NewWebAccount {
                role: WebRole::Admin,
                ..helpdesk("ict.anna", PASSWORD)
            },
            &ict(),
        )
        .await
        .unwrap();
        let first_hash = hashes(&db).await.remove(0);

        let new_password = "Een heel ander wachtwoord 9";
        let later = Change {
            actor: "ict.bram".into(),
            now: at(12),
        };
        let changed = reg
            .set_web_account_password("ict.anna", Zeroizing::new(new_password.into()), &later)
            .await
            .unwrap();
        assert_eq!(changed.password_changed_at, at(12));
        let second_hash = hashes(&db).await.remove(0);
        assert_ne!(first_hash, second_hash);
        assert!(second_hash.starts_with("$argon2id$"));
        assert_eq!(
            reg.verify_web_login("ict.anna", PASSWORD, at(13))
                .await
                .unwrap(),
            None
        );
        assert!(reg
            .verify_web_login("ict.anna", new_password, at(13))
            .await
            .unwrap()
            .is_some());

        // disabled: the right password is refused too; disabling twice writes once
        let off = reg
            .set_web_account_disabled("ict.anna", true, &later)
            .await
            .unwrap();
        assert!(off.disabled);
        reg.set_web_account_disabled("ict.anna", true, &later)
            .await
            .unwrap();
        assert_eq!(
            reg.verify_web_login("ict.anna", new_password, at(14))
                .await
                .unwrap(),
            None
        );
        let on = reg
            .set_web_account_disabled("ict.anna", false, &later)
            .await
            .unwrap();
        assert!(!on.disabled);
        assert!(reg
            .verify_web_login("ict.anna", new_password, at(15))
            .await
            .unwrap()
            .is_some());

        // every row of every table, before the account goes: no password, no hash
        let dump = db.dump().await;
        assert!(dump.contains(&second_hash), "the dump reads web_accounts");
        let audit_rows: String = dump
            .lines()
            .filter(|l| l.starts_with("audit"))
            .collect::<Vec<_>>()
            .join("\n");
        for secret in [PASSWORD, new_password, &first_hash, &second_hash, "argon2"] {
            assert!(!audit_rows.contains(secret), "`{secret}` in the audit rows");
        }

        let removed = reg.remove_web_account("ICT.Anna", &later).await.unwrap();
        assert_eq!(removed.username, "ict.anna");
        assert_eq!(reg.web_account("ict.anna").await.unwrap(), None);
        assert_eq!(db.count("web_accounts").await, 0);
        assert_eq!(
            reg.verify_web_login("ict.anna", new_password, at(16))
                .await
                .unwrap(),
            None
        );
        let dump = db.dump().await;
        for secret in [PASSWORD, new_password, &first_hash, &second_hash, "argon2"] {
            assert!(!dump.contains(secret), "`{secret}` left in the database");
        }

        let mut audit = reg.audit(&AuditFilter::default()).await.unwrap();
        audit.reverse();
        let actions: Vec<(&str, &str)> = audit
            .iter()
            .map(|e| (e.action.as_str(), e.actor.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("web_account.add", "ict.beheer"),
                ("web_account.password", "ict.bram"),
                ("web_account.disable", "ict.bram"),
                ("web_account.enable", "ict.bram"),
                ("web_account.remove", "ict.bram"),
            ]
        );
        for e in &audit {
            assert_eq!(e.target_type, "web_account");
            assert_eq!(e.target_id, "ict.anna");
            let payload = format!("{:?} {:?}", e.before, e.after);
            assert!(
                !payload.contains("hash") && !payload.contains("password\""),
                "{payload}"
            );
        }
        assert_eq!(audit[2].after.as_ref().unwrap()["disabled"], true);
        assert_eq!(
            audit[1].after.as_ref().unwrap()["password_changed_at"],
            "2026-12-04T12:00:00Z"
        );
        assert!(audit[4].after.is_none());
        assert!(reg.verify_audit().await.unwrap().ok());
    }
);
