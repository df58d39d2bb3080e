//! EAP decoding and EAP-TLS reassembly: `data` is an EAP packet to parse, then a sequence of
//! EAP-TLS responses (flags, L and M bits, length, fragments; each prefixed by a big-endian
//! u16 length) fed to a fresh server exchange. It must end in a step, never a panic, and hold no
//! more than its bound.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use poortwachter::eap::eaptls::{EapTls, Step};
use poortwachter::eap::packet::EapPacket;
use poortwachter::eap::tls::{Refusal, TlsServer};

fn server() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(|| poortwachter::server::sim::tls_setup().0)
}

fuzz_target!(|data: &[u8]| {
    let _ = EapPacket::parse(data);
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let Ok(session) = server().session() else {
        return;
    };
    let mut method = EapTls::new(session, 16 + usize::from(first) * 8);
    let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    for round in 0..128 {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let n = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (chunk, tail) = tail.split_at(n);
        rest = tail;
        let step = match method.on_response(chunk, now) {
            Step::Judge(cert) => {
                assert!(!cert.is_empty());
                let refusal = (round % 2 == 0).then_some(Refusal::Revoked);
                method.resume(refusal, now)
            }
            other => other,
        };
        match step {
            Step::Send(out) => assert!(!out.is_empty()),
            Step::Judge(_) => panic!("judged twice in one step"),
            Step::Done(_) | Step::Fail(_) | Step::Alert(..) => break,
        }
    }
});
