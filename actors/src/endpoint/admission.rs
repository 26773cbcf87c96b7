//! May the delivery at the front of the window start now? A pure decision: the lease
//! deadline, an ordered head's retry time, the token bucket, the breaker, in that order. No
//! I/O and no clock of its own: `now_ms` comes in, so the unit tests below are exact.

use crate::breaker::{Admit, Breaker};
use crate::limiter::{BucketRecord, TokenBucket};

/// How soon an actor looks again when its shard's lease deadline has passed.
pub const LEASE_RECHECK_MS: u64 = 250;

/// What stands between a due delivery and its attempt, besides room: the breaker and the
/// rate limiter, owned by the endpoint actor.
pub struct Gates {
    pub breaker: Breaker,
    /// Present while a rate applies (the endpoint's limit or a recovery ramp).
    pub limiter: Option<TokenBucket>,
    /// The bucket the previous actor left: resumed when a rate first applies.
    pub saved_bucket: Option<BucketRecord>,
}

/// The facts about one delivery and its endpoint that admission reads.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// May this node still start attempts on the endpoint's shard (fencing deadline)?
    pub lease_valid: bool,
    /// The delivery's `not_before_ms` (an ordered head's retry time, or a hold).
    pub not_before_ms: u64,
    /// The endpoint's `rate_limit_per_s`.
    pub rate_limit_per_s: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Start it now; `probe`: as the half-open breaker's one probe.
    Start { probe: bool },
    /// Nothing starts before this time (the lease, the rate limit, an open breaker).
    Until(u64),
    /// An ordered endpoint's head waits for this time; nothing behind it may pass.
    Head(u64),
    /// A probe is in flight; its result decides.
    AwaitProbe,
}

/// Decide, taking a token and the probe when the answer is `Start` (a token is also spent
/// when the breaker then refuses, as before admission was a function of its own).
pub fn admit(now_ms: u64, gates: &mut Gates, ask: Ask) -> Admission {
    if !ask.lease_valid {
        // Fencing: this node's lease on the shard may have run out (a pause, no Redis).
        // Start nothing; either a renewal succeeds, or the shard's owner is stopped.
        return Admission::Until(now_ms + LEASE_RECHECK_MS);
    }
    if ask.not_before_ms > now_ms {
        return Admission::Head(ask.not_before_ms);
    }
    if let Err(wait) = gates.take_token(ask.rate_limit_per_s, now_ms) {
        return Admission::Until(now_ms + wait);
    }
    match gates.breaker.admit(now_ms) {
        Admit::Yes => Admission::Start { probe: false },
        Admit::Probe => Admission::Start { probe: true },
        Admit::NotBefore(t) => Admission::Until(t),
        Admit::AwaitProbe => Admission::AwaitProbe,
    }
}

impl Gates {
    /// Take a token if a rate applies now (the endpoint's limit, or the breaker's ramp after a
    /// recovery, whichever is lower). `Err(ms)`: wait that long.
    fn take_token(&mut self, rate_limit_per_s: Option<u32>, now_ms: u64) -> Result<(), u64> {
        let limit = rate_limit_per_s.map(f64::from);
        let rate = match (limit, self.breaker.ramp_rate(now_ms, limit)) {
            (_, Some(ramp)) => ramp,
            (Some(limit), None) => limit,
            (None, None) => {
                self.limiter = None;
                return Ok(());
            }
        };
        let saved = &mut self.saved_bucket;
        let bucket = self.limiter.get_or_insert_with(|| match saved.take() {
            Some(record) => TokenBucket::resume(rate, record, now_ms),
            None => TokenBucket::new(rate, now_ms),
        });
        if (bucket.rate() - rate).abs() > f64::EPSILON {
            bucket.set_rate(rate, now_ms);
        }
        bucket.try_take(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::{BreakerRecord, BreakerSettings, BreakerState};

    fn gates(state: BreakerState) -> Gates {
        let record = BreakerRecord {
            state,
            closed_at_ms: None,
        };
        Gates {
            breaker: Breaker::new(BreakerSettings::default(), record),
            limiter: None,
            saved_bucket: None,
        }
    }

    fn ask() -> Ask {
        Ask {
            lease_valid: true,
            not_before_ms: 0,
            rate_limit_per_s: None,
        }
    }

    #[test]
    fn a_closed_breaker_without_a_limit_admits_everything() {
        let mut g = gates(BreakerState::Closed);
        for now in 1_000..1_100 {
            assert_eq!(admit(now, &mut g, ask()), Admission::Start { probe: false });
        }
    }

    #[test]
    fn a_lost_lease_holds_everything_before_anything_else_is_asked() {
        let mut g = gates(BreakerState::Closed);
        let a = Ask {
            lease_valid: false,
            not_before_ms: 5_000,
            ..ask()
        };
        assert_eq!(admit(1_000, &mut g, a), Admission::Until(1_000 + LEASE_RECHECK_MS));
    }

    #[test]
    fn an_ordered_head_waits_for_its_time_without_spending_a_token() {
        let mut g = gates(BreakerState::Closed);
        let a = Ask {
            not_before_ms: 2_000,
            rate_limit_per_s: Some(1),
            ..ask()
        };
        assert_eq!(admit(1_000, &mut g, a), Admission::Head(2_000));
        assert!(g.limiter.is_none(), "no bucket was touched");
        assert_eq!(
            admit(2_000, &mut g, a),
            Admission::Start { probe: false },
            "due now, the bucket is full"
        );
    }

    #[test]
    fn the_rate_limit_admits_its_rate_then_names_the_wait() {
        let mut g = gates(BreakerState::Closed);
        let a = Ask {
            rate_limit_per_s: Some(2),
            ..ask()
        };
        assert_eq!(admit(10_000, &mut g, a), Admission::Start { probe: false });
        assert_eq!(admit(10_000, &mut g, a), Admission::Start { probe: false });
        match admit(10_000, &mut g, a) {
            Admission::Until(t) => assert!(t > 10_000 && t <= 10_500, "next token within half a second: {t}"),
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn an_open_breaker_admits_one_probe_when_due_and_nothing_while_it_runs() {
        let mut g = gates(BreakerState::Open {
            next_probe_ms: 5_000,
            failed_probes: 0,
        });
        assert_eq!(admit(4_000, &mut g, ask()), Admission::Until(5_000));
        assert_eq!(admit(5_000, &mut g, ask()), Admission::Start { probe: true });
        assert_eq!(admit(5_001, &mut g, ask()), Admission::AwaitProbe);
    }

    #[test]
    fn a_token_is_spent_even_when_the_breaker_then_refuses() {
        let mut g = gates(BreakerState::Open {
            next_probe_ms: 0,
            failed_probes: 1,
        });
        let a = Ask {
            rate_limit_per_s: Some(2),
            ..ask()
        };
        assert_eq!(admit(1_000, &mut g, a), Admission::Start { probe: true });
        assert_eq!(admit(1_000, &mut g, a), Admission::AwaitProbe);
        let bucket = g.limiter.as_ref().expect("a rate applies");
        assert_eq!(
            bucket.ms_until_full(1_000),
            1_000,
            "both tokens of the burst were taken"
        );
    }
}
