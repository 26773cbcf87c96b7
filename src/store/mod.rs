//! Everything that talks to Redis. No Redis command appears outside this module.
//!
//! `RedisStore` serves the API (ingest, endpoints, keys, queries) with its own methods, and the
//! actors through their three store traits (`adapter.rs`: `RouterStore`, `LeaseStore`,
//! `EndpointStore`). One file per concern:
//!
//! | file | what |
//! |---|---|
//! | `ingest.rs` | ingest (INGEST), events read back |
//! | `ingest_commit.rs` | lone events written in groups (one round trip for those waiting) |
//! | `bodies.rs` | the bodies of events this node stored lately, kept for its own pulls |
//! | `endpoints.rs` | endpoint configs (compare-and-set changes), tenant index and version, change notifications |
//! | `audit.rs` | the audit log: a change and its entry in one script (AUDITED), the merged listing |
//! | `api_keys.rs` | tenant API keys |
//! | `console.rs` | console sign-in sessions |
//! | `sources.rs` | inbound sources, their rejection logs and request counters |
//! | `catalogue.rs` | event types, tenant settings, the catalogue's change notification |
//! | `search.rs` | finding a tenant's events in its partition's stream (bounded reads) |
//! | `seal.rs`, `reseal.rs` | secrets at rest: sealed with AES-256-GCM under `security.encryption_keys`; the pass that seals them all again under the first key |
//! | `deliveries.rs` | delivery records, dead letters, replay |
//! | `stream.rs` | events streams, routing, the routing mark, the deployment layout |
//! | `leases.rs` | membership, shard leases, due sets |
//! | `work.rs` | an endpoint actor's window, records, idle settling, health, bucket (fenced) |
//! | `log.rs`, `sample.rs`, `janitor.rs` | the delivery list, the sampler's reads, retention |
//! | `keys.rs`, `scripts.rs` | every key, every Lua script |
//! | `error.rs` | the one conversion of Redis and JSON errors |
//!
//! One pooled client serves ordinary commands (fred pipelines concurrent commands on each
//! connection); a dedicated client per events partition serves its router's blocking
//! `XREADGROUP`, which holds its connection; a subscriber client serves change notifications.

mod adapter;
pub mod api_keys;
pub mod audit;
mod bodies;
mod catalogue;
mod cluster;
mod console;
mod deliveries;
pub mod endpoints;
mod error;
mod event_record;
mod ingest;
mod ingest_commit;
mod janitor;
pub mod keys;
mod leases;
mod log;
mod notices;
mod replication;
mod reseal;
mod sample;
mod scripts;
pub mod seal;
pub mod search;
pub mod sources;
pub mod stats;
mod stream;
mod work;

pub use api_keys::ApiKeyRecord;
pub use audit::{AuditEntry, Written};
pub use deliveries::{DeadLetter, StoredDelivery};
pub use error::{Error, Result};
pub use ingest::{Ingested, StoredEvent};
pub use janitor::JanitorReport;
pub use keys::Keys;
pub use log::DeliveryRow;
pub use replication::Replicated;
pub use reseal::ResealReport;
pub use sample::EndpointSample;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::Value;
use std::sync::Arc;
use std::time::Duration;

/// What the store needs from the configuration (`Config::store_settings`).
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `redis://`, `rediss://` or `redis-cluster://h1:p1,h2:p2` (`redis.url`).
    pub url: String,
    pub prefix: String,
    pub pool_size: usize,
    pub command_timeout_ms: u64,
    /// The router's blocking read time: its connections wait that much longer.
    pub router_block_ms: u64,
    pub partitions: u32,
    pub shard_count: u32,
    /// `notifications.dead_letter_interval_s`: the janitor sends the notices it held back.
    pub dead_letter_interval_s: u64,
    pub retention_s: u64,
    /// How long audit entries are kept (`retention.audit_days`).
    pub audit_retention_s: u64,
    /// Never longer than retention: a key never outlives the event it names.
    pub idempotency_window_s: u64,
    pub tenant_rate_limit_per_s: u32,
    /// `security.encryption_keys`: the first seals secrets, every one opens them.
    pub encryption_keys: Vec<String>,
    /// `redis.wait_replicas`, `redis.wait_timeout_ms`: replicas that must hold an ingested
    /// event before ingest answers.
    pub wait_replicas: u32,
    pub wait_timeout_ms: u64,
    /// `delivery.body_cache_mb` in bytes: the bodies of events this node stored, kept for its
    /// own pulls (`bodies.rs`).
    pub body_cache_bytes: usize,
}

/// A fred config from `redis://`, `rediss://` or `redis-cluster://h1:p1,h2:p2` URLs.
///
/// `redis-sentinel://[auth@]s1:26379,s2:26379/<master name>`: the master named there, found and
/// followed (after a failover) through those sentinels.
pub fn redis_config(url: &str) -> std::result::Result<fred::types::config::Config, fred::error::Error> {
    // fred wants extra hosts as `?node=` parameters, and a sentinel's master name as
    // `?sentinelServiceName=`.
    let split = |rest: &str| {
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts.to_string()),
            None => (String::new(), rest.to_string()),
        };
        let mut list = hosts.split(',').map(String::from).collect::<Vec<_>>().into_iter();
        let first = list.next().unwrap_or_default();
        (auth, first, list.map(|h| format!("node={h}")).collect::<Vec<_>>())
    };
    if let Some(rest) = url.strip_prefix("redis-cluster://") {
        let (auth, first, others) = split(rest);
        let query = if others.is_empty() {
            String::new()
        } else {
            format!("?{}", others.join("&"))
        };
        return fred::types::config::Config::from_url(&format!("redis-cluster://{auth}{first}{query}"));
    }
    if let Some(rest) = url.strip_prefix("redis-sentinel://") {
        let (hosts, master) = rest.rsplit_once('/').unwrap_or((rest, ""));
        if master.is_empty() {
            return Err(fred::error::Error::new(
                fred::error::ErrorKind::Config,
                "redis-sentinel:// needs the master's name after the hosts: …/mymaster",
            ));
        }
        let (auth, first, others) = split(hosts);
        let mut query = vec![format!("sentinelServiceName={master}")];
        query.extend(others);
        return fred::types::config::Config::from_url(&format!("redis-sentinel://{auth}{first}/0?{}", query.join("&")));
    }
    fred::types::config::Config::from_url(url)
}

pub struct RedisStore {
    pool: Pool,
    /// One client per events partition for its router's blocking reads.
    readers: Vec<Client>,
    subscriber: SubscriberClient,
    keys: Keys,
    retention_s: u64,
    audit_retention_s: u64,
    idempotency_window_s: u64,
    shard_count: u32,
    dead_letter_interval_s: u64,
    tenant_rate_limit_per_s: u32,
    /// Seals secrets on their way into Redis and opens them on the way out.
    sealer: seal::Sealer,
    wait_replicas: u32,
    wait_timeout_ms: u64,
    /// Bodies of the events this node stored lately, for its own pulls.
    bodies: bodies::RecentBodies,
    /// Writes lone events in groups, per events partition (`ingest_commit`).
    committer: ingest_commit::Committer,
}

impl RedisStore {
    /// Build the clients and start connecting. Does not wait for Redis: a node whose Redis is
    /// down starts, answers 503 where it needs Redis, and recovers when Redis comes back.
    pub async fn connect(cfg: &StoreSettings) -> std::result::Result<Arc<RedisStore>, fred::error::Error> {
        let mut config = redis_config(&cfg.url)?;
        // Retry the first connection like any later one: a node may start before its Redis.
        config.fail_fast = false;
        let timeout = Duration::from_millis(cfg.command_timeout_ms);
        let mut builder = Builder::from_config(config);
        builder
            .with_performance_config(|p| {
                p.default_command_timeout = timeout;
            })
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = timeout;
                c.max_command_attempts = 2;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let pool = builder.build_pool(cfg.pool_size)?;
        // Blocking reads must outlive their BLOCK time, so they get a longer timeout, and each
        // partition's router has its own connection so no read waits behind another.
        builder.with_performance_config(|p| {
            p.default_command_timeout = timeout + Duration::from_millis(cfg.router_block_ms);
        });
        let readers = (0..cfg.partitions.max(1))
            .map(|_| builder.build())
            .collect::<std::result::Result<Vec<Client>, _>>()?;
        // Work announcements (`P:work`) share the subscriber with config changes: room for a
        // burst, so a change notice is not dropped behind them.
        builder.with_performance_config(|p| p.broadcast_channel_capacity = 4096);
        let subscriber = builder.build_subscriber_client()?;
        pool.connect();
        for reader in &readers {
            reader.connect();
        }
        subscriber.connect();
        let sealer = seal::Sealer::new(&cfg.encryption_keys).map_err(|e| {
            fred::error::Error::new(fred::error::ErrorKind::Config, format!("security.encryption_keys: {e}"))
        })?;
        Ok(Arc::new(RedisStore {
            committer: ingest_commit::Committer::start(pool.clone(), cfg.retention_s, cfg.partitions),
            bodies: bodies::RecentBodies::new(cfg.body_cache_bytes, cfg.retention_s),
            sealer,
            wait_replicas: cfg.wait_replicas,
            wait_timeout_ms: cfg.wait_timeout_ms,
            pool,
            readers,
            subscriber,
            keys: Keys::with_partitions(&cfg.prefix, cfg.partitions),
            retention_s: cfg.retention_s,
            audit_retention_s: cfg.audit_retention_s,
            idempotency_window_s: cfg.idempotency_window_s.min(cfg.retention_s),
            shard_count: cfg.shard_count,
            dead_letter_interval_s: cfg.dead_letter_interval_s,
            tenant_rate_limit_per_s: cfg.tenant_rate_limit_per_s,
        }))
    }

    /// Wait (bounded) for the first connection; false if Redis did not answer in time.
    pub async fn wait_connected(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.pool.wait_for_connect())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Are secrets sealed on their way into Redis (is there an encryption key)?
    pub fn seals_secrets(&self) -> bool {
        self.sealer.encrypts()
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn client(&self) -> &Client {
        self.pool.next()
    }

    /// Run a script (loading it if Redis does not know it yet); its latency is measured per
    /// script (`hookline_redis_command_seconds{op}`).
    async fn eval(&self, script: &Script, keys: Vec<String>, args: Vec<String>) -> Result<Value> {
        self.eval_on(self.client(), script, keys, args).await
    }

    /// `eval` on this client (a `WAIT` after it covers what it wrote).
    async fn eval_on(&self, client: &Client, script: &Script, keys: Vec<String>, args: Vec<String>) -> Result<Value> {
        let started = std::time::Instant::now();
        let result = script
            .evalsha_with_reload(client, keys, args)
            .await
            .map_err(Error::from);
        metrics::histogram!(hookline_actors::names::REDIS_LATENCY, "op" => scripts::name_of(script))
            .record(started.elapsed().as_secs_f64());
        result
    }

    pub async fn ping(&self) -> bool {
        self.client().ping::<String>(None).await.is_ok()
    }

    pub async fn shutdown(&self) {
        let _ = self.subscriber.quit().await;
        for reader in &self.readers {
            let _ = reader.quit().await;
        }
        let _ = self.pool.quit().await;
    }
}

/// A Redis reply that is a string (or bytes), if it is one.
fn text(v: &Value) -> Option<String> {
    v.as_string()
}

/// Await futures concurrently (fred pipelines their commands onto its connections), without
/// requiring them to be `'static` as spawned tasks would.
pub async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, slot) in pending.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *slot = Some(value),
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use fred::types::config::ServerConfig;

    #[test]
    fn sentinel_urls_name_their_sentinels_and_master() {
        let cfg = super::redis_config("redis-sentinel://s1:26379,s2:26380/mymaster").unwrap();
        match cfg.server {
            ServerConfig::Sentinel {
                hosts, service_name, ..
            } => {
                assert_eq!(service_name, "mymaster");
                let mut hosts: Vec<String> = hosts.iter().map(|h| format!("{}:{}", h.host, h.port)).collect();
                hosts.sort();
                assert_eq!(hosts, ["s1:26379", "s2:26380"]);
            }
            other => panic!("not a sentinel config: {other:?}"),
        }
        assert!(
            super::redis_config("redis-sentinel://s1:26379").is_err(),
            "no master name"
        );
    }
}
