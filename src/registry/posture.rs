//! Storage for compliance posture reports from MDMs and agents, and their evaluation, on both stores.

use async_trait::async_trait;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;

/// The posture part of a storage backend.
#[async_trait]
pub trait PostureStore: Send + Sync + 'static {}

#[async_trait]
impl PostureStore for SqliteStore {}

#[async_trait]
impl PostureStore for PgStore {}
