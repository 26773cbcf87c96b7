//! The events streams and routing: reading a partition through the consumer group, claiming a
//! dead node's entries, writing deliveries into the endpoints' queues (ROUTE) and acking
//! (ACK_ROUTED); the routing mark; the deployment's layout.

use super::keys::ROUTER_GROUP;
use super::{join_all, scripts, text, Error, RedisStore, Result};
use fred::prelude::*;
use fred::types::Value;
use hookline_actors::{RoutedEvent, StreamEvent};

/// How much longer than retention a minute's routed lists are kept (its events were ingested
/// during that minute, and routing may come a little after).
const ROUTED_KEPT_EXTRA_S: u64 = 120;

/// The minute (since the epoch) of an event's id: where its routed endpoint list is kept.
pub(super) fn routed_minute(event_id: &str) -> u64 {
    crate::ids::event_time_ms(event_id).unwrap_or(0) / 60_000
}

impl RedisStore {
    pub async fn ensure_group(&self, partition: u32) -> Result<()> {
        let created: std::result::Result<Value, _> = self
            .client()
            .xgroup_create(self.keys.events_stream(partition), ROUTER_GROUP, "0", true)
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.details().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The stream id of the first event of `partition` not yet routed (see
    /// `scripts::FIRST_UNROUTED`); `None` when all are.
    pub(super) async fn first_unrouted(&self, partition: u32) -> Result<Option<String>> {
        Ok(self.unrouted(partition).await?.0)
    }

    /// The routing mark of `partition`: every event before this stream id was in its
    /// endpoints' queues when it was read. The first event not yet routed, or when all are, the
    /// lowest id an event appended later can take (an event appended after the mark was read,
    /// and routed by a fast node before an earlier one, is not before the mark).
    pub async fn routing_mark(&self, partition: u32) -> Result<String> {
        let (first, next) = self.unrouted(partition).await?;
        first.or(next).ok_or_else(|| Error::corrupt("first_unrouted reply"))
    }

    async fn unrouted(&self, partition: u32) -> Result<(Option<String>, Option<String>)> {
        let stream = self.keys.events_stream(partition);
        let reply = self
            .eval(&scripts::FIRST_UNROUTED, vec![stream], vec![ROUTER_GROUP.to_string()])
            .await?;
        let id = |v: &Value| text(v).filter(|id| !id.is_empty());
        match reply.into_array().as_slice() {
            [first, next] => Ok((id(first), id(next))),
            _ => Err(Error::corrupt("first_unrouted reply")),
        }
    }

    pub async fn read_events(
        &self,
        partition: u32,
        consumer: &str,
        pending: bool,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<StreamEvent>> {
        let id = if pending { "0" } else { ">" };
        let block = (!pending && block_ms > 0).then_some(block_ms);
        let stream = self.keys.events_stream(partition);
        let reader = self.readers[partition as usize % self.readers.len()].clone();
        let read = |client: Client| {
            let stream = stream.clone();
            let consumer = consumer.to_string();
            async move {
                client
                    .xreadgroup::<Value, _, _, _, _>(
                        ROUTER_GROUP,
                        consumer,
                        Some(count as u64),
                        block,
                        false,
                        stream,
                        id,
                    )
                    .await
            }
        };
        match read(reader).await {
            Ok(reply) => Ok(xread_entries(partition, reply)),
            Err(e) if is_nogroup(&e) => {
                // Redis lost the group (restarted empty, or a fresh deployment): make it again.
                self.ensure_group(partition).await?;
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn claim_stale_events(
        &self,
        partition: u32,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<StreamEvent>> {
        let reply: std::result::Result<Value, _> = self
            .client()
            .xautoclaim(
                self.keys.events_stream(partition),
                ROUTER_GROUP,
                consumer,
                min_idle_ms,
                "0-0",
                Some(count as u64),
                false,
            )
            .await;
        match reply {
            Ok(reply) => Ok(reply
                .into_array()
                .into_iter()
                .nth(1)
                .map(|e| parse_entries(partition, e.into_array()))
                .unwrap_or_default()),
            Err(e) if is_nogroup(&e) => self.ensure_group(partition).await.map(|_| Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn route(&self, events: &[RoutedEvent]) -> Result<()> {
        use std::collections::BTreeMap;
        let started = std::time::SystemTime::now();
        let now = hookline_actors::now_ms();
        // One script call per shard for the whole batch, its endpoints' events grouped.
        type PerEndpoint<'a> = BTreeMap<&'a str, Vec<&'a StreamEvent>>;
        let mut per_shard: BTreeMap<u32, PerEndpoint> = BTreeMap::new();
        for routed in events {
            for (endpoint_id, shard) in &routed.endpoints {
                per_shard
                    .entry(*shard)
                    .or_default()
                    .entry(endpoint_id.as_str())
                    .or_default()
                    .push(&routed.event);
            }
        }
        // With `redis.wait_replicas`, every ROUTE goes on one connection, and the replicas
        // confirm them (one WAIT per master) before anything is acknowledged: an event is
        // acked only once its deliveries would survive a failover.
        // (Without it, each call takes the pool's next connection, as every command does.)
        let replicated = self.replicated();
        let waiting = replicated.as_ref().map(|r| r.client);
        let routed_slots: Vec<u16> = match waiting {
            Some(_) => per_shard
                .keys()
                .map(|shard| fred::util::redis_keyslot(self.keys.due(*shard).as_bytes()))
                .collect(),
            None => Vec::new(),
        };
        let calls = per_shard.into_iter().map(|(shard, endpoints)| {
            let mut keys = Vec::with_capacity(1 + 2 * endpoints.len());
            keys.push(self.keys.due(shard));
            let mut args = vec![self.retention_s.to_string(), now.to_string()];
            for (endpoint_id, evts) in endpoints {
                keys.push(self.keys.queue(shard, endpoint_id));
                keys.push(self.keys.delivery_log(shard, endpoint_id));
                args.push(endpoint_id.to_string());
                args.push(evts.len().to_string());
                for evt in evts {
                    args.push(evt.event_id.clone());
                    args.push(evt.order_score().to_string());
                }
            }
            self.eval_on(waiting.unwrap_or_else(|| self.client()), &scripts::ROUTE, keys, args)
        });
        for result in join_all(calls).await {
            result?;
        }
        if let Some(on) = &replicated {
            self.confirm_replicated(on, routed_slots).await?;
        }
        // Remember which endpoints each event went to (for GET …/events/{id}) and ack: one
        // ACK_ROUTED call per partition (all its keys share the partition's slot). The lists go
        // to the partition's hash for the minute of each event's id (`Keys::routed`): one HSET
        // per minute of a batch, not one per event.
        type Acks = (Vec<String>, BTreeMap<u64, Vec<String>>);
        let mut per_partition: BTreeMap<u32, Acks> = BTreeMap::new();
        for routed in events {
            let (ids, minutes) = per_partition.entry(routed.event.partition).or_default();
            ids.push(routed.event.stream_id.clone());
            if !routed.endpoints.is_empty() {
                let minute = routed_minute(&routed.event.event_id);
                let list: Vec<&str> = routed.endpoints.iter().map(|(id, _)| id.as_str()).collect();
                let pairs = minutes.entry(minute).or_default();
                pairs.push(routed.event.event_id.clone());
                pairs.push(list.join(","));
            }
        }
        for (partition, (ids, minutes)) in per_partition {
            let mut keys = vec![self.keys.events_stream(partition)];
            let mut args = vec![ROUTER_GROUP.to_string(), ids.len().to_string()];
            args.extend(ids);
            args.push((self.retention_s + ROUTED_KEPT_EXTRA_S).to_string());
            for (minute, pairs) in minutes {
                keys.push(self.keys.routed(partition, minute));
                args.push((pairs.len() / 2).to_string());
                args.extend(pairs);
            }
            self.eval(&scripts::ACK_ROUTED, keys, args).await?;
        }
        metrics::counter!(hookline_actors::names::EVENTS_ROUTED).increment(events.len() as u64);
        // A traced event's route span, under its ingest span, with the id ingest chose for it
        // (its attempts' spans are already its children).
        if let Some(traces) = crate::traces::get() {
            for routed in events {
                let event = &routed.event;
                if let Some(stored) = event.trace.as_deref().and_then(crate::traces::Stored::decode) {
                    traces.routed(&stored, started, &event.tenant, &event.event_id, routed.endpoints.len());
                }
            }
        }
        Ok(())
    }

    /// Compare this node's `shards.count` and `router.partitions` with the deployment's, which
    /// the first node recorded. `Some(message)` on a mismatch: keys would map to other shards
    /// and partitions than the other nodes use, and events would be lost.
    pub async fn check_layout(&self, shards: u32, partitions: u32) -> Result<Option<String>> {
        let reply = self
            .eval(
                &scripts::CHECK_LAYOUT,
                vec![self.keys.layout()],
                vec![shards.to_string(), partitions.to_string()],
            )
            .await?;
        let stored: Vec<Option<u32>> = reply
            .into_array()
            .iter()
            .map(|v| text(v).and_then(|t| t.parse().ok()))
            .collect();
        if let Some(wrong) = self.check_keys().await? {
            return Ok(Some(wrong));
        }
        let mut wrong = Vec::new();
        for ((key, ours), theirs) in [("shards.count", shards), ("router.partitions", partitions)]
            .into_iter()
            .zip(stored)
        {
            if let Some(theirs) = theirs.filter(|t| *t != ours) {
                wrong.push(format!("{key} is {ours} here but {theirs} for this deployment"));
            }
        }
        Ok((!wrong.is_empty()).then(|| {
            format!(
                "{} (fixed for the life of a deployment: every node must use the same value)",
                wrong.join("; ")
            )
        }))
    }
}

impl RedisStore {
    /// Can this node's `security.encryption_keys` open the deployment's secrets? The first node
    /// with a key leaves a key check (a sealed constant); every node after must open it. A
    /// node without keys in a deployment whose secrets are sealed is refused too.
    pub async fn check_keys(&self) -> Result<Option<String>> {
        use super::seal::KEY_CHECK;
        let client = self.client();
        let stored: Option<String> = client.get(self.keys.key_check()).await?;
        let stored = match stored {
            Some(stored) => stored,
            None if self.sealer.encrypts() => {
                let _: Value = client
                    .set(
                        self.keys.key_check(),
                        self.sealer.seal(KEY_CHECK),
                        None,
                        Some(fred::types::SetOptions::NX),
                        false,
                    )
                    .await?;
                // Another node may have written its own first: check what is there now.
                client
                    .get::<Option<String>, _>(self.keys.key_check())
                    .await?
                    .unwrap_or_default()
            }
            None => return Ok(None),
        };
        Ok(match self.sealer.open(&stored) {
            Ok(clear) if clear == KEY_CHECK => None,
            Ok(_) => Some("security.encryption_keys: the deployment's key check holds something else".into()),
            Err(e) => Some(format!(
                "security.encryption_keys cannot open this deployment's secrets ({e}); give the node the \
                 deployment's keys"
            )),
        })
    }
}

/// Parse XREADGROUP / XAUTOCLAIM entries: `[[id, [k, v, …]], …]`. Entries whose data was
/// trimmed come back without fields; they are returned with empty fields so they get acked.
fn parse_entries(partition: u32, entries: Vec<Value>) -> Vec<StreamEvent> {
    entries
        .into_iter()
        .filter_map(|entry| {
            let mut parts = entry.into_array().into_iter();
            let stream_id = text(&parts.next()?)?;
            let fields = parts.next().map(|f| f.into_array()).unwrap_or_default();
            let mut event = StreamEvent {
                partition,
                stream_id,
                ..Default::default()
            };
            for pair in fields.chunks(2) {
                if let [k, v] = pair {
                    let v = text(v).unwrap_or_default();
                    match text(k).as_deref() {
                        Some("e") => event.event_id = v,
                        Some("t") => event.tenant = v,
                        Some("y") => event.event_type = v,
                        Some("o") => event.only_endpoint = Some(v),
                        Some("c") => event.trace = Some(v),
                        _ => {}
                    }
                }
            }
            Some(event)
        })
        .collect()
}

/// XREADGROUP replies as `[[stream, entries]]` (RESP2) or `{stream: entries}` (RESP3).
fn xread_entries(partition: u32, reply: Value) -> Vec<StreamEvent> {
    match reply {
        Value::Null => Vec::new(),
        Value::Map(map) => map
            .inner()
            .into_values()
            .flat_map(|entries| parse_entries(partition, entries.into_array()))
            .collect(),
        other => other
            .into_array()
            .into_iter()
            .flat_map(|stream| {
                let mut parts = stream.into_array().into_iter();
                let _name = parts.next();
                parts
                    .next()
                    .map(|e| parse_entries(partition, e.into_array()))
                    .unwrap_or_default()
            })
            .collect(),
    }
}

fn is_nogroup(e: &fred::error::Error) -> bool {
    e.details().contains("NOGROUP")
}
