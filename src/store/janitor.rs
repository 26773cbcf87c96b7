//! Retention (invariant 4 of docs/ARCHITECTURE.md: nothing grows without bound). Records and event bodies
//! carry TTLs and the stream is trimmed on every append; a janitor pass removes what TTLs
//! cannot: old entries inside sorted sets (delivery logs, dead letters), stream entries left
//! when ingest stops, the records of a deleted endpoint's dropped deliveries (marked dead), and
//! router consumers of nodes that are gone, and audit entries past `retention.audit_days`. It also
//! rolls delivery stats up (`stats.rs`: minutes into their rolled and hour buckets), and tells
//! dead letters held back by their notice gate once it opens (`notices.rs`). Every step
//! does bounded work per pass.

use super::keys::ROUTER_GROUP;
use super::{scripts, text, Error, RedisStore, Result};
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, Value};

/// Most members one TRIM_OLDEST call removes from one sorted set.
const TRIM_CAP: usize = 10_000;
/// Most stream entries one pass removes (whole stream nodes, `MINID ~ … LIMIT`).
const STREAM_TRIM_LIMIT: i64 = 100_000;
/// Deleted endpoints whose dropped deliveries one pass works on, and records per endpoint.
const DROPPING_PER_PASS: usize = 16;
const DROPPED_PER_ENDPOINT: i64 = 500;

/// What one janitor pass removed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct JanitorReport {
    pub stream_entries: u64,
    pub log_entries: u64,
    pub dead_letters: u64,
    pub dropped_marked_dead: u64,
    pub consumers: u64,
    pub endpoints_visited: u64,
    pub audit_entries: u64,
    pub portal_sessions_expired: u64,
    /// Endpoint minutes whose stats were rolled up into their minute and hour buckets.
    pub stats_minutes_rolled: u64,
    /// `hookline.endpoint.dead_letters` notices of dead letters held back by their gate.
    pub dead_letter_notices: u64,
}

impl RedisStore {
    /// Claim this janitor interval for `node_id`: true if no node ran a pass in the last `ttl_ms`.
    pub async fn claim_janitor(&self, node_id: &str, ttl_ms: u64) -> Result<bool> {
        let set: Option<String> = self
            .client()
            .set(
                self.keys.janitor_lock(),
                node_id,
                Some(Expiration::PX(ttl_ms as i64)),
                Some(SetOptions::NX),
                false,
            )
            .await?;
        Ok(set.is_some())
    }

    /// One bounded pass: `batch` endpoints' logs and dead letters (continuing where the last
    /// pass stopped), the stream, some deleted endpoints' dropped deliveries, and router
    /// consumers without pending entries idle for more than `consumer_idle_ms` (except `node_id`).
    pub async fn janitor_pass(&self, node_id: &str, batch: usize, consumer_idle_ms: u64) -> Result<JanitorReport> {
        let cutoff_ms = hookline_actors::now_ms().saturating_sub(self.retention_s * 1000);
        let mut report = JanitorReport {
            stream_entries: self.trim_stream(cutoff_ms).await?,
            ..Default::default()
        };
        self.trim_endpoint_sets(cutoff_ms, batch, &mut report).await?;
        report.dropped_marked_dead = self.mark_dropped().await?;
        report.consumers = self.remove_idle_consumers(node_id, consumer_idle_ms).await?;
        report.audit_entries = self.trim_audit(batch).await?;
        report.portal_sessions_expired = self.expire_portal_sessions(hookline_actors::now_ms(), batch).await?;
        report.stats_minutes_rolled = self.roll_stats().await?;
        report.dead_letter_notices = self.tell_held_dead_letters().await?;
        Ok(report)
    }

    /// Whole stream nodes older than the cutoff first (cheap, bounded by LIMIT); once none is
    /// left, the old entries at the head of the first node exactly (fewer than a node holds).
    async fn trim_stream(&self, cutoff_ms: u64) -> Result<u64> {
        let mut trimmed = 0;
        for partition in 0..self.keys.partitions() {
            trimmed += self.trim_partition(partition, cutoff_ms).await?;
        }
        Ok(trimmed)
    }

    async fn trim_partition(&self, partition: u32, cutoff_ms: u64) -> Result<u64> {
        let client = self.client();
        let min_id = format!("{cutoff_ms}-0");
        let whole: u64 = client
            .xtrim(
                self.keys.events_stream(partition),
                ("MINID", "~", min_id.as_str(), Some(STREAM_TRIM_LIMIT)),
            )
            .await?;
        if whole > 0 {
            return Ok(whole);
        }
        client
            .xtrim(
                self.keys.events_stream(partition),
                ("MINID", "=", min_id.as_str(), None),
            )
            .await
            .map_err(Error::from)
    }

    async fn trim_endpoint_sets(&self, cutoff_ms: u64, batch: usize, report: &mut JanitorReport) -> Result<()> {
        let client = self.client();
        let cursor: Option<String> = client.get(self.keys.janitor_cursor()).await?;
        let reply: Value = client
            .custom(
                CustomCommand::new_static("HSCAN", ClusterHash::FirstKey, false),
                vec![
                    self.keys.endpoints(),
                    cursor.unwrap_or_else(|| "0".into()),
                    "COUNT".into(),
                    batch.to_string(),
                ],
            )
            .await?;
        let mut parts = reply.into_array().into_iter();
        let next = parts.next().as_ref().and_then(text).unwrap_or_else(|| "0".into());
        let fields = parts.next().map(|f| f.into_array()).unwrap_or_default();
        let endpoint_ids: Vec<String> = fields.iter().step_by(2).filter_map(text).collect();
        let cutoff = cutoff_ms.to_string();
        let cap = TRIM_CAP.to_string();
        let trims = endpoint_ids.iter().flat_map(|id| {
            let shard = hookline_actors::shard::shard_of(id, self.shard_count);
            [self.keys.delivery_log(shard, id), self.keys.dead_letters(shard, id)]
                .map(|key| self.eval(&scripts::TRIM_OLDEST, vec![key], vec![cutoff.clone(), cap.clone()]))
        });
        let removed = super::join_all(trims).await;
        for (i, result) in removed.into_iter().enumerate() {
            let n = result?.as_u64().unwrap_or(0);
            if i % 2 == 0 {
                report.log_entries += n;
            } else {
                report.dead_letters += n;
            }
        }
        report.endpoints_visited = endpoint_ids.len() as u64;
        let _: Value = client.set(self.keys.janitor_cursor(), next, None, None, false).await?;
        Ok(())
    }

    /// Mark the records of deleted endpoints' dropped deliveries dead (`endpoint_deleted`).
    async fn mark_dropped(&self) -> Result<u64> {
        let client = self.client();
        let members: Vec<String> = client
            .srandmember(self.keys.dropping(), Some(DROPPING_PER_PASS))
            .await?;
        let mut marked = 0;
        for member in members {
            let Some((shard, endpoint_id)) = member.split_once(':').and_then(|(s, e)| Some((s.parse().ok()?, e)))
            else {
                let _: Value = client.srem(self.keys.dropping(), member).await?;
                continue;
            };
            let dropped_key = self.keys.dropped(shard, endpoint_id);
            let event_ids: Vec<String> = client
                .zrange(&dropped_key, 0, DROPPED_PER_ENDPOINT - 1, None, false, None, false)
                .await?;
            let mut left = 0;
            if !event_ids.is_empty() {
                let mut keys = vec![dropped_key];
                keys.extend(event_ids.iter().map(|e| self.keys.delivery(shard, endpoint_id, e)));
                let mut args = event_ids.clone();
                args.push(self.retention_s.to_string());
                args.push(hookline_actors::now_ms().to_string());
                left = self
                    .eval(&scripts::MARK_DROPPED, keys, args)
                    .await?
                    .as_u64()
                    .unwrap_or(0);
                marked += event_ids.len() as u64;
            }
            if left == 0 {
                let _: Value = client.srem(self.keys.dropping(), member).await?;
            }
        }
        Ok(marked)
    }

    /// Delete router consumers that hold no pending entries and have been idle long: consumers
    /// of nodes that are gone (a node's consumer is its node id). The check and the delete are
    /// one script, so entries a consumer reads meanwhile are never dropped with it. A live
    /// consumer removed while idle costs nothing: XREADGROUP creates it again.
    async fn remove_idle_consumers(&self, node_id: &str, idle_ms: u64) -> Result<u64> {
        let mut removed = 0;
        for partition in 0..self.keys.partitions() {
            removed += self.remove_idle_consumers_of(partition, node_id, idle_ms).await?;
        }
        Ok(removed)
    }

    async fn remove_idle_consumers_of(&self, partition: u32, node_id: &str, idle_ms: u64) -> Result<u64> {
        let client = self.client();
        let stream = self.keys.events_stream(partition);
        let reply: std::result::Result<Value, _> = client.xinfo_consumers(&stream, ROUTER_GROUP).await;
        let consumers = match reply {
            Ok(v) => v.into_array(),
            // No stream or group yet: nothing to remove.
            Err(e) if e.details().contains("no such key") || e.details().contains("NOGROUP") => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut removed = 0;
        for consumer in consumers {
            let info = field_map(consumer);
            let name = info.iter().find(|(k, _)| k == "name").and_then(|(_, v)| text(v));
            let number = |key: &str| info.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.as_u64());
            let (Some(name), Some(0), Some(idle)) = (name, number("pending"), number("idle")) else {
                continue;
            };
            if name != node_id && idle > idle_ms {
                // Checked again and deleted in one step: it may have read entries since.
                let args = vec![ROUTER_GROUP.to_string(), name, idle_ms.to_string()];
                let deleted = self
                    .eval(&scripts::DELETE_IDLE_CONSUMER, vec![stream.clone()], args)
                    .await?;
                removed += deleted.as_u64().unwrap_or(0);
            }
        }
        Ok(removed)
    }
}

/// A reply that is a map (RESP3) or a flat `[k, v, k, v]` array (RESP2), as key/value pairs.
pub(super) fn field_map(reply: Value) -> Vec<(String, Value)> {
    match reply {
        Value::Map(map) => map
            .inner()
            .into_iter()
            .map(|(k, v)| (k.as_str().map(|s| s.to_string()).unwrap_or_default(), v))
            .collect(),
        other => {
            let items = other.into_array();
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((text(&k).unwrap_or_default(), v));
            }
            pairs
        }
    }
}
