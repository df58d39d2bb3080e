//! `serve` (the RADIUS service), `why` (recent decisions in plain words, for the helpdesk) and
//! `sessions` (accounting).

use std::sync::Arc;

use anyhow::{Context as _, Result};
use poortwachter::activity::{DecisionFilter, SessionFilter};
use poortwachter::config::Config;
use poortwachter::mac::MacAddr;
use poortwachter::registry::Store;
use poortwachter::server::Server;

use super::table;

/// Runs the RADIUS listeners until SIGTERM or SIGINT.
pub async fn serve(config: &Config, store: Arc<dyn Store>) -> Result<()> {
    let server = Server::bind(config, store).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
    };
    let stats = server.run(shutdown).await;
    // one line for people and scripts that watch the service end
    eprintln!("poortwachter stopped: {stats}");
    Ok(())
}

/// `why MAC-or-username`: the latest decisions, newest first.
pub async fn why(
    config: &Config,
    store: &dyn Store,
    who: &str,
    limit: u32,
    json: bool,
) -> Result<()> {
    let who = who.trim();
    anyhow::ensure!(!who.is_empty(), "give a MAC address or a username");
    let filter = match MacAddr::parse_any(who) {
        Ok(mac) => DecisionFilter {
            mac: Some(mac),
            username: None,
            limit: Some(limit),
        },
        Err(_) => DecisionFilter {
            mac: None,
            username: Some(who.to_string()),
            limit: Some(limit),
        },
    };
    let found = store.decisions(&filter).await?;
    if json {
        return table::print_json(&found);
    }
    if found.is_empty() {
        println!("no decisions recorded for {who} (kept for the retention period)");
        return Ok(());
    }
    let tz = config.policy.timezone;
    for d in &found {
        let at = d.at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S");
        let repeats = if d.repeats > 0 {
            format!(" (and {} identical decisions before it, folded)", d.repeats)
        } else {
            String::new()
        };
        println!(
            "{at}  {}  via {}{}  {}{repeats}",
            d.mac
                .map(|m| m.to_string())
                .unwrap_or_else(|| d.username.clone()),
            d.nas,
            d.ssid
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            d.message
        );
    }
    Ok(())
}

/// `sessions [--active] [--mac M]`.
pub async fn sessions(
    config: &Config,
    store: &dyn Store,
    active_only: bool,
    mac: Option<String>,
    limit: u32,
    json: bool,
) -> Result<()> {
    let mac = mac
        .map(|m| MacAddr::parse_any(&m).map_err(|e| anyhow::anyhow!("--mac: {e}")))
        .transpose()?;
    let found = store
        .sessions(&SessionFilter {
            active_only,
            mac,
            limit: Some(limit),
        })
        .await?;
    if json {
        return table::print_json(&found);
    }
    let tz = config.policy.timezone;
    let rows = found
        .iter()
        .map(|s| {
            vec![
                s.started_at
                    .with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M")
                    .to_string(),
                match s.stopped_at {
                    Some(t) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
                    None => "active".to_string(),
                },
                format!("{}/{}", s.nas, s.nas_key),
                s.acct_session_id.clone(),
                table::or_dash(s.mac),
                table::or_dash(s.owner.as_ref()),
                table::or_dash(s.ssid.as_ref()),
                table::or_dash(s.framed_ip.as_ref()),
                format!("{}s", s.session_time),
                format!("{}/{}", s.input_octets, s.output_octets),
                table::or_dash(s.terminate_cause.as_ref()),
            ]
        })
        .collect();
    table::print(
        &[
            "STARTED", "STOPPED", "NAS", "SESSION", "MAC", "OWNER", "SSID", "IP", "TIME", "IN/OUT",
            "CAUSE",
        ],
        rows,
    );
    Ok(())
}
