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

/// The base64 of a 1x1 PNG padded to `kib` KiB of base64 characters.
fn png_base64(kib: i64) -> Result<String, String> {
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
    Ok(engine.encode(&bytes))
}

#[given(expr = "the user message carries a PNG data URI of {int} KiB")]
fn png_of_size(w: &mut GatewayWorld, kib: i64) -> Outcome {
    w.add_image_url(&format!("data:image/png;base64,{}", png_base64(kib)?))
}

/// The same payload with the 4-character group that ends its first `at` KiB replaced by
/// `AA==`: each side decodes alone, but RFC 4648 §3.3 allows padding only at the very end.
#[given(
    expr = "the user message carries a PNG data URI of {int} KiB with padding ending its first {int} KiB"
)]
fn png_padded_inside(w: &mut GatewayWorld, kib: i64, at: i64) -> Outcome {
    let mut b64 = png_base64(kib)?;
    let end = super::n(at)?.saturating_mul(1024);
    if end < 4 || end >= b64.len() {
        return Err(format!("{at} KiB is not inside a payload of {kib} KiB"));
    }
    b64.replace_range(end - 4..end, "AA==");
    w.add_image_url(&format!("data:image/png;base64,{b64}"))
}
