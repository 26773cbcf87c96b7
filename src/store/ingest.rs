//! Ingest: store an event durably and append it for routing (the INGEST script), and read
//! events back.

use super::event_record::{self, Extras, Read};
use super::ingest_commit::{self, Write};
use super::{text, Error, RedisStore, Result};
use crate::event::NewEvent;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::Value;
use std::sync::LazyLock;

/// What ingest answered.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub event_id: String,
    pub duplicate: bool,
    /// The tenant's ingest limit for this second was spent: nothing was stored.
    pub rate_limited: bool,
}

/// A stored event, as `GET …/events/{id}` needs it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub body: String,
    pub endpoint_ids: Vec<String>,
    /// With `validation: warn`: how the payload failed its schema (JSON text of a list of
    /// `catalogue::Problem`), as flagged at ingest.
    pub schema_errors: Option<String>,
    /// The event's metadata (JSON text of an object), if it has any.
    pub metadata: Option<String>,
}

/// KEYS: stream, rate counter, the record of each event, then the dedup key (idempotency or
/// inbound) of each event that has one, in the same order. ARGV: tenant, retention s, oldest
/// stream id to keep, tenant rate limit per s (0: none), then per event: id, type, its record
/// (`event_record::encode`), only-endpoint id ('' for normal routing), dedup window s, '1' if
/// it has a dedup key, trace context ('' for none: else also in the entry's `c`). Returns per
/// event, in
/// order: {event id, 0} when stored, {first event id, 1} for a duplicate, {'', 2} when the
/// tenant's limit for this second is spent (nothing stored). The idempotency check, the limit
/// and the append are one step, so concurrent posts of one key store one event and the limit
/// holds across nodes; the events of one call are appended in their order whatever retries the
/// call needs (a batch keeps its order across a failover's NOSCRIPT or a reconnect). The
/// append also trims stream entries older than retention (`MINID ~`, amortised).
pub static INGEST: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local limit = tonumber(ARGV[4])
local function one(record, dedup, id, kind, stored, only, window, trace)
  if dedup then
    local existing = redis.call('GET', dedup)
    if existing then return existing, 1 end
  end
  if limit > 0 then
    local used = redis.call('INCR', KEYS[2])
    if used == 1 then redis.call('EXPIRE', KEYS[2], 2) end
    if used > limit then return '', 2 end
  end
  redis.call('SET', record, stored, 'EX', ARGV[2])
  if only == '' and trace == '' then
    redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[3], '*', 'e', id, 't', ARGV[1], 'y', kind)
  else
    local entry = {'e', id, 't', ARGV[1], 'y', kind}
    if only ~= '' then entry[#entry + 1] = 'o'; entry[#entry + 1] = only end
    if trace ~= '' then entry[#entry + 1] = 'c'; entry[#entry + 1] = trace end
    redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[3], '*', unpack(entry))
  end
  if dedup then redis.call('SET', dedup, id, 'EX', window) end
  return id, 0
end
local n = (#ARGV - 4) / 7
local keyed = 2 + n
local out = {}
for i = 0, n - 1 do
  local a = 5 + 7 * i
  local dedup = nil
  if ARGV[a + 5] == '1' then
    keyed = keyed + 1
    dedup = KEYS[keyed]
  end
  out[2 * i + 1], out[2 * i + 2] = one(KEYS[3 + i], dedup, ARGV[a], ARGV[a + 1], ARGV[a + 2],
    ARGV[a + 3], ARGV[a + 4], ARGV[a + 6])
end
return out
"#,
    )
});

/// The most events one INGEST call stores (a batch of 1,000 is ten calls, one after another).
const INGEST_CHUNK: usize = 100;

impl RedisStore {
    /// KEYS and ARGV of one INGEST script call storing `events` (one tenant's) in order.
    fn ingest_call(&self, tenant: &str, events: &[NewEvent]) -> (Vec<String>, Vec<String>) {
        let now = hookline_actors::now_ms();
        let oldest_kept = now.saturating_sub(self.retention_s * 1000);
        let mut keys = Vec::with_capacity(2 + events.len());
        keys.extend([
            self.keys.events_stream(self.keys.partition_of(tenant)),
            self.keys.tenant_rate(tenant, now / 1000),
        ]);
        let mut args = Vec::with_capacity(4 + 7 * events.len());
        args.extend([
            tenant.to_string(),
            self.retention_s.to_string(),
            format!("{oldest_kept}-0"),
            self.tenant_rate_limit_per_s.to_string(),
        ]);
        let mut dedups = Vec::new();
        for event in events {
            // An inbound event is deduplicated on its provider's id within its source, for the
            // source's window; a producer's event on its idempotency key. Neither outlives
            // retention.
            let (dedup, window_s) = match (&event.provider_dedup, &event.idempotency_key) {
                (Some(d), _) => (
                    Some(self.keys.inbound_dedup(tenant, &d.source_id, &d.provider_id)),
                    d.window_s.min(self.retention_s).max(1),
                ),
                (None, Some(key)) => (Some(self.keys.idempotency(tenant, key)), self.idempotency_window_s),
                (None, None) => (None, self.idempotency_window_s),
            };
            let keyed = if dedup.is_some() { "1" } else { "0" };
            keys.push(self.keys.event(tenant, &event.event_id));
            dedups.extend(dedup);
            args.extend([
                event.event_id.clone(),
                event.event_type.clone(),
                Self::event_record(event),
                event.only_endpoint.clone().unwrap_or_default(),
                window_s.to_string(),
                keyed.to_string(),
                event.trace.clone().unwrap_or_default(),
            ]);
        }
        keys.extend(dedups);
        (keys, args)
    }

    /// The string an event's record holds (`event_record`).
    fn event_record(event: &NewEvent) -> String {
        let extras = Extras {
            se: event.schema_errors.clone(),
            md: event.metadata.clone(),
            tc: event.trace.clone(),
        };
        event_record::encode(&event.body, &extras)
    }

    /// Is storing this event a write and nothing else (no dedup key, no tenant limit to check)?
    fn nothing_to_check(&self, event: &NewEvent) -> bool {
        event.provider_dedup.is_none() && event.idempotency_key.is_none() && self.tenant_rate_limit_per_s == 0
    }

    /// Store a lone event with nothing to check without the script: its record (`SET … EX`) and
    /// its stream entry, pipelined on one connection in that order, two commands where INGEST
    /// takes four, with the other lone events waiting at the moment (`ingest_commit`: one round
    /// trip for all). Nothing is read between them, so nothing needs a script's atomicity: the
    /// call succeeds only if both did (a record whose entry failed expires unread), and an entry
    /// whose record was refused is taken back (a router that read it in between routes an event
    /// without a record: its deliveries are dead-lettered as expired, and the producer got an
    /// error, so nothing it was promised is lost). With `redis.wait_replicas` (`replicated`:
    /// the connection the `WAIT` will follow on) it is written alone on that connection.
    async fn ingest_plain(&self, replicated: Option<&Client>, event: &NewEvent) -> Result<Ingested> {
        let mut entry = vec![
            ("e", event.event_id.clone()),
            ("t", event.tenant.clone()),
            ("y", event.event_type.clone()),
        ];
        entry.extend(event.only_endpoint.clone().map(|o| ("o", o)));
        entry.extend(event.trace.clone().map(|c| ("c", c)));
        let partition = self.keys.partition_of(&event.tenant);
        let mut write = Write {
            record_key: self.keys.event(&event.tenant, &event.event_id),
            record: Self::event_record(event),
            stream: self.keys.events_stream(partition),
            entry,
        };
        match replicated {
            Some(client) => ingest_commit::write_all(client, self.retention_s, std::slice::from_mut(&mut write))
                .await
                .pop()
                .unwrap_or_else(|| Err(Error::corrupt("ingest reply")))?,
            None => self.committer.commit(partition, write).await?,
        }
        Ok(Ingested {
            event_id: event.event_id.clone(),
            duplicate: false,
            rate_limited: false,
        })
    }

    /// INGEST's reply: one `Ingested` per event of the call, in order.
    fn ingest_reply(reply: Value, events: usize) -> Result<Vec<Ingested>> {
        let items = reply.into_array();
        if items.len() != 2 * events {
            return Err(Error::corrupt("ingest reply"));
        }
        items
            .chunks(2)
            .map(|pair| {
                let outcome = pair[1].as_u64();
                Ok(Ingested {
                    event_id: text(&pair[0]).ok_or_else(|| Error::corrupt("ingest reply"))?,
                    duplicate: outcome == Some(1),
                    rate_limited: outcome == Some(2),
                })
            })
            .collect()
    }

    /// Store an event durably and append it for routing; with an idempotency key, a key seen
    /// within the window returns the first event's id instead.
    pub async fn ingest(&self, event: &NewEvent) -> Result<Ingested> {
        let mut stored = self.ingest_batch(std::slice::from_ref(event)).await;
        stored.pop().unwrap_or_else(|| Err(Error::corrupt("ingest reply")))
    }

    /// Store one tenant's events (all of `events` must be the first one's tenant's), in order: the stream holds them in this order (so ordered
    /// endpoints deliver them so), whatever retries the calls need. A repeated idempotency key
    /// is a duplicate of its first use. One INGEST call per `INGEST_CHUNK` events, one after
    /// the other on one connection (a chunk bounds how long one script holds Redis); with
    /// `redis.wait_replicas`, one `WAIT` after the last. One result per event, in order; after
    /// a failed call nothing later is stored.
    pub async fn ingest_batch(&self, events: &[NewEvent]) -> Vec<Result<Ingested>> {
        let Some(first) = events.first() else { return Vec::new() };
        let tenant = first.tenant.as_str();
        debug_assert!(events.iter().all(|e| e.tenant == tenant), "one tenant per batch");
        let replicated = self.replicated();
        let client = replicated.as_ref().map_or_else(|| self.client(), |r| r.client);
        let mut results = Vec::with_capacity(events.len());
        let mut failed = None;
        for chunk in events.chunks(INGEST_CHUNK) {
            let stored = match chunk {
                [event] if self.nothing_to_check(event) => {
                    let replicated = replicated.as_ref().map(|r| r.client);
                    self.ingest_plain(replicated, event).await.map(|i| vec![i])
                }
                _ => {
                    let (keys, args) = self.ingest_call(tenant, chunk);
                    let reply = self.eval_on(client, &INGEST, keys, args).await;
                    reply.and_then(|reply| Self::ingest_reply(reply, chunk.len()))
                }
            };
            match stored {
                Ok(stored) => results.extend(stored.into_iter().map(Ok)),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let (Some(on), false) = (&replicated, results.is_empty()) {
            // If the replicas do not confirm, nothing of the call is promised.
            let stream = self.keys.events_stream(self.keys.partition_of(tenant));
            let slot = fred::util::redis_keyslot(stream.as_bytes());
            if let Err(e) = self.confirm_replicated(on, [slot]).await {
                results.iter_mut().for_each(|r| *r = Err(e.clone()));
            }
        }
        if self.bodies.enabled() {
            let now = hookline_actors::now_ms();
            for (event, result) in events.iter().zip(&results) {
                if matches!(result, Ok(i) if !i.duplicate && !i.rate_limited) {
                    self.bodies
                        .insert(self.keys.event(tenant, &event.event_id), &event.body, now);
                }
            }
        }
        if let Some(e) = failed {
            results.resize(events.len(), Err(e));
        }
        results
    }

    /// The stored bodies of these events (`(tenant, event id)`) as content filters read them
    /// (with the event's `metadata`, `event::with_metadata`), in order, in one pipelined round
    /// trip; `None` for one that is gone.
    pub async fn event_bodies(&self, events: &[(String, String)]) -> Result<Vec<Option<String>>> {
        let keys: Vec<String> = events.iter().map(|(tenant, id)| self.keys.event(tenant, id)).collect();
        Ok(self
            .event_records(&keys)
            .await?
            .into_iter()
            .map(|record| record.map(|r| crate::event::with_metadata(&r.body, r.extras.md.as_deref()).into_owned()))
            .collect())
    }

    pub async fn get_event(&self, tenant: &str, event_id: &str) -> Result<Option<StoredEvent>> {
        // Where it went is in its partition's routed lists for the minute of its id (ACK_ROUTED);
        // an event stored before those lists has it in its own `eps`.
        let record = self.keys.event(tenant, event_id);
        let pipeline = self.client().pipeline();
        let _: () = pipeline.get(&record).await?;
        let routed = self
            .keys
            .routed(self.keys.partition_of(tenant), super::stream::routed_minute(event_id));
        let _: () = pipeline.hget(routed, event_id).await?;
        let mut replies = pipeline.try_all::<Value>().await.into_iter();
        let stored = replies.next().unwrap_or(Ok(Value::Null));
        let routed = text(&replies.next().unwrap_or(Ok(Value::Null))?);
        let record = match event_record::read(stored)? {
            Read::Found(record) => record,
            Read::Gone => return Ok(None),
            Read::Legacy => match self.legacy_records(&[record]).await?.pop().flatten() {
                Some(record) => record,
                None => return Ok(None),
            },
        };
        let endpoint_ids = record
            .eps
            .filter(|eps| !eps.is_empty())
            .or(routed)
            .map(|s| s.split(',').filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        Ok(Some(StoredEvent {
            body: record.body,
            endpoint_ids,
            schema_errors: record.extras.se,
            metadata: record.extras.md,
        }))
    }

    /// The id of the event stored under this idempotency key within the window, if any.
    pub async fn idempotent_event(&self, tenant: &str, key: &str) -> Result<Option<String>> {
        Ok(self.client().get(self.keys.idempotency(tenant, key)).await?)
    }

    /// Is the event still stored (not past retention)?
    pub async fn event_exists(&self, tenant: &str, event_id: &str) -> Result<bool> {
        let n: u64 = self.client().exists(self.keys.event(tenant, event_id)).await?;
        Ok(n == 1)
    }

    /// Ingest an event made by the node itself (e.g. `hookline.endpoint.disabled`), once per
    /// idempotency key if it has one.
    pub async fn emit_event(
        &self,
        tenant: &str,
        event_type: &str,
        data: serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> Result<String> {
        let event = NewEvent::new(tenant, event_type, &data.to_string(), hookline_actors::now_ms())
            .with_idempotency_key(idempotency_key.map(str::to_string));
        self.ingest(&event).await.map(|i| i.event_id)
    }
}
