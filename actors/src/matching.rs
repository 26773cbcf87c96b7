//! Which endpoints an event goes to: event-type patterns and the subscription index.

use crate::filter::Filter;
use crate::model::EndpointConfig;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// `*` matches every type; `a.*` matches every type that starts with `a.` (any depth);
/// anything else matches itself exactly.
pub fn type_matches(pattern: &str, event_type: &str) -> bool {
    match wildcard_prefix(pattern) {
        Some("") => !OPT_IN_TYPES.contains(&event_type),
        Some(prefix) => event_type.len() > prefix.len() && event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

/// What a wildcard pattern's types start with: `*` any (`""`), `a.b.*` `a.b.`; `None` for a
/// pattern that names one type (`a.b*` included: only a whole segment is a wildcard).
fn wildcard_prefix(pattern: &str) -> Option<&str> {
    if pattern == "*" {
        return Some("");
    }
    pattern.strip_suffix('*').filter(|prefix| prefix.ends_with('.'))
}

/// The node's operational events that only endpoints asking for them get (a pattern or type
/// naming `hookline.`), never a `*` endpoint: a tenant's every-event receivers do not start
/// hearing about other endpoints' health. (`hookline.endpoint.disabled`, older than the rest,
/// still reaches `*` endpoints as it always did.)
pub const OPT_IN_TYPES: [&str; 4] = [
    "hookline.endpoint.breaker_opened",
    "hookline.endpoint.recovered",
    "hookline.endpoint.dead_letters",
    "hookline.source.rejections",
];

/// An endpoint as the router sees it: enough to match, nothing else.
#[derive(Debug, Clone)]
struct Subscription {
    endpoint_id: String,
    patterns: Vec<String>,
    shard: u32,
    updated_at_ms: u64,
    disabled: bool,
    ordered: bool,
    filter: Option<Arc<Filter>>,
}

/// One endpoint as [`SubscriptionIndex::endpoints_in`] lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedEndpoint {
    pub tenant: String,
    pub endpoint_id: String,
    pub shard: u32,
    pub disabled: bool,
    pub ordered: bool,
}

impl Subscription {
    fn of(cfg: &EndpointConfig, shard: u32) -> Self {
        Subscription {
            endpoint_id: cfg.id.clone(),
            patterns: cfg.event_types.clone(),
            shard,
            updated_at_ms: cfg.updated_at_ms,
            disabled: cfg.disabled,
            ordered: cfg.ordered,
            filter: cfg.filter.as_deref().and_then(|doc| match Filter::compile(doc) {
                Ok(filter) => Some(Arc::new(filter)),
                // Filters are checked when saved; one a later version refuses is not applied
                // (deliveries go on as if it were absent) and says so.
                Err(e) => {
                    tracing::warn!(endpoint_id = %cfg.id, error = %e, "the endpoint's filter does not compile; not applied");
                    None
                }
            }),
        }
    }

    fn takes(&self, event_type: &str, content: Option<&Value>) -> bool {
        self.patterns.iter().any(|p| type_matches(p, event_type))
            && match (&self.filter, content) {
                (Some(filter), Some(content)) => filter.matches(content),
                _ => true,
            }
    }
}

/// One tenant's subscriptions, and (built at the first lookup after a change) which of them
/// can take a given event type: a tenant with thousands of endpoints is not scanned whole for
/// every event.
#[derive(Debug, Default)]
struct Tenant {
    subs: Vec<Subscription>,
    by_type: OnceLock<TypeIndex>,
}

/// Positions in `Tenant::subs`: those naming an exact type, by type, and those with a
/// wildcard (`*`, `a.*`), which are always considered. Each list is in ascending order.
#[derive(Debug, Default)]
struct TypeIndex {
    exact: HashMap<String, Vec<usize>>,
    wildcard: Vec<usize>,
}

impl Tenant {
    fn new(subs: Vec<Subscription>) -> Self {
        Tenant {
            subs,
            by_type: OnceLock::new(),
        }
    }

    /// The subscriptions that may take `event_type` (the exact ones naming it and every
    /// wildcard one), in the order of `subs`; the caller still checks each with `takes`.
    fn candidates<'a>(&'a self, event_type: &str) -> impl Iterator<Item = &'a Subscription> + 'a {
        let index = self.by_type.get_or_init(|| {
            let mut index = TypeIndex::default();
            for (i, sub) in self.subs.iter().enumerate() {
                if sub.patterns.iter().any(|p| wildcard_prefix(p).is_some()) {
                    index.wildcard.push(i);
                }
                for p in sub.patterns.iter().filter(|p| wildcard_prefix(p).is_none()) {
                    let at = index.exact.entry(p.clone()).or_default();
                    if at.last() != Some(&i) {
                        at.push(i);
                    }
                }
            }
            index
        });
        let exact = index.exact.get(event_type).map_or(&[][..], Vec::as_slice);
        merged(exact, &index.wildcard).map(|i| &self.subs[i])
    }

    /// Forget the type index after `subs` changed.
    fn changed(&mut self) {
        self.by_type = OnceLock::new();
    }
}

/// The union of two ascending lists of positions, ascending, each once.
fn merged<'a>(a: &'a [usize], b: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let next = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) if x == y => {
                i += 1;
                j += 1;
                x
            }
            (Some(&x), Some(&y)) if x < y => {
                i += 1;
                x
            }
            (_, Some(&y)) => {
                j += 1;
                y
            }
            (Some(&x), None) => {
                i += 1;
                x
            }
            (None, None) => return None,
        };
        Some(next)
    })
}

/// In-memory index tenant → subscriptions. Shared by the router and the ingest path (which
/// reports how many deliveries an event will have); kept fresh by change notifications and a
/// periodic resync. Reads take a short read lock on one map.
#[derive(Debug, Default)]
pub struct SubscriptionIndex {
    by_tenant: RwLock<HashMap<String, Tenant>>,
}

impl SubscriptionIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Endpoints of `tenant` that receive an event of `event_type` whose content
    /// (`{"type", "payload", "metadata"}`, see `filter::content`) is `content`, as
    /// `(endpoint id, shard)`. Without content, filters are not applied: pass it whenever
    /// [`Self::needs_content`] says so. Disabled endpoints still receive (their queue holds the
    /// work until they are enabled).
    pub fn matching(&self, tenant: &str, event_type: &str, content: Option<&Value>) -> Vec<(String, u32)> {
        let map = self.by_tenant.read().unwrap_or_else(|e| e.into_inner());
        map.get(tenant)
            .map(|t| {
                t.candidates(event_type)
                    .filter(|s| s.takes(event_type, content))
                    .map(|s| (s.endpoint_id.clone(), s.shard))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Does an endpoint of `tenant` that takes `event_type` filter on content?
    pub fn needs_content(&self, tenant: &str, event_type: &str) -> bool {
        let map = self.by_tenant.read().unwrap_or_else(|e| e.into_inner());
        map.get(tenant).is_some_and(|t| {
            t.candidates(event_type)
                .any(|s| s.filter.is_some() && s.patterns.iter().any(|p| type_matches(p, event_type)))
        })
    }

    /// `(endpoint id, shard)` if `endpoint_id` is an endpoint of `tenant`.
    pub fn endpoint_of(&self, tenant: &str, endpoint_id: &str) -> Option<(String, u32)> {
        let map = self.by_tenant.read().unwrap_or_else(|e| e.into_inner());
        map.get(tenant)?
            .subs
            .iter()
            .find(|s| s.endpoint_id == endpoint_id)
            .map(|s| (s.endpoint_id.clone(), s.shard))
    }

    /// Every endpoint whose shard `in_shard` accepts (for the metrics sampler).
    pub fn endpoints_in(&self, in_shard: impl Fn(u32) -> bool) -> Vec<IndexedEndpoint> {
        let map = self.by_tenant.read().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .flat_map(|(tenant, t)| {
                t.subs.iter().filter(|s| in_shard(s.shard)).map(|s| IndexedEndpoint {
                    tenant: tenant.clone(),
                    endpoint_id: s.endpoint_id.clone(),
                    shard: s.shard,
                    disabled: s.disabled,
                    ordered: s.ordered,
                })
            })
            .collect()
    }

    /// Replace one tenant's subscriptions with `endpoints` (all of that tenant's endpoints).
    pub fn replace_tenant(&self, tenant: &str, endpoints: &[EndpointConfig], shard_of: impl Fn(&str) -> u32) {
        let subs: Vec<Subscription> = endpoints
            .iter()
            .filter(|cfg| cfg.tenant == tenant)
            .map(|cfg| Subscription::of(cfg, shard_of(&cfg.id)))
            .collect();
        let mut map = self.by_tenant.write().unwrap_or_else(|e| e.into_inner());
        if subs.is_empty() {
            map.remove(tenant);
        } else {
            map.insert(tenant.to_string(), Tenant::new(subs));
        }
    }

    pub fn upsert(&self, cfg: &EndpointConfig, shard: u32) {
        let sub = Subscription::of(cfg, shard);
        let mut map = self.by_tenant.write().unwrap_or_else(|e| e.into_inner());
        let t = map.entry(cfg.tenant.clone()).or_default();
        match t.subs.iter_mut().find(|s| s.endpoint_id == cfg.id) {
            Some(existing) => *existing = sub,
            None => t.subs.push(sub),
        }
        t.changed();
    }

    pub fn remove(&self, endpoint_id: &str) {
        let mut map = self.by_tenant.write().unwrap_or_else(|e| e.into_inner());
        for t in map.values_mut() {
            let before = t.subs.len();
            t.subs.retain(|s| s.endpoint_id != endpoint_id);
            if t.subs.len() != before {
                t.changed();
            }
        }
        map.retain(|_, t| !t.subs.is_empty());
    }

    /// Replace everything (periodic resync). Returns the ids of endpoints that were added,
    /// changed or removed since the index last saw them: change notifications that were missed
    /// (a node reconnecting to Redis) are repaired here.
    pub fn replace_all(&self, endpoints: &[EndpointConfig], shard_of: impl Fn(&str) -> u32) -> Vec<String> {
        let mut fresh: HashMap<String, Vec<Subscription>> = HashMap::new();
        for cfg in endpoints {
            fresh
                .entry(cfg.tenant.clone())
                .or_default()
                .push(Subscription::of(cfg, shard_of(&cfg.id)));
        }
        let mut map = self.by_tenant.write().unwrap_or_else(|e| e.into_inner());
        let before: HashMap<String, u64> = map
            .values()
            .flat_map(|t| &t.subs)
            .map(|s| (s.endpoint_id.clone(), s.updated_at_ms))
            .collect();
        let after: HashMap<String, u64> = fresh
            .values()
            .flatten()
            .map(|s| (s.endpoint_id.clone(), s.updated_at_ms))
            .collect();
        let mut changed: Vec<String> = after
            .iter()
            .filter(|(id, at)| before.get(*id) != Some(*at))
            .map(|(id, _)| id.clone())
            .chain(before.keys().filter(|id| !after.contains_key(*id)).cloned())
            .collect();
        changed.sort();
        *map = fresh
            .into_iter()
            .map(|(tenant, subs)| (tenant, Tenant::new(subs)))
            .collect();
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_everything() {
        assert!(type_matches("*", "order.created"));
        assert!(type_matches("*", "x"));
        assert!(type_matches("*", "hookline.endpoint.disabled"), "as it always did");
    }

    #[test]
    fn operational_notices_reach_only_endpoints_that_name_them() {
        for notice in OPT_IN_TYPES {
            assert!(!type_matches("*", notice), "{notice}");
            assert!(type_matches("hookline.*", notice), "{notice}");
            assert!(type_matches(notice, notice), "{notice}");
        }
        assert!(type_matches("hookline.endpoint.*", "hookline.endpoint.breaker_opened"));
        assert!(!type_matches("hookline.endpoint.*", "hookline.source.rejections"));
    }

    #[test]
    fn prefix_wildcard_matches_any_depth_but_not_the_prefix_itself() {
        assert!(type_matches("order.*", "order.created"));
        assert!(type_matches("order.*", "order.item.added"));
        assert!(!type_matches("order.*", "order"));
        assert!(!type_matches("order.*", "order."));
        assert!(!type_matches("order.*", "orders.created"));
        assert!(!type_matches("order.*", "payment.succeeded"));
    }

    #[test]
    fn exact_patterns_match_only_themselves() {
        assert!(type_matches("payment.succeeded", "payment.succeeded"));
        assert!(!type_matches("payment.succeeded", "payment.succeeded.v2"));
        assert!(!type_matches("payment", "payment.succeeded"));
    }

    fn cfg(id: &str, tenant: &str, types: &[&str]) -> EndpointConfig {
        EndpointConfig {
            event_types: types.iter().map(|s| s.to_string()).collect(),
            ..EndpointConfig::new(id.into(), tenant.into(), "http://x".into(), "whsec_x".into(), 0)
        }
    }

    #[test]
    fn a_filtered_endpoint_takes_only_the_content_it_matches() {
        let idx = SubscriptionIndex::new();
        let mut big = cfg("ep_big", "t1", &["order.*"]);
        big.filter = Some(Arc::new(serde_json::json!({"payload.total": {"$gte": 100}})));
        idx.upsert(&big, 1);
        idx.upsert(&cfg("ep_all", "t1", &["order.*"]), 2);
        let order = |total: u32| serde_json::json!({"type": "order.created", "payload": {"total": total}});
        assert!(idx.needs_content("t1", "order.created"));
        assert!(
            !idx.needs_content("t1", "refund.created"),
            "no filtered endpoint takes it"
        );
        assert!(!idx.needs_content("t2", "order.created"));
        let ids = |content: Option<&Value>| -> Vec<String> {
            idx.matching("t1", "order.created", content)
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        assert_eq!(ids(Some(&order(150))), vec!["ep_big", "ep_all"]);
        assert_eq!(ids(Some(&order(50))), vec!["ep_all"]);
        // Unread content: the filter is not applied (the caller asks needs_content first).
        assert_eq!(ids(None), vec!["ep_big", "ep_all"]);
        // A stored filter that no longer compiles is not applied.
        big.filter = Some(Arc::new(serde_json::json!({"nothing.here": 1})));
        idx.upsert(&big, 1);
        assert!(!idx.needs_content("t1", "order.created"));
        assert_eq!(ids(Some(&order(50))), vec!["ep_big", "ep_all"]);
    }

    #[test]
    fn the_type_lookup_answers_as_a_scan_would() {
        let patterns: [&[&str]; 10] = [
            &["order.created"],
            &["order.*"],
            &["*"],
            &["order*"],
            &["hookline.*"],
            &["hookline.endpoint.breaker_opened"],
            &["x.y", "x.y"],
            &["order.created", "*"],
            &[],
            &["a.b.c", "order.*"],
        ];
        let idx = SubscriptionIndex::new();
        let mut configs: Vec<EndpointConfig> = (0..40)
            .map(|i| cfg(&format!("ep_{i:02}"), "t", patterns[i % patterns.len()]))
            .collect();
        for c in &configs {
            idx.upsert(c, 1);
        }
        let types = [
            "order.created",
            "order.updated",
            "order",
            "order*",
            "x.y",
            "hookline.endpoint.breaker_opened",
            "hookline.endpoint.disabled",
            "a.b.c",
            "zzz",
        ];
        let check = |configs: &[EndpointConfig]| {
            for event_type in types {
                let scanned: Vec<(String, u32)> = configs
                    .iter()
                    .filter(|c| c.event_types.iter().any(|p| type_matches(p, event_type)))
                    .map(|c| (c.id.clone(), 1))
                    .collect();
                assert_eq!(idx.matching("t", event_type, None), scanned, "{event_type}");
            }
        };
        check(&configs);
        // Changes reach the lookup: an endpoint's types changed, one removed.
        configs[3].event_types = vec!["zzz".into()];
        idx.upsert(&configs[3], 1);
        let gone = configs.remove(7);
        idx.remove(&gone.id);
        check(&configs);
        assert!(merged(&[1, 3, 5], &[2, 3, 6]).eq([1, 2, 3, 5, 6]));
        assert!(merged(&[], &[4]).eq([4]));
        assert!(merged(&[4], &[]).eq([4]));
    }

    #[test]
    fn index_matches_per_tenant_and_follows_updates() {
        let idx = SubscriptionIndex::new();
        idx.upsert(&cfg("ep_a", "t1", &["order.*"]), 1);
        idx.upsert(&cfg("ep_b", "t1", &["payment.succeeded"]), 2);
        idx.upsert(&cfg("ep_c", "t2", &["*"]), 3);
        assert_eq!(idx.matching("t1", "order.created", None), vec![("ep_a".to_string(), 1)]);
        assert_eq!(idx.matching("t2", "order.created", None), vec![("ep_c".to_string(), 3)]);
        assert!(idx.matching("t3", "order.created", None).is_empty());

        idx.upsert(&cfg("ep_a", "t1", &["refund.*"]), 1);
        assert!(idx.matching("t1", "order.created", None).is_empty());
        idx.remove("ep_c");
        assert!(idx.matching("t2", "order.created", None).is_empty());

        let changed = idx.replace_all(
            &[cfg("ep_b", "t1", &["payment.succeeded"]), cfg("ep_z", "t9", &["*"])],
            |_| 7,
        );
        assert_eq!(
            changed,
            vec!["ep_a".to_string(), "ep_z".to_string()],
            "ep_a removed, ep_z added, ep_b unchanged"
        );
        assert_eq!(idx.matching("t9", "a", None), vec![("ep_z".to_string(), 7)]);
        assert!(idx.matching("t1", "refund.x", None).is_empty());

        let mut newer = cfg("ep_b", "t1", &["payment.*"]);
        newer.updated_at_ms = 5;
        let changed = idx.replace_all(&[newer, cfg("ep_z", "t9", &["*"])], |_| 7);
        assert_eq!(changed, vec!["ep_b".to_string()]);
    }

    #[test]
    fn replacing_one_tenant_leaves_the_others() {
        let index = SubscriptionIndex::new();
        let a = EndpointConfig::new("ep_a".into(), "t1".into(), String::new(), String::new(), 0);
        let b = EndpointConfig::new("ep_b".into(), "t2".into(), String::new(), String::new(), 0);
        index.upsert(&b, 2);
        assert!(index.matching("t1", "x.y", None).is_empty());
        index.replace_tenant("t1", std::slice::from_ref(&a), |_| 1);
        assert_eq!(index.matching("t1", "x.y", None), vec![("ep_a".to_string(), 1)]);
        assert_eq!(index.matching("t2", "x.y", None), vec![("ep_b".to_string(), 2)]);
        index.replace_tenant("t1", &[], |_| 1);
        assert!(index.matching("t1", "x.y", None).is_empty());
        assert_eq!(index.matching("t2", "x.y", None).len(), 1);
    }
}
