//! Retries are made at their scheduled time, with the actor kept alive or lingering.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_is_retried_at_its_scheduled_time() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|c| c.retry_schedule_s = Some(vec![10])), 1);
    let receiver = Receiver::new(clock.clone(), &[500], Duration::from_millis(5));
    let (_, stopped) = run(memory.clone(), receiver.clone(), clock, Duration::from_secs(3600)).await;
    assert!(stopped, "the actor stops by itself once idle");
    let records = memory.records();
    assert_eq!(records.len(), 2, "{records:?}");
    let Next::RetryAt(retry_at) = records[0].next else {
        panic!("first attempt should be retried: {:?}", records[0].next)
    };
    // 10 s ± 20% jitter after the first attempt ended.
    let first = receiver.starts()[0];
    assert!(
        (first + 8_000..=first + 12_100).contains(&retry_at),
        "retry at +{} ms",
        retry_at - first
    );
    let second = receiver.starts()[1];
    assert!(second >= retry_at, "retried {} ms early", retry_at - second);
    assert!(second <= retry_at + 50, "retried {} ms late", second - retry_at);
    assert_eq!(records[1].next, Next::Delivered);
    assert_eq!(records[1].number, 2);
}

/// A retry due while the actor lingers (1 s, within the 5 s linger) is made at its time, not
/// when the linger ends.
#[tokio::test(start_paused = true)]
async fn a_retry_due_during_the_linger_is_made_on_time() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|c| c.retry_schedule_s = Some(vec![1])), 1);
    let receiver = Receiver::new(clock.clone(), &[500], Duration::from_millis(5));
    let (_, stopped) = run(memory.clone(), receiver.clone(), clock, Duration::from_secs(3600)).await;
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
}

/// The same with a linger longer than the keep-alive (10 s here): a retry due 20 s on, while
/// the actor lingers for 30 s, is made at its time.
#[tokio::test(start_paused = true)]
async fn a_retry_due_past_the_keepalive_but_within_a_long_linger_is_made_on_time() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|c| c.retry_schedule_s = Some(vec![20])), 1);
    let receiver = Receiver::new(clock.clone(), &[500], Duration::from_millis(5));
    let (_, stopped) = run_with(
        memory.clone(),
        receiver.clone(),
        clock,
        Duration::from_secs(3600),
        |s| {
            s.idle_keepalive_ms = 10_000;
            s.idle_linger_ms = 30_000;
        },
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
}
