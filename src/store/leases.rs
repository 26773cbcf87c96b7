//! Membership, shard leases (HOLD_LEASE, RENEW_LEASE, RELEASE_LEASE) and each shard's due set.

use super::{scripts, RedisStore, Result};
use fred::prelude::*;
use fred::types::Value;

impl RedisStore {
    pub async fn heartbeat(&self, node_id: &str, ttl_ms: u64) -> Result<(usize, usize)> {
        let now = hookline_actors::now_ms();
        let reply = self
            .eval(
                &scripts::HEARTBEAT,
                vec![self.keys.nodes()],
                vec![node_id.to_string(), now.to_string(), ttl_ms.to_string()],
            )
            .await?;
        let reply = reply.into_array();
        let number = |i: usize| reply.get(i).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        Ok((number(0).max(1), number(1)))
    }

    pub async fn hold_lease(&self, shard: u32, node_id: &str, ttl_ms: u64) -> Result<Option<u64>> {
        let reply = self
            .eval(
                &scripts::HOLD_LEASE,
                vec![self.keys.lease(shard), self.keys.lease_epoch(shard)],
                vec![node_id.to_string(), ttl_ms.to_string()],
            )
            .await?;
        Ok(reply.as_u64())
    }

    pub async fn renew_lease(&self, shard: u32, node_id: &str, ttl_ms: u64) -> Result<bool> {
        let reply = self
            .eval(
                &scripts::RENEW_LEASE,
                vec![self.keys.lease(shard)],
                vec![node_id.to_string(), ttl_ms.to_string()],
            )
            .await?;
        Ok(reply.as_u64() == Some(1))
    }

    pub async fn release_lease(&self, shard: u32, node_id: &str) -> Result<()> {
        self.eval(
            &scripts::RELEASE_LEASE,
            vec![self.keys.lease(shard)],
            vec![node_id.to_string()],
        )
        .await
        .map(|_| ())
    }

    pub async fn leave(&self, node_id: &str) -> Result<()> {
        let _: Value = self.client().zrem(self.keys.nodes(), node_id).await?;
        Ok(())
    }

    pub async fn due_endpoints(&self, shard: u32, now_ms: u64, offset: usize, limit: usize) -> Result<Vec<String>> {
        Ok(self
            .client()
            .zrangebyscore(
                self.keys.due(shard),
                "-inf".to_string(),
                now_ms as i64,
                false,
                Some((offset as i64, limit as i64)),
            )
            .await?)
    }
}
