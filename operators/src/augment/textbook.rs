//! `augment.textbook`: textbook-style training samples from documents annotated by
//! `clean.entities` and `clean.relations`, by rule and template, with no model (see
//! [`zest_kernels::augment`] for what is generated and how).
//!
//! The input needs `entities` (list of struct `{start, end, text, type, term, code}`, character
//! offsets) for `cloze` items and `relations` (list of struct `{head, head_type, relation,
//! tail, tail_type, sentence}`) for `qa` pairs; `rewrite` uses `entities` when present. One
//! output row per sample:
//!
//! | column | content |
//! |---|---|
//! | `doc_id` | `<source_doc_id>/<kind>/<n>`, n counting the document's samples from 0 |
//! | `source` | the input row's `source` when the input has one, else `textbook` |
//! | `text` | the training text of the sample |
//! | `kind` | `cloze`, `qa`, `rewrite`, or `original` (with `keep_original`) |
//! | `question`, `answer` | the question and answer, null for key-point rewrites and originals |
//! | `language` | the language whose templates were used |
//! | `source_doc_id` | the input row's id |
//! | `passage_start`, `passage_end` | character offsets of the source passage in its text |
//!
//! Every random choice is seeded by `seed` and the document's id, so the output depends only
//! on the input, the config and the seed. The corpus-wide distractor pool is read in a first
//! pass over the input, in input order.

use crate::data::dataset;
use crate::data::docs::{self, column, texts};
use anyhow::{anyhow, Context, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, ListArray, StringArray, StringBuilder, StructArray, UInt32Builder, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports};
use zest_kernels::augment::{self, AugmentConfig, Entity, Kind, Lang, Relation, TermPool};

/// A kind of sample, as named in `kinds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    /// Cloze items (need `entities`).
    Cloze,
    /// Question–answer pairs from relations (need `relations`).
    Qa,
    /// Paragraph rewrites.
    Rewrite,
}

impl From<KindName> for Kind {
    fn from(k: KindName) -> Kind {
        match k {
            KindName::Cloze => Kind::Cloze,
            KindName::Qa => Kind::Qa,
            KindName::Rewrite => Kind::Rewrite,
        }
    }
}

fn language_column() -> String {
    "language".into()
}
fn all_kinds() -> Vec<KindName> {
    vec![KindName::Cloze, KindName::Qa, KindName::Rewrite]
}
fn sixteen() -> usize {
    16
}
fn three() -> usize {
    3
}
fn seed() -> u64 {
    1
}

/// Config of `augment.textbook`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextbookConfig {
    /// The column holding the text.
    #[serde(default = "docs::text_column")]
    pub text_column: String,
    /// The column identifying a document; when the input lacks it, ids are derived from the
    /// text.
    #[serde(default = "docs::id_column")]
    pub id_column: String,
    /// Kinds of sample to generate.
    #[serde(default = "all_kinds")]
    #[schemars(length(min = 1))]
    pub kinds: Vec<KindName>,
    /// At most this many generated samples per document.
    #[serde(default = "sixteen")]
    #[schemars(range(min = 1))]
    pub max_per_doc: usize,
    /// At most this many distractor options per cloze item (0: no options).
    #[serde(default = "three")]
    pub distractors: usize,
    /// The seed of every random choice.
    #[serde(default = "seed")]
    pub seed: u64,
    /// Also pass every input document through, with kind `original`.
    #[serde(default)]
    pub keep_original: bool,
    /// The language of the templates (`en`, `zh`) for every document; when unset, a
    /// document's language is read from `language_column` or, failing that, detected.
    #[serde(default)]
    pub language: Option<String>,
    /// The column holding each document's language code, when the input has it.
    #[serde(default = "language_column")]
    pub language_column: String,
}

/// The `augment.textbook` operator.
pub struct Textbook;

const OUT_COLUMNS: &[&str] = &[
    "doc_id",
    "source",
    "text",
    "kind",
    "question",
    "answer",
    "language",
    "source_doc_id",
    "passage_start",
    "passage_end",
];

fn out_schema() -> SchemaRef {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        s("doc_id", false),
        s("source", false),
        s("text", false),
        s("kind", false),
        s("question", true),
        s("answer", true),
        s("language", false),
        s("source_doc_id", false),
        Field::new("passage_start", DataType::UInt32, false),
        Field::new("passage_end", DataType::UInt32, false),
    ]))
}

impl Operator for Textbook {
    type Config = TextbookConfig;
    const NAME: &'static str = "augment.textbook";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Generates cloze items, relation QA pairs and paragraph rewrites from annotated documents, by template";

    fn ports(_: Option<&TextbookConfig>) -> Ports {
        Ports {
            inputs: vec![PortSpec::new(
                "docs",
                PortType::Dataset,
                "documents annotated by clean.entities and clean.relations",
            )],
            outputs: vec![PortSpec::new(
                "docs",
                PortType::Dataset,
                "one row per generated sample, with provenance",
            )
            .with_columns(OUT_COLUMNS)],
            other_inputs: None,
        }
    }

    fn check(c: &TextbookConfig) -> Result<(), String> {
        if c.kinds.is_empty() {
            return Err("`kinds` must name at least one of cloze, qa, rewrite".into());
        }
        if c.max_per_doc == 0 {
            return Err("`max_per_doc` must be at least 1".into());
        }
        if let Some(l) = &c.language {
            if l.trim().is_empty() {
                return Err("`language` must be a language code such as `en` or `zh`".into());
            }
        }
        Ok(())
    }

    fn run(c: &TextbookConfig, ctx: &mut OpContext) -> Result<()> {
        let out_dir = ctx.output_dir("docs")?.to_path_buf();
        let kinds: Vec<Kind> = c.kinds.iter().map(|&k| k.into()).collect();
        let config = AugmentConfig {
            kinds: kinds.clone(),
            max_per_doc: c.max_per_doc,
            seed: c.seed,
            distractors: c.distractors,
        };
        let (meta, counts) =
            ctx.block_on(async {
                // Pass 1: the corpus-wide pool of mentions by type, for cloze distractors.
                let (schema, mut stream) = docs::open(ctx, "docs").await?;
                let has = |n: &str| schema.index_of(n).is_ok();
                for (kind, col) in [(Kind::Cloze, "entities"), (Kind::Qa, "relations")] {
                    if kinds.contains(&kind) && !has(col) {
                        return Err(zest_engine::failure::permanent(format!(
                        "input `docs` has no column `{col}`, which kind `{}` needs: run {} first \
                         (or leave `{}` out of `kinds`)",
                        kind.as_str(),
                        if col == "entities" { "clean.entities" } else { "clean.relations" },
                        kind.as_str()
                    )));
                    }
                }
                let mut pool = TermPool::new(1000);
                if kinds.contains(&Kind::Cloze) && c.distractors > 0 {
                    while let Some(batch) = stream.next().await {
                        let batch = batch?;
                        for row in entities(&batch)? {
                            for e in row {
                                pool.add(&e.ty, &e.text);
                            }
                        }
                    }
                }
                drop(stream);
                // Pass 2: generate.
                let (_, mut stream) = docs::open(ctx, "docs").await?;
                let schema = out_schema();
                let mut w = dataset::writer(&out_dir, schema.clone())?;
                let mut rows = 0usize;
                let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    let ts = texts(&batch, &c.text_column)?;
                    let ids = if has(&c.id_column) {
                        Some(texts(&batch, &c.id_column)?)
                    } else {
                        None
                    };
                    let sources = if has("source") {
                        Some(texts(&batch, "source")?)
                    } else {
                        None
                    };
                    let langs = if c.language.is_none() && has(&c.language_column) {
                        Some(texts(&batch, &c.language_column)?)
                    } else {
                        None
                    };
                    let ents = if has("entities") {
                        entities(&batch)?
                    } else {
                        vec![vec![]; batch.num_rows()]
                    };
                    let rels = if has("relations") {
                        relations(&batch)?
                    } else {
                        vec![vec![]; batch.num_rows()]
                    };
                    let mut b = OutBuilder::default();
                    for i in 0..batch.num_rows() {
                        let text = &ts[i];
                        let id = match &ids {
                            Some(v) if !v[i].is_empty() => v[i].clone(),
                            _ => format!("doc-{:016x}", fnv(text)),
                        };
                        let source = match &sources {
                            Some(v) if !v[i].is_empty() => v[i].as_str(),
                            _ => "textbook",
                        };
                        let code = match (&c.language, &langs) {
                            (Some(l), _) => l.clone(),
                            (None, Some(v)) if !v[i].trim().is_empty() => v[i].trim().to_string(),
                            _ => zest_kernels::langid::detect(text).code.to_string(),
                        };
                        if c.keep_original {
                            let n = text.chars().count();
                            b.push(&id, source, text, "original", None, None, &code, &id, 0, n)?;
                            *counts.entry("original").or_default() += 1;
                        }
                        let samples = augment::generate(
                            &id,
                            text,
                            &ents[i],
                            &rels[i],
                            Lang::from_code(&code),
                            &pool,
                            &config,
                        );
                        for (n, s) in samples.iter().enumerate() {
                            let kind = s.kind.as_str();
                            b.push(
                                &format!("{id}/{kind}/{n}"),
                                source,
                                &s.text,
                                kind,
                                s.question.as_deref(),
                                s.answer.as_deref(),
                                &code,
                                &id,
                                s.passage_start,
                                s.passage_end,
                            )?;
                            *counts.entry(kind).or_default() += 1;
                        }
                    }
                    let out = b.finish(&schema)?;
                    rows += out.num_rows();
                    w.write(&out)?;
                }
                w.close()?;
                Ok::<_, anyhow::Error>((dataset::meta(&schema, rows), counts))
            })?;
        eprintln!("augment.textbook: wrote {counts:?}");
        ctx.set_output_meta("docs", meta);
        Ok(())
    }
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[derive(Default)]
struct OutBuilder {
    doc_id: StringBuilder,
    source: StringBuilder,
    text: StringBuilder,
    kind: StringBuilder,
    question: StringBuilder,
    answer: StringBuilder,
    language: StringBuilder,
    source_doc_id: StringBuilder,
    start: UInt32Builder,
    end: UInt32Builder,
}

impl OutBuilder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        doc_id: &str,
        source: &str,
        text: &str,
        kind: &str,
        question: Option<&str>,
        answer: Option<&str>,
        language: &str,
        source_doc_id: &str,
        start: usize,
        end: usize,
    ) -> Result<()> {
        let off = |v: usize| u32::try_from(v).map_err(|_| anyhow!("text offset {v} exceeds u32"));
        self.doc_id.append_value(doc_id);
        self.source.append_value(source);
        self.text.append_value(text);
        self.kind.append_value(kind);
        self.question.append_option(question);
        self.answer.append_option(answer);
        self.language.append_value(language);
        self.source_doc_id.append_value(source_doc_id);
        self.start.append_value(off(start)?);
        self.end.append_value(off(end)?);
        Ok(())
    }

    fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.doc_id.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.text.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.question.finish()),
            Arc::new(self.answer.finish()),
            Arc::new(self.language.finish()),
            Arc::new(self.source_doc_id.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.end.finish()),
        ];
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    }
}

/// A row's range in a list column's values.
type Span = (usize, usize);

/// The rows of a list-of-struct column: the struct values and each row's range in them
/// (`None` for a null row).
fn list_of_structs<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<(&'a StructArray, Vec<Option<Span>>)> {
    let col = column(batch, name)?;
    let list = col.as_any().downcast_ref::<ListArray>().ok_or_else(|| {
        anyhow!(
            "column `{name}` must be a list of structs, not {}",
            col.data_type()
        )
    })?;
    let values = list
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| {
            anyhow!(
                "column `{name}` must hold structs, not {}",
                list.value_type()
            )
        })?;
    let offs = list.value_offsets();
    let ranges = (0..list.len())
        .map(|i| (!list.is_null(i)).then_some((offs[i] as usize, offs[i + 1] as usize)))
        .collect();
    Ok((values, ranges))
}

/// A struct field read as text (nulls as "").
fn text_field(s: &StructArray, col: &str, field: &str) -> Result<StringArray> {
    let f = s
        .column_by_name(field)
        .ok_or_else(|| anyhow!("the structs of column `{col}` have no field `{field}`"))?;
    docs::strings(f, &format!("{col}.{field}"))
}

fn offset_field(s: &StructArray, field: &str) -> Result<UInt64Array> {
    let f = s
        .column_by_name(field)
        .ok_or_else(|| anyhow!("the structs of column `entities` have no field `{field}`"))?;
    let c = cast(f, &DataType::UInt64)
        .with_context(|| format!("field `entities.{field}` is not a non-negative integer"))?;
    Ok(c.as_any()
        .downcast_ref::<UInt64Array>()
        .expect("cast to UInt64")
        .clone())
}

fn str_at(a: &StringArray, i: usize) -> String {
    if a.is_null(i) {
        String::new()
    } else {
        a.value(i).to_string()
    }
}

/// The `entities` of every row of `batch`.
fn entities(batch: &RecordBatch) -> Result<Vec<Vec<Entity>>> {
    let (s, ranges) = list_of_structs(batch, "entities")?;
    let start = offset_field(s, "start")?;
    let end = offset_field(s, "end")?;
    let text = text_field(s, "entities", "text")?;
    let ty = text_field(s, "entities", "type")?;
    let term = text_field(s, "entities", "term")?;
    Ok(ranges
        .into_iter()
        .map(|r| {
            let Some((a, b)) = r else { return vec![] };
            (a..b)
                .filter(|&j| !start.is_null(j) && !end.is_null(j))
                .map(|j| Entity {
                    start: start.value(j) as usize,
                    end: end.value(j) as usize,
                    text: str_at(&text, j),
                    ty: str_at(&ty, j),
                    term: {
                        let t = str_at(&term, j);
                        if t.is_empty() {
                            str_at(&text, j).to_lowercase()
                        } else {
                            t
                        }
                    },
                })
                .collect()
        })
        .collect())
}

/// The `relations` of every row of `batch`.
fn relations(batch: &RecordBatch) -> Result<Vec<Vec<Relation>>> {
    let (s, ranges) = list_of_structs(batch, "relations")?;
    let f = |n: &str| text_field(s, "relations", n);
    let (head, head_type, relation) = (f("head")?, f("head_type")?, f("relation")?);
    let (tail, tail_type, sentence) = (f("tail")?, f("tail_type")?, f("sentence")?);
    Ok(ranges
        .into_iter()
        .map(|r| {
            let Some((a, b)) = r else { return vec![] };
            (a..b)
                .map(|j| Relation {
                    head: str_at(&head, j),
                    head_type: str_at(&head_type, j),
                    relation: str_at(&relation, j),
                    tail: str_at(&tail, j),
                    tail_type: str_at(&tail_type, j),
                    sentence: str_at(&sentence, j),
                })
                .collect()
        })
        .collect())
}
