//! How an endpoint actor reaches a receiver. Implemented by `hookline::delivery` on reqwest;
//! the actor only sees a request in and a response summary out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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
}

#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn send(&self, request: AttemptRequest) -> AttemptResponse;
}
