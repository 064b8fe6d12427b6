//! The tool calls a script's `tool_calls` steps make, public JSON like the rest of a script.

use serde::{Deserialize, Serialize};

/// One tool call a `tool_calls` step makes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCallSpec {
    pub name: String,
    /// The arguments as a JSON string, exactly as it goes on the wire.
    pub arguments: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl ToolCallSpec {
    pub fn new(name: impl Into<String>, arguments: impl Into<String>) -> ToolCallSpec {
        ToolCallSpec {
            name: name.into(),
            arguments: arguments.into(),
            id: None,
        }
    }

    pub fn with_id(mut self, id: impl Into<String>) -> ToolCallSpec {
        self.id = Some(id.into());
        self
    }
}
