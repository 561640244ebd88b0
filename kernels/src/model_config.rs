//! A decoder-only transformer's hyper-parameters, read from a Hugging Face `config.json`
//! (Llama 2/3/3.1 and Qwen2/2.5) or built for a model trained from scratch, and written back
//! in the same layout so transformers and vLLM load what zest saves.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// The architectures zest's transformer covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Llama 2, 3 and 3.1 (`LlamaForCausalLM`).
    Llama,
    /// Qwen2 and Qwen2.5 (`Qwen2ForCausalLM`): q/k/v projections carry a bias.
    Qwen2,
}

/// How rotary frequencies are scaled for long contexts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rope_type", rename_all = "lowercase")]
pub enum RopeScaling {
    /// Plain RoPE.
    Default,
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        /// Scale for low frequencies.
        factor: f64,
        /// Wavelength bound (as a fraction of the original context) above which
        /// frequencies are divided by `factor`.
        low_freq_factor: f64,
        /// Wavelength bound below which frequencies are kept.
        high_freq_factor: f64,
        /// Context length the model was pre-trained with.
        original_max_position_embeddings: f64,
    },
}

/// Hyper-parameters of a decoder-only transformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Which architecture.
    pub family: Family,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: i64,
    /// Model width.
    pub hidden_size: i64,
    /// Width of the SwiGLU feed-forward.
    pub intermediate_size: i64,
    /// Decoder layers.
    pub num_hidden_layers: i64,
    /// Query heads.
    pub num_attention_heads: i64,
    /// Key/value heads (fewer than the query heads: grouped-query attention).
    pub num_key_value_heads: i64,
    /// Width of one head.
    pub head_dim: i64,
    /// Longest context.
    pub max_position_embeddings: i64,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE scaling.
    pub rope_scaling: RopeScaling,
    /// Whether q/k/v/o projections carry biases (Llama's `attention_bias`).
    pub attention_bias: bool,
    /// Whether the feed-forward projections carry biases (Llama's `mlp_bias`).
    pub mlp_bias: bool,
    /// Whether the output projection shares the input embedding.
    pub tie_word_embeddings: bool,
    /// Standard deviation of the initial weights for models trained from scratch.
    pub initializer_range: f64,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<i64>,
    /// End-of-sequence tokens (Llama 3.1 has several).
    pub eos_token_ids: Vec<i64>,
    /// Padding token, where the checkpoint names one.
    pub pad_token_id: Option<i64>,
    /// The element type the checkpoint was saved in (`float32`, `bfloat16`, `float16`).
    pub dtype: String,
}

/// Why a `config.json` was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub why: String,
}

fn int_or_list(v: &Value) -> Vec<i64> {
    match v {
        Value::Number(n) => n.as_i64().into_iter().collect(),
        Value::Array(a) => a.iter().filter_map(Value::as_i64).collect(),
        _ => Vec::new(),
    }
}

impl ModelConfig {
    /// Reads `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<ModelConfig, ConfigError> {
        let path = dir.join("config.json");
        let err = |why: String| ConfigError {
            path: path.display().to_string(),
            why,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        ModelConfig::from_json(&v).map_err(err)
    }

    /// Parses a `config.json` document.
    pub fn from_json(v: &Value) -> Result<ModelConfig, String> {
        let family = match v["model_type"].as_str() {
            Some("llama") => Family::Llama,
            Some("qwen2") => Family::Qwen2,
            Some(other) => {
                return Err(format!(
                    "model_type `{other}` is not supported (supported: llama, qwen2)"
                ))
            }
            None => return Err("no `model_type`".into()),
        };
        let int = |k: &str| -> Result<i64, String> {
            v[k].as_i64()
                .ok_or_else(|| format!("`{k}` is missing or not an integer"))
        };
        let hidden_size = int("hidden_size")?;
        let num_attention_heads = int("num_attention_heads")?;
        let num_key_value_heads = v["num_key_value_heads"]
            .as_i64()
            .unwrap_or(num_attention_heads);
        let head_dim = v["head_dim"]
            .as_i64()
            .unwrap_or(hidden_size / num_attention_heads.max(1));
        if num_attention_heads <= 0
            || num_key_value_heads <= 0
            || num_attention_heads % num_key_value_heads != 0
        {
            return Err(format!(
                "num_attention_heads ({num_attention_heads}) must be a positive multiple of \
                 num_key_value_heads ({num_key_value_heads})"
            ));
        }
        if head_dim <= 0 || head_dim % 2 != 0 {
            return Err(format!("head_dim ({head_dim}) must be positive and even"));
        }
        if v["use_sliding_window"].as_bool() == Some(true) {
            return Err(
                "sliding-window attention (use_sliding_window: true) is not supported".into(),
            );
        }
        // transformers 5 keeps RoPE settings under `rope_parameters`; earlier versions under
        // `rope_theta` and `rope_scaling`.
        let params = &v["rope_parameters"];
        let scaling = if params.is_object() {
            params
        } else {
            &v["rope_scaling"]
        };
        let rope_theta = params["rope_theta"]
            .as_f64()
            .or(v["rope_theta"].as_f64())
            .unwrap_or(10_000.0);
        let kind = scaling["rope_type"]
            .as_str()
            .or(scaling["type"].as_str())
            .unwrap_or("default");
        let rope_scaling = match kind {
            "default" => RopeScaling::Default,
            "llama3" => {
                let f = |k: &str| -> Result<f64, String> {
                    scaling[k]
                        .as_f64()
                        .ok_or_else(|| format!("rope scaling llama3 needs `{k}`"))
                };
                RopeScaling::Llama3 {
                    factor: f("factor")?,
                    low_freq_factor: f("low_freq_factor")?,
                    high_freq_factor: f("high_freq_factor")?,
                    original_max_position_embeddings: f("original_max_position_embeddings")?,
                }
            }
            other => {
                return Err(format!(
                    "rope scaling `{other}` is not supported (supported: default, llama3)"
                ))
            }
        };
        let qwen = family == Family::Qwen2;
        Ok(ModelConfig {
            family,
            vocab_size: int("vocab_size")?,
            hidden_size,
            intermediate_size: int("intermediate_size")?,
            num_hidden_layers: int("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings: v["max_position_embeddings"].as_i64().unwrap_or(4096),
            rms_norm_eps: v["rms_norm_eps"].as_f64().unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            attention_bias: v["attention_bias"].as_bool().unwrap_or(false),
            mlp_bias: v["mlp_bias"].as_bool().unwrap_or(false),
            tie_word_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(qwen),
            initializer_range: v["initializer_range"].as_f64().unwrap_or(0.02),
            bos_token_id: v["bos_token_id"].as_i64(),
            eos_token_ids: int_or_list(&v["eos_token_id"]),
            pad_token_id: v["pad_token_id"].as_i64(),
            dtype: v["dtype"]
                .as_str()
                .or(v["torch_dtype"].as_str())
                .unwrap_or("float32")
                .to_string(),
        })
    }

    /// Whether q/k/v projections carry biases.
    pub fn qkv_bias(&self) -> bool {
        self.family == Family::Qwen2 || self.attention_bias
    }

    /// Whether the output projection carries a bias.
    pub fn o_bias(&self) -> bool {
        self.family == Family::Llama && self.attention_bias
    }

    /// The `config.json` document transformers expects for this model.
    pub fn to_json(&self) -> Value {
        let (arch, model_type) = match self.family {
            Family::Llama => ("LlamaForCausalLM", "llama"),
            Family::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
        };
        let rope_parameters = match &self.rope_scaling {
            RopeScaling::Default => json!({"rope_type": "default", "rope_theta": self.rope_theta}),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => json!({
                "rope_type": "llama3",
                "rope_theta": self.rope_theta,
                "factor": factor,
                "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": original_max_position_embeddings,
            }),
        };
        let eos = match self.eos_token_ids.as_slice() {
            [] => Value::Null,
            [one] => json!(one),
            many => json!(many),
        };
        let mut v = json!({
            "architectures": [arch],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "hidden_act": "silu",
            "rope_parameters": rope_parameters.clone(),
            // Older transformers and vLLM read these two keys.
            "rope_theta": self.rope_theta,
            "rope_scaling": if self.rope_scaling == RopeScaling::Default { Value::Null } else { rope_parameters },
            "tie_word_embeddings": self.tie_word_embeddings,
            "initializer_range": self.initializer_range,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": eos,
            "pad_token_id": self.pad_token_id,
            "dtype": self.dtype,
            "torch_dtype": self.dtype,
            "use_cache": true,
        });
        match self.family {
            Family::Llama => {
                v["attention_bias"] = json!(self.attention_bias);
                v["mlp_bias"] = json!(self.mlp_bias);
            }
            Family::Qwen2 => {
                v["use_sliding_window"] = json!(false);
                v["sliding_window"] = Value::Null;
                v["max_window_layers"] = json!(self.num_hidden_layers);
            }
        }
        v
    }

    /// Parameters in the model this configuration describes.
    pub fn parameter_count(&self) -> i64 {
        let (h, i, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        let mut attn = h * q + 2 * h * kv + q * h;
        if self.qkv_bias() {
            attn += q + 2 * kv;
        }
        if self.o_bias() {
            attn += h;
        }
        let mut mlp = 3 * h * i;
        if self.mlp_bias {
            mlp += 2 * i + h;
        }
        let layer = attn + mlp + 2 * h;
        let head = if self.tie_word_embeddings { 0 } else { v * h };
        v * h + self.num_hidden_layers * layer + h + head
    }
}

/// Every parameter of the model `config` describes, with its shape, by Hugging Face name.
pub fn parameter_shapes(config: &ModelConfig) -> Vec<(String, Vec<i64>)> {
    let c = config;
    let (h, hd, inter) = (c.hidden_size, c.head_dim, c.intermediate_size);
    let q_out = c.num_attention_heads * hd;
    let kv_out = c.num_key_value_heads * hd;
    let mut out = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![c.vocab_size, h],
    )];
    for i in 0..c.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let mut proj = |name: &str, o: i64, inp: i64, bias: bool| {
            out.push((format!("{p}.{name}.weight"), vec![o, inp]));
            if bias {
                out.push((format!("{p}.{name}.bias"), vec![o]));
            }
        };
        proj("self_attn.q_proj", q_out, h, c.qkv_bias());
        proj("self_attn.k_proj", kv_out, h, c.qkv_bias());
        proj("self_attn.v_proj", kv_out, h, c.qkv_bias());
        proj("self_attn.o_proj", h, q_out, c.o_bias());
        proj("mlp.gate_proj", inter, h, c.mlp_bias);
        proj("mlp.up_proj", inter, h, c.mlp_bias);
        proj("mlp.down_proj", h, inter, c.mlp_bias);
        out.push((format!("{p}.input_layernorm.weight"), vec![h]));
        out.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
    }
    out.push(("model.norm.weight".to_string(), vec![h]));
    if !c.tie_word_embeddings {
        out.push(("lm_head.weight".to_string(), vec![c.vocab_size, h]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama31() -> Value {
        json!({
            "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096,
            "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
            "max_position_embeddings": 131072, "tie_word_embeddings": false,
            "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "torch_dtype": "bfloat16"
        })
    }

    #[test]
    fn reads_llama_3_1_and_counts_8b_parameters() {
        let c = ModelConfig::from_json(&llama31()).unwrap();
        assert_eq!(c.head_dim, 128);
        assert_eq!(c.eos_token_ids, vec![128001, 128008, 128009]);
        assert!(matches!(c.rope_scaling, RopeScaling::Llama3 { factor, .. } if factor == 8.0));
        assert_eq!(c.parameter_count(), 8_030_261_248);
        assert_eq!(c.dtype, "bfloat16");
    }

    #[test]
    fn round_trips_through_json() {
        let c = ModelConfig::from_json(&llama31()).unwrap();
        assert_eq!(ModelConfig::from_json(&c.to_json()).unwrap(), c);
        let mut q = llama31();
        q["model_type"] = json!("qwen2");
        q["tie_word_embeddings"] = json!(true);
        q["rope_scaling"] = Value::Null;
        let c = ModelConfig::from_json(&q).unwrap();
        assert!(c.qkv_bias() && !c.o_bias());
        assert_eq!(ModelConfig::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let mut v = llama31();
        v["model_type"] = json!("mistral");
        assert!(ModelConfig::from_json(&v).unwrap_err().contains("mistral"));
        let mut v = llama31();
        v["num_key_value_heads"] = json!(5);
        assert!(ModelConfig::from_json(&v).unwrap_err().contains("multiple"));
        let mut v = llama31();
        v["rope_scaling"] = json!({"rope_type": "yarn", "factor": 4.0});
        assert!(ModelConfig::from_json(&v).unwrap_err().contains("yarn"));
    }
}
