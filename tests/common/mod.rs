//! Helpers for end-to-end tests of the `zest` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The zest binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zest"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch project directory: DAG files are written here and zest runs with it as cwd,
/// so `.zest/` (state and store) lives inside it.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file relative to the project.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A `zest` command running in the project, without tracing.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(self.path())
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("TRACEPARENT")
            .env_remove("ZEST_STORE")
            .env_remove("ZEST_STATE_DIR")
            .env("CI", "1");
        c
    }

    /// Runs zest with `args`.
    pub fn zest(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("zest runs")
    }

    /// Reads a JSON file relative to the project.
    pub fn json(&self, rel: &str) -> serde_json::Value {
        let text =
            std::fs::read_to_string(self.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        serde_json::from_str(&text).unwrap()
    }
}

/// stdout + stderr as text, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The node entry named `node` in a run.json report.
pub fn node<'a>(report: &'a serde_json::Value, node: &str) -> &'a serde_json::Value {
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("no node {node} in {report}"))
}

/// Where the test services are installed (`make test-tools`).
pub fn tools_dir() -> PathBuf {
    std::env::var_os("ZEST_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/zest-tools"))
}

/// A service started by infra/scripts/test-services.sh, stopped by PID when dropped.
pub struct Service {
    pub dir: PathBuf,
    pub name: &'static str,
    pub env: Vec<(String, String)>,
}

impl Service {
    /// Starts `start_<name> DIR ARGS…` from the services script; fails the test with the
    /// script's output if the service cannot start.
    pub fn start(name: &'static str, dir: &Path, args: &[String]) -> Service {
        let bin_ok = match name {
            "seaweed" => tools_dir().join("venv/bin/weed").exists(),
            "ray" => tools_dir().join("ray-venv/bin/ray").exists(),
            _ => tools_dir().join("bin/otelite").exists(),
        };
        assert!(
            bin_ok,
            "{name} is not installed under {}: run `make test-tools`",
            tools_dir().display()
        );
        let script = repo().join("infra/scripts/test-services.sh");
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source '{}' && start_{name} \"$@\"",
                script.display()
            ))
            .arg("bash")
            .arg(dir)
            .args(args)
            .env("ZEST_TOOLS_DIR", tools_dir())
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "cannot start {name}:\n{}", text(&out));
        let env_file = std::fs::read_to_string(dir.join(format!("{}.env", Self::parts(name)[0])))
            .unwrap_or_default();
        let env = env_file
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.trim_matches(|c| c == '"' || c == '\'').to_string(),
                )
            })
            .collect();
        Service {
            dir: dir.to_path_buf(),
            name,
            env,
        }
    }

    pub fn get(&self, key: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{key} not in {:?}", self.env))
    }

    /// The services a start function starts, stopped in reverse order (a Ray cluster is a
    /// head and a GPU node).
    fn parts(name: &str) -> Vec<&str> {
        match name {
            "ray" => vec!["ray-head", "ray-gpu"],
            n => vec![n],
        }
    }

    pub fn stop(&self) {
        let script = repo().join("infra/scripts/test-services.sh");
        for part in Self::parts(self.name).into_iter().rev() {
            let _ = Command::new("bash")
                .arg("-c")
                .arg(format!(
                    "source '{}' && stop_service \"$1\" \"$2\"",
                    script.display()
                ))
                .arg("bash")
                .arg(&self.dir)
                .arg(part)
                .env("ZEST_TOOLS_DIR", tools_dir())
                .output();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port for a test server: below 32768, spread by process id to avoid clashes between
/// test binaries running at once.
pub fn port(base: u16, slot: u16) -> u16 {
    base + (std::process::id() % 97) as u16 * 20 + slot
}

/// The rows of a Parquet file as JSON objects (Arrow's JSON encoding: nulls left out).
pub fn parquet_rows(path: &Path) -> Vec<serde_json::Value> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut w = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    for batch in reader {
        w.write(&batch.unwrap()).unwrap();
    }
    w.finish().unwrap();
    let buf = w.into_inner();
    if buf.is_empty() {
        return vec![];
    }
    serde_json::from_slice(&buf).unwrap()
}

/// The rows of the dataset a run's node wrote on `port`, read from the project's store.
pub fn output_rows(
    p: &Project,
    report: &serde_json::Value,
    n: &str,
    port: &str,
) -> Vec<serde_json::Value> {
    let digest = node(report, n)["outputs"][port]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("{n}.{port} has no output in the report"));
    parquet_rows(
        &p.path()
            .join(".zest/artifacts")
            .join(digest)
            .join("data.parquet"),
    )
}

/// The real PubMedQA abstracts of `../shared/corpus/pubmedqa_pqal.jsonl`, as (pmid, text),
/// each abstract's sections (`contexts`) joined with `sep`.
pub fn pubmed_abstracts(sep: &str) -> Vec<(String, String)> {
    let path = repo().join("../shared/corpus/pubmedqa_pqal.jsonl");
    let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let text = v["contexts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(sep);
            (v["pmid"].as_str().unwrap().to_string(), text)
        })
        .collect()
}

/// A small seeded generator (an LCG with Knuth's MMIX constants), so that test data built
/// from it is the same on every run.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value (31 bits).
    pub fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
    /// A value in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.next() % n
    }
    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    /// An element of `v`.
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// The bytes of file `rel` of artifact `digest` in the project's local store: inline in its
/// manifest (small outputs) or in the payload directory.
pub fn artifact_file(p: &Project, digest: &str, rel: &str) -> Vec<u8> {
    use base64::Engine;
    let m = p.json(&format!(".zest/manifests/{digest}.json"));
    if let Some(b) = m["inline"][rel].as_str() {
        return base64::engine::general_purpose::STANDARD
            .decode(b)
            .unwrap_or_else(|e| panic!("{digest}/{rel}: inline payload: {e}"));
    }
    let path = p.path().join(".zest/artifacts").join(digest).join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (manifest: {m})", path.display()))
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Text as compared for character error rates: whitespace collapsed to single spaces, or
/// removed entirely for Chinese (`cjk`).
pub fn cer_norm(s: &str, cjk: bool) -> Vec<char> {
    if cjk {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    } else {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .collect()
    }
}

/// Character error rate of `got` against `truth`: edits over the length of the truth.
pub fn cer(got: &str, truth: &str, cjk: bool) -> f64 {
    let (e, n) = cer_counts(got, truth, cjk);
    e as f64 / n.max(1) as f64
}

/// The edits from `got` to `truth` and the truth's length, for pooling error rates over pages.
pub fn cer_counts(got: &str, truth: &str, cjk: bool) -> (usize, usize) {
    let (g, t) = (cer_norm(got, cjk), cer_norm(truth, cjk));
    (edit_distance(&g, &t), t.len())
}

/// Every output of every node of a run report, as (`node.port`, digest), sorted.
pub fn digests(r: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| {
            let id = n["node"].as_str().unwrap().to_string();
            n["outputs"]
                .as_object()
                .unwrap()
                .iter()
                .map(move |(port, o)| {
                    (
                        format!("{id}.{port}"),
                        o["digest"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort();
    v
}

/// Waits (up to 2 minutes) until `path` exists and holds a pid.
pub fn wait_for_pid(path: &Path, what: &str) -> i32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            return pid;
        }
        assert!(std::time::Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// JSON lines of the real PubMed abstracts ([`pubmed_abstracts`]), each row's source one of
/// three, with copies planted: exact (case and punctuation changed) and near (a few words
/// changed), some far from their original.
pub fn planted_corpus() -> String {
    let abstracts = pubmed_abstracts("\n\n");
    let mut rng = Lcg(11);
    let sources = ["guideline", "textbook", "web"];
    let mut lines = Vec::new();
    let mut push = |id: String, text: String, rng: &mut Lcg| {
        let source = *rng.pick(&sources);
        lines.push(serde_json::json!({"doc_id": id, "source": source, "text": text}).to_string());
    };
    for (i, (pmid, text)) in abstracts.iter().enumerate() {
        push(format!("pmid-{pmid}"), text.clone(), &mut rng);
        if i % 9 == 0 {
            push(
                format!("exact-{pmid}"),
                format!("{}!", text.to_uppercase()),
                &mut rng,
            );
        }
        if i % 7 == 0 {
            let words: Vec<&str> = text.split(' ').collect();
            let near: Vec<&str> = words
                .iter()
                .map(|w| if rng.below(60) == 0 { "changed" } else { w })
                .collect();
            push(format!("near-{pmid}"), near.join(" "), &mut rng);
        }
    }
    // A few copies of early abstracts at the end, so clusters span every shard.
    for (pmid, text) in abstracts.iter().take(5) {
        push(format!("late-{pmid}"), text.clone(), &mut rng);
    }
    lines.join("\n") + "\n"
}
