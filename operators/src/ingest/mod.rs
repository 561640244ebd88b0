//! Ingest operators: documents from files into datasets with `doc_id`, `source` and `text`.
//!
//! - `ingest.pdf` ([`pdf`]): text layers through PDFium ([`pdfium`]), OCR of scanned pages
//!   through Tesseract ([`tesseract`]).
//! - `ingest.html` ([`html`]): main text of web pages, from HTML files and WARC crawls.

pub mod html;
pub mod pdf;
pub mod pdfium;
pub mod tesseract;
