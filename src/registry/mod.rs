//! The device registry: the rules for changing it (one place, both stores) on top of one
//! storage trait with a PostgreSQL and an SQLite implementation.
//!
//! Every change runs in one transaction that also writes its audit entry: a refused change
//! writes nothing.

pub mod accounts;
mod activity_sql;
pub mod audit;
pub mod coa;
mod devices;
mod owners;
mod postgres;
pub mod posture;
pub mod privacy;
pub mod probe;
mod reads;
mod registry_sql;
mod rows;
pub mod schema;
mod sql;
mod sqlite;
mod store;
pub mod tokens;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::mac::MacAddr;
use crate::model::{
    validate_username, Compliance, Device, DeviceStatus, FieldError, NewDevice, NewOwner, Owner,
};

pub use devices::{DeviceEdit, DeviceQuery};
pub use owners::{
    ChangeKind, ImportColumns, ImportOptions, ImportReport, OwnerChange, OwnerEdit, OwnerQuery,
};
pub use store::{
    ActivityStore, AuditFilter, ChangeWatch, DeviceCertificate, Duty, Leadership, NewAuditEntry,
    ReadStore, RegistryChange, Store, StoreError, StoreTx, WithdrawnCertificate,
};

/// Registry rules that come from the config.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Devices (not revoked) per owner.
    pub max_devices_per_owner: u32,
    /// Time zone of contract dates.
    pub timezone: chrono_tz::Tz,
}

/// Who makes a change, and when.
#[derive(Debug, Clone)]
pub struct Change {
    /// Written to the audit log.
    pub actor: String,
    /// The clock, passed in.
    pub now: DateTime<Utc>,
}

impl Change {
    /// A change by `actor` now. The clock is cut to microseconds, the resolution both stores
    /// keep, so that a returned record equals the stored one.
    pub fn by(actor: impl Into<String>) -> Self {
        Change {
            actor: actor.into(),
            now: Utc::now().trunc_subsecs(6),
        }
    }
}

/// Why the registry refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// An input field is wrong.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// `owner add` for a username that exists (in any case).
    #[error("owner {0} already exists")]
    OwnerExists(String),
    /// No owner with that username.
    #[error("no owner {0} in the registry")]
    UnknownOwner(String),
    /// No device with that id or MAC.
    #[error("no device {0} in the registry")]
    UnknownDevice(String),
    /// An id prefix that fits more than one device.
    #[error("`{0}` matches more than one device; give more of the id")]
    AmbiguousDevice(String),
    /// A MAC that belongs to another device already.
    #[error("{mac} is already registered to device {device} (\"{label}\", {status}) of {owner}")]
    MacTaken {
        /// The MAC.
        mac: MacAddr,
        /// The device holding it.
        device: Uuid,
        /// Its label.
        label: String,
        /// Its status.
        status: DeviceStatus,
        /// Its owner's username.
        owner: String,
    },
    /// The owner has as many devices as allowed.
    #[error("{owner} already has {limit} devices, the most allowed (policy.max_devices_per_owner); revoke one first")]
    DeviceLimit {
        /// Username.
        owner: String,
        /// The limit.
        limit: u32,
    },
    /// The owner is disabled.
    #[error("owner {0} is disabled")]
    OwnerDisabled(String),
    /// The owner's contract has ended.
    #[error("the contract of {owner} ended on {last_day}")]
    OwnerExpired {
        /// Username.
        owner: String,
        /// Last valid day.
        last_day: chrono::NaiveDate,
    },
    /// A status change that the lifecycle does not allow.
    #[error("device {device} is {from}; it cannot become {to}")]
    StatusTransition {
        /// Device id.
        device: Uuid,
        /// Current status.
        from: DeviceStatus,
        /// Requested status.
        to: DeviceStatus,
    },
    /// A certificate or a posture report for a device that is lost or revoked.
    #[error("device {device} is {status}; only an active device {what}")]
    DeviceNotActive {
        /// Device id.
        device: Uuid,
        /// Its status.
        status: DeviceStatus,
        /// What was refused, as the end of the sentence: `gets a certificate`.
        what: &'static str,
    },
    /// `owner erase` of a person who has not left.
    #[error("{0} has not left: disable the owner (owner disable --reason ...) or end the contract first; erasure is for people who have left")]
    OwnerActive(String),
    /// `owner delete` of an owner who still has devices.
    #[error("{owner} still has {devices} device(s); delete those first (device delete), or disable the owner instead (owner disable), which keeps the history")]
    OwnerHasDevices {
        /// Username.
        owner: String,
        /// How many.
        devices: u32,
    },
    /// `device delete` of a device with a certificate that is still valid.
    #[error("device {device} has a certificate valid until {until}; it stays on the CRL until then: revoke the device now and delete it after that date")]
    DeviceCertificateValid {
        /// Device id.
        device: Uuid,
        /// When its last certificate ends.
        until: DateTime<Utc>,
    },
    /// A full export that would disable more owners than allowed: nothing written.
    #[error("{missing} owner(s) managed by {feed} are not in the export and would be disabled, more than the {max} allowed; nothing changed (check the export, or allow it: --confirm-disable {missing} / directory.max_disable)")]
    TooManyMissing {
        /// Owners that would be disabled.
        missing: u64,
        /// The limit.
        max: u64,
        /// The feed.
        feed: crate::model::OwnerSource,
    },
    /// A CSV import with bad rows, none written.
    #[error("{} bad row(s), nothing imported:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    ImportRejected(Vec<RowProblem>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A bad row in an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    /// 1-based line in the file.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// One row of an owner import: its line and what it holds (or why it could not be read).
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// 1-based line in the file (the entry's number in a directory search).
    pub line: u64,
    /// The owner, or the reason the row is bad.
    pub owner: Result<NewOwner, String>,
    /// The person's id in the feed (a directory entry's UUID), kept on the owner.
    pub external_id: Option<String>,
    /// The username a bad row names, as far as it could be read: with `--skip-bad` and a full
    /// export, the person is then skipped, not taken for gone and disabled.
    pub named: Option<String>,
}

/// A certificate just issued to a device, to record: what identifies and dates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCertificate {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
}

/// Why a certificate is on the CRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationCause {
    /// A newer certificate replaced it (RFC 5280 reason superseded).
    Superseded,
    /// Its device is revoked for good (cessationOfOperation).
    DeviceRevoked,
    /// Its device is reported lost (certificateHold: `device found` releases it).
    DeviceLost,
}

/// One CRL entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revocation {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Since when.
    pub at: DateTime<Utc>,
    /// Why.
    pub cause: RevocationCause,
    /// The device.
    pub device_id: Uuid,
    /// When the certificate was issued (during a CA rollover: which CA's CRL lists it).
    pub issued_at: DateTime<Utc>,
}

/// What the audit log shows of a device's certificate: never key material.
#[derive(Debug, Clone, Serialize)]
struct CertificateAudit<'a> {
    cert_serial: Option<&'a str>,
    cert_fingerprint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<DateTime<Utc>>,
}

/// A device reference as people type it: a full id, an id prefix, or a MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRef {
    /// Full UUID.
    Id(Uuid),
    /// At least 4 hex digits of the start of the id.
    IdPrefix(String),
    /// Any MAC spelling.
    Mac(MacAddr),
}

impl DeviceRef {
    /// Reads an id, id prefix or MAC.
    pub fn parse(s: &str) -> Result<DeviceRef, FieldError> {
        let s = s.trim();
        if let Ok(id) = Uuid::parse_str(s) {
            return Ok(DeviceRef::Id(id));
        }
        if let Ok(mac) = MacAddr::parse_any(s) {
            return Ok(DeviceRef::Mac(mac));
        }
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if (4..32).contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(DeviceRef::IdPrefix(hex.to_ascii_lowercase()));
        }
        Err(FieldError::new(
            "device",
            format!("`{s}` is neither a device id (or its first 4+ hex digits) nor a MAC address"),
        ))
    }
}

/// A URL the driver cannot parse most often holds a password with URL characters: say how
/// to write it.
/// Whether this binary can work on `store`'s schema, without migrating it: an older schema
/// (`poortwachter migrate` first) and a newer incompatible one are refused. The one rule for
/// a start, a command and a node's return from its snapshot.
pub async fn check_store_schema(store: &dyn Store) -> Result<schema::SchemaVerdict, StoreError> {
    let verdict = store.schema().await?.verdict();
    match verdict.refusal(false) {
        Some(refused) => Err(StoreError::Schema(refused)),
        None => Ok(verdict),
    }
}

fn url_hint(e: StoreError) -> StoreError {
    let text = e.to_string();
    if text.contains("invalid port number") || text.contains("relative URL without a base") {
        return StoreError::Url(format!(
            "database.url cannot be read ({text}): a password with URL characters \
             (! # @ : / ? %) must be percent-encoded in the URL, or set apart in \
             database.password_file or POORTWACHTER_DATABASE__PASSWORD"
        ));
    }
    e
}

/// The registry: the rules for changing owners and devices, over any [`Store`].
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    rules: Rules,
}

impl Registry {
    /// A registry over `store` with `rules`.
    pub fn new(store: Arc<dyn Store>, rules: Rules) -> Self {
        Registry { store, rules }
    }

    /// Opens the store a URL names (`sqlite:` or `postgres:`), without migrating.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        rules: Rules,
    ) -> Result<Self, StoreError> {
        let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
            Arc::new(sqlite::SqliteStore::connect(url, max_connections).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Arc::new(
                postgres::PgStore::connect(url, max_connections)
                    .await
                    .map_err(url_hint)?,
            )
        } else {
            return Err(StoreError::Url(
                "database.url must start with `sqlite:` or `postgres://`".into(),
            ));
        };
        Ok(Registry::new(store, rules))
    }

    /// Opens the store a URL names without waiting for the database: connections are made
    /// when first needed (a node starting while PostgreSQL is away).
    pub async fn connect_lazy(
        url: &str,
        max_connections: u32,
        rules: Rules,
    ) -> Result<Self, StoreError> {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let store = postgres::PgStore::connect_lazy(url, max_connections).map_err(url_hint)?;
            return Ok(Registry::new(Arc::new(store), rules));
        }
        Self::connect(url, max_connections, rules).await
    }

    /// Applies pending schema migrations; refuses a newer schema that is incompatible with
    /// this binary.
    pub async fn migrate(&self) -> Result<(), RegistryError> {
        Ok(self.store.migrate().await?)
    }

    /// Checks, without migrating, that this binary can work on the schema: refuses an older
    /// one (`poortwachter migrate` first) and a newer incompatible one. The verdict says
    /// whether it is newer but compatible ([`schema::SchemaVerdict::warning`]).
    pub async fn check_schema(&self) -> Result<schema::SchemaVerdict, RegistryError> {
        Ok(check_store_schema(self.store.as_ref()).await?)
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// A shared handle on the store, for the server's tasks and the enforcer's kick.
    pub fn store_arc(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// An owner by username, in any case. The username is checked first: PostgreSQL and
    /// SQLite fold case alike only for the ASCII that usernames are made of.
    pub async fn owner(&self, username: &str) -> Result<Option<Owner>, RegistryError> {
        let username = validate_username(username)?;
        Ok(self.store.owner(&username).await?)
    }

    /// Devices of one owner (checked as in [`Registry::owner`]) or of all.
    pub async fn devices(&self, owner: Option<&str>) -> Result<Vec<Device>, RegistryError> {
        let owner = owner.map(validate_username).transpose()?;
        Ok(self.store.devices(owner.as_deref()).await?)
    }

    /// Registers a device for its owner: the owner must exist, be enabled, not have ended
    /// their contract and be under the device limit; every MAC must be free.
    pub async fn register_device(
        &self,
        new: NewDevice,
        change: &Change,
    ) -> Result<Device, RegistryError> {
        let new = new.validate()?;
        let mut tx = self.store.begin().await?;
        let owner = tx
            .owner_for_update(&new.owner)
            .await?
            .ok_or_else(|| RegistryError::UnknownOwner(new.owner.clone()))?;
        if owner.disabled {
            return Err(RegistryError::OwnerDisabled(owner.username));
        }
        self.check_not_expired(&owner, change)?;
        let in_use = tx.count_devices_in_use(owner.id).await?;
        if in_use >= self.rules.max_devices_per_owner {
            return Err(RegistryError::DeviceLimit {
                owner: owner.username,
                limit: self.rules.max_devices_per_owner,
            });
        }
        for mac in &new.macs {
            if let Some(holder) = tx.device_by_mac(*mac).await? {
                return Err(mac_taken(*mac, &holder));
            }
        }
        let device = Device {
            id: Uuid::new_v4(),
            owner_id: owner.id,
            owner: owner.username.clone(),
            label: new.label,
            kind: new.kind,
            macs: new.macs,
            status: DeviceStatus::Active,
            status_reason: None,
            status_changed_at: None,
            compliance: Compliance::Unknown,
            compliance_checked_at: None,
            compliance_note: None,
            cert_fingerprint: None,
            cert_serial: None,
            created_by: change.actor.clone(),
            created_at: change.now,
            updated_at: change.now,
            last_seen_at: None,
            last_seen_nas: None,
            last_seen_ssid: None,
        };
        tx.insert_device(&device).await.map_err(|e| {
            unique_as(e, || {
                RegistryError::Field(FieldError::new(
                    "mac",
                    "a MAC was registered to another device at the same moment",
                ))
            })
        })?;
        tx.append_audit(&audit(
            change,
            "device.register",
            Target::Device(&device),
            None::<&Device>,
            Some(&device),
        ))
        .await?;
        tx.commit().await?;
        Ok(device)
    }

    /// Finds one device by id, id prefix or MAC.
    pub async fn find_device(&self, r: &DeviceRef) -> Result<Device, RegistryError> {
        let found = match r {
            DeviceRef::Id(id) => self.store.device(*id).await?,
            DeviceRef::Mac(mac) => self.store.device_by_mac(*mac).await?,
            DeviceRef::IdPrefix(prefix) => {
                let ids = self.store.device_ids_with_prefix(prefix).await?;
                match ids.as_slice() {
                    [] => None,
                    [id] => self.store.device(*id).await?,
                    _ => return Err(RegistryError::AmbiguousDevice(prefix.clone())),
                }
            }
        };
        found.ok_or_else(|| {
            RegistryError::UnknownDevice(match r {
                DeviceRef::Id(id) => id.to_string(),
                DeviceRef::IdPrefix(p) => p.clone(),
                DeviceRef::Mac(m) => m.to_string(),
            })
        })
    }

    /// Moves a device through its lifecycle: active → lost → revoked, active → revoked, and a
    /// lost device found again → active. Revoked is final.
    pub async fn set_device_status(
        &self,
        r: &DeviceRef,
        status: DeviceStatus,
        reason: Option<String>,
        change: &Change,
    ) -> Result<Device, RegistryError> {
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        if status == DeviceStatus::Revoked && reason.is_none() {
            return Err(FieldError::new("reason", "a revocation needs a reason").into());
        }
        let action = match status {
            DeviceStatus::Active => "device.found",
            DeviceStatus::Lost => "device.lost",
            DeviceStatus::Revoked => "device.revoke",
        };
        self.change_device(r, change, action, |before| {
            let allowed = matches!(
                (before.status, status),
                (DeviceStatus::Active, DeviceStatus::Lost)
                    | (DeviceStatus::Active, DeviceStatus::Revoked)
                    | (DeviceStatus::Lost, DeviceStatus::Revoked)
                    | (DeviceStatus::Lost, DeviceStatus::Active)
            );
            if !allowed {
                return Err(RegistryError::StatusTransition {
                    device: before.id,
                    from: before.status,
                    to: status,
                });
            }
            Ok(Device {
                status,
                status_reason: reason,
                status_changed_at: Some(change.now),
                updated_at: change.now,
                ..before.clone()
            })
        })
        .await
    }

    /// One device change: locks the device, lets `edit` derive the new record (or refuse),
    /// writes it with its audit entry, commits.
    async fn change_device(
        &self,
        r: &DeviceRef,
        change: &Change,
        action: &str,
        edit: impl FnOnce(&Device) -> Result<Device, RegistryError>,
    ) -> Result<Device, RegistryError> {
        let id = self.find_device(r).await?.id;
        let mut tx = self.store.begin().await?;
        let before = tx
            .device_for_update(id)
            .await?
            .ok_or_else(|| RegistryError::UnknownDevice(id.to_string()))?;
        let after = edit(&before)?;
        tx.update_device(&after).await?;
        tx.append_audit(&audit(
            change,
            action,
            Target::Device(&before),
            Some(&before),
            Some(&after),
        ))
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Records a compliance check result (by hand now; from posture reports later).
    pub async fn set_compliance(
        &self,
        r: &DeviceRef,
        compliance: Compliance,
        note: Option<String>,
        change: &Change,
    ) -> Result<Device, RegistryError> {
        let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        if note.as_ref().is_some_and(|n| n.chars().count() > 500) {
            return Err(FieldError::new("note", "longer than 500 characters").into());
        }
        self.change_device(r, change, "device.compliance", |before| {
            Ok(Device {
                compliance,
                compliance_checked_at: Some(change.now),
                compliance_note: note,
                updated_at: change.now,
                ..before.clone()
            })
        })
        .await
    }

    /// The device a certificate is to be issued for, with its owner, if it may get one: the
    /// device active, the owner enabled and under contract at `now`. Checked again when the
    /// certificate is recorded ([`Registry::record_certificate`]).
    pub async fn certificate_subject(
        &self,
        r: &DeviceRef,
        now: DateTime<Utc>,
    ) -> Result<(Device, Owner), RegistryError> {
        let device = self.find_device(r).await?;
        let owner = self
            .store
            .owner(&device.owner)
            .await?
            .ok_or_else(|| RegistryError::UnknownOwner(device.owner.clone()))?;
        check_certifiable(&device, &owner, &self.rules, now)?;
        Ok((device, owner))
    }

    /// Records a certificate issued to a device, in one transaction with its audit entry
    /// (`device.issue_cert`): the device's current certificate becomes this one and the one
    /// it had is marked superseded (so that it goes on the CRL). Refused, writing nothing, if
    /// the device may not have a certificate (see [`Registry::certificate_subject`]) or the
    /// certificate outlives the owner's contract.
    pub async fn record_certificate(
        &self,
        device_id: Uuid,
        cert: NewCertificate,
        change: &Change,
    ) -> Result<Device, RegistryError> {
        if !is_lower_hex(&cert.serial) || cert.serial.len() > 40 {
            return Err(
                FieldError::new("serial", "must be lowercase hex, at most 20 bytes").into(),
            );
        }
        if !is_lower_hex(&cert.fingerprint) || cert.fingerprint.len() != 64 {
            return Err(
                FieldError::new("fingerprint", "must be a SHA-256 in lowercase hex").into(),
            );
        }
        if cert.not_before >= cert.not_after {
            return Err(FieldError::new("not_after", "must be after not_before").into());
        }
        let mut tx = self.store.begin().await?;
        let before = tx
            .device_for_update(device_id)
            .await?
            .ok_or_else(|| RegistryError::UnknownDevice(device_id.to_string()))?;
        let owner = tx
            .owner_for_update(&before.owner)
            .await?
            .ok_or_else(|| RegistryError::UnknownOwner(before.owner.clone()))?;
        check_certifiable(&before, &owner, &self.rules, change.now)?;
        if let Some(end) = owner.access_ends_at(&self.rules.timezone) {
            if cert.not_after > end {
                return Err(FieldError::new(
                    "not_after",
                    format!(
                        "{} is after the end of the contract of {}",
                        cert.not_after, owner.username
                    ),
                )
                .into());
            }
        }
        tx.supersede_certificates(device_id, change.now).await?;
        tx.insert_certificate(&DeviceCertificate {
            serial: cert.serial.clone(),
            fingerprint: cert.fingerprint.clone(),
            device_id,
            not_before: cert.not_before,
            not_after: cert.not_after,
            issued_at: change.now,
            issued_by: change.actor.clone(),
            superseded_at: None,
        })
        .await?;
        let after = Device {
            cert_serial: Some(cert.serial.clone()),
            cert_fingerprint: Some(cert.fingerprint.clone()),
            updated_at: change.now,
            ..before.clone()
        };
        tx.update_device(&after).await?;
        tx.append_audit(&audit(
            change,
            "device.issue_cert",
            Target::Device(&before),
            Some(&CertificateAudit {
                cert_serial: before.cert_serial.as_deref(),
                cert_fingerprint: before.cert_fingerprint.as_deref(),
                not_before: None,
                not_after: None,
            }),
            Some(&CertificateAudit {
                cert_serial: Some(&cert.serial),
                cert_fingerprint: Some(&cert.fingerprint),
                not_before: Some(cert.not_before),
                not_after: Some(cert.not_after),
            }),
        ))
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Active devices whose current certificate ends within `within` of `now` (or has ended
    /// already), soonest first, with that certificate: what `device list --expiring-within`
    /// shows and `device reissue --expiring-within` renews.
    pub async fn expiring_certificates(
        &self,
        within: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Device, DeviceCertificate)>, RegistryError> {
        let until = now
            .checked_add_signed(within)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.devices_with_current(|d, c| d.status == DeviceStatus::Active && c.not_after <= until)
            .await
    }

    /// Devices not revoked whose current certificate, still valid at `now`, was issued
    /// before `cutoff`: during a CA rollover, the devices that still depend on the previous
    /// CA (a lost device counts: it may be found again).
    pub async fn certificates_issued_before(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Device, DeviceCertificate)>, RegistryError> {
        self.devices_with_current(|d, c| {
            d.status != DeviceStatus::Revoked && c.issued_at < cutoff && c.not_after > now
        })
        .await
    }

    /// Devices with their current certificate, where `keep` says so, in the certificates'
    /// order (soonest to end first).
    async fn devices_with_current(
        &self,
        keep: impl Fn(&Device, &DeviceCertificate) -> bool,
    ) -> Result<Vec<(Device, DeviceCertificate)>, RegistryError> {
        let certificates = self.store.current_certificates().await?;
        let mut devices: std::collections::HashMap<Uuid, Device> = self
            .store
            .devices(None)
            .await?
            .into_iter()
            .map(|d| (d.id, d))
            .collect();
        Ok(certificates
            .into_iter()
            .filter_map(|c| {
                let device = devices.remove(&c.device_id)?;
                // only the certificate the device row names is current
                (device.cert_serial.as_deref() == Some(c.serial.as_str()) && keep(&device, &c))
                    .then_some((device, c))
            })
            .collect())
    }

    /// What the CRL lists at `now`: certificates not expired yet that a newer one superseded
    /// (since then), or whose device is revoked or lost (since its status changed). A lost
    /// device's certificate is on hold: when the device is found it leaves the list.
    pub async fn revocations(&self, now: DateTime<Utc>) -> Result<Vec<Revocation>, RegistryError> {
        let withdrawn = self.store.withdrawn_certificates(now).await?;
        Ok(withdrawn
            .into_iter()
            .filter_map(|w| {
                let c = w.certificate;
                let since = w.status_changed_at.unwrap_or(c.issued_at);
                let (cause, at) = match (c.superseded_at, w.device_status) {
                    (Some(at), _) => (RevocationCause::Superseded, at),
                    (None, DeviceStatus::Revoked) => (RevocationCause::DeviceRevoked, since),
                    (None, DeviceStatus::Lost) => (RevocationCause::DeviceLost, since),
                    (None, DeviceStatus::Active) => return None,
                };
                Some(Revocation {
                    serial: c.serial,
                    at,
                    cause,
                    device_id: c.device_id,
                    issued_at: c.issued_at,
                })
            })
            .collect())
    }
}

/// A device gets a certificate only while it is active and its owner enabled and under
/// contract: the same conditions under which it could be registered.
fn check_certifiable(
    device: &Device,
    owner: &Owner,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<(), RegistryError> {
    if device.status != DeviceStatus::Active {
        return Err(RegistryError::DeviceNotActive {
            device: device.id,
            status: device.status,
            what: "gets a certificate",
        });
    }
    if owner.disabled {
        return Err(RegistryError::OwnerDisabled(owner.username.clone()));
    }
    match owner.valid_until {
        Some(last_day) if owner.has_expired(now, &rules.timezone) => {
            Err(RegistryError::OwnerExpired {
                owner: owner.username.clone(),
                last_day,
            })
        }
        _ => Ok(()),
    }
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn mac_taken(mac: MacAddr, holder: &Device) -> RegistryError {
    RegistryError::MacTaken {
        mac,
        device: holder.id,
        label: holder.label.clone(),
        status: holder.status,
        owner: holder.owner.clone(),
    }
}

/// A unique-constraint failure that lost a race with another writer becomes the error the
/// pre-check would have given; anything else stays a store error.
fn unique_as(e: StoreError, f: impl FnOnce() -> RegistryError) -> RegistryError {
    match e {
        StoreError::Unique(_) => f(),
        other => RegistryError::Store(other),
    }
}

/// What an audit entry is about.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// An owner: named by id; the username goes with the personal data.
    Owner(&'a Owner),
    /// A device: named by id; its owner found by the store.
    Device(&'a Device),
    /// Anything else (a token, a console account): no personal data of an owner.
    Other(&'a str, &'a str),
}

fn audit<T: Serialize>(
    change: &Change,
    action: &str,
    target: Target<'_>,
    before: Option<&T>,
    after: Option<&T>,
) -> NewAuditEntry {
    let (target_type, target_id, subject, target_name) = match target {
        Target::Owner(o) => (
            "owner",
            o.id.to_string(),
            Some(o.id),
            Some(o.username.clone()),
        ),
        Target::Device(d) => ("device", d.id.to_string(), Some(d.owner_id), None),
        Target::Other(t, id) => (t, id.to_string(), None, None),
    };
    NewAuditEntry {
        at: change.now,
        actor: change.actor.clone(),
        action: action.to_string(),
        target_type: target_type.to_string(),
        target_id,
        before: before.and_then(|b| serde_json::to_value(b).ok()),
        after: after.and_then(|a| serde_json::to_value(a).ok()),
        subject,
        target_name,
    }
}
