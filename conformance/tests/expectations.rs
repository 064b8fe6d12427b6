//! The expectations checker: a run's grades against a peer's expectations file. Any
//! difference fails: an unexpected pass as much as an unexpected failure, and a listed
//! scenario that no longer exists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conformance::expectations::{record, Expectations};
use conformance::report::{ScenarioResult, Status, StepResult, Verdict};

fn result(id: &str, status: Status, non_strict: bool, not_applicable: bool) -> ScenarioResult {
    ScenarioResult {
        feature: "Baseline".into(),
        uri: "features/baseline.feature".into(),
        name: id.into(),
        line: 1,
        tags: Vec::new(),
        status,
        steps: vec![StepResult {
            text: "the response answers the condition \"no-credentials\"".into(),
            status: if status == Status::Failed {
                "failed".into()
            } else {
                "passed".into()
            },
            error: (status == Status::Failed).then(|| "expected HTTP 401, but …".into()),
            duration: std::time::Duration::ZERO,
        }],
        verdict: Verdict {
            id: format!("baseline.feature: {id}"),
            non_strict: if non_strict {
                vec!["HTTP 405".into()]
            } else {
                Vec::new()
            },
            not_applicable,
            ..Verdict::default()
        },
    }
}

#[test]
fn conformance_expectations_catch_unexpected_passes_failures_and_stale_ids() {
    let exp = Expectations::parse(
        "profile: openai\ntarget: a peer\nscenarios:\n  'baseline.feature: a': failed\n  'baseline.feature: b': non-strict\n  'baseline.feature: gone': failed\n",
    )
    .unwrap();
    let run = vec![
        result("a", Status::Passed, false, false), // expected failed: unexpected pass
        result("b", Status::Passed, true, false),  // non-strict as expected
        result("c", Status::Failed, false, false), // unlisted failure
        result("d", Status::Skipped, false, true), // not applicable, unlisted: fine
        result("e", Status::Passed, false, false), // conformant, unlisted: fine
    ];
    let diffs = exp.compare("openai", &run);
    assert_eq!(diffs.len(), 3, "{diffs:#?}");
    assert!(
        diffs[0].starts_with("unexpected pass: `baseline.feature: a`"),
        "{}",
        diffs[0]
    );
    assert!(
        diffs[1].starts_with("unexpected failure: `baseline.feature: c`"),
        "{}",
        diffs[1]
    );
    assert!(
        diffs[2].starts_with("stale expectation: `baseline.feature: gone`"),
        "{}",
        diffs[2]
    );
    assert!(exp.compare("dgx", &run[1..2])[0].contains("profile"));

    // A recorded file matches its own run exactly.
    let recorded = Expectations::parse(&record("openai", "a peer", &run)).unwrap();
    assert!(recorded.compare("openai", &run).is_empty());
    assert!(Expectations::parse("profile: openai\nscenarios: { x: great }\n").is_err());
}

/// The whole loop a peer uses (profile + target + expectations file), on a peer that is
/// always here: the `mocks` LiteLLM personality answering as if it were a gateway. Its
/// expected grades are checked in (`conformance/expectations/mock-litellm.yaml`); any
/// change of a verdict fails this test.
#[tokio::test(flavor = "multi_thread")]
async fn conformance_the_mock_as_a_gateway_scores_as_expected() {
    use std::sync::Arc;
    let config = mocks::MockConfig {
        personality: mocks::Personality::Litellm,
        api_key: Some("mk-1".into()),
        ..mocks::MockConfig::default()
    };
    let server = Arc::new(
        mocks::MockServer::start_with(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    let mut opts = conformance::RunOptions::from_env();
    let reports = tempfile::tempdir().unwrap();
    opts.reports = reports.path().to_path_buf();
    // Not @cancellation: the mock posing as the gateway is also the upstream, so "the
    // upstream saw the disconnect" depends on when its next write meets the closed socket;
    // that scenario is the embedded gateway's and the real peers' business.
    opts.tags = Some("@baseline and not @cancellation".into());
    opts.name = None;
    opts.console = false;
    let schemas = Arc::new(conformance::schemas::Schemas::load(&opts.schemas_dir()).unwrap());
    let profile = conformance::profile::Profile::load(&opts.features, "openai", &schemas).unwrap();
    let mut roles = std::collections::HashMap::new();
    roles.insert(
        "default".to_owned(),
        conformance::mock::MockHandle::Local(Arc::clone(&server)),
    );
    let spec = conformance::target::ExternalSpec {
        url: server.base_url(),
        bearer: "mk-1".into(),
        mocks: roles,
        profile: Some(Arc::new(profile)),
        ..conformance::target::ExternalSpec::default()
    };
    let target = Arc::new(
        conformance::target::Target::external(spec, schemas)
            .await
            .unwrap(),
    );
    let report = conformance::run(target, &opts).await.unwrap();
    let path =
        conformance::runner::workspace_dir().join("conformance/expectations/mock-litellm.yaml");
    if std::env::var("CONFORMANCE_RECORD").is_ok_and(|v| v == "1") {
        std::fs::write(
            &path,
            record(
                "openai",
                "mocks --personality litellm, as a gateway",
                &report.scenarios,
            ),
        )
        .unwrap();
    }
    let exp = Expectations::load(&path).unwrap();
    let diffs = exp.compare(&report.profile, &report.scenarios);
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
fn conformance_expectations_may_list_the_grades_a_peer_varies_between() {
    let exp = Expectations::parse(
        "profile: openai\nscenarios:\n  'baseline.feature: a': non-strict | conformant\n",
    )
    .unwrap();
    for (status, non_strict) in [(Status::Passed, true), (Status::Passed, false)] {
        let run = vec![result("a", status, non_strict, false)];
        assert!(exp.compare("openai", &run).is_empty());
    }
    let run = vec![result("a", Status::Failed, false, false)];
    assert!(exp.compare("openai", &run)[0].starts_with("unexpected failure"));
    assert!(Expectations::parse("profile: openai\nscenarios: { x: failed | great }\n").is_err());
}
