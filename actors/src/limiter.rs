//! The per-endpoint rate limit: a token bucket with burst = max(1, rate). In any window of one
//! second it lets through at most rate + burst requests. Time is passed in (ms), so the tests
//! are exact.
//!
//! The bucket outlives its actor: an endpoint actor that stops (idle, or handing its shard to
//! another node) saves a [`BucketRecord`] in Redis, kept only until the bucket would be full
//! again ([`TokenBucket::ms_until_full`]), and the next actor, on this node or another, resumes
//! from it. Without that, every restart would hand out a fresh burst and a stop-start endpoint
//! could get rate + n × burst in one second.

use serde::{Deserialize, Serialize};

/// A bucket as saved between owners: the tokens left at a time (ms since epoch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub tokens: f64,
    pub at_ms: u64,
}

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_s: f64,
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_s: f64, now_ms: u64) -> Self {
        let rate_per_s = rate_per_s.max(0.001);
        TokenBucket {
            rate_per_s,
            tokens: burst(rate_per_s),
            last_ms: now_ms,
        }
    }

    /// The bucket a stopped actor left, refilled at `rate_per_s` for the time since (never
    /// beyond the burst). A record from the future (another node's clock ahead) counts as
    /// saved now: its tokens, refilling from now on, so a skewed clock never stalls the bucket.
    pub fn resume(rate_per_s: f64, saved: BucketRecord, now_ms: u64) -> Self {
        let rate_per_s = rate_per_s.max(0.001);
        let mut bucket = TokenBucket {
            rate_per_s,
            tokens: saved.tokens.clamp(0.0, burst(rate_per_s)),
            last_ms: saved.at_ms.min(now_ms),
        };
        bucket.refill(now_ms);
        bucket
    }

    /// How long from `now_ms` until the bucket is full again (0: it is). A saved record older
    /// than that says nothing a fresh bucket would not.
    pub fn ms_until_full(&self, now_ms: u64) -> u64 {
        let mut at_now = self.clone();
        at_now.refill(now_ms);
        let missing = burst(self.rate_per_s) - at_now.tokens;
        if missing <= 0.0 {
            0
        } else {
            ((missing / self.rate_per_s) * 1000.0).ceil() as u64
        }
    }

    /// What to save when the actor stops.
    pub fn record(&self) -> BucketRecord {
        BucketRecord {
            tokens: self.tokens,
            at_ms: self.last_ms,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate_per_s
    }

    /// Change the rate (a config change, or the breaker's ramp), keeping the tokens earned.
    pub fn set_rate(&mut self, rate_per_s: f64, now_ms: u64) {
        self.refill(now_ms);
        self.rate_per_s = rate_per_s.max(0.001);
        self.tokens = self.tokens.min(burst(self.rate_per_s));
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate_per_s).min(burst(self.rate_per_s));
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// Take one token, or say how many ms until one is there.
    pub fn try_take(&mut self, now_ms: u64) -> Result<(), u64> {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - self.tokens) / self.rate_per_s) * 1000.0).ceil().max(1.0) as u64)
        }
    }
}

fn burst(rate_per_s: f64) -> f64 {
    rate_per_s.max(1.0).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_allows_the_burst_then_paces() {
        let mut b = TokenBucket::new(10.0, 0);
        for _ in 0..10 {
            assert!(b.try_take(0).is_ok());
        }
        assert_eq!(b.try_take(0), Err(100));
        assert_eq!(b.try_take(50), Err(50));
        assert!(b.try_take(100).is_ok());
        assert!(b.try_take(100).is_err());
    }

    #[test]
    fn slow_rates_have_a_burst_of_one() {
        let mut b = TokenBucket::new(0.5, 0);
        assert!(b.try_take(0).is_ok());
        assert_eq!(b.try_take(0), Err(2000));
        assert!(b.try_take(2000).is_ok());
    }

    #[test]
    fn no_one_second_window_holds_more_than_rate_plus_burst() {
        let rate = 7.0;
        let mut b = TokenBucket::new(rate, 0);
        let mut sent = Vec::new();
        // Ask every millisecond for 10 seconds.
        for now in 0..10_000u64 {
            if b.try_take(now).is_ok() {
                sent.push(now);
            }
        }
        for (i, start) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|t| **t < start + 1000).count();
            assert!(
                in_window as f64 <= rate + burst(rate),
                "{in_window} in the second from {start}"
            );
        }
        // And it does let the rate through over time.
        assert!(sent.len() >= 70 + 7 - 1, "{}", sent.len());
    }

    #[test]
    fn a_resumed_bucket_keeps_what_was_spent_and_refills_for_the_time_since() {
        let mut b = TokenBucket::new(10.0, 0);
        for _ in 0..10 {
            assert!(b.try_take(0).is_ok());
        }
        let saved = b.record();
        // A new owner 300 ms later has 3 tokens, not a fresh burst of 10.
        let mut next = TokenBucket::resume(10.0, saved, 300);
        for _ in 0..3 {
            assert!(next.try_take(300).is_ok());
        }
        assert_eq!(next.try_take(300), Err(100));
        // Long after, the bucket is full again, but never more than the burst.
        let mut later = TokenBucket::resume(10.0, saved, 60_000);
        assert_eq!((0..20).filter(|_| later.try_take(60_000).is_ok()).count(), 10);
        // A lower rate since the save caps the tokens at the new burst.
        let full = TokenBucket::new(10.0, 0).record();
        let mut slower = TokenBucket::resume(2.0, full, 0);
        assert_eq!((0..5).filter(|_| slower.try_take(0).is_ok()).count(), 2);
        // A record from a clock 5 s ahead: its tokens now, refilling from now, no stall.
        let ahead = BucketRecord {
            tokens: 0.0,
            at_ms: 10_000,
        };
        let mut skewed = TokenBucket::resume(10.0, ahead, 5_000);
        assert_eq!(skewed.try_take(5_000), Err(100));
        assert!(skewed.try_take(5_100).is_ok());
    }

    #[test]
    fn a_saved_bucket_matters_only_until_it_would_be_full() {
        let mut b = TokenBucket::new(10.0, 0);
        assert_eq!(b.ms_until_full(0), 0);
        for _ in 0..10 {
            b.try_take(0).unwrap();
        }
        assert_eq!(b.ms_until_full(0), 1_000);
        assert_eq!(b.ms_until_full(400), 600);
        assert_eq!(b.ms_until_full(5_000), 0);
        let mut slow = TokenBucket::new(0.5, 0);
        slow.try_take(0).unwrap();
        assert_eq!(slow.ms_until_full(0), 2_000);
    }

    #[test]
    fn stop_and_start_never_passes_rate_plus_burst_in_a_second() {
        let rate = 5.0;
        let mut sent = Vec::new();
        let mut saved = None;
        // An actor that starts, takes all it may, and stops again, every 50 ms for 5 s.
        for start in (0..5_000u64).step_by(50) {
            let mut b = match saved {
                Some(r) => TokenBucket::resume(rate, r, start),
                None => TokenBucket::new(rate, start),
            };
            while b.try_take(start).is_ok() {
                sent.push(start);
            }
            saved = Some(b.record());
        }
        for (i, start) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|t| **t < start + 1000).count();
            assert!(in_window as f64 <= rate + burst(rate), "{in_window} from {start}");
        }
    }

    #[test]
    fn changing_the_rate_keeps_earned_tokens_within_the_new_burst() {
        let mut b = TokenBucket::new(100.0, 0);
        b.set_rate(2.0, 0);
        assert!(b.try_take(0).is_ok());
        assert!(b.try_take(0).is_ok());
        assert!(b.try_take(0).is_err());
        assert_eq!(b.rate(), 2.0);
    }
}
