//! Finding a tenant's events (`GET /v1/tenants/{t}/events`): newest first, read from its events
//! partition's stream (which holds every event within retention, routed or not), with bounded
//! work per request.

use super::{join_all, RedisStore, Result, StoredEvent};
use fred::prelude::*;
use std::collections::HashMap;

/// Stream entries one request reads at most before it answers with what it found and a cursor
/// to go on from: a filter that matches little cannot make a request scan the stream.
pub const SCAN_BUDGET: usize = 10_000;
/// Stream entries read per round trip.
const CHUNK: usize = 500;
/// How far the stream's clock (Redis's, at the append) may be from an event's own time (the
/// node's, in its id and `timestamp`): the stream is read this much wider than `from`/`to`,
/// and each event is then held to them by its own time.
const CLOCK_SLACK_MS: u64 = 60_000;

/// What to look for. `types`: an event type, `prefix.*` or `*`; `before`: a cursor (the stream
/// id of the last event of the previous page: this page starts after it).
#[derive(Debug, Default)]
pub struct EventSearch<'a> {
    pub tenant: &'a str,
    pub types: Option<&'a str>,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    pub source_id: Option<&'a str>,
    /// `(key, value)` pairs the event's metadata must all hold.
    pub metadata: &'a [(String, String)],
    pub before: Option<&'a str>,
    pub limit: usize,
}

/// An event found: its place in the stream (the cursor after it) and its record.
#[derive(Debug)]
pub struct FoundEvent {
    pub stream_id: String,
    pub event_id: String,
    pub record: StoredEvent,
}

/// Is `cursor` a stream id (`ms-seq`, each 1 to 19 digits), as this search hands out?
pub fn is_cursor(cursor: &str) -> bool {
    let number = |s: &str| (1..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    cursor
        .split_once('-')
        .is_some_and(|(ms, seq)| number(ms) && number(seq))
}

/// The source id of an event body (`"source": {"id": …}`), if it came through a source.
fn source_of(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        source: Option<Source>,
    }
    #[derive(serde::Deserialize)]
    struct Source {
        id: String,
    }
    serde_json::from_str::<Body>(body).ok()?.source.map(|s| s.id)
}

/// Does the stored `metadata` (JSON text of an object) hold every `(key, value)`?
fn holds(metadata: Option<&str>, wanted: &[(String, String)]) -> bool {
    let Some(map) = metadata.and_then(|m| serde_json::from_str::<HashMap<String, String>>(m).ok()) else {
        return false;
    };
    wanted.iter().all(|(k, v)| map.get(k) == Some(v))
}

impl RedisStore {
    /// A page of the tenant's events matching `q`, newest first, and the cursor of the next
    /// page (`None` at the end). At most `SCAN_BUDGET` stream entries are read: a page may hold
    /// fewer than `limit` events and still have a next one.
    pub async fn find_events(&self, q: &EventSearch<'_>) -> Result<(Vec<FoundEvent>, Option<String>)> {
        // Nothing comes before the stream's first possible id (and Redis refuses `(0-0`).
        if q.before
            .is_some_and(|c| c.split('-').all(|n| n.bytes().all(|b| b == b'0')))
        {
            return Ok((Vec::new(), None));
        }
        let stream = self.keys.events_stream(self.keys.partition_of(q.tenant));
        let mut end = match (q.before, q.to_ms) {
            (Some(cursor), _) => format!("({cursor}"),
            (None, Some(to)) => format!("{}-{}", to.saturating_add(CLOCK_SLACK_MS), u64::MAX),
            (None, None) => "+".to_string(),
        };
        let start = q.from_ms.map_or_else(
            || "-".to_string(),
            |from| format!("{}-0", from.saturating_sub(CLOCK_SLACK_MS)),
        );
        let in_range = |event_id: &str| {
            let at = hookline_actors::model::event_time_ms(event_id).unwrap_or(0);
            q.from_ms.is_none_or(|from| at >= from) && q.to_ms.is_none_or(|to| at <= to)
        };
        let mut found = Vec::new();
        let mut scanned = 0;
        loop {
            let read: Vec<(String, HashMap<String, String>)> = self
                .client()
                .xrevrange(&stream, end.as_str(), start.as_str(), Some(CHUNK as u64))
                .await?;
            let full = read.len() == CHUNK;
            scanned += read.len();
            let last = read.last().map(|(id, _)| id.clone());
            let candidates: Vec<(String, String)> = read
                .into_iter()
                .filter(|(_, f)| f.get("t").map(String::as_str) == Some(q.tenant))
                .filter(|(_, f)| {
                    let event_type = f.get("y").map(String::as_str).unwrap_or_default();
                    q.types
                        .is_none_or(|p| hookline_actors::matching::type_matches(p, event_type))
                })
                .filter_map(|(id, mut f)| Some((id, f.remove("e")?)))
                .filter(|(_, event_id)| in_range(event_id))
                .collect();
            let records = join_all(
                candidates
                    .iter()
                    .map(|(_, event_id)| self.get_event(q.tenant, event_id)),
            )
            .await;
            for ((stream_id, event_id), record) in candidates.into_iter().zip(records) {
                // Gone past retention between the stream and the record: not shown.
                let Some(record) = record? else { continue };
                if q.source_id.is_some() && source_of(&record.body).as_deref() != q.source_id {
                    continue;
                }
                if !q.metadata.is_empty() && !holds(record.metadata.as_deref(), q.metadata) {
                    continue;
                }
                found.push(FoundEvent {
                    stream_id,
                    event_id,
                    record,
                });
                if found.len() == q.limit {
                    let next = found.last().map(|f| f.stream_id.clone());
                    return Ok((found, next));
                }
            }
            match last {
                Some(last) if full && scanned < SCAN_BUDGET => end = format!("({last}"),
                Some(last) if full => return Ok((found, Some(last))),
                _ => return Ok((found, None)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_stream_ids_and_sources_come_from_the_body() {
        assert!(is_cursor("1764000000000-3"));
        for bad in [
            "",
            "1-",
            "-1",
            "a-1",
            "1-2-3",
            "17640000000003",
            "+1-2",
            "12345678901234567890-1",
        ] {
            assert!(!is_cursor(bad), "{bad}");
        }
        let inbound = r#"{"id":"evt_1","type":"github.push","data":{},"source":{"id":"src_1","kind":"github"}}"#;
        assert_eq!(source_of(inbound).as_deref(), Some("src_1"));
        assert_eq!(source_of(r#"{"id":"evt_1","data":{}}"#), None);
        let wanted = [("region".to_string(), "eu".to_string())];
        assert!(holds(Some(r#"{"region":"eu","tier":"1"}"#), &wanted));
        assert!(!holds(Some(r#"{"region":"us"}"#), &wanted));
        assert!(!holds(None, &wanted));
    }
}
