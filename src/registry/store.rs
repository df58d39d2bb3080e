//! The storage trait: what a backend must do, row by row, inside and outside a transaction.
//! The rules live above it, in [`super::Registry`]; a backend only reads and writes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::activity::{
    AccountingUpdate, DecisionAggregate, DecisionFilter, DecisionRecord, RefusalFilter, Session,
    SessionFilter, Sighting,
};
use crate::mac::MacAddr;
use crate::model::{AuditEntry, Device, DeviceStatus, Owner};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is unusable.
    #[error("{0}")]
    Url(String),
    /// A unique constraint refused a write (a concurrent writer got there first).
    #[error("unique constraint: {0}")]
    Unique(String),
    /// A row that does not decode into the model (a schema or data problem).
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// The schema cannot be used by this binary (older, or newer and incompatible).
    #[error(transparent)]
    Schema(#[from] super::schema::SchemaError),
    /// The store cannot do what was asked.
    #[error("{0}")]
    Unsupported(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error() {
            if db.is_unique_violation() {
                return StoreError::Unique(db.message().to_string());
            }
        }
        match e {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            other => StoreError::Database(other),
        }
    }
}

impl StoreError {
    /// Whether the store could not take the write now (no connection, a pool or server state
    /// that passes, a concurrent writer), as opposed to refusing this write itself (a
    /// constraint, a value out of range, unreadable data): only the first is worth keeping
    /// and trying again later, as the accounting spool does.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unique(_) => true,
            StoreError::Database(e) => match e.as_database_error() {
                // SQLSTATE class 22: a data exception, which the same write meets again
                Some(db) => {
                    db.kind() == sqlx::error::ErrorKind::Other
                        && !db.code().is_some_and(|c| c.starts_with("22"))
                }
                None => matches!(
                    e,
                    sqlx::Error::Io(_)
                        | sqlx::Error::Tls(_)
                        | sqlx::Error::Protocol(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::WorkerCrashed
                ),
            },
            StoreError::Url(_)
            | StoreError::Corrupt(_)
            | StoreError::Migrate(_)
            | StoreError::Schema(_)
            | StoreError::Unsupported(_) => false,
        }
    }
}

/// An audit entry to append.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What, as `device.revoke`.
    pub action: String,
    /// `owner` or `device`.
    pub target_type: String,
    /// Username or device id.
    pub target_id: String,
    /// The record before.
    pub before: Option<serde_json::Value>,
    /// The record after.
    pub after: Option<serde_json::Value>,
    /// The owner the entry is about (their personal data in it is erased with them). For a
    /// device target the store finds it from the device.
    pub subject: Option<Uuid>,
    /// The target's name, kept with the personal data: an owner's username (the target id
    /// is their id).
    pub target_name: Option<String>,
}

/// A certificate the onboarding CA issued to a device: a row of `certificates`. Never key
/// material, only what identifies and dates the certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceCertificate {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
    /// The device it was issued to.
    pub device_id: Uuid,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Who issued it (the actor).
    pub issued_by: String,
    /// When a newer certificate for the device replaced it.
    pub superseded_at: Option<DateTime<Utc>>,
}

/// A certificate that is no longer good (superseded, or its device lost or revoked) and has
/// not expired yet: what a CRL is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawnCertificate {
    /// The certificate.
    pub certificate: DeviceCertificate,
    /// Its device's status now.
    pub device_status: DeviceStatus,
    /// When that status was set.
    pub status_changed_at: Option<DateTime<Utc>>,
}

/// Which audit entries to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this target (username, case-insensitive, or device id).
    pub target_id: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// At most this many (default 50).
    pub limit: Option<u32>,
    /// Skipping the first this many (a page further on).
    pub offset: u64,
}

/// Notifications that the registry changed in another process (PostgreSQL LISTEN/NOTIFY).
pub type ChangeWatch = tokio::sync::mpsc::Receiver<RegistryChange>;

/// One change notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryChange {
    /// An audit entry was appended about this target (`device` + id, `owner` + username, ...).
    Changed {
        /// The audit entry's target type.
        target_type: String,
        /// Its target id.
        target_id: String,
    },
    /// Notifications may have been missed (the connection was lost): anything may have
    /// changed.
    Missed,
}

impl RegistryChange {
    /// Reads a notification payload, `target_type:target_id` (an empty or other payload,
    /// from an older schema, means "something changed").
    pub fn from_payload(payload: &str) -> RegistryChange {
        match payload.split_once(':') {
            Some((t, id)) if !t.is_empty() => RegistryChange::Changed {
                target_type: t.to_string(),
                target_id: id.to_string(),
            },
            _ => RegistryChange::Missed,
        }
    }
}

/// What the RADIUS server records (decisions, sightings, accounting sessions) and its reads.
/// Single statements (or one short transaction each), not part of the audited registry
/// changes.
#[async_trait]
pub trait ActivityStore: Send + Sync + 'static {
    /// Appends decisions, in one transaction.
    async fn insert_decisions(&self, rows: &[DecisionRecord]) -> Result<(), StoreError>;
    /// Decisions, newest first.
    async fn decisions(&self, filter: &DecisionFilter) -> Result<Vec<DecisionRecord>, StoreError>;
    /// Deletes decisions taken before `before`; returns how many.
    async fn purge_decisions(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Appends minute counts of decisions about unregistered devices, in one transaction.
    async fn insert_decision_aggregates(
        &self,
        rows: &[DecisionAggregate],
    ) -> Result<(), StoreError>;
    /// The minute counts whose MAC sample holds `mac`, newest first.
    async fn decision_aggregates(
        &self,
        mac: MacAddr,
        limit: u32,
    ) -> Result<Vec<DecisionAggregate>, StoreError>;
    /// The newest open session whose device has `framed_ip` (Framed-IP-Address in
    /// accounting): how the portal knows the MAC of the device asking.
    async fn open_session_by_ip(&self, framed_ip: &str) -> Result<Option<Session>, StoreError>;
    /// Sessions that overlap `from`..`to` (started before `to`, not stopped before `from`),
    /// at most `limit`, oldest first.
    async fn sessions_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError>;
    /// Refusals (outcome `reject`), newest first.
    async fn refusals(&self, filter: &RefusalFilter) -> Result<Vec<DecisionRecord>, StoreError>;
    /// The minute counts of refusals of unregistered devices since `since`, newest first.
    async fn refused_aggregates(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DecisionAggregate>, StoreError>;
    /// Deletes the counts of minutes before `before`; returns how many.
    async fn purge_decision_aggregates(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Records when and where devices were last seen, in one transaction.
    async fn record_sightings(&self, seen: &[Sighting]) -> Result<(), StoreError>;
    /// Applies one Accounting Start, Interim-Update or Stop to its session. Applying an update
    /// again, after itself or after later updates of the session, changes nothing (the
    /// accounting spool's replay relies on it).
    async fn record_accounting(&self, update: &AccountingUpdate) -> Result<(), StoreError>;
    /// Closes every open session of one access point (`nas_key`) of a client (Accounting-On/
    /// Off) last updated at or before `at`; returns how many. Applying it again changes
    /// nothing, even after sessions that started later.
    async fn close_sessions(
        &self,
        nas: &str,
        nas_key: &str,
        at: DateTime<Utc>,
        cause: &str,
    ) -> Result<u64, StoreError>;
    /// Sessions, newest first.
    async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<Session>, StoreError>;
    /// A device's sessions that have not stopped, oldest first.
    async fn open_sessions_of(&self, device_id: Uuid) -> Result<Vec<Session>, StoreError>;
    /// A session by row id.
    async fn session_by_id(&self, id: i64) -> Result<Option<Session>, StoreError>;
    /// Sessions with this Acct-Session-Id, open ones first, then newest first.
    async fn sessions_by_acct_id(&self, acct_session_id: &str) -> Result<Vec<Session>, StoreError>;
    /// Closes one open session (the NAS said it has no such session); false if it was closed.
    async fn end_session(
        &self,
        id: i64,
        at: DateTime<Utc>,
        cause: &str,
    ) -> Result<bool, StoreError>;
    /// Deletes sessions that stopped before `before`; returns how many.
    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Deletes the personal parts of audit entries older than `before` about nobody
    /// registered now; returns how many.
    async fn purge_orphan_audit_personal(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// The public audit rows after id `after`, in id order, as the chain covers them.
    async fn audit_chain(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<super::audit::ChainRow>, StoreError>;
    /// The newest link of the audit chain.
    async fn audit_head(&self) -> Result<String, StoreError>;
    /// A number that grows with every registry change (the newest audit entry's id).
    async fn change_marker(&self) -> Result<i64, StoreError>;
}

/// The registry's reads outside a transaction: owners, devices, certificates, the audit log
/// (a page of it, or what follows a point for the enforcer).
#[async_trait]
pub trait ReadStore: Send + Sync + 'static {
    /// An owner by username, in any case.
    async fn owner(&self, username: &str) -> Result<Option<Owner>, StoreError>;
    /// All owners by username.
    async fn owners(&self) -> Result<Vec<Owner>, StoreError>;
    /// A device by id.
    async fn device(&self, id: Uuid) -> Result<Option<Device>, StoreError>;
    /// The device that holds a MAC.
    async fn device_by_mac(&self, mac: MacAddr) -> Result<Option<Device>, StoreError>;
    /// Devices, of one owner or all, oldest first.
    async fn devices(&self, owner: Option<&str>) -> Result<Vec<Device>, StoreError>;
    /// The device whose current certificate has this SHA-256 fingerprint (lowercase hex, as
    /// [`crate::pki::fingerprint`] gives; other case is accepted). EAP-TLS identifies a device
    /// by it.
    async fn device_by_cert_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Device>, StoreError>;
    /// Every certificate issued to a device, newest first.
    async fn certificates(&self, device_id: Uuid) -> Result<Vec<DeviceCertificate>, StoreError>;
    /// Every device's current certificate (not superseded), soonest to end first.
    async fn current_certificates(&self) -> Result<Vec<DeviceCertificate>, StoreError>;
    /// Certificates not expired at `at` that are superseded or whose device is not active,
    /// oldest first.
    async fn withdrawn_certificates(
        &self,
        at: DateTime<Utc>,
    ) -> Result<Vec<WithdrawnCertificate>, StoreError>;
    /// Ids starting with these lowercase hex digits (hyphens removed).
    async fn device_ids_with_prefix(&self, hex_prefix: &str) -> Result<Vec<Uuid>, StoreError>;
    /// Audit entries, newest first, a page as the filter says.
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;
    /// Audit entries with an id above `after`, oldest first, at most `limit`.
    async fn audit_after(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
}

/// A storage backend: what only it does (its schema, its transactions, its locks), with the
/// reads and statements written once for every backend as supertraits, and [`StoreTx`] for
/// changes.
#[async_trait]
pub trait Store:
    ActivityStore
    + ReadStore
    + super::tokens::TokenStore
    + super::accounts::WebAccountStore
    + super::posture::PostureStore
    + super::coa::CoaStore
{
    /// Applies pending migrations; refuses a newer schema that is incompatible with this
    /// binary ([`super::schema`]).
    async fn migrate(&self) -> Result<(), StoreError>;
    /// The binary's and the database's migrations, and the compatibility mark.
    async fn schema(&self) -> Result<super::schema::SchemaState, StoreError>;
    /// A consistent copy of the whole database into the new file `to`, while it is in use
    /// (`poortwachter backup`). Only an embedded store can; PostgreSQL has pg_dump.
    async fn copy_into(&self, to: &std::path::Path) -> Result<(), StoreError> {
        let _ = to;
        Err(StoreError::Unsupported(
            "this store is not copied by poortwachter; use the database's own backup tool",
        ))
    }
    /// Change notifications pushed by the database, where it can (PostgreSQL); `None` means
    /// poll [`ActivityStore::change_marker`].
    async fn watch_changes(&self) -> Result<Option<ChangeWatch>, StoreError> {
        Ok(None)
    }
    /// Starts a write transaction. Dropping it without `commit` rolls back.
    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError>;
    /// Tries to become the one node that enforces (sends Disconnect/CoA requests) among the
    /// nodes sharing this registry: `None` while another node is. A store only one process
    /// serves (SQLite) always grants it.
    async fn try_lead(&self) -> Result<Option<Box<dyn Leadership>>, StoreError> {
        self.try_lead_for(Duty::Enforce).await
    }
    /// Tries to become the one node that does `duty` among the nodes sharing this registry
    /// (each duty is led apart: the enforcing node need not be the one that syncs the
    /// directory); `None` while another node does. A store only one process serves (SQLite)
    /// always grants it.
    async fn try_lead_for(&self, duty: Duty) -> Result<Option<Box<dyn Leadership>>, StoreError> {
        let _ = duty;
        Ok(Some(Box::new(SoleNode)))
    }
}

/// What one node among those sharing a registry does for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// Sending Disconnect/CoA requests (the enforcer).
    Enforce,
    /// The scheduled directory sync.
    DirectorySync,
}

/// Being the one enforcing node; given up when dropped.
#[async_trait]
pub trait Leadership: Send {
    /// Whether this node still holds it (false once the database connection that holds it
    /// is gone: another node may take over).
    async fn holds(&mut self) -> bool;
}

/// The only node there is.
struct SoleNode;

#[async_trait]
impl Leadership for SoleNode {
    async fn holds(&mut self) -> bool {
        true
    }
}

/// One write transaction. Rows read `for_update` stay locked until commit or drop.
#[async_trait]
pub trait StoreTx: Send {
    /// An owner by username (any case), locked.
    async fn owner_for_update(&mut self, username: &str) -> Result<Option<Owner>, StoreError>;
    /// Inserts an owner.
    async fn insert_owner(&mut self, owner: &Owner) -> Result<(), StoreError>;
    /// Writes every field of an owner.
    async fn update_owner(&mut self, owner: &Owner) -> Result<(), StoreError>;
    /// The owner's devices that are not revoked.
    async fn count_devices_in_use(&mut self, owner_id: Uuid) -> Result<u32, StoreError>;
    /// A device by id, locked.
    async fn device_for_update(&mut self, id: Uuid) -> Result<Option<Device>, StoreError>;
    /// The device holding a MAC.
    async fn device_by_mac(&mut self, mac: MacAddr) -> Result<Option<Device>, StoreError>;
    /// Inserts a device and its MACs.
    async fn insert_device(&mut self, device: &Device) -> Result<(), StoreError>;
    /// Writes every mutable field of a device (not its MACs).
    async fn update_device(&mut self, device: &Device) -> Result<(), StoreError>;
    /// Replaces the device's MACs with `macs` (a MAC removed is free for another device).
    async fn set_device_macs(
        &mut self,
        device_id: Uuid,
        macs: &[MacAddr],
    ) -> Result<(), StoreError>;
    /// Deletes a device with its MACs, certificates and posture reports.
    async fn delete_device(&mut self, id: Uuid) -> Result<(), StoreError>;
    /// The owner's devices, any status.
    async fn count_devices(&mut self, owner_id: Uuid) -> Result<u32, StoreError>;
    /// The owners a source manages (not locked: lock each with `owner_for_update`).
    async fn owners_of_source(
        &mut self,
        source: crate::model::OwnerSource,
    ) -> Result<Vec<Owner>, StoreError>;
    /// Deletes and overwrites everything held about an owner but their row
    /// ([`super::sql::ERASE_OWNER_DATA`]).
    async fn erase_owner_data(
        &mut self,
        owner: &Owner,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Deletes an owner (who has no devices).
    async fn delete_owner(&mut self, id: Uuid) -> Result<(), StoreError>;
    /// Marks the device's current certificate (if any) superseded at `at`; returns how many.
    async fn supersede_certificates(
        &mut self,
        device_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Records an issued certificate.
    async fn insert_certificate(&mut self, c: &DeviceCertificate) -> Result<(), StoreError>;
    /// Records a posture report with its evaluation; returns its id.
    async fn insert_posture_report(
        &mut self,
        report: &super::posture::NewPostureReport,
    ) -> Result<i64, StoreError>;
    /// Appends to the audit log.
    async fn append_audit(&mut self, entry: &NewAuditEntry) -> Result<(), StoreError>;
    /// Commits.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
