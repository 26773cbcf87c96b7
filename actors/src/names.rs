//! Metric names, in one place. Every name starts with `hookline_`; labels have bounded values
//! (no endpoint or event ids unless `metrics.endpoint_labels` is on).

use std::sync::atomic::AtomicU64;

pub const EVENTS_INGESTED: &str = "hookline_events_ingested_total";
pub const INGEST_LATENCY: &str = "hookline_ingest_latency_seconds";
/// Label `outcome`: success | retry (failed, retry scheduled) | failed (permanent failure,
/// dead-lettered at once) | dead (retryable failure with the schedule exhausted, dead-lettered).
pub const ATTEMPTS: &str = "hookline_delivery_attempts_total";
pub const ATTEMPT_LATENCY: &str = "hookline_attempt_latency_seconds";
/// Ingest to successful delivery.
pub const E2E_LATENCY: &str = "hookline_delivery_e2e_seconds";
/// Label `attempt`: the attempt number that failed and scheduled the retry (1..9, `10+`).
pub const RETRIES_SCHEDULED: &str = "hookline_retries_scheduled_total";
/// Label `cause`: permanent | exhausted | gone | blocked | expired.
pub const DEAD_LETTERS: &str = "hookline_dead_letters_total";
pub const EVENTS_ROUTED: &str = "hookline_events_routed_total";
pub const ENDPOINT_ACTORS: &str = "hookline_endpoint_actors";
pub const SHARDS_OWNED: &str = "hookline_shards_owned";
pub const HTTP_REQUESTS: &str = "hookline_http_requests_total";
pub const DELIVERIES_DROPPED: &str = "hookline_deliveries_dropped_total";
pub const JANITOR_REMOVED: &str = "hookline_janitor_removed_total";
pub const JANITOR_PASSES: &str = "hookline_janitor_passes_total";
/// Sampled (see the node's sampler), for the endpoints of the shards this node owns.
pub const QUEUED: &str = "hookline_deliveries_queued";
pub const OLDEST_QUEUED_AGE: &str = "hookline_oldest_queued_delivery_age_seconds";
pub const DRAIN_TIME: &str = "hookline_drain_time_estimate_seconds";
pub const BREAKERS: &str = "hookline_breakers";
/// Breakers that went from closed to open (a burst of these: a wave of receivers failing, or us).
pub const BREAKERS_OPENED: &str = "hookline_breakers_opened_total";
pub const ENDPOINTS_DISABLED: &str = "hookline_endpoints_disabled";
/// Sampled, cluster-wide (every node reports the same figure: take `max`).
pub const ROUTER_LAG: &str = "hookline_router_lag_seconds";
pub const REDIS_ERRORS: &str = "hookline_redis_errors_total";
pub const REDIS_LATENCY: &str = "hookline_redis_command_seconds";
/// Requests to `/in/{source_id}`. Labels `kind` (the source's kind, `unknown` for no source)
/// and `outcome`: accepted | duplicate | unavailable | rejected_<reason> (see `INBOUND_OUTCOMES`).
pub const INBOUND_REQUESTS: &str = "hookline_inbound_requests_total";
pub const INBOUND_LATENCY: &str = "hookline_inbound_latency_seconds";
/// Ingests answered 503 because fewer replicas than `redis.wait_replicas` confirmed in time.
pub const REPLICA_WAITS_FAILED: &str = "hookline_replica_waits_failed_total";
/// Payloads that failed their event type's schema at ingest. Label `outcome`: flagged
/// (`validation: warn`, stored) | refused (`enforce`); `tenant` with `metrics.tenant_labels`.
pub const SCHEMA_VIOLATIONS: &str = "hookline_schema_violations_total";
/// Trace spans this node made but did not export (`tracing.*`): its queue was full, or the
/// collector refused or did not answer their batch.
pub const TRACE_SPANS_DROPPED: &str = "hookline_trace_spans_dropped_total";
/// 1 when this node seals secrets at rest (it has `security.encryption_keys`), else 0.
pub const SECRETS_ENCRYPTED: &str = "hookline_secrets_encrypted";
/// Every `outcome` of `INBOUND_REQUESTS`.
pub const INBOUND_OUTCOMES: &[&str] = &[
    "accepted",
    "duplicate",
    "unavailable",
    "rejected_unknown_source",
    "rejected_ip_not_allowed",
    "rejected_rate_limited",
    "rejected_payload_too_large",
    "rejected_missing_header",
    "rejected_malformed_header",
    "rejected_signature_mismatch",
    "rejected_timestamp_outside_tolerance",
    "rejected_bad_credentials",
    "rejected_unreadable_body",
    "rejected_body_timeout",
];

/// Deliveries this process settled (delivered or dead-lettered): the drain estimate's rate.
pub static SETTLED: AtomicU64 = AtomicU64::new(0);

/// Which ids label per-endpoint figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricLabels {
    pub tenant: bool,
    pub endpoint: bool,
}

impl MetricLabels {
    /// `base` plus `tenant` and `endpoint` labels where turned on.
    pub fn with(&self, base: &[(&'static str, String)], tenant: &str, endpoint: &str) -> Vec<metrics::Label> {
        let mut labels = self.with_tenant(base, tenant);
        if self.endpoint {
            labels.push(metrics::Label::new("endpoint", endpoint.to_string()));
        }
        labels
    }

    /// `base` plus the `tenant` label where turned on.
    pub fn with_tenant(&self, base: &[(&'static str, String)], tenant: &str) -> Vec<metrics::Label> {
        let mut labels: Vec<metrics::Label> = base.iter().map(|(k, v)| metrics::Label::new(*k, v.clone())).collect();
        if self.tenant {
            labels.push(metrics::Label::new("tenant", tenant.to_string()));
        }
        labels
    }
}

/// Describe every metric (HELP text) and register the series that would otherwise appear
/// only after their first event, at zero: dashboards and alerts see 0, not "no data".
pub fn describe_all() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        EVENTS_INGESTED,
        "Events posted, by outcome (accepted, duplicate, rejected, unavailable)"
    );
    describe_histogram!(INGEST_LATENCY, Unit::Seconds, "Time to answer an ingest request");
    describe_counter!(
        ATTEMPTS,
        "Delivery attempts by outcome: success, retry (retry scheduled), failed (permanent, dead-lettered), dead (retries exhausted)"
    );
    describe_histogram!(ATTEMPT_LATENCY, Unit::Seconds, "Duration of one delivery attempt");
    describe_histogram!(
        E2E_LATENCY,
        Unit::Seconds,
        "From ingest to successful delivery (retries included)"
    );
    describe_counter!(
        RETRIES_SCHEDULED,
        "Retries scheduled, by the number of the attempt that failed"
    );
    describe_counter!(DEAD_LETTERS, "Deliveries dead-lettered, by cause");
    describe_counter!(
        EVENTS_ROUTED,
        "Events read from the stream and queued for their endpoints"
    );
    describe_gauge!(ENDPOINT_ACTORS, "Endpoint actors running on this node");
    describe_gauge!(SHARDS_OWNED, "Shards whose lease this node holds");
    describe_counter!(HTTP_REQUESTS, "API requests by route template, method and status class");
    describe_counter!(
        DELIVERIES_DROPPED,
        "Pending deliveries dropped by deleting their endpoint"
    );
    describe_counter!(JANITOR_REMOVED, "What retention passes removed, by kind");
    describe_counter!(JANITOR_PASSES, "Retention passes this node ran");
    describe_gauge!(QUEUED, "Deliveries queued for the endpoints of this node's shards (active: we owe them; paused: breaker open or endpoint disabled)");
    describe_gauge!(
        OLDEST_QUEUED_AGE,
        Unit::Seconds,
        "How long the most overdue delivery of an active endpoint has been due"
    );
    describe_gauge!(
        DRAIN_TIME,
        Unit::Seconds,
        "Active queued deliveries divided by the recent delivery rate (capped at a week)"
    );
    describe_gauge!(BREAKERS, "Endpoints of this node's shards by circuit-breaker state");
    describe_counter!(BREAKERS_OPENED, "Circuit breakers that opened");
    describe_gauge!(ENDPOINTS_DISABLED, "Disabled endpoints of this node's shards");
    describe_gauge!(
        ROUTER_LAG,
        Unit::Seconds,
        "Age of the oldest event not yet routed (cluster-wide)"
    );
    describe_counter!(REDIS_ERRORS, "Redis commands that failed");
    describe_histogram!(REDIS_LATENCY, Unit::Seconds, "Duration of Redis scripts, by script");
    describe_counter!(
        REPLICA_WAITS_FAILED,
        "Ingests answered 503 because fewer replicas than redis.wait_replicas confirmed in time"
    );
    describe_counter!(
        SCHEMA_VIOLATIONS,
        "Payloads that failed their event type's schema at ingest (flagged with warn, refused with enforce)"
    );
    describe_counter!(
        TRACE_SPANS_DROPPED,
        "Trace spans not exported: the export queue was full, or the collector refused or did not answer"
    );
    describe_gauge!(
        SECRETS_ENCRYPTED,
        "1 when secrets are stored sealed (security.encryption_keys is set), 0 when in clear"
    );
    describe_counter!(
        INBOUND_REQUESTS,
        "Requests to the inbound gateway (/in/…), by source kind and outcome"
    );
    describe_histogram!(
        INBOUND_LATENCY,
        Unit::Seconds,
        "Time to answer an inbound request (/in/…)"
    );

    for outcome in ["accepted", "duplicate", "rejected", "unavailable"] {
        metrics::counter!(EVENTS_INGESTED, "outcome" => outcome).increment(0);
    }
    for outcome in ["success", "retry", "failed", "dead"] {
        metrics::counter!(ATTEMPTS, "outcome" => outcome).increment(0);
    }
    for outcome in ["flagged", "refused"] {
        metrics::counter!(SCHEMA_VIOLATIONS, "outcome" => outcome).increment(0);
    }
    for cause in ["permanent", "exhausted", "gone", "blocked", "expired"] {
        metrics::counter!(DEAD_LETTERS, "cause" => cause).increment(0);
    }
    for state in ["closed", "open", "half_open"] {
        metrics::gauge!(BREAKERS, "state" => state).set(0.0);
    }
    for name in [
        EVENTS_ROUTED,
        DELIVERIES_DROPPED,
        JANITOR_PASSES,
        BREAKERS_OPENED,
        REDIS_ERRORS,
        REPLICA_WAITS_FAILED,
        TRACE_SPANS_DROPPED,
    ] {
        metrics::counter!(name).increment(0);
    }
    for name in [
        ENDPOINT_ACTORS,
        SHARDS_OWNED,
        OLDEST_QUEUED_AGE,
        DRAIN_TIME,
        ENDPOINTS_DISABLED,
        ROUTER_LAG,
    ] {
        metrics::gauge!(name).increment(0.0);
    }
    for name in [INGEST_LATENCY, ATTEMPT_LATENCY, E2E_LATENCY, INBOUND_LATENCY] {
        let _ = metrics::histogram!(name);
    }
}
