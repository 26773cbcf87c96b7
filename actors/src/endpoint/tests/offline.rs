//! The router's and the lease manager's store, which an endpoint actor never uses: every call
//! fails, so a test would see it if one did.

use crate::model::{EndpointConfig, RoutedEvent, StreamEvent};
use crate::store::{LeaseStore, RouterStore, StoreError, StoreResult};

pub(crate) struct Offline;

fn offline<T>() -> StoreResult<T> {
    Err(StoreError::unavailable("not part of an endpoint actor test"))
}

#[async_trait::async_trait]
impl RouterStore for Offline {
    async fn read_events(&self, _: u32, _: &str, _: bool, _: usize, _: u64) -> StoreResult<Vec<StreamEvent>> {
        offline()
    }
    async fn claim_stale_events(&self, _: u32, _: &str, _: u64, _: usize) -> StoreResult<Vec<StreamEvent>> {
        offline()
    }
    async fn route(&self, _: &[RoutedEvent]) -> StoreResult<()> {
        offline()
    }
    async fn load_endpoints(&self) -> StoreResult<Vec<EndpointConfig>> {
        offline()
    }
    async fn get_endpoint(&self, _: &str) -> StoreResult<Option<EndpointConfig>> {
        offline()
    }
    async fn tenant_versions(&self, _: &[String]) -> StoreResult<Vec<u64>> {
        offline()
    }
    async fn event_bodies(&self, _: &[(String, String)]) -> StoreResult<Vec<Option<String>>> {
        offline()
    }
    async fn tenant_endpoints(&self, _: &str) -> StoreResult<Vec<EndpointConfig>> {
        offline()
    }
}

#[async_trait::async_trait]
impl LeaseStore for Offline {
    async fn heartbeat(&self, _: &str, _: u64) -> StoreResult<(usize, usize)> {
        offline()
    }
    async fn hold_lease(&self, _: u32, _: &str, _: u64) -> StoreResult<Option<u64>> {
        offline()
    }
    async fn renew_lease(&self, _: u32, _: &str, _: u64) -> StoreResult<bool> {
        offline()
    }
    async fn release_lease(&self, _: u32, _: &str) -> StoreResult<()> {
        offline()
    }
    async fn leave(&self, _: &str) -> StoreResult<()> {
        offline()
    }
    async fn due_page(&self, _: u32, _: usize, _: usize) -> StoreResult<Vec<(String, u64)>> {
        offline()
    }
    async fn announce_work(&self, _: &[(String, u32)]) -> StoreResult<()> {
        offline()
    }
}
