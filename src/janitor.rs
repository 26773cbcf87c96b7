//! The retention janitor task: every `retention.janitor_interval_s` one node (whichever claims
//! the interval in Redis first) runs one bounded pass (`RedisStore::janitor_pass`). A failed
//! pass is logged and tried again next interval; nothing else depends on it.

use crate::config::Config;
use crate::store::RedisStore;
use std::sync::Arc;
use std::time::Duration;

/// Run passes until the task is aborted.
pub async fn run(store: Arc<RedisStore>, cfg: Arc<Config>, node_id: String) {
    let interval = Duration::from_secs(cfg.retention.janitor_interval_s);
    // A router consumer idle this long with nothing pending belongs to a node that is gone.
    let consumer_idle_ms = (cfg.retention_s() * 1000).min(3_600_000);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // The claim lasts a little less than the interval, so the next tick can claim again.
        let claim_ms = (interval.as_millis() as u64).saturating_sub(100).max(100);
        match store.claim_janitor(&node_id, claim_ms).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "janitor: claiming the pass failed");
                continue;
            }
        }
        match store
            .janitor_pass(&node_id, cfg.retention.janitor_batch, consumer_idle_ms)
            .await
        {
            Ok(r) => {
                metrics::counter!(crate::telemetry::names::JANITOR_PASSES).increment(1);
                for (what, n) in [
                    ("stream_entries", r.stream_entries),
                    ("log_entries", r.log_entries),
                    ("dead_letters", r.dead_letters),
                    ("dropped_marked_dead", r.dropped_marked_dead),
                    ("consumers", r.consumers),
                ] {
                    if n > 0 {
                        metrics::counter!(crate::telemetry::names::JANITOR_REMOVED, "what" => what).increment(n);
                    }
                }
                tracing::debug!(?r, "janitor pass");
            }
            Err(e) => tracing::warn!(error = %e, "janitor pass failed"),
        }
    }
}
