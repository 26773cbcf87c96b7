//! Delivery stats, per endpoint: attempts by outcome and a latency histogram, in minute
//! buckets (kept [`MINUTES_KEPT_S`]) and hour buckets (kept [`HOURS_KEPT_S`]). They are written
//! by RECORD_ATTEMPT with the attempt records themselves (the increments of a batch folded
//! together), so they count exactly the attempts recorded, at no extra round trip.

use super::{RedisStore, Result};
use fred::prelude::*;
use fred::types::Value;
use hookline_actors::model::{DeadReason, FinishedAttempt, Next};
use std::collections::{BTreeMap, HashMap};

/// Bucket widths a caller may ask for (`?step=`), in seconds.
pub const STEPS: [u64; 2] = [60, 3_600];
/// Endpoints whose buckets a tenant's stats read at once.
const TENANT_READS_AT_ONCE: usize = 16;

/// How long minute and hour buckets are kept.
pub const MINUTES_KEPT_S: u64 = 3 * 3_600;
pub const HOURS_KEPT_S: u64 = 8 * 86_400;

/// Upper edges (ms) of the latency histogram's buckets; one more bucket holds the rest.
pub const LATENCY_EDGES_MS: [u64; 30] = [
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1_000, 1_500, 2_000, 3_000, 5_000, 7_000,
    10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000,
];

/// What an attempt came to, as the stats count it: each attempt is exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: delivered.
    Success,
    /// Failed; a retry is scheduled.
    Retry,
    /// Failed for good because of the answer itself (a 4xx, a 410, a redirect, a blocked
    /// address, a request that could not be built).
    Failed,
    /// Dead because time ran out (retries exhausted, the event expired).
    Dead,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Success, Outcome::Retry, Outcome::Failed, Outcome::Dead];

    pub fn of(next: &Next) -> Outcome {
        match next {
            Next::Delivered => Outcome::Success,
            Next::RetryAt(_) => Outcome::Retry,
            Next::Dead(DeadReason::RetriesExhausted | DeadReason::EventExpired) => Outcome::Dead,
            Next::Dead(_) => Outcome::Failed,
        }
    }

    /// Its letter in a bucket's fields.
    fn code(self) -> char {
        match self {
            Outcome::Success => 's',
            Outcome::Retry => 'r',
            Outcome::Failed => 'f',
            Outcome::Dead => 'd',
        }
    }
}

/// A bucket's field: an outcome's letter and a latency bucket's index (`s3`: delivered within
/// 5 ms), one counter for both, so a batch's attempts make one increment per distinct pair.
/// An event that expired before it was sent has no latency: `dn`, counted but not in the
/// histogram.
fn field(f: &FinishedAttempt) -> String {
    let outcome = Outcome::of(&f.next);
    match f.next {
        Next::Dead(DeadReason::EventExpired) => format!("{}n", outcome.code()),
        _ => format!("{}{}", outcome.code(), latency_bucket(f.record.latency_ms)),
    }
}

/// The histogram bucket of a latency.
pub fn latency_bucket(ms: u64) -> usize {
    LATENCY_EDGES_MS.partition_point(|edge| *edge < ms)
}

/// The `q` quantile (0..1) of a histogram, as the upper edge of the bucket that holds it (the
/// last edge for the overflow bucket); `None` when it is empty.
pub fn quantile(histogram: &[u64], q: f64) -> Option<u64> {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(LATENCY_EDGES_MS[i.min(LATENCY_EDGES_MS.len() - 1)]);
        }
    }
    LATENCY_EDGES_MS.last().copied()
}

/// A bucket as read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    /// Its start, seconds since 1970.
    pub start_s: u64,
    /// Attempts by outcome (in `Outcome::ALL` order).
    pub counts: [u64; 4],
    pub latency: [u64; LATENCY_EDGES_MS.len() + 1],
}

impl Bucket {
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.counts[Outcome::ALL.iter().position(|o| *o == outcome).expect("an outcome")]
    }

    fn from_fields(start_s: u64, fields: &HashMap<String, u64>) -> Bucket {
        let mut bucket = Bucket {
            start_s,
            ..Default::default()
        };
        for (name, n) in fields {
            let mut chars = name.chars();
            let outcome = chars
                .next()
                .and_then(|c| Outcome::ALL.iter().position(|o| o.code() == c));
            let latency = chars
                .as_str()
                .parse::<usize>()
                .ok()
                .filter(|i| *i < bucket.latency.len());
            if let (Some(o), "n") = (outcome, chars.as_str()) {
                bucket.counts[o] += n;
            } else if let (Some(o), Some(l)) = (outcome, latency) {
                bucket.counts[o] += n;
                bucket.latency[l] += n;
            }
        }
        bucket
    }
}

/// The increments a batch of records makes: (step, bucket start s) → field → count.
pub type Increments = BTreeMap<(u64, u64), BTreeMap<String, u64>>;

pub fn increments(finished: &[FinishedAttempt]) -> Increments {
    let mut out = Increments::new();
    for f in finished {
        let at_s = f.record.at_ms / 1000;
        for step in STEPS {
            let fields = out.entry((step, at_s - at_s % step)).or_default();
            *fields.entry(field(f)).or_default() += 1;
        }
    }
    out
}

/// The starts of the buckets from the one holding `from_s` to the last before `to_s`; none
/// when `from_s` is not before `to_s`.
fn starts(step: u64, from_s: u64, to_s: u64) -> Vec<u64> {
    if from_s >= to_s {
        return Vec::new();
    }
    (from_s - from_s % step..to_s).step_by(step as usize).collect()
}

/// How long a bucket of `step` is kept.
pub fn kept_s(step: u64) -> u64 {
    if step == 60 {
        MINUTES_KEPT_S
    } else {
        HOURS_KEPT_S
    }
}

impl RedisStore {
    /// The endpoint's buckets of `step` seconds from `from_s` to before `to_s` (aligned to the
    /// step), every one of them, empty ones included.
    pub async fn endpoint_stats(&self, endpoint_id: &str, step: u64, from_s: u64, to_s: u64) -> Result<Vec<Bucket>> {
        let shard = hookline_actors::shard::shard_of(endpoint_id, self.shard_count);
        let starts = starts(step, from_s, to_s);
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = self.client().pipeline();
        for start in &starts {
            let _: () = pipeline
                .hgetall(self.keys.stats(shard, endpoint_id, step, *start))
                .await?;
        }
        let replies: Vec<Value> = pipeline.all().await?;
        Ok(starts
            .into_iter()
            .zip(replies)
            .map(|(start, reply)| {
                let fields: HashMap<String, u64> = reply.convert().unwrap_or_default();
                Bucket::from_fields(start, &fields)
            })
            .collect())
    }
}

impl RedisStore {
    /// The tenant's buckets: every endpoint's, added together (histograms too, so the
    /// percentiles are the tenant's).
    pub async fn tenant_stats(&self, tenant: &str, step: u64, from_s: u64, to_s: u64) -> Result<Vec<Bucket>> {
        let ids = self.tenant_endpoint_ids(tenant).await?;
        let mut each = Vec::with_capacity(ids.len());
        // A few endpoints' reads in flight at once, not a tenant's thousands.
        for chunk in ids.chunks(TENANT_READS_AT_ONCE) {
            each.extend(super::join_all(chunk.iter().map(|id| self.endpoint_stats(id, step, from_s, to_s))).await);
        }
        let mut sum: Vec<Bucket> = Vec::new();
        for buckets in each {
            for (i, b) in buckets?.into_iter().enumerate() {
                match sum.get_mut(i) {
                    None => sum.push(b),
                    Some(total) => {
                        total.counts.iter_mut().zip(b.counts).for_each(|(t, n)| *t += n);
                        total.latency.iter_mut().zip(b.latency).for_each(|(t, n)| *t += n);
                    }
                }
            }
        }
        if sum.is_empty() {
            // No endpoints: the same empty buckets an endpoint without attempts has.
            let empty = |start_s| Bucket {
                start_s,
                ..Default::default()
            };
            sum = starts(step, from_s, to_s).into_iter().map(empty).collect();
        }
        Ok(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_actors::model::AttemptRecord;

    #[test]
    fn latencies_fall_in_the_bucket_of_the_first_edge_at_or_above_them() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(1), 0);
        assert_eq!(latency_bucket(2), 1);
        assert_eq!(latency_bucket(4), 3);
        assert_eq!(latency_bucket(300_000), LATENCY_EDGES_MS.len() - 1);
        assert_eq!(latency_bucket(300_001), LATENCY_EDGES_MS.len());
    }

    #[test]
    fn quantiles_are_the_upper_edge_of_the_bucket_that_holds_them() {
        let mut h = [0u64; LATENCY_EDGES_MS.len() + 1];
        assert_eq!(quantile(&h, 0.5), None);
        h[latency_bucket(4)] = 98; // ≤ 5 ms
        h[latency_bucket(900)] = 2; // ≤ 1000 ms
        assert_eq!(quantile(&h, 0.5), Some(5));
        assert_eq!(quantile(&h, 0.98), Some(5));
        assert_eq!(quantile(&h, 0.99), Some(1_000));
        h[LATENCY_EDGES_MS.len()] = 1_000;
        assert_eq!(quantile(&h, 0.99), Some(300_000));
    }

    #[test]
    fn a_batch_folds_into_one_increment_per_bucket_and_field() {
        let attempt = |at_ms: u64, latency_ms: u64, next: Next| FinishedAttempt {
            event_id: "evt".into(),
            number: 1,
            record: AttemptRecord {
                at_ms,
                status_code: Some(200),
                latency_ms,
                response_excerpt: String::new(),
                error: None,
            },
            next,
        };
        let batch = [
            attempt(3_600_000, 4, Next::Delivered),
            attempt(3_659_999, 5, Next::Delivered),
            attempt(3_660_000, 40, Next::RetryAt(0)),
            attempt(3_660_001, 40, Next::Dead(DeadReason::Gone)),
            attempt(3_660_002, 40, Next::Dead(DeadReason::RetriesExhausted)),
        ];
        let inc = increments(&batch);
        let count = |step: u64, start: u64, f: &str| inc[&(step, start)].get(f).copied().unwrap_or(0);
        let (fast, slow) = (latency_bucket(5), latency_bucket(40));
        assert_eq!(
            count(60, 3_600, &format!("s{fast}")),
            2,
            "4 and 5 ms share the 5 ms bucket"
        );
        let minute: Vec<u64> = ["r", "f", "d"]
            .iter()
            .map(|o| count(60, 3_660, &format!("{o}{slow}")))
            .collect();
        assert_eq!(minute, [1, 1, 1]);
        assert_eq!(
            (
                count(3_600, 3_600, &format!("s{fast}")),
                count(3_600, 3_600, &format!("d{slow}"))
            ),
            (2, 1)
        );
        assert_eq!(inc.len(), 3, "two minutes and one hour");
        // Read back, the fields give the counts by outcome and the histogram.
        let fields: HashMap<String, u64> = inc[&(3_600, 3_600)].clone().into_iter().collect();
        let hour = Bucket::from_fields(3_600, &fields);
        assert_eq!(hour.counts, [2, 1, 1, 1]);
        assert_eq!((hour.latency[fast], hour.latency[slow]), (2, 3));
    }
}
