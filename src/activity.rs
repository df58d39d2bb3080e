//! What the RADIUS server records: access decisions (for `why` and the helpdesk) and
//! accounting sessions (RFC 2866), as stored rows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::mac::MacAddr;

/// One access decision, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord {
    /// Row id (0 before it is stored).
    pub id: i64,
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// The client (access point or controller) by its configured name.
    pub nas: String,
    /// NAS-IP-Address, else the source address.
    pub nas_ip: Option<String>,
    /// User-Name as sent.
    pub username: String,
    /// The device MAC (Calling-Station-Id, else User-Name).
    pub mac: Option<MacAddr>,
    /// SSID from Called-Station-Id.
    pub ssid: Option<String>,
    /// `mab` or `eap-tls`.
    pub method: String,
    /// The registered device, if found.
    pub device_id: Option<Uuid>,
    /// Its owner's username.
    pub owner: Option<String>,
    /// `accept` or `reject`.
    pub outcome: String,
    /// VLAN handed out.
    pub vlan: Option<u16>,
    /// Stable reason code (see `policy::Reason`).
    pub reason: String,
    /// The reason in plain words.
    pub message: String,
    /// Identical decisions (same MAC, client, outcome, reason, VLAN) folded into this row:
    /// they happened within `log.decision_coalesce` before it.
    pub repeats: u32,
    /// Taken while the registry database was unreachable, on last-known-good data.
    pub degraded: bool,
}

/// Decisions about requests that named no registered device (unknown MACs, registration
/// answers, refused handshakes), counted per client, access point, method, outcome, reason and
/// minute instead of stored one row each: a flood of never-seen MACs grows the log by a
/// bounded number of rows per minute, and `why` still finds a refused MAC in the sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionAggregate {
    /// Row id (0 before it is stored).
    pub id: i64,
    /// The start of the minute counted.
    pub minute: DateTime<Utc>,
    /// The client by its configured name.
    pub nas: String,
    /// The access point: NAS-IP-Address, else the source address; [`AGGREGATE_OTHER_AP`]
    /// for the overflow once too many access points were counted at once.
    pub ap: String,
    /// `mab` or `eap-tls`.
    pub method: String,
    /// `accept` (registration VLAN) or `reject`.
    pub outcome: String,
    /// Stable reason code (see `policy::Reason`).
    pub reason: String,
    /// Requests counted in that minute.
    pub count: u64,
    /// The first distinct MACs counted, at most [`AGGREGATE_SAMPLE`].
    pub macs: Vec<MacAddr>,
    /// The first decision's message, as an example.
    pub message: String,
}

/// Distinct MACs kept per aggregate row: enough for `why` about a refused device outside a
/// flood, a fixed cost per row in one.
pub const AGGREGATE_SAMPLE: usize = 32;

/// The access point of the aggregate row that takes what no longer fits in its own row.
pub const AGGREGATE_OTHER_AP: &str = "other";

/// Which decisions to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    /// Decisions about this MAC.
    pub mac: Option<MacAddr>,
    /// Decisions about devices of this owner (username, any case).
    pub username: Option<String>,
    /// At most this many (default 20).
    pub limit: Option<u32>,
}

/// Which refusals to list: the latest, optionally of one client (access point), SSID or
/// reason, and not before `since`.
#[derive(Debug, Clone, Default)]
pub struct RefusalFilter {
    /// The client (access point or controller) by its configured name.
    pub nas: Option<String>,
    /// The SSID.
    pub ssid: Option<String>,
    /// The reason code.
    pub reason: Option<String>,
    /// Not before this.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

/// What an Accounting-Request reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcctKind {
    /// Session started.
    Start,
    /// Periodic counters.
    InterimUpdate,
    /// Session ended.
    Stop,
}

/// A session update from one Accounting-Request (serialized as it waits in the accounting
/// spool, `server::spool`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountingUpdate {
    /// Start, Interim-Update or Stop.
    pub kind: AcctKind,
    /// When the event happened (receipt time minus Acct-Delay-Time).
    pub at: DateTime<Utc>,
    /// Client name.
    pub nas: String,
    /// The access point within the client: NAS-Identifier, else NAS-IP-Address, else the
    /// source address.
    pub nas_key: String,
    /// Acct-Session-Id.
    pub acct_session_id: String,
    /// NAS-IP-Address, else the source address.
    pub nas_ip: Option<String>,
    /// NAS-Port.
    pub nas_port: Option<i64>,
    /// User-Name.
    pub username: Option<String>,
    /// Calling-Station-Id as a MAC.
    pub mac: Option<MacAddr>,
    /// SSID from Called-Station-Id.
    pub ssid: Option<String>,
    /// Device, from the Class we handed out or the MAC.
    pub device_id: Option<Uuid>,
    /// Owner's username.
    pub owner: Option<String>,
    /// Framed-IP-Address.
    pub framed_ip: Option<String>,
    /// Class as echoed.
    pub class: Option<String>,
    /// Acct-Session-Time, seconds.
    pub session_time: i64,
    /// Octets from the device (with Acct-Input-Gigawords).
    pub input_octets: i64,
    /// Octets to the device (with Acct-Output-Gigawords).
    pub output_octets: i64,
    /// Packets from the device.
    pub input_packets: i64,
    /// Packets to the device.
    pub output_packets: i64,
    /// Acct-Terminate-Cause by name, on Stop.
    pub terminate_cause: Option<String>,
    /// How the NAS named itself and the device, as sent.
    pub raw: NasIdentity,
}

/// How a NAS identified itself and the device in accounting, exactly as sent (`None` where it
/// sent no such attribute), and where its packets came from: what a Disconnect/CoA-Request
/// must repeat (RFC 5176 §3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NasIdentity {
    /// Calling-Station-Id as sent.
    pub calling_station_id: Option<String>,
    /// NAS-Identifier as sent.
    pub nas_identifier: Option<String>,
    /// NAS-IP-Address as sent.
    pub nas_ip_address: Option<String>,
    /// NAS-IPv6-Address as sent.
    pub nas_ipv6_address: Option<String>,
    /// The source address of the accounting packets (`None` for rows stored before it was).
    pub source_ip: Option<String>,
}

/// An accounting session, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    /// Row id.
    pub id: i64,
    /// Client name.
    pub nas: String,
    /// The access point within the client.
    pub nas_key: String,
    /// Acct-Session-Id.
    pub acct_session_id: String,
    /// NAS-IP-Address.
    pub nas_ip: Option<String>,
    /// NAS-Port.
    pub nas_port: Option<i64>,
    /// User-Name.
    pub username: Option<String>,
    /// Device MAC.
    pub mac: Option<MacAddr>,
    /// SSID.
    pub ssid: Option<String>,
    /// Device.
    pub device_id: Option<Uuid>,
    /// Owner.
    pub owner: Option<String>,
    /// Framed-IP-Address.
    pub framed_ip: Option<String>,
    /// Class.
    pub class: Option<String>,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
    /// End, if it ended.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Seconds.
    pub session_time: i64,
    /// Octets from the device.
    pub input_octets: i64,
    /// Octets to the device.
    pub output_octets: i64,
    /// Packets from the device.
    pub input_packets: i64,
    /// Packets to the device.
    pub output_packets: i64,
    /// Why it ended.
    pub terminate_cause: Option<String>,
    /// How the NAS named itself and the device, as sent.
    #[serde(flatten)]
    pub raw: NasIdentity,
}

/// Which sessions to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// Only sessions that have not stopped.
    pub active_only: bool,
    /// Only this MAC.
    pub mac: Option<MacAddr>,
    /// At most this many (default 50).
    pub limit: Option<u32>,
}

/// A device was seen: the server batches these into `last_seen_*`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    /// Device.
    pub device_id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// Client name.
    pub nas: String,
    /// SSID.
    pub ssid: Option<String>,
    /// The Calling-Station-Id it came from.
    pub mac: Option<MacAddr>,
}
