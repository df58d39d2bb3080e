//! Reading a request: a JSON body (content type, size limit, every field named in errors,
//! unknown fields refused) and a query string, answering [`ApiError`]s instead of axum's text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body of type `T`. A request with no body and no content type reads as `{}`, so
/// that a required field is reported by name and actions without fields need no body.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).map(|v| {
            v.to_str()
                .map(|s| s.to_ascii_lowercase())
                .unwrap_or_default()
        });
        let is_json = content_type.as_deref().map(|ct| {
            let essence = ct.split(';').next().unwrap_or("").trim();
            essence == "application/json" || essence.ends_with("+json")
        });
        if is_json == Some(false) {
            return Err(unsupported_type());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the body is larger than this server accepts (api.max_body)",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "the body could not be read")
            }
        })?;
        let bytes: &[u8] = if bytes.is_empty() && is_json.is_none() {
            b"{}"
        } else if is_json.is_none() {
            return Err(unsupported_type());
        } else {
            &bytes
        };
        // serde reads a struct from an array too; every body of this API is an object
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed JSON: the body must be a JSON object",
            ));
        }
        parse_json(bytes).map(JsonBody)
    }
}

fn unsupported_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "send the body as JSON (Content-Type: application/json)",
    )
}

/// Deserializes a JSON document, naming the field of the first problem: its path for a
/// wrong value (`macs[1]`), the field itself when it is missing or unknown.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = without_position(&inner.to_string());
        // serde_json reports a value of the wrong JSON kind for an enum as a syntax error:
        // with a path it is about that field
        let at_root = path == "." || path.is_empty();
        if inner.is_eof() || (inner.is_syntax() && at_root) {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("malformed JSON: {message}"),
            );
        }
        let field = field_of(&path, &message);
        let message = if inner.is_syntax() {
            "not a valid value for this field".to_string()
        } else {
            message
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message,
            field,
        }
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON: {}", without_position(&e.to_string())),
        )
    })?;
    Ok(value)
}

/// The field a serde message is about: a missing or unknown field is named in backquotes
/// inside the message, with the path of its parent; any other error's path is the field.
fn field_of(path: &str, message: &str) -> Option<String> {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    let parent = if path == "." || path.is_empty() {
        None
    } else {
        Some(path)
    };
    match (parent, named) {
        (Some(parent), Some(name)) if !parent.ends_with(name) => Some(format!("{parent}.{name}")),
        (Some(parent), _) => Some(parent.to_string()),
        (None, Some(name)) => Some(name.to_string()),
        (None, None) => None,
    }
}

/// serde_json appends " at line L column C": noise in an API answer.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Query parameters of type `T`; a bad one is a 400 that names it.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(rejection) => {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text)
                    .to_string();
                let (path, message) = match detail.split_once(": ") {
                    Some((p, m)) if !p.contains(' ') => (p.to_string(), m.to_string()),
                    _ => (".".to_string(), detail.clone()),
                };
                Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    field: field_of(&path, &message),
                    message: format!("bad query parameter: {message}"),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        owner: String,
        macs: Vec<String>,
        #[serde(default)]
        count: Option<u32>,
    }

    fn field(json: &str) -> Option<String> {
        parse_json::<Body>(json.as_bytes()).unwrap_err().field
    }

    #[test]
    fn names_the_field() {
        assert_eq!(field(r#"{"macs": []}"#).as_deref(), Some("owner"));
        assert_eq!(
            field(r#"{"owner": 1, "macs": []}"#).as_deref(),
            Some("owner")
        );
        assert_eq!(
            field(r#"{"owner": "a", "macs": ["x", 2]}"#).as_deref(),
            Some("macs[1]")
        );
        assert_eq!(
            field(r#"{"owner": "a", "macs": [], "colour": 1}"#).as_deref(),
            Some("colour")
        );
        let e = parse_json::<Body>(b"{\"owner\": ").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.starts_with("malformed JSON"), "{}", e.message);
        assert!(parse_json::<Body>(br#"{"owner": "a", "macs": []} x"#).is_err());
        assert!(parse_json::<Body>(br#"{"owner": "a", "macs": []}"#).is_ok());
    }
}
