//! A config change reaches a running actor, even when reading it fails at first.

use super::*;

/// The endpoint is disabled while its actor lingers after a delivery, and the first two reads
/// of the change fail (Redis away): the actor reads it again until one succeeds and pauses (a
/// paused settle) well before its linger would have ended, instead of working on under the
/// config it had.
#[tokio::test(start_paused = true)]
async fn a_config_change_whose_read_fails_is_read_again() {
    let clock = Arc::new(TokioClock::starting_at(START_MS));
    let memory = Memory::with(endpoint(|_| {}), 1);
    let receiver = Receiver::new(clock.clone(), &[], Duration::from_millis(30));
    let (_, actor, _join) = start(memory.clone(), receiver, clock, false).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(memory.records().len(), 1, "delivered, now lingering");

    memory.endpoint.lock().unwrap().as_mut().unwrap().disabled = true;
    *memory.config_read_failures.lock().unwrap() = 2;
    actor.send_message(EndpointMsg::ConfigChanged).unwrap();
    let paused = || memory.settled.lock().unwrap().iter().any(|(paused, _, _)| *paused);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!paused(), "the first read failed: nothing changed yet");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        *memory.config_read_failures.lock().unwrap(),
        0,
        "read again after each failure"
    );
    assert!(paused(), "the change was taken: {:?}", memory.settled.lock().unwrap());
}
