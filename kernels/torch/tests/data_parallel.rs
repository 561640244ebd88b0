//! Data-parallel training over libtorch's c10d (Gloo, on the CPU): two processes, each with
//! half of every batch, all-reducing their gradients, train exactly as one process does over
//! the combined batch — the gradients of the first step and the model after every step agree
//! to 1e-6.
//!
//! The test runs itself: the parent starts two copies of this test binary as ranks 0 and 1
//! (torchrun's variables: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`),
//! which write what they computed to a file each, and compares them with its own
//! single-process run.

use std::path::Path;
use std::time::Duration;
use zest_kernels::model_config::ModelConfig;
use zest_kernels_torch::dist::{Launch, ProcessGroup};
use zest_kernels_torch::loss::{masked_cross_entropy, IGNORE};
use zest_kernels_torch::mask::{positions_from_start, Attention};
use zest_kernels_torch::optim::{clip_grad_norm, AdamW, AdamWConfig};
use zest_kernels_torch::tch::{self, Device, Kind, Tensor};
use zest_kernels_torch::Transformer;

const STEPS: usize = 4;
const BATCH: usize = 8;
const SEQ: usize = 12;
const VOCAB: i64 = 96;
/// AdamW's first steps move every weight by about the learning rate whatever the gradient's
/// size, so float32 rounding in a near-zero gradient shows in the weights in proportion to it.
const LR: f64 = 1e-3;

fn config() -> ModelConfig {
    ModelConfig::from_json(&serde_json::json!({
        "model_type": "llama",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": VOCAB,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": false,
        "initializer_range": 0.05,
    }))
    .unwrap()
}

/// Step `step`'s batch: token ids and labels, some labels ignored so that the two halves
/// score different numbers of tokens.
fn batch(step: usize) -> (Vec<i64>, Vec<i64>) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ step as u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let ids: Vec<i64> = (0..BATCH * SEQ)
        .map(|_| (next() % VOCAB as u64) as i64)
        .collect();
    let labels = ids
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let (row, col) = (i / SEQ, i % SEQ);
            // Row r scores its last SEQ - r tokens: rows differ in length.
            if col < row.min(SEQ - 2) {
                IGNORE
            } else {
                t
            }
        })
        .collect();
    (ids, labels)
}

/// What a run computed: the first step's gradients, then the parameters after each step.
struct Trace {
    grads: Vec<Tensor>,
    params: Vec<Vec<Tensor>>,
    losses: Vec<f64>,
}

/// Trains `STEPS` steps over rows `rows` of each batch, all-reducing gradients through `pg`
/// when there is one.
fn train(mut pg: Option<&mut ProcessGroup>, rows: std::ops::Range<usize>) -> Trace {
    tch::manual_seed(11);
    let model = Transformer::new(config(), Device::Cpu, Kind::Float);
    model.set_trainable(true);
    if let Some(pg) = pg.as_deref_mut() {
        // Every rank starts from rank 0's weights.
        let params: Vec<&Tensor> = model.parameters().iter().map(|(_, t)| t).collect();
        tch::no_grad(|| pg.broadcast(&params, 0)).unwrap();
    }
    let mut opt = AdamW::new(
        model.parameters(),
        AdamWConfig {
            weight_decay: 0.1,
            ..Default::default()
        },
    );
    let mut trace = Trace {
        grads: vec![],
        params: vec![],
        losses: vec![],
    };
    for step in 0..STEPS {
        let (ids, labels) = batch(step);
        let all = Tensor::from_slice(&labels).view([BATCH as i64, SEQ as i64]);
        // Every rank divides by the whole batch's scored tokens (shifted by one, as the
        // loss scores them), so that the summed gradients are the whole batch's mean.
        let scored = all
            .narrow(1, 1, SEQ as i64 - 1)
            .ne(IGNORE)
            .sum(Kind::Int64)
            .int64_value(&[]);
        let take = |v: &[i64]| -> Tensor {
            Tensor::from_slice(&v[rows.start * SEQ..rows.end * SEQ])
                .view([rows.len() as i64, SEQ as i64])
        };
        let (ids, labels) = (take(&ids), take(&labels));
        opt.zero_grad();
        let (b, s) = ids.size2().unwrap();
        let logits = model.forward(
            &ids,
            &positions_from_start(b, s, Device::Cpu),
            &Attention::Causal,
            None,
        );
        let loss = masked_cross_entropy(&logits, &labels, Some(scored));
        loss.backward();
        let grads: Vec<Tensor> = model.parameters().iter().map(|(_, p)| p.grad()).collect();
        let loss_sum = loss.detach().copy();
        if let Some(pg) = pg.as_deref_mut() {
            let refs: Vec<&Tensor> = grads.iter().collect();
            pg.all_reduce_sum(&refs).unwrap();
            pg.all_reduce_sum(&[&loss_sum]).unwrap();
        }
        if step == 0 {
            trace.grads = grads.iter().map(|g| g.copy()).collect();
        }
        clip_grad_norm(model.parameters(), 1.0);
        opt.step(LR);
        trace.losses.push(loss_sum.double_value(&[]));
        trace.params.push(
            model
                .parameters()
                .iter()
                .map(|(_, p)| p.detach().copy())
                .collect(),
        );
    }
    trace
}

fn save(trace: &Trace, path: &Path) {
    let mut named: Vec<(String, Tensor)> = trace
        .grads
        .iter()
        .enumerate()
        .map(|(i, g)| (format!("grad.{i}"), g.shallow_clone()))
        .collect();
    for (s, ps) in trace.params.iter().enumerate() {
        for (i, p) in ps.iter().enumerate() {
            named.push((format!("param.{s}.{i}"), p.shallow_clone()));
        }
    }
    named.push(("losses".into(), Tensor::from_slice(&trace.losses)));
    Tensor::save_multi(&named, path).unwrap();
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn two_gloo_ranks_train_like_one_process_over_the_combined_batch() {
    // A rank, started by the parent below.
    if let Ok(out) = std::env::var("ZEST_DP_TEST_OUT") {
        let launch = Launch::from_env().unwrap().expect("WORLD_SIZE is set");
        let mut pg = ProcessGroup::gloo(&launch, Duration::from_secs(120)).unwrap();
        let half = BATCH / launch.world_size;
        let rows = launch.rank * half..(launch.rank + 1) * half;
        let trace = train(Some(&mut pg), rows);
        pg.barrier().unwrap();
        save(&trace, Path::new(&out));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = 21000 + (std::process::id() % 4000) as u16;
    let exe = std::env::current_exe().unwrap();
    let ranks: Vec<_> = (0..2)
        .map(|rank| {
            std::process::Command::new(&exe)
                .args([
                    "two_gloo_ranks_train_like_one_process_over_the_combined_batch",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(
                    "ZEST_DP_TEST_OUT",
                    dir.path().join(format!("rank{rank}.pt")),
                )
                .env("RANK", rank.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("GLOO_SOCKET_IFNAME", "lo")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let one = train(None, 0..BATCH);
    for (rank, child) in ranks.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "rank {rank}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for rank in 0..2 {
        let got: std::collections::HashMap<String, Tensor> =
            Tensor::load_multi(dir.path().join(format!("rank{rank}.pt")))
                .unwrap()
                .into_iter()
                .collect();
        let mut worst_grad: f64 = 0.0;
        for (i, g) in one.grads.iter().enumerate() {
            worst_grad = worst_grad.max(max_diff(g, &got[&format!("grad.{i}")]));
        }
        assert!(
            worst_grad <= 1e-6,
            "rank {rank}: gradients differ by {worst_grad:e}"
        );
        println!("rank {rank}: the first step's gradients agree within {worst_grad:.1e}");
        for (s, ps) in one.params.iter().enumerate() {
            let mut worst: f64 = 0.0;
            for (i, p) in ps.iter().enumerate() {
                worst = worst.max(max_diff(p, &got[&format!("param.{s}.{i}")]));
            }
            assert!(
                worst <= 1e-6,
                "rank {rank}: the model after step {} differs by {worst:e}",
                s + 1
            );
            println!(
                "rank {rank}: the model after step {} agrees within {worst:.1e}",
                s + 1
            );
        }
        let losses = Vec::<f64>::try_from(&got["losses"]).unwrap();
        for (a, b) in one.losses.iter().zip(&losses) {
            assert!(
                (a - b).abs() <= 1e-6,
                "losses {:?} vs {losses:?}",
                one.losses
            );
        }
    }
}
