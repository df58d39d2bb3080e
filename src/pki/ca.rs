//! The CA itself: `ca init` makes it (self-signed, may sign end-entity certificates and CRLs
//! only) with the RADIUS server's certificate, and every other command loads it from disk.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SubsecRound, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;

use crate::config::tls::{KeyType, PkiConfig};
use crate::config::Config;

use super::expiry::{cert_info, CertInfo};
use super::files::{write_file, PRIVATE, PUBLIC};
use super::{asn1_time, fingerprint, keys, random_serial, PkiError};

/// Where the CA and the server certificate live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// CA key (PKCS#8 PEM, 0600).
    pub ca_key: PathBuf,
    /// Server certificate chain (PEM: server, then CA).
    pub server_cert: PathBuf,
    /// Server key (PKCS#8 PEM, 0600).
    pub server_key: PathBuf,
}

impl CaFiles {
    /// The paths `[pki]` and `[eap]` name.
    pub fn from_config(config: &Config) -> CaFiles {
        CaFiles {
            ca_cert: config.pki.ca_cert.clone(),
            ca_key: config.pki.ca_key.clone(),
            server_cert: config.eap.server_cert.clone(),
            server_key: config.eap.server_key.clone(),
        }
    }

    fn all(&self) -> [&Path; 4] {
        [
            &self.ca_cert,
            &self.ca_key,
            &self.server_cert,
            &self.server_key,
        ]
    }
}

/// What `ca init` made.
#[derive(Debug, Clone)]
pub struct CaInit {
    /// The files written.
    pub files: CaFiles,
    /// SHA-256 of the CA certificate, lowercase hex.
    pub ca_fingerprint: String,
    /// The CA certificate (DER).
    pub ca_der: Vec<u8>,
    /// End of the CA's validity.
    pub ca_not_after: DateTime<Utc>,
    /// End of the server certificate's validity.
    pub server_not_after: DateTime<Utc>,
    /// Key algorithm of both.
    pub key_type: KeyType,
}

/// The CA loaded from disk: its certificate, and an issuer signing with its key.
pub struct Ca {
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    info: CertInfo,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint", &self.fingerprint())
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Ca {
    /// Loads the CA certificate (the first in the PEM file) and its PKCS#8 key. No
    /// certificate is [`PkiError::NoCa`]; a certificate without its key (an offline CA) is
    /// [`PkiError::CaKeyOffline`].
    pub fn load(cert: &Path, key: &Path) -> Result<Ca, PkiError> {
        match std::fs::metadata(cert) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PkiError::NoCa(cert.to_path_buf()))
            }
            Err(e) => return Err(PkiError::io(cert)(e)),
            Ok(_) => {}
        }
        let der = CertificateDer::from(super::load_ca_der(cert)?);
        let info = cert_info(der.as_ref()).map_err(|message| PkiError::Pem {
            path: cert.to_path_buf(),
            message,
        })?;
        let pem = zeroize::Zeroizing::new(std::fs::read_to_string(key).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                PkiError::CaKeyOffline(key.to_path_buf())
            } else {
                PkiError::io(key)(e)
            }
        })?);
        let key_pair = KeyPair::from_pem(&pem).map_err(|e| PkiError::Pem {
            path: key.to_path_buf(),
            message: format!("not a PKCS#8 ECDSA P-256 or RSA key: {e}"),
        })?;
        let issuer = Issuer::from_ca_cert_der(&der, key_pair).map_err(|e| PkiError::Pem {
            path: cert.to_path_buf(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
        Ok(Ca { der, issuer, info })
    }

    /// The end of the CA's validity: nothing it issues may last longer.
    pub fn not_after(&self) -> DateTime<Utc> {
        self.info.not_after
    }

    /// The start of the CA's validity.
    pub fn not_before(&self) -> DateTime<Utc> {
        self.info.not_before
    }

    /// The CA's subject common name.
    pub fn name(&self) -> &str {
        &self.info.subject
    }

    /// Refuses once the CA has expired at `now`: what it would sign verifies nowhere.
    pub fn check_usable(&self, now: DateTime<Utc>) -> Result<(), PkiError> {
        if now > self.info.not_after {
            return Err(PkiError::CaExpired(self.info.not_after));
        }
        Ok(())
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &[u8] {
        self.der.as_ref()
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        super::pem_encode("CERTIFICATE", self.der())
    }

    /// SHA-256 of the CA certificate, lowercase hex.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.der())
    }

    /// The key algorithm of the CA key (device keys get the same unless configured).
    pub fn is_rsa(&self) -> bool {
        keys::is_rsa(self.issuer.key())
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

/// A subject of `CN = common_name, O = organization`.
pub(crate) fn subject(common_name: &str, organization: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, organization);
    dn
}

/// How far back a new certificate's notBefore is set: absorbs clocks that lag behind ours.
pub(crate) const BACKDATE: chrono::Duration = chrono::Duration::minutes(5);

/// A new self-signed CA (`CA:TRUE, pathlen:0`; keyCertSign and cRLSign) named `pki.ca_name`:
/// what `ca init` and `ca rollover` both make.
pub(crate) fn new_ca(
    pki: &PkiConfig,
    key_type: KeyType,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<(rcgen::Certificate, Issuer<'static, KeyPair>), PkiError> {
    let ca_key = keys::generate(key_type)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = subject(&pki.ca_name, &pki.organization);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    ca.not_before = asn1_time!(not_before);
    ca.not_after = asn1_time!(not_after);
    let ca_cert = ca.self_signed(&ca_key)?;
    Ok((ca_cert, Issuer::new(ca, ca_key)))
}

/// A server certificate for `server_name` (subject CN and SAN DNS; digitalSignature, and
/// keyEncipherment for RSA; serverAuth) with a new key of `key_type`, signed by `issuer`:
/// what `ca init` and `ca renew-server` both make.
pub(crate) fn server_certificate(
    server_name: &str,
    organization: &str,
    key_type: KeyType,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(rcgen::Certificate, KeyPair), PkiError> {
    let server_key = keys::generate(key_type)?;
    let mut server = CertificateParams::default();
    server.distinguished_name = subject(server_name, organization);
    server.subject_alt_names = vec![SanType::DnsName(server_name.try_into().map_err(|_| {
        PkiError::Invalid(format!("eap.server_name `{server_name}` is not a DNS name"))
    })?)];
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if keys::is_rsa(&server_key) {
        // TLS 1.2 RSA key transport
        server.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    server.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    server.not_before = asn1_time!(not_before);
    server.not_after = asn1_time!(not_after);
    let cert = server.signed_by(&server_key, issuer)?;
    Ok((cert, server_key))
}

/// Creates the CA (self-signed; `CA:TRUE, pathlen:0`; keyCertSign and cRLSign) and a server
/// certificate for `server_name` (SAN DNS, serverAuth) signed by it, and writes the four files
/// (keys 0600). Refuses to replace any of them unless `force`.
pub fn init_ca(
    files: &CaFiles,
    pki: &PkiConfig,
    server_name: &str,
    key_type: KeyType,
    force: bool,
    now: DateTime<Utc>,
) -> Result<CaInit, PkiError> {
    if !force {
        if files.ca_cert.exists() && !files.server_cert.exists() {
            return Err(PkiError::ServerCertMissing {
                ca: files.ca_cert.clone(),
                server: files.server_cert.clone(),
            });
        }
        if let Some(existing) = files.all().into_iter().find(|p| p.exists()) {
            return Err(PkiError::Exists(existing.to_path_buf()));
        }
    }
    let now = now.trunc_subsecs(0);
    let not_before = now - BACKDATE;
    let ca_not_after = now + pki.ca_lifetime.chrono();
    let server_not_after = (now + pki.server_cert_lifetime.chrono()).min(ca_not_after);

    let (ca_cert, issuer) = new_ca(pki, key_type, not_before, ca_not_after)?;

    let (server_cert, server_key) = server_certificate(
        server_name,
        &pki.organization,
        key_type,
        not_before,
        server_not_after,
        &issuer,
    )?;

    // the CA last: an interrupted run leaves no CA behind, only files a rerun replaces
    let chain = format!("{}{}", server_cert.pem(), ca_cert.pem());
    write_file(
        &files.server_key,
        keys::private_pem(&server_key).as_bytes(),
        PRIVATE,
    )?;
    write_file(&files.server_cert, chain.as_bytes(), PUBLIC)?;
    write_file(
        &files.ca_key,
        keys::private_pem(issuer.key()).as_bytes(),
        PRIVATE,
    )?;
    write_file(&files.ca_cert, ca_cert.pem().as_bytes(), PUBLIC)?;
    Ok(CaInit {
        files: files.clone(),
        ca_fingerprint: fingerprint(ca_cert.der()),
        ca_der: ca_cert.der().to_vec(),
        ca_not_after,
        server_not_after,
        key_type,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A CA and server certificate in a temp dir, as `ca init` makes them.
    pub(crate) fn test_ca(dir: &Path, key_type: KeyType) -> (CaFiles, CaInit) {
        let files = CaFiles {
            ca_cert: dir.join("pki/ca.pem"),
            ca_key: dir.join("pki/ca.key"),
            server_cert: dir.join("pki/server.pem"),
            server_key: dir.join("pki/server.key"),
        };
        let pki = PkiConfig {
            ca_name: "Gemeente Test CA".into(),
            organization: "Gemeente Test".into(),
            ..PkiConfig::default()
        };
        let init = init_ca(
            &files,
            &pki,
            "radius.gemeente.test",
            key_type,
            false,
            Utc::now(),
        )
        .unwrap();
        (files, init)
    }

    #[test]
    fn init_writes_keys_0600_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (files, init) = test_ca(dir.path(), KeyType::EcdsaP256);
        for key in [&files.ca_key, &files.server_key] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
            assert!(std::fs::read_to_string(key)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----"));
        }
        let chain = super::super::load_cert_chain(&files.server_cert).unwrap();
        assert_eq!(chain.len(), 2, "server, then CA");
        assert_eq!(chain[1].as_ref(), init.ca_der.as_slice());
        let ca = Ca::load(&files.ca_cert, &files.ca_key).unwrap();
        assert_eq!(ca.fingerprint(), init.ca_fingerprint);
        assert!(!format!("{ca:?}").contains("PRIVATE"));

        let err = init_ca(
            &files,
            &PkiConfig::default(),
            "radius.gemeente.test",
            KeyType::EcdsaP256,
            false,
            Utc::now(),
        )
        .unwrap_err();
        assert!(
            matches!(err, PkiError::Exists(ref p) if p == &files.ca_cert),
            "{err}"
        );
        assert!(err.to_string().contains("--force"), "{err}");
        let again = init_ca(
            &files,
            &PkiConfig::default(),
            "radius.gemeente.test",
            KeyType::EcdsaP256,
            true,
            Utc::now(),
        )
        .unwrap();
        assert_ne!(again.ca_fingerprint, init.ca_fingerprint);
    }

    #[test]
    fn the_server_certificate_verifies_for_its_name() {
        use rustls::client::danger::ServerCertVerifier as _;
        let dir = tempfile::tempdir().unwrap();
        let (files, init) = test_ca(dir.path(), KeyType::EcdsaP256);
        let chain = super::super::load_cert_chain(&files.server_cert).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(init.ca_der.clone()))
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let name = rustls::pki_types::ServerName::try_from("radius.gemeente.test").unwrap();
        verifier
            .verify_server_cert(
                &chain[0],
                &[],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
        let other = rustls::pki_types::ServerName::try_from("evil.example").unwrap();
        assert!(verifier
            .verify_server_cert(
                &chain[0],
                &[],
                &other,
                &[],
                rustls::pki_types::UnixTime::now()
            )
            .is_err());
    }

    #[test]
    fn a_missing_ca_says_to_run_init() {
        let dir = tempfile::tempdir().unwrap();
        let err = Ca::load(&dir.path().join("ca.pem"), &dir.path().join("ca.key")).unwrap_err();
        assert!(err.to_string().contains("ca init"), "{err}");
    }
}
