//! Statements that read the same in PostgreSQL and SQLite (`$n` placeholders work in both),
//! with their binders written once over any sqlx database. An UPDATE binds the same list as
//! its INSERT and uses what it needs: both databases accept unreferenced parameters.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{Database, Encode, Type};
use uuid::Uuid;

use crate::model::{Device, Owner};

use super::store::DeviceCertificate;

/// A query with its arguments, for database `DB`.
pub type Q<'q, DB> = Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// `INSERT INTO owners`, bound by [`bind_owner`].
pub const INSERT_OWNER: &str = "INSERT INTO owners (id, username, display_name, email, role, \
     department, valid_from, valid_until, disabled, created_at, updated_at, source, external_id, \
     disabled_reason, disabled_at, disabled_by_source, erased_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

/// `UPDATE owners` by id (the username changes only when erased), bound by [`bind_owner`].
pub const UPDATE_OWNER: &str =
    "UPDATE owners SET username = $2, display_name = $3, email = $4, role = $5, \
     department = $6, valid_from = $7, valid_until = $8, disabled = $9, updated_at = $11, \
     source = $12, external_id = $13, disabled_reason = $14, disabled_at = $15, \
     disabled_by_source = $16, erased_at = $17 WHERE id = $1";

/// Devices of an owner that count against the limit.
pub const COUNT_DEVICES_IN_USE: &str =
    "SELECT count(*) FROM devices WHERE owner_id = $1 AND status <> 'revoked'";

/// `INSERT INTO devices` (not its MACs), bound by [`bind_device`].
pub const INSERT_DEVICE: &str = "INSERT INTO devices (id, owner_id, label, kind, status, \
     status_reason, status_changed_at, compliance, compliance_checked_at, compliance_note, \
     cert_fingerprint, cert_serial, created_by, created_at, updated_at, last_seen_at, \
     last_seen_nas, last_seen_ssid) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";

/// `UPDATE devices` by id: every column a registry change may set, bound by
/// [`bind_device`]. Not `last_seen_*`: only the RADIUS server's sighting writer sets those, and
/// a change that read the device earlier must not roll them back.
pub const UPDATE_DEVICE: &str = "UPDATE devices SET label = $3, kind = $4, status = $5, \
     status_reason = $6, status_changed_at = $7, compliance = $8, compliance_checked_at = $9, \
     compliance_note = $10, cert_fingerprint = $11, cert_serial = $12, updated_at = $15 \
     WHERE id = $1";

/// A device's MACs, all removed (before writing its new list): `$1` device id.
pub const DELETE_DEVICE_MACS: &str = "DELETE FROM device_macs WHERE device_id = $1";

/// What goes with a deleted device, in this order, then the device itself: `$1` device id.
/// Its decisions and sessions hold its MAC, not a reference, and age out with the retention.
pub const DELETE_DEVICE: &[&str] = &[
    "DELETE FROM posture_reports WHERE device_id = $1",
    "DELETE FROM certificates WHERE device_id = $1",
    "DELETE FROM device_macs WHERE device_id = $1",
    "DELETE FROM devices WHERE id = $1",
];

/// The owners a source manages: `$1` the source.
pub fn owners_of_source() -> String {
    format!(
        "SELECT {} FROM owners o WHERE o.source = $1",
        super::rows::OWNER_COLUMNS
    )
}

/// What erasure deletes and overwrites of one owner (`$1` owner id, `$2` their username,
/// `$3` now), in this order; the owner row itself is written after. Their devices stay as
/// anonymous revoked rows with their certificates (a CRL still needs the serials); their
/// MACs, sessions, decisions, Disconnect/CoA records, posture reports and the personal part
/// of the audit entries about them go.
pub const ERASE_OWNER_DATA: &[&str] = &[
    "DELETE FROM coa_requests WHERE device_id IN (SELECT id FROM devices WHERE owner_id = $1) \
       OR session_id IN (SELECT id FROM sessions WHERE lower(owner) = lower($2))",
    "DELETE FROM sessions WHERE lower(owner) = lower($2) OR lower(username) = lower($2) \
       OR device_id IN (SELECT id FROM devices WHERE owner_id = $1) \
       OR mac IN (SELECT CAST(m.mac AS TEXT) FROM device_macs m \
                  JOIN devices d ON d.id = m.device_id WHERE d.owner_id = $1)",
    "DELETE FROM decisions WHERE lower(owner) = lower($2) OR lower(username) = lower($2) \
       OR device_id IN (SELECT id FROM devices WHERE owner_id = $1) \
       OR mac IN (SELECT CAST(m.mac AS TEXT) FROM device_macs m \
                  JOIN devices d ON d.id = m.device_id WHERE d.owner_id = $1)",
    "DELETE FROM posture_reports WHERE device_id IN (SELECT id FROM devices WHERE owner_id = $1)",
    "DELETE FROM device_macs WHERE device_id IN (SELECT id FROM devices WHERE owner_id = $1)",
    "UPDATE devices SET label = 'gewist', status = 'revoked', status_reason = NULL, \
       status_changed_at = COALESCE(status_changed_at, $3), compliance_note = NULL, \
       last_seen_nas = NULL, last_seen_ssid = NULL, updated_at = $3 WHERE owner_id = $1",
    "DELETE FROM audit_personal WHERE owner_id = $1",
];

/// Sessions that stopped before `$1`.
pub const PURGE_SESSIONS: &str =
    "DELETE FROM sessions WHERE stopped_at IS NOT NULL AND stopped_at < $1";

/// Personal parts of audit entries about nobody registered (an unknown device's session)
/// or an owner deleted since, older than `$1`.
pub const PURGE_ORPHAN_AUDIT_PERSONAL: &str = "DELETE FROM audit_personal \
     WHERE (owner_id IS NULL OR owner_id NOT IN (SELECT id FROM owners)) \
       AND audit_id IN (SELECT id FROM audit_log WHERE at < $1)";

/// An owner without devices: `$1` owner id.
pub const DELETE_OWNER: &str = "DELETE FROM owners WHERE id = $1";

/// Devices of an owner, any status: `$1` owner id.
pub const COUNT_DEVICES: &str = "SELECT count(*) FROM devices WHERE owner_id = $1";

/// `INSERT INTO certificates`, bound by [`bind_certificate`].
pub const INSERT_CERTIFICATE: &str = "INSERT INTO certificates (serial, fingerprint, device_id, \
     not_before, not_after, issued_at, issued_by, superseded_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Marks a device's current certificate superseded: `$1` device id, `$2` when.
pub const SUPERSEDE_CERTIFICATES: &str = "UPDATE certificates SET superseded_at = $2 \
     WHERE device_id = $1 AND superseded_at IS NULL";

/// A device's certificates, newest first: `$1` device id.
pub const DEVICE_CERTIFICATES: &str = "SELECT c.serial, c.fingerprint, c.device_id, \
     c.not_before, c.not_after, c.issued_at, c.issued_by, c.superseded_at \
     FROM certificates c WHERE c.device_id = $1 ORDER BY c.issued_at DESC, c.serial";

/// Every device's current certificate, soonest to end first.
pub const CURRENT_CERTIFICATES: &str = "SELECT c.serial, c.fingerprint, c.device_id, \
     c.not_before, c.not_after, c.issued_at, c.issued_by, c.superseded_at \
     FROM certificates c WHERE c.superseded_at IS NULL ORDER BY c.not_after, c.serial";

/// Certificates not expired at `$1` that are superseded or whose device is not active, with
/// the device's status (the CRL's input). Times compare as RFC 3339 text in SQLite: both
/// sides are written by the same encoder in UTC.
pub const WITHDRAWN_CERTIFICATES: &str = "SELECT c.serial, c.fingerprint, c.device_id, \
     c.not_before, c.not_after, c.issued_at, c.issued_by, c.superseded_at, \
     d.status AS device_status, d.status_changed_at \
     FROM certificates c JOIN devices d ON d.id = c.device_id \
     WHERE c.not_after > $1 AND (c.superseded_at IS NOT NULL OR d.status <> 'active') \
     ORDER BY c.issued_at, c.serial";

/// Binds an owner's columns as `$1..$17`.
pub fn bind_owner<'q, DB>(q: Q<'q, DB>, o: &'q Owner) -> Q<'q, DB>
where
    DB: Database,
    Uuid: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<NaiveDate>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    q.bind(o.id)
        .bind(&o.username)
        .bind(&o.display_name)
        .bind(&o.email)
        .bind(o.role.as_str())
        .bind(&o.department)
        .bind(o.valid_from)
        .bind(o.valid_until)
        .bind(o.disabled)
        .bind(o.created_at)
        .bind(o.updated_at)
        .bind(o.source.as_str())
        .bind(&o.external_id)
        .bind(&o.disabled_reason)
        .bind(o.disabled_at)
        .bind(o.disabled_by_source.map(|s| s.as_str()))
        .bind(o.erased_at)
}

/// Binds a device's columns as `$1..$18`.
pub fn bind_device<'q, DB>(q: Q<'q, DB>, d: &'q Device) -> Q<'q, DB>
where
    DB: Database,
    Uuid: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
{
    q.bind(d.id)
        .bind(d.owner_id)
        .bind(&d.label)
        .bind(d.kind.as_str())
        .bind(d.status.as_str())
        .bind(&d.status_reason)
        .bind(d.status_changed_at)
        .bind(d.compliance.as_str())
        .bind(d.compliance_checked_at)
        .bind(&d.compliance_note)
        .bind(&d.cert_fingerprint)
        .bind(&d.cert_serial)
        .bind(&d.created_by)
        .bind(d.created_at)
        .bind(d.updated_at)
        .bind(d.last_seen_at)
        .bind(&d.last_seen_nas)
        .bind(&d.last_seen_ssid)
}

/// Binds a certificate's columns as `$1..$8`.
pub fn bind_certificate<'q, DB>(q: Q<'q, DB>, c: &'q DeviceCertificate) -> Q<'q, DB>
where
    DB: Database,
    Uuid: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
{
    q.bind(&c.serial)
        .bind(&c.fingerprint)
        .bind(c.device_id)
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(c.issued_at)
        .bind(&c.issued_by)
        .bind(c.superseded_at)
}

/// Takes the head of the audit chain for this transaction (the row stays locked until it
/// ends, so that appends line up) and returns its link.
pub const AUDIT_HEAD_TAKE: &str =
    "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING chain";

/// Moves the head of the chain to `$1`.
pub const AUDIT_HEAD_SET: &str = "UPDATE audit_head SET chain = $1 WHERE id = 1";

/// The head of the chain.
pub const AUDIT_HEAD: &str = "SELECT chain FROM audit_head WHERE id = 1";

/// `INSERT INTO audit_log`, bound by [`bind_sealed`]; returns the id.
pub const INSERT_SEALED_AUDIT: &str = "INSERT INTO audit_log (at, actor, action, target_type, \
     target_id, before, after, personal_digest, chain) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";

/// `INSERT INTO audit_personal`: `$1` entry id, `$2` owner id (else the owner of device `$7`),
/// `$3` salt, `$4` target name, `$5` before, `$6` after.
pub const INSERT_AUDIT_PERSONAL: &str = "INSERT INTO audit_personal (audit_id, owner_id, salt, \
     target, before, after) \
     VALUES ($1, COALESCE($2, (SELECT owner_id FROM devices WHERE id = $7)), $3, $4, $5, $6)";

/// Binds a sealed entry's public row and its link as `$1..$9`.
pub fn bind_sealed<'q, DB, O>(
    q: sqlx::query::QueryScalar<'q, DB, O, <DB as Database>::Arguments<'q>>,
    e: &'q super::audit::Sealed,
    chain: &'q str,
) -> sqlx::query::QueryScalar<'q, DB, O, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    String: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    Option<Json<&'q serde_json::Value>>: Encode<'q, DB> + Type<DB>,
{
    q.bind(e.at)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.target_type)
        .bind(&e.target_id)
        .bind(e.before.as_ref().map(Json))
        .bind(e.after.as_ref().map(Json))
        .bind(&e.digest)
        .bind(chain)
}

/// Appends an audit entry in transaction `$tx` (an expression `&mut *$tx` takes): its public
/// row linked onto the chain, its personal part apart ([`super::audit`]). Evaluates to
/// `Result<(), StoreError>`.
macro_rules! append_audit {
    ($tx:expr, $entry:expr) => {
        async {
            let entry: &$crate::registry::NewAuditEntry = $entry;
            let sealed = $crate::registry::audit::seal(entry);
            let prev: String = sqlx::query_scalar($crate::registry::sql::AUDIT_HEAD_TAKE)
                .fetch_one(&mut *$tx)
                .await?;
            let chain = $crate::registry::audit::link_sealed(&prev, &sealed);
            let id: i64 = $crate::registry::sql::bind_sealed(
                sqlx::query_scalar($crate::registry::sql::INSERT_SEALED_AUDIT),
                &sealed,
                &chain,
            )
            .fetch_one(&mut *$tx)
            .await?;
            if let Some(p) = &sealed.personal {
                let device = (sealed.target_type == "device")
                    .then(|| uuid::Uuid::parse_str(&sealed.target_id).ok())
                    .flatten();
                sqlx::query($crate::registry::sql::INSERT_AUDIT_PERSONAL)
                    .bind(id)
                    .bind(p.owner_id)
                    .bind(&p.salt)
                    .bind(&p.target)
                    .bind(p.before.as_ref().map(sqlx::types::Json))
                    .bind(p.after.as_ref().map(sqlx::types::Json))
                    .bind(device)
                    .execute(&mut *$tx)
                    .await?;
            }
            sqlx::query($crate::registry::sql::AUDIT_HEAD_SET)
                .bind(&chain)
                .execute(&mut *$tx)
                .await?;
            Ok::<(), $crate::registry::StoreError>(())
        }
    };
}
pub(crate) use append_audit;

/// Implements [`super::StoreTx`] for a backend's transaction type `$tx` (a struct with a
/// `tx: sqlx::Transaction<'static, DB>` field). The backend module provides what differs:
/// `owner_by_name(conn, username, lock)`, `device_by_id(conn, id, lock)`,
/// `device_by_mac(conn, mac)` and the `INSERT_MAC` statement; the rest is the same SQL.
macro_rules! impl_store_tx {
    ($tx:ty) => {
        #[async_trait::async_trait]
        impl $crate::registry::StoreTx for $tx {
            async fn owner_for_update(
                &mut self,
                username: &str,
            ) -> Result<Option<$crate::model::Owner>, StoreError> {
                owner_by_name(&mut self.tx, username, true).await
            }

            async fn insert_owner(&mut self, o: &$crate::model::Owner) -> Result<(), StoreError> {
                sql::bind_owner(sqlx::query(sql::INSERT_OWNER), o)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn update_owner(&mut self, o: &$crate::model::Owner) -> Result<(), StoreError> {
                sql::bind_owner(sqlx::query(sql::UPDATE_OWNER), o)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn count_devices_in_use(
                &mut self,
                owner_id: uuid::Uuid,
            ) -> Result<u32, StoreError> {
                let n: i64 = sqlx::query_scalar(sql::COUNT_DEVICES_IN_USE)
                    .bind(owner_id)
                    .fetch_one(&mut *self.tx)
                    .await?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }

            async fn device_for_update(
                &mut self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::model::Device>, StoreError> {
                device_by_id(&mut self.tx, id, true).await
            }

            async fn device_by_mac(
                &mut self,
                mac: $crate::mac::MacAddr,
            ) -> Result<Option<$crate::model::Device>, StoreError> {
                device_by_mac(&mut self.tx, mac).await
            }

            async fn insert_device(&mut self, d: &$crate::model::Device) -> Result<(), StoreError> {
                sql::bind_device(sqlx::query(sql::INSERT_DEVICE), d)
                    .execute(&mut *self.tx)
                    .await?;
                for mac in &d.macs {
                    sqlx::query(INSERT_MAC)
                        .bind(mac.to_string())
                        .bind(d.id)
                        .execute(&mut *self.tx)
                        .await?;
                }
                Ok(())
            }

            async fn update_device(&mut self, d: &$crate::model::Device) -> Result<(), StoreError> {
                sql::bind_device(sqlx::query(sql::UPDATE_DEVICE), d)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn set_device_macs(
                &mut self,
                device_id: uuid::Uuid,
                macs: &[$crate::mac::MacAddr],
            ) -> Result<(), StoreError> {
                sqlx::query(sql::DELETE_DEVICE_MACS)
                    .bind(device_id)
                    .execute(&mut *self.tx)
                    .await?;
                for mac in macs {
                    sqlx::query(INSERT_MAC)
                        .bind(mac.to_string())
                        .bind(device_id)
                        .execute(&mut *self.tx)
                        .await?;
                }
                Ok(())
            }

            async fn delete_device(&mut self, id: uuid::Uuid) -> Result<(), StoreError> {
                for statement in sql::DELETE_DEVICE {
                    sqlx::query(statement)
                        .bind(id)
                        .execute(&mut *self.tx)
                        .await?;
                }
                Ok(())
            }

            async fn count_devices(&mut self, owner_id: uuid::Uuid) -> Result<u32, StoreError> {
                let n: i64 = sqlx::query_scalar(sql::COUNT_DEVICES)
                    .bind(owner_id)
                    .fetch_one(&mut *self.tx)
                    .await?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }

            async fn owners_of_source(
                &mut self,
                source: $crate::model::OwnerSource,
            ) -> Result<Vec<$crate::model::Owner>, StoreError> {
                let rows = sqlx::query(&sql::owners_of_source())
                    .bind(source.as_str())
                    .fetch_all(&mut *self.tx)
                    .await?;
                rows.iter()
                    .map(|r| $crate::registry::rows::owner(r))
                    .collect()
            }

            async fn erase_owner_data(
                &mut self,
                owner: &$crate::model::Owner,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), StoreError> {
                for statement in sql::ERASE_OWNER_DATA {
                    sqlx::query(statement)
                        .bind(owner.id)
                        .bind(&owner.username)
                        .bind(at)
                        .execute(&mut *self.tx)
                        .await?;
                }
                Ok(())
            }

            async fn delete_owner(&mut self, id: uuid::Uuid) -> Result<(), StoreError> {
                sqlx::query(sql::DELETE_OWNER)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn supersede_certificates(
                &mut self,
                device_id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, StoreError> {
                let done = sqlx::query(sql::SUPERSEDE_CERTIFICATES)
                    .bind(device_id)
                    .bind(at)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn insert_certificate(
                &mut self,
                c: &$crate::registry::DeviceCertificate,
            ) -> Result<(), StoreError> {
                sql::bind_certificate(sqlx::query(sql::INSERT_CERTIFICATE), c)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn insert_posture_report(
                &mut self,
                r: &$crate::registry::posture::NewPostureReport,
            ) -> Result<i64, StoreError> {
                let row = $crate::registry::posture::bind_posture_report(
                    sqlx::query($crate::registry::posture::INSERT_POSTURE_REPORT),
                    r,
                )
                .fetch_one(&mut *self.tx)
                .await?;
                Ok(sqlx::Row::try_get(&row, 0)?)
            }

            async fn append_audit(&mut self, e: &NewAuditEntry) -> Result<(), StoreError> {
                sql::append_audit!(self.tx, e).await
            }

            async fn commit(self: Box<Self>) -> Result<(), StoreError> {
                self.tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_store_tx;
