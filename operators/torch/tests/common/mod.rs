//! Helpers of the libtorch operators' end-to-end tests: the `zest` binary built beside them,
//! the torch venv's Python, and a project directory holding one DAG.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `zest`, built beside this test's binary (`make test` builds every binary first).
pub fn zest_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("zest");
    assert!(
        p.exists(),
        "{} is missing: build the workspace's binaries first (`make build`)",
        p.display()
    );
    p
}

pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ZEST_PYTHON") {
        return PathBuf::from(p);
    }
    Path::new(&std::env::var_os("HOME").unwrap()).join(".cache/zest-py/torch-venv/bin/python")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    pub fn new(dag: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dag.yaml"), dag).unwrap();
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(zest_bin());
        c.current_dir(self.path())
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("ZEST_STORE")
            .env_remove("ZEST_STATE_DIR")
            .env("CI", "1");
        c
    }

    pub fn zest(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    pub fn report(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.path().join("run.json")).unwrap())
            .unwrap()
    }

    /// Node `node`'s entry in the last report.
    pub fn node(&self, node: &str) -> serde_json::Value {
        self.report()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == node)
            .unwrap_or_else(|| panic!("no node {node}"))
            .clone()
    }

    /// The directory of output `port` of node `node` in the last report.
    pub fn output(&self, node: &str, port: &str) -> PathBuf {
        let n = self.node(node);
        let digest = n["outputs"][port]["digest"].as_str().unwrap();
        self.path().join(".zest/artifacts").join(digest)
    }

    /// The log of node `node` in the last report.
    pub fn log(&self, node: &str) -> String {
        let n = self.node(node);
        n["log"]
            .as_str()
            .map(|l| {
                std::fs::read_to_string(self.path().join(l))
                    .or_else(|_| std::fs::read_to_string(l))
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// File `rel` of output `port` of node `node`: inline in its manifest (small outputs) or
    /// in the payload directory.
    pub fn file(&self, node: &str, port: &str, rel: &str) -> Vec<u8> {
        use base64::Engine;
        let digest = self.digest(node, port);
        let manifest = self.path().join(format!(".zest/manifests/{digest}.json"));
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        if let Some(b) = m["inline"][rel].as_str() {
            return base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        }
        std::fs::read(self.output(node, port).join(rel)).unwrap()
    }

    /// The `report.json` of node `node`'s `report` output.
    pub fn report_json(&self, node: &str) -> serde_json::Value {
        serde_json::from_slice(&self.file(node, "report", "report.json")).unwrap()
    }

    pub fn digest(&self, node: &str, port: &str) -> String {
        self.output(node, port)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

/// A DAG named `name` that trains a tokenizer on the embedded MedQA sample and initialises a
/// tiny model with it, seeded by `seed` (node `init`, port `model`); `medqa` loads the
/// questions.
pub fn tiny_model_dag(name: &str, seed: u64) -> String {
    let medqa = repo().join("dags/data/medqa_sample.jsonl");
    format!(
        r#"name: {name}
nodes:
  medqa:
    op: data.load
    with: {{paths: ["{}"]}}
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
    with: {{size: tiny, seed: {seed}}}
"#,
        medqa.display()
    )
}

/// `zest model serve` started on `model` (served as `tiny`, on the CPU) at 127.0.0.1:`port`,
/// killed by PID when dropped; its stdout lines are collected.
pub struct Server {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the server and waits (at most 2 minutes) until it listens.
    pub fn start(p: &Project, model: &str, port: u16) -> Server {
        use std::io::BufRead;
        let mut child = p
            .cmd()
            .args([
                "model",
                "serve",
                "--model",
                model,
                "--port",
                &port.to_string(),
            ])
            .args(["--device", "cpu", "--served-model-name", "tiny"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let s = Server { child, lines };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !s
            .lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("serving `tiny` on http://127.0.0.1:"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        s
    }

    /// Requests per batch, from the server's `batch: N request(s), …` lines so far.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("batch: ")?.split(' ').next()?.parse().ok())
            .collect()
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.batch_sizes().iter().sum()
    }
}
