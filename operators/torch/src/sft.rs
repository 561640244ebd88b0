//! `train.sft`: one supervised fine-tuning stage, with transformers' loss normalisation (the
//! sum over scored tokens divided by the scored tokens of the whole accumulated step), padded
//! or packed batches, checkpoints in the store and an optional validation set.

use crate::common::{
    adamw, join_ranks, order, progress_line, rank_device, resume, save_checkpoint, schedule,
    step_failure, Cursor, Resumed,
};
use crate::init::kind_of;
use crate::model_dir;
use crate::replay::{self, ReplayStats};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use zest_engine::operator::OpContext;
use zest_kernels::plot::{line_chart_png, Chart};
use zest_kernels::text_tokenizer::TextTokenizer;
use zest_kernels_torch::loss::masked_cross_entropy;
use zest_kernels_torch::mask::{positions_from_start, Attention};
use zest_kernels_torch::optim::{clip_grad_norm, AdamW};
use zest_kernels_torch::packing;
use zest_kernels_torch::tch::{self, Tensor};
use zest_kernels_torch::{checkpoint, device, Transformer};
use zest_operators::train::data::read_rows;
use zest_operators::train::sft::{convert, Example, SftConfig, IGNORE};

/// One training unit: an example, or a packed row of several.
#[derive(Debug, Clone)]
struct Unit {
    ids: Vec<i64>,
    labels: Vec<i64>,
    /// Packed rows: positions restarting per example, and which example each token is of.
    packed: Option<(Vec<i64>, Vec<i64>)>,
}

impl Unit {
    fn scored(&self) -> i64 {
        self.labels.iter().skip(1).filter(|l| **l != IGNORE).count() as i64
    }
}

fn units(examples: Vec<Example>, c: &SftConfig, pad: i64) -> Vec<Unit> {
    if !c.packing {
        return examples
            .into_iter()
            .map(|e| Unit {
                ids: e.input_ids,
                labels: e.labels,
                packed: None,
            })
            .collect();
    }
    let seqs: Vec<(Vec<i64>, Vec<i64>)> = examples
        .into_iter()
        .map(|e| (e.input_ids, e.labels))
        .collect();
    packing::pack(&seqs, c.max_length, pad)
        .into_iter()
        .map(|r| Unit {
            ids: r.input_ids,
            labels: r.labels,
            packed: Some((r.positions, r.segments)),
        })
        .collect()
}

/// A micro-batch as tensors: ids, labels, and how attention sees it.
struct Batch {
    ids: Tensor,
    labels: Tensor,
    positions: Tensor,
    mask: Tensor,
    packed: bool,
    tokens: i64,
}

fn batch(units: &[&Unit], pad: i64, dev: tch::Device) -> Batch {
    let width = units.iter().map(|u| u.ids.len()).max().unwrap_or(1);
    let (mut ids, mut labels, mut pos, mut mask) = (vec![], vec![], vec![], vec![]);
    let packed = units.iter().all(|u| u.packed.is_some());
    let mut tokens = 0;
    for u in units {
        let n = u.ids.len();
        tokens += n as i64;
        ids.extend_from_slice(&u.ids);
        ids.extend(std::iter::repeat_n(pad, width - n));
        labels.extend_from_slice(&u.labels);
        labels.extend(std::iter::repeat_n(IGNORE, width - n));
        match &u.packed {
            Some((p, s)) => {
                pos.extend_from_slice(p);
                pos.extend(std::iter::repeat_n(0, width - n));
                mask.extend_from_slice(s);
                mask.extend(std::iter::repeat_n(-1, width - n));
            }
            None => {
                mask.extend(std::iter::repeat_n(1i64, n));
                mask.extend(std::iter::repeat_n(0, width - n));
            }
        }
    }
    let b = units.len() as i64;
    let shape = [b, width as i64];
    Batch {
        ids: Tensor::from_slice(&ids).view(shape).to_device(dev),
        labels: Tensor::from_slice(&labels).view(shape).to_device(dev),
        positions: if packed {
            Tensor::from_slice(&pos).view(shape).to_device(dev)
        } else {
            positions_from_start(b, width as i64, dev)
        },
        mask: Tensor::from_slice(&mask).view(shape).to_device(dev),
        packed,
        tokens,
    }
}

fn forward(model: &Transformer, b: &Batch) -> Tensor {
    let attn = if b.packed {
        Attention::Packed(&b.mask)
    } else {
        Attention::Padded(&b.mask)
    };
    model.forward(&b.ids, &b.positions, &attn, None)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StepRow {
    step: u64,
    lr: f64,
    loss: f64,
    grad_norm: f64,
    /// Tokens so far (padding excluded).
    tokens: u64,
    /// Tokens that carried the loss this step.
    scored_tokens: i64,
    tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EvalRow {
    step: u64,
    loss: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    step: u64,
    tokens: u64,
    cursor: Cursor,
    steps: Vec<StepRow>,
    eval: Vec<EvalRow>,
    seconds: f64,
}

fn examples_of(
    ctx: &OpContext,
    port: &str,
    tok: &TextTokenizer,
    c: &SftConfig,
) -> Result<(Vec<Example>, usize, usize, usize)> {
    let rows = read_rows(ctx, port)?;
    let n = rows.len();
    let conv = convert(tok, &rows, c).map_err(|e| anyhow::anyhow!("input `{port}`: {e}"))?;
    Ok((conv.examples, n, conv.empty, conv.truncated))
}

/// Adds the replayed rows of pre-training text to `train` (when the `replay` input is
/// connected or `replay:` configured), each a unit with the loss on every token.
fn replay_units(
    ctx: &OpContext,
    tok: &TextTokenizer,
    c: &SftConfig,
    train: &mut Vec<Unit>,
) -> Result<Option<ReplayStats>> {
    if ctx.inputs("replay").is_empty() {
        if c.replay.is_some() {
            bail!("`replay:` is configured but no dataset is connected to input `replay`");
        }
        return Ok(None);
    }
    let rc = c.replay.clone().unwrap_or_default();
    let (rows, stats) = replay::rows(ctx, tok, &rc, c.max_length, train.len(), c.seed)?;
    println!(
        "replay: {} rows of {} tokens from {} documents ({} distinct), {:.0}% of {} units",
        stats.used,
        stats.seq_len,
        stats.documents,
        stats.rows,
        rc.ratio * 100.0,
        train.len() + stats.used
    );
    for ids in rows {
        let n = ids.len() as i64;
        train.push(Unit {
            labels: ids.clone(),
            ids,
            // In a packed batch every unit carries its positions and segments.
            packed: c.packing.then(|| ((0..n).collect(), vec![0; n as usize])),
        });
    }
    Ok(Some(stats))
}

/// Mean loss per scored token over `units`.
fn eval_loss(model: &Transformer, units: &[Unit], c: &SftConfig, pad: i64) -> f64 {
    let _g = tch::no_grad_guard();
    let total: i64 = units.iter().map(Unit::scored).sum();
    let mut sum = 0.0;
    for chunk in units.chunks(c.batch_size) {
        let refs: Vec<&Unit> = chunk.iter().collect();
        let b = batch(&refs, pad, model.device());
        let logits = forward(model, &b);
        sum += masked_cross_entropy(&logits, &b.labels, Some(total)).double_value(&[]);
    }
    sum
}

/// Runs `train.sft`.
pub fn run(c: &SftConfig, ctx: &mut OpContext) -> Result<()> {
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
    let (train, records, empty, truncated) = examples_of(ctx, "data", &tok, c)?;
    if train.is_empty() {
        bail!(
            "input `data`: none of its {records} records has a token to train on{}",
            if empty > 0 {
                format!(
                    " ({empty} lost everything to truncation at max_length {})",
                    c.max_length
                )
            } else {
                String::new()
            }
        );
    }
    println!(
        "{records} records: {} examples, {truncated} truncated to {} tokens, {empty} dropped (nothing left to score)",
        train.len(),
        c.max_length
    );
    let eval: Vec<Unit> = if ctx.inputs("eval").is_empty() {
        vec![]
    } else {
        let (e, ..) = examples_of(ctx, "eval", &tok, c)?;
        units(e, c, pad)
    };
    let mut train = units(train, c, pad);
    let examples = train.len();
    let replay = replay_units(ctx, &tok, c, &mut train)?;
    // Units per rank and step; every rank draws the whole step's and trains on its share.
    let per_step = c.batch_size * c.grad_accum;
    let total = c.max_steps.unwrap_or_else(|| {
        ((train.len() as f64 * c.epochs) / (per_step * world) as f64)
            .ceil()
            .max(1.0) as u64
    });
    let optim = c.resolved_optim();
    let sched = schedule(&optim, total);
    ctx.checkpoints()?
        .keep_after_commit(c.checkpoint.keep_after_commit);
    let (model, mut state, mut opt) = match resume::<State>(ctx, dev, kind, &optim)? {
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
            let opt = AdamW::new(model.parameters(), adamw(&optim));
            let state = State {
                step: 0,
                tokens: 0,
                cursor: Cursor::default(),
                steps: vec![],
                eval: vec![],
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
    let mut ord = order(train.len(), c.seed, 0, state.cursor.epoch);
    let started = Instant::now();
    let seconds_before = state.seconds;
    let start_step = state.step;
    let tokens_before = state.tokens;
    while state.step < total {
        let step = state.step + 1;
        let t0 = Instant::now();
        // The step's units, then the normaliser over all of them.
        let mut picked: Vec<usize> = Vec::with_capacity(per_step * world);
        for _ in 0..per_step * world {
            picked.push(state.cursor.next(&mut ord, train.len(), c.seed, 0));
        }
        let scored: i64 = picked.iter().map(|i| train[*i].scored()).sum();
        let mine = &picked[rank * per_step..(rank + 1) * per_step];
        let mut loss_sum = 0.0;
        let mut tokens = 0i64;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
            opt.zero_grad();
            for chunk in mine.chunks(c.batch_size) {
                let refs: Vec<&Unit> = chunk.iter().map(|i| &train[*i]).collect();
                let b = batch(&refs, pad, model.device());
                tokens += b.tokens;
                let logits = forward(&model, &b);
                let loss = masked_cross_entropy(&logits, &b.labels, Some(scored.max(1)));
                let l = loss.double_value(&[]);
                if !l.is_finite() {
                    bail!(
                        "the loss of step {step} is {l}: training stopped (the last checkpoint \
                         is kept); lower optim.lr or look at the data"
                    );
                }
                loss.backward();
                loss_sum += l;
            }
            Ok(())
        }));
        match r {
            Ok(r) => r?,
            Err(p) => {
                let what = format!("micro-batch of {} examples", c.batch_size);
                return Err(step_failure(p, step, &what));
            }
        }
        if let Some(dp) = dp.as_mut() {
            dp.all_reduce_gradients(model.parameters())?;
            let mut sums = [loss_sum, tokens as f64];
            dp.sum(&mut sums)?;
            loss_sum = sums[0];
            tokens = sums[1] as i64;
        }
        let max_norm = if optim.max_grad_norm > 0.0 {
            optim.max_grad_norm
        } else {
            f64::INFINITY
        };
        let grad_norm = clip_grad_norm(model.parameters(), max_norm);
        let lr = sched.lr_at(state.step);
        opt.step(lr);
        state.step = step;
        state.tokens += tokens as u64;
        let dt = t0.elapsed().as_secs_f64();
        state.steps.push(StepRow {
            step,
            lr,
            loss: loss_sum,
            grad_norm,
            tokens: state.tokens,
            scored_tokens: scored,
            tokens_per_s: tokens as f64 / dt.max(1e-9),
        });
        let last = step == total;
        if !ctx.is_leader() {
            // Rank 0 validates, reports and saves checkpoints.
            continue;
        }
        if !eval.is_empty() && ((c.eval_every > 0 && step.is_multiple_of(c.eval_every)) || last) {
            let l = eval_loss(&model, &eval, c, pad);
            println!("validation at step {step}: loss {l:.4}");
            state.eval.push(EvalRow { step, loss: l });
        }
        if step.is_multiple_of(c.log_every) || last || step == start_step + 1 {
            let elapsed = started.elapsed().as_secs_f64();
            let done = (step - start_step) as f64;
            let trained = state.tokens - tokens_before;
            let note = progress_line(
                step,
                total,
                loss_sum,
                lr,
                trained as f64 / elapsed.max(1e-9),
                elapsed / done * (total - step) as f64,
            );
            println!("{note}");
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
        "op": "train.sft",
        "records": records,
        "examples": examples,
        "truncated": truncated,
        "dropped": empty,
        "packing": c.packing,
        "replay": replay,
        "loss_on": c.loss_on,
        "processes": world,
        "total_steps": total,
        "steps": state.steps,
        "validation": state.eval,
        "final": {"steps": state.step, "tokens": state.tokens, "seconds": state.seconds,
                  "validation": state.eval.last()},
    });
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    let chart = Chart {
        title: "training and validation loss".into(),
        x_label: "step".into(),
        series: vec![
            (
                "train".into(),
                state
                    .steps
                    .iter()
                    .map(|r| (r.step as f64, r.loss))
                    .collect(),
            ),
            (
                "validation".into(),
                state.eval.iter().map(|r| (r.step as f64, r.loss)).collect(),
            ),
        ],
        y_range: None,
    };
    std::fs::write(dir.join("losses.png"), line_chart_png(&chart, 720, 360))?;
    ctx.output_meta.insert(
        "model".into(),
        serde_json::json!({"steps": state.step, "tokens": state.tokens}),
    );
    Ok(())
}
