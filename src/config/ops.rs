//! The operations side of the configuration: `[api]` (the admin HTTP API), `[compliance]`
//! (what a posture report must show) and `[coa]` (disconnecting devices whose state changed,
//! RFC 5176).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Config, HumanDuration};

/// `[api]`: the admin HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Where `serve` listens for the API; unset: no API.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Certificate chain (PEM) for HTTPS; with `tls_key`. Unset: plain HTTP (put it behind a
    /// TLS proxy, or keep it on loopback).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for HTTPS.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// The largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// Allow plain HTTP on a non-loopback `listen` (bearer tokens in clear text on the
    /// network): only behind a TLS-terminating proxy on the same trusted segment.
    #[serde(default)]
    pub allow_plain_http: bool,
    /// The whole request head (and, on HTTPS, the TLS handshake before the first one) must
    /// arrive within this from its first byte (from the accept for the first request); a
    /// client that dribbles it is closed.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: HumanDuration,
    /// A keep-alive connection with no request under way is closed after this.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// The handling of one request, its body included, must end within this: past it the
    /// answer is 503 and the connection is closed.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// Connections held at once; one more is closed at accept. Keep it well below the
    /// process's descriptor limit (`ulimit -n`, `LimitNOFILE=`).
    #[serde(default = "default_api_max_connections")]
    pub max_connections: usize,
    /// Connections held at once from one source address; one more is closed at accept.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
}

fn default_max_body() -> usize {
    64 * 1024
}
fn default_header_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_api_max_connections() -> usize {
    512
}
fn default_max_connections_per_ip() -> usize {
    32
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: None,
            tls_cert: None,
            tls_key: None,
            max_body: default_max_body(),
            allow_plain_http: false,
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            request_timeout: default_request_timeout(),
            max_connections: default_api_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
        }
    }
}

/// `[compliance]`: what a posture report must show for the device to be compliant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceConfig {
    /// Antivirus must be enabled.
    #[serde(default = "super::yes")]
    pub require_antivirus: bool,
    /// Antivirus signatures may be at most this old.
    #[serde(default = "default_signature_age")]
    pub max_signature_age: HumanDuration,
    /// The firewall must be on.
    #[serde(default = "super::yes")]
    pub require_firewall: bool,
    /// The system disk must be encrypted.
    #[serde(default = "super::yes")]
    pub require_disk_encryption: bool,
    /// A screen lock must be set.
    #[serde(default = "super::yes")]
    pub require_screen_lock: bool,
    /// At most this many OS updates may be pending.
    #[serde(default)]
    pub max_pending_updates: u32,
    /// Lowest OS version per OS name (lowercase: `windows`, `macos`, `ios`, `android`,
    /// `linux`...), compared numerically part by part (`10.0.19045`). When any are listed, an
    /// OS that is not listed fails the check; when none are, every OS passes.
    #[serde(default)]
    pub min_os_versions: BTreeMap<String, String>,
}

fn default_signature_age() -> HumanDuration {
    HumanDuration(Duration::from_secs(3 * 86_400))
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        ComplianceConfig {
            require_antivirus: true,
            max_signature_age: default_signature_age(),
            require_firewall: true,
            require_disk_encryption: true,
            require_screen_lock: true,
            max_pending_updates: 0,
            min_os_versions: BTreeMap::new(),
        }
    }
}

/// What to send a NAS when a connected device must lose its access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CoaAction {
    /// Disconnect-Request: the session ends and the device re-authenticates (and gets the new
    /// decision). Every RFC 5176 NAS supports it.
    #[default]
    Disconnect,
    /// CoA-Request with the new VLAN attributes, where the NAS can move a session; a device
    /// that is now refused still gets a Disconnect-Request.
    Coa,
}

/// `[coa]`: dynamic authorization (RFC 5176).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoaConfig {
    /// Send Disconnect/CoA-Requests at all.
    #[serde(default = "super::yes")]
    pub enabled: bool,
    /// Time to wait for the first answer; doubled for each retransmission.
    #[serde(default = "default_coa_timeout")]
    pub timeout: HumanDuration,
    /// Retransmissions after the first request.
    #[serde(default = "default_coa_retries")]
    pub retries: u32,
    /// How often to look for owners whose contract has ended and compliance that went stale.
    #[serde(default = "default_check_interval")]
    pub check_interval: HumanDuration,
}

fn default_coa_timeout() -> HumanDuration {
    HumanDuration(Duration::from_millis(500))
}
fn default_coa_retries() -> u32 {
    3
}
fn default_check_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

impl Default for CoaConfig {
    fn default() -> Self {
        CoaConfig {
            enabled: true,
            timeout: default_coa_timeout(),
            retries: default_coa_retries(),
            check_interval: default_check_interval(),
        }
    }
}

/// Cross-field checks of the three sections.
pub(super) fn problems(config: &Config, push: &mut impl FnMut(String, String)) {
    let api = &config.api;
    if api.tls_cert.is_some() != api.tls_key.is_some() {
        push(
            "api.tls_cert".into(),
            "HTTPS needs both api.tls_cert and api.tls_key".into(),
        );
    }
    if let Some(listen) = api.listen {
        let plain = api.tls_cert.is_none() || api.tls_key.is_none();
        if plain && !listen.ip().to_canonical().is_loopback() && !api.allow_plain_http {
            push(
                "api.listen".into(),
                format!(
                    "{listen} is not a loopback address and the API would send bearer tokens \
                     in clear text: set api.tls_cert and api.tls_key, listen on 127.0.0.1 or \
                     ::1, or set api.allow_plain_http = true (behind a TLS proxy)"
                ),
            );
        }
    }
    if !(1024..=16 * 1024 * 1024).contains(&api.max_body) {
        push(
            "api.max_body".into(),
            "must be between 1024 and 16777216 bytes".into(),
        );
    }
    let second = Duration::from_secs(1);
    for (key, value, max) in [
        (
            "api.header_timeout",
            api.header_timeout,
            Duration::from_secs(300),
        ),
        (
            "api.idle_timeout",
            api.idle_timeout,
            Duration::from_secs(3600),
        ),
        (
            "api.request_timeout",
            api.request_timeout,
            Duration::from_secs(600),
        ),
    ] {
        if value.0 < second || value.0 > max {
            push(
                key.into(),
                format!("must be between 1s and {}s", max.as_secs()),
            );
        }
    }
    if !(1..=65_536).contains(&api.max_connections) {
        push(
            "api.max_connections".into(),
            "must be between 1 and 65536".into(),
        );
    } else if api.max_connections_per_ip == 0 || api.max_connections_per_ip > api.max_connections {
        push(
            "api.max_connections_per_ip".into(),
            format!(
                "must be between 1 and api.max_connections ({})",
                api.max_connections
            ),
        );
    }
    for (os, version) in &config.compliance.min_os_versions {
        if os.is_empty()
            || os
                .chars()
                .any(|c| c.is_ascii_uppercase() || c.is_whitespace())
        {
            push(
                format!("compliance.min_os_versions.{os}"),
                "OS names are lowercase words such as windows, macos, ios, android".into(),
            );
        }
        if version.is_empty()
            || !version
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            push(
                format!("compliance.min_os_versions.{os}"),
                format!("`{version}` is not a version such as 10.0.19045"),
            );
        }
    }
    let coa = &config.coa;
    if coa.timeout.0 < Duration::from_millis(50) || coa.timeout.0 > Duration::from_secs(10) {
        push("coa.timeout".into(), "must be between 50ms and 10s".into());
    }
    if coa.retries > 10 {
        push("coa.retries".into(), "must be at most 10".into());
    }
    if coa.check_interval.0 < Duration::from_secs(1) {
        push("coa.check_interval".into(), "must be at least 1s".into());
    }
}
