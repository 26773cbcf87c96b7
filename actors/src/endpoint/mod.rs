//! The endpoint actor: one per endpoint with work, on the node that holds its shard's lease.
//!
//! It owns everything that protects other endpoints from this one: a bounded window of due
//! deliveries pulled from the endpoint's durable queue (only when it has room), at most
//! `max_in_flight` attempts at once, the rate limiter, the circuit breaker, and the timer for
//! its next retry. Attempts run in spawned tasks and come back as `AttemptDone`, so a slow
//! receiver never blocks the actor, and one endpoint's actor never waits for another's.
//!
//! Before an attempt starts it is admitted (`admission::admit`, a pure function): by the
//! lease deadline, an ordered head's time (`ordered`), the token bucket (the endpoint's
//! `rate_limit_per_s`, or the ramp after a recovery, whichever is lower) and the breaker
//! (closed: yes; open: not before the next probe; half-open: only the one probe).
//!
//! States: *working* (attempts in flight or admitted work in the window) → *lingering* (the
//! queue is empty: for `idle_linger_ms` the router's next wake finds it running, so a steady
//! trickle of events does not pay an actor's start and stop each) → *waiting* (nothing
//! admissible now, but within `idle_keepalive_ms`: a timer wakes it) → *stopped* (nothing due
//! soon: the shard's due set in Redis holds the next due time — a retry, or an open breaker's
//! next probe — and the shard owner restarts it then). A delivery stays in the durable queue
//! until its attempt is recorded, so a crash at any point loses nothing; the attempts in flight
//! at a crash, and those answered but not yet recorded (group commit, `record`), may be made
//! twice: at most `max_in_flight` in flight plus `ANSWERED_PER_SLOT` × `max_in_flight`
//! answered. A receiver's slot frees when it answers, not when the record is written: the
//! next attempt starts while the record is on its way (an ordered endpoint waits for the
//! record: its head may stay the head; and every actor until the store has accepted one of its
//! records, so one working under a stale lease makes no more attempts than it did before). The breaker's state and the start of a run of
//! failures are stored (`HealthRecord`), so they survive a change of owner.
//!
//! Files: this one (messages, start, stop), `state` (the window and the fill loop), `record`
//! (results, health, group commit), `admission` and `ordered` (pure decisions).

pub mod admission;
pub mod notices;
pub mod ordered;
mod recent;
mod record;
mod state;
#[cfg(test)]
pub(crate) mod tests;
mod timer;

use crate::breaker::Breaker;
use crate::ctx::Ctx;
use crate::model::{FinishedAttempt, HealthRecord};
use crate::outcome::Outcome;
use crate::store::{StoreError, StoreResult};
use crate::transport::AttemptResponse;
use admission::Gates;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use state::EndpointState;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The event the tenant's subscribers get when an endpoint is disabled for failing.
pub const ENDPOINT_DISABLED_EVENT: &str = "hookline.endpoint.disabled";

pub enum EndpointMsg {
    /// Work may have come: look at the queue.
    Wake,
    /// This node's router queued new deliveries of these events here (`recent.rs`).
    Routed(Vec<String>),
    /// The actor's timer set for this time (ms) fired (`EndpointState::on_timer`).
    Timer(u64),
    ConfigChanged,
    AttemptDone {
        event_id: String,
        attempts_before: u32,
        cycle_base: u32,
        started_ms: u64,
        response: AttemptResponse,
    },
    /// A batch of records was written: one result per attempt, in order; `Err`: the task
    /// writing them panicked.
    Recorded {
        batch: Vec<(FinishedAttempt, Outcome)>,
        tenant: String,
        results: Result<Vec<StoreResult<crate::store::Recorded>>, String>,
    },
    /// Start nothing new; answer once nothing is in flight, then stop.
    Drain(RpcReplyPort<()>),
}

pub struct EndpointActor;

pub struct EndpointArgs {
    pub ctx: Arc<Ctx>,
    pub endpoint_id: String,
    pub shard: u32,
    /// The epoch of the shard's lease its owner holds (`LeaseClock::valid_for`).
    pub epoch: u64,
}

impl Actor for EndpointActor {
    type Msg = EndpointMsg;
    type State = EndpointState;
    type Arguments = EndpointArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<EndpointMsg>,
        args: EndpointArgs,
    ) -> Result<EndpointState, ActorProcessingErr> {
        let store = &args.ctx.stores.endpoints;
        // One round trip's wait: the config (in the endpoints hash) and what the last actor
        // saved (in the shard's slot) are read at once.
        let (cfg, saved) = tokio::join!(
            store.get_endpoint(&args.endpoint_id),
            store.load_saved(&args.endpoint_id, args.shard)
        );
        let (cfg, (health, saved_bucket)) = (cfg?, saved?);
        myself.send_message(EndpointMsg::Wake)?;
        let lease_epoch = args.epoch;
        Ok(EndpointState {
            gates: Gates {
                breaker: Breaker::new(args.ctx.settings.breaker.clone(), health.breaker),
                limiter: None,
                saved_bucket,
            },
            failing_since_ms: health.failing_since_ms,
            lease_token: crate::lease::LeaseClock::token(&args.ctx.settings.node_id, lease_epoch),
            lease_epoch,
            ctx: args.ctx,
            endpoint_id: args.endpoint_id,
            shard: args.shard,
            cfg,
            window: VecDeque::new(),
            in_flight: HashMap::new(),
            answered: Default::default(),
            token_confirmed: false,
            timer: None,
            config_retry: None,
            idle_since: None,
            worked: false,
            drained: false,
            next_due: None,
            recent: Default::default(),
            drain_waiters: Vec::new(),
            draining: false,
            probe: None,
            unrecorded: Vec::new(),
            recording: None,
            notices: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<EndpointMsg>,
        msg: EndpointMsg,
        state: &mut EndpointState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EndpointMsg::Routed(events) if state.recent.pulled_all(&events) => {}
            EndpointMsg::Wake | EndpointMsg::Routed(_) => {
                state.drained = false;
                state.fill(&myself).await;
            }
            EndpointMsg::Timer(at) => state.on_timer(&myself, at).await,
            EndpointMsg::ConfigChanged => {
                if let Some(retry) = state.config_retry.take() {
                    retry.abort();
                }
                let store = state.ctx.stores.endpoints.clone();
                match store.get_endpoint(&state.endpoint_id).await {
                    Ok(cfg) => state.cfg = cfg,
                    Err(e) => {
                        tracing::warn!(endpoint_id = %state.endpoint_id, error = %e, "config reload failed");
                        // The change is not lost with the read: while Redis is away it is read
                        // again every second until a read succeeds (or the actor stops; the next
                        // one reads the config at start). A config that cannot be read for
                        // another reason stays as it was until the next change.
                        if matches!(e, StoreError::Unavailable(_)) {
                            let retry = std::time::Duration::from_millis(state::STORE_RETRY_MS);
                            state.config_retry = Some(myself.send_after(retry, || EndpointMsg::ConfigChanged));
                        }
                    }
                }
                // Enabling an endpoint resets its health in Redis: take that reset, and only
                // that (the stored record lags the live breaker, e.g. during a probe).
                if let Ok(health) = store.load_health(&state.endpoint_id, state.shard).await {
                    if health == HealthRecord::default() && state.health() != health {
                        state.gates.breaker = Breaker::new(state.ctx.settings.breaker.clone(), health.breaker);
                        state.failing_since_ms = None;
                        state.probe = None;
                    }
                }
                state.drop_window();
                state.fill(&myself).await;
            }
            EndpointMsg::AttemptDone {
                event_id,
                attempts_before,
                cycle_base,
                started_ms,
                response,
            } => {
                state
                    .attempt_done(&myself, event_id, attempts_before, cycle_base, started_ms, response)
                    .await;
            }
            EndpointMsg::Recorded { batch, tenant, results } => {
                // A panic while recording fails the actor, as it would have inline.
                let results = results?;
                state.recorded(&myself, batch, tenant, results).await;
            }
            EndpointMsg::Drain(reply) => {
                state.draining = true;
                state.drain_waiters.push(reply);
                state.finish_drain_if_idle(&myself);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<EndpointMsg>,
        state: &mut EndpointState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((_, handle)) = state.timer.take() {
            handle.abort();
        }
        if let Some(retry) = state.config_retry.take() {
            retry.abort();
        }
        state.save_bucket().await;
        for waiter in state.drain_waiters.drain(..) {
            waiter.send(()).ok();
        }
        Ok(())
    }
}
