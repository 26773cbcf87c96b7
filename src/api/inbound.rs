//! `POST /in/{source_id}`: the inbound gateway's public door. No bearer token: the source's own
//! verification decides. In order: the source (404), the caller's address (403), the source's
//! rate (429), the body's size (413), verification on the raw bytes (401), then the event is
//! stored with the provider's id as its dedup key, and only then answered 200. Every refusal of
//! a known source is logged in its rejections (a burst of 429s: its first only).

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Path;
use super::AppState;
use crate::event::{NewEvent, ProviderDedup};
use crate::inbound::net::any_contains;
use crate::inbound::received::receive;
use crate::inbound::source::Source;
use crate::inbound::verify::RawRequest;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::{Instant, SystemTime};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_request))
}

#[derive(Debug, Deserialize)]
pub struct InboundPath {
    pub source_id: String,
}

impl IntoParams for InboundPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![super::schema::path_param(
            "source_id",
            "The source's id, `src_…` (404 if unknown or deleted).",
            super::schema::source_id(),
        )]
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// `success` (stored now) or `duplicate` (the provider's id was accepted within the
    /// source's `dedup_window_s`: nothing new stored or delivered).
    #[schema(pattern = "^(success|duplicate)$")]
    status: &'static str,
    /// The event's id (for a duplicate, the first one's).
    id: String,
}

/// A refusal, counted and (for a known source, unless `quiet`) logged.
struct Refusal {
    error: ApiError,
    reason: &'static str,
    quiet: bool,
}

impl Refusal {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            error: ApiError::new(status, reason, message),
            reason,
            quiet: false,
        }
    }
}

/// Receive a provider's webhook. Any content type; the body is verified byte for byte, then
/// stored as an event of the source's tenant (JSON as is, anything else as
/// `{"raw": <base64>, "content_type"}`) and delivered to the endpoints subscribed to its type.
#[utoipa::path(
    post,
    path = "/in/{source_id}",
    operation_id = "receive_inbound",
    tag = "inbound",
    params(InboundPath),
    request_body(content = serde_json::Value, content_type = "*/*", description = "whatever the provider sends, \
        any content type (JSON is stored as it is, anything else as base64)"),
    responses(
        (status = 200, description = "stored (`success`), or already stored (`duplicate`)", body = Received),
        (status = 400, description = "the body could not be read", body = ErrorBody),
        (status = 401, description = "a missing, malformed or wrong signature or credential, or a signed timestamp \
            outside `tolerance_s` (the code is the reason)", body = ErrorBody),
        (status = 403, description = "the caller's address is not in `allowed_ips`", body = ErrorBody),
        (status = 404, description = "no such source (or deleted)", body = ErrorBody),
        (status = 413, description = "the body is larger than `ingest.max_payload_bytes`", body = ErrorBody),
        (status = 429, description = "over the source's `rate_limit_per_s` (or the tenant's ingest limit); nothing \
            stored (Retry-After)", body = ErrorBody),
        (status = 503, description = "the event could not be stored; the provider should retry", body = ErrorBody),
    )
)]
async fn receive_request(
    State(state): State<AppState>,
    Path(InboundPath { source_id }): Path<InboundPath>,
    req: Request,
) -> ApiResult<axum::Json<Received>> {
    let started = Instant::now();
    let source = match find(&state, &source_id).await {
        Ok(source) => source,
        Err(e) => {
            let outcome = if e.status == StatusCode::NOT_FOUND {
                "rejected_unknown_source"
            } else {
                "unavailable"
            };
            count(started, "unknown", outcome);
            return Err(e);
        }
    };
    let (parts, body) = req.into_parts();
    let ip = super::auth::caller_address(&parts, &state);
    let req = Request::from_parts(parts, body);
    let kind = source.kind.name();
    match accept(&state, &source, ip, req).await {
        Ok((received, duplicate)) => {
            count(started, kind, if duplicate { "duplicate" } else { "accepted" });
            Ok(axum::Json(received))
        }
        Err(refusal) => {
            let status = refusal.error.status;
            if status == StatusCode::SERVICE_UNAVAILABLE {
                count(started, kind, "unavailable");
                return Err(refusal.error);
            }
            count(started, kind, &format!("rejected_{}", refusal.reason));
            if !refusal.quiet {
                log_rejection(&state, &source, ip, &refusal).await;
            }
            Err(refusal.error)
        }
    }
}

async fn find(state: &AppState, source_id: &str) -> ApiResult<Source> {
    if !crate::ids::is_source_id(source_id) {
        return Err(ApiError::not_found("source"));
    }
    state
        .store
        .get_source(source_id)
        .await?
        .ok_or_else(|| ApiError::not_found("source"))
}

/// Everything after the source is known; `Ok((answer, duplicate))`.
async fn accept(state: &AppState, source: &Source, ip: IpAddr, req: Request) -> Result<(Received, bool), Refusal> {
    if !source.allowed_ips.is_empty() && !any_contains(&source.allowed_ranges(), ip) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "ip_not_allowed",
            format!("{ip} is not in this source's allowed_ips"),
        ));
    }
    let now_ms = hookline_actors::now_ms();
    if let Some(limit) = source.rate_limit_per_s {
        let used = state
            .store
            .count_source_request(source, now_ms)
            .await
            .map_err(unavailable)?;
        if used > u64::from(limit) {
            let mut refusal = Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("this source takes {limit} requests per second; nothing was stored, retry after 1 s"),
            );
            refusal.error.retry_after_s = Some(1);
            // Log the first refusal of a second only: a flood must not become a flood of writes.
            refusal.quiet = used != u64::from(limit) + 1;
            return Err(refusal);
        }
    }
    let headers = req.headers().clone();
    let max = state.config.ingest.max_payload_bytes;
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {max} bytes (ingest.max_payload_bytes)"),
        )
    };
    // Read up to the API's body limit (a little over `max`), then hold the source to `max`.
    let body = axum::body::Bytes::from_request(req, &()).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else if e.body_text().contains(super::error::BODY_TIMEOUT) {
            // The answer becomes the server's 408; the log says the same.
            Refusal::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", e.body_text())
        } else {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("the body could not be read: {e}"),
            )
        }
    })?;
    if body.len() > max {
        return Err(too_large());
    }
    let raw = RawRequest {
        headers: &headers,
        body: &body,
    };
    source
        .verifier(now_ms)
        .verify(&raw, SystemTime::now())
        .map_err(|r| Refusal::new(StatusCode::UNAUTHORIZED, r.reason(), r.message()))?;
    let received = receive(source, &headers, &body);
    let event = NewEvent::received(
        &source.tenant,
        &received.event_type,
        &received.payload,
        now_ms,
        &received.source,
    )
    .with_provider_dedup(ProviderDedup {
        source_id: source.id.clone(),
        provider_id: received.provider_id,
        window_s: source.dedup_window_s,
    });
    let stored = state.store.ingest(&event).await.map_err(unavailable)?;
    if stored.rate_limited {
        // The tenant's own limit: counted, not logged (a refusal per request, when Redis is
        // busiest, would be a write per request).
        let error = super::events::rate_limited(state);
        return Err(Refusal {
            reason: "rate_limited",
            error,
            quiet: true,
        });
    }
    let status = if stored.duplicate { "duplicate" } else { "success" };
    tracing::debug!(source = %source.id, event_id = %stored.event_id, status, "inbound request accepted");
    Ok((
        Received {
            status,
            id: stored.event_id,
        },
        stored.duplicate,
    ))
}

fn unavailable(e: crate::store::Error) -> Refusal {
    Refusal {
        error: e.into(),
        reason: "unavailable",
        quiet: true,
    }
}

async fn log_rejection(state: &AppState, source: &Source, ip: IpAddr, refusal: &Refusal) {
    let entry = serde_json::json!({
        "time": super::rfc3339(hookline_actors::now_ms()),
        "ip": ip.to_string(),
        "status": refusal.error.status.as_u16(),
        "reason": refusal.reason,
        "message": refusal.error.message,
    });
    // Best effort: the refusal stands whether or not it could be logged.
    if let Err(e) = state.store.record_rejection(&source.id, &entry).await {
        tracing::warn!(source = %source.id, error = %e, "could not log an inbound rejection");
    }
    let rules = &state.config.notifications;
    let now = hookline_actors::now_ms();
    let noted = state
        .store
        .note_rejection(
            &source.id,
            now,
            rules.source_rejections_per_minute,
            rules.source_rejection_interval_s,
        )
        .await;
    match noted {
        Ok(Some(count)) => {
            let data = serde_json::json!({
                "source_id": source.id,
                "kind": source.kind.name(),
                "rejections_this_minute": count,
                "last": entry,
            });
            let key = format!("{SOURCE_REJECTIONS_EVENT}:{}:{now}", source.id);
            if let Err(e) = state
                .store
                .emit_event(&source.tenant, SOURCE_REJECTIONS_EVENT, data, Some(&key))
                .await
            {
                tracing::warn!(source = %source.id, error = %e, "could not emit a source-rejections notice");
                state.store.reopen_rejection_gate(&source.id).await.ok();
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(source = %source.id, error = %e, "could not count an inbound rejection"),
    }
}

/// What a source's tenant hears when it refuses a burst of requests (issue 22).
pub const SOURCE_REJECTIONS_EVENT: &str = "hookline.source.rejections";

fn count(started: Instant, kind: &'static str, outcome: &str) {
    use crate::telemetry::names::{INBOUND_LATENCY, INBOUND_REQUESTS};
    metrics::counter!(INBOUND_REQUESTS, "kind" => kind, "outcome" => outcome.to_string()).increment(1);
    metrics::histogram!(INBOUND_LATENCY).record(started.elapsed().as_secs_f64());
}
