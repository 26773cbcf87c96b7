//! Shard leases: which endpoints this node works.
//!
//! Endpoints are split into `shard_count` shards. A node works a shard only while it holds the
//! shard's lease in Redis (set-if-absent with expiry, renewed every third of the TTL). Live nodes
//! announce themselves by heartbeat; each aims at `ceil(shards / live nodes)` leases, takes free
//! ones up to that share and gives back extras — after draining them, so two nodes never have
//! attempts in flight for one endpoint. A lone node holds every shard.

use crate::shard_owner::{ShardOwner, ShardOwnerArgs, ShardOwnerMsg};
use crate::supervisor::Ctx;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub enum ShardsMsg {
    Tick,
    /// New work for these `(endpoint id, shard)` pairs.
    Wake(Vec<(String, u32)>),
    ConfigChanged(String, u32),
    Shutdown(RpcReplyPort<()>),
}

pub struct Shards;

pub struct ShardsState {
    ctx: Arc<Ctx>,
    owned: BTreeMap<u32, ActorRef<ShardOwnerMsg>>,
    stopping: bool,
}

impl ShardsState {
    async fn drain_and_release(&mut self, shard: u32) {
        if let Some(owner) = self.owned.remove(&shard) {
            let timeout = Duration::from_millis(self.ctx.settings.drain_timeout_ms);
            if let Err(e) = owner.call(ShardOwnerMsg::Drain, Some(timeout)).await {
                tracing::warn!(shard, error = %e, "shard did not drain in time");
            }
            owner.stop_and_wait(None, Some(Duration::from_secs(2))).await.ok();
        }
        if let Err(e) = self.ctx.store.release_lease(shard, &self.ctx.settings.node_id).await {
            tracing::warn!(shard, error = %e, "lease release failed; it will expire");
        }
    }

    async fn lease_cycle(&mut self, myself: &ActorRef<ShardsMsg>) -> Result<(), crate::StoreError> {
        let ctx = self.ctx.clone();
        let s = &ctx.settings;
        let store = self.ctx.store.clone();
        let live = store.heartbeat(&s.node_id, s.lease_ttl_ms).await?.max(1);
        let target = (s.shard_count as usize).div_ceil(live);

        let held: Vec<u32> = self.owned.keys().copied().collect();
        for shard in held {
            if !store.hold_lease(shard, &s.node_id, s.lease_ttl_ms).await? {
                tracing::warn!(shard, "lost the lease of a shard; stopping its work");
                if let Some(owner) = self.owned.remove(&shard) {
                    owner.stop(Some("lease lost".into()));
                }
            }
        }
        while self.owned.len() > target {
            let Some(&shard) = self.owned.keys().next_back() else {
                break;
            };
            tracing::info!(shard, target, "giving a shard back to rebalance");
            self.drain_and_release(shard).await;
        }
        if self.owned.len() < target {
            // Start the scan at a node-specific offset so joining nodes do not all race for
            // the same free shards.
            let offset = crate::shard::shard_of(&s.node_id, s.shard_count);
            for i in 0..s.shard_count {
                if self.owned.len() >= target {
                    break;
                }
                let shard = (offset + i) % s.shard_count;
                if self.owned.contains_key(&shard) {
                    continue;
                }
                if store.hold_lease(shard, &s.node_id, s.lease_ttl_ms).await? {
                    let args = ShardOwnerArgs {
                        ctx: self.ctx.clone(),
                        shard,
                    };
                    match Actor::spawn_linked(None, ShardOwner, args, myself.get_cell()).await {
                        Ok((owner, _)) => {
                            self.owned.insert(shard, owner);
                        }
                        Err(e) => {
                            tracing::error!(shard, error = %e, "could not start a shard owner");
                            store.release_lease(shard, &s.node_id).await?;
                        }
                    }
                }
            }
        }
        metrics::gauge!(crate::names::SHARDS_OWNED).set(self.owned.len() as f64);
        Ok(())
    }
}

impl Actor for Shards {
    type Msg = ShardsMsg;
    type State = ShardsState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(&self, myself: ActorRef<ShardsMsg>, ctx: Arc<Ctx>) -> Result<ShardsState, ActorProcessingErr> {
        myself.send_message(ShardsMsg::Tick)?;
        myself.send_interval(Duration::from_millis((ctx.settings.lease_ttl_ms / 3).max(100)), || {
            ShardsMsg::Tick
        });
        Ok(ShardsState {
            ctx,
            owned: BTreeMap::new(),
            stopping: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ShardsMsg>,
        msg: ShardsMsg,
        state: &mut ShardsState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ShardsMsg::Tick if !state.stopping => match state.lease_cycle(&myself).await {
                Ok(()) => state.ctx.ready.store(true, Ordering::Relaxed),
                Err(e) => {
                    state.ctx.ready.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, "lease cycle failed");
                }
            },
            ShardsMsg::Tick => {}
            ShardsMsg::Wake(pairs) => {
                for (endpoint_id, shard) in pairs {
                    if let Some(owner) = state.owned.get(&shard) {
                        owner.send_message(ShardOwnerMsg::Wake(endpoint_id)).ok();
                    }
                }
            }
            ShardsMsg::ConfigChanged(endpoint_id, shard) => {
                if let Some(owner) = state.owned.get(&shard) {
                    owner.send_message(ShardOwnerMsg::ConfigChanged(endpoint_id)).ok();
                }
            }
            ShardsMsg::Shutdown(reply) => {
                state.stopping = true;
                state.ctx.ready.store(false, Ordering::Relaxed);
                let shards: Vec<u32> = state.owned.keys().copied().collect();
                // Drain every shard at once: the slowest attempt bounds the whole shutdown.
                let drains: Vec<_> = shards
                    .iter()
                    .filter_map(|s| state.owned.get(s).cloned())
                    .map(|owner| {
                        let timeout = Duration::from_millis(state.ctx.settings.drain_timeout_ms);
                        tokio::spawn(async move {
                            owner.call(ShardOwnerMsg::Drain, Some(timeout)).await.ok();
                            owner.stop_and_wait(None, Some(Duration::from_secs(2))).await.ok();
                        })
                    })
                    .collect();
                for d in drains {
                    d.await.ok();
                }
                state.owned.clear();
                for shard in shards {
                    state
                        .ctx
                        .store
                        .release_lease(shard, &state.ctx.settings.node_id)
                        .await
                        .ok();
                }
                state.ctx.store.leave(&state.ctx.settings.node_id).await.ok();
                reply.send(()).ok();
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ShardsMsg>,
        evt: SupervisionEvent,
        state: &mut ShardsState,
    ) -> Result<(), ActorProcessingErr> {
        // A shard owner that failed is forgotten and its lease given back; the next lease
        // cycle takes the shard again with a fresh owner that reloads everything from Redis.
        if let SupervisionEvent::ActorFailed(cell, err) = evt {
            let failed: Vec<u32> = state
                .owned
                .iter()
                .filter(|(_, o)| o.get_id() == cell.get_id())
                .map(|(s, _)| *s)
                .collect();
            for shard in failed {
                tracing::error!(shard, error = %err, "shard owner failed; restarting it");
                state.owned.remove(&shard);
                state
                    .ctx
                    .store
                    .release_lease(shard, &state.ctx.settings.node_id)
                    .await
                    .ok();
            }
            if !state.stopping {
                myself.send_message(ShardsMsg::Tick).ok();
            }
        }
        Ok(())
    }
}
