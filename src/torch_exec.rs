//! Hands the libtorch commands over to the `zest-torch` binary installed beside `zest`.

use std::os::unix::process::CommandExt;

/// Replaces this process with `zest-torch` and the same arguments; returns only on failure,
/// with the exit code.
pub fn exec_zest_torch() -> i32 {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("zest: cannot locate the zest binary: {e}");
            return 1;
        }
    };
    // `target/release/zest` may be a symlink into the cargo target directory.
    let dir = std::fs::canonicalize(&exe)
        .unwrap_or(exe)
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let torch = dir.join("zest-torch");
    let err = std::process::Command::new(&torch)
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!(
        "zest: cannot run {}: {err} (model commands need the zest-torch binary, built with the \
         default `torch` feature: `make build`)",
        torch.display()
    );
    1
}
