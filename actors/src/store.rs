//! The storage operations the actors need, and nothing more. `hookline::store` implements them
//! on Redis; no actor knows a Redis command.

use crate::model::{AttemptRecord, EndpointConfig, HealthRecord, Next, QueuedDelivery, RoutedEvent, StreamEvent};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("durable store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A write refused because this node no longer holds the shard's lease (another node may
    /// own the endpoint now): nothing was written.
    #[error("not the lease holder of shard {0}: write refused")]
    Fenced(u32),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Read events of one partition for routing as `consumer`: its own unacked entries first
    /// (`pending = true`), then new ones. Recreates the consumer group if Redis lost it.
    async fn read_events(
        &self,
        partition: u32,
        consumer: &str,
        pending: bool,
        count: usize,
        block_ms: u64,
    ) -> StoreResult<Vec<StreamEvent>>;

    /// Take over entries that other consumers left unacked for longer than `min_idle_ms`
    /// (a node that died mid-routing).
    async fn claim_stale_events(
        &self,
        partition: u32,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> StoreResult<Vec<StreamEvent>>;

    /// Write one delivery per (event, endpoint) into each endpoint's queue — creating nothing
    /// that already exists, so routing an event twice is harmless — then ack the events.
    async fn route(&self, events: &[RoutedEvent]) -> StoreResult<()>;

    async fn load_endpoints(&self) -> StoreResult<Vec<EndpointConfig>>;
    async fn get_endpoint(&self, endpoint_id: &str) -> StoreResult<Option<EndpointConfig>>;

    /// Up to `limit` deliveries of the endpoint that are due at `now_ms`, oldest first,
    /// skipping the ones in `exclude` (in flight). An ordered endpoint gets its head only, due
    /// or not, and its `not_before_ms` is also set (a short while ahead) while an event
    /// ingested before it is still being routed: routers on several nodes share a partition,
    /// so a later event can reach the queue first.
    async fn pull_window(
        &self,
        endpoint: &EndpointConfig,
        shard: u32,
        now_ms: u64,
        limit: usize,
        exclude: &[String],
    ) -> StoreResult<Vec<QueuedDelivery>>;

    /// Log attempt number `number` and move the delivery to its next state, atomically.
    /// Fenced: refused (`StoreError::Fenced`, nothing written) unless `owner`, the fencing token
    /// `node#epoch`, is the shard's current holder and epoch, so a node that lost the shard (or
    /// took it again since) cannot overwrite what the new owner records.
    #[allow(clippy::too_many_arguments)]
    async fn record_attempt(
        &self,
        owner: &str,
        endpoint: &EndpointConfig,
        shard: u32,
        event_id: &str,
        number: u32,
        attempt: &AttemptRecord,
        next: &Next,
    ) -> StoreResult<()>;

    /// `record_attempt` for several finished attempts of one endpoint, one result each, in
    /// order. The store may issue them at once (the Redis store does, so they share round
    /// trips on its connections); the default writes them one after another.
    async fn record_attempts(
        &self,
        owner: &str,
        endpoint: &EndpointConfig,
        shard: u32,
        finished: &[crate::model::FinishedAttempt],
    ) -> Vec<StoreResult<()>> {
        let mut results = Vec::with_capacity(finished.len());
        for f in finished {
            results.push(
                self.record_attempt(owner, endpoint, shard, &f.event_id, f.number, &f.record, &f.next)
                    .await,
            );
        }
        results
    }

    /// The endpoint actor is about to stop: set the shard's due entry for the endpoint to its
    /// earliest queued delivery, but not before `not_before_ms` (an open breaker's next probe),
    /// or remove it (empty queue, or `paused`), atomically with reading the queue. An ordered
    /// endpoint waiting on its head's retry passes the head's event id: the store then reads
    /// the head's due time itself, in the same step. Returns that due time.
    async fn settle_idle(
        &self,
        owner: &str,
        endpoint_id: &str,
        shard: u32,
        paused: bool,
        not_before_ms: u64,
        ordered_head: Option<&str>,
    ) -> StoreResult<Option<u64>>;

    async fn load_health(&self, endpoint_id: &str, shard: u32) -> StoreResult<HealthRecord>;
    /// Save an endpoint's health. With `owner` (an endpoint actor's fencing token) it is fenced
    /// like `record_attempt`; `None` is an operator's reset (enable, PATCH), never refused.
    async fn save_health(
        &self,
        owner: Option<&str>,
        endpoint_id: &str,
        shard: u32,
        health: &HealthRecord,
    ) -> StoreResult<()>;

    /// The rate limiter's bucket the last actor of the endpoint left, if it is not full yet.
    async fn load_bucket(&self, endpoint_id: &str, shard: u32) -> StoreResult<Option<crate::limiter::BucketRecord>>;
    /// Save the bucket for the next actor, kept `ttl_ms` (until it would be full); fenced like
    /// `record_attempt`.
    async fn save_bucket(
        &self,
        owner: &str,
        endpoint_id: &str,
        shard: u32,
        bucket: &crate::limiter::BucketRecord,
        ttl_ms: u64,
    ) -> StoreResult<()>;

    /// Ingest an event made by the node itself (e.g. `hookline.endpoint.disabled`) for
    /// `tenant`; it is routed like any other. Returns its id.
    async fn emit_event(&self, tenant: &str, event_type: &str, data: serde_json::Value) -> StoreResult<String>;

    /// Endpoints of a shard with work due at `now_ms`, earliest first, from position `offset`.
    async fn due_endpoints(&self, shard: u32, now_ms: u64, offset: usize, limit: usize) -> StoreResult<Vec<String>>;

    /// The endpoint no longer exists: drop whatever was queued for it since (routed by a node
    /// whose index was stale) and its due entry. Returns how many deliveries were dropped.
    async fn forget_endpoint(&self, endpoint_id: &str, shard: u32) -> StoreResult<u64>;

    /// Disable an endpoint (the receiver asked to stop, e.g. with 410) and tell every node.
    /// Returns the updated config, or `None` if the endpoint is gone.
    async fn disable_endpoint(&self, endpoint_id: &str, reason: &str) -> StoreResult<Option<EndpointConfig>>;

    /// Record this node as alive; returns the number of live nodes (this one included).
    /// Returns `(live nodes, this node's rank among their ids in sorted order)`.
    async fn heartbeat(&self, node_id: &str, ttl_ms: u64) -> StoreResult<(usize, usize)>;
    /// Take or renew the shard's lease for `node_id`. True while the node holds it.
    /// `Some(epoch)` while the node holds it: a new epoch when it was free, the same when the
    /// node already held it. With the node id, the epoch is the fencing token (`node#epoch`)
    /// that `record_attempt` checks.
    async fn hold_lease(&self, shard: u32, node_id: &str, ttl_ms: u64) -> StoreResult<Option<u64>>;
    /// The version counter of each tenant's endpoints (0 if never set), in order.
    async fn tenant_versions(&self, tenants: &[String]) -> StoreResult<Vec<u64>>;
    /// Every endpoint of one tenant.
    async fn tenant_endpoints(&self, tenant: &str) -> StoreResult<Vec<EndpointConfig>>;
    /// Renew the shard's lease only if `node_id` still holds it; never takes a free one. False
    /// means the lease lapsed (or another node took it) since the last renewal: the work this
    /// node was doing on the shard must stop, even if it can take the lease again at once.
    async fn renew_lease(&self, shard: u32, node_id: &str, ttl_ms: u64) -> StoreResult<bool>;
    async fn release_lease(&self, shard: u32, node_id: &str) -> StoreResult<()>;
    /// Remove the node from the live set (clean shutdown).
    async fn leave(&self, node_id: &str) -> StoreResult<()>;
}
