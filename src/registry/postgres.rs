//! The PostgreSQL store: native uuid, timestamptz, date, macaddr and jsonb; row locks
//! (`FOR UPDATE`) serialize changes to one owner or device across processes and nodes.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::Postgres;

use super::registry_sql::SqlTx;
use super::schema::SchemaState;
use super::sql::{self, Dialect, PoolStore};
use super::store::{Duty, Leadership, RegistryChange, Store, StoreError, StoreTx};

/// The schema migrations. Applied migrations this binary does not know (a newer node ran
/// them) are not an error: [`super::schema`] decides whether they are compatible.
static MIGRATOR: Migrator = {
    let mut m = sqlx::migrate!("migrations/postgres");
    m.ignore_missing = true;
    m
};

/// The registry in PostgreSQL.
pub struct PgStore {
    pub(super) pool: PgPool,
}

impl PgStore {
    /// Connects a pool.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(PgStore { pool })
    }

    /// A pool that connects when first used.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy(url)?;
        Ok(PgStore { pool })
    }
}

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sql::migrate(&self.pool, &MIGRATOR).await
    }

    async fn schema(&self) -> Result<SchemaState, StoreError> {
        sql::schema_state(&self.pool, &MIGRATOR).await
    }

    async fn watch_changes(&self) -> Result<Option<super::ChangeWatch>, StoreError> {
        self.watch().await
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        Ok(Box::new(SqlTx::begin(&self.pool).await?))
    }

    /// A session-level advisory lock on a connection of its own: PostgreSQL releases it when
    /// that connection ends (the node stopped or died), and another node's next try gets it.
    async fn try_lead_for(&self, duty: Duty) -> Result<Option<Box<dyn Leadership>>, StoreError> {
        use sqlx::Connection;
        let key = match duty {
            Duty::Enforce => ENFORCER_LOCK,
            Duty::DirectorySync => DIRECTORY_SYNC_LOCK,
        };
        let mut conn = PgConnection::connect_with(&self.pool.connect_options()).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await?;
        if !got {
            let _ = conn.close().await;
            return Ok(None);
        }
        Ok(Some(Box::new(PgLeadership { conn: Some(conn) })))
    }
}

/// The advisory lock key of the enforcing node ("poortwa" in ASCII); advisory locks are per
/// database, so registries sharing a server do not meet.
const ENFORCER_LOCK: i64 = 0x0070_6f6f_7274_7761;
/// The advisory lock key of the node that syncs the directory ("poortds").
const DIRECTORY_SYNC_LOCK: i64 = 0x0070_6f6f_7274_6473;

struct PgLeadership {
    conn: Option<PgConnection>,
}

#[async_trait]
impl Leadership for PgLeadership {
    async fn holds(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let alive = tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&mut *conn),
        )
        .await;
        if matches!(alive, Ok(Ok(1))) {
            return true;
        }
        // the lock went with the connection, or will when PostgreSQL notices
        self.conn = None;
        false
    }
}

/// The channel the `audit_log_notify` trigger signals on.
const CHANGE_CHANNEL: &str = "poortwachter_registry";

impl PgStore {
    /// LISTENs for registry changes on a dedicated connection: each notification names the
    /// audit entry's target. A lost connection is reported as [`RegistryChange::Missed`]
    /// (notifications may have been missed while it was down); the listener reconnects by
    /// itself, once a second while the database is away.
    async fn watch(&self) -> Result<Option<super::ChangeWatch>, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANGE_CHANNEL).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            let mut lost = false;
            loop {
                let change = match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if lost {
                            lost = false;
                            tracing::info!("registry change listener connected again");
                        }
                        RegistryChange::from_payload(n.payload())
                    }
                    Ok(None) => RegistryChange::Missed,
                    Err(e) => {
                        if !lost {
                            tracing::warn!(error = %e, "registry change listener lost its connection; retrying every second");
                        }
                        lost = true;
                        if tx.send(RegistryChange::Missed).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                // waits when the watcher is behind: PostgreSQL queues the notifications
                if tx.send(change).await.is_err() {
                    return;
                }
            }
        });
        Ok(Some(rx))
    }
}

impl PoolStore for PgStore {
    type Db = Postgres;
    fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Dialect for Postgres {
    const TXT: &'static str = "::text";
    const BOOL: &'static str = "::boolean";
    const BIGINT: &'static str = "::bigint";
    const MACADDR: &'static str = "::macaddr";
    const NOCASE_EQ: &'static str = "lower({col}) = lower({arg})";
    const BYTEWISE: &'static str = " COLLATE \"C\"";
    const BEGIN_WRITE: &'static str = "BEGIN";
    // an owner's or device's rows stay locked until the change commits: changes to one owner
    // or device line up across processes and nodes
    const LOCK: &'static str = " FOR UPDATE";
    const LOCK_DEVICES: &'static str = " FOR UPDATE OF d";
    const TABLE_EXISTS: &'static str = "SELECT to_regclass($1) IS NOT NULL";
    const ID_HEX: &'static str = "replace(id::text, '-', '')";
    const INSERT_DECISIONS_JSON: &'static str = "INSERT INTO decisions (at, nas, nas_ip, username, mac, ssid, method, \
        device_id, owner, outcome, vlan, reason, message, repeats, degraded) \
        SELECT at, nas, nas_ip, username, mac, ssid, method, device_id, owner, outcome, vlan, \
        reason, message, repeats, degraded FROM jsonb_to_recordset($1::text::jsonb) AS x(at timestamptz, \
        nas text, nas_ip text, username text, mac text, ssid text, method text, device_id uuid, \
        owner text, outcome text, vlan integer, reason text, message text, repeats integer, \
        degraded boolean)";
    const UPDATE_SEEN_JSON: &'static str =
        "UPDATE devices d SET last_seen_at = x.at, last_seen_nas = x.nas, \
        last_seen_ssid = x.ssid, last_seen_mac = coalesce(x.mac, d.last_seen_mac) \
        FROM jsonb_to_recordset($1::text::jsonb) \
        AS x(id uuid, at timestamptz, nas text, ssid text, mac macaddr) \
        WHERE d.id = x.id AND (d.last_seen_at IS NULL OR d.last_seen_at < x.at)";
    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}
