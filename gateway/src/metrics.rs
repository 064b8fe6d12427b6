//! Prometheus metrics: requests by route, status and catalog code; upstream latency; memory held.
//!
//! Label values are bounded by construction: route templates, status codes, catalog codes and
//! configured upstream names — never error strings or raw paths.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub route: &'static str,
    pub status: u16,
    /// Catalog code of an error response, `""` on success.
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UpstreamLabels {
    pub upstream: String,
    /// `ok`, `http_error`, `timeout`, `unavailable`, `failed`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BudgetLabels {
    /// `body` (MAX_BODY_MEMORY_BYTES) or `answer` (MAX_ANSWER_MEMORY_BYTES).
    pub budget: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    upstream_seconds: Family<UpstreamLabels, Histogram>,
    redis_errors: Counter,
    memory_held: Family<BudgetLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template, status and catalog code",
            requests.clone(),
        );
        let upstream_seconds = Family::<UpstreamLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 18))
        });
        registry.register(
            "upstream_request_duration_seconds",
            "Latency of upstream calls until the response headers (or failure)",
            upstream_seconds.clone(),
        );
        let redis_errors = Counter::default();
        registry.register(
            "redis_errors",
            "Failed Redis operations (limits then follow REDIS_FAIL_MODE)",
            redis_errors.clone(),
        );
        let memory_held = Family::<BudgetLabels, Gauge>::default();
        registry.register(
            "memory_held_bytes",
            "Bytes of a memory budget held now by request bodies (body) or upstream and tool answers (answer) in flight",
            memory_held.clone(),
        );
        Metrics {
            registry,
            requests,
            upstream_seconds,
            redis_errors,
            memory_held,
        }
    }

    pub fn request(&self, route: &'static str, status: u16, code: &'static str) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                status,
                code,
            })
            .inc();
    }

    pub fn upstream(&self, upstream: &str, outcome: &'static str, seconds: f64) {
        self.upstream_seconds
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
                outcome,
            })
            .observe(seconds);
    }

    pub fn redis_error(&self) {
        self.redis_errors.inc();
    }

    /// What a memory budget holds now; read from the budget when `/metrics` is asked.
    pub fn memory_held(&self, budget: &'static str, bytes: usize) {
        self.memory_held
            .get_or_create(&BudgetLabels { budget })
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_by_code() {
        let m = Metrics::new();
        m.request("/v1/chat/completions", 429, "rate_limit_exceeded");
        m.upstream("local", "ok", 0.01);
        let text = m.render();
        assert!(text.contains(r#"gateway_http_requests_total{route="/v1/chat/completions",status="429",code="rate_limit_exceeded"} 1"#), "{text}");
        assert!(
            text.contains("gateway_upstream_request_duration_seconds_bucket"),
            "{text}"
        );
    }

    #[test]
    fn renders_the_memory_each_budget_holds() {
        let m = Metrics::new();
        m.memory_held("body", 2_700_000);
        m.memory_held("answer", 0);
        m.memory_held("body", 2_700_003);
        let text = m.render();
        assert!(
            text.contains(r#"gateway_memory_held_bytes{budget="body"} 2700003"#),
            "{text}"
        );
        assert!(
            text.contains(r#"gateway_memory_held_bytes{budget="answer"} 0"#),
            "{text}"
        );
    }
}
