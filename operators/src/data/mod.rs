//! Dataset operators: `data.load` and `data.sql`. Datasets are stored as Parquet.

pub mod dataset;
pub mod docs;
pub mod filter_report;
pub mod load;
pub mod overrides;
pub mod sources;
pub mod sql;
