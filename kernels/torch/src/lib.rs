//! zest-kernels-torch: the half of zest's kernels that runs on libtorch (tch), kept apart from
//! `zest-kernels` so that nothing else in zest links libtorch. Decoder-only transformers (the
//! Llama and Qwen2 architectures), loading and saving Hugging Face checkpoints, generation, and
//! the training kernels (losses, optimiser, schedules, packing). One code path for CPU and CUDA;
//! the device is chosen at run time.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod device;
pub mod dist;
pub mod generate;
pub mod loss;
pub mod mask;
pub mod model;
pub mod optim;
pub mod packing;
pub mod rope;
pub mod schedule;

pub use device::parse_device;
pub use model::Transformer;
pub use tch;

/// Errors from the model code.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// A checkpoint or configuration file is unusable.
    #[error(transparent)]
    Checkpoint(#[from] zest_kernels::safetensors::Error),
    /// `config.json` is unusable.
    #[error(transparent)]
    Config(#[from] zest_kernels::model_config::ConfigError),
    /// libtorch refused an operation.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// Anything else, said plainly.
    #[error("{0}")]
    Other(String),
}

/// Shorthand for results of this module.
pub type Result<T> = std::result::Result<T, LlmError>;

pub(crate) fn other(why: impl Into<String>) -> LlmError {
    LlmError::Other(why.into())
}
