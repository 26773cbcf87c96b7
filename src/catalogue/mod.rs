//! The event catalogue (docs/API.md, "Event types and validation"): each tenant's event types
//! with their versioned JSON Schemas (draft 2020-12), the tenant's `validation` setting, and
//! the checks a schema passes before it is saved. `cache` holds what ingest checks payloads
//! against: compiled schemas per node, so a check costs no Redis round trip.

mod cache;

pub use cache::{Catalogue, TenantCatalogue, Violation};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Schema versions one event type may hold.
pub const MAX_VERSIONS: usize = 20;
/// The largest schema, as JSON text.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// The deepest nesting of arrays and objects a schema may have.
pub const MAX_SCHEMA_DEPTH: usize = 32;
/// Event types one tenant may define (archived ones count).
pub const MAX_TYPES: u64 = 1_000;
/// Problems one refusal lists.
pub const MAX_DETAILS: usize = 20;
/// The longest description, in characters.
pub const MAX_DESCRIPTION: usize = 1_024;
/// The largest compiled regular expression of a `pattern` (bytes): the `regex` engine runs in
/// linear time, so a hostile pattern can only be refused for its size, never hang a check.
const MAX_REGEX_BYTES: usize = 1 << 20;

/// `off`: nothing is checked. `warn`: a payload that does not match is stored and delivered,
/// counted and flagged (`schema_errors`). `enforce`: it is refused with 422.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    #[default]
    Off,
    Warn,
    Enforce,
}

/// A tenant's settings as stored (absent keys take their defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantSettings {
    #[serde(default)]
    pub validation: Validation,
    #[serde(default)]
    pub updated_at_ms: u64,
}

/// An event type as stored. `schemas` maps a version ("1", "2", …) to its schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventType {
    pub tenant: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub schemas: BTreeMap<String, Value>,
    #[serde(default)]
    pub deprecated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
    /// Archived by `DELETE`: listed only on request; with `enforce`, its events are refused.
    #[serde(default)]
    pub archived: bool,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl EventType {
    /// Its versions, lowest first, with their schemas (keys that are no version are skipped:
    /// `check` lets none in).
    pub fn versions(&self) -> Vec<(u32, &Value)> {
        let mut out: Vec<(u32, &Value)> = self
            .schemas
            .iter()
            .filter_map(|(v, s)| parse_version(v).map(|v| (v, s)))
            .collect();
        out.sort_unstable_by_key(|(v, _)| *v);
        out
    }
}

/// One way a payload fails its schema: where (a JSON pointer into the payload, `""` for the
/// whole) and what is wrong (the payload's values are not repeated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    pub path: String,
    pub problem: String,
}

/// A schema version: "1" to "9999", no leading zero.
pub fn parse_version(v: &str) -> Option<u32> {
    let ok = (1..=4).contains(&v.len()) && !v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| v.parse().ok()).flatten()
}

/// Compile a schema as ingest will use it: draft 2020-12, patterns on the linear-time `regex`
/// engine (look-around and back-references are refused), no remote or file references.
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_pattern_options(jsonschema::PatternOptions::regex().size_limit(MAX_REGEX_BYTES))
        .build(schema)
        .map_err(|e| e.to_string())
}

/// How `payload` fails `validator`: at most `MAX_DETAILS` problems (none: it matches).
pub fn problems(validator: &jsonschema::Validator, payload: &Value) -> Vec<Problem> {
    validator
        .iter_errors(payload)
        .take(MAX_DETAILS)
        .map(|e| Problem {
            path: e.instance_path().to_string(),
            problem: e.masked().to_string(),
        })
        .collect()
}

/// The most schema nodes a schema may expand to through its `$ref`s. A check visits about
/// this many per payload value, so a small schema whose references fan out (40 `$defs`, each
/// naming the next twice: 2^40) is refused when saved rather than stalling ingest.
pub const MAX_EXPANDED_NODES: u64 = 100_000;

/// Counts what a schema expands to: each `$ref` as the size of what it names (memoised), a
/// reference back into a schema being counted as 1 (recursion follows the payload, which is
/// bounded). Only local references (`#`, `#/…` JSON pointers) are taken.
struct Expansion<'a> {
    root: &'a Value,
    sizes: std::collections::HashMap<*const Value, u64>,
    open: std::collections::HashSet<*const Value>,
}

impl<'a> Expansion<'a> {
    fn size(&mut self, v: &'a Value) -> Result<u64, String> {
        let key = v as *const Value;
        if let Some(n) = self.sizes.get(&key) {
            return Ok(*n);
        }
        if !self.open.insert(key) {
            return Ok(1);
        }
        let mut n: u64 = 1;
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let part = match (k.as_str(), child.as_str()) {
                        ("$ref", Some(reference)) => {
                            let target = self.resolve(reference)?;
                            self.size(target)?
                        }
                        ("$dynamicRef" | "$recursiveRef", _) => {
                            return Err(format!("{k} is not supported (use $ref)"));
                        }
                        _ => self.size(child)?,
                    };
                    n = n.saturating_add(part);
                }
            }
            Value::Array(items) => {
                for item in items {
                    n = n.saturating_add(self.size(item)?);
                }
            }
            _ => {}
        }
        self.open.remove(&key);
        if n > MAX_EXPANDED_NODES {
            return Err(format!(
                "its references expand to more than {MAX_EXPANDED_NODES} schema nodes"
            ));
        }
        self.sizes.insert(key, n);
        Ok(n)
    }

    fn resolve(&self, reference: &str) -> Result<&'a Value, String> {
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| format!("$ref {reference:?}: only references inside the schema (\"#/…\") are taken"))?;
        self.root
            .pointer(pointer)
            .ok_or_else(|| format!("$ref {reference:?} names nothing in the schema"))
    }
}

/// How many schema nodes `schema` expands to through its references (`Expansion`).
fn expanded_size(schema: &Value) -> Result<u64, String> {
    Expansion {
        root: schema,
        sizes: Default::default(),
        open: Default::default(),
    }
    .size(schema)
}

/// The nesting depth of arrays and objects in `v` (a scalar is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Check an event type before it is saved: its versions, each schema's size, depth and
/// compilation, and the example against the highest version. The error names the field.
pub fn check(event_type: &EventType) -> Result<(), String> {
    if event_type.description.chars().count() > MAX_DESCRIPTION {
        return Err(format!("description: at most {MAX_DESCRIPTION} characters"));
    }
    if event_type.schemas.len() > MAX_VERSIONS {
        return Err(format!("schemas: at most {MAX_VERSIONS} versions"));
    }
    let mut highest = None;
    for (version, schema) in &event_type.schemas {
        if parse_version(version).is_none() {
            return Err(format!(
                "schemas.{version}: a version is a number from 1 to 9999 written without leading zeros (\"1\", \"2\", …)"
            ));
        }
        let field = format!("schemas.{version}");
        if !schema.is_object() && !schema.is_boolean() {
            return Err(format!("{field}: a JSON Schema is an object (or true/false)"));
        }
        if serde_json::to_string(schema).map_or(usize::MAX, |s| s.len()) > MAX_SCHEMA_BYTES {
            return Err(format!("{field}: larger than {MAX_SCHEMA_BYTES} bytes"));
        }
        if depth(schema) > MAX_SCHEMA_DEPTH {
            return Err(format!("{field}: nested deeper than {MAX_SCHEMA_DEPTH} levels"));
        }
        expanded_size(schema).map_err(|e| format!("{field}: {e}"))?;
        let compiled = compile(schema).map_err(|e| format!("{field}: not a valid JSON Schema: {e}"))?;
        let number = parse_version(version).unwrap_or(0);
        if highest.as_ref().is_none_or(|(n, _)| number > *n) {
            highest = Some((number, compiled));
        }
    }
    if let (Some(example), Some((version, validator))) = (&event_type.example, &highest) {
        if let Some(first) = problems(validator, example).first() {
            return Err(format!(
                "example: does not match schema version {version}: {} (at \"{}\")",
                first.problem, first.path
            ));
        }
    }
    Ok(())
}

/// How often a node reads the catalogue version (the safety net under the notifications).
pub const VERSION_POLL: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
mod tests;
