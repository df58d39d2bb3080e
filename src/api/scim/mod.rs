//! SCIM 2.0 provisioning (RFC 7643, RFC 7644) at `/scim/v2`: an identity provider (Entra
//! ID, Okta, Keycloak) creates, changes, deactivates and deletes owners as Users, with a
//! token of scope `scim` (and only such a token: see `auth.rs`). The audit actor is
//! `scim:<token name>`.
//!
//! Every change goes through the [`Registry`](crate::registry::Registry), as the CLI's do:
//! - create: [`add_owner_from`](crate::registry::Registry::add_owner_from) with source
//!   [`OwnerSource::Scim`] and the `externalId`;
//! - replace (PUT) and PATCH: [`edit_owner`](crate::registry::Registry::edit_owner), and
//!   `active` through [`set_owner_disabled`](crate::registry::Registry::set_owner_disabled)
//!   with [`DEACTIVATED`] as the reason;
//! - delete: the owner is disabled with [`DELETED`] as the reason, not removed: history and
//!   certificates stay, their devices are refused and the enforcer disconnects their
//!   sessions. The User is gone for SCIM from then on (404).
//!
//! Which owners SCIM sees: those whose source SCIM claims ([`OwnerSource::claims`]: SCIM's
//! own and the CSV import's, which the first change takes over). An owner added by hand or
//! by the directory sync is not SCIM's: its id answers 404, a filter does not find it, and a
//! create with its userName is refused (409 uniqueness). SCIM's `active: true` enables only
//! an owner SCIM itself deactivated: an owner ICT disabled by hand stays disabled.
//!
//! PATCH renders the owner as a User, applies the operations to that ([`patch`]), and reads
//! the result as a PUT body ([`user::read_user`]): one set of rules for both.

mod error;
mod filter;
mod patch;
mod schema;
mod user;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::Value;

use crate::model::{Owner, OwnerSource};
use crate::registry::{Change, OwnerEdit};

pub use error::{ScimError, ScimType, SCIM_MEDIA_TYPE};

/// The SCIM parsers an identity provider's requests reach, for the fuzz target
/// (`fuzz/fuzz_targets/owner_feeds.rs`): not an API of the crate.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::filter::{parse_filter, parse_patch_path};
    pub use super::patch::{apply, parse_patch};
}

use super::auth::Caller;
use super::error::ApiError;
use super::ApiState;

/// Why SCIM disabled an owner whose `active` it set to false.
pub const DEACTIVATED: &str = "uitgeschakeld via SCIM / deactivated by the identity provider";
/// Why SCIM disabled an owner it deleted.
pub const DELETED: &str = "verwijderd via SCIM / deprovisioned";

/// Where the routes are mounted.
pub const BASE_PATH: &str = "/scim/v2";

/// The SCIM routes, under [`BASE_PATH`]; `authorize` is laid over them by the caller.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/Users", get(list_users).post(create_user))
        .route(
            "/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_by_id))
}

/// 404 for a path under `/scim/v2` that is no route.
pub async fn not_found(method: Method, uri: Uri) -> ScimError {
    ScimError::new(
        StatusCode::NOT_FOUND,
        format!("no such SCIM endpoint: {method} {}", uri.path()),
    )
}

type ScimResult<T> = Result<T, ScimError>;

/// A SCIM answer: a status and a resource, as `application/scim+json`, with the User's
/// `ETag` and (for a create) `Location`.
struct Scim {
    status: StatusCode,
    body: Value,
    location: bool,
}

impl Scim {
    fn ok(body: Value) -> Scim {
        Scim {
            status: StatusCode::OK,
            body,
            location: false,
        }
    }
}

impl IntoResponse for Scim {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_MEDIA_TYPE),
        );
        let meta = &self.body["meta"];
        if let Some(v) = meta["version"]
            .as_str()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            headers.insert(header::ETAG, v);
        }
        if self.location {
            if let Some(v) = meta["location"]
                .as_str()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                headers.insert(header::LOCATION, v);
            }
        }
        (self.status, headers, self.body.to_string()).into_response()
    }
}

impl From<ApiError> for ScimError {
    fn from(e: ApiError) -> Self {
        let detail = match e.field {
            Some(f) => format!("{f}: {}", e.message),
            None => e.message,
        };
        ScimError {
            status: e.status,
            scim_type: None,
            detail,
        }
    }
}

/// The base URL of the SCIM routes as the client reached them (`https://host/scim/v2`),
/// for `meta.location`.
struct Base(String);

impl FromRequestParts<ApiState> for Base {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> ScimResult<Self> {
        let scheme = if state.config.api.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .map(str::to_string)
            .or_else(|| state.config.api.listen.map(|a| a.to_string()))
            .unwrap_or_else(|| "localhost".to_string());
        Ok(Base(format!("{scheme}://{host}{BASE_PATH}")))
    }
}

/// A SCIM request body: a JSON object, sent as `application/scim+json` or
/// `application/json`.
struct Body(Value);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &S) -> ScimResult<Self> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        if content_type
            .as_deref()
            .is_some_and(|ct| ct != "application/json" && !ct.ends_with("+json"))
        {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("send the body as {SCIM_MEDIA_TYPE}"),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ScimError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the body is larger than this server accepts (api.max_body)",
                )
            } else {
                ScimError::bad(ScimType::InvalidSyntax, "the body could not be read")
            }
        })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ScimError::bad(ScimType::InvalidSyntax, format!("malformed JSON: {e}")))?;
        if !value.is_object() {
            return Err(ScimError::bad(
                ScimType::InvalidSyntax,
                "the body must be a JSON object",
            ));
        }
        Ok(Body(value))
    }
}

fn change(caller: &Caller) -> Change {
    Change::by(caller.actor())
}

/// Whether SCIM deleted this owner (it stays, disabled, for its history).
fn deleted(owner: &Owner) -> bool {
    owner.disabled && owner.disabled_reason.as_deref() == Some(DELETED)
}

/// Whether SCIM may see and change this owner.
fn visible(owner: &Owner) -> bool {
    OwnerSource::Scim.claims(owner.source) && !deleted(owner)
}

/// Every owner SCIM sees.
async fn scim_owners(state: &ApiState) -> ScimResult<Vec<Owner>> {
    Ok(state
        .registry
        .owners()
        .await?
        .into_iter()
        .filter(visible)
        .collect())
}

/// The owner a User id names, if SCIM sees it.
async fn owner_by_id(state: &ApiState, id: &str) -> ScimResult<Owner> {
    let Ok(uuid) = uuid::Uuid::parse_str(id.trim()) else {
        return Err(ScimError::not_found(id));
    };
    state
        .registry
        .owners()
        .await?
        .into_iter()
        .find(|o| o.id == uuid && visible(o))
        .ok_or_else(|| ScimError::not_found(id))
}

/// Reads a positive integer query parameter.
fn int_param(params: &HashMap<String, String>, name: &str) -> ScimResult<Option<i64>> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ScimError::invalid_value(name, format!("`{v}` is not an integer")))
        })
        .transpose()
}

/// `GET /Users`: `filter`, `startIndex` (1-based) and `count` (RFC 7644 §3.4.2).
async fn list_users(
    State(state): State<ApiState>,
    Base(base): Base,
    Query(params): Query<HashMap<String, String>>,
) -> ScimResult<Scim> {
    let filter = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("filter"))
        .map(|(_, v)| filter::parse_filter(v))
        .transpose()?;
    // RFC 7644 §3.4.2.4: below 1 counts as 1; a negative count as 0
    let start = int_param(&params, "startIndex")?.unwrap_or(1).max(1) as u64;
    let count = int_param(&params, "count")?
        .map(|c| c.max(0) as u64)
        .unwrap_or(schema::MAX_RESULTS)
        .min(schema::MAX_RESULTS);
    let matched: Vec<Value> = scim_owners(&state)
        .await?
        .iter()
        .map(|o| user::render_user(o, &base))
        .filter(|u| filter.as_ref().is_none_or(|f| f.matches(u)))
        .collect();
    let total = matched.len();
    let page: Vec<Value> = matched
        .into_iter()
        .skip(usize::try_from(start - 1).unwrap_or(usize::MAX))
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .collect();
    Ok(Scim::ok(serde_json::json!({
        "schemas": [schema::LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": page.len(),
        "Resources": page,
    })))
}

async fn get_user(
    State(state): State<ApiState>,
    Base(base): Base,
    Path(id): Path<String>,
) -> ScimResult<Scim> {
    let owner = owner_by_id(&state, &id).await?;
    Ok(Scim::ok(user::render_user(&owner, &base)))
}

/// `POST /Users`. A userName SCIM deleted before comes back (the same id, enabled again);
/// one in use otherwise is refused (409 uniqueness).
async fn create_user(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Base(base): Base,
    Body(body): Body,
) -> ScimResult<Scim> {
    let input = user::read_user(&body, None)?;
    let new = input.new_owner().validate()?;
    let change = change(&caller);
    let owner = match state.registry.owner(&new.username).await? {
        None => {
            let owner = state
                .registry
                .add_owner_from(new, OwnerSource::Scim, input.external_id.clone(), &change)
                .await?;
            set_active(&state, owner, input.active, &change).await?
        }
        Some(existing) if OwnerSource::Scim.claims(existing.source) && deleted(&existing) => {
            // back from deletion: the same owner, enabled, or deactivated as `active` says
            let owner = apply(&state, &existing, &input, &change).await?;
            let reason = (!input.active).then(|| DEACTIVATED.to_string());
            state
                .registry
                .set_owner_disabled(&owner.username, !input.active, reason, &change)
                .await?
        }
        Some(existing) => {
            let managed = match existing.source {
                OwnerSource::Manual => " (an owner ICT added by hand)",
                OwnerSource::Directory => " (an owner the directory sync manages)",
                OwnerSource::Import | OwnerSource::Scim => "",
            };
            return Err(ScimError {
                status: StatusCode::CONFLICT,
                scim_type: Some(ScimType::Uniqueness),
                detail: format!("userName {} is already in use{managed}", existing.username),
            });
        }
    };
    Ok(Scim {
        status: StatusCode::CREATED,
        body: user::render_user(&owner, &base),
        location: true,
    })
}

/// `PUT /Users/{id}`: the User as sent replaces the owner's fields.
async fn replace_user(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Base(base): Base,
    Path(id): Path<String>,
    Body(body): Body,
) -> ScimResult<Scim> {
    let owner = owner_by_id(&state, &id).await?;
    let input = user::read_user(&body, None)?;
    let owner = update(&state, owner, input, &change(&caller)).await?;
    Ok(Scim::ok(user::render_user(&owner, &base)))
}

/// `PATCH /Users/{id}`: the operations applied to the User, read back as a PUT.
async fn patch_user(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Base(base): Base,
    Path(id): Path<String>,
    Body(body): Body,
) -> ScimResult<Scim> {
    let operations = patch::parse_patch(&body)?;
    let owner = owner_by_id(&state, &id).await?;
    let mut resource = user::render_user(&owner, &base);
    patch::apply(&mut resource, &operations)?;
    let input = user::read_user(&resource, Some(&owner.display_name))?;
    let owner = update(&state, owner, input, &change(&caller)).await?;
    Ok(Scim::ok(user::render_user(&owner, &base)))
}

/// `DELETE /Users/{id}`: the owner is disabled with [`DELETED`], kept with their history;
/// 204, and 404 for the id from then on.
async fn delete_user(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ScimResult<StatusCode> {
    let owner = owner_by_id(&state, &id).await?;
    let change = change(&caller);
    let after = state
        .registry
        .set_owner_disabled(&owner.username, true, Some(DELETED.to_string()), &change)
        .await?;
    if !deleted(&after) {
        return Err(ScimError::internal(&format!(
            "owner {} is disabled already and the registry kept its reason",
            after.username
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Checks a User for an owner (its userName cannot change), then applies it.
async fn update(
    state: &ApiState,
    owner: Owner,
    input: user::UserInput,
    change: &Change,
) -> ScimResult<Owner> {
    if !input.user_name.eq_ignore_ascii_case(&owner.username) {
        return Err(ScimError::bad(
            ScimType::Mutability,
            format!(
                "userName cannot change ({} to {}): the username is the owner's identity here; \
                 delete the User and create it again",
                owner.username, input.user_name
            ),
        ));
    }
    input.new_owner().validate()?;
    let owner = apply(state, &owner, &input, change).await?;
    set_active(state, owner, input.active, change).await
}

/// Writes a User's fields to the owner (source SCIM from then on).
async fn apply(
    state: &ApiState,
    owner: &Owner,
    input: &user::UserInput,
    change: &Change,
) -> ScimResult<Owner> {
    let edit = OwnerEdit {
        display_name: Some(input.display_name.clone()),
        email: Some(input.email.clone()),
        role: Some(input.role),
        department: Some(input.department.clone()),
        valid_from: Some(input.valid_from),
        valid_until: Some(input.valid_until),
        source: Some(OwnerSource::Scim),
        external_id: Some(input.external_id.clone()),
    };
    Ok(state
        .registry
        .edit_owner(&owner.username, edit, change)
        .await?)
}

/// `active`: false disables the owner ([`DEACTIVATED`]); true enables only an owner SCIM
/// disabled.
async fn set_active(
    state: &ApiState,
    owner: Owner,
    active: bool,
    change: &Change,
) -> ScimResult<Owner> {
    let by_scim = matches!(
        owner.disabled_reason.as_deref(),
        Some(DEACTIVATED | DELETED)
    );
    let owner = match (active, owner.disabled) {
        (false, false) => {
            state
                .registry
                .set_owner_disabled(&owner.username, true, Some(DEACTIVATED.to_string()), change)
                .await?
        }
        (true, true) if by_scim => {
            state
                .registry
                .set_owner_disabled(&owner.username, false, None, change)
                .await?
        }
        _ => owner,
    };
    Ok(owner)
}

async fn service_provider_config(Base(base): Base) -> Scim {
    Scim::ok(schema::service_provider_config(&base))
}

async fn resource_types(Base(base): Base) -> Scim {
    Scim::ok(schema::resource_types(&base))
}

async fn resource_type(Base(base): Base, Path(id): Path<String>) -> ScimResult<Scim> {
    schema::resource_type(&base, &id)
        .map(Scim::ok)
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, format!("no resource type {id}")))
}

async fn schemas(Base(base): Base) -> Scim {
    Scim::ok(schema::schemas(&base))
}

async fn schema_by_id(Base(base): Base, Path(id): Path<String>) -> ScimResult<Scim> {
    schema::schema(&base, &id)
        .map(Scim::ok)
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, format!("no schema {id}")))
}
