//! Waiting in tests: poll a check until it holds, never a fixed sleep standing in for a
//! condition.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often the helpers below look again.
const POLL: Duration = Duration::from_millis(50);

/// Poll the async `check` until it answers `Some`, for at most `timeout`; `None` if it never
/// did (the caller says what went wrong, with whatever it wants to show).
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Poll the async `check` until it answers `Some` and return that; panic naming `what` after
/// `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll_until(timeout, check).await {
        Some(found) => found,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// `eventually` for a check that needs no awaiting.
pub async fn wait_for(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    eventually(timeout, what, || std::future::ready(check().then_some(()))).await
}

/// Read with `read` until `done` holds for the reading, for at most `timeout`; the last reading
/// either way, for the caller to assert on (so a failure shows what was seen).
pub async fn last_reading<T, F, Fut>(timeout: Duration, mut read: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let start = Instant::now();
    loop {
        let reading = read().await;
        if done(&reading) || start.elapsed() > timeout {
            return reading;
        }
        tokio::time::sleep(POLL).await;
    }
}
