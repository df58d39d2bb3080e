//! Storage for dynamic authorization (RFC 5176): what the enforcer reads and the log of Disconnect/CoA requests, on both stores.

use async_trait::async_trait;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;

/// The coa part of a storage backend.
#[async_trait]
pub trait CoaStore: Send + Sync + 'static {}

#[async_trait]
impl CoaStore for SqliteStore {}

#[async_trait]
impl CoaStore for PgStore {}
