//! An event told in words, for people (Slack and email notifications, issue 22): the node's own
//! notices as sentences, any other event as its type and data. One text, marked up per medium
//! (`Style`).

use serde_json::Value;

/// The most characters of an event's data a message shows (Slack cuts a section at 3,000).
const DATA_SHOWN: usize = 2_500;

/// How a medium marks text up.
pub struct Style {
    pub bold: fn(&str) -> String,
    pub link: fn(&str) -> String,
    pub code: fn(&str) -> String,
    /// Makes any text safe to put in a message of this medium.
    pub escape: fn(&str) -> String,
    /// A sentence's leading icon, by its Slack emoji name (nothing in email).
    pub icon: fn(&str) -> String,
}

/// Slack's mrkdwn: `*bold*`, `<url>`, three escaped characters.
pub const SLACK: Style = Style {
    bold: |s| format!("*{s}*"),
    link: |url| format!("<{url}>"),
    code: |s| format!("```{s}```"),
    escape: |s| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"),
    icon: |name| format!(":{name}: "),
};

/// Plain text (an email's text part).
pub const PLAIN: Style = Style {
    bold: |s| s.to_string(),
    link: |url| url.to_string(),
    code: |s| s.to_string(),
    escape: |s| s.to_string(),
    icon: |_| String::new(),
};

/// HTML (an email's HTML part).
pub const HTML: Style = Style {
    bold: |s| format!("<b>{s}</b>"),
    link: |url| format!("<a href=\"{url}\">{url}</a>"),
    code: |s| format!("<pre>{s}</pre>"),
    escape: |s| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;")
    },
    icon: |_| String::new(),
};

/// The event (`{"id","type","timestamp","tenant","data"}`) in a few words; `None` if it has
/// no type.
pub fn describe(event: &Value, style: &Style) -> Option<String> {
    let event_type = event.get("type")?.as_str()?;
    let data = event.get("data").cloned().unwrap_or(Value::Null);
    let esc = style.escape;
    let field = |name: &str| data.get(name).and_then(Value::as_str).map(esc);
    // Numbers as numbers only: anyone may post an event of these types, so nothing of its
    // data reaches the message unescaped.
    let number = |v: &Value| v.as_u64().unwrap_or(0);
    let endpoint = || {
        let url = (style.link)(&field("url").unwrap_or_default());
        match field("description").filter(|d| !d.is_empty()) {
            Some(d) => format!("{} ({url})", (style.bold)(&d)),
            None => url,
        }
    };
    let text = match event_type {
        "hookline.endpoint.disabled" => format!(
            "{}Endpoint {} was disabled ({}): nothing is sent to it until it is enabled again.",
            (style.icon)("no_entry"),
            endpoint(),
            field("reason").unwrap_or_default()
        ),
        "hookline.endpoint.breaker_opened" => format!(
            "{}Endpoint {} is failing: its circuit breaker opened at {}. The next probe is at {}.",
            (style.icon)("warning"),
            endpoint(),
            field("opened_at").unwrap_or_default(),
            field("next_probe_at").unwrap_or_else(|| "soon".into())
        ),
        "hookline.endpoint.recovered" => format!(
            "{}Endpoint {} recovered at {}.",
            (style.icon)("white_check_mark"),
            endpoint(),
            field("recovered_at").unwrap_or_default()
        ),
        "hookline.endpoint.dead_letters" => {
            let reasons: Vec<String> = data["top_reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| format!("{} × {}", esc(r["reason"].as_str().unwrap_or("?")), number(&r["count"])))
                .collect();
            format!(
                "{}{} deliveries to endpoint {} were dead-lettered ({}).",
                (style.icon)("skull"),
                number(&data["count"]),
                endpoint(),
                reasons.join(", ")
            )
        }
        "hookline.source.rejections" => format!(
            "{}Source {} refused {} requests this minute (last: {}).",
            (style.icon)("no_entry_sign"),
            (style.bold)(&field("source_id").unwrap_or_default()),
            number(&data["rejections_this_minute"]),
            data["last"]["reason"].as_str().map(esc).unwrap_or_default()
        ),
        other => {
            let mut shown = serde_json::to_string_pretty(&data).unwrap_or_default();
            if shown.chars().count() > DATA_SHOWN {
                shown = shown.chars().take(DATA_SHOWN).collect::<String>() + "\n…";
            }
            format!("{}\n{}", (style.bold)(&esc(other)), (style.code)(&esc(&shown)))
        }
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_sentence_marked_up_per_medium() {
        let event = json!({"type": "hookline.endpoint.recovered",
            "data": {"url": "https://r.example/h?a=1&b=2", "description": "<Billing>", "recovered_at": "t1"}});
        assert_eq!(
            describe(&event, &SLACK).unwrap(),
            ":white_check_mark: Endpoint *&lt;Billing&gt;* (<https://r.example/h?a=1&amp;b=2>) recovered at t1."
        );
        assert_eq!(
            describe(&event, &PLAIN).unwrap(),
            "Endpoint <Billing> (https://r.example/h?a=1&b=2) recovered at t1."
        );
        assert_eq!(
            describe(&event, &HTML).unwrap(),
            "Endpoint <b>&lt;Billing&gt;</b> (<a href=\"https://r.example/h?a=1&amp;b=2\">https://r.example/h?a=1&amp;b=2</a>) \
             recovered at t1."
        );
        let spoofed = json!({"type": "hookline.endpoint.dead_letters", "data": {"count": "<!channel>", "url": "u",
            "top_reasons": [{"reason": "<b>", "count": "<a href=x>"}]}});
        assert_eq!(
            describe(&spoofed, &SLACK).unwrap(),
            ":skull: 0 deliveries to endpoint <u> were dead-lettered (&lt;b&gt; × 0)."
        );
        let other = json!({"type": "order.paid", "data": {"x": "<i>"}});
        assert_eq!(
            describe(&other, &HTML).unwrap(),
            "<b>order.paid</b>\n<pre>{\n  &quot;x&quot;: &quot;&lt;i&gt;&quot;\n}</pre>"
        );
        assert_eq!(describe(&json!({"data": {}}), &PLAIN), None);
    }
}
