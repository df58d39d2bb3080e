//! The EAP-TLS method (RFC 5216 §2, RFC 9190): the flags byte, fragmentation in both
//! directions with the L and M bits and the TLS message length, and the round trips until
//! the handshake is done. TLS itself is in [`super::tls`].

use std::time::SystemTime;

use super::tls::{EapKeys, FailureKind, Refusal, TlsFailure, TlsSession};
use crate::config::tls::TlsVersion;

/// Length included: a four-byte TLS Message Length follows the flags.
pub const FLAG_L: u8 = 0x80;
/// More fragments follow.
pub const FLAG_M: u8 = 0x40;
/// EAP-TLS Start (server to peer).
pub const FLAG_S: u8 = 0x20;

/// The largest TLS flight accepted from a peer: a client flight is its certificate chain plus
/// about 1 KiB, so this leaves room for long RSA chains while bounding what an unfinished
/// conversation can hold.
pub const MAX_MESSAGE: usize = 32 * 1024;

/// What to do after a response.
#[derive(Debug)]
pub enum Step {
    /// Send an EAP-Request/TLS with this type data.
    Send(Vec<u8>),
    /// The handshake is done and the peer acknowledged the last flight.
    Done(Box<Established>),
    /// Give up: send an EAP-Failure.
    Fail(TlsFailure),
    /// Give up after telling the peer why: send this EAP-Request/TLS (a TLS alert), then an
    /// EAP-Failure whatever the peer answers (RFC 5216 §2.1.3).
    Alert(Vec<u8>, TlsFailure),
    /// A TLS 1.2 client flight with this leaf certificate (DER) is held: judge the device,
    /// then call [`EapTls::resume`] before the handshake may finish.
    Judge(Vec<u8>),
}

/// A finished handshake: what the server needs for its decision and its Access-Accept.
#[derive(Debug)]
pub struct Established {
    /// The peer's verified end-entity certificate (DER).
    pub peer_certificate: Vec<u8>,
    /// The version used.
    pub version: TlsVersion,
    /// MSK and EMSK.
    pub keys: EapKeys,
}

/// One EAP-TLS exchange.
pub struct EapTls {
    tls: TlsSession,
    fragment: usize,
    /// The peer's message being reassembled, and the length its L bit announced.
    inbound: Vec<u8>,
    announced: Option<usize>,
    /// Our message being sent in fragments, and how much the peer has acknowledged.
    outbound: Vec<u8>,
    sent: usize,
    /// The client flight held while its certificate is judged.
    held: Vec<u8>,
    /// The judgement, once given: `Some(None)` lets the handshake go on.
    verdict: Option<Option<Refusal>>,
    /// The intermediates the held flight carried after its leaf.
    intermediates: Vec<Vec<u8>>,
}

impl std::fmt::Debug for EapTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EapTls")
            .field("inbound", &self.inbound.len())
            .field("outbound", &self.outbound.len())
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

fn protocol(message: impl Into<String>) -> TlsFailure {
    TlsFailure {
        kind: FailureKind::Protocol,
        message: message.into(),
    }
}

impl EapTls {
    /// A new exchange over `tls`, sending at most `fragment` bytes of TLS data per packet.
    pub fn new(tls: TlsSession, fragment: usize) -> EapTls {
        EapTls {
            tls,
            fragment: fragment.max(16),
            inbound: Vec::new(),
            announced: None,
            outbound: Vec::new(),
            sent: 0,
            held: Vec::new(),
            verdict: None,
            intermediates: Vec::new(),
        }
    }

    /// The type data of the first request: EAP-TLS Start.
    pub fn start() -> Vec<u8> {
        vec![FLAG_S]
    }

    /// Handles the type data of an EAP-Response/TLS from the peer at `now`.
    pub fn on_response(&mut self, data: &[u8], now: SystemTime) -> Step {
        let Some((&flags, mut rest)) = data.split_first() else {
            return Step::Fail(protocol("EAP-TLS response without a flags byte"));
        };
        if flags & FLAG_L != 0 {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Step::Fail(protocol("EAP-TLS L bit without a length"));
            };
            let len = u32::from_be_bytes(*len) as usize;
            if len > MAX_MESSAGE {
                return Step::Fail(protocol(format!(
                    "EAP-TLS message of {len} bytes announced (at most {MAX_MESSAGE})"
                )));
            }
            if self.inbound.is_empty() {
                self.announced = Some(len);
            }
            rest = tail;
        }
        if self.sent < self.outbound.len() {
            // we are sending a fragmented flight: the peer must acknowledge each fragment
            // with an empty response before it says anything itself
            if !rest.is_empty() || flags & FLAG_M != 0 {
                return Step::Fail(protocol(
                    "the supplicant sent data instead of acknowledging a fragment",
                ));
            }
            return Step::Send(self.next_fragment());
        }
        if self.inbound.len() + rest.len() > self.announced.unwrap_or(MAX_MESSAGE) {
            return Step::Fail(protocol(
                "EAP-TLS fragments exceed the announced message length",
            ));
        }
        self.inbound.extend_from_slice(rest);
        if flags & FLAG_M != 0 {
            // acknowledge the fragment: an EAP-TLS request with no data
            return Step::Send(vec![0]);
        }
        if let Some(len) = self.announced.take() {
            if len != self.inbound.len() {
                return Step::Fail(protocol(format!(
                    "EAP-TLS message length {len} announced, {} received",
                    self.inbound.len()
                )));
            }
        }
        let message = std::mem::take(&mut self.inbound);
        if message.is_empty() {
            // an acknowledgement of our last flight; after the handshake it ends the method
            if self.tls.is_established() {
                return self.established();
            }
            return Step::Fail(protocol("empty EAP-TLS response during the handshake"));
        }
        // TLS 1.2: the client's certificate is in the clear in the flight whose answer is the
        // server's Finished; judge the device first (TLS 1.3 encrypts it, and its Finished
        // went out already: the decision follows the handshake, as the peer expects)
        if self.verdict.is_none() && self.tls.version() == Some(TlsVersion::Tls12) {
            if let Some(mut chain) = super::record::client_chain(&message) {
                let leaf = chain.remove(0);
                self.intermediates = chain;
                self.held = message;
                return Step::Judge(leaf);
            }
        }
        self.feed(&message, now)
    }

    /// The intermediate certificates of the flight held by [`Step::Judge`].
    pub fn intermediates(&self) -> &[Vec<u8>] {
        &self.intermediates
    }

    /// Goes on with the flight held by [`Step::Judge`]: `refusal` ends the handshake with its
    /// alert (once the client proved it holds the key), `None` lets it finish.
    pub fn resume(&mut self, refusal: Option<Refusal>, now: SystemTime) -> Step {
        self.verdict = Some(refusal);
        let message = std::mem::take(&mut self.held);
        if message.is_empty() {
            return Step::Fail(protocol("no TLS flight held for a judgement"));
        }
        self.feed(&message, now)
    }

    /// One whole client flight through TLS.
    fn feed(&mut self, message: &[u8], now: SystemTime) -> Step {
        match self.tls.exchange(message, now, self.verdict.flatten()) {
            Err(e) => {
                let alert = self.tls.take_alert();
                if alert.is_empty() || alert.len() > self.fragment {
                    Step::Fail(e)
                } else {
                    let mut data = Vec::with_capacity(1 + alert.len());
                    data.push(0);
                    data.extend_from_slice(&alert);
                    Step::Alert(data, e)
                }
            }
            Ok(out) if out.is_empty() => {
                if self.tls.is_established() {
                    self.established()
                } else {
                    Step::Fail(protocol("the TLS handshake stalled"))
                }
            }
            Ok(out) => {
                self.outbound = out;
                self.sent = 0;
                Step::Send(self.next_fragment())
            }
        }
    }

    fn established(&mut self) -> Step {
        let Some(cert) = self.tls.peer_certificate() else {
            return Step::Fail(TlsFailure {
                kind: FailureKind::NoCertificate,
                message: "handshake finished without a client certificate".into(),
            });
        };
        let peer_certificate = cert.to_vec();
        let Some(version) = self.tls.version() else {
            return Step::Fail(protocol("no TLS version negotiated"));
        };
        match self.tls.keys() {
            Ok(keys) => Step::Done(Box::new(Established {
                peer_certificate,
                version,
                keys,
            })),
            Err(e) => Step::Fail(e),
        }
    }

    /// The next fragment of the outbound flight: L and the total length on the first one of
    /// a fragmented flight, M on all but the last.
    fn next_fragment(&mut self) -> Vec<u8> {
        let total = self.outbound.len();
        let end = (self.sent + self.fragment).min(total);
        let more = end < total;
        let first = self.sent == 0;
        let mut data = Vec::with_capacity(5 + end - self.sent);
        if first && more {
            data.push(FLAG_L | FLAG_M);
            data.extend_from_slice(&(total as u32).to_be_bytes());
        } else if more {
            data.push(FLAG_M);
        } else {
            data.push(0);
        }
        data.extend_from_slice(&self.outbound[self.sent..end]);
        self.sent = end;
        if !more {
            self.outbound.clear();
            self.sent = 0;
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::super::tls::tests::{client, pki, server};
    use super::*;
    use rustls::ClientConnection;

    /// The supplicant side of EAP-TLS over a rustls client, fragmenting at `frag`.
    struct Peer {
        tls: ClientConnection,
        frag: usize,
        inbound: Vec<u8>,
        outbound: Vec<u8>,
        sent: usize,
    }

    impl Peer {
        /// Answers one request's type data with the next response's type data.
        fn answer(&mut self, req: &[u8]) -> Vec<u8> {
            let flags = req[0];
            let mut rest = &req[1..];
            if flags & FLAG_L != 0 {
                rest = &rest[4..];
            }
            if flags & FLAG_S != 0 {
                // ClientHello
                while self.tls.wants_write() {
                    self.tls.write_tls(&mut self.outbound).unwrap();
                }
                return self.fragment();
            }
            if self.sent < self.outbound.len() && self.sent > 0 {
                assert!(rest.is_empty(), "server must ack our fragments");
                return self.fragment();
            }
            self.inbound.extend_from_slice(rest);
            if flags & FLAG_M != 0 {
                return vec![0];
            }
            let msg = std::mem::take(&mut self.inbound);
            if !msg.is_empty() {
                self.tls.read_tls(&mut &msg[..]).unwrap();
                self.tls.process_new_packets().unwrap();
            }
            self.outbound.clear();
            self.sent = 0;
            while self.tls.wants_write() {
                self.tls.write_tls(&mut self.outbound).unwrap();
            }
            if self.outbound.is_empty() {
                return vec![0];
            }
            self.fragment()
        }

        fn fragment(&mut self) -> Vec<u8> {
            let total = self.outbound.len();
            let end = (self.sent + self.frag).min(total);
            let more = end < total;
            let mut d = Vec::new();
            if self.sent == 0 && more {
                d.push(FLAG_L | FLAG_M);
                d.extend_from_slice(&(total as u32).to_be_bytes());
            } else {
                d.push(if more { FLAG_M } else { 0 });
            }
            d.extend_from_slice(&self.outbound[self.sent..end]);
            self.sent = end;
            d
        }
    }

    fn run(
        frag_server: usize,
        frag_peer: usize,
        version: TlsVersion,
    ) -> (Established, ClientConnection, usize) {
        let p = pki();
        let srv = server(&p, TlsVersion::Tls12, TlsVersion::Tls13);
        let mut eap = EapTls::new(srv.session().unwrap(), frag_server);
        let mut peer = Peer {
            tls: client(
                &p.ca,
                Some((p.client_chain.clone(), p.client_key.clone())),
                version,
            ),
            frag: frag_peer,
            inbound: Vec::new(),
            outbound: Vec::new(),
            sent: 0,
        };
        let mut req = EapTls::start();
        for round in 1..500 {
            let resp = peer.answer(&req);
            assert!(resp.len() <= frag_peer + 5);
            let mut step = eap.on_response(&resp, SystemTime::now());
            if let Step::Judge(certificate) = step {
                // TLS 1.2: the whole client flight was reassembled, its certificate read
                assert_eq!(version, TlsVersion::Tls12);
                assert_eq!(certificate, p.client_chain[0].as_ref());
                step = eap.resume(None, SystemTime::now());
            }
            match step {
                Step::Judge(_) => panic!("judged twice"),
                Step::Send(next) => {
                    assert!(next.len() <= frag_server + 5, "fragment of {}", next.len());
                    req = next;
                }
                Step::Done(est) => return (*est, peer.tls, round),
                Step::Fail(e) | Step::Alert(_, e) => panic!("failed: {e}"),
            }
        }
        panic!("no end");
    }

    #[test]
    fn fragment_sizes_from_64_bytes_both_versions() {
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            for (fs, fp) in [
                (64, 64),
                (100, 1400),
                (1024, 1024),
                (1398, 200),
                (3000, 3000),
            ] {
                let (est, peer, rounds) = run(fs, fp, version);
                assert_eq!(est.version, version);
                let (label, ctx): (&[u8], Option<&[u8]>) = match version {
                    TlsVersion::Tls12 => (b"client EAP encryption", None),
                    TlsVersion::Tls13 => (b"EXPORTER_EAP_TLS_Key_Material", Some(&[13])),
                };
                let theirs = peer.export_keying_material([0u8; 128], label, ctx).unwrap();
                assert_eq!(&est.keys.msk[..], &theirs[..64], "{version:?} {fs}/{fp}");
                if fs >= 3000 && fp >= 3000 {
                    // ECDSA certificates: start, one flight each way, the final ack
                    assert!(rounds <= 4, "{rounds} rounds");
                }
            }
        }
    }

    fn fails(step: Step) -> bool {
        matches!(step, Step::Fail(_) | Step::Alert(..))
    }

    #[test]
    fn refuses_length_lies_and_malformed_flags() {
        let p = pki();
        let srv = server(&p, TlsVersion::Tls12, TlsVersion::Tls13);
        let now = SystemTime::now();
        // announced 10 bytes, sent 20
        let mut eap = EapTls::new(srv.session().unwrap(), 64);
        let mut d = vec![FLAG_L | FLAG_M, 0, 0, 0, 10];
        d.extend_from_slice(&[0x16; 20]);
        assert!(fails(eap.on_response(&d, now)));
        // announced more than MAX_MESSAGE
        let mut eap = EapTls::new(srv.session().unwrap(), 64);
        assert!(fails(
            eap.on_response(&[FLAG_L | FLAG_M, 0, 1, 0, 0, 0x16], now)
        ));
        // announced 10, the last fragment leaves it at 3
        let mut eap = EapTls::new(srv.session().unwrap(), 64);
        assert!(matches!(
            eap.on_response(&[FLAG_L | FLAG_M, 0, 0, 0, 10, 1, 2], now),
            Step::Send(ack) if ack == vec![0]
        ));
        assert!(fails(eap.on_response(&[0, 3], now)));
        // no flags byte; an L bit without its length
        let mut eap = EapTls::new(srv.session().unwrap(), 64);
        assert!(fails(eap.on_response(&[], now)));
        assert!(fails(eap.on_response(&[FLAG_L, 0], now)));
        // an empty response before any handshake
        let mut eap = EapTls::new(srv.session().unwrap(), 64);
        assert!(fails(eap.on_response(&[0], now)));
        // garbage instead of a ClientHello: refused, with an alert for the peer
        let mut eap = EapTls::new(srv.session().unwrap(), 64);
        assert!(fails(eap.on_response(&[0, 1, 2, 3, 4, 5, 6, 7], now)));
    }

    #[test]
    fn data_instead_of_an_ack_while_we_fragment_is_refused() {
        let p = pki();
        let srv = server(&p, TlsVersion::Tls12, TlsVersion::Tls13);
        let now = SystemTime::now();
        let mut eap = EapTls::new(srv.session().unwrap(), 64);
        let mut c = client(
            &p.ca,
            Some((p.client_chain.clone(), p.client_key.clone())),
            TlsVersion::Tls13,
        );
        let mut hello = vec![0u8];
        while c.wants_write() {
            c.write_tls(&mut hello).unwrap();
        }
        // the server flight is far over 64 bytes: the first fragment has L and M
        match eap.on_response(&hello, now) {
            Step::Send(f) => assert_eq!(f[0], FLAG_L | FLAG_M),
            other => panic!("{other:?}"),
        }
        assert!(fails(eap.on_response(&[0, 0x16, 3, 3], now)));
    }

    #[test]
    fn a_client_without_certificate_is_told_by_an_alert() {
        let p = pki();
        let srv = server(&p, TlsVersion::Tls12, TlsVersion::Tls13);
        let now = SystemTime::now();
        let mut eap = EapTls::new(srv.session().unwrap(), 4000);
        let mut c = client(&p.ca, None, TlsVersion::Tls12);
        let mut out = vec![0u8];
        while c.wants_write() {
            c.write_tls(&mut out).unwrap();
        }
        let Step::Send(flight) = eap.on_response(&out, now) else {
            panic!("server flight")
        };
        c.read_tls(&mut &flight[1..]).unwrap();
        c.process_new_packets().unwrap();
        let mut out = vec![0u8];
        while c.wants_write() {
            c.write_tls(&mut out).unwrap();
        }
        match eap.on_response(&out, now) {
            Step::Alert(data, e) => {
                assert_eq!(e.kind, FailureKind::NoCertificate);
                // an alert record (content type 21) after the flags byte
                assert_eq!(data[0], 0);
                assert_eq!(data[1], 21);
            }
            other => panic!("{other:?}"),
        }
    }
}
