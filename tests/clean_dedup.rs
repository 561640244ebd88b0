//! `clean.dedup` end to end: a corpus with planted near and exact duplicates goes through
//! `data.load` → `clean.dedup`; SQL nodes count what was found, so precision and recall are
//! read from the run's manifests.

mod common;
use common::{node, text, Project};

const WORDS: &[&str] = &[
    "patient",
    "fever",
    "cough",
    "blood",
    "pressure",
    "diabetes",
    "insulin",
    "therapy",
    "chronic",
    "acute",
    "renal",
    "cardiac",
    "failure",
    "trial",
    "dose",
    "placebo",
    "risk",
    "outcome",
    "cohort",
    "study",
    "hospital",
    "treatment",
    "infection",
    "antibiotic",
    "symptom",
    "diagnosis",
    "imaging",
    "surgery",
    "recovery",
    "mortality",
    "the",
    "of",
    "and",
    "with",
    "in",
    "was",
];

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn word(&mut self) -> &'static str {
        WORDS[(self.next() % WORDS.len() as u64) as usize]
    }
}

const DAG: &str = r#"
name: dedup
nodes:
  load:
    op: data.load
    with: {paths: ["data/*.jsonl"]}
  dedup:
    op: clean.dedup
    in: {docs: load.data}
  true_pos:
    op: data.sql
    in: {dups: dedup.duplicates}
    with: {query: "SELECT doc_id FROM dups WHERE kept_doc_id = replace(replace(doc_id, 'copy', 'orig'), 'exact', 'orig')"}
  kept_with_cluster:
    op: data.sql
    in: {docs: dedup.docs}
    with: {query: "SELECT doc_id FROM docs WHERE cluster_id IS NOT NULL"}
"#;

fn rows(p: &Project, r: &serde_json::Value, n: &str, port: &str) -> u64 {
    let digest = node(r, n)["outputs"][port]["digest"].as_str().unwrap();
    p.json(&format!(".zest/manifests/{digest}.json"))["meta"]["rows"]
        .as_u64()
        .unwrap()
}

#[test]
fn removes_planted_duplicates_with_high_precision_and_recall() {
    let p = Project::new();
    let mut rng = Lcg(7);
    let mut lines = Vec::new();
    let mut planted = 0u64;
    for i in 0..400 {
        let words: Vec<&str> = (0..150).map(|_| rng.word()).collect();
        lines.push(serde_json::json!({"doc_id": format!("orig-{i}"), "text": words.join(" ")}));
        if i % 4 == 0 {
            // A near copy: one word in a hundred replaced.
            let copy: Vec<&str> = words
                .iter()
                .map(|w| {
                    if rng.next().is_multiple_of(100) {
                        rng.word()
                    } else {
                        w
                    }
                })
                .collect();
            lines.push(serde_json::json!({"doc_id": format!("copy-{i}"), "text": copy.join(" ")}));
            planted += 1;
        }
        if i % 40 == 1 {
            // An exact copy up to case and punctuation.
            let t = format!("{}.", words.join(" ").to_uppercase());
            lines.push(serde_json::json!({"doc_id": format!("exact-{i}"), "text": t}));
            planted += 1;
        }
    }
    let body: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    p.write("data/docs.jsonl", &(body.join("\n") + "\n"));
    p.write("dag.yaml", DAG);
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    let total = lines.len() as u64;
    let kept = rows(&p, &r, "dedup", "docs");
    let removed = rows(&p, &r, "dedup", "duplicates");
    let true_pos = rows(&p, &r, "true_pos", "data");
    assert_eq!(kept + removed, total);
    assert_eq!(rows(&p, &r, "kept_with_cluster", "data"), kept);
    let recall = true_pos as f64 / planted as f64;
    let precision = true_pos as f64 / removed.max(1) as f64;
    eprintln!("{planted} planted: removed {removed}, recall {recall:.3}, precision {precision:.3}");
    assert!(recall >= 0.95, "recall {recall}");
    assert!(precision >= 0.95, "precision {precision}");
}

#[test]
fn a_missing_text_column_is_named() {
    let p = Project::new();
    p.write("data/docs.jsonl", "{\"doc_id\": \"a\", \"body\": \"x\"}\n");
    p.write("dag.yaml", DAG);
    let o = p.zest(&["run", "dag.yaml"]);
    assert!(!o.status.success());
    let log = std::fs::read_dir(p.path().join(".zest/runs"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join("logs/dedup.log"))
        .find(|l| l.exists())
        .map(|l| std::fs::read_to_string(l).unwrap())
        .unwrap_or_default();
    let all = format!("{}{log}", text(&o));
    assert!(
        all.contains("no column `text`") && all.contains("body"),
        "{all}"
    );
}
