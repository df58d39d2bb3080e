//! `poortwachter device ...`: register, list, show, revoke, lost, found, compliance.

use anyhow::Result;
use clap::Subcommand;
use poortwachter::model::{Compliance, Device, DeviceKind, DeviceStatus, NewDevice};
use poortwachter::registry::{AuditFilter, DeviceRef};

use super::table::{self, or_dash};
use super::Context;

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
    },
    /// One device, by id (or its first 4+ hex digits) or by MAC, with its history.
    Show { device: String },
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
}

pub async fn run(ctx: &Context, cmd: DeviceCommand) -> Result<()> {
    match cmd {
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
            println!(
                "registered device {} ({}) for {}: {}",
                device.id,
                device.label,
                device.owner,
                macs_text(&device)
            );
            Ok(())
        }
        DeviceCommand::List { owner, status } => {
            let status: Option<DeviceStatus> = status
                .map(|s| {
                    s.parse()
                        .map_err(|e: String| anyhow::anyhow!("--status: {e}"))
                })
                .transpose()?;
            if let Some(o) = &owner {
                if ctx.registry.owner(o).await?.is_none() {
                    anyhow::bail!("no owner {o} in the registry");
                }
            }
            let devices: Vec<Device> = ctx
                .registry
                .devices(owner.as_deref())
                .await?
                .into_iter()
                .filter(|d| status.is_none_or(|s| d.status == s))
                .collect();
            if ctx.json {
                return table::print_json(&devices);
            }
            print_devices(&devices);
            Ok(())
        }
        DeviceCommand::Show { device } => {
            let device = ctx
                .registry
                .find_device(&DeviceRef::parse(&device)?)
                .await?;
            let history = ctx
                .registry
                .store()
                .audit(&AuditFilter {
                    target_id: Some(device.id.to_string()),
                    actor: None,
                    limit: Some(20),
                })
                .await?;
            if ctx.json {
                return table::print_json(
                    &serde_json::json!({"device": device, "history": history}),
                );
            }
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                or_dash(t.map(|t| t.format("%Y-%m-%d %H:%M UTC")))
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
                        device.created_at.format("%Y-%m-%d %H:%M UTC"),
                        device.created_by
                    ),
                ),
                (
                    "last seen",
                    match device.last_seen_at {
                        Some(t) => format!(
                            "{} on {} ({})",
                            t.format("%Y-%m-%d %H:%M UTC"),
                            or_dash(device.last_seen_nas.as_ref()),
                            or_dash(device.last_seen_ssid.as_ref())
                        ),
                        None => "never".to_string(),
                    },
                ),
            ]);
            println!("\nhistory:");
            table::print_audit(&history, false);
            Ok(())
        }
        DeviceCommand::Revoke { device, reason } => {
            set_status(ctx, &device, DeviceStatus::Revoked, Some(reason)).await
        }
        DeviceCommand::Lost { device, reason } => {
            set_status(ctx, &device, DeviceStatus::Lost, reason).await
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
            println!(
                "device {} ({}) is now {}",
                device.id, device.label, device.compliance
            );
            Ok(())
        }
    }
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
    println!(
        "device {} ({}) of {} is now {}",
        device.id, device.label, device.owner, device.status
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
pub fn print_devices(devices: &[Device]) {
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
                or_dash(d.last_seen_at.map(|t| t.format("%Y-%m-%d %H:%M"))),
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
