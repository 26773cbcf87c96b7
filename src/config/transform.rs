//! `transform.*`: the worker processes that run endpoints' jq transforms (`crate::transform`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Transform {
    /// Worker processes, started when the first transform runs (none on a node without
    /// transforms). Each runs one program at a time.
    pub workers: usize,
    /// Longest one run may take; past it the worker is stopped and the delivery dead-lettered
    /// (`transform_failed`).
    pub timeout_ms: u64,
}

impl Default for Transform {
    fn default() -> Self {
        Transform {
            workers: 2,
            timeout_ms: 10,
        }
    }
}

impl Transform {
    /// The first wrong key and what is wrong with it.
    pub fn checked(&self) -> Result<(), (&'static str, String)> {
        if !(1..=64).contains(&self.workers) {
            return Err(("transform.workers", "must be between 1 and 64".into()));
        }
        if !(1..=10_000).contains(&self.timeout_ms) {
            return Err(("transform.timeout_ms", "must be between 1 and 10000".into()));
        }
        Ok(())
    }
}
