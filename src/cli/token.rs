//! `poortwachter token ...`: bearer tokens of the admin HTTP API. A token is shown once, when
//! it is made; the registry keeps only its SHA-256.

use anyhow::Result;
use clap::Subcommand;
use poortwachter::registry::tokens::TokenScope;

use super::table::{self, or_dash};
use super::Context;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token for the admin API and print it (once: it is stored only as a hash).
    Create {
        /// A name for who or what uses it (`servicedesk`, `intune`); shown in the audit log
        /// as `api:<name>`. Names are never reused.
        #[arg(long)]
        name: String,
        /// admin (reads and writes), helpdesk (reads), posture (posts posture reports) or scim
        /// (provisions owners over SCIM 2.0 at /scim/v2, for an identity provider).
        #[arg(long)]
        scope: String,
    },
    /// Every token: name, scope, when made and by whom, last use, revocation.
    List,
    /// Refuse a token from now on.
    Revoke {
        /// Its name.
        name: String,
    },
}

pub async fn run(ctx: &Context, cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create { name, scope } => {
            let scope: TokenScope = scope
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--scope: {e}"))?;
            let (token, secret) = ctx
                .registry
                .create_token(&name, scope, &ctx.change())
                .await?;
            if ctx.json {
                let mut value = serde_json::to_value(&token)?;
                value["token"] = serde_json::Value::from(secret.expose());
                return table::print_json(&value);
            }
            outln!("token {} (scope {}) created", token.name, token.scope);
            outln!(
                "\nthe token (shown once, stored only as a hash):\n  {}",
                secret.expose()
            );
            outln!("\nuse it as: Authorization: Bearer <token>");
            Ok(())
        }
        TokenCommand::List => {
            let tokens = ctx.registry.tokens().await?;
            if ctx.json {
                return table::print_json(&tokens);
            }
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                or_dash(t.map(|t| super::when::minute(t, ctx.tz)))
            };
            let rows = tokens
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.scope.to_string(),
                        format!(
                            "{} by {}",
                            super::when::minute(t.created_at, ctx.tz),
                            t.created_by
                        ),
                        time(t.last_used_at),
                        time(t.revoked_at),
                    ]
                })
                .collect();
            table::print(&["NAME", "SCOPE", "CREATED", "LAST USED", "REVOKED"], rows);
            Ok(())
        }
        TokenCommand::Revoke { name } => {
            let token = ctx.registry.revoke_token(&name, &ctx.change()).await?;
            if ctx.json {
                return table::print_json(&token);
            }
            outln!(
                "token {} is revoked (since {})",
                token.name,
                or_dash(token.revoked_at.map(|t| super::when::minute(t, ctx.tz)))
            );
            Ok(())
        }
    }
}
