//! Everything that talks to Redis. No Redis command appears outside this module.
//!
//! `RedisStore` implements the actors' [`Store`] trait (what the router, shard owners and
//! endpoint actors need) and the API's operations (ingest, endpoints, keys, queries). One pooled
//! client serves ordinary commands (fred pipelines concurrent commands on each connection);
//! a dedicated client serves the router's blocking `XREADGROUP`, which holds its connection.

mod janitor;
pub mod keys;
mod log;
mod sample;
mod scripts;

pub use janitor::JanitorReport;
pub use log::DeliveryRow;
pub use sample::EndpointSample;

use crate::config::Config;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::Value;
use hookline_actors::limiter::BucketRecord;
use hookline_actors::model::{AttemptRecord, HealthRecord, Next, QueuedDelivery};
use hookline_actors::store::StoreResult;
use hookline_actors::{EndpointConfig, RoutedEvent, Store, StoreError, StreamEvent};
pub use keys::Keys;
use keys::ROUTER_GROUP;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The exact body every endpoint receives for an event:
/// `{"id","type","timestamp","tenant","data"}`, with `payload` (JSON text) kept byte for byte.
pub fn event_body(event_id: &str, event_type: &str, at_ms: u64, tenant: &str, payload: &str) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    format!(
        r#"{{"id":{},"type":{},"timestamp":{},"tenant":{},"data":{}}}"#,
        q(event_id),
        q(event_type),
        q(&crate::api::rfc3339(at_ms)),
        q(tenant),
        payload
    )
}

/// Most attempt records one RECORD_ATTEMPT call writes (a script blocks Redis while it runs).
const RECORD_BATCH: usize = 64;

/// A fred config from `redis://`, `rediss://` or `redis-cluster://h1:p1,h2:p2` URLs.
pub fn redis_config(url: &str) -> Result<fred::types::config::Config, fred::error::Error> {
    if let Some(rest) = url.strip_prefix("redis-cluster://") {
        // Accept a comma-separated host list; fred wants extra hosts as `?node=` parameters.
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts),
            None => (String::new(), rest),
        };
        let mut hosts = hosts.split(',');
        let first = hosts.next().unwrap_or_default();
        let others: Vec<String> = hosts.map(|h| format!("node={h}")).collect();
        let query = if others.is_empty() {
            String::new()
        } else {
            format!("?{}", others.join("&"))
        };
        return fred::types::config::Config::from_url(&format!("redis-cluster://{auth}{first}{query}"));
    }
    fred::types::config::Config::from_url(url)
}

/// Every failed Redis command passes here (`hookline_redis_errors_total`).
fn unavailable(e: fred::error::Error) -> StoreError {
    metrics::counter!(hookline_actors::names::REDIS_ERRORS).increment(1);
    StoreError::Unavailable(e.to_string())
}

/// A Redis reply that is a string (or bytes), if it is one.
fn text(v: &Value) -> Option<String> {
    v.as_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant: String,
    pub created_at_ms: u64,
}

/// One dead letter, as `GET …/dead-letters` lists it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub event_id: String,
    pub dead_at_ms: u64,
    pub reason: String,
    pub attempts: u32,
}

/// An event ready to be stored: id minted, body built.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: String,
    pub event_type: String,
    pub body: String,
    pub idempotency_key: Option<String>,
    /// Route to this endpoint only (test sends).
    pub only_endpoint: Option<String>,
}

/// What ingest answered.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub event_id: String,
    pub duplicate: bool,
    /// The tenant's ingest limit for this second was spent: nothing was stored.
    pub rate_limited: bool,
}

/// A stored event, as `GET …/events/{id}` needs it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub body: String,
    pub endpoint_ids: Vec<String>,
}

/// A delivery record, as `GET …/deliveries/{id}` needs it.
#[derive(Debug, Clone)]
pub struct StoredDelivery {
    pub status: String,
    pub attempts: Vec<AttemptRecord>,
    pub created_ms: u64,
    pub next_ms: Option<u64>,
    pub reason: Option<String>,
}

pub struct RedisStore {
    pool: Pool,
    /// One client per events partition for its router's blocking reads.
    readers: Vec<Client>,
    subscriber: SubscriberClient,
    keys: Keys,
    retention_s: u64,
    idempotency_window_s: u64,
    shard_count: u32,
    tenant_rate_limit_per_s: u32,
    /// How old an unrouted event may be and still hold back the ordered heads after it
    /// (`ordered_hold_ms`).
    ordered_hold_max_ms: u64,
}

impl RedisStore {
    /// Build the clients and start connecting. Does not wait for Redis: a node whose Redis is
    /// down starts, answers 503 where it needs Redis, and recovers when Redis comes back.
    pub async fn connect(cfg: &Config) -> Result<Arc<RedisStore>, fred::error::Error> {
        let mut config = redis_config(&cfg.redis.url)?;
        // Retry the first connection like any later one: a node may start before its Redis.
        config.fail_fast = false;
        let timeout = Duration::from_millis(cfg.redis.command_timeout_ms);
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
        let pool = builder.build_pool(cfg.redis.pool_size)?;
        // Blocking reads must outlive their BLOCK time, so they get a longer timeout, and each
        // partition's router has its own connection so no read waits behind another.
        builder.with_performance_config(|p| {
            p.default_command_timeout = timeout + Duration::from_millis(cfg.router.block_ms);
        });
        let readers = (0..cfg.router.partitions.max(1))
            .map(|_| builder.build())
            .collect::<Result<Vec<Client>, _>>()?;
        let subscriber = builder.build_subscriber_client()?;
        pool.connect();
        for reader in &readers {
            reader.connect();
        }
        subscriber.connect();
        Ok(Arc::new(RedisStore {
            pool,
            readers,
            subscriber,
            keys: Keys::with_partitions(&cfg.redis.prefix, cfg.router.partitions),
            retention_s: cfg.retention_s(),
            // A key never outlives the event it names.
            idempotency_window_s: cfg.ingest.idempotency_window_s.min(cfg.retention_s()),
            shard_count: cfg.shards.count,
            tenant_rate_limit_per_s: cfg.ingest.tenant_rate_limit_per_s,
            ordered_hold_max_ms: 3 * cfg.router.claim_idle_ms,
        }))
    }

    /// Wait (bounded) for the first connection; false if Redis did not answer in time.
    pub async fn wait_connected(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.pool.wait_for_connect())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn client(&self) -> &Client {
        self.pool.next()
    }

    /// The stream id of the first event of `partition` not yet routed (see
    /// `scripts::FIRST_UNROUTED`); `None` when all are.
    pub(super) async fn first_unrouted(&self, partition: u32) -> StoreResult<Option<String>> {
        let stream = self.keys.events_stream(partition);
        let id = self
            .eval(&scripts::FIRST_UNROUTED, vec![stream], vec![ROUTER_GROUP.to_string()])
            .await?;
        Ok(text(&id).filter(|id| !id.is_empty()))
    }

    /// Run a script (loading it if Redis does not know it yet); its latency is measured per
    /// script (`hookline_redis_command_seconds{op}`).
    async fn eval(&self, script: &Script, keys: Vec<String>, args: Vec<String>) -> StoreResult<Value> {
        let started = std::time::Instant::now();
        let result = script
            .evalsha_with_reload(self.client(), keys, args)
            .await
            .map_err(unavailable);
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

    /// Calls `on_change(endpoint_id)` for every change notification, from any node, for as long
    /// as the process runs; re-subscribes after reconnects.
    pub async fn watch_changes(&self, on_change: impl Fn(String) + Send + 'static) -> StoreResult<()> {
        let mut rx = self.subscriber.message_rx();
        let channel = self.keys.changes_channel();
        self.subscriber.manage_subscriptions();
        self.subscriber.subscribe(channel.clone()).await.map_err(unavailable)?;
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(msg) if *msg.channel == *channel => {
                        if let Some(id) = msg.value.as_string() {
                            on_change(id);
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Ok(())
    }

    async fn ensure_group(&self, partition: u32) -> StoreResult<()> {
        let created: Result<Value, _> = self
            .client()
            .xgroup_create(self.keys.events_stream(partition), ROUTER_GROUP, "0", true)
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.details().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    // ---- ingest -------------------------------------------------------------------------

    /// Store an event durably and append it for routing; with an idempotency key, a key seen
    /// within the window returns the first event's id instead.
    /// KEYS and ARGV of one INGEST script call.
    fn ingest_call(&self, tenant: &str, event: &NewEvent) -> (Vec<String>, Vec<String>) {
        let second = hookline_actors::now_ms() / 1000;
        let mut keys = vec![
            self.keys.events_stream(self.keys.partition_of(tenant)),
            self.keys.event(tenant, &event.event_id),
            self.keys.tenant_rate(tenant, second),
        ];
        if let Some(key) = &event.idempotency_key {
            keys.push(self.keys.idempotency(tenant, key));
        }
        let oldest_kept = hookline_actors::now_ms().saturating_sub(self.retention_s * 1000);
        let args = vec![
            event.event_id.clone(),
            tenant.to_string(),
            event.event_type.clone(),
            event.body.clone(),
            self.retention_s.to_string(),
            self.idempotency_window_s.to_string(),
            format!("{oldest_kept}-0"),
            event.only_endpoint.clone().unwrap_or_default(),
            self.tenant_rate_limit_per_s.to_string(),
        ];
        (keys, args)
    }

    fn ingest_reply(reply: Value) -> StoreResult<Ingested> {
        match reply.into_array().as_slice() {
            [id, outcome] => Ok(Ingested {
                event_id: text(id).ok_or_else(|| StoreError::Corrupt("ingest reply".into()))?,
                duplicate: outcome.as_u64() == Some(1),
                rate_limited: outcome.as_u64() == Some(2),
            }),
            _ => Err(StoreError::Corrupt("ingest reply".into())),
        }
    }

    /// Store an event durably and append it for routing; with an idempotency key, a key seen
    /// within the window returns the first event's id instead.
    pub async fn ingest(
        &self,
        tenant: &str,
        event_id: &str,
        event_type: &str,
        body: &str,
        idempotency_key: Option<&str>,
    ) -> StoreResult<Ingested> {
        let event = NewEvent {
            event_id: event_id.to_string(),
            event_type: event_type.to_string(),
            body: body.to_string(),
            idempotency_key: idempotency_key.map(String::from),
            only_endpoint: None,
        };
        let (keys, args) = self.ingest_call(tenant, &event);
        Self::ingest_reply(self.eval(&scripts::INGEST, keys, args).await?)
    }

    /// Store many events of one tenant in one pipelined round trip: the INGEST calls are
    /// issued together on one connection (fred pipelines concurrent commands), in order, so a
    /// repeated idempotency key within the batch is a duplicate of its first use. One result
    /// per event, in order.
    pub async fn ingest_batch(&self, tenant: &str, events: &[NewEvent]) -> Vec<StoreResult<Ingested>> {
        let client = self.client();
        let calls = events.iter().map(|event| {
            let (keys, args) = self.ingest_call(tenant, event);
            async move {
                let reply = scripts::INGEST
                    .evalsha_with_reload::<Value, _, _>(client, keys, args)
                    .await;
                reply.map_err(unavailable).and_then(Self::ingest_reply)
            }
        });
        join_all(calls).await
    }

    pub async fn get_event(&self, tenant: &str, event_id: &str) -> StoreResult<Option<StoredEvent>> {
        let fields: Vec<Option<String>> = self
            .client()
            .hmget(self.keys.event(tenant, event_id), vec!["body", "eps"])
            .await
            .map_err(unavailable)?;
        let mut it = fields.into_iter();
        let Some(Some(body)) = it.next() else { return Ok(None) };
        let endpoint_ids = it
            .next()
            .flatten()
            .map(|s| s.split(',').filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        Ok(Some(StoredEvent { body, endpoint_ids }))
    }

    // ---- endpoints ----------------------------------------------------------------------

    /// Create or replace an endpoint, then tell every node. An enabled endpoint also gets a
    /// due entry in its shard, so the shard's owner looks at its queue again even if the change
    /// notification is lost (that is what resumes an endpoint that was just enabled).
    pub async fn put_endpoint(&self, cfg: &EndpointConfig, shard: u32) -> StoreResult<()> {
        let json = serde_json::to_string(cfg).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let client = self.client();
        let _: Value = client
            .hset(self.keys.endpoints(), (cfg.id.as_str(), json))
            .await
            .map_err(unavailable)?;
        let _: Value = client
            .zadd(
                self.keys.tenant_endpoints(&cfg.tenant),
                None,
                None,
                false,
                false,
                (cfg.created_at_ms as f64, cfg.id.as_str()),
            )
            .await
            .map_err(unavailable)?;
        if !cfg.disabled {
            let now = hookline_actors::now_ms() as f64;
            let _: Value = client
                .zadd(
                    self.keys.due(shard),
                    None,
                    Some(fred::types::sorted_sets::Ordering::LessThan),
                    false,
                    false,
                    (now, cfg.id.as_str()),
                )
                .await
                .map_err(unavailable)?;
        }
        self.bump_tenant_version(&cfg.tenant).await?;
        self.announce_change(&cfg.id).await
    }

    /// Routers compare this before routing a batch: an endpoint saved before an event was
    /// ingested is seen by whichever router routes it, even if the change notification is late.
    async fn bump_tenant_version(&self, tenant: &str) -> StoreResult<()> {
        let _: Value = self
            .client()
            .incr(self.keys.tenant_version(tenant))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn announce_change(&self, endpoint_id: &str) -> StoreResult<()> {
        let _: Value = self
            .client()
            .publish(self.keys.changes_channel(), endpoint_id)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Delete an endpoint and its pending work; returns how many pending deliveries were dropped.
    pub async fn delete_endpoint(&self, cfg: &EndpointConfig, shard: u32) -> StoreResult<u64> {
        let client = self.client();
        let _: Value = client
            .hdel(self.keys.endpoints(), cfg.id.as_str())
            .await
            .map_err(unavailable)?;
        let _: Value = client
            .zrem(self.keys.tenant_endpoints(&cfg.tenant), cfg.id.as_str())
            .await
            .map_err(unavailable)?;
        use hookline_actors::Store;
        let dropped = self.forget_endpoint(&cfg.id, shard).await?;
        self.bump_tenant_version(&cfg.tenant).await?;
        self.announce_change(&cfg.id).await?;
        Ok(dropped)
    }

    /// A page of a tenant's endpoints, oldest first: `(endpoints, next offset)`.
    pub async fn list_endpoints(
        &self,
        tenant: &str,
        offset: usize,
        limit: usize,
    ) -> StoreResult<(Vec<EndpointConfig>, Option<usize>)> {
        let client = self.client();
        let ids: Vec<String> = client
            .zrange(
                self.keys.tenant_endpoints(tenant),
                offset as i64,
                (offset + limit) as i64,
                None,
                false,
                None,
                false,
            )
            .await
            .map_err(unavailable)?;
        let more = ids.len() > limit;
        let ids: Vec<String> = ids.into_iter().take(limit).collect();
        if ids.is_empty() {
            return Ok((Vec::new(), None));
        }
        let configs: Vec<Option<String>> = client.hmget(self.keys.endpoints(), ids).await.map_err(unavailable)?;
        let endpoints = configs
            .into_iter()
            .flatten()
            .filter_map(|j| serde_json::from_str(&j).ok())
            .collect();
        Ok((endpoints, more.then_some(offset + limit)))
    }

    /// Pending deliveries queued for an endpoint.
    pub async fn backlog(&self, endpoint_id: &str, shard: u32) -> StoreResult<u64> {
        self.client()
            .zcard(self.keys.queue(shard, endpoint_id))
            .await
            .map_err(unavailable)
    }

    // ---- tenant keys --------------------------------------------------------------------

    pub async fn put_api_key(&self, key_hash: &str, record: &ApiKeyRecord) -> StoreResult<()> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let _: Value = self
            .client()
            .hset(self.keys.api_keys(), (key_hash, json))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub async fn get_api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let json: Option<String> = self
            .client()
            .hget(self.keys.api_keys(), key_hash)
            .await
            .map_err(unavailable)?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    // ---- deliveries ---------------------------------------------------------------------

    pub async fn get_delivery(
        &self,
        shard: u32,
        endpoint_id: &str,
        event_id: &str,
    ) -> StoreResult<Option<StoredDelivery>> {
        let fields: std::collections::HashMap<String, String> = self
            .client()
            .hgetall(self.keys.delivery(shard, endpoint_id, event_id))
            .await
            .map_err(unavailable)?;
        let Some(status) = fields.get("status").cloned() else {
            return Ok(None);
        };
        let count: u32 = fields.get("attempts").and_then(|a| a.parse().ok()).unwrap_or(0);
        let attempts = (1..=count)
            .filter_map(|n| fields.get(&format!("a{n}")))
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect();
        Ok(Some(StoredDelivery {
            status,
            attempts,
            created_ms: fields.get("created_ms").and_then(|v| v.parse().ok()).unwrap_or(0),
            next_ms: fields.get("next_ms").and_then(|v| v.parse().ok()).filter(|v| *v > 0),
            reason: fields.get("reason").cloned().filter(|r| !r.is_empty()),
        }))
    }

    /// A page of an endpoint's dead letters, newest first, and the next offset.
    pub async fn dead_letters(
        &self,
        shard: u32,
        endpoint_id: &str,
        offset: usize,
        limit: usize,
    ) -> StoreResult<(Vec<DeadLetter>, Option<usize>)> {
        let client = self.client();
        let entries: Vec<(String, f64)> = client
            .zrange(
                self.keys.dead_letters(shard, endpoint_id),
                offset as i64,
                (offset + limit) as i64,
                None,
                true,
                None,
                true,
            )
            .await
            .map_err(unavailable)?;
        let more = entries.len() > limit;
        let entries: Vec<(String, f64)> = entries.into_iter().take(limit).collect();
        if entries.is_empty() {
            return Ok((Vec::new(), None));
        }
        let pipeline = client.pipeline();
        for (event_id, _) in &entries {
            let _: () = pipeline
                .hmget(
                    self.keys.delivery(shard, endpoint_id, event_id),
                    vec!["reason", "attempts"],
                )
                .await
                .map_err(unavailable)?;
        }
        let details: Vec<Value> = pipeline.all().await.map_err(unavailable)?;
        let letters = entries
            .into_iter()
            .zip(details)
            .map(|((event_id, at), detail)| {
                let fields = detail.into_array();
                DeadLetter {
                    event_id,
                    dead_at_ms: at as u64,
                    reason: fields.first().and_then(text).unwrap_or_default(),
                    attempts: fields.get(1).and_then(text).and_then(|a| a.parse().ok()).unwrap_or(0),
                }
            })
            .collect();
        Ok((letters, more.then_some(offset + limit)))
    }

    /// Event ids of an endpoint's dead letters from `since_ms` up to `until_ms`, oldest first.
    pub async fn dead_letter_ids_between(
        &self,
        shard: u32,
        endpoint_id: &str,
        since_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        self.client()
            .zrangebyscore(
                self.keys.dead_letters(shard, endpoint_id),
                since_ms as i64,
                until_ms as i64,
                false,
                Some((0, limit as i64)),
            )
            .await
            .map_err(unavailable)
    }

    /// Start a new attempt cycle for these deliveries of one endpoint (dead or not); returns
    /// how many exist and were replayed.
    pub async fn replay(&self, shard: u32, endpoint: &EndpointConfig, event_ids: &[String]) -> StoreResult<u64> {
        let endpoint_id = endpoint.id.as_str();
        let mut replayed = 0;
        for chunk in event_ids.chunks(500) {
            let mut keys = vec![
                self.keys.queue(shard, endpoint_id),
                self.keys.due(shard),
                self.keys.dead_letters(shard, endpoint_id),
            ];
            keys.extend(chunk.iter().map(|id| self.keys.delivery(shard, endpoint_id, id)));
            let mut args = vec![
                endpoint_id.to_string(),
                hookline_actors::now_ms().to_string(),
                (endpoint.ordered as u8).to_string(),
            ];
            args.extend(chunk.iter().cloned());
            replayed += self.eval(&scripts::REPLAY, keys, args).await?.as_u64().unwrap_or(0);
        }
        Ok(replayed)
    }

    /// Compare this node's `shards.count` and `router.partitions` with the deployment's, which
    /// the first node recorded. `Some(message)` on a mismatch: keys would map to other shards
    /// and partitions than the other nodes use, and events would be lost.
    pub async fn check_layout(&self, shards: u32, partitions: u32) -> StoreResult<Option<String>> {
        let reply = self
            .eval(
                &scripts::CHECK_LAYOUT,
                vec![self.keys.layout()],
                vec![shards.to_string(), partitions.to_string()],
            )
            .await?;
        let stored: Vec<Option<u32>> = reply
            .into_array()
            .iter()
            .map(|v| text(v).and_then(|t| t.parse().ok()))
            .collect();
        let mut wrong = Vec::new();
        for ((key, ours), theirs) in [("shards.count", shards), ("router.partitions", partitions)]
            .into_iter()
            .zip(stored)
        {
            if let Some(theirs) = theirs.filter(|t| *t != ours) {
                wrong.push(format!("{key} is {ours} here but {theirs} for this deployment"));
            }
        }
        Ok((!wrong.is_empty()).then(|| {
            format!(
                "{} (fixed for the life of a deployment: every node must use the same value)",
                wrong.join("; ")
            )
        }))
    }

    /// SET `key` for the holder of `shard`'s lease only (FENCED_SET); `px_ms` 0: no expiry.
    async fn fenced_set(&self, owner: &str, shard: u32, key: String, value: String, px_ms: u64) -> StoreResult<()> {
        let keys = vec![key, self.keys.lease(shard), self.keys.lease_epoch(shard)];
        let args = vec![value, owner.to_string(), px_ms.to_string()];
        match self.eval(&scripts::FENCED_SET, keys, args).await?.as_i64() {
            Some(-1) => Err(StoreError::Fenced(shard)),
            _ => Ok(()),
        }
    }

    /// KEYS and ARGV of one RECORD_ATTEMPT call for these records of one endpoint.
    fn record_call(
        &self,
        owner: &str,
        endpoint: &EndpointConfig,
        shard: u32,
        finished: &[hookline_actors::model::FinishedAttempt],
    ) -> StoreResult<(Vec<String>, Vec<String>)> {
        let mut keys = Vec::with_capacity(4 + finished.len());
        keys.extend([
            self.keys.queue(shard, &endpoint.id),
            self.keys.dead_letters(shard, &endpoint.id),
            self.keys.lease(shard),
            self.keys.lease_epoch(shard),
        ]);
        let mut args = Vec::with_capacity(3 + 7 * finished.len());
        args.extend([
            owner.to_string(),
            self.retention_s.to_string(),
            (endpoint.ordered as u8).to_string(),
        ]);
        for f in finished {
            let json = serde_json::to_string(&f.record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let (status, next_ms, reason) = match &f.next {
                Next::Delivered => ("delivered", 0, String::new()),
                Next::RetryAt(at) => ("failed", *at, String::new()),
                Next::Dead(reason) => ("dead", 0, reason.clone()),
            };
            keys.push(self.keys.delivery(shard, &endpoint.id, &f.event_id));
            args.extend([
                f.event_id.clone(),
                status.to_string(),
                f.number.to_string(),
                json,
                f.record.at_ms.to_string(),
                next_ms.to_string(),
                reason,
            ]);
        }
        Ok((keys, args))
    }

    /// Is the event still stored (not past retention)?
    pub async fn event_exists(&self, tenant: &str, event_id: &str) -> StoreResult<bool> {
        let n: u64 = self
            .client()
            .exists(self.keys.event(tenant, event_id))
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }
}

/// Parse XREADGROUP / XAUTOCLAIM entries: `[[id, [k, v, …]], …]`. Entries whose data was
/// trimmed come back without fields; they are returned with empty fields so they get acked.
fn parse_entries(partition: u32, entries: Vec<Value>) -> Vec<StreamEvent> {
    entries
        .into_iter()
        .filter_map(|entry| {
            let mut parts = entry.into_array().into_iter();
            let stream_id = text(&parts.next()?)?;
            let fields = parts.next().map(|f| f.into_array()).unwrap_or_default();
            let mut event = StreamEvent {
                partition,
                stream_id,
                ..Default::default()
            };
            for pair in fields.chunks(2) {
                if let [k, v] = pair {
                    let v = text(v).unwrap_or_default();
                    match text(k).as_deref() {
                        Some("e") => event.event_id = v,
                        Some("t") => event.tenant = v,
                        Some("y") => event.event_type = v,
                        Some("o") => event.only_endpoint = Some(v),
                        _ => {}
                    }
                }
            }
            Some(event)
        })
        .collect()
}

/// XREADGROUP replies as `[[stream, entries]]` (RESP2) or `{stream: entries}` (RESP3).
fn xread_entries(partition: u32, reply: Value) -> Vec<StreamEvent> {
    match reply {
        Value::Null => Vec::new(),
        Value::Map(map) => map
            .inner()
            .into_values()
            .flat_map(|entries| parse_entries(partition, entries.into_array()))
            .collect(),
        other => other
            .into_array()
            .into_iter()
            .flat_map(|stream| {
                let mut parts = stream.into_array().into_iter();
                let _name = parts.next();
                parts
                    .next()
                    .map(|e| parse_entries(partition, e.into_array()))
                    .unwrap_or_default()
            })
            .collect(),
    }
}

/// How long an ordered head waits before looking again when the event at the routing mark
/// (stream id `mark`) may precede it: briefly while routing is merely under way, longer while
/// the entry sits unacked (a dead node's, until another router claims it), at most a second.
/// `None` once the event is `max_ms` old: a router stuck on one event (failing to route it
/// again and again) must not hold every ordered endpoint of its partition for ever; the
/// router-lag gauge shows it meanwhile.
fn ordered_hold_ms(now_ms: u64, mark: &str, max_ms: u64) -> Option<u64> {
    let mark_ms = hookline_actors::model::stream_id_ms(mark).unwrap_or(now_ms);
    let age = now_ms.saturating_sub(mark_ms);
    (age < max_ms).then(|| (age / 2).clamp(20, 1_000))
}

fn is_nogroup(e: &fred::error::Error) -> bool {
    e.details().contains("NOGROUP")
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn read_events(
        &self,
        partition: u32,
        consumer: &str,
        pending: bool,
        count: usize,
        block_ms: u64,
    ) -> StoreResult<Vec<StreamEvent>> {
        let id = if pending { "0" } else { ">" };
        let block = (!pending && block_ms > 0).then_some(block_ms);
        let stream = self.keys.events_stream(partition);
        let reader = self.readers[partition as usize % self.readers.len()].clone();
        let read = |client: Client| {
            let stream = stream.clone();
            let consumer = consumer.to_string();
            async move {
                client
                    .xreadgroup::<Value, _, _, _, _>(
                        ROUTER_GROUP,
                        consumer,
                        Some(count as u64),
                        block,
                        false,
                        stream,
                        id,
                    )
                    .await
            }
        };
        match read(reader).await {
            Ok(reply) => Ok(xread_entries(partition, reply)),
            Err(e) if is_nogroup(&e) => {
                // Redis lost the group (restarted empty, or a fresh deployment): make it again.
                self.ensure_group(partition).await?;
                Ok(Vec::new())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn claim_stale_events(
        &self,
        partition: u32,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> StoreResult<Vec<StreamEvent>> {
        let reply: Result<Value, _> = self
            .client()
            .xautoclaim(
                self.keys.events_stream(partition),
                ROUTER_GROUP,
                consumer,
                min_idle_ms,
                "0-0",
                Some(count as u64),
                false,
            )
            .await;
        match reply {
            Ok(reply) => Ok(reply
                .into_array()
                .into_iter()
                .nth(1)
                .map(|e| parse_entries(partition, e.into_array()))
                .unwrap_or_default()),
            Err(e) if is_nogroup(&e) => self.ensure_group(partition).await.map(|_| Vec::new()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn route(&self, events: &[RoutedEvent]) -> StoreResult<()> {
        use std::collections::BTreeMap;
        let now = hookline_actors::now_ms();
        // One script call per endpoint for the whole batch.
        let mut per_endpoint: BTreeMap<(&str, u32), Vec<&StreamEvent>> = BTreeMap::new();
        for routed in events {
            for (endpoint_id, shard) in &routed.endpoints {
                per_endpoint
                    .entry((endpoint_id.as_str(), *shard))
                    .or_default()
                    .push(&routed.event);
            }
        }
        let calls = per_endpoint.into_iter().map(|((endpoint_id, shard), evts)| {
            let mut keys = vec![
                self.keys.queue(shard, endpoint_id),
                self.keys.due(shard),
                self.keys.delivery_log(shard, endpoint_id),
            ];
            let mut args = vec![endpoint_id.to_string(), self.retention_s.to_string(), now.to_string()];
            for evt in evts {
                keys.push(self.keys.delivery(shard, endpoint_id, &evt.event_id));
                args.push(evt.event_id.clone());
                args.push(evt.order_score().to_string());
            }
            self.eval(&scripts::ROUTE, keys, args)
        });
        for result in join_all(calls).await {
            result?;
        }
        // Remember which endpoints each event went to (for GET …/events/{id}) and ack: one
        // ACK_ROUTED call per partition (all its keys share the partition's slot).
        let mut per_partition: BTreeMap<u32, (Vec<String>, Vec<String>, Vec<String>)> = BTreeMap::new();
        for routed in events {
            let (ids, keys, eps) = per_partition.entry(routed.event.partition).or_default();
            ids.push(routed.event.stream_id.clone());
            if !routed.endpoints.is_empty() {
                keys.push(self.keys.event(&routed.event.tenant, &routed.event.event_id));
                let list: Vec<&str> = routed.endpoints.iter().map(|(id, _)| id.as_str()).collect();
                eps.push(list.join(","));
            }
        }
        for (partition, (ids, event_keys, eps)) in per_partition {
            let mut keys = vec![self.keys.events_stream(partition)];
            keys.extend(event_keys);
            let mut args = vec![ROUTER_GROUP.to_string(), ids.len().to_string()];
            args.extend(ids);
            args.extend(eps);
            self.eval(&scripts::ACK_ROUTED, keys, args).await?;
        }
        metrics::counter!(hookline_actors::names::EVENTS_ROUTED).increment(events.len() as u64);
        Ok(())
    }

    async fn load_endpoints(&self) -> StoreResult<Vec<EndpointConfig>> {
        let all: std::collections::HashMap<String, String> = self
            .client()
            .hgetall(self.keys.endpoints())
            .await
            .map_err(unavailable)?;
        Ok(all
            .into_values()
            .filter_map(|j| serde_json::from_str(&j).ok())
            .collect())
    }

    async fn get_endpoint(&self, endpoint_id: &str) -> StoreResult<Option<EndpointConfig>> {
        let json: Option<String> = self
            .client()
            .hget(self.keys.endpoints(), endpoint_id)
            .await
            .map_err(unavailable)?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn pull_window(
        &self,
        endpoint: &EndpointConfig,
        shard: u32,
        now_ms: u64,
        limit: usize,
        exclude: &[String],
    ) -> StoreResult<Vec<QueuedDelivery>> {
        let client = self.client();
        let queue = self.keys.queue(shard, &endpoint.id);
        // An ordered endpoint works its head only, due or not: a head waiting for its retry
        // holds back the rest (its due time comes back as `not_before_ms`). The routing mark
        // is read first: every event before it was in the queue before the head was read.
        let mut hold_ms = None;
        let ids: Vec<String> = if endpoint.ordered {
            let mark = self.first_unrouted(self.keys.partition_of(&endpoint.tenant)).await?;
            let head: Vec<(String, f64)> = client
                .zrange(queue, 0, 0, None, false, None, true)
                .await
                .map_err(unavailable)?;
            if let (Some((id, score)), Some(mark)) = (head.first(), &mark) {
                if *score >= hookline_actors::model::order_score(mark) {
                    hold_ms = ordered_hold_ms(now_ms, mark, self.ordered_hold_max_ms);
                    if hold_ms.is_none() {
                        tracing::debug!(endpoint_id = %endpoint.id, event_id = %id, mark = %mark,
                            "an unrouted event held this ordered head too long; it goes ahead");
                    }
                }
            }
            head.into_iter().map(|(id, _)| id).collect()
        } else {
            client
                .zrangebyscore(
                    queue,
                    "-inf".to_string(),
                    now_ms as i64,
                    false,
                    Some((0, (limit + exclude.len()) as i64)),
                )
                .await
                .map_err(unavailable)?
        };
        let ids: Vec<String> = ids.into_iter().filter(|id| !exclude.contains(id)).take(limit).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = client.pipeline();
        for id in &ids {
            let _: () = pipeline
                .hmget(
                    self.keys.delivery(shard, &endpoint.id, id),
                    vec!["attempts", "cycle_from", "next_ms"],
                )
                .await
                .map_err(unavailable)?;
            let _: () = pipeline
                .hget(self.keys.event(&endpoint.tenant, id), "body")
                .await
                .map_err(unavailable)?;
        }
        let replies: Vec<Value> = pipeline.all().await.map_err(unavailable)?;
        Ok(ids
            .into_iter()
            .zip(replies.chunks(2))
            .map(|(event_id, pair)| {
                let counts = pair.first().cloned().map(Value::into_array).unwrap_or_default();
                let count = |i: usize| {
                    counts
                        .get(i)
                        .and_then(text)
                        .and_then(|a| a.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                QueuedDelivery {
                    event_id,
                    attempts: count(0) as u32,
                    cycle_base: count(1) as u32,
                    body: pair.get(1).and_then(text).map(Arc::from),
                    not_before_ms: match hold_ms {
                        // An event before this head may still be on its way to the queue.
                        Some(hold) => count(2).max(now_ms + hold),
                        None if endpoint.ordered => count(2),
                        None => 0,
                    },
                }
            })
            .collect())
    }

    async fn record_attempt(
        &self,
        owner: &str,
        endpoint: &EndpointConfig,
        shard: u32,
        event_id: &str,
        number: u32,
        attempt: &AttemptRecord,
        next: &Next,
    ) -> StoreResult<()> {
        let finished = hookline_actors::model::FinishedAttempt {
            event_id: event_id.to_string(),
            number,
            record: attempt.clone(),
            next: next.clone(),
        };
        self.record_attempts(owner, endpoint, shard, std::slice::from_ref(&finished))
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::Corrupt("record_attempt reply".into())))
    }

    /// One RECORD_ATTEMPT call per `RECORD_BATCH` records (the fence is read once per call).
    async fn record_attempts(
        &self,
        owner: &str,
        endpoint: &EndpointConfig,
        shard: u32,
        finished: &[hookline_actors::model::FinishedAttempt],
    ) -> Vec<StoreResult<()>> {
        let calls = finished.chunks(RECORD_BATCH).map(|chunk| async move {
            let written = async {
                let (keys, args) = self.record_call(owner, endpoint, shard, chunk)?;
                let reply = self.eval(&scripts::RECORD_ATTEMPT, keys, args).await?;
                if reply.as_i64() == Some(-1) {
                    return Err(StoreError::Fenced(shard));
                }
                match reply.into_array().len() {
                    n if n == chunk.len() => Ok(()),
                    _ => Err(StoreError::Corrupt("record_attempt reply".into())),
                }
            };
            // A call is one script: its records are written, or refused, together.
            std::iter::repeat_n(written.await, chunk.len())
        });
        join_all(calls).await.into_iter().flatten().collect()
    }

    async fn settle_idle(
        &self,
        owner: &str,
        endpoint_id: &str,
        shard: u32,
        paused: bool,
        not_before_ms: u64,
        ordered_head: Option<&str>,
    ) -> StoreResult<Option<u64>> {
        let mut keys = vec![
            self.keys.queue(shard, endpoint_id),
            self.keys.due(shard),
            self.keys.lease(shard),
            self.keys.lease_epoch(shard),
        ];
        let mut args = vec![
            endpoint_id.to_string(),
            (paused as u8).to_string(),
            not_before_ms.to_string(),
            owner.to_string(),
        ];
        if let Some(head) = ordered_head {
            keys.push(self.keys.delivery(shard, endpoint_id, head));
            args.push(head.to_string());
        }
        let reply = self.eval(&scripts::SETTLE_IDLE, keys, args).await?;
        if reply.as_i64() == Some(-1) {
            return Err(StoreError::Fenced(shard));
        }
        Ok(text(&reply)
            .and_then(|s| s.parse::<f64>().ok())
            .map(|f| f as u64)
            .or(reply.as_u64()))
    }

    async fn load_health(&self, endpoint_id: &str, shard: u32) -> StoreResult<HealthRecord> {
        let json: Option<String> = self
            .client()
            .get(self.keys.health(shard, endpoint_id))
            .await
            .map_err(unavailable)?;
        // A record this version cannot read starts the endpoint healthy rather than stuck.
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default())
    }

    async fn save_health(
        &self,
        owner: Option<&str>,
        endpoint_id: &str,
        shard: u32,
        health: &HealthRecord,
    ) -> StoreResult<()> {
        let json = serde_json::to_string(health).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let key = self.keys.health(shard, endpoint_id);
        let Some(owner) = owner else {
            let _: Value = self
                .client()
                .set(key, json, None, None, false)
                .await
                .map_err(unavailable)?;
            return Ok(());
        };
        self.fenced_set(owner, shard, key, json, 0).await
    }

    async fn load_bucket(&self, endpoint_id: &str, shard: u32) -> StoreResult<Option<BucketRecord>> {
        let json: Option<String> = self
            .client()
            .get(self.keys.bucket(shard, endpoint_id))
            .await
            .map_err(unavailable)?;
        // One this version cannot read starts a full bucket, as after expiry.
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    async fn save_bucket(
        &self,
        owner: &str,
        endpoint_id: &str,
        shard: u32,
        bucket: &BucketRecord,
        ttl_ms: u64,
    ) -> StoreResult<()> {
        let json = serde_json::to_string(bucket).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let key = self.keys.bucket(shard, endpoint_id);
        self.fenced_set(owner, shard, key, json, ttl_ms.max(1)).await
    }

    async fn emit_event(&self, tenant: &str, event_type: &str, data: serde_json::Value) -> StoreResult<String> {
        let now = hookline_actors::now_ms();
        let event_id = crate::ids::new_event_id(now);
        let body = event_body(&event_id, event_type, now, tenant, &data.to_string());
        self.ingest(tenant, &event_id, event_type, &body, None)
            .await
            .map(|i| i.event_id)
    }

    async fn due_endpoints(&self, shard: u32, now_ms: u64, offset: usize, limit: usize) -> StoreResult<Vec<String>> {
        self.client()
            .zrangebyscore(
                self.keys.due(shard),
                "-inf".to_string(),
                now_ms as i64,
                false,
                Some((offset as i64, limit as i64)),
            )
            .await
            .map_err(unavailable)
    }

    async fn forget_endpoint(&self, endpoint_id: &str, shard: u32) -> StoreResult<u64> {
        let keys = vec![
            self.keys.queue(shard, endpoint_id),
            self.keys.due(shard),
            self.keys.dead_letters(shard, endpoint_id),
            self.keys.health(shard, endpoint_id),
            self.keys.delivery_log(shard, endpoint_id),
            self.keys.dropped(shard, endpoint_id),
        ];
        let args = vec![endpoint_id.to_string(), self.retention_s.to_string()];
        let dropped = self
            .eval(&scripts::DELETE_ENDPOINT_WORK, keys, args)
            .await?
            .as_u64()
            .unwrap_or(0);
        if dropped > 0 {
            // The janitor marks their records dead in bounded steps (a crash before this line
            // leaves them pending until retention: the `dropped` set has a TTL).
            let _: Value = self
                .client()
                .sadd(self.keys.dropping(), format!("{shard}:{endpoint_id}"))
                .await
                .map_err(unavailable)?;
            metrics::counter!(crate::telemetry::names::DELIVERIES_DROPPED).increment(dropped);
        }
        Ok(dropped)
    }

    async fn disable_endpoint(&self, endpoint_id: &str, reason: &str) -> StoreResult<Option<EndpointConfig>> {
        // Only the endpoint's owner node does this, and API writes are last-writer-wins like
        // every other endpoint change.
        let Some(mut cfg) = self.get_endpoint(endpoint_id).await? else {
            return Ok(None);
        };
        cfg.disabled = true;
        cfg.disabled_reason = Some(reason.to_string());
        cfg.updated_at_ms = hookline_actors::now_ms();
        let shard = hookline_actors::shard::shard_of(endpoint_id, self.shard_count);
        self.put_endpoint(&cfg, shard).await?;
        Ok(Some(cfg))
    }

    async fn heartbeat(&self, node_id: &str, ttl_ms: u64) -> StoreResult<(usize, usize)> {
        let now = hookline_actors::now_ms();
        let reply = self
            .eval(
                &scripts::HEARTBEAT,
                vec![self.keys.nodes()],
                vec![node_id.to_string(), now.to_string(), ttl_ms.to_string()],
            )
            .await?;
        let reply = reply.into_array();
        let number = |i: usize| reply.get(i).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        Ok((number(0).max(1), number(1)))
    }

    async fn hold_lease(&self, shard: u32, node_id: &str, ttl_ms: u64) -> StoreResult<Option<u64>> {
        let reply = self
            .eval(
                &scripts::HOLD_LEASE,
                vec![self.keys.lease(shard), self.keys.lease_epoch(shard)],
                vec![node_id.to_string(), ttl_ms.to_string()],
            )
            .await?;
        Ok(reply.as_u64())
    }

    async fn tenant_versions(&self, tenants: &[String]) -> StoreResult<Vec<u64>> {
        if tenants.is_empty() {
            return Ok(Vec::new());
        }
        // One pipelined GET per tenant, not MGET: the keys are in different cluster slots.
        let pipeline = self.client().pipeline();
        for tenant in tenants {
            let _: () = pipeline
                .get(self.keys.tenant_version(tenant))
                .await
                .map_err(unavailable)?;
        }
        let versions: Vec<Option<u64>> = pipeline.all().await.map_err(unavailable)?;
        Ok(versions.into_iter().map(|v| v.unwrap_or(0)).collect())
    }

    async fn tenant_endpoints(&self, tenant: &str) -> StoreResult<Vec<EndpointConfig>> {
        let ids = self.tenant_endpoint_ids(tenant).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let configs: Vec<Option<String>> = self
            .client()
            .hmget(self.keys.endpoints(), ids)
            .await
            .map_err(unavailable)?;
        Ok(configs
            .into_iter()
            .flatten()
            .filter_map(|j| serde_json::from_str(&j).ok())
            .collect())
    }

    async fn renew_lease(&self, shard: u32, node_id: &str, ttl_ms: u64) -> StoreResult<bool> {
        let reply = self
            .eval(
                &scripts::RENEW_LEASE,
                vec![self.keys.lease(shard)],
                vec![node_id.to_string(), ttl_ms.to_string()],
            )
            .await?;
        Ok(reply.as_u64() == Some(1))
    }

    async fn release_lease(&self, shard: u32, node_id: &str) -> StoreResult<()> {
        self.eval(
            &scripts::RELEASE_LEASE,
            vec![self.keys.lease(shard)],
            vec![node_id.to_string()],
        )
        .await
        .map(|_| ())
    }

    async fn leave(&self, node_id: &str) -> StoreResult<()> {
        let _: Value = self
            .client()
            .zrem(self.keys.nodes(), node_id)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Await futures concurrently (fred pipelines their commands onto its connections), without
/// requiring them to be `'static` as spawned tasks would.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
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
    use super::ordered_hold_ms;

    #[test]
    fn an_ordered_head_looks_again_soon_while_routing_is_under_way_and_gives_up_on_a_stuck_router() {
        let (now, max) = (1_763_870_000_000, 90_000);
        let hold = |mark: String| ordered_hold_ms(now, &mark, max);
        // Routing just began (or Redis's clock runs ahead of ours): the shortest wait.
        assert_eq!(hold(format!("{}-0", now - 3)), Some(20));
        assert_eq!(hold(format!("{}-5", now + 40)), Some(20));
        // Unacked for a while (a dead node's entry, until it is claimed): half its age...
        assert_eq!(hold(format!("{}-0", now - 600)), Some(300));
        // ...but never more than a second, so the head follows soon after the claim.
        assert_eq!(hold(format!("{}-0", now - 30_000)), Some(1_000));
        assert_eq!(hold(format!("{}-0", now - max + 1)), Some(1_000));
        // A router stuck on one event holds ordered endpoints no longer than `max`.
        assert_eq!(hold(format!("{}-0", now - max)), None);
        // An id that does not parse counts as fresh.
        assert_eq!(hold("junk".into()), Some(20));
    }
}
