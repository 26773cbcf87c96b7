//! What happens when an attempt ends: classify the answer, feed the breaker and the failure
//! clock (disabling the endpoint when it has failed too long, or answered 410), and record the
//! attempt with its delivery's next state, in group commits.

use super::notices::Notice;
use super::state::{EndpointState, InFlight};
use super::EndpointMsg;
use crate::backoff::{honour_retry_after, retry_delay};
use crate::breaker::BreakerState;
use crate::model::{AttemptRecord, DeadReason, EndpointConfig, FinishedAttempt, Next};
use crate::names::MetricLabels;
use crate::outcome::{classify, Outcome};
use crate::store::{Recorded, StoreError, StoreResult};
use crate::transport::AttemptResponse;
use ractor::ActorRef;

/// Why the node disabled an endpoint (`disabled_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DisableReason {
    /// The receiver answered 410.
    Gone,
    /// It failed without a break for `health.disable_after_s`.
    Failing,
}

impl DisableReason {
    fn as_str(self) -> &'static str {
        match self {
            DisableReason::Gone => "gone",
            DisableReason::Failing => "failing",
        }
    }
}

impl EndpointState {
    /// An attempt's response is in: classify it, decide the delivery's next state, and queue
    /// the record (`record_unrecorded`).
    pub(super) async fn attempt_done(
        &mut self,
        myself: &ActorRef<EndpointMsg>,
        event_id: String,
        attempts_before: u32,
        cycle_base: u32,
        started_ms: u64,
        mut response: AttemptResponse,
    ) {
        let Some(cfg) = self.cfg.clone() else {
            // Deleted meanwhile: nothing to record; stop (or finish a drain) once idle.
            if let Some(span) = response.trace.take() {
                span.end("endpoint_deleted");
            }
            self.in_flight.remove(&event_id);
            self.fill(myself).await;
            return;
        };
        let attempts = attempts_before + 1;
        let outcome = classify(&response);
        let next = self.next_state(&cfg, &outcome, attempts.saturating_sub(cycle_base));
        let label = outcome_label(&outcome, &next);
        let trace = response.trace.take();
        if let Some(span) = &trace {
            span.end(label);
        }
        let trace_id = trace.map(|t| t.trace_id());
        let labels = self
            .ctx
            .settings
            .metric_labels
            .with(&[("outcome", label.into())], &cfg.tenant, &cfg.id);
        metrics::counter!(crate::names::ATTEMPTS, labels).increment(1);
        metrics::histogram!(crate::names::ATTEMPT_LATENCY).record(response.latency_ms as f64 / 1000.0);
        tracing::debug!(
            tenant = %cfg.tenant, endpoint_id = %cfg.id, event_id = %event_id,
            delivery_id = %crate::model::delivery_id(&cfg.id, &event_id), attempt = attempts,
            started_ms, status = ?response.status, latency_ms = response.latency_ms, error = ?response.error,
            outcome = label, trace_id = trace_id.as_deref(), "attempt finished"
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
            self.disable(&cfg, DisableReason::Gone).await;
        }
        // The receiver's slot is free; the delivery stays out of pulls (`answered`) until its
        // record is written.
        let new_record = self.in_flight.remove(&event_id).and_then(|a| a.new_record);
        let finished = FinishedAttempt {
            event_id,
            number: attempts,
            record,
            next,
            new_record,
        };
        self.answered.insert(finished.event_id.clone());
        self.unrecorded.push((finished, outcome));
        self.record_unrecorded(myself);
        // The freed slot takes the next delivery now, while the record is being written.
        self.fill(myself).await;
    }

    /// The delivery's next state after attempt number `in_cycle` of its current cycle.
    fn next_state(&self, cfg: &EndpointConfig, outcome: &Outcome, in_cycle: u32) -> Next {
        let schedule = cfg
            .retry_schedule_s
            .as_deref()
            .unwrap_or(&self.ctx.settings.default_retry_schedule_s);
        match outcome {
            Outcome::Delivered => Next::Delivered,
            Outcome::Retry { retry_after } => match retry_delay(schedule, in_cycle, rand::random::<f64>()) {
                Some(delay) => Next::RetryAt(self.now() + honour_retry_after(delay, *retry_after).as_millis() as u64),
                None => Next::Dead(DeadReason::RetriesExhausted),
            },
            Outcome::Permanent { reason } => Next::Dead(*reason),
            Outcome::Gone => Next::Dead(DeadReason::Gone),
        }
    }

    /// Feed an attempt's result to the breaker and the failure clock; disable the endpoint
    /// once it has failed without a break for `disable_after_ms`. While the breaker is half-open
    /// only the probe's result counts (an older attempt finishing late says nothing new), and
    /// any answer but a retryable failure shows the receiver is reachable again.
    async fn observe_health(&mut self, cfg: &EndpointConfig, event_id: &str, outcome: &Outcome) {
        let now = self.now();
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
        // The transform stopped it before the receiver was asked: nothing about the receiver's
        // health. A probe so stopped is made again at once, with the next delivery.
        let untried = matches!(
            outcome,
            Outcome::Permanent {
                reason: DeadReason::TransformFailed | DeadReason::Cancelled
            }
        );
        let breaker = &mut self.gates.breaker;
        if untried {
            if is_probe {
                breaker.probe_lost();
            }
            return;
        }
        let mut changed = false;
        let was_closed = *breaker.state() == BreakerState::Closed;
        if breaker.is_half_open() {
            if is_probe {
                changed |= breaker.observe(now, !failure);
            }
        } else if success || failure {
            changed |= breaker.observe(now, success);
        }
        let mut notice = None;
        match breaker.state() {
            BreakerState::Open { next_probe_ms, .. } if was_closed => {
                metrics::counter!(crate::names::BREAKERS_OPENED).increment(1);
                tracing::info!(tenant = %cfg.tenant, endpoint_id = %cfg.id, "circuit breaker opened");
                notice = Some(Notice::breaker_opened(cfg, now, Some(*next_probe_ms)));
            }
            BreakerState::Closed if !was_closed => {
                tracing::info!(tenant = %cfg.tenant, endpoint_id = %cfg.id, "circuit breaker closed: recovered");
                notice = Some(Notice::recovered(cfg, now));
            }
            _ => {}
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
        // Told once the new state is saved (a next owner starts from it and tells nothing again).
        if let Some(notice) = notice {
            self.notices.push(notice);
        }
        if !self.notices.is_empty() {
            self.emit_notices().await;
        }
        if let Some(since) = self.failing_since_ms {
            if failure && now.saturating_sub(since) >= self.ctx.settings.disable_after_ms {
                self.disable(cfg, DisableReason::Failing).await;
            }
        }
    }

    /// Disable the endpoint (its queue is kept; `enable` resumes it). Only `Failing` tells the
    /// tenant's endpoints subscribed to `hookline.endpoint.disabled` (after a 410 the receiver
    /// itself asked to stop).
    async fn disable(&mut self, cfg: &EndpointConfig, reason: DisableReason) {
        if self.cfg.as_ref().is_none_or(|c| c.disabled) {
            // Attempts still in flight when it was disabled: once is enough.
            return;
        }
        let reason = reason.as_str();
        tracing::warn!(tenant = %cfg.tenant, endpoint_id = %cfg.id, reason, "disabling the endpoint");
        let store = self.ctx.stores.endpoints.clone();
        match store.disable_endpoint(&cfg.id, cfg.updated_at_ms, reason).await {
            // Changed meanwhile: the actor hears of the new config and judges again.
            Ok(updated)
                if updated
                    .as_ref()
                    .is_none_or(|c| c.disabled_reason.as_deref() != Some(reason)) =>
            {
                self.cfg = updated;
                return;
            }
            Ok(updated) => self.cfg = updated,
            Err(e) => {
                tracing::warn!(endpoint_id = %cfg.id, error = %e, "disabling the endpoint failed");
                return;
            }
        }
        if reason == DisableReason::Failing.as_str() {
            let now = self.now();
            self.notices
                .push(Notice::disabled(cfg, now, reason, self.failing_since_ms));
            self.emit_notices().await;
        }
    }

    /// Group commit: while one batch of records is being written, attempts that finish wait,
    /// and are written together when it returns (the store issues a batch's writes at once, so
    /// they share round trips). An endpoint with many attempts in flight thus waits about one
    /// Redis round trip per batch, not per attempt; each record costs two tasks and a message
    /// more than an inline write. The batch is written by a task, so the actor goes on
    /// starting attempts; the task is aborted if the actor stops.
    pub(super) fn record_unrecorded(&mut self, myself: &ActorRef<EndpointMsg>) {
        if self.recording.is_some() || self.unrecorded.is_empty() {
            return;
        }
        let Some(cfg) = self.cfg.clone() else {
            // Deleted meanwhile: nothing to record.
            for (finished, _) in self.unrecorded.drain(..) {
                self.answered.remove(&finished.event_id);
            }
            myself.send_message(EndpointMsg::Wake).ok();
            return;
        };
        let batch = std::mem::take(&mut self.unrecorded);
        let finished: Vec<FinishedAttempt> = batch.iter().map(|(f, _)| f.clone()).collect();
        let (store, token, shard, reply_to) = (
            self.ctx.stores.endpoints.clone(),
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

    /// A batch of records was written (or not): free the slots, count, log.
    pub(super) async fn recorded(
        &mut self,
        myself: &ActorRef<EndpointMsg>,
        batch: Vec<(FinishedAttempt, Outcome)>,
        tenant: String,
        results: Vec<StoreResult<Recorded>>,
    ) {
        self.recording = None;
        let mut failed = false;
        let mut dead: std::collections::BTreeMap<String, u64> = Default::default();
        let mut results = results.into_iter();
        let labels = self.ctx.settings.metric_labels;
        for (finished, outcome) in batch {
            // One result per record; a store that answered fewer leaves the rest unrecorded.
            let result = results
                .next()
                .unwrap_or_else(|| Err(StoreError::unavailable("no result for this record")));
            self.answered.remove(&finished.event_id);
            let FinishedAttempt {
                event_id,
                number: attempts,
                next,
                ..
            } = finished;
            let Some(cfg) = self.cfg.clone() else {
                // Deleted while being recorded: what was written still counts.
                if result.is_ok() {
                    self.count_recorded(&outcome, &next, &event_id, attempts, labels, &tenant);
                }
                continue;
            };
            let delivery_id = crate::model::delivery_id(&cfg.id, &event_id);
            match result {
                Ok(recorded) => {
                    self.token_confirmed = true;
                    if recorded == Recorded::Requeued {
                        self.drained = false;
                    }
                    self.count_recorded(&outcome, &next, &event_id, attempts, labels, &cfg.tenant);
                    if let Next::Dead(reason) = &next {
                        *dead.entry(reason.to_string()).or_default() += 1;
                        tracing::info!(
                            tenant = %cfg.tenant, endpoint_id = %cfg.id, event_id = %event_id,
                            delivery_id = %delivery_id, attempt = attempts,
                            reason = %reason, "delivery dead-lettered"
                        );
                    }
                    // A retry gets its own wake-up while the actor runs (kept alive, lingering,
                    // or busy with other attempts after a drained pull), not the linger's end;
                    // the sooner timer is kept, and one past the actor's stop is dropped with it
                    // (the settle leaves the retry's time in the due set).
                    if let Next::RetryAt(at) = next {
                        self.next_due = Some(self.next_due.map_or(at, |due| due.min(at)));
                        self.wake_at(myself, at);
                    }
                }
                Err(e) => {
                    // The delivery is still queued at its old time: it is attempted again once
                    // the store answers (at least once, possibly twice), by whichever node owns
                    // it then.
                    self.note_store_error(&e);
                    tracing::warn!(
                        tenant = %cfg.tenant, endpoint_id = %cfg.id, event_id = %event_id,
                        delivery_id = %delivery_id, attempt = attempts,
                        error = %e, "recording an attempt failed"
                    );
                    failed = true;
                }
            }
        }
        self.record_unrecorded(myself);
        if !dead.is_empty() {
            self.note_dead_letters(dead.into_iter().collect()).await;
        }
        if failed {
            self.drop_window();
            self.retry_soon(myself);
            self.finish_drain_if_idle(myself);
            return;
        }
        self.fill(myself).await;
    }

    /// Count what an attempt settled, once its record is stored (a failed write means the
    /// attempt is made again, and must not be counted twice): end-to-end latency of a delivery,
    /// a retry by attempt number, a dead letter by cause.
    fn count_recorded(
        &self,
        outcome: &Outcome,
        next: &Next,
        event_id: &str,
        attempt: u32,
        labels: MetricLabels,
        tenant: &str,
    ) {
        match (outcome, next) {
            (_, Next::Delivered) => {
                crate::names::SETTLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(ingested) = crate::model::event_time_ms(event_id) {
                    let e2e = self.now().saturating_sub(ingested);
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
                    _ if *reason == DeadReason::DestinationBlocked => "blocked",
                    _ => "permanent",
                };
                count_dead_letter(labels, tenant, cause);
            }
        }
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

/// A delivery dead-lettered (and so settled): `hookline_dead_letters_total{cause[, tenant]}`.
pub(super) fn count_dead_letter(labels: MetricLabels, tenant: &str, cause: &'static str) {
    crate::names::SETTLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let labels = labels.with_tenant(&[("cause", cause.to_string())], tenant);
    metrics::counter!(crate::names::DEAD_LETTERS, labels).increment(1);
}
