//! An actor whose queue went empty lingers (`idle_linger_ms`) before it settles and stops.

use super::*;

/// An actor whose queue went empty stays `idle_linger_ms` (5 s here) for more: work routed
/// meanwhile is sent by the same actor at its wake, with no settle between; only once the
/// linger is over does it settle, once, and stop.
#[tokio::test(start_paused = true)]
async fn an_actor_whose_queue_went_empty_lingers_for_the_next_wake_then_settles_once() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|_| {}), 1);
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_millis(30));
    let (_, actor, join) = start(memory.clone(), receiver.clone(), clock.clone(), false).await;
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
