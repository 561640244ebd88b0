//! Web pages to text: charset detection and decoding ([`charset`]), main-text extraction
//! without navigation and boilerplate ([`extract`]), and a streaming WARC reader
//! ([`warc`]); [`process`] runs a page's bytes through all of it.

pub mod charset;
mod dom;
pub mod extract;
pub mod warc;

pub use charset::{decode, DecodeError, Decoded};
pub use extract::{extract, Page};

use regex::bytes::Regex;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// Whether bytes look like an HTML page: no NUL bytes at the start, and an HTML tag
/// (`<!doctype html>`, `<html`, `<head`, `<body`, `<title`, `<meta`, `<p`, `<div`, ...)
/// among the first 64 KiB.
pub fn looks_like_html(bytes: &[u8]) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"(?i-u)<(!doctype\s+html|html|head|body|title|meta|p|div|article|main|h[1-6]|table|ul|a)[\s>/]")
            .expect("valid regex")
    });
    let head = &bytes[..bytes.len().min(64 << 10)];
    let start = &head[..head.len().min(1024)];
    // UTF-16 pages have NULs; they carry a BOM.
    let utf16 = start.starts_with(&[0xFF, 0xFE]) || start.starts_with(&[0xFE, 0xFF]);
    if utf16 {
        return true;
    }
    !start.contains(&0) && re.is_match(head)
}

/// A stable document id: `prefix-` and the first 16 hex digits of the SHA-256 of `key` (a
/// URL or a file path).
pub fn doc_id(prefix: &str, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

/// A page processed: its extracted text and metadata, and the encoding it was in.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    /// What was extracted.
    pub page: Page,
    /// The WHATWG name of the page's encoding.
    pub encoding: &'static str,
}

/// Why a page yields no document.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PageError {
    /// The bytes are not an HTML page.
    #[error("not HTML")]
    NotHtml,
    /// The bytes cannot be decoded.
    #[error("undecodable: {0}")]
    Undecodable(#[from] DecodeError),
}

/// Decodes a page's bytes (`content_type` is the HTTP header, when there is one) and
/// extracts its main text and metadata.
pub fn process(bytes: &[u8], content_type: Option<&str>) -> Result<Processed, PageError> {
    if !looks_like_html(bytes) {
        return Err(PageError::NotHtml);
    }
    let decoded = decode(bytes, content_type)?;
    Ok(Processed {
        page: extract(&decoded.text),
        encoding: decoded.encoding,
    })
}

#[cfg(test)]
mod tests;
