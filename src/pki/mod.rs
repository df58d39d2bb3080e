//! The onboarding CA: creates the CA and server certificates, issues device certificates and
//! what their owners install (PKCS#12, Wi-Fi profiles), and exports the CRL.
//!
//! Certificates are made with rcgen (the rustls project's generator) on ring; RSA keys, which
//! ring cannot generate, come from the `rsa` crate. Key files are written 0600 from the start.

mod bundle;
mod ca;
mod cms;
mod crl;
mod expiry;
mod files;
mod instructions;
mod issue;
mod keys;
mod p12;
mod profiles;
mod renew;
mod serving;
mod zip;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use bundle::{bundle_files, file_stem, BundleFile, BundleFiles, BundleInput, Platform};
pub use ca::{init_ca, Ca, CaFiles, CaInit};
pub use cms::ProfileSigner;
pub use crl::{make_crl, Crl};
pub use expiry::{
    cert_info, check_certificates, expiry, log_expiry, read_cert_info, watched_certificates,
    CertInfo, CertKind, Expiry, ExpiryLevel, Unreadable,
};
pub use files::{write_file, Staging, PRIVATE, PUBLIC};
pub use issue::{device_cert_validity, issue_device_certificate, IssuedCertificate};
pub use p12::{one_time_password, pkcs12, OneTimePassword};
pub use profiles::{
    apple_mobileconfig, sha1_thumbprint, windows_wlan_profile, xml_escape, ProfileSettings,
};
pub use renew::{
    ca_bundle, renew_server, retire_previous, rollover, rollover_started, server_signing_ca,
    Retired, Rollover, ServerRenewal,
};
pub use serving::{load_eap_tls, trusted_ca_files, EapTls};
pub use zip::{zip, ZipError};

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Reading or writing a file failed (an unreadable one says "permission denied on PATH").
    #[error("{}", read_failure(path, source))]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// `ca init` would replace an existing file.
    #[error("{} already exists; `ca init --force` replaces it (every certificate the old CA issued then stops working)", .0.display())]
    Exists(PathBuf),
    /// No CA yet.
    #[error("no CA certificate at {}: run `poortwachter ca init` first", .0.display())]
    NoCa(PathBuf),
    /// The CA certificate is here but its key is not: an offline CA, issuing is not
    /// possible on this host.
    #[error("issuing is offline on this host: the CA key {} is not here (an offline CA keeps it on another machine); issue certificates where the key is", .0.display())]
    CaKeyOffline(PathBuf),
    /// The CA has expired: what it signs verifies nowhere.
    #[error("the CA expired on {}: it can issue nothing more; make a new CA with `poortwachter ca rollover`", .0.format("%Y-%m-%d %H:%M UTC"))]
    CaExpired(DateTime<Utc>),
    /// `ca init` without `--force` where the CA exists but the server certificate does not.
    #[error("the CA {} exists but the server certificate {} does not: make one from this CA with `poortwachter ca renew-server` (`ca init --force` would replace the CA and strand every device)", .ca.display(), .server.display())]
    ServerCertMissing {
        /// The CA certificate.
        ca: PathBuf,
        /// The missing server certificate.
        server: PathBuf,
    },
    /// A PEM file that does not hold what it should.
    #[error("{}: {message}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rcgen refused to make or sign a certificate or CRL.
    #[error("cannot make the certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Key generation failed.
    #[error("cannot generate a key: {0}")]
    Key(String),
    /// The issued certificate does not verify against the CA (a CA key that does not belong
    /// to the CA certificate, for instance).
    #[error("the new certificate does not verify against the CA ({0}); is pki.ca_key the key of pki.ca_cert?")]
    Verify(String),
    /// The PKCS#12 bundle could not be made.
    #[error("cannot make the PKCS#12 bundle: {0}")]
    Pkcs12(String),
    /// A value that cannot go into a certificate, CRL or profile.
    #[error("{0}")]
    Invalid(String),
}

/// What went wrong with a file, in the words an operator acts on: `permission denied on PATH`
/// when it exists but this user may not read or write it (`ca init` run as root, say), else
/// `PATH: error`.
pub fn read_failure(path: &Path, error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::PermissionDenied {
        format!(
            "permission denied on {} (the user running poortwachter may not use it: give the service user access to the PKI directory and files, e.g. chown -R poortwachter: on it)",
            path.display()
        )
    } else {
        format!("{}: {error}", path.display())
    }
}

impl PkiError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
        move |source| PkiError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The SHA-256 fingerprint of a DER certificate, lowercase hex without separators: how the
/// registry (`devices.cert_fingerprint`) and EAP-TLS identify a device's certificate.
pub fn fingerprint(der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// The first certificate of a PEM file, as DER: the CA certificate the TLS verifier trusts.
pub fn load_ca_der(path: &Path) -> Result<Vec<u8>, PkiError> {
    let chain = load_cert_chain(path)?;
    match chain.into_iter().next() {
        Some(cert) => Ok(cert.as_ref().to_vec()),
        None => Err(PkiError::Pem {
            path: path.to_path_buf(),
            message: "holds no CERTIFICATE".into(),
        }),
    }
}

/// Every certificate of a PEM file, in file order (a chain: leaf first). A file that is
/// missing is [`PkiError::Io`]; one without certificates is [`PkiError::Pem`].
pub fn load_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let pem = std::fs::read(path).map_err(PkiError::io(path))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::Pem {
            path: path.to_path_buf(),
            message: "holds no CERTIFICATE".into(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, SEC1 or PKCS#1) of a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let pem = zeroize::Zeroizing::new(std::fs::read(path).map_err(PkiError::io(path))?);
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| PkiError::Pem {
        path: path.to_path_buf(),
        message: format!("no private key: {e}"),
    })
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

/// PEM text of one DER object (RFC 7468: 64 base64 characters a line).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Bytes from hex (any case), or `None`.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An instant as rcgen takes it (`time::OffsetDateTime`, reached through
/// [`rcgen::date_time_ymd`] so that `time` need not be a dependency of ours): whole seconds,
/// as X.509 keeps them.
macro_rules! asn1_time {
    ($t:expr) => {
        rcgen::date_time_ymd(1970, 1, 1) + $crate::pki::since_epoch($t)?
    };
}
pub(crate) use asn1_time;

/// Time since the Unix epoch, whole seconds; an earlier instant is refused.
fn since_epoch(t: DateTime<Utc>) -> Result<std::time::Duration, PkiError> {
    u64::try_from(t.timestamp())
        .map(std::time::Duration::from_secs)
        .map_err(|_| PkiError::Invalid(format!("{t} is before 1970")))
}

/// A random positive serial number of 16 bytes (RFC 5280 section 4.1.2.2: at most 20, and
/// CA/B practice asks for 64 random bits at least). The first byte is 0x01..=0x7f so that
/// the DER integer is exactly these bytes and their hex is what `openssl` shows.
fn random_serial() -> Result<Vec<u8>, PkiError> {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Key("the system random number generator failed".into()))?;
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 1;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(unhex("00AB7f"), Some(vec![0x00, 0xab, 0x7f]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn fingerprint_is_sha256_lowercase_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn serials_are_positive_16_bytes() {
        for _ in 0..64 {
            let s = random_serial().unwrap();
            assert_eq!(s.len(), 16);
            assert!((1..=0x7f).contains(&s[0]));
        }
        assert_ne!(random_serial().unwrap(), random_serial().unwrap());
    }
}
