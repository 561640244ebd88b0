//! zest-kernels: compute for zest's operators, with no I/O beyond model files and no engine
//! types. So far: seedable random numbers ([`rng`]), bandits for online data mixing
//! ([`bandit`]), MinHash near-duplicate detection ([`minhash`]), and reading and writing
//! checkpoint files ([`safetensors`], [`model_info`]).
#![warn(missing_docs)]

pub mod bandit;
pub mod minhash;
pub mod model_info;
pub mod rng;
pub mod safetensors;
