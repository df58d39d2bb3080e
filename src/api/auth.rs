//! Bearer tokens and scopes: who is calling, and whether that scope may use this route.
//!
//! helpdesk reads (GET); admin reads and writes; posture may only post posture reports.
//! No token, or an unknown or revoked one: 401 with `WWW-Authenticate: Bearer`. A known token
//! outside its scope: 403.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::registry::tokens::TokenScope;

use super::error::ApiError;
use super::ApiState;

/// The token a request came with, for its handler (the actor of a change is `api:<name>`).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// Its scope.
    pub scope: TokenScope,
}

impl Caller {
    /// The audit actor.
    pub fn actor(&self) -> String {
        format!("api:{}", self.name)
    }
}

/// Routes served without a token.
pub const PUBLIC_ROUTES: &[&str] = &["/api/v1/health", "/api/v1/ready", "/api/v1/openapi.json"];

/// The one route a posture token may use (with POST).
pub const POSTURE_ROUTE: &str = "/api/v1/devices/{id}/posture";

/// Everything held about a person (AVG art. 15): for admin tokens only, though it reads.
pub const EXPORT_ROUTE: &str = "/api/v1/owners/{username}/export";

/// Whether `scope` may call `method` on `route`: a reading scope only reads (GET, HEAD);
/// every other method (POST, PUT, PATCH, DELETE, ...) writes.
pub fn allowed(scope: TokenScope, method: &Method, route: &str) -> bool {
    let write = !(method == Method::GET || method == Method::HEAD);
    match scope {
        TokenScope::Admin => true,
        TokenScope::Helpdesk => !write && route != EXPORT_ROUTE,
        TokenScope::Posture => route == POSTURE_ROUTE && method == Method::POST,
    }
}

/// Middleware on every route: authenticates, checks the scope, hands the [`Caller`] on.
pub async fn authorize(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    tracing::Span::current().record("route", route.as_str());
    if PUBLIC_ROUTES.contains(&route.as_str()) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        });
    let Some(presented) = presented else {
        return ApiError::unauthorized("send a token: `Authorization: Bearer pw_...`")
            .into_response();
    };
    let now = chrono::Utc::now();
    let token = match state.registry.authenticate_token(&presented, now).await {
        Ok(Some(token)) => token,
        Ok(None) => {
            return ApiError::unauthorized("the token is unknown or revoked").into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    tracing::Span::current().record("token", token.name.as_str());
    if !allowed(token.scope, req.method(), &route) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token {} has scope {}, which may not {} {route}",
                token.name,
                token.scope,
                req.method()
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(Caller {
        name: token.name,
        scope: token.scope,
    });
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let dev = "/api/v1/devices/{id}";
        assert!(allowed(TokenScope::Helpdesk, &Method::GET, dev));
        assert!(!allowed(TokenScope::Helpdesk, &Method::POST, dev));
        assert!(!allowed(TokenScope::Helpdesk, &Method::PATCH, dev));
        assert!(!allowed(TokenScope::Helpdesk, &Method::DELETE, dev));
        assert!(!allowed(TokenScope::Helpdesk, &Method::GET, EXPORT_ROUTE));
        assert!(allowed(TokenScope::Admin, &Method::GET, EXPORT_ROUTE));
        assert!(!allowed(TokenScope::Helpdesk, &Method::POST, POSTURE_ROUTE));
        assert!(allowed(TokenScope::Admin, &Method::POST, dev));
        assert!(allowed(TokenScope::Admin, &Method::POST, POSTURE_ROUTE));
        assert!(allowed(TokenScope::Posture, &Method::POST, POSTURE_ROUTE));
        assert!(!allowed(TokenScope::Posture, &Method::GET, dev));
        assert!(!allowed(TokenScope::Posture, &Method::POST, dev));
    }
}
