//! An EAP-TLS load generator: a supplicant (rustls as the TLS client) behind a RADIUS client,
//! the way an access point carries 802.1X to the server (RFC 3579). `--concurrency` full
//! authentications at once, each from its own UDP socket; bounded by `--count` and
//! `--duration-limit`. Every login is a full handshake (no session resumption). Reports
//! authentications/s, latency of a whole authentication (first Access-Request to the
//! Access-Accept), round trips, its own CPU and, with `--server-pid`, the server's CPU per
//! accepted authentication (from /proc/PID/stat).
//!
//! The MS-MPPE keys of every Access-Accept are decrypted and compared with the keys this side
//! derives from the TLS session (RFC 5216 §2.3 for TLS 1.2, RFC 9190 §2.3 for TLS 1.3).
//!
//! cargo run --release --example eapload -- --server 127.0.0.1:1812 --secret S \
//!     --ca ca.pem --cert device.pem --key device.key --tls 1.3 --count 2000

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use poortwachter::radius::crypto::{check_response, salt_decrypt, sign_request, Key};
use poortwachter::radius::dict::{self, code};
use poortwachter::radius::{Builder, Packet, MAX_PACKET_LEN};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, SupportedProtocolVersion};
use tokio::net::UdpSocket;

#[derive(Debug, Parser)]
struct Args {
    /// Server address (loopback only).
    #[arg(long, default_value = "127.0.0.1:1812")]
    server: SocketAddr,
    /// Shared secret.
    #[arg(long, env = "EAPLOAD_SECRET")]
    secret: String,
    /// CA certificate(s) (PEM) the server's certificate must chain to.
    #[arg(long)]
    ca: PathBuf,
    /// The name the server certificate must carry.
    #[arg(long, default_value = "radius.poortwachter.test")]
    server_name: String,
    /// Client certificate chain (PEM); with --key. Or use --certs-dir.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Client private key (PKCS#8, SEC1 or PKCS#1 PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// A directory of device credentials NAME.pem + NAME.key, used round-robin. NAME is the
    /// EAP identity; when NAME is a MAC address (aa-bb-cc-00-00-01) it is also the
    /// Calling-Station-Id.
    #[arg(long, conflicts_with_all = ["cert", "key"])]
    certs_dir: Option<PathBuf>,
    /// EAP identity (User-Name) instead of the credential's name.
    #[arg(long)]
    identity: Option<String>,
    /// TLS version to offer (only this one).
    #[arg(long, value_enum, default_value = "1.2")]
    tls: Tls,
    /// Most TLS data in one EAP-TLS response; longer messages are fragmented.
    #[arg(long, default_value_t = 1024)]
    fragment_size: usize,
    /// Authentications in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Authentications to start in all.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Hard stop, seconds; authentications still running then are counted unfinished.
    #[arg(long, default_value_t = 60)]
    duration_limit: u64,
    /// An Access-Request unanswered this long is sent again.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Retransmissions of one Access-Request before the authentication counts as timed out.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Called-Station-Id (AP MAC and SSID).
    #[arg(long, default_value = "aa-bb-cc-dd-ee-ff:Werkplek")]
    called_station_id: String,
    /// Count an Access-Accept without this Tunnel-Private-Group-Id as a failure.
    #[arg(long)]
    expect_vlan: Option<String>,
    /// Do not compare the MS-MPPE keys with the keys derived from the TLS session.
    #[arg(long)]
    no_verify_keys: bool,
    /// Server process to measure CPU for.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Runtime threads (1: the generator uses at most one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Exit with an error unless every authentication started was accepted.
    #[arg(long)]
    fail_on_error: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Print why the first few failed authentications failed, on stderr.
    #[arg(long)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Tls {
    #[value(name = "1.2")]
    V12,
    #[value(name = "1.3")]
    V13,
}

impl Tls {
    fn as_str(self) -> &'static str {
        match self {
            Tls::V12 => "1.2",
            Tls::V13 => "1.3",
        }
    }
}

/// The most round trips one authentication may take (5 with ECDSA certificates, 7 with RSA
/// at the default fragment size; small fragments need more).
const MAX_ROUND_TRIPS: u32 = 100;
/// The most TLS data accepted from the server in one message.
const MAX_TLS_MESSAGE: usize = 64 * 1024;

// EAP (RFC 3748 §4) and EAP-TLS (RFC 5216 §3.1)
const EAP_REQUEST: u8 = 1;
const EAP_RESPONSE: u8 = 2;
const EAP_SUCCESS: u8 = 3;
const EAP_FAILURE: u8 = 4;
const EAP_TYPE_IDENTITY: u8 = 1;
const EAP_TYPE_NOTIFICATION: u8 = 2;
const EAP_TYPE_NAK: u8 = 3;
const EAP_TYPE_TLS: u8 = 13;
const FLAG_LENGTH: u8 = 0x80;
const FLAG_MORE: u8 = 0x40;
const FLAG_START: u8 = 0x20;

/// One device's credentials.
struct Device {
    identity: String,
    calling_station_id: String,
    tls: Arc<ClientConfig>,
}

/// What the workers share.
struct Ctx {
    server_name: ServerName<'static>,
    key: Key,
    secret: Vec<u8>,
    devices: Vec<Device>,
    tls: Tls,
    fragment_size: usize,
    timeout: Duration,
    retries: u32,
    called_station_id: String,
    expect_vlan: Option<String>,
    verify_keys: bool,
}

/// How one authentication ended.
enum Outcome {
    Accept,
    Reject,
    Timeout,
    Failed(String),
}

/// A worker's counts.
#[derive(Default)]
struct Stats {
    started: u64,
    accepts: u64,
    rejects: u64,
    timeouts: u64,
    failures: u64,
    unfinished: u64,
    latencies_us: Vec<u32>,
    round_trips: u64,
    retransmits: u64,
    invalid_replies: u64,
    success_indications: u64,
    reasons: BTreeMap<String, u64>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.started += o.started;
        self.accepts += o.accepts;
        self.rejects += o.rejects;
        self.timeouts += o.timeouts;
        self.failures += o.failures;
        self.unfinished += o.unfinished;
        self.latencies_us.extend(o.latencies_us);
        self.round_trips += o.round_trips;
        self.retransmits += o.retransmits;
        self.invalid_replies += o.invalid_replies;
        self.success_indications += o.success_indications;
        for (k, v) in o.reasons {
            *self.reasons.entry(k).or_default() += v;
        }
    }
}

/// What a verified RADIUS reply carried, copied out of the receive buffer.
struct Reply {
    code: u8,
    eap: Option<Vec<u8>>,
    state: Option<Vec<u8>>,
    /// MS-MPPE-Recv-Key, MS-MPPE-Send-Key, decrypted (None: absent or malformed).
    recv_key: Option<Vec<u8>>,
    send_key: Option<Vec<u8>>,
    vlan: Option<String>,
}

/// One RADIUS client socket: its own source port, its own identifiers.
struct Client {
    sock: UdpSocket,
    next_id: u8,
    buf: Vec<u8>,
}

enum ExchangeError {
    Timeout,
    Io(std::io::Error),
    Encode(String),
}

impl Client {
    /// Sends an Access-Request carrying `eap` (and `state`), retransmitting the same bytes on
    /// timeout; returns the first reply that passes the authenticator checks.
    async fn exchange(
        &mut self,
        ctx: &Ctx,
        device: &Device,
        eap: &[u8],
        state: Option<&[u8]>,
        stats: &mut Stats,
    ) -> Result<Reply, ExchangeError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let authenticator: [u8; 16] = rand::random();
        let mut b = Builder::with_message_authenticator(code::ACCESS_REQUEST, id);
        let built = b
            .add_text(dict::USER_NAME, &device.identity)
            .and_then(|b| b.add_text(dict::CALLING_STATION_ID, &device.calling_station_id))
            .and_then(|b| b.add_text(dict::CALLED_STATION_ID, &ctx.called_station_id))
            .and_then(|b| b.add(dict::NAS_IP_ADDRESS, &[127, 0, 0, 1]))
            .and_then(|b| b.add_u32(dict::NAS_PORT_TYPE, 19)) // IEEE 802.11
            .and_then(|b| b.add_u32(dict::SERVICE_TYPE, 2)) // Framed
            .and_then(|b| b.add_u32(FRAMED_MTU, 1400))
            .and_then(|b| b.add_split(dict::EAP_MESSAGE, eap));
        if let Err(e) = built {
            return Err(ExchangeError::Encode(e.to_string()));
        }
        if let Some(s) = state {
            b.add(dict::STATE, s)
                .map_err(|e| ExchangeError::Encode(e.to_string()))?;
        }
        let (mut pkt, ma) = b.into_unsigned();
        sign_request(&mut pkt, ma, &authenticator, &ctx.key);

        for attempt in 0..=ctx.retries {
            if attempt > 0 {
                stats.retransmits += 1;
            }
            self.sock.send(&pkt).await.map_err(ExchangeError::Io)?;
            let give_up = tokio::time::Instant::now() + ctx.timeout;
            loop {
                let n = match tokio::time::timeout_at(give_up, self.sock.recv(&mut self.buf)).await
                {
                    Err(_) => break, // retransmit
                    Ok(Ok(n)) => n,
                    // nothing listens (yet): ICMP port unreachable on a connected socket
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        tokio::time::sleep_until(give_up).await;
                        break;
                    }
                    Ok(Err(e)) => return Err(ExchangeError::Io(e)),
                };
                let Ok(p) = Packet::parse(&self.buf[..n]) else {
                    stats.invalid_replies += 1;
                    continue;
                };
                if p.identifier() != id {
                    continue; // a late answer to an earlier request
                }
                // RFC 3579 §3.2: a reply with an EAP-Message carries a Message-Authenticator
                if !check_response(&p, &authenticator, &ctx.key, true) {
                    stats.invalid_replies += 1;
                    continue;
                }
                let key = |t| {
                    p.vendor_attr(dict::VENDOR_MICROSOFT, t)
                        .and_then(|v| salt_decrypt(v, &ctx.secret, &authenticator).ok())
                        .map(|k| k.to_vec())
                };
                return Ok(Reply {
                    code: p.code(),
                    eap: p.concat(dict::EAP_MESSAGE),
                    state: p.attr(dict::STATE).map(<[u8]>::to_vec),
                    recv_key: key(dict::MS_MPPE_RECV_KEY),
                    send_key: key(dict::MS_MPPE_SEND_KEY),
                    vlan: p.attr(dict::TUNNEL_PRIVATE_GROUP_ID).map(|v| {
                        // RFC 2868 §3.6: an optional tag byte first
                        let v = if v.first().is_some_and(|t| *t < 0x20) {
                            &v[1..]
                        } else {
                            v
                        };
                        String::from_utf8_lossy(v).into_owned()
                    }),
                });
            }
        }
        Err(ExchangeError::Timeout)
    }
}

/// Framed-MTU (RFC 2865 §5.12): what an access point announces for the EAP frames.
const FRAMED_MTU: u8 = 12;

/// An EAP packet: code, identifier, length, then `data` (type and type data).
fn eap_packet(code: u8, id: u8, data: &[u8]) -> Vec<u8> {
    let len = (4 + data.len()) as u16;
    let mut p = Vec::with_capacity(usize::from(len));
    p.extend_from_slice(&[code, id]);
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// The supplicant's side of one EAP-TLS conversation.
struct Supplicant<'a> {
    ctx: &'a Ctx,
    device: &'a Device,
    conn: Option<ClientConnection>,
    /// TLS data from the server, reassembled from fragments.
    incoming: Vec<u8>,
    /// TLS data to the server, and how much of it was sent.
    outgoing: Vec<u8>,
    sent: usize,
    /// A TLS error seen; the server still has to end the conversation.
    tls_error: Option<String>,
    success_indication: bool,
}

impl<'a> Supplicant<'a> {
    fn new(ctx: &'a Ctx, device: &'a Device) -> Self {
        Supplicant {
            ctx,
            device,
            conn: None,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            sent: 0,
            tls_error: None,
            success_indication: false,
        }
    }

    /// The answer to an EAP-Request from the server.
    fn respond(&mut self, eap: &[u8]) -> Result<Vec<u8>, String> {
        if eap.len() < 5 {
            return Err("short EAP packet".into());
        }
        let len = usize::from(u16::from_be_bytes([eap[2], eap[3]]));
        if len < 5 || len > eap.len() {
            return Err("EAP length field".into());
        }
        let (code, id, typ) = (eap[0], eap[1], eap[4]);
        let data = &eap[5..len];
        if code != EAP_REQUEST {
            return Err(format!("EAP code {code} in an Access-Challenge"));
        }
        match typ {
            EAP_TYPE_IDENTITY => {
                let mut d = vec![EAP_TYPE_IDENTITY];
                d.extend_from_slice(self.device.identity.as_bytes());
                Ok(eap_packet(EAP_RESPONSE, id, &d))
            }
            EAP_TYPE_NOTIFICATION => Ok(eap_packet(EAP_RESPONSE, id, &[EAP_TYPE_NOTIFICATION])),
            EAP_TYPE_TLS => self.on_tls(id, data),
            // RFC 3748 §5.3.1: another method proposed; ask for EAP-TLS
            _ => Ok(eap_packet(EAP_RESPONSE, id, &[EAP_TYPE_NAK, EAP_TYPE_TLS])),
        }
    }

    /// An EAP-TLS request: flags, then optional length, then TLS data (RFC 5216 §3.1).
    fn on_tls(&mut self, id: u8, data: &[u8]) -> Result<Vec<u8>, String> {
        let Some((&flags, mut tls)) = data.split_first() else {
            return Err("EAP-TLS without flags".into());
        };
        if flags & FLAG_LENGTH != 0 {
            if tls.len() < 4 {
                return Err("EAP-TLS L flag without length".into());
            }
            let total = u32::from_be_bytes([tls[0], tls[1], tls[2], tls[3]]) as usize;
            if total > MAX_TLS_MESSAGE {
                return Err(format!("TLS message of {total} bytes announced"));
            }
            tls = &tls[4..];
        }
        if flags & FLAG_START != 0 {
            if self.conn.is_some() {
                return Err("a second EAP-TLS Start".into());
            }
            let conn = ClientConnection::new(self.device.tls.clone(), self.ctx.server_name.clone())
                .map_err(|e| format!("TLS client: {e}"))?;
            self.conn = Some(conn);
            self.take_outgoing()?;
            return Ok(self.next_fragment(id));
        }
        if self.conn.is_none() {
            return Err("EAP-TLS data before Start".into());
        }
        if self.sent < self.outgoing.len() {
            // the server acknowledges a fragment of ours
            if !tls.is_empty() {
                return Err("TLS data while our message was still being sent".into());
            }
            return Ok(self.next_fragment(id));
        }
        if self.incoming.len() + tls.len() > MAX_TLS_MESSAGE {
            return Err("TLS message too long".into());
        }
        self.incoming.extend_from_slice(tls);
        if flags & FLAG_MORE != 0 {
            return Ok(eap_packet(EAP_RESPONSE, id, &[EAP_TYPE_TLS, 0])); // fragment ACK
        }
        self.feed();
        self.take_outgoing()?;
        Ok(self.next_fragment(id))
    }

    /// Gives the reassembled server message to rustls.
    fn feed(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut rd = &self.incoming[..];
        while !rd.is_empty() && self.tls_error.is_none() {
            match conn.read_tls(&mut rd) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    self.tls_error = Some(format!("TLS read: {e}"));
                    break;
                }
            }
            if let Err(e) = conn.process_new_packets() {
                // rustls queued an alert; it goes out like any other TLS data
                self.tls_error = Some(format!("TLS: {e}"));
            }
        }
        self.incoming.clear();
        // RFC 9190 §2.5: after the handshake the server sends one byte 0x00 of application
        // data as its protected success indication
        if !conn.is_handshaking() {
            let mut app = [0u8; 64];
            if let Ok(n) = conn.reader().read(&mut app) {
                if n == 1 && app[0] == 0 {
                    self.success_indication = true;
                }
            }
        }
    }

    fn take_outgoing(&mut self) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        self.outgoing.clear();
        self.sent = 0;
        while conn.wants_write() {
            conn.write_tls(&mut self.outgoing)
                .map_err(|e| format!("TLS write: {e}"))?;
        }
        Ok(())
    }

    /// The next EAP-TLS response: a fragment of our pending TLS data, or an empty response
    /// (an ACK of the server's message, RFC 5216 §2.1.5 and RFC 9190 §2.5).
    fn next_fragment(&mut self, id: u8) -> Vec<u8> {
        let total = self.outgoing.len();
        if self.sent >= total {
            return eap_packet(EAP_RESPONSE, id, &[EAP_TYPE_TLS, 0]);
        }
        let first = self.sent == 0;
        let end = (self.sent + self.ctx.fragment_size).min(total);
        let more = end < total;
        let mut d = Vec::with_capacity(end - self.sent + 6);
        d.push(EAP_TYPE_TLS);
        if first && more {
            d.push(FLAG_LENGTH | FLAG_MORE);
            d.extend_from_slice(&(total as u32).to_be_bytes());
        } else {
            d.push(if more { FLAG_MORE } else { 0 });
        }
        d.extend_from_slice(&self.outgoing[self.sent..end]);
        self.sent = end;
        eap_packet(EAP_RESPONSE, id, &d)
    }

    /// The keys the server must send: MS-MPPE-Recv-Key is the MSK's first 32 bytes,
    /// MS-MPPE-Send-Key the next 32 (RFC 5216 §2.3, RFC 9190 §2.3, RFC 2548).
    fn expected_keys(&self) -> Result<([u8; 32], [u8; 32]), String> {
        let conn = self.conn.as_ref().ok_or("no TLS session")?;
        let material = match self.ctx.tls {
            Tls::V12 => conn.export_keying_material([0u8; 128], b"client EAP encryption", None),
            Tls::V13 => conn.export_keying_material(
                [0u8; 128],
                b"EXPORTER_EAP_TLS_Key_Material",
                Some(&[EAP_TYPE_TLS]),
            ),
        }
        .map_err(|e| format!("key export: {e}"))?;
        let mut recv = [0u8; 32];
        let mut send = [0u8; 32];
        recv.copy_from_slice(&material[..32]);
        send.copy_from_slice(&material[32..64]);
        Ok((recv, send))
    }

    /// Checks an Access-Accept.
    fn check_accept(&self, reply: &Reply) -> Result<(), String> {
        if let Some(e) = &self.tls_error {
            return Err(format!("Access-Accept after a TLS error ({e})"));
        }
        match &self.conn {
            Some(c) if !c.is_handshaking() => {}
            _ => return Err("Access-Accept before the TLS handshake finished".into()),
        }
        match reply.eap.as_deref() {
            Some([EAP_SUCCESS, ..]) => {}
            Some(_) => return Err("Access-Accept without EAP-Success".into()),
            None => return Err("Access-Accept without EAP-Message".into()),
        }
        let (Some(recv), Some(send)) = (&reply.recv_key, &reply.send_key) else {
            return Err("Access-Accept without MS-MPPE keys".into());
        };
        if self.ctx.verify_keys {
            let (want_recv, want_send) = self.expected_keys()?;
            if recv[..] != want_recv[..] || send[..] != want_send[..] {
                return Err("MS-MPPE keys differ from the TLS session's".into());
            }
        }
        if let Some(want) = &self.ctx.expect_vlan {
            if reply.vlan.as_deref() != Some(want.as_str()) {
                return Err(format!("VLAN {:?}, expected {want}", reply.vlan));
            }
        }
        Ok(())
    }
}

/// One full authentication.
async fn authenticate(
    client: &mut Client,
    ctx: &Ctx,
    device: &Device,
    stats: &mut Stats,
) -> Outcome {
    let mut supplicant = Supplicant::new(ctx, device);
    let mut identity = vec![EAP_TYPE_IDENTITY];
    identity.extend_from_slice(device.identity.as_bytes());
    let mut eap = eap_packet(EAP_RESPONSE, 0, &identity);
    let mut state: Option<Vec<u8>> = None;
    for _ in 0..MAX_ROUND_TRIPS {
        stats.round_trips += 1;
        let reply = match client
            .exchange(ctx, device, &eap, state.as_deref(), stats)
            .await
        {
            Ok(r) => r,
            Err(ExchangeError::Timeout) => return Outcome::Timeout,
            Err(ExchangeError::Io(e)) => return Outcome::Failed(format!("socket: {e}")),
            Err(ExchangeError::Encode(e)) => return Outcome::Failed(format!("encode: {e}")),
        };
        match reply.code {
            code::ACCESS_ACCEPT => {
                if supplicant.success_indication {
                    stats.success_indications += 1;
                }
                return match supplicant.check_accept(&reply) {
                    Ok(()) => Outcome::Accept,
                    Err(e) => Outcome::Failed(e),
                };
            }
            code::ACCESS_REJECT => {
                if let Some(e) = &supplicant.tls_error {
                    return Outcome::Failed(format!("rejected after {e}"));
                }
                return match reply.eap.as_deref() {
                    Some([EAP_FAILURE, ..]) | None => Outcome::Reject,
                    Some(_) => Outcome::Failed(
                        "Access-Reject with an EAP packet other than Failure".into(),
                    ),
                };
            }
            code::ACCESS_CHALLENGE => {}
            c => return Outcome::Failed(format!("unexpected reply code {c}")),
        }
        state = reply.state;
        let Some(request) = reply.eap else {
            return Outcome::Failed("Access-Challenge without EAP-Message".into());
        };
        eap = match supplicant.respond(&request) {
            Ok(e) => e,
            Err(e) => return Outcome::Failed(e),
        };
        if eap.len() + 200 > MAX_PACKET_LEN {
            return Outcome::Failed("fragment too large for one RADIUS packet".into());
        }
    }
    Outcome::Failed(format!("no result after {MAX_ROUND_TRIPS} round trips"))
}

async fn worker(
    ctx: Arc<Ctx>,
    server: SocketAddr,
    next: Arc<AtomicU64>,
    count: u64,
    deadline: tokio::time::Instant,
    verbose: bool,
) -> Result<Stats> {
    let bind: SocketAddr = if server.is_ipv6() {
        "[::1]:0".parse()?
    } else {
        "127.0.0.1:0".parse()?
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(server).await?;
    let mut client = Client {
        sock,
        next_id: rand::random(),
        buf: vec![0u8; MAX_PACKET_LEN],
    };
    let mut stats = Stats::default();
    let mut told = 0;
    loop {
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= count {
            break;
        }
        let device = &ctx.devices[(n % ctx.devices.len() as u64) as usize];
        stats.started += 1;
        let t0 = Instant::now();
        let outcome = tokio::time::timeout_at(
            deadline,
            authenticate(&mut client, &ctx, device, &mut stats),
        )
        .await;
        match outcome {
            Err(_) => stats.unfinished += 1,
            Ok(Outcome::Accept) => {
                stats.accepts += 1;
                stats
                    .latencies_us
                    .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
            Ok(Outcome::Reject) => {
                stats.rejects += 1;
                *stats.reasons.entry("Access-Reject".into()).or_default() += 1;
            }
            Ok(Outcome::Timeout) => {
                stats.timeouts += 1;
                *stats.reasons.entry("timeout".into()).or_default() += 1;
            }
            Ok(Outcome::Failed(why)) => {
                stats.failures += 1;
                if verbose && told < 3 {
                    told += 1;
                    eprintln!("{}: {why}", device.identity);
                }
                *stats.reasons.entry(why).or_default() += 1;
            }
        }
    }
    Ok(stats)
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

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate", path.display());
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// A device's TLS client: only the chosen version, no resumption (every login a full
/// handshake), the server checked against `--ca` and `--server-name`.
fn client_config(
    roots: &Arc<RootCertStore>,
    tls: Tls,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ClientConfig>> {
    let versions: &[&'static SupportedProtocolVersion] = match tls {
        Tls::V12 => &[&rustls::version::TLS12],
        Tls::V13 => &[&rustls::version::TLS13],
    };
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain, key)?;
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// `aa-bb-cc-00-00-01` and similar spellings of a MAC address.
fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(['-', ':']).collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn synthetic_mac(i: usize) -> String {
    format!(
        "02-00-00-{:02X}-{:02X}-{:02X}",
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8
    )
}

fn load_devices(args: &Args, roots: &Arc<RootCertStore>) -> Result<Vec<Device>> {
    let mut creds: Vec<(String, PathBuf, PathBuf)> = Vec::new();
    if let Some(dir) = &args.certs_dir {
        for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pem") {
                continue;
            }
            let key = path.with_extension("key");
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if key.exists() {
                creds.push((name.to_string(), path.clone(), key));
            }
        }
        creds.sort();
        if creds.is_empty() {
            bail!("{}: no NAME.pem with NAME.key", dir.display());
        }
    } else if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        let name = cert
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("device")
            .to_string();
        creds.push((name, cert.clone(), key.clone()));
    } else {
        bail!("give --cert and --key, or --certs-dir");
    }
    creds
        .into_iter()
        .enumerate()
        .map(|(i, (name, cert, key))| {
            let calling_station_id = if is_mac(&name) {
                name.to_uppercase().replace(':', "-")
            } else {
                synthetic_mac(i + 1)
            };
            Ok(Device {
                identity: args.identity.clone().unwrap_or(name),
                calling_station_id,
                tls: client_config(roots, args.tls, load_certs(&cert)?, load_key(&key)?)?,
            })
        })
        .collect()
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.server.ip().is_loopback() {
        bail!("--server: loopback addresses only");
    }
    if args.concurrency == 0 || args.concurrency > 4096 {
        bail!("--concurrency: 1 to 4096");
    }
    if !(16..=3000).contains(&args.fragment_size) {
        bail!("--fragment-size: 16 to 3000 bytes");
    }
    if args.threads == 0 || args.threads > 64 {
        bail!("--threads: 1 to 64");
    }
    if args.duration_limit == 0 || args.duration_limit > 86_400 {
        bail!("--duration-limit: 1 to 86400 s");
    }
    let mut roots = RootCertStore::empty();
    for ca in load_certs(&args.ca)? {
        roots
            .add(ca)
            .with_context(|| format!("{}: CA certificate", args.ca.display()))?;
    }
    let roots = Arc::new(roots);
    let devices = load_devices(&args, &roots)?;
    let ctx = Arc::new(Ctx {
        server_name: ServerName::try_from(args.server_name.clone()).context("--server-name")?,
        key: Key::new(args.secret.as_bytes()),
        secret: args.secret.as_bytes().to_vec(),
        devices,
        tls: args.tls,
        fragment_size: args.fragment_size,
        timeout: Duration::from_millis(args.timeout_ms.max(1)),
        retries: args.retries.min(10),
        called_station_id: args.called_station_id.clone(),
        expect_vlan: args.expect_vlan.clone(),
        verify_keys: !args.no_verify_keys,
    });

    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };

    let server_cpu0 = args.server_pid.map(cpu_seconds).transpose()?;
    let own0 = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let start = Instant::now();
    let stats = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(args.duration_limit);
        let next = Arc::new(AtomicU64::new(0));
        let workers = args.concurrency.min(args.count.max(1) as usize);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            tasks.spawn(worker(
                ctx.clone(),
                args.server,
                next.clone(),
                args.count,
                deadline,
                args.verbose,
            ));
        }
        let mut total = Stats::default();
        while let Some(r) = tasks.join_next().await {
            total.merge(r??);
        }
        Ok::<_, anyhow::Error>(total)
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let own = cpu_seconds(std::process::id()).unwrap_or(0.0) - own0;
    let mut latencies = stats.latencies_us.clone();
    latencies.sort_unstable();
    let pct = |q: f64| -> u32 {
        if latencies.is_empty() {
            return 0;
        }
        latencies[((latencies.len() as f64 - 1.0) * q).round() as usize]
    };
    let accepts = stats.accepts;
    let per_auth = |cpu_s: f64| cpu_s * 1e3 / accepts.max(1) as f64;
    let server_ms = match (args.server_pid, server_cpu0) {
        (Some(pid), Some(c0)) if accepts > 0 => Some(per_auth(cpu_seconds(pid)? - c0)),
        _ => None,
    };
    let rate = accepts as f64 / elapsed;
    let rtt = stats.round_trips as f64 / stats.started.max(1) as f64;
    let not_accepted = stats.rejects + stats.timeouts + stats.failures + stats.unfinished;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "tls": args.tls.as_str(), "concurrency": args.concurrency,
                "fragment_size": args.fragment_size, "devices": ctx.devices.len(),
                "started": stats.started, "accepts": accepts, "rejects": stats.rejects,
                "timeouts": stats.timeouts, "failures": stats.failures,
                "unfinished": stats.unfinished, "reasons": stats.reasons,
                "retransmits": stats.retransmits, "invalid_replies": stats.invalid_replies,
                "round_trips_per_auth": rtt,
                "success_indications": stats.success_indications,
                "elapsed_s": elapsed, "auths_per_s": rate,
                "p50_us": pct(0.50), "p99_us": pct(0.99),
                "max_us": latencies.last().copied().unwrap_or(0),
                "client_cpu_ms_per_auth": per_auth(own),
                "server_cpu_ms_per_auth": server_ms,
            })
        );
    } else {
        println!(
            "started {}  accepted {accepts}  rejected {}  timed out {}  failed {}  unfinished {}",
            stats.started, stats.rejects, stats.timeouts, stats.failures, stats.unfinished
        );
        for (why, n) in &stats.reasons {
            println!("  {n} × {why}");
        }
        println!(
            "{rate:.1} EAP-TLS {} authentications/s over {elapsed:.2} s at concurrency {}; \
             {rtt:.1} round trips each, {} retransmissions, {} invalid replies",
            args.tls.as_str(),
            args.concurrency,
            stats.retransmits,
            stats.invalid_replies
        );
        if args.tls == Tls::V13 {
            println!(
                "{} of {accepts} accepts after the RFC 9190 success indication (0x00)",
                stats.success_indications
            );
        }
        println!(
            "latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            f64::from(pct(0.50)) / 1000.0,
            f64::from(pct(0.99)) / 1000.0,
            f64::from(latencies.last().copied().unwrap_or(0)) / 1000.0
        );
        println!("client CPU {:.3} ms/authentication", per_auth(own));
        if let Some(s) = server_ms {
            println!("server CPU {s:.3} ms/authentication");
        }
    }
    if args.fail_on_error && (not_accepted > 0 || accepts == 0) {
        bail!(
            "{not_accepted} of {} authentications not accepted",
            stats.started
        );
    }
    Ok(())
}
