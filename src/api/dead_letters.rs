//! `/v1/tenants/{tenant}/endpoints/{id}/dead-letters`: an endpoint's dead letters, and their
//! replay.

use super::auth::Caller;
use super::endpoints::load;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query, RawBody};
use super::{offset_cursor, page_limit, rfc3339, AppState, EndpointPath, ListQuery};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(dead_letters))
        .routes(routes!(replay_dead_letters))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterOut {
    delivery_id: String,
    event_id: String,
    dead_at: String,
    reason: String,
    attempts: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterPage {
    data: Vec<DeadLetterOut>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayCount {
    replayed: u64,
}

/// The endpoint's dead letters, newest first, paged.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints/{id}/dead-letters",
    tag = "endpoints",
    params(EndpointPath, ListQuery),
    responses(
        (status = 200, body = DeadLetterPage),
        (status = 400, description = "a malformed limit or cursor", body = ErrorBody),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
    )
)]
async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<DeadLetterPage>> {
    caller.authorize(&tenant)?;
    let cfg = load(&state, &tenant, &id).await?;
    let limit = page_limit(q.limit)?;
    let offset = offset_cursor(q.cursor.as_deref())?;
    let shard = state.node.shard_of(&cfg.id);
    let (letters, next) = state.store.dead_letters(shard, &cfg.id, offset, limit).await?;
    let data = letters
        .into_iter()
        .map(|d| DeadLetterOut {
            delivery_id: crate::ids::delivery_id(&cfg.id, &d.event_id),
            event_id: d.event_id,
            dead_at: rfc3339(d.dead_at_ms),
            reason: d.reason,
            attempts: d.attempts,
        })
        .collect();
    Ok(axum::Json(DeadLetterPage {
        data,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// Only letters dead since this RFC 3339 time.
    since: Option<String>,
}

/// Replay every dead letter of the endpoint (dead since `since`, if given): each starts a new
/// attempt cycle. The body is optional.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints/{id}/dead-letters/replay",
    tag = "endpoints",
    params(EndpointPath),
    request_body(content = Option<ReplayBody>, description = "optional", content_type = "application/json"),
    responses(
        (status = 202, description = "each replayed letter starts a new attempt cycle", body = ReplayCount),
        (status = 400, description = "invalid JSON or `since`", body = ErrorBody),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
    )
)]
async fn replay_dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, axum::Json<ReplayCount>)> {
    caller.authorize(&tenant)?;
    let cfg = load(&state, &tenant, &id).await?;
    let request: ReplayBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?
    };
    let since_ms = match request.since.as_deref() {
        None => 0,
        Some(text) => humantime::parse_rfc3339_weak(text)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .ok_or_else(|| ApiError::invalid("since: an RFC 3339 time in UTC, like 2026-01-31T12:00:00Z"))?,
    };
    let shard = state.node.shard_of(&cfg.id);
    // Only letters dead before this request: one that dies again while we go is not replayed
    // twice. Replayed letters leave the set, so each batch reads from the start.
    let until_ms = hookline_actors::now_ms();
    let mut replayed = 0;
    for _ in 0..1_000 {
        let ids = state
            .store
            .dead_letter_ids_between(shard, &cfg.id, since_ms, until_ms, 500)
            .await?;
        if ids.is_empty() {
            break;
        }
        replayed += state.store.replay(shard, &cfg, &ids).await?;
    }
    tracing::info!(tenant = %cfg.tenant, endpoint_id = %cfg.id, replayed, "dead letters replayed");
    Ok((StatusCode::ACCEPTED, axum::Json(ReplayCount { replayed })))
}
