//! The cross-matrix (issue 17 item 6): every bundled profile against every gateway that
//! stands for a seed system — the embedded reference gateway (seed 000: `dgx`, and `openai`),
//! the `mocks` gateway doubles of seed 002 (`llm-gateway-api`) and seed 003 (`ownllm`), and
//! the `mocks` vLLM personality as seed 004's server (`vllm-endpoint`). The diagonal has no
//! failure; every other cell has failures, each saying what was expected, and a few of them
//! are pinned by their reason text.
//!
//! Bounded: the baseline layer only (the profiles' conditions live there), no `@cancellation`
//! (a double is its own upstream, so "the upstream saw the disconnect" depends on when its
//! next write meets the closed socket), one cell at a time with 32 scenarios at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use conformance::mock::MockHandle;
use conformance::profile::{self, Profile};
use conformance::report::Grade;
use conformance::runner::RunReport;
use conformance::schemas::Schemas;
use conformance::target::{ExternalSpec, Target};
use conformance::RunOptions;
use mocks::{MockConfig, MockServer, Personality};

/// Body cap of the seed 002 / 003 doubles (their seeds name none): small, so the
/// "body over the cap" scenarios stay cheap.
const DOUBLE_CAP: usize = 1 << 20;
/// Seed 004 § Request body size limit: "The maximum request body size is 25 MB."
const VLLM_CAP: usize = 25_000_000;

/// A gateway double: which personality, its credential scheme, keys and cap.
struct Double {
    name: &'static str,
    personality: Personality,
    /// The profile it must pass.
    profile: &'static str,
    header: &'static str,
    scheme: &'static str,
    key: &'static str,
    limited_key: &'static str,
    cap: usize,
}

const DOUBLES: [Double; 3] = [
    Double {
        name: "llm-gateway-api double",
        personality: Personality::LlmGatewayApi,
        profile: "llm-gateway-api",
        // seed 002 § 401: "Always include your API key in the X-API-Key header"
        header: "x-api-key",
        scheme: "",
        key: "lga-conformance-key-1",
        limited_key: "lga-conformance-limited-1",
        cap: DOUBLE_CAP,
    },
    Double {
        name: "ownllm double",
        personality: Personality::OwnLlm,
        profile: "ownllm",
        // seed 003 § 401 key_malformed: "… doesn't match Bearer sk-ownllm-..."
        header: "authorization",
        scheme: "Bearer",
        key: "sk-ownllm-conformance-1",
        limited_key: "sk-ownllm-conformance-limited-1",
        cap: DOUBLE_CAP,
    },
    Double {
        name: "vllm (seed 004 server)",
        personality: Personality::Vllm,
        profile: "vllm-endpoint",
        // seed 004 § HTTP error codes, 401: "Check Authorization: Bearer YOUR_API_KEY header"
        header: "authorization",
        scheme: "Bearer",
        key: "vllm-conformance-key-1",
        limited_key: "vllm-conformance-limited-1",
        cap: VLLM_CAP,
    },
];

fn options() -> RunOptions {
    let mut opts = RunOptions::from_env();
    opts.tags = Some("@baseline and not @cancellation".into());
    opts.name = None;
    opts.console = false;
    opts
}

/// One run of `profile` against `double` (a fresh double: its buckets start full).
async fn run_double(d: &Double, profile: Arc<Profile>, schemas: Arc<Schemas>) -> RunReport {
    let config = MockConfig {
        personality: d.personality,
        api_key: Some(d.key.into()),
        limited_keys: vec![d.limited_key.into()],
        gateway: true,
        max_body_bytes: Some(d.cap),
        ..MockConfig::default()
    };
    let server = Arc::new(
        MockServer::start_with(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    // seed 004's error object is the flat `{"object": "error", …}` (§ Context length limit).
    server.set_vllm_legacy_errors(true);
    let mut mocks = HashMap::new();
    mocks.insert("default".to_owned(), MockHandle::Local(Arc::clone(&server)));
    let spec = ExternalSpec {
        url: server.base_url(),
        bearer: d.key.into(),
        credential_header: d.header.into(),
        credential_scheme: d.scheme.into(),
        fresh_limited: vec![d.limited_key.into()],
        models: HashMap::from([("default".to_owned(), "mock-model".to_owned())]),
        max_body_bytes: Some(d.cap as u64),
        mocks,
        profile: Some(profile),
        ..ExternalSpec::default()
    };
    let target = Arc::new(Target::external(spec, schemas).await.unwrap());
    let mut opts = options();
    let reports = tempfile::tempdir().unwrap();
    opts.reports = reports.path().to_path_buf();
    conformance::run(target, &opts).await.unwrap()
}

async fn run_embedded(profile: Arc<Profile>, schemas: Arc<Schemas>) -> RunReport {
    let mut target = conformance::embedded::start(schemas).await.unwrap();
    target.profile = profile;
    let mut opts = options();
    let reports = tempfile::tempdir().unwrap();
    opts.reports = reports.path().to_path_buf();
    conformance::run(Arc::new(target), &opts).await.unwrap()
}

/// `id: reason` of every failure of a run.
fn failures(report: &RunReport) -> Vec<String> {
    report
        .failures()
        .iter()
        .map(|f| format!("{}: {}", f.id(), f.failure().unwrap_or_default()))
        .collect()
}

fn has(cell: &[String], id_part: &str, reason_part: &str) -> bool {
    cell.iter()
        .any(|f| f.contains(id_part) && f.contains(reason_part))
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_cross_matrix_diagonal_passes_and_every_other_cell_fails_readably() {
    let opts = options();
    let schemas = Arc::new(Schemas::load(&opts.schemas_dir()).unwrap());
    let targets = ["embedded gateway"]
        .into_iter()
        .chain(DOUBLES.iter().map(|d| d.name))
        .collect::<Vec<_>>();
    let mut cells: HashMap<(String, &str), Vec<String>> = HashMap::new();
    // Collected, not asserted at once: the runner's panic hook swallows panic messages, so
    // every problem is printed before the one assertion at the end.
    let mut problems = Vec::new();
    let mut table = format!("| profile | {} |\n|---|", targets.join(" | "));
    table.push_str(&"---|".repeat(targets.len()));
    for name in profile::bundled(&opts.features).unwrap() {
        let p = Arc::new(Profile::load(&opts.features, &name, &schemas).unwrap());
        // One cell at a time (each run has its own 32 scenarios at once): the rate-limit
        // scenarios count on 6 requests inside the 3-request burst's refill window.
        let embedded = run_embedded(Arc::clone(&p), Arc::clone(&schemas)).await;
        let d0 = run_double(&DOUBLES[0], Arc::clone(&p), Arc::clone(&schemas)).await;
        let d1 = run_double(&DOUBLES[1], Arc::clone(&p), Arc::clone(&schemas)).await;
        let d2 = run_double(&DOUBLES[2], Arc::clone(&p), Arc::clone(&schemas)).await;
        table.push_str(&format!("\n| `{name}` |"));
        for (target, report) in targets.iter().zip([&embedded, &d0, &d1, &d2]) {
            let diagonal = match *target {
                "embedded gateway" => name == "dgx" || name == "openai",
                t => DOUBLES.iter().any(|d| d.name == t && d.profile == name),
            };
            let fails = failures(report);
            table.push_str(&format!(
                " {} conformant, {} non-strict, {} failed, {} n/a |",
                report.count_grade(Grade::Conformant),
                report.count_grade(Grade::NonStrict),
                report.count_grade(Grade::Failed),
                report.count_grade(Grade::NotApplicable),
            ));
            let summary = report.summary_line();
            if report.scenarios.len() < 25 {
                problems.push(format!("{name} × {target}: too few scenarios: {summary}"));
            }
            if report.count_grade(Grade::Skipped) != 0 {
                problems.push(format!("{name} × {target}: skipped scenarios: {summary}"));
            }
            if diagonal && !fails.is_empty() {
                problems.push(format!("{name} × {target} (diagonal) failed: {fails:#?}"));
            }
            if !diagonal && fails.is_empty() {
                problems.push(format!(
                    "{name} × {target} (off the diagonal) has no failure: {summary}"
                ));
            }
            for f in &fails {
                if !f.contains("expected") {
                    problems.push(format!(
                        "{name} × {target}: a failure that does not say what was expected: {f}"
                    ));
                }
            }
            cells.insert((name.clone(), target), fails);
        }
    }
    println!("{table}");
    let mut keys: Vec<_> = cells.keys().collect();
    keys.sort();
    for key in keys {
        for f in &cells[key] {
            println!("{} × {}: {f}", key.0, key.1);
        }
    }
    let cell = |p: &str, t: &str| cells[&(p.to_owned(), t)].clone();
    let mut expect = |p: &str, t: &str, id_part: &str, reason_part: &str| {
        if !has(&cell(p, t), id_part, reason_part) {
            problems.push(format!(
                "{p} × {t}: no failure of `{id_part}` mentioning `{reason_part}`"
            ));
        }
    };

    // A few reasons, read as a user would.
    expect(
        "openai",
        "llm-gateway-api double",
        "without credentials",
        "detail",
    );
    expect(
        "llm-gateway-api",
        "ownllm double",
        "without credentials",
        "detail",
    );
    expect(
        "ownllm",
        "embedded gateway",
        "without credentials",
        "key_malformed",
    );
    expect(
        "ownllm",
        "vllm (seed 004 server)",
        "without credentials",
        "key_malformed",
    );
    expect(
        "vllm-endpoint",
        "ownllm double",
        "context-length",
        "invalid_request_error",
    );
    expect("openai", "vllm (seed 004 server)", "mid-stream", "in-band");
    expect(
        "dgx",
        "ownllm double",
        "without credentials",
        "missing_authorization",
    );
    for p in &problems {
        eprintln!("PROBLEM: {p}");
    }
    assert!(
        problems.is_empty(),
        "{} problem(s), printed above",
        problems.len()
    );
}
