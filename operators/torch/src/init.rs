//! `model.init`: seeded random weights, initialised on the CPU so that a seed gives the same
//! model on every device.

use crate::model_dir;
use anyhow::Result;
use zest_engine::operator::OpContext;
use zest_kernels::model_config::ModelConfig;
use zest_kernels_torch::tch::{self, Device, Kind};
use zest_kernels_torch::Transformer;
use zest_operators::train::common::Precision;
use zest_operators::train::init::{InitConfig, SpecialIds};

/// The element type of a precision.
pub fn kind_of(p: Precision) -> Kind {
    match p {
        Precision::Float32 => Kind::Float,
        Precision::Bfloat16 => Kind::BFloat16,
    }
}

/// Runs `model.init`.
pub fn run(config: &InitConfig, ctx: &mut OpContext) -> Result<()> {
    let tok_dir = match ctx.inputs("tokenizer").first() {
        Some(t) => Some(t.path()?.to_path_buf()),
        None => None,
    };
    let tok = tok_dir
        .as_deref()
        .map(|d| model_dir::load_tokenizer(d, "input `tokenizer`"))
        .transpose()?;
    let special = match &tok {
        Some(t) => SpecialIds {
            bos: t.special_id("bos_token"),
            eos: model_dir::eos_ids(t),
            pad: t.special_id("pad_token"),
        },
        None => SpecialIds::default(),
    };
    let hf = config
        .hf_config(tok.as_ref().map(|t| t.vocab_size() as i64), &special)
        .map_err(anyhow::Error::msg)?;
    let mc = ModelConfig::from_json(&hf).map_err(anyhow::Error::msg)?;
    tch::manual_seed(config.seed as i64);
    let model = Transformer::new(mc, Device::Cpu, Kind::Float);
    if let Some(pad) = model.config.pad_token_id {
        // transformers zeroes the padding row of a new embedding.
        let _g = tch::no_grad_guard();
        if let Some((_, emb)) = model
            .parameters()
            .iter()
            .find(|(n, _)| n == "model.embed_tokens.weight")
        {
            let _ = emb.get(pad).zero_();
        }
    }
    let dir = ctx.output_dir("model")?.to_path_buf();
    let empty = tempfile_dir(ctx)?;
    model_dir::save(
        &model,
        kind_of(config.dtype),
        &dir,
        tok_dir.as_deref().unwrap_or(&empty),
    )?;
    let n = model.config.parameter_count();
    println!(
        "initialised a {} model of {:.2}M parameters (seed {})",
        hf["model_type"].as_str().unwrap_or("?"),
        n as f64 / 1e6,
        config.seed
    );
    ctx.output_meta.insert(
        "model".into(),
        serde_json::json!({"parameters": n, "model_type": hf["model_type"], "vocab_size": hf["vocab_size"]}),
    );
    Ok(())
}

fn tempfile_dir(ctx: &OpContext) -> Result<std::path::PathBuf> {
    Ok(ctx.tmp_dir()?.to_path_buf())
}
