//! Model directories as the training operators write them: weights and `config.json` in
//! Hugging Face layout, the tokenizer's files beside them, and `generation_config.json`, so
//! that the directory loads on its own in transformers.

use anyhow::{Context, Result};
use std::path::Path;
use zest_kernels::text_tokenizer::TextTokenizer;
use zest_kernels_torch::checkpoint::{self, SaveOptions};
use zest_kernels_torch::tch::Kind;
use zest_kernels_torch::Transformer;
use zest_operators::train::tokenizer::END_OF_TURN_TOKENS;

/// The tokenizer files copied into a model directory (those that exist).
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

/// The tokenizer of a node: the `tokenizer` input when connected, else the model's own files.
pub fn tokenizer_dir<'a>(
    ctx: &'a zest_engine::operator::OpContext,
    model_dir: &'a Path,
) -> Result<&'a Path> {
    match ctx.inputs("tokenizer").first() {
        Some(t) => t.path(),
        None => Ok(model_dir),
    }
}

/// Loads a tokenizer, saying which input it came from when that fails.
pub fn load_tokenizer(dir: &Path, what: &str) -> Result<TextTokenizer> {
    TextTokenizer::from_dir(dir).with_context(|| format!("cannot load the tokenizer of {what}"))
}

/// End-of-sequence ids for `config.json`: the tokenizer's `eos_token` and the end-of-turn
/// tokens of the chat formats it has.
pub fn eos_ids(tok: &TextTokenizer) -> Vec<i64> {
    let mut ids: Vec<i64> = tok.special_id("eos_token").into_iter().collect();
    for t in END_OF_TURN_TOKENS {
        if let Some(id) = tok.token_id(t) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// Checks that every token id of `tok` has a row in the model's embedding.
pub fn check_vocabulary(tok: &TextTokenizer, model: &Transformer, what: &str) -> Result<()> {
    let (t, m) = (tok.vocab_size() as i64, model.config.vocab_size);
    if t > m {
        anyhow::bail!(
            "the tokenizer has {t} tokens but the model's embedding has {m} rows (vocab_size in \
             its config.json): token ids {m}..{t} would be out of range ({what}); initialise the \
             model from this tokenizer (`model.init` with `tokenizer:` connected) or use the \
             model's own tokenizer"
        );
    }
    Ok(())
}

/// Saves `model` (weights in `kind`) into `dir` with the tokenizer files of `tok_dir` and a
/// `generation_config.json`.
pub fn save(model: &Transformer, kind: Kind, dir: &Path, tok_dir: &Path) -> Result<()> {
    checkpoint::save(
        model,
        dir,
        &SaveOptions {
            kind,
            ..SaveOptions::default()
        },
    )?;
    for f in TOKENIZER_FILES {
        let src = tok_dir.join(f);
        if src.exists() {
            std::fs::copy(&src, dir.join(f))
                .with_context(|| format!("copying {}", src.display()))?;
        }
    }
    let c = &model.config;
    let mut g = serde_json::json!({"_from_model_config": true});
    if let Some(b) = c.bos_token_id {
        g["bos_token_id"] = b.into();
    }
    match c.eos_token_ids.as_slice() {
        [] => {}
        [one] => g["eos_token_id"] = (*one).into(),
        many => g["eos_token_id"] = serde_json::json!(many),
    }
    if let Some(p) = c.pad_token_id {
        g["pad_token_id"] = p.into();
    }
    std::fs::write(
        dir.join("generation_config.json"),
        serde_json::to_string_pretty(&g)?,
    )?;
    Ok(())
}
