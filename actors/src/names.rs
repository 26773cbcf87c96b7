//! Metric names, in one place. Every name starts with `hookline_`; labels have bounded values.

pub const EVENTS_INGESTED: &str = "hookline_events_ingested_total";
pub const INGEST_LATENCY: &str = "hookline_ingest_latency_seconds";
pub const ATTEMPTS: &str = "hookline_delivery_attempts_total";
pub const ATTEMPT_LATENCY: &str = "hookline_attempt_latency_seconds";
pub const EVENTS_ROUTED: &str = "hookline_events_routed_total";
pub const ENDPOINT_ACTORS: &str = "hookline_endpoint_actors";
pub const SHARDS_OWNED: &str = "hookline_shards_owned";
pub const HTTP_REQUESTS: &str = "hookline_http_requests_total";
pub const DELIVERIES_DROPPED: &str = "hookline_deliveries_dropped_total";
pub const JANITOR_REMOVED: &str = "hookline_janitor_removed_total";
pub const JANITOR_PASSES: &str = "hookline_janitor_passes_total";
