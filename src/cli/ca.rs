//! `poortwachter ca ...`: create the onboarding CA and the RADIUS server's certificate, export
//! the CRL.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use poortwachter::config::tls::KeyType;
use poortwachter::config::Config;
use poortwachter::pki::{self, Ca, CaFiles};

use super::table;
use super::Context;

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the CA (pki.ca_cert, pki.ca_key) and the RADIUS server's certificate for
    /// eap.server_name (eap.server_cert, eap.server_key). Keys are written 0600.
    Init {
        /// ecdsa-p256 (default: pki.key_type), rsa-2048 or rsa-3072.
        #[arg(long, value_name = "TYPE")]
        key_type: Option<String>,
        /// Replace an existing CA: every certificate the old one issued stops working and
        /// every device must be onboarded again. To renew the server certificate use
        /// `ca renew-server`; to replace the CA gradually, `ca rollover`.
        #[arg(long)]
        force: bool,
    },
    /// A new RADIUS server certificate and key from the existing CA (eap.server_cert,
    /// eap.server_key; the replaced pair is kept as `.previous`). The CA and every device
    /// certificate stay valid; `serve` uses it after a restart (or reload). During a CA
    /// rollover it is signed by the previous CA, which every device still trusts.
    RenewServer {
        /// Validity in days (default: pki.server_cert_lifetime); never past the CA's end.
        #[arg(long, value_name = "DAYS")]
        days: Option<u32>,
        /// ecdsa-p256 (default: pki.key_type), rsa-2048 or rsa-3072.
        #[arg(long, value_name = "TYPE")]
        key_type: Option<String>,
    },
    /// Start a CA rollover: a new CA in pki.ca_cert/pki.ca_key, the current one moved to
    /// pki.previous_ca_cert/pki.previous_ca_key. Both are trusted for device certificates;
    /// new certificates come from the new CA; the server certificate stays the previous
    /// CA's until `ca retire-old`.
    Rollover {
        /// ecdsa-p256 (default: pki.key_type), rsa-2048 or rsa-3072.
        #[arg(long, value_name = "TYPE")]
        key_type: Option<String>,
    },
    /// Finish a CA rollover: refused while a device that is not revoked still has a
    /// certificate from the previous CA (re-issue them: `device reissue --from-previous-ca`);
    /// else a new server certificate from the new CA, the previous CA certificate renamed
    /// `.retired` (no longer trusted) and its key deleted.
    RetireOld {
        /// Show what would be done and which devices still depend on the previous CA.
        #[arg(long)]
        dry_run: bool,
    },
    /// The certificate revocation list: superseded certificates and those of lost (on hold)
    /// and revoked devices, signed by the CA. PEM on stdout unless --out.
    Crl {
        /// Write it to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// DER instead of PEM.
        #[arg(long)]
        der: bool,
        /// During a CA rollover: the previous CA's CRL (the certificates it issued), signed
        /// with its key. Without it, the current CA's CRL (only its own certificates).
        #[arg(long)]
        previous: bool,
    },
}

/// The `ca` commands that need no registry (`init`, `renew-server`, `rollover`), run; or
/// `None` for the others.
pub fn without_registry(config: &Config, cmd: &CaCommand, json: bool) -> Option<Result<()>> {
    match cmd {
        CaCommand::Init { key_type, force } => {
            Some(init(config, key_type.as_deref(), *force, json))
        }
        CaCommand::RenewServer { days, key_type } => {
            Some(renew_server(config, *days, key_type.as_deref(), json))
        }
        CaCommand::Rollover { key_type } => Some(rollover(config, key_type.as_deref(), json)),
        CaCommand::Crl { .. } | CaCommand::RetireOld { .. } => None,
    }
}

fn key_type_arg(config: &Config, key_type: Option<&str>) -> Result<KeyType> {
    match key_type {
        Some(k) => k
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--key-type: {e}")),
        None => Ok(config.pki.key_type),
    }
}

/// `ca init`: needs no registry.
pub fn init(config: &Config, key_type: Option<&str>, force: bool, json: bool) -> Result<()> {
    let key_type = key_type_arg(config, key_type)?;
    let files = CaFiles::from_config(config);
    if force && files.ca_cert.exists() {
        eprintln!(
            "WARNING: --force REPLACES the CA {}: every device certificate it issued stops \
             working and every device must be onboarded again. To renew only the server \
             certificate use `poortwachter ca renew-server`; to change the CA gradually, \
             `poortwachter ca rollover`.",
            files.ca_cert.display()
        );
    }
    let made = pki::init_ca(
        &files,
        &config.pki,
        &config.eap.server_name,
        key_type,
        force,
        chrono::Utc::now(),
    )?;
    if json {
        return table::print_json(&serde_json::json!({
            "ca_cert": files.ca_cert,
            "ca_key": files.ca_key,
            "server_cert": files.server_cert,
            "server_key": files.server_key,
            "server_name": config.eap.server_name,
            "key_type": key_type.as_str(),
            "ca_fingerprint": made.ca_fingerprint,
            "ca_not_after": made.ca_not_after,
            "server_not_after": made.server_not_after,
        }));
    }
    outln!(
        "created the CA \"{}\" ({}), valid until {}",
        config.pki.ca_name,
        key_type.as_str(),
        made.ca_not_after.format("%Y-%m-%d")
    );
    table::print_fields(&[
        ("CA certificate", files.ca_cert.display().to_string()),
        ("CA key", format!("{} (0600)", files.ca_key.display())),
        (
            "server chain",
            format!(
                "{} ({}, valid until {})",
                files.server_cert.display(),
                config.eap.server_name,
                made.server_not_after.format("%Y-%m-%d")
            ),
        ),
        (
            "server key",
            format!("{} (0600)", files.server_key.display()),
        ),
        ("SHA-256", colon_hex(&made.ca_fingerprint)),
    ]);
    outln!("\nwhoever holds the CA key can admit any device: keep it readable by ICT only, and backed up");
    Ok(())
}

/// `ca renew-server [--days N] [--key-type T]`: needs no registry.
fn renew_server(
    config: &Config,
    days: Option<u32>,
    key_type: Option<&str>,
    json: bool,
) -> Result<()> {
    let key_type = key_type_arg(config, key_type)?;
    let lifetime = match days {
        Some(0) => anyhow::bail!("--days: must be at least 1"),
        Some(d) => chrono::Duration::days(i64::from(d)),
        None => config.pki.server_cert_lifetime.chrono(),
    };
    let files = CaFiles::from_config(config);
    let ca = pki::server_signing_ca(&config.pki)?;
    let made = pki::renew_server(
        &files,
        &ca,
        &config.pki.organization,
        &config.eap.server_name,
        key_type,
        lifetime,
        chrono::Utc::now(),
    )?;
    if json {
        return table::print_json(&serde_json::json!({
            "server_cert": made.server_cert,
            "server_key": made.server_key,
            "kept": made.kept.as_ref().map(|(c, k)| serde_json::json!({"cert": c, "key": k})),
            "server_name": config.eap.server_name,
            "fingerprint": made.fingerprint,
            "not_before": made.not_before,
            "not_after": made.not_after,
            "capped_by_ca": made.capped_by_ca,
            "ca_name": made.ca_name,
            "ca_fingerprint": made.ca_fingerprint,
        }));
    }
    outln!(
        "renewed the RADIUS server certificate for {} from the CA \"{}\" (kept)",
        config.eap.server_name,
        made.ca_name
    );
    let mut fields = vec![
        (
            "valid",
            format!(
                "{} to {}{}",
                super::when::minute(made.not_before, config.policy.timezone),
                super::when::minute(made.not_after, config.policy.timezone),
                if made.capped_by_ca {
                    " (the CA's end: no certificate outlives its CA)"
                } else {
                    ""
                }
            ),
        ),
        ("server chain", made.server_cert.display().to_string()),
        (
            "server key",
            format!("{} (0600)", made.server_key.display()),
        ),
        ("SHA-256", colon_hex(&made.fingerprint)),
        ("CA SHA-256", colon_hex(&made.ca_fingerprint)),
    ];
    if let Some((c, k)) = &made.kept {
        fields.push(("replaced pair", format!("{}, {}", c.display(), k.display())));
    }
    table::print_fields(&fields);
    outln!("\nrestart (or reload) `poortwachter serve` to present it; devices need nothing new");
    Ok(())
}

/// `ca rollover`: needs no registry.
fn rollover(config: &Config, key_type: Option<&str>, json: bool) -> Result<()> {
    let key_type = key_type_arg(config, key_type)?;
    let r = pki::rollover(&config.pki, key_type, chrono::Utc::now())?;
    if json {
        return table::print_json(&serde_json::json!({
            "ca_cert": config.pki.ca_cert,
            "ca_key": config.pki.ca_key,
            "fingerprint": r.fingerprint,
            "not_after": r.not_after,
            "previous_ca_cert": r.previous_cert,
            "previous_ca_key": r.previous_key,
            "previous_fingerprint": r.previous_fingerprint,
            "started_at": r.started_at,
        }));
    }
    outln!(
        "started a CA rollover: a new CA \"{}\" ({}), valid until {}",
        config.pki.ca_name,
        key_type.as_str(),
        r.not_after.format("%Y-%m-%d")
    );
    table::print_fields(&[
        ("new CA", config.pki.ca_cert.display().to_string()),
        ("new CA SHA-256", colon_hex(&r.fingerprint)),
        ("previous CA", r.previous_cert.display().to_string()),
        ("previous key", r.previous_key.display().to_string()),
        ("previous SHA-256", colon_hex(&r.previous_fingerprint)),
    ]);
    outln!(
        "\nnext: restart (or reload) `serve` so that it trusts both CAs; re-issue every device \
         (`poortwachter device reissue --from-previous-ca --out DIR`): new certificates come from \
         the new CA, with both CAs in the Wi-Fi profile; then `poortwachter ca retire-old`"
    );
    Ok(())
}

/// `ca retire-old [--dry-run]`.
async fn retire_old(ctx: &Context, config: &Config, dry_run: bool) -> Result<()> {
    let previous = config.pki.previous_ca_cert();
    anyhow::ensure!(
        previous.exists(),
        "no CA rollover is under way: {} does not exist",
        previous.display()
    );
    let current = Ca::load(&config.pki.ca_cert, &config.pki.ca_key)?;
    let now = chrono::Utc::now();
    let cutoff = pki::rollover_started(&current);
    let remaining = ctx.registry.certificates_issued_before(cutoff, now).await?;
    if !remaining.is_empty() || dry_run {
        if ctx.json && dry_run {
            let ids: Vec<_> = remaining.iter().map(|(d, _)| d.id).collect();
            return table::print_json(&serde_json::json!({
                "previous_ca_cert": previous,
                "devices_on_previous_ca": ids,
                "can_retire": remaining.is_empty(),
            }));
        }
        for (d, c) in &remaining {
            eprintln!(
                "  {} {} ({}): certificate {} issued {}",
                d.id,
                d.owner,
                d.status,
                c.serial,
                c.issued_at.format("%Y-%m-%d")
            );
        }
        anyhow::ensure!(
            remaining.is_empty(),
            "refusing to retire the previous CA {}: {} device(s) that are not revoked still have a \
             certificate from it (listed above); re-issue them with `poortwachter device reissue \
             --from-previous-ca --out DIR` (or revoke them) first",
            previous.display(),
            remaining.len()
        );
        outln!(
            "no device depends on the previous CA {} any more: `ca retire-old` would renew the \
             server certificate from the new CA and retire it",
            previous.display()
        );
        return Ok(());
    }
    let files = CaFiles::from_config(config);
    let renewed = pki::renew_server(
        &files,
        &current,
        &config.pki.organization,
        &config.eap.server_name,
        config.pki.key_type,
        config.pki.server_cert_lifetime.chrono(),
        now,
    )?;
    let retired = pki::retire_previous(&config.pki)?;
    if ctx.json {
        return table::print_json(&serde_json::json!({
            "retired_ca_cert": retired.archived_cert,
            "deleted_ca_key": retired.deleted_key,
            "server_cert": renewed.server_cert,
            "server_fingerprint": renewed.fingerprint,
            "server_not_after": renewed.not_after,
            "ca_fingerprint": renewed.ca_fingerprint,
        }));
    }
    outln!("retired the previous CA: no device depends on it any more");
    table::print_fields(&[
        (
            "previous CA",
            format!("{} (no longer trusted)", retired.archived_cert.display()),
        ),
        (
            "previous key",
            format!("{} (deleted)", retired.deleted_key.display()),
        ),
        (
            "server chain",
            format!(
                "{} (from the new CA, valid until {})",
                renewed.server_cert.display(),
                renewed.not_after.format("%Y-%m-%d")
            ),
        ),
    ]);
    outln!("\nrestart (or reload) `poortwachter serve` to present the new server certificate and drop the previous CA");
    Ok(())
}

pub async fn run(ctx: &Context, config: &Config, cmd: CaCommand) -> Result<()> {
    match cmd {
        CaCommand::Init { key_type, force } => init(config, key_type.as_deref(), force, ctx.json),
        CaCommand::RenewServer { days, key_type } => {
            renew_server(config, days, key_type.as_deref(), ctx.json)
        }
        CaCommand::Rollover { key_type } => rollover(config, key_type.as_deref(), ctx.json),
        CaCommand::RetireOld { dry_run } => retire_old(ctx, config, dry_run).await,
        CaCommand::Crl { out, der, previous } => {
            let current = Ca::load(&config.pki.ca_cert, &config.pki.ca_key)?;
            let now = ctx.change().now;
            let mut revocations = ctx.registry.revocations(now).await?;
            // each CA lists its own certificates: during a rollover, those issued before the
            // new CA was made are the previous CA's
            let rolling = config.pki.previous_ca_cert().exists();
            let ca = if previous {
                anyhow::ensure!(
                    rolling,
                    "--previous: no CA rollover is under way ({} does not exist)",
                    config.pki.previous_ca_cert().display()
                );
                let cutoff = pki::rollover_started(&current);
                revocations.retain(|r| r.issued_at < cutoff);
                Ca::load(
                    &config.pki.previous_ca_cert(),
                    &config.pki.previous_ca_key(),
                )?
            } else {
                if rolling {
                    let cutoff = pki::rollover_started(&current);
                    revocations.retain(|r| r.issued_at >= cutoff);
                }
                current
            };
            let crl = pki::make_crl(&ca, &revocations, now, config.pki.crl_lifetime.chrono())?;
            let bytes = if der {
                crl.der.clone()
            } else {
                crl.pem().into_bytes()
            };
            match out {
                None => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(&bytes)?;
                    stdout.flush()?;
                }
                Some(path) => {
                    pki::write_file(&path, &bytes, pki::PUBLIC)
                        .with_context(|| format!("cannot write the CRL to {}", path.display()))?;
                    if ctx.json {
                        return table::print_json(&serde_json::json!({
                            "file": path,
                            "number": crl.number,
                            "entries": crl.entries,
                            "this_update": crl.this_update,
                            "next_update": crl.next_update,
                        }));
                    }
                    outln!(
                        "CRL number {} with {} certificate(s), next update {}: {}",
                        crl.number,
                        crl.entries,
                        super::when::minute(crl.next_update, ctx.tz),
                        path.display()
                    );
                }
            }
            Ok(())
        }
    }
}

/// The `certificates` section of `check-config`.
pub struct CertificateReport {
    judged: Vec<pki::Expiry>,
    /// Lines for files that could not be read, and whether each is a problem.
    unreadable: Vec<(String, bool)>,
}

impl CertificateReport {
    /// Reads and judges every certificate the service depends on, at `now`.
    pub fn new(config: &Config, now: chrono::DateTime<chrono::Utc>) -> CertificateReport {
        let (judged, unreadable) = pki::check_certificates(config, now);
        let unreadable = unreadable
            .into_iter()
            .map(|u| {
                let missing = matches!(&u.error, pki::PkiError::Io { source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound)
                    || matches!(&u.error, pki::PkiError::NoCa(_));
                // not made yet is fine unless EAP is required; unreadable never is
                let problem = !missing
                    || (u.kind == pki::CertKind::Server && config.eap.enabled == Some(true))
                    || u.kind == pki::CertKind::Api;
                let what = if missing {
                    format!("{} {} does not exist", u.kind.as_str(), u.file.display())
                } else {
                    format!("{} {}", u.kind.as_str(), u.error)
                };
                (what, problem)
            })
            .collect();
        CertificateReport { judged, unreadable }
    }

    /// For `check-config --json`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "checked": self.judged,
            "unreadable": self.unreadable.iter().map(|(w, p)| serde_json::json!({"message": w, "problem": p})).collect::<Vec<_>>(),
        })
    }

    /// The section's lines.
    pub fn print(&self) {
        for e in &self.judged {
            let level = match e.level {
                pki::ExpiryLevel::Ok => "ok",
                pki::ExpiryLevel::Warning => "WARNING",
                pki::ExpiryLevel::Expired => "EXPIRED",
            };
            outln!("  certificate  {level}: {}", e.describe());
        }
        for (what, problem) in &self.unreadable {
            outln!(
                "  certificate  {}: {what}",
                if *problem { "ERROR" } else { "not yet" }
            );
        }
    }

    /// Whether nothing is expired or unreadable.
    pub fn is_ok(&self) -> bool {
        self.judged
            .iter()
            .all(|e| e.level != pki::ExpiryLevel::Expired)
            && self.unreadable.iter().all(|(_, problem)| !problem)
    }

    /// Fails for an expired certificate or one that cannot be read; warns (stderr) for one
    /// within the warning period.
    pub fn result(&self) -> Result<()> {
        let mut problems: Vec<String> = self
            .judged
            .iter()
            .filter(|e| e.level == pki::ExpiryLevel::Expired)
            .map(|e| e.describe())
            .collect();
        problems.extend(
            self.unreadable
                .iter()
                .filter(|(_, p)| *p)
                .map(|(w, _)| w.clone()),
        );
        for e in self
            .judged
            .iter()
            .filter(|e| e.level == pki::ExpiryLevel::Warning)
        {
            eprintln!("warning: {}", e.describe());
        }
        anyhow::ensure!(
            problems.is_empty(),
            "certificates:\n  {}",
            problems.join("\n  ")
        );
        Ok(())
    }
}

/// Logs the certificates' expiry state ([`pki::log_expiry`]) now and then every day while
/// `serve` runs; the task ends when the guard is dropped.
pub fn watch_expiry(in_force: Arc<arc_swap::ArcSwap<Config>>) -> ExpiryWatch {
    // the first time before anything listens: in the log before the service is up
    pki::log_expiry(&in_force.load(), chrono::Utc::now());
    ExpiryWatch(tokio::spawn(async move {
        let day = std::time::Duration::from_secs(86_400);
        let mut daily = tokio::time::interval_at(tokio::time::Instant::now() + day, day);
        daily.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            daily.tick().await;
            // the files of the configuration in force (a reload may have changed them)
            let config = in_force.load_full();
            let _ =
                tokio::task::spawn_blocking(move || pki::log_expiry(&config, chrono::Utc::now()))
                    .await;
        }
    }))
}

/// Stops [`watch_expiry`]'s task when dropped.
pub struct ExpiryWatch(tokio::task::JoinHandle<()>);

impl Drop for ExpiryWatch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `AB:CD:...`, as `openssl x509 -fingerprint` shows it.
pub fn colon_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}
