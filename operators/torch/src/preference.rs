//! `train.preference`: SimPO, CPO, SimPO+CPO and DPO over batches laid out as TRL's
//! CPOTrainer lays them out (chosen rows, then rejected rows, right-padded to one width),
//! with every TRL metric per step in the report.

use crate::common::{
    adamw, join_ranks, order, progress_line, rank_device, resume, save_checkpoint, schedule,
    step_failure, Cursor, Resumed,
};
use crate::init::kind_of;
use crate::model_dir;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;
use zest_engine::operator::OpContext;
use zest_kernels::plot::{line_chart_png, Chart};
use zest_kernels_torch::loss::{
    preference_batch, sequence_logps, PreferenceConfig as LossConfig, PreferenceKind,
};
use zest_kernels_torch::mask::{positions_from_start, Attention};
use zest_kernels_torch::optim::{clip_grad_norm, AdamW};
use zest_kernels_torch::tch::{self, Tensor};
use zest_kernels_torch::{checkpoint, device, Transformer};
use zest_operators::train::data::read_rows;
use zest_operators::train::preference::{
    texts, tokenize_pair, tokenize_pair_dpo, Loss, Pair, PreferenceConfig,
};
use zest_operators::train::sft::IGNORE;

/// The kernel's loss settings for a resolved config.
pub fn loss_config(c: &PreferenceConfig) -> LossConfig {
    let r = c.resolved();
    LossConfig {
        kind: match r.loss {
            Loss::Simpo | Loss::SimpoCpo => PreferenceKind::Simpo,
            Loss::Cpo => PreferenceKind::Cpo,
            Loss::Dpo => PreferenceKind::Dpo,
        },
        beta: r.beta,
        simpo_gamma: r.simpo_gamma,
        cpo_alpha: r.cpo_alpha,
        label_smoothing: c.label_smoothing,
    }
}

/// Pairs as tensors: `[2 · pairs, width]`, chosen rows first.
pub struct PairBatch {
    /// Token ids (padding: `pad`).
    pub ids: Tensor,
    /// 1 on tokens, 0 on padding.
    pub mask: Tensor,
    /// Labels (`IGNORE` on prompts and padding).
    pub labels: Tensor,
    /// Real tokens.
    pub tokens: i64,
}

/// Lays out `pairs` as TRL's `concatenated_inputs` does.
pub fn pair_batch(pairs: &[&Pair], pad: i64) -> PairBatch {
    let width = pairs
        .iter()
        .map(|p| p.chosen_ids.len().max(p.rejected_ids.len()))
        .max()
        .unwrap_or(1);
    let (mut ids, mut mask, mut labels) = (vec![], vec![], vec![]);
    let mut tokens = 0;
    let rows = pairs
        .iter()
        .map(|p| (&p.chosen_ids, &p.chosen_labels))
        .chain(pairs.iter().map(|p| (&p.rejected_ids, &p.rejected_labels)));
    for (i, l) in rows {
        let n = i.len();
        tokens += n as i64;
        ids.extend_from_slice(i);
        ids.extend(std::iter::repeat_n(pad, width - n));
        mask.extend(std::iter::repeat_n(1i64, n));
        mask.extend(std::iter::repeat_n(0, width - n));
        labels.extend_from_slice(l);
        labels.extend(std::iter::repeat_n(IGNORE, width - n));
    }
    let shape = [2 * pairs.len() as i64, width as i64];
    PairBatch {
        ids: Tensor::from_slice(&ids).view(shape),
        mask: Tensor::from_slice(&mask).view(shape),
        labels: Tensor::from_slice(&labels).view(shape),
        tokens,
    }
}

/// DPO's reference log-probabilities (summed), chosen and rejected.
fn reference_logps(reference: &Transformer, b: &PairBatch) -> (Tensor, Tensor) {
    let _g = tch::no_grad_guard();
    let (rows, seq) = b.ids.size2().expect("[rows, seq]");
    let logits = reference.forward(
        &b.ids,
        &positions_from_start(rows, seq, reference.device()),
        &Attention::Padded(&b.mask),
        None,
    );
    let all = sequence_logps(&logits, &b.labels.to_device(logits.device()), false);
    let n = rows / 2;
    (all.narrow(0, 0, n), all.narrow(0, n, n))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StepRow {
    step: u64,
    lr: f64,
    loss: f64,
    grad_norm: f64,
    tokens: u64,
    tokens_per_s: f64,
    /// TRL's metrics under TRL's names, averaged over the step's micro-batches.
    metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    step: u64,
    tokens: u64,
    cursor: Cursor,
    steps: Vec<StepRow>,
    seconds: f64,
}

/// Runs `train.preference`.
pub fn run(c: &PreferenceConfig, ctx: &mut OpContext) -> Result<()> {
    let r = c.resolved();
    let lc = loss_config(c);
    let mut dp = join_ranks(ctx, &c.data_parallel)?;
    let (rank, world) = dp.as_ref().map_or((0, 1), |d| (d.rank(), d.world_size()));
    let dev = rank_device(device::parse_device(&c.device)?, ctx)?;
    let kind = kind_of(c.dtype);
    let model_dir = ctx.input("model")?.path()?.to_path_buf();
    let tok_dir = model_dir::tokenizer_dir(ctx, &model_dir)?.to_path_buf();
    let tok = model_dir::load_tokenizer(&tok_dir, "the node")?;
    let pad = tok
        .special_id("pad_token")
        .or_else(|| tok.special_id("eos_token"))
        .unwrap_or(0);
    let rows = read_rows(ctx, "data")?;
    let mut pairs = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        // Each loss tokenizes as the TRL trainer that defines it: DPOTrainer, else CPOTrainer.
        let pair = if r.loss == Loss::Dpo {
            tokenize_pair_dpo(&tok, row, c.max_length)
        } else {
            texts(&tok, row).and_then(|(p, ch, rj)| tokenize_pair(&tok, &p, &ch, &rj, c.max_length))
        };
        pairs.push(pair.map_err(|e| anyhow::anyhow!("input `data`, record {i}: {e}"))?);
    }
    if pairs.is_empty() {
        bail!("input `data` has no preference pairs");
    }
    // Pairs per rank and step; every rank draws the whole step's and trains on its share.
    let per_step = c.batch_size * c.grad_accum;
    let total = c.max_steps.unwrap_or_else(|| {
        ((pairs.len() as f64 * r.epochs) / (per_step * world) as f64)
            .ceil()
            .max(1.0) as u64
    });
    let sched = schedule(&r.optim, total);
    ctx.checkpoints()?
        .keep_after_commit(c.checkpoint.keep_after_commit);
    let reference = if r.loss == Loss::Dpo {
        let dir = match ctx.inputs("reference").first() {
            Some(a) => a.path()?.to_path_buf(),
            None => model_dir.clone(),
        };
        let m = checkpoint::load(&dir, dev, Some(kind)).context("loading the reference model")?;
        m.set_trainable(false);
        Some(m)
    } else {
        None
    };
    let (model, mut state, mut opt) = match resume::<State>(ctx, dev, kind, &r.optim)? {
        Some(Resumed { model, opt, state }) => {
            println!(
                "resuming from the checkpoint of step {}/{total}",
                state.step
            );
            (model, state, opt)
        }
        None => {
            let model =
                checkpoint::load(&model_dir, dev, Some(kind)).context("loading input `model`")?;
            let opt = AdamW::new(model.parameters(), adamw(&r.optim));
            let state = State {
                step: 0,
                tokens: 0,
                cursor: Cursor::default(),
                steps: vec![],
                seconds: 0.0,
            };
            (model, state, opt)
        }
    };
    model_dir::check_vocabulary(&tok, &model, "the node's tokenizer")?;
    model.set_trainable(true);
    if let Some(dp) = dp.as_mut() {
        dp.agree("resuming", state.step)?;
        dp.share_parameters(model.parameters())?;
    }
    println!(
        "{} pairs; {:?} with beta {}, gamma {}, cpo_alpha {}; {total} steps",
        pairs.len(),
        r.loss,
        r.beta,
        r.simpo_gamma,
        r.cpo_alpha
    );
    let mut ord = order(pairs.len(), c.seed, 0, state.cursor.epoch);
    let started = Instant::now();
    let seconds_before = state.seconds;
    let (start_step, tokens_before) = (state.step, state.tokens);
    while state.step < total {
        let step = state.step + 1;
        let t0 = Instant::now();
        let mut picked = Vec::with_capacity(per_step * world);
        for _ in 0..per_step * world {
            picked.push(state.cursor.next(&mut ord, pairs.len(), c.seed, 0));
        }
        // Micro-batches of the whole step, over every rank.
        let micro = picked.chunks(c.batch_size).count();
        let picked = &picked[rank * per_step..(rank + 1) * per_step];
        let mut metrics: BTreeMap<String, f64> = BTreeMap::new();
        let mut loss_sum = 0.0;
        let mut tokens = 0i64;
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
            opt.zero_grad();
            for chunk in picked.chunks(c.batch_size) {
                let refs: Vec<&Pair> = chunk.iter().map(|i| &pairs[*i]).collect();
                let b = pair_batch(&refs, pad);
                tokens += b.tokens;
                let refl = reference.as_ref().map(|m| reference_logps(m, &b));
                let (loss, m) = preference_batch(
                    &model,
                    &lc,
                    &b.ids,
                    &b.mask,
                    &b.labels,
                    refl.as_ref().map(|(a, b)| (a, b)),
                )?;
                let l = loss.double_value(&[]);
                if !l.is_finite() {
                    bail!(
                        "the loss of step {step} is {l}: training stopped (the last checkpoint \
                         is kept); lower optim.lr or beta"
                    );
                }
                (loss / micro as f64).backward();
                loss_sum += l / micro as f64;
                for (k, v) in m {
                    *metrics.entry(k).or_default() += v / micro as f64;
                }
            }
            Ok(())
        }));
        match res {
            Ok(r) => r?,
            Err(p) => {
                let what = format!("micro-batch of {} pairs", c.batch_size);
                return Err(step_failure(p, step, &what));
            }
        }
        if let Some(dp) = dp.as_mut() {
            dp.all_reduce_gradients(model.parameters())?;
            // Every rank has the same metrics' names (the loss decides them).
            let mut sums: Vec<f64> = [loss_sum, tokens as f64]
                .into_iter()
                .chain(metrics.values().copied())
                .collect();
            dp.sum(&mut sums)?;
            loss_sum = sums[0];
            tokens = sums[1] as i64;
            for (v, s) in metrics.values_mut().zip(&sums[2..]) {
                *v = *s;
            }
        }
        let max_norm = if r.optim.max_grad_norm > 0.0 {
            r.optim.max_grad_norm
        } else {
            f64::INFINITY
        };
        let grad_norm = clip_grad_norm(model.parameters(), max_norm);
        let lr = sched.lr_at(state.step);
        opt.step(lr);
        state.step = step;
        state.tokens += tokens as u64;
        state.steps.push(StepRow {
            step,
            lr,
            loss: loss_sum,
            grad_norm,
            tokens: state.tokens,
            tokens_per_s: tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9),
            metrics: metrics.clone(),
        });
        let last = step == total;
        if !ctx.is_leader() {
            // Rank 0 reports and saves checkpoints.
            continue;
        }
        if step.is_multiple_of(c.log_every) || last || step == start_step + 1 {
            let elapsed = started.elapsed().as_secs_f64();
            let note = progress_line(
                step,
                total,
                loss_sum,
                lr,
                (state.tokens - tokens_before) as f64 / elapsed.max(1e-9),
                elapsed / (step - start_step) as f64 * (total - step) as f64,
            );
            println!(
                "{note} | margin {:.4} | accuracy {:.2}",
                metrics.get("rewards/margins").copied().unwrap_or(0.0),
                metrics.get("rewards/accuracies").copied().unwrap_or(0.0)
            );
            ctx.progress(&note);
        }
        if c.checkpoint.due(step, last) {
            state.seconds = seconds_before + started.elapsed().as_secs_f64();
            save_checkpoint(ctx, &model, &opt, &state, step, c.checkpoint.keep)?;
        }
    }
    if let Some(dp) = dp.as_mut() {
        dp.barrier()?;
    }
    if !ctx.is_leader() {
        return Ok(());
    }
    state.seconds = seconds_before + started.elapsed().as_secs_f64();
    let out = ctx.output_dir("model")?.to_path_buf();
    model_dir::save(&model, kind, &out, &tok_dir)?;
    let dir = ctx.output_dir("report")?.to_path_buf();
    let report = serde_json::json!({
        "op": "train.preference",
        "settings": r,
        "label_smoothing": c.label_smoothing,
        "pairs": pairs.len(),
        "processes": world,
        "total_steps": total,
        "steps": state.steps,
        "final": {"steps": state.step, "tokens": state.tokens, "seconds": state.seconds},
    });
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    let series = |key: &str| -> Vec<(f64, f64)> {
        state
            .steps
            .iter()
            .map(|s| {
                (
                    s.step as f64,
                    s.metrics.get(key).copied().unwrap_or(f64::NAN),
                )
            })
            .collect()
    };
    let chart = Chart {
        title: "preference loss and reward margin".into(),
        x_label: "step".into(),
        series: vec![
            (
                "loss".into(),
                state
                    .steps
                    .iter()
                    .map(|s| (s.step as f64, s.loss))
                    .collect(),
            ),
            ("rewards/margins".into(), series("rewards/margins")),
        ],
        y_range: None,
    };
    std::fs::write(dir.join("losses.png"), line_chart_png(&chart, 720, 360))?;
    ctx.output_meta.insert(
        "model".into(),
        serde_json::json!({"steps": state.step, "pairs": pairs.len()}),
    );
    Ok(())
}
