//! Printing that survives a closed pipe: `zest runs | head -1` stops reading early, and
//! `println!` would panic on the broken pipe. Once stdout (or stderr) is closed, what would
//! go there is dropped and the command finishes as it would have.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout; drops it once stdout is closed.
pub fn stdout(args: std::fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    if o.write_fmt(args).and_then(|_| o.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Writes to stderr; drops it once stderr is closed.
pub fn stderr(args: std::fmt::Arguments<'_>) {
    if STDERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if std::io::stderr().lock().write_fmt(args).is_err() {
        STDERR_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// `println!` that a closed stdout does not stop.
macro_rules! outln {
    () => { $crate::output::stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::output::stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` that a closed stdout does not stop.
macro_rules! out {
    ($($t:tt)*) => { $crate::output::stdout(format_args!($($t)*)) };
}

/// `eprintln!` that a closed stderr does not stop.
macro_rules! errln {
    ($($t:tt)*) => { $crate::output::stderr(format_args!("{}\n", format_args!($($t)*))) };
}

/// `eprint!` that a closed stderr does not stop.
macro_rules! err {
    ($($t:tt)*) => { $crate::output::stderr(format_args!($($t)*)) };
}

pub(crate) use {err, errln, out, outln};
