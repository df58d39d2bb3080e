//! Compliance posture on both stores: a report is recorded with its evaluation, the device's
//! compliance and an audit entry in one transaction; a refused report writes nothing. And the
//! command line: `device posture DEV --file r.json`, and `why MAC` showing the failed checks.

mod support;

use std::process::{Command, Output};

use chrono::{Duration, TimeZone, Utc};
use poortwachter::config::ops::ComplianceConfig;
use poortwachter::model::{Compliance, DeviceKind, DeviceStatus, NewDevice, NewOwner, Role};
use poortwachter::posture::PostureReport;
use poortwachter::registry::{AuditFilter, Change, DeviceRef, Registry, RegistryError, Rules};
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

fn change(actor: &str) -> Change {
    Change {
        actor: actor.into(),
        now: now(),
    }
}

fn rules() -> ComplianceConfig {
    let mut r = ComplianceConfig::default();
    r.min_os_versions
        .insert("windows".into(), "10.0.22631".into());
    r
}

fn passing() -> PostureReport {
    PostureReport {
        os_name: "Windows".into(),
        os_version: "10.0.22631".into(),
        pending_updates: Some(0),
        antivirus_enabled: Some(true),
        antivirus_signatures_updated: Some(now() - Duration::hours(20)),
        firewall_enabled: Some(true),
        disk_encrypted: Some(true),
        screen_lock: Some(true),
        collected_at: Some(now() - Duration::hours(1)),
        source: Some("intune".into()),
    }
}

fn failing() -> PostureReport {
    PostureReport {
        os_version: "10.0.19045".into(),
        disk_encrypted: None,
        ..passing()
    }
}

/// An owner with one laptop; returns the device reference.
async fn laptop(reg: &Registry) -> DeviceRef {
    reg.add_owner(
        NewOwner {
            username: "j.devries".into(),
            display_name: "Jan de Vries".into(),
            email: None,
            role: Role::Staff,
            department: None,
            valid_from: None,
            valid_until: None,
        },
        &change("ict.beheer"),
    )
    .await
    .unwrap();
    let (new, _) = NewDevice::from_input(
        "j.devries",
        &["00:1b:21:00:00:01".into()],
        "Persoonlijke laptop",
        DeviceKind::Laptop,
    )
    .unwrap();
    let d = reg
        .register_device(new, &change("ict.beheer"))
        .await
        .unwrap();
    DeviceRef::Id(d.id)
}

async fn counts(db: &TestDb) -> [i64; 2] {
    [
        db.count("posture_reports").await,
        db.count("audit_log").await,
    ]
}

both_stores!(a_failing_then_a_passing_report, |b| async move {
    let (db, reg) = registry(b).await;
    let dev = laptop(&reg).await;
    let out = reg
        .submit_posture(&dev, failing(), &rules(), &change("mdm-intune"))
        .await
        .unwrap();
    assert_eq!(out.compliance, Compliance::Noncompliant);
    assert_eq!(out.previous, Compliance::Unknown);
    let codes: Vec<_> = out.failed.iter().map(|f| f.check).collect();
    assert_eq!(codes, ["os_version", "disk_encryption"]);
    let d = reg.find_device(&dev).await.unwrap();
    assert_eq!(d.compliance, Compliance::Noncompliant);
    // staleness counts from when it was measured
    assert_eq!(d.compliance_checked_at, Some(now() - Duration::hours(1)));
    let note = d.compliance_note.unwrap();
    assert!(
        note.contains("10.0.19045") && note.contains("disk encryption not reported"),
        "{note}"
    );
    assert_eq!(db.count("posture_reports").await, 1);
    let stored = reg.latest_posture(d.id).await.unwrap().expect("a report");
    assert_eq!(stored.id, out.report_id);
    assert_eq!(stored.device_id, d.id);
    assert_eq!(stored.compliance, Compliance::Noncompliant);
    assert_eq!(stored.submitted_by, "mdm-intune");
    assert_eq!(stored.received_at, now());
    assert_eq!(stored.collected_at, now() - Duration::hours(1));
    assert_eq!(stored.report.os_name, "windows");
    assert_eq!(stored.report.source.as_deref(), Some("intune"));
    assert_eq!(stored.failed.len(), 2);
    assert_eq!(stored.failed[1].check, "disk_encryption");
    let audit = reg
        .audit(&AuditFilter {
            target_id: Some(d.id.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit[0].action, "device.posture");
    assert_eq!(audit[0].actor, "mdm-intune");
    assert_eq!(audit[0].before.as_ref().unwrap()["compliance"], "unknown");
    let after = audit[0].after.as_ref().unwrap();
    assert_eq!(after["compliance"], "noncompliant");
    assert_eq!(
        after["failed"],
        serde_json::json!(["os_version", "disk_encryption"])
    );
    assert_eq!(after["report_id"], out.report_id);

    let out2 = reg
        .submit_posture(&dev, passing(), &rules(), &change("mdm-intune"))
        .await
        .unwrap();
    assert_eq!(out2.compliance, Compliance::Compliant);
    assert_eq!(out2.previous, Compliance::Noncompliant);
    assert!(out2.failed.is_empty());
    assert!(out2.report_id > out.report_id);
    let d = reg.find_device(&dev).await.unwrap();
    assert_eq!(d.compliance, Compliance::Compliant);
    assert_eq!(d.compliance_note.as_deref(), Some("all checks passed"));
    let latest = reg.latest_posture(d.id).await.unwrap().unwrap();
    assert_eq!(latest.id, out2.report_id);
    assert!(latest.failed.is_empty());
    assert_eq!(reg.posture_reports(d.id, 10).await.unwrap().len(), 2);
    assert_eq!(counts(&db).await, [2, 4]);
});

both_stores!(
    an_older_report_is_kept_but_does_not_change_the_device,
    |b| async move {
        let (db, reg) = registry(b).await;
        let dev = laptop(&reg).await;
        let newer = reg
            .submit_posture(&dev, passing(), &rules(), &change("mdm-intune"))
            .await
            .unwrap();
        assert!(newer.applied);
        let device_before = reg.find_device(&dev).await.unwrap();
        assert_eq!(device_before.compliance, Compliance::Compliant);
        // measured two hours before the report that set the device: kept, not applied
        let older = PostureReport {
            collected_at: Some(now() - Duration::hours(3)),
            ..failing()
        };
        let out = reg
            .submit_posture(&dev, older, &rules(), &change("agent"))
            .await
            .unwrap();
        assert!(!out.applied);
        assert_eq!(out.compliance, Compliance::Compliant);
        assert_eq!(out.previous, Compliance::Compliant);
        assert_eq!(out.failed.len(), 2);
        assert!(out.report_id > newer.report_id);
        assert_eq!(reg.find_device(&dev).await.unwrap(), device_before);
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["applied"], false);
        let stored = reg.posture_reports(device_before.id, 10).await.unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[0].id, out.report_id);
        assert_eq!(stored[0].compliance, Compliance::Noncompliant);
        let audit = reg
            .audit(&AuditFilter {
                target_id: Some(device_before.id.to_string()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(audit[0].action, "device.posture");
        let after = audit[0].after.as_ref().unwrap();
        assert_eq!(after["applied"], false);
        assert_eq!(after["compliance"], "compliant");
        assert_eq!(after["report_id"], out.report_id);
        assert_eq!(counts(&db).await[0], 2);

        // one collected at the same moment as the last check, or later, is applied
        let same = PostureReport {
            collected_at: device_before.compliance_checked_at,
            ..failing()
        };
        let out = reg
            .submit_posture(&dev, same, &rules(), &change("agent"))
            .await
            .unwrap();
        assert!(out.applied);
        assert_eq!(out.compliance, Compliance::Noncompliant);
        assert_eq!(
            reg.find_device(&dev).await.unwrap().compliance,
            Compliance::Noncompliant
        );
    }
);

both_stores!(
    old_reports_are_purged_but_each_devices_latest_is_kept,
    |b| async move {
        let (db, reg) = registry(b).await;
        let dev = laptop(&reg).await;
        let (new, _) = NewDevice::from_input(
            "j.devries",
            &["00:1b:21:00:00:02".into()],
            "Telefoon",
            DeviceKind::Phone,
        )
        .unwrap();
        let other = reg
            .register_device(new, &change("ict.beheer"))
            .await
            .unwrap();
        let other = DeviceRef::Id(other.id);
        // received 40, 20 and 1 day(s) ago for the laptop; one 40 days ago for the phone
        let at = |days: i64| Change {
            actor: "agent".into(),
            now: now() - Duration::days(days),
        };
        let report = |days: i64| PostureReport {
            collected_at: Some(now() - Duration::days(days) - Duration::minutes(5)),
            antivirus_signatures_updated: Some(now() - Duration::days(days) - Duration::hours(1)),
            ..passing()
        };
        let mut laptop_ids = Vec::new();
        for days in [40, 20, 1] {
            let out = reg
                .submit_posture(&dev, report(days), &rules(), &at(days))
                .await
                .unwrap();
            laptop_ids.push(out.report_id);
        }
        let phone = reg
            .submit_posture(&other, report(40), &rules(), &at(40))
            .await
            .unwrap();
        let laptop_id = reg.find_device(&dev).await.unwrap().id;
        let phone_id = reg.find_device(&other).await.unwrap().id;
        let audit_before = db.count("audit_log").await;

        // retention 30 days: the laptop's report of 40 days ago goes; the phone's only report,
        // as old, stays: it is that device's latest
        let store = reg.store_arc();
        assert_eq!(
            store
                .purge_posture_reports(now() - Duration::days(30))
                .await
                .unwrap(),
            1
        );
        let kept: Vec<i64> = store
            .posture_reports(laptop_id, 10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(kept, [laptop_ids[2], laptop_ids[1]]);
        let phone_kept = store.posture_reports(phone_id, 10).await.unwrap();
        assert_eq!(phone_kept.len(), 1);
        assert_eq!(phone_kept[0].id, phone.report_id);
        // nothing left to purge at that point; a later cut-off keeps only the latest of each
        assert_eq!(
            store
                .purge_posture_reports(now() - Duration::days(30))
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.purge_posture_reports(now()).await.unwrap(), 1);
        assert_eq!(
            store.latest_posture(laptop_id).await.unwrap().unwrap().id,
            laptop_ids[2]
        );
        assert_eq!(db.count("posture_reports").await, 2);
        // the devices and the audit log are untouched
        assert_eq!(db.count("audit_log").await, audit_before);
        assert_eq!(
            reg.find_device(&dev).await.unwrap().compliance,
            Compliance::Compliant
        );
    }
);

both_stores!(a_refused_report_writes_nothing, |b| async move {
    let (db, reg) = registry(b).await;
    let dev = laptop(&reg).await;
    let before = counts(&db).await;
    let device_before = reg.find_device(&dev).await.unwrap();
    let bad = [
        (
            PostureReport {
                collected_at: Some(now() + Duration::minutes(6)),
                ..passing()
            },
            "collected_at",
        ),
        (
            PostureReport {
                os_name: "win\u{7}".into(),
                ..passing()
            },
            "os_name",
        ),
        (
            PostureReport {
                source: Some("x".repeat(100)),
                ..failing()
            },
            "source",
        ),
    ];
    for (report, field) in bad {
        match reg
            .submit_posture(&dev, report, &rules(), &change("agent"))
            .await
        {
            Err(RegistryError::Field(e)) => assert_eq!(e.field, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // older than compliance_max_age: stale at once
    let old = PostureReport {
        collected_at: Some(now() - Duration::days(31)),
        ..passing()
    };
    match reg
        .submit_posture_within(
            &dev,
            old,
            &rules(),
            Some(Duration::days(30)),
            &change("agent"),
        )
        .await
    {
        Err(RegistryError::Field(e)) => {
            assert_eq!(e.field, "collected_at");
            assert!(e.message.contains("stale"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(counts(&db).await, before);
    assert_eq!(reg.find_device(&dev).await.unwrap(), device_before);
    assert!(reg
        .latest_posture(device_before.id)
        .await
        .unwrap()
        .is_none());
});

both_stores!(a_lost_or_revoked_device_is_refused, |b| async move {
    let (db, reg) = registry(b).await;
    let dev = laptop(&reg).await;
    let ict = change("ict.beheer");
    reg.set_device_status(&dev, DeviceStatus::Lost, None, &ict)
        .await
        .unwrap();
    let before = counts(&db).await;
    let err = reg
        .submit_posture(&dev, passing(), &rules(), &change("agent"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is lost"), "{err}");
    reg.set_device_status(&dev, DeviceStatus::Revoked, Some("sold".into()), &ict)
        .await
        .unwrap();
    let before_revoked = counts(&db).await;
    assert_eq!(before_revoked[0], before[0]);
    let err = reg
        .submit_posture(&dev, passing(), &rules(), &change("agent"))
        .await
        .unwrap_err();
    // the same refusal as for a certificate: the API answers it with 409
    match &err {
        RegistryError::DeviceNotActive { status, .. } => {
            assert_eq!(*status, DeviceStatus::Revoked)
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("is revoked; only an active device has its posture recorded"),
        "{err}"
    );
    assert_eq!(counts(&db).await, before_revoked);
    let unknown =
        DeviceRef::Mac(poortwachter::mac::MacAddr::parse_any("00:1b:21:ff:ff:ff").unwrap());
    assert!(matches!(
        reg.submit_posture(&unknown, passing(), &rules(), &change("agent"))
            .await,
        Err(RegistryError::UnknownDevice(_))
    ));
});

const BIN: &str = env!("CARGO_BIN_EXE_poortwachter");

fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(dir.join("poortwachter.toml"))
        .args(["--actor", "ict.anna"])
        .args(args)
        .env_remove("POORTWACHTER_CONFIG")
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .output()
        .expect("run poortwachter")
}

fn ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

both_stores!(the_posture_command_and_why, |b| async move {
    let db = TestDb::new(b).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("poortwachter.toml"),
        format!(
            r#"
[database]
url = "{}"

[radius]
auth_listen = "127.0.0.1:18120"
acct_listen = "127.0.0.1:18130"

[[radius.clients]]
name = "test-ap"
network = "127.0.0.1/32"
secret = "test-secret-0123456789"

[vlans]
workspace = 100
guest = 200
quarantine = 666

[policy]
compliance_max_age = "30d"

[compliance]
max_signature_age = "3d"
min_os_versions = {{ windows = "10.0.22631" }}
"#,
            db.url
        ),
    )
    .unwrap();
    let d = dir.path();
    ok(d, &["migrate"]);
    ok(
        d,
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
    ok(
        d,
        &[
            "device",
            "register",
            "--owner",
            "j.devries",
            "--mac",
            "00:1b:21:00:00:01",
            "--label",
            "laptop",
        ],
    );
    let collected = Utc::now() - Duration::hours(2);
    let report = serde_json::json!({
        "os_name": "windows",
        "os_version": "10.0.19045",
        "pending_updates": 0,
        "antivirus_enabled": true,
        "antivirus_signatures_updated": (Utc::now() - Duration::days(5)).to_rfc3339(),
        "firewall_enabled": true,
        "disk_encrypted": true,
        "screen_lock": true,
        "collected_at": collected.to_rfc3339(),
        "source": "agent"
    });
    std::fs::write(d.join("r.json"), report.to_string()).unwrap();
    let out = ok(
        d,
        &["device", "posture", "00:1b:21:00:00:01", "--file", "r.json"],
    );
    assert!(out.contains("noncompliant (was unknown)"), "{out}");
    assert!(out.contains("os_version"), "{out}");
    assert!(out.contains("antivirus_signatures"), "{out}");
    // counted to when it was collected, two hours ago
    assert!(out.contains("4 days old"), "{out}");

    let why = ok(d, &["why", "00:1b:21:00:00:01"]);
    assert!(why.contains("compliance: noncompliant"), "{why}");
    assert!(why.contains("os_version"), "{why}");
    assert!(why.contains("stale in 29 days"), "{why}");

    // a report with an unknown field is refused, naming it; nothing written
    std::fs::write(
        d.join("bad.json"),
        r#"{"os_name":"ios","os_version":"17","jailbroken":false}"#,
    )
    .unwrap();
    let before = db.count("posture_reports").await;
    let out = run(
        d,
        &[
            "device",
            "posture",
            "00:1b:21:00:00:01",
            "--file",
            "bad.json",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jailbroken"), "{err}");
    assert_eq!(db.count("posture_reports").await, before);

    // JSON output
    let fixed = serde_json::json!({
        "os_name": "windows", "os_version": "10.0.26100", "pending_updates": 0,
        "antivirus_enabled": true,
        "antivirus_signatures_updated": Utc::now().to_rfc3339(),
        "firewall_enabled": true, "disk_encrypted": true, "screen_lock": true
    });
    std::fs::write(d.join("good.json"), fixed.to_string()).unwrap();
    let out: serde_json::Value = serde_json::from_str(&ok(
        d,
        &[
            "--json",
            "device",
            "posture",
            "00:1b:21:00:00:01",
            "--file",
            "good.json",
        ],
    ))
    .unwrap();
    assert_eq!(out["compliance"], "compliant");
    assert_eq!(out["previous"], "noncompliant");
    assert_eq!(out["applied"], true);
    assert_eq!(db.count("posture_reports").await, 2);

    // the first report again, collected before the last check: stored, the device unchanged
    let out = ok(
        d,
        &["device", "posture", "00:1b:21:00:00:01", "--file", "r.json"],
    );
    assert!(
        out.contains("older than the device's last compliance check"),
        "{out}"
    );
    assert!(out.contains("did not change the device"), "{out}");
    assert!(out.contains("stays compliant"), "{out}");
    assert_eq!(db.count("posture_reports").await, 3);
    let why = ok(d, &["why", "00:1b:21:00:00:01"]);
    assert!(why.contains("compliance: compliant"), "{why}");

    // a revoked device's report is refused, saying why; nothing written
    ok(
        d,
        &["device", "revoke", "00:1b:21:00:00:01", "--reason", "sold"],
    );
    let out = run(
        d,
        &[
            "device",
            "posture",
            "00:1b:21:00:00:01",
            "--file",
            "good.json",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is revoked; only an active device has its posture recorded"),
        "{err}"
    );
    assert_eq!(db.count("posture_reports").await, 3);
});
