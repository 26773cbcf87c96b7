//! What every actor of a node shares: its settings, its stores, its transport, its clock.
//!
//! This module sits below every actor (they import it; it imports none of them), so the actor
//! files form a tree: supervisor → shards → shard owner → endpoint, and router beside them.

use crate::lease::{LeaseClock, LeaseTiming};
use crate::matching::SubscriptionIndex;
use crate::store::{EndpointStore, LeaseStore, RouterStore};
use crate::transport::Transport;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Everything the actors need to know about the node, resolved from config.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub node_id: String,
    pub shard_count: u32,
    pub lease_ttl_ms: u64,
    /// The shortest time between a shard owner's looks at its due set, and the longest.
    pub due_poll_ms: u64,
    pub due_poll_max_ms: u64,
    pub router_batch: usize,
    pub router_block_ms: u64,
    pub router_claim_idle_ms: u64,
    /// Events partitions (`router.partitions`): one router each.
    pub stream_partitions: u32,
    pub resync_interval_ms: u64,
    pub default_timeout_ms: u64,
    pub default_retry_schedule_s: Vec<u64>,
    pub default_max_in_flight: u32,
    /// How many due deliveries an endpoint actor holds in memory at most.
    pub window: usize,
    /// How long an endpoint actor with nothing to do but a retry soon stays alive for it.
    pub idle_keepalive_ms: u64,
    /// How long an endpoint actor whose queue went empty waits for more before it settles and
    /// stops (`delivery.idle_linger_ms`): the next event finds it running.
    pub idle_linger_ms: u64,
    pub drain_timeout_ms: u64,
    pub breaker: crate::breaker::BreakerSettings,
    /// An endpoint failing without a break this long is disabled (`health.disable_after_s`).
    pub disable_after_ms: u64,
    /// At most one `hookline.endpoint.dead_letters` notice per endpoint this often
    /// (`notifications.dead_letter_interval_s`).
    pub dead_letter_notice_interval_s: u64,
    /// Which ids label per-endpoint metrics (`metrics.tenant_labels`, `metrics.endpoint_labels`).
    pub metric_labels: crate::names::MetricLabels,
}

impl NodeSettings {
    pub fn lease_timing(&self) -> LeaseTiming {
        LeaseTiming::from_ttl(self.lease_ttl_ms)
    }

    /// How old an unrouted event may be and still hold back the ordered heads after it
    /// (`endpoint::ordered`): three claim periods, after which a router stuck on it must not
    /// stop ordered delivery for good.
    pub fn ordered_hold_max_ms(&self) -> u64 {
        3 * self.router_claim_idle_ms
    }
}

/// The store, seen by each of its three clients. `Stores::all` hands one implementation of
/// all three to a node; a test may give an actor a store of its own.
#[derive(Clone)]
pub struct Stores {
    pub router: Arc<dyn RouterStore>,
    pub leases: Arc<dyn LeaseStore>,
    pub endpoints: Arc<dyn EndpointStore>,
}

impl Stores {
    pub fn all<S: RouterStore + LeaseStore + EndpointStore>(store: Arc<S>) -> Self {
        Stores {
            router: store.clone(),
            leases: store.clone(),
            endpoints: store,
        }
    }
}

/// Milliseconds since the Unix epoch, as the actors read them. Every time the actors store is
/// on this clock; tests run the actors under `tokio::time::pause()` with a [`TokioClock`].
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// The wall clock (`crate::now_ms`): what a node runs on.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::now_ms()
    }
}

/// A clock that moves with tokio's (paused, in tests) time from a fixed start, so timers set
/// with `send_after` and the times the actors compute agree.
pub struct TokioClock {
    start_ms: u64,
    started: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start_ms: u64) -> Self {
        TokioClock {
            start_ms,
            started: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.start_ms + self.started.elapsed().as_millis() as u64
    }
}

/// Shared by every actor of the node.
pub struct Ctx {
    pub stores: Stores,
    pub transport: Arc<dyn Transport>,
    pub settings: NodeSettings,
    pub index: Arc<SubscriptionIndex>,
    /// True once the node has taken part in one lease cycle; cleared while it cannot.
    pub ready: AtomicBool,
    /// Until when this node may start attempts on each shard (fencing).
    pub leases: LeaseClock,
    pub clock: Arc<dyn Clock>,
}

impl Ctx {
    pub fn new(
        stores: Stores,
        transport: Arc<dyn Transport>,
        settings: NodeSettings,
        index: Arc<SubscriptionIndex>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Ctx {
            stores,
            transport,
            leases: LeaseClock::new(settings.shard_count, settings.lease_timing().expiry_ms),
            settings,
            index,
            ready: AtomicBool::new(false),
            clock,
        }
    }

    pub fn shard_of(&self, endpoint_id: &str) -> u32 {
        crate::shard::shard_of(endpoint_id, self.settings.shard_count)
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}
