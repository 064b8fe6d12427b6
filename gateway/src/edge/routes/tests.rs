//! Unit tests of `edge::routes`.
use super::*;
use crate::catalog::ENTRIES;
use std::collections::HashSet;

#[test]
fn document_is_openapi_3_1_with_every_route_and_the_envelope() {
    let v: serde_json::Value = serde_json::from_str(openapi_json_text()).unwrap();
    assert!(v["openapi"].as_str().unwrap().starts_with("3.1"));
    for r in ROUTES.iter().map(|r| &r.doc) {
        assert!(
            v["paths"][r.path][r.method].is_object(),
            "{} {}",
            r.method,
            r.path
        );
    }
    let codes = &v["components"]["schemas"]["ErrorEnvelope"]["properties"]["error"]["properties"]
        ["code"]["enum"];
    assert_eq!(codes.as_array().unwrap().len(), ENTRIES.len());
}

#[test]
fn request_paths_map_to_their_templates() {
    assert_eq!(
        route_template("/v1/chat/completions"),
        Some("/v1/chat/completions")
    );
    assert_eq!(
        route_template("/c1/conversations/abc-1"),
        Some("/c1/conversations/{id}")
    );
    assert_eq!(route_template("/c1/conversations/"), None);
    assert_eq!(route_template("/c1/conversations/a/b"), None);
    assert_eq!(route_template("/v1/chat/completions/x"), None);
    assert_eq!(route_template("/nope"), None);
}

#[test]
fn every_error_code_is_returned_by_some_route() {
    let mut seen: HashSet<Code> = ROUTES.iter().flat_map(|r| r.doc.all_codes()).collect();
    seen.insert(Code::RouteNotFound);
    seen.insert(Code::ToolLoopMaxIterations);
    seen.insert(Code::ToolLoopAntiLoopSynthesised);
    for c in Code::ALL {
        assert!(seen.contains(c), "{} is on no route", c.as_str());
    }
}
