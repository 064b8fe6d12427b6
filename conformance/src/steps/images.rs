//! Inline images in the user message.

use cucumber::given;

use super::s;
use crate::world::{GatewayWorld, Outcome};

#[given(expr = "the user message carries the image URL {string}")]
fn image_url(w: &mut GatewayWorld, url: String) -> Outcome {
    w.add_image_url(&s(url))
}
