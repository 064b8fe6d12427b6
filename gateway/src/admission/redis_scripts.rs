//! The Lua scripts of [`super::redis`]: each runs atomically in Redis, on Redis' own clock.
//!
//! Every deciding script takes its op marker as KEYS[1]: present, it is a tombstone (the op
//! was undone before it ran) and the script changes nothing; on a change the script sets it
//! to what `UNDO` needs. See the invariants in `redis.rs`.

/// GCRA: KEYS[1] op marker, KEYS[2] bucket; ARGV[1] emission interval (µs), ARGV[2] burst,
/// ARGV[3] marker TTL (ms). Returns {allowed, remaining, retry_after_us, reset_us}.
pub(super) const GCRA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0, 0, 0} end
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[2]) or now)
if tat < now then tat = now end
local dvt = period * burst
local new_tat = tat + period
local allow_at = new_tat - dvt
if allow_at > now then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[2], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return {1, math.floor((dvt - (new_tat - now)) / period), 0, new_tat - now}
";

/// Budget reservation over N budgets, all or nothing.
/// KEYS: the op marker, then per budget its requests key then its tokens key.
/// ARGV: ttl, tokens to reserve, marker TTL (ms), then per budget: request limit, token
/// limit (-1 = none).
pub(super) const RESERVE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local ttl = tonumber(ARGV[1])
local reserve = tonumber(ARGV[2])
local n = (#KEYS - 1) / 2
for i = 1, n do
  local r = tonumber(redis.call('GET', KEYS[2*i]) or '0')
  local tk = tonumber(redis.call('GET', KEYS[2*i+1]) or '0')
  local rl = tonumber(ARGV[2 + 2*i])
  local tl = tonumber(ARGV[3 + 2*i])
  if (rl >= 0 and r + 1 > rl) or (tl >= 0 and tk + reserve > tl) then return 0 end
end
for i = 1, n do
  redis.call('INCR', KEYS[2*i]); redis.call('EXPIRE', KEYS[2*i], ttl)
  redis.call('INCRBY', KEYS[2*i+1], reserve); redis.call('EXPIRE', KEYS[2*i+1], ttl)
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// Concurrency slots: KEYS[1] op marker, KEYS[2] a sorted set of slot ids scored by their
/// expiry (ms). ARGV: max, slot id, ttl (ms), marker TTL (ms). Expired slots (a crashed
/// replica's) are dropped first. Returns 1 when the slot was taken.
pub(super) const ACQUIRE_SLOT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
return 1
";

/// Undoes one op: KEYS[1] its marker, KEYS[2..] the keys it changed; ARGV[1] its kind,
/// ARGV[2] the tombstone TTL (ms). Idempotent; run before its op, it makes the op a no-op.
pub(super) const UNDO: &str = r"
local m = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], 'undone', 'PX', ARGV[2])
if (not m) or m == 'undone' then return 0 end
if ARGV[1] == 'rate' then
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECRBY', KEYS[2], m) end
elseif ARGV[1] == 'budget' then
  for i = 2, #KEYS - 1, 2 do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('DECR', KEYS[i]) end
    if redis.call('EXISTS', KEYS[i+1]) == 1 then redis.call('DECRBY', KEYS[i+1], m) end
  end
elseif ARGV[1] == 'slot' then
  redis.call('ZREM', KEYS[2], m)
end
return 1
";
