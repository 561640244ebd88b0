//! What the training loops share: the optimiser and schedule from the config, progress text,
//! and failures said plainly.

use zest_kernels_torch::optim::AdamWConfig;
use zest_kernels_torch::schedule::{Decay, Schedule};
use zest_operators::train::common::{Decay as ConfigDecay, OptimConfig};

/// AdamW's hyper-parameters.
pub fn adamw(o: &OptimConfig) -> AdamWConfig {
    AdamWConfig {
        beta1: o.beta1,
        beta2: o.beta2,
        eps: o.eps,
        weight_decay: o.weight_decay,
    }
}

/// The learning-rate schedule of a run of `total` optimiser steps.
pub fn schedule(o: &OptimConfig, total: u64) -> Schedule {
    Schedule {
        lr: o.lr,
        warmup_steps: o.warmup_for(total),
        total_steps: total,
        decay: match o.decay {
            ConfigDecay::Cosine => Decay::Cosine,
            ConfigDecay::Linear => Decay::Linear,
            ConfigDecay::Constant => Decay::Constant,
        },
    }
}

/// Joins the other ranks of a data-parallel node ([`zest_engine::ranks`]), when this is one;
/// `None` for a node that runs as one process. Called first thing, so that a rank that cannot
/// start is found out before anyone reads data.
pub fn join_ranks(
    ctx: &zest_engine::operator::OpContext,
    dp: &Option<zest_operators::train::common::DataParallel>,
) -> anyhow::Result<Option<zest_kernels_torch::dist::DataParallel>> {
    let (Some(rank), Some(dp)) = (&ctx.rank, dp) else {
        return Ok(None);
    };
    let launch = zest_kernels_torch::dist::Launch {
        rank: rank.rank,
        world_size: rank.world_size,
        local_rank: rank.local_rank,
        master_addr: rank.master_addr.clone(),
        master_port: rank.master_port,
    };
    let group = zest_kernels_torch::dist::DataParallel::join(
        &launch,
        std::time::Duration::from_secs(dp.timeout_s),
    )?;
    if rank.is_leader() {
        println!("data parallel: {} ranks joined (Gloo)", rank.world_size);
    }
    Ok(Some(group))
}

/// The device of this rank: a CUDA device becomes the rank's own (`cuda:LOCAL_RANK`).
pub fn rank_device(
    dev: zest_kernels_torch::tch::Device,
    ctx: &zest_engine::operator::OpContext,
) -> anyhow::Result<zest_kernels_torch::tch::Device> {
    use zest_kernels_torch::tch::{Cuda, Device};
    match (dev, &ctx.rank) {
        (Device::Cuda(_), Some(r)) => {
            let n = Cuda::device_count() as usize;
            if r.local_rank >= n {
                anyhow::bail!(
                    "rank {} trains on cuda:{}, but this machine shows it {n} GPU(s): give the node \
                     as many GPUs (resources.gpu) as data_parallel.processes",
                    r.rank,
                    r.local_rank
                );
            }
            Ok(Device::Cuda(r.local_rank))
        }
        (d, _) => Ok(d),
    }
}

/// `42s`, `3m07s`, `2h05m`.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `950`, `12.3k`, `1.25M`.
pub fn human_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

/// A failed step's panic (libtorch errors surface as panics in tch's infallible calls), said
/// plainly; out-of-memory gets what to change.
pub fn step_failure(p: Box<dyn std::any::Any + Send>, step: u64, batch: &str) -> anyhow::Error {
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    let first = msg.lines().next().unwrap_or("").to_string();
    if msg.contains("out of memory") || msg.contains("can't allocate memory") {
        anyhow::anyhow!(
            "out of memory at step {step} ({batch}): lower batch_size and raise grad_accum to \
             keep the tokens per step, or shorten the sequences; the last checkpoint is kept \
             ({first})"
        )
    } else {
        anyhow::anyhow!("libtorch failed at step {step}: {first}")
    }
}

/// The progress line of step `step` of `total`.
pub fn progress_line(
    step: u64,
    total: u64,
    loss: f64,
    lr: f64,
    tokens_per_s: f64,
    eta_secs: f64,
) -> String {
    format!(
        "step {step}/{total} | loss {loss:.4} | lr {lr:.2e} | {} tok/s | ETA {}",
        human_rate(tokens_per_s),
        human_duration(eta_secs)
    )
}

/// A training run brought back from its newest checkpoint.
pub struct Resumed<S> {
    /// The model as it was.
    pub model: zest_kernels_torch::Transformer,
    /// The optimiser, moments and step count restored.
    pub opt: zest_kernels_torch::optim::AdamW,
    /// The loop's own state.
    pub state: S,
}

/// The newest checkpoint of this node execution, if any: model (on `dev`, in `kind`),
/// optimiser and the loop's state (`state.json`).
pub fn resume<S: serde::de::DeserializeOwned>(
    ctx: &zest_engine::operator::OpContext,
    dev: zest_kernels_torch::tch::Device,
    kind: zest_kernels_torch::tch::Kind,
    optim: &OptimConfig,
) -> anyhow::Result<Option<Resumed<S>>> {
    use anyhow::Context;
    let Some(r) = ctx.checkpoints()?.latest()? else {
        return Ok(None);
    };
    let model = zest_kernels_torch::checkpoint::load(&r.dir, dev, Some(kind))
        .with_context(|| format!("loading the checkpoint of step {}", r.step))?;
    let text = std::fs::read_to_string(r.dir.join("state.json"))?;
    let state: S = serde_json::from_str(&text).context("the checkpoint's state.json")?;
    let mut opt = zest_kernels_torch::optim::AdamW::new(model.parameters(), adamw(optim));
    opt.load(&r.dir.join("optimizer.safetensors"))?;
    Ok(Some(Resumed { model, opt, state }))
}

/// Saves model, optimiser and the loop's `state` as the checkpoint of `step` into the store,
/// keeping the newest `keep`.
pub fn save_checkpoint<S: serde::Serialize>(
    ctx: &zest_engine::operator::OpContext,
    model: &zest_kernels_torch::Transformer,
    opt: &zest_kernels_torch::optim::AdamW,
    state: &S,
    step: u64,
    keep: usize,
) -> anyhow::Result<()> {
    let dir = ctx.tmp_dir()?.join(format!("checkpoint-{step}"));
    zest_kernels_torch::checkpoint::save(
        model,
        &dir,
        &zest_kernels_torch::checkpoint::SaveOptions {
            kind: model.kind(),
            ..Default::default()
        },
    )?;
    opt.save(&dir.join("optimizer.safetensors"))?;
    std::fs::write(dir.join("state.json"), serde_json::to_vec(state)?)?;
    ctx.checkpoints()?
        .save(step, &dir, serde_json::json!({"step": step}), keep)?;
    std::fs::remove_dir_all(&dir)?;
    println!("saved the checkpoint of step {step}");
    Ok(())
}

/// The order of `n` items in `epoch` of reader `stream`: a seeded Fisher–Yates shuffle.
pub fn order(n: usize, seed: u64, stream: usize, epoch: u64) -> Vec<u32> {
    let mut rng = zest_kernels::rng::Rng::new(
        seed ^ (stream as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ epoch.wrapping_mul(0xbf58_476d_1ce4_e5b9),
    );
    let mut v: Vec<u32> = (0..n as u32).collect();
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// Where a reader is in a shuffled dataset: the epoch (each reshuffles) and the position in it.
/// Part of a checkpoint, so that a resumed run reads the same items next.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// Passes completed.
    pub epoch: u64,
    /// Items read in this pass.
    pub pos: usize,
}

impl Cursor {
    /// The next of `n` items in `ord` (this epoch's [`order`] of reader `stream`), moving to
    /// a new epoch and its order when this one is read.
    pub fn next(&mut self, ord: &mut Vec<u32>, n: usize, seed: u64, stream: usize) -> usize {
        if self.pos >= n {
            self.epoch += 1;
            self.pos = 0;
            *ord = order(n, seed, stream, self.epoch);
        }
        self.pos += 1;
        ord[self.pos - 1] as usize
    }
}
