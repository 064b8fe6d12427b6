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

use std::collections::HashMap;

use crate::features;
use crate::profile::Profile;
use crate::progress::Progress;
use crate::publish::{self, Published};
use crate::report::{self, Grade, ScenarioResult, Status};
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
    /// `0`: the embedded run skips its second pass against the gateway without server-side
    /// tools (default `1`).
    pub const CONFORMANCE_NO_SERVER_TOOLS: &str = "CONFORMANCE_NO_SERVER_TOOLS";
    /// `0`: the embedded run skips its third pass against the gateway with a tight body memory
    /// budget (default `1`).
    pub const CONFORMANCE_TIGHT_MEMORY: &str = "CONFORMANCE_TIGHT_MEMORY";
}

/// The features the embedded run also runs against the gateway without server-side tools
/// (`embedded::NAME_NO_SERVER_TOOLS`): every feature whose requests a plain relay answers.
/// Validation-only features (request schema, auth, discovery) would add run time and no
/// path, but for their `@byte_relay` scenarios (what the raw relay forwards); the tool-loop
/// features need the server-side tools.
pub const NO_SERVER_TOOLS_TAGS: &str = "(@baseline or @streaming or @upstream_errors or @max_tokens_floor or @conversations or @request_ids or @quotas or @byte_relay) and not @needs-server-tools";

/// Where the second pass writes its reports, under the run's own reports folder.
pub const NO_SERVER_TOOLS_REPORTS: &str = "no-server-tools";

/// The scenarios of the third pass (`embedded::NAME_TIGHT_MEMORY`), and only of it: they need
/// the tight body memory budget, which no other target is known to have (a user's gateway, a
/// peer), and the other passes never run them.
pub const TIGHT_MEMORY_TAGS: &str = "@needs-tight-memory";

/// Where the third pass writes its reports.
pub const TIGHT_MEMORY_REPORTS: &str = "tight-memory";

/// `tags` and not [`TIGHT_MEMORY_TAGS`]: the tag filter of every pass but the third.
fn without_tight_memory(tags: Option<&str>) -> String {
    match tags {
        Some(t) => format!("({t}) and not {TIGHT_MEMORY_TAGS}"),
        None => format!("not {TIGHT_MEMORY_TAGS}"),
    }
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
    pub profile: String,
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

    pub fn count_grade(&self, g: Grade) -> usize {
        self.scenarios.iter().filter(|r| r.grade() == g).count()
    }

    /// The closing line: `conformance (profile dgx): N conformant, N non-strict, …`.
    pub fn summary_line(&self) -> String {
        let parts: Vec<String> = Grade::ALL
            .iter()
            .map(|g| format!("{} {}", self.count_grade(*g), g.as_str()))
            .collect();
        format!(
            "conformance (profile {}): {} scenarios: {}",
            self.profile,
            self.scenarios.len(),
            parts.join(", ")
        )
    }
}

/// The profile of this process: `CONFORMANCE_PROFILE`, else the target file's `profile`,
/// else `dgx`.
pub fn profile_from_env(opts: &RunOptions, schemas: &Schemas) -> Result<Profile, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let name = env(crate::profile::PROFILE_VAR)
        .or_else(|| {
            env(crate::target::vars::CONFORMANCE_TARGET)
                .and_then(|p| crate::target_file::profile_of(Path::new(&p)))
        })
        .unwrap_or_else(|| crate::profile::DEFAULT_PROFILE.to_owned());
    Profile::load(&opts.features, &name, schemas)
}

/// The target of this process: a target file or `GATEWAY_URL` if set, else the embedded
/// reference gateway; judged by [`profile_from_env`].
pub async fn target_from_env(opts: &RunOptions) -> Result<Arc<Target>, String> {
    let schemas = Arc::new(Schemas::load(&opts.schemas_dir())?);
    let profile = Arc::new(profile_from_env(opts, &schemas)?);
    let mut target = match Target::from_env(Arc::clone(&schemas)).await? {
        Some(t) => t,
        None => crate::embedded::start(schemas).await?,
    };
    target.profile = profile;
    Ok(Arc::new(target))
}

/// What the parser learnt about each scenario, by [`scenario_key`]: the report keeps it
/// for scenarios that did not run.
#[derive(Clone, Debug, Default)]
pub struct ScenarioMeta {
    pub id: String,
    pub conditions: Vec<String>,
    pub codes: Vec<String>,
    /// Why it did not run, and whether that is "not applicable" (else "skipped").
    pub not_run: Option<(String, bool)>,
}

pub type MetaMap = Arc<parking_lot::Mutex<HashMap<String, ScenarioMeta>>>;

/// `auth.feature:42`: a scenario (or Examples row) within one run.
pub fn scenario_key(path: &str, line: usize) -> String {
    let file = Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |f| f.to_string_lossy().into_owned());
    format!("{file}:{line}")
}

/// Parses the features and rewrites the scenarios the target cannot run into skips.
pub struct FeatureParser {
    target: Arc<Target>,
    meta: MetaMap,
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
                Ok(mark_skips(feature, &self.target, &self.meta))
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

struct ScanCtx<'a> {
    target: &'a Target,
    file: String,
    meta: &'a MetaMap,
    /// Scenario name → how often it was seen in this file (ids of Examples rows).
    seen: HashMap<String, usize>,
}

fn skip_if_unmet(
    sc: &mut gherkin::Scenario,
    inherited_tags: &[String],
    inherited_steps: &[String],
    ctx: &mut ScanCtx<'_>,
) {
    let mut tags = inherited_tags.to_vec();
    tags.extend(sc.tags.iter().cloned());
    let mut steps = inherited_steps.to_vec();
    steps.extend(sc.steps.iter().map(|s| s.value.clone()));
    let conditions = crate::profile::scenario_conditions(&tags, &steps);
    let mut codes: Vec<String> = steps
        .iter()
        .flat_map(|s| features::asserted_codes(s))
        .collect();
    codes.extend(ctx.target.profile.codes_for(&conditions));
    let mut uniq = std::collections::BTreeSet::new();
    codes.retain(|c| uniq.insert(c.clone()));
    let n = ctx.seen.entry(sc.name.clone()).or_insert(0);
    *n += 1;
    let id = if *n == 1 {
        format!("{}: {}", ctx.file, sc.name)
    } else {
        format!("{}: {} #{n}", ctx.file, sc.name)
    };
    let reasons = ctx.target.unmet_needs(&tags, &steps);
    let not_run = if let Some(why) = ctx.target.profile.not_applicable(&tags, &conditions) {
        Some((why, true))
    } else if !reasons.is_empty() {
        Some((
            format!("this target cannot run it: {}", reasons.join("; ")),
            false,
        ))
    } else {
        None
    };
    ctx.meta.lock().insert(
        scenario_key(&ctx.file, sc.position.line),
        ScenarioMeta {
            id,
            conditions,
            codes,
            not_run: not_run.clone(),
        },
    );
    let Some((why, _)) = not_run else { return };
    if let Some(first) = sc.steps.first().cloned() {
        let mut placeholder = first;
        placeholder.keyword = "Given ".into();
        placeholder.ty = gherkin::StepType::Given;
        placeholder.value = why;
        placeholder.docstring = None;
        placeholder.table = None;
        sc.steps = vec![placeholder];
    }
    sc.tags.push(SKIP_TAG.to_owned());
}

fn mark_skips(mut feature: gherkin::Feature, target: &Target, meta: &MetaMap) -> gherkin::Feature {
    let tags = feature.tags.clone();
    let bg = background_steps(feature.background.as_ref());
    let mut ctx = ScanCtx {
        target,
        file: feature
            .path
            .as_ref()
            .and_then(|p| p.file_name())
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
        meta,
        seen: HashMap::new(),
    };
    for sc in &mut feature.scenarios {
        skip_if_unmet(sc, &tags, &bg, &mut ctx);
    }
    for rule in &mut feature.rules {
        let mut rule_tags = tags.clone();
        rule_tags.extend(rule.tags.iter().cloned());
        let mut rule_bg = bg.clone();
        rule_bg.extend(background_steps(rule.background.as_ref()));
        for sc in &mut rule.scenarios {
            skip_if_unmet(sc, &rule_tags, &rule_bg, &mut ctx);
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

    let tags_filter: Option<cucumber::gherkin::tagexpr::TagOperation> = match &opts.tags {
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
    // Both filters at once, not cucumber's own: with `--name` set it ignores `--tags`
    // (cucumber 0.23 `filter_run`), so a name filter would run every matching scenario in
    // every pass, the passes' own tag expressions (no server tools, tight memory) included.
    use cucumber::tag::Ext as _;
    let wanted = move |feat: &cucumber::gherkin::Feature,
                       rule: Option<&cucumber::gherkin::Rule>,
                       sc: &cucumber::gherkin::Scenario| {
        let tags_ok = tags_filter.as_ref().is_none_or(|ex| {
            // Feature, rule, scenario: the order cucumber evaluates them in.
            ex.eval(
                feat.tags
                    .iter()
                    .chain(rule.iter().flat_map(|r| &r.tags))
                    .chain(sc.tags.iter()),
            )
        });
        tags_ok && re_filter.as_ref().is_none_or(|re| re.is_match(&sc.name))
    };
    let cli = cucumber::cli::Opts {
        re_filter: None,
        tags_filter: None,
        parser: Default::default(),
        runner: Default::default(),
        writer: Default::default(),
        custom: cucumber::cli::Empty,
    };

    let hook_target = Arc::clone(&target);
    let meta: MetaMap = Arc::default();
    let tapes = Tapes::default();
    let hook_tapes = tapes.clone();
    let writer = GatewayWorld::cucumber::<PathBuf>()
        .with_parser(FeatureParser {
            target: Arc::clone(&target),
            meta: Arc::clone(&meta),
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
        .before(move |feature, _, scenario, world| {
            let skipping = scenario.tags.iter().any(|t| t == SKIP_TAG);
            let path = feature
                .path
                .as_ref()
                .map_or_else(String::new, |p| p.to_string_lossy().into_owned());
            let key = scenario_key(&path, scenario.position.line);
            world.attach(Arc::clone(&hook_target), skipping, key);
            Box::pin(async {})
        })
        .after(move |feature, rule, scenario, _, world| {
            let tapes = hook_tapes.clone();
            let key = Key::of(feature, rule, scenario);
            Box::pin(async move {
                if let Some(w) = world {
                    w.finish().await;
                    tapes.put(key, w.tape.take());
                }
            })
        })
        .with_cli(cli)
        .filter_run(opts.features.clone(), wanted)
        .await;
    let failed = cucumber::writer::Stats::<GatewayWorld>::execution_has_failed(&writer);
    let parsing_errors = cucumber::writer::Stats::<GatewayWorld>::parsing_errors(&writer);
    // Dropping the writer closes the report files before they are read back.
    drop(writer);

    let mut scenarios = report::read_json(&json)?;
    {
        let meta = meta.lock();
        let notes = target.notes.lock();
        for r in &mut scenarios {
            let key = scenario_key(&r.uri, r.line);
            if let Some(m) = meta.get(&key) {
                r.verdict.id = m.id.clone();
                r.verdict.conditions = m.conditions.clone();
                r.verdict.codes = m.codes.clone();
                if let Some((why, na)) = &m.not_run {
                    r.verdict.reason = Some(why.clone());
                    r.verdict.not_applicable = *na;
                }
            }
            if let Some(n) = notes.get(&key) {
                r.verdict.non_strict = n.non_strict.clone();
                r.verdict.upstream_attempts = n.upstream_attempts;
            }
        }
    }
    let conditions: Vec<String> = target.profile.conditions.keys().cloned().collect();
    let table = report::per_condition_table(&conditions, &scenarios);
    let _ = std::fs::write(opts.reports.join("per_condition.md"), format!("{table}\n"));
    let codes: Vec<String> = match target.catalog().await {
        Ok(entries) => entries.iter().map(|e| e.code.clone()).collect(),
        Err(_) => Vec::new(),
    };
    let _ = std::fs::write(
        opts.reports.join("per_code.md"),
        format!("{}\n", report::per_code_table(&codes, &scenarios)),
    );
    let graded_junit = opts.reports.join("grades.junit.xml");
    std::fs::write(
        &graded_junit,
        graded_junit_xml(&target.profile.name, &scenarios),
    )
    .map_err(|e| format!("cannot write {}: {e}", graded_junit.display()))?;
    let grades = opts.reports.join("grades.json");
    std::fs::write(
        &grades,
        report::grades_json(&target.profile.name, &scenarios),
    )
    .map_err(|e| format!("cannot write {}: {e}", grades.display()))?;
    let record = publish::record_of(
        opts,
        &target,
        &codes,
        &scenarios,
        &tapes,
        started_at,
        started.elapsed(),
    );
    let published = publish::publish(&opts.reports, record);
    Ok(RunReport {
        target: target.name.clone(),
        profile: target.profile.name.clone(),
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

/// Prints what a person needs after a run: skips with reasons, non-strict answers,
/// failures, the per-condition table and the closing line.
pub fn print_report(r: &RunReport) {
    let with = |g: Grade| -> Vec<&ScenarioResult> {
        r.scenarios.iter().filter(|s| s.grade() == g).collect()
    };
    let na = with(Grade::NotApplicable);
    if !na.is_empty() {
        let mut why: std::collections::BTreeMap<String, usize> = Default::default();
        for s in &na {
            *why.entry(s.skip_reason().unwrap_or_default()).or_default() += 1;
        }
        println!(
            "\nNot applicable to the profile `{}` ({}):",
            r.profile,
            na.len()
        );
        for (reason, n) in why {
            println!("  - {n} × {reason}");
        }
    }
    let skipped = with(Grade::Skipped);
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
    let non_strict = with(Grade::NonStrict);
    if !non_strict.is_empty() {
        println!("\nNon-strict on {} ({}):", r.target, non_strict.len());
        for s in non_strict {
            println!(
                "  - {}:{} {}\n      {}",
                s.uri,
                s.line,
                s.name,
                s.verdict.non_strict.join("; ")
            );
        }
    }
    let failures = r.failures();
    if !failures.is_empty() {
        println!("\nFailed on {} ({}):", r.target, failures.len());
        for s in failures {
            let attempts = s
                .verdict
                .upstream_attempts
                .map(|n| format!("\n      upstream attempts: {n}"))
                .unwrap_or_default();
            println!(
                "  - {}:{} {}\n      {}{attempts}",
                s.uri,
                s.line,
                s.name,
                s.failure().unwrap_or_default().replace('\n', "\n      ")
            );
        }
    }
    println!("{}", publish::summary(&r.published));
    println!(
        "\nPer-condition results against {} (profile {}):\n{}",
        r.target, r.profile, r.table
    );
    println!(
        "\nReports: {}, {} and grades.json ({:.1} s)",
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
        let mut opts = RunOptions::from_env();
        let requested_tags = opts.tags.clone();
        opts.tags = Some(without_tight_memory(requested_tags.as_deref()));
        let target = match target_from_env(&opts).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("conformance: cannot set up the target: {e}");
                return 2;
            }
        };
        if let Err(e) = target.preflight().await {
            eprintln!("conformance: {e}");
            eprintln!("conformance: no scenario was run.");
            return 2;
        }
        println!(
            "conformance: running {} against {} (profile {}, {})",
            opts.features.display(),
            target.name,
            target.profile.name,
            target.profile.source.display()
        );
        let expectations = match std::env::var(crate::expectations::EXPECTATIONS_VAR) {
            Ok(p) if !p.trim().is_empty() => {
                match crate::expectations::Expectations::load(Path::new(&p)) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        eprintln!("conformance: {e}");
                        return 2;
                    }
                }
            }
            _ => None,
        };
        let embedded = target._embedded.is_some();
        let code = run_and_judge(target, &opts, expectations).await;
        if !embedded {
            return code;
        }
        let mut code = code;
        if std::env::var(vars::CONFORMANCE_NO_SERVER_TOOLS).as_deref() != Ok("0") {
            code = code.max(no_server_tools_pass(&opts).await);
        }
        if std::env::var(vars::CONFORMANCE_TIGHT_MEMORY).as_deref() != Ok("0") {
            let mut third = opts.clone();
            third.tags = requested_tags;
            code = code.max(tight_memory_pass(&third).await);
        }
        code
    })
}

/// One of the embedded run's extra passes: which gateway, which scenarios, where to.
struct ExtraPass {
    variant: crate::embedded::Variant,
    /// The scenarios (within the run's own filter).
    tags: &'static str,
    /// Its reports, under the run's own reports folder.
    reports: &'static str,
    /// Scenarios at once; `None`: the run's own setting.
    max_concurrent: Option<usize>,
}

/// The embedded run's second pass: [`NO_SERVER_TOOLS_TAGS`] against a second embedded gateway
/// configured without `tools:`, so that the byte relay of `/v1` and the plain stream relay
/// are under test as well (the first gateway always answers through its tool loop).
async fn no_server_tools_pass(opts: &RunOptions) -> i32 {
    extra_pass(
        opts,
        ExtraPass {
            variant: crate::embedded::Variant::NoServerTools,
            tags: NO_SERVER_TOOLS_TAGS,
            reports: NO_SERVER_TOOLS_REPORTS,
            max_concurrent: None,
        },
    )
    .await
}

/// The embedded run's third pass: [`TIGHT_MEMORY_TAGS`] against a third embedded gateway with
/// 4 MiB memory budgets, one scenario at a time (two requests at once could each find the
/// budget held by the other: a 503 the scenario does not expect).
async fn tight_memory_pass(opts: &RunOptions) -> i32 {
    extra_pass(
        opts,
        ExtraPass {
            variant: crate::embedded::Variant::TightMemory,
            tags: TIGHT_MEMORY_TAGS,
            reports: TIGHT_MEMORY_REPORTS,
            max_concurrent: Some(1),
        },
    )
    .await
}

async fn extra_pass(opts: &RunOptions, pass: ExtraPass) -> i32 {
    let schemas = match Schemas::load(&opts.schemas_dir()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("conformance: {e}");
            return 2;
        }
    };
    let profile = match profile_from_env(opts, &schemas) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("conformance: {e}");
            return 2;
        }
    };
    let mut target = match crate::embedded::start_variant(schemas, pass.variant).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "conformance: cannot set up the {:?} target: {e}",
                pass.variant
            );
            return 2;
        }
    };
    target.profile = profile;
    let target = Arc::new(target);
    if let Err(e) = target.preflight().await {
        eprintln!("conformance: {e}");
        return 2;
    }
    let mut this = opts.clone();
    this.reports = opts.reports.join(pass.reports);
    if let Some(n) = pass.max_concurrent {
        this.max_concurrent = n;
    }
    this.tags = Some(match &opts.tags {
        Some(t) => format!("({t}) and ({})", pass.tags),
        None => pass.tags.to_owned(),
    });
    println!(
        "\nconformance: running {} against {} (profile {}, {})",
        this.tags.as_deref().unwrap_or_default(),
        target.name,
        target.profile.name,
        target.profile.source.display()
    );
    run_and_judge(target, &this, None).await
}

/// One run and its exit code: 0 only when everything passed (and every grade is as
/// expected, when expectations are given).
async fn run_and_judge(
    target: Arc<Target>,
    opts: &RunOptions,
    expectations: Option<crate::expectations::Expectations>,
) -> i32 {
    match run(target, opts).await {
        Ok(report) => {
            print_report(&report);
            if let Some(exp) = expectations {
                let diffs = exp.compare(&report.profile, &report.scenarios);
                let _ = std::fs::write(
                    opts.reports.join("expectations.actual.yaml"),
                    crate::expectations::record(&report.profile, &exp.target, &report.scenarios),
                );
                if diffs.is_empty() {
                    println!("conformance: every grade is as expected ({})", exp.target);
                    return i32::from(report.parsing_errors > 0);
                }
                println!(
                    "\nconformance: {} grade(s) differ from the expectations of {}:",
                    diffs.len(),
                    exp.target
                );
                for d in &diffs {
                    println!("  - {d}");
                }
                return 1;
            }
            i32::from(report.failed || report.parsing_errors > 0)
        }
        Err(e) => {
            eprintln!("conformance: the run failed: {e}");
            2
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&apos;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit with the grades (`grades.junit.xml`): one testcase per scenario, its grade as a
/// property; failed = `<failure>`, not applicable and skipped = `<skipped>` with the reason,
/// non-strict = passed with the reason in `<system-out>`.
pub fn graded_junit_xml(profile: &str, results: &[ScenarioResult]) -> String {
    let count = |g: Grade| results.iter().filter(|r| r.grade() == g).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"conformance (profile {})\">\n<testsuite name=\"profile {}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
        xml_escape(profile),
        xml_escape(profile),
        results.len(),
        count(Grade::Failed),
        count(Grade::NotApplicable) + count(Grade::Skipped)
    );
    for r in results {
        let g = r.grade();
        out.push_str(&format!(
            "  <testcase classname=\"{}\" name=\"{}\">\n    <properties><property name=\"grade\" value=\"{}\"/></properties>\n",
            xml_escape(&r.feature),
            xml_escape(&r.id()),
            g.as_str()
        ));
        match g {
            Grade::Failed => out.push_str(&format!(
                "    <failure message=\"failed\">{}</failure>\n",
                xml_escape(&r.failure().unwrap_or_default())
            )),
            Grade::NotApplicable | Grade::Skipped => out.push_str(&format!(
                "    <skipped message=\"{}: {}\"/>\n",
                g.as_str(),
                xml_escape(&r.skip_reason().unwrap_or_default())
            )),
            Grade::NonStrict => out.push_str(&format!(
                "    <system-out>non-strict: {}</system-out>\n",
                xml_escape(&r.verdict.non_strict.join("; "))
            )),
            Grade::Conformant => {}
        }
        out.push_str("  </testcase>\n");
    }
    out.push_str("</testsuite>\n</testsuites>\n");
    out
}
