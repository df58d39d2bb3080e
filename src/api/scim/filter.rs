//! SCIM filters and attribute paths (RFC 7644 §3.4.2.2, §3.5.2): parsed into a [`Filter`],
//! evaluated against a resource as its JSON. Pure: no registry, no clock.
//!
//! Attribute names and keywords are case-insensitive; string comparisons too, except for
//! the case-exact attributes `id` and `externalId` (RFC 7643 §4.1, §3.1). An attribute
//! holding several values matches when one of them does; a complex one without a
//! sub-attribute is compared by its `value` (`emails co "@example.org"`).

use std::cmp::Ordering;

use serde_json::Value;

use super::error::{ScimError, ScimType};
use super::schema::{CORE_USER, EXTENSION_URNS};

/// An attribute path: `[urn:]name[.sub]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN when the path names one, as written; `None` for the core schema.
    pub schema: Option<String>,
    /// The attribute.
    pub name: String,
    /// Its sub-attribute.
    pub sub: Option<String>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// contains
    Co,
    /// starts with
    Sw,
    /// ends with
    Ew,
    /// greater than
    Gt,
    /// greater than or equal
    Ge,
    /// less than
    Lt,
    /// less than or equal
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<CompareOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attr op value`
    Compare(AttrPath, CompareOp, Value),
    /// `attr pr`
    Present(AttrPath),
    /// `a and b`
    And(Box<Filter>, Box<Filter>),
    /// `a or b`
    Or(Box<Filter>, Box<Filter>),
    /// `not (a)`
    Not(Box<Filter>),
    /// `attr[filter]`: one value of a multi-valued attribute matches `filter`.
    ValuePath(AttrPath, Box<Filter>),
}

/// A PATCH path: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`, or a whole
/// extension schema (`urn:...:enterprise:2.0:User`).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (its `sub` set for `attr.sub`); for a whole extension, `name` is empty
    /// and `schema` is set.
    pub attr: AttrPath,
    /// The value filter of `attr[filter]`.
    pub filter: Option<Filter>,
    /// The sub-attribute after `]`.
    pub sub_after_filter: Option<String>,
}

fn invalid_filter(detail: impl Into<String>) -> ScimError {
    ScimError::bad(ScimType::InvalidFilter, detail)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Str(String),
    Word(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, ScimError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenBracket,
                    _ => Token::CloseBracket,
                });
            }
            '"' => {
                // a JSON string: find its end, honouring escapes, and let serde_json read it
                chars.next();
                let mut escaped = false;
                let mut end = None;
                for (j, c) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        end = Some(j);
                        break;
                    }
                }
                let end = end.ok_or_else(|| invalid_filter("a string is not closed with \""))?;
                let s: String = serde_json::from_str(&text[i..=end])
                    .map_err(|e| invalid_filter(format!("a bad string: {e}")))?;
                tokens.push(Token::Str(s));
            }
            _ => {
                let mut end = text.len();
                while let Some(&(j, c)) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"') {
                        end = j;
                        break;
                    }
                    chars.next();
                }
                tokens.push(Token::Word(text[i..end].to_string()));
            }
        }
    }
    Ok(tokens)
}

/// Reads `[urn:]name[.sub]`.
pub fn parse_attr_path(word: &str) -> Result<AttrPath, ScimError> {
    let bad = || {
        invalid_filter(format!(
            "`{word}` is not an attribute path ([urn:]name[.sub])"
        ))
    };
    let (schema, rest) = split_schema(word);
    let (name, sub) = match rest.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    let is_name = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    if !is_name(name) || sub.is_some_and(|s| !is_name(s)) {
        return Err(bad());
    }
    Ok(AttrPath {
        schema: schema.map(str::to_string),
        name: name.to_string(),
        sub: sub.map(str::to_string),
    })
}

/// Splits a known schema URN (or, failing that, everything up to the last `:`) off an
/// attribute path. The core User URN counts as no schema.
fn split_schema(word: &str) -> (Option<&str>, &str) {
    if !word
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        return (None, word);
    }
    let known = std::iter::once(CORE_USER).chain(EXTENSION_URNS.iter().copied());
    for urn in known {
        // byte offsets of an ASCII URN: `get` keeps a multi-byte character from being cut
        let head = word.get(..urn.len());
        let rest = word.get(urn.len() + 1..);
        if let (Some(head), Some(rest)) = (head, rest) {
            if head.eq_ignore_ascii_case(urn) && word.as_bytes().get(urn.len()) == Some(&b':') {
                let schema = (!urn.eq_ignore_ascii_case(CORE_USER)).then_some(urn);
                return (schema, rest);
            }
        }
    }
    match word.rsplit_once(':') {
        Some((urn, rest)) => (Some(urn), rest),
        None => (None, word),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

/// Filters nest at most this deep (a bound on recursion for a hostile query string).
const MAX_DEPTH: usize = 16;

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> Result<Filter, ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(invalid_filter("the filter nests too deep"));
        }
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.at += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, ScimError> {
        if self.keyword("not") {
            self.at += 1;
            self.expect(Token::Open, "`(` after not")?;
            let inner = self.or()?;
            self.expect(Token::Close, "`)`")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(Token::Close, "`)`")?;
            return Ok(inner);
        }
        let path = match self.next() {
            Some(Token::Word(w)) => parse_attr_path(&w)?,
            other => {
                return Err(invalid_filter(format!(
                    "expected an attribute, found {}",
                    show(other.as_ref())
                )))
            }
        };
        if self.peek() == Some(&Token::OpenBracket) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(Token::CloseBracket, "`]`")?;
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        let op = match self.next() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("pr") => {
                return Ok(Filter::Present(path))
            }
            Some(Token::Word(w)) => CompareOp::parse(&w).ok_or_else(|| {
                invalid_filter(format!(
                    "`{w}` is not an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"
                ))
            })?,
            other => {
                return Err(invalid_filter(format!(
                    "expected an operator, found {}",
                    show(other.as_ref())
                )))
            }
        };
        let value = match self.next() {
            Some(Token::Str(s)) => Value::String(s),
            Some(Token::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => serde_json::from_str::<serde_json::Number>(&w)
                    .map(Value::Number)
                    .map_err(|_| {
                        invalid_filter(format!(
                            "`{w}` is not a value: quote a string (\"...\"), or use true, false, null or a number"
                        ))
                    })?,
            },
            other => return Err(invalid_filter(format!("expected a value, found {}", show(other.as_ref())))),
        };
        Ok(Filter::Compare(path, op, value))
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), ScimError> {
        match self.next() {
            Some(t) if t == token => Ok(()),
            other => Err(invalid_filter(format!(
                "expected {what}, found {}",
                show(other.as_ref())
            ))),
        }
    }
}

fn show(token: Option<&Token>) -> String {
    match token {
        None => "the end".into(),
        Some(Token::Open) => "`(`".into(),
        Some(Token::Close) => "`)`".into(),
        Some(Token::OpenBracket) => "`[`".into(),
        Some(Token::CloseBracket) => "`]`".into(),
        Some(Token::Str(s)) => format!("\"{s}\""),
        Some(Token::Word(w)) => format!("`{w}`"),
    }
}

/// The longest filter read.
const MAX_FILTER: usize = 2048;

/// Reads a filter (`userName eq "j.devries"`).
pub fn parse_filter(text: &str) -> Result<Filter, ScimError> {
    if text.len() > MAX_FILTER {
        return Err(invalid_filter(format!(
            "longer than {MAX_FILTER} characters"
        )));
    }
    let mut p = Parser {
        tokens: tokenize(text)?,
        at: 0,
        depth: 0,
    };
    if p.tokens.is_empty() {
        return Err(invalid_filter("the filter is empty"));
    }
    let f = p.or()?;
    if p.at < p.tokens.len() {
        return Err(invalid_filter(format!(
            "unexpected {} after the filter",
            show(p.peek())
        )));
    }
    Ok(f)
}

/// Reads a PATCH path. Errors are `invalidPath`.
pub fn parse_patch_path(text: &str) -> Result<PatchPath, ScimError> {
    let as_path_error = |e: ScimError| {
        ScimError::bad(
            ScimType::InvalidPath,
            format!("path `{text}`: {}", e.detail),
        )
    };
    let text = text.trim();
    if let Some(urn) = EXTENSION_URNS.iter().find(|u| u.eq_ignore_ascii_case(text)) {
        return Ok(PatchPath {
            attr: AttrPath {
                schema: Some((*urn).to_string()),
                name: String::new(),
                sub: None,
            },
            filter: None,
            sub_after_filter: None,
        });
    }
    let Some(open) = text.find('[') else {
        return Ok(PatchPath {
            attr: parse_attr_path(text).map_err(as_path_error)?,
            filter: None,
            sub_after_filter: None,
        });
    };
    let close = text.rfind(']').filter(|c| *c > open).ok_or_else(|| {
        ScimError::bad(
            ScimType::InvalidPath,
            format!("path `{text}`: `[` without `]`"),
        )
    })?;
    let attr = parse_attr_path(&text[..open]).map_err(as_path_error)?;
    if attr.sub.is_some() {
        return Err(ScimError::bad(
            ScimType::InvalidPath,
            format!("path `{text}`: a filter applies to an attribute, not a sub-attribute"),
        ));
    }
    let filter = parse_filter(&text[open + 1..close]).map_err(as_path_error)?;
    let after = &text[close + 1..];
    let sub_after_filter = match after {
        "" => None,
        s => match s.strip_prefix('.') {
            Some(sub)
                if parse_attr_path(sub).is_ok_and(|p| p.sub.is_none() && p.schema.is_none()) =>
            {
                Some(sub.to_string())
            }
            _ => {
                return Err(ScimError::bad(
                    ScimType::InvalidPath,
                    format!("path `{text}`: `{s}` after `]` is not `.subAttribute`"),
                ))
            }
        },
    };
    Ok(PatchPath {
        attr,
        filter: Some(filter),
        sub_after_filter,
    })
}

/// A key of `object` equal to `name` ignoring case.
pub fn key_of<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a String> {
    object.keys().find(|k| k.eq_ignore_ascii_case(name))
}

/// The value of `name` in `object`, ignoring case.
pub fn get_ci<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    let map = object.as_object()?;
    key_of(map, name).and_then(|k| map.get(k))
}

/// The object an attribute path's schema points at: the resource itself for the core
/// schema, its extension object otherwise.
fn container<'a>(resource: &'a Value, schema: Option<&str>) -> Option<&'a Value> {
    match schema {
        None => Some(resource),
        Some(urn) => get_ci(resource, urn),
    }
}

/// The values an attribute path reaches in `resource` (a multi-valued attribute gives
/// each; a complex multi-valued one without a sub-attribute, each `value`).
fn values<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let Some(attr) =
        container(resource, path.schema.as_deref()).and_then(|c| get_ci(c, &path.name))
    else {
        return Vec::new();
    };
    let items: Vec<&Value> = match attr {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    items
        .into_iter()
        .filter_map(|item| match (&path.sub, item) {
            (Some(sub), item) => get_ci(item, sub),
            (None, Value::Object(_)) => get_ci(item, "value"),
            (None, item) => Some(item),
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Attributes compared case-exactly (RFC 7643: `id`, `externalId`, `meta.version`).
fn case_exact(path: &AttrPath) -> bool {
    path.schema.is_none()
        && (path.name.eq_ignore_ascii_case("id")
            || path.name.eq_ignore_ascii_case("externalId")
            || (path.name.eq_ignore_ascii_case("meta")
                && path
                    .sub
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("version"))))
}

fn compare_one(have: &Value, op: CompareOp, want: &Value, exact: bool) -> bool {
    let fold = |s: &str| {
        if exact {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    match (have, want) {
        (Value::String(h), Value::String(w)) => {
            let (h, w) = (fold(h), fold(w));
            match op {
                CompareOp::Eq => h == w,
                CompareOp::Ne => h != w,
                CompareOp::Co => h.contains(&w),
                CompareOp::Sw => h.starts_with(&w),
                CompareOp::Ew => h.ends_with(&w),
                CompareOp::Gt => h > w,
                CompareOp::Ge => h >= w,
                CompareOp::Lt => h < w,
                CompareOp::Le => h <= w,
            }
        }
        (Value::Bool(h), Value::Bool(w)) => match op {
            CompareOp::Eq => h == w,
            CompareOp::Ne => h != w,
            _ => false,
        },
        (Value::Number(h), Value::Number(w)) => {
            let ord = h
                .as_f64()
                .zip(w.as_f64())
                .and_then(|(h, w)| h.partial_cmp(&w));
            match (op, ord) {
                (CompareOp::Eq, Some(o)) => o == Ordering::Equal,
                (CompareOp::Ne, Some(o)) => o != Ordering::Equal,
                (CompareOp::Gt, Some(o)) => o == Ordering::Greater,
                (CompareOp::Ge, Some(o)) => o != Ordering::Less,
                (CompareOp::Lt, Some(o)) => o == Ordering::Less,
                (CompareOp::Le, Some(o)) => o != Ordering::Greater,
                _ => false,
            }
        }
        _ => op == CompareOp::Ne,
    }
}

impl Filter {
    /// Whether `resource` (a SCIM resource as JSON) matches.
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Filter::Compare(path, op, want) => {
                let found = values(resource, path);
                if want.is_null() {
                    // `attr eq null`: not there; `attr ne null`: there
                    return match op {
                        CompareOp::Eq => found.is_empty(),
                        CompareOp::Ne => !found.is_empty(),
                        _ => false,
                    };
                }
                let exact = case_exact(path);
                if *op == CompareOp::Ne {
                    return found.iter().all(|v| compare_one(v, *op, want, exact));
                }
                found.iter().any(|v| compare_one(v, *op, want, exact))
            }
            Filter::Present(path) => values(resource, path).iter().any(|v| match v {
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            }),
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(a) => !a.matches(resource),
            Filter::ValuePath(path, inner) => {
                let Some(attr) =
                    container(resource, path.schema.as_deref()).and_then(|c| get_ci(c, &path.name))
                else {
                    return false;
                };
                match attr {
                    Value::Array(items) => items.iter().any(|item| inner.matches(item)),
                    one => inner.matches(one),
                }
            }
        }
    }

    /// For `attr eq "v"` (or an `and` of such), the attribute values it names: what a new
    /// value of a multi-valued attribute gets when a PATCH `replace` with this filter
    /// matches none (`emails[type eq "work"].value`).
    pub fn equalities(&self) -> Option<Vec<(String, Value)>> {
        match self {
            Filter::Compare(path, CompareOp::Eq, v)
                if path.schema.is_none() && path.sub.is_none() && !v.is_null() =>
            {
                Some(vec![(path.name.clone(), v.clone())])
            }
            Filter::And(a, b) => {
                let mut all = a.equalities()?;
                all.extend(b.equalities()?);
                Some(all)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": [CORE_USER],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "AbC-1",
            "userName": "J.deVries",
            "active": true,
            "name": {"formatted": "Jan de Vries"},
            "emails": [{"value": "jan@example.org", "type": "work", "primary": true},
                       {"value": "jan@home.example", "type": "home"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Burgerzaken"},
            "meta": {"lastModified": "2026-12-02T10:00:00Z"}
        })
    }

    fn m(filter: &str) -> bool {
        parse_filter(filter).unwrap().matches(&user())
    }

    #[test]
    fn rfc_examples_parse_and_match() {
        assert!(m(r#"userName eq "j.devries""#));
        assert!(m(r#"UserName Eq "J.DEVRIES""#));
        assert!(!m(r#"userName eq "someone""#));
        assert!(m(r#"externalId eq "AbC-1""#));
        assert!(!m(r#"externalId eq "abc-1""#), "externalId is case-exact");
        assert!(m(r#"name.formatted co "de Vries""#));
        assert!(m(r#"userName sw "J""#));
        assert!(m(r#"emails co "example.org""#));
        assert!(m(r#"emails[type eq "work" and value co "@example.org"]"#));
        assert!(!m(r#"emails[type eq "other"]"#));
        assert!(m(r#"emails.type eq "home""#));
        assert!(m("title pr or active eq true"));
        assert!(!m("title pr"));
        assert!(m(r#"meta.lastModified gt "2026-01-01T00:00:00Z""#));
        assert!(m(
            r#"not (userName eq "x") and (active eq true or title pr)"#
        ));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "burgerzaken""#
        ));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "j.devries""#
        ));
        assert!(m(
            r#"userName eq "J.deVries \"x\"" or id eq "2819c223-7f76-453a-919d-413861904646""#
        ));
    }

    #[test]
    fn bad_filters_are_invalid_filter() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName eq "x"#,
            r#"userName equals "x""#,
            "userName eq bare",
            r#"(userName eq "x""#,
            r#"userName eq "x" and"#,
            r#"userName eq "x" "y""#,
            r#"emails[type eq "work""#,
            r#"1abc eq "x""#,
        ] {
            let e = parse_filter(bad).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{bad}");
        }
        let deep = format!("{}userName pr{}", "(".repeat(40), ")".repeat(40));
        assert!(parse_filter(&deep).is_err());
        assert!(parse_filter(&"a".repeat(3000)).is_err());
    }

    #[test]
    fn patch_paths() {
        let p = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr.name, "emails");
        assert_eq!(p.sub_after_filter.as_deref(), Some("value"));
        assert!(p.filter.is_some());
        let p = parse_patch_path("name.familyName").unwrap();
        assert_eq!(p.attr.sub.as_deref(), Some("familyName"));
        let p = parse_patch_path(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        )
        .unwrap();
        assert_eq!(
            p.attr.schema.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.attr.name, "department");
        let p =
            parse_patch_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User").unwrap();
        assert!(p.attr.name.is_empty());
        for bad in [
            "",
            "emails[type eq \"work\"",
            "emails[type eq \"work\"]x",
            "a b",
            "name.given.x",
        ] {
            let e = parse_patch_path(bad).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{bad}");
        }
    }

    #[test]
    fn equalities_for_a_new_value() {
        let f = parse_filter(r#"type eq "work""#).unwrap();
        assert_eq!(
            f.equalities(),
            Some(vec![("type".to_string(), json!("work"))])
        );
        assert_eq!(parse_filter(r#"type co "w""#).unwrap().equalities(), None);
    }

    /// Query strings are the client's: garbage made of filter pieces never panics, and what
    /// parses evaluates. Seeded, so a failure repeats.
    #[test]
    fn garbage_never_panics() {
        use rand::{Rng as _, SeedableRng as _};
        let pieces = [
            "userName",
            "emails",
            ".",
            "value",
            "[",
            "]",
            "(",
            ")",
            " ",
            "eq",
            "ne",
            "co",
            "pr",
            "and",
            "or",
            "not",
            "\"",
            "\\",
            "x",
            "1",
            "-2.5e3",
            "true",
            "null",
            "urn:a:b:c",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:",
            "é",
            "\u{0}",
            "\"\\u00e9\"",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let user = user();
        for _ in 0..20_000 {
            let n = rng.gen_range(0..24);
            let text: String = (0..n)
                .map(|_| pieces[rng.gen_range(0..pieces.len())])
                .collect();
            if let Ok(f) = parse_filter(&text) {
                let _ = f.matches(&user);
                let _ = f.equalities();
            }
            let _ = parse_patch_path(&text);
        }
    }
}
