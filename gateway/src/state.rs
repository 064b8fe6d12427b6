//! Shared application state: configuration, the pooled upstream client, admission (rate
//! limits and budgets, local or in Redis), the conversation store, metrics, the clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::catalog::Code;
use crate::config::{Config, RateLimit, Tenant};
use crate::error::ApiError;
use crate::ledger::{Hold, LocalLedger};
use crate::limits::{Decision, LocalLimiters};
use crate::metrics::Metrics;
use crate::shared::RedisShared;
use crate::store::Store;

/// Wall-clock seconds, injectable so that tests can stand just before midnight UTC.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_unix(&self) -> u64;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock fixed at one instant (tests).
#[derive(Debug)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now_unix(&self) -> u64 {
        self.0
    }
}

/// Seconds until the next 00:00 UTC, at least 1.
pub fn secs_to_utc_midnight(now_unix: u64) -> u64 {
    86_400 - now_unix % 86_400
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot open the conversation store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Redis(#[from] crate::shared::SharedError),
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub http: reqwest::Client,
    pub limiters: Arc<LocalLimiters>,
    pub ledger: Arc<LocalLedger>,
    pub redis: Option<Arc<RedisShared>>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    pub fn new(config: Config) -> Result<AppState, StartError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    pub fn with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<AppState, StartError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            // The total timeout is applied per request (HTTP_TOTAL_TIMEOUT_SECS); this only
            // bounds the TCP/TLS handshake so a black-holed upstream fails as unavailable.
            .connect_timeout(Duration::from_secs(10).min(config.http_total_timeout))
            .build()?;
        let overrides = config.tenants.iter().filter_map(|t| t.rate_limit);
        let limiters = Arc::new(LocalLimiters::new(config.rate_limit, overrides));
        let store = Store::open(&config.sqlite_path)?;
        let redis = match &config.redis_url {
            Some(url) => Some(Arc::new(RedisShared::new(url, config.redis_fail_closed)?)),
            None => None,
        };
        Ok(AppState {
            config: Arc::new(config),
            http,
            limiters,
            ledger: Arc::new(LocalLedger::default()),
            redis,
            store,
            metrics: Arc::new(Metrics::new()),
            clock,
        })
    }

    /// Rate-limit admission for one bearer key.
    pub async fn admit(&self, key: &[u8; 32], rate: RateLimit) -> Decision {
        if let Some(redis) = &self.redis {
            match redis.check(key, rate).await {
                Ok(d) => return d,
                Err(e) => {
                    self.metrics.redis_error();
                    tracing::warn!(error = %e, "redis rate-limit check failed");
                    if redis.fail_closed {
                        return Decision {
                            allowed: false,
                            limit: rate.burst,
                            remaining: 0,
                            reset: Duration::from_secs(1),
                            retry_after: Duration::from_secs(1),
                        };
                    }
                }
            }
        }
        self.limiters.check(key, rate)
    }

    /// Reserves the request against the tenant's budgets for `alias`.
    pub async fn reserve(
        &self,
        tenant: &Tenant,
        alias: &str,
        tokens: u64,
    ) -> Result<Reservation, ApiError> {
        if tenant.budgets.is_empty() {
            return Ok(Reservation::none());
        }
        let now = self.clock.now_unix();
        let refused = || {
            ApiError::new(
                Code::ModelQuotaExhausted,
                format!("the daily budget for model `{alias}` is used up for this tenant; pick another model or retry after the reset"),
            )
            .param("/model")
            .retry_after(secs_to_utc_midnight(now))
        };
        let holds = 'holds: {
            if let Some(redis) = &self.redis {
                match redis.reserve(tenant, alias, tokens, now).await {
                    Ok(Some(h)) => break 'holds h,
                    Ok(None) => return Err(refused()),
                    Err(e) => {
                        self.metrics.redis_error();
                        tracing::warn!(error = %e, "redis budget reservation failed");
                        if redis.fail_closed {
                            return Err(refused().retry_after(1));
                        }
                    }
                }
            }
            self.ledger
                .reserve(tenant, alias, tokens, now)
                .ok_or_else(refused)?
        };
        Ok(Reservation {
            state: (!holds.is_empty()).then(|| self.clone()),
            holds,
        })
    }

    /// Replaces reservations by the tokens the upstream reported, where each was made.
    async fn settle_holds(&self, holds: &[Hold], used_tokens: u64) {
        let (remote, local): (Vec<Hold>, Vec<Hold>) =
            holds.iter().cloned().partition(|h| h.in_redis);
        self.ledger.settle(&local, used_tokens);
        if let (Some(redis), false) = (&self.redis, remote.is_empty()) {
            if let Err(e) = redis.settle(&remote, used_tokens).await {
                self.metrics.redis_error();
                tracing::warn!(error = %e, "redis budget settlement failed");
            }
        }
    }
}

/// A request's hold on its budgets. Settled with the real usage when the request ends; if it
/// is dropped unsettled (the caller went away mid-request), its token reservation is released
/// and the request itself stays counted.
#[must_use = "settle the reservation with the upstream's usage"]
pub struct Reservation {
    state: Option<AppState>,
    holds: Vec<Hold>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("holds", &self.holds)
            .finish()
    }
}

impl Reservation {
    fn none() -> Self {
        Reservation {
            state: None,
            holds: Vec::new(),
        }
    }

    pub async fn settle(mut self, used_tokens: u64) {
        if let Some(state) = self.state.take() {
            state.settle_holds(&self.holds, used_tokens).await;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            let holds = std::mem::take(&mut self.holds);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { state.settle_holds(&holds, 0).await });
            }
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_countdown() {
        assert_eq!(secs_to_utc_midnight(0), 86_400);
        assert_eq!(secs_to_utc_midnight(86_400 - 1), 1);
        // 2026-05-16 15:00:00 UTC → 9 hours to midnight (the seed's Retry-After: 32400)
        assert_eq!(secs_to_utc_midnight(1_778_943_600), 32_400);
    }
}
