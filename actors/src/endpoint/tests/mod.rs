//! The endpoint actor on its own, under tokio's paused clock: an in-memory `EndpointStore`
//! (for these unit tests only; the integration tests run it on Redis) and a receiver that
//! answers from a script. Virtual minutes pass in milliseconds of real time.

use super::{EndpointActor, EndpointArgs, EndpointMsg};
use crate::breaker::{BreakerRecord, BreakerSettings, BreakerState};
use crate::ctx::{Clock, Ctx, NodeSettings, Stores, TokioClock};
use crate::limiter::BucketRecord;
use crate::matching::SubscriptionIndex;
use crate::model::{EndpointConfig, FinishedAttempt, HealthRecord, Next, QueuedDelivery};
use crate::store::{EndpointStore, PulledWindow, StoreError, StoreResult};
pub(crate) use fixtures::{endpoint, settings};
use offline::Offline;
use ractor::{Actor, ActorRef};
use receiver::Receiver;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod config;
mod due_set;
mod fixtures;
mod linger;
pub(crate) mod offline;
mod pipelined;
pub(crate) mod receiver;
mod retries;

pub(crate) const START_MS: u64 = 1_763_870_000_000;
pub(crate) const SHARD: u32 = 3;

/// An endpoint's queue, records and health, in memory.
#[derive(Default)]
pub(crate) struct Memory {
    endpoint: Mutex<Option<EndpointConfig>>,
    /// event id → (due ms, attempts so far)
    pub(crate) queue: Mutex<BTreeMap<String, (u64, u32)>>,
    records: Mutex<Vec<FinishedAttempt>>,
    health: Mutex<HealthRecord>,
    /// Refuse every fenced write, as for a node that lost the shard.
    fenced: Mutex<bool>,
    /// Every settle_idle call: (paused, not_before_ms, ordered head).
    settled: Mutex<Vec<(bool, u64, Option<String>)>>,
    /// Every event the actor emitted: (type, idempotency key), one per key.
    emitted: Mutex<Vec<(String, Option<String>)>>,
    /// A dead-letter notice went out (the interval's gate): later counts wait.
    dead_gate: Mutex<bool>,
    /// How long each record batch takes to write (virtual ms).
    record_delay_ms: Mutex<u64>,
    /// Fail this many reads of the config from now on (Redis away).
    config_read_failures: Mutex<u32>,
    /// Reads of the config, failed ones included.
    config_reads: Mutex<u32>,
    /// The endpoint's due entry, and when it was looked at and the queue pulled (`due_set`).
    pub(crate) shard: Mutex<due_set::Seen>,
}

impl Memory {
    pub(crate) fn with(endpoint: EndpointConfig, deliveries: usize) -> Arc<Self> {
        let memory = Memory::default();
        *memory.endpoint.lock().unwrap() = Some(endpoint);
        let mut queue = memory.queue.lock().unwrap();
        for i in 0..deliveries {
            queue.insert(format!("evt_{i:03}"), (START_MS, 0));
        }
        drop(queue);
        Arc::new(memory)
    }

    fn records(&self) -> Vec<FinishedAttempt> {
        self.records.lock().unwrap().clone()
    }

    fn fence(&self) -> StoreResult<()> {
        match *self.fenced.lock().unwrap() {
            true => Err(StoreError::Fenced(SHARD)),
            false => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl EndpointStore for Memory {
    async fn get_endpoint(&self, _: &str) -> StoreResult<Option<EndpointConfig>> {
        *self.config_reads.lock().unwrap() += 1;
        let mut failures = self.config_read_failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return Err(StoreError::unavailable("config read refused by the test"));
        }
        Ok(self.endpoint.lock().unwrap().clone())
    }

    /// Due deliveries by due time; an ordered endpoint gets its head (the lowest event id: ids
    /// are in ingest order here) due or not, its due time as `not_before_ms`, as Redis does.
    async fn pull_window(
        &self,
        endpoint: &EndpointConfig,
        _: u32,
        now_ms: u64,
        limit: usize,
        exclude: &[String],
    ) -> StoreResult<PulledWindow> {
        self.shard.lock().unwrap().pulls.push(now_ms);
        let queue = self.queue.lock().unwrap();
        let mut due: Vec<(u64, String, u32)> = match queue.iter().next() {
            Some((id, (at, attempts))) if endpoint.ordered => vec![(*at, id.clone(), *attempts)],
            _ => (queue.iter())
                .filter(|(id, (at, _))| *at <= now_ms && !exclude.contains(id))
                .map(|(id, (at, attempts))| (*at, id.clone(), *attempts))
                .collect(),
        };
        due.sort();
        let next_due_ms = (queue.iter())
            .filter(|(id, (at, _))| *at > now_ms && !exclude.contains(id) && !endpoint.ordered)
            .map(|(_, (at, _))| *at)
            .min()
            .filter(|_| due.len() < limit);
        let deliveries = due
            .into_iter()
            .take(limit)
            .map(|(at, event_id, attempts)| QueuedDelivery {
                event_id,
                attempts,
                cycle_base: 0,
                body: Some(Arc::from("{}")),
                metadata: None,
                not_before_ms: if endpoint.ordered { at } else { 0 },
                trace: None,
                new_record: None,
            })
            .collect();
        Ok(PulledWindow {
            deliveries,
            next_due_ms,
            ..Default::default()
        })
    }

    async fn record_attempts(
        &self,
        _: &str,
        _: &EndpointConfig,
        _: u32,
        finished: &[FinishedAttempt],
    ) -> Vec<StoreResult<crate::store::Recorded>> {
        let delay = *self.record_delay_ms.lock().unwrap();
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if let Err(e) = self.fence() {
            return finished.iter().map(|_| Err(e.clone())).collect();
        }
        let mut queue = self.queue.lock().unwrap();
        for f in finished {
            match f.next {
                Next::RetryAt(at) => {
                    queue.insert(f.event_id.clone(), (at, f.number));
                }
                Next::Delivered | Next::Dead(_) => {
                    queue.remove(&f.event_id);
                }
            }
            self.records.lock().unwrap().push(f.clone());
        }
        finished.iter().map(|_| Ok(crate::store::Recorded::AsDecided)).collect()
    }

    async fn settle_idle(
        &self,
        _: &str,
        _: &str,
        _: u32,
        paused: bool,
        not_before: u64,
        head: Option<&str>,
    ) -> StoreResult<Option<u64>> {
        self.fence()?;
        self.settled
            .lock()
            .unwrap()
            .push((paused, not_before, head.map(String::from)));
        // With an ordered head, its own due time (as SETTLE_IDLE reads it), else the earliest.
        let queue = self.queue.lock().unwrap();
        let earliest = match head {
            Some(head) => queue.get(head).map(|(at, _)| *at),
            None => queue.values().map(|(at, _)| *at).min(),
        };
        let due = earliest.filter(|_| !paused).map(|at| at.max(not_before));
        self.shard.lock().unwrap().due = due; // as SETTLE_IDLE leaves the due entry
        Ok(due)
    }

    async fn load_health(&self, _: &str, _: u32) -> StoreResult<HealthRecord> {
        Ok(self.health.lock().unwrap().clone())
    }

    async fn save_health(&self, owner: Option<&str>, _: &str, _: u32, health: &HealthRecord) -> StoreResult<()> {
        if owner.is_some() {
            self.fence()?;
        }
        *self.health.lock().unwrap() = health.clone();
        Ok(())
    }

    async fn load_saved(&self, _: &str, _: u32) -> StoreResult<(HealthRecord, Option<BucketRecord>)> {
        Ok((self.health.lock().unwrap().clone(), None))
    }

    async fn save_bucket(&self, _: &str, _: &str, _: u32, _: &BucketRecord, _: u64) -> StoreResult<()> {
        self.fence()
    }

    async fn emit_event(&self, _: &str, ty: &str, _: serde_json::Value, key: Option<&str>) -> StoreResult<String> {
        let mut emitted = self.emitted.lock().unwrap();
        let event = (ty.to_string(), key.map(String::from));
        if key.is_none() || !emitted.contains(&event) {
            emitted.push(event);
        }
        Ok("evt_emitted".into())
    }

    async fn note_dead_letters(
        &self,
        _: &str,
        _: u32,
        reasons: &[(String, u64)],
        _: u64,
    ) -> StoreResult<Option<Vec<(String, u64)>>> {
        let mut gate = self.dead_gate.lock().unwrap();
        Ok((!std::mem::replace(&mut *gate, true)).then(|| reasons.to_vec()))
    }

    async fn forget_endpoint(&self, _: &str, _: u32) -> StoreResult<u64> {
        Ok(std::mem::take(&mut *self.queue.lock().unwrap()).len() as u64)
    }

    async fn disable_endpoint(&self, _: &str, _: u64, reason: &str) -> StoreResult<Option<EndpointConfig>> {
        let mut endpoint = self.endpoint.lock().unwrap();
        if let Some(cfg) = endpoint.as_mut() {
            cfg.disabled = true;
            cfg.disabled_reason = Some(reason.into());
        }
        Ok(endpoint.clone())
    }
}

/// Start one endpoint actor on a node that holds its shard's lease (epoch 0). `stale`: the
/// node holds it under epoch 1 by then, and the actor is started under 0 (by an owner of the
/// lease before, not yet stopped).
async fn start(
    memory: Arc<Memory>,
    receiver: Arc<Receiver>,
    clock: Arc<TokioClock>,
    stale: bool,
) -> (Arc<Ctx>, ActorRef<EndpointMsg>, tokio::task::JoinHandle<()>) {
    start_with(memory, receiver, clock, stale, settings()).await
}

async fn start_with(
    memory: Arc<Memory>,
    receiver: Arc<Receiver>,
    clock: Arc<TokioClock>,
    stale: bool,
    settings: NodeSettings,
) -> (Arc<Ctx>, ActorRef<EndpointMsg>, tokio::task::JoinHandle<()>) {
    let stores = Stores {
        router: Arc::new(Offline),
        leases: Arc::new(Offline),
        endpoints: memory,
    };
    let ctx = Arc::new(Ctx::new(
        stores,
        receiver,
        settings,
        Arc::new(SubscriptionIndex::new()),
        clock.clone(),
    ));
    ctx.leases.renewed(SHARD, clock.now_ms());
    if stale {
        ctx.leases.set_epoch(SHARD, 1);
    }
    let args = EndpointArgs {
        ctx: ctx.clone(),
        endpoint_id: "ep_unit".into(),
        shard: SHARD,
        epoch: 0,
    };
    let (actor, join) = Actor::spawn(None, EndpointActor, args).await.unwrap();
    (ctx, actor, join)
}

/// Run one endpoint actor until it stops by itself (idle), or for `at_most` of virtual time;
/// true if it stopped by itself.
async fn run(
    memory: Arc<Memory>,
    receiver: Arc<Receiver>,
    clock: Arc<TokioClock>,
    at_most: Duration,
) -> (Arc<Ctx>, bool) {
    run_with(memory, receiver, clock, at_most, |_| {}).await
}

/// [`run`] with settings changed by `tweak`.
async fn run_with(
    memory: Arc<Memory>,
    receiver: Arc<Receiver>,
    clock: Arc<TokioClock>,
    at_most: Duration,
    tweak: impl FnOnce(&mut NodeSettings),
) -> (Arc<Ctx>, bool) {
    let mut settings = settings();
    tweak(&mut settings);
    let (ctx, actor, join) = start_with(memory, receiver, clock, false, settings).await;
    let stopped = tokio::time::timeout(at_most, join).await.is_ok();
    if !stopped {
        actor.stop_and_wait(None, None).await.unwrap();
    }
    (ctx, stopped)
}

/// A Redis failover: the node's lease lapsed, and the node took the shard again under a new
/// epoch before this (old) actor was stopped. The old actor must start nothing under the new
/// lease: the new owner's actor is sending the same deliveries (the soak's in-flight excess).
#[tokio::test(start_paused = true)]
async fn an_actor_of_a_lease_taken_again_starts_nothing_under_the_new_one() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|c| c.max_in_flight = Some(1)), 10);
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_millis(100));
    let (ctx, actor, _join) = start(memory.clone(), receiver.clone(), clock.clone(), false).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = receiver.starts().len();
    assert!((1..=2).contains(&before), "{before} attempts started");
    ctx.leases.revoke(SHARD);
    ctx.leases.set_epoch(SHARD, 1);
    ctx.leases.renewed(SHARD, clock.now_ms());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        receiver.starts().len(),
        before,
        "the old lease's actor started attempts under the new lease"
    );
    actor.stop_and_wait(None, None).await.unwrap();

    // An actor the old owner starts after the node took the shard again works under the old
    // owner's epoch: it starts nothing either.
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_millis(100));
    let (_, late, _join) = start(memory.clone(), receiver.clone(), clock.clone(), true).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(receiver.starts().is_empty(), "an actor of the old owner sent");
    late.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn delivers_every_due_delivery_once_then_stops_idle() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|_| {}), 25);
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_millis(30));
    let (_, stopped) = run(memory.clone(), receiver.clone(), clock, Duration::from_secs(3600)).await;
    assert!(stopped, "the actor stops by itself once idle");
    let records = memory.records();
    assert_eq!(records.len(), 25);
    assert!(records.iter().all(|r| r.next == Next::Delivered && r.number == 1));
    let mut sent: Vec<String> = receiver
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 25, "each delivery attempted exactly once");
    assert!(memory.queue.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_caps_the_attempts_running_at_once() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|c| c.max_in_flight = Some(3)), 12);
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_secs(5));
    let (_, stopped) = run(memory.clone(), receiver.clone(), clock, Duration::from_secs(3600)).await;
    assert!(stopped, "the actor stops by itself once idle");
    assert_eq!(memory.records().len(), 12);
    assert_eq!(receiver.most_at_once(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_spaces_attempts_to_its_rate() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|c| c.rate_limit_per_s = Some(2)), 10);
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_millis(1));
    let (_, stopped) = run(memory.clone(), receiver.clone(), clock, Duration::from_secs(3600)).await;
    assert!(stopped, "the actor stops by itself once idle");
    let starts = receiver.starts();
    assert_eq!(starts.len(), 10);
    // A full bucket (burst 2) first, then one token every 500 ms.
    for window_start in &starts {
        let in_one_second = starts
            .iter()
            .filter(|s| (*window_start..window_start + 1_000).contains(*s))
            .count();
        assert!(
            in_one_second <= 4,
            "{in_one_second} attempts within a second: {starts:?}"
        );
    }
    let span = starts[9] - starts[0];
    assert!(
        (3_900..=4_100).contains(&span),
        "10 attempts at 2/s after a burst of 2 take 4 s, took {span} ms"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_sends_one_probe_at_its_time_then_resumes() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|_| {}), 5);
    memory.health.lock().unwrap().breaker = BreakerRecord {
        state: BreakerState::Open {
            next_probe_ms: START_MS + 20_000,
            failed_probes: 1,
        },
        closed_at_ms: None,
    };
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_millis(200));
    let (_, stopped) = run(memory.clone(), receiver.clone(), clock, Duration::from_secs(3600)).await;
    assert!(stopped, "the actor stops by itself once idle");
    let starts = receiver.starts();
    assert_eq!(starts.len(), 5);
    assert!(starts[0] >= START_MS + 20_000, "nothing before the probe time");
    assert!(
        starts[1] >= starts[0] + 200,
        "nothing else starts while the probe is in flight: {starts:?}"
    );
    assert_eq!(memory.health.lock().unwrap().breaker.state, BreakerState::Closed);
}

impl Memory {
    fn emitted_types(&self) -> Vec<String> {
        self.emitted.lock().unwrap().iter().map(|(t, _)| t.clone()).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_breaker_that_opens_then_closes_is_told_once_each_way() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|c| c.max_in_flight = Some(1)), 12);
    let receiver = Receiver::new(clock.clone(), &[500; 10], Duration::from_millis(10));
    let (_, stopped) = run(memory.clone(), receiver, clock, Duration::from_secs(3600)).await;
    assert!(stopped, "every delivery made it in the end");
    assert_eq!(memory.health.lock().unwrap().breaker.state, BreakerState::Closed);
    assert_eq!(
        memory.emitted_types(),
        ["hookline.endpoint.breaker_opened", "hookline.endpoint.recovered"],
        "one notice per change, not one per failed attempt"
    );
}

#[tokio::test(start_paused = true)]
async fn a_probe_the_transform_cancelled_says_nothing_of_the_receiver_and_is_made_again() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|c| c.max_in_flight = Some(1)), 3);
    memory.health.lock().unwrap().breaker = BreakerRecord {
        state: BreakerState::Open {
            next_probe_ms: START_MS + 20_000,
            failed_probes: 1,
        },
        closed_at_ms: None,
    };
    let receiver = Receiver::new(clock.clone(), &[receiver::CANCELLED], Duration::from_millis(10));
    let (_, stopped) = run(memory.clone(), receiver.clone(), clock, Duration::from_secs(3600)).await;
    assert!(stopped);
    let nexts: Vec<Next> = memory.records().into_iter().map(|r| r.next).collect();
    assert_eq!(nexts[0], Next::Dead(crate::model::DeadReason::Cancelled));
    assert!(nexts[1..].iter().all(|n| *n == Next::Delivered), "{nexts:?}");
    let starts = receiver.starts();
    assert!(
        starts[1] < START_MS + 21_000,
        "the next delivery probes at once: {starts:?}"
    );
    assert_eq!(memory.health.lock().unwrap().breaker.state, BreakerState::Closed);
    assert_eq!(
        memory.emitted_types(),
        ["hookline.endpoint.dead_letters", "hookline.endpoint.recovered"],
        "the cancel is a dead letter; the recovery is the next delivery's"
    );
}

#[tokio::test(start_paused = true)]
async fn dead_letters_make_a_notice_when_the_store_says_one_is_due() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|c| c.max_in_flight = Some(1)), 3);
    let receiver = Receiver::new(clock.clone(), &[400, 400, 400], Duration::from_millis(10));
    run(memory.clone(), receiver, clock, Duration::from_secs(60)).await;
    assert!(memory.records().iter().all(|r| matches!(r.next, Next::Dead(_))));
    assert_eq!(
        memory.emitted_types(),
        ["hookline.endpoint.dead_letters"],
        "the gate holds the rest"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_record_gives_up_the_shard_and_starts_nothing_more() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|c| c.max_in_flight = Some(1)), 3);
    *memory.fenced.lock().unwrap() = true;
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_millis(10));
    let (ctx, _) = run(memory.clone(), receiver.clone(), clock.clone(), Duration::from_secs(30)).await;
    assert_eq!(
        receiver.starts().len(),
        1,
        "one attempt, then the lease is treated as lost"
    );
    assert!(!ctx.leases.valid(SHARD, clock.now_ms()));
    assert!(memory.records().is_empty());
    assert_eq!(
        memory.queue.lock().unwrap().len(),
        3,
        "the queue is left to the shard's holder"
    );
}

#[tokio::test(start_paused = true)]
async fn a_breaker_open_beyond_the_keepalive_stops_the_actor_until_its_probe() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|_| {}), 2);
    let probe_at = START_MS + 600_000;
    memory.health.lock().unwrap().breaker = BreakerRecord {
        state: BreakerState::Open {
            next_probe_ms: probe_at,
            failed_probes: 2,
        },
        closed_at_ms: None,
    };
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_millis(1));
    let (_, stopped) = run(memory.clone(), receiver.clone(), clock, Duration::from_secs(3600)).await;
    assert!(stopped, "nothing to do for ten minutes: the actor stops");
    assert!(receiver.starts().is_empty());
    assert_eq!(
        *memory.settled.lock().unwrap(),
        vec![(false, probe_at, None)],
        "the due entry is the probe time, so the shard owner restarts it then"
    );
}

#[tokio::test(start_paused = true)]
async fn an_ordered_head_waiting_long_for_its_retry_holds_the_rest_and_stops_the_actor() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(
        endpoint(|c| {
            c.ordered = true;
            c.retry_schedule_s = Some(vec![600]);
        }),
        3,
    );
    let receiver = Receiver::new(clock.clone(), &[500], Duration::from_millis(5));
    let (_, stopped) = run(memory.clone(), receiver.clone(), clock, Duration::from_secs(3600)).await;
    assert!(stopped, "a ten-minute retry of the head: the actor stops");
    let sent: Vec<String> = receiver
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(sent, vec!["evt_000".to_string()], "nothing passes the failed head");
    assert!(matches!(memory.records()[0].next, Next::RetryAt(_)));
    assert_eq!(
        memory.settled.lock().unwrap().last().cloned(),
        Some((false, 0, Some("evt_000".to_string()))),
        "settled on the head, whose retry time the store reads itself"
    );
}
