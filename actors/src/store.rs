//! The storage operations the actors need, and nothing more, as one trait per client:
//! [`RouterStore`] (the router), [`LeaseStore`] (the lease manager and shard owners),
//! [`EndpointStore`] (the endpoint actor). `hookline::store` implements all three on Redis; no
//! actor knows a Redis command.

use crate::limiter::BucketRecord;
use crate::model::{EndpointConfig, FinishedAttempt, HealthRecord, QueuedDelivery, RoutedEvent, StreamEvent};
use std::sync::Arc;

/// The cause of a store failure, kept whole (a Redis error, a JSON error…).
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("durable store unavailable: {0}")]
    Unavailable(#[source] Source),
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[source] Source),
    /// A write refused because this node no longer holds the shard's lease (another node may
    /// own the endpoint now): nothing was written.
    #[error("not the lease holder of shard {0}: write refused")]
    Fenced(u32),
}

impl StoreError {
    /// Unavailable, with a message as its cause (no error value to keep).
    pub fn unavailable(message: &str) -> Self {
        StoreError::Unavailable(Arc::from(Box::<dyn std::error::Error + Send + Sync>::from(message)))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What the router needs: the events stream, the subscription index's source, routing.
#[async_trait::async_trait]
pub trait RouterStore: Send + Sync + 'static {
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

    /// Every endpoint (the subscription index's resync).
    async fn load_endpoints(&self) -> StoreResult<Vec<EndpointConfig>>;
    /// One endpoint (a change notification), `None` once deleted.
    async fn get_endpoint(&self, endpoint_id: &str) -> StoreResult<Option<EndpointConfig>>;
    /// The version counter of each tenant's endpoints (0 if never set), in order.
    async fn tenant_versions(&self, tenants: &[String]) -> StoreResult<Vec<u64>>;
    /// Every endpoint of one tenant.
    async fn tenant_endpoints(&self, tenant: &str) -> StoreResult<Vec<EndpointConfig>>;
    /// The stored bodies of these events (`(tenant, event id)`), with their `metadata` as a
    /// field (never delivered: for content filters), in order; `None` for one that is gone.
    async fn event_bodies(&self, events: &[(String, String)]) -> StoreResult<Vec<Option<String>>>;
}

/// What the lease manager (`shards`) and the shard owners need: membership, leases, due work.
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Record this node as alive. Returns `(live nodes, this node's rank among their ids in
    /// sorted order)`.
    async fn heartbeat(&self, node_id: &str, ttl_ms: u64) -> StoreResult<(usize, usize)>;
    /// Take or renew the shard's lease for `node_id`: `Some(epoch)` while the node holds it, a
    /// new epoch when it was free, the same when the node already held it. With the node id,
    /// the epoch is the fencing token (`node#epoch`) that the endpoint actors' writes carry.
    async fn hold_lease(&self, shard: u32, node_id: &str, ttl_ms: u64) -> StoreResult<Option<u64>>;
    /// Renew the shard's lease only if `node_id` still holds it; never takes a free one. False
    /// means the lease lapsed (or another node took it) since the last renewal: the work this
    /// node was doing on the shard must stop, even if it can take the lease again at once.
    async fn renew_lease(&self, shard: u32, node_id: &str, ttl_ms: u64) -> StoreResult<bool>;
    async fn release_lease(&self, shard: u32, node_id: &str) -> StoreResult<()>;
    /// Remove the node from the live set (clean shutdown).
    async fn leave(&self, node_id: &str) -> StoreResult<()>;
    /// A page of a shard's due set, earliest first, from position `offset`: `(endpoint id, when
    /// its earliest queued delivery is due, ms)`, due or not.
    async fn due_page(&self, shard: u32, offset: usize, limit: usize) -> StoreResult<Vec<(String, u64)>>;
    /// Tell the other nodes that these `(endpoint id, shard)` pairs have new work (routed here
    /// to shards this node does not hold), so their owners start on it without waiting for a
    /// due poll. Best effort: the due poll is the safety net.
    async fn announce_work(&self, pairs: &[(String, u32)]) -> StoreResult<()>;
}

/// What recording an attempt did to its delivery ([`EndpointStore::record_attempts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// As the attempt decided: settled, or queued again at its retry time.
    AsDecided,
    /// Replayed while the attempt ran: the replay wins, and the delivery is queued again, due
    /// now (the actor pulls it again even if its last pull found the queue drained).
    Requeued,
    /// Its endpoint was deleted meanwhile and the delivery already marked dead
    /// (`endpoint_deleted`): only a success would have changed that.
    KeptDead,
}

/// A window of an endpoint's queue, as [`EndpointStore::pull_window`] read it.
#[derive(Debug, Clone, Default)]
pub struct PulledWindow {
    pub deliveries: Vec<QueuedDelivery>,
    /// Ordered endpoints only: the routing mark of the tenant's partition, read *before* the
    /// head, so every event before it was already queued (the first event not yet routed, or
    /// when all were, the lowest stream id a later event can take: one appended after the read
    /// is never taken for routed), and the head's queue score (its place in ingest order). See
    /// `endpoint::ordered`.
    pub routing_mark: Option<String>,
    pub head_order: Option<f64>,
    /// Not ordered: when the earliest delivery not due yet (and not excluded) comes due, if the
    /// pull saw one (it reads on past the due ones in the same command). A pull that took all
    /// due work relies on it: a retry inherited from an earlier owner, or a delivery whose
    /// ingest time is ahead of this node's clock, gets a timer, not a wait for a wake.
    pub next_due_ms: Option<u64>,
}

/// What an endpoint actor needs: its config, its queue, its records, its health.
///
/// Every write an actor makes carries `owner`, the fencing token `node#epoch` of the lease it
/// works under, and is refused (`StoreError::Fenced`, nothing written) unless that token is the
/// shard's current holder and epoch: a node that lost the shard (or took it again since)
/// cannot overwrite what the new owner records.
#[async_trait::async_trait]
pub trait EndpointStore: Send + Sync + 'static {
    async fn get_endpoint(&self, endpoint_id: &str) -> StoreResult<Option<EndpointConfig>>;

    /// Up to `limit` deliveries of the endpoint that are due at `now_ms`, oldest first,
    /// skipping the ones in `exclude` (in flight), and when the next one comes due if fewer
    /// than `limit` are (`next_due_ms`). An ordered endpoint gets its head only, due or not
    /// (`not_before_ms` is its retry time), with the routing mark.
    async fn pull_window(
        &self,
        endpoint: &EndpointConfig,
        shard: u32,
        now_ms: u64,
        limit: usize,
        exclude: &[String],
    ) -> StoreResult<PulledWindow>;

    /// Log each finished attempt and move its delivery to its next state, one result each, in
    /// order; each record is written atomically with its state change. Fenced.
    async fn record_attempts(
        &self,
        owner: &str,
        endpoint: &EndpointConfig,
        shard: u32,
        finished: &[FinishedAttempt],
    ) -> Vec<StoreResult<Recorded>>;

    /// The endpoint actor is about to stop: set the shard's due entry for the endpoint to its
    /// earliest queued delivery, but not before `not_before_ms` (an open breaker's next probe),
    /// or remove it (empty queue, or `paused`), atomically with reading the queue. An ordered
    /// endpoint waiting on its head's retry passes the head's event id: the store then reads
    /// the head's due time itself, in the same step. Returns that due time. Fenced.
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
    /// Save an endpoint's health. With `owner` it is fenced; `None` is an operator's reset
    /// (enable, PATCH), never refused.
    async fn save_health(
        &self,
        owner: Option<&str>,
        endpoint_id: &str,
        shard: u32,
        health: &HealthRecord,
    ) -> StoreResult<()>;

    /// What a starting actor resumes, in one read: the endpoint's health (as `load_health`)
    /// and the rate limiter's bucket the last actor of the endpoint left, if it is not full yet
    /// (`None` too if it cannot be read: the limit then holds less tightly across the restart).
    async fn load_saved(&self, endpoint_id: &str, shard: u32) -> StoreResult<(HealthRecord, Option<BucketRecord>)>;
    /// Save the bucket for the next actor, kept `ttl_ms` (until it would be full). Fenced.
    async fn save_bucket(
        &self,
        owner: &str,
        endpoint_id: &str,
        shard: u32,
        bucket: &BucketRecord,
        ttl_ms: u64,
    ) -> StoreResult<()>;

    /// Ingest an event made by the node itself (e.g. `hookline.endpoint.disabled`) for
    /// `tenant`; it is routed like any other. With an idempotency key, emitting it again (a
    /// retry after an unclear failure) stores nothing new. Returns its id.
    async fn emit_event(
        &self,
        tenant: &str,
        event_type: &str,
        data: serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> StoreResult<String>;

    /// Count dead letters of an endpoint by reason toward its `hookline.endpoint.dead_letters`
    /// notice: when none was due within the last `interval_s`, take every count gathered since
    /// the last one (these included) and start a new interval; else keep counting.
    async fn note_dead_letters(
        &self,
        endpoint_id: &str,
        shard: u32,
        reasons: &[(String, u64)],
        interval_s: u64,
    ) -> StoreResult<Option<Vec<(String, u64)>>>;

    /// The endpoint no longer exists: drop whatever was queued for it since (routed by a node
    /// whose index was stale) and its due entry. Returns how many deliveries were dropped.
    async fn forget_endpoint(&self, endpoint_id: &str, shard: u32) -> StoreResult<u64>;

    /// Disable an endpoint (the receiver asked to stop, e.g. with 410) and tell every node,
    /// if it is still enabled and at the version `seen_at_ms` (its `updated_at_ms`) the actor
    /// acted on: a change made meanwhile (a fixed URL, a manual disable) is not overridden.
    /// Returns the config as stored after it, or `None` if the endpoint is gone.
    async fn disable_endpoint(
        &self,
        endpoint_id: &str,
        seen_at_ms: u64,
        reason: &str,
    ) -> StoreResult<Option<EndpointConfig>>;
}
