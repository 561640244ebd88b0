//! `clean.relations`: relations between medical entities that share a sentence (see
//! [`zest_kernels::relations`]). Every input row goes to `docs` with two new columns:
//!
//! - `relations`: `List<Struct{head: Utf8, head_type: Utf8, relation: Utf8, tail: Utf8,
//!   tail_type: Utf8, sentence: Utf8}>`, head and tail as canonical terms, `sentence` the
//!   evidence;
//! - `relation_count`: `UInt32`.
//!
//! The mentions come from the `entities` column written by `clean.entities` when the input has
//! one; otherwise entity recognition runs here, with the same lexicon options (the `lexicon`
//! port, `extend_default`, `types`, languages).
//!
//! `shards: N` runs it over N contiguous ranges of rows and merges them into the same outputs
//! as an unsharded run (`docs::row_sharding`).

use super::entities::{language_of, languages, load_lexicon, recognizer};
use crate::data::docs::{self, column, texts, SplitWriter};
use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ListArray, StringArray, StructArray, UInt32Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports, Sharding};
use zest_kernels::entities::Span;
use zest_kernels::relations::{self as rel, default_patterns, Extractor, Relation};

fn entities() -> String {
    "entities".into()
}
fn yes() -> bool {
    true
}
fn window() -> usize {
    120
}

/// Which mention of a pattern comes first.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderConfig {
    /// The head comes before the tail.
    HeadFirst,
    /// The tail comes before the head.
    TailFirst,
    /// Either.
    #[default]
    Either,
}

/// Where a pattern's cue must be.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeConfig {
    /// Between the two mentions.
    #[default]
    Between,
    /// Anywhere in the sentence.
    Sentence,
}

/// One relation pattern: a head type, a relation, a tail type and the cues that signal it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    /// The head's entity type (e.g. `drug`).
    pub head: String,
    /// The relation name (e.g. `treats`).
    pub relation: String,
    /// The tail's entity type (e.g. `disease`).
    pub tail: String,
    /// Cue words: English stems, matched case-insensitively at a word start ("treat" matches
    /// "treatment"), or Chinese words, matched anywhere.
    #[serde(default)]
    pub cues: Vec<String>,
    /// A regular expression (case-insensitive) that also counts as a cue.
    #[serde(default)]
    pub regex: Option<String>,
    /// Which mention comes first.
    #[serde(default)]
    pub order: OrderConfig,
    /// Where the cue must be.
    #[serde(default)]
    pub scope: ScopeConfig,
    /// The most characters between the two mentions.
    #[serde(default = "window")]
    pub window: usize,
}

impl From<&PatternConfig> for rel::Pattern {
    fn from(p: &PatternConfig) -> Self {
        rel::Pattern {
            head: p.head.clone(),
            relation: p.relation.clone(),
            tail: p.tail.clone(),
            cues: p.cues.clone(),
            regex: p.regex.clone(),
            order: match p.order {
                OrderConfig::HeadFirst => rel::Order::HeadFirst,
                OrderConfig::TailFirst => rel::Order::TailFirst,
                OrderConfig::Either => rel::Order::Either,
            },
            scope: match p.scope {
                ScopeConfig::Between => rel::CueScope::Between,
                ScopeConfig::Sentence => rel::CueScope::Sentence,
            },
            window: p.window,
        }
    }
}

/// Config of `clean.relations`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelationsConfig {
    /// The column holding the text.
    #[serde(default = "docs::text_column")]
    pub text_column: String,
    /// The column of entity mentions written by `clean.entities`; when the input lacks it,
    /// entities are recognised here.
    #[serde(default = "entities")]
    pub entities_column: String,
    /// For recognition here: a column holding each document's language.
    #[serde(default)]
    pub language_column: Option<String>,
    /// For recognition here: the language of every document; detected when absent.
    #[serde(default)]
    pub language: Option<String>,
    /// For recognition here: only these entity types.
    #[serde(default)]
    pub types: Option<Vec<String>>,
    /// For recognition here: add the `lexicon` input to the default lexicon.
    #[serde(default)]
    pub extend_default: bool,
    /// Patterns of your own, used with the built-in ones (or alone, see `default_patterns`).
    #[serde(default)]
    pub patterns: Vec<PatternConfig>,
    /// Whether to use the built-in patterns (treats, has_symptom, causes_adverse_effect,
    /// diagnoses, located_in).
    #[serde(default = "yes")]
    pub default_patterns: bool,
}

/// The `clean.relations` operator.
pub struct Relations;

fn relation_struct_fields() -> Fields {
    Fields::from(
        [
            "head",
            "head_type",
            "relation",
            "tail",
            "tail_type",
            "sentence",
        ]
        .map(|n| Field::new(n, DataType::Utf8, false))
        .to_vec(),
    )
}

fn relations_item() -> Arc<Field> {
    Arc::new(Field::new_list_field(
        DataType::Struct(relation_struct_fields()),
        false,
    ))
}

fn relation_fields() -> Vec<Field> {
    vec![
        Field::new("relations", DataType::List(relations_item()), false),
        Field::new("relation_count", DataType::UInt32, false),
    ]
}

fn relations_array(rows: &[Vec<Relation>]) -> Result<ArrayRef> {
    let flat: Vec<_> = rows.iter().flatten().collect();
    let all = || flat.iter().copied();
    let col = |f: fn(&Relation) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(all().map(f)))
    };
    let cols = vec![
        col(|r| &r.head),
        col(|r| &r.head_type),
        col(|r| &r.relation),
        col(|r| &r.tail),
        col(|r| &r.tail_type),
        col(|r| &r.sentence),
    ];
    let values = StructArray::try_new(relation_struct_fields(), cols, None)?;
    Ok(Arc::new(ListArray::try_new(
        relations_item(),
        OffsetBuffer::from_lengths(rows.iter().map(Vec::len)),
        Arc::new(values),
        None,
    )?))
}

/// Reads the mentions of the `entities` column `name`, one list per row.
fn read_entities(batch: &RecordBatch, name: &str) -> Result<Vec<Vec<Span>>> {
    let col = column(batch, name)?;
    let DataType::List(_) = col.data_type() else {
        bail!(
            "column `{name}` is {}, not the list of structs that clean.entities writes",
            col.data_type()
        );
    };
    let list: &ListArray = col.as_list::<i32>();
    let DataType::Struct(_) = list.value_type() else {
        bail!("column `{name}` holds {}, not structs", list.value_type());
    };
    let values: &StructArray = list.values().as_struct();
    let field = |f: &str| -> Result<&ArrayRef> {
        values.column_by_name(f).with_context(|| {
            format!("column `{name}` has no field `{f}` (it needs start, end, type and term)")
        })
    };
    let num = |f: &str| -> Result<UInt32Array> {
        Ok(cast(field(f)?, &DataType::UInt32)
            .with_context(|| format!("field `{f}` of column `{name}` is not a number"))?
            .as_primitive::<datafusion::arrow::datatypes::UInt32Type>()
            .clone())
    };
    let text = |f: &str| -> Result<StringArray> { docs::strings(field(f)?, f) };
    let (start, end, ty, term) = (num("start")?, num("end")?, text("type")?, text("term")?);
    let mention = match values.column_by_name("text") {
        Some(c) => Some(docs::strings(c, "text")?),
        None => None,
    };
    let code = match values.column_by_name("code") {
        Some(c) => Some(docs::strings(c, "code")?),
        None => None,
    };
    let offsets = list.value_offsets();
    let mut out = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        let mut spans = Vec::new();
        if !list.is_null(i) {
            for j in offsets[i] as usize..offsets[i + 1] as usize {
                if values.is_null(j) || start.is_null(j) || end.is_null(j) {
                    continue;
                }
                let opt = |a: &StringArray| (!a.is_null(j)).then(|| a.value(j).to_string());
                spans.push(Span {
                    start: start.value(j),
                    end: end.value(j),
                    text: mention.as_ref().and_then(opt).unwrap_or_default(),
                    entity_type: opt(&ty).unwrap_or_default(),
                    term: opt(&term).unwrap_or_default(),
                    code: code.as_ref().and_then(opt),
                });
            }
        }
        spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
        out.push(spans);
    }
    Ok(out)
}

impl Operator for Relations {
    type Config = RelationsConfig;
    const NAME: &'static str = "clean.relations";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Finds relations (treats, has_symptom, causes_adverse_effect, diagnoses, located_in) \
         between entities in a sentence with cue patterns; adds relations, relation_count";

    fn ports(_: Option<&RelationsConfig>) -> Ports {
        Ports {
            inputs: vec![
                PortSpec::new("docs", PortType::Dataset, "the documents"),
                PortSpec::new(
                    "lexicon",
                    PortType::Dataset,
                    "a lexicon (term, type, code, synonyms), used when the input has no entities",
                )
                .optional(),
            ],
            outputs: vec![PortSpec::new(
                "docs",
                PortType::Dataset,
                "the documents, with relations and relation_count",
            )
            .with_added_columns(&["relations", "relation_count"])],
            other_inputs: None,
        }
    }

    fn sharding(_: &RelationsConfig) -> Option<Sharding> {
        Some(docs::row_sharding())
    }

    fn run(c: &RelationsConfig, ctx: &mut OpContext) -> Result<()> {
        if docs::is_merge(ctx) {
            return docs::merge_row_parts(ctx);
        }
        let mut patterns: Vec<rel::Pattern> = if c.default_patterns {
            default_patterns()
        } else {
            vec![]
        };
        patterns.extend(c.patterns.iter().map(rel::Pattern::from));
        if patterns.is_empty() {
            bail!("no relation patterns: set `patterns` or leave `default_patterns` on");
        }
        let extractor = Extractor::new(patterns).context("`patterns`")?;
        let docs_dir = docs::out_dir(ctx, "docs")?;
        let threads = ctx.threads();
        let writer = ctx.block_on(async {
            let (schema, mut stream, first_row) = docs::open_shard(ctx, "docs").await?;
            docs::require_columns(&schema, "docs", &[("text_column", &c.text_column)])?;
            let has_entities = schema.index_of(&c.entities_column).is_ok();
            let rec = if has_entities {
                eprintln!(
                    "clean.relations: reading mentions from column `{}`",
                    c.entities_column
                );
                None
            } else {
                if let Some(l) = &c.language_column {
                    docs::require_columns(&schema, "docs", &[("language_column", l)])?;
                }
                let lexicon = load_lexicon(ctx, c.extend_default).await?;
                eprintln!(
                    "clean.relations: no column `{}`; recognising entities ({} lexicon entries)",
                    c.entities_column,
                    lexicon.len()
                );
                Some(recognizer(&lexicon, c.types.as_deref())?)
            };
            let mut w = SplitWriter::new(&schema, relation_fields(), &docs_dir, None)?
                .starting_at(first_row);
            let started = Instant::now();
            let (mut n_docs, mut n_rel) = (0usize, 0usize);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let txt = texts(&batch, &c.text_column)?;
                let found: Vec<Vec<Relation>> = match &rec {
                    None => {
                        let spans = read_entities(&batch, &c.entities_column)?;
                        let rows: Vec<(&String, &Vec<Span>)> = txt.iter().zip(&spans).collect();
                        docs::par_map(threads, &rows, |(t, s)| extractor.extract(t, s))
                    }
                    Some(rec) => {
                        let langs =
                            languages(&batch, c.language_column.as_deref(), c.language.as_deref())?;
                        let rows: Vec<(&String, &Option<String>)> =
                            txt.iter().zip(&langs).collect();
                        docs::par_map(threads, &rows, |(t, l)| {
                            extractor.extract(t, &rec.find(t, &language_of(l, t)))
                        })
                    }
                };
                n_docs += found.len();
                n_rel += found.iter().map(Vec::len).sum::<usize>();
                let counts = UInt32Array::from_iter_values(found.iter().map(|f| f.len() as u32));
                w.write(
                    &batch,
                    vec![relations_array(&found)?, Arc::new(counts)],
                    &[],
                )?;
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                eprintln!(
                    "clean.relations: {n_docs} documents, {n_rel} relations ({:.0} docs/s)",
                    n_docs as f64 / secs
                );
            }
            eprintln!("clean.relations: done: {n_docs} documents, {n_rel} relations");
            Ok::<_, anyhow::Error>(w)
        })?;
        writer.finish(ctx, "docs", "rejected")
    }
}
