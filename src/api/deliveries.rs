//! `/v1/tenants/{tenant}/deliveries`: the delivery list (filters, cursor paging, newest
//! first), one delivery with every attempt, and replay.
//!
//! The list reads each endpoint's delivery log (event ids by ingest order) newest first and
//! merges them; the cursor is the position `(ingest order, delivery id)` of the last delivery
//! returned, so pages stay stable while new deliveries arrive.

use super::auth::{Caller, Scope};
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
    /// `destination_blocked`, `event_expired`, `endpoint_deleted`.
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

/// Where a page ends: ingest order of the event, then delivery id (both descending).
#[derive(Debug, Clone, PartialEq)]
struct Position {
    order: f64,
    delivery_id: String,
}

impl Position {
    /// Just after every delivery of events ingested at `ms` or later (a page that starts there
    /// holds only older ones).
    fn before(ms: u64) -> Position {
        let first = |len: usize| "0".repeat(len);
        Position {
            order: ms as f64,
            delivery_id: crate::ids::delivery_id(
                &format!("ep_{}", first(crate::ids::ENDPOINT_CORE)),
                &format!("evt_{}", first(crate::ids::EVENT_CORE)),
            ),
        }
    }

    fn encode(&self) -> String {
        format!("{}~{}", self.order, self.delivery_id)
    }
    fn decode(s: &str) -> Option<Self> {
        let (order, delivery_id) = s.split_once('~')?;
        let order: f64 = order.parse().ok().filter(|o: &f64| o.is_finite())?;
        crate::ids::parse_delivery_id(delivery_id)?;
        Some(Self {
            order,
            delivery_id: delivery_id.to_string(),
        })
    }
    /// Is `self` after `other` in newest-first order?
    fn is_after(&self, other: &Position) -> bool {
        self.order < other.order || (self.order == other.order && self.delivery_id < other.delivery_id)
    }
}

/// A delivery found in an endpoint's log.
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    endpoint_id: String,
    event_id: String,
    at: Position,
}

/// Merge endpoints' logs (each newest first, `fetched_per_log` entries asked of each) into the
/// `take` newest deliveries strictly after `after`. A log that returned all it was asked may
/// hold older entries not read yet, so only candidates at or above the newest of such logs'
/// last entries are certain to be in order; the rest wait for the next round. Returns them and
/// whether every log was read to its end.
fn merge_newest(
    logs: Vec<(String, Vec<(String, f64)>)>,
    after: Option<&Position>,
    fetched_per_log: usize,
    take: usize,
) -> (Vec<Candidate>, bool) {
    let frontier: Option<Position> = logs
        .iter()
        .filter(|(_, entries)| entries.len() >= fetched_per_log)
        .filter_map(|(endpoint_id, entries)| {
            let (event_id, order) = entries.last()?;
            Some(Position {
                order: *order,
                delivery_id: crate::ids::delivery_id(endpoint_id, event_id),
            })
        })
        .reduce(|a, b| if a.is_after(&b) { b } else { a });
    let exhausted = frontier.is_none();
    let mut all: Vec<Candidate> = logs
        .into_iter()
        .flat_map(|(endpoint_id, entries)| {
            entries.into_iter().map(move |(event_id, order)| Candidate {
                at: Position {
                    order,
                    delivery_id: crate::ids::delivery_id(&endpoint_id, &event_id),
                },
                endpoint_id: endpoint_id.clone(),
                event_id,
            })
        })
        .filter(|c| after.is_none_or(|a| c.at.is_after(a)))
        .filter(|c| frontier.as_ref().is_none_or(|f| !c.at.is_after(f)))
        .collect();
    all.sort_by(|a, b| {
        b.at.order
            .total_cmp(&a.at.order)
            .then_with(|| b.at.delivery_id.cmp(&a.at.delivery_id))
    });
    let exhausted = exhausted && all.len() <= take;
    all.truncate(take);
    (all, exhausted)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn log(endpoint: &str, entries: &[(&str, f64)]) -> (String, Vec<(String, f64)>) {
        (
            endpoint.to_string(),
            entries.iter().map(|(e, s)| (e.to_string(), *s)).collect(),
        )
    }

    #[test]
    fn merges_logs_newest_first_and_pages_by_position() {
        let logs = || {
            vec![
                log("ep_aaaa", &[("evt_0005", 5.0), ("evt_0003", 3.0), ("evt_0001", 1.0)]),
                log("ep_bbbb", &[("evt_0005", 5.0), ("evt_0004", 4.0), ("evt_0002", 2.0)]),
            ]
        };
        let (first, exhausted) = merge_newest(logs(), None, 10, 3);
        let seen: Vec<(&str, f64)> = first.iter().map(|c| (c.endpoint_id.as_str(), c.at.order)).collect();
        // Ties in ingest order (one event to two endpoints) go by delivery id, descending.
        assert_eq!(seen, vec![("ep_bbbb", 5.0), ("ep_aaaa", 5.0), ("ep_bbbb", 4.0)]);
        assert!(!exhausted);
        let (rest, exhausted) = merge_newest(logs(), Some(&first[2].at), 10, 10);
        let orders: Vec<f64> = rest.iter().map(|c| c.at.order).collect();
        assert_eq!(orders, vec![3.0, 2.0, 1.0]);
        assert!(exhausted);
        // Paging from between the two tied deliveries of one event finds the second one.
        let (after_tie, _) = merge_newest(logs(), Some(&first[0].at), 10, 1);
        assert_eq!(after_tie[0], first[1]);
    }

    #[test]
    fn only_candidates_above_a_full_logs_last_entry_are_certain() {
        // Log a returned all 2 it was asked: it may hold an entry at 8.5, newer than b's 8.
        let logs = vec![
            log("ep_aaaa", &[("evt_a10", 10.0), ("evt_a9", 9.0)]),
            log("ep_bbbb", &[("evt_b8", 8.0)]),
        ];
        let (got, exhausted) = merge_newest(logs, None, 2, 10);
        let orders: Vec<f64> = got.iter().map(|c| c.at.order).collect();
        assert_eq!(orders, vec![10.0, 9.0]);
        assert!(!exhausted);
        // The next round, from 9, finds the 8.5 before b's 8.
        let logs = vec![
            log("ep_aaaa", &[("evt_a9", 9.0), ("evt_a85", 8.5)]),
            log("ep_bbbb", &[("evt_b8", 8.0)]),
        ];
        let (got, _) = merge_newest(logs, Some(&got[1].at), 2, 10);
        assert_eq!(got.iter().map(|c| c.at.order).collect::<Vec<_>>(), vec![8.5]);
    }

    #[test]
    fn a_full_log_page_means_there_may_be_more() {
        let (got, exhausted) = merge_newest(vec![log("ep_aaaa", &[("evt_2", 2.0), ("evt_1", 1.0)])], None, 2, 5);
        assert_eq!(got.len(), 2);
        assert!(!exhausted, "the log returned as many as asked: it may hold more");
    }

    #[test]
    fn cursors_of_the_documented_form_are_read() {
        use proptest::strategy::{Strategy, ValueTree};
        let pattern = super::super::schema::DELIVERY_CURSOR;
        let inner = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')).unwrap();
        let strategy = proptest::string::string_regex(inner).unwrap();
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        for _ in 0..500 {
            let cursor = strategy.new_tree(&mut runner).unwrap().current();
            assert!(Position::decode(&cursor).is_some(), "{cursor} matches {pattern}");
        }
        let written = Position {
            order: 1763870000000.0 + 7.0 / 4096.0,
            delivery_id: crate::ids::delivery_id(&crate::ids::new_endpoint_id(), &crate::ids::new_event_id(1)),
        };
        assert!(regex::Regex::new(pattern).unwrap().is_match(&written.encode()));
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let p = Position {
            order: 1763870000000.0 + 7.0 / 4096.0,
            delivery_id: crate::ids::delivery_id(&crate::ids::new_endpoint_id(), &crate::ids::new_event_id(1)),
        };
        assert_eq!(Position::decode(&p.encode()), Some(p));
        for bad in ["", "12", "x~dlv_1", "NaN~dlv_a", "1~evt_1", "inf~dlv_"] {
            assert_eq!(Position::decode(bad), None, "{bad}");
        }
    }
}
