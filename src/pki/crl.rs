//! The CRL (RFC 5280 section 5): the withdrawn device certificates the registry lists, signed
//! by the CA, for access points, other RADIUS servers or anyone else who checks our
//! certificates without asking the registry.

use chrono::{DateTime, SubsecRound, Utc};
use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};

use crate::registry::{Revocation, RevocationCause};

use super::{asn1_time, pem_encode, unhex, Ca, PkiError};

/// A signed CRL.
#[derive(Debug, Clone)]
pub struct Crl {
    /// DER.
    pub der: Vec<u8>,
    /// CRL number: the Unix time it was made, so that a later CRL has a larger one.
    pub number: u64,
    /// thisUpdate.
    pub this_update: DateTime<Utc>,
    /// nextUpdate.
    pub next_update: DateTime<Utc>,
    /// How many certificates it lists.
    pub entries: usize,
}

impl Crl {
    /// PEM (`X509 CRL`).
    pub fn pem(&self) -> String {
        pem_encode("X509 CRL", &self.der)
    }
}

/// The RFC 5280 section 5.3.1 reason for a registry cause: superseded; a revoked device has
/// ceased operation; a lost one is on hold (the one reason that can be lifted: found again).
fn reason(cause: RevocationCause) -> RevocationReason {
    match cause {
        RevocationCause::Superseded => RevocationReason::Superseded,
        RevocationCause::DeviceRevoked => RevocationReason::CessationOfOperation,
        RevocationCause::DeviceLost => RevocationReason::CertificateHold,
    }
}

/// A CRL listing `revocations`, issued `now` and valid for `lifetime`, signed by `ca`.
pub fn make_crl(
    ca: &Ca,
    revocations: &[Revocation],
    now: DateTime<Utc>,
    lifetime: chrono::Duration,
) -> Result<Crl, PkiError> {
    let this_update = now.trunc_subsecs(0);
    let next_update = this_update + lifetime;
    let number = u64::try_from(this_update.timestamp())
        .map_err(|_| PkiError::Invalid(format!("{now} is before 1970")))?;
    let mut revoked_certs = Vec::with_capacity(revocations.len());
    for r in revocations {
        let serial = unhex(&r.serial)
            .filter(|s| !s.is_empty() && s.len() <= 20)
            .ok_or_else(|| {
                PkiError::Invalid(format!("serial `{}` in the registry is not hex", r.serial))
            })?;
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time: asn1_time!(r.at.trunc_subsecs(0)),
            reason_code: Some(reason(r.cause)),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: asn1_time!(this_update),
        next_update: asn1_time!(next_update),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(ca.issuer())?;
    Ok(Crl {
        der: crl.der().as_ref().to_vec(),
        number,
        this_update,
        next_update,
        entries: revocations.len(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
    use uuid::Uuid;

    use super::super::ca::tests::test_ca;
    use super::super::{device_cert_validity, issue_device_certificate, since_epoch};
    use super::*;
    use crate::config::tls::KeyType;

    /// rustls (webpki) as the EAP-TLS server would check a client with this CRL.
    fn verify_with_crl(ca: &Ca, crl: &Crl, cert: &[u8], now: DateTime<Utc>) -> Result<(), String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .with_crls([CertificateRevocationListDer::from(crl.der.clone())])
        .build()
        .map_err(|e| e.to_string())?;
        verifier
            .verify_client_cert(
                &CertificateDer::from(cert.to_vec()),
                &[],
                UnixTime::since_unix_epoch(since_epoch(now).unwrap()),
            )
            .map(drop)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn listed_certificates_are_refused_others_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = test_ca(dir.path(), KeyType::EcdsaP256);
        let ca = Ca::load(&files.ca_cert, &files.ca_key).unwrap();
        let now = Utc::now();
        let (nb, na) = device_cert_validity(now, chrono::Duration::days(30), None);
        let issue = || {
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
            .unwrap()
        };
        let (revoked, lost, good) = (issue(), issue(), issue());
        let revocations = [
            Revocation {
                serial: revoked.serial.clone(),
                at: now - chrono::Duration::hours(1),
                cause: RevocationCause::DeviceRevoked,
                device_id: Uuid::new_v4(),
                issued_at: now,
            },
            Revocation {
                serial: lost.serial.clone(),
                at: now,
                cause: RevocationCause::DeviceLost,
                device_id: Uuid::new_v4(),
                issued_at: now,
            },
        ];
        let crl = make_crl(&ca, &revocations, now, chrono::Duration::days(7)).unwrap();
        assert_eq!(crl.entries, 2);
        assert_eq!(crl.number, now.timestamp() as u64);
        assert_eq!(crl.next_update - crl.this_update, chrono::Duration::days(7));
        assert!(crl.pem().starts_with("-----BEGIN X509 CRL-----\n"));
        let err = verify_with_crl(&ca, &crl, &revoked.der, now).unwrap_err();
        assert!(err.to_lowercase().contains("revoked"), "{err}");
        assert!(verify_with_crl(&ca, &crl, &lost.der, now).is_err());
        verify_with_crl(&ca, &crl, &good.der, now).unwrap();

        // an empty CRL is valid too
        let empty = make_crl(&ca, &[], now, chrono::Duration::days(7)).unwrap();
        verify_with_crl(&ca, &empty, &revoked.der, now).unwrap();
    }

    #[test]
    fn a_bad_serial_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = test_ca(dir.path(), KeyType::EcdsaP256);
        let ca = Ca::load(&files.ca_cert, &files.ca_key).unwrap();
        let bad = Revocation {
            serial: "not hex".into(),
            at: Utc::now(),
            cause: RevocationCause::Superseded,
            device_id: Uuid::new_v4(),
            issued_at: Utc::now(),
        };
        assert!(matches!(
            make_crl(&ca, &[bad], Utc::now(), chrono::Duration::days(1)),
            Err(PkiError::Invalid(_))
        ));
    }
}
