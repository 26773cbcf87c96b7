//! `/healthz`, `/readyz`, `/metrics`.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// 200 only while Redis answers, the node takes part in the lease cycle, and it is not
/// shutting down: a load balancer stops sending to it otherwise.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let redis = tokio::time::timeout(Duration::from_secs(1), state.store.ping())
        .await
        .unwrap_or(false);
    let leases = state.node.is_ready();
    let accepting = state.accepting.load(Ordering::Relaxed);
    let ready = redis && leases && accepting;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({"ready": ready, "redis": redis, "leases": leases, "accepting": accepting});
    if ready {
        (status, axum::Json(body)).into_response()
    } else {
        let error = serde_json::json!({"error": {"code": "not_ready", "message": format!("not ready: {body}")}});
        (status, [(axum::http::header::RETRY_AFTER, "1")], axum::Json(error)).into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
