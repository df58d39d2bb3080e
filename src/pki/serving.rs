//! The EAP-TLS server's certificate, key and trusted CAs, read from the files `[eap]` and
//! `[pki]` name and checked: the one place that loads them, at start and at a reload.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::eap::tls::{TlsServer, TlsSettings, TlsSetupError};

use super::expiry::{cert_info, CertInfo};

/// What [`load_eap_tls`] found.
pub enum EapTls {
    /// EAP-TLS does not run; the reason, for the log.
    Off(String),
    /// Ready to serve.
    Ready {
        /// The TLS server (certificate, key, client CAs).
        tls: TlsServer,
        /// What the server certificate says (subject, validity).
        server: CertInfo,
        /// The CA files whose certificates client certificates may chain to.
        trusted: Vec<PathBuf>,
    },
}

impl std::fmt::Debug for EapTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EapTls::Off(why) => f.debug_tuple("Off").field(why).finish(),
            EapTls::Ready {
                server, trusted, ..
            } => f
                .debug_struct("Ready")
                .field("server", server)
                .field("trusted", trusted)
                .finish_non_exhaustive(),
        }
    }
}

/// Whether a file is there: `Ok(false)` only when it does not exist; a file that cannot be
/// looked at (a directory without search permission) is an error, never "not there".
fn present(path: &Path) -> Result<bool, TlsSetupError> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(TlsSetupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The CA files client certificates may chain to: `pki.ca_cert`, the previous CA while a
/// rollover is under way, and `eap.extra_trusted_cas`.
pub fn trusted_ca_files(config: &Config) -> Result<Vec<PathBuf>, TlsSetupError> {
    let mut cas = vec![config.pki.ca_cert.clone()];
    let previous = config.pki.previous_ca_cert();
    if present(&previous)? {
        cas.push(previous);
    }
    cas.extend(config.eap.extra_trusted_cas.iter().cloned());
    Ok(cas)
}

/// Reads and checks the EAP-TLS server's files at `now`: the server chain and key (they must
/// match, the leaf must be valid at `now`) and the trusted CAs. With `eap.enabled = false`
/// it is [`EapTls::Off`]; unset, also when neither the certificate nor the key exists yet.
/// Anything else that stops EAP-TLS from being served is an error: `serve` refuses to start
/// with it, a reload keeps the running certificate.
pub fn load_eap_tls(config: &Config, now: DateTime<Utc>) -> Result<EapTls, TlsSetupError> {
    let eap = &config.eap;
    if eap.enabled == Some(false) {
        return Ok(EapTls::Off(
            "802.1X EAP is disabled (eap.enabled = false)".into(),
        ));
    }
    let cert_there = present(&eap.server_cert)?;
    let key_there = present(&eap.server_key)?;
    if !cert_there && !key_there && eap.enabled.is_none() {
        return Ok(EapTls::Off(format!(
            "802.1X EAP-TLS is off: no server certificate yet ({}); run `poortwachter ca init`, \
             or set eap.enabled = false to say EAP is not wanted",
            eap.server_cert.display()
        )));
    }
    for (there, path) in [(cert_there, &eap.server_cert), (key_there, &eap.server_key)] {
        if !there {
            return Err(TlsSetupError::Missing { path: path.clone() });
        }
    }
    let trusted = trusted_ca_files(config)?;
    let cas: Vec<&Path> = trusted.iter().map(PathBuf::as_path).collect();
    let settings = TlsSettings::from_files(
        &eap.server_cert,
        &eap.server_key,
        &cas,
        eap.tls_min_version,
        eap.tls_max_version,
    )?;
    let leaf = settings
        .server_chain
        .first()
        .ok_or_else(|| TlsSetupError::Pem {
            path: eap.server_cert.clone(),
            what: "no certificate in the file".into(),
        })?;
    let server = cert_info(leaf.as_ref()).map_err(|what| TlsSetupError::Pem {
        path: eap.server_cert.clone(),
        what,
    })?;
    if now > server.not_after {
        return Err(TlsSetupError::Validity {
            path: eap.server_cert.clone(),
            what: format!(
                "expired on {}",
                server.not_after.format("%Y-%m-%d %H:%M UTC")
            ),
        });
    }
    if now < server.not_before {
        return Err(TlsSetupError::Validity {
            path: eap.server_cert.clone(),
            what: format!(
                "is not valid before {} (is the clock right?)",
                server.not_before.format("%Y-%m-%d %H:%M UTC")
            ),
        });
    }
    let tls = TlsServer::new(settings)?;
    Ok(EapTls::Ready {
        tls,
        server,
        trusted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tls::KeyType;

    fn config(dir: &Path, enabled: Option<bool>) -> Config {
        let mut c = Config::from_toml(
            "[database]\nurl = \"sqlite::memory:\"\n[vlans]\nworkspace = 100\nguest = 200\nquarantine = 666\n",
            Path::new("test.toml"),
            std::iter::empty(),
        )
        .unwrap();
        c.pki.ca_cert = dir.join("pki/ca.pem");
        c.pki.ca_key = dir.join("pki/ca.key");
        c.eap.server_cert = dir.join("pki/server.pem");
        c.eap.server_key = dir.join("pki/server.key");
        c.eap.enabled = enabled;
        c
    }

    #[test]
    fn off_unless_asked_for_when_there_is_no_certificate_yet() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let off = load_eap_tls(&config(dir.path(), None), now).unwrap();
        assert!(matches!(&off, EapTls::Off(why) if why.contains("no server certificate yet")));
        assert!(matches!(
            load_eap_tls(&config(dir.path(), Some(false)), now).unwrap(),
            EapTls::Off(_)
        ));
        let err = load_eap_tls(&config(dir.path(), Some(true)), now).unwrap_err();
        assert!(matches!(err, TlsSetupError::Missing { .. }), "{err}");
        assert!(
            err.to_string().contains("server.pem does not exist"),
            "{err}"
        );
    }

    #[test]
    fn ready_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (_, init) = super::super::ca::tests::test_ca(dir.path(), KeyType::EcdsaP256);
        let c = config(dir.path(), Some(true));
        let now = Utc::now();
        match load_eap_tls(&c, now).unwrap() {
            EapTls::Ready {
                server, trusted, ..
            } => {
                assert_eq!(server.not_after, init.server_not_after);
                assert_eq!(trusted, vec![c.pki.ca_cert.clone()]);
            }
            other => panic!("{other:?}"),
        }
        // expired, even when not required
        let later = init.server_not_after + chrono::Duration::seconds(1);
        let err = load_eap_tls(&config(dir.path(), None), later).unwrap_err();
        assert!(err.to_string().contains("expired on"), "{err}");

        // a key that is not the certificate's
        let other = tempfile::tempdir().unwrap();
        let (other_files, _) = super::super::ca::tests::test_ca(other.path(), KeyType::EcdsaP256);
        std::fs::copy(&other_files.server_key, &c.eap.server_key).unwrap();
        let err = load_eap_tls(&c, now).unwrap_err();
        assert!(matches!(err, TlsSetupError::Rustls(_)), "{err}");
    }

    #[test]
    fn an_unreadable_file_is_permission_denied_not_missing() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), None);
        // the kind of error is what the message is made from (tests/pki.rs makes a real
        // one, as a user other than root)
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let err = TlsSetupError::Read {
            path: c.eap.server_key.clone(),
            source: denied,
        };
        assert!(
            err.to_string().starts_with(&format!(
                "permission denied on {}",
                c.eap.server_key.display()
            )),
            "{err}"
        );
    }
}
