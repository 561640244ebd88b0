//! What a model directory holds, read from its files without loading weights: architecture
//! (`config.json`), parameter count and dtypes (safetensors headers), tokenizer.

use crate::safetensors::{self, Error};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A model directory, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// `architectures[0]` of `config.json`, e.g. `LlamaForCausalLM`.
    pub architecture: Option<String>,
    /// `model_type`, e.g. `llama`, `qwen2`.
    pub model_type: Option<String>,
    /// Layers, hidden size, attention heads and key/value heads, vocabulary.
    pub layers: Option<u64>,
    /// Hidden size.
    pub hidden_size: Option<u64>,
    /// Attention heads.
    pub attention_heads: Option<u64>,
    /// Key/value heads (grouped-query attention when fewer than the attention heads).
    pub kv_heads: Option<u64>,
    /// Vocabulary size.
    pub vocab_size: Option<u64>,
    /// `rope_parameters.rope_type` (or `rope_scaling.rope_type`/`type`), e.g. `llama3`;
    /// `default` for plain RoPE.
    pub rope_scaling: Option<String>,
    /// Whether input and output embeddings are tied.
    pub tie_word_embeddings: Option<bool>,
    /// Parameters in the checkpoint (elements over all tensors).
    pub parameters: u64,
    /// Parameters by stored element type.
    pub dtypes: BTreeMap<String, u64>,
    /// Checkpoint files.
    pub files: Vec<String>,
    /// Whether `tokenizer.json` is present.
    pub tokenizer: bool,
    /// Whether `tokenizer_config.json` has a chat template.
    pub chat_template: bool,
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>, Error> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| Error::Format {
                path: path.to_path_buf(),
                why: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Summarises the model in `dir`.
pub fn model_info(dir: &Path) -> Result<ModelInfo, Error> {
    let config = read_json(&dir.join("config.json"))?.unwrap_or_default();
    let int = |k: &str| config[k].as_u64();
    let files = safetensors::checkpoint_files(dir)?;
    let mut parameters = 0u64;
    let mut dtypes = BTreeMap::new();
    for f in &files {
        let h = safetensors::read_header(f)?;
        for t in h.tensors.values() {
            let n = t.numel() as u64;
            parameters += n;
            *dtypes.entry(format!("{:?}", t.dtype)).or_insert(0) += n;
        }
    }
    let tok_config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or_default();
    // transformers 5 writes `rope_parameters`; earlier versions `rope_scaling`.
    let rope = if config["rope_parameters"].is_object() {
        &config["rope_parameters"]
    } else {
        &config["rope_scaling"]
    };
    Ok(ModelInfo {
        architecture: config["architectures"][0].as_str().map(str::to_string),
        model_type: config["model_type"].as_str().map(str::to_string),
        layers: int("num_hidden_layers"),
        hidden_size: int("hidden_size"),
        attention_heads: int("num_attention_heads"),
        kv_heads: int("num_key_value_heads").or(int("num_attention_heads")),
        vocab_size: int("vocab_size"),
        rope_scaling: rope["rope_type"]
            .as_str()
            .or(rope["type"].as_str())
            .map(str::to_string),
        tie_word_embeddings: config["tie_word_embeddings"].as_bool(),
        parameters,
        dtypes,
        files: files
            .iter()
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
        tokenizer: dir.join("tokenizer.json").exists(),
        chat_template: !tok_config["chat_template"].is_null()
            || dir.join("chat_template.jinja").exists(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_transformers_5_rope_parameters_and_a_jinja_chat_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
                "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("chat_template.jinja"), "{{ messages }}").unwrap();
        let info = model_info(dir.path()).unwrap();
        assert_eq!(info.rope_scaling.as_deref(), Some("llama3"));
        assert_eq!(info.kv_heads, Some(4));
        assert!(info.chat_template && !info.tokenizer);
        assert_eq!(info.parameters, 0);
    }
}
