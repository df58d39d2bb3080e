//! Local accounts of the web console: ICT (role admin) and the service desk (role helpdesk)
//! sign in with them when the directory is down. Add, change the password, disable, enable,
//! remove, list, and check a login, on both stores.
//!
//! A password is kept only as an argon2id hash in the PHC string format
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), with the parameters OWASP's password
//! storage guidance gives for argon2id (19 MiB, 2 passes, 1 lane). Hashing takes tens of
//! milliseconds of CPU on purpose, so it runs on tokio's blocking pool, never on a runtime
//! thread. The hash never leaves this module: [`WebAccount`] does not carry it, the audit
//! log never sees it nor the password.
//!
//! Every change is one transaction with its audit entry (target type `web_account`, target
//! id the username); a login is not a change and only records `last_login_at`.

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use async_trait::async_trait;
use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Row, Type};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::sql::{self, Dialect, PoolStore};
use super::store::{NewAuditEntry, StoreError};
use super::{Change, Registry, RegistryError};
use crate::model::{validate_username, FieldError};

/// What a console account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebRole {
    /// ICT: reads everything and makes every change.
    Admin,
    /// The service desk: the day-to-day help for owners and devices.
    Helpdesk,
}

impl WebRole {
    /// Every role.
    pub const ALL: &'static [WebRole] = &[WebRole::Admin, WebRole::Helpdesk];

    /// The word stored and typed.
    pub fn as_str(self) -> &'static str {
        match self {
            WebRole::Admin => "admin",
            WebRole::Helpdesk => "helpdesk",
        }
    }
}

impl fmt::Display for WebRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WebRole {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        let s = s.trim();
        WebRole::ALL
            .iter()
            .copied()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                FieldError::new(
                    "role",
                    format!("`{s}` is not a role; use admin or helpdesk"),
                )
            })
    }
}

/// A console account as stored, without its password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebAccount {
    /// Login name, lower case ([`validate_web_username`]).
    pub username: String,
    /// Full name, as the console shows it.
    pub display_name: String,
    /// What it may do.
    pub role: WebRole,
    /// A disabled account cannot sign in.
    pub disabled: bool,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Who made it.
    pub created_by: String,
    /// When its password was last set.
    pub password_changed_at: DateTime<Utc>,
    /// Its last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
}

/// A console account to add. `Debug` does not show the password.
pub struct NewWebAccount {
    /// Login name.
    pub username: String,
    /// Full name.
    pub display_name: String,
    /// What it may do.
    pub role: WebRole,
    /// The password, checked by [`validate_password`]; wiped when dropped.
    pub password: Zeroizing<String>,
}

impl fmt::Debug for NewWebAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewWebAccount")
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// The most characters a password may have: argon2 takes any length, this only bounds what
/// one request can make the server hash.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// A console username: the owner username rule ([`validate_username`]: 1-64 letters, digits,
/// `.`, `_`, `-`, `@`, starting with a letter or digit), folded to lower case so that a login
/// does not depend on how it was typed.
pub fn validate_web_username(input: &str) -> Result<String, FieldError> {
    Ok(validate_username(input)?.to_ascii_lowercase())
}

/// The password rule, the one place every edge (CLI, API, web) asks: at least
/// [`MIN_PASSWORD_CHARS`] characters (and at most [`MAX_PASSWORD_CHARS`]), not the username.
pub fn validate_password(username: &str, password: &str) -> Result<(), FieldError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(FieldError::new(
            "password",
            format!("at least {MIN_PASSWORD_CHARS} characters (this one has {chars})"),
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(FieldError::new(
            "password",
            format!("at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    if password.trim().eq_ignore_ascii_case(username.trim()) {
        return Err(FieldError::new("password", "must not be the username"));
    }
    Ok(())
}

/// A strong random password to hand out once (`user add` without `--password-file`): the
/// generator of the device bundles' one-time passwords, four groups of five characters that
/// are not mistaken for one another, about 99 bits.
pub fn generate_password() -> Zeroizing<String> {
    Zeroizing::new(crate::pki::one_time_password().expose().to_string())
}

fn display_name(input: &str) -> Result<String, FieldError> {
    let name = input.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(FieldError::new("name", "longer than 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

/// Why a console account change was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebAccountError {
    /// An account with that username exists.
    #[error("a console account {0} already exists")]
    Exists(String),
    /// No account with that username.
    #[error("no console account {0}")]
    Unknown(String),
    /// Hashing failed (not a wrong password: the hasher itself).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<StoreError> for WebAccountError {
    fn from(e: StoreError) -> Self {
        WebAccountError::Registry(RegistryError::Store(e))
    }
}

impl From<FieldError> for WebAccountError {
    fn from(e: FieldError) -> Self {
        WebAccountError::Registry(RegistryError::Field(e))
    }
}

/// argon2id, 19 MiB, 2 passes, 1 lane (OWASP's first argon2id setting), 32-byte output.
fn hasher() -> Result<Argon2<'static>, WebAccountError> {
    let params =
        Params::new(19 * 1024, 2, 1, Some(32)).map_err(|e| WebAccountError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A hash with [`hasher`]'s parameters that no password matches (its output is random bytes,
/// not an argon2 result): verified against for an unknown username, so that the answer takes
/// as long as for a known one and does not tell which usernames exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$VF+yKJ3ocPDcK6hkbLKVMQ$\
                          7oyDy+kK4kviUitUpdW5MIkm0+OaPRrXivmR08XxuDw";

/// Hashes a password with a fresh random salt, on the blocking pool.
async fn hash_password(password: Zeroizing<String>) -> Result<String, WebAccountError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| WebAccountError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| WebAccountError::Hash(e.to_string()))?
}

/// Whether `password` matches the PHC string `hash`, on the blocking pool. The comparison
/// is constant-time (password-hash's own). An unreadable hash matches nothing.
async fn verify_password(
    password: Zeroizing<String>,
    hash: String,
) -> Result<bool, WebAccountError> {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return Ok(false);
        };
        Ok(hasher()?
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| WebAccountError::Hash(e.to_string()))?
}

/// The console accounts part of a storage backend.
#[async_trait]
pub trait WebAccountStore: Send + Sync + 'static {
    /// Inserts an account with its password hash and its audit entry, in one transaction.
    async fn insert_web_account(
        &self,
        account: &WebAccount,
        hash: &str,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// An account by (lower-case) username.
    async fn web_account(&self, username: &str) -> Result<Option<WebAccount>, StoreError>;
    /// An account with its password hash, to check a login.
    async fn web_account_with_hash(
        &self,
        username: &str,
    ) -> Result<Option<(WebAccount, String)>, StoreError>;
    /// Every account, by username.
    async fn web_accounts(&self) -> Result<Vec<WebAccount>, StoreError>;
    /// Sets an account's password hash (`password_changed_at` = the change's time), with its
    /// audit entry (`web_account.password`). `None`: no such account.
    async fn set_web_account_hash(
        &self,
        username: &str,
        hash: &str,
        change: &Change,
    ) -> Result<Option<WebAccount>, StoreError>;
    /// Disables or enables an account with its audit entry (`web_account.disable` or
    /// `.enable`); an account already so is returned unchanged, nothing written. `None`: no
    /// such account.
    async fn set_web_account_disabled(
        &self,
        username: &str,
        disabled: bool,
        change: &Change,
    ) -> Result<Option<WebAccount>, StoreError>;
    /// Deletes an account with its audit entry (`web_account.remove`); returns it as it was.
    /// `None`: no such account.
    async fn delete_web_account(
        &self,
        username: &str,
        change: &Change,
    ) -> Result<Option<WebAccount>, StoreError>;
    /// Sets `last_login_at` (not audited: a login is use, not a change).
    async fn touch_web_login(&self, username: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
}

const ACCOUNT_COLUMNS: &str = "username, display_name, role, disabled, created_at, created_by, \
     password_changed_at, last_login_at";

fn account_row<'r, R>(row: &'r R) -> Result<WebAccount, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    let role: String = row.try_get("role")?;
    Ok(WebAccount {
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        role: role
            .parse()
            .map_err(|e: FieldError| StoreError::Corrupt(format!("column role: {e}")))?,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        password_changed_at: row.try_get("password_changed_at")?,
        last_login_at: row.try_get("last_login_at")?,
    })
}

/// The audit entry of a change: the records before and after, which hold no hash.
fn account_audit(
    change: &Change,
    action: &str,
    username: &str,
    before: Option<&WebAccount>,
    after: Option<&WebAccount>,
) -> NewAuditEntry {
    super::audit(
        change,
        action,
        super::Target::Other("web_account", username),
        before,
        after,
    )
}

/// The accounts on any [`PoolStore`]: the same SQL on both stores, each change in a write
/// transaction ([`Dialect::BEGIN_WRITE`]) with the account's row locked ([`Dialect::LOCK`]).
#[async_trait]
impl<S, DB> WebAccountStore for S
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
    async fn insert_web_account(
        &self,
        account: &WebAccount,
        hash: &str,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = sql::begin_write(self.pool()).await?;
        sqlx::query(
            "INSERT INTO web_accounts (username, display_name, role, password_hash, disabled, \
             created_at, created_by, password_changed_at, last_login_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&account.username)
        .bind(&account.display_name)
        .bind(account.role.as_str())
        .bind(hash)
        .bind(account.disabled)
        .bind(account.created_at)
        .bind(&account.created_by)
        .bind(account.password_changed_at)
        .bind(account.last_login_at)
        .execute(&mut *tx)
        .await?;
        sql::append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn web_account(&self, username: &str) -> Result<Option<WebAccount>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM web_accounts WHERE username = $1");
        let row = sqlx::query(&sql)
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(account_row).transpose()
    }

    async fn web_account_with_hash(
        &self,
        username: &str,
    ) -> Result<Option<(WebAccount, String)>, StoreError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, password_hash FROM web_accounts WHERE username = $1"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(username)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let hash: String = row.try_get("password_hash")?;
        Ok(Some((account_row(&row)?, hash)))
    }

    async fn web_accounts(&self) -> Result<Vec<WebAccount>, StoreError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM web_accounts ORDER BY username{}",
            DB::BYTEWISE
        );
        let found = sqlx::query(&sql).fetch_all(self.pool()).await?;
        found.iter().map(account_row).collect()
    }

    async fn set_web_account_hash(
        &self,
        username: &str,
        hash: &str,
        change: &Change,
    ) -> Result<Option<WebAccount>, StoreError> {
        let mut tx = sql::begin_write(self.pool()).await?;
        let Some(before) = locked(&mut tx, username).await? else {
            return Ok(None);
        };
        let after = WebAccount {
            password_changed_at: change.now,
            ..before.clone()
        };
        sqlx::query(
            "UPDATE web_accounts SET password_hash = $2, password_changed_at = $3 \
             WHERE username = $1",
        )
        .bind(&before.username)
        .bind(hash)
        .bind(change.now)
        .execute(&mut *tx)
        .await?;
        let audit = account_audit(
            change,
            "web_account.password",
            &before.username,
            Some(&before),
            Some(&after),
        );
        sql::append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    async fn set_web_account_disabled(
        &self,
        username: &str,
        disabled: bool,
        change: &Change,
    ) -> Result<Option<WebAccount>, StoreError> {
        let mut tx = sql::begin_write(self.pool()).await?;
        let Some(before) = locked(&mut tx, username).await? else {
            return Ok(None);
        };
        if before.disabled == disabled {
            return Ok(Some(before));
        }
        let after = WebAccount {
            disabled,
            ..before.clone()
        };
        sqlx::query("UPDATE web_accounts SET disabled = $2 WHERE username = $1")
            .bind(&before.username)
            .bind(disabled)
            .execute(&mut *tx)
            .await?;
        let action = if disabled {
            "web_account.disable"
        } else {
            "web_account.enable"
        };
        let audit = account_audit(
            change,
            action,
            &before.username,
            Some(&before),
            Some(&after),
        );
        sql::append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    async fn delete_web_account(
        &self,
        username: &str,
        change: &Change,
    ) -> Result<Option<WebAccount>, StoreError> {
        let mut tx = sql::begin_write(self.pool()).await?;
        let Some(before) = locked(&mut tx, username).await? else {
            return Ok(None);
        };
        sqlx::query("DELETE FROM web_accounts WHERE username = $1")
            .bind(&before.username)
            .execute(&mut *tx)
            .await?;
        let audit = account_audit(
            change,
            "web_account.remove",
            &before.username,
            Some(&before),
            None,
        );
        sql::append_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Some(before))
    }

    async fn touch_web_login(&self, username: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE web_accounts SET last_login_at = $2 WHERE username = $1")
            .bind(username)
            .bind(at)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// An account read and locked in write transaction `tx`.
async fn locked<DB>(
    tx: &mut sqlx::Transaction<'_, DB>,
    username: &str,
) -> Result<Option<WebAccount>, StoreError>
where
    DB: Dialect,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB>,
    for<'r> &'r str: ColumnIndex<<DB as Database>::Row>,
    for<'r> bool: Decode<'r, DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> DateTime<Utc>: Decode<'r, DB>,
    str: Type<DB>,
    String: Type<DB>,
    bool: Type<DB>,
    DateTime<Utc>: Type<DB>,
{
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM web_accounts WHERE username = $1{}",
        DB::LOCK
    );
    let row = sqlx::query(&sql)
        .bind(username)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(account_row).transpose()
}

impl Registry {
    /// Adds a console account: username, name and password checked (the password by
    /// [`validate_password`]) before anything is hashed or written.
    pub async fn add_web_account(
        &self,
        new: NewWebAccount,
        change: &Change,
    ) -> Result<WebAccount, WebAccountError> {
        let username = validate_web_username(&new.username)?;
        let display_name = display_name(&new.display_name)?;
        validate_password(&username, &new.password)?;
        if self.store.web_account(&username).await?.is_some() {
            return Err(WebAccountError::Exists(username));
        }
        let hash = hash_password(new.password).await?;
        let account = WebAccount {
            username,
            display_name,
            role: new.role,
            disabled: false,
            created_at: change.now,
            created_by: change.actor.clone(),
            password_changed_at: change.now,
            last_login_at: None,
        };
        let audit = account_audit(
            change,
            "web_account.add",
            &account.username,
            None,
            Some(&account),
        );
        self.store
            .insert_web_account(&account, &hash, &audit)
            .await
            .map_err(|e| match e {
                StoreError::Unique(_) => WebAccountError::Exists(account.username.clone()),
                other => other.into(),
            })?;
        Ok(account)
    }

    /// Sets a new password (checked by [`validate_password`]).
    pub async fn set_web_account_password(
        &self,
        username: &str,
        password: Zeroizing<String>,
        change: &Change,
    ) -> Result<WebAccount, WebAccountError> {
        let username = validate_web_username(username)?;
        validate_password(&username, &password)?;
        if self.store.web_account(&username).await?.is_none() {
            return Err(WebAccountError::Unknown(username));
        }
        let hash = hash_password(password).await?;
        self.store
            .set_web_account_hash(&username, &hash, change)
            .await?
            .ok_or(WebAccountError::Unknown(username))
    }

    /// Disables (`true`) or enables an account; asking for the state it is in changes
    /// nothing.
    pub async fn set_web_account_disabled(
        &self,
        username: &str,
        disabled: bool,
        change: &Change,
    ) -> Result<WebAccount, WebAccountError> {
        let username = validate_web_username(username)?;
        self.store
            .set_web_account_disabled(&username, disabled, change)
            .await?
            .ok_or(WebAccountError::Unknown(username))
    }

    /// Removes an account; returns it as it was.
    pub async fn remove_web_account(
        &self,
        username: &str,
        change: &Change,
    ) -> Result<WebAccount, WebAccountError> {
        let username = validate_web_username(username)?;
        self.store
            .delete_web_account(&username, change)
            .await?
            .ok_or(WebAccountError::Unknown(username))
    }

    /// Every console account, by username.
    pub async fn web_accounts(&self) -> Result<Vec<WebAccount>, WebAccountError> {
        Ok(self.store.web_accounts().await?)
    }

    /// A console account by username, in any case.
    pub async fn web_account(&self, username: &str) -> Result<Option<WebAccount>, WebAccountError> {
        let username = validate_web_username(username)?;
        Ok(self.store.web_account(&username).await?)
    }

    /// The account a login names, if the password is its own and it is enabled; records the
    /// login (`last_login_at` = `now`). `None` alike for an unknown username, a wrong
    /// password and a disabled account, and an unknown username is checked against a dummy
    /// hash, so neither the answer nor its time tells which usernames exist.
    pub async fn verify_web_login(
        &self,
        username: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebAccount>, WebAccountError> {
        let password = Zeroizing::new(password.to_string());
        let found = match validate_web_username(username) {
            Ok(username) => self.store.web_account_with_hash(&username).await?,
            Err(_) => None,
        };
        let Some((account, hash)) = found else {
            verify_password(password, DUMMY_HASH.to_string()).await?;
            return Ok(None);
        };
        if !verify_password(password, hash).await? || account.disabled {
            return Ok(None);
        }
        self.store.touch_web_login(&account.username, now).await?;
        Ok(Some(WebAccount {
            last_login_at: Some(now),
            ..account
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_in_any_case_and_name_the_field() {
        assert_eq!("Admin".parse::<WebRole>().unwrap(), WebRole::Admin);
        assert_eq!(" helpdesk ".parse::<WebRole>().unwrap(), WebRole::Helpdesk);
        let e = "root".parse::<WebRole>().unwrap_err();
        assert_eq!(e.field, "role");
        assert!(e.message.contains("admin or helpdesk"));
        assert_eq!(
            serde_json::to_value(WebRole::Helpdesk).unwrap(),
            serde_json::json!("helpdesk")
        );
    }

    #[test]
    fn the_password_rule() {
        assert!(validate_password("anna", "twelve chars").is_ok());
        let short = validate_password("anna", "elevenchars").unwrap_err();
        assert_eq!(short.field, "password");
        assert!(short.message.contains("12"));
        let same = validate_password("ict.beheerder", "ICT.Beheerder").unwrap_err();
        assert_eq!(same.field, "password");
        assert!(validate_password("a", &"x".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
        // characters, not bytes
        assert!(validate_password("anna", "ééééééééééé").is_err());
    }

    #[test]
    fn usernames_follow_the_owner_rule_folded() {
        assert_eq!(validate_web_username(" ICT.Anna ").unwrap(), "ict.anna");
        assert_eq!(validate_web_username("a b").unwrap_err().field, "username");
        assert!(validate_web_username("").is_err());
        assert!(validate_web_username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn the_new_account_debug_hides_the_password() {
        let new = NewWebAccount {
            username: "anna".into(),
            display_name: "Anna".into(),
            role: WebRole::Admin,
            password: Zeroizing::new("correct horse battery".into()),
        };
        assert!(!format!("{new:?}").contains("horse"));
    }

    #[test]
    fn generated_passwords_pass_the_rule() {
        let a = generate_password();
        assert!(validate_password("anna", &a).is_ok());
        assert_ne!(*a, *generate_password());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_and_verify() {
        let hash = hash_password(Zeroizing::new("correct horse battery".into()))
            .await
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            verify_password(Zeroizing::new("correct horse battery".into()), hash.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify_password(Zeroizing::new("correct horse batterY".into()), hash)
                .await
                .unwrap()
        );
        assert!(
            !verify_password(Zeroizing::new("x".into()), "not a hash".into())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_dummy_hash_costs_what_a_real_one_does_and_matches_nothing() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let real_text = hash_password(Zeroizing::new("some password 1".into()))
            .await
            .unwrap();
        let real = PasswordHash::new(&real_text).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
        assert!(
            !verify_password(Zeroizing::new(String::new()), DUMMY_HASH.into())
                .await
                .unwrap()
        );
    }
}
