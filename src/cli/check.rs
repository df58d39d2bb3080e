//! What `check-config` looks at beyond the file itself, as production needs it: where each
//! client's secret comes from and whether it is a placeholder, whether the registry database
//! answers and with which schema version, whether the API's and EAP's certificate files can
//! be read, and a summary of the API, EAP and the PKI directory.

use std::path::Path;
use std::time::Duration;

use poortwachter::config::secrets::{self, is_placeholder};
use poortwachter::config::{redact_url, Config};

/// How long `check-config` waits for the database.
const DB_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `check-config` waits for the directory (connect, bind, the base DN).
const DIRECTORY_TIMEOUT: Duration = Duration::from_secs(5);

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but not as production should.
    Warning,
    /// `serve` would fail or run without what is configured.
    Error,
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    /// How bad.
    pub level: Level,
    /// `secret`, `database`, `directory`, `api`, `eap`, `pki`.
    pub area: &'static str,
    /// What was found, in words.
    pub message: String,
}

fn finding(level: Level, area: &'static str, message: String) -> Finding {
    Finding {
        level,
        area,
        message,
    }
}

/// Whether the service user (whoever runs this) can read `path`.
fn readable(path: &Path) -> Result<(), String> {
    match std::fs::File::open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(format!("permission denied on {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{} does not exist", path.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Everything `check-config` finds beyond the file's own validation.
pub async fn production(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    // ours only, and only those that are text (std::env::vars would panic on others)
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with(secrets::CLIENT_SECRET_ENV_PREFIX))
        .collect();
    for c in &config.radius.clients {
        let from = secrets::source(c, &env);
        let rotation = if c.secret_next.is_some() {
            "; secret_next accepted too (rotation)"
        } else {
            ""
        };
        let placeholder = is_placeholder(c.secret.expose())
            || c.secret_next
                .as_ref()
                .is_some_and(|s| is_placeholder(s.expose()));
        out.push(if placeholder {
            finding(
                Level::Warning,
                "secret",
                format!(
                    "client {}: the secret from the {from} is an example or test value; set a random one (secret_file or {})",
                    c.name,
                    secrets::env_var_for(&c.name)
                ),
            )
        } else {
            finding(
                Level::Ok,
                "secret",
                format!("client {}: from the {from}{rotation}", c.name),
            )
        });
    }

    let url = redact_url(&config.database.url);
    out.push(
        match poortwachter::registry::probe::schema(&config.database.url, DB_TIMEOUT).await {
            Ok(s) => finding(
                if s.applied.is_some_and(|a| a == s.latest) {
                    Level::Ok
                } else {
                    Level::Warning
                },
                "database",
                format!(
                    "{url} answers; schema {} (this binary: {}): {}",
                    s.applied.map_or("none".to_string(), |v| v.to_string()),
                    s.latest,
                    s.verdict()
                ),
            ),
            // `serve` still starts, degraded, from its snapshot: a warning, not an error
            Err(e) if config.database.url.starts_with("sqlite:") => finding(
                Level::Warning,
                "database",
                format!("{url} cannot be opened (`poortwachter migrate` creates it): {e}"),
            ),
            Err(e) => finding(
                Level::Warning,
                "database",
                format!("{url} is UNREACHABLE: {e}"),
            ),
        },
    );

    if let Some(d) = &config.directory {
        out.push(directory(d).await);
    }

    let api = &config.api;
    out.push(match (api.listen, &api.tls_cert, &api.tls_key) {
        (None, _, _) => finding(Level::Ok, "api", "off (api.listen not set)".into()),
        (Some(listen), Some(cert), Some(key)) => match readable(cert).and(readable(key)) {
            Ok(()) => finding(
                Level::Ok,
                "api",
                format!("HTTPS on {listen}; certificate {}", cert.display()),
            ),
            Err(e) => finding(Level::Error, "api", format!("HTTPS on {listen}: {e}")),
        },
        (Some(listen), _, _) => finding(
            Level::Ok,
            "api",
            format!("plain HTTP on {listen} (no api.tls_cert)"),
        ),
    });

    let eap = &config.eap;
    // the one rule for whether EAP can be served: the loader `serve` and a reload use
    out.push(
        match poortwachter::pki::load_eap_tls(config, chrono::Utc::now()) {
            Ok(poortwachter::pki::EapTls::Off(why)) if eap.enabled == Some(false) => {
                finding(Level::Ok, "eap", why)
            }
            Ok(poortwachter::pki::EapTls::Off(why)) => finding(Level::Warning, "eap", why),
            Ok(poortwachter::pki::EapTls::Ready { .. }) => finding(
                Level::Ok,
                "eap",
                format!(
                    "802.1X EAP-TLS on; server certificate {}",
                    eap.server_cert.display()
                ),
            ),
            Err(e) => finding(
                Level::Error,
                "eap",
                format!("802.1X EAP-TLS cannot be served: {e}"),
            ),
        },
    );

    let pki = &config.pki;
    let dir = pki
        .ca_cert
        .parent()
        .map_or_else(|| ".".to_string(), |d| d.display().to_string());
    let key = if pki.ca_key.exists() {
        "the CA key is on this host (the API can issue)"
    } else {
        "no CA key on this host"
    };
    out.push(match readable(&pki.ca_cert) {
        Ok(()) => finding(
            Level::Ok,
            "pki",
            format!("{dir}: CA certificate present; {key}"),
        ),
        Err(_) if !pki.ca_cert.exists() => finding(
            Level::Ok,
            "pki",
            format!("{dir}: no CA yet (`poortwachter ca init`)"),
        ),
        Err(e) => finding(Level::Error, "pki", format!("{dir}: {e}")),
    });
    out
}

/// `[directory]`: connected, bound and `base_dn` read (not a sync), and the schedule. A
/// warning at worst, never an error: RADIUS does not depend on the directory (the unit runs
/// `check-config` before `serve`; a rotated LDAP password must not keep it from starting).
async fn directory(d: &poortwachter::config::directory::DirectoryConfig) -> Finding {
    let schedule = if d.interval.0.is_zero() {
        "not scheduled (`owner sync` only)".to_string()
    } else {
        format!("serve syncs every {}", d.interval)
    };
    match poortwachter::directory::ldap::probe(d, DIRECTORY_TIMEOUT).await {
        Ok(()) => finding(
            Level::Ok,
            "directory",
            format!(
                "{}: bound as {}, {} read; {schedule}",
                d.url, d.bind_dn, d.base_dn
            ),
        ),
        Err(e) => finding(
            Level::Warning,
            "directory",
            format!("{e}; every sync fails until this is mended"),
        ),
    }
}
