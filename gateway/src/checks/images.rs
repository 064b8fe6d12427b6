//! Image checks: remote URLs against the model's constraint, data URIs down to real bytes.
//!
//! The base64 payload is validated in fixed-size slices so a 32 MiB image costs no more than
//! a small buffer; only the first slice is kept to check the image header.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use imagesize::ImageType;

use crate::catalog::Code;
use crate::error::ApiError;

/// Base64 characters decoded for the header check: covers JPEG files whose SOF marker sits
/// behind a full 64 KiB EXIF segment.
const HEAD_CHARS: usize = 256 * 1024;
/// Slice size for validating the rest (a multiple of 4 characters).
const SLICE_CHARS: usize = 64 * 1024;

const ALLOWED: [(&str, ImageType); 4] = [
    ("image/jpeg", ImageType::Jpeg),
    ("image/png", ImageType::Png),
    ("image/webp", ImageType::Webp),
    ("image/gif", ImageType::Gif),
];

pub(crate) fn check_image_url(
    url: &str,
    pointer: &str,
    accepts_image_url: bool,
) -> Result<(), ApiError> {
    let lower_prefix = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower_prefix.starts_with("http://") || lower_prefix.starts_with("https://") {
        if accepts_image_url {
            return Ok(());
        }
        return Err(ApiError::new(
            Code::ImageUrlNotSupported,
            "this model does not fetch remote images; send the image as a base64 data URI",
        )
        .param(pointer));
    }
    check_data_uri(url).map_err(|e| e.param(pointer))
}

fn decode_error(why: &str) -> ApiError {
    ApiError::new(
        Code::ImageDecodeError,
        format!("{why}; expected data:image/<jpeg|png|webp|gif>;base64,<data>"),
    )
}

fn base64_error() -> ApiError {
    ApiError::new(
        Code::ImageBase64Invalid,
        "the image payload is not valid base64 ([A-Za-z0-9+/]+={0,2}, padded, no whitespace)",
    )
}

/// Validates `data:image/<type>;base64,<payload>`.
pub fn check_data_uri(uri: &str) -> Result<(), ApiError> {
    let rest = uri
        .strip_prefix("data:")
        .ok_or_else(|| decode_error("the image URL is neither http(s) nor a data URI"))?;
    let (meta, payload) = rest
        .split_once(',')
        .ok_or_else(|| decode_error("the data URI has no ',' before its payload"))?;
    let mime = meta
        .strip_suffix(";base64")
        .ok_or_else(|| decode_error("the data URI is not base64-encoded (missing ';base64')"))?;
    if mime.is_empty() {
        return Err(decode_error("the data URI has no MIME type"));
    }
    let expected = ALLOWED
        .iter()
        .find(|(m, _)| m.eq_ignore_ascii_case(mime))
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            decode_error(&format!(
                "MIME type `{}` is not supported",
                truncate(mime, 40)
            ))
        })?;
    let bytes = payload.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return Err(base64_error());
    }
    let head_len = bytes.len().min(HEAD_CHARS);
    let head = STANDARD
        .decode(&bytes[..head_len])
        .map_err(|_| base64_error())?;
    if head_len < bytes.len() && head_len >= 2 && bytes[head_len - 1] == b'=' {
        // Padding is only valid at the very end of the payload.
        return Err(base64_error());
    }
    let mut buf = vec![0u8; SLICE_CHARS / 4 * 3];
    let rest = &bytes[head_len..];
    let mut chunks = rest.chunks(SLICE_CHARS).peekable();
    while let Some(chunk) = chunks.next() {
        if chunks.peek().is_some() && chunk.last() == Some(&b'=') {
            return Err(base64_error());
        }
        STANDARD
            .decode_slice(chunk, &mut buf)
            .map_err(|_| base64_error())?;
    }
    let actual = imagesize::image_type(&head)
        .map_err(|_| decode_error("the decoded bytes are not a JPEG, PNG, WebP or GIF image"))?;
    if actual != expected {
        return Err(decode_error(&format!(
            "the decoded bytes are not a valid {} image",
            truncate(mime, 40)
        )));
    }
    match imagesize::blob_size(&head) {
        Ok(size) if size.width > 0 && size.height > 0 => Ok(()),
        _ => Err(decode_error(&format!(
            "the decoded bytes are not a valid {} image (bad header)",
            truncate(mime, 40)
        ))),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Tiny valid images, shared by tests and benches (cargo feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod samples {
    /// 1x1 PNG.
    pub const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    /// 1x1 GIF.
    pub const GIF_1X1: &str = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";
    /// 1x1 WebP (lossless).
    pub const WEBP_1X1: &str = "UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==";
    /// 1x1 baseline JPEG.
    pub const JPEG_1X1: &str = "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA=";
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;

    fn code(uri: &str) -> Option<Code> {
        check_data_uri(uri).err().map(|e| e.code)
    }

    #[test]
    fn real_images_of_each_type_pass() {
        for (mime, b64) in [
            ("png", PNG_1X1),
            ("gif", GIF_1X1),
            ("webp", WEBP_1X1),
            ("jpeg", JPEG_1X1),
        ] {
            assert_eq!(
                code(&format!("data:image/{mime};base64,{b64}")),
                None,
                "{mime}"
            );
        }
    }

    #[test]
    fn malformed_uris_are_decode_errors() {
        for uri in [
            "ftp://x/y.png".to_owned(),
            "data:image/png,abcd".to_owned(),
            format!("data:;base64,{PNG_1X1}"),
            format!("data:image/bmp;base64,{PNG_1X1}"),
            format!("data:image/jpeg;base64,{PNG_1X1}"),
            "data:image/png;base64,AAAAAAAA".to_owned(),
            format!("data:image/png;base64{PNG_1X1}"),
        ] {
            assert_eq!(code(&uri), Some(Code::ImageDecodeError), "{uri}");
        }
    }

    #[test]
    fn bad_base64_is_base64_invalid() {
        for payload in [
            "",
            "abc",
            "ab=c",
            "a b=",
            "abc=d",
            "====",
            "iVBO\nRw0K",
            "ab*d",
        ] {
            let uri = format!("data:image/png;base64,{payload}");
            assert_eq!(code(&uri), Some(Code::ImageBase64Invalid), "{payload:?}");
        }
    }

    #[test]
    fn large_payloads_are_validated_to_the_end() {
        // a valid PNG header followed by megabytes of valid base64 …
        let mut payload = PNG_1X1.trim_end_matches('=').to_owned();
        payload.truncate(payload.len() / 4 * 4);
        payload.push_str(&"A".repeat(3 * 1024 * 1024));
        assert_eq!(code(&format!("data:image/png;base64,{payload}")), None);
        // … and one bad character deep inside is still found.
        let mut bad = payload.clone();
        bad.replace_range(2_000_000..2_000_001, "*");
        assert_eq!(
            code(&format!("data:image/png;base64,{bad}")),
            Some(Code::ImageBase64Invalid)
        );
        // padding in the middle is invalid
        let mut mid = payload;
        mid.replace_range(HEAD_CHARS + SLICE_CHARS - 1..HEAD_CHARS + SLICE_CHARS, "=");
        assert_eq!(
            code(&format!("data:image/png;base64,{mid}")),
            Some(Code::ImageBase64Invalid)
        );
    }

    #[test]
    fn remote_urls_follow_the_model_constraint() {
        let e = check_image_url(
            "https://example.com/a.png",
            "/messages/0/content/1/image_url/url",
            false,
        )
        .unwrap_err();
        assert_eq!(e.code, Code::ImageUrlNotSupported);
        assert_eq!(
            e.param.as_deref(),
            Some("/messages/0/content/1/image_url/url")
        );
        assert!(check_image_url("HTTP://example.com/a.png", "/x", true).is_ok());
    }
}
