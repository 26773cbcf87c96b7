//! The HTTP API (API.md), one file per resource, each exposing `router()`: an
//! `OpenApiRouter` whose routes are the `#[utoipa::path]`-annotated handlers themselves, so
//! the OpenAPI document served at `/openapi.json` is generated from the same code that routes.

mod audit;
pub mod auth;
mod cluster;
mod console;
mod console_delivery;
mod console_edit;
mod console_endpoint;
mod console_log;
mod console_nodes;
mod console_notifications;
mod console_portal;
mod console_sources;
mod console_tenant;
mod console_viewer;
mod dead_letters;
mod deliveries;
mod delivery_order;
mod endpoint_actions;
mod endpoint_auth;
mod endpoint_email;
mod endpoint_filter;
mod endpoint_list;
mod endpoint_rules;
mod endpoint_transform;
mod endpoints;
pub mod error;
mod event_search;
mod event_trace;
mod event_types;
mod events;
mod extract;
mod inbound;
mod keys;
mod ops;
mod portal;
mod schema;
mod source_schema;
mod sources;
mod stats;

use crate::config::Config;
use crate::store::RedisStore;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use error::{ApiError, ApiResult};
use hookline_actors::matching::SubscriptionIndex;
use hookline_actors::Node;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, OpenApi};
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
    /// Tenant keys as this node last read them (at most `auth::KEY_CACHE_TTL` ago).
    pub keys: Arc<auth::KeyCache>,
    /// `server.trusted_proxies`, parsed.
    pub trusted_proxies: Arc<Vec<crate::inbound::net::Cidr>>,
    /// Each tenant's event types and validation setting as this node last read them.
    pub catalogue: Arc<crate::catalogue::Catalogue>,
    /// Runs endpoints' transforms for checks on save and `…/transform/test`.
    pub transforms: Arc<crate::transform::Transforms>,
}

impl AppState {
    /// The tenant's catalogue as this node holds it (read from Redis the first time, and
    /// again after a change).
    pub async fn catalogue_of(&self, tenant: &str) -> ApiResult<Arc<crate::catalogue::TenantCatalogue>> {
        if let Some(held) = self.catalogue.cached(tenant) {
            return Ok(held);
        }
        let _one_at_a_time = self.catalogue.loading().await;
        if let Some(held) = self.catalogue.cached(tenant) {
            return Ok(held);
        }
        let generation = self.catalogue.generation();
        let (settings, types, version) = self.store.load_catalogue(tenant).await?;
        let read = crate::catalogue::TenantCatalogue::new(settings, types, version);
        Ok(self.catalogue.keep(tenant, generation, read))
    }
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
        (name = "keys", description = "Tenant API keys: mint, list, revoke (admin)"),
        (name = "audit", description = "The audit log: every change, who made it, from where"),
        (name = "portal", description = "Portal sessions: links and tokens that give one tenant its portal"),
        (name = "sources", description = "Inbound gateway: sources that receive providers' webhooks"),
        (name = "inbound", description = "Inbound gateway: the public door providers post to (no bearer token)"),
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
        .merge(endpoint_filter::router())
        .merge(endpoint_transform::router())
        .merge(event_types::router())
        .merge(dead_letters::router())
        .merge(deliveries::router())
        .merge(keys::router())
        .merge(audit::router())
        .merge(portal::router())
        .merge(stats::router())
        .merge(sources::router())
        .merge(inbound::router())
        .merge(cluster::router())
        .merge(ops::router())
}

/// The OpenAPI 3 document of every route (what `GET /openapi.json` serves).
pub fn openapi(max_batch_bytes: usize) -> utoipa::openapi::OpenApi {
    let (_, doc) = routes(max_batch_bytes).split_for_parts();
    complete(doc)
}

/// What every `/v1/` route shares, added once here rather than on each handler: bearer auth,
/// and the answers any of them can give — 400 for a malformed tenant (or another parameter), 401,
/// 403, 500 when stored data cannot be read, 503 when Redis is unavailable. Every route may
/// answer 408 (a stalled body) and 503 (no answer in time). Every 429 and 503 carries
/// `Retry-After`.
fn complete(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
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
    let retry_after = HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
        .description(Some("seconds to wait before retrying"))
        .build();
    for (path, item) in doc.paths.paths.iter_mut() {
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
            let responses = &mut op.responses.responses;
            if path.starts_with("/v1/") {
                // The scope a tenant key needs (none listed: an admin token only).
                let scope = op.operation_id.as_deref().and_then(auth::operation_scope);
                let scopes: Vec<String> = scope.iter().map(|s| s.name().to_string()).collect();
                op.security = Some(vec![SecurityRequirement::new("bearer", scopes)]);
                for (status, text) in [
                    ("400", "a malformed tenant (the message names what is wrong)"),
                    ("401", "missing, unknown, revoked or expired bearer token"),
                    (
                        "403",
                        "the token may not act on this tenant, lacks the scope the operation lists \
                         (`missing_scope`), or is used from an address its key does not allow",
                    ),
                    ("500", "stored data could not be read (`internal_error`)"),
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
            // Any route: the server's own timeouts (`src/server.rs`).
            responses.entry("408".to_string()).or_insert_with(|| {
                error("the request body did not arrive within `server.body_read_timeout_s` (`body_timeout`)").into()
            });
            responses
                .entry("503".to_string())
                .or_insert_with(|| error("no answer within `server.request_timeout_s` (`request_timeout`)").into());
            let request_id = HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some("^req_[0-9a-z]{20}$")),
                )
                .description(Some("this request's id, also in the node's log lines about it"))
                .build();
            for response in responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .entry("Hookline-Request-Id".into())
                        .or_insert_with(|| request_id.clone());
                }
            }
            for status in ["429", "503"] {
                if let Some(RefOr::T(response)) = responses.get_mut(status) {
                    response
                        .headers
                        .entry("Retry-After".into())
                        .or_insert_with(|| retry_after.clone());
                }
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
    // The API as the console's pages call it, in-process.
    let api = router.clone().with_state(state.clone());
    router
        .merge(console::router(state.clone(), api))
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

/// The header naming each request, on every answer and in the log lines it causes.
pub const REQUEST_ID: &str = "hookline-request-id";

/// A request's id, for handlers that record it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Every request gets an id (`Hookline-Request-Id` on the answer, `request_id` in its log
/// lines), and is counted by route template (never the raw path: its values are unbounded)
/// and status class.
async fn count_requests(mut req: Request, next: Next) -> Response {
    use tracing::Instrument;
    // Named already by the server (`server::bounded`), which also answers its own timeouts.
    let id = match req.extensions().get::<RequestId>() {
        Some(id) => id.0.clone(),
        None => {
            let id = crate::ids::new_request_id();
            req.extensions_mut().insert(RequestId(id.clone()));
            id
        }
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    // `trace_id` is recorded by a handler that starts a trace (ingest, with tracing on).
    let span = tracing::info_span!("request", request_id = %id, trace_id = tracing::field::Empty);
    let mut response = next.run(req).instrument(span).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let class = format!("{}xx", response.status().as_u16() / 100);
    metrics::counter!(crate::telemetry::names::HTTP_REQUESTS, "route" => route, "method" => method, "status" => class)
        .increment(1);
    response
}

/// `?limit=&cursor=` of the lists paged by offset. Unknown parameters are refused (400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl IntoParams for ListQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            schema::query_param("limit", "Page size: 1 to 500, default 50.", schema::limit()),
            schema::query_param(
                "cursor",
                "`next_cursor` of the previous page (absent or empty: the first page).",
                schema::offset_cursor(),
            ),
        ]
    }
}

// Path parameters: the handlers extract these structs, and the document describes them, once
// per route (with the patterns of `schema`, which are tested against the checks).

pub(crate) const TENANT_DOC: &str = "The tenant's name, chosen by the caller (400 if malformed).";

#[derive(Debug, Deserialize)]
pub struct TenantPath {
    pub tenant: String,
}

impl IntoParams for TenantPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![schema::path_param("tenant", TENANT_DOC, schema::tenant())]
    }
}

#[derive(Debug, Deserialize)]
pub struct EndpointPath {
    pub tenant: String,
    pub id: String,
}

impl IntoParams for EndpointPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            schema::path_param("tenant", TENANT_DOC, schema::tenant()),
            schema::path_param(
                "id",
                "Endpoint id, `ep_…` (404 if malformed or not of this tenant).",
                schema::endpoint_id(),
            ),
        ]
    }
}

#[derive(Debug, Deserialize)]
pub struct EventPath {
    pub tenant: String,
    pub id: String,
}

impl IntoParams for EventPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            schema::path_param("tenant", TENANT_DOC, schema::tenant()),
            schema::path_param(
                "id",
                "Event id, `evt_…` (404 if malformed, not of this tenant or past retention).",
                schema::event_id(),
            ),
        ]
    }
}

#[derive(Debug, Deserialize)]
pub struct DeliveryPath {
    pub tenant: String,
    pub id: String,
}

impl IntoParams for DeliveryPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            schema::path_param("tenant", TENANT_DOC, schema::tenant()),
            schema::path_param(
                "id",
                "Delivery id, `dlv_…` (404 if malformed or not of this tenant).",
                schema::delivery_id(),
            ),
        ]
    }
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

/// A time parameter (`since`, `expires_at`, `from`, `to`): RFC 3339 in UTC, as ms since 1970.
pub fn parse_time(field: &str, text: &str) -> Result<u64, ApiError> {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .ok_or_else(|| ApiError::invalid(format!("{field}: an RFC 3339 time in UTC, like 2026-01-31T12:00:00Z")))
}

/// RFC 3339 with milliseconds, UTC.
pub use crate::event::rfc3339;
