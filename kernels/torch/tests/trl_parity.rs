//! Parity with TRL: SimPO, CPO and SimPO+CPO losses and every metric of TRL's CPOTrainer on
//! one batch of preference pairs, and the SFT completion-only loss of TRL's SFTTrainer, on the
//! tiny transformers-saved models.

mod common;

use common::*;
use serde_json::json;
use zest_kernels::text_tokenizer::TextTokenizer;
use zest_kernels_torch::checkpoint;
use zest_kernels_torch::loss::{
    self, masked_cross_entropy, preference_batch, PreferenceConfig, PreferenceKind, IGNORE,
};
use zest_kernels_torch::mask::{positions_from_start, Attention};
use zest_kernels_torch::tch::{Kind, Tensor};

const PAIRS: [(&str, &str, &str); 3] = [
    (
        "Question: first-line drug for uncomplicated hypertension? Answer:",
        " A thiazide diuretic.",
        " Antibiotics for two weeks, then rest and plenty of fluids.",
    ),
    (
        "What does HbA1c measure?",
        " Average blood glucose over about three months.",
        " Liver function.",
    ),
    ("Is fever a symptom of infection?", " Yes, often.", " No."),
];

/// Right-pads `rows` to their longest.
fn pad(rows: &[Vec<i64>], value: i64) -> Vec<Vec<i64>> {
    let w = rows.iter().map(Vec::len).max().unwrap();
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            r.resize(w, value);
            r
        })
        .collect()
}

struct Side {
    ids: Vec<Vec<i64>>,
    mask: Vec<Vec<i64>>,
    labels: Vec<Vec<i64>>,
}

fn side(tok: &TextTokenizer, pick: fn(&(&str, &str, &str)) -> String, pad_id: i64) -> Side {
    let eos = tok.special_id("eos_token").unwrap();
    let (mut ids, mut mask, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for p in &PAIRS {
        let prompt = tok.encode(p.0, true).unwrap();
        let mut answer = tok.encode(&pick(p), false).unwrap();
        answer.push(eos);
        let mut row = prompt.clone();
        row.extend(&answer);
        let mut lab = vec![IGNORE; prompt.len()];
        lab.extend(&answer);
        mask.push(vec![1; row.len()]);
        ids.push(row);
        labels.push(lab);
    }
    Side {
        ids: pad(&ids, pad_id),
        mask: pad(&mask, 0),
        labels: pad(&labels, IGNORE),
    }
}

fn tensor2(rows: &[Vec<i64>]) -> Tensor {
    Tensor::from_slice(&rows.concat()).view([rows.len() as i64, -1])
}

/// Chosen rows then rejected rows, right-padded to one width (as TRL concatenates them).
fn concat(c: &[Vec<i64>], r: &[Vec<i64>], value: i64) -> Tensor {
    let mut all: Vec<Vec<i64>> = c.to_vec();
    all.extend(r.iter().cloned());
    tensor2(&pad(&all, value))
}

fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-5 * theirs.abs().max(1.0)
}

fn check_trl(arch: &str, cuda: bool) {
    let dir = tiny(arch);
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let pad_id = tok.special_id("pad_token").unwrap();
    let chosen = side(&tok, |p| p.1.to_string(), pad_id);
    let rejected = side(&tok, |p| p.2.to_string(), pad_id);
    // SFT rows: the chosen conversations, completion = the answer.
    let completion: Vec<Vec<i64>> = chosen
        .labels
        .iter()
        .map(|r| r.iter().map(|&l| i64::from(l != IGNORE)).collect())
        .collect();
    let batch = json!({
        "pref": {
            "chosen_input_ids": chosen.ids, "chosen_attention_mask": chosen.mask,
            "chosen_labels": chosen.labels, "rejected_input_ids": rejected.ids,
            "rejected_attention_mask": rejected.mask, "rejected_labels": rejected.labels,
        },
        "sft": {"input_ids": chosen.ids, "attention_mask": chosen.mask, "completion_mask": completion},
    });
    let input = write_json(&format!("trl-batch-{arch}.json"), &batch);
    let out = scratch().join(format!("trl-out-{arch}.json"));
    run_py(
        "ref_trl.py",
        &[
            "--model",
            dir.to_str().unwrap(),
            "--batch",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let reference = read_json(&out);

    let dev = device(cuda);
    let model = checkpoint::load(&dir, dev, Some(Kind::Float)).unwrap();
    let ids = concat(&chosen.ids, &rejected.ids, pad_id);
    let mask = concat(&chosen.mask, &rejected.mask, 0);
    let labels = concat(&chosen.labels, &rejected.labels, IGNORE);
    let settings = [
        ("simpo", PreferenceKind::Simpo, 2.0, 0.5, 0.0),
        ("cpo", PreferenceKind::Cpo, 0.1, 0.0, 1.0),
        ("simpo_cpo", PreferenceKind::Simpo, 2.0, 0.5, 0.5),
    ];
    let mut failures = Vec::new();
    for (name, kind, beta, gamma, alpha) in settings {
        let config = PreferenceConfig {
            kind,
            beta,
            simpo_gamma: gamma,
            cpo_alpha: alpha,
            label_smoothing: 0.0,
        };
        let (loss_t, metrics) = zest_kernels_torch::tch::no_grad(|| {
            preference_batch(&model, &config, &ids, &mask, &labels, None)
        })
        .unwrap();
        let theirs = &reference[name];
        let mut ours = metrics.clone();
        ours.insert("loss".into(), loss_t.double_value(&[]));
        let keys: Vec<&String> = theirs.as_object().unwrap().keys().collect();
        assert!(keys.len() >= 10, "{name}: TRL reported {keys:?}");
        for key in keys {
            let t = theirs[key].as_f64().unwrap();
            let o = *ours
                .get(key.as_str())
                .unwrap_or_else(|| panic!("{name}: zest has no metric {key}"));
            eprintln!("{arch} {name} {key}: zest {o:.8} trl {t:.8}");
            if !close(o, t) {
                failures.push(format!("{name} {key}: zest {o} trl {t}"));
            }
        }
    }
    // SFT: TRL's completion-only loss is the masked cross-entropy over the completion tokens.
    let sft_ids = tensor2(&chosen.ids);
    let sft_labels = tensor2(&chosen.labels);
    let (b, s) = sft_ids.size2().unwrap();
    let logits = zest_kernels_torch::tch::no_grad(|| {
        model.forward(
            &sft_ids,
            &positions_from_start(b, s, dev),
            &Attention::Padded(&tensor2(&chosen.mask)),
            None,
        )
    });
    let ours = masked_cross_entropy(&logits, &sft_labels, None).double_value(&[]);
    let theirs = reference["sft"]["sft_loss"].as_f64().unwrap();
    eprintln!("{arch} sft_loss: zest {ours:.8} trl {theirs:.8}");
    if !close(ours, theirs) {
        failures.push(format!("sft_loss: zest {ours} trl {theirs}"));
    }
    assert!(failures.is_empty(), "{arch}: {failures:#?}");
}

#[test]
fn llama_preference_and_sft_losses_match_trl() {
    check_trl("llama", false);
}

#[test]
fn qwen2_preference_and_sft_losses_match_trl() {
    check_trl("qwen2", false);
}

#[test]
#[ignore = "needs a CUDA device"]
fn preference_and_sft_losses_match_trl_cuda() {
    check_trl("llama", true);
}

#[test]
fn dpo_loss_follows_trl_definition() {
    // DPO: -log σ(β((πc − πr) − (ρc − ρr))), rewards β(π − ρ), checked on numbers by hand.
    let pc = Tensor::from_slice(&[-10.0f32, -4.0]);
    let pr = Tensor::from_slice(&[-12.0f32, -3.0]);
    let rc = Tensor::from_slice(&[-11.0f32, -4.0]);
    let rr = Tensor::from_slice(&[-11.0f32, -4.0]);
    let config = PreferenceConfig {
        kind: PreferenceKind::Dpo,
        beta: 0.5,
        simpo_gamma: 0.0,
        cpo_alpha: 0.0,
        label_smoothing: 0.0,
    };
    let (l, m) = loss::preference_loss(
        &config,
        &loss::PreferenceInputs {
            chosen_logps: &pc,
            rejected_logps: &pr,
            reference: Some((&rc, &rr)),
            nll: None,
        },
    )
    .unwrap();
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let want = (-(sig(0.5 * 2.0)).ln() - (sig(-0.5)).ln()) / 2.0;
    assert!((l.double_value(&[]) - want).abs() < 1e-6);
    assert!((m["rewards/chosen"] - (0.5 * 1.0 + 0.5 * 0.0) / 2.0).abs() < 1e-6);
    assert!((m["rewards/margins"] - (0.5 * (1.0 - -1.0) + 0.5 * (0.0 - 1.0)) / 2.0).abs() < 1e-6);
    assert_eq!(m["rewards/accuracies"], 0.5);
}
