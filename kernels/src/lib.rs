//! zest-kernels: compute for zest's operators, with no I/O beyond model files and no engine
//! types: seedable random numbers ([`rng`]), bandits for online data mixing ([`bandit`]),
//! MinHash near-duplicate detection ([`minhash`]), checkpoint files ([`safetensors`],
//! [`model_info`], [`model_config`]), tokenizers and chat templates ([`text_tokenizer`],
//! [`chat_template`]). The libtorch half (transformers, generation, training) is the
//! `zest-kernels-torch` crate in `kernels/torch/`, so that nothing else links libtorch.
#![warn(missing_docs)]

pub mod augment;
pub mod bandit;
pub mod binarize;
pub mod chat_template;
pub mod classify;
pub mod dedup;
pub mod entities;
pub mod html;
pub mod langid;
pub mod minhash;
pub mod model_config;
pub mod model_info;
pub mod page_text;
pub mod pii;
pub mod plot;
pub mod quality;
pub mod relations;
pub mod resample;
pub mod rng;
pub mod safetensors;
pub mod text_tokenizer;
