//! Ingest: store an event durably and append it for routing (the INGEST script), and read
//! events back.

use super::{join_all, scripts, text, Error, RedisStore, Result};
use crate::event::NewEvent;
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, Value};

/// What ingest answered.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub event_id: String,
    pub duplicate: bool,
    /// The tenant's ingest limit for this second was spent: nothing was stored.
    pub rate_limited: bool,
}

/// A stored event, as `GET …/events/{id}` needs it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub body: String,
    pub endpoint_ids: Vec<String>,
}

impl RedisStore {
    /// KEYS and ARGV of one INGEST script call.
    fn ingest_call(&self, event: &NewEvent) -> (Vec<String>, Vec<String>) {
        let tenant = event.tenant.as_str();
        let now = hookline_actors::now_ms();
        let mut keys = vec![
            self.keys.events_stream(self.keys.partition_of(tenant)),
            self.keys.event(tenant, &event.event_id),
            self.keys.tenant_rate(tenant, now / 1000),
        ];
        // An inbound event is deduplicated on its provider's id within its source, for the
        // source's window; a producer's event on its idempotency key. Neither outlives retention.
        let window_s = match (&event.provider_dedup, &event.idempotency_key) {
            (Some(d), _) => {
                keys.push(self.keys.inbound_dedup(tenant, &d.source_id, &d.provider_id));
                d.window_s.min(self.retention_s).max(1)
            }
            (None, Some(key)) => {
                keys.push(self.keys.idempotency(tenant, key));
                self.idempotency_window_s
            }
            (None, None) => self.idempotency_window_s,
        };
        let oldest_kept = now.saturating_sub(self.retention_s * 1000);
        let args = vec![
            event.event_id.clone(),
            tenant.to_string(),
            event.event_type.clone(),
            event.body.clone(),
            self.retention_s.to_string(),
            window_s.to_string(),
            format!("{oldest_kept}-0"),
            event.only_endpoint.clone().unwrap_or_default(),
            self.tenant_rate_limit_per_s.to_string(),
        ];
        (keys, args)
    }

    fn ingest_reply(reply: Value) -> Result<Ingested> {
        match reply.into_array().as_slice() {
            [id, outcome] => Ok(Ingested {
                event_id: text(id).ok_or_else(|| Error::corrupt("ingest reply"))?,
                duplicate: outcome.as_u64() == Some(1),
                rate_limited: outcome.as_u64() == Some(2),
            }),
            _ => Err(Error::corrupt("ingest reply")),
        }
    }

    /// Store an event durably and append it for routing; with an idempotency key, a key seen
    /// within the window returns the first event's id instead.
    pub async fn ingest(&self, event: &NewEvent) -> Result<Ingested> {
        let (keys, args) = self.ingest_call(event);
        if self.wait_replicas == 0 {
            return Self::ingest_reply(self.eval(&scripts::INGEST, keys, args).await?);
        }
        // WAIT covers the writes of the connection it is sent on: the same client, after.
        let client = self.client();
        let stream = keys[0].clone();
        let reply = scripts::INGEST
            .evalsha_with_reload::<Value, _, _>(client, keys, args)
            .await
            .map_err(Error::from)
            .and_then(Self::ingest_reply)?;
        self.confirm_replicated(client, &stream).await?;
        Ok(reply)
    }

    /// With `redis.wait_replicas`: `Ok` once that many replicas hold every write `client` made
    /// so far (`WAIT`, sent to the master of `key`'s slot), else "not confirmed".
    async fn confirm_replicated(&self, client: &Client, key: &str) -> Result<()> {
        self.confirm_replicated_slots(client, [fred::util::redis_keyslot(key.as_bytes())])
            .await
    }

    /// `confirm_replicated` for writes `client` made to these slots: one `WAIT` per master
    /// that holds any of them (one in all without a cluster), sent at once.
    pub(super) async fn confirm_replicated_slots(
        &self,
        client: &Client,
        slots: impl IntoIterator<Item = u16>,
    ) -> Result<()> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        let mut slots = slots.into_iter().peekable();
        let targets: Vec<u16> = match (client.is_clustered(), client.cached_cluster_state()) {
            (true, Some(state)) => {
                let mut by_master = std::collections::BTreeMap::new();
                for slot in slots {
                    by_master.entry(state.get_server(slot).cloned()).or_insert(slot);
                }
                by_master.into_values().collect()
            }
            (true, None) => slots.collect(),
            (false, _) => slots.peek().copied().into_iter().collect(),
        };
        for confirmed in join_all(targets.into_iter().map(|slot| self.wait_on(client, slot))).await {
            confirmed?;
        }
        Ok(())
    }

    async fn wait_on(&self, client: &Client, slot: u16) -> Result<()> {
        // One attempt only: WAIT resent on a new connection (after a reconnect) would count
        // replicas against that connection's writes, which are none, and confirm at once.
        let once = fred::types::config::Options {
            max_attempts: Some(1),
            ..Default::default()
        };
        let acked: Value = client
            .with_options(&once)
            .custom(
                CustomCommand::new_static("WAIT", ClusterHash::Custom(slot), false),
                vec![self.wait_replicas.to_string(), self.wait_timeout_ms.to_string()],
            )
            .await?;
        let acked = acked.as_u64().unwrap_or(0);
        if acked < u64::from(self.wait_replicas) {
            metrics::counter!(crate::telemetry::names::REPLICA_WAITS_FAILED).increment(1);
            // "Not confirmed": the write may be on the master, but nothing is promised; ingest
            // answers 503 (a retry with the same idempotency key is safe), routing is not
            // acknowledged (routing again creates nothing twice), a record counts as failed.
            return Err(Error::Redis(fred::error::Error::new(
                fred::error::ErrorKind::Timeout,
                format!(
                    "the write reached {acked} of the {} replicas redis.wait_replicas asks for within {} ms",
                    self.wait_replicas, self.wait_timeout_ms
                ),
            )));
        }
        Ok(())
    }

    /// Store many events in one pipelined round trip: the INGEST calls are issued together on
    /// one connection (fred pipelines concurrent commands), in order, so a repeated idempotency
    /// key within the batch is a duplicate of its first use. One result per event, in order.
    pub async fn ingest_batch(&self, events: &[NewEvent]) -> Vec<Result<Ingested>> {
        let client = self.client();
        let calls = events.iter().map(|event| {
            let (keys, args) = self.ingest_call(event);
            async move {
                let reply = scripts::INGEST
                    .evalsha_with_reload::<Value, _, _>(client, keys, args)
                    .await;
                reply.map_err(Error::from).and_then(Self::ingest_reply)
            }
        });
        let mut results = join_all(calls).await;
        // One WAIT for the whole batch (on the connection that carried it); if the replicas do
        // not confirm, no event of it is promised.
        if let (Some(first), true) = (events.first(), self.wait_replicas > 0) {
            let stream = self.keys.events_stream(self.keys.partition_of(&first.tenant));
            if let Err(e) = self.confirm_replicated(client, &stream).await {
                for result in results.iter_mut().filter(|r| r.is_ok()) {
                    *result = Err(e.clone());
                }
            }
        }
        results
    }

    pub async fn get_event(&self, tenant: &str, event_id: &str) -> Result<Option<StoredEvent>> {
        let fields: Vec<Option<String>> = self
            .client()
            .hmget(self.keys.event(tenant, event_id), vec!["body", "eps"])
            .await?;
        let mut it = fields.into_iter();
        let Some(Some(body)) = it.next() else { return Ok(None) };
        let endpoint_ids = it
            .next()
            .flatten()
            .map(|s| s.split(',').filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        Ok(Some(StoredEvent { body, endpoint_ids }))
    }

    /// Is the event still stored (not past retention)?
    pub async fn event_exists(&self, tenant: &str, event_id: &str) -> Result<bool> {
        let n: u64 = self.client().exists(self.keys.event(tenant, event_id)).await?;
        Ok(n == 1)
    }

    /// Ingest an event made by the node itself (e.g. `hookline.endpoint.disabled`).
    pub async fn emit_event(&self, tenant: &str, event_type: &str, data: serde_json::Value) -> Result<String> {
        let event = NewEvent::new(tenant, event_type, &data.to_string(), hookline_actors::now_ms());
        self.ingest(&event).await.map(|i| i.event_id)
    }
}
