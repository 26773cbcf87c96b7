//! `/v1/tenants/{tenant}/events`: ingest and look-up.
//!
//! Invariant 1 lives here: the 202 is sent only after Redis acknowledged the script that stored
//! the event and appended it to the stream. Any failure to store answers 503, never 2xx.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path};
use super::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::time::Instant;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/events", post(ingest))
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

async fn ingest_one(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    event: EventIn,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
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
    let header_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key: must be visible ASCII"))?
                .to_string(),
        ),
        None => None,
    };
    let key = event.idempotency_key.or(header_key);
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 256) {
        return Err(ApiError::invalid("idempotency_key: between 1 and 256 characters"));
    }
    let now = hookline_actors::now_ms();
    let event_id = crate::ids::new_event_id(now);
    let body = crate::store::event_body(&event_id, &event.event_type, now, tenant, event.payload.get());
    let stored = state
        .store
        .ingest(tenant, &event_id, &event.event_type, &body, key.as_deref())
        .await?;
    if stored.duplicate {
        return Ok((
            StatusCode::OK,
            axum::Json(json!({"id": stored.event_id, "duplicate": true})),
        ));
    }
    let deliveries = state.index.matching(tenant, &event.event_type).len();
    tracing::debug!(tenant, event_id = %event_id, event_type = %event.event_type, deliveries, "event accepted");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"id": event_id, "deliveries": deliveries})),
    ))
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
