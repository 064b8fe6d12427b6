//! Expectations files: what a known gateway is expected to score, scenario by scenario, as
//! test262 and web-platform-tests keep per-engine expectations. A run is compared with the
//! file and any difference (an unexpected pass as much as an unexpected failure) is an error,
//! so a peer's behaviour change or a harness change that moves a verdict is seen at once.
//!
//! Format (YAML):
//!
//! ```yaml
//! profile: openai                 # the profile the grades were taken with
//! target: LiteLLM proxy 1.106.2   # free text
//! scenarios:                      # scenario id → grade; unlisted = conformant or not-applicable
//!   "baseline.feature: A request without credentials is refused": failed
//!   "baseline.feature: A wrong method is not found": non-strict
//!   "baseline.feature: A failure mid-stream is signalled in-band": non-strict | conformant
//! ```
//!
//! `a | b` lists the grades a peer is seen to give from run to run (a behaviour that is not
//! deterministic, e.g. LiteLLM's first stream failure after start); any of them matches.
//!
//! Scenario ids are [`ScenarioResult::id`]: `<file>: <scenario name>`, `#n` for the n-th
//! scenario of the same name in a file (Examples rows). Grades are [`Grade::as_str`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::report::{Grade, ScenarioResult};

/// `CONFORMANCE_EXPECTATIONS`: compare the run with this file; the exit code says whether
/// they match (instead of whether everything passed).
pub const EXPECTATIONS_VAR: &str = "CONFORMANCE_EXPECTATIONS";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    pub profile: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub scenarios: BTreeMap<String, String>,
}

impl Expectations {
    pub fn load(path: &Path) -> Result<Expectations, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Expectations::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Expectations, String> {
        let e: Expectations = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        for (id, g) in &e.scenarios {
            if g.split('|').any(|g| Grade::parse(g.trim()).is_none()) {
                return Err(format!(
                    "`{id}`: `{g}` is not a grade (conformant, non-strict, failed, not-applicable, skipped)"
                ));
            }
        }
        Ok(e)
    }

    /// Every difference between the run and the file; empty = as expected.
    pub fn compare(&self, profile: &str, results: &[ScenarioResult]) -> Vec<String> {
        let mut out = Vec::new();
        if profile != self.profile {
            out.push(format!(
                "the expectations are for the profile `{}`, the run used `{profile}`",
                self.profile
            ));
        }
        for r in results {
            let id = r.id();
            let got = r.grade();
            let wanted: Option<Vec<Grade>> = self.scenarios.get(&id).map(|g| {
                g.split('|')
                    .filter_map(|g| Grade::parse(g.trim()))
                    .collect()
            });
            // The best grade listed: a better result than that is an unexpected pass.
            let best = wanted
                .as_ref()
                .and_then(|w| w.iter().copied().min_by_key(|g| rank(*g)));
            match best {
                _ if wanted.as_ref().is_some_and(|w| w.contains(&got)) => {}
                Some(want) => out.push(format!(
                    "{} `{id}`: expected {}, got {}{}",
                    if rank(got) < rank(want) {
                        "unexpected pass:"
                    } else {
                        "unexpected failure:"
                    },
                    want.as_str(),
                    got.as_str(),
                    r.failure()
                        .or_else(|| r.skip_reason())
                        .map(|m| format!(" — {}", crate::text::clip(&m, 300)))
                        .unwrap_or_default()
                )),
                None if matches!(got, Grade::Conformant | Grade::NotApplicable) => {}
                None => out.push(format!(
                    "unexpected failure: `{id}`: expected conformant, got {}{}",
                    got.as_str(),
                    r.failure()
                        .or_else(|| r.skip_reason())
                        .map(|m| format!(" — {}", crate::text::clip(&m, 300)))
                        .unwrap_or_default()
                )),
            }
        }
        for id in self.scenarios.keys() {
            if !results.iter().any(|r| &r.id() == id) {
                out.push(format!(
                    "stale expectation: `{id}` is not a scenario of this run"
                ));
            }
        }
        out
    }
}

/// How good a grade is (lower = better), to tell an unexpected pass from a failure.
fn rank(g: Grade) -> u8 {
    match g {
        Grade::Conformant | Grade::NotApplicable => 0,
        Grade::NonStrict => 1,
        Grade::Skipped => 2,
        Grade::Failed => 3,
    }
}

/// An expectations file that a run matches exactly: every scenario that is not conformant
/// or not applicable, with its grade (to start a peer's file; review before committing).
pub fn record(profile: &str, target: &str, results: &[ScenarioResult]) -> String {
    let mut out = format!(
        "# Expected grades; format: conformance/README.md (\"Expectations files\").\nprofile: {profile}\ntarget: {}\nscenarios:\n",
        serde_json::Value::String(target.to_owned())
    );
    let mut rows: Vec<(String, Grade)> = results
        .iter()
        .map(|r| (r.id(), r.grade()))
        .filter(|(_, g)| !matches!(g, Grade::Conformant | Grade::NotApplicable))
        .collect();
    rows.sort();
    for (id, g) in rows {
        out.push_str(&format!(
            "  {}: {}\n",
            serde_json::Value::String(id),
            g.as_str()
        ));
    }
    out
}
