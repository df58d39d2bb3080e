//! `[directory]`: pulling owners from the municipality's directory over LDAP (Active Directory
//! or OpenLDAP): where it is, how to bind, what to search, how attributes map to an owner, and
//! the safeguard against a sync that would disable too many owners at once.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{Config, HumanDuration};
use crate::directory::map::{normalize_dn, DisabledRule, Mapping, Membership};
use crate::model::Role;
use crate::secret::Secret;

/// `[directory]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// `ldaps://host[:636]` (TLS from the first byte), or `ldap://host[:389]` with
    /// `starttls = true`. A plain `ldap://` without StartTLS is accepted only on a loopback
    /// host (with a warning at each sync) or with `allow_plaintext = true`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS (RFC 4511 §4.14) before binding.
    #[serde(default)]
    pub starttls: bool,
    /// Allow a plain `ldap://` connection without StartTLS to a host that is not loopback: the
    /// bind password crosses the network in clear text. Only for a test directory.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// PEM file with the CA certificate(s) to trust for the directory's server certificate,
    /// instead of the system's trust store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The DN (or, for AD, `user@domain`) the sync binds as: a read-only service account.
    pub bind_dn: String,
    /// The bind password: best from the environment, `POORTWACHTER_DIRECTORY__BIND_PASSWORD`.
    /// Never logged.
    #[serde(default)]
    pub bind_password: Option<Secret>,
    /// A file whose content (one line) is the bind password; read at each sync, so a
    /// rotated password needs no restart. Not readable by others.
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Where the search starts (subtree).
    pub base_dn: String,
    /// Which entries are owners.
    #[serde(default = "default_filter")]
    pub filter: String,
    /// Which attribute holds what.
    #[serde(default)]
    pub attributes: AttributesConfig,
    /// How an entry says it is disabled in the directory (left out, so its owner is
    /// disabled here).
    #[serde(default)]
    pub disabled: Option<DisabledConfig>,
    /// Where group membership is read: `member_of` (the user's `memberOf`, as AD and
    /// OpenLDAP's memberof overlay keep it) or `group_member` (each role group's `member`,
    /// `uniqueMember` and `memberUid`).
    #[serde(default)]
    pub membership: Membership,
    /// Role by group, the first group (in this order) the user is a member of wins.
    #[serde(default)]
    pub role_groups: Vec<RoleGroupConfig>,
    /// The role of a user in none of the `role_groups`.
    #[serde(default = "default_role")]
    pub default_role: Role,
    /// How often `serve` syncs; `0s` (the default): only `poortwachter owner sync`.
    #[serde(default = "no_interval")]
    pub interval: HumanDuration,
    /// The most owners one sync may disable: a number (`25`) or a share of the owners the
    /// directory manages (`"10%"`, at least one). More is refused (a search that comes back
    /// empty or half must not disable everyone) unless `owner sync --force`.
    #[serde(default = "default_max_disable")]
    pub max_disable: MaxDisable,
    /// Connecting (TCP and TLS) must end within this.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// The whole read (bind, search, groups) must end within this.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Entries per page of the Paged Results control (RFC 2696); AD answers at most 1000
    /// entries a page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_filter() -> String {
    "(objectClass=person)".into()
}
fn no_interval() -> HumanDuration {
    HumanDuration(Duration::ZERO)
}
fn default_role() -> Role {
    Role::Staff
}
fn default_max_disable() -> MaxDisable {
    MaxDisable::Percent(10)
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(120))
}
fn default_page_size() -> u32 {
    500
}

/// `[directory.attributes]`: attribute names (any case).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributesConfig {
    /// The username: `uid` (OpenLDAP), `sAMAccountName` (AD).
    #[serde(default = "default_username")]
    pub username: String,
    /// The display name: the first of these that the entry has.
    #[serde(default = "default_display_name", deserialize_with = "one_or_many")]
    pub display_name: Vec<String>,
    /// The mail address.
    #[serde(default = "default_email")]
    pub email: String,
    /// The department: `departmentNumber` (inetOrgPerson), `department` (AD).
    #[serde(default = "default_department")]
    pub department: String,
    /// The contract end, if the directory has it: AD's `accountExpires` (FILETIME), or a
    /// date (`YYYY-MM-DD`) or GeneralizedTime attribute holding the last day.
    #[serde(default)]
    pub contract_end: Option<String>,
    /// What identifies the entry through renames: `entryUUID` (OpenLDAP), `objectGUID` (AD);
    /// unset: the DN.
    #[serde(default)]
    pub external_id: Option<String>,
}

fn default_username() -> String {
    "uid".into()
}
fn default_display_name() -> Vec<String> {
    vec!["displayName".into(), "cn".into()]
}
fn default_email() -> String {
    "mail".into()
}
fn default_department() -> String {
    "departmentNumber".into()
}

impl Default for AttributesConfig {
    fn default() -> Self {
        AttributesConfig {
            username: default_username(),
            display_name: default_display_name(),
            email: default_email(),
            department: default_department(),
            contract_end: None,
            external_id: None,
        }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(s) => vec![s],
        Raw::Many(v) => v,
    })
}

/// `[directory.disabled]`: `attribute = "userAccountControl"` alone tests AD's ACCOUNTDISABLE
/// bit (0x2); with `values`, an entry is disabled when the attribute has one of them (any
/// case); any other attribute alone: disabled when present (`pwdAccountLockedTime`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisabledConfig {
    /// The attribute.
    pub attribute: String,
    /// The values that mean disabled.
    #[serde(default)]
    pub values: Vec<String>,
}

/// `[[directory.role_groups]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleGroupConfig {
    /// The group's DN.
    pub group: String,
    /// The role its members get.
    pub role: Role,
}

/// `directory.max_disable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxDisable {
    /// At most this many owners.
    Count(u64),
    /// At most this share (1-100) of the owners the directory manages, at least one.
    Percent(u8),
}

impl MaxDisable {
    /// The most owners a sync may disable when the directory manages `managed` enabled owners.
    pub fn limit(self, managed: u64) -> u64 {
        match self {
            MaxDisable::Count(n) => n,
            MaxDisable::Percent(p) => (managed * u64::from(p)).div_ceil(100).max(1),
        }
    }
}

impl std::fmt::Display for MaxDisable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxDisable::Count(n) => write!(f, "{n}"),
            MaxDisable::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl<'de> Deserialize<'de> for MaxDisable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u64),
            Text(String),
        }
        let bad = || {
            serde::de::Error::custom("must be a number of owners (25) or a percentage (\"10%\")")
        };
        match Raw::deserialize(d).map_err(|_| bad())? {
            Raw::Count(n) => Ok(MaxDisable::Count(n)),
            Raw::Text(t) => {
                let t = t.trim();
                match t.strip_suffix('%') {
                    Some(p) => p
                        .trim()
                        .parse::<u8>()
                        .ok()
                        .filter(|p| (1..=100).contains(p))
                        .map(MaxDisable::Percent)
                        .ok_or_else(bad),
                    None => t.parse().map(MaxDisable::Count).map_err(|_| bad()),
                }
            }
        }
    }
}

/// How the connection is protected, from `url` and `starttls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `ldaps://`
    Ldaps,
    /// `ldap://` upgraded with StartTLS.
    StartTls,
    /// `ldap://` in clear text (loopback, or `allow_plaintext`).
    Plain,
}

impl DirectoryConfig {
    /// The transport, or why the URL is refused.
    pub fn transport(&self) -> Result<Transport, String> {
        let url = self.url.trim();
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("ldaps://") {
            if self.starttls {
                return Err("ldaps:// is TLS already: leave starttls off".into());
            }
            return Ok(Transport::Ldaps);
        }
        let Some(rest) = lower.strip_prefix("ldap://") else {
            return Err(format!(
                "`{url}` is not an ldaps:// or ldap:// URL (ldap:// with starttls = true)"
            ));
        };
        if self.starttls {
            return Ok(Transport::StartTls);
        }
        if self.allow_plaintext || is_loopback_host(rest) {
            return Ok(Transport::Plain);
        }
        Err(format!(
            "`{url}` is plain LDAP: the bind password would cross the network in clear text; \
             use ldaps://, or set starttls = true (allow_plaintext = true only for a test directory)"
        ))
    }

    /// The attribute mapping the sync applies (see [`crate::directory::map`]).
    pub fn mapping(&self) -> Mapping {
        let a = &self.attributes;
        let disabled = self.disabled.as_ref().map(|d| {
            if !d.values.is_empty() {
                DisabledRule::Values {
                    attribute: d.attribute.clone(),
                    values: d.values.clone(),
                }
            } else if d.attribute.eq_ignore_ascii_case("userAccountControl") {
                DisabledRule::AccountControl {
                    attribute: d.attribute.clone(),
                }
            } else {
                DisabledRule::Present {
                    attribute: d.attribute.clone(),
                }
            }
        });
        Mapping {
            username: a.username.clone(),
            display_name: a.display_name.clone(),
            email: a.email.clone(),
            department: a.department.clone(),
            contract_end: a.contract_end.clone(),
            external_id: a.external_id.clone(),
            disabled,
            membership: self.membership,
            role_groups: self
                .role_groups
                .iter()
                .map(|g| (normalize_dn(&g.group), g.role))
                .collect(),
            default_role: self.default_role,
        }
    }
}

/// `host[:port][/...]` names the local machine.
fn is_loopback_host(rest: &str) -> bool {
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn problems(config: &Config, push: &mut impl FnMut(String, String)) {
    let Some(d) = &config.directory else {
        return;
    };
    if let Err(m) = d.transport() {
        push("directory.url".into(), m);
    }
    if d.bind_dn.trim().is_empty() {
        push("directory.bind_dn".into(), "must not be empty".into());
    }
    match (&d.bind_password, &d.bind_password_file) {
        (Some(_), Some(_)) => push(
            "directory.bind_password_file".into(),
            "give directory.bind_password or directory.bind_password_file, not both".into(),
        ),
        (None, None) => push(
            "directory.bind_password".into(),
            "no bind password: set directory.bind_password_file or \
             POORTWACHTER_DIRECTORY__BIND_PASSWORD"
                .into(),
        ),
        (Some(p), None) if p.is_empty() => {
            push("directory.bind_password".into(), "is empty".into())
        }
        _ => {}
    }
    if d.base_dn.trim().is_empty() {
        push("directory.base_dn".into(), "must not be empty".into());
    }
    let filter = d.filter.trim();
    if !(filter.starts_with('(') && filter.ends_with(')')) {
        push(
            "directory.filter".into(),
            "must be an LDAP filter in parentheses, such as (objectClass=person)".into(),
        );
    }
    let a = &d.attributes;
    for (key, value) in [
        ("username", Some(&a.username)),
        ("email", Some(&a.email)),
        ("department", Some(&a.department)),
        ("contract_end", a.contract_end.as_ref()),
        ("external_id", a.external_id.as_ref()),
    ] {
        if value.is_some_and(|v| v.trim().is_empty()) {
            push(
                format!("directory.attributes.{key}"),
                "must not be empty".into(),
            );
        }
    }
    if a.display_name.is_empty() || a.display_name.iter().any(|n| n.trim().is_empty()) {
        push(
            "directory.attributes.display_name".into(),
            "must name one or more attributes".into(),
        );
    }
    if let Some(dis) = &d.disabled {
        if dis.attribute.trim().is_empty() {
            push(
                "directory.disabled.attribute".into(),
                "must not be empty".into(),
            );
        }
    }
    for (i, g) in d.role_groups.iter().enumerate() {
        if !g.group.contains('=') {
            push(
                format!("directory.role_groups[{i}].group"),
                format!(
                    "`{}` is not a DN such as cn=interns,ou=groups,dc=example,dc=nl",
                    g.group
                ),
            );
        }
    }
    if !d.interval.0.is_zero() && d.interval.0 < Duration::from_secs(10) {
        push(
            "directory.interval".into(),
            "must be 0s (not scheduled) or at least 10s".into(),
        );
    }
    if d.connect_timeout.0 < Duration::from_secs(1)
        || d.connect_timeout.0 > Duration::from_secs(300)
    {
        push(
            "directory.connect_timeout".into(),
            "must be between 1s and 300s".into(),
        );
    }
    if d.timeout.0 < Duration::from_secs(1) || d.timeout.0 > Duration::from_secs(3600) {
        push(
            "directory.timeout".into(),
            "must be between 1s and 3600s".into(),
        );
    }
    if !(1..=1000).contains(&d.page_size) {
        push(
            "directory.page_size".into(),
            "must be between 1 and 1000 (AD's MaxPageSize)".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
[database]
url = "sqlite:var/test.db"

[vlans]
workspace = 100
guest = 200
quarantine = 666

[directory]
url = "ldaps://dc1.gemeente.example"
bind_dn = "CN=svc-poortwachter,OU=Service,DC=gemeente,DC=example"
bind_password_file = "/etc/poortwachter/ldap.pw"
base_dn = "OU=Medewerkers,DC=gemeente,DC=example"
"#;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, super::super::ConfigError> {
        Config::from_toml(
            text,
            Path::new("test.toml"),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    fn keys(text: &str) -> Vec<String> {
        match load(text, &[]) {
            Err(super::super::ConfigError::Invalid { problems }) => {
                problems.into_iter().map(|p| p.key).collect()
            }
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_an_ad_mapping() {
        let c = load(BASE, &[]).unwrap();
        let d = c.directory.unwrap();
        assert_eq!(d.filter, "(objectClass=person)");
        assert_eq!(d.attributes.username, "uid");
        assert_eq!(d.default_role, Role::Staff);
        assert!(d.interval.0.is_zero());
        assert_eq!(d.max_disable, MaxDisable::Percent(10));
        assert_eq!(d.membership, Membership::MemberOf);
        assert_eq!(d.transport(), Ok(Transport::Ldaps));

        let text = format!(
            "{BASE}interval = \"15m\"\nmax_disable = 25\n\
             [directory.attributes]\nusername = \"sAMAccountName\"\ndisplay_name = \"displayName\"\n\
             department = \"department\"\ncontract_end = \"accountExpires\"\nexternal_id = \"objectGUID\"\n\
             [directory.disabled]\nattribute = \"userAccountControl\"\n\
             [[directory.role_groups]]\ngroup = \"CN=Stagiairs, OU=Groepen,DC=gemeente,DC=example\"\nrole = \"intern\"\n"
        );
        let d = load(&text, &[]).unwrap().directory.unwrap();
        assert_eq!(d.interval.0, Duration::from_secs(900));
        assert_eq!(d.max_disable, MaxDisable::Count(25));
        let m = d.mapping();
        assert_eq!(m.display_name, ["displayName"]);
        assert!(matches!(
            m.disabled,
            Some(DisabledRule::AccountControl { .. })
        ));
        assert_eq!(
            m.role_groups,
            [(
                "cn=stagiairs,ou=groepen,dc=gemeente,dc=example".to_string(),
                Role::Intern
            )]
        );
    }

    /// The commented `[directory]` of the production example, uncommented, is valid.
    #[test]
    fn the_production_example_is_valid_uncommented() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let text = std::fs::read_to_string(root.join("production.example.toml")).unwrap();
        let block = &text[text.find("# [directory]").expect("a [directory] example")..];
        let is_key = |l: &str| {
            l.starts_with('[')
                || l.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
        };
        let uncommented: Vec<&str> = block
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| is_key(l))
            .collect();
        let mut config = String::from(BASE.split("[directory]").next().unwrap());
        config.push_str(&uncommented.join("\n"));
        let d = load(&config, &[]).unwrap().directory.unwrap();
        assert_eq!(d.attributes.username, "sAMAccountName");
        assert_eq!(d.role_groups.len(), 2);
        assert_eq!(d.interval.0, Duration::from_secs(900));
        assert!(matches!(
            d.mapping().disabled,
            Some(DisabledRule::AccountControl { .. })
        ));
    }

    #[test]
    fn plain_ldap_only_on_loopback_or_when_allowed() {
        let text = BASE.replace(
            "ldaps://dc1.gemeente.example",
            "ldap://dc1.gemeente.example",
        );
        assert_eq!(keys(&text), ["directory.url"]);
        let msg = load(&text, &[]).unwrap_err().to_string();
        assert!(msg.contains("clear text"), "{msg}");
        let starttls = format!("{text}starttls = true\n");
        let d = load(&starttls, &[]).unwrap().directory.unwrap();
        assert_eq!(d.transport(), Ok(Transport::StartTls));
        let allowed = format!("{text}allow_plaintext = true\n");
        let d = load(&allowed, &[]).unwrap().directory.unwrap();
        assert_eq!(d.transport(), Ok(Transport::Plain));
        for host in ["127.0.0.1:3389", "localhost", "[::1]:389"] {
            let text = BASE.replace("ldaps://dc1.gemeente.example", &format!("ldap://{host}"));
            let d = load(&text, &[]).unwrap().directory.unwrap();
            assert_eq!(d.transport(), Ok(Transport::Plain), "{host}");
        }
        let both = format!("{BASE}starttls = true\n");
        assert_eq!(keys(&both), ["directory.url"]);
        let other = BASE.replace("ldaps://", "https://");
        assert_eq!(keys(&other), ["directory.url"]);
    }

    #[test]
    fn the_password_from_the_environment_stays_text_and_unprinted() {
        let text = BASE.replace("bind_password_file = \"/etc/poortwachter/ldap.pw\"\n", "");
        assert_eq!(keys(&text), ["directory.bind_password"]);
        let c = load(
            &text,
            &[("POORTWACHTER_DIRECTORY__BIND_PASSWORD", "123456")],
        )
        .unwrap();
        let d = c.directory.unwrap();
        assert_eq!(d.bind_password.as_ref().map(|p| p.expose()), Some("123456"));
        assert!(!format!("{d:?}").contains("123456"));
        let both = load(
            BASE,
            &[("POORTWACHTER_DIRECTORY__BIND_PASSWORD", "s3cret-pw")],
        )
        .unwrap_err()
        .to_string();
        assert!(both.contains("directory.bind_password_file"), "{both}");
        assert!(!both.contains("s3cret-pw"), "{both}");
    }

    #[test]
    fn max_disable_and_other_values_are_checked() {
        for (value, want) in [
            ("10", Some(MaxDisable::Count(10))),
            ("\"5%\"", Some(MaxDisable::Percent(5))),
            ("\"0%\"", None),
            ("\"101%\"", None),
            ("\"many\"", None),
        ] {
            let text = format!("{BASE}max_disable = {value}\n");
            match want {
                Some(w) => assert_eq!(load(&text, &[]).unwrap().directory.unwrap().max_disable, w),
                None => assert_eq!(keys(&text), ["directory.max_disable"], "{value}"),
            }
        }
        assert_eq!(MaxDisable::Percent(10).limit(0), 1);
        assert_eq!(MaxDisable::Percent(10).limit(500), 50);
        assert_eq!(MaxDisable::Percent(10).limit(15), 2);
        assert_eq!(MaxDisable::Count(3).limit(500), 3);
        let text = format!("{BASE}interval = \"5s\"\npage_size = 5000\nfilter = \"uid=*\"\n");
        assert_eq!(
            keys(&text),
            [
                "directory.filter",
                "directory.interval",
                "directory.page_size"
            ]
        );
        let text =
            format!("{BASE}[[directory.role_groups]]\ngroup = \"interns\"\nrole = \"intern\"\n");
        assert_eq!(keys(&text), ["directory.role_groups[0].group"]);
        let text = format!("{BASE}[[directory.role_groups]]\ngroup = \"cn=x\"\nrole = \"boss\"\n");
        let msg = load(&text, &[]).unwrap_err().to_string();
        assert!(msg.contains("directory.role_groups[0].role"), "{msg}");
    }
}
