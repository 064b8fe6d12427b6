//! Per-token rate limiting (GCRA, via `governor`) and the OpenAI-style rate-limit headers.
//!
//! One keyed limiter per distinct quota (the default and each tenant override), keyed on
//! the SHA-256 of the bearer. Public routes get a separate per-client-IP limiter.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::catalog::Code;
use crate::config::RateLimit;
use crate::error::ApiError;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// The outcome of one admission check, enough to write every rate-limit header.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Time until the bucket is full again.
    pub reset: Duration,
    /// For a refusal: time until one request would be admitted.
    pub retry_after: Duration,
}

impl Decision {
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        self.insert_headers(&mut h);
        h
    }

    /// The rate-limit headers, straight into `h` (a response's own map: no map built and
    /// merged per request).
    pub fn insert_headers(&self, h: &mut HeaderMap) {
        h.insert(
            crate::contract::RATELIMIT_LIMIT,
            HeaderValue::from(self.limit),
        );
        h.insert(
            crate::contract::RATELIMIT_REMAINING,
            HeaderValue::from(self.remaining),
        );
        // The formatted text becomes the value's bytes as it is (`from_str` would copy it).
        let reset = axum::body::Bytes::from(format_duration(self.reset));
        if let Ok(v) = HeaderValue::from_maybe_shared(reset) {
            h.insert(crate::contract::RATELIMIT_RESET, v);
        }
    }

    pub fn into_error(self) -> ApiError {
        let secs = ceil_secs(self.retry_after);
        let mut e = ApiError::new(
            Code::RateLimitExceeded,
            format!("rate limit exceeded for this token; retry in {secs} s"),
        )
        .retry_after(secs);
        e.headers = self.headers();
        e
    }
}

pub(crate) fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// OpenAI writes reset times as Go-style durations (`1s`, `6m0s`, `20ms`).
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        let secs = ceil_secs(d);
        if secs < 60 {
            format!("{secs}s")
        } else {
            format!("{}m{}s", secs / 60, secs % 60)
        }
    }
}

fn quota(rate: RateLimit) -> Quota {
    let period = Duration::from_secs_f64(1.0 / rate.rps).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

struct Bucket<K: std::hash::Hash + Eq + Clone> {
    rate: RateLimit,
    limiter: Keyed<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Bucket<K> {
    fn new(rate: RateLimit) -> Self {
        Bucket {
            rate,
            limiter: RateLimiter::keyed(quota(rate))
                .with_middleware::<StateInformationMiddleware>(),
        }
    }

    fn check(&self, key: &K) -> Decision {
        let period = Duration::from_secs_f64(1.0 / self.rate.rps);
        match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit: self.rate.burst,
                    remaining,
                    reset: period * (self.rate.burst - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Decision {
                    allowed: false,
                    limit: self.rate.burst,
                    remaining: 0,
                    reset: period * self.rate.burst,
                    retry_after: wait,
                }
            }
        }
    }
}

/// The in-process limiter set, built once from the configuration.
pub struct LocalLimiters {
    by_rate: Vec<Bucket<[u8; 32]>>,
    public: Bucket<IpAddr>,
}

/// Unauthenticated routes (`/errors`, `/docs/errors`, `/openapi.json`) per client IP: the
/// answers are static and cheap, so the bucket is sized for a conformance run from one CI
/// address (a few hundred look-ups at once), while still capping a flood from one address.
pub(crate) const PUBLIC_RATE: RateLimit = RateLimit {
    rps: 100.0,
    burst: 1000,
};

impl LocalLimiters {
    pub fn new(default: RateLimit, overrides: impl IntoIterator<Item = RateLimit>) -> Self {
        let mut by_rate = vec![Bucket::new(default)];
        for r in overrides {
            if !by_rate.iter().any(|b| b.rate == r) {
                by_rate.push(Bucket::new(r));
            }
        }
        LocalLimiters {
            by_rate,
            public: Bucket::new(PUBLIC_RATE),
        }
    }

    pub fn check(&self, key: &[u8; 32], rate: RateLimit) -> Decision {
        let bucket = self
            .by_rate
            .iter()
            .find(|b| b.rate == rate)
            .unwrap_or(&self.by_rate[0]);
        bucket.check(key)
    }

    pub fn check_ip(&self, ip: IpAddr) -> Decision {
        self.public.check(&ip)
    }

    /// Forget idle keys so that a flood of distinct tokens cannot grow memory without bound.
    pub fn retain_recent(&self) {
        for b in &self.by_rate {
            b.limiter.retain_recent();
        }
        self.public.limiter.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_admitted_then_refused_with_retry_after() {
        let l = LocalLimiters::new(RateLimit { rps: 1.0, burst: 3 }, []);
        let key = [7u8; 32];
        let remaining: Vec<u32> = (0..3)
            .map(|_| l.check(&key, RateLimit { rps: 1.0, burst: 3 }).remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let d = l.check(&key, RateLimit { rps: 1.0, burst: 3 });
        assert!(!d.allowed);
        assert_eq!(ceil_secs(d.retry_after), 1);
        // another key has its own bucket
        assert!(
            l.check(&[8u8; 32], RateLimit { rps: 1.0, burst: 3 })
                .allowed
        );
    }

    #[test]
    fn overrides_get_their_own_bucket() {
        let slow = RateLimit { rps: 0.5, burst: 1 };
        let l = LocalLimiters::new(
            RateLimit {
                rps: 1.0,
                burst: 30,
            },
            [slow],
        );
        let key = [1u8; 32];
        assert!(l.check(&key, slow).allowed);
        let d = l.check(&key, slow);
        assert!(!d.allowed);
        assert_eq!(ceil_secs(d.retry_after), 2);
        assert_eq!(d.into_error().retry_after, Some(2));
    }

    #[test]
    fn durations_are_formatted_like_openai() {
        assert_eq!(format_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(format_duration(Duration::from_secs(1)), "1s");
        assert_eq!(format_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(ceil_secs(Duration::from_millis(1001)), 2);
    }
}
