//! Every rustls call in the crate: the TLS server configuration for EAP-TLS and one TLS
//! session driven from memory buffers, with the time passed in (sans-IO).

use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::time_provider::TimeProvider;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use zeroize::Zeroizing;

use crate::config::tls::TlsVersion;

/// Why the TLS server could not be set up (at start, from config).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A file could not be read (an unreadable one says "permission denied on PATH").
    #[error("{}", crate::pki::read_failure(path, source))]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file holds no usable PEM of the kind needed.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        what: String,
    },
    /// rustls refused the combination (key does not match the certificate, bad CA...).
    #[error("TLS configuration: {0}")]
    Rustls(String),
    /// EAP is required (`eap.enabled = true`) but a file it needs does not exist.
    #[error("{} does not exist: make the server certificate with `poortwachter ca init` (no CA yet) or `poortwachter ca renew-server`", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The server certificate is not valid now (expired, or not yet valid).
    #[error("{}: the server certificate {what}: renew it with `poortwachter ca renew-server`", path.display())]
    Validity {
        /// The file.
        path: PathBuf,
        /// `expired on ...` or `is not valid before ...`.
        what: String,
    },
}

/// Why a handshake failed; `message` is rustls's description (no key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct TlsFailure {
    /// The class of failure, for the decision reason.
    pub kind: FailureKind,
    /// rustls's words.
    pub message: String,
}

/// Classes of handshake failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The peer sent no certificate.
    NoCertificate,
    /// The peer's certificate did not verify (other CA, expired, wrong usage, bad signature).
    BadCertificate,
    /// The peer refused us (an alert), e.g. it does not trust our server certificate.
    PeerAlert,
    /// The certificate verified, but the registry and policy refused the device it names;
    /// the handshake was ended with the [`Refusal`]'s alert before the server's Finished.
    Refused,
    /// Anything else: malformed records, no common version or cipher suite.
    Protocol,
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailureKind::NoCertificate => "no client certificate",
            FailureKind::BadCertificate => "client certificate refused",
            FailureKind::PeerAlert => "the supplicant ended the handshake",
            FailureKind::Refused => "the device may not join",
            FailureKind::Protocol => "TLS protocol error",
        })
    }
}

/// What EAP-TLS needs to build its TLS server.
pub struct TlsSettings {
    /// The server certificate chain, leaf first.
    pub server_chain: Vec<CertificateDer<'static>>,
    /// The server's private key.
    pub server_key: PrivateKeyDer<'static>,
    /// CA certificates that client certificates must chain to.
    pub client_roots: Vec<CertificateDer<'static>>,
    /// Lowest version offered.
    pub min: TlsVersion,
    /// Highest version offered.
    pub max: TlsVersion,
}

impl TlsSettings {
    /// Reads the PEM files: the server chain and key, and the trusted client CAs.
    pub fn from_files(
        server_cert: &Path,
        server_key: &Path,
        client_cas: &[&Path],
        min: TlsVersion,
        max: TlsVersion,
    ) -> Result<TlsSettings, TlsSetupError> {
        let server_chain = read_certs(server_cert)?;
        let pem = read(server_key)?;
        let server_key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsSetupError::Pem {
            path: server_key.to_path_buf(),
            what: format!("no private key ({e})"),
        })?;
        let mut client_roots = Vec::new();
        for ca in client_cas {
            client_roots.extend(read_certs(ca)?);
        }
        Ok(TlsSettings {
            server_chain,
            server_key,
            client_roots,
            min,
            max,
        })
    }
}

fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsSetupError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| TlsSetupError::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::Pem {
            path: path.to_path_buf(),
            what: format!("unreadable certificate PEM ({e})"),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::Pem {
            path: path.to_path_buf(),
            what: "no certificate in the file".into(),
        });
    }
    Ok(certs)
}

thread_local! {
    /// The time the current session step runs at (see [`TlsSession::exchange`]).
    static NOW: Cell<Option<SystemTime>> = const { Cell::new(None) };
    /// The refusal the current session step must deliver in the handshake, if any.
    static REFUSE: Cell<Option<Refusal>> = const { Cell::new(None) };
    /// Set when [`RegistryAwareVerifier`] delivered that refusal.
    static REFUSED: Cell<bool> = const { Cell::new(false) };
}

/// The registry's and the policy's "no" for a client certificate, delivered inside the
/// handshake as a TLS alert so that the supplicant reports failure at once: under TLS 1.2 a
/// supplicant that has seen the server's Finished takes the method as succeeded and discards
/// a later EAP-Failure (RFC 5216 §2.1.3 leaves that to the peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The device was revoked or reported lost: alert `certificate_revoked` (44).
    Revoked,
    /// Any other refusal (unknown certificate, owner disabled or gone, noncompliant with
    /// `not_compliant = "reject"`): alert `access_denied` (49).
    Denied,
}

impl Refusal {
    fn error(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(match self {
            Refusal::Revoked => CertificateError::Revoked,
            Refusal::Denied => CertificateError::ApplicationVerificationFailure,
        })
    }
}

/// The WebPKI client verifier, plus the refusal passed to the current step: applied once the
/// client proved it holds the key (its CertificateVerify checked), so that nobody learns a
/// device's status from a copied certificate, and before the server's Finished is written.
#[derive(Debug)]
struct RegistryAwareVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl RegistryAwareVerifier {
    fn refuse_now(&self) -> Result<(), rustls::Error> {
        match REFUSE.with(Cell::get) {
            Some(r) => {
                REFUSED.with(|c| c.set(true));
                Err(r.error())
            }
            None => Ok(()),
        }
    }
}

impl ClientCertVerifier for RegistryAwareVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let valid = self.inner.verify_tls12_signature(message, cert, dss)?;
        self.refuse_now()?;
        Ok(valid)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let valid = self.inner.verify_tls13_signature(message, cert, dss)?;
        self.refuse_now()?;
        Ok(valid)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// rustls asks this clock while it verifies a certificate; it answers with the `now` passed
/// to [`TlsSession::exchange`] on this thread, so that time is an input like the bytes.
#[derive(Debug)]
struct PassedInTime;

impl TimeProvider for PassedInTime {
    fn current_time(&self) -> Option<UnixTime> {
        let now = NOW.with(Cell::get).unwrap_or_else(SystemTime::now);
        let since = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Some(UnixTime::since_unix_epoch(since))
    }
}

/// The shared TLS server configuration.
#[derive(Clone)]
pub struct TlsServer {
    config: Arc<ServerConfig>,
    /// The client certificate verifier alone, to check a chain before the registry is asked.
    chains: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer").finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Builds the configuration: a client certificate is required and must chain to one of
    /// `client_roots`; no session resumption (every login proves the device key again).
    pub fn new(settings: TlsSettings) -> Result<TlsServer, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in settings.client_roots {
            roots
                .add(ca)
                .map_err(|e| TlsSetupError::Rustls(format!("trusted CA: {e}")))?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsSetupError::Rustls(format!("client verifier: {e}")))?;
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
            (TlsVersion::Tls12, &rustls::version::TLS12),
            (TlsVersion::Tls13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| *v >= settings.min && *v <= settings.max)
        .map(|(_, p)| p)
        .collect();
        let mut config = ServerConfig::builder_with_details(provider, Arc::new(PassedInTime))
            .with_protocol_versions(&versions)
            .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
            .with_client_cert_verifier(Arc::new(RegistryAwareVerifier {
                inner: verifier.clone(),
            }))
            .with_single_cert(settings.server_chain, settings.server_key)
            .map_err(|e| TlsSetupError::Rustls(format!("server certificate and key: {e}")))?;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(TlsServer {
            config: Arc::new(config),
            chains: verifier,
        })
    }

    /// Whether `leaf` with `intermediates` chains to a trusted CA at `now` (what rustls will
    /// check too): only such a certificate is worth a registry read.
    pub fn chain_verifies(&self, leaf: &[u8], intermediates: &[Vec<u8>], now: SystemTime) -> bool {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        self.chains
            .verify_client_cert(
                &CertificateDer::from(leaf),
                &intermediates,
                UnixTime::since_unix_epoch(since),
            )
            .is_ok()
    }

    /// A new session for one supplicant.
    pub fn session(&self) -> Result<TlsSession, TlsFailure> {
        let conn = ServerConnection::new(self.config.clone()).map_err(|e| TlsFailure {
            kind: FailureKind::Protocol,
            message: e.to_string(),
        })?;
        Ok(TlsSession {
            conn,
            indicated: false,
        })
    }
}

/// The EAP-TLS keying material (RFC 5216 §2.3, RFC 9190 §2.3).
pub struct EapKeys {
    /// Master Session Key: its first 32 bytes are MS-MPPE-Recv-Key, the next 32 Send-Key.
    pub msk: Zeroizing<[u8; 64]>,
    /// Extended MSK (not sent to the NAS).
    pub emsk: Zeroizing<[u8; 64]>,
}

impl std::fmt::Debug for EapKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EapKeys(..)")
    }
}

/// One supplicant's TLS session.
pub struct TlsSession {
    conn: ServerConnection,
    /// Whether the TLS 1.3 protected success indication was queued.
    indicated: bool,
}

impl TlsSession {
    /// Feeds one whole TLS flight from the peer (reassembled from its EAP-TLS fragments),
    /// at `now`, and returns the flight to send back (possibly empty). Once the handshake is
    /// complete under TLS 1.3 the protected success indication (one application-data byte
    /// 0x00, RFC 9190 §2.5) is part of the answer. With `refuse`, a client certificate in
    /// this flight is refused with that alert once its signature checks out
    /// ([`FailureKind::Refused`]).
    pub fn exchange(
        &mut self,
        mut incoming: &[u8],
        now: SystemTime,
        refuse: Option<Refusal>,
    ) -> Result<Vec<u8>, TlsFailure> {
        NOW.with(|c| c.set(Some(now)));
        REFUSE.with(|c| c.set(refuse));
        REFUSED.with(|c| c.set(false));
        let mut result = self.exchange_inner(&mut incoming);
        NOW.with(|c| c.set(None));
        REFUSE.with(|c| c.set(None));
        if REFUSED.with(|c| c.replace(false)) {
            if let Err(e) = &mut result {
                e.kind = FailureKind::Refused;
            }
        }
        result
    }

    fn exchange_inner(&mut self, incoming: &mut &[u8]) -> Result<Vec<u8>, TlsFailure> {
        while !incoming.is_empty() {
            let n = self.conn.read_tls(incoming).map_err(|e| TlsFailure {
                kind: FailureKind::Protocol,
                message: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            self.conn.process_new_packets().map_err(failure)?;
        }
        if !self.conn.is_handshaking()
            && !self.indicated
            && self.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
        {
            self.conn.writer().write_all(&[0]).map_err(|e| TlsFailure {
                kind: FailureKind::Protocol,
                message: e.to_string(),
            })?;
            self.indicated = true;
        }
        let mut out = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut out).map_err(|e| TlsFailure {
                kind: FailureKind::Protocol,
                message: e.to_string(),
            })?;
        }
        Ok(out)
    }

    /// After a failed [`TlsSession::exchange`]: the alert rustls queued for the peer (e.g.
    /// `bad_certificate`, `certificate_required`), so that the supplicant can tell the user
    /// why. Empty if there is none.
    pub fn take_alert(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        out
    }

    /// Whether the handshake finished (the peer's certificate verified).
    pub fn is_established(&self) -> bool {
        !self.conn.is_handshaking()
    }

    /// The negotiated version.
    pub fn version(&self) -> Option<TlsVersion> {
        match self.conn.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_2 => Some(TlsVersion::Tls12),
            rustls::ProtocolVersion::TLSv1_3 => Some(TlsVersion::Tls13),
            _ => None,
        }
    }

    /// The peer's end-entity certificate (DER), once verified.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        if self.conn.is_handshaking() {
            return None;
        }
        self.conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.as_ref())
    }

    /// The MSK and EMSK: TLS 1.2 uses the PRF with "client EAP encryption" over the two
    /// randoms (RFC 5216), TLS 1.3 the exporter "EXPORTER_EAP_TLS_Key_Material" with the
    /// context 0x0D (RFC 9190).
    pub fn keys(&self) -> Result<EapKeys, TlsFailure> {
        let (label, context): (&[u8], Option<&[u8]>) = match self.version() {
            Some(TlsVersion::Tls12) => (b"client EAP encryption", None),
            Some(TlsVersion::Tls13) => (b"EXPORTER_EAP_TLS_Key_Material", Some(&[13])),
            None => {
                return Err(TlsFailure {
                    kind: FailureKind::Protocol,
                    message: "no TLS version negotiated".into(),
                })
            }
        };
        let material = self
            .conn
            .export_keying_material(Zeroizing::new([0u8; 128]), label, context)
            .map_err(failure)?;
        let mut msk = Zeroizing::new([0u8; 64]);
        let mut emsk = Zeroizing::new([0u8; 64]);
        msk.copy_from_slice(&material[..64]);
        emsk.copy_from_slice(&material[64..]);
        Ok(EapKeys { msk, emsk })
    }
}

fn failure(e: rustls::Error) -> TlsFailure {
    use rustls::Error as E;
    let kind = match &e {
        E::NoCertificatesPresented => FailureKind::NoCertificate,
        E::InvalidCertificate(_) => FailureKind::BadCertificate,
        E::AlertReceived(_) => FailureKind::PeerAlert,
        _ => FailureKind::Protocol,
    };
    TlsFailure {
        kind,
        message: e.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! A rustls client as the supplicant, paired with our server in memory.

    use super::*;
    use rustls::ClientConnection;

    pub(crate) use crate::eap::testpki::{client, leaf, make_ca, pki, server, Pki};

    /// Runs the handshake in memory; returns the server session or its failure.
    fn handshake(
        server: &TlsServer,
        mut client: ClientConnection,
        now: SystemTime,
    ) -> (Result<TlsSession, TlsFailure>, ClientConnection) {
        let mut s = server.session().unwrap();
        let mut to_server = Vec::new();
        for _ in 0..10 {
            while client.wants_write() {
                client.write_tls(&mut to_server).unwrap();
            }
            let back = match s.exchange(&to_server, now, None) {
                Ok(b) => b,
                Err(e) => return (Err(e), client),
            };
            to_server.clear();
            if !back.is_empty() {
                client.read_tls(&mut &back[..]).unwrap();
                if client.process_new_packets().is_err() {
                    break;
                }
            }
            if s.is_established() && !client.is_handshaking() && !client.wants_write() {
                return (Ok(s), client);
            }
        }
        (
            Err(TlsFailure {
                kind: FailureKind::Protocol,
                message: "no progress".into(),
            }),
            client,
        )
    }

    #[test]
    fn handshakes_and_exports_keys_both_versions() {
        let p = pki();
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            let server = server(&p, TlsVersion::Tls12, TlsVersion::Tls13);
            let c = client(
                &p.ca,
                Some((p.client_chain.clone(), p.client_key.clone())),
                version,
            );
            let (s, mut c) = handshake(&server, c, SystemTime::now());
            let s = s.unwrap();
            assert_eq!(s.version(), Some(version));
            assert_eq!(s.peer_certificate(), Some(p.client_chain[0].as_ref()));
            let keys = s.keys().unwrap();
            // the client computes the same keys independently
            let (label, ctx): (&[u8], Option<&[u8]>) = match version {
                TlsVersion::Tls12 => (b"client EAP encryption", None),
                TlsVersion::Tls13 => (b"EXPORTER_EAP_TLS_Key_Material", Some(&[13])),
            };
            let theirs = c.export_keying_material([0u8; 128], label, ctx).unwrap();
            assert_eq!(&keys.msk[..], &theirs[..64]);
            assert_eq!(&keys.emsk[..], &theirs[64..]);
            if version == TlsVersion::Tls13 {
                // the protected success indication arrived as one byte 0x00
                let mut buf = [0u8; 4];
                let n = std::io::Read::read(&mut c.reader(), &mut buf).unwrap();
                assert_eq!(&buf[..n], &[0]);
            }
        }
    }

    #[test]
    fn refuses_missing_foreign_and_expired_certificates() {
        let p = pki();
        let server = server(&p, TlsVersion::Tls12, TlsVersion::Tls13);
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            let (s, _) = handshake(&server, client(&p.ca, None, version), SystemTime::now());
            assert_eq!(
                s.err().unwrap().kind,
                FailureKind::NoCertificate,
                "{version:?}"
            );

            let (_, other) = make_ca("other CA");
            let (cert, key) = leaf(&other, "intruder", false);
            let (s, _) = handshake(
                &server,
                client(&p.ca, Some((vec![cert], key)), version),
                SystemTime::now(),
            );
            assert_eq!(
                s.err().unwrap().kind,
                FailureKind::BadCertificate,
                "{version:?}"
            );

            // the certificate is valid today (rcgen's default notAfter is the year 4096); at a
            // `now` three thousand years on it has expired
            let later = SystemTime::now() + Duration::from_secs(3000 * 366 * 86_400);
            let c = client(
                &p.ca,
                Some((p.client_chain.clone(), p.client_key.clone())),
                version,
            );
            let (s, _) = handshake(&server, c, later);
            let e = s.err().unwrap();
            assert_eq!(e.kind, FailureKind::BadCertificate, "{version:?}: {e}");
            assert!(e.message.to_lowercase().contains("expired"), "{e}");
        }
    }

    #[test]
    fn versions_outside_the_configured_range_are_refused() {
        let p = pki();
        let only13 = server(&p, TlsVersion::Tls13, TlsVersion::Tls13);
        let c = client(
            &p.ca,
            Some((p.client_chain.clone(), p.client_key.clone())),
            TlsVersion::Tls12,
        );
        let (s, _) = handshake(&only13, c, SystemTime::now());
        assert!(s.is_err());
    }
}
