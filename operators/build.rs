//! Fingerprints of the code each operator family is built from, for cache keys: a change to
//! an operator's module, the shared data plumbing, the bundled data, the kernels or the locked
//! dependencies changes the fingerprint, so no cache entry made by other code is served.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// sha256 over the sorted (relative path, content) pairs of `paths` (files or directories).
fn hash(base: &Path, paths: &[PathBuf]) -> String {
    let mut files = vec![];
    for p in paths {
        if p.is_dir() {
            files_under(p, &mut files);
        } else if p.is_file() {
            files.push(p.clone());
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        let rel = f.strip_prefix(base).unwrap_or(&f);
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(&f).unwrap_or_default());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The code the libtorch operators run outside this crate: their implementations and the
/// libtorch kernels.
fn torch_code(root: &Path) -> Vec<PathBuf> {
    vec![
        root.join("operators/torch/src"),
        root.join("operators/torch/Cargo.toml"),
        root.join("kernels/torch/src"),
        root.join("kernels/torch/Cargo.toml"),
    ]
}

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = here.parent().expect("in the workspace").to_path_buf();
    let src = here.join("src");
    // What every operator depends on besides its own module.
    let mut common = vec![
        here.join("Cargo.toml"),
        here.join("build.rs"),
        here.join("data"),
        src.join("data/dataset.rs"),
        src.join("data/docs.rs"),
        src.join("data/filter_report.rs"),
        src.join("data/overrides.rs"),
        src.join("data/sources.rs"),
        root.join("kernels/src"),
        root.join("kernels/Cargo.toml"),
        root.join("Cargo.lock"),
    ];
    let mut families = vec![];
    for e in std::fs::read_dir(&src).expect("operators/src").flatten() {
        let p = e.path();
        if p.is_dir() {
            families.push(p);
        } else {
            common.push(p);
        }
    }
    families.sort();
    let common_hash = hash(&root, &common);
    let mut table = String::new();
    for f in &families {
        let name = f.file_name().expect("named").to_string_lossy().into_owned();
        let mut h = Sha256::new();
        h.update(common_hash.as_bytes());
        h.update(hash(&root, std::slice::from_ref(f)).as_bytes());
        if name == "train" || name == "eval" || name == "generate" {
            // The libtorch half of these operators lives in other crates.
            h.update(hash(&root, &torch_code(&root)).as_bytes());
        }
        let fp: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        table.push_str(&format!("    ({name:?}, {:?}),\n", &fp[..32]));
    }
    let mut all = vec![src.clone()];
    all.extend(common);
    let all_hash = hash(&root, &all);
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    std::fs::write(
        out.join("code_fingerprints.rs"),
        format!(
            "/// Code fingerprint of each operator family (a module directory of `operators/src`).\npub const FAMILIES: &[(&str, &str)] = &[\n{table}];\n/// Fingerprint of all operator code, for operators outside a family.\npub const ALL: &str = {:?};\n",
            &all_hash[..32]
        ),
    )
    .expect("OUT_DIR is writable");
    for p in [&src, &here.join("data"), &root.join("kernels/src")] {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    for p in torch_code(&root) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    for p in ["Cargo.toml", "build.rs"] {
        println!("cargo:rerun-if-changed={}", here.join(p).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("kernels/Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
}
