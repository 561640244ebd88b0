//! Cleaning operators over document datasets: each reads `docs` and writes `docs` (kept rows,
//! annotated), plus what it removed on a port of its own.

pub mod dedup;
