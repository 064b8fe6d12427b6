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

/// Fairness: a server that is OpenAI-shaped but not the DGX gateway (the vLLM mock, with an
/// API key) is judged by the `openai` profile on the baseline: its failures name the
/// condition and what came, never a DGX code, and what it does right is conformant.
#[tokio::test(flavor = "multi_thread")]
async fn conformance_a_non_dgx_server_gets_specific_baseline_verdicts() {
    let config = mocks::MockConfig {
        personality: mocks::Personality::Vllm,
        api_key: Some("mock-key-1".into()),
        ..mocks::MockConfig::default()
    };
    let server = Arc::new(
        mocks::MockServer::start_with(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    let mut opts = RunOptions::from_env();
    let reports = tempfile::tempdir().unwrap();
    opts.reports = reports.path().to_path_buf();
    opts.tags = Some("@baseline".into());
    opts.name = None;
    opts.console = false;
    let schemas = Arc::new(Schemas::load(&opts.schemas_dir()).unwrap());
    let profile = conformance::profile::Profile::load(&opts.features, "openai", &schemas).unwrap();
    let mut mocks_by_role = std::collections::HashMap::new();
    mocks_by_role.insert(
        "default".to_owned(),
        conformance::mock::MockHandle::Local(Arc::clone(&server)),
    );
    let spec = ExternalSpec {
        url: server.base_url(),
        bearer: "mock-key-1".into(),
        mocks: mocks_by_role,
        profile: Some(Arc::new(profile)),
        ..ExternalSpec::default()
    };
    let target = Arc::new(Target::external(spec, schemas).await.unwrap());
    target.preflight().await.unwrap();
    let report = conformance::run(target, &opts).await.unwrap();
    let grade = |g: conformance::report::Grade| report.count_grade(g);
    use conformance::report::Grade;
    assert!(report.failed, "{}", report.summary_line());
    assert!(grade(Grade::Conformant) >= 5, "{}", report.summary_line());
    for f in report.failures() {
        let m = f.failure().unwrap_or_default();
        for dgx in [
            "missing_authorization",
            "route_not_found",
            "error_envelope",
            "catalog",
        ] {
            assert!(!m.contains(dgx), "{} failed for a DGX reason: {m}", f.name);
        }
    }
    // The unknown-credentials answer is vLLM's own error object: named as not an OpenAI one.
    let creds = report
        .scenarios
        .iter()
        .find(|s| {
            s.name
                .ends_with("A chat request with unknown credentials is refused")
        })
        .expect("the scenario ran");
    assert_eq!(creds.grade(), Grade::Failed, "{:?}", creds.failure());
    assert!(
        creds
            .failure()
            .is_some_and(|m| m.contains("openai_error.json") && m.contains("unknown-credentials")),
        "{:?}",
        creds.failure()
    );
}

/// Preflight: a target that is down, or that refuses the credentials, is one clear error.
#[tokio::test(flavor = "multi_thread")]
async fn conformance_preflight_names_a_down_target_and_refused_credentials() {
    let opts = RunOptions::from_env();
    let schemas = Arc::new(Schemas::load(&opts.schemas_dir()).unwrap());
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let down = ExternalSpec {
        url: format!("http://{closed}"),
        bearer: "t".into(),
        ..ExternalSpec::default()
    };
    let t = Target::external(down, Arc::clone(&schemas)).await.unwrap();
    let err = t.preflight().await.unwrap_err();
    assert!(err.contains("is not reachable"), "{err}");

    let config = mocks::MockConfig {
        personality: mocks::Personality::Vllm,
        api_key: Some("right-key".into()),
        ..mocks::MockConfig::default()
    };
    let server = mocks::MockServer::start_with(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let wrong = ExternalSpec {
        url: server.base_url(),
        bearer: "wrong-key".into(),
        ..ExternalSpec::default()
    };
    let t = Target::external(wrong, schemas).await.unwrap();
    let err = t.preflight().await.unwrap_err();
    assert!(err.contains("rejected the primary credentials"), "{err}");
}
