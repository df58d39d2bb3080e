//! The configuration: one TOML file, typed with serde (unknown keys refused), overridable from
//! the environment as `POORTWACHTER_<SECTION>__<KEY>`, validated once at start with errors that
//! name the key.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Deserializer};

pub mod directory;
pub mod ops;
pub mod secrets;
pub mod tls;
pub mod web;

use crate::model::Role;
use crate::secret::Secret;

/// Prefix of environment overrides: `POORTWACHTER_DATABASE__URL` sets `database.url`.
pub const ENV_PREFIX: &str = "POORTWACHTER_";
/// Shared secrets shorter than this are refused (RFC 2865 §3 asks for at least 16 octets).
pub const MIN_SECRET_LEN: usize = 16;

/// Everything `poortwachter` reads from its config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the device registry lives.
    pub database: DatabaseConfig,
    /// RADIUS listeners and the access points (NAS clients) allowed to use them.
    #[serde(default)]
    pub radius: RadiusConfig,
    /// The VLANs handed out.
    pub vlans: VlanConfig,
    /// Which VLAN each owner role lands in.
    #[serde(default)]
    pub roles: RoleVlans,
    /// Registry and decision rules.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// The RADIUS hot path's registry cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The onboarding CA that issues device certificates.
    #[serde(default)]
    pub pki: tls::PkiConfig,
    /// 802.1X EAP (EAP-TLS) on the authentication port.
    #[serde(default)]
    pub eap: tls::EapConfig,
    /// What the Wi-Fi profiles handed to device owners configure.
    #[serde(default)]
    pub wifi: tls::WifiConfig,
    /// The admin HTTP API.
    #[serde(default)]
    pub api: ops::ApiConfig,
    /// The service-desk console and the employees' portal.
    #[serde(default)]
    pub web: web::WebConfig,
    /// Locations (access points per floor or building) for the console's occupancy.
    #[serde(default)]
    pub occupancy: crate::occupancy::OccupancyConfig,
    /// What a compliance posture report must show.
    #[serde(default)]
    pub compliance: ops::ComplianceConfig,
    /// Disconnecting devices whose state changed (RFC 5176).
    #[serde(default)]
    pub coa: ops::CoaConfig,
    /// This node's own files: the last-known-good snapshot and the accounting spool.
    #[serde(default)]
    pub node: NodeConfig,
    /// Owners pulled from the directory over LDAP (`owner sync`, and on a schedule in `serve`).
    #[serde(default)]
    pub directory: Option<directory::DirectoryConfig>,
    /// How long personal data is kept (the AVG).
    #[serde(default)]
    pub privacy: PrivacyConfig,
}

/// `[privacy]`: how long what the network records about people is kept, and when a person
/// who left is erased. Decisions, posture reports and Disconnect/CoA records are kept for
/// `log.decision_retention`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Accounting sessions are deleted this long after they ended.
    #[serde(default = "default_session_retention")]
    pub session_retention: HumanDuration,
    /// A person who left (disabled, or the contract ended) is erased this long after.
    #[serde(default = "default_erase_after")]
    pub erase_after: HumanDuration,
    /// Erase automatically (`serve`, hourly); `false`: only `owner erase` does.
    #[serde(default = "default_true")]
    pub erase: bool,
}

fn default_session_retention() -> HumanDuration {
    HumanDuration(Duration::from_secs(180 * 86_400))
}

fn default_erase_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(90 * 86_400))
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            session_retention: default_session_retention(),
            erase_after: default_erase_after(),
            erase: true,
        }
    }
}

impl PrivacyConfig {
    /// The registry's retention rules.
    pub fn retention(&self) -> crate::registry::privacy::Retention {
        crate::registry::privacy::Retention {
            sessions: self.session_retention.chrono(),
            erase_after: self.erase.then(|| self.erase_after.chrono()),
        }
    }
}

/// `[node]`: what one poortwachter node keeps on its own disk, so that it answers while the
/// shared database is away.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The state directory (created 0700): `snapshot.json` (the last-known-good registry)
    /// and `accounting.spool` (accounting waiting for the database).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// How often the snapshot is written (also at shutdown).
    #[serde(default = "default_snapshot_interval")]
    pub snapshot_interval: HumanDuration,
    /// The accounting spool's size bound in MiB: past it, accounting is no longer
    /// acknowledged (the access points keep it and retransmit) until the database returns.
    #[serde(default = "default_spool_max_mib")]
    pub spool_max_mib: u64,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("var/state")
}
fn default_snapshot_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_spool_max_mib() -> u64 {
    256
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            state_dir: default_state_dir(),
            snapshot_interval: default_snapshot_interval(),
            spool_max_mib: default_spool_max_mib(),
        }
    }
}

/// `[database]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite:PATH` (embedded) or `postgres://...`.
    pub url: String,
    /// Connection pool size.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Whether `serve` applies pending migrations at start. Off when it runs as a runtime
    /// role that may not change the schema (`deploy/postgres-setup.sql`): it then checks the
    /// schema and refuses an older one.
    #[serde(default = "default_true")]
    pub migrate_on_start: bool,
    /// The PostgreSQL password, kept out of the URL (best from the environment:
    /// `POORTWACHTER_DATABASE__PASSWORD`); any characters, percent-encoded by us.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file whose content (one line) is the PostgreSQL password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

fn default_max_connections() -> u32 {
    8
}

fn default_true() -> bool {
    true
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("password", &self.password)
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// `url` with `password` added as its `password=` parameter, percent-encoded (the driver
/// decodes it), so that a password may hold any character. Refuses a URL that names a
/// password already, and an SQLite URL.
pub fn url_with_password(url: &str, password: &str) -> Result<String, String> {
    if !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
        return Err("only a PostgreSQL database.url takes a password".into());
    }
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let userinfo_password = match (main.find("://"), main.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => main[scheme_end + 3..at].contains(':'),
        _ => false,
    };
    let query_password = query.is_some_and(|q| {
        q.split('&').any(|kv| {
            kv.split_once('=')
                .map_or(kv, |(k, _)| k)
                .eq_ignore_ascii_case("password")
        })
    });
    if userinfo_password || query_password {
        return Err("database.url has a password already; give it in one place".into());
    }
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    let mut encoded = String::with_capacity(password.len() * 3);
    for b in password.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let sep = match query {
        Some(q) if !q.is_empty() => "&",
        Some(_) => "",
        None => "?",
    };
    Ok(format!("{url}{sep}password={encoded}"))
}

/// A database URL fit to print: the password in the user part or in a `password=` /
/// `sslpassword=` query parameter replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let mut out = match (main.find("://"), main.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &main[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:***{}", &main[..scheme_end + 3], &main[at..])
                }
                None => main.to_string(),
            }
        }
        _ => main.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _))
                    if k.eq_ignore_ascii_case("password")
                        || k.eq_ignore_ascii_case("sslpassword") =>
                {
                    format!("{k}=***")
                }
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// `[radius]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusConfig {
    /// Authentication listener (RFC 2865).
    #[serde(default = "default_auth_listen")]
    pub auth_listen: SocketAddr,
    /// Accounting listener (RFC 2866).
    #[serde(default = "default_acct_listen")]
    pub acct_listen: SocketAddr,
    /// Drop Access-Requests without a valid Message-Authenticator (BlastRADIUS, CVE-2024-3596).
    #[serde(default = "yes")]
    pub require_message_authenticator: bool,
    /// Answer MAC authentication (MAB) requests; per client overridable.
    #[serde(default = "yes")]
    pub mab: bool,
    /// MAB only with a Calling-Station-Id that is a MAC address (RFC 3580 §3.21): the
    /// access point's own word for the device, not just the User-Name it relays; per client
    /// overridable (some switches send none).
    #[serde(default = "yes")]
    pub mab_require_calling_station_id: bool,
    /// How long a reply is kept to answer a retransmission of its request (RFC 5080 §2.2.2).
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window: HumanDuration,
    /// The access points and switches allowed to talk to us.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
}

impl Default for RadiusConfig {
    fn default() -> Self {
        RadiusConfig {
            auth_listen: default_auth_listen(),
            acct_listen: default_acct_listen(),
            require_message_authenticator: true,
            mab: true,
            mab_require_calling_station_id: true,
            duplicate_window: default_duplicate_window(),
            clients: Vec::new(),
        }
    }
}

fn default_duplicate_window() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

/// A duration written as `30d`, `8h`, `15m`, `5s` or `250ms` (a bare number is seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `30d`, `8h`, `15m`, `5s`, `250ms` or a number of seconds.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration such as 30d, 8h, 15m, 5s or 250ms"))?;
        let secs = |k: u64| n.checked_mul(k).map(Duration::from_secs);
        let d = match unit.trim() {
            "" | "s" => secs(1),
            "ms" => Some(Duration::from_millis(n)),
            "m" => secs(60),
            "h" => secs(3600),
            "d" => secs(86_400),
            _ => None,
        };
        d.map(HumanDuration)
            .ok_or_else(|| format!("`{s}` is not a duration such as 30d, 8h, 15m, 5s or 250ms"))
    }

    /// As a chrono duration (saturating).
    pub fn chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let s = self.0.as_secs();
        if ms % 1000 != 0 {
            write!(f, "{ms}ms")
        } else if s != 0 && s % 86_400 == 0 {
            write!(f, "{}d", s / 86_400)
        } else if s != 0 && s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s != 0 && s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(HumanDuration(Duration::from_secs(n))),
            Raw::Text(t) => HumanDuration::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

fn default_auth_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 1812))
}
fn default_acct_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 1813))
}
fn yes() -> bool {
    true
}

/// `[[radius.clients]]`: one NAS or a range of them sharing a secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// A name for logs and decisions.
    pub name: String,
    /// Source addresses this client sends from.
    #[serde(deserialize_with = "de_network")]
    pub network: IpNetwork,
    /// The RADIUS shared secret: given here, read from `secret_file`, or taken from the
    /// environment variable `POORTWACHTER_CLIENT_SECRET_<NAME>` (which wins); see
    /// [`secrets`]. Resolved when the config is loaded (and at every reload).
    #[serde(default)]
    pub secret: Secret,
    /// A file holding the shared secret (one line; a trailing newline is dropped). It must
    /// not be readable by others (mode `0640` or stricter).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// A second secret accepted next to `secret` during a rotation: a request that verifies
    /// with either is answered, signed with the one it verified with.
    #[serde(default)]
    pub secret_next: Option<Secret>,
    /// A file holding `secret_next`.
    #[serde(default)]
    pub secret_next_file: Option<PathBuf>,
    /// Where the NAS listens for Disconnect/CoA requests (RFC 5176).
    #[serde(default = "default_coa_port")]
    pub coa_port: u16,
    /// What to send this client's NASes when a connected device must lose its access:
    /// `disconnect` (Disconnect-Request, default) or `coa` (CoA-Request with the new VLAN).
    #[serde(default)]
    pub coa_action: ops::CoaAction,
    /// Overrides `radius.require_message_authenticator` for this client.
    #[serde(default)]
    pub require_message_authenticator: Option<bool>,
    /// Overrides `radius.mab` for this client.
    #[serde(default)]
    pub mab: Option<bool>,
    /// Overrides `radius.mab_require_calling_station_id` for this client.
    #[serde(default)]
    pub mab_require_calling_station_id: Option<bool>,
}

fn default_coa_port() -> u16 {
    3799
}

/// An IEEE 802.1Q VLAN id, 1 to 4094.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VlanId(u16);

impl VlanId {
    /// Checks the range.
    pub fn new(id: u16) -> Option<Self> {
        (1..=4094).contains(&id).then_some(VlanId(id))
    }
    /// The number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for VlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for VlanId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        u16::try_from(n)
            .ok()
            .and_then(VlanId::new)
            .ok_or_else(|| serde::de::Error::custom(format!("VLAN {n} is outside 1-4094")))
    }
}

/// `[vlans]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlanConfig {
    /// Where compliant staff devices reach the virtual workspace.
    pub workspace: VlanId,
    /// The isolated VLAN for temps, interns and contractors.
    pub guest: VlanId,
    /// Where non-compliant devices wait.
    pub quarantine: VlanId,
    /// Optional VLAN for unknown devices (a registration portal); unset means reject.
    #[serde(default)]
    pub registration: Option<VlanId>,
}

/// A VLAN named in `[vlans]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VlanName {
    /// `vlans.workspace`
    Workspace,
    /// `vlans.guest`
    Guest,
    /// `vlans.quarantine`
    Quarantine,
    /// `vlans.registration`
    Registration,
}

impl fmt::Display for VlanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VlanName::Workspace => "workspace",
            VlanName::Guest => "guest",
            VlanName::Quarantine => "quarantine",
            VlanName::Registration => "registration",
        })
    }
}

impl VlanConfig {
    /// The id behind a name, if that VLAN is configured.
    pub fn get(&self, name: VlanName) -> Option<VlanId> {
        match name {
            VlanName::Workspace => Some(self.workspace),
            VlanName::Guest => Some(self.guest),
            VlanName::Quarantine => Some(self.quarantine),
            VlanName::Registration => self.registration,
        }
    }
}

/// `[roles]`: which VLAN each owner role gets when its device is compliant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleVlans {
    /// Employees: the workspace.
    #[serde(default = "workspace")]
    pub staff: VlanName,
    /// Temps: guest isolation.
    #[serde(default = "guest")]
    pub temp: VlanName,
    /// Interns: guest isolation.
    #[serde(default = "guest")]
    pub intern: VlanName,
    /// Contractors: guest isolation.
    #[serde(default = "guest")]
    pub contractor: VlanName,
}

fn workspace() -> VlanName {
    VlanName::Workspace
}
fn guest() -> VlanName {
    VlanName::Guest
}

impl Default for RoleVlans {
    fn default() -> Self {
        RoleVlans {
            staff: VlanName::Workspace,
            temp: VlanName::Guest,
            intern: VlanName::Guest,
            contractor: VlanName::Guest,
        }
    }
}

impl RoleVlans {
    /// The VLAN name for a role.
    pub fn for_role(&self, role: Role) -> VlanName {
        match role {
            Role::Staff => self.staff,
            Role::Temp => self.temp,
            Role::Intern => self.intern,
            Role::Contractor => self.contractor,
        }
    }
}

/// `[policy]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Devices (not revoked) one owner may have registered.
    #[serde(default = "default_max_devices")]
    pub max_devices_per_owner: u32,
    /// The time zone that contract dates are in: a contract "until 2026-10-31" ends at
    /// midnight after that day, local time.
    #[serde(default = "default_timezone", deserialize_with = "de_timezone")]
    pub timezone: chrono_tz::Tz,
    /// A compliance check older than this counts as stale: quarantine.
    #[serde(default = "default_compliance_max_age")]
    pub compliance_max_age: HumanDuration,
    /// Longest Session-Timeout handed out; always cut to the owner's contract end.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: HumanDuration,
    /// Unknown devices: `reject`, or `registration` (the registration VLAN).
    #[serde(default = "default_unknown_device")]
    pub unknown_device: crate::policy::UnknownDevice,
    /// Noncompliant, unknown-compliance and stale devices: `quarantine` or `reject`.
    #[serde(default = "default_not_compliant")]
    pub not_compliant: crate::policy::NotCompliant,
    /// Serve only these SSIDs (from Called-Station-Id); empty serves any.
    #[serde(default)]
    pub ssids: Vec<String>,
}

fn default_compliance_max_age() -> HumanDuration {
    HumanDuration(Duration::from_secs(30 * 86_400))
}
fn default_session_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(8 * 3600))
}
fn default_unknown_device() -> crate::policy::UnknownDevice {
    crate::policy::UnknownDevice::Reject
}
fn default_not_compliant() -> crate::policy::NotCompliant {
    crate::policy::NotCompliant::Quarantine
}

/// `[cache]`: the in-memory copy of registry entries that the RADIUS hot path reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Keep looked-up devices and owners in memory.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How often to check the registry for changes made by other processes, where the
    /// database cannot notify (SQLite). PostgreSQL notifies at commit.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// While the database is unreachable, a device is decided on the last data read for it
    /// (or the node's snapshot) if that is at most this old; the decision is marked degraded.
    /// `0s` turns degraded answers off.
    #[serde(default = "default_stale_grace")]
    pub stale_grace: HumanDuration,
    /// While the database is unreachable, a device this node has no data for: `unknown`
    /// answers as for an unregistered device (`policy.unknown_device`), `no_answer` stays
    /// silent so that the access point asks its other RADIUS server.
    #[serde(default)]
    pub unseen_while_degraded: UnseenWhileDegraded,
}

/// `cache.unseen_while_degraded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnseenWhileDegraded {
    /// As an unregistered device (`policy.unknown_device`): refused or the registration VLAN.
    #[default]
    Unknown,
    /// No answer: the access point retransmits and then asks its other server.
    NoAnswer,
}

fn default_stale_grace() -> HumanDuration {
    HumanDuration(Duration::from_secs(4 * 3600))
}

fn default_poll_interval() -> HumanDuration {
    HumanDuration(Duration::from_millis(100))
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            poll_interval: default_poll_interval(),
            stale_grace: default_stale_grace(),
            unseen_while_degraded: UnseenWhileDegraded::default(),
        }
    }
}

fn default_max_devices() -> u32 {
    3
}
fn default_timezone() -> chrono_tz::Tz {
    chrono_tz::Europe::Amsterdam
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_devices_per_owner: default_max_devices(),
            timezone: default_timezone(),
            compliance_max_age: default_compliance_max_age(),
            session_timeout: default_session_timeout(),
            unknown_device: default_unknown_device(),
            not_compliant: default_not_compliant(),
            ssids: Vec::new(),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `poortwachter=debug`; `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `plain` (default), `json` (one object a line) or `journald` (priority prefixes, no
    /// timestamps): see [`crate::logging::LogFormat`].
    #[serde(default)]
    pub format: crate::logging::LogFormat,
    /// How long access decisions are kept for `why`.
    #[serde(default = "default_decision_retention")]
    pub decision_retention: HumanDuration,
    /// Identical decisions for the same MAC (same client, outcome, reason and VLAN) within
    /// this window are stored as one row with a repeat count; `0s` stores each.
    #[serde(default = "default_decision_coalesce")]
    pub decision_coalesce: HumanDuration,
}

fn default_decision_coalesce() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

fn default_decision_retention() -> HumanDuration {
    HumanDuration(Duration::from_secs(90 * 86_400))
}

fn default_log_level() -> String {
    "info".to_string()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
            format: crate::logging::LogFormat::default(),
            decision_retention: default_decision_retention(),
            decision_coalesce: default_decision_coalesce(),
        }
    }
}

fn de_network<'de, D: Deserializer<'de>>(d: D) -> Result<IpNetwork, D::Error> {
    let s = String::deserialize(d)?;
    parse_client_network(&s).map_err(serde::de::Error::custom)
}

/// Parses a client network in CIDR form (a bare address means a single host) and refuses
/// host bits, which usually mean a typo in the prefix.
pub fn parse_client_network(s: &str) -> Result<IpNetwork, String> {
    let net =
        IpNetwork::from_str(s.trim()).map_err(|e| format!("`{s}` is not a CIDR network ({e})"))?;
    if net.network() != net.ip() {
        return Err(format!(
            "`{s}` has host bits set; did you mean {}/{}?",
            net.network(),
            net.prefix()
        ));
    }
    Ok(net)
}

fn de_timezone<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let s = String::deserialize(d)?;
    chrono_tz::Tz::from_str(&s)
        .map_err(|_| serde::de::Error::custom(format!("`{s}` is not an IANA time zone name")))
}

/// One thing wrong with the configuration, at one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key, as `radius.clients[0].secret`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// An environment override that cannot be applied.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// One or more keys have wrong values.
    #[error("invalid configuration:\n{}", problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

impl Config {
    /// Reads `path`, applies `POORTWACHTER_*__*` overrides from the process environment, and
    /// validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_toml(&text, path, process_env()?)?;
        if let Some(file) = config.database.password_file.clone() {
            let invalid = |message: String| ConfigError::Invalid {
                problems: vec![Problem {
                    key: "database.password_file".into(),
                    message,
                }],
            };
            let text = std::fs::read_to_string(&file)
                .map_err(|e| invalid(format!("cannot read {}: {e}", file.display())))?;
            let password = text.strip_suffix('\n').unwrap_or(&text);
            let password = password.strip_suffix('\r').unwrap_or(password);
            config.database.url = url_with_password(&config.database.url, password)
                .map_err(|m| invalid(format!("{}: {m}", file.display())))?;
        }
        Ok(config)
    }

    /// Parses TOML text with the given environment; `origin` only names the source in errors.
    pub fn from_toml(
        text: &str,
        origin: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_path_buf(),
            message: syntax_message(text, &e),
        })?;
        let env: Vec<(String, String)> = env.into_iter().collect();
        apply_env_overrides(&mut table, env.iter().cloned())?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                // serde's messages quote the offending value: never for a secret
                let message = if key.ends_with("password") {
                    "must be a string".to_string()
                } else if key.ends_with("secret") || key.ends_with("secret_next") {
                    "must be a string of at least 16 characters".to_string()
                } else {
                    e.into_inner().to_string()
                };
                ConfigError::Invalid {
                    problems: vec![Problem { key, message }],
                }
            })?;
        let mut problems = secrets::resolve(&mut config.radius.clients, &env);
        problems.extend(config.problems());
        if let Some(password) = config.database.password.take() {
            match url_with_password(&config.database.url, password.expose()) {
                Ok(url) => config.database.url = url,
                Err(message) => problems.push(Problem {
                    key: "database.password".into(),
                    message,
                }),
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }

    /// Cross-field checks that serde cannot express.
    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut push = |key: String, message: String| problems.push(Problem { key, message });

        let url = self.database.url.trim();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            push(
                "database.url".into(),
                "must start with `sqlite:` or `postgres://`".into(),
            );
        }
        if self.database.password.is_some() && self.database.password_file.is_some() {
            push(
                "database.password_file".into(),
                "give database.password or database.password_file, not both".into(),
            );
        }
        if self.database.max_connections == 0 {
            push(
                "database.max_connections".into(),
                "must be at least 1".into(),
            );
        }

        let mut names = HashSet::new();
        let mut networks = HashSet::new();
        for (i, client) in self.radius.clients.iter().enumerate() {
            let at = |field: &str| format!("radius.clients[{i}].{field}");
            if client.name.trim().is_empty() {
                push(at("name"), "must not be empty".into());
            } else if !names.insert(client.name.clone()) {
                push(
                    at("name"),
                    format!("`{}` is used by another client", client.name),
                );
            }
            // an empty one is named by `secrets::resolve` (no source at all)
            if !client.secret.is_empty() && client.secret.len() < MIN_SECRET_LEN {
                push(
                    at("secret"),
                    format!(
                        "shared secret has {} characters; use at least {MIN_SECRET_LEN}",
                        client.secret.len()
                    ),
                );
            }
            if let Some(next) = &client.secret_next {
                if next.len() < MIN_SECRET_LEN {
                    push(
                        at("secret_next"),
                        format!(
                            "shared secret has {} characters; use at least {MIN_SECRET_LEN}",
                            next.len()
                        ),
                    );
                }
            }
            if !networks.insert(client.network) {
                push(
                    at("network"),
                    format!("{} is already given to another client", client.network),
                );
            }
            if client.coa_port == 0 {
                push(at("coa_port"), "must be a port number 1-65535".into());
            }
        }
        if self.policy.unknown_device == crate::policy::UnknownDevice::Registration
            && self.vlans.registration.is_none()
        {
            push(
                "policy.unknown_device".into(),
                "`registration` needs `vlans.registration`".into(),
            );
        }
        if self.policy.session_timeout.0 < Duration::from_secs(60) {
            push(
                "policy.session_timeout".into(),
                "must be at least 60s".into(),
            );
        }
        if self.policy.compliance_max_age.0 < Duration::from_secs(60)
            || self.policy.compliance_max_age.0 > Duration::from_secs(3650 * 86_400)
        {
            push(
                "policy.compliance_max_age".into(),
                "must be between 60s and 3650d".into(),
            );
        }
        if self.policy.session_timeout.0 > Duration::from_secs(7 * 86_400) {
            push(
                "policy.session_timeout".into(),
                "must be at most 7d (the NAS re-authenticates then)".into(),
            );
        }
        if self.log.decision_retention.0 > Duration::from_secs(3650 * 86_400) {
            push(
                "log.decision_retention".into(),
                "must be at most 3650d".into(),
            );
        }
        for (key, value) in [
            ("privacy.session_retention", self.privacy.session_retention),
            ("privacy.erase_after", self.privacy.erase_after),
        ] {
            if value.0 < Duration::from_secs(86_400) || value.0 > Duration::from_secs(3650 * 86_400)
            {
                push(key.into(), "must be between 1d and 3650d".into());
            }
        }
        if self.log.decision_coalesce.0 > Duration::from_secs(3600) {
            push("log.decision_coalesce".into(), "must be at most 1h".into());
        }
        if self.cache.poll_interval.0 < Duration::from_millis(10) {
            push("cache.poll_interval".into(), "must be at least 10ms".into());
        }
        if self.cache.stale_grace.0 > Duration::from_secs(7 * 86_400) {
            push("cache.stale_grace".into(), "must be at most 7d".into());
        }
        if self.node.snapshot_interval.0 < Duration::from_secs(10) {
            push(
                "node.snapshot_interval".into(),
                "must be at least 10s".into(),
            );
        }
        if self.node.spool_max_mib == 0 {
            push("node.spool_max_mib".into(), "must be at least 1".into());
        }
        if self.radius.duplicate_window.0 > Duration::from_secs(60) {
            push(
                "radius.duplicate_window".into(),
                "must be at most 60s".into(),
            );
        }
        for (i, ssid) in self.policy.ssids.iter().enumerate() {
            if ssid.is_empty() || ssid.len() > 32 {
                push(
                    format!("policy.ssids[{i}]"),
                    "an SSID has 1 to 32 bytes".into(),
                );
            }
        }

        tls::problems(self, &mut push);
        ops::problems(self, &mut push);
        web::problems(self, &mut push);
        directory::problems(self, &mut push);

        for (role, name) in [
            (Role::Staff, self.roles.staff),
            (Role::Temp, self.roles.temp),
            (Role::Intern, self.roles.intern),
            (Role::Contractor, self.roles.contractor),
        ] {
            if self.vlans.get(name).is_none() {
                push(
                    format!("roles.{role}"),
                    format!("role {role} has no VLAN: `vlans.{name}` is not set"),
                );
            }
        }
        problems
    }

    /// The client whose network holds `addr`, the most specific one if networks nest.
    pub fn client_for(&self, addr: std::net::IpAddr) -> Option<&ClientConfig> {
        let addr = match addr {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(std::net::IpAddr::V4)
                .unwrap_or(addr),
            v4 => v4,
        };
        self.radius
            .clients
            .iter()
            .filter(|c| c.network.contains(addr))
            .max_by_key(|c| c.network.prefix())
    }
}

/// The parser's message with line and column, without the quoted source line (which may hold
/// a secret).
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {}", e.message().trim())
        }
        None => e.message().trim().to_string(),
    }
}

/// Our variables from the process environment. Others are ignored even when they are not
/// UTF-8; one of ours that is not UTF-8 is an error that names it.
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (key, value) in std::env::vars_os() {
        let Some(key) = key.to_str().filter(|k| k.starts_with(ENV_PREFIX)) else {
            continue;
        };
        let value = value.into_string().map_err(|_| ConfigError::Env {
            var: key.to_string(),
            message: "value is not valid UTF-8".into(),
        })?;
        vars.push((key.to_string(), value));
    }
    Ok(vars)
}

/// Applies `POORTWACHTER_A__B__C=value` as `a.b.c = value`. A number segment indexes an array
/// (`POORTWACHTER_RADIUS__CLIENTS__0__SECRET`). The value takes the type of the key it
/// replaces; a new key is read as a TOML value when it parses as one, else as a string.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with(ENV_PREFIX)
                && k.contains("__")
                && !k.starts_with(secrets::CLIENT_SECRET_ENV_PREFIX)
        })
        .collect();
    vars.sort();
    secrets::check_index_overrides(table, &vars)?;
    for (var, value) in vars {
        let path: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let err = |message: String| ConfigError::Env {
            var: var.clone(),
            message,
        };
        if path.iter().any(|s| s.is_empty()) {
            return Err(err("empty key segment".into()));
        }
        set_path(table, &path, &value).map_err(err)?;
    }
    Ok(())
}

fn set_path(table: &mut toml::Table, path: &[String], raw: &str) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("empty key")?;
    if rest.is_empty() {
        // a password or secret is text whatever it looks like (`123456` is no number), the
        // directory's `bind_password` too
        let value = if first.ends_with("password") || first.ends_with("secret") {
            toml::Value::String(raw.to_string())
        } else {
            typed_like(table.get(first), raw)?
        };
        table.insert(first.clone(), value);
        return Ok(());
    }
    let slot = table
        .entry(first.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    set_in_value(slot, rest, raw, first)
}

fn set_in_value(
    slot: &mut toml::Value,
    path: &[String],
    raw: &str,
    at: &str,
) -> Result<(), String> {
    match slot {
        toml::Value::Table(t) => set_path(t, path, raw),
        toml::Value::Array(items) => {
            let (index, rest) = path.split_first().ok_or("empty key")?;
            let i: usize = index.parse().map_err(|_| {
                format!("`{at}` is a list: the next segment must be an index, not `{index}`")
            })?;
            if i > items.len() {
                return Err(format!(
                    "`{at}` has {} entries; index {i} would leave a gap",
                    items.len()
                ));
            }
            if i == items.len() {
                items.push(toml::Value::Table(toml::Table::new()));
            }
            if rest.is_empty() {
                let value = typed_like(items.get(i), raw)?;
                items[i] = value;
                Ok(())
            } else {
                set_in_value(&mut items[i], rest, raw, index)
            }
        }
        _ => Err(format!("`{at}` is a plain value, not a section")),
    }
}

fn typed_like(existing: Option<&toml::Value>, raw: &str) -> Result<toml::Value, String> {
    use toml::Value;
    match existing {
        Some(Value::String(_)) => Ok(Value::String(raw.to_string())),
        Some(Value::Integer(_)) => raw
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| "value is not a whole number".to_string()),
        Some(Value::Boolean(_)) => match raw.trim() {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err("value is not true or false".to_string()),
        },
        Some(Value::Float(_)) => raw
            .trim()
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| "value is not a number".to_string()),
        Some(Value::Array(_)) | Some(Value::Table(_)) => parse_toml_value(raw)
            .ok_or_else(|| "value is not an inline TOML array or table".to_string()),
        Some(Value::Datetime(_)) | None => {
            Ok(parse_toml_value(raw).unwrap_or_else(|| Value::String(raw.to_string())))
        }
    }
}

fn parse_toml_value(raw: &str) -> Option<toml::Value> {
    let doc: toml::Table = toml::from_str(&format!("v = {raw}")).ok()?;
    doc.get("v").cloned()
}

#[cfg(test)]
mod tests {

    #[test]
    fn durations_parse_and_print() {
        for (text, secs, shown) in [
            ("30d", 30 * 86_400, "30d"),
            ("8h", 8 * 3600, "8h"),
            ("15m", 900, "15m"),
            ("5s", 5, "5s"),
            ("90", 90, "90s"),
            (" 2h ", 7200, "2h"),
        ] {
            let d = HumanDuration::parse(text).expect(text);
            assert_eq!(d.0, Duration::from_secs(secs), "{text}");
            assert_eq!(d.to_string(), shown);
        }
        assert_eq!(
            HumanDuration::parse("250ms").expect("ms").0,
            Duration::from_millis(250)
        );
        for bad in ["", "d", "3w", "-5s", "1.5h", "99999999999999999999d"] {
            let e = HumanDuration::parse(bad).expect_err(bad);
            assert!(e.contains("not a duration"), "{e}");
        }
    }

    use super::*;

    const BASE: &str = r#"
[database]
url = "sqlite:var/test.db"

[radius]
auth_listen = "127.0.0.1:1812"

[[radius.clients]]
name = "ap-hal"
network = "10.20.0.0/16"
secret = "0123456789abcdef-long-enough"

[vlans]
workspace = 100
guest = 200
quarantine = 666
"#;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_toml(
            text,
            Path::new("test.toml"),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    fn problem_keys(err: ConfigError) -> Vec<String> {
        match err {
            ConfigError::Invalid { problems } => problems.into_iter().map(|p| p.key).collect(),
            other => panic!("expected Invalid, got {other}"),
        }
    }

    #[test]
    fn loads_with_defaults() {
        let c = load(BASE, &[]).unwrap();
        assert_eq!(c.vlans.workspace.get(), 100);
        assert_eq!(c.policy.max_devices_per_owner, 3);
        assert!(c.radius.require_message_authenticator);
        assert_eq!(c.radius.clients[0].coa_port, 3799);
        assert_eq!(c.roles.for_role(Role::Temp), VlanName::Guest);
        assert_eq!(c.radius.acct_listen.port(), 1813);
    }

    #[test]
    fn refuses_unknown_keys_and_names_them() {
        let text = BASE.replace("auth_listen", "auth_lissen");
        let err = load(&text, &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("auth_lissen"), "{msg}");
    }

    #[test]
    fn names_a_bad_network() {
        let text = BASE.replace("10.20.0.0/16", "10.20.0.0/33");
        let msg = load(&text, &[]).unwrap_err().to_string();
        assert!(msg.contains("radius.clients[0].network"), "{msg}");
        let text = BASE.replace("10.20.0.0/16", "10.20.1.0/16");
        let msg = load(&text, &[]).unwrap_err().to_string();
        assert!(msg.contains("did you mean 10.20.0.0/16"), "{msg}");
    }

    #[test]
    fn names_a_short_secret_without_printing_it() {
        let text = BASE.replace("0123456789abcdef-long-enough", "tooshort");
        let err = load(&text, &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("radius.clients[0].secret"), "{msg}");
        assert!(!msg.contains("tooshort"), "{msg}");
    }

    #[test]
    fn names_a_vlan_out_of_range() {
        let text = BASE.replace("guest = 200", "guest = 4095");
        let msg = load(&text, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("vlans.guest") && msg.contains("outside 1-4094"),
            "{msg}"
        );
        let text = BASE.replace("guest = 200", "guest = 0");
        assert!(load(&text, &[]).is_err());
    }

    #[test]
    fn names_a_role_without_a_vlan() {
        let text = format!("{BASE}\n[roles]\ncontractor = \"registration\"\n");
        let keys = problem_keys(load(&text, &[]).unwrap_err());
        assert_eq!(keys, vec!["roles.contractor"]);
        let text = format!("{BASE}registration = 900\n[roles]\ncontractor = \"registration\"\n");
        assert!(load(&text, &[]).is_ok());
    }

    #[test]
    fn environment_overrides_keys() {
        let c = load(
            BASE,
            &[
                ("POORTWACHTER_DATABASE__URL", "postgres://db.example/nac"),
                ("POORTWACHTER_POLICY__MAX_DEVICES_PER_OWNER", "5"),
                (
                    "POORTWACHTER_RADIUS__CLIENTS__0__SECRET",
                    "0000111122223333",
                ),
                ("POORTWACHTER_RADIUS__CLIENTS__0__NAME", "ap-hal"),
                ("POORTWACHTER_VLANS__GUEST", "201"),
                ("POORTWACHTER_CONFIG", "ignored: no double underscore"),
            ],
        )
        .unwrap();
        assert_eq!(c.database.url, "postgres://db.example/nac");
        assert_eq!(c.policy.max_devices_per_owner, 5);
        // typed like the key it replaces: a numeric-looking secret stays a string, zeros kept
        assert_eq!(c.radius.clients[0].secret.expose(), "0000111122223333");
        assert_eq!(c.vlans.guest.get(), 201);
    }

    #[test]
    fn environment_override_with_a_bad_value_names_the_variable() {
        let err = load(BASE, &[("POORTWACHTER_VLANS__GUEST", "twohundred")]).unwrap_err();
        assert!(
            err.to_string().contains("POORTWACHTER_VLANS__GUEST"),
            "{err}"
        );
        let err = load(BASE, &[("POORTWACHTER_DATABASE__UR", "x")]).unwrap_err();
        assert!(err.to_string().contains("ur"), "{err}");
    }

    #[test]
    fn syntax_errors_give_the_place_but_not_the_line() {
        let text = BASE.replace(
            "secret = \"0123456789abcdef-long-enough\"",
            "secret = \"0123456789abcdef-long-enough",
        );
        let msg = load(&text, &[]).unwrap_err().to_string();
        assert!(msg.contains("line 11"), "{msg}");
        assert!(!msg.contains("0123456789abcdef"), "{msg}");
        let text = BASE.replace(
            "secret = \"0123456789abcdef-long-enough\"",
            "secret = 1234567890123456789",
        );
        let msg = load(&text, &[]).unwrap_err().to_string();
        assert!(msg.contains("radius.clients[0].secret"), "{msg}");
        assert!(!msg.contains("1234567890123456789"), "{msg}");
    }

    #[test]
    fn database_passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://nac:s3cret@db.example/nac"),
            "postgres://nac:***@db.example/nac"
        );
        assert_eq!(
            redact_url("postgres://nac@db/nac?password=s3cret&sslmode=verify-full"),
            "postgres://nac@db/nac?password=***&sslmode=verify-full"
        );
        assert_eq!(
            redact_url("sqlite:var/poortwachter.db"),
            "sqlite:var/poortwachter.db"
        );
        let c = load(
            BASE,
            &[("POORTWACHTER_DATABASE__URL", "postgres://u:s3cret@h/d")],
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn a_password_apart_is_percent_encoded_into_the_url() {
        assert_eq!(
            url_with_password("postgres://pw@db/nac", "a!#@:/ b%+").unwrap(),
            "postgres://pw@db/nac?password=a%21%23%40%3A%2F%20b%25%2B"
        );
        assert_eq!(
            url_with_password("postgres://pw@db/nac?sslmode=require", "x").unwrap(),
            "postgres://pw@db/nac?sslmode=require&password=x"
        );
        assert!(url_with_password("postgres://pw:old@db/nac", "x").is_err());
        assert!(url_with_password("postgres://pw@db/nac?password=old", "x").is_err());
        assert!(url_with_password("sqlite:x.db", "x").is_err());
        // from the environment, numbers stay text; the value is never shown
        let c = load(
            BASE,
            &[
                ("POORTWACHTER_DATABASE__URL", "postgres://u@h/d"),
                ("POORTWACHTER_DATABASE__PASSWORD", "123456"),
            ],
        )
        .unwrap();
        assert_eq!(c.database.url, "postgres://u@h/d?password=123456");
        assert!(c.database.password.is_none());
        assert!(!format!("{c:?}").contains("123456"));
        let err = load(
            BASE,
            &[
                ("POORTWACHTER_DATABASE__URL", "postgres://u:other@h/d"),
                ("POORTWACHTER_DATABASE__PASSWORD", "geheim!#"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("database.password"), "{err}");
        assert!(!err.contains("geheim"), "{err}");
        assert!(
            c.database.migrate_on_start,
            "migrating at start is the default"
        );
    }

    #[test]
    fn environment_errors_do_not_echo_the_value() {
        let err = load(
            BASE,
            &[(
                "POORTWACHTER_RADIUS__CLIENTS",
                "[{secret = \"leaked-secret-value\"",
            )],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("POORTWACHTER_RADIUS__CLIENTS"),
            "{err}"
        );
        assert!(!err.to_string().contains("leaked-secret-value"), "{err}");
    }

    #[test]
    fn most_specific_client_wins() {
        let text = format!(
            "{BASE}\n[[radius.clients]]\nname = \"one-ap\"\nnetwork = \"10.20.3.4/32\"\nsecret = \"another-secret-0123\"\n"
        );
        let c = load(&text, &[]).unwrap();
        let ip = |s: &str| s.parse().unwrap();
        assert_eq!(c.client_for(ip("10.20.3.4")).unwrap().name, "one-ap");
        assert_eq!(c.client_for(ip("10.20.3.5")).unwrap().name, "ap-hal");
        assert_eq!(c.client_for(ip("::ffff:10.20.3.5")).unwrap().name, "ap-hal");
        assert!(c.client_for(ip("10.21.0.1")).is_none());
    }

    #[test]
    fn plain_http_api_only_on_loopback_unless_allowed() {
        let with = |api: &str| load(&format!("{BASE}\n[api]\n{api}\n"), &[]);
        // loopback, v4, v6 and v4-mapped: plain HTTP is fine
        for listen in ["127.0.0.1:8080", "[::1]:8080", "[::ffff:127.0.0.1]:8080"] {
            let c = with(&format!("listen = \"{listen}\"")).unwrap();
            assert!(!c.api.allow_plain_http);
        }
        // elsewhere: refused, naming api.listen
        for listen in ["10.20.0.5:8080", "0.0.0.0:8080", "[::]:8080"] {
            let err = with(&format!("listen = \"{listen}\"")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("allow_plain_http"), "{msg}");
            assert_eq!(problem_keys(err), ["api.listen"], "{listen}");
        }
        // unless allowed explicitly
        let c = with("listen = \"10.20.0.5:8080\"\nallow_plain_http = true").unwrap();
        assert!(c.api.allow_plain_http);
        // or with HTTPS
        let c = with(
            "listen = \"10.20.0.5:8443\"\ntls_cert = \"/etc/p/api.pem\"\n\
             tls_key = \"/etc/p/api.key\"",
        )
        .unwrap();
        assert!(c.api.tls_cert.is_some());
        // half of HTTPS is still plain: refused for the pair and for the listener
        let err = with("listen = \"10.20.0.5:8443\"\ntls_cert = \"/etc/p/api.pem\"").unwrap_err();
        let keys = problem_keys(err);
        assert!(keys.contains(&"api.listen".to_string()), "{keys:?}");
        assert!(keys.contains(&"api.tls_cert".to_string()), "{keys:?}");
    }

    #[test]
    fn api_limits_have_defaults_and_bounds() {
        let with = |api: &str| load(&format!("{BASE}\n[api]\n{api}\n"), &[]);
        let c = with("").unwrap();
        assert_eq!(c.api.header_timeout.0, Duration::from_secs(10));
        assert_eq!(c.api.idle_timeout.0, Duration::from_secs(60));
        assert_eq!(c.api.request_timeout.0, Duration::from_secs(30));
        assert_eq!(
            (c.api.max_connections, c.api.max_connections_per_ip),
            (512, 32)
        );
        for (api, key) in [
            ("header_timeout = \"0s\"", "api.header_timeout"),
            ("idle_timeout = \"2h\"", "api.idle_timeout"),
            ("request_timeout = \"500ms\"", "api.request_timeout"),
            ("max_connections = 0", "api.max_connections"),
            ("max_connections_per_ip = 0", "api.max_connections_per_ip"),
            (
                "max_connections = 8\nmax_connections_per_ip = 9",
                "api.max_connections_per_ip",
            ),
        ] {
            assert_eq!(problem_keys(with(api).unwrap_err()), [key], "{api}");
        }
    }

    #[test]
    fn an_index_override_must_name_its_entry() {
        let two = format!(
            "{BASE}\n[[radius.clients]]\nname = \"wlc-stadhuis\"\nnetwork = \"10.30.0.0/16\"\nsecret = \"another-secret-0123\"\n"
        );
        // alone: refused, naming the variable and the by-name alternative
        let err = load(
            &two,
            &[(
                "POORTWACHTER_RADIUS__CLIENTS__1__SECRET",
                "x".repeat(20).as_str(),
            )],
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("POORTWACHTER_RADIUS__CLIENTS__1__SECRET"),
            "{msg}"
        );
        assert!(
            msg.contains("POORTWACHTER_RADIUS__CLIENTS__1__NAME=wlc-stadhuis"),
            "{msg}"
        );
        assert!(
            msg.contains("POORTWACHTER_CLIENT_SECRET_WLC_STADHUIS"),
            "{msg}"
        );
        // paired with the entry's name: applied
        let c = load(
            &two,
            &[
                (
                    "POORTWACHTER_RADIUS__CLIENTS__1__SECRET",
                    "y".repeat(10).as_str(),
                ),
                ("POORTWACHTER_RADIUS__CLIENTS__1__NAME", "wlc-stadhuis"),
            ],
        )
        .map(|c| c.radius.clients[1].secret.len())
        .unwrap_err();
        assert!(c.to_string().contains("radius.clients[1].secret"), "{c}");
        // an entry added above it: the name no longer matches, refused
        let err = load(
            &two,
            &[
                (
                    "POORTWACHTER_RADIUS__CLIENTS__0__SECRET",
                    "z".repeat(20).as_str(),
                ),
                ("POORTWACHTER_RADIUS__CLIENTS__0__NAME", "wlc-stadhuis"),
            ],
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("POORTWACHTER_RADIUS__CLIENTS__0__NAME"),
            "{msg}"
        );
        assert!(msg.contains("entries moved"), "{msg}");
        assert!(!msg.contains("zzzz"), "{msg}");
    }

    #[test]
    fn secrets_by_name_from_the_environment_and_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ap-hal");
        std::fs::write(&file, "from-the-file-0123456789\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let text = BASE.replace(
            "secret = \"0123456789abcdef-long-enough\"",
            &format!(
                "secret_file = \"{}\"\nsecret_next = \"the-next-secret-0123\"",
                file.display()
            ),
        );
        let c = load(&text, &[]).unwrap();
        assert_eq!(
            c.radius.clients[0].secret.expose(),
            "from-the-file-0123456789"
        );
        assert_eq!(
            c.radius.clients[0].secret_next.as_ref().map(|s| s.expose()),
            Some("the-next-secret-0123")
        );
        // the variable by name wins over the file
        let c = load(
            &text,
            &[("POORTWACHTER_CLIENT_SECRET_AP_HAL", "from-the-env-0123456")],
        )
        .unwrap();
        assert_eq!(c.radius.clients[0].secret.expose(), "from-the-env-0123456");
        // readable by others: refused, naming the key
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&text, &[]).unwrap_err();
        assert_eq!(problem_keys(err), ["radius.clients[0].secret_file"]);
        std::fs::remove_file(&file).unwrap();
        let msg = load(&text, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("radius.clients[0].secret_file") && msg.contains("cannot read"),
            "{msg}"
        );
        // no source at all
        let text = BASE.replace("secret = \"0123456789abcdef-long-enough\"", "");
        let msg = load(&text, &[]).unwrap_err().to_string();
        assert!(msg.contains("POORTWACHTER_CLIENT_SECRET_AP_HAL"), "{msg}");
    }

    #[test]
    fn shipped_configs_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        for file in ["poortwachter.toml", "production.example.toml"] {
            let path = root.join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            Config::from_toml(&text, &path, std::iter::empty())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
}
