//! `/v1/tenants/{tenant}/events`: ingest and look-up.
//!
//! Invariant 1 lives here: the 202 is sent only after Redis acknowledged the script that stored
//! the event and appended it to the stream. Any failure to store answers 503, never 2xx.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path};
use super::AppState;
use crate::store::{Ingested, NewEvent};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::time::Instant;

/// Most events in one batch.
const MAX_BATCH: usize = 1_000;

/// `max_batch_bytes`: the largest batch request body (`ingest.max_batch_bytes`).
pub fn router(max_batch_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/events", post(ingest))
        .route(
            "/v1/tenants/{tenant}/events/batch",
            post(ingest_batch).layer(axum::extract::DefaultBodyLimit::max(max_batch_bytes)),
        )
        .route("/v1/tenants/{tenant}/events/{id}", get(fetch))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn {
    #[serde(rename = "type")]
    event_type: String,
    payload: Box<RawValue>,
    idempotency_key: Option<String>,
}

async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Json(event): Json<EventIn>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let started = Instant::now();
    caller.authorize(&tenant)?;
    let outcome = ingest_one(&state, &tenant, &headers, event).await;
    let label = match &outcome {
        Ok((StatusCode::OK, _)) => "duplicate",
        Ok(_) => "accepted",
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        Err(_) => "rejected",
    };
    metrics::counter!(crate::telemetry::names::EVENTS_INGESTED, "outcome" => label).increment(1);
    metrics::histogram!(crate::telemetry::names::INGEST_LATENCY).record(started.elapsed().as_secs_f64());
    outcome
}

/// Check one event and turn it into what the store takes: id minted, body built.
fn prepare(state: &AppState, tenant: &str, event: EventIn, header_key: Option<String>) -> ApiResult<NewEvent> {
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
    let key = event.idempotency_key.or(header_key);
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 256) {
        return Err(ApiError::invalid("idempotency_key: between 1 and 256 characters"));
    }
    let now = hookline_actors::now_ms();
    let event_id = crate::ids::new_event_id(now);
    let body = crate::store::event_body(&event_id, &event.event_type, now, tenant, event.payload.get());
    Ok(NewEvent {
        event_id,
        event_type: event.event_type,
        body,
        idempotency_key: key,
        only_endpoint: None,
    })
}

/// The answer for one stored event: `(200, duplicate)` or `(202, accepted)`.
fn answer(state: &AppState, tenant: &str, event: &NewEvent, stored: Ingested) -> (StatusCode, Value) {
    if stored.duplicate {
        return (StatusCode::OK, json!({"id": stored.event_id, "duplicate": true}));
    }
    let deliveries = state.index.matching(tenant, &event.event_type).len();
    tracing::debug!(tenant, event_id = %event.event_id, event_type = %event.event_type, deliveries, "event accepted");
    (
        StatusCode::ACCEPTED,
        json!({"id": event.event_id, "deliveries": deliveries}),
    )
}

async fn ingest_one(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    event: EventIn,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let header_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key: must be visible ASCII"))?
                .to_string(),
        ),
        None => None,
    };
    let event = prepare(state, tenant, event, header_key)?;
    let stored = state
        .store
        .ingest(
            tenant,
            &event.event_id,
            &event.event_type,
            &event.body,
            event.idempotency_key.as_deref(),
        )
        .await?;
    if stored.rate_limited {
        return Err(rate_limited(state));
    }
    let (status, body) = answer(state, tenant, &event, stored);
    Ok((status, axum::Json(body)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchIn {
    events: Vec<Box<RawValue>>,
}

/// Up to 1,000 events in one request, stored in one pipelined round trip. Each item is checked
/// on its own: a bad item gets its error in its place and costs the others nothing. 202 with
/// one result per item, in order; 503 only if the store answered for none of them.
async fn ingest_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Json(batch): Json<BatchIn>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let started = Instant::now();
    caller.authorize(&tenant)?;
    if batch.events.is_empty() || batch.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!("events: between 1 and {MAX_BATCH} events")));
    }
    let prepared: Vec<ApiResult<NewEvent>> = batch
        .events
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let event: EventIn =
                serde_json::from_str(raw.get()).map_err(|e| ApiError::invalid(format!("events[{i}]: {e}")))?;
            prepare(&state, &tenant, event, None).map_err(|e| ApiError {
                message: format!("events[{i}]: {}", e.message),
                ..e
            })
        })
        .collect();
    let valid: Vec<NewEvent> = prepared.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let mut stored = state.store.ingest_batch(&tenant, &valid).await.into_iter();
    if !valid.is_empty() && stored.as_slice().iter().all(Result::is_err) {
        // Nothing was confirmed: the same answer as a single ingest that failed.
        if let Some(Err(e)) = stored.next() {
            return Err(e.into());
        }
    }
    let mut outcomes = (0, 0, 0);
    let results: Vec<Value> = prepared
        .into_iter()
        .map(|item| {
            let outcome = item.and_then(|event| {
                let result = stored
                    .next()
                    .unwrap_or_else(|| Err(hookline_actors::StoreError::Unavailable("no reply".into())));
                let ingested = result?;
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
                    body
                }
                Err(e) => {
                    outcomes.2 += 1;
                    json!({"error": {"code": e.code, "message": e.message}})
                }
            }
        })
        .collect();
    let counter = crate::telemetry::names::EVENTS_INGESTED;
    metrics::counter!(counter, "outcome" => "accepted").increment(outcomes.0);
    metrics::counter!(counter, "outcome" => "duplicate").increment(outcomes.1);
    metrics::counter!(counter, "outcome" => "rejected").increment(outcomes.2);
    metrics::histogram!(crate::telemetry::names::INGEST_LATENCY).record(started.elapsed().as_secs_f64());
    Ok((StatusCode::ACCEPTED, axum::Json(json!({"results": results}))))
}

async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    caller.authorize(&tenant)?;
    if !crate::ids::is_event_id(&id) {
        return Err(ApiError::not_found("event"));
    }
    let Some(stored) = state.store.get_event(&id).await? else {
        return Err(ApiError::not_found("event"));
    };
    let body: Value =
        serde_json::from_str(&stored.body).map_err(|e| hookline_actors::StoreError::Corrupt(e.to_string()))?;
    if body["tenant"] != Value::String(tenant.clone()) {
        return Err(ApiError::not_found("event"));
    }
    let targets: Vec<(u32, String)> = stored
        .endpoint_ids
        .iter()
        .map(|ep| (state.node.shard_of(ep), ep.clone()))
        .collect();
    let summaries = if targets.is_empty() {
        Vec::new()
    } else {
        state.store.delivery_summaries(&targets, &id).await?
    };
    let deliveries: Vec<Value> = targets
        .iter()
        .zip(summaries)
        .filter_map(|((_, ep), summary)| {
            let (status, attempts) = summary?;
            Some(json!({"id": crate::ids::delivery_id(ep, &id), "endpoint_id": ep, "status": status, "attempts": attempts}))
        })
        .collect();
    Ok(axum::Json(json!({
        "id": id,
        "type": body["type"],
        "timestamp": body["timestamp"],
        "payload": body["data"],
        "deliveries": deliveries,
    })))
}

/// The tenant spent its ingest limit for this second: nothing was stored.
fn rate_limited(state: &AppState) -> ApiError {
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
