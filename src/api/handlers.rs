//! The route handlers: read the request, call the registry (or the CA), answer JSON.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::activity::{DecisionFilter, SessionFilter};
use crate::mac::MacAddr;
use crate::model::{
    parse_date, Compliance, DeviceKind, DeviceStatus, NewDevice, NewOwner, OwnerSource, Role,
};
use crate::pki;
use crate::registry::{AuditFilter, Change, DeviceEdit, DeviceRef, OwnerEdit};

use super::auth::Caller;
use super::body::{JsonBody, Params};
use super::error::ApiError;
use super::ApiState;

/// Page size when none is asked for.
const DEFAULT_LIMIT: u32 = 100;
/// The largest page.
const MAX_LIMIT: u32 = 1000;

type ApiResult<T> = Result<T, ApiError>;

fn change(caller: &Caller) -> Change {
    Change::by(caller.actor())
}

fn check_limit(limit: Option<u32>, default: u32) -> ApiResult<u32> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// A page of a list.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    items: Vec<T>,
    limit: u32,
    offset: u64,
    /// How many match the filters, over all pages (when counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    /// The offset of the next page, if there may be one.
    next_offset: Option<u64>,
}

fn page<T>(all: Vec<T>, limit: u32, offset: u64) -> Page<T> {
    let total = all.len() as u64;
    let items: Vec<T> = all
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize)
        .collect();
    let next = offset + items.len() as u64;
    Page {
        items,
        limit,
        offset,
        total: Some(total),
        next_offset: (next < total).then_some(next),
    }
}

fn device_ref(id: &str) -> ApiResult<DeviceRef> {
    DeviceRef::parse(id).map_err(|e| ApiError::field("id", e.message))
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such route: {method} {}", uri.path()),
    )
}

/// 200 while every RADIUS listener of this process makes progress; 503 naming the stalled
/// ones (no heartbeat for `server::liveness::STALL_AFTER`), for the load balancer and monitoring.
pub async fn health(State(state): State<ApiState>) -> Response {
    use crate::server::liveness::STALL_AFTER;
    let stalled = state
        .metrics
        .as_ref()
        .and_then(|m| m.liveness.as_ref())
        .map(|l| l.stalled(std::time::Instant::now(), STALL_AFTER))
        .unwrap_or_default();
    if stalled.is_empty() {
        return Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
            .into_response();
    }
    let listeners: Vec<_> = stalled
        .iter()
        .map(|s| {
            serde_json::json!({
                "listener": s.listener,
                "silent_seconds": s.silent_for.as_secs_f64(),
            })
        })
        .collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({
            "status": "stalled",
            "version": env!("CARGO_PKG_VERSION"),
            "stalled": listeners,
        })),
    )
        .into_response()
}

/// Readiness: 200 while the registry database answers, 503 `degraded` (with since when and
/// why) while RADIUS decides on last-known-good data. Liveness is `/health`.
pub async fn ready(State(state): State<ApiState>) -> Response {
    let outage = state
        .metrics
        .as_ref()
        .and_then(|m| m.registry.as_ref())
        .and_then(|h| h.outage());
    match outage {
        None => Json(serde_json::json!({"status": "ready"})).into_response(),
        Some(o) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "degraded",
                "since": o.since,
                "why": format!("the registry database cannot be read: {}", o.why),
                "radius": "answering from last-known-good data (cache.stale_grace)",
            })),
        )
            .into_response(),
    }
}

pub async fn openapi() -> Json<serde_json::Value> {
    Json(super::openapi::document())
}

/// The RADIUS counters in the Prometheus text format (served by `serve` only).
pub async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let Some(m) = &state.metrics else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no RADIUS server in this process: metrics are served by `poortwachter serve`",
        ));
    };
    let mut text = super::metrics::render(m, Some(&state.conns));
    let config = match &m.config {
        Some(in_force) => in_force.load_full(),
        None => state.config.clone(),
    };
    // a few small files read off the runtime
    let (judged, unreadable) = tokio::task::spawn_blocking(move || {
        crate::pki::check_certificates(&config, chrono::Utc::now())
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    super::metrics::render_certificates(&mut text, &judged, &unreadable);
    let mut response = text.into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

// ---- owners

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerQuery {
    /// Words that must each occur in the username, name or e-mail address.
    search: Option<String>,
    role: Option<Role>,
    source: Option<OwnerSource>,
    disabled: Option<bool>,
    limit: Option<u32>,
    #[serde(default)]
    offset: u64,
}

pub async fn list_owners(
    State(state): State<ApiState>,
    Params(q): Params<OwnerQuery>,
) -> ApiResult<Json<Page<crate::model::Owner>>> {
    let limit = check_limit(q.limit, DEFAULT_LIMIT)?;
    if q.search.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(ApiError::field("search", "longer than 200 characters"));
    }
    let owners = state
        .registry
        .find_owners(&crate::registry::OwnerQuery {
            search: q.search,
            role: q.role,
            source: q.source,
            disabled: q.disabled,
        })
        .await?;
    Ok(Json(page(owners, limit, q.offset)))
}

pub async fn get_owner(
    State(state): State<ApiState>,
    Path(username): Path<String>,
) -> ApiResult<Json<crate::model::Owner>> {
    let owner = state.registry.owner(&username).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no owner {username} in the registry"),
        )
    })?;
    Ok(Json(owner))
}

/// `POST /owners`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerBody {
    username: String,
    display_name: String,
    #[serde(default)]
    email: Option<String>,
    role: Role,
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    valid_from: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
}

pub async fn add_owner(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<OwnerBody>,
) -> ApiResult<(StatusCode, Json<crate::model::Owner>)> {
    let new = NewOwner {
        username: body.username,
        display_name: body.display_name,
        email: body.email,
        role: body.role,
        department: body.department,
        valid_from: body
            .valid_from
            .map(|d| parse_date("valid_from", &d))
            .transpose()?,
        valid_until: body
            .valid_until
            .map(|d| parse_date("valid_until", &d))
            .transpose()?,
    };
    let owner = state
        .registry
        .add_owner(new, &change(&caller))
        .await
        .map_err(|e| {
            ApiError::from(e)
                .rename_field("name", "display_name")
                .rename_field("until", "valid_until")
        })?;
    Ok((StatusCode::CREATED, Json(owner)))
}

/// Reads a field that may be absent (keep), `null` (clear) or a value (set): `None`,
/// `Some(None)`, `Some(Some(v))`.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /owners/{u}`: a merge patch (RFC 7396): a field left out stays, `null` clears an
/// optional one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerPatch {
    display_name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    email: Option<Option<String>>,
    role: Option<Role>,
    #[serde(default, deserialize_with = "nullable")]
    department: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    valid_from: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    valid_until: Option<Option<String>>,
    source: Option<OwnerSource>,
}

pub async fn edit_owner(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
    JsonBody(body): JsonBody<OwnerPatch>,
) -> ApiResult<Json<crate::model::Owner>> {
    let date = |field: &'static str, v: Option<Option<String>>| -> ApiResult<_> {
        Ok(match v {
            None => None,
            Some(None) => Some(None),
            Some(Some(d)) => Some(Some(parse_date(field, &d)?)),
        })
    };
    let edit = OwnerEdit {
        display_name: body.display_name,
        email: body.email,
        role: body.role,
        department: body.department,
        valid_from: date("valid_from", body.valid_from)?,
        valid_until: date("valid_until", body.valid_until)?,
        source: body.source,
        external_id: None,
    };
    let owner = state
        .registry
        .edit_owner(&username, edit, &change(&caller))
        .await
        .map_err(|e| {
            ApiError::from(e)
                .rename_field("name", "display_name")
                .rename_field("until", "valid_until")
        })?;
    Ok(Json(owner))
}

pub async fn delete_owner(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .registry
        .delete_owner(&username, &change(&caller))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /owners/{u}/export`: everything held about the person (AVG art. 15).
pub async fn export_owner(
    State(state): State<ApiState>,
    Path(username): Path<String>,
) -> ApiResult<Json<crate::registry::privacy::OwnerExport>> {
    let export = state
        .registry
        .export_owner(&username, chrono::Utc::now())
        .await?;
    Ok(Json(export))
}

/// `POST /owners/{u}/erase`: `{"confirm": "<username>"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseBody {
    confirm: String,
}

pub async fn erase_owner(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
    JsonBody(body): JsonBody<EraseBody>,
) -> ApiResult<Json<crate::model::Owner>> {
    if !body.confirm.eq_ignore_ascii_case(&username) {
        return Err(ApiError::field(
            "confirm",
            "must repeat the username: erasure cannot be undone",
        ));
    }
    let owner = state
        .registry
        .erase_owner(&username, &change(&caller))
        .await?;
    Ok(Json(owner))
}

/// Actions without fields take no body (or `{}`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// `POST /owners/{u}/disable`: why, as the service desk will read it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn owner_disabled(
    state: ApiState,
    caller: Caller,
    username: String,
    disabled: bool,
    reason: Option<String>,
) -> ApiResult<Json<crate::model::Owner>> {
    let owner = state
        .registry
        .set_owner_disabled(&username, disabled, reason, &change(&caller))
        .await
        .map_err(|e| ApiError::from(e).rename_field("owner", "username"))?;
    Ok(Json(owner))
}

pub async fn disable_owner(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
    JsonBody(body): JsonBody<DisableBody>,
) -> ApiResult<Json<crate::model::Owner>> {
    owner_disabled(state, caller, username, true, body.reason).await
}

pub async fn enable_owner(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
    JsonBody(NoFields {}): JsonBody<NoFields>,
) -> ApiResult<Json<crate::model::Owner>> {
    owner_disabled(state, caller, username, false, None).await
}

// ---- devices

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    owner: Option<String>,
    status: Option<DeviceStatus>,
    compliance: Option<Compliance>,
    /// Days: only active devices whose current certificate ends within them (or has ended),
    /// soonest first.
    expiring_within: Option<u32>,
    limit: Option<u32>,
    #[serde(default)]
    offset: u64,
}

pub async fn list_devices(
    State(state): State<ApiState>,
    Params(q): Params<DeviceQuery>,
) -> ApiResult<Json<Page<crate::model::Device>>> {
    let limit = check_limit(q.limit, DEFAULT_LIMIT)?;
    if let Some(owner) = &q.owner {
        if state
            .registry
            .owner(owner)
            .await
            .map_err(|e| ApiError::from(e).rename_field("username", "owner"))?
            .is_none()
        {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no owner {owner} in the registry"),
            )
            .with_field("owner"));
        }
    }
    let devices = match q.expiring_within {
        Some(days) => state
            .registry
            .expiring_certificates(chrono::Duration::days(i64::from(days)), chrono::Utc::now())
            .await?
            .into_iter()
            .map(|(d, _)| d)
            .filter(|d| {
                q.owner
                    .as_ref()
                    .is_none_or(|o| d.owner.eq_ignore_ascii_case(o))
            })
            .collect::<Vec<_>>(),
        None => state.registry.devices(q.owner.as_deref()).await?,
    };
    let devices = devices
        .into_iter()
        .filter(|d| q.status.is_none_or(|s| d.status == s))
        .filter(|d| q.compliance.is_none_or(|c| d.compliance == c))
        .collect();
    Ok(Json(page(devices, limit, q.offset)))
}

/// `PATCH /devices/{id}`: label, kind, MACs to add and to remove.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    label: Option<String>,
    kind: Option<DeviceKind>,
    #[serde(default)]
    add_macs: Vec<String>,
    #[serde(default)]
    remove_macs: Vec<String>,
}

pub async fn edit_device(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DevicePatch>,
) -> ApiResult<Json<crate::model::Device>> {
    let macs = |field: &'static str, list: &[String]| -> ApiResult<Vec<MacAddr>> {
        list.iter()
            .map(|m| MacAddr::parse_any(m).map_err(|e| ApiError::field(field, format!("{m}: {e}"))))
            .collect()
    };
    let edit = DeviceEdit {
        label: body.label,
        kind: body.kind,
        add_macs: macs("add_macs", &body.add_macs)?,
        remove_macs: macs("remove_macs", &body.remove_macs)?,
    };
    let device = state
        .registry
        .edit_device(&device_ref(&id)?, edit, &change(&caller))
        .await
        .map_err(|e| {
            ApiError::from(e)
                .rename_field("add_mac", "add_macs")
                .rename_field("remove_mac", "remove_macs")
                .rename_field("mac", "add_macs")
        })?;
    Ok(Json(device))
}

pub async fn delete_device(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .registry
        .delete_device(&device_ref(&id)?, &change(&caller))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_device(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let device = state.registry.find_device(&device_ref(&id)?).await?;
    let certificates = state.registry.certificates(device.id).await?;
    let mut value = serde_json::to_value(&device).map_err(|e| ApiError::internal(&e))?;
    value["certificates"] =
        serde_json::to_value(&certificates).map_err(|e| ApiError::internal(&e))?;
    Ok(Json(value))
}

/// `POST /devices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    owner: String,
    macs: Vec<String>,
    label: String,
    #[serde(default = "default_kind")]
    kind: DeviceKind,
}

fn default_kind() -> DeviceKind {
    DeviceKind::Laptop
}

#[derive(Debug, Serialize)]
pub struct Registered {
    device: crate::model::Device,
    warnings: Vec<String>,
}

pub async fn register_device(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<DeviceBody>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    for (i, mac) in body.macs.iter().enumerate() {
        // the registry checks them all again; here each is named by its place
        MacAddr::parse_any(mac)
            .and_then(MacAddr::check_device)
            .map_err(|e| ApiError::field(format!("macs[{i}]"), e.to_string()))?;
    }
    let (new, warnings) = NewDevice::from_input(&body.owner, &body.macs, &body.label, body.kind)
        .map_err(|e| ApiError::from(e).rename_field("mac", "macs"))?;
    let device = state
        .registry
        .register_device(new, &change(&caller))
        .await
        .map_err(|e| ApiError::from(e).rename_field("mac", "macs"))?;
    Ok((StatusCode::CREATED, Json(Registered { device, warnings })))
}

/// `POST /devices/{id}/revoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    reason: String,
}

/// `POST /devices/{id}/lost`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LostBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn device_status(
    state: ApiState,
    caller: Caller,
    id: String,
    status: DeviceStatus,
    reason: Option<String>,
) -> ApiResult<Json<crate::model::Device>> {
    let device = state
        .registry
        .set_device_status(&device_ref(&id)?, status, reason, &change(&caller))
        .await?;
    Ok(Json(device))
}

pub async fn revoke_device(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RevokeBody>,
) -> ApiResult<Json<crate::model::Device>> {
    device_status(state, caller, id, DeviceStatus::Revoked, Some(body.reason)).await
}

pub async fn lost_device(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<LostBody>,
) -> ApiResult<Json<crate::model::Device>> {
    device_status(state, caller, id, DeviceStatus::Lost, body.reason).await
}

pub async fn found_device(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(NoFields {}): JsonBody<NoFields>,
) -> ApiResult<Json<crate::model::Device>> {
    device_status(state, caller, id, DeviceStatus::Active, None).await
}

/// `POST|PUT /devices/{id}/compliance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceBody {
    state: Compliance,
    #[serde(default)]
    note: Option<String>,
}

pub async fn set_compliance(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ComplianceBody>,
) -> ApiResult<Json<crate::model::Device>> {
    let device = state
        .registry
        .set_compliance(&device_ref(&id)?, body.state, body.note, &change(&caller))
        .await?;
    Ok(Json(device))
}

/// What `POST /devices/{id}/certificate` answers: the bundle and its password, once.
#[derive(Serialize)]
pub struct IssuedBundle {
    device: uuid::Uuid,
    owner: String,
    serial: String,
    fingerprint: String,
    not_before: chrono::DateTime<chrono::Utc>,
    not_after: chrono::DateTime<chrono::Utc>,
    capped_by_contract: bool,
    /// PKCS#12 (certificate, key, CA), base64.
    pkcs12: String,
    /// The bundle's one-time password: shown here once, stored nowhere.
    password: String,
    /// The CA certificate, PEM.
    ca_pem: String,
    /// Every file of the bundle (profiles, installer, instructions), as `issue-cert` writes
    /// them.
    files: Vec<BundleFileBody>,
    /// What the operator should know (e.g. the Apple profile left unsigned).
    warnings: Vec<String>,
}

/// One file of a bundle.
#[derive(Serialize)]
pub struct BundleFileBody {
    name: String,
    media_type: &'static str,
    /// Holds the device's key (the PKCS#12 or a profile embedding it).
    private: bool,
    /// The content, base64.
    content: String,
}

/// The body of `POST /devices/{id}/certificate`: for which systems (all when absent).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    #[serde(default)]
    os: Vec<crate::pki::Platform>,
}

/// Issues a certificate and its bundle as `device issue-cert` does
/// ([`crate::bundle::issue_bundle`]), answering with the files instead of writing them;
/// nothing is returned unless the certificate is recorded.
pub async fn issue_certificate(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<IssueBody>,
) -> ApiResult<Response> {
    let change = change(&caller);
    let request = crate::bundle::BundleRequest {
        device: device_ref(&id)?,
        platforms: body.os,
        password: None,
    };
    let (issued, ()) =
        crate::bundle::issue_bundle(&state.registry, &state.config, request, &change, |_| Ok(()))
            .await
            .map_err(bundle_error)?;
    for w in &issued.warnings {
        tracing::warn!(device = %issued.device.id, "{w}");
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let pkcs12 = issued
        .files
        .first()
        .map(|f| b64.encode(&f.bytes))
        .unwrap_or_default();
    let ca_pem = issued
        .files
        .iter()
        .find(|f| f.name == "ca.pem")
        .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
        .unwrap_or_default();
    let answer = IssuedBundle {
        device: issued.device.id,
        owner: issued.owner.username,
        serial: issued.serial,
        fingerprint: issued.fingerprint,
        not_before: issued.not_before,
        not_after: issued.not_after,
        capped_by_contract: issued.capped_by_contract,
        pkcs12,
        password: issued.password.expose().to_string(),
        ca_pem,
        files: issued
            .files
            .iter()
            .map(|f| BundleFileBody {
                name: f.name.clone(),
                media_type: f.media_type,
                private: f.private,
                content: b64.encode(&f.bytes),
            })
            .collect(),
        warnings: issued.warnings,
    };
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A bundle that could not be issued, as the API says it.
fn bundle_error(e: crate::bundle::BundleError) -> ApiError {
    use crate::bundle::BundleError;
    match e {
        BundleError::Registry(e) => e.into(),
        BundleError::Pki(pki::PkiError::CaKeyOffline(_)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "certificate issuing is offline on this server: the CA key is kept on another \
             machine (an offline CA); issue the certificate there with `poortwachter device \
             issue-cert`",
        ),
        BundleError::Pki(e @ pki::PkiError::CaExpired(_)) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        BundleError::Pki(
            e @ (pki::PkiError::NoCa(_) | pki::PkiError::Io { .. } | pki::PkiError::Pem { .. }),
        ) => {
            tracing::error!(error = %e, "the onboarding CA cannot be loaded");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the onboarding CA is not available on this server (pki.ca_cert, pki.ca_key)",
            )
        }
        e => ApiError::internal(&e),
    }
}

/// `POST /devices/{id}/posture`: a report from an MDM or agent, evaluated against
/// `[compliance]` and recorded with the device's new compliance, as `device posture` does.
pub async fn post_posture(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(report): JsonBody<crate::posture::PostureReport>,
) -> ApiResult<Json<crate::posture::PostureOutcome>> {
    let outcome = state
        .registry
        .submit_posture_within(
            &device_ref(&id)?,
            report,
            &state.config.compliance,
            Some(state.config.policy.compliance_max_age.chrono()),
            &change(&caller),
        )
        .await?;
    Ok(Json(outcome))
}

// ---- activity and audit

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    #[serde(default)]
    active: bool,
    mac: Option<String>,
    limit: Option<u32>,
}

fn query_mac(mac: Option<String>) -> ApiResult<Option<MacAddr>> {
    mac.map(|m| MacAddr::parse_any(&m).map_err(|e| ApiError::field("mac", e.to_string())))
        .transpose()
}

pub async fn sessions(
    State(state): State<ApiState>,
    Params(q): Params<SessionQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let filter = SessionFilter {
        active_only: q.active,
        mac: query_mac(q.mac)?,
        limit: Some(check_limit(q.limit, 50)?),
    };
    let found = state.registry.sessions(&filter).await?;
    Ok(Json(serde_json::json!({ "items": found })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionQuery {
    mac: Option<String>,
    username: Option<String>,
    limit: Option<u32>,
}

pub async fn decisions(
    State(state): State<ApiState>,
    Params(q): Params<DecisionQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let filter = DecisionFilter {
        mac: query_mac(q.mac)?,
        username: q.username,
        limit: Some(check_limit(q.limit, 20)?),
    };
    let found = state.registry.decisions(&filter).await?;
    // requests for unregistered devices are counted per minute, not stored one row each: for
    // a MAC, the minutes whose sample holds it
    let counted = match filter.mac {
        Some(mac) => {
            state
                .registry
                .decision_aggregates(mac, filter.limit.unwrap_or(20))
                .await?
        }
        None => Vec::new(),
    };
    Ok(Json(
        serde_json::json!({ "items": found, "counted": counted }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    target: Option<String>,
    by: Option<String>,
    limit: Option<u32>,
    #[serde(default)]
    offset: u64,
}

pub async fn audit(
    State(state): State<ApiState>,
    Params(q): Params<AuditQuery>,
) -> ApiResult<Json<Page<crate::model::AuditEntry>>> {
    let limit = check_limit(q.limit, 50)?;
    // one more than asked: whether there is a next page
    let mut found = state
        .registry
        .audit(&AuditFilter {
            target_id: q.target,
            actor: q.by,
            limit: Some(limit + 1),
            offset: q.offset,
        })
        .await?;
    let more = found.len() > limit as usize;
    found.truncate(limit as usize);
    let next = q.offset + found.len() as u64;
    Ok(Json(Page {
        items: found,
        limit,
        offset: q.offset,
        total: None,
        next_offset: more.then_some(next),
    }))
}
