//! Cleaning operators over document datasets: each reads `docs` and writes `docs` (kept rows,
//! annotated), plus what it removed on a port of its own.

pub mod classify;
pub mod dedup;
pub mod entities;
pub mod quality;
pub mod relations;
