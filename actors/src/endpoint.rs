//! The endpoint actor: one per endpoint with work, on the node that holds its shard's lease.
//!
//! It owns everything that protects other endpoints from this one: a bounded window of due
//! deliveries pulled from the endpoint's durable queue (only when it has room), at most
//! `max_in_flight` attempts at once, and the timer for its next retry. Attempts run in spawned
//! tasks and come back as `AttemptDone`, so a slow receiver never blocks the actor, and one
//! endpoint's actor never waits for another's.
//!
//! States: *working* (attempts in flight or due work in the window) → *waiting* (nothing due,
//! a retry due within `idle_keepalive_ms`: a timer wakes it) → *stopped* (nothing due soon: the
//! shard's due set in Redis holds the next due time and the shard owner restarts it then).
//! A delivery stays in the durable queue until its attempt is recorded, so a crash at any point
//! loses nothing; the attempt in flight at a crash may be made twice.

use crate::backoff::{honour_retry_after, retry_delay};
use crate::model::{AttemptRecord, EndpointConfig, Next, QueuedDelivery};
use crate::outcome::{classify, Outcome};
use crate::supervisor::Ctx;
use crate::transport::{AttemptRequest, AttemptResponse};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

const STORE_RETRY: Duration = Duration::from_secs(1);

/// A pending `send_after` wake-up.
type Timer = tokio::task::JoinHandle<Result<(), ractor::MessagingErr<EndpointMsg>>>;

/// An attempt's task, aborted if the actor goes away before the attempt ends (its state is
/// dropped when it stops or is killed): once the node gives the shard up, nothing it started
/// may still be talking to the receiver while the next owner starts.
struct InFlight(tokio::task::AbortHandle);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub enum EndpointMsg {
    Wake,
    ConfigChanged,
    AttemptDone {
        event_id: String,
        attempts_before: u32,
        started_ms: u64,
        response: AttemptResponse,
    },
    /// Start nothing new; answer once nothing is in flight, then stop.
    Drain(RpcReplyPort<()>),
}

pub struct EndpointActor;

pub struct EndpointArgs {
    pub ctx: Arc<Ctx>,
    pub endpoint_id: String,
    pub shard: u32,
}

pub struct EndpointState {
    ctx: Arc<Ctx>,
    endpoint_id: String,
    shard: u32,
    /// `None` once the endpoint was deleted.
    cfg: Option<EndpointConfig>,
    window: VecDeque<QueuedDelivery>,
    in_flight: HashMap<String, InFlight>,
    timer: Option<(u64, Timer)>,
    drain_waiters: Vec<RpcReplyPort<()>>,
    draining: bool,
}

impl EndpointState {
    fn max_in_flight(&self, cfg: &EndpointConfig) -> usize {
        cfg.max_in_flight
            .unwrap_or(self.ctx.settings.default_max_in_flight)
            .max(1) as usize
    }

    /// Wake at `due_ms` unless a timer already wakes the actor sooner.
    fn wake_at(&mut self, myself: &ActorRef<EndpointMsg>, due_ms: u64) {
        let now = crate::now_ms();
        if let Some((at, handle)) = &self.timer {
            if *at <= due_ms && *at > now {
                return;
            }
            handle.abort();
        }
        let handle = myself.send_after(Duration::from_millis(due_ms.saturating_sub(now)), || EndpointMsg::Wake);
        self.timer = Some((due_ms, handle));
    }

    fn finish_drain_if_idle(&mut self, myself: &ActorRef<EndpointMsg>) -> bool {
        if !self.draining || !self.in_flight.is_empty() {
            return false;
        }
        for waiter in self.drain_waiters.drain(..) {
            waiter.send(()).ok();
        }
        myself.stop(Some("drained".into()));
        true
    }

    async fn fill(&mut self, myself: &ActorRef<EndpointMsg>) {
        if self.finish_drain_if_idle(myself) || self.draining {
            return;
        }
        let Some(cfg) = self.cfg.clone() else {
            if self.in_flight.is_empty() {
                // Work routed after the deletion (by a node whose index was stale) is dropped
                // with the due entry, so the due poll does not restart this actor forever.
                match self.ctx.store.forget_endpoint(&self.endpoint_id, self.shard).await {
                    Ok(_) => myself.stop(Some("endpoint deleted".into())),
                    Err(e) => {
                        tracing::warn!(endpoint_id = %self.endpoint_id, error = %e, "forgetting a deleted endpoint failed");
                        self.wake_at(myself, crate::now_ms() + STORE_RETRY.as_millis() as u64);
                    }
                }
            }
            return;
        };
        if cfg.disabled {
            self.window.clear();
            if self.in_flight.is_empty() {
                self.go_idle(myself, true).await;
            }
            return;
        }
        let max = self.max_in_flight(&cfg);
        if self.in_flight.len() >= max {
            return;
        }
        if self.window.is_empty() {
            let exclude: Vec<String> = self.in_flight.keys().cloned().collect();
            let limit = self.ctx.settings.window.max(max);
            match self
                .ctx
                .store
                .pull_window(&cfg, self.shard, crate::now_ms(), limit, &exclude)
                .await
            {
                Ok(pulled) => self.window.extend(pulled),
                Err(e) => {
                    tracing::warn!(endpoint_id = %self.endpoint_id, error = %e, "pulling the queue failed");
                    self.wake_at(myself, crate::now_ms() + STORE_RETRY.as_millis() as u64);
                    return;
                }
            }
        }
        // Deliveries whose event expired are settled without an attempt and take no slot.
        while self.in_flight.len() < max {
            let Some(delivery) = self.window.pop_front() else { break };
            self.start_attempt(myself, &cfg, delivery).await;
        }
        if self.in_flight.is_empty() && self.window.is_empty() {
            self.go_idle(myself, false).await;
        }
    }

    async fn start_attempt(&mut self, myself: &ActorRef<EndpointMsg>, cfg: &EndpointConfig, delivery: QueuedDelivery) {
        let started_ms = crate::now_ms();
        let Some(body) = delivery.body else {
            // The event outlived retention before it could be delivered.
            let record = AttemptRecord {
                at_ms: started_ms,
                status_code: None,
                latency_ms: 0,
                response_excerpt: String::new(),
                error: Some("event expired before delivery".into()),
            };
            let next = Next::Dead("event_expired".into());
            if let Err(e) = self
                .ctx
                .store
                .record_attempt(
                    cfg,
                    self.shard,
                    &delivery.event_id,
                    delivery.attempts + 1,
                    &record,
                    &next,
                )
                .await
            {
                tracing::warn!(endpoint_id = %cfg.id, error = %e, "recording an expired delivery failed");
            }
            return;
        };
        let request = AttemptRequest {
            url: cfg.url.clone(),
            event_id: delivery.event_id.clone(),
            body,
            secrets: cfg.live_secrets(started_ms),
            headers: cfg.headers.clone(),
            timeout: Duration::from_millis(cfg.timeout_ms.unwrap_or(self.ctx.settings.default_timeout_ms)),
        };
        let transport = self.ctx.transport.clone();
        let reply_to = myself.clone();
        let attempts_before = delivery.attempts;
        let event_id = delivery.event_id.clone();
        let task = tokio::spawn(async move {
            let response = transport.send(request).await;
            reply_to
                .send_message(EndpointMsg::AttemptDone {
                    event_id,
                    attempts_before,
                    started_ms,
                    response,
                })
                .ok();
        });
        self.in_flight.insert(delivery.event_id, InFlight(task.abort_handle()));
    }

    /// The receiver answered 410 Gone: it asks to stop, so the endpoint is disabled (its
    /// queue is kept; `enable` resumes it).
    async fn disable_gone(&mut self, cfg: &EndpointConfig) {
        tracing::warn!(tenant = %cfg.tenant, endpoint_id = %cfg.id, "receiver answered 410 Gone; disabling the endpoint");
        match self.ctx.store.disable_endpoint(&cfg.id, "gone").await {
            Ok(updated) => self.cfg = updated,
            Err(e) => tracing::warn!(endpoint_id = %cfg.id, error = %e, "disabling a gone endpoint failed"),
        }
    }

    /// Nothing to start now: keep a timer for a retry due soon, otherwise stop (the due set in
    /// Redis remembers when this endpoint has work again).
    async fn go_idle(&mut self, myself: &ActorRef<EndpointMsg>, paused: bool) {
        match self.ctx.store.settle_idle(&self.endpoint_id, self.shard, paused).await {
            Ok(Some(due)) if !paused => {
                let now = crate::now_ms();
                if due <= now {
                    myself.send_message(EndpointMsg::Wake).ok();
                } else if due - now <= self.ctx.settings.idle_keepalive_ms {
                    self.wake_at(myself, due);
                } else {
                    myself.stop(Some("idle".into()));
                }
            }
            Ok(_) => myself.stop(Some("idle".into())),
            Err(e) => {
                tracing::warn!(endpoint_id = %self.endpoint_id, error = %e, "settling the queue failed");
                self.wake_at(myself, crate::now_ms() + STORE_RETRY.as_millis() as u64);
            }
        }
    }

    async fn attempt_done(
        &mut self,
        myself: &ActorRef<EndpointMsg>,
        event_id: String,
        attempts_before: u32,
        started_ms: u64,
        response: AttemptResponse,
    ) {
        self.in_flight.remove(&event_id);
        let Some(cfg) = self.cfg.clone() else {
            // Deleted meanwhile: nothing to record; stop (or finish a drain) once idle.
            self.fill(myself).await;
            return;
        };
        let attempts = attempts_before + 1;
        let outcome = classify(&response);
        let schedule = cfg
            .retry_schedule_s
            .as_deref()
            .unwrap_or(&self.ctx.settings.default_retry_schedule_s);
        let next = match &outcome {
            Outcome::Delivered => Next::Delivered,
            Outcome::Retry { retry_after } => match retry_delay(schedule, attempts, rand::random::<f64>()) {
                Some(delay) => {
                    Next::RetryAt(crate::now_ms() + honour_retry_after(delay, *retry_after).as_millis() as u64)
                }
                None => Next::Dead("retries_exhausted".into()),
            },
            Outcome::Permanent { reason } => Next::Dead(reason.clone()),
            Outcome::Gone => Next::Dead("gone".into()),
        };
        let label = match &next {
            Next::Delivered => "success",
            Next::RetryAt(_) => "retry",
            Next::Dead(_) => "dead",
        };
        metrics::counter!(crate::names::ATTEMPTS, "outcome" => label).increment(1);
        metrics::histogram!(crate::names::ATTEMPT_LATENCY).record(response.latency_ms as f64 / 1000.0);
        tracing::debug!(
            tenant = %cfg.tenant, endpoint_id = %cfg.id, event_id = %event_id, attempt = attempts,
            status = ?response.status, outcome = label, "attempt finished"
        );
        let record = AttemptRecord {
            at_ms: started_ms,
            status_code: response.status,
            latency_ms: response.latency_ms,
            response_excerpt: response.excerpt,
            error: response.error,
        };
        match self
            .ctx
            .store
            .record_attempt(&cfg, self.shard, &event_id, attempts, &record, &next)
            .await
        {
            Ok(()) => {
                if outcome == Outcome::Gone {
                    self.disable_gone(&cfg).await;
                }
                if let Next::RetryAt(at) = next {
                    if at.saturating_sub(crate::now_ms()) <= self.ctx.settings.idle_keepalive_ms {
                        self.wake_at(myself, at);
                    }
                }
            }
            Err(e) => {
                // The delivery is still queued at its old time: it is attempted again once the
                // store answers (at least once, possibly twice).
                tracing::warn!(endpoint_id = %cfg.id, event_id = %event_id, error = %e, "recording an attempt failed");
                self.window.clear();
                self.wake_at(myself, crate::now_ms() + STORE_RETRY.as_millis() as u64);
                self.finish_drain_if_idle(myself);
                return;
            }
        }
        self.fill(myself).await;
    }
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
        let cfg = args.ctx.store.get_endpoint(&args.endpoint_id).await?;
        myself.send_message(EndpointMsg::Wake)?;
        Ok(EndpointState {
            ctx: args.ctx,
            endpoint_id: args.endpoint_id,
            shard: args.shard,
            cfg,
            window: VecDeque::new(),
            in_flight: HashMap::new(),
            timer: None,
            drain_waiters: Vec::new(),
            draining: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<EndpointMsg>,
        msg: EndpointMsg,
        state: &mut EndpointState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EndpointMsg::Wake => {
                state.timer = None;
                state.fill(&myself).await;
            }
            EndpointMsg::ConfigChanged => {
                match state.ctx.store.get_endpoint(&state.endpoint_id).await {
                    Ok(cfg) => state.cfg = cfg,
                    Err(e) => tracing::warn!(endpoint_id = %state.endpoint_id, error = %e, "config reload failed"),
                }
                state.window.clear();
                state.fill(&myself).await;
            }
            EndpointMsg::AttemptDone {
                event_id,
                attempts_before,
                started_ms,
                response,
            } => {
                state
                    .attempt_done(&myself, event_id, attempts_before, started_ms, response)
                    .await;
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
        Ok(())
    }
}
