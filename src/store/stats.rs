//! Delivery stats, per endpoint: attempts by outcome and a latency histogram, in minute
//! buckets (kept [`MINUTES_KEPT_S`]) and hour buckets (kept [`HOURS_KEPT_S`]).
//!
//! RECORD_ATTEMPT counts a batch's attempts with the records themselves (the increments folded
//! together), so the stats count exactly the attempts recorded, at no extra round trip. It
//! writes only the minute's *unrolled* bucket (`st:m:<minute>`) and notes the endpoint's oldest
//! unrolled minute in the shard's dirty set: half the increments of writing minute and hour
//! alike. The janitor rolls unrolled minutes up ([`RedisStore::roll_stats`], one script per
//! endpoint): their counts move into the minute's rolled bucket (`st:60:<minute>`) and the
//! hour's (`st:3600:<hour>`), atomically. So a minute is its rolled plus unrolled buckets, and
//! an hour is its bucket plus the unrolled minutes in it; readers read them in one script, so
//! a roll-up never shows half done. A record that comes after its minute was rolled makes a
//! fresh unrolled bucket, dirty again, rolled at the next pass: exact whenever it is read, and
//! whenever the janitor runs. Unrolled buckets are kept as long as hours, so a janitor that
//! falls behind costs only reads, never counts. (Before this layout, RECORD_ATTEMPT wrote
//! `st:60` and `st:3600` directly: those are rolled buckets, so older nodes and newer ones
//! agree during a rolling upgrade.)

use super::{RedisStore, Result};
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::Value;
use hookline_actors::model::{DeadReason, FinishedAttempt, Next};
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

/// Bucket widths a caller may ask for (`?step=`), in seconds.
pub const STEPS: [u64; 2] = [60, 3_600];
/// Endpoints whose buckets a tenant's stats read at once.
const TENANT_READS_AT_ONCE: usize = 16;

/// How long minute and hour buckets are kept (a minute's unrolled bucket as long as an hour's,
/// so nothing expires before the janitor rolls it up).
pub const MINUTES_KEPT_S: u64 = 3 * 3_600;
pub const HOURS_KEPT_S: u64 = 8 * 86_400;
pub const UNROLLED_KEPT_S: u64 = HOURS_KEPT_S;
/// Endpoints of one shard whose minutes one janitor pass rolls up, and how many at once.
const ROLL_PER_SHARD: usize = 1_000;
const ROLLS_AT_ONCE: usize = 16;
/// Most minutes one roll-up call takes (a day's).
const ROLL_MINUTES_PER_CALL: u64 = 1_440;
/// Minutes after the current one a roll-up looks at before it forgets an endpoint, and a
/// reader of hours reads: a node whose clock runs ahead writes there. (Nodes' clocks must agree
/// within this: a minute written further ahead, after the roll-up forgot the endpoint, would
/// show in minute charts but be left out of hours.)
const AHEAD_MINUTES: u64 = 5;

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
/// histogram. The names are made once (`FIELDS`), not per attempt.
fn field(f: &FinishedAttempt) -> &'static str {
    let outcome = Outcome::of(&f.next);
    let o = Outcome::ALL.iter().position(|x| *x == outcome).expect("an outcome");
    let latency = match f.next {
        Next::Dead(DeadReason::EventExpired) => LATENCY_EDGES_MS.len() + 1,
        _ => latency_bucket(f.record.latency_ms),
    };
    &FIELDS[o][latency]
}

/// Every field name: by outcome, then latency bucket, then the `n` (no latency) one.
static FIELDS: LazyLock<Vec<Vec<String>>> = LazyLock::new(|| {
    Outcome::ALL
        .iter()
        .map(|o| {
            (0..=LATENCY_EDGES_MS.len())
                .map(|i| format!("{}{i}", o.code()))
                .chain([format!("{}n", o.code())])
                .collect()
        })
        .collect()
});

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

/// The increments a batch of records makes: minute start s → field → count.
pub type Increments = BTreeMap<u64, BTreeMap<&'static str, u64>>;

pub fn increments(finished: &[FinishedAttempt]) -> Increments {
    let mut out = Increments::new();
    for f in finished {
        let at_s = f.record.at_ms / 1000;
        let fields = out.entry(at_s - at_s % 60).or_default();
        *fields.entry(field(f)).or_default() += 1;
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

/// KEYS: any hashes. Returns each one's fields (HGETALL), read at one moment, so a roll-up
/// (which moves counts between them) is seen wholly or not at all.
static READ_BUCKETS: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out
"#,
    )
});

/// KEYS: the shard's dirty set; for each minute: its unrolled bucket, its rolled bucket, its
/// hour's bucket; then the minutes after the range to look at (`pending`). ARGV: endpoint id,
/// the dirty score the caller expects, minutes kept s, hours kept s, the score to leave if no
/// pending minute has counts ('' for none), the number of minutes n, then each minute's start,
/// then each pending minute's start. Moves each unrolled minute's counts into its rolled and hour buckets (and
/// sets their expiry from the minute's start), then leaves the endpoint in the dirty set
/// scored by the first pending minute with counts, or the fallback, or not at all; unless a
/// late record made an older minute dirty meanwhile: then its score stays. Returns the minutes
/// that had counts.
pub static ROLL_STATS: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local dirty, id = KEYS[1], ARGV[1]
local minutes_kept, hours_kept = tonumber(ARGV[3]), tonumber(ARGV[4])
local n = tonumber(ARGV[6])
local npending = #ARGV - 6 - n
local rolled = 0
for i = 1, n do
  local m, r, h = KEYS[2 + (i - 1) * 3], KEYS[3 + (i - 1) * 3], KEYS[4 + (i - 1) * 3]
  local fields = redis.call('HGETALL', m)
  if #fields > 0 then
    for j = 1, #fields, 2 do
      redis.call('HINCRBY', r, fields[j], fields[j + 1])
      redis.call('HINCRBY', h, fields[j], fields[j + 1])
    end
    redis.call('DEL', m)
    local start = tonumber(ARGV[6 + i])
    redis.call('EXPIREAT', r, start + minutes_kept)
    redis.call('EXPIREAT', h, start - start % 3600 + hours_kept)
    rolled = rolled + 1
  end
end
local score = redis.call('ZSCORE', dirty, id)
if score and tonumber(score) < tonumber(ARGV[2]) then return rolled end
redis.call('ZREM', dirty, id)
local nxt = nil
for p = 1, npending do
  if redis.call('EXISTS', KEYS[1 + n * 3 + p]) == 1 then nxt = ARGV[6 + n + p] break end
end
if not nxt and ARGV[5] ~= '' then nxt = ARGV[5] end
if nxt then redis.call('ZADD', dirty, nxt, id) end
return rolled
"#,
    )
});

/// The fields of HGETALL answers, added together.
fn add_fields(into: &mut HashMap<String, u64>, reply: Value) {
    let fields: HashMap<String, u64> = reply.convert().unwrap_or_default();
    for (name, n) in fields {
        *into.entry(name).or_default() += n;
    }
}

impl RedisStore {
    /// The endpoint's buckets of `step` seconds from `from_s` to before `to_s` (aligned to the
    /// step), every one of them, empty ones included: a minute is its rolled and unrolled
    /// buckets, an hour its bucket and the unrolled minutes in it.
    pub async fn endpoint_stats(&self, endpoint_id: &str, step: u64, from_s: u64, to_s: u64) -> Result<Vec<Bucket>> {
        let shard = hookline_actors::shard::shard_of(endpoint_id, self.shard_count);
        let starts = starts(step, from_s, to_s);
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        // Each bucket's keys; for hours, the unrolled minutes from the oldest the dirty set
        // knows of (none unrolled: none) to a few minutes ahead of this node's clock.
        let oldest_unrolled: Option<f64> = match step {
            60 => None,
            _ => self.client().zscore(self.keys.stats_dirty(shard), endpoint_id).await?,
        };
        let now_s = hookline_actors::now_ms() / 1000;
        let last_minute = now_s - now_s % 60 + AHEAD_MINUTES * 60;
        let groups: Vec<Vec<String>> = starts
            .iter()
            .map(|start| match step {
                60 => vec![
                    self.keys.stats(shard, endpoint_id, 60, *start),
                    self.keys.stats_unrolled(shard, endpoint_id, *start),
                ],
                _ => {
                    let mut keys = vec![self.keys.stats(shard, endpoint_id, step, *start)];
                    if let Some(oldest) = oldest_unrolled {
                        let first = (oldest as u64).max(*start);
                        let first = first - first % 60;
                        let end = (start + step).min(last_minute + 60);
                        keys.extend(
                            (first..end)
                                .step_by(60)
                                .map(|m| self.keys.stats_unrolled(shard, endpoint_id, m)),
                        );
                    }
                    keys
                }
            })
            .collect();
        let keys: Vec<String> = groups.iter().flatten().cloned().collect();
        let mut replies = self.eval(&READ_BUCKETS, keys, vec![]).await?.into_array().into_iter();
        Ok(starts
            .into_iter()
            .zip(&groups)
            .map(|(start, group)| {
                let mut fields = HashMap::new();
                for reply in replies.by_ref().take(group.len()) {
                    add_fields(&mut fields, reply);
                }
                Bucket::from_fields(start, &fields)
            })
            .collect())
    }

    /// Roll up every endpoint's minutes before the current one (up to [`ROLL_PER_SHARD`]
    /// endpoints per shard): the janitor's step. Returns the minutes that had counts.
    pub async fn roll_stats(&self) -> Result<u64> {
        let now_s = hookline_actors::now_ms() / 1000;
        let current = now_s - now_s % 60;
        let mut rolled = 0;
        for shard in 0..self.shard_count {
            let dirty: Vec<(String, f64)> = self
                .client()
                .zrangebyscore(
                    self.keys.stats_dirty(shard),
                    "-inf",
                    format!("({current}"),
                    true,
                    Some((0, ROLL_PER_SHARD as i64)),
                )
                .await?;
            for chunk in dirty.chunks(ROLLS_AT_ONCE) {
                let rolls = chunk
                    .iter()
                    .map(|(id, score)| self.roll_endpoint(shard, id, *score, current));
                for r in super::join_all(rolls).await {
                    rolled += r?;
                }
            }
        }
        Ok(rolled)
    }

    /// Roll up one endpoint's minutes from `seen` (its dirty score) to before `current`, a
    /// day's minutes per call; minutes older than the hours kept are past mattering.
    async fn roll_endpoint(&self, shard: u32, id: &str, seen: f64, current: u64) -> Result<u64> {
        let seen_s = seen as u64;
        let mut from = seen_s.max(current.saturating_sub(HOURS_KEPT_S));
        from -= from % 60;
        let (mut rolled, mut expected) = (0, seen_s);
        loop {
            let until = (from + ROLL_MINUTES_PER_CALL * 60).min(current);
            let last = until == current;
            let minutes: Vec<u64> = (from..until).step_by(60).collect();
            let pending: Vec<u64> = match last {
                true => (0..=AHEAD_MINUTES).map(|i| current + i * 60).collect(),
                false => Vec::new(),
            };
            let mut keys = vec![self.keys.stats_dirty(shard)];
            for m in &minutes {
                keys.extend([
                    self.keys.stats_unrolled(shard, id, *m),
                    self.keys.stats(shard, id, 60, *m),
                    self.keys.stats(shard, id, 3_600, m - m % 3_600),
                ]);
            }
            keys.extend(pending.iter().map(|m| self.keys.stats_unrolled(shard, id, *m)));
            let mut args = vec![
                id.to_string(),
                expected.to_string(),
                MINUTES_KEPT_S.to_string(),
                HOURS_KEPT_S.to_string(),
                if last { String::new() } else { until.to_string() },
                minutes.len().to_string(),
            ];
            args.extend(minutes.iter().chain(&pending).map(|m| m.to_string()));
            rolled += self.eval(&ROLL_STATS, keys, args).await?.as_u64().unwrap_or(0);
            if last {
                return Ok(rolled);
            }
            (from, expected) = (until, until);
        }
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
    fn every_outcome_and_latency_has_its_own_field_name() {
        let names: std::collections::HashSet<&String> = FIELDS.iter().flatten().collect();
        assert_eq!(names.len(), 4 * (LATENCY_EDGES_MS.len() + 2));
        let expired = FinishedAttempt {
            event_id: "evt".into(),
            number: 1,
            record: AttemptRecord {
                at_ms: 0,
                status_code: None,
                latency_ms: 0,
                response_excerpt: String::new(),
                error: None,
            },
            next: Next::Dead(DeadReason::EventExpired),
            new_record: None,
        };
        assert_eq!(field(&expired), "dn");
        let slow = FinishedAttempt {
            record: AttemptRecord {
                latency_ms: 400_000,
                ..expired.record.clone()
            },
            next: Next::RetryAt(1),
            ..expired.clone()
        };
        assert_eq!(field(&slow), format!("r{}", LATENCY_EDGES_MS.len()));
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
            new_record: None,
        };
        let batch = [
            attempt(3_600_000, 4, Next::Delivered),
            attempt(3_659_999, 5, Next::Delivered),
            attempt(3_660_000, 40, Next::RetryAt(0)),
            attempt(3_660_001, 40, Next::Dead(DeadReason::Gone)),
            attempt(3_660_002, 40, Next::Dead(DeadReason::RetriesExhausted)),
        ];
        let inc = increments(&batch);
        let count = |start: u64, f: &str| inc[&start].get(f).copied().unwrap_or(0);
        let (fast, slow) = (latency_bucket(5), latency_bucket(40));
        assert_eq!(count(3_600, &format!("s{fast}")), 2, "4 and 5 ms share the 5 ms bucket");
        let minute: Vec<u64> = ["r", "f", "d"]
            .iter()
            .map(|o| count(3_660, &format!("{o}{slow}")))
            .collect();
        assert_eq!(minute, [1, 1, 1]);
        assert_eq!(inc.len(), 2, "two minutes, no hour: the janitor rolls minutes up");
        // Read back, the fields give the counts by outcome and the histogram.
        let fields: HashMap<String, u64> =
            inc.values()
                .flatten()
                .map(|(f, n)| (f.to_string(), *n))
                .fold(HashMap::new(), |mut m, (f, n)| {
                    *m.entry(f).or_default() += n;
                    m
                });
        let hour = Bucket::from_fields(3_600, &fields);
        assert_eq!(hour.counts, [2, 1, 1, 1]);
        assert_eq!((hour.latency[fast], hour.latency[slow]), (2, 3));
    }
}
