//! OpenTelemetry traces (`tracing.*`): one trace per event, exported over OTLP/HTTP.
//!
//! An event's trace is an `ingest` span (a child of the producer's W3C `traceparent` when the
//! request has one), a `route` span under it, and an `attempt` span per attempt under that.
//! Attempts happen later, maybe on another node after a restart, so the context travels with
//! the event, not in memory: a sampled event stores [`Stored`] (trace id, ingest span id and
//! the route span's id, chosen at ingest) in its stream entry and its record (`tc`). The router
//! makes its span with that id and every attempt's span hangs under it; the receiver gets a
//! `traceparent` naming the attempt's span.
//!
//! Export never slows delivery: a finished span goes into a bounded queue
//! (`QUEUE` spans) without waiting, a task posts batches to the collector, and a span that
//! finds the queue full, or whose batch the collector refused or never answered, is counted in
//! `hookline_trace_spans_dropped_total` and forgotten.

use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracer, SdkTracerProvider, Span, SpanData, SpanExporter as _, SpanProcessor,
};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// Spans waiting for export; past this, new ones are dropped (and counted).
const QUEUE: usize = 4096;
/// Most spans in one export request.
const BATCH: usize = 512;
/// A span waits at most this long for others to share its export request.
const LINGER: Duration = Duration::from_millis(500);
/// The longest one export request may take before its spans count as dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

static TRACES: OnceLock<Traces> = OnceLock::new();

/// The node's tracer, when `tracing.otlp_endpoint` is set.
pub struct Traces {
    tracer: SdkTracer,
    /// Kept so the provider (and its processor) lives as long as the process.
    _provider: SdkTracerProvider,
    queue: mpsc::Sender<Queued>,
}

enum Queued {
    Span(Box<SpanData>),
    /// Export everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The tracer, if tracing is on.
pub fn get() -> Option<&'static Traces> {
    TRACES.get()
}

/// Start tracing (`tracing.*`): spans to the collector at `url` (none: tracing stays off),
/// `sample_ratio` of new traces kept, as `service_name`. Needs a tokio runtime: the export task
/// runs on it. Once per process; later calls change nothing.
pub fn install(url: Option<String>, sample_ratio: f64, service_name: &str) -> anyhow::Result<()> {
    let Some(url) = url else { return Ok(()) };
    if TRACES.get().is_some() {
        return Ok(());
    }
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_string())
        .build();
    let mut exporter = {
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(url.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()?
    };
    exporter.set_resource(&resource);
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(export(exporter, url.clone(), rx));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Enqueue(tx.clone()))
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(sample_ratio))))
        .with_resource(resource)
        .build();
    let traces = Traces {
        tracer: provider.tracer("hookline"),
        _provider: provider,
        queue: tx,
    };
    if TRACES.set(traces).is_ok() {
        tracing::info!(
            url = without_credentials(&url, &url),
            ratio = sample_ratio,
            "tracing on"
        );
    }
    Ok(())
}

/// Export what is queued (at shutdown), waiting at most `limit`.
pub async fn flush(limit: Duration) {
    let Some(traces) = get() else { return };
    let (done, answered) = oneshot::channel();
    let flushed = async {
        if traces.queue.send(Queued::Flush(done)).await.is_ok() {
            let _ = answered.await;
        }
    };
    let _ = tokio::time::timeout(limit, flushed).await;
}

/// `text` with the collector URL's `user:password@`, if it has one, replaced by `***@` (the
/// exporter's errors quote the URL).
fn without_credentials(text: &str, url: &str) -> String {
    let userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo);
    match userinfo {
        Some(userinfo) if !userinfo.is_empty() => text.replace(&format!("{userinfo}@"), "***@"),
        _ => text.to_string(),
    }
}

/// The processor: hands finished spans to the export task without ever waiting.
#[derive(Debug)]
struct Enqueue(mpsc::Sender<Queued>);

impl SpanProcessor for Enqueue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.0.try_send(Queued::Span(Box::new(span))).is_err() {
            metrics::counter!(crate::telemetry::names::TRACE_SPANS_DROPPED).increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The export task: batches of up to `BATCH` spans, each posted once; a failed post's spans
/// are dropped and counted (the next batch tries again).
async fn export(exporter: opentelemetry_otlp::SpanExporter, url: String, mut rx: mpsc::Receiver<Queued>) {
    let mut failing = false;
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::with_capacity(BATCH);
        let mut flushed = Vec::new();
        let mut next = Some(first);
        let until = tokio::time::Instant::now() + LINGER;
        loop {
            match next.take() {
                Some(Queued::Span(span)) => batch.push(*span),
                Some(Queued::Flush(done)) => {
                    flushed.push(done);
                    // Whatever was queued before the flush is already in the channel.
                    while let Ok(item) = rx.try_recv() {
                        match item {
                            Queued::Span(span) => batch.push(*span),
                            Queued::Flush(done) => flushed.push(done),
                        }
                    }
                    break;
                }
                None => {}
            }
            if batch.len() >= BATCH {
                break;
            }
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(item)) => next = Some(item),
                _ => break,
            }
        }
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(BATCH));
            let chunk = std::mem::replace(&mut batch, rest);
            let n = chunk.len() as u64;
            let sent = tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(chunk)).await;
            match sent {
                Ok(Ok(())) => failing = false,
                failed => {
                    metrics::counter!(crate::telemetry::names::TRACE_SPANS_DROPPED).increment(n);
                    if !failing {
                        let error = match failed {
                            Ok(Err(e)) => without_credentials(&e.to_string(), &url),
                            _ => "timed out".to_string(),
                        };
                        tracing::warn!(%error, spans = n, "trace export failed: spans dropped until the collector answers");
                    }
                    failing = true;
                }
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}

/// What a sampled event stores (`tc`): its trace, its ingest span and its route span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub trace: TraceId,
    pub ingest: SpanId,
    pub route: SpanId,
}

impl Stored {
    /// 64 hex digits: trace id, ingest span id, route span id.
    pub fn encode(&self) -> String {
        format!("{}{}{}", self.trace, self.ingest, self.route)
    }

    pub fn decode(text: &str) -> Option<Stored> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let stored = Stored {
            trace: TraceId::from_hex(&text[..32]).ok()?,
            ingest: SpanId::from_hex(&text[32..48]).ok()?,
            route: SpanId::from_hex(&text[48..]).ok()?,
        };
        (stored.trace != TraceId::INVALID && stored.ingest != SpanId::INVALID && stored.route != SpanId::INVALID)
            .then_some(stored)
    }
}

/// A W3C `traceparent` header's context (version 00 and its future versions' first fields);
/// `None` for anything malformed, which is then ignored, as the W3C recommendation says.
pub fn parse_traceparent(header: &str) -> Option<SpanContext> {
    let mut parts = header.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2) {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok().filter(|t| *t != TraceId::INVALID)?;
    let parent = SpanId::from_hex(parent).ok().filter(|s| *s != SpanId::INVALID)?;
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & 1);
    Some(SpanContext::new(trace, parent, flags, true, TraceState::default()))
}

/// The `traceparent` a receiver gets: this span is its parent.
pub fn traceparent(context: &SpanContext) -> String {
    format!("00-{}-{}-01", context.trace_id(), context.span_id())
}

fn remote(trace: TraceId, span: SpanId) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        trace,
        span,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

/// One event's `ingest` span, open until its store answered.
pub struct IngestSpan {
    span: Span,
    /// What the event stores, when the span is sampled.
    pub stored: Option<Stored>,
}

impl Traces {
    /// The `ingest` span of one event, begun at `started`, under the producer's `traceparent`
    /// (`parent`) when it sent one.
    pub fn ingest(
        &self,
        parent: Option<&SpanContext>,
        started: SystemTime,
        tenant: &str,
        event_id: &str,
        event_type: &str,
    ) -> IngestSpan {
        let cx = parent.map_or_else(Context::new, |p| Context::new().with_remote_span_context(p.clone()));
        let mut span = SpanBuilder::from_name("ingest")
            .with_kind(SpanKind::Server)
            .with_start_time(started)
            .start_with_context(&self.tracer, &cx);
        let context = span.span_context().clone();
        // The sampler needs no attributes: an event not sampled costs none of them.
        let stored = context.is_sampled().then(|| Stored {
            trace: context.trace_id(),
            ingest: context.span_id(),
            route: SpanId::from(rand::random::<u64>().max(1)),
        });
        if stored.is_some() {
            span.set_attributes([
                KeyValue::new("hookline.tenant", tenant.to_string()),
                KeyValue::new("hookline.event_id", event_id.to_string()),
                KeyValue::new("hookline.event_type", event_type.to_string()),
            ]);
        }
        IngestSpan { span, stored }
    }

    /// The `route` span of a stored event, from `started` to now (its deliveries exist).
    pub fn routed(&self, stored: &Stored, started: SystemTime, tenant: &str, event_id: &str, endpoints: usize) {
        let mut span = SpanBuilder::from_name("route")
            .with_kind(SpanKind::Internal)
            .with_span_id(stored.route)
            .with_start_time(started)
            .with_attributes([
                KeyValue::new("hookline.tenant", tenant.to_string()),
                KeyValue::new("hookline.event_id", event_id.to_string()),
                KeyValue::new("hookline.endpoints", endpoints as i64),
            ])
            .start_with_context(&self.tracer, &remote(stored.trace, stored.ingest));
        span.end();
    }

    /// An `attempt` span under the event's route span; it ends when the attempt's outcome is
    /// known ([`AttemptSpan::end`]).
    pub fn attempt(&self, stored: &Stored, endpoint_id: &str, event_id: &str, attempt: u32) -> AttemptSpan {
        let span = SpanBuilder::from_name("attempt")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("hookline.endpoint_id", endpoint_id.to_string()),
                KeyValue::new("hookline.event_id", event_id.to_string()),
                KeyValue::new("hookline.attempt", i64::from(attempt)),
                KeyValue::new("http.request.method", "POST"),
            ])
            .start_with_context(&self.tracer, &remote(stored.trace, stored.route));
        AttemptSpan {
            context: span.span_context().clone(),
            span: Mutex::new(Some(span)),
        }
    }
}

impl IngestSpan {
    /// The trace's id, when it is sampled (else no collector has it).
    pub fn trace_id(&self) -> Option<String> {
        self.stored.map(|s| s.trace.to_string())
    }

    /// End it with what ingest answered (`accepted`, `duplicate`, `rate_limited`,
    /// `unavailable`).
    pub fn end(mut self, outcome: &'static str) {
        if self.stored.is_none() {
            return;
        }
        self.span.set_attribute(KeyValue::new("hookline.outcome", outcome));
        if outcome == "unavailable" {
            self.span
                .set_status(Status::error("the store did not confirm the event"));
        }
        self.span.end();
    }
}

/// An attempt's open span: the transport sets its status code, the endpoint actor ends it with
/// the outcome.
#[derive(Debug)]
pub struct AttemptSpan {
    /// The span's context: the receiver's `traceparent` names it.
    pub context: SpanContext,
    /// The open span, until it ends.
    span: Mutex<Option<Span>>,
}

impl AttemptSpan {
    pub fn set(&self, attribute: KeyValue) {
        if let Some(span) = self.span.lock().ok().as_mut().and_then(|s| s.as_mut()) {
            span.set_attribute(attribute);
        }
    }
}

impl hookline_actors::transport::AttemptTrace for AttemptSpan {
    fn end(&self, outcome: &str) {
        let Some(mut span) = self.span.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        span.set_attribute(KeyValue::new("hookline.outcome", outcome.to_string()));
        if outcome != "success" {
            span.set_status(Status::error(outcome.to_string()));
        }
        span.end();
    }

    fn trace_id(&self) -> String {
        self.context.trace_id().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_headers_are_read_as_w3c_says() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = parse_traceparent(good).unwrap();
        assert_eq!(cx.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.span_id().to_string(), "00f067aa0ba902b7");
        assert!(cx.is_sampled() && cx.is_remote());
        assert!(
            !parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .unwrap()
                .is_sampled()
        );
        // A later version may add fields after the flags.
        assert!(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz").is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_in_the_collector_url_are_never_logged() {
        let url = "https://user:s3cret@collector:4318/v1/traces";
        assert_eq!(without_credentials(url, url), "https://***@collector:4318/v1/traces");
        let error = format!("export failed. Url: {url}, Status Code: 401");
        assert!(!without_credentials(&error, url).contains("s3cret"));
        assert_eq!(without_credentials("http://c:4318", "http://c:4318"), "http://c:4318");
    }

    #[test]
    fn a_stored_context_reads_back_and_nothing_else_does() {
        let stored = Stored {
            trace: TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            ingest: SpanId::from(0x00f0_67aa_0ba9_02b7),
            route: SpanId::from(7),
        };
        let text = stored.encode();
        assert_eq!(text.len(), 64);
        assert_eq!(Stored::decode(&text), Some(stored));
        assert_eq!(Stored::decode(&text[1..]), None);
        assert_eq!(Stored::decode(&format!("{}{}", &text[..48], "0".repeat(16))), None);
        assert_eq!(Stored::decode(&text.replace('4', "x")), None);
    }
}
