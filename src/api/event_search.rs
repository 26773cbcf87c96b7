//! `GET /v1/tenants/{tenant}/events`: finding a tenant's events by type, time and source,
//! newest first, paged by a cursor that stays stable under inserts (docs/API.md, "Finding
//! events"). Routed with the ingest route of the same path (`events.rs`).

use super::auth::{Caller, Scope};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::{page_limit, parse_time, AppState, TenantPath};
use crate::store::search::{is_cursor, EventSearch, SCAN_BUDGET};
use axum::extract::State;
use serde::Serialize;

use serde_json::value::RawValue;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};

/// `?type=&from=&to=&source_id=&metadata.<key>=<value>&cursor=&limit=`. Unknown parameters
/// are refused (400).
#[derive(Debug, Default)]
pub struct EventQuery {
    event_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
    source_id: Option<String>,
    metadata: Vec<(String, String)>,
    cursor: Option<String>,
    limit: Option<String>,
}

impl EventQuery {
    /// From the query's pairs (metadata keys are open-ended, so no derive).
    fn parse(pairs: Vec<(String, String)>) -> ApiResult<EventQuery> {
        let mut q = EventQuery::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "type" => &mut q.event_type,
                "from" => &mut q.from,
                "to" => &mut q.to,
                "source_id" => &mut q.source_id,
                "cursor" => &mut q.cursor,
                "limit" => &mut q.limit,
                _ => {
                    metadata_param(&name, value, &mut q.metadata)?;
                    continue;
                }
            };
            if slot.replace(value).is_some() {
                return Err(ApiError::invalid(format!("{name}: given twice")));
            }
        }
        Ok(q)
    }
}

/// A `metadata.<key>=<value>` query parameter (events and endpoints are searched by their
/// metadata alike) into `into`: 400 for a bad key, too many of them, or any other name.
pub(super) fn metadata_param(name: &str, value: String, into: &mut Vec<(String, String)>) -> ApiResult<()> {
    match name.strip_prefix("metadata.") {
        Some(key) if crate::event::is_metadata_key(key) => {
            if into.len() == crate::event::MAX_METADATA_KEYS {
                return Err(ApiError::invalid(format!(
                    "metadata.*: at most {} (nothing has more keys)",
                    crate::event::MAX_METADATA_KEYS
                )));
            }
            into.push((key.to_string(), value));
            Ok(())
        }
        Some(_) => Err(ApiError::invalid(format!("{name}: not a metadata key"))),
        None => Err(ApiError::invalid(format!("unknown query parameter {name}"))),
    }
}

impl IntoParams for EventQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        use super::schema::{event_type_pattern, query_param, source_id, time_bound};
        vec![
            query_param(
                "type",
                "An event type, `prefix.*` or `*` (default: every type).",
                event_type_pattern(),
            ),
            query_param("from", "Ingested at or after (RFC 3339, UTC).", time_bound()),
            query_param("to", "Ingested at or before (RFC 3339, UTC).", time_bound()),
            query_param(
                "source_id",
                "Only events received on this source (`src_…`).",
                source_id(),
            ),
            // `metadata.<key>=<value>` (any number, all must hold) cannot be listed by name.
            query_param(
                "cursor",
                "`next_cursor` of the previous page (absent or empty: the newest).",
                super::schema::stream_cursor(),
            ),
            query_param("limit", "Page size: 1 to 500, default 50.", super::schema::limit()),
        ]
    }
}

/// An event as the list shows it (`GET …/events/{id}` adds its deliveries).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventItem {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    /// Ingest time, RFC 3339.
    timestamp: String,
    #[schema(value_type = Value)]
    payload: Box<RawValue>,
    /// Only on events received through the inbound gateway: the source's `id` and `kind`, the
    /// provider's id (`provider_id`, null when the provider names none) and the request
    /// `headers` that matter (never a signature or a credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    source: Option<Box<RawValue>>,
    /// Only on an event taken with `validation: warn` whose payload failed its schema: where
    /// and how (at most 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_errors: Option<Vec<crate::catalogue::Problem>>,
    /// As given at ingest (`{}` when none).
    #[schema(value_type = Object)]
    metadata: Box<RawValue>,
}

impl EventItem {
    /// The event as stored: its body, its schema errors and its metadata, as the record keeps
    /// them.
    pub(super) fn of(
        id: String,
        body: super::events::StoredBody,
        schema_errors: Option<String>,
        metadata: Option<String>,
    ) -> EventItem {
        EventItem {
            id,
            event_type: body.event_type,
            timestamp: body.timestamp,
            payload: body.data,
            source: body.source,
            schema_errors: schema_errors.and_then(|e| serde_json::from_str(&e).ok()),
            metadata: super::events::metadata_of(metadata),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    data: Vec<EventItem>,
    /// Pass as `cursor` for the next page; null at the end. A page may hold fewer than
    /// `limit` events and still have a next one (each request reads at most 10,000 events of
    /// the tenant's partition).
    next_cursor: Option<String>,
}

/// The tenant's events, newest first, by type, ingest time, source and metadata
/// (`metadata.<key>=<value>`, any number of them, all must hold).
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/events",
    operation_id = "list_events",
    tag = "events",
    params(TenantPath, EventQuery),
    responses(
        (status = 200, description = "a page of the tenant's events, newest first", body = EventPage),
        (status = 400, description = "a malformed tenant, type, time, source id, limit or cursor, or an unknown \
            query parameter", body = ErrorBody),
    )
)]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<axum::Json<EventPage>> {
    caller.authorize(&tenant, Scope::EventsRead)?;
    let q = EventQuery::parse(pairs)?;
    let limit = page_limit(q.limit)?;
    if let Some(t) = q.event_type.as_deref() {
        if !crate::ids::is_event_type_pattern(t) {
            return Err(ApiError::invalid("type: an event type, prefix.* or *"));
        }
    }
    if q.source_id.as_deref().is_some_and(|s| !crate::ids::is_source_id(s)) {
        return Err(ApiError::invalid("source_id: a source id, src_…"));
    }
    let before = q.cursor.as_deref().filter(|c| !c.is_empty());
    if before.is_some_and(|c| !is_cursor(c)) {
        return Err(ApiError::invalid("cursor: not a cursor this API returned"));
    }
    let from_ms = q.from.as_deref().map(|t| parse_time("from", t)).transpose()?;
    let to_ms = q.to.as_deref().map(|t| parse_time("to", t)).transpose()?;
    let search = EventSearch {
        tenant: &tenant,
        types: q.event_type.as_deref(),
        from_ms,
        to_ms,
        source_id: q.source_id.as_deref(),
        metadata: &q.metadata,
        before,
        limit,
    };
    let (found, next) = state.store.find_events(&search).await?;
    debug_assert!(SCAN_BUDGET >= limit);
    let mut data = Vec::with_capacity(found.len());
    for event in found {
        let body: super::events::StoredBody =
            serde_json::from_str(&event.record.body).map_err(crate::store::Error::from)?;
        data.push(EventItem::of(
            event.event_id,
            body,
            event.record.schema_errors,
            event.record.metadata,
        ));
    }
    Ok(axum::Json(EventPage {
        data,
        next_cursor: next,
    }))
}
