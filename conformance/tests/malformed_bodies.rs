//! Property: malformed bodies never get a 5xx or a success, always the error envelope with
//! a catalog code. Bounded (`CONFORMANCE_PROPTEST_CASES`, default 200); the seed is printed
//! and `CONFORMANCE_PROPTEST_SEED` replays it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conformance::fuzz;
use conformance::RunOptions;

#[tokio::test(flavor = "multi_thread")]
async fn conformance_malformed_bodies_get_catalog_errors() {
    let opts = RunOptions::from_env();
    let target = conformance::target_from_env(&opts).await.expect("target");
    let seed = fuzz::seed().expect("seed");
    let model = target
        .models
        .get("default")
        .cloned()
        .unwrap_or_else(|| "default".into());
    let bodies = fuzz::generate(seed, fuzz::cases(), &model).expect("bodies");
    println!(
        "malformed bodies: {} cases, replay with {}={}",
        bodies.len(),
        fuzz::SEED_VAR,
        hex::encode(seed)
    );
    let http = target.client();
    let mut failures = Vec::new();
    for body in &bodies {
        if let Err(e) = fuzz::check(&target, &http, body).await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} malformed bodies broke the property (replay: {}={}):\n{}",
        failures.len(),
        bodies.len(),
        fuzz::SEED_VAR,
        hex::encode(seed),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn conformance_the_same_seed_gives_the_same_bodies() {
    let seed = [7u8; 32];
    let a = fuzz::generate(seed, 50, "m").unwrap();
    let b = fuzz::generate(seed, 50, "m").unwrap();
    assert_eq!(a, b);
    assert!(a.iter().any(|x| x != &a[0]), "the bodies should vary");
}
