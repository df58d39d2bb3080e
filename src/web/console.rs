//! The console's pages and actions. Each handler: who is asking (the session cookie; none:
//! to the login page), in which language, then the page; an action (POST) first checks the
//! CSRF token and the role, so that a refused post writes nothing.

// a refusal is the page to answer with: an axum Response by value, as every handler returns
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::chart;
use super::layout::{self, csrf_field, notice, page, when, when_s, Nav};
use super::session::{Role, Session, COOKIE};
use super::text::{texts, Texts};
use super::{cookie, request_lang, WebState};
use crate::activity::{RefusalFilter, SessionFilter};
use crate::mac::MacAddr;
use crate::model::{Compliance, Device, DeviceStatus, Owner};
use crate::registry::{AuditFilter, Change, DeviceQuery, DeviceRef, OwnerQuery, RegistryError};

/// The console's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/language", get(language))
        .route("/static/app.css", get(stylesheet))
        .route("/search", get(search))
        .route("/owners/{username}", get(owner_page))
        .route("/devices/{id}", get(device_page))
        .route("/devices/{id}/revoke", get(revoke_page).post(revoke))
        .route("/devices/{id}/lost", post(mark_lost))
        .route("/devices/{id}/found", post(mark_found))
        .route("/devices/{id}/bundle", post(issue_bundle))
        .route("/downloads/{token}", get(download))
        .route("/refusals", get(refusals))
        .route("/audit", get(audit))
        .route("/occupancy", get(occupancy))
        .route("/occupancy.csv", get(occupancy_csv))
        .merge(super::manage::routes())
        .fallback(not_found)
}

/// Who asks, in which language, and where.
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
            .and_then(|c| state.sessions.get(c, Utc::now()));
        if let Some(s) = &session {
            tracing::Span::current().record("user", s.user.as_str());
        }
        Ctx { t, session, cookie }
    }

    /// The session of a console user, or the answer that sends them to log in.
    fn staff(&self) -> Result<&Session, Response> {
        match &self.session {
            Some(s) if s.role.is_staff() => Ok(s),
            Some(_) => Err(self.error(StatusCode::FORBIDDEN, self.t.not_allowed)),
            None => Err(Redirect::to("/login").into_response()),
        }
    }

    /// For an action: a console user whose form carries their CSRF token and whose role may
    /// change the registry; otherwise the refusal, and nothing is written.
    fn may_change(&self, csrf: &str) -> Result<&Session, Response> {
        let s = self.staff()?;
        if !s.csrf_ok(csrf) {
            tracing::warn!(user = %s.user, "a form without its CSRF token was refused");
            return Err(self.error(StatusCode::FORBIDDEN, self.t.form_expired));
        }
        if !s.role.may_change() {
            tracing::warn!(user = %s.user, "a change by a reading role was refused");
            return Err(self.error(StatusCode::FORBIDDEN, self.t.not_allowed));
        }
        Ok(s)
    }

    fn page(&self, title: &str, nav: Nav, here: &str, content: Markup) -> Response {
        html_response(page(
            self.t,
            title,
            self.session.as_ref(),
            nav,
            here,
            content,
        ))
    }

    fn error(&self, status: StatusCode, text: &str) -> Response {
        let body = page(
            self.t,
            text,
            self.session.as_ref(),
            Nav::None,
            "/",
            html! { p { a href="/" { (self.t.nav_dashboard) } } },
        );
        (status, html_response(body)).into_response()
    }

    /// A registry failure: a refusal the user can act on (its message), or the store down.
    fn registry_error(&self, e: &RegistryError) -> Response {
        match e {
            RegistryError::Store(err) => {
                tracing::error!(error = %err, "the registry failed a console request");
                self.error(StatusCode::SERVICE_UNAVAILABLE, self.t.server_error)
            }
            RegistryError::UnknownDevice(_) | RegistryError::UnknownOwner(_) => {
                self.error(StatusCode::NOT_FOUND, self.t.not_found)
            }
            other => self.error(StatusCode::CONFLICT, &other.to_string()),
        }
    }
}

/// A page as the answer.
pub(super) fn html_page(markup: Markup) -> Response {
    html_response(markup)
}

fn html_response(markup: Markup) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        markup.into_string(),
    )
        .into_response()
}

fn peer_ip(peer: Option<Extension<crate::api::Peer>>) -> IpAddr {
    peer.map(|Extension(p)| p.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
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
    if ctx.session.as_ref().is_some_and(|s| s.role.is_staff()) {
        return Redirect::to("/").into_response();
    }
    let ended = ctx.cookie.is_some();
    login_form(
        &ctx,
        if ended {
            Some(("ok", ctx.t.session_ended))
        } else {
            None
        },
        "",
    )
}

fn login_form(ctx: &Ctx, message: Option<(&str, &str)>, username: &str) -> Response {
    let t = ctx.t;
    let body = html! {
        div.card.login {
            @if let Some((kind, text)) = message { (notice(kind, text)) }
            form method="post" action="/login" {
                label for="username" { (t.username) }
                input #username type="text" name="username" value=(username) autocomplete="username" required autofocus;
                label for="password" { (t.password) }
                input #password type="password" name="password" autocomplete="current-password" required;
                p { button type="submit" { (t.login_button) } }
            }
        }
    };
    let mut response = html_response(page(t, t.login_title, None, Nav::None, "/login", body));
    if ctx.cookie.is_some() {
        // a stale cookie goes
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"
        )) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    response
}

async fn login(
    State(state): State<WebState>,
    headers: HeaderMap,
    peer: Option<Extension<crate::api::Peer>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let ip = peer_ip(peer);
    let now = Utc::now();
    let username = form.username.trim().to_lowercase();
    if !state.sessions.may_try(&username, ip, now) {
        tracing::warn!(%ip, user = %username, "login refused: too many failures");
        let mut r = login_form(&ctx, Some(("error", ctx.t.login_locked)), &username);
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return r;
    }
    let account = match state
        .registry
        .verify_web_login(&username, &form.password, now)
        .await
    {
        Ok(a) => a,
        Err(crate::registry::accounts::WebAccountError::Registry(e)) => {
            return ctx.registry_error(&e)
        }
        Err(e) => {
            tracing::error!(error = %e, "a console login could not be checked");
            return ctx.error(StatusCode::SERVICE_UNAVAILABLE, ctx.t.server_error);
        }
    };
    // a local account first (it works while the directory is down), then the directory's
    // staff groups
    let found = match account {
        Some(a) => {
            let role = match a.role {
                crate::registry::accounts::WebRole::Admin => Role::Admin,
                crate::registry::accounts::WebRole::Helpdesk => Role::Helpdesk,
            };
            Some((a.username, a.display_name, role))
        }
        None => staff_from_directory(&state, &username, &form.password).await,
    };
    let Some((account_user, account_name, role)) = found else {
        state.sessions.failed(&username, ip, now);
        tracing::warn!(%ip, user = %username, "login failed");
        let mut r = login_form(&ctx, Some(("error", ctx.t.login_failed)), &username);
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    state.sessions.succeeded(&username);
    // a session id from before the login is never kept (fixation)
    if let Some(old) = &ctx.cookie {
        state.sessions.end(old);
    }
    let (cookie, _) = state
        .sessions
        .start(&account_user, &account_name, role, now);
    tracing::info!(%ip, user = %account_user, role = ?role, "logged in to the console");
    let mut response = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}={cookie}; Path=/; HttpOnly; Secure; SameSite=Strict"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// A directory account in one of `web.admin_groups` (ICT) or `web.helpdesk_groups` (the
/// service desk), with its password; `None` otherwise, or when the directory cannot be asked
/// (logged: local accounts still work).
async fn staff_from_directory(
    state: &WebState,
    username: &str,
    password: &str,
) -> Option<(String, String, Role)> {
    let web = &state.config.web;
    let directory = state.config.directory.as_ref()?;
    if web.admin_groups.is_empty() && web.helpdesk_groups.is_empty() {
        return None;
    }
    let groups: Vec<String> = web
        .admin_groups
        .iter()
        .chain(&web.helpdesk_groups)
        .cloned()
        .collect();
    match crate::directory::ldap::authenticate(directory, username, password, &groups).await {
        Ok(Some(login)) => {
            let role = if login.groups.iter().any(|g| web.admin_groups.contains(g)) {
                Role::Admin
            } else if login.groups.iter().any(|g| web.helpdesk_groups.contains(g)) {
                Role::Helpdesk
            } else {
                tracing::warn!(user = %login.username, "a directory account in no console group tried the console");
                return None;
            };
            Some((login.username, login.display_name, role))
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "the directory could not check a console login");
            None
        }
    }
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
    let Some(s) = &ctx.session else {
        return Redirect::to("/login").into_response();
    };
    if !s.csrf_ok(&form.csrf) {
        return ctx.error(StatusCode::FORBIDDEN, ctx.t.form_expired);
    }
    if let Some(c) = &ctx.cookie {
        state.sessions.end(c);
    }
    tracing::info!(user = %s.user, "logged out");
    let mut response = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
struct LanguageQuery {
    #[serde(default)]
    to: String,
    #[serde(default)]
    back: String,
}

/// The language switch: a cookie, and back to the page (a local path only).
async fn language(Query(q): Query<LanguageQuery>) -> Response {
    language_response(&q.to, &q.back)
}

/// The answer of a language switch to `to`, back to `back` (a local path only).
pub(super) fn language_response(to: &str, back: &str) -> Response {
    let lang = crate::lang::Lang::parse(to).unwrap_or_default();
    let back = if back.starts_with('/') && !back.starts_with("//") && !back.contains('\\') {
        back
    } else {
        "/"
    };
    let mut response = Redirect::to(back).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "taal={}; Path=/; Secure; SameSite=Lax; Max-Age=31536000",
        lang.code()
    )) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn stylesheet() -> Response {
    stylesheet_response()
}

/// The stylesheet, embedded in the binary.
pub(super) fn stylesheet_response() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("assets/app.css"),
    )
        .into_response()
}

async fn not_found(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let ctx = Ctx::of(&state, &headers);
    ctx.error(StatusCode::NOT_FOUND, ctx.t.not_found)
}

// ---- search

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<SearchQuery>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    if let Err(r) = ctx.staff() {
        return r;
    }
    let t = ctx.t;
    let query = q.q.trim().to_string();
    let mut owners: Vec<Owner> = Vec::new();
    let mut devices: Vec<Device> = Vec::new();
    if !query.is_empty() {
        // a MAC or a device id finds the device; words find owners by name, username, e-mail
        if let Ok(r) = DeviceRef::parse(&query) {
            if MacAddr::parse_any(&query).is_ok() || uuid::Uuid::parse_str(&query).is_ok() {
                match state.registry.find_device(&r).await {
                    Ok(d) => devices.push(d),
                    Err(RegistryError::UnknownDevice(_) | RegistryError::AmbiguousDevice(_)) => {}
                    Err(e) => return ctx.registry_error(&e),
                }
            }
        }
        match state
            .registry
            .find_owners(&OwnerQuery {
                search: Some(query.clone()),
                ..Default::default()
            })
            .await
        {
            Ok(found) => owners = found,
            Err(e) => return ctx.registry_error(&e),
        }
        owners.truncate(100);
    }
    // one result: straight to it
    if owners.len() + devices.len() == 1 {
        if let Some(o) = owners.first() {
            return Redirect::to(&format!("/owners/{}", layout::urlencode(&o.username)))
                .into_response();
        }
        if let Some(d) = devices.first() {
            return Redirect::to(&format!("/devices/{}", d.id)).into_response();
        }
    }
    let here = format!("/search?q={}", layout::urlencode(&query));
    let body = html! {
        form.card role="search" method="get" action="/search" {
            label for="q" { (t.search_label) }
            input #q type="search" name="q" value=(query) autofocus;
            " " button type="submit" { (t.search_button) }
        }
        @if !query.is_empty() {
            @if owners.is_empty() && devices.is_empty() {
                p { (t.nothing_found) }
            }
            @if !owners.is_empty() {
                h2 { (t.owners) }
                (owner_table(t, &owners))
            }
            @if !devices.is_empty() {
                h2 { (t.devices) }
                (device_table(&ctx, &state, &devices))
            }
        }
    };
    ctx.page(t.search_title, Nav::Search, &here, body)
}

fn owner_table(t: &Texts, owners: &[Owner]) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr { th { (t.name) } th { (t.username) } th { (t.email) } th { (t.role) } th { (t.status) } } }
            tbody {
                @for o in owners {
                    tr {
                        td { a href={ "/owners/" (layout::urlencode(&o.username)) } { (o.display_name) } }
                        td { (o.username) }
                        td { (o.email.as_deref().unwrap_or("")) }
                        td { ((t.word)(&o.role.to_string())) }
                        td { (owner_status(t, o)) }
                    }
                }
            }
        } }
    }
}

fn owner_status(t: &Texts, o: &Owner) -> Markup {
    html! {
        @if o.disabled {
            span.tag.bad { (t.disabled) }
            @if let Some(r) = &o.disabled_reason { " " span.muted { (r) } }
        } @else {
            span.tag.ok { (t.active) }
        }
    }
}

fn device_status(t: &Texts, d: &Device) -> Markup {
    html! {
        @match d.status {
            DeviceStatus::Active => span.tag.ok { (t.active) },
            DeviceStatus::Lost => span.tag.warn { (t.lost) },
            DeviceStatus::Revoked => span.tag.bad { (t.revoked) },
        }
    }
}

fn compliance_tag(t: &Texts, d: &Device) -> Markup {
    html! {
        @match d.compliance {
            Compliance::Compliant => span.tag.ok { ((t.word)("compliant")) },
            Compliance::Noncompliant => span.tag.bad { ((t.word)("noncompliant")) },
            Compliance::Unknown => span.tag.warn { ((t.word)("unknown")) },
        }
    }
}

fn device_table(ctx: &Ctx, state: &WebState, devices: &[Device]) -> Markup {
    let t = ctx.t;
    let _ = state;
    html! {
        div.table-wrap { table {
            thead { tr { th { (t.label) } th { (t.owner) } th { (t.mac) } th { (t.status) } th { (t.compliance) } } }
            tbody {
                @for d in devices {
                    tr {
                        td { a href={ "/devices/" (d.id) } { (d.label) } }
                        td { a href={ "/owners/" (layout::urlencode(&d.owner)) } { (d.owner) } }
                        td { (d.macs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                        td { (device_status(t, d)) }
                        td { (compliance_tag(t, d)) }
                    }
                }
            }
        } }
    }
}

// ---- owner and device pages

/// One line of the `why` timeline.
struct Event {
    what: Markup,
}

/// The timeline of an owner's or a device's MACs, as [`crate::why`] puts it together (open
/// sessions first, then decisions by owner and by each MAC, and minute counts), in table rows.
async fn timeline(
    ctx: &Ctx,
    state: &WebState,
    owner: Option<&str>,
    macs: &[MacAddr],
) -> Result<Vec<Event>, RegistryError> {
    let t = ctx.t;
    let tz = state.config.policy.timezone;
    let scope = crate::why::Scope {
        owner: owner.map(str::to_string),
        macs: macs.to_vec(),
    };
    let now = Utc::now();
    let found = crate::why::events(&state.registry, &scope, now, 60).await?;
    Ok(found
        .into_iter()
        .map(|e| {
            let what = match e {
                crate::why::Event::Connected { session: s } => html! {
                    td { (when(s.started_at, &tz)) }
                    td { (s.mac.map(|m| m.to_string()).unwrap_or_default()) }
                    td { (s.nas) @if let Some(ssid) = &s.ssid { " (" (ssid) ")" } }
                    td { span.tag.ok { (t.still_connected) } }
                    td { (t.started) " " (when(s.started_at, &tz)) }
                },
                crate::why::Event::Decision(d) => html! {
                    td { (when_s(d.at, &tz)) }
                    td { (d.mac.map(|m| m.to_string()).unwrap_or_else(|| d.username.clone())) }
                    td { (d.nas) @if let Some(ssid) = &d.ssid { " (" (ssid) ")" } }
                    td { @if d.outcome == "accept" { span.tag.ok { (t.accepted) } } @else { span.tag.bad { (t.refused) } } }
                    td {
                        ((t.reason_text)(&d.reason))
                        @if d.repeats > 0 { span.muted { " (+" (d.repeats) " " (t.folded) ")" } }
                    }
                },
                crate::why::Event::Counted { mac, aggregate: a } => html! {
                    td { (when(a.minute, &tz)) }
                    td { (mac.to_string()) }
                    td { (a.nas) " / " (a.ap) }
                    td { @if a.outcome == "accept" { span.tag.warn { (t.accepted) } } @else { span.tag.bad { (t.refused) } } }
                    td { ((t.reason_text)(&a.reason)) " (" (a.count) " " (t.requests) ")" }
                },
            };
            Event { what }
        })
        .collect())
}

fn timeline_table(t: &Texts, events: &[Event]) -> Markup {
    html! {
        @if events.is_empty() {
            p { (t.none) }
        } @else {
            div.table-wrap { table {
                thead { tr { th { (t.time) } th { (t.mac) } th { (t.access_point) } th { (t.outcome) } th { (t.reason) } } }
                tbody { @for e in events { tr { (e.what) } } }
            } }
        }
    }
}

async fn owner_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    if let Err(r) = ctx.staff() {
        return r;
    }
    let t = ctx.t;
    let tz = state.config.policy.timezone;
    let owner = match state.registry.owner(&username).await {
        Ok(Some(o)) => o,
        Ok(None) => return ctx.error(StatusCode::NOT_FOUND, t.not_found),
        Err(e) => return ctx.registry_error(&e),
    };
    let devices = match state.registry.devices(Some(&owner.username)).await {
        Ok(d) => d,
        Err(e) => return ctx.registry_error(&e),
    };
    let macs: Vec<MacAddr> = devices
        .iter()
        .flat_map(|d| d.macs.iter().copied())
        .collect();
    let events = match timeline(&ctx, &state, Some(&owner.username), &macs).await {
        Ok(e) => e,
        Err(e) => return ctx.registry_error(&e),
    };
    let mut sessions = Vec::new();
    for mac in &macs {
        match state
            .registry
            .sessions(&SessionFilter {
                active_only: false,
                mac: Some(*mac),
                limit: Some(10),
            })
            .await
        {
            Ok(s) => sessions.extend(s),
            Err(e) => return ctx.registry_error(&e),
        }
    }
    sessions.sort_by_key(|s| std::cmp::Reverse(s.started_at));
    sessions.truncate(20);
    let here = format!("/owners/{}", layout::urlencode(&owner.username));
    let body = html! {
        div.card {
            dl.fields {
                dt { (t.username) } dd { (owner.username) }
                dt { (t.email) } dd { (owner.email.as_deref().unwrap_or("—")) }
                dt { (t.department) } dd { (owner.department.as_deref().unwrap_or("—")) }
                dt { (t.role) } dd { ((t.word)(&owner.role.to_string())) }
                dt { (t.contract_until) } dd { (owner.valid_until.map(|d| d.format("%d-%m-%Y").to_string()).unwrap_or_else(|| "—".into())) }
                dt { (t.status) } dd { (owner_status(t, &owner)) }
                dt { (t.source) } dd { ((t.word)(&owner.source.to_string())) }
            }
        }
        @if ctx.session.as_ref().is_some_and(|s| s.role.may_change()) { p { a.button href={ (here) "/edit" } { (super::text::manage_texts(t.lang).edit) } } }
        h2 { (t.devices) }
        @if devices.is_empty() { p { (t.none) } } @else { (device_table(&ctx, &state, &devices)) }
        h2 { (t.why_timeline) }
        (timeline_table(t, &events))
        h2 { (t.sessions) }
        @if sessions.is_empty() { p { (t.none) } } @else {
            div.table-wrap { table {
                thead { tr { th { (t.started) } th { (t.ended) } th { (t.mac) } th { (t.access_point) } th { (t.ip_address) } } }
                tbody {
                    @for s in &sessions {
                        tr {
                            td { (when(s.started_at, &tz)) }
                            td { @match s.stopped_at { Some(at) => (when(at, &tz)), None => span.tag.ok { (t.still_connected) } } }
                            td { (s.mac.map(|m| m.to_string()).unwrap_or_default()) }
                            td { (s.nas) @if let Some(ssid) = &s.ssid { " (" (ssid) ")" } }
                            td { (s.framed_ip.as_deref().unwrap_or("")) }
                        }
                    }
                }
            } }
        }
    };
    ctx.page(&owner.display_name, Nav::Search, &here, body)
}

async fn device_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.staff() {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let t = ctx.t;
    let tz = state.config.policy.timezone;
    let device = match find_device(&state, &id).await {
        Ok(d) => d,
        Err(e) => return ctx.registry_error(&e),
    };
    let certificates = match state.registry.certificates(device.id).await {
        Ok(c) => c,
        Err(e) => return ctx.registry_error(&e),
    };
    let events = match timeline(&ctx, &state, None, &device.macs).await {
        Ok(e) => e,
        Err(e) => return ctx.registry_error(&e),
    };
    let here = format!("/devices/{}", device.id);
    let body = html! {
        div.card {
            dl.fields {
                dt { (t.owner) } dd { a href={ "/owners/" (layout::urlencode(&device.owner)) } { (device.owner) } }
                dt { (t.kind) } dd { ((t.word)(&device.kind.to_string())) }
                dt { (t.mac) } dd { (device.macs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                dt { (t.status) } dd {
                    (device_status(t, &device))
                    @if let Some(r) = &device.status_reason { " " span.muted { (r) } }
                }
                dt { (t.compliance) } dd { (compliance_tag(t, &device)) }
            }
        }
        @if session.role.may_change() {
            h2 { (t.actions) }
            div.card {
                p { a href={ "/devices/" (device.id) "/edit" } { (super::text::manage_texts(t.lang).edit) } }
                @match device.status {
                    DeviceStatus::Active => {
                        form.inline method="post" action={ "/devices/" (device.id) "/lost" } {
                            (csrf_field(&session))
                            button.secondary type="submit" { (t.mark_lost) }
                        }
                        " "
                        a.button.danger href={ "/devices/" (device.id) "/revoke" } { (t.revoke) }
                    },
                    DeviceStatus::Lost => {
                        form.inline method="post" action={ "/devices/" (device.id) "/found" } {
                            (csrf_field(&session))
                            button.secondary type="submit" { (t.mark_found) }
                        }
                        " "
                        a.button.danger href={ "/devices/" (device.id) "/revoke" } { (t.revoke) }
                    },
                    DeviceStatus::Revoked => {},
                }
                @if device.status == DeviceStatus::Active {
                    form method="post" action={ "/devices/" (device.id) "/bundle" } {
                        (csrf_field(&session))
                        label for="os" { (t.bundle_for) }
                        select #os name="os" {
                            option value="" { (t.all_systems) }
                            @for p in crate::pki::Platform::ALL {
                                option value=(p.code()) { (p.name()) }
                            }
                        }
                        p { button type="submit" { (t.issue_bundle) } }
                    }
                }
            }
        }
        h2 { (t.certificates) }
        @if certificates.is_empty() { p { (t.none) } } @else {
            div.table-wrap { table {
                thead { tr { th { (t.serial) } th { (t.valid_from) } th { (t.certificate_until) } th { (t.issued_by) } th { (t.status) } } }
                tbody {
                    @for c in &certificates {
                        tr {
                            td { code { (c.serial) } }
                            td { (when(c.not_before, &tz)) }
                            td { (when(c.not_after, &tz)) }
                            td { (c.issued_by) }
                            td { @if c.superseded_at.is_some() { span.tag.warn { (t.superseded) } } @else { span.tag.ok { (t.current) } } }
                        }
                    }
                }
            } }
        }
        h2 { (t.why_timeline) }
        (timeline_table(t, &events))
    };
    ctx.page(&device.label, Nav::Search, &here, body)
}

async fn find_device(state: &WebState, id: &str) -> Result<Device, RegistryError> {
    let r = DeviceRef::parse(id).map_err(RegistryError::Field)?;
    state.registry.find_device(&r).await
}

async fn revoke_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.staff() {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let t = ctx.t;
    if !session.role.may_change() {
        return ctx.error(StatusCode::FORBIDDEN, t.not_allowed);
    }
    let device = match find_device(&state, &id).await {
        Ok(d) => d,
        Err(e) => return ctx.registry_error(&e),
    };
    let here = format!("/devices/{}/revoke", device.id);
    let body = html! {
        div.card {
            p { strong { (device.label) } " — " (device.owner) }
            p { (t.revoke_confirm_text) }
            form method="post" action={ "/devices/" (device.id) "/revoke" } {
                (csrf_field(&session))
                label for="reason" { (t.revoke_reason) }
                input #reason type="text" name="reason" required maxlength="500";
                p {
                    button.danger type="submit" { (t.confirm) }
                    " "
                    a.button.secondary href={ "/devices/" (device.id) } { (t.cancel) }
                }
            }
        }
    };
    ctx.page(t.revoke_confirm_title, Nav::Search, &here, body)
}

#[derive(Deserialize)]
struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn revoke(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    set_status(state, headers, id, form, DeviceStatus::Revoked).await
}

async fn mark_lost(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    set_status(state, headers, id, form, DeviceStatus::Lost).await
}

async fn mark_found(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    set_status(state, headers, id, form, DeviceStatus::Active).await
}

/// Lost, found or revoked, as `device lost|found|revoke` does: the registry's rule, one
/// transaction with its audit entry by `web:<user>`; the server's enforcer disconnects the
/// device's sessions.
async fn set_status(
    state: WebState,
    headers: HeaderMap,
    id: String,
    form: ReasonForm,
    status: DeviceStatus,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.may_change(&form.csrf) {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let r = match DeviceRef::parse(&id) {
        Ok(r) => r,
        Err(e) => return ctx.registry_error(&RegistryError::Field(e)),
    };
    let reason = Some(form.reason).filter(|r| !r.trim().is_empty());
    match state
        .registry
        .set_device_status(&r, status, reason, &Change::by(session.actor()))
        .await
    {
        Ok(d) => {
            tracing::info!(user = %session.user, device = %d.id, %status, "device status set from the console");
            Redirect::to(&format!("/devices/{}", d.id)).into_response()
        }
        Err(e) => ctx.registry_error(&e),
    }
}

// ---- refusals

#[derive(Deserialize)]
struct RefusalQuery {
    #[serde(default)]
    ap: String,
    #[serde(default)]
    ssid: String,
    #[serde(default)]
    reason: String,
}

async fn refusals(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<RefusalQuery>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    if let Err(r) = ctx.staff() {
        return r;
    }
    let t = ctx.t;
    let tz = state.config.policy.timezone;
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    // the choices: what the last day's refusals name
    let all = match state
        .registry
        .refusals(&RefusalFilter {
            since: Some(since),
            limit: Some(2000),
            ..Default::default()
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return ctx.registry_error(&e),
    };
    let counted = match state.registry.refused_aggregates(since, 500).await {
        Ok(a) => a,
        Err(e) => return ctx.registry_error(&e),
    };
    let mut aps: Vec<String> = all.iter().map(|d| d.nas.clone()).collect();
    aps.extend(counted.iter().map(|a| a.nas.clone()));
    let mut ssids: Vec<String> = all.iter().filter_map(|d| d.ssid.clone()).collect();
    let mut reasons: Vec<String> = all.iter().map(|d| d.reason.clone()).collect();
    reasons.extend(counted.iter().map(|a| a.reason.clone()));
    for v in [&mut aps, &mut ssids, &mut reasons] {
        v.sort();
        v.dedup();
    }
    let filter = RefusalFilter {
        nas: some(&q.ap),
        ssid: some(&q.ssid),
        reason: some(&q.reason),
        since: Some(now - Duration::days(7)),
        limit: Some(200),
    };
    let found = match state.registry.refusals(&filter).await {
        Ok(r) => r,
        Err(e) => return ctx.registry_error(&e),
    };
    let counted: Vec<_> = counted
        .into_iter()
        .filter(|a| filter.nas.as_ref().is_none_or(|n| *n == a.nas))
        .filter(|a| filter.reason.as_ref().is_none_or(|r| *r == a.reason))
        .filter(|_| filter.ssid.is_none())
        .take(50)
        .collect();
    let here = format!(
        "/refusals?ap={}&ssid={}&reason={}",
        layout::urlencode(&q.ap),
        layout::urlencode(&q.ssid),
        layout::urlencode(&q.reason)
    );
    let select =
        |name: &str, id: &str, label: &str, values: &[String], chosen: &str, words: bool| {
            html! {
                div {
                    label for=(id) { (label) }
                    select #(id) name=(name) {
                        option value="" { (t.any) }
                        @for v in values {
                            option value=(v) selected[v == chosen] {
                                @if words { ((t.reason_text)(v)) } @else { (v) }
                            }
                        }
                    }
                }
            }
        };
    let body = html! {
        p { (t.refusals_intro) }
        form.card.filters method="get" action="/refusals" {
            (select("ap", "ap", t.access_point, &aps, q.ap.trim(), false))
            (select("ssid", "ssid", t.ssid, &ssids, q.ssid.trim(), false))
            (select("reason", "reason", t.reason, &reasons, q.reason.trim(), true))
            div { button type="submit" { (t.filter_button) } }
        }
        @if found.is_empty() && counted.is_empty() { p { (t.none) } }
        @if !found.is_empty() {
            div.table-wrap { table {
                thead { tr { th { (t.time) } th { (t.mac) } th { (t.owner) } th { (t.access_point) } th { (t.ssid) } th { (t.reason) } } }
                tbody {
                    @for d in &found {
                        tr {
                            td { (when_s(d.at, &tz)) }
                            td {
                                @match (d.device_id, d.mac) {
                                    (Some(id), Some(m)) => a href={ "/devices/" (id) } { (m.to_string()) },
                                    (None, Some(m)) => a href={ "/search?q=" (m.to_string()) } { (m.to_string()) },
                                    (_, None) => (d.username),
                                }
                            }
                            td { @if let Some(o) = &d.owner { a href={ "/owners/" (layout::urlencode(o)) } { (o) } } }
                            td { (d.nas) }
                            td { (d.ssid.as_deref().unwrap_or("")) }
                            td {
                                ((t.reason_text)(&d.reason))
                                @if d.repeats > 0 { span.muted { " (+" (d.repeats) " " (t.folded) ")" } }
                            }
                        }
                    }
                }
            } }
        }
        @if !counted.is_empty() {
            h2 { (t.unknown_devices_counted) }
            div.table-wrap { table {
                thead { tr { th { (t.time) } th { (t.access_point) } th { (t.reason) } th { (t.requests) } th { (t.mac) } } }
                tbody {
                    @for a in &counted {
                        tr {
                            td { (when(a.minute, &tz)) }
                            td { (a.nas) " / " (a.ap) }
                            td { ((t.reason_text)(&a.reason)) }
                            td { (a.count) }
                            td { (a.macs.iter().take(5).map(ToString::to_string).collect::<Vec<_>>().join(", ")) @if a.macs.len() > 5 { " …" } }
                        }
                    }
                }
            } }
        }
    };
    ctx.page(t.refusals_title, Nav::Refusals, &here, body)
}

// ---- audit

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    by: String,
}

async fn audit(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    if let Err(r) = ctx.staff() {
        return r;
    }
    let t = ctx.t;
    let tz = state.config.policy.timezone;
    let entries = match state
        .registry
        .audit(&AuditFilter {
            target_id: None,
            actor: Some(q.by.trim().to_string()).filter(|s| !s.is_empty()),
            limit: Some(200),
            offset: 0,
        })
        .await
    {
        Ok(e) => e,
        Err(e) => return ctx.registry_error(&e),
    };
    let body = html! {
        div.table-wrap { table {
            thead { tr { th { (t.time) } th { (t.actor) } th { (t.action) } th { (t.target) } } }
            tbody {
                @for e in &entries {
                    tr {
                        td { (when_s(e.at, &tz)) }
                        td { (e.actor) }
                        td { code { (e.action) } }
                        td {
                            @match e.target_type.as_str() {
                                "device" => a href={ "/devices/" (e.target_id) } { (e.target_id) },
                                _ => (e.target_id),
                            }
                        }
                    }
                }
            }
        } }
    };
    ctx.page(t.audit_title, Nav::Audit, "/audit", body)
}

// ---- dashboard

async fn dashboard(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let ctx = Ctx::of(&state, &headers);
    if let Err(r) = ctx.staff() {
        return r;
    }
    match dashboard_body(&ctx, &state).await {
        Ok(body) => ctx.page(ctx.t.dashboard_title, Nav::Dashboard, "/", body),
        Err(e) => ctx.registry_error(&e),
    }
}

async fn dashboard_body(ctx: &Ctx, state: &WebState) -> Result<Markup, RegistryError> {
    let t = ctx.t;
    let tz = state.config.policy.timezone;
    let now = Utc::now();
    // sessions now, per SSID
    let open = state
        .registry
        .sessions(&SessionFilter {
            active_only: true,
            mac: None,
            limit: Some(10_000),
        })
        .await?;
    let mut per_ssid: BTreeMap<String, u64> = BTreeMap::new();
    for s in &open {
        *per_ssid
            .entry(s.ssid.clone().unwrap_or_else(|| "—".into()))
            .or_default() += 1;
    }
    let per_ssid: Vec<(String, u64)> = per_ssid.into_iter().collect();
    // devices connected per hour of today, per SSID
    let today_start = {
        use chrono::TimeZone as _;
        let d = now.with_timezone(&tz).date_naive();
        tz.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now - Duration::hours(24))
    };
    let today = state
        .registry
        .sessions_between(today_start, now + Duration::seconds(1), 100_000)
        .await?;
    let mut by_ssid: BTreeMap<String, Vec<crate::activity::Session>> = BTreeMap::new();
    for s in today {
        by_ssid
            .entry(s.ssid.clone().unwrap_or_else(|| "—".into()))
            .or_default()
            .push(s);
    }
    let day_series: Vec<String> = by_ssid.keys().cloned().collect();
    let day_rows: Vec<Vec<u32>> = by_ssid
        .values()
        .map(|sessions| {
            crate::occupancy::count(sessions, &[], today_start, 24, now, "")
                .counts
                .into_iter()
                .next()
                .unwrap_or_default()
        })
        .collect();
    let day_values: Vec<Vec<u64>> = (0..24)
        .map(|h| {
            day_rows
                .iter()
                .map(|r| u64::from(r.get(h).copied().unwrap_or(0)))
                .collect()
        })
        .collect();
    let day_labels: Vec<String> = (0..24)
        .map(|h| {
            (today_start + Duration::hours(h))
                .with_timezone(&tz)
                .format("%H")
                .to_string()
        })
        .collect();
    // refusals per hour of the last 24, by reason (the five most frequent, the rest as one)
    let since = now - Duration::hours(24);
    let refused = state
        .registry
        .refusals(&RefusalFilter {
            since: Some(since),
            limit: Some(20_000),
            ..Default::default()
        })
        .await?;
    let counted = state.registry.refused_aggregates(since, 5_000).await?;
    let mut samples: Vec<(DateTime<Utc>, String, u64)> = refused
        .iter()
        .map(|d| (d.at, d.reason.clone(), 1 + u64::from(d.repeats)))
        .collect();
    samples.extend(
        counted
            .iter()
            .map(|a| (a.minute, a.reason.clone(), a.count)),
    );
    let mut totals: HashMap<String, u64> = HashMap::new();
    for (_, r, n) in &samples {
        *totals.entry(r.clone()).or_default() += n;
    }
    let mut top: Vec<(String, u64)> = totals.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut series: Vec<String> = top.iter().take(5).map(|(r, _)| r.clone()).collect();
    let other = top.len() > 5;
    let start_hour = now - Duration::hours(23);
    let hour_of = |at: DateTime<Utc>| -> Option<usize> {
        let h = (at - since).num_hours();
        usize::try_from(h).ok().filter(|h| *h < 24)
    };
    let mut values = vec![vec![0u64; series.len() + usize::from(other)]; 24];
    for (at, r, n) in &samples {
        if let Some(h) = hour_of(*at) {
            let s = series.iter().position(|x| x == r).unwrap_or(series.len());
            if let Some(cell) = values[h].get_mut(s) {
                *cell += n;
            }
        }
    }
    let labels: Vec<String> = (0..24)
        .map(|h| {
            (start_hour + Duration::hours(h))
                .with_timezone(&tz)
                .format("%H")
                .to_string()
        })
        .collect();
    let mut names: Vec<String> = series
        .iter()
        .map(|r| (t.reason_text)(r).to_string())
        .collect();
    if other {
        names.push(t.any.to_string());
        series.push(String::new());
    }
    // noncompliant devices, contracts ending, certificates expiring
    let noncompliant = state
        .registry
        .find_devices(&DeviceQuery {
            compliance: Some(Compliance::Noncompliant),
            status: Some(DeviceStatus::Active),
            ..Default::default()
        })
        .await?;
    let today = now.with_timezone(&tz).date_naive();
    let mut ending: Vec<Owner> = state
        .registry
        .find_owners(&OwnerQuery {
            disabled: Some(false),
            ..Default::default()
        })
        .await?
        .into_iter()
        .filter(|o| {
            o.valid_until
                .is_some_and(|d| d >= today && d <= today + chrono::Days::new(14))
        })
        .collect();
    ending.sort_by_key(|o| o.valid_until);
    let expiring = state
        .registry
        .expiring_certificates(Duration::days(30), now)
        .await?;
    Ok(html! {
        div.grid {
            section.card aria-labelledby="h-sessions" {
                h2 #h-sessions { (t.sessions_now) }
                p.big { (open.len()) }
                @if !per_ssid.is_empty() { (chart::bars(t.sessions_now, &per_ssid)) }
            }
            section.card aria-labelledby="h-today" {
                h2 #h-today { (t.sessions_today) }
                (chart::stacked(t.sessions_today, &day_labels, &day_series, &day_values))
            }
            section.card aria-labelledby="h-refusals" {
                h2 #h-refusals { (t.refusals_per_hour) }
                p.muted { (t.chart_last_24h) }
                (chart::stacked(t.refusals_per_hour, &labels, &names, &values))
                p { a href="/refusals" { (t.refusals_title) } }
            }
            section.card aria-labelledby="h-noncompliant" {
                h2 #h-noncompliant { (t.noncompliant_devices) }
                p.big { (noncompliant.len()) }
                ul { @for d in noncompliant.iter().take(10) {
                    li { a href={ "/devices/" (d.id) } { (d.label) } " — " (d.owner) }
                } }
            }
            section.card aria-labelledby="h-ending" {
                h2 #h-ending { (t.contracts_ending) }
                p.big { (ending.len()) }
                ul { @for o in ending.iter().take(10) {
                    li {
                        a href={ "/owners/" (layout::urlencode(&o.username)) } { (o.display_name) }
                        " — " (o.valid_until.map(|d| d.format("%d-%m-%Y").to_string()).unwrap_or_default())
                    }
                } }
            }
            section.card aria-labelledby="h-expiring" {
                h2 #h-expiring { (t.certificates_expiring) }
                p.big { (expiring.len()) }
                ul { @for (d, c) in expiring.iter().take(10) {
                    li { a href={ "/devices/" (d.id) } { (d.label) } " — " (when(c.not_after, &tz)) }
                } }
            }
        }
    })
}

// ---- bundles

#[derive(Deserialize)]
struct BundleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    os: String,
}

/// Issues a certificate and its bundle ([`crate::bundle::issue_bundle`], as the CLI and the
/// API do), zipped and kept for this user's download; the page shows the password once.
async fn issue_bundle(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<BundleForm>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.may_change(&form.csrf) {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let t = ctx.t;
    let platforms = match form.os.trim() {
        "" => Vec::new(),
        os => match crate::pki::Platform::parse(os) {
            Some(p) => vec![p],
            None => return ctx.error(StatusCode::BAD_REQUEST, t.not_found),
        },
    };
    let device = match DeviceRef::parse(&id) {
        Ok(r) => r,
        Err(e) => return ctx.registry_error(&RegistryError::Field(e)),
    };
    let suffix = platforms
        .first()
        .map(|p| format!("-{}", p.code()))
        .unwrap_or_default();
    let request = crate::bundle::BundleRequest {
        device,
        platforms,
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
            tracing::error!(error = %e, "a bundle could not be issued from the console");
            return ctx.error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
        }
    };
    for w in &issued.warnings {
        tracing::warn!(device = %issued.device.id, "{w}");
    }
    let stem = crate::pki::file_stem(&issued.device.label, issued.device.id);
    let name = format!("{stem}{suffix}.zip");
    let token = state.downloads.put(
        &session.user,
        name.clone(),
        "application/zip",
        zipped,
        Utc::now(),
    );
    tracing::info!(user = %session.user, device = %issued.device.id, serial = %issued.serial, "bundle issued from the console");
    let here = format!("/devices/{}", issued.device.id);
    let body = html! {
        div.card {
            p { strong { (issued.device.label) } " — " (issued.owner.username) }
            p { (t.password_once) }
            p.big { code #eenmalig-wachtwoord { (issued.password.expose()) } }
            p { a.button href={ "/downloads/" (token) } download=(name) { (t.download_bundle) " (" (name) ")" } }
            p { a href=(here) { (issued.device.label) } }
        }
    };
    let mut response = ctx.page(t.bundle_ready, Nav::Search, &here, body);
    *response.status_mut() = StatusCode::CREATED;
    response
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
    download_response(d)
}

/// A waiting download as the answer: an attachment under its name (RFC 6266: an ASCII
/// fallback and the UTF-8 name, percent-encoded).
pub(super) fn download_response(d: super::downloads::Download) -> Response {
    let ascii: String = d
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        layout::urlencode(&d.name)
    );
    let mut response = d.bytes.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(d.media_type));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

// ---- occupancy

#[derive(Deserialize)]
struct OccupancyQuery {
    #[serde(default)]
    date: String,
    #[serde(default)]
    view: String,
}

/// The range asked for: a local day (24 hours, 23 or 25 at a clock change) or the week
/// (Monday to Sunday) holding `date` (today when absent or unreadable).
fn occupancy_range(
    q: &OccupancyQuery,
    tz: &chrono_tz::Tz,
    now: DateTime<Utc>,
) -> (bool, chrono::NaiveDate, DateTime<Utc>, usize) {
    use chrono::{Datelike as _, TimeZone as _};
    let week = q.view == "week";
    let date = chrono::NaiveDate::parse_from_str(q.date.trim(), "%Y-%m-%d")
        .unwrap_or_else(|_| now.with_timezone(tz).date_naive());
    let first = if week {
        date - chrono::Days::new(u64::from(date.weekday().num_days_from_monday()))
    } else {
        date
    };
    let days = if week { 7 } else { 1 };
    let local_midnight = |d: chrono::NaiveDate| {
        tz.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| d.and_time(chrono::NaiveTime::MIN).and_utc())
    };
    let start = local_midnight(first);
    let end = local_midnight(first + chrono::Days::new(days));
    let hours = usize::try_from((end - start).num_hours())
        .unwrap_or(24)
        .clamp(1, 24 * 8);
    (week, first, start, hours)
}

async fn occupancy_data(
    state: &WebState,
    t: &Texts,
    q: &OccupancyQuery,
) -> Result<(bool, chrono::NaiveDate, crate::occupancy::Occupancy), RegistryError> {
    let tz = state.config.policy.timezone;
    let now = Utc::now();
    let (week, first, start, hours) = occupancy_range(q, &tz, now);
    let sessions = state
        .registry
        .sessions_between(start, start + Duration::hours(hours as i64), 200_000)
        .await?;
    let o = crate::occupancy::count(
        &sessions,
        &state.config.occupancy.locations,
        start,
        hours,
        now,
        t.other_location,
    );
    Ok((week, first, o))
}

async fn occupancy(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<OccupancyQuery>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    if let Err(r) = ctx.staff() {
        return r;
    }
    let t = ctx.t;
    let tz = state.config.policy.timezone;
    let (week, first, o) = match occupancy_data(&state, t, &q).await {
        Ok(x) => x,
        Err(e) => return ctx.registry_error(&e),
    };
    let view = if week { "week" } else { "day" };
    let date = first.format("%Y-%m-%d").to_string();
    // rows with nobody at all (e.g. "other" when every AP has a location) are left out
    let shown: Vec<usize> = (0..o.locations.len())
        .filter(|l| *l < o.locations.len() - 1 || o.counts[*l].iter().any(|n| *n > 0))
        .collect();
    let series: Vec<String> = shown.iter().map(|l| o.locations[*l].clone()).collect();
    let hours = o.counts.first().map_or(0, Vec::len);
    // a day: one column an hour; a week: one a day, its peak hour
    let (labels, values, chart_title) = if week {
        let days = hours.div_ceil(24).max(1);
        let labels: Vec<String> = (0..days)
            .map(|d| {
                use chrono::Datelike as _;
                let day = first + chrono::Days::new(d as u64);
                format!(
                    "{} {}",
                    t.weekdays[day.weekday().num_days_from_monday() as usize],
                    day.format("%d-%m")
                )
            })
            .collect();
        let values: Vec<Vec<u64>> = (0..days)
            .map(|d| {
                shown
                    .iter()
                    .map(|l| u64::from(o.peak(*l, d * 24, d * 24 + 24)))
                    .collect()
            })
            .collect();
        (labels, values, t.peak_per_day)
    } else {
        let labels: Vec<String> = (0..hours)
            .map(|h| {
                (o.start + Duration::hours(h as i64))
                    .with_timezone(&tz)
                    .format("%H:00")
                    .to_string()
            })
            .collect();
        let values: Vec<Vec<u64>> = (0..hours)
            .map(|h| shown.iter().map(|l| u64::from(o.counts[*l][h])).collect())
            .collect();
        (labels, values, t.devices_per_hour)
    };
    let here = format!("/occupancy?date={date}&view={view}");
    let body = html! {
        p { (t.occupancy_intro) }
        form.card.filters method="get" action="/occupancy" {
            div {
                label for="date" { (t.date) }
                input #date type="date" name="date" value=(date);
            }
            div {
                label for="view" { (t.show) }
                select #view name="view" {
                    option value="day" selected[!week] { (t.day) }
                    option value="week" selected[week] { (t.week) }
                }
            }
            div { button type="submit" { (t.show) } }
        }
        section.card aria-labelledby="h-occupancy" {
            h2 #h-occupancy { (chart_title) }
            (chart::stacked(chart_title, &labels, &series, &values))
        }
        div.table-wrap { table {
            thead { tr { th { (t.location) } th { (t.peak) } th { (t.workplaces) } th { "%" } } }
            tbody {
                @for l in &shown {
                    @let peak = o.peak(*l, 0, hours);
                    @let places = o.workplaces[*l];
                    tr {
                        td { (o.locations[*l]) }
                        td { (peak) }
                        td { @if places > 0 { (places) } }
                        td { @if places > 0 { (format!("{:.0}%", f64::from(peak) * 100.0 / f64::from(places))) } }
                    }
                }
            }
        } }
        p { a.button.secondary href={ "/occupancy.csv?date=" (date) "&view=" (view) } { (t.download_csv) } }
    };
    ctx.page(t.occupancy_title, Nav::Occupancy, &here, body)
}

async fn occupancy_csv(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<OccupancyQuery>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    if let Err(r) = ctx.staff() {
        return r;
    }
    let tz = state.config.policy.timezone;
    let (week, first, o) = match occupancy_data(&state, ctx.t, &q).await {
        Ok(x) => x,
        Err(e) => return ctx.registry_error(&e),
    };
    let name = format!(
        "bezetting-{}-{}.csv",
        if week { "week" } else { "dag" },
        first.format("%Y-%m-%d")
    );
    let mut response = crate::occupancy::csv(&o, &tz).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}
