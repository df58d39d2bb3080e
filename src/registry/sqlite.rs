//! The embedded SQLite store: one file, WAL journal, `BEGIN IMMEDIATE` write transactions
//! (SQLite has one writer at a time, so a change never races another).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::Sqlite;

use super::registry_sql::SqlTx;
use super::schema::SchemaState;
use super::sql::{self, Dialect, PoolStore};
use super::store::{Store, StoreError, StoreTx};

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

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sql::migrate(&self.pool, &MIGRATOR).await
    }

    async fn schema(&self) -> Result<SchemaState, StoreError> {
        sql::schema_state(&self.pool, &MIGRATOR).await
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
        Ok(Box::new(SqlTx::begin(&self.pool).await?))
    }
}

impl PoolStore for SqliteStore {
    type Db = Sqlite;
    fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl Dialect for Sqlite {
    const TXT: &'static str = "";
    const BOOL: &'static str = "";
    const BIGINT: &'static str = "";
    const MACADDR: &'static str = "";
    // `username`, `owner`, `target_id` are COLLATE NOCASE
    const NOCASE_EQ: &'static str = "{col} = {arg}";
    const BYTEWISE: &'static str = "";
    // IMMEDIATE takes the write lock up front: a read-then-write transaction can then never
    // fail to upgrade its lock under a concurrent writer
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    // no row locks: a write transaction holds the one write lock
    const LOCK: &'static str = "";
    const LOCK_DEVICES: &'static str = "";
    const TABLE_EXISTS: &'static str =
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?";
    const ID_HEX: &'static str = "lower(hex(id))";
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
