//! The service-desk console (ICT and the service desk) in the browser: server-rendered pages
//! (maud, checked at compile time), every asset embedded, no script at all, Dutch first.
//!
//! Safety: logins in an HttpOnly, Secure, SameSite=Strict cookie ([`session`]), a CSRF token
//! in every form checked before anything is changed, a Content-Security-Policy that allows
//! only our own stylesheet (no script, no inline style, no frames), failed logins limited per
//! username and per address, idle and absolute timeouts. Every change goes through
//! [`Registry`] as the CLI and the API do, audited as `web:<user>`. The roles are the API's:
//! the service desk reads, ICT changes.

mod chart;
mod console;
mod downloads;
mod layout;
mod manage;
mod portal;
pub mod session;
pub mod text;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tracing::Instrument as _;

use crate::api::{Api, ApiStartError};
use crate::config::Config;
use crate::lang::Lang;
use crate::registry::{Registry, Rules, Store};

pub use session::{Role, Session, Sessions};

/// What every page handler shares.
#[derive(Clone)]
pub struct WebState {
    registry: Registry,
    config: Arc<Config>,
    sessions: Arc<Sessions>,
    downloads: Arc<downloads::Downloads>,
}

impl WebState {
    /// The state over a registry, with sessions under the config's limits.
    pub fn new(config: Arc<Config>, registry: Registry) -> WebState {
        let web = &config.web;
        let limits = session::SessionLimits {
            idle: chrono::Duration::from_std(web.session_idle.0)
                .unwrap_or(chrono::Duration::minutes(30)),
            lifetime: chrono::Duration::from_std(web.session_lifetime.0)
                .unwrap_or(chrono::Duration::hours(12)),
            max: web.max_sessions,
            failures: web.login_failures,
            window: chrono::Duration::from_std(web.login_window.0)
                .unwrap_or(chrono::Duration::minutes(15)),
        };
        WebState {
            registry,
            config,
            sessions: Arc::new(Sessions::new(limits)),
            downloads: Arc::new(downloads::Downloads::default()),
        }
    }
}

/// The console's routes.
pub fn console_router(state: WebState) -> Router {
    console::routes()
        .layer(middleware::from_fn(observe))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The headers every answer carries: no script, no inline style, no framing, no sniffing,
/// no referrer; pages are not cached (they show personal data).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// One span per request, as the API has.
async fn observe(req: Request, next: Next) -> Response {
    let client = req.extensions().get::<crate::api::Peer>().map(|p| p.0);
    let span = tracing::info_span!(
        "web",
        client_addr = client.map(tracing::field::display),
        method = %req.method(),
        path = %req.uri().path(),
        user = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    async move {
        let response = next.run(req).await;
        let status = response.status();
        tracing::Span::current().record("status", status.as_u16());
        if status.is_server_error() {
            tracing::warn!("request failed");
        } else {
            tracing::debug!("request");
        }
        response
    }
    .instrument(span)
    .await
}

/// The language of a request: the `taal` cookie (the switch), else Accept-Language, else
/// Dutch.
pub fn request_lang(headers: &HeaderMap) -> Lang {
    if let Some(lang) = cookie(headers, "taal").and_then(Lang::parse) {
        return lang;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(Lang::from_accept_language)
        .unwrap_or_default()
}

/// The value of cookie `name`.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Which of the two sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// The console for ICT and the service desk (`web.listen`).
    Console,
    /// The employees' portal (`web.portal_listen`).
    Portal,
}

impl Site {
    fn addr(self, config: &Config) -> Option<SocketAddr> {
        match self {
            Site::Console => config.web.listen,
            Site::Portal => config.web.portal_listen,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Site::Console => "web console",
            Site::Portal => "web portal",
        }
    }
}

/// Starts `site` for `serve` if its address is set, with `[web]`'s TLS and `[api]`'s
/// connection limits. Stop it with [`Api::shutdown`].
pub async fn spawn(
    site: Site,
    config: &Config,
    store: Arc<dyn Store>,
) -> Result<Option<Api>, ApiStartError> {
    let Some(addr) = site.addr(config) else {
        return Ok(None);
    };
    let registry = Registry::new(
        store,
        Rules {
            max_devices_per_owner: config.policy.max_devices_per_owner,
            timezone: config.policy.timezone,
        },
    );
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ApiStartError::Bind { addr, source })?;
    serve_site(site, Arc::new(config.clone()), registry, listener).map(Some)
}

/// Serves the console on `listener`.
pub fn serve(
    config: Arc<Config>,
    registry: Registry,
    listener: std::net::TcpListener,
) -> Result<Api, ApiStartError> {
    serve_site(Site::Console, config, registry, listener)
}

/// Serves `site` on `listener`, with sessions of its own.
pub fn serve_site(
    site: Site,
    config: Arc<Config>,
    registry: Registry,
    listener: std::net::TcpListener,
) -> Result<Api, ApiStartError> {
    let addr = listener
        .local_addr()
        .map_err(|source| ApiStartError::Bind {
            addr: site
                .addr(&config)
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
            source,
        })?;
    let tls = match (&config.web.tls_cert, &config.web.tls_key) {
        (Some(cert), Some(key)) => Some(crate::api::tls_config(cert, key)?),
        _ => None,
    };
    let limits = crate::api::limits::Limits::from_config(&config.api);
    let state = WebState::new(Arc::clone(&config), registry);
    Api::serve_app(
        listener,
        addr,
        tls,
        limits,
        site.name(),
        move |_| match site {
            Site::Console => console_router(state),
            Site::Portal => portal::router(state),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_cookie_wins_over_the_browser() {
        let mut h = HeaderMap::new();
        assert_eq!(request_lang(&h), Lang::Nl);
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("en-GB,en;q=0.9"),
        );
        assert_eq!(request_lang(&h), Lang::En);
        h.insert(header::COOKIE, HeaderValue::from_static("a=b; taal=nl"));
        assert_eq!(request_lang(&h), Lang::Nl);
        assert_eq!(cookie(&h, "a"), Some("b"));
        assert_eq!(cookie(&h, "x"), None);
    }
}
