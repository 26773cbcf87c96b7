//! `/v1/tenants/{tenant}/event-types` and `/v1/tenants/{tenant}/settings`: the event catalogue
//! (docs/API.md, "Event types and validation"). Ingest checks payloads against it
//! (`events.rs`, through the node's `catalogue::Catalogue`).

use super::audit::Origin;
use super::auth::{Caller, Scope};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{JsonObject, Path, Query};
use super::{page_limit, rfc3339, AppState, TenantPath};
use crate::catalogue::{EventType, TenantSettings, Validation};
use crate::store::audit::{changes, Target};
use crate::store::Written;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(fetch, put, archive))
        .routes(routes!(get_settings, put_settings))
}

#[derive(Debug, Deserialize)]
pub struct EventTypePath {
    pub tenant: String,
    pub name: String,
}

impl IntoParams for EventTypePath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            super::schema::path_param("tenant", super::TENANT_DOC, super::schema::tenant()),
            super::schema::path_param(
                "name",
                "The event type, e.g. `order.created` (no wildcard).",
                super::schema::event_type(),
            ),
        ]
    }
}

/// An event type as written. Every field is optional; a PUT replaces the whole type.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeIn {
    /// For people, at most 1,024 characters.
    #[serde(default)]
    #[schema(max_length = 1024)]
    description: Option<String>,
    /// Version ("1", "2", … up to "9999") → a JSON Schema (draft 2020-12; `pattern` uses a
    /// linear-time engine: no look-around or back-references; no remote `$ref`). At most 20
    /// versions, each at most 64 KiB and 32 levels deep.
    #[serde(default)]
    #[schema(schema_with = super::schema::event_type_schemas)]
    schemas: Option<BTreeMap<String, Value>>,
    /// Shown to consumers; events of a deprecated type are still taken.
    #[serde(default)]
    deprecated: Option<bool>,
    /// An example payload; it must match the highest version.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    example: Option<Value>,
}

/// An event type.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeOut {
    name: String,
    description: String,
    #[schema(value_type = Object)]
    schemas: BTreeMap<String, Value>,
    deprecated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    example: Option<Value>,
    /// Archived by DELETE (a PUT restores it).
    archived: bool,
    created_at: String,
    updated_at: String,
}

impl From<EventType> for EventTypeOut {
    fn from(t: EventType) -> Self {
        EventTypeOut {
            name: t.name,
            description: t.description,
            schemas: t.schemas,
            deprecated: t.deprecated,
            example: t.example,
            archived: t.archived,
            created_at: rfc3339(t.created_at_ms),
            updated_at: rfc3339(t.updated_at_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypePage {
    data: Vec<EventTypeOut>,
    /// Pass as `cursor` for the next page; null at the end.
    next_cursor: Option<String>,
}

/// `?limit=&cursor=&include_archived=`. Unknown parameters are refused (400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTypeQuery {
    limit: Option<String>,
    cursor: Option<String>,
    include_archived: Option<String>,
}

impl IntoParams for EventTypeQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut params = super::ListQuery::into_params(|| None);
        params.push(super::schema::query_param(
            "include_archived",
            "`true`: archived types too, after the others (default `false`).",
            super::schema::boolean_text(),
        ));
        params
    }
}

/// The tenant's event types by name, paged (archived ones only with `include_archived=true`).
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/event-types",
    operation_id = "list_event_types",
    tag = "event-types",
    params(TenantPath, EventTypeQuery),
    responses(
        (status = 200, description = "a page of the tenant's event types", body = EventTypePage),
        (status = 400, description = "a malformed tenant, limit, cursor or include_archived, or an unknown query \
            parameter", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
    Query(q): Query<EventTypeQuery>,
) -> ApiResult<axum::Json<EventTypePage>> {
    caller.authorize(&tenant, Scope::EventTypesRead)?;
    let limit = page_limit(q.limit)?;
    let offset = super::offset_cursor(q.cursor.as_deref())?;
    let archived = match q.include_archived.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("include_archived: true or false")),
    };
    let (types, next) = state.store.list_event_types(&tenant, archived, offset, limit).await?;
    Ok(axum::Json(EventTypePage {
        data: types.into_iter().map(EventTypeOut::from).collect(),
        next_cursor: next.map(|n| n.to_string()),
    }))
}

/// One event type (archived ones too).
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/event-types/{name}",
    operation_id = "get_event_type",
    tag = "event-types",
    params(EventTypePath),
    responses(
        (status = 200, description = "the event type", body = EventTypeOut),
        (status = 400, description = "a malformed tenant", body = ErrorBody),
        (status = 404, description = "no such event type", body = ErrorBody),
    )
)]
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(EventTypePath { tenant, name }): Path<EventTypePath>,
) -> ApiResult<axum::Json<EventTypeOut>> {
    caller.authorize(&tenant, Scope::EventTypesRead)?;
    Ok(axum::Json(find(&state, &tenant, &name).await?.into()))
}

async fn find(state: &AppState, tenant: &str, name: &str) -> ApiResult<EventType> {
    if !crate::ids::is_event_type(name) {
        return Err(ApiError::not_found("event type"));
    }
    state
        .store
        .get_event_type(tenant, name)
        .await?
        .ok_or_else(|| ApiError::not_found("event type"))
}

/// Create or replace an event type (a PUT of an archived type restores it). Its schemas are
/// checked and compiled here: a schema that does not compile, is too large or too deep, or an
/// example that does not match is a 400 naming the field.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/event-types/{name}",
    operation_id = "put_event_type",
    tag = "event-types",
    params(EventTypePath),
    request_body = EventTypeIn,
    responses(
        (status = 201, description = "created", body = EventTypeOut),
        (status = 200, description = "replaced", body = EventTypeOut),
        (status = 400, description = "invalid JSON, an unknown or invalid field (the message names it), a malformed \
            tenant or name, or the tenant's 1,000 event types reached", body = ErrorBody),
        (status = 413, description = "the body is larger than `ingest.max_payload_bytes` + 16 KiB", body = ErrorBody),
        (status = 415, description = "content-type is not application/json", body = ErrorBody),
    )
)]
async fn put(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(EventTypePath { tenant, name }): Path<EventTypePath>,
    JsonObject(fields): JsonObject<EventTypeIn>,
) -> ApiResult<(StatusCode, axum::Json<EventTypeOut>)> {
    caller.authorize(&tenant, Scope::EventTypesWrite)?;
    if !crate::ids::is_event_type(&name) {
        return Err(ApiError::invalid("name: must match ^[a-zA-Z0-9_.:-]{1,128}$"));
    }
    let author = origin.by(&caller);
    let now = hookline_actors::now_ms();
    // Replaced whole; read again if another write came between the read and ours.
    for _ in 0..5 {
        let before = state.store.get_event_type(&tenant, &name).await?;
        if before.is_none() && state.store.count_event_types(&tenant).await? >= crate::catalogue::MAX_TYPES {
            return Err(ApiError::invalid(format!(
                "name: this tenant has {} event types, the most it may have",
                crate::catalogue::MAX_TYPES
            )));
        }
        let after = EventType {
            tenant: tenant.clone(),
            name: name.clone(),
            description: fields.description.clone().unwrap_or_default(),
            schemas: fields.schemas.clone().unwrap_or_default(),
            deprecated: fields.deprecated.unwrap_or(false),
            example: fields.example.clone(),
            archived: false,
            created_at_ms: before.as_ref().map_or(now, |b| b.created_at_ms),
            updated_at_ms: before.as_ref().map_or(now, |b| now.max(b.updated_at_ms + 1)),
        };
        crate::catalogue::check(&after).map_err(ApiError::invalid)?;
        let action = if before.is_some() {
            "event_type.updated"
        } else {
            "event_type.created"
        };
        let entry = author.entry(
            &tenant,
            action,
            Target::new("event_type", &name),
            type_changes(before.as_ref(), Some(&after)),
        );
        let guard = before.as_ref().map(|b| b.updated_at_ms);
        match state.store.put_event_type(&after, guard, &entry).await? {
            Written::Done => {
                state.catalogue.forget(&tenant);
                let status = if before.is_some() {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                return Ok((status, axum::Json(after.into())));
            }
            Written::Gone | Written::Changed => continue,
        }
    }
    Err(crate::store::Error::Contended(format!("event type {name}")).into())
}

/// Archive an event type: it leaves the list (unless `include_archived=true`), and with
/// `validation: enforce` its events are refused with 422. Archiving twice is no error.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/event-types/{name}",
    operation_id = "archive_event_type",
    tag = "event-types",
    params(EventTypePath),
    responses(
        (status = 204, description = "archived"),
        (status = 400, description = "a malformed tenant", body = ErrorBody),
        (status = 404, description = "no such event type", body = ErrorBody),
    )
)]
async fn archive(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(EventTypePath { tenant, name }): Path<EventTypePath>,
) -> ApiResult<StatusCode> {
    caller.authorize(&tenant, Scope::EventTypesWrite)?;
    let author = origin.by(&caller);
    for _ in 0..5 {
        let before = find(&state, &tenant, &name).await?;
        if before.archived {
            return Ok(StatusCode::NO_CONTENT);
        }
        let after = EventType {
            archived: true,
            updated_at_ms: hookline_actors::now_ms().max(before.updated_at_ms + 1),
            ..before.clone()
        };
        let entry = author.entry(
            &tenant,
            "event_type.archived",
            Target::new("event_type", &name),
            type_changes(Some(&before), Some(&after)),
        );
        match state
            .store
            .put_event_type(&after, Some(before.updated_at_ms), &entry)
            .await?
        {
            Written::Done => {
                state.catalogue.forget(&tenant);
                return Ok(StatusCode::NO_CONTENT);
            }
            Written::Gone | Written::Changed => continue,
        }
    }
    Err(crate::store::Error::Contended(format!("event type {name}")).into())
}

fn type_changes(before: Option<&EventType>, after: Option<&EventType>) -> Map<String, Value> {
    let json = |t: Option<&EventType>| t.and_then(|t| serde_json::to_value(t).ok());
    changes(json(before).as_ref(), json(after).as_ref(), &[], &[])
}

/// A tenant's settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// `off` (default): payloads are not checked. `warn`: a payload that does not match its
    /// event type's schema is stored and delivered, counted and flagged (`schema_errors` on the
    /// event). `enforce`: it is refused with 422 `schema_violation`, and events of an archived
    /// type with 422 `event_type_archived`.
    #[serde(default)]
    validation: Validation,
}

/// The tenant's settings (defaults for a tenant that never set any).
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/settings",
    operation_id = "get_tenant_settings",
    tag = "event-types",
    params(TenantPath),
    responses(
        (status = 200, description = "the tenant's settings", body = SettingsBody),
        (status = 400, description = "a malformed tenant", body = ErrorBody),
    )
)]
async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
) -> ApiResult<axum::Json<SettingsBody>> {
    caller.authorize(&tenant, Scope::SettingsRead)?;
    let settings = state.store.tenant_settings(&tenant).await?;
    Ok(axum::Json(SettingsBody {
        validation: settings.validation,
    }))
}

/// Replace the tenant's settings (an absent key takes its default). Every node applies the
/// change to its next ingest.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/settings",
    operation_id = "put_tenant_settings",
    tag = "event-types",
    params(TenantPath),
    request_body = SettingsBody,
    responses(
        (status = 200, description = "the tenant's settings, as saved", body = SettingsBody),
        (status = 400, description = "invalid JSON, an unknown or invalid field, or a malformed tenant", body = ErrorBody),
        (status = 413, description = "the body is larger than `ingest.max_payload_bytes` + 16 KiB", body = ErrorBody),
        (status = 415, description = "content-type is not application/json", body = ErrorBody),
    )
)]
async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(TenantPath { tenant }): Path<TenantPath>,
    JsonObject(body): JsonObject<SettingsBody>,
) -> ApiResult<axum::Json<SettingsBody>> {
    caller.authorize(&tenant, Scope::SettingsWrite)?;
    let before = state.store.tenant_settings(&tenant).await?;
    let after = TenantSettings {
        validation: body.validation,
        updated_at_ms: hookline_actors::now_ms(),
    };
    let json = |s: &TenantSettings| serde_json::json!({"validation": s.validation});
    let entry = origin.by(&caller).entry(
        &tenant,
        "settings.updated",
        Target::new("settings", &tenant),
        changes(Some(&json(&before)), Some(&json(&after)), &[], &[]),
    );
    state.store.put_tenant_settings(&tenant, &after, &entry).await?;
    state.catalogue.forget(&tenant);
    Ok(axum::Json(SettingsBody {
        validation: after.validation,
    }))
}
