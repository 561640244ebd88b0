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
//! The text column of both outputs holds the text after steps 2 and 3. Record batches are
//! streamed; the documents of a batch are processed on every core.

use crate::data::docs::{self, column, strings, SplitWriter};
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
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports};
use zest_kernels::quality::{c4, fineweb, gopher, Filters};
use zest_kernels::{langid, pii, quality};

fn text() -> String {
    "text".into()
}
fn doc_id() -> String {
    "doc_id".into()
}
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

/// The Gopher quality filter (datatrove's `GopherQualityFilter` defaults). `null` turns a
/// single rule off.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GopherQualityConfig {
    /// Run this filter.
    pub enabled: bool,
    /// Fewest words that are not only punctuation (`gopher_short_doc`).
    pub min_doc_words: Option<usize>,
    /// Most words that are not only punctuation (`gopher_long_doc`).
    pub max_doc_words: Option<usize>,
    /// Least mean word length, in characters (`gopher_below_avg_threshold`).
    #[schemars(range(min = 0.0))]
    pub min_avg_word_length: Option<f64>,
    /// Greatest mean word length (`gopher_above_avg_threshold`).
    #[schemars(range(min = 0.0))]
    pub max_avg_word_length: Option<f64>,
    /// Greatest ratio of `#`, and of ellipses, to words (`gopher_too_many_hashes`,
    /// `gopher_too_many_ellipsis`).
    #[schemars(range(min = 0.0))]
    pub max_symbol_word_ratio: Option<f64>,
    /// Greatest fraction of lines starting with `•` or `-` (`gopher_too_many_bullets`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_bullet_lines_ratio: Option<f64>,
    /// Greatest fraction of lines ending in an ellipsis (`gopher_too_many_end_ellipsis`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_ellipsis_lines_ratio: Option<f64>,
    /// Least fraction of words containing a letter (`gopher_below_alpha_threshold`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_non_alpha_words_ratio: Option<f64>,
    /// Fewest distinct stop words present (`gopher_enough_stop_words`).
    pub min_stop_words: Option<usize>,
    /// The stop words (case-sensitive).
    pub stop_words: Vec<String>,
}

impl Default for GopherQualityConfig {
    fn default() -> Self {
        let d = gopher::GopherQuality::default();
        GopherQualityConfig {
            enabled: true,
            min_doc_words: d.min_doc_words,
            max_doc_words: d.max_doc_words,
            min_avg_word_length: d.min_avg_word_length,
            max_avg_word_length: d.max_avg_word_length,
            max_symbol_word_ratio: d.max_symbol_word_ratio,
            max_bullet_lines_ratio: d.max_bullet_lines_ratio,
            max_ellipsis_lines_ratio: d.max_ellipsis_lines_ratio,
            max_non_alpha_words_ratio: d.max_non_alpha_words_ratio,
            min_stop_words: d.min_stop_words,
            stop_words: d.stop_words,
        }
    }
}

/// An n-gram size and the greatest fraction of the text's characters it may cover.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NGramLimit {
    /// Words per n-gram.
    #[schemars(range(min = 1))]
    pub n: usize,
    /// Greatest fraction of characters.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_frac: f64,
}

/// The Gopher repetition filter (datatrove's `GopherRepetitionFilter` defaults). `null`
/// turns a single rule off.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GopherRepetitionConfig {
    /// Run this filter.
    pub enabled: bool,
    /// Greatest fraction of lines repeating an earlier line (`dup_line_frac`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub dup_line_frac: Option<f64>,
    /// Greatest fraction of paragraphs repeating an earlier one (`dup_para_frac`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub dup_para_frac: Option<f64>,
    /// Greatest fraction of characters in repeated lines (`dup_line_char_frac`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub dup_line_char_frac: Option<f64>,
    /// Greatest fraction of characters in repeated paragraphs (`dup_para_char_frac`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub dup_para_char_frac: Option<f64>,
    /// Limits on the most frequent n-gram (`top_{n}_gram`).
    pub top_n_grams: Vec<NGramLimit>,
    /// Limits on repeated n-grams (`duplicated_{n}_n_grams`).
    pub dup_n_grams: Vec<NGramLimit>,
}

impl Default for GopherRepetitionConfig {
    fn default() -> Self {
        let d = gopher::GopherRepetition::default();
        let lim = |v: Vec<(usize, f64)>| {
            v.into_iter()
                .map(|(n, max_frac)| NGramLimit { n, max_frac })
                .collect()
        };
        GopherRepetitionConfig {
            enabled: true,
            dup_line_frac: d.dup_line_frac,
            dup_para_frac: d.dup_para_frac,
            dup_line_char_frac: d.dup_line_char_frac,
            dup_para_char_frac: d.dup_para_char_frac,
            top_n_grams: lim(d.top_n_grams),
            dup_n_grams: lim(d.dup_n_grams),
        }
    }
}

/// The C4 filter (datatrove's `C4QualityFilter` defaults, lines split at newlines). It
/// removes lines; `null` turns a single rule off.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct C4Config {
    /// Run this filter.
    pub enabled: bool,
    /// Remove citation marks such as `[1]` and `[edit]`.
    pub remove_citations: bool,
    /// Remove lines not ending in `.`, `?`, `!`, `"` or `'`.
    pub filter_no_terminal_punct: bool,
    /// Fewest sentences left (`c4:too_few_sentences`).
    pub min_num_sentences: Option<usize>,
    /// Remove lines with fewer words.
    pub min_words_per_line: Option<usize>,
    /// Remove lines with a longer word (characters).
    #[schemars(range(min = 1))]
    pub max_word_length: Option<usize>,
    /// Drop documents containing "lorem ipsum" (`c4:lorem_ipsum`).
    pub filter_lorem_ipsum: bool,
    /// Remove lines mentioning "javascript".
    pub filter_javascript: bool,
    /// Drop documents containing `{` (`c4:curly_bracket`).
    pub filter_curly_bracket: bool,
    /// Remove lines about cookies, terms of use and privacy policies.
    pub filter_policy: bool,
}

impl Default for C4Config {
    fn default() -> Self {
        let d = c4::C4::default();
        C4Config {
            enabled: true,
            remove_citations: d.remove_citations,
            filter_no_terminal_punct: d.filter_no_terminal_punct,
            min_num_sentences: d.min_num_sentences,
            min_words_per_line: d.min_words_per_line,
            max_word_length: d.max_word_length,
            filter_lorem_ipsum: d.filter_lorem_ipsum,
            filter_javascript: d.filter_javascript,
            filter_curly_bracket: d.filter_curly_bracket,
            filter_policy: d.filter_policy,
        }
    }
}

/// The FineWeb filter (datatrove's `FineWebQualityFilter` defaults).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FineWebConfig {
    /// Run this filter.
    pub enabled: bool,
    /// Least fraction of lines ending in sentence-final punctuation
    /// (`fineweb:line_punct_ratio`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub line_punct_thr: f64,
    /// Exempt documents where no line ends in punctuation from `line_punct_thr`.
    pub line_punct_exclude_zero: bool,
    /// Greatest fraction of short lines (`fineweb:short_line_ratio`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub short_line_thr: f64,
    /// What a short line is, in characters.
    pub short_line_length: usize,
    /// Greatest fraction of characters in repeated lines (`fineweb:char_dup_ratio`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub char_duplicates_ratio: f64,
    /// Greatest number of newlines per word (`fineweb:list_ratio`).
    #[schemars(range(min = 0.0))]
    pub new_line_ratio: f64,
}

impl Default for FineWebConfig {
    fn default() -> Self {
        let d = fineweb::FineWeb::default();
        FineWebConfig {
            enabled: true,
            line_punct_thr: d.line_punct_thr,
            line_punct_exclude_zero: d.line_punct_exclude_zero,
            short_line_thr: d.short_line_thr,
            short_line_length: d.short_line_length,
            char_duplicates_ratio: d.char_duplicates_ratio,
            new_line_ratio: d.new_line_ratio,
        }
    }
}

/// Config of `clean.quality`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// The column holding the text (rewritten when PII is scrubbed or C4 removes lines).
    #[serde(default = "text")]
    pub text_column: String,
    /// The column identifying a document (must exist; passed through).
    #[serde(default = "doc_id")]
    pub id_column: String,
    /// Languages to keep (ISO 639-1 codes such as `en`, `zh`); empty keeps every language.
    #[serde(default = "en_zh")]
    pub languages: Vec<String>,
    /// Personal data: `scrub` (default), `drop` or `off`.
    #[serde(default)]
    pub pii: PiiMode,
    /// The Gopher quality filter.
    #[serde(default)]
    pub gopher_quality: GopherQualityConfig,
    /// The Gopher repetition filter.
    #[serde(default)]
    pub gopher_repetition: GopherRepetitionConfig,
    /// The C4 filter.
    #[serde(default)]
    pub c4: C4Config,
    /// The FineWeb filter.
    #[serde(default)]
    pub fineweb: FineWebConfig,
    /// Run the quality filters at all (language and PII handling still apply).
    #[serde(default = "yes")]
    pub filters: bool,
}

impl QualityConfig {
    fn kernel_filters(&self) -> Filters {
        let q = &self.gopher_quality;
        let r = &self.gopher_repetition;
        let c = &self.c4;
        let f = &self.fineweb;
        let pairs = |v: &[NGramLimit]| v.iter().map(|l| (l.n, l.max_frac)).collect();
        Filters {
            gopher_quality: (self.filters && q.enabled).then(|| gopher::GopherQuality {
                min_doc_words: q.min_doc_words,
                max_doc_words: q.max_doc_words,
                min_avg_word_length: q.min_avg_word_length,
                max_avg_word_length: q.max_avg_word_length,
                max_symbol_word_ratio: q.max_symbol_word_ratio,
                max_bullet_lines_ratio: q.max_bullet_lines_ratio,
                max_ellipsis_lines_ratio: q.max_ellipsis_lines_ratio,
                max_non_alpha_words_ratio: q.max_non_alpha_words_ratio,
                min_stop_words: q.min_stop_words,
                stop_words: q.stop_words.clone(),
            }),
            gopher_repetition: (self.filters && r.enabled).then(|| gopher::GopherRepetition {
                dup_line_frac: r.dup_line_frac,
                dup_para_frac: r.dup_para_frac,
                dup_line_char_frac: r.dup_line_char_frac,
                dup_para_char_frac: r.dup_para_char_frac,
                top_n_grams: pairs(&r.top_n_grams),
                dup_n_grams: pairs(&r.dup_n_grams),
            }),
            c4: (self.filters && c.enabled).then_some(c4::C4 {
                remove_citations: c.remove_citations,
                filter_no_terminal_punct: c.filter_no_terminal_punct,
                min_num_sentences: c.min_num_sentences,
                min_words_per_line: c.min_words_per_line,
                max_word_length: c.max_word_length,
                filter_lorem_ipsum: c.filter_lorem_ipsum,
                filter_javascript: c.filter_javascript,
                filter_curly_bracket: c.filter_curly_bracket,
                filter_policy: c.filter_policy,
            }),
            fineweb: (self.filters && f.enabled).then_some(fineweb::FineWeb {
                line_punct_thr: f.line_punct_thr,
                line_punct_exclude_zero: f.line_punct_exclude_zero,
                short_line_thr: f.short_line_thr,
                short_line_length: f.short_line_length,
                char_duplicates_ratio: f.char_duplicates_ratio,
                new_line_ratio: f.new_line_ratio,
            }),
        }
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
    const VERSION: &'static str = "1";
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
            ],
            other_inputs: None,
        }
    }

    fn check(c: &QualityConfig) -> Result<(), String> {
        let q = &c.gopher_quality;
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

    fn run(c: &QualityConfig, ctx: &mut OpContext) -> Result<()> {
        let docs_dir = ctx.output_dir("docs")?.to_path_buf();
        let rej_dir = ctx.output_dir("rejected")?.to_path_buf();
        let filters = c.kernel_filters();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let writer = ctx.block_on(async {
            let (schema, mut stream) = docs::open(ctx, "docs").await?;
            let text_idx = schema.index_of(&c.text_column).map_err(|_| {
                anyhow::anyhow!(
                    "input `docs` has no column `{}` (`text_column`; columns: {})",
                    c.text_column,
                    names(&schema)
                )
            })?;
            if schema.index_of(&c.id_column).is_err() {
                anyhow::bail!(
                    "input `docs` has no column `{}` (`id_column`; columns: {})",
                    c.id_column,
                    names(&schema)
                );
            }
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
            let mut w = SplitWriter::new(&out_schema, added, &docs_dir, Some(&rej_dir))?;
            let mut seen = 0usize;
            let started = std::time::Instant::now();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let col = strings(column(&batch, &c.text_column)?, &c.text_column)
                    .with_context(|| format!("input `docs`, `text_column` `{}`", c.text_column))?;
                let n = col.len();
                let chunk = n.div_ceil(threads).max(1);
                let mut outcomes: Vec<Outcome> = Vec::with_capacity(n);
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..n)
                        .step_by(chunk)
                        .map(|lo| {
                            let col = &col;
                            let filters = &filters;
                            s.spawn(move || {
                                (lo..(lo + chunk).min(n))
                                    .map(|i| {
                                        let t = if col.is_null(i) { "" } else { col.value(i) };
                                        assess_one(c, filters, t)
                                    })
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    for h in handles {
                        outcomes.extend(h.join().expect("quality worker panicked"));
                    }
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
                    "clean.quality: {seen} documents ({:.0}/s), kept {k}, rejected {r}",
                    seen as f64 / started.elapsed().as_secs_f64().max(1e-9)
                );
            }
            Ok::<_, anyhow::Error>(w)
        })?;
        let (k, r) = writer.counts();
        eprintln!("clean.quality: kept {k} documents, rejected {r}");
        writer.finish(ctx, "docs", "rejected")
    }
}

fn names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: serde_json::Value) -> QualityConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_and_turning_filters_off() {
        let c = config(serde_json::json!({}));
        let f = c.kernel_filters();
        assert_eq!(f.gopher_quality, Some(gopher::GopherQuality::default()));
        assert_eq!(
            f.gopher_repetition,
            Some(gopher::GopherRepetition::default())
        );
        assert_eq!(f.c4, Some(c4::C4::default()));
        assert_eq!(f.fineweb, Some(fineweb::FineWeb::default()));
        assert_eq!(c.languages, ["en", "zh"]);
        let c = config(
            serde_json::json!({"c4": {"enabled": false}, "gopher_quality": {"min_doc_words": null}}),
        );
        let f = c.kernel_filters();
        assert!(f.c4.is_none());
        assert_eq!(f.gopher_quality.unwrap().min_doc_words, None);
        assert!(
            serde_json::from_value::<QualityConfig>(serde_json::json!({"gopher": {}})).is_err()
        );
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
        let f = c.kernel_filters();
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
            &c.kernel_filters(),
            "Call 415-555-0132 or mail a@b.org.",
        );
        assert_eq!(o.reasons, ["pii:email", "pii:phone"]);
        assert!(o.text.is_none());
    }
}
