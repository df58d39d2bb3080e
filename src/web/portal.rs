//! The employees' onboarding portal, on its own listener (`web.portal_listen`, in the
//! registration VLAN): an employee (staff, temp, intern, contractor) logs in with their
//! directory account, sees their devices, registers the one they are using (its MAC found
//! from the accounting session of the address they come from, or typed with help per
//! system), picks their system and downloads the bundle; the one-time password is shown once.
//! They can mark their own device lost (it is disconnected). The rules are the registry's
//! (the per-owner limit, the contract end), every change audited as `web:<username>`. Same
//! safety as the console: its own session cookie, CSRF tokens, CSP, login limits.

// a refusal is the page to answer with: an axum Response by value, as every handler returns
#![allow(clippy::result_large_err)]

use std::net::IpAddr;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{csrf_field, language_link, logout_form, notice, shell, when};
use super::session::{Role, Session};
use super::text::{texts, Texts};
use super::{cookie, request_lang, WebState};
use crate::mac::MacAddr;
use crate::model::{Device, DeviceKind, DeviceStatus, NewDevice};
use crate::pki::Platform;
use crate::registry::{Change, DeviceRef, RegistryError};

/// The portal's cookie (not the console's: browsers share cookies across ports).
pub const COOKIE: &str = "poortwachter_portaal";

/// The portal's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/language", get(language))
        .route("/static/app.css", get(stylesheet))
        .route("/register", get(register_page).post(register))
        .route("/devices/{id}/lost", get(lost_page).post(lost))
        .route("/devices/{id}/bundle", post(bundle))
        .route("/downloads/{token}", get(download))
        .fallback(not_found)
}

struct Ctx {
    t: &'static Texts,
    session: Option<Session>,
    cookie: Option<String>,
}

impl Ctx {
    fn of(state: &WebState, headers: &HeaderMap) -> Ctx {
        let t = texts(request_lang(headers));
        let cookie = cookie(headers, COOKIE).map(str::to_string);
        let session = cookie
            .as_deref()
            .and_then(|c| state.sessions.get(c, Utc::now()))
            .filter(|s| s.role == Role::Employee);
        if let Some(s) = &session {
            tracing::Span::current().record("user", s.user.as_str());
        }
        Ctx { t, session, cookie }
    }

    fn employee(&self) -> Result<&Session, Response> {
        self.session
            .as_ref()
            .ok_or_else(|| Redirect::to("/login").into_response())
    }

    fn with_csrf(&self, csrf: &str) -> Result<&Session, Response> {
        let s = self.employee()?;
        if !s.csrf_ok(csrf) {
            tracing::warn!(user = %s.user, "a portal form without its CSRF token was refused");
            return Err(self.error(StatusCode::FORBIDDEN, self.t.form_expired));
        }
        Ok(s)
    }

    fn page(&self, title: &str, here: &str, content: Markup) -> Response {
        super::console::html_page(page(self.t, title, self.session.as_ref(), here, content))
    }

    fn error(&self, status: StatusCode, text: &str) -> Response {
        let body = html! { p { a href="/" { (self.t.my_devices) } } };
        (status, self.page(text, "/", body)).into_response()
    }

    fn registry_error(&self, e: &RegistryError) -> Response {
        match e {
            RegistryError::Store(err) => {
                tracing::error!(error = %err, "the registry failed a portal request");
                self.error(StatusCode::SERVICE_UNAVAILABLE, self.t.server_error)
            }
            RegistryError::UnknownDevice(_) => self.error(StatusCode::NOT_FOUND, self.t.not_found),
            other => self.error(StatusCode::CONFLICT, &other.to_string()),
        }
    }
}

fn page(t: &Texts, title: &str, session: Option<&Session>, here: &str, content: Markup) -> Markup {
    let header = html! {
        div.who {
            @if let Some(s) = session { span { strong { (s.display_name) } } }
            (language_link(t, here))
            @if let Some(s) = session { (logout_form(t, s)) }
        }
    };
    shell(t, title, t.portal, header, content)
}

fn set_cookie(response: &mut Response, value: &str, clear: bool) {
    let v = if clear {
        format!("{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
    } else {
        format!("{COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Strict")
    };
    if let Ok(v) = HeaderValue::from_str(&v) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
}

fn peer_ip(peer: Option<Extension<crate::api::Peer>>) -> IpAddr {
    peer.map(|Extension(p)| p.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

async fn stylesheet() -> Response {
    super::console::stylesheet_response()
}

#[derive(Deserialize)]
struct LanguageQuery {
    #[serde(default)]
    to: String,
    #[serde(default)]
    back: String,
}

async fn language(Query(q): Query<LanguageQuery>) -> Response {
    super::console::language_response(&q.to, &q.back)
}

async fn not_found(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let ctx = Ctx::of(&state, &headers);
    ctx.error(StatusCode::NOT_FOUND, ctx.t.not_found)
}

// ---- login

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn login_page(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let ctx = Ctx::of(&state, &headers);
    if ctx.session.is_some() {
        return Redirect::to("/").into_response();
    }
    login_form(&ctx, None, "")
}

fn login_form(ctx: &Ctx, message: Option<&str>, username: &str) -> Response {
    let t = ctx.t;
    let body = html! {
        div.card.login {
            p { (t.portal_login_intro) }
            @if let Some(m) = message { (notice("error", m)) }
            form method="post" action="/login" {
                label for="username" { (t.username) }
                input #username type="text" name="username" value=(username) autocomplete="username" required autofocus;
                label for="password" { (t.password) }
                input #password type="password" name="password" autocomplete="current-password" required;
                p { button type="submit" { (t.login_button) } }
            }
        }
    };
    let mut r = ctx.page(t.login_title, "/login", body);
    if ctx.cookie.is_some() && ctx.session.is_none() {
        set_cookie(&mut r, "", true);
    }
    r
}

async fn login(
    State(state): State<WebState>,
    headers: HeaderMap,
    peer: Option<Extension<crate::api::Peer>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let t = ctx.t;
    let ip = peer_ip(peer);
    let now = Utc::now();
    let username = form.username.trim().to_lowercase();
    if !state.sessions.may_try(&username, ip, now) {
        tracing::warn!(%ip, user = %username, "portal login refused: too many failures");
        let mut r = login_form(&ctx, Some(t.login_locked), &username);
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return r;
    }
    let Some(directory) = state.config.directory.as_ref() else {
        return ctx.error(StatusCode::SERVICE_UNAVAILABLE, t.server_error);
    };
    let login =
        match crate::directory::ldap::authenticate(directory, &username, &form.password, &[]).await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "the directory could not check a portal login");
                return ctx.error(StatusCode::SERVICE_UNAVAILABLE, t.directory_down);
            }
        };
    let Some(login) = login else {
        state.sessions.failed(&username, ip, now);
        tracing::warn!(%ip, user = %username, "portal login failed");
        let mut r = login_form(&ctx, Some(t.login_failed), &username);
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    state.sessions.succeeded(&username);
    // the directory knows the person; the registry decides whether they may have devices
    let owner = match state.registry.owner(&login.username).await {
        Ok(o) => o,
        Err(e) => return ctx.registry_error(&e),
    };
    let today = now
        .with_timezone(&state.config.policy.timezone)
        .date_naive();
    let Some(owner) = owner.filter(|o| {
        !o.disabled
            && o.valid_until.is_none_or(|end| end >= today)
            && o.valid_from.is_none_or(|from| from <= today)
    }) else {
        tracing::warn!(user = %login.username, "a directory account that may have no devices tried the portal");
        return ctx.error(StatusCode::FORBIDDEN, t.not_an_owner);
    };
    if let Some(old) = &ctx.cookie {
        state.sessions.end(old);
    }
    let (cookie, _) =
        state
            .sessions
            .start(&owner.username, &owner.display_name, Role::Employee, now);
    tracing::info!(%ip, user = %owner.username, "logged in to the portal");
    let mut r = Redirect::to("/").into_response();
    set_cookie(&mut r, &cookie, false);
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    if let Err(r) = ctx.with_csrf(&form.csrf) {
        return r;
    }
    if let Some(c) = &ctx.cookie {
        state.sessions.end(c);
    }
    let mut r = Redirect::to("/login").into_response();
    set_cookie(&mut r, "", true);
    r
}

// ---- my devices

fn status_tag(t: &Texts, d: &Device) -> Markup {
    html! {
        @match d.status {
            DeviceStatus::Active => span.tag.ok { (t.active) },
            DeviceStatus::Lost => span.tag.warn { (t.lost) },
            DeviceStatus::Revoked => span.tag.bad { (t.revoked) },
        }
    }
}

fn platform_select(t: &Texts, chosen: Option<Platform>) -> Markup {
    html! {
        label for="os" { (t.operating_system) }
        select #os name="os" required {
            @for p in Platform::ALL {
                option value=(p.code()) selected[chosen == Some(p)] { (p.name()) }
            }
        }
    }
}

async fn home(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.employee() {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let t = ctx.t;
    let tz = state.config.policy.timezone;
    let devices = match state.registry.devices(Some(&session.user)).await {
        Ok(d) => d,
        Err(e) => return ctx.registry_error(&e),
    };
    let owner = match state.registry.owner(&session.user).await {
        Ok(o) => o,
        Err(e) => return ctx.registry_error(&e),
    };
    let body = html! {
        @if let Some(end) = owner.as_ref().and_then(|o| o.valid_until) {
            p { (t.access_ends) " " strong { (end.format("%d-%m-%Y")) } }
        }
        p { a.button href="/register" { (t.register_this) } }
        @if devices.is_empty() {
            p { (t.no_devices) }
        } @else {
            div.table-wrap { table {
                thead { tr { th { (t.label) } th { (t.mac) } th { (t.status) } th { (t.certificate_until) } th { (t.actions) } } }
                tbody {
                    @for d in &devices {
                        tr {
                            td { (d.label) }
                            td { (d.macs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                            td { (status_tag(t, d)) }
                            td { (cert_until(&state, d, &tz).await) }
                            td {
                                @if d.status == DeviceStatus::Active {
                                    form.inline method="post" action={ "/devices/" (d.id) "/bundle" } {
                                        (csrf_field(&session))
                                        (platform_select(t, None))
                                        " " button.secondary type="submit" { (t.new_certificate) }
                                    }
                                    " "
                                    a.button.danger href={ "/devices/" (d.id) "/lost" } { (t.mark_lost_own) }
                                }
                            }
                        }
                    }
                }
            } }
        }
    };
    ctx.page(t.my_devices, "/", body)
}

async fn cert_until(state: &WebState, d: &Device, tz: &chrono_tz::Tz) -> String {
    match state.registry.certificates(d.id).await {
        Ok(certs) => certs
            .iter()
            .find(|c| c.superseded_at.is_none())
            .map(|c| when(c.not_after, tz))
            .unwrap_or_else(|| "—".into()),
        Err(_) => "—".into(),
    }
}

// ---- register this device

#[derive(Deserialize, Default)]
struct RegisterForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    mac: String,
    #[serde(default)]
    os: String,
}

async fn register_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    peer: Option<Extension<crate::api::Peer>>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.employee() {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    // the device asking: the open session of the address it comes from
    let ip = peer_ip(peer).to_string();
    let found = match state.registry.open_session_by_ip(&ip).await {
        Ok(s) => s.and_then(|s| s.mac),
        Err(e) => return ctx.registry_error(&e),
    };
    let form = RegisterForm {
        mac: found.map(|m| m.to_string()).unwrap_or_default(),
        ..Default::default()
    };
    register_form(&ctx, &state, &session, &form, found.is_some(), None)
}

fn register_form(
    ctx: &Ctx,
    state: &WebState,
    session: &Session,
    form: &RegisterForm,
    mac_found: bool,
    error: Option<&str>,
) -> Response {
    let t = ctx.t;
    let chosen = Platform::parse(&form.os);
    let body = html! {
        p { (t.register_intro) " " strong { (state.config.wifi.ssid) } "." }
        @if let Some(e) = error { (notice("error", e)) }
        form.card method="post" action="/register" {
            (csrf_field(session))
            label for="label" { (t.label) }
            input #label type="text" name="label" value=(form.label) required maxlength="100" placeholder=(t.label_example);
            label for="kind" { (t.kind) }
            select #kind name="kind" {
                @for k in ["laptop", "tablet", "phone", "other"] {
                    option value=(k) selected[form.kind == k] { ((t.word)(k)) }
                }
            }
            (platform_select(t, chosen))
            label for="mac" { (t.mac) }
            @if mac_found { p.muted { (t.mac_found) } }
            input #mac type="text" name="mac" value=(form.mac) required maxlength="32" autocomplete="off" aria-describedby="mac-help";
            details #mac-help {
                summary { (t.mac_help_title) }
                ul {
                    li { (t.mac_help_windows) }
                    li { (t.mac_help_apple) }
                    li { (t.mac_help_android) }
                    li { (t.mac_help_linux) }
                }
            }
            p { button type="submit" { (t.register_button) } }
        }
    };
    ctx.page(t.register_this, "/register", body)
}

async fn register(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.with_csrf(&form.csrf) {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let t = ctx.t;
    let again = |message: &str| {
        let mut r = register_form(&ctx, &state, &session, &form, false, Some(message));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r
    };
    let Some(platform) = Platform::parse(&form.os) else {
        return again(t.choose_system);
    };
    let mac = match MacAddr::parse_device(form.mac.trim()) {
        Ok(m) => m,
        Err(e) => return again(&format!("{}: {e}", t.mac)),
    };
    let kind: DeviceKind = form.kind.parse().unwrap_or(DeviceKind::Laptop);
    let change = Change::by(session.actor());
    let device = match state
        .registry
        .register_device(
            NewDevice {
                owner: session.user.clone(),
                macs: vec![mac],
                label: form.label.trim().to_string(),
                kind,
            },
            &change,
        )
        .await
    {
        Ok(d) => d,
        Err(RegistryError::Store(e)) => {
            return ctx.registry_error(&RegistryError::Store(e));
        }
        // the registry's refusal (limit, MAC taken, a bad label) names what is wrong
        Err(e) => return again(&e.to_string()),
    };
    tracing::info!(user = %session.user, device = %device.id, %mac, "device registered on the portal");
    issue(&ctx, &state, &session, device.id, platform).await
}

/// A certificate and bundle for one of the employee's own devices, for `platform`, zipped
/// for one download; the page shows the password once and what to do next.
async fn issue(
    ctx: &Ctx,
    state: &WebState,
    session: &Session,
    device: uuid::Uuid,
    platform: Platform,
) -> Response {
    let t = ctx.t;
    let request = crate::bundle::BundleRequest {
        device: DeviceRef::Id(device),
        platforms: vec![platform],
        password: None,
    };
    let change = Change::by(session.actor());
    let issued =
        crate::bundle::issue_bundle(&state.registry, &state.config, request, &change, |files| {
            crate::pki::zip(files).map_err(|e| crate::pki::PkiError::Invalid(e.to_string()))
        })
        .await;
    let (issued, zipped) = match issued {
        Ok(x) => x,
        Err(crate::bundle::BundleError::Registry(e)) => return ctx.registry_error(&e),
        Err(e) => {
            tracing::error!(error = %e, "a bundle could not be issued on the portal");
            return ctx.error(StatusCode::SERVICE_UNAVAILABLE, t.server_error);
        }
    };
    let stem = crate::pki::file_stem(&issued.device.label, issued.device.id);
    let name = format!("{stem}-{}.zip", platform.code());
    let token = state.downloads.put(
        &session.user,
        name.clone(),
        "application/zip",
        zipped,
        Utc::now(),
    );
    tracing::info!(user = %session.user, device = %issued.device.id, serial = %issued.serial, "bundle issued on the portal");
    let body = html! {
        div.card {
            p { strong { (issued.device.label) } }
            p { (t.password_once_employee) }
            p.big { code #eenmalig-wachtwoord { (issued.password.expose()) } }
            p { a.button #download href={ "/downloads/" (token) } download=(name) { (t.download_bundle) " (" (name) ")" } }
            p { (t.reconnect) " " strong { (state.config.wifi.ssid) } "." }
            p { a href="/" { (t.my_devices) } }
        }
    };
    let mut r = ctx.page(t.bundle_ready, "/", body);
    *r.status_mut() = StatusCode::CREATED;
    r
}

#[derive(Deserialize)]
struct BundleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    os: String,
}

/// The employee's own device, or the refusal (someone else's device is not found: nothing
/// about it is told).
async fn own_device(
    ctx: &Ctx,
    state: &WebState,
    session: &Session,
    id: &str,
) -> Result<Device, Response> {
    let Ok(id) = uuid::Uuid::parse_str(id) else {
        return Err(ctx.error(StatusCode::NOT_FOUND, ctx.t.not_found));
    };
    match state.registry.device(id).await {
        Ok(Some(d)) if d.owner == session.user => Ok(d),
        Ok(_) => {
            tracing::warn!(user = %session.user, device = %id, "a portal user asked for a device not theirs");
            Err(ctx.error(StatusCode::NOT_FOUND, ctx.t.not_found))
        }
        Err(e) => Err(ctx.registry_error(&e)),
    }
}

async fn bundle(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<BundleForm>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.with_csrf(&form.csrf) {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let device = match own_device(&ctx, &state, &session, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Some(platform) = Platform::parse(&form.os) else {
        return ctx.error(StatusCode::BAD_REQUEST, ctx.t.choose_system);
    };
    issue(&ctx, &state, &session, device.id, platform).await
}

async fn lost_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.employee() {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let device = match own_device(&ctx, &state, &session, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let t = ctx.t;
    let body = html! {
        div.card {
            p { strong { (device.label) } }
            p { (t.lost_confirm) }
            form method="post" action={ "/devices/" (device.id) "/lost" } {
                (csrf_field(&session))
                button.danger type="submit" { (t.mark_lost_own) }
                " "
                a.button.secondary href="/" { (t.cancel) }
            }
        }
    };
    ctx.page(
        t.mark_lost_own,
        &format!("/devices/{}/lost", device.id),
        body,
    )
}

async fn lost(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.with_csrf(&form.csrf) {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let device = match own_device(&ctx, &state, &session, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    match state
        .registry
        .set_device_status(
            &DeviceRef::Id(device.id),
            DeviceStatus::Lost,
            Some("gemeld via het portaal".to_string()),
            &Change::by(session.actor()),
        )
        .await
    {
        Ok(_) => {
            tracing::info!(user = %session.user, device = %device.id, "device marked lost on the portal");
            Redirect::to("/").into_response()
        }
        Err(e) => ctx.registry_error(&e),
    }
}

async fn download(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let Some(session) = ctx.session.clone() else {
        return Redirect::to("/login").into_response();
    };
    let Some(d) = state.downloads.take(&token, &session.user, Utc::now()) else {
        return ctx.error(StatusCode::NOT_FOUND, ctx.t.download_gone);
    };
    super::console::download_response(d)
}

/// The portal's routes over its own state (sessions apart from the console's).
pub fn router(state: WebState) -> Router {
    routes()
        .layer(axum::middleware::from_fn(super::observe))
        .layer(axum::middleware::from_fn(super::security_headers))
        .with_state(state)
}
