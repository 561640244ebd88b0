//! `eval.mcq` end to end through the `zest` binary: two models on benchmarks in three published
//! layouts (MedQA, the Citrus unified schema, MMLU's header-less CSV); the report and the
//! predictions agree; the answers are those `zest model generate` gives for the same prompt;
//! a smoke run over the shared MedQA questions.

mod common;
use common::{repo, text, Project};
use std::path::Path;

fn shared(rel: &str) -> String {
    let p = repo().join("../shared").join(rel);
    assert!(p.exists(), "{} is missing", p.display());
    p.canonicalize().unwrap().display().to_string()
}

fn dag(eval: &str) -> String {
    format!(
        r#"name: eval
nodes:
  medqa:
    op: data.load
    with: {{paths: ["{medqa}"]}}
  unified:
    op: data.load
    with: {{paths: ["{unified}"]}}
  mmlu:
    op: data.load
    with: {{paths: ["{mmlu}"], csv: {{header: false}}}}
  text:
    op: data.sql
    in: {{m: medqa.data}}
    with: {{query: "SELECT question || ' Answer: ' || answer AS text FROM m"}}
  tok:
    op: train.tokenizer
    in: {{data: text.data}}
    with: {{vocab_size: 400}}
  a:
    op: model.init
    in: {{tokenizer: tok.tokenizer}}
    with: {{size: tiny, seed: 1}}
  b:
    op: model.init
    in: {{tokenizer: tok.tokenizer}}
    with: {{size: tiny, seed: 2}}
{eval}"#,
        medqa = repo().join("dags/data/medqa_sample.jsonl").display(),
        unified = shared("formats/mcq_unified.sample.jsonl"),
        mmlu = shared("formats/mmlu.sample.csv"),
    )
}

const EVAL: &str = r#"  eval:
    op: eval.mcq
    in: {models: [a.model, b.model], data: [medqa.data, unified.data, mmlu.data]}
    with: {names: [seed1, seed2], exams: [medqa, unified, mmlu], limit: 4, max_new_tokens: 12, batch_size: 3, bootstrap: 200, device: cpu}
"#;

fn rows(dir: &Path) -> Vec<serde_json::Value> {
    let o = std::process::Command::new(common::python())
        .args([
            "-c",
            "import sys, json, pyarrow.parquet as pq\nfor r in pq.read_table(sys.argv[1]).to_pylist(): print(json.dumps(r))",
        ])
        .arg(dir.join("data.parquet"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn two_models_on_three_layouts() {
    let p = Project::new(&dag(EVAL));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.output("eval", "report").join("report.json")).unwrap(),
    )
    .unwrap();
    // 4 MedQA + 4 unified (its own exam name) + 3 MMLU questions.
    assert_eq!(report["questions"], 11, "{report}");
    let models = report["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0]["model"], "seed1");
    let exams: Vec<&str> = models[0]["exams"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(exams, ["medqa", "medqa_train_small", "mmlu"]);
    let preds = rows(&p.output("eval", "predictions"));
    assert_eq!(preds.len(), 22);
    for m in models {
        let mine: Vec<&serde_json::Value> =
            preds.iter().filter(|r| r["model"] == m["model"]).collect();
        let right = mine.iter().filter(|r| r["correct"] == true).count();
        assert_eq!(m["overall"]["correct"], right, "{m}");
        let o = &m["overall"];
        assert!(
            o["ci_low"].as_f64() <= o["accuracy"].as_f64()
                && o["accuracy"].as_f64() <= o["ci_high"].as_f64()
        );
        let unanswered = mine.iter().filter(|r| r["predicted"].is_null()).count();
        assert_eq!(m["unanswered"], unanswered);
    }
    let md = std::fs::read_to_string(p.output("eval", "report").join("report.md")).unwrap();
    assert!(md.contains("| seed1 |") && md.contains("| seed2 |"), "{md}");

    // The answers are the model's greedy generation for the prompt through its chat template.
    let first = &preds[0];
    let o = p.zest(&[
        "model",
        "generate",
        "--model",
        p.output("a", "model").to_str().unwrap(),
        "--chat",
        "--prompt",
        first["prompt"].as_str().unwrap(),
        "--max-new-tokens",
        "12",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let g: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(g["text"], first["response"], "{g}");

    // Same inputs, same answers: a rerun is a cache hit; shuffled options are new questions.
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(p.node("eval")["status"], "cached");
    let q = Project::new(&dag(
        &EVAL.replace("device: cpu", "device: cpu, shuffle_seed: 3")
    ));
    let o = q.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let shuffled = rows(&q.output("eval", "predictions"));
    let moved = shuffled
        .iter()
        .zip(&preds)
        .filter(|(a, b)| a["answer"] != b["answer"])
        .count();
    assert!(moved > 0, "no answer letter moved under shuffle_seed");
}

#[test]
fn bad_configs_and_inputs_name_the_cause() {
    let p = Project::new(&dag(&EVAL.replace("names: [seed1, seed2]", "names: [only]")));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = p.node("eval")["error"].as_str().unwrap().to_string();
    assert!(e.contains("1 names for 2 models"), "{e}");
    // Text that is no benchmark: the fields it has are named.
    let p = Project::new(&dag(&EVAL.replace(
        "data: [medqa.data, unified.data, mmlu.data]",
        "data: [text.data]",
    )));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = p.node("eval")["error"].as_str().unwrap().to_string();
    assert!(
        e.contains("record 0") && e.contains("set `layout`") && e.contains("text"),
        "{e}"
    );
    // Validation: a bad value points at itself.
    let p = Project::new(&dag(&EVAL.replace("batch_size: 3", "batch_size: 0")));
    let o = p.zest(&["validate", "dag.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("batch_size"),
        "{}",
        text(&o)
    );
}

#[test]
fn smoke_over_the_shared_medqa_questions() {
    let eval = format!(
        r#"  corpus:
    op: data.load
    with: {{paths: ["{}"]}}
  eval:
    op: eval.mcq
    in: {{models: [a.model], data: [corpus.data]}}
    with: {{answer_format: letter, batch_size: 25, bootstrap: 500, device: cpu}}
"#,
        shared("corpus/medqa_train_small.jsonl")
    );
    let p = Project::new(&dag(&eval));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.output("eval", "report").join("report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["questions"], 50, "{report}");
    let m = &report["models"][0];
    assert_eq!(m["overall"]["n"], 50);
    // MedQA's steps are its subjects.
    assert!(
        m["subjects"].as_object().unwrap().contains_key("step1"),
        "{m}"
    );
    let log = p.log("eval");
    assert!(log.contains("50/50 questions"), "{log}");
}

#[test]
fn loglik_scores_are_transformers_log_likelihoods() {
    let eval = r#"  eval:
    op: eval.mcq
    in: {models: [a.model], data: [medqa.data]}
    with: {answer_format: loglik, limit: 3, batch_size: 5, bootstrap: 100, device: cpu}
"#;
    let p = Project::new(&dag(eval));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.output("eval", "report").join("report.json")).unwrap(),
    )
    .unwrap();
    let m = &report["models"][0];
    assert!(m["format_adherence"].is_null(), "{m}");
    assert_eq!(m["unanswered"], 0, "{m}");
    let preds = rows(&p.output("eval", "predictions"));
    assert_eq!(preds.len(), 3);
    // Each option's summed log-probability after the context, per byte, as transformers
    // computes it on the same model directory; the prediction is the largest.
    let medqa: Vec<serde_json::Value> =
        std::fs::read_to_string(repo().join("dags/data/medqa_sample.jsonl"))
            .unwrap()
            .lines()
            .take(3)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let script = r#"
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, questions = sys.argv[1], json.loads(sys.argv[2])
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
for q in questions:
    ctx = tok("Question: " + q["question"].strip() + "\nAnswer:")["input_ids"]
    scores = []
    for letter in sorted(q["options"]):
        cont_text = " " + q["options"][letter].strip()
        cont = tok(cont_text, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logp = model(ids).logits[0, :-1].float().log_softmax(-1)
        picked = logp[len(ctx) - 1:, :].gather(-1, torch.tensor(cont).unsqueeze(-1))
        scores.append(picked.sum().item() / len(cont_text.encode()))
    print(json.dumps(scores))
"#;
    let o = std::process::Command::new(common::python())
        .args(["-c", script])
        .arg(p.output("a", "model"))
        .arg(serde_json::to_string(&medqa).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let reference: Vec<Vec<f64>> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (row, want) in preds.iter().zip(&reference) {
        let got: Vec<f64> = row["response"]
            .as_str()
            .unwrap()
            .split(", ")
            .map(|kv| kv.split_once(": ").unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(got.len(), want.len(), "{row}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 2e-4, "zest {got:?}, transformers {want:?}");
        }
        let best = (0..want.len())
            .max_by(|&i, &j| want[i].total_cmp(&want[j]))
            .unwrap();
        assert_eq!(
            row["predicted"].as_str().unwrap(),
            ((b'A' + best as u8) as char).to_string(),
            "{row}"
        );
    }
}
