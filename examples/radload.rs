//! A RADIUS MAB load generator: Access-Requests with a Message-Authenticator from one UDP
//! socket, `--concurrency` in flight (one per identifier), bounded by `--count` and
//! `--duration-limit`. Reports requests/s, latency percentiles, its own CPU and, with
//! `--server-pid`, the server's CPU per answered request (from /proc/PID/stat).
//!
//! cargo run --release --example radload -- --server 127.0.0.1:1812 --secret S --count 100000

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use poortwachter::radius::crypto::{check_response, encode_user_password, sign_request};
use poortwachter::radius::dict::{self, code};
use poortwachter::radius::{Builder, Packet};

#[derive(Debug, Parser)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:1812")]
    server: SocketAddr,
    /// Shared secret.
    #[arg(long, env = "RADLOAD_SECRET")]
    secret: String,
    /// Requests to send in all.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Requests in flight (at most 256: one per identifier).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Hard stop, seconds.
    #[arg(long, default_value_t = 60)]
    duration_limit: u64,
    /// A request unanswered this long is lost (not retried).
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Distinct MACs: prefix + 00-00-01 ... cycling.
    #[arg(long, default_value_t = 10_000)]
    macs: u32,
    /// First three bytes of the MACs.
    #[arg(long, default_value = "aa-bb-cc")]
    mac_prefix: String,
    /// Called-Station-Id (AP MAC and SSID).
    #[arg(long, default_value = "00-11-22-33-44-55:Gemeente-Werkplek")]
    called_station_id: String,
    /// Expect every answer to be an `accept`, a `reject` or a `challenge`.
    #[arg(long, default_value = "any")]
    expect: String,
    /// Server process to measure CPU for.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Further processes whose CPU is reported separately (e.g. the database), comma-separated.
    #[arg(long, value_delimiter = ',')]
    extra_pids: Vec<u32>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Accept replies without a Message-Authenticator (FreeRADIUS 3.2.1 sends none with PAP).
    #[arg(long)]
    allow_reply_without_ma: bool,
    /// Instead of MAB, start an EAP conversation (EAP-Response/Identity, the MAC as the
    /// identity) that is never continued: an EAP flood. Answers are Access-Challenges.
    #[arg(long)]
    eap_identity: bool,
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // fields after the command name, which is in parentheses and may contain spaces
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15
    let utime: f64 = f.get(11).context("utime")?.parse()?;
    let stime: f64 = f.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn own_cpu() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn authenticator(&mut self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&self.next().to_le_bytes());
        a[8..].copy_from_slice(&self.next().to_le_bytes());
        a
    }
}

struct Outstanding {
    sent: Instant,
    authenticator: [u8; 16],
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 || args.concurrency > 256 {
        bail!("--concurrency: 1 to 256");
    }
    let prefix: Vec<u8> = args
        .mac_prefix
        .split(['-', ':'])
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .context("--mac-prefix: three hex bytes such as aa-bb-cc")?;
    if prefix.len() != 3 {
        bail!("--mac-prefix: three hex bytes such as aa-bb-cc");
    }
    let secret = args.secret.as_bytes();
    let bind = if args.server.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(args.server)?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let limit = Duration::from_secs(args.duration_limit);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));

    let mut seq: u64 = 0;
    let mut build = |id: u8, rng: &mut Rng| -> (Vec<u8>, [u8; 16]) {
        let n = (seq % u64::from(args.macs.max(1))) as u32 + 1;
        seq += 1;
        let mac = format!(
            "{:02x}-{:02x}-{:02x}-{:02x}-{:02x}-{:02x}",
            prefix[0],
            prefix[1],
            prefix[2],
            (n >> 16) as u8,
            (n >> 8) as u8,
            n as u8
        );
        let auth = rng.authenticator();
        let mut b = Builder::with_message_authenticator(code::ACCESS_REQUEST, id);
        if args.eap_identity {
            // EAP-Response/Identity (RFC 3748 §5.1): code 2, identifier, length, type 1
            let mut eap = vec![2, id, 0, 0, 1];
            eap.extend_from_slice(mac.as_bytes());
            let len = (eap.len() as u16).to_be_bytes();
            eap[2..4].copy_from_slice(&len);
            let ok = b
                .add_text(dict::USER_NAME, &mac)
                .and_then(|b| b.add(dict::EAP_MESSAGE, &eap))
                .and_then(|b| b.add_text(dict::CALLING_STATION_ID, &mac.to_uppercase()))
                .and_then(|b| b.add_text(dict::CALLED_STATION_ID, &args.called_station_id))
                .and_then(|b| b.add(dict::NAS_IP_ADDRESS, &[127, 0, 0, 1]))
                .and_then(|b| b.add_u32(dict::NAS_PORT_TYPE, 19))
                .and_then(|b| b.add_u32(dict::SERVICE_TYPE, 2))
                .and_then(|b| b.add_u32(dict::FRAMED_MTU, 1400))
                .is_ok();
            debug_assert!(ok);
            let (mut buf, off) = b.into_unsigned();
            sign_request(&mut buf, off, &auth, secret);
            return (buf, auth);
        }
        let ok = b
            .add_text(dict::USER_NAME, &mac)
            .and_then(|b| {
                b.add(
                    dict::USER_PASSWORD,
                    &encode_user_password(mac.as_bytes(), secret, &auth),
                )
            })
            .and_then(|b| b.add_text(dict::CALLING_STATION_ID, &mac.to_uppercase()))
            .and_then(|b| b.add_text(dict::CALLED_STATION_ID, &args.called_station_id))
            .and_then(|b| b.add(dict::NAS_IP_ADDRESS, &[127, 0, 0, 1]))
            .and_then(|b| b.add_u32(dict::NAS_PORT_TYPE, 19))
            .and_then(|b| b.add_u32(dict::SERVICE_TYPE, 10))
            .is_ok();
        debug_assert!(ok);
        let (mut buf, off) = b.into_unsigned();
        sign_request(&mut buf, off, &auth, secret);
        (buf, auth)
    };

    let server_cpu0 = args.server_pid.map(cpu_seconds).transpose()?;
    let extra_cpu0: Vec<f64> = args
        .extra_pids
        .iter()
        .map(|p| cpu_seconds(*p))
        .collect::<Result<_>>()?;
    let own0 = own_cpu();

    let mut inflight: HashMap<u8, Outstanding> = HashMap::new();
    let mut latencies: Vec<u32> = Vec::with_capacity(args.count.min(10_000_000) as usize);
    let (mut sent, mut accepts, mut rejects, mut lost, mut invalid, mut unexpected) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut challenges = 0u64;
    let start = Instant::now();
    let mut free: Vec<u8> = (0..args.concurrency).map(|i| i as u8).collect();
    let mut buf = [0u8; 4096];
    let mut last_sweep = Instant::now();
    loop {
        let elapsed = start.elapsed();
        if elapsed >= limit {
            break;
        }
        while sent < args.count {
            let Some(id) = free.pop() else { break };
            let (pkt, auth) = build(id, &mut rng);
            sock.send(&pkt)?;
            sent += 1;
            inflight.insert(
                id,
                Outstanding {
                    sent: Instant::now(),
                    authenticator: auth,
                },
            );
        }
        if inflight.is_empty() {
            break;
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                let now = Instant::now();
                let Ok(p) = Packet::parse(&buf[..n]) else {
                    invalid += 1;
                    continue;
                };
                let Some(o) = inflight.get(&p.identifier()) else {
                    continue; // a late answer to a request counted lost
                };
                if !check_response(&p, &o.authenticator, secret, !args.allow_reply_without_ma) {
                    invalid += 1;
                    continue;
                }
                let Some(o) = inflight.remove(&p.identifier()) else {
                    continue;
                };
                latencies.push(now.duration_since(o.sent).as_micros().min(u32::MAX as u128) as u32);
                match p.code() {
                    code::ACCESS_ACCEPT => accepts += 1,
                    code::ACCESS_REJECT => rejects += 1,
                    code::ACCESS_CHALLENGE => challenges += 1,
                    _ => unexpected += 1,
                }
                free.push(p.identifier());
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.into()),
        }
        if last_sweep.elapsed() >= Duration::from_millis(50) {
            last_sweep = Instant::now();
            let expired: Vec<u8> = inflight
                .iter()
                .filter(|(_, o)| o.sent.elapsed() >= timeout)
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                inflight.remove(&id);
                lost += 1;
                free.push(id);
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lost += inflight.len() as u64;
    let answered = latencies.len() as u64;
    latencies.sort_unstable();
    let pct = |q: f64| -> u32 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i]
    };
    let own = own_cpu() - own0;
    let server_us = match (args.server_pid, server_cpu0) {
        (Some(pid), Some(c0)) if answered > 0 => {
            Some((cpu_seconds(pid)? - c0) * 1e6 / answered as f64)
        }
        _ => None,
    };
    let mut extra_us = 0.0;
    for (pid, c0) in args.extra_pids.iter().zip(&extra_cpu0) {
        if let Ok(c) = cpu_seconds(*pid) {
            extra_us += (c - c0) * 1e6 / (answered.max(1) as f64);
        }
    }
    let rps = answered as f64 / elapsed;
    let wrong = match args.expect.as_str() {
        "accept" => rejects + challenges + unexpected,
        "reject" => accepts + challenges + unexpected,
        "challenge" => accepts + rejects + unexpected,
        _ => unexpected,
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "sent": sent, "answered": answered, "accepts": accepts, "rejects": rejects,
                "challenges": challenges,
                "lost": lost, "invalid": invalid, "unexpected": wrong,
                "elapsed_s": elapsed, "rps": rps,
                "p50_us": pct(0.50), "p99_us": pct(0.99), "max_us": latencies.last().copied().unwrap_or(0),
                "client_cpu_us_per_req": own * 1e6 / answered.max(1) as f64,
                "server_cpu_us_per_req": server_us,
                "extra_cpu_us_per_req": if args.extra_pids.is_empty() { None } else { Some(extra_us) },
                "concurrency": args.concurrency,
            })
        );
    } else {
        println!(
            "sent {sent}  answered {answered} (accept {accepts}, reject {rejects})  lost {lost}  invalid {invalid}  unexpected {wrong}"
        );
        println!(
            "{rps:.0} requests/s over {elapsed:.2} s at concurrency {}; latency p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            args.concurrency,
            f64::from(pct(0.50)) / 1000.0,
            f64::from(pct(0.99)) / 1000.0,
            f64::from(latencies.last().copied().unwrap_or(0)) / 1000.0
        );
        println!(
            "client CPU {:.1} µs/request",
            own * 1e6 / answered.max(1) as f64
        );
        if let Some(s) = server_us {
            println!("server CPU {s:.1} µs/request");
        }
        if !args.extra_pids.is_empty() {
            println!("extra processes CPU {extra_us:.1} µs/request");
        }
    }
    if wrong > 0 {
        bail!("{wrong} answers were not `{}`", args.expect);
    }
    Ok(())
}
