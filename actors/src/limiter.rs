//! The per-endpoint rate limit: a token bucket with burst = max(1, rate). In any window of one
//! second it lets through at most rate + burst requests. Time is passed in (ms), so the tests
//! are exact.

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
    fn changing_the_rate_keeps_earned_tokens_within_the_new_burst() {
        let mut b = TokenBucket::new(100.0, 0);
        b.set_rate(2.0, 0);
        assert!(b.try_take(0).is_ok());
        assert!(b.try_take(0).is_ok());
        assert!(b.try_take(0).is_err());
        assert_eq!(b.rate(), 2.0);
    }
}
