//! Slack-kind endpoints (issue 22): a chat message (`{"text", "blocks"}`, Slack's incoming
//! webhook format) rendered from the event's body. The node's own notices read as sentences;
//! any other event shows its type, id and data.

use serde_json::{json, Value};

/// The most characters of an event's data a message shows (Slack cuts a section at 3,000).
const DATA_SHOWN: usize = 2_500;

/// The message for an event body (`{"id","type","timestamp","tenant","data"}`, or a thin
/// one); `None` if the body is not an event.
pub fn message(body: &str) -> Option<String> {
    let event: Value = serde_json::from_str(body).ok()?;
    let event_type = event.get("type")?.as_str()?;
    let data = event.get("data").cloned().unwrap_or(Value::Null);
    let field = |name: &str| data.get(name).and_then(Value::as_str).map(escape);
    let endpoint = || {
        let url = field("url").unwrap_or_default();
        match field("description").filter(|d| !d.is_empty()) {
            Some(d) => format!("*{d}* (<{url}>)"),
            None => format!("<{url}>"),
        }
    };
    let text = match event_type {
        "hookline.endpoint.disabled" => format!(
            ":no_entry: Endpoint {} was disabled ({}): nothing is sent to it until it is enabled again.",
            endpoint(),
            field("reason").unwrap_or_default()
        ),
        "hookline.endpoint.breaker_opened" => format!(
            ":warning: Endpoint {} is failing: its circuit breaker opened at {}. The next probe is at {}.",
            endpoint(),
            field("opened_at").unwrap_or_default(),
            field("next_probe_at").unwrap_or_else(|| "soon".into())
        ),
        "hookline.endpoint.recovered" => format!(
            ":white_check_mark: Endpoint {} recovered at {}.",
            endpoint(),
            field("recovered_at").unwrap_or_default()
        ),
        "hookline.endpoint.dead_letters" => {
            let reasons: Vec<String> = data["top_reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| format!("{} × {}", escape(r["reason"].as_str().unwrap_or("?")), r["count"]))
                .collect();
            format!(
                ":skull: {} deliveries to endpoint {} were dead-lettered ({}).",
                data["count"],
                endpoint(),
                reasons.join(", ")
            )
        }
        "hookline.source.rejections" => format!(
            ":no_entry_sign: Source `{}` refused {} requests this minute (last: {}).",
            field("source_id").unwrap_or_default(),
            data["rejections_this_minute"],
            data["last"]["reason"].as_str().map(escape).unwrap_or_default()
        ),
        other => {
            let mut shown = serde_json::to_string_pretty(&data).unwrap_or_default();
            if shown.chars().count() > DATA_SHOWN {
                shown = shown.chars().take(DATA_SHOWN).collect::<String>() + "\n…";
            }
            format!("*{}*\n```{}```", escape(other), escape(&shown))
        }
    };
    let context = format!(
        "{} · {}",
        escape(event.get("id").and_then(Value::as_str).unwrap_or("")),
        escape(event.get("timestamp").and_then(Value::as_str).unwrap_or(""))
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

/// Slack's three control characters in text.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
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
        assert_eq!(message("not json"), None);
    }
}
