//! The SCIM error answer (RFC 7644 §3.12): `{"schemas": [...Error], "status": "400",
//! "scimType": "invalidValue", "detail": "..."}` as `application/scim+json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::model::FieldError;
use crate::registry::RegistryError;

/// The schema URI of an error answer.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The media type of every SCIM answer (RFC 7644 §8.1).
pub const SCIM_MEDIA_TYPE: &str = "application/scim+json";

/// The `scimType` keywords of RFC 7644 §3.12 table 9 that this server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    /// A filter that cannot be read or uses what is not supported.
    InvalidFilter,
    /// A userName (or other unique value) already taken.
    Uniqueness,
    /// An attribute that may not change (`id`, `meta`, the userName of a known owner).
    Mutability,
    /// A request body that is not a SCIM resource or PatchOp.
    InvalidSyntax,
    /// A PATCH path that cannot be read.
    InvalidPath,
    /// A PATCH path whose filter matches nothing.
    NoTarget,
    /// A required value missing, or a value of the wrong kind.
    InvalidValue,
}

impl ScimType {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
        }
    }
}

/// A SCIM error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    /// HTTP status.
    pub status: StatusCode,
    /// The keyword, for a 400 or 409 that has one.
    pub scim_type: Option<ScimType>,
    /// What is wrong, in words.
    pub detail: String,
}

impl ScimError {
    /// An error without a keyword.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type: None,
            detail: detail.into(),
        }
    }

    /// A 400 with `scim_type`.
    pub fn bad(scim_type: ScimType, detail: impl Into<String>) -> Self {
        ScimError {
            status: StatusCode::BAD_REQUEST,
            scim_type: Some(scim_type),
            detail: detail.into(),
        }
    }

    /// A 400 `invalidValue` naming the attribute.
    pub fn invalid_value(attribute: &str, detail: impl std::fmt::Display) -> Self {
        ScimError::bad(ScimType::InvalidValue, format!("{attribute}: {detail}"))
    }

    /// 404 for a resource that does not exist, or that SCIM does not manage.
    pub fn not_found(id: &str) -> Self {
        ScimError::new(StatusCode::NOT_FOUND, format!("no User {id}"))
    }

    /// 500 for a failure of ours: logged with its cause, answered without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "SCIM request failed");
        ScimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the server log has the cause",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = serde_json::Value::from(t.as_str());
        }
        body
    }
}

impl std::fmt::Display for ScimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.detail)
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body().to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_MEDIA_TYPE),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"poortwachter\""),
            );
        }
        response
    }
}

/// The SCIM attribute a registry field is entered through.
fn attribute_of(field: &str) -> &'static str {
    match field {
        "username" => "userName",
        "name" => "displayName",
        "email" => "emails",
        "department" => "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "until" | "valid_until" => {
            "urn:poortwachter:params:scim:schemas:extension:2.0:User:validUntil"
        }
        "from" | "valid_from" => {
            "urn:poortwachter:params:scim:schemas:extension:2.0:User:validFrom"
        }
        "role" => "userType",
        _ => "value",
    }
}

impl From<FieldError> for ScimError {
    fn from(e: FieldError) -> Self {
        ScimError::invalid_value(attribute_of(e.field), e.message)
    }
}

impl From<RegistryError> for ScimError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Field(f) => f.into(),
            RegistryError::OwnerExists(u) => ScimError {
                status: StatusCode::CONFLICT,
                scim_type: Some(ScimType::Uniqueness),
                detail: format!("userName {u} is already in use"),
            },
            RegistryError::UnknownOwner(u) => ScimError::not_found(&u),
            RegistryError::OwnerExpired { owner, last_day } => ScimError::invalid_value(
                attribute_of("until"),
                format!("the contract of {owner} ended on {last_day}"),
            ),
            other => ScimError::internal(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_rfc_shape() {
        let e = ScimError::bad(ScimType::InvalidFilter, "no");
        let b = e.body();
        assert_eq!(b["schemas"][0], ERROR_SCHEMA);
        assert_eq!(b["status"], "400");
        assert_eq!(b["scimType"], "invalidFilter");
        assert_eq!(b["detail"], "no");
        let b = ScimError::not_found("x").body();
        assert_eq!(b["status"], "404");
        assert!(b.get("scimType").is_none());
    }

    #[test]
    fn registry_refusals_map_to_keywords() {
        let e: ScimError = RegistryError::OwnerExists("a".into()).into();
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(e.scim_type, Some(ScimType::Uniqueness));
        let e: ScimError = FieldError::new("email", "`x` is not a mail address").into();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert!(e.detail.starts_with("emails: "), "{}", e.detail);
    }
}
