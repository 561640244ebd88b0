//! `eval.mcq` on the kernels: each model answers every question in batches (greedy unless a
//! temperature is set), then [`zest_operators::eval::mcq`] scores the answers and writes the
//! report.

use crate::init::kind_of;
use crate::model_dir;
use anyhow::{Context, Result};
use serde_json::json;
use std::time::Instant;
use zest_engine::operator::OpContext;
use zest_kernels_torch::{checkpoint, device, generate};
use zest_operators::eval::mcq::{self, McqConfig};

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
