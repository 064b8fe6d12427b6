//! Admission state shared by replicas: rate-limit buckets and budget counters in Redis.
//!
//! Each check is ONE server-side Lua script (atomic on the Redis server, using Redis' own
//! clock), so N gateways enforce one limit. Every Redis call is bounded by a timeout. When
//! Redis fails, `REDIS_FAIL_MODE` decides: `open` (default) falls back to this process's own
//! limiter and ledger; `closed` refuses with `rate_limit_exceeded` (Retry-After: 1). Either
//! way `/readyz` reports Redis as down and `gateway_redis_errors_total` counts the failures.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::Mutex;

use super::budget::{applicable, budget_key, Hold, DAY};
use super::rate::Decision;
use crate::config::{RateLimit, Tenant};

const OP_TIMEOUT: Duration = Duration::from_millis(500);
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// GCRA: KEYS[1] bucket; ARGV[1] emission interval (µs), ARGV[2] burst.
/// Returns {allowed, remaining, retry_after_us, reset_us}.
const GCRA: &str = r"
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local dvt = period * burst
local new_tat = tat + period
local allow_at = new_tat - dvt
if allow_at > now then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, math.floor((dvt - (new_tat - now)) / period), 0, new_tat - now}
";

/// Budget reservation over N budgets, all or nothing.
/// KEYS: per budget its requests key then its tokens key.
/// ARGV: ttl, tokens to reserve, then per budget: request limit, token limit (-1 = none).
const RESERVE: &str = r"
local ttl = tonumber(ARGV[1])
local reserve = tonumber(ARGV[2])
local n = #KEYS / 2
for i = 1, n do
  local r = tonumber(redis.call('GET', KEYS[2*i-1]) or '0')
  local tk = tonumber(redis.call('GET', KEYS[2*i]) or '0')
  local rl = tonumber(ARGV[1 + 2*i])
  local tl = tonumber(ARGV[2 + 2*i])
  if (rl >= 0 and r + 1 > rl) or (tl >= 0 and tk + reserve > tl) then return 0 end
end
for i = 1, n do
  redis.call('INCR', KEYS[2*i-1]); redis.call('EXPIRE', KEYS[2*i-1], ttl)
  redis.call('INCRBY', KEYS[2*i], reserve); redis.call('EXPIRE', KEYS[2*i], ttl)
end
return 1
";

/// Concurrency slots: KEYS[1] a sorted set of slot ids scored by their expiry (ms).
/// ARGV: max, slot id, ttl (ms). Expired slots (a crashed replica's) are dropped first.
/// Returns 1 when the slot was taken.
const ACQUIRE_SLOT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
";

pub struct RedisShared {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    /// After a failed connect or a timed-out call, callers fail fast for `RECONNECT_AFTER`
    /// instead of queueing behind it: an outage must not add latency to every request.
    last_failure: parking_lot::Mutex<Option<std::time::Instant>>,
    gcra: Script,
    reserve: Script,
    acquire_slot: Script,
    pub fail_closed: bool,
}

impl std::fmt::Debug for RedisShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisShared")
            .field("fail_closed", &self.fail_closed)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct SharedError(pub String);

impl From<redis::RedisError> for SharedError {
    fn from(e: redis::RedisError) -> Self {
        SharedError(e.to_string())
    }
}

impl RedisShared {
    pub fn new(url: &str, fail_closed: bool) -> Result<Self, SharedError> {
        Ok(RedisShared {
            client: redis::Client::open(url)?,
            conn: Mutex::new(None),
            last_failure: parking_lot::Mutex::new(None),
            gcra: Script::new(GCRA),
            reserve: Script::new(RESERVE),
            acquire_slot: Script::new(ACQUIRE_SLOT),
            fail_closed,
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, SharedError> {
        if self
            .last_failure
            .lock()
            .is_some_and(|t| t.elapsed() < RECONNECT_AFTER)
        {
            return Err(SharedError(
                "unavailable (recent failure or timeout)".into(),
            ));
        }
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        if self
            .last_failure
            .lock()
            .is_some_and(|t| t.elapsed() < RECONNECT_AFTER)
        {
            return Err(SharedError("unavailable (recent connect failure)".into()));
        }
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(OP_TIMEOUT)
            .set_response_timeout(OP_TIMEOUT)
            .set_number_of_retries(0);
        let c = tokio::time::timeout(
            OP_TIMEOUT,
            ConnectionManager::new_with_config(self.client.clone(), cfg),
        )
        .await
        .map_err(|_| SharedError("connect timed out".into()))
        .and_then(|r| r.map_err(SharedError::from));
        match c {
            Ok(c) => {
                *self.last_failure.lock() = None;
                *slot = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                *self.last_failure.lock() = Some(std::time::Instant::now());
                Err(e)
            }
        }
    }

    pub async fn check(&self, key: &[u8; 32], rate: RateLimit) -> Result<Decision, SharedError> {
        let mut c = self.conn().await?;
        let period_us = (1_000_000.0 / rate.rps).max(1.0).round() as i64;
        let k = format!(
            "gw:rl:{}:{}:{}",
            hex::encode(&key[..16]),
            period_us,
            rate.burst
        );
        let mut inv = self.gcra.key(k);
        inv.arg(period_us).arg(rate.burst);
        let v: Vec<i64> = self.bounded(inv.invoke_async(&mut c)).await?;
        let get = |i: usize| v.get(i).copied().unwrap_or(0).max(0) as u64;
        Ok(Decision {
            allowed: get(0) == 1,
            limit: rate.burst,
            remaining: get(1) as u32,
            retry_after: Duration::from_micros(get(2)),
            reset: Duration::from_micros(get(3)),
        })
    }

    pub async fn reserve(
        &self,
        tenant: &Tenant,
        alias: &str,
        tokens: u64,
        now_unix: u64,
    ) -> Result<Option<Vec<Hold>>, SharedError> {
        let day = now_unix / DAY;
        let budgets: Vec<_> = applicable(tenant, alias).collect();
        if budgets.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut c = self.conn().await?;
        let mut inv = self.reserve.prepare_invoke();
        inv.arg(2 * DAY).arg(tokens);
        let mut holds = Vec::new();
        for b in &budgets {
            let key = budget_key(&tenant.id, &b.model, day);
            inv.key(format!("{key}:req")).key(format!("{key}:tok"));
            inv.arg(b.requests_per_day.map_or(-1, |x| x as i64))
                .arg(b.tokens_per_day.map_or(-1, |x| x as i64));
            holds.push(Hold {
                in_redis: true,
                key,
                reserved_tokens: tokens,
            });
        }
        let ok: i64 = self.bounded(inv.invoke_async(&mut c)).await?;
        Ok((ok == 1).then_some(holds))
    }

    pub async fn settle(&self, holds: &[Hold], used_tokens: u64) -> Result<(), SharedError> {
        if holds.is_empty() {
            return Ok(());
        }
        let mut c = self.conn().await?;
        let mut pipe = redis::pipe();
        for h in holds {
            let delta = used_tokens as i64 - h.reserved_tokens as i64;
            pipe.incr(format!("{}:tok", h.key), delta).ignore();
        }
        self.bounded(pipe.query_async::<()>(&mut c)).await?;
        Ok(())
    }

    /// Takes one of `max` slots of the token `key` for at most `ttl` (the safety expiry).
    pub async fn acquire_slot(
        &self,
        key: &[u8; 32],
        max: u32,
        member: &str,
        ttl: Duration,
    ) -> Result<bool, SharedError> {
        let mut c = self.conn().await?;
        let mut inv = self.acquire_slot.key(slot_key(key));
        inv.arg(max).arg(member).arg(ttl.as_millis() as u64);
        match tokio::time::timeout(OP_TIMEOUT, inv.invoke_async::<i64>(&mut c)).await {
            Ok(Ok(ok)) => return Ok(ok == 1),
            Ok(Err(e)) if !e.is_timeout() => return Err(e.into()),
            // The connection's own response timeout (the same OP_TIMEOUT) or ours.
            Ok(Err(_)) | Err(_) => {}
        }
        // The script was sent and may still run once Redis catches up, taking a slot nobody
        // will release (the request falls back per REDIS_FAIL_MODE): remove the member on the
        // same connection, so Redis runs it after the script. Without this the slot stayed
        // taken until its TTL (tests/redis_paths.rs).
        let (slots, member) = (slot_key(key), member.to_owned());
        tokio::spawn(async move {
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(slots).arg(member);
            let _ = tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<i64>(&mut c)).await;
        });
        Err(SharedError("timed out".into()))
    }

    pub async fn release_slot(&self, key: &[u8; 32], member: &str) -> Result<(), SharedError> {
        let mut c = self.conn().await?;
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(slot_key(key)).arg(member);
        tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<i64>(&mut c))
            .await
            .map_err(|_| SharedError("timed out".into()))??;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), SharedError> {
        let mut c = self.conn().await?;
        let cmd = redis::cmd("PING");
        self.bounded(cmd.query_async::<String>(&mut c)).await?;
        Ok(())
    }

    /// One Redis call bounded by `OP_TIMEOUT`. A timeout or a broken connection opens the
    /// fast-fail window like a failed connect does: a stalled Redis (SIGSTOP, a full network
    /// buffer) costs at most one `OP_TIMEOUT` per `RECONNECT_AFTER`, not one per request.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, SharedError> {
        match tokio::time::timeout(OP_TIMEOUT, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    self.trip();
                }
                Err(e.into())
            }
            Err(_) => {
                self.trip();
                Err(SharedError("timed out".into()))
            }
        }
    }

    fn trip(&self) {
        *self.last_failure.lock() = Some(std::time::Instant::now());
    }
}

fn slot_key(key: &[u8; 32]) -> String {
    format!("gw:cc:{}", hex::encode(&key[..16]))
}
