//! The generating operators, and the backend they share:
//!
//! - [`reasoning`]: `generate.reasoning`, Citrus's dual-expert chains of thought (a reasoner
//!   proposes steps, a critic who knows the answer rates them) as stage-3 SFT records.
//! - [`rejection`]: `generate.rejection`, n samples per prompt from a policy, scored (the
//!   multiple-choice verifier, format filters, an optional LLM judge) into preference pairs.
//! - [`backend`]: where a role generates (`local` on the kernels in `zest-torch`, or
//!   [`openai`]: any OpenAI-compatible endpoint), and the store's memo of its responses.
//! - [`templates`]: the prompts, in English and Chinese, overridable from the DAG.
//! - [`io`]: questions in, datasets out.

pub mod backend;
pub mod io;
pub mod openai;
pub mod reasoning;
pub mod rejection;
pub mod templates;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The language of the prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Each question's own: Chinese when it has Chinese characters, English otherwise.
    #[default]
    Auto,
    /// English.
    En,
    /// Chinese.
    Zh,
}

pub use crate::eval::mcq::has_cjk;

/// The template language for a question under `choice`.
pub fn language_of(choice: Language, question: &str) -> &'static str {
    match choice {
        Language::En => "en",
        Language::Zh => "zh",
        Language::Auto if has_cjk(question) => "zh",
        Language::Auto => "en",
    }
}
