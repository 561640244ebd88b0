//! zest-kernels: compute for zest's operators, with no I/O beyond model files and no engine
//! types. So far: seedable random numbers ([`rng`]), bandits for online data mixing
//! ([`bandit`]) and MinHash near-duplicate detection ([`minhash`]).
#![warn(missing_docs)]

pub mod bandit;
pub mod minhash;
pub mod rng;
