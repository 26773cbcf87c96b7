//! The endpoint actor: one per endpoint with work, on the node that holds its shard's lease.
//!
//! It owns everything that protects other endpoints from this one: a bounded window of due
//! deliveries pulled from the endpoint's durable queue (only when it has room), at most
//! `max_in_flight` attempts at once, the rate limiter, the circuit breaker, and the timer for
//! its next retry. Attempts run in spawned tasks and come back as `AttemptDone`, so a slow
//! receiver never blocks the actor, and one endpoint's actor never waits for another's.
//!
//! Before an attempt starts it is admitted twice: by the breaker (closed: yes; open: not before
//! the next probe; half-open: only the one probe) and by the token bucket (the endpoint's
//! `rate_limit_per_s`, or the ramp after a recovery, whichever is lower).
//!
//! States: *working* (attempts in flight or admitted work in the window) → *waiting* (nothing
//! admissible now, but within `idle_keepalive_ms`: a timer wakes it) → *stopped* (nothing due
//! soon: the shard's due set in Redis holds the next due time — a retry, or an open breaker's
//! next probe — and the shard owner restarts it then). A delivery stays in the durable queue
//! until its attempt is recorded, so a crash at any point loses nothing; the attempts in flight
//! at a crash, and those finished but not yet recorded (group commit), may be made twice: at
//! most `max_in_flight` of them. The breaker's state and the start of a run of failures are
//! stored (`HealthRecord`), so they survive a change of owner.

use crate::backoff::{honour_retry_after, retry_delay};
use crate::breaker::{Admit, Breaker};
use crate::limiter::{BucketRecord, TokenBucket};
use crate::model::{AttemptRecord, EndpointConfig, FinishedAttempt, HealthRecord, Next, QueuedDelivery};
use crate::outcome::{classify, Outcome};
use crate::supervisor::Ctx;
use crate::transport::{AttemptRequest, AttemptResponse};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

const STORE_RETRY: Duration = Duration::from_secs(1);
/// How soon an actor looks again when its shard's lease deadline has passed.
const LEASE_RECHECK_MS: u64 = 250;

/// The event the tenant's subscribers get when an endpoint is disabled for failing.
pub const ENDPOINT_DISABLED_EVENT: &str = "hookline.endpoint.disabled";

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
        cycle_base: u32,
        started_ms: u64,
        response: AttemptResponse,
    },
    /// A batch of records was written: one result per attempt, in order; `Err`: the task
    /// writing them panicked.
    Recorded {
        batch: Vec<(FinishedAttempt, Outcome)>,
        tenant: String,
        results: Result<Vec<crate::store::StoreResult<()>>, String>,
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
    /// The fencing token of the lease this actor works under (`node#epoch`), taken at start.
    lease_token: String,
    /// `None` once the endpoint was deleted.
    cfg: Option<EndpointConfig>,
    window: VecDeque<QueuedDelivery>,
    in_flight: HashMap<String, InFlight>,
    timer: Option<(u64, Timer)>,
    drain_waiters: Vec<RpcReplyPort<()>>,
    draining: bool,
    breaker: Breaker,
    failing_since_ms: Option<u64>,
    /// Present while a rate applies (the endpoint's limit or a recovery ramp).
    limiter: Option<TokenBucket>,
    /// The bucket the previous actor left (see `limiter`): resumed when a rate first applies.
    saved_bucket: Option<BucketRecord>,
    /// The event id of the half-open breaker's probe in flight: only its result decides.
    probe: Option<String>,
    /// Finished attempts waiting for the batch being recorded (see `record_unrecorded`).
    unrecorded: Vec<(FinishedAttempt, Outcome)>,
    /// The task writing a batch of records, while one is being written.
    recording: Option<InFlight>,
}

/// Why the fill loop stopped starting attempts.
enum Blocked {
    /// Nothing stops it but room or work.
    No,
    /// Not before this time (open breaker, rate limit).
    Until(u64),
    /// An ordered endpoint's head (this event) waits for its retry time.
    Head(u64, String),
    /// A probe is in flight; its result decides.
    Probe,
}

impl EndpointState {
    /// Ordered endpoints take one attempt at a time, whatever `max_in_flight` says.
    fn max_in_flight(&self, cfg: &EndpointConfig) -> usize {
        if cfg.ordered {
            return 1;
        }
        cfg.max_in_flight
            .unwrap_or(self.ctx.settings.default_max_in_flight)
            .max(1) as usize
    }

    fn health(&self) -> HealthRecord {
        HealthRecord {
            breaker: self.breaker.record().clone(),
            failing_since_ms: self.failing_since_ms,
        }
    }

    /// Save the breaker and failure run for the next owner; fenced by the lease token.
    async fn save_health(&self) {
        let saved = self
            .ctx
            .store
            .save_health(Some(&self.lease_token), &self.endpoint_id, self.shard, &self.health())
            .await;
        if let Err(e) = saved {
            if matches!(e, crate::StoreError::Fenced(_)) {
                self.ctx.leases.revoke(self.shard);
            }
            tracing::warn!(endpoint_id = %self.endpoint_id, error = %e, "saving endpoint health failed");
        }
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
        // The drain waiters are answered in `post_stop`, once the limiter is saved.
        myself.stop(Some("drained".into()));
        true
    }

    /// Take a token if a rate applies now. `Err(ms)`: wait that long.
    fn take_token(&mut self, cfg: &EndpointConfig, now: u64) -> Result<(), u64> {
        let limit = cfg.rate_limit_per_s.map(f64::from);
        let rate = match (limit, self.breaker.ramp_rate(now, limit)) {
            (_, Some(ramp)) => ramp,
            (Some(limit), None) => limit,
            (None, None) => {
                self.limiter = None;
                return Ok(());
            }
        };
        let saved = &mut self.saved_bucket;
        let bucket = self.limiter.get_or_insert_with(|| match saved.take() {
            Some(record) => TokenBucket::resume(rate, record, now),
            None => TokenBucket::new(rate, now),
        });
        if (bucket.rate() - rate).abs() > f64::EPSILON {
            bucket.set_rate(rate, now);
        }
        bucket.try_take(now)
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
                self.go_idle(myself, true, 0).await;
            }
            return;
        }
        let max = self.max_in_flight(&cfg);
        if self.in_flight.len() >= max {
            return;
        }
        // Fencing: nothing is pulled, settled or started once this node's lease on the shard
        // may have run out (a pause, no Redis); either a renewal succeeds or the owner stops us.
        if !self.ctx.leases.valid(self.shard, crate::now_ms()) {
            self.window.clear();
            self.wake_at(myself, crate::now_ms() + LEASE_RECHECK_MS);
            return;
        }
        // An open breaker: nothing to pull before its probe time.
        if let Admit::NotBefore(t) = self.breaker.peek(crate::now_ms()) {
            self.window.clear();
            if self.in_flight.is_empty() && t > crate::now_ms() + self.ctx.settings.idle_keepalive_ms {
                self.go_idle(myself, false, t).await;
            } else {
                self.wake_at(myself, t);
            }
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
        let mut blocked = Blocked::No;
        while self.in_flight.len() < max {
            let Some(front) = self.window.front() else { break };
            if front.body.is_none() {
                // The event expired: settled without an attempt, and without admission.
                let Some(delivery) = self.window.pop_front() else { break };
                self.settle_expired(&cfg, delivery).await;
                continue;
            }
            let now = crate::now_ms();
            if !self.ctx.leases.valid(self.shard, now) {
                // Fencing: this node's lease on the shard may have run out (a pause, no Redis).
                // Start nothing; either a renewal succeeds, or the shard's owner is stopped.
                blocked = Blocked::Until(now + LEASE_RECHECK_MS);
                self.window.clear();
                break;
            }
            if front.not_before_ms > now {
                // An ordered endpoint's head is waiting for its retry time.
                blocked = Blocked::Head(front.not_before_ms, front.event_id.clone());
                self.window.clear();
                break;
            }
            if let Err(wait) = self.take_token(&cfg, now) {
                blocked = Blocked::Until(now + wait);
                break;
            }
            let probe = match self.breaker.admit(now) {
                Admit::Yes => false,
                Admit::Probe => true,
                Admit::NotBefore(t) => {
                    blocked = Blocked::Until(t);
                    break;
                }
                Admit::AwaitProbe => {
                    blocked = Blocked::Probe;
                    break;
                }
            };
            let Some(delivery) = self.window.pop_front() else { break };
            if probe {
                self.probe = Some(delivery.event_id.clone());
            }
            self.start_attempt(myself, &cfg, delivery);
        }
        match blocked {
            Blocked::Until(t)
                if self.in_flight.is_empty() && t > crate::now_ms() + self.ctx.settings.idle_keepalive_ms =>
            {
                // Long wait (an open breaker): stop, and let the due set bring us back then.
                self.window.clear();
                self.go_idle(myself, false, t).await;
            }
            Blocked::Head(t, head) if t > crate::now_ms() + self.ctx.settings.idle_keepalive_ms => {
                // A long retry wait of an ordered head: stop; the store reads the head's due
                // time itself (a replay may have made it due since we looked).
                self.go_idle_waiting_on_head(myself, Some(&head)).await;
            }
            Blocked::Until(t) | Blocked::Head(t, _) => self.wake_at(myself, t),
            Blocked::Probe => {}
            Blocked::No if self.in_flight.is_empty() && self.window.is_empty() => self.go_idle(myself, false, 0).await,
            Blocked::No => {}
        }
    }

    async fn settle_expired(&mut self, cfg: &EndpointConfig, delivery: QueuedDelivery) {
        let record = AttemptRecord {
            at_ms: crate::now_ms(),
            status_code: None,
            latency_ms: 0,
            response_excerpt: String::new(),
            error: Some("event expired before delivery".into()),
        };
        let next = Next::Dead("event_expired".into());
        let number = delivery.attempts + 1;
        match self
            .ctx
            .store
            .record_attempt(
                &self.lease_token,
                cfg,
                self.shard,
                &delivery.event_id,
                number,
                &record,
                &next,
            )
            .await
        {
            Ok(()) => {
                count_dead_letter(self.ctx.settings.metric_labels, &cfg.tenant, "expired");
                tracing::info!(
                    tenant = %cfg.tenant, endpoint_id = %cfg.id, event_id = %delivery.event_id,
                    delivery_id = %crate::model::delivery_id(&cfg.id, &delivery.event_id), attempt = number,
                    reason = "event_expired", "delivery dead-lettered"
                );
            }
            Err(e) => {
                if matches!(e, crate::StoreError::Fenced(_)) {
                    self.ctx.leases.revoke(self.shard);
                }
                tracing::warn!(
                tenant = %cfg.tenant, endpoint_id = %cfg.id, event_id = %delivery.event_id,
                delivery_id = %crate::model::delivery_id(&cfg.id, &delivery.event_id), attempt = number,
                error = %e, "recording an expired delivery failed"
                );
            }
        }
    }

    fn start_attempt(&mut self, myself: &ActorRef<EndpointMsg>, cfg: &EndpointConfig, delivery: QueuedDelivery) {
        let Some(body) = delivery.body else { return };
        let started_ms = crate::now_ms();
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
        let (attempts_before, cycle_base) = (delivery.attempts, delivery.cycle_base);
        let event_id = delivery.event_id.clone();
        let task = tokio::spawn(async move {
            let response = transport.send(request).await;
            reply_to
                .send_message(EndpointMsg::AttemptDone {
                    event_id,
                    attempts_before,
                    cycle_base,
                    started_ms,
                    response,
                })
                .ok();
        });
        self.in_flight.insert(delivery.event_id, InFlight(task.abort_handle()));
    }

    /// Disable the endpoint (its queue is kept; `enable` resumes it). `gone`: the receiver
    /// answered 410. `failing`: it failed without a break for `health.disable_after_s`; the
    /// tenant's endpoints subscribed to `hookline.endpoint.disabled` are told.
    async fn disable(&mut self, cfg: &EndpointConfig, reason: &str) {
        if self.cfg.as_ref().is_none_or(|c| c.disabled) {
            // Attempts still in flight when it was disabled: once is enough.
            return;
        }
        tracing::warn!(tenant = %cfg.tenant, endpoint_id = %cfg.id, reason, "disabling the endpoint");
        match self.ctx.store.disable_endpoint(&cfg.id, reason).await {
            Ok(updated) => self.cfg = updated,
            Err(e) => {
                tracing::warn!(endpoint_id = %cfg.id, error = %e, "disabling the endpoint failed");
                return;
            }
        }
        if reason == "failing" {
            let data = serde_json::json!({
                "endpoint_id": cfg.id,
                "url": cfg.url,
                "reason": reason,
                "failing_since": self.failing_since_ms,
            });
            if let Err(e) = self
                .ctx
                .store
                .emit_event(&cfg.tenant, ENDPOINT_DISABLED_EVENT, data)
                .await
            {
                tracing::warn!(endpoint_id = %cfg.id, error = %e, "emitting the endpoint-disabled event failed");
            }
        }
    }

    /// Nothing to start now: keep a timer for work due soon, otherwise stop (the due set in
    /// Redis remembers when this endpoint has work again, not before `not_before_ms`).
    async fn go_idle(&mut self, myself: &ActorRef<EndpointMsg>, paused: bool, not_before_ms: u64) {
        let settled = self
            .ctx
            .store
            .settle_idle(
                &self.lease_token,
                &self.endpoint_id,
                self.shard,
                paused,
                not_before_ms,
                None,
            )
            .await;
        self.after_settle(myself, paused, settled);
    }

    /// `go_idle` for an ordered endpoint whose head waits for its retry.
    async fn go_idle_waiting_on_head(&mut self, myself: &ActorRef<EndpointMsg>, head: Option<&str>) {
        let settled = self
            .ctx
            .store
            .settle_idle(&self.lease_token, &self.endpoint_id, self.shard, false, 0, head)
            .await;
        self.after_settle(myself, false, settled);
    }

    fn after_settle(
        &mut self,
        myself: &ActorRef<EndpointMsg>,
        paused: bool,
        settled: crate::store::StoreResult<Option<u64>>,
    ) {
        match settled {
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
            Err(crate::StoreError::Fenced(shard)) => {
                // The shard is another node's now (or ours under a newer lease): its owner
                // decides about this endpoint's due entry. Start nothing more here.
                self.ctx.leases.revoke(shard);
                tracing::warn!(endpoint_id = %self.endpoint_id, shard, "not the lease holder any more; stopping");
                myself.stop(Some("fenced".into()));
            }
            Err(e) => {
                tracing::warn!(endpoint_id = %self.endpoint_id, error = %e, "settling the queue failed");
                self.wake_at(myself, crate::now_ms() + STORE_RETRY.as_millis() as u64);
            }
        }
    }

    /// Feed an attempt's result to the breaker and the failure clock; disable the endpoint
    /// once it has failed without a break for `disable_after_ms`. While the breaker is half-open
    /// only the probe's result counts (an older attempt finishing late says nothing new), and
    /// any answer but a retryable failure shows the receiver is reachable again.
    async fn observe_health(&mut self, cfg: &EndpointConfig, event_id: &str, outcome: &Outcome) {
        let now = crate::now_ms();
        let is_probe = self.probe.as_deref() == Some(event_id);
        if is_probe {
            self.probe = None;
        }
        let (success, failure) = match outcome {
            Outcome::Delivered => (true, false),
            Outcome::Retry { .. } => (false, true),
            // A receiver refusing one event (4xx) or gone (410) is not an outage.
            Outcome::Permanent { .. } | Outcome::Gone => (false, false),
        };
        let mut changed = false;
        let was_closed = self.breaker.state_name() == "closed";
        if self.breaker.is_half_open() {
            if is_probe {
                changed |= self.breaker.observe(now, !failure);
            }
        } else if success || failure {
            changed |= self.breaker.observe(now, success);
        }
        if was_closed && self.breaker.state_name() == "open" {
            metrics::counter!(crate::names::BREAKERS_OPENED).increment(1);
            tracing::info!(tenant = %cfg.tenant, endpoint_id = %cfg.id, "circuit breaker opened");
        }
        if success {
            changed |= self.failing_since_ms.take().is_some();
        } else if failure && self.failing_since_ms.is_none() {
            self.failing_since_ms = Some(now);
            changed = true;
        }
        if changed {
            self.save_health().await;
        }
        if let Some(since) = self.failing_since_ms {
            if failure && now.saturating_sub(since) >= self.ctx.settings.disable_after_ms {
                self.disable(cfg, "failing").await;
            }
        }
    }

    /// An attempt's response is in: classify it, decide the delivery's next state, and queue
    /// the record (`record_unrecorded`).
    async fn attempt_done(
        &mut self,
        myself: &ActorRef<EndpointMsg>,
        event_id: String,
        attempts_before: u32,
        cycle_base: u32,
        started_ms: u64,
        response: AttemptResponse,
    ) {
        let Some(cfg) = self.cfg.clone() else {
            // Deleted meanwhile: nothing to record; stop (or finish a drain) once idle.
            self.in_flight.remove(&event_id);
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
            Outcome::Retry { retry_after } => {
                match retry_delay(schedule, attempts.saturating_sub(cycle_base), rand::random::<f64>()) {
                    Some(delay) => {
                        Next::RetryAt(crate::now_ms() + honour_retry_after(delay, *retry_after).as_millis() as u64)
                    }
                    None => Next::Dead("retries_exhausted".into()),
                }
            }
            Outcome::Permanent { reason } => Next::Dead(reason.clone()),
            Outcome::Gone => Next::Dead("gone".into()),
        };
        let labels = self.ctx.settings.metric_labels;
        let label = outcome_label(&outcome, &next);
        metrics::counter!(
            crate::names::ATTEMPTS,
            labels.with(&[("outcome", label.into())], &cfg.tenant, &cfg.id)
        )
        .increment(1);
        metrics::histogram!(crate::names::ATTEMPT_LATENCY).record(response.latency_ms as f64 / 1000.0);
        tracing::debug!(
            tenant = %cfg.tenant, endpoint_id = %cfg.id, event_id = %event_id,
            delivery_id = %crate::model::delivery_id(&cfg.id, &event_id), attempt = attempts,
            started_ms, status = ?response.status, latency_ms = response.latency_ms, error = ?response.error,
            outcome = label, "attempt finished"
        );
        let record = AttemptRecord {
            at_ms: started_ms,
            status_code: response.status,
            latency_ms: response.latency_ms,
            response_excerpt: response.excerpt,
            error: response.error,
        };
        // The receiver's answer is known now: the breaker and a 410 act on it before anything
        // else starts, whenever the record gets written.
        self.observe_health(&cfg, &event_id, &outcome).await;
        if outcome == Outcome::Gone {
            self.disable(&cfg, "gone").await;
        }
        // The delivery stays in flight (counted against max_in_flight, excluded from pulls)
        // until its record is written.
        self.unrecorded.push((
            FinishedAttempt {
                event_id,
                number: attempts,
                record,
                next,
            },
            outcome,
        ));
        self.record_unrecorded(myself);
    }

    /// Group commit: while one batch of records is being written, attempts that finish wait,
    /// and are written together when it returns (the store issues a batch's writes at once, so
    /// they share round trips). An endpoint with many attempts in flight thus waits about one
    /// Redis round trip per batch, not per attempt; each record costs two tasks and a message
    /// more than an inline write. The batch is written by a task, so the actor goes on
    /// starting attempts; the task is aborted if the actor stops.
    fn record_unrecorded(&mut self, myself: &ActorRef<EndpointMsg>) {
        if self.recording.is_some() || self.unrecorded.is_empty() {
            return;
        }
        let Some(cfg) = self.cfg.clone() else {
            // Deleted meanwhile: nothing to record.
            for (finished, _) in self.unrecorded.drain(..) {
                self.in_flight.remove(&finished.event_id);
            }
            myself.send_message(EndpointMsg::Wake).ok();
            return;
        };
        let batch = std::mem::take(&mut self.unrecorded);
        let finished: Vec<FinishedAttempt> = batch.iter().map(|(f, _)| f.clone()).collect();
        let (store, token, shard, reply_to) = (
            self.ctx.store.clone(),
            self.lease_token.clone(),
            self.shard,
            myself.clone(),
        );
        let tenant = cfg.tenant.clone();
        let writing = tokio::spawn(async move { store.record_attempts(&token, &cfg, shard, &finished).await });
        self.recording = Some(InFlight(writing.abort_handle()));
        tokio::spawn(async move {
            let results = match writing.await {
                Ok(results) => Ok(results),
                // A panic while recording fails the actor (its owner restarts it from Redis)
                // rather than leaving these deliveries in flight forever.
                Err(e) if e.is_panic() => Err(format!("recording attempts failed: {e}")),
                // Aborted: the actor stopped.
                Err(_) => return,
            };
            reply_to
                .send_message(EndpointMsg::Recorded { batch, tenant, results })
                .ok();
        });
    }

    /// A batch of records was written (or not): free the slots, count, feed the breaker.
    async fn recorded(
        &mut self,
        myself: &ActorRef<EndpointMsg>,
        batch: Vec<(FinishedAttempt, Outcome)>,
        tenant: String,
        results: Vec<crate::store::StoreResult<()>>,
    ) {
        self.recording = None;
        let mut failed = false;
        let mut results = results.into_iter();
        let labels = self.ctx.settings.metric_labels;
        for (finished, outcome) in batch {
            // One result per record; a store that answered fewer leaves the rest unrecorded.
            let result = results
                .next()
                .unwrap_or_else(|| Err(crate::StoreError::Unavailable("no result for this record".into())));
            self.in_flight.remove(&finished.event_id);
            let FinishedAttempt {
                event_id,
                number: attempts,
                next,
                ..
            } = finished;
            let Some(cfg) = self.cfg.clone() else {
                // Deleted while being recorded: what was written still counts.
                if result.is_ok() {
                    count_recorded(&outcome, &next, &event_id, attempts, labels, &tenant);
                }
                continue;
            };
            match result {
                Ok(()) => {
                    count_recorded(&outcome, &next, &event_id, attempts, labels, &cfg.tenant);
                    if let Next::Dead(reason) = &next {
                        tracing::info!(
                            tenant = %cfg.tenant, endpoint_id = %cfg.id, event_id = %event_id,
                            delivery_id = %crate::model::delivery_id(&cfg.id, &event_id), attempt = attempts,
                            reason = %reason, "delivery dead-lettered"
                        );
                    }
                    if let Next::RetryAt(at) = next {
                        if at.saturating_sub(crate::now_ms()) <= self.ctx.settings.idle_keepalive_ms {
                            self.wake_at(myself, at);
                        }
                    }
                }
                Err(e) => {
                    // The delivery is still queued at its old time: it is attempted again once
                    // the store answers (at least once, possibly twice), by whichever node owns
                    // it then.
                    if matches!(e, crate::StoreError::Fenced(_)) {
                        self.ctx.leases.revoke(self.shard);
                    }
                    tracing::warn!(
                        tenant = %cfg.tenant, endpoint_id = %cfg.id, event_id = %event_id,
                        delivery_id = %crate::model::delivery_id(&cfg.id, &event_id), attempt = attempts,
                        error = %e, "recording an attempt failed"
                    );
                    failed = true;
                }
            }
        }
        self.record_unrecorded(myself);
        if failed {
            self.window.clear();
            self.wake_at(myself, crate::now_ms() + STORE_RETRY.as_millis() as u64);
            self.finish_drain_if_idle(myself);
            return;
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
        let health = args.ctx.store.load_health(&args.endpoint_id, args.shard).await?;
        // Without it the limit still holds, only less tightly across this restart.
        let saved_bucket = args
            .ctx
            .store
            .load_bucket(&args.endpoint_id, args.shard)
            .await
            .ok()
            .flatten();
        myself.send_message(EndpointMsg::Wake)?;
        Ok(EndpointState {
            breaker: Breaker::new(args.ctx.settings.breaker.clone(), health.breaker),
            failing_since_ms: health.failing_since_ms,
            saved_bucket,
            lease_token: args.ctx.leases.token(&args.ctx.settings.node_id, args.shard),
            ctx: args.ctx,
            endpoint_id: args.endpoint_id,
            shard: args.shard,
            cfg,
            window: VecDeque::new(),
            in_flight: HashMap::new(),
            timer: None,
            drain_waiters: Vec::new(),
            draining: false,
            limiter: None,
            probe: None,
            unrecorded: Vec::new(),
            recording: None,
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
                // Enabling an endpoint resets its health in Redis: take that reset, and only
                // that (the stored record lags the live breaker, e.g. during a probe).
                if let Ok(health) = state.ctx.store.load_health(&state.endpoint_id, state.shard).await {
                    if health == HealthRecord::default() && state.health() != health {
                        state.breaker = Breaker::new(state.ctx.settings.breaker.clone(), health.breaker);
                        state.failing_since_ms = None;
                        state.probe = None;
                    }
                }
                state.window.clear();
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
        // The rate limit holds across owners and restarts: the next actor, here or on the
        // node the shard moves to, resumes this bucket until it would be full again. Only
        // while the lease is surely ours (and fenced besides).
        let now = crate::now_ms();
        if let Some(bucket) = state.limiter.as_ref().filter(|_| state.cfg.is_some()) {
            let ttl_ms = bucket.ms_until_full(now);
            if ttl_ms > 0 && state.ctx.leases.valid(state.shard, now) {
                let saved = state
                    .ctx
                    .store
                    .save_bucket(
                        &state.lease_token,
                        &state.endpoint_id,
                        state.shard,
                        &bucket.record(),
                        ttl_ms,
                    )
                    .await;
                if let Err(e) = saved {
                    tracing::warn!(endpoint_id = %state.endpoint_id, error = %e, "saving the rate limiter failed");
                }
            }
        }
        for waiter in state.drain_waiters.drain(..) {
            waiter.send(()).ok();
        }
        Ok(())
    }
}

/// The outcome label of a finished attempt (see `names::ATTEMPTS`).
fn outcome_label(outcome: &Outcome, next: &Next) -> &'static str {
    match (outcome, next) {
        (_, Next::Delivered) => "success",
        (_, Next::RetryAt(_)) => "retry",
        (Outcome::Retry { .. }, Next::Dead(_)) => "dead",
        (_, Next::Dead(_)) => "failed",
    }
}

/// Count what an attempt settled, once its record is stored (a failed write means the
/// attempt is made again, and must not be counted twice): end-to-end latency of a delivery,
/// a retry by attempt number, a dead letter by cause.
fn count_recorded(
    outcome: &Outcome,
    next: &Next,
    event_id: &str,
    attempt: u32,
    labels: crate::names::MetricLabels,
    tenant: &str,
) {
    use std::sync::atomic::Ordering::Relaxed;
    match (outcome, next) {
        (_, Next::Delivered) => {
            crate::names::SETTLED.fetch_add(1, Relaxed);
            if let Some(ingested) = crate::model::event_time_ms(event_id) {
                let e2e = crate::now_ms().saturating_sub(ingested);
                metrics::histogram!(crate::names::E2E_LATENCY).record(e2e as f64 / 1000.0);
            }
        }
        (_, Next::RetryAt(_)) => {
            let n = if attempt >= 10 {
                "10+".to_string()
            } else {
                attempt.to_string()
            };
            metrics::counter!(crate::names::RETRIES_SCHEDULED, "attempt" => n).increment(1);
        }
        (outcome, Next::Dead(reason)) => {
            let cause = match outcome {
                Outcome::Retry { .. } => "exhausted",
                Outcome::Gone => "gone",
                _ if reason == "destination_blocked" => "blocked",
                _ => "permanent",
            };
            count_dead_letter(labels, tenant, cause);
        }
    }
}

/// A delivery dead-lettered (and so settled): `hookline_dead_letters_total{cause[, tenant]}`.
fn count_dead_letter(labels: crate::names::MetricLabels, tenant: &str, cause: &'static str) {
    crate::names::SETTLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let labels = labels.with_tenant(&[("cause", cause.to_string())], tenant);
    metrics::counter!(crate::names::DEAD_LETTERS, labels).increment(1);
}
