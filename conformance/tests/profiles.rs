//! Profiles are data: each bundled profile validates against `features/schemas/profile.schema.json`
//! and loads; a user's own file loads by path; a file that breaks the schema is refused with
//! the reason; every condition the baseline features create is claimed by `openai` and `dgx`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conformance::features::scan;
use conformance::profile::{self, Profile};
use conformance::schemas::Schemas;
use conformance::RunOptions;

fn setup() -> (RunOptions, Schemas) {
    let opts = RunOptions::from_env();
    let schemas = Schemas::load(&opts.schemas_dir()).expect("schemas");
    (opts, schemas)
}

#[test]
fn conformance_the_six_profiles_validate_and_load() {
    let (opts, schemas) = setup();
    let names = profile::bundled(&opts.features).unwrap();
    assert_eq!(
        names,
        [
            "dgx",
            "dgx-2.2",
            "llm-gateway-api",
            "openai",
            "ownllm",
            "vllm-endpoint"
        ]
    );
    for name in &names {
        let p = Profile::load(&opts.features, name, &schemas)
            .unwrap_or_else(|e| panic!("profile {name}: {e}"));
        assert_eq!(&p.name, name, "the file name and `name:` must agree");
        assert!(!p.conditions.is_empty());
        for (id, c) in &p.conditions {
            assert!(c.cite.len() > 5, "{name}.{id}: cite the seed section");
        }
        // The schema check itself, on the raw YAML.
        let raw: serde_json::Value =
            serde_norway::from_str(&std::fs::read_to_string(&p.source).unwrap()).unwrap();
        schemas.check(profile::PROFILE_SCHEMA, &raw).unwrap();
    }
}

#[test]
fn conformance_a_user_profile_file_loads_by_path_and_a_bad_one_is_refused() {
    let (opts, schemas) = setup();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.yaml");
    std::fs::write(
        &path,
        "name: mine\ntitle: My gateway\nseed: our API docs\nlayers: [baseline]\nerror_body: openai_error.json\nconditions:\n  no-credentials: { status: 401, cite: 'docs § auth' }\n",
    )
    .unwrap();
    let p = Profile::load(&opts.features, path.to_str().unwrap(), &schemas).unwrap();
    assert_eq!(p.name, "mine");
    assert!(p
        .not_applicable(&["baseline".into()], &["upstream-5xx".into()])
        .is_some_and(|why| why.contains("`upstream-5xx`")));
    assert!(p
        .not_applicable(&["dgx".into()], &[])
        .is_some_and(|why| why.contains("`dgx` layer")));
    assert!(p
        .not_applicable(&["baseline".into()], &["no-credentials".into()])
        .is_none());

    std::fs::write(
        &path,
        "name: mine\ntitle: t\nseed: s\nlayers: [baseline]\nerror_body: openai_error.json\nconditions:\n  no-credentials: { status: 401 }\n",
    )
    .unwrap();
    let err = Profile::load(&opts.features, path.to_str().unwrap(), &schemas).unwrap_err();
    assert!(err.contains("cite"), "{err}");
    let err = Profile::load(&opts.features, "no-such-profile", &schemas).unwrap_err();
    assert!(err.contains("bundled: dgx"), "{err}");
}

#[test]
fn conformance_openai_and_dgx_claim_every_baseline_condition() {
    let (opts, schemas) = setup();
    let scanned = scan(&opts.features).unwrap();
    let baseline: Vec<String> = scanned
        .iter()
        .filter(|s| s.tags.iter().any(|t| t == "baseline"))
        .flat_map(|s| profile::scenario_conditions(&s.tags, &s.steps))
        .collect();
    assert!(baseline.len() >= 10, "{baseline:?}");
    for name in ["openai", "dgx"] {
        let p = Profile::load(&opts.features, name, &schemas).unwrap();
        for c in &baseline {
            assert!(
                p.conditions.contains_key(c),
                "profile {name} claims no answer for the baseline condition `{c}`"
            );
        }
    }
    // And every condition of the dgx layer is claimed by the dgx profile.
    let dgx = Profile::load(&opts.features, "dgx", &schemas).unwrap();
    for s in &scanned {
        let conds = profile::scenario_conditions(&s.tags, &s.steps);
        assert!(
            dgx.not_applicable(&s.tags, &conds).is_none(),
            "{}:{} is not applicable to dgx",
            s.file.display(),
            s.line
        );
    }
}

/// `CONFORMANCE_PROFILE=<p>` works for each bundled profile: the baseline runs against the
/// embedded reference gateway under every one of them, nothing is skipped, and the two
/// profiles the reference gateway implements (`openai`, `dgx`) have no failure. (The other
/// four describe other gateways: their failures against this one are expected verdicts.)
#[tokio::test(flavor = "multi_thread")]
async fn conformance_every_profile_runs_the_baseline_against_the_embedded_gateway() {
    use conformance::report::Grade;
    use std::sync::Arc;
    let (mut opts, schemas) = setup();
    let reports = tempfile::tempdir().unwrap();
    opts.reports = reports.path().to_path_buf();
    opts.tags = Some("@baseline".into());
    opts.name = None;
    opts.console = false;
    let schemas = Arc::new(schemas);
    for name in profile::bundled(&opts.features).unwrap() {
        let mut target = conformance::embedded::start(Arc::clone(&schemas))
            .await
            .unwrap();
        target.profile = Arc::new(Profile::load(&opts.features, &name, &schemas).unwrap());
        let report = conformance::run(Arc::new(target), &opts).await.unwrap();
        println!("{}", report.summary_line());
        assert!(report.scenarios.len() >= 26, "{}", report.summary_line());
        assert_eq!(
            report.count_grade(Grade::Skipped),
            0,
            "{}",
            report.summary_line()
        );
        if name == "openai" || name == "dgx" {
            let failures: Vec<String> = report
                .failures()
                .iter()
                .filter_map(|f| f.failure())
                .collect();
            assert!(failures.is_empty(), "{name}: {failures:#?}");
        }
        for f in report.failures() {
            let m = f.failure().unwrap_or_default();
            assert!(
                m.contains("expected"),
                "{name}: a failure that does not say what was expected: {m}"
            );
        }
    }
}
