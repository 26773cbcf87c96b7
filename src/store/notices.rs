//! What the store keeps for the node's notifications (issue 22): the dead letters of an
//! endpoint counted toward its next `hookline.endpoint.dead_letters` notice, and the gate that
//! lets at most one notice out per `notifications.dead_letter_interval_s`.

use super::{RedisStore, Result};
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::Value;
use hookline_actors::endpoint::notices::Notice;
use std::sync::LazyLock;

/// How long uncollected counts are kept (an endpoint that stopped dead-lettering).
const COUNTS_TTL_S: u64 = 30 * 86_400;

/// Lua: leave the endpoint in the shard's pending set until its gate opens; nil.
const HOLD: &str = r#"
local function hold(pending, gate, id)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', pending, now + math.max(redis.call('PTTL', gate), 0), id)
  return false
end"#;

/// KEYS: the counts hash, the gate, the shard's pending set. ARGV: interval s, counts TTL s,
/// endpoint id, then reason and count pairs. Adds the counts; if the gate is open (no notice
/// within the interval), closes it for the interval and returns every count gathered (and
/// clears them); else marks the endpoint pending until the gate opens and returns nil.
static NOTE_DEAD_LETTERS: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        r#"{HOLD}
local counts, gate, pending, id = KEYS[1], KEYS[2], KEYS[3], ARGV[3]
for i = 4, #ARGV, 2 do redis.call('HINCRBY', counts, ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', counts, ARGV[2])
if not redis.call('SET', gate, '1', 'NX', 'EX', ARGV[1]) then return hold(pending, gate, id) end
redis.call('ZREM', pending, id)
local all = redis.call('HGETALL', counts)
redis.call('DEL', counts)
return all
"#
    ))
});

/// KEYS as NOTE_DEAD_LETTERS. ARGV: interval s, endpoint id. For the janitor: an endpoint whose
/// gate has opened with counts held back gets them now (the gate closes again); one whose gate
/// is closed again stays pending until it opens; one without counts leaves the set.
static TAKE_HELD_DEAD_LETTERS: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        r#"{HOLD}
local counts, gate, pending, id = KEYS[1], KEYS[2], KEYS[3], ARGV[2]
if redis.call('EXISTS', gate) == 1 then return hold(pending, gate, id) end
redis.call('ZREM', pending, id)
local all = redis.call('HGETALL', counts)
if #all == 0 then return false end
redis.call('SET', gate, '1', 'EX', ARGV[1])
redis.call('DEL', counts)
return all
"#
    ))
});

/// Endpoints one janitor pass tells of held-back dead letters, per shard.
const HELD_PER_SHARD: i64 = 100;

/// KEYS: the minute's counter, the gate. ARGV: threshold, interval s. Counts one refusal; when
/// the minute reaches the threshold and the gate is open, closes it and returns the count,
/// else 0.
static NOTE_REJECTION: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 120) end
if n < tonumber(ARGV[1]) then return 0 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 0 end
return n
"#,
    )
});

/// Counts by reason from an HGETALL reply, most first; `None` for nil.
fn counts_of(reply: Value) -> Option<Vec<(String, u64)>> {
    let Value::Array(fields) = reply else {
        return None;
    };
    let mut due: Vec<(String, u64)> = fields
        .chunks(2)
        .filter_map(|pair| {
            let reason = pair.first()?.as_string()?;
            let n = pair.get(1)?.as_string()?.parse().ok()?;
            Some((reason, n))
        })
        .collect();
    due.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Some(due)
}

impl RedisStore {
    /// Count a refused inbound request toward its source's `hookline.source.rejections`
    /// notice: the minute's count when a notice is due (`threshold` this minute, none within
    /// `interval_s`), else `None`.
    pub async fn note_rejection(
        &self,
        source_id: &str,
        now_ms: u64,
        threshold: u64,
        interval_s: u64,
    ) -> Result<Option<u64>> {
        let (minute, gate) = self.keys.source_rejection_notice(source_id, now_ms / 60_000);
        let args = vec![threshold.max(1).to_string(), interval_s.max(1).to_string()];
        let reply = self.eval(&NOTE_REJECTION, vec![minute, gate], args).await?;
        Ok(reply.as_u64().filter(|n| *n > 0))
    }

    /// The notice `note_rejection` let out could not be stored: open its gate again, so the
    /// next refusal tries once more.
    pub async fn reopen_rejection_gate(&self, source_id: &str) -> Result<()> {
        let (_, gate) = self.keys.source_rejection_notice(source_id, 0);
        let _: i64 = fred::interfaces::KeysInterface::del(self.client(), gate).await?;
        Ok(())
    }

    /// See `EndpointStore::note_dead_letters`: `Some` counts by reason when a notice is due.
    pub async fn note_dead_letters(
        &self,
        endpoint_id: &str,
        shard: u32,
        reasons: &[(String, u64)],
        interval_s: u64,
    ) -> Result<Option<Vec<(String, u64)>>> {
        let keys = self.keys.dead_letter_notice(shard, endpoint_id).to_vec();
        let mut args = vec![
            interval_s.max(1).to_string(),
            COUNTS_TTL_S.to_string(),
            endpoint_id.to_string(),
        ];
        for (reason, n) in reasons {
            args.push(reason.clone());
            args.push(n.to_string());
        }
        Ok(counts_of(self.eval(&NOTE_DEAD_LETTERS, keys, args).await?))
    }

    /// The janitor's part: tell each endpoint's dead letters that its gate held back, once the
    /// gate has opened (a notice per endpoint, as the actor would have made). Returns how many
    /// notices it made.
    pub async fn tell_held_dead_letters(&self) -> Result<u64> {
        let now = hookline_actors::now_ms();
        let interval_s = self.dead_letter_interval_s.max(1);
        let mut told = 0;
        for shard in 0..self.shard_count {
            let [_, _, pending] = self.keys.dead_letter_notice(shard, "");
            let due: Vec<String> = self
                .client()
                .zrangebyscore(&pending, "-inf", now as f64, false, Some((0, HELD_PER_SHARD)))
                .await?;
            for endpoint_id in due {
                let keys = self.keys.dead_letter_notice(shard, &endpoint_id).to_vec();
                let args = vec![interval_s.to_string(), endpoint_id.clone()];
                let Some(counts) = counts_of(self.eval(&TAKE_HELD_DEAD_LETTERS, keys, args).await?) else {
                    continue;
                };
                // A deleted endpoint's dead letters are told to no one.
                let Some(cfg) = self.get_endpoint(&endpoint_id).await? else {
                    continue;
                };
                let notice = Notice::dead_letters(&cfg, now, interval_s, &counts);
                self.emit_event(&cfg.tenant, notice.event_type, notice.data, Some(&notice.key))
                    .await?;
                told += 1;
            }
        }
        Ok(told)
    }
}
