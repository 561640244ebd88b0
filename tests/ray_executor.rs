//! The `ray` executor against a real local Ray cluster (a head and a node with two fake GPUs,
//! on 127.0.0.1, started by the test) over a real S3 store (SeaweedFS).

mod common;
use common::{digests, node, port, text, wait_for_pid, Project, Service};

const DATA_DAG: &str = r#"
nodes:
  load:
    op: data.load
    with: {paths: ["DATA/*.jsonl"]}
  short:
    op: data.sql
    in: {docs: load.data}
    with: {query: "SELECT id, text FROM docs WHERE id < 3 ORDER BY id"}
  copy:
    op: shell
    in: {d: short.data}
    with: {run: "cp $ZEST_IN_D/data.parquet $ZEST_OUT/copy.parquet"}
"#;

struct Cluster {
    // Fields drop in order: Ray first, then the store, then the lock.
    ray: Service,
    s3: Service,
    _dir: tempfile::TempDir,
    _one: std::sync::MutexGuard<'static, ()>,
}

/// One cluster at a time: two on two cores would only slow both down.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cluster() -> Cluster {
    let guard = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let s3 = Service::start(
        "seaweed",
        dir.path(),
        &[port(12600, 0).to_string(), "zest-ray".into()],
    );
    let ray = Service::start("ray", dir.path(), &[port(24000, 0).to_string(), "2".into()]);
    Cluster {
        s3,
        ray,
        _dir: dir,
        _one: guard,
    }
}

impl Cluster {
    fn cmd(&self, p: &Project) -> std::process::Command {
        let mut c = p.cmd();
        c.env("AWS_ACCESS_KEY_ID", self.s3.get("ZEST_S3_ACCESS_KEY"))
            .env("AWS_SECRET_ACCESS_KEY", self.s3.get("ZEST_S3_SECRET_KEY"))
            .env("AWS_ENDPOINT_URL", self.s3.get("ZEST_S3_ENDPOINT"))
            .env("AWS_REGION", "us-east-1")
            .env("ZEST_S3_MAX_RETRIES", "1")
            .env("RAY_ADDRESS", self.ray.get("RAY_ADDRESS"))
            .env_remove("AWS_PROFILE");
        c
    }

    fn zest(&self, p: &Project, args: &[&str]) -> std::process::Output {
        self.cmd(p).args(args).output().unwrap()
    }

    /// The Ray jobs zest submitted and did not delete.
    fn jobs(&self) -> Vec<serde_json::Value> {
        let out = std::process::Command::new("curl")
            .args(["-fsS", "--max-time", "10"])
            .arg(format!("{}/api/jobs/", self.ray.get("RAY_ADDRESS")))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|j| {
                j["submission_id"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("zest-"))
            })
            .collect()
    }
}

fn data_project() -> Project {
    let p = Project::new();
    p.write(
        "data/a.jsonl",
        "{\"id\": 1, \"text\": \"insulin\"}\n{\"id\": 2, \"text\": \"heparin\"}\n{\"id\": 3, \"text\": \"warfarin\"}\n",
    );
    // The cluster's nodes read the files where this machine has them (one host here).
    let data = p.path().join("data");
    p.write(
        "dag.yaml",
        &DATA_DAG.replace("DATA", &data.display().to_string()),
    );
    p
}

#[test]
fn runs_on_ray_with_the_digests_of_a_local_run_and_places_gpu_nodes() {
    let c = cluster();
    let p = data_project();
    let o = c.zest(
        &p,
        &[
            "run",
            "dag.yaml",
            "--store",
            "s3://zest-ray/local",
            "--report",
            "local.json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = c.zest(
        &p,
        &[
            "run",
            "dag.yaml",
            "--store",
            "s3://zest-ray/on-ray",
            "--executor",
            "ray",
            "--report",
            "ray.json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let local = p.json("local.json");
    let ray = p.json("ray.json");
    assert_eq!(digests(&local), digests(&ray));
    for n in ["load", "short", "copy"] {
        assert_eq!(node(&ray, n)["attempts"], 1, "{ray}");
        assert_eq!(node(&ray, n)["status"], "succeeded", "{ray}");
    }
    // The node's log came back from Ray.
    let run_id = ray["run_id"].as_str().unwrap();
    let log = std::fs::read_to_string(p.path().join(format!(".zest/runs/{run_id}/logs/copy.log")))
        .unwrap();
    assert!(log.contains("ran as Ray job zest-"), "{log}");
    assert!(
        c.jobs().is_empty(),
        "finished jobs are deleted: {:?}",
        c.jobs()
    );

    // One node on the GPU node of the cluster, the rest on this machine (which has no GPU):
    // `executor:` per node.
    p.write(
        "gpu.yaml",
        r#"
nodes:
  prep:
    op: shell
    with: {run: "echo ready > $ZEST_OUT/ready"}
  train:
    op: shell
    in: {p: prep.out}
    executor: ray
    resources: {gpu: 1}
    with: {run: "echo \"cuda=[$CUDA_VISIBLE_DEVICES]\""}
  both:
    op: shell
    executor: ray
    resources: {gpu: 2}
    with: {run: "echo \"cuda=[$CUDA_VISIBLE_DEVICES]\""}
  none:
    op: shell
    executor: ray
    with: {run: "echo \"cuda=[$${CUDA_VISIBLE_DEVICES-unset}]\""}
"#,
    );
    let o = c.zest(
        &p,
        &[
            "run",
            "gpu.yaml",
            "--store",
            "s3://zest-ray/gpu",
            "--gpus",
            "0",
            "--report",
            "gpu.json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("gpu.json");
    // Each node printed what it saw; the log came back from Ray into the report.
    let cuda = |n: &str| -> String {
        let path = node(&r, n)["log"].as_str().unwrap_or_default().to_string();
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        let at = log.find("cuda=[").unwrap_or_else(|| panic!("{n}: {log}"));
        let rest = &log[at + 6..];
        rest[..rest.find(']').unwrap()].to_string()
    };
    assert_eq!(cuda("train"), "0", "one GPU, on the GPU node");
    let both = cuda("both");
    assert!(both == "0,1" || both == "1,0", "{both}");
    assert_eq!(cuda("none"), "", "a node without GPUs sees none");
}

const SHARDED_DAG: &str = r#"
params:
  shards: {type: int, default: 1}
nodes:
  load:
    op: data.load
    with: {paths: ["DATA/docs.jsonl"]}
  quality:
    op: clean.quality
    in: {docs: load.data}
    with: {preset: literature}
    shards: ${params.shards}
  dedup:
    op: clean.dedup
    in: {docs: quality.docs}
    shards: ${params.shards}
"#;

#[test]
fn sharded_nodes_on_ray_write_what_unsharded_ones_do_locally() {
    let c = cluster();
    let p = Project::new();
    p.write("data/docs.jsonl", &common::planted_corpus());
    let data = p.path().join("data");
    p.write(
        "dag.yaml",
        &SHARDED_DAG.replace("DATA", &data.display().to_string()),
    );
    let run = |store: &str, report: &str, extra: &[&str]| {
        let mut args = vec!["run", "dag.yaml", "--store", store, "--report", report];
        args.extend_from_slice(extra);
        let o = c.zest(&p, &args);
        assert!(o.status.success(), "{}", text(&o));
        p.json(report)
    };
    let whole = run("s3://zest-ray/whole", "whole.json", &[]);
    let sharded = run(
        "s3://zest-ray/sharded",
        "sharded.json",
        &["--executor", "ray", "-p", "shards=4"],
    );
    let of = |r: &serde_json::Value| -> Vec<(String, String)> {
        digests(r)
            .into_iter()
            .filter(|(k, _)| !k.contains('['))
            .collect()
    };
    assert_eq!(of(&whole).len(), 7, "{whole}");
    assert_eq!(of(&whole), of(&sharded));
    // 4 + 1 instances of `quality`, 4 + 4 + 1 of `dedup`, each a Ray job on the cluster.
    let nodes = sharded["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1 + 5 + 9, "{sharded}");
    for n in nodes {
        assert_eq!(n["status"], "succeeded", "{n}");
        let log =
            std::fs::read_to_string(n["log"].as_str().unwrap_or_default()).unwrap_or_default();
        assert!(log.contains("ran as Ray job zest-"), "{}: {log}", n["node"]);
    }
}

#[test]
fn a_killed_job_is_retried_and_a_killed_zest_resumes_onto_its_jobs() {
    let c = cluster();
    let p = Project::new();
    let marks = p.path().join("marks");
    let pids = p.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    // `flaky`'s first attempt waits to be killed (its `zest node exec`, the job's
    // entrypoint, is the shell's parent); `long` runs long enough for zest to be killed.
    p.write(
        "dag.yaml",
        &format!(
            r#"
nodes:
  flaky:
    op: shell
    retries: {{max: 1, backoff: 100ms}}
    with:
      run: |
        echo "flaky $ZEST_ATTEMPT" >> {marks}
        if [ "$ZEST_ATTEMPT" = 1 ]; then echo $PPID > {pids}/flaky; sleep 120; fi
        echo ok > $ZEST_OUT/ok
  long:
    op: shell
    in: {{f: flaky.out}}
    with:
      run: |
        echo "long $ZEST_ATTEMPT" >> {marks}
        echo $$ > {pids}/long
        sleep 15
        echo done > $ZEST_OUT/done
"#,
            marks = marks.display(),
            pids = pids.display()
        ),
    );
    let mut child = c
        .cmd(&p)
        .args([
            "run",
            "dag.yaml",
            "--store",
            "s3://zest-ray/resume",
            "--executor",
            "ray",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill the first attempt's job under Ray's feet: it is retried.
    let exec = wait_for_pid(&pids.join("flaky"), "flaky's first attempt");
    let cmdline = std::fs::read(format!("/proc/{exec}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("node\0exec"),
        "the shell's parent is the job's `zest node exec`: {:?}",
        String::from_utf8_lossy(&cmdline)
    );
    unsafe {
        libc::kill(exec, libc::SIGKILL);
    }
    // Then kill zest while `long` runs on Ray.
    wait_for_pid(&pids.join("long"), "long");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    // `long`'s job runs on without zest (and `flaky`'s may wait for its delayed delete).
    let running: Vec<serde_json::Value> = c
        .jobs()
        .into_iter()
        .filter(|j| {
            !matches!(
                j["status"].as_str(),
                Some("SUCCEEDED" | "FAILED" | "STOPPED")
            )
        })
        .collect();
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(running[0]["metadata"]["zest_node"], "long", "{running:?}");
    let runs = c.zest(&p, &["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();

    let o = c.zest(&p, &["resume", &run_id, "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    assert_eq!(r["status"], "succeeded", "{r}");
    let flaky = node(&r, "flaky");
    assert_eq!(flaky["attempts"], 2, "{r}");
    let marks = std::fs::read_to_string(&marks).unwrap();
    assert_eq!(
        marks.lines().collect::<Vec<_>>(),
        vec!["flaky 1", "flaky 2", "long 1"],
        "`long` ran once: the resumed run attached to its job"
    );
    // The first attempt failed as a killed job.
    let journal =
        std::fs::read_to_string(p.path().join(format!(".zest/runs/{run_id}/journal.jsonl")))
            .unwrap();
    let failed: Vec<&str> = journal
        .lines()
        .filter(|l| l.contains("\"attempt_failed\""))
        .collect();
    assert_eq!(failed.len(), 1, "{journal}");
    assert!(failed[0].contains("SIGKILL"), "{}", failed[0]);
    let log = std::fs::read_to_string(p.path().join(format!(".zest/runs/{run_id}/logs/long.log")))
        .unwrap();
    assert!(
        log.contains("found running from an earlier session"),
        "{log}"
    );
    assert!(c.jobs().is_empty(), "{:?}", c.jobs());
}

#[test]
fn a_ray_that_does_not_answer_fails_the_node_clearly_and_loses_nothing() {
    let p = data_project();
    // Nothing listens there; the store is local (the data nodes run here, the last on Ray).
    p.write(
        "executors.yaml",
        &format!(
            "profiles:\n  cluster:\n    kind: ray\n    address: http://127.0.0.1:{}\n",
            port(26000, 0)
        ),
    );
    let dag = std::fs::read_to_string(p.path().join("dag.yaml")).unwrap();
    p.write(
        "dag.yaml",
        &dag.replace(
            "  copy:\n    op: shell\n",
            "  copy:\n    op: shell\n    executor: cluster\n    retries: {max: 1, backoff: 50ms}\n",
        ),
    );
    let o = p.zest(&[
        "run",
        "dag.yaml",
        "--executor-config",
        "executors.yaml",
        "--report",
        "run.json",
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    assert_eq!(node(&r, "short")["status"], "succeeded", "{r}");
    let copy = node(&r, "copy");
    assert_eq!(copy["status"], "failed", "{r}");
    assert_eq!(copy["attempts"], 2, "a connection refused is retried: {r}");
    let err = copy["error"].as_str().unwrap();
    assert!(
        err.contains("cannot reach Ray's Jobs API at http://127.0.0.1:"),
        "{err}"
    );
    // An executor the DAG names but nobody defined is refused before anything runs.
    p.write(
        "bad.yaml",
        "nodes:\n  a:\n    op: shell\n    executor: gpu-cluster\n    with: {run: 'true'}\n",
    );
    let o = p.zest(&["run", "bad.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("runs on executor `gpu-cluster`, which is not defined"),
        "{}",
        text(&o)
    );
}

/// A tiny model trained by `train.sft` on two ranks twice: as two processes of one local
/// node, and as one process on each of two machines (two Ray jobs that meet through the
/// store's rendezvous).
fn two_machines_dag(records: &std::path::Path) -> String {
    let medqa = common::repo().join("dags/data/medqa_sample.jsonl");
    let sft = |dp: &str| {
        format!(
            "{{max_steps: 3, batch_size: 2, grad_accum: 1, max_length: 160, optim: {{lr: 0.001}}, \
             device: cpu, log_every: 1, checkpoint: {{every_steps: 0}}, data_parallel: {dp}}}"
        )
    };
    format!(
        r#"name: two-machines
nodes:
  medqa:
    op: data.load
    with: {{paths: ["{medqa}"]}}
  text:
    op: data.sql
    in: {{m: medqa.data}}
    with: {{query: "SELECT question || ' Answer: ' || answer AS text FROM m"}}
  tok:
    op: train.tokenizer
    in: {{data: text.data}}
    with: {{vocab_size: 400}}
  init:
    op: model.init
    in: {{tokenizer: tok.tokenizer}}
    with: {{size: tiny, seed: 7}}
  sft_data:
    op: data.load
    with: {{paths: ["{records}/sft.jsonl"]}}
  here:
    op: train.sft
    in: {{model: init.model, data: sft_data.data}}
    resources: {{cpu: 2}}
    with: {}
  apart:
    op: train.sft
    in: {{model: init.model, data: sft_data.data}}
    executor: ray
    resources: {{cpu: 1}}
    with: {}
"#,
        sft("{processes: 2}"),
        sft("{processes: 1, machines: 2}"),
        medqa = medqa.display(),
        records = records.display(),
    )
}

#[test]
fn a_node_on_two_machines_trains_the_model_of_two_local_ranks() {
    let c = cluster();
    let p = Project::new();
    let rows: String = std::fs::read_to_string(
        common::repo().join("dags/data/pubmedqa_sample.jsonl"),
    )
    .unwrap()
    .lines()
    .take(16)
    .map(|l| {
        let r: serde_json::Value = serde_json::from_str(l).unwrap();
        let answer: String = r["long_answer"]
            .as_str()
            .unwrap()
            .chars()
            .take(200)
            .collect();
        let row = serde_json::json!({"instruction": r["question"], "input": "", "output": answer});
        format!("{row}\n")
    })
    .collect();
    p.write("records/sft.jsonl", &rows);
    p.write("dag.yaml", &two_machines_dag(&p.path().join("records")));
    let o = c.zest(
        &p,
        &[
            "run",
            "dag.yaml",
            "--store",
            "s3://zest-ray/two-machines",
            "--report",
            "run.json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    for n in ["here", "apart"] {
        assert_eq!(node(&r, n)["status"], "succeeded", "{r}");
    }
    // The same ranks over the same batches: the same weights, to the bit.
    assert_eq!(
        node(&r, "apart")["outputs"]["model"]["digest"],
        node(&r, "here")["outputs"]["model"]["digest"],
        "{r}"
    );
    let log = std::fs::read_to_string(node(&r, "apart")["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("ran as Ray job zest-"), "{log}");
    // Machine 0's log, then machine 1's under a line of its own: each its own, though both
    // machines share this host and its work_dir.
    let (zero, one) = log
        .split_once("[zest: machine 1 of 2, Ray job zest-")
        .unwrap_or_else(|| panic!("no log of machine 1: {log}"));
    for (part, has, lacks) in [
        (zero, "this is machine 0", "this is machine 1"),
        (one, "this is machine 1", "this is machine 0"),
    ] {
        assert!(part.contains(has) && !part.contains(lacks), "{has}: {log}");
    }
    assert!(
        zero.contains("data parallel: 2 ranks joined (Gloo)"),
        "{log}"
    );
    assert!(zero.contains("step 3/3"), "{log}");
    assert!(
        c.jobs().is_empty(),
        "both machines' jobs are deleted: {:?}",
        c.jobs()
    );
}
