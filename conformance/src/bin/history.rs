//! `cargo run -p conformance --bin history -- list|show <run>|diff <a> <b>|flaky|matrix`:
//! the run history that every conformance run records (see `conformance::history`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use conformance::history::{diff, History, RunSummary};
use conformance::report::Grade;
use conformance::RunOptions;
use tabled::settings::Style;
use tabled::{Table, Tabled};

#[derive(Parser)]
#[command(about = "Run history of the conformance harness")]
struct Cli {
    /// The history database (default: CONFORMANCE_HISTORY, else
    /// <CONFORMANCE_REPORTS or reports/conformance>/history.sqlite3).
    #[arg(long, global = true)]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs, newest first.
    List {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        profile: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One run: its metadata, then its failed and skipped scenarios (all with --all).
    Show {
        run: i64,
        #[arg(long)]
        all: bool,
    },
    /// What changed from run A to run B.
    Diff { a: i64, b: i64 },
    /// Scenarios that went pass → fail → pass (or the reverse) within the last runs of a
    /// target and profile (default: those of the newest run).
    Flaky {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        profile: Option<String>,
        #[arg(long, default_value_t = conformance::publish::DEFAULT_FLAKY_WINDOW)]
        runs: usize,
    },
    /// Writes matrix.html from the latest run of every target and profile.
    Matrix {
        /// Default: matrix.html beside the database.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Tabled)]
struct ListRow {
    run: i64,
    started: String,
    target: String,
    profile: String,
    revision: String,
    filter: String,
    conformant: usize,
    #[tabled(rename = "non-strict")]
    non_strict: usize,
    failed: usize,
    #[tabled(rename = "n/a")]
    not_applicable: usize,
    skipped: usize,
    seconds: String,
}

fn count(s: &RunSummary, g: Grade) -> usize {
    s.counts
        .iter()
        .find(|(x, _)| *x == g)
        .map_or(0, |(_, n)| *n)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("history: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let path = match cli.db {
        Some(p) => p,
        None => conformance::publish::history_path(&RunOptions::from_env().reports)
            .ok_or("CONFORMANCE_HISTORY is off; pass --db")?,
    };
    if !path.exists() {
        return Err(format!(
            "{} does not exist yet: run the conformance suite first",
            path.display()
        ));
    }
    let h = History::open(&path)?;
    match cli.command {
        Command::List {
            target,
            profile,
            limit,
        } => {
            let runs = h.runs(target.as_deref(), profile.as_deref(), limit)?;
            let rows: Vec<ListRow> = runs
                .iter()
                .map(|r| ListRow {
                    run: r.meta.id,
                    started: r.meta.started_at.clone(),
                    target: r.meta.target.clone(),
                    profile: r.meta.profile.clone(),
                    revision: r.meta.git_revision.clone(),
                    filter: r.meta.filter.clone(),
                    conformant: count(r, Grade::Conformant),
                    non_strict: count(r, Grade::NonStrict),
                    failed: count(r, Grade::Failed),
                    not_applicable: count(r, Grade::NotApplicable),
                    skipped: count(r, Grade::Skipped),
                    seconds: format!("{:.1}", r.meta.elapsed_ms as f64 / 1000.0),
                })
                .collect();
            println!("{}", Table::new(rows).with(Style::markdown()));
        }
        Command::Show { run, all } => {
            let r = h.load(run)?;
            let m = &r.meta;
            println!(
                "run #{}: {} (profile {}), {} — revision {}, harness {}, {:.1} s",
                m.id,
                m.target,
                m.profile,
                m.started_at,
                m.git_revision,
                m.harness_version,
                m.elapsed_ms as f64 / 1000.0
            );
            println!(
                "features: {}  filter: {}",
                m.features,
                if m.filter.is_empty() {
                    "whole suite"
                } else {
                    &m.filter
                }
            );
            let counts: Vec<String> = r
                .counts()
                .iter()
                .map(|(g, n)| format!("{n} {}", g.as_str()))
                .collect();
            println!("{}", counts.join(", "));
            for s in &r.scenarios {
                if all || matches!(s.grade, Grade::Failed | Grade::NonStrict | Grade::Skipped) {
                    println!(
                        "  {:<14} {:>8.1} ms  {}",
                        s.grade.as_str(),
                        s.duration_ms,
                        s.id
                    );
                    if let Some(d) = s.detail.as_ref().filter(|_| s.grade != Grade::Conformant) {
                        let first = d.lines().next().unwrap_or_default();
                        println!("                 {first}");
                    }
                }
            }
        }
        Command::Diff { a, b } => {
            for id in [a, b] {
                let m = h.meta(id)?.ok_or_else(|| format!("no run #{id}"))?;
                println!(
                    "run #{id}: {} (profile {}), {}, revision {}",
                    m.target, m.profile, m.started_at, m.git_revision
                );
            }
            let d = diff(&h.grades(a)?, &h.grades(b)?);
            let changes = |title: &str, v: &[conformance::history::Change]| {
                println!("{title} ({}):", v.len());
                for c in v {
                    println!(
                        "  - {}: {} → {}",
                        c.scenario,
                        c.from.as_str(),
                        c.to.as_str()
                    );
                }
            };
            changes("newly failing", &d.newly_failing);
            changes("newly passing", &d.newly_passing);
            changes("other grade changes", &d.changed);
            println!("only in #{b} ({}):", d.added.len());
            for s in &d.added {
                println!("  - {s}");
            }
            println!("only in #{a} ({}):", d.removed.len());
            for s in &d.removed {
                println!("  - {s}");
            }
        }
        Command::Flaky {
            target,
            profile,
            runs,
        } => {
            let newest = h.runs(target.as_deref(), profile.as_deref(), 1)?;
            let newest = newest.first().ok_or("no run matches")?;
            let (window, flaky) = h.flaky(
                &newest.meta.target,
                &newest.meta.profile,
                newest.meta.id,
                runs,
            )?;
            println!(
                "{} (profile {}): {} flaky over runs {:?}",
                newest.meta.target,
                newest.meta.profile,
                flaky.len(),
                window
            );
            for f in flaky {
                let seq: Vec<&str> = f
                    .grades
                    .iter()
                    .map(|g| g.map_or("absent", Grade::as_str))
                    .collect();
                println!("  - {}: {} flips ({})", f.scenario, f.flips, seq.join(", "));
            }
        }
        Command::Matrix { out } => {
            let runs = h
                .latest_per_target()?
                .into_iter()
                .map(|id| h.load(id))
                .collect::<Result<Vec<_>, _>>()?;
            let html = conformance::html::matrix_page(&runs)?;
            let out = out.unwrap_or_else(|| path.with_file_name("matrix.html"));
            std::fs::write(&out, html)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("{} ({} target(s))", out.display(), runs.len());
        }
    }
    Ok(())
}
