//! The registry's write transaction ([`StoreTx`]) and its reads ([`ReadStore`]), written once
//! for both backends over the sqlx database, for every [`PoolStore`]; a backend says only how
//! it spells what differs ([`Dialect`]: its row locks, case-insensitive usernames, the MAC
//! column's type).

use std::marker::PhantomData;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Transaction,
    Type,
};
use uuid::Uuid;

use crate::mac::MacAddr;
use crate::model::{AuditEntry, Device, Owner, OwnerSource};

use super::posture::{bind_posture_report, NewPostureReport, INSERT_POSTURE_REPORT};
use super::rows::{self, DEVICE_COLUMNS, OWNER_COLUMNS};
use super::sql::{self, nocase_eq, Dialect, PoolStore};
use super::store::{
    AuditFilter, DeviceCertificate, NewAuditEntry, ReadStore, StoreError, StoreTx,
    WithdrawnCertificate,
};

/// A write transaction on database `DB`, opened with [`Dialect::BEGIN_WRITE`]: rows read
/// `for_update` stay locked (PostgreSQL) until it ends; SQLite's holds the write lock.
pub(crate) struct SqlTx<DB: Database> {
    tx: Transaction<'static, DB>,
}

impl<DB: Dialect> SqlTx<DB> {
    /// Opens one on `pool`.
    pub(crate) async fn begin(pool: &Pool<DB>) -> Result<Self, StoreError> {
        Ok(SqlTx {
            tx: sql::begin_write(pool).await?,
        })
    }
}

/// The owner and device statements the transaction and the reads share, on database `DB`.
struct Sql<DB>(PhantomData<DB>);

impl<DB> Sql<DB>
where
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
    /// An owner by username in any case, its row locked if `lock`.
    async fn owner_by_name(
        conn: &mut DB::Connection,
        username: &str,
        lock: bool,
    ) -> Result<Option<Owner>, StoreError> {
        let sql = format!(
            "SELECT {OWNER_COLUMNS} FROM owners o WHERE {}{}",
            nocase_eq::<DB>("o.username", "$1"),
            if lock { DB::LOCK } else { "" }
        );
        let row = sqlx::query(&sql)
            .bind(username)
            .fetch_optional(conn)
            .await?;
        row.as_ref().map(rows::owner).transpose()
    }

    /// Devices matching `condition` (on `d`, `o` or `m`), `$1` bound to `arg`; their rows locked
    /// if `lock`.
    async fn devices_where<A>(
        conn: &mut DB::Connection,
        condition: &str,
        arg: A,
        lock: bool,
    ) -> Result<Vec<Device>, StoreError>
    where
        A: for<'q> Encode<'q, DB> + Type<DB> + Send,
    {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS}, m.mac{} AS mac FROM devices d \
             JOIN owners o ON o.id = d.owner_id \
             LEFT JOIN device_macs m ON m.device_id = d.id \
             WHERE {condition} ORDER BY d.created_at, d.id, m.mac{}",
            DB::TXT,
            if lock { DB::LOCK_DEVICES } else { "" }
        );
        let found = sqlx::query(&sql).bind(arg).fetch_all(conn).await?;
        rows::devices(&found)
    }

    /// A device by id, its rows locked if `lock`.
    async fn device_by_id(
        conn: &mut DB::Connection,
        id: Uuid,
        lock: bool,
    ) -> Result<Option<Device>, StoreError> {
        Ok(Self::devices_where(conn, "d.id = $1", id, lock)
            .await?
            .pop())
    }

    /// The device that holds a MAC.
    async fn device_by_mac(
        conn: &mut DB::Connection,
        mac: MacAddr,
    ) -> Result<Option<Device>, StoreError> {
        let condition = format!(
            "d.id = (SELECT device_id FROM device_macs WHERE mac = $1{})",
            DB::MACADDR
        );
        Ok(
            Self::devices_where(conn, &condition, mac.to_string(), false)
                .await?
                .pop(),
        )
    }

    /// Inserts a device's MAC rows.
    async fn insert_macs(
        conn: &mut DB::Connection,
        device_id: Uuid,
        macs: &[MacAddr],
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO device_macs (mac, device_id) VALUES ($1{}, $2)",
            DB::MACADDR
        );
        for mac in macs {
            sqlx::query(&sql)
                .bind(mac.to_string())
                .bind(device_id)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

/// A count as the registry returns it.
fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[async_trait]
impl<DB> StoreTx for SqlTx<DB>
where
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
    async fn owner_for_update(&mut self, username: &str) -> Result<Option<Owner>, StoreError> {
        Sql::<DB>::owner_by_name(&mut self.tx, username, true).await
    }

    async fn insert_owner(&mut self, o: &Owner) -> Result<(), StoreError> {
        sql::bind_owner(sqlx::query(sql::INSERT_OWNER), o)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn update_owner(&mut self, o: &Owner) -> Result<(), StoreError> {
        sql::bind_owner(sqlx::query(sql::UPDATE_OWNER), o)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn count_devices_in_use(&mut self, owner_id: Uuid) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(sql::COUNT_DEVICES_IN_USE)
            .bind(owner_id)
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(count(n))
    }

    async fn device_for_update(&mut self, id: Uuid) -> Result<Option<Device>, StoreError> {
        Sql::<DB>::device_by_id(&mut self.tx, id, true).await
    }

    async fn device_by_mac(&mut self, mac: MacAddr) -> Result<Option<Device>, StoreError> {
        Sql::<DB>::device_by_mac(&mut self.tx, mac).await
    }

    async fn insert_device(&mut self, d: &Device) -> Result<(), StoreError> {
        sql::bind_device(sqlx::query(sql::INSERT_DEVICE), d)
            .execute(&mut *self.tx)
            .await?;
        Sql::<DB>::insert_macs(&mut self.tx, d.id, &d.macs).await
    }

    async fn update_device(&mut self, d: &Device) -> Result<(), StoreError> {
        sql::bind_device(sqlx::query(sql::UPDATE_DEVICE), d)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn set_device_macs(
        &mut self,
        device_id: Uuid,
        macs: &[MacAddr],
    ) -> Result<(), StoreError> {
        sqlx::query(sql::DELETE_DEVICE_MACS)
            .bind(device_id)
            .execute(&mut *self.tx)
            .await?;
        Sql::<DB>::insert_macs(&mut self.tx, device_id, macs).await
    }

    async fn delete_device(&mut self, id: Uuid) -> Result<(), StoreError> {
        for statement in sql::DELETE_DEVICE {
            sqlx::query(statement)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    async fn count_devices(&mut self, owner_id: Uuid) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(sql::COUNT_DEVICES)
            .bind(owner_id)
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(count(n))
    }

    async fn owners_of_source(&mut self, source: OwnerSource) -> Result<Vec<Owner>, StoreError> {
        let rows = sqlx::query(&sql::owners_of_source())
            .bind(source.as_str())
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(rows::owner).collect()
    }

    async fn erase_owner_data(
        &mut self,
        owner: &Owner,
        at: DateTime<Utc>,
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

    async fn delete_owner(&mut self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query(sql::DELETE_OWNER)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn supersede_certificates(
        &mut self,
        device_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::SUPERSEDE_CERTIFICATES)
            .bind(device_id)
            .bind(at)
            .execute(&mut *self.tx)
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn insert_certificate(&mut self, c: &DeviceCertificate) -> Result<(), StoreError> {
        sql::bind_certificate(sqlx::query(sql::INSERT_CERTIFICATE), c)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn insert_posture_report(&mut self, r: &NewPostureReport) -> Result<i64, StoreError> {
        let row = bind_posture_report(sqlx::query(INSERT_POSTURE_REPORT), r)
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(sqlx::Row::try_get(&row, "id")?)
    }

    async fn append_audit(&mut self, e: &NewAuditEntry) -> Result<(), StoreError> {
        sql::append_audit(&mut self.tx, e).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// The reads on any [`PoolStore`].
#[async_trait]
impl<S, DB> ReadStore for S
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
    async fn owner(&self, username: &str) -> Result<Option<Owner>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Sql::<DB>::owner_by_name(&mut conn, username, false).await
    }

    async fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        let sql = format!(
            "SELECT {OWNER_COLUMNS} FROM owners o ORDER BY lower(o.username){}",
            DB::BYTEWISE
        );
        let found = sqlx::query(&sql).fetch_all(self.pool()).await?;
        found.iter().map(rows::owner).collect()
    }

    async fn device(&self, id: Uuid) -> Result<Option<Device>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Sql::<DB>::device_by_id(&mut conn, id, false).await
    }

    async fn device_by_mac(&self, mac: MacAddr) -> Result<Option<Device>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Sql::<DB>::device_by_mac(&mut conn, mac).await
    }

    async fn devices(&self, owner: Option<&str>) -> Result<Vec<Device>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        match owner {
            Some(username) => {
                let condition = nocase_eq::<DB>("o.username", "$1");
                Sql::<DB>::devices_where(&mut conn, &condition, username.to_owned(), false).await
            }
            None => {
                let all = format!("$1{}", DB::BOOL);
                Sql::<DB>::devices_where(&mut conn, &all, true, false).await
            }
        }
    }

    async fn device_by_cert_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Device>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let fingerprint = fingerprint.to_ascii_lowercase();
        Ok(
            Sql::<DB>::devices_where(&mut conn, "d.cert_fingerprint = $1", fingerprint, false)
                .await?
                .pop(),
        )
    }

    async fn certificates(&self, device_id: Uuid) -> Result<Vec<DeviceCertificate>, StoreError> {
        let found = sqlx::query(sql::DEVICE_CERTIFICATES)
            .bind(device_id)
            .fetch_all(self.pool())
            .await?;
        found.iter().map(rows::certificate).collect()
    }

    async fn current_certificates(&self) -> Result<Vec<DeviceCertificate>, StoreError> {
        let found = sqlx::query(sql::CURRENT_CERTIFICATES)
            .fetch_all(self.pool())
            .await?;
        found.iter().map(rows::certificate).collect()
    }

    async fn withdrawn_certificates(
        &self,
        at: DateTime<Utc>,
    ) -> Result<Vec<WithdrawnCertificate>, StoreError> {
        let found = sqlx::query(sql::WITHDRAWN_CERTIFICATES)
            .bind(at)
            .fetch_all(self.pool())
            .await?;
        found.iter().map(rows::withdrawn_certificate).collect()
    }

    async fn device_ids_with_prefix(&self, hex_prefix: &str) -> Result<Vec<Uuid>, StoreError> {
        let sql = format!(
            "SELECT id FROM devices WHERE {} LIKE $1 || '%' ORDER BY id LIMIT 10",
            DB::ID_HEX
        );
        let ids = sqlx::query_scalar(&sql)
            .bind(hex_prefix)
            .fetch_all(self.pool())
            .await?;
        Ok(ids)
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "{} WHERE ($1{txt} IS NULL OR {} OR lower(p.target) = lower($1)) \
               AND ($2{txt} IS NULL OR a.actor = $2 OR substr(a.actor, 1, length($2) + 6) = $2 || ' (os: ') \
             ORDER BY a.id DESC LIMIT $3 OFFSET $4",
            rows::AUDIT_SELECT,
            nocase_eq::<DB>("a.target_id", "$1"),
            txt = DB::TXT,
        );
        let found = sqlx::query(&sql)
            .bind(filter.target_id.as_deref())
            .bind(filter.actor.as_deref())
            .bind(i64::from(filter.limit.unwrap_or(50)))
            .bind(i64::try_from(filter.offset).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        found.iter().map(rows::audit_entry).collect()
    }

    async fn audit_after(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "{} WHERE a.id > $1 ORDER BY a.id LIMIT $2",
            rows::AUDIT_SELECT
        );
        let found = sqlx::query(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        found.iter().map(rows::audit_entry).collect()
    }
}
