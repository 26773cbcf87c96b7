//! How an endpoint actor reaches a receiver. Implemented by `hookline::delivery` on reqwest;
//! the actor only sees a request in and a response summary out.

use crate::model::{ClientTls, OAuth2Client};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Headers the node sets itself, which neither an endpoint nor a transform may override.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "transfer-encoding",
    "connection",
];

#[derive(Debug, Clone)]
pub struct AttemptRequest {
    pub url: String,
    pub event_id: String,
    /// The exact JSON body.
    pub body: Arc<str>,
    /// `whsec_…` secrets to sign with, current first.
    pub secrets: Vec<String>,
    pub headers: BTreeMap<String, String>,
    pub timeout: Duration,
    /// How the receiver wants the node to prove itself beyond the signature: only for
    /// endpoints that set it (the plain path carries nothing).
    pub auth: Option<ReceiverAuth>,
    /// The endpoint's transform and what its program sees beside the body: only for
    /// endpoints that have one (the plain path carries nothing).
    pub transform: Option<TransformSpec>,
    /// A Slack endpoint gets a message rendered from the event and no signature headers.
    pub kind: crate::model::EndpointKind,
    /// A traced event's attempt: the transport makes its span (the plain path carries nothing).
    pub trace: Option<TraceRef>,
}

/// What an attempt's trace span needs: the event's stored trace context (opaque here), the
/// endpoint and the attempt's number.
#[derive(Debug, Clone)]
pub struct TraceRef {
    pub context: Arc<str>,
    pub endpoint_id: String,
    pub attempt: u32,
}

/// An attempt's open trace span, which the endpoint actor ends with the attempt's outcome
/// (`success`, `retry`, `dead`, `failed`: the `outcome` label of `hookline_attempts_total`).
pub trait AttemptTrace: Send + Sync + std::fmt::Debug {
    fn end(&self, outcome: &str);
    /// The trace's id, for the attempt's log line.
    fn trace_id(&self) -> String;
}

/// A transform to run on an attempt's body before it is signed and sent.
#[derive(Debug, Clone)]
pub struct TransformSpec {
    /// The jq program.
    pub program: Arc<str>,
    /// The event's full body (`{"type", "timestamp", "data"}`), even for a thin endpoint.
    pub event: Arc<str>,
    pub endpoint_id: String,
    pub endpoint_metadata: BTreeMap<String, String>,
    /// The event's metadata as stored (a JSON object), if it has any.
    pub event_metadata: Option<Arc<str>>,
}

/// An endpoint's client certificate and OAuth2 client, with the endpoint's id: the transport
/// keeps a client and a token per endpoint.
#[derive(Debug, Clone)]
pub struct ReceiverAuth {
    pub endpoint_id: String,
    pub tls: Option<Arc<ClientTls>>,
    pub oauth2: Option<Arc<OAuth2Client>>,
}

impl ReceiverAuth {
    pub fn of(cfg: &crate::EndpointConfig) -> Option<ReceiverAuth> {
        (cfg.tls.is_some() || cfg.oauth2.is_some()).then(|| ReceiverAuth {
            endpoint_id: cfg.id.clone(),
            tls: cfg.tls.clone(),
            oauth2: cfg.oauth2.clone(),
        })
    }
}

/// Why an attempt got no HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Timeout,
    Connect,
    /// The destination resolved to an address the node refuses to reach (SSRF guard).
    Blocked,
    /// The request could not even be built (bad URL, bad header): retrying cannot help.
    InvalidRequest,
    /// The endpoint's transform failed on this event: dead-lettered, `transform_failed`.
    TransformFailed,
    /// The endpoint's transform cancelled the delivery: dead-lettered, `cancelled`.
    Cancelled,
    Other,
}

#[derive(Debug, Clone, Default)]
pub struct AttemptResponse {
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// The first 1 KiB of the response body (lossy UTF-8).
    pub excerpt: String,
    pub error: Option<String>,
    pub failure: Option<FailureKind>,
    pub retry_after: Option<Duration>,
    /// The attempt's trace span, for a traced event.
    pub trace: Option<Arc<dyn AttemptTrace>>,
}

#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn send(&self, request: AttemptRequest) -> AttemptResponse;
}
