//! Device certificates: for EAP-TLS client authentication, naming the device (CN and a
//! `urn:uuid:` SAN) and its owner (OU and a `urn:poortwachter:owner:` SAN), never valid past
//! the owner's contract.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType,
    SerialNumber,
};
use rustls::pki_types::{CertificateDer, UnixTime};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::config::tls::KeyType;

use super::ca::{subject, Ca};
use super::{asn1_time, fingerprint, hex, keys, random_serial, since_epoch, PkiError};

/// A certificate just issued, with its key.
pub struct IssuedCertificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate, PEM.
    pub pem: String,
    /// Its private key, PKCS#8 DER (wiped when dropped).
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// Whether the end was brought forward to the CA's own end (no certificate outlives its
    /// CA).
    pub capped_by_ca: bool,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("serial", &self.serial)
            .field("fingerprint", &self.fingerprint)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key_pkcs8", &"[redacted]")
            .finish()
    }
}

/// The validity of a device certificate issued at `now`: from five minutes before (clocks
/// that lag) to `lifetime` later, but never past `contract_end` (the owner's
/// [`crate::model::Owner::access_ends_at`]). Whole seconds, as X.509 keeps them, so that what
/// the registry records equals what the certificate says.
pub fn device_cert_validity(
    now: DateTime<Utc>,
    lifetime: chrono::Duration,
    contract_end: Option<DateTime<Utc>>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let now = now.trunc_subsecs(0);
    let not_before = now - chrono::Duration::minutes(5);
    let not_after = now
        .checked_add_signed(lifetime)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .trunc_subsecs(0);
    let not_after = match contract_end {
        Some(end) => not_after.min(end.trunc_subsecs(0)),
        None => not_after,
    };
    (not_before, not_after)
}

/// Issues a client certificate for device `device_id` of `owner`, signed by `ca`, with a new
/// key of `key_type`: subject `CN=<device id>, O=<organization>, OU=<owner>`; SAN URIs
/// `urn:uuid:<device id>` and `urn:poortwachter:owner:<owner>`; digitalSignature, clientAuth;
/// a random 16-byte serial. Checked against the CA before it is returned. An expired CA
/// issues nothing ([`PkiError::CaExpired`]); a `not_after` past the CA's own end is brought
/// forward to it (`capped_by_ca`).
#[allow(clippy::too_many_arguments)]
pub fn issue_device_certificate(
    ca: &Ca,
    key_type: KeyType,
    device_id: Uuid,
    owner: &str,
    organization: &str,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<IssuedCertificate, PkiError> {
    ca.check_usable(now)?;
    let capped_by_ca = not_after > ca.not_after();
    let not_after = not_after.min(ca.not_after());
    if not_after <= not_before {
        return Err(PkiError::Invalid(format!(
            "the certificate would end ({not_after}) before it starts ({not_before})"
        )));
    }
    let uri = |s: String| {
        s.as_str()
            .try_into()
            .map(SanType::URI)
            .map_err(|_| PkiError::Invalid(format!("`{s}` cannot go into a certificate")))
    };
    let key = keys::generate(key_type)?;
    let serial = random_serial()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&device_id.to_string(), organization);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, owner);
    params.subject_alt_names = vec![
        uri(format!("urn:uuid:{device_id}"))?,
        uri(format!("urn:poortwachter:owner:{owner}"))?,
    ];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = asn1_time!(not_before);
    params.not_after = asn1_time!(not_after);
    let cert = params.signed_by(&key, ca.issuer())?;
    verify_client(ca.der(), cert.der(), now)?;
    Ok(IssuedCertificate {
        der: cert.der().to_vec(),
        pem: cert.pem(),
        key_pkcs8: keys::private_der(&key),
        serial: hex(&serial),
        fingerprint: fingerprint(cert.der()),
        not_before,
        not_after,
        capped_by_ca,
    })
}

/// Verifies a client certificate against the CA as the EAP-TLS server will (webpki through
/// rustls, clientAuth, at `now`).
pub(crate) fn verify_client(
    ca_der: &[u8],
    cert_der: &[u8],
    now: DateTime<Utc>,
) -> Result<(), PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(|e| PkiError::Verify(e.to_string()))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| PkiError::Verify(e.to_string()))?;
    let at = UnixTime::since_unix_epoch(since_epoch(now)?);
    verifier
        .verify_client_cert(&CertificateDer::from(cert_der), &[], at)
        .map(drop)
        .map_err(|e| PkiError::Verify(e.to_string()))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::ca::tests::test_ca;
    use super::*;

    fn issue(
        ca: &Ca,
        now: DateTime<Utc>,
        contract_end: Option<DateTime<Utc>>,
    ) -> IssuedCertificate {
        let (nb, na) = device_cert_validity(now, chrono::Duration::days(365), contract_end);
        issue_device_certificate(
            ca,
            KeyType::EcdsaP256,
            Uuid::new_v4(),
            "j.devries",
            "Gemeente Test",
            nb,
            na,
            now,
        )
        .unwrap()
    }

    #[test]
    fn validity_is_capped_by_the_contract() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
            + chrono::Duration::milliseconds(345);
        let (nb, na) = device_cert_validity(now, chrono::Duration::days(365), None);
        assert_eq!(nb.to_rfc3339(), "2026-11-28T09:55:00+00:00");
        assert_eq!(na.to_rfc3339(), "2027-11-28T10:00:00+00:00");
        let end = Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap();
        let (_, na) = device_cert_validity(now, chrono::Duration::days(365), Some(end));
        assert_eq!(na, end);
    }

    #[test]
    fn a_device_certificate_verifies_as_a_client_against_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = test_ca(dir.path(), KeyType::EcdsaP256);
        let ca = Ca::load(&files.ca_cert, &files.ca_key).unwrap();
        let now = Utc::now();
        let contract_end = now + chrono::Duration::days(30);
        let issued = issue(&ca, now, Some(contract_end));
        assert_eq!(issued.fingerprint, fingerprint(&issued.der));
        assert_eq!(issued.serial.len(), 32);
        assert_eq!(issued.not_after, contract_end.trunc_subsecs(0));
        assert!(!format!("{issued:?}").contains("key_pkcs8: ["));
        verify_client(ca.der(), &issued.der, now).unwrap();
        // not after the contract ended
        let err = verify_client(
            ca.der(),
            &issued.der,
            contract_end + chrono::Duration::seconds(1),
        )
        .unwrap_err();
        assert!(err.to_string().to_lowercase().contains("expired"), "{err}");
        // nor against another CA
        let other = tempfile::tempdir().unwrap();
        let (_, other_ca) = test_ca(other.path(), KeyType::EcdsaP256);
        assert!(verify_client(&other_ca.ca_der, &issued.der, now).is_err());
    }

    #[test]
    fn rsa_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = test_ca(dir.path(), KeyType::Rsa2048);
        let ca = Ca::load(&files.ca_cert, &files.ca_key).unwrap();
        assert!(ca.is_rsa());
        let now = Utc::now();
        let (nb, na) = device_cert_validity(now, chrono::Duration::days(30), None);
        let issued = issue_device_certificate(
            &ca,
            KeyType::Rsa2048,
            Uuid::new_v4(),
            "j.devries",
            "Gemeente Test",
            nb,
            na,
            now,
        )
        .unwrap();
        verify_client(ca.der(), &issued.der, now).unwrap();
    }

    #[test]
    fn no_certificate_outlives_its_ca_and_an_expired_ca_issues_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (files, init) = test_ca(dir.path(), KeyType::EcdsaP256);
        let ca = Ca::load(&files.ca_cert, &files.ca_key).unwrap();
        assert_eq!(ca.not_after(), init.ca_not_after);
        let now = Utc::now();
        let issue_for = |now: DateTime<Utc>, years: i64| {
            let (nb, na) = device_cert_validity(now, chrono::Duration::days(365 * years), None);
            issue_device_certificate(
                &ca,
                KeyType::EcdsaP256,
                Uuid::new_v4(),
                "j.devries",
                "O",
                nb,
                na,
                now,
            )
        };
        let short = issue_for(now, 1).unwrap();
        assert!(!short.capped_by_ca);
        let long = issue_for(now, 20).unwrap();
        assert!(long.capped_by_ca);
        assert_eq!(long.not_after, init.ca_not_after);
        verify_client(ca.der(), &long.der, now).unwrap();

        let after = init.ca_not_after + chrono::Duration::seconds(1);
        let err = issue_for(after, 1).unwrap_err();
        assert!(
            matches!(err, PkiError::CaExpired(end) if end == init.ca_not_after),
            "{err}"
        );
        assert!(err.to_string().contains("ca rollover"), "{err}");
    }

    #[test]
    fn a_certificate_that_ends_before_it_starts_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = test_ca(dir.path(), KeyType::EcdsaP256);
        let ca = Ca::load(&files.ca_cert, &files.ca_key).unwrap();
        let now = Utc::now();
        let (nb, na) = device_cert_validity(
            now,
            chrono::Duration::days(30),
            Some(now - chrono::Duration::days(1)),
        );
        let err = issue_device_certificate(
            &ca,
            KeyType::EcdsaP256,
            Uuid::new_v4(),
            "x",
            "O",
            nb,
            na,
            now,
        )
        .unwrap_err();
        assert!(matches!(err, PkiError::Invalid(_)), "{err}");
    }
}
