//! The node supervisor: the root of the actor tree.
//!
//! ```text
//! NodeSupervisor ─┬─ Router × events partition (restarted on failure; reloads its subscription
//!                 │                      index, re-reads its own unacked stream entries)
//!                 └─ Shards            (restarted on failure; re-takes leases it still holds)
//!                      └─ ShardOwner × leased shard
//!                           └─ EndpointActor × endpoint with work
//! ```
//! A child that fails is restarted from durable state; more than `MAX_RESTARTS` failures in
//! `RESTART_WINDOW` means something is wrong beyond one child, and the supervisor stops so
//! the process exits and its orchestrator can restart it.

use crate::ctx::{Clock, Ctx, NodeSettings, Stores};
use crate::matching::SubscriptionIndex;
use crate::router::{Router, RouterArgs, RouterMsg};
use crate::shards::{Shards, ShardsMsg};
use crate::transport::Transport;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_RESTARTS: usize = 10;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

pub enum NodeMsg {
    EndpointChanged(String),
    /// Another node announced work for these `(endpoint id, shard)` pairs.
    Woken(Vec<(String, u32)>),
    Shutdown(RpcReplyPort<()>),
}

struct NodeSupervisor;

struct NodeState {
    ctx: Arc<Ctx>,
    /// One router per events partition, by partition.
    routers: Vec<ActorRef<RouterMsg>>,
    shards: Option<ActorRef<ShardsMsg>>,
    failures: Vec<Instant>,
    stopping: bool,
}

impl NodeState {
    async fn spawn_router(
        &self,
        myself: &ActorRef<NodeMsg>,
        partition: u32,
    ) -> Result<ActorRef<RouterMsg>, ActorProcessingErr> {
        let shards = self.shards.clone().ok_or("shards actor missing")?;
        let args = RouterArgs {
            ctx: self.ctx.clone(),
            shards,
            partition,
        };
        let (router, _) = Actor::spawn_linked(None, Router, args, myself.get_cell()).await?;
        Ok(router)
    }

    async fn spawn_routers(&mut self, myself: &ActorRef<NodeMsg>) -> Result<(), ActorProcessingErr> {
        for partition in 0..self.ctx.settings.stream_partitions.max(1) {
            let router = self.spawn_router(myself, partition).await?;
            self.routers.push(router);
        }
        Ok(())
    }

    /// Stop every router at once (each may be inside a blocking read of up to
    /// `router.block_ms`), then wait for them together.
    async fn stop_routers(&mut self) {
        let stopping: Vec<_> = self
            .routers
            .drain(..)
            .map(|router| tokio::spawn(async move { router.stop_and_wait(None, Some(Duration::from_secs(5))).await }))
            .collect();
        for stopped in stopping {
            stopped.await.ok();
        }
    }

    async fn spawn_shards(&mut self, myself: &ActorRef<NodeMsg>) -> Result<(), ActorProcessingErr> {
        let (shards, _) = Actor::spawn_linked(None, Shards, self.ctx.clone(), myself.get_cell()).await?;
        self.shards = Some(shards);
        Ok(())
    }
}

impl Actor for NodeSupervisor {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(&self, myself: ActorRef<NodeMsg>, ctx: Arc<Ctx>) -> Result<NodeState, ActorProcessingErr> {
        let mut state = NodeState {
            ctx,
            routers: Vec::new(),
            shards: None,
            failures: Vec::new(),
            stopping: false,
        };
        state.spawn_shards(&myself).await?;
        state.spawn_routers(&myself).await?;
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<NodeMsg>,
        msg: NodeMsg,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeMsg::EndpointChanged(id) => {
                for router in &state.routers {
                    router.send_message(RouterMsg::EndpointChanged(id.clone())).ok();
                }
            }
            NodeMsg::Woken(pairs) => {
                if let Some(shards) = &state.shards {
                    shards.send_message(ShardsMsg::Woken(pairs)).ok();
                }
            }
            NodeMsg::Shutdown(reply) => {
                state.stopping = true;
                state.stop_routers().await;
                if let Some(shards) = state.shards.take() {
                    let timeout = Duration::from_millis(state.ctx.settings.drain_timeout_ms + 2_000);
                    if let Err(e) = shards.call(ShardsMsg::Shutdown, Some(timeout)).await {
                        tracing::warn!(error = %e, "shard shutdown did not finish in time");
                    }
                    shards.stop(None);
                }
                reply.send(()).ok();
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<NodeMsg>,
        evt: SupervisionEvent,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, err) = evt else {
            return Ok(());
        };
        if state.stopping {
            return Ok(());
        }
        let now = Instant::now();
        state.failures.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        state.failures.push(now);
        if state.failures.len() > MAX_RESTARTS {
            tracing::error!(error = %err, "node actors keep failing; stopping the node");
            myself.stop(Some("restart budget exhausted".into()));
            return Ok(());
        }
        let id = cell.get_id();
        if state.shards.as_ref().is_some_and(|s| s.get_id() == id) {
            tracing::error!(error = %err, "shards actor failed; restarting it");
            state.spawn_shards(&myself).await?;
            // The routers hold the shards handle: restart them too so they wake the new one.
            state.stop_routers().await;
            state.spawn_routers(&myself).await?;
        } else if let Some(partition) = state.routers.iter().position(|r| r.get_id() == id) {
            tracing::error!(partition, error = %err, "router failed; restarting it");
            state.routers[partition] = state.spawn_router(&myself, partition as u32).await?;
        }
        Ok(())
    }
}

/// The running node's actors, as the rest of the process sees them.
#[derive(Clone)]
pub struct Node {
    supervisor: ActorRef<NodeMsg>,
    ctx: Arc<Ctx>,
}

impl Node {
    /// Start the actor tree. The returned join handle ends when the supervisor stops.
    pub async fn start(
        stores: Stores,
        transport: Arc<dyn Transport>,
        settings: NodeSettings,
        index: Arc<SubscriptionIndex>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Node, tokio::task::JoinHandle<()>), ractor::SpawnErr> {
        let ctx = Arc::new(Ctx::new(stores, transport, settings, index, clock));
        let (supervisor, join) = Actor::spawn(None, NodeSupervisor, ctx.clone()).await?;
        Ok((Node { supervisor, ctx }, join))
    }

    /// An endpoint was created, changed or deleted (by this node or, via the change channel,
    /// by another): refresh the subscription index and tell a running actor.
    pub fn endpoint_changed(&self, endpoint_id: &str) {
        self.supervisor
            .send_message(NodeMsg::EndpointChanged(endpoint_id.to_string()))
            .ok();
    }

    /// Work for these `(endpoint id, shard)` pairs was announced (routed by another node, or
    /// replayed): the owners of the shards held here start on it.
    pub fn work_announced(&self, pairs: Vec<(String, u32)>) {
        self.supervisor.send_message(NodeMsg::Woken(pairs)).ok();
    }

    /// True once the node takes part in the shard lease cycle.
    pub fn is_ready(&self) -> bool {
        self.ctx.ready.load(Ordering::Relaxed)
    }

    pub fn shard_of(&self, endpoint_id: &str) -> u32 {
        self.ctx.shard_of(endpoint_id)
    }

    /// Stop routing, finish (or hand back) in-flight attempts, give back leases.
    pub async fn shutdown(&self) {
        let timeout = Duration::from_millis(self.ctx.settings.drain_timeout_ms + 5_000);
        if let Err(e) = self.supervisor.call(NodeMsg::Shutdown, Some(timeout)).await {
            tracing::warn!(error = %e, "node shutdown incomplete");
        }
        self.supervisor.stop(None);
    }
}
