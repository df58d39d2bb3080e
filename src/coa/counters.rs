//! Disconnect/CoA results for `/api/v1/metrics` (`poortwachter_coa_requests_total{kind,
//! result}`): atomics, counted where the enforcer learns how an exchange ended.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::packet::Kind;

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoaResult {
    /// ACK.
    Ack,
    /// NAK.
    Nak,
    /// No answer after every retransmission.
    Timeout,
    /// Nothing could be sent (no address, not configured, a socket error).
    Error,
}

impl CoaResult {
    const ALL: [CoaResult; 4] = [
        CoaResult::Ack,
        CoaResult::Nak,
        CoaResult::Timeout,
        CoaResult::Error,
    ];

    /// The word stored in `coa_requests.result` and used as the label.
    pub fn as_str(self) -> &'static str {
        match self {
            CoaResult::Ack => "ack",
            CoaResult::Nak => "nak",
            CoaResult::Timeout => "timeout",
            CoaResult::Error => "error",
        }
    }

    /// From the stored word (anything else is an error).
    pub fn from_stored(s: &str) -> CoaResult {
        match s {
            "ack" => CoaResult::Ack,
            "nak" => CoaResult::Nak,
            "timeout" => CoaResult::Timeout,
            _ => CoaResult::Error,
        }
    }
}

/// Disconnect/CoA results.
#[derive(Debug, Default)]
pub struct CoaCounters {
    counts: [[AtomicU64; 4]; 2],
}

impl CoaCounters {
    fn cell(&self, kind: Kind, result: CoaResult) -> &AtomicU64 {
        let k = match kind {
            Kind::Disconnect => 0,
            Kind::Coa => 1,
        };
        &self.counts[k][result as usize]
    }

    /// Counts one request's end.
    pub fn count(&self, kind: Kind, result: CoaResult) {
        self.cell(kind, result).fetch_add(1, Ordering::Relaxed);
    }

    /// Requests so far of `kind` that ended in `result`.
    pub fn get(&self, kind: Kind, result: CoaResult) -> u64 {
        self.cell(kind, result).load(Ordering::Relaxed)
    }

    /// The exposition text of `poortwachter_coa_requests_total`.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP poortwachter_coa_requests_total Disconnect/CoA-Requests sent by the enforcer (RFC 5176), by how they ended."
        );
        let _ = writeln!(out, "# TYPE poortwachter_coa_requests_total counter");
        for kind in [Kind::Disconnect, Kind::Coa] {
            for result in CoaResult::ALL {
                let _ = writeln!(
                    out,
                    "poortwachter_coa_requests_total{{kind=\"{}\",result=\"{}\"}} {}",
                    kind.as_str(),
                    result.as_str(),
                    self.get(kind, result)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_index_by_discriminant() {
        for (i, r) in CoaResult::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
    }

    #[test]
    fn coa_results_by_kind() {
        let c = CoaCounters::default();
        c.count(Kind::Disconnect, CoaResult::Ack);
        c.count(Kind::Coa, CoaResult::from_stored("nak"));
        c.count(Kind::Coa, CoaResult::from_stored("something else"));
        let mut out = String::new();
        c.render(&mut out);
        assert!(out
            .contains("\npoortwachter_coa_requests_total{kind=\"disconnect\",result=\"ack\"} 1\n"));
        assert!(out.contains("\npoortwachter_coa_requests_total{kind=\"coa\",result=\"nak\"} 1\n"));
        assert!(
            out.contains("\npoortwachter_coa_requests_total{kind=\"coa\",result=\"error\"} 1\n")
        );
        assert!(out.contains(
            "\npoortwachter_coa_requests_total{kind=\"disconnect\",result=\"timeout\"} 0\n"
        ));
        assert_eq!(out.lines().filter(|l| !l.starts_with('#')).count(), 8);
    }
}
