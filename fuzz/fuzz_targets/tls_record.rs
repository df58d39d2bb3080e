//! The look into a TLS 1.2 client flight for its certificate: bounded, never a panic, and a
//! certificate it returns is made of input bytes (a handshake message may span records, so
//! not always one slice of it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use poortwachter::eap::record::client_certificate;

fuzz_target!(|data: &[u8]| {
    if let Some(cert) = client_certificate(data) {
        assert!(!cert.is_empty() && cert.len() <= data.len());
    }
});
