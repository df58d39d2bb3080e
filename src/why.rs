//! The `why` timeline: what the RADIUS server decided about an owner's, a device's or a MAC's
//! requests, newest first. One rule for every edge (the CLI's `why`, the console's owner and
//! device pages), which render the neutral events this returns.
//!
//! What belongs in it:
//! 1. decisions by owner AND by each MAC in scope: a refused superseded certificate is
//!    recorded with the device's MAC but no owner (`certificate_unknown`), so asking by owner
//!    alone would miss it; a decision found both ways shows once (by row id);
//! 2. the per-minute counts whose MAC sample holds a MAC in scope (requests from unregistered
//!    devices are counted per minute, not stored one row each);
//! 3. the accounting sessions still open, first: a connected device's accept is folded into
//!    the log only after `log.decision_coalesce`, so without them an old reject would head
//!    the timeline of a device that is connected now.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::activity::{DecisionAggregate, DecisionFilter, DecisionRecord, Session, SessionFilter};
use crate::mac::MacAddr;
use crate::model::{validate_username, Device};
use crate::registry::{DeviceRef, Registry, RegistryError};

/// Whose timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// An owner by username (any case): decisions about the owner and about every MAC of the
    /// owner's devices.
    Owner(String),
    /// One MAC, registered or not.
    Mac(MacAddr),
    /// A registered device by id: its MACs.
    Device(Uuid),
}

/// What a timeline covers once [`Who`] is resolved: decisions recorded for `owner`, and
/// everything recorded for each of `macs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The owner's username, as asked.
    pub owner: Option<String>,
    /// The MACs, each once.
    pub macs: Vec<MacAddr>,
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// An accounting session still open: the device is connected now.
    Connected {
        /// The open session.
        session: Box<Session>,
    },
    /// A decision stored one row each (identical ones folded into it).
    Decision(DecisionRecord),
    /// A minute count of requests from unregistered devices that sampled `mac`.
    Counted {
        /// The MAC in scope found in the sample.
        mac: MacAddr,
        /// The minute count.
        aggregate: DecisionAggregate,
    },
}

impl Event {
    /// When it happened: the decision, the start of the minute counted, the session's start.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Event::Connected { session } => session.started_at,
            Event::Decision(d) => d.at,
            Event::Counted { aggregate, .. } => aggregate.minute,
        }
    }
}

/// A timeline with what was found about whom it is of.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// What it covers.
    pub scope: Scope,
    /// The registered devices found: the owner's, the one holding the MAC, or the one asked.
    /// Empty for an unregistered MAC.
    pub devices: Vec<Device>,
    /// Newest first; open sessions before everything else.
    pub events: Vec<Event>,
}

/// The timeline of `who`: the devices found and at most `limit` events besides the open
/// sessions (which always show), newest first. `now` places the open sessions: connected now.
pub async fn timeline(
    registry: &Registry,
    who: &Who,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Timeline, RegistryError> {
    let (owner, devices, macs) = match who {
        Who::Owner(username) => {
            let username = username.trim().to_string();
            // decisions are kept for any User-Name-like text; only a valid username can own
            // devices
            let devices = match validate_username(&username) {
                Ok(_) => registry.devices(Some(&username)).await?,
                Err(_) => Vec::new(),
            };
            let macs = devices
                .iter()
                .flat_map(|d| d.macs.iter().copied())
                .collect();
            (Some(username), devices, macs)
        }
        Who::Mac(mac) => {
            let devices: Vec<Device> = registry.device_by_mac(*mac).await?.into_iter().collect();
            (None, devices, vec![*mac])
        }
        Who::Device(id) => {
            let device = registry.find_device(&DeviceRef::Id(*id)).await?;
            let macs = device.macs.clone();
            (None, vec![device], macs)
        }
    };
    let scope = Scope {
        owner,
        macs: unique(macs),
    };
    let events = events(registry, &scope, now, limit).await?;
    Ok(Timeline {
        scope,
        devices,
        events,
    })
}

/// The events of a resolved scope (see the module header for what belongs in it): the open
/// sessions, then at most `limit` others, newest first.
pub async fn events(
    registry: &Registry,
    scope: &Scope,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Event>, RegistryError> {
    let mut decisions = Vec::new();
    if let Some(owner) = &scope.owner {
        decisions.extend(
            registry
                .decisions(&DecisionFilter {
                    mac: None,
                    username: Some(owner.clone()),
                    limit: Some(limit),
                })
                .await?,
        );
    }
    let mut counted = Vec::new();
    let mut open = Vec::new();
    for mac in &scope.macs {
        decisions.extend(
            registry
                .decisions(&DecisionFilter {
                    mac: Some(*mac),
                    username: None,
                    limit: Some(limit),
                })
                .await?,
        );
        counted.extend(
            registry
                .decision_aggregates(*mac, limit)
                .await?
                .into_iter()
                .map(|a| (*mac, a)),
        );
        open.extend(
            registry
                .sessions(&SessionFilter {
                    active_only: true,
                    mac: Some(*mac),
                    limit: Some(limit),
                })
                .await?,
        );
    }
    Ok(merge(now, open, decisions, counted, limit))
}

/// Puts the pieces in order: open sessions first (connected at `now`, the most recently
/// started first, each once), then decisions (each row once, however it was found) and minute
/// counts, newest first, at most `limit` of those.
pub fn merge(
    now: DateTime<Utc>,
    mut open: Vec<Session>,
    mut decisions: Vec<DecisionRecord>,
    counted: Vec<(MacAddr, DecisionAggregate)>,
    limit: u32,
) -> Vec<Event> {
    open.retain(|s| s.stopped_at.is_none());
    // a start "after now" (a NAS clock ahead) is still connected now, no newer than that
    open.sort_by_key(|s| std::cmp::Reverse((s.started_at.min(now), s.id)));
    open.dedup_by_key(|s| s.id);
    // the same row read by owner and by MAC has the same (at, id): adjacent once sorted
    decisions.sort_by_key(|d| std::cmp::Reverse((d.at, d.id)));
    decisions.dedup_by_key(|d| d.id);
    let mut past: Vec<Event> = decisions
        .into_iter()
        .map(Event::Decision)
        .chain(
            counted
                .into_iter()
                .map(|(mac, aggregate)| Event::Counted { mac, aggregate }),
        )
        .collect();
    // a stable sort: at the same instant, decisions before minute counts
    past.sort_by_key(|e| std::cmp::Reverse(e.at()));
    past.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    open.into_iter()
        .map(|session| Event::Connected {
            session: Box::new(session),
        })
        .chain(past)
        .collect()
}

/// Each MAC once, in the order first given.
fn unique(macs: Vec<MacAddr>) -> Vec<MacAddr> {
    let mut seen = std::collections::HashSet::new();
    macs.into_iter().filter(|m| seen.insert(*m)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, min, 0).unwrap()
    }

    fn mac(last: u8) -> MacAddr {
        MacAddr::parse_any(&format!("3c:22:fb:00:00:{last:02x}")).unwrap()
    }

    fn decision(id: i64, min: u32, outcome: &str) -> DecisionRecord {
        DecisionRecord {
            id,
            at: at(min),
            nas: "ap".into(),
            nas_ip: None,
            username: "u".into(),
            mac: Some(mac(1)),
            ssid: None,
            method: "eap-tls".into(),
            device_id: None,
            owner: None,
            outcome: outcome.into(),
            vlan: None,
            reason: "certificate_unknown".into(),
            message: "m".into(),
            repeats: 0,
            degraded: false,
        }
    }

    fn aggregate(id: i64, min: u32) -> DecisionAggregate {
        DecisionAggregate {
            id,
            minute: at(min),
            nas: "ap".into(),
            ap: "10.0.0.1".into(),
            method: "mab".into(),
            outcome: "reject".into(),
            reason: "unknown_device".into(),
            count: 3,
            macs: vec![mac(1)],
            message: "m".into(),
        }
    }

    fn session(id: i64, min: u32, stopped: Option<u32>) -> Session {
        Session {
            id,
            nas: "ap".into(),
            nas_key: "ap".into(),
            acct_session_id: format!("s{id}"),
            nas_ip: None,
            nas_port: None,
            username: None,
            mac: Some(mac(1)),
            ssid: None,
            device_id: None,
            owner: None,
            framed_ip: None,
            class: None,
            started_at: at(min),
            updated_at: at(min),
            stopped_at: stopped.map(at),
            session_time: 0,
            input_octets: 0,
            output_octets: 0,
            input_packets: 0,
            output_packets: 0,
            terminate_cause: None,
            raw: Default::default(),
        }
    }

    fn ids(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Connected { session } => format!("s{}", session.id),
                Event::Decision(d) => format!("d{}", d.id),
                Event::Counted { aggregate, .. } => format!("a{}", aggregate.id),
            })
            .collect()
    }

    #[test]
    fn open_sessions_first_then_newest_first() {
        let events = merge(
            at(50),
            vec![session(7, 10, None)],
            vec![decision(1, 5, "accept"), decision(2, 20, "reject")],
            vec![(mac(1), aggregate(9, 30))],
            10,
        );
        // the session started before the reject, yet it heads the timeline: connected now
        assert_eq!(ids(&events), ["s7", "a9", "d2", "d1"]);
    }

    #[test]
    fn a_decision_found_by_owner_and_by_mac_shows_once() {
        let events = merge(
            at(50),
            vec![],
            vec![
                decision(2, 20, "reject"),
                decision(1, 5, "accept"),
                decision(2, 20, "reject"),
                decision(3, 20, "reject"),
            ],
            vec![],
            10,
        );
        assert_eq!(ids(&events), ["d3", "d2", "d1"]);
    }

    #[test]
    fn the_limit_keeps_the_newest_and_every_open_session() {
        let events = merge(
            at(50),
            vec![
                session(7, 10, None),
                session(8, 40, None),
                session(7, 10, None),
            ],
            (1..=5).map(|i| decision(i, i as u32, "reject")).collect(),
            vec![(mac(1), aggregate(9, 0))],
            2,
        );
        assert_eq!(ids(&events), ["s8", "s7", "d5", "d4"]);
    }

    #[test]
    fn a_stopped_session_is_not_connected() {
        let events = merge(at(50), vec![session(7, 10, Some(20))], vec![], vec![], 10);
        assert!(events.is_empty());
    }

    #[test]
    fn each_mac_once() {
        assert_eq!(unique(vec![mac(2), mac(1), mac(2)]), vec![mac(2), mac(1)]);
    }
}
