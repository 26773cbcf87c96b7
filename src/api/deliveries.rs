//! `/v1/tenants/{tenant}/deliveries`: the delivery list (filters, cursor paging, newest
//! first), one delivery with every attempt, and replay.
//!
//! The list reads each endpoint's delivery log (event ids by ingest order) newest first and
//! merges them; the cursor is the position `(ingest order, delivery id)` of the last delivery
//! returned, so pages stay stable while new deliveries arrive.

use super::auth::{Caller, Scope};
use super::delivery_order::{merge_newest, Candidate, Position};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::{rfc3339, AppState};
use super::{DeliveryPath, TenantPath};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(fetch))
        .routes(routes!(replay))
}

/// One attempt, as logged.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    /// When it started (RFC 3339).
    at: String,
    /// The receiver's status, if it answered.
    status_code: Option<u16>,
    latency_ms: u64,
    /// The first 1 KiB of the response body.
    response_excerpt: String,
    /// Timeout, connection or TLS error, `destination_blocked`, …
    error: Option<String>,
}

/// A delivery with every attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    id: String,
    endpoint_id: String,
    event_id: String,
    /// pending | delivered | failed (a retry is scheduled) | dead
    status: String,
    created_at: String,
    next_attempt_at: Option<String>,
    /// Why it is dead: `http_<code>`, `redirect_<code>`, `retries_exhausted`, `gone`,
    /// `destination_blocked`, `event_expired`, `endpoint_deleted`, `transform_failed`,
    /// `cancelled` (by the endpoint's transform).
    reason: Option<String>,
    attempts: Vec<AttemptOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    id: String,
    /// Always `pending`: a new attempt cycle starts now.
    status: String,
}

/// One delivery with every attempt.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/deliveries/{id}",
    operation_id = "get_delivery",
    tag = "deliveries",
    params(DeliveryPath),
    responses(
        (status = 200, description = "the delivery with every attempt", body = DeliveryDetail),
        (status = 404, description = "no such delivery in this tenant", body = ErrorBody),
    )
)]
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(DeliveryPath { tenant, id }): Path<DeliveryPath>,
) -> ApiResult<axum::Json<DeliveryDetail>> {
    caller.authorize(&tenant, Scope::DeliveriesRead)?;
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
    let attempts = delivery
        .attempts
        .into_iter()
        .map(|a| AttemptOut {
            at: rfc3339(a.at_ms),
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response_excerpt: a.response_excerpt,
            error: a.error,
        })
        .collect();
    Ok(axum::Json(DeliveryDetail {
        id,
        endpoint_id,
        event_id,
        status: delivery.status,
        created_at: rfc3339(delivery.created_ms),
        next_attempt_at: delivery.next_ms.map(rfc3339),
        reason: delivery.reason,
        attempts,
    }))
}

/// Start a new attempt cycle for one delivery, whatever its state (a delivered one is sent
/// again). 409 if its event is past retention.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/deliveries/{id}/replay",
    operation_id = "replay_delivery",
    tag = "deliveries",
    params(DeliveryPath),
    responses(
        (status = 202, description = "a new attempt cycle has started", body = Replayed),
        (status = 404, description = "no such delivery in this tenant", body = ErrorBody),
        (status = 409, description = "`event_expired`: the event is past retention", body = ErrorBody),
    )
)]
async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    origin: super::audit::Origin,
    Path(DeliveryPath { tenant, id }): Path<DeliveryPath>,
) -> ApiResult<(StatusCode, axum::Json<Replayed>)> {
    caller.authorize(&tenant, Scope::DeliveriesReplay)?;
    replay_delivery(&state, &origin.by(&caller), &tenant, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Replayed {
            id,
            status: "pending".into(),
        }),
    ))
}

/// Replay the tenant's delivery `id` as `author` (the API and the console): 404 if there is
/// no such delivery, 409 `event_expired` past retention; the audit entry is written first.
pub(super) async fn replay_delivery(
    state: &AppState,
    author: &super::audit::Author,
    tenant: &str,
    id: &str,
) -> ApiResult<()> {
    let (endpoint_id, event_id) = crate::ids::parse_delivery_id(id).ok_or_else(|| ApiError::not_found("delivery"))?;
    let cfg = match state.store.get_endpoint(&endpoint_id).await? {
        Some(cfg) if cfg.tenant == tenant => cfg,
        _ => return Err(ApiError::not_found("delivery")),
    };
    if !state.store.event_exists(tenant, &event_id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "event_expired",
            "the event is past retention and cannot be sent again",
        ));
    }
    let shard = state.node.shard_of(&endpoint_id);
    // Recorded just before it runs (the delivery's records are in another slot than the log):
    // a crash in between leaves an entry for a replay that did not start, never the reverse.
    let entry = author.entry(
        tenant,
        "delivery.replayed",
        crate::store::audit::Target::new("delivery", id),
        Default::default(),
    );
    state
        .store
        .audit_only(crate::store::audit::Kind::Endpoints, &entry)
        .await?;
    if state.store.replay(shard, &cfg, std::slice::from_ref(&event_id)).await? == 0 {
        return Err(ApiError::not_found("delivery"));
    }
    Ok(())
}

/// Most deliveries one list request looks at while filtering by status; past it the page is
/// returned short, with a cursor to go on from.
const SCAN_BUDGET: usize = 2_000;
/// Most delivery-log entries read in one round trip, over all of the tenant's endpoints.
const ENTRIES_PER_ROUND: usize = 5_000;
/// Most round trips one list request makes; past it the page is returned short, with a cursor.
const MAX_ROUNDS: usize = 20;

/// The list's filters and paging; unknown parameters are refused (400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    endpoint_id: Option<String>,
    event_id: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

impl IntoParams for ListParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        use super::schema::{self, query_param};
        let status = utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(STATUSES))
            .build();
        vec![
            query_param(
                "endpoint_id",
                "Only deliveries to this endpoint (404 if it is malformed or not an endpoint of this tenant).",
                schema::endpoint_id(),
            ),
            query_param("event_id", "Only deliveries of this event.", schema::event_id()),
            query_param("status", "Only deliveries in this state.", status),
            query_param(
                "from",
                "Only deliveries of events ingested at or after this time.",
                schema::time_bound(),
            ),
            query_param(
                "to",
                "Only deliveries of events ingested before this time.",
                schema::time_bound(),
            ),
            query_param("limit", "Page size: 1 to 500, default 50.", schema::limit()),
            query_param(
                "cursor",
                "`next_cursor` of the previous page (absent: the first page).",
                schema::delivery_cursor(),
            ),
        ]
    }
}

/// The states of a delivery: failed means a retry is scheduled.
const STATUSES: [&str; 4] = ["pending", "delivered", "failed", "dead"];

/// One delivery in the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliverySummary {
    id: String,
    endpoint_id: String,
    event_id: String,
    status: String,
    attempts: u32,
    created_at: String,
    updated_at: Option<String>,
    next_attempt_at: Option<String>,
    reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    data: Vec<DeliverySummary>,
    next_cursor: Option<String>,
}

/// The tenant's deliveries, newest first (by the event's ingest order), filtered and paged.
/// With a `status` filter a page may be short; only `next_cursor: null` ends the list.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/deliveries",
    operation_id = "list_deliveries",
    tag = "deliveries",
    params(TenantPath, ListParams),
    responses(
        (status = 200, description = "a page of deliveries, newest first", body = DeliveryPage),
        (status = 400, description = "a malformed tenant, `event_id`, `status`, `from`, `to`, limit or cursor, or an unknown \
            query parameter (the message names it)", body = ErrorBody),
        (status = 404, description = "`endpoint_id` is not an endpoint of this tenant", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<DeliveryPage>> {
    caller.authorize(&tenant, Scope::DeliveriesRead)?;
    let limit = super::page_limit(q.limit)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) if STATUSES.contains(&s) => Some(s.to_string()),
        Some(_) => return Err(ApiError::invalid("status: one of pending, delivered, failed, dead")),
    };
    let mut position = match q.cursor.as_deref() {
        None => None,
        Some(c) => {
            Some(Position::decode(c).ok_or_else(|| ApiError::invalid("cursor: not a cursor this list returned"))?)
        }
    };
    if let Some(event_id) = q.event_id.as_deref() {
        if !crate::ids::is_event_id(event_id) {
            return Err(ApiError::invalid("event_id: not an event id (evt_…)"));
        }
    }
    // A time range: `to` is where the newest page starts (or the cursor, if older), `from`
    // where the list ends.
    let from_ms = q.from.as_deref().map(|t| super::parse_time("from", t)).transpose()?;
    if let Some(to) = q.to.as_deref().map(|t| super::parse_time("to", t)).transpose()? {
        let start = Position::before(to);
        if position.as_ref().is_none_or(|p| start.is_after(p)) {
            position = Some(start);
        }
    }
    let in_range = |at: &Position| from_ms.is_none_or(|from| at.order >= from as f64);
    let endpoint_ids = match q.endpoint_id.as_deref() {
        Some(id) => vec![super::endpoints::load(&state, &tenant, id).await?.id],
        None => state.store.tenant_endpoint_ids(&tenant).await?,
    };
    let sources: Vec<(u32, String)> = endpoint_ids
        .into_iter()
        .map(|id| (state.node.shard_of(&id), id))
        .collect();

    let mut data = Vec::with_capacity(limit);
    let mut scanned = 0;
    // Entries read per log each round: enough for the page (more when a status filter skips
    // some), within ENTRIES_PER_ROUND over all logs; raised if ties at one ingest order fill it.
    let mut per_log_floor = 2;
    let mut rounds = 0;
    let next_cursor = loop {
        rounds += 1;
        let mut want = limit - data.len() + 1;
        if status.is_some() {
            // A status filter may skip most of what it reads: take what the scan budget has
            // left in one round rather than a page's worth in many (each round reads every log).
            want = want.max(SCAN_BUDGET.saturating_sub(scanned)).max(100);
        }
        let (candidates, exhausted) = match q.event_id.as_deref() {
            Some(event_id) => event_candidates(&state, &tenant, &sources, event_id, position.as_ref()).await?,
            None => {
                // One more than wanted per log: the delivery at the cursor itself comes back too.
                let share = (ENTRIES_PER_ROUND / sources.len().max(1)).max(2);
                let per_log = (want + 1).min(share).max(per_log_floor);
                let pages = state
                    .store
                    .delivery_log_newest(&sources, position.as_ref().map(|p| p.order), per_log)
                    .await?;
                let logs = sources.iter().map(|(_, id)| id.clone()).zip(pages).collect();
                merge_newest(logs, position.as_ref(), per_log, want)
            }
        };
        // Older than `from`: the list ends there.
        let ends = candidates.iter().any(|c| !in_range(&c.at));
        let candidates: Vec<Candidate> = candidates.into_iter().filter(|c| in_range(&c.at)).collect();
        let exhausted = exhausted || ends;
        if candidates.is_empty() {
            if exhausted {
                break None;
            }
            // Every entry read sat at the cursor's ingest order (ties): read deeper.
            per_log_floor = (per_log_floor * 8).min(SCAN_BUDGET);
            if rounds >= MAX_ROUNDS {
                break position.map(|p| p.encode());
            }
            continue;
        }
        let items: Vec<(u32, &str, &str)> = candidates
            .iter()
            .map(|c| {
                (
                    state.node.shard_of(&c.endpoint_id),
                    c.endpoint_id.as_str(),
                    c.event_id.as_str(),
                )
            })
            .collect();
        let rows = state.store.delivery_rows(&items).await?;
        let mut full = false;
        for (candidate, row) in candidates.iter().zip(rows) {
            if data.len() == limit {
                full = true;
                break;
            }
            position = Some(candidate.at.clone());
            scanned += 1;
            let Some(row) = row else { continue };
            if status.as_ref().is_some_and(|s| *s != row.status) {
                continue;
            }
            data.push(DeliverySummary {
                id: candidate.at.delivery_id.clone(),
                endpoint_id: candidate.endpoint_id.clone(),
                event_id: candidate.event_id.clone(),
                status: row.status,
                attempts: row.attempts,
                created_at: rfc3339(row.created_ms),
                updated_at: row.updated_ms.map(rfc3339),
                next_attempt_at: row.next_ms.map(rfc3339),
                reason: row.reason,
            });
        }
        if full || (!exhausted && (scanned >= SCAN_BUDGET || rounds >= MAX_ROUNDS)) {
            break position.map(|p| p.encode());
        }
        if exhausted {
            break None;
        }
    };
    Ok(axum::Json(DeliveryPage { data, next_cursor }))
}

/// The deliveries of one event to these endpoints, after `after`, newest first (all share the
/// event's ingest order, so by delivery id). Always the whole list: an event has one delivery
/// per endpoint at most.
async fn event_candidates(
    state: &AppState,
    tenant: &str,
    sources: &[(u32, String)],
    event_id: &str,
    after: Option<&Position>,
) -> ApiResult<(Vec<Candidate>, bool)> {
    let Some(stored) = state.store.get_event(tenant, event_id).await? else {
        return Ok((Vec::new(), true));
    };
    let wanted: Vec<(u32, String)> = sources
        .iter()
        .filter(|(_, id)| stored.endpoint_ids.contains(id))
        .cloned()
        .collect();
    let items: Vec<(u32, &str, &str)> = wanted.iter().map(|(s, id)| (*s, id.as_str(), event_id)).collect();
    let rows = state.store.delivery_rows(&items).await?;
    let logs = wanted
        .iter()
        .zip(rows)
        .filter_map(|((_, id), row)| Some((id.clone(), vec![(event_id.to_string(), row?.order)])))
        .collect();
    Ok(merge_newest(logs, after, 2, usize::MAX))
}
