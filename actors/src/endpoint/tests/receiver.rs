//! The receiver of the endpoint actor's unit tests: scripted answers, timed on the actors'
//! (paused) clock.

use crate::ctx::{Clock, TokioClock};
use crate::transport::{AttemptRequest, AttemptResponse, Transport};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// In a script: the endpoint's transform cancelled this delivery (no receiver asked).
pub(super) const CANCELLED: u16 = 1;

/// A receiver answering the scripted statuses in order (then 200), each after `delay`, and
/// noting when each attempt started and how many ran at once.
pub(crate) struct Receiver {
    clock: Arc<TokioClock>,
    script: Mutex<VecDeque<u16>>,
    delay: Duration,
    /// (event id, start ms on the actors' clock)
    pub(super) started: Mutex<Vec<(String, u64)>>,
    running: Mutex<(usize, usize)>,
}

impl Receiver {
    pub(crate) fn new(clock: Arc<TokioClock>, script: &[u16], delay: Duration) -> Arc<Self> {
        Arc::new(Receiver {
            clock,
            script: Mutex::new(script.iter().copied().collect()),
            delay,
            started: Mutex::new(Vec::new()),
            running: Mutex::new((0, 0)),
        })
    }

    pub(crate) fn starts(&self) -> Vec<u64> {
        self.started.lock().unwrap().iter().map(|(_, at)| *at).collect()
    }

    pub(super) fn most_at_once(&self) -> usize {
        self.running.lock().unwrap().1
    }
}

#[async_trait::async_trait]
impl Transport for Receiver {
    async fn send(&self, request: AttemptRequest) -> AttemptResponse {
        self.started
            .lock()
            .unwrap()
            .push((request.event_id, self.clock.now_ms()));
        {
            let mut running = self.running.lock().unwrap();
            running.0 += 1;
            running.1 = running.1.max(running.0);
        }
        tokio::time::sleep(self.delay).await;
        self.running.lock().unwrap().0 -= 1;
        let status = self.script.lock().unwrap().pop_front().unwrap_or(200);
        if status == CANCELLED {
            return AttemptResponse {
                failure: Some(crate::transport::FailureKind::Cancelled),
                ..Default::default()
            };
        }
        AttemptResponse {
            status: Some(status),
            latency_ms: self.delay.as_millis() as u64,
            ..Default::default()
        }
    }
}
