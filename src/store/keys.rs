//! Every Redis key of the node, built in one place. All keys start with `redis.prefix`.
//!
//! Hash tags keep the keys that one script touches in one cluster slot:
//! - `{ev<P>}` — partition P of the events: its stream, the event records, idempotency keys and
//!   ingest-rate counters of the tenants it holds (ingest appends them atomically). A tenant's
//!   partition is FNV-1a(tenant) mod `router.partitions`, so one tenant's events are in one
//!   stream, in one total order (ordered endpoints rely on it), and its idempotency keys and
//!   rate counter sit beside them. On Redis Cluster the partitions spread over the masters.
//! - `{sh<N>}` — shard N's lease and due set and the queue, delivery records and dead letters of
//!   every endpoint in shard N (so routing, recording and going idle are single-slot scripts).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{evP}:events` | stream | `e` event id, `t` tenant, `y` type, `o` only endpoint (test sends), `c` trace context (traced events); consumer group `router` |
//! | `P:{evP}:evt:<evt>` | string, TTL retention | the exact JSON body receivers get, or `#` + JSON `{se, md, tc}` + newline + the body when the event has schema errors flagged under `validation: warn` (`se`), metadata (`md`) or a trace context (`tc`, `traces::Stored`) (`event_record.rs`); events stored before this layout are hashes of those fields plus `eps` (routed endpoint ids, events stored before `routed` lists), read as such |
//! | `P:{evP}:routed:<minute>` | hash, TTL retention + 2 min | event id (ingested in that minute, by its id's time) → the endpoint ids it was routed to (ACK_ROUTED) |
//! | `P:{evP}:idem:<tenant>:<sha256(key)>` | string, TTL window | the event id first stored under the key |
//! | `P:{evP}:rate:<tenant>:<unix second>` | counter, TTL 2 s | events the tenant ingested that second (ingest limit) |
//! | `P:{evP}:dedup:<src>:<sha256(provider id)>` | string, TTL the source's window | the event id first stored for an inbound delivery |
//! | `P:{evP}:srate:<src>:<unix second>` | counter, TTL 2 s | requests a source took that second (its `rate_limit_per_s`) |
//! | `P:keycheck` | string | a constant sealed under the deployment's first encryption key: a node whose keys cannot open it refuses to start |
//! | `P:layout` | hash | `shards` and `partitions` of the deployment, set by the first node (others must match) |
//! | `P:endpoints` | hash | endpoint id → config JSON |
//! | `P:t:<tenant>:endpoints` | zset | endpoint ids by creation time |
//! | `P:t:<tenant>:ver` | counter | bumped at every change to the tenant's endpoints (routers reload on a new value) |
//! | `P:sources` | hash | source id → config JSON (inbound gateway) |
//! | `P:t:<tenant>:sources` | zset | source ids by creation time |
//! | `P:src:<src>:rejections` | list, ≤ 100 | the source's last refused requests (JSON), newest first |
//! | `P:{src:<src>}:rej:<minute>` | counter, EX 120 s | the source's refused requests in that minute (`store::notices`) |
//! | `P:{src:<src>}:rej-gate` | string, EX `notifications.source_rejection_interval_s` | a `hookline.source.rejections` notice went out within the interval |
//! | `P:event_types` | hash | `<tenant>/<name>` → event type JSON (its schemas) |
//! | `P:t:<tenant>:event_types` | zset | `<tenant>/<name>`, score 0 (1 once archived): listed by name |
//! | `P:tenant_settings` | hash | tenant → settings JSON (`validation`) |
//! | `P:catalogue:version` | counter | bumped at every change of event types or settings (a node that sees it move compares the versions of the tenants it holds); channel `P:catalogue` announces the tenant |
//! | `P:catalogue:versions` | hash | tenant → its catalogue version |
//! | `P:apikeys` | hash | sha256(key) → `{tenant, id, name, scopes, expires_at_ms, allowed_ips, prefix}` |
//! | `P:t:<tenant>:keys` | hash | key id → sha256(key) (listing, revoking) |
//! | `P:t:<tenant>:portal` | hash | portal session id → sha256(token) (revoking them all) |
//! | `P:console:<sha256(session id)>` | string, TTL the session's life | a console sign-in: `{admin, csrf}` |
//! | `P:t:<tenant>:portal:revoked` | string, TTL 8 d | when the tenant's sessions were last all revoked (ms): none created by then works |
//! | `P:portal:expiry` | zset | sha256(token) of every portal session → when it expires (ms; the janitor removes it then) |
//! | `P:apikeys:used` | hash | key id → last use (ms), written at most once a minute per node |
//! | `P:audit:{P:endpoints}`, `P:audit:{P:sources}`, `P:audit:{P:apikeys}` | stream, trimmed to `retention.audit_days` | audit entries (`j`: JSON) of changes to that hash's records, every tenant; the hash's name is the tag, so its slot is the hash's own |
//! | `P:audit:{<hash>}:<tenant>` | stream | the same entries of one tenant (same ids) |
//! | `P:audit:tenants` | set | tenants with audit streams (the janitor trims theirs) |
//! | `P:audit:cursor` | string | where the janitor's walk over those tenants continues (SSCAN cursor) |
//! | `P:nodes` | zset | node id → last heartbeat (ms) |
//! | `P:changes` | pub/sub channel | endpoint ids whose config changed |
//! | `P:work` | pub/sub channel | `<shard>:<endpoint id>` lines: new work for shards another node holds (routing, replays) |
//! | `P:{shN}:lease` | string, PX TTL | the holder's fencing token `node#epoch` (the fence of an actor's writes is one GET) |
//! | `P:{shN}:epoch` | counter | lease acquisitions of shard N: the epoch of the next holder's token |
//! | `P:{shN}:due` | zset | endpoint id → earliest due time of its queue (ms) |
//! | `P:{shN}:ep:<ep>:q` | zset | event ids of pending deliveries → due time (ms) |
//! | `P:{shN}:ep:<ep>:d:<evt>` | hash, TTL retention | delivery status, attempts, `a<N>` attempt logs, `created_ms`, `order`; written by the first recorded attempt (a delivery only queued has none: the log lists it) |
//! | `P:{shN}:ep:<ep>:dead` | zset | dead-lettered event ids → time |
//! | `P:{shN}:ep:<ep>:health` | string | breaker state and start of the current failure run (JSON) |
//! | `P:{shN}:ep:<ep>:dl-notice` | hash, TTL 30 d | dead letters by reason since the last `hookline.endpoint.dead_letters` notice (`store::notices`) |
//! | `P:{shN}:ep:<ep>:dl-gate` | string, EX `notifications.dead_letter_interval_s` | a dead-letter notice went out within the interval |
//! | `P:{shN}:dl-pending` | zset | endpoints with dead letters held back by their gate → when it opens (ms); the janitor tells them then |
//! | `P:{shN}:ep:<ep>:bucket` | string, PX until full | the rate limiter's bucket when the last actor stopped (JSON) |
//! | `P:{shN}:ep:<ep>:log` | zset | event ids of every delivery → ingest order (the delivery list; trimmed by the janitor) |
//! | `P:{shN}:ep:<ep>:st:m:<minute start s>` | hash, TTL 8 d | the endpoint's attempts in that minute not yet rolled up, by outcome and latency: field `<s|r|f|d><histogram bucket index>`, written by RECORD_ATTEMPT |
//! | `P:{shN}:ep:<ep>:st:<step>:<start s>` | hash, TTL 3 h (step 60) or 8 d (step 3600) | the same counts rolled up (`store::stats`): a minute's rolled part and an hour's total |
//! | `P:{shN}:st-dirty` | zset | endpoints with minutes not yet rolled up, scored by the oldest such minute |
//! | `P:{shN}:ep:<ep>:dropped` | zset, TTL retention | a deleted endpoint's pending deliveries, until the janitor marks their records dead |
//! | `P:dropping` | set | `<shard>:<ep>` of deleted endpoints whose `dropped` set the janitor still has to work off |
//! | `P:janitor:lock` | string, PX TTL | the node running this janitor pass |
//! | `P:janitor:cursor` | string | where the janitor's walk over the endpoints continues (HSCAN cursor) |

use sha2::{Digest, Sha256};

pub const ROUTER_GROUP: &str = "router";

#[derive(Debug, Clone)]
pub struct Keys {
    p: String,
    partitions: u32,
}

impl Keys {
    /// Keys of a deployment with one events partition.
    pub fn new(prefix: &str) -> Self {
        Self::with_partitions(prefix, 1)
    }

    /// `partitions` is `router.partitions`, fixed for the life of a deployment.
    pub fn with_partitions(prefix: &str, partitions: u32) -> Self {
        Self {
            p: prefix.to_string(),
            partitions: partitions.max(1),
        }
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The events partition that holds a tenant's events.
    pub fn partition_of(&self, tenant: &str) -> u32 {
        hookline_actors::shard::shard_of(tenant, self.partitions)
    }

    pub fn events_stream(&self, partition: u32) -> String {
        format!("{}:{{ev{partition}}}:events", self.p)
    }
    pub fn event(&self, tenant: &str, event_id: &str) -> String {
        format!("{}:{{ev{}}}:evt:{event_id}", self.p, self.partition_of(tenant))
    }
    /// Pub/sub: `<shard>:<endpoint id>` lines of work routed to shards the router's node does
    /// not hold (their owners wake those endpoints).
    pub fn work_channel(&self) -> String {
        format!("{}:work", self.p)
    }
    /// Where the events of partition P ingested in this minute (of their ids' time) went:
    /// event id → endpoint ids (ACK_ROUTED).
    pub fn routed(&self, partition: u32, minute: u64) -> String {
        format!("{}:{{ev{partition}}}:routed:{minute}", self.p)
    }
    pub fn idempotency(&self, tenant: &str, key: &str) -> String {
        format!(
            "{}:{{ev{}}}:idem:{tenant}:{}",
            self.p,
            self.partition_of(tenant),
            hex(&Sha256::digest(key.as_bytes()))
        )
    }
    /// An inbound delivery already accepted on a source: its provider's id, hashed.
    pub fn inbound_dedup(&self, tenant: &str, source_id: &str, provider_id: &str) -> String {
        format!(
            "{}:{{ev{}}}:dedup:{source_id}:{}",
            self.p,
            self.partition_of(tenant),
            hex(&Sha256::digest(provider_id.as_bytes()))
        )
    }
    /// Requests a source accepted in one wall-clock second (its `rate_limit_per_s`).
    pub fn source_rate(&self, tenant: &str, source_id: &str, second: u64) -> String {
        format!(
            "{}:{{ev{}}}:srate:{source_id}:{second}",
            self.p,
            self.partition_of(tenant)
        )
    }
    pub fn sources(&self) -> String {
        format!("{}:sources", self.p)
    }
    pub fn tenant_sources(&self, tenant: &str) -> String {
        format!("{}:t:{tenant}:sources", self.p)
    }
    /// Every tenant's event types: field `{tenant}/{name}`, value the type's JSON.
    pub fn event_types(&self) -> String {
        format!("{}:event_types", self.p)
    }
    /// A tenant's event types (members: `event_types` fields), score 0, or 1 once archived.
    pub fn tenant_event_types(&self, tenant: &str) -> String {
        format!("{}:t:{tenant}:event_types", self.p)
    }
    /// Every tenant's settings: field the tenant, value its settings' JSON.
    pub fn tenant_settings(&self) -> String {
        format!("{}:tenant_settings", self.p)
    }
    /// Bumped at every change of any tenant's event types or settings (nodes compare it to
    /// catch a missed notification).
    pub fn catalogue_version(&self) -> String {
        format!("{}:catalogue:version", self.p)
    }
    /// Each tenant's catalogue version (bumped with its every change).
    pub fn catalogue_versions(&self) -> String {
        format!("{}:catalogue:versions", self.p)
    }
    /// Where a change of a tenant's event types or settings is announced (the tenant).
    pub fn catalogue_channel(&self) -> String {
        format!("{}:catalogue", self.p)
    }
    pub fn source_rejections(&self, source_id: &str) -> String {
        format!("{}:src:{source_id}:rejections", self.p)
    }
    /// A source's refusals in one minute, and the gate of its `hookline.source.rejections`
    /// notices (one slot, for NOTE_REJECTION).
    pub fn source_rejection_notice(&self, source_id: &str, minute: u64) -> (String, String) {
        let base = format!("{}:{{src:{source_id}}}", self.p);
        (format!("{base}:rej:{minute}"), format!("{base}:rej-gate"))
    }
    /// Events a tenant ingested in one wall-clock second (for the ingest limit).
    pub fn tenant_rate(&self, tenant: &str, second: u64) -> String {
        format!("{}:{{ev{}}}:rate:{tenant}:{second}", self.p, self.partition_of(tenant))
    }
    pub fn layout(&self) -> String {
        format!("{}:layout", self.p)
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
    pub fn key_check(&self) -> String {
        format!("{}:keycheck", self.p)
    }
    pub fn tenant_keys(&self, tenant: &str) -> String {
        format!("{}:t:{tenant}:keys", self.p)
    }
    /// A tenant's portal sessions: id → digest of the token (their records are in `api_keys`).
    pub fn tenant_portal(&self, tenant: &str) -> String {
        format!("{}:t:{tenant}:portal", self.p)
    }
    /// When the tenant's portal sessions were last all revoked (ms): no session created at or
    /// before it works.
    pub fn portal_revoked(&self, tenant: &str) -> String {
        format!("{}:t:{tenant}:portal:revoked", self.p)
    }
    pub fn portal_expiry(&self) -> String {
        format!("{}:portal:expiry", self.p)
    }
    pub fn api_keys_used(&self) -> String {
        format!("{}:apikeys:used", self.p)
    }
    /// The audit stream of changes to the records of `record_hash` (a key without a hash tag,
    /// such as `endpoints()`): of every tenant, or of one. Its hash tag is that key's whole
    /// name, so it lands in that key's cluster slot and one script writes both.
    pub fn audit(&self, record_hash: &str, tenant: Option<&str>) -> String {
        match tenant {
            None => format!("{}:audit:{{{record_hash}}}", self.p),
            Some(t) => format!("{}:audit:{{{record_hash}}}:{t}", self.p),
        }
    }
    pub fn audit_tenants(&self) -> String {
        format!("{}:audit:tenants", self.p)
    }
    /// Where the janitor's walk over `audit_tenants` continues (SSCAN cursor).
    pub fn audit_cursor(&self) -> String {
        format!("{}:audit:cursor", self.p)
    }
    pub fn console_session(&self, id_hash: &str) -> String {
        format!("{}:console:{id_hash}", self.p)
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
    /// Dead letters counted toward the endpoint's next notice, the interval's gate, and the
    /// shard's endpoints with counts held back (scored by when their gate opens).
    pub fn dead_letter_notice(&self, shard: u32, endpoint_id: &str) -> [String; 3] {
        let base = format!("{}:{{sh{shard}}}:ep:{endpoint_id}", self.p);
        [
            format!("{base}:dl-notice"),
            format!("{base}:dl-gate"),
            format!("{}:{{sh{shard}}}:dl-pending", self.p),
        ]
    }
    /// The rate limiter's bucket, between actors (expires when it would be full again).
    pub fn bucket(&self, shard: u32, endpoint_id: &str) -> String {
        format!("{}:{{sh{shard}}}:ep:{endpoint_id}:bucket", self.p)
    }
    pub fn dead_letters(&self, shard: u32, endpoint_id: &str) -> String {
        format!("{}:{{sh{shard}}}:ep:{endpoint_id}:dead", self.p)
    }
    /// Every delivery of an endpoint by ingest order, for `GET …/deliveries`.
    pub fn delivery_log(&self, shard: u32, endpoint_id: &str) -> String {
        format!("{}:{{sh{shard}}}:ep:{endpoint_id}:log", self.p)
    }
    /// A stats bucket of `step` seconds starting at `start_s` (`store::stats`).
    pub fn stats(&self, shard: u32, endpoint_id: &str, step: u64, start_s: u64) -> String {
        format!("{}:{{sh{shard}}}:ep:{endpoint_id}:st:{step}:{start_s}", self.p)
    }
    /// A minute's stats not yet rolled up into the `stats` buckets (`store::stats`).
    pub fn stats_unrolled(&self, shard: u32, endpoint_id: &str, start_s: u64) -> String {
        format!("{}:{{sh{shard}}}:ep:{endpoint_id}:st:m:{start_s}", self.p)
    }
    /// The shard's endpoints with minutes not yet rolled up, by the oldest such minute.
    pub fn stats_dirty(&self, shard: u32) -> String {
        format!("{}:{{sh{shard}}}:st-dirty", self.p)
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
        let k = Keys::with_partitions("hl", 8);
        for tenant in ["t", "acme", "globex", "initech"] {
            let stream = k.events_stream(k.partition_of(tenant));
            assert_eq!(tag(&stream), tag(&k.event(tenant, "evt_x")));
            assert_eq!(tag(&stream), tag(&k.idempotency(tenant, "key")));
            assert_eq!(tag(&stream), tag(&k.tenant_rate(tenant, 17)));
        }
        let s = 17;
        for key in [
            k.due(s),
            k.queue(s, "ep_a"),
            k.delivery(s, "ep_a", "evt_b"),
            k.dead_letters(s, "ep_a"),
            k.bucket(s, "ep_a"),
            k.delivery_log(s, "ep_a"),
            k.dropped(s, "ep_a"),
        ] {
            assert_eq!(tag(&key), tag(&k.lease(s)), "{key}");
            assert!(key.starts_with("hl:"));
        }
    }

    /// Redis Cluster's slot of a key (CRC16/XMODEM of its hash tag or whole name, mod 16384).
    fn slot(key: &str) -> u16 {
        let tagged = key.find('{').and_then(|s| {
            key[s + 1..]
                .find('}')
                .filter(|len| *len > 0)
                .map(|len| &key[s + 1..s + 1 + len])
        });
        let mut crc: u16 = 0;
        for byte in tagged.unwrap_or(key).bytes() {
            crc ^= (byte as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }

    #[test]
    fn audit_streams_share_the_slot_of_the_records_they_audit() {
        // Known values (redis.io cluster spec: CLUSTER KEYSLOT "123456789" is 12739).
        assert_eq!(slot("123456789"), 12739);
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        let k = Keys::new("hl");
        for hash in [k.endpoints(), k.sources(), k.api_keys()] {
            assert_eq!(slot(&k.audit(&hash, None)), slot(&hash), "{hash}");
            assert_eq!(slot(&k.audit(&hash, Some("acme"))), slot(&hash), "{hash}");
            assert!(k.audit(&hash, Some("acme")).starts_with("hl:"));
        }
    }

    #[test]
    fn tenants_spread_over_partitions_and_one_partition_keeps_the_old_names() {
        let k = Keys::with_partitions("hl", 4);
        let used: std::collections::BTreeSet<u32> = (0..40).map(|i| k.partition_of(&format!("tenant-{i}"))).collect();
        assert_eq!(used.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        let one = Keys::new("hl");
        assert_eq!(one.events_stream(one.partition_of("any")), "hl:{ev0}:events");
        assert_eq!(one.event("any", "evt_1"), "hl:{ev0}:evt:evt_1");
    }
}
