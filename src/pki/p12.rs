//! The PKCS#12 bundle an owner installs (key, certificate, CA), and the one-time password
//! that protects it.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};
use rand::Rng as _;
use zeroize::Zeroizing;

use super::PkiError;

/// A password shown once and never stored: wiped from memory when dropped, and redacted in
/// `Debug` so that it cannot reach a log by accident.
pub struct OneTimePassword(Zeroizing<String>);

impl OneTimePassword {
    /// A password given by the operator (`--password-file`).
    pub fn given(password: &str) -> Result<OneTimePassword, PkiError> {
        let password = password.trim_end_matches(['\r', '\n']);
        if password.chars().count() < 8 {
            return Err(PkiError::Invalid(
                "the PKCS#12 password must have at least 8 characters".into(),
            ));
        }
        Ok(OneTimePassword(Zeroizing::new(password.to_string())))
    }

    /// The password itself, to show once or to encrypt with.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for OneTimePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneTimePassword([redacted])")
    }
}

/// Letters and digits that cannot be mistaken for one another when read aloud or typed from
/// a screen (no 0/o, 1/l/i, no upper case).
const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// A random password of four groups of five characters (`k7mqz-...`), about 99 bits, from
/// the operating system's generator.
pub fn one_time_password() -> OneTimePassword {
    let mut rng = rand::rngs::OsRng;
    let mut out = Zeroizing::new(String::with_capacity(23));
    for group in 0..4 {
        if group > 0 {
            out.push('-');
        }
        for _ in 0..5 {
            out.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
        }
    }
    OneTimePassword(out)
}

/// A PKCS#12 file holding the key with its certificate and the CA certificate, under
/// `alias` (the name a device shows for the identity), encrypted with `password`.
///
/// 3DES with a SHA-1 MAC (PBES1), not PBES2/AES: macOS and iOS before 15, and older Android
/// and Windows, refuse to import AES-encrypted PKCS#12 files. The password is random and
/// long, so the older key derivation is not the weak point.
pub fn pkcs12(
    cert_der: &[u8],
    key_pkcs8: &[u8],
    ca_der: &[u8],
    alias: &str,
    password: &OneTimePassword,
) -> Result<Vec<u8>, PkiError> {
    let p12 = |e: p12_keystore::error::Error| PkiError::Pkcs12(e.to_string());
    let key = PrivateKey::from_der(key_pkcs8).map_err(p12)?;
    let certs = [
        Certificate::from_der(cert_der).map_err(p12)?,
        Certificate::from_der(ca_der).map_err(p12)?,
    ];
    // the usual localKeyId: SHA-1 of the certificate
    let key_id = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der);
    let mut store = KeyStore::new();
    store.add_entry(
        alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(key_id.as_ref(), key, certs)),
    );
    store
        .writer(password.expose())
        .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
        .mac_algorithm(MacAlgorithm::HmacSha1)
        .write()
        .map_err(p12)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use p12_keystore::Pkcs12ImportPolicy;
    use uuid::Uuid;

    use super::super::ca::tests::test_ca;
    use super::super::{device_cert_validity, issue_device_certificate, Ca};
    use super::*;
    use crate::config::tls::KeyType;

    #[test]
    fn passwords_are_four_groups_of_five_unambiguous_characters() {
        let p = one_time_password();
        let groups: Vec<&str> = p.expose().split('-').collect();
        assert_eq!(groups.len(), 4);
        for g in groups {
            assert_eq!(g.len(), 5);
            assert!(g.bytes().all(|b| ALPHABET.contains(&b)), "{g}");
        }
        assert_ne!(one_time_password().expose(), one_time_password().expose());
        assert_eq!(format!("{p:?}"), "OneTimePassword([redacted])");
        assert!(OneTimePassword::given("short\n").is_err());
        assert_eq!(
            OneTimePassword::given("long enough\n").unwrap().expose(),
            "long enough"
        );
    }

    #[test]
    fn the_bundle_opens_with_the_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let (files, init) = test_ca(dir.path(), KeyType::EcdsaP256);
        let ca = Ca::load(&files.ca_cert, &files.ca_key).unwrap();
        let now = Utc::now();
        let (nb, na) = device_cert_validity(now, chrono::Duration::days(30), None);
        let issued = issue_device_certificate(
            &ca,
            KeyType::EcdsaP256,
            Uuid::new_v4(),
            "j.devries",
            "Gemeente Test",
            nb,
            na,
            now,
        )
        .unwrap();
        let password = one_time_password();
        let bundle = pkcs12(
            &issued.der,
            &issued.key_pkcs8,
            &init.ca_der,
            "Werkplek",
            &password,
        )
        .unwrap();
        let store =
            KeyStore::from_pkcs12(&bundle, password.expose(), Pkcs12ImportPolicy::Strict).unwrap();
        let (alias, chain) = store.private_key_chain().expect("a key with its chain");
        assert_eq!(alias, "Werkplek");
        assert_eq!(chain.key().as_der(), issued.key_pkcs8.as_slice());
        assert_eq!(chain.certs()[0].as_der(), issued.der.as_slice());
        assert_eq!(chain.certs()[1].as_der(), init.ca_der.as_slice());
        assert!(
            KeyStore::from_pkcs12(&bundle, "wrong-password", Pkcs12ImportPolicy::Strict).is_err()
        );
    }
}
