//! `GET /v1/tenants/{tenant}/endpoints/{id}/stats` and `GET /v1/tenants/{tenant}/stats`:
//! attempts by outcome and latency percentiles in minute or hour buckets, as the console's
//! charts draw them (`store::stats` keeps them).

use super::auth::{Caller, Scope};
use super::endpoints::load;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::{rfc3339, AppState, EndpointPath, TenantPath};
use crate::store::stats::{quantile, Bucket, Outcome};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(endpoint_stats))
        .routes(routes!(tenant_stats))
}

/// Most buckets one answer holds.
pub const MAX_BUCKETS: u64 = 200;

/// `?from=&to=&step=`. Unknown parameters are refused (400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
}

impl IntoParams for StatsQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        use super::schema::{query_param, stats_step, time_bound};
        vec![
            query_param(
                "from",
                "The first bucket is the one holding this time (RFC 3339, UTC); default: an hour before `to` \
                 (step 60) or a day (step 3600).",
                time_bound(),
            ),
            query_param(
                "to",
                "Buckets that start before this time (RFC 3339, UTC); default: now.",
                time_bound(),
            ),
            query_param(
                "step",
                "Bucket width in seconds: 60 or 3600 (default 60).",
                stats_step(),
            ),
        ]
    }
}

/// What a stats query covers, in seconds since 1970.
struct Range {
    step: u64,
    from_s: u64,
    to_s: u64,
}

impl StatsQuery {
    fn parse(self) -> ApiResult<Range> {
        let step = match self.step.as_deref() {
            None | Some("60") => 60,
            Some("3600") => 3_600,
            Some(_) => return Err(ApiError::invalid("step: 60 or 3600")),
        };
        let to_ms = match self.to.as_deref() {
            Some(t) => super::parse_time("to", t)?,
            None => hookline_actors::now_ms() + 1,
        };
        let default_span_ms = if step == 60 { 3_600_000 } else { 86_400_000 };
        let from_ms = match self.from.as_deref() {
            Some(f) => super::parse_time("from", f)?,
            None => to_ms.saturating_sub(default_span_ms),
        };
        if from_ms >= to_ms {
            return Ok(Range {
                step,
                from_s: 0,
                to_s: 0,
            });
        }
        let (from_s, to_s) = (from_ms / 1000, to_ms.div_ceil(1000));
        // At most the newest MAX_BUCKETS buckets of the range.
        let last_start = to_s.saturating_sub(1) / step * step;
        let from_s = from_s.max(last_start.saturating_sub((MAX_BUCKETS - 1) * step));
        Ok(Range { step, from_s, to_s })
    }
}

/// Latency percentiles of a bucket's attempts, in ms: the upper edge of the histogram bucket
/// that holds them (edges 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100 … 300000); null when
/// the bucket has no attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Latency {
    p50: Option<u64>,
    p99: Option<u64>,
}

/// One bucket: its attempts by outcome (each attempt counts once).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsBucket {
    start: String,
    /// Delivered (2xx).
    success: u64,
    /// Failed, with a retry scheduled.
    retry: u64,
    /// Failed for good by the answer itself (a 4xx, a 410, a redirect, a blocked address).
    failed: u64,
    /// Dead because time ran out (retries exhausted, the event expired).
    dead: u64,
    latency_ms: Latency,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// Seconds per bucket.
    step: u64,
    /// Oldest first, every bucket of the range (empty ones with zeros), at most the newest
    /// 200; none when `from` is not before `to`.
    buckets: Vec<StatsBucket>,
}

fn answer(step: u64, buckets: Vec<Bucket>) -> axum::Json<Stats> {
    let buckets = buckets
        .into_iter()
        .map(|b| StatsBucket {
            start: rfc3339(b.start_s * 1000),
            success: b.count(Outcome::Success),
            retry: b.count(Outcome::Retry),
            failed: b.count(Outcome::Failed),
            dead: b.count(Outcome::Dead),
            latency_ms: Latency {
                p50: quantile(&b.latency, 0.5),
                p99: quantile(&b.latency, 0.99),
            },
        })
        .collect();
    axum::Json(Stats { step, buckets })
}

/// The endpoint's attempts per bucket. Minute buckets are kept 3 hours, hour buckets 8 days.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints/{id}/stats",
    operation_id = "get_endpoint_stats",
    tag = "endpoints",
    params(EndpointPath, StatsQuery),
    responses(
        (status = 200, description = "the endpoint's buckets", body = Stats),
        (status = 400, description = "a malformed time, a `step` other than 60 or 3600, an unknown query \
            parameter, or a malformed tenant", body = ErrorBody),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
    )
)]
async fn endpoint_stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(EndpointPath { tenant, id }): Path<EndpointPath>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<axum::Json<Stats>> {
    caller.authorize(&tenant, Scope::DeliveriesRead)?;
    let range = q.parse()?;
    let cfg = load(&state, &tenant, &id).await?;
    let buckets = state
        .store
        .endpoint_stats(&cfg.id, range.step, range.from_s, range.to_s)
        .await?;
    Ok(answer(range.step, buckets))
}

/// The tenant's attempts per bucket: every endpoint's, added together.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/stats",
    operation_id = "get_tenant_stats",
    tag = "endpoints",
    params(TenantPath, StatsQuery),
    responses(
        (status = 200, description = "the tenant's buckets", body = Stats),
        (status = 400, description = "a malformed time, a `step` other than 60 or 3600, an unknown query \
            parameter, or a malformed tenant", body = ErrorBody),
    )
)]
async fn tenant_stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<axum::Json<Stats>> {
    caller.authorize(&tenant, Scope::DeliveriesRead)?;
    let range = q.parse()?;
    let buckets = state
        .store
        .tenant_stats(&tenant, range.step, range.from_s, range.to_s)
        .await?;
    Ok(answer(range.step, buckets))
}
