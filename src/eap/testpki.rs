//! A throwaway PKI and a rustls supplicant for tests and the fuzz targets: a CA, a server
//! certificate for `radius.test` and a device certificate, made fresh with rcgen. Built only
//! for tests and with the `sim` feature; it panics on errors, as test code may.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConnection, RootCertStore};

use super::tls::{TlsServer, TlsSettings};
use crate::config::tls::TlsVersion;

/// A CA, a server certificate and a client certificate, made fresh.
pub struct Pki {
    pub ca: CertificateDer<'static>,
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key: Vec<u8>,
    pub client_chain: Vec<CertificateDer<'static>>,
    pub client_key: Vec<u8>,
}

pub fn make_ca(name: &str) -> (CertificateDer<'static>, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    (cert.der().clone(), Issuer::new(params, key))
}

pub fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    name: &str,
    server: bool,
) -> (CertificateDer<'static>, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.der().clone(), key.serialize_der())
}

pub fn pki() -> Pki {
    let (ca, issuer) = make_ca("test CA");
    let (server, server_key) = leaf(&issuer, "radius.test", true);
    let (client, client_key) = leaf(&issuer, "device-1", false);
    Pki {
        ca: ca.clone(),
        server_chain: vec![server, ca.clone()],
        server_key,
        client_chain: vec![client, ca],
        client_key,
    }
}

pub fn server(p: &Pki, min: TlsVersion, max: TlsVersion) -> TlsServer {
    TlsServer::new(TlsSettings {
        server_chain: p.server_chain.clone(),
        server_key: PrivatePkcs8KeyDer::from(p.server_key.clone()).into(),
        client_roots: vec![p.ca.clone()],
        min,
        max,
    })
    .unwrap()
}

pub fn client(
    trust: &CertificateDer<'static>,
    chain: Option<(Vec<CertificateDer<'static>>, Vec<u8>)>,
    version: TlsVersion,
) -> ClientConnection {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let v: &'static rustls::SupportedProtocolVersion = match version {
        TlsVersion::Tls12 => &rustls::version::TLS12,
        TlsVersion::Tls13 => &rustls::version::TLS13,
    };
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[v])
        .unwrap()
        .with_root_certificates(roots);
    let config = match chain {
        Some((chain, key)) => b
            .with_client_auth_cert(chain, PrivatePkcs8KeyDer::from(key).into())
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    ClientConnection::new(
        Arc::new(config),
        ServerName::try_from("radius.test").unwrap(),
    )
    .unwrap()
}
