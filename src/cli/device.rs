//! `poortwachter device ...`: register, list, show, edit, delete, revoke, lost, found, compliance,
//! posture, issue-cert.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use poortwachter::bundle::{self, BundleRequest};
use poortwachter::config::Config;
use poortwachter::mac::MacAddr;
use poortwachter::model::{Compliance, Device, DeviceKind, DeviceStatus, NewDevice};
use poortwachter::pki::{self, Ca, OneTimePassword, Platform, Staging};
use poortwachter::posture::PostureReport;
use poortwachter::registry::{AuditFilter, DeviceEdit, DeviceQuery, DeviceRef, RegistryError};
use poortwachter::text::escape;

use super::table::{self, or_dash};
use super::{when, Context};

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register a personal device for its owner.
    Register {
        /// Owner's username.
        #[arg(long)]
        owner: String,
        /// MAC address (aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff, aabbccddeeff);
        /// repeat for more than one.
        #[arg(long = "mac", required = true)]
        macs: Vec<String>,
        /// What it is, e.g. "ThinkPad X1 (personal)".
        #[arg(long)]
        label: String,
        /// laptop, tablet, phone or other.
        #[arg(long, default_value = "laptop")]
        kind: String,
    },
    /// Registered devices.
    List {
        /// Only this owner's.
        #[arg(long)]
        owner: Option<String>,
        /// Only this status: active, lost or revoked.
        #[arg(long)]
        status: Option<String>,
        /// Only this compliance state: compliant, noncompliant or unknown.
        #[arg(long)]
        compliance: Option<String>,
        /// Only active devices whose current certificate ends within DAYS days (or has
        /// ended), soonest first, with its end.
        #[arg(long, value_name = "DAYS")]
        expiring_within: Option<u32>,
    },
    /// One device, by id (or its first 4+ hex digits) or by MAC, with its history.
    Show { device: String },
    /// Change a device's label or kind, or its MACs (a phone's new private MAC): the device
    /// keeps its id, certificate and history. A removed MAC is free for another device.
    Edit {
        device: String,
        /// What it is, e.g. "ThinkPad X1 (personal)".
        #[arg(long)]
        label: Option<String>,
        /// laptop, tablet, phone or other.
        #[arg(long)]
        kind: Option<String>,
        /// A MAC address to add; repeat for more.
        #[arg(long = "add-mac", value_name = "MAC")]
        add_mac: Vec<String>,
        /// A MAC address to remove; repeat for more. At least one stays.
        #[arg(long = "remove-mac", value_name = "MAC")]
        remove_mac: Vec<String>,
    },
    /// Delete a device registered by mistake or long gone, with its MACs, certificates and
    /// posture reports (the audit log keeps its record). Refused while its certificate is
    /// valid: revoke it, and delete it once the certificate has ended.
    Delete { device: String },
    /// Refuse this device for good (stolen, sold, replaced).
    Revoke {
        device: String,
        /// Why; kept in the registry and the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Report the device lost: refused until found or revoked.
    Lost {
        device: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// A lost device turned up again: active once more.
    Found { device: String },
    /// Record a compliance check result.
    Compliance {
        device: String,
        /// compliant, noncompliant or unknown.
        state: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Record a compliance posture report (JSON, as an MDM or agent sends it to the API):
    /// evaluated against [compliance], the device becomes compliant or noncompliant.
    Posture {
        device: String,
        /// The report: {"os_name", "os_version", "pending_updates", "antivirus_enabled",
        /// "antivirus_signatures_updated", "firewall_enabled", "disk_encrypted",
        /// "screen_lock", "collected_at", "source"}.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Issue an EAP-TLS certificate for an active device and write what its owner installs:
    /// a PKCS#12 bundle (with a one-time password, shown once), the CA certificate, the
    /// profile of each operating system (Windows WLAN profile and installer, signed Apple
    /// .mobileconfig, NetworkManager script) and instructions in Dutch (LEESMIJ.txt) and
    /// English (README.txt). A certificate issued before is superseded.
    IssueCert {
        device: String,
        /// Directory for the files (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Take the PKCS#12 password from this file (first line) instead of generating one.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Only for these systems: windows, apple (macOS, iOS), android, linux; comma
        /// separated or repeated. Default: all.
        #[arg(long = "os", value_name = "OS", value_delimiter = ',')]
        platforms: Vec<Platform>,
    },
    /// Issue new certificates in bulk, as `issue-cert` does for one device (each recorded
    /// and audited, the old one superseded): for the active devices whose certificate ends
    /// within DAYS days, or (during a CA rollover) those whose certificate comes from the
    /// previous CA. Each device's files go to DIR/<device id>/; the one-time passwords are
    /// printed once.
    Reissue {
        /// Devices whose current certificate ends within this many days (or has ended).
        #[arg(
            long,
            value_name = "DAYS",
            required_unless_present = "from_previous_ca"
        )]
        expiring_within: Option<u32>,
        /// Devices whose current certificate the previous CA issued (CA rollover).
        #[arg(long)]
        from_previous_ca: bool,
        /// Directory for the files; a subdirectory per device.
        #[arg(long, value_name = "DIR", required_unless_present = "dry_run")]
        out: Option<PathBuf>,
        /// Only list the devices that would get a new certificate.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(ctx: &Context, config: &Config, cmd: DeviceCommand) -> Result<()> {
    match cmd {
        DeviceCommand::IssueCert {
            device,
            out,
            password_file,
            platforms,
        } => {
            let report = issue_cert(
                ctx,
                config,
                &device,
                &out,
                password_file.as_deref(),
                platforms,
            )
            .await?;
            if ctx.json {
                table::print_json(&report)?;
            }
            Ok(())
        }
        DeviceCommand::Reissue {
            expiring_within,
            from_previous_ca,
            out,
            dry_run,
        } => reissue(ctx, config, expiring_within, from_previous_ca, out, dry_run).await,
        DeviceCommand::Posture { device, file } => posture(ctx, config, &device, &file).await,
        DeviceCommand::Register {
            owner,
            macs,
            label,
            kind,
        } => {
            let kind: DeviceKind = kind
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--kind: {e}"))?;
            let (new, warnings) = NewDevice::from_input(&owner, &macs, &label, kind)
                .map_err(|e| anyhow::anyhow!("--{}: {}", e.field, e.message))?;
            let device = ctx.registry.register_device(new, &ctx.change()).await?;
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            if ctx.json {
                return table::print_json(&device);
            }
            outln!(
                "registered device {} ({}) for {}: {}",
                device.id,
                escape(&device.label),
                device.owner,
                macs_text(&device)
            );
            Ok(())
        }
        DeviceCommand::List {
            owner,
            status,
            compliance,
            expiring_within: Some(days),
        } => {
            anyhow::ensure!(
                owner.is_none() && status.is_none() && compliance.is_none(),
                "--expiring-within: not together with --owner, --status or --compliance (it lists active devices of every owner)"
            );
            let found = ctx
                .registry
                .expiring_certificates(chrono::Duration::days(i64::from(days)), ctx.change().now)
                .await?;
            if ctx.json {
                let rows: Vec<_> = found
                    .iter()
                    .map(|(d, c)| serde_json::json!({"device": d, "certificate": c}))
                    .collect();
                return table::print_json(&rows);
            }
            print_expiring(&found, ctx.change().now, ctx.tz);
            Ok(())
        }
        DeviceCommand::List {
            owner,
            status,
            compliance,
            expiring_within: None,
        } => {
            let query = DeviceQuery {
                status: status
                    .map(|s| {
                        s.parse()
                            .map_err(|e: String| anyhow::anyhow!("--status: {e}"))
                    })
                    .transpose()?,
                compliance: compliance
                    .map(|s| {
                        s.parse()
                            .map_err(|e: String| anyhow::anyhow!("--compliance: {e}"))
                    })
                    .transpose()?,
                owner,
            };
            if let Some(o) = &query.owner {
                if ctx.registry.owner(o).await?.is_none() {
                    anyhow::bail!("no owner {o} in the registry");
                }
            }
            let devices: Vec<Device> = ctx.registry.find_devices(&query).await?;
            if ctx.json {
                return table::print_json(&devices);
            }
            print_devices(&devices, ctx.tz);
            Ok(())
        }
        DeviceCommand::Show { device } => {
            let device = ctx
                .registry
                .find_device(&DeviceRef::parse(&device)?)
                .await?;
            let history = ctx
                .registry
                .audit(&AuditFilter {
                    target_id: Some(device.id.to_string()),
                    actor: None,
                    limit: Some(20),
                    offset: 0,
                })
                .await?;
            if ctx.json {
                return table::print_json(
                    &serde_json::json!({"device": device, "history": history}),
                );
            }
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                or_dash(t.map(|t| when::minute(t, ctx.tz)))
            };
            table::print_fields(&[
                ("id", device.id.to_string()),
                ("owner", device.owner.clone()),
                ("label", device.label.clone()),
                ("kind", device.kind.to_string()),
                ("macs", macs_text(&device)),
                (
                    "status",
                    match &device.status_reason {
                        Some(r) => format!("{} ({r})", device.status),
                        None => device.status.to_string(),
                    },
                ),
                (
                    "compliance",
                    match &device.compliance_note {
                        Some(n) => format!("{} ({n})", device.compliance),
                        None => device.compliance.to_string(),
                    },
                ),
                ("checked", time(device.compliance_checked_at)),
                ("certificate", or_dash(device.cert_serial.as_ref())),
                (
                    "registered",
                    format!(
                        "{} by {}",
                        when::minute(device.created_at, ctx.tz),
                        device.created_by
                    ),
                ),
                (
                    "last seen",
                    match device.last_seen_at {
                        Some(t) => format!(
                            "{} on {} ({})",
                            when::minute(t, ctx.tz),
                            or_dash(device.last_seen_nas.as_ref()),
                            or_dash(device.last_seen_ssid.as_ref())
                        ),
                        None => "never".to_string(),
                    },
                ),
            ]);
            outln!("\nhistory:");
            table::print_audit(&history, false, ctx.tz);
            Ok(())
        }
        DeviceCommand::Revoke { device, reason } => {
            set_status(ctx, &device, DeviceStatus::Revoked, Some(reason)).await
        }
        DeviceCommand::Lost { device, reason } => {
            set_status(ctx, &device, DeviceStatus::Lost, reason).await
        }
        DeviceCommand::Edit {
            device,
            label,
            kind,
            add_mac,
            remove_mac,
        } => {
            let macs = |option: &str, list: Vec<String>| -> Result<Vec<MacAddr>> {
                list.iter()
                    .map(|m| {
                        MacAddr::parse_any(m).map_err(|e| anyhow::anyhow!("{option} {m}: {e}"))
                    })
                    .collect()
            };
            let edit = DeviceEdit {
                label,
                kind: kind
                    .map(|k| {
                        k.parse()
                            .map_err(|e: String| anyhow::anyhow!("--kind: {e}"))
                    })
                    .transpose()?,
                add_macs: macs("--add-mac", add_mac)?,
                remove_macs: macs("--remove-mac", remove_mac)?,
            };
            if edit == DeviceEdit::default() {
                anyhow::bail!("nothing to change: give --label, --kind, --add-mac or --remove-mac");
            }
            let device = ctx
                .registry
                .edit_device(&DeviceRef::parse(&device)?, edit, &ctx.change())
                .await
                .map_err(|e| match e {
                    RegistryError::Field(mut f) => {
                        f.field = match f.field {
                            "add_mac" => "--add-mac",
                            "remove_mac" => "--remove-mac",
                            "mac" => "--add-mac",
                            "label" => "--label",
                            other => other,
                        };
                        RegistryError::Field(f)
                    }
                    other => other,
                })?;
            if ctx.json {
                return table::print_json(&device);
            }
            outln!(
                "device {} ({}): {}",
                device.id,
                escape(&device.label),
                device
                    .macs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        DeviceCommand::Delete { device } => {
            let device = ctx
                .registry
                .delete_device(&DeviceRef::parse(&device)?, &ctx.change())
                .await?;
            if ctx.json {
                return table::print_json(&device);
            }
            outln!(
                "deleted device {} ({}) of {}; its MACs are free, the audit log keeps the record",
                device.id,
                escape(&device.label),
                device.owner
            );
            Ok(())
        }
        DeviceCommand::Found { device } => {
            set_status(ctx, &device, DeviceStatus::Active, None).await
        }
        DeviceCommand::Compliance {
            device,
            state,
            note,
        } => {
            let state: Compliance = state
                .parse()
                .map_err(|e: String| anyhow::anyhow!("state: {e}"))?;
            let device = ctx
                .registry
                .set_compliance(&DeviceRef::parse(&device)?, state, note, &ctx.change())
                .await?;
            if ctx.json {
                return table::print_json(&device);
            }
            outln!(
                "device {} ({}) is now {}",
                device.id,
                escape(&device.label),
                device.compliance
            );
            Ok(())
        }
    }
}

/// `device posture DEVICE --file report.json`.
async fn posture(ctx: &Context, config: &Config, device: &str, file: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("--file {}", file.display()))?;
    let report: PostureReport = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a posture report", file.display()))?;
    let outcome = ctx
        .registry
        .submit_posture_within(
            &DeviceRef::parse(device)?,
            report,
            &config.compliance,
            Some(config.policy.compliance_max_age.chrono()),
            &ctx.change(),
        )
        .await?;
    if ctx.json {
        return table::print_json(&outcome);
    }
    if outcome.applied {
        outln!(
            "device {} is now {} (was {}); report {}",
            outcome.device_id,
            outcome.compliance,
            outcome.previous,
            outcome.report_id
        );
    } else {
        outln!(
            "report {} stored, but it is older than the device's last compliance check and \
             did not change the device: device {} stays {}",
            outcome.report_id,
            outcome.device_id,
            outcome.compliance
        );
    }
    for f in &outcome.failed {
        outln!("  failed {}: {}", f.check, f.message);
    }
    Ok(())
}

/// `device issue-cert`: [`poortwachter::bundle::issue_bundle`], its files staged in a
/// directory inside `out` before the certificate is recorded and moved into `out` only after.
/// If recording fails, dropping the staging directory removes the files: no certificate exists
/// that the registry does not know, and the device's previous certificate stays current.
/// (Writing the files after the commit instead could lose them and leave the previous
/// certificate superseded for nothing.)
async fn issue_cert(
    ctx: &Context,
    config: &Config,
    device: &str,
    out: &Path,
    password_file: Option<&Path>,
    platforms: Vec<Platform>,
) -> Result<serde_json::Value> {
    let change = ctx.change();
    let password = match password_file {
        Some(path) => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("--password-file {}", path.display()))?,
            );
            let first = text.lines().next().unwrap_or("");
            Some(OneTimePassword::given(first)?)
        }
        None => None,
    };
    let request = BundleRequest {
        device: DeviceRef::parse(device)?,
        platforms,
        password,
    };
    let config = std::sync::Arc::new(config.clone());
    let (issued, staging) =
        bundle::issue_bundle(&ctx.registry, &config, request, &change, |files| {
            let mut staging = Staging::new(out)?;
            for f in files {
                let mode = if f.private { pki::PRIVATE } else { pki::PUBLIC };
                staging.add(&f.name, &f.bytes, mode)?;
            }
            Ok(staging)
        })
        .await?;
    let files = staging.publish().context(
        "the certificate is recorded, but its files could not be put in place; they are in the \
         staging directory named above",
    )?;
    for w in &issued.warnings {
        eprintln!("warning: {w}");
    }
    let (device, owner, capped) = (&issued.device, &issued.owner, issued.capped_by_contract);
    let mut report = serde_json::json!({
        "device": device.id,
        "owner": owner.username,
        "serial": issued.serial,
        "fingerprint": issued.fingerprint,
        "not_before": issued.not_before,
        "not_after": issued.not_after,
        "capped_by_contract": capped,
        "capped_by_ca": issued.capped_by_ca,
        "files": files,
        "warnings": issued.warnings,
    });
    let generated = issued.password_generated;
    let password = &issued.password;
    if generated {
        report["password"] = serde_json::Value::from(password.expose());
    }
    if ctx.json {
        return Ok(report);
    }
    outln!(
        "issued certificate {} for device {} ({}) of {}",
        issued.serial,
        device.id,
        escape(&device.label),
        owner.username
    );
    let mut fields = vec![
        (
            "valid",
            format!(
                "{} to {}{}",
                when::minute(issued.not_before, ctx.tz),
                when::minute(issued.not_after, ctx.tz),
                if issued.capped_by_ca {
                    " (end of the CA: no certificate outlives its CA)"
                } else if capped {
                    " (end of contract)"
                } else {
                    ""
                }
            ),
        ),
        ("SHA-256", issued.fingerprint.clone()),
    ];
    for (i, f) in files.iter().enumerate() {
        fields.push((if i == 0 { "files" } else { "" }, f.display().to_string()));
    }
    table::print_fields(&fields);
    if generated {
        outln!(
            "\none-time password of {} and the .mobileconfig (shown once, stored nowhere):\n  {}",
            issued.files.first().map_or("the .p12", |f| f.name.as_str()),
            password.expose()
        );
    }
    Ok(report)
}

/// `device reissue (--expiring-within DAYS | --from-previous-ca) --out DIR [--dry-run]`:
/// [`issue_cert`] for each device found, into DIR/<device id>/. A device that fails is named
/// and the others go on; the exit status says whether all succeeded.
async fn reissue(
    ctx: &Context,
    config: &Config,
    expiring_within: Option<u32>,
    from_previous_ca: bool,
    out: Option<PathBuf>,
    dry_run: bool,
) -> Result<()> {
    let now = ctx.change().now;
    let mut found = match expiring_within {
        Some(days) => {
            ctx.registry
                .expiring_certificates(chrono::Duration::days(i64::from(days)), now)
                .await?
        }
        None => Vec::new(),
    };
    if from_previous_ca {
        anyhow::ensure!(
            config.pki.previous_ca_cert().exists(),
            "--from-previous-ca: no CA rollover is under way ({} does not exist)",
            config.pki.previous_ca_cert().display()
        );
        let current = Ca::load(&config.pki.ca_cert, &config.pki.ca_key)?;
        let cutoff = pki::rollover_started(&current);
        for (d, c) in ctx.registry.certificates_issued_before(cutoff, now).await? {
            // an active device only: a lost one gets its certificate when found
            if d.status == DeviceStatus::Active && !found.iter().any(|(f, _)| f.id == d.id) {
                found.push((d, c));
            }
        }
    }
    if dry_run {
        if ctx.json {
            let rows: Vec<_> = found
                .iter()
                .map(|(d, c)| serde_json::json!({"device": d, "certificate": c}))
                .collect();
            return table::print_json(&serde_json::json!({"would_reissue": rows}));
        }
        outln!(
            "would issue a new certificate for {} device(s):",
            found.len()
        );
        print_expiring(&found, now, ctx.tz);
        return Ok(());
    }
    let Some(out) = out else {
        anyhow::bail!("--out: give a directory for the new certificates");
    };
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for (d, _) in &found {
        let dir = out.join(d.id.to_string());
        match issue_cert(ctx, config, &d.id.to_string(), &dir, None, Vec::new()).await {
            Ok(report) => reports.push(report),
            Err(e) => {
                eprintln!("device {} ({}): not re-issued: {e:#}", d.id, d.owner);
                failed.push(d.id);
            }
        }
    }
    if ctx.json {
        table::print_json(&serde_json::json!({"reissued": reports, "failed": failed}))?;
    } else {
        outln!(
            "\nre-issued {} of {} device certificate(s) into {}",
            reports.len(),
            found.len(),
            out.display()
        );
    }
    anyhow::ensure!(
        failed.is_empty(),
        "{} device(s) could not be re-issued (named above)",
        failed.len()
    );
    Ok(())
}

/// Devices with the end of their current certificate.
fn print_expiring(
    found: &[(Device, poortwachter::registry::DeviceCertificate)],
    now: chrono::DateTime<chrono::Utc>,
    tz: chrono_tz::Tz,
) {
    let rows = found
        .iter()
        .map(|(d, c)| {
            let days = c
                .not_after
                .signed_duration_since(now)
                .num_seconds()
                .div_euclid(86_400);
            vec![
                d.id.to_string()[..8].to_string(),
                d.owner.clone(),
                escape(&d.label).into_owned(),
                d.status.to_string(),
                c.serial.clone(),
                when::minute(c.not_after, tz),
                if c.not_after < now {
                    format!("expired {} days ago", -days)
                } else {
                    format!("{days} days")
                },
            ]
        })
        .collect();
    table::print(
        &[
            "ID",
            "OWNER",
            "LABEL",
            "STATUS",
            "CERTIFICATE",
            "ENDS",
            "LEFT",
        ],
        rows,
    );
}

async fn set_status(
    ctx: &Context,
    device: &str,
    status: DeviceStatus,
    reason: Option<String>,
) -> Result<()> {
    let device = ctx
        .registry
        .set_device_status(&DeviceRef::parse(device)?, status, reason, &ctx.change())
        .await?;
    if ctx.json {
        return table::print_json(&device);
    }
    outln!(
        "device {} ({}) of {} is now {}",
        device.id,
        escape(&device.label),
        device.owner,
        device.status
    );
    Ok(())
}

fn macs_text(d: &Device) -> String {
    d.macs
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The device table, also under `owner show`.
pub fn print_devices(devices: &[Device], tz: chrono_tz::Tz) {
    let rows = devices
        .iter()
        .map(|d| {
            vec![
                d.id.to_string()[..8].to_string(),
                d.owner.clone(),
                d.label.clone(),
                d.kind.to_string(),
                macs_text(d),
                d.status.to_string(),
                d.compliance.to_string(),
                or_dash(d.last_seen_at.map(|t| when::minute(t, tz))),
            ]
        })
        .collect();
    table::print(
        &[
            "ID",
            "OWNER",
            "LABEL",
            "KIND",
            "MACS",
            "STATUS",
            "COMPLIANCE",
            "LAST SEEN",
        ],
        rows,
    );
}
