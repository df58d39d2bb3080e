//! Issuing a device bundle: the one function behind `device issue-cert`, `POST
//! /devices/{id}/certificate` and the web's download. The order makes a failure leave nothing
//! half-done: the registry is asked first (a refused device gets no key); the certificate and
//! every file are made off the runtime (key generation is slow); the caller's `stage` puts the
//! files where they will go (a staging directory, a response); the registry then records the
//! certificate with its audit entry. Nothing is handed out that the registry does not know,
//! and if recording fails the device's previous certificate stays current.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::model::{Device, Owner};
use crate::pki::{
    self, BundleFile, BundleInput, Ca, OneTimePassword, PkiError, Platform, ProfileSettings,
    ProfileSigner,
};
use crate::registry::{Change, Registry, RegistryError};
use crate::registry::{DeviceRef, NewCertificate};

/// What to issue.
#[derive(Debug)]
pub struct BundleRequest {
    /// The device.
    pub device: DeviceRef,
    /// For which systems (all when empty).
    pub platforms: Vec<Platform>,
    /// The PKCS#12 password; `None` makes a one-time password.
    pub password: Option<OneTimePassword>,
}

/// A bundle issued and recorded.
#[derive(Debug)]
pub struct IssuedBundle {
    /// The device, as recorded with its new certificate.
    pub device: Device,
    /// Its owner.
    pub owner: Owner,
    /// The certificate's serial, lowercase hex.
    pub serial: String,
    /// SHA-256 of the certificate, lowercase hex.
    pub fingerprint: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// Whether the end is the owner's contract end.
    pub capped_by_contract: bool,
    /// Whether the end is the CA's own end.
    pub capped_by_ca: bool,
    /// The PKCS#12 password (shown once, stored nowhere).
    pub password: OneTimePassword,
    /// Whether the password was made here (and must be shown) rather than given.
    pub password_generated: bool,
    /// The files, the PKCS#12 first.
    pub files: Vec<BundleFile>,
    /// What the operator should know (e.g. the Apple profile left unsigned).
    pub warnings: Vec<String>,
}

/// Why no bundle was issued.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The registry refused (unknown or revoked device, disabled owner ...) or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The CA or a file failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The worker that makes the key ended abnormally.
    #[error("making the certificate failed: {0}")]
    Worker(String),
}

/// Who signs Apple profiles: `pki.profile_signer_cert`/`_key` when set (an error if they
/// cannot be used); otherwise the RADIUS server's certificate and key, chained to the CA,
/// when this host has them; otherwise nobody, with a warning.
pub fn profile_signer(
    config: &Config,
    anchors: &[Vec<u8>],
) -> Result<(Option<ProfileSigner>, Option<String>), PkiError> {
    if let (Some(cert), Some(key)) = (
        &config.pki.profile_signer_cert,
        &config.pki.profile_signer_key,
    ) {
        return Ok((Some(ProfileSigner::load(cert, key, anchors)?), None));
    }
    match ProfileSigner::load(&config.eap.server_cert, &config.eap.server_key, anchors) {
        Ok(signer) => Ok((Some(signer), None)),
        Err(e) => Ok((
            None,
            Some(format!(
                "the .mobileconfig is not signed: the server certificate cannot sign it ({e}); \
                 set pki.profile_signer_cert and pki.profile_signer_key"
            )),
        )),
    }
}

/// Issues a bundle for `request.device`; `stage` gets the files before the certificate is
/// recorded and its result is returned with the bundle. See the module's description for the
/// order.
pub async fn issue_bundle<T, F>(
    registry: &Registry,
    config: &Arc<Config>,
    request: BundleRequest,
    change: &Change,
    stage: F,
) -> Result<(IssuedBundle, T), BundleError>
where
    F: FnOnce(&[BundleFile]) -> Result<T, PkiError>,
{
    let (device, owner) = registry
        .certificate_subject(&request.device, change.now)
        .await?;
    let config = Arc::clone(config);
    let now = change.now;
    let made = tokio::task::spawn_blocking(move || make(&config, device, owner, request, now))
        .await
        .map_err(|e| BundleError::Worker(e.to_string()))??;
    let staged = stage(&made.files)?;
    let device = registry
        .record_certificate(
            made.device.id,
            NewCertificate {
                serial: made.serial.clone(),
                fingerprint: made.fingerprint.clone(),
                not_before: made.not_before,
                not_after: made.not_after,
            },
            change,
        )
        .await?;
    Ok((IssuedBundle { device, ..made }, staged))
}

/// The certificate and the files (blocking: key generation).
fn make(
    config: &Config,
    device: Device,
    owner: Owner,
    request: BundleRequest,
    now: DateTime<Utc>,
) -> Result<IssuedBundle, PkiError> {
    let ca = Ca::load(&config.pki.ca_cert, &config.pki.ca_key)?;
    // during a CA rollover the server certificate is the previous CA's: trusted too
    let anchors = pki::ca_bundle(&config.pki, &ca)?;
    let (signer, signer_warning) = profile_signer(config, &anchors)?;
    let (password, password_generated) = match request.password {
        Some(p) => (p, false),
        None => (pki::one_time_password(), true),
    };
    let tz = &config.policy.timezone;
    let contract_end = owner.access_ends_at(tz);
    let (not_before, not_after) =
        pki::device_cert_validity(now, config.pki.device_cert_lifetime.chrono(), contract_end);
    let issued = pki::issue_device_certificate(
        &ca,
        config.pki.key_type,
        device.id,
        &owner.username,
        &config.pki.organization,
        not_before,
        not_after,
        now,
    )?;
    let p12 = pki::pkcs12(
        &issued.der,
        &issued.key_pkcs8,
        ca.der(),
        &format!("{} ({})", config.wifi.ssid, device.label),
        &password,
    )?;
    let mut bundle = pki::bundle_files(&BundleInput {
        profile: ProfileSettings {
            ssid: &config.wifi.ssid,
            server_name: &config.eap.server_name,
            organization: &config.pki.organization,
            ca_name: &config.pki.ca_name,
            ca_der: ca.der(),
            previous_ca_der: anchors.get(1).map(Vec::as_slice),
        },
        device_id: device.id,
        device_label: &device.label,
        owner: &owner.username,
        pkcs12: &p12,
        valid_until: issued
            .not_after
            .with_timezone(tz)
            .format("%d-%m-%Y %H:%M")
            .to_string(),
        signer: signer.as_ref(),
        platforms: &request.platforms,
    })?;
    // the generic "not signed" of an unsigned bundle gives way to the reason why
    if let Some(w) = signer_warning {
        bundle.warnings.retain(|x| !x.contains("not signed"));
        if request.platforms.is_empty() || request.platforms.contains(&Platform::Apple) {
            bundle.warnings.push(w);
        }
    }
    let capped_by_contract = contract_end.is_some_and(|end| issued.not_after >= end);
    Ok(IssuedBundle {
        device,
        owner,
        serial: issued.serial.clone(),
        fingerprint: issued.fingerprint.clone(),
        not_before: issued.not_before,
        not_after: issued.not_after,
        capped_by_contract,
        capped_by_ca: issued.capped_by_ca,
        password,
        password_generated,
        files: bundle.files,
        warnings: bundle.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, signer: bool) -> Config {
        let mut text = format!(
            "[database]\nurl = \"sqlite://unused.db\"\n[vlans]\nworkspace = 100\nguest = 200\n\
             quarantine = 666\n[eap]\nserver_cert = \"{d}/server.pem\"\nserver_key = \"{d}/server.key\"\n",
            d = dir.display()
        );
        if signer {
            text.push_str(&format!(
                "[pki]\nprofile_signer_cert = \"{d}/signer.pem\"\nprofile_signer_key = \"{d}/signer.key\"\n",
                d = dir.display()
            ));
        }
        Config::from_toml(&text, std::path::Path::new("t.toml"), Vec::new()).unwrap()
    }

    fn write_cert(dir: &std::path::Path, name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![format!("{name}.example")])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }

    #[test]
    fn the_configured_signer_first_then_the_server_then_none_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        // nothing there: unsigned, and the warning says what to set
        let (signer, warning) = profile_signer(&config(dir.path(), false), &[]).unwrap();
        assert!(signer.is_none());
        assert!(warning.unwrap().contains("pki.profile_signer_cert"));
        // the server's certificate signs by default
        let server = write_cert(dir.path(), "server");
        let (signer, warning) = profile_signer(&config(dir.path(), false), &[]).unwrap();
        assert_eq!(signer.unwrap().certificate(), server.as_slice());
        assert!(warning.is_none());
        // a configured signer wins; configured but unusable is an error, not a silent fallback
        assert!(profile_signer(&config(dir.path(), true), &[]).is_err());
        let configured = write_cert(dir.path(), "signer");
        let (signer, _) = profile_signer(&config(dir.path(), true), &[]).unwrap();
        assert_eq!(signer.unwrap().certificate(), configured.as_slice());
    }
}
