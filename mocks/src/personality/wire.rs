//! Dialect-neutral plumbing: delta and usage types, error replies, and `Wire`, which frames
//! chunks of one response by asking its dialect for the parts that differ.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};

use super::Dialect;

/// Token counts as every personality reports them.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub(crate) fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// One `delta` object of a `chat.completion.chunk`. Borrowed so a chunk costs one buffer.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

/// A streamed tool-call fragment: the first carries id, type and name; later ones only the
/// index and a piece of `arguments`, which is how vLLM, LiteLLM and OpenRouter all stream them.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct ToolCallDelta<'a> {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'a str>,
    pub function: FunctionDelta<'a>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

/// A finished tool call, for non-streaming bodies.
#[derive(Clone, Debug)]
pub(crate) struct ToolCallOut {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// An error answered before any header was sent: status, content type, extra headers, body.
#[derive(Clone, Debug)]
pub(crate) struct ErrorReply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl ErrorReply {
    /// `body` serialised, with the dialect's error content type and no extra headers.
    pub(crate) fn json(dialect: &dyn Dialect, status: u16, body: &Value) -> ErrorReply {
        ErrorReply {
            status,
            content_type: dialect.error_content_type(),
            headers: Vec::new(),
            body: to_vec(body),
        }
    }

    pub(crate) fn with_header(
        mut self,
        name: &'static str,
        value: impl Into<String>,
    ) -> ErrorReply {
        self.headers.push((name, value.into()));
        self
    }
}

/// What every chunk and body of one response repeats.
#[derive(Debug)]
pub(crate) struct Ids {
    pub id: String,
    pub created: u64,
    pub model: String,
}

/// Per-response wire context, with the JSON prefix of a chunk rendered once so each chunk is
/// a few `extend_from_slice` calls.
#[derive(Debug)]
pub(crate) struct Wire<'d> {
    dialect: &'d dyn Dialect,
    ids: Ids,
    /// `{"id":...,"model":...,` up to (not including) `"choices"`.
    head: String,
}

impl<'d> Wire<'d> {
    pub(crate) fn new(dialect: &'d dyn Dialect, id: String, created: u64, model: &str) -> Wire<'d> {
        let head = dialect.chunk_head(&json_str(&id), created, &json_str(model));
        Wire {
            dialect,
            ids: Ids {
                id,
                created,
                model: model.to_owned(),
            },
            head,
        }
    }

    pub(crate) fn sse_prelude(&self) -> Option<Bytes> {
        self.dialect.sse_prelude().map(Bytes::from_static)
    }

    /// One `data: {chat.completion.chunk}\n\n` frame.
    pub(crate) fn chunk(&self, mut delta: Delta<'_>, finish_reason: Option<&str>) -> Bytes {
        if self.dialect.role_in_every_delta() && delta.role.is_none() {
            delta.role = Some("assistant");
        }
        let mut buf = Vec::with_capacity(self.head.len() + 160);
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(self.head.as_bytes());
        buf.extend_from_slice(br#""choices":[{"index":0,"delta":"#);
        write_json(&mut buf, &delta);
        let finish = finish_reason.map(json_str);
        let finish = finish.as_deref().unwrap_or("null");
        self.dialect
            .choice_tail(&mut buf, finish, finish_reason.is_some());
        buf.extend_from_slice(b"}]}\n\n");
        Bytes::from(buf)
    }

    pub(crate) fn finish_delta(&self) -> Delta<'static> {
        self.dialect.finish_delta()
    }

    /// The trailing usage chunk sent when `stream_options.include_usage` is true.
    pub(crate) fn usage_chunk(&self, usage: Usage) -> Bytes {
        let mut buf = Vec::with_capacity(self.head.len() + 120);
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(self.head.as_bytes());
        buf.extend_from_slice(br#""choices":[],"usage":"#);
        write_json(&mut buf, &usage);
        buf.extend_from_slice(b"}\n\n");
        Bytes::from(buf)
    }

    pub(crate) fn done() -> Bytes {
        Bytes::from_static(b"data: [DONE]\n\n")
    }

    /// A non-streaming `chat.completion` body.
    pub(crate) fn completion(
        &self,
        content: Option<&str>,
        tool_calls: &[ToolCallOut],
        finish_reason: &str,
        usage: Usage,
    ) -> Vec<u8> {
        let calls: Vec<Value> = tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })
            })
            .collect();
        to_vec(
            &self
                .dialect
                .completion(&self.ids, content, calls, finish_reason, usage),
        )
    }

    /// A `chat.completion` body in the dialect's shape with an empty `choices` list.
    pub(crate) fn empty_completion(&self, usage: Usage) -> Vec<u8> {
        let mut body = self
            .dialect
            .completion(&self.ids, Some(""), Vec::new(), "stop", usage);
        if let Some(obj) = body.as_object_mut() {
            obj.insert("choices".into(), Value::Array(Vec::new()));
        }
        to_vec(&body)
    }

    /// An error object inside a 200 stream, the way the server emits one mid-stream.
    pub(crate) fn stream_error(&self, status: u16, message: &str) -> Bytes {
        let obj = self.dialect.stream_error(&self.ids, status, message);
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(b"data: ");
        write_json(&mut buf, &obj);
        buf.extend_from_slice(b"\n\n");
        Bytes::from(buf)
    }
}

pub(crate) fn json_str(s: &str) -> String {
    // Serialising a &str cannot fail; the fallback keeps the output valid JSON regardless.
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

fn write_json<T: Serialize>(buf: &mut Vec<u8>, value: &T) {
    if serde_json::to_writer(&mut *buf, value).is_err() {
        buf.extend_from_slice(b"null");
    }
}

pub(crate) fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    let mut buf = Vec::with_capacity(512);
    write_json(&mut buf, value);
    buf
}
