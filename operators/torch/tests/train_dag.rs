//! The training operators end to end through the `zest` binary: a DAG that trains a tokenizer,
//! initialises a model and pre-trains it on three sources of the embedded medical samples; the
//! models load in transformers with the same logits; `kill -9` during `train.cpt` and
//! `zest resume` continue from the newest checkpoint to the same final model, bit for bit.

mod common;
use common::{python, repo, text, Project};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use zest_kernels_torch::mask::{positions_from_start, Attention};
use zest_kernels_torch::tch::{Device, Kind, Tensor};
use zest_kernels_torch::{checkpoint, Transformer};

/// Records of every SFT stage and preference pairs, made from the embedded samples and written
/// as JSONL into `dir`: stage 1 Alpaca (PubMedQA question → long answer), stage 2 TRL
/// `messages` (two turns), stage 3 Citrus `{input, target}` with `<think>…</think><answer>…
/// </answer>` targets (MedQA), pairs with an implicit prompt (the right option against a wrong
/// one).
fn write_records(dir: &Path) {
    let read = |f: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(repo().join("dags/data").join(f))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (pubmed, medqa) = (read("pubmedqa_sample.jsonl"), read("medqa_sample.jsonl"));
    let write = |name: &str, rows: Vec<serde_json::Value>| {
        let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(dir.join(name), text).unwrap();
    };
    let short = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    write(
        "stage1.jsonl",
        pubmed
            .iter()
            .take(24)
            .map(|r| {
                serde_json::json!({"instruction": r["question"], "input": "",
                    "output": short(r["long_answer"].as_str().unwrap(), 300)})
            })
            .collect(),
    );
    write(
        "stage2.jsonl",
        pubmed
            .iter()
            .skip(24)
            .take(24)
            .map(|r| {
                serde_json::json!({"messages": [
                    {"role": "user", "content": r["question"]},
                    {"role": "assistant", "content": r["final_decision"]},
                    {"role": "user", "content": "Why?"},
                    {"role": "assistant", "content": short(r["long_answer"].as_str().unwrap(), 200)},
                ]})
            })
            .collect(),
    );
    let question = |r: &serde_json::Value| {
        let o = &r["options"];
        format!(
            "{}\nA. {}\nB. {}\nC. {}\nD. {}",
            r["question"].as_str().unwrap(),
            o["A"].as_str().unwrap_or(""),
            o["B"].as_str().unwrap_or(""),
            o["C"].as_str().unwrap_or(""),
            o["D"].as_str().unwrap_or("")
        )
    };
    write(
        "stage3.jsonl",
        medqa
            .iter()
            .take(16)
            .map(|r| {
                let a = r["answer"].as_str().unwrap();
                serde_json::json!({"input": short(&question(r), 500),
                    "target": format!("<think>\nThe findings point to {a}.\n</think>\n<answer>\n{a}\n</answer>")})
            })
            .collect(),
    );
    write(
        "pairs.jsonl",
        medqa
            .iter()
            .skip(16)
            .take(12)
            .map(|r| {
                let q = short(&question(r), 400);
                let right = r["answer_idx"].as_str().unwrap();
                let wrong = ["A", "B", "C", "D"]
                    .into_iter()
                    .find(|k| *k != right)
                    .unwrap();
                let opt = |k: &str| r["options"][k].as_str().unwrap_or("").to_string();
                let turn = |a: String| {
                    serde_json::json!([
                    {"role": "user", "content": q}, {"role": "assistant", "content": a}])
                };
                serde_json::json!({"chosen": turn(opt(right)), "rejected": turn(opt(wrong))})
            })
            .collect(),
    );
}

/// The DAG: three CPT sources from the embedded samples, a tokenizer, a tiny model, CPT, and
/// (with `stages`) three SFT stages and SimPO+CPO. `records` is where [`write_records`] wrote.
fn dag(steps: u64, checkpoint_every: u64, stages: bool, records: &Path) -> String {
    let data = repo().join("dags/data");
    let mut d = format!(
        r#"name: train-chain
nodes:
  pubmedqa:
    op: data.load
    with: {{paths: ["{data}/pubmedqa_sample.jsonl"]}}
  medqa:
    op: data.load
    with: {{paths: ["{data}/medqa_sample.jsonl"]}}
  abstracts:
    op: data.sql
    in: {{p: pubmedqa.data}}
    with: {{query: "SELECT array_to_string(contexts, ' ') AS text FROM p ORDER BY pmid"}}
  answers:
    op: data.sql
    in: {{p: pubmedqa.data}}
    with: {{query: "SELECT long_answer AS text FROM p ORDER BY pmid"}}
  questions:
    op: data.sql
    in: {{m: medqa.data}}
    with: {{query: "SELECT question || ' Answer: ' || answer AS text FROM m ORDER BY question"}}
  tok:
    op: train.tokenizer
    in: {{data: [abstracts.data, answers.data, questions.data]}}
    with: {{vocab_size: 512}}
  init:
    op: model.init
    in: {{tokenizer: tok.tokenizer}}
    with: {{size: tiny, seed: 3}}
  cpt:
    op: train.cpt
    in: {{model: init.model, tokenizer: tok.tokenizer, abstracts: abstracts.data, answers: answers.data, questions: questions.data}}
    resources: {{cpu: 1}}
    with:
      sources: [abstracts, answers, questions]
      seq_len: 64
      batch_size: 4
      max_steps: {steps}
      optim: {{lr: 0.003, warmup_steps: 2}}
      validation: {{every_steps: 4, holdout_sequences: 2}}
      checkpoint: {{every_steps: {checkpoint_every}, keep: 2}}
      log_every: 2
      device: cpu
"#,
        data = data.display()
    );
    if stages {
        let r = records.display();
        d.push_str(&format!(
            r#"  stage1_data:
    op: data.load
    with: {{paths: ["{r}/stage1.jsonl"]}}
  stage2_data:
    op: data.load
    with: {{paths: ["{r}/stage2.jsonl"]}}
  stage3_data:
    op: data.load
    with: {{paths: ["{r}/stage3.jsonl"]}}
  pairs:
    op: data.load
    with: {{paths: ["{r}/pairs.jsonl"]}}
  sft1:
    op: train.sft
    in: {{model: cpt.model, data: stage1_data.data, replay: abstracts.data}}
    with: {{max_steps: 4, batch_size: 4, max_length: 256, optim: {{lr: 0.001}}, device: cpu, log_every: 1, replay: {{ratio: 0.5, seq_len: 64}}}}
  sft2:
    op: train.sft
    in: {{model: sft1.model, data: stage2_data.data, eval: stage2_data.data, replay: [answers.data, questions.data]}}
    with: {{max_steps: 4, batch_size: 4, max_length: 256, packing: true, optim: {{lr: 0.001}}, device: cpu, eval_every: 2}}
  sft3:
    op: train.sft
    in: {{model: sft2.model, data: stage3_data.data}}
    with: {{max_steps: 4, batch_size: 4, max_length: 384, optim: {{lr: 0.001}}, device: cpu}}
  pref:
    op: train.preference
    in: {{model: sft3.model, data: pairs.data}}
    with: {{loss: simpo_cpo, max_steps: 3, batch_size: 4, optim: {{lr: 0.0005}}, device: cpu}}
"#
        ));
    }
    d
}

/// zest's logits on fixed ids for the model in `dir`, and transformers' on the same ids.
fn logits_both(dir: &Path, scratch: &Path) -> (Tensor, Tensor) {
    let model: Transformer = checkpoint::load(dir, Device::Cpu, Some(Kind::Float)).unwrap();
    let v = model.config.vocab_size;
    let ids: Vec<i64> = (0..2 * 24).map(|i| (i * 37 + 11) % v).collect();
    let t = Tensor::from_slice(&ids).view([2, 24]);
    let ours = model.forward(
        &t,
        &positions_from_start(2, 24, Device::Cpu),
        &Attention::Causal,
        None,
    );
    let input = scratch.join("ids.json");
    let rows: Vec<&[i64]> = ids.chunks(24).collect();
    std::fs::write(&input, serde_json::json!({"input_ids": rows}).to_string()).unwrap();
    let out = scratch.join("ref.safetensors");
    let o = Command::new(python())
        .arg(repo().join("kernels/torch/tests/py/ref_forward.py"))
        .args([
            "--model",
            dir.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ])
        .args(["--out", out.to_str().unwrap()])
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "ref_forward.py: {}", text(&o));
    let theirs = Tensor::read_safetensors(&out).unwrap();
    let theirs = theirs.into_iter().find(|(n, _)| n == "logits").unwrap().1;
    (ours.to_kind(Kind::Float), theirs)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn the_training_chain_runs_and_every_model_loads_in_transformers() {
    let records = tempfile::tempdir().unwrap();
    write_records(records.path());
    let p = Project::new(&dag(12, 4, true, records.path()));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let scratch = tempfile::tempdir().unwrap();
    for node in ["init", "cpt", "sft1", "sft2", "sft3", "pref"] {
        let dir = p.output(node, "model");
        assert!(
            dir.join("tokenizer.json").exists(),
            "{node}: no tokenizer files"
        );
        let (ours, theirs) = logits_both(&dir, scratch.path());
        let d = max_diff(&ours, &theirs);
        eprintln!("{node}: max |Δlogit| vs transformers = {d:e}");
        assert!(d <= 1e-4, "{node}: max |Δlogit| = {d}");
    }
    // Replay: pre-training rows joined the fine-tuning units, as many as the ratio says
    // (sft1: 0.5 of rows of 64 tokens; sft2, packed, by default: 0.25, rows of max_length).
    for (node, seq_len, per_unit) in [("sft1", 64, 1.0), ("sft2", 256, 1.0 / 3.0)] {
        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(p.output(node, "report").join("report.json")).unwrap(),
        )
        .unwrap();
        let units = r["examples"].as_f64().unwrap();
        let replay = &r["replay"];
        assert_eq!(replay["seq_len"], seq_len, "{node}: {replay}");
        assert_eq!(
            replay["used"].as_f64().unwrap(),
            (units * per_unit).round(),
            "{node}: {replay}"
        );
        assert!(replay["rows"].as_u64().unwrap() > 0, "{node}: {replay}");
        assert!(p.log(node).contains("replay: "), "{node}");
    }
    // Training moved the model.
    let (a, _) = logits_both(&p.output("init", "model"), scratch.path());
    let (b, _) = logits_both(&p.output("cpt", "model"), scratch.path());
    assert!(max_diff(&a, &b) > 1e-2);

    let report_dir = p.output("cpt", "report");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap())
            .unwrap();
    let steps: Vec<u64> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=12).collect::<Vec<_>>());
    let first = r["steps"][0]["loss"].as_f64().unwrap();
    let val = &r["validation"];
    assert_eq!(val.as_array().unwrap().len(), 3, "{val}");
    let last = val[2]["mean"].as_f64().unwrap();
    assert!(
        last < first,
        "validation {last} not below the first loss {first}"
    );
    for s in ["abstracts", "answers", "questions"] {
        let w = r["steps"][11]["weights"][s].as_f64().unwrap();
        assert!(w > 0.0 && w < 1.0, "{s}: {w}");
        assert!(val[2]["by_source"][s].as_f64().unwrap().is_finite());
    }
    for png in ["losses.png", "validation.png", "mixing.png"] {
        let b = std::fs::read(report_dir.join(png)).unwrap();
        assert_eq!(&b[1..4], b"PNG", "{png}");
    }
    // The node's log shows progress: step, loss, tokens/s, ETA.
    let log = p.log("cpt");
    assert!(
        log.contains("step 12/12 | loss") && log.contains("tok/s | ETA"),
        "{log}"
    );
    // Checkpoints are gone once the outputs are committed.
    let ck = p.path().join(".zest/checkpoints");
    let left: Vec<_> = walk(&ck);
    assert!(left.is_empty(), "checkpoints left: {left:?}");

    // `zest report`: one page with the DAG, every node's timing, and the reports' plots.
    let runs = p.zest(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    let before = walk(&p.path().join(".zest/artifacts")).len();
    let o = p.zest(&["report", &run_id, "-o", "report.html"]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(p.path().join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("</html>"), "{html}");
    for node in ["init", "cpt", "sft1", "sft2", "sft3", "pref"] {
        assert!(
            html.contains(&format!("<title>{node} (")),
            "{node} not drawn"
        );
        assert!(
            html.contains(&format!("href=\"#node-{node}\"")),
            "{node} not timed"
        );
    }
    // The CPT report's three plots are embedded; nothing is fetched from elsewhere.
    assert!(html.matches("data:image/png;base64,").count() >= 3);
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    // Edges come from provenance: CPT's model input is init's output.
    assert!(html.matches("<path d=").count() >= 6);
    assert_eq!(
        walk(&p.path().join(".zest/artifacts")).len(),
        before,
        "the report wrote to the store"
    );
    let o = p.zest(&["report", "no-such-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Committed checkpoint steps in a project's store.
fn checkpoint_steps(p: &Project) -> Vec<u64> {
    walk(&p.path().join(".zest/checkpoints"))
        .iter()
        .filter_map(|f| f.file_name()?.to_str()?.strip_suffix(".json")?.parse().ok())
        .collect()
}

#[test]
fn kill_9_during_cpt_then_resume_continues_to_the_same_model() {
    let steps = 40;
    let none = Path::new("/nonexistent");
    let whole = Project::new(&dag(steps, 5, false, none));
    let o = whole.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));

    let p = Project::new(&dag(steps, 5, false, none));
    let mut child = p.cmd().args(["run", "dag.yaml"]).spawn().unwrap();
    kill_9_once(&mut child, || checkpoint_steps(&p).iter().any(|s| *s >= 10));
    let saved = checkpoint_steps(&p).into_iter().max().unwrap();
    assert!(saved < steps, "training had finished ({saved})");
    let runs = p.zest(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    let o = p.zest(&["resume", &run_id, "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));

    // Same final model, bit for bit: content addressing gives equal digests.
    assert_eq!(p.digest("cpt", "model"), whole.digest("cpt", "model"));
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.output("cpt", "report").join("report.json")).unwrap(),
    )
    .unwrap();
    let steps_seen: Vec<u64> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps_seen, (1..=steps).collect::<Vec<_>>());
    let log = p.log("cpt");
    assert!(
        log.contains(&format!(
            "resuming from the checkpoint of step {saved}/{steps}"
        )),
        "{log}"
    );
}

/// A SeaweedFS server (S3 and its filer) from infra/scripts/test-services.sh, stopped by PID
/// when dropped.
struct Seaweed {
    dir: tempfile::TempDir,
    port: u16,
    env: Vec<(String, String)>,
}

impl Seaweed {
    fn start(bucket: &str) -> Seaweed {
        let tools = std::env::var_os("ZEST_TOOLS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(&std::env::var_os("HOME").unwrap()).join(".cache/zest-tools")
            });
        assert!(
            tools.join("venv/bin/weed").exists(),
            "SeaweedFS is not installed under {}: run `make test-tools`",
            tools.display()
        );
        let dir = tempfile::tempdir().unwrap();
        // Below 32768, apart from the root suites' ports (12000 + …), spread by process id.
        let port = 14000 + (std::process::id() % 97) as u16 * 20;
        let o = Command::new("bash")
            .arg("-c")
            .arg("source \"$0\" && start_seaweed \"$@\"")
            .arg(repo().join("infra/scripts/test-services.sh"))
            .arg(dir.path())
            .arg(port.to_string())
            .arg(bucket)
            .env("ZEST_TOOLS_DIR", &tools)
            .output()
            .unwrap();
        assert!(o.status.success(), "cannot start SeaweedFS: {}", text(&o));
        let env = std::fs::read_to_string(dir.path().join("seaweed.env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches(['"', '\'']).to_string()))
            .collect();
        Seaweed { dir, port, env }
    }

    fn get(&self, key: &str) -> &str {
        &self.env.iter().find(|(k, _)| k == key).unwrap().1
    }

    /// `zest` with the S3 credentials and endpoint.
    fn zest(&self, p: &Project) -> Command {
        let mut c = p.cmd();
        c.env("AWS_ACCESS_KEY_ID", self.get("ZEST_S3_ACCESS_KEY"))
            .env("AWS_SECRET_ACCESS_KEY", self.get("ZEST_S3_SECRET_KEY"))
            .env("AWS_ENDPOINT_URL", self.get("ZEST_S3_ENDPOINT"))
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE");
        c
    }

    /// The object keys under `prefix` of `bucket`, read through the filer's HTTP listing.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let script = r#"
import json, sys, urllib.request, urllib.error
base, out = sys.argv[1], []
def walk(path):
    req = urllib.request.Request(base + path + "?limit=10000", headers={"Accept": "application/json"})
    try:
        listing = json.load(urllib.request.urlopen(req))
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return
        raise
    for e in listing.get("Entries") or []:
        name = e["FullPath"]
        if e.get("Mode", 0) & 0x80000000:
            walk(name + "/")
        else:
            out.append(name)
walk(sys.argv[2])
print("\n".join(out))
"#;
        let o = Command::new(python())
            .args(["-c", script])
            .arg(format!("http://127.0.0.1:{}", self.port + 5))
            .arg(format!("/buckets/{bucket}/{prefix}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "filer listing: {}", text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg("-c")
            .arg("source \"$0\" && stop_service \"$1\" seaweed")
            .arg(repo().join("infra/scripts/test-services.sh"))
            .arg(self.dir.path())
            .output();
    }
}

/// The text of every `cpt.log` under the project's state directory.
fn cpt_logs(p: &Project) -> String {
    walk(&p.path().join(".zest"))
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "cpt.log"))
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect()
}

#[test]
fn checkpoints_on_s3_survive_kill_9_and_are_removed_after_commit() {
    // Long enough that the run is still training when the test has read step 10's log line:
    // 40 steps could finish, commit and remove every checkpoint before the kill.
    let steps = 400;
    let none = Path::new("/nonexistent");
    let whole = Project::new(&dag(steps, 5, false, none));
    let o = whole.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));

    let s3 = Seaweed::start("zest-ckpt");
    let store = "s3://zest-ckpt/train";
    let p = Project::new(&dag(steps, 5, false, none));
    let mut child = s3
        .zest(&p)
        .args(["run", "dag.yaml", "--store", store])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_9_once(&mut child, || {
        cpt_logs(&p).contains("saved the checkpoint of step 10")
    });
    // The checkpoints are in the bucket, nowhere in the project.
    let saved = s3.keys("zest-ckpt", "train/checkpoints/");
    let markers: Vec<u64> = saved
        .iter()
        .filter_map(|k| k.rsplit('/').next()?.strip_suffix(".json")?.parse().ok())
        .collect();
    // Step 10's checkpoint, or a later one: training goes on while the log is read, and only
    // the newest checkpoints are kept.
    assert!(
        markers.iter().any(|&m| m >= 10),
        "no committed checkpoint of step 10 or later in S3: {saved:?}"
    );
    assert!(checkpoint_steps(&p).is_empty());

    let runs = p.zest(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    let o = s3
        .zest(&p)
        .args(["resume", &run_id, "--report", "run.json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let log = cpt_logs(&p);
    assert!(
        log.contains("resuming from the checkpoint of step"),
        "{log}"
    );
    assert!(
        !log.contains("resuming from the checkpoint of step 0/"),
        "{log}"
    );
    // The same model as the uninterrupted local run, and the checkpoints gone once committed.
    let digest = p.node("cpt")["outputs"]["model"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(digest, whole.digest("cpt", "model"));
    let left = s3.keys("zest-ckpt", "train/checkpoints/");
    assert!(
        left.is_empty(),
        "checkpoints left after the commit: {left:?}"
    );
}

/// Waits (10 minutes at most) until `saved` says the checkpoint of step 10 is there, then
/// kills `child` with SIGKILL.
fn kill_9_once(child: &mut std::process::Child, saved: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !saved() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before a checkpoint"
        );
        assert!(
            Instant::now() < deadline,
            "no checkpoint of step 10 appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe {
        libc_kill(child.id() as i32);
    }
    let _ = child.wait();
}

unsafe fn libc_kill(pid: i32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    kill(pid, 9);
}

/// TRL's first-step loss and metrics (`tests/py/ref_first_step.py`) for `kind` on `data`.
fn trl_first_step(
    model: &Path,
    data: &Path,
    kind: &str,
    extra: &[&str],
    out: &Path,
) -> serde_json::Value {
    let o = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/ref_first_step.py"))
        .args([
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ])
        .args(["--kind", kind, "--out", out.to_str().unwrap()])
        .args(extra)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "ref_first_step.py {kind}: {}", text(&o));
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

/// Within 1e-5, relative for magnitudes above 1 (summed log-probabilities of long responses
/// are large, and float32 resolves them to about 1e-7 of their size), as the kernels' TRL
/// parity tests compare.
fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-5 * theirs.abs().max(1.0)
}

fn first_step(p: &Project, node: &str) -> serde_json::Value {
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.output(node, "report").join("report.json")).unwrap(),
    )
    .unwrap();
    r["steps"][0].clone()
}

#[test]
fn first_steps_match_trl_sft_cpo_and_dpo_trainers() {
    let records = tempfile::tempdir().unwrap();
    write_records(records.path());
    let r = records.path().display();
    let pref = |name: &str, loss: &str, beta: f64, gamma: f64, alpha: f64| {
        format!(
            "  {name}:\n    op: train.preference\n    in: {{model: init.model, data: pairs.data}}\n    \
             with: {{loss: {loss}, beta: {beta}, simpo_gamma: {gamma}, cpo_alpha: {alpha}, max_steps: 1, \
             batch_size: 12, max_length: 4096, device: cpu}}\n"
        )
    };
    let dag = format!(
        r#"{model}  stage3:
    op: data.load
    with: {{paths: ["{r}/stage3.jsonl"]}}
  pairs:
    op: data.load
    with: {{paths: ["{r}/pairs.jsonl"]}}
  sft:
    op: train.sft
    in: {{model: init.model, data: stage3.data}}
    with: {{max_steps: 1, batch_size: 16, max_length: 4096, device: cpu}}
{simpo}{cpo}{both}  reference:
    op: model.init
    in: {{tokenizer: tok.tokenizer}}
    with: {{size: tiny, seed: 6}}
  dpo:
    op: train.preference
    in: {{model: init.model, data: pairs.data, reference: reference.model}}
    with: {{loss: dpo, beta: 0.1, max_steps: 1, batch_size: 12, max_length: 4096, device: cpu}}
"#,
        model = common::tiny_model_dag("trl-parity", 5),
        simpo = pref("simpo", "simpo", 2.0, 0.5, 0.0),
        cpo = pref("cpo", "cpo", 0.1, 0.0, 1.0),
        both = pref("simpo_cpo", "simpo_cpo", 2.0, 0.5, 0.05),
    );
    let p = Project::new(&dag);
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let model = p.output("init", "model");
    let scratch = tempfile::tempdir().unwrap();

    let theirs = trl_first_step(
        &model,
        &records.path().join("stage3.jsonl"),
        "sft",
        &[],
        &scratch.path().join("sft.json"),
    );
    let ours = first_step(&p, "sft")["loss"].as_f64().unwrap();
    let want = theirs["loss"].as_f64().unwrap();
    eprintln!("sft step 1: zest {ours} TRL {want}");
    assert!(close(ours, want), "sft: zest {ours}, TRL {want}");

    for (node, beta, gamma, alpha) in [
        ("simpo", "2.0", "0.5", "0.0"),
        ("cpo", "0.1", "0.0", "1.0"),
        ("simpo_cpo", "2.0", "0.5", "0.05"),
    ] {
        let theirs = trl_first_step(
            &model,
            &records.path().join("pairs.jsonl"),
            node,
            &["--beta", beta, "--gamma", gamma, "--alpha", alpha],
            &scratch.path().join(format!("{node}.json")),
        );
        let ours = first_step(&p, node);
        let (l1, l2) = (
            ours["loss"].as_f64().unwrap(),
            theirs["loss"].as_f64().unwrap(),
        );
        assert!(close(l1, l2), "{node} loss: zest {l1}, TRL {l2}");
        let metrics = theirs["metrics"].as_object().unwrap();
        assert!(metrics.len() >= 8, "{node}: {theirs}");
        for (k, v) in metrics {
            let want = v.as_f64().unwrap();
            let got = ours["metrics"][k]
                .as_f64()
                .unwrap_or_else(|| panic!("{node}: zest has no metric {k}: {ours}"));
            assert!(close(got, want), "{node} {k}: zest {got}, TRL {want}");
        }
        eprintln!("{node} step 1: {} metrics equal TRL's", metrics.len());
    }

    // DPO against a reference model of another seed, as TRL's DPOTrainer.
    let reference = p.output("reference", "model");
    let theirs = trl_first_step(
        &model,
        &records.path().join("pairs.jsonl"),
        "dpo",
        &["--beta", "0.1", "--reference", reference.to_str().unwrap()],
        &scratch.path().join("dpo.json"),
    );
    let ours = first_step(&p, "dpo");
    let (l1, l2) = (
        ours["loss"].as_f64().unwrap(),
        theirs["loss"].as_f64().unwrap(),
    );
    eprintln!("dpo: zest {ours}\nTRL {theirs}");
    assert!(close(l1, l2), "dpo loss: zest {l1}, TRL {l2}");
    assert!(
        (l2 - std::f64::consts::LN_2).abs() > 1e-4,
        "the reference equals the policy: {theirs}"
    );
    let metrics = theirs["metrics"].as_object().unwrap();
    assert!(metrics.len() >= 6, "dpo: {theirs}");
    for (k, v) in metrics {
        let want = v.as_f64().unwrap();
        let got = ours["metrics"][k]
            .as_f64()
            .unwrap_or_else(|| panic!("dpo: zest has no metric {k}: {ours}"));
        assert!(close(got, want), "dpo {k}: zest {got}, TRL {want}");
    }
    eprintln!(
        "dpo step 1: loss and {} metrics equal TRL's DPOTrainer",
        metrics.len()
    );
}

/// The chain on a CUDA device (`resources.gpu: 1`, `device: auto`); skipped without one.
#[test]
#[ignore = "needs a CUDA device (make test runs it where nvidia-smi lists one)"]
fn the_training_chain_runs_on_cuda() {
    assert!(
        zest_kernels_torch::tch::Cuda::is_available(),
        "no CUDA device is visible to libtorch"
    );
    let records = tempfile::tempdir().unwrap();
    write_records(records.path());
    let dag = dag(12, 4, true, records.path())
        .replace("device: cpu", "device: auto")
        .replace("resources: {cpu: 1}", "resources: {cpu: 1, gpu: 1}");
    let p = Project::new(&dag);
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let scratch = tempfile::tempdir().unwrap();
    for node in ["cpt", "pref"] {
        let (ours, theirs) = logits_both(&p.output(node, "model"), scratch.path());
        let d = max_diff(&ours, &theirs);
        assert!(d <= 1e-4, "{node}: max |Δlogit| = {d}");
    }
}

/// The error of node `node` in the last report.
fn node_error(p: &Project, node: &str) -> String {
    p.node(node)["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn bad_inputs_fail_the_node_with_the_cause() {
    let none = Path::new("/nonexistent");
    let base = dag(6, 2, false, none).replace("resources: {cpu: 1}", "retries: {max: 0}");
    // A source without the text column.
    let p = Project::new(&base.replace(
        "SELECT long_answer AS text FROM p",
        "SELECT long_answer AS body FROM p",
    ));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = node_error(&p, "cpt");
    assert!(e.contains("no column `text`") && e.contains("body"), "{e}");
    // A model whose embedding is smaller than the tokenizer's vocabulary.
    let p = Project::new(&base.replace(
        "with: {size: tiny, seed: 3}",
        "with: {size: tiny, seed: 3, vocab_size: 128}",
    ));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = node_error(&p, "init");
    assert!(e.contains("smaller than the tokenizer's vocabulary"), "{e}");
    // A loss that diverges stops training and keeps the last good checkpoint.
    let p = Project::new(
        &base
            .replace("lr: 0.003", "lr: 1.0e+30")
            .replace("max_steps: 6", "max_steps: 40"),
    );
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = node_error(&p, "cpt");
    assert!(e.contains("training stopped"), "{e}");
    if e.contains("is kept") {
        assert!(!checkpoint_steps(&p).is_empty(), "{e}");
    }
    // Out of memory: the node's limit stops it, naming the limit; what finished stays.
    let p = Project::new(&base.replace(
        "retries: {max: 0}",
        "retries: {max: 0}\n    resources: {memory: 64MiB}",
    ));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = node_error(&p, "cpt");
    assert!(
        e.contains("over its limit of 64") && e.contains("resources.memory"),
        "{e}"
    );
    assert_eq!(p.node("init")["status"], "succeeded");
    assert!(p.output("init", "model").join("model.safetensors").exists());
}

#[test]
fn cpt_trains_in_bfloat16_on_cpu() {
    let none = Path::new("/nonexistent");
    let p = Project::new(
        &dag(12, 0, false, none).replace("device: cpu", "device: cpu\n      dtype: bf16"),
    );
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = p.output("cpt", "model");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["torch_dtype"], "bfloat16", "{cfg}");
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.output("cpt", "report").join("report.json")).unwrap(),
    )
    .unwrap();
    let losses: Vec<f64> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 12);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses[11] < losses[0],
        "bf16 training did not learn: {losses:?}"
    );
    let scratch = tempfile::tempdir().unwrap();
    let (ours, theirs) = logits_both(&dir, scratch.path());
    let d = max_diff(&ours, &theirs);
    assert!(d <= 1e-4, "bf16 model: max |Δlogit| = {d}");
}

#[test]
fn model_load_copies_a_model_directory_and_refuses_a_broken_one() {
    let none = Path::new("/nonexistent");
    let p = Project::new(&dag(2, 0, false, none));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for e in std::fs::read_dir(p.output("init", "model"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), model.join(e.file_name())).unwrap();
    }
    let q = Project::new(&format!(
        "name: load\nnodes:\n  m:\n    op: model.load\n    with: {{path: \"{}\"}}\n",
        model.display()
    ));
    let o = q.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    // The same files: the same artifact.
    assert_eq!(q.digest("m", "model"), p.digest("init", "model"));
    // A config.json that does not fit the weights is refused, naming the tensor.
    let cfg = model.join("config.json");
    let text_cfg = std::fs::read_to_string(&cfg).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text_cfg).unwrap();
    v["intermediate_size"] = 100.into();
    std::fs::write(&cfg, v.to_string()).unwrap();
    let o = q.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = node_error(&q, "m");
    assert!(e.contains("has shape") && e.contains("mlp"), "{e}");
}
