//! What a finished run leaves beyond cucumber's own files: a row in the run history, what
//! changed since the previous run of the same target and profile (printed), and the HTML
//! pages `report.html` (this run) and `matrix.html` (the latest run of every target).
//!
//! Nothing here changes the verdict: a history or HTML problem is printed as one line and
//! the run's exit code stays what the scenarios made it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::history::{Changes, History, RunMeta, RunRecord, ScenarioRecord};
use crate::report::{scenario_ids, Grade, ScenarioResult};
use crate::runner::RunOptions;
use crate::transcript::{Key, Tapes};

/// Environment variables read here.
pub mod vars {
    /// The history database (default `<CONFORMANCE_REPORTS>/history.sqlite3`); `off`: none.
    pub const CONFORMANCE_HISTORY: &str = "CONFORMANCE_HISTORY";
    /// Runs over which flakiness is judged (default 10).
    pub const CONFORMANCE_FLAKY_WINDOW: &str = "CONFORMANCE_FLAKY_WINDOW";
    /// Runs per target and profile whose HTTP transcripts are kept (default 5).
    pub const CONFORMANCE_HISTORY_TRANSCRIPTS: &str = "CONFORMANCE_HISTORY_TRANSCRIPTS";
}

/// Runs over which flakiness is judged when `CONFORMANCE_FLAKY_WINDOW` is unset.
pub const DEFAULT_FLAKY_WINDOW: usize = 10;
/// Runs per target and profile whose transcripts are kept when
/// `CONFORMANCE_HISTORY_TRANSCRIPTS` is unset (a full embedded run's are about 1.3 MB).
pub const DEFAULT_TRANSCRIPT_RUNS: usize = 5;
/// Longest list of scenarios printed per kind of change (the rest is counted).
pub const MAX_PRINTED: usize = 30;

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// The history file for reports written to `reports`, or None when switched off.
pub fn history_path(reports: &Path) -> Option<PathBuf> {
    match env(vars::CONFORMANCE_HISTORY) {
        Some(v) if v.trim() == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => Some(reports.join("history.sqlite3")),
    }
}

fn transcript_runs() -> usize {
    env(vars::CONFORMANCE_HISTORY_TRANSCRIPTS)
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(DEFAULT_TRANSCRIPT_RUNS)
}

fn flaky_window() -> usize {
    env(vars::CONFORMANCE_FLAKY_WINDOW)
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n >= 2)
        .unwrap_or(DEFAULT_FLAKY_WINDOW)
}

/// `git rev-parse HEAD` of the workspace (12 digits, `-dirty` with local changes), or
/// `unknown` without git.
pub fn git_revision(dir: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) if !rev.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        _ => "unknown".to_owned(),
    }
}

/// The run as history and HTML see it.
pub fn record_of(
    opts: &RunOptions,
    target: &crate::target::Target,
    catalog: &[String],
    scenarios: &[ScenarioResult],
    tapes: &Tapes,
    started_at: SystemTime,
    elapsed: Duration,
) -> RunRecord {
    let ids = scenario_ids(scenarios);
    let filter = [
        opts.tags.as_ref().map(|t| format!("tags: {t}")),
        opts.name.as_ref().map(|n| format!("name: {n}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("; ");
    RunRecord {
        meta: RunMeta {
            id: 0,
            target: target.name.clone(),
            profile: target.profile.name.clone(),
            harness_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_revision: git_revision(&crate::runner::workspace_dir()),
            started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            features: opts.features.display().to_string(),
            filter,
            catalog: catalog.to_vec(),
        },
        scenarios: scenarios
            .iter()
            .zip(ids)
            .map(|(s, id)| {
                let grade = s.grade();
                ScenarioRecord {
                    id,
                    feature: s.feature.clone(),
                    name: s.name.clone(),
                    file: s.file(),
                    line: s.line,
                    grade,
                    duration_ms: s.duration().as_secs_f64() * 1000.0,
                    rows: s.rows(),
                    detail: match grade {
                        Grade::Skipped => s.skip_reason(),
                        _ => s.failure(),
                    },
                    transcript: tapes.take(&Key::of_result(s)),
                }
            })
            .collect(),
    }
}

/// What publishing produced.
#[derive(Debug, Default)]
pub struct Published {
    /// The history file and this run's id in it.
    pub history: Option<(PathBuf, i64)>,
    pub changes: Option<Changes>,
    pub report_html: Option<PathBuf>,
    pub matrix_html: Option<PathBuf>,
    /// One line per thing that could not be done.
    pub problems: Vec<String>,
    /// Time spent recording and rendering (measured, printed: it adds to every run).
    pub elapsed: Duration,
}

/// Records the run, works out what changed, writes both pages.
pub fn publish(reports: &Path, mut run: RunRecord) -> Published {
    let started = std::time::Instant::now();
    let mut out = Published::default();
    let mut history = None;
    if let Some(path) = history_path(reports) {
        match History::open(&path).and_then(|mut h| h.record(&run).map(|id| (h, id))) {
            Ok((h, id)) => {
                run.meta.id = id;
                if let Err(e) =
                    h.prune_transcripts(&run.meta.target, &run.meta.profile, transcript_runs())
                {
                    out.problems.push(e);
                }
                match h.changes(id, flaky_window()) {
                    Ok(c) => out.changes = Some(c),
                    Err(e) => out.problems.push(e),
                }
                out.history = Some((path, id));
                history = Some(h);
            }
            Err(e) => out.problems.push(format!("history not recorded: {e}")),
        }
    }
    let report = reports.join("report.html");
    match crate::html::run_page(&run, out.changes.as_ref()).and_then(|html| write(&report, &html)) {
        Ok(()) => out.report_html = Some(report),
        Err(e) => out.problems.push(e),
    }
    // The matrix: the latest run of every target in the history (just this one without).
    // This run is at hand; only the other targets' runs are read back.
    let runs = match &history {
        Some(h) => h.latest_per_target().and_then(|ids| {
            ids.into_iter()
                .map(|id| {
                    if id == run.meta.id {
                        Ok(std::mem::take(&mut run))
                    } else {
                        h.load(id)
                    }
                })
                .collect()
        }),
        None => Ok(vec![run]),
    };
    let matrix = reports.join("matrix.html");
    match runs
        .and_then(|runs| crate::html::matrix_page(&runs))
        .and_then(|html| write(&matrix, &html))
    {
        Ok(()) => out.matrix_html = Some(matrix),
        Err(e) => out.problems.push(e),
    }
    out.elapsed = started.elapsed();
    out
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn list(title: &str, items: &[String]) -> String {
    let mut s = format!("  {title} ({})", items.len());
    for i in items.iter().take(MAX_PRINTED) {
        s.push_str(&format!("\n    - {i}"));
    }
    if items.len() > MAX_PRINTED {
        s.push_str(&format!("\n    … and {} more", items.len() - MAX_PRINTED));
    }
    s
}

/// The lines printed after the per-code table.
pub fn summary(p: &Published) -> String {
    let mut lines = Vec::new();
    if let (Some((path, id)), Some(c)) = (&p.history, &p.changes) {
        match &c.previous {
            Some(prev) => lines.push(format!(
                "\nHistory ({}): run #{id}, compared with run #{} of {} (revision {}):",
                path.display(),
                prev.id,
                prev.started_at,
                prev.git_revision
            )),
            None => lines.push(format!(
                "\nHistory ({}): run #{id}, the first of this target and profile.",
                path.display()
            )),
        }
        let show = |v: &[crate::history::Change]| -> Vec<String> {
            v.iter()
                .map(|c| format!("{}: {} → {}", c.scenario, c.from.as_str(), c.to.as_str()))
                .collect()
        };
        lines.push(list("newly failing", &show(&c.diff.newly_failing)));
        lines.push(list("newly passing", &show(&c.diff.newly_passing)));
        if !c.diff.changed.is_empty() {
            lines.push(list("other grade changes", &show(&c.diff.changed)));
        }
        let flaky: Vec<String> = c
            .flaky
            .iter()
            .map(|f| {
                let seq: Vec<&str> = f
                    .grades
                    .iter()
                    .map(|g| g.map_or("absent", Grade::as_str))
                    .collect();
                format!("{}: {} flips ({})", f.scenario, f.flips, seq.join(", "))
            })
            .collect();
        lines.push(list(
            &format!("flaky in the last {} run(s)", c.window.len()),
            &flaky,
        ));
    }
    let pages: Vec<String> = [&p.report_html, &p.matrix_html]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    if !pages.is_empty() {
        lines.push(format!(
            "HTML: {} (history and pages: {} ms)",
            pages.join(" and "),
            p.elapsed.as_millis()
        ));
    }
    for problem in &p.problems {
        lines.push(format!("reports: {problem}"));
    }
    lines.join("\n")
}
