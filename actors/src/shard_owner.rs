//! One shard owner per leased shard: it starts endpoint actors on demand — when the router
//! wakes an endpoint, or when the shard's due set (kept in Redis) says an endpoint has work due
//! (a retry time reached, work routed by another node, or work left by a crashed owner) — and
//! supervises them. An endpoint actor that fails is restarted from its durable queue; one that
//! keeps failing waits for the next due poll instead of spinning.
//!
//! The due poll is not a fixed beat: the owner looks when its shard is taken, soon after one of
//! its actors stops (not sooner than `due_poll_ms` after the last look), when the earliest
//! entry of the due set comes due, and at least every `due_poll_max_ms` (the safety net: work
//! routed or replayed anywhere wakes its endpoint directly). An idle shard costs one command
//! per `due_poll_max_ms`.

use crate::ctx::Ctx;
use crate::endpoint::{EndpointActor, EndpointArgs, EndpointMsg};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_RESTARTS: u32 = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
const DUE_BATCH: usize = 1_000;
const DUE_PAGES: usize = 20;

pub enum ShardOwnerMsg {
    /// New work for this endpoint; the ids of the new deliveries when this node's router
    /// queued them (none: look at the queue).
    Wake(String, Vec<String>),
    /// Look at the due set; only the look planned last (its number) is made.
    Poll(u64),
    ConfigChanged(String),
    Drain(RpcReplyPort<()>),
}

pub struct ShardOwner;

pub struct ShardOwnerArgs {
    pub ctx: Arc<Ctx>,
    pub shard: u32,
    /// The epoch of the lease this owner works under: its actors work under it too, even if
    /// the node has taken the shard again (a newer epoch) before this owner stopped.
    pub epoch: u64,
}

/// A planned look at the due set: its number, when (ms), and the timer that sends it.
type PlannedPoll = (
    u64,
    u64,
    tokio::task::JoinHandle<Result<(), ractor::MessagingErr<ShardOwnerMsg>>>,
);

pub struct ShardOwnerState {
    ctx: Arc<Ctx>,
    shard: u32,
    epoch: u64,
    endpoints: HashMap<String, ActorRef<EndpointMsg>>,
    by_actor: HashMap<ActorId, String>,
    failures: HashMap<String, (u32, Instant)>,
    /// When a look last woke each running actor whose due entry was long overdue (the safety
    /// net): at most once per `due_poll_max_ms` each.
    overdue_woken: HashMap<String, u64>,
    draining: bool,
    /// The next planned look at the due set: its number, when (ms), and its timer.
    next_poll: Option<PlannedPoll>,
    polls: u64,
    last_poll_ms: u64,
}

impl ShardOwnerState {
    /// Start the endpoint's actor, or wake it (with the ids of new deliveries routed to it by
    /// this node, if that is why: `endpoint/recent.rs`).
    async fn ensure_running(&mut self, myself: &ActorRef<ShardOwnerMsg>, endpoint_id: &str, routed: Vec<String>) {
        if self.draining {
            return;
        }
        if let Some(actor) = self.endpoints.get(endpoint_id) {
            let wake = if routed.is_empty() {
                EndpointMsg::Wake
            } else {
                EndpointMsg::Routed(routed)
            };
            actor.send_message(wake).ok();
            return;
        }
        if let Some((count, since)) = self.failures.get(endpoint_id) {
            if *count >= MAX_RESTARTS && since.elapsed() < RESTART_WINDOW {
                return;
            }
        }
        let args = EndpointArgs {
            ctx: self.ctx.clone(),
            endpoint_id: endpoint_id.to_string(),
            shard: self.shard,
            epoch: self.epoch,
        };
        match Actor::spawn_linked(None, EndpointActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.by_actor.insert(actor.get_id(), endpoint_id.to_string());
                self.endpoints.insert(endpoint_id.to_string(), actor);
                metrics::gauge!(crate::names::ENDPOINT_ACTORS).increment(1.0);
            }
            Err(e) => tracing::warn!(endpoint_id, error = %e, "could not start endpoint actor"),
        }
    }

    /// Look at the due set at `at_ms` unless a look is planned by then already.
    fn plan_poll(&mut self, myself: &ActorRef<ShardOwnerMsg>, at_ms: u64) {
        if self.next_poll.as_ref().is_some_and(|(_, planned, _)| *planned <= at_ms) {
            return;
        }
        if let Some((_, _, timer)) = self.next_poll.take() {
            timer.abort();
        }
        self.polls += 1;
        let number = self.polls;
        let delay = Duration::from_millis(at_ms.saturating_sub(self.ctx.now_ms()));
        let timer = myself.send_after(delay, move || ShardOwnerMsg::Poll(number));
        self.next_poll = Some((number, at_ms, timer));
    }

    /// Start or wake every endpoint that is due, page by page; then plan the next look.
    async fn poll(&mut self, myself: &ActorRef<ShardOwnerMsg>) {
        let now = self.ctx.now_ms();
        self.last_poll_ms = now;
        let settings = &self.ctx.settings;
        let (min_gap, max_gap) = (settings.due_poll_ms.max(10), settings.due_poll_max_ms.max(10));
        let mut next = now + max_gap;
        'pages: for page in 0..DUE_PAGES {
            match self
                .ctx
                .stores
                .leases
                .due_page(self.shard, page * DUE_BATCH, DUE_BATCH)
                .await
            {
                Ok(entries) => {
                    let full = entries.len() == DUE_BATCH;
                    for (id, due) in entries {
                        if due > now {
                            next = next.min(due);
                            break 'pages;
                        }
                        // A running actor looks at its queue itself when work is added (the
                        // router's and replays' wakes, its timers, the settle at the end of its
                        // linger), and settles its entry when it stops: a wake from here mostly
                        // costs it an empty pull. So it is woken only once its entry has been due
                        // for `due_poll_max_ms` (a wake announced from another node was lost,
                        // and the actor has been busy since). Nor does it hide the entries after it.
                        if !self.endpoints.contains_key(&id) {
                            self.ensure_running(myself, &id, Vec::new()).await;
                        } else if due.saturating_add(max_gap) <= now
                            && self
                                .overdue_woken
                                .get(&id)
                                .is_none_or(|at| at.saturating_add(max_gap) <= now)
                        {
                            self.overdue_woken.insert(id.clone(), now);
                            self.ensure_running(myself, &id, Vec::new()).await;
                        }
                    }
                    if !full {
                        break;
                    }
                    if page + 1 == DUE_PAGES {
                        next = next.min(now + min_gap);
                    }
                }
                Err(e) => {
                    tracing::debug!(shard = self.shard, error = %e, "due poll failed");
                    next = next.min(now + min_gap);
                    break;
                }
            }
        }
        self.plan_poll(myself, next);
    }

    fn forget(&mut self, id: &ActorId) -> Option<String> {
        let endpoint_id = self.by_actor.remove(id)?;
        self.overdue_woken.remove(&endpoint_id);
        if self.endpoints.get(&endpoint_id).is_some_and(|a| a.get_id() == *id) {
            self.endpoints.remove(&endpoint_id);
            metrics::gauge!(crate::names::ENDPOINT_ACTORS).decrement(1.0);
        }
        Some(endpoint_id)
    }
}

impl Actor for ShardOwner {
    type Msg = ShardOwnerMsg;
    type State = ShardOwnerState;
    type Arguments = ShardOwnerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ShardOwnerMsg>,
        args: ShardOwnerArgs,
    ) -> Result<ShardOwnerState, ActorProcessingErr> {
        myself.send_message(ShardOwnerMsg::Poll(0))?;
        Ok(ShardOwnerState {
            ctx: args.ctx,
            shard: args.shard,
            epoch: args.epoch,
            endpoints: HashMap::new(),
            by_actor: HashMap::new(),
            failures: HashMap::new(),
            overdue_woken: HashMap::new(),
            draining: false,
            next_poll: None,
            polls: 0,
            last_poll_ms: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ShardOwnerMsg>,
        msg: ShardOwnerMsg,
        state: &mut ShardOwnerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ShardOwnerMsg::Wake(endpoint_id, routed) => state.ensure_running(&myself, &endpoint_id, routed).await,
            ShardOwnerMsg::Poll(number) if !state.draining && number == state.polls => {
                state.next_poll = None;
                state.poll(&myself).await;
            }
            ShardOwnerMsg::Poll(_) => {}
            ShardOwnerMsg::ConfigChanged(endpoint_id) => match state.endpoints.get(&endpoint_id) {
                Some(actor) => {
                    actor.send_message(EndpointMsg::ConfigChanged).ok();
                }
                // Not running: start it, so that an endpoint that was just enabled (whose due
                // entry was removed while it was disabled) looks at its queue again. With
                // nothing due it settles and stops at once.
                None => state.ensure_running(&myself, &endpoint_id, Vec::new()).await,
            },
            ShardOwnerMsg::Drain(reply) => {
                state.draining = true;
                let timeout = Duration::from_millis(state.ctx.settings.drain_timeout_ms);
                let drains: Vec<_> = state
                    .endpoints
                    .values()
                    .cloned()
                    .map(|actor| tokio::spawn(async move { actor.call(EndpointMsg::Drain, Some(timeout)).await.ok() }))
                    .collect();
                for d in drains {
                    d.await.ok();
                }
                reply.send(()).ok();
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ShardOwnerMsg>,
        evt: SupervisionEvent,
        state: &mut ShardOwnerState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.forget(&cell.get_id());
                // It settled its due entry as it stopped: look soon (not more often than
                // `due_poll_ms`), and from then on at the earliest entry's time.
                if !state.draining {
                    let at = state
                        .ctx
                        .now_ms()
                        .max(state.last_poll_ms + state.ctx.settings.due_poll_ms);
                    state.plan_poll(&myself, at);
                }
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(endpoint_id) = state.forget(&cell.get_id()) {
                    tracing::error!(endpoint_id, error = %err, "endpoint actor failed; restarting it from its queue");
                    let entry = state.failures.entry(endpoint_id.clone()).or_insert((0, Instant::now()));
                    if entry.1.elapsed() >= RESTART_WINDOW {
                        *entry = (0, Instant::now());
                    }
                    entry.0 += 1;
                    state.ensure_running(&myself, &endpoint_id, Vec::new()).await;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
