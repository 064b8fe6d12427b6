//! The features and the target's catalog are tied both ways: every code in `GET /errors`
//! is asserted by a scenario, and every code a feature names is in the catalog.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use conformance::features::{asserted_codes, mentioned_codes, scan};
use conformance::RunOptions;

#[tokio::test(flavor = "multi_thread")]
async fn conformance_catalog_and_features_name_the_same_codes() {
    let opts = RunOptions::from_env();
    let target = conformance::target_from_env(&opts).await.expect("target");
    let catalog: BTreeSet<String> = target
        .catalog()
        .await
        .expect("GET /errors")
        .iter()
        .map(|e| e.code.clone())
        .collect();
    let scenarios = scan(&opts.features).expect("features parse");
    assert!(
        scenarios.len() > 100,
        "only {} scenarios found",
        scenarios.len()
    );
    // `@expected-failure` scenarios wait for a code another change adds to the catalog.
    let steps = || {
        scenarios
            .iter()
            .filter(|s| {
                !s.tags
                    .iter()
                    .any(|t| t.trim_start_matches('@') == "expected-failure")
            })
            .flat_map(|s| s.steps.iter())
    };
    let asserted: BTreeSet<String> = steps().flat_map(|s| asserted_codes(s)).collect();
    let mentioned: BTreeSet<String> = steps().flat_map(|s| mentioned_codes(s)).collect();

    let unasserted: Vec<&String> = catalog.difference(&asserted).collect();
    assert!(
        unasserted.is_empty(),
        "catalog codes of {} with no scenario asserting them: {unasserted:?}",
        target.name
    );
    let unknown: Vec<&String> = mentioned.difference(&catalog).collect();
    assert!(
        unknown.is_empty(),
        "features expect codes that {} does not list in GET /errors: {unknown:?}",
        target.name
    );
}

#[test]
fn conformance_features_assert_the_events_headers_and_details() {
    let opts = RunOptions::from_env();
    let scenarios = scan(&opts.features).expect("features parse");
    let all: Vec<&String> = scenarios.iter().flat_map(|s| s.steps.iter()).collect();
    let asserted = |needle: &str| all.iter().any(|s| s.contains(needle));
    for needle in [
        "the stream event \"spass.tool-cap\" has the field",
        "the stream event \"spass.tool-anti-loop\" has the field",
        "the header \"spass-applied\" is \"max_tokens_floored=",
        "the header \"x-rust-api-applied\" is \"max_tokens_floored=",
        "the body has the field \"/available_fallbacks/0\"",
        "Retry-After is the number of seconds until 00:00 UTC",
        "the response has a whole-seconds Retry-After",
    ] {
        assert!(asserted(needle), "no scenario asserts `{needle}`");
    }
}
