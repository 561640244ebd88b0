//! `clean.entities`: dictionary-based medical entity recognition (see
//! [`zest_kernels::entities`]). Every input row goes to `docs` with three new columns:
//!
//! - `entities`: `List<Struct{start: UInt32, end: UInt32, text: Utf8, type: Utf8, term: Utf8,
//!   code: Utf8 (nullable)}>`, character offsets `[start, end)` into the text, `text` as it
//!   appears, `term` the canonical term;
//! - `entity_count`: `UInt32`;
//! - `entity_density`: `Float64`, the fraction of the non-whitespace characters inside a
//!   mention.
//!
//! With `min_density` set, documents below it go to `rejected` instead, with the reason
//! `entity_density<…>`. The lexicon is the embedded default (`operators/data/lexicon/
//! medical.tsv`) unless a dataset is connected to the `lexicon` port: columns `term`, `type`,
//! and optionally `code` and `synonyms` (a list of strings or a `|`-separated string).
//!
//! The input is streamed record batch by record batch; the documents of a batch are split
//! among all cores.
//!
//! `shards: N` runs it over N contiguous ranges of rows and merges them into the same outputs
//! as an unsharded run (`docs::row_sharding`).

use crate::data::docs::{self, column, strings, texts, ReportColumns, SplitWriter};
use anyhow::{anyhow, bail, Context, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, ListArray, StringArray, StructArray, UInt32Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports, Sharding};
use zest_kernels::entities::{density, split_synonyms, Lexicon, LexiconEntry, Recognizer, Span};

/// The default lexicon, written for zest: English and Simplified Chinese terms of six types.
pub const DEFAULT_LEXICON: &str = include_str!("../../data/lexicon/medical.tsv");

/// Config of `clean.entities`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntitiesConfig {
    /// The column holding the text.
    #[serde(default = "docs::text_column")]
    pub text_column: String,
    /// The column identifying a document, for the examples of the report (row numbers when
    /// the input lacks it).
    #[serde(default = "docs::id_column")]
    pub id_column: String,
    /// The column the report breaks counts down by, when the input has it.
    #[serde(default = "docs::source_column")]
    pub source_column: String,
    /// A column holding each document's language (ISO 639-1, e.g. `en`, `zh`); null or empty
    /// values fall back to `language`, then to detection.
    #[serde(default)]
    pub language_column: Option<String>,
    /// The language of every document (e.g. `en`, `zh`); when neither this nor
    /// `language_column` is set, each document's language is detected.
    #[serde(default)]
    pub language: Option<String>,
    /// Only these entity types (e.g. `[disease, drug]`); all the lexicon's types when absent.
    #[serde(default)]
    pub types: Option<Vec<String>>,
    /// Documents whose entity density is below this go to `rejected`.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_density: Option<f64>,
    /// With a `lexicon` input: add its entries to the default lexicon (its entries win where
    /// both define a surface form) instead of replacing it.
    #[serde(default)]
    pub extend_default: bool,
}

/// The `clean.entities` operator.
pub struct Entities;

/// The struct type of one mention in the `entities` column.
pub fn entity_struct_fields() -> Fields {
    Fields::from(vec![
        Field::new("start", DataType::UInt32, false),
        Field::new("end", DataType::UInt32, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("term", DataType::Utf8, false),
        Field::new("code", DataType::Utf8, true),
    ])
}

fn entities_item() -> Arc<Field> {
    Arc::new(Field::new_list_field(
        DataType::Struct(entity_struct_fields()),
        false,
    ))
}

/// The columns `clean.entities` adds.
pub fn entity_fields() -> Vec<Field> {
    vec![
        Field::new("entities", DataType::List(entities_item()), false),
        Field::new("entity_count", DataType::UInt32, false),
        Field::new("entity_density", DataType::Float64, false),
    ]
}

/// The `entities` column from one list of mentions per row.
pub fn entities_array(rows: &[Vec<Span>]) -> Result<ArrayRef> {
    let flat: Vec<_> = rows.iter().flatten().collect();
    let all = || flat.iter().copied();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(all().map(|s| s.start))),
        Arc::new(UInt32Array::from_iter_values(all().map(|s| s.end))),
        Arc::new(StringArray::from_iter_values(
            all().map(|s| s.text.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            all().map(|s| s.entity_type.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            all().map(|s| s.term.as_str()),
        )),
        Arc::new(StringArray::from_iter(all().map(|s| s.code.as_deref()))),
    ];
    let values = StructArray::try_new(entity_struct_fields(), cols, None)?;
    let offsets = OffsetBuffer::from_lengths(rows.iter().map(Vec::len));
    Ok(Arc::new(ListArray::try_new(
        entities_item(),
        offsets,
        Arc::new(values),
        None,
    )?))
}

/// The lexicon: the `lexicon` input when connected (added to the default with
/// `extend_default`), else the embedded default.
pub async fn load_lexicon(ctx: &OpContext, extend_default: bool) -> Result<Lexicon> {
    let default = || Lexicon::from_tsv(DEFAULT_LEXICON).context("the default lexicon");
    if ctx.inputs("lexicon").is_empty() {
        return default();
    }
    let (schema, mut stream) = docs::open(ctx, "lexicon").await?;
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for need in ["term", "type"] {
        if !names.contains(&need) {
            return Err(zest_engine::failure::permanent(format!(
                "the lexicon dataset has no column `{need}` (it needs `term` and `type`, and may \
                 have `code` and `synonyms`; columns: {})",
                names.join(", ")
            )));
        }
    }
    let mut entries = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let term = strings(column(&batch, "term")?, "term")?;
        let ty = strings(column(&batch, "type")?, "type")?;
        let code = match batch.column_by_name("code") {
            Some(c) => Some(strings(c, "code")?),
            None => None,
        };
        let synonyms = batch
            .column_by_name("synonyms")
            .map(synonym_lists)
            .transpose()?;
        for i in 0..batch.num_rows() {
            let get = |a: &StringArray| (!a.is_null(i)).then(|| a.value(i).to_string());
            entries.push(LexiconEntry {
                term: get(&term).unwrap_or_default(),
                entity_type: get(&ty).unwrap_or_default(),
                code: code.as_ref().and_then(get),
                synonyms: synonyms.as_ref().map(|s| s[i].clone()).unwrap_or_default(),
            });
        }
    }
    let mut lex = Lexicon::new(entries).map_err(|e| {
        anyhow!("the lexicon dataset is not usable: {e} (entries are counted from 1 in row order)")
    })?;
    if lex.is_empty() {
        bail!("the lexicon dataset has no rows");
    }
    if extend_default {
        lex.extend(default()?);
    }
    Ok(lex)
}

/// The `synonyms` column: a list of strings per row, or a `|`-separated string.
fn synonym_lists(col: &ArrayRef) -> Result<Vec<Vec<String>>> {
    let list = match col.data_type() {
        DataType::List(_) => Some(col.as_list::<i32>().clone()),
        DataType::LargeList(_) => Some(
            datafusion::arrow::compute::cast(
                col,
                &DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            )?
            .as_list::<i32>()
            .clone(),
        ),
        _ => None,
    };
    if let Some(list) = list {
        let mut out = Vec::with_capacity(list.len());
        for i in 0..list.len() {
            if list.is_null(i) {
                out.push(vec![]);
                continue;
            }
            let v = strings(&list.value(i), "synonyms")?;
            out.push(
                (0..v.len())
                    .filter(|&j| !v.is_null(j))
                    .map(|j| v.value(j).to_string())
                    .collect(),
            );
        }
        return Ok(out);
    }
    let s = strings(col, "synonyms")?;
    Ok((0..s.len())
        .map(|i| {
            if s.is_null(i) {
                vec![]
            } else {
                split_synonyms(s.value(i))
            }
        })
        .collect())
}

/// A recognizer for `lexicon`, checking that every type in `types` is one of the lexicon's.
pub fn recognizer(lexicon: &Lexicon, types: Option<&[String]>) -> Result<Recognizer> {
    if let Some(ts) = types {
        let known = lexicon.types();
        for t in ts {
            if !known.contains(t.as_str()) {
                bail!(
                    "`types`: `{t}` is not a type of the lexicon (types: {})",
                    known.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
        }
    }
    Ok(Recognizer::new(lexicon, types)?)
}

/// Each row's language as configured: the language column's value, else the fixed
/// language, else `None` (to be detected from the text).
pub fn languages(
    batch: &RecordBatch,
    language_column: Option<&str>,
    language: Option<&str>,
) -> Result<Vec<Option<String>>> {
    let fixed = language.map(|l| l.trim().to_lowercase());
    let Some(name) = language_column else {
        return Ok(vec![fixed; batch.num_rows()]);
    };
    let col = strings(column(batch, name)?, name)?;
    Ok((0..col.len())
        .map(|i| {
            (!col.is_null(i))
                .then(|| col.value(i).trim().to_lowercase())
                .filter(|l| !l.is_empty())
                .or_else(|| fixed.clone())
        })
        .collect())
}

/// The language to use for one document.
pub fn language_of(given: &Option<String>, text: &str) -> String {
    match given {
        Some(l) => l.clone(),
        None => zest_kernels::langid::detect(text).code.to_string(),
    }
}

impl Operator for Entities {
    type Config = EntitiesConfig;
    const NAME: &'static str = "clean.entities";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Finds medical entities (diseases, symptoms, drugs, procedures, anatomy, lab tests) \
         with a lexicon, in English and Chinese; adds entities, entity_count, entity_density";

    fn ports(c: Option<&EntitiesConfig>) -> Ports {
        let mut outputs = vec![PortSpec::new(
            "docs",
            PortType::Dataset,
            "the documents, with entities, entity_count and entity_density",
        )
        .with_added_columns(&["entities", "entity_count", "entity_density"])];
        if c.is_none_or(|c| c.min_density.is_some()) {
            outputs.push(PortSpec::new(
                "rejected",
                PortType::Dataset,
                "documents below min_density, with reasons",
            ));
            outputs.push(docs::report_port());
        }
        Ports {
            inputs: vec![
                PortSpec::new("docs", PortType::Dataset, "the documents"),
                PortSpec::new(
                    "lexicon",
                    PortType::Dataset,
                    "a lexicon (term, type, code, synonyms) replacing the default",
                )
                .optional(),
            ],
            outputs,
            other_inputs: None,
        }
    }

    fn sharding(_: &EntitiesConfig) -> Option<Sharding> {
        Some(docs::row_sharding())
    }

    fn run(c: &EntitiesConfig, ctx: &mut OpContext) -> Result<()> {
        if docs::is_merge(ctx) {
            return docs::merge_row_parts(ctx);
        }
        if let Some(m) = c.min_density {
            if !(0.0..=1.0).contains(&m) {
                bail!("`min_density` must be between 0 and 1, not {m}");
            }
        }
        let docs_dir = docs::out_dir(ctx, "docs")?;
        let rejected_dir = match c.min_density {
            Some(_) => Some(docs::out_dir(ctx, "rejected")?),
            None => None,
        };
        let threads = ctx.threads();
        let writer = ctx.block_on(async {
            let lexicon = load_lexicon(ctx, c.extend_default).await?;
            let rec = recognizer(&lexicon, c.types.as_deref())?;
            let (schema, mut stream, first_row) = docs::open_shard(ctx, "docs").await?;
            docs::require_columns(&schema, "docs", &[("text_column", &c.text_column)])?;
            if let Some(l) = &c.language_column {
                docs::require_columns(&schema, "docs", &[("language_column", l)])?;
            }
            let mut w =
                SplitWriter::new(&schema, entity_fields(), &docs_dir, rejected_dir.as_deref())?
                    .starting_at(first_row);
            // Rows are dropped (and reported) only with `min_density`, the only case with a
            // `report` output.
            if rejected_dir.is_some() {
                w = w.with_report(
                    Self::NAME,
                    ReportColumns::new(&c.id_column, &c.text_column, &c.source_column),
                );
            }
            let started = Instant::now();
            let (mut n_docs, mut n_entities) = (0usize, 0usize);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let txt = texts(&batch, &c.text_column)?;
                let langs = languages(&batch, c.language_column.as_deref(), c.language.as_deref())?;
                let rows: Vec<(&String, &Option<String>)> = txt.iter().zip(&langs).collect();
                let found: Vec<(Vec<Span>, f64)> = docs::par_map(threads, &rows, |(t, l)| {
                    let spans = rec.find(t, &language_of(l, t));
                    let d = density(t, &spans);
                    (spans, d)
                });
                let reasons: Vec<Vec<String>> = found
                    .iter()
                    .map(|(_, d)| match c.min_density {
                        Some(m) if *d < m => vec![format!("entity_density<{m}")],
                        _ => vec![],
                    })
                    .collect();
                let counts = UInt32Array::from_iter_values(found.iter().map(|f| f.0.len() as u32));
                let dens = Float64Array::from_iter_values(found.iter().map(|f| f.1));
                let spans: Vec<Vec<Span>> = found.into_iter().map(|f| f.0).collect();
                n_docs += spans.len();
                n_entities += spans.iter().map(Vec::len).sum::<usize>();
                w.write(
                    &batch,
                    vec![entities_array(&spans)?, Arc::new(counts), Arc::new(dens)],
                    &reasons,
                )?;
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                eprintln!(
                    "clean.entities: {n_docs} documents, {n_entities} entities ({:.0} docs/s)",
                    n_docs as f64 / secs
                );
            }
            let (kept, rejected) = w.counts();
            eprintln!(
                "clean.entities: done: {n_docs} documents, {n_entities} entities, kept {kept}, \
                 rejected {rejected}"
            );
            Ok::<_, anyhow::Error>(w)
        })?;
        writer.finish(ctx, "docs", "rejected")
    }
}
