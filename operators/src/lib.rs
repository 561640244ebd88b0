//! zest-operators: every operator, one module per family.
//!
//! - [`core`]: `noop` and `shell`, the building blocks for tests, benchmarks and glue.
//! - [`data`]: `data.load` and `data.sql` over Parquet datasets with DataFusion.
//! - [`clean`]: `clean.dedup` (exact and MinHash-LSH near-duplicate removal).
#![warn(missing_docs)]

pub mod clean;
pub mod core;
pub mod data;

use zest_engine::operator::Registry;

/// A registry with every operator zest ships.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register::<core::noop::Noop>()
        .register::<core::shell::Shell>()
        .register::<data::load::Load>()
        .register::<data::sql::Sql>()
        .register::<clean::dedup::Dedup>();
    r
}
