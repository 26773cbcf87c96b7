//! `/v1/tenants/{tenant}/endpoints/{id}/dead-letters`: an endpoint's dead letters, and their
//! replay.

use super::auth::{Caller, Scope};
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
    let (schemas, mut paths, replay) = routes!(replay_dead_letters);
    // The replay body is optional (empty: every letter). utoipa says so only for an `Option`
    // body, which it documents as "`null` or the object"; the handler refuses `null`, so the
    // body is documented as the object alone, and marked optional here.
    for item in paths.paths.values_mut() {
        if let Some(body) = item.post.as_mut().and_then(|op| op.request_body.as_mut()) {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
    OpenApiRouter::new()
        .routes(routes!(dead_letters))
        .routes((schemas, paths, replay))
}

/// A delivery that was given up on.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterOut {
    delivery_id: String,
    event_id: String,
    /// When it died (RFC 3339).
    dead_at: String,
    /// Why: `http_<code>`, `redirect_<code>`, `retries_exhausted`, `gone`, `destination_blocked`,
    /// `transform_failed`, `cancelled`, …
    reason: String,
    attempts: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterPage {
    data: Vec<DeadLetterOut>,
    /// Pass as `cursor` for the next page; null at the end.
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayCount {
    /// Letters that started a new attempt cycle.
    replayed: u64,
}

/// The endpoint's dead letters, newest first, paged.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints/{id}/dead-letters",
    operation_id = "list_dead_letters",
    tag = "endpoints",
    params(EndpointPath, ListQuery),
    responses(
        (status = 200, description = "a page of dead letters", body = DeadLetterPage),
        (status = 400, description = "a malformed tenant, limit or cursor, or an unknown query parameter", body = ErrorBody),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
    )
)]
async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    Path(EndpointPath { tenant, id }): Path<EndpointPath>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<DeadLetterPage>> {
    caller.authorize(&tenant, Scope::DeliveriesRead)?;
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

/// Which dead letters to replay. Unknown fields are refused.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    #[schema(schema_with = super::schema::since)]
    since: Option<String>,
}

/// Replay every dead letter of the endpoint (dead since `since`, if given): each starts a new
/// attempt cycle. The body is optional.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints/{id}/dead-letters/replay",
    operation_id = "replay_dead_letters",
    tag = "endpoints",
    params(EndpointPath),
    request_body(
        content = ReplayBody,
        description = "optional: an empty body replays every letter (the content-type is not checked)",
        content_type = "application/json"
    ),
    responses(
        (status = 202, description = "each replayed letter starts a new attempt cycle", body = ReplayCount),
        (status = 400, description = "invalid JSON, an unknown field, a malformed `since` or tenant", body = ErrorBody),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
        (status = 413, description = "the body is larger than `ingest.max_payload_bytes` + 16 KiB", body = ErrorBody),
    )
)]
async fn replay_dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    origin: super::audit::Origin,
    Path(EndpointPath { tenant, id }): Path<EndpointPath>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, axum::Json<ReplayCount>)> {
    caller.authorize(&tenant, Scope::DeliveriesReplay)?;
    let cfg = load(&state, &tenant, &id).await?;
    let request: ReplayBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?
    };
    let since_ms = match request.since.as_deref() {
        None => 0,
        Some(text) => super::parse_time("since", text)?,
    };
    let shard = state.node.shard_of(&cfg.id);
    // Recorded before it runs, like a single replay (`deliveries::replay`).
    let entry = origin.by(&caller).entry(
        &tenant,
        "dead_letters.replayed",
        crate::store::audit::Target::new("endpoint", &cfg.id),
        Default::default(),
    );
    state
        .store
        .audit_only(crate::store::audit::Kind::Endpoints, &entry)
        .await?;
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
