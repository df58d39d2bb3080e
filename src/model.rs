//! The registry's domain: owners, devices, their states, and the audit trail; with the input
//! checks that every front end (CLI, CSV import, later the API) shares.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::mac::{MacAddr, MacError};

/// Declares a closed set of lowercase words: `Display`, `FromStr` (with the choices in the
/// error), `as_str`, `ALL`, and serde as the word.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The word.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let t = s.trim();
                $(if t.eq_ignore_ascii_case($word) { return Ok($name::$variant); })+
                Err(format!(
                    "`{s}` is not a {}; choose one of: {}",
                    $what,
                    [$($word),+].join(", ")
                ))
            }
        }
    };
}

word_enum!(
    /// What an owner is to the municipality; decides the VLAN family and whether an end date is
    /// required.
    Role, "role" {
        /// Employee: workspace VLAN, no end date required.
        Staff = "staff",
        /// Temporary worker: guest isolation, end date required.
        Temp = "temp",
        /// Intern: guest isolation, end date required.
        Intern = "intern",
        /// Contractor: guest isolation, end date required.
        Contractor = "contractor",
    }
);

impl Role {
    /// Temps, interns and contractors must have a contract end date.
    pub fn requires_end_date(self) -> bool {
        self != Role::Staff
    }
}

word_enum!(
    /// What kind of device it is.
    DeviceKind, "device kind" {
        /// A laptop (the usual BYOD device).
        Laptop = "laptop",
        /// A tablet.
        Tablet = "tablet",
        /// A phone.
        Phone = "phone",
        /// Anything else.
        Other = "other",
    }
);

word_enum!(
    /// Whether a device may be used at all.
    DeviceStatus, "device status" {
        /// In use.
        Active = "active",
        /// Reported lost; refused until found or revoked.
        Lost = "lost",
        /// Permanently refused.
        Revoked = "revoked",
    }
);

word_enum!(
    /// The device's last known compliance state.
    Compliance, "compliance state" {
        /// Never checked, or reset.
        Unknown = "unknown",
        /// Passed its last check.
        Compliant = "compliant",
        /// Failed its last check.
        Noncompliant = "noncompliant",
    }
);

word_enum!(
    /// What manages an owner's record: ICT by hand, the HR CSV import, the directory sync or
    /// SCIM provisioning. A feed changes and disables only the owners it manages
    /// ([`OwnerSource::claims`]), so that a sync leaves the people added by hand alone.
    OwnerSource, "owner source" {
        /// Added or taken over by hand (`owner add`, the API, `owner edit --source manual`).
        Manual = "manual",
        /// The HR CSV import (`owner import`).
        Import = "import",
        /// The directory sync over LDAP (`owner sync`).
        Directory = "directory",
        /// An identity provider over SCIM.
        Scim = "scim",
    }
);

impl OwnerSource {
    /// Whether a feed of this source may update (and so take over) an owner now managed by
    /// `current`. The import takes over owners added by hand, as an HR export names everyone;
    /// the directory and SCIM take over what the import manages (moving from a CSV to a
    /// directory), never what was added by hand.
    pub fn claims(self, current: OwnerSource) -> bool {
        use OwnerSource::*;
        matches!(
            (self, current),
            (Manual, Manual)
                | (Import, Manual | Import)
                | (Directory, Import | Directory)
                | (Scim, Import | Scim)
        )
    }
}

/// A person who owns devices: an employee, temp, intern or contractor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Internal id.
    pub id: Uuid,
    /// Directory username, unique regardless of case.
    pub username: String,
    /// Full name.
    pub display_name: String,
    /// Mail address.
    pub email: Option<String>,
    /// Staff, temp, intern or contractor.
    pub role: Role,
    /// Department.
    pub department: Option<String>,
    /// First day of access (inclusive), if set.
    pub valid_from: Option<NaiveDate>,
    /// Last day of access (inclusive), if set; required unless staff.
    pub valid_until: Option<NaiveDate>,
    /// Disabled by ICT or by a feed.
    pub disabled: bool,
    /// When registered.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// What manages the record.
    #[serde(default = "manual")]
    pub source: OwnerSource,
    /// The person's id in the feed that manages them (directory entry, SCIM id).
    #[serde(default)]
    pub external_id: Option<String>,
    /// Why the owner is disabled.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// Since when the owner is disabled.
    #[serde(default)]
    pub disabled_at: Option<DateTime<Utc>>,
    /// The feed that disabled the owner (it enables them again when they return to it);
    /// `None` when disabled by hand.
    #[serde(default)]
    pub disabled_by_source: Option<OwnerSource>,
    /// When the person's data was erased (AVG): the row stays, anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<DateTime<Utc>>,
}

fn manual() -> OwnerSource {
    OwnerSource::Manual
}

impl Owner {
    /// The instant access ends: midnight after `valid_until`, in the site's time zone.
    pub fn access_ends_at<Tz: TimeZone>(&self, tz: &Tz) -> Option<DateTime<Utc>> {
        self.valid_until
            .and_then(|d| d.succ_opt())
            .map(|d| start_of_day(d, tz))
    }

    /// The instant access starts: midnight at the start of `valid_from`, in the site's time zone.
    pub fn access_starts_at<Tz: TimeZone>(&self, tz: &Tz) -> Option<DateTime<Utc>> {
        self.valid_from.map(|d| start_of_day(d, tz))
    }

    /// Whether the contract has ended at `now`.
    pub fn has_expired<Tz: TimeZone>(&self, now: DateTime<Utc>, tz: &Tz) -> bool {
        self.access_ends_at(tz).is_some_and(|end| now >= end)
    }

    /// Whether the contract has not started yet at `now`.
    pub fn not_yet_valid<Tz: TimeZone>(&self, now: DateTime<Utc>, tz: &Tz) -> bool {
        self.access_starts_at(tz).is_some_and(|start| now < start)
    }
}

/// Midnight at the start of `day` in `tz`, as UTC. Where a DST gap swallows midnight, the
/// first instant of the day.
fn start_of_day<Tz: TimeZone>(day: NaiveDate, tz: &Tz) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&midnight) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        chrono::LocalResult::None => {
            let later = midnight + chrono::Duration::hours(1);
            tz.from_local_datetime(&later)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
        }
    }
}

/// A registered personal device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Device id.
    pub id: Uuid,
    /// Owner's id.
    pub owner_id: Uuid,
    /// Owner's username.
    pub owner: String,
    /// Free text, e.g. "ThinkPad X1 (personal)".
    pub label: String,
    /// Laptop, tablet, phone or other.
    pub kind: DeviceKind,
    /// One or more MAC addresses (Wi-Fi, dock, ...), unique across the registry.
    pub macs: Vec<MacAddr>,
    /// Active, lost or revoked.
    pub status: DeviceStatus,
    /// Why it was revoked or reported lost.
    pub status_reason: Option<String>,
    /// When the status last changed.
    pub status_changed_at: Option<DateTime<Utc>>,
    /// Last compliance state.
    pub compliance: Compliance,
    /// When compliance was last checked.
    pub compliance_checked_at: Option<DateTime<Utc>>,
    /// Note from the last compliance check.
    pub compliance_note: Option<String>,
    /// SHA-256 fingerprint of its certificate (set at onboarding).
    pub cert_fingerprint: Option<String>,
    /// Serial of its certificate (set at onboarding).
    pub cert_serial: Option<String>,
    /// Who registered it.
    pub created_by: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Last time it authenticated.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// NAS it was last seen on.
    pub last_seen_nas: Option<String>,
    /// SSID it was last seen on.
    pub last_seen_ssid: Option<String>,
}

/// One entry of the audit trail: who changed what, from which values to which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who: the `--actor`, the OS user, or later an API token's name.
    pub actor: String,
    /// What was done, as `owner.add`, `device.revoke`.
    pub action: String,
    /// `owner` or `device`.
    pub target_type: String,
    /// Username or device id.
    pub target_id: String,
    /// The record before (absent on creation).
    pub before: Option<serde_json::Value>,
    /// The record after.
    pub after: Option<serde_json::Value>,
    /// The personal data in it was erased (AVG): what remains says what happened, not to whom.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
}

/// An input that is wrong, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field, as the user wrote it (`username`, `--until`, `mac`).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// A new owner as entered: checked by [`NewOwner::validate`] before it reaches a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOwner {
    /// Directory username.
    pub username: String,
    /// Full name.
    pub display_name: String,
    /// Mail address.
    pub email: Option<String>,
    /// Role.
    pub role: Role,
    /// Department.
    pub department: Option<String>,
    /// First day.
    pub valid_from: Option<NaiveDate>,
    /// Last day.
    pub valid_until: Option<NaiveDate>,
}

impl NewOwner {
    /// Trims and checks every field; refuses a non-staff owner without an end date and a
    /// start after the end.
    pub fn validate(mut self) -> Result<NewOwner, FieldError> {
        self.username = validate_username(&self.username)?;
        self.display_name = self.display_name.trim().to_string();
        if self.display_name.is_empty() {
            return Err(FieldError::new("name", "must not be empty"));
        }
        if self.display_name.chars().count() > 200 {
            return Err(FieldError::new("name", "longer than 200 characters"));
        }
        self.email = none_if_blank(self.email);
        if let Some(email) = &self.email {
            validate_email(email)?;
        }
        self.department = none_if_blank(self.department);
        if self
            .department
            .as_ref()
            .is_some_and(|d| d.chars().count() > 200)
        {
            return Err(FieldError::new("department", "longer than 200 characters"));
        }
        if self.role.requires_end_date() && self.valid_until.is_none() {
            return Err(FieldError::new(
                "until",
                format!(
                    "a {} needs a contract end date (valid_until); access ends with the contract",
                    self.role
                ),
            ));
        }
        if let (Some(from), Some(until)) = (self.valid_from, self.valid_until) {
            if from > until {
                return Err(FieldError::new(
                    "until",
                    format!("end date {until} is before start date {from}"),
                ));
            }
        }
        Ok(self)
    }
}

fn none_if_blank(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// A directory username: 1-64 of `A-Z a-z 0-9 . _ - @`, starting with a letter or digit.
/// Case is kept for display; uniqueness ignores it.
pub fn validate_username(input: &str) -> Result<String, FieldError> {
    let u = input.trim();
    if u.is_empty() {
        return Err(FieldError::new("username", "must not be empty"));
    }
    if u.len() > 64 {
        return Err(FieldError::new("username", "longer than 64 characters"));
    }
    if !u.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(FieldError::new(
            "username",
            format!("`{u}` must start with a letter or digit"),
        ));
    }
    if let Some(bad) = u
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
    {
        return Err(FieldError::new(
            "username",
            format!("`{u}` contains {bad:?}; use letters, digits, '.', '_', '-' or '@'"),
        ));
    }
    Ok(u.to_string())
}

fn validate_email(email: &str) -> Result<(), FieldError> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
               && !domain.ends_with('.') && !domain.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "email",
            format!("`{email}` is not a mail address"),
        ))
    }
}

/// A device as ICT registers it, before checks against the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// Owner's username.
    pub owner: String,
    /// MAC addresses, already parsed.
    pub macs: Vec<MacAddr>,
    /// Label.
    pub label: String,
    /// Kind.
    pub kind: DeviceKind,
}

impl NewDevice {
    /// Parses MACs and checks the fields. Returns the device and one warning per locally
    /// administered (randomized) MAC.
    pub fn from_input(
        owner: &str,
        macs: &[String],
        label: &str,
        kind: DeviceKind,
    ) -> Result<(NewDevice, Vec<String>), FieldError> {
        let macs = macs
            .iter()
            .map(|m| MacAddr::parse_any(m))
            .collect::<Result<Vec<_>, MacError>>()
            .map_err(|e| FieldError::new("mac", e.to_string()))?;
        let device = NewDevice {
            owner: owner.to_string(),
            macs,
            label: label.to_string(),
            kind,
        }
        .validate()?;
        let warnings = device.warnings();
        Ok((device, warnings))
    }

    /// Trims and checks every field: a known-good owner username, a label, at least one MAC,
    /// each a device address and none twice.
    pub fn validate(mut self) -> Result<NewDevice, FieldError> {
        self.owner = validate_username(&self.owner).map_err(|e| FieldError {
            field: "owner",
            ..e
        })?;
        self.label = self.label.trim().to_string();
        if self.label.is_empty() {
            return Err(FieldError::new("label", "must not be empty"));
        }
        if self.label.chars().count() > 100 {
            return Err(FieldError::new("label", "longer than 100 characters"));
        }
        if self.macs.is_empty() {
            return Err(FieldError::new(
                "mac",
                "at least one MAC address is required",
            ));
        }
        if self.macs.len() > 8 {
            return Err(FieldError::new("mac", "at most 8 MAC addresses per device"));
        }
        for (i, mac) in self.macs.iter().enumerate() {
            mac.check_device()
                .map_err(|e| FieldError::new("mac", e.to_string()))?;
            if self.macs[..i].contains(mac) {
                return Err(FieldError::new("mac", format!("{mac} is given twice")));
            }
        }
        Ok(self)
    }

    /// One warning per locally administered ("private", randomized) MAC.
    pub fn warnings(&self) -> Vec<String> {
        self.macs
            .iter()
            .filter(|m| m.is_locally_administered())
            .map(|mac| {
                format!(
                    "{mac} is a locally administered (\"private\", randomized) address: it will \
                     change unless the device is set to use a fixed address for this network"
                )
            })
            .collect()
    }
}

/// Parses a date as `YYYY-MM-DD`, years 1900 to 2999 (both stores compare dates alike only
/// for four-digit years).
pub fn parse_date(field: &'static str, s: &str) -> Result<NaiveDate, FieldError> {
    let t = s.trim();
    let shaped = t.len() == 10
        && t.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let date = shaped
        .then(|| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
        .flatten()
        .filter(|d| (1900..=2999).contains(&d.year()));
    date.ok_or_else(|| FieldError::new(field, format!("`{s}` is not a date (YYYY-MM-DD)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(role: Role, until: Option<&str>) -> NewOwner {
        NewOwner {
            username: "j.devries".into(),
            display_name: "Jan de Vries".into(),
            email: Some("j.devries@gemeente.example".into()),
            role,
            department: Some("Burgerzaken".into()),
            valid_from: None,
            valid_until: until.map(|d| d.parse().unwrap()),
        }
    }

    #[test]
    fn words_round_trip_and_name_the_choices() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
        assert_eq!("Intern".parse::<Role>().unwrap(), Role::Intern);
        let err = "boss".parse::<Role>().unwrap_err();
        assert!(err.contains("staff, temp, intern, contractor"), "{err}");
    }

    #[test]
    fn non_staff_needs_an_end_date() {
        for role in [Role::Temp, Role::Intern, Role::Contractor] {
            let err = owner(role, None).validate().unwrap_err();
            assert_eq!(err.field, "until");
        }
        assert!(owner(Role::Staff, None).validate().is_ok());
        assert!(owner(Role::Temp, Some("2027-01-31")).validate().is_ok());
    }

    #[test]
    fn start_after_end_is_refused() {
        let mut o = owner(Role::Temp, Some("2027-01-31"));
        o.valid_from = Some("2027-02-01".parse().unwrap());
        assert_eq!(o.validate().unwrap_err().field, "until");
    }

    #[test]
    fn usernames_and_emails_are_checked() {
        assert!(validate_username("J.deVries").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("-x").is_err());
        assert!(validate_username("jan de vries").is_err());
        assert!(validate_username("jan;drop").is_err());
        let mut o = owner(Role::Staff, None);
        o.email = Some("not-an-address".into());
        assert_eq!(o.validate().unwrap_err().field, "email");
        let mut o = owner(Role::Staff, None);
        o.email = Some("   ".into());
        assert_eq!(o.validate().unwrap().email, None);
    }

    #[test]
    fn contract_ends_at_local_midnight_after_the_last_day() {
        let mut o = owner(Role::Temp, Some("2026-10-31")).validate().unwrap();
        o.valid_from = Some("2026-06-01".parse().unwrap());
        let tz = chrono_tz::Europe::Amsterdam;
        let full = Owner {
            id: Uuid::nil(),
            username: o.username,
            display_name: o.display_name,
            email: o.email,
            role: o.role,
            department: o.department,
            valid_from: o.valid_from,
            valid_until: o.valid_until,
            disabled: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            source: crate::model::OwnerSource::Manual,
            external_id: None,
            disabled_reason: None,
            disabled_at: None,
            disabled_by_source: None,
            erased_at: None,
        };
        // 2026-11-01 00:00 in Amsterdam (CET, after DST ended on 25 Oct) is 23:00 UTC on the 31st.
        let end = full.access_ends_at(&tz).unwrap();
        assert_eq!(end.to_rfc3339(), "2026-10-31T23:00:00+00:00");
        assert!(!full.has_expired(end - chrono::Duration::seconds(1), &tz));
        assert!(full.has_expired(end, &tz));
        // 2026-06-01 00:00 CEST is 22:00 UTC the day before.
        let start = full.access_starts_at(&tz).unwrap();
        assert_eq!(start.to_rfc3339(), "2026-05-31T22:00:00+00:00");
        assert!(full.not_yet_valid(start - chrono::Duration::seconds(1), &tz));
        assert!(!full.not_yet_valid(start, &tz));
    }

    #[test]
    fn dates_are_four_digit_years() {
        assert_eq!(
            parse_date("until", "2026-10-31").unwrap().to_string(),
            "2026-10-31"
        );
        for bad in [
            "26-10-31",
            "+10000-01-01",
            "2026-1-31",
            "2026-02-30",
            "31-10-2026",
            "0999-01-01",
            "",
        ] {
            assert!(parse_date("until", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_device_built_by_hand_is_checked_too() {
        let d = NewDevice {
            owner: "j.devries".into(),
            macs: vec![MacAddr::from_octets([0x01, 0, 0x5e, 0, 0, 1])],
            label: "x".into(),
            kind: DeviceKind::Other,
        };
        assert_eq!(d.validate().unwrap_err().field, "mac");
        let d = NewDevice {
            owner: "j.devries".into(),
            macs: vec![],
            label: "x".into(),
            kind: DeviceKind::Other,
        };
        assert_eq!(d.validate().unwrap_err().field, "mac");
    }

    #[test]
    fn new_device_parses_macs_and_warns_on_private_ones() {
        let (d, warnings) = NewDevice::from_input(
            "j.devries",
            &["00-1B-21-00-00-01".into(), "da:a1:19:00:00:01".into()],
            "laptop",
            DeviceKind::Laptop,
        )
        .unwrap();
        assert_eq!(d.macs.len(), 2);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("da:a1:19:00:00:01"));
        let err = NewDevice::from_input(
            "j.devries",
            &["ff:ff:ff:ff:ff:ff".into()],
            "x",
            DeviceKind::Other,
        )
        .unwrap_err();
        assert_eq!(err.field, "mac");
        let err = NewDevice::from_input(
            "j.devries",
            &["aa:bb:cc:00:00:01".into(), "aabb.cc00.0001".into()],
            "x",
            DeviceKind::Other,
        )
        .unwrap_err();
        assert!(err.message.contains("twice"));
        assert_eq!(
            NewDevice::from_input("j.devries", &[], "x", DeviceKind::Other)
                .unwrap_err()
                .field,
            "mac"
        );
    }
}
