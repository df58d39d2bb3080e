//! ICT's changes from the console: an owner's details, disabling and enabling; registering
//! and editing a device, its compliance; the API tokens. Every form is ICT's only (the
//! service desk reads), carries the session's CSRF token, and goes through the registry's
//! functions the CLI and the API call, audited as `web:<user>`. Bad input answers with the
//! form again, the typed values kept and the field named; nothing is written.

// a refusal is the page to answer with: an axum Response by value, as every handler returns
#![allow(clippy::result_large_err)]

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{NaiveDate, Utc};
use maud::{html, Markup};

use super::layout::{self, csrf_field, notice, page, when, Nav};
use super::session::{Session, COOKIE};
use super::text::{manage_texts, texts, ManageTexts, Texts};
use super::{cookie, request_lang, WebState};
use crate::mac::MacAddr;
use crate::model::{
    parse_date, Compliance, Device, DeviceKind, FieldError, NewDevice, Owner, Role,
};
use crate::registry::tokens::{TokenError, TokenScope};
use crate::registry::{Change, DeviceEdit, DeviceRef, OwnerEdit, RegistryError};

/// The routes of ICT's actions, merged into the console's.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route(
            "/owners/{username}/edit",
            get(owner_edit_page).post(owner_edit),
        )
        .route("/owners/{username}/disable", post(owner_disable))
        .route("/owners/{username}/enable", post(owner_enable))
        .route(
            "/owners/{username}/devices/new",
            get(device_new_page).post(device_new),
        )
        .route(
            "/devices/{id}/edit",
            get(device_edit_page).post(device_edit),
        )
        .route("/devices/{id}/compliance", post(device_compliance))
        .route("/tokens", get(tokens_page).post(token_create))
        .route(
            "/tokens/{name}/revoke",
            get(token_revoke_page).post(token_revoke),
        )
}

/// A posted form: its fields in order, a name possibly more than once (check boxes).
type Fields = Vec<(String, String)>;

/// The first value of `name`, or empty.
fn field<'f>(fields: &'f Fields, name: &str) -> &'f str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Every value of `name`.
fn all<'f>(fields: &'f Fields, name: &str) -> Vec<&'f str> {
    fields
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Who asks, in which language.
struct Ctx {
    t: &'static Texts,
    m: &'static ManageTexts,
    session: Option<Session>,
}

impl Ctx {
    fn of(state: &WebState, headers: &HeaderMap) -> Ctx {
        let lang = request_lang(headers);
        let session = cookie(headers, COOKIE).and_then(|c| state.sessions.get(c, Utc::now()));
        if let Some(s) = &session {
            tracing::Span::current().record("user", s.user.as_str());
        }
        Ctx {
            t: texts(lang),
            m: manage_texts(lang),
            session,
        }
    }

    /// For a form page: an ICT session; the service desk is refused, no session logs in.
    fn admin(&self) -> Result<Session, Response> {
        match &self.session {
            Some(s) if s.role.may_change() => Ok(s.clone()),
            Some(_) => Err(self.error(StatusCode::FORBIDDEN, self.t.not_allowed)),
            None => Err(Redirect::to("/login").into_response()),
        }
    }

    /// For an action: the CSRF token first, then the role; a refusal writes nothing.
    fn may_change(&self, fields: &Fields) -> Result<Session, Response> {
        let s = match &self.session {
            Some(s) if s.role.is_staff() => s,
            Some(_) => return Err(self.error(StatusCode::FORBIDDEN, self.t.not_allowed)),
            None => return Err(Redirect::to("/login").into_response()),
        };
        if !s.csrf_ok(field(fields, "csrf")) {
            tracing::warn!(user = %s.user, "a form without its CSRF token was refused");
            return Err(self.error(StatusCode::FORBIDDEN, self.t.form_expired));
        }
        if !s.role.may_change() {
            tracing::warn!(user = %s.user, "a change by a reading role was refused");
            return Err(self.error(StatusCode::FORBIDDEN, self.t.not_allowed));
        }
        Ok(s.clone())
    }

    fn page(
        &self,
        status: StatusCode,
        title: &str,
        nav: Nav,
        here: &str,
        body: Markup,
    ) -> Response {
        let markup = page(self.t, title, self.session.as_ref(), nav, here, body);
        (status, html_response(markup)).into_response()
    }

    fn error(&self, status: StatusCode, text: &str) -> Response {
        let body = html! { p { a href="/" { (self.t.nav_dashboard) } } };
        self.page(status, text, Nav::None, "/", body)
    }

    /// A registry failure that is no fault of the form: not found, or the store down.
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

    /// What the form shows for a refused change, or the answer when the form is not at fault.
    fn problem(&self, e: RegistryError) -> Result<Problem, Response> {
        match e {
            RegistryError::Field(f) => Ok(Problem::field(f)),
            RegistryError::Store(_)
            | RegistryError::UnknownDevice(_)
            | RegistryError::UnknownOwner(_) => Err(self.registry_error(&e)),
            other => Ok(Problem {
                field: "",
                text: other.to_string(),
            }),
        }
    }

    /// The field's label as the form shows it.
    fn label(&self, field: &str) -> &'static str {
        let (t, m) = (self.t, self.m);
        match field {
            "name" | "display_name" => t.name,
            "email" => t.email,
            "department" => t.department,
            "role" => t.role,
            "until" | "valid_until" => t.contract_until,
            "label" => t.label,
            "kind" => t.kind,
            "mac" | "macs" => m.macs,
            "add_mac" | "add_macs" => m.add_macs,
            "remove_mac" | "remove_macs" => m.remove_macs,
            "state" | "compliance" => t.compliance,
            "note" => m.note,
            "reason" => m.disable_reason,
            "token_name" => m.token_name,
            "scope" => m.scope,
            _ => t.username,
        }
    }

    /// The refusal above a form: the field's label and what is wrong.
    fn notice(&self, p: Option<&Problem>) -> Markup {
        html! {
            @if let Some(p) = p {
                @if p.field.is_empty() {
                    (notice("error", &p.text))
                } @else {
                    (notice("error", &format!("{}: {}", self.label(p.field), p.text)))
                }
            }
        }
    }
}

/// Why a form was refused: the field (empty: the change as a whole) and what is wrong.
#[derive(Debug)]
struct Problem {
    field: &'static str,
    text: String,
}

impl Problem {
    fn field(f: FieldError) -> Problem {
        Problem {
            field: f.field,
            text: f.message,
        }
    }

    /// `aria-invalid` for an input of one of `fields`.
    fn invalid(p: Option<&Problem>, fields: &[&str]) -> Option<&'static str> {
        p.filter(|p| fields.contains(&p.field)).map(|_| "true")
    }
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

fn owner_path(username: &str) -> String {
    format!("/owners/{}", layout::urlencode(username))
}

/// A day as typed: `DD-MM-YYYY` (as the console shows dates) or `YYYY-MM-DD`; empty is none.
fn parse_day(field: &'static str, s: &str) -> Result<Option<NaiveDate>, FieldError> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let b = t.as_bytes();
    let dutch = b.len() == 10 && b[2] == b'-' && b[5] == b'-';
    let iso = if dutch {
        format!("{}-{}-{}", &t[6..10], &t[3..5], &t[0..2])
    } else {
        t.to_string()
    };
    parse_date(field, &iso)
        .map(Some)
        .map_err(|_| FieldError::new(field, format!("`{t}` is not a date (DD-MM-YYYY)")))
}

/// MACs as typed: separated by lines, spaces, commas or semicolons; each named when wrong.
fn parse_macs(field: &'static str, s: &str) -> Result<Vec<MacAddr>, FieldError> {
    s.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|m| !m.is_empty())
        .map(|m| MacAddr::parse_any(m).map_err(|e| FieldError::new(field, format!("{m}: {e}"))))
        .collect()
}

fn word_options(t: &Texts, words: &[&'static str], chosen: &str) -> Markup {
    html! {
        @for w in words {
            option value=(w) selected[*w == chosen] { ((t.word)(w)) }
        }
    }
}

// ---- owners

/// The owner form's values, as stored or as typed.
struct OwnerForm {
    name: String,
    email: String,
    department: String,
    role: String,
    until: String,
}

impl OwnerForm {
    fn of(o: &Owner) -> OwnerForm {
        OwnerForm {
            name: o.display_name.clone(),
            email: o.email.clone().unwrap_or_default(),
            department: o.department.clone().unwrap_or_default(),
            role: o.role.to_string(),
            until: o
                .valid_until
                .map(|d| d.format("%d-%m-%Y").to_string())
                .unwrap_or_default(),
        }
    }

    fn typed(f: &Fields) -> OwnerForm {
        OwnerForm {
            name: field(f, "name").to_string(),
            email: field(f, "email").to_string(),
            department: field(f, "department").to_string(),
            role: field(f, "role").to_string(),
            until: field(f, "valid_until").to_string(),
        }
    }

    fn edit(&self) -> Result<OwnerEdit, FieldError> {
        let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        Ok(OwnerEdit {
            display_name: Some(self.name.clone()),
            email: Some(text(&self.email)),
            role: Some(
                self.role
                    .parse::<Role>()
                    .map_err(|e| FieldError::new("role", e))?,
            ),
            department: Some(text(&self.department)),
            valid_until: Some(parse_day("valid_until", &self.until)?),
            ..Default::default()
        })
    }
}

/// The owner's edit page: details, access, devices. `problem` names what a post got wrong;
/// `reason` is the typed disable reason.
async fn owner_form(
    ctx: &Ctx,
    state: &WebState,
    session: &Session,
    owner: &Owner,
    form: &OwnerForm,
    reason: &str,
    problem: Option<&Problem>,
) -> Response {
    let (t, m) = (ctx.t, ctx.m);
    let devices = match state.registry.devices(Some(&owner.username)).await {
        Ok(d) => d,
        Err(e) => return ctx.registry_error(&e),
    };
    let base = owner_path(&owner.username);
    let here = format!("{base}/edit");
    let roles: Vec<&'static str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let p = problem;
    let body = html! {
        p { a href=(base) { "← " (owner.display_name) } }
        (ctx.notice(p))
        h2 { (m.details) }
        form.card method="post" action=(here) {
            (csrf_field(session))
            label for="name" { (t.name) }
            input #name type="text" name="name" value=(form.name) required maxlength="200" aria-invalid=[Problem::invalid(p, &["name"])];
            label for="email" { (t.email) }
            input #email type="email" name="email" value=(form.email) aria-invalid=[Problem::invalid(p, &["email"])];
            label for="department" { (t.department) }
            input #department type="text" name="department" value=(form.department) maxlength="200" aria-invalid=[Problem::invalid(p, &["department"])];
            label for="role" { (t.role) }
            select #role name="role" aria-invalid=[Problem::invalid(p, &["role"])] { (word_options(t, &roles, &form.role)) }
            label for="valid_until" { (t.contract_until) }
            input #valid_until type="text" name="valid_until" value=(form.until) placeholder="DD-MM-JJJJ" aria-describedby="until-hint" aria-invalid=[Problem::invalid(p, &["until", "valid_until"])];
            p #until-hint .muted { (m.date_hint) }
            p { button type="submit" { (m.save) } }
        }
        h2 { (m.access) }
        div.card {
            @if owner.disabled {
                p { span.tag.bad { (t.disabled) } @if let Some(r) = &owner.disabled_reason { " " (r) } }
                form method="post" action={ (base) "/enable" } {
                    (csrf_field(session))
                    button type="submit" { (m.enable) }
                }
            } @else {
                p { (m.disable_text) }
                form method="post" action={ (base) "/disable" } {
                    (csrf_field(session))
                    label for="reason" { (m.disable_reason) }
                    input #reason type="text" name="reason" value=(reason) required maxlength="500" aria-invalid=[Problem::invalid(p, &["reason"])];
                    p { button.danger type="submit" { (m.disable) } }
                }
            }
        }
        h2 { (t.devices) }
        @if devices.is_empty() { p { (t.none) } } @else {
            div.table-wrap { table {
                thead { tr { th { (t.label) } th { (t.mac) } th { (t.kind) } th { (t.actions) } } }
                tbody {
                    @for d in &devices {
                        tr {
                            td { a href={ "/devices/" (d.id) } { (d.label) } }
                            td { (mac_list(d)) }
                            td { ((t.word)(d.kind.as_str())) }
                            td { a href={ "/devices/" (d.id) "/edit" } { (m.edit) } }
                        }
                    }
                }
            } }
        }
        p { a.button href={ (base) "/devices/new" } { (m.register_device) } }
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    ctx.page(status, m.edit_owner_title, Nav::Search, &here, body)
}

fn mac_list(d: &Device) -> String {
    d.macs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn load_owner(ctx: &Ctx, state: &WebState, username: &str) -> Result<Owner, Response> {
    match state.registry.owner(username).await {
        Ok(Some(o)) => Ok(o),
        Ok(None) | Err(RegistryError::Field(_)) => {
            Err(ctx.error(StatusCode::NOT_FOUND, ctx.t.not_found))
        }
        Err(e) => Err(ctx.registry_error(&e)),
    }
}

async fn owner_edit_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.admin() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let owner = match load_owner(&ctx, &state, &username).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    owner_form(
        &ctx,
        &state,
        &session,
        &owner,
        &OwnerForm::of(&owner),
        "",
        None,
    )
    .await
}

/// `owner edit` from the console: name, e-mail, department, role, contract end.
async fn owner_edit(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(username): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.may_change(&fields) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let owner = match load_owner(&ctx, &state, &username).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let form = OwnerForm::typed(&fields);
    let result = match form.edit() {
        Ok(edit) => {
            state
                .registry
                .edit_owner(&owner.username, edit, &Change::by(session.actor()))
                .await
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(o) => {
            tracing::info!(user = %session.user, owner = %o.username, "owner edited from the console");
            Redirect::to(&owner_path(&o.username)).into_response()
        }
        Err(e) => match ctx.problem(e) {
            Ok(p) => owner_form(&ctx, &state, &session, &owner, &form, "", Some(&p)).await,
            Err(r) => r,
        },
    }
}

async fn owner_disable(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(username): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    owner_disabled(state, headers, username, fields, true).await
}

async fn owner_enable(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(username): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    owner_disabled(state, headers, username, fields, false).await
}

/// `owner disable --reason` / `owner enable`: the registry refuses the owner's devices from
/// the next request on and the enforcer disconnects their sessions.
async fn owner_disabled(
    state: WebState,
    headers: HeaderMap,
    username: String,
    fields: Fields,
    disabled: bool,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.may_change(&fields) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let owner = match load_owner(&ctx, &state, &username).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let reason = field(&fields, "reason").trim().to_string();
    let result = if disabled && reason.is_empty() {
        Err(FieldError::new("reason", ctx.m.reason_required).into())
    } else {
        state
            .registry
            .set_owner_disabled(
                &owner.username,
                disabled,
                Some(reason.clone()).filter(|_| disabled),
                &Change::by(session.actor()),
            )
            .await
    };
    match result {
        Ok(o) => {
            tracing::info!(user = %session.user, owner = %o.username, disabled, "owner access set from the console");
            Redirect::to(&owner_path(&o.username)).into_response()
        }
        Err(e) => match ctx.problem(e) {
            Ok(p) => {
                let form = OwnerForm::of(&owner);
                owner_form(&ctx, &state, &session, &owner, &form, &reason, Some(&p)).await
            }
            Err(r) => r,
        },
    }
}

// ---- devices

/// The device form's values, as stored or as typed.
struct DeviceForm {
    label: String,
    kind: String,
    macs: String,
}

fn kinds() -> Vec<&'static str> {
    DeviceKind::ALL.iter().map(|k| k.as_str()).collect()
}

fn device_new_form(
    ctx: &Ctx,
    session: &Session,
    owner: &Owner,
    form: &DeviceForm,
    problem: Option<&Problem>,
) -> Response {
    let (t, m) = (ctx.t, ctx.m);
    let here = format!("{}/devices/new", owner_path(&owner.username));
    let p = problem;
    let body = html! {
        p { a href=(owner_path(&owner.username)) { "← " (owner.display_name) } }
        (ctx.notice(p))
        form.card method="post" action=(here) {
            (csrf_field(session))
            label for="label" { (t.label) }
            input #label type="text" name="label" value=(form.label) required maxlength="100" aria-invalid=[Problem::invalid(p, &["label"])];
            label for="kind" { (t.kind) }
            select #kind name="kind" aria-invalid=[Problem::invalid(p, &["kind"])] { (word_options(t, &kinds(), &form.kind)) }
            label for="macs" { (m.macs) }
            textarea #macs name="macs" rows="3" required aria-invalid=[Problem::invalid(p, &["mac", "macs"])] { (form.macs) }
            p { button type="submit" { (m.register_device) } }
        }
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    ctx.page(status, m.register_device, Nav::Search, &here, body)
}

async fn device_new_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.admin() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let owner = match load_owner(&ctx, &state, &username).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let form = DeviceForm {
        label: String::new(),
        kind: DeviceKind::Laptop.to_string(),
        macs: String::new(),
    };
    device_new_form(&ctx, &session, &owner, &form, None)
}

/// `device add` from the console; a randomized MAC is said on the answer page.
async fn device_new(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(username): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.may_change(&fields) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let owner = match load_owner(&ctx, &state, &username).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let form = DeviceForm {
        label: field(&fields, "label").to_string(),
        kind: field(&fields, "kind").to_string(),
        macs: field(&fields, "macs").to_string(),
    };
    let checked = (|| {
        let kind: DeviceKind = form
            .kind
            .parse()
            .map_err(|e: String| FieldError::new("kind", e))?;
        let macs: Vec<String> = parse_macs("mac", &form.macs)?
            .iter()
            .map(ToString::to_string)
            .collect();
        NewDevice::from_input(&owner.username, &macs, &form.label, kind)
    })();
    let result = match checked {
        Ok((new, warnings)) => state
            .registry
            .register_device(new, &Change::by(session.actor()))
            .await
            .map(|d| (d, warnings)),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok((d, warnings)) => {
            tracing::info!(user = %session.user, device = %d.id, owner = %d.owner, "device registered from the console");
            if warnings.is_empty() {
                return Redirect::to(&format!("/devices/{}", d.id)).into_response();
            }
            let private: Vec<String> = d
                .macs
                .iter()
                .filter(|m| m.is_locally_administered())
                .map(ToString::to_string)
                .collect();
            let body = html! {
                div.card {
                    @for mac in &private { (notice("warn", &format!("{mac}: {}", ctx.m.private_mac_warning))) }
                    p { a href={ "/devices/" (d.id) } { (d.label) } }
                }
            };
            ctx.page(
                StatusCode::OK,
                ctx.m.device_registered,
                Nav::Search,
                &format!("/devices/{}", d.id),
                body,
            )
        }
        Err(e) => match ctx.problem(e) {
            Ok(p) => device_new_form(&ctx, &session, &owner, &form, Some(&p)),
            Err(r) => r,
        },
    }
}

/// The device's edit page: label, kind, MACs to add and remove, and compliance.
struct EditForm {
    label: String,
    kind: String,
    add: String,
    remove: Vec<String>,
    compliance: String,
    note: String,
}

fn device_edit_form(
    ctx: &Ctx,
    session: &Session,
    device: &Device,
    form: &EditForm,
    problem: Option<&Problem>,
) -> Response {
    let (t, m) = (ctx.t, ctx.m);
    let base = format!("/devices/{}", device.id);
    let here = format!("{base}/edit");
    let p = problem;
    let states: Vec<&'static str> = Compliance::ALL.iter().map(|c| c.as_str()).collect();
    let body = html! {
        p {
            a href=(base) { "← " (device.label) }
            " · "
            a href=(owner_path(&device.owner)) { (device.owner) }
        }
        (ctx.notice(p))
        form.card method="post" action=(here) {
            (csrf_field(session))
            label for="label" { (t.label) }
            input #label type="text" name="label" value=(form.label) required maxlength="100" aria-invalid=[Problem::invalid(p, &["label"])];
            label for="kind" { (t.kind) }
            select #kind name="kind" aria-invalid=[Problem::invalid(p, &["kind"])] { (word_options(t, &kinds(), &form.kind)) }
            label for="add_macs" { (m.add_macs) }
            textarea #add_macs name="add_macs" rows="2" aria-invalid=[Problem::invalid(p, &["mac", "add_mac", "add_macs"])] { (form.add) }
            fieldset aria-invalid=[Problem::invalid(p, &["remove_mac", "remove_macs"])] {
                legend { (m.remove_macs) }
                @for (i, mac) in device.macs.iter().enumerate() {
                    @let id = format!("remove{i}");
                    @let mac = mac.to_string();
                    div {
                        input id=(id) type="checkbox" name="remove" value=(mac) checked[form.remove.contains(&mac)];
                        " " label for=(id) { (mac) }
                    }
                }
            }
            p { button type="submit" { (m.save) } }
        }
        h2 { (m.compliance_set) }
        form.card method="post" action={ (base) "/compliance" } {
            (csrf_field(session))
            label for="state" { (t.compliance) }
            select #state name="state" { (word_options(t, &states, &form.compliance)) }
            label for="note" { (m.note) }
            input #note type="text" name="note" value=(form.note) maxlength="500" aria-invalid=[Problem::invalid(p, &["note"])];
            p { button type="submit" { (m.compliance_set) } }
        }
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    ctx.page(status, m.edit_device_title, Nav::Search, &here, body)
}

async fn load_device(ctx: &Ctx, state: &WebState, id: &str) -> Result<Device, Response> {
    let found = match DeviceRef::parse(id) {
        Ok(r) => state.registry.find_device(&r).await,
        Err(e) => Err(e.into()),
    };
    match found {
        Ok(d) => Ok(d),
        Err(RegistryError::Field(_) | RegistryError::AmbiguousDevice(_)) => {
            Err(ctx.error(StatusCode::NOT_FOUND, ctx.t.not_found))
        }
        Err(e) => Err(ctx.registry_error(&e)),
    }
}

fn stored_edit_form(d: &Device) -> EditForm {
    EditForm {
        label: d.label.clone(),
        kind: d.kind.to_string(),
        add: String::new(),
        remove: Vec::new(),
        compliance: d.compliance.to_string(),
        note: String::new(),
    }
}

async fn device_edit_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.admin() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let device = match load_device(&ctx, &state, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    device_edit_form(&ctx, &session, &device, &stored_edit_form(&device), None)
}

/// `device edit` from the console: label, kind, MACs added and removed, one transaction.
async fn device_edit(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.may_change(&fields) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let device = match load_device(&ctx, &state, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let form = EditForm {
        label: field(&fields, "label").to_string(),
        kind: field(&fields, "kind").to_string(),
        add: field(&fields, "add_macs").to_string(),
        remove: all(&fields, "remove")
            .into_iter()
            .map(str::to_string)
            .collect(),
        ..stored_edit_form(&device)
    };
    let checked = (|| {
        Ok::<_, FieldError>(DeviceEdit {
            label: Some(form.label.clone()),
            kind: Some(
                form.kind
                    .parse()
                    .map_err(|e: String| FieldError::new("kind", e))?,
            ),
            add_macs: parse_macs("add_macs", &form.add)?,
            remove_macs: parse_macs("remove_macs", &form.remove.join(" "))?,
        })
    })();
    let result = match checked {
        Ok(edit) => {
            state
                .registry
                .edit_device(
                    &DeviceRef::Id(device.id),
                    edit,
                    &Change::by(session.actor()),
                )
                .await
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(d) => {
            tracing::info!(user = %session.user, device = %d.id, "device edited from the console");
            Redirect::to(&format!("/devices/{}", d.id)).into_response()
        }
        Err(e) => match ctx.problem(e) {
            Ok(p) => device_edit_form(&ctx, &session, &device, &form, Some(&p)),
            Err(r) => r,
        },
    }
}

/// `device compliance` from the console: the state and a note, as ICT's own check.
async fn device_compliance(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.may_change(&fields) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let device = match load_device(&ctx, &state, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let form = EditForm {
        compliance: field(&fields, "state").to_string(),
        note: field(&fields, "note").to_string(),
        ..stored_edit_form(&device)
    };
    let result = match form.compliance.parse::<Compliance>() {
        Ok(c) => {
            let note = Some(form.note.trim().to_string()).filter(|n| !n.is_empty());
            state
                .registry
                .set_compliance(
                    &DeviceRef::Id(device.id),
                    c,
                    note,
                    &Change::by(session.actor()),
                )
                .await
        }
        Err(e) => Err(FieldError::new("state", e).into()),
    };
    match result {
        Ok(d) => {
            tracing::info!(user = %session.user, device = %d.id, compliance = %d.compliance, "compliance set from the console");
            Redirect::to(&format!("/devices/{}", d.id)).into_response()
        }
        Err(e) => match ctx.problem(e) {
            Ok(p) => device_edit_form(&ctx, &session, &device, &form, Some(&p)),
            Err(r) => r,
        },
    }
}

// ---- API tokens

async fn tokens_list(
    ctx: &Ctx,
    state: &WebState,
    session: &Session,
    name: &str,
    scope: &str,
    problem: Option<&Problem>,
) -> Response {
    let (t, m) = (ctx.t, ctx.m);
    let tz = state.config.policy.timezone;
    let tokens = match state.registry.tokens().await {
        Ok(list) => list,
        Err(e) => return ctx.registry_error(&e),
    };
    let p = problem;
    let body = html! {
        p { (m.tokens_intro) }
        @if tokens.is_empty() { p { (t.none) } } @else {
            div.table-wrap { table {
                thead { tr { th { (t.name) } th { (m.scope) } th { (m.created) } th { (m.last_used) } th { (m.revoked_at) } th { (t.actions) } } }
                tbody {
                    @for k in &tokens {
                        tr {
                            td { code { (k.name) } }
                            td { (k.scope.as_str()) }
                            td { (when(k.created_at, &tz)) " " span.muted { (k.created_by) } }
                            td { (k.last_used_at.map(|at| when(at, &tz)).unwrap_or_else(|| "—".into())) }
                            td {
                                @match k.revoked_at {
                                    Some(at) => { span.tag.bad { (t.revoked) } " " (when(at, &tz)) },
                                    None => "—",
                                }
                            }
                            td {
                                @if k.revoked_at.is_none() {
                                    a href={ "/tokens/" (layout::urlencode(&k.name)) "/revoke" } { (t.revoke) }
                                }
                            }
                        }
                    }
                }
            } }
        }
        h2 { (m.create_token) }
        (ctx.notice(p))
        form.card method="post" action="/tokens" {
            (csrf_field(session))
            label for="name" { (m.token_name) }
            input #name type="text" name="name" value=(name) required maxlength="64" aria-invalid=[Problem::invalid(p, &["token_name"])];
            label for="scope" { (m.scope) }
            select #scope name="scope" aria-invalid=[Problem::invalid(p, &["scope"])] {
                @for s in TokenScope::ALL {
                    option value=(s.as_str()) selected[s.as_str() == scope] { (s.as_str()) }
                }
            }
            p { button type="submit" { (m.create_token) } }
        }
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    ctx.page(status, m.nav_tokens, Nav::Tokens, "/tokens", body)
}

async fn tokens_page(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.admin() {
        Ok(s) => s,
        Err(r) => return r,
    };
    tokens_list(&ctx, &state, &session, "", "helpdesk", None).await
}

/// A token refusal as the form shows it: a name taken, a bad name, or the registry's.
fn token_problem(ctx: &Ctx, e: TokenError) -> Result<Problem, Response> {
    match e {
        TokenError::Exists(name) => Ok(Problem {
            field: "token_name",
            text: format!("{name} {}", ctx.m.token_exists),
        }),
        TokenError::Unknown(_) => Err(ctx.error(StatusCode::NOT_FOUND, ctx.t.not_found)),
        TokenError::Registry(RegistryError::Field(f)) => Ok(Problem {
            field: if f.field == "name" {
                "token_name"
            } else {
                f.field
            },
            text: f.message,
        }),
        TokenError::Registry(e) => ctx.problem(e),
    }
}

/// `token create` from the console: the secret is on this answer only, never again.
async fn token_create(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.may_change(&fields) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (name, scope) = (field(&fields, "name"), field(&fields, "scope"));
    let result = match scope.parse::<TokenScope>() {
        Ok(s) => {
            state
                .registry
                .create_token(name, s, &Change::by(session.actor()))
                .await
        }
        Err(e) => Err(TokenError::Registry(FieldError::new("scope", e).into())),
    };
    match result {
        Ok((token, secret)) => {
            tracing::info!(user = %session.user, token = %token.name, scope = %token.scope, "API token created from the console");
            let m = ctx.m;
            let body = html! {
                div.card {
                    dl.fields {
                        dt { (ctx.t.name) } dd { code { (token.name) } }
                        dt { (m.scope) } dd { (token.scope.as_str()) }
                    }
                    p { (m.token_once) }
                    p { code #secret { (secret.expose()) } }
                    p { a href="/tokens" { (m.back_to_tokens) } }
                }
            };
            ctx.page(
                StatusCode::OK,
                m.token_created,
                Nav::Tokens,
                "/tokens",
                body,
            )
        }
        Err(e) => match token_problem(&ctx, e) {
            Ok(p) => tokens_list(&ctx, &state, &session, name, scope, Some(&p)).await,
            Err(r) => r,
        },
    }
}

async fn token_revoke_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.admin() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tokens = match state.registry.tokens().await {
        Ok(list) => list,
        Err(e) => return ctx.registry_error(&e),
    };
    let Some(token) = tokens.into_iter().find(|k| k.name == name) else {
        return ctx.error(StatusCode::NOT_FOUND, ctx.t.not_found);
    };
    let (t, m) = (ctx.t, ctx.m);
    let action = format!("/tokens/{}/revoke", layout::urlencode(&token.name));
    let body = html! {
        div.card {
            p { code { (token.name) } " — " (token.scope.as_str()) }
            p { (m.revoke_token_text) }
            form method="post" action=(action) {
                (csrf_field(&session))
                p {
                    button.danger type="submit" { (t.revoke) }
                    " "
                    a.button.secondary href="/tokens" { (t.cancel) }
                }
            }
        }
    };
    ctx.page(
        StatusCode::OK,
        m.revoke_token_title,
        Nav::Tokens,
        &action,
        body,
    )
}

/// `token revoke` from the console.
async fn token_revoke(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let ctx = Ctx::of(&state, &headers);
    let session = match ctx.may_change(&fields) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state
        .registry
        .revoke_token(&name, &Change::by(session.actor()))
        .await
    {
        Ok(token) => {
            tracing::info!(user = %session.user, token = %token.name, "API token revoked from the console");
            Redirect::to("/tokens").into_response()
        }
        Err(TokenError::Registry(e)) => ctx.registry_error(&e),
        Err(TokenError::Unknown(_)) => ctx.error(StatusCode::NOT_FOUND, ctx.t.not_found),
        Err(other) => ctx.error(StatusCode::CONFLICT, &other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_typed_the_dutch_way_or_iso() {
        let d = NaiveDate::from_ymd_opt(2027, 3, 31);
        assert_eq!(parse_day("valid_until", "31-03-2027").ok(), Some(d));
        assert_eq!(parse_day("valid_until", " 2027-03-31 ").ok(), Some(d));
        assert_eq!(parse_day("valid_until", "").ok(), Some(None));
        let e = parse_day("valid_until", "31/03/2027").err();
        assert_eq!(e.map(|e| e.field), Some("valid_until"));
        assert!(parse_day("valid_until", "32-13-2027").is_err());
    }

    #[test]
    fn macs_are_split_and_a_bad_one_is_named() {
        let macs = parse_macs("mac", "3c:22:fb:00:00:01\n3C-22-FB-00-00-02, ").unwrap();
        assert_eq!(macs.len(), 2);
        let e = parse_macs("mac", "3c:22:fb:00:00:01 zz:zz").unwrap_err();
        assert_eq!(e.field, "mac");
        assert!(e.message.starts_with("zz:zz"), "{}", e.message);
    }
}
