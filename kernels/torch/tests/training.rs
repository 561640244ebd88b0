//! Training kernels: AdamW, schedule and clipping step for step against PyTorch's; gradient
//! accumulation; checkpoint and resume of model and optimizer state; sequence packing; seeded
//! sampling.

mod common;

use common::*;
use serde_json::json;
use zest_kernels::safetensors;
use zest_kernels::text_tokenizer::TextTokenizer;
use zest_kernels_torch::checkpoint::{self, SaveOptions};
use zest_kernels_torch::generate::{self, SamplingParams};
use zest_kernels_torch::loss::{masked_cross_entropy, token_logps, IGNORE};
use zest_kernels_torch::mask::{positions_from_start, Attention};
use zest_kernels_torch::optim::{clip_grad_norm, AdamW, AdamWConfig};
use zest_kernels_torch::packing::pack;
use zest_kernels_torch::schedule::{Decay, Schedule};
use zest_kernels_torch::tch::{Device, Kind, Tensor};
use zest_kernels_torch::Transformer;

const DOCS: [&str; 4] = [
    "The patient presented with fever and cough for three days.",
    "Metformin is a first-line drug for type 2 diabetes.",
    "Blood pressure above 140/90 mmHg is hypertension.",
    "Wash hands.",
];

/// Right-padded ids, mask and labels (the whole document is scored).
/// Rows of token ids.
type Rows = Vec<Vec<i64>>;

fn batch(tok: &TextTokenizer, docs: &[&str]) -> (Rows, Rows, Rows) {
    let pad = tok.special_id("pad_token").unwrap();
    let enc: Vec<Vec<i64>> = docs.iter().map(|d| tok.encode(d, true).unwrap()).collect();
    let w = enc.iter().map(Vec::len).max().unwrap();
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    let mut labels = Vec::new();
    for e in &enc {
        let mut r = e.clone();
        r.resize(w, pad);
        ids.push(r);
        let mut m = vec![1; e.len()];
        m.resize(w, 0);
        mask.push(m);
        let mut l = e.clone();
        l.resize(w, IGNORE);
        labels.push(l);
    }
    (ids, mask, labels)
}

fn t2(rows: &[Vec<i64>]) -> Tensor {
    Tensor::from_slice(&rows.concat()).view([rows.len() as i64, -1])
}

fn loss_on(
    model: &Transformer,
    ids: &Tensor,
    mask: &Tensor,
    labels: &Tensor,
    n: Option<i64>,
) -> Tensor {
    let (b, s) = ids.size2().unwrap();
    let logits = model.forward(
        ids,
        &positions_from_start(b, s, model.device()),
        &Attention::Padded(mask),
        None,
    );
    masked_cross_entropy(&logits, labels, n)
}

fn train_steps(
    model: &Transformer,
    opt: &mut AdamW,
    sched: &Schedule,
    (ids, mask, labels): (&Tensor, &Tensor, &Tensor),
    steps: std::ops::Range<u64>,
) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for step in steps {
        opt.zero_grad();
        let loss = loss_on(model, ids, mask, labels, None);
        loss.backward();
        let norm = clip_grad_norm(model.parameters(), 1.0);
        opt.step(sched.lr_at(step));
        out.push((loss.double_value(&[]), norm));
    }
    out
}

fn check_adamw(arch: &str, decay: Decay, cuda: bool) {
    let dir = tiny(arch);
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let (ids, mask, labels) = batch(&tok, &DOCS);
    let input = write_json(
        &format!("train-{arch}.json"),
        &json!({"input_ids": ids, "attention_mask": mask, "labels": labels}),
    );
    let sched_name = match decay {
        Decay::Cosine => "cosine",
        _ => "linear",
    };
    let out = scratch().join(format!("train-{arch}-{sched_name}.safetensors"));
    run_py(
        "ref_train.py",
        &[
            "--model",
            dir.to_str().unwrap(),
            "--batch",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "6",
            "--lr",
            "3e-3",
            "--weight-decay",
            "0.1",
            "--warmup",
            "2",
            "--schedule",
            sched_name,
            "--max-grad-norm",
            "1.0",
        ],
    );
    let model = checkpoint::load(&dir, device(cuda), Some(Kind::Float)).unwrap();
    model.set_trainable(true);
    let mut opt = AdamW::new(
        model.parameters(),
        AdamWConfig {
            weight_decay: 0.1,
            ..Default::default()
        },
    );
    let sched = Schedule {
        lr: 3e-3,
        warmup_steps: 2,
        total_steps: 6,
        decay,
    };
    let (i, m, l) = (t2(&ids), t2(&mask), t2(&labels));
    let ours = train_steps(&model, &mut opt, &sched, (&i, &m, &l), 0..6);
    let h = safetensors::read_header(&out).unwrap();
    let f64s = |name: &str| -> Vec<f64> {
        let b = safetensors::read_tensor_bytes(&out, &h, name).unwrap();
        b.chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let (losses, norms) = (f64s("losses"), f64s("grad_norms"));
    for (k, ((ol, on), (tl, tn))) in ours.iter().zip(losses.iter().zip(&norms)).enumerate() {
        assert!(
            (ol - tl).abs() < 1e-5,
            "{arch} step {k}: loss zest {ol} torch {tl}"
        );
        assert!(
            (on - tn).abs() < 1e-4 * tn.max(1.0),
            "{arch} step {k}: grad norm zest {on} torch {tn}"
        );
    }
    assert!(losses[5] < losses[0], "training lowers the loss");
    let mut worst = 0f64;
    for (name, p) in model.parameters() {
        // The key bias adds the same q·b to every score of a query, which softmax ignores: its
        // true gradient is zero and both sides hold only rounding noise (~1e-9), which Adam
        // normalises into steps of ±lr. Nothing to compare there.
        if name.ends_with("k_proj.bias") {
            continue;
        }
        let b = safetensors::read_tensor_bytes(&out, &h, name).unwrap();
        let theirs = Tensor::from_data_size(&b, &p.size(), Kind::Float);
        let d = (p.to_device(Device::Cpu) - theirs)
            .abs()
            .max()
            .double_value(&[]);
        worst = worst.max(d);
    }
    eprintln!("{arch} {sched_name}: max |Δparam| after 6 AdamW steps = {worst:e}");
    assert!(
        worst < 1e-5,
        "{arch}: parameters drift from PyTorch's AdamW by {worst}"
    );
}

#[test]
fn adamw_linear_schedule_and_clipping_match_pytorch() {
    check_adamw("llama", Decay::Linear, false);
}

#[test]
fn adamw_cosine_schedule_matches_pytorch_on_tied_weights() {
    check_adamw("qwen2", Decay::Cosine, false);
}

#[test]
#[ignore = "needs a CUDA device"]
fn adamw_matches_pytorch_cuda() {
    check_adamw("llama", Decay::Linear, true);
}

#[test]
fn gradient_accumulation_equals_the_full_batch() {
    let dir = tiny("llama");
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let model = checkpoint::load(&dir, Device::Cpu, Some(Kind::Float)).unwrap();
    model.set_trainable(true);
    let (ids, mask, labels) = batch(&tok, &DOCS);
    let full_grads = |model: &Transformer| -> Vec<Tensor> {
        model
            .parameters()
            .iter()
            .map(|(_, p)| p.grad().copy())
            .collect()
    };
    let mut opt = AdamW::new(model.parameters(), AdamWConfig::default());
    opt.zero_grad();
    loss_on(&model, &t2(&ids), &t2(&mask), &t2(&labels), None).backward();
    let full = full_grads(&model);
    // Two micro-batches, each normalised by the scored tokens of the whole batch.
    // The first token of a row is never a target.
    let scored = labels
        .iter()
        .map(|r| r[1..].iter().filter(|&&l| l != IGNORE).count() as i64)
        .sum::<i64>();
    opt.zero_grad();
    for range in [0..2, 2..4] {
        let (i, m, l) = (&ids[range.clone()], &mask[range.clone()], &labels[range]);
        loss_on(&model, &t2(i), &t2(m), &t2(l), Some(scored)).backward();
    }
    let accumulated = full_grads(&model);
    for ((name, _), (a, b)) in model.parameters().iter().zip(full.iter().zip(&accumulated)) {
        let d = (a - b).abs().max().double_value(&[]);
        assert!(d < 1e-6, "{name}: accumulated gradient differs by {d}");
    }
}

#[test]
fn training_resumes_exactly_from_a_checkpoint() {
    let dir = tiny("qwen2");
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let (ids, mask, labels) = batch(&tok, &DOCS);
    let (i, m, l) = (t2(&ids), t2(&mask), t2(&labels));
    let sched = Schedule {
        lr: 2e-3,
        warmup_steps: 1,
        total_steps: 6,
        decay: Decay::Cosine,
    };
    let cfg = AdamWConfig {
        weight_decay: 0.01,
        ..Default::default()
    };
    let straight = checkpoint::load(&dir, Device::Cpu, Some(Kind::Float)).unwrap();
    straight.set_trainable(true);
    let mut opt = AdamW::new(straight.parameters(), cfg);
    train_steps(&straight, &mut opt, &sched, (&i, &m, &l), 0..6);

    let first = checkpoint::load(&dir, Device::Cpu, Some(Kind::Float)).unwrap();
    first.set_trainable(true);
    let mut opt = AdamW::new(first.parameters(), cfg);
    train_steps(&first, &mut opt, &sched, (&i, &m, &l), 0..3);
    let ckpt = scratch().join("resume-ckpt");
    checkpoint::save(&first, &ckpt, &SaveOptions::default()).unwrap();
    opt.save(&ckpt.join("optimizer.safetensors")).unwrap();
    drop((first, opt));

    let resumed = checkpoint::load(&ckpt, Device::Cpu, Some(Kind::Float)).unwrap();
    resumed.set_trainable(true);
    let mut opt = AdamW::new(resumed.parameters(), cfg);
    opt.load(&ckpt.join("optimizer.safetensors")).unwrap();
    assert_eq!(opt.steps(), 3);
    train_steps(&resumed, &mut opt, &sched, (&i, &m, &l), 3..6);
    for ((name, a), (_, b)) in straight.parameters().iter().zip(resumed.parameters()) {
        assert!(a.equal(b), "{name} differs after resuming");
    }
}

#[test]
fn packed_sequences_score_as_if_alone() {
    let dir = tiny("llama");
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let model = checkpoint::load(&dir, Device::Cpu, Some(Kind::Float)).unwrap();
    let seqs: Vec<(Vec<i64>, Vec<i64>)> = DOCS
        .iter()
        .map(|d| {
            let e = tok.encode(d, true).unwrap();
            (e.clone(), e)
        })
        .collect();
    let width = seqs.iter().map(|s| s.0.len()).sum::<usize>() / 2 + 4;
    let rows = pack(&seqs, width, 0);
    assert!(rows.len() < seqs.len(), "something was packed together");
    let alone: f64 = seqs
        .iter()
        .map(|(ids, labels)| {
            let ids = Tensor::from_slice(ids).view([1, -1]);
            let labels = Tensor::from_slice(labels).view([1, -1]);
            let s = ids.size()[1];
            let logits = model.forward(
                &ids,
                &positions_from_start(1, s, Device::Cpu),
                &Attention::Causal,
                None,
            );
            let (lp, m) = token_logps(&logits, &labels);
            (lp * m.to_kind(Kind::Float))
                .sum(Kind::Double)
                .double_value(&[])
        })
        .sum();
    let ids = t2(&rows.iter().map(|r| r.input_ids.clone()).collect::<Vec<_>>());
    let labels = t2(&rows.iter().map(|r| r.labels.clone()).collect::<Vec<_>>());
    let pos = t2(&rows.iter().map(|r| r.positions.clone()).collect::<Vec<_>>());
    let seg = t2(&rows.iter().map(|r| r.segments.clone()).collect::<Vec<_>>());
    let logits = model.forward(&ids, &pos, &Attention::Packed(&seg), None);
    let (lp, m) = token_logps(&logits, &labels);
    let packed = (lp * m.to_kind(Kind::Float))
        .sum(Kind::Double)
        .double_value(&[]);
    assert!(
        (alone - packed).abs() < 1e-3,
        "alone {alone} packed {packed}"
    );
    // Without the segment mask, attention leaks across sequences and the scores change.
    let leaky = model.forward(&ids, &pos, &Attention::Causal, None);
    let (lp, m) = token_logps(&leaky, &labels);
    let leaked = (lp * m.to_kind(Kind::Float))
        .sum(Kind::Double)
        .double_value(&[]);
    assert!((alone - leaked).abs() > 1e-2);
}

#[test]
fn sampling_is_seeded_and_respects_top_k_n_and_stop_strings() {
    let dir = tiny("llama");
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let model = checkpoint::load(&dir, Device::Cpu, Some(Kind::Float)).unwrap();
    let prompts: Vec<Vec<i64>> = DOCS[..2]
        .iter()
        .map(|d| tok.encode(d, true).unwrap())
        .collect();
    let sampled = |seed: u64, top_k: usize| {
        let p = SamplingParams {
            max_new_tokens: 12,
            temperature: 1.0,
            top_k,
            top_p: 0.9,
            seed,
            n: 3,
            ..Default::default()
        };
        generate::generate(&model, &prompts, &p, 0, None).unwrap()
    };
    let a = sampled(7, 0);
    assert_eq!(a.len(), 2);
    assert!(a
        .iter()
        .all(|s| s.len() == 3 && s.iter().all(|x| x.token_ids.len() == 12)));
    assert_eq!(a, sampled(7, 0), "same seed, same samples");
    assert_ne!(a, sampled(8, 0), "another seed, other samples");
    assert!(a[0][0] != a[0][1] || a[0][1] != a[0][2], "n samples differ");
    // top_k = 1 is greedy.
    let greedy = generate::generate(
        &model,
        &prompts,
        &SamplingParams {
            max_new_tokens: 12,
            n: 3,
            ..Default::default()
        },
        0,
        None,
    )
    .unwrap();
    assert_eq!(sampled(3, 1), greedy);
    // A stop string ends the sample as soon as the text contains it.
    let full = tok.decode(&greedy[0][0].token_ids, true).unwrap();
    let stop: String = full.chars().skip(3).take(2).collect();
    let decode = |ids: &[i64]| tok.decode(ids, true).unwrap();
    let p = SamplingParams {
        max_new_tokens: 12,
        stop_strings: vec![stop.clone()],
        ..Default::default()
    };
    let s = generate::generate(&model, &prompts[..1], &p, 0, Some(&decode)).unwrap();
    assert_eq!(s[0][0].finish, generate::Finish::Stop);
    assert!(decode(&s[0][0].token_ids).contains(&stop));
    assert!(s[0][0].token_ids.len() < 12);
}

#[test]
fn a_prompts_samples_do_not_depend_on_its_batch() {
    let dir = tiny("llama");
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let model = checkpoint::load(&dir, Device::Cpu, Some(Kind::Float)).unwrap();
    let prompts: Vec<Vec<i64>> = DOCS[..3]
        .iter()
        .map(|d| tok.encode(d, true).unwrap())
        .collect();
    let p = SamplingParams {
        max_new_tokens: 10,
        temperature: 0.9,
        top_p: 0.95,
        n: 2,
        ..Default::default()
    };
    let mut streamed: Vec<Vec<i64>> = vec![vec![]; 6];
    let mut on = |prompt: usize, sample: usize, t: i64| streamed[prompt * 2 + sample].push(t);
    let batch =
        generate::generate_seeded(&model, &prompts, &[11, 12, 13], &p, 0, None, Some(&mut on))
            .unwrap();
    for (i, prompt) in prompts.iter().enumerate() {
        let alone = generate::generate_seeded(
            &model,
            std::slice::from_ref(prompt),
            &[11 + i as u64],
            &p,
            0,
            None,
            None,
        )
        .unwrap();
        assert_eq!(alone[0], batch[i], "prompt {i} alone and in the batch");
        for s in 0..2 {
            assert_eq!(streamed[i * 2 + s], batch[i][s].token_ids);
        }
    }
}

#[test]
fn top_p_keeps_the_smallest_set_reaching_p() {
    let logits = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 3.0])
        .log_softmax(-1, Kind::Float)
        .view([1, 4]);
    // probabilities ≈ [0.032, 0.087, 0.237, 0.644]
    let p = SamplingParams {
        temperature: 1.0,
        top_p: 0.8,
        ..Default::default()
    };
    let probs = Vec::<f32>::try_from(generate::sampling_probs(&logits, &p).view([-1])).unwrap();
    assert_eq!(probs[0], 0.0);
    assert_eq!(probs[1], 0.0);
    assert!((probs[2] - 0.237 / 0.881).abs() < 1e-2 && probs[3] > 0.7);
}
