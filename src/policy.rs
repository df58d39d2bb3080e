//! The access decision: given one request, the registered device and owner (if any), the time
//! and the rules, whether the device may join and in which VLAN. Pure: no I/O, no clock.
//!
//! Checks, first match wins:
//!
//! 1. SSID: when `policy.ssids` is set, only those SSIDs are served (exact, case-sensitive);
//!    a request without an SSID is then refused.
//! 2. A MAB request without a usable MAC is refused.
//! 3. An unknown device is refused, or sent to the registration VLAN when
//!    `policy.unknown_device = "registration"` and `vlans.registration` is set.
//! 4. A lost, then a revoked device is refused.
//! 5. A disabled owner, an owner whose contract has not started, and one whose contract has
//!    ended (dates in `policy.timezone`) are refused.
//! 6. A compliant device with a check younger than `policy.compliance_max_age` joins its
//!    owner's role VLAN. A stale or missing check, a noncompliant and an unknown state go to
//!    the quarantine VLAN, or are refused when `policy.not_compliant = "reject"`.
//!
//! Every accept carries a Session-Timeout, so that the NAS asks again: at most
//! `policy.session_timeout`, never past the owner's contract end, and for a compliant device
//! never past the moment its compliance check goes stale. Quarantine and registration accepts
//! are held to at most an hour ([`SHORT_SESSION_SECS`]), so that a device that was fixed or
//! registered is re-evaluated soon. Every accept also carries a Class (RFC 2865 §5.25) that
//! the NAS echoes in accounting.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::config::{Config, RoleVlans, VlanConfig, VlanId, VlanName};
use crate::mac::MacAddr;
use crate::model::{Compliance, Device, DeviceStatus, Owner, Role};

/// The longest Session-Timeout (seconds) for quarantine and registration accepts, so that a
/// device that was fixed or registered meanwhile is re-evaluated within the hour.
pub const SHORT_SESSION_SECS: u32 = 3600;

/// How the device authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// MAC authentication bypass: the MAC is the identity.
    Mab,
    /// 802.1X with EAP-TLS: a client certificate.
    EapTls,
}

impl AuthMethod {
    /// The stable word: `mab` or `eap-tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Mab => "mab",
            AuthMethod::EapTls => "eap-tls",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the decision needs from one Access-Request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// How the device authenticated.
    pub method: AuthMethod,
    /// User-Name as sent (peer input: never trusted, only shown sanitized).
    pub identity: &'a str,
    /// The device MAC from Calling-Station-Id, if usable.
    pub mac: Option<MacAddr>,
    /// The NAS client's configured name.
    pub nas: &'a str,
    /// The SSID, already extracted from Called-Station-Id.
    pub ssid: Option<&'a str>,
}

/// What to do with a device that is not in the registry (`policy.unknown_device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownDevice {
    /// Refuse it.
    Reject,
    /// Accept it into `vlans.registration` (refused if that VLAN is not set).
    Registration,
}

/// What to do with a noncompliant, unknown-compliance or stale device
/// (`policy.not_compliant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotCompliant {
    /// Accept it into `vlans.quarantine`.
    Quarantine,
    /// Refuse it.
    Reject,
}

/// The rules a decision is taken under, from the configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The time zone contract dates are in.
    pub timezone: chrono_tz::Tz,
    /// The VLAN ids.
    pub vlans: VlanConfig,
    /// Which VLAN each role gets when compliant.
    pub roles: RoleVlans,
    /// A compliance check older than this is stale.
    pub compliance_max_age: chrono::Duration,
    /// Unknown devices: reject or registration VLAN.
    pub unknown_device: UnknownDevice,
    /// Noncompliant, unknown and stale devices: quarantine or reject.
    pub not_compliant: NotCompliant,
    /// The longest Session-Timeout handed out, in seconds (e.g. 28800).
    pub session_timeout: u32,
    /// If not empty, only these SSIDs are served (exact, case-sensitive); a request without
    /// an SSID is then refused.
    pub ssids: Vec<String>,
}

impl Rules {
    /// The rules in `config` (`[vlans]`, `[roles]`, `[policy]`).
    pub fn from_config(config: &Config) -> Rules {
        let p = &config.policy;
        Rules {
            timezone: p.timezone,
            vlans: config.vlans.clone(),
            roles: config.roles.clone(),
            compliance_max_age: p.compliance_max_age.chrono(),
            unknown_device: p.unknown_device,
            not_compliant: p.not_compliant,
            session_timeout: u32::try_from(p.session_timeout.0.as_secs()).unwrap_or(u32::MAX),
            ssids: p.ssids.clone(),
        }
    }
}

/// Accept or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Access-Accept.
    Accept,
    /// Access-Reject.
    Reject,
}

impl Outcome {
    /// The stable word: `accept` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accept => "accept",
            Outcome::Reject => "reject",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares [`Reason`] with its stable codes, `ALL`, `as_str`, `Display` and `FromStr`.
macro_rules! reasons {
    ($($(#[$vmeta:meta])* $variant:ident = $code:literal),+ $(,)?) => {
        /// Why a decision was taken, as a stable snake_case code (stored with the decision;
        /// never rename a code).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason { $($(#[$vmeta])* $variant),+ }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),+];

            /// The stable code.
            pub fn as_str(self) -> &'static str {
                match self { $(Reason::$variant => $code),+ }
            }
        }

        impl FromStr for Reason {
            type Err = ParseReasonError;
            fn from_str(s: &str) -> Result<Self, ParseReasonError> {
                match s {
                    $($code => Ok(Reason::$variant),)+
                    _ => Err(ParseReasonError(s.chars().take(64).collect())),
                }
            }
        }
    };
}

reasons!(
    /// Compliant device: accepted into its owner's role VLAN.
    Compliant = "compliant",
    /// Unknown device: accepted into the registration VLAN.
    Registration = "registration",
    /// The device failed its last compliance check: quarantine (or reject).
    Noncompliant = "noncompliant",
    /// The device's compliance was never established: quarantine (or reject).
    ComplianceUnknown = "compliance_unknown",
    /// The last compliance check is missing or too old: quarantine (or reject).
    ComplianceStale = "compliance_stale",
    /// The MAC (or identity) is not registered.
    UnknownDevice = "unknown_device",
    /// The device was reported lost.
    DeviceLost = "device_lost",
    /// The device was revoked.
    DeviceRevoked = "device_revoked",
    /// ICT disabled the owner.
    OwnerDisabled = "owner_disabled",
    /// The owner's contract has not started yet.
    OwnerNotYetValid = "owner_not_yet_valid",
    /// The owner's contract has ended.
    OwnerExpired = "owner_expired",
    /// The request came in on an SSID that is not served (or without an SSID).
    SsidNotServed = "ssid_not_served",
    /// A MAB request without a usable MAC address.
    NoMac = "no_mac",
    /// The role's VLAN is not configured (config validation prevents this).
    VlanNotConfigured = "vlan_not_configured",
    /// The authentication method is not served (decided by the server, not [`decide`]).
    UnsupportedMethod = "unsupported_method",
    /// MAC authentication is disabled for the NAS (decided by the server).
    MabDisabled = "mab_disabled",
    /// The MAB password is missing or not the MAC (decided by the server).
    MabBadPassword = "mab_bad_password",
    /// User-Name and Calling-Station-Id name different MACs (decided by the server).
    MacMismatch = "mac_mismatch",
    /// The EAP-TLS handshake failed: no client certificate, another CA, expired, or a TLS
    /// error (decided by the server).
    TlsFailed = "tls_failed",
    /// The supplicant refused EAP-TLS (decided by the server).
    EapMethodRefused = "eap_method_refused",
    /// The supplicant broke the EAP rules (decided by the server).
    EapProtocol = "eap_protocol",
    /// A valid certificate that belongs to no registered device: a chain alone is never
    /// enough (decided by the server).
    CertificateUnknown = "certificate_unknown",
);

impl Reason {
    /// Whether a decision with this reason can be an accept: `compliant`, `registration`, and
    /// the three quarantine reasons (which are rejects under `not_compliant = "reject"`).
    pub fn is_accept_reason(self) -> bool {
        matches!(
            self,
            Reason::Compliant
                | Reason::Registration
                | Reason::Noncompliant
                | Reason::ComplianceUnknown
                | Reason::ComplianceStale
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a [`Reason`] code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a decision reason code")]
pub struct ParseReasonError(pub String);

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Accept or reject.
    pub outcome: Outcome,
    /// The VLAN to put the device in (accepts only).
    pub vlan: Option<VlanId>,
    /// Which configured VLAN that is (accepts only).
    pub vlan_name: Option<VlanName>,
    /// The owner's role, whenever the owner is known (also on rejects, for the record).
    pub role: Option<Role>,
    /// Session-Timeout in seconds, at least 1 (accepts only).
    pub session_timeout: Option<u32>,
    /// Class attribute, `pw1;device=…;owner=…;reason=…` (accepts only).
    pub class: Option<String>,
    /// Why, as a stable code.
    pub reason: Reason,
    /// Why, in plain words for the helpdesk.
    pub message: String,
}

impl Decision {
    /// A reject with nothing else attached.
    pub fn reject(reason: Reason, message: String) -> Decision {
        Decision {
            outcome: Outcome::Reject,
            vlan: None,
            vlan_name: None,
            role: None,
            session_timeout: None,
            class: None,
            reason,
            message,
        }
    }

    fn reject_for(owner: &Owner, reason: Reason, message: String) -> Decision {
        Decision {
            role: Some(owner.role),
            ..Decision::reject(reason, message)
        }
    }
}

/// The Class attribute value for an accept: `pw1;device=<uuid>;owner=<username>;reason=<code>`,
/// with `none` for an unknown device and owner.
pub fn class_for(subject: Option<(&Device, &Owner)>, reason: Reason) -> String {
    match subject {
        Some((device, owner)) => format!(
            "pw1;device={};owner={};reason={}",
            device.id,
            owner.username,
            reason.as_str()
        ),
        None => format!("pw1;device=none;owner=none;reason={}", reason.as_str()),
    }
}

/// Decides one request. `subject` is the registered device found for the request and its
/// owner, `None` when the device is unknown; `now` is the current time.
pub fn decide(
    req: &Request,
    subject: Option<(&Device, &Owner)>,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Decision {
    // 1. SSID
    if !rules.ssids.is_empty() {
        let served = rules.ssids.join(", ");
        match req.ssid {
            Some(ssid) if rules.ssids.iter().any(|s| s == ssid) => {}
            Some(ssid) => {
                return Decision::reject(
                    Reason::SsidNotServed,
                    format!(
                        "rejected: SSID {} is not served (served: {served})",
                        printable(ssid)
                    ),
                )
            }
            None => {
                return Decision::reject(
                    Reason::SsidNotServed,
                    format!("rejected: the request names no SSID (served: {served})"),
                )
            }
        }
    }

    // 2. MAB needs a MAC
    if req.method == AuthMethod::Mab && req.mac.is_none() {
        return Decision::reject(
            Reason::NoMac,
            format!(
                "rejected: MAC authentication without a usable MAC address (User-Name `{}`)",
                printable(req.identity)
            ),
        );
    }

    // 3. unknown device
    let Some((device, owner)) = subject else {
        return unknown_device(req, rules);
    };
    let tz = &rules.timezone;
    let who = &owner.username;
    let dev = short_id(device);

    // 4. device status
    match device.status {
        DeviceStatus::Active => {}
        DeviceStatus::Lost => {
            return Decision::reject_for(
                owner,
                Reason::DeviceLost,
                format!(
                    "rejected: device {dev} of {who} was reported lost{}",
                    status_details(device, rules)
                ),
            )
        }
        DeviceStatus::Revoked => {
            return Decision::reject_for(
                owner,
                Reason::DeviceRevoked,
                format!(
                    "rejected: device {dev} of {who} was revoked{}",
                    status_details(device, rules)
                ),
            )
        }
    }

    // 5. owner
    if owner.disabled {
        return Decision::reject_for(
            owner,
            Reason::OwnerDisabled,
            format!("rejected: owner {who} is disabled"),
        );
    }
    if owner.not_yet_valid(now, tz) {
        let from = owner.valid_from.map(|d| d.to_string()).unwrap_or_default();
        return Decision::reject_for(
            owner,
            Reason::OwnerNotYetValid,
            format!("rejected: the contract of {who} starts on {from}"),
        );
    }
    if owner.has_expired(now, tz) {
        let until = owner.valid_until.map(|d| d.to_string()).unwrap_or_default();
        return Decision::reject_for(
            owner,
            Reason::OwnerExpired,
            format!("rejected: the contract of {who} ended on {until}"),
        );
    }
    let contract_end = owner.access_ends_at(tz);

    // 6. compliance
    let max_age = rules.compliance_max_age;
    let (reason, what) = match (device.compliance, device.compliance_checked_at) {
        (Compliance::Compliant, Some(checked)) if now - checked < max_age => {
            return compliant(
                device,
                owner,
                now,
                rules,
                [contract_end, Some(checked + max_age)],
            );
        }
        (Compliance::Compliant, Some(checked)) => (
            Reason::ComplianceStale,
            format!(
                "compliance of {who}'s device was last checked {}, older than {}",
                checked.with_timezone(tz).date_naive(),
                human_duration(max_age)
            ),
        ),
        (Compliance::Compliant, None) => (
            Reason::ComplianceStale,
            format!("compliance of {who}'s device has no check date"),
        ),
        (Compliance::Noncompliant, _) => (
            Reason::Noncompliant,
            format!("device of {who} is noncompliant{}", note(device)),
        ),
        (Compliance::Unknown, _) => (
            Reason::ComplianceUnknown,
            format!("compliance of {who}'s device is unknown{}", note(device)),
        ),
    };
    match rules.not_compliant {
        NotCompliant::Reject => Decision::reject_for(owner, reason, format!("rejected: {what}")),
        NotCompliant::Quarantine => {
            let vlan = rules.vlans.quarantine;
            Decision {
                outcome: Outcome::Accept,
                vlan: Some(vlan),
                vlan_name: Some(VlanName::Quarantine),
                role: Some(owner.role),
                session_timeout: Some(session_timeout(
                    rules.session_timeout.min(SHORT_SESSION_SECS),
                    now,
                    [contract_end],
                )),
                class: Some(class_for(Some((device, owner)), reason)),
                reason,
                message: format!("quarantine VLAN {vlan}: {what}"),
            }
        }
    }
}

fn unknown_device(req: &Request, rules: &Rules) -> Decision {
    let what = match req.mac {
        Some(mac) => format!("MAC {mac} is not registered"),
        None => format!("`{}` is not a registered device", printable(req.identity)),
    };
    match (rules.unknown_device, rules.vlans.registration) {
        (UnknownDevice::Registration, Some(vlan)) => Decision {
            outcome: Outcome::Accept,
            vlan: Some(vlan),
            vlan_name: Some(VlanName::Registration),
            role: None,
            session_timeout: Some(rules.session_timeout.clamp(1, SHORT_SESSION_SECS)),
            class: Some(class_for(None, Reason::Registration)),
            reason: Reason::Registration,
            message: format!("registration VLAN {vlan}: {what}"),
        },
        (UnknownDevice::Registration, None) => Decision::reject(
            Reason::UnknownDevice,
            format!("rejected: {what} (no registration VLAN is configured)"),
        ),
        (UnknownDevice::Reject, _) => {
            Decision::reject(Reason::UnknownDevice, format!("rejected: {what}"))
        }
    }
}

fn compliant<const N: usize>(
    device: &Device,
    owner: &Owner,
    now: DateTime<Utc>,
    rules: &Rules,
    ends: [Option<DateTime<Utc>>; N],
) -> Decision {
    let name = rules.roles.for_role(owner.role);
    let Some(vlan) = rules.vlans.get(name) else {
        return Decision::reject_for(
            owner,
            Reason::VlanNotConfigured,
            format!(
                "rejected: role {} of {} maps to the {name} VLAN, which is not configured",
                owner.role, owner.username
            ),
        );
    };
    Decision {
        outcome: Outcome::Accept,
        vlan: Some(vlan),
        vlan_name: Some(name),
        role: Some(owner.role),
        session_timeout: Some(session_timeout(rules.session_timeout, now, ends)),
        class: Some(class_for(Some((device, owner)), Reason::Compliant)),
        reason: Reason::Compliant,
        message: format!(
            "accepted into {name} VLAN {vlan} as {}: device {} of {}",
            owner.role,
            short_id(device),
            owner.username
        ),
    }
}

/// `max`, cut to the whole seconds left until each of `ends`, at least 1.
fn session_timeout<const N: usize>(
    max: u32,
    now: DateTime<Utc>,
    ends: [Option<DateTime<Utc>>; N],
) -> u32 {
    ends.into_iter()
        .flatten()
        .map(|end| u32::try_from((end - now).num_seconds().max(0)).unwrap_or(u32::MAX))
        .fold(max, u32::min)
        .max(1)
}

/// The first 8 hex digits of the device id, for messages.
fn short_id(device: &Device) -> String {
    let mut s = device.id.simple().to_string();
    s.truncate(8);
    s.push('…');
    s
}

/// ` on 2026-11-02 (reason: stolen on train)`, for what is known.
fn status_details(device: &Device, rules: &Rules) -> String {
    let mut out = String::new();
    if let Some(at) = device.status_changed_at {
        out.push_str(&format!(
            " on {}",
            at.with_timezone(&rules.timezone).date_naive()
        ));
    }
    if let Some(reason) = device.status_reason.as_deref().map(str::trim) {
        if !reason.is_empty() {
            out.push_str(&format!(" (reason: {})", printable(reason)));
        }
    }
    out
}

/// ` (note: antivirus off)` when the last compliance check left a note.
fn note(device: &Device) -> String {
    match device.compliance_note.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => format!(" (note: {})", printable(n)),
        _ => String::new(),
    }
}

/// `30 days`, `8 hours`, `15 minutes` or `90 seconds`.
fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    let (n, unit) = if secs != 0 && secs % 86_400 == 0 {
        (secs / 86_400, "day")
    } else if secs != 0 && secs % 3600 == 0 {
        (secs / 3600, "hour")
    } else if secs != 0 && secs % 60 == 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Text for a message: control characters replaced, at most 64 characters.
fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};
    use uuid::Uuid;

    use crate::model::DeviceKind;

    const MAC: MacAddr = MacAddr::from_octets([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);

    fn vlan(n: u16) -> VlanId {
        VlanId::new(n).expect("test VLAN in range")
    }

    fn rules() -> Rules {
        Rules {
            timezone: chrono_tz::Europe::Amsterdam,
            vlans: VlanConfig {
                workspace: vlan(100),
                guest: vlan(200),
                quarantine: vlan(666),
                registration: None,
            },
            roles: RoleVlans::default(),
            compliance_max_age: chrono::Duration::days(30),
            unknown_device: UnknownDevice::Reject,
            not_compliant: NotCompliant::Quarantine,
            session_timeout: 28_800,
            ssids: Vec::new(),
        }
    }

    /// 2026-11-15 12:00 UTC (13:00 in Amsterdam).
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn owner(role: Role) -> Owner {
        Owner {
            id: Uuid::from_u128(1),
            username: "j.devries".into(),
            display_name: "Jan de Vries".into(),
            email: None,
            role,
            department: None,
            valid_from: None,
            valid_until: (role != Role::Staff).then(|| day(2027, 6, 30)),
            disabled: false,
            created_at: now() - chrono::Duration::days(100),
            updated_at: now() - chrono::Duration::days(100),
            source: crate::model::OwnerSource::Manual,
            external_id: None,
            disabled_reason: None,
            disabled_at: None,
            disabled_by_source: None,
            erased_at: None,
        }
    }

    fn device(o: &Owner) -> Device {
        Device {
            id: Uuid::from_u128(0x3f2a_1b9c_0000_4000_8000_0000_0000_0001),
            owner_id: o.id,
            owner: o.username.clone(),
            label: "ThinkPad".into(),
            kind: DeviceKind::Laptop,
            macs: vec![MAC],
            status: DeviceStatus::Active,
            status_reason: None,
            status_changed_at: None,
            compliance: Compliance::Compliant,
            compliance_checked_at: Some(now() - chrono::Duration::days(1)),
            compliance_note: None,
            cert_fingerprint: None,
            cert_serial: None,
            created_by: "ict".into(),
            created_at: now() - chrono::Duration::days(50),
            updated_at: now() - chrono::Duration::days(1),
            last_seen_at: None,
            last_seen_nas: None,
            last_seen_ssid: None,
        }
    }

    fn mab() -> Request<'static> {
        Request {
            method: AuthMethod::Mab,
            identity: "001122334455",
            mac: Some(MAC),
            nas: "ap-stadhuis-1",
            ssid: Some("Gemeente-Werkplek"),
        }
    }

    fn run(d: &Device, o: &Owner, rules: &Rules) -> Decision {
        decide(&mab(), Some((d, o)), now(), rules)
    }

    fn assert_reject(dec: &Decision, reason: Reason) {
        assert_eq!(dec.outcome, Outcome::Reject, "{dec:?}");
        assert_eq!(dec.reason, reason, "{dec:?}");
        assert_eq!(dec.vlan, None);
        assert_eq!(dec.vlan_name, None);
        assert_eq!(dec.session_timeout, None);
        assert_eq!(dec.class, None);
    }

    #[test]
    fn staff_compliant_joins_the_workspace() {
        let o = owner(Role::Staff);
        let d = device(&o);
        let dec = run(&d, &o, &rules());
        assert_eq!(dec.outcome, Outcome::Accept);
        assert_eq!(dec.reason, Reason::Compliant);
        assert_eq!(dec.vlan, Some(vlan(100)));
        assert_eq!(dec.vlan_name, Some(VlanName::Workspace));
        assert_eq!(dec.role, Some(Role::Staff));
        assert_eq!(dec.session_timeout, Some(28_800));
        assert!(
            dec.message
                .starts_with("accepted into workspace VLAN 100 as staff"),
            "{}",
            dec.message
        );
        assert!(dec.message.contains("j.devries"));
        assert_eq!(
            dec.class.as_deref(),
            Some(
                "pw1;device=3f2a1b9c-0000-4000-8000-000000000001;owner=j.devries;reason=compliant"
            )
        );
    }

    #[test]
    fn temps_interns_and_contractors_compliant_join_the_guest_vlan() {
        for role in [Role::Temp, Role::Intern, Role::Contractor] {
            let o = owner(role);
            let d = device(&o);
            let dec = run(&d, &o, &rules());
            assert_eq!(dec.outcome, Outcome::Accept, "{role}");
            assert_eq!(dec.reason, Reason::Compliant);
            assert_eq!(dec.vlan, Some(vlan(200)), "{role}");
            assert_eq!(dec.vlan_name, Some(VlanName::Guest));
            assert_eq!(dec.role, Some(role));
            assert_eq!(dec.session_timeout, Some(28_800));
            assert!(
                dec.message
                    .starts_with(&format!("accepted into guest VLAN 200 as {role}")),
                "{}",
                dec.message
            );
        }
    }

    #[test]
    fn role_mapped_to_an_unset_vlan_is_refused() {
        let mut r = rules();
        r.roles.staff = VlanName::Registration;
        let o = owner(Role::Staff);
        let d = device(&o);
        let dec = run(&d, &o, &r);
        assert_reject(&dec, Reason::VlanNotConfigured);
        assert_eq!(dec.role, Some(Role::Staff));
    }

    /// The four not-compliant cases and the reason each must give.
    fn not_compliant_cases() -> Vec<(&'static str, Device, Owner, Reason, &'static str)> {
        let o = owner(Role::Staff);
        let mut non = device(&o);
        non.compliance = Compliance::Noncompliant;
        non.compliance_note = Some("antivirus off".into());
        let mut unknown = device(&o);
        unknown.compliance = Compliance::Unknown;
        unknown.compliance_checked_at = None;
        let mut never = device(&o);
        never.compliance_checked_at = None;
        let mut old = device(&o);
        old.compliance_checked_at = Some(Utc.with_ymd_and_hms(2026, 10, 15, 11, 0, 0).unwrap());
        vec![
            (
                "noncompliant",
                non,
                o.clone(),
                Reason::Noncompliant,
                "device of j.devries is noncompliant (note: antivirus off)",
            ),
            (
                "unknown",
                unknown,
                o.clone(),
                Reason::ComplianceUnknown,
                "compliance of j.devries's device is unknown",
            ),
            (
                "never checked",
                never,
                o.clone(),
                Reason::ComplianceStale,
                "compliance of j.devries's device has no check date",
            ),
            (
                "too old",
                old,
                o,
                Reason::ComplianceStale,
                "compliance of j.devries's device was last checked 2026-10-15, older than 30 days",
            ),
        ]
    }

    #[test]
    fn not_compliant_goes_to_quarantine() {
        for (case, d, o, reason, what) in not_compliant_cases() {
            let dec = run(&d, &o, &rules());
            assert_eq!(dec.outcome, Outcome::Accept, "{case}");
            assert_eq!(dec.reason, reason, "{case}");
            assert_eq!(dec.vlan, Some(vlan(666)), "{case}");
            assert_eq!(dec.vlan_name, Some(VlanName::Quarantine), "{case}");
            assert_eq!(dec.session_timeout, Some(SHORT_SESSION_SECS), "{case}");
            assert_eq!(
                dec.message,
                format!("quarantine VLAN 666: {what}"),
                "{case}"
            );
            assert_eq!(
                dec.class,
                Some(format!(
                    "pw1;device={};owner=j.devries;reason={}",
                    d.id,
                    reason.as_str()
                ))
            );
        }
    }

    #[test]
    fn not_compliant_is_refused_under_reject() {
        let r = Rules {
            not_compliant: NotCompliant::Reject,
            ..rules()
        };
        for (case, d, o, reason, what) in not_compliant_cases() {
            let dec = run(&d, &o, &r);
            assert_reject(&dec, reason);
            assert_eq!(dec.message, format!("rejected: {what}"), "{case}");
        }
    }

    #[test]
    fn quarantine_timeout_is_short_and_cut_to_the_contract() {
        let mut r = rules();
        r.session_timeout = 600;
        let o = owner(Role::Staff);
        let mut d = device(&o);
        d.compliance = Compliance::Noncompliant;
        assert_eq!(run(&d, &o, &r).session_timeout, Some(600));

        // contract ends at midnight tonight (Amsterdam, CET): 2026-11-15T23:00Z, 11h away;
        // 30 minutes before that the quarantine session lasts 1800 s
        let mut o = owner(Role::Temp);
        o.valid_until = Some(day(2026, 11, 15));
        let at = Utc.with_ymd_and_hms(2026, 11, 15, 22, 30, 0).unwrap();
        let dec = decide(&mab(), Some((&d, &o)), at, &rules());
        assert_eq!(dec.reason, Reason::Noncompliant);
        assert_eq!(dec.session_timeout, Some(1800));
    }

    #[test]
    fn unknown_device_is_refused_by_default() {
        let dec = decide(&mab(), None, now(), &rules());
        assert_reject(&dec, Reason::UnknownDevice);
        assert_eq!(dec.role, None);
        assert_eq!(
            dec.message,
            "rejected: MAC 00:11:22:33:44:55 is not registered"
        );
    }

    #[test]
    fn unknown_device_goes_to_registration_when_configured() {
        let mut r = rules();
        r.unknown_device = UnknownDevice::Registration;
        r.vlans.registration = Some(vlan(900));
        let dec = decide(&mab(), None, now(), &r);
        assert_eq!(dec.outcome, Outcome::Accept);
        assert_eq!(dec.reason, Reason::Registration);
        assert_eq!(dec.vlan, Some(vlan(900)));
        assert_eq!(dec.vlan_name, Some(VlanName::Registration));
        assert_eq!(dec.role, None);
        assert_eq!(dec.session_timeout, Some(SHORT_SESSION_SECS));
        assert_eq!(
            dec.class.as_deref(),
            Some("pw1;device=none;owner=none;reason=registration")
        );
        assert_eq!(
            dec.message,
            "registration VLAN 900: MAC 00:11:22:33:44:55 is not registered"
        );

        // a shorter configured maximum wins
        r.session_timeout = 300;
        assert_eq!(decide(&mab(), None, now(), &r).session_timeout, Some(300));
    }

    #[test]
    fn unknown_device_is_refused_when_registration_vlan_is_unset() {
        let mut r = rules();
        r.unknown_device = UnknownDevice::Registration;
        let dec = decide(&mab(), None, now(), &r);
        assert_reject(&dec, Reason::UnknownDevice);
        assert!(
            dec.message.contains("no registration VLAN"),
            "{}",
            dec.message
        );
    }

    #[test]
    fn registration_vlan_alone_does_not_admit_unknown_devices() {
        let mut r = rules();
        r.vlans.registration = Some(vlan(900));
        assert_reject(&decide(&mab(), None, now(), &r), Reason::UnknownDevice);
    }

    #[test]
    fn unknown_eap_identity_is_named_sanitized() {
        let req = Request {
            method: AuthMethod::EapTls,
            identity: "host/pc\u{7}1",
            mac: None,
            ..mab()
        };
        let dec = decide(&req, None, now(), &rules());
        assert_reject(&dec, Reason::UnknownDevice);
        assert_eq!(
            dec.message,
            "rejected: `host/pc?1` is not a registered device"
        );
    }

    #[test]
    fn lost_device_is_refused() {
        let o = owner(Role::Staff);
        let mut d = device(&o);
        d.status = DeviceStatus::Lost;
        d.status_reason = Some("stolen on train".into());
        // 23:30 UTC is already the next day in Amsterdam
        d.status_changed_at = Some(Utc.with_ymd_and_hms(2026, 11, 1, 23, 30, 0).unwrap());
        let dec = run(&d, &o, &rules());
        assert_reject(&dec, Reason::DeviceLost);
        assert_eq!(dec.role, Some(Role::Staff));
        assert_eq!(
            dec.message,
            "rejected: device 3f2a1b9c… of j.devries was reported lost on 2026-11-02 (reason: stolen on train)"
        );
    }

    #[test]
    fn revoked_device_is_refused() {
        let o = owner(Role::Staff);
        let mut d = device(&o);
        d.status = DeviceStatus::Revoked;
        let dec = run(&d, &o, &rules());
        assert_reject(&dec, Reason::DeviceRevoked);
        assert_eq!(
            dec.message,
            "rejected: device 3f2a1b9c… of j.devries was revoked"
        );
    }

    #[test]
    fn device_status_is_checked_before_the_owner() {
        let mut o = owner(Role::Staff);
        o.disabled = true;
        let mut d = device(&o);
        d.status = DeviceStatus::Lost;
        assert_reject(&run(&d, &o, &rules()), Reason::DeviceLost);
    }

    #[test]
    fn disabled_owner_is_refused() {
        let mut o = owner(Role::Staff);
        o.disabled = true;
        let d = device(&o);
        let dec = run(&d, &o, &rules());
        assert_reject(&dec, Reason::OwnerDisabled);
        assert_eq!(dec.message, "rejected: owner j.devries is disabled");
    }

    #[test]
    fn owner_not_yet_valid_is_refused() {
        let mut o = owner(Role::Temp);
        o.valid_from = Some(day(2026, 11, 16));
        let d = device(&o);
        let dec = run(&d, &o, &rules());
        assert_reject(&dec, Reason::OwnerNotYetValid);
        assert_eq!(
            dec.message,
            "rejected: the contract of j.devries starts on 2026-11-16"
        );

        // from today: in
        o.valid_from = Some(day(2026, 11, 15));
        assert_eq!(run(&d, &o, &rules()).reason, Reason::Compliant);
        // the first day starts at local midnight: 2026-11-14T23:00Z
        let before = Utc.with_ymd_and_hms(2026, 11, 14, 22, 59, 59).unwrap();
        assert_eq!(
            decide(&mab(), Some((&d, &o)), before, &rules()).reason,
            Reason::OwnerNotYetValid
        );
    }

    #[test]
    fn expired_owner_is_refused() {
        let mut o = owner(Role::Contractor);
        o.valid_until = Some(day(2026, 11, 14));
        let d = device(&o);
        let dec = run(&d, &o, &rules());
        assert_reject(&dec, Reason::OwnerExpired);
        assert_eq!(dec.role, Some(Role::Contractor));
        assert_eq!(
            dec.message,
            "rejected: the contract of j.devries ended on 2026-11-14"
        );

        // the last day counts in full, until local midnight
        o.valid_until = Some(day(2026, 11, 15));
        assert_eq!(run(&d, &o, &rules()).reason, Reason::Compliant);
        let midnight = Utc.with_ymd_and_hms(2026, 11, 15, 23, 0, 0).unwrap();
        assert_eq!(
            decide(&mab(), Some((&d, &o)), midnight, &rules()).reason,
            Reason::OwnerExpired
        );
    }

    #[test]
    fn owner_is_checked_before_compliance() {
        let mut o = owner(Role::Temp);
        o.valid_until = Some(day(2026, 11, 1));
        let mut d = device(&o);
        d.compliance = Compliance::Noncompliant;
        assert_reject(&run(&d, &o, &rules()), Reason::OwnerExpired);
    }

    #[test]
    fn contract_ending_in_two_hours_caps_the_session() {
        let o0 = owner(Role::Temp);
        let d = device(&o0);
        // winter: 2026-10-31 ends at 2026-11-01 00:00 CET (+01:00) = 2026-10-31T23:00Z
        // summer: 2026-07-15 ends at 2026-07-16 00:00 CEST (+02:00) = 2026-07-15T22:00Z
        // DST starts 2026-03-29 02:00, so 2026-03-28 still ends at 00:00 CET = 23:00Z
        for (until, now) in [
            (
                day(2026, 10, 31),
                Utc.with_ymd_and_hms(2026, 10, 31, 21, 0, 0),
            ),
            (
                day(2026, 7, 15),
                Utc.with_ymd_and_hms(2026, 7, 15, 20, 0, 0),
            ),
            (
                day(2026, 3, 28),
                Utc.with_ymd_and_hms(2026, 3, 28, 21, 0, 0),
            ),
        ] {
            let now = now.unwrap();
            let mut o = o0.clone();
            o.valid_until = Some(until);
            let mut d = d.clone();
            d.compliance_checked_at = Some(now - chrono::Duration::days(1));
            let dec = decide(&mab(), Some((&d, &o)), now, &rules());
            assert_eq!(dec.reason, Reason::Compliant, "{until}");
            assert_eq!(dec.session_timeout, Some(7200), "{until}");
        }
    }

    #[test]
    fn session_timeout_is_at_least_one_second() {
        let mut o = owner(Role::Temp);
        o.valid_until = Some(day(2026, 11, 15));
        let d = device(&o);
        let at = Utc.with_ymd_and_hms(2026, 11, 15, 22, 59, 59).unwrap()
            + chrono::Duration::milliseconds(500);
        let dec = decide(&mab(), Some((&d, &o)), at, &rules());
        assert_eq!(dec.reason, Reason::Compliant);
        assert_eq!(dec.session_timeout, Some(1));
    }

    #[test]
    fn compliance_going_stale_in_ten_minutes_caps_the_session() {
        let o = owner(Role::Staff);
        let mut d = device(&o);
        d.compliance_checked_at =
            Some(now() - chrono::Duration::days(30) + chrono::Duration::minutes(10));
        let dec = run(&d, &o, &rules());
        assert_eq!(dec.reason, Reason::Compliant);
        assert_eq!(dec.session_timeout, Some(600));

        // exactly max_age old: stale
        d.compliance_checked_at = Some(now() - chrono::Duration::days(30));
        assert_eq!(run(&d, &o, &rules()).reason, Reason::ComplianceStale);
    }

    #[test]
    fn ssid_rule() {
        let mut r = rules();
        r.ssids = vec!["Gemeente-Werkplek".into()];
        let o = owner(Role::Staff);
        let d = device(&o);

        // allowed
        assert_eq!(run(&d, &o, &r).reason, Reason::Compliant);

        // refused, and the SSID check comes first, before even the device
        let guest = Request {
            ssid: Some("Guest-Open"),
            ..mab()
        };
        let dec = decide(&guest, Some((&d, &o)), now(), &r);
        assert_reject(&dec, Reason::SsidNotServed);
        assert_eq!(
            dec.message,
            "rejected: SSID Guest-Open is not served (served: Gemeente-Werkplek)"
        );
        assert_reject(&decide(&guest, None, now(), &r), Reason::SsidNotServed);

        // case-sensitive
        let lower = Request {
            ssid: Some("gemeente-werkplek"),
            ..mab()
        };
        assert_reject(
            &decide(&lower, Some((&d, &o)), now(), &r),
            Reason::SsidNotServed,
        );

        // absent: refused when a list is set, fine when it is not
        let none = Request {
            ssid: None,
            ..mab()
        };
        assert_reject(
            &decide(&none, Some((&d, &o)), now(), &r),
            Reason::SsidNotServed,
        );
        assert_eq!(
            decide(&none, Some((&d, &o)), now(), &rules()).reason,
            Reason::Compliant
        );
        assert_eq!(
            decide(&guest, Some((&d, &o)), now(), &rules()).reason,
            Reason::Compliant
        );
    }

    #[test]
    fn mab_without_mac_is_refused() {
        let req = Request {
            mac: None,
            identity: "not-a-mac",
            ..mab()
        };
        let dec = decide(&req, None, now(), &rules());
        assert_reject(&dec, Reason::NoMac);
        assert!(dec.message.contains("not-a-mac"), "{}", dec.message);

        // not for EAP-TLS, where the certificate identifies the device
        let o = owner(Role::Staff);
        let d = device(&o);
        let eap = Request {
            method: AuthMethod::EapTls,
            ..req
        };
        assert_eq!(
            decide(&eap, Some((&d, &o)), now(), &rules()).reason,
            Reason::Compliant
        );
    }

    #[test]
    fn reason_codes_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &r in Reason::ALL {
            let code = r.as_str();
            assert!(seen.insert(code), "duplicate code {code}");
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code} is not snake_case"
            );
            assert_eq!(code.parse::<Reason>(), Ok(r));
            assert_eq!(r.to_string(), code);
        }
        assert_eq!(Reason::ALL.len(), 22);
        assert!("Compliant".parse::<Reason>().is_err());
        assert!("".parse::<Reason>().is_err());
        assert_eq!(
            "nope".parse::<Reason>().unwrap_err().to_string(),
            "`nope` is not a decision reason code"
        );
    }

    #[test]
    fn accept_reasons() {
        let accepts: Vec<_> = Reason::ALL
            .iter()
            .filter(|r| r.is_accept_reason())
            .map(|r| r.as_str())
            .collect();
        assert_eq!(
            accepts,
            [
                "compliant",
                "registration",
                "noncompliant",
                "compliance_unknown",
                "compliance_stale"
            ]
        );
    }

    #[test]
    fn words() {
        assert_eq!(AuthMethod::Mab.as_str(), "mab");
        assert_eq!(AuthMethod::EapTls.as_str(), "eap-tls");
        assert_eq!(Outcome::Accept.as_str(), "accept");
        assert_eq!(Outcome::Reject.as_str(), "reject");
    }

    #[test]
    fn class_format() {
        let o = owner(Role::Intern);
        let d = device(&o);
        assert_eq!(
            class_for(Some((&d, &o)), Reason::Noncompliant),
            "pw1;device=3f2a1b9c-0000-4000-8000-000000000001;owner=j.devries;reason=noncompliant"
        );
        assert_eq!(
            class_for(None, Reason::Registration),
            "pw1;device=none;owner=none;reason=registration"
        );
    }

    #[test]
    fn rule_enums_deserialize_lowercase() {
        #[derive(Deserialize)]
        struct T {
            u: UnknownDevice,
            n: NotCompliant,
        }
        let t: T = serde_json::from_str(r#"{"u":"registration","n":"reject"}"#).unwrap();
        assert_eq!(t.u, UnknownDevice::Registration);
        assert_eq!(t.n, NotCompliant::Reject);
        let t: T = serde_json::from_str(r#"{"u":"reject","n":"quarantine"}"#).unwrap();
        assert_eq!(t.u, UnknownDevice::Reject);
        assert_eq!(t.n, NotCompliant::Quarantine);
        assert!(serde_json::from_str::<T>(r#"{"u":"Reject","n":"quarantine"}"#).is_err());
    }
}
