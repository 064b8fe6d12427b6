//! The cucumber runner: features in, reports out.
//!
//! - The process arguments are never parsed (`cargo test conformance` passes `conformance`
//!   to every test binary); filters come from `CONFORMANCE_TAGS` / `CONFORMANCE_NAME`.
//! - Scenarios the target cannot run are rewritten by [`FeatureParser`] into a single
//!   unmatched step that states the reason, and tagged `@allow.skipped`: cucumber reports
//!   them as skipped, and `fail_on_skipped` turns every other skip into a failure.
//! - Zero retries; scenarios run concurrently, each World with its own marker and tokens.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cucumber::gherkin;
use cucumber::writer::{self, Coloring};
use cucumber::{World as _, WriterExt as _};
use futures_util::stream;

use crate::features;
use crate::progress::Progress;
use crate::publish::{self, Published};
use crate::report::{self, ScenarioResult, Status};
use crate::schemas::Schemas;
use crate::target::Target;
use crate::transcript::{Key, Tapes};
use crate::world::GatewayWorld;

/// Tag that marks a scenario this target cannot run (cucumber's own convention).
pub const SKIP_TAG: &str = "allow.skipped";

/// Environment variables of the runner itself.
pub mod vars {
    /// A cucumber tag expression, e.g. `@streaming and not @slow`.
    pub const CONFORMANCE_TAGS: &str = "CONFORMANCE_TAGS";
    /// A regex on scenario names.
    pub const CONFORMANCE_NAME: &str = "CONFORMANCE_NAME";
    /// Folder of the `.feature` files (default: `features/` of the workspace).
    pub const CONFORMANCE_FEATURES: &str = "CONFORMANCE_FEATURES";
    /// Folder for the reports (default: `reports/conformance/` of the workspace).
    pub const CONFORMANCE_REPORTS: &str = "CONFORMANCE_REPORTS";
    /// Scenarios run at once (default 32).
    pub const CONFORMANCE_CONCURRENCY: &str = "CONFORMANCE_CONCURRENCY";
}

pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn default_features_dir() -> PathBuf {
    workspace_dir().join("features")
}

pub fn default_reports_dir() -> PathBuf {
    workspace_dir().join("reports").join("conformance")
}

/// What to run and where to write.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub features: PathBuf,
    pub reports: PathBuf,
    pub tags: Option<String>,
    pub name: Option<String>,
    pub max_concurrent: usize,
    /// Print cucumber's progress to stdout.
    pub console: bool,
}

impl RunOptions {
    pub fn from_env() -> RunOptions {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        RunOptions {
            features: env(vars::CONFORMANCE_FEATURES)
                .map_or_else(default_features_dir, PathBuf::from),
            reports: env(vars::CONFORMANCE_REPORTS).map_or_else(default_reports_dir, PathBuf::from),
            tags: env(vars::CONFORMANCE_TAGS),
            name: env(vars::CONFORMANCE_NAME),
            max_concurrent: env(vars::CONFORMANCE_CONCURRENCY)
                .and_then(|v| v.parse().ok())
                .unwrap_or(32),
            console: true,
        }
    }

    pub fn schemas_dir(&self) -> PathBuf {
        self.features.join("schemas")
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunReport {
    pub target: String,
    pub scenarios: Vec<ScenarioResult>,
    pub failed: bool,
    pub parsing_errors: usize,
    pub table: String,
    pub elapsed: Duration,
    pub junit: PathBuf,
    pub json: PathBuf,
    /// History, changes since the last run, HTML pages.
    pub published: Published,
}

impl RunReport {
    pub fn count(&self, s: Status) -> usize {
        self.scenarios.iter().filter(|r| r.status == s).count()
    }

    pub fn failures(&self) -> Vec<&ScenarioResult> {
        self.scenarios
            .iter()
            .filter(|r| r.status == Status::Failed)
            .collect()
    }

    /// The closing line: `conformance: N passed, N failed, N skipped`.
    pub fn summary_line(&self) -> String {
        format!(
            "conformance: {} passed, {} failed, {} skipped",
            self.count(Status::Passed),
            self.count(Status::Failed),
            self.count(Status::Skipped)
        )
    }
}

/// The target of this process: `GATEWAY_URL` if set, else the embedded reference gateway.
pub async fn target_from_env(opts: &RunOptions) -> Result<Arc<Target>, String> {
    let schemas = Arc::new(Schemas::load(&opts.schemas_dir())?);
    match Target::from_env(Arc::clone(&schemas)).await? {
        Some(t) => Ok(Arc::new(t)),
        None => Ok(Arc::new(crate::embedded::start(schemas).await?)),
    }
}

/// Parses the features and rewrites the scenarios the target cannot run into skips.
pub struct FeatureParser {
    target: Arc<Target>,
}

impl cucumber::Parser<PathBuf> for FeatureParser {
    type Cli = cucumber::cli::Empty;
    type Output = stream::Iter<std::vec::IntoIter<cucumber::parser::Result<gherkin::Feature>>>;

    fn parse(self, input: PathBuf, _cli: Self::Cli) -> Self::Output {
        let files = match features::feature_files(&input) {
            Ok(f) => f,
            Err(e) => {
                let err = gherkin::ParseFileError::Reading {
                    path: input,
                    source: io::Error::other(e),
                };
                return stream::iter(vec![Err(err.into())]);
            }
        };
        let out: Vec<cucumber::parser::Result<gherkin::Feature>> = files
            .into_iter()
            .map(|path| {
                let feature = gherkin::Feature::parse_path(&path, gherkin::GherkinEnv::default())?;
                let feature = cucumber::feature::Ext::expand_examples(feature)?;
                Ok(mark_skips(feature, &self.target))
            })
            .collect();
        stream::iter(out)
    }
}

fn background_steps(bg: Option<&gherkin::Background>) -> Vec<String> {
    bg.iter()
        .flat_map(|b| b.steps.iter().map(|s| s.value.clone()))
        .collect()
}

fn skip_if_unmet(
    sc: &mut gherkin::Scenario,
    inherited_tags: &[String],
    inherited_steps: &[String],
    target: &Target,
) {
    let mut tags = inherited_tags.to_vec();
    tags.extend(sc.tags.iter().cloned());
    let mut steps = inherited_steps.to_vec();
    steps.extend(sc.steps.iter().map(|s| s.value.clone()));
    let reasons = target.unmet_needs(&tags, &steps);
    if reasons.is_empty() {
        return;
    }
    if let Some(first) = sc.steps.first().cloned() {
        let mut placeholder = first;
        placeholder.keyword = "Given ".into();
        placeholder.ty = gherkin::StepType::Given;
        placeholder.value = format!("this target cannot run it: {}", reasons.join("; "));
        placeholder.docstring = None;
        placeholder.table = None;
        sc.steps = vec![placeholder];
    }
    sc.tags.push(SKIP_TAG.to_owned());
}

fn mark_skips(mut feature: gherkin::Feature, target: &Target) -> gherkin::Feature {
    let tags = feature.tags.clone();
    let bg = background_steps(feature.background.as_ref());
    for sc in &mut feature.scenarios {
        skip_if_unmet(sc, &tags, &bg, target);
    }
    for rule in &mut feature.rules {
        let mut rule_tags = tags.clone();
        rule_tags.extend(rule.tags.iter().cloned());
        let mut rule_bg = bg.clone();
        rule_bg.extend(background_steps(rule.background.as_ref()));
        for sc in &mut rule.scenarios {
            skip_if_unmet(sc, &rule_tags, &rule_bg, target);
        }
    }
    feature
}

/// Where cucumber's progress goes: stdout, or nowhere (runs inside other tests).
enum Console {
    Stdout(io::Stdout),
    Sink,
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Console::Stdout(s) => s.write(buf),
            Console::Sink => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Console::Stdout(s) => s.flush(),
            Console::Sink => Ok(()),
        }
    }
}

/// Runs the features against `target` and writes the reports.
pub async fn run(target: Arc<Target>, opts: &RunOptions) -> Result<RunReport, String> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    std::fs::create_dir_all(&opts.reports)
        .map_err(|e| format!("cannot create {}: {e}", opts.reports.display()))?;
    let junit = opts.reports.join("junit.xml");
    let json = opts.reports.join("cucumber.json");
    let create = |p: &Path| {
        std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
    };
    let console = if opts.console {
        Console::Stdout(io::stdout())
    } else {
        Console::Sink
    };

    let tags_filter = match &opts.tags {
        Some(t) => Some(
            t.parse()
                .map_err(|e| format!("bad tag expression `{t}`: {e}"))?,
        ),
        None => None,
    };
    let re_filter = match &opts.name {
        Some(n) => Some(
            cucumber::codegen::Regex::new(n).map_err(|e| format!("bad name regex `{n}`: {e}"))?,
        ),
        None => None,
    };
    let cli = cucumber::cli::Opts {
        re_filter,
        tags_filter,
        parser: Default::default(),
        runner: Default::default(),
        writer: Default::default(),
        custom: cucumber::cli::Empty,
    };

    let hook_target = Arc::clone(&target);
    let tapes = Tapes::default();
    let hook_tapes = tapes.clone();
    let writer = GatewayWorld::cucumber::<PathBuf>()
        .with_parser(FeatureParser {
            target: Arc::clone(&target),
        })
        .with_writer(
            writer::Basic::raw(console, Coloring::Never, 0)
                .summarized()
                .tee::<GatewayWorld, _>(writer::JUnit::for_tee(create(&junit)?, 0))
                .tee::<GatewayWorld, _>(writer::Json::for_tee(create(&json)?))
                .normalized()
                .tee::<GatewayWorld, _>(Progress::teed(crate::progress::wanted())),
        )
        .fail_on_skipped()
        .max_concurrent_scenarios(opts.max_concurrent)
        .retries(0)
        .before(move |_, _, scenario, world| {
            let skipping = scenario.tags.iter().any(|t| t == SKIP_TAG);
            world.attach(Arc::clone(&hook_target), skipping);
            Box::pin(async {})
        })
        .after(move |feature, rule, scenario, _, world| {
            if let Some(w) = world {
                hook_tapes.put(Key::of(feature, rule, scenario), w.tape.take());
            }
            Box::pin(async {})
        })
        .with_cli(cli)
        .run(opts.features.clone())
        .await;
    let failed = cucumber::writer::Stats::<GatewayWorld>::execution_has_failed(&writer);
    let parsing_errors = cucumber::writer::Stats::<GatewayWorld>::parsing_errors(&writer);
    // Dropping the writer closes the report files before they are read back.
    drop(writer);

    let scenarios = report::read_json(&json)?;
    let codes: Vec<String> = match target.catalog().await {
        Ok(entries) => entries.iter().map(|e| e.code.clone()).collect(),
        Err(_) => Vec::new(),
    };
    let table = report::per_code_table(&codes, &scenarios);
    let _ = std::fs::write(opts.reports.join("per_code.md"), format!("{table}\n"));
    let record = publish::record_of(
        opts,
        &target.name,
        &codes,
        &scenarios,
        &tapes,
        started_at,
        started.elapsed(),
    );
    let published = publish::publish(&opts.reports, record);
    Ok(RunReport {
        target: target.name.clone(),
        scenarios,
        failed,
        parsing_errors,
        table,
        elapsed: started.elapsed(),
        junit,
        json,
        published,
    })
}

/// Prints what a person needs after a run: skips with reasons, failures, the per-code
/// table and the closing line.
pub fn print_report(r: &RunReport) {
    let skipped: Vec<&ScenarioResult> = r
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Skipped)
        .collect();
    if !skipped.is_empty() {
        println!("\nSkipped on {} ({}):", r.target, skipped.len());
        for s in skipped {
            println!(
                "  - {}:{} {} — {}",
                s.uri,
                s.line,
                s.name,
                s.skip_reason().unwrap_or_default()
            );
        }
    }
    let failures = r.failures();
    if !failures.is_empty() {
        println!("\nFailed on {} ({}):", r.target, failures.len());
        for s in failures {
            println!(
                "  - {}:{} {}\n      {}",
                s.uri,
                s.line,
                s.name,
                s.failure().unwrap_or_default().replace('\n', "\n      ")
            );
        }
    }
    println!("\nPer-code results against {}:\n{}", r.target, r.table);
    println!("{}", publish::summary(&r.published));
    println!(
        "\nReports: {} and {} ({:.1} s)",
        r.junit.display(),
        r.json.display(),
        r.elapsed.as_secs_f64()
    );
    println!("{}", r.summary_line());
}

/// The whole harness, for `tests/conformance.rs`: exit code 0 only when everything passed.
pub fn main_exit_code() -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("conformance: cannot start the runtime: {e}");
            return 2;
        }
    };
    rt.block_on(async {
        let opts = RunOptions::from_env();
        let target = match target_from_env(&opts).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("conformance: cannot set up the target: {e}");
                return 2;
            }
        };
        println!(
            "conformance: running {} against {}",
            opts.features.display(),
            target.name
        );
        match run(target, &opts).await {
            Ok(report) => {
                print_report(&report);
                i32::from(report.failed || report.parsing_errors > 0)
            }
            Err(e) => {
                eprintln!("conformance: the run failed: {e}");
                2
            }
        }
    })
}
