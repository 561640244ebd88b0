//! Config parts shared by the training operators: precision, device, optimiser and schedule,
//! checkpointing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The element type weights are kept and trained in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    #[serde(alias = "fp32", alias = "f32")]
    Float32,
    /// bfloat16 (weights, activations and optimiser state).
    #[serde(alias = "bf16")]
    Bfloat16,
}

/// Written by hand so that the schema, which `zest validate` checks, accepts the short names
/// serde accepts (`f32`, `fp32`, `bf16`).
impl JsonSchema for Precision {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Precision".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The element type weights are kept and trained in: float32 (f32, fp32) or bfloat16 (bf16).",
            "type": "string",
            "enum": ["float32", "bfloat16", "f32", "fp32", "bf16"]
        })
    }
}

impl Precision {
    /// The name `config.json` uses (`torch_dtype`).
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Float32 => "float32",
            Precision::Bfloat16 => "bfloat16",
        }
    }
}

/// The learning rate's shape after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Half a cosine down to zero at the last step.
    #[default]
    Cosine,
    /// Linear down to zero at the last step.
    Linear,
    /// Constant after warmup.
    Constant,
}

/// AdamW, the schedule and gradient clipping (the Hugging Face trainer's definitions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW β₁.
    pub beta1: f64,
    /// AdamW β₂.
    pub beta2: f64,
    /// AdamW ε.
    pub eps: f64,
    /// Decoupled weight decay (not applied to biases and norm weights).
    pub weight_decay: f64,
    /// Clip the gradients' global norm to this (0: no clipping).
    pub max_grad_norm: f64,
    /// Steps of linear warmup; when unset, `warmup_ratio` of the steps.
    pub warmup_steps: Option<u64>,
    /// Share of the steps spent warming up, when `warmup_steps` is unset.
    pub warmup_ratio: f64,
    /// The shape after warmup.
    pub decay: Decay,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 3e-4,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            max_grad_norm: 1.0,
            warmup_steps: None,
            warmup_ratio: 0.05,
            decay: Decay::Cosine,
        }
    }
}

impl OptimConfig {
    /// Checks ranges; errors name the field.
    pub fn check(&self) -> Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("optim.lr: must be positive, got {}", self.lr));
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(format!("optim.{name}: must be in [0, 1), got {b}"));
            }
        }
        if !positive(self.eps) {
            return Err(format!("optim.eps: must be positive, got {}", self.eps));
        }
        if !non_negative(self.weight_decay) {
            return Err("optim.weight_decay: must not be negative".into());
        }
        if !non_negative(self.max_grad_norm) {
            return Err("optim.max_grad_norm: must not be negative (0 turns clipping off)".into());
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(format!(
                "optim.warmup_ratio: must be in [0, 1), got {}",
                self.warmup_ratio
            ));
        }
        Ok(())
    }

    /// Warmup steps for a run of `total` optimiser steps.
    pub fn warmup_for(&self, total: u64) -> u64 {
        self.warmup_steps
            .unwrap_or_else(|| (self.warmup_ratio * total as f64).ceil() as u64)
            .min(total)
    }
}

/// Changes to an operator's optimiser defaults: what the DAG sets, laid over the defaults of
/// the operator (fine-tuning and preference optimisation start from other values than
/// pre-training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OptimOverrides {
    /// Peak learning rate.
    pub lr: Option<f64>,
    /// AdamW β₁.
    pub beta1: Option<f64>,
    /// AdamW β₂.
    pub beta2: Option<f64>,
    /// AdamW ε.
    pub eps: Option<f64>,
    /// Decoupled weight decay (not applied to biases and norm weights).
    pub weight_decay: Option<f64>,
    /// Clip the gradients' global norm to this (0: no clipping).
    pub max_grad_norm: Option<f64>,
    /// Steps of linear warmup; when unset, `warmup_ratio` of the steps.
    pub warmup_steps: Option<u64>,
    /// Share of the steps spent warming up, when `warmup_steps` is unset.
    pub warmup_ratio: Option<f64>,
    /// The shape after warmup.
    pub decay: Option<Decay>,
}

impl OptimOverrides {
    /// `base` with the fields set here replaced.
    pub fn over(&self, base: OptimConfig) -> OptimConfig {
        OptimConfig {
            lr: self.lr.unwrap_or(base.lr),
            beta1: self.beta1.unwrap_or(base.beta1),
            beta2: self.beta2.unwrap_or(base.beta2),
            eps: self.eps.unwrap_or(base.eps),
            weight_decay: self.weight_decay.unwrap_or(base.weight_decay),
            max_grad_norm: self.max_grad_norm.unwrap_or(base.max_grad_norm),
            warmup_steps: self.warmup_steps.or(base.warmup_steps),
            warmup_ratio: self.warmup_ratio.unwrap_or(base.warmup_ratio),
            decay: self.decay.unwrap_or(base.decay),
        }
    }
}

/// When a training node saves checkpoints into the store, and how many it keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointPolicy {
    /// Save every this many optimiser steps (0: only the checkpoint at the end of training).
    pub every_steps: u64,
    /// Checkpoints kept while the node runs (at least 1).
    pub keep: usize,
    /// Checkpoints kept once the node has committed its outputs (0: none).
    pub keep_after_commit: usize,
}

impl CheckpointPolicy {
    /// Whether a checkpoint is due after `step` (none after the last step: the node commits
    /// its outputs then).
    pub fn due(&self, step: u64, last: bool) -> bool {
        self.every_steps > 0 && step.is_multiple_of(self.every_steps) && !last
    }
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            every_steps: 100,
            keep: 2,
            keep_after_commit: 0,
        }
    }
}

/// Data parallelism: the node runs as `machines × processes` ranks (one per device on a GPU
/// machine, with torchrun's environment), each training on its share of every step, the
/// gradients summed over them through libtorch's c10d (Gloo). An optimiser step takes
/// `batch_size × grad_accum` units on every rank, so `machines × processes` times as many as
/// one process: the same as one process with `grad_accum × machines × processes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataParallel {
    /// Processes that train together on each machine (1 to 64; 2 or more on one machine);
    /// give the node that many GPUs (`resources.gpu`) to put one on each.
    pub processes: usize,
    /// Machines that train together, each with `processes` processes (`torchrun
    /// --nnodes`; 1 to 1024, default 1). A cluster executor runs one job a machine, each with
    /// the node's `resources`; the local executor runs every machine's processes here.
    #[serde(default = "one_machine", skip_serializing_if = "is_one")]
    pub machines: usize,
    /// Seconds a rank waits for the others, in the rendezvous or one collective.
    #[serde(default = "default_dp_timeout")]
    pub timeout_s: u64,
}

fn default_dp_timeout() -> u64 {
    1800
}

fn one_machine() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl DataParallel {
    /// Checks ranges; errors name the field.
    pub fn check(&self) -> Result<(), String> {
        let least = if self.machines > 1 { 1 } else { 2 };
        if !(least..=zest_engine::ranks::MAX_PROCESSES).contains(&self.processes) {
            return Err(format!(
                "data_parallel.processes: must be {least} to {}, got {} (leave data_parallel out for one process)",
                zest_engine::ranks::MAX_PROCESSES,
                self.processes
            ));
        }
        if !(1..=zest_engine::ranks::MAX_MACHINES).contains(&self.machines) {
            return Err(format!(
                "data_parallel.machines: must be 1 to {}, got {}",
                zest_engine::ranks::MAX_MACHINES,
                self.machines
            ));
        }
        if self.timeout_s == 0 {
            return Err("data_parallel.timeout_s: must be at least 1".into());
        }
        Ok(())
    }
}

/// The processes a node with `dp` runs on, on each of its machines.
pub fn processes(dp: &Option<DataParallel>) -> usize {
    dp.as_ref().map_or(1, |d| d.processes)
}

/// The machines a node with `dp` runs on.
pub fn machines(dp: &Option<DataParallel>) -> usize {
    dp.as_ref().map_or(1, |d| d.machines)
}

/// Whether `x` is a finite number above zero.
pub fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

/// Whether `x` is a finite number not below zero.
pub fn non_negative(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// `auto` (the node's GPU when it has one, else the CPU), `cpu`, `cuda` or `cuda:N`.
pub fn default_device() -> String {
    "auto".into()
}

/// Checks a device name without libtorch.
pub fn check_device(d: &str) -> Result<(), String> {
    let ok = matches!(d, "auto" | "cpu" | "cuda")
        || d.strip_prefix("cuda:")
            .is_some_and(|n| n.parse::<u32>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "device: `{d}` is not a device (auto, cpu, cuda or cuda:N)"
        ))
    }
}
