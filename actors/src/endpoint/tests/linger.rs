//! An actor whose queue went empty lingers (`idle_linger_ms`) before it settles and stops.

use super::*;

/// One actor started on one queued delivery (`evt_000`), its receiver answering after `latency`.
async fn one_delivery(
    latency: Duration,
) -> (
    Arc<TokioClock>,
    Arc<Memory>,
    Arc<Receiver>,
    ActorRef<EndpointMsg>,
    tokio::task::JoinHandle<()>,
) {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|_| {}), 1);
    let receiver = Receiver::new(clock.clone(), &[], latency);
    let (_, actor, join) = start(memory.clone(), receiver.clone(), clock.clone(), false).await;
    (clock, memory, receiver, actor, join)
}

/// An actor whose queue went empty stays `idle_linger_ms` (5 s here) for more: work routed
/// meanwhile is sent by the same actor at its wake, with no settle between; only once the
/// linger is over does it settle, once, and stop.
#[tokio::test(start_paused = true)]
async fn an_actor_whose_queue_went_empty_lingers_for_the_next_wake_then_settles_once() {
    let (clock, memory, receiver, actor, join) = one_delivery(Duration::from_millis(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(memory.records().len(), 1);
    assert!(memory.settled.lock().unwrap().is_empty(), "settled while lingering");
    assert!(!join.is_finished(), "stopped while lingering");

    memory
        .queue
        .lock()
        .unwrap()
        .insert("evt_100".into(), (clock.now_ms(), 0));
    actor.send_message(EndpointMsg::Wake).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids: Vec<String> = memory.records().into_iter().map(|r| r.event_id).collect();
    assert_eq!(ids, ["evt_000", "evt_100"]);
    assert!(memory.settled.lock().unwrap().is_empty(), "settled between the two");

    tokio::time::timeout(Duration::from_secs(10), join)
        .await
        .expect("the actor stops once the linger is over")
        .unwrap();
    assert_eq!(memory.settled.lock().unwrap().len(), 1, "one settle as it stopped");
    assert_eq!(receiver.starts().len(), 2);
}

/// The router's wake names the new deliveries (`recent.rs`): one the actor has pulled already
/// (its pull came first) costs no pull; one it has not pulled, among them or alone, is pulled
/// and sent.
#[tokio::test(start_paused = true)]
async fn a_wake_naming_only_deliveries_already_pulled_costs_no_pull() {
    let (clock, memory, receiver, actor, _join) = one_delivery(Duration::from_millis(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(memory.records().len(), 1);
    let pulls = || memory.shard.lock().unwrap().pulls.len();
    let before = pulls();
    actor.send_message(EndpointMsg::Routed(vec!["evt_000".into()])).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pulls(), before, "a wake for what it pulled already made it pull");

    let queued_now = |id: &str| {
        memory.queue.lock().unwrap().insert(id.into(), (clock.now_ms(), 0));
    };
    queued_now("evt_100");
    actor
        .send_message(EndpointMsg::Routed(vec!["evt_000".into(), "evt_100".into()]))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pulls(), before + 1, "one named delivery not pulled yet: one pull");
    queued_now("evt_200");
    actor.send_message(EndpointMsg::Routed(vec!["evt_200".into()])).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<String> = memory.records().into_iter().map(|r| r.event_id).collect();
    assert_eq!(ids, ["evt_000", "evt_100", "evt_200"]);
    assert_eq!(receiver.starts().len(), 3, "each sent once");
    actor.stop_and_wait(None, None).await.unwrap();
}

/// A timer that fires with nothing new due (here the linger's end, come while the next attempt
/// runs) costs no pull: the last pull took all due work and nothing has woken the actor since.
#[tokio::test(start_paused = true)]
async fn a_linger_ending_during_an_attempt_costs_no_pull() {
    let (clock, memory, receiver, actor, join) = one_delivery(Duration::from_secs(3)).await;
    let pulls = || memory.shard.lock().unwrap().pulls.len();
    // Delivered at 3 s, then lingering until 8 s.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(memory.records().len(), 1);
    memory
        .queue
        .lock()
        .unwrap()
        .insert("evt_100".into(), (clock.now_ms(), 0));
    actor.send_message(EndpointMsg::Routed(vec!["evt_100".into()])).unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        receiver.starts().len(),
        2,
        "the second attempt runs past the linger's end"
    );
    assert_eq!(pulls(), 2, "the linger's end pulled again while the attempt ran");
    tokio::time::timeout(Duration::from_secs(20), join)
        .await
        .expect("the actor stops once the next linger is over")
        .unwrap();
    assert_eq!(memory.records().len(), 2);
    assert_eq!(memory.settled.lock().unwrap().len(), 1, "one settle as it stopped");
}
