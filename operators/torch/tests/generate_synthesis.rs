//! `generate.reasoning` and `generate.rejection` on a model artifact (`local`) and on the same
//! model behind `zest model serve` (`openai`, real HTTP): the same records for the same seed;
//! a run killed during synthesis and resumed re-sends no finished request.

mod common;
use common::{text, Project, Server};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn port() -> u16 {
    16000 + (std::process::id() % 97) as u16 * 20
}

/// Both operators twice: on the artifact, and on the same model over HTTP at `base`.
fn synthesis_dag(model_dag: &str, base: &str) -> String {
    let local = "{device: cpu, max_tokens: 24}";
    let http = format!(
        "{{kind: openai, base_url: \"{base}\", model: tiny, max_tokens: 24, concurrency: 3}}"
    );
    let mut d = model_dag.replace("name: model", "name: synth");
    for (suffix, role, ins) in [
        (
            "local",
            local.to_string(),
            ", reasoner: init.model, critic: init.model",
        ),
        ("http", http.clone(), ""),
    ] {
        d.push_str(&format!(
            r#"  reasoning_{suffix}:
    op: generate.reasoning
    in: {{questions: medqa.data{ins}}}
    with: {{limit: 4, max_steps: 2, seed: 11, reasoner: {role}, critic: {role}}}
"#
        ));
    }
    for (suffix, role, ins) in [
        (
            "local",
            "{device: cpu, max_tokens: 24, temperature: 0.7}".to_string(),
            ", policy: init.model",
        ),
        (
            "http",
            http.replace("max_tokens: 24", "max_tokens: 24, temperature: 0.7"),
            "",
        ),
    ] {
        d.push_str(&format!(
            r#"  rejection_{suffix}:
    op: generate.rejection
    in: {{prompts: medqa.data{ins}}}
    with: {{limit: 4, n: 3, seed: 11, filters: {{min_think_chars: 1}}, policy: {role}}}
"#
        ));
    }
    d
}

fn model_dag() -> String {
    common::tiny_model_dag("model", 4)
}

fn rows(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(common::python())
        .args([
            "-c",
            "import sys, json, pyarrow.parquet as pq; print(json.dumps(pq.read_table(sys.argv[1]).to_pylist()))",
        ])
        .arg(dir.join("data.parquet"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn local_and_served_models_give_the_same_records() {
    let p = Project::new(&model_dag());
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let model = p.output("init", "model");
    let port = port();
    let server = Server::start(&p, model.to_str().unwrap(), port);
    let base = format!("http://127.0.0.1:{port}/v1");
    std::fs::write(
        p.path().join("dag.yaml"),
        synthesis_dag(&model_dag(), &base),
    )
    .unwrap();
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    for (node, ports) in [
        ("reasoning", &["records", "rejected"][..]),
        ("rejection", &["pairs", "samples"][..]),
    ] {
        for port in ports {
            assert_eq!(
                rows(&p.output(&format!("{node}_local"), port)),
                rows(&p.output(&format!("{node}_http"), port)),
                "{node}.{port}"
            );
            assert_eq!(
                p.digest(&format!("{node}_local"), port),
                p.digest(&format!("{node}_http"), port),
                "{node}.{port}"
            );
        }
    }
    // The samples are the model's own: 4 questions × 3, sampled at 0.7, not all alike.
    let samples = rows(&p.output("rejection_http", "samples"));
    assert_eq!(samples.len(), 12);
    let distinct: std::collections::HashSet<&str> = samples
        .iter()
        .map(|s| s["response"].as_str().unwrap())
        .collect();
    assert!(distinct.len() > 6, "{distinct:?}");
    // Every question was worked on: rewritten, at least one step proposed and reviewed.
    let report = p.report_json("reasoning_http");
    assert_eq!(report["questions"], 4);
    assert!(report["proposals"].as_u64().unwrap() >= 4, "{report}");
    let served = server.requests();
    let sent = |n: &str, role: &str| {
        let r = p.report_json(n);
        r["requests"][role]["sent"].as_u64().unwrap() as usize
    };
    assert_eq!(
        served,
        sent("reasoning_http", "reasoner")
            + sent("reasoning_http", "critic")
            + sent("rejection_http", "policy"),
        "every HTTP request is counted once"
    );

    // A rerun with a changed filter recomputes the node but sends nothing: the responses are
    // kept in the store under their requests.
    let changed =
        synthesis_dag(&model_dag(), &base).replace("min_think_chars: 1", "min_think_chars: 2");
    std::fs::write(p.path().join("dag.yaml"), changed).unwrap();
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(server.requests(), served, "the rerun sent requests");
    assert_eq!(
        p.node("rejection_http")["status"],
        "succeeded",
        "the changed node ran"
    );
}

#[test]
fn a_killed_synthesis_resumes_without_resending_finished_requests() {
    let p = Project::new(&model_dag());
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let model = p.output("init", "model");
    let port = port() + 7;
    let server = Server::start(&p, model.to_str().unwrap(), port);
    let base = format!("http://127.0.0.1:{port}/v1");
    let dag = format!(
        "{}  rejection:\n    op: generate.rejection\n    in: {{prompts: medqa.data}}\n    with: {{n: 2, seed: 3, policy: {{kind: openai, base_url: \"{base}\", model: tiny, max_tokens: 160, concurrency: 2, temperature: 0.7}}}}\n",
        model_dag().replace("name: model", "name: resumed")
    );
    std::fs::write(p.path().join("dag.yaml"), &dag).unwrap();
    let questions = rows(&p.output("medqa", "data")).len();
    assert!(questions >= 8, "{questions}");
    let mut run = p
        .cmd()
        .args(["run", "dag.yaml", "--report", "run.json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill zest (and with it its workers) once some requests, not all, are answered.
    let deadline = Instant::now() + Duration::from_secs(300);
    while server.requests() < 3 {
        assert!(Instant::now() < deadline, "no request reached the server");
        assert!(
            run.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe {
        libc_kill(run.id() as i32, 9);
    }
    let _ = run.wait();
    std::thread::sleep(Duration::from_millis(500));
    let before = server.requests();
    assert!(
        before < questions,
        "every request finished before the kill ({before})"
    );
    let runs = p.zest(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    let o = p.zest(&["resume", &run_id, "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let report = p.report_json("rejection");
    let sent = report["requests"]["policy"]["sent"].as_u64().unwrap() as usize;
    let reused = report["requests"]["policy"]["reused"].as_u64().unwrap() as usize;
    assert_eq!(sent + reused, questions, "{report}");
    assert!(
        reused >= before.saturating_sub(2) && reused > 0,
        "{report}, {before} before the kill"
    );
    // Only requests in flight when zest died (at most `concurrency`) were sent twice.
    let total = server.requests();
    assert!(
        total - questions <= 2,
        "{total} requests for {questions} questions"
    );
    assert_eq!(rows(&p.output("rejection", "samples")).len(), questions * 2);
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
