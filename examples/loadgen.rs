//! A RADIUS MAB load generator, independent of the crate's own codec (only `hmac` and `md-5`),
//! so that it can drive poortwachter and FreeRADIUS alike and check both.
//!
//! Every request is an Access-Request with Message-Authenticator (first), User-Name and
//! User-Password (the MAC, hidden per RFC 2865 §5.2), Calling-Station-Id, Called-Station-Id,
//! NAS-IP-Address, NAS-Port-Type = Wireless-802.11 and Service-Type = Call-Check. Every reply
//! is checked: identifier, Response Authenticator, and Message-Authenticator when present.
//!
//! Low client CPU: one current-thread tokio runtime, `--concurrency` connected UDP sockets,
//! each with exactly one request in flight (so identifiers never collide), every packet built
//! into a buffer that is reused, the secret's MD5/HMAC key schedules computed once.
//! Bounded by `--count` and `--duration-limit`; an unanswered request is lost, never retried.
//!
//! cargo run --release --example loadgen -- --server 127.0.0.1:28112 --secret S --count 100000
//!
//! CPU figures come from /proc/PID/stat (utime + stime, clock ticks of 100 Hz = `getconf
//! CLK_TCK` on Linux), so they have a resolution of 10 ms per process: use runs of at least
//! a few seconds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio::net::UdpSocket;

type HmacMd5 = Hmac<Md5>;

/// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`; 100 on Linux).
const CLK_TCK: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Expect {
    Accept,
    Reject,
    Any,
}

#[derive(Debug, Parser)]
#[command(about = "RADIUS MAB load generator (loopback benchmarking only)")]
struct Args {
    /// RADIUS authentication server, e.g. 127.0.0.1:28112 (loopback only).
    #[arg(long)]
    server: SocketAddr,
    /// Shared secret (never printed).
    #[arg(long, env = "LOADGEN_SECRET", hide_env_values = true)]
    secret: String,
    /// Requests to send in all.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Requests in flight: one UDP socket per request in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Hard stop in seconds: no request is started after it.
    #[arg(long, default_value_t = 60)]
    duration_limit: u64,
    /// A request unanswered this long is lost (not retried).
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Distinct MACs: prefix + 00-00-01 ... cycling.
    #[arg(long, default_value_t = 10_000)]
    macs: u32,
    /// First three bytes of the MACs, e.g. aa-bb-cc.
    #[arg(long, default_value = "aa-bb-cc")]
    mac_prefix: String,
    /// NAS-IP-Address.
    #[arg(long, default_value = "127.0.0.1")]
    nas_ip: Ipv4Addr,
    /// Called-Station-Id (AP MAC and SSID).
    #[arg(long, default_value = "00-11-22-33-44-55:Gemeente-Werkplek")]
    called_station_id: String,
    /// What every answer should be; others are counted as unexpected (exit status 2).
    #[arg(long, value_enum, default_value = "any")]
    expect: Expect,
    /// Server process: report its CPU time per answered request.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Further processes (e.g. a PostgreSQL backend), comma-separated: their summed CPU time
    /// per answered request is reported separately.
    #[arg(long, value_delimiter = ',')]
    extra_pids: Vec<u32>,
    /// One JSON object on stdout instead of the text report.
    #[arg(long)]
    json: bool,
}

// Fixed layout of the request: every offset is known, only the variable bytes are rewritten.
const OFF_MA: usize = 22; // 20: type 80, len 18, value 22..38
const OFF_USER: usize = 40; // 38: type 1, len 19, value 40..57
const OFF_PASS: usize = 59; // 57: type 2, len 34, value 59..91
const OFF_CALLING: usize = 93; // 91: type 31, len 19, value 93..110
const OFF_CALLED: usize = 110; // type 30, then NAS-IP, NAS-Port-Type, Service-Type
const MAC_LEN: usize = 17;

const ACCESS_REQUEST: u8 = 1;
const ACCESS_ACCEPT: u8 = 2;
const ACCESS_REJECT: u8 = 3;
const ATTR_MESSAGE_AUTHENTICATOR: u8 = 80;
const ATTR_TUNNEL_PRIVATE_GROUP_ID: u8 = 81;

/// What every task shares, read-only apart from the request counter.
struct Ctx {
    secret: Vec<u8>,
    /// MD5 with the secret already absorbed (password hiding: MD5(secret + RA)).
    md5_secret: Md5,
    /// HMAC-MD5 keyed with the secret.
    hmac: HmacMd5,
    prefix: [u8; 3],
    macs: u32,
    called: Vec<u8>,
    nas_ip: [u8; 4],
    count: u64,
    next: AtomicU64,
    deadline: Instant,
    timeout: Duration,
    expect: Expect,
}

#[derive(Debug, Default)]
struct Stats {
    sent: u64,
    answered: u64,
    accepts: u64,
    accepts_with_vlan: u64,
    rejects: u64,
    other_codes: u64,
    lost: u64,
    invalid: u64,
    late: u64,
    unexpected: u64,
    send_errors: u64,
    recv_errors: u64,
    latencies_us: Vec<u32>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.sent += o.sent;
        self.answered += o.answered;
        self.accepts += o.accepts;
        self.accepts_with_vlan += o.accepts_with_vlan;
        self.rejects += o.rejects;
        self.other_codes += o.other_codes;
        self.lost += o.lost;
        self.invalid += o.invalid;
        self.late += o.late;
        self.unexpected += o.unexpected;
        self.send_errors += o.send_errors;
        self.recv_errors += o.recv_errors;
        self.latencies_us.extend(o.latencies_us);
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.server.ip().is_loopback() {
        bail!("--server must be a loopback address (127.0.0.0/8 or ::1)");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.macs == 0 || args.macs > 0x00ff_ffff {
        bail!("--macs must be 1 ..= 16777215 (three counter bytes)");
    }
    if args.secret.is_empty() {
        bail!("--secret must not be empty");
    }
    if args.called_station_id.len() > 253 {
        bail!("--called-station-id is longer than 253 bytes");
    }
    let prefix = parse_prefix(&args.mac_prefix)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(run(args, prefix))
}

fn parse_prefix(s: &str) -> Result<[u8; 3]> {
    let parts: Vec<&str> = s.split(['-', ':']).collect();
    if parts.len() != 3 {
        bail!("--mac-prefix `{s}` is not three bytes like aa-bb-cc");
    }
    let mut out = [0u8; 3];
    for (o, p) in out.iter_mut().zip(parts) {
        if p.len() != 2 {
            bail!("--mac-prefix `{s}` is not three bytes like aa-bb-cc");
        }
        *o = u8::from_str_radix(p, 16).with_context(|| format!("--mac-prefix `{s}`"))?;
    }
    Ok(out)
}

async fn run(args: Args, prefix: [u8; 3]) -> Result<()> {
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let secret = args.secret.as_bytes().to_vec();
    let mut md5_secret = Md5::new();
    md5_secret.update(&secret);
    let hmac = HmacMd5::new_from_slice(&secret).context("HMAC key")?;
    let bind: SocketAddr = match args.server.ip() {
        IpAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::LOCALHOST, 0).into(),
    };
    let concurrency = args.concurrency.min(args.count.max(1) as usize);
    let mut sockets = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let sock = UdpSocket::bind(bind).await.context("bind UDP socket")?;
        sock.connect(args.server)
            .await
            .with_context(|| format!("connect UDP socket to {}", args.server))?;
        sockets.push(sock);
    }

    let pids_ok = |pids: &[u32]| pids.iter().all(|p| cpu_ticks(&p.to_string()).is_some());
    if let Some(pid) = args.server_pid {
        if !pids_ok(&[pid]) {
            bail!("--server-pid {pid}: no such process (cannot read /proc/{pid}/stat)");
        }
    }
    if !pids_ok(&args.extra_pids) {
        bail!("--extra-pids: cannot read /proc/PID/stat of one of them");
    }

    let server_before = args.server_pid.and_then(|p| cpu_ticks(&p.to_string()));
    let extra_before = sum_ticks(&args.extra_pids);
    let self_before = cpu_ticks("self").unwrap_or(0);
    let start = Instant::now();
    let ctx = Arc::new(Ctx {
        secret,
        md5_secret,
        hmac,
        prefix,
        macs: args.macs,
        called: args.called_station_id.as_bytes().to_vec(),
        nas_ip: args.nas_ip.octets(),
        count: args.count,
        next: AtomicU64::new(0),
        deadline: start + Duration::from_secs(args.duration_limit),
        timeout,
        expect: args.expect,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        let ctx = ctx.clone();
        tasks.spawn(worker(ctx, sock, i as u64));
    }
    // Belt and braces: every worker stops by itself at the deadline plus one timeout.
    let hard_stop = ctx.deadline + timeout + Duration::from_secs(1);
    let mut stats = Stats::default();
    loop {
        match tokio::time::timeout_at(hard_stop.into(), tasks.join_next()).await {
            Ok(Some(r)) => stats.merge(r.context("worker task")?),
            Ok(None) => break,
            Err(_) => {
                tasks.abort_all();
                eprintln!("loadgen: hard stop reached, workers aborted");
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    let self_after = cpu_ticks("self").unwrap_or(0);
    let server_after = args.server_pid.and_then(|p| cpu_ticks(&p.to_string()));
    let extra_after = sum_ticks(&args.extra_pids);

    report(
        &args,
        stats,
        elapsed,
        ticks_to_us(self_after.saturating_sub(self_before)),
        server_before
            .zip(server_after)
            .map(|(b, a)| ticks_to_us(a.saturating_sub(b))),
        extra_before
            .zip(extra_after)
            .map(|(b, a)| ticks_to_us(a.saturating_sub(b))),
    )
}

async fn worker(ctx: Arc<Ctx>, sock: UdpSocket, seed: u64) -> Stats {
    let mut rng = StdRng::from_entropy();
    let mut stats = Stats {
        latencies_us: Vec::with_capacity((ctx.count / 16).min(1 << 20) as usize),
        ..Stats::default()
    };
    let mut req = [0u8; 512];
    let len = prefill(&ctx, &mut req);
    let mut reply = [0u8; 4096];
    let mut id = (seed as u8).wrapping_mul(37);
    loop {
        if Instant::now() >= ctx.deadline {
            break;
        }
        let n = ctx.next.fetch_add(1, Ordering::Relaxed);
        if n >= ctx.count {
            break;
        }
        id = id.wrapping_add(1);
        let mut ra = [0u8; 16];
        rng.fill_bytes(&mut ra);
        fill_request(
            &ctx,
            &mut req[..len],
            id,
            &ra,
            (n % u64::from(ctx.macs)) as u32 + 1,
        );
        let sent_at = Instant::now();
        if sock.send(&req[..len]).await.is_err() {
            stats.send_errors += 1;
            stats.lost += 1;
            continue;
        }
        stats.sent += 1;
        let give_up = sent_at + ctx.timeout;
        loop {
            let got = tokio::time::timeout_at(give_up.into(), sock.recv(&mut reply)).await;
            match got {
                Err(_) => {
                    stats.lost += 1;
                    break;
                }
                Ok(Err(_)) => {
                    // e.g. ICMP port unreachable: nothing listens; counted as lost.
                    stats.recv_errors += 1;
                    stats.lost += 1;
                    // do not spin through the count at full speed against a closed port
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    break;
                }
                Ok(Ok(size)) => {
                    let rtt = sent_at.elapsed();
                    match check_reply(&ctx, &mut reply[..size], id, &ra) {
                        Verdict::Stale => {
                            // the answer to an earlier request of this socket that timed out
                            stats.late += 1;
                            continue;
                        }
                        Verdict::Invalid => {
                            stats.answered += 1;
                            stats.invalid += 1;
                        }
                        Verdict::Answer { code, vlan } => {
                            stats.answered += 1;
                            stats
                                .latencies_us
                                .push(rtt.as_micros().min(u128::from(u32::MAX)) as u32);
                            match code {
                                ACCESS_ACCEPT => {
                                    stats.accepts += 1;
                                    if vlan {
                                        stats.accepts_with_vlan += 1;
                                    }
                                }
                                ACCESS_REJECT => stats.rejects += 1,
                                _ => stats.other_codes += 1,
                            }
                            let ok = match ctx.expect {
                                Expect::Any => true,
                                Expect::Accept => code == ACCESS_ACCEPT,
                                Expect::Reject => code == ACCESS_REJECT,
                            };
                            if !ok {
                                stats.unexpected += 1;
                            }
                        }
                    }
                    break;
                }
            }
        }
    }
    stats
}

/// Writes the parts of the request that never change; returns its length.
fn prefill(ctx: &Ctx, p: &mut [u8]) -> usize {
    p[0] = ACCESS_REQUEST;
    p[20] = ATTR_MESSAGE_AUTHENTICATOR;
    p[21] = 18;
    p[38] = 1; // User-Name
    p[39] = 2 + MAC_LEN as u8;
    p[57] = 2; // User-Password: 17 bytes padded to 32
    p[58] = 34;
    p[91] = 31; // Calling-Station-Id
    p[92] = 2 + MAC_LEN as u8;
    let mut o = OFF_CALLED;
    p[o] = 30; // Called-Station-Id
    p[o + 1] = (ctx.called.len() + 2) as u8;
    p[o + 2..o + 2 + ctx.called.len()].copy_from_slice(&ctx.called);
    o += 2 + ctx.called.len();
    p[o] = 4; // NAS-IP-Address
    p[o + 1] = 6;
    p[o + 2..o + 6].copy_from_slice(&ctx.nas_ip);
    o += 6;
    p[o..o + 6].copy_from_slice(&[61, 6, 0, 0, 0, 19]); // NAS-Port-Type = Wireless-802.11
    o += 6;
    p[o..o + 6].copy_from_slice(&[6, 6, 0, 0, 0, 10]); // Service-Type = Call-Check
    o += 6;
    p[2..4].copy_from_slice(&(o as u16).to_be_bytes());
    o
}

/// Fills in identifier, authenticator, MAC number `k`, hidden password and
/// Message-Authenticator.
fn fill_request(ctx: &Ctx, p: &mut [u8], id: u8, ra: &[u8; 16], k: u32) {
    const LOWER: &[u8; 16] = b"0123456789abcdef";
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    p[1] = id;
    p[4..20].copy_from_slice(ra);
    let kb = k.to_be_bytes();
    let octets = [
        ctx.prefix[0],
        ctx.prefix[1],
        ctx.prefix[2],
        kb[1],
        kb[2],
        kb[3],
    ];
    let mut mac = [0u8; MAC_LEN];
    for (i, b) in octets.iter().enumerate() {
        let at = i * 3;
        mac[at] = LOWER[(b >> 4) as usize];
        mac[at + 1] = LOWER[(b & 15) as usize];
        p[OFF_CALLING + at] = UPPER[(b >> 4) as usize];
        p[OFF_CALLING + at + 1] = UPPER[(b & 15) as usize];
        if i < 5 {
            mac[at + 2] = b'-';
            p[OFF_CALLING + at + 2] = b'-';
        }
    }
    p[OFF_USER..OFF_USER + MAC_LEN].copy_from_slice(&mac);

    // User-Password, RFC 2865 §5.2: c1 = p1 ^ MD5(S + RA), c2 = p2 ^ MD5(S + c1).
    let mut plain = [0u8; 32];
    plain[..MAC_LEN].copy_from_slice(&mac);
    let mut h = ctx.md5_secret.clone();
    h.update(ra);
    let mut b = h.finalize();
    for i in 0..16 {
        p[OFF_PASS + i] = plain[i] ^ b[i];
    }
    let mut h = ctx.md5_secret.clone();
    h.update(&p[OFF_PASS..OFF_PASS + 16]);
    b = h.finalize();
    for i in 0..16 {
        p[OFF_PASS + 16 + i] = plain[16 + i] ^ b[i];
    }

    // Message-Authenticator, RFC 3579 §3.2: HMAC-MD5 over the packet with the value zeroed.
    p[OFF_MA..OFF_MA + 16].fill(0);
    let mut m = ctx.hmac.clone();
    m.update(p);
    let tag = m.finalize().into_bytes();
    p[OFF_MA..OFF_MA + 16].copy_from_slice(&tag);
}

enum Verdict {
    /// Well-formed and authentic.
    Answer { code: u8, vlan: bool },
    /// Another identifier: a late answer to an earlier, timed-out request.
    Stale,
    /// Malformed, or an authenticator that does not verify.
    Invalid,
}

/// Checks a reply in place (the buffer is overwritten while checking the
/// Message-Authenticator).
fn check_reply(ctx: &Ctx, r: &mut [u8], id: u8, ra: &[u8; 16]) -> Verdict {
    if r.len() < 20 {
        return Verdict::Invalid;
    }
    if r[1] != id {
        return Verdict::Stale;
    }
    let len = u16::from_be_bytes([r[2], r[3]]) as usize;
    if !(20..=r.len()).contains(&len) {
        return Verdict::Invalid;
    }
    let r = &mut r[..len];
    // Response Authenticator = MD5(Code + ID + Length + RequestAuth + Attributes + Secret)
    let mut h = Md5::new();
    h.update(&r[..4]);
    h.update(ra);
    h.update(&r[20..]);
    h.update(&ctx.secret);
    if h.finalize().as_slice() != &r[4..20] {
        return Verdict::Invalid;
    }
    // Attributes: well-formed; find the Message-Authenticator and a VLAN.
    let mut ma_at = None;
    let mut vlan = false;
    let mut o = 20;
    while o < len {
        if o + 2 > len {
            return Verdict::Invalid;
        }
        let (t, l) = (r[o], r[o + 1] as usize);
        if l < 2 || o + l > len {
            return Verdict::Invalid;
        }
        match t {
            ATTR_MESSAGE_AUTHENTICATOR => {
                if l != 18 || ma_at.is_some() {
                    return Verdict::Invalid;
                }
                ma_at = Some(o + 2);
            }
            ATTR_TUNNEL_PRIVATE_GROUP_ID => vlan = true,
            _ => {}
        }
        o += l;
    }
    if let Some(at) = ma_at {
        // HMAC over the reply with the Request Authenticator in place and the value zeroed.
        let mut given = [0u8; 16];
        given.copy_from_slice(&r[at..at + 16]);
        r[4..20].copy_from_slice(ra);
        r[at..at + 16].fill(0);
        let mut m = ctx.hmac.clone();
        m.update(r);
        if m.verify_slice(&given).is_err() {
            return Verdict::Invalid;
        }
    }
    Verdict::Answer { code: r[0], vlan }
}

/// utime + stime of a process (`self` or a PID), in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may contain spaces and parentheses: count from the last ')'
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // rest starts at field 3 (state); utime is field 14, stime field 15
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn sum_ticks(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| cpu_ticks(&p.to_string())).sum()
}

fn ticks_to_us(ticks: u64) -> u64 {
    ticks * (1_000_000 / CLK_TCK)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(
    args: &Args,
    mut s: Stats,
    elapsed: Duration,
    client_cpu_us: u64,
    server_cpu_us: Option<u64>,
    extra_cpu_us: Option<u64>,
) -> Result<()> {
    s.latencies_us.sort_unstable();
    let lat = &s.latencies_us;
    let (p50, p90, p99, max) = (
        percentile(lat, 50.0),
        percentile(lat, 90.0),
        percentile(lat, 99.0),
        lat.last().copied().unwrap_or(0),
    );
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().map(|&v| v as f64).sum::<f64>() / lat.len() as f64
    };
    let secs = elapsed.as_secs_f64();
    let rps = if secs > 0.0 {
        s.answered as f64 / secs
    } else {
        0.0
    };
    let per_req = |us: u64| {
        if s.answered > 0 {
            Some(us as f64 / s.answered as f64)
        } else {
            None
        }
    };
    let server_per = server_cpu_us.and_then(per_req);
    let extra_per = extra_cpu_us.and_then(per_req);
    let client_per = per_req(client_cpu_us);
    let incomplete = s.sent + s.send_errors < args.count;
    if args.json {
        let round = |v: Option<f64>| v.map(|x| (x * 10.0).round() / 10.0);
        let out = serde_json::json!({
            "server": args.server.to_string(),
            "count": args.count,
            "concurrency": args.concurrency,
            "sent": s.sent,
            "answered": s.answered,
            "accepts": s.accepts,
            "accepts_with_vlan": s.accepts_with_vlan,
            "rejects": s.rejects,
            "other_codes": s.other_codes,
            "lost": s.lost,
            "invalid": s.invalid,
            "late": s.late,
            "unexpected": s.unexpected,
            "send_errors": s.send_errors,
            "recv_errors": s.recv_errors,
            "stopped_by_duration_limit": incomplete,
            "elapsed_s": (secs * 1000.0).round() / 1000.0,
            "requests_per_s": rps.round(),
            "latency_us": {"p50": p50, "p90": p90, "p99": p99, "max": max, "mean": mean.round()},
            "client_cpu_us": client_cpu_us,
            "client_cpu_us_per_request": round(client_per),
            "server_cpu_us": server_cpu_us,
            "server_cpu_us_per_request": round(server_per),
            "extra_cpu_us": extra_cpu_us,
            "extra_cpu_us_per_request": round(extra_per),
        });
        println!("{out}");
    } else {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
        println!(
            "server       {} ({} in flight)",
            args.server, args.concurrency
        );
        println!(
            "requests     sent {}  answered {}  lost {}  invalid {}  late {}{}",
            s.sent,
            s.answered,
            s.lost,
            s.invalid,
            s.late,
            if incomplete {
                "  (stopped by --duration-limit)"
            } else {
                ""
            }
        );
        println!(
            "answers      accept {} (with VLAN {})  reject {}  other {}  unexpected {}",
            s.accepts, s.accepts_with_vlan, s.rejects, s.other_codes, s.unexpected
        );
        if s.send_errors + s.recv_errors > 0 {
            println!(
                "errors       send {}  receive {}",
                s.send_errors, s.recv_errors
            );
        }
        println!("elapsed      {secs:.3} s  ->  {rps:.0} answered/s");
        println!("latency µs   p50 {p50}  p90 {p90}  p99 {p99}  max {max}  mean {mean:.0}");
        println!(
            "client CPU   {:.3} s  ({} µs/request)",
            client_cpu_us as f64 / 1e6,
            opt(client_per)
        );
        if let Some(us) = server_cpu_us {
            println!(
                "server CPU   {:.3} s  ({} µs/request)",
                us as f64 / 1e6,
                opt(server_per)
            );
        }
        if let Some(us) = extra_cpu_us {
            println!(
                "extra CPU    {:.3} s  ({} µs/request)",
                us as f64 / 1e6,
                opt(extra_per)
            );
        }
    }
    if s.invalid > 0 || s.unexpected > 0 {
        std::process::exit(2);
    }
    Ok(())
}
