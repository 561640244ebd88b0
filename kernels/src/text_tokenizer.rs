//! Tokenizers of Hugging Face model directories (`tokenizer.json`, `tokenizer_config.json`,
//! `chat_template.jinja`): encoding, decoding, special tokens and chat templates; and training a
//! new byte-level BPE tokenizer, saved in the same format, for models trained from scratch.

use crate::chat_template::{self, ChatInputs};
use serde_json::{json, Value};
use std::path::Path;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

/// Errors loading, using or training a tokenizer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenizerError(pub String);

fn err(e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError(e.to_string())
}

/// A tokenizer with its special tokens and chat template.
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The `tokenizer_config.json` document (empty object when absent).
    pub config: Value,
    /// The chat template, where the directory has one.
    pub chat_template: Option<String>,
}

/// A special token's text: `tokenizer_config.json` writes it as a string or as an object with
/// `content`.
fn token_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

impl TextTokenizer {
    /// Loads the tokenizer of a model directory.
    pub fn from_dir(dir: &Path) -> Result<TextTokenizer, TokenizerError> {
        let path = dir.join("tokenizer.json");
        let inner = Tokenizer::from_file(&path)
            .map_err(|e| TokenizerError(format!("{}: {e}", path.display())))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let config: Value = match std::fs::read_to_string(&cfg_path) {
            Ok(t) => serde_json::from_str(&t)
                .map_err(|e| TokenizerError(format!("{}: {e}", cfg_path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
            Err(e) => return Err(TokenizerError(format!("{}: {e}", cfg_path.display()))),
        };
        // transformers 4.43+ may keep the template beside the config.
        let jinja = dir.join("chat_template.jinja");
        let chat_template = if jinja.exists() {
            Some(std::fs::read_to_string(&jinja).map_err(err)?)
        } else {
            match &config["chat_template"] {
                Value::String(s) => Some(s.clone()),
                Value::Array(named) => named
                    .iter()
                    .find(|t| t["name"] == "default")
                    .and_then(|t| t["template"].as_str())
                    .map(str::to_string),
                _ => None,
            }
        };
        Ok(TextTokenizer {
            inner,
            config,
            chat_template,
        })
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// A special token named in `tokenizer_config.json` (`bos_token`, `eos_token`, `pad_token`,
    /// `unk_token`).
    pub fn special(&self, name: &str) -> Option<String> {
        token_text(&self.config[name])
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }

    /// The id of a named special token.
    pub fn special_id(&self, name: &str) -> Option<i64> {
        self.special(name).and_then(|t| self.token_id(&t))
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text`; `add_special_tokens` applies the post-processor (e.g. a BOS).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<i64>, TokenizerError> {
        let enc = self.inner.encode(text, add_special_tokens).map_err(err)?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// Token ids of `text` with each token's byte range in `text`.
    pub fn encode_with_offsets(
        &self,
        text: &str,
        add_special_tokens: bool,
    ) -> Result<(Vec<i64>, Vec<ByteSpan>), TokenizerError> {
        let enc = self.inner.encode(text, add_special_tokens).map_err(err)?;
        Ok((
            enc.get_ids().iter().map(|&i| i64::from(i)).collect(),
            enc.get_offsets().to_vec(),
        ))
    }

    /// Whether the tokenizer has a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[i64], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.inner.decode(&ids, skip_special_tokens).map_err(err)
    }

    /// Renders the chat template over `messages`, as `apply_chat_template(tokenize=False)`.
    pub fn apply_chat_template(
        &self,
        messages: &[Value],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        let template = self
            .chat_template
            .as_deref()
            .ok_or_else(|| TokenizerError("this tokenizer has no chat template".into()))?;
        let special_tokens = ["bos_token", "eos_token", "pad_token", "unk_token"]
            .iter()
            .filter_map(|n| self.special(n).map(|t| (n.to_string(), t)))
            .collect();
        chat_template::render(
            template,
            &ChatInputs {
                messages,
                add_generation_prompt,
                tools: None,
                special_tokens,
            },
        )
        .map_err(|e| TokenizerError(format!("chat template: {e:#}")))
    }

    /// Token ids of a rendered chat, as transformers tokenizes it (the template already holds
    /// any BOS, so no special tokens are added).
    pub fn encode_chat(
        &self,
        messages: &[Value],
        add_generation_prompt: bool,
    ) -> Result<Vec<i64>, TokenizerError> {
        let text = self.apply_chat_template(messages, add_generation_prompt)?;
        self.encode(&text, false)
    }

    /// Trains a byte-level BPE tokenizer (GPT-2/Llama 3 style) of `vocab_size` tokens on
    /// `texts`, with `special_tokens` added first. `bos`, `eos` and `pad` name which special
    /// tokens play those roles in `tokenizer_config.json`.
    pub fn train_bpe<'a>(
        texts: impl Iterator<Item = &'a str> + Send,
        vocab_size: usize,
        special_tokens: &[&str],
        roles: &SpecialRoles,
    ) -> Result<TextTokenizer, TokenizerError> {
        let specials: Vec<AddedToken> = special_tokens
            .iter()
            .map(|s| AddedToken::from(s.to_string(), true))
            .collect();
        let trainer = BpeTrainer::builder()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(specials.clone())
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut trainer = tokenizers::models::TrainerWrapper::BpeTrainer(trainer);
        let mut inner = Tokenizer::new(BPE::default());
        inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        inner.with_post_processor(Some(ByteLevel::new(false, false, true)));
        inner.with_decoder(Some(ByteLevel::default()));
        inner.train(&mut trainer, texts).map_err(err)?;
        inner.add_special_tokens(specials).map_err(err)?;
        let mut config = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": 1_000_000_000_000_000_000u64,
            "clean_up_tokenization_spaces": false,
        });
        for (key, tok) in [
            ("bos_token", &roles.bos),
            ("eos_token", &roles.eos),
            ("pad_token", &roles.pad),
        ] {
            if let Some(t) = tok {
                config[key] = json!(t);
            }
        }
        if let Some(t) = &roles.chat_template {
            config["chat_template"] = json!(t);
        }
        Ok(TextTokenizer {
            inner,
            config,
            chat_template: roles.chat_template.clone(),
        })
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), TokenizerError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        self.inner
            .save(dir.join("tokenizer.json"), false)
            .map_err(err)?;
        let text = serde_json::to_string_pretty(&self.config).map_err(err)?;
        std::fs::write(dir.join("tokenizer_config.json"), text).map_err(err)
    }
}

/// A token's byte range in the text it came from: start, end.
pub type ByteSpan = (usize, usize);

/// Which special tokens play which role, and the chat template, for a trained tokenizer.
#[derive(Debug, Clone, Default)]
pub struct SpecialRoles {
    /// Beginning of sequence.
    pub bos: Option<String>,
    /// End of sequence.
    pub eos: Option<String>,
    /// Padding.
    pub pad: Option<String>,
    /// Chat template.
    pub chat_template: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trains_saves_and_reloads_a_bpe_tokenizer() {
        let corpus = [
            "The patient presented with fever and cough for three days.",
            "Hypertension is treated with lifestyle changes and medication.",
            "The patient was given 500 mg of amoxicillin twice daily.",
            "患者出现发热和咳嗽三天。",
        ];
        let texts = corpus.iter().cycle().take(200).copied();
        let roles = SpecialRoles {
            eos: Some("<|end|>".into()),
            pad: Some("<|pad|>".into()),
            ..Default::default()
        };
        let tok = TextTokenizer::train_bpe(texts, 300, &["<|end|>", "<|pad|>"], &roles).unwrap();
        let dir = tempfile::tempdir().unwrap();
        tok.save(dir.path()).unwrap();
        let back = TextTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(back.special_id("eos_token"), Some(0));
        assert_eq!(back.special_id("pad_token"), Some(1));
        for text in corpus.iter().chain(["unseen wörds 123 <|end|>"].iter()) {
            let ids = back.encode(text, true).unwrap();
            assert!(
                ids.len() < text.len() || text.starts_with("unseen"),
                "{text}: {ids:?}"
            );
            assert_eq!(back.decode(&ids, false).unwrap(), *text);
        }
        let ids = back.encode("fever<|end|>", false).unwrap();
        assert_eq!(*ids.last().unwrap(), 0);
        assert_eq!(back.decode(&ids, true).unwrap(), "fever");
    }
}
