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
pub const ENDPOINTS_DISABLED: &str = "hookline_endpoints_disabled";
/// Sampled, cluster-wide (every node reports the same figure: take `max`).
pub const ROUTER_LAG: &str = "hookline_router_lag_seconds";
pub const REDIS_ERRORS: &str = "hookline_redis_errors_total";
pub const REDIS_LATENCY: &str = "hookline_redis_command_seconds";

/// Successful deliveries made by this process (the drain estimate's rate comes from it).
pub static DELIVERED: AtomicU64 = AtomicU64::new(0);

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
