//! The router: reads the events stream through a consumer group (so any node routes), matches
//! each event against the subscription index, writes one delivery per matched endpoint into that
//! endpoint's durable queue, and acks the events only after those writes
//! (`Store::route`). Delivery ids are a function of (event, endpoint) and routing creates
//! nothing that already exists, so re-reading an event after a crash is harmless.
//!
//! The router never holds work in memory beyond one batch: what it has not acked stays in the
//! stream's pending list, re-read first when it restarts (`pending` phase), or claimed by another
//! node's router once it has been idle for `router_claim_idle_ms`.
//!
//! Reading is pipelined with routing: while a batch of new entries is being routed, the next
//! read is already under way (`ahead`), so the stream read's round trip (or its wait for new
//! entries) overlaps the routing writes. The acks stay after the writes they cover: a batch
//! read ahead is routed, and acked, only after the one before; if routing fails, the batch
//! read ahead is dropped unrouted and re-read from the pending list with the failed one.
//!
//! One router per events partition (`router.partitions`), each with its own blocking read and
//! its own subscription index. Partition 0's router keeps the node's shared index (the API and
//! the sampler read it) and alone tells the shards about endpoint changes; the others keep a
//! private copy, so no router can overwrite a newer view of a tenant that another just loaded.

use crate::ctx::Ctx;
use crate::filter;
use crate::matching::SubscriptionIndex;
use crate::model::{RoutedEvent, StreamEvent};
use crate::shards::ShardsMsg;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const RETRY_AFTER_ERROR: Duration = Duration::from_millis(500);

pub enum RouterMsg {
    Poll,
    Claim,
    Resync,
    EndpointChanged(String),
}

pub struct Router;

pub struct RouterArgs {
    pub ctx: Arc<Ctx>,
    pub shards: ActorRef<ShardsMsg>,
    pub partition: u32,
}

pub struct RouterState {
    ctx: Arc<Ctx>,
    shards: ActorRef<ShardsMsg>,
    partition: u32,
    /// The subscription index this router matches against (see the module docs).
    index: Arc<SubscriptionIndex>,
    /// Re-reading this consumer's own unacked entries (after a restart) before new ones.
    pending_phase: bool,
    /// The subscription index has been loaded once. Until then nothing is read from the
    /// stream: routing against an empty index would ack events to no endpoint and lose them.
    synced: bool,
    /// The version of each tenant's endpoints the index reflects, and the newest
    /// `updated_at_ms` among them then (see `refresh_tenants`).
    versions: std::collections::HashMap<String, (u64, u64)>,
    /// The next read of new entries, started while the batch before it is being routed.
    ahead: Option<tokio::task::JoinHandle<Result<Vec<StreamEvent>, crate::StoreError>>>,
}

impl Router {
    /// For each event routed by subscription (not a test send), in order: its content where a
    /// content filter of its tenant may look at it (one round trip for the batch's bodies),
    /// else `None`. An event whose body is gone (past retention) has no content: filters are
    /// then not applied to it.
    async fn contents(state: &RouterState, events: &[StreamEvent]) -> Result<Vec<Option<Value>>, crate::StoreError> {
        let routed = events.iter().filter(|e| e.only_endpoint.is_none());
        let wanted: Vec<bool> = routed
            .clone()
            .map(|e| state.index.needs_content(&e.tenant, &e.event_type))
            .collect();
        if !wanted.contains(&true) {
            return Ok(vec![None; wanted.len()]);
        }
        let keys: Vec<(String, String)> = routed
            .zip(&wanted)
            .filter(|(_, w)| **w)
            .map(|(e, _)| (e.tenant.clone(), e.event_id.clone()))
            .collect();
        let mut bodies = state.ctx.stores.router.event_bodies(&keys).await?.into_iter();
        Ok(wanted
            .into_iter()
            .map(|w| match w {
                true => bodies.next().flatten().and_then(|body| filter::content(&body)),
                false => None,
            })
            .collect())
    }

    /// Make the index current for the tenants of a batch before matching it. Endpoint changes
    /// reach routers by notification, which may come after an event ingested later: a router
    /// could then match that event against an index without the new endpoint and ack it to
    /// nobody. Each change bumps its tenant's version in Redis before the API answers, so a
    /// version read after the batch was read covers every change made before its events were
    /// ingested; a tenant whose version moved is reloaded.
    async fn refresh_tenants(state: &mut RouterState, events: &[StreamEvent]) -> Result<(), crate::StoreError> {
        let mut tenants: Vec<String> = events.iter().map(|e| e.tenant.clone()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        tenants.retain(|t| !t.is_empty());
        let versions = state.ctx.stores.router.tenant_versions(&tenants).await?;
        for (tenant, version) in tenants.into_iter().zip(versions) {
            let seen = state.versions.get(&tenant).copied();
            if seen.is_some_and(|(v, _)| v == version) {
                continue;
            }
            let endpoints = state.ctx.stores.router.tenant_endpoints(&tenant).await?;
            let ctx = state.ctx.clone();
            state.index.replace_tenant(&tenant, &endpoints, |id| ctx.shard_of(id));
            // An endpoint changed since the last reload: its running actor (one lingering for
            // more, say) takes the change before this batch's wake reaches it (the messages go
            // the same way, in order), not whenever the change notification comes.
            let newest_seen = seen.map_or(u64::MAX, |(_, newest)| newest);
            for cfg in endpoints.iter().filter(|cfg| cfg.updated_at_ms > newest_seen) {
                let shard = ctx.shard_of(&cfg.id);
                state
                    .shards
                    .send_message(ShardsMsg::ConfigChanged(cfg.id.clone(), shard))
                    .ok();
            }
            let newest = endpoints.iter().map(|cfg| cfg.updated_at_ms).max().unwrap_or(0);
            state
                .versions
                .insert(tenant, (version, newest.max(seen.map_or(0, |(_, n)| n))));
        }
        Ok(())
    }

    /// One read of the partition: this consumer's own unacked entries (`pending`, no wait), or
    /// new ones (waiting up to `router_block_ms`).
    async fn read(ctx: &Ctx, partition: u32, pending: bool) -> Result<Vec<StreamEvent>, crate::StoreError> {
        let settings = &ctx.settings;
        let block = if pending { 0 } else { settings.router_block_ms };
        let router = &ctx.stores.router;
        router
            .read_events(partition, &settings.node_id, pending, settings.router_batch, block)
            .await
    }

    async fn route_batch(state: &mut RouterState, events: Vec<StreamEvent>) -> Result<(), crate::StoreError> {
        Self::refresh_tenants(state, &events).await?;
        let mut contents = Self::contents(state, &events).await?.into_iter();
        let routed: Vec<RoutedEvent> = events
            .into_iter()
            .map(|event| {
                let endpoints = match &event.only_endpoint {
                    Some(only) => state.index.endpoint_of(&event.tenant, only).into_iter().collect(),
                    None => {
                        let content = contents.next().flatten();
                        state.index.matching(&event.tenant, &event.event_type, content.as_ref())
                    }
                };
                RoutedEvent { event, endpoints }
            })
            .collect();
        state.ctx.stores.router.route(&routed).await?;
        // Each endpoint once, however many of the batch's events it takes, with their ids (an
        // actor that pulled them all already need not look again: `endpoint/recent.rs`).
        let mut by_endpoint: HashMap<(String, u32), Vec<String>> = HashMap::new();
        for r in routed {
            for endpoint in r.endpoints {
                by_endpoint.entry(endpoint).or_default().push(r.event.event_id.clone());
            }
        }
        let woken: Vec<(String, u32, Vec<String>)> = by_endpoint
            .into_iter()
            .map(|((id, shard), events)| (id, shard, events))
            .collect();
        if !woken.is_empty() {
            state.shards.send_message(ShardsMsg::Wake(woken)).ok();
        }
        Ok(())
    }
}

impl Actor for Router {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = RouterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RouterMsg>,
        args: RouterArgs,
    ) -> Result<RouterState, ActorProcessingErr> {
        // Poll starts after the first successful resync.
        myself.send_message(RouterMsg::Resync)?;
        let claim_every = Duration::from_millis((args.ctx.settings.router_claim_idle_ms / 2).max(500));
        myself.send_interval(claim_every, || RouterMsg::Claim);
        let resync_every = Duration::from_millis(args.ctx.settings.resync_interval_ms.max(1_000));
        myself.send_interval(resync_every, || RouterMsg::Resync);
        let index = if args.partition == 0 {
            args.ctx.index.clone()
        } else {
            Arc::new(SubscriptionIndex::new())
        };
        Ok(RouterState {
            ctx: args.ctx,
            shards: args.shards,
            partition: args.partition,
            index,
            pending_phase: true,
            synced: false,
            versions: std::collections::HashMap::new(),
            ahead: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RouterMsg>,
        msg: RouterMsg,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        let settings = &state.ctx.settings;
        match msg {
            RouterMsg::Poll => {
                let read = match state.ahead.take() {
                    Some(ahead) => ahead
                        .await
                        .unwrap_or_else(|e| Err(crate::StoreError::unavailable(&format!("read ahead: {e}")))),
                    None => Self::read(&state.ctx, state.partition, state.pending_phase).await,
                };
                match read {
                    Ok(events) if events.is_empty() => {
                        state.pending_phase = false;
                        myself.send_message(RouterMsg::Poll)?;
                    }
                    Ok(events) => {
                        if !state.pending_phase {
                            let (ctx, partition) = (state.ctx.clone(), state.partition);
                            state.ahead = Some(tokio::spawn(async move { Self::read(&ctx, partition, false).await }));
                        }
                        match Self::route_batch(state, events).await {
                            Ok(()) => myself.send_message(RouterMsg::Poll)?,
                            Err(e) => {
                                tracing::warn!(partition = state.partition, error = %e, "routing failed; will re-read the batch");
                                // What was not acked is re-read from the pending list, the batch
                                // read ahead included (it is never routed before this one).
                                if let Some(ahead) = state.ahead.take() {
                                    ahead.abort();
                                }
                                state.pending_phase = true;
                                myself.send_after(RETRY_AFTER_ERROR, || RouterMsg::Poll);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(partition = state.partition, error = %e, "reading the events stream failed");
                        myself.send_after(RETRY_AFTER_ERROR, || RouterMsg::Poll);
                    }
                }
            }
            RouterMsg::Claim if !state.synced => {}
            RouterMsg::Claim => {
                let claimed = state
                    .ctx
                    .stores
                    .router
                    .claim_stale_events(
                        state.partition,
                        &settings.node_id,
                        settings.router_claim_idle_ms,
                        settings.router_batch,
                    )
                    .await;
                match claimed {
                    Ok(events) if !events.is_empty() => {
                        tracing::info!(
                            partition = state.partition,
                            count = events.len(),
                            "routing events a dead consumer left behind"
                        );
                        if let Err(e) = Self::route_batch(state, events).await {
                            tracing::warn!(error = %e, "routing claimed events failed");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "claiming stale events failed"),
                }
            }
            RouterMsg::Resync => match state.ctx.stores.router.load_endpoints().await {
                Ok(endpoints) => {
                    let ctx = state.ctx.clone();
                    let changed = state.index.replace_all(&endpoints, |id| ctx.shard_of(id));
                    if !state.synced {
                        state.synced = true;
                        myself.send_message(RouterMsg::Poll)?;
                    } else if state.partition == 0 {
                        // Changes whose notification this node missed reach running actors too.
                        for id in changed {
                            let shard = state.ctx.shard_of(&id);
                            state.shards.send_message(ShardsMsg::ConfigChanged(id, shard)).ok();
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "subscription resync failed");
                    if !state.synced {
                        myself.send_after(RETRY_AFTER_ERROR, || RouterMsg::Resync);
                    }
                }
            },
            RouterMsg::EndpointChanged(id) => {
                match state.ctx.stores.router.get_endpoint(&id).await {
                    Ok(Some(cfg)) => state.index.upsert(&cfg, state.ctx.shard_of(&id)),
                    Ok(None) => state.index.remove(&id),
                    Err(e) => {
                        tracing::warn!(error = %e, endpoint_id = %id, "endpoint reload failed; the next resync repairs it")
                    }
                }
                if state.partition == 0 {
                    let shard = state.ctx.shard_of(&id);
                    state.shards.send_message(ShardsMsg::ConfigChanged(id, shard)).ok();
                }
            }
        }
        Ok(())
    }
}
