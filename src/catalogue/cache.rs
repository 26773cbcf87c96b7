//! The node's copy of each tenant's catalogue, as ingest checks payloads against it.
//!
//! A tenant's entry is read from Redis the first time this node ingests for it (one read at a
//! time per node, so a burst of first ingests reads it once) and kept until a change drops it:
//! every change publishes the tenant on the catalogue channel (all nodes drop that tenant's
//! entry at once) and bumps the tenant's version and one global version; each node reads the
//! global one every few seconds and, when it moved, the versions of the tenants it holds (a
//! missed message drops just the tenants that changed). Schemas compile on first use. So a
//! check costs no Redis round trip, except the first for a tenant after a change.

use super::{compile, parse_version, problems, EventType, Problem, TenantSettings, Validation};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// Tenants kept at most; past it the cache starts over (each tenant reads once more).
const MAX_TENANTS: usize = 100_000;

/// Every tenant's catalogue as this node last read it.
#[derive(Default)]
pub struct Catalogue {
    tenants: RwLock<HashMap<String, Arc<TenantCatalogue>>>,
    /// Bumped by every drop: a read that began before one is not kept (it may be older).
    generation: AtomicU64,
    /// The global version as last seen (`moved`).
    version: AtomicU64,
    /// Held while a tenant's catalogue is read from Redis.
    loading: tokio::sync::Mutex<()>,
}

impl Catalogue {
    /// The tenant's catalogue if this node has it.
    pub fn cached(&self, tenant: &str) -> Option<Arc<TenantCatalogue>> {
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .cloned()
    }

    /// The generation to pass to `keep` for a read that starts now.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keep a tenant's catalogue read since `generation`, unless a change came meanwhile.
    pub fn keep(&self, tenant: &str, generation: u64, read: TenantCatalogue) -> Arc<TenantCatalogue> {
        let read = Arc::new(read);
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) == generation {
            if tenants.len() >= MAX_TENANTS {
                tenants.clear();
            }
            tenants.insert(tenant.to_string(), read.clone());
        }
        read
    }

    /// The tenant's catalogue changed (on any node).
    pub fn forget(&self, tenant: &str) {
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        tenants.remove(tenant);
    }

    /// The global version read now: did it move since the last look (a change somewhere, whose
    /// notification this node may have missed)? The first look says yes.
    pub fn moved(&self, version: u64) -> bool {
        self.version.swap(version, Ordering::AcqRel) != version
    }

    /// The tenants' versions could not be read after a move: look again at the next poll.
    pub fn look_again(&self) {
        self.version.store(u64::MAX, Ordering::Release);
    }

    /// The tenants held, with the version each was read at.
    pub fn held_versions(&self) -> Vec<(String, u64)> {
        let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        tenants.iter().map(|(t, c)| (t.clone(), c.version)).collect()
    }

    /// Drop the tenants whose version is not the one they were read at (`current` as read
    /// now, in the order of `held`).
    pub fn forget_changed(&self, held: &[(String, u64)], current: &[u64]) {
        for ((tenant, read_at), now) in held.iter().zip(current) {
            if read_at != now {
                self.forget(tenant);
            }
        }
    }

    /// Serialise reads of tenants' catalogues on this node (take it, look at `cached` again,
    /// then read): a burst of first ingests reads a tenant once.
    pub async fn loading(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.loading.lock().await
    }
}

/// One tenant's setting and event types, schemas compiled on first use.
#[derive(Default)]
pub struct TenantCatalogue {
    pub validation: Validation,
    /// The tenant's version when it was read (`Catalogue::forget_changed`).
    pub version: u64,
    types: HashMap<String, TypeEntry>,
}

struct TypeEntry {
    archived: bool,
    /// Lowest version first.
    versions: Vec<(u32, Value, Compiled)>,
}

/// A version's schema as compiled on first use (or why it did not compile).
type Compiled = OnceLock<Result<Arc<jsonschema::Validator>, String>>;

/// Why a payload does not pass: what ingest refuses with (`enforce`) or flags (`warn`).
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// `schema_violation`, `event_type_archived` or `unknown_schema_version`.
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Problem>,
}

impl TenantCatalogue {
    /// As read from Redis at `version` (the types only matter when validation is on).
    pub fn new(settings: TenantSettings, types: Vec<EventType>, version: u64) -> Self {
        let types = types
            .into_iter()
            .map(|t| {
                let versions = t
                    .versions()
                    .into_iter()
                    .map(|(v, schema)| (v, schema.clone(), OnceLock::new()))
                    .collect();
                let entry = TypeEntry {
                    archived: t.archived,
                    versions,
                };
                (t.name, entry)
            })
            .collect();
        TenantCatalogue {
            validation: settings.validation,
            version,
            types,
        }
    }

    /// Check a payload (JSON text) of `event_type` against its schema `version` (else the
    /// highest). A type the catalogue does not know, or one without schemas, passes.
    pub fn check(&self, event_type: &str, version: Option<&str>, payload: &str) -> Result<(), Violation> {
        if self.validation == Validation::Off {
            return Ok(());
        }
        let Some(entry) = self.types.get(event_type) else {
            return Ok(());
        };
        if entry.archived {
            return Err(Violation {
                code: "event_type_archived",
                message: format!("type: the event type {event_type} is archived"),
                details: Vec::new(),
            });
        }
        let chosen = match version {
            None => entry.versions.last(),
            Some(v) => {
                let wanted = parse_version(v);
                entry.versions.iter().find(|(n, _, _)| Some(*n) == wanted)
            }
        };
        let Some((number, schema, compiled)) = chosen else {
            if entry.versions.is_empty() {
                return Ok(());
            }
            let known: Vec<String> = entry.versions.iter().map(|(n, _, _)| n.to_string()).collect();
            return Err(Violation {
                code: "unknown_schema_version",
                message: format!(
                    "schema_version: the event type {event_type} has no schema version {} (it has {})",
                    version.unwrap_or_default(),
                    known.join(", ")
                ),
                details: Vec::new(),
            });
        };
        let validator = match compiled.get_or_init(|| compile(schema).map(Arc::new)) {
            Ok(v) => v,
            // Checked when saved; a schema this build cannot compile checks nothing.
            Err(_) => return Ok(()),
        };
        let details = match serde_json::from_str::<Value>(payload) {
            Ok(value) => problems(validator, &value),
            Err(e) => vec![Problem {
                path: String::new(),
                problem: format!("not JSON a schema can check: {e}"),
            }],
        };
        match details.first() {
            None => Ok(()),
            Some(first) => Err(Violation {
                code: "schema_violation",
                message: format!(
                    "payload: does not match schema version {number} of {event_type}: {} (at \"{}\")",
                    first.problem, first.path
                ),
                details,
            }),
        }
    }
}
