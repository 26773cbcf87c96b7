//! Shard leases: which endpoints this node works.
//!
//! Endpoints are split into `shard_count` shards. A node works a shard only while it holds the
//! shard's lease in Redis (set-if-absent with expiry; see `lease::LeaseTiming`). Live nodes
//! announce themselves by heartbeat; each aims at its fair share (`shard::fair_share`: the shard
//! count divided by the live nodes, one more for the first nodes by id), takes free
//! ones up to that share and gives back extras. A shard given back is *drained* first — its
//! endpoint actors start nothing new and finish what is in flight, or have it aborted at the
//! drain timeout — and its lease is renewed all the while, so two nodes never have attempts in
//! flight for one endpoint. Drains run beside this actor, never inside a handler, so lease
//! renewal never waits for a slow receiver. A lone node holds every shard.

use crate::ctx::Ctx;
use crate::shard_owner::{ShardOwner, ShardOwnerArgs, ShardOwnerMsg};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub enum ShardsMsg {
    Tick,
    /// New work for these `(endpoint id, shard, event ids)`, routed by this node: the owners of
    /// shards held elsewhere are told through the store (`LeaseStore::announce_work`).
    Wake(Vec<(String, u32, Vec<String>)>),
    /// New work another node announced: only shards held here are woken.
    Woken(Vec<(String, u32)>),
    ConfigChanged(String, u32),
    /// A shard being given back has drained: release its lease.
    Drained(u32),
    Shutdown(RpcReplyPort<()>),
}

pub struct Shards;

pub struct ShardsState {
    ctx: Arc<Ctx>,
    owned: BTreeMap<u32, ActorRef<ShardOwnerMsg>>,
    /// Shards draining before their lease is released; their leases are still renewed.
    releasing: BTreeSet<u32>,
    stopping: bool,
}

/// Drain a shard owner (bounded by the drain timeout), then stop it: stopping kills its
/// endpoint actors, which aborts any attempt still running.
async fn drain(owner: ActorRef<ShardOwnerMsg>, timeout: Duration) {
    if let Err(e) = owner.call(ShardOwnerMsg::Drain, Some(timeout)).await {
        tracing::warn!(error = %e, "a shard did not drain in time; aborting its attempts");
    }
    owner.stop_and_wait(None, Some(Duration::from_secs(2))).await.ok();
}

impl ShardsState {
    /// Wake the endpoints of the shards held here (with the ids of the new deliveries, when
    /// known); returns the pairs of shards held elsewhere.
    fn wake(&self, work: Vec<(String, u32, Vec<String>)>) -> Vec<(String, u32)> {
        let mut elsewhere = Vec::new();
        for (endpoint_id, shard, routed) in work {
            match self.owned.get(&shard) {
                Some(owner) => {
                    owner.send_message(ShardOwnerMsg::Wake(endpoint_id, routed)).ok();
                }
                None => elsewhere.push((endpoint_id, shard)),
            }
        }
        elsewhere
    }

    fn node_id(&self) -> &str {
        &self.ctx.settings.node_id
    }

    fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.ctx.settings.drain_timeout_ms)
    }

    async fn release(&self, shard: u32) {
        self.ctx.leases.revoke(shard);
        if let Err(e) = self.ctx.stores.leases.release_lease(shard, self.node_id()).await {
            tracing::warn!(shard, error = %e, "lease release failed; it will expire");
        }
    }

    /// Renew every lease this node holds or is still draining; stop work on lost ones. A lease
    /// that lapsed counts as lost even if nobody took it: the node was paused or cut off long
    /// enough for another to own the shard meanwhile, so its actors start afresh.
    async fn renew(&mut self) -> Result<(), crate::StoreError> {
        let (store, ttl) = (
            self.ctx.stores.leases.clone(),
            self.ctx.settings.lease_timing().expiry_ms,
        );
        let held: Vec<u32> = self.owned.keys().chain(self.releasing.iter()).copied().collect();
        // All at once: one round trip for every lease, so a busy node or Redis does not let the
        // last of many shards lapse while the first ones are renewed.
        let mut renewals = tokio::task::JoinSet::new();
        for shard in held {
            let (store, node_id, sent) = (store.clone(), self.node_id().to_string(), self.ctx.now_ms());
            renewals.spawn(async move { (shard, sent, store.renew_lease(shard, &node_id, ttl).await) });
        }
        let mut failed = None;
        while let Some(joined) = renewals.join_next().await {
            // A renewal that panicked is an unknown outcome, like an error: its last deadline
            // stands, and the other shards' outcomes are still taken.
            let Ok((shard, sent, renewed)) = joined else {
                failed = Some(crate::StoreError::unavailable("a lease renewal panicked"));
                continue;
            };
            match renewed {
                Ok(true) => self.ctx.leases.renewed(shard, sent),
                Ok(false) => {
                    self.ctx.leases.revoke(shard);
                    tracing::warn!(shard, "lost the lease of a shard; stopping its work");
                    if let Some(owner) = self.owned.remove(&shard) {
                        owner.stop(Some("lease lost".into()));
                    }
                    self.releasing.remove(&shard);
                }
                // On an error it is unknown whether the lease was renewed: the last deadline stands.
                Err(e) => failed = Some(e),
            }
        }
        failed.map_or(Ok(()), Err)
    }

    async fn lease_cycle(&mut self, myself: &ActorRef<ShardsMsg>) -> Result<(), crate::StoreError> {
        let ctx = self.ctx.clone();
        let s = &ctx.settings;
        let expiry_ms = s.lease_timing().expiry_ms;
        let (live, rank) = ctx.stores.leases.heartbeat(&s.node_id, expiry_ms).await?;
        let target = crate::shard::fair_share(s.shard_count, live, rank);
        self.renew().await?;

        while self.owned.len() > target {
            let Some((shard, owner)) = self.owned.pop_last() else {
                break;
            };
            tracing::info!(shard, target, "giving a shard back to rebalance");
            self.releasing.insert(shard);
            let (timeout, notify) = (self.drain_timeout(), myself.clone());
            tokio::spawn(async move {
                drain(owner, timeout).await;
                notify.send_message(ShardsMsg::Drained(shard)).ok();
            });
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
                if self.owned.contains_key(&shard) || self.releasing.contains(&shard) {
                    continue;
                }
                let sent = ctx.now_ms();
                if let Some(epoch) = ctx.stores.leases.hold_lease(shard, &s.node_id, expiry_ms).await? {
                    ctx.leases.set_epoch(shard, epoch);
                    ctx.leases.renewed(shard, sent);
                    let args = ShardOwnerArgs {
                        ctx: ctx.clone(),
                        shard,
                        epoch,
                    };
                    match Actor::spawn_linked(None, ShardOwner, args, myself.get_cell()).await {
                        Ok((owner, _)) => {
                            self.owned.insert(shard, owner);
                        }
                        Err(e) => {
                            tracing::error!(shard, error = %e, "could not start a shard owner");
                            self.release(shard).await;
                        }
                    }
                }
            }
        }
        metrics::gauge!(crate::names::SHARDS_OWNED).set(self.owned.len() as f64);
        Ok(())
    }

    /// Drain every shard at once while renewing their leases, then release them all.
    async fn shut_down(&mut self) {
        let owned = std::mem::take(&mut self.owned);
        self.releasing.extend(owned.keys().copied());
        let timeout = self.drain_timeout();
        let mut drains = tokio::task::JoinSet::new();
        for owner in owned.into_values() {
            drains.spawn(drain(owner, timeout));
        }
        let mut renewal = tokio::time::interval(Duration::from_millis(self.ctx.settings.lease_timing().cycle_ms));
        loop {
            tokio::select! {
                next = drains.join_next() => if next.is_none() { break },
                _ = renewal.tick() => {
                    if let Err(e) = self.renew().await {
                        tracing::warn!(error = %e, "renewing leases during shutdown failed");
                    }
                }
            }
        }
        for shard in std::mem::take(&mut self.releasing) {
            self.release(shard).await;
        }
        self.ctx.stores.leases.leave(self.node_id()).await.ok();
    }
}

impl Actor for Shards {
    type Msg = ShardsMsg;
    type State = ShardsState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(&self, myself: ActorRef<ShardsMsg>, ctx: Arc<Ctx>) -> Result<ShardsState, ActorProcessingErr> {
        myself.send_message(ShardsMsg::Tick)?;
        myself.send_interval(Duration::from_millis(ctx.settings.lease_timing().cycle_ms), || {
            ShardsMsg::Tick
        });
        Ok(ShardsState {
            ctx,
            owned: BTreeMap::new(),
            releasing: BTreeSet::new(),
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
                let elsewhere = state.wake(pairs);
                if !elsewhere.is_empty() {
                    let store = state.ctx.stores.leases.clone();
                    tokio::spawn(async move {
                        if let Err(e) = store.announce_work(&elsewhere).await {
                            tracing::debug!(error = %e, "announcing work failed; the due poll will find it");
                        }
                    });
                }
            }
            ShardsMsg::Woken(pairs) => {
                state.wake(pairs.into_iter().map(|(id, shard)| (id, shard, Vec::new())).collect());
            }
            ShardsMsg::ConfigChanged(endpoint_id, shard) => {
                if let Some(owner) = state.owned.get(&shard) {
                    owner.send_message(ShardOwnerMsg::ConfigChanged(endpoint_id)).ok();
                }
            }
            ShardsMsg::Drained(shard) => {
                if state.releasing.remove(&shard) {
                    state.release(shard).await;
                }
            }
            ShardsMsg::Shutdown(reply) => {
                state.stopping = true;
                state.ctx.ready.store(false, Ordering::Relaxed);
                state.shut_down().await;
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
                state.release(shard).await;
            }
            if !state.stopping {
                myself.send_message(ShardsMsg::Tick).ok();
            }
        }
        Ok(())
    }
}
