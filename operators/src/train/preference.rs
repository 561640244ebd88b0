//! `train.preference`: offline preference optimisation on (prompt, chosen, rejected) pairs:
//! SimPO, CPO, SimPO with CPO's NLL term, and DPO against a reference model, with TRL's loss
//! definitions and metrics. Records are TRL's preference format, plain text or conversations,
//! with an explicit `prompt` or an implicit one (the shared start of `chosen` and `rejected`).
//!
//! Pairs are prepared exactly as TRL's CPOTrainer prepares them (its `extract_prompt`,
//! `apply_chat_template` and `tokenize_row`), so that the same model and batch give the same
//! loss and metrics; `zest-torch` trains.

use super::common::{
    check_device, default_device, non_negative, positive, CheckpointPolicy, DataParallel, Decay,
    OptimConfig, OptimOverrides, Precision,
};
use super::sft::IGNORE;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports, WorkerKind};
use zest_kernels::text_tokenizer::TextTokenizer;

/// The loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// SimPO: length-averaged log-probabilities, target margin γ, no reference model.
    Simpo,
    /// CPO: summed log-probabilities with an NLL term on the chosen responses.
    Cpo,
    /// SimPO's loss plus CPO's NLL term (weighted by `cpo_alpha`).
    SimpoCpo,
    /// DPO against a reference model (the `reference` input, else the starting model).
    Dpo,
}

/// Settings published with a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// The Citrus repository's SimPO+CPO run: β 10, γ 5.4, cpo_alpha 0.05, lr 1e-6 with
    /// cosine decay, warmup ratio 0.1, one epoch.
    Citrus,
}

/// `train.preference`'s config. Unset fields take the preset's value, then the loss's
/// defaults (TRL's CPOConfig: β 0.1 for CPO and DPO; SimPO β 2.0, γ 0.5; cpo_alpha 1.0 for
/// CPO, 0.05 for SimPO+CPO; lr 1e-6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferenceConfig {
    /// Published settings to start from.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// The loss (default: the preset's, else `simpo_cpo`).
    #[serde(default)]
    pub loss: Option<Loss>,
    /// β, the reward scale.
    #[serde(default)]
    pub beta: Option<f64>,
    /// γ, SimPO's target reward margin.
    #[serde(default)]
    pub simpo_gamma: Option<f64>,
    /// Weight of the NLL term on chosen responses.
    #[serde(default)]
    pub cpo_alpha: Option<f64>,
    /// Conservative label smoothing.
    #[serde(default)]
    pub label_smoothing: f64,
    /// Longest prompt + response in tokens (responses are cut to fit, as TRL does).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Pairs per micro-batch.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Passes over the pairs (default: the preset's, else 1).
    #[serde(default)]
    pub epochs: Option<f64>,
    /// A step budget instead of `epochs`.
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Changes to the optimiser and schedule, over the preset's (else TRL's defaults: lr
    /// 1e-6, AdamW β 0.9/0.999, no weight decay, no warmup, linear decay).
    #[serde(default)]
    pub optim: OptimOverrides,
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
    /// Train over several processes on this machine (one per GPU); one when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_parallel: Option<DataParallel>,
}

fn default_max_length() -> usize {
    1024
}
fn default_batch() -> usize {
    4
}
fn one() -> usize {
    1
}
fn default_log_every() -> u64 {
    10
}

/// The settings a run uses, preset and defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolved {
    /// The loss.
    pub loss: Loss,
    /// β.
    pub beta: f64,
    /// γ.
    pub simpo_gamma: f64,
    /// NLL weight.
    pub cpo_alpha: f64,
    /// Passes over the pairs.
    pub epochs: f64,
    /// Optimiser and schedule.
    pub optim: OptimConfig,
}

impl PreferenceConfig {
    /// Preset, then explicit fields, then the loss's defaults.
    pub fn resolved(&self) -> Resolved {
        let citrus = self.preset == Some(Preset::Citrus);
        let loss = self.loss.unwrap_or(Loss::SimpoCpo);
        let (beta, gamma, alpha) = match (loss, citrus) {
            (Loss::Simpo, false) => (2.0, 0.5, 0.0),
            (Loss::Simpo, true) => (10.0, 5.4, 0.0),
            (Loss::SimpoCpo, false) => (2.0, 0.5, 0.05),
            (Loss::SimpoCpo, true) => (10.0, 5.4, 0.05),
            (Loss::Cpo, _) => (0.1, 0.0, 1.0),
            (Loss::Dpo, _) => (0.1, 0.0, 0.0),
        };
        let base = if citrus {
            OptimConfig {
                lr: 1e-6,
                beta2: 0.999,
                weight_decay: 0.0,
                warmup_ratio: 0.1,
                decay: Decay::Cosine,
                ..OptimConfig::default()
            }
        } else {
            OptimConfig {
                lr: 1e-6,
                beta2: 0.999,
                weight_decay: 0.0,
                warmup_ratio: 0.0,
                decay: Decay::Linear,
                ..OptimConfig::default()
            }
        };
        let optim = self.optim.over(base);
        Resolved {
            loss,
            beta: self.beta.unwrap_or(beta),
            simpo_gamma: self.simpo_gamma.unwrap_or(gamma),
            cpo_alpha: self.cpo_alpha.unwrap_or(alpha),
            epochs: self.epochs.unwrap_or(1.0),
            optim,
        }
    }
}

/// One tokenized pair: chosen and rejected as prompt + response, labels [`IGNORE`] on the
/// prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Chosen ids.
    pub chosen_ids: Vec<i64>,
    /// Chosen labels.
    pub chosen_labels: Vec<i64>,
    /// Rejected ids.
    pub rejected_ids: Vec<i64>,
    /// Rejected labels.
    pub rejected_labels: Vec<i64>,
}

impl Pair {
    /// A pair from chosen and rejected (ids, labels); refused when either has no scored token
    /// left within `max_length`.
    fn scored(
        (chosen_ids, chosen_labels): (Vec<i64>, Vec<i64>),
        (rejected_ids, rejected_labels): (Vec<i64>, Vec<i64>),
        max_length: usize,
    ) -> Result<Pair, String> {
        if chosen_labels.iter().all(|l| *l == IGNORE)
            || rejected_labels.iter().all(|l| *l == IGNORE)
        {
            return Err(format!(
                "the prompt alone fills max_length ({max_length}): nothing of a response is left"
            ));
        }
        Ok(Pair {
            chosen_ids,
            chosen_labels,
            rejected_ids,
            rejected_labels,
        })
    }
}

fn is_conversation(v: &Value) -> bool {
    v.as_array()
        .is_some_and(|a| a.iter().all(|m| m.get("role").is_some()))
}

fn as_messages(v: &Value, what: &str) -> Result<Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("`{what}` must be text or a list of messages"))?
        .iter()
        .map(|m| {
            match (
                m.get("role").and_then(Value::as_str),
                m.get("content").and_then(Value::as_str),
            ) {
                (Some(r), Some(c)) => Ok(serde_json::json!({"role": r, "content": c})),
                _ => Err(format!(
                    "every message of `{what}` needs `role` and `content`"
                )),
            }
        })
        .collect()
}

fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let n = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    &a[..n]
}

/// The (prompt, chosen, rejected) texts of a record, as TRL's `extract_prompt` and
/// `apply_chat_template` make them.
pub fn texts(tok: &TextTokenizer, row: &Value) -> Result<(String, String, String), String> {
    let chosen = row
        .get("chosen")
        .ok_or("preference records need `chosen`")?;
    let rejected = row
        .get("rejected")
        .ok_or("preference records need `rejected`")?;
    let prompt = row.get("prompt").filter(|p| !p.is_null());
    if let (Some(Value::String(p)), Value::String(c), Value::String(r)) = (prompt, chosen, rejected)
    {
        return Ok((p.clone(), c.clone(), r.clone()));
    }
    if let (None, Value::String(c), Value::String(r)) = (prompt, chosen, rejected) {
        // Implicit prompt in plain text: the shared start, without a trailing space.
        let mut p = common_prefix(c, r).to_string();
        if p.ends_with(' ') && p.len() < c.len() {
            p.pop();
        }
        return Ok((
            p.clone(),
            c[p.len()..].to_string(),
            r[p.len()..].to_string(),
        ));
    }
    let (p, c, r) = conversation(prompt, chosen, rejected)?;
    let gen = matches!(
        p.last().and_then(|m| m["role"].as_str()),
        Some("user") | Some("tool") | Some("system")
    );
    let render = |m: &[Value], g: bool| tok.apply_chat_template(m, g).map_err(|e| e.to_string());
    let prompt_text = render(&p, gen)?;
    let pc = render(&[p.clone(), c].concat(), false)?;
    let pr = render(&[p, r].concat(), false)?;
    let prompt_text = common_prefix(common_prefix(&prompt_text, &pc), &pr).to_string();
    let n = prompt_text.len();
    Ok((prompt_text, pc[n..].to_string(), pr[n..].to_string()))
}

/// Prompt, chosen and rejected messages.
type Turns = (Vec<Value>, Vec<Value>, Vec<Value>);

/// The (prompt, chosen, rejected) messages of a conversational record; an implicit prompt is
/// the turns `chosen` and `rejected` share (TRL's `extract_prompt`).
fn conversation(prompt: Option<&Value>, chosen: &Value, rejected: &Value) -> Result<Turns, String> {
    if !is_conversation(chosen) || !is_conversation(rejected) {
        return Err(
            "`chosen` and `rejected` must both be text or both be lists of messages".into(),
        );
    }
    let (c, r) = (
        as_messages(chosen, "chosen")?,
        as_messages(rejected, "rejected")?,
    );
    let (p, c, r) = match prompt {
        Some(p) => (as_messages(p, "prompt")?, c, r),
        None => {
            let n = c.iter().zip(&r).take_while(|(a, b)| a == b).count();
            (c[..n].to_vec(), c[n..].to_vec(), r[n..].to_vec())
        }
    };
    if p.is_empty() {
        return Err(
            "the record has no prompt (no shared first turn of `chosen` and `rejected`)".into(),
        );
    }
    Ok((p, c, r))
}

/// Tokenizes a record as TRL's DPOTrainer does. Conversations: the prompt rendered with the
/// generation prompt, prompt + chosen and prompt + rejected rendered whole, the completion
/// starting where their tokens stop agreeing with the prompt's; no EOS is added (the template
/// ends the turn). Plain text: the EOS token appended to each response, BOS as the tokenizer
/// adds it. Sequences longer than `max_length` keep their start.
pub fn tokenize_pair_dpo(
    tok: &TextTokenizer,
    row: &Value,
    max_length: usize,
) -> Result<Pair, String> {
    let chosen = row
        .get("chosen")
        .ok_or("preference records need `chosen`")?;
    let rejected = row
        .get("rejected")
        .ok_or("preference records need `rejected`")?;
    let prompt = row.get("prompt").filter(|p| !p.is_null());
    let encode = |t: &str, special: bool| tok.encode(t, special).map_err(|e| e.to_string());
    let (prompt_ids, pc, pr) = if chosen.is_string() && rejected.is_string() {
        let (p, c, r) = texts(tok, row)?;
        let eos = tok
            .special("eos_token")
            .ok_or("the tokenizer names no eos_token (tokenizer_config.json)")?;
        let with_eos = |a: String| if a.ends_with(&eos) { a } else { a + &eos };
        let (c, r) = (with_eos(c), with_eos(r));
        (
            encode(&p, true)?,
            encode(&format!("{p}{c}"), true)?,
            encode(&format!("{p}{r}"), true)?,
        )
    } else {
        let (p, c, r) = conversation(prompt, chosen, rejected)?;
        let render =
            |m: &[Value], g: bool| tok.apply_chat_template(m, g).map_err(|e| e.to_string());
        (
            encode(&render(&p, true)?, false)?,
            encode(&render(&[p.clone(), c].concat(), false)?, false)?,
            encode(&render(&[p, r].concat(), false)?, false)?,
        )
    };
    let shared = |a: &[i64]| prompt_ids.iter().zip(a).take_while(|(x, y)| x == y).count();
    let n = shared(&pc).min(shared(&pr));
    let join = |mut ids: Vec<i64>| {
        ids.truncate(max_length);
        let labels: Vec<i64> = ids
            .iter()
            .enumerate()
            .map(|(i, &t)| if i < n { IGNORE } else { t })
            .collect();
        (ids, labels)
    };
    Pair::scored(join(pc), join(pr), max_length)
}

/// Token ids of `prompt + answer`, split where the prompt ends (TRL's `build_tokenized_answer`:
/// when the prompt's last token merges with the answer, the split moves one token back).
fn split_answer(
    tok: &TextTokenizer,
    prompt: &str,
    answer: &str,
) -> Result<(Vec<i64>, Vec<i64>), String> {
    let full = tok
        .encode(&format!("{prompt}{answer}"), false)
        .map_err(|e| e.to_string())?;
    let p = tok.encode(prompt, false).map_err(|e| e.to_string())?;
    let mut start = p.len().min(full.len());
    if full.get(..p.len()) != Some(p.as_slice()) {
        start = start.saturating_sub(1);
    }
    Ok((full[..start].to_vec(), full[start..].to_vec()))
}

/// Tokenizes a pair as TRL's CPOTrainer does: the BOS token first where the tokenizer has one,
/// the EOS token after each response, responses cut to `max_length` with their prompt.
pub fn tokenize_pair(
    tok: &TextTokenizer,
    prompt: &str,
    chosen: &str,
    rejected: &str,
    max_length: usize,
) -> Result<Pair, String> {
    let (mut cp, mut ca) = split_answer(tok, prompt, chosen)?;
    let (mut rp, mut ra) = split_answer(tok, prompt, rejected)?;
    let diff = cp.iter().zip(&rp).filter(|(a, b)| a != b).count();
    if diff > 1 || cp.len().abs_diff(rp.len()) > 1 {
        return Err("the chosen and rejected responses change how the prompt tokenizes".into());
    }
    if let Some(bos) = tok.special_id("bos_token") {
        for p in [&mut cp, &mut rp] {
            if p.first() != Some(&bos) {
                p.insert(0, bos);
            }
        }
    }
    let eos = tok
        .special_id("eos_token")
        .ok_or("the tokenizer names no eos_token (tokenizer_config.json)")?;
    for a in [&mut ca, &mut ra] {
        if a.last() != Some(&eos) {
            a.push(eos);
        }
    }
    let join = |p: Vec<i64>, mut a: Vec<i64>| {
        if p.len() + a.len() > max_length {
            a.truncate(max_length.saturating_sub(p.len()));
        }
        let labels: Vec<i64> = std::iter::repeat_n(IGNORE, p.len())
            .chain(a.iter().copied())
            .collect();
        ([p, a].concat(), labels)
    };
    Pair::scored(join(cp, ca), join(rp, ra), max_length)
}

/// `train.preference`.
pub struct TrainPreference;

impl Operator for TrainPreference {
    type Config = PreferenceConfig;
    const NAME: &'static str = "train.preference";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Offline preference optimisation: SimPO, CPO, SimPO+CPO, DPO (TRL's losses and metrics)";
    const WORKER: WorkerKind = WorkerKind::Torch;

    fn ports(_config: Option<&PreferenceConfig>) -> Ports {
        Ports {
            inputs: vec![
                PortSpec::new("model", PortType::Model, "the model to train"),
                PortSpec::new(
                    "tokenizer",
                    PortType::Tokenizer,
                    "the tokenizer with its chat template (default: the model's own files)",
                )
                .optional(),
                PortSpec::new(
                    "data",
                    PortType::Dataset,
                    "preference pairs: `prompt` (optional), `chosen`, `rejected`",
                )
                .many()
                .with_columns(&["chosen", "rejected"]),
                PortSpec::new(
                    "reference",
                    PortType::Model,
                    "DPO's reference model (default: the starting model)",
                )
                .optional(),
            ],
            outputs: vec![
                PortSpec::new("model", PortType::Model, "the trained model"),
                PortSpec::new(
                    "report",
                    PortType::Report,
                    "every TRL metric per step; a plot of loss and reward margin",
                ),
            ],
            other_inputs: None,
        }
    }

    fn check(c: &PreferenceConfig) -> Result<(), String> {
        let r = c.resolved();
        if !positive(r.beta) {
            return Err("beta: must be positive".into());
        }
        if !non_negative(r.cpo_alpha) {
            return Err("cpo_alpha: must not be negative".into());
        }
        if !(0.0..0.5).contains(&c.label_smoothing) {
            return Err("label_smoothing: must be in [0, 0.5)".into());
        }
        if r.loss == Loss::Simpo && c.cpo_alpha.is_some_and(|a| a > 0.0) {
            return Err("cpo_alpha: `simpo` has no NLL term; use `loss: simpo_cpo`".into());
        }
        for (name, v) in [
            ("max_length", c.max_length),
            ("batch_size", c.batch_size),
            ("grad_accum", c.grad_accum),
        ] {
            if v == 0 {
                return Err(format!("{name}: must be at least 1"));
            }
        }
        if !(r.epochs.is_finite() && r.epochs > 0.0) {
            return Err("epochs: must be positive".into());
        }
        if c.max_steps == Some(0) || c.log_every == 0 || c.checkpoint.keep == 0 {
            return Err("max_steps, log_every and checkpoint.keep must be at least 1".into());
        }
        if let Some(dp) = &c.data_parallel {
            dp.check()?;
        }
        r.optim.check()?;
        check_device(&c.device)
    }

    fn run(config: &PreferenceConfig, ctx: &mut OpContext) -> anyhow::Result<()> {
        super::run_in_torch(Self::NAME, config, ctx)
    }

    fn processes(config: &PreferenceConfig) -> usize {
        super::common::processes(&config.data_parallel)
    }

    fn machines(config: &PreferenceConfig) -> usize {
        super::common::machines(&config.data_parallel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tok() -> TextTokenizer {
        crate::train::testing::tokenizer(&[
            "What color is the sky? It is blue. It is green.",
            "Where is the sun?",
        ])
    }

    #[test]
    fn the_citrus_preset_is_the_published_run() {
        let c: PreferenceConfig = serde_json::from_value(json!({"preset": "citrus"})).unwrap();
        let r = c.resolved();
        assert_eq!(r.loss, Loss::SimpoCpo);
        assert_eq!((r.beta, r.simpo_gamma, r.cpo_alpha), (10.0, 5.4, 0.05));
        assert_eq!((r.optim.lr, r.optim.warmup_ratio), (1e-6, 0.1));
        assert_eq!(r.optim.decay, Decay::Cosine);
        assert_eq!(r.epochs, 1.0);
        // Explicit fields win over the preset.
        let c: PreferenceConfig =
            serde_json::from_value(json!({"preset": "citrus", "beta": 2.5})).unwrap();
        assert_eq!(c.resolved().beta, 2.5);
        let c: PreferenceConfig =
            serde_json::from_value(json!({"loss": "simpo", "cpo_alpha": 0.1})).unwrap();
        assert!(TrainPreference::check(&c)
            .unwrap_err()
            .contains("simpo_cpo"));
    }

    #[test]
    fn an_implicit_prompt_is_the_shared_turns() {
        let t = tok();
        let row = json!({
            "chosen": [{"role": "user", "content": "What color is the sky?"}, {"role": "assistant", "content": "It is blue."}],
            "rejected": [{"role": "user", "content": "What color is the sky?"}, {"role": "assistant", "content": "It is green."}],
        });
        let (p, c, r) = texts(&t, &row).unwrap();
        assert_eq!(
            p,
            "<|start|>user\nWhat color is the sky?<|end|>\n<|start|>assistant\n"
        );
        assert_eq!(c, "It is blue.<|end|>\n");
        assert_eq!(r, "It is green.<|end|>\n");
        let pair = tokenize_pair(&t, &p, &c, &r, 1024).unwrap();
        let eos = t.special_id("eos_token").unwrap();
        assert_eq!(pair.chosen_ids.last(), Some(&eos));
        let scored: Vec<i64> = pair
            .chosen_labels
            .iter()
            .copied()
            .filter(|l| *l != IGNORE)
            .collect();
        assert_eq!(
            t.decode(&scored, false).unwrap(),
            "It is blue.<|end|>\n<|endoftext|>"
        );
        let e = tokenize_pair(&t, &p, &c, &r, 3).unwrap_err();
        assert!(e.contains("prompt alone fills"), "{e}");
    }

    #[test]
    fn dpo_pairs_tokenize_as_dpo_trainer() {
        let t = tok();
        let scored = |ids: &[i64], labels: &[i64]| {
            let kept: Vec<i64> = ids
                .iter()
                .zip(labels)
                .filter(|(_, l)| **l != IGNORE)
                .map(|(i, _)| *i)
                .collect();
            t.decode(&kept, false).unwrap()
        };
        // Conversations: the template ends the turn; no EOS after it.
        let row = json!({
            "chosen": [{"role": "user", "content": "What color is the sky?"}, {"role": "assistant", "content": "It is blue."}],
            "rejected": [{"role": "user", "content": "What color is the sky?"}, {"role": "assistant", "content": "It is green."}],
        });
        let pair = tokenize_pair_dpo(&t, &row, 1024).unwrap();
        assert_eq!(
            scored(&pair.chosen_ids, &pair.chosen_labels),
            "It is blue.<|end|>\n"
        );
        assert_eq!(
            scored(&pair.rejected_ids, &pair.rejected_labels),
            "It is green.<|end|>\n"
        );
        // Plain text: EOS appended to each response.
        let row = json!({"prompt": "Sky colour:", "chosen": " blue", "rejected": " green"});
        let pair = tokenize_pair_dpo(&t, &row, 1024).unwrap();
        assert_eq!(
            scored(&pair.chosen_ids, &pair.chosen_labels),
            " blue<|endoftext|>"
        );
        // The start is kept: a prompt that fills max_length leaves nothing to score.
        let e = tokenize_pair_dpo(&t, &row, 2).unwrap_err();
        assert!(e.contains("prompt alone fills"), "{e}");
    }

    #[test]
    fn plain_text_pairs_split_at_the_shared_start() {
        let t = tok();
        let row = json!({"chosen": "What color is the sky? It is blue.", "rejected": "What color is the sky? It is green."});
        let (p, c, r) = texts(&t, &row).unwrap();
        assert_eq!(
            (p.as_str(), c.as_str(), r.as_str()),
            ("What color is the sky? It is", " blue.", " green.")
        );
    }
}
