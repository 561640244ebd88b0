//! Shared by the parity tests: the Python interpreter with torch, transformers and TRL (installed
//! by `infra/scripts/install-torch.sh`), the reference scripts in `tests/py`, and tiny models
//! made once per test binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use zest_kernels_torch::tch::Device;

/// The interpreter: `$ZEST_PYTHON`, else the venv that `make test` installs.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ZEST_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    let p = Path::new(&home).join(".cache/zest-py/torch-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash infra/scripts/install-torch.sh` (or `make test`), \
         or point ZEST_PYTHON at a Python with torch==2.13.0, transformers and trl",
        p.display()
    );
    p
}

/// Runs `tests/py/<script>` with `args`; panics with its stderr when it fails.
pub fn run_py(script: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .output()
        .expect("start python");
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A scratch directory that lives as long as the test binary.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

/// The tiny model of `arch` (`llama` or `qwen2`) saved by transformers, made on first use.
pub fn tiny(arch: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch().join(format!("tiny-{arch}"));
    if !dir.join("config.json").exists() {
        run_py(
            "make_tiny.py",
            &["--arch", arch, "--out", dir.to_str().expect("utf-8 path")],
        );
    }
    dir
}

/// Whether libtorch sees a CUDA device.
pub fn has_cuda() -> bool {
    zest_kernels_torch::tch::Cuda::is_available()
}

/// The devices to run a check on: the CPU, or CUDA for the `*_cuda` tests.
pub fn device(cuda: bool) -> Device {
    if cuda {
        assert!(
            has_cuda(),
            "this test needs a CUDA device; it is ignored unless run with --include-ignored"
        );
        Device::Cuda(0)
    } else {
        Device::Cpu
    }
}

/// Writes `value` as JSON into the scratch directory under `name` and returns the path.
pub fn write_json(name: &str, value: &serde_json::Value) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, serde_json::to_vec(value).expect("JSON")).expect("write");
    p
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("JSON")
}
