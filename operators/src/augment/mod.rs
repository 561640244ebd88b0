//! Augmentation operators: each reads annotated documents on `docs` and writes generated
//! training samples, with provenance back to their source passages, to `docs`.
//!
//! - [`textbook`]: `augment.textbook`, rule-based cloze items, question–answer pairs and
//!   paragraph rewrites from entity and relation annotations.

pub mod textbook;
