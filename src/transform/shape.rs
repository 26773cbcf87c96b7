//! What a transform's program sees, and what its output may do to a delivery.
//!
//! The program gets `{"id", "type", "timestamp", "payload", "metadata", "endpoint": {"id",
//! "metadata"}}` and returns an object that may set `payload` (the exact body sent),
//! `headers` (added to the request), `url` (another receiver) or `cancel: true`. The input's
//! own keys may come back unchanged (`.payload.x = 1` returns them all); any other key is a
//! mistake and fails the run.

use hookline_actors::TransformSpec;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What the output does to the delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Shaped {
    Send {
        /// The body to send instead of the event (JSON text).
        body: Option<String>,
        headers: BTreeMap<String, String>,
        url: Option<String>,
    },
    Cancel,
}

/// The most headers an output may add (as an endpoint may have).
const MAX_HEADERS: usize = 20;
/// The longest URL an output may give.
const MAX_URL: usize = 2048;
/// Keys of the input an output may carry back, ignored.
const ECHOED: &[&str] = &["id", "type", "timestamp", "metadata", "endpoint"];

/// The program's input, from the event's body as delivered (`{"type", "timestamp", "data"}`)
/// and its id and metadata.
pub fn input(event_id: &str, body: &str, spec: &TransformSpec) -> Result<Value, String> {
    let mut envelope: Map<String, Value> = match serde_json::from_str(body) {
        Ok(Value::Object(m)) => m,
        _ => return Err("the event's body is not a JSON object".into()),
    };
    let metadata = match spec.event_metadata.as_deref().map(serde_json::from_str::<Value>) {
        None => Value::Object(Map::new()),
        Some(Ok(m @ Value::Object(_))) => m,
        Some(_) => return Err("the event's metadata is not a JSON object".into()),
    };
    let endpoint_metadata = spec
        .endpoint_metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Ok(serde_json::json!({
        "id": event_id,
        "type": envelope.remove("type").unwrap_or(Value::Null),
        "timestamp": envelope.remove("timestamp").unwrap_or(Value::Null),
        "payload": envelope.remove("data").unwrap_or(Value::Null),
        "metadata": metadata,
        "endpoint": {"id": spec.endpoint_id, "metadata": Value::Object(endpoint_metadata)},
    }))
}

/// What an output asks for, or why it cannot be done. `require_https` is
/// `delivery.require_https`: a new URL must then be https too.
pub fn shape(output: Value, require_https: bool) -> Result<Shaped, String> {
    let Value::Object(mut out) = output else {
        return Err(format!("the output must be an object, not {}", kind(&output)));
    };
    match out.remove("cancel") {
        None | Some(Value::Bool(false)) | Some(Value::Null) => {}
        Some(Value::Bool(true)) => return Ok(Shaped::Cancel),
        Some(other) => return Err(format!("cancel: must be true or false, not {}", kind(&other))),
    }
    let body = match out.remove("payload") {
        None => None,
        Some(payload) => Some(serde_json::to_string(&payload).map_err(|e| e.to_string())?),
    };
    let headers = match out.remove("headers") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(h)) => headers(h)?,
        Some(other) => return Err(format!("headers: must be an object of strings, not {}", kind(&other))),
    };
    let url = match out.remove("url") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) => Some(checked_url(url, require_https)?),
        Some(other) => return Err(format!("url: must be a string, not {}", kind(&other))),
    };
    if let Some(extra) = out.keys().find(|k| !ECHOED.contains(&k.as_str())) {
        return Err(format!(
            "the output has {extra:?}: it may set only payload, headers, url and cancel"
        ));
    }
    Ok(Shaped::Send { body, headers, url })
}

fn headers(given: Map<String, Value>) -> Result<BTreeMap<String, String>, String> {
    if given.len() > MAX_HEADERS {
        return Err(format!("headers: at most {MAX_HEADERS}"));
    }
    let mut out = BTreeMap::new();
    for (name, value) in given {
        let Value::String(value) = value else {
            return Err(format!("headers: the value of {name:?} must be a string"));
        };
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("headers: {name:?} is not a valid header name"));
        }
        if hookline_actors::transport::RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!("headers: {name:?} is set by the node and cannot be changed"));
        }
        if reqwest::header::HeaderValue::from_str(&value).is_err() || value.chars().count() > 4096 {
            return Err(format!("headers: the value of {name:?} is not a valid header value"));
        }
        out.insert(name, value);
    }
    Ok(out)
}

/// An absolute http(s) URL without credentials; where it points is for the SSRF guard to say
/// when the request is made.
fn checked_url(url: String, require_https: bool) -> Result<String, String> {
    if url.len() > MAX_URL {
        return Err(format!("url: at most {MAX_URL} characters"));
    }
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("url: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if !require_https => {}
        "http" => return Err("url: must be https:// (delivery.require_https is on)".into()),
        other => return Err(format!("url: {other}:// is not http:// or https://")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url: may not carry a user name or password".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("url: has no host".into());
    }
    Ok(url)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> TransformSpec {
        TransformSpec {
            program: ".".into(),
            event: "{}".into(),
            endpoint_id: "ep_1".into(),
            endpoint_metadata: BTreeMap::from([("team".to_string(), "ops".to_string())]),
            event_metadata: Some(r#"{"region":"eu"}"#.into()),
        }
    }

    #[test]
    fn the_input_holds_the_event_and_the_endpoint() {
        let body = r#"{"type":"order.paid","timestamp":"2026-12-04T00:00:00Z","data":{"total":3}}"#;
        assert_eq!(
            input("evt_1", body, &spec()).unwrap(),
            json!({
                "id": "evt_1", "type": "order.paid", "timestamp": "2026-12-04T00:00:00Z",
                "payload": {"total": 3}, "metadata": {"region": "eu"},
                "endpoint": {"id": "ep_1", "metadata": {"team": "ops"}},
            })
        );
        let bare = TransformSpec {
            event_metadata: None,
            ..spec()
        };
        assert_eq!(input("evt_1", body, &bare).unwrap()["metadata"], json!({}));
        assert!(input("evt_1", "[1]", &bare).is_err());
    }

    #[test]
    fn an_output_sets_the_body_headers_and_url() {
        let out = json!({"payload": {"text": "hi"}, "headers": {"X-Kind": "a"}, "url": "https://example.com/b"});
        assert_eq!(
            shape(out, true).unwrap(),
            Shaped::Send {
                body: Some(r#"{"text":"hi"}"#.into()),
                headers: BTreeMap::from([("X-Kind".to_string(), "a".to_string())]),
                url: Some("https://example.com/b".into()),
            }
        );
        // The input's own keys may come back (`.payload.x = 1`); they change nothing.
        let echoed =
            json!({"id": "evt_1", "type": "t", "timestamp": null, "metadata": {}, "endpoint": {}, "payload": 1});
        assert_eq!(
            shape(echoed, false).unwrap(),
            Shaped::Send {
                body: Some("1".into()),
                headers: BTreeMap::new(),
                url: None
            }
        );
        assert_eq!(
            shape(json!({}), false).unwrap(),
            Shaped::Send {
                body: None,
                headers: BTreeMap::new(),
                url: None
            }
        );
    }

    #[test]
    fn cancel_wins_over_everything_else() {
        assert_eq!(
            shape(json!({"cancel": true, "payload": 1}), false).unwrap(),
            Shaped::Cancel
        );
        assert!(matches!(
            shape(json!({"cancel": false}), false).unwrap(),
            Shaped::Send { .. }
        ));
        assert_eq!(
            shape(json!({"cancel": "yes"}), false).unwrap_err(),
            "cancel: must be true or false, not a string"
        );
    }

    #[test]
    fn a_bad_output_fails_and_says_why() {
        let cases = [
            (json!([1]), "the output must be an object, not an array"),
            (
                json!({"header": {}}),
                "it may set only payload, headers, url and cancel",
            ),
            (json!({"headers": {"webhook-signature": "x"}}), "is set by the node"),
            (json!({"headers": {"Content-Type": "text/plain"}}), "is set by the node"),
            (json!({"headers": {"bad name": "x"}}), "not a valid header name"),
            (json!({"headers": {"x-a": 1}}), "must be a string"),
            (json!({"headers": {"x-a": "line\nbreak"}}), "not a valid header value"),
            (json!({"url": "ftp://example.com"}), "is not http:// or https://"),
            (json!({"url": "https://user:pw@example.com"}), "user name or password"),
            (json!({"url": "not a url"}), "url: "),
            (json!({"url": 3}), "url: must be a string"),
        ];
        for (out, why) in cases {
            let e = shape(out.clone(), false).unwrap_err();
            assert!(e.contains(why), "{out}: {e}");
        }
        assert!(shape(json!({"url": "http://example.com"}), true)
            .unwrap_err()
            .contains("require_https"));
        let many: Map<String, Value> = (0..21).map(|i| (format!("x-{i}"), json!("v"))).collect();
        assert!(shape(json!({"headers": many}), false)
            .unwrap_err()
            .contains("at most 20"));
    }
}
