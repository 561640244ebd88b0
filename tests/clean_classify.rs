//! `clean.classify` end to end: a medical-vs-general classifier is trained on PubMedQA
//! abstracts (medical) and general-domain text, validated on held-out examples, and applied
//! with `keep_labels` and a threshold to a third held-out set; SQL nodes count what was kept
//! and rejected. Bad configs fail with errors that name the field or column.

mod common;
use common::{node, text, Lcg, Project};

/// General-domain sentences: templates whose slots are filled from topic vocabularies.
const TEMPLATES: &[&str] = &[
    "The {a} team won the {b} after a late goal in the second half.",
    "Investors moved money into {a} as the {b} fell for a third week.",
    "Add the {a} to the pan and stir until the {b} turns golden.",
    "Our train to {a} left early, so we spent the afternoon near the {b}.",
    "The new {a} update improves battery life and makes the {b} faster.",
    "Heavy {a} is expected along the coast, with {b} later in the week.",
    "The court ruled that the {a} must pay the {b} within thirty days.",
    "She practised the {a} every evening before the {b} concert.",
    "The city council approved a plan to build a {a} next to the {b}.",
    "Our {a} garden needs more {b} before the summer.",
    "The museum opened an exhibition of {a} paintings from the {b}.",
    "He repaired the {a} of the old {b} with a borrowed toolkit.",
];
const SLOTS: &[&str] = &[
    "football",
    "league",
    "bonds",
    "market",
    "onion",
    "sauce",
    "Lisbon",
    "harbour",
    "software",
    "laptop",
    "rain",
    "sunshine",
    "landlord",
    "tenant",
    "violin",
    "spring",
    "library",
    "river",
    "vegetable",
    "compost",
    "impressionist",
    "century",
    "engine",
    "bicycle",
    "cricket",
    "championship",
    "currency",
    "index",
    "garlic",
    "butter",
    "Kyoto",
    "temple",
    "browser",
    "phone",
    "snow",
    "wind",
    "company",
    "fine",
    "piano",
    "festival",
    "stadium",
    "station",
    "flower",
    "water",
    "modern",
    "collection",
    "roof",
    "barn",
];

/// Handwritten short examples for the validation set.
const SHORT_MEDICAL: &[&str] = &[
    "The patient was given amoxicillin for acute otitis media.",
    "Metformin remains the first-line therapy for type 2 diabetes.",
    "Chest radiography showed a right lower lobe pneumonia.",
    "Serum creatinine rose after the contrast-enhanced CT scan.",
    "Randomized trials compared statins with placebo in elderly adults.",
    "Hypertension was defined as a systolic pressure above 140 mmHg.",
    "The tumour was resected and adjuvant chemotherapy was started.",
    "Children with asthma used inhaled corticosteroids twice daily.",
];
const SHORT_GENERAL: &[&str] = &[
    "The bakery on the corner sells fresh bread every morning.",
    "Stock prices rallied after the central bank held rates steady.",
    "The striker scored twice in the final ten minutes.",
    "We hiked to the lake and camped under the stars.",
    "The new phone has a brighter screen and a better camera.",
    "Snow closed the mountain pass for most of the weekend.",
    "The orchestra rehearsed the symphony for the gala night.",
    "Our neighbours painted their fence a bright shade of blue.",
];

fn general(rng: &mut Lcg) -> String {
    let n = 2 + rng.next() % 4;
    (0..n)
        .map(|_| {
            let t = TEMPLATES[rng.next() % TEMPLATES.len()];
            t.replace("{a}", SLOTS[rng.next() % SLOTS.len()])
                .replace("{b}", SLOTS[rng.next() % SLOTS.len()])
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn abstracts() -> Vec<String> {
    common::pubmed_abstracts(" ")
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

fn jsonl(rows: &[(String, String, &str)], labelled: bool) -> String {
    rows.iter()
        .map(|(id, t, l)| {
            let v = if labelled {
                serde_json::json!({"doc_id": id, "text": t, "label": l})
            } else {
                serde_json::json!({"doc_id": id, "text": t})
            };
            v.to_string() + "\n"
        })
        .collect()
}

const DAG: &str = r#"
name: classify
nodes:
  train_data:
    op: data.load
    with: {paths: ["data/train.jsonl"]}
  valid_data:
    op: data.load
    with: {paths: ["data/valid.jsonl"]}
  docs:
    op: data.load
    with: {paths: ["data/docs.jsonl"]}
  train:
    op: clean.classify
    in: {train: train_data.data, valid: valid_data.data}
    with: {mode: train, buckets: 262144, dim: 32, epochs: 5, seed: 7}
  apply:
    op: clean.classify
    in: {docs: docs.data, model: train.model}
    with: {mode: apply, keep_labels: [medical], threshold: 0.5, scores: true}
  kept_medical:
    op: data.sql
    in: {docs: apply.docs}
    with: {query: "SELECT doc_id FROM docs WHERE doc_id LIKE 'med%' AND label = 'medical' AND label_score >= 0.5"}
  rejected_general:
    op: data.sql
    in: {r: apply.rejected}
    with: {query: "SELECT doc_id FROM r WHERE doc_id LIKE 'gen%' AND reasons[1] = 'label:general'"}
  scores_listed:
    op: data.sql
    in: {docs: apply.docs}
    with: {query: "SELECT doc_id FROM docs WHERE array_length(label_scores) = 2"}
"#;

fn meta(p: &Project, r: &serde_json::Value, n: &str, port: &str) -> serde_json::Value {
    let digest = node(r, n)["outputs"][port]["digest"].as_str().unwrap();
    p.json(&format!(".zest/manifests/{digest}.json"))["meta"].clone()
}

fn rows(p: &Project, r: &serde_json::Value, n: &str, port: &str) -> u64 {
    meta(p, r, n, port)["rows"].as_u64().unwrap()
}

fn logs(p: &Project, name: &str) -> String {
    std::fs::read_dir(p.path().join(".zest/runs"))
        .map(|d| {
            d.flatten()
                .map(|d| d.path().join(format!("logs/{name}.log")))
                .filter(|l| l.exists())
                .map(|l| std::fs::read_to_string(l).unwrap())
                .collect::<String>()
        })
        .unwrap_or_default()
}

#[test]
fn trains_validates_and_filters_medical_text() {
    let p = Project::new();
    let med = abstracts();
    assert!(med.len() >= 700, "{} abstracts", med.len());
    let mut rng = Lcg(11);
    let gen: Vec<String> = (0..700).map(|_| general(&mut rng)).collect();
    let pick = |range: std::ops::Range<usize>| -> Vec<(String, String, &str)> {
        let mut v = Vec::new();
        for i in range {
            v.push((format!("med-{i}"), med[i].clone(), "medical"));
            v.push((format!("gen-{i}"), gen[i].clone(), "general"));
        }
        v
    };
    let train = pick(0..400);
    let mut valid = pick(400..500);
    for (i, (m, g)) in SHORT_MEDICAL.iter().zip(SHORT_GENERAL).enumerate() {
        valid.push((format!("med-short-{i}"), m.to_string(), "medical"));
        valid.push((format!("gen-short-{i}"), g.to_string(), "general"));
    }
    let docs = pick(500..700);
    p.write("data/train.jsonl", &jsonl(&train, true));
    p.write("data/valid.jsonl", &jsonl(&valid, true));
    p.write("data/docs.jsonl", &jsonl(&docs, false));
    p.write("dag.yaml", DAG);
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}\n{}", text(&o), logs(&p, "train"));
    let r = p.json("run.json");

    let m = meta(&p, &r, "train", "model");
    eprintln!("model meta: {m:#}");
    assert_eq!(m["labels"], serde_json::json!(["general", "medical"]));
    let train_acc = m["train_accuracy"].as_f64().unwrap();
    let valid_acc = m["valid_accuracy"].as_f64().unwrap();
    assert!(train_acc >= 0.98, "train accuracy {train_acc}");
    assert!(valid_acc >= 0.95, "valid accuracy {valid_acc}");
    for l in ["general", "medical"] {
        let pr = &m["valid"]["per_label"][l];
        assert!(pr["precision"].as_f64().unwrap() >= 0.9, "{l}: {pr}");
        assert!(pr["recall"].as_f64().unwrap() >= 0.9, "{l}: {pr}");
    }
    assert_eq!(m["valid"]["examples"].as_u64(), Some(valid.len() as u64));

    // Applied to 200 + 200 held-out documents.
    let kept = rows(&p, &r, "apply", "docs");
    let rejected = rows(&p, &r, "apply", "rejected");
    assert_eq!(kept + rejected, docs.len() as u64);
    let tp = rows(&p, &r, "kept_medical", "data");
    let tn = rows(&p, &r, "rejected_general", "data");
    let acc = (tp + tn) as f64 / docs.len() as f64;
    eprintln!("apply: kept {kept}, rejected {rejected}, held-out accuracy {acc:.4}");
    assert!(acc >= 0.95, "held-out accuracy {acc}");
    assert_eq!(rows(&p, &r, "scores_listed", "data"), kept);
    let cols = meta(&p, &r, "apply", "rejected")["columns"].clone();
    for c in [
        "doc_id",
        "text",
        "label",
        "label_score",
        "label_scores",
        "reasons",
    ] {
        assert!(
            cols.as_array().unwrap().iter().any(|x| x == c),
            "{c} not in {cols}"
        );
    }
}

fn fails_with(dag: &str, files: &[(&str, &str)], node: &str, wanted: &[&str]) {
    let p = Project::new();
    for (f, body) in files {
        p.write(f, body);
    }
    p.write("dag.yaml", dag);
    let o = p.zest(&["run", "dag.yaml"]);
    assert!(!o.status.success(), "{}", text(&o));
    let all = format!("{}{}", text(&o), logs(&p, node));
    for w in wanted {
        assert!(all.contains(w), "`{w}` not in:\n{all}");
    }
}

const TINY: &str = "{\"doc_id\": \"a\", \"text\": \"insulin dose\", \"label\": \"medical\"}\n{\"doc_id\": \"b\", \"text\": \"football match\", \"label\": \"general\"}\n";

#[test]
fn bad_configs_and_inputs_are_named() {
    // A filter option in train mode.
    fails_with(
        r#"
name: bad
nodes:
  d: {op: data.load, with: {paths: ["d.jsonl"]}}
  t: {op: clean.classify, in: {train: d.data}, with: {mode: train, threshold: 0.5}}
"#,
        &[("d.jsonl", TINY)],
        "t",
        &["`threshold`", "mode: apply"],
    );
    // An impossible n-gram range.
    fails_with(
        r#"
name: bad
nodes:
  d: {op: data.load, with: {paths: ["d.jsonl"]}}
  t: {op: clean.classify, in: {train: d.data}, with: {mode: train, min_char_ngram: 6}}
"#,
        &[("d.jsonl", TINY)],
        "t",
        &["min_char_ngram"],
    );
    // A missing label column.
    fails_with(
        r#"
name: bad
nodes:
  d: {op: data.load, with: {paths: ["d.jsonl"]}}
  t: {op: clean.classify, in: {train: d.data}, with: {mode: train, label_column: topic}}
"#,
        &[("d.jsonl", TINY)],
        "t",
        &["no column `topic`", "label"],
    );
    // A label the model does not know.
    fails_with(
        r#"
name: bad
nodes:
  d: {op: data.load, with: {paths: ["d.jsonl"]}}
  t: {op: clean.classify, in: {train: d.data}, with: {mode: train, buckets: 4096}}
  a: {op: clean.classify, in: {docs: d.data, model: t.model}, with: {mode: apply, keep_labels: [spam]}}
"#,
        &[("d.jsonl", TINY)],
        "a",
        &["spam", "does not know"],
    );
    // The medical score without entity annotations.
    fails_with(
        r#"
name: bad
nodes:
  d: {op: data.load, with: {paths: ["d.jsonl"]}}
  m: {op: clean.classify, in: {docs: d.data}, with: {mode: medical_score, min_score: 0.3}}
"#,
        &[("d.jsonl", TINY)],
        "m",
        &["entity_density", "clean.entities"],
    );
}

#[test]
fn medical_score_filters_by_entity_density() {
    let p = Project::new();
    let rows_in = [
        ("dense", 0.2, 12, vec!["disease", "drug", "symptom"]),
        ("sparse", 0.005, 1, vec!["drug"]),
        ("none", 0.0, 0, vec![]),
    ];
    let body: String = rows_in
        .iter()
        .map(|(id, d, n, types)| {
            let ents: Vec<serde_json::Value> = types
                .iter()
                .map(|t| serde_json::json!({"start": 0, "end": 1, "text": "x", "type": t, "term": "x", "code": null}))
                .collect();
            serde_json::json!({"doc_id": id, "text": "x", "entity_density": d, "entity_count": n, "entities": ents})
                .to_string()
                + "\n"
        })
        .collect();
    p.write("d.jsonl", &body);
    p.write(
        "dag.yaml",
        r#"
name: med
nodes:
  d: {op: data.load, with: {paths: ["d.jsonl"], format: jsonl}}
  m: {op: clean.classify, in: {docs: d.data}, with: {mode: medical_score, min_score: 0.5}}
  s: {op: data.sql, in: {docs: m.docs}, with: {query: "SELECT doc_id FROM docs WHERE medical_score > 0.8"}}
  r: {op: data.sql, in: {r: m.rejected}, with: {query: "SELECT doc_id FROM r WHERE reasons[1] = 'medical_score<0.5' AND medical_score < 0.5"}}
"#,
    );
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}\n{}", text(&o), logs(&p, "m"));
    let r = p.json("run.json");
    assert_eq!(rows(&p, &r, "m", "docs"), 1);
    assert_eq!(rows(&p, &r, "s", "data"), 1);
    assert_eq!(rows(&p, &r, "r", "data"), 2);
}
