//! The certificate side of the configuration: `[pki]` (the onboarding CA), `[eap]` (EAP-TLS
//! on the authentication port) and `[wifi]` (what the owners' Wi-Fi profiles configure).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Config, HumanDuration};

/// The key algorithm of a certificate the CA makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256: small, fast, supported by every current supplicant.
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// RSA 2048 with SHA-256, for old supplicants.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA 3072 with SHA-256.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
}

impl KeyType {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
        }
    }
}

impl std::str::FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ecdsa-p256" | "ecdsa" | "p256" => Ok(KeyType::EcdsaP256),
            "rsa-2048" | "rsa" => Ok(KeyType::Rsa2048),
            "rsa-3072" => Ok(KeyType::Rsa3072),
            _ => Err(format!(
                "`{s}` is not a key type: use ecdsa-p256, rsa-2048 or rsa-3072"
            )),
        }
    }
}

/// `[pki]`: the onboarding CA. Relative paths are relative to the working directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkiConfig {
    /// The CA certificate (PEM).
    #[serde(default = "default_ca_cert")]
    pub ca_cert: PathBuf,
    /// The CA private key (PKCS#8 PEM, written 0600).
    #[serde(default = "default_ca_key")]
    pub ca_key: PathBuf,
    /// Key algorithm for the CA, the server and device certificates.
    #[serde(default)]
    pub key_type: KeyType,
    /// The CA's common name.
    #[serde(default = "default_ca_name")]
    pub ca_name: String,
    /// Organization (O) in every certificate's subject.
    #[serde(default = "default_organization")]
    pub organization: String,
    /// Validity of the CA certificate.
    #[serde(default = "default_ca_lifetime")]
    pub ca_lifetime: HumanDuration,
    /// Validity of a device certificate (never past the owner's `valid_until`).
    #[serde(default = "default_device_cert_lifetime")]
    pub device_cert_lifetime: HumanDuration,
    /// Validity of the RADIUS server certificate that `ca init` makes.
    #[serde(default = "default_server_cert_lifetime")]
    pub server_cert_lifetime: HumanDuration,
    /// How far ahead `ca crl` sets the CRL's nextUpdate.
    #[serde(default = "default_crl_lifetime")]
    pub crl_lifetime: HumanDuration,
    /// Warn (log, `check-config`) when a certificate the service depends on (CA, server,
    /// API) has this little left.
    #[serde(default = "default_expiry_warning")]
    pub expiry_warning: HumanDuration,
    /// The previous CA certificate during a CA rollover (`ca rollover` moves the old CA
    /// here): still trusted for client certificates until `ca retire-old`. Unset: `ca_cert`'s
    /// name with `-previous` (`ca.pem` -> `ca-previous.pem`).
    #[serde(default)]
    pub previous_ca_cert: Option<PathBuf>,
    /// The previous CA's key (for its CRL and the server certificate during the rollover).
    /// Unset: `ca_key`'s name with `-previous`.
    #[serde(default)]
    pub previous_ca_key: Option<PathBuf>,
    /// The certificate (PEM, chain after it) that signs the Apple `.mobileconfig` profiles in
    /// device bundles. macOS and iOS show a profile as verified when this chain ends at a root
    /// they trust: a publicly trusted certificate (e.g. the municipality's web server's) shows
    /// verified on a device that has never seen our CA. Unset: the RADIUS server certificate
    /// (`eap.server_cert`) signs, chained to our CA.
    #[serde(default)]
    pub profile_signer_cert: Option<PathBuf>,
    /// The key of `profile_signer_cert` (PKCS#8 PEM).
    #[serde(default)]
    pub profile_signer_key: Option<PathBuf>,
}

impl PkiConfig {
    /// Where the previous CA certificate is during a rollover.
    pub fn previous_ca_cert(&self) -> PathBuf {
        self.previous_ca_cert
            .clone()
            .unwrap_or_else(|| previous(&self.ca_cert))
    }

    /// Where the previous CA key is during a rollover.
    pub fn previous_ca_key(&self) -> PathBuf {
        self.previous_ca_key
            .clone()
            .unwrap_or_else(|| previous(&self.ca_key))
    }
}

/// `dir/ca.pem` -> `dir/ca-previous.pem`.
fn previous(path: &std::path::Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match path.extension() {
        Some(ext) => path.with_file_name(format!("{stem}-previous.{}", ext.to_string_lossy())),
        None => path.with_file_name(format!("{stem}-previous")),
    }
}

fn default_ca_cert() -> PathBuf {
    PathBuf::from("var/pki/ca.pem")
}
fn default_ca_key() -> PathBuf {
    PathBuf::from("var/pki/ca.key")
}
fn default_ca_name() -> String {
    "poortwachter onboarding CA".to_string()
}
fn default_organization() -> String {
    "poortwachter".to_string()
}
fn default_ca_lifetime() -> HumanDuration {
    HumanDuration(Duration::from_secs(10 * 365 * 86_400))
}
fn default_device_cert_lifetime() -> HumanDuration {
    HumanDuration(Duration::from_secs(365 * 86_400))
}
fn default_server_cert_lifetime() -> HumanDuration {
    HumanDuration(Duration::from_secs(2 * 365 * 86_400))
}
fn default_crl_lifetime() -> HumanDuration {
    HumanDuration(Duration::from_secs(7 * 86_400))
}
fn default_expiry_warning() -> HumanDuration {
    HumanDuration(Duration::from_secs(30 * 86_400))
}

impl Default for PkiConfig {
    fn default() -> Self {
        PkiConfig {
            ca_cert: default_ca_cert(),
            ca_key: default_ca_key(),
            key_type: KeyType::default(),
            ca_name: default_ca_name(),
            organization: default_organization(),
            ca_lifetime: default_ca_lifetime(),
            device_cert_lifetime: default_device_cert_lifetime(),
            server_cert_lifetime: default_server_cert_lifetime(),
            crl_lifetime: default_crl_lifetime(),
            expiry_warning: default_expiry_warning(),
            previous_ca_cert: None,
            previous_ca_key: None,
            profile_signer_cert: None,
            profile_signer_key: None,
        }
    }
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (EAP-TLS per RFC 5216).
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 (EAP-TLS per RFC 9190).
    #[serde(rename = "1.3")]
    Tls13,
}

impl TlsVersion {
    /// `1.2` or `1.3`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        }
    }
}

/// `[eap]`: 802.1X EAP-TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EapConfig {
    /// Serve EAP: `true` makes it required (`serve` refuses to start when the server
    /// certificate cannot be served: missing, unreadable, expired, not matching its key);
    /// `false` turns it off (EAP requests get an Access-Reject with EAP-Failure); unset, it
    /// runs when the server certificate and key exist (none yet: off, with a warning) and
    /// refuses to start when they exist but cannot be served.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The RADIUS server's certificate chain (PEM), presented to supplicants.
    #[serde(default = "default_server_cert")]
    pub server_cert: PathBuf,
    /// Its private key (PKCS#8, SEC1 or PKCS#1 PEM).
    #[serde(default = "default_server_key")]
    pub server_key: PathBuf,
    /// The DNS name in the server certificate: supplicants and the Wi-Fi profiles check it.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// CA certificates (PEM) trusted for client certificates besides the onboarding CA.
    #[serde(default)]
    pub extra_trusted_cas: Vec<PathBuf>,
    /// The most TLS data in one EAP-TLS packet; larger messages are fragmented.
    #[serde(default = "default_fragment_size")]
    pub fragment_size: u16,
    /// The lowest TLS version offered.
    #[serde(default = "default_tls_min")]
    pub tls_min_version: TlsVersion,
    /// The highest TLS version offered.
    #[serde(default = "default_tls_max")]
    pub tls_max_version: TlsVersion,
    /// Unfinished EAP conversations kept at once; beyond it the least recently active one is
    /// dropped.
    #[serde(default = "default_max_conversations")]
    pub max_conversations: usize,
    /// An EAP conversation with no answer from the supplicant for this long is dropped.
    #[serde(default = "default_conversation_timeout")]
    pub conversation_timeout: HumanDuration,
}

fn default_server_cert() -> PathBuf {
    PathBuf::from("var/pki/server.pem")
}
fn default_server_key() -> PathBuf {
    PathBuf::from("var/pki/server.key")
}
fn default_server_name() -> String {
    "radius.poortwachter.test".to_string()
}
fn default_fragment_size() -> u16 {
    1024
}
fn default_tls_min() -> TlsVersion {
    TlsVersion::Tls12
}
fn default_tls_max() -> TlsVersion {
    TlsVersion::Tls13
}
fn default_max_conversations() -> usize {
    4_096
}
fn default_conversation_timeout() -> HumanDuration {
    // FreeRADIUS's timer_expire: room for a user answering a first-connect prompt
    HumanDuration(Duration::from_secs(60))
}

impl Default for EapConfig {
    fn default() -> Self {
        EapConfig {
            enabled: None,
            server_cert: default_server_cert(),
            server_key: default_server_key(),
            server_name: default_server_name(),
            extra_trusted_cas: Vec::new(),
            fragment_size: default_fragment_size(),
            tls_min_version: default_tls_min(),
            tls_max_version: default_tls_max(),
            max_conversations: default_max_conversations(),
            conversation_timeout: default_conversation_timeout(),
        }
    }
}

/// `[wifi]`: the network the onboarding profiles set up on a device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifiConfig {
    /// The SSID of the closed network.
    #[serde(default = "default_ssid")]
    pub ssid: String,
}

fn default_ssid() -> String {
    "Werkplek".to_string()
}

impl Default for WifiConfig {
    fn default() -> Self {
        WifiConfig {
            ssid: default_ssid(),
        }
    }
}

/// Cross-field checks of the three sections.
pub(super) fn problems(config: &Config, push: &mut impl FnMut(String, String)) {
    let eap = &config.eap;
    if !(64..=3000).contains(&eap.fragment_size) {
        push(
            "eap.fragment_size".into(),
            "must be between 64 and 3000 bytes".into(),
        );
    }
    if eap.tls_min_version > eap.tls_max_version {
        push(
            "eap.tls_min_version".into(),
            format!(
                "{} is above eap.tls_max_version {}",
                eap.tls_min_version.as_str(),
                eap.tls_max_version.as_str()
            ),
        );
    }
    if !(1..=1_000_000).contains(&eap.max_conversations) {
        push(
            "eap.max_conversations".into(),
            "must be between 1 and 1000000".into(),
        );
    }
    if eap.conversation_timeout.0 < Duration::from_secs(1)
        || eap.conversation_timeout.0 > Duration::from_secs(300)
    {
        push(
            "eap.conversation_timeout".into(),
            "must be between 1s and 300s".into(),
        );
    }
    if !valid_dns_name(&eap.server_name) {
        push(
            "eap.server_name".into(),
            format!("`{}` is not a DNS name", eap.server_name),
        );
    }
    let pki = &config.pki;
    match (&pki.profile_signer_cert, &pki.profile_signer_key) {
        (Some(_), None) => push(
            "pki.profile_signer_key".into(),
            "pki.profile_signer_cert is set: give its key too".into(),
        ),
        (None, Some(_)) => push(
            "pki.profile_signer_cert".into(),
            "pki.profile_signer_key is set: give its certificate too".into(),
        ),
        _ => {}
    }
    if pki.device_cert_lifetime.0 < Duration::from_secs(3600) {
        push(
            "pki.device_cert_lifetime".into(),
            "must be at least 1h".into(),
        );
    }
    if pki.device_cert_lifetime.0 > pki.ca_lifetime.0 {
        push(
            "pki.device_cert_lifetime".into(),
            "must not be longer than pki.ca_lifetime".into(),
        );
    }
    if pki.ca_lifetime.0 > Duration::from_secs(30 * 365 * 86_400) {
        push("pki.ca_lifetime".into(), "must be at most 30 years".into());
    }
    if pki.crl_lifetime.0 < Duration::from_secs(3600) {
        push("pki.crl_lifetime".into(), "must be at least 1h".into());
    }
    if pki.ca_name.trim().is_empty() {
        push("pki.ca_name".into(), "must not be empty".into());
    }
    let ssid = &config.wifi.ssid;
    if ssid.is_empty() || ssid.len() > 32 {
        push("wifi.ssid".into(), "an SSID has 1 to 32 bytes".into());
    }
}

/// A host name as certificates carry it: labels of letters, digits and hyphens.
fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(valid_dns_name("radius.gemeente.nl"));
        assert!(valid_dns_name("localhost"));
        assert!(!valid_dns_name(""));
        assert!(!valid_dns_name("a..b"));
        assert!(!valid_dns_name("-a.b"));
        assert!(!valid_dns_name("a b"));
    }

    #[test]
    fn key_types_parse() {
        assert_eq!("ecdsa-p256".parse::<KeyType>(), Ok(KeyType::EcdsaP256));
        assert_eq!("rsa".parse::<KeyType>(), Ok(KeyType::Rsa2048));
        assert!("dsa".parse::<KeyType>().is_err());
    }
}
