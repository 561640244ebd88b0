//! `train.sft`: supervised fine-tuning, one stage per node (a DAG chains stage 1 → 2 → 3, each
//! from the model before). Reads the formats users have, unchanged: TRL `messages`,
//! `prompt`/`completion` (plain or conversational), Alpaca `instruction`/`input`/`output`,
//! ShareGPT `conversations`, Citrus `{input, target}`. Conversations are rendered with the
//! tokenizer's chat template; the loss is on the assistant turns, the last one, or all tokens.
//!
//! This module holds the config and the conversion of records into token ids and labels
//! (which needs no libtorch); `zest-torch` trains.

use super::common::{
    check_device, default_device, CheckpointPolicy, DataParallel, OptimConfig, OptimOverrides,
    Precision,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports, WorkerKind};
use zest_kernels::text_tokenizer::TextTokenizer;

/// Labels of tokens without loss (transformers' `ignore_index`).
pub const IGNORE: i64 = -100;

/// The record format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Found from the columns: `messages`, `conversations`, `prompt`+`completion`,
    /// `instruction`+`output`, `input`+`target`.
    #[default]
    Auto,
    /// TRL's `messages`: a list of `{role, content}`.
    Messages,
    /// TRL's `prompt` and `completion`: lists of messages (rendered with the chat template),
    /// or plain text (trained as raw text with the end-of-text token after the completion, as
    /// TRL does).
    PromptCompletion,
    /// Alpaca's `instruction`, optional `input`, `output` (and optional `system`).
    Alpaca,
    /// ShareGPT's `conversations`: a list of `{from, value}` (`human`, `gpt`, `system`).
    Sharegpt,
    /// Citrus's `input` and `target`.
    Citrus,
}

/// Which tokens carry the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossOn {
    /// Every assistant turn (and the completion of prompt/completion records).
    #[default]
    Assistant,
    /// Only the last assistant turn.
    Last,
    /// Every token.
    All,
}

/// Which end of a too-long example is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Keep the start (drop the end).
    #[default]
    Right,
    /// Keep the end (drop the start).
    Left,
}

/// `train.sft`'s config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    /// The record format.
    #[serde(default)]
    pub format: Format,
    /// Prepended as a system turn to conversations that have none.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Which tokens carry the loss.
    #[serde(default)]
    pub loss_on: LossOn,
    /// Longest example in tokens.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Which end of a longer example is cut.
    #[serde(default)]
    pub truncation: Side,
    /// Pack several examples into rows of `max_length` tokens (attention stays within each).
    #[serde(default)]
    pub packing: bool,
    /// Examples (or packed rows) per micro-batch.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Passes over the data (the last one may be partial).
    #[serde(default = "default_epochs")]
    pub epochs: f64,
    /// A step budget instead of `epochs`.
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Changes to the optimiser and schedule; the defaults are fine-tuning's ([`sft_optim`]:
    /// lr 2e-5, no weight decay, warmup ratio 0.03, cosine decay).
    #[serde(default)]
    pub optim: OptimOverrides,
    /// Validation loss on the `eval` input every this many steps (0: at the end only).
    #[serde(default = "default_eval_every")]
    pub eval_every: u64,
    /// Checkpoints in the store while training.
    #[serde(default)]
    pub checkpoint: CheckpointPolicy,
    /// The element type of weights and training.
    #[serde(default)]
    pub dtype: Precision,
    /// The device.
    #[serde(default = "default_device")]
    pub device: String,
    /// Seed of the data order.
    #[serde(default)]
    pub seed: u64,
    /// Print progress every this many steps.
    #[serde(default = "default_log_every")]
    pub log_every: u64,
    /// Pre-training text (the `replay` input) mixed among the fine-tuning examples, so that
    /// a stage does not overwrite what continued pre-training stored. On with its defaults
    /// when the `replay` input is connected.
    #[serde(default)]
    pub replay: Option<ReplayConfig>,
    /// Train over several processes on this machine (one per GPU); one when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_parallel: Option<DataParallel>,
}

/// Replay of pre-training text during fine-tuning: the text is tokenized as `train.cpt`
/// tokenizes it, cut into rows of `seq_len` tokens that carry the loss on every token, and
/// rows are drawn so that they make up `ratio` of every epoch's training units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// The share of each epoch's units that are replayed rows (0 ≤ ratio < 1): with n
    /// fine-tuning units, `round(n · ratio / (1 − ratio))` rows join them.
    #[serde(default = "default_replay_ratio")]
    pub ratio: f64,
    /// Tokens per replayed row (at most `max_length`; default: 512 or `max_length` if less).
    #[serde(default)]
    pub seq_len: Option<usize>,
    /// The text column of the `replay` datasets.
    #[serde(default = "default_text_column")]
    pub text_column: String,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            ratio: default_replay_ratio(),
            seq_len: None,
            text_column: default_text_column(),
        }
    }
}

impl ReplayConfig {
    /// How many replayed rows join `units` fine-tuning units.
    pub fn rows_for(&self, units: usize) -> usize {
        (units as f64 * self.ratio / (1.0 - self.ratio)).round() as usize
    }

    /// Tokens per replayed row under `max_length`.
    pub fn seq_len(&self, max_length: usize) -> usize {
        self.seq_len.unwrap_or(512.min(max_length))
    }
}

fn default_replay_ratio() -> f64 {
    0.25
}
fn default_text_column() -> String {
    "text".into()
}

fn default_max_length() -> usize {
    2048
}
fn default_batch() -> usize {
    8
}
fn one() -> usize {
    1
}
fn default_epochs() -> f64 {
    1.0
}
fn default_eval_every() -> u64 {
    50
}
fn default_log_every() -> u64 {
    10
}
impl SftConfig {
    /// The optimiser and schedule: fine-tuning's defaults with the DAG's changes.
    pub fn resolved_optim(&self) -> OptimConfig {
        self.optim.over(sft_optim())
    }
}

/// The optimiser defaults of fine-tuning.
pub fn sft_optim() -> OptimConfig {
    OptimConfig {
        lr: 2e-5,
        weight_decay: 0.0,
        warmup_ratio: 0.03,
        ..OptimConfig::default()
    }
}

/// One tokenized example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Token ids.
    pub input_ids: Vec<i64>,
    /// The token itself where it carries the loss, [`IGNORE`] elsewhere (unshifted, as
    /// transformers takes `labels`).
    pub labels: Vec<i64>,
}

impl Example {
    /// Tokens that carry the loss (after the shift: the first token never does).
    pub fn scored(&self) -> usize {
        self.labels.iter().skip(1).filter(|l| **l != IGNORE).count()
    }
}

fn cols(row: &Value) -> impl Fn(&str) -> bool + '_ {
    move |k| row.get(k).is_some_and(|v| !v.is_null())
}

/// The format of a record, for `auto`.
pub fn detect(row: &Value) -> Result<Format, String> {
    let has = cols(row);
    Ok(if has("messages") {
        Format::Messages
    } else if has("conversations") {
        Format::Sharegpt
    } else if has("prompt") && has("completion") {
        Format::PromptCompletion
    } else if has("instruction") && has("output") {
        Format::Alpaca
    } else if has("input") && has("target") {
        Format::Citrus
    } else {
        let names: Vec<&str> = row
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        return Err(format!(
            "cannot tell the record format from the columns ({}): expected `messages`, \
             `conversations`, `prompt`+`completion`, `instruction`+`output` or `input`+`target`; \
             or set `format`",
            names.join(", ")
        ));
    })
}

fn text<'a>(row: &'a Value, key: &str, format: &str) -> Result<&'a str, String> {
    row.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{format} records need a text column `{key}`"))
}

fn messages_of(v: &Value, what: &str) -> Result<Vec<Value>, String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("`{what}` must be a list of messages"))?;
    list.iter()
        .map(|m| {
            let role = m.get("role").and_then(Value::as_str);
            let content = m.get("content").and_then(Value::as_str);
            match (role, content) {
                (Some(r), Some(c)) => Ok(json!({"role": r, "content": c})),
                _ => Err(format!(
                    "every message of `{what}` needs `role` and `content`"
                )),
            }
        })
        .collect()
}

/// A record as a conversation, and how many leading messages are the prompt of a
/// prompt/completion record (`None` for conversations).
pub fn conversation(
    row: &Value,
    format: Format,
    system: Option<&str>,
) -> Result<(Vec<Value>, Option<usize>), String> {
    let format = match format {
        Format::Auto => detect(row)?,
        f => f,
    };
    let user = |c: &str| json!({"role": "user", "content": c});
    let assistant = |c: &str| json!({"role": "assistant", "content": c});
    let (mut msgs, prompt_len) = match format {
        Format::Auto => unreachable!("resolved above"),
        Format::Messages => (
            messages_of(row.get("messages").unwrap_or(&Value::Null), "messages")?,
            None,
        ),
        Format::PromptCompletion => {
            let (p, c) = (&row["prompt"], &row["completion"]);
            let prompt = match p {
                Value::String(s) => vec![user(s)],
                v => messages_of(v, "prompt")?,
            };
            let completion = match c {
                Value::String(s) => vec![assistant(s)],
                v => messages_of(v, "completion")?,
            };
            let n = prompt.len();
            ([prompt, completion].concat(), Some(n))
        }
        Format::Alpaca => {
            let ins = text(row, "instruction", "alpaca")?;
            let input = row.get("input").and_then(Value::as_str).unwrap_or("");
            let q = if input.is_empty() {
                ins.to_string()
            } else {
                format!("{ins}\n{input}")
            };
            let mut m = vec![];
            if let Some(s) = row.get("system").and_then(Value::as_str) {
                if !s.is_empty() {
                    m.push(json!({"role": "system", "content": s}));
                }
            }
            m.push(user(&q));
            m.push(assistant(text(row, "output", "alpaca")?));
            (m, None)
        }
        Format::Sharegpt => {
            let list = row
                .get("conversations")
                .and_then(Value::as_array)
                .ok_or("`conversations` must be a list of {from, value}")?;
            let m = list
                .iter()
                .map(|t| {
                    let from = t.get("from").and_then(Value::as_str).unwrap_or("");
                    let value = t
                        .get("value")
                        .and_then(Value::as_str)
                        .ok_or("every turn of `conversations` needs `from` and `value`")?;
                    let role = match from {
                        "human" | "user" => "user",
                        "gpt" | "assistant" | "model" | "chatgpt" | "bing" | "bard" => "assistant",
                        "system" => "system",
                        other => return Err(format!("unknown ShareGPT speaker `{other}`")),
                    };
                    Ok(json!({"role": role, "content": value}))
                })
                .collect::<Result<Vec<_>, String>>()?;
            (m, None)
        }
        Format::Citrus => (
            vec![
                user(text(row, "input", "citrus")?),
                assistant(text(row, "target", "citrus")?),
            ],
            None,
        ),
    };
    if let Some(s) = system {
        if msgs.first().and_then(|m| m["role"].as_str()) != Some("system") {
            msgs.insert(0, json!({"role": "system", "content": s}));
            return Ok((msgs, prompt_len.map(|n| n + 1)));
        }
    }
    Ok((msgs, prompt_len))
}

/// Tokenizes a conversation with the chat template; labels follow `loss_on`. A token carries
/// the loss when it starts inside the text an assistant message added to the rendering (its
/// content and end-of-turn, not the header the generation prompt holds). Prompt/completion
/// records score the completion only (as TRL's `completion_only_loss`). `None` when nothing
/// is left to score after truncation.
pub fn tokenize(
    tok: &TextTokenizer,
    messages: &[Value],
    prompt_len: Option<usize>,
    c: &SftConfig,
) -> Result<Option<Example>, String> {
    let full = tok
        .apply_chat_template(messages, false)
        .map_err(|e| e.to_string())?;
    let (ids, offsets) = tok
        .encode_with_offsets(&full, false)
        .map_err(|e| e.to_string())?;
    // Byte spans of the rendering that carry the loss.
    let mut spans: Vec<(usize, usize)> = vec![];
    let render = |n: usize, gen: bool| -> Result<usize, String> {
        if n == 0 && !gen {
            return Ok(0);
        }
        let s = tok
            .apply_chat_template(&messages[..n], gen)
            .map_err(|e| e.to_string())?;
        if !full.starts_with(&s) {
            return Err(
                "the chat template renders a conversation's start differently once more turns \
                 follow, so turns cannot be told apart"
                    .into(),
            );
        }
        Ok(s.len())
    };
    match (c.loss_on, prompt_len) {
        (LossOn::All, _) => spans.push((0, full.len())),
        (_, Some(p)) => spans.push((render(p, true)?, full.len())),
        (on, None) => {
            let assistants: Vec<usize> = (0..messages.len())
                .filter(|i| messages[*i]["role"] == "assistant")
                .collect();
            let chosen: &[usize] = match on {
                LossOn::Last => &assistants[assistants.len().saturating_sub(1)..],
                _ => &assistants,
            };
            for &i in chosen {
                spans.push((render(i, true)?, render(i + 1, false)?));
            }
        }
    }
    let labels: Vec<i64> = ids
        .iter()
        .zip(&offsets)
        .map(|(id, (start, end))| {
            let _ = end;
            let inside = spans.iter().any(|(a, b)| *start >= *a && *start < *b);
            if inside {
                *id
            } else {
                IGNORE
            }
        })
        .collect();
    Ok(finish(ids, labels, c))
}

/// Cuts an example to `max_length` on the configured side; `None` if nothing scored is left.
fn finish(mut ids: Vec<i64>, mut labels: Vec<i64>, c: &SftConfig) -> Option<Example> {
    if ids.len() > c.max_length {
        match c.truncation {
            Side::Right => {
                ids.truncate(c.max_length);
                labels.truncate(c.max_length);
            }
            Side::Left => {
                let cut = ids.len() - c.max_length;
                ids.drain(..cut);
                labels.drain(..cut);
            }
        }
    }
    let ex = Example {
        input_ids: ids,
        labels,
    };
    (ex.scored() > 0).then_some(ex)
}

/// A prompt/completion record in plain text (no messages) is trained as TRL trains it: raw
/// text, the tokenizer's own special tokens, the end-of-text token after the completion, the
/// loss on the completion (where the tokenized prompt stops being a prefix).
pub fn tokenize_plain(
    tok: &TextTokenizer,
    prompt: &str,
    completion: &str,
    c: &SftConfig,
) -> Result<Option<Example>, String> {
    let eos = tok
        .special("eos_token")
        .ok_or("the tokenizer names no eos_token (tokenizer_config.json)")?;
    let completion = if completion.ends_with(&eos) {
        completion.to_string()
    } else {
        format!("{completion}{eos}")
    };
    let p = tok.encode(prompt, true).map_err(|e| e.to_string())?;
    let ids = tok
        .encode(&format!("{prompt}{completion}"), true)
        .map_err(|e| e.to_string())?;
    let shared = p.iter().zip(&ids).take_while(|(a, b)| a == b).count();
    let labels = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            if c.loss_on == LossOn::All || i >= shared {
                *id
            } else {
                IGNORE
            }
        })
        .collect();
    Ok(finish(ids, labels, c))
}

fn plain_prompt_completion(row: &Value, format: Format) -> Option<(&str, &str)> {
    if !matches!(format, Format::Auto | Format::PromptCompletion) {
        return None;
    }
    match (row.get("prompt"), row.get("completion")) {
        (Some(Value::String(p)), Some(Value::String(c))) => Some((p, c)),
        _ => None,
    }
}

/// What converting a dataset gave.
#[derive(Debug, Clone, Default)]
pub struct Converted {
    /// The examples, in record order.
    pub examples: Vec<Example>,
    /// Records left without a scored token (all cut off by truncation).
    pub empty: usize,
    /// Records longer than `max_length`.
    pub truncated: usize,
}

/// Converts rows (as JSON objects) into examples; errors name the record.
pub fn convert(tok: &TextTokenizer, rows: &[Value], c: &SftConfig) -> Result<Converted, String> {
    let all_plain = rows
        .iter()
        .all(|r| plain_prompt_completion(r, c.format).is_some());
    if !all_plain && !tok.has_chat_template() {
        return Err(
            "the tokenizer has no chat template: train it with `train.tokenizer` (which writes \
             one) or use a chat model's tokenizer"
                .into(),
        );
    }
    let mut out = Converted::default();
    for (i, row) in rows.iter().enumerate() {
        let long = c.max_length;
        let ex = match plain_prompt_completion(row, c.format) {
            Some((p, comp)) => tokenize_plain(tok, p, comp, c),
            None => conversation(row, c.format, c.system_prompt.as_deref())
                .and_then(|(msgs, prompt_len)| tokenize(tok, &msgs, prompt_len, c)),
        }
        .map_err(|e| format!("record {i}: {e}"))?;
        match ex {
            Some(ex) => {
                if ex.input_ids.len() == long {
                    out.truncated += 1;
                }
                out.examples.push(ex)
            }
            None => out.empty += 1,
        }
    }
    Ok(out)
}

/// `train.sft`.
pub struct Sft;

impl Operator for Sft {
    type Config = SftConfig;
    const NAME: &'static str = "train.sft";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Supervised fine-tuning on chat records (TRL, Alpaca, ShareGPT, Citrus formats), one stage";
    const WORKER: WorkerKind = WorkerKind::Torch;

    fn ports(config: Option<&SftConfig>) -> Ports {
        let replay = PortSpec::new(
            "replay",
            PortType::Dataset,
            "pre-training text replayed among the examples (`replay`)",
        )
        .many();
        // Required once `replay:` is configured; optional (and on with defaults) otherwise.
        let replay = if config.is_some_and(|c| c.replay.is_some()) {
            replay
        } else {
            replay.optional()
        };
        Ports {
            inputs: vec![
                PortSpec::new("model", PortType::Model, "the model to fine-tune"),
                PortSpec::new(
                    "tokenizer",
                    PortType::Tokenizer,
                    "the tokenizer with its chat template (default: the model's own files)",
                )
                .optional(),
                PortSpec::new("data", PortType::Dataset, "the training records").many(),
                PortSpec::new("eval", PortType::Dataset, "records for the validation loss")
                    .optional()
                    .many(),
                replay,
            ],
            outputs: vec![
                PortSpec::new("model", PortType::Model, "the fine-tuned model"),
                PortSpec::new(
                    "report",
                    PortType::Report,
                    "loss curve, tokens, validation loss; a plot",
                ),
            ],
            other_inputs: None,
        }
    }

    fn check(c: &SftConfig) -> Result<(), String> {
        for (name, v) in [
            ("max_length", c.max_length),
            ("batch_size", c.batch_size),
            ("grad_accum", c.grad_accum),
        ] {
            if v == 0 {
                return Err(format!("{name}: must be at least 1"));
            }
        }
        if c.max_length < 2 {
            return Err("max_length: must be at least 2".into());
        }
        if !(c.epochs.is_finite() && c.epochs > 0.0) {
            return Err("epochs: must be positive".into());
        }
        if c.max_steps == Some(0) {
            return Err("max_steps: must be positive".into());
        }
        if c.log_every == 0 {
            return Err("log_every: must be at least 1".into());
        }
        if c.checkpoint.keep == 0 {
            return Err("checkpoint.keep: must be at least 1".into());
        }
        if let Some(r) = &c.replay {
            if !(r.ratio.is_finite() && (0.0..1.0).contains(&r.ratio)) {
                return Err(format!(
                    "replay.ratio: must be at least 0 and below 1, not {}",
                    r.ratio
                ));
            }
            match r.seq_len {
                Some(n) if n < 2 => return Err("replay.seq_len: must be at least 2".into()),
                Some(n) if n > c.max_length => {
                    return Err(format!(
                        "replay.seq_len ({n}) must not exceed max_length ({})",
                        c.max_length
                    ))
                }
                _ => {}
            }
        }
        if let Some(dp) = &c.data_parallel {
            dp.check()?;
        }
        c.resolved_optim().check()?;
        check_device(&c.device)
    }

    fn run(config: &SftConfig, ctx: &mut OpContext) -> anyhow::Result<()> {
        super::run_in_torch(Self::NAME, config, ctx)
    }

    fn processes(config: &SftConfig) -> usize {
        super::common::processes(&config.data_parallel)
    }

    fn machines(config: &SftConfig) -> usize {
        super::common::machines(&config.data_parallel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> TextTokenizer {
        crate::train::testing::tokenizer(&[
            "What lowers LDL cholesterol? Statins lower LDL.",
            "The patient has a fever and a cough.",
        ])
    }

    fn cfg(loss_on: LossOn) -> SftConfig {
        let mut c: SftConfig = serde_json::from_value(json!({})).unwrap();
        c.loss_on = loss_on;
        c
    }

    /// The text of the scored tokens.
    fn scored(t: &TextTokenizer, ex: &Example) -> String {
        let ids: Vec<i64> = ex.labels.iter().copied().filter(|l| *l != IGNORE).collect();
        t.decode(&ids, false).unwrap()
    }

    #[test]
    fn replay_is_checked_and_makes_its_port_required() {
        let with = |r: Value| -> SftConfig {
            serde_json::from_value(json!({"max_length": 256, "replay": r})).unwrap()
        };
        assert!(Sft::check(&with(json!({"ratio": 0.5, "seq_len": 128}))).is_ok());
        for (r, want) in [
            (json!({"ratio": 1.0}), "replay.ratio"),
            (json!({"ratio": -0.1}), "replay.ratio"),
            (json!({"seq_len": 1}), "replay.seq_len"),
            (json!({"seq_len": 512}), "must not exceed max_length (256)"),
        ] {
            let e = Sft::check(&with(r.clone())).unwrap_err();
            assert!(e.contains(want), "{r}: {e}");
        }
        assert_eq!(ReplayConfig::default().seq_len(256), 256);
        assert_eq!(ReplayConfig::default().seq_len(4096), 512);
        let port = |c: Option<&SftConfig>| {
            Sft::ports(c)
                .inputs
                .into_iter()
                .find(|p| p.name == "replay")
                .unwrap()
        };
        assert!(!port(None).required);
        assert!(port(Some(&with(json!({})))).required);
    }

    #[test]
    fn every_format_becomes_the_same_conversation() {
        let want = vec![
            json!({"role": "user", "content": "Q?"}),
            json!({"role": "assistant", "content": "A."}),
        ];
        let rows = [
            json!({"messages": want}),
            json!({"prompt": "Q?", "completion": "A."}),
            json!({"instruction": "Q?", "input": "", "output": "A."}),
            json!({"conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]}),
            json!({"input": "Q?", "target": "A."}),
        ];
        for r in rows {
            assert_eq!(conversation(&r, Format::Auto, None).unwrap().0, want, "{r}");
        }
        let e = conversation(&json!({"text": "x"}), Format::Auto, None).unwrap_err();
        assert!(e.contains("cannot tell the record format"), "{e}");
    }

    #[test]
    fn the_loss_is_on_the_assistant_turns_the_last_or_all() {
        let t = tok();
        let msgs = vec![
            json!({"role": "user", "content": "What lowers LDL?"}),
            json!({"role": "assistant", "content": "Statins."}),
            json!({"role": "user", "content": "And fever?"}),
            json!({"role": "assistant", "content": "Rest."}),
        ];
        let ex = tokenize(&t, &msgs, None, &cfg(LossOn::Assistant))
            .unwrap()
            .unwrap();
        assert_eq!(scored(&t, &ex), "Statins.<|end|>\nRest.<|end|>\n");
        let ex = tokenize(&t, &msgs, None, &cfg(LossOn::Last))
            .unwrap()
            .unwrap();
        assert_eq!(scored(&t, &ex), "Rest.<|end|>\n");
        let ex = tokenize(&t, &msgs, None, &cfg(LossOn::All))
            .unwrap()
            .unwrap();
        assert_eq!(ex.labels, ex.input_ids);
    }

    #[test]
    fn a_prompt_completion_record_scores_the_completion_and_truncation_cuts() {
        let t = tok();
        let row = json!({"prompt": "What lowers LDL?", "completion": "Statins lower LDL."});
        let (m, p) = conversation(&row, Format::Auto, Some("Be brief.")).unwrap();
        assert_eq!(p, Some(2));
        let ex = tokenize(&t, &m, p, &cfg(LossOn::Assistant))
            .unwrap()
            .unwrap();
        assert_eq!(scored(&t, &ex), "Statins lower LDL.<|end|>\n");
        let mut c = cfg(LossOn::Assistant);
        c.max_length = 5;
        // Only the prompt fits: nothing to score.
        assert!(tokenize(&t, &m, p, &c).unwrap().is_none());
        c.truncation = Side::Left;
        let ex = tokenize(&t, &m, p, &c).unwrap().unwrap();
        assert_eq!(ex.input_ids.len(), 5);
        assert!(scored(&t, &ex).ends_with("<|end|>\n"));
    }

    #[test]
    fn plain_prompt_completion_is_raw_text_with_eos_as_trl_trains_it() {
        let t = tok();
        let c = cfg(LossOn::Assistant);
        let ex = tokenize_plain(&t, "What lowers LDL?", " Statins.", &c)
            .unwrap()
            .unwrap();
        assert_eq!(scored(&t, &ex), " Statins.<|endoftext|>");
        let rows = vec![json!({"prompt": "The patient", "completion": " has a fever."})];
        let conv = convert(&t, &rows, &c).unwrap();
        assert_eq!(conv.examples.len(), 1);
        assert!(!t
            .decode(&conv.examples[0].input_ids, false)
            .unwrap()
            .contains("<|start|>"));
    }
}
