//! The JSON schemas of `features/schemas/`, compiled once per run and shared by every World.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

/// Compiled validators by file name (`error_envelope.json`, …).
pub struct Schemas {
    validators: HashMap<String, jsonschema::Validator>,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.validators.keys().collect();
        names.sort();
        f.debug_struct("Schemas").field("names", &names).finish()
    }
}

pub const ENVELOPE: &str = "error_envelope.json";
pub const CATALOG: &str = "catalog.json";
pub const COMPLETION: &str = "chat_completion.json";
pub const CHUNK: &str = "chat_completion_chunk.json";
pub const TOOL_LOOP_EVENT: &str = "tool_loop_event.json";
pub const OPENAI_ERROR: &str = "openai_error.json";

impl Schemas {
    /// Loads every `*.json` of `dir`; the five schemas the steps use must be among them.
    pub fn load(dir: &Path) -> Result<Schemas, String> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the schema folder {}: {e}", dir.display()))?;
        let mut validators = HashMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let schema: Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
            let validator = jsonschema::validator_for(&schema)
                .map_err(|e| format!("{} is not a valid JSON schema: {e}", path.display()))?;
            validators.insert(name, validator);
        }
        for needed in [ENVELOPE, CATALOG, COMPLETION, CHUNK, TOOL_LOOP_EVENT] {
            if !validators.contains_key(needed) {
                return Err(format!("{} has no {needed}", dir.display()));
            }
        }
        Ok(Schemas { validators })
    }

    /// Whether a schema of this file name was loaded.
    pub fn has(&self, name: &str) -> bool {
        self.validators.contains_key(name)
    }

    /// Validates `instance`; the error lists every violation with its location.
    pub fn check(&self, name: &str, instance: &Value) -> Result<(), String> {
        let validator = self
            .validators
            .get(name)
            .ok_or_else(|| format!("no schema named {name} in features/schemas"))?;
        let problems: Vec<String> = validator
            .iter_errors(instance)
            .take(5)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("at `{}`: {e}", if at.is_empty() { "/" } else { &at })
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "does not match {name}: {}; body was {}",
                problems.join("; "),
                crate::text::clip(&instance.to_string(), 600)
            ))
        }
    }
}
