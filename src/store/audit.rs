//! The audit log: one entry per change, written by the same script as the change it records
//! (AUDITED), so a change without its entry cannot exist.
//!
//! A change is a write to one field of a record hash (`P:endpoints`, `P:sources`, `P:apikeys`);
//! its entry goes to two streams in that hash's cluster slot (their hash tag is the hash's own
//! name): the kind's stream for every tenant and the tenant's. A listing merges the three
//! kinds' streams, newest first. Stream ids come from the Redis clock to the microsecond, so
//! on one Redis the merged order is the order of the changes.

use super::{scripts, Error, RedisStore, Result};
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, Value};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use utoipa::ToSchema;

/// The records whose changes are audited, each with its own pair of streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Endpoints,
    Sources,
    Keys,
    EventTypes,
    Settings,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Endpoints,
        Kind::Sources,
        Kind::Keys,
        Kind::EventTypes,
        Kind::Settings,
    ];

    /// The letter that ends an entry id of this kind (and breaks ties of equal stream ids).
    fn code(self) -> char {
        match self {
            Kind::Endpoints => 'e',
            Kind::Sources => 's',
            Kind::Keys => 'k',
            Kind::EventTypes => 't',
            Kind::Settings => 'g',
        }
    }

    fn from_code(code: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| code.len() == 1 && code.starts_with(k.code()))
    }
}

/// Who made a change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Actor {
    /// `admin`, `key`, `portal` or `system` (the node itself).
    pub kind: String,
    /// The key's id (`key_…`), `adm_` + the first 8 hex digits of the admin token's SHA-256,
    /// or for the node, what acted (`endpoint_actor`).
    pub id: String,
}

/// What a change was made to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Target {
    /// `endpoint`, `source`, `key`, `delivery`, `event_type` or `settings`.
    pub kind: String,
    pub id: String,
}

/// One audited change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AuditEntry {
    /// `aud_…`, in the order of the log (also a cursor).
    #[serde(default, skip_deserializing)]
    pub id: String,
    /// RFC 3339 with milliseconds: when Redis wrote the entry (the clock of its id, which
    /// the order and `from`/`to` follow).
    pub time: String,
    pub tenant: String,
    pub actor: Actor,
    /// e.g. `endpoint.updated`, `key.revoked` (docs/API.md lists them).
    pub action: String,
    pub target: Target,
    /// Each changed field: `{"from", "to"}`; secrets show as `"***"`.
    #[schema(value_type = Object)]
    pub changes: Map<String, Json>,
    /// The `Hookline-Request-Id` of the request that made the change (null for the node's own).
    pub request_id: Option<String>,
    /// The caller's address (null for the node's own changes).
    pub ip: Option<String>,
}

impl AuditEntry {
    /// A change the node made by itself.
    pub fn by_system(what: &str, tenant: &str, action: &str, target: Target, changes: Map<String, Json>) -> Self {
        AuditEntry {
            id: String::new(),
            time: crate::event::rfc3339(hookline_actors::now_ms()),
            tenant: tenant.to_string(),
            actor: Actor {
                kind: "system".into(),
                id: what.into(),
            },
            action: action.into(),
            target,
            changes,
            request_id: None,
            ip: None,
        }
    }
}

impl Target {
    pub fn new(kind: &str, id: &str) -> Self {
        Target {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

/// The fields of a record that never appear in the log (the record's identity and clock).
const BOOKKEEPING: [&str; 4] = ["id", "tenant", "created_at_ms", "updated_at_ms"];

/// Field by field, what changed from `before` to `after` (JSON objects; `None`: no record, as
/// before a create or after a delete). The fields named in `secret` show as `"***"` (null and
/// empty values as they are, so a secret appearing or going away still shows); those named in
/// `hidden_values` are objects shown with their keys and `"***"` for every value (custom
/// headers: their names tell what changed, their values may be credentials).
pub fn changes(
    before: Option<&Json>,
    after: Option<&Json>,
    secret: &[&str],
    hidden_values: &[&str],
) -> Map<String, Json> {
    let empty = Map::new();
    let fields = |v: Option<&Json>| v.and_then(Json::as_object).unwrap_or(&empty).clone();
    let (before, after) = (fields(before), fields(after));
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Map::new();
    for name in names {
        if BOOKKEEPING.contains(&name.as_str()) {
            continue;
        }
        let (from, to) = (
            before.get(name).unwrap_or(&Json::Null),
            after.get(name).unwrap_or(&Json::Null),
        );
        if from == to {
            continue;
        }
        let shown = |v: &Json| {
            let blank =
                v.is_null() || v.as_array().is_some_and(Vec::is_empty) || v.as_object().is_some_and(Map::is_empty);
            match v.as_object() {
                _ if blank => v.clone(),
                _ if secret.contains(&name.as_str()) => Json::from("***"),
                Some(object) if hidden_values.contains(&name.as_str()) => {
                    Json::Object(object.keys().map(|k| (k.clone(), Json::from("***"))).collect())
                }
                _ => v.clone(),
            }
        };
        out.insert(name.clone(), serde_json::json!({"from": shown(from), "to": shown(to)}));
    }
    out
}

/// What an audited write does to its record's field.
pub enum Write<'a> {
    Set(&'a str),
    /// Set only if the field does not exist yet (else `Written::Changed`, nothing done).
    Create(&'a str),
    Delete,
    /// Nothing: the entry alone (a secret read, a replay).
    Nothing,
}

/// What an audited write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Done,
    /// The record is not there (deleted meanwhile).
    Gone,
    /// The record is not at the version it was read at.
    Changed,
}

/// A page of the log: where to start (a cursor), what to keep, how many.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    pub action: Option<String>,
    pub target_id: Option<String>,
    pub cursor: Option<String>,
    pub limit: usize,
}

/// Entries one listing reads at most (across kinds) before it answers with what it found and
/// a cursor to go on from: a filter that matches little cannot make a request scan the log.
const SCAN_BUDGET: usize = 10_000;

fn rank(kind: Kind) -> u8 {
    match kind {
        Kind::Keys => 0,
        Kind::Sources => 1,
        Kind::Endpoints => 2,
        Kind::EventTypes => 3,
        Kind::Settings => 4,
    }
}

/// `aud_<ms>-<seq>-<kind>` → its position, if well formed.
pub fn parse_id(id: &str) -> Option<(u64, u64, Kind)> {
    let mut parts = id.strip_prefix("aud_")?.split('-');
    let ms = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let kind = Kind::from_code(parts.next()?)?;
    parts.next().is_none().then_some((ms, seq, kind))
}

fn entry_id(stream_id: &str, kind: Kind) -> String {
    format!("aud_{stream_id}-{}", kind.code())
}

/// One kind's side of a merged listing: what it has read and not yet handed out, and the
/// stream id below which it reads next (inclusive or not).
struct Side {
    kind: Kind,
    buffered: std::collections::VecDeque<(u64, u64, Json)>,
    /// `None`: nothing more to read.
    next_end: Option<String>,
}

impl RedisStore {
    /// Where a kind's audit streams are: the record hash's own name is their hash tag.
    fn record_hash(&self, kind: Kind) -> String {
        match kind {
            Kind::Endpoints => self.keys.endpoints(),
            Kind::Sources => self.keys.sources(),
            Kind::Keys => self.keys.api_keys(),
            Kind::EventTypes => self.keys.event_types(),
            Kind::Settings => self.keys.tenant_settings(),
        }
    }

    /// Write `field` of the kind's record hash and its entry, in one step. `guard`: the
    /// record's `updated_at_ms` when it was read; the write happens only if it still is.
    pub(super) async fn audited(
        &self,
        kind: Kind,
        field: &str,
        write: Write<'_>,
        guard: Option<u64>,
        entry: &AuditEntry,
    ) -> Result<Written> {
        let hash = self.record_hash(kind);
        // The tenant index of the janitor first: no stream exists that it does not know.
        let _: Value = self
            .client()
            .sadd(self.keys.audit_tenants(), entry.tenant.as_str())
            .await?;
        let (op, value) = match write {
            Write::Set(v) => ("set", v),
            Write::Create(v) => ("new", v),
            Write::Delete => ("del", ""),
            Write::Nothing => ("none", ""),
        };
        let oldest = hookline_actors::now_ms().saturating_sub(self.audit_retention_s * 1000);
        let keys = vec![
            hash.clone(),
            self.keys.audit(&hash, None),
            self.keys.audit(&hash, Some(&entry.tenant)),
        ];
        let args = vec![
            field.to_string(),
            op.to_string(),
            value.to_string(),
            guard.map(|g| g.to_string()).unwrap_or_default(),
            serde_json::to_string(entry)?,
            oldest.to_string(),
        ];
        let reply = self.eval(&scripts::AUDITED, keys, args).await?;
        Ok(match reply.as_i64() {
            Some(0) => Written::Gone,
            Some(-1) => Written::Changed,
            _ => Written::Done,
        })
    }

    /// Record an entry that changes no record (a secret read, a replay). `kind` says whose log
    /// it joins.
    pub async fn audit_only(&self, kind: Kind, entry: &AuditEntry) -> Result<()> {
        self.audited(kind, "", Write::Nothing, None, entry).await.map(|_| ())
    }

    /// A page of the log, newest first: of `tenant`, or of every tenant. Returns the entries
    /// and the cursor of the next page (None at the end).
    pub async fn audit_page(&self, tenant: Option<&str>, q: &AuditQuery) -> Result<(Vec<AuditEntry>, Option<String>)> {
        let cursor = match q.cursor.as_deref() {
            Some(c) => Some(parse_id(c).ok_or_else(|| Error::corrupt("a malformed audit cursor"))?),
            None => None,
        };
        let mut sides: Vec<Side> = Kind::ALL
            .into_iter()
            .map(|kind| {
                // The newest id this kind may hand out: below the cursor, at most `to`.
                let mut end = q.to_ms.map(|to| format!("{to}-18446744073709551615"));
                if let Some((ms, seq, at)) = cursor {
                    let bound = if rank(kind) < rank(at) {
                        format!("{ms}-{seq}")
                    } else {
                        format!("({ms}-{seq}")
                    };
                    let below_to = q.to_ms.is_none_or(|to| ms <= to);
                    if below_to {
                        end = Some(bound);
                    }
                }
                // Nothing is below the first id there can be (and Redis refuses `(0-0`).
                let next_end = match end {
                    Some(e) if e == "(0-0" => None,
                    e => Some(e.unwrap_or_else(|| "+".into())),
                };
                Side {
                    kind,
                    buffered: Default::default(),
                    next_end,
                }
            })
            .collect();
        let start = q.from_ms.map(|f| f.to_string()).unwrap_or_else(|| "-".into());
        let chunk = (q.limit * 2).clamp(50, 1_000);
        let mut found = Vec::new();
        let mut scanned = 0;
        loop {
            for side in &mut sides {
                if side.buffered.is_empty() {
                    self.refill(tenant, side, &start, chunk).await?;
                }
            }
            let newest = sides
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.buffered.front().map(|(ms, seq, _)| ((*ms, *seq, rank(s.kind)), i)))
                .max();
            let Some((_, i)) = newest else {
                return Ok((found, None));
            };
            let (ms, seq, json) = sides[i].buffered.pop_front().expect("a front entry");
            scanned += 1;
            let mut entry: AuditEntry = serde_json::from_value(json)?;
            entry.id = entry_id(&format!("{ms}-{seq}"), sides[i].kind);
            // The log's own clock (Redis's), which `from`, `to` and the order follow.
            entry.time = crate::event::rfc3339(ms);
            let keep = q.action.as_ref().is_none_or(|a| *a == entry.action)
                && q.target_id.as_ref().is_none_or(|t| *t == entry.target.id);
            if keep {
                if found.len() == q.limit {
                    let next = found.last().map(|e: &AuditEntry| e.id.clone());
                    return Ok((found, next));
                }
                found.push(entry);
            } else if scanned >= SCAN_BUDGET {
                // Answer with what was found; the cursor goes on after the last entry read.
                return Ok((found, Some(entry.id)));
            }
        }
    }

    async fn refill(&self, tenant: Option<&str>, side: &mut Side, start: &str, chunk: usize) -> Result<()> {
        let Some(end) = side.next_end.take() else {
            return Ok(());
        };
        let hash = self.record_hash(side.kind);
        let stream = self.keys.audit(&hash, tenant);
        let read: Vec<(String, std::collections::HashMap<String, String>)> = self
            .client()
            .xrevrange(stream, end.as_str(), start, Some(chunk as u64))
            .await?;
        let full = read.len() == chunk;
        for (id, fields) in read {
            let (ms, seq) = id
                .split_once('-')
                .and_then(|(m, s)| Some((m.parse().ok()?, s.parse().ok()?)))
                .ok_or_else(|| Error::corrupt("an audit stream id"))?;
            let json: Json = serde_json::from_str(fields.get("j").map(String::as_str).unwrap_or("null"))?;
            side.buffered.push_back((ms, seq, json));
            side.next_end = full.then(|| format!("({id}"));
        }
        Ok(())
    }

    /// Drop entries older than audit retention from the every-tenant streams and from the
    /// streams of up to `batch` tenants, going on where the last pass stopped (the janitor's
    /// part; writes trim their own streams as they go, approximately). Returns the entries
    /// removed.
    pub(super) async fn trim_audit(&self, batch: usize) -> Result<u64> {
        let client = self.client();
        let cutoff = hookline_actors::now_ms().saturating_sub(self.audit_retention_s * 1000);
        let min_id = format!("{cutoff}-0");
        let cursor: Option<String> = client.get(self.keys.audit_cursor()).await?;
        let reply: Value = client
            .custom(
                CustomCommand::new_static("SSCAN", ClusterHash::FirstKey, false),
                vec![
                    self.keys.audit_tenants(),
                    cursor.unwrap_or_else(|| "0".into()),
                    "COUNT".into(),
                    batch.to_string(),
                ],
            )
            .await?;
        let mut parts = reply.into_array().into_iter();
        let next = parts.next().and_then(|v| v.as_string()).unwrap_or_else(|| "0".into());
        let tenants: Vec<String> = parts
            .next()
            .map(|t| t.into_array().iter().filter_map(Value::as_string).collect())
            .unwrap_or_default();
        let streams: Vec<String> = Kind::ALL
            .into_iter()
            .flat_map(|kind| {
                let hash = self.record_hash(kind);
                std::iter::once(self.keys.audit(&hash, None))
                    .chain(tenants.iter().map(|t| self.keys.audit(&hash, Some(t))))
                    .collect::<Vec<_>>()
            })
            .collect();
        let trims = streams.into_iter().map(|stream| {
            let min_id = min_id.clone();
            async move {
                let n: u64 = client.xtrim(stream, ("MINID", "=", min_id.as_str(), None)).await?;
                Ok::<u64, Error>(n)
            }
        });
        let mut removed = 0;
        for n in super::join_all(trims).await {
            removed += n?;
        }
        let _: Value = client.set(self.keys.audit_cursor(), next, None, None, false).await?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_name_each_changed_field_and_hide_secrets() {
        let before = json!({"id": "ep_1", "url": "https://a", "secret": "whsec_x", "headers": {}, "updated_at_ms": 1});
        let after =
            json!({"id": "ep_1", "url": "https://b", "secret": "whsec_y", "headers": {"x": "1"}, "updated_at_ms": 2});
        let c = changes(Some(&before), Some(&after), &["secret"], &["headers"]);
        assert_eq!(
            Json::Object(c),
            json!({
                "url": {"from": "https://a", "to": "https://b"},
                "secret": {"from": "***", "to": "***"},
                "headers": {"from": {}, "to": {"x": "***"}},
            })
        );
        // A header whose value alone changed still shows as changed, its values hidden.
        let token = |t: &str| json!({"headers": {"authorization": t}});
        let c = changes(Some(&token("Bearer a")), Some(&token("Bearer b")), &[], &["headers"]);
        assert_eq!(
            c["headers"],
            json!({"from": {"authorization": "***"}, "to": {"authorization": "***"}})
        );
        let created = changes(None, Some(&after), &["secret"], &[]);
        assert_eq!(created["secret"], json!({"from": null, "to": "***"}));
        assert_eq!(created["url"], json!({"from": null, "to": "https://b"}));
        assert!(!created.contains_key("id") && !created.contains_key("updated_at_ms"));
        let deleted = changes(Some(&before), None, &["secret"], &[]);
        assert_eq!(deleted["url"], json!({"from": "https://a", "to": null}));
        assert!(changes(Some(&before), Some(&before), &["secret"], &[]).is_empty());
        let text = serde_json::to_string(&changes(None, Some(&after), &["secret"], &[])).unwrap();
        assert!(!text.contains("whsec_y"), "{text}");
    }

    #[test]
    fn entry_ids_parse_back_and_malformed_ones_do_not() {
        for kind in Kind::ALL {
            let id = entry_id("1764000000000-42", kind);
            assert_eq!(parse_id(&id), Some((1_764_000_000_000, 42, kind)));
        }
        for bad in [
            "",
            "aud_",
            "aud_1-2",
            "aud_1-2-x",
            "aud_1-2-e-3",
            "aud_a-2-e",
            "evt_1-2-e",
            "aud_1-2-ee",
        ] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }
}
