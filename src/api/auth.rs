//! Bearer tokens and scopes: who is calling, and whether that scope may use this route.
//!
//! helpdesk reads (GET); admin reads and writes; posture may only post posture reports;
//! scim may only use the SCIM 2.0 routes (`/scim/v2/...`), and no other scope may use them:
//! an identity provider's token provisions owners and reads nothing else, and the admin API
//! has its own routes for the same changes (least privilege: an admin token leaked from a
//! script cannot pose as the identity provider, whose changes the audit log shows as
//! `scim:<name>`).
//! No token, or an unknown or revoked one: 401 with `WWW-Authenticate: Bearer`. A known token
//! outside its scope: 403. On the SCIM routes both come as SCIM errors (RFC 7644 §3.12).

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
    /// The audit actor: `api:<name>`, or `scim:<name>` for an identity provider's token.
    pub fn actor(&self) -> String {
        match self.scope {
            TokenScope::Scim => format!("scim:{}", self.name),
            _ => format!("api:{}", self.name),
        }
    }
}

/// Routes served without a token.
pub const PUBLIC_ROUTES: &[&str] = &["/api/v1/health", "/api/v1/ready", "/api/v1/openapi.json"];

/// The one route a posture token may use (with POST).
pub const POSTURE_ROUTE: &str = "/api/v1/devices/{id}/posture";

/// Everything held about a person (AVG art. 15): for admin tokens only, though it reads.
pub const EXPORT_ROUTE: &str = "/api/v1/owners/{username}/export";

/// Where the SCIM 2.0 routes start.
pub const SCIM_PREFIX: &str = "/scim/v2/";

/// Whether `scope` may call `method` on `route`: a reading scope only reads (GET, HEAD);
/// every other method (POST, PUT, PATCH, DELETE, ...) writes.
pub fn allowed(scope: TokenScope, method: &Method, route: &str) -> bool {
    let write = !(method == Method::GET || method == Method::HEAD);
    let scim = route.starts_with(SCIM_PREFIX);
    match scope {
        TokenScope::Scim => scim,
        _ if scim => false,
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
    let scim = route.starts_with(SCIM_PREFIX);
    let refuse = |e: ApiError| -> Response {
        if scim {
            super::scim::ScimError::from(e).into_response()
        } else {
            e.into_response()
        }
    };
    let Some(presented) = presented else {
        return refuse(ApiError::unauthorized(
            "send a token: `Authorization: Bearer pw_...`",
        ));
    };
    let now = chrono::Utc::now();
    let token = match state.registry.authenticate_token(&presented, now).await {
        Ok(Some(token)) => token,
        Ok(None) => return refuse(ApiError::unauthorized("the token is unknown or revoked")),
        Err(e) => return refuse(ApiError::from(e)),
    };
    tracing::Span::current().record("token", token.name.as_str());
    if !allowed(token.scope, req.method(), &route) {
        return refuse(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token {} has scope {}, which may not {} {route}",
                token.name,
                token.scope,
                req.method()
            ),
        ));
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
        // SCIM: only the scim scope, and it nothing else
        let users = "/scim/v2/Users/{id}";
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            assert!(allowed(TokenScope::Scim, &method, users));
            assert!(allowed(TokenScope::Scim, &method, "/scim/v2/Users"));
            for other in [TokenScope::Admin, TokenScope::Helpdesk, TokenScope::Posture] {
                assert!(!allowed(other, &method, users), "{other} {method}");
            }
            assert!(!allowed(TokenScope::Scim, &method, dev));
            assert!(!allowed(TokenScope::Scim, &method, "/api/v1/owners"));
        }
        assert!(allowed(
            TokenScope::Scim,
            &Method::GET,
            "/scim/v2/ServiceProviderConfig"
        ));
        let caller = |scope| Caller {
            name: "entra".into(),
            scope,
        };
        assert_eq!(caller(TokenScope::Scim).actor(), "scim:entra");
        assert_eq!(caller(TokenScope::Admin).actor(), "api:entra");
    }
}
