//! `backup`: an online copy of an SQLite registry; for PostgreSQL, the pg_dump command to run
//! (the database's own tool does it better, and as a role that may read everything).

use std::path::Path;

use anyhow::{Context as _, Result};
use poortwachter::config::{redact_url, Config};

use super::Context;

/// For PostgreSQL: refuses, naming the pg_dump command that makes the backup.
pub fn refuse_postgres(config: &Config, to: &Path) -> Result<()> {
    let url = &config.database.url;
    if url.starts_with("sqlite:") {
        return Ok(());
    }
    anyhow::bail!(
        "poortwachter does not dump PostgreSQL itself; run (the password from ~/.pgpass or \
         PGPASSWORD):\n  pg_dump --format=custom --file={} '{}'\nrestore with: pg_restore \
         --dbname=NEW_DATABASE --no-owner --role=OWNER_ROLE {}\nThe PKI directory (pki.ca_key) \
         is backed up apart from the dump: see README, \"Backups\".",
        to.display(),
        without_password(url),
        to.display()
    )
}

/// The URL with no password at all (a redacted `***` would be taken as the password).
fn without_password(url: &str) -> String {
    let redacted = redact_url(url).replacen(":***@", "@", 1);
    match redacted.split_once('?') {
        Some((main, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
                .collect();
            if kept.is_empty() {
                main.to_string()
            } else {
                format!("{main}?{}", kept.join("&"))
            }
        }
        None => redacted,
    }
}

/// Copies the SQLite registry into the new file `to` (0600: it holds personal data).
pub async fn copy(ctx: &Context, config: &Config, to: &Path) -> Result<()> {
    anyhow::ensure!(
        !to.exists(),
        "--to: {} exists; give a new file (nothing written)",
        to.display()
    );
    ctx.registry
        .copy_into(to)
        .await
        .with_context(|| format!("backup into {}", to.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", to.display()))?;
    let size = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    outln!(
        "registry {} copied to {} ({size} bytes)",
        redact_url(&config.database.url),
        to.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn the_dump_command_carries_no_password() {
        assert_eq!(
            without_password("postgres://pw:geheim@db/nac?sslmode=require"),
            "postgres://pw@db/nac?sslmode=require"
        );
        assert_eq!(
            without_password("postgres://pw@db/nac?password=geheim"),
            "postgres://pw@db/nac"
        );
        assert_eq!(
            without_password("postgres://pw@db/nac?host=/run&password=x%21"),
            "postgres://pw@db/nac?host=/run"
        );
    }
}
