//! Inline images in the user message.

use cucumber::given;

use super::s;
use crate::world::{GatewayWorld, Outcome};

#[given(expr = "the user message carries the image URL {string}")]
fn image_url(w: &mut GatewayWorld, url: String) -> Outcome {
    w.add_image_url(&s(url))
}

/// A 1x1 PNG (the PNG specification's signature, IHDR, IDAT and IEND chunks).
const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==";

#[given(expr = "the user message carries a PNG data URI of {int} KiB")]
fn png_of_size(w: &mut GatewayWorld, kib: i64) -> Outcome {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut bytes = engine
        .decode(PNG_1X1)
        .map_err(|e| format!("the sample PNG does not decode: {e}"))?;
    // Bytes after IEND are ignored by PNG readers (PNG specification 5.6: IEND ends the
    // datastream); they make the payload as long as asked: 3 bytes are 4 base64 characters.
    let chars = super::n(kib)?.saturating_mul(1024);
    let want = chars / 4 * 3;
    bytes.resize(want.max(bytes.len()), 0);
    w.add_image_url(&format!("data:image/png;base64,{}", engine.encode(&bytes)))
}
