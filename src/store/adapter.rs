//! The actors' three store traits on `RedisStore`: each method is the store's own (in the
//! concern's file), its error turned into the actors' `StoreError`.

use super::RedisStore;
use hookline_actors::limiter::BucketRecord;
use hookline_actors::model::{FinishedAttempt, HealthRecord};
use hookline_actors::store::{PulledWindow, Recorded, StoreResult};
use hookline_actors::{EndpointConfig, EndpointStore, LeaseStore, RoutedEvent, RouterStore, StreamEvent};

#[async_trait::async_trait]
impl RouterStore for RedisStore {
    async fn read_events(
        &self,
        partition: u32,
        consumer: &str,
        pending: bool,
        count: usize,
        block_ms: u64,
    ) -> StoreResult<Vec<StreamEvent>> {
        Ok(RedisStore::read_events(self, partition, consumer, pending, count, block_ms).await?)
    }
    async fn claim_stale_events(
        &self,
        partition: u32,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> StoreResult<Vec<StreamEvent>> {
        Ok(RedisStore::claim_stale_events(self, partition, consumer, min_idle_ms, count).await?)
    }
    async fn route(&self, events: &[RoutedEvent]) -> StoreResult<()> {
        Ok(RedisStore::route(self, events).await?)
    }
    async fn load_endpoints(&self) -> StoreResult<Vec<EndpointConfig>> {
        Ok(RedisStore::load_endpoints(self).await?)
    }
    async fn get_endpoint(&self, endpoint_id: &str) -> StoreResult<Option<EndpointConfig>> {
        Ok(RedisStore::get_endpoint(self, endpoint_id).await?)
    }
    async fn tenant_versions(&self, tenants: &[String]) -> StoreResult<Vec<u64>> {
        Ok(RedisStore::tenant_versions(self, tenants).await?)
    }
    async fn tenant_endpoints(&self, tenant: &str) -> StoreResult<Vec<EndpointConfig>> {
        Ok(RedisStore::tenant_endpoints(self, tenant).await?)
    }
    async fn event_bodies(&self, events: &[(String, String)]) -> StoreResult<Vec<Option<String>>> {
        Ok(RedisStore::event_bodies(self, events).await?)
    }
}

#[async_trait::async_trait]
impl LeaseStore for RedisStore {
    async fn heartbeat(&self, node_id: &str, ttl_ms: u64) -> StoreResult<(usize, usize)> {
        Ok(RedisStore::heartbeat(self, node_id, ttl_ms).await?)
    }
    async fn hold_lease(&self, shard: u32, node_id: &str, ttl_ms: u64) -> StoreResult<Option<u64>> {
        Ok(RedisStore::hold_lease(self, shard, node_id, ttl_ms).await?)
    }
    async fn renew_lease(&self, shard: u32, node_id: &str, ttl_ms: u64) -> StoreResult<bool> {
        Ok(RedisStore::renew_lease(self, shard, node_id, ttl_ms).await?)
    }
    async fn release_lease(&self, shard: u32, node_id: &str) -> StoreResult<()> {
        Ok(RedisStore::release_lease(self, shard, node_id).await?)
    }
    async fn leave(&self, node_id: &str) -> StoreResult<()> {
        Ok(RedisStore::leave(self, node_id).await?)
    }
    async fn due_page(&self, shard: u32, offset: usize, limit: usize) -> StoreResult<Vec<(String, u64)>> {
        Ok(RedisStore::due_page(self, shard, offset, limit).await?)
    }
    async fn announce_work(&self, pairs: &[(String, u32)]) -> StoreResult<()> {
        Ok(RedisStore::announce_work(self, pairs).await?)
    }
}

#[async_trait::async_trait]
impl EndpointStore for RedisStore {
    async fn get_endpoint(&self, endpoint_id: &str) -> StoreResult<Option<EndpointConfig>> {
        Ok(RedisStore::get_endpoint(self, endpoint_id).await?)
    }
    async fn pull_window(
        &self,
        endpoint: &EndpointConfig,
        shard: u32,
        now_ms: u64,
        limit: usize,
        exclude: &[String],
    ) -> StoreResult<PulledWindow> {
        Ok(RedisStore::pull_window(self, endpoint, shard, now_ms, limit, exclude).await?)
    }
    async fn record_attempts(
        &self,
        owner: &str,
        endpoint: &EndpointConfig,
        shard: u32,
        finished: &[FinishedAttempt],
    ) -> Vec<StoreResult<Recorded>> {
        let results = RedisStore::record_attempts(self, owner, endpoint, shard, finished).await;
        results.into_iter().map(|r| r.map_err(Into::into)).collect()
    }
    async fn settle_idle(
        &self,
        owner: &str,
        endpoint_id: &str,
        shard: u32,
        paused: bool,
        not_before_ms: u64,
        ordered_head: Option<&str>,
    ) -> StoreResult<Option<u64>> {
        Ok(RedisStore::settle_idle(self, owner, endpoint_id, shard, paused, not_before_ms, ordered_head).await?)
    }
    async fn load_health(&self, endpoint_id: &str, shard: u32) -> StoreResult<HealthRecord> {
        Ok(RedisStore::load_health(self, endpoint_id, shard).await?)
    }
    async fn save_health(
        &self,
        owner: Option<&str>,
        endpoint_id: &str,
        shard: u32,
        health: &HealthRecord,
    ) -> StoreResult<()> {
        Ok(RedisStore::save_health(self, owner, endpoint_id, shard, health).await?)
    }
    async fn load_saved(&self, endpoint_id: &str, shard: u32) -> StoreResult<(HealthRecord, Option<BucketRecord>)> {
        Ok(RedisStore::load_saved(self, endpoint_id, shard).await?)
    }
    async fn save_bucket(
        &self,
        owner: &str,
        endpoint_id: &str,
        shard: u32,
        bucket: &BucketRecord,
        ttl_ms: u64,
    ) -> StoreResult<()> {
        Ok(RedisStore::save_bucket(self, owner, endpoint_id, shard, bucket, ttl_ms).await?)
    }
    async fn emit_event(
        &self,
        tenant: &str,
        event_type: &str,
        data: serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> StoreResult<String> {
        Ok(RedisStore::emit_event(self, tenant, event_type, data, idempotency_key).await?)
    }
    async fn note_dead_letters(
        &self,
        endpoint_id: &str,
        shard: u32,
        reasons: &[(String, u64)],
        interval_s: u64,
    ) -> StoreResult<Option<Vec<(String, u64)>>> {
        Ok(RedisStore::note_dead_letters(self, endpoint_id, shard, reasons, interval_s).await?)
    }
    async fn forget_endpoint(&self, endpoint_id: &str, shard: u32) -> StoreResult<u64> {
        Ok(RedisStore::forget_endpoint(self, endpoint_id, shard).await?)
    }
    async fn disable_endpoint(
        &self,
        endpoint_id: &str,
        seen_at_ms: u64,
        reason: &str,
    ) -> StoreResult<Option<EndpointConfig>> {
        Ok(RedisStore::disable_endpoint(self, endpoint_id, seen_at_ms, reason).await?)
    }
}
