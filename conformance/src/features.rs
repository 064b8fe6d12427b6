//! Reading `features/*.feature` with `cucumber::gherkin` (Scenario Outlines expanded, so
//! Examples rows count) and finding which catalog codes each scenario asserts.

use std::path::{Path, PathBuf};

use cucumber::feature::Ext as _;
use cucumber::gherkin;

/// One expanded scenario, with the tags and background steps it inherits.
#[derive(Clone, Debug)]
pub struct Scanned {
    pub file: PathBuf,
    pub name: String,
    pub line: usize,
    /// Feature, rule and scenario (and Examples) tags, without `@`.
    pub tags: Vec<String>,
    /// Background steps first, then the scenario's own; the text after the keyword.
    pub steps: Vec<String>,
}

impl Scanned {
    /// Codes whose behaviour this scenario asserts.
    pub fn asserted_codes(&self) -> Vec<String> {
        let mut out: Vec<String> = self.steps.iter().flat_map(|s| asserted_codes(s)).collect();
        out.dedup();
        out
    }
}

/// The `*.feature` files of `dir`, sorted.
pub fn feature_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the features folder {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("feature"))
        .collect();
    files.sort();
    Ok(files)
}

/// Parses and expands one feature file.
pub fn parse(path: &Path) -> Result<gherkin::Feature, String> {
    let feature = gherkin::Feature::parse_path(path, gherkin::GherkinEnv::default())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    feature
        .expand_examples()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Every expanded scenario of every feature in `dir`.
pub fn scan(dir: &Path) -> Result<Vec<Scanned>, String> {
    let mut out = Vec::new();
    for file in feature_files(dir)? {
        let feature = parse(&file)?;
        let bg: Vec<String> = feature
            .background
            .iter()
            .flat_map(|b| b.steps.iter().map(|s| s.value.clone()))
            .collect();
        let push =
            |out: &mut Vec<Scanned>, rule: Option<&gherkin::Rule>, sc: &gherkin::Scenario| {
                let mut tags = feature.tags.clone();
                let mut steps = bg.clone();
                if let Some(r) = rule {
                    tags.extend(r.tags.iter().cloned());
                    steps.extend(
                        r.background
                            .iter()
                            .flat_map(|b| b.steps.iter().map(|s| s.value.clone())),
                    );
                }
                tags.extend(sc.tags.iter().cloned());
                steps.extend(sc.steps.iter().map(|s| s.value.clone()));
                out.push(Scanned {
                    file: file.clone(),
                    name: sc.name.clone(),
                    line: sc.position.line,
                    tags,
                    steps,
                });
            };
        for sc in &feature.scenarios {
            push(&mut out, None, sc);
        }
        for rule in &feature.rules {
            for sc in &rule.scenarios {
                push(&mut out, Some(rule), sc);
            }
        }
    }
    Ok(out)
}

/// The first `"…"` value right after `prefix` in `step`.
fn quoted_after(step: &str, prefix: &str) -> Option<String> {
    let rest = &step[step.find(prefix)? + prefix.len()..];
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

/// Codes a step asserts as the target's behaviour (an answer, a stream event).
pub fn asserted_codes(step: &str) -> Vec<String> {
    [
        "the response is the error ",
        "the response is the tool-loop status ",
        "the stream ends with an error event ",
        "has the field \"code\" = ",
        "the refused responses are the error ",
    ]
    .iter()
    .filter_map(|p| quoted_after(step, p))
    .collect()
}

/// Conditions a baseline step names (`the response answers the condition "no-credentials"`),
/// and the silent-adjustment headers a step checks (a contract may send only one of them).
pub fn named_conditions(step: &str) -> Vec<String> {
    let mut out: Vec<String> = [
        "the response answers the condition ",
        "the stream signals the condition ",
    ]
    .iter()
    .filter_map(|p| quoted_after(step, p))
    .collect();
    for h in ["spass-applied", "x-rust-api-applied"] {
        if step.starts_with(&format!("the header \"{h}\"")) {
            out.push(h.to_owned());
        }
    }
    out
}

/// Codes a step names at all: asserted ones plus catalog, docs and OpenAPI look-ups.
pub fn mentioned_codes(step: &str) -> Vec<String> {
    let mut out = asserted_codes(step);
    out.extend(
        [
            "the catalog entry ",
            "the page has the anchor ",
            "the OpenAPI document mentions the error code ",
        ]
        .iter()
        .filter_map(|p| quoted_after(step, p)),
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn codes_are_found_in_step_text() {
        assert_eq!(
            asserted_codes("the response is the error \"invalid_json\""),
            ["invalid_json"]
        );
        assert_eq!(
            asserted_codes("the stream event \"spass.tool-cap\" has the field \"code\" = \"tool_loop_max_iterations\""),
            ["tool_loop_max_iterations"]
        );
        assert!(asserted_codes("the catalog entry \"x\" field \"type\" is \"y\"").is_empty());
        assert_eq!(
            mentioned_codes("the catalog entry \"x\" field \"type\" is \"y\""),
            ["x"]
        );
    }
}
