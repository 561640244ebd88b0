//! The artifact store on a real S3-compatible server (SeaweedFS, started by the test).

mod common;
use common::{node, port, text, Project, Service};
use std::time::{Duration, Instant};

const DAG: &str = r#"
nodes:
  load:
    op: data.load
    with: {paths: ["data/*.jsonl"]}
  short:
    op: data.sql
    in: {docs: load.data}
    with: {query: "SELECT id, text FROM docs WHERE id < 3 ORDER BY id"}
  report:
    op: shell
    in: {d: short.data}
    with: {run: "cp $ZEST_IN_D/data.parquet $ZEST_OUT/copy.parquet"}
"#;

fn s3_env(cmd: &mut std::process::Command, s: &Service) {
    cmd.env("AWS_ACCESS_KEY_ID", s.get("ZEST_S3_ACCESS_KEY"))
        .env("AWS_SECRET_ACCESS_KEY", s.get("ZEST_S3_SECRET_KEY"))
        .env("AWS_ENDPOINT_URL", s.get("ZEST_S3_ENDPOINT"))
        .env("AWS_REGION", "us-east-1")
        .env("ZEST_S3_MAX_RETRIES", "1")
        .env_remove("AWS_PROFILE");
}

fn zest_s3(p: &Project, s: &Service, args: &[&str]) -> std::process::Output {
    let mut c = p.cmd();
    s3_env(&mut c, s);
    c.args(args).output().unwrap()
}

#[test]
fn runs_against_s3_caches_and_survives_the_server_dying() {
    let services = tempfile::tempdir().unwrap();
    let s3_port = port(12000, 0);
    let s = Service::start(
        "seaweed",
        services.path(),
        &[s3_port.to_string(), "zest-test".into()],
    );
    let p = Project::new();
    p.write("data/a.jsonl", "{\"id\": 1, \"text\": \"insulin\"}\n{\"id\": 2, \"text\": \"heparin\"}\n{\"id\": 3, \"text\": \"warfarin\"}\n");
    p.write("dag.yaml", DAG);
    let store = "s3://zest-test/runs-a";

    let o = zest_s3(
        &p,
        &s,
        &["run", "dag.yaml", "--store", store, "--report", "r1.json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r1 = p.json("r1.json");
    let short = &node(&r1, "short")["outputs"]["data"];
    assert!(
        short["uri"]
            .as_str()
            .unwrap()
            .starts_with("s3://zest-test/runs-a/artifacts/"),
        "{short}"
    );
    assert_eq!(r1["store"], store);

    let o = zest_s3(
        &p,
        &s,
        &["run", "dag.yaml", "--store", store, "--report", "r2.json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r2 = p.json("r2.json");
    for n in ["load", "short", "report"] {
        assert_eq!(node(&r2, n)["status"], "cached", "{r2}");
    }
    assert_eq!(
        node(&r2, "short")["outputs"]["data"]["digest"],
        short["digest"]
    );

    let run_id = r1["run_id"].as_str().unwrap();
    let o = zest_s3(&p, &s, &["lineage", &format!("{run_id}:report.out")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("node `load` (data.load"),
        "{}",
        text(&o)
    );
    let o = zest_s3(&p, &s, &["store", "verify", "--store", store]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("3 artifact(s) checked, 0 bad"),
        "{}",
        text(&o)
    );

    // Stop the server while a node runs: that node fails after its retries with a clear
    // error, and what was committed before is still there once the server is back.
    p.write(
        "slow.yaml",
        "nodes:\n  first:\n    op: shell\n    with: {run: \"echo one > $ZEST_OUT/one\"}\n  second:\n    op: shell\n    in: {x: first.out}\n    retries: {max: 2, backoff: 200ms}\n    with: {run: \"sleep 3; echo two > $ZEST_OUT/two\"}\n",
    );
    let mut c = p.cmd();
    s3_env(&mut c, &s);
    let mut child = c
        .args(["run", "slow.yaml", "--store", store, "--report", "r3.json"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = std::fs::read_dir(p.path().join(".zest/runs"))
            .unwrap()
            .flatten()
            .any(|e| {
                std::fs::read_to_string(e.path().join("journal.jsonl"))
                    .unwrap_or_default()
                    .contains("\"node\":\"second\",\"attempt\":1")
            });
        if started {
            break;
        }
        assert!(Instant::now() < deadline, "second never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.stop();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let r3 = p.json("r3.json");
    assert_eq!(node(&r3, "first")["status"], "succeeded");
    let second = node(&r3, "second");
    assert_eq!(second["status"], "failed");
    assert_eq!(second["attempts"], 3, "{second}");
    let err = second["error"].as_str().unwrap();
    assert!(err.contains("store s3://zest-test/runs-a"), "{err}");
    assert!(err.contains("after 3 attempts"), "{err}");

    let s = Service::start("seaweed", services.path(), &[s3_port.to_string()]);
    let first = node(&r3, "first")["outputs"]["out"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let o = zest_s3(&p, &s, &["store", "verify", "--store", store, &first]);
    assert!(o.status.success(), "{}", text(&o));
    let o = zest_s3(&p, &s, &["store", "verify", "--store", store]);
    assert!(o.status.success(), "{}", text(&o));
    let o = zest_s3(
        &p,
        &s,
        &[
            "resume",
            r3["run_id"].as_str().unwrap(),
            "--report",
            "r4.json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(node(&p.json("r4.json"), "second")["status"], "succeeded");
}
