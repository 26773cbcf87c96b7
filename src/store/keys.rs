//! Every Redis key of the node, built in one place. All keys start with `redis.prefix`.
//!
//! Hash tags keep the keys that one script touches in one cluster slot:
//! - `{ev0}` — the events stream, event records and idempotency keys (ingest appends all three
//!   atomically). One partition for now; the tag leaves room for more.
//! - `{sh<N>}` — shard N's lease and due set and the queue, delivery records and dead letters of
//!   every endpoint in shard N (so routing, recording and going idle are single-slot scripts).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{ev0}:events` | stream | `e` event id, `t` tenant, `y` type; consumer group `router` |
//! | `P:{ev0}:evt:<evt>` | hash, TTL retention | `body` (the exact JSON receivers get), `eps` (routed endpoint ids) |
//! | `P:{ev0}:idem:<tenant>:<sha256(key)>` | string, TTL window | the event id first stored under the key |
//! | `P:{ev0}:rate:<tenant>:<unix second>` | counter, TTL 2 s | events the tenant ingested that second (ingest limit) |
//! | `P:endpoints` | hash | endpoint id → config JSON |
//! | `P:t:<tenant>:endpoints` | zset | endpoint ids by creation time |
//! | `P:t:<tenant>:ver` | counter | bumped at every change to the tenant's endpoints (routers reload on a new value) |
//! | `P:apikeys` | hash | sha256(key) → `{tenant, id}` |
//! | `P:nodes` | zset | node id → last heartbeat (ms) |
//! | `P:changes` | pub/sub channel | endpoint ids whose config changed |
//! | `P:{shN}:lease` | string, PX TTL | holder node id |
//! | `P:{shN}:epoch` | counter | lease acquisitions of shard N: with the holder, the fencing token `node#epoch` |
//! | `P:{shN}:due` | zset | endpoint id → earliest due time of its queue (ms) |
//! | `P:{shN}:ep:<ep>:q` | zset | event ids of pending deliveries → due time (ms) |
//! | `P:{shN}:ep:<ep>:d:<evt>` | hash, TTL retention | delivery status, attempts, `a<N>` attempt logs |
//! | `P:{shN}:ep:<ep>:dead` | zset | dead-lettered event ids → time |
//! | `P:{shN}:ep:<ep>:health` | string | breaker state and start of the current failure run (JSON) |
//! | `P:{shN}:ep:<ep>:log` | zset | event ids of every delivery → ingest order (the delivery list; trimmed by the janitor) |
//! | `P:{shN}:ep:<ep>:dropped` | zset, TTL retention | a deleted endpoint's pending deliveries, until the janitor marks their records dead |
//! | `P:dropping` | set | `<shard>:<ep>` of deleted endpoints whose `dropped` set the janitor still has to work off |
//! | `P:janitor:lock` | string, PX TTL | the node running this janitor pass |
//! | `P:janitor:cursor` | string | where the janitor's walk over the endpoints continues (HSCAN cursor) |

use sha2::{Digest, Sha256};

pub const ROUTER_GROUP: &str = "router";

#[derive(Debug, Clone)]
pub struct Keys {
    p: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self { p: prefix.to_string() }
    }

    pub fn events_stream(&self) -> String {
        format!("{}:{{ev0}}:events", self.p)
    }
    pub fn event(&self, event_id: &str) -> String {
        format!("{}:{{ev0}}:evt:{event_id}", self.p)
    }
    pub fn idempotency(&self, tenant: &str, key: &str) -> String {
        format!(
            "{}:{{ev0}}:idem:{tenant}:{}",
            self.p,
            hex(&Sha256::digest(key.as_bytes()))
        )
    }
    /// Events a tenant ingested in one wall-clock second (for the ingest limit).
    pub fn tenant_rate(&self, tenant: &str, second: u64) -> String {
        format!("{}:{{ev0}}:rate:{tenant}:{second}", self.p)
    }
    pub fn endpoints(&self) -> String {
        format!("{}:endpoints", self.p)
    }
    pub fn tenant_endpoints(&self, tenant: &str) -> String {
        format!("{}:t:{tenant}:endpoints", self.p)
    }
    /// Bumped at every change to the tenant's endpoints (routers compare it before routing).
    pub fn tenant_version(&self, tenant: &str) -> String {
        format!("{}:t:{tenant}:ver", self.p)
    }
    pub fn api_keys(&self) -> String {
        format!("{}:apikeys", self.p)
    }
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.p)
    }
    pub fn changes_channel(&self) -> String {
        format!("{}:changes", self.p)
    }
    pub fn lease(&self, shard: u32) -> String {
        format!("{}:{{sh{shard}}}:lease", self.p)
    }
    /// Incremented at every fresh acquisition of the shard's lease (fencing token).
    pub fn lease_epoch(&self, shard: u32) -> String {
        format!("{}:{{sh{shard}}}:epoch", self.p)
    }
    pub fn due(&self, shard: u32) -> String {
        format!("{}:{{sh{shard}}}:due", self.p)
    }
    pub fn queue(&self, shard: u32, endpoint_id: &str) -> String {
        format!("{}:{{sh{shard}}}:ep:{endpoint_id}:q", self.p)
    }
    pub fn delivery(&self, shard: u32, endpoint_id: &str, event_id: &str) -> String {
        format!("{}:{{sh{shard}}}:ep:{endpoint_id}:d:{event_id}", self.p)
    }
    pub fn health(&self, shard: u32, endpoint_id: &str) -> String {
        format!("{}:{{sh{shard}}}:ep:{endpoint_id}:health", self.p)
    }
    pub fn dead_letters(&self, shard: u32, endpoint_id: &str) -> String {
        format!("{}:{{sh{shard}}}:ep:{endpoint_id}:dead", self.p)
    }
    /// Every delivery of an endpoint by ingest order, for `GET …/deliveries`.
    pub fn delivery_log(&self, shard: u32, endpoint_id: &str) -> String {
        format!("{}:{{sh{shard}}}:ep:{endpoint_id}:log", self.p)
    }
    pub fn dropped(&self, shard: u32, endpoint_id: &str) -> String {
        format!("{}:{{sh{shard}}}:ep:{endpoint_id}:dropped", self.p)
    }
    pub fn dropping(&self) -> String {
        format!("{}:dropping", self.p)
    }
    pub fn janitor_lock(&self) -> String {
        format!("{}:janitor:lock", self.p)
    }
    pub fn janitor_cursor(&self) -> String {
        format!("{}:janitor:cursor", self.p)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str) -> &str {
        let start = key.find('{').unwrap();
        let end = key[start..].find('}').unwrap() + start;
        &key[start + 1..end]
    }

    #[test]
    fn keys_a_script_touches_share_a_hash_tag() {
        let k = Keys::new("hl");
        assert_eq!(tag(&k.events_stream()), tag(&k.event("evt_x")));
        assert_eq!(tag(&k.events_stream()), tag(&k.idempotency("t", "key")));
        let s = 17;
        for key in [
            k.due(s),
            k.queue(s, "ep_a"),
            k.delivery(s, "ep_a", "evt_b"),
            k.dead_letters(s, "ep_a"),
            k.delivery_log(s, "ep_a"),
            k.dropped(s, "ep_a"),
        ] {
            assert_eq!(tag(&key), tag(&k.lease(s)), "{key}");
            assert!(key.starts_with("hl:"));
        }
    }
}
