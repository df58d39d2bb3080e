//! Counters of what the server did with each packet: answered, dropped and why.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $doc:literal),+ $(,)?) => {
        /// Packet counters, updated lock-free from the listeners.
        #[derive(Debug, Default)]
        pub struct Stats {
            $(#[doc = $doc] pub $name: AtomicU64,)+
            /// Requests each client's secrets verified (primary and, during a rotation,
            /// secondary), by client name.
            pub secrets: super::secrets::SecretUse,
        }

        impl Stats {
            /// `(name, value)` of every counter.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)+]
            }
        }
    };
}

counters! {
    received: "Datagrams read from either socket.",
    accepts: "Access-Accepts sent (first answers, not repeats).",
    rejects: "Access-Rejects sent (first answers, not repeats).",
    accounting: "Accounting-Responses sent after storing.",
    status: "Status-Server requests answered.",
    challenges: "Access-Challenges sent (EAP rounds).",
    duplicates: "Retransmissions answered from the reply cache (or dropped while in progress).",
    dropped_unknown_client: "Dropped: source address matches no configured client.",
    dropped_malformed: "Dropped: not a well-formed RADIUS packet.",
    dropped_missing_message_authenticator: "Dropped: Access-Request without Message-Authenticator where one is required.",
    dropped_bad_authenticator: "Dropped: Message-Authenticator or Request Authenticator does not verify.",
    dropped_unexpected_code: "Dropped: a code this port does not serve.",
    dropped_backend: "Dropped: the registry could not be read or written; the NAS will retry.",
    dropped_overload: "Dropped: too many requests already waiting for the registry; the NAS will retry.",
    dropped_eap: "Dropped: EAP with an unknown, expired or foreign State, or a malformed or stale EAP packet.",
    dropped_degraded: "Dropped: the registry could not be read and this node holds no data for the device (cache.unseen_while_degraded = no_answer); the NAS asks its other server.",
    degraded: "Decided on last-known-good data (cache or snapshot) while the registry could not be read.",
    decisions_lost: "Decision records not stored because the writer fell behind.",
    spooled: "Accounting updates acknowledged from the spool (durable on disk) while the database could not take them.",
    replayed: "Spooled accounting updates applied to the database.",
    spool_full: "Accounting not acknowledged because the spool reached node.spool_max_mib (also in dropped_backend); the NAS retransmits.",
    spool_rejected: "Spooled accounting updates the database refused outright (a constraint or value error); skipped and logged.",
}

impl Stats {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// All packets dropped, for any reason.
    pub fn dropped(&self) -> u64 {
        [
            &self.dropped_unknown_client,
            &self.dropped_malformed,
            &self.dropped_missing_message_authenticator,
            &self.dropped_bad_authenticator,
            &self.dropped_unexpected_code,
            &self.dropped_backend,
            &self.dropped_overload,
            &self.dropped_eap,
            &self.dropped_degraded,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, v) in self.snapshot() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{name}={v}")?;
        }
        Ok(())
    }
}
