//! Decoding registry rows into the model, once for both backends: the column names and Rust
//! types are the same in PostgreSQL and SQLite (uuid, timestamptz/TEXT, date/TEXT, ...).

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use crate::mac::MacAddr;
use crate::model::{AuditEntry, Device, Owner};

use super::store::{DeviceCertificate, WithdrawnCertificate};
use super::StoreError;

/// Columns of `owners`, in the order the backends select them.
pub const OWNER_COLUMNS: &str = "o.id, o.username, o.display_name, o.email, o.role, o.department, \
     o.valid_from, o.valid_until, o.disabled, o.created_at, o.updated_at, o.source, \
     o.external_id, o.disabled_reason, o.disabled_at, o.disabled_by_source, o.erased_at";

/// Columns of a device row joined with its owner's username and one of its MACs (as text).
pub const DEVICE_COLUMNS: &str = "d.id, d.owner_id, o.username AS owner, d.label, d.kind, \
     d.status, d.status_reason, d.status_changed_at, d.compliance, d.compliance_checked_at, \
     d.compliance_note, d.cert_fingerprint, d.cert_serial, d.created_by, d.created_at, \
     d.updated_at, d.last_seen_at, d.last_seen_nas, d.last_seen_ssid";

fn word<T: FromStr<Err = String>>(column: &str, s: String) -> Result<T, StoreError> {
    s.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("column {column}: {e}")))
}

/// Decodes an owner from [`OWNER_COLUMNS`].
pub fn owner<'r, R>(row: &'r R) -> Result<Owner, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    NaiveDate: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Owner {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        email: row.try_get("email")?,
        role: word("role", row.try_get("role")?)?,
        department: row.try_get("department")?,
        valid_from: row.try_get("valid_from")?,
        valid_until: row.try_get("valid_until")?,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        source: word("source", row.try_get("source")?)?,
        external_id: row.try_get("external_id")?,
        disabled_reason: row.try_get("disabled_reason")?,
        disabled_at: row.try_get("disabled_at")?,
        disabled_by_source: row
            .try_get::<Option<String>, _>("disabled_by_source")?
            .map(|s| word("disabled_by_source", s))
            .transpose()?,
        erased_at: row.try_get("erased_at")?,
    })
}

/// Decodes devices from rows of [`DEVICE_COLUMNS`] plus a `mac` text column, one row per MAC,
/// ordered so that a device's rows are adjacent.
pub fn devices<'r, R>(rows: &'r [R]) -> Result<Vec<Device>, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut out: Vec<Device> = Vec::new();
    for row in rows {
        let id: Uuid = row.try_get("id")?;
        let mac: Option<String> = row.try_get("mac")?;
        let mac = mac
            .map(|m| {
                MacAddr::parse_any(&m).map_err(|e| StoreError::Corrupt(format!("column mac: {e}")))
            })
            .transpose()?;
        if let Some(last) = out.last_mut().filter(|d| d.id == id) {
            last.macs.extend(mac);
            continue;
        }
        out.push(Device {
            id,
            owner_id: row.try_get("owner_id")?,
            owner: row.try_get("owner")?,
            label: row.try_get("label")?,
            kind: word("kind", row.try_get("kind")?)?,
            macs: mac.into_iter().collect(),
            status: word("status", row.try_get("status")?)?,
            status_reason: row.try_get("status_reason")?,
            status_changed_at: row.try_get("status_changed_at")?,
            compliance: word("compliance", row.try_get("compliance")?)?,
            compliance_checked_at: row.try_get("compliance_checked_at")?,
            compliance_note: row.try_get("compliance_note")?,
            cert_fingerprint: row.try_get("cert_fingerprint")?,
            cert_serial: row.try_get("cert_serial")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            last_seen_at: row.try_get("last_seen_at")?,
            last_seen_nas: row.try_get("last_seen_nas")?,
            last_seen_ssid: row.try_get("last_seen_ssid")?,
        });
    }
    Ok(out)
}

/// Decodes a certificate (`serial, fingerprint, device_id, not_before, not_after, issued_at,
/// issued_by, superseded_at`).
pub fn certificate<'r, R>(row: &'r R) -> Result<DeviceCertificate, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(DeviceCertificate {
        serial: row.try_get("serial")?,
        fingerprint: row.try_get("fingerprint")?,
        device_id: row.try_get("device_id")?,
        not_before: row.try_get("not_before")?,
        not_after: row.try_get("not_after")?,
        issued_at: row.try_get("issued_at")?,
        issued_by: row.try_get("issued_by")?,
        superseded_at: row.try_get("superseded_at")?,
    })
}

/// Decodes a certificate with its device's `device_status` and `status_changed_at`.
pub fn withdrawn_certificate<'r, R>(row: &'r R) -> Result<WithdrawnCertificate, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(WithdrawnCertificate {
        certificate: certificate(row)?,
        device_status: word("device_status", row.try_get("device_status")?)?,
        status_changed_at: row.try_get("status_changed_at")?,
    })
}

/// An audit entry with its personal part, for a `WHERE` on `a` and an `ORDER BY` to follow.
pub const AUDIT_SELECT: &str = "SELECT a.id, a.at, a.actor, a.action, a.target_type, \
     a.target_id, a.before, a.after, a.personal_digest, a.chain, p.target AS p_target, \
     p.before AS p_before, p.after AS p_after \
     FROM audit_log a LEFT JOIN audit_personal p ON p.audit_id = a.id";

/// Decodes an audit entry from [`AUDIT_SELECT`]: the public row with its personal part
/// merged back (an owner named by username again), or marked erased.
pub fn audit_entry<'r, R>(row: &'r R) -> Result<AuditEntry, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    Json<serde_json::Value>: Decode<'r, R::Database> + Type<R::Database>,
{
    let public = audit_chain_row(row)?;
    let p_target: Option<String> = row.try_get("p_target")?;
    let p_before: Option<Json<serde_json::Value>> = row.try_get("p_before")?;
    let p_after: Option<Json<serde_json::Value>> = row.try_get("p_after")?;
    let erased =
        public.digest.is_some() && p_target.is_none() && p_before.is_none() && p_after.is_none();
    Ok(AuditEntry {
        id: public.id,
        at: public.at,
        actor: public.actor,
        action: public.action,
        target_type: public.target_type,
        target_id: p_target.unwrap_or(public.target_id),
        before: super::audit::merge(public.before, p_before.map(|j| j.0)),
        after: super::audit::merge(public.after, p_after.map(|j| j.0)),
        erased,
    })
}

/// Decodes the public columns of an audit row, as the chain covers them.
pub fn audit_chain_row<'r, R>(row: &'r R) -> Result<super::audit::ChainRow, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    Json<serde_json::Value>: Decode<'r, R::Database> + Type<R::Database>,
{
    let before: Option<Json<serde_json::Value>> = row.try_get("before")?;
    let after: Option<Json<serde_json::Value>> = row.try_get("after")?;
    Ok(super::audit::ChainRow {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target_type: row.try_get("target_type")?,
        target_id: row.try_get("target_id")?,
        before: before.map(|j| j.0),
        after: after.map(|j| j.0),
        digest: row.try_get("personal_digest")?,
        chain: row.try_get("chain")?,
    })
}

fn opt_mac(column: &str, s: Option<String>) -> Result<Option<MacAddr>, StoreError> {
    s.map(|m| {
        MacAddr::parse_any(&m).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
    })
    .transpose()
}

/// Columns of `decision_aggregates`.
pub const AGGREGATE_COLUMNS: &str =
    "id, minute, nas, ap, method, outcome, reason, count, macs, message";

/// Decodes a minute's count of unknown-device decisions from [`AGGREGATE_COLUMNS`].
pub fn aggregate<'r, R>(row: &'r R) -> Result<crate::activity::DecisionAggregate, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    let count: i64 = row.try_get("count")?;
    let macs: String = row.try_get("macs")?;
    let macs = macs
        .split(',')
        .filter(|m| !m.is_empty())
        .map(|m| {
            MacAddr::parse_any(m).map_err(|e| StoreError::Corrupt(format!("column macs: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(crate::activity::DecisionAggregate {
        id: row.try_get("id")?,
        minute: row.try_get("minute")?,
        nas: row.try_get("nas")?,
        ap: row.try_get("ap")?,
        method: row.try_get("method")?,
        outcome: row.try_get("outcome")?,
        reason: row.try_get("reason")?,
        count: u64::try_from(count).unwrap_or(0),
        macs,
        message: row.try_get("message")?,
    })
}

/// Columns of `decisions`.
pub const DECISION_COLUMNS: &str = "id, at, nas, nas_ip, username, mac, ssid, method, \
     device_id, owner, outcome, vlan, reason, message, repeats, degraded";

/// Decodes a decision from [`DECISION_COLUMNS`].
pub fn decision<'r, R>(row: &'r R) -> Result<crate::activity::DecisionRecord, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    let vlan: Option<i32> = row.try_get("vlan")?;
    let repeats: i32 = row.try_get("repeats")?;
    Ok(crate::activity::DecisionRecord {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        nas: row.try_get("nas")?,
        nas_ip: row.try_get("nas_ip")?,
        username: row.try_get("username")?,
        mac: opt_mac("mac", row.try_get("mac")?)?,
        ssid: row.try_get("ssid")?,
        method: row.try_get("method")?,
        device_id: row.try_get("device_id")?,
        owner: row.try_get("owner")?,
        outcome: row.try_get("outcome")?,
        vlan: vlan.and_then(|v| u16::try_from(v).ok()),
        reason: row.try_get("reason")?,
        message: row.try_get("message")?,
        repeats: u32::try_from(repeats).unwrap_or(0),
        degraded: row.try_get("degraded")?,
    })
}

/// Columns of `sessions`.
pub const SESSION_COLUMNS: &str =
    "id, nas, nas_key, acct_session_id, nas_ip, nas_port, username, mac, \
     ssid, device_id, owner, framed_ip, class, started_at, updated_at, stopped_at, session_time, \
     input_octets, output_octets, input_packets, output_packets, terminate_cause, \
     raw_calling_station_id, raw_nas_identifier, raw_nas_ip_address, raw_nas_ipv6_address, \
     source_ip";

/// Decodes a session from [`SESSION_COLUMNS`].
pub fn session<'r, R>(row: &'r R) -> Result<crate::activity::Session, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(crate::activity::Session {
        id: row.try_get("id")?,
        nas: row.try_get("nas")?,
        nas_key: row.try_get("nas_key")?,
        acct_session_id: row.try_get("acct_session_id")?,
        nas_ip: row.try_get("nas_ip")?,
        nas_port: row.try_get("nas_port")?,
        username: row.try_get("username")?,
        mac: opt_mac("mac", row.try_get("mac")?)?,
        ssid: row.try_get("ssid")?,
        device_id: row.try_get("device_id")?,
        owner: row.try_get("owner")?,
        framed_ip: row.try_get("framed_ip")?,
        class: row.try_get("class")?,
        started_at: row.try_get("started_at")?,
        updated_at: row.try_get("updated_at")?,
        stopped_at: row.try_get("stopped_at")?,
        session_time: row.try_get("session_time")?,
        input_octets: row.try_get("input_octets")?,
        output_octets: row.try_get("output_octets")?,
        input_packets: row.try_get("input_packets")?,
        output_packets: row.try_get("output_packets")?,
        terminate_cause: row.try_get("terminate_cause")?,
        raw: crate::activity::NasIdentity {
            calling_station_id: row.try_get("raw_calling_station_id")?,
            nas_identifier: row.try_get("raw_nas_identifier")?,
            nas_ip_address: row.try_get("raw_nas_ip_address")?,
            nas_ipv6_address: row.try_get("raw_nas_ipv6_address")?,
            source_ip: row.try_get("source_ip")?,
        },
    })
}
