//! Seeds a poortwachter registry for the RADIUS benchmark, in-process through the library (the
//! registry rules and the audit trail apply as for ICT's own changes): N staff owners
//! `bench0001` ... with one compliant laptop each, MAC = prefix + 00-00-01 ... (the scheme
//! `loadgen` sends).
//!
//! cargo run --release --example bench_seed -- --url sqlite:/tmp/bench.db --devices 10000

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use poortwachter::mac::MacAddr;
use poortwachter::model::{Compliance, DeviceKind, NewDevice, NewOwner, Role};
use poortwachter::registry::{Change, DeviceRef, Registry, Rules};

#[derive(Debug, Parser)]
#[command(about = "Seed a poortwachter registry with benchmark owners and devices")]
struct Args {
    /// Registry URL: sqlite:PATH or postgres://... (migrated first).
    #[arg(long)]
    url: String,
    /// Devices (and owners) to create.
    #[arg(long, default_value_t = 10_000)]
    devices: u32,
    /// First three bytes of the MACs, e.g. aa-bb-cc.
    #[arg(long, default_value = "aa-bb-cc")]
    mac_prefix: String,
    /// Concurrent writers (SQLite serialises them anyway; PostgreSQL gains from a few).
    #[arg(long, default_value_t = 4)]
    writers: u32,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.devices == 0 || args.devices > 0x00ff_ffff {
        bail!("--devices must be 1 ..= 16777215 (three counter bytes)");
    }
    let prefix = parse_prefix(&args.mac_prefix)?;
    let writers = args.writers.clamp(1, 32);
    let reg = Registry::connect(
        &args.url,
        writers,
        Rules {
            max_devices_per_owner: 3,
            timezone: chrono_tz::Europe::Amsterdam,
        },
    )
    .await
    .context("open the registry")?;
    reg.migrate().await.context("migrate")?;

    let start = Instant::now();
    let reg = Arc::new(reg);
    let next = Arc::new(AtomicU32::new(1));
    let total = args.devices;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let (reg, next) = (reg.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n > total {
                    return anyhow::Ok(());
                }
                seed_one(&reg, prefix, n)
                    .await
                    .with_context(|| format!("device {n}"))?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("seed task")??;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "seeded {total} staff owners with one compliant device each in {secs:.1} s ({:.0}/s)",
        f64::from(total) / secs
    );
    Ok(())
}

async fn seed_one(reg: &Registry, prefix: [u8; 3], n: u32) -> Result<()> {
    let change = Change::by("bench");
    let username = format!("bench{n:04}");
    reg.add_owner(
        NewOwner {
            username: username.clone(),
            display_name: format!("Bench {n}"),
            email: None,
            role: Role::Staff,
            department: Some("Benchmark".into()),
            valid_from: None,
            valid_until: None,
        },
        &change,
    )
    .await?;
    let nb = n.to_be_bytes();
    let mac = MacAddr::from_octets([prefix[0], prefix[1], prefix[2], nb[1], nb[2], nb[3]]);
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
        &Change::by("bench"),
    )
    .await?;
    Ok(())
}

fn parse_prefix(s: &str) -> Result<[u8; 3]> {
    let mac = MacAddr::parse_any(&format!("{s}-00-00-01"))
        .with_context(|| format!("--mac-prefix `{s}` is not three bytes like aa-bb-cc"))?;
    let o = mac.octets();
    Ok([o[0], o[1], o[2]])
}
