//! `Memory`'s endpoint as its shard's due set holds it, for the shard owner's tests
//! (`shard_owner/tests.rs`): the entry kept as SETTLE_IDLE keeps it, and every look at it.

use super::*;
use crate::store::LeaseStore;

/// The endpoint's entry in its shard's due set, and what the owner and the actor did.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) due: Option<u64>,
    /// The actors' clock, for the times below.
    pub(crate) clock: Option<Arc<TokioClock>>,
    /// When the owner looked at the due set (ms).
    pub(crate) looks: Vec<u64>,
    /// When the actor pulled its queue (ms).
    pub(crate) pulls: Vec<u64>,
}

#[async_trait::async_trait]
impl LeaseStore for Memory {
    async fn heartbeat(&self, n: &str, ttl: u64) -> StoreResult<(usize, usize)> {
        offline::Offline.heartbeat(n, ttl).await
    }
    async fn hold_lease(&self, s: u32, n: &str, ttl: u64) -> StoreResult<Option<u64>> {
        offline::Offline.hold_lease(s, n, ttl).await
    }
    async fn renew_lease(&self, s: u32, n: &str, ttl: u64) -> StoreResult<bool> {
        offline::Offline.renew_lease(s, n, ttl).await
    }
    async fn release_lease(&self, s: u32, n: &str) -> StoreResult<()> {
        offline::Offline.release_lease(s, n).await
    }
    async fn leave(&self, n: &str) -> StoreResult<()> {
        offline::Offline.leave(n).await
    }
    async fn due_page(&self, _: u32, offset: usize, _: usize) -> StoreResult<Vec<(String, u64)>> {
        let mut seen = self.shard.lock().unwrap();
        let now = seen.clock.as_ref().map_or(0, |clock| clock.now_ms());
        seen.looks.push(now);
        Ok(seen
            .due
            .filter(|_| offset == 0)
            .map(|due| ("ep_unit".to_string(), due))
            .into_iter()
            .collect())
    }
    async fn announce_work(&self, pairs: &[(String, u32)]) -> StoreResult<()> {
        offline::Offline.announce_work(pairs).await
    }
}
