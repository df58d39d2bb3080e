//! Reads the admin HTTP API needs beyond the CLI's: the audit log a page at a time.

use async_trait::async_trait;

use crate::model::AuditEntry;

use super::postgres::PgStore;
use super::rows;
use super::sqlite::SqliteStore;
use super::store::{AuditFilter, StoreError};

/// The API's reads, on both stores.
#[async_trait]
pub trait ApiStore: Send + Sync + 'static {
    /// Audit entries as [`super::Store::audit`] reads them (newest first, `limit` default
    /// 50), skipping the first `offset`.
    async fn audit_page(
        &self,
        filter: &AuditFilter,
        offset: u64,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}

macro_rules! impl_api_store {
    ($store:ty, target_eq = $target_eq:literal, txt = $txt:literal) => {
        #[async_trait]
        impl ApiStore for $store {
            async fn audit_page(
                &self,
                filter: &AuditFilter,
                offset: u64,
            ) -> Result<Vec<AuditEntry>, StoreError> {
                let sql = format!(
                    "SELECT id, at, actor, action, target_type, target_id, before, after \
                     FROM audit_log WHERE ($1{txt} IS NULL OR {target_eq}) \
                     AND ($2{txt} IS NULL OR actor = $2 OR substr(actor, 1, length($2) + 6) = $2 || ' (os: ') \
                     ORDER BY id DESC LIMIT $3 OFFSET $4",
                    txt = $txt,
                    target_eq = $target_eq,
                );
                let found = sqlx::query(&sql)
                    .bind(filter.target_id.as_deref())
                    .bind(filter.actor.as_deref())
                    .bind(i64::from(filter.limit.unwrap_or(50)))
                    .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?;
                found.iter().map(rows::audit_entry).collect()
            }
        }
    };
}

// target_id is COLLATE NOCASE in SQLite; PostgreSQL has an index on lower(target_id)
impl_api_store!(SqliteStore, target_eq = "target_id = $1", txt = "");
impl_api_store!(
    PgStore,
    target_eq = "lower(target_id) = lower($1)",
    txt = "::text"
);
