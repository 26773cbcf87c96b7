//! What an attempt's result means (API.md, "Outcomes of an attempt"). A failed delivery is
//! data, never an `Err`: the endpoint actor turns it into a retry or a dead letter.

use crate::model::DeadReason;
use crate::transport::{AttemptResponse, FailureKind};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Worth another attempt; the receiver may have asked for a minimum wait.
    Retry {
        retry_after: Option<Duration>,
    },
    /// Never worth another attempt: dead-letter at once with this reason.
    Permanent {
        reason: DeadReason,
    },
    /// 410: dead-letter and disable the endpoint.
    Gone,
}

pub fn classify(resp: &AttemptResponse) -> Outcome {
    match (resp.status, resp.failure) {
        (_, Some(FailureKind::Blocked)) => Outcome::Permanent {
            reason: DeadReason::DestinationBlocked,
        },
        (_, Some(FailureKind::InvalidRequest)) => Outcome::Permanent {
            reason: DeadReason::InvalidRequest,
        },
        (_, Some(FailureKind::TransformFailed)) => Outcome::Permanent {
            reason: DeadReason::TransformFailed,
        },
        (_, Some(FailureKind::Cancelled)) => Outcome::Permanent {
            reason: DeadReason::Cancelled,
        },
        (_, Some(FailureKind::Timeout | FailureKind::Connect | FailureKind::Other)) => {
            Outcome::Retry { retry_after: None }
        }
        (Some(code), None) => classify_status(code, resp.retry_after),
        (None, None) => Outcome::Retry { retry_after: None },
    }
}

fn classify_status(code: u16, retry_after: Option<Duration>) -> Outcome {
    match code {
        200..=299 => Outcome::Delivered,
        410 => Outcome::Gone,
        429 | 503 => Outcome::Retry { retry_after },
        408 | 425 | 500..=599 => Outcome::Retry { retry_after: None },
        300..=399 => Outcome::Permanent {
            reason: DeadReason::Redirected(code),
        },
        _ => Outcome::Permanent {
            reason: DeadReason::Refused(code),
        },
    }
}

/// `Retry-After` as delta-seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> AttemptResponse {
        AttemptResponse {
            status: Some(code),
            ..Default::default()
        }
    }

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(classify(&status(200)), Outcome::Delivered);
        assert_eq!(classify(&status(204)), Outcome::Delivered);
        for code in [408, 425, 429, 500, 502, 503, 504] {
            assert!(matches!(classify(&status(code)), Outcome::Retry { .. }), "{code}");
        }
        assert_eq!(classify(&status(410)), Outcome::Gone);
        for code in [301, 302, 400, 401, 403, 404, 422] {
            assert!(matches!(classify(&status(code)), Outcome::Permanent { .. }), "{code}");
        }
    }

    #[test]
    fn transport_failures() {
        let mut r = AttemptResponse {
            failure: Some(FailureKind::Timeout),
            ..Default::default()
        };
        assert!(matches!(classify(&r), Outcome::Retry { .. }));
        r.failure = Some(FailureKind::Connect);
        assert!(matches!(classify(&r), Outcome::Retry { .. }));
        r.failure = Some(FailureKind::Blocked);
        assert_eq!(
            classify(&r),
            Outcome::Permanent {
                reason: DeadReason::DestinationBlocked
            }
        );
        // A transform's failure or cancel is the event's, not the receiver's: never retried.
        r.failure = Some(FailureKind::TransformFailed);
        assert_eq!(
            classify(&r),
            Outcome::Permanent {
                reason: DeadReason::TransformFailed
            }
        );
        r.failure = Some(FailureKind::Cancelled);
        assert_eq!(
            classify(&r),
            Outcome::Permanent {
                reason: DeadReason::Cancelled
            }
        );
    }

    #[test]
    fn retry_after_is_kept_only_for_429_and_503() {
        let mut r = status(429);
        r.retry_after = Some(Duration::from_secs(7));
        assert_eq!(
            classify(&r),
            Outcome::Retry {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        r.status = Some(500);
        assert_eq!(classify(&r), Outcome::Retry { retry_after: None });
    }

    #[test]
    fn retry_after_parses_both_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        // 2015-10-21 07:28:00 GMT is 1445412480.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
