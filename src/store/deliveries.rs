//! Deliveries as the API reads them (one record, dead letters) and replay (the REPLAY script).

use super::{scripts, text, RedisStore, Result};
use fred::prelude::*;
use fred::types::Value;
use hookline_actors::model::AttemptRecord;
use hookline_actors::EndpointConfig;

/// One dead letter, as `GET …/dead-letters` lists it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub event_id: String,
    pub dead_at_ms: u64,
    pub reason: String,
    pub attempts: u32,
}

/// A delivery record, as `GET …/deliveries/{id}` needs it.
#[derive(Debug, Clone)]
pub struct StoredDelivery {
    pub status: String,
    pub attempts: Vec<AttemptRecord>,
    pub created_ms: u64,
    pub next_ms: Option<u64>,
    pub reason: Option<String>,
}

impl RedisStore {
    pub async fn get_delivery(&self, shard: u32, endpoint_id: &str, event_id: &str) -> Result<Option<StoredDelivery>> {
        let fields: std::collections::HashMap<String, String> = self
            .client()
            .hgetall(self.keys.delivery(shard, endpoint_id, event_id))
            .await?;
        let Some(status) = fields.get("status").cloned() else {
            // Not attempted yet (ROUTE writes no record) if the endpoint's log lists it.
            let score: Value = self
                .client()
                .zscore(self.keys.delivery_log(shard, endpoint_id), event_id)
                .await?;
            return Ok(
                super::log::pending_row(&score, self.retention_cutoff_ms()).map(|row| StoredDelivery {
                    status: row.status,
                    attempts: Vec::new(),
                    created_ms: row.created_ms,
                    next_ms: None,
                    reason: None,
                }),
            );
        };
        let count: u32 = fields.get("attempts").and_then(|a| a.parse().ok()).unwrap_or(0);
        let attempts = (1..=count)
            .filter_map(|n| fields.get(&format!("a{n}")))
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect();
        Ok(Some(StoredDelivery {
            status,
            attempts,
            created_ms: fields.get("created_ms").and_then(|v| v.parse().ok()).unwrap_or(0),
            next_ms: fields.get("next_ms").and_then(|v| v.parse().ok()).filter(|v| *v > 0),
            reason: fields.get("reason").cloned().filter(|r| !r.is_empty()),
        }))
    }

    /// A page of an endpoint's dead letters, newest first, and the next offset.
    pub async fn dead_letters(
        &self,
        shard: u32,
        endpoint_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, Option<usize>)> {
        let client = self.client();
        let entries: Vec<(String, f64)> = client
            .zrange(
                self.keys.dead_letters(shard, endpoint_id),
                offset as i64,
                (offset + limit) as i64,
                None,
                true,
                None,
                true,
            )
            .await?;
        let more = entries.len() > limit;
        let entries: Vec<(String, f64)> = entries.into_iter().take(limit).collect();
        if entries.is_empty() {
            return Ok((Vec::new(), None));
        }
        let pipeline = client.pipeline();
        for (event_id, _) in &entries {
            let _: () = pipeline
                .hmget(
                    self.keys.delivery(shard, endpoint_id, event_id),
                    vec!["reason", "attempts"],
                )
                .await?;
        }
        let details: Vec<Value> = pipeline.all().await?;
        let letters = entries
            .into_iter()
            .zip(details)
            .map(|((event_id, at), detail)| {
                let fields = detail.into_array();
                DeadLetter {
                    event_id,
                    dead_at_ms: at as u64,
                    reason: fields.first().and_then(text).unwrap_or_default(),
                    attempts: fields.get(1).and_then(text).and_then(|a| a.parse().ok()).unwrap_or(0),
                }
            })
            .collect();
        Ok((letters, more.then_some(offset + limit)))
    }

    /// Event ids of an endpoint's dead letters from `since_ms` up to `until_ms`, oldest first.
    pub async fn dead_letter_ids_between(
        &self,
        shard: u32,
        endpoint_id: &str,
        since_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>> {
        Ok(self
            .client()
            .zrangebyscore(
                self.keys.dead_letters(shard, endpoint_id),
                since_ms as i64,
                until_ms as i64,
                false,
                Some((0, limit as i64)),
            )
            .await?)
    }

    /// Start a new attempt cycle for these deliveries of one endpoint (dead or not); returns
    /// how many exist and were replayed.
    pub async fn replay(&self, shard: u32, endpoint: &EndpointConfig, event_ids: &[String]) -> Result<u64> {
        let endpoint_id = endpoint.id.as_str();
        let mut replayed = 0;
        for chunk in event_ids.chunks(500) {
            let mut keys = vec![
                self.keys.queue(shard, endpoint_id),
                self.keys.due(shard),
                self.keys.dead_letters(shard, endpoint_id),
            ];
            keys.extend(chunk.iter().map(|id| self.keys.delivery(shard, endpoint_id, id)));
            let mut args = vec![
                endpoint_id.to_string(),
                hookline_actors::now_ms().to_string(),
                (endpoint.ordered as u8).to_string(),
            ];
            args.extend(chunk.iter().cloned());
            args.push(self.retention_s.to_string());
            replayed += self.eval(&scripts::REPLAY, keys, args).await?.as_u64().unwrap_or(0);
        }
        // The endpoint's owner, on whichever node, starts on it now rather than at its next
        // due poll (best effort: the poll is the safety net).
        if replayed > 0 {
            if let Err(e) = self.announce_work(&[(endpoint.id.clone(), shard)]).await {
                tracing::debug!(error = %e, "announcing replayed work failed; the due poll will find it");
            }
        }
        Ok(replayed)
    }
}
