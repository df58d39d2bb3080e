//! `check-config`'s look at the registry database: can it be reached (within a short
//! timeout), and which schema version does it hold against the one this binary brings. One
//! connection, read only; nothing is created or migrated.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::Connection;

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

/// The schema a database holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Schema {
    /// The latest migration applied, `None` when none is (a new database).
    pub applied: Option<i64>,
    /// The latest migration this binary has.
    pub latest: i64,
}

impl Schema {
    /// What the operator needs to hear about it.
    pub fn verdict(&self) -> &'static str {
        match self.applied {
            None => "empty: `poortwachter migrate` creates the schema",
            Some(v) if v == self.latest => "up to date",
            Some(v) if v < self.latest => "older than this binary: `poortwachter migrate`",
            Some(_) => "NEWER than this binary (a newer poortwachter migrated it)",
        }
    }
}

const APPLIED: &str = "SELECT max(version) FROM _sqlx_migrations WHERE success";

/// Connects once to `url` within `timeout` and reads the schema version; the error says why
/// the database cannot be reached (without the URL's password: the caller shows the URL
/// redacted).
pub async fn schema(url: &str, timeout: Duration) -> Result<Schema, String> {
    let work = async {
        if url.starts_with("sqlite:") {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .map_err(|e| e.to_string())?
                .read_only(true)
                .create_if_missing(false);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .map_err(|e| e.to_string())?;
            let answer = sqlx::query_as(APPLIED).fetch_one(&mut conn).await;
            let _ = conn.close().await;
            Ok(Schema {
                applied: applied(answer)?,
                latest: latest(&SQLITE),
            })
        } else {
            let options =
                sqlx::postgres::PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
            let mut conn = sqlx::PgConnection::connect_with(&options)
                .await
                .map_err(|e| e.to_string())?;
            let answer = sqlx::query_as(APPLIED).fetch_one(&mut conn).await;
            let _ = conn.close().await;
            Ok(Schema {
                applied: applied(answer)?,
                latest: latest(&POSTGRES),
            })
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs())))
}

fn latest(m: &Migrator) -> i64 {
    m.iter().map(|m| m.version).max().unwrap_or(0)
}

/// What the migrations query answered: `None` when the migrations table is not there yet.
fn applied(answer: Result<(Option<i64>,), sqlx::Error>) -> Result<Option<i64>, String> {
    match answer {
        Ok((v,)) => Ok(v),
        Err(sqlx::Error::Database(e)) if e.message().contains("_sqlx_migrations") => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}
