//! End-to-end runs on the local executor: caching, retries, crashes, timeouts, fail-fast,
//! interrupts, kill -9 and resume, concurrent runs, reports, lineage.

mod common;
use common::{node, text, Project};
use std::time::{Duration, Instant};

const DATA: &str = r#"{"id": 1, "text": "aspirin inhibits cyclooxygenase", "source": "a"}
{"id": 2, "text": "metformin lowers hepatic glucose output in type 2 diabetes", "source": "b"}
{"id": 3, "text": "short", "source": "a"}
"#;

const PIPELINE: &str = r#"
name: pipeline
params:
  max_len: {type: int, default: 40}
nodes:
  load:
    op: data.load
    with: {paths: ["data/*.jsonl"]}
  short:
    op: data.sql
    in: {docs: load.data}
    with: {query: "SELECT id, text FROM docs WHERE length(text) < ${params.max_len} ORDER BY id"}
  count:
    op: shell
    in: {d: short.data}
    with: {run: "ls \"$ZEST_IN_D\" > \"$ZEST_OUT/listing.txt\""}
"#;

fn pipeline_project() -> Project {
    let p = Project::new();
    p.write("data/docs.jsonl", DATA);
    p.write("dag.yaml", PIPELINE);
    p
}

fn manifest(p: &Project, digest: &str) -> serde_json::Value {
    p.json(&format!(".zest/manifests/{digest}.json"))
}

#[test]
fn runs_then_hits_the_cache_with_reports() {
    let p = pipeline_project();
    let o = p.zest(&[
        "run",
        "dag.yaml",
        "--report",
        "run.json",
        "--report",
        "junit.xml",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    assert_eq!(r["status"], "succeeded");
    for n in ["load", "short", "count"] {
        assert_eq!(node(&r, n)["status"], "succeeded", "{r}");
        assert_eq!(node(&r, n)["attempts"], 1);
    }
    let short = &node(&r, "short")["outputs"]["data"];
    let digest = short["digest"].as_str().unwrap();
    let uri = short["uri"].as_str().unwrap();
    assert!(
        std::path::Path::new(uri).join("data.parquet").exists(),
        "uri {uri} is a local path"
    );
    let m = manifest(&p, digest);
    assert_eq!(
        m["meta"]["rows"], 2,
        "two texts are shorter than 40 characters: {m}"
    );
    assert_eq!(m["meta"]["columns"], serde_json::json!(["id", "text"]));
    assert_eq!(m["provenance"]["node"], "short");
    assert_eq!(m["provenance"]["op"], "data.sql");
    let load_digest = node(&r, "load")["outputs"]["data"]["digest"]
        .as_str()
        .unwrap();
    assert_eq!(m["provenance"]["inputs"]["docs"][0], load_digest);
    let junit = std::fs::read_to_string(p.path().join("junit.xml")).unwrap();
    assert!(junit.contains("tests=\"3\" failures=\"0\""), "{junit}");
    assert!(junit.contains("name=\"short\""), "{junit}");

    let o = p.zest(&["run", "dag.yaml", "--report", "run2.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r2 = p.json("run2.json");
    for n in ["load", "short", "count"] {
        assert_eq!(node(&r2, n)["status"], "cached", "{r2}");
    }
    assert_eq!(node(&r2, "short")["outputs"]["data"]["digest"], digest);

    // A new parameter value changes the cache key downstream of the change only.
    let o = p.zest(&[
        "run",
        "dag.yaml",
        "--param",
        "max_len=100",
        "--report",
        "run3.json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r3 = p.json("run3.json");
    assert_eq!(node(&r3, "load")["status"], "cached");
    assert_eq!(node(&r3, "short")["status"], "succeeded");
    let d3 = node(&r3, "short")["outputs"]["data"]["digest"]
        .as_str()
        .unwrap();
    assert_eq!(manifest(&p, d3)["meta"]["rows"], 3);

    // --no-cache runs everything again and produces identical artifacts.
    let o = p.zest(&["run", "dag.yaml", "--no-cache", "--report", "run4.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r4 = p.json("run4.json");
    assert_eq!(node(&r4, "short")["status"], "succeeded");
    assert_eq!(node(&r4, "short")["outputs"]["data"]["digest"], digest);

    // Inspection commands.
    let run_id = r["run_id"].as_str().unwrap();
    let o = p.zest(&["lineage", &format!("{run_id}:count.out")]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "node `count` (shell",
        "node `short` (data.sql",
        "node `load` (data.load",
        "d ← ",
        "docs ← ",
    ] {
        assert!(out.contains(needle), "lineage lacks `{needle}`:\n{out}");
    }
    let o = p.zest(&["lineage", digest, "--json"]);
    let tree: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(tree["node"], "short");
    assert_eq!(tree["inputs"][0][1]["node"], "load");

    let o = p.zest(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 4);
    assert_eq!(runs[3]["run_id"], run_id, "newest first");
    let o = p.zest(&["runs", "show", run_id]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("succeeded  short (data.sql)"),
        "{}",
        text(&o)
    );

    let o = p.zest(&["plan", "dag.yaml", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        plan.as_array()
            .unwrap()
            .iter()
            .all(|n| n["action"] == "cached"),
        "{plan}"
    );
    let o = p.zest(&["plan", "dag.yaml", "--param", "max_len=7"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("no cached outputs"), "{out}");
    assert!(out.contains("upstream `short` will run"), "{out}");

    let o = p.zest(&["store", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(", 0 bad"));
}

#[test]
fn an_error_a_retry_cannot_fix_is_not_retried() {
    // A query over a table the node does not have fails the same way on every attempt:
    // data.sql says so, and the node fails at once despite `retries`.
    let p = Project::new();
    p.write(
        "dag.yaml",
        "nodes:\n  q:\n    op: data.sql\n    retries: {max: 3, backoff: 50ms}\n    with:\n      query: SELECT text FROM no_such_table\n",
    );
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(!o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    let n = node(&r, "q");
    assert_eq!(n["status"], "failed", "{r}");
    assert_eq!(n["attempts"], 1, "{r}");
    let err = n["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("no_such_table") && err.contains("not retried"),
        "{r}"
    );
}

#[test]
fn retries_with_backoff_until_success() {
    let p = Project::new();
    let counter = p.path().join("attempts");
    p.write(
        "dag.yaml",
        &format!(
            "nodes:\n  flaky:\n    op: shell\n    retries: {{max: 3, backoff: 50ms}}\n    cache: false\n    with:\n      run: |\n        n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}\n        echo attempt $n\n        [ $n -ge 3 ] || {{ echo not yet >&2; exit 7; }}\n",
            c = counter.display()
        ),
    );
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    let n = node(&r, "flaky");
    assert_eq!(n["status"], "succeeded");
    assert_eq!(n["attempts"], 3, "{r}");
    let o = p.zest(&["runs", "show", r["run_id"].as_str().unwrap(), "--json"]);
    let rec: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let attempts = rec["nodes"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["outcome"], "failed");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("exited with code 7"),
        "{rec}"
    );
    assert!(
        attempts[0]["error"].as_str().unwrap().contains("not yet"),
        "{rec}"
    );
    assert_eq!(attempts[2]["outcome"], "succeeded");
    let log = std::fs::read_to_string(n["log"].as_str().unwrap()).unwrap();
    assert!(
        log.contains("attempt 1") && log.contains("attempt 3"),
        "{log}"
    );
}

#[test]
fn crashing_nodes_fail_alone() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        r#"
nodes:
  segv:
    op: shell
    # The worker's first SIGSEGV only resets Rust's stack-overflow handler (a signal sent
    # with kill, unlike a faulting instruction, does not come back by itself); the second
    # one kills it the way a real segfault does.
    with: {run: "kill -SEGV $PPID; sleep 0.3; kill -SEGV $PPID; sleep 10"}
  abort:
    op: shell
    with: {run: "kill -ABRT $PPID; sleep 10"}
  oom:
    op: shell
    with: {run: "kill -KILL $PPID; sleep 10"}
  after_segv:
    op: noop
    in: {x: segv.out}
  independent:
    op: noop
    with: {sleep_ms: 300}
  downstream:
    op: noop
    in: {x: independent.out}
"#,
    );
    let o = p.zest(&[
        "run",
        "dag.yaml",
        "--report",
        "run.json",
        "--report",
        "junit.xml",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = p.json("run.json");
    assert_eq!(r["status"], "failed");
    let segv = node(&r, "segv");
    assert_eq!(segv["status"], "failed");
    assert!(
        segv["error"]
            .as_str()
            .unwrap()
            .contains("signal 11 (SIGSEGV"),
        "{segv}"
    );
    assert!(
        node(&r, "abort")["error"]
            .as_str()
            .unwrap()
            .contains("SIGABRT"),
        "{r}"
    );
    assert!(
        node(&r, "oom")["error"]
            .as_str()
            .unwrap()
            .contains("SIGKILL"),
        "{r}"
    );
    assert_eq!(node(&r, "after_segv")["status"], "skipped");
    assert_eq!(node(&r, "independent")["status"], "succeeded");
    assert_eq!(node(&r, "downstream")["status"], "succeeded");
    let junit = std::fs::read_to_string(p.path().join("junit.xml")).unwrap();
    assert!(junit.contains("failures=\"3\""), "{junit}");
    assert!(junit.contains("name=\"segv\""), "{junit}");
    assert!(junit.contains("SIGSEGV"), "{junit}");
    assert!(
        junit.contains("<skipped message=\"skipped: upstream node `segv` failed\"/>"),
        "{junit}"
    );
}

#[test]
fn operator_panic_and_errors_are_reported() {
    let p = Project::new();
    p.write("bad.jsonl", "{\"a\": 1}\nnot json at all\n");
    p.write(
        "dag.yaml",
        "nodes:\n  missing:\n    op: data.load\n    with: {paths: [\"nothing/*.jsonl\"]}\n  corrupt:\n    op: data.load\n    with: {paths: [bad.jsonl]}\n",
    );
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = p.json("run.json");
    assert!(
        node(&r, "missing")["error"]
            .as_str()
            .unwrap()
            .contains("`nothing/*.jsonl` matches no files"),
        "{r}"
    );
    let e = node(&r, "corrupt")["error"].as_str().unwrap();
    assert!(
        e.contains("bad.jsonl") && e.to_lowercase().contains("json"),
        "{e}"
    );
}

#[test]
fn timeout_kills_the_node() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        "nodes:\n  slow:\n    op: shell\n    timeout: 1s\n    with: {run: \"sleep 60\"}\n",
    );
    let t = Instant::now();
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    let r = p.json("run.json");
    assert!(
        node(&r, "slow")["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 1.0s"),
        "{r}"
    );
}

#[test]
fn fail_fast_cancels_the_rest() {
    let p = Project::new();
    p.write("dag.yaml", "nodes:\n  bad:\n    op: shell\n    with: {run: \"exit 3\"}\n  slow:\n    op: shell\n    with: {run: \"sleep 30\"}\n  later:\n    op: noop\n    in: {x: slow.out}\n");
    let t = Instant::now();
    let o = p.zest(&[
        "run",
        "dag.yaml",
        "--fail-fast",
        "--cpus",
        "2",
        "--report",
        "run.json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(t.elapsed() < Duration::from_secs(20));
    let r = p.json("run.json");
    assert_eq!(node(&r, "bad")["status"], "failed");
    assert_eq!(node(&r, "slow")["status"], "cancelled");
    assert_eq!(node(&r, "later")["status"], "cancelled");
}

#[test]
fn gpu_nodes_get_their_own_devices() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        "nodes:\n  g:\n    op: shell\n    resources: {gpu: 1}\n    with: {run: \"echo \\\"[$CUDA_VISIBLE_DEVICES]\\\" > $ZEST_OUT/dev\"}\n  c:\n    op: shell\n    with: {run: \"echo \\\"[$CUDA_VISIBLE_DEVICES]\\\" > $ZEST_OUT/dev\"}\n",
    );
    let o = p.zest(&["run", "dag.yaml", "--gpus", "1", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    let read = |n: &str| {
        std::fs::read_to_string(format!(
            "{}/dev",
            node(&r, n)["outputs"]["out"]["uri"].as_str().unwrap()
        ))
        .unwrap()
    };
    assert_eq!(read("g").trim(), "[0]");
    assert_eq!(read("c").trim(), "[]");
    // A node needing more than the machine has is refused before anything runs.
    let o = p.zest(&["run", "dag.yaml", "--gpus", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("node `g` needs 1 GPU(s) but the run has 0")
    );
}

const CHAIN: &str = r#"
defaults:
  cache: false
nodes:
  a:
    op: shell
    with: {run: "echo a >> ../marks; sleep 0.4; echo alpha > $ZEST_OUT/v"}
  b:
    op: shell
    in: {x: a.out}
    with: {run: "echo b >> ../marks; sleep 0.4; (cat $ZEST_IN_X/v; echo beta) > $ZEST_OUT/v"}
  c:
    op: shell
    in: {x: b.out}
    with: {run: "echo c >> ../marks; sleep 0.4; (cat $ZEST_IN_X/v; echo gamma) > $ZEST_OUT/v"}
  d:
    op: shell
    in: {x: c.out}
    with: {run: "echo d >> ../marks; sleep 0.4; (cat $ZEST_IN_X/v; echo delta) > $ZEST_OUT/v"}
  e:
    op: shell
    in: {x: d.out}
    with: {run: "echo e >> ../marks; sleep 0.4; (cat $ZEST_IN_X/v; echo epsilon) > $ZEST_OUT/v"}
"#;

fn chain_project() -> Project {
    let p = Project::new();
    std::fs::create_dir_all(p.path().join("work")).unwrap();
    p.write("work/dag.yaml", CHAIN);
    p
}

fn journal_successes(p: &Project) -> (Option<String>, usize) {
    let runs = p.path().join("work/.zest/runs");
    let Ok(mut rd) = std::fs::read_dir(&runs) else {
        return (None, 0);
    };
    let Some(Ok(e)) = rd.next() else {
        return (None, 0);
    };
    let j = std::fs::read_to_string(e.path().join("journal.jsonl")).unwrap_or_default();
    (
        Some(e.file_name().to_string_lossy().into_owned()),
        j.matches("\"e\":\"node_succeeded\"").count(),
    )
}

#[test]
fn kill_9_then_resume_finishes_without_rerunning() {
    let p = chain_project();
    let mut child = p
        .cmd()
        .current_dir(p.path().join("work"))
        .args(["run", "dag.yaml"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        let (id, n) = journal_successes(&p);
        if n >= 2 {
            break id.unwrap();
        }
        assert!(Instant::now() < deadline, "the run did not progress");
        std::thread::sleep(Duration::from_millis(20));
    };
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    let work = p.path().join("work");
    let runs = p
        .cmd()
        .current_dir(&work)
        .args(["runs", "--json"])
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(runs[0]["status"], "interrupted", "{runs}");
    let (_, done_before) = journal_successes(&p);

    let o = p
        .cmd()
        .current_dir(&work)
        .args(["resume", &run_id, "--report", "run.json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("run.json")).unwrap()).unwrap();
    assert_eq!(r["run_id"], run_id);
    assert_eq!(r["status"], "succeeded");
    // Each finished node ran exactly once; only the node in flight at the kill ran twice.
    let marks = std::fs::read_to_string(p.path().join("marks")).unwrap();
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let times = marks.lines().filter(|l| l == name).count();
        if i < done_before {
            assert_eq!(
                times, 1,
                "node {name} finished before the kill but ran {times} times:\n{marks}"
            );
        } else {
            assert!(
                (1..=2).contains(&times),
                "node {name} ran {times} times:\n{marks}"
            );
        }
    }
    let final_digest = node(&r, "e")["outputs"]["out"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let v = std::fs::read_to_string(format!(
        "{}/v",
        node(&r, "e")["outputs"]["out"]["uri"].as_str().unwrap()
    ))
    .unwrap();
    assert_eq!(v, "alpha\nbeta\ngamma\ndelta\nepsilon\n");

    // The same DAG, uninterrupted, in a fresh project: identical final output.
    let q = chain_project();
    let o = q
        .cmd()
        .current_dir(q.path().join("work"))
        .args(["run", "dag.yaml", "--report", "run.json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let r2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(q.path().join("work/run.json")).unwrap())
            .unwrap();
    assert_eq!(
        node(&r2, "e")["outputs"]["out"]["digest"].as_str().unwrap(),
        final_digest
    );
}

#[test]
fn ctrl_c_cancels_cleanly_and_keeps_finished_artifacts() {
    let p = Project::new();
    p.write("dag.yaml", "nodes:\n  quick:\n    op: shell\n    with: {run: \"echo done > $ZEST_OUT/x\"}\n  slow:\n    op: shell\n    in: {x: quick.out}\n    with: {run: \"sleep 60\"}\n");
    let mut child = p
        .cmd()
        .args(["run", "dag.yaml", "--report", "run.json"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = p.path().join(".zest/runs");
        let started = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| std::fs::read_to_string(e.path().join("journal.jsonl")).unwrap_or_default())
            .is_some_and(|j| j.contains("\"node\":\"slow\",\"attempt\":1"));
        if started {
            break;
        }
        assert!(Instant::now() < deadline, "slow never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let r = p.json("run.json");
    assert_eq!(r["status"], "cancelled");
    assert_eq!(node(&r, "quick")["status"], "succeeded");
    assert_eq!(node(&r, "slow")["status"], "cancelled");
    let quick = node(&r, "quick")["outputs"]["out"]["uri"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(format!("{quick}/x")).unwrap(),
        "done\n"
    );
}

#[test]
fn concurrent_runs_share_one_store_safely() {
    let p = pipeline_project();
    let mut kids: Vec<_> = (0..3)
        .map(|i| {
            p.cmd()
                .args([
                    "run",
                    "dag.yaml",
                    "--no-cache",
                    "--report",
                    &format!("r{i}.json"),
                ])
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids.iter_mut() {
        assert!(k.wait().unwrap().success());
    }
    let digests: Vec<String> = (0..3)
        .map(|i| {
            node(&p.json(&format!("r{i}.json")), "short")["outputs"]["data"]["digest"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    let o = p.zest(&["store", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn graph_ops_and_schema() {
    let p = pipeline_project();
    let o = p.zest(&["graph", "dag.yaml", "--format", "dot"]);
    let dot = String::from_utf8_lossy(&o.stdout);
    assert!(
        dot.contains("\"load\" -> \"short\" [label=\"data → docs\"]"),
        "{dot}"
    );
    let o = p.zest(&["graph", "dag.yaml"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("flowchart TD"));
    let o = p.zest(&["ops"]);
    let ops = String::from_utf8_lossy(&o.stdout);
    for op in ["noop", "shell", "data.load", "data.sql"] {
        assert!(ops.contains(op), "{ops}");
    }
    let o = p.zest(&["ops", "data.sql", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ports"]["outputs"][0]["name"], "data");
    assert_eq!(v["config_schema"]["required"][0], "query");
    let o = p.zest(&["ops", "data.sqll"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean `data.sql`?"));
    let o = p.zest(&["schema"]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        s["$defs"]["op:data.load"]["properties"]["paths"].is_object(),
        "{s}"
    );
    assert_eq!(
        s["properties"]["nodes"]["additionalProperties"]["$ref"],
        "#/$defs/node"
    );
}

/// The one run directory under `.zest/runs`.
fn run_dir(p: &Project) -> std::path::PathBuf {
    let runs = p.path().join(".zest/runs");
    let mut dirs: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

#[test]
fn node_logs_hold_what_nodes_print_and_long_nodes_are_followed_live() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        r#"
nodes:
  quiet:
    op: noop
  talks:
    op: noop
    with: {message: "hello from talks"}
  slow_talker:
    op: noop
    with: {message: "still going", sleep_ms: 2500}
"#,
    );
    let mut child = p
        .cmd()
        .args(["run", "dag.yaml", "--quiet"])
        .spawn()
        .unwrap();
    // While the slow node runs, its log is already there under its own name.
    let t = Instant::now();
    let mut live = None;
    while t.elapsed() < Duration::from_secs(2) && live.is_none() {
        std::thread::sleep(Duration::from_millis(50));
        if p.path().join(".zest/runs").exists() {
            let log = run_dir(&p).join("logs/slow_talker.log");
            if let Ok(text) = std::fs::read_to_string(&log) {
                if text.contains("still going") {
                    live = Some(t.elapsed());
                }
            }
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before its log was seen"
    );
    assert!(live.is_some(), "no live log for the running node");
    assert!(child.wait().unwrap().success());
    let logs = run_dir(&p).join("logs");
    assert_eq!(
        std::fs::read_to_string(logs.join("talks.log")).unwrap(),
        "hello from talks\n"
    );
    assert_eq!(
        std::fs::read_to_string(logs.join("slow_talker.log")).unwrap(),
        "still going\n"
    );
    // A node that printed nothing has no log file, and workers leave no spool behind.
    assert!(!logs.join("quiet.log").exists());
    let names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".log")), "{names:?}");
}

#[test]
fn small_outputs_are_inline_and_still_materialise_for_consumers() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        r#"
nodes:
  small:
    op: noop
    with: {tag: inline}
  read:
    op: shell
    in: {x: small.out}
    with: {run: "cat \"$ZEST_IN_X/noop.json\" > \"$ZEST_OUT/copy.json\""}
"#,
    );
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    let d = node(&r, "small")["outputs"]["out"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let m = manifest(&p, &d);
    // The payload travels in the manifest; the same document is the node's cache entry.
    assert!(m["inline"]["noop.json"].is_string(), "{m}");
    assert_eq!(m["cache_key"], node(&r, "small")["cache_key"], "{m}");
    // The consumer saw the real file.
    let copy = node(&r, "read")["outputs"]["out"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let copied = manifest(&p, &copy);
    assert_eq!(copied["files"][0]["sha256"], m["files"][0]["sha256"]);
    let o = p.zest(&["store", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
    // Tampering with an inline payload is caught.
    let path = p.path().join(format!(".zest/manifests/{d}.json"));
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["inline"]["noop.json"] = serde_json::Value::String("dGFtcGVyZWQ=".into());
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let o = p.zest(&["store", "verify", &d]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("does not match"), "{}", text(&o));
}

#[test]
fn a_worker_dying_hands_back_the_nodes_queued_on_it() {
    // One worker (--cpus 1): once shell nodes have proven short, the scheduler queues
    // nodes behind the running one. The worker is then killed mid-queue; the queued nodes
    // must run on a new worker, once each, and only the killer fails.
    // s0..s4 run first; the killer becomes ready after s2, s5..s29 after s4, so they
    // queue up behind it.
    let mut dag = String::from("nodes:\n");
    for i in 0..30 {
        let input = if i >= 5 { "    in: {x: s4.out}\n" } else { "" };
        dag.push_str(&format!(
            "  s{i}:\n    op: shell\n{input}    with: {{run: \"echo {i} > $ZEST_OUT/n\"}}\n"
        ));
    }
    dag.push_str("  killer:\n    op: shell\n    in: {x: s2.out}\n    with: {run: \"kill -KILL $PPID; sleep 10\"}\n");
    let p = Project::new();
    p.write("dag.yaml", &dag);
    let o = p.zest(&["run", "dag.yaml", "--cpus", "1", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = p.json("run.json");
    assert!(
        node(&r, "killer")["error"]
            .as_str()
            .unwrap()
            .contains("SIGKILL"),
        "{r}"
    );
    for i in 0..30 {
        let n = node(&r, &format!("s{i}"));
        assert_eq!(n["status"], "succeeded", "{n}");
        assert_eq!(n["attempts"], 1, "{n}");
    }
}

#[test]
fn node_exec_runs_one_task_with_its_output_in_the_log() {
    let p = Project::new();
    let root = p.path().display().to_string();
    let task = serde_json::json!({
        "run_id": "r1", "dag": "d", "node": "hello", "op": "noop",
        "config": {"sleep_ms": 0, "tag": "exec", "message": "printed by the operator"},
        "cache_key": "k".repeat(64), "attempt": 1, "inputs": {},
        "outputs": [["out", "files"]],
        "store": {"url": format!("{root}/store"), "s3": {"endpoint": null},
                  "download_dir": format!("{root}/downloads")},
        "scratch": format!("{root}/scratch/hello-1"),
        "log": format!("{root}/logs/hello.log"),
        "env": {}, "trace_id": "", "span_id": ""
    });
    p.write("task.json", &task.to_string());
    let o = p.zest(&["node", "exec", "--task", "task.json"]);
    assert!(o.status.success(), "{}", text(&o));
    // stdout is exactly the answer; what the operator printed is in the node's log.
    let answer: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON answer");
    let digest = answer["outputs"]["out"]["digest"].as_str().unwrap();
    assert!(p
        .path()
        .join(format!("store/manifests/{digest}.json"))
        .exists());
    assert_eq!(
        std::fs::read_to_string(p.path().join("logs/hello.log")).unwrap(),
        "printed by the operator\n"
    );
}
