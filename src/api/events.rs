//! `/v1/tenants/{tenant}/events`: ingest and look-up.
//!
//! Invariant 1 lives here: the 202 is sent only after Redis acknowledged the script that stored
//! the event and appended it to the stream. Any failure to store answers 503, never 2xx.

use super::auth::{Caller, Scope};
use super::error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
use super::event_search::{__path_list_events, list_events};
use super::extract::{JsonObject, ObjectOnly, Path};
use super::AppState;
use super::{EventPath, TenantPath};
use crate::catalogue::{TenantCatalogue, Validation};
use crate::event::NewEvent;
use crate::store::Ingested;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::Instant;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Most events in one batch.
const MAX_BATCH: usize = 1_000;

/// `max_batch_bytes`: the largest batch request body (`ingest.max_batch_bytes`).
pub fn router(max_batch_bytes: usize) -> OpenApiRouter<AppState> {
    let batch = OpenApiRouter::new()
        .routes(routes!(ingest_batch))
        .layer(axum::extract::DefaultBodyLimit::max(max_batch_bytes));
    OpenApiRouter::new()
        .routes(routes!(ingest, list_events))
        .routes(routes!(fetch))
        .merge(batch)
}

/// An event to ingest. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    #[serde(rename = "type")]
    #[schema(schema_with = super::schema::event_type)]
    event_type: String,
    /// Any JSON (`null` too), at most `ingest.max_payload_bytes` as sent (413 beyond); receivers
    /// get it byte for byte as `data`.
    #[schema(value_type = Value)]
    payload: Box<RawValue>,
    #[schema(schema_with = super::schema::idempotency_key)]
    idempotency_key: Option<String>,
    /// The schema version of its event type the payload follows (default: the highest). Only
    /// read when the tenant's `validation` is on.
    #[serde(default)]
    #[schema(schema_with = super::schema::schema_version)]
    schema_version: Option<String>,
    #[serde(default)]
    #[schema(schema_with = super::schema::metadata)]
    metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// The `Idempotency-Key` header of a single ingest.
struct IdempotencyHeader;

impl utoipa::IntoParams for IdempotencyHeader {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![super::schema::header_param(
            "Idempotency-Key",
            "Alternative to the `idempotency_key` field (which wins): visible ASCII, 1 to 256 characters.",
            super::schema::idempotency_header(),
        )]
    }
}

/// The answer for one ingested event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ingest {
    /// The event id (for a duplicate: the id first stored under the key).
    id: String,
    /// How many endpoints the event matched (absent for a duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    deliveries: Option<usize>,
    /// True when the idempotency key was seen within the window: nothing new was stored.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

/// Ingest one event. The answer comes only after Redis has stored it.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/events",
    operation_id = "ingest_event",
    tag = "events",
    params(TenantPath, IdempotencyHeader, super::event_trace::TraceparentHeader),
    request_body = EventIn,
    responses(
        (status = 202, description = "stored; delivery follows", body = Ingest),
        (status = 200, description = "a duplicate of an event stored under the same idempotency key", body = Ingest),
        (status = 400, description = "invalid JSON, a missing, unknown or invalid field (the message names it), \
            a malformed `Idempotency-Key` or tenant", body = ErrorBody),
        (status = 413, description = "`payload` larger than `ingest.max_payload_bytes`, or the body larger than \
            that + 16 KiB", body = ErrorBody),
        (status = 415, description = "content-type is not application/json", body = ErrorBody),
        (status = 422, description = "with the tenant's `validation: enforce`: the payload does not match its event \
            type's schema (`schema_violation`, with `details`), the type is archived (`event_type_archived`) or has \
            no such `schema_version` (`unknown_schema_version`); nothing stored", body = ErrorBody),
        (status = 429, description = "the tenant's ingest limit for this second is spent; nothing stored (Retry-After)", body = ErrorBody),
    )
)]
async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
    headers: HeaderMap,
    JsonObject(event): JsonObject<EventIn>,
) -> ApiResult<(StatusCode, axum::Json<Ingest>)> {
    let started = Instant::now();
    caller.authorize(&tenant, Scope::EventsWrite)?;
    let outcome = ingest_one(&state, &tenant, &headers, event).await;
    let label = match &outcome {
        Ok((StatusCode::OK, _)) => "duplicate",
        Ok(_) => "accepted",
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        Err(_) => "rejected",
    };
    count_ingested(&state, &tenant, label, 1);
    metrics::histogram!(crate::telemetry::names::INGEST_LATENCY).record(started.elapsed().as_secs_f64());
    outcome
}

/// Check one event and turn it into what the store takes: id minted, body built, its payload
/// checked against its event type's schema (`catalogue`: the tenant's, as this node holds it).
fn prepare(
    state: &AppState,
    tenant: &str,
    catalogue: &TenantCatalogue,
    event: EventIn,
    header_key: Option<String>,
) -> ApiResult<NewEvent> {
    if !crate::ids::is_event_type(&event.event_type) {
        return Err(ApiError::invalid("type: must match ^[a-zA-Z0-9_.:-]{1,128}$"));
    }
    if event.payload.get().len() > state.config.ingest.max_payload_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("payload: larger than {} bytes", state.config.ingest.max_payload_bytes),
        ));
    }
    let key = event.idempotency_key.clone().or(header_key);
    // Characters, as the message and the document's `maxLength` say (not UTF-8 bytes).
    if key.as_ref().is_some_and(|k| k.is_empty() || k.chars().count() > 256) {
        return Err(ApiError::invalid("idempotency_key: between 1 and 256 characters"));
    }
    let metadata = match event.metadata.as_ref().filter(|m| !m.is_empty()) {
        Some(m) => {
            crate::event::check_metadata(m).map_err(ApiError::invalid)?;
            Some(serde_json::to_string(m).map_err(crate::store::Error::from)?)
        }
        None => None,
    };
    let schema_errors = checked(state, tenant, catalogue, &event)?;
    let now = hookline_actors::now_ms();
    let mut new = NewEvent::new(tenant, &event.event_type, event.payload.get(), now).with_idempotency_key(key);
    new.schema_errors = schema_errors;
    new.metadata = metadata;
    Ok(new)
}

/// The payload against its schema: `Ok(None)` if it passes, `Ok(Some(problems as JSON))` to
/// flag it (`warn`), a 422 to refuse it (`enforce`).
fn checked(state: &AppState, tenant: &str, catalogue: &TenantCatalogue, event: &EventIn) -> ApiResult<Option<String>> {
    let version = event.schema_version.as_deref();
    if version.is_some_and(|v| crate::catalogue::parse_version(v).is_none()) {
        return Err(ApiError::invalid(
            "schema_version: a version number from \"1\" to \"9999\" without leading zeros",
        ));
    }
    let Err(violation) = catalogue.check(&event.event_type, version, event.payload.get()) else {
        return Ok(None);
    };
    let enforced = catalogue.validation == Validation::Enforce;
    let labels = hookline_actors::names::MetricLabels {
        tenant: state.config.metrics.tenant_labels,
        endpoint: false,
    };
    let outcome = if enforced { "refused" } else { "flagged" };
    let labels = labels.with_tenant(&[("outcome", outcome.to_string())], tenant);
    metrics::counter!(crate::telemetry::names::SCHEMA_VIOLATIONS, labels).increment(1);
    if enforced {
        return Err(ApiError {
            details: violation.details,
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, violation.code, violation.message)
        });
    }
    let problems = if violation.details.is_empty() {
        vec![crate::catalogue::Problem {
            path: String::new(),
            problem: violation.message,
        }]
    } else {
        violation.details
    };
    Ok(Some(
        serde_json::to_string(&problems).map_err(crate::store::Error::from)?,
    ))
}

/// The answer for one stored event: `(200, duplicate)` or `(202, accepted)`.
fn answer(state: &AppState, tenant: &str, event: &NewEvent, stored: Ingested) -> (StatusCode, Ingest) {
    if stored.duplicate {
        return (StatusCode::OK, duplicate_of(stored.event_id));
    }
    // Content filters look at the body only when an endpoint that takes the type has one.
    let content = state
        .index
        .needs_content(tenant, &event.event_type)
        .then(|| hookline_actors::filter::content(&crate::event::with_metadata(&event.body, event.metadata.as_deref())))
        .flatten();
    let deliveries = state.index.matching(tenant, &event.event_type, content.as_ref()).len();
    tracing::debug!(tenant, event_id = %event.event_id, event_type = %event.event_type, deliveries, "event accepted");
    let accepted = Ingest {
        id: event.event_id.clone(),
        deliveries: Some(deliveries),
        duplicate: false,
    };
    (StatusCode::ACCEPTED, accepted)
}

async fn ingest_one(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    event: EventIn,
) -> ApiResult<(StatusCode, axum::Json<Ingest>)> {
    let started = std::time::SystemTime::now();
    // The header is checked whenever it is sent, even when the `idempotency_key` field wins, so
    // each of the two has one rule of its own (which is what the OpenAPI document can say).
    let header_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .ok()
                // Visible ASCII and inner spaces, as the contract says (no tab: HTTP allows one).
                .filter(|k| (1..=256).contains(&k.len()) && k.bytes().all(|b| (0x20..=0x7e).contains(&b)))
                .ok_or_else(|| ApiError::invalid("Idempotency-Key: 1 to 256 visible ASCII characters"))?
                .to_string(),
        ),
        None => None,
    };
    let catalogue = state.catalogue_of(tenant).await?;
    let key = event.idempotency_key.clone().or_else(|| header_key.clone());
    let mut event = match prepare(state, tenant, &catalogue, event, header_key) {
        Ok(event) => event,
        Err(refused) => {
            let Some(id) = stored_under(state, tenant, key.as_deref(), &refused).await? else {
                return Err(refused);
            };
            return Ok((StatusCode::OK, axum::Json(duplicate_of(id))));
        }
    };
    let spans = super::event_trace::begin(headers, started, std::slice::from_mut(&mut event));
    let stored = state.store.ingest(&event).await;
    super::event_trace::end(spans, std::slice::from_ref(&stored));
    let stored = stored?;
    if stored.rate_limited {
        return Err(rate_limited(state));
    }
    let (status, body) = answer(state, tenant, &event, stored);
    Ok((status, axum::Json(body)))
}

/// A payload its schema refuses may be the retry of an event stored before the schema (or the
/// setting) changed: under its idempotency key it is that event's duplicate, as any retry. The
/// id stored under `key`, looked up only for a refusal by the schema (422).
async fn stored_under(
    state: &AppState,
    tenant: &str,
    key: Option<&str>,
    refused: &ApiError,
) -> ApiResult<Option<String>> {
    match key {
        Some(key) if refused.status == StatusCode::UNPROCESSABLE_ENTITY => {
            Ok(state.store.idempotent_event(tenant, key).await?)
        }
        _ => Ok(None),
    }
}

fn duplicate_of(id: String) -> Ingest {
    Ingest {
        id,
        deliveries: None,
        duplicate: true,
    }
}

/// Events to ingest together. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchIn {
    #[schema(schema_with = batch_events)]
    events: Vec<Box<RawValue>>,
}

/// `events`: 1 to 1,000 items, each checked on its own. An item that is not a valid `EventIn`
/// (any JSON value is taken) is refused in its place in `results`, not with a 400, so the
/// document says "an `EventIn`, or anything else".
fn batch_events() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType};
    use utoipa::openapi::Ref;
    ArrayBuilder::new()
        .items(
            AnyOfBuilder::new()
                .item(Ref::from_schema_name("EventIn"))
                .item(
                    ObjectBuilder::new()
                        .schema_type(SchemaType::AnyValue)
                        .description(Some("anything else: refused in its place in `results`")),
                )
                .description(Some(
                    "An `EventIn`; an item that is not one gets its error in its place in `results`.",
                )),
        )
        .min_items(Some(1))
        .max_items(Some(MAX_BATCH))
        .description(Some(
            "1 to 1,000 events, each checked on its own, stored in their order.",
        ))
        .build()
}

/// One result per event of a batch, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchOut {
    results: Vec<BatchResult>,
}

/// The event's answer, or its error (a bad item costs the others nothing; if the store fails,
/// the items from there on get its error, so nothing later is stored before something earlier).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    Stored(Ingest),
    Refused(ErrorBody),
}

/// Up to 1,000 events in one request, stored in their order (one script call per 100). Each
/// item is checked on its own: a bad item gets its error in its place and costs the others
/// nothing. 202 with one result per item, in order; 503 only if the store answered for none.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/events/batch",
    operation_id = "ingest_event_batch",
    tag = "events",
    params(TenantPath, super::event_trace::TraceparentHeader),
    request_body = BatchIn,
    responses(
        (status = 202, description = "one result per event, in order", body = BatchOut),
        (status = 400, description = "invalid JSON, not a batch (a missing or unknown field), 0 or more than \
            1,000 events, or a malformed tenant", body = ErrorBody),
        (status = 413, description = "request larger than `ingest.max_batch_bytes`", body = ErrorBody),
        (status = 415, description = "content-type is not application/json", body = ErrorBody),
    )
)]
async fn ingest_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
    headers: HeaderMap,
    JsonObject(batch): JsonObject<BatchIn>,
) -> ApiResult<(StatusCode, axum::Json<BatchOut>)> {
    let started = Instant::now();
    let began = std::time::SystemTime::now();
    caller.authorize(&tenant, Scope::EventsWrite)?;
    if batch.events.is_empty() || batch.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!("events: between 1 and {MAX_BATCH} events")));
    }
    let catalogue = state.catalogue_of(&tenant).await?;
    let mut keys: Vec<Option<String>> = Vec::with_capacity(batch.events.len());
    let prepared: Vec<ApiResult<NewEvent>> = batch
        .events
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            keys.push(None);
            let ObjectOnly(event): ObjectOnly<EventIn> =
                serde_json::from_str(raw.get()).map_err(|e| ApiError::invalid(format!("events[{i}]: {e}")))?;
            keys[i] = event.idempotency_key.clone();
            prepare(&state, &tenant, &catalogue, event, None).map_err(|e| ApiError {
                message: format!("events[{i}]: {}", e.message),
                ..e
            })
        })
        .collect();
    // Items refused by their schema that retry an event stored before: their duplicates.
    let lookups = prepared.iter().zip(&keys).map(|(item, key)| async {
        match item {
            Err(refused) => stored_under(&state, &tenant, key.as_deref(), refused).await,
            Ok(_) => Ok(None),
        }
    });
    let mut duplicates = crate::store::join_all(lookups).await.into_iter();
    let mut valid: Vec<NewEvent> = prepared.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let spans = super::event_trace::begin(&headers, began, &mut valid);
    let stored = state.store.ingest_batch(&valid).await;
    super::event_trace::end(spans, &stored);
    let mut stored = stored.into_iter();
    if !valid.is_empty() && stored.as_slice().iter().all(Result::is_err) {
        // Nothing was confirmed: the same answer as a single ingest that failed.
        if let Some(Err(e)) = stored.next() {
            count_ingested(&state, &tenant, "unavailable", valid.len() as u64);
            metrics::histogram!(crate::telemetry::names::INGEST_LATENCY).record(started.elapsed().as_secs_f64());
            return Err(e.into());
        }
    }
    let mut outcomes = (0, 0, 0);
    let results: Vec<BatchResult> = prepared
        .into_iter()
        .map(|item| {
            if let Some(Ok(Some(id))) = duplicates.next() {
                outcomes.1 += 1;
                return BatchResult::Stored(duplicate_of(id));
            }
            let outcome = item.and_then(|event| {
                let ingested = match stored.next() {
                    Some(result) => result?,
                    None => return Err(hookline_actors::StoreError::unavailable("no reply").into()),
                };
                if ingested.rate_limited {
                    return Err(rate_limited(&state));
                }
                Ok((event, ingested))
            });
            match outcome {
                Ok((event, ingested)) => {
                    let (status, body) = answer(&state, &tenant, &event, ingested);
                    if status == StatusCode::OK {
                        outcomes.1 += 1
                    } else {
                        outcomes.0 += 1
                    }
                    BatchResult::Stored(body)
                }
                Err(e) => {
                    outcomes.2 += 1;
                    BatchResult::Refused(ErrorBody {
                        error: ErrorDetail {
                            code: e.code.to_string(),
                            message: e.message,
                            details: e.details,
                        },
                    })
                }
            }
        })
        .collect();
    count_ingested(&state, &tenant, "accepted", outcomes.0);
    count_ingested(&state, &tenant, "duplicate", outcomes.1);
    count_ingested(&state, &tenant, "rejected", outcomes.2);
    metrics::histogram!(crate::telemetry::names::INGEST_LATENCY).record(started.elapsed().as_secs_f64());
    Ok((StatusCode::ACCEPTED, axum::Json(BatchOut { results })))
}

/// An event (as the events list shows it) and where it went.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    #[serde(flatten)]
    event: super::event_search::EventItem,
    deliveries: Vec<EventDelivery>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventDelivery {
    id: String,
    endpoint_id: String,
    /// pending | delivered | failed | dead
    status: String,
    attempts: u32,
}

/// An event (until retention) with its deliveries.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/events/{id}",
    operation_id = "get_event",
    tag = "events",
    params(EventPath),
    responses(
        (status = 200, description = "the event with its deliveries", body = EventOut),
        (status = 404, description = "no such event in this tenant (or past retention)", body = ErrorBody),
    )
)]
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(EventPath { tenant, id }): Path<EventPath>,
) -> ApiResult<axum::Json<EventOut>> {
    caller.authorize(&tenant, Scope::EventsRead)?;
    if !crate::ids::is_event_id(&id) {
        return Err(ApiError::not_found("event"));
    }
    let Some(stored) = state.store.get_event(&tenant, &id).await? else {
        return Err(ApiError::not_found("event"));
    };
    // Read as stored: `data` and `source` are passed on as they are (a payload JSON allows but
    // a JSON value cannot hold, such as a lone surrogate escape, is still shown, not a 500).
    let body: StoredBody = serde_json::from_str(&stored.body).map_err(crate::store::Error::from)?;
    if body.tenant != tenant {
        return Err(ApiError::not_found("event"));
    }
    let targets: Vec<(u32, String)> = stored
        .endpoint_ids
        .iter()
        .map(|ep| (state.node.shard_of(ep), ep.clone()))
        .collect();
    let items: Vec<(u32, &str, &str)> = targets.iter().map(|(s, ep)| (*s, ep.as_str(), id.as_str())).collect();
    let rows = state.store.delivery_rows(&items).await?;
    let deliveries = targets
        .iter()
        .zip(rows)
        .filter_map(|((_, ep), row)| {
            let row = row?;
            Some(EventDelivery {
                id: crate::ids::delivery_id(ep, &id),
                endpoint_id: ep.clone(),
                status: row.status,
                attempts: row.attempts,
            })
        })
        .collect();
    Ok(axum::Json(EventOut {
        event: super::event_search::EventItem::of(id, body, stored.schema_errors, stored.metadata),
        deliveries,
    }))
}

/// An event's stored metadata as the API shows it: the object, `{}` when none.
pub(super) fn metadata_of(stored: Option<String>) -> Box<RawValue> {
    stored
        .and_then(|m| RawValue::from_string(m).ok())
        .unwrap_or_else(|| RawValue::from_string("{}".into()).expect("an empty object"))
}

/// An event's body as stored (`event::NewEvent`).
#[derive(Deserialize)]
pub(super) struct StoredBody {
    #[serde(rename = "type")]
    pub(super) event_type: String,
    pub(super) timestamp: String,
    pub(super) tenant: String,
    pub(super) data: Box<RawValue>,
    pub(super) source: Option<Box<RawValue>>,
}

/// `hookline_events_ingested_total{outcome[, tenant]}`.
fn count_ingested(state: &AppState, tenant: &str, outcome: &'static str, n: u64) {
    let labels = hookline_actors::names::MetricLabels {
        tenant: state.config.metrics.tenant_labels,
        endpoint: false,
    };
    let labels = labels.with_tenant(&[("outcome", outcome.to_string())], tenant);
    metrics::counter!(crate::telemetry::names::EVENTS_INGESTED, labels).increment(n);
}

/// The tenant spent its ingest limit for this second: nothing was stored.
pub(super) fn rate_limited(state: &AppState) -> ApiError {
    ApiError {
        retry_after_s: Some(1),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this tenant may ingest {} events per second; nothing was stored, retry after 1 s",
                state.config.ingest.tenant_rate_limit_per_s
            ),
        )
    }
}
