//! Bytes of a web page to text: the encoding is taken from a byte-order mark, then from the
//! HTTP `Content-Type` header, then from a `<meta charset>` or `<meta http-equiv>` in the
//! first bytes of the page, as browsers do; a page that declares nothing is UTF-8 when it is
//! valid UTF-8, GB18030 when it decodes cleanly as such and is mostly Chinese, and
//! windows-1252 otherwise (the HTML default).

use encoding_rs::{Encoding, GB18030, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};
use regex::bytes::Regex;
use std::sync::OnceLock;

/// How many leading bytes are searched for a `<meta>` charset declaration.
const PRESCAN_BYTES: usize = 4096;

/// A page decoded to text.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The text, without a byte-order mark.
    pub text: String,
    /// The WHATWG name of the encoding used (`UTF-8`, `GBK`, `windows-1252`, ...).
    pub encoding: &'static str,
    /// Where the encoding came from: `bom`, `http`, `meta` or `sniffed`.
    pub from: &'static str,
}

/// Why a page cannot be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The page declares an encoding that no browser knows.
    #[error("unknown charset `{0}`")]
    UnknownCharset(String),
    /// Too many byte sequences are invalid in the encoding used.
    #[error("undecodable as {encoding}: {bad} of {chars} characters invalid")]
    Invalid {
        /// The encoding tried.
        encoding: &'static str,
        /// Invalid sequences (each decoded as U+FFFD).
        bad: usize,
        /// Characters decoded.
        chars: usize,
    },
}

fn meta_charset_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"(?i-u)<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([a-z0-9_:.+\-]+)"#)
            .expect("valid regex")
    })
}

/// The `charset` parameter of a `Content-Type` header value, if any.
pub fn content_type_charset(content_type: &str) -> Option<String> {
    let lower = content_type.to_ascii_lowercase();
    let at = lower.find("charset=")?;
    let rest = content_type[at + "charset=".len()..].trim_start();
    let value: String = rest
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| !matches!(c, ';' | '"' | '\'' | ',') && !c.is_whitespace())
        .collect();
    (!value.is_empty()).then_some(value)
}

/// The charset a `<meta>` tag in the first bytes of `bytes` declares, if any.
pub fn meta_charset(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(PRESCAN_BYTES)];
    let caps = meta_charset_re().captures(head)?;
    Some(String::from_utf8_lossy(&caps[1]).into_owned())
}

/// The encoding for a label, with the HTML rules: UTF-16 named in a page means UTF-8, and
/// `x-user-defined` means windows-1252.
fn for_label(label: &str, from_meta: bool) -> Option<&'static Encoding> {
    let enc = Encoding::for_label(label.trim().as_bytes())?;
    if from_meta && (enc == UTF_16LE || enc == UTF_16BE) {
        return Some(UTF_8);
    }
    if enc.name() == "x-user-defined" {
        return Some(WINDOWS_1252);
    }
    Some(enc)
}

use crate::langid::is_han;

fn count_bad(text: &str) -> (usize, usize) {
    let mut bad = 0;
    let mut chars = 0;
    for c in text.chars() {
        chars += 1;
        if c == '\u{FFFD}' {
            bad += 1;
        }
    }
    (bad, chars)
}

fn checked(
    enc: &'static Encoding,
    text: String,
    had_errors: bool,
    from: &'static str,
) -> Result<Decoded, DecodeError> {
    if had_errors {
        let (bad, chars) = count_bad(&text);
        // A few stray bytes are common on real pages; a page that is more than 2% invalid
        // is in another encoding or is not text at all.
        if bad > 8 && bad * 50 > chars {
            return Err(DecodeError::Invalid {
                encoding: enc.name(),
                bad,
                chars,
            });
        }
    }
    Ok(Decoded {
        text,
        encoding: enc.name(),
        from,
    })
}

/// Decodes a page's bytes; `content_type` is the HTTP `Content-Type` header when the page came
/// with one (a WARC response).
pub fn decode(bytes: &[u8], content_type: Option<&str>) -> Result<Decoded, DecodeError> {
    if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        let (text, had_errors) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        return checked(enc, text.into_owned(), had_errors, "bom");
    }
    let declared = match content_type.and_then(content_type_charset) {
        Some(label) => Some((
            for_label(&label, false).ok_or(DecodeError::UnknownCharset(label))?,
            "http",
        )),
        None => match meta_charset(bytes) {
            // An unknown label in a <meta> is ignored, as browsers do.
            Some(label) => for_label(&label, true).map(|e| (e, "meta")),
            None => None,
        },
    };
    if let Some((enc, from)) = declared {
        let (text, had_errors) = enc.decode_without_bom_handling(bytes);
        let result = checked(enc, text.into_owned(), had_errors, from);
        if result.is_err() && enc != UTF_8 {
            // A wrong declaration on a page that is really UTF-8.
            if let Ok(s) = std::str::from_utf8(bytes) {
                return Ok(Decoded {
                    text: s.to_string(),
                    encoding: UTF_8.name(),
                    from: "sniffed",
                });
            }
        }
        return result;
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(Decoded {
            text: s.to_string(),
            encoding: UTF_8.name(),
            from: "sniffed",
        });
    }
    let (gb, had_errors) = GB18030.decode_without_bom_handling(bytes);
    if !had_errors {
        let han = gb.chars().filter(|&c| is_han(c)).count();
        let non_ascii = gb.chars().filter(|c| !c.is_ascii()).count();
        if han > 0 && han * 10 >= non_ascii * 9 {
            return Ok(Decoded {
                text: gb.into_owned(),
                encoding: GB18030.name(),
                from: "sniffed",
            });
        }
    }
    let (text, had_errors) = WINDOWS_1252.decode_without_bom_handling(bytes);
    checked(WINDOWS_1252, text.into_owned(), had_errors, "sniffed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_http_meta_and_sniffing() {
        let page = "<html><head><meta charset=\"gbk\"></head><body>高血压的治疗</body></html>";
        let (gbk, _, _) = encoding_rs::GBK.encode(page);
        let d = decode(&gbk, None).unwrap();
        assert_eq!(d.encoding, "GBK");
        assert_eq!(d.from, "meta");
        assert!(d.text.contains("高血压的治疗"));

        let http = "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=GB2312\"></head><body>糖尿病</body></html>";
        let (bytes, _, _) = encoding_rs::GBK.encode(http);
        assert!(decode(&bytes, None).unwrap().text.contains("糖尿病"));
        // The HTTP header wins over the page.
        let d = decode(&bytes, Some("text/html; charset=\"gb18030\"")).unwrap();
        assert_eq!((d.encoding, d.from), ("gb18030", "http"));
        assert!(d.text.contains("糖尿病"));

        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice("<p>café</p>".as_bytes());
        let d = decode(&bom, Some("text/html; charset=iso-8859-1")).unwrap();
        assert_eq!((d.text.as_str(), d.from), ("<p>café</p>", "bom"));

        // Undeclared: GBK bytes sniffed as GB18030, Latin-1 bytes as windows-1252.
        let (undeclared, _, _) = encoding_rs::GBK.encode("<p>慢性肾脏病患者应定期复查肾功能。</p>");
        let d = decode(&undeclared, None).unwrap();
        assert_eq!(d.encoding, "gb18030");
        assert!(d.text.contains("慢性肾脏病"));
        let d = decode(b"<p>na\xefve caf\xe9</p>", None).unwrap();
        assert_eq!(d.text, "<p>naïve café</p>");
    }

    #[test]
    fn charset_parameters_and_errors() {
        assert_eq!(
            content_type_charset("text/html; Charset='UTF-8'; x=1").as_deref(),
            Some("UTF-8")
        );
        assert_eq!(content_type_charset("text/html"), None);
        assert!(matches!(
            decode(b"<p>x</p>", Some("text/html; charset=klingon")),
            Err(DecodeError::UnknownCharset(_))
        ));
        let mut junk = b"<meta charset=utf-8>".to_vec();
        junk.extend((0..400).map(|i| 0x80u8 + (i % 60) as u8));
        assert!(matches!(
            decode(&junk, None),
            Err(DecodeError::Invalid { .. })
        ));
        assert!(matches!(
            decode(&junk, Some("text/html; charset=utf-8")),
            Err(DecodeError::Invalid { .. })
        ));
    }
}
