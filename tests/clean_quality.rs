//! `clean.quality` end to end: a JSONL corpus of good documents and documents crafted to fail
//! particular rules goes through `data.load` → `clean.quality`; the output Parquet files are
//! read back to check every row's fate, reasons, scrubbed text and added columns. Bad
//! configs must fail with a message naming the field.

mod common;
use common::{node, text, walk, Project};
use datafusion::arrow::array::{Array, ListArray, StringArray, UInt32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;

const GOOD: &[&str] = &[
    "The trial enrolled adults with high blood pressure in four centres across the country. \
     They were followed for a year and seen every three months by the study nurses. Blood \
     pressure fell in both arms of the trial, more with the new drug than with the placebo. \
     Adverse events were rare and mostly mild, and the most common was a headache. The drug \
     was well tolerated by most of the patients, and few of them stopped taking it early.",
    "We reviewed the records of children admitted to the hospital with asthma over five \
     years. The length of stay was shorter for those who received steroids within the first \
     hour of arrival. Readmission within a month was uncommon in both groups of children. \
     Parents reported that the care was good and that the information they received was \
     useful. These findings support the early use of steroids in the emergency department.",
    "Sleep duration was measured with a wrist monitor in a cohort of older adults living at \
     home. Those who slept less than six hours a night had a higher risk of falls during the \
     following year. The association remained after adjustment for age, sex and the use of \
     sedatives. Short sleep may be a marker of frailty that is easy to measure in practice. \
     A trial is needed to test whether better sleep can prevent falls in this population.",
];

const ZH: &str = "本研究纳入了四个中心的高血压成年患者，随访一年，每三个月由研究护士随访一次。\
                  两组患者的血压均有下降，新药组的降幅大于安慰剂组。不良事件少见且大多轻微，\
                  最常见的是头痛。大多数患者对该药耐受良好，很少有人提前停药。";

fn corpus() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for (i, g) in GOOD.iter().enumerate() {
        v.push((format!("good-{i}"), g.to_string()));
    }
    v.push((
        "pii".into(),
        format!(
            "{} Questions about the study can be sent to j.smith@hospital.org at any time.",
            GOOD[0]
        ),
    ));
    v.push((
        "short".into(),
        "Blood pressure fell with the new drug.".into(),
    ));
    let bullets: String = GOOD[1].split(". ").map(|s| format!("- {s}.\n")).collect();
    v.push(("bullets".into(), bullets));
    let no_stop = GOOD[2]
        .split(' ')
        .filter(|w| {
            !matches!(
                *w,
                "the" | "The" | "and" | "of" | "to" | "with" | "that" | "be" | "have"
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    v.push(("nostop".into(), no_stop));
    let dup = format!("{}\n\n{}\n\n{}", GOOD[0], GOOD[0], GOOD[1]);
    v.push(("dup-paras".into(), dup));
    v.push((
        "lorem".into(),
        format!(
            "{}\nLorem ipsum dolor sit amet, consectetur adipiscing elit.",
            GOOD[1]
        ),
    ));
    v.push((
        "c4-lines".into(),
        format!("Home | About | Contact\n{}\nShare this page", GOOD[2]),
    ));
    v.push((
        "german".into(),
        "Die Studie schloss Erwachsene mit hohem Blutdruck in vier Zentren ein. Sie wurden ein \
         Jahr lang beobachtet und alle drei Monate von den Studienschwestern gesehen. Der \
         Blutdruck sank in beiden Armen der Studie, stärker mit dem neuen Medikament als mit \
         dem Placebo. Unerwünschte Ereignisse waren selten und meist mild."
            .into(),
    ));
    v.push(("zh".into(), ZH.into()));
    v.push(("zh-dup".into(), [ZH; 4].join("\n")));
    v.push(("junk".into(), "### ... ###\n- ...\n- ...".into()));
    v
}

fn jsonl(rows: &[(String, String)]) -> String {
    rows.iter()
        .map(|(id, t)| serde_json::json!({"doc_id": id, "text": t}).to_string() + "\n")
        .collect()
}

/// One output row: text, reasons, pii count and types, language.
#[derive(Debug, Default)]
struct Row {
    text: String,
    reasons: Vec<String>,
    pii_count: Option<u32>,
    pii_types: Vec<String>,
    language: String,
}

fn list(col: &ListArray, i: usize) -> Vec<String> {
    let v = col.value(i);
    let s = v.as_any().downcast_ref::<StringArray>().unwrap();
    (0..s.len()).map(|j| s.value(j).to_string()).collect()
}

/// The rows of a node's output port, by doc_id, read from the store's Parquet files.
fn read(p: &Project, r: &serde_json::Value, n: &str, port: &str) -> BTreeMap<String, Row> {
    let digest = node(r, n)["outputs"][port]["digest"].as_str().unwrap();
    let dir = p.path().join(".zest/artifacts").join(digest);
    let mut out = BTreeMap::new();
    let mut files: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no Parquet file under {}", dir.display());
    for f in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let b = batch.unwrap();
            let s = |name: &str| {
                b.column_by_name(name).map(|c| {
                    let c = cast(c, &DataType::Utf8).unwrap();
                    c.as_any().downcast_ref::<StringArray>().unwrap().clone()
                })
            };
            let ids = s("doc_id").unwrap();
            let texts = s("text").unwrap();
            let langs = s("language").unwrap();
            let reasons = b
                .column_by_name("reasons")
                .map(|c| c.as_any().downcast_ref::<ListArray>().unwrap().clone());
            let pii_types = b
                .column_by_name("pii_types")
                .map(|c| c.as_any().downcast_ref::<ListArray>().unwrap().clone());
            let pii_count = b
                .column_by_name("pii_count")
                .map(|c| c.as_any().downcast_ref::<UInt32Array>().unwrap().clone());
            for i in 0..b.num_rows() {
                out.insert(
                    ids.value(i).to_string(),
                    Row {
                        text: texts.value(i).to_string(),
                        reasons: reasons.as_ref().map(|c| list(c, i)).unwrap_or_default(),
                        pii_count: pii_count.as_ref().map(|c| c.value(i)),
                        pii_types: pii_types.as_ref().map(|c| list(c, i)).unwrap_or_default(),
                        language: langs.value(i).to_string(),
                    },
                );
            }
        }
    }
    out
}

fn run(p: &Project, with: &str) -> serde_json::Value {
    p.write("data/docs.jsonl", &jsonl(&corpus()));
    p.write(
        "dag.yaml",
        &format!(
            "name: quality\nnodes:\n  load:\n    op: data.load\n    with: {{paths: [\"data/*.jsonl\"]}}\n  \
             q:\n    op: clean.quality\n    in: {{docs: load.data}}\n    with: {with}\n"
        ),
    );
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    p.json("run.json")
}

fn has(rows: &BTreeMap<String, Row>, id: &str, reason: &str) {
    let r = rows
        .get(id)
        .unwrap_or_else(|| panic!("{id} not rejected: {rows:#?}"));
    assert!(
        r.reasons.iter().any(|x| x == reason),
        "{id}: `{reason}` not in {:?}",
        r.reasons
    );
}

#[test]
fn keeps_good_documents_and_rejects_each_crafted_failure_with_every_reason() {
    let p = Project::new();
    let r = run(&p, "{}");
    let kept = read(&p, &r, "q", "docs");
    let rej = read(&p, &r, "q", "rejected");
    assert_eq!(kept.len() + rej.len(), corpus().len());
    let kept_ids: Vec<&str> = kept.keys().map(String::as_str).collect();
    assert_eq!(
        kept_ids,
        ["c4-lines", "good-0", "good-1", "good-2", "pii", "zh"],
        "rejected: {rej:#?}"
    );
    // C4 removed the navigation lines from the kept text.
    assert_eq!(kept["c4-lines"].text, GOOD[2]);
    // PII is scrubbed and counted.
    assert!(kept["pii"].text.contains("<EMAIL>") && !kept["pii"].text.contains("j.smith"));
    assert_eq!(kept["pii"].pii_count, Some(1));
    assert_eq!(kept["pii"].pii_types, ["email"]);
    assert_eq!(kept["good-0"].pii_count, Some(0));
    assert_eq!(kept["good-0"].language, "en");
    assert_eq!(kept["zh"].language, "zh");

    has(&rej, "short", "gopher_short_doc");
    has(&rej, "short", "c4:too_few_sentences");
    has(&rej, "bullets", "gopher_too_many_bullets");
    has(&rej, "nostop", "gopher_enough_stop_words");
    has(&rej, "dup-paras", "dup_para_frac");
    has(&rej, "dup-paras", "dup_para_char_frac");
    has(&rej, "lorem", "c4:lorem_ipsum");
    has(&rej, "german", "language:de");
    has(&rej, "zh-dup", "dup_line_frac");
    // Every reason, not only the first.
    for reason in [
        "gopher_short_doc",
        "gopher_too_many_hashes",
        "gopher_too_many_ellipsis",
        "gopher_below_alpha_threshold",
        "gopher_enough_stop_words",
        "c4:too_few_sentences",
    ] {
        has(&rej, "junk", reason);
    }
    // Chinese documents skip the English word rules.
    assert!(
        !rej["zh-dup"]
            .reasons
            .iter()
            .any(|x| x.starts_with("gopher_")),
        "{:?}",
        rej["zh-dup"].reasons
    );
}

#[test]
fn pii_drop_mode_and_filters_turned_off() {
    let p = Project::new();
    let r = run(
        &p,
        "{pii: drop, languages: [], gopher_quality: {enabled: false}, gopher_repetition: {enabled: false}, \
         c4: {enabled: false}, fineweb: {enabled: false}}",
    );
    let kept = read(&p, &r, "q", "docs");
    let rej = read(&p, &r, "q", "rejected");
    let rej_ids: Vec<&str> = rej.keys().map(String::as_str).collect();
    assert_eq!(rej_ids, ["pii"], "{rej:#?}");
    assert_eq!(rej["pii"].reasons, ["pii:email"]);
    assert_eq!(kept.len(), corpus().len() - 1);
    // Nothing rewrote the text.
    assert_eq!(
        kept["c4-lines"].text,
        corpus()
            .into_iter()
            .find(|(id, _)| id == "c4-lines")
            .unwrap()
            .1
    );
}

fn fails_with(with: &str, wanted: &[&str]) {
    let p = Project::new();
    p.write("data/docs.jsonl", &jsonl(&corpus()[..2]));
    p.write(
        "dag.yaml",
        &format!(
            "name: bad\nnodes:\n  load: {{op: data.load, with: {{paths: [\"data/*.jsonl\"]}}}}\n  \
             q: {{op: clean.quality, in: {{docs: load.data}}, with: {with}}}\n"
        ),
    );
    let o = p.zest(&["run", "dag.yaml"]);
    assert!(!o.status.success(), "{}", text(&o));
    let all = text(&o)
        + &std::fs::read_dir(p.path().join(".zest/runs"))
            .map(|d| {
                d.flatten()
                    .map(|d| d.path().join("logs/q.log"))
                    .filter(|l| l.exists())
                    .map(|l| std::fs::read_to_string(l).unwrap())
                    .collect::<String>()
            })
            .unwrap_or_default();
    for w in wanted {
        assert!(all.contains(w), "`{w}` not in:\n{all}");
    }
}

#[test]
fn bad_configs_are_named() {
    fails_with("{gopher_quality: {min_words: 10}}", &["min_words"]);
    fails_with("{fineweb: {line_punct_thr: 1.5}}", &["line_punct_thr"]);
    fails_with("{pii: redact}", &["redact"]);
    fails_with(
        "{gopher_quality: {min_doc_words: 100, max_doc_words: 10}}",
        &["min_doc_words", "max_doc_words"],
    );
    fails_with("{text_column: body}", &["no column `body`", "text_column"]);
}
