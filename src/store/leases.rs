//! Membership, shard leases (HOLD_LEASE, RENEW_LEASE, RELEASE_LEASE) and each shard's due set.

use super::{RedisStore, Result};
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::Value;
use std::sync::LazyLock;

/// A shard's lease holds its holder's fencing token, `node#epoch` (`LeaseClock::token`): the
/// fence of every write under it (`scripts::fenced`) is then one GET. The epoch is counted in
/// the shard's epoch key, which outlives the lease. This Lua function, put before each lease
/// script, reads the holder's node id from the lease (nil when free).
const HOLDER: &str = r#"
local function holder_of(lease)
  local token = redis.call('GET', lease)
  if not token then return nil, nil end
  local node, epoch = string.match(token, '^(.*)#(%d+)$')
  return node or token, epoch
end
"#;

/// KEYS: lease, epoch. ARGV: node id, ttl ms. Takes a free lease (a new epoch) or renews our
/// own (the same epoch). Returns the epoch while held, nil when another node holds it.
pub static HOLD_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        r#"{HOLDER}
local node, epoch = holder_of(KEYS[1])
if node == ARGV[1] and epoch then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(epoch)
end
if not node then
  local next_epoch = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. '#' .. next_epoch, 'PX', ARGV[2])
  return next_epoch
end
return false
"#
    ))
});

/// KEYS: lease. ARGV: node id, ttl ms. Renews the lease only if we hold it (a lease that
/// lapsed is not silently taken again: the work done under it must stop first). 1 = renewed.
pub static RENEW_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        r#"{HOLDER}
local node, epoch = holder_of(KEYS[1])
if node == ARGV[1] and epoch then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#
    ))
});

/// KEYS: lease. ARGV: node id. Deletes the lease only if we hold it.
pub static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        r#"{HOLDER}
if holder_of(KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#
    ))
});

/// The node id in a lease's value (`node#epoch`, as HOLDER reads it: digits after the last
/// `#`; a value without them is an older version's, the node id alone).
pub(super) fn lease_node(token: &str) -> &str {
    token
        .rsplit_once('#')
        .filter(|(_, epoch)| !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()))
        .map_or(token, |(node, _)| node)
}

/// KEYS: nodes. ARGV: node id, now ms, ttl ms. Returns {live nodes, this node's rank among
/// their ids in sorted order} (the rank decides who holds one shard more; see `fair_share`).
pub static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
local live = redis.call('ZRANGE', KEYS[1], 0, -1)
table.sort(live)
local rank = 0
for i, id in ipairs(live) do
  if id == ARGV[1] then rank = i - 1 end
end
return {#live, rank}
"#,
    )
});

impl RedisStore {
    pub async fn heartbeat(&self, node_id: &str, ttl_ms: u64) -> Result<(usize, usize)> {
        let now = hookline_actors::now_ms();
        let reply = self
            .eval(
                &HEARTBEAT,
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
                &HOLD_LEASE,
                vec![self.keys.lease(shard), self.keys.lease_epoch(shard)],
                vec![node_id.to_string(), ttl_ms.to_string()],
            )
            .await?;
        Ok(reply.as_u64())
    }

    pub async fn renew_lease(&self, shard: u32, node_id: &str, ttl_ms: u64) -> Result<bool> {
        let reply = self
            .eval(
                &RENEW_LEASE,
                vec![self.keys.lease(shard)],
                vec![node_id.to_string(), ttl_ms.to_string()],
            )
            .await?;
        Ok(reply.as_u64() == Some(1))
    }

    pub async fn release_lease(&self, shard: u32, node_id: &str) -> Result<()> {
        self.eval(&RELEASE_LEASE, vec![self.keys.lease(shard)], vec![node_id.to_string()])
            .await
            .map(|_| ())
    }

    pub async fn leave(&self, node_id: &str) -> Result<()> {
        let _: Value = self.client().zrem(self.keys.nodes(), node_id).await?;
        Ok(())
    }

    /// A page of the shard's due set by rank, earliest first, with due times (ms).
    pub async fn due_page(&self, shard: u32, offset: usize, limit: usize) -> Result<Vec<(String, u64)>> {
        let stop = (offset + limit.max(1) - 1) as i64;
        let page: Vec<(String, f64)> = self
            .client()
            .zrange(self.keys.due(shard), offset as i64, stop, None, false, None, true)
            .await?;
        Ok(page.into_iter().map(|(id, due)| (id, due.max(0.0) as u64)).collect())
    }

    /// PUBLISH `<shard>:<endpoint id>` lines on the work channel (`Keys::work_channel`): every
    /// node hears it and wakes the endpoints of the shards it holds (`watch_changes`).
    pub async fn announce_work(&self, pairs: &[(String, u32)]) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = pairs.iter().map(|(id, shard)| format!("{shard}:{id}")).collect();
        let _: Value = self
            .client()
            .publish(self.keys.work_channel(), lines.join("\n"))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// The node of a lease as the lease scripts read it (the digits after the last `#` are the
    /// epoch), and an older version's value (the node id alone) as it is.
    #[test]
    fn the_node_is_read_from_a_lease_as_the_scripts_read_it() {
        assert_eq!(super::lease_node("node-1#12"), "node-1");
        assert_eq!(super::lease_node("a#b#3"), "a#b");
        assert_eq!(super::lease_node("old-node"), "old-node");
        assert_eq!(super::lease_node("x#y"), "x#y");
        assert_eq!(super::lease_node("x#"), "x#");
    }
}
