//! The HTTP API (API.md), one file per resource, each exposing `router()`: an
//! `OpenApiRouter` whose routes are the `#[utoipa::path]`-annotated handlers themselves, so
//! the OpenAPI document served at `/openapi.json` is generated from the same code that routes.

pub mod auth;
mod dead_letters;
mod deliveries;
mod endpoint_actions;
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
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

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
    /// The OpenAPI document, as served (filled in by [`app`]).
    pub openapi: Arc<str>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Hookline",
        description = "A durable webhook delivery node. Producers post events; the node stores each \
                       one in Redis before answering and delivers it, signed (Standard Webhooks), to \
                       every subscribed endpoint with retries, rate limits, circuit breakers, dead \
                       letters and replay. Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    tags(
        (name = "events", description = "Ingest and look up events"),
        (name = "endpoints", description = "Receivers of a tenant, their secrets, dead letters"),
        (name = "deliveries", description = "The delivery log and replay"),
        (name = "keys", description = "Tenant API keys (admin)"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    ),
    components(schemas(error::ErrorBody))
)]
struct ApiDoc;

/// Every route with its OpenAPI description.
fn routes(max_batch_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(events::router(max_batch_bytes))
        .merge(endpoints::router())
        .merge(endpoint_actions::router())
        .merge(dead_letters::router())
        .merge(deliveries::router())
        .merge(keys::router())
        .merge(ops::router())
}

/// The OpenAPI 3 document of every route (what `GET /openapi.json` serves).
pub fn openapi(max_batch_bytes: usize) -> utoipa::openapi::OpenApi {
    let (_, doc) = routes(max_batch_bytes).split_for_parts();
    complete(doc)
}

/// What every `/v1/` route shares, added once here rather than on each handler: bearer auth,
/// and the 401, 403 and 503 answers.
fn complete(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
            &mut item.put,
        ]
        .into_iter()
        .flatten()
        {
            op.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
            let responses = &mut op.responses.responses;
            for (status, text) in [
                ("401", "missing or unknown bearer token"),
                ("403", "the token may not act on this tenant"),
                (
                    "503",
                    "Redis is unavailable (retry; with an idempotency key a retry is always safe)",
                ),
            ] {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| error(text).into());
            }
        }
    }
    doc
}

pub fn app(state: AppState) -> Router {
    // The request body may hold the payload plus the envelope fields around it.
    let body_limit = state.config.ingest.max_payload_bytes + 16 * 1024;
    let (router, doc) = routes(state.config.ingest.max_batch_bytes).split_for_parts();
    let mut state = state;
    state.openapi = complete(doc).to_json().expect("the OpenAPI document serialises").into();
    router
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 500, default 50.
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

// Path parameters, for the OpenAPI document (`params(EndpointPath)` and the like): one
// description per parameter instead of one per route. The handlers extract them as tuples.
#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// tenant name
    tenant: String,
}

#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EndpointPath {
    /// tenant name
    tenant: String,
    /// endpoint id (`ep_…`)
    id: String,
}

#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EventPath {
    /// tenant name
    tenant: String,
    /// event id (`evt_…`)
    id: String,
}

#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeliveryPath {
    /// tenant name
    tenant: String,
    /// delivery id (`dlv_…`)
    id: String,
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

/// `?cursor=` of the lists paged by offset (endpoints, dead letters): an offset this API returned.
pub fn offset_cursor(cursor: Option<&str>) -> Result<usize, ApiError> {
    match cursor {
        None | Some("") => Ok(0),
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|offset| *offset <= 100_000_000)
            .ok_or_else(|| ApiError::invalid("cursor: not a cursor this API returned")),
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}
