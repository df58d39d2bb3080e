//! Which certificates the service depends on and how long each has left: the CA(s), the RADIUS
//! server's certificate and the admin API's HTTPS certificate. [`expiry`] is the pure
//! judgement (clock passed in); [`check_certificates`] reads the files and applies it, for
//! `serve` (a warning at start and daily), `check-config` and the metrics.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;

use super::{load_cert_chain, PkiError};

/// What a certificate is to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CertKind {
    /// An onboarding CA: the current one, or the previous one during a rollover.
    Ca,
    /// The RADIUS server's EAP-TLS certificate.
    Server,
    /// The admin API's HTTPS certificate.
    Api,
}

impl CertKind {
    /// `ca`, `server` or `api`: the metric label and the JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CertKind::Ca => "ca",
            CertKind::Server => "server",
            CertKind::Api => "api",
        }
    }
}

/// How worried to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpiryLevel {
    /// More than the warning period left.
    Ok,
    /// Within the warning period (`pki.expiry_warning`, 30 days by default).
    Warning,
    /// Past its notAfter: nothing that depends on it works.
    Expired,
}

/// One certificate's expiry state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expiry {
    /// What it is.
    pub kind: CertKind,
    /// The file it was read from.
    pub file: PathBuf,
    /// Its subject common name (empty when it has none).
    pub subject: String,
    /// notAfter.
    pub not_after: DateTime<Utc>,
    /// Seconds until notAfter; negative once expired.
    pub seconds_left: i64,
    /// Whole days until notAfter, rounded down (-1 on the first day after).
    pub days_left: i64,
    /// The judgement.
    pub level: ExpiryLevel,
}

impl Expiry {
    /// One line for the log and `check-config`: `server certificate radius.example
    /// (var/pki/server.pem) expires 2027-01-01 (12 days left)`.
    pub fn describe(&self) -> String {
        let what = match self.kind {
            CertKind::Ca => "CA certificate",
            CertKind::Server => "RADIUS server certificate",
            CertKind::Api => "API HTTPS certificate",
        };
        let when = self.not_after.format("%Y-%m-%d %H:%M UTC");
        let state = match self.level {
            ExpiryLevel::Expired => format!("EXPIRED on {when} ({} days ago)", -self.days_left),
            _ => format!("expires {when} ({} days left)", self.days_left),
        };
        format!(
            "{what} \"{}\" ({}) {state}",
            self.subject,
            self.file.display()
        )
    }
}

/// The expiry state at `now` of a certificate ending `not_after`: a warning from
/// `warn_within` before, expired from notAfter on (RFC 5280 section 4.1.2.5: notAfter is
/// the last second it is valid, so "expired" starts after it).
pub fn expiry(
    kind: CertKind,
    file: &Path,
    subject: &str,
    not_after: DateTime<Utc>,
    now: DateTime<Utc>,
    warn_within: chrono::Duration,
) -> Expiry {
    let left = not_after.signed_duration_since(now);
    let seconds_left = left.num_seconds();
    let level = if now > not_after {
        ExpiryLevel::Expired
    } else if left <= warn_within {
        ExpiryLevel::Warning
    } else {
        ExpiryLevel::Ok
    };
    Expiry {
        kind,
        file: file.to_path_buf(),
        subject: subject.to_string(),
        not_after,
        seconds_left,
        days_left: seconds_left.div_euclid(86_400),
        level,
    }
}

/// What a certificate file says of its first certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject common name (empty without one).
    pub subject: String,
    /// notBefore.
    pub not_before: DateTime<Utc>,
    /// notAfter.
    pub not_after: DateTime<Utc>,
    /// Whether it is a CA certificate (basicConstraints CA:TRUE).
    pub is_ca: bool,
}

/// Reads subject, validity and CA flag out of a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let time = |t: &x509_parser::time::ASN1Time| {
        DateTime::<Utc>::from_timestamp(t.timestamp(), 0)
            .ok_or_else(|| format!("validity date {t} is out of range"))
    };
    let validity = cert.validity();
    let subject = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok(CertInfo {
        subject,
        not_before: time(&validity.not_before)?,
        not_after: time(&validity.not_after)?,
        is_ca: cert.is_ca(),
    })
}

/// [`cert_info`] of the first certificate in a PEM file.
pub fn read_cert_info(path: &Path) -> Result<CertInfo, PkiError> {
    let chain = load_cert_chain(path)?;
    let first = chain.first().ok_or_else(|| PkiError::Pem {
        path: path.to_path_buf(),
        message: "holds no CERTIFICATE".into(),
    })?;
    cert_info(first.as_ref()).map_err(|message| PkiError::Pem {
        path: path.to_path_buf(),
        message,
    })
}

/// The certificate files the service depends on under `config`: the CA, the previous CA
/// while a rollover is under way (its file exists), the RADIUS server certificate when EAP is
/// not switched off, and the API's HTTPS certificate when `[api]` has one.
pub fn watched_certificates(config: &Config) -> Vec<(CertKind, PathBuf)> {
    let mut files = vec![(CertKind::Ca, config.pki.ca_cert.clone())];
    let previous = config.pki.previous_ca_cert();
    if previous.exists() {
        files.push((CertKind::Ca, previous));
    }
    if config.eap.enabled != Some(false) {
        files.push((CertKind::Server, config.eap.server_cert.clone()));
    }
    if let Some(api) = &config.api.tls_cert {
        files.push((CertKind::Api, api.clone()));
    }
    files
}

/// A certificate that could not be judged: missing or unreadable.
#[derive(Debug)]
pub struct Unreadable {
    /// What it is.
    pub kind: CertKind,
    /// The file.
    pub file: PathBuf,
    /// Why (for an unreadable file: "permission denied on PATH").
    pub error: PkiError,
}

/// Reads every [watched certificate](watched_certificates) and judges it at `now` with
/// `pki.expiry_warning`.
pub fn check_certificates(config: &Config, now: DateTime<Utc>) -> (Vec<Expiry>, Vec<Unreadable>) {
    let warn = config.pki.expiry_warning.chrono();
    let mut judged = Vec::new();
    let mut unreadable = Vec::new();
    for (kind, file) in watched_certificates(config) {
        match read_cert_info(&file) {
            Ok(info) => judged.push(expiry(
                kind,
                &file,
                &info.subject,
                info.not_after,
                now,
                warn,
            )),
            Err(error) => unreadable.push(Unreadable { kind, file, error }),
        }
    }
    (judged, unreadable)
}

/// Logs each certificate that is expired (error) or within the warning period (warning);
/// `serve` calls it at start and daily.
pub fn log_expiry(config: &Config, now: DateTime<Utc>) {
    let (judged, _) = check_certificates(config, now);
    for e in judged {
        match e.level {
            ExpiryLevel::Ok => {}
            ExpiryLevel::Warning => tracing::warn!(
                kind = e.kind.as_str(),
                file = %e.file.display(),
                days_left = e.days_left,
                "{}: renew it (`poortwachter ca renew-server` for the server certificate, `ca rollover` for the CA)",
                e.describe()
            ),
            ExpiryLevel::Expired => tracing::error!(
                kind = e.kind.as_str(),
                file = %e.file.display(),
                days_left = e.days_left,
                "{}",
                e.describe()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn ok_then_warning_then_expired() {
        let end = at(2028, 12, 1);
        let f = Path::new("server.pem");
        let warn = chrono::Duration::days(30);
        let e = expiry(CertKind::Server, f, "radius", end, at(2028, 10, 1), warn);
        assert_eq!((e.level, e.days_left), (ExpiryLevel::Ok, 61));
        assert_eq!(e.seconds_left, 61 * 86_400);

        // 30 days left exactly is within the warning period
        let e = expiry(CertKind::Server, f, "radius", end, at(2028, 11, 1), warn);
        assert_eq!((e.level, e.days_left), (ExpiryLevel::Warning, 30));
        let e = expiry(CertKind::Server, f, "radius", end, at(2028, 11, 11), warn);
        assert_eq!((e.level, e.days_left), (ExpiryLevel::Warning, 20));
        assert!(e.describe().contains("20 days left"), "{}", e.describe());

        // the last second is still valid
        let e = expiry(CertKind::Server, f, "radius", end, end, warn);
        assert_eq!((e.level, e.seconds_left), (ExpiryLevel::Warning, 0));
        let e = expiry(
            CertKind::Server,
            f,
            "radius",
            end,
            end + chrono::Duration::seconds(1),
            warn,
        );
        assert_eq!(
            (e.level, e.seconds_left, e.days_left),
            (ExpiryLevel::Expired, -1, -1)
        );
        let e = expiry(CertKind::Ca, f, "CA", end, at(2029, 1, 1), warn);
        assert_eq!((e.level, e.days_left), (ExpiryLevel::Expired, -31));
        assert!(e.describe().contains("EXPIRED"), "{}", e.describe());
        assert!(e.describe().contains("31 days ago"), "{}", e.describe());
    }

    #[test]
    fn the_warning_period_is_configurable() {
        let end = at(2028, 12, 1);
        let f = Path::new("ca.pem");
        let e = expiry(
            CertKind::Ca,
            f,
            "CA",
            end,
            at(2028, 9, 1),
            chrono::Duration::days(180),
        );
        assert_eq!(e.level, ExpiryLevel::Warning);
        let e = expiry(
            CertKind::Ca,
            f,
            "CA",
            end,
            at(2028, 9, 1),
            chrono::Duration::zero(),
        );
        assert_eq!(e.level, ExpiryLevel::Ok);
    }

    #[test]
    fn cert_info_reads_what_ca_init_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let (files, init) =
            super::super::ca::tests::test_ca(dir.path(), crate::config::tls::KeyType::EcdsaP256);
        let ca = read_cert_info(&files.ca_cert).unwrap();
        assert!(ca.is_ca);
        assert_eq!(ca.subject, "Gemeente Test CA");
        assert_eq!(ca.not_after, init.ca_not_after);
        let server = read_cert_info(&files.server_cert).unwrap();
        assert!(!server.is_ca);
        assert_eq!(server.subject, "radius.gemeente.test");
        assert_eq!(server.not_after, init.server_not_after);
        assert!(cert_info(b"not a certificate").is_err());
    }
}
