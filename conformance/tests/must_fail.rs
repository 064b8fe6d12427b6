//! The suite can fail: pointed at a mock upstream posing as a gateway (no auth, no catalog,
//! vLLM's own error bodies), the run must fail with messages that say what was expected and
//! what came, and scenarios it cannot run must be skipped with their reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use conformance::report::Status;
use conformance::schemas::Schemas;
use conformance::target::{ExternalSpec, Target};
use conformance::RunOptions;

#[tokio::test(flavor = "multi_thread")]
async fn conformance_a_non_conformant_server_fails_with_useful_messages() {
    let impostor = mocks::MockServer::start(mocks::Personality::Vllm)
        .await
        .unwrap();
    let mut opts = RunOptions::from_env();
    let reports = tempfile::tempdir().unwrap();
    opts.reports = reports.path().to_path_buf();
    opts.tags = Some("@auth or @request_validation".into());
    opts.name = None;
    opts.console = false;
    let schemas = Arc::new(Schemas::load(&opts.schemas_dir()).unwrap());
    let spec = ExternalSpec {
        url: impostor.base_url(),
        bearer: "not-a-gateway-token".into(),
        ..ExternalSpec::default()
    };
    let target = Arc::new(Target::external(spec, schemas).await.unwrap());
    let report = conformance::run(target, &opts).await.unwrap();

    assert!(
        report.failed,
        "a mock posing as a gateway passed: {}",
        report.summary_line()
    );
    assert!(report.junit.exists() && report.json.exists());
    let failures = report.failures();
    assert!(
        failures.len() > 20,
        "only {} failures: {}",
        failures.len(),
        report.summary_line()
    );
    let messages: Vec<String> = failures.iter().filter_map(|f| f.failure()).collect();
    // Expected vs got: the code the feature wants and the answer the server gave.
    let missing_auth = messages
        .iter()
        .find(|m| m.contains("expected the error `missing_authorization`"))
        .expect("a missing_authorization failure");
    assert!(missing_auth.contains("answered HTTP"), "{missing_auth}");
    assert!(
        messages.iter().any(|m| m.contains("expected the error `invalid_json`") && m.contains("answered HTTP")),
        "{messages:#?}"
    );
    // Scenarios needing config the impostor cannot have are skipped, with the reason.
    let skipped: Vec<_> = report
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Skipped)
        .collect();
    assert!(!skipped.is_empty());
    for s in skipped {
        let why = s.skip_reason().unwrap_or_default();
        assert!(
            why.starts_with("this target cannot run it: ") && why.len() > 30,
            "skip without a reason: {} — {why}",
            s.name
        );
    }
    assert!(
        report
            .scenarios
            .iter()
            .any(|s| s.skip_reason().is_some_and(|w| w.contains("@needs-config"))),
        "no scenario was skipped for @needs-config"
    );
    assert!(
        report.table.contains("missing_authorization"),
        "{}",
        report.table
    );
}
