//! `publish`: turns content plus metadata into a content-addressed
//! publication record, as JSON.
//!
//! The second step of the seed paper's two-step workflow. The input is the
//! content itself (for example the PNG from `imagegen`); the metadata comes
//! from parameters: `title` (default "untitled") and `media-type` (default:
//! sniffed from the content). The timestamp is the request's time, so the
//! record is deterministic.

use errand_guest::{Context, ToolError};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A publication record.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Record {
    /// Content address: `sha256:<hex>`.
    pub id: String,
    /// SHA-256 of the content, hex.
    pub digest: String,
    /// Content size in bytes.
    pub size: usize,
    /// Media type.
    pub media_type: String,
    /// Title.
    pub title: String,
    /// Publication time, RFC 3339 UTC.
    pub published_at: String,
    /// Publication time, milliseconds since the Unix epoch.
    pub published_at_ms: u64,
}

/// Guesses a media type from the first bytes.
pub fn sniff(content: &[u8]) -> &'static str {
    if content.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if content.starts_with(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if content.starts_with(b"GIF8") {
        "image/gif"
    } else if content.starts_with(b"%PDF") {
        "application/pdf"
    } else if std::str::from_utf8(content).is_ok() {
        let t = String::from_utf8_lossy(content);
        let t = t.trim_start();
        if t.starts_with('{') || t.starts_with('[') {
            "application/json"
        } else if t.starts_with('<') {
            "text/html"
        } else {
            "text/plain"
        }
    } else {
        "application/octet-stream"
    }
}

/// RFC 3339 UTC to the millisecond.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// Builds the record for `content`.
pub fn record(content: &[u8], title: &str, media_type: Option<&str>, time_ms: u64) -> Record {
    let digest = hex::encode(Sha256::digest(content));
    Record {
        id: format!("sha256:{digest}"),
        digest,
        size: content.len(),
        media_type: media_type.unwrap_or_else(|| sniff(content)).to_owned(),
        title: title.to_owned(),
        published_at: rfc3339(time_ms),
        published_at_ms: time_ms,
    }
}

fn invoke(input: &[u8], ctx: &Context) -> Result<Vec<u8>, ToolError> {
    if input.is_empty() {
        return Err(ToolError::InvalidInput(
            "nothing to publish: the content is empty".into(),
        ));
    }
    let title = ctx.param("title").unwrap_or("untitled");
    if title.len() > 200 {
        return Err(ToolError::InvalidInput(
            "title is longer than 200 bytes".into(),
        ));
    }
    let rec = record(input, title, ctx.param("media-type"), ctx.time_ms);
    serde_json::to_vec(&rec).map_err(|e| ToolError::Failed(e.to_string()))
}

errand_guest::export_tool!(invoke);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_content_addressed_and_timestamped() {
        let r = record(b"abc", "Letters", None, 1_772_600_767_089);
        assert_eq!(
            r.digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(r.id, format!("sha256:{}", r.digest));
        assert_eq!(r.published_at, "2026-03-04T05:06:07.089Z");
        assert_eq!(r.media_type, "text/plain");
        assert_eq!(r.size, 3);
    }

    #[test]
    fn sniffs_media_types() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), "image/png");
        assert_eq!(sniff(b" {\"a\":1}"), "application/json");
        assert_eq!(sniff(&[0xff, 0x00, 0x12]), "application/octet-stream");
    }
}
