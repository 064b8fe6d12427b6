//! Who is calling: tokens, the Authorization header, tenant headers.

use cucumber::given;

use super::s;
use crate::world::{GatewayWorld, Outcome};

#[given(expr = "I authenticate with the {string} token")]
fn authenticate(w: &mut GatewayWorld, role: String) -> Outcome {
    w.authenticate(&s(role))
}

#[given("no Authorization header")]
fn no_authorization(w: &mut GatewayWorld) {
    w.no_authorization();
}

#[given(expr = "the header {string} is {string}")]
fn set_header(w: &mut GatewayWorld, name: String, value: String) {
    w.set_header(&s(name), &s(value));
}

#[given(expr = "the header {string} names the {string} tenant")]
fn header_names_tenant(w: &mut GatewayWorld, name: String, role: String) -> Outcome {
    w.header_names_tenant(&s(name), &s(role))
}

#[given(expr = "the credentials are {string}")]
fn credentials_are(w: &mut GatewayWorld, token: String) -> Outcome {
    w.credentials_are(&s(token))
}
