//! The shard owner's due poll, under the paused clock, over the one endpoint of the endpoint
//! tests' in-memory store (its due entry kept as SETTLE_IDLE keeps it): the owner looks when its
//! shard is taken, when the earliest entry comes due, and after an actor stops (not sooner than
//! `due_poll_ms` after its last look, not later than `due_poll_max_ms`), and starts what is due;
//! a running actor reads its own queue, and is woken only once its entry has been due for
//! `due_poll_max_ms`.

use super::{ShardOwner, ShardOwnerArgs, ShardOwnerMsg};
use crate::ctx::{Clock, Ctx, Stores, TokioClock};
use crate::endpoint::tests::offline::Offline;
use crate::endpoint::tests::receiver::Receiver;
use crate::endpoint::tests::{endpoint, settings, Memory, SHARD, START_MS};
use crate::matching::SubscriptionIndex;
use ractor::Actor;
use std::sync::Arc;
use std::time::Duration;

/// `Memory` over `endpoint` with deliveries queued at these times (ms from the start) and its
/// due entry at `due_ms`.
fn queued(endpoint: crate::model::EndpointConfig, at_ms: &[u64], due_ms: u64) -> Arc<Memory> {
    let memory = Memory::with(endpoint, 0);
    for (i, at) in at_ms.iter().enumerate() {
        memory
            .queue
            .lock()
            .unwrap()
            .insert(format!("evt_{i:03}"), (START_MS + at, 0));
    }
    memory.shard.lock().unwrap().due = Some(START_MS + due_ms);
    memory
}

/// Run a shard owner over `memory` for `for_ms` of virtual time (started by its first look,
/// or `woken` at once as the router would); what it saw, and when the receiver was asked.
async fn owner_over(memory: Arc<Memory>, delay_ms: u64, woken: bool, for_ms: u64) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    memory.shard.lock().unwrap().clock = Some(clock.clone());
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_millis(delay_ms));
    let stores = Stores {
        router: Arc::new(Offline),
        leases: memory.clone(),
        endpoints: memory.clone(),
    };
    let ctx = Arc::new(Ctx::new(
        stores,
        receiver.clone(),
        settings(),
        Arc::new(SubscriptionIndex::new()),
        clock.clone(),
    ));
    ctx.leases.renewed(SHARD, clock.now_ms());
    let args = ShardOwnerArgs {
        ctx,
        shard: SHARD,
        epoch: 0,
    };
    let (owner, join) = Actor::spawn(None, ShardOwner, args).await.unwrap();
    if woken {
        owner
            .send_message(ShardOwnerMsg::Wake("ep_unit".into(), Vec::new()))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(for_ms)).await;
    owner.stop(None);
    join.await.unwrap();
    let seen = memory.shard.lock().unwrap();
    let since = |at: &Vec<u64>| at.iter().map(|t| t - START_MS).collect::<Vec<_>>();
    (
        since(&seen.looks),
        since(&seen.pulls),
        receiver.starts().iter().map(|t| t - START_MS).collect(),
    )
}

/// Looks: at once, when the entry comes due (the actor starts then), after the actor stops
/// (its linger, 5 s, after the delivery), then every `due_poll_max_ms` (10 s) with nothing due.
#[tokio::test(start_paused = true)]
async fn the_owner_looks_when_the_entry_comes_due_and_after_its_actor_stops() {
    let memory = queued(endpoint(|_| {}), &[2_500], 2_500);
    let (looks, _, starts) = owner_over(memory.clone(), 5, false, 30_000).await;
    assert_eq!(starts, [2_500], "the delivery, made when due");
    assert_eq!(looks[..2], [0, 2_500], "{looks:?}");
    // The actor stops after its linger (≈ 7.5 s): a look then, and the safety net's after it.
    assert!((7_500..=7_600).contains(&looks[2]), "{looks:?}");
    assert!(looks.len() >= 4, "{looks:?}");
    assert!(
        looks[3..].iter().zip(&looks[2..]).all(|(b, a)| b - a == 10_000),
        "{looks:?}"
    );
    assert_eq!(memory.shard.lock().unwrap().due, None, "settled: nothing queued");
}

/// A running actor whose entry is due is not woken by the looks (it pulls by itself) until the
/// entry has been due for `due_poll_max_ms`: then once per look, a safety net for a lost wake.
#[tokio::test(start_paused = true)]
async fn a_running_actor_is_woken_by_a_look_only_once_its_entry_is_long_overdue() {
    // The first delivery takes 25 s to answer (its timeout is above that); the second comes
    // due at 2 s (the owner's first look plans its next one then).
    let memory = queued(endpoint(|c| c.timeout_ms = Some(60_000)), &[0, 2_000], 2_000);
    let (looks, pulls, starts) = owner_over(memory, 25_000, true, 24_000).await;
    assert_eq!(
        starts,
        [0, 2_000],
        "each when due (the actor's own timer for the second)"
    );
    assert_eq!(looks[..2], [0, 2_000], "{looks:?}");
    // Looked at 2 s (due, not overdue: the actor is left alone) and 12 s (10 s overdue: woken)
    // and 22 s: pulls at start, at its own timer (2 s), and at the two wakes.
    assert_eq!(looks[2..], [12_000, 22_000], "{looks:?}");
    assert_eq!(pulls, [0, 2_000, 12_000, 22_000], "{pulls:?}");
}
