//! `/v1/tenants/{tenant}/deliveries/{id}`: one delivery with every attempt.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::Path;
use super::{rfc3339, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use hookline_actors::Store;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/deliveries/{id}", get(fetch))
        .route("/v1/tenants/{tenant}/deliveries/{id}/replay", post(replay))
}

async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    caller.authorize(&tenant)?;
    let (endpoint_id, event_id) = crate::ids::parse_delivery_id(&id).ok_or_else(|| ApiError::not_found("delivery"))?;
    match state.store.get_endpoint(&endpoint_id).await? {
        Some(cfg) if cfg.tenant == tenant => {}
        _ => return Err(ApiError::not_found("delivery")),
    }
    let shard = state.node.shard_of(&endpoint_id);
    let delivery = state
        .store
        .get_delivery(shard, &endpoint_id, &event_id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let attempts: Vec<Value> = delivery
        .attempts
        .iter()
        .map(|a| {
            json!({
                "at": rfc3339(a.at_ms),
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "response_excerpt": a.response_excerpt,
                "error": a.error,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "id": id,
        "endpoint_id": endpoint_id,
        "event_id": event_id,
        "status": delivery.status,
        "created_at": rfc3339(delivery.created_ms),
        "next_attempt_at": delivery.next_ms.map(rfc3339),
        "reason": delivery.reason,
        "attempts": attempts,
    })))
}

/// Start a new attempt cycle for one delivery, whatever its state (a delivered one is sent
/// again). 409 if its event is past retention.
async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    caller.authorize(&tenant)?;
    let (endpoint_id, event_id) = crate::ids::parse_delivery_id(&id).ok_or_else(|| ApiError::not_found("delivery"))?;
    let cfg = match state.store.get_endpoint(&endpoint_id).await? {
        Some(cfg) if cfg.tenant == tenant => cfg,
        _ => return Err(ApiError::not_found("delivery")),
    };
    if !state.store.event_exists(&event_id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "event_expired",
            "the event is past retention and cannot be sent again",
        ));
    }
    let shard = state.node.shard_of(&endpoint_id);
    if state.store.replay(shard, &cfg, std::slice::from_ref(&event_id)).await? == 0 {
        return Err(ApiError::not_found("delivery"));
    }
    Ok((StatusCode::ACCEPTED, axum::Json(json!({"id": id, "status": "pending"}))))
}
