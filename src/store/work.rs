//! An endpoint actor's work: pulling its window, recording attempts (RECORD_ATTEMPT, group
//! commit), settling when idle (SETTLE_IDLE), its health and rate-limit bucket. Every write is
//! fenced by the actor's lease token (RECORD_ATTEMPT, FENCED_SET, SETTLE_IDLE).

use super::event_record::{self, EventRecord, Read};
use super::{join_all, scripts, text, Error, RedisStore, Result};
use fred::prelude::*;
use fred::types::Value;
use hookline_actors::limiter::BucketRecord;
use hookline_actors::model::{FinishedAttempt, HealthRecord, Next, QueuedDelivery};
use hookline_actors::store::{PulledWindow, Recorded};
use hookline_actors::EndpointConfig;
use std::sync::Arc;

/// Most attempt records one RECORD_ATTEMPT call writes (a script blocks Redis while it runs).
const RECORD_BATCH: usize = 64;

/// What a pull reads of a delivery's record: its attempt count, where its cycle starts, and (for
/// an ordered head) its retry's due time.
const RECORD_FIELDS: [&str; 3] = ["attempts", "cycle_from", "next_ms"];

impl RedisStore {
    pub async fn pull_window(
        &self,
        endpoint: &EndpointConfig,
        shard: u32,
        now_ms: u64,
        limit: usize,
        exclude: &[String],
    ) -> Result<PulledWindow> {
        let client = self.client();
        let queue = self.keys.queue(shard, &endpoint.id);
        // An ordered endpoint works its head only, due or not: a head waiting for its retry
        // holds back the rest (its due time comes back as `not_before_ms`). The routing mark
        // is read first: every event before it was in the queue before the head was read
        // (what the mark means for the head is the actors' policy: `endpoint::ordered`).
        let mut window = PulledWindow::default();
        let scored: Vec<(String, f64)> = if endpoint.ordered {
            window.routing_mark = Some(self.routing_mark(self.keys.partition_of(&endpoint.tenant)).await?);
            let head: Vec<(String, f64)> = client.zrange(&queue, 0, 0, None, false, None, true).await?;
            window.head_order = head.first().map(|(_, score)| *score);
            head
        } else {
            // Read on past the due ones (one entry more than a full window), so that when all
            // due work fits, the window also says when the next delivery comes due.
            let mut read: Vec<(String, f64)> = client
                .zrangebyscore(
                    &queue,
                    "-inf".to_string(),
                    "+inf".to_string(),
                    true,
                    Some((0, (limit + exclude.len() + 1) as i64)),
                )
                .await?;
            read.retain(|(id, _)| !exclude.contains(id));
            let due = read.iter().take_while(|(_, score)| *score <= now_ms as f64).count();
            if due < limit {
                window.next_due_ms = read.get(due).map(|(_, score)| score.ceil() as u64);
            }
            read.truncate(due.min(limit));
            read
        };
        if scored.is_empty() {
            return Ok(window);
        }
        // A transform's program sees the event's metadata, and a traced event's attempts join
        // its trace: those are kept only then (the plain path keeps the body alone).
        let with_metadata = endpoint.transform.is_some();
        let with_trace = crate::traces::get().is_some();
        let records: Vec<String> = scored
            .iter()
            .map(|(id, _)| self.keys.delivery(shard, &endpoint.id, id))
            .collect();
        // Routing writes no record (see ROUTE), so a window of new deliveries has none, and
        // their queue scores say so (`model::has_no_record`): such a window reads nothing of
        // them. Otherwise one EXISTS over the window says whether any has one, and only a window
        // with some (retries, replays, an ordered head: read always) reads them, one HMGET
        // each, in a second round trip.
        let pipeline = client.pipeline();
        let all_new = !endpoint.ordered
            && scored
                .iter()
                .all(|(_, score)| hookline_actors::model::has_no_record(endpoint, *score));
        if endpoint.ordered {
            let _: () = pipeline.hmget(&records[0], RECORD_FIELDS.to_vec()).await?;
        } else if !all_new {
            let _: () = pipeline.exists(records.clone()).await?;
        }
        // The plain path takes the body from this node's recent ones when it stored the event
        // (`bodies.rs`), else reads the event's record (`event_record.rs`).
        let plain = !with_metadata && !with_trace && self.bodies.enabled();
        let stored_since = hookline_actors::now_ms();
        let mut events: Vec<(String, Option<Arc<str>>, Option<EventRecord>)> = Vec::with_capacity(scored.len());
        for (id, _) in &scored {
            let event = self.keys.event(&endpoint.tenant, id);
            let cached = plain.then(|| self.bodies.get(&event, stored_since)).flatten();
            if cached.is_none() {
                let _: () = pipeline.get(&event).await?;
            }
            events.push((event, cached, None));
        }
        let sent = !all_new || events.iter().any(|(_, cached, _)| cached.is_none());
        let replies = if sent {
            pipeline.try_all::<Value>().await
        } else {
            Vec::new()
        };
        let mut replies = replies.into_iter();
        let first = if all_new {
            Value::Integer(0)
        } else {
            replies.next().unwrap_or(Ok(Value::Null))?
        };
        let mut legacy = Vec::new();
        for (i, (_, cached, record)) in events.iter_mut().enumerate() {
            if cached.is_some() {
                continue;
            }
            match event_record::read(replies.next().unwrap_or(Ok(Value::Null)))? {
                Read::Found(found) => *record = Some(found),
                Read::Gone => {}
                Read::Legacy => legacy.push(i),
            }
        }
        if !legacy.is_empty() {
            let keys: Vec<String> = legacy.iter().map(|&i| events[i].0.clone()).collect();
            for (i, record) in legacy.into_iter().zip(self.legacy_records(&keys).await?) {
                events[i].2 = record;
            }
        }
        let counts: Vec<Vec<Option<String>>> = if endpoint.ordered {
            vec![first.into_array().iter().map(text).collect()]
        } else if first.as_u64() == Some(0) {
            vec![Vec::new(); scored.len()]
        } else {
            let pipeline = client.pipeline();
            for record in &records {
                let _: () = pipeline.hmget(record, RECORD_FIELDS.to_vec()).await?;
            }
            let read: Vec<Value> = pipeline.all().await?;
            read.into_iter()
                .map(|r| r.into_array().iter().map(text).collect())
                .collect()
        };
        window.deliveries = scored
            .into_iter()
            .zip(counts)
            .zip(events)
            .map(|(((event_id, score), counts), (_, cached, record))| {
                let count = |i: usize| {
                    counts
                        .get(i)
                        .cloned()
                        .flatten()
                        .and_then(|a| a.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                let (body, metadata, trace) = match (cached, record) {
                    (Some(body), _) => (Some(body), None, None),
                    (None, Some(r)) => (
                        Some(Arc::<str>::from(r.body)),
                        r.extras.md.filter(|_| with_metadata).map(Arc::from),
                        r.extras.tc.filter(|_| with_trace).map(Arc::from),
                    ),
                    (None, None) => (None, None, None),
                };
                QueuedDelivery {
                    event_id,
                    attempts: count(0) as u32,
                    cycle_base: count(1) as u32,
                    body,
                    metadata,
                    not_before_ms: if endpoint.ordered { count(2) } else { 0 },
                    trace,
                    new_record: counts.first().cloned().flatten().is_none().then_some(score),
                }
            })
            .collect();
        Ok(window)
    }

    /// One RECORD_ATTEMPT call per `RECORD_BATCH` records (the fence is read once per call).
    pub async fn record_attempts(
        &self,
        owner: &str,
        endpoint: &EndpointConfig,
        shard: u32,
        finished: &[FinishedAttempt],
    ) -> Vec<Result<Recorded>> {
        // With `redis.wait_replicas`, the calls share one connection and the replicas confirm
        // them before any counts as recorded (without it, each takes the pool's next one).
        let replicated = self.replicated();
        let waiting = replicated.as_ref().map(|r| r.client);
        let calls = finished.chunks(RECORD_BATCH).map(|chunk| async move {
            let written = async {
                let (keys, args) = self.record_call(owner, endpoint, shard, chunk)?;
                let client = waiting.unwrap_or_else(|| self.client());
                let reply = self.eval_on(client, &scripts::RECORD_ATTEMPT, keys, args).await?;
                if reply.as_i64() == Some(-1) {
                    return Err(Error::Fenced(shard));
                }
                let codes = reply.into_array();
                if codes.len() != chunk.len() {
                    return Err(Error::corrupt("record_attempt reply"));
                }
                Ok(codes
                    .iter()
                    .map(|code| match code.as_i64() {
                        Some(2) => Recorded::Requeued,
                        Some(0) => Recorded::KeptDead,
                        _ => Recorded::AsDecided,
                    })
                    .collect::<Vec<_>>())
            };
            // A call is one script: its records are written, or refused, together.
            match written.await {
                Ok(each) => each.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e); chunk.len()],
            }
        });
        let mut results: Vec<Result<Recorded>> = join_all(calls).await.into_iter().flatten().collect();
        if let (Some(on), true) = (&replicated, results.iter().any(|r| r.is_ok())) {
            let slot = fred::util::redis_keyslot(self.keys.queue(shard, &endpoint.id).as_bytes());
            if let Err(e) = self.confirm_replicated(on, [slot]).await {
                for result in results.iter_mut().filter(|r| r.is_ok()) {
                    *result = Err(e.clone());
                }
            }
        }
        results
    }

    /// KEYS and ARGV of one RECORD_ATTEMPT call for these records of one endpoint.
    fn record_call(
        &self,
        owner: &str,
        endpoint: &EndpointConfig,
        shard: u32,
        finished: &[FinishedAttempt],
    ) -> Result<(Vec<String>, Vec<String>)> {
        let mut keys = Vec::with_capacity(3 + finished.len());
        keys.extend([
            self.keys.queue(shard, &endpoint.id),
            self.keys.dead_letters(shard, &endpoint.id),
            self.keys.lease(shard),
        ]);
        let mut args = Vec::with_capacity(3 + 8 * finished.len());
        args.extend([
            owner.to_string(),
            self.retention_s.to_string(),
            (endpoint.ordered as u8).to_string(),
        ]);
        for f in finished {
            let json = serde_json::to_string(&f.record)?;
            let (status, next_ms, reason) = match &f.next {
                Next::Delivered => ("delivered", 0, String::new()),
                Next::RetryAt(at) => ("failed", *at, String::new()),
                Next::Dead(reason) => ("dead", 0, reason.to_string()),
            };
            keys.push(self.keys.delivery(shard, &endpoint.id, &f.event_id));
            args.extend([
                f.event_id.clone(),
                status.to_string(),
                f.number.to_string(),
                json,
                f.record.at_ms.to_string(),
                next_ms.to_string(),
                reason,
                f.new_record.map(|score| score.to_string()).unwrap_or_default(),
            ]);
        }
        // The unrolled stats buckets these attempts fall in, their increments folded (`stats`).
        let increments = super::stats::increments(finished);
        for (minute, fields) in &increments {
            keys.push(self.keys.stats_unrolled(shard, &endpoint.id, *minute));
            args.push(minute.to_string());
            args.push(fields.len().to_string());
            for (field, n) in fields {
                args.extend([field.to_string(), n.to_string()]);
            }
        }
        keys.push(self.keys.stats_dirty(shard));
        args.extend([
            super::stats::UNROLLED_KEPT_S.to_string(),
            endpoint.id.clone(),
            increments.len().to_string(),
        ]);
        Ok((keys, args))
    }

    pub async fn settle_idle(
        &self,
        owner: &str,
        endpoint_id: &str,
        shard: u32,
        paused: bool,
        not_before_ms: u64,
        ordered_head: Option<&str>,
    ) -> Result<Option<u64>> {
        let mut keys = vec![
            self.keys.queue(shard, endpoint_id),
            self.keys.due(shard),
            self.keys.lease(shard),
        ];
        let mut args = vec![
            endpoint_id.to_string(),
            (paused as u8).to_string(),
            not_before_ms.to_string(),
            owner.to_string(),
        ];
        if let Some(head) = ordered_head {
            keys.push(self.keys.delivery(shard, endpoint_id, head));
            args.push(head.to_string());
        }
        let reply = self.eval(&scripts::SETTLE_IDLE, keys, args).await?;
        if reply.as_i64() == Some(-1) {
            return Err(Error::Fenced(shard));
        }
        // Rounded up: the first ms at which the delivery (scored `ms + (seq + 1)/4096`) is due.
        Ok(text(&reply)
            .and_then(|s| s.parse::<f64>().ok())
            .map(|f| f.ceil() as u64)
            .or(reply.as_u64()))
    }

    pub async fn load_health(&self, endpoint_id: &str, shard: u32) -> Result<HealthRecord> {
        let json: Option<String> = self.client().get(self.keys.health(shard, endpoint_id)).await?;
        Ok(health_from(json))
    }

    /// The endpoint's health and its rate limiter's saved bucket, in one MGET (both keys are
    /// in the shard's slot).
    pub async fn load_saved(&self, endpoint_id: &str, shard: u32) -> Result<(HealthRecord, Option<BucketRecord>)> {
        let keys = vec![
            self.keys.health(shard, endpoint_id),
            self.keys.bucket(shard, endpoint_id),
        ];
        let [health, bucket]: [Option<String>; 2] = self.client().mget(keys).await?;
        // One this version cannot read starts a full bucket, as after expiry.
        Ok((health_from(health), bucket.and_then(|j| serde_json::from_str(&j).ok())))
    }

    pub async fn save_health(
        &self,
        owner: Option<&str>,
        endpoint_id: &str,
        shard: u32,
        health: &HealthRecord,
    ) -> Result<()> {
        let json = serde_json::to_string(health)?;
        let key = self.keys.health(shard, endpoint_id);
        let Some(owner) = owner else {
            let _: Value = self.client().set(key, json, None, None, false).await?;
            return Ok(());
        };
        self.fenced_set(owner, shard, key, json, 0).await
    }

    pub async fn save_bucket(
        &self,
        owner: &str,
        endpoint_id: &str,
        shard: u32,
        bucket: &BucketRecord,
        ttl_ms: u64,
    ) -> Result<()> {
        let json = serde_json::to_string(bucket)?;
        let key = self.keys.bucket(shard, endpoint_id);
        self.fenced_set(owner, shard, key, json, ttl_ms.max(1)).await
    }

    /// SET `key` for the holder of `shard`'s lease only (FENCED_SET); `px_ms` 0: no expiry.
    pub async fn fenced_set(&self, owner: &str, shard: u32, key: String, value: String, px_ms: u64) -> Result<()> {
        let keys = vec![key, self.keys.lease(shard)];
        let args = vec![value, owner.to_string(), px_ms.to_string()];
        match self.eval(&scripts::FENCED_SET, keys, args).await?.as_i64() {
            Some(-1) => Err(Error::Fenced(shard)),
            _ => Ok(()),
        }
    }
}

/// A stored health record; one this version cannot read starts the endpoint healthy rather
/// than stuck.
fn health_from(json: Option<String>) -> HealthRecord {
    json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default()
}
