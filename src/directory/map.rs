//! From directory entries to import rows: pure, the site's time zone passed in. An entry the
//! directory marks disabled is left out (its owner then counts as gone from the directory and
//! is disabled by the import); an entry that cannot be read as an owner becomes a bad row with
//! its DN and the reason.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Deserialize;

use crate::model::{NewOwner, Owner, OwnerSource, Role};
use crate::registry::{ImportRow, RowProblem};

/// One entry of the search result: its DN and its attributes (names lowercased; values as
/// text, a 16-byte `objectGUID` as its GUID).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The entry's DN.
    pub dn: String,
    /// Attribute (lowercase) → values.
    pub attrs: HashMap<String, Vec<String>>,
}

impl Entry {
    /// An entry with these attributes (names in any case).
    pub fn new<'a>(dn: &str, attrs: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>) -> Entry {
        let mut e = Entry {
            dn: dn.to_string(),
            attrs: HashMap::new(),
        };
        for (name, values) in attrs {
            e.attrs
                .entry(name.to_ascii_lowercase())
                .or_default()
                .extend(values.into_iter().map(str::to_string));
        }
        e
    }

    /// Every value of `name` (any case).
    pub fn values(&self, name: &str) -> &[String] {
        self.attrs
            .get(&name.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The first non-blank value of `name`, trimmed.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name)
            .iter()
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
    }
}

/// Where group membership is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    /// The user's `memberOf` (AD; OpenLDAP with the memberof overlay).
    #[default]
    MemberOf,
    /// Each role group's `member` / `uniqueMember` (DNs) and `memberUid` (usernames).
    GroupMember,
}

/// How an entry says it is disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisabledRule {
    /// AD's `userAccountControl`: the ACCOUNTDISABLE bit (0x2).
    AccountControl {
        /// The attribute.
        attribute: String,
    },
    /// Disabled when the attribute holds one of these values (any case).
    Values {
        /// The attribute.
        attribute: String,
        /// The values.
        values: Vec<String>,
    },
    /// Disabled when the attribute is present (`pwdAccountLockedTime`).
    Present {
        /// The attribute.
        attribute: String,
    },
}

/// ACCOUNTDISABLE in AD's `userAccountControl` (MS-ADTS 2.2.16).
const ACCOUNT_DISABLE: u64 = 0x2;

impl DisabledRule {
    /// The attribute it reads.
    pub fn attribute(&self) -> &str {
        match self {
            DisabledRule::AccountControl { attribute }
            | DisabledRule::Values { attribute, .. }
            | DisabledRule::Present { attribute } => attribute,
        }
    }

    fn disables(&self, e: &Entry) -> bool {
        match self {
            DisabledRule::AccountControl { attribute } => e
                .first(attribute)
                .and_then(|v| v.parse::<i64>().ok())
                // a signed 32-bit value in AD: read its bits
                .is_some_and(|v| (v as u64) & ACCOUNT_DISABLE != 0),
            DisabledRule::Values { attribute, values } => e.values(attribute).iter().any(|v| {
                values
                    .iter()
                    .any(|d| d.trim().eq_ignore_ascii_case(v.trim()))
            }),
            DisabledRule::Present { attribute } => e.first(attribute).is_some(),
        }
    }
}

/// How the sync reads an owner from an entry (built from `[directory]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Username attribute.
    pub username: String,
    /// Display name attributes, first present wins.
    pub display_name: Vec<String>,
    /// Mail attribute.
    pub email: String,
    /// Department attribute.
    pub department: String,
    /// Contract end attribute.
    pub contract_end: Option<String>,
    /// External id attribute; `None`: the DN.
    pub external_id: Option<String>,
    /// How a disabled entry is told.
    pub disabled: Option<DisabledRule>,
    /// Where membership is read.
    pub membership: Membership,
    /// (normalized group DN, role), first match wins.
    pub role_groups: Vec<(String, Role)>,
    /// Role of a user in no role group.
    pub default_role: Role,
}

impl Mapping {
    /// The attributes to ask the directory for.
    pub fn attributes(&self) -> Vec<String> {
        let mut names = vec![
            self.username.clone(),
            self.email.clone(),
            self.department.clone(),
        ];
        names.extend(self.display_name.iter().cloned());
        names.extend(self.contract_end.iter().cloned());
        names.extend(self.external_id.iter().cloned());
        names.extend(self.disabled.iter().map(|d| d.attribute().to_string()));
        if self.membership == Membership::MemberOf && !self.role_groups.is_empty() {
            names.push("memberOf".into());
        }
        let mut seen = HashSet::new();
        names.retain(|n| seen.insert(n.to_ascii_lowercase()));
        names
    }
}

/// The members of each role group (`Membership::GroupMember`): normalized DNs and lowercase
/// usernames (`memberUid`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMembers(pub HashMap<String, HashSet<String>>);

impl GroupMembers {
    /// Records a group entry's members.
    pub fn add_group(&mut self, group_dn: &str, group: &Entry) {
        let set = self.0.entry(normalize_dn(group_dn)).or_default();
        for attr in ["member", "uniquemember"] {
            for v in group.values(attr) {
                set.insert(normalize_dn(v));
            }
        }
        for v in group.values("memberuid") {
            set.insert(v.trim().to_ascii_lowercase());
        }
    }

    fn has(&self, group: &str, dn: &str, username: &str) -> bool {
        self.0.get(group).is_some_and(|m| {
            m.contains(&normalize_dn(dn)) || m.contains(&username.to_ascii_lowercase())
        })
    }
}

/// What the entries gave.
#[derive(Debug, Clone, Default)]
pub struct Mapped {
    /// One row per entry not disabled, in the search's order (`line`: its place, from 1).
    pub rows: Vec<ImportRow>,
    /// The DNs of entries left out because the directory marks them disabled.
    pub disabled: Vec<String>,
    /// The username of each bad row that has one, by line.
    pub named: HashMap<u64, String>,
}

/// Maps every entry (see the module's header).
pub fn map_entries(
    entries: &[Entry],
    groups: &GroupMembers,
    mapping: &Mapping,
    tz: &chrono_tz::Tz,
) -> Mapped {
    let mut out = Mapped::default();
    for (i, e) in entries.iter().enumerate() {
        if mapping.disabled.as_ref().is_some_and(|d| d.disables(e)) {
            out.disabled.push(e.dn.clone());
            continue;
        }
        let owner = external_id(e, mapping)
            .and_then(|id| Ok((map_entry(e, groups, mapping, tz)?, id)))
            .map_err(|m| format!("{}: {m}", e.dn));
        out.rows.push(match owner {
            Ok((owner, id)) => ImportRow {
                line: i as u64 + 1,
                owner: Ok(owner),
                external_id: Some(id),
            },
            Err(why) => {
                if let Some(username) = e.first(&mapping.username) {
                    out.named.insert(i as u64 + 1, username.to_string());
                }
                ImportRow {
                    line: i as u64 + 1,
                    owner: Err(why),
                    external_id: None,
                }
            }
        });
    }
    out
}

/// A bad entry of someone the directory manages (enabled) must not read as "gone from the
/// directory": each such row becomes that owner as stored, so that the import leaves them as
/// they are (neither updated nor disabled); the entries' problems are returned, to report.
/// Other bad rows stay bad (the import skips and reports them).
pub fn keep_as_stored(
    rows: Vec<ImportRow>,
    named: &HashMap<u64, String>,
    owners: &[Owner],
) -> (Vec<ImportRow>, Vec<RowProblem>) {
    let managed: HashMap<String, &Owner> = owners
        .iter()
        .filter(|o| o.source == OwnerSource::Directory && !o.disabled)
        .map(|o| (o.username.to_ascii_lowercase(), o))
        .collect();
    let mut problems = Vec::new();
    let rows = rows
        .into_iter()
        .map(|row| {
            let stored = named
                .get(&row.line)
                .and_then(|u| managed.get(&u.to_ascii_lowercase()));
            match (row.owner, stored) {
                (Err(message), Some(o)) => {
                    problems.push(RowProblem {
                        line: row.line,
                        message: format!("{message} (kept as it was)"),
                    });
                    ImportRow {
                        line: row.line,
                        owner: Ok(NewOwner {
                            username: o.username.clone(),
                            display_name: o.display_name.clone(),
                            email: o.email.clone(),
                            role: o.role,
                            department: o.department.clone(),
                            valid_from: o.valid_from,
                            valid_until: o.valid_until,
                        }),
                        external_id: o.external_id.clone(),
                    }
                }
                (owner, _) => ImportRow { owner, ..row },
            }
        })
        .collect();
    (rows, problems)
}

fn map_entry(
    e: &Entry,
    groups: &GroupMembers,
    m: &Mapping,
    tz: &chrono_tz::Tz,
) -> Result<NewOwner, String> {
    let username = e
        .first(&m.username)
        .ok_or_else(|| format!("no `{}` (the username)", m.username))?;
    let display_name = m
        .display_name
        .iter()
        .find_map(|a| e.first(a))
        .ok_or_else(|| format!("no display name ({})", m.display_name.join(", ")))?;
    let valid_until = match &m.contract_end {
        Some(attr) => match e.first(attr) {
            Some(v) => contract_end(v, tz).map_err(|why| format!("{attr}: {why}"))?,
            None => None,
        },
        None => None,
    };
    Ok(NewOwner {
        username: username.to_string(),
        display_name: display_name.to_string(),
        email: e.first(&m.email).map(str::to_string),
        role: role_of(e, username, groups, m),
        department: e.first(&m.department).map(str::to_string),
        valid_from: None,
        valid_until,
    })
}

/// The entry's id in the directory: the `external_id` attribute, or its DN.
fn external_id(e: &Entry, m: &Mapping) -> Result<String, String> {
    match &m.external_id {
        Some(attr) => e
            .first(attr)
            .map(str::to_string)
            .ok_or_else(|| format!("no `{attr}` (the external id)")),
        None => Ok(e.dn.clone()),
    }
}

fn role_of(e: &Entry, username: &str, groups: &GroupMembers, m: &Mapping) -> Role {
    let member_of: HashSet<String> = match m.membership {
        Membership::MemberOf => e
            .values("memberOf")
            .iter()
            .map(|g| normalize_dn(g))
            .collect(),
        Membership::GroupMember => HashSet::new(),
    };
    m.role_groups
        .iter()
        .find(|(group, _)| match m.membership {
            Membership::MemberOf => member_of.contains(group),
            Membership::GroupMember => groups.has(group, &e.dn, username),
        })
        .map_or(m.default_role, |(_, role)| *role)
}

/// A DN for comparison: lowercase, no spaces around `,` `=` and `+` (RFC 4514's separators);
/// escaped separators (`\,`) stay.
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let (mut escaped, mut after_separator, mut space) = (false, true, false);
    for c in dn.trim().chars() {
        if escaped {
            out.extend(c.to_lowercase());
            (escaped, after_separator) = (false, false);
            continue;
        }
        match c {
            ',' | '=' | '+' => {
                out.push(c);
                (after_separator, space) = (true, false);
            }
            ' ' => space = !after_separator,
            c => {
                if space {
                    out.push(' ');
                    space = false;
                }
                if c == '\\' {
                    out.push(c);
                    escaped = true;
                } else {
                    out.extend(c.to_lowercase());
                }
                after_separator = false;
            }
        }
    }
    out
}

/// 100-ns intervals between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET: i64 = 116_444_736_000_000_000;

/// The last day of access from a contract end value:
/// - `YYYY-MM-DD`: that day;
/// - GeneralizedTime (`20261031000000Z`, RFC 4517 §3.3.13): the day it falls on in `tz`;
/// - AD's `accountExpires` (FILETIME, 100-ns intervals since 1601): the instant the account
///   expires, so the last day is the one that instant ends (AD writes the midnight after
///   the day chosen); `0` and `9223372036854775807` mean never (`None`).
pub fn contract_end(value: &str, tz: &chrono_tz::Tz) -> Result<Option<NaiveDate>, String> {
    let v = value.trim();
    if v.len() == 10 && v.as_bytes().get(4) == Some(&b'-') {
        return crate::model::parse_date("contract_end", v)
            .map(Some)
            .map_err(|e| e.message);
    }
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && (v == "0" || v.len() >= 15) {
        let n: i64 = v
            .parse()
            .map_err(|_| format!("`{v}` is not an accountExpires value"))?;
        if n == 0 || n == i64::MAX {
            return Ok(None);
        }
        let unix_100ns = n - FILETIME_UNIX_OFFSET;
        let at = DateTime::<Utc>::from_timestamp(
            unix_100ns.div_euclid(10_000_000),
            (unix_100ns.rem_euclid(10_000_000) * 100) as u32,
        )
        .ok_or_else(|| format!("`{v}` is not an accountExpires value"))?;
        let last = at - chrono::Duration::nanoseconds(1);
        return Ok(Some(last.with_timezone(tz).date_naive()));
    }
    generalized_time(v)
        .map(|at| Some(at.with_timezone(tz).date_naive()))
        .ok_or_else(|| {
            format!(
                "`{v}` is not a date (YYYY-MM-DD), a GeneralizedTime (YYYYMMDDHHMMSSZ) or an accountExpires value"
            )
        })
}

/// RFC 4517 §3.3.13: `YYYYMMDDHH[MM[SS]][(.|,)fraction](Z|+hh[mm]|-hh[mm])`.
fn generalized_time(v: &str) -> Option<DateTime<Utc>> {
    let split = v.find(['Z', 'z', '+', '-'])?;
    let (main, zone) = v.split_at(split);
    let main = main.split(['.', ',']).next()?;
    if main.len() < 10 || main.len() % 2 != 0 || !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| main.get(r).and_then(|s| s.parse::<u32>().ok());
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(4..6)?, num(6..8)?)?;
    let time = date.and_hms_opt(
        num(8..10)?,
        num(10..12).unwrap_or(0),
        num(12..14).unwrap_or(0),
    )?;
    let offset_secs = match zone.as_bytes().first()? {
        b'Z' | b'z' if zone.len() == 1 => 0,
        sign @ (b'+' | b'-') => {
            let digits = &zone[1..];
            if !(digits.len() == 2 || digits.len() == 4)
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let h: i32 = digits[..2].parse().ok()?;
            let m: i32 = digits.get(2..4).map_or(Some(0), |s| s.parse().ok())?;
            let s = h * 3600 + m * 60;
            if *sign == b'-' {
                -s
            } else {
                s
            }
        }
        _ => return None,
    };
    let offset = chrono::FixedOffset::east_opt(offset_secs)?;
    offset
        .from_local_datetime(&time)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TZ: chrono_tz::Tz = chrono_tz::Europe::Amsterdam;

    fn mapping() -> Mapping {
        Mapping {
            username: "uid".into(),
            display_name: vec!["displayName".into(), "cn".into()],
            email: "mail".into(),
            department: "departmentNumber".into(),
            contract_end: Some("employeeEndDate".into()),
            external_id: Some("entryUUID".into()),
            disabled: Some(DisabledRule::Values {
                attribute: "employeeType".into(),
                values: vec!["Uit dienst".into()],
            }),
            membership: Membership::GroupMember,
            role_groups: vec![
                (
                    "cn=stagiairs,ou=groepen,dc=gemeente,dc=test".into(),
                    Role::Intern,
                ),
                (
                    "cn=inhuur,ou=groepen,dc=gemeente,dc=test".into(),
                    Role::Contractor,
                ),
            ],
            default_role: Role::Staff,
        }
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn person(uid: &str) -> Entry {
        Entry::new(
            &format!("uid={uid},ou=Mensen,dc=gemeente,dc=test"),
            [
                ("uid", vec![uid]),
                ("cn", vec!["Common Name"]),
                ("entryUUID", vec!["6f1d2c3a-0000-4000-8000-000000000001"]),
            ],
        )
    }

    #[test]
    fn an_entry_becomes_an_owner_with_its_role_from_a_group() {
        let mut e = person("j.jansen");
        e.attrs
            .insert("displayname".into(), vec!["Jan Jansen".into()]);
        e.attrs
            .insert("mail".into(), vec!["j.jansen@gemeente.test".into()]);
        e.attrs
            .insert("departmentnumber".into(), vec!["Burgerzaken".into()]);
        e.attrs
            .insert("employeeenddate".into(), vec!["2027-01-31".into()]);
        let mut groups = GroupMembers::default();
        groups.add_group(
            "cn=Stagiairs, ou=Groepen, dc=gemeente, dc=test",
            &Entry::new(
                "cn=Stagiairs,ou=Groepen,dc=gemeente,dc=test",
                [(
                    "member",
                    vec!["UID=j.jansen, OU=Mensen,DC=gemeente,DC=test"],
                )],
            ),
        );
        let out = map_entries(&[e], &groups, &mapping(), &TZ);
        assert!(out.disabled.is_empty());
        let owner = out.rows[0].owner.clone().unwrap();
        assert_eq!(out.rows[0].line, 1);
        assert_eq!(owner.username, "j.jansen");
        assert_eq!(owner.display_name, "Jan Jansen");
        assert_eq!(owner.email.as_deref(), Some("j.jansen@gemeente.test"));
        assert_eq!(owner.department.as_deref(), Some("Burgerzaken"));
        assert_eq!(owner.role, Role::Intern);
        assert_eq!(owner.valid_until, Some(date("2027-01-31")));
        assert_eq!(
            out.rows[0].external_id.as_deref(),
            Some("6f1d2c3a-0000-4000-8000-000000000001")
        );
    }

    #[test]
    fn the_first_listed_group_wins_and_no_group_gives_the_default_role() {
        let mut groups = GroupMembers::default();
        for g in ["cn=inhuur", "cn=stagiairs"] {
            groups.add_group(
                &format!("{g},ou=groepen,dc=gemeente,dc=test"),
                &Entry::new("x", [("memberUid", vec!["Both"])]),
            );
        }
        let out = map_entries(&[person("both"), person("none")], &groups, &mapping(), &TZ);
        let roles: Vec<Role> = out
            .rows
            .iter()
            .map(|r| r.owner.clone().unwrap().role)
            .collect();
        assert_eq!(roles, [Role::Intern, Role::Staff]);
        // cn is the display name when displayName is absent
        assert_eq!(
            out.rows[1].owner.clone().unwrap().display_name,
            "Common Name"
        );
    }

    #[test]
    fn member_of_on_the_user() {
        let m = Mapping {
            membership: Membership::MemberOf,
            ..mapping()
        };
        let mut e = person("p.inhuur");
        e.attrs.insert(
            "memberof".into(),
            vec![
                "CN=Alle medewerkers,OU=Groepen,DC=gemeente,DC=test".into(),
                "CN=Inhuur,OU=Groepen,DC=gemeente,DC=test".into(),
            ],
        );
        let out = map_entries(&[e], &GroupMembers::default(), &m, &TZ);
        assert_eq!(out.rows[0].owner.clone().unwrap().role, Role::Contractor);
        assert!(m.attributes().iter().any(|a| a == "memberOf"));
        assert!(!mapping().attributes().iter().any(|a| a == "memberOf"));
    }

    #[test]
    fn disabled_entries_are_left_out() {
        let mut gone = person("o.uitdienst");
        gone.attrs
            .insert("employeetype".into(), vec!["uit dienst".into()]);
        let out = map_entries(
            &[gone, person("still.here")],
            &GroupMembers::default(),
            &mapping(),
            &TZ,
        );
        assert_eq!(
            out.disabled,
            ["uid=o.uitdienst,ou=Mensen,dc=gemeente,dc=test"]
        );
        assert_eq!(out.rows.len(), 1);
        assert_eq!(out.rows[0].line, 2);

        let ad = DisabledRule::AccountControl {
            attribute: "userAccountControl".into(),
        };
        let uac = |v: &str| Entry::new("cn=x", [("userAccountControl", vec![v])]);
        assert!(ad.disables(&uac("514"))); // NORMAL_ACCOUNT | ACCOUNTDISABLE
        assert!(!ad.disables(&uac("512")));
        assert!(!ad.disables(&uac("66048"))); // DONT_EXPIRE_PASSWORD | NORMAL_ACCOUNT
        assert!(ad.disables(&uac("66050")));
        assert!(!ad.disables(&Entry::new("cn=x", [])));
        let locked = DisabledRule::Present {
            attribute: "pwdAccountLockedTime".into(),
        };
        assert!(locked.disables(&Entry::new(
            "cn=x",
            [("pwdAccountLockedTime", vec!["000001010000Z"])]
        )));
        assert!(!locked.disables(&Entry::new("cn=x", [])));
    }

    #[test]
    fn bad_entries_carry_their_dn_and_reason() {
        let mut no_name = person("x");
        no_name.attrs.remove("cn");
        let mut no_uid = person("y");
        no_uid.attrs.remove("uid");
        let mut bad_date = person("z");
        bad_date
            .attrs
            .insert("employeeenddate".into(), vec!["31-01-2027".into()]);
        let out = map_entries(
            &[no_name, no_uid, bad_date],
            &GroupMembers::default(),
            &mapping(),
            &TZ,
        );
        let errors: Vec<String> = out
            .rows
            .iter()
            .map(|r| r.owner.clone().unwrap_err())
            .collect();
        assert!(
            errors[0].starts_with("uid=x,ou=Mensen") && errors[0].contains("no display name"),
            "{errors:?}"
        );
        assert!(errors[1].contains("no `uid`"), "{errors:?}");
        assert!(
            errors[2].contains("employeeEndDate: `31-01-2027` is not a date"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_bad_entry_of_a_managed_owner_keeps_them_as_stored() {
        let stored = |username: &str, source: OwnerSource, disabled: bool| Owner {
            id: uuid::Uuid::nil(),
            username: username.into(),
            display_name: format!("Stored {username}"),
            email: None,
            role: Role::Intern,
            department: None,
            valid_from: None,
            valid_until: Some(date("2027-01-31")),
            disabled,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            source,
            external_id: Some(format!("id-{username}")),
            disabled_reason: None,
            disabled_at: None,
            disabled_by_source: None,
            erased_at: None,
        };
        let owners = [
            stored("s.stagiair", OwnerSource::Directory, false),
            stored("m.handmatig", OwnerSource::Manual, false),
            stored("o.oud", OwnerSource::Directory, true),
        ];
        let mut bad = person("S.Stagiair");
        bad.attrs
            .insert("employeeenddate".into(), vec!["morgen".into()]);
        let mut manual = person("m.handmatig");
        manual.attrs.remove("cn");
        let mut old = person("o.oud");
        old.attrs.remove("cn");
        let mut nameless = person("x");
        nameless.attrs.remove("uid");
        let out = map_entries(
            &[bad, manual, old, nameless, person("ok")],
            &GroupMembers::default(),
            &mapping(),
            &TZ,
        );
        assert_eq!(out.named.len(), 3);
        let (rows, problems) = keep_as_stored(out.rows, &out.named, &owners);
        let kept = rows[0].owner.clone().unwrap();
        assert_eq!(kept.username, "s.stagiair");
        assert_eq!(kept.display_name, "Stored s.stagiair");
        assert_eq!(kept.valid_until, Some(date("2027-01-31")));
        assert_eq!(rows[0].external_id.as_deref(), Some("id-s.stagiair"));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 1);
        assert!(
            problems[0].message.contains("`morgen` is not a date"),
            "{problems:?}"
        );
        // not the directory's, disabled, or without a username: bad rows still
        assert!(rows[1].owner.is_err() && rows[2].owner.is_err() && rows[3].owner.is_err());
        assert_eq!(rows[4].owner.clone().unwrap().username, "ok");
    }

    #[test]
    fn the_dn_is_the_external_id_unless_an_attribute_is_named() {
        let m = Mapping {
            external_id: None,
            ..mapping()
        };
        let out = map_entries(&[person("a")], &GroupMembers::default(), &m, &TZ);
        assert_eq!(
            out.rows[0].external_id.as_deref(),
            Some("uid=a,ou=Mensen,dc=gemeente,dc=test")
        );
    }

    #[test]
    fn contract_end_in_each_spelling() {
        assert_eq!(
            contract_end("2026-10-31", &TZ),
            Ok(Some(date("2026-10-31")))
        );
        // AD "end of 31-10-2026" in Amsterdam: accountExpires is 2026-11-01 00:00 CET
        // = 2026-10-31T23:00:00Z
        let at = DateTime::parse_from_rfc3339("2026-10-31T23:00:00Z").unwrap();
        let filetime = at.timestamp() * 10_000_000 + FILETIME_UNIX_OFFSET;
        assert_eq!(
            contract_end(&filetime.to_string(), &TZ),
            Ok(Some(date("2026-10-31")))
        );
        assert_eq!(contract_end("0", &TZ), Ok(None));
        assert_eq!(contract_end("9223372036854775807", &TZ), Ok(None));
        for (gt, day) in [
            ("20261031000000Z", "2026-10-31"),
            ("20261031235959.0Z", "2026-11-01"), // 00:59:59 in Amsterdam
            ("2026103112Z", "2026-10-31"),
            ("20261031230000-0100", "2026-11-01"),
            ("202610312300+01", "2026-10-31"),
        ] {
            assert_eq!(contract_end(gt, &TZ), Ok(Some(date(day))), "{gt}");
        }
        for bad in [
            "",
            "tomorrow",
            "2026-13-01",
            "20261331000000Z",
            "20261031",
            "123",
        ] {
            assert!(contract_end(bad, &TZ).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_compare_without_case_and_separator_spaces() {
        assert_eq!(
            normalize_dn(" CN=Stagiairs , OU=Groepen,  DC=gemeente,DC=test "),
            "cn=stagiairs,ou=groepen,dc=gemeente,dc=test"
        );
        assert_eq!(
            normalize_dn("cn=Jansen\\, Jan,ou=X"),
            "cn=jansen\\, jan,ou=x"
        );
        assert_eq!(normalize_dn("cn=Jan  de Vries"), "cn=jan de vries");
    }
}
