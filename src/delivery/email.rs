//! Email-kind endpoints (issue 22): each delivery is an email to the endpoint's recipients
//! (its `url` is `mailto:a@x,b@y`), with a plain-text and an HTML part told from the event
//! (`describe`) and a link to the console, sent through `notifications.smtp_url` (lettre).

use super::describe::{describe, HTML, PLAIN};
use hookline_actors::transport::FailureKind;
use hookline_actors::{AttemptRequest, AttemptResponse};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;
use std::time::Instant;

/// How the node sends email.
pub struct Mailer {
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Where the console is reached from a mail reader (`notifications.console_url`), if set.
    console_url: Option<String>,
}

impl Mailer {
    /// From `smtp://[user:pass@]host[:port]` (no TLS: a relay beside the node) or
    /// `smtps://[user:pass@]host[:port]` (TLS from the start); `None` for an empty URL.
    pub fn new(smtp_url: &str, from: &str, console_url: &str) -> Result<Option<Mailer>, String> {
        if smtp_url.is_empty() {
            return Ok(None);
        }
        let url = reqwest::Url::parse(smtp_url).map_err(|e| format!("notifications.smtp_url: {e}"))?;
        let host = url
            .host_str()
            .ok_or("notifications.smtp_url: has no host")?
            .trim_matches(['[', ']'])
            .to_string();
        let mut builder = match url.scheme() {
            "smtp" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host).port(url.port().unwrap_or(25)),
            "smtps" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                .map_err(|e| format!("notifications.smtp_url: {e}"))?
                .port(url.port().unwrap_or(465)),
            other => return Err(format!("notifications.smtp_url: {other}:// is not smtp:// or smtps://")),
        };
        if !url.username().is_empty() {
            // The URL keeps them percent-encoded (`p%40ss` for `p@ss`).
            builder = builder.credentials(Credentials::new(
                percent_decode(url.username()),
                percent_decode(url.password().unwrap_or("")),
            ));
        }
        let from: Mailbox = from.parse().map_err(|e| format!("notifications.email_from: {e}"))?;
        Ok(Some(Mailer {
            smtp: builder.build(),
            from,
            console_url: Some(console_url.trim_end_matches('/').to_string()).filter(|u| !u.is_empty()),
        }))
    }

    /// Send the delivery as an email, answered as an attempt: 250 when the server took it, a
    /// retry on a transient or connection failure, dead on a permanent refusal.
    pub async fn send(&self, req: &AttemptRequest) -> AttemptResponse {
        let started = Instant::now();
        let failed = |kind: FailureKind, error: String| AttemptResponse {
            failure: Some(kind),
            error: Some(error),
            latency_ms: started.elapsed().as_millis() as u64,
            ..Default::default()
        };
        let message = match self.message(req) {
            Ok(m) => m,
            Err(e) => return failed(FailureKind::InvalidRequest, e),
        };
        let sent = tokio::time::timeout(req.timeout, self.smtp.send(message)).await;
        match sent {
            Err(_) => failed(
                FailureKind::Timeout,
                format!("smtp: no answer within {} ms", req.timeout.as_millis()),
            ),
            Ok(Ok(answer)) => AttemptResponse {
                status: Some(u16::from(answer.code())),
                latency_ms: started.elapsed().as_millis() as u64,
                excerpt: answer
                    .message()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(super::EXCERPT)
                    .collect(),
                ..Default::default()
            },
            Ok(Err(e)) if e.is_permanent() => failed(FailureKind::InvalidRequest, format!("smtp: {e}")),
            Ok(Err(e)) => failed(FailureKind::Connect, format!("smtp: {e}")),
        }
    }

    fn message(&self, req: &AttemptRequest) -> Result<Message, String> {
        let event: Value = serde_json::from_str(&req.body).map_err(|e| format!("not an event: {e}"))?;
        let text = describe(&event, &PLAIN).ok_or("not an event: no type")?;
        let html = describe(&event, &HTML).ok_or("not an event: no type")?;
        let link = self.link(&event);
        let text = match &link {
            Some(url) => format!("{text}\n\nOpen it in the console: {url}\n"),
            None => format!("{text}\n"),
        };
        let html = match &link {
            Some(url) => format!(
                "<p>{}</p><p><a href=\"{}\">Open it in the console</a></p>",
                html.replace('\n', "<br>"),
                (HTML.escape)(url)
            ),
            None => format!("<p>{}</p>", html.replace('\n', "<br>")),
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject(&event))
            .message_id(Some(format!("<{}.{}@hookline>", req.event_id, started_id())));
        for to in recipients(&req.url)? {
            builder = builder.to(to);
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| e.to_string())
    }

    /// The console's page of what the event is about: a notice's endpoint, else the event.
    fn link(&self, event: &Value) -> Option<String> {
        let base = self.console_url.as_ref()?;
        let tenant = event["tenant"].as_str()?;
        match event["data"]["endpoint_id"].as_str() {
            Some(endpoint) => Some(format!("{base}/console/t/{tenant}/e/{endpoint}")),
            None => Some(format!("{base}/console/t/{tenant}/events?id={}", event["id"].as_str()?)),
        }
    }
}

/// A per-send number for the Message-ID (retries of one delivery are different messages).
fn started_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The recipients of a `mailto:a@x,b@y` URL.
pub fn recipients(url: &str) -> Result<Vec<Mailbox>, String> {
    let list = url.strip_prefix("mailto:").ok_or("not a mailto: URL")?;
    list.split(',')
        .map(|a| a.trim().parse::<Mailbox>().map_err(|e| format!("{a:?}: {e}")))
        .collect()
}

/// What the email is about, in its subject line.
fn subject(event: &Value) -> String {
    let data = &event["data"];
    let endpoint = data["description"]
        .as_str()
        .filter(|d| !d.is_empty())
        .or(data["url"].as_str())
        .unwrap_or("");
    let about = match event["type"].as_str().unwrap_or("") {
        "hookline.endpoint.disabled" => format!("Endpoint disabled: {endpoint}"),
        "hookline.endpoint.breaker_opened" => format!("Endpoint failing: {endpoint}"),
        "hookline.endpoint.recovered" => format!("Endpoint recovered: {endpoint}"),
        "hookline.endpoint.dead_letters" => format!("Deliveries dead-lettered: {endpoint}"),
        "hookline.source.rejections" => {
            format!("Source refusing requests: {}", data["source_id"].as_str().unwrap_or(""))
        }
        other => format!("Event {other}"),
    };
    // A subject is one line.
    format!("[Hookline] {}", about.replace(['\r', '\n'], " "))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subjects_and_recipients() {
        let opened = json!({"type": "hookline.endpoint.breaker_opened", "data": {"url": "https://r/h", "description": "Billing\nprod"}});
        assert_eq!(subject(&opened), "[Hookline] Endpoint failing: Billing prod");
        let plain = json!({"type": "hookline.endpoint.recovered", "data": {"url": "https://r/h", "description": null}});
        assert_eq!(subject(&plain), "[Hookline] Endpoint recovered: https://r/h");
        assert_eq!(subject(&json!({"type": "order.paid"})), "[Hookline] Event order.paid");
        let to = recipients("mailto:ops@example.com, oncall@example.com").unwrap();
        assert_eq!(to.len(), 2);
        assert_eq!(to[1].email.to_string(), "oncall@example.com");
        assert!(recipients("mailto:not an address").is_err());
        assert!(recipients("https://x").is_err());
        assert_eq!(percent_decode("p%40ss%2Fw"), "p@ss/w");
    }

    #[test]
    fn the_smtp_url_says_how_to_reach_the_server() {
        assert!(Mailer::new("", "a@b.c", "").unwrap().is_none());
        assert!(
            Mailer::new("smtp://127.0.0.1:2525", "Hookline <hookline@example.com>", "")
                .unwrap()
                .is_some()
        );
        assert!(Mailer::new("smtps://user:p%40ss@mail.example.com", "a@b.c", "")
            .unwrap()
            .is_some());
        let refused = |url: &str, from: &str| Mailer::new(url, from, "").err().unwrap_or_default();
        assert!(refused("http://mail.example.com", "a@b.c").contains("not smtp://"));
        assert!(refused("smtp://h", "not a mailbox").contains("email_from"));
    }
}
