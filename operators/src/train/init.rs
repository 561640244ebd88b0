//! `model.init`: a new Llama or Qwen2 model with seeded random weights, from a size preset or
//! explicit dimensions, saved in Hugging Face layout (with the tokenizer's files when one is
//! connected, so the model directory loads on its own in transformers).

use super::common::Precision;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports, WorkerKind};
use zest_kernels::model_config::ModelConfig;

/// The architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Llama (no biases, untied embeddings unless asked).
    #[default]
    Llama,
    /// Qwen2 (biases on q/k/v, tied embeddings).
    Qwen2,
}

/// Size presets: the dimensions of a model of about that many parameters (with an 8k
/// vocabulary for the small ones; the embedding grows with the vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Size {
    /// About 1M parameters: tests and smoke runs.
    #[serde(rename = "tiny")]
    Tiny,
    /// About 10M parameters.
    #[serde(rename = "10m")]
    M10,
    /// About 50M parameters.
    #[serde(rename = "50m")]
    M50,
    /// About 125M parameters (GPT-2 small's shape).
    #[serde(rename = "125m")]
    M125,
    /// About 350M parameters.
    #[serde(rename = "350m")]
    M350,
    /// About 1B parameters (Llama 3.2 1B's layers; its 128k vocabulary adds 0.5B).
    #[serde(rename = "1b")]
    B1,
}

/// Dimensions: (hidden, intermediate, layers, heads, kv heads).
fn dims(size: Size) -> (i64, i64, i64, i64, i64) {
    match size {
        Size::Tiny => (64, 176, 2, 4, 2),
        Size::M10 => (320, 864, 6, 5, 5),
        Size::M50 => (512, 1376, 12, 8, 8),
        Size::M125 => (768, 2048, 12, 12, 12),
        Size::M350 => (1024, 2816, 24, 16, 16),
        Size::B1 => (2048, 8192, 16, 32, 8),
    }
}

/// `model.init`'s config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// The architecture.
    #[serde(default)]
    pub architecture: Architecture,
    /// A size preset; explicit dimensions below override its values.
    #[serde(default)]
    pub size: Option<Size>,
    /// Vocabulary rows; by default the connected tokenizer's vocabulary, rounded up to a
    /// multiple of `pad_vocab_to`.
    #[serde(default)]
    pub vocab_size: Option<i64>,
    /// Round the vocabulary up to a multiple of this (tensor-core friendly).
    #[serde(default = "default_pad_vocab")]
    pub pad_vocab_to: i64,
    /// Model width.
    #[serde(default)]
    pub hidden_size: Option<i64>,
    /// SwiGLU width.
    #[serde(default)]
    pub intermediate_size: Option<i64>,
    /// Decoder layers.
    #[serde(default)]
    pub num_hidden_layers: Option<i64>,
    /// Query heads.
    #[serde(default)]
    pub num_attention_heads: Option<i64>,
    /// Key/value heads (grouped-query attention when fewer than the query heads).
    #[serde(default)]
    pub num_key_value_heads: Option<i64>,
    /// Longest context.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: i64,
    /// RoPE base.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RMSNorm ε.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Whether the output layer shares the embedding (default: Qwen2 yes, Llama no).
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    /// Standard deviation of the initial weights.
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// Seed of the initial weights (the same on every device).
    #[serde(default)]
    pub seed: u64,
    /// The element type the model is saved in.
    #[serde(default)]
    pub dtype: Precision,
}

fn default_pad_vocab() -> i64 {
    64
}
fn default_max_positions() -> i64 {
    4096
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_eps() -> f64 {
    1e-5
}
fn default_init_range() -> f64 {
    0.02
}

/// Special token ids a tokenizer gives the model's `config.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecialIds {
    /// Beginning of sequence.
    pub bos: Option<i64>,
    /// End of sequence (several for chat models: the end-of-turn token too).
    pub eos: Vec<i64>,
    /// Padding.
    pub pad: Option<i64>,
}

impl InitConfig {
    /// The `config.json` of the model, for a tokenizer of `tokenizer_vocab` tokens (when one
    /// is connected) with `special` ids.
    pub fn hf_config(
        &self,
        tokenizer_vocab: Option<i64>,
        special: &SpecialIds,
    ) -> Result<serde_json::Value, String> {
        let pick = |explicit: Option<i64>, preset: Option<i64>, field: &str| {
            explicit
                .or(preset)
                .ok_or_else(|| format!("{field}: set it, or choose a `size` preset"))
        };
        let p = self.size.map(dims);
        let hidden = pick(self.hidden_size, p.map(|d| d.0), "hidden_size")?;
        let inter = pick(self.intermediate_size, p.map(|d| d.1), "intermediate_size")?;
        let layers = pick(self.num_hidden_layers, p.map(|d| d.2), "num_hidden_layers")?;
        let heads = pick(
            self.num_attention_heads,
            p.map(|d| d.3),
            "num_attention_heads",
        )?;
        let kv = self
            .num_key_value_heads
            .or(p.map(|d| d.4).filter(|kv| heads % kv == 0))
            .unwrap_or(heads);
        if hidden % heads != 0 {
            return Err(format!(
                "hidden_size ({hidden}) must be a multiple of num_attention_heads ({heads})"
            ));
        }
        let vocab = match (self.vocab_size, tokenizer_vocab) {
            (Some(v), Some(t)) if v < t => {
                return Err(format!(
                    "vocab_size ({v}) is smaller than the tokenizer's vocabulary ({t} tokens)"
                ))
            }
            (Some(v), _) => v,
            (None, Some(t)) => {
                let m = self.pad_vocab_to.max(1);
                (t + m - 1) / m * m
            }
            (None, None) => {
                return Err(
                    "vocab_size: set it, or connect a `tokenizer` to take its vocabulary".into(),
                )
            }
        };
        let qwen = self.architecture == Architecture::Qwen2;
        let (arch, model_type) = if qwen {
            ("Qwen2ForCausalLM", "qwen2")
        } else {
            ("LlamaForCausalLM", "llama")
        };
        let mut v = json!({
            "architectures": [arch],
            "model_type": model_type,
            "vocab_size": vocab,
            "hidden_size": hidden,
            "intermediate_size": inter,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": kv,
            "head_dim": hidden / heads,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_word_embeddings.unwrap_or(qwen),
            "initializer_range": self.initializer_range,
            "attention_dropout": 0.0,
            "torch_dtype": self.dtype.as_str(),
            "use_cache": true,
        });
        if qwen {
            v["use_sliding_window"] = json!(false);
        } else {
            v["attention_bias"] = json!(false);
            v["mlp_bias"] = json!(false);
        }
        if let Some(b) = special.bos {
            v["bos_token_id"] = json!(b);
        }
        match special.eos.as_slice() {
            [] => {}
            [one] => v["eos_token_id"] = json!(one),
            many => v["eos_token_id"] = json!(many),
        }
        if let Some(p) = special.pad {
            v["pad_token_id"] = json!(p);
        }
        ModelConfig::from_json(&v)?;
        Ok(v)
    }
}

/// `model.init`.
pub struct Init;

impl Operator for Init {
    type Config = InitConfig;
    const NAME: &'static str = "model.init";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "A new Llama or Qwen2 model with seeded random weights, from a size preset or dimensions";
    const WORKER: WorkerKind = WorkerKind::Torch;

    fn ports(_config: Option<&InitConfig>) -> Ports {
        Ports {
            inputs: vec![PortSpec::new(
                "tokenizer",
                PortType::Tokenizer,
                "the tokenizer: its vocabulary sizes the model, its files are saved with it",
            )
            .optional()],
            outputs: vec![PortSpec::new(
                "model",
                PortType::Model,
                "the model (Hugging Face layout)",
            )],
            other_inputs: None,
        }
    }

    fn check(c: &InitConfig) -> Result<(), String> {
        // The vocabulary may come from the tokenizer; check the rest with a stand-in.
        let probe = InitConfig {
            vocab_size: c.vocab_size.or(Some(64)),
            ..c.clone()
        };
        probe.hf_config(None, &SpecialIds::default()).map(|_| ())?;
        if c.pad_vocab_to < 1 {
            return Err("pad_vocab_to: must be at least 1".into());
        }
        if !super::common::positive(c.initializer_range) {
            return Err("initializer_range: must be positive".into());
        }
        Ok(())
    }

    fn run(config: &InitConfig, ctx: &mut OpContext) -> anyhow::Result<()> {
        super::run_in_torch(Self::NAME, config, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: serde_json::Value) -> InitConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn presets_give_the_sizes_they_say() {
        let special = SpecialIds::default();
        for (size, lo, hi) in [
            ("tiny", 0.5e6, 1.5e6),
            ("10m", 8e6, 14e6),
            ("1b", 0.9e9, 1.3e9),
        ] {
            let c = cfg(json!({"size": size, "vocab_size": 8192}));
            let v = c.hf_config(None, &special).unwrap();
            let n = ModelConfig::from_json(&v).unwrap().parameter_count() as f64;
            assert!(n > lo && n < hi, "{size}: {n}");
        }
    }

    #[test]
    fn the_tokenizer_sizes_the_vocabulary_and_must_fit() {
        let c = cfg(json!({"size": "tiny"}));
        let v = c.hf_config(Some(1000), &SpecialIds::default()).unwrap();
        assert_eq!(v["vocab_size"], 1024);
        let c = cfg(json!({"size": "tiny", "vocab_size": 512}));
        let e = c.hf_config(Some(1000), &SpecialIds::default()).unwrap_err();
        assert!(e.contains("smaller than the tokenizer's vocabulary"), "{e}");
        let e = cfg(json!({"size": "tiny"}))
            .hf_config(None, &SpecialIds::default())
            .unwrap_err();
        assert!(e.contains("connect a `tokenizer`"), "{e}");
    }

    #[test]
    fn bad_dimensions_are_refused_at_validation() {
        let c = cfg(
            json!({"hidden_size": 100, "num_attention_heads": 3, "intermediate_size": 64, "num_hidden_layers": 1}),
        );
        let e = Init::check(&c).unwrap_err();
        assert!(e.contains("multiple of num_attention_heads"), "{e}");
        let c = cfg(json!({"num_hidden_layers": 1}));
        assert!(Init::check(&c).unwrap_err().contains("size"));
    }

    #[test]
    fn qwen2_ties_embeddings_and_llama_does_not() {
        let s = SpecialIds {
            bos: Some(1),
            eos: vec![2, 3],
            pad: Some(0),
        };
        let q = cfg(json!({"architecture": "qwen2", "size": "tiny", "vocab_size": 128}))
            .hf_config(None, &s)
            .unwrap();
        assert_eq!(q["tie_word_embeddings"], true);
        assert_eq!(q["eos_token_id"], json!([2, 3]));
        let l = cfg(json!({"size": "tiny", "vocab_size": 128}))
            .hf_config(None, &s)
            .unwrap();
        assert_eq!(l["tie_word_embeddings"], false);
        assert_eq!(l["model_type"], "llama");
    }
}
