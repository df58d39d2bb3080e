//! PATCH (RFC 7644 §3.5.2): a PatchOp request read into [`PatchOperation`]s and applied to a
//! resource as its JSON. Pure: the handler renders the owner, applies, and reads the result
//! back as it reads a PUT body, so that PATCH and PUT share one set of rules.
//!
//! Read as the identity providers send it: `op` in any case (Entra ID's `Replace`), no
//! `path` with an object of attributes (Okta's `{"op": "replace", "value": {"active":
//! false}}`), `path` with a value filter (`emails[type eq "work"].value`). A `replace` whose
//! filter of equalities matches no value adds one with those attributes (Entra ID replaces
//! the work address of a user that has none).

use serde_json::{Map, Value};

use super::error::{ScimError, ScimType};
use super::filter::{key_of, parse_patch_path, PatchPath};
use super::schema::{EXTENSION_URNS, PATCH_OP};

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// add
    Add,
    /// remove
    Remove,
    /// replace
    Replace,
}

/// One operation of a PatchOp.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    /// add, remove or replace.
    pub op: Op,
    /// The target; `None`: the value is an object of attributes.
    pub path: Option<PatchPath>,
    /// The value (absent for a remove).
    pub value: Option<Value>,
}

/// At most this many operations in one PATCH.
const MAX_OPERATIONS: usize = 100;

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError::bad(ScimType::InvalidSyntax, detail)
}

/// Reads a PatchOp request body.
pub fn parse_patch(body: &Value) -> Result<Vec<PatchOperation>, ScimError> {
    let Value::Object(map) = body else {
        return Err(syntax("a PatchOp must be a JSON object"));
    };
    if let Some(schemas) = key_of(map, "schemas").and_then(|k| map.get(k)) {
        let has = schemas.as_array().is_some_and(|a| {
            a.iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP)))
        });
        if !has {
            return Err(syntax(format!("schemas must hold {PATCH_OP}")));
        }
    }
    let operations = key_of(map, "Operations")
        .and_then(|k| map.get(k))
        .ok_or_else(|| syntax("a PatchOp needs Operations"))?;
    let Some(operations) = operations.as_array() else {
        return Err(syntax("Operations must be an array"));
    };
    if operations.is_empty() {
        return Err(syntax("Operations is empty"));
    }
    if operations.len() > MAX_OPERATIONS {
        return Err(syntax(format!("more than {MAX_OPERATIONS} Operations")));
    }
    operations
        .iter()
        .enumerate()
        .map(|(i, o)| {
            parse_operation(o).map_err(|e| ScimError {
                detail: format!("Operations[{i}]: {}", e.detail),
                ..e
            })
        })
        .collect()
}

fn parse_operation(o: &Value) -> Result<PatchOperation, ScimError> {
    let Value::Object(map) = o else {
        return Err(syntax("an operation must be an object"));
    };
    let field = |name: &str| key_of(map, name).and_then(|k| map.get(k));
    let op = match field("op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") => Op::Add,
        Some("remove") => Op::Remove,
        Some("replace") => Op::Replace,
        _ => return Err(syntax("op must be add, remove or replace")),
    };
    let path = match field("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(parse_patch_path(p)?),
        Some(_) => {
            return Err(ScimError::bad(
                ScimType::InvalidPath,
                "path must be a string",
            ))
        }
    };
    let value = field("value").cloned();
    match (op, &path, &value) {
        (Op::Remove, None, _) => Err(ScimError::bad(ScimType::NoTarget, "remove needs a path")),
        (Op::Add | Op::Replace, _, None) => Err(ScimError::invalid_value(
            "value",
            "add and replace need a value",
        )),
        (Op::Add | Op::Replace, None, Some(v)) if !v.is_object() => Err(ScimError::invalid_value(
            "value",
            "without a path, the value must be an object of attributes",
        )),
        _ => Ok(PatchOperation { op, path, value }),
    }
}

/// Applies the operations in order to `resource`; all or nothing is the caller's (it works
/// on a copy). `id`, `meta` and `schemas` cannot be changed.
pub fn apply(resource: &mut Value, operations: &[PatchOperation]) -> Result<(), ScimError> {
    for (i, o) in operations.iter().enumerate() {
        apply_one(resource, o).map_err(|e| ScimError {
            detail: format!("Operations[{i}]: {}", e.detail),
            ..e
        })?;
    }
    Ok(())
}

fn apply_one(resource: &mut Value, o: &PatchOperation) -> Result<(), ScimError> {
    match &o.path {
        Some(path) => apply_at(resource, o.op, path, o.value.as_ref()),
        None => {
            // every key of the value is a path of its own
            let Some(Value::Object(attrs)) = &o.value else {
                return Err(ScimError::invalid_value(
                    "value",
                    "must be an object of attributes",
                ));
            };
            for (key, value) in attrs {
                let path = parse_patch_path(key)?;
                apply_at(resource, o.op, &path, Some(value))?;
            }
            Ok(())
        }
    }
}

/// The object (resource or extension) that `schema` names; made when `create`.
fn container<'a>(
    resource: &'a mut Value,
    schema: Option<&str>,
    create: bool,
) -> Result<Option<&'a mut Map<String, Value>>, ScimError> {
    let Value::Object(root) = resource else {
        return Err(ScimError::internal(&"a resource that is not an object"));
    };
    let Some(urn) = schema else {
        return Ok(Some(root));
    };
    if !EXTENSION_URNS.iter().any(|u| u.eq_ignore_ascii_case(urn)) {
        return Err(ScimError::bad(
            ScimType::InvalidPath,
            format!("{urn} is not a schema of this resource"),
        ));
    }
    let key = match key_of(root, urn) {
        Some(k) => k.clone(),
        None if create => {
            root.insert(urn.to_string(), Value::Object(Map::new()));
            urn.to_string()
        }
        None => return Ok(None),
    };
    match root.get_mut(&key) {
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(slot) if create => {
            *slot = Value::Object(Map::new());
            Ok(slot.as_object_mut())
        }
        _ => Ok(None),
    }
}

/// The key `name` is stored under (its spelling there, or `name`).
fn key_in(map: &Map<String, Value>, name: &str) -> String {
    key_of(map, name)
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        let key = key_in(into, k);
        into.insert(key, v.clone());
    }
}

/// Whether a value of a multi-valued attribute is marked primary (`true` or `"True"`).
fn is_primary(item: &Value) -> bool {
    let primary = item
        .as_object()
        .and_then(|m| key_of(m, "primary").and_then(|k| m.get(k)));
    match primary {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// RFC 7644 §3.5.2: a value made primary takes the mark from the others.
fn primary_wins(items: &mut [Value], winners: &[usize]) {
    if !winners
        .iter()
        .any(|i| items.get(*i).is_some_and(is_primary))
    {
        return;
    }
    for (i, item) in items.iter_mut().enumerate() {
        if !winners.contains(&i) && is_primary(item) {
            if let Value::Object(m) = item {
                let key = key_in(m, "primary");
                m.insert(key, Value::Bool(false));
            }
        }
    }
}

fn apply_at(
    resource: &mut Value,
    op: Op,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let attr = &path.attr;
    if attr.schema.is_none()
        && ["id", "meta", "schemas"]
            .iter()
            .any(|r| attr.name.eq_ignore_ascii_case(r))
    {
        return Err(ScimError::bad(
            ScimType::Mutability,
            format!("{} is read-only", attr.name),
        ));
    }
    let Some(map) = container(resource, attr.schema.as_deref(), op != Op::Remove)? else {
        return Ok(()); // removing from an extension the resource does not have
    };
    // the whole extension object
    if attr.name.is_empty() {
        match (op, value) {
            (Op::Remove, _) => map.clear(),
            (_, Some(Value::Object(v))) => merge(map, v),
            _ => {
                return Err(ScimError::invalid_value(
                    attr.schema.as_deref().unwrap_or("value"),
                    "must be an object of attributes",
                ))
            }
        }
        return Ok(());
    }
    let key = key_in(map, &attr.name);
    match (&path.filter, &attr.sub) {
        (None, None) => {
            match (op, value) {
                (Op::Remove, _) => {
                    map.remove(&key);
                }
                (Op::Add, Some(v)) => match (map.get_mut(&key), v) {
                    (Some(Value::Array(have)), more) => {
                        let more = match more {
                            Value::Array(more) => more.clone(),
                            one => vec![one.clone()],
                        };
                        let mut added = Vec::new();
                        for m in more {
                            if !have.contains(&m) {
                                have.push(m);
                                added.push(have.len() - 1);
                            }
                        }
                        primary_wins(have, &added);
                    }
                    (Some(Value::Object(have)), Value::Object(more)) => merge(have, more),
                    (_, v) => {
                        map.insert(key, v.clone());
                    }
                },
                (_, Some(v)) => match (map.get_mut(&key), v) {
                    // a complex attribute: the sub-attributes given replace theirs, the rest stay
                    (Some(Value::Object(have)), Value::Object(more)) => merge(have, more),
                    (_, v) => {
                        map.insert(key, v.clone());
                    }
                },
                (_, None) => return Err(ScimError::invalid_value("value", "missing")),
            }
            Ok(())
        }
        (None, Some(sub)) => {
            match op {
                Op::Remove => {
                    if let Some(Value::Object(inner)) = map.get_mut(&key) {
                        let sub_key = key_in(inner, sub);
                        inner.remove(&sub_key);
                    }
                }
                Op::Add | Op::Replace => {
                    let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
                    if slot.is_null() {
                        *slot = Value::Object(Map::new());
                    }
                    let Value::Object(inner) = slot else {
                        return Err(ScimError::bad(
                            ScimType::InvalidPath,
                            format!(
                                "{}.{sub}: {} holds several values; select one with a filter ({}[...].{sub})",
                                attr.name, attr.name, attr.name
                            ),
                        ));
                    };
                    let sub_key = key_in(inner, sub);
                    inner.insert(sub_key, value.cloned().unwrap_or(Value::Null));
                }
            }
            Ok(())
        }
        (Some(filter), _) => {
            let slot = map
                .entry(key.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if slot.is_null() {
                *slot = Value::Array(Vec::new());
            }
            let Value::Array(items) = slot else {
                return Err(ScimError::bad(
                    ScimType::InvalidPath,
                    format!("{} is not multi-valued; a filter does not apply", attr.name),
                ));
            };
            let sub = path.sub_after_filter.as_deref();
            let mut hits: Vec<usize> = (0..items.len())
                .filter(|i| filter.matches(&items[*i]))
                .collect();
            if op == Op::Remove {
                match sub {
                    None => {
                        let mut i = 0;
                        items.retain(|_| {
                            let keep = !hits.contains(&i);
                            i += 1;
                            keep
                        });
                    }
                    Some(sub) => {
                        for i in hits {
                            if let Some(Value::Object(item)) = items.get_mut(i) {
                                let sub_key = key_in(item, sub);
                                item.remove(&sub_key);
                            }
                        }
                    }
                }
                if items.is_empty() {
                    map.remove(&key);
                }
                return Ok(());
            }
            if hits.is_empty() {
                let Some(fields) = filter.equalities() else {
                    return Err(ScimError::bad(
                        ScimType::NoTarget,
                        format!("no value of {} matches the filter", attr.name),
                    ));
                };
                items.push(Value::Object(fields.into_iter().collect()));
                hits.push(items.len() - 1);
            }
            for &i in &hits {
                let Some(Value::Object(item)) = items.get_mut(i) else {
                    return Err(ScimError::invalid_value(
                        &attr.name,
                        "a value that is not an object",
                    ));
                };
                match (sub, value) {
                    (Some(sub), Some(v)) => {
                        let sub_key = key_in(item, sub);
                        item.insert(sub_key, v.clone());
                    }
                    (None, Some(Value::Object(v))) => merge(item, v),
                    _ => return Err(ScimError::invalid_value(
                        &attr.name,
                        "the value for a filtered path must be an object, or name a sub-attribute",
                    )),
                }
            }
            primary_wins(items, &hits);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn user() -> Value {
        json!({
            "id": "7a1e",
            "userName": "j.devries",
            "displayName": "Jan de Vries",
            "name": {"formatted": "Jan de Vries"},
            "active": true,
            "emails": [{"value": "jan@example.org", "type": "work", "primary": true}],
        })
    }

    fn patched(body: Value) -> Result<Value, ScimError> {
        let ops = parse_patch(&body)?;
        let mut u = user();
        apply(&mut u, &ops)?;
        Ok(u)
    }

    #[test]
    fn entra_id_replace_with_a_string_boolean_and_capitalised_op() {
        let u = patched(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
        }))
        .unwrap();
        // the string stays a string here; reading the user turns it into false
        assert_eq!(u["active"], "False");
    }

    #[test]
    fn okta_replace_without_a_path() {
        let u = patched(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": false}}]
        }))
        .unwrap();
        assert_eq!(u["active"], false);
    }

    #[test]
    fn entra_id_filtered_paths_and_extensions() {
        let u = patched(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "nieuw@example.org"},
                {"op": "Replace", "path": "name.familyName", "value": "Visser"},
                {"op": "Add", "path": format!("{ENTERPRISE}:department"), "value": "Burgerzaken"},
                {"op": "Add", "value": {"displayName": "Jan Visser", "name.givenName": "Jan"}}
            ]
        }))
        .unwrap();
        assert_eq!(u["emails"][0]["value"], "nieuw@example.org");
        assert_eq!(u["emails"][0]["primary"], true);
        assert_eq!(u["name"]["familyName"], "Visser");
        assert_eq!(u["name"]["givenName"], "Jan");
        assert_eq!(u["name"]["formatted"], "Jan de Vries");
        assert_eq!(u[ENTERPRISE]["department"], "Burgerzaken");
        assert_eq!(u["displayName"], "Jan Visser");
    }

    #[test]
    fn replace_with_a_filter_that_matches_nothing_adds_a_value() {
        let u = patched(json!({"Operations": [
            {"op": "replace", "path": "emails[type eq \"home\"].value", "value": "thuis@example.org"}
        ]}))
        .unwrap();
        assert_eq!(
            u["emails"][1],
            json!({"type": "home", "value": "thuis@example.org"})
        );
        let e = patched(json!({"Operations": [
            {"op": "replace", "path": "emails[value co \"zzz\"].value", "value": "a@b.nl"}
        ]}))
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::NoTarget));
    }

    #[test]
    fn a_value_made_primary_takes_the_mark_from_the_others() {
        let u = patched(json!({"Operations": [
            {"op": "add", "path": "emails", "value": [{"value": "b@example.org", "primary": true}]}
        ]}))
        .unwrap();
        assert_eq!(u["emails"][0]["primary"], false);
        assert_eq!(u["emails"][1]["primary"], true);
        let u = patched(json!({"Operations": [
            {"op": "replace", "path": "emails[type eq \"home\"]", "value": {"value": "c@example.org", "primary": "True"}}
        ]}))
        .unwrap();
        assert_eq!(u["emails"][0]["primary"], false);
        assert_eq!(u["emails"][1]["primary"], "True");
    }

    /// PatchOps are the client's: random operations on random paths never panic. Seeded.
    #[test]
    fn random_operations_never_panic() {
        use rand::{Rng as _, SeedableRng as _};
        let ops = ["add", "remove", "replace", "Replace", "move"];
        let paths = [
            "active",
            "emails",
            "emails[type eq \"work\"]",
            "emails[type eq \"work\"].value",
            "emails[value co \"@\"].primary",
            "name",
            "name.givenName",
            "displayName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "urn:poortwachter:params:scim:schemas:extension:2.0:User:validUntil",
            "meta",
            "x[",
            "emails.value",
            "",
        ];
        let values = [
            json!(null),
            json!(true),
            json!("False"),
            json!(3),
            json!([]),
            json!([{"value": "a@b.nl", "primary": true}]),
            json!({"value": "c@d.nl", "type": "work"}),
            json!({"active": false, "name.familyName": "X", "emails[type eq \"home\"].value": "h@e.nl"}),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..5_000 {
            let n = rng.gen_range(1..5);
            let operations: Vec<Value> = (0..n)
                .map(|_| {
                    let mut o = json!({"op": ops[rng.gen_range(0..ops.len())]});
                    if rng.gen_bool(0.8) {
                        o["path"] = json!(paths[rng.gen_range(0..paths.len())]);
                    }
                    if rng.gen_bool(0.8) {
                        o["value"] = values[rng.gen_range(0..values.len())].clone();
                    }
                    o
                })
                .collect();
            let body = json!({"Operations": operations});
            if let Ok(parsed) = parse_patch(&body) {
                let mut u = user();
                let _ = apply(&mut u, &parsed);
                assert!(u.is_object());
                let _ = super::super::user::read_user(&u, Some("Jan de Vries"));
            }
        }
    }

    #[test]
    fn remove() {
        let u = patched(json!({"Operations": [
            {"op": "remove", "path": "emails[type eq \"work\"]"},
            {"op": "remove", "path": "name.formatted"},
            {"op": "remove", "path": "displayName"},
            {"op": "remove", "path": format!("{ENTERPRISE}:department")},
            {"op": "remove", "path": "title"}
        ]}))
        .unwrap();
        assert!(u.get("emails").is_none());
        assert_eq!(u["name"], json!({}));
        assert!(u.get("displayName").is_none());
        assert!(u.get(ENTERPRISE).is_none());
    }

    #[test]
    fn add_to_a_multi_valued_attribute_appends() {
        let u = patched(json!({"Operations": [
            {"op": "add", "path": "emails", "value": [{"value": "b@example.org", "type": "home"}]}
        ]}))
        .unwrap();
        assert_eq!(u["emails"].as_array().unwrap().len(), 2);
        let u = patched(json!({"Operations": [
            {"op": "replace", "path": "emails", "value": [{"value": "b@example.org"}]}
        ]}))
        .unwrap();
        assert_eq!(u["emails"], json!([{"value": "b@example.org"}]));
    }

    #[test]
    fn refusals() {
        let cases = [
            (json!([]), ScimType::InvalidSyntax),
            (
                json!({"schemas": ["urn:x"], "Operations": [{"op": "add", "value": {}}]}),
                ScimType::InvalidSyntax,
            ),
            (json!({"Operations": []}), ScimType::InvalidSyntax),
            (
                json!({"Operations": [{"op": "move", "path": "a", "value": 1}]}),
                ScimType::InvalidSyntax,
            ),
            (
                json!({"Operations": [{"op": "remove"}]}),
                ScimType::NoTarget,
            ),
            (
                json!({"Operations": [{"op": "add", "path": "active"}]}),
                ScimType::InvalidValue,
            ),
            (
                json!({"Operations": [{"op": "add", "value": "x"}]}),
                ScimType::InvalidValue,
            ),
            (
                json!({"Operations": [{"op": "replace", "path": "id", "value": "x"}]}),
                ScimType::Mutability,
            ),
            (
                json!({"Operations": [{"op": "replace", "path": "meta.version", "value": "x"}]}),
                ScimType::Mutability,
            ),
            (
                json!({"Operations": [{"op": "replace", "path": "emails[type eq", "value": "x"}]}),
                ScimType::InvalidPath,
            ),
            (
                json!({"Operations": [{"op": "replace", "path": "emails.value", "value": "x"}]}),
                ScimType::InvalidPath,
            ),
            (
                json!({"Operations": [{"op": "replace", "path": "urn:example:other:department", "value": "x"}]}),
                ScimType::InvalidPath,
            ),
        ];
        for (body, want) in cases {
            let e = patched(body.clone()).unwrap_err();
            assert_eq!(e.scim_type, Some(want), "{body}: {}", e.detail);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        }
    }
}
