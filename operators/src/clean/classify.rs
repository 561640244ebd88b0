//! `clean.classify`: a fastText-style text classifier (see [`zest_kernels::classify`]) and a
//! model-free medical-domain score, by `mode`:
//!
//! - `train`: learns a classifier from the dataset on `train` (`text_column`, `label_column`)
//!   and writes it to `model` as one file, `classifier.bin`, with `metrics.json` beside it.
//!   The artifact's metadata records the labels and the accuracy and per-label precision and
//!   recall on `train` and, when connected, on `valid`.
//! - `apply`: labels every row of `docs` with the model on `model`: `label` (the most probable
//!   label), `label_score` (its probability) and, with `scores: true`, `label_scores` (every
//!   label with its probability, most probable first). A row is kept when its label is one of
//!   `keep_labels` (any label when the list is empty) and its score reaches `threshold`;
//!   otherwise it goes to `rejected` with the reason `label:<label>` (label not kept) or
//!   `label:<label><<threshold>` (score too low), e.g. `label:ad` or `label:medical<0.5`.
//! - `medical_score`: scores how medical a document is from the annotations of
//!   `clean.entities`, with no model, into `medical_score`, and drops rows below `min_score`
//!   (reason `medical_score<<min_score>`). With density `d` (`entity_density`), mention count
//!   `n` (`entity_count`) and distinct entity types `t` (from `entities`, when present):
//!
//!   ```text
//!   D = d / (d + density_half)          saturates: 0.5 at d = density_half
//!   N = 1 - exp(-n / 5)                 saturates: 0.63 at 5 mentions
//!   T = min(t, 4) / 4                   four or more entity types count fully
//!   medical_score = 0.6 D + 0.2 N + 0.2 T     (0.75 D + 0.25 N without `entities`)
//!   ```

use crate::data::docs::{self, column, texts, SplitWriter};
use anyhow::{anyhow, bail, Context, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Float64Builder, ListArray, ListBuilder, StringBuilder,
    StructArray, StructBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports};
use zest_kernels::classify::{Classifier, ClassifierConfig, Evaluation};

/// The file holding the model inside the `model` artifact.
pub const MODEL_FILE: &str = "classifier.bin";

/// What `clean.classify` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Train a classifier: `train` (+ `valid`) → `model`.
    Train,
    /// Label and filter documents with a trained classifier: `docs` + `model` → `docs`,
    /// `rejected`.
    Apply,
    /// Score documents by their medical entities, no model: `docs` → `docs`, `rejected`.
    MedicalScore,
}

fn label() -> String {
    "label".into()
}
fn d() -> ClassifierConfig {
    ClassifierConfig::default()
}
fn dim() -> usize {
    d().dim
}
fn buckets() -> usize {
    d().buckets
}
fn word_ngrams() -> usize {
    d().word_ngrams
}
fn min_char_ngram() -> usize {
    d().min_char_ngram
}
fn max_char_ngram() -> usize {
    d().max_char_ngram
}
fn epochs() -> usize {
    d().epochs
}
fn lr() -> f64 {
    d().lr
}
fn seed() -> u64 {
    d().seed
}
fn density_half() -> f64 {
    0.05
}

/// Config of `clean.classify`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyConfig {
    /// `train`, `apply` or `medical_score`.
    pub mode: Mode,
    /// The column holding the text (train and apply).
    #[serde(default = "docs::text_column")]
    pub text_column: String,
    /// The column identifying a document, for the report's examples (apply, medical_score;
    /// row numbers when the input lacks it).
    #[serde(default = "docs::id_column")]
    pub id_column: String,
    /// The column the report breaks counts down by, when the input has it.
    #[serde(default = "docs::source_column")]
    pub source_column: String,
    /// The column holding the label (train).
    #[serde(default = "label")]
    pub label_column: String,
    /// Embedding dimension (train).
    #[serde(default = "dim")]
    #[schemars(range(min = 1, max = 1024))]
    pub dim: usize,
    /// Rows of the hashed feature table (train).
    #[serde(default = "buckets")]
    #[schemars(range(min = 1))]
    pub buckets: usize,
    /// Longest word n-gram (train; 1 = unigrams only).
    #[serde(default = "word_ngrams")]
    #[schemars(range(min = 1))]
    pub word_ngrams: usize,
    /// Shortest character n-gram (train).
    #[serde(default = "min_char_ngram")]
    pub min_char_ngram: usize,
    /// Longest character n-gram, 0 for none (train).
    #[serde(default = "max_char_ngram")]
    pub max_char_ngram: usize,
    /// Passes over the training data (train).
    #[serde(default = "epochs")]
    #[schemars(range(min = 1))]
    pub epochs: usize,
    /// Initial learning rate, decayed linearly to zero (train).
    #[serde(default = "lr")]
    pub lr: f64,
    /// Seed of initialisation and example order (train).
    #[serde(default = "seed")]
    pub seed: u64,
    /// Labels to keep (apply); empty keeps every label.
    #[serde(default)]
    pub keep_labels: Vec<String>,
    /// The least probability of the predicted label for a row to be kept (apply).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub threshold: f64,
    /// Also write `label_scores`, every label with its probability (apply).
    #[serde(default)]
    pub scores: bool,
    /// The least `medical_score` for a row to be kept (medical_score).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_score: f64,
    /// The entity density at which its term of the score is one half (medical_score).
    #[serde(default = "density_half")]
    pub density_half: f64,
}

impl ClassifyConfig {
    fn classifier(&self) -> ClassifierConfig {
        ClassifierConfig {
            dim: self.dim,
            buckets: self.buckets,
            word_ngrams: self.word_ngrams,
            min_char_ngram: self.min_char_ngram,
            max_char_ngram: self.max_char_ngram,
            epochs: self.epochs,
            lr: self.lr,
            seed: self.seed,
        }
    }
}

/// The `clean.classify` operator.
pub struct Classify;

fn report_columns(c: &ClassifyConfig) -> docs::ReportColumns {
    docs::ReportColumns::new(&c.id_column, &c.text_column, &c.source_column)
}

fn docs_outputs(added: &'static str) -> Vec<PortSpec> {
    vec![
        PortSpec::new("docs", PortType::Dataset, added),
        PortSpec::new(
            "rejected",
            PortType::Dataset,
            "dropped documents, with the same columns and `reasons`",
        ),
        docs::report_port(),
    ]
}

impl Operator for Classify {
    type Config = ClassifyConfig;
    const NAME: &'static str = "clean.classify";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Trains or applies a fastText-style text classifier, or scores documents as medical from their entities";

    fn ports(c: Option<&ClassifyConfig>) -> Ports {
        let (inputs, outputs) = match c.map(|c| c.mode) {
            Some(Mode::Train) => (
                vec![
                    PortSpec::new("train", PortType::Dataset, "labelled training examples"),
                    PortSpec::new("valid", PortType::Dataset, "labelled validation examples")
                        .optional(),
                ],
                vec![PortSpec::new(
                    "model",
                    PortType::Files,
                    "the classifier (classifier.bin) and its metrics (metrics.json)",
                )],
            ),
            Some(Mode::Apply) => (
                vec![
                    PortSpec::new("docs", PortType::Dataset, "the documents"),
                    PortSpec::new("model", PortType::Files, "a model from mode `train`"),
                ],
                docs_outputs("kept documents, with label and label_score"),
            ),
            Some(Mode::MedicalScore) => (
                vec![PortSpec::new(
                    "docs",
                    PortType::Dataset,
                    "documents annotated by clean.entities",
                )
                .with_columns(&["entity_density", "entity_count"])],
                docs_outputs("kept documents, with medical_score"),
            ),
            None => (
                vec![
                    PortSpec::new("train", PortType::Dataset, "mode train: labelled examples")
                        .optional(),
                    PortSpec::new(
                        "valid",
                        PortType::Dataset,
                        "mode train: validation examples",
                    )
                    .optional(),
                    PortSpec::new(
                        "docs",
                        PortType::Dataset,
                        "modes apply, medical_score: documents",
                    )
                    .optional(),
                    PortSpec::new("model", PortType::Files, "mode apply: a trained model")
                        .optional(),
                ],
                vec![
                    PortSpec::new("model", PortType::Files, "mode train: the classifier"),
                    PortSpec::new(
                        "docs",
                        PortType::Dataset,
                        "modes apply, medical_score: kept documents",
                    ),
                    PortSpec::new(
                        "rejected",
                        PortType::Dataset,
                        "modes apply, medical_score: dropped documents",
                    ),
                    docs::report_port(),
                ],
            ),
        };
        Ports {
            inputs,
            outputs,
            other_inputs: None,
        }
    }

    fn check(c: &ClassifyConfig) -> Result<(), String> {
        if c.mode == Mode::Train {
            c.classifier().validate().map_err(|e| e.to_string())?;
        }
        if !(0.0..=1.0).contains(&c.threshold) {
            return Err("`threshold` must be in [0, 1]".into());
        }
        if !(0.0..=1.0).contains(&c.min_score) {
            return Err("`min_score` must be in [0, 1]".into());
        }
        if !(c.density_half > 0.0 && c.density_half.is_finite()) {
            return Err("`density_half` must be a positive number".into());
        }
        if c.mode != Mode::Apply && (!c.keep_labels.is_empty() || c.threshold > 0.0 || c.scores) {
            return Err(
                "`keep_labels`, `threshold` and `scores` apply only to `mode: apply`".into(),
            );
        }
        if c.mode != Mode::MedicalScore && c.min_score > 0.0 {
            return Err("`min_score` applies only to `mode: medical_score`".into());
        }
        Ok(())
    }

    fn run(c: &ClassifyConfig, ctx: &mut OpContext) -> Result<()> {
        match c.mode {
            Mode::Train => train(c, ctx),
            Mode::Apply => apply(c, ctx),
            Mode::MedicalScore => medical(c, ctx),
        }
    }
}

/// Reads `(texts, labels)` from the dataset on `port`, skipping rows with an empty label.
fn examples(c: &ClassifyConfig, ctx: &OpContext, port: &str) -> Result<(Vec<String>, Vec<String>)> {
    ctx.block_on(async {
        let (_, mut stream) = docs::open(ctx, port).await?;
        let (mut ts, mut ls) = (Vec::new(), Vec::new());
        let mut skipped = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let t = texts(&batch, &c.text_column).with_context(|| format!("input `{port}`"))?;
            let l = texts(&batch, &c.label_column).with_context(|| format!("input `{port}`"))?;
            for (t, l) in t.into_iter().zip(l) {
                if l.trim().is_empty() {
                    skipped += 1;
                } else {
                    ts.push(t);
                    ls.push(l.trim().to_string());
                }
            }
        }
        if skipped > 0 {
            eprintln!("clean.classify: skipped {skipped} rows of `{port}` without a label");
        }
        Ok((ts, ls))
    })
}

fn eval_json(e: &Evaluation) -> serde_json::Value {
    serde_json::to_value(e).unwrap_or_default()
}

fn train(c: &ClassifyConfig, ctx: &mut OpContext) -> Result<()> {
    let (texts, labels) = examples(c, ctx, "train")?;
    if texts.is_empty() {
        bail!(
            "input `train` has no labelled rows (column `{}`)",
            c.label_column
        );
    }
    let valid = if ctx.inputs("valid").is_empty() {
        None
    } else {
        Some(examples(c, ctx, "valid")?)
    };
    let t0 = std::time::Instant::now();
    let model = Classifier::train(&c.classifier(), &texts, &labels)?;
    let secs = t0.elapsed().as_secs_f64();
    let tr = model.evaluate(&texts, &labels);
    let va = valid.as_ref().map(|(t, l)| model.evaluate(t, l));
    eprintln!(
        "clean.classify: trained on {} examples × {} epochs in {secs:.2}s ({:.0} examples/s); \
         labels {:?}; train accuracy {:.4}{}",
        texts.len(),
        c.epochs,
        (texts.len() * c.epochs) as f64 / secs.max(1e-9),
        model.labels(),
        tr.accuracy,
        va.as_ref()
            .map(|v| format!(", valid accuracy {:.4}", v.accuracy))
            .unwrap_or_default()
    );
    let meta = serde_json::json!({
        "format": "zest-classifier",
        "file": MODEL_FILE,
        "labels": model.labels(),
        "stored_rows": model.stored_rows(),
        "train_examples": texts.len(),
        "train_accuracy": tr.accuracy,
        "valid_accuracy": va.as_ref().map(|v| v.accuracy),
        "train": eval_json(&tr),
        "valid": va.as_ref().map(eval_json),
        "train_seconds": secs,
    });
    ctx.write_output("model", MODEL_FILE, model.to_bytes())?;
    ctx.write_output("model", "metrics.json", serde_json::to_vec_pretty(&meta)?)?;
    ctx.set_output_meta("model", meta);
    Ok(())
}

fn load_model(ctx: &OpContext) -> Result<Classifier> {
    let dir = ctx.input("model")?.path()?;
    let path = dir.join(MODEL_FILE);
    if !path.exists() {
        let names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        bail!(
            "input `model` has no {MODEL_FILE} (files: {}); connect the `model` output of a \
             clean.classify node with `mode: train`",
            names.join(", ")
        );
    }
    Ok(Classifier::load(&path)?)
}

fn scores_field() -> Field {
    let item = Fields::from(vec![
        Field::new("label", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
    ]);
    Field::new(
        "label_scores",
        DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(item),
            false,
        ))),
        false,
    )
}

fn apply(c: &ClassifyConfig, ctx: &mut OpContext) -> Result<()> {
    let model = load_model(ctx)?;
    let unknown: Vec<&String> = c
        .keep_labels
        .iter()
        .filter(|l| !model.labels().contains(l))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "`keep_labels` names {:?}, which the model does not know (its labels: {:?})",
            unknown,
            model.labels()
        );
    }
    let docs_dir = ctx.output_dir("docs")?.to_path_buf();
    let rej_dir = ctx.output_dir("rejected")?.to_path_buf();
    let keep: BTreeSet<&str> = c.keep_labels.iter().map(String::as_str).collect();
    let writer = ctx.block_on(async {
        let (schema, mut stream) = docs::open(ctx, "docs").await?;
        let mut added = vec![
            Field::new("label", DataType::Utf8, false),
            Field::new("label_score", DataType::Float64, false),
        ];
        if c.scores {
            added.push(scores_field());
        }
        let mut w = SplitWriter::new(&schema, added, &docs_dir, Some(&rej_dir))?
            .with_report(Classify::NAME, report_columns(c));
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let ts = texts(&batch, &c.text_column)?;
            let mut lab = StringBuilder::new();
            let mut score = Float64Builder::new();
            let item = match scores_field().data_type() {
                DataType::List(f) => f.clone(),
                _ => unreachable!("label_scores is a list"),
            };
            let DataType::Struct(sf) = item.data_type().clone() else {
                unreachable!("label_scores holds structs")
            };
            let mut all =
                ListBuilder::new(StructBuilder::from_fields(sf, ts.len())).with_field(item.clone());
            let mut reasons = Vec::with_capacity(ts.len());
            for t in &ts {
                let ranked = model.predict(t, model.labels().len());
                let (best, p) = &ranked[0];
                lab.append_value(best);
                score.append_value(*p);
                if c.scores {
                    let sb = all.values();
                    for (l, s) in &ranked {
                        sb.field_builder::<StringBuilder>(0)
                            .expect("label field")
                            .append_value(l);
                        sb.field_builder::<Float64Builder>(1)
                            .expect("score field")
                            .append_value(*s);
                        sb.append(true);
                    }
                    all.append(true);
                }
                let mut r = Vec::new();
                if !keep.is_empty() && !keep.contains(best.as_str()) {
                    r.push(format!("label:{best}"));
                } else if *p < c.threshold {
                    r.push(format!("label:{best}<{}", c.threshold));
                }
                reasons.push(r);
            }
            let mut cols: Vec<ArrayRef> = vec![Arc::new(lab.finish()), Arc::new(score.finish())];
            if c.scores {
                cols.push(Arc::new(all.finish()));
            }
            w.write(&batch, cols, &reasons)?;
        }
        Ok::<_, anyhow::Error>(w)
    })?;
    let (k, r) = writer.counts();
    eprintln!("clean.classify: kept {k} documents, rejected {r}");
    writer.finish(ctx, "docs", "rejected")
}

/// The distinct entity types of each row of an `entities` list-of-struct column.
fn entity_types(col: &ArrayRef) -> Result<Vec<usize>> {
    let list = col.as_any().downcast_ref::<ListArray>().ok_or_else(|| {
        anyhow!(
            "column `entities` is not a list (it is {})",
            col.data_type()
        )
    })?;
    let mut out = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        if list.is_null(i) {
            out.push(0);
            continue;
        }
        let v = list.value(i);
        let s = v
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| anyhow!("column `entities` does not hold structs"))?;
        let ty = s
            .column_by_name("type")
            .ok_or_else(|| anyhow!("the structs of column `entities` have no field `type`"))?;
        let ty = docs::strings(ty, "entities.type")?;
        let set: BTreeSet<&str> = (0..ty.len())
            .filter(|&j| !ty.is_null(j))
            .map(|j| ty.value(j))
            .collect();
        out.push(set.len());
    }
    Ok(out)
}

/// The medical score of one document (see the module docs).
pub fn medical_score(density: f64, count: f64, types: Option<usize>, density_half: f64) -> f64 {
    let density = if density.is_finite() {
        density.max(0.0)
    } else {
        0.0
    };
    let dd = density / (density + density_half);
    let n = 1.0 - (-count.max(0.0) / 5.0).exp();
    let s = match types {
        Some(t) => 0.6 * dd + 0.2 * n + 0.2 * (t.min(4) as f64 / 4.0),
        None => 0.75 * dd + 0.25 * n,
    };
    s.clamp(0.0, 1.0)
}

fn f64_col(batch: &RecordBatch, name: &str) -> Result<Float64Array> {
    let col = column(batch, name).map_err(|e| {
        anyhow!("{e}; `mode: medical_score` reads the annotations of clean.entities, which must run first")
    })?;
    let c =
        cast(col, &DataType::Float64).with_context(|| format!("column `{name}` is not numeric"))?;
    Ok(c.as_any()
        .downcast_ref::<Float64Array>()
        .expect("cast to Float64")
        .clone())
}

fn medical(c: &ClassifyConfig, ctx: &mut OpContext) -> Result<()> {
    let docs_dir = ctx.output_dir("docs")?.to_path_buf();
    let rej_dir = ctx.output_dir("rejected")?.to_path_buf();
    let writer = ctx.block_on(async {
        let (schema, mut stream) = docs::open(ctx, "docs").await?;
        for needed in ["entity_density", "entity_count"] {
            if schema.index_of(needed).is_err() {
                return Err(zest_engine::failure::permanent(format!(
                    "input `docs` has no column `{needed}`: `mode: medical_score` reads the \
                     annotations of clean.entities, which must run first"
                )));
            }
        }
        let has_entities = schema.index_of("entities").is_ok();
        let added = vec![Field::new("medical_score", DataType::Float64, false)];
        let mut w = SplitWriter::new(&schema, added, &docs_dir, Some(&rej_dir))?
            .with_report(Classify::NAME, report_columns(c));
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let dens = f64_col(&batch, "entity_density")?;
            let count = f64_col(&batch, "entity_count")?;
            let types = if has_entities {
                Some(entity_types(column(&batch, "entities")?)?)
            } else {
                None
            };
            let mut scores = Vec::with_capacity(batch.num_rows());
            let mut reasons = Vec::with_capacity(batch.num_rows());
            for i in 0..batch.num_rows() {
                let d = if dens.is_null(i) { 0.0 } else { dens.value(i) };
                let n = if count.is_null(i) {
                    0.0
                } else {
                    count.value(i)
                };
                let s = medical_score(d, n, types.as_ref().map(|t| t[i]), c.density_half);
                scores.push(s);
                reasons.push(if s < c.min_score {
                    vec![format!("medical_score<{}", c.min_score)]
                } else {
                    vec![]
                });
            }
            w.write(&batch, vec![Arc::new(Float64Array::from(scores))], &reasons)?;
        }
        Ok::<_, anyhow::Error>(w)
    })?;
    let (k, r) = writer.counts();
    eprintln!("clean.classify: medical_score kept {k} documents, rejected {r}");
    writer.finish(ctx, "docs", "rejected")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medical_score_saturates_in_the_unit_interval() {
        assert_eq!(medical_score(0.0, 0.0, Some(0), 0.05), 0.0);
        assert!((medical_score(0.05, 0.0, None, 0.05) - 0.375).abs() < 1e-12);
        let hi = medical_score(10.0, 1000.0, Some(9), 0.05);
        assert!(hi > 0.99 && hi <= 1.0, "{hi}");
        assert!(medical_score(0.1, 5.0, Some(2), 0.05) < medical_score(0.1, 5.0, Some(3), 0.05));
        assert_eq!(medical_score(f64::NAN, -3.0, None, 0.05), 0.0);
    }
}
