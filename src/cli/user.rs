//! `poortwachter user ...`: local accounts of the web console (ICT as admin, the service desk
//! as helpdesk) for when the directory is down. A generated password is shown once; the
//! registry keeps only its argon2id hash.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use poortwachter::registry::accounts::{generate_password, NewWebAccount, WebAccount, WebRole};
use zeroize::Zeroizing;

use super::table::{self, or_dash};
use super::Context;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a console account; without --password-file a strong password is generated and
    /// printed once.
    Add {
        /// Login name (letters, digits, '.', '_', '-', '@'; kept in lower case).
        username: String,
        /// Full name, as the console shows it.
        #[arg(long)]
        name: String,
        /// admin (ICT: every change) or helpdesk (the service desk).
        #[arg(long)]
        role: String,
        /// Take the password from this file (first line) instead of generating one: at least
        /// 12 characters, not the username.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Every console account: username, name, role, disabled, last login.
    List,
    /// Set a new password; without --password-file one is generated and printed once.
    Passwd {
        /// Login name.
        username: String,
        /// Take the password from this file (first line) instead of generating one.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Refuse the account's logins from now on (kept, can be enabled again).
    Disable {
        /// Login name.
        username: String,
    },
    /// Allow a disabled account to sign in again.
    Enable {
        /// Login name.
        username: String,
    },
    /// Delete a console account.
    Remove {
        /// Login name.
        username: String,
    },
}

/// The password from `--password-file` (its first line), or a generated one (`true`).
fn password(file: Option<&Path>) -> Result<(Zeroizing<String>, bool)> {
    let Some(path) = file else {
        return Ok((generate_password(), true));
    };
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("--password-file {}", path.display()))?,
    );
    let first = text.lines().next().unwrap_or("");
    Ok((
        Zeroizing::new(first.trim_end_matches(['\r', '\n']).to_string()),
        false,
    ))
}

/// Prints an account as JSON, with the generated password when there is one.
fn print_json(account: &WebAccount, generated: Option<&str>) -> Result<()> {
    let mut value = serde_json::to_value(account)?;
    if let Some(p) = generated {
        value["password"] = serde_json::Value::from(p);
    }
    table::print_json(&value)
}

pub async fn run(ctx: &Context, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Add {
            username,
            name,
            role,
            password_file,
        } => {
            let role: WebRole = role.parse()?;
            let (password, generated) = password(password_file.as_deref())?;
            let shown = generated.then(|| password.clone());
            let account = ctx
                .registry
                .add_web_account(
                    NewWebAccount {
                        username,
                        display_name: name,
                        role,
                        password,
                    },
                    &ctx.change(),
                )
                .await?;
            if ctx.json {
                return print_json(&account, shown.as_deref().map(String::as_str));
            }
            outln!(
                "console account {} added ({}, {})",
                account.username,
                account.display_name,
                account.role
            );
            if let Some(p) = shown {
                outln!(
                    "\nthe password (shown once, stored only as a hash):\n  {}",
                    *p
                );
            }
            Ok(())
        }
        UserCommand::List => {
            let accounts = ctx.registry.web_accounts().await?;
            if ctx.json {
                return table::print_json(&accounts);
            }
            let rows = accounts
                .iter()
                .map(|a| {
                    vec![
                        a.username.clone(),
                        a.display_name.clone(),
                        a.role.to_string(),
                        if a.disabled { "yes" } else { "no" }.to_string(),
                        or_dash(a.last_login_at.map(|t| super::when::minute(t, ctx.tz))),
                    ]
                })
                .collect();
            table::print(
                &["USERNAME", "NAME", "ROLE", "DISABLED", "LAST LOGIN"],
                rows,
            );
            Ok(())
        }
        UserCommand::Passwd {
            username,
            password_file,
        } => {
            let (password, generated) = password(password_file.as_deref())?;
            let shown = generated.then(|| password.clone());
            let account = ctx
                .registry
                .set_web_account_password(&username, password, &ctx.change())
                .await?;
            if ctx.json {
                return print_json(&account, shown.as_deref().map(String::as_str));
            }
            outln!("new password set for console account {}", account.username);
            if let Some(p) = shown {
                outln!(
                    "\nthe password (shown once, stored only as a hash):\n  {}",
                    *p
                );
            }
            Ok(())
        }
        UserCommand::Disable { username } => set_disabled(ctx, &username, true).await,
        UserCommand::Enable { username } => set_disabled(ctx, &username, false).await,
        UserCommand::Remove { username } => {
            let account = ctx
                .registry
                .remove_web_account(&username, &ctx.change())
                .await?;
            if ctx.json {
                return print_json(&account, None);
            }
            outln!("console account {} removed", account.username);
            Ok(())
        }
    }
}

async fn set_disabled(ctx: &Context, username: &str, disabled: bool) -> Result<()> {
    let account = ctx
        .registry
        .set_web_account_disabled(username, disabled, &ctx.change())
        .await?;
    if ctx.json {
        return print_json(&account, None);
    }
    outln!(
        "console account {} is {}",
        account.username,
        if account.disabled {
            "disabled: it cannot sign in"
        } else {
            "enabled"
        }
    );
    Ok(())
}
