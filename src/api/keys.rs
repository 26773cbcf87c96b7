//! `/v1/tenants/{tenant}/keys` (admin): mint a tenant API key (shown once, stored hashed) with
//! optional name, scopes, expiry and allowed addresses; list a tenant's keys; revoke one.

use super::audit::Origin;
use super::auth::{digest, Caller, Scope};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, RawBody};
use super::{rfc3339, AppState, TenantPath};
use crate::store::audit::Target;
use crate::store::ApiKeyRecord;
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
        .routes(routes!(revoke))
}

#[derive(Debug, Deserialize)]
pub struct KeyPath {
    pub tenant: String,
    pub id: String,
}

impl IntoParams for KeyPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            super::schema::path_param("tenant", super::TENANT_DOC, super::schema::tenant()),
            super::schema::path_param(
                "id",
                "Key id, `key_…` (404 if malformed or not of this tenant).",
                super::schema::key_id(),
            ),
        ]
    }
}

/// What a new key may do. Every field is optional; the body itself may be left out.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyFields {
    /// For people, at most 128 characters.
    #[schema(max_length = 128)]
    name: Option<String>,
    /// Absent or null: every tenant scope (as keys minted before scopes existed). Otherwise a
    /// list of `events:write`, `events:read`, `endpoints:read`, `endpoints:write`,
    /// `endpoints:secrets`, `deliveries:read`, `deliveries:replay`, `sources:read`,
    /// `sources:write`, `audit:read`, `portal:create`.
    #[schema(schema_with = scopes_schema)]
    scopes: Option<Vec<String>>,
    /// RFC 3339 in UTC; absent or null: never expires (a past time makes a key that is
    /// already expired).
    #[schema(schema_with = super::schema::expires_at)]
    expires_at: Option<String>,
    /// Addresses or CIDR ranges the key may be used from (behind `server.trusted_proxies`, the
    /// forwarded address); absent, null or empty: anywhere. At most 100.
    #[schema(schema_with = allowed_ips_schema)]
    allowed_ips: Option<Vec<String>>,
}

fn scopes_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let names: Vec<&str> = Scope::ALL.iter().map(|s| s.name()).collect();
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names)))
        .max_items(Some(Scope::ALL.len() * 4))
        .build()
}

fn allowed_ips_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(super::schema::cidr())
        .max_items(Some(100))
        .build()
}

/// A key as listed (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    pub id: String,
    pub tenant: String,
    name: Option<String>,
    /// The scopes it holds; null: every tenant scope.
    scopes: Option<Vec<String>>,
    created_at: String,
    expires_at: Option<String>,
    /// At most a minute late (a use is written once a minute per node); null: never used.
    last_used_at: Option<String>,
    allowed_ips: Vec<String>,
    /// The key's first 8 characters; null for keys minted before they were kept.
    prefix: Option<String>,
}

impl KeyOut {
    fn new(record: ApiKeyRecord, last_used_ms: Option<u64>) -> KeyOut {
        KeyOut {
            id: record.id,
            tenant: record.tenant,
            name: record.name,
            scopes: record.scopes,
            created_at: rfc3339(record.created_at_ms),
            expires_at: record.expires_at_ms.map(rfc3339),
            last_used_at: last_used_ms.map(rfc3339),
            allowed_ips: record.allowed_ips,
            prefix: Some(record.prefix).filter(|p| !p.is_empty()),
        }
    }
}

/// What a key's creation or revocation changed, for its audit entry: its fields as listed
/// (never the key itself).
fn key_changes(
    before: Option<&ApiKeyRecord>,
    after: Option<&ApiKeyRecord>,
) -> serde_json::Map<String, serde_json::Value> {
    let listed = |r: Option<&ApiKeyRecord>| {
        r.and_then(|r| serde_json::to_value(KeyOut::new(r.clone(), None)).ok())
            .map(|mut v| {
                if let Some(fields) = v.as_object_mut() {
                    fields.remove("created_at");
                    fields.remove("last_used_at");
                }
                v
            })
    };
    crate::store::audit::changes(listed(before).as_ref(), listed(after).as_ref(), &[], &[])
}

/// A new tenant key: `key` is shown only here (the node keeps its SHA-256).
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKey {
    #[serde(flatten)]
    pub key_info: KeyOut,
    /// `hk_…`: a bearer token for this tenant, limited to its scopes.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Every key of the tenant, oldest first.
    data: Vec<KeyOut>,
    next_cursor: Option<String>,
}

/// Check the fields and make the key's record.
fn record(tenant: String, fields: KeyFields, key: &str, now_ms: u64) -> ApiResult<ApiKeyRecord> {
    if fields.name.as_ref().is_some_and(|n| n.chars().count() > 128) {
        return Err(ApiError::invalid("name: at most 128 characters"));
    }
    if let Some(bad) = fields.scopes.iter().flatten().find(|s| Scope::parse(s).is_none()) {
        return Err(ApiError::invalid(format!("scopes: {bad:?} is not a scope")));
    }
    let scopes = fields.scopes.map(|mut s| {
        s.sort();
        s.dedup();
        s
    });
    let expires_at_ms = match fields.expires_at.as_deref() {
        None => None,
        Some(text) => Some(super::parse_time("expires_at", text)?),
    };
    let allowed_ips = fields.allowed_ips.unwrap_or_default();
    if allowed_ips.len() > 100 {
        return Err(ApiError::invalid("allowed_ips: at most 100 addresses or CIDR ranges"));
    }
    if let Some(bad) = allowed_ips
        .iter()
        .find(|c| c.parse::<crate::inbound::net::Cidr>().is_err())
    {
        return Err(ApiError::invalid(format!(
            "allowed_ips: {bad:?} is not an IP address or CIDR range"
        )));
    }
    Ok(ApiKeyRecord {
        id: crate::ids::new_key_id(),
        tenant,
        created_at_ms: now_ms,
        name: fields.name,
        scopes,
        expires_at_ms,
        allowed_ips,
        prefix: key.chars().take(8).collect(),
        portal: false,
    })
}

/// Mint a tenant API key (admin token only). The body is optional: without it, the key may
/// do everything in the tenant, for ever, from anywhere (as keys always could).
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/keys",
    operation_id = "create_tenant_key",
    tag = "keys",
    params(TenantPath),
    request_body(content = Option<KeyFields>, description = "optional: name, scopes, expires_at, allowed_ips"),
    responses(
        (status = 201, description = "the key, shown once", body = NewKey),
        (status = 400, description = "a body that is not a key's fields, an unknown scope, a malformed \
            `expires_at` or address, or a malformed tenant (the message names it)", body = ErrorBody),
        (status = 403, description = "the token is a tenant key: only an admin token may mint keys", body = ErrorBody),
        (status = 413, description = "the body is larger than `ingest.max_payload_bytes` + 16 KiB", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(TenantPath { tenant }): Path<TenantPath>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, axum::Json<NewKey>)> {
    caller.admin_for(&tenant)?;
    let fields: KeyFields = super::extract::optional_object(&body, "a JSON object of a key's fields")?;
    let key = crate::ids::new_api_key();
    let record = record(tenant, fields, &key, hookline_actors::now_ms())?;
    let changes = key_changes(None, Some(&record));
    let entry = origin
        .by(&caller)
        .entry(&record.tenant, "key.created", Target::new("key", &record.id), changes);
    state
        .store
        .put_api_key(&crate::store::keys::hex(&digest(&key)), &record, &entry)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(NewKey {
            key_info: KeyOut::new(record, None),
            key,
        }),
    ))
}

/// A tenant's keys (admin token only): never the keys themselves.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/keys",
    operation_id = "list_tenant_keys",
    tag = "keys",
    params(TenantPath),
    responses(
        (status = 200, description = "every key of the tenant, oldest first", body = KeyList),
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
) -> ApiResult<axum::Json<KeyList>> {
    caller.admin_for(&tenant)?;
    let keys = state.store.list_api_keys(&tenant).await?;
    Ok(axum::Json(KeyList {
        data: keys.into_iter().map(|(r, used)| KeyOut::new(r, used)).collect(),
        next_cursor: None,
    }))
}

/// Revoke a key (admin token only): every node refuses it within a second.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/keys/{id}",
    operation_id = "revoke_tenant_key",
    tag = "keys",
    params(KeyPath),
    responses(
        (status = 204, description = "revoked"),
        (status = 404, description = "no such key in this tenant", body = ErrorBody),
    )
)]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(KeyPath { tenant, id }): Path<KeyPath>,
) -> ApiResult<StatusCode> {
    caller.admin_for(&tenant)?;
    let author = origin.by(&caller);
    let entry = |record: &ApiKeyRecord| {
        let changes = key_changes(Some(record), None);
        author.entry(&tenant, "key.revoked", Target::new("key", &id), changes)
    };
    if !crate::ids::is_key_id(&id) || !state.store.revoke_api_key(&tenant, &id, entry).await? {
        return Err(ApiError::not_found("key"));
    }
    Ok(StatusCode::NO_CONTENT)
}
