//! `train.tokenizer`: a byte-level BPE tokenizer trained on dataset text, with the special
//! tokens and chat template of a chat format: zest's own (the default), `llama3` or `qwen2.5`.

use super::data::read_texts;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports};
use zest_kernels::text_tokenizer::{SpecialRoles, TextTokenizer};

/// A chat format: special tokens and the chat template that uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum ChatFormat {
    /// zest's own: `<|start|>role\n…<|end|>` turns, `<|endoftext|>` between documents.
    #[default]
    #[serde(rename = "zest")]
    Zest,
    /// Llama 3's headers and `<|eot_id|>`, `<|begin_of_text|>` first.
    #[serde(rename = "llama3")]
    Llama3,
    /// Qwen2.5's ChatML (`<|im_start|>` … `<|im_end|>`), with Qwen2.5's default system turn
    /// ("You are Qwen, created by Alibaba Cloud. …") when the conversation has none, as the
    /// official template renders it; give a system turn to avoid it.
    #[serde(rename = "qwen2.5")]
    Qwen25,
}

/// The tokens and template of a chat format.
#[derive(Debug, Clone)]
pub struct FormatTokens {
    /// Special tokens, in the order they get ids (the first ids of the vocabulary).
    pub specials: &'static [&'static str],
    /// Beginning of sequence, if the format has one.
    pub bos: Option<&'static str>,
    /// End of a document (appended to every pre-training document).
    pub eos: &'static str,
    /// End of a chat turn (generation stops there too).
    pub end_of_turn: &'static str,
    /// Padding.
    pub pad: &'static str,
    /// The Jinja chat template.
    pub template: &'static str,
}

impl ChatFormat {
    /// Its tokens and template.
    pub fn tokens(self) -> FormatTokens {
        match self {
            ChatFormat::Zest => FormatTokens {
                specials: &["<|endoftext|>", "<|pad|>", "<|start|>", "<|end|>"],
                bos: None,
                eos: "<|endoftext|>",
                end_of_turn: "<|end|>",
                pad: "<|pad|>",
                template: include_str!("../../data/chat_templates/zest.jinja"),
            },
            ChatFormat::Llama3 => FormatTokens {
                specials: &[
                    "<|begin_of_text|>",
                    "<|end_of_text|>",
                    "<|start_header_id|>",
                    "<|end_header_id|>",
                    "<|eot_id|>",
                    "<|pad|>",
                ],
                bos: Some("<|begin_of_text|>"),
                eos: "<|end_of_text|>",
                end_of_turn: "<|eot_id|>",
                pad: "<|pad|>",
                template: include_str!("../../data/chat_templates/llama3.jinja"),
            },
            ChatFormat::Qwen25 => FormatTokens {
                specials: &["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                bos: None,
                eos: "<|endoftext|>",
                end_of_turn: "<|im_end|>",
                pad: "<|endoftext|>",
                template: include_str!("../../data/chat_templates/qwen2.5.jinja"),
            },
        }
    }
}

/// The end-of-turn tokens of every chat format, to find in a tokenizer's vocabulary.
pub const END_OF_TURN_TOKENS: &[&str] = &["<|end|>", "<|eot_id|>", "<|im_end|>"];

/// `train.tokenizer`'s config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizerConfig {
    /// Tokens in the vocabulary, special tokens included.
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    /// The chat format: special tokens and chat template.
    #[serde(default)]
    pub chat_template: ChatFormat,
    /// The column holding the text.
    #[serde(default = "crate::data::docs::text_column")]
    pub text_column: String,
    /// Train on at most this many documents (the first ones); all by default.
    #[serde(default)]
    pub max_documents: Option<usize>,
}

fn default_vocab() -> usize {
    32_000
}

/// `train.tokenizer`.
pub struct TrainTokenizer;

impl Operator for TrainTokenizer {
    type Config = TokenizerConfig;
    const NAME: &'static str = "train.tokenizer";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Byte-level BPE tokenizer from dataset text, with a chat template (zest, llama3, qwen2.5)";

    fn ports(config: Option<&TokenizerConfig>) -> Ports {
        let col = config.map_or_else(crate::data::docs::text_column, |c| c.text_column.clone());
        Ports {
            inputs: vec![
                PortSpec::new("data", PortType::Dataset, "the training text")
                    .many()
                    .with_columns(&[&col]),
            ],
            outputs: vec![PortSpec::new(
                "tokenizer",
                PortType::Tokenizer,
                "tokenizer.json and tokenizer_config.json (with the chat template)",
            )],
            other_inputs: None,
        }
    }

    fn check(c: &TokenizerConfig) -> Result<(), String> {
        let specials = c.chat_template.tokens().specials.len();
        if c.vocab_size < 256 + specials {
            return Err(format!(
                "vocab_size: must hold the 256 byte tokens and {specials} special tokens (at least {})",
                256 + specials
            ));
        }
        Ok(())
    }

    fn run(config: &TokenizerConfig, ctx: &mut OpContext) -> anyhow::Result<()> {
        let mut texts = read_texts(ctx, "data", "text_column", &config.text_column)?;
        if let Some(n) = config.max_documents {
            texts.truncate(n);
        }
        if texts.is_empty() {
            anyhow::bail!("input `data` has no text to train on");
        }
        let f = config.chat_template.tokens();
        let roles = SpecialRoles {
            bos: f.bos.map(str::to_string),
            eos: Some(f.eos.to_string()),
            pad: Some(f.pad.to_string()),
            chat_template: Some(f.template.to_string()),
        };
        let tok = TextTokenizer::train_bpe(
            texts.iter().map(String::as_str),
            config.vocab_size,
            f.specials,
            &roles,
        )?;
        let dir = ctx.output_dir("tokenizer")?.to_path_buf();
        tok.save(&dir)?;
        println!(
            "trained a {}-token BPE tokenizer on {} documents ({} format)",
            tok.vocab_size(),
            texts.len(),
            serde_json::to_value(config.chat_template)?
                .as_str()
                .unwrap_or_default()
        );
        ctx.output_meta.insert(
            "tokenizer".into(),
            serde_json::json!({"vocab_size": tok.vocab_size(), "documents": texts.len()}),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zest_kernels::chat_template::{render, ChatInputs};

    fn chat(f: ChatFormat) -> String {
        let t = f.tokens();
        let messages = vec![
            serde_json::json!({"role": "user", "content": "What lowers LDL?"}),
            serde_json::json!({"role": "assistant", "content": "Statins."}),
        ];
        let mut special = vec![("eos_token".to_string(), t.eos.to_string())];
        if let Some(b) = t.bos {
            special.push(("bos_token".into(), b.into()));
        }
        render(
            t.template,
            &ChatInputs {
                messages: &messages,
                add_generation_prompt: true,
                tools: None,
                special_tokens: special,
            },
        )
        .unwrap()
    }

    #[test]
    fn the_chat_formats_render_their_turns() {
        assert_eq!(
            chat(ChatFormat::Zest),
            "<|start|>user\nWhat lowers LDL?<|end|>\n<|start|>assistant\nStatins.<|end|>\n<|start|>assistant\n"
        );
        assert_eq!(
            chat(ChatFormat::Llama3),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat lowers LDL?<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\nStatins.<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        assert_eq!(
            chat(ChatFormat::Qwen25),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat lowers LDL?<|im_end|>\n\
             <|im_start|>assistant\nStatins.<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    /// Renders `template` with `f`'s special tokens.
    fn render_with(
        f: ChatFormat,
        template: &str,
        messages: &[serde_json::Value],
        gen: bool,
    ) -> String {
        let t = f.tokens();
        let mut special = vec![("eos_token".to_string(), t.eos.to_string())];
        if let Some(b) = t.bos {
            special.push(("bos_token".into(), b.into()));
        }
        render(
            template,
            &ChatInputs {
                messages,
                add_generation_prompt: gen,
                tools: None,
                special_tokens: special,
            },
        )
        .unwrap()
    }

    /// `llama3` and `qwen2.5` render exactly as the models' own templates (the copies the
    /// kernels' transformers-parity tests use) for conversations without tools.
    #[test]
    fn llama3_and_qwen25_render_as_the_official_templates() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../kernels/torch/tests/fixtures/chat_templates");
        let m = |role: &str, content: &str| serde_json::json!({"role": role, "content": content});
        let conversations = [
            vec![m("user", "What lowers LDL?")],
            vec![
                m("system", "You are a cardiologist."),
                m("user", "What lowers LDL?"),
            ],
            vec![
                m("user", "  A 54-year-old man has chest pain.  "),
                m(
                    "assistant",
                    "<think>Rule out ACS first.</think><answer>ECG and troponin.</answer>",
                ),
                m("user", "The ECG is normal.\n\nNext step?"),
                m("assistant", "Serial troponins."),
            ],
            vec![
                m("system", "Answer in one word."),
                m("user", "Drug class of atorvastatin?"),
                m("assistant", "Statin"),
            ],
        ];
        for (format, file) in [
            (ChatFormat::Llama3, "llama3.jinja"),
            (ChatFormat::Qwen25, "qwen2_5.jinja"),
        ] {
            let official = std::fs::read_to_string(fixtures.join(file)).unwrap();
            for messages in &conversations {
                for gen in [false, true] {
                    let ours = render_with(format, format.tokens().template, messages, gen);
                    let theirs = render_with(format, &official, messages, gen);
                    assert_eq!(
                        ours, theirs,
                        "{format:?}, generation prompt {gen}: {messages:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_format_names_tokens_it_declares() {
        for f in [ChatFormat::Zest, ChatFormat::Llama3, ChatFormat::Qwen25] {
            let t = f.tokens();
            for tok in [Some(t.eos), Some(t.end_of_turn), Some(t.pad), t.bos]
                .into_iter()
                .flatten()
            {
                assert!(t.specials.contains(&tok), "{f:?}: {tok}");
            }
            assert!(END_OF_TURN_TOKENS.contains(&t.end_of_turn));
        }
    }
}
