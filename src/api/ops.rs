//! `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.

use super::error::ErrorBody;
use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// Redis answered a PING within 1 s.
    pub redis: bool,
    /// The node has joined the shard lease cycle.
    pub leases: bool,
    /// False once shutdown has begun.
    pub accepting: bool,
}

/// Liveness: 200 while the process serves.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "the process serves", body = Health))
)]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into() })
}

/// 200 only while Redis answers, the node takes part in the lease cycle, and it is not
/// shutting down: a load balancer stops sending to it otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "taking work", body = Readiness),
        (status = 503, description = "not ready (`not_ready`, the message says why); Retry-After: 1", body = ErrorBody),
    )
)]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let redis = tokio::time::timeout(Duration::from_secs(1), state.store.ping())
        .await
        .unwrap_or(false);
    let leases = state.node.is_ready();
    let accepting = state.accepting.load(Ordering::Relaxed);
    let ready = redis && leases && accepting;
    let body = Readiness {
        ready,
        redis,
        leases,
        accepting,
    };
    if ready {
        (StatusCode::OK, axum::Json(body)).into_response()
    } else {
        let reason = serde_json::to_string(&body).unwrap_or_default();
        let mut error = super::error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("not ready: {reason}"),
        );
        error.retry_after_s = Some(1);
        error.into_response()
    }
}

/// Prometheus text format; every name starts with `hookline_`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus exposition format", content_type = "text/plain", body = String))
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// This document: the OpenAPI 3 description of every route.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        state.openapi.to_string(),
    )
}
