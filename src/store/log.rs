//! Queries behind `GET …/deliveries`: each endpoint's delivery log (a sorted set of event ids
//! by ingest order, written by ROUTE) read newest first, and the records of a page of
//! deliveries read in one pipelined round trip.

use super::{text, RedisStore, Result};
use fred::prelude::*;
use fred::types::Value;

/// One delivery as the list shows it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub status: String,
    pub attempts: u32,
    pub created_ms: u64,
    pub updated_ms: Option<u64>,
    pub next_ms: Option<u64>,
    pub reason: Option<String>,
    /// Ingest order of its event (the delivery log's score).
    pub order: f64,
}

impl RedisStore {
    /// For each `(shard, endpoint id)`: up to `count` entries of its delivery log scored at or
    /// below `max` (all when `None`), newest first, as `(event id, score)`. One round trip.
    pub async fn delivery_log_newest(
        &self,
        endpoints: &[(u32, String)],
        max: Option<f64>,
        count: usize,
    ) -> Result<Vec<Vec<(String, f64)>>> {
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = self.client().pipeline();
        let max = max.unwrap_or(f64::INFINITY);
        for (shard, endpoint_id) in endpoints {
            let _: () = pipeline
                .zrevrangebyscore(
                    self.keys.delivery_log(*shard, endpoint_id),
                    max,
                    f64::NEG_INFINITY,
                    true,
                    Some((0, count as i64)),
                )
                .await?;
        }
        let replies: Vec<Value> = pipeline.all().await?;
        Ok(replies.into_iter().map(scored_members).collect())
    }

    /// The records of these `(shard, endpoint id, event id)` deliveries, in order; `None` where
    /// the delivery is gone (past retention, or its endpoint deleted). A delivery its
    /// endpoint's log lists without a record was not attempted yet (ROUTE writes none): it is
    /// pending, created at its event's ingest. One round trip.
    pub async fn delivery_rows(&self, items: &[(u32, &str, &str)]) -> Result<Vec<Option<DeliveryRow>>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        const FIELDS: [&str; 7] = [
            "status",
            "attempts",
            "created_ms",
            "updated_ms",
            "next_ms",
            "reason",
            "order",
        ];
        let pipeline = self.client().pipeline();
        for (shard, endpoint_id, event_id) in items {
            let _: () = pipeline
                .hmget(self.keys.delivery(*shard, endpoint_id, event_id), FIELDS.to_vec())
                .await?;
            let _: () = pipeline
                .zscore(self.keys.delivery_log(*shard, endpoint_id), *event_id)
                .await?;
        }
        let replies: Vec<Value> = pipeline.all().await?;
        let cutoff_ms = self.retention_cutoff_ms();
        Ok(replies
            .chunks(2)
            .map(|pair| {
                let f: Vec<Option<String>> = pair[0].clone().into_array().iter().map(text).collect();
                let get = |i: usize| f.get(i).cloned().flatten();
                let num = |i: usize| get(i).and_then(|v| v.parse::<u64>().ok());
                let Some(status) = get(0) else {
                    return pending_row(&pair[1], cutoff_ms);
                };
                Some(DeliveryRow {
                    status,
                    attempts: num(1).unwrap_or(0) as u32,
                    created_ms: num(2).unwrap_or(0),
                    updated_ms: num(3).filter(|v| *v > 0),
                    next_ms: num(4).filter(|v| *v > 0),
                    reason: get(5).filter(|r| !r.is_empty()),
                    order: get(6).and_then(|v| v.parse().ok()).unwrap_or(0.0),
                })
            })
            .collect())
    }
}

/// A delivery without a record, as its log entry (`ZSCORE` reply) shows it: pending, never
/// attempted, created at its event's ingest; `None` when the log does not list it either, or
/// lists it from before `cutoff_ms` (past retention: its record, which lives retention from its
/// last attempt, expired; the log entry waits for the janitor's trim).
pub(super) fn pending_row(log_score: &Value, cutoff_ms: u64) -> Option<DeliveryRow> {
    let order = log_score
        .as_f64()
        .or_else(|| text(log_score).and_then(|s| s.parse().ok()))?;
    if order < cutoff_ms as f64 {
        return None;
    }
    Some(DeliveryRow {
        status: "pending".to_string(),
        attempts: 0,
        created_ms: order as u64,
        updated_ms: None,
        next_ms: None,
        reason: None,
        order,
    })
}

/// `ZRANGE … WITHSCORES` replies: flat `[m, s, m, s]` (RESP2) or pairs `[[m, s], …]` (RESP3).
pub(super) fn scored_members(reply: Value) -> Vec<(String, f64)> {
    let items = reply.into_array();
    let score = |v: &Value| v.as_f64().or_else(|| text(v).and_then(|s| s.parse().ok()));
    if items.first().is_some_and(|v| matches!(v, Value::Array(_))) {
        items
            .into_iter()
            .filter_map(|pair| {
                let pair = pair.into_array();
                Some((text(pair.first()?)?, score(pair.get(1)?)?))
            })
            .collect()
    } else {
        items
            .chunks(2)
            .filter_map(|c| match c {
                [m, s] => Some((text(m)?, score(s)?)),
                _ => None,
            })
            .collect()
    }
}

impl RedisStore {
    /// Ingest times before this (ms) are past retention.
    pub(super) fn retention_cutoff_ms(&self) -> u64 {
        hookline_actors::now_ms().saturating_sub(self.retention_s * 1000)
    }

    /// Every endpoint id of a tenant, oldest first.
    pub async fn tenant_endpoint_ids(&self, tenant: &str) -> Result<Vec<String>> {
        Ok(self
            .client()
            .zrange(self.keys.tenant_endpoints(tenant), 0, -1, None, false, None, false)
            .await?)
    }
}
