//! `GET /errors`, `GET /docs/errors` and `GET /openapi.json`, all rendered from the catalog.

use std::fmt::Write as _;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::catalog::{Entry, Group, ENTRIES};

#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    entry: &'a Entry,
    docs_url: String,
}

pub fn errors_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let entries: Vec<Listed> = ENTRIES
            .iter()
            .map(|entry| Listed {
                entry,
                docs_url: entry.docs_url(),
            })
            .collect();
        #[derive(Serialize)]
        struct Catalog<'a> {
            entries: Vec<Listed<'a>>,
        }
        // Serialised from the struct so each entry keeps the catalog's field order.
        serde_json::to_string(&Catalog { entries }).unwrap_or_else(|_| r#"{"entries":[]}"#.into())
    })
}

pub(crate) async fn errors() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], errors_json()).into_response()
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Backticks in catalog text become `<code>` (after escaping).
fn prose(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(s).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

pub fn docs_html() -> &'static str {
    static HTML: OnceLock<String> = OnceLock::new();
    HTML.get_or_init(|| {
        let mut h = String::from(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error catalog</title>\
             <style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
             table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left}\
             code{background:#f3f3f3;padding:0 .2rem}section{margin:1.5rem 0}</style></head><body>\n\
             <h1>Error catalog</h1>\n<p>Every error response is <code>{\"error\": {\"type\", \"code\", \"message\", \"param\"}}</code>. \
             The machine-readable catalog is at <a href=\"/errors\">/errors</a>; each code below has the stable anchor \
             <code>/docs/errors#&lt;code&gt;</code>.</p>\n",
        );
        for group in Group::ALL {
            let rows: Vec<&Entry> = ENTRIES.iter().filter(|e| e.group == group).collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(h, "<h2>{}</h2>\n<table><tr><th>Code</th><th>Status</th><th>Title</th><th>Retryable</th></tr>", esc(group.heading()));
            for e in &rows {
                let _ = writeln!(
                    h,
                    "<tr><td><a href=\"#{c}\"><code>{c}</code></a></td><td>{s}</td><td>{t}</td><td>{r}</td></tr>",
                    c = e.code,
                    s = e.http_status,
                    t = if e.is_retired() { format!("{} (retired: never emitted)", esc(e.title)) } else { esc(e.title) },
                    r = if e.retryable { "yes" } else { "no" }
                );
            }
            h.push_str("</table>\n");
            for e in rows {
                let _ = writeln!(
                    h,
                    "<section id=\"{c}\"><h3><code>{c}</code> — {s} <code>{ty}</code></h3>\n<p>{d}</p>\n<p><strong>Fix:</strong> {rem}</p>\n<p>Typical <code>param</code>: {p}</p></section>",
                    c = e.code,
                    s = e.http_status,
                    ty = e.error_type.as_str(),
                    d = prose(e.description),
                    rem = prose(e.remediation),
                    p = e.typical_param.map(|p| format!("<code>{}</code>", esc(p))).unwrap_or_else(|| "none".into()),
                );
            }
        }
        h.push_str("</body></html>\n");
        h
    })
}

pub(crate) async fn docs() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        docs_html(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_an_anchor_and_a_listing() {
        let html = docs_html();
        let json: serde_json::Value = serde_json::from_str(errors_json()).unwrap();
        let listed = json["entries"].as_array().unwrap();
        assert_eq!(listed.len(), ENTRIES.len());
        for (e, l) in ENTRIES.iter().zip(listed) {
            assert!(
                html.contains(&format!("<section id=\"{}\">", e.code)),
                "{}",
                e.code
            );
            assert_eq!(l["code"], e.code);
            assert_eq!(l["docs_url"], format!("/docs/errors#{}", e.code));
            assert!(l["retryable"].is_boolean());
        }
        assert!(!html.contains("<script"));
    }
}
