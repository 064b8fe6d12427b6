//! The catalog is checked, as rust-lang's tidy checks its error codes: every code is
//! constructed somewhere in the gateway's request code (not only in the table, the OpenAPI
//! route list or tests), and every code is documented on /docs/errors and listed by /errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use gateway::catalog::{Code, ENTRIES};

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            // Only the code before a file's unit tests counts.
            let code = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .to_owned();
            out.push((name, code));
        }
    }
}

#[test]
fn every_code_is_constructed_by_gateway_code() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let excluded = ["catalog.rs", "openapi.rs", "testing.rs"];
    for code in Code::ALL {
        let needle = format!("Code::{code:?}");
        let used = files
            .iter()
            .any(|(name, text)| !excluded.contains(&name.as_str()) && text.contains(&needle));
        assert!(
            used,
            "catalog code `{}` is never constructed by gateway code",
            code.as_str()
        );
    }
}

#[test]
fn every_code_is_documented_and_listed() {
    let html = gateway::routes::discovery::docs_html();
    let listed: serde_json::Value =
        serde_json::from_str(gateway::routes::discovery::errors_json()).unwrap();
    let codes: Vec<&str> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ENTRIES.iter().map(|e| e.code).collect::<Vec<_>>());
    for e in ENTRIES {
        assert!(
            html.contains(&format!("id=\"{}\"", e.code)),
            "{} has no docs anchor",
            e.code
        );
    }
}
