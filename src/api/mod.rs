//! The HTTP API (API.md), one file per resource, each exposing `router()`.

pub mod auth;
mod deliveries;
mod endpoints;
pub mod error;
mod events;
mod extract;
mod keys;
mod ops;

use crate::config::Config;
use crate::store::RedisStore;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use error::ApiError;
use hookline_actors::matching::SubscriptionIndex;
use hookline_actors::Node;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<RedisStore>,
    pub node: Node,
    pub index: Arc<SubscriptionIndex>,
    pub admin_digests: Arc<Vec<[u8; 32]>>,
    pub metrics: PrometheusHandle,
    /// Cleared when shutdown begins (readiness goes 503 first).
    pub accepting: Arc<AtomicBool>,
}

pub fn app(state: AppState) -> Router {
    // The request body may hold the payload plus the envelope fields around it.
    let body_limit = state.config.ingest.max_payload_bytes + 16 * 1024;
    Router::new()
        .merge(events::router(state.config.ingest.max_batch_bytes))
        .merge(endpoints::router())
        .merge(deliveries::router())
        .merge(keys::router())
        .merge(ops::router())
        .fallback(|req: Request| async move {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route for {} {}", req.method(), req.uri().path()),
            )
        })
        .method_not_allowed_fallback(|req: Request| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} is not allowed on {}", req.method(), req.uri().path()),
            )
        })
        .layer(axum::middleware::from_fn(count_requests))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Requests by route template (never the raw path: its values are unbounded) and status class.
async fn count_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let class = format!("{}xx", response.status().as_u16() / 100);
    metrics::counter!(crate::telemetry::names::HTTP_REQUESTS, "route" => route, "method" => method, "status" => class)
        .increment(1);
    response
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// `?limit=`: default 50, at most 500.
pub fn page_limit(limit: Option<String>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(50),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid("limit: a whole number from 1 to 500")),
        },
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}
