//! CMS SignedData (RFC 5652) around a configuration profile: what macOS and iOS check before
//! they show a `.mobileconfig` as signed ("Verified" once the signer's chain is trusted)
//! instead of "Unverified". The encapsulated content is the profile itself; one signer,
//! identified by issuer and serial, with the signed attributes contentType and messageDigest
//! (SHA-256), signing with ECDSA P-256 or RSA PKCS#1 v1.5 over SHA-256, the signer's chain
//! included. DER is written with yasna (rcgen's own ASN.1 writer); the signature comes from the
//! key through rcgen/ring.

use std::path::Path;

use rcgen::{KeyPair, SigningKey as _};
use yasna::models::ObjectIdentifier;
use yasna::{DERWriter, Tag};

use super::PkiError;

const ID_SIGNED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 2];
const ID_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 1];
const ID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const ID_CONTENT_TYPE: &[u64] = &[1, 2, 840, 113_549, 1, 9, 3];
const ID_MESSAGE_DIGEST: &[u64] = &[1, 2, 840, 113_549, 1, 9, 4];
const ID_RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113_549, 1, 1, 1];
const ID_ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10_045, 4, 3, 2];

/// Who signs profiles: a certificate with its key, and the certificates between it and a
/// root (included in the signature so that a device can build the chain).
pub struct ProfileSigner {
    cert: Vec<u8>,
    chain: Vec<Vec<u8>>,
    key: KeyPair,
    issuer: Vec<u8>,
    serial: Vec<u8>,
}

impl std::fmt::Debug for ProfileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileSigner")
            .field("cert", &super::fingerprint(&self.cert))
            .field("key", &"[redacted]")
            .finish()
    }
}

impl ProfileSigner {
    /// A signer from a certificate (DER), the rest of its chain (DER, leaf's issuer first) and
    /// its key. The key must belong to the certificate.
    pub fn new(cert: Vec<u8>, chain: Vec<Vec<u8>>, key: KeyPair) -> Result<Self, String> {
        use x509_parser::prelude::FromDer as _;
        let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&cert)
            .map_err(|e| format!("not a certificate: {e}"))?;
        let spki = parsed.tbs_certificate.subject_pki.raw;
        let ours = rcgen::PublicKeyData::subject_public_key_info(&key);
        if spki != ours.as_slice() {
            return Err("the key does not belong to the certificate".into());
        }
        if !matches!(
            key.algorithm(),
            a if a == &rcgen::PKCS_ECDSA_P256_SHA256 || a == &rcgen::PKCS_RSA_SHA256
        ) {
            return Err("only ECDSA P-256 and RSA keys sign profiles".into());
        }
        let issuer = parsed.tbs_certificate.issuer.as_raw().to_vec();
        let serial = parsed.tbs_certificate.raw_serial().to_vec();
        Ok(ProfileSigner {
            cert,
            chain,
            key,
            issuer,
            serial,
        })
    }

    /// A signer from PEM files: the certificate (the first in `cert`; any further ones are its
    /// chain), `extra_chain` appended (e.g. the CA), and the PKCS#8 key in `key`.
    pub fn load(cert: &Path, key: &Path, extra_chain: &[Vec<u8>]) -> Result<Self, PkiError> {
        let mut certs = super::load_cert_chain(cert)?
            .into_iter()
            .map(|c| c.as_ref().to_vec());
        let leaf = certs.next().ok_or_else(|| PkiError::Pem {
            path: cert.to_path_buf(),
            message: "holds no CERTIFICATE".into(),
        })?;
        let mut chain: Vec<Vec<u8>> = certs.collect();
        for c in extra_chain {
            if !chain.contains(c) && *c != leaf {
                chain.push(c.clone());
            }
        }
        let pem = zeroize::Zeroizing::new(std::fs::read_to_string(key).map_err(PkiError::io(key))?);
        let key_pair = KeyPair::from_pem(&pem).map_err(|e| PkiError::Pem {
            path: key.to_path_buf(),
            message: format!("not a PKCS#8 ECDSA P-256 or RSA key: {e}"),
        })?;
        ProfileSigner::new(leaf, chain, key_pair).map_err(|message| PkiError::Pem {
            path: cert.to_path_buf(),
            message,
        })
    }

    /// The signer's certificate, DER.
    pub fn certificate(&self) -> &[u8] {
        &self.cert
    }

    /// `content` wrapped in a DER ContentInfo of type SignedData, signed by this signer.
    pub fn sign(&self, content: &[u8]) -> Result<Vec<u8>, PkiError> {
        Ok(self.signed(content)?.der)
    }

    fn signed(&self, content: &[u8]) -> Result<Signed, PkiError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, content);
        let attrs = signed_attributes(digest.as_ref());
        // the signature covers the attributes as a SET (tag 0x31), not as the [0] they are
        // stored under (RFC 5652 §5.4)
        let to_sign = yasna::construct_der(|w| {
            w.write_set_of(|w| {
                for a in &attrs {
                    w.next().write_der(a);
                }
            });
        });
        let signature = self
            .key
            .sign(&to_sign)
            .map_err(|e| PkiError::Key(format!("signing the profile: {e}")))?;
        let rsa = self.key.algorithm() == &rcgen::PKCS_RSA_SHA256;
        let der = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_oid(&oid(ID_SIGNED_DATA));
                w.next().write_tagged(Tag::context(0), |w| {
                    self.write_signed_data(w, content, &attrs, &signature, rsa);
                });
            });
        });
        Ok(Signed {
            der,
            to_sign,
            signature,
        })
    }

    fn write_signed_data(
        &self,
        w: DERWriter<'_>,
        content: &[u8],
        attrs: &[Vec<u8>],
        signature: &[u8],
        rsa: bool,
    ) {
        w.write_sequence(|w| {
            w.next().write_u8(1);
            w.next().write_set_of(|w| sha256_algorithm(w.next()));
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(ID_DATA));
                w.next()
                    .write_tagged(Tag::context(0), |w| w.write_bytes(content));
            });
            w.next().write_tagged_implicit(Tag::context(0), |w| {
                w.write_set_of(|w| {
                    w.next().write_der(&self.cert);
                    for c in &self.chain {
                        w.next().write_der(c);
                    }
                });
            });
            w.next().write_set_of(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_u8(1);
                    w.next().write_sequence(|w| {
                        w.next().write_der(&self.issuer);
                        w.next().write_bigint_bytes(&self.serial, true);
                    });
                    sha256_algorithm(w.next());
                    w.next().write_tagged_implicit(Tag::context(0), |w| {
                        w.write_set_of(|w| {
                            for a in attrs {
                                w.next().write_der(a);
                            }
                        });
                    });
                    w.next().write_sequence(|w| {
                        if rsa {
                            w.next().write_oid(&oid(ID_RSA_ENCRYPTION));
                            w.next().write_null();
                        } else {
                            w.next().write_oid(&oid(ID_ECDSA_WITH_SHA256));
                        }
                    });
                    w.next().write_bytes(signature);
                });
            });
        });
    }
}

/// A signature and what it was made over.
struct Signed {
    der: Vec<u8>,
    #[cfg_attr(not(test), allow(dead_code))]
    to_sign: Vec<u8>,
    #[cfg_attr(not(test), allow(dead_code))]
    signature: Vec<u8>,
}

fn oid(arcs: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(arcs)
}

fn sha256_algorithm(w: DERWriter<'_>) {
    w.write_sequence(|w| {
        w.next().write_oid(&oid(ID_SHA256));
        w.next().write_null();
    });
}

/// The two signed attributes, each as its own DER (a SET OF is sorted by encoding).
fn signed_attributes(digest: &[u8]) -> Vec<Vec<u8>> {
    vec![
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_oid(&oid(ID_CONTENT_TYPE));
                w.next().write_set_of(|w| w.next().write_oid(&oid(ID_DATA)));
            });
        }),
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_oid(&oid(ID_MESSAGE_DIGEST));
                w.next().write_set_of(|w| w.next().write_bytes(digest));
            });
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(alg: &'static rcgen::SignatureAlgorithm) -> (Vec<u8>, KeyPair) {
        let key = if alg == &rcgen::PKCS_RSA_SHA256 {
            super::super::keys::generate(crate::config::tls::KeyType::Rsa2048).unwrap()
        } else {
            KeyPair::generate_for(alg).unwrap()
        };
        let params = rcgen::CertificateParams::new(vec!["radius.example".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.der().to_vec(), key)
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (cert, _) = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, other) = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        let err = ProfileSigner::new(cert, vec![], other).unwrap_err();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn the_content_is_inside_and_the_signature_verifies() {
        // the structure as a whole is checked by `openssl cms -verify` in tests/pki.rs
        use x509_parser::prelude::FromDer as _;
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_RSA_SHA256] {
            let (cert, key) = self_signed(alg);
            let signer = ProfileSigner::new(cert.clone(), vec![], key).unwrap();
            let content = b"<plist>profile</plist>";
            let signed = signer.signed(content).unwrap();
            assert!(contains(&signed.der, content));
            assert!(contains(&signed.der, &signed.signature));
            assert!(contains(&signed.der, &cert));
            // what was signed: the attributes as a SET, holding the content's digest
            assert_eq!(signed.to_sign[0], 0x31);
            let digest = ring::digest::digest(&ring::digest::SHA256, content);
            assert!(contains(&signed.to_sign, digest.as_ref()));
            // stored under [0] IMPLICIT: the same bytes after the tag
            assert!(contains(&signed.der, &signed.to_sign[1..]));
            let verify_alg: &dyn ring::signature::VerificationAlgorithm =
                if alg == &rcgen::PKCS_RSA_SHA256 {
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &ring::signature::ECDSA_P256_SHA256_ASN1
                };
            let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&cert).unwrap();
            let public = parsed
                .tbs_certificate
                .subject_pki
                .subject_public_key
                .data
                .to_vec();
            ring::signature::UnparsedPublicKey::new(verify_alg, public)
                .verify(&signed.to_sign, &signed.signature)
                .unwrap();
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}
