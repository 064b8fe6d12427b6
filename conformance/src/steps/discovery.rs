//! Discovery: the catalog, the docs page, the OpenAPI document, model lists and /v1/info.

use cucumber::then;

use super::{n, s};
use crate::world::{GatewayWorld, Outcome};

#[then(expr = "the catalog has {int} entries")]
fn catalog_entries(w: &mut GatewayWorld, count: i64) -> Outcome {
    w.catalog_entries(n(count)?)
}

#[then(expr = "the catalog entry {string} field {string} is {string}")]
fn catalog_entry_field(
    w: &mut GatewayWorld,
    code: String,
    field: String,
    value: String,
) -> Outcome {
    w.catalog_entry_field(&s(code), &s(field), &s(value))
}

#[then(expr = "the page has the anchor {string}")]
fn page_anchor(w: &mut GatewayWorld, code: String) -> Outcome {
    w.page_has_anchor(&s(code))
}

#[then(expr = "the OpenAPI document describes {word} {string}")]
fn openapi_describes(w: &mut GatewayWorld, method: String, path: String) -> Outcome {
    w.openapi_describes(&method, &s(path))
}

#[then(expr = "the OpenAPI document mentions the error code {string}")]
fn openapi_mentions(w: &mut GatewayWorld, code: String) -> Outcome {
    w.openapi_mentions(&s(code))
}

#[then(expr = "the listed models include the {string} model")]
fn listed(w: &mut GatewayWorld, role: String) -> Outcome {
    w.models_listed(&s(role), true)
}

#[then(expr = "the listed models do not include the {string} model")]
fn not_listed(w: &mut GatewayWorld, role: String) -> Outcome {
    w.models_listed(&s(role), false)
}

#[then(expr = "the info for the {string} model has {string} = {string}")]
fn info(w: &mut GatewayWorld, role: String, pointer: String, value: String) -> Outcome {
    w.info_for_model(&s(role), &s(pointer), &s(value))
}
