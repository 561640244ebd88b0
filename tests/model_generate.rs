//! `zest model generate` end to end: greedy output identical, token for token, to transformers'
//! `generate` on tiny random Llama and Qwen2 models saved by transformers; sampling flags; clear
//! errors.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ZEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p =
        Path::new(&std::env::var_os("HOME").unwrap()).join(".cache/zest-py/torch-venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run bash infra/scripts/install-torch.sh",
        p.display()
    );
    p
}

fn py(script: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kernels/torch/tests/py")
        .join(script);
    let out = Command::new(python())
        .arg(path)
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn zest(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zest"))
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap()
}

fn check(arch: &str, chat: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(arch);
    let d = dir.to_str().unwrap();
    py("make_tiny.py", &["--arch", arch, "--out", d]);
    let prompt = "The patient presented with fever and";
    let prompts = tmp.path().join("prompts.json");
    std::fs::write(&prompts, serde_json::to_string(&[prompt]).unwrap()).unwrap();
    let out = tmp.path().join("ref.json");
    let mut args = vec![
        "--model",
        d,
        "--prompts",
        prompts.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--max-new-tokens",
        "32",
    ];
    if chat {
        args.push("--chat");
    }
    py("ref_generate.py", &args);
    let reference: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();

    let mut args = vec![
        "model",
        "generate",
        "--model",
        d,
        "--prompt",
        prompt,
        "--max-new-tokens",
        "32",
        "--json",
        "--device",
        "cpu",
    ];
    if chat {
        args.push("--chat");
    }
    let o = zest(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        ours["token_ids"], reference["generated_ids"][0],
        "{arch} chat={chat}"
    );
    assert_eq!(ours["text"], reference["texts"][0]);

    // Plain output is the same text.
    args.retain(|a| *a != "--json");
    let o = zest(&args);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim_end_matches('\n'),
        reference["texts"][0].as_str().unwrap()
    );
}

#[test]
fn greedy_output_matches_transformers_llama() {
    check("llama", false);
}

#[test]
fn greedy_chat_output_matches_transformers_qwen2() {
    check("qwen2", true);
}

#[test]
fn sampling_is_seeded_and_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("llama");
    let d = dir.to_str().unwrap();
    py("make_tiny.py", &["--arch", "llama", "--out", d]);
    let run = |seed: &str| {
        let o = zest(&[
            "model",
            "generate",
            "--model",
            d,
            "--prompt",
            "Fever",
            "--temperature",
            "0.8",
            "--top-p",
            "0.9",
            "--seed",
            seed,
            "--max-new-tokens",
            "16",
            "--json",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["token_ids"].clone()
    };
    assert_eq!(run("1"), run("1"));
    assert_ne!(run("1"), run("2"));

    let o = zest(&[
        "model",
        "generate",
        "--model",
        "/nonexistent",
        "--prompt",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/tokenizer.json"));
    let o = zest(&[
        "model", "generate", "--model", d, "--prompt", "x", "--device", "cuda:7",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cuda:7"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = zest(&[
        "model", "generate", "--model", d, "--prompt", "x", "--dtype", "int3",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown dtype `int3`"));
}
