//! `serve` (the RADIUS service), `why` (recent decisions in plain words, for the helpdesk) and
//! `sessions` (accounting).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use poortwachter::activity::SessionFilter;
use poortwachter::config::Config;
use poortwachter::mac::MacAddr;
use poortwachter::model::Device;
use poortwachter::posture;
use poortwachter::registry::{Registry, RegistryError, Rules, Store, StoreError};
use poortwachter::server::{Server, STOP_WITHIN};
use poortwachter::text::escape;
use poortwachter::why::{timeline, Event, Who};

use super::{table, when};
use poortwachter::config::redact_url;

/// How long `serve` waits for the database at start before it starts from its snapshot.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `serve`: opens and migrates the registry; when the database does not answer, starts
/// degraded from the node's last-known-good snapshot (if it is at most `cache.stale_grace`
/// old) and connects when the database returns.
pub async fn serve_command(config: &Config, path: &Path, rules: Rules) -> Result<()> {
    let url = &config.database.url;
    let max = config.database.max_connections;
    let opened = tokio::time::timeout(START_WAIT, async {
        let registry = Registry::connect(url, max, rules.clone())
            .await
            .map_err(|e| (e.to_string(), true))?;
        let migrated = if config.database.migrate_on_start {
            registry.migrate().await
        } else {
            Ok(())
        };
        let checked = match migrated {
            Ok(()) => registry.check_schema().await,
            Err(e) => Err(e),
        };
        match checked {
            Ok(verdict) => {
                if let Some(warning) = verdict.warning() {
                    tracing::warn!("{warning}");
                }
                Ok(registry)
            }
            // reachable, but its schema cannot be used: not a case for the snapshot
            Err(RegistryError::Store(e @ (StoreError::Migrate(_) | StoreError::Schema(_)))) => {
                Err((e.to_string(), false))
            }
            Err(e) => Err((e.to_string(), true)),
        }
    })
    .await
    .unwrap_or_else(|_| Err((format!("no answer within {} s", START_WAIT.as_secs()), true)));
    let (why, unreachable) = match opened {
        Ok(registry) => return serve(config, path, registry.store_arc(), None).await,
        Err(e) => e,
    };
    let shown = redact_url(url);
    if !unreachable {
        anyhow::bail!("cannot open the registry ({shown}): {why}");
    }
    let snap = poortwachter::server::snapshot::read(
        &config.node.state_dir,
        chrono::Utc::now(),
        config.cache.stale_grace.0,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot open the registry ({shown}): {why}; and cannot start without it: {e}"
        )
    })?;
    // a log line, not a bare one: under `log.format = "json"` every line of `serve` is JSON
    tracing::error!(
        "poortwachter: the registry database is UNREACHABLE ({shown}: {why}); starting DEGRADED from the snapshot written at {} ({} devices)",
        snap.written_at,
        snap.subjects.len()
    );
    let registry = Registry::connect_lazy(url, max, rules)
        .await
        .with_context(|| format!("cannot open the registry ({shown})"))?;
    serve(config, path, registry.store_arc(), Some((snap, why))).await
}

/// Runs the RADIUS listeners and the API until SIGTERM or SIGINT. The stop is bounded: what
/// does not finish within `server::STOP_WITHIN` is abandoned, named, and the exit status is
/// non-zero.
pub async fn serve(
    config: &Config,
    path: &Path,
    store: Arc<dyn Store>,
    from_snapshot: Option<(poortwachter::server::snapshot::Snapshot, String)>,
) -> Result<()> {
    warn_placeholder_secrets(config);
    let server = Server::bind(config, store.clone()).await?;
    let reloader = Arc::new(server.reloader(config));
    // certificate expiry in the log: at start and daily, of the configuration in force
    let _expiry = super::ca::watch_expiry(reloader.in_force());
    // installed before serving: SIGHUP's default action would end the process
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    let reloads = tokio::spawn(reload_on_hangup(
        hangup,
        path.to_path_buf(),
        reloader.clone(),
    ));
    server.release_memory_with(crate::release_memory);
    if let Some((snap, why)) = from_snapshot {
        server.start_from_snapshot(snap, &why);
    }
    let metrics = poortwachter::api::Metrics {
        stats: server.stats(),
        eap: Some(server.live_eap()),
        liveness: Some(server.liveness()),
        registry: Some(server.store_health()),
        decisions: Some(server.decisions()),
        coa: Some(server.coa_counters()),
        directory: server.directory_counters(),
        config: Some(reloader.in_force()),
    };
    let api = poortwachter::api::spawn(config, store.clone(), Some(metrics)).await?;
    let console =
        poortwachter::web::spawn(poortwachter::web::Site::Console, config, store.clone()).await?;
    let portal = poortwachter::web::spawn(poortwachter::web::Site::Portal, config, store).await?;
    let asked = Arc::new(tokio::sync::Notify::new());
    stop_guard(asked.clone()).await?;
    let stopped = server
        .run_until(async move { asked.notified().await })
        .await;
    reloads.abort();
    // both at once: the bound is 2 s in all, not per listener
    let stopping = async move {
        let api = async move {
            if let Some(a) = api {
                a.shutdown().await;
            }
        };
        let console = async move {
            if let Some(c) = console {
                c.shutdown().await;
            }
        };
        let portal = async move {
            if let Some(p) = portal {
                p.shutdown().await;
            }
        };
        tokio::join!(api, console, portal);
    };
    if tokio::time::timeout(std::time::Duration::from_secs(2), stopping)
        .await
        .is_err()
    {
        tracing::warn!(
            "the HTTP API, the console or the portal did not stop within 2 s; abandoned"
        );
    }
    // one line for people and scripts that watch the service end
    tracing::info!("poortwachter stopped: {}", stopped.stats);
    anyhow::ensure!(
        stopped.abandoned.is_empty(),
        "stopped within {} s, abandoning: {}",
        STOP_WITHIN.as_secs(),
        stopped.abandoned.join("; ")
    );
    Ok(())
}

/// Warns about client secrets that are examples or well-known test values.
fn warn_placeholder_secrets(config: &Config) {
    use poortwachter::config::secrets::is_placeholder;
    for c in &config.radius.clients {
        if is_placeholder(c.secret.expose())
            || c.secret_next
                .as_ref()
                .is_some_and(|s| is_placeholder(s.expose()))
        {
            tracing::warn!(
                client = %c.name,
                "the shared secret of this client is an example or test value: set a random one (`secret_file` or {})",
                poortwachter::config::secrets::env_var_for(&c.name)
            );
        }
    }
}

/// Reloads the configuration at every SIGHUP (`systemctl reload`): validated whole first; a
/// configuration that fails is refused and logged, and the running one stays.
async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    path: PathBuf,
    reloader: Arc<poortwachter::server::reload::Reloader>,
) {
    use poortwachter::server::systemd;
    while hangup.recv().await.is_some() {
        tracing::info!(config = %path.display(), "SIGHUP received: reloading the configuration");
        let _ = systemd::notify("RELOADING=1\nSTATUS=reloading the configuration");
        let (file, r) = (path.clone(), reloader.clone());
        // files are read (config, secrets, certificates): off the runtime's workers
        let outcome = tokio::task::spawn_blocking(move || {
            let config = Config::load(&file)?;
            warn_placeholder_secrets(&config);
            r.apply(config).map_err(anyhow::Error::from)
        })
        .await;
        match outcome {
            Ok(Ok(changes)) => {
                tracing::info!(
                    clients_added = %changes.clients_added.join(","),
                    clients_removed = %changes.clients_removed.join(","),
                    clients_changed = %changes.clients_changed.join(","),
                    "configuration reloaded: {changes}"
                );
                for key in &changes.needs_restart {
                    tracing::warn!(
                        key,
                        "changed in the configuration, but needs a restart: not applied"
                    );
                }
            }
            Ok(Err(e)) => tracing::error!(
                "configuration reload REFUSED, the running configuration stays: {e:#}"
            ),
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; the running configuration stays")
            }
        }
        let _ = systemd::notify("READY=1\nSTATUS=answering RADIUS");
    }
}

/// A thread of its own hears SIGTERM and SIGINT, so that a stop is heard even when every
/// runtime worker is stuck; it asks the server to stop, and ends the process itself should
/// the stop take longer than `STOP_WITHIN` (plus a second for the API and the last line).
async fn stop_guard(asked: Arc<tokio::sync::Notify>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (installed_tx, installed) = tokio::sync::oneshot::channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name("stop-guard".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = installed_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async {
                let handlers = signal(SignalKind::terminate())
                    .and_then(|t| Ok((t, signal(SignalKind::interrupt())?)));
                let (mut term, mut int) = match handlers {
                    Ok(h) => {
                        let _ = installed_tx.send(Ok(()));
                        h
                    }
                    Err(e) => {
                        let _ = installed_tx.send(Err(e));
                        return;
                    }
                };
                let which = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                tracing::info!("{which} received");
                asked.notify_one();
                tokio::time::sleep(STOP_WITHIN + std::time::Duration::from_secs(3)).await;
                tracing::error!(
                    "poortwachter: the stop did not finish within {} s; exiting without it",
                    STOP_WITHIN.as_secs() + 3
                );
                std::process::exit(2);
            });
        })
        .context("cannot start the signal thread")?;
    // installed before serving: a SIGTERM from now on is never lost
    installed
        .await
        .context("the signal thread ended")?
        .context("cannot install the SIGTERM/SIGINT handlers")
}

/// `why MAC-or-username`: the shared timeline ([`poortwachter::why`]) in plain words: an open
/// session first ("connected since"), then the latest decisions and minute counts, newest
/// first; by username, those of each of the owner's MACs too.
pub async fn why(
    config: &Config,
    registry: &Registry,
    who: &str,
    limit: u32,
    json: bool,
) -> Result<()> {
    let who = who.trim();
    anyhow::ensure!(!who.is_empty(), "give a MAC address or a username");
    let asked = match MacAddr::parse_any(who) {
        Ok(mac) => Who::Mac(mac),
        Err(_) => Who::Owner(who.to_string()),
    };
    let now = chrono::Utc::now();
    let found = timeline(registry, &asked, now, limit).await?;
    if json {
        let decisions: Vec<_> = found
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Decision(d) => Some(d),
                _ => None,
            })
            .collect();
        return table::print_json(&decisions);
    }
    if let Who::Mac(_) = asked {
        for device in &found.devices {
            print_posture(config, registry, device, now).await?;
        }
    }
    let tz = config.policy.timezone;
    let mut past = 0;
    for e in &found.events {
        match e {
            Event::Connected { session: s } => outln!(
                "connected since {}: {} (session {} at {}{})",
                when::second(s.started_at, tz),
                s.mac
                    .map(|m| m.to_string())
                    .or_else(|| s.username.as_deref().map(|u| escape(u).into_owned()))
                    .unwrap_or_default(),
                escape(&s.acct_session_id),
                escape(&s.nas),
                s.ssid
                    .as_deref()
                    .map(|x| format!(" ({})", escape(x)))
                    .unwrap_or_default(),
            ),
            Event::Decision(d) => {
                past += 1;
                let at = when::second(d.at, tz);
                let repeats = if d.repeats > 0 {
                    format!(" (and {} identical decisions before it, folded)", d.repeats)
                } else {
                    String::new()
                };
                // the User-Name, SSID and message come from the network: escaped, never raw
                outln!(
                    "{at}  {}  via {}{}  {}{repeats}",
                    d.mac
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| escape(&d.username).into_owned()),
                    escape(&d.nas),
                    d.ssid
                        .as_deref()
                        .map(|s| format!(" ({})", escape(s)))
                        .unwrap_or_default(),
                    escape(&d.message)
                );
            }
            Event::Counted { mac, aggregate: a } => {
                past += 1;
                let at = when::minute(a.minute, tz);
                let what = if a.outcome == "accept" {
                    "put in the registration VLAN as an unknown device"
                } else {
                    "refused as an unknown device"
                };
                outln!(
                    "{at}     {mac}  via {}  {what}, {} request(s) from client {}/AP {} in that \
                     minute ({} distinct MAC(s) sampled, this one among them)",
                    escape(&a.nas),
                    a.count,
                    escape(&a.nas),
                    escape(&a.ap),
                    a.macs.len(),
                );
            }
        }
    }
    if past == 0 {
        outln!("no decisions recorded for {who} (kept for the retention period)");
        if let (Who::Mac(mac), true) = (&asked, found.devices.is_empty()) {
            let answer = match config.policy.unknown_device {
                poortwachter::policy::UnknownDevice::Registration
                    if config.vlans.registration.is_some() =>
                {
                    "put in the registration VLAN"
                }
                _ => "refused",
            };
            outln!("{mac} is not registered: a request from it is {answer} as an unknown device");
        }
    }
    Ok(())
}

/// The device's compliance for `why`: its state, when it goes (or went) stale, and the checks
/// its latest posture report failed.
async fn print_posture(
    config: &Config,
    registry: &Registry,
    device: &Device,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let tz = config.policy.timezone;
    let max_age = config.policy.compliance_max_age.chrono();
    let age = match device.compliance_checked_at {
        Some(at) if at + max_age > now => format!(
            "checked {}, stale in {}",
            when::minute(at, tz),
            posture::human(at + max_age - now)
        ),
        Some(at) => format!(
            "checked {}, stale since {}",
            when::minute(at, tz),
            when::minute(at + max_age, tz)
        ),
        None => "never checked".to_string(),
    };
    // the status first: a lost or revoked device is refused whatever its compliance
    let status = match device.status {
        poortwachter::model::DeviceStatus::Active => String::new(),
        other => format!(", {other}"),
    };
    outln!(
        "device {} ({}) of {}{status}: compliance: {} ({age})",
        device.id,
        device.label,
        device.owner,
        device.compliance
    );
    match registry.latest_posture(device.id).await? {
        // the latest report set the device's state, unless someone set it by hand since
        Some(r) if Some(r.collected_at) == device.compliance_checked_at => {
            outln!(
                "  posture report {} from {}{}: {}",
                r.id,
                r.submitted_by,
                r.report
                    .source
                    .as_deref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default(),
                if r.failed.is_empty() {
                    "all checks passed".to_string()
                } else {
                    format!("{} check(s) failed", r.failed.len())
                }
            );
            for f in &r.failed {
                outln!("  failed {}: {}", f.check, f.message);
            }
        }
        _ => {
            if let Some(note) = &device.compliance_note {
                outln!("  note: {note}");
            }
        }
    }
    outln!();
    Ok(())
}

/// `sessions [--active] [--mac M]`.
pub async fn sessions(
    config: &Config,
    registry: &Registry,
    active_only: bool,
    mac: Option<String>,
    limit: u32,
    json: bool,
) -> Result<()> {
    let mac = mac
        .map(|m| MacAddr::parse_any(&m).map_err(|e| anyhow::anyhow!("--mac: {e}")))
        .transpose()?;
    let found = registry
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
                when::minute(s.started_at, tz),
                match s.stopped_at {
                    Some(t) => when::minute(t, tz),
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

/// `session ...`: act on one accounting session.
#[derive(Debug, clap::Subcommand)]
pub enum SessionCommand {
    /// Send the session's NAS a Disconnect-Request (RFC 5176) and show its answer.
    Kick {
        /// The session's Acct-Session-Id, or `#N` for row id N (first column of
        /// `sessions --json`).
        #[arg(required_unless_present = "row", conflicts_with = "row")]
        id: Option<String>,
        /// The session's row id.
        #[arg(long, value_name = "N")]
        row: Option<i64>,
        /// Why, for the record.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `session kick ACCT-SESSION-ID|#ROW|--row ROW [--reason TEXT]`: Disconnect-Request from this process, with the client's
/// secret and `coa_port` from the config; recorded in `coa_requests` and the audit log. Fails
/// (non-zero) unless the NAS acknowledged.
pub async fn session(
    config: &Config,
    registry: &Registry,
    actor: &str,
    cmd: SessionCommand,
    json: bool,
) -> Result<()> {
    use poortwachter::coa::enforcer::{kick, Kick, NasClients};
    use poortwachter::coa::{client::Retransmit, packet};
    let SessionCommand::Kick { id, row, reason } = cmd;
    let id = id.as_deref().map(str::trim).unwrap_or_default();
    // `#N` or `--row N` is a row id; anything else an Acct-Session-Id, digits too
    let row = match (row, id.strip_prefix('#')) {
        (Some(n), _) => Some(n),
        (None, Some(n)) => Some(
            n.trim()
                .parse::<i64>()
                .map_err(|_| anyhow::anyhow!("`{id}`: a row id is `#` and digits, e.g. `#12`"))?,
        ),
        (None, None) => None,
    };
    let session = match row {
        Some(n) => match registry.session_by_id(n).await? {
            Some(s) => s,
            None => anyhow::bail!("no session with row id {n}"),
        },
        None => {
            anyhow::ensure!(!id.is_empty(), "give an Acct-Session-Id, `#N` or `--row N`");
            let found = registry.sessions_by_acct_id(id).await?;
            let open: Vec<_> = found.iter().filter(|s| s.stopped_at.is_none()).collect();
            match open.as_slice() {
                [one] => (*one).clone(),
                [] => match found.first() {
                    Some(s) => s.clone(),
                    None => {
                        let digits = id.bytes().all(|b| b.is_ascii_digit());
                        match id.parse::<i64>() {
                            Ok(n) if digits && registry.session_by_id(n).await?.is_some() => {
                                anyhow::bail!(
                                    "no session has Acct-Session-Id `{id}`; for the session \
                                     in row {n} give `#{n}` or `--row {n}`"
                                )
                            }
                            _ => anyhow::bail!("no session with Acct-Session-Id `{id}`"),
                        }
                    }
                },
                many => anyhow::bail!(
                    "{} open sessions have Acct-Session-Id `{id}` (on {}): give the row, \
                     `#N` or `--row N`",
                    many.len(),
                    many.iter()
                        .map(|s| format!("{}/{} row {}", s.nas, s.nas_key, s.id))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    anyhow::ensure!(
        session.stopped_at.is_none(),
        "session {} ({}) has already ended",
        session.id,
        session.acct_session_id
    );
    let why = reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    let what = Kick {
        kind: packet::Kind::Disconnect,
        change: None,
        reason: match why {
            Some(r) => format!("session kick by {actor}: {r}"),
            None => format!("session kick by {actor}"),
        },
        actor: actor.to_string(),
    };
    let retransmit = Retransmit {
        first_wait: config.coa.timeout.0,
        retries: config.coa.retries,
    };
    let clients = NasClients::from_config(config);
    // the kick is the enforcer's, which writes through the store as the server does
    let store = registry.store_arc();
    let record = kick(store.as_ref(), &clients, &session, &what, retransmit).await?;
    if json {
        table::print_json(&record)?;
    } else {
        let cause = record
            .error_cause
            .map(|c| format!(": Error-Cause {c} {}", packet::error_cause_name(c)))
            .unwrap_or_default();
        outln!(
            "Disconnect-Request for session {} ({}) to {}: {}{cause} after {} attempt(s)",
            record.session_id.unwrap_or_default(),
            record.acct_session_id,
            record.nas_addr,
            match record.result.as_str() {
                "ack" => "Disconnect-ACK",
                "nak" => "Disconnect-NAK",
                "timeout" => "no answer",
                _ => "not sent",
            },
            record.attempts
        );
    }
    anyhow::ensure!(
        record.result == "ack",
        "the NAS did not acknowledge the Disconnect-Request ({})",
        record.result
    );
    Ok(())
}
