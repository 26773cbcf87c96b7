//! The Lua scripts: each one is a step that must be atomic (or saves round trips). Every key a
//! script touches is passed in KEYS and shares one hash tag (see `keys`).
//! INGEST lives in `ingest`, ROLL_STATS in `stats` and the lease scripts in `leases`, beside their
//! callers.

use fred::types::scripts::Script;
use std::sync::LazyLock;

/// An audited change (`audit.rs`). KEYS: a record hash, its kind's audit stream for every
/// tenant, the tenant's. ARGV: field, `set` | `new` (set only if absent) | `del` | `none`, the
/// value to set, the record's `updated_at_ms` as read ('' to write whatever is there), the
/// entry's JSON, the oldest stream id to keep (ms). Returns 0 if the record is gone (guarded or
/// `del`), -1 if it is not at the version read or `new` finds it there (nothing written), else
/// the entry's stream id. The change and its entry
/// are one step: the entry is appended first, so a command that fails (Redis does not undo a
/// script's earlier writes) leaves at most an entry without its change, never the reverse.
///
/// The id is the Redis clock to the microsecond (`<ms>-<µs in the ms × 1000>`), moved past
/// both streams' last ids if the clock is behind them; both take the same id, and on one Redis
/// the three kinds' streams merge in the order the changes happened.
pub static AUDITED: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
if ARGV[4] ~= '' then
  local current = redis.call('HGET', KEYS[1], ARGV[1])
  if not current then return 0 end
  if string.format('%.0f', cjson.decode(current).updated_at_ms) ~= ARGV[4] then return -1 end
end
if ARGV[2] == 'del' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] == 'new' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return -1 end
local now = redis.call('TIME')
local us = tonumber(now[2])
local ms = tonumber(now[1]) * 1000 + math.floor(us / 1000)
local seq = (us % 1000) * 1000
for k = 2, 3 do
  if redis.call('EXISTS', KEYS[k]) == 1 then
    local info = redis.call('XINFO', 'STREAM', KEYS[k])
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then
        local lms, lseq = string.match(info[i + 1], '^(%d+)-(%d+)$')
        lms = tonumber(lms)
        lseq = tonumber(lseq)
        if lms > ms or (lms == ms and lseq >= seq) then
          ms = lms
          seq = lseq + 1
        end
      end
    end
  end
end
local id = string.format('%.0f-%.0f', ms, seq)
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[6], id, 'j', ARGV[5])
redis.call('XADD', KEYS[3], 'MINID', '~', ARGV[6], id, 'j', ARGV[5])
if ARGV[2] == 'set' or ARGV[2] == 'new' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
elseif ARGV[2] == 'del' then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return id
"#,
    )
});

/// KEYS: a hash. ARGV: field, the value read, the value to write. Writes only if the field
/// still holds the value read: 1 written, 0 changed meanwhile.
pub static REPLACE_FIELD_IF: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"#,
    )
});

/// KEYS: a per-second counter. Counts one more and returns the count (the key lives 2 s).
pub static COUNT_SECOND: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIRE', KEYS[1], 2) end
return used
"#,
    )
});

/// The lease fence every write of an endpoint actor passes (RECORD_ATTEMPT, SETTLE_IDLE,
/// FENCED_SET): `body` runs only if the token in ARGV[`token`] is the lease's value in
/// KEYS[`lease`], `holder#epoch` (`leases.rs`): one GET; otherwise the script returns -1 and
/// writes nothing.
fn fenced(lease: usize, token: usize, body: &str) -> Script {
    Script::from_lua(format!(
        "if redis.call('GET', KEYS[{lease}]) ~= ARGV[{token}] then return -1 end\n{body}"
    ))
}

/// KEYS: events stream. ARGV: router group. Returns {the id of the first entry the router
/// group has not finished with (the oldest read but unacknowledged, else the first never read)
/// or '' when every entry has been routed, the lowest id an entry appended later can take}.
/// Everything before the first id is in its endpoints' queues (ROUTE writes before ACK_ROUTED
/// acks); when all is routed, everything before the second is (a later id is past the last one
/// handed out and not before Redis's clock: a clock set back, or a failover to a server whose
/// clock is behind, can let one event through early). One call: it answers the same question
/// for the ordered pull and for the router-lag gauge.
pub static FIRST_UNROUTED: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- A later entry's id is past the last one handed out and not before the clock.
local function after(id)
  local ms, seq = string.match(id or '', '^(%d+)-(%d+)$')
  if ms and tonumber(ms) >= now then return ms .. '-' .. string.format('%.0f', tonumber(seq) + 1) end
  return string.format('%.0f-0', now)
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'', after(nil)} end
local last = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, id
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then id = g[i + 1] end
  end
  if name == ARGV[1] then last = id end
end
local from = '-'
if last then
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
  if pending[1] > 0 then return {pending[2], ''} end
  from = '(' .. last
end
local first = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 1)
if #first == 0 then return {'', after(last)} end
return {first[1][1], ''}
"#,
    )
});

/// KEYS: layout hash. ARGV: shard count, partition count. Records the deployment's layout the
/// first time any node starts on this Redis and prefix; returns what is recorded, so a node
/// configured otherwise can refuse to start.
pub static CHECK_LAYOUT: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
redis.call('HSETNX', KEYS[1], 'shards', ARGV[1])
redis.call('HSETNX', KEYS[1], 'partitions', ARGV[2])
return redis.call('HMGET', KEYS[1], 'shards', 'partitions')
"#,
    )
});

/// KEYS: events stream, routed-lists hash × m (`Keys::routed`, one per minute). ARGV: consumer
/// group, count of stream ids k, stream id × k, the hashes' TTL s, then per hash: n, (event id,
/// endpoint list comma-separated) × n. Remembers where each routed event went (for `GET
/// …/events/{id}`) and acks the batch, in one call per partition: one HSET and EXPIRE per
/// minute the batch's events were ingested in, not an HSET per event. Returns the number acked.
pub static ACK_ROUTED: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local k = tonumber(ARGV[2])
local a = 3 + k
local ttl = ARGV[a]
a = a + 1
for i = 2, #KEYS do
  local n = tonumber(ARGV[a])
  a = a + 1
  for first = a, a + 2 * n - 1, 1000 do
    redis.call('HSET', KEYS[i], unpack(ARGV, first, math.min(first + 999, a + 2 * n - 1)))
  end
  redis.call('EXPIRE', KEYS[i], ttl)
  a = a + 2 * n
end
local acked = 0
for first = 3, 2 + k, 1000 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, first, math.min(first + 999, 2 + k)))
end
return acked
"#,
    )
});

/// KEYS: the shard's due set, then for each endpoint of the shard in the batch: its queue, its
/// delivery log. ARGV: retention s, now ms, then for each endpoint: its id, n, and n (event id,
/// score) pairs. One call per shard per routed batch (every key shares the shard's hash tag),
/// so a batch spread over many endpoints costs one script call and one due-set write per
/// shard, not per endpoint. Creates each delivery only if the endpoint's delivery log (for
/// `GET …/deliveries`) does not list it yet, so routing an event twice queues nothing twice:
/// the log lists every delivery for as long as the stream keeps its event (both are trimmed by
/// retention), and only a stream entry can be routed again. A delivery is its log entry and
/// its place in the queue: its record (`status`, attempts, …) is written by its first
/// recorded attempt (RECORD_ATTEMPT), and until then readers take a delivery the log lists
/// without a record as pending (`deliveries::pending_row`). Each endpoint with new work gets
/// its due entry lowered to its earliest new delivery (all in one ZADD). Keeps a busy
/// endpoint's log bounded between janitor visits: one endpoint's part in eight (those whose
/// earliest new delivery's ingest ms is a multiple of 8, so spread like the events) trims up to
/// sixteen times as many log entries older than retention as it adds, twice as many on
/// average, and the others spare the ZCOUNT. Returns the number created.
pub static ROUTE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local created = 0
local due = {}
local cutoff = tonumber(ARGV[2]) - tonumber(ARGV[1]) * 1000
local a = 3
for e = 2, #KEYS, 2 do
  local queue, log = KEYS[e], KEYS[e + 1]
  local endpoint, n = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  local added = 0
  local earliest = nil
  for j = a, a + 2 * n - 1, 2 do
    if redis.call('ZADD', log, 'NX', ARGV[j + 1], ARGV[j]) == 1 then
      redis.call('ZADD', queue, ARGV[j + 1], ARGV[j])
      added = added + 1
      local score = tonumber(ARGV[j + 1])
      if earliest == nil or score < earliest then earliest = score end
    end
  end
  a = a + 2 * n
  if earliest then
    due[#due + 1] = earliest
    due[#due + 1] = endpoint
    if math.floor(earliest) % 8 == 0 then
      local old = redis.call('ZCOUNT', log, '-inf', cutoff)
      if old > 16 * added then old = 16 * added end
      if old > 0 then redis.call('ZREMRANGEBYRANK', log, 0, old - 1) end
    end
  end
  created = created + added
end
for first = 1, #due, 1000 do
  redis.call('ZADD', KEYS[1], 'LT', unpack(due, first, math.min(first + 999, #due)))
end
return created
"#,
    )
});

/// KEYS: queue, dead letters, shard lease, delivery record × n, unrolled stats
/// bucket × m, the shard's stats dirty set. ARGV: fencing token `node#epoch`, retention s, keep
/// place 0|1, then for each record 8 values: event id, status (delivered|failed|dead),
/// attempts, attempt JSON, attempt start ms, next due ms, reason, and the queue score of a
/// delivery that had no record when pulled ('' if it had: see ROUTE); then for each stats bucket:
/// its minute start s, k, and k (field, increment) pairs; last, the buckets' TTL s, the
/// endpoint id, and m. Records a batch of one endpoint's finished attempts (an endpoint actor's
/// group commit) in one call, so the fence is read once per batch, and counts them in the
/// endpoint's unrolled minute buckets (`stats.rs`): exactly the attempts recorded, no round
/// trip more. When one of a bucket's fields is new (so when the bucket is, or was rolled up
/// meanwhile), its expiry is set and its minute is noted in the dirty set (kept as the
/// endpoint's oldest), not at every batch.
///
/// Fenced: unless the token is the shard's current holder and epoch, nothing is written and -1
/// is returned (a node that lost the shard, or took it again since, must not overwrite what the
/// new owner records). Otherwise returns one code per record: 1 recorded, 2 replayed meanwhile,
/// 0 kept dead (`endpoint_deleted`).
///
/// Per record: a retry moves the delivery to its due time in the queue, except for ordered
/// endpoints (keep place = 1): there it keeps its place in line, and the due time is only in
/// the record, so a failing head holds back everything behind it. If the delivery was replayed
/// while this attempt ran, the attempt is logged but the replay wins: the delivery is queued
/// again at once (a new cycle), whatever this attempt's outcome. If its endpoint was deleted
/// and the janitor already marked it dead (`endpoint_deleted`), only a success changes that (a
/// retry could never run: its queue is gone). A new dead letter trims up to two letters older
/// than retention from the set, so a set growing faster than the janitor visits it stays
/// bounded. The record's expiry is set to retention from now, except for a first-attempt
/// success on a record that exists (whoever created it set one moments ago). Whether a
/// replay, the dead-marking or expiry came first is read only when one of them changed the
/// record (the HSET then adds other fields than expected): the commonest path, a first
/// attempt's success, is the HSET, the EXPIRE and the ZREM, nothing read.
pub static RECORD_ATTEMPT: LazyLock<Script> = LazyLock::new(|| {
    fenced(
        3,
        1,
        r#"
local retention = ARGV[2]
local keep_place = ARGV[3]
local nstats = tonumber(ARGV[#ARGV])
local nrec = #KEYS - 4 - nstats
local codes = {}
for i = 4, 3 + nrec do
  local a = 3 + (i - 4) * 8
  local record = KEYS[i]
  local id, status, n, json, at, next_ms, reason, new =
    ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]
  -- The common case reads nothing. A delivery pulled without a record gets one here: the
  -- HSET adding all 8 fields means nobody wrote one meanwhile (a replay or the janitor's
  -- dead-marking creates one). Otherwise `k` is on the record from this script's last write,
  -- and a replay, the dead-marking and expiry each take it away: the HSET adding exactly one
  -- field (this attempt's `aN`) means none of them happened.
  local added, expected, expire
  if new ~= '' then
    added = redis.call('HSET', record, 'status', status, 'attempts', n, 'a' .. n, json,
      'updated_ms', at, 'next_ms', next_ms, 'k', '1', 'created_ms', string.format('%.0f', math.floor(tonumber(new))), 'order', new)
    expected, expire = 8, true
  else
    added = redis.call('HSET', record, 'status', status, 'attempts', n, 'a' .. n, json,
      'updated_ms', at, 'next_ms', next_ms, 'k', '1')
    expected, expire = 1, n ~= '1' or status ~= 'delivered'
  end
  local replayed, kept_dead = false, false
  if added ~= expected then
    local prior = redis.call('HMGET', record, 'replayed_ms', 'reason')
    expire = true
    if prior[2] == 'endpoint_deleted' and status ~= 'delivered' then
      redis.call('HSET', record, 'status', 'dead', 'next_ms', 0)
      kept_dead = true
    else
      if prior[2] and prior[2] ~= '' and status ~= 'dead' then redis.call('HSET', record, 'reason', '') end
      replayed = tonumber(prior[1] or '0') >= tonumber(at)
    end
  end
  if kept_dead then
    codes[#codes + 1] = 0
  else
    if expire then redis.call('EXPIRE', record, retention) end
    if replayed then
      redis.call('HSET', record, 'status', 'pending', 'next_ms', 0, 'reason', '', 'cycle_from', n)
      redis.call('ZREM', KEYS[2], id)
      if not redis.call('ZSCORE', KEYS[1], id) then
        local score = at
        if keep_place == '1' then score = redis.call('HGET', record, 'order') or at end
        redis.call('ZADD', KEYS[1], score, id)
      end
      codes[#codes + 1] = 2
    else
      if status == 'delivered' then
        redis.call('ZREM', KEYS[1], id)
      elseif status == 'failed' then
        if keep_place ~= '1' then redis.call('ZADD', KEYS[1], 'XX', next_ms, id) end
      else
        redis.call('HSET', record, 'reason', reason)
        redis.call('ZREM', KEYS[1], id)
        redis.call('ZADD', KEYS[2], at, id)
        redis.call('EXPIRE', KEYS[2], retention)
        local old = redis.call('ZCOUNT', KEYS[2], '-inf', tonumber(at) - tonumber(retention) * 1000)
        if old > 2 then old = 2 end
        if old > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, old - 1) end
      end
      codes[#codes + 1] = 1
    end
  end
end
local a = 4 + nrec * 8
local dirty, ttl, endpoint = KEYS[#KEYS], ARGV[#ARGV - 2], ARGV[#ARGV - 1]
for j = 1, nstats do
  local key = KEYS[3 + nrec + j]
  local minute = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  local fresh = false
  for _ = 1, n do
    if redis.call('HINCRBY', key, ARGV[a], ARGV[a + 1]) == tonumber(ARGV[a + 1]) then fresh = true end
    a = a + 2
  end
  if fresh then
    redis.call('EXPIRE', key, ttl)
    redis.call('ZADD', dirty, 'LT', minute, endpoint)
  end
end
return codes
"#,
    )
});

/// KEYS: queue, due, shard lease[, head delivery record]. ARGV: endpoint id,
/// paused 0|1, not-before ms (0: none), fencing token `node#epoch`[, head event id]. Fenced
/// like RECORD_ATTEMPT: -1 and nothing written unless the token is the current holder's. Sets the endpoint's due entry to its earliest queued delivery
/// (but not before not-before), or removes it, in the same step as reading the queue, so work
/// routed while the actor stops is never missed. For an ordered endpoint waiting on its head's
/// retry, the head's record is passed and its `next_ms` is read here, not taken from the actor,
/// so a replay that made the head due meanwhile is not overwritten. Returns the due time or nil.
pub static SETTLE_IDLE: LazyLock<Script> = LazyLock::new(|| {
    fenced(
        3,
        4,
        r#"
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #head == 0 or ARGV[2] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  if #head == 0 then return false end
  return head[2]
end
local due = tonumber(head[2])
local not_before = tonumber(ARGV[3])
if #KEYS == 4 then
  not_before = 0
  if head[1] == ARGV[5] then
    not_before = tonumber(redis.call('HGET', KEYS[4], 'next_ms') or '0')
  end
end
-- The head's score as Redis wrote it (Lua's tostring prints 14 digits: `ms + (seq + 1)/4096` would
-- lose its fraction), or the later not-before.
local score = head[2]
if not_before > due then score = string.format('%.0f', not_before) end
redis.call('ZADD', KEYS[2], score, ARGV[1])
return score
"#,
    )
});

/// KEYS: key, shard lease. ARGV: value, fencing token `node#epoch`, expiry in ms
/// (0: none). SET for an endpoint actor's state between owners (its health: breaker and failure
/// run; its rate limiter's bucket), only for the shard's current holder: -1 and nothing written
/// otherwise, so a node that lost the shard cannot overwrite what the new owner works with.
pub static FENCED_SET: LazyLock<Script> = LazyLock::new(|| {
    fenced(
        2,
        2,
        r#"
if ARGV[3] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"#,
    )
});

/// KEYS: queue, due, dead letters, health, delivery log, dropped. ARGV: endpoint id,
/// retention s. Drops an endpoint's pending work, dead letters, health and delivery log at once
/// (O(1) for the queue: it is renamed to `dropped`, whose records the janitor then marks dead
/// in bounded steps; see MARK_DROPPED). Returns how many pending deliveries were dropped.
pub static DELETE_ENDPOINT_WORK: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local dropped = redis.call('ZCARD', KEYS[1])
if dropped > 0 then
  if redis.call('EXISTS', KEYS[6]) == 0 then
    redis.call('RENAME', KEYS[1], KEYS[6])
  else
    redis.call('ZUNIONSTORE', KEYS[6], 2, KEYS[6], KEYS[1], 'AGGREGATE', 'MIN')
  end
  redis.call('EXPIRE', KEYS[6], ARGV[2])
end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[2], ARGV[1])
return dropped
"#,
    )
});

/// KEYS: dropped, delivery record × n. ARGV: event id × n, retention s, now ms. Marks these
/// deliveries of a deleted endpoint dead (`endpoint_deleted`) unless already delivered or
/// dead, and takes them out of `dropped`; one never attempted (no record: see ROUTE) gets a
/// dead record. Returns how many are left in `dropped`.
pub static MARK_DROPPED: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
for i = 2, #KEYS do
  local status = redis.call('HGET', KEYS[i], 'status')
  if not status then
    local score = redis.call('ZSCORE', KEYS[1], ARGV[i - 1])
    if score then
      redis.call('HSET', KEYS[i], 'status', 'dead', 'reason', 'endpoint_deleted', 'attempts', 0, 'next_ms', 0,
        'updated_ms', ARGV[#ARGV], 'created_ms', string.format('%.0f', math.floor(tonumber(score))), 'order', score)
      redis.call('EXPIRE', KEYS[i], ARGV[#ARGV - 1])
    end
  elseif status ~= 'delivered' and status ~= 'dead' then
    redis.call('HSET', KEYS[i], 'status', 'dead', 'reason', 'endpoint_deleted', 'next_ms', 0,
      'updated_ms', ARGV[#ARGV])
    redis.call('HDEL', KEYS[i], 'k')
  end
  redis.call('ZREM', KEYS[1], ARGV[i - 1])
end
return redis.call('ZCARD', KEYS[1])
"#,
    )
});

/// KEYS: stream. ARGV: group, consumer, idle ms. Deletes the consumer only if it holds no
/// pending entries and has been idle longer than that, checked and done in one step (entries it
/// read between a separate check and the delete would be lost with it). 1 if deleted.
pub static DELETE_IDLE_CONSUMER: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
for _, c in ipairs(consumers) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] == ARGV[2] then
    if tonumber(f['pending']) == 0 and tonumber(f['idle']) > tonumber(ARGV[3]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
      return 1
    end
    return 0
  end
end
return 0
"#,
    )
});

/// KEYS: a sorted set. ARGV: cutoff score, most to remove. Removes the members scored at or
/// below the cutoff, oldest first, at most that many (bounded work per call). Returns how many.
pub static TRIM_OLDEST: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local n = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
local cap = tonumber(ARGV[2])
if n > cap then n = cap end
if n > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - 1) end
return n
"#,
    )
});

/// KEYS: queue, due, dead letters, delivery record × n. ARGV: endpoint id, now ms, ordered 0|1,
/// event id × n, retention s. Starts a new attempt cycle for each delivery that exists: out of
/// the dead letters, status pending, due now (for an ordered endpoint: back in its place in
/// line), retry schedule counted afresh from here. A queued delivery not attempted yet (no
/// record: see ROUTE) gets its record here, so an attempt under way sees the replay. Dead
/// letters whose record expired are dropped. Returns how many were replayed.
pub static REPLAY: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local replayed = 0
for i = 4, #KEYS do
  local event_id = ARGV[i]
  redis.call('ZREM', KEYS[3], event_id)
  local record = redis.call('HMGET', KEYS[i], 'attempts', 'order')
  if not record[1] then
    local queued = redis.call('ZSCORE', KEYS[1], event_id)
    if queued then
      redis.call('HSET', KEYS[i], 'attempts', 0, 'created_ms', string.format('%.0f', math.floor(tonumber(queued))),
        'order', queued, 'updated_ms', 0)
      redis.call('EXPIRE', KEYS[i], ARGV[#ARGV])
      record = {'0', queued}
    end
  end
  if record[1] then
    redis.call('HSET', KEYS[i], 'status', 'pending', 'next_ms', 0, 'reason', '', 'cycle_from', record[1],
      'replayed_ms', ARGV[2])
    redis.call('HDEL', KEYS[i], 'k')
    local score = ARGV[2]
    if ARGV[3] == '1' and record[2] then score = record[2] end
    redis.call('ZADD', KEYS[1], score, event_id)
    replayed = replayed + 1
  end
end
if replayed > 0 then redis.call('ZADD', KEYS[2], 'LT', ARGV[2], ARGV[1]) end
return replayed
"#,
    )
});

/// The script's name, for metric labels (bounded: one per script above).
pub fn name_of(script: &Script) -> &'static str {
    let all: [(&'static str, &LazyLock<Script>); 19] = [
        ("ingest", &super::ingest::INGEST),
        ("audited", &AUDITED),
        ("route", &ROUTE),
        ("record_attempt", &RECORD_ATTEMPT),
        ("settle_idle", &SETTLE_IDLE),
        ("ack_routed", &ACK_ROUTED),
        ("check_layout", &CHECK_LAYOUT),
        ("fenced_set", &FENCED_SET),
        ("hold_lease", &super::leases::HOLD_LEASE),
        ("renew_lease", &super::leases::RENEW_LEASE),
        ("release_lease", &super::leases::RELEASE_LEASE),
        ("heartbeat", &super::leases::HEARTBEAT),
        ("delete_endpoint_work", &DELETE_ENDPOINT_WORK),
        ("mark_dropped", &MARK_DROPPED),
        ("trim_oldest", &TRIM_OLDEST),
        ("delete_idle_consumer", &DELETE_IDLE_CONSUMER),
        ("replay", &REPLAY),
        ("first_unrouted", &FIRST_UNROUTED),
        ("roll_stats", &super::stats::ROLL_STATS),
    ];
    all.iter()
        .find(|(_, s)| std::ptr::eq(script, &***s))
        .map_or("other", |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_has_its_own_name() {
        assert_eq!(name_of(&super::super::ingest::INGEST), "ingest");
        assert_eq!(name_of(&RECORD_ATTEMPT), "record_attempt");
        assert_eq!(name_of(&REPLAY), "replay");
        assert_eq!(name_of(&Script::from_lua("return 1")), "other");
    }
}
