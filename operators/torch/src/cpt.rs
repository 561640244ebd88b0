//! `train.cpt`: continued pre-training with an online data mixture, checkpointed into the
//! store so that a retry, a resume or a rerun continues where it stopped, bit for bit.

use crate::common::{
    adamw, join_ranks, order, progress_line, rank_device, resume, save_checkpoint, schedule,
    step_failure, Cursor, Resumed,
};
use crate::init::kind_of;
use crate::mixer::Mixer;
use crate::model_dir;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;
use zest_engine::operator::OpContext;
use zest_kernels::text_tokenizer::TextTokenizer;
use zest_kernels_torch::loss::masked_cross_entropy;
use zest_kernels_torch::mask::{positions_from_start, Attention};
use zest_kernels_torch::optim::{clip_grad_norm, AdamW};
use zest_kernels_torch::tch::{self, Tensor};
use zest_kernels_torch::{checkpoint, device, Transformer};
use zest_operators::data::docs::par_map;
use zest_operators::train::cpt::CptConfig;
use zest_operators::train::data::read_texts;

/// One source, tokenized and cut into rows.
struct Source {
    name: String,
    documents: usize,
    /// The training tokens as documents (each with its end-of-text token; the last may be
    /// cut where the held-out rows begin), in input order.
    pieces: Vec<Vec<i64>>,
    /// Training rows, `seq_len` tokens each, one after another: the pieces joined in the order
    /// of epoch `packed` ([`Source::pack`]).
    train: Vec<i64>,
    packed: u64,
    /// Held-out rows, likewise.
    holdout: Vec<i64>,
}

impl Source {
    fn train_tokens(&self) -> usize {
        self.pieces.iter().map(Vec::len).sum()
    }

    fn train_rows(&self, seq: usize) -> usize {
        self.train_tokens() / seq
    }

    /// Joins the documents for `epoch`: in input order without `repack`, else in an order
    /// drawn for the epoch, so that rows hold other neighbours and cuts every epoch. The
    /// length, and so the number of rows, is the same every epoch.
    fn pack(&mut self, repack: bool, epoch: u64, seed: u64, stream: usize) {
        if !self.train.is_empty() && (self.packed == epoch || !repack) {
            return;
        }
        self.train.clear();
        if repack {
            // Another stream than the rows' own order, so the two shuffles are independent.
            for d in order(self.pieces.len(), seed, stream + (1 << 20), epoch) {
                self.train.extend_from_slice(&self.pieces[d as usize]);
            }
        } else {
            for p in &self.pieces {
                self.train.extend_from_slice(p);
            }
        }
        self.packed = epoch;
    }
}

/// One optimiser step, as the report lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StepRow {
    step: u64,
    lr: f64,
    loss: f64,
    grad_norm: f64,
    /// Training tokens so far.
    tokens: u64,
    tokens_per_s: f64,
    /// The source of each micro-batch.
    sources: Vec<String>,
    /// Mean loss of the micro-batches of each source drawn this step.
    loss_by_source: BTreeMap<String, f64>,
    /// Mixing weights after the step.
    weights: BTreeMap<String, f64>,
}

/// One validation pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ValRow {
    step: u64,
    by_source: BTreeMap<String, f64>,
    /// The mean over the validation sources (`validation.sources`, all by default): a
    /// held-out mixture weighting each alike.
    mean: f64,
}

/// Everything besides model and optimiser that a checkpoint must hold to continue exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    sources: Vec<String>,
    step: u64,
    tokens: u64,
    cursors: Vec<Cursor>,
    mixer: Mixer,
    steps: Vec<StepRow>,
    validation: Vec<ValRow>,
    /// Training seconds before this attempt.
    seconds: f64,
}

/// Tokenizes documents as pre-training sees them: the tokenizer's own special tokens, a
/// beginning-of-sequence token where the tokenizer has one, the end-of-text token after each.
pub(crate) fn tokenize(tok: &TextTokenizer, texts: &[String], threads: usize) -> Result<Vec<i64>> {
    let eos = tok.special_id("eos_token").ok_or_else(|| {
        anyhow::anyhow!(
            "the tokenizer names no eos_token (tokenizer_config.json), which separates documents"
        )
    })?;
    let bos = tok.special_id("bos_token");
    let docs = par_map(threads, texts, |t| tok.encode(t, true));
    let mut out = Vec::new();
    for ids in docs {
        let ids = ids?;
        if let Some(b) = bos {
            if ids.first() != Some(&b) {
                out.push(b);
            }
        }
        out.extend(ids);
        out.push(eos);
    }
    Ok(out)
}

fn load_sources(c: &CptConfig, ctx: &OpContext, tok: &TextTokenizer) -> Result<Vec<Source>> {
    let seq = c.seq_len;
    let held = c.validation.holdout_sequences;
    let mut out = vec![];
    for (name, _) in c.sources.resolved() {
        let texts = read_texts(ctx, &name, "text_column", &c.text_column)
            .with_context(|| format!("source `{name}`"))?;
        let mut ids = tokenize(tok, &texts, ctx.threads())
            .with_context(|| format!("tokenizing source `{name}`"))?;
        let rows = ids.len() / seq;
        if rows <= held {
            bail!(
                "source `{name}` has {} documents, {} tokens: {rows} rows of seq_len {seq}, too few \
                 to hold out validation.holdout_sequences ({held}) and train on the rest",
                texts.len(),
                ids.len()
            );
        }
        ids.truncate(rows * seq);
        let holdout = ids.split_off((rows - held) * seq);
        let eos = tok.special_id("eos_token");
        let mut pieces = vec![];
        let mut at = 0;
        for (i, &t) in ids.iter().enumerate() {
            if Some(t) == eos {
                pieces.push(ids[at..=i].to_vec());
                at = i + 1;
            }
        }
        if at < ids.len() {
            pieces.push(ids[at..].to_vec());
        }
        out.push(Source {
            name,
            documents: texts.len(),
            pieces,
            train: vec![],
            packed: 0,
            holdout,
        });
    }
    Ok(out)
}

/// Mean loss of `rows` (`seq_len` tokens each, one after another) in batches of `batch`.
fn eval_loss(model: &Transformer, rows: &[i64], seq: usize, batch: usize) -> f64 {
    let _g = tch::no_grad_guard();
    let n = rows.len() / seq;
    let mut sum = 0.0;
    for lo in (0..n).step_by(batch) {
        let hi = (lo + batch).min(n);
        let ids =
            Tensor::from_slice(&rows[lo * seq..hi * seq]).view([(hi - lo) as i64, seq as i64]);
        let logits = model.forward(
            &ids,
            &positions_from_start((hi - lo) as i64, seq as i64, model.device()),
            &Attention::Causal,
            None,
        );
        sum += masked_cross_entropy(&logits, &ids, None).double_value(&[]) * (hi - lo) as f64;
    }
    sum / n as f64
}

fn validate(model: &Transformer, sources: &[Source], c: &CptConfig, step: u64) -> ValRow {
    let by_source: BTreeMap<String, f64> = sources
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                eval_loss(model, &s.holdout, c.seq_len, c.batch_size),
            )
        })
        .collect();
    let chosen: Vec<f64> = by_source
        .iter()
        .filter(|(k, _)| c.validation.sources.as_ref().is_none_or(|v| v.contains(k)))
        .map(|(_, l)| *l)
        .collect();
    let mean = chosen.iter().sum::<f64>() / chosen.len().max(1) as f64;
    ValRow {
        step,
        by_source,
        mean,
    }
}

/// Runs `train.cpt`.
pub fn run(c: &CptConfig, ctx: &mut OpContext) -> Result<()> {
    let mut dp = join_ranks(ctx, &c.data_parallel)?;
    let (rank, world) = dp.as_ref().map_or((0, 1), |d| (d.rank(), d.world_size()));
    let dev = rank_device(device::parse_device(&c.device)?, ctx)?;
    let kind = kind_of(c.dtype);
    let model_dir = ctx.input("model")?.path()?.to_path_buf();
    let tok_dir = model_dir::tokenizer_dir(ctx, &model_dir)?.to_path_buf();
    let tok = model_dir::load_tokenizer(
        &tok_dir,
        if tok_dir == model_dir {
            "input `model`"
        } else {
            "input `tokenizer`"
        },
    )?;
    let mut sources = load_sources(c, ctx, &tok)?;
    let names: Vec<String> = sources.iter().map(|s| s.name.clone()).collect();
    let seq = c.seq_len;
    let total = c.total_steps();
    let sched = schedule(&c.optim, total);
    let ckpts = ctx.checkpoints()?;
    ckpts.keep_after_commit(c.checkpoint.keep_after_commit);

    let resumed = resume::<State>(ctx, dev, kind, &c.optim)?;
    let (model, state, mut opt) = match resumed {
        Some(Resumed { model, opt, state }) => {
            if state.sources != names {
                bail!(
                    "the checkpoint in {} trained sources {:?}, not {:?}",
                    ckpts.location(),
                    state.sources,
                    names
                );
            }
            println!(
                "resuming from the checkpoint of step {}/{total} ({} tokens trained)",
                state.step, state.tokens
            );
            (model, state, opt)
        }
        None => {
            let model =
                checkpoint::load(&model_dir, dev, Some(kind)).context("loading input `model`")?;
            let tokens: Vec<u64> = sources.iter().map(|s| s.train_tokens() as u64).collect();
            let weights: Vec<Option<f64>> = c
                .sources
                .resolved()
                .into_iter()
                .map(|(_, s)| s.weight)
                .collect();
            let state = State {
                sources: names.clone(),
                step: 0,
                tokens: 0,
                cursors: vec![Cursor::default(); sources.len()],
                mixer: Mixer::new(&c.mixing, &tokens, &weights, c.seed),
                steps: vec![],
                validation: vec![],
                seconds: 0.0,
            };
            let opt = AdamW::new(model.parameters(), adamw(&c.optim));
            (model, state, opt)
        }
    };
    let mut state = state;
    for (i, s) in sources.iter_mut().enumerate() {
        s.pack(c.repack, state.cursors[i].epoch, c.seed, i);
    }
    model_dir::check_vocabulary(&tok, &model, "input `tokenizer`")?;
    model.set_trainable(true);
    if let Some(dp) = dp.as_mut() {
        dp.agree("resuming", state.step)?;
        dp.share_parameters(model.parameters())?;
    }
    for s in &sources {
        println!(
            "source {}: {} documents, {} training rows of {seq} tokens, {} held out",
            s.name,
            s.documents,
            s.train_rows(seq),
            s.holdout.len() / seq
        );
    }
    let mut orders: Vec<Vec<u32>> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| order(s.train_rows(seq), c.seed, i, state.cursors[i].epoch))
        .collect();
    let started = Instant::now();
    let seconds_before = state.seconds;
    let mut last_saved = state.step;
    let start_step = state.step;
    while state.step < total {
        let step = state.step + 1;
        let t0 = Instant::now();
        let mut drawn = vec![];
        let mut losses: Vec<(usize, f64)> = vec![];
        let micro = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
            opt.zero_grad();
            for _ in 0..c.grad_accum {
                let s = state.mixer.select();
                let rows = sources[s].train_rows(seq);
                // Every rank draws the micro-batch of all ranks and trains on its share.
                let mut batch = Vec::with_capacity(c.batch_size * seq);
                for i in 0..c.batch_size * world {
                    let r = state.cursors[s].next(&mut orders[s], rows, c.seed, s);
                    sources[s].pack(c.repack, state.cursors[s].epoch, c.seed, s);
                    if i / c.batch_size == rank {
                        batch.extend_from_slice(&sources[s].train[r * seq..(r + 1) * seq]);
                    }
                }
                let src = &sources[s];
                let ids = Tensor::from_slice(&batch).view([c.batch_size as i64, seq as i64]);
                let logits = model.forward(
                    &ids,
                    &positions_from_start(c.batch_size as i64, seq as i64, model.device()),
                    &Attention::Causal,
                    None,
                );
                let loss = masked_cross_entropy(&logits, &ids, None);
                // The reward is the loss over every rank's rows (as many on each), so that
                // every rank's bandit draws the same source next.
                let mut l = [loss.double_value(&[])];
                if let Some(dp) = dp.as_mut() {
                    dp.sum(&mut l)?;
                    l[0] /= world as f64;
                }
                let l = l[0];
                if !l.is_finite() {
                    bail!(
                        "the loss of step {step} is {l} (a batch of source `{}`): training stopped; \
                         {}; lower optim.lr or look at the source's data",
                        src.name,
                        if last_saved > 0 {
                            format!(
                                "the checkpoint of step {last_saved} is kept in {}",
                                ckpts.location()
                            )
                        } else {
                            "no checkpoint was saved yet".to_string()
                        }
                    );
                }
                (loss / (c.grad_accum * world) as f64).backward();
                state.mixer.update(s, l);
                drawn.push(s);
                losses.push((s, l));
            }
            Ok(())
        }));
        match micro {
            Ok(r) => r?,
            Err(p) => {
                let batch = format!(
                    "micro-batch of {} rows × {} tokens",
                    c.batch_size, c.seq_len
                );
                return Err(step_failure(p, step, &batch));
            }
        }
        if let Some(dp) = dp.as_mut() {
            dp.all_reduce_gradients(model.parameters())?;
        }
        let grad_norm = if c.optim.max_grad_norm > 0.0 {
            clip_grad_norm(model.parameters(), c.optim.max_grad_norm)
        } else {
            clip_grad_norm(model.parameters(), f64::INFINITY)
        };
        let lr = sched.lr_at(state.step);
        opt.step(lr);
        state.step = step;
        let step_tokens = c.tokens_per_step();
        state.tokens += step_tokens;
        let dt = t0.elapsed().as_secs_f64();
        let mut by: BTreeMap<String, (f64, u32)> = BTreeMap::new();
        for (s, l) in &losses {
            let e = by.entry(names[*s].clone()).or_default();
            e.0 += l;
            e.1 += 1;
        }
        let weights: BTreeMap<String, f64> =
            names.iter().cloned().zip(state.mixer.weights()).collect();
        let loss = losses.iter().map(|(_, l)| l).sum::<f64>() / losses.len() as f64;
        state.steps.push(StepRow {
            step,
            lr,
            loss,
            grad_norm,
            tokens: state.tokens,
            tokens_per_s: step_tokens as f64 / dt.max(1e-9),
            sources: drawn.iter().map(|s| names[*s].clone()).collect(),
            loss_by_source: by
                .into_iter()
                .map(|(k, (s, n))| (k, s / n as f64))
                .collect(),
            weights: weights.clone(),
        });
        let last = step == total;
        if !ctx.is_leader() {
            // Rank 0 validates, reports and saves checkpoints.
            continue;
        }
        if c.validation.every_steps > 0 && step.is_multiple_of(c.validation.every_steps) || last {
            let v = validate(&model, &sources, c, step);
            println!(
                "validation at step {step}: mean {:.4} ({})",
                v.mean,
                v.by_source
                    .iter()
                    .map(|(k, l)| format!("{k} {l:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            state.validation.push(v);
        }
        if step.is_multiple_of(c.log_every) || last || step == start_step + 1 {
            let elapsed = started.elapsed().as_secs_f64();
            let per_step = elapsed / (step - start_step) as f64;
            let rate = (step - start_step) as f64 * step_tokens as f64 / elapsed.max(1e-9);
            let note = progress_line(
                step,
                total,
                loss,
                lr,
                rate,
                per_step * (total - step) as f64,
            );
            println!(
                "{note} | mix {}",
                weights
                    .iter()
                    .map(|(k, w)| format!("{k} {w:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            ctx.progress(&note);
        }
        if c.checkpoint.due(step, last) {
            state.seconds = seconds_before + started.elapsed().as_secs_f64();
            save_checkpoint(ctx, &model, &opt, &state, step, c.checkpoint.keep)?;
            last_saved = step;
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
    write_report(ctx, c, &sources, &state)?;
    ctx.output_meta.insert(
        "model".into(),
        serde_json::json!({"parameters": model.config.parameter_count(), "steps": state.step, "tokens": state.tokens}),
    );
    Ok(())
}

fn write_report(
    ctx: &mut OpContext,
    c: &CptConfig,
    sources: &[Source],
    state: &State,
) -> Result<()> {
    let seq = c.seq_len;
    let report = serde_json::json!({
        "op": "train.cpt",
        "mixing": {"strategy": c.mixing.strategy, "reward": c.mixing.reward},
        "seq_len": seq,
        "processes": c.ranks(),
        "tokens_per_step": c.tokens_per_step(),
        "total_steps": c.total_steps(),
        "sources": sources.iter().map(|s| serde_json::json!({
            "name": s.name,
            "documents": s.documents,
            "train_tokens": s.train.len(),
            "train_rows": s.train_rows(seq),
            "holdout_rows": s.holdout.len() / seq,
        })).collect::<Vec<_>>(),
        "steps": state.steps,
        "validation": state.validation,
        "final": {
            "steps": state.step,
            "tokens": state.tokens,
            "seconds": state.seconds,
            "validation": state.validation.last(),
        },
    });
    let dir = ctx.output_dir("report")?.to_path_buf();
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    crate::plots::write(&dir, &state_series(state))?;
    Ok(())
}

/// The series the plots draw.
fn state_series(state: &State) -> crate::plots::Series {
    let mut s = crate::plots::Series::default();
    for name in &state.sources {
        let mut train = vec![];
        let mut weight = vec![];
        for r in &state.steps {
            if let Some(l) = r.loss_by_source.get(name) {
                train.push((r.step as f64, *l));
            }
            weight.push((r.step as f64, r.weights.get(name).copied().unwrap_or(0.0)));
        }
        let val = state
            .validation
            .iter()
            .filter_map(|v| v.by_source.get(name).map(|l| (v.step as f64, *l)))
            .collect();
        s.train_loss.push((name.clone(), train));
        s.val_loss.push((name.clone(), val));
        s.weights.push((name.clone(), weight));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        // Documents 1, 2 2, 3 3 3 and a cut one (4 4), with 0 as the end-of-text token.
        Source {
            name: "s".into(),
            documents: 4,
            pieces: vec![vec![1, 0], vec![2, 2, 0], vec![3, 3, 3, 0], vec![4, 4]],
            train: vec![],
            packed: 0,
            holdout: vec![],
        }
    }

    fn sorted(train: &[i64]) -> Vec<i64> {
        let mut v = train.to_vec();
        v.sort();
        v
    }

    #[test]
    fn every_epoch_joins_the_same_documents_in_its_own_order() {
        let mut s = source();
        s.pack(false, 0, 7, 0);
        assert_eq!(s.train, [1, 0, 2, 2, 0, 3, 3, 3, 0, 4, 4]);
        s.pack(false, 3, 7, 0);
        assert_eq!(s.train, [1, 0, 2, 2, 0, 3, 3, 3, 0, 4, 4], "without repack");
        let mut s = source();
        let mut seen = std::collections::BTreeSet::new();
        for epoch in 0..8 {
            s.pack(true, epoch, 7, 0);
            assert_eq!(s.train.len(), 11);
            assert_eq!(s.train_rows(4), 2);
            assert_eq!(sorted(&s.train), sorted(&source().pieces.concat()));
            seen.insert(s.train.clone());
            let again = s.train.clone();
            s.pack(true, epoch, 7, 0);
            assert_eq!(
                s.train, again,
                "the same epoch is packed once, the same way"
            );
        }
        assert!(seen.len() > 1, "every epoch packed alike");
    }
}
