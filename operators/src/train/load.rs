//! `model.load`: a Hugging Face model directory, local or `s3://bucket/prefix/`, copied into
//! the store and checked without loading it: a supported `config.json`, every weight the
//! architecture needs with the right shape (from the safetensors headers), and a tokenizer
//! whose vocabulary fits the embedding.

use crate::data::sources;
use anyhow::{bail, Context, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::Path;
use zest_engine::operator::{ExternalFile, OpContext, Operator, PortSpec, PortType, Ports};
use zest_kernels::model_config::{parameter_shapes, ModelConfig};
use zest_kernels::safetensors;
use zest_kernels::text_tokenizer::TextTokenizer;

/// `model.load`'s config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// The model directory: a local path or `s3://bucket/prefix` (its files, not deeper).
    pub path: String,
    /// Refuse a directory without `tokenizer.json`.
    #[serde(default = "yes")]
    pub require_tokenizer: bool,
}

fn yes() -> bool {
    true
}

fn pattern(path: &str) -> String {
    format!("{}/*", path.trim_end_matches('/'))
}

/// Checks a model directory; returns its config.
pub fn check_dir(dir: &Path, require_tokenizer: bool) -> Result<ModelConfig> {
    let config = ModelConfig::from_dir(dir)?;
    let files = safetensors::checkpoint_files(dir)?;
    if files.is_empty() {
        bail!("no weights: no model.safetensors, model.safetensors.index.json or *.safetensors");
    }
    let mut found = std::collections::BTreeMap::new();
    for f in &files {
        for (name, info) in safetensors::read_header(f)?.tensors {
            let shape: Vec<i64> = info.shape.iter().map(|d| *d as i64).collect();
            found.insert(name, shape);
        }
    }
    for (name, shape) in parameter_shapes(&config) {
        match found.get(&name) {
            None => bail!("the weights lack `{name}`, which config.json's architecture needs"),
            Some(s) if *s != shape => {
                bail!("`{name}` has shape {s:?}; config.json's architecture needs {shape:?}")
            }
            _ => {}
        }
    }
    if dir.join("tokenizer.json").exists() {
        let tok = TextTokenizer::from_dir(dir)?;
        if tok.vocab_size() as i64 > config.vocab_size {
            bail!(
                "the tokenizer has {} tokens but the embedding has {} rows (vocab_size)",
                tok.vocab_size(),
                config.vocab_size
            );
        }
    } else if require_tokenizer {
        bail!("no tokenizer.json (set require_tokenizer: false to load weights alone)");
    }
    Ok(config)
}

/// `model.load`.
pub struct LoadModel;

impl Operator for LoadModel {
    type Config = LoadConfig;
    const NAME: &'static str = "model.load";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "A Hugging Face model directory (local or s3://), copied into the store and checked";
    const READS_FILES: bool = true;

    fn ports(_config: Option<&LoadConfig>) -> Ports {
        Ports {
            inputs: vec![],
            outputs: vec![PortSpec::new(
                "model",
                PortType::Model,
                "the model (Hugging Face layout)",
            )],
            other_inputs: None,
        }
    }

    fn check(c: &LoadConfig) -> Result<(), String> {
        if c.path.trim().is_empty() {
            return Err("path: name the model directory".into());
        }
        if sources::has_glob(&c.path) {
            return Err("path: a directory, not a glob".into());
        }
        Ok(())
    }

    fn external_files(c: &LoadConfig, rt: &tokio::runtime::Handle) -> Result<Vec<ExternalFile>> {
        if !c.path.starts_with("s3://") && !Path::new(&c.path).is_dir() {
            bail!("`{}` is not a directory", c.path);
        }
        rt.block_on(sources::fingerprint(&[pattern(&c.path)]))
    }

    fn run(c: &LoadConfig, ctx: &mut OpContext) -> Result<()> {
        let out = ctx.output_dir("model")?.to_path_buf();
        let found = ctx.block_on(sources::expand(&[pattern(&c.path)]))?;
        let mut bytes = 0u64;
        for s in &found {
            let name = s
                .location()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let dst = out.join(&name);
            if s.object_store().is_none() {
                bytes += std::fs::copy(s.location(), &dst)
                    .with_context(|| format!("copying {}", s.location()))?;
            } else {
                let data = ctx.block_on(s.read())?;
                bytes += data.len() as u64;
                std::fs::write(&dst, data)?;
            }
        }
        let config = check_dir(&out, c.require_tokenizer)
            .with_context(|| format!("`{}` is not a usable model directory", c.path))?;
        println!(
            "loaded {} files ({:.1} MB) from {}: {:?}, {:.2}M parameters",
            found.len(),
            bytes as f64 / 1e6,
            c.path,
            config.family,
            config.parameter_count() as f64 / 1e6
        );
        ctx.output_meta.insert(
            "model".into(),
            serde_json::json!({"parameters": config.parameter_count(), "files": found.len()}),
        );
        Ok(())
    }
}
