//! The SCIM User as poortwachter keeps it: an [`Owner`] rendered as a User (RFC 7643 §4.1
//! with the enterprise extension and ours), and a User body read into the owner's fields.
//! Pure: the handler passes the base URL and the owner.
//!
//! | SCIM                                         | owner                                  |
//! |----------------------------------------------|----------------------------------------|
//! | `id`                                         | `id` (uuid)                            |
//! | `externalId`                                 | `external_id`                          |
//! | `userName`                                   | `username` (checked as usernames are)  |
//! | `displayName`, else `name.formatted`, else `name.givenName name.familyName` | `display_name` |
//! | `emails`: the primary one, else `work`, else the first | `email`                      |
//! | `active`                                     | not `disabled`                         |
//! | `userType`                                   | `role` (see [`role_of`])               |
//! | enterprise `department`                      | `department`                           |
//! | `urn:poortwachter:...:User` `validFrom`, `validUntil` | `valid_from`, `valid_until`   |
//!
//! Identity providers send booleans as strings too (Entra ID's `"False"`): read as booleans.

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use crate::model::{NewOwner, Owner, Role};

use super::error::ScimError;
use super::filter::get_ci;
use super::schema::{CORE_USER, ENTERPRISE_USER, POORTWACHTER_USER};

/// A User body, read: what the owner becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInput {
    /// `userName`, trimmed (checked by the registry as every username is).
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// The full name.
    pub display_name: String,
    /// The chosen mail address.
    pub email: Option<String>,
    /// `active` (absent: true).
    pub active: bool,
    /// From `userType` (absent: staff).
    pub role: Role,
    /// Enterprise `department`.
    pub department: Option<String>,
    /// Our `validFrom`.
    pub valid_from: Option<NaiveDate>,
    /// Our `validUntil`.
    pub valid_until: Option<NaiveDate>,
}

impl UserInput {
    /// The owner as the registry checks a new one ([`NewOwner::validate`]).
    pub fn new_owner(&self) -> NewOwner {
        NewOwner {
            username: self.user_name.clone(),
            display_name: self.display_name.clone(),
            email: self.email.clone(),
            role: self.role,
            department: self.department.clone(),
            valid_from: self.valid_from,
            valid_until: self.valid_until,
        }
    }
}

/// `userType` words and the role each means (any case). The first of each role is what a
/// User shows.
pub const USER_TYPES: &[(&str, Role)] = &[
    ("Employee", Role::Staff),
    ("Staff", Role::Staff),
    ("Member", Role::Staff),
    ("Medewerker", Role::Staff),
    ("Intern", Role::Intern),
    ("Stagiair", Role::Intern),
    ("Temp", Role::Temp),
    ("Temporary", Role::Temp),
    ("Uitzendkracht", Role::Temp),
    ("Contractor", Role::Contractor),
    ("External", Role::Contractor),
    ("Extern", Role::Contractor),
];

/// The role a `userType` means; absent or empty: staff.
pub fn role_of(user_type: Option<&str>) -> Result<Role, ScimError> {
    let Some(t) = user_type.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(Role::Staff);
    };
    USER_TYPES
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(t))
        .map(|(_, r)| *r)
        .ok_or_else(|| {
            ScimError::invalid_value(
                "userType",
                format!(
                    "`{t}` is not a known user type; use one of: {}",
                    USER_TYPES
                        .iter()
                        .map(|(w, _)| *w)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

/// The `userType` a role shows.
pub fn user_type(role: Role) -> &'static str {
    USER_TYPES
        .iter()
        .find(|(_, r)| *r == role)
        .map(|(w, _)| *w)
        .unwrap_or("Employee")
}

fn string_at(value: Option<&Value>, attribute: &str) -> Result<Option<String>, ScimError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Some(other) => Err(ScimError::invalid_value(
            attribute,
            format!("must be a string, not {other}"),
        )),
    }
}

/// A boolean, or its string (`"True"`, `"false"`) as Entra ID sends it.
pub fn boolean_at(value: Option<&Value>, attribute: &str) -> Result<Option<bool>, ScimError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(ScimError::invalid_value(
            attribute,
            format!("must be true or false, not {other}"),
        )),
    }
}

/// A date as `YYYY-MM-DD`, or the date of an RFC 3339 dateTime in its own offset.
fn date_at(value: Option<&Value>, attribute: &str) -> Result<Option<NaiveDate>, ScimError> {
    let Some(text) = string_at(value, attribute)? else {
        return Ok(None);
    };
    if let Ok(d) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        return Ok(Some(d));
    }
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| Some(t.date_naive()))
        .map_err(|_| {
            ScimError::invalid_value(
                attribute,
                format!("`{text}` is not a date (YYYY-MM-DD) or dateTime (RFC 3339)"),
            )
        })
}

/// The mail address of `emails`: the primary one, else the `work` one, else the first.
fn email_of(emails: Option<&Value>) -> Result<Option<String>, ScimError> {
    let items = match emails {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ScimError::invalid_value("emails", "must be an array")),
    };
    for item in items {
        if !item.is_object() {
            return Err(ScimError::invalid_value(
                "emails",
                "each value must be an object",
            ));
        }
    }
    let primary = items.iter().find(|e| {
        matches!(
            boolean_at(get_ci(e, "primary"), "emails.primary"),
            Ok(Some(true))
        )
    });
    let work = items.iter().find(|e| {
        get_ci(e, "type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("work"))
    });
    match primary.or(work).or(items.first()) {
        Some(e) => string_at(get_ci(e, "value"), "emails.value"),
        None => Ok(None),
    }
}

/// Reads a User body (POST, PUT, or the result of a PATCH). `previous` is the owner's
/// name before a PATCH: of the name attributes, the first that differs from it wins, so that
/// a PATCH of `name.formatted` alone is not undone by the unchanged `displayName`.
pub fn read_user(body: &Value, previous: Option<&str>) -> Result<UserInput, ScimError> {
    if !body.is_object() {
        return Err(ScimError::bad(
            super::error::ScimType::InvalidSyntax,
            "a User must be a JSON object",
        ));
    }
    let user_name = string_at(get_ci(body, "userName"), "userName")?
        .ok_or_else(|| ScimError::invalid_value("userName", "is required"))?;
    let name = get_ci(body, "name");
    if name.is_some_and(|n| !n.is_object() && !n.is_null()) {
        return Err(ScimError::invalid_value("name", "must be an object"));
    }
    let given = string_at(name.and_then(|n| get_ci(n, "givenName")), "name.givenName")?;
    let family = string_at(
        name.and_then(|n| get_ci(n, "familyName")),
        "name.familyName",
    )?;
    let joined = match (given, family) {
        (None, None) => None,
        (g, f) => Some([g, f].into_iter().flatten().collect::<Vec<_>>().join(" ")),
    };
    let candidates: Vec<String> = [
        string_at(get_ci(body, "displayName"), "displayName")?,
        string_at(name.and_then(|n| get_ci(n, "formatted")), "name.formatted")?,
        joined,
    ]
    .into_iter()
    .flatten()
    .collect();
    let display_name = previous
        .and_then(|p| candidates.iter().find(|c| c.as_str() != p))
        .or(candidates.first())
        .cloned()
        .unwrap_or_else(|| user_name.clone());
    let enterprise = get_ci(body, ENTERPRISE_USER);
    let ours = get_ci(body, POORTWACHTER_USER);
    for (urn, ext) in [(ENTERPRISE_USER, enterprise), (POORTWACHTER_USER, ours)] {
        if ext.is_some_and(|e| !e.is_object() && !e.is_null()) {
            return Err(ScimError::invalid_value(urn, "must be an object"));
        }
    }
    fn at<'a>(ext: Option<&'a Value>, name: &str) -> Option<&'a Value> {
        ext.and_then(|e| get_ci(e, name))
    }
    Ok(UserInput {
        external_id: string_at(get_ci(body, "externalId"), "externalId")?,
        email: email_of(get_ci(body, "emails"))?,
        active: boolean_at(get_ci(body, "active"), "active")?.unwrap_or(true),
        role: role_of(string_at(get_ci(body, "userType"), "userType")?.as_deref())?,
        department: string_at(
            at(enterprise, "department"),
            &format!("{ENTERPRISE_USER}:department"),
        )?,
        valid_from: date_at(
            at(ours, "validFrom"),
            &format!("{POORTWACHTER_USER}:validFrom"),
        )?,
        valid_until: date_at(
            at(ours, "validUntil"),
            &format!("{POORTWACHTER_USER}:validUntil"),
        )?,
        user_name,
        display_name,
    })
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The weak ETag of an owner's state: its last change, in microseconds.
pub fn version(owner: &Owner) -> String {
    format!("W/\"{}\"", owner.updated_at.timestamp_micros())
}

/// An owner as a User. `base` is the SCIM base URL (`https://host/scim/v2`).
pub fn render_user(owner: &Owner, base: &str) -> Value {
    let mut schemas = vec![Value::from(CORE_USER)];
    let mut user = Map::new();
    user.insert("id".into(), Value::from(owner.id.to_string()));
    if let Some(x) = &owner.external_id {
        user.insert("externalId".into(), Value::from(x.as_str()));
    }
    user.insert("userName".into(), Value::from(owner.username.as_str()));
    user.insert(
        "displayName".into(),
        Value::from(owner.display_name.as_str()),
    );
    user.insert("name".into(), json!({"formatted": owner.display_name}));
    if let Some(email) = &owner.email {
        user.insert(
            "emails".into(),
            json!([{"value": email, "type": "work", "primary": true}]),
        );
    }
    user.insert("active".into(), Value::Bool(!owner.disabled));
    user.insert("userType".into(), Value::from(user_type(owner.role)));
    if let Some(d) = &owner.department {
        schemas.push(Value::from(ENTERPRISE_USER));
        user.insert(ENTERPRISE_USER.into(), json!({"department": d}));
    }
    if owner.valid_from.is_some() || owner.valid_until.is_some() {
        schemas.push(Value::from(POORTWACHTER_USER));
        let mut ours = Map::new();
        if let Some(d) = owner.valid_from {
            ours.insert("validFrom".into(), Value::from(d.to_string()));
        }
        if let Some(d) = owner.valid_until {
            ours.insert("validUntil".into(), Value::from(d.to_string()));
        }
        user.insert(POORTWACHTER_USER.into(), Value::Object(ours));
    }
    user.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": timestamp(owner.created_at),
            "lastModified": timestamp(owner.updated_at),
            "location": format!("{base}/Users/{}", owner.id),
            "version": version(owner),
        }),
    );
    user.insert("schemas".into(), Value::Array(schemas));
    Value::Object(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_id_create_body() {
        // shaped as Microsoft's "Develop a SCIM endpoint" create-user request
        let body = json!({
            "schemas": [CORE_USER, ENTERPRISE_USER],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
            "active": true,
            "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": []
        });
        let u = read_user(&body, None).unwrap();
        assert_eq!(
            u.user_name,
            "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"
        );
        assert_eq!(u.display_name, "givenName familyName");
        assert_eq!(u.email.as_deref(), Some("Test_User_fd0ea19b@testuser.com"));
        assert_eq!(
            u.external_id.as_deref(),
            Some("0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef")
        );
        assert!(u.active);
        assert_eq!(u.role, Role::Staff);
    }

    #[test]
    fn okta_create_body() {
        let body = json!({
            "schemas": [CORE_USER],
            "userName": "test.user@okta.local",
            "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
            "displayName": "Test User",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": true
        });
        let u = read_user(&body, None).unwrap();
        assert_eq!(u.display_name, "Test User");
        assert_eq!(u.email.as_deref(), Some("test.user@okta.local"));
    }

    #[test]
    fn names_roles_dates_booleans() {
        let body = json!({"userName": "s.stagiair", "name": {"givenName": "Sara", "familyName": "Bakker"},
            "userType": "stagiair", "active": "False",
            POORTWACHTER_USER: {"validUntil": "2027-01-31T23:00:00+01:00", "validFrom": "2026-09-01"},
            ENTERPRISE_USER: {"department": "ICT"}});
        let u = read_user(&body, None).unwrap();
        assert_eq!(u.display_name, "Sara Bakker");
        assert_eq!(u.role, Role::Intern);
        assert!(!u.active);
        assert_eq!(u.valid_until, NaiveDate::from_ymd_opt(2027, 1, 31));
        assert_eq!(u.valid_from, NaiveDate::from_ymd_opt(2026, 9, 1));
        assert_eq!(u.department.as_deref(), Some("ICT"));
        // no name at all: the username
        assert_eq!(
            read_user(&json!({"userName": "x"}), None)
                .unwrap()
                .display_name,
            "x"
        );
        // after a PATCH of name.formatted, the changed name wins over the old displayName
        let patched = json!({"userName": "x", "displayName": "Old", "name": {"formatted": "New"}});
        assert_eq!(
            read_user(&patched, Some("Old")).unwrap().display_name,
            "New"
        );
        assert_eq!(read_user(&patched, None).unwrap().display_name, "Old");
    }

    #[test]
    fn bad_values_name_the_attribute() {
        for (body, attribute) in [
            (json!({}), "userName"),
            (json!({"userName": 7}), "userName"),
            (json!({"userName": "a", "active": "maybe"}), "active"),
            (json!({"userName": "a", "userType": "Guest"}), "userType"),
            (json!({"userName": "a", "emails": "a@b.nl"}), "emails"),
            (
                json!({"userName": "a", POORTWACHTER_USER: {"validUntil": "31-01-2027"}}),
                "validUntil",
            ),
            (json!({"userName": "a", "name": "Jan"}), "name"),
        ] {
            let e = read_user(&body, None).unwrap_err();
            assert_eq!(
                e.scim_type,
                Some(super::super::error::ScimType::InvalidValue),
                "{body}"
            );
            assert!(e.detail.contains(attribute), "{body}: {}", e.detail);
        }
    }

    #[test]
    fn user_types_round_trip() {
        for role in Role::ALL {
            assert_eq!(role_of(Some(user_type(*role))).unwrap(), *role);
        }
        assert_eq!(role_of(None).unwrap(), Role::Staff);
        assert_eq!(role_of(Some("")).unwrap(), Role::Staff);
    }
}
