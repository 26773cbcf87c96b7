//! What the store keeps for the node's notifications (issue 22): the dead letters of an
//! endpoint counted toward its next `hookline.endpoint.dead_letters` notice, and the gate that
//! lets at most one notice out per `notifications.dead_letter_interval_s`.

use super::{RedisStore, Result};
use fred::types::scripts::Script;
use fred::types::Value;
use std::sync::LazyLock;

/// How long uncollected counts are kept (an endpoint that stopped dead-lettering).
const COUNTS_TTL_S: u64 = 30 * 86_400;

/// KEYS: the counts hash, the gate. ARGV: interval s, counts TTL s, then reason and count
/// pairs. Adds the counts; if the gate is open (no notice within the interval), closes it for
/// the interval and returns every count gathered (and clears them), else returns nil.
static NOTE_DEAD_LETTERS: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local counts, gate = KEYS[1], KEYS[2]
for i = 3, #ARGV, 2 do redis.call('HINCRBY', counts, ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', counts, ARGV[2])
if not redis.call('SET', gate, '1', 'NX', 'EX', ARGV[1]) then return false end
local all = redis.call('HGETALL', counts)
redis.call('DEL', counts)
return all
"#,
    )
});

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
        let (counts, gate) = self.keys.dead_letter_notice(shard, endpoint_id);
        let mut args = vec![interval_s.max(1).to_string(), COUNTS_TTL_S.to_string()];
        for (reason, n) in reasons {
            args.push(reason.clone());
            args.push(n.to_string());
        }
        let reply = self.eval(&NOTE_DEAD_LETTERS, vec![counts, gate], args).await?;
        let fields = match reply {
            Value::Array(fields) => fields,
            _ => return Ok(None),
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
        Ok(Some(due))
    }
}
