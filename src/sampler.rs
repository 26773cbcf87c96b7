//! The metrics sampler: every `metrics.sample_interval_s` it runs the Prometheus recorder's
//! upkeep and sets the gauges that come from Redis rather than from events in this process.
//!
//! Per node, for the endpoints of the shards it holds (so sums across nodes are totals):
//! - `hookline_deliveries_queued{state}`: `active` (the endpoint is enabled and its breaker
//!   closed: work we owe), `paused` (disabled, or breaker open or half-open: waiting on the
//!   receiver); plus `tenant` / `endpoint` labels when turned on.
//! - `hookline_oldest_queued_delivery_age_seconds`: how long the most overdue delivery of an
//!   active endpoint has been due (0 when none is overdue).
//! - `hookline_drain_time_estimate_seconds`: active queued ÷ recent deliveries per second
//!   (0 with nothing queued; capped at a week when nothing is being delivered).
//! - `hookline_breakers{state}`, `hookline_endpoints_disabled`.
//!
//! Cluster-wide (every node reports the same figure): `hookline_router_lag_seconds`.

use crate::config::Config;
use crate::store::RedisStore;
use hookline_actors::matching::SubscriptionIndex;
use hookline_actors::names;
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The drain estimate's cap: "not draining".
const DRAIN_CAP_S: f64 = 7.0 * 86_400.0;

/// Run until aborted.
pub async fn run(
    store: Arc<RedisStore>,
    index: Arc<SubscriptionIndex>,
    handle: PrometheusHandle,
    cfg: Arc<Config>,
    node_id: String,
) {
    let interval = Duration::from_secs(cfg.metrics.sample_interval_s);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sampler = Sampler {
        labels: names::MetricLabels {
            tenant: cfg.metrics.tenant_labels,
            endpoint: cfg.metrics.endpoint_labels,
        },
        last_delivered: names::DELIVERED.load(Ordering::Relaxed),
        last_at: Instant::now(),
        rate_per_s: 0.0,
        queued_series: HashSet::new(),
    };
    loop {
        ticker.tick().await;
        handle.run_upkeep();
        if let Err(e) = sampler.sample(&store, &index, &node_id, cfg.shards.count).await {
            tracing::debug!(error = %e, "metrics sample failed");
        }
    }
}

struct Sampler {
    labels: names::MetricLabels,
    last_delivered: u64,
    last_at: Instant,
    /// Deliveries per second, smoothed over about a minute.
    rate_per_s: f64,
    /// Label sets of the queued gauge set last time (set to 0 when they vanish).
    queued_series: HashSet<Vec<(String, String)>>,
}

impl Sampler {
    async fn sample(
        &mut self,
        store: &RedisStore,
        index: &SubscriptionIndex,
        node_id: &str,
        shard_count: u32,
    ) -> hookline_actors::store::StoreResult<()> {
        let now_ms = hookline_actors::now_ms();
        metrics::gauge!(names::ROUTER_LAG).set(store.router_lag_ms(now_ms).await? as f64 / 1000.0);

        let held: HashSet<u32> = store.held_shards(node_id, shard_count).await?.into_iter().collect();
        let endpoints = index.endpoints_in(|shard| held.contains(&shard));
        let keys: Vec<(u32, &str)> = endpoints.iter().map(|e| (e.shard, e.endpoint_id.as_str())).collect();
        let samples = store.endpoint_samples(&keys).await?;

        let mut queued: BTreeMap<Vec<(String, String)>, u64> = BTreeMap::new();
        let mut breakers: BTreeMap<&'static str, u64> = [("closed", 0), ("open", 0), ("half_open", 0)].into();
        let (mut active_queued, mut oldest_due, mut disabled) = (0u64, None::<u64>, 0u64);
        for (endpoint, sample) in endpoints.iter().zip(&samples) {
            *breakers.entry(sample.breaker).or_default() += 1;
            disabled += endpoint.disabled as u64;
            let active = !endpoint.disabled && sample.breaker == "closed";
            let state = if active { "active" } else { "paused" };
            let mut series = vec![("state".to_string(), state.to_string())];
            if self.labels.tenant {
                series.push(("tenant".into(), endpoint.tenant.clone()));
            }
            if self.labels.endpoint {
                series.push(("endpoint".into(), endpoint.endpoint_id.clone()));
            }
            *queued.entry(series).or_default() += sample.queued;
            if active {
                active_queued += sample.queued;
                if let Some(due) = sample.head_due_ms.filter(|due| *due <= now_ms) {
                    oldest_due = Some(oldest_due.map_or(due, |o: u64| o.min(due)));
                }
            }
        }
        // Every series seen before but not now goes to 0 (state `active` and `paused` always exist).
        for state in ["active", "paused"] {
            if !self.labels.tenant && !self.labels.endpoint {
                queued.entry(vec![("state".into(), state.into())]).or_default();
            }
        }
        for gone in self
            .queued_series
            .iter()
            .filter(|s| !queued.contains_key(*s))
            .cloned()
            .collect::<Vec<_>>()
        {
            metrics::gauge!(names::QUEUED, to_labels(&gone)).set(0.0);
            self.queued_series.remove(&gone);
        }
        for (series, n) in &queued {
            metrics::gauge!(names::QUEUED, to_labels(series)).set(*n as f64);
            self.queued_series.insert(series.clone());
        }
        for (state, n) in breakers {
            metrics::gauge!(names::BREAKERS, "state" => state).set(n as f64);
        }
        metrics::gauge!(names::ENDPOINTS_DISABLED).set(disabled as f64);
        let age_s = oldest_due.map_or(0.0, |due| now_ms.saturating_sub(due) as f64 / 1000.0);
        metrics::gauge!(names::OLDEST_QUEUED_AGE).set(age_s);

        let delivered = names::DELIVERED.load(Ordering::Relaxed);
        let elapsed = self.last_at.elapsed().as_secs_f64().max(0.001);
        let instant_rate = delivered.saturating_sub(self.last_delivered) as f64 / elapsed;
        let weight = (elapsed / 60.0).min(1.0);
        self.rate_per_s = if self.rate_per_s == 0.0 {
            instant_rate
        } else {
            self.rate_per_s * (1.0 - weight) + instant_rate * weight
        };
        self.last_delivered = delivered;
        self.last_at = Instant::now();
        metrics::gauge!(names::DRAIN_TIME).set(drain_estimate(active_queued, self.rate_per_s));
        Ok(())
    }
}

fn to_labels(series: &[(String, String)]) -> Vec<metrics::Label> {
    series
        .iter()
        .map(|(k, v)| metrics::Label::new(k.clone(), v.clone()))
        .collect()
}

/// Seconds to deliver `queued` at `rate_per_s`.
fn drain_estimate(queued: u64, rate_per_s: f64) -> f64 {
    if queued == 0 {
        0.0
    } else if rate_per_s <= f64::EPSILON {
        DRAIN_CAP_S
    } else {
        (queued as f64 / rate_per_s).min(DRAIN_CAP_S)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_estimates() {
        assert_eq!(drain_estimate(0, 0.0), 0.0);
        assert_eq!(drain_estimate(0, 100.0), 0.0);
        assert_eq!(drain_estimate(1_000, 100.0), 10.0);
        assert_eq!(drain_estimate(5, 0.0), DRAIN_CAP_S);
        assert_eq!(drain_estimate(u64::MAX, 1e-3), DRAIN_CAP_S);
    }
}
