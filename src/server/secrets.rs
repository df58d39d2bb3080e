//! Which of a client's shared secrets verified a request, and how often each did: during a
//! rotation a client has a second secret (`secret_next`), and ICT retires the old one once
//! its counter stops moving (`poortwachter_radius_client_secret_used_total`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One of a client's two secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// `secret` (or `secret_file`, or the by-name variable).
    Primary,
    /// `secret_next`.
    Secondary,
}

impl Which {
    /// The label in the metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Which::Primary => "primary",
            Which::Secondary => "secondary",
        }
    }
}

/// Requests one client's secrets verified.
#[derive(Debug, Default)]
pub struct Used {
    primary: AtomicU64,
    secondary: AtomicU64,
}

impl Used {
    /// One more request verified with `which`.
    pub fn count(&self, which: Which) {
        match which {
            Which::Primary => &self.primary,
            Which::Secondary => &self.secondary,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// `(primary, secondary)`.
    pub fn get(&self) -> (u64, u64) {
        (
            self.primary.load(Ordering::Relaxed),
            self.secondary.load(Ordering::Relaxed),
        )
    }
}

/// The counters of every client by name, kept across reloads (a client that keeps its name
/// keeps its counts; the table holds the names configured since the start).
#[derive(Debug, Default)]
pub struct SecretUse {
    by_name: Mutex<BTreeMap<String, Arc<Used>>>,
}

impl SecretUse {
    /// The counters of the client named `name` (made at its first configuration).
    pub fn for_client(&self, name: &str) -> Arc<Used> {
        crate::sync::lock(&self.by_name)
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// `(client, primary, secondary)` for every client, by name.
    pub fn snapshot(&self) -> Vec<(String, u64, u64)> {
        crate::sync::lock(&self.by_name)
            .iter()
            .map(|(name, used)| {
                let (p, s) = used.get();
                (name.clone(), p, s)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_name_survive_a_new_client_list() {
        let use_ = SecretUse::default();
        use_.for_client("ap-hal").count(Which::Primary);
        use_.for_client("ap-hal").count(Which::Secondary);
        use_.for_client("ap-hal").count(Which::Secondary);
        use_.for_client("wlc").count(Which::Primary);
        assert_eq!(
            use_.snapshot(),
            vec![("ap-hal".into(), 1, 2), ("wlc".into(), 1, 0)]
        );
    }
}
