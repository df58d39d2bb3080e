//! The API's error answer: a status and `{"error": "...", "field": "..."}`, from registry
//! refusals, bad bodies and bad query strings. Store failures are logged, never shown.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::registry::tokens::TokenError;
use crate::registry::RegistryError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What is wrong, in words.
    pub message: String,
    /// The request field it is about, when known (`macs[1]`, `reason`, `limit`).
    pub field: Option<String>,
}

impl ApiError {
    /// An error without a field.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }

    /// A 400 about one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// Names the field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 401: no token, or one that is unknown or revoked.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 500 for a failure of ours: logged here with its cause, answered without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "API request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the server log has the cause",
        )
    }

    /// Renames a registry field (the CLI's names) to the API's.
    pub fn rename_field(mut self, from: &str, to: &str) -> Self {
        if self.field.as_deref() == Some(from) {
            self.field = Some(to.to_string());
        }
        self
    }
}

/// The body of every error answer.
pub fn error_body(message: &str, field: Option<&str>) -> serde_json::Value {
    let mut body = serde_json::json!({ "error": message });
    if let Some(field) = field {
        body["field"] = serde_json::Value::from(field);
    }
    body
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(error_body(&self.message, self.field.as_deref())),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"poortwachter\""),
            );
        }
        response
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        let (status, field) = match &e {
            RegistryError::Field(f) => (StatusCode::BAD_REQUEST, Some(f.field)),
            RegistryError::OwnerExists(_) => (StatusCode::CONFLICT, Some("username")),
            RegistryError::UnknownOwner(_) => (StatusCode::NOT_FOUND, Some("owner")),
            RegistryError::UnknownDevice(_) => (StatusCode::NOT_FOUND, None),
            RegistryError::AmbiguousDevice(_) => (StatusCode::BAD_REQUEST, Some("id")),
            RegistryError::MacTaken { .. } => (StatusCode::CONFLICT, Some("macs")),
            RegistryError::DeviceLimit { .. } => (StatusCode::CONFLICT, Some("owner")),
            RegistryError::OwnerDisabled(_) => (StatusCode::CONFLICT, Some("owner")),
            RegistryError::OwnerExpired { .. } => (StatusCode::CONFLICT, Some("valid_until")),
            RegistryError::StatusTransition { .. } => (StatusCode::CONFLICT, Some("status")),
            RegistryError::DeviceNotActive { .. } => (StatusCode::CONFLICT, Some("status")),
            RegistryError::ImportRejected(_) => (StatusCode::BAD_REQUEST, None),
            RegistryError::OwnerHasDevices { .. } => (StatusCode::CONFLICT, Some("username")),
            RegistryError::DeviceCertificateValid { .. } => {
                (StatusCode::CONFLICT, Some("certificate"))
            }
            RegistryError::TooManyMissing { .. } => (StatusCode::CONFLICT, None),
            RegistryError::OwnerActive(_) => (StatusCode::CONFLICT, Some("username")),
            _ => return ApiError::internal(&e),
        };
        ApiError {
            status,
            message,
            field: field.map(str::to_string),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Registry(r) => r.into(),
            TokenError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string()).with_field("name")
            }
            TokenError::Unknown(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        }
    }
}

impl From<crate::model::FieldError> for ApiError {
    fn from(e: crate::model::FieldError) -> Self {
        ApiError::field(e.field, e.message)
    }
}
