//! Seeds a registry for the benchmark: N staff owners with one compliant device each, MACs
//! prefix + 00-00-01 ... (the scheme `radload` sends). Goes through the registry rules and the
//! audit log like ICT's own changes.
//!
//! cargo run --release --example radload_seed -- --url sqlite:/tmp/bench.db --devices 10000

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use poortwachter::mac::MacAddr;
use poortwachter::model::{Compliance, DeviceKind, NewDevice, NewOwner, Role};
use poortwachter::registry::{Change, DeviceRef, Registry, Rules};

#[derive(Debug, Parser)]
struct Args {
    /// Registry URL (sqlite:PATH or postgres://...).
    #[arg(long)]
    url: String,
    /// Devices (and owners) to create.
    #[arg(long, default_value_t = 10_000)]
    devices: u32,
    /// First three bytes of the MACs.
    #[arg(long, default_value = "aa-bb-cc")]
    mac_prefix: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let reg = Registry::connect(
        &args.url,
        8,
        Rules {
            max_devices_per_owner: 3,
            timezone: chrono_tz::Europe::Amsterdam,
        },
    )
    .await
    .context("connect")?;
    reg.migrate().await?;
    let start = Instant::now();
    let change = Change::by("bench-seed");
    let mut tasks = tokio::task::JoinSet::new();
    let reg = std::sync::Arc::new(reg);
    for worker in 0..4u32 {
        let reg = reg.clone();
        let change = change.clone();
        let prefix = args.mac_prefix.clone();
        let total = args.devices;
        tasks.spawn(async move {
            let mut n = worker + 1;
            while n <= total {
                let username = format!("bench{n:05}");
                reg.add_owner(
                    NewOwner {
                        username: username.clone(),
                        display_name: format!("Bench {n}"),
                        email: None,
                        role: Role::Staff,
                        department: None,
                        valid_from: None,
                        valid_until: None,
                    },
                    &change,
                )
                .await?;
                let mac = MacAddr::parse_any(&format!(
                    "{prefix}-{:02x}-{:02x}-{:02x}",
                    (n >> 16) as u8,
                    (n >> 8) as u8,
                    n as u8
                ))?;
                let device = reg
                    .register_device(
                        NewDevice {
                            owner: username,
                            macs: vec![mac],
                            label: format!("bench laptop {n}"),
                            kind: DeviceKind::Laptop,
                        },
                        &change,
                    )
                    .await?;
                reg.set_compliance(
                    &DeviceRef::Id(device.id),
                    Compliance::Compliant,
                    None,
                    &change,
                )
                .await?;
                n += 4;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    println!(
        "seeded {} owners and devices in {:.1} s",
        args.devices,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
