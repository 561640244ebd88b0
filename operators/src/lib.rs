//! zest-operators: every operator, one module per family.
//!
//! - [`core`]: `noop` and `shell`, the building blocks for tests, benchmarks and glue.
//! - [`data`]: `data.load` and `data.sql` over Parquet datasets with DataFusion.
//! - [`ingest`]: `ingest.pdf` (text layers and OCR), `ingest.html` (web pages and WARCs).
//! - [`clean`]: `clean.dedup` (exact and MinHash-LSH near-duplicate removal), `clean.quality`
//!   (Gopher, C4 and FineWeb quality filters, language allow list, PII scrubbing).
//!   Also `clean.entities` (lexicon-based medical entity recognition, English and Chinese) and
//!   `clean.relations` (typed relations between entities of a sentence, from cue patterns),
//!   `clean.classify` (a fastText-style classifier: train, apply, and a medical-domain score).
//! - [`augment`]: `augment.textbook` (cloze, QA and rewrite samples from annotated textbooks).
#![warn(missing_docs)]

pub mod augment;
pub mod clean;
pub mod core;
pub mod data;
pub mod ingest;

use zest_engine::operator::Registry;

/// A registry with every operator zest ships.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register::<core::noop::Noop>()
        .register::<core::shell::Shell>()
        .register::<data::load::Load>()
        .register::<data::sql::Sql>()
        .register::<ingest::pdf::IngestPdf>()
        .register::<ingest::html::Html>()
        .register::<clean::dedup::Dedup>()
        .register::<clean::classify::Classify>()
        .register::<clean::quality::Quality>()
        .register::<clean::entities::Entities>()
        .register::<clean::relations::Relations>()
        .register::<augment::textbook::Textbook>();
    r
}
