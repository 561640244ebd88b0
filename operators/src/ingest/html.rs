//! `ingest.html`: web pages, from `.html` files or from WARC crawls (`.warc`, `.warc.gz`),
//! local or on S3, to a dataset of main texts (see [`zest_kernels::html`]).
//!
//! Output `docs`: one row per page: `doc_id` (`<source>-` and 16 hex digits of the SHA-256 of
//! the WARC target URI, or of the file's location), `source`, `url` (the WARC target URI,
//! else the page's canonical URL, else `file://` and the path), `file` (the input file),
//! `title`, `text`, `language` and `language_score` (of the text; the page's `lang`
//! attribute when the text tells nothing), `date` (the publication date from the page's
//! meta tags, else the WARC-Date of the capture; null when neither), `chars` (characters of
//! `text`).
//!
//! Output `rejected`: `doc_id`, `source`, `url`, `file`, `reasons`, for pages that are not
//! HTML, cannot be decoded, have no main text or less than `min_chars` of it, are larger than
//! `max_file_bytes`, and for WARC records that cannot be read. WARC responses whose status is
//! not 200 or whose type is not HTML, and `request`, `metadata` and `warcinfo` records, are
//! skipped and counted on stderr.
//!
//! Files are read one at a time, WARCs as streams (in ranges from S3), and pages are parsed
//! on every core; rows are written in input order, so a run's output is the same every time.

use crate::data::{dataset, docs, sources};
use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{ArrayRef, Float64Builder, StringBuilder, UInt64Builder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use object_store::{ObjectStore, ObjectStoreExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{mpsc, Arc};
use std::time::Instant;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports};
use zest_kernels::html::warc::{WarcReader, WarcRecord};
use zest_kernels::html::{self, PageError};
use zest_kernels::langid;

/// Input formats of `ingest.html`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HtmlFormat {
    /// One page per file.
    Html,
    /// WARC files (ISO 28500, 1.0 or 1.1), plain or gzip-compressed.
    Warc,
}

fn web() -> String {
    "web".into()
}
fn min_chars() -> usize {
    200
}
fn max_file_bytes() -> u64 {
    16 << 20
}

/// Config of `ingest.html`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HtmlConfig {
    /// Files or glob patterns: local paths (relative to where zest runs) or
    /// `s3://bucket/key`. `.html`, `.htm`, `.xhtml` are pages; `.warc`, `.warc.gz` are crawls.
    #[schemars(length(min = 1))]
    pub paths: Vec<String>,
    /// The format of every file; by default each file's extension tells.
    #[serde(default)]
    pub format: Option<HtmlFormat>,
    /// The label written to the `source` column, and the prefix of `doc_id`.
    #[serde(default = "web")]
    #[schemars(length(min = 1))]
    pub source: String,
    /// Pages with a shorter main text (in characters) are rejected.
    #[serde(default = "min_chars")]
    pub min_chars: usize,
    /// The largest page, or WARC record, read (bytes); larger ones are rejected. WARC files
    /// themselves may be of any size: they are streamed.
    #[serde(default = "max_file_bytes")]
    #[schemars(range(min = 1))]
    pub max_file_bytes: u64,
}

/// The `ingest.html` operator.
pub struct Html;

/// Rows per Parquet write.
const BATCH_ROWS: usize = 1024;
/// Bytes per ranged read of a WARC on S3.
const S3_RANGE: u64 = 8 << 20;

fn infer_format(path: &str) -> Option<HtmlFormat> {
    let p = path.to_ascii_lowercase();
    if [".html", ".htm", ".xhtml", ".shtml"]
        .iter()
        .any(|e| p.ends_with(e))
    {
        Some(HtmlFormat::Html)
    } else if [".warc", ".warc.gz", ".warc.gzip"]
        .iter()
        .any(|e| p.ends_with(e))
    {
        Some(HtmlFormat::Warc)
    } else {
        None
    }
}

/// One unit of work for the parsing workers.
enum Work {
    /// A page file's bytes.
    Page { bytes: Vec<u8> },
    /// A WARC `response` record.
    Record(WarcRecord),
    /// Something that failed before parsing: rejected with this reason.
    Broken {
        key: String,
        url: String,
        reason: String,
    },
}

struct Job {
    seq: u64,
    file: Arc<str>,
    work: Work,
}

struct DocRow {
    doc_id: String,
    url: String,
    title: Option<String>,
    text: String,
    language: String,
    language_score: f64,
    date: Option<String>,
    chars: u64,
}

struct RejectedRow {
    doc_id: String,
    url: String,
    reasons: Vec<String>,
}

enum Outcome {
    Doc(DocRow),
    Rejected(RejectedRow),
    /// Not a page of this dataset: why (counted).
    Skipped(String),
}

fn docs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("url", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, true),
        Field::new("text", DataType::Utf8, false),
        Field::new("language", DataType::Utf8, false),
        Field::new("language_score", DataType::Float64, false),
        Field::new("date", DataType::Utf8, true),
        Field::new("chars", DataType::UInt64, false),
    ]))
}

fn rejected_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("url", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        docs::reasons_field(),
    ]))
}

/// The `file://` URL of a local path; an `s3://` location as it is.
fn file_url(location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else {
        format!("file://{location}")
    }
}

/// Parses one job's page: decoding, extraction, language, length check.
fn work(c: &HtmlConfig, file: &str, w: Work) -> Outcome {
    let (key, url_hint, bytes, content_type, capture_date) = match w {
        Work::Broken { key, url, reason } => {
            return Outcome::Rejected(RejectedRow {
                doc_id: html::doc_id(&c.source, &key),
                url,
                reasons: vec![reason],
            })
        }
        Work::Page { bytes } => (file.to_string(), None, bytes, None, None),
        Work::Record(rec) => {
            let uri = rec.target_uri().unwrap_or("").to_string();
            let key = if uri.is_empty() {
                rec.record_id()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{file}#{}", rec.offset))
            } else {
                uri.clone()
            };
            let http = match rec.http() {
                Ok(h) => h,
                Err(e) => {
                    return Outcome::Rejected(RejectedRow {
                        doc_id: html::doc_id(&c.source, &key),
                        url: uri,
                        reasons: vec![format!("bad HTTP response: {e}")],
                    })
                }
            };
            if http.status != 200 {
                return Outcome::Skipped(format!("HTTP status {}", http.status));
            }
            if !http.is_html() {
                return Outcome::Skipped(format!(
                    "not HTML ({})",
                    http.mime().unwrap_or_else(|| "no Content-Type".into())
                ));
            }
            let ct = http.header("Content-Type").map(str::to_string);
            let date = rec.date().map(str::to_string);
            (key, Some(uri), http.body, ct, date)
        }
    };
    let doc_id = html::doc_id(&c.source, &key);
    let reject = |url: String, reason: String| {
        Outcome::Rejected(RejectedRow {
            doc_id: doc_id.clone(),
            url,
            reasons: vec![reason],
        })
    };
    let fallback_url = url_hint.clone().unwrap_or_else(|| file_url(file));
    let processed = match html::process(&bytes, content_type.as_deref()) {
        Ok(p) => p,
        Err(PageError::NotHtml) => return reject(fallback_url, "not HTML".into()),
        Err(e @ PageError::Undecodable(_)) => return reject(fallback_url, e.to_string()),
    };
    let page = processed.page;
    let url = match url_hint {
        Some(u) if !u.is_empty() => u,
        _ => page.canonical_url.clone().unwrap_or(fallback_url),
    };
    let chars = page.text.chars().count();
    if chars == 0 {
        return reject(url, "no main text".into());
    }
    if chars < c.min_chars {
        return reject(
            url,
            format!("too short: {chars} characters < min_chars {}", c.min_chars),
        );
    }
    let detected = langid::detect(&page.text);
    let (language, language_score) = match (detected.code, &page.lang) {
        (langid::UNKNOWN, Some(l)) => (
            l.split(['-', '_']).next().unwrap_or(l).to_ascii_lowercase(),
            0.0,
        ),
        (code, _) => (code.to_string(), detected.confidence),
    };
    Outcome::Doc(DocRow {
        doc_id,
        url,
        title: page.title,
        text: page.text,
        language,
        language_score,
        date: page.date.or(capture_date),
        chars: chars as u64,
    })
}

/// Reads an S3 object in ranges, for streaming a WARC.
struct S3Reader<'a> {
    ctx: &'a OpContext,
    store: Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    location: String,
    pos: u64,
    size: u64,
    buf: Vec<u8>,
    at: usize,
}

impl Read for S3Reader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buf.len() {
            if self.pos >= self.size {
                return Ok(0);
            }
            let end = (self.pos + S3_RANGE).min(self.size);
            let bytes = self
                .ctx
                .block_on(self.store.get_range(&self.path, self.pos..end))
                .map_err(|e| std::io::Error::other(format!("reading {}: {e}", self.location)))?;
            if bytes.is_empty() {
                return Err(std::io::Error::other(format!(
                    "reading {}: empty range at byte {}",
                    self.location, self.pos
                )));
            }
            self.pos += bytes.len() as u64;
            self.buf = bytes.to_vec();
            self.at = 0;
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Rows waiting to be written, a batch of each output.
struct Pending {
    source: String,
    docs: Vec<(DocRow, Arc<str>)>,
    rejected: Vec<(RejectedRow, Arc<str>)>,
}

impl Pending {
    fn write_docs(&mut self, w: &mut dataset::DatasetWriter, schema: &SchemaRef) -> Result<()> {
        if self.docs.is_empty() {
            return Ok(());
        }
        let n = self.docs.len();
        let mut s: Vec<StringBuilder> = (0..8).map(|_| StringBuilder::new()).collect();
        let mut score = Float64Builder::with_capacity(n);
        let mut chars = UInt64Builder::with_capacity(n);
        for (d, f) in self.docs.drain(..) {
            s[0].append_value(&d.doc_id);
            s[1].append_value(&self.source);
            s[2].append_value(&d.url);
            s[3].append_value(&*f);
            s[4].append_option(d.title.as_deref());
            s[5].append_value(&d.text);
            s[6].append_value(&d.language);
            s[7].append_option(d.date.as_deref());
            score.append_value(d.language_score);
            chars.append_value(d.chars);
        }
        let mut cols: Vec<ArrayRef> = s
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let date = cols.pop().expect("eight columns");
        cols.push(Arc::new(score.finish()));
        cols.push(date);
        cols.push(Arc::new(chars.finish()));
        w.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
        Ok(())
    }

    fn write_rejected(&mut self, w: &mut dataset::DatasetWriter, schema: &SchemaRef) -> Result<()> {
        if self.rejected.is_empty() {
            return Ok(());
        }
        let mut s: Vec<StringBuilder> = (0..4).map(|_| StringBuilder::new()).collect();
        let mut reasons = Vec::with_capacity(self.rejected.len());
        for (r, f) in self.rejected.drain(..) {
            s[0].append_value(&r.doc_id);
            s[1].append_value(&self.source);
            s[2].append_value(&r.url);
            s[3].append_value(&*f);
            reasons.push(r.reasons);
        }
        let mut cols: Vec<ArrayRef> = s
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        cols.push(docs::reasons_array(&reasons));
        w.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
        Ok(())
    }
}

/// What the writer counted.
#[derive(Default)]
struct Counts {
    pages: u64,
    docs: usize,
    rejected: usize,
    skipped: BTreeMap<String, u64>,
    report: Option<docs::FilterReport>,
}

impl Operator for Html {
    type Config = HtmlConfig;
    const NAME: &'static str = "ingest.html";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Extracts the main text of web pages from HTML files and WARC crawls (local or s3://)";

    fn ports(_: Option<&HtmlConfig>) -> Ports {
        Ports {
            inputs: vec![],
            outputs: vec![
                PortSpec::new(
                    "docs",
                    PortType::Dataset,
                    "one row per page with its main text",
                )
                .with_columns(&[
                    "doc_id",
                    "source",
                    "url",
                    "file",
                    "title",
                    "text",
                    "language",
                    "language_score",
                    "date",
                    "chars",
                ]),
                PortSpec::new(
                    "rejected",
                    PortType::Dataset,
                    "pages without usable main text and unreadable WARC records, with reasons",
                )
                .with_columns(&["doc_id", "source", "url", "file", "reasons"]),
                docs::report_port(),
            ],
            other_inputs: None,
        }
    }

    fn check(c: &HtmlConfig) -> Result<(), String> {
        if c.source.trim().is_empty() {
            return Err("`source` must not be empty".into());
        }
        if c.format.is_none() {
            if let Some(p) = c.paths.iter().find(|p| infer_format(p).is_none()) {
                return Err(format!(
                    "cannot tell the format of `{p}` from its extension (.html, .htm, .warc, \
                     .warc.gz): set `format` (html or warc)"
                ));
            }
        }
        Ok(())
    }

    const READS_FILES: bool = true;

    fn external_files(
        c: &Self::Config,
        rt: &tokio::runtime::Handle,
    ) -> Result<Vec<zest_engine::operator::ExternalFile>> {
        rt.block_on(crate::data::sources::fingerprint(&c.paths))
    }

    fn run(c: &HtmlConfig, ctx: &mut OpContext) -> Result<()> {
        let docs_dir = ctx.output_dir("docs")?.to_path_buf();
        let rejected_dir = ctx.output_dir("rejected")?.to_path_buf();
        let srcs = ctx
            .block_on(sources::expand(&c.paths))
            .context("ingest.html: finding the input files")?;
        let threads = ctx.threads();
        eprintln!("ingest.html: {} files, {threads} workers", srcs.len());
        let docs_schema = docs_schema();
        let rejected_schema = rejected_schema();
        let mut docs_w = dataset::writer(&docs_dir, docs_schema.clone())?;
        let mut rejected_w = dataset::writer(&rejected_dir, rejected_schema.clone())?;
        let ctx_ref: &OpContext = ctx;
        let start = Instant::now();
        let (counts, warc_skipped) = std::thread::scope(
            |s| -> Result<(Counts, BTreeMap<String, u64>)> {
                let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads * 4);
                let job_rx = Arc::new(std::sync::Mutex::new(job_rx));
                let (out_tx, out_rx) = mpsc::sync_channel::<(u64, Arc<str>, Outcome)>(threads * 4);
                for _ in 0..threads {
                    let job_rx = job_rx.clone();
                    let out_tx = out_tx.clone();
                    s.spawn(move || loop {
                        let job = match job_rx.lock().expect("job queue").recv() {
                            Ok(j) => j,
                            Err(_) => return,
                        };
                        let outcome = work(c, &job.file, job.work);
                        if out_tx.send((job.seq, job.file, outcome)).is_err() {
                            return;
                        }
                    });
                }
                drop(out_tx);
                let (docs_w, rejected_w) = (&mut docs_w, &mut rejected_w);
                let (docs_schema, rejected_schema) = (&docs_schema, &rejected_schema);
                let writer = s.spawn(move || -> Result<Counts> {
                let mut counts = Counts::default();
                let mut report = docs::FilterReport::new(Html::NAME, Some("source".into()));
                let mut pending = Pending {
                    source: c.source.clone(),
                    docs: vec![],
                    rejected: vec![],
                };
                // Outcomes arrive out of order; rows are written in input order.
                let mut waiting: HashMap<u64, (Arc<str>, Outcome)> = HashMap::new();
                let mut next = 0u64;
                let mut last_report = Instant::now();
                for (seq, file, outcome) in out_rx {
                    waiting.insert(seq, (file, outcome));
                    while let Some((file, outcome)) = waiting.remove(&next) {
                        next += 1;
                        counts.pages += 1;
                        match outcome {
                            Outcome::Doc(d) => {
                                counts.docs += 1;
                                report.add(Some(c.source.as_str()), &d.doc_id, "", &[]);
                                pending.docs.push((d, file));
                            }
                            Outcome::Rejected(r) => {
                                counts.rejected += 1;
                                report.add(Some(c.source.as_str()), &r.doc_id, &r.url, &r.reasons);
                                pending.rejected.push((r, file));
                            }
                            Outcome::Skipped(why) => *counts.skipped.entry(why).or_default() += 1,
                        }
                        if pending.docs.len() >= BATCH_ROWS {
                            pending.write_docs(docs_w, docs_schema)?;
                        }
                        if pending.rejected.len() >= BATCH_ROWS {
                            pending.write_rejected(rejected_w, rejected_schema)?;
                        }
                    }
                    if last_report.elapsed().as_secs() >= 5 {
                        last_report = Instant::now();
                        let secs = start.elapsed().as_secs_f64().max(1e-3);
                        eprintln!(
                            "ingest.html: {} pages, {} docs, {} rejected, {} skipped, {:.0} pages/s",
                            counts.pages,
                            counts.docs,
                            counts.rejected,
                            counts.skipped.values().sum::<u64>(),
                            counts.pages as f64 / secs
                        );
                    }
                }
                pending.write_docs(docs_w, docs_schema)?;
                pending.write_rejected(rejected_w, rejected_schema)?;
                counts.report = Some(report);
                Ok(counts)
            });
                // This thread reads the files, in order, and hands out the pages.
                let produced = produce(c, ctx_ref, &srcs, &job_tx);
                drop(job_tx);
                let counts = writer.join().expect("the writer thread does not panic")?;
                Ok((counts, produced?))
            },
        )?;
        docs_w.close()?;
        rejected_w.close()?;
        let mut skipped = counts.skipped;
        for (kind, n) in warc_skipped {
            *skipped.entry(format!("WARC {kind} records")).or_default() += n;
        }
        let secs = start.elapsed().as_secs_f64().max(1e-3);
        let skipped_text = if skipped.is_empty() {
            "none".to_string()
        } else {
            skipped
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        eprintln!(
            "ingest.html: {} pages in {secs:.1}s ({:.0} pages/s): {} docs, {} rejected; skipped: {skipped_text}",
            counts.pages,
            counts.pages as f64 / secs,
            counts.docs,
            counts.rejected,
        );
        ctx.set_output_meta("docs", dataset::meta(&docs_schema, counts.docs));
        ctx.set_output_meta("rejected", dataset::meta(&rejected_schema, counts.rejected));
        match &counts.report {
            Some(r) => docs::write_report(ctx, r),
            None => Ok(()),
        }
    }
}

/// Reads every source in order and sends its pages to the workers; returns the WARC records
/// skipped by type. Stops early (without error) when the workers are gone.
fn produce(
    c: &HtmlConfig,
    ctx: &OpContext,
    srcs: &[sources::Source],
    tx: &mpsc::SyncSender<Job>,
) -> Result<BTreeMap<String, u64>> {
    let mut seq = 0u64;
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let mut send = |file: &Arc<str>, work: Work| -> bool {
        let job = Job {
            seq,
            file: file.clone(),
            work,
        };
        seq += 1;
        tx.send(job).is_ok()
    };
    for src in srcs {
        let location = src.location();
        let file: Arc<str> = Arc::from(location);
        let format = c.format.or_else(|| infer_format(location));
        match format {
            None => {
                let go = send(
                    &file,
                    Work::Broken {
                        key: location.to_string(),
                        url: file_url(location),
                        reason: "unknown format: set `format` (html or warc)".into(),
                    },
                );
                if !go {
                    return Ok(skipped);
                }
            }
            Some(HtmlFormat::Html) => {
                let size = ctx.block_on(src.size())?;
                let work = if size > c.max_file_bytes {
                    Work::Broken {
                        key: location.to_string(),
                        url: file_url(location),
                        reason: format!(
                            "too large: {size} bytes > max_file_bytes {}",
                            c.max_file_bytes
                        ),
                    }
                } else {
                    Work::Page {
                        bytes: ctx.block_on(src.read())?,
                    }
                };
                if !send(&file, work) {
                    return Ok(skipped);
                }
            }
            Some(HtmlFormat::Warc) => {
                let reader: Box<dyn Read + '_> = match src.object_store() {
                    None => Box::new(
                        std::fs::File::open(location)
                            .with_context(|| format!("cannot read {location}"))?,
                    ),
                    Some((bucket, store)) => {
                        let prefix = format!("{}/", bucket.as_str().trim_end_matches('/'));
                        let key = location.strip_prefix(&prefix).unwrap_or(location);
                        Box::new(S3Reader {
                            ctx,
                            store,
                            path: object_store::path::Path::from(key),
                            location: location.to_string(),
                            pos: 0,
                            size: ctx.block_on(src.size())?,
                            buf: vec![],
                            at: 0,
                        })
                    }
                };
                let mut records = WarcReader::new(reader)
                    .with_context(|| format!("cannot read {location}"))?
                    .with_max_block(c.max_file_bytes);
                for rec in records.by_ref() {
                    let work = match rec {
                        Ok(r) => Work::Record(r),
                        Err(e) => Work::Broken {
                            key: e
                                .uri
                                .clone()
                                .unwrap_or_else(|| format!("{location}#{}", e.offset)),
                            url: e.uri.clone().unwrap_or_default(),
                            reason: format!("corrupt WARC record: {e}"),
                        },
                    };
                    if !send(&file, work) {
                        return Ok(skipped);
                    }
                }
                for (k, n) in records.skipped() {
                    *skipped.entry(k.clone()).or_default() += n;
                }
            }
        }
    }
    if seq == 0 {
        bail!("ingest.html: no input files");
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_extensions() {
        assert_eq!(infer_format("a/B.HTML"), Some(HtmlFormat::Html));
        assert_eq!(infer_format("crawl/*.warc.gz"), Some(HtmlFormat::Warc));
        assert_eq!(infer_format("x.warc"), Some(HtmlFormat::Warc));
        assert_eq!(infer_format("x.txt"), None);
        assert_eq!(file_url("/tmp/a.html"), "file:///tmp/a.html");
        assert_eq!(file_url("s3://b/a.html"), "s3://b/a.html");
    }
}
