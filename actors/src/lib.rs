//! Hookline's actors and the pure logic they are made of.
//!
//! The actors (`router`, `shards`, `shard_owner`, `endpoint`) carry work from the durable event
//! stream to receivers. They speak to storage only through the store traits of [`store`] (one
//! per client: [`RouterStore`], [`LeaseStore`], [`EndpointStore`]) and to receivers only
//! through the [`Transport`] trait, both defined here and implemented by the `hookline` crate
//! (on fred and reqwest), so this crate holds no Redis command and no HTTP client. What they
//! share (settings, stores, transport, clock) is [`ctx::Ctx`], below every actor.
//!
//! The pure parts (`matching`, `backoff`, `outcome`, `shard`) take their inputs (clock readings,
//! random numbers) as arguments, so their unit tests are exact.

pub mod backoff;
pub mod breaker;
pub mod ctx;
pub mod endpoint;
pub mod filter;
pub mod lease;
pub mod limiter;
pub mod matching;
pub mod model;
pub mod names;
pub mod outcome;
pub mod router;
pub mod shard;
pub mod shard_owner;
pub mod shards;
pub mod store;
pub mod supervisor;
pub mod transport;

pub use ctx::{Clock, NodeSettings, Stores, SystemClock, TokioClock};
pub use model::{ClientTls, EndpointConfig, OAuth2Client, OAuth2ClientAuth, PayloadMode, RoutedEvent, StreamEvent};
pub use store::{EndpointStore, LeaseStore, RouterStore, StoreError};
pub use supervisor::Node;
pub use transport::{AttemptRequest, AttemptResponse, ReceiverAuth, TransformSpec, Transport};

/// Milliseconds since the Unix epoch: the clock every stored time uses.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
