//! The data the actors pass around: endpoint configuration and routed events.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A secret that still signs after a rotation, until `expires_at_ms`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: String,
    pub expires_at_ms: u64,
}

/// An endpoint (subscription) as stored. `None` fields fall back to node defaults at delivery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndpointConfig {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub event_types: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub secret: String,
    #[serde(default)]
    pub previous_secrets: Vec<PreviousSecret>,
    #[serde(default)]
    pub rate_limit_per_s: Option<u32>,
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub retry_schedule_s: Option<Vec<u64>>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub ordered: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub disabled_reason: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl EndpointConfig {
    /// Secrets that sign an attempt made at `now_ms`: the current one first.
    pub fn live_secrets(&self, now_ms: u64) -> Vec<String> {
        std::iter::once(self.secret.clone())
            .chain(
                self.previous_secrets
                    .iter()
                    .filter(|p| p.expires_at_ms > now_ms)
                    .map(|p| p.secret.clone()),
            )
            .collect()
    }
}

/// One entry of the events stream, as the router reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// The stream entry id (`ms-seq`), used to ack.
    pub stream_id: String,
    pub event_id: String,
    pub tenant: String,
    pub event_type: String,
}

impl StreamEvent {
    /// Milliseconds part of the stream entry id: the ingest time, used as the queue score so
    /// that deliveries of one endpoint come out in ingest order.
    pub fn ingest_ms(&self) -> u64 {
        self.stream_id
            .split('-')
            .next()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0)
    }
}

/// An event together with the endpoints it was matched to.
#[derive(Debug, Clone)]
pub struct RoutedEvent {
    pub event: StreamEvent,
    /// `(endpoint id, shard)` pairs.
    pub endpoints: Vec<(String, u32)>,
}

/// A delivery pulled into an endpoint actor's window.
#[derive(Debug, Clone)]
pub struct QueuedDelivery {
    pub event_id: String,
    /// The attempts made so far.
    pub attempts: u32,
    /// Attempts made before the current cycle (a replay starts a new one): the retry schedule
    /// counts from here.
    pub cycle_base: u32,
    /// The exact body receivers get, or `None` when the event is gone (retention).
    pub body: Option<std::sync::Arc<str>>,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Delivered,
    /// Try again at this time (ms since epoch).
    RetryAt(u64),
    /// Dead-lettered with a reason.
    Dead(String),
}

/// One attempt as logged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttemptRecord {
    /// When the attempt started (ms since epoch).
    pub at_ms: u64,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub response_excerpt: String,
    pub error: Option<String>,
}

/// What the endpoint actor keeps about an endpoint's health between owners (stored in Redis).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthRecord {
    #[serde(default)]
    pub breaker: crate::breaker::BreakerRecord,
    /// Start of the current run of failed attempts (none since the last success).
    #[serde(default)]
    pub failing_since_ms: Option<u64>,
}
