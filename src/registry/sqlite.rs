//! The embedded SQLite store: one file, WAL journal, `BEGIN IMMEDIATE` write transactions
//! (SQLite has one writer at a time, so a change never races another).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use crate::mac::MacAddr;
use crate::model::{AuditEntry, Device, Owner};

use super::activity_sql::{Dialect, PoolStore};
use super::rows::{self, DEVICE_COLUMNS, OWNER_COLUMNS};
use super::schema::{self, SchemaState, SchemaVerdict};
use super::sql;
use super::store::{
    AuditFilter, DeviceCertificate, NewAuditEntry, Store, StoreError, StoreTx, WithdrawnCertificate,
};

/// A MAC row (text in, TEXT in the table).
const INSERT_MAC: &str = "INSERT INTO device_macs (mac, device_id) VALUES ($1, $2)";

/// The schema migrations. Applied migrations this binary does not know (a newer binary ran
/// them) are not an error: [`super::schema`] decides whether they are compatible.
static MIGRATOR: Migrator = {
    let mut m = sqlx::migrate!("migrations/sqlite");
    m.ignore_missing = true;
    m
};

/// The registry in an SQLite file.
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

impl SqliteStore {
    /// Connects a pool.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // 16 MiB page cache per connection: the decision log's inserts stay in memory
            // between checkpoints instead of spilling
            .pragma("cache_size", "-16384")
            .busy_timeout(Duration::from_secs(10));
        if !(url.contains(":memory:") || url.contains("mode=memory")) {
            prepare_file(options.get_filename())?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool })
    }
}

/// Creates the database's directory (0750) and file (0600) if missing: the registry holds
/// personal data, and SQLite gives its WAL and shared-memory files the database file's mode.
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") || path.exists() {
        return Ok(());
    }
    let cannot = |what: &Path, e: std::io::Error| {
        StoreError::Url(format!("cannot create {}: {e}", what.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|e| cannot(dir, e))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(cannot(path, e)),
        })
}

struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
}

/// No row locks in SQLite: a write transaction (`BEGIN IMMEDIATE`) holds the one write lock.
async fn owner_by_name(
    conn: &mut SqliteConnection,
    username: &str,
    _lock: bool,
) -> Result<Option<Owner>, StoreError> {
    // `username` is COLLATE NOCASE
    let sql = format!("SELECT {OWNER_COLUMNS} FROM owners o WHERE o.username = $1");
    let row = sqlx::query(&sql)
        .bind(username)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(rows::owner).transpose()
}

/// Devices matching `condition` (on `d`, `o` or `m`), `$1` bound to `arg`.
async fn devices_where<A>(
    conn: &mut SqliteConnection,
    condition: &str,
    arg: A,
) -> Result<Vec<Device>, StoreError>
where
    A: for<'q> sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite> + Send,
{
    let sql = format!(
        "SELECT {DEVICE_COLUMNS}, m.mac AS mac FROM devices d \
         JOIN owners o ON o.id = d.owner_id \
         LEFT JOIN device_macs m ON m.device_id = d.id \
         WHERE {condition} ORDER BY d.created_at, d.id, m.mac"
    );
    let found = sqlx::query(&sql).bind(arg).fetch_all(conn).await?;
    rows::devices(&found)
}

async fn device_by_id(
    conn: &mut SqliteConnection,
    id: Uuid,
    _lock: bool,
) -> Result<Option<Device>, StoreError> {
    Ok(devices_where(conn, "d.id = $1", id).await?.pop())
}

async fn device_by_mac(
    conn: &mut SqliteConnection,
    mac: MacAddr,
) -> Result<Option<Device>, StoreError> {
    let condition = "d.id = (SELECT device_id FROM device_macs WHERE mac = $1)";
    Ok(devices_where(conn, condition, mac.to_string()).await?.pop())
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let verdict = self.schema().await?.verdict();
        if let Some(refused) = verdict.refusal(true) {
            return Err(refused.into());
        }
        // nothing pending: no DDL at all, which a runtime role could not run
        if matches!(verdict, SchemaVerdict::Behind { .. }) {
            MIGRATOR.run(&self.pool).await?;
        }
        Ok(())
    }

    async fn schema(&self) -> Result<SchemaState, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let exists = |table: &'static str| {
            sqlx::query_scalar::<_, bool>(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?",
            )
            .bind(table)
        };
        let mut state = SchemaState {
            known: schema::known(&MIGRATOR),
            ..SchemaState::default()
        };
        if exists("_sqlx_migrations").fetch_one(&mut *conn).await? {
            let applied: Vec<(i64, String)> = sqlx::query_as(
                "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(&mut *conn)
            .await?;
            state.applied = schema::ids(applied);
        }
        if exists("schema_compat").fetch_one(&mut *conn).await? {
            state.min_binary_migration =
                sqlx::query_scalar("SELECT max(min_binary_migration) FROM schema_compat")
                    .fetch_one(&mut *conn)
                    .await?;
        }
        Ok(state)
    }

    async fn copy_into(&self, to: &Path) -> Result<(), StoreError> {
        // VACUUM INTO: a consistent copy while `serve` keeps writing (SQLite 3.27+); it
        // refuses an existing file
        let to = to
            .to_str()
            .ok_or_else(|| StoreError::Url(format!("{}: the path is not UTF-8", to.display())))?;
        sqlx::query("VACUUM INTO ?")
            .bind(to)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        Ok(Box::new(SqliteTx {
            // IMMEDIATE takes the write lock up front: a read-then-write transaction can then
            // never fail to upgrade its lock under a concurrent writer
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
        }))
    }

    async fn owner(&self, username: &str) -> Result<Option<Owner>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        owner_by_name(&mut conn, username, false).await
    }

    async fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        let sql = format!("SELECT {OWNER_COLUMNS} FROM owners o ORDER BY lower(o.username)");
        let found = sqlx::query(&sql).fetch_all(&self.pool).await?;
        found.iter().map(rows::owner).collect()
    }

    async fn device(&self, id: Uuid) -> Result<Option<Device>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        device_by_id(&mut conn, id, false).await
    }

    async fn device_by_mac(&self, mac: MacAddr) -> Result<Option<Device>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        device_by_mac(&mut conn, mac).await
    }

    async fn devices(&self, owner: Option<&str>) -> Result<Vec<Device>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        match owner {
            Some(username) => {
                devices_where(&mut conn, "o.username = $1", username.to_owned()).await
            }
            None => devices_where(&mut conn, "$1", true).await,
        }
    }

    async fn device_by_cert_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Device>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let fingerprint = fingerprint.to_ascii_lowercase();
        Ok(
            devices_where(&mut conn, "d.cert_fingerprint = $1", fingerprint)
                .await?
                .pop(),
        )
    }

    async fn certificates(&self, device_id: Uuid) -> Result<Vec<DeviceCertificate>, StoreError> {
        let found = sqlx::query(sql::DEVICE_CERTIFICATES)
            .bind(device_id)
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(rows::certificate).collect()
    }

    async fn current_certificates(&self) -> Result<Vec<DeviceCertificate>, StoreError> {
        let found = sqlx::query(sql::CURRENT_CERTIFICATES)
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(rows::certificate).collect()
    }

    async fn withdrawn_certificates(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<WithdrawnCertificate>, StoreError> {
        let found = sqlx::query(sql::WITHDRAWN_CERTIFICATES)
            .bind(at)
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(rows::withdrawn_certificate).collect()
    }

    async fn device_ids_with_prefix(&self, hex_prefix: &str) -> Result<Vec<Uuid>, StoreError> {
        let ids = sqlx::query_scalar(
            "SELECT id FROM devices WHERE lower(hex(id)) LIKE $1 || '%' ORDER BY id LIMIT 10",
        )
        .bind(hex_prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "{} WHERE ($1 IS NULL OR a.target_id = $1 OR lower(p.target) = lower($1)) \
               AND ($2 IS NULL OR a.actor = $2 OR substr(a.actor, 1, length($2) + 6) = $2 || ' (os: ') \
             ORDER BY a.id DESC LIMIT $3 OFFSET $4",
            rows::AUDIT_SELECT
        );
        let found = sqlx::query(&sql)
            .bind(filter.target_id.as_deref())
            .bind(filter.actor.as_deref())
            .bind(i64::from(filter.limit.unwrap_or(50)))
            .bind(i64::try_from(filter.offset).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(rows::audit_entry).collect()
    }
}

sql::impl_store_tx!(SqliteTx);

impl PoolStore for SqliteStore {
    type Db = Sqlite;
    fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl Dialect for Sqlite {
    const TXT: &'static str = "";
    // `username` and `owner` are COLLATE NOCASE
    const USER_EQ: &'static str = "{col} = $2";
    const INSERT_DECISIONS_JSON: &'static str =
        "INSERT INTO decisions (at, nas, nas_ip, username, mac, ssid, method, \
        device_id, owner, outcome, vlan, reason, message, repeats, degraded) \
        SELECT j.value ->> 'at', j.value ->> 'nas', j.value ->> 'nas_ip', \
        j.value ->> 'username', j.value ->> 'mac', j.value ->> 'ssid', j.value ->> 'method', \
        unhex(replace(j.value ->> 'device_id', '-', '')), j.value ->> 'owner', \
        j.value ->> 'outcome', j.value ->> 'vlan', j.value ->> 'reason', j.value ->> 'message', \
        j.value ->> 'repeats', coalesce(j.value ->> 'degraded', 0) \
        FROM json_each($1) AS j";
    const UPDATE_SEEN_JSON: &'static str =
        "UPDATE devices SET last_seen_at = x.at, last_seen_nas = x.nas, \
        last_seen_ssid = x.ssid, last_seen_mac = coalesce(x.mac, devices.last_seen_mac) \
        FROM (SELECT unhex(replace(j.value ->> 'id', '-', '')) AS id, \
        j.value ->> 'at' AS at, j.value ->> 'nas' AS nas, j.value ->> 'ssid' AS ssid, \
        j.value ->> 'mac' AS mac FROM json_each($1) AS j) AS x \
        WHERE devices.id = x.id AND (devices.last_seen_at IS NULL OR devices.last_seen_at < x.at)";
    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}
