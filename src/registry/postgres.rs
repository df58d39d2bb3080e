//! The PostgreSQL store: native uuid, timestamptz, date, macaddr and jsonb; row locks
//! (`FOR UPDATE`) serialize changes to one owner or device across processes and nodes.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::mac::MacAddr;
use crate::model::{AuditEntry, Device, Owner};

use super::activity_sql::{Dialect, PoolStore};
use super::rows::{self, DEVICE_COLUMNS, OWNER_COLUMNS};
use super::schema::{self, SchemaState, SchemaVerdict};
use super::sql;
use super::store::{
    AuditFilter, DeviceCertificate, Duty, Leadership, NewAuditEntry, RegistryChange, Store,
    StoreError, StoreTx, WithdrawnCertificate,
};

/// A MAC row (text in, macaddr in the table).
const INSERT_MAC: &str = "INSERT INTO device_macs (mac, device_id) VALUES ($1::macaddr, $2)";

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

struct PgTx {
    tx: Transaction<'static, Postgres>,
}

async fn owner_by_name(
    conn: &mut PgConnection,
    username: &str,
    lock: bool,
) -> Result<Option<Owner>, StoreError> {
    let sql = format!(
        "SELECT {OWNER_COLUMNS} FROM owners o WHERE lower(o.username) = lower($1){}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = sqlx::query(&sql)
        .bind(username)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(rows::owner).transpose()
}

/// Devices matching `condition` (on `d`, `o` or `m`), `$1` bound to `arg`.
async fn devices_where<A>(
    conn: &mut PgConnection,
    condition: &str,
    arg: A,
    lock: bool,
) -> Result<Vec<Device>, StoreError>
where
    A: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
{
    let sql = format!(
        "SELECT {DEVICE_COLUMNS}, m.mac::text AS mac FROM devices d \
         JOIN owners o ON o.id = d.owner_id \
         LEFT JOIN device_macs m ON m.device_id = d.id \
         WHERE {condition} ORDER BY d.created_at, d.id, m.mac{}",
        if lock { " FOR UPDATE OF d" } else { "" }
    );
    let found = sqlx::query(&sql).bind(arg).fetch_all(conn).await?;
    rows::devices(&found)
}

async fn device_by_id(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<Device>, StoreError> {
    Ok(devices_where(conn, "d.id = $1", id, lock).await?.pop())
}

async fn device_by_mac(
    conn: &mut PgConnection,
    mac: MacAddr,
) -> Result<Option<Device>, StoreError> {
    let condition = "d.id = (SELECT device_id FROM device_macs WHERE mac = $1::macaddr)";
    Ok(devices_where(conn, condition, mac.to_string(), false)
        .await?
        .pop())
}

#[async_trait]
impl Store for PgStore {
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
            sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL").bind(table)
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

    async fn watch_changes(&self) -> Result<Option<super::ChangeWatch>, StoreError> {
        self.watch().await
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        Ok(Box::new(PgTx {
            tx: self.pool.begin().await?,
        }))
    }

    async fn owner(&self, username: &str) -> Result<Option<Owner>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        owner_by_name(&mut conn, username, false).await
    }

    async fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        let sql = format!(
            "SELECT {OWNER_COLUMNS} FROM owners o ORDER BY lower(o.username) COLLATE \"C\""
        );
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
                devices_where(&mut conn, "lower(o.username) = lower($1)", username, false).await
            }
            None => devices_where(&mut conn, "$1::boolean", true, false).await,
        }
    }

    async fn device_by_cert_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Device>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let fingerprint = fingerprint.to_ascii_lowercase();
        Ok(
            devices_where(&mut conn, "d.cert_fingerprint = $1", fingerprint, false)
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
            "SELECT id FROM devices WHERE replace(id::text, '-', '') LIKE $1 || '%' ORDER BY id LIMIT 10",
        )
        .bind(hex_prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "{} WHERE ($1::text IS NULL OR lower(a.target_id) = lower($1) OR lower(p.target) = lower($1)) \
               AND ($2::text IS NULL OR a.actor = $2 OR substr(a.actor, 1, length($2) + 6) = $2 || ' (os: ') \
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

sql::impl_store_tx!(PgTx);

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
    const USER_EQ: &'static str = "lower({col}) = lower($2)";
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
