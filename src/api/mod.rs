//! The admin HTTP API: JSON under `/api/v1` on its own listener (`[api] listen`), HTTPS when
//! `api.tls_cert`/`api.tls_key` are set, bearer tokens with scopes, and an OpenAPI document
//! it serves at `/api/v1/openapi.json`.
//!
//! Every change goes through [`Registry`], so the rules, the transaction and the audit entry
//! are the CLI's; the actor is `api:<token name>`.
//!
//! Connections are bounded (`limits.rs`, `conn.rs`): at most `api.max_connections`, and
//! `api.max_connections_per_ip` from one address, the rest closed at accept; a request head
//! (and TLS handshake) within `api.header_timeout`, keep-alive idle up to `api.idle_timeout`,
//! handling within `api.request_timeout`. HTTP/1.1 only: the API is JSON for scripts and curl,
//! and HTTP/2 would bring streams and SETTINGS floods to bound as well, for no gain here.

mod auth;
mod body;
mod conn;
mod error;
mod handlers;
pub mod limits;
mod metrics;
mod openapi;
pub mod scim;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tracing::Instrument as _;

use crate::config::Config;
use crate::registry::{Registry, Rules, Store};

pub use auth::{allowed, Caller, POSTURE_ROUTE, PUBLIC_ROUTES};
pub use body::parse_json;
pub(crate) use conn::Peer;
pub use error::ApiError;
pub use metrics::Metrics;
pub use openapi::document as openapi_document;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    registry: Registry,
    config: Arc<Config>,
    metrics: Option<Arc<Metrics>>,
    conns: Arc<conn::Shared>,
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiStartError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr} (api.listen): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate or key could not be read.
    #[error("api.tls_cert / api.tls_key: {0}")]
    Pki(#[from] crate::pki::PkiError),
    /// rustls refused the certificate and key.
    #[error("api.tls_cert / api.tls_key: {0}")]
    Tls(#[from] rustls::Error),
}

/// The API's routes, over a registry, with the config's limits and CA paths.
pub fn router(config: Arc<Config>, registry: Registry) -> Router {
    router_with(config, registry, None)
}

/// The routes, with the RADIUS server's counters at `/api/v1/metrics` when given.
pub fn router_with(config: Arc<Config>, registry: Registry, metrics: Option<Metrics>) -> Router {
    let conns = conn::Shared::new(limits::Limits::from_config(&config.api));
    routes(config, registry, metrics, conns)
}

/// The routes, with the connection counters of the server that serves them.
fn routes(
    config: Arc<Config>,
    registry: Registry,
    metrics: Option<Metrics>,
    conns: Arc<conn::Shared>,
) -> Router {
    let max_body = config.api.max_body;
    let state = ApiState {
        registry,
        config,
        metrics: metrics.map(Arc::new),
        conns,
    };
    let v1 = Router::new()
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/openapi.json", get(handlers::openapi))
        .route(
            "/owners",
            get(handlers::list_owners).post(handlers::add_owner),
        )
        .route(
            "/owners/{username}",
            get(handlers::get_owner)
                .patch(handlers::edit_owner)
                .delete(handlers::delete_owner),
        )
        .route("/owners/{username}/export", get(handlers::export_owner))
        .route("/owners/{username}/erase", post(handlers::erase_owner))
        .route("/owners/{username}/disable", post(handlers::disable_owner))
        .route("/owners/{username}/enable", post(handlers::enable_owner))
        .route(
            "/devices",
            get(handlers::list_devices).post(handlers::register_device),
        )
        .route(
            "/devices/{id}",
            get(handlers::get_device)
                .patch(handlers::edit_device)
                .delete(handlers::delete_device),
        )
        .route("/devices/{id}/revoke", post(handlers::revoke_device))
        .route("/devices/{id}/lost", post(handlers::lost_device))
        .route("/devices/{id}/found", post(handlers::found_device))
        .route(
            "/devices/{id}/compliance",
            post(handlers::set_compliance).put(handlers::set_compliance),
        )
        .route(
            "/devices/{id}/certificate",
            post(handlers::issue_certificate),
        )
        .route("/devices/{id}/posture", post(handlers::post_posture))
        .route("/sessions", get(handlers::sessions))
        .route("/decisions", get(handlers::decisions))
        .route("/audit", get(handlers::audit))
        .route("/metrics", get(handlers::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ));
    let scim = scim::routes()
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .fallback(scim::not_found);
    Router::new()
        .nest("/api/v1", v1)
        .nest(scim::BASE_PATH, scim)
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

/// One span per request (client address, method, path, route, token name, status) and a
/// line at its end, and every error answer as JSON: axum's own (405 with its `Allow`, ...)
/// come as text. The token itself is never logged, only its name.
async fn observe(req: Request, next: Next) -> Response {
    let client = req.extensions().get::<conn::Peer>().map(|p| p.0);
    let span = tracing::info_span!(
        "api",
        client_addr = client.map(tracing::field::display),
        method = %req.method(),
        path = %req.uri().path(),
        route = tracing::field::Empty,
        token = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    async move {
        let method = req.method().clone();
        let scim = req.uri().path().starts_with(scim::BASE_PATH);
        let response = next.run(req).await;
        let response = json_errors(response, &method, scim);
        let status = response.status();
        tracing::Span::current().record("status", status.as_u16());
        if status.is_server_error() {
            tracing::warn!("request failed");
        } else {
            tracing::info!("request");
        }
        response
    }
    .instrument(span)
    .await
}

/// axum's own error answers (405, 413, a bad path or query) as JSON; on the SCIM routes
/// (`scim`) as SCIM errors.
fn json_errors(response: Response, method: &axum::http::Method, scim: bool) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with(scim::SCIM_MEDIA_TYPE));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("{method} is not allowed here; allowed: {allow}")
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the body is larger than this server accepts (api.max_body)".to_string()
        }
        other => other
            .canonical_reason()
            .unwrap_or("request refused")
            .to_string(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    if scim {
        let e = scim::ScimError::new(status, message);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(scim::SCIM_MEDIA_TYPE),
        );
        return (parts, e.body().to_string()).into_response();
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = error::error_body(&message, None).to_string();
    (parts, body).into_response()
}

/// The running API.
pub struct Api {
    addr: SocketAddr,
    tls: bool,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    conns: Arc<conn::Shared>,
    what: &'static str,
}

impl Api {
    /// Serves the API on `listener`: HTTPS if the config has a certificate and key.
    pub fn serve(
        config: Arc<Config>,
        registry: Registry,
        listener: std::net::TcpListener,
    ) -> Result<Api, ApiStartError> {
        Api::serve_with(config, registry, listener, None)
    }

    /// [`Api::serve`], with the RADIUS server's counters at `/api/v1/metrics`.
    pub fn serve_with(
        config: Arc<Config>,
        registry: Registry,
        listener: std::net::TcpListener,
        metrics: Option<Metrics>,
    ) -> Result<Api, ApiStartError> {
        let addr = listener
            .local_addr()
            .map_err(|source| ApiStartError::Bind {
                addr: config
                    .api
                    .listen
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                source,
            })?;
        let tls = match (&config.api.tls_cert, &config.api.tls_key) {
            (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
            _ => None,
        };
        let limits = limits::Limits::from_config(&config.api);
        Api::serve_app(listener, addr, tls, limits, "admin API", |conns| {
            routes(config, registry, metrics, conns)
        })
    }

    /// Serves the routes `app` makes (given the connection counters) on `listener`, HTTPS
    /// with `tls`, under `limits`: the one HTTP server of the API, the console and the
    /// portal. `what` names it in the log.
    pub(crate) fn serve_app(
        listener: std::net::TcpListener,
        addr: SocketAddr,
        tls: Option<axum_server::tls_rustls::RustlsConfig>,
        limits: limits::Limits,
        what: &'static str,
        app: impl FnOnce(Arc<conn::Shared>) -> Router,
    ) -> Result<Api, ApiStartError> {
        let bind_error = |source| ApiStartError::Bind { addr, source };
        let conns = conn::Shared::new(limits);
        let app = app(Arc::clone(&conns)).into_make_service();
        let handle = axum_server::Handle::new();
        let task = match tls.clone() {
            Some(tls) => {
                let server = axum_server::tls_rustls::from_tcp_rustls(listener, tls)
                    .map_err(bind_error)?
                    .http1_only()
                    .handle(handle.clone())
                    // the socket's deadline bounds the handshake already; this is a backstop
                    .map(|rustls| {
                        conn::Limited::new(rustls.handshake_timeout(limits.header), conns.clone())
                    });
                tokio::spawn(async move { server.serve(app).await })
            }
            None => {
                let server = axum_server::from_tcp(listener)
                    .map_err(bind_error)?
                    .http1_only()
                    .handle(handle.clone())
                    .map(|plain| conn::Limited::new(plain, conns.clone()));
                tokio::spawn(async move { server.serve(app).await })
            }
        };
        tracing::info!(%addr, https = tls.is_some(), "{what} listening");
        Ok(Api {
            addr,
            tls: tls.is_some(),
            handle,
            task,
            conns,
            what,
        })
    }

    /// Connections held now (under `api.max_connections`).
    pub fn open_connections(&self) -> usize {
        self.conns.caps.open()
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it speaks HTTPS.
    pub fn is_https(&self) -> bool {
        self.tls
    }

    /// Stops accepting, lets requests in flight finish (up to 10 s), and waits.
    pub async fn shutdown(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(10)));
        let what = self.what;
        match self.task.await {
            Ok(Ok(())) => tracing::info!("{what} stopped"),
            Ok(Err(e)) => tracing::warn!(error = %e, "{what} stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "{what} task failed"),
        }
    }
}

/// Starts the API for `serve` if `api.listen` is set: binds it and serves in the background
/// over the registry in `store`. Stop it with [`Api::shutdown`].
pub async fn spawn(
    config: &Config,
    store: Arc<dyn Store>,
    metrics: Option<Metrics>,
) -> Result<Option<Api>, ApiStartError> {
    let Some(addr) = config.api.listen else {
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
    Api::serve_with(Arc::new(config.clone()), registry, listener, metrics).map(Some)
}

/// A rustls server config (ring provider, TLS 1.2 and 1.3, HTTP/1.1) from PEM files.
pub(crate) fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<axum_server::tls_rustls::RustlsConfig, ApiStartError> {
    let chain = crate::pki::load_cert_chain(cert)?;
    let key = crate::pki::load_private_key(key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}
