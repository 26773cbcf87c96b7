//! The data the actors pass around: endpoint configuration and routed events.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A secret that still signs after a rotation, until `expires_at_ms`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: String,
    pub expires_at_ms: u64,
}

/// How the node proves itself to a receiver over TLS: a client certificate (with its key) and
/// a CA trusted for this endpoint beside the system roots. Either part may be absent.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ClientTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_pem: Option<String>,
    /// Write-only: never shown, sealed at rest like a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// How the node sends the client's credentials to the token URL (RFC 6749, 2.3.1).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum OAuth2ClientAuth {
    /// HTTP Basic with the form-encoded id and secret.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// OAuth2 client credentials: the node fetches a token from `token_url` and sends it as
/// `Authorization: Bearer …`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct OAuth2Client {
    pub token_url: String,
    pub client_id: String,
    /// Write-only: never shown, sealed at rest like a secret.
    pub client_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default)]
    pub auth: OAuth2ClientAuth,
}

// Debug without the key and the client secret: these structs travel in attempts and configs
// that may be logged.
impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("client_cert_pem", &self.client_cert_pem.as_ref().map(|_| "…"))
            .field("client_key_pem", &self.client_key_pem.as_ref().map(|_| "***"))
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "…"))
            .finish()
    }
}

impl std::fmt::Debug for OAuth2Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2Client")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("auth", &self.auth)
            .finish()
    }
}

/// What an endpoint's deliveries carry: the whole event, or a thin notice the receiver follows
/// up with `GET …/events/{id}` (as Stripe's thin events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadMode {
    #[default]
    Full,
    Thin,
}

impl PayloadMode {
    pub fn is_full(&self) -> bool {
        *self == PayloadMode::Full
    }
}

/// What an endpoint is (`kind`): a Standard Webhooks receiver, a Slack-compatible incoming
/// webhook that gets a chat message rendered from the event (without signature headers), or
/// email recipients (`url` is `mailto:a@x,b@y`) sent to through the node's SMTP server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    #[default]
    Webhook,
    Slack,
    Email,
}

impl EndpointKind {
    pub fn is_webhook(&self) -> bool {
        *self == EndpointKind::Webhook
    }
}

/// The thin body of a stored event body (`{"id","type","timestamp",…,"data"}`):
/// `{"type","timestamp","data":{"id","thin":true}}`. `None` if the body is not an event.
pub fn thin_body(full: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
        #[serde(rename = "type", borrow)]
        event_type: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        timestamp: std::borrow::Cow<'a, str>,
    }
    let head: Head = serde_json::from_str(full).ok()?;
    serde_json::to_string(&serde_json::json!({
        "type": head.event_type,
        "timestamp": head.timestamp,
        "data": {"id": head.id, "thin": true},
    }))
    .ok()
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
    /// When it last stopped being ordered (ms): until an hour past it, a pull reads whether its
    /// deliveries have records (an ordered head keeps its fractional queue score after a failed
    /// attempt; see `order_score`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unordered_since_ms: Option<u64>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<std::sync::Arc<ClientTls>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<std::sync::Arc<OAuth2Client>>,
    /// A content filter (`crate::filter`), as given: only events it matches are delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<std::sync::Arc<serde_json::Value>>,
    /// `thin`: deliveries carry the event's id, type and time only (`thin_body`).
    #[serde(default, skip_serializing_if = "PayloadMode::is_full")]
    pub payload_mode: PayloadMode,
    /// The tenant's own labels for it, shown and never sent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// `webhook` (the default) or `slack`.
    #[serde(default, skip_serializing_if = "EndpointKind::is_webhook")]
    pub kind: EndpointKind,
    /// A jq program run on each delivery before it is sent (`transport::TransformSpec`): it
    /// may reshape the body, add headers, change the URL or cancel the delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<std::sync::Arc<str>>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl EndpointConfig {
    /// A new endpoint with every optional setting at its default: all event types, no rate
    /// limit, node defaults for in-flight cap, timeout and retries, enabled.
    pub fn new(id: String, tenant: String, url: String, secret: String, now_ms: u64) -> Self {
        EndpointConfig {
            id,
            tenant,
            url,
            event_types: vec!["*".into()],
            description: None,
            secret,
            previous_secrets: Vec::new(),
            rate_limit_per_s: None,
            max_in_flight: None,
            timeout_ms: None,
            retry_schedule_s: None,
            headers: BTreeMap::new(),
            ordered: false,
            unordered_since_ms: None,
            disabled: false,
            disabled_reason: None,
            tls: None,
            oauth2: None,
            filter: None,
            payload_mode: PayloadMode::Full,
            metadata: BTreeMap::new(),
            transform: None,
            kind: EndpointKind::Webhook,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamEvent {
    /// The events partition (stream) the entry was read from, and its entry id (`ms-seq`):
    /// together they ack it.
    pub partition: u32,
    pub stream_id: String,
    pub event_id: String,
    pub tenant: String,
    pub event_type: String,
    /// Deliver to this endpoint of the tenant only, whatever it subscribes to (test sends).
    pub only_endpoint: Option<String>,
    /// A sampled event's trace context as ingest stored it (opaque here: the store makes the
    /// route span of it).
    pub trace: Option<String>,
}

impl StreamEvent {
    /// The queue score of a new delivery of this event: the ingest time in ms (so it is due at
    /// once) plus the stream sequence number + 1 in 1/4096 ms, so deliveries of one endpoint
    /// sort in exact ingest order. The sum is exactly representable in an f64 for any date
    /// before 2039 (41 bits of ms + 12 bits of sequence); sequences past 4094 within one ms
    /// share the last slot (ties then sort by event id, whose first part is the ingest time
    /// too). It is never a whole number, and a delivery's queue score becomes one only when a
    /// record is written for it (a retry's due time, a replay's time): so a pull of an
    /// endpoint that is not ordered knows a delivery with a fractional score has no record
    /// (`has_no_record`), without reading.
    pub fn order_score(&self) -> f64 {
        order_score(&self.stream_id)
    }
}

/// The queue score of a stream id `ms-seq` (see `StreamEvent::order_score`).
pub fn order_score(stream_id: &str) -> f64 {
    let ms = stream_id_ms(stream_id).unwrap_or(0);
    let seq: u64 = stream_id.split('-').nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    ms as f64 + (seq.min(4094) + 1) as f64 / 4096.0
}

/// Does a queued delivery of this (not ordered) endpoint with this queue score have no record
/// yet? Yes if its score is fractional (see `order_score`), unless the endpoint was ordered
/// until lately (`unordered_since_ms`, with an hour's margin for clocks): an ordered endpoint's
/// failed head keeps its place, so its record sits under a fractional score.
pub fn has_no_record(endpoint: &EndpointConfig, score: f64) -> bool {
    score.fract() != 0.0
        && !endpoint.ordered
        && endpoint
            .unordered_since_ms
            .is_none_or(|since| score >= since.saturating_add(3_600_000) as f64)
}

/// The time part (ms, on Redis's clock) of a stream id `ms-seq`.
pub fn stream_id_ms(stream_id: &str) -> Option<u64> {
    stream_id.split('-').next()?.parse().ok()
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
    /// The event's metadata as stored (a JSON object), read only for an endpoint with a
    /// transform (its program sees it); `None` otherwise or when the event has none.
    pub metadata: Option<std::sync::Arc<str>>,
    /// Not to be attempted before this time (ms). Only ordered endpoints see a head delivery
    /// that is not due yet: its retry keeps its place in line, or an event ingested before it
    /// may not be in the queue yet (another node's router has it): look again then.
    pub not_before_ms: u64,
    /// A sampled event's trace context (opaque here: the transport makes the attempt's span
    /// of it), read only while tracing is on.
    pub trace: Option<std::sync::Arc<str>>,
    /// `Some(queue score)` when the delivery has no record yet (routing writes none): its first
    /// recorded attempt creates it, with this as its place in line and creation time.
    pub new_record: Option<f64>,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Delivered,
    /// Try again at this time (ms since epoch).
    RetryAt(u64),
    /// Dead-lettered with a reason.
    Dead(DeadReason),
}

/// RFC 3339 with milliseconds, UTC: how the API, event bodies and the node's own events show
/// every time.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// Why a delivery was dead-lettered, as its record and the API show it (`Display`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// The receiver answered this 4xx (or other non-retryable) status: `http_<code>`.
    Refused(u16),
    /// The receiver answered a redirect, never followed: `redirect_<code>`.
    Redirected(u16),
    /// The SSRF guard refused the address: `destination_blocked`.
    DestinationBlocked,
    /// The request could not be built (e.g. a bad header): `invalid_request`.
    InvalidRequest,
    /// The retry schedule ran out: `retries_exhausted`.
    RetriesExhausted,
    /// The receiver answered 410: `gone`.
    Gone,
    /// The event left retention before it was delivered: `event_expired`.
    EventExpired,
    /// The endpoint's transform failed on this event (an error, too slow, too big, a bad
    /// result): `transform_failed`.
    TransformFailed,
    /// The endpoint's transform cancelled this delivery (`"cancel": true`): `cancelled`.
    Cancelled,
}

impl std::fmt::Display for DeadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeadReason::Refused(code) => write!(f, "http_{code}"),
            DeadReason::Redirected(code) => write!(f, "redirect_{code}"),
            DeadReason::DestinationBlocked => f.write_str("destination_blocked"),
            DeadReason::InvalidRequest => f.write_str("invalid_request"),
            DeadReason::RetriesExhausted => f.write_str("retries_exhausted"),
            DeadReason::Gone => f.write_str("gone"),
            DeadReason::EventExpired => f.write_str("event_expired"),
            DeadReason::TransformFailed => f.write_str("transform_failed"),
            DeadReason::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// A finished attempt, ready to be recorded (`EndpointStore::record_attempts`).
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedAttempt {
    pub event_id: String,
    /// The attempt's number (1 for the first).
    pub number: u32,
    pub record: AttemptRecord,
    pub next: Next,
    /// The delivery had no record when pulled (`QueuedDelivery::new_record`): this one creates it.
    pub new_record: Option<f64>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thin_body_names_the_event_and_carries_none_of_its_data() {
        let full = r#"{"id":"evt_1","type":"order.\"x\"","timestamp":"2026-12-04T10:00:00.000Z","tenant":"t","data":{"secret":1}}"#;
        let thin: serde_json::Value = serde_json::from_str(&thin_body(full).unwrap()).unwrap();
        assert_eq!(
            thin,
            serde_json::json!({"type": "order.\"x\"", "timestamp": "2026-12-04T10:00:00.000Z",
                               "data": {"id": "evt_1", "thin": true}})
        );
        assert_eq!(thin_body("not json"), None);
        assert_eq!(thin_body(r#"{"type":"a"}"#), None);
        // Stored without the field, an endpoint is `full`; `full` is not written out.
        let cfg = EndpointConfig::new("ep".into(), "t".into(), "http://x".into(), "whsec_x".into(), 0);
        let text = serde_json::to_string(&cfg).unwrap();
        assert!(!text.contains("payload_mode"), "{text}");
        let thin_cfg = EndpointConfig {
            payload_mode: PayloadMode::Thin,
            ..cfg
        };
        let back: EndpointConfig = serde_json::from_str(&serde_json::to_string(&thin_cfg).unwrap()).unwrap();
        assert_eq!(back.payload_mode, PayloadMode::Thin);
    }

    fn event(stream_id: &str) -> StreamEvent {
        StreamEvent {
            stream_id: stream_id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn order_scores_follow_the_stream_exactly() {
        let ids = [
            "1763870000000-0",
            "1763870000000-1",
            "1763870000000-4095",
            "1763870000001-0",
            "2200000000000-7",
        ];
        let scores: Vec<f64> = ids.iter().map(|id| event(id).order_score()).collect();
        assert!(scores.windows(2).all(|w| w[0] < w[1]), "{scores:?}");
        assert_eq!(event("1763870000000-0").order_score(), 1763870000000.0 + 1.0 / 4096.0);
        assert_eq!(event("1763870000000-1").order_score(), 1763870000000.0 + 2.0 / 4096.0);
        assert!(
            ids.iter().all(|id| event(id).order_score().fract() != 0.0),
            "never whole"
        );
        // The score is due when its ms is: the fraction never reaches the next ms.
        assert!(event("1763870000000-9999").order_score() < 1763870000001.0);
        // And it survives the trip through text to Redis and back.
        let s = event("1763870000123-77").order_score();
        assert_eq!(s.to_string().parse::<f64>().unwrap(), s);
    }
}

/// The alphabet of generated ids: base 32 without i, l, o and u.
pub const ID_ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A delivery's id: `dlv_` + the endpoint id's core + the event id's core.
pub fn delivery_id(endpoint_id: &str, event_id: &str) -> String {
    format!(
        "dlv_{}{}",
        endpoint_id.get(3..).unwrap_or_default(),
        event_id.get(4..).unwrap_or_default()
    )
}

/// `ms` as the 10 base-32 characters that begin an event id's core (so ids sort by time).
pub fn encode_event_time(ms: u64) -> String {
    (0..10)
        .rev()
        .map(|i| ID_ALPHABET[((ms >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// The ingest time (ms) an event id carries.
pub fn event_time_ms(event_id: &str) -> Option<u64> {
    let time = event_id.strip_prefix("evt_")?.get(..10)?;
    time.bytes().try_fold(0u64, |acc, b| {
        let digit = ID_ALPHABET.iter().position(|a| *a == b)? as u64;
        Some(acc << 5 | digit)
    })
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn event_times_round_trip() {
        for ms in [0, 1, 1_763_870_000_123, (1u64 << 50) - 1] {
            let id = format!("evt_{}abcdefghjkmnpqrs", encode_event_time(ms));
            assert_eq!(event_time_ms(&id), Some(ms), "{id}");
        }
        assert_eq!(event_time_ms("evt_short"), None);
        assert_eq!(event_time_ms("ep_0123456789abcdefghjk"), None);
        assert_eq!(event_time_ms("evt_ILOU000000abcdefghjkmnpqrs"), None);
    }

    #[test]
    fn dead_reasons_read_as_the_contract_names_them() {
        let names = [
            (DeadReason::Refused(400), "http_400"),
            (DeadReason::Redirected(301), "redirect_301"),
            (DeadReason::DestinationBlocked, "destination_blocked"),
            (DeadReason::InvalidRequest, "invalid_request"),
            (DeadReason::RetriesExhausted, "retries_exhausted"),
            (DeadReason::Gone, "gone"),
            (DeadReason::EventExpired, "event_expired"),
            (DeadReason::TransformFailed, "transform_failed"),
            (DeadReason::Cancelled, "cancelled"),
        ];
        for (reason, name) in names {
            assert_eq!(reason.to_string(), name);
        }
    }
}
