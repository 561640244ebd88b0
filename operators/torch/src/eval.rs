//! `eval.mcq` on the kernels: each model answers every question in batches (greedy unless a
//! temperature is set), or under `answer_format: loglik` scores every option's likelihood,
//! then [`zest_operators::eval::mcq`] scores the answers and writes the report.

use crate::init::kind_of;
use crate::model_dir;
use anyhow::{Context, Result};
use serde_json::json;
use std::time::Instant;
use zest_engine::operator::OpContext;
use zest_kernels::text_tokenizer::TextTokenizer;
use zest_kernels_torch::tch::{Kind, Tensor};
use zest_kernels_torch::{checkpoint, device, generate, loss, mask, Transformer};
use zest_operators::eval::items::Item;
use zest_operators::eval::mcq::{self, AnswerFormat, McqConfig};

/// Runs `eval.mcq`.
pub fn run(c: &McqConfig, ctx: &mut OpContext) -> Result<()> {
    let items = mcq::load_items(c, ctx)?;
    let dev = device::parse_device(&c.device)?;
    let kind = kind_of(c.dtype);
    let models: Vec<std::path::PathBuf> = ctx
        .inputs("models")
        .iter()
        .map(|a| a.path().map(std::path::Path::to_path_buf))
        .collect::<Result<_>>()?;
    if models.is_empty() {
        anyhow::bail!("input `models` has no model");
    }
    println!(
        "{} questions, {} model(s), answers as `{}`",
        items.len(),
        models.len(),
        serde_json::to_value(c.answer_format)?
            .as_str()
            .unwrap_or_default()
    );
    let prompts: Vec<String> = items
        .iter()
        .map(|it| mcq::prompt(it, c.answer_format))
        .collect();
    let mut all = vec![];
    for (m, dir) in models.iter().enumerate() {
        let name = c.model_name(m);
        let started = Instant::now();
        let tok = model_dir::load_tokenizer(dir, &format!("model `{name}`"))?;
        let model = checkpoint::load(dir, dev, Some(kind))
            .with_context(|| format!("cannot load model `{name}`"))?;
        model_dir::check_vocabulary(&tok, &model, &format!("model `{name}`"))?;
        let stop_token_ids = generate::eos_ids(dir, &model.config, &tok)
            .with_context(|| format!("model `{name}`"))?;
        let pad = model
            .config
            .pad_token_id
            .or_else(|| tok.special_id("pad_token"))
            .unwrap_or(0);
        if c.answer_format == AnswerFormat::Loglik {
            let logps = option_logps(c, ctx, &model, &tok, pad, &items, &name)?;
            let preds = mcq::score_likelihoods(&name, &items, &logps);
            let right = preds.iter().filter(|p| p.correct).count();
            println!(
                "model `{name}`: {right}/{} right by option likelihood in {:.1}s",
                items.len(),
                started.elapsed().as_secs_f64()
            );
            all.push(preds);
            continue;
        }
        let mut encoded = Vec::with_capacity(prompts.len());
        for p in &prompts {
            let mut ids = if tok.has_chat_template() {
                tok.encode_chat(&[json!({"role": "user", "content": p})], true)?
            } else {
                tok.encode(&format!("{p}\nAnswer:"), true)?
            };
            if ids.len() > c.max_prompt_tokens {
                ids.drain(..ids.len() - c.max_prompt_tokens);
            }
            encoded.push(ids);
        }
        let params = generate::SamplingParams {
            max_new_tokens: c.new_tokens(),
            temperature: c.temperature,
            top_k: 0,
            top_p: c.top_p,
            seed: c.seed,
            n: 1,
            stop_token_ids,
            stop_strings: vec![],
        };
        let mut responses = Vec::with_capacity(items.len());
        let mut generated = 0usize;
        for (b, batch) in encoded.chunks(c.batch_size).enumerate() {
            let samples = generate::generate(&model, batch, &params, pad, None)
                .with_context(|| format!("model `{name}`, questions of batch {}", b + 1))?;
            for s in samples {
                let s = &s[0];
                generated += s.token_ids.len();
                responses.push(tok.decode(&s.token_ids, true)?);
            }
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let note = format!(
                "model {}/{} `{name}`: {}/{} questions | {:.0} tok/s",
                m + 1,
                models.len(),
                responses.len(),
                items.len(),
                generated as f64 / secs
            );
            println!("{note}");
            ctx.progress(&note);
        }
        let preds = mcq::score(c, &name, &items, &responses);
        let right = preds.iter().filter(|p| p.correct).count();
        println!(
            "model `{name}`: {right}/{} right in {:.1}s",
            items.len(),
            started.elapsed().as_secs_f64()
        );
        all.push(preds);
    }
    let summaries = mcq::write_outputs(c, ctx, &items, &all)?;
    println!("{}", mcq::markdown(&summaries));
    Ok(())
}

/// The summed log-probability of every option of every item after its question
/// ([`mcq::likelihood_context`]), `batch_size` (question, option) rows per forward pass.
fn option_logps(
    c: &McqConfig,
    ctx: &OpContext,
    model: &Transformer,
    tok: &TextTokenizer,
    pad: i64,
    items: &[Item],
    name: &str,
) -> Result<Vec<Vec<f64>>> {
    let _g = zest_kernels_torch::tch::no_grad_guard();
    // (item, context ids, continuation ids), one per option.
    let mut rows: Vec<(usize, Vec<i64>, Vec<i64>)> = vec![];
    for (i, it) in items.iter().enumerate() {
        let context = tok.encode(&mcq::likelihood_context(it), true)?;
        for o in &it.options {
            let cont = tok.encode(&mcq::likelihood_continuation(it, o), false)?;
            if cont.is_empty() {
                anyhow::bail!(
                    "question `{}` ({}): an option has no tokens",
                    it.id,
                    it.exam
                );
            }
            // A long question keeps its end, as prompts do; the option is kept whole.
            let room = c.max_prompt_tokens.saturating_sub(cont.len()).max(1);
            let ctx_ids = context[context.len().saturating_sub(room)..].to_vec();
            rows.push((i, ctx_ids, cont));
        }
    }
    let mut out: Vec<Vec<f64>> = items
        .iter()
        .map(|it| Vec::with_capacity(it.options.len()))
        .collect();
    let started = Instant::now();
    for (b, batch) in rows.chunks(c.batch_size).enumerate() {
        let width = batch
            .iter()
            .map(|(_, x, y)| x.len() + y.len())
            .max()
            .unwrap_or(1);
        let (mut ids, mut valid, mut labels) = (vec![], vec![], vec![]);
        for (_, x, y) in batch {
            let n = x.len() + y.len();
            ids.extend(
                x.iter()
                    .chain(y)
                    .copied()
                    .chain(std::iter::repeat_n(pad, width - n)),
            );
            valid.extend(std::iter::repeat_n(1i64, n).chain(std::iter::repeat_n(0, width - n)));
            labels.extend(
                std::iter::repeat_n(loss::IGNORE, x.len())
                    .chain(y.iter().copied())
                    .chain(std::iter::repeat_n(loss::IGNORE, width - n)),
            );
        }
        let shape = [batch.len() as i64, width as i64];
        let ids = Tensor::from_slice(&ids).view(shape);
        let valid = Tensor::from_slice(&valid).view(shape);
        let labels = Tensor::from_slice(&labels).view(shape);
        let positions = mask::positions_from_start(shape[0], shape[1], model.device());
        let logits = model.forward(&ids, &positions, &mask::Attention::Padded(&valid), None);
        let sums = loss::sequence_logps(&logits, &labels, false).to_kind(Kind::Double);
        let sums = Vec::<f64>::try_from(&sums.to_device(zest_kernels_torch::tch::Device::Cpu))
            .with_context(|| format!("model `{name}`, options of batch {}", b + 1))?;
        for ((i, _, _), v) in batch.iter().zip(sums) {
            out[*i].push(v);
        }
        let note = format!(
            "model `{name}`: {}/{} options scored | {:.0} options/s",
            (b * c.batch_size + batch.len()).min(rows.len()),
            rows.len(),
            (b * c.batch_size + batch.len()) as f64 / started.elapsed().as_secs_f64().max(1e-9)
        );
        ctx.progress(&note);
    }
    Ok(out)
}
