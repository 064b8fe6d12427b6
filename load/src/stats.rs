//! What a run records (µs histograms, counters, the time window) and the rows of the table.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

pub fn histogram() -> Histogram<u64> {
    // 1 µs .. 10 min, 3 significant digits; these bounds are valid, so this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

#[derive(Debug)]
pub struct Inner {
    /// Whole exchange (non-streaming) or end-to-end stream time, µs.
    pub latency: Histogram<u64>,
    /// Time to the first `data:` event, µs.
    pub ttft: Histogram<u64>,
    /// Gaps between body chunks after the first, µs.
    pub gaps: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    pub limited: u64,
    pub limited_without_retry_after: u64,
    pub events: u64,
    pub first_start: Option<Instant>,
    pub last_start: Option<Instant>,
    pub last_end: Option<Instant>,
    pub first_error: Option<String>,
}

/// Shared by every goose user of one run.
#[derive(Debug)]
pub struct Recorder(Mutex<Inner>);

impl Default for Recorder {
    fn default() -> Self {
        Recorder(Mutex::new(Inner {
            latency: histogram(),
            ttft: histogram(),
            gaps: histogram(),
            ok: 0,
            errors: 0,
            limited: 0,
            limited_without_retry_after: 0,
            events: 0,
            first_start: None,
            last_start: None,
            last_end: None,
            first_error: None,
        }))
    }
}

pub fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Recorder {
    pub fn started(&self, at: Instant) {
        let mut g = self.0.lock();
        g.first_start.get_or_insert(at);
        g.last_start = Some(at);
    }

    fn ended(g: &mut Inner) {
        g.last_end = Some(Instant::now());
    }

    pub fn ok(&self, latency: Duration) {
        let mut g = self.0.lock();
        g.ok += 1;
        let _ = g.latency.record(us(latency));
        Self::ended(&mut g);
    }

    pub fn stream_ok(&self, ttft: Duration, gaps: &[Duration], events: u64, total: Duration) {
        let mut g = self.0.lock();
        g.ok += 1;
        g.events += events;
        let _ = g.ttft.record(us(ttft));
        for gap in gaps {
            let _ = g.gaps.record(us(*gap));
        }
        let _ = g.latency.record(us(total));
        Self::ended(&mut g);
    }

    pub fn limited(&self, has_retry_after: bool) {
        let mut g = self.0.lock();
        g.limited += 1;
        if !has_retry_after {
            g.limited_without_retry_after += 1;
        }
        Self::ended(&mut g);
    }

    pub fn error(&self, why: String) {
        let mut g = self.0.lock();
        g.errors += 1;
        g.first_error.get_or_insert(why);
        Self::ended(&mut g);
    }

    pub fn snapshot(&self) -> Snapshot {
        let g = self.0.lock();
        let window = match (g.first_start, g.last_end) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => Duration::ZERO,
        };
        let start_window = match (g.first_start, g.last_start) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => Duration::ZERO,
        };
        Snapshot {
            latency: g.latency.clone(),
            ttft: g.ttft.clone(),
            gaps: g.gaps.clone(),
            ok: g.ok,
            errors: g.errors,
            limited: g.limited,
            limited_without_retry_after: g.limited_without_retry_after,
            events: g.events,
            window,
            start_window,
            first_error: g.first_error.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub latency: Histogram<u64>,
    pub ttft: Histogram<u64>,
    pub gaps: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    pub limited: u64,
    pub limited_without_retry_after: u64,
    pub events: u64,
    /// First request start to last response end.
    pub window: Duration,
    /// First request start to last request start (what the limiter saw).
    pub start_window: Duration,
    pub first_error: Option<String>,
}

impl Snapshot {
    pub fn total(&self) -> u64 {
        self.ok + self.errors + self.limited
    }

    /// Completed exchanges (any status) per second over the window.
    pub fn throughput(&self) -> f64 {
        let s = self.window.as_secs_f64();
        if s > 0.0 {
            self.total() as f64 / s
        } else {
            0.0
        }
    }
}

/// Milliseconds with µs resolution, for the table.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        f64::NAN
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// One line of the printed table.
#[derive(Debug, Clone, tabled::Tabled)]
pub struct Row {
    pub scenario: String,
    pub target: String,
    pub requests: String,
    pub ok: String,
    pub errors: String,
    #[tabled(rename = "req/s")]
    pub rate: String,
    #[tabled(rename = "p50 ms")]
    pub p50: String,
    #[tabled(rename = "p95 ms")]
    pub p95: String,
    #[tabled(rename = "p99 ms")]
    pub p99: String,
    #[tabled(rename = "gw/direct")]
    pub ratio: String,
    pub detail: String,
}

impl Row {
    pub fn skipped(scenario: &str, target: &str, why: &str) -> Row {
        let dash = || "-".to_owned();
        Row {
            scenario: scenario.into(),
            target: target.into(),
            requests: dash(),
            ok: dash(),
            errors: dash(),
            rate: dash(),
            p50: dash(),
            p95: dash(),
            p99: dash(),
            ratio: dash(),
            detail: format!("SKIPPED: {why}"),
        }
    }

    /// A row from counts kept outside a [`Recorder`]; `h` fills the p-columns.
    pub fn from_counts(
        scenario: &str,
        target: &str,
        requests: u64,
        ok: u64,
        errors: u64,
        h: &Histogram<u64>,
    ) -> Row {
        Row {
            scenario: scenario.into(),
            target: target.into(),
            requests: requests.to_string(),
            ok: ok.to_string(),
            errors: errors.to_string(),
            rate: "-".into(),
            p50: format!("{:.3}", ms(h, 0.50)),
            p95: format!("{:.3}", ms(h, 0.95)),
            p99: format!("{:.3}", ms(h, 0.99)),
            ratio: String::new(),
            detail: String::new(),
        }
    }

    /// A row from a run; `h` is the histogram whose percentiles go in the p-columns.
    pub fn from_snapshot(scenario: &str, target: &str, s: &Snapshot, h: &Histogram<u64>) -> Row {
        Row {
            scenario: scenario.into(),
            target: target.into(),
            requests: s.total().to_string(),
            ok: s.ok.to_string(),
            errors: s.errors.to_string(),
            rate: format!("{:.0}", s.throughput()),
            p50: format!("{:.3}", ms(h, 0.50)),
            p95: format!("{:.3}", ms(h, 0.95)),
            p99: format!("{:.3}", ms(h, 0.99)),
            ratio: String::new(),
            detail: String::new(),
        }
    }
}

/// One target of SPEC §9 / the issue, with what was measured.
#[derive(Debug, Clone, tabled::Tabled)]
pub struct Goal {
    pub target: String,
    pub measured: String,
    pub result: String,
}

impl Goal {
    pub fn new(target: &str, measured: String, met: Option<bool>) -> Goal {
        Goal {
            target: target.into(),
            measured,
            result: match met {
                Some(true) => "met".into(),
                Some(false) => "MISSED".into(),
                None => "info (no target)".into(),
            },
        }
    }
}
