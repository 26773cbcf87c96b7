//! `GET /v1/cluster` (admin token only): the nodes sharing this Redis, which node holds each
//! shard's lease, how far the router is behind the stream, and the backlog by tenant: what the
//! console's node view shows.

use super::auth::Caller;
use super::error::{ApiResult, ErrorBody};
use super::{rfc3339, AppState};
use axum::extract::State;
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cluster))
}

/// Tenants listed in `backlog` at most (those with the most queued).
pub const BACKLOG_TENANTS: usize = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    /// The live nodes: each heartbeats with every lease cycle, and one silent for a lease's
    /// expiry drops out at the next heartbeat of another.
    nodes: Vec<NodeView>,
    /// Every shard, in order, with the node holding its lease (`null`: none does right now).
    shards: Vec<ShardView>,
    /// Age of the oldest event the router has not finished with (0: none waits).
    router_lag_ms: u64,
    /// Deliveries queued by tenant, the most first (at most 100 tenants; those with none queued
    /// are left out).
    backlog: Vec<TenantBacklog>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    id: String,
    /// Its last heartbeat (RFC 3339).
    last_seen_at: String,
    /// The shards whose lease it holds.
    shards: Vec<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShardView {
    shard: u32,
    node: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantBacklog {
    tenant: String,
    /// Deliveries queued for its endpoints (due now or waiting for a retry).
    queued: u64,
    /// Its endpoints with something queued.
    endpoints: u32,
}

/// The nodes, the shard leases, the router's lag and the backlog by tenant (admin token only).
#[utoipa::path(
    get,
    path = "/v1/cluster",
    operation_id = "get_cluster",
    tag = "operations",
    responses(
        (status = 200, description = "the cluster as Redis has it now", body = ClusterView),
        (status = 403, description = "the token is a tenant key: only an admin token sees the cluster", body = ErrorBody),
    )
)]
async fn cluster(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<ClusterView>> {
    caller.require_admin()?;
    let endpoints = state.index.endpoints_in(|_| true);
    let which: Vec<(u32, &str)> = endpoints.iter().map(|e| (e.shard, e.endpoint_id.as_str())).collect();
    let (nodes, holders, router_lag_ms, lengths) = tokio::try_join!(
        state.store.live_nodes(),
        state.store.lease_holders(state.config.shards.count),
        state.store.router_lag_ms(hookline_actors::now_ms()),
        state.store.queue_lengths(&which),
    )?;
    let mut by_tenant: HashMap<&str, (u64, u32)> = HashMap::new();
    for (endpoint, queued) in endpoints.iter().zip(lengths) {
        if queued > 0 {
            let entry = by_tenant.entry(endpoint.tenant.as_str()).or_default();
            entry.0 += queued;
            entry.1 += 1;
        }
    }
    let mut backlog: Vec<TenantBacklog> = by_tenant
        .into_iter()
        .map(|(tenant, (queued, endpoints))| TenantBacklog {
            tenant: tenant.to_string(),
            queued,
            endpoints,
        })
        .collect();
    backlog.sort_by(|a, b| b.queued.cmp(&a.queued).then_with(|| a.tenant.cmp(&b.tenant)));
    backlog.truncate(BACKLOG_TENANTS);
    let shards: Vec<ShardView> = holders
        .into_iter()
        .enumerate()
        .map(|(shard, node)| ShardView {
            shard: shard as u32,
            node,
        })
        .collect();
    let nodes = nodes
        .into_iter()
        .map(|(id, seen_ms)| NodeView {
            shards: shards
                .iter()
                .filter(|s| s.node.as_deref() == Some(id.as_str()))
                .map(|s| s.shard)
                .collect(),
            id,
            last_seen_at: rfc3339(seen_ms),
        })
        .collect();
    Ok(axum::Json(ClusterView {
        nodes,
        shards,
        router_lag_ms,
        backlog,
    }))
}
