//! General-purpose operators: `noop` and `shell`.

pub mod noop;
pub mod shell;
