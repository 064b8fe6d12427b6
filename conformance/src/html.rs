//! The HTML pages: `report.html` for one run and `matrix.html` across the latest run of
//! each target, both from one minijinja template (`templates/page.html`, auto-escaped as
//! HTML), both self-contained files (inline CSS and a few lines of script, no fetches).
//!
//! Layout, as the Autobahn testsuite's report: rows (codes, see
//! [`crate::report::ScenarioResult::rows`]) down, targets across; each cell is the worst
//! grade of the scenarios in it and links to the scenario (one) or to the list of them;
//! each scenario shows its failure and the HTTP exchanges it made.

use std::collections::{BTreeSet, HashMap};

use minijinja::value::Serde;
use minijinja::Environment;
use serde::Serialize;

use crate::history::{Changes, RunRecord};
use crate::report::Grade;
use crate::transcript::Exchange;

const TEMPLATE_NAME: &str = "page.html";
const TEMPLATE: &str = include_str!("../templates/page.html");

#[derive(Serialize)]
struct Page<'a> {
    title: String,
    kind: &'static str,
    generated_at: String,
    grades: Vec<&'static str>,
    columns: Vec<Column>,
    rows: Vec<RowView>,
    changes: Option<&'a Changes>,
}

#[derive(Serialize)]
struct Column {
    index: usize,
    target: String,
    profile: String,
    run_id: i64,
    started_at: String,
    git_revision: String,
    harness_version: String,
    features: String,
    filter: String,
    elapsed_s: String,
    counts: Vec<(&'static str, usize)>,
    scenarios: Vec<ScenarioView>,
    lists: Vec<ListView>,
}

#[derive(Serialize)]
struct ScenarioView {
    anchor: String,
    id: String,
    feature: String,
    name: String,
    file: String,
    line: usize,
    grade: Grade,
    duration_ms: String,
    /// (row key, the row's anchor in the matrix)
    rows: Vec<(String, String)>,
    detail: Option<String>,
    exchanges: Vec<Exchange>,
    dropped: usize,
}

#[derive(Serialize)]
struct RowView {
    anchor: String,
    key: String,
    /// A code that no run's catalog lists (a feature expects a code the target lacks).
    unknown_code: bool,
    cells: Vec<CellView>,
}

#[derive(Serialize)]
struct CellView {
    grade: Option<Grade>,
    count: usize,
    href: Option<String>,
    title: String,
}

#[derive(Serialize)]
struct ListView {
    anchor: String,
    key: String,
    items: Vec<(String, String, Grade)>,
}

/// The row keys in display order: catalog codes (first run's order, then codes only later
/// runs list), then other codes, then the rows of scenarios that assert no code.
fn row_order(runs: &[&RunRecord]) -> (Vec<String>, BTreeSet<String>) {
    let mut order: Vec<String> = Vec::new();
    let mut catalog = BTreeSet::new();
    for r in runs {
        for c in &r.meta.catalog {
            if catalog.insert(c.clone()) {
                order.push(c.clone());
            }
        }
    }
    let rest: BTreeSet<&String> = runs
        .iter()
        .flat_map(|r| r.scenarios.iter().flat_map(|s| s.rows.iter()))
        .filter(|k| !catalog.contains(*k))
        .collect();
    let (features, codes): (Vec<&String>, Vec<&String>) =
        rest.into_iter().partition(|k| k.starts_with("feature: "));
    order.extend(codes.into_iter().cloned());
    order.extend(features.into_iter().cloned());
    (order, catalog)
}

fn column(index: usize, run: &RunRecord, rows: &[String]) -> (Column, Vec<CellView>) {
    let anchors: HashMap<&str, String> = rows
        .iter()
        .enumerate()
        .map(|(ri, k)| (k.as_str(), format!("r{ri}")))
        .collect();
    let scenarios: Vec<ScenarioView> = run
        .scenarios
        .iter()
        .enumerate()
        .map(|(si, s)| ScenarioView {
            anchor: format!("t{index}-s{si}"),
            id: s.id.clone(),
            feature: s.feature.clone(),
            name: s.name.clone(),
            file: s.file.clone(),
            line: s.line,
            grade: s.grade,
            duration_ms: format!("{:.1}", s.duration_ms),
            rows: s
                .rows
                .iter()
                .map(|k| {
                    (
                        k.clone(),
                        anchors.get(k.as_str()).cloned().unwrap_or_default(),
                    )
                })
                .collect(),
            detail: s.detail.clone(),
            exchanges: s.transcript.exchanges.clone(),
            dropped: s.transcript.dropped,
        })
        .collect();
    let mut by_row: HashMap<&str, Vec<usize>> = HashMap::new();
    for (si, s) in run.scenarios.iter().enumerate() {
        for k in &s.rows {
            by_row.entry(k.as_str()).or_default().push(si);
        }
    }
    let mut cells = Vec::new();
    let mut lists = Vec::new();
    for (ri, key) in rows.iter().enumerate() {
        let members = by_row.get(key.as_str()).cloned().unwrap_or_default();
        if members.is_empty() {
            cells.push(CellView {
                grade: None,
                count: 0,
                href: None,
                title: format!("no scenario of this run counts in {key}"),
            });
            continue;
        }
        let grades: Vec<Grade> = members.iter().map(|&si| run.scenarios[si].grade).collect();
        let worst = grades
            .iter()
            .copied()
            .max_by_key(|g| g.severity())
            .unwrap_or(Grade::Skipped);
        let tally: Vec<String> = Grade::ALL
            .iter()
            .filter_map(|g| {
                let n = grades.iter().filter(|x| *x == g).count();
                (n > 0).then(|| format!("{n} {}", g.as_str()))
            })
            .collect();
        let list_anchor = format!("t{index}-r{ri}");
        let href = if members.len() == 1 {
            format!("#t{index}-s{}", members[0])
        } else {
            format!("#{list_anchor}")
        };
        cells.push(CellView {
            grade: Some(worst),
            count: members.len(),
            href: Some(href),
            title: tally.join(", "),
        });
        if members.len() > 1 {
            lists.push(ListView {
                anchor: list_anchor,
                key: key.clone(),
                items: members
                    .iter()
                    .map(|&si| {
                        let s = &run.scenarios[si];
                        (format!("t{index}-s{si}"), s.id.clone(), s.grade)
                    })
                    .collect(),
            });
        }
    }
    let m = &run.meta;
    let col = Column {
        index,
        target: m.target.clone(),
        profile: m.profile.clone(),
        run_id: m.id,
        started_at: m.started_at.clone(),
        git_revision: m.git_revision.clone(),
        harness_version: m.harness_version.clone(),
        features: m.features.clone(),
        filter: m.filter.clone(),
        elapsed_s: format!("{:.1}", m.elapsed_ms as f64 / 1000.0),
        counts: run
            .counts()
            .into_iter()
            .map(|(g, n)| (g.as_str(), n))
            .collect(),
        scenarios,
        lists,
    };
    (col, cells)
}

fn render(
    title: String,
    kind: &'static str,
    runs: &[&RunRecord],
    changes: Option<&Changes>,
) -> Result<String, String> {
    let (order, catalog) = row_order(runs);
    let mut columns = Vec::new();
    let mut cells_by_column = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let (col, cells) = column(i, r, &order);
        columns.push(col);
        cells_by_column.push(cells.into_iter());
    }
    let rows = order
        .iter()
        .enumerate()
        .map(|(ri, key)| RowView {
            anchor: format!("r{ri}"),
            key: key.clone(),
            unknown_code: !catalog.contains(key) && !key.starts_with("feature: "),
            cells: cells_by_column
                .iter_mut()
                .filter_map(Iterator::next)
                .collect(),
        })
        .collect();
    let page = Page {
        title,
        kind,
        generated_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        grades: Grade::ALL.iter().map(|g| g.as_str()).collect(),
        columns,
        rows,
        changes,
    };
    let mut env = Environment::new();
    env.add_template(TEMPLATE_NAME, TEMPLATE)
        .map_err(|e| format!("the report template does not parse: {e}"))?;
    let tmpl = env
        .get_template(TEMPLATE_NAME)
        .map_err(|e| format!("the report template is missing: {e}"))?;
    tmpl.render(Serde(&page))
        .map_err(|e| format!("rendering the report failed: {e}"))
}

/// `report.html`: one run, with what changed since the previous run of its target.
pub fn run_page(run: &RunRecord, changes: Option<&Changes>) -> Result<String, String> {
    let id = if run.meta.id > 0 {
        format!(" (run #{})", run.meta.id)
    } else {
        String::new()
    };
    render(
        format!("Conformance of {}{id}", run.meta.target),
        "run",
        &[run],
        changes,
    )
}

/// `matrix.html`: one column per run given (the latest of each target and profile).
pub fn matrix_page(runs: &[RunRecord]) -> Result<String, String> {
    let refs: Vec<&RunRecord> = runs.iter().collect();
    render(
        format!("Conformance matrix: {} target(s)", runs.len()),
        "matrix",
        &refs,
        None,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::history::{RunMeta, ScenarioRecord};
    use crate::transcript::{Sent, Transcript};

    fn record(target: &str, grade: Grade, body: &str) -> RunRecord {
        let x = Sent::new("POST", "/v1/chat/completions", &[], Some(body.as_bytes())).answered(
            400,
            &reqwest::header::HeaderMap::new(),
            b"{\"error\":{}}",
            None,
            2.0,
        );
        RunRecord {
            meta: RunMeta {
                id: 7,
                target: target.into(),
                profile: "dgx".into(),
                catalog: vec!["missing_authorization".into(), "invalid_json".into()],
                ..RunMeta::default()
            },
            scenarios: vec![
                ScenarioRecord {
                    id: "auth.feature: no token".into(),
                    feature: "Auth".into(),
                    name: "no token".into(),
                    file: "auth.feature".into(),
                    line: 4,
                    grade,
                    duration_ms: 3.0,
                    rows: vec!["missing_authorization".into()],
                    detail: Some("expected <b>401</b>".into()),
                    transcript: Transcript {
                        exchanges: vec![x],
                        dropped: 2,
                    },
                },
                ScenarioRecord {
                    id: "stream.feature: ok".into(),
                    feature: "Streaming".into(),
                    name: "ok".into(),
                    file: "stream.feature".into(),
                    line: 9,
                    grade: Grade::Skipped,
                    duration_ms: 0.0,
                    rows: vec!["feature: Streaming".into()],
                    detail: Some("this target cannot run it".into()),
                    transcript: Transcript::default(),
                },
            ],
        }
    }

    #[test]
    fn every_value_is_escaped() {
        let html = run_page(
            &record(
                "<script>alert(1)</script>",
                Grade::Failed,
                "<img src=x onerror=alert(1)>",
            ),
            None,
        )
        .unwrap();
        assert!(
            !html.contains("<script>alert(1)"),
            "target name not escaped"
        );
        assert!(!html.contains("<img src=x"), "request body not escaped");
        assert!(!html.contains("<b>401</b>"), "failure message not escaped");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }

    #[test]
    fn rows_list_the_catalog_then_other_rows_and_cells_link_to_scenarios() {
        let a = record("embedded", Grade::Conformant, "{}");
        let b = record("http://peer", Grade::Failed, "{}");
        let html = matrix_page(&[a, b]).unwrap();
        for key in [
            "missing_authorization",
            "invalid_json",
            "feature: Streaming",
        ] {
            assert!(
                html.contains(&format!("data-row=\"{key}\"")),
                "row {key} missing"
            );
        }
        let at = |needle: &str| html.find(needle).unwrap();
        assert!(at("data-row=\"invalid_json\"") < at("data-row=\"feature: Streaming\""));
        // One scenario in the cell: the link goes straight to it, and the target exists.
        assert!(html.contains("href=\"#t1-s0\""));
        assert!(html.contains("id=\"t1-s0\""));
        assert!(html.contains("2 more exchange"));
    }
}
