//! The audit log under the AVG: what an entry says in public (what happened, when, who did
//! it) apart from the personal data of the person it is about, which erasure deletes; and the
//! hash chain that shows the log was only ever appended to. Pure: the stores write and read
//! what [`seal`] and [`link`] give.
//!
//! - [`seal`] splits an entry: the personal fields of the records in `before`/`after`
//!   ([`PERSONAL_FIELDS`]) and an owner's username go to the personal part, tied to the owner
//!   (`subject`); the public part keeps the rest and a salted digest of the personal part.
//! - [`link`] hashes a public row onto the previous link (SHA-256). Erasing a personal part
//!   leaves every public row, and so the chain, as it was.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::store::NewAuditEntry;

/// The first link, before any entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Fields of an owner, device or session record that say who someone is or what they wrote:
/// they go to the personal part.
pub const PERSONAL_FIELDS: &[&str] = &[
    "username",
    "display_name",
    "email",
    "department",
    "external_id",
    "disabled_reason",
    "owner",
    "label",
    "macs",
    "mac",
    "status_reason",
    "compliance_note",
    "framed_ip",
    "calling_station_id",
    "last_seen_ssid",
    "user_name",
];

/// The personal part of an entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Personal {
    /// Whose data (an owner id); `None`: found by the store from a device target, or nobody
    /// registered.
    pub owner_id: Option<Uuid>,
    /// Random, hex: makes the digest say nothing once the part is erased.
    pub salt: String,
    /// The target's name then (an owner's username).
    pub target: Option<String>,
    /// The personal fields of `before`.
    pub before: Option<Value>,
    /// The personal fields of `after`.
    pub after: Option<Value>,
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Sealed {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// `owner`, `device`, `token`, ...
    pub target_type: String,
    /// The target's id: an owner's id, not their username.
    pub target_id: String,
    /// `before` without the personal fields.
    pub before: Option<Value>,
    /// `after` without the personal fields.
    pub after: Option<Value>,
    /// The personal part, if the entry has one.
    pub personal: Option<Personal>,
    /// SHA-256 of the personal part (salted), hex.
    pub digest: Option<String>,
}

fn split(value: Option<&Value>) -> (Option<Value>, Option<Value>) {
    match value {
        Some(Value::Object(map)) => {
            let (mut public, mut personal) = (Map::new(), Map::new());
            for (k, v) in map {
                if PERSONAL_FIELDS.contains(&k.as_str()) {
                    personal.insert(k.clone(), v.clone());
                } else {
                    public.insert(k.clone(), v.clone());
                }
            }
            let personal = (!personal.is_empty()).then_some(Value::Object(personal));
            (Some(Value::Object(public)), personal)
        }
        // not a record: nothing known about it, kept whole as personal
        Some(other) => (None, Some(other.clone())),
        None => (None, None),
    }
}

/// Splits an entry into its public row and its personal part.
pub fn seal(e: &NewAuditEntry) -> Sealed {
    let (before, p_before) = split(e.before.as_ref());
    let (after, p_after) = split(e.after.as_ref());
    let personal =
        (p_before.is_some() || p_after.is_some() || e.target_name.is_some()).then(|| {
            let mut salt = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut salt);
            Personal {
                owner_id: e.subject,
                salt: hex(&salt),
                target: e.target_name.clone(),
                before: p_before,
                after: p_after,
            }
        });
    let digest = personal.as_ref().map(digest);
    Sealed {
        at: e.at,
        actor: e.actor.clone(),
        action: e.action.clone(),
        target_type: e.target_type.clone(),
        target_id: e.target_id.clone(),
        before,
        after,
        personal,
        digest,
    }
}

/// The salted digest of a personal part.
pub fn digest(p: &Personal) -> String {
    let mut text = String::new();
    field(&mut text, &p.salt);
    field(&mut text, p.target.as_deref().unwrap_or(""));
    field(&mut text, &canonical(p.before.as_ref()));
    field(&mut text, &canonical(p.after.as_ref()));
    sha256(&text)
}

/// The public columns of a stored row, as the chain covers them.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainRow {
    /// Row id.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Target type.
    pub target_type: String,
    /// Target id.
    pub target_id: String,
    /// Public `before`.
    pub before: Option<Value>,
    /// Public `after`.
    pub after: Option<Value>,
    /// Digest of the personal part.
    pub digest: Option<String>,
    /// The link stored with the row; `None` for rows from before the chain.
    pub chain: Option<String>,
}

/// The link after `prev` for a row with these public columns.
#[allow(clippy::too_many_arguments)]
pub fn link(
    prev: &str,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    target_type: &str,
    target_id: &str,
    before: Option<&Value>,
    after: Option<&Value>,
    digest: Option<&str>,
) -> String {
    let mut text = String::new();
    for part in [
        prev,
        &at.to_rfc3339_opts(SecondsFormat::Micros, true),
        actor,
        action,
        target_type,
        target_id,
        &canonical(before),
        &canonical(after),
        digest.unwrap_or(""),
    ] {
        field(&mut text, part);
    }
    sha256(&text)
}

/// The link of a sealed entry after `prev`.
pub fn link_sealed(prev: &str, s: &Sealed) -> String {
    link(
        prev,
        s.at,
        &s.actor,
        &s.action,
        &s.target_type,
        &s.target_id,
        s.before.as_ref(),
        s.after.as_ref(),
        s.digest.as_deref(),
    )
}

/// What `audit verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    /// Rows whose link was checked.
    pub verified: u64,
    /// Rows from before the chain (not covered).
    pub unchained: u64,
    /// The first row whose link does not follow, if any.
    pub broken_at: Option<i64>,
    /// The newest link matches the head (no row missing at the end).
    pub head_matches: bool,
}

impl Verification {
    /// Whether the log verifies.
    pub fn ok(&self) -> bool {
        self.broken_at.is_none() && self.head_matches
    }
}

/// Checks rows in id order, from `prev` (the link before the first), stopping at the first
/// that does not follow; returns the last good link.
pub fn verify_rows(prev: &str, rows: &[ChainRow], v: &mut Verification) -> String {
    let mut prev = prev.to_string();
    for r in rows {
        let Some(stored) = &r.chain else {
            v.unchained += 1;
            continue;
        };
        let expected = link(
            &prev,
            r.at,
            &r.actor,
            &r.action,
            &r.target_type,
            &r.target_id,
            r.before.as_ref(),
            r.after.as_ref(),
            r.digest.as_deref(),
        );
        if &expected != stored {
            v.broken_at.get_or_insert(r.id);
            return prev;
        }
        v.verified += 1;
        prev = expected;
    }
    prev
}

/// Merges an entry's personal part back into its public values (as read): the union of
/// the fields.
pub fn merge(public: Option<Value>, personal: Option<Value>) -> Option<Value> {
    match (public, personal) {
        (Some(Value::Object(mut a)), Some(Value::Object(b))) => {
            a.extend(b);
            Some(Value::Object(a))
        }
        (None, p) => p,
        (a, _) => a,
    }
}

/// A length-prefixed field: no two sequences of fields hash alike.
fn field(out: &mut String, s: &str) {
    out.push_str(&s.len().to_string());
    out.push(':');
    out.push_str(s);
    out.push('\n');
}

/// JSON with object keys sorted at every depth: the same text whatever order a database
/// gives them back in.
pub fn canonical(v: Option<&Value>) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    match v {
        None => String::new(),
        Some(v) => sorted(v).to_string(),
    }
}

fn sha256(text: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> NewAuditEntry {
        NewAuditEntry {
            at: Utc::now(),
            actor: "ict.anna".into(),
            action: "owner.edit".into(),
            target_type: "owner".into(),
            target_id: Uuid::nil().to_string(),
            before: Some(json!({"username": "j.devries", "email": "j@x.nl", "role": "temp"})),
            after: Some(json!({"username": "j.devries", "email": "j@x.nl", "role": "staff"})),
            subject: Some(Uuid::nil()),
            target_name: Some("j.devries".into()),
        }
    }

    #[test]
    fn personal_fields_leave_the_public_row() {
        let s = seal(&entry());
        assert_eq!(s.before, Some(json!({"role": "temp"})));
        assert_eq!(s.after, Some(json!({"role": "staff"})));
        let p = s.personal.clone().unwrap();
        assert_eq!(p.target.as_deref(), Some("j.devries"));
        assert_eq!(
            p.before,
            Some(json!({"username": "j.devries", "email": "j@x.nl"}))
        );
        assert_eq!(s.digest.as_deref(), Some(digest(&p).as_str()));
        let text = format!("{:?} {:?} {}", s.before, s.after, s.target_id);
        assert!(!text.contains("j.devries") && !text.contains("j@x.nl"));
        assert_eq!(merge(s.before, p.before), entry().before, "read back whole");
    }

    #[test]
    fn the_chain_breaks_where_a_row_changed_and_not_where_a_part_was_erased() {
        let rows: Vec<ChainRow> = (1..=3)
            .scan(GENESIS.to_string(), |prev, id| {
                let s = seal(&entry());
                let chain = link_sealed(prev, &s);
                *prev = chain.clone();
                Some(ChainRow {
                    id,
                    at: s.at,
                    actor: s.actor,
                    action: s.action,
                    target_type: s.target_type,
                    target_id: s.target_id,
                    before: s.before,
                    after: s.after,
                    digest: s.digest,
                    chain: Some(chain),
                })
            })
            .collect();
        let mut v = Verification::default();
        let last = verify_rows(GENESIS, &rows, &mut v);
        assert_eq!((v.verified, v.broken_at), (3, None));
        assert_eq!(Some(last), rows[2].chain);
        let mut tampered = rows.clone();
        tampered[1].after = Some(json!({"role": "intern"}));
        let mut v = Verification::default();
        verify_rows(GENESIS, &tampered, &mut v);
        assert_eq!(v.broken_at, Some(2));
        // keys in another order (as a database gives them back) are the same row
        let mut reordered = rows.clone();
        reordered[0].after = Some(serde_json::from_str(r#"{"role":"staff"}"#).unwrap());
        let mut v = Verification::default();
        verify_rows(GENESIS, &reordered, &mut v);
        assert_eq!(v.broken_at, None);
    }
}
