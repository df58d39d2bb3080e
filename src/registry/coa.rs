//! Storage for dynamic authorization (RFC 5176): the log of Disconnect/CoA requests, on both
//! stores. What the enforcer reads besides (the audit log after a point, a device's open
//! sessions) is with the audit log ([`super::ReadStore`]) and the sessions
//! ([`super::ActivityStore`]).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};
use uuid::Uuid;

use crate::registry::NewAuditEntry;

use super::sql::{self, Dialect, PoolStore};
use super::StoreError;

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

/// The log of Disconnect and CoA requests (RFC 5176) of a storage backend.
#[async_trait]
pub trait CoaStore: Send + Sync + 'static {
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

/// `INSERT INTO coa_requests`, bound by [`bind_coa`]; returns the id.
const INSERT_COA: &str = "INSERT INTO coa_requests (session_id, acct_session_id, nas, \
     nas_addr, device_id, kind, reason, actor, sent_at, answered_at, result, error_cause, \
     attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id";

/// Binds a request's columns as `$1..$13`.
fn bind_coa<'q, DB>(
    q: sqlx::query::QueryScalar<'q, DB, i64, <DB as Database>::Arguments<'q>>,
    r: &'q CoaRecord,
) -> sqlx::query::QueryScalar<'q, DB, i64, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    String: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<i32>: Encode<'q, DB> + Type<DB>,
    i32: Encode<'q, DB> + Type<DB>,
    Option<Uuid>: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
{
    q.bind(r.session_id)
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
}

/// The dynamic-authorization statements on any [`PoolStore`], the same for both stores.
#[async_trait]
impl<S, DB> CoaStore for S
where
    S: PoolStore<Db = DB>,
    DB: Dialect,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> bool: Encode<'q, DB>,
    for<'q> Option<i32>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Uuid: Encode<'q, DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Option<NaiveDate>: Encode<'q, DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB>,
    for<'q> Json<&'q serde_json::Value>: Encode<'q, DB>,
    for<'q> Option<Json<&'q serde_json::Value>>: Encode<'q, DB>,
    for<'r> &'r str: ColumnIndex<<DB as Database>::Row>,
    for<'r> bool: Decode<'r, DB>,
    for<'r> i32: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> Uuid: Decode<'r, DB>,
    for<'r> NaiveDate: Decode<'r, DB>,
    for<'r> DateTime<Utc>: Decode<'r, DB>,
    for<'r> Json<serde_json::Value>: Decode<'r, DB>,
    for<'r> (i64,): FromRow<'r, <DB as Database>::Row>,
    for<'r> (String,): FromRow<'r, <DB as Database>::Row>,
    for<'r> (Uuid,): FromRow<'r, <DB as Database>::Row>,
    for<'r> (Option<i64>, Option<i64>): FromRow<'r, <DB as Database>::Row>,
    str: Type<DB>,
    String: Type<DB>,
    bool: Type<DB>,
    i32: Type<DB>,
    i64: Type<DB>,
    Uuid: Type<DB>,
    NaiveDate: Type<DB>,
    DateTime<Utc>: Type<DB>,
    Json<serde_json::Value>: Type<DB>,
    for<'q> Json<&'q serde_json::Value>: Type<DB>,
{
    async fn insert_coa_request(&self, r: &CoaRecord) -> Result<i64, StoreError> {
        let id = bind_coa(sqlx::query_scalar(INSERT_COA), r)
            .fetch_one(self.pool())
            .await?;
        Ok(id)
    }

    async fn record_kick(
        &self,
        r: &CoaRecord,
        close: Option<(i64, DateTime<Utc>, &str)>,
        audit: &(dyn Fn(i64) -> NewAuditEntry + Sync),
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let id = bind_coa(sqlx::query_scalar(INSERT_COA), r)
            .fetch_one(&mut *tx)
            .await?;
        if let Some((session, at, cause)) = close {
            sqlx::query(sql::END_SESSION)
                .bind(session)
                .bind(at)
                .bind(cause)
                .execute(&mut *tx)
                .await?;
        }
        let entry = audit(id);
        sql::append_audit(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn purge_coa_requests(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM coa_requests WHERE sent_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn coa_requests(
        &self,
        session_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CoaRecord>, StoreError> {
        let sql = format!(
            "SELECT {COA_COLUMNS} FROM coa_requests \
             WHERE ($1{} IS NULL OR session_id = $1) ORDER BY id DESC LIMIT $2",
            DB::BIGINT
        );
        let found = sqlx::query(&sql)
            .bind(session_id)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        found.iter().map(coa_record).collect()
    }
}
