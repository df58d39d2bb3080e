//! The AVG on both stores: `owner export` holds every row about the person; after erasure no
//! table holds their name, e-mail address, username or MACs in any spelling, and the audit
//! log still verifies (it was only appended to); retention deletes old sessions; a changed
//! audit row is found.

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use poortwachter::activity::{AccountingUpdate, AcctKind, DecisionRecord, NasIdentity};
use poortwachter::mac::MacAddr;
use poortwachter::model::{DeviceKind, NewDevice, NewOwner, Role};
use poortwachter::registry::coa::CoaRecord;
use poortwachter::registry::privacy::Retention;
use poortwachter::registry::{
    AuditFilter, Change, DeviceRef, NewCertificate, OwnerEdit, Registry, RegistryError, Rules,
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

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

fn at(actor: &str, now: DateTime<Utc>) -> Change {
    Change {
        actor: actor.into(),
        now,
    }
}

const MACS: [&str; 2] = ["02:5a:7e:11:22:33", "02:5a:7e:44:55:66"];

/// Every spelling of the person's personal data that must be gone after erasure.
fn traces() -> Vec<String> {
    let mut t: Vec<String> = [
        "p.persoonlijk",
        "Pietje Persoonlijk",
        "pietje@privé.example",
        "Afdeling Geheim",
        "Laptop van Pietje",
        "vertrokken naar elders",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for m in MACS {
        t.push(m.to_string());
        t.push(m.replace(':', ""));
        t.push(m.replace(':', "-").to_uppercase());
    }
    t
}

fn acct(
    kind: AcctKind,
    sid: &str,
    mac: &str,
    device: uuid::Uuid,
    now: DateTime<Utc>,
) -> AccountingUpdate {
    AccountingUpdate {
        kind,
        at: now,
        nas: "ap-1".into(),
        nas_key: "ap-hal-1".into(),
        acct_session_id: sid.into(),
        nas_ip: Some("10.0.0.1".into()),
        nas_port: Some(1),
        username: Some(mac.replace(':', "")),
        mac: MacAddr::parse_any(mac).ok(),
        ssid: Some("Werkplek".into()),
        device_id: Some(device),
        owner: Some("p.persoonlijk".into()),
        framed_ip: Some("10.1.2.3".into()),
        class: None,
        session_time: 60,
        input_octets: 1,
        output_octets: 1,
        input_packets: 1,
        output_packets: 1,
        terminate_cause: (kind == AcctKind::Stop).then(|| "User-Request".into()),
        raw: NasIdentity {
            nas_identifier: Some("ap-hal-1".into()),
            calling_station_id: Some(mac.replace(':', "-").to_uppercase()),
            ..NasIdentity::default()
        },
    }
}

fn decision(mac: &str, device: uuid::Uuid, now: DateTime<Utc>) -> DecisionRecord {
    DecisionRecord {
        id: 0,
        at: now,
        nas: "ap-1".into(),
        nas_ip: Some("10.0.0.1".into()),
        username: mac.replace(':', ""),
        mac: MacAddr::parse_any(mac).ok(),
        ssid: Some("Werkplek".into()),
        method: "mab".into(),
        device_id: Some(device),
        owner: Some("p.persoonlijk".into()),
        outcome: "accept".into(),
        vlan: Some(100),
        reason: "compliant".into(),
        message: "Pietje Persoonlijk: toegang".into(),
        repeats: 0,
        degraded: false,
    }
}

/// The person with a device, a certificate, a posture report, two sessions, decisions, a
/// Disconnect record and edits; returns the device id.
async fn a_working_life(reg: &Registry) -> uuid::Uuid {
    let hr = at("ict.anna", t0());
    reg.add_owner(
        NewOwner {
            username: "p.persoonlijk".into(),
            display_name: "Pietje Persoonlijk".into(),
            email: Some("pietje@privé.example".into()),
            role: Role::Temp,
            department: Some("Afdeling Geheim".into()),
            valid_from: None,
            valid_until: Some("2027-06-30".parse().unwrap()),
        },
        &hr,
    )
    .await
    .unwrap();
    let macs: Vec<String> = MACS.iter().map(|m| m.to_string()).collect();
    let device = reg
        .register_device(
            NewDevice::from_input(
                "p.persoonlijk",
                &macs,
                "Laptop van Pietje",
                DeviceKind::Laptop,
            )
            .unwrap()
            .0,
            &hr,
        )
        .await
        .unwrap();
    reg.record_certificate(
        device.id,
        NewCertificate {
            serial: "5e71a1".into(),
            fingerprint: "5e".repeat(32),
            not_before: t0(),
            not_after: t0() + Duration::days(200),
        },
        &hr,
    )
    .await
    .unwrap();
    let report: poortwachter::posture::PostureReport = serde_json::from_value(serde_json::json!({
        "os_name": "Windows", "os_version": "11", "antivirus_enabled": true,
        "firewall_enabled": true, "disk_encrypted": true, "collected_at": t0().to_rfc3339()
    }))
    .unwrap();
    reg.submit_posture(
        &DeviceRef::Id(device.id),
        report,
        &poortwachter::config::ops::ComplianceConfig::default(),
        &hr,
    )
    .await
    .unwrap();
    reg.edit_owner(
        "p.persoonlijk",
        OwnerEdit {
            valid_until: Some(Some("2027-12-31".parse().unwrap())),
            ..OwnerEdit::default()
        },
        &hr,
    )
    .await
    .unwrap();
    let store = reg.store_arc();
    let day = t0() + Duration::days(1);
    store
        .record_accounting(&acct(AcctKind::Start, "s-1", MACS[0], device.id, day))
        .await
        .unwrap();
    store
        .record_accounting(&acct(
            AcctKind::Stop,
            "s-1",
            MACS[0],
            device.id,
            day + Duration::hours(8),
        ))
        .await
        .unwrap();
    store
        .record_accounting(&acct(
            AcctKind::Start,
            "s-2",
            MACS[1],
            device.id,
            day + Duration::days(1),
        ))
        .await
        .unwrap();
    store
        .insert_decisions(&[
            decision(MACS[0], device.id, day),
            decision(MACS[1], device.id, day),
        ])
        .await
        .unwrap();
    let session = reg
        .sessions(&poortwachter::activity::SessionFilter {
            active_only: true,
            mac: MacAddr::parse_any(MACS[1]).ok(),
            limit: Some(5),
        })
        .await
        .unwrap()
        .remove(0);
    store
        .insert_coa_request(&CoaRecord {
            id: 0,
            session_id: Some(session.id),
            acct_session_id: "s-2".into(),
            nas: "ap-1".into(),
            nas_addr: "10.0.0.1:3799".into(),
            device_id: Some(device.id),
            kind: "disconnect".into(),
            reason: "owner.disable by ict.anna".into(),
            actor: "ict.anna".into(),
            sent_at: day + Duration::days(2),
            answered_at: Some(day + Duration::days(2)),
            result: "ack".into(),
            error_cause: None,
            attempts: 1,
        })
        .await
        .unwrap();
    device.id
}

both_stores!(an_export_holds_every_row_about_the_person, |b| async move {
    let (db, reg) = registry(b).await;
    let device = a_working_life(&reg).await;
    // someone else, whose rows must not be in it
    reg.add_owner(
        NewOwner {
            username: "a.ander".into(),
            display_name: "Anna Ander".into(),
            email: None,
            role: Role::Staff,
            department: None,
            valid_from: None,
            valid_until: None,
        },
        &at("ict.anna", t0()),
    )
    .await
    .unwrap();
    let export = reg
        .export_owner("P.PERSOONLIJK", t0() + Duration::days(5))
        .await
        .unwrap();
    assert_eq!(export.owner.username, "p.persoonlijk");
    assert_eq!(export.owner.email.as_deref(), Some("pietje@privé.example"));
    assert_eq!(export.devices.len(), 1);
    assert_eq!(export.devices[0].device.id, device);
    assert_eq!(export.devices[0].device.macs.len(), 2);
    assert_eq!(export.devices[0].certificates.len(), 1);
    assert_eq!(export.devices[0].posture_reports.len(), 1);
    // every row of the tables that hold something of theirs
    assert_eq!(export.sessions.len() as i64, db.count("sessions").await);
    assert_eq!(export.decisions.len() as i64, db.count("decisions").await);
    assert_eq!(
        export.disconnects.len() as i64,
        db.count("coa_requests").await
    );
    // the audit entries about them (add, device, certificate, posture, edit): all but the
    // other owner's
    assert_eq!(export.audit.len() as i64, db.count("audit_log").await - 1);
    assert!(export
        .audit
        .iter()
        .all(|e| e.target_id == "p.persoonlijk" || e.target_id == device.to_string()));
    let actions: Vec<&str> = export.audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "owner.add",
            "device.register",
            "device.issue_cert",
            "device.posture",
            "owner.edit"
        ]
    );
    // the personal data is in the export, read back whole
    assert_eq!(
        export.audit[0].after.as_ref().unwrap()["email"],
        "pietje@privé.example"
    );
    let text = serde_json::to_string(&export).unwrap();
    assert!(
        !text.contains("a.ander"),
        "another person's data in the export"
    );
    assert!(matches!(
        reg.export_owner("niemand", t0()).await.unwrap_err(),
        RegistryError::UnknownOwner(_)
    ));
});

both_stores!(after_erasure_no_table_holds_the_person, |b| async move {
    let (db, reg) = registry(b).await;
    let device = a_working_life(&reg).await;
    let later = t0() + Duration::days(10);
    // not before they left
    let err = reg
        .erase_owner("p.persoonlijk", &at("ict.anna", later))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::OwnerActive(_)), "{err}");
    reg.set_owner_disabled(
        "p.persoonlijk",
        true,
        Some("vertrokken naar elders".into()),
        &at("ict.anna", later),
    )
    .await
    .unwrap();
    let before = db.dump().await;
    for t in traces() {
        assert!(before.contains(&t), "the test data holds {t} before");
    }
    let audit_rows = db.count("audit_log").await;
    let erased = reg
        .erase_owner("p.persoonlijk", &at("ict.anna", later))
        .await
        .unwrap();
    assert!(
        erased.username.starts_with("gewist-"),
        "{}",
        erased.username
    );
    assert_eq!(erased.erased_at, Some(later));
    let after = db.dump().await;
    for t in traces() {
        let hits: Vec<&str> = after.lines().filter(|l| l.contains(&t)).collect();
        assert!(hits.is_empty(), "{t} is still held: {hits:#?}");
    }
    // what stays: the anonymous device with its certificate (for the CRL), the audit rows
    assert_eq!(db.count("devices").await, 1);
    assert_eq!(db.count("certificates").await, 1);
    assert_eq!(db.count("device_macs").await, 0);
    assert_eq!(db.count("sessions").await, 0);
    assert_eq!(db.count("decisions").await, 0);
    assert_eq!(db.count("coa_requests").await, 0);
    assert_eq!(db.count("posture_reports").await, 0);
    assert_eq!(db.count("audit_log").await, audit_rows + 1, "only appended");
    let crl = reg.revocations(later).await.unwrap();
    assert_eq!(crl.len(), 1, "the certificate stays on the CRL");
    assert_eq!(crl[0].device_id, device);
    // the audit log verifies, and says what happened, not to whom
    let v = reg.verify_audit().await.unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.verified as i64, audit_rows + 1);
    let entries = reg
        .audit(&AuditFilter {
            target_id: Some(erased.id.to_string()),
            limit: Some(100),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(entries[0].action, "owner.erase");
    assert!(entries[1..].iter().all(|e| e.erased), "{entries:#?}");
    assert_eq!(entries.last().unwrap().action, "owner.add");
    assert_eq!(entries.last().unwrap().actor, "ict.anna");
    // again: nothing more to do
    let again = reg
        .erase_owner(&erased.username, &at("ict.anna", later))
        .await
        .unwrap();
    assert_eq!(again, erased);
    assert_eq!(db.count("audit_log").await, audit_rows + 1);
});

both_stores!(
    retention_and_erasure_after_leaving_run_by_the_sweep,
    |b| async move {
        let (db, reg) = registry(b).await;
        a_working_life(&reg).await;
        let retention = Retention {
            sessions: Duration::days(180),
            erase_after: Some(Duration::days(90)),
        };
        // a month on: nothing is old enough
        let sweep = reg
            .privacy_sweep(&retention, &at("privacy", t0() + Duration::days(30)))
            .await
            .unwrap();
        assert_eq!((sweep.sessions, sweep.erased.len()), (0, 0));
        // half a year on: the stopped session goes, the open one stays
        let sweep = reg
            .privacy_sweep(&retention, &at("privacy", t0() + Duration::days(200)))
            .await
            .unwrap();
        assert_eq!(sweep.sessions, 1);
        assert_eq!(db.count("sessions").await, 1);
        assert!(sweep.erased.is_empty(), "still under contract");
        // the contract ends on 2027-12-31; 90 days after, the sweep erases
        let ended = Utc.with_ymd_and_hms(2028, 1, 1, 0, 0, 0).unwrap();
        let due = reg
            .erasure_due(Duration::days(90), ended + Duration::days(91))
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        let sweep = reg
            .privacy_sweep(&retention, &at("privacy", ended + Duration::days(89)))
            .await
            .unwrap();
        assert!(sweep.erased.is_empty(), "not yet 90 days");
        let sweep = reg
            .privacy_sweep(&retention, &at("privacy", ended + Duration::days(91)))
            .await
            .unwrap();
        assert_eq!(sweep.erased.len(), 1);
        assert!(!db.dump().await.contains("p.persoonlijk"));
        assert!(reg.verify_audit().await.unwrap().ok());
    }
);

both_stores!(a_changed_audit_row_is_found, |b| async move {
    let (db, reg) = registry(b).await;
    a_working_life(&reg).await;
    assert!(reg.verify_audit().await.unwrap().ok());
    // someone with database rights lifts the append-only trigger and rewrites an entry
    let (lift, restore) = match b {
        Backend::Sqlite => ("DROP TRIGGER audit_log_no_update", "SELECT 1"),
        Backend::Postgres => (
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
            "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update",
        ),
    };
    db.execute(lift).await.unwrap();
    db.execute("UPDATE audit_log SET actor = 'iemand anders' WHERE id = 2")
        .await
        .unwrap();
    db.execute(restore).await.unwrap();
    let v = reg.verify_audit().await.unwrap();
    assert_eq!(v.broken_at, Some(2), "{v:?}");
    assert!(!v.ok());
});
