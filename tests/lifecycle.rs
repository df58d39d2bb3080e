//! The owner's and the device's life cycle on both stores: feeds (the HR import, a full export
//! that disables the missing, the directory's claims), edits, disables with a reason, deletes.
//! Each asserts on the rows and on the audit log, and that a refused change writes nothing.

mod support;

use chrono::{NaiveDate, TimeZone, Utc};
use poortwachter::mac::MacAddr;
use poortwachter::model::{DeviceKind, NewDevice, NewOwner, OwnerSource, Role};
use poortwachter::registry::{
    AuditFilter, Change, ChangeKind, DeviceEdit, DeviceQuery, DeviceRef, ImportColumns,
    ImportOptions, ImportRow, NewCertificate, OwnerEdit, OwnerQuery, Registry, RegistryError,
    Rules,
};
use support::{Backend, TestDb};

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

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
}

fn by(actor: &str) -> Change {
    Change {
        actor: actor.into(),
        now: now(),
    }
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn person(username: &str, role: Role, until: Option<&str>) -> NewOwner {
    NewOwner {
        username: username.into(),
        display_name: format!("Persoon {username}"),
        email: Some(format!("{username}@gemeente.example")),
        role,
        department: Some("Burgerzaken".into()),
        valid_from: None,
        valid_until: until.map(date),
    }
}

fn rows(people: &[NewOwner]) -> Vec<ImportRow> {
    people
        .iter()
        .enumerate()
        .map(|(i, p)| ImportRow {
            line: i as u64 + 2,
            owner: Ok(p.clone()),
            external_id: None,
            named: None,
        })
        .collect()
}

fn full_export(source: OwnerSource, max_disable: Option<u64>) -> ImportOptions {
    ImportOptions {
        source,
        disable_missing: true,
        missing_reason: "niet meer in de HR-export".into(),
        max_disable,
        ..ImportOptions::import(ImportColumns::ALL, false)
    }
}

async fn audit_actions(reg: &Registry) -> Vec<String> {
    reg.audit(&AuditFilter {
        limit: Some(10_000),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_iter()
    .map(|e| format!("{} {}", e.action, e.target_id))
    .collect()
}

fn mac(s: &str) -> MacAddr {
    MacAddr::parse_any(s).unwrap()
}

fn laptop(owner: &str, macs: &[&str]) -> NewDevice {
    let macs: Vec<String> = macs.iter().map(|m| m.to_string()).collect();
    NewDevice::from_input(owner, &macs, "Persoonlijke laptop", DeviceKind::Laptop)
        .expect("valid device")
        .0
}

both_stores!(
    a_full_export_disables_the_missing_and_leaves_hand_added_alone,
    |b| async move {
        let (_db, reg) = registry(b).await;
        let hr = [
            person("a.anna", Role::Staff, None),
            person("b.bert", Role::Staff, None),
            person("c.cees", Role::Temp, Some("2027-03-31")),
        ];
        let first = reg
            .import_owners(
                rows(&hr),
                &ImportOptions::import(ImportColumns::ALL, false),
                &by("hr"),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!(first.added, 3);
        assert_eq!(
            reg.owner("a.anna").await.unwrap().unwrap().source,
            OwnerSource::Import
        );
        // an external added by hand, not in HR's export
        reg.add_owner(person("x.extern", Role::Staff, None), &by("ict"))
            .await
            .unwrap();
        let before = reg.owners().await.unwrap();
        let audit_before = audit_actions(&reg).await;

        // the next export has only anna: bert and cees would be disabled
        let only_anna = rows(&hr[..1]);
        let err = reg
            .import_owners(
                only_anna.clone(),
                &full_export(OwnerSource::Import, Some(1)),
                &by("hr"),
                &mut |_, _| {},
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::TooManyMissing {
                    missing: 2,
                    max: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("--confirm-disable 2"), "{err}");
        assert_eq!(
            reg.owners().await.unwrap(),
            before,
            "refused: nothing written"
        );

        // a dry run reports and writes nothing
        let dry = reg
            .import_owners(
                only_anna.clone(),
                &ImportOptions {
                    dry_run: true,
                    ..full_export(OwnerSource::Import, None)
                },
                &by("hr"),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert!(dry.dry_run);
        assert_eq!((dry.disabled, dry.unchanged), (2, 1));
        let disabled: Vec<&str> = dry
            .changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Disabled)
            .map(|c| c.username.as_str())
            .collect();
        assert_eq!(disabled, ["b.bert", "c.cees"]);
        assert_eq!(
            reg.owners().await.unwrap(),
            before,
            "dry run: nothing written"
        );
        assert_eq!(audit_actions(&reg).await, audit_before);

        // confirmed
        let done = reg
            .import_owners(
                only_anna,
                &full_export(OwnerSource::Import, Some(2)),
                &by("hr"),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!((done.disabled, done.unchanged), (2, 1));
        let bert = reg.owner("b.bert").await.unwrap().unwrap();
        assert!(bert.disabled);
        assert_eq!(
            bert.disabled_reason.as_deref(),
            Some("niet meer in de HR-export")
        );
        assert_eq!(bert.disabled_by_source, Some(OwnerSource::Import));
        assert_eq!(bert.disabled_at, Some(now()));
        let extern_ = reg.owner("x.extern").await.unwrap().unwrap();
        assert!(
            !extern_.disabled,
            "an owner added by hand is not the import's"
        );
        let actions = audit_actions(&reg).await;
        assert!(actions.contains(&"owner.import.disable b.bert".to_string()));
        assert!(actions.contains(&"owner.import.disable c.cees".to_string()));

        // bert is back in the next export: enabled again by the feed that disabled him
        let back = reg
            .import_owners(
                rows(&hr[..2]),
                &full_export(OwnerSource::Import, Some(0)),
                &by("hr"),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!(back.enabled, 1);
        let bert = reg.owner("b.bert").await.unwrap().unwrap();
        assert!(
            !bert.disabled && bert.disabled_reason.is_none() && bert.disabled_by_source.is_none()
        );
        // but someone ICT disabled by hand stays disabled when the export names them
        reg.set_owner_disabled("a.anna", true, Some("laptop kwijt".into()), &by("ict"))
            .await
            .unwrap();
        reg.import_owners(
            rows(&hr[..2]),
            &full_export(OwnerSource::Import, Some(0)),
            &by("hr"),
            &mut |_, _| {},
        )
        .await
        .unwrap();
        let anna = reg.owner("a.anna").await.unwrap().unwrap();
        assert!(anna.disabled);
        assert_eq!(anna.disabled_reason.as_deref(), Some("laptop kwijt"));
        assert_eq!(anna.disabled_by_source, None);
    }
);

both_stores!(
    a_directory_feed_takes_over_the_import_but_not_hand_added,
    |b| async move {
        let (_db, reg) = registry(b).await;
        reg.import_owners(
            rows(&[person("a.anna", Role::Staff, None)]),
            &ImportOptions::import(ImportColumns::ALL, false),
            &by("hr"),
            &mut |_, _| {},
        )
        .await
        .unwrap();
        reg.add_owner(person("h.hand", Role::Staff, None), &by("ict"))
            .await
            .unwrap();
        let hand = reg.owner("h.hand").await.unwrap().unwrap();
        let mut renamed = person("h.hand", Role::Staff, None);
        renamed.display_name = "Overschreven".into();
        let directory = ImportOptions {
            missing_reason: "niet (meer) actief in de directory".into(),
            ..full_export(OwnerSource::Directory, None)
        };
        let report = reg
            .import_owners(
                vec![
                    ImportRow {
                        line: 1,
                        owner: Ok(person("a.anna", Role::Staff, None)),
                        external_id: Some("5f1c9a2e-anna".into()),
                        named: None,
                    },
                    ImportRow {
                        line: 2,
                        owner: Ok(renamed),
                        external_id: None,
                        named: None,
                    },
                ],
                &directory,
                &by("sync:ldap"),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!((report.updated, report.left_alone), (1, 1), "{report:?}");
        let anna = reg.owner("a.anna").await.unwrap().unwrap();
        assert_eq!(anna.source, OwnerSource::Directory);
        assert_eq!(anna.external_id.as_deref(), Some("5f1c9a2e-anna"));
        assert_eq!(reg.owner("h.hand").await.unwrap().unwrap(), hand);
        let change = report
            .changes
            .iter()
            .find(|c| c.username == "h.hand")
            .unwrap();
        assert_eq!(change.kind, ChangeKind::LeftAlone);
        assert_eq!(change.managed_by, Some(OwnerSource::Manual));
        // the import no longer touches what the directory manages
        let report = reg
            .import_owners(
                rows(&[person("a.anna", Role::Temp, Some("2027-01-31"))]),
                &ImportOptions::import(ImportColumns::ALL, false),
                &by("hr"),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!(report.left_alone, 1);
        assert_eq!(
            reg.owner("a.anna").await.unwrap().unwrap().role,
            Role::Staff
        );
        // an empty directory answer disables everyone it manages, unless the safeguard holds
        let err = reg
            .import_owners(
                Vec::new(),
                &ImportOptions {
                    max_disable: Some(0),
                    ..directory.clone()
                },
                &by("sync:ldap"),
                &mut |_, _| {},
            )
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            RegistryError::TooManyMissing { missing: 1, .. }
        ));
        assert!(!reg.owner("a.anna").await.unwrap().unwrap().disabled);
    }
);

both_stores!(
    owner_edit_extends_a_contract_and_refuses_bad_input,
    |b| async move {
        let (_db, reg) = registry(b).await;
        reg.add_owner(person("t.temp", Role::Temp, Some("2026-12-31")), &by("ict"))
            .await
            .unwrap();
        let before = reg.owner("t.temp").await.unwrap().unwrap();
        let extended = reg
            .edit_owner(
                "T.TEMP",
                OwnerEdit {
                    valid_until: Some(Some(date("2027-06-30"))),
                    department: Some(None),
                    ..OwnerEdit::default()
                },
                &by("ict"),
            )
            .await
            .unwrap();
        assert_eq!(extended.valid_until, Some(date("2027-06-30")));
        assert_eq!(extended.department, None);
        assert_eq!(extended.username, "t.temp");
        assert_eq!(extended.id, before.id);
        let audit = reg
            .audit(&AuditFilter {
                target_id: Some("t.temp".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(audit[0].action, "owner.edit");
        assert_eq!(audit[0].actor, "ict");
        assert_eq!(
            audit[0].before.as_ref().unwrap()["valid_until"],
            "2026-12-31"
        );
        assert_eq!(
            audit[0].after.as_ref().unwrap()["valid_until"],
            "2027-06-30"
        );
        let entries = audit.len();

        // refused, each naming its field, writing nothing
        for (edit, field) in [
            (
                OwnerEdit {
                    valid_until: Some(None),
                    ..OwnerEdit::default()
                },
                "until",
            ),
            (
                OwnerEdit {
                    email: Some(Some("geen-adres".into())),
                    ..OwnerEdit::default()
                },
                "email",
            ),
            (
                OwnerEdit {
                    display_name: Some("  ".into()),
                    ..OwnerEdit::default()
                },
                "name",
            ),
            (
                OwnerEdit {
                    valid_from: Some(Some(date("2027-07-01"))),
                    ..OwnerEdit::default()
                },
                "until",
            ),
        ] {
            let err = reg
                .edit_owner("t.temp", edit, &by("ict"))
                .await
                .unwrap_err();
            let RegistryError::Field(f) = &err else {
                panic!("expected a field error, got {err}");
            };
            assert_eq!(f.field, field, "{err}");
        }
        assert_eq!(reg.owner("t.temp").await.unwrap().unwrap(), extended);
        // an edit that changes nothing writes nothing
        reg.edit_owner(
            "t.temp",
            OwnerEdit {
                role: Some(Role::Temp),
                ..OwnerEdit::default()
            },
            &by("ict"),
        )
        .await
        .unwrap();
        let after = reg
            .audit(&AuditFilter {
                target_id: Some("t.temp".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(after.len(), entries);
        assert!(matches!(
            reg.edit_owner("niemand", OwnerEdit::default(), &by("ict"))
                .await
                .unwrap_err(),
            RegistryError::UnknownOwner(_)
        ));
        // searching: by name words, by e-mail, by source
        let found = reg
            .find_owners(&OwnerQuery {
                search: Some("persoon TEMP".into()),
                ..OwnerQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        let none = reg
            .find_owners(&OwnerQuery {
                source: Some(OwnerSource::Scim),
                ..OwnerQuery::default()
            })
            .await
            .unwrap();
        assert!(none.is_empty());
    }
);

both_stores!(
    owner_delete_is_refused_while_devices_remain,
    |b| async move {
        let (db, reg) = registry(b).await;
        reg.add_owner(person("f.fout", Role::Staff, None), &by("ict"))
            .await
            .unwrap();
        let device = reg
            .register_device(laptop("f.fout", &["02:00:00:00:00:01"]), &by("ict"))
            .await
            .unwrap();
        let err = reg.delete_owner("f.fout", &by("ict")).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::OwnerHasDevices { devices: 1, .. }),
            "{err}"
        );
        assert_eq!(db.count("owners").await, 1);
        reg.delete_device(&DeviceRef::Id(device.id), &by("ict"))
            .await
            .unwrap();
        assert_eq!(db.count("devices").await, 0);
        assert_eq!(db.count("device_macs").await, 0);
        let gone = reg.delete_owner("F.FOUT", &by("ict")).await.unwrap();
        assert_eq!(gone.username, "f.fout");
        assert_eq!(db.count("owners").await, 0);
        let actions = audit_actions(&reg).await;
        assert_eq!(actions[0], "owner.delete f.fout");
        assert_eq!(actions[1], format!("device.delete {}", device.id));
        // the username is free again
        reg.add_owner(person("f.fout", Role::Staff, None), &by("ict"))
            .await
            .unwrap();
    }
);

both_stores!(
    device_edit_moves_macs_and_delete_waits_for_the_certificate,
    |b| async move {
        let (db, reg) = registry(b).await;
        reg.add_owner(person("p.phone", Role::Staff, None), &by("ict"))
            .await
            .unwrap();
        let phone = reg
            .register_device(laptop("p.phone", &["02:00:00:00:00:0a"]), &by("ict"))
            .await
            .unwrap();
        let other = reg
            .register_device(laptop("p.phone", &["02:00:00:00:00:0b"]), &by("ict"))
            .await
            .unwrap();
        // a phone's new private MAC: added, the old one removed; id and history stay
        let edited = reg
            .edit_device(
                &DeviceRef::Mac(mac("02:00:00:00:00:0a")),
                DeviceEdit {
                    label: Some("Telefoon (privé)".into()),
                    kind: Some(DeviceKind::Phone),
                    add_macs: vec![mac("02:00:00:00:00:0c")],
                    remove_macs: vec![mac("02:00:00:00:00:0a")],
                },
                &by("ict"),
            )
            .await
            .unwrap();
        assert_eq!(edited.id, phone.id);
        assert_eq!(edited.macs, vec![mac("02:00:00:00:00:0c")]);
        assert_eq!(edited.kind, DeviceKind::Phone);
        assert!(reg
            .device_by_mac(mac("02:00:00:00:00:0a"))
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            reg.device_by_mac(mac("02:00:00:00:00:0c"))
                .await
                .unwrap()
                .unwrap()
                .id,
            phone.id
        );
        // the freed MAC can go to another device
        reg.edit_device(
            &DeviceRef::Id(other.id),
            DeviceEdit {
                add_macs: vec![mac("02:00:00:00:00:0a")],
                ..DeviceEdit::default()
            },
            &by("ict"),
        )
        .await
        .unwrap();
        let before = reg.devices(None).await.unwrap();
        // refused, writing nothing: a MAC another device holds, removing the last one, a MAC
        // the device does not have
        let taken = reg
            .edit_device(
                &DeviceRef::Id(phone.id),
                DeviceEdit {
                    add_macs: vec![mac("02:00:00:00:00:0b")],
                    ..DeviceEdit::default()
                },
                &by("ict"),
            )
            .await
            .unwrap_err();
        assert!(matches!(taken, RegistryError::MacTaken { .. }), "{taken}");
        let last = reg
            .edit_device(
                &DeviceRef::Id(phone.id),
                DeviceEdit {
                    remove_macs: vec![mac("02:00:00:00:00:0c")],
                    ..DeviceEdit::default()
                },
                &by("ict"),
            )
            .await
            .unwrap_err();
        assert!(last.to_string().contains("at least one MAC"), "{last}");
        let not_its = reg
            .edit_device(
                &DeviceRef::Id(phone.id),
                DeviceEdit {
                    remove_macs: vec![mac("02:00:00:00:00:0b")],
                    ..DeviceEdit::default()
                },
                &by("ict"),
            )
            .await
            .unwrap_err();
        assert!(matches!(&not_its, RegistryError::Field(f) if f.field == "remove_mac"));
        assert_eq!(reg.devices(None).await.unwrap(), before);

        // a device with a valid certificate is not deleted: it stays on the CRL until it ends
        reg.record_certificate(
            phone.id,
            NewCertificate {
                serial: "0a1b".into(),
                fingerprint: "ab".repeat(32),
                not_before: now() - chrono::Duration::days(1),
                not_after: now() + chrono::Duration::days(365),
            },
            &by("ca"),
        )
        .await
        .unwrap();
        let err = reg
            .delete_device(&DeviceRef::Id(phone.id), &by("ict"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::DeviceCertificateValid { .. }),
            "{err}"
        );
        assert_eq!(db.count("devices").await, 2);
        // a year and a day later it can go, certificate row and all
        let later = Change {
            actor: "ict".into(),
            now: now() + chrono::Duration::days(366),
        };
        reg.delete_device(&DeviceRef::Id(phone.id), &later)
            .await
            .unwrap();
        assert_eq!(db.count("devices").await, 1);
        assert_eq!(db.count("certificates").await, 0);
        // filters
        let compliant = reg
            .find_devices(&DeviceQuery {
                compliance: Some(poortwachter::model::Compliance::Compliant),
                ..DeviceQuery::default()
            })
            .await
            .unwrap();
        assert!(compliant.is_empty());
        let unknown = reg
            .find_devices(&DeviceQuery {
                owner: Some("p.phone".into()),
                compliance: Some(poortwachter::model::Compliance::Unknown),
                ..DeviceQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(unknown.len(), 1);
    }
);

both_stores!(disable_with_a_reason_is_kept_and_cleared, |b| async move {
    let (_db, reg) = registry(b).await;
    reg.add_owner(person("v.vertrek", Role::Staff, None), &by("ict"))
        .await
        .unwrap();
    let off = reg
        .set_owner_disabled(
            "v.vertrek",
            true,
            Some("  uit dienst per 1 december  ".into()),
            &by("ict"),
        )
        .await
        .unwrap();
    assert_eq!(
        off.disabled_reason.as_deref(),
        Some("uit dienst per 1 december")
    );
    assert_eq!(off.disabled_at, Some(now()));
    assert_eq!(reg.owner("v.vertrek").await.unwrap().unwrap(), off);
    let err = reg
        .set_owner_disabled("v.vertrek", false, Some("x".repeat(501)), &by("ict"))
        .await
        .unwrap_err();
    assert!(matches!(&err, RegistryError::Field(f) if f.field == "reason"));
    let on = reg
        .set_owner_disabled("v.vertrek", false, None, &by("ict"))
        .await
        .unwrap();
    assert!(!on.disabled && on.disabled_reason.is_none() && on.disabled_at.is_none());
});

both_stores!(
    a_bad_row_in_a_full_export_is_skipped_not_disabled,
    |b| async move {
        let (_db, reg) = registry(b).await;
        let hr = [
            person("a.anna", Role::Staff, None),
            person("b.bert", Role::Staff, None),
        ];
        reg.import_owners(
            rows(&hr),
            &ImportOptions::import(ImportColumns::ALL, false),
            &by("hr"),
            &mut |_, _| {},
        )
        .await
        .unwrap();
        // bert's row is bad this time (a typo in his role): skipped with --skip-bad, not gone
        let report = reg
            .import_owners(
                vec![
                    rows(&hr[..1]).remove(0),
                    ImportRow {
                        line: 3,
                        owner: Err("role: `medewerkr` is not a role".into()),
                        external_id: None,
                        named: Some("B.Bert".into()),
                    },
                ],
                &ImportOptions {
                    skip_bad: true,
                    ..full_export(OwnerSource::Import, Some(0))
                },
                &by("hr"),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!(
            (report.disabled, report.skipped.len()),
            (0, 1),
            "{report:?}"
        );
        assert!(!reg.owner("b.bert").await.unwrap().unwrap().disabled);
    }
);
