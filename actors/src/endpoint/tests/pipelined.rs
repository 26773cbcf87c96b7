//! A receiver's slot frees when it answers, not when the attempt's record is written; an
//! answered delivery is never pulled again before its record; an ordered endpoint still waits
//! for the record before its next head, and every actor for its first record (the store's
//! word that its lease token is current).

use super::*;

/// Four deliveries, one slot, a receiver answering in 10 ms and records taking 1 s to write:
/// the attempts' start times, once the actor stopped by itself.
async fn starts_with_slow_records(ordered: bool) -> (Vec<u64>, Arc<Memory>, Arc<Receiver>) {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(
        endpoint(|c| {
            c.max_in_flight = Some(1);
            c.ordered = ordered;
        }),
        4,
    );
    *memory.record_delay_ms.lock().unwrap() = 1_000;
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_millis(10));
    let (_, stopped) = run(memory.clone(), receiver.clone(), clock, Duration::from_secs(3600)).await;
    assert!(stopped, "the actor stops by itself once idle");
    (receiver.starts(), memory, receiver)
}

#[tokio::test(start_paused = true)]
async fn a_slot_frees_when_the_receiver_answers_and_an_answered_delivery_is_not_pulled_again() {
    let (starts, memory, receiver) = starts_with_slow_records(false).await;
    assert_eq!(starts.len(), 4, "each delivery attempted once: {starts:?}");
    assert_eq!(receiver.most_at_once(), 1, "still one at a time at the receiver");
    // The first record confirms the lease token; from then on each next attempt starts when
    // the one before is answered, while its record is being written.
    assert!(starts[1] - starts[0] >= 1_000, "{starts:?}");
    assert!(starts[3] - starts[1] < 100, "{starts:?}");
    let records = memory.records();
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r.number == 1 && r.next == Next::Delivered));
    assert!(memory.queue.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_ordered_endpoint_starts_its_next_head_only_once_the_record_is_written() {
    let (starts, memory, _) = starts_with_slow_records(true).await;
    assert_eq!(starts.len(), 4, "{starts:?}");
    assert!(starts.windows(2).all(|w| w[1] - w[0] >= 1_000), "{starts:?}");
    let order: Vec<String> = memory.records().iter().map(|r| r.event_id.clone()).collect();
    assert_eq!(order, ["evt_000", "evt_001", "evt_002", "evt_003"]);
}
