//! Data-parallel training nodes end to end through the `zest` binary: `train.sft`,
//! `train.preference` and `train.cpt` with `data_parallel: {processes: 2}` run as two Gloo
//! ranks on the CPU and train the same model as one process over the combined batch (twice
//! the gradient accumulation; for `train.cpt`, whose bandit draws a source per micro-batch,
//! twice the micro-batch); a rank killed mid-training fails the node, naming the rank, and leaves no
//! process behind.

mod common;
use common::{repo, text, tiny_model_dag, Project};
use std::path::Path;
use std::time::{Duration, Instant};
use zest_kernels_torch::checkpoint;
use zest_kernels_torch::tch::{Device, Kind};

/// SFT records (Alpaca, from the PubMedQA sample) and preference pairs (the MedQA answer
/// against another option), written as JSONL into `dir`.
fn write_records(dir: &Path) {
    let read = |f: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(repo().join("dags/data").join(f))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let short = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let sft: String = read("pubmedqa_sample.jsonl")
        .iter()
        .take(32)
        .map(|r| {
            let row = serde_json::json!({"instruction": r["question"], "input": "",
                "output": short(r["long_answer"].as_str().unwrap(), 240)});
            format!("{row}\n")
        })
        .collect();
    std::fs::write(dir.join("sft.jsonl"), sft).unwrap();
    let pairs: String = read("medqa_sample.jsonl")
        .iter()
        .take(16)
        .map(|r| {
            let right = r["answer_idx"].as_str().unwrap();
            let wrong = ["A", "B", "C", "D"]
                .into_iter()
                .find(|k| *k != right)
                .unwrap();
            let opt = |k: &str| r["options"][k].as_str().unwrap_or("").to_string();
            let q = short(r["question"].as_str().unwrap(), 300);
            let turn = |a: String| {
                serde_json::json!([{"role": "user", "content": q}, {"role": "assistant", "content": a}])
            };
            let row = serde_json::json!({"chosen": turn(opt(right)), "rejected": turn(opt(wrong))});
            format!("{row}\n")
        })
        .collect();
    std::fs::write(dir.join("pairs.jsonl"), pairs).unwrap();
}

/// A tiny model, then each training node twice: on two ranks (`*_dp`) and in one process over
/// the same examples a step (`*_one`).
fn dag(records: &Path, sft_steps: u64) -> String {
    let r = records.display();
    let mut d = tiny_model_dag("data-parallel", 5);
    d.push_str(&format!(
        r#"  sft_data:
    op: data.load
    with: {{paths: ["{r}/sft.jsonl"]}}
  pairs:
    op: data.load
    with: {{paths: ["{r}/pairs.jsonl"]}}
  sft_dp:
    op: train.sft
    in: {{model: init.model, data: sft_data.data}}
    resources: {{cpu: 2}}
    with: {{max_steps: {sft_steps}, batch_size: 2, grad_accum: 2, max_length: 192, optim: {{lr: 0.001}}, device: cpu, log_every: 1, checkpoint: {{every_steps: 0}}, data_parallel: {{processes: 2}}}}
  sft_one:
    op: train.sft
    in: {{model: init.model, data: sft_data.data}}
    resources: {{cpu: 1}}
    with: {{max_steps: {sft_steps}, batch_size: 2, grad_accum: 4, max_length: 192, optim: {{lr: 0.001}}, device: cpu, log_every: 1, checkpoint: {{every_steps: 0}}}}
  pref_dp:
    op: train.preference
    in: {{model: sft_one.model, data: pairs.data}}
    resources: {{cpu: 2}}
    with: {{loss: simpo_cpo, max_steps: 3, batch_size: 2, grad_accum: 1, optim: {{lr: 0.0005}}, device: cpu, data_parallel: {{processes: 2}}}}
  pref_one:
    op: train.preference
    in: {{model: sft_one.model, data: pairs.data}}
    resources: {{cpu: 1}}
    with: {{loss: simpo_cpo, max_steps: 3, batch_size: 2, grad_accum: 2, optim: {{lr: 0.0005}}, device: cpu}}
  answers:
    op: data.sql
    in: {{s: sft_data.data}}
    with: {{query: "SELECT output AS text FROM s"}}
  cpt_dp:
    op: train.cpt
    in: {{model: init.model, tokenizer: tok.tokenizer, questions: text.data, answers: answers.data}}
    resources: {{cpu: 2}}
    with: {{sources: [questions, answers], seq_len: 32, batch_size: 2, grad_accum: 2, max_steps: 4, optim: {{lr: 0.001}}, device: cpu, log_every: 1, validation: {{every_steps: 2}}, checkpoint: {{every_steps: 0}}, data_parallel: {{processes: 2}}}}
  cpt_one:
    op: train.cpt
    in: {{model: init.model, tokenizer: tok.tokenizer, questions: text.data, answers: answers.data}}
    resources: {{cpu: 1}}
    with: {{sources: [questions, answers], seq_len: 32, batch_size: 4, grad_accum: 2, max_steps: 4, optim: {{lr: 0.001}}, device: cpu, log_every: 1, validation: {{every_steps: 2}}, checkpoint: {{every_steps: 0}}}}
"#
    ));
    d
}

/// The largest difference between the weights of the models of two nodes.
fn weight_diff(p: &Project, a: &str, b: &str) -> f64 {
    let ma = checkpoint::load(&p.output(a, "model"), Device::Cpu, Some(Kind::Float)).unwrap();
    let mb = checkpoint::load(&p.output(b, "model"), Device::Cpu, Some(Kind::Float)).unwrap();
    let mut worst = 0.0f64;
    for ((na, ta), (nb, tb)) in ma.parameters().iter().zip(mb.parameters()) {
        assert_eq!(na, nb);
        let d = (ta - tb).abs().max().double_value(&[]);
        worst = worst.max(d);
    }
    worst
}

fn losses(p: &Project, node: &str) -> Vec<f64> {
    p.report_json(node)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn two_gloo_ranks_train_the_model_of_one_process_over_the_combined_batch() {
    let records = tempfile::tempdir().unwrap();
    write_records(records.path());
    let p = Project::new(&dag(records.path(), 4));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    for (dp, one) in [
        ("sft_dp", "sft_one"),
        ("pref_dp", "pref_one"),
        ("cpt_dp", "cpt_one"),
    ] {
        let r = p.report_json(dp);
        assert_eq!(r["processes"], 2, "{dp}: {r}");
        let (a, b) = (losses(&p, dp), losses(&p, one));
        assert_eq!(a.len(), b.len(), "{dp}: {a:?} {b:?}");
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-6, "{dp} losses {a:?} against {b:?}");
        }
        let d = weight_diff(&p, dp, one);
        eprintln!("{dp}: largest weight difference to {one}: {d:.3e}");
        assert!(d <= 1e-6, "{dp}: weights differ by {d:e}");
        let log = p.log(dp);
        assert!(
            log.contains("data parallel: 2 ranks joined (Gloo)"),
            "{log}"
        );
    }
    // Training moved the weights far more than the ranks and the one process differ.
    assert!(weight_diff(&p, "sft_dp", "init") > 1e-4);
    assert!(weight_diff(&p, "pref_dp", "sft_one") > 1e-5);
    // The same number of examples seen: tokens per step agree.
    let t = |n: &str| p.report_json(n)["final"]["tokens"].as_u64().unwrap();
    assert_eq!(t("sft_dp"), t("sft_one"));
    assert_eq!(t("cpt_dp"), t("cpt_one"));
    // The bandit, rewarded by the loss over both ranks, drew the same sources.
    let drawn = |n: &str| {
        p.report_json(n)["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sources"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(drawn("cpt_dp"), drawn("cpt_one"));
    assert!(weight_diff(&p, "cpt_dp", "init") > 1e-4);
    // A rerun is served from the cache (rank 0 committed once, as any node).
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(p.node("sft_dp")["status"], "cached", "{}", p.node("sft_dp"));
}

/// PIDs of the rank processes of `project` (`node rank --task <scratch in project>`).
fn ranks_of(project: &Path) -> Vec<u32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("node rank --task") && cmd.contains(&*project.to_string_lossy()) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_rank_killed_mid_training_fails_the_node_naming_it() {
    let records = tempfile::tempdir().unwrap();
    write_records(records.path());
    let p = Project::new(&dag(records.path(), 400));
    let mut child = p
        .cmd()
        .args(["run", "dag.yaml", "--fail-fast", "--report", "run.json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the follower rank of sft_dp, let it train a little, kill it.
    let deadline = Instant::now() + Duration::from_secs(300);
    let pid = loop {
        if let Some(pid) = ranks_of(p.path()).first() {
            break *pid;
        }
        assert!(
            Instant::now() < deadline,
            "no rank process appeared: {:?}",
            child.try_wait()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(4));
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let n = p.node("sft_dp");
    assert_eq!(n["status"], "failed", "{n}");
    let err = n["error"].as_str().unwrap_or_default();
    assert!(err.contains("rank 1 was killed by signal 9"), "{err}");
    // Finished artifacts are intact, and no rank outlives the run.
    assert_eq!(p.node("init")["status"], "succeeded");
    assert!(p.output("init", "model").join("config.json").exists());
    assert!(ranks_of(p.path()).is_empty(), "ranks left running");
}
