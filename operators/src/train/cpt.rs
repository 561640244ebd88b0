//! `train.cpt`: continued pre-training of a causal language model on several named sources,
//! the mixture chosen online by a multi-armed bandit (EXP3 as in Online Data Mixing, UCB1,
//! Thompson sampling) or fixed (static weights, uniform, proportional to tokens).
//!
//! Each source is its own input port. Documents are tokenized, joined with the end-of-text
//! token and cut into rows of `seq_len` tokens; the last `validation.holdout_sequences` rows of
//! every source are held out. With `repack` (the default) the training documents are joined
//! in a new seeded order every epoch, so that the rows differ from epoch to epoch. Every micro-batch comes from one source, chosen by the mixing
//! strategy, which learns from that batch's loss (`reward: loss`, ODM's) or from the recent
//! decrease of the source's loss (`reward: learning_progress`, which a noisy, unlearnable
//! source does not attract).

use super::common::{
    check_device, default_device, non_negative, positive, CheckpointPolicy, DataParallel,
    OptimConfig, Precision,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports, WorkerKind};

/// One source's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Its weight under `strategy: static` (weights are normalised).
    #[serde(default)]
    pub weight: Option<f64>,
}

/// The sources: a list of names, or names with settings. Each name is an input port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Sources {
    /// Just the names.
    Names(Vec<String>),
    /// Names with settings.
    Specs(BTreeMap<String, SourceSpec>),
}

impl Sources {
    /// Sorted names with their settings (the order of the bandit's arms).
    pub fn resolved(&self) -> Vec<(String, SourceSpec)> {
        let mut v: Vec<(String, SourceSpec)> = match self {
            Sources::Names(n) => n
                .iter()
                .map(|n| (n.clone(), SourceSpec::default()))
                .collect(),
            Sources::Specs(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// How the next micro-batch's source is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// EXP3 with ODM's exploration schedule and importance-weighted, smoothed rewards.
    #[default]
    Exp3,
    /// UCB1.
    Ucb1,
    /// Gaussian Thompson sampling.
    Thompson,
    /// Fixed weights (`sources: {name: {weight: …}}`).
    Static,
    /// Every source alike.
    Uniform,
    /// In proportion to each source's training tokens.
    Proportional,
}

impl Strategy {
    /// Whether it learns from rewards.
    pub fn is_bandit(self) -> bool {
        matches!(self, Strategy::Exp3 | Strategy::Ucb1 | Strategy::Thompson)
    }
}

/// What a bandit learns from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Reward {
    /// The training loss of the batch drawn from the source (Online Data Mixing).
    #[default]
    Loss,
    /// The recent decrease of the source's training loss, relative to its level (in percent):
    /// the difference of a slow and a fast moving average of the source's batch losses.
    LearningProgress,
}

/// Mixing settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MixingConfig {
    /// How sources are chosen.
    pub strategy: Strategy,
    /// What bandits learn from.
    pub reward: Reward,
    /// Micro-batches drawn uniformly before the bandit takes over.
    pub warmup_steps: u64,
    /// EXP3's smoothing α of its reward estimates (ODM: 0.9; 0 accumulates, plain EXP3).
    pub smoothing: f64,
    /// UCB1's exploration constant.
    pub ucb_c: f64,
    /// Thompson sampling's reward noise scale.
    pub thompson_sigma: f64,
    /// `learning_progress`: weight of the newest loss in the fast moving average.
    pub lp_fast: f64,
    /// `learning_progress`: weight of the newest loss in the slow moving average.
    pub lp_slow: f64,
}

impl Default for MixingConfig {
    fn default() -> Self {
        MixingConfig {
            strategy: Strategy::Exp3,
            reward: Reward::Loss,
            warmup_steps: 0,
            smoothing: 0.9,
            ucb_c: 1.0,
            thompson_sigma: 1.0,
            lp_fast: 0.5,
            lp_slow: 0.1,
        }
    }
}

/// Validation on held-out rows of every source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// Validate every this many optimiser steps (0: only at the end).
    pub every_steps: u64,
    /// Rows of `seq_len` tokens held out from the end of every source.
    pub holdout_sequences: usize,
    /// The sources whose held-out loss makes the validation mixture (`mean`, each alike);
    /// all by default. Per-source losses are reported for every source.
    pub sources: Option<Vec<String>>,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            every_steps: 50,
            holdout_sequences: 16,
            sources: None,
        }
    }
}

/// `train.cpt`'s config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CptConfig {
    /// The sources, each an input port of the same name holding datasets of text.
    pub sources: Sources,
    /// The column holding the text in every source.
    #[serde(default = "crate::data::docs::text_column")]
    pub text_column: String,
    /// Tokens per row.
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
    /// Rows per micro-batch (one forward and backward pass).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Join the documents in a new order every epoch before cutting rows, as Megatron-LM
    /// does, so that a corpus read many times is not seen as the same rows every time (which
    /// a small model memorises as whole sequences); `false`: the rows of the input order,
    /// shuffled, every epoch.
    #[serde(default = "yes")]
    pub repack: bool,
    /// Micro-batches per optimiser step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// The budget in optimiser steps (give this or `max_tokens`).
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// The budget in training tokens, rounded up to whole steps.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Optimiser and schedule.
    #[serde(default)]
    pub optim: OptimConfig,
    /// How sources are mixed.
    #[serde(default)]
    pub mixing: MixingConfig,
    /// Held-out validation per source.
    #[serde(default)]
    pub validation: ValidationConfig,
    /// Checkpoints in the store while training.
    #[serde(default)]
    pub checkpoint: CheckpointPolicy,
    /// The element type of weights and training.
    #[serde(default)]
    pub dtype: Precision,
    /// The device.
    #[serde(default = "default_device")]
    pub device: String,
    /// Seed of data order and mixing.
    #[serde(default)]
    pub seed: u64,
    /// Print progress every this many steps.
    #[serde(default = "default_log_every")]
    pub log_every: u64,
    /// Train over several processes (one per GPU) and machines; one when unset. Every
    /// micro-batch is drawn from one source for all ranks, `batch_size` rows on each, and
    /// the bandit is rewarded by the loss over all of them: the same as one process with
    /// `batch_size × machines × processes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_parallel: Option<DataParallel>,
}

fn default_seq_len() -> usize {
    512
}
fn default_batch() -> usize {
    8
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn default_log_every() -> u64 {
    10
}

/// Port names the sources may not take.
const RESERVED: &[&str] = &["model", "tokenizer"];

impl CptConfig {
    /// Training tokens per optimiser step, over every rank.
    pub fn tokens_per_step(&self) -> u64 {
        (self.seq_len * self.batch_size * self.grad_accum * self.ranks()) as u64
    }

    /// Ranks that train together: `machines × processes`, or one.
    pub fn ranks(&self) -> usize {
        super::common::processes(&self.data_parallel) * super::common::machines(&self.data_parallel)
    }

    /// Optimiser steps of the run.
    pub fn total_steps(&self) -> u64 {
        match (self.max_steps, self.max_tokens) {
            (Some(s), _) => s,
            (None, Some(t)) => t.div_ceil(self.tokens_per_step().max(1)),
            (None, None) => 0,
        }
    }
}

/// `train.cpt`.
pub struct Cpt;

impl Operator for Cpt {
    type Config = CptConfig;
    const NAME: &'static str = "train.cpt";
    const VERSION: &'static str = "2";
    const DESCRIPTION: &'static str =
        "Continued pre-training on named sources, mixed online by a bandit (EXP3/ODM) or fixed weights";
    const WORKER: WorkerKind = WorkerKind::Torch;

    fn ports(config: Option<&CptConfig>) -> Ports {
        let mut inputs = vec![
            PortSpec::new(
                "model",
                PortType::Model,
                "the model to train (Hugging Face layout)",
            ),
            PortSpec::new(
                "tokenizer",
                PortType::Tokenizer,
                "the tokenizer (default: the model's own files)",
            )
            .optional(),
        ];
        let other_inputs = match config {
            Some(c) => {
                for (name, _) in c.sources.resolved() {
                    inputs.push(
                        PortSpec::new(&name, PortType::Dataset, "a source: datasets of text")
                            .many()
                            .with_columns(&[&c.text_column]),
                    );
                }
                None
            }
            // One dataset port per source, named in `sources`.
            None => Some(PortType::Dataset),
        };
        Ports {
            inputs,
            outputs: vec![
                PortSpec::new("model", PortType::Model, "the trained model (Hugging Face layout)"),
                PortSpec::new(
                    "report",
                    PortType::Report,
                    "per step: loss by source, mixing weights, lr, tokens, tokens/s; validation; plots",
                ),
            ],
            other_inputs,
        }
    }

    fn check(c: &CptConfig) -> Result<(), String> {
        let sources = c.sources.resolved();
        if sources.is_empty() {
            return Err("sources: name at least one source".into());
        }
        for (i, (name, spec)) in sources.iter().enumerate() {
            if RESERVED.contains(&name.as_str()) {
                return Err(format!("sources: `{name}` is taken by another input port"));
            }
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
            if !ok {
                return Err(format!(
                    "sources: `{name}` must be letters, digits, `_` or `-` (it names an input port)"
                ));
            }
            if i > 0 && sources[i - 1].0 == *name {
                return Err(format!("sources: `{name}` is named twice"));
            }
            if let Some(w) = spec.weight {
                if !(w.is_finite() && w >= 0.0) {
                    return Err(format!("sources.{name}.weight: must not be negative"));
                }
            }
        }
        if c.mixing.strategy == Strategy::Static {
            let missing: Vec<&str> = sources
                .iter()
                .filter(|(_, s)| s.weight.is_none())
                .map(|(n, _)| n.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "mixing.strategy static needs a weight for every source; missing: {}",
                    missing.join(", ")
                ));
            }
            if sources.iter().all(|(_, s)| s.weight == Some(0.0)) {
                return Err("sources: the static weights are all zero".into());
            }
        }
        match (c.max_steps, c.max_tokens) {
            (None, None) => return Err("give the budget: max_steps or max_tokens".into()),
            (Some(_), Some(_)) => return Err("give max_steps or max_tokens, not both".into()),
            (Some(0), _) | (_, Some(0)) => return Err("the budget must be positive".into()),
            _ => {}
        }
        for (name, v) in [
            ("seq_len", c.seq_len),
            ("batch_size", c.batch_size),
            ("grad_accum", c.grad_accum),
        ] {
            if v == 0 {
                return Err(format!("{name}: must be at least 1"));
            }
        }
        if c.seq_len < 2 {
            return Err("seq_len: must be at least 2".into());
        }
        if c.log_every == 0 {
            return Err("log_every: must be at least 1".into());
        }
        if let Some(dp) = &c.data_parallel {
            dp.check()?;
        }
        let m = &c.mixing;
        if !(0.0..1.0).contains(&m.smoothing) {
            return Err("mixing.smoothing: must be in [0, 1)".into());
        }
        for (name, v) in [("mixing.lp_fast", m.lp_fast), ("mixing.lp_slow", m.lp_slow)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!("{name}: must be in (0, 1]"));
            }
        }
        if m.lp_slow >= m.lp_fast {
            return Err(
                "mixing.lp_slow: must be below lp_fast (the slow average moves less)".into(),
            );
        }
        if !non_negative(m.ucb_c) || !positive(m.thompson_sigma) {
            return Err(
                "mixing.ucb_c must not be negative and thompson_sigma must be positive".into(),
            );
        }
        if let Some(v) = &c.validation.sources {
            if v.is_empty() {
                return Err("validation.sources: name at least one source".into());
            }
            for n in v {
                if !sources.iter().any(|(s, _)| s == n) {
                    return Err(format!(
                        "validation.sources: `{n}` is not one of the sources"
                    ));
                }
            }
        }
        if c.validation.holdout_sequences == 0 {
            return Err("validation.holdout_sequences: must be at least 1".into());
        }
        if c.checkpoint.keep == 0 {
            return Err("checkpoint.keep: must be at least 1".into());
        }
        c.optim.check()?;
        check_device(&c.device)
    }

    fn run(config: &CptConfig, ctx: &mut OpContext) -> anyhow::Result<()> {
        super::run_in_torch(Self::NAME, config, ctx)
    }

    fn processes(config: &CptConfig) -> usize {
        super::common::processes(&config.data_parallel)
    }

    fn machines(config: &CptConfig) -> usize {
        super::common::machines(&config.data_parallel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> CptConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn each_source_is_an_input_port() {
        let c = cfg(json!({"sources": ["web", "textbook", "guideline"], "max_steps": 10}));
        Cpt::check(&c).unwrap();
        let p = Cpt::ports(Some(&c));
        let names: Vec<&str> = p.inputs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["model", "tokenizer", "guideline", "textbook", "web"]
        );
        assert_eq!(p.inputs[2].columns, ["text"]);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let bad = |v: serde_json::Value, want: &str| {
            let e = Cpt::check(&cfg(v)).unwrap_err();
            assert!(e.contains(want), "{e}");
        };
        bad(
            json!({"sources": ["model"], "max_steps": 1}),
            "taken by another input port",
        );
        bad(
            json!({"sources": ["a b"], "max_steps": 1}),
            "names an input port",
        );
        bad(json!({"sources": ["a"]}), "max_steps or max_tokens");
        bad(
            json!({"sources": ["a"], "max_steps": 1, "max_tokens": 5}),
            "not both",
        );
        bad(
            json!({"sources": {"a": {"weight": 1.0}, "b": {}}, "max_steps": 1, "mixing": {"strategy": "static"}}),
            "missing: b",
        );
        bad(
            json!({"sources": ["a"], "max_steps": 1, "device": "tpu"}),
            "device",
        );
        bad(
            json!({"sources": ["a"], "max_steps": 1, "optim": {"lr": -1.0}}),
            "optim.lr",
        );
    }

    #[test]
    fn a_token_budget_rounds_up_to_whole_steps() {
        let c = cfg(json!({"sources": ["a"], "max_tokens": 10000, "seq_len": 64, "batch_size": 4}));
        assert_eq!(c.tokens_per_step(), 256);
        assert_eq!(c.total_steps(), 40);
    }

    #[test]
    fn data_parallel_ranks_share_the_token_budget() {
        let c = cfg(
            json!({"sources": ["a"], "max_tokens": 10000, "seq_len": 64, "batch_size": 4,
            "data_parallel": {"processes": 2, "machines": 2}}),
        );
        Cpt::check(&c).unwrap();
        assert_eq!((Cpt::processes(&c), Cpt::machines(&c)), (2, 2));
        assert_eq!(c.tokens_per_step(), 1024);
        assert_eq!(c.total_steps(), 10);
        let one = cfg(json!({"sources": ["a"], "max_steps": 1, "data_parallel": {"processes": 1}}));
        let e = Cpt::check(&one).unwrap_err();
        assert!(e.contains("data_parallel.processes"), "{e}");
    }
}
