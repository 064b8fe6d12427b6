//! Step definitions, grouped by domain. Every step is one to three lines that unquote its
//! `{string}` values and call a World method; the vocabulary is `features/STEPS.md`.
//!
//! The steps are collected by cucumber's `inventory` at link time, so this module only has
//! to be linked in; nothing here is called directly.

mod auth;
mod chat;
mod conversations;
mod discovery;
mod images;
mod limits;
mod streaming;
mod tool_loop;
mod upstream;

/// STEPS.md `{string}`: quotes already gone, escapes still to undo.
pub(crate) fn s(raw: String) -> String {
    crate::text::unescape(&raw)
}

/// `{int}` for counts and sizes.
pub(crate) fn n(v: i64) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("expected a non-negative number, got {v}"))
}

/// The arguments of a `… with {int} KiB of arguments` tool call: `{"query": "aaa…"}` with that
/// many KiB of `a`s, the same text for the step that scripts it and the one that checks it.
pub(crate) fn kib_arguments(kib: i64) -> Result<String, String> {
    let kib = n(kib)?;
    Ok(format!(
        r#"{{"query": "{}"}}"#,
        "a".repeat(kib.saturating_mul(1024))
    ))
}

/// `{int}` for HTTP statuses.
pub(crate) fn status(v: i64) -> Result<u16, String> {
    u16::try_from(v).map_err(|_| format!("`{v}` is not an HTTP status"))
}
