//! Ingest's part of an event's trace (`crate::traces`): the producer's `traceparent`, one
//! `ingest` span per event, and the context each sampled event stores.

use crate::event::NewEvent;
use crate::store::{Ingested, Result as StoreResult};
use crate::traces::IngestSpan;
use axum::http::HeaderMap;
use std::time::SystemTime;

/// The W3C `traceparent` header of an ingest request.
pub(super) struct TraceparentHeader;

impl utoipa::IntoParams for TraceparentHeader {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        vec![super::schema::header_param(
            "traceparent",
            "W3C Trace Context of the producer's span (`00-<trace id>-<span id>-<flags>`): with tracing on, \
             the event's trace continues it. A malformed value is ignored.",
            ObjectBuilder::new().schema_type(Type::String).build(),
        )]
    }
}

/// Open the `ingest` span of each event (begun at `started`, under the producer's
/// `traceparent`), and give each sampled event the context it stores. Nothing when tracing is
/// off. The request's log lines carry the (first) event's `trace_id`, when it is sampled.
pub(super) fn begin(headers: &HeaderMap, started: SystemTime, events: &mut [NewEvent]) -> Option<Vec<IngestSpan>> {
    let traces = crate::traces::get()?;
    let parent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::traces::parse_traceparent);
    let spans: Vec<IngestSpan> = events
        .iter_mut()
        .map(|event| {
            let span = traces.ingest(
                parent.as_ref(),
                started,
                &event.tenant,
                &event.event_id,
                &event.event_type,
            );
            event.trace = span.stored.map(|s| s.encode());
            span
        })
        .collect();
    if let Some(trace_id) = spans.first().and_then(IngestSpan::trace_id) {
        tracing::Span::current().record("trace_id", trace_id);
    }
    Some(spans)
}

/// End the spans with what the store answered for each event, in order.
pub(super) fn end(spans: Option<Vec<IngestSpan>>, stored: &[StoreResult<Ingested>]) {
    for (span, result) in spans.into_iter().flatten().zip(stored) {
        span.end(match result {
            Ok(i) if i.rate_limited => "rate_limited",
            Ok(i) if i.duplicate => "duplicate",
            Ok(_) => "accepted",
            Err(_) => "unavailable",
        });
    }
}
