//! `ingest.pdf`: PDFs (local or `s3://`, globs allowed) → a dataset with one row per page (or
//! per document), read from the text layer, or by OCR where a page has no usable one.
//!
//! One thread reads documents with PDFium (which is not thread-safe) and hands each page, as
//! characters with boxes or as a rendering for OCR, to a pool of workers, one per core, each
//! with its own Tesseract engine. Pages come back to the writer, which assembles each document
//! in file order: running headers, footers and page numbers are removed across its pages,
//! lines are put in reading order and joined into paragraphs with hyphenation repaired.
//!
//! Files that cannot be read (corrupt, truncated, encrypted, empty, with no pages, too large,
//! not PDFs) go to `rejected` with the reason; the node still succeeds.

use super::pdfium::{Pdfium, Render};
use super::tesseract;
use crate::data::{dataset, docs, sources};
use anyhow::{Context, Result};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, StringArray, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports};
use zest_kernels::page_text::{self, Line, PageLines};

/// One row per page or per document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// A row per page.
    Page,
    /// A row per document, its pages joined.
    Document,
}

/// When to OCR a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OcrMode {
    /// Pages without a usable text layer (none, too short, or garbled).
    Auto,
    /// Every page, ignoring text layers.
    Always,
    /// Never: pages without text come out empty.
    Never,
}

fn page() -> Granularity {
    Granularity::Page
}
fn auto() -> OcrMode {
    OcrMode::Auto
}
fn langs() -> Vec<String> {
    vec!["eng".into(), "chi_sim".into()]
}
/// The resolution pages that are not one image are rendered at for OCR, unless `dpi` is set.
pub const RENDER_DPI: u32 = 300;

/// The most pixels a page image for OCR may have.
const MAX_PIXELS: usize = 200_000_000;
fn min_chars() -> usize {
    20
}
fn max_bytes() -> u64 {
    512 << 20
}
fn max_pages() -> usize {
    10_000
}
fn pdf_label() -> String {
    "pdf".into()
}
fn yes() -> bool {
    true
}

/// Config of `ingest.pdf`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PdfConfig {
    /// PDF files or globs: local paths or `s3://bucket/key`.
    #[schemars(length(min = 1))]
    pub paths: Vec<String>,
    /// The label written to the `source` column (e.g. `textbook`, `guideline`).
    #[serde(default = "pdf_label")]
    pub source: String,
    /// A row per `page` or per `document`.
    #[serde(default = "page")]
    pub granularity: Granularity,
    /// When to OCR: `auto` (pages without a usable text layer), `always` or `never`.
    #[serde(default = "auto")]
    pub ocr: OcrMode,
    /// Tesseract languages to OCR with, joined as Tesseract joins them (`eng`, `chi_sim`, …).
    #[serde(default = "langs")]
    #[schemars(length(min = 1))]
    pub ocr_languages: Vec<String>,
    /// Resolution of OCR. Unset (the default): a scanned page (one upright image covering the
    /// page, nothing else visible) is read from its own image at the image's resolution, and
    /// other pages are rendered at 300 dpi. Set: every page OCR reads is rendered at this dpi,
    /// scans included.
    #[serde(default)]
    #[schemars(range(min = 72, max = 600))]
    pub dpi: Option<u32>,
    /// A text layer with fewer characters than this (whitespace aside) counts as missing.
    #[serde(default = "min_chars")]
    pub min_text_chars: usize,
    /// Binarise page images with Otsu's threshold before OCR (`true`), or leave thresholding
    /// to Tesseract (`false`). Unset (the default): only where it was measured to help:
    /// renderings are binarised; a scan's own image is read as it is, and read again
    /// binarised when the page reads as Chinese, or enlarged to 300 dpi and binarised when
    /// Tesseract finds next to nothing in a scan under 300 dpi.
    #[serde(default)]
    pub binarize: Option<bool>,
    /// Where Tesseract's traineddata is, if not its default location.
    #[serde(default)]
    pub tessdata: Option<String>,
    /// Remove running headers, footers and page numbers.
    #[serde(default = "yes")]
    pub remove_headers: bool,
    /// Files larger than this are rejected.
    #[serde(default = "max_bytes")]
    pub max_file_bytes: u64,
    /// Files with more pages than this are rejected.
    #[serde(default = "max_pages")]
    #[schemars(range(min = 1))]
    pub max_pages: usize,
    /// Worker threads (default: every core).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub threads: Option<usize>,
}

/// The `ingest.pdf` operator.
pub struct IngestPdf;

/// What a worker is handed: one page.
enum Job {
    Text {
        doc: usize,
        page: usize,
        text: Box<super::pdfium::PageText>,
    },
    Ocr {
        doc: usize,
        page: usize,
        render: Render,
        why: String,
    },
}

const UNDETERMINED: zest_kernels::langid::Language = zest_kernels::langid::Language {
    code: zest_kernels::langid::UNKNOWN,
    confidence: 0.0,
};

/// What OCR read a page from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OcrImage {
    /// The page's own image (a scan), or a rendering.
    native: bool,
    /// The page's own image, enlarged to `dpi`.
    upscaled: bool,
    /// The resolution Tesseract read it at.
    dpi: u32,
    /// Whether it was binarised first.
    binarized: bool,
}

impl OcrImage {
    /// The `ocr_image` column: `native`, `upscaled` (native, enlarged) or `rendered`.
    fn kind(&self) -> &'static str {
        match (self.native, self.upscaled) {
            (true, false) => "native",
            (true, true) => "upscaled",
            (false, _) => "rendered",
        }
    }
}

/// A page read.
struct PageOut {
    lines: Vec<Line>,
    height: f32,
    method: &'static str,
    confidence: Option<f32>,
    note: Option<String>,
    /// What OCR read, for OCR'd pages.
    image: Option<OcrImage>,
    language: zest_kernels::langid::Language,
}

/// What the reader and the workers report to the writer.
enum Event {
    /// A document opened: its file, id stem and page count.
    Doc {
        doc: usize,
        file: String,
        id: String,
        pages: usize,
    },
    /// A file rejected whole.
    Rejected {
        doc: usize,
        file: String,
        id: String,
        reason: String,
    },
    /// A page done, or failed.
    Page {
        doc: usize,
        page: usize,
        out: Result<PageOut, String>,
    },
}

fn id_stem(file: &str, data: &[u8]) -> String {
    let stem = std::path::Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pdf".into());
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let h = Sha256::digest(data);
    format!("{stem}-{}", hex8(&h))
}

fn hex8(h: &[u8]) -> String {
    h[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a file is not a PDF we can read, before PDFium sees it (its size was checked before
/// it was read).
fn precheck(data: &[u8]) -> Option<String> {
    if data.is_empty() {
        return Some("empty file".into());
    }
    let head = &data[..data.len().min(1024)];
    if !head.windows(5).any(|w| w == b"%PDF-") {
        let shown: String = String::from_utf8_lossy(&data[..data.len().min(16)])
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .collect();
        return Some(format!(
            "not a PDF: no %PDF- header (starts with {shown:?})"
        ));
    }
    let tail = &data[data.len().saturating_sub(2048)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        return Some("truncated: no %%EOF marker at the end of the file".into());
    }
    None
}

/// Reads the documents and sends their pages to the workers (text) or renders them (OCR).
fn read_documents(
    c: &PdfConfig,
    files: &[sources::Source],
    rt: &tokio::runtime::Handle,
    pdfium: &Pdfium,
    next: &AtomicUsize,
    jobs: mpsc::SyncSender<Job>,
    events: mpsc::Sender<Event>,
) -> Result<()> {
    let max_pixels = MAX_PIXELS;
    loop {
        let doc = next.fetch_add(1, Ordering::Relaxed);
        let Some(src) = files.get(doc) else {
            return Ok(());
        };
        let file = src.location().to_string();
        let reject = |id: String, reason: String| {
            let _ = events.send(Event::Rejected {
                doc,
                file: file.clone(),
                id,
                reason,
            });
        };
        let size = rt.block_on(src.size());
        match size {
            Ok(n) if n > c.max_file_bytes => {
                reject(
                    id_stem(&file, file.as_bytes()),
                    format!(
                        "oversized: {n} bytes, over max_file_bytes {}",
                        c.max_file_bytes
                    ),
                );
                continue;
            }
            Err(e) => {
                reject(id_stem(&file, file.as_bytes()), format!("{e:#}"));
                continue;
            }
            _ => {}
        }
        let data = match rt.block_on(src.read()) {
            Ok(d) => d,
            Err(e) => {
                reject(id_stem(&file, file.as_bytes()), format!("{e:#}"));
                continue;
            }
        };
        let id = id_stem(&file, &data);
        if let Some(reason) = precheck(&data) {
            reject(id, reason);
            continue;
        }
        // Everything PDFium does happens under its lock; pages are handed over as plain data.
        {
            let s = pdfium.lock();
            let d = match s.open(&data) {
                Ok(d) => d,
                Err(e) => {
                    reject(id, e.to_string());
                    continue;
                }
            };
            let n = d.pages();
            if n == 0 {
                reject(id, "no pages".into());
                continue;
            }
            if n > c.max_pages {
                reject(
                    id,
                    format!("oversized: {n} pages, over max_pages {}", c.max_pages),
                );
                continue;
            }
            let _ = events.send(Event::Doc {
                doc,
                file: file.clone(),
                id: id.clone(),
                pages: n,
            });
            for page in 0..n {
                let text = match d.text(page) {
                    Ok(t) => t,
                    Err(e) => {
                        let _ = events.send(Event::Page {
                            doc,
                            page,
                            out: Err(format!("{e:#}")),
                        });
                        continue;
                    }
                };
                let why = match c.ocr {
                    OcrMode::Never => None,
                    OcrMode::Always => Some("ocr: always".to_string()),
                    OcrMode::Auto => page_text::text_layer_problem(&text.chars, c.min_text_chars),
                };
                let job = match why {
                    Some(why) => match page_image(&d, page, c.dpi, max_pixels) {
                        Ok(render) => Job::Ocr {
                            doc,
                            page,
                            render,
                            why,
                        },
                        Err(e) => {
                            let _ = events.send(Event::Page {
                                doc,
                                page,
                                out: Err(format!("{e:#}")),
                            });
                            continue;
                        }
                    },
                    _ => Job::Text {
                        doc,
                        page,
                        text: Box::new(text),
                    },
                };
                // Each reader has its own PDFium instance, so waiting on a full queue while
                // holding its lock stalls no one else; the queue bounds memory.
                if jobs.send(job).is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// What OCR reads of page `index`: with `dpi` set, a rendering at that dpi; otherwise the
/// page's own image at its own resolution when the page is a scan, else a rendering at
/// [`RENDER_DPI`].
fn page_image(
    d: &super::pdfium::Document<'_, '_>,
    index: usize,
    dpi: Option<u32>,
    max_pixels: usize,
) -> Result<Render> {
    if let Some(dpi) = dpi {
        return d.render(index, dpi, max_pixels);
    }
    match d.native_image(index, max_pixels)? {
        Ok(image) => Ok(image),
        Err(_) => d.render(index, RENDER_DPI, max_pixels),
    }
}

/// Characters other than whitespace.
fn visible_chars(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// OCR of one page image. With `binarize` set, the image is binarised (or not) and read once.
/// Unset, renderings are binarised and a scan's own image is first read as it is, leaving
/// thresholding to Tesseract; then, where that was measured to fall short (see
/// BENCHMARKS.md, "PDF text layer and OCR"):
///
/// - a page read as Chinese is read again binarised (on the noisy scans of the tests,
///   character errors went from 2.5% to 2.1% at 200 dpi and from 2.9% to 1.7% at 300 dpi,
///   while binarising English scans raised them, from 0.20% to 0.73–0.81% at 200 dpi);
/// - a scan under 300 dpi in which Tesseract found under `min_text_chars` characters is read
///   again enlarged to 300 dpi (bilinear) and binarised, as a rendering would be: on grainy
///   200-dpi scans of small type Tesseract reads nothing at the scan's own resolution (as its
///   CLI does on the same image) and nearly everything enlarged. The reading with more
///   characters is kept.
fn ocr_page(
    c: &PdfConfig,
    e: &mut tesseract::Engine,
    img: Render,
) -> Result<(tesseract::Ocr, OcrImage)> {
    let auto = c.binarize.is_none() && img.native;
    let binarized = c.binarize.unwrap_or(!img.native);
    let mut pixels = img.pixels;
    let original = auto.then(|| pixels.clone());
    if binarized {
        zest_kernels::binarize::binarize(&mut pixels);
    }
    let mut used = OcrImage {
        native: img.native,
        upscaled: false,
        dpi: img.dpi,
        binarized,
    };
    let o = e.recognize(&pixels, img.width, img.height, img.dpi)?;
    let Some(mut original) = original else {
        return Ok((o, used));
    };
    let chars = visible_chars(&o.text);
    if chars < c.min_text_chars.max(1) && img.dpi < RENDER_DPI {
        let scale = RENDER_DPI as f64 / img.dpi as f64;
        let (w, h) = (
            (img.width as f64 * scale).round() as usize,
            (img.height as f64 * scale).round() as usize,
        );
        if w * h <= MAX_PIXELS {
            let mut up = zest_kernels::resample::bilinear(&original, img.width, img.height, w, h);
            zest_kernels::binarize::binarize(&mut up);
            let again = e.recognize(&up, w, h, RENDER_DPI)?;
            if visible_chars(&again.text) > chars {
                used.upscaled = true;
                used.dpi = RENDER_DPI;
                used.binarized = true;
                return Ok((again, used));
            }
        }
        return Ok((o, used));
    }
    if zest_kernels::langid::detect(&o.text).code == "zh" {
        zest_kernels::binarize::binarize(&mut original);
        let again = e.recognize(&original, img.width, img.height, img.dpi)?;
        used.binarized = true;
        return Ok((again, used));
    }
    Ok((o, used))
}

/// A worker: turns pages into lines, by layout or by OCR.
fn work(c: &PdfConfig, jobs: &std::sync::Mutex<mpsc::Receiver<Job>>, events: mpsc::Sender<Event>) {
    let mut engine: Option<Result<tesseract::Engine, String>> = None;
    loop {
        let job = match jobs.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let (doc, page, out) = match job {
            Job::Text { doc, page, text } => {
                let lines = page_text::reading_order(page_text::lines(&text.chars));
                (
                    doc,
                    page,
                    Ok(PageOut {
                        lines,
                        height: text.size.1,
                        method: "text",
                        confidence: None,
                        note: None,
                        image: None,
                        language: UNDETERMINED,
                    }),
                )
            }
            Job::Ocr {
                doc,
                page,
                render,
                why,
            } => {
                let e = engine.get_or_insert_with(|| {
                    tesseract::Engine::new(&c.ocr_languages, c.tessdata.as_deref())
                        .map_err(|e| format!("{e:#}"))
                });
                let out = match e {
                    Ok(e) => ocr_page(c, e, render)
                        .map(|(o, image)| PageOut {
                            lines: page_text::ocr_lines(&o.text),
                            height: 0.0,
                            method: "ocr",
                            confidence: Some(o.confidence),
                            note: Some(why),
                            image: Some(image),
                            language: UNDETERMINED,
                        })
                        .map_err(|e| format!("{e:#}")),
                    Err(msg) => Err(msg.clone()),
                };
                (doc, page, out)
            }
        };
        // Language is told here, on the workers, from the page's lines as read.
        let out = out.map(|mut p| {
            let text: Vec<&str> = p.lines.iter().map(|l| l.text.as_str()).collect();
            p.language = zest_kernels::langid::detect(&text.join("\n"));
            p
        });
        if events.send(Event::Page { doc, page, out }).is_err() {
            return;
        }
    }
}

/// A document being assembled.
struct DocState {
    file: String,
    id: String,
    pages: Vec<Option<Result<PageOut, String>>>,
    done: usize,
}

/// Output rows, column by column.
#[derive(Default)]
struct Rows {
    doc_id: Vec<String>,
    file: Vec<String>,
    page: Vec<Option<u32>>,
    pages: Vec<u32>,
    text: Vec<String>,
    method: Vec<String>,
    conf: Vec<Option<f32>>,
    lang: Vec<String>,
    lang_score: Vec<f64>,
    chars: Vec<u32>,
    ocr_reason: Vec<Option<String>>,
    ocr_image: Vec<Option<&'static str>>,
    ocr_dpi: Vec<Option<u32>>,
    ocr_binarized: Vec<Option<bool>>,
}

/// Rejected rows.
#[derive(Default)]
struct Rejects {
    doc_id: Vec<String>,
    file: Vec<String>,
    page: Vec<Option<u32>>,
    reasons: Vec<Vec<String>>,
}

fn docs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("page", DataType::UInt32, true),
        Field::new("pages", DataType::UInt32, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("method", DataType::Utf8, false),
        Field::new("ocr_confidence", DataType::Float32, true),
        Field::new("ocr_reason", DataType::Utf8, true),
        Field::new("ocr_image", DataType::Utf8, true),
        Field::new("ocr_dpi", DataType::UInt32, true),
        Field::new("ocr_binarized", DataType::Boolean, true),
        Field::new("language", DataType::Utf8, false),
        Field::new("language_score", DataType::Float64, false),
        Field::new("chars", DataType::UInt32, false),
    ]))
}

fn rejected_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("page", DataType::UInt32, true),
        docs::reasons_field(),
    ]))
}

/// How a row was read: the columns after `text`, for a page or a whole document.
struct RowMeta {
    method: &'static str,
    confidence: Option<f32>,
    why: Option<String>,
    /// `native`, `upscaled`, `rendered` or (documents) `mixed`.
    image: Option<&'static str>,
    dpi: Option<u32>,
    binarized: Option<bool>,
    language: zest_kernels::langid::Language,
}

impl Rows {
    fn push(
        &mut self,
        id: String,
        file: &str,
        page: Option<u32>,
        pages: u32,
        text: String,
        m: RowMeta,
    ) {
        self.doc_id.push(id);
        self.file.push(file.to_string());
        self.page.push(page);
        self.pages.push(pages);
        self.chars.push(text.chars().count() as u32);
        self.text.push(text);
        self.method.push(m.method.to_string());
        self.conf.push(m.confidence);
        self.ocr_reason.push(m.why);
        self.ocr_image.push(m.image);
        self.ocr_dpi.push(m.dpi);
        self.ocr_binarized.push(m.binarized);
        self.lang.push(m.language.code.to_string());
        self.lang_score.push(m.language.confidence);
    }

    fn batch(&mut self, source: &str) -> Result<RecordBatch> {
        let r = std::mem::take(self);
        let n = r.doc_id.len();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(r.doc_id)),
            Arc::new(StringArray::from(vec![source; n])),
            Arc::new(StringArray::from(r.file)),
            Arc::new(UInt32Array::from(r.page)),
            Arc::new(UInt32Array::from(r.pages)),
            Arc::new(StringArray::from(r.text)),
            Arc::new(StringArray::from(r.method)),
            Arc::new(Float32Array::from(r.conf)),
            Arc::new(StringArray::from(r.ocr_reason)),
            Arc::new(StringArray::from(r.ocr_image)),
            Arc::new(UInt32Array::from(r.ocr_dpi)),
            Arc::new(BooleanArray::from(r.ocr_binarized)),
            Arc::new(StringArray::from(r.lang)),
            Arc::new(Float64Array::from(r.lang_score)),
            Arc::new(UInt32Array::from(r.chars)),
        ];
        Ok(RecordBatch::try_new(docs_schema(), cols)?)
    }
}

impl Rejects {
    fn batch(&mut self, source: &str) -> Result<RecordBatch> {
        let r = std::mem::take(self);
        let n = r.doc_id.len();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(r.doc_id)),
            Arc::new(StringArray::from(vec![source; n])),
            Arc::new(StringArray::from(r.file)),
            Arc::new(UInt32Array::from(r.page)),
            docs::reasons_array(&r.reasons),
        ];
        Ok(RecordBatch::try_new(rejected_schema(), cols)?)
    }
}

/// What a document's row needs of each page read.
struct PageMeta {
    index: usize,
    method: &'static str,
    confidence: Option<f32>,
    why: Option<String>,
    image: Option<OcrImage>,
    language: zest_kernels::langid::Language,
    chars: usize,
}

/// Turns a finished document into rows.
fn emit(c: &PdfConfig, d: DocState, rows: &mut Rows, rejects: &mut Rejects) {
    let n = d.pages.len() as u32;
    let mut pages: Vec<PageLines> = vec![];
    let mut meta: Vec<PageMeta> = vec![];
    for (i, p) in d.pages.into_iter().enumerate() {
        match p {
            Some(Ok(p)) => {
                let chars = p.lines.iter().map(|l| l.text.len()).sum();
                pages.push(PageLines {
                    lines: p.lines,
                    height: p.height,
                });
                meta.push(PageMeta {
                    index: i,
                    method: p.method,
                    confidence: p.confidence,
                    why: p.note,
                    image: p.image,
                    language: p.language,
                    chars,
                });
            }
            Some(Err(e)) => {
                rejects.doc_id.push(format!("{}-p{}", d.id, i + 1));
                rejects.file.push(d.file.clone());
                rejects.page.push(Some(i as u32 + 1));
                rejects.reasons.push(vec![e]);
            }
            None => {}
        }
    }
    if c.remove_headers && pages.len() >= 2 {
        page_text::remove_running_lines(&mut pages);
    }
    let texts: Vec<String> = pages.iter().map(|p| page_text::to_text(&p.lines)).collect();
    match c.granularity {
        Granularity::Page => {
            for (t, m) in texts.into_iter().zip(meta) {
                rows.push(
                    format!("{}-p{}", d.id, m.index + 1),
                    &d.file,
                    Some(m.index as u32 + 1),
                    n,
                    t,
                    RowMeta {
                        method: m.method,
                        confidence: m.confidence,
                        why: m.why,
                        image: m.image.map(|i| i.kind()),
                        dpi: m.image.map(|i| i.dpi),
                        binarized: m.image.map(|i| i.binarized),
                        language: m.language,
                    },
                );
            }
        }
        Granularity::Document => {
            if meta.is_empty() {
                return;
            }
            let ocr: Vec<f32> = meta.iter().filter_map(|m| m.confidence).collect();
            let method = match (ocr.len(), meta.len()) {
                (0, _) => "text",
                (o, m) if o == m => "ocr",
                _ => "mixed",
            };
            let conf = (!ocr.is_empty()).then(|| ocr.iter().sum::<f32>() / ocr.len() as f32);
            let why = meta.iter().find_map(|m| m.why.clone());
            // What OCR read: the kind every OCR'd page agrees on, else mixed; the lowest
            // resolution of the OCR'd pages; whether any was binarised.
            let images: Vec<OcrImage> = meta.iter().filter_map(|m| m.image).collect();
            let image = images.first().map(|first| {
                if images.iter().all(|i| i.kind() == first.kind()) {
                    first.kind()
                } else {
                    "mixed"
                }
            });
            let dpi = images.iter().map(|i| i.dpi).min();
            let binarized = (!images.is_empty()).then(|| images.iter().any(|i| i.binarized));
            // The document's language is that of its longest page.
            let language = meta
                .iter()
                .max_by_key(|m| m.chars)
                .map_or(UNDETERMINED, |m| m.language);
            let text: Vec<String> = texts.into_iter().filter(|t| !t.is_empty()).collect();
            rows.push(
                d.id,
                &d.file,
                None,
                n,
                text.join("\n\n"),
                RowMeta {
                    method,
                    confidence: conf,
                    why,
                    image,
                    dpi,
                    binarized,
                    language,
                },
            );
        }
    }
}

impl Operator for IngestPdf {
    type Config = PdfConfig;
    const NAME: &'static str = "ingest.pdf";
    // 2: scans OCR'd from their own image at its resolution; binarisation where it helps.
    const VERSION: &'static str = "2";
    const DESCRIPTION: &'static str =
        "Reads PDFs (text layer, or Tesseract OCR for scanned pages) into a dataset of pages or documents";

    fn ports(_: Option<&PdfConfig>) -> Ports {
        Ports {
            inputs: vec![],
            outputs: vec![
                PortSpec::new(
                    "docs",
                    PortType::Dataset,
                    "a row per page (or document): doc_id, source, file, page, pages, text, method, ocr_confidence, ocr_reason, ocr_image (native: a scan's own image; upscaled: it enlarged; rendered), ocr_dpi, ocr_binarized, language, language_score, chars",
                )
                .with_columns(&[
                    "doc_id",
                    "source",
                    "file",
                    "page",
                    "pages",
                    "text",
                    "method",
                    "ocr_confidence",
                    "ocr_reason",
                    "ocr_image",
                    "ocr_dpi",
                    "ocr_binarized",
                    "language",
                    "language_score",
                    "chars",
                ]),
                PortSpec::new(
                    "rejected",
                    PortType::Dataset,
                    "files (and pages) that could not be read: doc_id, source, file, page, reasons",
                )
                .with_columns(&["doc_id", "source", "file", "page", "reasons"]),
                docs::report_port(),
            ],
            other_inputs: None,
        }
    }

    fn check(c: &PdfConfig) -> Result<(), String> {
        if c.paths.is_empty() {
            return Err("`paths` is empty: name at least one PDF or glob".into());
        }
        if let Some(l) = c
            .ocr_languages
            .iter()
            .find(|l| l.is_empty() || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(format!(
                "`ocr_languages`: `{l}` is not a Tesseract language name (like eng or chi_sim)"
            ));
        }
        Ok(())
    }

    const READS_FILES: bool = true;

    /// The PDFs, and what turns them into text: the PDFium library that would be loaded and,
    /// unless OCR is off, the Tesseract models of the chosen languages.
    fn external_files(
        c: &PdfConfig,
        rt: &tokio::runtime::Handle,
    ) -> Result<Vec<zest_engine::operator::ExternalFile>> {
        let mut files = rt.block_on(sources::fingerprint(&c.paths))?;
        let lib = super::pdfium::candidates()
            .into_iter()
            .find(|p| p.is_file());
        let mut tools: Vec<std::path::PathBuf> = lib.into_iter().collect();
        if c.ocr != OcrMode::Never {
            let dir = c
                .tessdata
                .clone()
                .or_else(|| std::env::var("TESSDATA_PREFIX").ok())
                .unwrap_or_else(|| "/usr/share/tesseract-ocr/5/tessdata".into());
            for lang in c.ocr_languages.iter().flat_map(|l| l.split('+')) {
                tools.push(std::path::Path::new(&dir).join(format!("{lang}.traineddata")));
            }
        }
        files.extend(sources::fingerprint_present(&tools)?);
        Ok(files)
    }

    fn run(c: &PdfConfig, ctx: &mut OpContext) -> Result<()> {
        let files = ctx.block_on(sources::expand(&c.paths))?;
        let docs_dir = ctx.output_dir("docs")?.to_path_buf();
        let rej_dir = ctx.output_dir("rejected")?.to_path_buf();
        let threads = c.threads.unwrap_or_else(|| ctx.threads()).max(1);
        // Load Tesseract now, before any thread starts, so that the environment it needs is
        // set before other threads run. With `ocr: always` a missing Tesseract fails the node
        // up front; with `auto`, text layers are still read and only the pages that need OCR
        // are rejected, with the reason.
        match c.ocr {
            OcrMode::Never => {}
            OcrMode::Always => {
                let v = tesseract::version().context(
                    "ingest.pdf needs Tesseract for `ocr: always` (`ocr: auto` reads text layers without it)",
                )?;
                eprintln!("ingest.pdf: {} files, {threads} workers, Tesseract {v}", files.len());
            }
            OcrMode::Auto => match tesseract::version() {
                Ok(v) => eprintln!("ingest.pdf: {} files, {threads} workers, Tesseract {v}", files.len()),
                Err(e) => eprintln!(
                    "ingest.pdf: {} files, {threads} workers; pages that need OCR will be rejected: {e:#}",
                    files.len()
                ),
            },
        }
        let rt = ctx.runtime.clone();
        // One PDFium instance per reader thread, no more than there are files.
        let instances = Pdfium::instances(threads.min(files.len()).max(1))?;
        let mut docs_w = dataset::writer(&docs_dir, docs_schema())?;
        let mut rej_w = dataset::writer(&rej_dir, rejected_schema())?;
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads * 2);
        let job_rx = std::sync::Mutex::new(job_rx);
        let next = AtomicUsize::new(0);
        let (n_docs, n_rej, report) =
            std::thread::scope(|s| -> Result<(usize, usize, docs::FilterReport)> {
                let (ev_tx, ev_rx) = mpsc::channel::<Event>();
                let readers: Vec<_> = instances
                    .iter()
                    .map(|&pdfium| {
                        let (ev, jobs) = (ev_tx.clone(), job_tx.clone());
                        let (files, rt, next) = (&files, &rt, &next);
                        s.spawn(move || read_documents(c, files, rt, pdfium, next, jobs, ev))
                    })
                    .collect();
                drop(job_tx);
                for _ in 0..threads {
                    let ev = ev_tx.clone();
                    let rx = &job_rx;
                    s.spawn(move || work(c, rx, ev));
                }
                drop(ev_tx);
                let mut open: BTreeMap<usize, DocState> = BTreeMap::new();
                let mut finished: BTreeMap<usize, Option<DocState>> = BTreeMap::new();
                let mut next = 0usize;
                let (mut rows, mut rejects) = (Rows::default(), Rejects::default());
                let (mut n_rows, mut n_rej, mut n_pages) = (0usize, 0usize, 0usize);
                let mut report = docs::FilterReport::new(IngestPdf::NAME, Some("source".into()));
                let tally = |report: &mut docs::FilterReport, rows: &Rows, rejects: &Rejects| {
                    for id in &rows.doc_id {
                        report.add(Some(&c.source), id, "", &[]);
                    }
                    for ((id, file), reasons) in rejects
                        .doc_id
                        .iter()
                        .zip(&rejects.file)
                        .zip(&rejects.reasons)
                    {
                        report.add(Some(&c.source), id, file, reasons);
                    }
                };
                for ev in ev_rx {
                    match ev {
                        Event::Doc {
                            doc,
                            file,
                            id,
                            pages,
                        } => {
                            open.insert(
                                doc,
                                DocState {
                                    file,
                                    id,
                                    pages: (0..pages).map(|_| None).collect(),
                                    done: 0,
                                },
                            );
                        }
                        Event::Rejected {
                            doc,
                            file,
                            id,
                            reason,
                        } => {
                            eprintln!("ingest.pdf: rejected {file}: {reason}");
                            rejects.doc_id.push(id);
                            rejects.file.push(file);
                            rejects.page.push(None);
                            rejects.reasons.push(vec![reason]);
                            finished.insert(doc, None);
                        }
                        Event::Page { doc, page, out } => {
                            n_pages += 1;
                            let d = open.get_mut(&doc).expect("pages follow their document");
                            d.pages[page] = Some(out);
                            d.done += 1;
                            if d.done == d.pages.len() {
                                let d = open.remove(&doc).expect("open");
                                eprintln!(
                                    "ingest.pdf: {} ({} pages, {} pages read in all)",
                                    d.file,
                                    d.pages.len(),
                                    n_pages
                                );
                                finished.insert(doc, Some(d));
                            }
                        }
                    }
                    // Emit finished documents in file order.
                    while let Some(d) = finished.remove(&next) {
                        if let Some(d) = d {
                            emit(c, d, &mut rows, &mut rejects);
                        }
                        next += 1;
                    }
                    if rows.doc_id.len() >= 256 {
                        tally(&mut report, &rows, &Rejects::default());
                        n_rows += rows.doc_id.len();
                        docs_w.write(&rows.batch(&c.source)?)?;
                    }
                    if rejects.doc_id.len() >= 256 {
                        tally(&mut report, &Rows::default(), &rejects);
                        n_rej += rejects.doc_id.len();
                        rej_w.write(&rejects.batch(&c.source)?)?;
                    }
                }
                for r in readers {
                    r.join()
                        .map_err(|_| anyhow::anyhow!("a PDF reader thread panicked"))??;
                }
                // Documents whose pages all failed to load still close here.
                for (_, d) in std::mem::take(&mut open) {
                    emit(c, d, &mut rows, &mut rejects);
                }
                tally(&mut report, &rows, &rejects);
                n_rows += rows.doc_id.len();
                n_rej += rejects.doc_id.len();
                docs_w.write(&rows.batch(&c.source)?)?;
                rej_w.write(&rejects.batch(&c.source)?)?;
                Ok((n_rows, n_rej, report))
            })?;
        docs_w.close()?;
        rej_w.close()?;
        eprintln!("ingest.pdf: {n_docs} rows, {n_rej} rejected");
        ctx.set_output_meta("docs", dataset::meta(&docs_schema(), n_docs));
        ctx.set_output_meta("rejected", dataset::meta(&rejected_schema(), n_rej));
        docs::write_report(ctx, &report)
    }
}
