//! Ordered endpoints: the head of the queue waits while an event ingested before it may still
//! be on its way to the queue.
//!
//! The routers of every node read a partition through one consumer group, so event 2, routed
//! by a fast node, can reach an ordered endpoint's queue before event 1, still being routed by
//! a slower one. The store reads the partition's *routing mark* (the first event not yet
//! routed, or when all were, the lowest id a later event can take) before the head;
//! everything before the mark is already queued, because routing writes the queues before it
//! acks. A head at or past the mark waits a little and is pulled
//! again (`not_before_ms`), but only while the unrouted event is younger than
//! `NodeSettings::ordered_hold_max_ms`: a router failing on one event again and again must not
//! stop ordered delivery for good (the router-lag gauge shows it meanwhile).

use crate::model::{order_score, stream_id_ms, QueuedDelivery};
use crate::store::PulledWindow;

/// The deliveries of a pulled window, an ordered head held back (`not_before_ms`) while the
/// routing mark may precede it.
pub fn hold_head(pulled: PulledWindow, now_ms: u64, max_hold_ms: u64, endpoint_id: &str) -> Vec<QueuedDelivery> {
    let PulledWindow {
        mut deliveries,
        routing_mark,
        head_order,
        ..
    } = pulled;
    let (Some(mark), Some(order), Some(head)) = (routing_mark, head_order, deliveries.first_mut()) else {
        return deliveries;
    };
    if order < order_score(&mark) {
        return deliveries;
    }
    match hold_ms(now_ms, &mark, max_hold_ms) {
        Some(hold) => head.not_before_ms = head.not_before_ms.max(now_ms + hold),
        None => tracing::debug!(endpoint_id, event_id = %head.event_id, mark = %mark,
            "an unrouted event held this ordered head too long; it goes ahead"),
    }
    deliveries
}

/// How long an ordered head waits before looking again when the event at the routing mark
/// (stream id `mark`) may precede it: briefly while routing is merely under way, longer while
/// the entry sits unacked (a dead node's, until another router claims it), at most a second.
/// `None` once the event is `max_ms` old.
pub fn hold_ms(now_ms: u64, mark: &str, max_ms: u64) -> Option<u64> {
    let mark_ms = stream_id_ms(mark).unwrap_or(now_ms);
    let age = now_ms.saturating_sub(mark_ms);
    (age < max_ms).then(|| (age / 2).clamp(20, 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordered_head_looks_again_soon_while_routing_is_under_way_and_gives_up_on_a_stuck_router() {
        let (now, max) = (1_763_870_000_000, 90_000);
        let hold = |mark: String| hold_ms(now, &mark, max);
        // Routing just began (or Redis's clock runs ahead of ours): the shortest wait.
        assert_eq!(hold(format!("{}-0", now - 3)), Some(20));
        assert_eq!(hold(format!("{}-5", now + 40)), Some(20));
        // Unacked for a while (a dead node's entry, until it is claimed): half its age...
        assert_eq!(hold(format!("{}-0", now - 600)), Some(300));
        // ...but never more than a second, so the head follows soon after the claim.
        assert_eq!(hold(format!("{}-0", now - 30_000)), Some(1_000));
        assert_eq!(hold(format!("{}-0", now - max + 1)), Some(1_000));
        // A router stuck on one event holds ordered endpoints no longer than `max`.
        assert_eq!(hold(format!("{}-0", now - max)), None);
        // An id that does not parse counts as fresh.
        assert_eq!(hold("junk".into()), Some(20));
    }

    fn head(not_before_ms: u64) -> QueuedDelivery {
        QueuedDelivery {
            event_id: "evt_x".into(),
            attempts: 0,
            cycle_base: 0,
            body: None,
            metadata: None,
            not_before_ms,
            trace: None,
            new_record: None,
        }
    }

    #[test]
    fn only_a_head_at_or_past_the_mark_is_held() {
        let now = 1_763_870_000_000;
        let window = |head_order: f64, not_before: u64| PulledWindow {
            deliveries: vec![head(not_before)],
            routing_mark: Some(format!("{}-0", now - 100)),
            head_order: Some(head_order),
            next_due_ms: None,
        };
        let mark_order = order_score(&format!("{}-0", now - 100));
        // Before the mark: every earlier event is queued already; it goes at once.
        assert_eq!(
            hold_head(window(mark_order - 1.0, 0), now, 90_000, "ep")[0].not_before_ms,
            0
        );
        // At or past it: held for half the mark's age.
        assert_eq!(
            hold_head(window(mark_order, 0), now, 90_000, "ep")[0].not_before_ms,
            now + 50
        );
        // A retry time later than the hold is kept.
        assert_eq!(
            hold_head(window(mark_order + 5.0, now + 9_000), now, 90_000, "ep")[0].not_before_ms,
            now + 9_000
        );
        // Nothing unrouted: nothing held.
        let all_routed = PulledWindow {
            routing_mark: None,
            ..window(mark_order, 0)
        };
        assert_eq!(hold_head(all_routed, now, 90_000, "ep")[0].not_before_ms, 0);
    }
}
