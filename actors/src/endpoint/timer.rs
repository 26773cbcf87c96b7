//! An endpoint actor's one timer: set for the soonest thing it waits for (a linger's end, a
//! gate opening, a lease re-check, a store retry, work coming due), and what it does when it
//! fires.

use super::state::EndpointState;
use super::EndpointMsg;
use ractor::ActorRef;
use std::time::Duration;

impl EndpointState {
    /// Wake at `due_ms` unless a timer already wakes the actor sooner.
    pub(super) fn wake_at(&mut self, myself: &ActorRef<EndpointMsg>, due_ms: u64) {
        let now = self.now();
        if let Some((at, handle)) = &self.timer {
            if *at <= due_ms && *at > now {
                return;
            }
            handle.abort();
        }
        let handle = myself.send_after(Duration::from_millis(due_ms.saturating_sub(now)), move || {
            EndpointMsg::Timer(due_ms)
        });
        self.timer = Some((due_ms, handle));
    }

    /// The timer set for `at` fired (a linger's end, a gate opening, a lease re-check, work
    /// coming due). It pulls again only if work may have come due since the last pull: not
    /// when that pull took all due work and nothing it knows of is due yet (what adds work
    /// wakes the actor, `drained`), so a linger's end during an attempt costs no pull.
    pub(super) async fn on_timer(&mut self, myself: &ActorRef<EndpointMsg>, at: u64) {
        if self.timer.as_ref().is_some_and(|(set, _)| *set == at) {
            self.timer = None;
        }
        match self.next_due {
            Some(due) if self.drained && due <= self.now() => self.drained = false,
            Some(due) if self.drained => self.wake_at(myself, due),
            _ => {}
        }
        self.fill(myself).await;
    }
}
