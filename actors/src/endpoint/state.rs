//! The endpoint actor's state and its fill loop: pull a window when there is room, admit and
//! start attempts, and go idle (settling the due entry) when nothing is admissible soon.

use super::admission::{admit, Admission, Ask, Gates, LEASE_RECHECK_MS};
use super::{ordered, EndpointMsg};
use crate::breaker::Admit;
use crate::ctx::Ctx;
use crate::model::{DeadReason, EndpointConfig, FinishedAttempt, HealthRecord, PayloadMode, QueuedDelivery};
use crate::outcome::Outcome;
use crate::store::{StoreError, StoreResult};
use crate::transport::{AttemptRequest, ReceiverAuth, TransformSpec};
use ractor::{ActorRef, RpcReplyPort};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// How soon an actor tries again after the store failed it.
pub(super) const STORE_RETRY_MS: u64 = 1_000;

/// Answered attempts whose records may wait, per `max_in_flight` slot: past this, no attempt
/// starts until records are written (a slow store slows the endpoint instead of piling up).
pub(super) const ANSWERED_PER_SLOT: usize = 4;

/// A pending `send_after` wake-up.
pub(super) type Timer = tokio::task::JoinHandle<Result<(), ractor::MessagingErr<EndpointMsg>>>;

/// An attempt's task, aborted if the actor goes away before the attempt ends (its state is
/// dropped when it stops or is killed): once the node gives the shard up, nothing it started
/// may still be talking to the receiver while the next owner starts.
pub(super) struct InFlight(pub(super) tokio::task::AbortHandle);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An attempt waiting for its receiver's answer (aborted if the actor drops it).
pub(super) struct Attempting {
    pub(super) _task: InFlight,
    /// The delivery's `QueuedDelivery::new_record`, for the attempt's record.
    pub(super) new_record: Option<f64>,
}

pub struct EndpointState {
    pub(super) ctx: Arc<Ctx>,
    pub(super) endpoint_id: String,
    pub(super) shard: u32,
    /// The fencing token of the lease this actor works under (`node#epoch`), taken at start.
    pub(super) lease_token: String,
    /// That lease's epoch: the actor starts nothing once the shard's lease is another one.
    pub(super) lease_epoch: u64,
    /// `None` once the endpoint was deleted.
    pub(super) cfg: Option<EndpointConfig>,
    pub(super) window: VecDeque<QueuedDelivery>,
    /// Attempts waiting for their receiver's answer: at most `max_in_flight`.
    pub(super) in_flight: HashMap<String, Attempting>,
    /// Attempts answered whose record is not written yet: never pulled again meanwhile, and the
    /// actor is not idle while any is left, but they hold no receiver slot (except on an
    /// ordered endpoint: its next head waits for the record). At most `ANSWERED_PER_SLOT` ×
    /// `max_in_flight`.
    pub(super) answered: HashSet<String>,
    /// The store accepted a record under this actor's lease token: until then a slot frees only
    /// when its record is written, so an actor working under a stale lease (`Fenced`) makes no
    /// more attempts than before pipelining.
    pub(super) token_confirmed: bool,
    pub(super) timer: Option<(u64, Timer)>,
    /// A config reload that failed while Redis was away is tried again by this timer (one at a
    /// time: a later change's reload replaces it).
    pub(super) config_retry: Option<Timer>,
    /// Since when the queue has been empty and nothing busy (`idle_linger_ms`), if it is.
    pub(super) idle_since: Option<u64>,
    /// It has started an attempt since it started: only then does it linger when the queue
    /// empties (an actor started for nothing, e.g. by a config change, settles at once).
    pub(super) worked: bool,
    /// Its last pull took everything then due (fewer than it asked for), and nothing has
    /// woken it since: the next fill need not ask the queue again. What adds work wakes the
    /// actor (the router, a replay, its own retry timers, a record that a replay requeued), and
    /// the settle at the linger's end reads the queue anyway. Never set for an ordered
    /// endpoint (it pulls its head each time).
    pub(super) drained: bool,
    /// With `drained`: when the earliest queued delivery it has not pulled comes due, as far as
    /// it knows (its last pull's `next_due_ms`, and the retries it recorded since).
    pub(super) next_due: Option<u64>,
    /// The ids it pulled lately (`recent.rs`).
    pub(super) recent: super::recent::Recent,
    pub(super) drain_waiters: Vec<RpcReplyPort<()>>,
    pub(super) draining: bool,
    /// The breaker and the rate limiter.
    pub(super) gates: Gates,
    pub(super) failing_since_ms: Option<u64>,
    /// The event id of the half-open breaker's probe in flight: only its result decides.
    pub(super) probe: Option<String>,
    /// Finished attempts waiting for the batch being recorded (see `record_unrecorded`).
    pub(super) unrecorded: Vec<(FinishedAttempt, Outcome)>,
    /// The task writing a batch of records, while one is being written.
    pub(super) recording: Option<InFlight>,
    /// Operational events not yet stored (`notices`).
    pub(super) notices: Vec<super::notices::Notice>,
}

impl EndpointState {
    pub(super) fn now(&self) -> u64 {
        self.ctx.now_ms()
    }

    /// Attempts in flight or answered and not yet recorded: the actor is busy.
    pub(super) fn busy(&self) -> bool {
        !self.in_flight.is_empty() || !self.answered.is_empty()
    }

    /// Is there room for one more attempt? A slot frees when the receiver answers; an ordered
    /// endpoint's, when the answer is recorded (its head may stay the head), and every slot so
    /// until the store has accepted one of this actor's records (`token_confirmed`).
    fn room(&self, cfg: &EndpointConfig, max: usize) -> bool {
        let pipelined = self.token_confirmed && !cfg.ordered;
        let used = self.in_flight.len() + if pipelined { 0 } else { self.answered.len() };
        used < max && self.answered.len() < max * ANSWERED_PER_SLOT
    }

    /// Ordered endpoints take one attempt at a time, whatever `max_in_flight` says.
    fn max_in_flight(&self, cfg: &EndpointConfig) -> usize {
        if cfg.ordered {
            return 1;
        }
        cfg.max_in_flight
            .unwrap_or(self.ctx.settings.default_max_in_flight)
            .max(1) as usize
    }

    pub(super) fn health(&self) -> HealthRecord {
        HealthRecord {
            breaker: self.gates.breaker.record().clone(),
            failing_since_ms: self.failing_since_ms,
        }
    }

    /// May this actor start attempts now: the node holds the shard under the lease the actor
    /// started with (`LeaseClock::valid_for`)?
    pub(super) fn lease_valid(&self, now: u64) -> bool {
        self.ctx.leases.valid_for(self.shard, self.lease_epoch, now)
    }

    /// A write of this actor was refused: the shard is another node's now (or ours under a
    /// newer lease), so this node starts nothing more on it until a renewal says otherwise.
    pub(super) fn note_store_error(&self, e: &StoreError) {
        if let StoreError::Fenced(shard) = e {
            self.ctx.leases.revoke_epoch(*shard, self.lease_epoch);
        }
    }

    /// Save the breaker and failure run for the next owner; fenced by the lease token.
    pub(super) async fn save_health(&self) {
        let saved = self
            .ctx
            .stores
            .endpoints
            .save_health(Some(&self.lease_token), &self.endpoint_id, self.shard, &self.health())
            .await;
        if let Err(e) = saved {
            self.note_store_error(&e);
            tracing::warn!(endpoint_id = %self.endpoint_id, error = %e, "saving endpoint health failed");
        }
    }

    /// The rate limit holds across owners and restarts: the next actor, here or on the node
    /// the shard moves to, resumes this bucket until it would be full again. Only while the
    /// lease is surely ours (and fenced besides).
    pub(super) async fn save_bucket(&self) {
        let now = self.now();
        let Some(bucket) = self.gates.limiter.as_ref().filter(|_| self.cfg.is_some()) else {
            return;
        };
        let ttl_ms = bucket.ms_until_full(now);
        if ttl_ms == 0 || !self.lease_valid(now) {
            return;
        }
        let saved = self
            .ctx
            .stores
            .endpoints
            .save_bucket(
                &self.lease_token,
                &self.endpoint_id,
                self.shard,
                &bucket.record(),
                ttl_ms,
            )
            .await;
        if let Err(e) = saved {
            tracing::warn!(endpoint_id = %self.endpoint_id, error = %e, "saving the rate limiter failed");
        }
    }

    /// Drop the deliveries pulled but not started: they are still queued, so the next fill
    /// pulls again.
    pub(super) fn drop_window(&mut self) {
        self.window.clear();
        self.drained = false;
    }

    /// Try again after the store failed.
    pub(super) fn retry_soon(&mut self, myself: &ActorRef<EndpointMsg>) {
        self.drained = false;
        let at = self.now() + STORE_RETRY_MS;
        self.wake_at(myself, at);
    }

    pub(super) fn finish_drain_if_idle(&mut self, myself: &ActorRef<EndpointMsg>) -> bool {
        if !self.draining || self.busy() {
            return false;
        }
        // The drain waiters are answered in `post_stop`, once the limiter is saved.
        myself.stop(Some("drained".into()));
        true
    }

    /// Start what may start; otherwise wait, or go idle.
    pub(super) async fn fill(&mut self, myself: &ActorRef<EndpointMsg>) {
        if self.finish_drain_if_idle(myself) || self.draining {
            return;
        }
        let Some(cfg) = self.cfg.clone() else {
            self.forget_if_idle(myself).await;
            return;
        };
        if cfg.disabled {
            self.drop_window();
            if !self.busy() {
                self.go_idle(myself, true, 0, None).await;
            }
            return;
        }
        let max = self.max_in_flight(&cfg);
        if !self.room(&cfg, max) || !self.may_pull(myself).await {
            return;
        }
        if self.window.is_empty() {
            if self.lingered_out() {
                self.go_idle(myself, false, 0, None).await;
                return;
            }
            if !self.drained && !self.pull(myself, &cfg, max).await {
                return;
            }
        }
        let blocked = self.start_admitted(myself, &cfg, max).await;
        self.after_fill(myself, blocked).await;
    }

    /// The endpoint is gone. Once nothing is in flight, work routed after the deletion (by a
    /// node whose index was stale) is dropped with the due entry, so the due poll does not
    /// restart this actor for ever.
    async fn forget_if_idle(&mut self, myself: &ActorRef<EndpointMsg>) {
        if self.busy() {
            return;
        }
        match self
            .ctx
            .stores
            .endpoints
            .forget_endpoint(&self.endpoint_id, self.shard)
            .await
        {
            Ok(_) => myself.stop(Some("endpoint deleted".into())),
            Err(e) => {
                tracing::warn!(endpoint_id = %self.endpoint_id, error = %e, "forgetting a deleted endpoint failed");
                self.retry_soon(myself);
            }
        }
    }

    /// May the window be (re)filled now? Fencing: nothing is pulled, settled or started once
    /// this node's lease on the shard may have run out (a pause, no Redis: either a renewal
    /// succeeds or the owner stops us). Nor while the breaker is open: nothing to pull before
    /// its probe.
    async fn may_pull(&mut self, myself: &ActorRef<EndpointMsg>) -> bool {
        let now = self.now();
        if !self.lease_valid(now) {
            self.drop_window();
            self.wake_at(myself, now + LEASE_RECHECK_MS);
            return false;
        }
        if let Admit::NotBefore(t) = self.gates.breaker.peek(now) {
            self.drop_window();
            if !self.busy() && t > now + self.ctx.settings.idle_keepalive_ms {
                self.go_idle(myself, false, t, None).await;
            } else {
                self.wake_at(myself, t);
            }
            return false;
        }
        true
    }

    /// Pull the next window from the queue; false if the store failed (a retry is set).
    async fn pull(&mut self, myself: &ActorRef<EndpointMsg>, cfg: &EndpointConfig, max: usize) -> bool {
        let exclude: Vec<String> = self.in_flight.keys().chain(&self.answered).cloned().collect();
        let limit = self.ctx.settings.window.max(max);
        let now = self.now();
        match self
            .ctx
            .stores
            .endpoints
            .pull_window(cfg, self.shard, now, limit, &exclude)
            .await
        {
            Ok(pulled) => {
                self.drained = !cfg.ordered && pulled.deliveries.len() < limit;
                self.next_due = pulled.next_due_ms.filter(|_| self.drained);
                if !cfg.ordered {
                    pulled.deliveries.iter().for_each(|d| self.recent.note(&d.event_id));
                }
                if let Some(next_due) = pulled.next_due_ms.filter(|_| self.drained) {
                    self.wake_at(myself, next_due);
                }
                let max_hold = self.ctx.settings.ordered_hold_max_ms();
                self.window.extend(ordered::hold_head(pulled, now, max_hold, &cfg.id));
                true
            }
            Err(e) => {
                tracing::warn!(endpoint_id = %self.endpoint_id, error = %e, "pulling the queue failed");
                self.retry_soon(myself);
                false
            }
        }
    }

    /// Start attempts from the front of the window while there is room and admission says
    /// yes; what stopped it, if anything.
    async fn start_admitted(
        &mut self,
        myself: &ActorRef<EndpointMsg>,
        cfg: &EndpointConfig,
        max: usize,
    ) -> Option<(Admission, String)> {
        while self.room(cfg, max) {
            let front = self.window.front()?;
            if front.body.is_none() {
                // The event expired: settled without an attempt, and without admission.
                let delivery = self.window.pop_front()?;
                self.settle_expired(cfg, delivery).await;
                continue;
            }
            let now = self.now();
            let ask = Ask {
                lease_valid: self.lease_valid(now),
                not_before_ms: front.not_before_ms,
                rate_limit_per_s: cfg.rate_limit_per_s,
            };
            match admit(now, &mut self.gates, ask) {
                Admission::Start { probe } => {
                    let delivery = self.window.pop_front()?;
                    if probe {
                        self.probe = Some(delivery.event_id.clone());
                    }
                    self.start_attempt(myself, cfg, delivery);
                }
                blocked => {
                    let head = front.event_id.clone();
                    if !ask.lease_valid || matches!(blocked, Admission::Head(_)) {
                        self.drop_window();
                    }
                    return Some((blocked, head));
                }
            }
        }
        None
    }

    /// Nothing more starts now: wait for what blocked the window, or go idle.
    async fn after_fill(&mut self, myself: &ActorRef<EndpointMsg>, blocked: Option<(Admission, String)>) {
        let keepalive = self.ctx.settings.idle_keepalive_ms;
        let now = self.now();
        match blocked {
            Some((Admission::Until(t), _)) if !self.busy() && t > now + keepalive => {
                // Long wait (an open breaker): stop, and let the due set bring us back then.
                self.drop_window();
                self.go_idle(myself, false, t, None).await;
            }
            Some((Admission::Head(t), head)) if t > now + keepalive => {
                // A long retry wait of an ordered head: stop; the store reads the head's due
                // time itself (a replay may have made it due since we looked).
                self.go_idle(myself, false, 0, Some(&head)).await;
            }
            Some((Admission::Until(t) | Admission::Head(t), _)) => self.wake_at(myself, t),
            Some((Admission::AwaitProbe | Admission::Start { .. }, _)) => {}
            None if !self.busy() && self.window.is_empty() && !self.worked => {
                self.go_idle(myself, false, 0, None).await;
            }
            None if !self.busy() && self.window.is_empty() => self.linger(myself).await,
            None => {}
        }
    }

    /// The queue went empty: wait `idle_linger_ms` for more (a router's wake finds the actor
    /// running, and its next pull costs no start), then settle and stop.
    async fn linger(&mut self, myself: &ActorRef<EndpointMsg>) {
        let since = *self.idle_since.get_or_insert(self.now());
        if self.lingered_out() {
            self.go_idle(myself, false, 0, None).await;
        } else {
            self.wake_at(myself, since + self.ctx.settings.idle_linger_ms);
        }
    }

    /// Idle for all of `idle_linger_ms`: the next look settles rather than pulls (the settle
    /// reads the queue in the same step, so work routed meanwhile is not missed).
    fn lingered_out(&self) -> bool {
        let linger = self.ctx.settings.idle_linger_ms;
        !self.busy() && self.idle_since.is_some_and(|since| self.now() >= since + linger)
    }

    fn start_attempt(&mut self, myself: &ActorRef<EndpointMsg>, cfg: &EndpointConfig, delivery: QueuedDelivery) {
        let Some(mut body) = delivery.body else { return };
        self.idle_since = None;
        self.worked = true;
        let transform = cfg.transform.as_ref().map(|program| TransformSpec {
            program: program.clone(),
            event: body.clone(),
            endpoint_id: cfg.id.clone(),
            endpoint_metadata: cfg.metadata.clone(),
            event_metadata: delivery.metadata.clone(),
        });
        if cfg.payload_mode == PayloadMode::Thin {
            if let Some(thin) = crate::model::thin_body(&body) {
                body = thin.into();
            }
        }
        let started_ms = self.now();
        let request = AttemptRequest {
            url: cfg.url.clone(),
            event_id: delivery.event_id.clone(),
            body,
            secrets: cfg.live_secrets(started_ms),
            headers: cfg.headers.clone(),
            timeout: Duration::from_millis(cfg.timeout_ms.unwrap_or(self.ctx.settings.default_timeout_ms)),
            auth: ReceiverAuth::of(cfg),
            transform,
            kind: cfg.kind,
            trace: delivery.trace.as_ref().map(|context| crate::transport::TraceRef {
                context: context.clone(),
                endpoint_id: cfg.id.clone(),
                attempt: delivery.attempts + 1,
            }),
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
        let attempting = Attempting {
            _task: InFlight(task.abort_handle()),
            new_record: delivery.new_record,
        };
        self.in_flight.insert(delivery.event_id, attempting);
    }

    /// Nothing to start now: keep a timer for work due soon, otherwise stop (the due set in
    /// Redis remembers when this endpoint has work again, not before `not_before_ms`). An
    /// ordered endpoint whose head waits for its retry passes the head (`ordered_head`).
    pub(super) async fn go_idle(
        &mut self,
        myself: &ActorRef<EndpointMsg>,
        paused: bool,
        not_before_ms: u64,
        ordered_head: Option<&str>,
    ) {
        let settled = self
            .ctx
            .stores
            .endpoints
            .settle_idle(
                &self.lease_token,
                &self.endpoint_id,
                self.shard,
                paused,
                not_before_ms,
                ordered_head,
            )
            .await;
        self.after_settle(myself, paused, settled);
    }

    fn after_settle(&mut self, myself: &ActorRef<EndpointMsg>, paused: bool, settled: StoreResult<Option<u64>>) {
        match settled {
            Ok(Some(due)) if !paused => {
                let now = self.now();
                if due <= now {
                    // Work came while it settled: pull it, no linger first.
                    self.idle_since = None;
                    myself.send_message(EndpointMsg::Wake).ok();
                } else if due - now <= self.ctx.settings.idle_keepalive_ms {
                    self.wake_at(myself, due);
                } else {
                    myself.stop(Some("idle".into()));
                }
            }
            Ok(_) => myself.stop(Some("idle".into())),
            Err(StoreError::Fenced(shard)) => {
                // The shard is another node's now (or ours under a newer lease): its owner
                // decides about this endpoint's due entry. Start nothing more here.
                self.ctx.leases.revoke_epoch(shard, self.lease_epoch);
                tracing::warn!(endpoint_id = %self.endpoint_id, shard, "not the lease holder any more; stopping");
                myself.stop(Some("fenced".into()));
            }
            Err(e) => {
                tracing::warn!(endpoint_id = %self.endpoint_id, error = %e, "settling the queue failed");
                self.retry_soon(myself);
            }
        }
    }

    /// A delivery whose event expired: dead-lettered without an attempt.
    async fn settle_expired(&mut self, cfg: &EndpointConfig, delivery: QueuedDelivery) {
        let finished = FinishedAttempt {
            event_id: delivery.event_id,
            number: delivery.attempts + 1,
            record: crate::model::AttemptRecord {
                at_ms: self.now(),
                status_code: None,
                latency_ms: 0,
                response_excerpt: String::new(),
                error: Some("event expired before delivery".into()),
            },
            next: crate::model::Next::Dead(DeadReason::EventExpired),
            new_record: delivery.new_record,
        };
        let written = self
            .ctx
            .stores
            .endpoints
            .record_attempts(&self.lease_token, cfg, self.shard, std::slice::from_ref(&finished))
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::unavailable("no result for this record")));
        let (event_id, number) = (&finished.event_id, finished.number);
        let delivery_id = crate::model::delivery_id(&cfg.id, event_id);
        match written {
            Ok(crate::store::Recorded::Requeued) => {
                // Replayed meanwhile: queued again, and this actor pulls it again.
                self.drained = false;
            }
            Ok(crate::store::Recorded::KeptDead) => {}
            Ok(crate::store::Recorded::AsDecided) => {
                super::record::count_dead_letter(self.ctx.settings.metric_labels, &cfg.tenant, "expired");
                self.note_dead_letters(vec![(DeadReason::EventExpired.to_string(), 1)])
                    .await;
                tracing::info!(
                    tenant = %cfg.tenant, endpoint_id = %cfg.id, event_id = %event_id,
                    delivery_id = %delivery_id, attempt = number,
                    reason = "event_expired", "delivery dead-lettered"
                );
            }
            Err(e) => {
                // Still queued and due: the next fill (or timer) pulls it again.
                self.drained = false;
                self.note_store_error(&e);
                tracing::warn!(
                    tenant = %cfg.tenant, endpoint_id = %cfg.id, event_id = %event_id,
                    delivery_id = %delivery_id, attempt = number,
                    error = %e, "recording an expired delivery failed"
                );
            }
        }
    }
}
