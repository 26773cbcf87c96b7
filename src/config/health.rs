//! `health.*`: endpoint health (breaker, ramp, auto-disable).

use serde::{Deserialize, Serialize};

/// Endpoint health: the circuit breaker, the ramp after recovery, auto-disable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    /// An endpoint failing without a single success this long is disabled (5 days).
    pub disable_after_s: u64,
    /// The breaker opens when at least this many attempts finished within the window…
    pub breaker_min_attempts: usize,
    /// …and at least this share of them failed.
    pub breaker_failure_ratio: f64,
    pub breaker_window_s: u64,
    /// Waits between probes while the breaker is open; the last one repeats.
    pub probe_intervals_s: Vec<u64>,
    /// After a good probe the rate grows from `ramp_start_per_s` to the endpoint's rate limit
    /// (or `ramp_full_per_s` if it has none, then no limit) over this long.
    pub ramp_s: u64,
    pub ramp_start_per_s: f64,
    pub ramp_full_per_s: f64,
}
impl Default for Health {
    fn default() -> Self {
        Self {
            disable_after_s: 5 * 86_400,
            breaker_min_attempts: 10,
            breaker_failure_ratio: 0.5,
            breaker_window_s: 60,
            probe_intervals_s: vec![30, 60, 300, 1800],
            ramp_s: 60,
            ramp_start_per_s: 1.0,
            ramp_full_per_s: 100.0,
        }
    }
}
