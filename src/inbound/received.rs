//! What a verified inbound request becomes: the event's type, its payload, the provider's id
//! (the dedup key) and the `source` object the event carries. Pure, so each kind's rules are
//! tested on plain headers and bodies.

use super::source::{Kind, Source};
use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The longest provider id kept as it is.
const MAX_PROVIDER_ID: usize = 256;

/// The type of an event whose provider names none.
pub const DEFAULT_TYPE: &str = "inbound";

/// A received request, ready to be stored as an event.
#[derive(Debug, PartialEq)]
pub struct Received {
    pub event_type: String,
    /// JSON text: the body itself when it is JSON, else `{"raw": <base64>, "content_type": …}`.
    pub payload: String,
    /// What identifies this delivery at the provider (the dedup key).
    pub provider_id: String,
    /// JSON text of the event's `source` object.
    pub source: String,
}

/// Headers worth keeping on the event, per kind (never a signature or a credential).
fn kept_headers(source: &Source) -> Vec<&str> {
    let mut names = vec!["content-type", "user-agent"];
    names.extend_from_slice(match source.kind {
        Kind::Github => &[
            "x-github-event",
            "x-github-delivery",
            "x-github-hook-id",
            "x-github-hook-installation-target-id",
            "x-github-hook-installation-target-type",
        ],
        Kind::Shopify => &[
            "x-shopify-topic",
            "x-shopify-webhook-id",
            "x-shopify-event-id",
            "x-shopify-shop-domain",
            "x-shopify-api-version",
            "x-shopify-triggered-at",
        ],
        Kind::StandardWebhooks => &["webhook-id", "webhook-timestamp"],
        _ => &[],
    });
    if let Some(h) = &source.dedup_header {
        names.push(h.as_str());
    }
    let secret = source.secret_headers();
    names.retain(|n| !secret.contains(&n.to_ascii_lowercase()));
    names
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// A field of a JSON object body, as text (`None` if the body is not an object or lacks it).
fn body_text(body: Option<&Value>, field: &str) -> Option<String> {
    body?.get(field)?.as_str().filter(|s| !s.is_empty()).map(String::from)
}

/// `type_prefix` + `name`, made a valid event type: characters outside `[a-zA-Z0-9_.:-]`
/// become `_`, and it is cut to 128 characters.
fn event_type(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn receive(source: &Source, headers: &HeaderMap, body: &[u8]) -> Received {
    let json_body = serde_json::from_slice::<&RawValue>(body).ok();
    let parsed: Option<Value> = json_body.and_then(|raw| serde_json::from_str(raw.get()).ok());
    let content_type = header(headers, "content-type");
    // JSON that serde_json reads back (not, say, a lone surrogate escape) is kept as it is.
    let payload = match (json_body, &parsed) {
        (Some(raw), Some(_)) => raw.get().to_string(),
        _ => json!({"raw": STANDARD.encode(body), "content_type": content_type}).to_string(),
    };
    let provider_type = match source.kind {
        Kind::Stripe | Kind::StandardWebhooks => body_text(parsed.as_ref(), "type"),
        Kind::Github => header(headers, "x-github-event").map(|event| match body_text(parsed.as_ref(), "action") {
            Some(action) => format!("{event}.{action}"),
            None => event.to_string(),
        }),
        Kind::Shopify => header(headers, "x-shopify-topic").map(|t| t.replace('/', ".")),
        _ => None,
    };
    let provider_id = match source.kind {
        Kind::Stripe => body_text(parsed.as_ref(), "id"),
        Kind::Github => header(headers, "x-github-delivery").map(String::from),
        Kind::Shopify => header(headers, "x-shopify-webhook-id")
            .or_else(|| header(headers, "x-shopify-event-id"))
            .map(String::from),
        Kind::StandardWebhooks => header(headers, "webhook-id").map(String::from),
        // Never the kind's own key or signature header: the same on every request, it would
        // make each one a duplicate of the first.
        _ => source
            .dedup_header
            .as_deref()
            .filter(|h| !source.secret_headers().contains(&h.to_ascii_lowercase()))
            .and_then(|h| header(headers, h))
            .map(String::from),
    };
    // A provider's id is unsigned for some kinds and may be any length: a long one is kept as
    // its digest (the same id, the same digest: dedup still holds).
    let provider_id = provider_id.map(|id| {
        if id.chars().count() > MAX_PROVIDER_ID {
            format!("sha256:{}", hex(&Sha256::digest(id.as_bytes())))
        } else {
            id
        }
    });
    let named_by_provider = provider_id.is_some();
    let provider_id = provider_id.unwrap_or_else(|| format!("sha256:{}", hex(&Sha256::digest(body))));
    let mut kept = Map::new();
    for name in kept_headers(source) {
        if let Some(value) = header(headers, name) {
            let value: String = value.chars().take(512).collect();
            kept.insert(name.to_ascii_lowercase(), Value::String(value));
        }
    }
    let source_object = json!({
        "id": source.id,
        "kind": source.kind.name(),
        "provider_id": named_by_provider.then_some(&provider_id),
        "headers": kept,
    });
    Received {
        event_type: event_type(&source.type_prefix, provider_type.as_deref().unwrap_or(DEFAULT_TYPE)),
        payload,
        provider_id,
        source: source_object.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::verify::test_support::headers;

    fn source(kind: Kind, prefix: &str) -> Source {
        let mut s = Source::new("src_a".into(), "t".into(), "n".into(), kind, 0);
        s.type_prefix = prefix.into();
        s
    }

    #[test]
    fn each_kind_names_its_type_and_id() {
        let body = br#"{"id": "evt_1", "type": "invoice.paid", "action": "opened"}"#;
        let stripe = receive(&source(Kind::Stripe, "stripe."), &headers(&[]), body);
        assert_eq!(
            (stripe.event_type.as_str(), stripe.provider_id.as_str()),
            ("stripe.invoice.paid", "evt_1")
        );
        assert_eq!(
            stripe.payload,
            std::str::from_utf8(body).unwrap(),
            "JSON kept byte for byte"
        );

        let gh_headers = headers(&[
            ("X-GitHub-Event", "issues"),
            ("X-GitHub-Delivery", "d-1"),
            ("X-Hub-Signature-256", "sha256=00"),
        ]);
        let github = receive(&source(Kind::Github, "gh."), &gh_headers, body);
        assert_eq!(
            (github.event_type.as_str(), github.provider_id.as_str()),
            ("gh.issues.opened", "d-1")
        );
        let ping = receive(&source(Kind::Github, ""), &gh_headers, br#"{"zen": "x"}"#);
        assert_eq!(ping.event_type, "issues");
        let kept: Value = serde_json::from_str(&github.source).unwrap();
        assert_eq!(kept["headers"]["x-github-event"], "issues");
        assert_eq!(kept["provider_id"], "d-1");
        assert!(
            kept["headers"].get("x-hub-signature-256").is_none(),
            "never the signature"
        );

        let shop_headers = headers(&[("X-Shopify-Topic", "orders/create"), ("X-Shopify-Event-Id", "e-9")]);
        let shopify = receive(&source(Kind::Shopify, "shop."), &shop_headers, body);
        assert_eq!(
            (shopify.event_type.as_str(), shopify.provider_id.as_str()),
            ("shop.orders.create", "e-9")
        );
        let both = headers(&[
            ("X-Shopify-Topic", "a/b"),
            ("X-Shopify-Event-Id", "e-9"),
            ("X-Shopify-Webhook-Id", "w-1"),
        ]);
        assert_eq!(receive(&source(Kind::Shopify, ""), &both, body).provider_id, "w-1");

        let sw = receive(
            &source(Kind::StandardWebhooks, ""),
            &headers(&[("webhook-id", "msg_1")]),
            body,
        );
        assert_eq!(
            (sw.event_type.as_str(), sw.provider_id.as_str()),
            ("invoice.paid", "msg_1")
        );
    }

    #[test]
    fn kinds_without_a_provider_id_use_the_dedup_header_or_the_body_digest() {
        let mut s = source(Kind::Hmac, "partner.");
        let plain = receive(&s, &headers(&[]), b"{}");
        assert_eq!(plain.event_type, "partner.inbound");
        assert_eq!(
            plain.provider_id,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&plain.source).unwrap()["provider_id"],
            Value::Null
        );
        s.dedup_header = Some("X-Request-Id".into());
        let named = receive(&s, &headers(&[("x-request-id", "r-7")]), b"{}");
        assert_eq!(named.provider_id, "r-7");
        assert_eq!(
            serde_json::from_str::<Value>(&named.source).unwrap()["headers"]["x-request-id"],
            "r-7"
        );
        // Absent header: the digest again.
        assert_eq!(receive(&s, &headers(&[]), b"{}").provider_id, plain.provider_id);
        // The kind's own signature header is never the dedup key, nor kept on the event.
        s.dedup_header = Some("X-Sig".into());
        s.hmac = Some(crate::inbound::source::HmacScheme {
            header: "x-sig".into(),
            algorithm: crate::inbound::source::AlgorithmName::Sha256,
            encoding: crate::inbound::source::EncodingName::Hex,
            prefix: String::new(),
        });
        let signed = receive(&s, &headers(&[("X-Sig", "abcd")]), b"{}");
        assert_eq!(signed.provider_id, plain.provider_id);
        assert!(!signed.source.contains("abcd"), "{}", signed.source);
    }

    #[test]
    fn a_body_that_is_not_json_is_kept_as_base64() {
        let s = source(Kind::None, "");
        for body in [&b"a=1&b=2"[..], &[0xff, 0xfe, 0x00][..], &b""[..], &b"{\"open\": "[..]] {
            let r = receive(
                &s,
                &headers(&[("content-type", "application/x-www-form-urlencoded")]),
                body,
            );
            let payload: Value = serde_json::from_str(&r.payload).unwrap();
            assert_eq!(STANDARD.decode(payload["raw"].as_str().unwrap()).unwrap(), body);
            assert_eq!(payload["content_type"], "application/x-www-form-urlencoded");
        }
    }

    #[test]
    fn long_provider_ids_are_kept_as_their_digest_and_bad_json_as_base64() {
        let long = "d".repeat(1_000);
        let a = receive(
            &source(Kind::Github, ""),
            &headers(&[("X-GitHub-Delivery", long.as_str())]),
            b"{}",
        );
        let b = receive(
            &source(Kind::Github, ""),
            &headers(&[("X-GitHub-Delivery", long.as_str())]),
            b"{}",
        );
        assert!(a.provider_id.starts_with("sha256:") && a.provider_id.len() == 7 + 64);
        assert_eq!(a.provider_id, b.provider_id, "the same id, the same key");
        let r = receive(&source(Kind::None, ""), &headers(&[]), br#"{"a": "\ud800"}"#);
        let payload: Value = serde_json::from_str(&r.payload).unwrap();
        assert!(payload["raw"].is_string(), "{}", r.payload);
    }

    #[test]
    fn provider_types_become_valid_event_types() {
        let s = source(Kind::Shopify, "shop.");
        let r = receive(&s, &headers(&[("X-Shopify-Topic", "weird topic/x*y")]), b"{}");
        assert_eq!(r.event_type, "shop.weird_topic.x_y");
        assert!(crate::ids::is_event_type(&r.event_type));
        let long = "x".repeat(300);
        let r = receive(&s, &headers(&[("X-Shopify-Topic", long.as_str())]), b"{}");
        assert_eq!(r.event_type.len(), 128);
        assert!(crate::ids::is_event_type(&r.event_type));
    }
}
