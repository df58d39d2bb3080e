//! Decisions per client, outcome and reason, for `/api/v1/metrics`
//! (`poortwachter_decisions_total`). The label set is bounded: client names come from the
//! config, reasons from [`Reason`]; never a MAC or a username.
//!
//! A client's counters are an `Arc` the request path holds, found (or added) by name once;
//! counting is then an atomic add, with no lock. A client added later (a reload) gets its
//! slot the first time it is counted; the slots' list is locked only then and to render.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::sync::lock;

use crate::policy::{Outcome, Reason};

const REASONS: usize = Reason::ALL.len();

/// One client's decisions, by outcome and reason.
#[derive(Debug)]
pub struct ClientDecisions {
    name: String,
    counts: [[AtomicU64; REASONS]; 2],
}

fn outcome_index(o: Outcome) -> usize {
    match o {
        Outcome::Accept => 0,
        Outcome::Reject => 1,
    }
}

impl ClientDecisions {
    /// The client's name, as in `radius.clients`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counts one decision.
    pub fn count(&self, outcome: Outcome, reason: Reason) {
        // `Reason::ALL` is in declaration order, so the discriminant is the index
        self.counts[outcome_index(outcome)][reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Decisions so far with this outcome and reason.
    pub fn get(&self, outcome: Outcome, reason: Reason) -> u64 {
        self.counts[outcome_index(outcome)][reason as usize].load(Ordering::Relaxed)
    }
}

/// The most client slots (client names come from the config; this only bounds a bug).
pub const MAX_CLIENTS: usize = 4_096;

/// Every client's decision counters.
#[derive(Debug)]
pub struct DecisionCounters {
    clients: Mutex<Vec<Arc<ClientDecisions>>>,
    /// Decisions of clients beyond [`MAX_CLIENTS`] (not shown).
    overflow: Arc<ClientDecisions>,
}

impl DecisionCounters {
    /// Counters with a slot for each of `names` (zeros from the start, so a rate has a base).
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> DecisionCounters {
        let c = DecisionCounters {
            clients: Mutex::new(Vec::new()),
            overflow: Arc::new(ClientDecisions {
                name: String::new(),
                counts: Default::default(),
            }),
        };
        for n in names {
            c.slot(n);
        }
        c
    }

    /// The slot for client `name`, added when new.
    pub fn slot(&self, name: &str) -> Arc<ClientDecisions> {
        let mut list = lock(&self.clients);
        if let Some(found) = list.iter().find(|c| c.name == name) {
            return found.clone();
        }
        if list.len() >= MAX_CLIENTS {
            return self.overflow.clone();
        }
        let slot = Arc::new(ClientDecisions {
            name: name.to_string(),
            counts: Default::default(),
        });
        list.push(slot.clone());
        slot
    }

    /// The exposition text of `poortwachter_decisions_total`: for every client each reject
    /// reason, and the accept reasons ([`Reason::is_accept_reason`]) for accepts.
    pub fn render(&self, out: &mut String) {
        let list: Vec<Arc<ClientDecisions>> = lock(&self.clients).clone();
        let _ = writeln!(
            out,
            "# HELP poortwachter_decisions_total Access decisions (first answers, not repeats) by RADIUS client, decision and reason."
        );
        let _ = writeln!(out, "# TYPE poortwachter_decisions_total counter");
        for c in &list {
            let client = label(&c.name);
            for outcome in [Outcome::Accept, Outcome::Reject] {
                for &reason in Reason::ALL {
                    if outcome == Outcome::Accept && !reason.is_accept_reason() {
                        continue;
                    }
                    let _ = writeln!(
                        out,
                        "poortwachter_decisions_total{{client=\"{client}\",decision=\"{}\",reason=\"{}\"}} {}",
                        outcome.as_str(),
                        reason.as_str(),
                        c.get(outcome, reason)
                    );
                }
            }
        }
    }
}

/// A label value escaped for the text format: backslash, double quote and newline.
pub fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_by_discriminant() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
    }

    #[test]
    fn decisions_by_client_and_reason() {
        let c = DecisionCounters::new(["ap-1", "ap \"2\""]);
        let slot = c.slot("ap-1");
        slot.count(Outcome::Reject, Reason::UnknownDevice);
        slot.count(Outcome::Reject, Reason::UnknownDevice);
        slot.count(Outcome::Accept, Reason::Compliant);
        // a client from a reload gets a slot of its own; the same slot by name again
        c.slot("ap-3").count(Outcome::Accept, Reason::Registration);
        assert!(Arc::ptr_eq(&c.slot("ap-1"), &slot));
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.contains("\npoortwachter_decisions_total{client=\"ap-1\",decision=\"reject\",reason=\"unknown_device\"} 2\n"), "{out}");
        assert!(out.contains("\npoortwachter_decisions_total{client=\"ap-1\",decision=\"accept\",reason=\"compliant\"} 1\n"));
        assert!(out.contains("\npoortwachter_decisions_total{client=\"ap-3\",decision=\"accept\",reason=\"registration\"} 1\n"));
        assert!(out
            .contains("{client=\"ap \\\"2\\\"\",decision=\"reject\",reason=\"device_lost\"} 0\n"));
        assert!(!out.contains("decision=\"accept\",reason=\"unknown_device\""));
        // every client: every reject reason and the accept reasons
        let accepts = Reason::ALL.iter().filter(|r| r.is_accept_reason()).count();
        let samples = out.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 3 * (Reason::ALL.len() + accepts));
    }
}
