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
    /// `(shard, endpoint id)`, in order.
    pub async fn endpoint_samples(&self, endpoints: &[(u32, &str)], now_ms: u64) -> Result<Vec<EndpointSample>> {
        let score = |v: &Value| v.as_f64().or_else(|| text(v)?.parse().ok()).map(|s| s as u64);
        let mut samples = Vec::with_capacity(endpoints.len());
        for chunk in endpoints.chunks(1_000) {
            let pipeline = self.client().pipeline();
            for (shard, id) in chunk {
                let queue = self.keys.queue(*shard, id);
                let _: () = pipeline.zcard(&queue).await?;
                let _: () = pipeline.zcount(&queue, f64::NEG_INFINITY, now_ms as f64).await?;
                let _: () = pipeline.zrange(&queue, 0, 0, None, false, None, true).await?;
                let _: () = pipeline.zscore(self.keys.due(*shard), *id).await?;
                let _: () = pipeline.get(self.keys.health(*shard, id)).await?;
            }
            let replies: Vec<Value> = pipeline.all().await?;
            for reply in replies.chunks(5) {
                let [queued, due_now, head, due_entry, health] = reply else {
                    continue;
                };
                let head = head.clone().into_array();
                let breaker = text(health)
                    .and_then(|h| serde_json::from_str::<HealthRecord>(&h).ok())
                    .map_or("closed", |h| h.breaker.state.name());
                samples.push(EndpointSample {
                    queued: queued.as_u64().unwrap_or(0),
                    due_now: due_now.as_u64().unwrap_or(0),
                    head_due_ms: head.get(1).and_then(score),
                    due_entry_ms: score(due_entry),
                    breaker,
                });
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
