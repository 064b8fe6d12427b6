//! Results of a run, read back from the cucumber JSON report, and the per-code table.
//!
//! Everything downstream (the table, run history, the HTML pages) reads a scenario through
//! [`ScenarioResult`]: its verdict through [`ScenarioResult::grade`], the rows it belongs
//! to through [`ScenarioResult::rows`], its identity across runs through [`scenario_ids`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::features::asserted_codes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

/// A scenario's verdict, graded as the Autobahn WebSocket testsuite grades its cases.
///
/// Reports, run history and the HTML matrix read a scenario's outcome only through
/// [`ScenarioResult::grade`], so that grading has one definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grade {
    /// The target answered as the profile expects.
    Conformant,
    /// Not what the profile expects, but an answer a client can still handle (e.g. 405 for a
    /// wrong method, `data: {"error": …}` instead of `event: error`).
    NonStrict,
    /// The target's answer breaks the contract.
    Failed,
    /// The profile does not claim this condition.
    NotApplicable,
    /// The scenario could not run against this target (the reason says why).
    Skipped,
}

impl Grade {
    /// Every grade, best first.
    pub const ALL: [Grade; 5] = [
        Grade::Conformant,
        Grade::NonStrict,
        Grade::Failed,
        Grade::NotApplicable,
        Grade::Skipped,
    ];

    /// The stable name used in reports, history and the HTML matrix.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Conformant => "conformant",
            Grade::NonStrict => "non-strict",
            Grade::Failed => "failed",
            Grade::NotApplicable => "not-applicable",
            Grade::Skipped => "skipped",
        }
    }

    /// Parses [`Grade::as_str`] back.
    pub fn parse(s: &str) -> Option<Grade> {
        Grade::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// Severity for summarising several scenarios in one cell: the worst grade of the ones
    /// that ran wins; not-applicable and skipped only when nothing ran.
    pub fn severity(self) -> u8 {
        match self {
            Grade::Failed => 4,
            Grade::NonStrict => 3,
            Grade::Conformant => 2,
            Grade::NotApplicable => 1,
            Grade::Skipped => 0,
        }
    }
}

impl serde::Serialize for Grade {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One step as the report saw it.
#[derive(Clone, Debug)]
pub struct StepResult {
    pub text: String,
    pub status: String,
    pub error: Option<String>,
    /// As cucumber measured it (its JSON report's `duration`, in nanoseconds).
    pub duration: Duration,
}

/// What the runner knows about a scenario beyond cucumber's report: filled in from the
/// parsed features (so a scenario that did not run keeps its conditions and codes) and from
/// what its World noted (non-strict answers, upstream attempts).
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Stable id for expectations files: `auth.feature: <scenario name>` (`#n` for the
    /// n-th scenario of that name in the file).
    pub id: String,
    pub conditions: Vec<String>,
    pub codes: Vec<String>,
    /// Why it did not run.
    pub reason: Option<String>,
    /// It did not run because the profile does not claim its conditions or layer.
    pub not_applicable: bool,
    /// Why an answer was only non-strict.
    pub non_strict: Vec<String>,
    /// Upstream requests the gateway made for a scripted failure.
    pub upstream_attempts: Option<usize>,
}

/// One scenario (an Examples row counts as one).
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    pub feature: String,
    pub uri: String,
    pub name: String,
    pub line: usize,
    pub tags: Vec<String>,
    pub status: Status,
    pub steps: Vec<StepResult>,
    pub verdict: Verdict,
}

impl ScenarioResult {
    /// The catalog codes the scenario asserts (kept for scenarios that did not run).
    pub fn codes(&self) -> Vec<String> {
        if !self.verdict.codes.is_empty() || !self.verdict.id.is_empty() {
            return self.verdict.codes.clone();
        }
        let mut out: Vec<String> = self
            .steps
            .iter()
            .flat_map(|s| asserted_codes(&s.text))
            .collect();
        out.dedup();
        out
    }

    /// The conditions the scenario creates (see `crate::profile`).
    pub fn conditions(&self) -> Vec<String> {
        self.verdict.conditions.clone()
    }

    /// The stable id of expectations files (falls back to `uri:line`).
    pub fn id(&self) -> String {
        if self.verdict.id.is_empty() {
            format!("{}:{}", self.uri, self.line)
        } else {
            self.verdict.id.clone()
        }
    }

    /// The rows of the matrix and history views this scenario counts in: the codes it
    /// asserts, or its feature when it asserts none (so every scenario is reachable).
    ///
    /// The one place that decides what a row is: when scenarios name conditions, they are the
    /// rows (a profile's conditions include the DGX codes).
    pub fn rows(&self) -> Vec<String> {
        let conditions = self.conditions();
        if !conditions.is_empty() {
            return conditions;
        }
        let codes = self.codes();
        if codes.is_empty() {
            vec![format!("feature: {}", self.feature)]
        } else {
            codes
        }
    }

    /// The feature file's name (`auth.feature`), whatever path cucumber reported.
    pub fn file(&self) -> String {
        Path::new(&self.uri)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.uri.clone())
    }

    /// Time spent in the scenario's steps (background included).
    pub fn duration(&self) -> Duration {
        self.steps.iter().map(|s| s.duration).sum()
    }

    /// The scenario's verdict (see [`Grade`]).
    pub fn grade(&self) -> Grade {
        match self.status {
            Status::Passed if !self.verdict.non_strict.is_empty() => Grade::NonStrict,
            Status::Passed => Grade::Conformant,
            Status::Failed => Grade::Failed,
            Status::Skipped if self.verdict.not_applicable => Grade::NotApplicable,
            Status::Skipped => Grade::Skipped,
        }
    }

    /// The first failure message, if any.
    pub fn failure(&self) -> Option<String> {
        self.steps
            .iter()
            .find(|s| s.status != "passed" && s.status != "skipped")
            .map(|s| {
                format!(
                    "step `{}`: {}",
                    s.text,
                    s.error.clone().unwrap_or_else(|| s.status.clone())
                )
            })
    }

    /// Why a skipped (or not applicable) scenario did not run.
    pub fn skip_reason(&self) -> Option<String> {
        (self.status == Status::Skipped).then(|| {
            self.verdict.reason.clone().unwrap_or_else(|| {
                self.steps
                    .iter()
                    .find(|s| s.status == "skipped")
                    .map(|s| s.text.clone())
                    .unwrap_or_default()
            })
        })
    }
}

#[derive(Deserialize)]
struct JFeature {
    #[serde(default)]
    uri: Option<String>,
    name: String,
    #[serde(default)]
    elements: Vec<JElement>,
}

#[derive(Deserialize)]
struct JElement {
    #[serde(rename = "type")]
    ty: String,
    id: String,
    line: usize,
    name: String,
    #[serde(default)]
    tags: Vec<JTag>,
    #[serde(default)]
    steps: Vec<JStep>,
}

#[derive(Deserialize)]
struct JTag {
    name: String,
}

#[derive(Deserialize)]
struct JStep {
    name: String,
    result: JResult,
}

#[derive(Deserialize)]
struct JResult {
    status: String,
    #[serde(default)]
    error_message: Option<String>,
    /// Nanoseconds (cucumber-jvm's unit, which cucumber-rs follows).
    #[serde(default)]
    duration: u64,
}

/// Reads the cucumber JSON report; a background and its scenario become one result.
pub fn read_json(path: &Path) -> Result<Vec<ScenarioResult>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let features: Vec<JFeature> = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a cucumber JSON report: {e}", path.display()))?;
    let mut out: Vec<ScenarioResult> = Vec::new();
    let mut index: BTreeMap<(String, String, usize, String), usize> = BTreeMap::new();
    for f in features {
        let uri = f.uri.clone().unwrap_or_default();
        for e in f.elements {
            let key = (uri.clone(), e.id.clone(), e.line, e.name.clone());
            let i = *index.entry(key).or_insert_with(|| {
                out.push(ScenarioResult {
                    feature: f.name.clone(),
                    uri: uri.clone(),
                    name: e.name.clone(),
                    line: e.line,
                    tags: Vec::new(),
                    status: Status::Passed,
                    steps: Vec::new(),
                    verdict: Verdict::default(),
                });
                out.len() - 1
            });
            let r = &mut out[i];
            if e.ty != "background" {
                r.tags = e
                    .tags
                    .iter()
                    .map(|t| t.name.trim_start_matches('@').to_owned())
                    .collect();
            }
            // Background steps come first in the feature, so keep them in front.
            let steps = e.steps.into_iter().map(|s| StepResult {
                text: s.name,
                status: s.result.status,
                error: s.result.error_message,
                duration: Duration::from_nanos(s.result.duration),
            });
            if e.ty == "background" {
                let mut bg: Vec<StepResult> = steps.collect();
                bg.append(&mut r.steps);
                r.steps = bg;
            } else {
                r.steps.extend(steps);
            }
        }
    }
    for r in &mut out {
        r.status = if r
            .steps
            .iter()
            .any(|s| s.status != "passed" && s.status != "skipped")
        {
            Status::Failed
        } else if r.steps.iter().any(|s| s.status == "skipped") {
            Status::Skipped
        } else {
            Status::Passed
        };
    }
    Ok(out)
}

/// A name for each result that stays the same from run to run: `file: scenario name`, with
/// ` #2`, ` #3`… for later scenarios of the same file and name (Examples rows whose name
/// has no placeholder). Lines are left out on purpose: editing a feature moves them.
pub fn scenario_ids(results: &[ScenarioResult]) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut order: Vec<usize> = (0..results.len()).collect();
    order.sort_by_key(|&i| (results[i].file(), results[i].line));
    let mut ids = vec![String::new(); results.len()];
    for i in order {
        let base = format!("{}: {}", results[i].file(), results[i].name);
        let n = seen.entry(base.clone()).or_insert(0);
        *n += 1;
        ids[i] = if *n == 1 {
            base
        } else {
            format!("{base} #{n}")
        };
    }
    ids
}

#[derive(Tabled)]
struct Row {
    code: String,
    scenarios: usize,
    conformant: usize,
    #[tabled(rename = "non-strict")]
    non_strict: usize,
    failed: usize,
    #[tabled(rename = "not-applicable")]
    not_applicable: usize,
    skipped: usize,
}

#[derive(Tabled)]
struct ConditionRow {
    condition: String,
    scenarios: usize,
    conformant: usize,
    #[tabled(rename = "non-strict")]
    non_strict: usize,
    failed: usize,
    #[tabled(rename = "not-applicable")]
    not_applicable: usize,
    skipped: usize,
}

fn grade_counts(with: &[&ScenarioResult]) -> [usize; 5] {
    let mut out = [0; 5];
    for r in with {
        let i = Grade::ALL.iter().position(|g| *g == r.grade()).unwrap_or(4);
        out[i] += 1;
    }
    out
}

/// The per-condition table: for each condition, its scenarios and their grades.
/// `conditions` is the profile's list (its order); conditions the features create but the
/// profile does not claim are counted in one last row (their scenarios are not applicable).
pub fn per_condition_table(conditions: &[String], results: &[ScenarioResult]) -> String {
    let order: Vec<String> = conditions.to_vec();
    let rows: Vec<ConditionRow> = order
        .iter()
        .filter_map(|c| {
            let with: Vec<&ScenarioResult> = results
                .iter()
                .filter(|r| r.conditions().contains(c))
                .collect();
            if with.is_empty() {
                return None;
            }
            let [conformant, non_strict, failed, not_applicable, skipped] = grade_counts(&with);
            Some(ConditionRow {
                condition: c.clone(),
                scenarios: with.len(),
                conformant,
                non_strict,
                failed,
                not_applicable,
                skipped,
            })
        })
        .collect();
    let mut rows = rows;
    let unclaimed: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| r.conditions().iter().any(|c| !order.contains(c)))
        .collect();
    if !unclaimed.is_empty() {
        let [conformant, non_strict, failed, not_applicable, skipped] = grade_counts(&unclaimed);
        rows.push(ConditionRow {
            condition: "(conditions the profile does not claim)".into(),
            scenarios: unclaimed.len(),
            conformant,
            non_strict,
            failed,
            not_applicable,
            skipped,
        });
    }
    Table::new(rows).with(Style::markdown()).to_string()
}

/// Every scenario with its grade, as JSON (`reports/conformance/grades.json`).
pub fn grades_json(profile: &str, results: &[ScenarioResult]) -> String {
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id(),
                "uri": r.uri,
                "line": r.line,
                "name": r.name,
                "grade": r.grade().as_str(),
                "conditions": r.conditions(),
                "codes": r.codes(),
                "reason": r.skip_reason().or_else(|| r.failure()),
                "non_strict": r.verdict.non_strict,
                "upstream_attempts": r.verdict.upstream_attempts,
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({"profile": profile, "scenarios": rows}))
        .unwrap_or_default()
}

/// The per-code table: for each code, the scenarios asserting it and how they ended.
/// `codes` is the catalog (its order); codes asserted but not in it are appended.
pub fn per_code_table(codes: &[String], results: &[ScenarioResult]) -> String {
    let mut order: Vec<String> = codes.to_vec();
    for r in results {
        for c in r.codes() {
            if !order.contains(&c) {
                order.push(c);
            }
        }
    }
    let rows: Vec<Row> = order
        .iter()
        .map(|code| {
            let with: Vec<&ScenarioResult> = results
                .iter()
                .filter(|r| r.codes().contains(code))
                .collect();
            let [conformant, non_strict, failed, not_applicable, skipped] = grade_counts(&with);
            Row {
                code: code.clone(),
                scenarios: with.len(),
                conformant,
                non_strict,
                failed,
                not_applicable,
                skipped,
            }
        })
        .collect();
    Table::new(rows).with(Style::markdown()).to_string()
}
