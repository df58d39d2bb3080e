//! `[web]`: the service-desk console and the employees' onboarding portal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Config, HumanDuration};

/// `[web]`: where the console (ICT and the service desk) and the portal (employees) listen,
/// and how long a login lasts. They share `[api]`'s connection limits and timeouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Where `serve` listens for the console (the management network); unset: no console.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Where `serve` listens for the portal (the registration VLAN); unset: none.
    #[serde(default)]
    pub portal_listen: Option<SocketAddr>,
    /// Certificate chain (PEM) for HTTPS; with `tls_key`. Unset: plain HTTP, on loopback or
    /// behind a TLS-terminating proxy only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for HTTPS.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address (passwords in clear text on the network):
    /// only behind a TLS-terminating proxy on the same trusted segment.
    #[serde(default)]
    pub allow_plain_http: bool,
    /// A login with no request for this long ends.
    #[serde(default = "default_idle")]
    pub session_idle: HumanDuration,
    /// A login ends this long after it began, however busy.
    #[serde(default = "default_lifetime")]
    pub session_lifetime: HumanDuration,
    /// Logins held at once; past it the oldest ends.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Failed logins (per username and per address) within `login_window` before further
    /// attempts are refused until the window has passed.
    #[serde(default = "default_login_failures")]
    pub login_failures: u32,
    /// See `login_failures`.
    #[serde(default = "default_login_window")]
    pub login_window: HumanDuration,
    /// Directory groups (DNs) whose members log in to the console as ICT (admin), with their
    /// directory password (`[directory]`); local accounts keep working when it is down.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Directory groups (DNs) whose members log in to the console as the service desk.
    #[serde(default)]
    pub helpdesk_groups: Vec<String>,
}

fn default_idle() -> HumanDuration {
    HumanDuration(Duration::from_secs(30 * 60))
}
fn default_lifetime() -> HumanDuration {
    HumanDuration(Duration::from_secs(12 * 3600))
}
fn default_max_sessions() -> usize {
    10_000
}
fn default_login_failures() -> u32 {
    5
}
fn default_login_window() -> HumanDuration {
    HumanDuration(Duration::from_secs(15 * 60))
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: None,
            portal_listen: None,
            tls_cert: None,
            tls_key: None,
            allow_plain_http: false,
            session_idle: default_idle(),
            session_lifetime: default_lifetime(),
            max_sessions: default_max_sessions(),
            login_failures: default_login_failures(),
            login_window: default_login_window(),
            admin_groups: Vec::new(),
            helpdesk_groups: Vec::new(),
        }
    }
}

/// Cross-field checks of `[web]`.
pub(super) fn problems(config: &Config, push: &mut impl FnMut(String, String)) {
    let web = &config.web;
    let tls = match (&web.tls_cert, &web.tls_key) {
        (Some(_), Some(_)) => true,
        (None, None) => false,
        (Some(_), None) => {
            push(
                "web.tls_key".into(),
                "web.tls_cert is set: give its key too".into(),
            );
            true
        }
        (None, Some(_)) => {
            push(
                "web.tls_cert".into(),
                "web.tls_key is set: give its certificate too".into(),
            );
            true
        }
    };
    for (key, addr) in [
        ("web.listen", web.listen),
        ("web.portal_listen", web.portal_listen),
    ] {
        if let Some(addr) = addr {
            if !tls && !addr.ip().is_loopback() && !web.allow_plain_http {
                push(
                    key.into(),
                    format!(
                        "{addr} is not loopback and web.tls_cert is not set: passwords would \
                         cross the network in clear text; set web.tls_cert/web.tls_key, or \
                         web.allow_plain_http = true behind a TLS proxy"
                    ),
                );
            }
        }
    }
    if let (Some(a), Some(b)) = (web.listen, web.portal_listen) {
        if a == b {
            push(
                "web.portal_listen".into(),
                format!("{b} is web.listen too: the portal needs its own address"),
            );
        }
    }
    if web.session_idle.0 < Duration::from_secs(60)
        || web.session_idle.0 > Duration::from_secs(86_400)
    {
        push(
            "web.session_idle".into(),
            "must be between 1m and 24h".into(),
        );
    }
    if web.session_lifetime.0 < web.session_idle.0 {
        push(
            "web.session_lifetime".into(),
            "must not be shorter than web.session_idle".into(),
        );
    }
    if !(1..=1_000_000).contains(&web.max_sessions) {
        push(
            "web.max_sessions".into(),
            "must be between 1 and 1000000".into(),
        );
    }
    if config.directory.is_none() {
        if !web.admin_groups.is_empty() {
            push(
                "web.admin_groups".into(),
                "directory groups need [directory] (the directory to ask)".into(),
            );
        }
        if !web.helpdesk_groups.is_empty() {
            push(
                "web.helpdesk_groups".into(),
                "directory groups need [directory] (the directory to ask)".into(),
            );
        }
        if web.portal_listen.is_some() {
            push(
                "web.portal_listen".into(),
                "the portal logs employees in with their directory account: it needs [directory]"
                    .into(),
            );
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, l) in config.occupancy.locations.iter().enumerate() {
        if l.name.trim().is_empty() {
            push(
                format!("occupancy.locations[{i}].name"),
                "must not be empty".into(),
            );
        } else if !names.insert(l.name.trim().to_lowercase()) {
            push(
                format!("occupancy.locations[{i}].name"),
                format!("`{}` is named twice", l.name),
            );
        }
        if l.access_points.is_empty() || l.access_points.iter().any(|p| p.trim().is_empty()) {
            push(
                format!("occupancy.locations[{i}].access_points"),
                "give one or more client or access point names (`*` as a wildcard)".into(),
            );
        }
    }
    if !(1..=1000).contains(&web.login_failures) {
        push(
            "web.login_failures".into(),
            "must be between 1 and 1000".into(),
        );
    }
}
