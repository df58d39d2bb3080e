//! Reading the directory: connect (ldaps or StartTLS over rustls, the server certificate
//! checked against `ca_file` or the system's trust store), bind, search the owners with the
//! Paged Results control (RFC 2696), and read the role groups' members. Every step is bounded
//! in time; the number of entries too.

use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, LdapConnSettings, ResultEntry, Scope, SearchEntry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::map::{Entry, GroupMembers, Mapping, Membership};
use super::DirectoryError;
use crate::config::directory::{DirectoryConfig, Transport};
use crate::secret::Secret;

/// More entries than this in one search is refused (a filter that matches the whole forest).
pub const MAX_ENTRIES: usize = 1_000_000;

/// What one read of the directory gave.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// The owners' entries.
    pub entries: Vec<Entry>,
    /// The role groups' members (`membership = "group_member"`).
    pub groups: GroupMembers,
}

/// The bind password: `bind_password` (or its environment variable), else
/// `bind_password_file`, read now with the rules of every secret file (one line, not readable
/// by others).
pub fn bind_password(config: &DirectoryConfig) -> Result<Secret, DirectoryError> {
    if let Some(p) = &config.bind_password {
        return Ok(p.clone());
    }
    let Some(file) = &config.bind_password_file else {
        return Err(DirectoryError::Password(
            "no bind password is configured".into(),
        ));
    };
    crate::config::secrets::read_secret_file(file).map_err(DirectoryError::Password)
}

/// The TLS client configuration: our ring provider, the CAs of `ca_file` or else the
/// system's.
fn tls_config(config: &DirectoryConfig) -> Result<Arc<rustls::ClientConfig>, DirectoryError> {
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(file) => {
            let pem = std::fs::read(file).map_err(|e| {
                DirectoryError::Tls(format!("cannot read ca_file {}: {e}", file.display()))
            })?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| DirectoryError::Tls(format!("ca_file {}: {e}", file.display())))?;
            if certs.is_empty() {
                return Err(DirectoryError::Tls(format!(
                    "ca_file {} holds no certificate",
                    file.display()
                )));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| DirectoryError::Tls(format!("ca_file {}: {e}", file.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(DirectoryError::Tls(
                    "the system trust store holds no CA certificate: set directory.ca_file".into(),
                ));
            }
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| DirectoryError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(tls))
}

/// A connection, bound as `bind_dn` (ldaps, StartTLS or, where allowed, plain).
async fn bound(config: &DirectoryConfig) -> Result<ldap3::Ldap, DirectoryError> {
    let transport = config.transport().map_err(DirectoryError::Config)?;
    let password = bind_password(config)?;
    let mut settings = LdapConnSettings::new().set_conn_timeout(config.connect_timeout.0);
    match transport {
        Transport::Ldaps => settings = settings.set_config(tls_config(config)?),
        Transport::StartTls => {
            settings = settings.set_config(tls_config(config)?).set_starttls(true)
        }
        Transport::Plain => tracing::warn!(
            url = %config.url,
            "directory sync over plain LDAP: the bind password crosses the connection in clear text"
        ),
    }
    let url = config.url.trim();
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url)
        .await
        .map_err(|error| DirectoryError::Connect {
            url: url.to_string(),
            error: Box::new(error),
        })?;
    ldap3::drive!(conn);
    ldap.simple_bind(&config.bind_dn, password.expose())
        .await
        .and_then(|r| r.success())
        .map_err(|error| DirectoryError::Bind {
            dn: config.bind_dn.clone(),
            error: Box::new(error),
        })?;
    Ok(ldap)
}

/// Whether a sync could run: connects, binds and reads `base_dn` itself (not the entries
/// under it), all within `limit`.
pub async fn probe(config: &DirectoryConfig, limit: Duration) -> Result<(), DirectoryError> {
    let check = async {
        let mut ldap = bound(config).await?;
        ldap.search(&config.base_dn, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .and_then(|r| r.success())
            .map_err(|error| DirectoryError::Search {
                base: config.base_dn.clone(),
                error: Box::new(error),
            })?;
        let _ = ldap.unbind().await;
        Ok(())
    };
    tokio::time::timeout(limit, check)
        .await
        .map_err(|_| DirectoryError::Timeout(limit))?
}

/// Reads the owners (and the role groups' members) from the directory.
pub async fn fetch(config: &DirectoryConfig, mapping: &Mapping) -> Result<Fetched, DirectoryError> {
    let read = async {
        let mut ldap = bound(config).await?;
        let attrs = mapping.attributes();
        let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(
                i32::try_from(config.page_size).unwrap_or(500),
            )),
        ];
        let search = |error| DirectoryError::Search {
            base: config.base_dn.clone(),
            error: Box::new(error),
        };
        let mut stream = ldap
            .streaming_search_with(
                adapters,
                &config.base_dn,
                Scope::Subtree,
                &config.filter,
                attrs,
            )
            .await
            .map_err(search)?;
        let mut entries = Vec::new();
        while let Some(raw) = stream.next().await.map_err(search)? {
            if entries.len() >= MAX_ENTRIES {
                return Err(DirectoryError::TooManyEntries(MAX_ENTRIES));
            }
            entries.push(entry(construct(raw)?));
        }
        stream.finish().await.success().map_err(search)?;
        let mut groups = GroupMembers::default();
        if mapping.membership == Membership::GroupMember {
            for (group, _) in &mapping.role_groups {
                let (found, _) = ldap
                    .search(
                        group,
                        Scope::Base,
                        "(objectClass=*)",
                        vec!["member", "uniqueMember", "memberUid"],
                    )
                    .await
                    .and_then(|r| r.success())
                    .map_err(|error| DirectoryError::Group {
                        group: group.clone(),
                        error: Box::new(error),
                    })?;
                let Some(first) = found.into_iter().next() else {
                    return Err(DirectoryError::GroupMissing(group.clone()));
                };
                groups.add_group(group, &entry(construct(first)?));
            }
        }
        let _ = ldap.unbind().await;
        Ok(Fetched { entries, groups })
    };
    let limit: Duration = config.timeout.0;
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| DirectoryError::Timeout(limit))?
}

/// ldap3's reading of an entry, which panics on one it cannot parse: a malformed answer is an
/// error of the sync, never the end of the process.
fn construct(raw: ResultEntry) -> Result<SearchEntry, DirectoryError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(raw)))
        .map_err(|_| DirectoryError::Malformed)
}

/// Our entry from ldap3's: names lowercased; a 16-byte binary value (AD's `objectGUID`) as
/// its GUID; other binary values dropped.
fn entry(e: SearchEntry) -> Entry {
    let mut out = Entry {
        dn: e.dn,
        attrs: Default::default(),
    };
    for (name, values) in e.attrs {
        out.attrs
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values);
    }
    for (name, values) in e.bin_attrs {
        let guids: Vec<String> = values
            .iter()
            .filter_map(|v| <[u8; 16]>::try_from(v.as_slice()).ok())
            // AD's GUID: the first three fields little-endian (MS-DTYP 2.3.4)
            .map(|b| uuid::Uuid::from_bytes_le(b).to_string())
            .collect();
        if !guids.is_empty() {
            out.attrs
                .entry(name.to_ascii_lowercase())
                .or_default()
                .extend(guids);
        }
    }
    out
}

/// Someone who proved their directory password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryLogin {
    /// Their DN.
    pub dn: String,
    /// Their username (the mapped username attribute, lower case).
    pub username: String,
    /// Their name.
    pub display_name: String,
    /// Which of the groups asked about they are a member of.
    pub groups: Vec<String>,
}

/// `value` escaped for an LDAP filter (RFC 4515 §3): `*`, `(`, `)`, `\` and NUL as `\XX`.
pub fn filter_escape(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '*' | '(' | ')' | '\\' | '\0' => format!("\\{:02x}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// Checks `username`'s `password` against the directory: the service account finds the one
/// entry under `base_dn` that matches `filter` and has that username, then a second
/// connection binds as that entry with the password. `None` for a wrong password, an
/// unknown or ambiguous username, or an empty password (an LDAP bind with an empty password
/// is an anonymous bind that succeeds: never a login). `groups`: the group DNs to check
/// membership of (`member`, `uniqueMember` or `memberUid`), read by the service account.
pub async fn authenticate(
    config: &DirectoryConfig,
    username: &str,
    password: &str,
    groups: &[String],
) -> Result<Option<DirectoryLogin>, DirectoryError> {
    let username = username.trim();
    if password.is_empty()
        || username.is_empty()
        || username.len() > 256
        || username.chars().any(char::is_control)
    {
        return Ok(None);
    }
    let limit = config.timeout.0;
    let work = async {
        let mapping = config.mapping();
        let mut ldap = bound(config).await?;
        let filter = format!(
            "(&{}({}={}))",
            config.filter,
            config.attributes.username,
            filter_escape(username)
        );
        let search = |error| DirectoryError::Search {
            base: config.base_dn.clone(),
            error: Box::new(error),
        };
        let (found, _) = ldap
            .search(
                &config.base_dn,
                Scope::Subtree,
                &filter,
                mapping.attributes(),
            )
            .await
            .and_then(|r| r.success())
            .map_err(search)?;
        if found.len() != 1 {
            let _ = ldap.unbind().await;
            return Ok(None);
        }
        let Some(raw) = found.into_iter().next() else {
            return Ok(None);
        };
        let person = entry(construct(raw)?);
        let mut member_of = Vec::new();
        for g in groups {
            let (entries, _) = ldap
                .search(
                    g,
                    Scope::Base,
                    "(objectClass=*)",
                    vec!["member", "uniqueMember", "memberUid"],
                )
                .await
                .and_then(|r| r.success())
                .map_err(|error| DirectoryError::Group {
                    group: g.clone(),
                    error: Box::new(error),
                })?;
            let Some(first) = entries.into_iter().next() else {
                continue;
            };
            let group = entry(construct(first)?);
            let mut members = GroupMembers::default();
            members.add_group(g, &group);
            if members.0.values().any(|m| {
                m.contains(&super::map::normalize_dn(&person.dn))
                    || m.contains(&username.to_lowercase())
            }) {
                member_of.push(g.clone());
            }
        }
        let _ = ldap.unbind().await;
        // the password: a connection of its own, bound as the person
        let mut person_config = config.clone();
        person_config.bind_dn = person.dn.clone();
        person_config.bind_password = Some(Secret::new(password));
        person_config.bind_password_file = None;
        match bound(&person_config).await {
            Ok(mut l) => {
                let _ = l.unbind().await;
            }
            Err(DirectoryError::Bind { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let name = mapping
            .display_name
            .iter()
            .find_map(|a| person.first(a))
            .unwrap_or(username)
            .to_string();
        Ok(Some(DirectoryLogin {
            dn: person.dn.clone(),
            username: person
                .first(&config.attributes.username)
                .unwrap_or(username)
                .to_lowercase(),
            display_name: name,
            groups: member_of,
        }))
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| DirectoryError::Timeout(limit))?
}
