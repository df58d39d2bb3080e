//! Key pairs for the CA, the server and devices: ECDSA P-256 from ring (through rcgen), RSA
//! from the `rsa` crate (ring signs with RSA keys but cannot generate them).

use rcgen::KeyPair;
use rustls::pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

use crate::config::tls::KeyType;

use super::PkiError;

/// A new key pair of `key_type`, signing with SHA-256.
pub(crate) fn generate(key_type: KeyType) -> Result<KeyPair, PkiError> {
    let bits = match key_type {
        KeyType::EcdsaP256 => {
            return Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?);
        }
        KeyType::Rsa2048 => 2048,
        KeyType::Rsa3072 => 3072,
    };
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
        .map_err(|e| PkiError::Key(format!("RSA {bits}: {e}")))?;
    let pkcs8 = key
        .to_pkcs8_der()
        .map_err(|e| PkiError::Key(format!("RSA {bits} as PKCS#8: {e}")))?;
    let der = Zeroizing::new(pkcs8.as_bytes().to_vec());
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(der.as_slice()),
        &rcgen::PKCS_RSA_SHA256,
    )?)
}

/// The key as a PKCS#8 PEM file's text, wiped from memory when dropped.
pub(crate) fn private_pem(key: &KeyPair) -> Zeroizing<String> {
    Zeroizing::new(key.serialize_pem())
}

/// The key as PKCS#8 DER, wiped from memory when dropped.
pub(crate) fn private_der(key: &KeyPair) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(key.serialize_der())
}

/// Whether it is an RSA key (which TLS 1.2 may also use for key transport).
pub(crate) fn is_rsa(key: &KeyPair) -> bool {
    key.algorithm() == &rcgen::PKCS_RSA_SHA256
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_by_default_and_rsa_on_request() {
        let ec = generate(KeyType::EcdsaP256).unwrap();
        assert_eq!(ec.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        assert!(private_pem(&ec).starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(!is_rsa(&ec));
        let rsa = generate(KeyType::Rsa2048).unwrap();
        assert!(is_rsa(&rsa));
        // what was written reads back as the same key
        let again = KeyPair::from_pem(&private_pem(&rsa)).unwrap();
        assert_eq!(again.public_key_raw(), rsa.public_key_raw());
    }
}
