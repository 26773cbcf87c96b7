//! The settings and the endpoint the endpoint actor's unit tests (and the shard owner's) start
//! from.

use super::START_MS;
use crate::breaker::BreakerSettings;
use crate::ctx::NodeSettings;
use crate::model::EndpointConfig;

pub(crate) fn settings() -> NodeSettings {
    NodeSettings {
        node_id: "unit".into(),
        shard_count: 8,
        lease_ttl_ms: 1_000_000_000,
        due_poll_ms: 1_000,
        due_poll_max_ms: 10_000,
        router_batch: 100,
        router_block_ms: 100,
        router_claim_idle_ms: 30_000,
        stream_partitions: 1,
        resync_interval_ms: 60_000,
        default_timeout_ms: 10_000,
        default_retry_schedule_s: vec![10, 60],
        default_max_in_flight: 10,
        window: 100,
        idle_keepalive_ms: 120_000,
        idle_linger_ms: 5_000,
        drain_timeout_ms: 10_000,
        breaker: BreakerSettings::default(),
        disable_after_ms: 3_600_000,
        dead_letter_notice_interval_s: 3_600,
        metric_labels: Default::default(),
    }
}

pub(crate) fn endpoint(tweak: impl FnOnce(&mut EndpointConfig)) -> EndpointConfig {
    let mut cfg = EndpointConfig::new(
        "ep_unit".into(),
        "t".into(),
        "http://r/".into(),
        "whsec_x".into(),
        START_MS,
    );
    tweak(&mut cfg);
    cfg
}
