//! Admission policy: Redis first, this process's own limiter and ledger as the fallback
//! (`REDIS_FAIL_MODE`), and the [`Reservation`] a request holds on its budgets until it ends.

use std::time::Duration;

use crate::catalog::Code;
use crate::config::{RateLimit, Tenant};
use crate::error::ApiError;
use crate::state::{secs_to_utc_midnight, AppState};

use super::budget::Hold;
use super::rate::Decision;

impl AppState {
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

    /// Reserves the request against the tenant's budgets for `alias`: `prompt_estimate`
    /// (what is sent) plus `output_cap` (what may come back).
    pub async fn reserve(
        &self,
        tenant: &Tenant,
        alias: &str,
        prompt_estimate: u64,
        output_cap: u64,
    ) -> Result<Reservation, ApiError> {
        let tokens = prompt_estimate.saturating_add(output_cap);
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
                        if redis.fail_closed {
                            // The refusal carries the cause: the edge logs it.
                            return Err(refused().retry_after(1).caused_by(e));
                        }
                        tracing::warn!(error = %e, "redis budget reservation failed; local fallback");
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
            prompt_estimate,
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
/// is dropped unsettled (the caller went away mid-request), it is charged what was sent (the
/// prompt estimate), never 0: hanging up must not be a way around a budget.
#[must_use = "settle the reservation with the upstream's usage"]
pub struct Reservation {
    state: Option<AppState>,
    holds: Vec<Hold>,
    prompt_estimate: u64,
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
            prompt_estimate: 0,
        }
    }

    pub async fn settle(mut self, used_tokens: u64) {
        if let Some(state) = self.state.take() {
            state.settle_holds(&self.holds, used_tokens).await;
        }
    }

    /// Settles a request the caller abandoned: the upstream's own count when it reported one,
    /// else what was sent (the prompt estimate) plus what was streamed — never 0.
    pub async fn settle_abandoned(self, reported_tokens: u64, streamed_tokens: u64) {
        let floor = self.prompt_estimate.saturating_add(streamed_tokens);
        self.settle(reported_tokens.max(floor)).await;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            let holds = std::mem::take(&mut self.holds);
            let charged = self.prompt_estimate;
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { state.settle_holds(&holds, charged).await });
            }
        }
    }
}
