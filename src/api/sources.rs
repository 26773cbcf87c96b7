//! `/v1/tenants/{tenant}/sources`: the inbound gateway's sources (create, list, get, patch,
//! delete), their secret rotation and their log of refused requests. Requests themselves
//! arrive on `/in/{source_id}` (`inbound.rs`).

use super::audit::{Author, Origin};
use super::auth::{Caller, Scope};
use super::endpoint_actions::{rotated_out, RotateQuery};
use super::endpoints::nullable;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Whole;
use super::extract::{JsonObject, Path, Query, RawBody};
use super::source_schema::{NewSource, SourcePatch};
use super::{page_limit, rfc3339, AppState, ListQuery, TenantPath};
use crate::inbound::source::{ApiKeyHeader, BasicCredentials, HmacScheme, Kind, Source};
use crate::store::audit::Target;
use crate::store::sources::source_changes;
use crate::store::Written;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(fetch, update, remove))
        .routes(routes!(rotate_secret))
        .routes(routes!(rejections))
}

#[derive(Debug, Deserialize)]
pub struct SourcePath {
    pub tenant: String,
    pub id: String,
}

impl IntoParams for SourcePath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            super::schema::path_param("tenant", super::TENANT_DOC, super::schema::tenant()),
            super::schema::path_param(
                "id",
                "Source id, `src_…` (404 if malformed or not of this tenant).",
                super::schema::source_id(),
            ),
        ]
    }
}

/// The writable fields of a source (the document's `NewSource` and `SourcePatch`). A PATCH
/// sends any subset; `null` resets an optional field to its default. Unknown fields are refused.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SourceFields {
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    kind: Option<Option<Kind>>,
    #[serde(default, deserialize_with = "nullable")]
    secret: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    hmac: Option<Option<HmacScheme>>,
    #[serde(default, deserialize_with = "nullable")]
    basic: Option<Option<BasicCredentials>>,
    #[serde(default, deserialize_with = "nullable")]
    api_key: Option<Option<ApiKeyHeader>>,
    #[serde(default, deserialize_with = "nullable")]
    tolerance_s: Option<Option<Whole<u64>>>,
    #[serde(default, deserialize_with = "nullable")]
    type_prefix: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    allowed_ips: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    rate_limit_per_s: Option<Option<Whole<u32>>>,
    #[serde(default, deserialize_with = "nullable")]
    dedup_window_s: Option<Option<Whole<u64>>>,
    #[serde(default, deserialize_with = "nullable")]
    dedup_header: Option<Option<String>>,
}

impl SourceFields {
    /// A field `kind` does not use is refused: on creation even as `null` (the document's
    /// `NewSource` lists, per kind, exactly the fields it takes); in a PATCH naming the kind,
    /// unless `null` (which clears it).
    fn refuse_foreign_fields(&self, kind: Kind, null_allowed: bool) -> Result<(), ApiError> {
        fn sent<T>(field: &Option<Option<T>>, null_allowed: bool) -> bool {
            matches!(field, Some(Some(_))) || (field.is_some() && !null_allowed)
        }
        let present = [
            ("secret", sent(&self.secret, null_allowed), kind.signs()),
            ("hmac", sent(&self.hmac, null_allowed), kind == Kind::Hmac),
            ("basic", sent(&self.basic, null_allowed), kind == Kind::Basic),
            ("api_key", sent(&self.api_key, null_allowed), kind == Kind::ApiKey),
            (
                "dedup_header",
                sent(&self.dedup_header, null_allowed),
                !kind.has_provider_id(),
            ),
        ];
        match present.iter().find(|(_, present, used)| *present && !used) {
            Some((field, _, _)) => Err(ApiError::invalid(format!(
                "{field}: not used by kind {} (omit it)",
                kind.name()
            ))),
            None => Ok(()),
        }
    }

    /// Set the fields sent. A new kind first drops what the old kind used and the new one
    /// does not (its secret, scheme or credentials).
    fn apply(self, s: &mut Source) {
        if let Some(v) = self.name {
            s.name = v;
        }
        if let Some(Some(kind)) = self.kind {
            if kind != s.kind {
                s.kind = kind;
                if !kind.signs() {
                    s.secret = None;
                    s.previous_secrets.clear();
                }
                if kind != Kind::Hmac {
                    s.hmac = None;
                }
                if kind != Kind::Basic {
                    s.basic = None;
                }
                if kind != Kind::ApiKey {
                    s.api_key = None;
                }
                if kind.has_provider_id() {
                    s.dedup_header = None;
                }
            }
        }
        if let Some(v) = self.secret {
            s.secret = v;
        }
        if let Some(v) = self.hmac {
            s.hmac = v;
        }
        if let Some(v) = self.basic {
            s.basic = v;
        }
        if let Some(v) = self.api_key {
            s.api_key = v;
        }
        if let Some(v) = self.tolerance_s {
            s.tolerance_s = v.map_or(crate::inbound::source::DEFAULT_TOLERANCE_S, |w| w.0);
        }
        if let Some(v) = self.type_prefix {
            s.type_prefix = v.unwrap_or_default();
        }
        if let Some(v) = self.allowed_ips {
            s.allowed_ips = v.unwrap_or_default();
        }
        if let Some(v) = self.rate_limit_per_s {
            s.rate_limit_per_s = v.map(|w| w.0);
        }
        if let Some(v) = self.dedup_window_s {
            s.dedup_window_s = v.map_or(crate::inbound::source::DEFAULT_DEDUP_WINDOW_S, |w| w.0);
        }
        if let Some(v) = self.dedup_header {
            s.dedup_header = v;
        }
    }
}

/// A source as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceOut {
    id: String,
    name: String,
    kind: Kind,
    /// The signing secret (kinds that sign), else null.
    secret: Option<String>,
    hmac: Option<HmacScheme>,
    basic: Option<BasicCredentials>,
    api_key: Option<ApiKeyHeader>,
    tolerance_s: u64,
    type_prefix: String,
    allowed_ips: Vec<String>,
    rate_limit_per_s: Option<u32>,
    dedup_window_s: u64,
    dedup_header: Option<String>,
    /// Where the provider posts: `/in/src_…` on any node.
    ingest_url: String,
    created_at: String,
    updated_at: String,
}

impl From<Source> for SourceOut {
    fn from(s: Source) -> SourceOut {
        SourceOut {
            ingest_url: s.ingest_path(),
            id: s.id,
            name: s.name,
            kind: s.kind,
            secret: s.secret,
            hmac: s.hmac,
            basic: s.basic,
            api_key: s.api_key,
            tolerance_s: s.tolerance_s,
            type_prefix: s.type_prefix,
            allowed_ips: s.allowed_ips,
            rate_limit_per_s: s.rate_limit_per_s,
            dedup_window_s: s.dedup_window_s,
            dedup_header: s.dedup_header,
            created_at: rfc3339(s.created_at_ms),
            updated_at: rfc3339(s.updated_at_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourcePage {
    data: Vec<SourceOut>,
    /// Pass as `cursor` for the next page; null at the end.
    next_cursor: Option<String>,
}

/// Save a changed source, read as `before`, unless it was deleted (404) or changed (409)
/// meanwhile, recorded as `action`. Its `updated_at_ms` moves forward by at least 1 ms, so
/// every version differs.
async fn replace(
    state: &AppState,
    author: &Author,
    before: &Source,
    source: &mut Source,
    action: &str,
) -> ApiResult<()> {
    source.updated_at_ms = hookline_actors::now_ms().max(before.updated_at_ms + 1);
    let changes = source_changes(Some(before), Some(source));
    let entry = author.entry(&source.tenant, action, Target::new("source", &source.id), changes);
    match state.store.replace_source(source, before.updated_at_ms, &entry).await? {
        Written::Done => Ok(()),
        Written::Gone => Err(ApiError::not_found("source")),
        Written::Changed => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "the source changed while this request was applied; read it again and retry",
        )),
    }
}

/// The source, if it exists and belongs to `tenant` (404 otherwise).
async fn load(state: &AppState, tenant: &str, id: &str) -> ApiResult<Source> {
    if !crate::ids::is_source_id(id) {
        return Err(ApiError::not_found("source"));
    }
    match state.store.get_source(id).await? {
        Some(source) if source.tenant == tenant => Ok(source),
        _ => Err(ApiError::not_found("source")),
    }
}

/// Create a source. `kind` decides which other fields it takes (see `NewSource`).
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/sources",
    operation_id = "create_source",
    tag = "sources",
    params(TenantPath),
    request_body = NewSource,
    responses(
        (status = 201, description = "created; `ingest_url` is where the provider posts", body = SourceOut),
        (status = 400, description = "invalid JSON, a missing, unknown or invalid field, or a field the kind does \
            not use (the message names it), or a malformed tenant", body = ErrorBody),
        (status = 413, description = "the body is larger than `ingest.max_payload_bytes` + 16 KiB", body = ErrorBody),
        (status = 415, description = "content-type is not application/json", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(TenantPath { tenant }): Path<TenantPath>,
    JsonObject(fields): JsonObject<SourceFields>,
) -> ApiResult<(StatusCode, axum::Json<SourceOut>)> {
    caller.authorize(&tenant, Scope::SourcesWrite)?;
    let kind = fields
        .kind
        .flatten()
        .ok_or_else(|| ApiError::invalid("kind: is required"))?;
    if fields.name.is_none() {
        return Err(ApiError::invalid("name: is required"));
    }
    fields.refuse_foreign_fields(kind, false)?;
    let now = hookline_actors::now_ms();
    let mut source = Source::new(crate::ids::new_source_id(), tenant, String::new(), kind, now);
    fields.apply(&mut source);
    source.check().map_err(ApiError::invalid)?;
    let changes = source_changes(None, Some(&source));
    let entry = origin.by(&caller).entry(
        &source.tenant,
        "source.created",
        Target::new("source", &source.id),
        changes,
    );
    state.store.put_source(&source, &entry).await?;
    Ok((StatusCode::CREATED, axum::Json(source.into())))
}

/// The tenant's sources, oldest first, paged.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/sources",
    operation_id = "list_sources",
    tag = "sources",
    params(TenantPath, ListQuery),
    responses(
        (status = 200, description = "a page of the tenant's sources", body = SourcePage),
        (status = 400, description = "a malformed tenant, limit or cursor, or an unknown query parameter", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<SourcePage>> {
    caller.authorize(&tenant, Scope::SourcesRead)?;
    let limit = page_limit(q.limit)?;
    let offset = super::offset_cursor(q.cursor.as_deref())?;
    let (sources, next) = state.store.list_sources(&tenant, offset, limit).await?;
    Ok(axum::Json(SourcePage {
        data: sources.into_iter().map(SourceOut::from).collect(),
        next_cursor: next.map(|n| n.to_string()),
    }))
}

/// One source.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/sources/{id}",
    operation_id = "get_source",
    tag = "sources",
    params(SourcePath),
    responses(
        (status = 200, description = "the source", body = SourceOut),
        (status = 404, description = "no such source in this tenant", body = ErrorBody),
    )
)]
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(SourcePath { tenant, id }): Path<SourcePath>,
) -> ApiResult<axum::Json<SourceOut>> {
    caller.authorize(&tenant, Scope::SourcesRead)?;
    Ok(axum::Json(load(&state, &tenant, &id).await?.into()))
}

/// Change some fields. A body that names a `kind` may carry only that kind's fields (400
/// otherwise); a new kind drops the old kind's secret, scheme or credentials. The result must
/// suit its kind as a new source must: 409 naming the field when it does not (a field the
/// stored source's kind does not use, or the new kind's required field missing).
#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenant}/sources/{id}",
    operation_id = "update_source",
    tag = "sources",
    params(SourcePath),
    request_body = SourcePatch,
    responses(
        (status = 200, description = "the changed source", body = SourceOut),
        (status = 400, description = "invalid JSON, an unknown or invalid field (a value wrong in itself), \
            `kind: null`, or a field the named kind does not use (the message names it)", body = ErrorBody),
        (status = 404, description = "no such source in this tenant", body = ErrorBody),
        (status = 409, description = "the result would not suit its kind: a field the source's kind does not use, \
            or one it needs (the message names it); or the source changed meanwhile (read it again)", body = ErrorBody),
        (status = 413, description = "the body is larger than `ingest.max_payload_bytes` + 16 KiB", body = ErrorBody),
        (status = 415, description = "content-type is not application/json", body = ErrorBody),
    )
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(SourcePath { tenant, id }): Path<SourcePath>,
    JsonObject(fields): JsonObject<SourceFields>,
) -> ApiResult<axum::Json<SourceOut>> {
    caller.authorize(&tenant, Scope::SourcesWrite)?;
    match fields.kind {
        Some(None) => return Err(ApiError::invalid("kind: cannot be null")),
        Some(Some(kind)) => fields.refuse_foreign_fields(kind, true)?,
        None => {}
    }
    let before = load(&state, &tenant, &id).await?;
    let mut source = before.clone();
    fields.apply(&mut source);
    // A value wrong in itself is the body's fault (400); one that does not suit the stored
    // source's kind is a conflict with what is stored (409).
    source.check_values().map_err(ApiError::invalid)?;
    source
        .check_kind()
        .map_err(|problem| ApiError::new(StatusCode::CONFLICT, "conflict", problem))?;
    replace(&state, &origin.by(&caller), &before, &mut source, "source.updated").await?;
    Ok(axum::Json(source.into()))
}

/// Delete a source: its `/in/` URL answers 404 from then on. Events it already stored stay.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/sources/{id}",
    operation_id = "delete_source",
    tag = "sources",
    params(SourcePath),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such source in this tenant", body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(SourcePath { tenant, id }): Path<SourcePath>,
) -> ApiResult<StatusCode> {
    caller.authorize(&tenant, Scope::SourcesWrite)?;
    let author = origin.by(&caller);
    // Deleted as read: a change in between is read again, so the entry shows what went.
    for _ in 0..crate::store::endpoints::CHANGE_TRIES {
        let source = load(&state, &tenant, &id).await?;
        let changes = source_changes(Some(&source), None);
        let entry = author.entry(&tenant, "source.deleted", Target::new("source", &id), changes);
        match state.store.delete_source(&source, &entry).await? {
            Written::Done => return Ok(StatusCode::NO_CONTENT),
            Written::Changed => continue,
            Written::Gone => return Err(ApiError::not_found("source")),
        }
    }
    Err(crate::store::Error::Contended(format!("source {id}")).into())
}

/// The body of a rotation (optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSource {
    /// The provider's new secret. Absent: the node mints one (kinds `github`, `hmac`,
    /// `standard_webhooks`; Stripe and Shopify issue their own).
    #[schema(min_length = 1, max_length = 512)]
    secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceSecret {
    /// The new secret; the old one keeps verifying beside it for the overlap.
    secret: String,
}

/// Replace the signing secret. Requests signed with the old one keep passing for
/// `?overlap_s=` seconds (default a day), so the provider can switch without a refused request.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/sources/{id}/rotate-secret",
    operation_id = "rotate_source_secret",
    tag = "sources",
    params(SourcePath, RotateQuery),
    request_body(content = Option<RotateSource>, description = "optional: `{\"secret\": …}`, the provider's new secret"),
    responses(
        (status = 200, description = "the new secret", body = SourceSecret),
        (status = 400, description = "a body that is not `{\"secret\"}`, null or empty, a malformed `overlap_s` or \
            tenant, or an unknown query parameter", body = ErrorBody),
        (status = 404, description = "no such source in this tenant", body = ErrorBody),
        (status = 409, description = "the source's kind has no secret, or its provider issues it and none was \
            sent, or the secret does not suit the kind (standard_webhooks: `whsec_…`), or the source changed \
            meanwhile", body = ErrorBody),
        (status = 413, description = "the body is larger than `ingest.max_payload_bytes` + 16 KiB", body = ErrorBody),
    )
)]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(SourcePath { tenant, id }): Path<SourcePath>,
    Query(q): Query<RotateQuery>,
    RawBody(body): RawBody,
) -> ApiResult<axum::Json<SourceSecret>> {
    caller.authorize(&tenant, Scope::SourcesWrite)?;
    let overlap_s = q.overlap_s()?;
    let text = std::str::from_utf8(&body).unwrap_or("?").trim();
    let asked: Option<String> = if text.is_empty() {
        None
    } else if !(text.starts_with('{') || text == "null") {
        return Err(ApiError::invalid(
            "body: a JSON object {\"secret\": …}, null, or nothing",
        ));
    } else {
        serde_json::from_slice::<Option<RotateSource>>(&body)
            .map_err(|e| ApiError::invalid(format!("body: {e}")))?
            .and_then(|r| r.secret)
    };
    if asked.as_ref().is_some_and(|s| s.is_empty() || s.chars().count() > 512) {
        return Err(ApiError::invalid("secret: between 1 and 512 characters"));
    }
    let before = load(&state, &tenant, &id).await?;
    let mut source = before.clone();
    // What is wrong from here on depends on the stored source's kind: 409.
    let conflict = |problem: String| ApiError::new(StatusCode::CONFLICT, "conflict", problem);
    let kind = source.kind;
    if !kind.signs() {
        return Err(conflict(format!("kind {} has no signing secret", kind.name())));
    }
    let new = match asked {
        Some(secret) => secret,
        None if kind.node_may_mint() => crate::delivery::sign::new_secret(),
        None => {
            return Err(conflict(format!(
                "secret: required for kind {} (its provider issues the secret)",
                kind.name()
            )))
        }
    };
    let now = hookline_actors::now_ms();
    let old = source.secret.replace(new).unwrap_or_default();
    rotated_out(&mut source.previous_secrets, old, overlap_s, now);
    source.check().map_err(conflict)?;
    replace(
        &state,
        &origin.by(&caller),
        &before,
        &mut source,
        "source.secret_rotated",
    )
    .await?;
    Ok(axum::Json(SourceSecret {
        secret: source.secret.unwrap_or_default(),
    }))
}

/// One refused request (never its body or a secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejection {
    time: String,
    /// The caller's address (behind `server.trusted_proxies`, the forwarded one).
    ip: String,
    status: u16,
    /// `signature_mismatch`, `timestamp_outside_tolerance`, `missing_header`, `malformed_header`,
    /// `bad_credentials`, `ip_not_allowed`, `rate_limited`, `payload_too_large`, `unreadable_body`,
    /// `body_timeout`.
    reason: String,
    message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectionList {
    /// The last 100 refused requests, newest first.
    data: Vec<Rejection>,
}

/// Why requests were refused: the last 100, newest first.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/sources/{id}/rejections",
    operation_id = "list_source_rejections",
    tag = "sources",
    params(SourcePath),
    responses(
        (status = 200, description = "the source's last refused requests", body = RejectionList),
        (status = 404, description = "no such source in this tenant", body = ErrorBody),
    )
)]
async fn rejections(
    State(state): State<AppState>,
    caller: Caller,
    Path(SourcePath { tenant, id }): Path<SourcePath>,
) -> ApiResult<axum::Json<RejectionList>> {
    caller.authorize(&tenant, Scope::SourcesRead)?;
    let source = load(&state, &tenant, &id).await?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let data = state
        .store
        .rejections(&source.id)
        .await?
        .into_iter()
        .map(|r| Rejection {
            time: text(&r["time"]),
            ip: text(&r["ip"]),
            status: r["status"].as_u64().unwrap_or_default() as u16,
            reason: text(&r["reason"]),
            message: text(&r["message"]),
        })
        .collect();
    Ok(axum::Json(RejectionList { data }))
}
