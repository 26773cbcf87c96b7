//! Retries are made at their scheduled time, with the actor kept alive or lingering.

use super::*;

/// Run an actor whose one delivery fails once (500) with a retry `retry_s` on, under settings
/// changed by `tweak`; check that it stopped by itself and that the retry was made at its time
/// (not early, at most 50 ms late) and delivered. Returns when the first attempt started and
/// when the retry was scheduled.
async fn retried_on_time(retry_s: u64, tweak: impl FnOnce(&mut NodeSettings)) -> (u64, u64) {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|c| c.retry_schedule_s = Some(vec![retry_s])), 1);
    let receiver = Receiver::new(clock.clone(), &[500], Duration::from_millis(5));
    let (_, stopped) = run_with(
        memory.clone(),
        receiver.clone(),
        clock,
        Duration::from_secs(3600),
        tweak,
    )
    .await;
    assert!(stopped, "the actor stops by itself once idle");
    let records = memory.records();
    assert_eq!(records.len(), 2, "{records:?}");
    let Next::RetryAt(retry_at) = records[0].next else {
        panic!("first attempt should be retried: {:?}", records[0].next)
    };
    let second = receiver.starts()[1];
    assert!(second >= retry_at, "retried {} ms early", retry_at - second);
    assert!(second <= retry_at + 50, "retried {} ms late", second - retry_at);
    assert_eq!(records[1].next, Next::Delivered);
    assert_eq!(records[1].number, 2);
    (receiver.starts()[0], retry_at)
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_is_retried_at_its_scheduled_time() {
    let (first, retry_at) = retried_on_time(10, |_| {}).await;
    // 10 s ± 20% jitter after the first attempt ended.
    assert!(
        (first + 8_000..=first + 12_100).contains(&retry_at),
        "retry at +{} ms",
        retry_at - first
    );
}

/// A retry due while the actor lingers (1 s, within the 5 s linger) is made at its time, not
/// when the linger ends.
#[tokio::test(start_paused = true)]
async fn a_retry_due_during_the_linger_is_made_on_time() {
    retried_on_time(1, |_| {}).await;
}

/// The same with a linger longer than the keep-alive (10 s here): a retry due 20 s on, while
/// the actor lingers for 30 s, is made at its time.
#[tokio::test(start_paused = true)]
async fn a_retry_due_past_the_keepalive_but_within_a_long_linger_is_made_on_time() {
    retried_on_time(20, |s| {
        s.idle_keepalive_ms = 10_000;
        s.idle_linger_ms = 30_000;
    })
    .await;
}

/// Deliveries queued for later by someone else (retries inherited from an earlier owner, or
/// events stamped ahead of this node's clock) are made at their times: a pull that took all
/// due work does not pull again until woken, so it must set a timer for the next one.
#[tokio::test(start_paused = true)]
async fn work_queued_for_later_by_another_is_made_at_its_time() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|_| {}), 0);
    let due = [START_MS, START_MS + 300, START_MS + 700, START_MS + 4_000];
    for (i, at) in due.iter().enumerate() {
        memory.queue.lock().unwrap().insert(format!("evt_{i:03}"), (*at, 1));
    }
    let receiver = Receiver::new(clock.clone(), &[200], Duration::from_millis(5));
    let (_, stopped) = run(memory.clone(), receiver.clone(), clock, Duration::from_secs(3600)).await;
    assert!(stopped, "the actor stops by itself once idle");
    let starts = receiver.starts();
    assert_eq!(starts.len(), due.len(), "{starts:?}");
    for (start, at) in starts.iter().zip(due) {
        assert!(*start >= at, "made {} ms early", at - start);
        assert!(*start <= at + 50, "made {} ms late", start - at);
    }
}
