//! `redis.wait_replicas`: a step's writes count as done only once that many replicas hold
//! them (`WAIT` after them, on the connection that carried them).
//!
//! `WAIT` counts replicas against the writes of the connection it is sent on. So the step's
//! writes and its `WAIT` go on one client, and the step notes that client's connections before
//! writing: if fred replaced one (a reconnect, a failover) before the `WAIT`, the `WAIT` would
//! count against a new connection's writes, which are none, and confirm at once, even for a
//! write the old master took with it. Such a step is "not confirmed".
//!
//! Limits: the ids are those Redis hands out (`CLIENT ID`), and a Redis restarted in place
//! hands them out from 1 again, so a reconnect to the same address after a restart can go
//! unnoticed (what such a master kept is its persistence's business: README, guarantees). On
//! a Cluster the ids of every master are compared, so a reconnect to any of them during a step
//! makes it "not confirmed" (the safe side: a 503, or routing again later).

use super::{join_all, Error, RedisStore, Result};
use fred::prelude::*;
use fred::types::config::Server;
use fred::types::{ClusterHash, CustomCommand, Value};
use std::collections::HashMap;

/// The one client a step's writes go on, and the connections it had before them.
pub struct Replicated<'a> {
    pub client: &'a Client,
    before: HashMap<Server, i64>,
}

impl RedisStore {
    /// With `redis.wait_replicas`, the client for a step's writes (take it before writing);
    /// `None` without.
    pub fn replicated(&self) -> Option<Replicated<'_>> {
        (self.wait_replicas > 0).then(|| {
            let client = self.client();
            Replicated {
                client,
                before: client.connection_ids(),
            }
        })
    }

    /// `Ok` once `redis.wait_replicas` replicas hold every write made on `on` (one `WAIT` per
    /// master that holds any of these slots, one in all without a cluster, sent at once), and
    /// its connections are still those it wrote on; else "not confirmed".
    pub async fn confirm_replicated(&self, on: &Replicated<'_>, slots: impl IntoIterator<Item = u16>) -> Result<()> {
        let client = on.client;
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
        // fred notes a new connection's id before it sends anything on it, so a WAIT that went
        // on a new connection shows here.
        if client.connection_ids() != on.before {
            return Err(
                self.not_confirmed("the connection to Redis was replaced between the write and its WAIT".into())
            );
        }
        Ok(())
    }

    async fn wait_on(&self, client: &Client, slot: u16) -> Result<()> {
        // One attempt only: WAIT resent on a new connection would confirm nothing.
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
            return Err(self.not_confirmed(format!(
                "the write reached {acked} of the {} replicas redis.wait_replicas asks for within {} ms",
                self.wait_replicas, self.wait_timeout_ms
            )));
        }
        Ok(())
    }

    /// "Not confirmed": the write may be on the master, but nothing is promised; ingest answers
    /// 503 (a retry with the same idempotency key is safe), routing is not acknowledged
    /// (routing again creates nothing twice), a record counts as failed.
    fn not_confirmed(&self, why: String) -> Error {
        metrics::counter!(crate::telemetry::names::REPLICA_WAITS_FAILED).increment(1);
        Error::Redis(fred::error::Error::new(
            fred::error::ErrorKind::Timeout,
            format!("not confirmed by redis.wait_replicas: {why}"),
        ))
    }
}
