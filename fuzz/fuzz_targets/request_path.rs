//! The stateful request path: sequences of datagrams from several clients (MAB, EAP with
//! fresh, known, stale and forged States, accounting, Status-Server, raw bytes,
//! retransmissions, held registry reads, registry changes and outages, time passing) through
//! the sans-IO core with an in-memory registry (`poortwachter::server::sim`). Every reply is
//! checked against its request; a hang is a failure (run with -timeout).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use poortwachter::eap::tls::TlsServer;
use poortwachter::server::sim::{tls_setup, Sim};

fn tls() -> &'static (TlsServer, Vec<u8>) {
    static TLS: OnceLock<(TlsServer, Vec<u8>)> = OnceLock::new();
    TLS.get_or_init(tls_setup)
}

fuzz_target!(|data: &[u8]| {
    let mut sim = Sim::new(Some(tls().clone()));
    sim.run(data);
});
