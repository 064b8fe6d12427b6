//! Progress of a long run on stderr: `conformance: 120/346 scenarios done, 0 failed`, at
//! most once a second and once at the end; only for a person watching (stderr is a
//! terminal and `CI` is unset), or when `CONFORMANCE_PROGRESS=on` asks for it.
//!
//! A cucumber [`Writer`] teed beside the others; it sees events as they happen (it is not
//! behind the normaliser), so the count is live while scenarios run concurrently.

use std::collections::HashSet;
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use cucumber::event::{self, Cucumber};
use cucumber::writer::{self, AssertNormalized};
use cucumber::{cli, gherkin, parser, Event, Writer};

/// `auto` (default): on when stderr is a terminal and `CI` is unset; `on`; `off`.
pub const CONFORMANCE_PROGRESS: &str = "CONFORMANCE_PROGRESS";

/// Shortest time between two progress lines.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Whether this process should print progress (see [`CONFORMANCE_PROGRESS`]).
pub fn wanted() -> bool {
    decide(
        std::env::var(CONFORMANCE_PROGRESS).ok().as_deref(),
        std::env::var_os("CI").is_some_and(|v| !v.is_empty()),
        std::io::stderr().is_terminal(),
    )
}

fn decide(setting: Option<&str>, ci: bool, terminal: bool) -> bool {
    match setting.map(str::trim) {
        Some("on" | "1" | "true") => true,
        Some("off" | "0" | "false") => false,
        _ => terminal && !ci,
    }
}

/// Counts finished scenarios and failures; prints when enabled.
#[derive(Debug, Default)]
pub struct Progress {
    enabled: bool,
    total: usize,
    done: usize,
    failed: usize,
    /// Scenarios seen failing (file, line, name): a scenario fails once, however many
    /// of its steps do.
    failing: HashSet<(String, usize, String)>,
    last: Option<Instant>,
}

/// The writer to tee into the runner's chain.
pub type Teed = AssertNormalized<writer::discard::Arbitrary<writer::discard::Stats<Progress>>>;

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            ..Progress::default()
        }
    }

    /// Wrapped for `.tee()`: no stats, no arbitrary output, and declared normalised
    /// (order does not matter for counting).
    pub fn teed(enabled: bool) -> Teed {
        AssertNormalized::new(writer::discard::Arbitrary::wrap(
            writer::discard::Stats::wrap(Progress::new(enabled)),
        ))
    }

    /// The progress line.
    pub fn line(&self) -> String {
        format!(
            "conformance: {}/{} scenarios done, {} failed",
            self.done, self.total, self.failed
        )
    }

    fn key(feature: &gherkin::Feature, scenario: &gherkin::Scenario) -> (String, usize, String) {
        let file = feature
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        (file, scenario.position.line, scenario.name.clone())
    }

    fn on_scenario<W>(
        &mut self,
        feature: &gherkin::Feature,
        scenario: &gherkin::Scenario,
        ev: &event::Scenario<W>,
    ) {
        let failed = match ev {
            event::Scenario::Step(_, event::Step::Failed(..))
            | event::Scenario::Background(_, event::Step::Failed(..))
            | event::Scenario::Hook(_, event::Hook::Failed(..)) => true,
            event::Scenario::Finished => {
                self.done += 1;
                self.print(false);
                false
            }
            _ => false,
        };
        if failed && self.failing.insert(Self::key(feature, scenario)) {
            self.failed += 1;
        }
    }

    fn print(&mut self, last: bool) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if !last && self.last.is_some_and(|t| now.duration_since(t) < INTERVAL) {
            return;
        }
        self.last = Some(now);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", self.line());
    }
}

impl<W: cucumber::World> Writer<W> for Progress {
    type Cli = cli::Empty;

    async fn handle_event(&mut self, ev: parser::Result<Event<Cucumber<W>>>, _: &Self::Cli) {
        let Ok(ev) = ev else {
            return;
        };
        match &ev.value {
            Cucumber::ParsingFinished { scenarios, .. } => self.total = *scenarios,
            Cucumber::Feature(f, event::Feature::Scenario(sc, e))
            | Cucumber::Feature(f, event::Feature::Rule(_, event::Rule::Scenario(sc, e))) => {
                self.on_scenario(f, sc, &e.event);
            }
            Cucumber::Finished => self.print(true),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cucumber::event::{RetryableScenario, Source};
    use std::sync::Arc;

    #[derive(Debug, Default, cucumber::World)]
    struct W;

    /// Events as cucumber sends them: a feature of three scenarios; the second fails in
    /// two steps (counted once), the third in its background.
    #[tokio::test]
    async fn counts_done_and_failed_scenarios() {
        let text = "Feature: F\n  Scenario: a\n    Given x\n  Scenario: b\n    Given x\n    Given y\n  Scenario: c\n    Given x\n";
        let feature = gherkin::Feature::parse(text, gherkin::GherkinEnv::default()).unwrap();
        let f = Source::new(feature.clone());
        let mut p = Progress::new(false);
        let cli = cli::Empty;
        let send = |ev: Cucumber<W>| Ok(Event::new(ev));
        <Progress as Writer<W>>::handle_event(
            &mut p,
            send(Cucumber::ParsingFinished {
                features: 1,
                rules: 0,
                scenarios: 3,
                steps: 4,
                parser_errors: 0,
            }),
            &cli,
        )
        .await;
        let failed = || {
            event::Step::<W>::Failed(None, None, None, event::StepError::Panic(Arc::new("boom")))
        };
        for (i, sc) in feature.scenarios.iter().enumerate() {
            let sc = Source::new(sc.clone());
            let step = Source::new(sc.steps[0].clone());
            let mut events = Vec::new();
            match i {
                1 => {
                    events.push(event::Scenario::Step(step.clone(), failed()));
                    events.push(event::Scenario::Step(step, failed()));
                }
                2 => events.push(event::Scenario::Background(step, failed())),
                _ => {}
            }
            events.push(event::Scenario::Finished);
            for e in events {
                let ev = Cucumber::Feature(
                    f.clone(),
                    event::Feature::Scenario(
                        sc.clone(),
                        RetryableScenario {
                            event: e,
                            retries: None,
                        },
                    ),
                );
                <Progress as Writer<W>>::handle_event(&mut p, send(ev), &cli).await;
            }
        }
        assert_eq!(p.line(), "conformance: 3/3 scenarios done, 2 failed");
    }

    #[test]
    fn quiet_in_ci_logs_and_pipes_unless_asked() {
        assert!(decide(None, false, true));
        assert!(!decide(None, true, true), "CI set");
        assert!(!decide(None, false, false), "not a terminal");
        assert!(!decide(Some("auto"), false, false));
        assert!(decide(Some("on"), true, false));
        assert!(!decide(Some("off"), false, true));
    }
}
