//! `GET /api/v1/metrics`: the RADIUS server's counters and the EAP conversation table in the
//! Prometheus text format, for the monitoring the ICT team already runs.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::eap::EapServer;
use crate::server::stats::Stats;

/// What `serve` exposes: the live counters of its RADIUS server.
#[derive(Clone)]
pub struct Metrics {
    /// Packet counters.
    pub stats: Arc<Stats>,
    /// The RADIUS server's EAP engine, looked up at each scrape: its metrics are exported
    /// from the start, zero while EAP-TLS is off, so that a reload turning it on finds them.
    pub eap: Option<crate::server::LiveEap>,
    /// The listeners' heartbeats: `/api/v1/health` answers 503 when one has stalled.
    pub liveness: Option<Arc<crate::server::liveness::Liveness>>,
    /// Whether the registry database can be read: `/api/v1/ready` answers 503 "degraded"
    /// while it cannot.
    pub registry: Option<Arc<crate::server::degraded::StoreHealth>>,
    /// Decisions per client and reason.
    pub decisions: Option<Arc<crate::server::labelled::DecisionCounters>>,
    /// Disconnect/CoA results.
    pub coa: Option<Arc<crate::coa::counters::CoaCounters>>,
    /// The scheduled directory sync's results (`directory.interval`).
    pub directory: Option<Arc<crate::directory::SyncCounters>>,
    /// The configuration in force, reloads included: the certificate expiry gauges read the
    /// files it names (`None`: the API's own configuration).
    pub config: Option<Arc<arc_swap::ArcSwap<crate::config::Config>>>,
}

/// The exposition text (format 0.0.4): one counter per packet counter, named
/// `poortwachter_radius_<counter>_total`, and the EAP table's size and drops.
pub fn render(m: &Metrics, api: Option<&super::conn::Shared>) -> String {
    let mut out = String::with_capacity(4096);
    if let Some(api) = api {
        render_api(&mut out, api);
    }
    for (name, value) in m.stats.snapshot() {
        let metric = format!("poortwachter_radius_{name}_total");
        let _ = writeln!(out, "# TYPE {metric} counter");
        let _ = writeln!(out, "{metric} {value}");
    }
    if let Some(d) = &m.decisions {
        d.render(&mut out);
    }
    if let Some(c) = &m.coa {
        c.render(&mut out);
    }
    if let Some(d) = &m.directory {
        d.render(&mut out);
    }
    let secrets = m.stats.secrets.snapshot();
    if !secrets.is_empty() {
        let metric = "poortwachter_radius_client_secret_used_total";
        let _ = writeln!(
            out,
            "# HELP {metric} Requests verified with each client's secret (secondary: secret_next, during a rotation)."
        );
        let _ = writeln!(out, "# TYPE {metric} counter");
        for (client, primary, secondary) in secrets {
            let client = label(&client);
            let _ = writeln!(
                out,
                "{metric}{{client=\"{client}\",secret=\"primary\"}} {primary}"
            );
            let _ = writeln!(
                out,
                "{metric}{{client=\"{client}\",secret=\"secondary\"}} {secondary}"
            );
        }
    }
    if let Some(health) = &m.registry {
        let _ = writeln!(
            out,
            "# HELP poortwachter_registry_degraded 1 while the registry database cannot be read and decisions use last-known-good data."
        );
        let _ = writeln!(out, "# TYPE poortwachter_registry_degraded gauge");
        let _ = writeln!(
            out,
            "poortwachter_registry_degraded {}",
            u8::from(health.is_degraded())
        );
    }
    if let Some(live) = &m.eap {
        // a reload that turns EAP-TLS off and on again starts a new engine: its counters
        // start again from zero, which Prometheus reads as a counter reset
        let (open, evicted, expired) = live
            .engine()
            .map_or((0, 0, 0), |e: Arc<EapServer>| e.conversations());
        let _ = writeln!(
            out,
            "# HELP poortwachter_eap_conversations Unfinished EAP conversations held."
        );
        let _ = writeln!(out, "# TYPE poortwachter_eap_conversations gauge");
        let _ = writeln!(out, "poortwachter_eap_conversations {open}");
        let _ = writeln!(out, "# HELP poortwachter_eap_conversations_evicted_total Conversations dropped to make room.");
        let _ = writeln!(
            out,
            "# TYPE poortwachter_eap_conversations_evicted_total counter"
        );
        let _ = writeln!(
            out,
            "poortwachter_eap_conversations_evicted_total {evicted}"
        );
        let _ = writeln!(out, "# HELP poortwachter_eap_conversations_expired_total Conversations dropped after eap.conversation_timeout.");
        let _ = writeln!(
            out,
            "# TYPE poortwachter_eap_conversations_expired_total counter"
        );
        let _ = writeln!(
            out,
            "poortwachter_eap_conversations_expired_total {expired}"
        );
    }
    out
}

/// `poortwachter_certificate_expiry_seconds{kind, file, subject}`: seconds until each
/// certificate's notAfter (negative once expired), and
/// `poortwachter_certificate_unreadable{kind, file}` for one that cannot be read.
pub fn render_certificates(
    out: &mut String,
    judged: &[crate::pki::Expiry],
    unreadable: &[crate::pki::Unreadable],
) {
    let _ = writeln!(
        out,
        "# HELP poortwachter_certificate_expiry_seconds Seconds until the certificate's notAfter; negative once expired."
    );
    let _ = writeln!(out, "# TYPE poortwachter_certificate_expiry_seconds gauge");
    for e in judged {
        let _ = writeln!(
            out,
            "poortwachter_certificate_expiry_seconds{{kind=\"{}\",file=\"{}\",subject=\"{}\"}} {}",
            e.kind.as_str(),
            label(&e.file.display().to_string()),
            label(&e.subject),
            e.seconds_left
        );
    }
    let _ = writeln!(
        out,
        "# HELP poortwachter_certificate_unreadable 1 for a certificate file that is missing or cannot be read."
    );
    let _ = writeln!(out, "# TYPE poortwachter_certificate_unreadable gauge");
    for u in unreadable {
        let _ = writeln!(
            out,
            "poortwachter_certificate_unreadable{{kind=\"{}\",file=\"{}\"}} 1",
            u.kind.as_str(),
            label(&u.file.display().to_string()),
        );
    }
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The API's own connections: `poortwachter_api_connections_open` and one counter per
/// `limits::ConnStats` field, `poortwachter_api_<counter>_total`.
fn render_api(out: &mut String, api: &super::conn::Shared) {
    let _ = writeln!(
        out,
        "# HELP poortwachter_api_connections_open Admin API connections held."
    );
    let _ = writeln!(out, "# TYPE poortwachter_api_connections_open gauge");
    let _ = writeln!(out, "poortwachter_api_connections_open {}", api.caps.open());
    for (name, value) in api.stats.snapshot() {
        let metric = format!("poortwachter_api_{name}_total");
        let _ = writeln!(out, "# TYPE {metric} counter");
        let _ = writeln!(out, "{metric} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::limits::ConnStats as ConnStatsExt;

    #[test]
    fn counters_in_the_text_format() {
        let stats = Arc::new(Stats::default());
        Stats::inc(&stats.accepts);
        Stats::inc(&stats.accepts);
        Stats::inc(&stats.dropped_unknown_client);
        let api = super::super::conn::Shared::new(super::super::limits::Limits::from_config(
            &crate::config::ops::ApiConfig::default(),
        ));
        ConnStatsExt::inc(&api.stats.refused_ip_cap);
        let text = render(
            &Metrics {
                stats,
                eap: None,
                liveness: None,
                registry: Some(Arc::new(Default::default())),
                decisions: Some(Arc::new(crate::server::labelled::DecisionCounters::new([
                    "ap-1",
                ]))),
                coa: Some(Arc::new(Default::default())),
                directory: Some(Arc::new(Default::default())),
                config: None,
            },
            Some(&api),
        );
        assert!(text.contains("\npoortwachter_api_connections_open 0\n"));
        assert!(text.contains("\npoortwachter_api_refused_max_connections_per_ip_total 1\n"));
        assert!(text.contains("# TYPE poortwachter_radius_accepts_total counter\n"));
        assert!(text.contains("\npoortwachter_radius_accepts_total 2\n"));
        assert!(text.contains("\npoortwachter_radius_dropped_unknown_client_total 1\n"));
        assert!(text.contains("\npoortwachter_radius_rejects_total 0\n"));
        assert!(text.contains("\npoortwachter_registry_degraded 0\n"));
        assert!(text.contains(
            "\npoortwachter_decisions_total{client=\"ap-1\",decision=\"reject\",reason=\"unknown_device\"} 0\n"
        ));
        assert!(text
            .contains("\npoortwachter_coa_requests_total{kind=\"disconnect\",result=\"ack\"} 0\n"));
        assert!(text.contains("\npoortwachter_directory_sync_last_success_timestamp_seconds 0\n"));
        assert!(text.contains("\npoortwachter_directory_sync_failures_total 0\n"));
        // every sample line is `name value` or `name{labels} value`
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            let name = name.split_once('{').map_or(name, |(n, _)| n);
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn certificate_gauges_are_signed_and_labels_escaped() {
        use chrono::TimeZone;
        let now = chrono::Utc
            .with_ymd_and_hms(2028, 11, 20, 12, 0, 0)
            .unwrap();
        let end = chrono::Utc.with_ymd_and_hms(2028, 12, 1, 12, 0, 0).unwrap();
        let warn = chrono::Duration::days(30);
        let path = std::path::Path::new;
        let judged = [
            crate::pki::expiry(
                crate::pki::CertKind::Server,
                path("/pki/server.pem"),
                "radius \"x\"",
                end,
                now,
                warn,
            ),
            crate::pki::expiry(
                crate::pki::CertKind::Ca,
                path("/pki/ca.pem"),
                "CA",
                now - chrono::Duration::seconds(90),
                now,
                warn,
            ),
        ];
        let unreadable = [crate::pki::Unreadable {
            kind: crate::pki::CertKind::Api,
            file: "/etc/api.pem".into(),
            error: crate::pki::PkiError::Invalid("x".into()),
        }];
        let mut text = String::new();
        render_certificates(&mut text, &judged, &unreadable);
        assert!(text.contains("# TYPE poortwachter_certificate_expiry_seconds gauge\n"));
        assert!(text.contains(
            "poortwachter_certificate_expiry_seconds{kind=\"server\",file=\"/pki/server.pem\",subject=\"radius \\\"x\\\"\"} 950400\n"
        ), "{text}");
        assert!(text.contains(
            "poortwachter_certificate_expiry_seconds{kind=\"ca\",file=\"/pki/ca.pem\",subject=\"CA\"} -90\n"
        ), "{text}");
        assert!(text.contains(
            "poortwachter_certificate_unreadable{kind=\"api\",file=\"/etc/api.pem\"} 1\n"
        ));
    }
}
