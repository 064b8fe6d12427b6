//! Run history in SQLite: every run's target, profile, harness version, git revision and
//! time, and each scenario's grade, duration, rows and transcript; then what changed since
//! the previous run of the same target and profile, and what flips back and forth.
//!
//! One file (default `reports/conformance/history.sqlite3`), schema versioned with
//! `PRAGMA user_version`. Scenarios are keyed by [`crate::report::scenario_ids`], so a
//! scenario keeps its history while the features around it are edited.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::report::Grade;
use crate::transcript::Transcript;

/// Schema version written to `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// How long a writer waits for another process holding the database (two runs at once).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    target          TEXT NOT NULL,
    profile         TEXT NOT NULL,
    harness_version TEXT NOT NULL,
    git_revision    TEXT NOT NULL,
    started_at      TEXT NOT NULL,   -- RFC 3339, UTC
    elapsed_ms      INTEGER NOT NULL,
    features        TEXT NOT NULL,   -- the feature folder
    filter          TEXT NOT NULL,   -- tag expression / name regex, '' for the whole suite
    catalog         TEXT NOT NULL    -- JSON array: the codes of the target's GET /errors
);
CREATE INDEX runs_by_target ON runs (target, profile, id);
CREATE TABLE results (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    scenario    TEXT NOT NULL,       -- report::scenario_ids
    feature     TEXT NOT NULL,
    name        TEXT NOT NULL,
    file        TEXT NOT NULL,
    line        INTEGER NOT NULL,
    grade       TEXT NOT NULL,       -- report::Grade::as_str
    duration_ms REAL NOT NULL,
    rows        TEXT NOT NULL,       -- JSON array: report::ScenarioResult::rows
    detail      TEXT,                -- the failure, or why it was skipped
    PRIMARY KEY (run_id, scenario)
);
-- Apart from results: most of a run's bytes, and deleted for older runs (rows deleted
-- free whole pages for reuse; shrinking a column in place would leave them sparse).
CREATE TABLE transcripts (
    run_id      INTEGER NOT NULL,
    scenario    TEXT NOT NULL,
    transcript  TEXT NOT NULL,       -- JSON: transcript::Transcript
    PRIMARY KEY (run_id, scenario),
    FOREIGN KEY (run_id, scenario) REFERENCES results (run_id, scenario) ON DELETE CASCADE
);
";

/// One run as recorded (and as read back).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunMeta {
    /// 0 until recorded.
    pub id: i64,
    pub target: String,
    pub profile: String,
    pub harness_version: String,
    pub git_revision: String,
    pub started_at: String,
    pub elapsed_ms: u64,
    pub features: String,
    pub filter: String,
    pub catalog: Vec<String>,
}

/// One scenario of a run.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioRecord {
    pub id: String,
    pub feature: String,
    pub name: String,
    pub file: String,
    pub line: usize,
    pub grade: Grade,
    pub duration_ms: f64,
    pub rows: Vec<String>,
    pub detail: Option<String>,
    pub transcript: Transcript,
}

/// A run and its scenarios.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunRecord {
    pub meta: RunMeta,
    pub scenarios: Vec<ScenarioRecord>,
}

impl RunRecord {
    /// Scenarios per grade, every grade listed (best first).
    pub fn counts(&self) -> Vec<(Grade, usize)> {
        Grade::ALL
            .iter()
            .map(|&g| (g, self.scenarios.iter().filter(|s| s.grade == g).count()))
            .collect()
    }
}

/// A run in a listing: its metadata and grade counts.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub meta: RunMeta,
    pub counts: Vec<(Grade, usize)>,
}

/// A scenario whose grade differs between two runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub scenario: String,
    pub from: Grade,
    pub to: Grade,
}

/// What differs from one run (`a`) to a later one (`b`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Did not fail in `a`, fails in `b`.
    pub newly_failing: Vec<Change>,
    /// Failed in `a`, passes (conformant or non-strict) in `b`.
    pub newly_passing: Vec<Change>,
    /// Any other change of grade (e.g. conformant → skipped).
    pub changed: Vec<Change>,
    /// In `b` only.
    pub added: Vec<String>,
    /// In `a` only.
    pub removed: Vec<String>,
}

/// Whether a grade counts as passing (Some(true)), failing (Some(false)) or neither.
fn outcome(g: Grade) -> Option<bool> {
    match g {
        Grade::Conformant | Grade::NonStrict => Some(true),
        Grade::Failed => Some(false),
        Grade::NotApplicable | Grade::Skipped => None,
    }
}

/// Compares the grades of two runs, scenario by scenario.
pub fn diff(a: &BTreeMap<String, Grade>, b: &BTreeMap<String, Grade>) -> Diff {
    let mut d = Diff::default();
    for (id, &to) in b {
        let Some(&from) = a.get(id) else {
            d.added.push(id.clone());
            continue;
        };
        if from == to {
            continue;
        }
        let c = Change {
            scenario: id.clone(),
            from,
            to,
        };
        if to == Grade::Failed {
            d.newly_failing.push(c);
        } else if from == Grade::Failed && outcome(to) == Some(true) {
            d.newly_passing.push(c);
        } else {
            d.changed.push(c);
        }
    }
    d.removed = a.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
    d
}

/// A scenario that went from passing to failing and back (or the reverse) within a window
/// of runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flaky {
    pub scenario: String,
    /// Pass ↔ fail changes between consecutive runs where it ran (skips are ignored).
    pub flips: usize,
    /// Its grade in each run of the window, oldest first (None: not in that run).
    pub grades: Vec<Option<Grade>>,
}

/// Fewest pass ↔ fail changes for a scenario to count as flaky: one change is a
/// regression or a fix (see [`Diff`]); two or more in a window is flakiness.
pub const FLAKY_MIN_FLIPS: usize = 2;

/// Scenarios with at least [`FLAKY_MIN_FLIPS`] flips over the given runs (oldest first).
pub fn flaky(runs: &[BTreeMap<String, Grade>]) -> Vec<Flaky> {
    let mut ids: Vec<&String> = runs.iter().flat_map(|r| r.keys()).collect();
    ids.sort();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        let grades: Vec<Option<Grade>> = runs.iter().map(|r| r.get(id).copied()).collect();
        let outcomes: Vec<bool> = grades
            .iter()
            .flatten()
            .filter_map(|&g| outcome(g))
            .collect();
        let flips = outcomes.windows(2).filter(|w| w[0] != w[1]).count();
        if flips >= FLAKY_MIN_FLIPS {
            out.push(Flaky {
                scenario: id.clone(),
                flips,
                grades,
            });
        }
    }
    out
}

/// What a run changed, as printed at its end and shown in its report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Changes {
    /// The run compared with: the previous one of the same target and profile.
    pub previous: Option<RunMeta>,
    pub diff: Diff,
    /// The runs the flakiness was judged over, oldest first (this run last).
    pub window: Vec<i64>,
    pub flaky: Vec<Flaky>,
}

/// The history database.
pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("path", &self.path).finish()
    }
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> String + '_ {
    move |e| format!("run history {}: {e}", path.display())
}

fn grade_of(s: &str) -> Grade {
    // A grade this harness version does not know reads as failed, never as a pass.
    Grade::parse(s).unwrap_or(Grade::Failed)
}

impl History {
    /// Opens (creating it and its folder if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<History, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let err = db_err(path);
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(&err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(&err)?;
        match version {
            0 => {
                conn.execute_batch(&format!(
                    "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(&err)?;
            }
            SCHEMA_VERSION => {}
            v => {
                return Err(format!(
                    "run history {} has schema version {v}; this harness knows {SCHEMA_VERSION} \
                     (use another CONFORMANCE_HISTORY file)",
                    path.display()
                ))
            }
        }
        Ok(History {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a run with its scenarios in one transaction; returns its id.
    pub fn record(&mut self, run: &RunRecord) -> Result<i64, String> {
        let path = self.path.clone();
        let err = db_err(&path);
        let tx = self.conn.transaction().map_err(&err)?;
        let m = &run.meta;
        tx.execute(
            "INSERT INTO runs (target, profile, harness_version, git_revision, started_at,
                               elapsed_ms, features, filter, catalog)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                m.target,
                m.profile,
                m.harness_version,
                m.git_revision,
                m.started_at,
                i64::try_from(m.elapsed_ms).unwrap_or(i64::MAX),
                m.features,
                m.filter,
                serde_json::to_string(&m.catalog).unwrap_or_else(|_| "[]".into()),
            ],
        )
        .map_err(&err)?;
        let id = tx.last_insert_rowid();
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO results (run_id, scenario, feature, name, file, line, grade,
                                          duration_ms, rows, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(&err)?;
            let mut tape = tx
                .prepare(
                    "INSERT INTO transcripts (run_id, scenario, transcript) VALUES (?1, ?2, ?3)",
                )
                .map_err(&err)?;
            for s in &run.scenarios {
                ins.execute(params![
                    id,
                    s.id,
                    s.feature,
                    s.name,
                    s.file,
                    i64::try_from(s.line).unwrap_or(i64::MAX),
                    s.grade.as_str(),
                    s.duration_ms,
                    serde_json::to_string(&s.rows).unwrap_or_else(|_| "[]".into()),
                    s.detail,
                ])
                .map_err(&err)?;
                if s.transcript != Transcript::default() {
                    tape.execute(params![
                        id,
                        s.id,
                        serde_json::to_string(&s.transcript).unwrap_or_else(|_| "{}".into()),
                    ])
                    .map_err(&err)?;
                }
            }
        }
        tx.commit().map_err(&err)?;
        Ok(id)
    }

    fn meta_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunMeta> {
        let catalog: String = r.get(9)?;
        Ok(RunMeta {
            id: r.get(0)?,
            target: r.get(1)?,
            profile: r.get(2)?,
            harness_version: r.get(3)?,
            git_revision: r.get(4)?,
            started_at: r.get(5)?,
            elapsed_ms: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
            features: r.get(7)?,
            filter: r.get(8)?,
            catalog: serde_json::from_str(&catalog).unwrap_or_default(),
        })
    }

    const META_COLUMNS: &'static str = "id, target, profile, harness_version, git_revision, \
         started_at, elapsed_ms, features, filter, catalog";

    pub fn meta(&self, id: i64) -> Result<Option<RunMeta>, String> {
        self.conn
            .query_row(
                &format!("SELECT {} FROM runs WHERE id = ?1", Self::META_COLUMNS),
                [id],
                Self::meta_from_row,
            )
            .optional()
            .map_err(db_err(&self.path))
    }

    /// Runs, newest first, optionally of one target / profile, at most `limit`.
    pub fn runs(
        &self,
        target: Option<&str>,
        profile: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, String> {
        let err = db_err(&self.path);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM runs
                 WHERE (?1 IS NULL OR target = ?1) AND (?2 IS NULL OR profile = ?2)
                 ORDER BY id DESC LIMIT ?3",
                Self::META_COLUMNS
            ))
            .map_err(&err)?;
        let metas: Vec<RunMeta> = stmt
            .query_map(
                params![target, profile, i64::try_from(limit).unwrap_or(i64::MAX)],
                Self::meta_from_row,
            )
            .map_err(&err)?
            .collect::<Result<_, _>>()
            .map_err(&err)?;
        let mut out = Vec::new();
        for meta in metas {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT grade, COUNT(*) FROM results WHERE run_id = ?1 GROUP BY grade",
                )
                .map_err(&err)?;
            let by: HashMap<String, usize> = stmt
                .query_map([meta.id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        usize::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    ))
                })
                .map_err(&err)?
                .collect::<Result<_, _>>()
                .map_err(&err)?;
            let counts = Grade::ALL
                .iter()
                .map(|g| (*g, by.get(g.as_str()).copied().unwrap_or(0)))
                .collect();
            out.push(RunSummary { meta, counts });
        }
        Ok(out)
    }

    /// Each scenario's grade in a run.
    pub fn grades(&self, run: i64) -> Result<BTreeMap<String, Grade>, String> {
        let err = db_err(&self.path);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT scenario, grade FROM results WHERE run_id = ?1")
            .map_err(&err)?;
        let rows = stmt
            .query_map([run], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(&err)?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (id, g) = row.map_err(&err)?;
            out.insert(id, grade_of(&g));
        }
        Ok(out)
    }

    /// A whole run, transcripts included.
    pub fn load(&self, id: i64) -> Result<RunRecord, String> {
        let err = db_err(&self.path);
        let meta = self
            .meta(id)?
            .ok_or_else(|| format!("run history {}: no run #{id}", self.path.display()))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.scenario, r.feature, r.name, r.file, r.line, r.grade, r.duration_ms,
                        r.rows, r.detail, t.transcript
                 FROM results r LEFT JOIN transcripts t
                   ON t.run_id = r.run_id AND t.scenario = r.scenario
                 WHERE r.run_id = ?1 ORDER BY r.file, r.line, r.scenario",
            )
            .map_err(&err)?;
        let scenarios = stmt
            .query_map([id], |r| {
                let rows: String = r.get(7)?;
                let transcript: Option<String> = r.get(9)?;
                Ok(ScenarioRecord {
                    id: r.get(0)?,
                    feature: r.get(1)?,
                    name: r.get(2)?,
                    file: r.get(3)?,
                    line: usize::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                    grade: grade_of(&r.get::<_, String>(5)?),
                    duration_ms: r.get(6)?,
                    rows: serde_json::from_str(&rows).unwrap_or_default(),
                    detail: r.get(8)?,
                    transcript: transcript
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                })
            })
            .map_err(&err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&err)?;
        Ok(RunRecord { meta, scenarios })
    }

    /// The run before `id` of the same target and profile.
    pub fn previous(&self, id: i64) -> Result<Option<RunMeta>, String> {
        let Some(m) = self.meta(id)? else {
            return Ok(None);
        };
        self.conn
            .query_row(
                &format!(
                    "SELECT {} FROM runs WHERE target = ?1 AND profile = ?2 AND id < ?3
                     ORDER BY id DESC LIMIT 1",
                    Self::META_COLUMNS
                ),
                params![m.target, m.profile, id],
                Self::meta_from_row,
            )
            .optional()
            .map_err(db_err(&self.path))
    }

    /// The last `window` runs of a target and profile up to and including `upto`, oldest
    /// first.
    pub fn window(
        &self,
        target: &str,
        profile: &str,
        upto: i64,
        window: usize,
    ) -> Result<Vec<i64>, String> {
        let err = db_err(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id FROM runs WHERE target = ?1 AND profile = ?2 AND id <= ?3
                 ORDER BY id DESC LIMIT ?4",
            )
            .map_err(&err)?;
        let mut ids: Vec<i64> = stmt
            .query_map(
                params![
                    target,
                    profile,
                    upto,
                    i64::try_from(window).unwrap_or(i64::MAX)
                ],
                |r| r.get(0),
            )
            .map_err(&err)?
            .collect::<Result<_, _>>()
            .map_err(&err)?;
        ids.reverse();
        Ok(ids)
    }

    /// Flaky scenarios over the last `window` runs of a target and profile up to `upto`.
    pub fn flaky(
        &self,
        target: &str,
        profile: &str,
        upto: i64,
        window: usize,
    ) -> Result<(Vec<i64>, Vec<Flaky>), String> {
        let ids = self.window(target, profile, upto, window)?;
        let grades = ids
            .iter()
            .map(|&id| self.grades(id))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((ids, flaky(&grades)))
    }

    /// Drops the transcripts of all but the newest `keep` runs of a target and profile
    /// (grades and durations stay): transcripts are most of a run's size, and the pages
    /// only show the latest run of each target. Returns the transcripts deleted.
    pub fn prune_transcripts(
        &self,
        target: &str,
        profile: &str,
        keep: usize,
    ) -> Result<usize, String> {
        self.conn
            .execute(
                "DELETE FROM transcripts WHERE run_id IN (
                     SELECT id FROM runs WHERE target = ?1 AND profile = ?2
                     ORDER BY id DESC LIMIT -1 OFFSET ?3)",
                params![target, profile, i64::try_from(keep).unwrap_or(i64::MAX)],
            )
            .map_err(db_err(&self.path))
    }

    /// What run `id` changed since the previous run of its target and profile, and what
    /// is flaky over its last `window` runs.
    pub fn changes(&self, id: i64, window: usize) -> Result<Changes, String> {
        let meta = self
            .meta(id)?
            .ok_or_else(|| format!("run history {}: no run #{id}", self.path.display()))?;
        let now = self.grades(id)?;
        let previous = self.previous(id)?;
        let diff = match &previous {
            Some(p) => diff(&self.grades(p.id)?, &now),
            None => Diff::default(),
        };
        let (window, flaky) = self.flaky(&meta.target, &meta.profile, id, window)?;
        Ok(Changes {
            previous,
            diff,
            window,
            flaky,
        })
    }

    /// The newest run of each (target, profile), in order of first appearance.
    pub fn latest_per_target(&self) -> Result<Vec<i64>, String> {
        let err = db_err(&self.path);
        let mut stmt = self
            .conn
            .prepare("SELECT MAX(id) FROM runs GROUP BY target, profile ORDER BY MIN(id)")
            .map_err(&err)?;
        let ids = stmt
            .query_map([], |r| r.get(0))
            .map_err(&err)?
            .collect::<Result<Vec<i64>, _>>()
            .map_err(&err)?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn grades(pairs: &[(&str, Grade)]) -> BTreeMap<String, Grade> {
        pairs.iter().map(|(k, g)| ((*k).to_owned(), *g)).collect()
    }

    fn run(target: &str, results: &[(&str, Grade)]) -> RunRecord {
        RunRecord {
            meta: RunMeta {
                target: target.into(),
                profile: "dgx".into(),
                harness_version: "0.1.0".into(),
                git_revision: "abc".into(),
                started_at: "2026-12-02T00:00:00Z".into(),
                catalog: vec!["missing_authorization".into()],
                ..RunMeta::default()
            },
            scenarios: results
                .iter()
                .map(|(id, g)| ScenarioRecord {
                    id: (*id).into(),
                    feature: "Auth".into(),
                    name: (*id).into(),
                    file: "auth.feature".into(),
                    line: 3,
                    grade: *g,
                    duration_ms: 1.25,
                    rows: vec!["missing_authorization".into()],
                    detail: None,
                    transcript: Transcript::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn diff_sorts_changes_into_failing_passing_and_other() {
        use Grade::*;
        let a = grades(&[
            ("a", Conformant),
            ("b", Failed),
            ("c", Conformant),
            ("d", Skipped),
            ("gone", Conformant),
        ]);
        let b = grades(&[
            ("a", Failed),
            ("b", NonStrict),
            ("c", Skipped),
            ("d", Failed),
            ("new", Conformant),
        ]);
        let d = diff(&a, &b);
        let ids = |v: &[Change]| v.iter().map(|c| c.scenario.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&d.newly_failing), ["a", "d"]);
        assert_eq!(ids(&d.newly_passing), ["b"]);
        assert_eq!(ids(&d.changed), ["c"]);
        assert_eq!(d.added, ["new"]);
        assert_eq!(d.removed, ["gone"]);
    }

    #[test]
    fn flaky_needs_two_flips_and_ignores_skips() {
        use Grade::*;
        let runs = vec![
            grades(&[
                ("x", Conformant),
                ("once", Conformant),
                ("skippy", Conformant),
            ]),
            grades(&[("x", Failed), ("once", Failed), ("skippy", Skipped)]),
            grades(&[("x", Conformant), ("once", Failed), ("skippy", Conformant)]),
        ];
        let f = flaky(&runs);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].scenario, "x");
        assert_eq!(f[0].flips, 2);
        assert_eq!(
            f[0].grades,
            [Some(Conformant), Some(Failed), Some(Conformant)]
        );
    }

    #[test]
    fn runs_round_trip_and_previous_is_per_target_and_profile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("history.sqlite3");
        let mut h = History::open(&path).unwrap();
        let mut first = run(
            "embedded",
            &[("s1", Grade::Conformant), ("s2", Grade::Conformant)],
        );
        first.scenarios[0].transcript.dropped = 3;
        let a = h.record(&first).unwrap();
        let other = h
            .record(&run("http://peer", &[("s1", Grade::Failed)]))
            .unwrap();
        let b = h
            .record(&run(
                "embedded",
                &[("s1", Grade::Conformant), ("s2", Grade::Failed)],
            ))
            .unwrap();
        drop(h);
        // Reopening finds the schema in place.
        let h = History::open(&path).unwrap();
        assert_eq!(h.previous(b).unwrap().map(|m| m.id), Some(a));
        assert_eq!(h.previous(other).unwrap().map(|m| m.id), None);
        let loaded = h.load(a).unwrap();
        assert_eq!(loaded.meta.catalog, ["missing_authorization"]);
        assert_eq!(loaded.scenarios.len(), 2);
        assert_eq!(loaded.scenarios[0].transcript.dropped, 3);
        assert_eq!(loaded.scenarios[0].duration_ms, 1.25);
        let d = diff(&h.grades(a).unwrap(), &h.grades(b).unwrap());
        assert_eq!(d.newly_failing[0].scenario, "s2");
        let listed = h.runs(Some("embedded"), None, 10).unwrap();
        assert_eq!(listed.iter().map(|r| r.meta.id).collect::<Vec<_>>(), [b, a]);
        assert_eq!(listed[0].counts[0], (Grade::Conformant, 1));
        assert_eq!(h.latest_per_target().unwrap(), [b, other]);
        assert_eq!(h.window("embedded", "dgx", b, 1).unwrap(), [b]);
        // Pruning keeps the newest run's transcripts and every grade.
        assert_eq!(h.prune_transcripts("embedded", "dgx", 1).unwrap(), 1);
        assert_eq!(h.load(a).unwrap().scenarios[0].transcript.dropped, 0);
        assert_eq!(h.grades(a).unwrap().len(), 2);
    }

    #[test]
    fn an_unknown_schema_version_is_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let e = History::open(&path).unwrap_err();
        assert!(e.contains("h.sqlite3") && e.contains("99"), "{e}");
    }
}
