//! Decoder-only transformers on libtorch (tch): the Llama and Qwen2 architectures, loading and
//! saving Hugging Face checkpoints, generation, and the training kernels (losses, optimiser,
//! schedules, packing). One code path for CPU and CUDA; the device is chosen at run time.

pub mod checkpoint;
pub mod device;
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

/// Errors from the model code.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// A checkpoint or configuration file is unusable.
    #[error(transparent)]
    Checkpoint(#[from] crate::safetensors::Error),
    /// `config.json` is unusable.
    #[error(transparent)]
    Config(#[from] crate::model_config::ConfigError),
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
