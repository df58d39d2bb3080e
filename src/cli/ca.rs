//! `poortwachter ca ...`: create the onboarding CA and the RADIUS server's certificate, export
//! the CRL.

use std::io::Write as _;
use std::path::PathBuf;

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
        /// Replace an existing CA: every certificate the old one issued stops working.
        #[arg(long)]
        force: bool,
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
    },
}

/// `ca init`: needs no registry.
pub fn init(config: &Config, key_type: Option<&str>, force: bool, json: bool) -> Result<()> {
    let key_type: KeyType = match key_type {
        Some(k) => k
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--key-type: {e}"))?,
        None => config.pki.key_type,
    };
    let files = CaFiles::from_config(config);
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
    println!(
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
    println!("\nwhoever holds the CA key can admit any device: keep it readable by ICT only, and backed up");
    Ok(())
}

pub async fn run(ctx: &Context, config: &Config, cmd: CaCommand) -> Result<()> {
    match cmd {
        CaCommand::Init { key_type, force } => init(config, key_type.as_deref(), force, ctx.json),
        CaCommand::Crl { out, der } => {
            let ca = Ca::load(&config.pki.ca_cert, &config.pki.ca_key)?;
            let now = ctx.change().now;
            let revocations = ctx.registry.revocations(now).await?;
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
                    println!(
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

/// `AB:CD:...`, as `openssl x509 -fingerprint` shows it.
pub fn colon_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}
