//! `clean.entities` and `clean.relations` end to end: JSONL documents in English and Chinese go
//! through `data.load` → `clean.entities` → `clean.relations`; the output Parquet files are read
//! back to check exact spans, types, rejected rows and relation triples. A user lexicon comes
//! in through the `lexicon` port, a lexicon without a `type` column fails with a message naming
//! it, and real PubMed abstracts get entities.

mod common;
use common::{node, repo, text, walk, Project};
use datafusion::arrow::array::{
    Array, AsArray, Float64Array, ListArray, StringArray, StructArray, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, UInt32Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;

const EN: &str = "Metformin and insulin are used to treat type 2 diabetes. Myocardial infarction \
often presents with chest pain. Nausea is a common side effect of metformin.";
const ZH: &str = "二甲双胍用于治疗2型糖尿病。心肌梗死表现为胸痛、呼吸困难；阿司匹林可引起恶心。";
const NONE: &str = "The committee met on Tuesday and the weather was pleasant all afternoon.";

/// One output row.
#[derive(Debug, Default, Clone)]
struct Row {
    /// (start, end, text, type, term, code)
    entities: Vec<(u32, u32, String, String, String, Option<String>)>,
    entity_count: Option<u32>,
    entity_density: Option<f64>,
    /// "head -relation-> tail"
    relations: Vec<String>,
    relation_count: Option<u32>,
    reasons: Vec<String>,
    /// Evidence sentences.
    sentences: Vec<String>,
}

fn strs(a: &dyn Array) -> StringArray {
    let c = datafusion::arrow::compute::cast(
        &datafusion::arrow::array::make_array(a.to_data()),
        &DataType::Utf8,
    )
    .unwrap();
    c.as_string::<i32>().clone()
}

/// The rows of a node's output port, by doc_id.
fn read(p: &Project, r: &serde_json::Value, n: &str, port: &str) -> BTreeMap<String, Row> {
    let digest = node(r, n)["outputs"][port]["digest"].as_str().unwrap();
    let dir = p.path().join(".zest/artifacts").join(digest);
    let mut files: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no Parquet file under {}", dir.display());
    let mut out = BTreeMap::new();
    for f in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let b = batch.unwrap();
            let ids = strs(b.column_by_name("doc_id").unwrap().as_ref());
            let ents = b.column_by_name("entities").map(|c| {
                let DataType::List(item) = c.data_type() else {
                    panic!("entities is {}", c.data_type())
                };
                let DataType::Struct(fields) = item.data_type() else {
                    panic!("entities holds {}", item.data_type())
                };
                let names: Vec<_> = fields
                    .iter()
                    .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
                    .collect();
                assert_eq!(
                    names,
                    [
                        ("start", DataType::UInt32, false),
                        ("end", DataType::UInt32, false),
                        ("text", DataType::Utf8, false),
                        ("type", DataType::Utf8, false),
                        ("term", DataType::Utf8, false),
                        ("code", DataType::Utf8, true),
                    ]
                );
                c.as_list::<i32>().clone()
            });
            let rels = b
                .column_by_name("relations")
                .map(|c| c.as_list::<i32>().clone());
            let u32col = |n: &str| {
                b.column_by_name(n)
                    .map(|c| c.as_primitive::<UInt32Type>().clone())
            };
            let (ec, rc) = (u32col("entity_count"), u32col("relation_count"));
            let dens = b
                .column_by_name("entity_density")
                .map(|c| c.as_any().downcast_ref::<Float64Array>().unwrap().clone());
            let reasons = b
                .column_by_name("reasons")
                .map(|c| c.as_list::<i32>().clone());
            for i in 0..b.num_rows() {
                let mut row = Row {
                    entity_count: ec.as_ref().map(|c| c.value(i)),
                    relation_count: rc.as_ref().map(|c| c.value(i)),
                    entity_density: dens.as_ref().map(|c| c.value(i)),
                    ..Row::default()
                };
                if let Some(l) = &ents {
                    row.entities = entities(l, i);
                }
                if let Some(l) = &rels {
                    let v = l.value(i);
                    let s: &StructArray = v.as_struct();
                    let f = |n: &str| strs(s.column_by_name(n).unwrap().as_ref());
                    let (h, r, t, sen) = (f("head"), f("relation"), f("tail"), f("sentence"));
                    for j in 0..s.len() {
                        row.relations.push(format!(
                            "{} -{}-> {}",
                            h.value(j),
                            r.value(j),
                            t.value(j)
                        ));
                        row.sentences.push(sen.value(j).to_string());
                    }
                }
                if let Some(l) = &reasons {
                    let v = l.value(i);
                    let s = strs(v.as_ref());
                    let s = &s;
                    row.reasons = (0..s.len()).map(|j| s.value(j).to_string()).collect();
                }
                out.insert(ids.value(i).to_string(), row);
            }
        }
    }
    out
}

type Mention = (u32, u32, String, String, String, Option<String>);

fn entities(l: &ListArray, i: usize) -> Vec<Mention> {
    let v = l.value(i);
    let s: &StructArray = v.as_struct();
    let n = |c: &str| {
        s.column_by_name(c)
            .unwrap()
            .as_any()
            .downcast_ref::<UInt32Array>()
            .unwrap()
            .clone()
    };
    let t = |c: &str| strs(s.column_by_name(c).unwrap().as_ref());
    let (start, end, txt, ty, term, code) = (
        n("start"),
        n("end"),
        t("text"),
        t("type"),
        t("term"),
        t("code"),
    );
    (0..s.len())
        .map(|j| {
            (
                start.value(j),
                end.value(j),
                txt.value(j).to_string(),
                ty.value(j).to_string(),
                term.value(j).to_string(),
                (!code.is_null(j)).then(|| code.value(j).to_string()),
            )
        })
        .collect()
}

fn m(s: u32, e: u32, text: &str, ty: &str, term: &str, code: Option<&str>) -> Mention {
    (
        s,
        e,
        text.into(),
        ty.into(),
        term.into(),
        code.map(String::from),
    )
}

fn jsonl(rows: &[(&str, &str)]) -> String {
    rows.iter()
        .map(|(id, t)| serde_json::json!({"doc_id": id, "text": t}).to_string() + "\n")
        .collect()
}

fn run(p: &Project, dag: &str) -> serde_json::Value {
    p.write("dag.yaml", dag);
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    p.json("run.json")
}

const DAG: &str = r#"
name: entities
nodes:
  load:
    op: data.load
    with: {paths: ["data/*.jsonl"]}
  ents:
    op: clean.entities
    in: {docs: load.data}
    with: {min_density: 0.01}
  rels:
    op: clean.relations
    in: {docs: ents.docs}
"#;

#[test]
fn english_and_chinese_spans_and_relations() {
    let p = Project::new();
    p.write(
        "data/docs.jsonl",
        &jsonl(&[("en", EN), ("zh", ZH), ("none", NONE)]),
    );
    let r = run(&p, DAG);
    let docs = read(&p, &r, "ents", "docs");
    assert_eq!(docs.len(), 2, "{docs:#?}");
    let en = &docs["en"];
    assert_eq!(
        en.entities,
        [
            m(0, 9, "Metformin", "drug", "metformin", None),
            m(14, 21, "insulin", "drug", "insulin", None),
            m(
                40,
                55,
                "type 2 diabetes",
                "disease",
                "type 2 diabetes",
                Some("E11")
            ),
            m(
                57,
                78,
                "Myocardial infarction",
                "disease",
                "myocardial infarction",
                Some("I21")
            ),
            m(99, 109, "chest pain", "symptom", "chest pain", None),
            m(111, 117, "Nausea", "symptom", "nausea", None),
            m(145, 154, "metformin", "drug", "metformin", None),
        ]
    );
    assert_eq!(en.entity_count, Some(7));
    let covered = 9 + 7 + 13 + 20 + 9 + 6 + 9;
    let non_ws = EN.chars().filter(|c| !c.is_whitespace()).count();
    assert!((en.entity_density.unwrap() - covered as f64 / non_ws as f64).abs() < 1e-9);
    let zh = &docs["zh"];
    assert_eq!(
        zh.entities,
        [
            m(0, 4, "二甲双胍", "drug", "二甲双胍", None),
            m(8, 13, "2型糖尿病", "disease", "2型糖尿病", Some("E11")),
            m(14, 18, "心肌梗死", "disease", "心肌梗死", Some("I21")),
            m(21, 23, "胸痛", "symptom", "胸痛", None),
            m(24, 28, "呼吸困难", "symptom", "呼吸困难", None),
            m(29, 33, "阿司匹林", "drug", "阿司匹林", None),
            m(36, 38, "恶心", "symptom", "恶心", None),
        ]
    );
    // The document without entities is rejected, with the reason.
    let rejected = read(&p, &r, "ents", "rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected["none"].reasons, ["entity_density<0.01"]);
    assert_eq!(rejected["none"].entity_count, Some(0));

    let rels = read(&p, &r, "rels", "docs");
    assert_eq!(
        rels["en"].relations,
        [
            "metformin -treats-> type 2 diabetes",
            "insulin -treats-> type 2 diabetes",
            "myocardial infarction -has_symptom-> chest pain",
            "metformin -causes_adverse_effect-> nausea",
        ]
    );
    assert_eq!(rels["en"].relation_count, Some(4));
    assert_eq!(
        rels["en"].sentences[2],
        "Myocardial infarction often presents with chest pain."
    );
    // The entities columns pass through.
    assert_eq!(rels["en"].entity_count, Some(7));
    assert_eq!(
        rels["zh"].relations,
        [
            "二甲双胍 -treats-> 2型糖尿病",
            "心肌梗死 -has_symptom-> 胸痛",
            "心肌梗死 -has_symptom-> 呼吸困难",
            "阿司匹林 -causes_adverse_effect-> 恶心",
        ]
    );
    assert_eq!(rels["zh"].sentences[0], "二甲双胍用于治疗2型糖尿病。");
}

#[test]
fn a_user_lexicon_through_the_port() {
    let p = Project::new();
    p.write(
        "docs/docs.jsonl",
        &jsonl(&[(
            "a",
            "Gizmomab is used to treat widget fever. Metformin treats diabetes.",
        )]),
    );
    p.write(
        "lex/lexicon.jsonl",
        "{\"term\": \"widgetitis\", \"type\": \"disease\", \"code\": \"X1\", \"synonyms\": [\"widget fever\"]}\n\
         {\"term\": \"gizmomab\", \"type\": \"drug\", \"code\": null, \"synonyms\": []}\n",
    );
    let r = run(
        &p,
        r#"
name: lexicon
nodes:
  docs: {op: data.load, with: {paths: ["docs/*.jsonl"]}}
  lex: {op: data.load, with: {paths: ["lex/*.jsonl"]}}
  ents:
    op: clean.entities
    in: {docs: docs.data, lexicon: lex.data}
    with: {language: en}
  rels:
    op: clean.relations
    in: {docs: docs.data, lexicon: lex.data}
"#,
    );
    let docs = read(&p, &r, "ents", "docs");
    // Only the user's entries: metformin and diabetes are not in this lexicon.
    assert_eq!(
        docs["a"].entities,
        [
            m(0, 8, "Gizmomab", "drug", "gizmomab", None),
            m(26, 38, "widget fever", "disease", "widgetitis", Some("X1")),
        ]
    );
    // clean.relations recognises entities itself when the input has none.
    let rels = read(&p, &r, "rels", "docs");
    assert_eq!(rels["a"].relations, ["gizmomab -treats-> widgetitis"]);
    assert_eq!(rels["a"].entity_count, None);
}

#[test]
fn a_lexicon_without_a_type_column_is_named() {
    let p = Project::new();
    p.write("docs/docs.jsonl", &jsonl(&[("a", EN)]));
    p.write(
        "lex/lexicon.jsonl",
        "{\"term\": \"widgetitis\", \"kind\": \"disease\"}\n",
    );
    p.write(
        "dag.yaml",
        r#"
name: badlex
nodes:
  docs: {op: data.load, with: {paths: ["docs/*.jsonl"]}}
  lex: {op: data.load, with: {paths: ["lex/*.jsonl"]}}
  ents:
    op: clean.entities
    in: {docs: docs.data, lexicon: lex.data}
"#,
    );
    let o = p.zest(&["run", "dag.yaml"]);
    assert!(!o.status.success(), "{}", text(&o));
    let log = std::fs::read_dir(p.path().join(".zest/runs"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join("logs/ents.log"))
        .find(|l| l.exists())
        .map(|l| std::fs::read_to_string(l).unwrap())
        .unwrap_or_default();
    let all = format!("{}{log}", text(&o));
    assert!(
        all.contains("lexicon dataset has no column `type`") && all.contains("kind"),
        "{all}"
    );
}

#[test]
fn real_abstracts_get_entities() {
    let corpus = repo().join("../shared/corpus/pubmedqa_pqal.jsonl");
    let body =
        std::fs::read_to_string(&corpus).unwrap_or_else(|e| panic!("{}: {e}", corpus.display()));
    let mut lines = String::new();
    let mut n = 0;
    for l in body.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let text: Vec<&str> = v["contexts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        lines +=
            &(serde_json::json!({"doc_id": v["pmid"], "text": text.join(" ")}).to_string() + "\n");
        n += 1;
    }
    let p = Project::new();
    p.write("data/docs.jsonl", &lines);
    let r = run(
        &p,
        r#"
name: pubmed
nodes:
  load: {op: data.load, with: {paths: ["data/*.jsonl"]}}
  ents: {op: clean.entities, in: {docs: load.data}}
  rels: {op: clean.relations, in: {docs: ents.docs}}
"#,
    );
    let docs = read(&p, &r, "rels", "docs");
    assert_eq!(docs.len(), n);
    let with = docs.values().filter(|d| d.entity_count > Some(0)).count();
    let entities: u32 = docs.values().filter_map(|d| d.entity_count).sum();
    let relations: u32 = docs.values().filter_map(|d| d.relation_count).sum();
    eprintln!("{n} abstracts: {with} with entities, {entities} entities, {relations} relations");
    // The default lexicon is small next to the breadth of PubMed; about four abstracts in five
    // mention one of its terms.
    assert!(with * 10 >= n * 7, "{with} of {n} abstracts have entities");
    assert!(relations > 0);
    for l in std::fs::read_dir(p.path().join(".zest/runs"))
        .unwrap()
        .flatten()
        .flat_map(|d| ["ents", "rels"].map(|n| d.path().join(format!("logs/{n}.log"))))
        .filter(|l| l.exists())
    {
        let log = std::fs::read_to_string(&l).unwrap();
        let progress = log.lines().rfind(|l| l.contains("docs/s"));
        eprintln!("{}", progress.unwrap_or_default());
    }
    // Every mention is the text at its offsets.
    let body: BTreeMap<String, String> = lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["doc_id"].as_str().unwrap().to_string(),
                v["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (id, d) in docs.iter().take(100) {
        let chars: Vec<char> = body[id].chars().collect();
        for e in &d.entities {
            let at: String = chars[e.0 as usize..e.1 as usize].iter().collect();
            assert_eq!(at, e.2, "{id}");
        }
    }
}
