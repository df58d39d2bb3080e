//! Compliance posture: a report from an MDM or an agent (OS and version, pending updates,
//! antivirus, firewall, disk encryption, screen lock), checked against `[compliance]` into
//! compliant or noncompliant with the checks that failed. Pure: no I/O, `now` passed in.

use std::cmp::Ordering;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::ops::ComplianceConfig;
use crate::model::{Compliance, FieldError};

/// How far in the future a report's `collected_at` may lie: the agent's clock may be off.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Stable check codes, as stored and shown.
pub mod check {
    /// The OS version is below `min_os_versions` for its OS (or not a version), or the OS is
    /// not listed there while the list is not empty.
    pub const OS_VERSION: &str = "os_version";
    /// More OS updates pending than `max_pending_updates` (or not reported).
    pub const PENDING_UPDATES: &str = "pending_updates";
    /// Antivirus off (or not reported).
    pub const ANTIVIRUS: &str = "antivirus";
    /// Antivirus signatures older than `max_signature_age` (or not reported).
    pub const ANTIVIRUS_SIGNATURES: &str = "antivirus_signatures";
    /// Firewall off (or not reported).
    pub const FIREWALL: &str = "firewall";
    /// Disk not encrypted (or not reported).
    pub const DISK_ENCRYPTION: &str = "disk_encryption";
    /// No screen lock (or not reported).
    pub const SCREEN_LOCK: &str = "screen_lock";
}

/// What an MDM or agent reports about a device.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostureReport {
    /// `windows`, `macos`, `ios`, `android`, `linux`... (any case).
    pub os_name: String,
    /// Dotted numbers, as `10.0.19045`.
    pub os_version: String,
    /// OS updates waiting to be installed.
    #[serde(default)]
    pub pending_updates: Option<u32>,
    /// Antivirus enabled.
    #[serde(default)]
    pub antivirus_enabled: Option<bool>,
    /// When the antivirus signatures were last updated.
    #[serde(default)]
    pub antivirus_signatures_updated: Option<DateTime<Utc>>,
    /// Firewall on.
    #[serde(default)]
    pub firewall_enabled: Option<bool>,
    /// System disk encrypted.
    #[serde(default)]
    pub disk_encrypted: Option<bool>,
    /// Screen lock set.
    #[serde(default)]
    pub screen_lock: Option<bool>,
    /// When the agent measured; default: when received.
    #[serde(default)]
    pub collected_at: Option<DateTime<Utc>>,
    /// Who measured: `intune`, `agent`...
    #[serde(default)]
    pub source: Option<String>,
}

/// A check the report did not pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedCheck {
    /// Stable code, one of [`check`].
    pub check: &'static str,
    /// What was wrong, for people.
    pub message: String,
}

/// A failed check as stored and read back (the code is owned: a stored row may come from
/// another version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedCheck {
    /// Check code.
    pub check: String,
    /// What was wrong.
    pub message: String,
}

impl From<&FailedCheck> for RecordedCheck {
    fn from(f: &FailedCheck) -> Self {
        RecordedCheck {
            check: f.check.to_string(),
            message: f.message.clone(),
        }
    }
}

/// The result of checking a report against `[compliance]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// Every check passed.
    pub compliant: bool,
    /// The checks that did not, in a fixed order.
    pub failed: Vec<FailedCheck>,
}

impl Evaluation {
    /// Compliant or noncompliant.
    pub fn compliance(&self) -> Compliance {
        if self.compliant {
            Compliance::Compliant
        } else {
            Compliance::Noncompliant
        }
    }
}

/// What submitting a report did to a device.
#[derive(Debug, Clone, Serialize)]
pub struct PostureOutcome {
    /// The device.
    pub device_id: Uuid,
    /// Its compliance now.
    pub compliance: Compliance,
    /// The checks that failed.
    pub failed: Vec<FailedCheck>,
    /// The stored report's id.
    pub report_id: i64,
    /// Its compliance before.
    pub previous: Compliance,
    /// Whether the report set the device's compliance: false when it was collected before the
    /// device's last compliance check, so it was stored but changed nothing.
    pub applied: bool,
}

/// A stored posture report with its evaluation (`posture_reports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredReport {
    /// Report id.
    pub id: i64,
    /// The device.
    pub device_id: Uuid,
    /// When the registry received it.
    pub received_at: DateTime<Utc>,
    /// When it was measured (the device's compliance is dated from this).
    pub collected_at: DateTime<Utc>,
    /// Who submitted it (actor or API token name).
    pub submitted_by: String,
    /// The evaluation: compliant or noncompliant.
    pub compliance: Compliance,
    /// The checks that failed.
    pub failed: Vec<RecordedCheck>,
    /// The report as received (after trimming).
    pub report: PostureReport,
}

const MAX_OS_NAME: usize = 32;
const MAX_OS_VERSION: usize = 64;
const MAX_SOURCE: usize = 64;

impl PostureReport {
    /// Trims and checks the fields: lengths, printable text, `collected_at` not in the
    /// future (beyond [`CLOCK_SKEW`]) and, when `max_age` is given, not so old that the
    /// result would be stale at once. Returns the report with `os_name` lowercased and
    /// `collected_at` set (to `now` when missing).
    pub fn validate(
        mut self,
        now: DateTime<Utc>,
        max_age: Option<Duration>,
    ) -> Result<PostureReport, FieldError> {
        self.os_name = text("os_name", &self.os_name, MAX_OS_NAME)?.to_lowercase();
        if self.os_name.is_empty() {
            return Err(FieldError::new("os_name", "must not be empty"));
        }
        self.os_version = text("os_version", &self.os_version, MAX_OS_VERSION)?;
        if self.os_version.is_empty() {
            return Err(FieldError::new("os_version", "must not be empty"));
        }
        self.source = match self.source.as_deref() {
            Some(s) => Some(text("source", s, MAX_SOURCE)?).filter(|s| !s.is_empty()),
            None => None,
        };
        let collected = self.collected_at.unwrap_or(now);
        if collected > now + CLOCK_SKEW {
            return Err(FieldError::new(
                "collected_at",
                format!("{collected} is in the future (the clock here says {now})"),
            ));
        }
        if let Some(max_age) = max_age {
            if now - collected > max_age {
                return Err(FieldError::new(
                    "collected_at",
                    format!(
                        "{collected} is older than policy.compliance_max_age ({}): the result \
                         would be stale at once",
                        human(max_age)
                    ),
                ));
            }
        }
        if let Some(sig) = self.antivirus_signatures_updated {
            if sig > collected + CLOCK_SKEW {
                return Err(FieldError::new(
                    "antivirus_signatures_updated",
                    format!("{sig} is after the report was collected ({collected})"),
                ));
            }
        }
        self.collected_at = Some(collected);
        Ok(self)
    }
}

/// Trimmed `s`, refused if longer than `max` characters or holding control characters.
fn text(field: &'static str, s: &str, max: usize) -> Result<String, FieldError> {
    let t = s.trim();
    if t.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("longer than {max} characters"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(FieldError::new(field, "contains control characters"));
    }
    Ok(t.to_string())
}

/// Checks a report against the `[compliance]` rules. A required value the report leaves
/// out fails its check: an MDM that does not report disk encryption cannot prove it.
/// Signature age is counted up to when the report was collected (`now` if not given).
pub fn evaluate(
    report: &PostureReport,
    rules: &ComplianceConfig,
    now: DateTime<Utc>,
) -> Evaluation {
    let mut failed = Vec::new();
    let mut fail =
        |check: &'static str, message: String| failed.push(FailedCheck { check, message });
    let measured = report.collected_at.unwrap_or(now);

    let os = report.os_name.trim().to_lowercase();
    // with minimum versions set, only the OSes listed are accepted; with none, any OS is
    if !rules.min_os_versions.is_empty() && !rules.min_os_versions.contains_key(&os) {
        let accepted: Vec<&str> = rules.min_os_versions.keys().map(String::as_str).collect();
        fail(
            check::OS_VERSION,
            format!(
                "{os} is not an accepted OS; min_os_versions lists {}",
                accepted.join(", ")
            ),
        );
    }
    if let Some(minimum) = rules.min_os_versions.get(&os) {
        let version = report.os_version.trim();
        match compare_versions(version, minimum) {
            Some(Ordering::Less) => fail(
                check::OS_VERSION,
                format!("{os} {version} is older than the minimum {minimum}"),
            ),
            Some(_) => {}
            None => fail(
                check::OS_VERSION,
                format!("`{version}` is not a version such as 10.0.19045; {os} needs {minimum} or later"),
            ),
        }
    }

    match report.pending_updates {
        None => fail(
            check::PENDING_UPDATES,
            "pending OS updates not reported".into(),
        ),
        Some(n) if n > rules.max_pending_updates => fail(
            check::PENDING_UPDATES,
            format!(
                "{n} OS update(s) pending; at most {} allowed",
                rules.max_pending_updates
            ),
        ),
        Some(_) => {}
    }

    if rules.require_antivirus {
        match report.antivirus_enabled {
            Some(true) => {}
            Some(false) => fail(check::ANTIVIRUS, "antivirus is off".into()),
            None => fail(check::ANTIVIRUS, "antivirus not reported".into()),
        }
        let max = rules.max_signature_age.chrono();
        match report.antivirus_signatures_updated {
            None => fail(
                check::ANTIVIRUS_SIGNATURES,
                "antivirus signature date not reported".into(),
            ),
            Some(updated) if measured - updated > max => fail(
                check::ANTIVIRUS_SIGNATURES,
                format!(
                    "antivirus signatures are {} old; at most {} allowed",
                    human(measured - updated),
                    human(max)
                ),
            ),
            Some(_) => {}
        }
    }

    let mut required =
        |on: bool, value: Option<bool>, code: &'static str, off: &str, what: &str| {
            if !on {
                return;
            }
            match value {
                Some(true) => {}
                Some(false) => fail(code, off.to_string()),
                None => fail(code, format!("{what} not reported")),
            }
        };
    required(
        rules.require_firewall,
        report.firewall_enabled,
        check::FIREWALL,
        "firewall is off",
        "firewall",
    );
    required(
        rules.require_disk_encryption,
        report.disk_encrypted,
        check::DISK_ENCRYPTION,
        "disk is not encrypted",
        "disk encryption",
    );
    required(
        rules.require_screen_lock,
        report.screen_lock,
        check::SCREEN_LOCK,
        "no screen lock set",
        "screen lock",
    );

    Evaluation {
        compliant: failed.is_empty(),
        failed,
    }
}

/// Compares dotted versions numerically part by part (`10.0.9` < `10.0.19045`); a missing
/// part counts as 0 (`14` = `14.0.0`). `None` if either is not dotted numbers.
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    let a = version_parts(a)?;
    let b = version_parts(b)?;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => continue,
            other => return Some(other),
        }
    }
    Some(Ordering::Equal)
}

fn version_parts(v: &str) -> Option<Vec<u64>> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    v.split('.')
        .map(|p| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                p.parse().ok()
            }
        })
        .collect()
}

/// The device's compliance note from an evaluation: the failed checks' messages, or that
/// all passed. At most 500 characters (the note's limit).
pub fn summary(failed: &[FailedCheck]) -> String {
    if failed.is_empty() {
        return "all checks passed".to_string();
    }
    let text = failed
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if text.chars().count() <= 500 {
        text
    } else {
        let mut cut: String = text.chars().take(499).collect();
        cut.push('…');
        cut
    }
}

/// A duration for people: `3 days`, `5 hours`, `12 minutes`, `40 seconds`.
pub fn human(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    let (n, unit) = if s >= 2 * 86_400 {
        (s / 86_400, "days")
    } else if s >= 2 * 3600 {
        (s / 3600, "hours")
    } else if s >= 120 {
        (s / 60, "minutes")
    } else {
        (s, "seconds")
    };
    format!("{n} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
    }

    fn rules() -> ComplianceConfig {
        let mut r = ComplianceConfig::default();
        r.min_os_versions
            .insert("windows".into(), "10.0.22631".into());
        r.min_os_versions.insert("macos".into(), "14.2".into());
        r
    }

    /// A report that passes every default check.
    fn good() -> PostureReport {
        PostureReport {
            os_name: "windows".into(),
            os_version: "10.0.22631".into(),
            pending_updates: Some(0),
            antivirus_enabled: Some(true),
            antivirus_signatures_updated: Some(now() - Duration::hours(6)),
            firewall_enabled: Some(true),
            disk_encrypted: Some(true),
            screen_lock: Some(true),
            collected_at: Some(now()),
            source: Some("intune".into()),
        }
    }

    fn failed_codes(r: &PostureReport, rules: &ComplianceConfig) -> Vec<&'static str> {
        evaluate(r, rules, now())
            .failed
            .iter()
            .map(|f| f.check)
            .collect()
    }

    #[test]
    fn a_good_report_is_compliant() {
        let e = evaluate(&good(), &rules(), now());
        assert!(e.compliant, "{e:?}");
        assert_eq!(e.compliance(), Compliance::Compliant);
        assert_eq!(summary(&e.failed), "all checks passed");
    }

    #[test]
    fn the_evaluation_table() {
        type Edit = fn(&mut PostureReport);
        let table: &[(&str, Edit, &[&str])] = &[
            ("nothing changed", |_| {}, &[]),
            (
                "updates pending",
                |r| r.pending_updates = Some(1),
                &["pending_updates"],
            ),
            (
                "updates missing",
                |r| r.pending_updates = None,
                &["pending_updates"],
            ),
            (
                "antivirus off",
                |r| r.antivirus_enabled = Some(false),
                &["antivirus"],
            ),
            (
                "antivirus missing",
                |r| r.antivirus_enabled = None,
                &["antivirus"],
            ),
            (
                "signatures missing",
                |r| r.antivirus_signatures_updated = None,
                &["antivirus_signatures"],
            ),
            (
                "signatures 4 days old",
                |r| r.antivirus_signatures_updated = Some(now() - Duration::days(4)),
                &["antivirus_signatures"],
            ),
            (
                "firewall off",
                |r| r.firewall_enabled = Some(false),
                &["firewall"],
            ),
            (
                "firewall missing",
                |r| r.firewall_enabled = None,
                &["firewall"],
            ),
            (
                "disk plain",
                |r| r.disk_encrypted = Some(false),
                &["disk_encryption"],
            ),
            (
                "disk missing",
                |r| r.disk_encrypted = None,
                &["disk_encryption"],
            ),
            (
                "no screen lock",
                |r| r.screen_lock = Some(false),
                &["screen_lock"],
            ),
            (
                "screen lock missing",
                |r| r.screen_lock = None,
                &["screen_lock"],
            ),
            (
                "old windows",
                |r| r.os_version = "10.0.19045".into(),
                &["os_version"],
            ),
            (
                "newer windows",
                |r| r.os_version = "10.0.26100.1".into(),
                &[],
            ),
            ("windows 11 next", |r| r.os_version = "10.1".into(), &[]),
            (
                "not a version",
                |r| r.os_version = "10.0.x".into(),
                &["os_version"],
            ),
            (
                "build in parens",
                |r| r.os_version = "10.0 (22631)".into(),
                &["os_version"],
            ),
            ("upper-case OS", |r| r.os_name = "Windows".into(), &[]),
            (
                "upper-case OS, old",
                |r| {
                    r.os_name = " WINDOWS ".into();
                    r.os_version = "10.0.9".into();
                },
                &["os_version"],
            ),
            (
                "macOS equal with fewer parts",
                |r| {
                    r.os_name = "macOS".into();
                    r.os_version = "14.2.0".into();
                },
                &[],
            ),
            (
                "macOS older",
                |r| {
                    r.os_name = "macOS".into();
                    r.os_version = "14.1.9".into();
                },
                &["os_version"],
            ),
            (
                "OS not listed",
                |r| {
                    r.os_name = "linux".into();
                    r.os_version = "6.8".into();
                },
                &["os_version"],
            ),
            (
                "everything missing",
                |r| {
                    r.pending_updates = None;
                    r.antivirus_enabled = None;
                    r.antivirus_signatures_updated = None;
                    r.firewall_enabled = None;
                    r.disk_encrypted = None;
                    r.screen_lock = None;
                },
                &[
                    "pending_updates",
                    "antivirus",
                    "antivirus_signatures",
                    "firewall",
                    "disk_encryption",
                    "screen_lock",
                ],
            ),
        ];
        for (name, edit, expected) in table {
            let mut r = good();
            edit(&mut r);
            assert_eq!(&failed_codes(&r, &rules()), expected, "{name}");
            let e = evaluate(&r, &rules(), now());
            assert_eq!(e.compliant, expected.is_empty(), "{name}");
            assert!(e.failed.iter().all(|f| !f.message.is_empty()), "{name}");
        }
    }

    #[test]
    fn checks_not_required_are_not_made() {
        let lax = ComplianceConfig {
            require_antivirus: false,
            require_firewall: false,
            require_disk_encryption: false,
            require_screen_lock: false,
            max_pending_updates: 5,
            ..ComplianceConfig::default()
        };
        let r = PostureReport {
            pending_updates: Some(5),
            antivirus_enabled: None,
            antivirus_signatures_updated: None,
            firewall_enabled: Some(false),
            disk_encrypted: None,
            screen_lock: Some(false),
            ..good()
        };
        assert!(evaluate(&r, &lax, now()).compliant);
        let r = PostureReport {
            pending_updates: Some(6),
            ..r
        };
        assert_eq!(failed_codes(&r, &lax), ["pending_updates"]);
    }

    #[test]
    fn only_listed_oses_pass_when_minimums_are_set() {
        let linux = PostureReport {
            os_name: "Linux".into(),
            os_version: "6.8".into(),
            ..good()
        };
        let e = evaluate(&linux, &rules(), now());
        assert!(!e.compliant);
        assert_eq!(e.failed.len(), 1);
        assert_eq!(e.failed[0].check, "os_version");
        assert_eq!(
            e.failed[0].message,
            "linux is not an accepted OS; min_os_versions lists macos, windows"
        );
        // no minimums at all: any OS at any version
        let none = ComplianceConfig::default();
        assert!(none.min_os_versions.is_empty());
        assert!(evaluate(&linux, &none, now()).compliant);
        let odd = PostureReport {
            os_name: "plan9".into(),
            os_version: "not-numeric".into(),
            ..good()
        };
        assert!(evaluate(&odd, &none, now()).compliant);
        // a listed OS is still compared
        assert!(evaluate(&good(), &rules(), now()).compliant);
    }

    #[test]
    fn signature_age_boundary_is_inclusive() {
        let rules = rules();
        let max = rules.max_signature_age.chrono();
        let at = |age: Duration| PostureReport {
            antivirus_signatures_updated: Some(now() - age),
            ..good()
        };
        assert!(evaluate(&at(max), &rules, now()).compliant);
        assert_eq!(
            failed_codes(&at(max + Duration::seconds(1)), &rules),
            ["antivirus_signatures"]
        );
        let msg = &evaluate(&at(Duration::days(5)), &rules, now()).failed[0].message;
        assert!(
            msg.contains("5 days old") && msg.contains("at most 3 days"),
            "{msg}"
        );
        // counted to when the report was collected, not to when it arrived
        let r = PostureReport {
            collected_at: Some(now() - Duration::days(2)),
            antivirus_signatures_updated: Some(now() - Duration::days(4)),
            ..good()
        };
        assert!(evaluate(&r, &rules, now()).compliant);
        let one_day = ComplianceConfig {
            max_signature_age: HumanDuration(std::time::Duration::from_secs(86_400)),
            ..rules
        };
        assert!(!evaluate(&r, &one_day, now()).compliant);
    }

    #[test]
    fn versions_compare_by_number_part_by_part() {
        use Ordering::*;
        for (a, b, want) in [
            ("10.0.19045", "10.0.22631", Some(Less)),
            ("10.0.22631", "10.0.22631", Some(Equal)),
            ("10.0.100000", "10.0.22631", Some(Greater)),
            ("14", "14.0.0", Some(Equal)),
            ("14.0.1", "14", Some(Greater)),
            ("9.9", "10", Some(Less)),
            ("010.0", "10", Some(Equal)),
            ("17.1.2", "17.2", Some(Less)),
            ("10..1", "10", None),
            ("10.0.", "10", None),
            ("", "10", None),
            ("v10", "10", None),
            ("-1", "0", None),
            ("99999999999999999999999", "1", None),
        ] {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
        }
        let msg = &evaluate(
            &PostureReport {
                os_version: "Windows 11".into(),
                ..good()
            },
            &rules(),
            now(),
        )
        .failed[0]
            .message;
        assert!(msg.contains("not a version"), "{msg}");
    }

    #[test]
    fn validation_refuses_future_and_stale_reports() {
        let max_age = Some(Duration::days(30));
        let at = |t: DateTime<Utc>| PostureReport {
            collected_at: Some(t),
            antivirus_signatures_updated: None,
            ..good()
        };
        // within the clock skew: accepted
        assert!(at(now() + CLOCK_SKEW).validate(now(), max_age).is_ok());
        let err = at(now() + CLOCK_SKEW + Duration::seconds(1))
            .validate(now(), max_age)
            .unwrap_err();
        assert_eq!(err.field, "collected_at");
        assert!(err.message.contains("future"), "{err}");
        assert!(at(now() - Duration::days(30))
            .validate(now(), max_age)
            .is_ok());
        let err = at(now() - Duration::days(30) - Duration::seconds(1))
            .validate(now(), max_age)
            .unwrap_err();
        assert_eq!(err.field, "collected_at");
        assert!(err.message.contains("stale"), "{err}");
        // without a max age only the future is refused
        assert!(at(now() - Duration::days(400))
            .validate(now(), None)
            .is_ok());
        // missing: received now
        let r = PostureReport {
            collected_at: None,
            ..good()
        }
        .validate(now(), max_age)
        .unwrap();
        assert_eq!(r.collected_at, Some(now()));
        let err = PostureReport {
            antivirus_signatures_updated: Some(now() + Duration::hours(1)),
            ..good()
        }
        .validate(now(), max_age)
        .unwrap_err();
        assert_eq!(err.field, "antivirus_signatures_updated");
    }

    #[test]
    fn validation_checks_the_text_fields() {
        let ok = PostureReport {
            os_name: "  MacOS ".into(),
            os_version: " 14.2 ".into(),
            source: Some("  ".into()),
            ..good()
        }
        .validate(now(), None)
        .unwrap();
        assert_eq!(ok.os_name, "macos");
        assert_eq!(ok.os_version, "14.2");
        assert_eq!(ok.source, None);
        let bad = |edit: fn(&mut PostureReport)| {
            let mut r = good();
            edit(&mut r);
            r.validate(now(), None).unwrap_err().field
        };
        assert_eq!(bad(|r| r.os_name = " ".into()), "os_name");
        assert_eq!(bad(|r| r.os_name = "x".repeat(33)), "os_name");
        assert_eq!(bad(|r| r.os_name = "win\ndows".into()), "os_name");
        assert_eq!(bad(|r| r.os_version = String::new()), "os_version");
        assert_eq!(bad(|r| r.os_version = "1\u{7}".into()), "os_version");
        assert_eq!(bad(|r| r.os_version = "1.".repeat(40)), "os_version");
        assert_eq!(bad(|r| r.source = Some("s".repeat(65))), "source");
        assert_eq!(bad(|r| r.source = Some("in\u{0}tune".into())), "source");
    }

    #[test]
    fn reports_are_read_strictly() {
        let json = r#"{"os_name":"iOS","os_version":"17.4","screen_lock":true}"#;
        let r: PostureReport = serde_json::from_str(json).unwrap();
        assert_eq!(r.pending_updates, None);
        assert_eq!(r.screen_lock, Some(true));
        let unknown = r#"{"os_name":"iOS","os_version":"17.4","jailbroken":false}"#;
        assert!(serde_json::from_str::<PostureReport>(unknown).is_err());
    }

    #[test]
    fn the_summary_lists_the_failures_and_is_bounded() {
        let mut r = good();
        r.disk_encrypted = Some(false);
        r.firewall_enabled = None;
        let e = evaluate(&r, &rules(), now());
        assert_eq!(
            summary(&e.failed),
            "firewall not reported; disk is not encrypted"
        );
        let many: Vec<FailedCheck> = (0..50)
            .map(|_| FailedCheck {
                check: check::OS_VERSION,
                message: "x".repeat(30),
            })
            .collect();
        assert_eq!(summary(&many).chars().count(), 500);
    }
}
