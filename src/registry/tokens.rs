//! Storage for API bearer tokens (stored hashed): create, look up, revoke, on both stores.
//!
//! A token is 32 random bytes shown once as `pw_<base64url>`; the registry keeps only its
//! SHA-256 (lowercase hex) and looks a presented token up by that hash, so no comparison of
//! secrets happens here at all. Creating and revoking are audited like every registry change
//! (target type `token`, target id the token's name).

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Row, Type};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::sql::{self, Dialect, PoolStore};
use super::store::{NewAuditEntry, StoreError};
use super::{Change, Registry, RegistryError};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Reads everything and makes every change.
    Admin,
    /// Reads everything, changes nothing.
    Helpdesk,
    /// Only posts compliance (posture) reports.
    Posture,
    /// Only provisions owners over SCIM 2.0 (`/scim/v2/...`), as an identity provider does.
    Scim,
}

impl TokenScope {
    /// Every scope.
    pub const ALL: &'static [TokenScope] = &[
        TokenScope::Admin,
        TokenScope::Helpdesk,
        TokenScope::Posture,
        TokenScope::Scim,
    ];

    /// The word stored and typed.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Admin => "admin",
            TokenScope::Helpdesk => "helpdesk",
            TokenScope::Posture => "posture",
            TokenScope::Scim => "scim",
        }
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        TokenScope::ALL
            .iter()
            .copied()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("`{s}` is not a scope; use admin, helpdesk, posture or scim"))
    }
}

/// A token as stored, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Unique name (any case); the audit log shows changes as `api:<name>`.
    pub name: String,
    /// What it may do.
    pub scope: TokenScope,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Who made it.
    pub created_by: String,
    /// When it was revoked; a revoked token is refused.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last request made with it (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The token itself, shown once. `Debug` does not show it; wiped when dropped.
pub struct TokenSecret(Zeroizing<String>);

impl TokenSecret {
    /// 32 random bytes from the OS, as `pw_<base64url without padding>`.
    pub fn generate() -> TokenSecret {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref());
        TokenSecret(Zeroizing::new(format!("{TOKEN_PREFIX}{text}")))
    }

    /// The token, to show once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored: its SHA-256, lowercase hex.
    pub fn hash(&self) -> String {
        token_hash(&self.0)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret([redacted])")
    }
}

/// Every token starts with this: a leaked one is recognizable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "pw_";

/// The SHA-256 of a presented token, lowercase hex: the key it is looked up by.
pub fn token_hash(token: &str) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest.as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A token name: 1-64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_token_name(input: &str) -> Result<String, crate::model::FieldError> {
    let n = input.trim();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(n.to_string())
    } else {
        Err(crate::model::FieldError::new(
            "name",
            format!(
                "`{n}` is not a token name: 1-64 letters, digits, '.', '_' or '-', starting \
                 with a letter or digit"
            ),
        ))
    }
}

/// Why a token change was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// A token with that name exists (revoked ones too: names are not reused).
    #[error("a token named {0} already exists (names are never reused, even after revocation)")]
    Exists(String),
    /// No token with that name.
    #[error("no token named {0}")]
    Unknown(String),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        TokenError::Registry(RegistryError::Store(e))
    }
}

impl From<crate::model::FieldError> for TokenError {
    fn from(e: crate::model::FieldError) -> Self {
        TokenError::Registry(RegistryError::Field(e))
    }
}

/// The tokens part of a storage backend.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Inserts a token with the hash of its secret and its audit entry, in one transaction.
    async fn insert_token(
        &self,
        token: &ApiToken,
        hash: &str,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// A token by name, in any case.
    async fn token(&self, name: &str) -> Result<Option<ApiToken>, StoreError>;
    /// The token whose secret has this SHA-256 (lowercase hex).
    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError>;
    /// Every token, by name.
    async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError>;
    /// Revokes a token (one transaction with its audit entry); a token already revoked is
    /// returned unchanged, nothing written. `None`: no such token.
    async fn revoke_token(
        &self,
        name: &str,
        change: &Change,
    ) -> Result<Option<ApiToken>, StoreError>;
    /// Sets `last_used_at` (not audited: it is use, not a change).
    async fn touch_token(&self, name: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
}

const TOKEN_COLUMNS: &str =
    "name, scope, created_at, created_by, revoked_at, last_used_at FROM api_tokens";

fn token_row<'r, R>(row: &'r R) -> Result<ApiToken, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    let scope: String = row.try_get("scope")?;
    Ok(ApiToken {
        name: row.try_get("name")?,
        scope: scope
            .parse()
            .map_err(|e: String| StoreError::Corrupt(format!("column scope: {e}")))?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

fn token_audit(
    change: &Change,
    action: &str,
    before: Option<&ApiToken>,
    after: &ApiToken,
) -> NewAuditEntry {
    super::audit(
        change,
        action,
        super::Target::Other("token", &after.name),
        before,
        Some(after),
    )
}

/// The tokens on any [`PoolStore`]: the same SQL on both stores, written in a write
/// transaction ([`Dialect::BEGIN_WRITE`]) with the token's row locked ([`Dialect::LOCK`]).
#[async_trait]
impl<S, DB> TokenStore for S
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
    async fn insert_token(
        &self,
        token: &ApiToken,
        hash: &str,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = sql::begin_write(self.pool()).await?;
        sqlx::query(
            "INSERT INTO api_tokens (name, scope, token_hash, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&token.name)
        .bind(token.scope.as_str())
        .bind(hash)
        .bind(token.created_at)
        .bind(&token.created_by)
        .execute(&mut *tx)
        .await?;
        sql::append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn token(&self, name: &str) -> Result<Option<ApiToken>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} WHERE lower(name) = lower($1)");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(token_row).transpose()
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} WHERE token_hash = $1");
        let row = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(token_row).transpose()
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} ORDER BY lower(name)");
        let found = sqlx::query(&sql).fetch_all(self.pool()).await?;
        found.iter().map(token_row).collect()
    }

    async fn revoke_token(
        &self,
        name: &str,
        change: &Change,
    ) -> Result<Option<ApiToken>, StoreError> {
        let mut tx = sql::begin_write(self.pool()).await?;
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} WHERE lower(name) = lower($1){}",
            DB::LOCK
        );
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(before) = row.as_ref().map(token_row).transpose()? else {
            return Ok(None);
        };
        if before.revoked_at.is_some() {
            return Ok(Some(before));
        }
        let after = ApiToken {
            revoked_at: Some(change.now),
            ..before.clone()
        };
        sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE name = $1")
            .bind(&before.name)
            .bind(change.now)
            .execute(&mut *tx)
            .await?;
        let audit = token_audit(change, "token.revoke", Some(&before), &after);
        sql::append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    async fn touch_token(&self, name: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE name = $1")
            .bind(name)
            .bind(at)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// How often `last_used_at` is written for one token, at most.
const TOUCH_INTERVAL: chrono::Duration = chrono::Duration::seconds(60);

impl Registry {
    /// Makes a token named `name` with `scope`; returns it with its secret, which is shown
    /// once and stored only as a hash.
    pub async fn create_token(
        &self,
        name: &str,
        scope: TokenScope,
        change: &Change,
    ) -> Result<(ApiToken, TokenSecret), TokenError> {
        let name = validate_token_name(name)?;
        if let Some(existing) = self.store.token(&name).await? {
            return Err(TokenError::Exists(existing.name));
        }
        let token = ApiToken {
            name,
            scope,
            created_at: change.now,
            created_by: change.actor.clone(),
            revoked_at: None,
            last_used_at: None,
        };
        let secret = TokenSecret::generate();
        let audit = token_audit(change, "token.create", None, &token);
        self.store
            .insert_token(&token, &secret.hash(), &audit)
            .await
            .map_err(|e| match e {
                StoreError::Unique(_) => TokenError::Exists(token.name.clone()),
                other => other.into(),
            })?;
        Ok((token, secret))
    }

    /// Revokes a token by name; revoking a revoked token changes nothing.
    pub async fn revoke_token(&self, name: &str, change: &Change) -> Result<ApiToken, TokenError> {
        let name = validate_token_name(name)?;
        self.store
            .revoke_token(&name, change)
            .await?
            .ok_or(TokenError::Unknown(name))
    }

    /// Every token, by name.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, RegistryError> {
        Ok(self.store.tokens().await?)
    }

    /// The token a request presents, if it is known and not revoked. Records its use, at most
    /// once a minute.
    pub async fn authenticate_token(
        &self,
        presented: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiToken>, RegistryError> {
        if !presented.starts_with(TOKEN_PREFIX) || presented.len() > 200 {
            return Ok(None);
        }
        let Some(token) = self.store.token_by_hash(&token_hash(presented)).await? else {
            return Ok(None);
        };
        if token.revoked_at.is_some() {
            return Ok(None);
        }
        if token
            .last_used_at
            .is_none_or(|last| now - last >= TOUCH_INTERVAL)
        {
            self.store.touch_token(&token.name, now).await?;
        }
        Ok(Some(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hashed() {
        let a = TokenSecret::generate();
        let b = TokenSecret::generate();
        assert!(a.expose().starts_with("pw_"));
        assert_eq!(a.expose().len(), 3 + 43);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash().len(), 64);
        assert_eq!(a.hash(), token_hash(a.expose()));
        assert!(!format!("{a:?}").contains(&a.expose()[3..]));
    }

    #[test]
    fn names_and_scopes() {
        assert_eq!(validate_token_name(" mdm-intune ").unwrap(), "mdm-intune");
        assert!(validate_token_name("").is_err());
        assert!(validate_token_name("-x").is_err());
        assert!(validate_token_name("a b").is_err());
        assert_eq!("Helpdesk".parse::<TokenScope>(), Ok(TokenScope::Helpdesk));
        assert_eq!("SCIM".parse::<TokenScope>(), Ok(TokenScope::Scim));
        assert!("root".parse::<TokenScope>().is_err());
    }
}
