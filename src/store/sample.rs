//! What the metrics sampler reads: which shards this node holds, the queues and health of
//! their endpoints, and how far the router is behind the stream. All pipelined.

use super::{text, RedisStore, Result};
use fred::prelude::*;
use fred::types::Value;
use hookline_actors::model::HealthRecord;

/// One endpoint's queue and breaker, as sampled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointSample {
    pub queued: u64,
    /// Queued deliveries due now (queue score ≤ now). Not meaningful for ordered endpoints,
    /// whose queue scores are ingest order: see `due_entry_ms`.
    pub due_now: u64,
    /// The score of its queue's head: the earliest due time (ms).
    pub head_due_ms: Option<u64>,
    /// Its entry in the shard's due set (when the endpoint next has work, as its actor or the
    /// router last set it; an ordered endpoint's head retry time is there).
    pub due_entry_ms: Option<u64>,
    /// closed | open | half_open
    pub breaker: &'static str,
}

impl RedisStore {
    /// The shards whose lease `node_id` holds now.
    pub async fn held_shards(&self, node_id: &str, shard_count: u32) -> Result<Vec<u32>> {
        let holders = self.lease_holders(shard_count).await?;
        Ok(holders
            .iter()
            .enumerate()
            .filter(|(_, holder)| holder.as_deref() == Some(node_id))
            .map(|(shard, _)| shard as u32)
            .collect())
    }

    /// Queue length, due count, queue head, due-set entry and breaker state of each
    /// `(shard, endpoint id, disabled)`, in order. Two commands per shard (per 1,000 of its
    /// endpoints) read every endpoint's due entry (ZMSCORE) and health (MGET); the queue is read
    /// (three commands) only of an endpoint that can hold work: one with a due entry (every
    /// queued delivery of an enabled endpoint keeps one: ROUTE writes it, and SETTLE_IDLE
    /// removes it only with the queue empty or the endpoint paused) or a disabled one. So an
    /// idle node's sample costs two commands per shard, not five per endpoint.
    pub async fn endpoint_samples(&self, endpoints: &[(u32, &str, bool)], now_ms: u64) -> Result<Vec<EndpointSample>> {
        let score = |v: &Value| v.as_f64().or_else(|| text(v)?.parse().ok()).map(|s| s as u64);
        let mut by_shard: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
        for (i, (shard, _, _)) in endpoints.iter().enumerate() {
            by_shard.entry(*shard).or_default().push(i);
        }
        let chunks: Vec<(u32, &[usize])> = by_shard
            .iter()
            .flat_map(|(shard, all)| all.chunks(1_000).map(move |chunk| (*shard, chunk)))
            .collect();
        let closed = EndpointSample {
            breaker: "closed",
            ..Default::default()
        };
        let mut samples = vec![closed; endpoints.len()];
        let mut due_entry: Vec<Option<u64>> = vec![None; endpoints.len()];
        let pipeline = self.client().pipeline();
        for (shard, chunk) in &chunks {
            let ids: Vec<&str> = chunk.iter().map(|&i| endpoints[i].1).collect();
            let health: Vec<String> = ids.iter().map(|id| self.keys.health(*shard, id)).collect();
            let _: () = pipeline.zmscore(self.keys.due(*shard), ids).await?;
            let _: () = pipeline.mget(health).await?;
        }
        let replies: Vec<Value> = if chunks.is_empty() {
            Vec::new()
        } else {
            pipeline.all().await?
        };
        for ((_, chunk), pair) in chunks.iter().zip(replies.chunks(2)) {
            let [scores, healths] = pair else { continue };
            let (scores, healths) = (scores.clone().into_array(), healths.clone().into_array());
            for (n, &i) in chunk.iter().enumerate() {
                due_entry[i] = scores.get(n).and_then(score);
                samples[i].due_entry_ms = due_entry[i];
                samples[i].breaker = healths
                    .get(n)
                    .and_then(text)
                    .and_then(|h| serde_json::from_str::<HealthRecord>(&h).ok())
                    .map_or("closed", |h| h.breaker.state.name());
            }
        }
        let with_work: Vec<usize> = (0..endpoints.len())
            .filter(|&i| due_entry[i].is_some() || endpoints[i].2)
            .collect();
        for chunk in with_work.chunks(1_000) {
            let pipeline = self.client().pipeline();
            for &i in chunk {
                let queue = self.keys.queue(endpoints[i].0, endpoints[i].1);
                let _: () = pipeline.zcard(&queue).await?;
                let _: () = pipeline.zcount(&queue, f64::NEG_INFINITY, now_ms as f64).await?;
                let _: () = pipeline.zrange(&queue, 0, 0, None, false, None, true).await?;
            }
            let replies: Vec<Value> = pipeline.all().await?;
            for (&i, reply) in chunk.iter().zip(replies.chunks(3)) {
                let [queued, due_now, head] = reply else { continue };
                let head = head.clone().into_array();
                samples[i].queued = queued.as_u64().unwrap_or(0);
                samples[i].due_now = due_now.as_u64().unwrap_or(0);
                samples[i].head_due_ms = head.get(1).and_then(score);
            }
        }
        Ok(samples)
    }

    /// Age (ms) of the oldest event the router has not finished with: the first entry never
    /// read by the router group, or the oldest read but not acknowledged; 0 when none.
    pub async fn router_lag_ms(&self, now_ms: u64) -> Result<u64> {
        let mut lag = 0;
        for partition in 0..self.keys.partitions() {
            lag = lag.max(self.partition_lag_ms(partition, now_ms).await?);
        }
        Ok(lag)
    }

    async fn partition_lag_ms(&self, partition: u32, now_ms: u64) -> Result<u64> {
        let first = self.first_unrouted(partition).await?;
        Ok(first
            .and_then(|id| hookline_actors::model::stream_id_ms(&id))
            .map_or(0, |ms| now_ms.saturating_sub(ms)))
    }
}
