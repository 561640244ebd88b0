//! Evaluation operators: `eval.mcq`, zero-shot multiple-choice benchmarks.
//!
//! Reading benchmarks ([`items`]), answer extraction ([`extract`]), statistics ([`stats`]) and
//! the report are here, where `zest` validates and plans them; generation runs in
//! `zest-torch` (see [`crate::train`] for how libtorch operators are run).

pub mod extract;
pub mod items;
pub mod mcq;
pub mod stats;
