//! The enforcer: follows the registry and sends a Disconnect-Request (or CoA-Request) for
//! each open accounting session whose device would now get another decision than the one it
//! connected with. It wakes on every registry change (the audit log grows: PostgreSQL
//! NOTIFY, or the SQLite poll in `crate::server`) and reads the audit entries since the last
//! one it saw; every `coa.check_interval` it also re-decides every open session, which finds
//! contracts that ended and compliance checks that went stale with no change at all.
//!
//! A session is kicked when the decision now is a reject, or its reason differs from the one
//! in the Class the session carries (`pw1;...;reason=compliant` → `noncompliant`): the reason
//! determines the VLAN, so a different reason means the device sits in the wrong VLAN.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use ipnetwork::IpNetwork;
use tokio::sync::{watch, Notify, Semaphore};
use uuid::Uuid;

use super::client::{self, Outcome, Retransmit};
use super::packet::{
    build_request, error_cause_name, Answer, Kind, NewAuthorization, SessionIdentity,
    SESSION_CONTEXT_NOT_FOUND,
};
use crate::activity::{Session, SessionFilter};
use crate::config::ops::CoaAction;
use crate::config::Config;
use crate::model::{Device, Owner};
use crate::policy::{self, AuthMethod, Decision, Outcome as PolicyOutcome};
use crate::radius::crypto::Key;
use crate::radius::EncodeError;
use crate::registry::coa::CoaRecord;
use crate::registry::{NewAuditEntry, Store, StoreError};

/// The actor of the enforcer's own audit entries and requests.
pub const ENFORCER_ACTOR: &str = "poortwachter";

/// Audit entries read per query while catching up.
const AUDIT_PAGE: u32 = 500;
/// Pages read per wake-up (the periodic check covers anything beyond).
const AUDIT_PAGES: usize = 20;
/// Open sessions re-decided per periodic check.
const MAX_SWEEP: u32 = 100_000;
/// Exchanges in flight at once; more wait for the next check.
const MAX_IN_FLIGHT: usize = 256;
/// A session that did not answer is tried again (at the periodic check) this many times.
const MAX_TIMEOUT_ROUNDS: u32 = 3;

/// A `[[radius.clients]]` entry as dynamic authorization needs it.
#[derive(Debug)]
pub struct NasClient {
    /// Configured name (`sessions.nas`).
    pub name: String,
    network: IpNetwork,
    key: Key,
    coa_port: u16,
    action: CoaAction,
}

impl NasClient {
    /// Where the NAS of `session` listens for RFC 5176 requests: its NAS-IP-Address when that
    /// lies in the client's network, else the client's one address (a /32 or /128 entry),
    /// else the NAS-IP-Address anyway; port `coa_port`.
    pub fn destination(&self, session: &Session) -> Option<SocketAddr> {
        let reported: Option<IpAddr> = session.nas_ip.as_deref().and_then(|s| s.parse().ok());
        let single = match self.network {
            IpNetwork::V4(n) if n.prefix() == 32 => Some(IpAddr::V4(n.ip())),
            IpNetwork::V6(n) if n.prefix() == 128 => Some(IpAddr::V6(n.ip())),
            _ => None,
        };
        let ip = match reported {
            Some(ip) if self.network.contains(ip) => Some(ip),
            other => single.or(other),
        }?;
        Some(SocketAddr::new(ip, self.coa_port))
    }

    /// What to send for `decision`: a CoA-Request with the new VLAN where the client is set
    /// to `coa` and the device is still accepted, else a Disconnect-Request.
    pub fn request_for(&self, decision: &Decision) -> (Kind, Option<NewAuthorization>) {
        match (self.action, decision.outcome, decision.vlan) {
            (CoaAction::Coa, PolicyOutcome::Accept, Some(vlan)) => (
                Kind::Coa,
                Some(NewAuthorization {
                    vlan: vlan.get(),
                    session_timeout: decision.session_timeout,
                }),
            ),
            _ => (Kind::Disconnect, None),
        }
    }
}

/// Every configured NAS client.
#[derive(Debug)]
pub struct NasClients(Vec<NasClient>);

impl NasClients {
    /// From the configuration.
    pub fn from_config(config: &Config) -> NasClients {
        NasClients(
            config
                .radius
                .clients
                .iter()
                .map(|c| NasClient {
                    name: c.name.clone(),
                    network: c.network,
                    key: Key::new(c.secret.expose().as_bytes()),
                    coa_port: c.coa_port,
                    action: c.coa_action,
                })
                .collect(),
        )
    }

    /// The client a session was reported by.
    pub fn by_name(&self, name: &str) -> Option<&NasClient> {
        self.0.iter().find(|c| c.name == name)
    }
}

/// How the NAS knows the session: Acct-Session-Id, the MAC as `AA-BB-CC-DD-EE-FF` (the
/// form access points send in Calling-Station-Id), User-Name, and the NAS's own identity.
pub fn session_identity(session: &Session) -> SessionIdentity {
    let nas_ip = session
        .nas_ip
        .as_deref()
        .and_then(|s| s.parse::<Ipv4Addr>().ok());
    // nas_key is the NAS-Identifier unless it is an address
    let nas_identifier = Some(session.nas_key.clone())
        .filter(|k| !k.is_empty() && k.parse::<IpAddr>().is_err() && k.len() <= 253);
    SessionIdentity {
        acct_session_id: session.acct_session_id.chars().take(253).collect(),
        calling_station_id: session.mac.map(|m| m.to_dashed_upper()),
        user_name: session
            .username
            .clone()
            .filter(|u| !u.is_empty() && u.len() <= 253),
        nas_ip,
        nas_identifier,
    }
}

/// The reason in a Class we handed out (`pw1;device=…;owner=…;reason=…`).
pub fn class_reason(class: &str) -> Option<&str> {
    class
        .strip_prefix("pw1;")?
        .split(';')
        .find_map(|kv| kv.strip_prefix("reason="))
}

/// The decision a session's device would get now, if it differs from what the session got
/// (a reject, or another reason than its Class names); `None` when the session may stay.
pub fn must_leave(
    session: &Session,
    subject: Option<(&Device, &Owner)>,
    now: DateTime<Utc>,
    rules: &policy::Rules,
) -> Option<Decision> {
    let identity = session
        .username
        .clone()
        .or_else(|| session.mac.map(|m| m.to_string()))
        .unwrap_or_default();
    let request = policy::Request {
        // the decision does not depend on the method for a registered device, but MAB
        // without a MAC would be refused for that alone
        method: if session.mac.is_some() {
            AuthMethod::Mab
        } else {
            AuthMethod::EapTls
        },
        identity: &identity,
        mac: session.mac,
        nas: &session.nas,
        ssid: session.ssid.as_deref(),
    };
    let decision = policy::decide(&request, subject, now, rules);
    let had = session.class.as_deref().and_then(class_reason);
    let moved = had.is_some_and(|r| r != decision.reason.as_str());
    (decision.outcome == PolicyOutcome::Reject || moved).then_some(decision)
}

/// Why a kick could not even be tried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KickError {
    /// The session names a client that is not configured (any more).
    #[error("the session's client `{0}` is not in radius.clients")]
    UnknownClient(String),
    /// Neither the session nor the client entry gives an address to send to.
    #[error("no address for the NAS of session {0}")]
    NoAddress(String),
    /// The request does not fit in a packet.
    #[error("cannot build the request: {0}")]
    Encode(#[from] EncodeError),
    /// Recording failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One request to make.
#[derive(Debug, Clone)]
pub struct Kick {
    /// Disconnect or CoA.
    pub kind: Kind,
    /// For a CoA-Request: the new VLAN.
    pub change: Option<NewAuthorization>,
    /// What triggered it, for the record.
    pub reason: String,
    /// Who: [`ENFORCER_ACTOR`] or the CLI user.
    pub actor: String,
}

/// Sends one request for `session` to its NAS, waits for the answer (retransmitting), and
/// records it: a `coa_requests` row and an audit entry `session.disconnect`/`session.coa`
/// on the device. A NAK with Error-Cause 503 (the NAS has no such session) closes the
/// session row.
pub async fn kick(
    store: &dyn Store,
    clients: &NasClients,
    session: &Session,
    what: &Kick,
    retransmit: Retransmit,
) -> Result<CoaRecord, KickError> {
    let client = clients
        .by_name(&session.nas)
        .ok_or_else(|| KickError::UnknownClient(session.nas.clone()))?;
    let to = client
        .destination(session)
        .ok_or_else(|| KickError::NoAddress(session.acct_session_id.clone()))?;
    let sent_at = Utc::now().trunc_subsecs(6);
    let event_time = u32::try_from(sent_at.timestamp()).unwrap_or(u32::MAX);
    let packet = build_request(
        what.kind,
        rand::random(),
        &session_identity(session),
        what.change.as_ref(),
        event_time,
        &client.key,
    )?;
    let exchanged = client::exchange(to, &packet, &client.key, retransmit).await;
    let (result, error_cause, attempts, answered_at) = match &exchanged {
        Ok(ex) => (
            ex.outcome.as_str(),
            ex.outcome.error_cause(),
            ex.attempts,
            match ex.outcome {
                Outcome::Answered(_) => chrono::Duration::from_std(ex.elapsed)
                    .ok()
                    .map(|d| (sent_at + d).trunc_subsecs(6)),
                Outcome::Timeout => None,
            },
        ),
        Err(_) => ("error", None, 0, None),
    };
    if let Err(e) = &exchanged {
        tracing::warn!(error = %e, %to, "Disconnect/CoA-Request not sent");
    }
    let mut record = CoaRecord {
        id: 0,
        session_id: Some(session.id),
        acct_session_id: session.acct_session_id.clone(),
        nas: session.nas.clone(),
        nas_addr: to.to_string(),
        device_id: session.device_id,
        kind: what.kind.as_str().to_string(),
        reason: what.reason.chars().take(1000).collect(),
        actor: what.actor.clone(),
        sent_at,
        answered_at,
        result: result.to_string(),
        error_cause,
        attempts,
    };
    record.id = store.insert_coa_request(&record).await?;
    let closed = matches!(
        exchanged,
        Ok(client::Exchange {
            outcome: Outcome::Answered(Answer::Nak {
                error_cause: Some(SESSION_CONTEXT_NOT_FOUND)
            }),
            ..
        })
    );
    if closed {
        store
            .end_session(
                session.id,
                Utc::now().trunc_subsecs(6),
                "NAS-Session-Not-Found",
            )
            .await?;
    }
    let mut after = serde_json::to_value(&record).unwrap_or_default();
    if let (Some(cause), Some(obj)) = (error_cause, after.as_object_mut()) {
        obj.insert("error_cause_name".into(), error_cause_name(cause).into());
    }
    let before = serde_json::json!({
        "session_id": session.id,
        "acct_session_id": session.acct_session_id,
        "nas": session.nas,
        "nas_key": session.nas_key,
        "mac": session.mac.map(|m| m.to_string()),
        "class": session.class,
    });
    let entry = NewAuditEntry {
        at: Utc::now().trunc_subsecs(6),
        actor: what.actor.clone(),
        action: format!("session.{}", what.kind.as_str()),
        target_type: "device".into(),
        target_id: session
            .device_id
            .map(|d| d.to_string())
            .unwrap_or_else(|| format!("session {}", session.id)),
        before: Some(before),
        after: Some(after),
    };
    let mut tx = store.begin().await?;
    tx.append_audit(&entry).await?;
    tx.commit().await?;
    tracing::info!(
        kind = what.kind.as_str(),
        session = %session.acct_session_id,
        nas = %session.nas,
        %to,
        result,
        error_cause = error_cause.map(|c| format!("{c} {}", error_cause_name(c))),
        attempts,
        reason = %what.reason,
        "dynamic authorization"
    );
    Ok(record)
}

/// What was sent for a session, so that the same trigger does not kick it twice.
#[derive(Debug, Clone)]
struct Kicked {
    /// The decision reason it was kicked for.
    reason: &'static str,
    /// `None` while in flight.
    result: Option<&'static str>,
    /// Rounds that ended in a timeout.
    timeouts: u32,
}

/// The background task.
pub struct Enforcer {
    store: Arc<dyn Store>,
    rules: policy::Rules,
    clients: Arc<NasClients>,
    retransmit: Retransmit,
    check_interval: Duration,
    kicked: Arc<Mutex<HashMap<i64, Kicked>>>,
    slots: Arc<Semaphore>,
}

type Subject = Option<Arc<(Device, Owner)>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Enforcer {
    /// From the configuration; `None` when `coa.enabled` is off.
    pub fn new(config: &Config, store: Arc<dyn Store>) -> Option<Enforcer> {
        if !config.coa.enabled {
            return None;
        }
        Some(Enforcer {
            store,
            rules: policy::Rules::from_config(config),
            clients: Arc::new(NasClients::from_config(config)),
            retransmit: Retransmit {
                first_wait: config.coa.timeout.0,
                retries: config.coa.retries,
            },
            check_interval: config.coa.check_interval.0,
            kicked: Arc::new(Mutex::new(HashMap::new())),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        })
    }

    /// Runs until `stop` turns true: wakes on `changed` (a registry change) and every
    /// `coa.check_interval`. Exchanges still in flight at the stop get 2 s to finish.
    pub async fn run(self, changed: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        let mut last = self.store.change_marker().await.ok();
        let mut tasks = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(self.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = changed.notified() => {
                    match last {
                        Some(after) => last = Some(self.follow(after, &mut tasks).await),
                        None => last = self.store.change_marker().await.ok(),
                    }
                }
                _ = tick.tick() => self.sweep(&mut tasks).await,
            }
            while tasks.try_join_next().is_some() {}
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(2), drain)
            .await
            .is_err()
        {
            tracing::warn!("Disconnect/CoA exchanges still waiting at shutdown; abandoned");
        }
    }

    /// Reads the audit entries after `after`, re-decides the open sessions of the devices
    /// (and owners' devices) they touched; returns the newest id seen.
    async fn follow(&self, after: i64, tasks: &mut tokio::task::JoinSet<()>) -> i64 {
        let mut last = after;
        let mut devices: HashMap<Uuid, String> = HashMap::new();
        let mut owners: HashMap<String, String> = HashMap::new();
        for _ in 0..AUDIT_PAGES {
            let page = match self.store.audit_after(last, AUDIT_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the audit log; the periodic check will catch up");
                    break;
                }
            };
            for e in &page {
                last = last.max(e.id);
                // our own records are not changes to act on
                if e.action.starts_with("session.") {
                    continue;
                }
                let trigger = format!("{} by {}", e.action, e.actor);
                match e.target_type.as_str() {
                    "device" => {
                        if let Ok(id) = Uuid::parse_str(&e.target_id) {
                            devices.insert(id, trigger);
                        }
                    }
                    "owner" => {
                        owners.insert(e.target_id.clone(), trigger);
                    }
                    _ => {}
                }
            }
            if page.len() < AUDIT_PAGE as usize {
                break;
            }
        }
        for (owner, trigger) in owners {
            match self.store.devices(Some(&owner)).await {
                Ok(list) => {
                    for d in list {
                        devices.entry(d.id).or_insert_with(|| trigger.clone());
                    }
                }
                Err(e) => tracing::warn!(error = %e, %owner, "cannot read an owner's devices"),
            }
        }
        let mut subjects = HashMap::new();
        for (device, trigger) in devices {
            let sessions = match self.store.open_sessions_of(device).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, %device, "cannot read a device's sessions");
                    continue;
                }
            };
            for s in sessions {
                self.consider(s, &trigger, &mut subjects, tasks).await;
            }
        }
        last
    }

    /// Re-decides every open session.
    async fn sweep(&self, tasks: &mut tokio::task::JoinSet<()>) {
        let open = match self
            .store
            .sessions(&SessionFilter {
                active_only: true,
                mac: None,
                limit: Some(MAX_SWEEP),
            })
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read open sessions for the periodic check");
                return;
            }
        };
        {
            // forget sessions that ended
            let ids: std::collections::HashSet<i64> = open.iter().map(|s| s.id).collect();
            lock(&self.kicked).retain(|id, _| ids.contains(id));
        }
        let mut subjects = HashMap::new();
        for s in open {
            self.consider(s, "periodic check", &mut subjects, tasks)
                .await;
        }
    }

    async fn subject(
        &self,
        device: Uuid,
        cache: &mut HashMap<Uuid, Subject>,
    ) -> Result<Subject, StoreError> {
        if let Some(s) = cache.get(&device) {
            return Ok(s.clone());
        }
        let found = match self.store.device(device).await? {
            Some(d) => self.store.owner(&d.owner).await?.map(|o| Arc::new((d, o))),
            None => None,
        };
        cache.insert(device, found.clone());
        Ok(found)
    }

    /// Kicks one session if its device's decision changed and it was not kicked for the
    /// same reason already.
    async fn consider(
        &self,
        session: Session,
        trigger: &str,
        subjects: &mut HashMap<Uuid, Subject>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) {
        let Some(device) = session.device_id else {
            return;
        };
        let subject = match self.subject(device, subjects).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, %device, "cannot read a device for the enforcer");
                return;
            }
        };
        let Some(decision) = must_leave(
            &session,
            subject.as_deref().map(|(d, o)| (d, o)),
            Utc::now(),
            &self.rules,
        ) else {
            return;
        };
        let reason = decision.reason.as_str();
        {
            let mut kicked = lock(&self.kicked);
            if let Some(k) = kicked.get(&session.id) {
                let retry = k.result == Some("timeout") && k.timeouts < MAX_TIMEOUT_ROUNDS;
                if k.reason == reason && !retry {
                    return;
                }
            }
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                tracing::warn!(
                    "too many Disconnect/CoA exchanges in flight; the next check retries"
                );
                return;
            };
            let timeouts = kicked
                .get(&session.id)
                .filter(|k| k.reason == reason)
                .map_or(0, |k| k.timeouts);
            kicked.insert(
                session.id,
                Kicked {
                    reason,
                    result: None,
                    timeouts,
                },
            );
            let Some(client) = self.clients.by_name(&session.nas) else {
                tracing::warn!(nas = %session.nas, "session of a client no longer configured: cannot disconnect it");
                return;
            };
            let (kind, change) = client.request_for(&decision);
            let what = Kick {
                kind,
                change,
                reason: format!("{trigger}: {}", decision.message),
                actor: ENFORCER_ACTOR.to_string(),
            };
            let store = self.store.clone();
            let clients = self.clients.clone();
            let table = self.kicked.clone();
            let retransmit = self.retransmit;
            tasks.spawn(async move {
                let _permit = permit;
                let result = match kick(&*store, &clients, &session, &what, retransmit).await {
                    Ok(r) => match r.result.as_str() {
                        "ack" => "ack",
                        "nak" => "nak",
                        "timeout" => "timeout",
                        _ => "error",
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, session = %session.acct_session_id, "dynamic authorization failed");
                        "error"
                    }
                };
                if let Some(k) = lock(&table).get_mut(&session.id) {
                    k.result = Some(result);
                    if result == "timeout" {
                        k.timeouts += 1;
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_reason_is_read() {
        assert_eq!(
            class_reason("pw1;device=x;owner=y;reason=compliant"),
            Some("compliant")
        );
        assert_eq!(class_reason("other;reason=x"), None);
        assert_eq!(class_reason("pw1;device=x"), None);
    }
}
