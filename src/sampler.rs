//! The metrics sampler: every `metrics.sample_interval_s` it runs the Prometheus recorder's
//! upkeep and sets the gauges that come from Redis rather than from events in this process.
//!
//! Per node, for the endpoints of the shards it holds (so sums across nodes are totals):
//! - `hookline_deliveries_queued{state}`: `active` (the endpoint is enabled and its breaker
//!   closed: work we owe), `paused` (disabled, or breaker open or half-open: waiting on the
//!   receiver); plus `tenant` / `endpoint` labels when turned on.
//! - `hookline_oldest_queued_delivery_age_seconds`: how long the most overdue delivery of an
//!   active endpoint has been due (0 when none is overdue; retries not yet due do not count;
//!   for an ordered endpoint, its head's retry time).
//! - `hookline_drain_time_estimate_seconds`: deliveries due now at active endpoints ÷ recent
//!   deliveries settled (delivered or dead-lettered) per second (0 with nothing due; capped at
//!   a week when work is due and nothing settles).
//! - `hookline_breakers{state[,tenant]}`, `hookline_endpoints_disabled`.
//!
//! Cluster-wide (every node reports the same figure): `hookline_router_lag_seconds`.
//!
//! It also hands memory the allocator no longer uses back to the OS (`release_free_memory`).

use crate::config::Config;
use crate::store::RedisStore;
use hookline_actors::matching::SubscriptionIndex;
use hookline_actors::names;
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::{BTreeMap, HashMap, HashSet};
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
        last_settled: names::SETTLED.load(Ordering::Relaxed),
        last_at: Instant::now(),
        rate_per_s: 0.0,
        series: HashMap::new(),
    };
    loop {
        ticker.tick().await;
        handle.run_upkeep();
        release_free_memory();
        if let Err(e) = sampler.sample(&store, &index, &node_id, cfg.shards.count).await {
            tracing::debug!(error = %e, "metrics sample failed");
        }
    }
}

/// Give the OS back what glibc's allocator holds but no longer uses. glibc keeps the freed
/// pages of a peak: after 10,000 endpoints were set up and delivered to at once (W6), a node
/// idled at 119 MB of RSS with no endpoint actor left, and at 60 MB after `malloc_trim`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: glibc's malloc_trim takes no pointer and works on the allocator's own state
    // under its locks; it may be called at any time from any thread.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

struct Sampler {
    labels: names::MetricLabels,
    last_settled: u64,
    last_at: Instant,
    /// Deliveries settled (delivered or dead-lettered) per second, smoothed over about a minute.
    rate_per_s: f64,
    /// Label sets each labelled gauge was set with last time (set to 0 when they vanish).
    series: HashMap<&'static str, HashSet<Series>>,
}

type Series = Vec<(String, String)>;

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
        let keys: Vec<(u32, &str, bool)> = endpoints
            .iter()
            .map(|e| (e.shard, e.endpoint_id.as_str(), e.disabled))
            .collect();
        let samples = store.endpoint_samples(&keys, now_ms).await?;

        let mut queued: BTreeMap<Series, f64> = BTreeMap::new();
        let mut breakers: BTreeMap<Series, f64> = BTreeMap::new();
        for state in ["closed", "open", "half_open"] {
            breakers.insert(vec![("state".into(), state.into())], 0.0);
        }
        for state in ["active", "paused"] {
            queued.insert(vec![("state".into(), state.into())], 0.0);
        }
        let (mut active_due, mut oldest_due, mut disabled) = (0u64, None::<u64>, 0u64);
        for (endpoint, sample) in endpoints.iter().zip(&samples) {
            let mut tenant = Vec::new();
            if self.labels.tenant {
                tenant.push(("tenant".to_string(), endpoint.tenant.clone()));
            }
            let mut breaker_series = vec![("state".to_string(), sample.breaker.to_string())];
            breaker_series.extend(tenant.iter().cloned());
            *breakers.entry(breaker_series).or_default() += 1.0;
            disabled += endpoint.disabled as u64;
            let active = !endpoint.disabled && sample.breaker == "closed";
            let mut series = vec![(
                "state".to_string(),
                if active { "active" } else { "paused" }.to_string(),
            )];
            series.extend(tenant);
            if self.labels.endpoint {
                series.push(("endpoint".into(), endpoint.endpoint_id.clone()));
            }
            *queued.entry(series).or_default() += sample.queued as f64;
            if !active || sample.queued == 0 {
                continue;
            }
            // What is due now, and since when. An ordered endpoint's queue is scored by ingest
            // order; its head's retry time is its due-set entry.
            let (due, head) = if endpoint.ordered {
                let head = sample.due_entry_ms.filter(|d| *d <= now_ms);
                (if head.is_some() { sample.queued } else { 0 }, head)
            } else {
                (sample.due_now, sample.head_due_ms.filter(|d| *d <= now_ms))
            };
            active_due += due;
            if let Some(head) = head {
                oldest_due = Some(oldest_due.map_or(head, |o: u64| o.min(head)));
            }
        }
        self.publish(names::QUEUED, queued);
        self.publish(names::BREAKERS, breakers);
        metrics::gauge!(names::ENDPOINTS_DISABLED).set(disabled as f64);
        let age_s = oldest_due.map_or(0.0, |due| now_ms.saturating_sub(due) as f64 / 1000.0);
        metrics::gauge!(names::OLDEST_QUEUED_AGE).set(age_s);

        let settled = names::SETTLED.load(Ordering::Relaxed);
        let elapsed = self.last_at.elapsed().as_secs_f64().max(0.001);
        let instant_rate = settled.saturating_sub(self.last_settled) as f64 / elapsed;
        let weight = (elapsed / 60.0).min(1.0);
        self.rate_per_s = if self.rate_per_s == 0.0 {
            instant_rate
        } else {
            self.rate_per_s * (1.0 - weight) + instant_rate * weight
        };
        self.last_settled = settled;
        self.last_at = Instant::now();
        metrics::gauge!(names::DRAIN_TIME).set(drain_estimate(active_due, self.rate_per_s));
        Ok(())
    }

    /// Set a labelled gauge's series; series set last time but absent now go to 0.
    fn publish(&mut self, name: &'static str, values: BTreeMap<Series, f64>) {
        let previous = self.series.entry(name).or_default();
        for gone in previous.iter().filter(|s| !values.contains_key(*s)) {
            metrics::gauge!(name, to_labels(gone)).set(0.0);
        }
        previous.clear();
        for (series, value) in values {
            metrics::gauge!(name, to_labels(&series)).set(value);
            previous.insert(series);
        }
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
