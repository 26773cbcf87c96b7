//! A config change reaches a running actor, even when reading it fails at first.

use super::*;

/// The endpoint is disabled while its actor lingers after a delivery, and two notices of the
/// change come while the first four reads fail (Redis away): the actor reads it again every
/// second, one retry at a time (the second notice's read replaces the first's retry), until a
/// read succeeds, and pauses (a paused settle) before its linger would have ended, instead of
/// working on under the config it had.
#[tokio::test(start_paused = true)]
async fn a_config_change_whose_read_fails_is_read_again() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|_| {}), 1);
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_millis(30));
    let (_, actor, _join) = start(memory.clone(), receiver, clock, false).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(memory.records().len(), 1, "delivered, now lingering");
    let reads_at_start = *memory.config_reads.lock().unwrap();
    let reads = || *memory.config_reads.lock().unwrap() - reads_at_start;

    memory.endpoint.lock().unwrap().as_mut().unwrap().disabled = true;
    *memory.config_read_failures.lock().unwrap() = 4;
    actor.send_message(EndpointMsg::ConfigChanged).unwrap();
    actor.send_message(EndpointMsg::ConfigChanged).unwrap();
    let paused = || memory.settled.lock().unwrap().iter().any(|(paused, _, _)| *paused);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!paused(), "every read so far failed: nothing changed yet");
    assert_eq!(reads(), 3, "the two notices' reads and one retry: one retry at a time");
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(
        *memory.config_read_failures.lock().unwrap(),
        0,
        "read again after each failure"
    );
    assert_eq!(reads(), 5, "retried until a read succeeded, then no more");
    assert!(paused(), "the change was taken: {:?}", memory.settled.lock().unwrap());
}
