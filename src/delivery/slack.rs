//! Slack-kind endpoints (issue 22): a chat message (`{"text", "blocks"}`, Slack's incoming
//! webhook format) rendered from the event's body (`describe`, in Slack's mrkdwn).

use super::describe::{describe, SLACK};
use serde_json::{json, Value};

/// The message for an event body (`{"id","type","timestamp","tenant","data"}`, or a thin
/// one); `None` if the body is not an event.
pub fn message(body: &str) -> Option<String> {
    let event: Value = serde_json::from_str(body).ok()?;
    let text = clip(describe(&event, &SLACK)?);
    let context = format!(
        "{} · {}",
        (SLACK.escape)(event.get("id").and_then(Value::as_str).unwrap_or("")),
        (SLACK.escape)(event.get("timestamp").and_then(Value::as_str).unwrap_or(""))
    );
    let message = json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    });
    Some(message.to_string())
}

/// Slack takes at most 3,000 characters in a section: cut escaped text there (never inside an
/// `&…;` entity).
fn clip(text: String) -> String {
    const MAX: usize = 2_990;
    if text.chars().count() <= MAX {
        return text;
    }
    let mut cut: String = text.chars().take(MAX).collect();
    if let Some(amp) = cut.rfind('&').filter(|at| !cut[*at..].contains(';')) {
        cut.truncate(amp);
    }
    cut + "…"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(event_type: &str, data: Value) -> String {
        json!({"id": "evt_1", "type": event_type, "timestamp": "2026-12-04T06:00:00.000Z", "tenant": "t", "data": data})
            .to_string()
    }

    #[test]
    fn notices_read_as_sentences_with_a_section_and_a_context() {
        let m: Value = serde_json::from_str(
            &message(&body(
                "hookline.endpoint.disabled",
                json!({"endpoint_id": "ep_1", "url": "https://r.example/h", "description": "Billing <prod>",
                   "reason": "failing", "failing_since": 1}),
            ))
            .unwrap(),
        )
        .unwrap();
        let text = m["text"].as_str().unwrap();
        assert_eq!(
            text,
            ":no_entry: Endpoint *Billing &lt;prod&gt;* (<https://r.example/h>) was disabled (failing): nothing is \
             sent to it until it is enabled again."
        );
        assert_eq!(
            m["blocks"][0],
            json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        );
        assert_eq!(
            m["blocks"][1]["elements"][0]["text"],
            "evt_1 · 2026-12-04T06:00:00.000Z"
        );

        let dead = message(&body(
            "hookline.endpoint.dead_letters",
            json!({"url": "https://r.example/h", "description": null, "count": 5,
                   "top_reasons": [{"reason": "http_500", "count": 4}, {"reason": "gone", "count": 1}]}),
        ))
        .unwrap();
        assert!(
            dead.contains(
                ":skull: 5 deliveries to endpoint <https://r.example/h> were dead-lettered (http_500 × 4, gone × 1)."
            ),
            "{dead}"
        );
    }

    #[test]
    fn any_other_event_shows_its_type_and_data_bounded() {
        let m: Value =
            serde_json::from_str(&message(&body("order.paid", json!({"note": "a < b", "n": 1}))).unwrap()).unwrap();
        let text = m["text"].as_str().unwrap();
        assert!(text.starts_with("*order.paid*\n```{"), "{text}");
        assert!(text.contains("a &lt; b"), "{text}");
        let big = message(&body("big", json!({"s": "x".repeat(10_000)}))).unwrap();
        assert!(big.len() < 7_000, "{}", big.len());
        // Escaping grows text: the section still holds at most 3,000 characters.
        let grown: Value =
            serde_json::from_str(&message(&body("amps", json!({"s": "&".repeat(2_400)}))).unwrap()).unwrap();
        let section = grown["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(section.chars().count() <= 3_000, "{}", section.chars().count());
        assert!(section.trim_end_matches('…').ends_with("&amp;"), "no entity cut in two");
        assert_eq!(message("not json"), None);
    }
}
