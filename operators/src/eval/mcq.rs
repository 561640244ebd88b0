//! `eval.mcq`: zero-shot multiple-choice evaluation of one or more models on benchmarks read
//! as published. Each question becomes one user turn asking for `<think>…</think><answer>…
//! </answer>` (or the letter alone); the answer is extracted ([`super::extract`]) and scored;
//! the report has accuracy with a bootstrap 95% interval overall, per exam and per subject,
//! format adherence and unanswered counts, for every model side by side.
//!
//! Generation runs on the kernels in `zest-torch` (greedy unless `temperature` is set); the
//! rest (reading, prompting, extraction, scoring, the report) is here.

use super::extract::{extract, follows_format, Extracted, Method};
use super::items::{self, letter, Item, Layout};
use super::stats::{accuracy, Accuracy};
use crate::train::common::{check_device, default_device, Precision};
use crate::train::data::{batch_rows, read_rows};
use anyhow::{bail, Context, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports, WorkerKind};

/// What the model is asked to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum AnswerFormat {
    /// `<think>…</think><answer>…</answer>`, the letter in the answer (Citrus's format).
    #[default]
    Think,
    /// The letter of the right option alone.
    Letter,
    /// Nothing is written: each option's text is scored by its log-likelihood after the
    /// question (`Question: … Answer:`, no chat template), divided by its length in bytes,
    /// and the most likely option is the model's answer. This is how lm-eval-harness scores
    /// multiple-choice questions (`acc_norm`); it measures what a base model knows before it
    /// has learnt to answer in a format.
    Loglik,
}

/// `eval.mcq`'s config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McqConfig {
    /// Names of the models on the `models` port, in its order (default `model1`, `model2`, …).
    #[serde(default)]
    pub names: Vec<String>,
    /// Names of the benchmarks on the `data` port, in its order; a record's own `exam_name`
    /// wins (default `data1`, `data2`, …).
    #[serde(default)]
    pub exams: Vec<String>,
    /// The benchmarks' record layout.
    #[serde(default)]
    pub layout: Layout,
    /// What the model is asked to write.
    #[serde(default)]
    pub answer_format: AnswerFormat,
    /// Shuffle each question's options with this seed (the same order on every run); unset:
    /// the published order.
    #[serde(default)]
    pub shuffle_seed: Option<u64>,
    /// At most this many questions per benchmark (the first ones).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Most tokens generated per answer (default 1024 for `think`, 8 for `letter`).
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
    /// Sampling temperature; 0 is greedy.
    #[serde(default)]
    pub temperature: f64,
    /// Nucleus sampling's mass (with a temperature above 0).
    #[serde(default = "one")]
    pub top_p: f64,
    /// Seed of sampling and of the bootstrap.
    #[serde(default)]
    pub seed: u64,
    /// Questions generated together.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Longest prompt, in tokens; longer prompts keep their end.
    #[serde(default = "default_prompt_tokens")]
    pub max_prompt_tokens: usize,
    /// Bootstrap resamples for the 95% intervals (0: none).
    #[serde(default = "default_bootstrap")]
    pub bootstrap: usize,
    /// The element type the models run in.
    #[serde(default)]
    pub dtype: Precision,
    /// The device.
    #[serde(default = "default_device")]
    pub device: String,
}

fn one() -> f64 {
    1.0
}

fn default_batch() -> usize {
    16
}

fn default_prompt_tokens() -> usize {
    2048
}

fn default_bootstrap() -> usize {
    1000
}

impl McqConfig {
    /// Tokens generated at most per answer.
    pub fn new_tokens(&self) -> usize {
        self.max_new_tokens.unwrap_or(match self.answer_format {
            AnswerFormat::Think => 1024,
            AnswerFormat::Letter => 8,
            AnswerFormat::Loglik => 0,
        })
    }

    /// The name of model `i`.
    pub fn model_name(&self, i: usize) -> String {
        self.names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("model{}", i + 1))
    }
}

/// Whether `s` holds Chinese characters (then prompts are in Chinese).
pub fn has_cjk(s: &str) -> bool {
    s.chars()
        .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c))
}

/// The user turn for `item`: English, or Chinese for a Chinese question. Under `loglik`, the
/// text the options continue ([`likelihood_context`]).
pub fn prompt(item: &Item, format: AnswerFormat) -> String {
    let zh = has_cjk(&item.question);
    if format == AnswerFormat::Loglik {
        return likelihood_context(item);
    }
    let options: String = item
        .options
        .iter()
        .enumerate()
        .map(|(i, o)| format!("{}. {}\n", letter(i), o.trim()))
        .collect();
    let letters: Vec<String> = (0..item.options.len())
        .map(|i| letter(i).to_string())
        .collect();
    let letters = letters.join(", ");
    let q = item.question.trim();
    match (format, zh) {
        (AnswerFormat::Think, false) => format!(
            "Answer the following multiple-choice question. Reason step by step inside \
             <think></think>, then give the letter of the correct option ({letters}) inside \
             <answer></answer>.\n\nQuestion: {q}\n\nOptions:\n{options}"
        ),
        (AnswerFormat::Letter, false) => format!(
            "Answer the following multiple-choice question with the letter of the correct \
             option ({letters}) only.\n\nQuestion: {q}\n\nOptions:\n{options}"
        ),
        (AnswerFormat::Think, true) => format!(
            "请回答下面的单项选择题。先在<think></think>中逐步推理，再在<answer></answer>中给出\
             正确选项的字母（{letters}）。\n\n题目：{q}\n\n选项：\n{options}"
        ),
        (AnswerFormat::Letter, true) => format!(
            "请回答下面的单项选择题，只回答正确选项的字母（{letters}）。\n\n题目：{q}\n\n选项：\n{options}"
        ),
        (AnswerFormat::Loglik, _) => unreachable!("handled above"),
    }
}

/// The text each option continues under `loglik`: the question alone, then `Answer:` (the
/// options are not listed, so that each is scored as a statement of its own).
pub fn likelihood_context(item: &Item) -> String {
    let q = item.question.trim();
    if has_cjk(q) {
        format!("问题：{q}\n答案：")
    } else {
        format!("Question: {q}\nAnswer:")
    }
}

/// The continuation scored for option `text` under `loglik`: a space, then the option, as
/// lm-eval-harness joins them (no space after a Chinese context).
pub fn likelihood_continuation(item: &Item, text: &str) -> String {
    if has_cjk(&item.question) {
        text.trim().to_string()
    } else {
        format!(" {}", text.trim())
    }
}

/// Scores model `name` under `loglik`: `logps[i][j]` is the summed log-probability of item
/// `i`'s option `j` ([`likelihood_continuation`]); each is divided by the option's length in
/// bytes and the largest wins (the first of equals).
pub fn score_likelihoods(name: &str, items: &[Item], logps: &[Vec<f64>]) -> Vec<Prediction> {
    items
        .iter()
        .zip(logps)
        .map(|(it, lp)| {
            let norm: Vec<f64> = it
                .options
                .iter()
                .zip(lp)
                .map(|(o, l)| l / likelihood_continuation(it, o).len().max(1) as f64)
                .collect();
            let mut best: Option<usize> = None;
            for (j, v) in norm.iter().enumerate() {
                if v.is_finite() && best.is_none_or(|b| *v > norm[b]) {
                    best = Some(j);
                }
            }
            let response = norm
                .iter()
                .enumerate()
                .map(|(j, v)| format!("{}: {v:.4}", letter(j)))
                .collect::<Vec<_>>()
                .join(", ");
            let picked = best.map(|option| Extracted {
                option,
                method: Method::Likelihood,
            });
            Prediction::new(name, it, picked, true, likelihood_context(it), response)
        })
        .collect()
}

/// The questions of every benchmark on the `data` port, shuffled and limited as configured.
pub fn load_items(c: &McqConfig, ctx: &OpContext) -> Result<Vec<Item>> {
    let arts = ctx.inputs("data");
    let mut out = vec![];
    let mut seen = std::collections::HashSet::new();
    for (d, _) in arts.iter().enumerate() {
        let exam = c
            .exams
            .get(d)
            .cloned()
            .unwrap_or_else(|| format!("data{}", d + 1));
        let rows = read_rows_at(ctx, d)?;
        let base = items::medmcqa_cop_base(&rows);
        for (i, row) in rows.iter().enumerate() {
            if c.limit.is_some_and(|l| i >= l) {
                break;
            }
            let mut item = items::read(row, c.layout, &exam, i, base).map_err(|e| {
                anyhow::anyhow!("input `data` #{} ({exam}), record {i}: {e}", d + 1)
            })?;
            if let Some(seed) = c.shuffle_seed {
                item = items::shuffled(&item, seed);
            }
            if !seen.insert((item.exam.clone(), item.id.clone())) {
                bail!(
                    "input `data` #{} ({exam}), record {i}: id `{}` appears twice in exam `{}`",
                    d + 1,
                    item.id,
                    item.exam
                );
            }
            out.push(item);
        }
    }
    if out.is_empty() {
        bail!("input `data` holds no questions");
    }
    Ok(out)
}

/// The rows of the `d`-th dataset on the `data` port.
fn read_rows_at(ctx: &OpContext, d: usize) -> Result<Vec<Value>> {
    if ctx.inputs("data").len() == 1 {
        return read_rows(ctx, "data");
    }
    let art = &ctx.inputs("data")[d];
    let path = art.path()?.join(crate::data::dataset::DATA_FILE);
    let file =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
            .build()?;
    let mut out = vec![];
    for batch in reader {
        out.extend(batch_rows(&batch?)?);
    }
    Ok(out)
}

/// One model's answer to one question, scored.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The model's name.
    pub model: String,
    /// The exam.
    pub exam: String,
    /// The question's id.
    pub id: String,
    /// Its subject, if any.
    pub subject: Option<String>,
    /// The letter of the right option.
    pub answer: String,
    /// The letter extracted from the response, if any.
    pub predicted: Option<String>,
    /// Whether it is right.
    pub correct: bool,
    /// How the answer was found.
    pub method: Option<Method>,
    /// Whether the response kept the format asked for.
    pub format_ok: bool,
    /// The user turn the model answered.
    pub prompt: String,
    /// The response.
    pub response: String,
}

impl Prediction {
    /// Model `name`'s answer `picked` to `item`, given `prompt`, as `response`.
    fn new(
        name: &str,
        item: &Item,
        picked: Option<Extracted>,
        format_ok: bool,
        prompt: String,
        response: String,
    ) -> Prediction {
        Prediction {
            model: name.to_string(),
            exam: item.exam.clone(),
            id: item.id.clone(),
            subject: item.subject.clone(),
            answer: letter(item.answer).to_string(),
            predicted: picked.map(|e| letter(e.option).to_string()),
            correct: picked.is_some_and(|e| e.option == item.answer),
            method: picked.map(|e| e.method),
            format_ok,
            prompt,
            response,
        }
    }
}

/// Scores `responses` (one per item, in order) of model `name`.
pub fn score(c: &McqConfig, name: &str, items: &[Item], responses: &[String]) -> Vec<Prediction> {
    let think = c.answer_format == AnswerFormat::Think;
    items
        .iter()
        .zip(responses)
        .map(|(it, r)| {
            Prediction::new(
                name,
                it,
                extract(r, &it.options),
                follows_format(r, think, it.options.len()),
                prompt(it, c.answer_format),
                r.clone(),
            )
        })
        .collect()
}

/// A model's summary.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// The model's name.
    pub model: String,
    /// Over every question.
    pub overall: Accuracy,
    /// Per exam.
    pub exams: BTreeMap<String, Accuracy>,
    /// Per subject, where the benchmarks give one.
    pub subjects: BTreeMap<String, Accuracy>,
    /// Share of responses in the format asked for (none under `loglik`, where nothing is
    /// written).
    pub format_adherence: Option<f64>,
    /// Responses from which no option could be extracted.
    pub unanswered: usize,
    /// How the answers were found: method → count.
    pub methods: BTreeMap<String, usize>,
    /// Chance accuracy on these questions (the mean of 1 / options).
    pub chance: f64,
}

/// The summary of one model's predictions.
pub fn summarise(c: &McqConfig, items: &[Item], preds: &[Prediction]) -> ModelSummary {
    let outcomes: Vec<bool> = preds.iter().map(|p| p.correct).collect();
    let mut exams: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let mut subjects: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let mut methods = BTreeMap::new();
    for p in preds {
        exams.entry(p.exam.clone()).or_default().push(p.correct);
        if let Some(s) = &p.subject {
            subjects.entry(s.clone()).or_default().push(p.correct);
        }
        let m = p.method.map_or("none".to_string(), |m| {
            serde_json::to_value(m)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        });
        *methods.entry(m).or_insert(0) += 1;
    }
    let acc = |v: &[bool]| accuracy(v, c.bootstrap, c.seed);
    let n = preds.len().max(1) as f64;
    ModelSummary {
        model: preds.first().map(|p| p.model.clone()).unwrap_or_default(),
        overall: acc(&outcomes),
        exams: exams.iter().map(|(k, v)| (k.clone(), acc(v))).collect(),
        subjects: subjects.iter().map(|(k, v)| (k.clone(), acc(v))).collect(),
        format_adherence: (c.answer_format != AnswerFormat::Loglik)
            .then(|| preds.iter().filter(|p| p.format_ok).count() as f64 / n),
        unanswered: preds.iter().filter(|p| p.predicted.is_none()).count(),
        methods,
        chance: items
            .iter()
            .map(|i| 1.0 / i.options.len() as f64)
            .sum::<f64>()
            / items.len().max(1) as f64,
    }
}

/// The report as Markdown: one row per model.
pub fn markdown(summaries: &[ModelSummary]) -> String {
    let mut exams: Vec<&String> = summaries.iter().flat_map(|s| s.exams.keys()).collect();
    exams.sort();
    exams.dedup();
    let mut md = String::from("| model | accuracy (95% CI) |");
    for e in &exams {
        md.push_str(&format!(" {e} |"));
    }
    md.push_str(" format adherence | unanswered | n |\n|---|---|");
    for _ in &exams {
        md.push_str("---:|");
    }
    md.push_str("---:|---:|---:|\n");
    for s in summaries {
        let o = &s.overall;
        md.push_str(&format!(
            "| {} | {:.1}% ({:.1}–{:.1}) |",
            s.model,
            100.0 * o.accuracy,
            100.0 * o.ci_low,
            100.0 * o.ci_high
        ));
        for e in &exams {
            match s.exams.get(*e) {
                Some(a) => md.push_str(&format!(" {:.1}% |", 100.0 * a.accuracy)),
                None => md.push_str(" — |"),
            }
        }
        let adherence = s
            .format_adherence
            .map_or("—".to_string(), |f| format!("{:.1}%", 100.0 * f));
        md.push_str(&format!(" {adherence} | {} | {} |\n", s.unanswered, o.n));
    }
    if let Some(s) = summaries.first() {
        md.push_str(&format!("\nChance: {:.1}%.\n", 100.0 * s.chance));
    }
    md
}

/// Writes the `report` (report.json, report.md) and `predictions` outputs.
pub fn write_outputs(
    c: &McqConfig,
    ctx: &mut OpContext,
    items: &[Item],
    preds: &[Vec<Prediction>],
) -> Result<Vec<ModelSummary>> {
    let summaries: Vec<ModelSummary> = preds.iter().map(|p| summarise(c, items, p)).collect();
    let dir = ctx.output_dir("report")?.to_path_buf();
    let report = json!({
        "answer_format": c.answer_format,
        "shuffle_seed": c.shuffle_seed,
        "questions": items.len(),
        "bootstrap": c.bootstrap,
        "models": summaries,
    });
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    std::fs::write(dir.join("report.md"), markdown(&summaries))?;
    let dir = ctx.output_dir("predictions")?.to_path_buf();
    let meta = write_predictions(&dir, preds.iter().flatten())?;
    ctx.set_output_meta("predictions", meta);
    Ok(summaries)
}

fn write_predictions<'a>(
    dir: &std::path::Path,
    preds: impl Iterator<Item = &'a Prediction>,
) -> Result<Value> {
    use datafusion::arrow::array::{ArrayRef, BooleanBuilder, StringBuilder};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;
    let text_cols = [
        "model",
        "exam",
        "id",
        "subject",
        "answer",
        "predicted",
        "method",
        "prompt",
        "response",
    ];
    let mut texts: Vec<StringBuilder> = text_cols.iter().map(|_| StringBuilder::new()).collect();
    let (mut correct, mut format_ok) = (BooleanBuilder::new(), BooleanBuilder::new());
    let mut rows = 0;
    for p in preds {
        let method = p.method.map(|m| {
            serde_json::to_value(m)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        });
        let vals = [
            Some(p.model.as_str()),
            Some(p.exam.as_str()),
            Some(p.id.as_str()),
            p.subject.as_deref(),
            Some(p.answer.as_str()),
            p.predicted.as_deref(),
            method.as_deref(),
            Some(p.prompt.as_str()),
            Some(p.response.as_str()),
        ];
        for (b, v) in texts.iter_mut().zip(vals) {
            b.append_option(v);
        }
        correct.append_value(p.correct);
        format_ok.append_value(p.format_ok);
        rows += 1;
    }
    let mut fields: Vec<Field> = text_cols
        .iter()
        .map(|n| {
            Field::new(
                *n,
                DataType::Utf8,
                matches!(*n, "subject" | "predicted" | "method"),
            )
        })
        .collect();
    fields.push(Field::new("correct", DataType::Boolean, false));
    fields.push(Field::new("format_ok", DataType::Boolean, false));
    let schema = Arc::new(Schema::new(fields));
    let mut cols: Vec<ArrayRef> = texts
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    cols.push(Arc::new(correct.finish()));
    cols.push(Arc::new(format_ok.finish()));
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    let mut w = crate::data::dataset::writer(dir, schema.clone())?;
    w.write(&batch)?;
    w.close()?;
    Ok(crate::data::dataset::meta(&schema, rows))
}

/// `eval.mcq`.
pub struct EvalMcq;

impl Operator for EvalMcq {
    type Config = McqConfig;
    const NAME: &'static str = "eval.mcq";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Zero-shot multiple-choice evaluation (MedQA, Citrus unified, MMLU, PubMedQA, MedMCQA) of one or more models";
    const WORKER: WorkerKind = WorkerKind::Torch;

    fn ports(_config: Option<&McqConfig>) -> Ports {
        Ports {
            inputs: vec![
                PortSpec::new(
                    "models",
                    PortType::Model,
                    "the models to evaluate, each with its tokenizer",
                )
                .many(),
                PortSpec::new(
                    "data",
                    PortType::Dataset,
                    "the benchmarks, read as published",
                )
                .many(),
            ],
            outputs: vec![
                PortSpec::new(
                    "report",
                    PortType::Report,
                    "accuracy with 95% intervals per model, exam and subject; format adherence",
                ),
                PortSpec::new(
                    "predictions",
                    PortType::Dataset,
                    "every response with the extracted answer and whether it is right",
                ),
            ],
            other_inputs: None,
        }
    }

    fn check(c: &McqConfig) -> Result<(), String> {
        if c.batch_size == 0 {
            return Err("batch_size: must be at least 1".into());
        }
        if c.max_new_tokens == Some(0) {
            return Err("max_new_tokens: must be at least 1".into());
        }
        if c.max_prompt_tokens < 16 {
            return Err("max_prompt_tokens: must be at least 16".into());
        }
        if c.limit == Some(0) {
            return Err("limit: must be at least 1".into());
        }
        if !(c.temperature >= 0.0 && c.temperature.is_finite()) {
            return Err("temperature: must be 0 or more".into());
        }
        if !(c.top_p > 0.0 && c.top_p <= 1.0) {
            return Err("top_p: must be in (0, 1]".into());
        }
        let mut names = c.names.clone();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err("names: every model needs its own name".into());
        }
        check_device(&c.device)
    }

    fn run(config: &McqConfig, ctx: &mut OpContext) -> anyhow::Result<()> {
        if !config.names.is_empty() && config.names.len() != ctx.inputs("models").len() {
            bail!(
                "`names` has {} names for {} models on the `models` port",
                config.names.len(),
                ctx.inputs("models").len()
            );
        }
        crate::train::run_in_torch(Self::NAME, config, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(q: &str) -> Item {
        Item {
            id: "1".into(),
            exam: "medqa".into(),
            subject: Some("step1".into()),
            question: q.into(),
            options: vec!["Ampicillin".into(), "Nitrofurantoin".into()],
            answer: 1,
        }
    }

    #[test]
    fn prompts_list_the_options_in_the_question_language() {
        let p = prompt(&item("Best treatment?"), AnswerFormat::Think);
        assert!(
            p.contains("<think></think>") && p.contains("A. Ampicillin\nB. Nitrofurantoin\n"),
            "{p}"
        );
        assert!(p.contains("(A, B)"), "{p}");
        let p = prompt(&item("最佳治疗是什么？"), AnswerFormat::Letter);
        assert!(
            p.starts_with("请回答") && p.contains("B. Nitrofurantoin"),
            "{p}"
        );
    }

    #[test]
    fn scoring_and_summary() {
        let c: McqConfig = serde_json::from_value(json!({"bootstrap": 200})).unwrap();
        let items = vec![
            item("q1"),
            Item {
                id: "2".into(),
                ..item("q2")
            },
        ];
        let responses = vec![
            "<think>Pregnancy: nitrofurantoin.</think><answer>B</answer>".to_string(),
            "Ampicillin, I think.".to_string(),
        ];
        let preds = score(&c, "m", &items, &responses);
        assert!(preds[0].correct && preds[0].format_ok);
        assert!(!preds[1].correct && !preds[1].format_ok);
        assert_eq!(preds[1].predicted.as_deref(), Some("A"));
        let s = summarise(&c, &items, &preds);
        assert_eq!((s.overall.correct, s.overall.n, s.unanswered), (1, 2, 0));
        assert_eq!(s.format_adherence, Some(0.5));
        assert_eq!(s.chance, 0.5);
        assert_eq!(s.subjects["step1"].n, 2);
        let md = markdown(&[s]);
        assert!(
            md.contains("| m | 50.0% (") && md.contains("Chance: 50.0%"),
            "{md}"
        );
    }

    #[test]
    fn likelihoods_are_compared_per_byte() {
        let c: McqConfig =
            serde_json::from_value(json!({"answer_format": "loglik", "bootstrap": 0})).unwrap();
        let it = item("Best treatment in pregnancy?");
        assert_eq!(
            prompt(&it, c.answer_format),
            "Question: Best treatment in pregnancy?\nAnswer:"
        );
        assert_eq!(likelihood_continuation(&it, "Ampicillin "), " Ampicillin");
        // " Ampicillin" is 11 bytes, " Nitrofurantoin" 15: the longer option has the lower
        // sum and the higher mean, and the mean decides.
        let preds = score_likelihoods("m", std::slice::from_ref(&it), &[vec![-11.0, -12.0]]);
        assert_eq!(preds[0].predicted.as_deref(), Some("B"));
        assert!(preds[0].correct);
        assert_eq!(preds[0].method, Some(Method::Likelihood));
        assert_eq!(preds[0].response, "A: -1.0000, B: -0.8000");
        // Not a number is never the answer; nothing finite is no answer.
        let preds = score_likelihoods("m", std::slice::from_ref(&it), &[vec![-11.0, f64::NAN]]);
        assert_eq!(preds[0].predicted.as_deref(), Some("A"));
        let preds = score_likelihoods("m", std::slice::from_ref(&it), &[vec![f64::NAN, f64::NAN]]);
        assert_eq!(preds[0].predicted, None);
        let s = summarise(&c, &[it], &preds);
        assert_eq!((s.format_adherence, s.unanswered), (None, 1));
        assert!(markdown(&[s]).contains("| — | 1 | 1 |"));
        let zh = item("最佳治疗是什么？");
        assert_eq!(likelihood_context(&zh), "问题：最佳治疗是什么？\n答案：");
        assert_eq!(likelihood_continuation(&zh, " 氨苄西林"), "氨苄西林");
    }
}
