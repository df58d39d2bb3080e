//! The registry conformance suite: every test runs against SQLite and against a real
//! PostgreSQL server, and asserts on the rows (through the registry and straight from SQL).

mod support;

use std::sync::Arc;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use poortwachter::mac::MacAddr;
use poortwachter::model::{Compliance, DeviceKind, DeviceStatus, NewDevice, NewOwner, Role};
use poortwachter::registry::{
    AuditFilter, Change, DeviceRef, ImportColumns, ImportOptions, ImportRow, NewCertificate,
    Registry, RegistryError, RevocationCause, Rules,
};
use support::{Backend, TestDb};

async fn registry(backend: Backend, max_devices: u32) -> (TestDb, Registry) {
    let db = TestDb::new(backend).await;
    let reg = Registry::connect(
        &db.url,
        4,
        Rules {
            max_devices_per_owner: max_devices,
            timezone: chrono_tz::Europe::Amsterdam,
        },
    )
    .await
    .expect("connect");
    reg.migrate().await.expect("migrate");
    (db, reg)
}

/// A fixed clock: 2026-11-28 10:00 UTC.
fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
}

fn ict() -> Change {
    Change {
        actor: "ict.beheer".into(),
        now: now(),
    }
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn staff(username: &str) -> NewOwner {
    NewOwner {
        username: username.into(),
        display_name: format!("Medewerker {username}"),
        email: Some(format!("{username}@gemeente.example")),
        role: Role::Staff,
        department: Some("Burgerzaken".into()),
        valid_from: None,
        valid_until: None,
    }
}

fn temp(username: &str, until: &str) -> NewOwner {
    NewOwner {
        role: Role::Temp,
        valid_until: Some(date(until)),
        ..staff(username)
    }
}

fn laptop(owner: &str, macs: &[&str]) -> NewDevice {
    let macs: Vec<String> = macs.iter().map(|m| m.to_string()).collect();
    NewDevice::from_input(owner, &macs, "Persoonlijke laptop", DeviceKind::Laptop)
        .expect("valid device")
        .0
}

fn mac(s: &str) -> MacAddr {
    MacAddr::parse_any(s).unwrap()
}

async fn audit_len(reg: &Registry) -> usize {
    reg.audit(&AuditFilter {
        limit: Some(10_000),
        ..Default::default()
    })
    .await
    .unwrap()
    .len()
}

both_stores!(owner_round_trips_and_is_found_in_any_case, |b| async move {
    let (db, reg) = registry(b, 3).await;
    let mut new = temp("E.Jansen", "2027-06-30");
    new.valid_from = Some(date("2026-12-01"));
    let added = reg.add_owner(new, &ict()).await.unwrap();
    assert_eq!(added.username, "E.Jansen");
    let found = reg
        .owner("e.jansen")
        .await
        .unwrap()
        .expect("found in lower case");
    assert_eq!(found, added);
    assert_eq!(found.role, Role::Temp);
    assert_eq!(found.valid_from, Some(date("2026-12-01")));
    assert_eq!(found.valid_until, Some(date("2027-06-30")));
    assert_eq!(found.created_at, now());
    assert_eq!(db.count("owners").await, 1);
    let audit = reg.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "ict.beheer");
    assert_eq!(audit[0].action, "owner.add");
    assert_eq!(audit[0].target_id, "E.Jansen");
    assert!(audit[0].before.is_none());
    assert_eq!(audit[0].after.as_ref().unwrap()["role"], "temp");
});

both_stores!(
    duplicate_username_in_another_case_writes_nothing,
    |b| async move {
        let (db, reg) = registry(b, 3).await;
        reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
        let err = reg.add_owner(staff("J.DeVries"), &ict()).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::OwnerExists(ref u) if u == "j.devries"),
            "{err}"
        );
        assert_eq!(db.count("owners").await, 1);
        assert_eq!(db.count("audit_log").await, 1);
    }
);

both_stores!(
    temp_without_end_date_and_expired_owner_are_refused,
    |b| async move {
        let (db, reg) = registry(b, 3).await;
        let mut no_end = staff("t.uitzend");
        no_end.role = Role::Intern;
        let err = reg.add_owner(no_end, &ict()).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::Field(ref f) if f.field == "until"),
            "{err}"
        );
        let err = reg
            .add_owner(temp("t.oud", "2026-10-31"), &ict())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "the contract of t.oud ended on 2026-10-31");
        // the last day itself is still valid
        reg.add_owner(temp("t.vandaag", "2026-11-28"), &ict())
            .await
            .unwrap();
        assert_eq!(db.count("owners").await, 1);
        assert_eq!(db.count("audit_log").await, 1);
    }
);

both_stores!(register_device_normalizes_macs_and_audits, |b| async move {
    let (db, reg) = registry(b, 3).await;
    reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
    let dev = reg
        .register_device(
            laptop("J.DEVRIES", &["00-1B-21-0A-BC-01", "001b.210a.bc02"]),
            &ict(),
        )
        .await
        .unwrap();
    assert_eq!(dev.owner, "j.devries");
    assert_eq!(dev.status, DeviceStatus::Active);
    assert_eq!(dev.compliance, Compliance::Unknown);
    assert_eq!(dev.created_by, "ict.beheer");
    let stored = reg.device(dev.id).await.unwrap().unwrap();
    assert_eq!(stored, dev);
    assert_eq!(
        stored.macs,
        vec![mac("00:1b:21:0a:bc:01"), mac("00:1b:21:0a:bc:02")]
    );
    let by_mac = reg
        .device_by_mac(mac("00:1B:21:0A:BC:02"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_mac.id, dev.id);
    assert_eq!(db.count("devices").await, 1);
    assert_eq!(db.count("device_macs").await, 2);
    let audit = reg
        .audit(&AuditFilter {
            target_id: Some(dev.id.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "device.register");
    assert_eq!(
        audit[0].after.as_ref().unwrap()["macs"][1],
        "00:1b:21:0a:bc:02"
    );
});

both_stores!(
    mac_already_registered_names_the_holder_and_writes_nothing,
    |b| async move {
        let (db, reg) = registry(b, 3).await;
        reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
        reg.add_owner(staff("a.bakker"), &ict()).await.unwrap();
        let first = reg
            .register_device(laptop("j.devries", &["00:1b:21:0a:bc:01"]), &ict())
            .await
            .unwrap();
        let err = reg
            .register_device(
                laptop("a.bakker", &["00:1b:21:0a:bc:09", "001B210ABC01"]),
                &ict(),
            )
            .await
            .unwrap_err();
        match &err {
            RegistryError::MacTaken {
                mac: m,
                device,
                owner,
                ..
            } => {
                assert_eq!(*m, mac("00:1b:21:0a:bc:01"));
                assert_eq!(*device, first.id);
                assert_eq!(owner, "j.devries");
            }
            other => panic!("expected MacTaken, got {other}"),
        }
        assert!(err.to_string().contains("of j.devries"), "{err}");
        assert_eq!(db.count("devices").await, 1);
        assert_eq!(db.count("device_macs").await, 1);
        assert_eq!(db.count("audit_log").await, 3);
    }
);

both_stores!(
    unknown_disabled_and_expired_owners_get_no_device,
    |b| async move {
        let (db, reg) = registry(b, 3).await;
        let err = reg
            .register_device(laptop("niemand", &["00:1b:21:0a:bc:01"]), &ict())
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::UnknownOwner(_)), "{err}");

        reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
        reg.set_owner_disabled("j.devries", true, None, &ict())
            .await
            .unwrap();
        let err = reg
            .register_device(laptop("j.devries", &["00:1b:21:0a:bc:01"]), &ict())
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::OwnerDisabled(_)), "{err}");

        reg.add_owner(temp("t.stage", "2026-12-31"), &ict())
            .await
            .unwrap();
        let later = Change {
            now: Utc.with_ymd_and_hms(2027, 1, 1, 0, 30, 0).unwrap(), // 01:30 in Amsterdam
            ..ict()
        };
        let err = reg
            .register_device(laptop("t.stage", &["00:1b:21:0a:bc:01"]), &later)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the contract of t.stage ended on 2026-12-31"
        );
        assert_eq!(db.count("devices").await, 0);
        assert_eq!(db.count("device_macs").await, 0);
    }
);

both_stores!(device_limit_counts_devices_not_revoked, |b| async move {
    let (db, reg) = registry(b, 2).await;
    reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
    let one = reg
        .register_device(laptop("j.devries", &["00:1b:21:00:00:01"]), &ict())
        .await
        .unwrap();
    reg.register_device(laptop("j.devries", &["00:1b:21:00:00:02"]), &ict())
        .await
        .unwrap();
    let err = reg
        .register_device(laptop("j.devries", &["00:1b:21:00:00:03"]), &ict())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DeviceLimit { limit: 2, .. }),
        "{err}"
    );
    assert_eq!(db.count("devices").await, 2);
    reg.set_device_status(
        &DeviceRef::Id(one.id),
        DeviceStatus::Revoked,
        Some("verkocht".into()),
        &ict(),
    )
    .await
    .unwrap();
    reg.register_device(laptop("j.devries", &["00:1b:21:00:00:03"]), &ict())
        .await
        .unwrap();
    assert_eq!(db.count("devices").await, 3);
});

both_stores!(device_lifecycle_and_its_audit_trail, |b| async move {
    let (_db, reg) = registry(b, 3).await;
    reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
    let dev = reg
        .register_device(laptop("j.devries", &["00:1b:21:00:00:01"]), &ict())
        .await
        .unwrap();
    let by_mac = DeviceRef::parse("00-1B-21-00-00-01").unwrap();
    let lost = reg
        .set_device_status(
            &by_mac,
            DeviceStatus::Lost,
            Some("in de trein".into()),
            &ict(),
        )
        .await
        .unwrap();
    assert_eq!(lost.status, DeviceStatus::Lost);
    assert_eq!(lost.status_reason.as_deref(), Some("in de trein"));
    assert_eq!(lost.status_changed_at, Some(now()));
    let found = reg
        .set_device_status(&DeviceRef::Id(dev.id), DeviceStatus::Active, None, &ict())
        .await
        .unwrap();
    assert_eq!(found.status, DeviceStatus::Active);

    // a revocation needs a reason, and writes nothing without one
    let before = audit_len(&reg).await;
    let err = reg
        .set_device_status(
            &DeviceRef::Id(dev.id),
            DeviceStatus::Revoked,
            Some("  ".into()),
            &ict(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Field(ref f) if f.field == "reason"),
        "{err}"
    );
    assert_eq!(audit_len(&reg).await, before);

    let prefix = DeviceRef::parse(&dev.id.simple().to_string()[..8]).unwrap();
    let revoked = reg
        .set_device_status(
            &prefix,
            DeviceStatus::Revoked,
            Some("gestolen".into()),
            &ict(),
        )
        .await
        .unwrap();
    assert_eq!(revoked.status, DeviceStatus::Revoked);
    // revoked is final
    for to in [
        DeviceStatus::Lost,
        DeviceStatus::Active,
        DeviceStatus::Revoked,
    ] {
        let err = reg
            .set_device_status(&DeviceRef::Id(dev.id), to, Some("x".into()), &ict())
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::StatusTransition { .. }),
            "{err}"
        );
    }
    let stored = reg.device(dev.id).await.unwrap().unwrap();
    assert_eq!(stored.status, DeviceStatus::Revoked);
    assert_eq!(stored.status_reason.as_deref(), Some("gestolen"));

    let trail = reg
        .audit(&AuditFilter {
            target_id: Some(dev.id.to_string().to_uppercase()),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "device.revoke",
            "device.found",
            "device.lost",
            "device.register"
        ]
    );
    let revoke = &trail[0];
    assert_eq!(revoke.before.as_ref().unwrap()["status"], "active");
    assert_eq!(revoke.after.as_ref().unwrap()["status"], "revoked");
    assert_eq!(revoke.after.as_ref().unwrap()["status_reason"], "gestolen");
});

both_stores!(compliance_is_recorded_with_time_and_note, |b| async move {
    let (_db, reg) = registry(b, 3).await;
    reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
    let dev = reg
        .register_device(laptop("j.devries", &["00:1b:21:00:00:01"]), &ict())
        .await
        .unwrap();
    let later = Change {
        now: now() + Duration::hours(2),
        ..ict()
    };
    let updated = reg
        .set_compliance(
            &DeviceRef::Id(dev.id),
            Compliance::Noncompliant,
            Some("virusscanner uit".into()),
            &later,
        )
        .await
        .unwrap();
    assert_eq!(updated.compliance, Compliance::Noncompliant);
    assert_eq!(updated.compliance_checked_at, Some(later.now));
    let stored = reg.device(dev.id).await.unwrap().unwrap();
    assert_eq!(stored, updated);
    assert_eq!(stored.compliance_note.as_deref(), Some("virusscanner uit"));
    let trail = reg
        .audit(&AuditFilter {
            target_id: Some(dev.id.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(trail[0].action, "device.compliance");
    assert_eq!(trail[0].before.as_ref().unwrap()["compliance"], "unknown");
    assert_eq!(
        trail[0].after.as_ref().unwrap()["compliance"],
        "noncompliant"
    );
});

both_stores!(lookups_check_the_username_first, |b| async move {
    let (_db, reg) = registry(b, 3).await;
    reg.add_owner(staff("kees"), &ict()).await.unwrap();
    // KELVIN SIGN folds to `k` in PostgreSQL's lower() but not in SQLite: refused in both
    for name in ["\u{212A}ees", "kees; --", ""] {
        let err = reg.owner(name).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::Field(ref f) if f.field == "username"),
            "{err}"
        );
        assert!(reg
            .set_owner_disabled(name, true, None, &ict())
            .await
            .is_err());
        assert!(reg.devices(Some(name)).await.is_err());
    }
    assert!(reg.owner("KEES").await.unwrap().is_some());
});

both_stores!(
    now_is_kept_to_the_microsecond_in_both_stores,
    |b| async move {
        let (_db, reg) = registry(b, 3).await;
        let change = Change::by("ict.beheer");
        let added = reg.add_owner(staff("j.devries"), &change).await.unwrap();
        assert_eq!(reg.owner("j.devries").await.unwrap().unwrap(), added);
    }
);

both_stores!(
    owners_are_listed_in_the_same_order_in_both_stores,
    |b| async move {
        let (_db, reg) = registry(b, 3).await;
        for u in ["ab", "a.bakker", "A.Aalders", "b.visser", "a_z"] {
            reg.add_owner(staff(u), &ict()).await.unwrap();
        }
        let names: Vec<String> = reg
            .owners()
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.username)
            .collect();
        assert_eq!(names, ["A.Aalders", "a.bakker", "a_z", "ab", "b.visser"]);
    }
);

both_stores!(unknown_devices_are_reported, |b| async move {
    let (_db, reg) = registry(b, 3).await;
    for r in [
        "00:1b:21:00:00:09",
        "0123abcd",
        "6f1c2c5e-0000-4000-8000-000000000000",
    ] {
        let err = reg
            .find_device(&DeviceRef::parse(r).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::UnknownDevice(_)), "{r}: {err}");
    }
    let err = reg
        .set_compliance(
            &DeviceRef::parse("00:1b:21:00:00:09").unwrap(),
            Compliance::Compliant,
            None,
            &ict(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::UnknownDevice(_)), "{err}");
});

both_stores!(owner_disable_enable_is_audited_once, |b| async move {
    let (db, reg) = registry(b, 3).await;
    reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
    let o = reg
        .set_owner_disabled("J.DEVRIES", true, None, &ict())
        .await
        .unwrap();
    assert!(o.disabled);
    // disabling again changes nothing and writes nothing
    reg.set_owner_disabled("j.devries", true, None, &ict())
        .await
        .unwrap();
    assert_eq!(db.count("audit_log").await, 2);
    let o = reg
        .set_owner_disabled("j.devries", false, None, &ict())
        .await
        .unwrap();
    assert!(!o.disabled);
    assert!(!reg.owner("j.devries").await.unwrap().unwrap().disabled);
    let err = reg
        .set_owner_disabled("niemand", true, None, &ict())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::UnknownOwner(_)));
    let actions: Vec<String> = reg
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["owner.enable", "owner.disable", "owner.add"]);
});

fn row(line: u64, owner: NewOwner) -> ImportRow {
    ImportRow {
        line,
        owner: Ok(owner),
        external_id: None,
        named: None,
    }
}

both_stores!(import_adds_updates_and_reports_unchanged, |b| async move {
    let (db, reg) = registry(b, 3).await;
    reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
    let moved = NewOwner {
        username: "J.DEVRIES".into(),
        department: Some("ICT".into()),
        ..staff("j.devries")
    };
    let rows = vec![
        row(2, moved),
        row(3, temp("t.nieuw", "2027-02-28")),
        row(4, staff("a.bakker")),
    ];
    let mut calls = Vec::new();
    let report = reg
        .import_owners(
            rows,
            &ImportOptions::import(ImportColumns::ALL, false),
            &ict(),
            &mut |d, t| calls.push((d, t)),
        )
        .await
        .unwrap();
    assert_eq!((report.added, report.updated, report.unchanged), (2, 1, 0));
    assert_eq!(calls.last(), Some(&(3, 3)));
    assert_eq!(db.count("owners").await, 3);
    let jan = reg.owner("j.devries").await.unwrap().unwrap();
    assert_eq!(
        jan.username, "j.devries",
        "the username keeps its registered form"
    );
    assert_eq!(jan.department.as_deref(), Some("ICT"));

    // the same file again changes nothing
    let audit_before = db.count("audit_log").await;
    let mut moved = staff("j.devries");
    moved.department = Some("ICT".into());
    let rows = vec![
        row(2, moved),
        row(3, temp("t.nieuw", "2027-02-28")),
        row(4, staff("a.bakker")),
    ];
    let report = reg
        .import_owners(
            rows,
            &ImportOptions::import(ImportColumns::ALL, false),
            &ict(),
            &mut |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!((report.added, report.updated, report.unchanged), (0, 0, 3));
    assert_eq!(db.count("audit_log").await, audit_before);
    let trail = reg
        .audit(&AuditFilter {
            target_id: Some("j.devries".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(trail[0].action, "owner.import.update");
    assert_eq!(
        trail[0].before.as_ref().unwrap()["department"],
        "Burgerzaken"
    );
    assert_eq!(trail[0].after.as_ref().unwrap()["department"], "ICT");
});

both_stores!(
    import_with_a_bad_row_writes_nothing_unless_skip_bad,
    |b| async move {
        let (db, reg) = registry(b, 3).await;
        let bad_rows = || {
            let mut no_end = staff("i.stagiair");
            no_end.role = Role::Intern;
            vec![
                row(2, staff("a.bakker")),
                row(3, no_end),
                ImportRow {
                    line: 4,
                    owner: Err("role: `baas` is not a role".into()),
                    external_id: None,
                    named: None,
                },
                row(5, temp("t.oud", "2025-01-31")),
                row(6, staff("A.Bakker")),
                row(7, staff("c.visser")),
            ]
        };
        let err = reg
            .import_owners(
                bad_rows(),
                &ImportOptions::import(ImportColumns::ALL, false),
                &ict(),
                &mut |_, _| {},
            )
            .await
            .unwrap_err();
        let RegistryError::ImportRejected(problems) = &err else {
            panic!("expected ImportRejected, got {err}");
        };
        let lines: Vec<u64> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [3, 4, 5, 6]);
        assert!(problems[0].message.contains("end date"), "{}", problems[0]);
        assert!(
            problems[2].message.contains("ended on 2025-01-31"),
            "{}",
            problems[2]
        );
        assert!(
            problems[3].message.contains("first on line 2"),
            "{}",
            problems[3]
        );
        assert_eq!(db.count("owners").await, 0);
        assert_eq!(db.count("audit_log").await, 0);

        let report = reg
            .import_owners(
                bad_rows(),
                &ImportOptions::import(ImportColumns::ALL, true),
                &ict(),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!(report.added, 2);
        assert_eq!(report.skipped.len(), 4);
        assert_eq!(db.count("owners").await, 2);
        assert_eq!(db.count("audit_log").await, 2);
    }
);

both_stores!(
    concurrent_registrations_respect_the_device_limit,
    |b| async move {
        let (db, reg) = registry(b, 1).await;
        reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
        let reg = Arc::new(reg);
        let mut tasks = Vec::new();
        for i in 0..6u8 {
            let reg = reg.clone();
            tasks.push(tokio::spawn(async move {
                let m = format!("00:1b:21:00:01:{i:02x}");
                reg.register_device(laptop("j.devries", &[&m]), &ict())
                    .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(RegistryError::DeviceLimit { .. }) => {}
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(ok, 1);
        assert_eq!(db.count("devices").await, 1);
    }
);

both_stores!(
    concurrent_registrations_of_one_mac_give_it_to_one_device,
    |b| async move {
        let (db, reg) = registry(b, 10).await;
        for i in 0..4 {
            reg.add_owner(staff(&format!("user{i}")), &ict())
                .await
                .unwrap();
        }
        let reg = Arc::new(reg);
        let mut tasks = Vec::new();
        for i in 0..4 {
            let reg = reg.clone();
            tasks.push(tokio::spawn(async move {
                reg.register_device(laptop(&format!("user{i}"), &["00:1b:21:00:02:01"]), &ict())
                    .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(RegistryError::MacTaken { .. }) | Err(RegistryError::Field(_)) => {}
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(ok, 1);
        assert_eq!(db.count("devices").await, 1);
        assert_eq!(db.count("device_macs").await, 1);
    }
);

both_stores!(audit_log_is_append_only, |b| async move {
    let (db, reg) = registry(b, 3).await;
    reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
    assert!(db
        .execute("UPDATE audit_log SET actor = 'someone else'")
        .await
        .is_err());
    assert!(db.execute("DELETE FROM audit_log").await.is_err());
    if b == Backend::Postgres {
        assert!(db.execute("TRUNCATE audit_log").await.is_err());
    }
    let audit = reg.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "ict.beheer");
});

both_stores!(audit_filters_by_target_and_actor, |b| async move {
    let (_db, reg) = registry(b, 3).await;
    reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
    let other = Change {
        actor: "helpdesk.piet".into(),
        now: now(),
    };
    reg.add_owner(staff("a.bakker"), &other).await.unwrap();
    let by_target = reg
        .audit(&AuditFilter {
            target_id: Some("A.BAKKER".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_target.len(), 1);
    assert_eq!(by_target[0].actor, "helpdesk.piet");
    let by_actor = reg
        .audit(&AuditFilter {
            actor: Some("ict.beheer".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_actor.len(), 1);
    assert_eq!(by_actor[0].target_id, "j.devries");
    let limited = reg
        .audit(&AuditFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].target_id, "a.bakker", "newest first");
});

both_stores!(migrations_are_idempotent, |b| async move {
    let (db, reg) = registry(b, 3).await;
    reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
    reg.migrate().await.unwrap();
    assert_eq!(db.count("owners").await, 1);
});

both_stores!(
    import_without_a_column_keeps_the_stored_values,
    |b| async move {
        let (_db, reg) = registry(b, 3).await;
        reg.add_owner(temp("t.tijdelijk", "2027-03-31"), &ict())
            .await
            .unwrap();
        // an export with names and roles only: email, department and end date stay
        let bare = NewOwner {
            display_name: "Tim Tijdelijk".into(),
            email: None,
            department: None,
            valid_until: None,
            ..temp("t.tijdelijk", "2027-03-31")
        };
        let columns = ImportColumns {
            email: false,
            department: false,
            valid_from: false,
            valid_until: false,
        };
        let report = reg
            .import_owners(
                vec![row(2, bare.clone())],
                &ImportOptions::import(columns, false),
                &ict(),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!(report.updated, 1);
        let tim = reg.owner("t.tijdelijk").await.unwrap().unwrap();
        assert_eq!(tim.display_name, "Tim Tijdelijk");
        assert_eq!(tim.email.as_deref(), Some("t.tijdelijk@gemeente.example"));
        assert_eq!(tim.department.as_deref(), Some("Burgerzaken"));
        assert_eq!(tim.valid_until, Some(date("2027-03-31")));
        // with the column present and empty, the value is cleared (and a temp then needs one)
        let err = reg
            .import_owners(
                vec![row(2, bare)],
                &ImportOptions::import(ImportColumns::ALL, false),
                &ict(),
                &mut |_, _| {},
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("line 2: until: a temp needs a contract end date"),
            "{err}"
        );
    }
);

fn acct(
    kind: poortwachter::activity::AcctKind,
    sid: &str,
    at: chrono::DateTime<Utc>,
    time: i64,
) -> poortwachter::activity::AccountingUpdate {
    poortwachter::activity::AccountingUpdate {
        kind,
        at,
        nas: "ap-1".into(),
        nas_key: "10.0.0.1".into(),
        acct_session_id: sid.into(),
        nas_ip: Some("10.0.0.1".into()),
        nas_port: Some(1),
        username: Some("aabbccddeeff".into()),
        mac: Some(MacAddr::parse_any("aa:bb:cc:dd:ee:ff").unwrap()),
        ssid: Some("Werkplek".into()),
        device_id: None,
        owner: None,
        framed_ip: None,
        class: None,
        session_time: time,
        input_octets: time * 10,
        output_octets: time * 20,
        input_packets: 0,
        output_packets: 0,
        terminate_cause: (kind == poortwachter::activity::AcctKind::Stop)
            .then(|| "User-Request".into()),
        raw: Default::default(),
    }
}

both_stores!(sessions_and_decision_retention, |b| async move {
    use poortwachter::activity::{AcctKind, DecisionFilter, DecisionRecord, SessionFilter};
    let (db, reg) = registry(b, 3).await;
    let store = reg.store_arc();
    let t0 = now();
    // Interim before Start (a lost Start) creates the session; Start then updates it
    store
        .record_accounting(&acct(AcctKind::InterimUpdate, "S1", t0, 60))
        .await
        .unwrap();
    store
        .record_accounting(&acct(AcctKind::Start, "S1", t0, 0))
        .await
        .unwrap();
    store
        .record_accounting(&acct(
            AcctKind::Stop,
            "S1",
            t0 + Duration::seconds(120),
            120,
        ))
        .await
        .unwrap();
    // a repeated Stop and a late Interim change nothing
    store
        .record_accounting(&acct(
            AcctKind::Stop,
            "S1",
            t0 + Duration::seconds(130),
            130,
        ))
        .await
        .unwrap();
    store
        .record_accounting(&acct(
            AcctKind::InterimUpdate,
            "S1",
            t0 + Duration::seconds(140),
            140,
        ))
        .await
        .unwrap();
    assert_eq!(db.count("sessions").await, 1);
    let s = store.sessions(&SessionFilter::default()).await.unwrap();
    assert_eq!(s[0].session_time, 120);
    assert_eq!(s[0].stopped_at, Some(t0 + Duration::seconds(120)));
    assert_eq!(s[0].started_at, t0 - Duration::seconds(60));
    // the NAS reuses the id after a reboot: a new session
    store
        .record_accounting(&acct(AcctKind::Start, "S1", t0 + Duration::seconds(200), 0))
        .await
        .unwrap();
    store
        .record_accounting(&acct(AcctKind::Start, "S2", t0 + Duration::seconds(200), 0))
        .await
        .unwrap();
    assert_eq!(db.count("sessions").await, 3);
    let active = store
        .sessions(&SessionFilter {
            active_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 2);
    assert_eq!(
        store
            .close_sessions(
                "ap-1",
                "10.0.0.1",
                t0 + Duration::seconds(300),
                "NAS-Reboot"
            )
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .close_sessions("ap-1", "10.0.0.2", t0, "NAS-Reboot")
            .await
            .unwrap(),
        0
    );
    let active = store
        .sessions(&SessionFilter {
            active_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(active.is_empty());

    // decisions: stored in a batch, read newest first, purged by age
    let rec = |at: chrono::DateTime<Utc>, reason: &str| DecisionRecord {
        id: 0,
        at,
        nas: "ap-1".into(),
        nas_ip: None,
        username: "aabbccddeeff".into(),
        mac: Some(MacAddr::parse_any("aa:bb:cc:dd:ee:ff").unwrap()),
        ssid: None,
        method: "mab".into(),
        device_id: Some(uuid::Uuid::new_v4()),
        owner: Some("j.devries".into()),
        outcome: "reject".into(),
        vlan: None,
        reason: reason.into(),
        message: "rejected: «quoted» \"text\" with ünïcode".into(),
        repeats: 2,
        degraded: reason == "device_lost",
    };
    let old = rec(t0 - Duration::days(100), "owner_expired");
    let new = rec(t0, "device_lost");
    store
        .insert_decisions(&[old.clone(), new.clone()])
        .await
        .unwrap();
    let found = store
        .decisions(&DecisionFilter {
            mac: None,
            username: Some("J.DEVRIES".into()),
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].reason, "device_lost");
    assert_eq!(found[0].at, new.at);
    assert_eq!(found[0].device_id, new.device_id);
    assert_eq!(found[0].message, new.message);
    assert_eq!(found[0].repeats, 2);
    assert!(found[0].degraded && !found[1].degraded);
    assert_eq!(
        store
            .purge_decisions(t0 - Duration::days(90))
            .await
            .unwrap(),
        1
    );
    assert_eq!(db.count("decisions").await, 1);
    assert_eq!(
        store
            .purge_decisions(t0 - Duration::days(90))
            .await
            .unwrap(),
        0
    );
});

both_stores!(
    unknown_device_counts_are_found_by_mac_and_purged,
    |b| async move {
        use poortwachter::activity::{DecisionAggregate, AGGREGATE_SAMPLE};
        let (db, reg) = registry(b, 3).await;
        let store = reg.store_arc();
        let t0 = now();
        let sample: Vec<MacAddr> = (0..AGGREGATE_SAMPLE as u32)
            .map(|n| mac(&format!("02:66:00:00:00:{n:02x}")))
            .collect();
        let row = |minute: chrono::DateTime<Utc>, ap: &str, macs: Vec<MacAddr>| DecisionAggregate {
            id: 0,
            minute,
            nas: "ap-1".into(),
            ap: ap.into(),
            method: "mab".into(),
            outcome: "reject".into(),
            reason: "unknown_device".into(),
            count: 1_000_000,
            macs,
            message: "rejected: MAC 02:66:00:00:00:00 is not registered".into(),
        };
        store
            .insert_decision_aggregates(&[
                row(t0 - Duration::days(100), "10.0.0.1", sample.clone()),
                row(t0 - Duration::minutes(1), "10.0.0.1", sample.clone()),
                row(t0, "other", sample[5..7].to_vec()),
            ])
            .await
            .unwrap();
        // newest first; a MAC is found only where the sample holds it
        let found = store.decision_aggregates(sample[5], 10).await.unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!((found[0].minute, found[0].ap.as_str()), (t0, "other"));
        assert_eq!(found[1].macs, sample);
        assert_eq!(found[1].count, 1_000_000);
        assert_eq!(
            found[1].message,
            "rejected: MAC 02:66:00:00:00:00 is not registered"
        );
        assert_eq!(
            store.decision_aggregates(sample[0], 1).await.unwrap().len(),
            1
        );
        assert_eq!(
            store
                .decision_aggregates(sample[0], 10)
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(store
            .decision_aggregates(mac("02:66:00:00:01:00"), 10)
            .await
            .unwrap()
            .is_empty());
        // retention: the same as decisions
        assert_eq!(
            store
                .purge_decision_aggregates(t0 - Duration::days(90))
                .await
                .unwrap(),
            1
        );
        assert_eq!(db.count("decision_aggregates").await, 2);
    }
);

both_stores!(sessions_out_of_order_and_per_access_point, |b| async move {
    use poortwachter::activity::{AcctKind, SessionFilter};
    let (db, reg) = registry(b, 3).await;
    let store = reg.store_arc();
    let t0 = now();
    // the Stop overtakes its Start: one closed session, no open one left behind
    store
        .record_accounting(&acct(AcctKind::Stop, "X1", t0 + Duration::seconds(5), 5))
        .await
        .unwrap();
    store
        .record_accounting(&acct(AcctKind::Start, "X1", t0, 0))
        .await
        .unwrap();
    // an older Interim-Update does not roll counters back
    store
        .record_accounting(&acct(AcctKind::Start, "X2", t0, 0))
        .await
        .unwrap();
    store
        .record_accounting(&acct(
            AcctKind::InterimUpdate,
            "X2",
            t0 + Duration::seconds(600),
            600,
        ))
        .await
        .unwrap();
    store
        .record_accounting(&acct(
            AcctKind::InterimUpdate,
            "X2",
            t0 + Duration::seconds(300),
            300,
        ))
        .await
        .unwrap();
    // another AP of the same client with the same session id is another session
    let mut other = acct(AcctKind::Start, "X2", t0, 0);
    other.nas_key = "ap-kantine".into();
    store.record_accounting(&other).await.unwrap();
    assert_eq!(db.count("sessions").await, 3);
    let all = store.sessions(&SessionFilter::default()).await.unwrap();
    let x1: Vec<_> = all.iter().filter(|s| s.acct_session_id == "X1").collect();
    assert_eq!(x1.len(), 1);
    assert!(x1[0].stopped_at.is_some());
    let x2 = all
        .iter()
        .find(|s| s.acct_session_id == "X2" && s.nas_key == "10.0.0.1")
        .unwrap();
    assert_eq!(x2.session_time, 600);
    // Accounting-On from one AP closes only that AP's sessions
    assert_eq!(
        store
            .close_sessions(
                "ap-1",
                "ap-kantine",
                t0 + Duration::seconds(900),
                "NAS-Reboot"
            )
            .await
            .unwrap(),
        1
    );
    let active = store
        .sessions(&SessionFilter {
            active_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].nas_key, "10.0.0.1");
});

fn certificate(serial: &str, fill: char, days: i64) -> NewCertificate {
    NewCertificate {
        serial: serial.into(),
        fingerprint: std::iter::repeat_n(fill, 64).collect(),
        not_before: now() - Duration::minutes(5),
        not_after: now() + Duration::days(days),
    }
}

both_stores!(
    issued_certificate_identifies_the_device_and_supersedes_the_last,
    |b| async move {
        let (db, reg) = registry(b, 3).await;
        reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
        let dev = reg
            .register_device(laptop("j.devries", &["00:1b:21:0a:bc:01"]), &ict())
            .await
            .unwrap();
        assert_eq!(
            reg.device_by_cert_fingerprint(&"a".repeat(64))
                .await
                .unwrap(),
            None
        );
        let first = reg
            .record_certificate(dev.id, certificate("0badc0de", 'a', 365), &ict())
            .await
            .unwrap();
        assert_eq!(first.cert_serial.as_deref(), Some("0badc0de"));
        let found = reg
            .device_by_cert_fingerprint(&"a".repeat(64))
            .await
            .unwrap()
            .expect("found by fingerprint");
        assert_eq!(found, first);
        // the lookup takes any case
        assert!(reg
            .device_by_cert_fingerprint(&"A".repeat(64))
            .await
            .unwrap()
            .is_some());

        let later = Change {
            actor: "ict.piet".into(),
            now: now() + Duration::hours(1),
        };
        let second = reg
            .record_certificate(dev.id, certificate("7e57", 'b', 365), &later)
            .await
            .unwrap();
        assert_eq!(second.cert_fingerprint, Some("b".repeat(64)));
        // only the current certificate identifies the device
        assert_eq!(
            reg.device_by_cert_fingerprint(&"a".repeat(64))
                .await
                .unwrap(),
            None
        );
        let certs = reg.certificates(dev.id).await.unwrap();
        assert_eq!(db.count("certificates").await, 2);
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].serial, "7e57", "newest first");
        assert_eq!(certs[0].superseded_at, None);
        assert_eq!(certs[0].issued_by, "ict.piet");
        assert_eq!(certs[0].issued_at, later.now);
        assert_eq!(certs[0].not_after, now() + Duration::days(365));
        assert_eq!(certs[1].serial, "0badc0de");
        assert_eq!(certs[1].superseded_at, Some(later.now));
        assert_eq!(certs[1].issued_by, "ict.beheer");

        let audit = reg
            .audit(&AuditFilter {
                target_id: Some(dev.id.to_string()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(audit[0].action, "device.issue_cert");
        assert_eq!(audit[0].actor, "ict.piet");
        let (before, after) = (
            audit[0].before.as_ref().unwrap(),
            audit[0].after.as_ref().unwrap(),
        );
        assert_eq!(before["cert_serial"], "0badc0de");
        assert_eq!(after["cert_serial"], "7e57");
        assert_eq!(after["cert_fingerprint"], "b".repeat(64));
        assert_eq!(audit[1].action, "device.issue_cert");
        assert!(audit[1].before.as_ref().unwrap()["cert_serial"].is_null());

        // the superseded one is withdrawn until it expires
        let revocations = reg.revocations(later.now).await.unwrap();
        assert_eq!(revocations.len(), 1);
        assert_eq!(revocations[0].serial, "0badc0de");
        assert_eq!(revocations[0].cause, RevocationCause::Superseded);
        assert_eq!(revocations[0].at, later.now);
        assert!(reg
            .revocations(now() + Duration::days(366))
            .await
            .unwrap()
            .is_empty());
    }
);

both_stores!(
    certificates_of_lost_and_revoked_devices_are_withdrawn,
    |b| async move {
        let (_db, reg) = registry(b, 3).await;
        reg.add_owner(staff("j.devries"), &ict()).await.unwrap();
        let lost = reg
            .register_device(laptop("j.devries", &["00:1b:21:0a:bc:01"]), &ict())
            .await
            .unwrap();
        let gone = reg
            .register_device(laptop("j.devries", &["00:1b:21:0a:bc:02"]), &ict())
            .await
            .unwrap();
        let kept = reg
            .register_device(laptop("j.devries", &["00:1b:21:0a:bc:03"]), &ict())
            .await
            .unwrap();
        for (dev, serial, fill) in [(&lost, "01", 'c'), (&gone, "02", 'd'), (&kept, "03", 'e')] {
            reg.record_certificate(dev.id, certificate(serial, fill, 30), &ict())
                .await
                .unwrap();
        }
        assert!(reg.revocations(now()).await.unwrap().is_empty());
        let later = Change {
            actor: "ict.beheer".into(),
            now: now() + Duration::hours(2),
        };
        reg.set_device_status(&DeviceRef::Id(lost.id), DeviceStatus::Lost, None, &later)
            .await
            .unwrap();
        reg.set_device_status(
            &DeviceRef::Id(gone.id),
            DeviceStatus::Revoked,
            Some("gestolen".into()),
            &later,
        )
        .await
        .unwrap();
        let mut revocations = reg.revocations(later.now).await.unwrap();
        revocations.sort_by(|a, b| a.serial.cmp(&b.serial));
        let causes: Vec<_> = revocations
            .iter()
            .map(|r| (r.serial.as_str(), r.cause, r.at))
            .collect();
        assert_eq!(
            causes,
            vec![
                ("01", RevocationCause::DeviceLost, later.now),
                ("02", RevocationCause::DeviceRevoked, later.now),
            ]
        );
        // found again: the hold is released
        reg.set_device_status(&DeviceRef::Id(lost.id), DeviceStatus::Active, None, &later)
            .await
            .unwrap();
        let revocations = reg.revocations(later.now).await.unwrap();
        assert_eq!(revocations.len(), 1);
        assert_eq!(revocations[0].serial, "02");
    }
);

both_stores!(
    no_certificate_for_a_revoked_device_or_past_the_contract,
    |b| async move {
        let (db, reg) = registry(b, 3).await;
        reg.add_owner(temp("t.tijdelijk", "2026-12-31"), &ict())
            .await
            .unwrap();
        let dev = reg
            .register_device(laptop("t.tijdelijk", &["00:1b:21:0a:bc:01"]), &ict())
            .await
            .unwrap();
        let (subject, owner) = reg
            .certificate_subject(&DeviceRef::Id(dev.id), now())
            .await
            .unwrap();
        assert_eq!(subject.id, dev.id);
        assert_eq!(owner.username, "t.tijdelijk");
        let audit_before = audit_len(&reg).await;
        // 2027-01-01 00:00 in Amsterdam is the end of the contract
        let err = reg
            .record_certificate(dev.id, certificate("01", 'a', 60), &ict())
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Field(ref f) if f.field == "not_after"),
            "{err}"
        );
        reg.set_device_status(
            &DeviceRef::Id(dev.id),
            DeviceStatus::Revoked,
            Some("uit dienst".into()),
            &ict(),
        )
        .await
        .unwrap();
        let err = reg
            .certificate_subject(&DeviceRef::Id(dev.id), now())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::DeviceNotActive {
                    status: DeviceStatus::Revoked,
                    ..
                }
            ),
            "{err}"
        );
        let err = reg
            .record_certificate(dev.id, certificate("02", 'b', 10), &ict())
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::DeviceNotActive { .. }),
            "{err}"
        );
        assert_eq!(db.count("certificates").await, 0);
        assert_eq!(
            audit_len(&reg).await,
            audit_before + 1,
            "only the revocation"
        );
        let stored = reg.device(dev.id).await.unwrap().unwrap();
        assert_eq!(stored.cert_fingerprint, None);
        assert_eq!(stored.cert_serial, None);
    }
);

both_stores!(
    no_certificate_for_a_disabled_or_expired_owner,
    |b| async move {
        let (_db, reg) = registry(b, 3).await;
        reg.add_owner(temp("t.tijdelijk", "2026-12-31"), &ict())
            .await
            .unwrap();
        let dev = reg
            .register_device(laptop("t.tijdelijk", &["00:1b:21:0a:bc:01"]), &ict())
            .await
            .unwrap();
        let after_contract = now() + Duration::days(40);
        let err = reg
            .certificate_subject(&DeviceRef::Id(dev.id), after_contract)
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::OwnerExpired { .. }), "{err}");
        reg.set_owner_disabled("t.tijdelijk", true, None, &ict())
            .await
            .unwrap();
        let err = reg
            .record_certificate(dev.id, certificate("01", 'a', 10), &ict())
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::OwnerDisabled(_)), "{err}");
        // bad input is refused before the store is asked
        let mut bad = certificate("XYZ", 'a', 10);
        let err = reg
            .record_certificate(dev.id, bad.clone(), &ict())
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Field(ref f) if f.field == "serial"),
            "{err}"
        );
        bad.serial = "01".into();
        bad.fingerprint = "ab".into();
        let err = reg
            .record_certificate(dev.id, bad, &ict())
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Field(ref f) if f.field == "fingerprint"),
            "{err}"
        );
    }
);

both_stores!(
    accounting_replayed_from_any_point_changes_nothing,
    |b| async move {
        // issue 11: the accounting spool's replay may apply a suffix of what it already applied
        // (a crash between applying records and saving its cursor); whatever the point, the
        // sessions must come out as they were
        use poortwachter::activity::{AcctKind, SessionFilter};
        enum Op {
            Acct(Box<poortwachter::activity::AccountingUpdate>),
            Restart(chrono::DateTime<Utc>),
        }
        let (db, reg) = registry(b, 3).await;
        let shared = reg.store_arc();
        let store = shared.as_ref();
        let t0 = now();
        let s = |n: i64| t0 + Duration::seconds(n);
        let ops = [
            Op::Acct(Box::new(acct(AcctKind::Start, "A", s(0), 0))),
            Op::Acct(Box::new(acct(AcctKind::InterimUpdate, "A", s(60), 60))),
            Op::Acct(Box::new(acct(AcctKind::Start, "B", s(10), 0))),
            // the access point restarts: A and B end; what starts after stays open
            Op::Restart(s(100)),
            Op::Acct(Box::new(acct(AcctKind::Start, "A", s(200), 0))),
            Op::Acct(Box::new(acct(AcctKind::InterimUpdate, "A", s(260), 60))),
            Op::Acct(Box::new(acct(AcctKind::Stop, "A", s(320), 120))),
            Op::Acct(Box::new(acct(AcctKind::Start, "C", s(330), 0))),
            Op::Acct(Box::new(acct(AcctKind::InterimUpdate, "C", s(390), 60))),
        ];
        let apply = |from: usize| {
            let ops = &ops;
            async move {
                for op in &ops[from..] {
                    match op {
                        Op::Acct(u) => store.record_accounting(u).await.unwrap(),
                        Op::Restart(at) => {
                            store
                                .close_sessions("ap-1", "10.0.0.1", *at, "NAS-Reboot")
                                .await
                                .unwrap();
                        }
                    }
                }
            }
        };
        let all = SessionFilter {
            limit: Some(100),
            ..Default::default()
        };
        apply(0).await;
        let once = store.sessions(&all).await.unwrap();
        assert_eq!(once.len(), 4, "{once:#?}");
        assert_eq!(
            once.iter().filter(|s| s.stopped_at.is_none()).count(),
            1,
            "only C is open: {once:#?}"
        );
        for from in 0..ops.len() {
            apply(from).await;
            assert_eq!(
                store.sessions(&all).await.unwrap(),
                once,
                "replayed from record {from}"
            );
        }
        assert_eq!(db.count("sessions").await, 4);
    }
);
