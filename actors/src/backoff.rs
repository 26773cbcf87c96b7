//! When the next attempt happens: the retry schedule with ±20% jitter.

use std::time::Duration;

/// Delay before attempt number `attempts_made + 1`, or `None` when the schedule is exhausted.
/// `jitter` is a number in `[0, 1)` (random in production, fixed in tests); it maps to a factor
/// in `[0.8, 1.2)` so that retries of many deliveries do not arrive in lockstep.
pub fn retry_delay(schedule_s: &[u64], attempts_made: u32, jitter: f64) -> Option<Duration> {
    let base = *schedule_s.get((attempts_made as usize).checked_sub(1)?)?;
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    Some(Duration::from_secs_f64(base as f64 * factor))
}

/// The later of the scheduled delay and what the receiver asked for with `Retry-After`,
/// the latter capped at one hour.
pub fn honour_retry_after(scheduled: Duration, retry_after: Option<Duration>) -> Duration {
    const CAP: Duration = Duration::from_secs(3600);
    match retry_after {
        Some(asked) => scheduled.max(asked.min(CAP)),
        None => scheduled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_schedule_with_bounded_jitter() {
        let schedule = [5, 300, 1800];
        assert_eq!(retry_delay(&schedule, 1, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(retry_delay(&schedule, 2, 0.5), Some(Duration::from_secs(300)));
        assert_eq!(retry_delay(&schedule, 1, 0.0), Some(Duration::from_secs(4)));
        let high = retry_delay(&schedule, 3, 0.999_999).unwrap();
        assert!(high < Duration::from_secs(2160) && high > Duration::from_secs(2159));
    }

    #[test]
    fn exhausted_schedule_means_no_retry() {
        assert_eq!(retry_delay(&[1, 2], 3, 0.5), None);
        assert_eq!(retry_delay(&[], 1, 0.5), None);
        assert_eq!(retry_delay(&[1], 0, 0.5), None);
    }

    #[test]
    fn retry_after_only_lengthens_and_is_capped() {
        let s = Duration::from_secs(10);
        assert_eq!(honour_retry_after(s, None), s);
        assert_eq!(honour_retry_after(s, Some(Duration::from_secs(3))), s);
        assert_eq!(
            honour_retry_after(s, Some(Duration::from_secs(60))),
            Duration::from_secs(60)
        );
        assert_eq!(
            honour_retry_after(s, Some(Duration::from_secs(99_999))),
            Duration::from_secs(3600)
        );
    }
}
