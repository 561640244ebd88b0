//! MinHash signature throughput: reads a JSONL corpus, makes every document's signature and
//! LSH band keys on one thread, prints one JSON line.
//!
//! `cargo run --release -p zest-kernels --example minhash_bench -- CORPUS.jsonl [REPEAT]`
//! Each line's `text` field is a document; for PubMedQA records (no `text`), the `contexts`
//! and `long_answer` are joined.

use std::time::Instant;
use zest_kernels::minhash::{MinHashConfig, MinHasher};

fn document(v: &serde_json::Value) -> String {
    if let Some(t) = v["text"].as_str() {
        return t.to_string();
    }
    let mut parts: Vec<String> = v["contexts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(a) = v["long_answer"].as_str() {
        parts.push(a.to_string());
    }
    parts.join("\n")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: minhash_bench CORPUS.jsonl [REPEAT]");
    let repeat: usize = args.get(2).map(|r| r.parse().expect("REPEAT")).unwrap_or(1);
    let text = std::fs::read_to_string(path).expect("readable corpus");
    let docs: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| document(&serde_json::from_str(l).expect("JSON lines")))
        .collect();
    let m = MinHasher::new(MinHashConfig::default());
    let t = Instant::now();
    let mut check = 0u64;
    for _ in 0..repeat {
        for d in &docs {
            let sig = m.signature(d);
            for b in m.bands(&sig) {
                check = check.wrapping_add(b);
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let n = docs.len() * repeat;
    println!(
        "{}",
        serde_json::json!({
            "tool": "zest-kernels", "docs": n, "seconds": (secs * 1e4).round() / 1e4,
            "docs_per_s": (n as f64 / secs).round(), "threads": 1,
            "config": "word 5-grams, 14 bands x 8 rows, 64-bit", "checksum": format!("{check:016x}")
        })
    );
}
