//! The per-endpoint circuit breaker (API.md, "Endpoint health").
//!
//! Closed: everything goes. It opens when, within the last `window_ms`, at least
//! `min_attempts` attempts finished and at least `failure_ratio` of them failed. Open: nothing
//! goes until the next probe time; then one probe (half-open). A good probe closes it and starts
//! a ramp (the rate grows from `ramp_start_per_s` to full over `ramp_ms`, so a backlog drains
//! gradually); a failed probe opens it again with the next, longer probe interval. The state
//! (not the recent-attempt window) is persisted so that it survives a change of owner node.
//! Time is passed in (ms since epoch) so the tests are exact.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    pub min_attempts: usize,
    pub failure_ratio: f64,
    pub window_ms: u64,
    /// Waits before successive probes while open; the last one repeats.
    pub probe_intervals_ms: Vec<u64>,
    pub ramp_ms: u64,
    pub ramp_start_per_s: f64,
    /// Where the ramp ends for an endpoint without a rate limit (then: no limit).
    pub ramp_full_per_s: f64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            min_attempts: 10,
            failure_ratio: 0.5,
            window_ms: 60_000,
            probe_intervals_ms: vec![30_000, 60_000, 300_000, 1_800_000],
            ramp_ms: 60_000,
            ramp_start_per_s: 1.0,
            ramp_full_per_s: 100.0,
        }
    }
}

/// The part of the breaker that is stored in Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BreakerRecord {
    pub state: BreakerState,
    /// When the last good probe closed the breaker (the ramp runs from here).
    pub closed_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    #[default]
    Closed,
    Open {
        next_probe_ms: u64,
        failed_probes: u32,
    },
    HalfOpen {
        failed_probes: u32,
    },
}

impl BreakerState {
    pub fn name(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half_open",
        }
    }
}

/// May an attempt start now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Yes, as the one probe of a half-open breaker.
    Probe,
    /// Not before this time.
    NotBefore(u64),
    /// Not until the probe in flight has finished.
    AwaitProbe,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    record: BreakerRecord,
    /// (finish time, success) of recent attempts while closed; bounded by `window_ms` and a cap.
    recent: VecDeque<(u64, bool)>,
}

const RECENT_CAP: usize = 1_024;

impl Breaker {
    pub fn new(settings: BreakerSettings, record: BreakerRecord) -> Self {
        // A probe that was in flight when the last owner stopped is made again.
        let record = match record.state {
            BreakerState::HalfOpen { failed_probes } => BreakerRecord {
                state: BreakerState::Open {
                    next_probe_ms: 0,
                    failed_probes,
                },
                ..record
            },
            _ => record,
        };
        Breaker {
            settings,
            record,
            recent: VecDeque::new(),
        }
    }

    pub fn record(&self) -> &BreakerRecord {
        &self.record
    }

    pub fn admit(&mut self, now_ms: u64) -> Admit {
        match self.record.state {
            BreakerState::Closed => Admit::Yes,
            BreakerState::HalfOpen { .. } => Admit::AwaitProbe,
            BreakerState::Open {
                next_probe_ms,
                failed_probes,
            } => {
                if now_ms >= next_probe_ms {
                    self.record.state = BreakerState::HalfOpen { failed_probes };
                    Admit::Probe
                } else {
                    Admit::NotBefore(next_probe_ms)
                }
            }
        }
    }

    /// What `admit` would answer, without taking the probe.
    pub fn peek(&self, now_ms: u64) -> Admit {
        match self.record.state {
            BreakerState::Closed => Admit::Yes,
            BreakerState::HalfOpen { .. } => Admit::AwaitProbe,
            BreakerState::Open { next_probe_ms, .. } if now_ms >= next_probe_ms => Admit::Probe,
            BreakerState::Open { next_probe_ms, .. } => Admit::NotBefore(next_probe_ms),
        }
    }

    /// The probe ended without a result worth judging (it could not be recorded): probe again
    /// at once rather than wait in half-open for a result that will never come.
    pub fn probe_lost(&mut self) {
        if let BreakerState::HalfOpen { failed_probes } = self.record.state {
            self.record.state = BreakerState::Open {
                next_probe_ms: 0,
                failed_probes,
            };
        }
    }

    pub fn state(&self) -> &BreakerState {
        &self.record.state
    }

    pub fn is_half_open(&self) -> bool {
        matches!(self.record.state, BreakerState::HalfOpen { .. })
    }

    /// Count a finished attempt. Returns true when the stored state changed (save it). While
    /// half-open, only the probe's result may be passed here (the caller knows which attempt
    /// is the probe); results of older attempts must not be.
    pub fn observe(&mut self, now_ms: u64, success: bool) -> bool {
        match self.record.state {
            BreakerState::Closed => {
                self.recent.push_back((now_ms, success));
                while self.recent.len() > RECENT_CAP
                    || self
                        .recent
                        .front()
                        .is_some_and(|(t, _)| *t + self.settings.window_ms < now_ms)
                {
                    self.recent.pop_front();
                }
                let failures = self.recent.iter().filter(|(_, ok)| !ok).count();
                let total = self.recent.len();
                if total >= self.settings.min_attempts && failures as f64 >= self.settings.failure_ratio * total as f64
                {
                    self.record.state = BreakerState::Open {
                        next_probe_ms: now_ms + self.interval(0),
                        failed_probes: 0,
                    };
                    self.record.closed_at_ms = None;
                    self.recent.clear();
                    return true;
                }
                false
            }
            BreakerState::HalfOpen { failed_probes } => {
                if success {
                    self.record = BreakerRecord {
                        state: BreakerState::Closed,
                        closed_at_ms: Some(now_ms),
                    };
                } else {
                    let failed_probes = failed_probes + 1;
                    self.record.state = BreakerState::Open {
                        next_probe_ms: now_ms + self.interval(failed_probes as usize),
                        failed_probes,
                    };
                }
                true
            }
            // Attempts that started before the breaker opened: already judged.
            BreakerState::Open { .. } => false,
        }
    }

    fn interval(&self, n: usize) -> u64 {
        let intervals = &self.settings.probe_intervals_ms;
        intervals.get(n).or(intervals.last()).copied().unwrap_or(30_000)
    }

    /// The rate the ramp allows now (per second), or `None` when no ramp is running. `full` is
    /// the endpoint's own rate limit, if it has one.
    pub fn ramp_rate(&self, now_ms: u64, full: Option<f64>) -> Option<f64> {
        let closed_at = self.record.closed_at_ms?;
        if !matches!(self.record.state, BreakerState::Closed) {
            return None;
        }
        let elapsed = now_ms.saturating_sub(closed_at);
        if elapsed >= self.settings.ramp_ms {
            return None;
        }
        let start = self.settings.ramp_start_per_s;
        let end = full.unwrap_or(self.settings.ramp_full_per_s).max(start);
        Some(start + (end - start) * elapsed as f64 / self.settings.ramp_ms.max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> BreakerSettings {
        BreakerSettings {
            probe_intervals_ms: vec![1_000, 2_000, 5_000],
            ramp_ms: 10_000,
            ramp_start_per_s: 1.0,
            ramp_full_per_s: 101.0,
            ..BreakerSettings::default()
        }
    }

    #[test]
    fn opens_at_ten_attempts_with_half_failing() {
        let mut b = Breaker::new(fast(), BreakerRecord::default());
        for i in 0..9 {
            assert!(!b.observe(i, false), "fewer than 10 attempts never open it");
        }
        assert!(b.observe(9, false));
        assert_eq!(
            b.record().state,
            BreakerState::Open {
                next_probe_ms: 1_009,
                failed_probes: 0
            }
        );
    }

    #[test]
    fn stays_closed_below_half_failures_and_forgets_old_attempts() {
        // Nine attempts, four failed: closed. A tenth that fails makes exactly half: open.
        let mut b = Breaker::new(fast(), BreakerRecord::default());
        for i in 0..9 {
            assert!(!b.observe(i, i % 2 == 0));
        }
        assert!(b.observe(9, false));
        assert_eq!(b.record().state.name(), "open");
        let mut b = Breaker::new(fast(), BreakerRecord::default());
        for i in 0..20 {
            assert!(!b.observe(i, i % 3 != 0), "a third failing keeps it closed");
        }
        // Failures older than the window do not count.
        let mut b = Breaker::new(fast(), BreakerRecord::default());
        for i in 0..9 {
            b.observe(i, false);
        }
        assert!(!b.observe(100_000, false), "old failures expired");
    }

    #[test]
    fn one_probe_at_growing_intervals_then_close_and_ramp() {
        let mut b = Breaker::new(fast(), BreakerRecord::default());
        for i in 0..10 {
            b.observe(i, false);
        }
        assert_eq!(b.admit(500), Admit::NotBefore(1_009));
        assert_eq!(b.admit(1_009), Admit::Probe);
        assert_eq!(b.admit(1_010), Admit::AwaitProbe, "only one probe at a time");
        assert!(b.observe(1_100, false));
        assert_eq!(b.admit(1_200), Admit::NotBefore(3_100), "second interval is longer");
        assert_eq!(b.admit(3_100), Admit::Probe);
        assert!(b.observe(3_200, false));
        assert_eq!(b.admit(3_300), Admit::NotBefore(8_200));
        assert_eq!(b.admit(8_200), Admit::Probe);
        assert!(b.observe(8_300, false));
        assert_eq!(b.admit(8_400), Admit::NotBefore(13_300), "the last interval repeats");
        assert_eq!(b.admit(13_300), Admit::Probe);
        assert!(b.observe(13_400, true));
        assert_eq!(b.admit(13_400), Admit::Yes);
        assert_eq!(b.record().state.name(), "closed");
        assert_eq!(b.ramp_rate(13_400, None), Some(1.0));
        assert_eq!(b.ramp_rate(18_400, None), Some(51.0));
        assert_eq!(b.ramp_rate(18_400, Some(11.0)), Some(6.0));
        assert_eq!(b.ramp_rate(23_400, None), None, "the ramp ends");
    }

    #[test]
    fn state_survives_a_restart_and_a_lost_probe_is_retried() {
        let mut b = Breaker::new(fast(), BreakerRecord::default());
        for i in 0..10 {
            b.observe(i, false);
        }
        assert_eq!(b.admit(2_000), Admit::Probe);
        let stored = serde_json::to_string(b.record()).unwrap();
        let mut again = Breaker::new(fast(), serde_json::from_str(&stored).unwrap());
        assert_eq!(again.record().state.name(), "open");
        assert_eq!(again.admit(2_001), Admit::Probe);
    }

    #[test]
    fn a_lost_probe_is_made_again_at_once() {
        let mut b = Breaker::new(fast(), BreakerRecord::default());
        for i in 0..10 {
            b.observe(i, false);
        }
        assert_eq!(b.admit(2_000), Admit::Probe);
        assert!(b.is_half_open());
        b.probe_lost();
        assert_eq!(b.peek(2_001), Admit::Probe);
        assert_eq!(b.admit(2_001), Admit::Probe);
    }

    #[test]
    fn late_results_while_open_are_ignored() {
        let mut b = Breaker::new(fast(), BreakerRecord::default());
        for i in 0..10 {
            b.observe(i, false);
        }
        assert!(!b.observe(11, true));
        assert_eq!(b.record().state.name(), "open");
    }
}
