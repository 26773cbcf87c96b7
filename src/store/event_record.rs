//! An event's record (`P:{evP}:evt:<evt>`) is one string, written with its expiry in one
//! command (`SET … EX`): the body receivers get, or, when the event carries more (schema
//! errors, metadata, a trace context), `#` + a JSON object of those + `\n` + the body. A body
//! always starts with `{` (`event.rs` builds it), so the first byte tells the two apart.
//!
//! Events stored before this layout are hashes (`body`, `eps`, `se`, `md`, `tc`) until
//! retention takes them: a read that meets one (`WRONGTYPE`) reads it as a hash instead
//! (`legacy_records`), so an upgrade loses no stored event.

use super::{text, RedisStore, Result};
use fred::prelude::*;
use fred::types::Value;
use serde::{Deserialize, Serialize};

/// What an event's record holds besides its body.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extras {
    /// Schema errors flagged under `validation: warn` (JSON text of a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se: Option<String>,
    /// Metadata (JSON text of an object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md: Option<String>,
    /// A traced event's trace context (`traces::Stored`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tc: Option<String>,
}

impl Extras {
    fn is_empty(&self) -> bool {
        self.se.is_none() && self.md.is_none() && self.tc.is_none()
    }
}

/// A stored event's record, read back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub body: String,
    pub extras: Extras,
    /// Routed endpoint ids: only events stored before the partition's routed lists have them.
    pub eps: Option<String>,
}

/// The string an event's record holds.
pub fn encode(body: &str, extras: &Extras) -> String {
    if extras.is_empty() && !body.starts_with('#') {
        return body.to_string();
    }
    let head = serde_json::to_string(extras).unwrap_or_else(|_| "{}".into());
    format!("#{head}\n{body}")
}

/// An event's record from its string; `None` if it is not one `encode` wrote.
pub fn decode(stored: &str) -> Option<EventRecord> {
    let Some(framed) = stored.strip_prefix('#') else {
        return Some(EventRecord {
            body: stored.to_string(),
            ..Default::default()
        });
    };
    let (head, body) = framed.split_once('\n')?;
    Some(EventRecord {
        body: body.to_string(),
        extras: serde_json::from_str(head).ok()?,
        eps: None,
    })
}

/// The fields a record stored as a hash (before this layout) is read with.
const LEGACY_FIELDS: [&str; 5] = ["body", "se", "md", "tc", "eps"];

/// How one pipelined `GET` of an event's record came back.
pub enum Read {
    Found(EventRecord),
    Gone,
    /// Stored as a hash by an older version: read it with `legacy_records`.
    Legacy,
}

/// One `GET` reply of an event's record.
pub fn read(reply: std::result::Result<Value, fred::error::Error>) -> Result<Read> {
    match reply {
        Ok(Value::Null) => Ok(Read::Gone),
        Ok(value) => Ok(text(&value).as_deref().and_then(decode).map_or(Read::Gone, Read::Found)),
        Err(e) if e.details().starts_with("WRONGTYPE") => Ok(Read::Legacy),
        Err(e) => Err(e.into()),
    }
}

impl RedisStore {
    /// Records of these events stored as hashes by an older version (`None`: gone), in order,
    /// in one pipelined round trip.
    pub(super) async fn legacy_records(&self, keys: &[String]) -> Result<Vec<Option<EventRecord>>> {
        let calls = keys.iter().map(|key| {
            self.client()
                .hmget::<Vec<Option<String>>, _, _>(key, LEGACY_FIELDS.to_vec())
        });
        super::join_all(calls)
            .await
            .into_iter()
            .map(|fields| {
                let mut f = fields?.into_iter();
                let mut next = || f.next().flatten();
                let body = next();
                let extras = Extras {
                    se: next(),
                    md: next(),
                    tc: next(),
                };
                let eps = next();
                Ok(body.map(|body| EventRecord { body, extras, eps }))
            })
            .collect()
    }

    /// These events' records (`None`: gone), in order: one pipelined round trip, and one more
    /// only if some were stored as hashes by an older version.
    pub(super) async fn event_records(&self, keys: &[String]) -> Result<Vec<Option<EventRecord>>> {
        let pipeline = self.client().pipeline();
        for key in keys {
            let _: () = pipeline.get(key).await?;
        }
        let replies: Vec<std::result::Result<Value, fred::error::Error>> = pipeline.try_all().await;
        let mut records = Vec::with_capacity(keys.len());
        let mut legacy = Vec::new();
        for (i, reply) in replies.into_iter().enumerate() {
            records.push(match read(reply)? {
                Read::Found(record) => Some(record),
                Read::Gone => None,
                Read::Legacy => {
                    legacy.push(i);
                    None
                }
            });
        }
        if !legacy.is_empty() {
            let old: Vec<String> = legacy.iter().map(|&i| keys[i].clone()).collect();
            for (i, record) in legacy.into_iter().zip(self.legacy_records(&old).await?) {
                records[i] = record;
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_event_is_stored_as_its_body_and_the_rest_framed_before_it() {
        let body = r##"{"id":"evt_1","type":"a","data":{"x":"#\n"}}"##;
        assert_eq!(encode(body, &Extras::default()), body);
        assert_eq!(
            decode(body),
            Some(EventRecord {
                body: body.into(),
                ..Default::default()
            })
        );
        let extras = Extras {
            se: Some(r#"[{"path":"/x"}]"#.into()),
            md: None,
            tc: Some("00-ab-cd-01".into()),
        };
        let stored = encode(body, &extras);
        assert!(stored.starts_with("#{"), "{stored}");
        assert_eq!(
            decode(&stored),
            Some(EventRecord {
                body: body.into(),
                extras,
                eps: None
            })
        );
        // A body that began with the frame's mark would still read back as itself.
        let odd = "#not json";
        assert_eq!(
            decode(&encode(odd, &Extras::default())).map(|r| r.body),
            Some(odd.to_string())
        );
        assert_eq!(decode("#{\"se\":1}"), None, "a frame without its body is not a record");
    }
}
