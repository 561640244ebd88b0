//! Training-step and generation throughput of a ~10M-parameter Llama on zest's kernels, for
//! `bench/model.sh`, which runs `bench/model_pytorch.py` (PyTorch + transformers) beside it.
//!
//! ```text
//! cargo run --release -p zest-kernels-torch --example model_bench -- train|generate THREADS [STEPS]
//! ```
//! Prints one JSON line: `{"impl": "zest", "mode", "threads", "tokens", "seconds", "tokens_per_s"}`.

use std::time::Instant;
use zest_kernels::model_config::ModelConfig;
use zest_kernels_torch::generate::{generate, SamplingParams};
use zest_kernels_torch::loss::masked_cross_entropy;
use zest_kernels_torch::mask::{positions_from_start, Attention};
use zest_kernels_torch::optim::{clip_grad_norm, AdamW, AdamWConfig};
use zest_kernels_torch::tch::{self, Device, Kind, Tensor};
use zest_kernels_torch::Transformer;

/// The benchmark model: the same hyper-parameters as `bench/model_pytorch.py`.
fn config() -> ModelConfig {
    ModelConfig::from_json(&serde_json::json!({
        "model_type": "llama", "vocab_size": 8192, "hidden_size": 256, "intermediate_size": 688,
        "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 4,
        "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": false
    }))
    .expect("valid config")
}

const BATCH: i64 = 8;
const SEQ: i64 = 256;
const PROMPT: i64 = 16;
const NEW_TOKENS: usize = 128;
const GEN_BATCH: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("train");
    let threads: i32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let steps: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    tch::set_num_threads(threads);
    tch::set_num_interop_threads(threads);
    tch::manual_seed(0);
    let model = Transformer::new(config(), Device::Cpu, Kind::Float);
    let (tokens, seconds) = match mode {
        "train" => train(&model, steps),
        "generate" => gen(&model, steps),
        other => panic!("unknown mode {other} (train or generate)"),
    };
    println!(
        "{}",
        serde_json::json!({
            "impl": "zest", "mode": mode, "threads": threads, "tokens": tokens,
            "seconds": seconds, "tokens_per_s": tokens as f64 / seconds,
            "parameters": model.config.parameter_count(),
        })
    );
}

fn train(model: &Transformer, steps: u64) -> (u64, f64) {
    model.set_trainable(true);
    let mut opt = AdamW::new(
        model.parameters(),
        AdamWConfig {
            weight_decay: 0.1,
            ..Default::default()
        },
    );
    let ids = Tensor::randint(8192, [BATCH, SEQ], (Kind::Int64, Device::Cpu));
    let positions = positions_from_start(BATCH, SEQ, Device::Cpu);
    let mut step = || {
        opt.zero_grad();
        let logits = model.forward(&ids, &positions, &Attention::Causal, None);
        let loss = masked_cross_entropy(&logits, &ids, None);
        loss.backward();
        clip_grad_norm(model.parameters(), 1.0);
        opt.step(1e-4);
    };
    for _ in 0..2 {
        step();
    }
    let t = Instant::now();
    for _ in 0..steps {
        step();
    }
    ((BATCH * SEQ) as u64 * steps, t.elapsed().as_secs_f64())
}

fn gen(model: &Transformer, rounds: u64) -> (u64, f64) {
    let prompts: Vec<Vec<i64>> = (0..GEN_BATCH)
        .map(|_| {
            Vec::<i64>::try_from(Tensor::randint(8192, [PROMPT], (Kind::Int64, Device::Cpu)))
                .unwrap()
        })
        .collect();
    let params = SamplingParams {
        max_new_tokens: NEW_TOKENS,
        ..Default::default()
    };
    generate(model, &prompts, &params, 0, None).expect("warm-up");
    let t = Instant::now();
    for _ in 0..rounds {
        let out = generate(model, &prompts, &params, 0, None).expect("generate");
        assert!(out.iter().all(|s| s[0].token_ids.len() == NEW_TOKENS));
    }
    (
        (GEN_BATCH * NEW_TOKENS) as u64 * rounds,
        t.elapsed().as_secs_f64(),
    )
}
