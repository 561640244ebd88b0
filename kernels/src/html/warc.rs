//! A streaming WARC reader (WARC/1.0 and WARC/1.1, ISO 28500), plain or gzip-compressed
//! (`.warc.gz`: one gzip member per record, or one for the whole file), and the HTTP
//! responses that `response` records hold.
//!
//! The reader pulls from any [`Read`] and holds one record's block at a time, so a crawl of
//! many gigabytes streams in bounded memory. It yields `response` records only; `request`,
//! `metadata`, `warcinfo`, `revisit`, `resource` and `conversion` records are skipped without
//! being kept in memory, and counted. After a malformed record it reports an error and
//! resumes at the next `WARC/1.x` line.

use flate2::read::MultiGzDecoder;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

/// The longest header line read; longer lines are a malformed record.
const MAX_LINE: usize = 64 << 10;

/// A `response` record.
#[derive(Debug, Clone, PartialEq)]
pub struct WarcRecord {
    /// `WARC/1.0` or `WARC/1.1`.
    pub version: String,
    /// The WARC header fields in order, names as written.
    pub headers: Vec<(String, String)>,
    /// The record block: for an HTTP response, the status line, headers and body.
    pub block: Vec<u8>,
    /// Byte offset of the record in the (decompressed) stream.
    pub offset: u64,
}

impl WarcRecord {
    /// A header field, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// `WARC-Target-URI`, without the angle brackets some WARC/1.0 writers put around it.
    pub fn target_uri(&self) -> Option<&str> {
        self.header("WARC-Target-URI")
            .map(|u| u.trim().trim_start_matches('<').trim_end_matches('>'))
    }

    /// `WARC-Date`.
    pub fn date(&self) -> Option<&str> {
        self.header("WARC-Date")
    }

    /// `WARC-Record-ID`.
    pub fn record_id(&self) -> Option<&str> {
        self.header("WARC-Record-ID")
    }

    /// The HTTP response in the block.
    pub fn http(&self) -> Result<HttpResponse, String> {
        parse_http_response(&self.block)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A record the reader could not read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("WARC record at byte {offset}{}: {message}", uri.as_ref().map(|u| format!(" ({u})")).unwrap_or_default())]
pub struct WarcError {
    /// Byte offset of the record in the (decompressed) stream.
    pub offset: u64,
    /// The record's target URI, when its header could be read.
    pub uri: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Iterates the `response` records of a WARC stream.
pub struct WarcReader<'a> {
    inner: Box<dyn BufRead + 'a>,
    pos: u64,
    max_block: u64,
    /// After an error: skip lines until the next version line.
    resync: bool,
    done: bool,
    skipped: BTreeMap<String, u64>,
}

impl<'a> WarcReader<'a> {
    /// A reader of `r`; gzip compression is recognised by its magic bytes.
    pub fn new(r: impl Read + 'a) -> std::io::Result<Self> {
        let mut buf = BufReader::with_capacity(256 << 10, r);
        let gz = buf.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let inner: Box<dyn BufRead + 'a> = if gz {
            Box::new(BufReader::with_capacity(
                256 << 10,
                MultiGzDecoder::new(buf),
            ))
        } else {
            Box::new(buf)
        };
        Ok(WarcReader {
            inner,
            pos: 0,
            max_block: u64::MAX,
            resync: false,
            done: false,
            skipped: BTreeMap::new(),
        })
    }

    /// Records whose block is larger than `bytes` are skipped over and reported as errors.
    pub fn with_max_block(mut self, bytes: u64) -> Self {
        self.max_block = bytes;
        self
    }

    /// Records skipped so far, by `WARC-Type`.
    pub fn skipped(&self) -> &BTreeMap<String, u64> {
        &self.skipped
    }

    /// Reads one line (through `\n`) into `line`, at most [`MAX_LINE`] bytes; Ok(false) at the
    /// end of the stream.
    fn read_line(&mut self, line: &mut Vec<u8>) -> std::io::Result<bool> {
        line.clear();
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(!line.is_empty());
            }
            let (take, found) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = MAX_LINE.saturating_sub(line.len());
            let take_now = take.min(room.max(1));
            line.extend_from_slice(&buf[..take_now]);
            self.inner.consume(take_now);
            self.pos += take_now as u64;
            if (found && take_now == take) || line.len() >= MAX_LINE {
                return Ok(true);
            }
        }
    }

    fn skip(&mut self, n: u64) -> std::io::Result<u64> {
        std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
    }

    fn error(&mut self, offset: u64, uri: Option<String>, message: String) -> WarcError {
        self.resync = true;
        WarcError {
            offset,
            uri,
            message,
        }
    }

    fn next_record(&mut self) -> Option<Result<WarcRecord, WarcError>> {
        let mut line = Vec::new();
        loop {
            if self.done {
                return None;
            }
            let offset = self.pos;
            match self.read_line(&mut line) {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(WarcError {
                        offset,
                        uri: None,
                        message: format!("cannot read the stream: {e}"),
                    }));
                }
            }
            let first = String::from_utf8_lossy(&line);
            let first = first.trim();
            if first.is_empty() {
                continue;
            }
            if !first.starts_with("WARC/") {
                if self.resync {
                    continue;
                }
                let shown: String = first.chars().take(40).collect();
                return Some(Err(self.error(
                    offset,
                    None,
                    format!("expected a `WARC/1.x` version line, found `{shown}`"),
                )));
            }
            self.resync = false;
            let version = first.to_string();
            // Header fields, with folded continuation lines.
            let mut headers: Vec<(String, String)> = Vec::new();
            loop {
                match self.read_line(&mut line) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.done = true;
                        return Some(Err(WarcError {
                            offset,
                            uri: header(&headers, "WARC-Target-URI").map(str::to_string),
                            message: "the stream ends inside the record header".into(),
                        }));
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(WarcError {
                            offset,
                            uri: None,
                            message: format!("cannot read the stream: {e}"),
                        }));
                    }
                }
                let l = String::from_utf8_lossy(&line);
                let l = l.trim_end_matches(['\r', '\n']);
                if l.is_empty() {
                    break;
                }
                if l.starts_with([' ', '\t']) {
                    if let Some(last) = headers.last_mut() {
                        last.1.push(' ');
                        last.1.push_str(l.trim());
                        continue;
                    }
                }
                match l.split_once(':') {
                    Some((n, v)) => headers.push((n.trim().to_string(), v.trim().to_string())),
                    None => {
                        let shown: String = l.chars().take(40).collect();
                        return Some(Err(self.error(
                            offset,
                            header(&headers, "WARC-Target-URI").map(str::to_string),
                            format!("malformed header line `{shown}`"),
                        )));
                    }
                }
            }
            let uri = header(&headers, "WARC-Target-URI").map(str::to_string);
            let len = match header(&headers, "Content-Length").map(|v| v.trim().parse::<u64>()) {
                Some(Ok(n)) => n,
                Some(Err(_)) | None => {
                    return Some(Err(self.error(
                        offset,
                        uri,
                        "missing or invalid Content-Length".into(),
                    )))
                }
            };
            let kind = header(&headers, "WARC-Type")
                .unwrap_or("")
                .to_ascii_lowercase();
            if kind != "response" || len > self.max_block {
                match self.skip(len) {
                    Ok(n) if n == len => {}
                    Ok(_) => {
                        self.done = true;
                        return Some(Err(WarcError {
                            offset,
                            uri,
                            message: "the stream ends inside the record block".into(),
                        }));
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(WarcError {
                            offset,
                            uri,
                            message: format!("cannot read the stream: {e}"),
                        }));
                    }
                }
                self.pos += len;
                if kind == "response" {
                    return Some(Err(WarcError {
                        offset,
                        uri,
                        message: format!(
                            "record block of {len} bytes is over the limit of {}",
                            self.max_block
                        ),
                    }));
                }
                *self.skipped.entry(kind).or_default() += 1;
                continue;
            }
            let mut block = Vec::with_capacity(len.min(64 << 20) as usize);
            match (&mut self.inner).take(len).read_to_end(&mut block) {
                Ok(n) if n as u64 == len => {}
                Ok(n) => {
                    self.done = true;
                    return Some(Err(WarcError {
                        offset,
                        uri,
                        message: format!(
                            "truncated: the stream ends after {n} of {len} block bytes"
                        ),
                    }));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(WarcError {
                        offset,
                        uri,
                        message: format!("cannot read the stream: {e}"),
                    }));
                }
            }
            self.pos += len;
            return Some(Ok(WarcRecord {
                version,
                headers,
                block,
                offset,
            }));
        }
    }
}

impl Iterator for WarcReader<'_> {
    type Item = Result<WarcRecord, WarcError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// An HTTP response, its body de-chunked and decompressed.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The header fields in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header field, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The media type of `Content-Type`, lower-case, without parameters.
    pub fn mime(&self) -> Option<String> {
        self.header("Content-Type").map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// Whether the response is HTML: `text/html` or `application/xhtml+xml`, or no
    /// `Content-Type` and a body that looks like HTML.
    pub fn is_html(&self) -> bool {
        match self.mime() {
            Some(m) if !m.is_empty() => m == "text/html" || m == "application/xhtml+xml",
            _ => super::looks_like_html(&self.body),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses an HTTP response: status line, headers, body. A chunked body is de-chunked (kept
/// as is when it is not valid chunked encoding: some crawlers store the decoded body with the
/// original header); a gzip or deflate `Content-Encoding` is decompressed.
pub fn parse_http_response(block: &[u8]) -> Result<HttpResponse, String> {
    let (head_end, body_start) = match (find(block, b"\r\n\r\n"), find(block, b"\n\n")) {
        (Some(a), Some(b)) if b < a => (b, b + 2),
        (Some(a), _) => (a, a + 4),
        (None, Some(b)) => (b, b + 2),
        (None, None) => (block.len(), block.len()),
    };
    let head = String::from_utf8_lossy(&block[..head_end]);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("").trim();
    let mut parts = status_line.split_whitespace();
    let proto = parts.next().unwrap_or("");
    if !proto.starts_with("HTTP/") {
        let shown: String = status_line.chars().take(40).collect();
        return Err(format!("not an HTTP response: `{shown}`"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad HTTP status line `{status_line}`"))?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in lines {
        if l.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(l.trim());
            }
            continue;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut body = block[body_start.min(block.len())..].to_vec();
    let chunked = header(&headers, "Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        if let Some(b) = dechunk(&body) {
            body = b;
        }
    }
    let encoding = header(&headers, "Content-Encoding")
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    body = match encoding.as_str() {
        "" | "identity" => body,
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            MultiGzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .map_err(|e| format!("bad gzip Content-Encoding: {e}"))?;
            out
        }
        "deflate" => {
            let mut out = Vec::new();
            // `deflate` is zlib-wrapped by the standard, raw in some servers.
            if flate2::read::ZlibDecoder::new(&body[..])
                .read_to_end(&mut out)
                .is_err()
            {
                out.clear();
                flate2::read::DeflateDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .map_err(|e| format!("bad deflate Content-Encoding: {e}"))?;
            }
            out
        }
        other => return Err(format!("unsupported Content-Encoding `{other}`")),
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Decodes a chunked body; None when it is not valid chunked encoding.
pub fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    loop {
        let eol = data.iter().position(|&b| b == b'\n')?;
        let line = std::str::from_utf8(&data[..eol]).ok()?;
        let size_hex = line.split(';').next()?.trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        data = &data[eol + 1..];
        if size == 0 {
            // Trailers, if any, are ignored.
            return Some(out);
        }
        if data.len() < size {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size..];
        data = data
            .strip_prefix(b"\r\n")
            .or_else(|| data.strip_prefix(b"\n"))?;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// One WARC record with `block` and extra header lines.
    pub fn record(kind: &str, uri: &str, extra: &str, block: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "WARC/1.1\r\nWARC-Type: {kind}\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2024-05-01T10:00:00Z\r\nWARC-Record-ID: <urn:uuid:{kind}-{}>\r\n{extra}Content-Length: {}\r\n\r\n",
            uri.len(),
            block.len()
        )
        .into_bytes();
        r.extend_from_slice(block);
        r.extend_from_slice(b"\r\n\r\n");
        r
    }

    /// Gzip of `data`, as one member.
    pub fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_responses_from_gzip_members_and_skips_the_rest() {
        let html = b"<html><body><p>Hello</p></body></html>";
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            html.len()
        )
        .into_bytes();
        resp.extend_from_slice(html);
        let chunked =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n<p>Chun\r\n8;ext=1\r\nked body\r\n4\r\n</p>\r\n0\r\n\r\n";
        let gone = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\r\n<p>missing</p>";
        let mut file = Vec::new();
        file.extend(gz(&record("warcinfo", "", "", b"software: test\r\n")));
        file.extend(gz(&record(
            "request",
            "https://a.example/",
            "",
            b"GET / HTTP/1.1\r\n\r\n",
        )));
        file.extend(gz(&record("response", "https://a.example/", "", &resp)));
        file.extend(gz(&record(
            "metadata",
            "https://a.example/",
            "",
            b"fetchTimeMs: 3\r\n",
        )));
        file.extend(gz(&record("response", "<https://b.example/>", "", chunked)));
        file.extend(gz(&record("response", "https://c.example/", "", gone)));
        let mut r = WarcReader::new(&file[..]).unwrap();
        let recs: Vec<WarcRecord> = r.by_ref().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].target_uri(), Some("https://a.example/"));
        assert_eq!(recs[0].date(), Some("2024-05-01T10:00:00Z"));
        assert!(recs[0]
            .record_id()
            .unwrap()
            .starts_with("<urn:uuid:response"));
        let h = recs[0].http().unwrap();
        assert_eq!((h.status, h.is_html()), (200, true));
        assert_eq!(h.body, html);
        assert_eq!(recs[1].target_uri(), Some("https://b.example/"));
        let h = recs[1].http().unwrap();
        assert_eq!(h.body, b"<p>Chunked body</p>");
        assert_eq!(recs[2].http().unwrap().status, 404);
        assert_eq!(r.skipped().get("request"), Some(&1));
        assert_eq!(r.skipped().get("warcinfo"), Some(&1));
        assert_eq!(r.skipped().get("metadata"), Some(&1));

        // The same records uncompressed, in WARC/1.0.
        let plain: Vec<u8> = String::from_utf8(record("response", "https://a.example/", "", &resp))
            .unwrap()
            .replace("WARC/1.1", "WARC/1.0")
            .into_bytes();
        let recs: Vec<_> = WarcReader::new(&plain[..]).unwrap().collect();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].as_ref().unwrap().version, "WARC/1.0");
    }

    #[test]
    fn corrupt_records_are_errors_and_reading_resumes() {
        let ok = record(
            "response",
            "https://ok.example/",
            "",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<p>fine</p>",
        );
        let mut file = b"WARC/1.1\r\nWARC-Type: response\r\nWARC-Target-URI: https://bad.example/\r\nContent-Length: lots\r\n\r\ngarbage that is\nnot a record\n".to_vec();
        file.extend_from_slice(&ok);
        // Truncated at the end.
        let mut cut = record("response", "https://cut.example/", "", &[b'x'; 100]);
        cut.truncate(cut.len() - 60);
        file.extend_from_slice(&cut);
        let out: Vec<_> = WarcReader::new(&file[..]).unwrap().collect();
        assert_eq!(out.len(), 3, "{out:?}");
        let e = out[0].as_ref().unwrap_err();
        assert_eq!(e.uri.as_deref(), Some("https://bad.example/"));
        assert!(e.to_string().contains("Content-Length"), "{e}");
        assert_eq!(
            out[1].as_ref().unwrap().target_uri(),
            Some("https://ok.example/")
        );
        let e = out[2].as_ref().unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");

        // A record over the size limit is an error and the next one is read.
        let mut two = record("response", "https://big.example/", "", &[b'x'; 5000]);
        two.extend_from_slice(&ok);
        let out: Vec<_> = WarcReader::new(&two[..])
            .unwrap()
            .with_max_block(1000)
            .collect();
        assert!(out[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("over the limit"));
        assert!(out[1].is_ok());
    }

    #[test]
    fn http_bodies() {
        let body = gz(b"<p>compressed</p>");
        let mut block =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n\r\n"
                .to_vec();
        block.extend_from_slice(&body);
        assert_eq!(
            parse_http_response(&block).unwrap().body,
            b"<p>compressed</p>"
        );
        // Declared chunked but stored decoded: the body is kept.
        let r = parse_http_response(
            b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n<html>plain</html>",
        )
        .unwrap();
        assert_eq!(r.body, b"<html>plain</html>");
        assert!(parse_http_response(b"GET / HTTP/1.1\r\n\r\n").is_err());
        let r = parse_http_response(b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n\r\n\x89PNG")
            .unwrap();
        assert!(!r.is_html());
        assert_eq!(dechunk(b"3\r\nabc\r\n0\r\n\r\n").unwrap(), b"abc");
        assert_eq!(dechunk(b"zz\r\nabc"), None);
    }
}
