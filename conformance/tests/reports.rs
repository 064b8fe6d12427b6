//! What a run leaves for people: the run history notices a scenario that starts failing
//! (and one that flips back and forth), the history CLI shows the runs, and the HTML pages
//! open in a real headless Chromium without console errors and list every catalog code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

#[path = "support/browser.rs"]
mod browser;
use browser::{chromium, dangling_links, open_in_chromium, REQUIRE_TEST_TOOLS};

use conformance::history::History;
use conformance::report::Grade;
use conformance::schemas::Schemas;
use conformance::target::{ExternalSpec, Target};
use conformance::RunOptions;

/// A two-scenario feature; the second expects `code` for a bearer that matches no token,
/// so `invalid_authorization` passes and anything else fails.
fn probe_feature(code: &str) -> String {
    format!(
        r#"Feature: History probe

  Scenario: A chat request without a token is refused
    Given no Authorization header
    When I send a chat request
    Then the response is the error "missing_authorization"

  Scenario: A chat request with an unknown token is refused
    Given the header "Authorization" is "Bearer not-a-real-token"
    When I send a chat request
    Then the response is the error "{code}"
"#
    )
}

const FLIPPING: &str = "probe.feature: A chat request with an unknown token is refused";

fn quiet_opts(features: &Path, reports: &Path) -> RunOptions {
    let mut opts = RunOptions::from_env();
    opts.features = features.to_path_buf();
    opts.reports = reports.to_path_buf();
    opts.tags = None;
    opts.name = None;
    opts.console = false;
    opts
}

async fn embedded() -> Arc<Target> {
    let real = RunOptions::from_env();
    let schemas = Arc::new(Schemas::load(&real.schemas_dir()).unwrap());
    Arc::new(conformance::embedded::start(schemas).await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_history_reports_newly_failing_passing_and_flaky_scenarios() {
    let target = embedded().await;
    let features = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let opts = quiet_opts(features.path(), reports.path());
    let feature = features.path().join("probe.feature");

    let mut runs = Vec::new();
    for code in [
        "invalid_authorization",
        "invalid_json",
        "invalid_authorization",
        "invalid_json",
    ] {
        std::fs::write(&feature, probe_feature(code)).unwrap();
        let report = conformance::run(Arc::clone(&target), &opts).await.unwrap();
        assert_eq!(report.scenarios.len(), 2, "{}", report.summary_line());
        runs.push(report);
    }
    let ids: Vec<i64> = runs
        .iter()
        .map(|r| r.published.history.as_ref().expect("recorded").1)
        .collect();
    let changes = |i: usize| runs[i].published.changes.as_ref().expect("changes");

    // Run 1 is the first; run 2 made the second scenario fail.
    assert!(changes(0).previous.is_none());
    let second = changes(1);
    assert_eq!(second.previous.as_ref().map(|p| p.id), Some(ids[0]));
    assert_eq!(second.diff.newly_failing.len(), 1, "{second:?}");
    assert_eq!(second.diff.newly_failing[0].scenario, FLIPPING);
    assert_eq!(second.diff.newly_failing[0].from, Grade::Conformant);
    assert!(second.diff.newly_passing.is_empty());
    let printed = conformance::publish::summary(&runs[1].published);
    assert!(
        printed.contains("newly failing (1)") && printed.contains(FLIPPING),
        "{printed}"
    );
    // Run 3 fixed it; run 4 broke it again: three flips in four runs.
    assert_eq!(changes(2).diff.newly_passing[0].scenario, FLIPPING);
    let fourth = changes(3);
    assert_eq!(fourth.diff.newly_failing[0].scenario, FLIPPING);
    assert_eq!(fourth.flaky.len(), 1, "{fourth:?}");
    assert_eq!(fourth.flaky[0].scenario, FLIPPING);
    assert_eq!(fourth.flaky[0].flips, 3);
    assert!(conformance::publish::summary(&runs[3].published)
        .contains("flaky in the last 4 run(s) (1)"));

    // What was recorded: grades, durations, the exchange with the bearer redacted.
    let db = reports.path().join("history.sqlite3");
    let h = History::open(&db).unwrap();
    let first = h.load(ids[0]).unwrap();
    assert_eq!(first.meta.target, target.name);
    assert!(!first.meta.git_revision.is_empty() && !first.meta.started_at.is_empty());
    assert!(first
        .meta
        .catalog
        .iter()
        .any(|c| c == "invalid_authorization"));
    let s = first.scenarios.iter().find(|s| s.id == FLIPPING).unwrap();
    assert_eq!(s.grade, Grade::Conformant);
    assert!(s.duration_ms > 0.0, "no duration recorded");
    let x = &s.transcript.exchanges[0];
    assert_eq!(
        (x.method.as_str(), x.path.as_str(), x.status),
        ("POST", "/v1/chat/completions", Some(401))
    );
    let auth = x
        .request_headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap();
    assert!(auth.1.starts_with("<redacted"), "{auth:?}");
    assert!(x
        .response_body
        .as_ref()
        .unwrap()
        .text
        .contains("invalid_authorization"));
    let failed = h.load(ids[1]).unwrap();
    let f = failed.scenarios.iter().find(|s| s.id == FLIPPING).unwrap();
    assert_eq!(f.grade, Grade::Failed);
    assert!(
        f.detail
            .as_deref()
            .unwrap_or_default()
            .contains("invalid_json"),
        "{f:?}"
    );

    // The CLI shows the runs and the diff.
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_history"))
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "history {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list = cli(&["list"]);
    for id in &ids {
        assert!(
            list.contains(&format!("| {id} ")),
            "run {id} not listed:\n{list}"
        );
    }
    let diff = cli(&["diff", &ids[0].to_string(), &ids[1].to_string()]);
    assert!(
        diff.contains("newly failing (1):") && diff.contains(FLIPPING),
        "{diff}"
    );
    let show = cli(&["show", &ids[1].to_string()]);
    assert!(show.contains("failed") && show.contains(FLIPPING), "{show}");
    let flaky = cli(&["flaky"]);
    assert!(
        flaky.contains(FLIPPING) && flaky.contains("3 flips"),
        "{flaky}"
    );
}

// ---- the HTML pages in a real browser ----

#[tokio::test(flavor = "multi_thread")]
async fn conformance_html_pages_open_in_headless_chromium_with_every_catalog_code() {
    let Some(browser) = chromium() else {
        if std::env::var_os(REQUIRE_TEST_TOOLS).is_some() {
            panic!("chromium is not on PATH although scripts/test should have installed it (apt-get install chromium)");
        }
        // Straight to stderr, past the test harness's capture, so the skip is seen.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "html pages: SKIPPED, chromium not on PATH (scripts/test installs it; or set CHROMIUM)"
        );
        return;
    };
    // The detector works: a page with a script error is caught.
    let bad = tempfile::tempdir().unwrap();
    let bad_page = bad.path().join("bad.html");
    std::fs::write(
        &bad_page,
        "<!doctype html><p>x</p><script>notDefinedAnywhere();</script>",
    )
    .unwrap();
    let caught = open_in_chromium(&browser, &bad_page);
    assert!(
        caught
            .console
            .iter()
            .any(|l| l.contains("notDefinedAnywhere")),
        "a script error was not seen on the console: {:?}",
        caught.console
    );

    // Two targets into one history: a mock posing as a gateway, then the embedded gateway
    // (last, so report.html is its run).
    let embedded = embedded().await;
    let reports = tempfile::tempdir().unwrap();
    let mut opts = quiet_opts(&RunOptions::from_env().features, reports.path());
    let impostor = mocks::MockServer::start(mocks::Personality::Vllm)
        .await
        .unwrap();
    let schemas = Arc::new(Schemas::load(&opts.schemas_dir()).unwrap());
    let spec = ExternalSpec {
        url: impostor.base_url(),
        bearer: "not-a-gateway-token".into(),
        ..ExternalSpec::default()
    };
    let other = Arc::new(Target::external(spec, schemas).await.unwrap());
    opts.tags = Some("@auth".into());
    let bad_run = conformance::run(Arc::clone(&other), &opts).await.unwrap();
    assert!(bad_run.failed);
    opts.tags = Some("@auth or @discovery".into());
    let good = conformance::run(Arc::clone(&embedded), &opts)
        .await
        .unwrap();
    assert!(!good.failed, "{}", good.summary_line());

    let catalog: Vec<String> = embedded
        .catalog()
        .await
        .unwrap()
        .iter()
        .map(|e| e.code.clone())
        .collect();
    assert!(catalog.len() > 20, "{catalog:?}");
    let report = reports.path().join("report.html");
    let matrix = reports.path().join("matrix.html");
    for (page, targets) in [
        (&report, vec![&embedded.name]),
        (&matrix, vec![&embedded.name, &other.name]),
    ] {
        let loaded = open_in_chromium(&browser, page);
        loaded.assert_clean(page);
        let missing: Vec<&String> = catalog
            .iter()
            .filter(|c| !loaded.dom.contains(&format!("data-row=\"{c}\"")))
            .collect();
        assert!(
            missing.is_empty(),
            "{} lacks catalog rows {missing:?}",
            page.display()
        );
        for t in targets {
            assert!(
                loaded.dom.contains(t.as_str()),
                "{} does not name {t}",
                page.display()
            );
        }
        let dangling = dangling_links(&loaded.dom);
        assert!(
            dangling.is_empty(),
            "{}: links to nothing: {dangling:?}",
            page.display()
        );
        // Cells link to scenarios that show the exchange: request line and answer status.
        assert!(
            loaded.dom.contains("GET /errors") || loaded.dom.contains("POST /v1/chat/completions")
        );
        assert!(
            loaded.dom.contains("HTTP 401"),
            "no recorded 401 answer on {}",
            page.display()
        );
    }
}
