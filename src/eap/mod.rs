//! 802.1X EAP (RFC 3748) carried in RADIUS (RFC 3579), with EAP-TLS (RFC 5216, RFC 9190):
//! the conversation engine. It takes the reassembled EAP-Message and the State of one
//! Access-Request and says what to answer; it knows no sockets and no registry, and the
//! time is passed in.

pub mod eaptls;
pub mod packet;
pub mod record;
pub mod table;
#[cfg(any(test, feature = "sim"))]
pub mod testpki;
pub mod tls;

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use self::eaptls::{EapTls, Established, Step};
use self::packet::{code, typ, EapPacket};
use self::table::{Peer, StateKey, Table, TakeError};
use self::tls::{FailureKind, Refusal, TlsFailure, TlsServer};

/// Settings of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EapSettings {
    /// TLS data per EAP-TLS packet.
    pub fragment_size: usize,
    /// Unfinished conversations kept.
    pub max_conversations: usize,
    /// Idle time after which a conversation is dropped.
    pub conversation_timeout: Duration,
}

/// Why a conversation ended without success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EapFailure {
    /// The peer refused EAP-TLS (a Nak without type 13).
    MethodRefused {
        /// The types the peer asked for instead.
        wanted: Vec<u8>,
    },
    /// The TLS handshake failed.
    Tls(TlsFailure),
    /// The peer broke the EAP rules (a response of the wrong type, too many rounds).
    Protocol(String),
    /// The certificate verified, but the caller's judgement refused the device it names;
    /// the supplicant heard it as a TLS alert inside the handshake.
    Refused {
        /// The client's leaf certificate (DER), to record the decision under its device.
        certificate: Vec<u8>,
    },
}

impl std::fmt::Display for EapFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EapFailure::MethodRefused { wanted } => {
                write!(
                    f,
                    "the supplicant refused EAP-TLS (it asked for EAP types {wanted:?})"
                )
            }
            EapFailure::Tls(e) => write!(f, "EAP-TLS failed: {e}"),
            EapFailure::Protocol(m) => write!(f, "EAP protocol error: {m}"),
            EapFailure::Refused { .. } => {
                f.write_str("the device was refused inside the TLS handshake")
            }
        }
    }
}

impl EapFailure {
    /// Whether the failure is about the client certificate (as opposed to the protocol).
    pub fn is_certificate(&self) -> bool {
        matches!(
            self,
            EapFailure::Tls(TlsFailure {
                kind: FailureKind::BadCertificate | FailureKind::NoCertificate,
                ..
            })
        )
    }
}

/// What to answer an Access-Request carrying EAP.
#[derive(Debug)]
pub enum Answer {
    /// Access-Challenge with this EAP packet and State.
    Challenge {
        /// The EAP-Request.
        eap: Vec<u8>,
        /// The State attribute.
        state: StateKey,
    },
    /// The method succeeded: the caller decides on the device and answers Access-Accept
    /// with an EAP-Success of `eap_id` (or Access-Reject with an EAP-Failure of it).
    Authenticated {
        /// The identity the peer gave.
        identity: String,
        /// The identifier for the EAP-Success or EAP-Failure.
        eap_id: u8,
        /// Certificate, version and keys.
        tls: Box<Established>,
    },
    /// Access-Reject with an EAP-Failure of `eap_id`.
    Failed {
        /// The identity the peer gave (empty if none yet).
        identity: String,
        /// The identifier for the EAP-Failure.
        eap_id: u8,
        /// Why.
        why: EapFailure,
    },
    /// Send nothing (a stale or foreign State, a response to an old request); counted by
    /// the caller.
    Discard(&'static str),
    /// A TLS 1.2 handshake waits for the caller's judgement of the client certificate
    /// ([`Suspended::certificate`]): look the device up, decide, and hand it back to
    /// [`EapServer::resume`]. Its State stays taken (retransmissions are discarded) until then.
    Judge(Box<Suspended>),
}

/// A conversation waiting for the judgement of its client certificate.
pub struct Suspended {
    peer: Peer,
    key: StateKey,
    eap_id: u8,
    certificate: Vec<u8>,
    conv: Conversation,
}

impl Suspended {
    /// The client's leaf certificate (DER), verified against the trusted CAs only once the
    /// handshake resumes: the judgement concerns the device it would name.
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// The identity the peer gave.
    pub fn identity(&self) -> &str {
        &self.conv.identity
    }
}

impl std::fmt::Debug for Suspended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suspended")
            .field("eap_id", &self.eap_id)
            .field("identity", &self.conv.identity)
            .finish_non_exhaustive()
    }
}

/// The most rounds one conversation may take (ECDSA needs 4-5 at 1 KiB fragments; RSA chains
/// at 64-byte fragments need about 100).
const MAX_ROUNDS: u32 = 400;

/// EAP header (5) + flags (1) + TLS message length (4): what an EAP-TLS fragment adds to its
/// TLS data inside one EAPOL frame.
const EAP_TLS_OVERHEAD: u32 = 10;

struct Conversation {
    identity: String,
    /// The identifier of the last request sent: the response must carry it.
    last_id: u8,
    rounds: u32,
    /// Started by an EAP-Start: the next response is the identity.
    awaiting_identity: bool,
    method: Option<EapTls>,
    /// The TLS alert went out; whatever the peer answers, the conversation fails with this.
    failing: Option<EapFailure>,
    /// The certificate judged during the handshake (for [`EapFailure::Refused`]).
    judged: Option<Vec<u8>>,
}

/// One Access-Request's EAP part.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The RADIUS client entry and the request's source address.
    pub peer: Peer,
    /// The State attribute, if any.
    pub state: Option<&'a [u8]>,
    /// The concatenated EAP-Message attributes.
    pub eap: &'a [u8],
    /// Framed-MTU: the largest EAP packet the AP can carry to the supplicant.
    pub framed_mtu: Option<u32>,
}

/// The EAP engine shared by the listener tasks.
pub struct EapServer {
    /// Replaced whole at a reload (a renewed server certificate, other trusted CAs): a new
    /// conversation takes the one in force, an open one keeps the session it began with.
    tls: arc_swap::ArcSwap<TlsServer>,
    settings: EapSettings,
    table: Mutex<Table<Conversation>>,
}

impl std::fmt::Debug for EapServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EapServer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(253)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl EapServer {
    /// An engine over a TLS server configuration.
    pub fn new(tls: TlsServer, settings: EapSettings) -> EapServer {
        let table = Table::new(settings.max_conversations, settings.conversation_timeout);
        EapServer {
            tls: arc_swap::ArcSwap::from_pointee(tls),
            settings,
            table: Mutex::new(table),
        }
    }

    /// The table, locked. Use it in one statement (`self.table().put(..)`), never in a
    /// `match`/`if let` scrutinee: the guard would outlive the look-up and deadlock the next
    /// `table()` in the same arm.
    fn table(&self) -> std::sync::MutexGuard<'_, Table<Conversation>> {
        crate::sync::lock(&self.table)
    }

    /// The engine's settings.
    pub fn settings(&self) -> &EapSettings {
        &self.settings
    }

    /// Puts another TLS server configuration (certificate, key, trusted CAs) in force for
    /// the conversations that begin from now on; the open ones go on with theirs.
    pub fn replace_tls(&self, tls: TlsServer) {
        self.tls.store(std::sync::Arc::new(tls));
    }

    /// Unfinished conversations, and those dropped for room and for idling so far.
    pub fn conversations(&self) -> (usize, u64, u64) {
        let t = self.table();
        let (evicted, expired) = t.dropped();
        (t.len(), evicted, expired)
    }

    /// Drops idle conversations (also done on every new one).
    pub fn sweep(&self, now: Instant) {
        self.table().sweep(now);
    }

    /// Answers the EAP part of one Access-Request.
    pub fn handle(&self, input: Incoming<'_>, now: Instant, wall: SystemTime) -> Answer {
        let peer = input.peer;
        if input.eap.is_empty() {
            // EAP-Start (RFC 3579 §2.6.3): the NAS asks us to begin; ask for the identity
            let id: u8 = rand::random();
            return self.begin(peer, String::new(), id, now, true);
        }
        let p = match EapPacket::parse(input.eap) {
            Ok(p) if p.code == code::RESPONSE => p,
            Ok(_) => return Answer::Discard("an EAP packet that is not a Response"),
            Err(_) => return Answer::Discard("a malformed EAP packet"),
        };
        let failed = |why: String| Answer::Failed {
            identity: String::new(),
            eap_id: p.id,
            why: EapFailure::Protocol(why),
        };
        // RFC 3748 §4.1: our request carries a new identifier, the response's plus one
        let next_id = p.id.wrapping_add(1);
        let key = match input.state.map(StateKey::try_from) {
            None => None,
            Some(Ok(key)) => Some(key),
            Some(Err(_)) => {
                return failed("a State that this server did not send".into());
            }
        };
        let Some(key) = key else {
            // a new conversation starts with the peer's identity
            if p.typ != Some(typ::IDENTITY) {
                return failed("a conversation must start with EAP-Response/Identity".into());
            }
            return self.begin(peer, printable(p.data), next_id, now, false);
        };
        // the guard must end with this statement: the arms below lock the table again
        // (`begin`, `remove`), and a guard in a `match` scrutinee would live through them
        let taken = self.table().take(&key, peer, now);
        let conv = match taken {
            Ok(c) => c,
            // another request of this conversation is being answered (the NAS's
            // retransmissions are answered from the duplicate cache)
            Err(TakeError::Busy) => {
                return Answer::Discard("a conversation already being answered")
            }
            Err(TakeError::OtherPeer) => {
                return Answer::Discard("a State that belongs to another client or access point")
            }
            // some NASes copy the last State into a restarted authentication
            Err(TakeError::Unknown) if p.typ == Some(typ::IDENTITY) => {
                return self.begin(peer, printable(p.data), next_id, now, false);
            }
            Err(TakeError::Unknown) => {
                // FreeRADIUS answers the same: the supplicant starts over at once instead
                // of waiting out its timeout
                return failed(
                    "an EAP response to a conversation this server does not know (expired, dropped for room, or from before a restart)".into(),
                );
            }
        };
        if p.typ == Some(typ::IDENTITY) && !conv.awaiting_identity {
            // a supplicant that restarted: a fresh conversation replaces the old one
            self.table().remove(&key);
            return self.begin(peer, printable(p.data), next_id, now, false);
        }
        self.step(peer, key, conv, p, input.framed_mtu, now, wall)
    }

    fn begin(
        &self,
        peer: Peer,
        identity: String,
        id: u8,
        now: Instant,
        ask_identity: bool,
    ) -> Answer {
        let key: StateKey = rand::random();
        let eap = if ask_identity {
            packet::request(id, typ::IDENTITY, &[])
        } else {
            packet::request(id, typ::TLS, &EapTls::start())
        };
        let conv = Conversation {
            identity,
            last_id: id,
            rounds: 0,
            awaiting_identity: ask_identity,
            method: None,
            failing: None,
            judged: None,
        };
        self.table().put(key, peer, conv, now);
        Answer::Challenge { eap, state: key }
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        peer: Peer,
        key: StateKey,
        mut conv: Conversation,
        p: EapPacket<'_>,
        framed_mtu: Option<u32>,
        now: Instant,
        wall: SystemTime,
    ) -> Answer {
        if p.id != conv.last_id {
            // a response to an earlier request: silently discarded, RFC 3748 §4.1; the
            // conversation stays
            self.table().put(key, peer, conv, now);
            return Answer::Discard("an EAP response to an earlier request");
        }
        let fail = |conv: Conversation, why: EapFailure| {
            self.table().remove(&key);
            Answer::Failed {
                identity: conv.identity,
                eap_id: p.id,
                why,
            }
        };
        if let Some(why) = conv.failing.take() {
            // the peer acknowledged our alert (or said something else): the end
            return fail(conv, why);
        }
        conv.rounds += 1;
        if conv.rounds > MAX_ROUNDS {
            return fail(
                conv,
                EapFailure::Protocol(format!("more than {MAX_ROUNDS} rounds")),
            );
        }
        let data = match p.typ {
            Some(typ::IDENTITY) => {
                // the identity after an EAP-Start
                conv.identity = printable(p.data);
                conv.awaiting_identity = false;
                return self.next(peer, key, conv, EapTls::start(), now);
            }
            Some(typ::NAK) if conv.method.is_none() => {
                if p.data.contains(&typ::TLS) {
                    return self.next(peer, key, conv, EapTls::start(), now);
                }
                let wanted = p.data.to_vec();
                return fail(conv, EapFailure::MethodRefused { wanted });
            }
            Some(typ::EXPANDED) if conv.method.is_none() => {
                // an Expanded Nak (vendor 0, type 3) lists 8-byte expanded types
                return fail(
                    conv,
                    EapFailure::MethodRefused {
                        wanted: vec![typ::EXPANDED],
                    },
                );
            }
            Some(typ::TLS) => p.data,
            Some(other) => {
                return fail(
                    conv,
                    EapFailure::Protocol(format!("an EAP response of type {other} in EAP-TLS")),
                )
            }
            None => {
                return fail(
                    conv,
                    EapFailure::Protocol("an EAP response without a type".into()),
                )
            }
        };
        if conv.method.is_none() {
            match self.tls.load().session() {
                Ok(s) => conv.method = Some(EapTls::new(s, self.fragment_size(framed_mtu))),
                Err(e) => return fail(conv, EapFailure::Tls(e)),
            }
        }
        let Some(method) = conv.method.as_mut() else {
            return fail(conv, EapFailure::Protocol("no EAP-TLS session".into()));
        };
        let step = method.on_response(data, wall);
        self.after(peer, key, conv, step, p.id, now, wall)
    }

    /// Goes on with a conversation after the caller judged its client certificate:
    /// `refusal` ends the handshake with that TLS alert (then an EAP-Failure, whatever the
    /// peer answers), `None` lets it finish.
    pub fn resume(
        &self,
        suspended: Box<Suspended>,
        refusal: Option<Refusal>,
        now: Instant,
        wall: SystemTime,
    ) -> Answer {
        let Suspended {
            peer,
            key,
            eap_id,
            certificate,
            mut conv,
        } = *suspended;
        conv.judged = Some(certificate);
        let step = match conv.method.as_mut() {
            Some(method) => method.resume(refusal, wall),
            None => Step::Fail(TlsFailure {
                kind: FailureKind::Protocol,
                message: "no EAP-TLS session to resume".into(),
            }),
        };
        self.after(peer, key, conv, step, eap_id, now, wall)
    }

    /// What one EAP-TLS step means for the conversation; `eap_id` is the identifier of the
    /// response it answers.
    #[allow(clippy::too_many_arguments)]
    fn after(
        &self,
        peer: Peer,
        key: StateKey,
        mut conv: Conversation,
        step: Step,
        eap_id: u8,
        now: Instant,
        wall: SystemTime,
    ) -> Answer {
        let fail = |conv: Conversation, why: EapFailure| {
            self.table().remove(&key);
            Answer::Failed {
                identity: conv.identity,
                eap_id,
                why,
            }
        };
        match step {
            Step::Send(next) => self.next(peer, key, conv, next, now),
            // RFC 3748 §4.2: a Success carries the identifier of the response it answers
            Step::Done(tls) => {
                self.table().remove(&key);
                Answer::Authenticated {
                    identity: conv.identity,
                    eap_id,
                    tls,
                }
            }
            Step::Fail(e) => fail(conv, EapFailure::Tls(e)),
            Step::Alert(alert, e) => {
                conv.failing = Some(match (e.kind, conv.judged.take()) {
                    (FailureKind::Refused, Some(certificate)) => {
                        EapFailure::Refused { certificate }
                    }
                    _ => EapFailure::Tls(e),
                });
                self.next(peer, key, conv, alert, now)
            }
            // a chain that does not verify is not worth a registry read: rustls refuses it
            // (bad_certificate) when the handshake goes on
            Step::Judge(certificate)
                if !conv.method.as_ref().is_some_and(|m| {
                    self.tls
                        .load()
                        .chain_verifies(&certificate, m.intermediates(), wall)
                }) =>
            {
                let step = match conv.method.as_mut() {
                    Some(method) => method.resume(None, wall),
                    None => Step::Fail(TlsFailure {
                        kind: FailureKind::Protocol,
                        message: "no EAP-TLS session to resume".into(),
                    }),
                };
                self.after(peer, key, conv, step, eap_id, now, wall)
            }
            // the slot stays taken (busy) while the caller judges
            Step::Judge(certificate) => Answer::Judge(Box::new(Suspended {
                peer,
                key,
                eap_id,
                certificate,
                conv,
            })),
        }
    }

    /// The TLS data per EAP-TLS packet: the configured size, smaller where the AP's
    /// Framed-MTU would not carry it (EAPOL frames cannot be fragmented).
    fn fragment_size(&self, framed_mtu: Option<u32>) -> usize {
        let configured = self.settings.fragment_size;
        match framed_mtu {
            Some(mtu) if mtu >= 64 + EAP_TLS_OVERHEAD => {
                configured.min((mtu - EAP_TLS_OVERHEAD) as usize)
            }
            _ => configured,
        }
    }

    fn next(
        &self,
        peer: Peer,
        key: StateKey,
        mut conv: Conversation,
        tls_data: Vec<u8>,
        now: Instant,
    ) -> Answer {
        let id = conv.last_id.wrapping_add(1);
        conv.last_id = id;
        let eap = packet::request(id, typ::TLS, &tls_data);
        self.table().put(key, peer, conv, now);
        Answer::Challenge { eap, state: key }
    }
}

#[cfg(test)]
mod tests {
    use super::tls::tests::{client, pki, server};
    use super::*;
    use crate::config::tls::TlsVersion;
    use eaptls::{FLAG_L, FLAG_M, FLAG_S};

    fn engine(max: usize) -> (EapServer, super::tls::tests::Pki) {
        let p = pki();
        let srv = server(&p, TlsVersion::Tls12, TlsVersion::Tls13);
        let e = EapServer::new(
            srv,
            EapSettings {
                fragment_size: 1024,
                max_conversations: max,
                conversation_timeout: Duration::from_secs(30),
            },
        );
        (e, p)
    }

    fn h(e: &EapServer, client: usize, state: Option<&[u8]>, eap: &[u8], now: Instant) -> Answer {
        let peer = (client, std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let input = Incoming {
            peer,
            state,
            eap,
            framed_mtu: None,
        };
        e.handle(input, now, SystemTime::now())
    }

    fn identity(id: u8, name: &str) -> Vec<u8> {
        let mut v = vec![code::RESPONSE, id, 0, 0, typ::IDENTITY];
        v.extend_from_slice(name.as_bytes());
        let len = v.len() as u16;
        v[2..4].copy_from_slice(&len.to_be_bytes());
        v
    }

    fn response(id: u8, t: u8, data: &[u8]) -> Vec<u8> {
        let mut v = packet::request(id, t, data);
        v[0] = code::RESPONSE;
        v
    }

    /// A whole conversation through the engine with a rustls supplicant (no fragmentation
    /// on the peer side: the in-memory method tests cover that).
    #[test]
    fn identity_tls_success_with_state_and_ids() {
        let (e, p) = engine(10);
        let now = Instant::now();
        let Answer::Challenge { eap, state } =
            h(&e, 1, None, &identity(7, "host/laptop-anna"), now)
        else {
            panic!("expected a challenge")
        };
        let start = EapPacket::parse(&eap).unwrap();
        assert_eq!((start.typ, start.data), (Some(typ::TLS), &[FLAG_S][..]));
        let mut c = client(
            &p.ca,
            Some((p.client_chain.clone(), p.client_key.clone())),
            TlsVersion::Tls13,
        );
        let mut req_id = start.id;
        let mut inbound = Vec::new();
        for _ in 0..20 {
            let mut out = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut out).unwrap();
            }
            let mut data = vec![0u8];
            data.extend_from_slice(&out);
            let ans = h(&e, 1, Some(&state), &response(req_id, typ::TLS, &data), now);
            match ans {
                Answer::Challenge { eap, state: s2 } => {
                    assert_eq!(s2, state);
                    let r = EapPacket::parse(&eap).unwrap();
                    assert_eq!(r.id, req_id.wrapping_add(1));
                    req_id = r.id;
                    let mut d = r.data;
                    let flags = d[0];
                    d = &d[1..];
                    if flags & FLAG_L != 0 {
                        d = &d[4..];
                    }
                    inbound.extend_from_slice(d);
                    if flags & FLAG_M == 0 && !inbound.is_empty() {
                        c.read_tls(&mut &inbound[..]).unwrap();
                        c.process_new_packets().unwrap();
                        inbound.clear();
                    }
                }
                Answer::Authenticated {
                    identity,
                    eap_id,
                    tls,
                } => {
                    assert_eq!(identity, "host/laptop-anna");
                    assert_eq!(eap_id, req_id);
                    assert_eq!(tls.peer_certificate, p.client_chain[0].as_ref());
                    assert_eq!(e.conversations().0, 0);
                    return;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("did not finish");
    }

    /// Runs a whole conversation with a rustls supplicant of `version`, answering a judgement
    /// with `refusal`; returns the final answer, the supplicant, and whether it was asked.
    fn converse(
        version: TlsVersion,
        refusal: Option<Refusal>,
    ) -> (
        Answer,
        rustls::ClientConnection,
        bool,
        super::tls::tests::Pki,
    ) {
        converse_as(version, refusal, None)
    }

    /// [`converse`], the supplicant presenting `presented` instead of the test PKI's device.
    fn converse_as(
        version: TlsVersion,
        refusal: Option<Refusal>,
        presented: Option<(Vec<rustls::pki_types::CertificateDer<'static>>, Vec<u8>)>,
    ) -> (
        Answer,
        rustls::ClientConnection,
        bool,
        super::tls::tests::Pki,
    ) {
        let (e, p) = engine(10);
        let now = Instant::now();
        let Answer::Challenge { eap, state } = h(&e, 1, None, &identity(7, "host/judged"), now)
        else {
            panic!("expected a challenge")
        };
        let presented = presented.unwrap_or_else(|| (p.client_chain.clone(), p.client_key.clone()));
        let mut c = client(&p.ca, Some(presented), version);
        let mut req_id = EapPacket::parse(&eap).unwrap().id;
        let mut judged = false;
        let mut inbound = Vec::new();
        for _ in 0..40 {
            let mut out = Vec::new();
            while inbound.is_empty() && c.wants_write() {
                c.write_tls(&mut out).unwrap();
            }
            let mut data = vec![0u8];
            data.extend_from_slice(&out);
            let mut ans = h(&e, 1, Some(&state), &response(req_id, typ::TLS, &data), now);
            if let Answer::Judge(s) = ans {
                assert_eq!(s.identity(), "host/judged");
                // the State stays taken while the caller judges
                assert!(matches!(
                    h(&e, 1, Some(&state), &response(req_id, typ::TLS, &data), now),
                    Answer::Discard(_)
                ));
                judged = true;
                ans = e.resume(s, refusal, now, SystemTime::now());
            }
            match ans {
                Answer::Challenge { eap, .. } => {
                    let r = EapPacket::parse(&eap).unwrap();
                    req_id = r.id;
                    let flags = r.data[0];
                    let skip = if flags & FLAG_L != 0 { 5 } else { 1 };
                    inbound.extend_from_slice(&r.data[skip..]);
                    if flags & FLAG_M == 0 {
                        c.read_tls(&mut &inbound[..]).unwrap();
                        let _ = c.process_new_packets();
                        inbound.clear();
                    }
                    // else: the next response is empty, acknowledging the fragment
                }
                done => return (done, c, judged, p),
            }
        }
        panic!("did not finish");
    }

    /// Issue 10: under TLS 1.2 the device is judged before the server's Finished leaves, and
    /// a refusal reaches the supplicant as a TLS alert, not after a finished handshake.
    #[test]
    fn tls12_refusal_is_an_alert_inside_the_handshake() {
        for (refusal, alert) in [
            (
                Refusal::Revoked,
                rustls::AlertDescription::CertificateRevoked,
            ),
            (Refusal::Denied, rustls::AlertDescription::AccessDenied),
        ] {
            let (ans, mut c, judged, p) = converse(TlsVersion::Tls12, Some(refusal));
            assert!(judged);
            match ans {
                Answer::Failed {
                    why: EapFailure::Refused { certificate },
                    identity,
                    ..
                } => {
                    assert_eq!(certificate, p.client_chain[0].as_ref());
                    assert_eq!(identity, "host/judged");
                }
                other => panic!("{other:?}"),
            }
            // the supplicant never saw our Finished, and heard why
            assert!(c.is_handshaking());
            assert_eq!(
                c.process_new_packets().err(),
                Some(rustls::Error::AlertReceived(alert))
            );
        }
        // allowed: the handshake finishes as before
        let (ans, c, judged, _) = converse(TlsVersion::Tls12, None);
        assert!(judged);
        assert!(matches!(ans, Answer::Authenticated { .. }), "{ans:?}");
        assert!(!c.is_handshaking());
        // TLS 1.3 encrypts the certificate and sent its Finished first: decided after
        let (ans, _, judged, _) = converse(TlsVersion::Tls13, Some(Refusal::Revoked));
        assert!(!judged);
        assert!(matches!(ans, Answer::Authenticated { .. }), "{ans:?}");
    }

    /// A certificate that does not chain to a trusted CA is never worth a registry read: the
    /// handshake goes on and rustls refuses it, as before.
    #[test]
    fn a_foreign_chain_is_not_judged() {
        let (_, other) = super::testpki::make_ca("other CA");
        let (cert, key) = super::testpki::leaf(&other, "intruder", false);
        let (ans, _, judged, _) = converse_as(TlsVersion::Tls12, None, Some((vec![cert], key)));
        assert!(!judged);
        match ans {
            Answer::Failed {
                why: EapFailure::Tls(f),
                ..
            } => assert_eq!(f.kind, FailureKind::BadCertificate),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nak_without_tls_fails_and_nak_with_tls_restarts() {
        let (e, _) = engine(10);
        let now = Instant::now();
        let Answer::Challenge { eap, state } = h(&e, 0, None, &identity(1, "x"), now) else {
            panic!()
        };
        let id = EapPacket::parse(&eap).unwrap().id;
        // a Nak asking for PEAP (25) and TTLS (21)
        match h(&e, 0, Some(&state), &response(id, typ::NAK, &[25, 21]), now) {
            Answer::Failed {
                why: EapFailure::MethodRefused { wanted },
                eap_id,
                ..
            } => {
                assert_eq!(wanted, vec![25, 21]);
                assert_eq!(eap_id, id);
            }
            other => panic!("{other:?}"),
        }
        let Answer::Challenge { eap, state } = h(&e, 0, None, &identity(1, "x"), now) else {
            panic!()
        };
        let id = EapPacket::parse(&eap).unwrap().id;
        match h(&e, 0, Some(&state), &response(id, typ::NAK, &[25, 13]), now) {
            Answer::Challenge { eap, .. } => {
                let r = EapPacket::parse(&eap).unwrap();
                assert_eq!(r.data, &[FLAG_S]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stale_foreign_and_old_ids_are_discarded() {
        let (e, _) = engine(10);
        let now = Instant::now();
        let Answer::Challenge { eap, state } = h(&e, 0, None, &identity(1, "x"), now) else {
            panic!()
        };
        let id = EapPacket::parse(&eap).unwrap().id;
        assert!(matches!(
            h(&e, 3, Some(&state), &response(id, typ::TLS, &[0]), now),
            Answer::Discard(_)
        ));
        assert!(matches!(
            h(
                &e,
                0,
                Some(&state),
                &response(id.wrapping_sub(1), typ::TLS, &[0]),
                now
            ),
            Answer::Discard(_)
        ));
        // a State this server does not know: a reject, so the supplicant starts over now
        assert!(matches!(
            h(&e, 0, Some(&[1u8; 16]), &response(id, typ::TLS, &[0]), now),
            Answer::Failed { eap_id, .. } if eap_id == id
        ));
        assert!(matches!(
            h(&e, 0, Some(&[1u8; 3]), &response(id, typ::TLS, &[0]), now),
            Answer::Failed { .. }
        ));
        // the conversation survived the wrong-client and old-id attempts
        assert_eq!(e.conversations().0, 1);
        // and times out
        e.sweep(now + Duration::from_secs(31));
        assert_eq!(e.conversations(), (0, 0, 1));
        assert!(matches!(
            h(
                &e,
                0,
                Some(&state),
                &response(id, typ::TLS, &[0]),
                now + Duration::from_secs(31)
            ),
            Answer::Failed { .. }
        ));
    }

    #[test]
    fn eap_start_asks_for_identity_and_garbage_is_discarded() {
        let (e, _) = engine(10);
        let now = Instant::now();
        let Answer::Challenge { eap, state } = h(&e, 0, None, &[], now) else {
            panic!()
        };
        let r = EapPacket::parse(&eap).unwrap();
        assert_eq!(r.typ, Some(typ::IDENTITY));
        match h(&e, 0, Some(&state), &identity(r.id, "late"), now) {
            Answer::Challenge { eap, .. } => {
                assert_eq!(EapPacket::parse(&eap).unwrap().data, &[FLAG_S]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            h(&e, 0, None, &[2, 1, 0], now),
            Answer::Discard(_)
        ));
        assert!(matches!(
            h(&e, 0, None, &[1, 1, 0, 5, 1], now),
            Answer::Discard(_)
        ));
        assert!(matches!(
            h(&e, 0, None, &response(1, typ::TLS, &[0]), now),
            Answer::Failed { .. }
        ));
    }

    /// Issue 10: an Identity with a State this server does not know begins a new
    /// conversation; it once re-locked the table from inside the `match` on its guard.
    #[test]
    fn identity_with_an_unknown_state_begins_without_deadlock() {
        let (e, _) = engine(10);
        let e = std::sync::Arc::new(e);
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = e.clone();
        std::thread::spawn(move || {
            let now = Instant::now();
            let first = h(&worker, 0, Some(&[0x11; 16]), &identity(2, "host/x"), now);
            let second = h(&worker, 0, None, &identity(3, "host/y"), now);
            let _ = tx.send((first, second));
        });
        let (first, second) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the engine answers (no deadlock)");
        let Answer::Challenge { state, .. } = first else {
            panic!("{first:?}")
        };
        assert_ne!(state, [0x11; 16], "a fresh State, not the forgotten one");
        assert!(matches!(second, Answer::Challenge { .. }));
        assert_eq!(e.conversations().0, 2);
    }

    #[test]
    fn abandoned_conversations_are_bounded() {
        let (e, _) = engine(100);
        let now = Instant::now();
        for i in 0..1000u32 {
            let _ = h(&e, 0, None, &identity(1, &format!("bot{i}")), now);
        }
        let (held, evicted, _) = e.conversations();
        assert_eq!(held, 100);
        assert_eq!(evicted, 900);
    }
}
