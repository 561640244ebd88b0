//! `clean.quality`: heuristic quality filtering of documents, with language identification
//! and personal-data scrubbing. Kept rows go to `docs`, dropped rows to `rejected` with every
//! reason in `reasons`.
//!
//! Per document, in this order:
//!
//! 1. **Language** (`zest_kernels::langid`): columns `language` and `language_score`; a
//!    language outside `languages` (when that list is not empty) is the reason
//!    `language:<code>`.
//! 2. **Personal data** (`zest_kernels::pii`): with `pii: scrub` every match in the text is
//!    replaced by a tag such as `<EMAIL>`; with `pii: drop` a document with any is dropped
//!    with `pii:<type>` per type found. Both add `pii_count` and `pii_types`.
//! 3. **Quality** (`zest_kernels::quality`), on the (scrubbed) text: the Gopher repetition
//!    and Gopher quality filters, then C4 (which removes lines: kept rows carry the shortened
//!    text), then FineWeb on what C4 left. Reason names are datatrove's (`gopher_short_doc`,
//!    `dup_line_frac`, `top_2_gram`, …; `c4:` and `fineweb:` prefixed for those filters).
//!    Documents identified as Chinese (`zh`) get only the duplicate line, paragraph and
//!    repeated n-gram rules of the Gopher repetition filter, on jieba words: the other rules'
//!    thresholds assume space-separated words (see `zest_kernels::quality`).
//!
//! Thresholds come from a `preset` by kind of text (`web`, `literature`, `textbook`; see
//! `zest_kernels::quality::Preset`), changed field by field by what the DAG writes.
//!
//! The text column of both outputs holds the text after steps 2 and 3. `report` counts what
//! was dropped per source and rule, with examples (`crate::data::filter_report`). Record
//! batches are streamed; the documents of a batch are spread over the node's threads
//! (`resources.cpu`, or every core).
//!
//! With `shards: N` the node runs as N instances over contiguous ranges of its rows and a
//! merge that concatenates them (`docs::row_sharding`); the outputs are byte-identical to an
//! unsharded run's.

use crate::data::docs::{self, column, strings, ReportColumns, SplitWriter};
use crate::data::overrides::Overrides;
use anyhow::{Context, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, ListBuilder, StringArray, StringBuilder, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports, Sharding};
use zest_kernels::quality::{c4, encoding, fineweb, gopher, Filters, Preset};
use zest_kernels::{langid, pii, quality};

fn yes() -> bool {
    true
}
fn en_zh() -> Vec<String> {
    vec!["en".into(), "zh".into()]
}

/// What to do with personal data (e-mail addresses, phone numbers, IP addresses, national
/// ID and medical record numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum PiiMode {
    /// Replace each match by its tag (`<EMAIL>`, `<PHONE>`, `<IP>`, `<ID>`, `<MRN>`).
    #[default]
    Scrub,
    /// Drop documents containing any, with reason `pii:<type>`.
    Drop,
    /// Leave the text alone; no `pii_count` / `pii_types` columns.
    Off,
}

/// Config of `clean.quality`. Each filter's thresholds start from the `preset` and are
/// changed field by field by what the DAG writes under the filter's name (the defaults shown
/// for them are the `web` preset's).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// The column holding the text (rewritten when PII is scrubbed or C4 removes lines).
    #[serde(default = "docs::text_column")]
    pub text_column: String,
    /// The column identifying a document (must exist; passed through).
    #[serde(default = "docs::id_column")]
    pub id_column: String,
    /// The column the report breaks counts down by, when the input has it.
    #[serde(default = "docs::source_column")]
    pub source_column: String,
    /// Languages to keep (ISO 639-1 codes such as `en`, `zh`); empty keeps every language.
    #[serde(default = "en_zh")]
    pub languages: Vec<String>,
    /// Personal data: `scrub` (default), `drop` or `off`.
    #[serde(default)]
    pub pii: PiiMode,
    /// The kind of text, which sets every threshold: `web` (datatrove's defaults),
    /// `literature` (papers, abstracts, guidelines) or `textbook`.
    #[serde(default)]
    pub preset: Preset,
    /// Presets by value of `source_column`, for inputs mixing kinds of text (e.g.
    /// `{textbook: textbook, guideline: literature}`); other sources use `preset`. The
    /// threshold changes written below apply to every preset.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub source_presets: std::collections::BTreeMap<String, Preset>,
    /// The Gopher quality filter: thresholds changed from the preset's.
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub gopher_quality: Overrides<gopher::GopherQuality>,
    /// The Gopher repetition filter: thresholds changed from the preset's.
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub gopher_repetition: Overrides<gopher::GopherRepetition>,
    /// The C4 filter: settings changed from the preset's.
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub c4: Overrides<c4::C4>,
    /// The FineWeb filter: thresholds changed from the preset's.
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub fineweb: Overrides<fineweb::FineWeb>,
    /// The encoding (mojibake) filter: thresholds changed from the preset's.
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub encoding: Overrides<encoding::Encoding>,
    /// Run the quality filters at all (language and PII handling still apply).
    #[serde(default = "yes")]
    pub filters: bool,
}

impl QualityConfig {
    /// The filters to run on documents of the default `preset`.
    pub fn resolved_filters(&self) -> Result<Filters, String> {
        self.filters_for(self.preset)
    }

    /// The filters to run with `preset`: its thresholds, with the written ones applied.
    pub fn filters_for(&self, preset: Preset) -> Result<Filters, String> {
        if !self.filters {
            return Ok(Filters::none());
        }
        let p = preset.filters();
        let field = |name: &str, e: String| format!("`{name}`: {e}");
        Ok(Filters {
            gopher_quality: self
                .gopher_quality
                .apply(p.gopher_quality)
                .map_err(|e| field("gopher_quality", e))?,
            gopher_repetition: self
                .gopher_repetition
                .apply(p.gopher_repetition)
                .map_err(|e| field("gopher_repetition", e))?,
            c4: self.c4.apply(p.c4).map_err(|e| field("c4", e))?,
            fineweb: self
                .fineweb
                .apply(p.fineweb)
                .map_err(|e| field("fineweb", e))?,
            encoding: self
                .encoding
                .apply(p.encoding)
                .map_err(|e| field("encoding", e))?,
        })
    }
}

/// What was decided about one document.
struct Outcome {
    language: &'static str,
    score: f64,
    pii: Vec<&'static str>,
    text: Option<String>,
    reasons: Vec<String>,
}

fn assess_one(c: &QualityConfig, filters: &Filters, text: &str) -> Outcome {
    let lang = langid::detect(text);
    let mut reasons = Vec::new();
    if !c.languages.is_empty() && !c.languages.iter().any(|l| l == lang.code) {
        reasons.push(format!("language:{}", lang.code));
    }
    let mut current: Option<String> = None;
    let mut kinds: Vec<&'static str> = Vec::new();
    match c.pii {
        PiiMode::Off => {}
        PiiMode::Scrub => {
            let (scrubbed, found) = pii::scrub(text);
            kinds = found.iter().map(|(k, _)| k.name()).collect();
            if !found.is_empty() {
                current = Some(scrubbed);
            }
        }
        PiiMode::Drop => {
            kinds = pii::find(text).iter().map(|(k, _)| k.name()).collect();
            let mut distinct = kinds.clone();
            distinct.sort_unstable();
            distinct.dedup();
            reasons.extend(distinct.iter().map(|k| format!("pii:{k}")));
        }
    }
    let t = current.as_deref().unwrap_or(text);
    let a = quality::assess(filters, t, lang.code == "zh");
    reasons.extend(a.reasons);
    if a.text.is_some() {
        current = a.text;
    }
    Outcome {
        language: lang.code,
        score: lang.confidence,
        pii: kinds,
        text: current,
        reasons,
    }
}

/// The `clean.quality` operator.
pub struct Quality;

impl Operator for Quality {
    type Config = QualityConfig;
    const NAME: &'static str = "clean.quality";
    const VERSION: &'static str = "2";
    const DESCRIPTION: &'static str =
        "Heuristic quality filters (Gopher, C4, FineWeb), language allow list and PII scrubbing";

    fn ports(_: Option<&QualityConfig>) -> Ports {
        Ports {
            inputs: vec![PortSpec::new("docs", PortType::Dataset, "the documents")],
            outputs: vec![
                PortSpec::new(
                    "docs",
                    PortType::Dataset,
                    "kept documents, with language, language_score (and pii_count, pii_types)",
                ),
                PortSpec::new(
                    "rejected",
                    PortType::Dataset,
                    "dropped documents, with the same columns and every reason in `reasons`",
                ),
                docs::report_port(),
            ],
            other_inputs: None,
        }
    }

    fn check(c: &QualityConfig) -> Result<(), String> {
        for p in c.source_presets.values() {
            c.filters_for(*p)?;
        }
        let f = c.resolved_filters()?;
        let q = &f.gopher_quality;
        if let (Some(a), Some(b)) = (q.min_doc_words, q.max_doc_words) {
            if a > b {
                return Err(format!(
                    "`gopher_quality.min_doc_words` ({a}) exceeds `max_doc_words` ({b})"
                ));
            }
        }
        if let (Some(a), Some(b)) = (q.min_avg_word_length, q.max_avg_word_length) {
            if a > b {
                return Err(format!(
                    "`gopher_quality.min_avg_word_length` ({a}) exceeds `max_avg_word_length` ({b})"
                ));
            }
        }
        for l in &c.languages {
            if l.is_empty() || !l.chars().all(|ch| ch.is_ascii_lowercase()) {
                return Err(format!(
                    "`languages`: `{l}` is not a language code (lower-case ISO 639, e.g. `en`)"
                ));
            }
        }
        if c.text_column == c.id_column {
            return Err("`text_column` and `id_column` name the same column".into());
        }
        Ok(())
    }

    fn sharding(_: &QualityConfig) -> Option<Sharding> {
        Some(docs::row_sharding())
    }

    fn run(c: &QualityConfig, ctx: &mut OpContext) -> Result<()> {
        if docs::is_merge(ctx) {
            return docs::merge_row_parts(ctx);
        }
        let docs_dir = docs::out_dir(ctx, "docs")?;
        let rej_dir = docs::out_dir(ctx, "rejected")?;
        let filters = c.resolved_filters().map_err(anyhow::Error::msg)?;
        let by_source: Vec<(String, Filters)> = c
            .source_presets
            .iter()
            .map(|(s, p)| Ok((s.clone(), c.filters_for(*p)?)))
            .collect::<Result<_, String>>()
            .map_err(anyhow::Error::msg)?;
        let threads = ctx.threads();
        let writer = ctx.block_on(async {
            let (schema, mut stream, first_row) = docs::open_shard(ctx, "docs").await?;
            docs::require_columns(
                &schema,
                "docs",
                &[("text_column", &c.text_column), ("id_column", &c.id_column)],
            )?;
            if !c.source_presets.is_empty() {
                // `source_presets` chooses by this column: without it, it would silently apply
                // `preset` to everything.
                docs::require_columns(&schema, "docs", &[("source_column", &c.source_column)])?;
            }
            let text_idx = schema.index_of(&c.text_column)?;
            // The text column is rewritten as Utf8.
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields[text_idx] = Field::new(&c.text_column, DataType::Utf8, true);
            let out_schema = Arc::new(Schema::new(fields));
            let mut added = vec![
                Field::new("language", DataType::Utf8, false),
                Field::new("language_score", DataType::Float64, false),
            ];
            if c.pii != PiiMode::Off {
                added.push(Field::new("pii_count", DataType::UInt32, false));
                added.push(Field::new(
                    "pii_types",
                    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, false))),
                    false,
                ));
            }
            let mut w = SplitWriter::new(&out_schema, added, &docs_dir, Some(&rej_dir))?
                .with_report(
                    Self::NAME,
                    ReportColumns::new(&c.id_column, &c.text_column, &c.source_column),
                )
                .starting_at(first_row);
            let mut seen = 0usize;
            let started = std::time::Instant::now();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let col = strings(column(&batch, &c.text_column)?, &c.text_column)
                    .with_context(|| format!("input `docs`, `text_column` `{}`", c.text_column))?;
                let n = col.len();
                let sources = match (by_source.is_empty(), batch.schema().index_of(&c.source_column)) {
                    (false, Ok(i)) => Some(strings(batch.column(i), &c.source_column)?),
                    _ => None,
                };
                let filters_of = |i: usize| -> &Filters {
                    let Some(s) = sources.as_ref().filter(|s| !s.is_null(i)) else {
                        return &filters;
                    };
                    let v = s.value(i);
                    by_source
                        .iter()
                        .find(|(k, _)| k == v)
                        .map_or(&filters, |(_, f)| f)
                };
                let outcomes: Vec<Outcome> = docs::par_map_range(threads, n, |i| {
                    let t = if col.is_null(i) { "" } else { col.value(i) };
                    assess_one(c, filters_of(i), t)
                });
                let new_text: StringArray = (0..n)
                    .map(|i| match &outcomes[i].text {
                        Some(t) => Some(t.as_str()),
                        None => (!col.is_null(i)).then(|| col.value(i)),
                    })
                    .collect();
                let mut cols = batch.columns().to_vec();
                cols[text_idx] = Arc::new(new_text);
                let batch = RecordBatch::try_new(out_schema.clone(), cols)?;
                let mut new_cols: Vec<ArrayRef> = vec![
                    Arc::new(StringArray::from_iter_values(
                        outcomes.iter().map(|o| o.language),
                    )),
                    Arc::new(Float64Array::from_iter_values(
                        outcomes.iter().map(|o| o.score),
                    )),
                ];
                if c.pii != PiiMode::Off {
                    new_cols.push(Arc::new(UInt32Array::from_iter_values(
                        outcomes.iter().map(|o| o.pii.len() as u32),
                    )));
                    let mut b = ListBuilder::new(StringBuilder::new())
                        .with_field(Arc::new(Field::new_list_field(DataType::Utf8, false)));
                    for o in &outcomes {
                        let mut kinds = o.pii.clone();
                        kinds.sort_unstable();
                        kinds.dedup();
                        for k in kinds {
                            b.values().append_value(k);
                        }
                        b.append(true);
                    }
                    new_cols.push(Arc::new(b.finish()));
                }
                let reasons: Vec<Vec<String>> = outcomes.into_iter().map(|o| o.reasons).collect();
                w.write(&batch, new_cols, &reasons)?;
                seen += n;
                let (k, r) = w.counts();
                eprintln!(
                    "clean.quality: {seen} documents ({:.0}/s on {threads} threads), kept {k}, rejected {r}",
                    seen as f64 / started.elapsed().as_secs_f64().max(1e-9)
                );
            }
            Ok::<_, anyhow::Error>(w)
        })?;
        writer.finish(ctx, "docs", "rejected")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: serde_json::Value) -> QualityConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn presets_and_overrides() {
        let c = config(serde_json::json!({}));
        assert_eq!(c.resolved_filters().unwrap(), Filters::default());
        assert_eq!(c.languages, ["en", "zh"]);
        let c = config(
            serde_json::json!({"c4": {"enabled": false}, "gopher_quality": {"min_doc_words": null}}),
        );
        let f = c.resolved_filters().unwrap();
        assert!(!f.c4.enabled);
        assert_eq!(f.gopher_quality.min_doc_words, None);
        assert_eq!(f.gopher_quality.max_doc_words, Some(100_000));
        assert!(
            serde_json::from_value::<QualityConfig>(serde_json::json!({"gopher": {}})).is_err()
        );
        assert!(serde_json::from_value::<QualityConfig>(
            serde_json::json!({"c4": {"min_num_sentence": 3}})
        )
        .is_err());
        // A written threshold changes the preset's and leaves the rest of it alone.
        let c = config(serde_json::json!({"preset": "literature", "c4": {"min_num_sentences": 4}}));
        let f = c.resolved_filters().unwrap();
        let lit = Preset::Literature.filters();
        assert_eq!(f.c4.min_num_sentences, Some(4));
        assert_eq!(f.c4.filter_curly_bracket, lit.c4.filter_curly_bracket);
        assert_eq!(f.gopher_quality, lit.gopher_quality);
        assert!(f.encoding.enabled);
        let f = config(serde_json::json!({"filters": false}))
            .resolved_filters()
            .unwrap();
        assert_eq!(f, Filters::none());
    }

    #[test]
    fn cross_field_checks() {
        let c = config(
            serde_json::json!({"gopher_quality": {"min_doc_words": 10, "max_doc_words": 5}}),
        );
        assert!(Quality::check(&c).unwrap_err().contains("min_doc_words"));
        let c = config(serde_json::json!({"languages": ["EN"]}));
        assert!(Quality::check(&c).unwrap_err().contains("languages"));
    }

    #[test]
    fn one_document_through_every_step() {
        let c = config(serde_json::json!({}));
        let f = c.resolved_filters().unwrap();
        let o = assess_one(
            &c,
            &f,
            "Schreiben Sie an max@example.de für weitere Informationen.",
        );
        assert_eq!(o.language, "de");
        assert!(
            o.reasons.contains(&"language:de".to_string()),
            "{:?}",
            o.reasons
        );
        assert!(o.reasons.contains(&"gopher_short_doc".to_string()));
        assert_eq!(o.pii, ["email"]);
        assert!(o.text.unwrap().contains("<EMAIL>"));
        let c = config(serde_json::json!({"pii": "drop", "filters": false, "languages": []}));
        let o = assess_one(
            &c,
            &c.resolved_filters().unwrap(),
            "Call 415-555-0132 or mail a@b.org.",
        );
        assert_eq!(o.reasons, ["pii:email", "pii:phone"]);
        assert!(o.text.is_none());
    }
}
