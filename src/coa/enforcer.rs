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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use ipnetwork::IpNetwork;
use tokio::sync::{watch, Notify, Semaphore};
use uuid::Uuid;

use super::client::{self, Outcome, Retransmit};
use super::counters::{CoaCounters, CoaResult};
use super::packet::{
    build_request, error_cause_name, Answer, Kind, NewAuthorization, SessionIdentity,
    SESSION_CONTEXT_NOT_FOUND,
};
use crate::activity::{Session, SessionFilter};
use crate::config::ops::CoaAction;
use crate::config::{ClientConfig, Config};
use crate::model::{Device, Owner};
use crate::policy::{self, AuthMethod, Decision, Outcome as PolicyOutcome};
use crate::radius::crypto::Key;
use crate::radius::EncodeError;
use crate::registry::coa::CoaRecord;
use crate::registry::{NewAuditEntry, Store, StoreError};
use crate::secret::Secret;

/// The actor of the enforcer's own audit entries and requests.
pub const ENFORCER_ACTOR: &str = "poortwachter";

/// Audit entries read per query while catching up.
const AUDIT_PAGE: u32 = 500;
/// Pages read per wake-up (the periodic check covers anything beyond).
const AUDIT_PAGES: usize = 20;
/// How far below the newest id seen each wake-up reads again: PostgreSQL hands out ids at
/// insert and transactions commit in any order, so an entry with a lower id can appear after
/// a higher one was read.
const AUDIT_WINDOW: i64 = 1_000;
/// Audit ids remembered as processed (so the window does not act on an entry twice).
const RECENT_IDS: usize = 20_000;

/// The audit entries acted on lately, bounded.
#[derive(Debug, Default)]
struct RecentIds {
    order: std::collections::VecDeque<i64>,
    set: std::collections::HashSet<i64>,
}

impl RecentIds {
    /// True if `id` was not seen before (and remembers it).
    fn insert(&mut self, id: i64) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        while self.order.len() > RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}
/// How often a standing-by node tries to become the enforcer, and the enforcer checks it
/// still is: the longest a dead enforcer's duty waits (once PostgreSQL has seen its
/// connection close).
pub const LEAD_RETRY: Duration = Duration::from_secs(2);
/// Open sessions re-decided per periodic check.
const MAX_SWEEP: u32 = 100_000;
/// Exchanges in flight at once; more wait for the next check.
const MAX_IN_FLIGHT: usize = 256;
/// A session whose NAS did not answer (or to which nothing could be sent) is tried again, at
/// the periodic check, this many times.
const MAX_FAILED_ROUNDS: u32 = 3;

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
    /// From its configuration entry. A Disconnect/CoA-Request is signed with the client's
    /// `secret`, during a rotation too: `secret_next` is only tried on what the NAS sends us
    /// (its requests, where the first secret failed), and an RFC 5176 request gets no second
    /// try with another secret. So the access points' dynamic-authorization secret moves when
    /// the rotation ends (`secret_next` becomes `secret`, reloaded). This is the one place
    /// that rule is kept: the server and the CLI both build their entries here.
    pub fn from_config(c: &ClientConfig) -> NasClient {
        NasClient::new(&c.name, c.network, &c.secret, c.coa_port, c.coa_action)
    }

    /// An entry signing with `secret` (the configuration goes through
    /// [`NasClient::from_config`]).
    pub(crate) fn new(
        name: &str,
        network: IpNetwork,
        secret: &Secret,
        coa_port: u16,
        action: CoaAction,
    ) -> NasClient {
        NasClient {
            name: name.to_string(),
            network,
            key: Key::new(secret.expose().as_bytes()),
            coa_port,
            action,
        }
    }

    /// The port its NAS listens on for RFC 5176 requests.
    pub fn coa_port(&self) -> u16 {
        self.coa_port
    }

    /// What it is sent when a session must change.
    pub fn action(&self) -> CoaAction {
        self.action
    }

    /// Where the NAS of `session` listens for RFC 5176 requests, port `coa_port`: the first
    /// of its NAS-IP-Address, NAS-IPv6-Address, the source address of its accounting packets
    /// (and, for older rows, the stored NAS address) that lies in the client's network, else
    /// the client's one address (a /32 or /128 entry). Never an address outside the network.
    pub fn destination(&self, session: &Session) -> Option<SocketAddr> {
        let single = match self.network {
            IpNetwork::V4(n) if n.prefix() == 32 => Some(IpAddr::V4(n.ip())),
            IpNetwork::V6(n) if n.prefix() == 128 => Some(IpAddr::V6(n.ip())),
            _ => None,
        };
        let raw = &session.raw;
        let ip = [
            raw.nas_ip_address.as_deref(),
            raw.nas_ipv6_address.as_deref(),
            raw.source_ip.as_deref(),
            session.nas_ip.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|s| s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical()))
        .find(|ip| self.network.contains(*ip))
        .or(single)?;
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

/// Where a session's client is found by its name (`sessions.nas`), at each request: the
/// clients in force. `serve` looks in the request path's own clients, which a reload swaps
/// (`crate::server`); the CLI in the configuration it read ([`NasClients`]).
pub trait NasDirectory: Send + Sync {
    /// The client named `name`, if it is configured.
    fn nas_client(&self, name: &str) -> Option<Arc<NasClient>>;
}

/// What the enforcer reads from the configuration in force each time it decides: the
/// clients and the decision rules, so that a reload reaches it as it reaches the request
/// path.
pub trait InForce: NasDirectory {
    /// The decision rules (policy, VLANs, roles).
    fn rules(&self) -> policy::Rules;
}

/// The clients of one configuration, as read (for the CLI's `session kick`).
#[derive(Debug)]
pub struct NasClients(Vec<Arc<NasClient>>);

impl NasClients {
    /// From the configuration.
    pub fn from_config(config: &Config) -> NasClients {
        NasClients(
            config
                .radius
                .clients
                .iter()
                .map(|c| Arc::new(NasClient::from_config(c)))
                .collect(),
        )
    }
}

impl NasDirectory for NasClients {
    fn nas_client(&self, name: &str) -> Option<Arc<NasClient>> {
        self.0.iter().find(|c| c.name == name).cloned()
    }
}

/// How the NAS knows the session (RFC 5176 §3): Acct-Session-Id, Calling-Station-Id,
/// User-Name, NAS-IP-Address, NAS-IPv6-Address and NAS-Identifier exactly as the NAS sent
/// them in accounting, leaving out what it did not send. When it sent no NAS attribute at all,
/// the source address of its accounting packets stands in (as NAS-IP-Address or
/// NAS-IPv6-Address); the flag is true when the request carries the NAS's own identification
/// (only then does "no such session" mean the session is gone).
pub fn session_identity(session: &Session) -> (SessionIdentity, bool) {
    let fits = |s: &String| !s.is_empty() && s.len() <= 253;
    let user_name = session.username.clone().filter(fits);
    let acct_session_id: String = session.acct_session_id.chars().take(253).collect();
    let raw = &session.raw;
    if raw.source_ip.is_none() {
        // stored before the NAS's own attributes were: the best reconstruction
        let nas_ip = session
            .nas_ip
            .as_deref()
            .and_then(|s| s.parse::<Ipv4Addr>().ok());
        // nas_key is the NAS-Identifier unless it is an address
        let nas_identifier =
            Some(session.nas_key.clone()).filter(|k| fits(k) && k.parse::<IpAddr>().is_err());
        let own = nas_ip.is_some() || nas_identifier.is_some();
        return (
            SessionIdentity {
                acct_session_id,
                calling_station_id: session.mac.map(|m| m.to_dashed_upper()),
                user_name,
                nas_ip,
                nas_ipv6: None,
                nas_identifier,
            },
            own,
        );
    }
    let mut identity = SessionIdentity {
        acct_session_id,
        calling_station_id: raw.calling_station_id.clone().filter(fits),
        user_name,
        nas_ip: raw
            .nas_ip_address
            .as_deref()
            .and_then(|s| s.parse::<Ipv4Addr>().ok()),
        nas_ipv6: raw
            .nas_ipv6_address
            .as_deref()
            .and_then(|s| s.parse::<Ipv6Addr>().ok()),
        nas_identifier: raw.nas_identifier.clone().filter(fits),
    };
    let own = identity.nas_ip.is_some()
        || identity.nas_ipv6.is_some()
        || identity.nas_identifier.is_some();
    if !own {
        match raw
            .source_ip
            .as_deref()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical())
        {
            Some(IpAddr::V4(ip)) => identity.nas_ip = Some(ip),
            Some(IpAddr::V6(ip)) => identity.nas_ipv6 = Some(ip),
            None => {}
        }
    }
    (identity, own)
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
/// records it in one transaction: a `coa_requests` row and an audit entry
/// `session.disconnect`/`session.coa` on the device. A NAK with Error-Cause 503 (the NAS has
/// no such session) closes the session row, when the request carried the NAS's own
/// identification. When nothing can be sent (the client is no longer configured, no address
/// in its network, the request does not fit) an `error` row and audit entry are recorded and
/// the reason returned as the error.
pub async fn kick(
    store: &dyn Store,
    clients: &(impl NasDirectory + ?Sized),
    session: &Session,
    what: &Kick,
    retransmit: Retransmit,
) -> Result<CoaRecord, KickError> {
    let sent_at = Utc::now().trunc_subsecs(6);
    let event_time = u32::try_from(sent_at.timestamp()).unwrap_or(u32::MAX);
    let (identity, own_identification) = session_identity(session);
    let prepared = match clients.nas_client(&session.nas) {
        None => Err(KickError::UnknownClient(session.nas.clone())),
        Some(client) => match client.destination(session) {
            None => Err(KickError::NoAddress(session.acct_session_id.clone())),
            Some(to) => build_request(
                what.kind,
                rand::random(),
                &identity,
                what.change.as_ref(),
                event_time,
                &client.key,
            )
            .map(|packet| (client, to, packet))
            .map_err(KickError::from),
        },
    };
    let (exchanged, to, failure) = match prepared {
        Ok((client, to, packet)) => {
            let ex = client::exchange(to, &packet, &client.key, retransmit).await;
            if let Err(e) = &ex {
                tracing::warn!(error = %e, %to, "Disconnect/CoA-Request not sent");
            }
            let failure = ex.as_ref().err().map(|e| e.to_string());
            (ex.ok(), Some(to), failure.map(|f| (f, None)))
        }
        Err(e) => {
            tracing::warn!(error = %e, session = %session.acct_session_id, nas = %session.nas, "cannot send a Disconnect/CoA-Request");
            (None, None, Some((e.to_string(), Some(e))))
        }
    };
    let (result, error_cause, attempts, answered_at) = match &exchanged {
        Some(ex) => (
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
        None => ("error", None, 0, None),
    };
    let mut record = CoaRecord {
        id: 0,
        session_id: Some(session.id),
        acct_session_id: session.acct_session_id.clone(),
        nas: session.nas.clone(),
        nas_addr: to.map(|t| t.to_string()).unwrap_or_default(),
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
    let gone = matches!(
        exchanged,
        Some(client::Exchange {
            outcome: Outcome::Answered(Answer::Nak {
                error_cause: Some(SESSION_CONTEXT_NOT_FOUND)
            }),
            ..
        })
    ) && own_identification;
    let close = gone.then(|| (Utc::now().trunc_subsecs(6), "NAS-Session-Not-Found"));
    let before = serde_json::json!({
        "session_id": session.id,
        "acct_session_id": session.acct_session_id,
        "nas": session.nas,
        "nas_key": session.nas_key,
        "mac": session.mac.map(|m| m.to_string()),
        "class": session.class,
    });
    let failure_text = failure.as_ref().map(|(f, _)| f.clone());
    let audit = |id: i64| {
        let mut r = record.clone();
        r.id = id;
        let mut after = serde_json::to_value(&r).unwrap_or_default();
        if let Some(obj) = after.as_object_mut() {
            if let Some(cause) = error_cause {
                obj.insert("error_cause_name".into(), error_cause_name(cause).into());
            }
            if let Some(f) = &failure_text {
                obj.insert("error".into(), f.clone().into());
            }
            if !own_identification {
                obj.insert("nas_identified_by".into(), "source address".into());
            }
        }
        NewAuditEntry {
            at: Utc::now().trunc_subsecs(6),
            actor: what.actor.clone(),
            action: format!("session.{}", what.kind.as_str()),
            target_type: "device".into(),
            target_id: session
                .device_id
                .map(|d| d.to_string())
                .unwrap_or_else(|| format!("session {}", session.id)),
            before: Some(before.clone()),
            after: Some(after),
            // a device target: the store finds its owner
            subject: None,
            target_name: None,
        }
    };
    record.id = store
        .record_kick(
            &record,
            close.map(|(at, cause)| (session.id, at, cause)),
            &audit,
        )
        .await?;
    tracing::info!(
        kind = what.kind.as_str(),
        session = %session.acct_session_id,
        nas = %session.nas,
        to = %record.nas_addr,
        result,
        error_cause = error_cause.map(|c| format!("{c} {}", error_cause_name(c))),
        attempts,
        reason = %what.reason,
        "dynamic authorization"
    );
    match failure {
        Some((_, Some(e))) => Err(e),
        _ => Ok(record),
    }
}

/// What was sent for a session, so that the same trigger does not kick it twice.
#[derive(Debug, Clone)]
struct Kicked {
    /// The decision reason it was kicked for.
    reason: &'static str,
    /// `None` while in flight.
    result: Option<&'static str>,
    /// Rounds that ended in a timeout or an error.
    failures: u32,
}

/// The background task.
pub struct Enforcer {
    store: Arc<dyn Store>,
    /// The clients and rules in force, read at each decision (a reload swaps them).
    in_force: Arc<dyn InForce>,
    retransmit: Retransmit,
    check_interval: Duration,
    kicked: Arc<Mutex<HashMap<i64, Kicked>>>,
    slots: Arc<Semaphore>,
    /// Audit entries up to this id predate the enforcer: never acted on.
    floor: i64,
    recent: RecentIds,
    counts: Arc<CoaCounters>,
}

type Subject = Option<Arc<(Device, Owner)>>;

use crate::sync::lock;

impl Enforcer {
    /// From the configuration's `[coa]`, deciding with the clients and rules `in_force`
    /// holds at each moment; `None` when `coa.enabled` is off.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        in_force: Arc<dyn InForce>,
    ) -> Option<Enforcer> {
        if !config.coa.enabled {
            return None;
        }
        Some(Enforcer {
            store,
            in_force,
            retransmit: Retransmit {
                first_wait: config.coa.timeout.0,
                retries: config.coa.retries,
            },
            check_interval: config.coa.check_interval.0,
            kicked: Arc::new(Mutex::new(HashMap::new())),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            floor: i64::MAX,
            recent: RecentIds::default(),
            counts: Arc::new(CoaCounters::default()),
        })
    }

    /// How the requests sent so far ended, for `/api/v1/metrics`.
    pub fn counters(&self) -> Arc<CoaCounters> {
        self.counts.clone()
    }

    /// Runs until `stop` turns true. Among the nodes sharing the registry one enforces at a
    /// time (so each session gets one request): this node waits until it holds the
    /// leadership ([`Store::try_lead`], tried every [`LEAD_RETRY`]), then wakes on `changed`
    /// (a registry change), on `recheck` (the registry answers again after an outage) and
    /// every `coa.check_interval`, and re-decides every open session at once when it takes
    /// over. Exchanges still in flight at the stop get 2 s to finish.
    pub async fn run(
        mut self,
        changed: Arc<Notify>,
        recheck: Arc<Notify>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tasks = tokio::task::JoinSet::new();
        let mut waiting_said = false;
        'lead: loop {
            let mut lead = tokio::select! {
                _ = stop.changed() => break 'lead,
                got = self.store.try_lead() => match got {
                    Ok(Some(l)) => l,
                    other => {
                        if !waiting_said {
                            waiting_said = true;
                            match other {
                                Err(e) => tracing::warn!(error = %e, "cannot ask the registry which node enforces; retrying"),
                                _ => tracing::info!("another node enforces Disconnect/CoA; standing by"),
                            }
                        }
                        tokio::select! {
                            _ = stop.changed() => break 'lead,
                            _ = tokio::time::sleep(LEAD_RETRY) => continue 'lead,
                        }
                    }
                },
            };
            waiting_said = false;
            tracing::info!("this node enforces Disconnect/CoA for the registry");
            let mut last = self.store.change_marker().await.ok();
            if let Some(m) = last {
                self.floor = m;
            }
            // what happened while no node enforced (or before this one started)
            self.sweep(&mut tasks).await;
            let mut tick = tokio::time::interval(self.check_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.reset();
            let mut still = tokio::time::interval(LEAD_RETRY);
            still.reset();
            loop {
                tokio::select! {
                    _ = stop.changed() => break 'lead,
                    _ = changed.notified() => {
                        match last {
                            Some(after) => last = Some(self.follow(after, &mut tasks).await),
                            None => {
                                last = self.store.change_marker().await.ok();
                                if let Some(m) = last {
                                    self.floor = m;
                                }
                            }
                        }
                    }
                    _ = recheck.notified() => self.sweep(&mut tasks).await,
                    _ = tick.tick() => self.sweep(&mut tasks).await,
                    _ = still.tick() => {
                        if !lead.holds().await {
                            tracing::warn!("this node lost the enforcer role (its database connection ended); trying to take it again");
                            continue 'lead;
                        }
                    }
                }
                while tasks.try_join_next().is_some() {}
            }
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(2), drain)
            .await
            .is_err()
        {
            tracing::warn!("Disconnect/CoA exchanges still waiting at shutdown; abandoned");
        }
    }

    /// Reads the audit entries after `after` (and again the [`AUDIT_WINDOW`] below it, for
    /// entries that committed late), re-decides the open sessions of the devices (and owners'
    /// devices) that entries not processed before touched; returns the newest id seen.
    async fn follow(&mut self, after: i64, tasks: &mut tokio::task::JoinSet<()>) -> i64 {
        let mut last = after;
        let mut cursor = after.saturating_sub(AUDIT_WINDOW).max(self.floor);
        let mut devices: HashMap<Uuid, String> = HashMap::new();
        let mut owners: HashMap<String, String> = HashMap::new();
        for _ in 0..AUDIT_PAGES {
            let page = match self.store.audit_after(cursor, AUDIT_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the audit log; the periodic check will catch up");
                    break;
                }
            };
            for e in &page {
                last = last.max(e.id);
                cursor = cursor.max(e.id);
                if e.id <= self.floor || !self.recent.insert(e.id) {
                    continue;
                }
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
        let rules = self.in_force.rules();
        for (device, trigger) in devices {
            let sessions = match self.store.open_sessions_of(device).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, %device, "cannot read a device's sessions");
                    continue;
                }
            };
            for s in sessions {
                self.consider(s, &trigger, &rules, &mut subjects, tasks)
                    .await;
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
        let rules = self.in_force.rules();
        for s in open {
            self.consider(s, "periodic check", &rules, &mut subjects, tasks)
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

    /// Whether the NAS already acknowledged a Disconnect-Request for this session (sent by
    /// any node).
    async fn disconnected_before(&self, session: i64) -> bool {
        match self.store.coa_requests(Some(session), 20).await {
            Ok(rows) => rows
                .iter()
                .any(|r| r.kind == Kind::Disconnect.as_str() && r.result == "ack"),
            Err(e) => {
                tracing::warn!(error = %e, session, "cannot read the session's earlier Disconnect/CoA requests");
                false
            }
        }
    }

    /// Kicks one session if its device's decision changed and it was not kicked for the
    /// same reason already.
    async fn consider(
        &self,
        session: Session,
        trigger: &str,
        rules: &policy::Rules,
        subjects: &mut HashMap<Uuid, Subject>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) {
        // a NAS that does not echo Class leaves device_id empty: the MAC names the device
        let device = match (session.device_id, session.mac) {
            (Some(d), _) => d,
            (None, Some(mac)) => match self.store.device_by_mac(mac).await {
                Ok(Some(d)) => d.id,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, %mac, "cannot look up a session's device");
                    return;
                }
            },
            (None, None) => return,
        };
        let subject = match self.subject(device, subjects).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, %device, "cannot read a device for the enforcer");
                return;
            }
        };
        // recorded (coa_requests, audit target) under the device it was matched to
        let mut session = session;
        session.device_id = Some(device);
        let Some(decision) = must_leave(
            &session,
            subject.as_deref().map(|(d, o)| (d, o)),
            Utc::now(),
            rules,
        ) else {
            return;
        };
        let reason = decision.reason.as_str();
        let known_here = lock(&self.kicked).contains_key(&session.id);
        // another node (an enforcer before a takeover) may have ended it already: the NAS
        // acknowledged a Disconnect-Request for it, its Stop is on the way
        if !known_here && self.disconnected_before(session.id).await {
            lock(&self.kicked).insert(
                session.id,
                Kicked {
                    reason,
                    result: Some("ack"),
                    failures: 0,
                },
            );
            return;
        }
        {
            let mut kicked = lock(&self.kicked);
            if let Some(k) = kicked.get(&session.id) {
                let retry =
                    matches!(k.result, Some("timeout" | "error")) && k.failures < MAX_FAILED_ROUNDS;
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
            let failures = kicked
                .get(&session.id)
                .filter(|k| k.reason == reason)
                .map_or(0, |k| k.failures);
            kicked.insert(
                session.id,
                Kicked {
                    reason,
                    result: None,
                    failures,
                },
            );
            // a client no longer configured still gets a Disconnect "sent": kick records the
            // error (coa_requests and the audit log)
            let (kind, change) = match self.in_force.nas_client(&session.nas) {
                Some(client) => client.request_for(&decision),
                None => (Kind::Disconnect, None),
            };
            let what = Kick {
                kind,
                change,
                reason: format!("{trigger}: {}", decision.message),
                actor: ENFORCER_ACTOR.to_string(),
            };
            let store = self.store.clone();
            let clients = self.in_force.clone();
            let table = self.kicked.clone();
            let retransmit = self.retransmit;
            let counts = self.counts.clone();
            tasks.spawn(async move {
                let _permit = permit;
                let counted = |what: &Kick, outcome: &Result<CoaRecord, KickError>| {
                    let result = match outcome {
                        Ok(r) => CoaResult::from_stored(&r.result),
                        Err(_) => CoaResult::Error,
                    };
                    counts.count(what.kind, result);
                };
                let mut outcome = kick(&*store, &*clients, &session, &what, retransmit).await;
                counted(&what, &outcome);
                // a CoA-NAK for any other reason than "no such session": the NAS cannot move
                // the session, so end it
                if let Ok(r) = &outcome {
                    if what.kind == Kind::Coa
                        && r.result == "nak"
                        && r.error_cause != Some(SESSION_CONTEXT_NOT_FOUND)
                    {
                        let fallback = Kick {
                            kind: Kind::Disconnect,
                            change: None,
                            reason: format!("{} (CoA-NAK, so Disconnect)", what.reason),
                            actor: what.actor.clone(),
                        };
                        outcome = kick(&*store, &*clients, &session, &fallback, retransmit).await;
                        counted(&fallback, &outcome);
                    }
                }
                let result = match outcome {
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
                let mut kicked = lock(&table);
                if let Some(k) = kicked.get_mut(&session.id) {
                    k.result = Some(result);
                    if matches!(result, "timeout" | "error") {
                        k.failures += 1;
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::NasIdentity;
    use crate::mac::MacAddr;

    fn session(raw: NasIdentity) -> Session {
        let now = Utc::now();
        Session {
            id: 1,
            nas: "ap".into(),
            nas_key: "ap-hal-1".into(),
            acct_session_id: "S1".into(),
            nas_ip: Some("10.1.2.3".into()),
            nas_port: None,
            username: Some("host/laptop".into()),
            mac: MacAddr::parse_any("02:00:00:00:00:01").ok(),
            ssid: None,
            device_id: None,
            owner: None,
            framed_ip: None,
            class: None,
            started_at: now,
            updated_at: now,
            stopped_at: None,
            session_time: 0,
            input_octets: 0,
            output_octets: 0,
            input_packets: 0,
            output_packets: 0,
            terminate_cause: None,
            raw,
        }
    }

    fn client(network: &str) -> NasClient {
        NasClient {
            name: "ap".into(),
            network: network.parse().expect("network"),
            key: Key::new(b"secret"),
            coa_port: 3799,
            action: CoaAction::Disconnect,
        }
    }

    #[test]
    fn identity_is_repeated_as_the_nas_sent_it() {
        let s = session(NasIdentity {
            calling_station_id: Some("02:00:00:00:00:01 ".into()),
            nas_identifier: Some(" ap-hal-1".into()),
            nas_ip_address: None,
            nas_ipv6_address: None,
            source_ip: Some("10.1.2.3".into()),
        });
        let (id, own) = session_identity(&s);
        assert!(own);
        assert_eq!(id.calling_station_id.as_deref(), Some("02:00:00:00:00:01 "));
        assert_eq!(id.nas_identifier.as_deref(), Some(" ap-hal-1"));
        // not sent by the NAS: not invented from the source address
        assert_eq!(id.nas_ip, None);
        assert_eq!(id.nas_ipv6, None);
    }

    #[test]
    fn no_nas_attribute_falls_back_to_the_source_address() {
        let mut s = session(NasIdentity {
            source_ip: Some("10.1.2.3".into()),
            ..NasIdentity::default()
        });
        let (id, own) = session_identity(&s);
        assert!(!own, "a fallback is not the NAS's own identification");
        assert_eq!(id.nas_ip, Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(id.calling_station_id, None);
        s.raw.source_ip = Some("2001:db8::7".into());
        let (id, own) = session_identity(&s);
        assert!(!own);
        assert_eq!(id.nas_ip, None);
        assert_eq!(id.nas_ipv6, "2001:db8::7".parse().ok());
        s.raw.nas_ipv6_address = Some("2001:db8::8".into());
        let (id, own) = session_identity(&s);
        assert!(own);
        assert_eq!(id.nas_ipv6, "2001:db8::8".parse().ok());
    }

    #[test]
    fn destination_stays_in_the_clients_network() {
        let mut s = session(NasIdentity {
            nas_ip_address: Some("192.0.2.1".into()),
            source_ip: Some("10.1.2.9".into()),
            ..NasIdentity::default()
        });
        s.nas_ip = Some("192.0.2.1".into());
        // the reported address is outside: the accounting source address is used
        assert_eq!(
            client("10.1.2.0/24").destination(&s),
            "10.1.2.9:3799".parse().ok()
        );
        // nothing inside and no single address: nowhere
        s.raw.source_ip = Some("198.51.100.1".into());
        assert_eq!(client("10.1.2.0/24").destination(&s), None);
        assert_eq!(
            client("10.1.2.5/32").destination(&s),
            "10.1.2.5:3799".parse().ok()
        );
        s.raw.nas_ip_address = Some("10.1.2.7".into());
        assert_eq!(
            client("10.1.2.0/24").destination(&s),
            "10.1.2.7:3799".parse().ok()
        );
    }

    /// During a rotation a request to the NAS is signed with `secret`, never `secret_next`;
    /// the CLI's clients are looked up by name.
    #[test]
    fn requests_are_signed_with_the_primary_secret() {
        use crate::radius::crypto::check_accounting_authenticator;
        let config = Config::from_toml(
            "[database]\nurl = \"sqlite:var/t.db\"\n\
             [[radius.clients]]\nname = \"ap\"\nnetwork = \"10.1.2.0/24\"\n\
             secret = \"the-primary-secret-0123\"\nsecret_next = \"the-next-secret-45678\"\n\
             coa_port = 4799\n\
             [vlans]\nworkspace = 100\nguest = 200\nquarantine = 666\n",
            std::path::Path::new("t.toml"),
            Vec::new(),
        )
        .expect("config");
        let clients = NasClients::from_config(&config);
        assert!(clients.nas_client("other").is_none());
        let ap = clients.nas_client("ap").expect("ap");
        assert_eq!(ap.coa_port(), 4799);
        let identity = SessionIdentity {
            acct_session_id: "s1".into(),
            calling_station_id: None,
            user_name: None,
            nas_ip: Some(Ipv4Addr::new(10, 1, 2, 3)),
            nas_ipv6: None,
            nas_identifier: None,
        };
        let req = build_request(Kind::Disconnect, 7, &identity, None, 1, &ap.key).expect("builds");
        let p = crate::radius::Packet::parse(&req).expect("parses");
        assert!(check_accounting_authenticator(
            &p,
            "the-primary-secret-0123".as_bytes()
        ));
        assert!(!check_accounting_authenticator(
            &p,
            "the-next-secret-45678".as_bytes()
        ));
    }

    #[test]
    fn recent_ids_are_bounded() {
        let mut r = RecentIds::default();
        assert!(r.insert(5));
        assert!(!r.insert(5));
        for i in 0..(RECENT_IDS as i64 + 10) {
            r.insert(1000 + i);
        }
        assert!(r.order.len() <= RECENT_IDS && r.set.len() <= RECENT_IDS);
        assert!(r.insert(5), "forgotten once out of the window");
    }

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
