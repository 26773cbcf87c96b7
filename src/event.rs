//! An event as receivers get it: its id, the exact body, and the time format of every time
//! the API shows. One constructor serves ingest, test sends and the node's own events.

/// RFC 3339 with milliseconds, UTC: how the API and event bodies show every time.
pub use hookline_actors::model::rfc3339;

/// An event ready to be stored: id minted, body built.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub tenant: String,
    pub event_id: String,
    pub event_type: String,
    /// The exact body every endpoint receives: `{"id","type","timestamp","tenant","data"}`.
    pub body: String,
    pub idempotency_key: Option<String>,
    /// Route to this endpoint only (test sends).
    pub only_endpoint: Option<String>,
    /// An inbound event's dedup: its provider's id, remembered per source for a window.
    pub provider_dedup: Option<ProviderDedup>,
    /// With `validation: warn`: how the payload failed its schema (JSON text), kept beside the
    /// event (never in the body receivers get).
    pub schema_errors: Option<String>,
    /// The event's `metadata` (JSON text of an object of strings; `None` when it has none),
    /// kept beside the event: content filters and searches see it, receivers do not.
    pub metadata: Option<String>,
    /// A sampled event's trace context (`traces::Stored`, encoded), kept with its stream
    /// entry and its record: routing and every attempt join its trace, on any node.
    pub trace: Option<String>,
}

/// Keys one `metadata` object may hold.
pub const MAX_METADATA_KEYS: usize = 16;
/// The longest metadata value, in characters.
pub const MAX_METADATA_VALUE: usize = 512;

/// A metadata key: 1 to 64 of `[a-zA-Z0-9_:-]` (no dot: a filter's path `metadata.<key>` names
/// it whole).
pub fn is_metadata_key(key: &str) -> bool {
    (1..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:-".contains(&b))
}

/// Check `metadata` (of events and endpoints): at most 16 keys, each a metadata key, each value
/// at most 512 characters. The error names the field (`metadata.<key>`).
pub fn check_metadata(metadata: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(format!("metadata: at most {MAX_METADATA_KEYS} keys"));
    }
    for (key, value) in metadata {
        if !is_metadata_key(key) {
            return Err(format!("metadata: the key {key:?} is not 1 to 64 of [a-zA-Z0-9_:-]"));
        }
        if value.chars().count() > MAX_METADATA_VALUE {
            return Err(format!("metadata.{key}: at most {MAX_METADATA_VALUE} characters"));
        }
    }
    Ok(())
}

/// `body` with `"metadata": <metadata>` added (JSON text of an object), as content filters
/// read an event: the body receivers get never holds it.
pub fn with_metadata<'a>(body: &'a str, metadata: Option<&str>) -> std::borrow::Cow<'a, str> {
    match (metadata, body.trim_end().strip_suffix('}')) {
        (Some(metadata), Some(open)) => format!("{open},\"metadata\":{metadata}}}").into(),
        _ => body.into(),
    }
}

/// What makes two inbound requests the same delivery: the provider's id within a source.
#[derive(Debug, Clone)]
pub struct ProviderDedup {
    pub source_id: String,
    pub provider_id: String,
    pub window_s: u64,
}

impl NewEvent {
    /// A new event of `tenant` at `now_ms` whose `data` is `payload` (JSON text), kept byte
    /// for byte in the body.
    pub fn new(tenant: &str, event_type: &str, payload: &str, now_ms: u64) -> Self {
        Self::build(tenant, event_type, payload, now_ms, None)
    }

    /// An event received on a source (`/in/…`): the body also carries `source` (JSON text:
    /// the source, its kind, the provider's id and the request headers that matter).
    pub fn received(tenant: &str, event_type: &str, payload: &str, now_ms: u64, source: &str) -> Self {
        Self::build(tenant, event_type, payload, now_ms, Some(source))
    }

    fn build(tenant: &str, event_type: &str, payload: &str, now_ms: u64, source: Option<&str>) -> Self {
        let event_id = crate::ids::new_event_id(now_ms);
        let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let source = source.map(|s| format!(r#","source":{s}"#)).unwrap_or_default();
        let body = format!(
            r#"{{"id":{},"type":{},"timestamp":{},"tenant":{},"data":{}{source}}}"#,
            q(&event_id),
            q(event_type),
            q(&rfc3339(now_ms)),
            q(tenant),
            payload
        );
        NewEvent {
            tenant: tenant.to_string(),
            event_id,
            event_type: event_type.to_string(),
            body,
            idempotency_key: None,
            only_endpoint: None,
            provider_dedup: None,
            schema_errors: None,
            metadata: None,
            trace: None,
        }
    }

    pub fn with_idempotency_key(mut self, key: Option<String>) -> Self {
        self.idempotency_key = key;
        self
    }

    pub fn with_provider_dedup(mut self, dedup: ProviderDedup) -> Self {
        self.provider_dedup = Some(dedup);
        self
    }

    /// Deliver to this endpoint only, whatever the subscriptions say (a test send).
    pub fn only_to(mut self, endpoint_id: &str) -> Self {
        self.only_endpoint = Some(endpoint_id.to_string());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_checked_and_seen_by_filters_beside_the_body() {
        let map = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert_eq!(check_metadata(&map(&[("region", "eu"), ("a_b:c-d", "")])), Ok(()));
        let long = "é".repeat(MAX_METADATA_VALUE + 1);
        assert!(check_metadata(&map(&[("k", &long)]))
            .unwrap_err()
            .starts_with("metadata.k:"));
        assert_eq!(check_metadata(&map(&[("k", &long[..MAX_METADATA_VALUE * 2])])), Ok(()));
        for bad in ["", "a.b", "a b", &"k".repeat(65)] {
            assert!(check_metadata(&map(&[(bad, "v")])).is_err(), "{bad:?}");
        }
        let many: Vec<(String, String)> = (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(check_metadata(&many.into_iter().collect()).is_err());
        let body = r#"{"id":"evt_1","type":"a","data":{"x":1}}"#;
        let seen = with_metadata(body, Some(r#"{"region":"eu"}"#));
        let content = hookline_actors::filter::content(&seen).unwrap();
        assert_eq!(content["metadata"]["region"], "eu");
        assert_eq!(content["payload"]["x"], 1);
        assert_eq!(with_metadata(body, None), body);
    }

    #[test]
    fn the_body_keeps_the_payload_byte_for_byte_and_escapes_the_rest() {
        let e = NewEvent::new("t\"1", "a.b", r#"{"x": [1, 2.50]}"#, 1_700_000_000_123);
        assert!(e.event_id.starts_with("evt_"));
        assert_eq!(
            e.body,
            format!(
                r#"{{"id":"{}","type":"a.b","timestamp":"2023-11-14T22:13:20.123Z","tenant":"t\"1","data":{{"x": [1, 2.50]}}}}"#,
                e.event_id
            )
        );
        let parsed: serde_json::Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(parsed["tenant"], "t\"1");
    }
}
