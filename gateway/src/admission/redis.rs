//! Admission state shared by replicas: rate-limit buckets and budget counters in Redis.
//!
//! Each check is ONE server-side Lua script (atomic on the Redis server, using Redis' own
//! clock), so N gateways enforce one limit. Every Redis call is bounded by REDIS_TIMEOUT_MS.
//! When Redis fails, `REDIS_FAIL_MODE` decides: `open` (default) falls back to this process's
//! own limiter and ledger; `closed` refuses with `rate_limit_exceeded` (Retry-After: 1). Either
//! way `/readyz` reports Redis as down and `gateway_redis_errors_total` counts the failures.
//!
//! Two invariants hold under a slow or stalled Redis (tests/redis_paths.rs, SIGSTOP):
//! - A deciding call (rate check, budget reservation, slot acquire) that failed here has no
//!   effect in Redis, even when its script runs there later: each carries an op id; a script
//!   that changes state leaves a marker `gw:op:<id>` (for MARK_FACTOR × the timeout) saying
//!   how to undo it, and a failed call sends `UNDO` on the same connection, so it runs after
//!   the script. An `UNDO` that runs first (another connection, after a reconnect) leaves a
//!   tombstone for TOMBSTONE_TTL that makes the script a no-op.
//! - A stalled Redis costs one timeout, not one per request or per retry interval: the
//!   breaker opens on a timeout or a broken connection, deciding calls then fail at once
//!   (the fail mode answers), and a background probe closes it when Redis answers a PING.
//!   Clean-ups (settlements, slot releases, undos) bypass the breaker: they are written to
//!   the existing connection and land, in order, when Redis resumes.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Script, ScriptInvocation};
use tokio::sync::Mutex;

use super::budget::{applicable, budget_key, Hold, DAY};
use super::rate::Decision;
use super::redis_scripts::{ACQUIRE_SLOT, GCRA, RESERVE, UNDO};
use crate::config::{RateLimit, RedisLimits, Tenant};

/// A marker lives this many call timeouts: its undo, sent on the same connection right after
/// the timeout, runs at most about one timeout after the script did.
const MARK_FACTOR: u32 = 10;
/// How long an undo that ran before its script keeps that script from acting.
const TOMBSTONE_TTL: Duration = Duration::from_secs(3600);

pub struct RedisShared {
    link: Arc<Link>,
    gcra: Script,
    reserve: Script,
    acquire_slot: Script,
    pub fail_closed: bool,
}

/// The connection and its breaker, shared with the background probe and the undo tasks.
struct Link {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    breaker: parking_lot::Mutex<Breaker>,
    limits: RedisLimits,
    undo: Script,
}

#[derive(Default)]
struct Breaker {
    /// Deciding calls fail at once (no request waits on a Redis that just failed).
    open: bool,
    /// A probe task is running; it alone closes the breaker.
    probing: bool,
}

/// What a failed deciding call asks Redis to undo: its kind and the keys of `UNDO`.
struct Undo {
    kind: &'static str,
    keys: Vec<String>,
}

impl std::fmt::Debug for RedisShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisShared")
            .field("fail_closed", &self.fail_closed)
            .field("limits", &self.link.limits)
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

/// Whether `e` may mean the command was written but its answer lost (so it may still run),
/// or that the connection is unusable: both open the breaker.
fn lost(e: &redis::RedisError) -> bool {
    e.is_timeout() || e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}

impl Link {
    fn is_open(&self) -> bool {
        self.breaker.lock().open
    }

    /// Opens the breaker; the first trip starts the probe that will close it.
    fn trip(self: &Arc<Self>) {
        let mut b = self.breaker.lock();
        b.open = true;
        if b.probing {
            return;
        }
        b.probing = true;
        drop(b);
        let weak = Arc::downgrade(self);
        let retry = self.limits.retry;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(probe(weak, retry));
        }
    }

    /// The connection, connecting (bounded) if there is none; ignores the breaker.
    async fn connect(&self) -> Result<ConnectionManager, SharedError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let t = self.limits.timeout;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(t)
            .set_response_timeout(t)
            .set_number_of_retries(0);
        let c = tokio::time::timeout(
            t,
            ConnectionManager::new_with_config(self.client.clone(), cfg),
        )
        .await
        .map_err(|_| SharedError("connect timed out".into()))??;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// The connection for a deciding call: none while the breaker is open.
    async fn conn(self: &Arc<Self>) -> Result<ConnectionManager, SharedError> {
        if self.is_open() {
            return Err(SharedError(
                "unavailable (breaker open after a timeout or failure)".into(),
            ));
        }
        self.connect().await.inspect_err(|_| self.trip())
    }

    /// The connection for a clean-up: the existing one even while the breaker is open (what
    /// is written there runs when Redis resumes), else a new one if the breaker allows.
    async fn cleanup_conn(self: &Arc<Self>) -> Result<ConnectionManager, SharedError> {
        if let Some(c) = self.conn.lock().await.as_ref() {
            return Ok(c.clone());
        }
        self.conn().await
    }

    /// Sends `undo` for op `op` on `c` (the failed call's connection), bounded.
    async fn send_undo(&self, mut c: ConnectionManager, op: String, undo: Undo) {
        let mut inv = self.undo.key(op);
        for k in undo.keys {
            inv.key(k);
        }
        inv.arg(undo.kind).arg(TOMBSTONE_TTL.as_millis() as u64);
        match tokio::time::timeout(self.limits.timeout, inv.invoke_async::<i64>(&mut c)).await {
            Ok(Ok(_)) => {}
            // Written but unanswered: it runs after the op when Redis resumes.
            Ok(Err(e)) if e.is_timeout() => {}
            Err(_) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, kind = undo.kind, "redis undo failed"),
        }
    }
}

/// Retries Redis every `retry` until it answers a PING, then closes the breaker; ends when
/// the gateway's Redis state is dropped.
async fn probe(link: Weak<Link>, retry: Duration) {
    loop {
        tokio::time::sleep(retry).await;
        let Some(link) = link.upgrade() else { return };
        let ok = match link.connect().await {
            Ok(mut c) => matches!(
                tokio::time::timeout(
                    link.limits.timeout,
                    redis::cmd("PING").query_async::<String>(&mut c)
                )
                .await,
                Ok(Ok(_))
            ),
            Err(_) => false,
        };
        if ok {
            *link.breaker.lock() = Breaker::default();
            return;
        }
    }
}

fn op_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn op_key(id: &str) -> String {
    format!("gw:op:{id}")
}

impl RedisShared {
    pub fn new(url: &str, fail_closed: bool) -> Result<Self, SharedError> {
        Self::with_limits(url, fail_closed, RedisLimits::default())
    }

    pub fn with_limits(
        url: &str,
        fail_closed: bool,
        limits: RedisLimits,
    ) -> Result<Self, SharedError> {
        Ok(RedisShared {
            link: Arc::new(Link {
                client: redis::Client::open(url)?,
                conn: Mutex::new(None),
                breaker: Default::default(),
                limits,
                undo: Script::new(UNDO),
            }),
            gcra: Script::new(GCRA),
            reserve: Script::new(RESERVE),
            acquire_slot: Script::new(ACQUIRE_SLOT),
            fail_closed,
        })
    }

    fn mark_ttl_ms(&self) -> u64 {
        (self.link.limits.timeout * MARK_FACTOR)
            .as_millis()
            .max(1000) as u64
    }

    /// One deciding script call (its KEYS[1] is the marker of op `op`), bounded. On a timeout
    /// or a lost connection the breaker opens and `undo` follows on the same connection.
    async fn decide<T: redis::FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
        op: String,
        undo: Undo,
    ) -> Result<T, SharedError> {
        let mut c = self.link.conn().await?;
        let err =
            match tokio::time::timeout(self.link.limits.timeout, inv.invoke_async(&mut c)).await {
                Ok(Ok(v)) => return Ok(v),
                // Redis answered with an error: the script did not run to a change.
                Ok(Err(e)) if !lost(&e) => return Err(e.into()),
                Ok(Err(e)) => SharedError::from(e),
                Err(_) => SharedError("timed out".into()),
            };
        self.link.trip();
        let link = self.link.clone();
        tokio::spawn(async move { link.send_undo(c, op, undo).await });
        Err(err)
    }

    pub async fn check(&self, key: &[u8; 32], rate: RateLimit) -> Result<Decision, SharedError> {
        let period_us = (1_000_000.0 / rate.rps).max(1.0).round() as i64;
        let bucket = format!(
            "gw:rl:{}:{}:{}",
            hex::encode(&key[..16]),
            period_us,
            rate.burst
        );
        let op = op_key(&op_id());
        let mut inv = self.gcra.key(&op);
        inv.key(&bucket)
            .arg(period_us)
            .arg(rate.burst)
            .arg(self.mark_ttl_ms());
        let undo = Undo {
            kind: "rate",
            keys: vec![bucket],
        };
        let v: Vec<i64> = self.decide(&inv, op, undo).await?;
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
        let op = op_key(&op_id());
        let mut inv = self.reserve.key(&op);
        inv.arg(2 * DAY).arg(tokens).arg(self.mark_ttl_ms());
        let mut holds = Vec::new();
        let mut keys = Vec::new();
        for b in &budgets {
            let key = budget_key(&tenant.id, &b.model, day);
            let (req, tok) = (format!("{key}:req"), format!("{key}:tok"));
            inv.key(&req).key(&tok);
            keys.extend([req, tok]);
            inv.arg(b.requests_per_day.map_or(-1, |x| x as i64))
                .arg(b.tokens_per_day.map_or(-1, |x| x as i64));
            holds.push(Hold {
                in_redis: true,
                key,
                reserved_tokens: tokens,
            });
        }
        let undo = Undo {
            kind: "budget",
            keys,
        };
        let ok: i64 = self.decide(&inv, op, undo).await?;
        Ok((ok == 1).then_some(holds))
    }

    /// Replaces the reservations by the real usage. With the breaker open the settlement is
    /// written to the existing connection in the background (it lands when Redis resumes)
    /// instead of failing, which would leave the whole reservation charged until the day ends.
    pub async fn settle(&self, holds: &[Hold], used_tokens: u64) -> Result<(), SharedError> {
        if holds.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for h in holds {
            let delta = used_tokens as i64 - h.reserved_tokens as i64;
            pipe.incr(format!("{}:tok", h.key), delta).ignore();
        }
        if self.link.is_open() {
            let mut c = self.link.cleanup_conn().await?;
            let t = self.link.limits.timeout;
            tokio::spawn(async move {
                // A timeout here only means Redis has not resumed yet: the pipeline is sent.
                let _ = tokio::time::timeout(t, pipe.query_async::<()>(&mut c)).await;
            });
            return Ok(());
        }
        let mut c = self.link.conn().await?;
        self.bounded(pipe.query_async::<()>(&mut c)).await?;
        Ok(())
    }

    /// Takes one of `max` slots of the token `key` for at most `ttl` (the safety expiry).
    /// `member` is the slot's id and the op id of its undo.
    pub async fn acquire_slot(
        &self,
        key: &[u8; 32],
        max: u32,
        member: &str,
        ttl: Duration,
    ) -> Result<bool, SharedError> {
        let (op, slots) = (op_key(member), slot_key(key));
        let mut inv = self.acquire_slot.key(&op);
        inv.key(&slots)
            .arg(max)
            .arg(member)
            .arg(ttl.as_millis() as u64)
            .arg(self.mark_ttl_ms());
        let undo = Undo {
            kind: "slot",
            keys: vec![slots],
        };
        let ok: i64 = self.decide(&inv, op, undo).await?;
        Ok(ok == 1)
    }

    /// The undo a timed-out acquire sends, callable on its own (tests): removes the slot if
    /// the acquire ran, else keeps a later-running acquire from taking it.
    pub async fn cancel_slot(&self, key: &[u8; 32], member: &str) -> Result<(), SharedError> {
        let c = self.link.cleanup_conn().await?;
        let undo = Undo {
            kind: "slot",
            keys: vec![slot_key(key)],
        };
        self.link.send_undo(c, op_key(member), undo).await;
        Ok(())
    }

    /// Frees a slot; bypasses the breaker (a clean-up), bounded.
    pub async fn release_slot(&self, key: &[u8; 32], member: &str) -> Result<(), SharedError> {
        let mut c = self.link.cleanup_conn().await?;
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(slot_key(key)).arg(member);
        tokio::time::timeout(self.link.limits.timeout, cmd.query_async::<i64>(&mut c))
            .await
            .map_err(|_| SharedError("timed out (sent: it runs when Redis resumes)".into()))??;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), SharedError> {
        let mut c = self.link.conn().await?;
        let cmd = redis::cmd("PING");
        self.bounded(cmd.query_async::<String>(&mut c)).await?;
        Ok(())
    }

    /// One non-script call bounded by REDIS_TIMEOUT_MS; a timeout or a broken connection
    /// opens the breaker like a failed connect does.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, SharedError> {
        match tokio::time::timeout(self.link.limits.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if lost(&e) {
                    self.link.trip();
                }
                Err(e.into())
            }
            Err(_) => {
                self.link.trip();
                Err(SharedError("timed out".into()))
            }
        }
    }
}

fn slot_key(key: &[u8; 32]) -> String {
    format!("gw:cc:{}", hex::encode(&key[..16]))
}
