//! The [`super::ActivityStore`] statements, written once for both backends: functions generic
//! over the sqlx database, implemented for every [`PoolStore`]; a backend says only how it
//! spells the few things that differ ([`Dialect`], in the backend's own file).

use async_trait::async_trait;
use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};
use uuid::Uuid;

use crate::activity::{
    AccountingUpdate, AcctKind, DecisionAggregate, DecisionFilter, DecisionRecord, RefusalFilter,
    Session, SessionFilter, Sighting,
};
use crate::mac::MacAddr;

use super::rows;
use super::sql::{nocase_eq, Dialect, PoolStore};
use super::store::{ActivityStore, StoreError};

/// A decision as the batch insert's JSON carries it; `at` in the text form sqlx writes to
/// SQLite (RFC 3339 with `+00:00`), which PostgreSQL reads as timestamptz.
#[derive(Serialize)]
struct DecisionJson<'a> {
    at: String,
    nas: &'a str,
    nas_ip: Option<&'a str>,
    username: &'a str,
    mac: Option<String>,
    ssid: Option<&'a str>,
    method: &'a str,
    device_id: Option<uuid::Uuid>,
    owner: Option<&'a str>,
    outcome: &'a str,
    vlan: Option<u16>,
    reason: &'a str,
    message: &'a str,
    repeats: u32,
    degraded: bool,
}

/// Decisions as one JSON array for [`Dialect::INSERT_DECISIONS_JSON`].
pub fn decisions_json(rows: &[DecisionRecord]) -> Result<String, StoreError> {
    let rows: Vec<DecisionJson<'_>> = rows
        .iter()
        .map(|r| DecisionJson {
            at: r.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
            nas: &r.nas,
            nas_ip: r.nas_ip.as_deref(),
            username: &r.username,
            mac: r.mac.map(|m| m.to_string()),
            ssid: r.ssid.as_deref(),
            method: &r.method,
            device_id: r.device_id,
            owner: r.owner.as_deref(),
            outcome: &r.outcome,
            vlan: r.vlan,
            reason: &r.reason,
            message: &r.message,
            repeats: r.repeats,
            degraded: r.degraded,
        })
        .collect();
    serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A sighting as the batch update's JSON carries it.
#[derive(Serialize)]
struct SightingJson<'a> {
    id: uuid::Uuid,
    at: String,
    nas: &'a str,
    ssid: Option<&'a str>,
    mac: Option<String>,
}

/// Sightings as one JSON array for [`Dialect::UPDATE_SEEN_JSON`].
pub fn sightings_json(rows: &[Sighting]) -> Result<String, StoreError> {
    let rows: Vec<SightingJson<'_>> = rows
        .iter()
        .map(|s| SightingJson {
            id: s.device_id,
            at: s.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
            nas: &s.nas,
            ssid: s.ssid.as_deref(),
            mac: s.mac.map(|m| m.to_string()),
        })
        .collect();
    serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The activity statements on any [`PoolStore`]. The bounds say what the two sqlx drivers
/// both have: an executor, and the column types bound and read here.
#[async_trait]
impl<S, DB> ActivityStore for S
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
    async fn insert_decisions(&self, rows: &[DecisionRecord]) -> Result<(), StoreError> {
        // one statement per batch: the rows travel as one JSON array that the
        // database unpacks, instead of thirteen bound parameters per row
        let mut tx = self.pool().begin().await?;
        for chunk in rows.chunks(4_000) {
            let json = decisions_json(chunk)?;
            sqlx::query(DB::INSERT_DECISIONS_JSON)
                .bind(json)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn decisions(&self, filter: &DecisionFilter) -> Result<Vec<DecisionRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM decisions WHERE ($1{txt} IS NOT NULL AND mac = $1) \
             OR ($2{txt} IS NOT NULL AND {}) ORDER BY at DESC, id DESC LIMIT $3",
            rows::DECISION_COLUMNS,
            nocase_eq::<DB>("owner", "$2"),
            txt = DB::TXT,
        );
        let found = sqlx::query(&sql)
            .bind(filter.mac.map(|m| m.to_string()))
            .bind(filter.username.clone())
            .bind(i64::from(filter.limit.unwrap_or(20)))
            .fetch_all(self.pool())
            .await?;
        found.iter().map(rows::decision).collect()
    }

    async fn purge_decisions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        // ids grow with time: delete below the first id that is young enough, in
        // batches, so that no single statement holds SQLite's write lock for long
        let bounds: (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT MIN(id) FROM decisions), COALESCE((SELECT id FROM decisions \
             WHERE at >= $1 ORDER BY id LIMIT 1), (SELECT MAX(id) + 1 FROM decisions))",
        )
        .bind(before)
        .fetch_one(self.pool())
        .await?;
        let (Some(mut low), Some(end)) = bounds else {
            return Ok(0);
        };
        let mut deleted = 0;
        while low < end {
            let high = (low + 10_000).min(end);
            let done = sqlx::query("DELETE FROM decisions WHERE id >= $1 AND id < $2")
                .bind(low)
                .bind(high)
                .execute(self.pool())
                .await?;
            deleted += DB::rows_affected(&done);
            low = high;
        }
        Ok(deleted)
    }

    async fn insert_decision_aggregates(
        &self,
        rows: &[DecisionAggregate],
    ) -> Result<(), StoreError> {
        // a few rows a minute, however many requests they count: one statement each
        let mut tx = self.pool().begin().await?;
        for r in rows {
            let macs = r
                .macs
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(",");
            sqlx::query(
                "INSERT INTO decision_aggregates (minute, nas, ap, method, outcome, \
                 reason, count, macs, message) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(r.minute)
            .bind(&r.nas)
            .bind(&r.ap)
            .bind(&r.method)
            .bind(&r.outcome)
            .bind(&r.reason)
            .bind(i64::try_from(r.count).unwrap_or(i64::MAX))
            .bind(macs)
            .bind(&r.message)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn decision_aggregates(
        &self,
        mac: MacAddr,
        limit: u32,
    ) -> Result<Vec<DecisionAggregate>, StoreError> {
        // no index: a scan of a table that grows by a bounded number of rows an
        // hour, for the helpdesk; MACs are comma-separated, so a match never spans two
        let sql = format!(
            "SELECT {} FROM decision_aggregates WHERE macs LIKE $1 \
             ORDER BY minute DESC, id DESC LIMIT $2",
            rows::AGGREGATE_COLUMNS,
        );
        let found = sqlx::query(&sql)
            .bind(format!("%{mac}%"))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        found.iter().map(rows::aggregate).collect()
    }

    async fn refusals(&self, filter: &RefusalFilter) -> Result<Vec<DecisionRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM decisions WHERE outcome = 'reject' \
             AND ($1{txt} IS NULL OR nas = $1) AND ($2{txt} IS NULL OR ssid = $2) \
             AND ($3{txt} IS NULL OR reason = $3) AND at >= $4 \
             ORDER BY at DESC, id DESC LIMIT $5",
            rows::DECISION_COLUMNS,
            txt = DB::TXT,
        );
        let since = filter
            .since
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
            .max(DateTime::UNIX_EPOCH);
        let found = sqlx::query(&sql)
            .bind(filter.nas.clone())
            .bind(filter.ssid.clone())
            .bind(filter.reason.clone())
            .bind(since)
            .bind(i64::from(filter.limit.unwrap_or(100)))
            .fetch_all(self.pool())
            .await?;
        found.iter().map(rows::decision).collect()
    }

    async fn refused_aggregates(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DecisionAggregate>, StoreError> {
        let sql = format!(
            "SELECT {} FROM decision_aggregates WHERE outcome = 'reject' AND minute >= $1 \
             ORDER BY minute DESC, id DESC LIMIT $2",
            rows::AGGREGATE_COLUMNS,
        );
        let found = sqlx::query(&sql)
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        found.iter().map(rows::aggregate).collect()
    }

    async fn purge_decision_aggregates(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM decision_aggregates WHERE minute < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn record_sightings(&self, seen: &[Sighting]) -> Result<(), StoreError> {
        // one statement per batch, the rows as one JSON array
        for chunk in seen.chunks(4_000) {
            let json = sightings_json(chunk)?;
            sqlx::query(DB::UPDATE_SEEN_JSON)
                .bind(json)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    async fn record_accounting(&self, u: &AccountingUpdate) -> Result<(), StoreError> {
        let stopped = (u.kind == AcctKind::Stop).then_some(u.at);
        let mac = u.mac.map(|m| m.to_string());
        let started = u.at - chrono::Duration::seconds(u.session_time.max(0));
        // packets of one session may arrive out of order (each is stored by its own
        // task, and NASes retransmit): an update applies only if it is not older than
        // what the open row holds; a unique-index race with a concurrent first packet
        // is retried once
        for _ in 0..2 {
            let updated = sqlx::query(
                "UPDATE sessions SET updated_at = $4, \
                 nas_ip = COALESCE($5, nas_ip), nas_port = COALESCE($6, nas_port), \
                 username = COALESCE($7, username), mac = COALESCE($8, mac), \
                 ssid = COALESCE($9, ssid), device_id = COALESCE($10, device_id), \
                 owner = COALESCE($11, owner), framed_ip = COALESCE($12, framed_ip), \
                 class = COALESCE($13, class), session_time = $14, \
                 input_octets = $15, output_octets = $16, input_packets = $17, \
                 output_packets = $18, terminate_cause = $19, stopped_at = $20, \
                 raw_calling_station_id = COALESCE(raw_calling_station_id, $21), \
                 raw_nas_identifier = COALESCE(raw_nas_identifier, $22), \
                 raw_nas_ip_address = COALESCE(raw_nas_ip_address, $23), \
                 raw_nas_ipv6_address = COALESCE(raw_nas_ipv6_address, $24), \
                 source_ip = COALESCE(source_ip, $25) \
                 WHERE nas = $1 AND nas_key = $2 AND acct_session_id = $3 \
                 AND stopped_at IS NULL AND updated_at <= $4 AND session_time <= $14",
            )
            .bind(&u.nas)
            .bind(&u.nas_key)
            .bind(&u.acct_session_id)
            .bind(u.at)
            .bind(&u.nas_ip)
            .bind(u.nas_port)
            .bind(&u.username)
            .bind(&mac)
            .bind(&u.ssid)
            .bind(u.device_id)
            .bind(&u.owner)
            .bind(&u.framed_ip)
            .bind(&u.class)
            .bind(u.session_time)
            .bind(u.input_octets)
            .bind(u.output_octets)
            .bind(u.input_packets)
            .bind(u.output_packets)
            .bind(&u.terminate_cause)
            .bind(stopped)
            .bind(&u.raw.calling_station_id)
            .bind(&u.raw.nas_identifier)
            .bind(&u.raw.nas_ip_address)
            .bind(&u.raw.nas_ipv6_address)
            .bind(&u.raw.source_ip)
            .execute(self.pool())
            .await?;
            if DB::rows_affected(&updated) > 0 {
                return Ok(());
            }
            // an open row that is newer than this packet, or an ended row whose span
            // overlaps it (a late Interim-Update, a repeated Stop, a Start that arrived
            // after its Stop): nothing to change
            let known: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM sessions WHERE nas = $1 AND nas_key = $2 \
                 AND acct_session_id = $3 AND (stopped_at IS NULL \
                 OR (started_at <= $4 AND stopped_at >= $5)) LIMIT 1",
            )
            .bind(&u.nas)
            .bind(&u.nas_key)
            .bind(&u.acct_session_id)
            .bind(u.at)
            .bind(started)
            .fetch_optional(self.pool())
            .await?;
            if known.is_some() {
                return Ok(());
            }
            // a new session (or one whose Start was lost)
            let inserted = sqlx::query(
                "INSERT INTO sessions (nas, nas_key, acct_session_id, nas_ip, nas_port, \
                 username, mac, ssid, device_id, owner, framed_ip, class, started_at, \
                 updated_at, stopped_at, session_time, input_octets, output_octets, \
                 input_packets, output_packets, terminate_cause, \
                 raw_calling_station_id, raw_nas_identifier, raw_nas_ip_address, \
                 raw_nas_ipv6_address, source_ip) VALUES ($1, $2, $3, $4, \
                 $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                 $20, $21, $22, $23, $24, $25, $26)",
            )
            .bind(&u.nas)
            .bind(&u.nas_key)
            .bind(&u.acct_session_id)
            .bind(&u.nas_ip)
            .bind(u.nas_port)
            .bind(&u.username)
            .bind(&mac)
            .bind(&u.ssid)
            .bind(u.device_id)
            .bind(&u.owner)
            .bind(&u.framed_ip)
            .bind(&u.class)
            .bind(started)
            .bind(u.at)
            .bind(stopped)
            .bind(u.session_time)
            .bind(u.input_octets)
            .bind(u.output_octets)
            .bind(u.input_packets)
            .bind(u.output_packets)
            .bind(&u.terminate_cause)
            .bind(&u.raw.calling_station_id)
            .bind(&u.raw.nas_identifier)
            .bind(&u.raw.nas_ip_address)
            .bind(&u.raw.nas_ipv6_address)
            .bind(&u.raw.source_ip)
            .execute(self.pool())
            .await;
            match inserted {
                Ok(_) => return Ok(()),
                Err(e) => match StoreError::from(e) {
                    StoreError::Unique(_) => continue,
                    other => return Err(other),
                },
            }
        }
        Err(StoreError::Unique(format!(
            "session {} of {} changed concurrently",
            u.acct_session_id, u.nas
        )))
    }

    async fn close_sessions(
        &self,
        nas: &str,
        nas_key: &str,
        at: DateTime<Utc>,
        cause: &str,
    ) -> Result<u64, StoreError> {
        // only sessions last heard of before the restart: one that started after it
        // is the access point's new session (and a replayed Accounting-On, applied a
        // second time after later Starts, must leave those open)
        let done = sqlx::query(
            "UPDATE sessions SET stopped_at = $3, updated_at = $3, terminate_cause = $4 \
             WHERE nas = $1 AND nas_key = $2 AND stopped_at IS NULL AND updated_at <= $3",
        )
        .bind(nas)
        .bind(nas_key)
        .bind(at)
        .bind(cause)
        .execute(self.pool())
        .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE ($1 = 0 OR stopped_at IS NULL) \
             AND ($2{txt} IS NULL OR mac = $2) ORDER BY id DESC LIMIT $3",
            rows::SESSION_COLUMNS,
            txt = DB::TXT,
        );
        let found = sqlx::query(&sql)
            .bind(i64::from(filter.active_only))
            .bind(filter.mac.map(|m| m.to_string()))
            .bind(i64::from(filter.limit.unwrap_or(50)))
            .fetch_all(self.pool())
            .await?;
        found.iter().map(rows::session).collect()
    }

    async fn open_session_by_ip(&self, framed_ip: &str) -> Result<Option<Session>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE stopped_at IS NULL AND framed_ip = $1 \
             ORDER BY id DESC LIMIT 1",
            rows::SESSION_COLUMNS,
        );
        let found = sqlx::query(&sql)
            .bind(framed_ip)
            .fetch_optional(self.pool())
            .await?;
        found.as_ref().map(rows::session).transpose()
    }

    async fn sessions_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE started_at < $1 \
             AND (stopped_at IS NULL OR stopped_at >= $2) ORDER BY id LIMIT $3",
            rows::SESSION_COLUMNS,
        );
        let found = sqlx::query(&sql)
            .bind(to)
            .bind(from)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        found.iter().map(rows::session).collect()
    }

    async fn open_sessions_of(&self, device_id: Uuid) -> Result<Vec<Session>, StoreError> {
        // `device_macs.mac` read as the text `sessions.mac` holds
        let sql = format!(
            "SELECT {} FROM sessions WHERE stopped_at IS NULL AND (device_id = $1 \
             OR mac IN (SELECT mac{} FROM device_macs WHERE device_id = $1)) ORDER BY id",
            rows::SESSION_COLUMNS,
            DB::TXT
        );
        let found = sqlx::query(&sql)
            .bind(device_id)
            .fetch_all(self.pool())
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
            .fetch_optional(self.pool())
            .await?;
        found.as_ref().map(rows::session).transpose()
    }

    async fn sessions_by_acct_id(&self, acct_session_id: &str) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE acct_session_id = $1 \
             ORDER BY (stopped_at IS NULL) DESC, id DESC LIMIT 20",
            rows::SESSION_COLUMNS
        );
        let found = sqlx::query(&sql)
            .bind(acct_session_id)
            .fetch_all(self.pool())
            .await?;
        found.iter().map(rows::session).collect()
    }

    async fn end_session(
        &self,
        id: i64,
        at: DateTime<Utc>,
        cause: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(super::sql::END_SESSION)
            .bind(id)
            .bind(at)
            .bind(cause)
            .execute(self.pool())
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(super::sql::PURGE_SESSIONS)
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn purge_orphan_audit_personal(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(super::sql::PURGE_ORPHAN_AUDIT_PERSONAL)
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn audit_chain(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<super::audit::ChainRow>, StoreError> {
        let found = sqlx::query(
            "SELECT a.id, a.at, a.actor, a.action, a.target_type, a.target_id, a.before, \
             a.after, a.personal_digest, a.chain FROM audit_log a WHERE a.id > $1 \
             ORDER BY a.id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        found.iter().map(rows::audit_chain_row).collect()
    }

    async fn audit_head(&self) -> Result<String, StoreError> {
        let head: String = sqlx::query_scalar::<DB, String>(super::sql::AUDIT_HEAD)
            .fetch_one(self.pool())
            .await?;
        Ok(head)
    }

    async fn change_marker(&self) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM audit_log")
            .fetch_one(self.pool())
            .await?;
        Ok(id)
    }
}
