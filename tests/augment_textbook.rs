//! `augment.textbook` end to end: annotated documents (with the columns `clean.entities` and
//! `clean.relations` write) go through `data.load` → `augment.textbook`; SQL nodes check
//! that templates are filled, that provenance offsets point at the source passage, and
//! that the output is a function of the input and the seed.

mod common;
use common::{node, text, Project};

/// (mention, type, canonical term) of the entities to annotate, every occurrence.
type Mentions<'a> = &'a [(&'a str, &'a str, &'a str)];
/// (head, relation, tail, sentence).
type Triples<'a> = &'a [(&'a str, &'a str, &'a str, &'a str)];

const EN1: &str = "Metformin is a first-line drug for type 2 diabetes. In a cohort of 200 adults, metformin treats type 2 diabetes effectively but may cause nausea.\n\nLisinopril lowers blood pressure in hypertension. Patients often report dizziness.";
const EN2: &str = "Patients aged ≥65 years with COPD received tiotropium. Spirometry confirms COPD in smokers with chronic cough. β-blockers such as atenolol can cause fatigue.";
const ZH1: &str =
    "二甲双胍是治疗2型糖尿病的一线药物。研究表明二甲双胍可用于治疗2型糖尿病，但可能引起恶心。";

fn doc(id: &str, text: &str, mentions: Mentions, triples: Triples) -> serde_json::Value {
    let chars: Vec<char> = text.chars().collect();
    let mut ents = Vec::new();
    for (m, ty, term) in mentions {
        let mc: Vec<char> = m.chars().collect();
        for i in 0..=chars.len() - mc.len() {
            if chars[i..i + mc.len()] == mc[..] {
                ents.push((i, i + mc.len(), *m, *ty, *term));
            }
        }
    }
    ents.sort();
    let ents: Vec<serde_json::Value> = ents
        .iter()
        .map(|(s, e, m, ty, term)| {
            serde_json::json!({"start": s, "end": e, "text": m, "type": ty, "term": term,
                               "code": if *ty == "disease" { Some("D0001") } else { None }})
        })
        .collect();
    let type_of = |t: &str| {
        mentions
            .iter()
            .find(|m| m.2 == t)
            .map(|m| m.1)
            .unwrap_or("unknown")
    };
    let rels: Vec<serde_json::Value> = triples
        .iter()
        .map(|(h, r, t, s)| {
            serde_json::json!({"head": h, "head_type": type_of(h), "relation": r, "tail": t,
                               "tail_type": type_of(t), "sentence": s})
        })
        .collect();
    let n = ents.len();
    serde_json::json!({
        "doc_id": id, "source": "pubmed_test", "text": text,
        "entities": ents, "entity_count": n,
        "entity_density": n as f64 / text.split_whitespace().count() as f64,
        "relations": rels, "relation_count": rels.len(),
    })
}

fn corpus() -> String {
    let docs = [
        doc(
            "en1",
            EN1,
            &[
                ("Metformin", "drug", "metformin"),
                ("metformin", "drug", "metformin"),
                ("type 2 diabetes", "disease", "type 2 diabetes"),
                ("nausea", "symptom", "nausea"),
                ("Lisinopril", "drug", "lisinopril"),
                ("hypertension", "disease", "hypertension"),
                ("dizziness", "symptom", "dizziness"),
            ],
            &[
                ("metformin", "treats", "type 2 diabetes", "In a cohort of 200 adults, metformin treats type 2 diabetes effectively but may cause nausea."),
                ("metformin", "causes_adverse_effect", "nausea", "In a cohort of 200 adults, metformin treats type 2 diabetes effectively but may cause nausea."),
                ("lisinopril", "treats", "hypertension", "Lisinopril lowers blood pressure in hypertension."),
            ],
        ),
        doc(
            "en2",
            EN2,
            &[
                ("COPD", "disease", "chronic obstructive pulmonary disease"),
                ("tiotropium", "drug", "tiotropium"),
                ("Spirometry", "test", "spirometry"),
                ("chronic cough", "symptom", "chronic cough"),
                ("atenolol", "drug", "atenolol"),
                ("fatigue", "symptom", "fatigue"),
            ],
            &[
                ("spirometry", "diagnoses", "chronic obstructive pulmonary disease", "Spirometry confirms COPD in smokers with chronic cough."),
                ("atenolol", "causes_adverse_effect", "fatigue", "β-blockers such as atenolol can cause fatigue."),
                ("tiotropium", "unknown_relation", "fatigue", ""),
            ],
        ),
        doc(
            "zh1",
            ZH1,
            &[
                ("二甲双胍", "drug", "二甲双胍"),
                ("2型糖尿病", "disease", "2型糖尿病"),
                ("恶心", "symptom", "恶心"),
            ],
            &[("二甲双胍", "treats", "2型糖尿病", "研究表明二甲双胍可用于治疗2型糖尿病，但可能引起恶心。")],
        ),
    ];
    docs.iter().map(|d| d.to_string() + "\n").collect()
}

fn dag(seed: u64, extra: &str) -> String {
    format!(
        r#"
name: textbook
nodes:
  load:
    op: data.load
    with: {{paths: ["data/docs.jsonl"]}}
  aug:
    op: augment.textbook
    in: {{docs: load.data}}
    with: {{seed: {seed}, keep_original: true, max_per_doc: 12{extra}}}
  bad_provenance:
    op: data.sql
    in: {{aug: aug.docs, src: load.data}}
    with:
      query: >-
        SELECT a.doc_id FROM aug a JOIN src s ON a.source_doc_id = s.doc_id
        WHERE a.passage_end > character_length(s.text) OR a.passage_start >= a.passage_end
        OR (a.kind = 'cloze' AND strpos(replace(a.question, '____', a.answer),
            substr(s.text, a.passage_start + 1, CAST(a.passage_end - a.passage_start AS BIGINT))) = 0)
        OR (a.kind = 'qa' AND strpos(a.text,
            substr(s.text, a.passage_start + 1, CAST(a.passage_end - a.passage_start AS BIGINT))) = 0)
        OR (a.kind = 'original' AND a.text <> s.text)
        OR a.source <> 'pubmed_test'
  checked:
    op: data.sql
    in: {{aug: aug.docs}}
    with: {{query: "SELECT doc_id FROM aug WHERE kind IN ('cloze', 'qa')"}}
  qa_en:
    op: data.sql
    in: {{aug: aug.docs}}
    with: {{query: "SELECT doc_id FROM aug WHERE kind = 'qa' AND question = 'Which condition is metformin used to treat?' AND answer = 'type 2 diabetes' AND text LIKE 'Question: Which condition is metformin used to treat?%Answer: type 2 diabetes%Explanation: In a cohort%'"}}
  qa_zh:
    op: data.sql
    in: {{aug: aug.docs}}
    with: {{query: "SELECT doc_id FROM aug WHERE kind = 'qa' AND question = '二甲双胍可用于治疗哪种疾病？' AND answer = '2型糖尿病' AND language = 'zh' AND passage_start = 18 AND passage_end = 45"}}
  qa_diag:
    op: data.sql
    in: {{aug: aug.docs}}
    with: {{query: "SELECT doc_id FROM aug WHERE question = 'Which test can help diagnose chronic obstructive pulmonary disease?' AND answer = 'spirometry'"}}
  mixed_options:
    op: data.sql
    in: {{aug: aug.docs}}
    with: {{query: "SELECT doc_id FROM aug WHERE kind = 'cloze' AND language = 'zh' AND question LIKE '%Metformin%'"}}
  originals:
    op: data.sql
    in: {{aug: aug.docs}}
    with: {{query: "SELECT doc_id FROM aug WHERE kind = 'original' AND doc_id = source_doc_id AND question IS NULL"}}
  over_cap:
    op: data.sql
    in: {{aug: aug.docs}}
    with: {{query: "SELECT source_doc_id FROM aug WHERE kind <> 'original' GROUP BY source_doc_id HAVING count(*) > 12"}}
"#
    )
}

fn run(seed: u64, extra: &str) -> (Project, serde_json::Value) {
    let p = Project::new();
    p.write("data/docs.jsonl", &corpus());
    p.write("dag.yaml", &dag(seed, extra));
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    let log = std::fs::read_dir(p.path().join(".zest/runs"))
        .map(|d| {
            d.flatten()
                .map(|d| d.path().join("logs/aug.log"))
                .filter(|l| l.exists())
                .map(|l| std::fs::read_to_string(l).unwrap())
                .collect::<String>()
        })
        .unwrap_or_default();
    assert!(o.status.success(), "{}\n{log}", text(&o));
    let r = p.json("run.json");
    (p, r)
}

fn digest(r: &serde_json::Value) -> String {
    node(r, "aug")["outputs"]["docs"]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn rows(p: &Project, r: &serde_json::Value, n: &str) -> u64 {
    let port = if n == "aug" { "docs" } else { "data" };
    let digest = node(r, n)["outputs"][port]["digest"].as_str().unwrap();
    p.json(&format!(".zest/manifests/{digest}.json"))["meta"]["rows"]
        .as_u64()
        .unwrap()
}

#[test]
fn templates_provenance_and_determinism() {
    let (p, r) = run(5, "");
    let total = rows(&p, &r, "aug");
    eprintln!("{total} rows");
    assert!(total > 20, "{total}");
    assert_eq!(rows(&p, &r, "bad_provenance"), 0);
    assert!(rows(&p, &r, "checked") >= 10);
    assert_eq!(rows(&p, &r, "qa_en"), 1);
    assert_eq!(rows(&p, &r, "qa_zh"), 1);
    assert_eq!(rows(&p, &r, "qa_diag"), 1);
    assert_eq!(rows(&p, &r, "originals"), 3);
    assert_eq!(rows(&p, &r, "mixed_options"), 0);
    assert_eq!(rows(&p, &r, "over_cap"), 0);

    // The same seed in a fresh project gives the same bytes; another seed does not.
    let (_, again) = run(5, "");
    assert_eq!(digest(&again), digest(&r));
    let (_, other) = run(6, "");
    assert_ne!(digest(&other), digest(&r));
}

#[test]
fn kinds_and_missing_annotations() {
    let (p, r) = run(1, ", kinds: [qa]");
    // Originals (3) and QA pairs only: en1 3 triples × 2 directions, en2 2 × 2, zh1 1 × 2.
    assert_eq!(rows(&p, &r, "aug"), 3 + 6 + 4 + 2);
    assert_eq!(rows(&p, &r, "checked"), 12);

    let p = Project::new();
    p.write(
        "data/docs.jsonl",
        "{\"doc_id\": \"a\", \"text\": \"Aspirin treats pain.\"}\n",
    );
    p.write(
        "dag.yaml",
        r#"
name: bad
nodes:
  load: {op: data.load, with: {paths: ["data/docs.jsonl"]}}
  aug: {op: augment.textbook, in: {docs: load.data}, with: {kinds: [cloze]}}
"#,
    );
    let o = p.zest(&["run", "dag.yaml"]);
    assert!(!o.status.success());
    let log = std::fs::read_dir(p.path().join(".zest/runs"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join("logs/aug.log"))
        .filter(|l| l.exists())
        .map(|l| std::fs::read_to_string(l).unwrap())
        .collect::<String>();
    let all = format!("{}{log}", text(&o));
    assert!(
        all.contains("no column `entities`") && all.contains("clean.entities"),
        "{all}"
    );
}
