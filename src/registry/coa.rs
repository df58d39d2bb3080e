//! Storage for dynamic authorization (RFC 5176): what the enforcer reads (the audit log after
//! a point, a device's open sessions) and the log of Disconnect/CoA requests, on both stores.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::activity::Session;
use crate::model::AuditEntry;
use crate::registry::NewAuditEntry;

use super::postgres::PgStore;
use super::rows;
use super::sqlite::SqliteStore;
use super::{sql, StoreError};

/// One Disconnect-Request or CoA-Request sent, and its answer: a row of `coa_requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoaRecord {
    /// Row id (0 before it is stored).
    pub id: i64,
    /// The session row (`sessions.id`).
    pub session_id: Option<i64>,
    /// Acct-Session-Id sent.
    pub acct_session_id: String,
    /// The client, by its configured name.
    pub nas: String,
    /// Where it was sent, `ip:port`.
    pub nas_addr: String,
    /// The session's device.
    pub device_id: Option<Uuid>,
    /// `disconnect` or `coa`.
    pub kind: String,
    /// What triggered it, e.g. `device.revoke by ict.jansen`.
    pub reason: String,
    /// Who sent it: the enforcer, or the CLI user.
    pub actor: String,
    /// First send.
    pub sent_at: DateTime<Utc>,
    /// When the answer came (none on a timeout).
    pub answered_at: Option<DateTime<Utc>>,
    /// `ack`, `nak`, `timeout` or `error` (could not send).
    pub result: String,
    /// Error-Cause of a NAK (RFC 5176 §3.5).
    pub error_cause: Option<u32>,
    /// Datagrams sent.
    pub attempts: u32,
}

/// The dynamic-authorization part of a storage backend.
#[async_trait]
pub trait CoaStore: Send + Sync + 'static {
    /// Audit entries with an id above `after`, oldest first, at most `limit`.
    async fn audit_after(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
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
    /// Records a request sent; returns its id.
    async fn insert_coa_request(&self, r: &CoaRecord) -> Result<i64, StoreError>;
    /// In one transaction: records a request sent, closes the session (`close`: row id, time,
    /// terminate cause) if it is still open, and appends `audit(request id)` to the audit log.
    /// Returns the request's id.
    async fn record_kick(
        &self,
        r: &CoaRecord,
        close: Option<(i64, DateTime<Utc>, &str)>,
        audit: &(dyn Fn(i64) -> NewAuditEntry + Sync),
    ) -> Result<i64, StoreError>;
    /// Deletes requests sent before `before`; returns how many.
    async fn purge_coa_requests(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Requests sent, newest first: of one session, or all.
    async fn coa_requests(
        &self,
        session_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CoaRecord>, StoreError>;
}

const COA_COLUMNS: &str = "id, session_id, acct_session_id, nas, nas_addr, device_id, kind, \
     reason, actor, sent_at, answered_at, result, error_cause, attempts";

fn coa_record<'r, R>(row: &'r R) -> Result<CoaRecord, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Uuid: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let cause: Option<i32> = row.try_get("error_cause")?;
    let attempts: i32 = row.try_get("attempts")?;
    Ok(CoaRecord {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        acct_session_id: row.try_get("acct_session_id")?,
        nas: row.try_get("nas")?,
        nas_addr: row.try_get("nas_addr")?,
        device_id: row.try_get("device_id")?,
        kind: row.try_get("kind")?,
        reason: row.try_get("reason")?,
        actor: row.try_get("actor")?,
        sent_at: row.try_get("sent_at")?,
        answered_at: row.try_get("answered_at")?,
        result: row.try_get("result")?,
        error_cause: cause.and_then(|c| u32::try_from(c).ok()),
        attempts: u32::try_from(attempts).unwrap_or(0),
    })
}

/// Inserts one request row through executor `$ex`; evaluates to its id.
macro_rules! insert_coa {
    ($ex:expr, $r:expr) => {{
        let r: &CoaRecord = $r;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO coa_requests (session_id, acct_session_id, nas, nas_addr, \
             device_id, kind, reason, actor, sent_at, answered_at, result, error_cause, \
             attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             RETURNING id",
        )
        .bind(r.session_id)
        .bind(&r.acct_session_id)
        .bind(&r.nas)
        .bind(&r.nas_addr)
        .bind(r.device_id)
        .bind(&r.kind)
        .bind(&r.reason)
        .bind(&r.actor)
        .bind(r.sent_at)
        .bind(r.answered_at)
        .bind(&r.result)
        .bind(r.error_cause.and_then(|c| i32::try_from(c).ok()))
        .bind(i32::try_from(r.attempts).unwrap_or(i32::MAX))
        .fetch_one($ex)
        .await?;
        id
    }};
}

/// The same statements for both stores; `$nulli64` is how a possibly-NULL integer parameter
/// is spelled in a comparison, `$mac_text` how `device_macs.mac` reads as the text form
/// `sessions.mac` holds.
macro_rules! impl_coa_store {
    ($store:ty, $nulli64:literal, $mac_text:literal) => {
        #[async_trait]
        impl CoaStore for $store {
            async fn audit_after(
                &self,
                after: i64,
                limit: u32,
            ) -> Result<Vec<AuditEntry>, StoreError> {
                let sql = format!(
                    "{} WHERE a.id > $1 ORDER BY a.id LIMIT $2",
                    super::rows::AUDIT_SELECT
                );
                let found = sqlx::query(&sql)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                found.iter().map(rows::audit_entry).collect()
            }

            async fn open_sessions_of(&self, device_id: Uuid) -> Result<Vec<Session>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM sessions WHERE stopped_at IS NULL AND (device_id = $1 \
                     OR mac IN (SELECT {} FROM device_macs WHERE device_id = $1)) ORDER BY id",
                    rows::SESSION_COLUMNS,
                    $mac_text
                );
                let found = sqlx::query(&sql)
                    .bind(device_id)
                    .fetch_all(&self.pool)
                    .await?;
                found.iter().map(rows::session).collect()
            }

            async fn session_by_id(&self, id: i64) -> Result<Option<Session>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM sessions WHERE id = $1",
                    rows::SESSION_COLUMNS
                );
                let found = sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                found.as_ref().map(rows::session).transpose()
            }

            async fn sessions_by_acct_id(
                &self,
                acct_session_id: &str,
            ) -> Result<Vec<Session>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM sessions WHERE acct_session_id = $1 \
                     ORDER BY (stopped_at IS NULL) DESC, id DESC LIMIT 20",
                    rows::SESSION_COLUMNS
                );
                let found = sqlx::query(&sql)
                    .bind(acct_session_id)
                    .fetch_all(&self.pool)
                    .await?;
                found.iter().map(rows::session).collect()
            }

            async fn end_session(
                &self,
                id: i64,
                at: DateTime<Utc>,
                cause: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE sessions SET stopped_at = $2, updated_at = $2, terminate_cause = $3 \
                     WHERE id = $1 AND stopped_at IS NULL",
                )
                .bind(id)
                .bind(at)
                .bind(cause)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn insert_coa_request(&self, r: &CoaRecord) -> Result<i64, StoreError> {
                Ok(insert_coa!(&self.pool, r))
            }

            async fn record_kick(
                &self,
                r: &CoaRecord,
                close: Option<(i64, DateTime<Utc>, &str)>,
                audit: &(dyn Fn(i64) -> NewAuditEntry + Sync),
            ) -> Result<i64, StoreError> {
                let mut tx = self.pool.begin().await?;
                let id = insert_coa!(&mut *tx, r);
                if let Some((session, at, cause)) = close {
                    sqlx::query(
                        "UPDATE sessions SET stopped_at = $2, updated_at = $2, \
                         terminate_cause = $3 WHERE id = $1 AND stopped_at IS NULL",
                    )
                    .bind(session)
                    .bind(at)
                    .bind(cause)
                    .execute(&mut *tx)
                    .await?;
                }
                let entry = audit(id);
                sql::append_audit!(tx, &entry).await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn purge_coa_requests(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM coa_requests WHERE sent_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn coa_requests(
                &self,
                session_id: Option<i64>,
                limit: u32,
            ) -> Result<Vec<CoaRecord>, StoreError> {
                let sql = format!(
                    "SELECT {COA_COLUMNS} FROM coa_requests \
                     WHERE ({} IS NULL OR session_id = $1) ORDER BY id DESC LIMIT $2",
                    $nulli64
                );
                let found = sqlx::query(&sql)
                    .bind(session_id)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                found.iter().map(coa_record).collect()
            }
        }
    };
}

impl_coa_store!(SqliteStore, "$1", "mac");
impl_coa_store!(PgStore, "$1::bigint", "mac::text");
