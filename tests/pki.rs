//! The onboarding CA end to end through the library: what `ca init` writes loads into a rustls
//! server, the identity in the owner's PKCS#12 bundle completes a mutual TLS handshake with
//! it, and the CRL lists each reason as openssl reads it.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use chrono::Utc;
use poortwachter::config::tls::{KeyType, PkiConfig};
use poortwachter::pki::{self, Ca, CaFiles};
use poortwachter::registry::{Revocation, RevocationCause};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use uuid::Uuid;

fn files(dir: &Path) -> CaFiles {
    CaFiles {
        ca_cert: dir.join("pki/ca.pem"),
        ca_key: dir.join("pki/ca.key"),
        server_cert: dir.join("pki/server.pem"),
        server_key: dir.join("pki/server.key"),
    }
}

fn init(dir: &Path) -> (CaFiles, Ca) {
    let files = files(dir);
    let pki_config = PkiConfig {
        ca_name: "Gemeente Test CA".into(),
        organization: "Gemeente Test".into(),
        ..PkiConfig::default()
    };
    pki::init_ca(
        &files,
        &pki_config,
        "radius.gemeente.test",
        KeyType::EcdsaP256,
        false,
        Utc::now(),
    )
    .expect("ca init");
    let ca = Ca::load(&files.ca_cert, &files.ca_key).expect("load the CA");
    (files, ca)
}

fn issue(ca: &Ca) -> pki::IssuedCertificate {
    let now = Utc::now();
    let (nb, na) = pki::device_cert_validity(now, chrono::Duration::days(365), None);
    pki::issue_device_certificate(
        ca,
        KeyType::EcdsaP256,
        Uuid::new_v4(),
        "j.devries",
        "Gemeente Test",
        nb,
        na,
        now,
    )
    .expect("issue")
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (Debian package `openssl`)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Moves TLS records between the two ends until neither has anything to say.
fn handshake(client: &mut rustls::ClientConnection, server: &mut rustls::ServerConnection) {
    for _ in 0..20 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        let moved = !buf.is_empty();
        server.read_tls(&mut buf.as_slice()).unwrap();
        server.process_new_packets().expect("server accepts");
        let mut back = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut back).unwrap();
        }
        let answered = !back.is_empty();
        client.read_tls(&mut back.as_slice()).unwrap();
        client.process_new_packets().expect("client accepts");
        if !moved && !answered && !client.is_handshaking() && !server.is_handshaking() {
            return;
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn the_bundle_identity_authenticates_to_a_server_made_by_ca_init() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca) = init(dir.path());
    let issued = issue(&ca);
    let password = pki::one_time_password();
    let bundle = pki::pkcs12(
        &issued.der,
        &issued.key_pkcs8,
        ca.der(),
        "Werkplek",
        &password,
    )
    .unwrap();

    // the owner's device: identity from the bundle, trusting the CA for the server's name
    let store = p12_keystore::KeyStore::from_pkcs12(
        &bundle,
        password.expose(),
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .unwrap();
    let (_, chain) = store.private_key_chain().unwrap();
    let client_chain: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    let client_key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(
            pki::load_ca_der(&files.ca_cert).unwrap(),
        ))
        .unwrap();
    let roots = Arc::new(roots);
    let client_config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(client_chain, client_key)
        .unwrap();

    // the RADIUS server: the chain and key `ca init` wrote, client certificates from the CA
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            pki::load_cert_chain(&files.server_cert).unwrap(),
            pki::load_private_key(&files.server_key).unwrap(),
        )
        .unwrap();

    let mut client = rustls::ClientConnection::new(
        Arc::new(client_config),
        ServerName::try_from("radius.gemeente.test").unwrap(),
    )
    .unwrap();
    let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
    handshake(&mut client, &mut server);
    let peer = server.peer_certificates().expect("a client certificate");
    // what the EAP server looks the device up by
    assert_eq!(pki::fingerprint(&peer[0]), issued.fingerprint);
}

#[test]
fn openssl_reads_the_bundle_and_the_crl() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca) = init(dir.path());
    let (old, lost, revoked) = (issue(&ca), issue(&ca), issue(&ca));
    let password = pki::one_time_password();
    let p12 = dir.path().join("device.p12");
    let bundle = pki::pkcs12(&old.der, &old.key_pkcs8, ca.der(), "Werkplek", &password).unwrap();
    pki::write_file(&p12, &bundle, pki::PRIVATE).unwrap();
    let certs = openssl(&[
        "pkcs12",
        "-in",
        p12.to_str().unwrap(),
        "-passin",
        &format!("pass:{}", password.expose()),
        "-nokeys",
    ]);
    assert_eq!(certs.matches("BEGIN CERTIFICATE").count(), 2, "{certs}");

    let now = Utc::now();
    let entry = |c: &pki::IssuedCertificate, cause| Revocation {
        serial: c.serial.clone(),
        at: now,
        cause,
        device_id: Uuid::new_v4(),
    };
    let crl = pki::make_crl(
        &ca,
        &[
            entry(&old, RevocationCause::Superseded),
            entry(&lost, RevocationCause::DeviceLost),
            entry(&revoked, RevocationCause::DeviceRevoked),
        ],
        now,
        chrono::Duration::days(7),
    )
    .unwrap();
    let der = dir.path().join("crl.der");
    pki::write_file(&der, &crl.der, pki::PUBLIC).unwrap();
    let text = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    for (cert, reason) in [
        (&old, "Superseded"),
        (&lost, "Certificate Hold"),
        (&revoked, "Cessation Of Operation"),
    ] {
        let at = text
            .find(&format!("Serial Number: {}", cert.serial.to_uppercase()))
            .unwrap_or_else(|| panic!("{} not listed:\n{text}", cert.serial));
        let entry = &text[at..];
        let next = entry[1..]
            .find("Serial Number")
            .map_or(entry.len(), |n| n + 1);
        assert!(entry[..next].contains(reason), "{reason}:\n{text}");
    }
    assert!(text.contains(&crl.number.to_string()), "{text}");
    let pem = dir.path().join("crl.pem");
    pki::write_file(&pem, crl.pem().as_bytes(), pki::PUBLIC).unwrap();
    let checked = Command::new("openssl")
        .args(["crl", "-in", pem.to_str().unwrap(), "-noout", "-CAfile"])
        .arg(&files.ca_cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&checked.stderr).contains("verify OK"),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}
