//! Storage for API bearer tokens (stored hashed): create, look up, revoke, on both stores.

use async_trait::async_trait;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;

/// The tokens part of a storage backend.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {}

#[async_trait]
impl TokenStore for SqliteStore {}

#[async_trait]
impl TokenStore for PgStore {}
