//! Keeping the PKI alive for years: a new server certificate from the existing CA
//! (`ca renew-server`), a new CA next to the old one (`ca rollover`) and the old one's
//! retirement (`ca retire-old`). Every file is written beside the one it replaces and renamed
//! over it; keys are 0600 from the start.
//!
//! During a rollover the server certificate stays signed by the previous CA: the devices
//! onboarded before it trust only that CA for the server. Certificates issued meanwhile come
//! from the new CA, and their owners get both CAs as trust anchors for the server (see
//! [`ca_bundle`]), so that the switch of the server certificate to the new CA at retirement
//! breaks nobody who was re-issued.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SubsecRound, Utc};

use crate::config::tls::{KeyType, PkiConfig};

use super::ca::{new_ca, server_certificate, BACKDATE};
use super::files::{write_file, PRIVATE, PUBLIC};
use super::{fingerprint, keys, Ca, CaFiles, PkiError};

/// What `ca renew-server` (or `ca retire-old`) wrote.
#[derive(Debug, Clone)]
pub struct ServerRenewal {
    /// The new chain (server, then CA).
    pub server_cert: PathBuf,
    /// The new key (0600).
    pub server_key: PathBuf,
    /// Copies of the certificate and key replaced (`.previous`), if there were any.
    pub kept: Option<(PathBuf, PathBuf)>,
    /// SHA-256 of the new server certificate.
    pub fingerprint: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// Whether the end was brought forward to the CA's end.
    pub capped_by_ca: bool,
    /// The CA that signed it: name and SHA-256.
    pub ca_name: String,
    /// SHA-256 of the signing CA certificate.
    pub ca_fingerprint: String,
}

/// `path` with `.previous` appended: where the file it replaces is kept.
fn kept_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".previous");
    PathBuf::from(name)
}

/// Reads a file that may not exist.
fn read_if_there(path: &Path) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, PkiError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(zeroize::Zeroizing::new(bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io(path)(e)),
    }
}

/// A new server certificate for `server_name` with a new key, signed by `ca`, valid from now
/// (less [`BACKDATE`]) for `lifetime` but not past the CA's end; written over
/// `files.server_cert` and `files.server_key` (each through a temporary file and a rename),
/// the replaced pair kept as `.previous`. The CA is not touched. An expired CA is refused.
pub fn renew_server(
    files: &CaFiles,
    ca: &Ca,
    organization: &str,
    server_name: &str,
    key_type: KeyType,
    lifetime: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<ServerRenewal, PkiError> {
    ca.check_usable(now)?;
    if lifetime <= chrono::Duration::zero() {
        return Err(PkiError::Invalid("the lifetime must be positive".into()));
    }
    let now = now.trunc_subsecs(0);
    let not_before = now - BACKDATE;
    let wanted = now
        .checked_add_signed(lifetime)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let capped_by_ca = wanted > ca.not_after();
    let not_after = wanted.min(ca.not_after());
    let (cert, key) = server_certificate(
        server_name,
        organization,
        key_type,
        not_before,
        not_after,
        ca.issuer(),
    )?;
    let chain = format!("{}{}", cert.pem(), ca.pem());

    let old_cert = read_if_there(&files.server_cert)?;
    let old_key = read_if_there(&files.server_key)?;
    let kept = match (old_cert, old_key) {
        (Some(c), Some(k)) => {
            let (kc, kk) = (kept_name(&files.server_cert), kept_name(&files.server_key));
            write_file(&kk, &k, PRIVATE)?;
            write_file(&kc, &c, PUBLIC)?;
            Some((kc, kk))
        }
        _ => None,
    };
    // the key first: a reader that sees the new chain finds its key already there (a reload
    // in between fails on the mismatch and keeps what it runs with)
    write_file(
        &files.server_key,
        keys::private_pem(&key).as_bytes(),
        PRIVATE,
    )?;
    write_file(&files.server_cert, chain.as_bytes(), PUBLIC)?;
    Ok(ServerRenewal {
        server_cert: files.server_cert.clone(),
        server_key: files.server_key.clone(),
        kept,
        fingerprint: fingerprint(cert.der()),
        not_before,
        not_after,
        capped_by_ca,
        ca_name: ca.name().to_string(),
        ca_fingerprint: ca.fingerprint(),
    })
}

/// The CA that signs the server certificate: the previous one while a rollover is under way
/// (every device onboarded before it trusts only that one), else the current one.
pub fn server_signing_ca(pki: &PkiConfig) -> Result<Ca, PkiError> {
    let previous = pki.previous_ca_cert();
    if previous.exists() {
        Ca::load(&previous, &pki.previous_ca_key())
    } else {
        Ca::load(&pki.ca_cert, &pki.ca_key)
    }
}

/// The CA certificates (PEM, current first) that owners' devices get as trust anchors for
/// the server: during a rollover the previous CA too.
pub fn ca_bundle(pki: &PkiConfig, current: &Ca) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut ders = vec![current.der().to_vec()];
    let previous = pki.previous_ca_cert();
    match std::fs::metadata(&previous) {
        Ok(_) => ders.push(super::load_ca_der(&previous)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(PkiError::io(&previous)(e)),
    }
    Ok(ders)
}

/// What `ca rollover` did.
#[derive(Debug, Clone)]
pub struct Rollover {
    /// Where the old CA certificate and key now are.
    pub previous_cert: PathBuf,
    /// The old key's new place.
    pub previous_key: PathBuf,
    /// SHA-256 of the old CA.
    pub previous_fingerprint: String,
    /// SHA-256 of the new CA.
    pub fingerprint: String,
    /// When the new CA was made: certificates issued before are the old CA's.
    pub started_at: DateTime<Utc>,
    /// End of the new CA's validity.
    pub not_after: DateTime<Utc>,
}

/// Makes a new CA in `pki.ca_cert`/`pki.ca_key`, moving the current one (certificate and key,
/// which must be here) to the previous-CA paths. Refused while a previous CA exists (a
/// rollover under way).
pub fn rollover(
    pki: &PkiConfig,
    key_type: KeyType,
    now: DateTime<Utc>,
) -> Result<Rollover, PkiError> {
    let (previous_cert, previous_key) = (pki.previous_ca_cert(), pki.previous_ca_key());
    if previous_cert.exists() || previous_key.exists() {
        return Err(PkiError::Invalid(format!(
            "a CA rollover is already under way ({} exists): finish it with `poortwachter ca retire-old` first",
            previous_cert.display()
        )));
    }
    let old = Ca::load(&pki.ca_cert, &pki.ca_key)?;
    let now = now.trunc_subsecs(0);
    let not_after = now + pki.ca_lifetime.chrono();
    let (cert, issuer) = new_ca(pki, key_type, now - BACKDATE, not_after)?;
    let rename = |from: &Path, to: &Path| std::fs::rename(from, to).map_err(PkiError::io(to));
    rename(&pki.ca_key, &previous_key)?;
    rename(&pki.ca_cert, &previous_cert)?;
    write_file(
        &pki.ca_key,
        keys::private_pem(issuer.key()).as_bytes(),
        PRIVATE,
    )?;
    write_file(&pki.ca_cert, cert.pem().as_bytes(), PUBLIC)?;
    Ok(Rollover {
        previous_cert,
        previous_key,
        previous_fingerprint: old.fingerprint(),
        fingerprint: fingerprint(cert.der()),
        started_at: now + chrono::Duration::seconds(1),
        not_after,
    })
}

/// When the current CA was made ([`rollover`]'s `started_at`): its notBefore plus the
/// back-dating, rounded up to the next second (X.509 keeps whole seconds; issue times have
/// fractions). Device certificates issued before it came from the previous CA; one issued in
/// the rollover's own second counts as the previous CA's too, which errs on the safe side
/// (`ca retire-old` waits for it).
pub fn rollover_started(current: &Ca) -> DateTime<Utc> {
    current.not_before() + BACKDATE + chrono::Duration::seconds(1)
}

/// What `ca retire-old` did with the previous CA's files.
#[derive(Debug, Clone)]
pub struct Retired {
    /// The previous CA certificate, renamed out of the trust list (`.retired`).
    pub archived_cert: PathBuf,
    /// The previous CA key, deleted: nothing may be signed with it again.
    pub deleted_key: PathBuf,
}

/// Takes the previous CA out of use: its certificate renamed to `.retired` (out of the EAP
/// trust list), its key deleted. The caller has made sure no device depends on it and has
/// renewed the server certificate from the current CA.
pub fn retire_previous(pki: &PkiConfig) -> Result<Retired, PkiError> {
    let cert = pki.previous_ca_cert();
    let key = pki.previous_ca_key();
    if !cert.exists() {
        return Err(PkiError::Invalid(format!(
            "no CA rollover is under way: {} does not exist",
            cert.display()
        )));
    }
    let mut archived = cert.as_os_str().to_owned();
    archived.push(".retired");
    let archived = PathBuf::from(archived);
    std::fs::rename(&cert, &archived).map_err(PkiError::io(&archived))?;
    match std::fs::remove_file(&key) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(PkiError::io(&key)(e)),
    }
    Ok(Retired {
        archived_cert: archived,
        deleted_key: key,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::ca::tests::test_ca;
    use super::*;

    #[test]
    fn renewal_keeps_the_ca_and_the_old_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (files, init) = test_ca(dir.path(), KeyType::EcdsaP256);
        let ca_before = std::fs::read(&files.ca_cert).unwrap();
        let old_chain = std::fs::read(&files.server_cert).unwrap();
        let ca = Ca::load(&files.ca_cert, &files.ca_key).unwrap();
        let now = Utc::now();
        let r = renew_server(
            &files,
            &ca,
            "Gemeente Test",
            "radius.gemeente.test",
            KeyType::EcdsaP256,
            chrono::Duration::days(730),
            now,
        )
        .unwrap();
        assert_eq!(std::fs::read(&files.ca_cert).unwrap(), ca_before);
        assert_eq!(r.ca_fingerprint, init.ca_fingerprint);
        assert!(!r.capped_by_ca);
        let (kept_cert, kept_key) = r.kept.clone().unwrap();
        assert_eq!(std::fs::read(&kept_cert).unwrap(), old_chain);
        for key in [&files.server_key, &kept_key] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let chain = super::super::load_cert_chain(&files.server_cert).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(fingerprint(&chain[0]), r.fingerprint);
        assert_eq!(chain[1].as_ref(), ca.der());

        // longer than the CA: brought forward; after the CA: refused
        let long = renew_server(
            &files,
            &ca,
            "O",
            "radius.gemeente.test",
            KeyType::EcdsaP256,
            chrono::Duration::days(365 * 30),
            now,
        )
        .unwrap();
        assert!(long.capped_by_ca);
        assert_eq!(long.not_after, init.ca_not_after);
        let err = renew_server(
            &files,
            &ca,
            "O",
            "radius.gemeente.test",
            KeyType::EcdsaP256,
            chrono::Duration::days(1),
            init.ca_not_after + chrono::Duration::days(1),
        )
        .unwrap_err();
        assert!(matches!(err, PkiError::CaExpired(_)), "{err}");
    }

    #[test]
    fn rollover_moves_the_old_ca_aside_and_retirement_takes_it_out() {
        let dir = tempfile::tempdir().unwrap();
        let (files, init) = test_ca(dir.path(), KeyType::EcdsaP256);
        let pki = PkiConfig {
            ca_cert: files.ca_cert.clone(),
            ca_key: files.ca_key.clone(),
            ..PkiConfig::default()
        };
        let now = Utc::now();
        let r = rollover(&pki, KeyType::EcdsaP256, now).unwrap();
        assert_eq!(r.previous_fingerprint, init.ca_fingerprint);
        assert_eq!(r.previous_cert, dir.path().join("pki/ca-previous.pem"));
        assert_ne!(r.fingerprint, init.ca_fingerprint);
        let current = Ca::load(&pki.ca_cert, &pki.ca_key).unwrap();
        assert_eq!(current.fingerprint(), r.fingerprint);
        assert_eq!(rollover_started(&current), r.started_at);
        assert_eq!(
            server_signing_ca(&pki).unwrap().fingerprint(),
            init.ca_fingerprint
        );
        assert_eq!(ca_bundle(&pki, &current).unwrap().len(), 2);
        let err = rollover(&pki, KeyType::EcdsaP256, now).unwrap_err();
        assert!(err.to_string().contains("already under way"), "{err}");

        let retired = retire_previous(&pki).unwrap();
        assert!(retired.archived_cert.exists());
        assert!(!pki.previous_ca_cert().exists());
        assert!(!pki.previous_ca_key().exists());
        assert_eq!(
            server_signing_ca(&pki).unwrap().fingerprint(),
            r.fingerprint
        );
        assert_eq!(ca_bundle(&pki, &current).unwrap().len(), 1);
        assert!(retire_previous(&pki).is_err());
    }
}
