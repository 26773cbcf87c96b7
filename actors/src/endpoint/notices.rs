//! Notifications (issue 22): the operational events an endpoint's actor emits into its
//! tenant's own stream, routed like any event to the endpoints subscribed to them.
//!
//! - `hookline.endpoint.breaker_opened`: the breaker went from closed to open;
//! - `hookline.endpoint.recovered`: it closed again after having been open;
//! - `hookline.endpoint.dead_letters`: deliveries were dead-lettered, at most one notice per
//!   endpoint per `notifications.dead_letter_interval_s`, with the count and the top reasons
//!   (the store gathers the counts: `EndpointStore::note_dead_letters`).
//!
//! Each is made once, when the change happens, with an idempotency key of its own: one that
//! cannot be stored now stays pending and is emitted again (never twice) on the actor's next
//! notice or record, so 1,000 endpoints failing together make 1,000 events, not one per attempt.

use super::state::EndpointState;
use crate::model::{rfc3339, EndpointConfig};
use serde_json::{json, Value};

pub const BREAKER_OPENED_EVENT: &str = "hookline.endpoint.breaker_opened";
pub const RECOVERED_EVENT: &str = "hookline.endpoint.recovered";
pub const DEAD_LETTERS_EVENT: &str = "hookline.endpoint.dead_letters";

/// The most reasons a dead-letter notice lists.
const TOP_REASONS: usize = 5;

/// An operational event waiting to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub event_type: &'static str,
    pub data: Value,
    /// The same on every try: the store keeps one event per key.
    pub key: String,
}

impl Notice {
    fn of(event_type: &'static str, cfg: &EndpointConfig, at_ms: u64, mut data: Value) -> Notice {
        data["endpoint_id"] = json!(cfg.id);
        data["url"] = json!(cfg.url);
        data["description"] = json!(cfg.description);
        Notice {
            event_type,
            key: format!("{event_type}:{}:{at_ms}", cfg.id),
            data,
        }
    }

    pub fn breaker_opened(cfg: &EndpointConfig, at_ms: u64, next_probe_ms: Option<u64>) -> Notice {
        let data = json!({"opened_at": rfc3339(at_ms), "next_probe_at": next_probe_ms.map(rfc3339)});
        Notice::of(BREAKER_OPENED_EVENT, cfg, at_ms, data)
    }

    /// The endpoint was disabled for failing (`hookline.endpoint.disabled`, emitted since before
    /// the other notices: its data keeps the fields it always had).
    pub fn disabled(cfg: &EndpointConfig, at_ms: u64, reason: &str, failing_since_ms: Option<u64>) -> Notice {
        let data = json!({"reason": reason, "failing_since": failing_since_ms});
        Notice::of(super::ENDPOINT_DISABLED_EVENT, cfg, at_ms, data)
    }

    pub fn recovered(cfg: &EndpointConfig, at_ms: u64) -> Notice {
        Notice::of(RECOVERED_EVENT, cfg, at_ms, json!({"recovered_at": rfc3339(at_ms)}))
    }

    /// `counts`: by reason, most first (as `note_dead_letters` returns them).
    pub fn dead_letters(cfg: &EndpointConfig, at_ms: u64, interval_s: u64, counts: &[(String, u64)]) -> Notice {
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        let top: Vec<Value> = counts
            .iter()
            .take(TOP_REASONS)
            .map(|(reason, n)| json!({"reason": reason, "count": n}))
            .collect();
        let data = json!({"count": total, "top_reasons": top, "interval_s": interval_s, "at": rfc3339(at_ms)});
        Notice::of(DEAD_LETTERS_EVENT, cfg, at_ms, data)
    }
}

impl EndpointState {
    /// Store the pending notices, oldest first; one that fails stays, with the rest after it.
    pub(super) async fn emit_notices(&mut self) {
        while let Some(notice) = self.notices.first() {
            let Some(cfg) = self.cfg.as_ref() else {
                self.notices.clear();
                return;
            };
            let emitted = self
                .ctx
                .stores
                .endpoints
                .emit_event(&cfg.tenant, notice.event_type, notice.data.clone(), Some(&notice.key))
                .await;
            match emitted {
                Ok(event_id) => {
                    tracing::info!(
                        tenant = %cfg.tenant, endpoint_id = %cfg.id, event_id = %event_id,
                        event_type = notice.event_type, "notice emitted"
                    );
                    self.notices.remove(0);
                }
                Err(e) => {
                    tracing::warn!(
                        endpoint_id = %cfg.id, event_type = notice.event_type, error = %e,
                        "emitting a notice failed; it is tried again with the next one"
                    );
                    return;
                }
            }
        }
    }

    /// Dead letters just recorded (`reasons`, with their counts): a notice if one is due.
    pub(super) async fn note_dead_letters(&mut self, reasons: Vec<(String, u64)>) {
        let Some(cfg) = self.cfg.clone() else { return };
        let interval_s = self.ctx.settings.dead_letter_notice_interval_s;
        let noted = self
            .ctx
            .stores
            .endpoints
            .note_dead_letters(&cfg.id, self.shard, &reasons, interval_s)
            .await;
        match noted {
            Ok(Some(counts)) => {
                let now = self.now();
                self.notices.push(Notice::dead_letters(&cfg, now, interval_s, &counts));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(endpoint_id = %cfg.id, error = %e, "counting dead letters for a notice failed"),
        }
        self.emit_notices().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_say_what_happened_to_which_endpoint_with_a_key_per_change() {
        let mut cfg = EndpointConfig::new(
            "ep_1".into(),
            "t".into(),
            "https://r.example/h".into(),
            "whsec_x".into(),
            0,
        );
        cfg.description = Some("billing".into());
        let opened = Notice::breaker_opened(&cfg, 1_000, Some(31_000));
        assert_eq!(opened.event_type, "hookline.endpoint.breaker_opened");
        assert_eq!(opened.key, "hookline.endpoint.breaker_opened:ep_1:1000");
        assert_eq!(
            opened.data,
            json!({"endpoint_id": "ep_1", "url": "https://r.example/h", "description": "billing",
                   "opened_at": "1970-01-01T00:00:01.000Z", "next_probe_at": "1970-01-01T00:00:31.000Z"})
        );
        assert_ne!(Notice::breaker_opened(&cfg, 2_000, None).key, opened.key);
        assert_eq!(
            Notice::recovered(&cfg, 5_000).data["recovered_at"],
            "1970-01-01T00:00:05.000Z"
        );
        let counts: Vec<(String, u64)> = (0..7).map(|i| (format!("http_40{i}"), 10 - i)).collect();
        let dead = Notice::dead_letters(&cfg, 9_000, 3_600, &counts);
        assert_eq!(dead.data["count"], 10 + 9 + 8 + 7 + 6 + 5 + 4);
        assert_eq!(dead.data["top_reasons"].as_array().unwrap().len(), TOP_REASONS);
        assert_eq!(dead.data["top_reasons"][0], json!({"reason": "http_400", "count": 10}));
    }
}
