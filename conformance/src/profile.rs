//! Contract profiles: which answer a contract expects for each condition the features create.
//!
//! A profile is a YAML file (`features/profiles/<name>.yaml`, or a user's own path) checked
//! against `features/schemas/profile.schema.json` before it is read. Features name
//! *conditions* ("no-credentials", "upstream-5xx", or a DGX catalog code in the `dgx`
//! layer); the profile says what the answer must be (status, code, type, body shape,
//! headers, how a mid-stream failure is signalled) and what a client can still handle
//! (graded non-strict). A condition the profile does not claim makes the scenario "not
//! applicable", never a failure; so does a layer (feature tag) the profile does not include.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::schemas::Schemas;
use crate::sse::Event;
use crate::world::Resp;

/// `CONFORMANCE_PROFILE`: a profile name of `features/profiles/`, or a path to a YAML file.
pub const PROFILE_VAR: &str = "CONFORMANCE_PROFILE";
/// The profile when [`PROFILE_VAR`] is unset.
pub const DEFAULT_PROFILE: &str = "dgx";
/// The schema every profile file must match.
pub const PROFILE_SCHEMA: &str = "profile.schema.json";
/// Tag prefix that declares a condition on a feature, rule or scenario: `@condition.server-tool-loop`.
pub const CONDITION_TAG: &str = "condition.";
/// The layer tags a feature file can carry; a scenario belongs to the first one it has.
pub const LAYERS: &[&str] = &["baseline", "dgx"];

/// Statuses a condition accepts: one, a list, or a class (`"4xx"`, `"5xx"`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    One(u16),
    Many(Vec<u16>),
    Class(String),
}

impl StatusSpec {
    pub fn accepts(&self, status: u16) -> bool {
        match self {
            StatusSpec::One(s) => *s == status,
            StatusSpec::Many(v) => v.contains(&status),
            StatusSpec::Class(c) => c
                .strip_suffix("xx")
                .and_then(|d| d.parse::<u16>().ok())
                .is_some_and(|d| status / 100 == d),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            StatusSpec::One(s) => format!("HTTP {s}"),
            StatusSpec::Many(v) => format!(
                "HTTP {}",
                v.iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            StatusSpec::Class(c) => format!("any HTTP {c}"),
        }
    }
}

/// How a stream signals a failure after its 200 (SPEC §5; seed 004 "Streaming and mid-stream
/// failures").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InBand {
    /// `event: error` with an error object as data.
    Event,
    /// `data: {"error": …}` (the OpenAI Python SDK raises `APIError` for it).
    DataError,
    /// The stream ends without a final `finish_reason` `stop` (seed 004: "detect this by
    /// checking whether the stream ended with the expected stop reason").
    CloseWithoutStop,
}

impl InBand {
    pub fn as_str(self) -> &'static str {
        match self {
            InBand::Event => "event: error",
            InBand::DataError => "data: {\"error\": …}",
            InBand::CloseWithoutStop => "a close without a stop reason",
        }
    }

    /// Every way this stream signalled a failure (best signal first).
    pub fn seen(events: &[Event], read_error: bool) -> Vec<InBand> {
        let mut out = Vec::new();
        if events
            .iter()
            .any(|e| e.name.as_deref() == Some("error") && is_json_object(&e.data))
        {
            out.push(InBand::Event);
        }
        if events.iter().any(|e| {
            e.name.is_none()
                && serde_json::from_str::<Value>(&e.data)
                    .ok()
                    .is_some_and(|v| v.get("error").is_some())
        }) {
            out.push(InBand::DataError);
        }
        let stopped = events.iter().filter_map(Event::chunk).any(|c| {
            c.get("choices")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|ch| {
                        matches!(
                            ch.get("finish_reason").and_then(Value::as_str),
                            Some("stop" | "length" | "tool_calls")
                        )
                    })
                })
        });
        let done = events.iter().any(Event::is_done);
        if !stopped && (!done || read_error) {
            out.push(InBand::CloseWithoutStop);
        }
        out
    }
}

fn is_json_object(s: &str) -> bool {
    matches!(serde_json::from_str::<Value>(s), Ok(Value::Object(_)))
}

/// The expected answer for one condition.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: StatusSpec,
    /// Other statuses a client can still handle: graded non-strict (e.g. 405 for 404).
    #[serde(default)]
    pub non_strict_status: Vec<u16>,
    /// The machine code, at `code_at` (default `/error/code`).
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default = "default_code_at")]
    pub code_at: String,
    /// The error type, at `type_at` (default `/error/type`).
    #[serde(default, rename = "type")]
    pub error_type: Option<String>,
    #[serde(default = "default_type_at")]
    pub type_at: String,
    /// A schema of `features/schemas/` the body must match (default: the profile's
    /// `error_body`); `none` = no body check.
    #[serde(default)]
    pub body: Option<String>,
    /// Headers that must be present; `retry-after` must be whole positive seconds.
    #[serde(default)]
    pub headers: Vec<String>,
    /// For failures after a 200: the signals the contract names, and those a client can
    /// still handle.
    #[serde(default)]
    pub in_band: Vec<InBand>,
    #[serde(default)]
    pub in_band_non_strict: Vec<InBand>,
    /// The seed section this expectation is written from.
    pub cite: String,
}

fn default_code_at() -> String {
    "/error/code".into()
}

fn default_type_at() -> String {
    "/error/type".into()
}

/// A profile file, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub title: String,
    /// The seed file this profile is written from.
    pub seed: String,
    /// Feature layers (tags) this contract includes.
    pub layers: Vec<String>,
    /// The schema every error body must match (the conditions' default `body`).
    pub error_body: String,
    /// The body cap the contract documents (bytes), for "body over the cap".
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    pub conditions: BTreeMap<String, Expect>,
    /// Where the file came from (filled in on load).
    #[serde(skip)]
    pub source: PathBuf,
}

/// What a check of one answer against a condition found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    Conformant,
    /// A client can still handle it; the reason says how it differs.
    NonStrict(String),
    Failed(String),
}

/// The folder of the bundled profiles.
pub fn profiles_dir(features: &Path) -> PathBuf {
    features.join("profiles")
}

/// The bundled profile names (file stems of `features/profiles/*.yaml`), sorted.
pub fn bundled(features: &Path) -> Result<Vec<String>, String> {
    let dir = profiles_dir(features);
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
        .collect();
    out.sort();
    Ok(out)
}

impl Profile {
    /// `name_or_path`: a bundled name (`openai`) or a path to a YAML file.
    pub fn load(features: &Path, name_or_path: &str, schemas: &Schemas) -> Result<Profile, String> {
        let looks_like_path = name_or_path.contains('/')
            || name_or_path.ends_with(".yaml")
            || name_or_path.ends_with(".yml");
        let path = if looks_like_path {
            PathBuf::from(name_or_path)
        } else {
            profiles_dir(features).join(format!("{name_or_path}.yaml"))
        };
        if !path.exists() {
            let known = bundled(features).unwrap_or_default().join(", ");
            return Err(format!(
                "{PROFILE_VAR}={name_or_path}: no such profile ({} does not exist; bundled: {known})",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Profile::parse(&text, &path, schemas)
    }

    /// Parses and validates a profile's YAML text.
    pub fn parse(text: &str, path: &Path, schemas: &Schemas) -> Result<Profile, String> {
        let raw: Value = serde_norway::from_str(text)
            .map_err(|e| format!("{} is not YAML: {e}", path.display()))?;
        schemas
            .check(PROFILE_SCHEMA, &raw)
            .map_err(|e| format!("the profile {} {e}", path.display()))?;
        let mut p: Profile = serde_json::from_value(raw)
            .map_err(|e| format!("the profile {}: {e}", path.display()))?;
        p.source = path.to_path_buf();
        for (id, c) in &p.conditions {
            for s in std::iter::once(&p.error_body).chain(c.body.iter()) {
                if s != "none" && !schemas.has(s) {
                    return Err(format!(
                        "the profile {}: condition `{id}` names the body schema `{s}`, which is not in features/schemas/",
                        path.display()
                    ));
                }
            }
        }
        Ok(p)
    }

    /// Why a scenario with these tags and conditions is not applicable; None = it is.
    pub fn not_applicable(&self, tags: &[String], conditions: &[String]) -> Option<String> {
        let layer = LAYERS
            .iter()
            .find(|l| tags.iter().any(|t| t == *l))
            .copied()
            .unwrap_or("dgx");
        if !self.layers.iter().any(|l| l == layer) {
            return Some(format!(
                "not applicable to the profile `{}`: it does not include the `{layer}` layer",
                self.name
            ));
        }
        let unclaimed: Vec<&str> = conditions
            .iter()
            .filter(|c| !self.conditions.contains_key(c.as_str()))
            .map(String::as_str)
            .collect();
        (!unclaimed.is_empty()).then(|| {
            format!(
                "not applicable to the profile `{}`: it claims no answer for {}",
                self.name,
                unclaimed
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// The codes this profile expects for these conditions (for the per-code view).
    pub fn codes_for(&self, conditions: &[String]) -> Vec<String> {
        let mut out: Vec<String> = conditions
            .iter()
            .filter_map(|c| self.conditions.get(c).and_then(|e| e.code.clone()))
            .collect();
        out.dedup();
        out
    }

    /// Checks an ordinary (non-stream or pre-200) answer against `condition`.
    pub fn judge(&self, condition: &str, r: &Resp, schemas: &Schemas) -> Judgement {
        let Some(e) = self.conditions.get(condition) else {
            return Judgement::Failed(format!(
                "the profile `{}` claims no answer for `{condition}` (runner bug: the scenario should be not applicable)",
                self.name
            ));
        };
        let want = self.describe(condition, e);
        if !e.status.accepts(r.status) {
            if e.non_strict_status.contains(&r.status) {
                return Judgement::NonStrict(format!(
                    "{want}: HTTP {} instead of {} ({})",
                    r.status,
                    e.status.describe(),
                    e.cite
                ));
            }
            return Judgement::Failed(format!("expected {want}, but {}", r.describe()));
        }
        let schema = e.body.as_deref().unwrap_or(&self.error_body);
        let body = r.json();
        if schema != "none" {
            let Some(body) = &body else {
                return Judgement::Failed(format!(
                    "expected {want} with a JSON body, but {}",
                    r.describe()
                ));
            };
            if let Err(err) = schemas.check(schema, body) {
                return Judgement::Failed(format!(
                    "expected {want}, but the body {err} ({} answered HTTP {})",
                    r.what, r.status
                ));
            }
        }
        for (field, at, wanted) in [
            ("code", &e.code_at, &e.code),
            ("type", &e.type_at, &e.error_type),
        ] {
            let Some(wanted) = wanted else { continue };
            let got = body
                .as_ref()
                .and_then(|b| b.pointer(at))
                .and_then(Value::as_str);
            if got != Some(wanted.as_str()) {
                return Judgement::Failed(format!(
                    "expected {want}, but the {field} at `{at}` is {}: {}",
                    got.map_or("absent".to_owned(), |g| format!("`{g}`")),
                    r.describe()
                ));
            }
        }
        for h in &e.headers {
            let v = r.header(h);
            let ok = match (h.to_ascii_lowercase().as_str(), v) {
                (_, None) => false,
                ("retry-after", Some(v)) => {
                    let v = v.trim();
                    !v.is_empty()
                        && v.chars().all(|c| c.is_ascii_digit())
                        && v.parse::<u64>().is_ok_and(|s| s > 0)
                }
                _ => true,
            };
            if !ok {
                return Judgement::Failed(format!(
                    "expected {want} with the header `{h}`{}, got {}: {}",
                    if h.eq_ignore_ascii_case("retry-after") {
                        " (whole positive seconds)"
                    } else {
                        ""
                    },
                    v.map_or("none".to_owned(), |v| format!("`{v}`")),
                    r.describe()
                ));
            }
        }
        Judgement::Conformant
    }

    /// Checks how a stream signalled a failure after its 200.
    pub fn judge_in_band(&self, condition: &str, r: &Resp) -> Judgement {
        let Some(e) = self.conditions.get(condition) else {
            return Judgement::Failed(format!(
                "the profile `{}` claims no answer for `{condition}`",
                self.name
            ));
        };
        let Some(events) = &r.events else {
            return Judgement::Failed(format!(
                "expected a stream that signals its failure in-band, but {}",
                r.describe()
            ));
        };
        let seen = InBand::seen(events, r.read_error.is_some());
        let list = |v: &[InBand]| {
            v.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        };
        if seen.iter().any(|s| e.in_band.contains(s)) {
            return Judgement::Conformant;
        }
        if let Some(s) = seen.iter().find(|s| e.in_band_non_strict.contains(s)) {
            return Judgement::NonStrict(format!(
                "the failure was signalled with {} instead of {} ({})",
                s.as_str(),
                list(&e.in_band),
                e.cite
            ));
        }
        Judgement::Failed(format!(
            "the upstream failed mid-stream, so the stream must signal it with {} (profile `{}`, {}), but it looked complete: {}",
            list(&e.in_band),
            self.name,
            e.cite,
            r.describe()
        ))
    }

    /// `the error missing_authorization (HTTP 401, authentication_error)` for messages.
    fn describe(&self, condition: &str, e: &Expect) -> String {
        let mut parts = vec![e.status.describe()];
        if let Some(t) = &e.error_type {
            parts.push(t.clone());
        }
        match &e.code {
            Some(code) if code == condition => {
                format!("the error `{code}` ({})", parts.join(", "))
            }
            Some(code) => format!(
                "the error `{code}` for `{condition}` ({})",
                parts.join(", ")
            ),
            None => format!("the answer for `{condition}` ({})", parts.join(", ")),
        }
    }
}

/// A scenario's conditions: what its steps assert or name, and its `@condition.` tags.
pub fn scenario_conditions(tags: &[String], steps: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        if let Some(c) = t.strip_prefix(CONDITION_TAG) {
            out.push(c.to_owned());
        }
    }
    for s in steps {
        out.extend(crate::features::mentioned_codes(s));
        out.extend(crate::features::named_conditions(s));
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|c| seen.insert(c.clone()));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn status_specs() {
        assert!(StatusSpec::Class("4xx".into()).accepts(422));
        assert!(!StatusSpec::Class("4xx".into()).accepts(500));
        assert!(StatusSpec::Many(vec![401, 403]).accepts(403));
        assert!(StatusSpec::One(404).accepts(404));
    }

    #[test]
    fn in_band_signals_are_told_apart() {
        let ev = |name: Option<&str>, data: &str| Event {
            name: name.map(str::to_owned),
            data: data.to_owned(),
            at: std::time::Instant::now(),
        };
        let chunk = r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}"#;
        let stop = r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        let named = [
            ev(None, chunk),
            ev(Some("error"), r#"{"error":{"message":"x"}}"#),
        ];
        assert!(InBand::seen(&named, false).contains(&InBand::Event));
        let data = [ev(None, chunk), ev(None, r#"{"error":{"message":"x"}}"#)];
        assert!(InBand::seen(&data, false).contains(&InBand::DataError));
        let cut = [ev(None, chunk)];
        assert_eq!(InBand::seen(&cut, true), vec![InBand::CloseWithoutStop]);
        let complete = [ev(None, chunk), ev(None, stop), ev(None, "[DONE]")];
        assert!(InBand::seen(&complete, false).is_empty());
    }
}
