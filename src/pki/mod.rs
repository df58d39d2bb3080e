//! The onboarding CA: creates the CA and server certificates, issues device certificates and
//! what their owners install (PKCS#12, Wi-Fi profiles), and exports the CRL.

/// The SHA-256 fingerprint of a DER certificate, lowercase hex without separators: how the
/// registry (`devices.cert_fingerprint`) and EAP-TLS identify a device's certificate.
pub fn fingerprint(der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// Lowercase hex without separators.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
