//! What the cluster view reads (`GET /v1/cluster`): the live nodes with their last heartbeat,
//! each shard's lease holder, and queue lengths. Pipelined, bounded by the shard and endpoint
//! counts.

use super::{text, RedisStore, Result};
use fred::prelude::*;
use fred::types::Value;

impl RedisStore {
    /// The nodes in the membership set with their last heartbeat (ms), by id.
    pub async fn live_nodes(&self) -> Result<Vec<(String, u64)>> {
        let reply: Value = self
            .client()
            .zrange(self.keys.nodes(), 0, -1, None, false, None, true)
            .await?;
        // Flat (RESP2) or in pairs (RESP3): the log's reader takes both.
        let mut nodes: Vec<(String, u64)> = super::log::scored_members(reply)
            .into_iter()
            .map(|(id, seen)| (id, seen as u64))
            .collect();
        nodes.sort();
        Ok(nodes)
    }

    /// Each shard's lease holder (`None`: not held), shard by shard.
    pub async fn lease_holders(&self, shard_count: u32) -> Result<Vec<Option<String>>> {
        let pipeline = self.client().pipeline();
        for shard in 0..shard_count {
            let _: () = pipeline.get(self.keys.lease(shard)).await?;
        }
        let holders: Vec<Value> = pipeline.all().await?;
        Ok(holders
            .iter()
            .map(|token| text(token).map(|t| super::leases::lease_node(&t).to_string()))
            .collect())
    }

    /// How many deliveries each `(shard, endpoint id)` has queued, in order.
    pub async fn queue_lengths(&self, endpoints: &[(u32, &str)]) -> Result<Vec<u64>> {
        let mut lengths = Vec::with_capacity(endpoints.len());
        for chunk in endpoints.chunks(1_000) {
            let pipeline = self.client().pipeline();
            for (shard, id) in chunk {
                let _: () = pipeline.zcard(self.keys.queue(*shard, id)).await?;
            }
            let replies: Vec<Value> = pipeline.all().await?;
            lengths.extend(replies.iter().map(|r| r.as_u64().unwrap_or(0)));
        }
        Ok(lengths)
    }
}
