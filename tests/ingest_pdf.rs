//! `ingest.pdf` end to end, on PDFs built from known text by `tests/py/make_pdfs.py`
//! (reportlab and Pillow, in the test-tools venv): character error rates of text layers and of
//! OCR (English and Simplified Chinese scans at 300 dpi), reading order across two columns,
//! running headers and page numbers removed, hyphenation repaired, and every unreadable file
//! (corrupt, truncated, encrypted, empty, zero pages, not a PDF) rejected with a reason while
//! the node succeeds.

mod common;
use common::{cer, output_rows, text, tools_dir, Project};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

struct Fixture {
    project: Project,
    report: serde_json::Value,
    truth: BTreeMap<String, Option<Vec<String>>>,
}

/// Builds the PDFs and runs ingest.pdf over them once for all tests of this file.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let p = Project::new();
        let python = tools_dir().join("venv/bin/python");
        assert!(
            python.exists(),
            "{} missing: run `make test-tools` (installs reportlab and Pillow)",
            python.display()
        );
        let script = common::repo().join("tests/py/make_pdfs.py");
        let out = std::process::Command::new(&python)
            .arg(&script)
            .arg(p.path().join("pdfs"))
            .output()
            .unwrap();
        assert!(out.status.success(), "make_pdfs.py: {}", text(&out));
        let truth: BTreeMap<String, Option<Vec<String>>> = serde_json::from_str(
            &std::fs::read_to_string(p.path().join("pdfs/truth.json")).unwrap(),
        )
        .unwrap();
        p.write(
            "ingest.yaml",
            r#"
name: ingest
nodes:
  pdfs:
    op: ingest.pdf
    with: {paths: ["pdfs/*.pdf"], source: textbook}
"#,
        );
        let o = p.zest(&["run", "ingest.yaml", "--report", "run.json"]);
        assert!(o.status.success(), "{}", text(&o));
        let report = p.json("run.json");
        Fixture {
            project: p,
            report,
            truth,
        }
    })
}

fn file_name(row: &serde_json::Value) -> String {
    Path::new(row["file"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// (file, page) → row of the docs output.
fn pages() -> BTreeMap<(String, u64), serde_json::Value> {
    let f = fixture();
    output_rows(&f.project, &f.report, "pdfs", "docs")
        .into_iter()
        .map(|r| ((file_name(&r), r["page"].as_u64().unwrap()), r))
        .collect()
}

fn check_cer(file: &str, method: &str, cjk: bool, limit: f64) {
    let f = fixture();
    let rows = pages();
    let truth = f.truth[file].as_ref().expect("a readable file");
    for (i, want) in truth.iter().enumerate() {
        let row = rows
            .get(&(file.to_string(), i as u64 + 1))
            .unwrap_or_else(|| panic!("{file} page {} missing", i + 1));
        assert_eq!(row["method"], method, "{file} page {}", i + 1);
        let got = row["text"].as_str().unwrap();
        let e = cer(got, want, cjk);
        eprintln!("{file} page {}: CER {:.4}", i + 1, e);
        assert!(
            e <= limit,
            "{file} page {}: CER {e:.4} > {limit}\n--- got\n{got}\n--- want\n{want}",
            i + 1
        );
    }
}

#[test]
fn born_digital_english_text_layer_within_1_percent() {
    check_cer("digital_en.pdf", "text", false, 0.01);
}

#[test]
fn born_digital_chinese_text_layer_within_1_percent() {
    check_cer("digital_zh.pdf", "text", true, 0.01);
}

#[test]
fn two_columns_read_in_order_within_1_percent() {
    check_cer("two_columns_en.pdf", "text", false, 0.01);
}

#[test]
fn scanned_english_ocr_within_3_percent() {
    check_cer("scanned_en.pdf", "ocr", false, 0.03);
    for ((f, _), r) in pages() {
        if f == "scanned_en.pdf" {
            assert_eq!(r["language"], "en");
            assert!(r["ocr_confidence"].as_f64().unwrap() > 50.0, "{r}");
        }
    }
}

#[test]
fn scanned_chinese_ocr_within_5_percent() {
    check_cer("scanned_zh.pdf", "ocr", true, 0.05);
    for ((f, _), r) in pages() {
        if f == "scanned_zh.pdf" {
            assert_eq!(r["language"], "zh");
        }
    }
}

#[test]
fn headers_page_numbers_and_hyphens_are_gone() {
    for ((f, page), r) in pages() {
        let t = r["text"].as_str().unwrap();
        if f == "digital_en.pdf" {
            assert!(
                !t.contains("Handbook of Clinical Medicine"),
                "header kept: {t}"
            );
            assert!(
                !t.contains(&format!("Page {page}")),
                "page number kept: {t}"
            );
            assert!(!t.contains("- "), "broken hyphenation: {t}");
            assert_eq!(r["source"], "textbook");
            assert_eq!(r["pages"], 3);
        }
        if f == "digital_zh.pdf" {
            assert!(!t.contains("临床诊疗指南"), "header kept: {t}");
            assert!(!t.contains("页"), "page number kept: {t}");
            assert_eq!(r["language"], "zh");
        }
    }
}

#[test]
fn unreadable_files_are_rejected_with_reasons_and_the_node_succeeds() {
    let f = fixture();
    let rejected = output_rows(&f.project, &f.report, "pdfs", "rejected");
    let reasons: BTreeMap<String, String> = rejected
        .iter()
        .map(|r| {
            let reasons: Vec<&str> = r["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            (file_name(r), reasons.join("; "))
        })
        .collect();
    let expect = [
        ("empty.pdf", "empty file"),
        ("not_a_pdf.pdf", "not a PDF"),
        ("corrupt.pdf", "damaged"),
        ("truncated.pdf", "truncated"),
        ("zero_pages.pdf", "no pages"),
        ("encrypted.pdf", "encrypted"),
    ];
    for (file, want) in expect {
        let got = reasons
            .get(file)
            .unwrap_or_else(|| panic!("{file} not rejected; rejected: {reasons:?}"));
        assert!(got.contains(want), "{file}: reason {got:?} lacks {want:?}");
    }
    assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
    for (file, t) in &f.truth {
        if t.is_none() {
            assert!(
                !pages().keys().any(|(f, _)| f == file),
                "{file} has pages in docs"
            );
        }
    }
}

#[test]
fn document_granularity_joins_pages_and_bad_config_is_refused() {
    let f = fixture();
    let p = &f.project;
    p.write(
        "docs.yaml",
        r#"
name: docs
nodes:
  pdfs:
    op: ingest.pdf
    with: {paths: ["pdfs/digital_*.pdf"], granularity: document, ocr: never}
"#,
    );
    let o = p.zest(&["run", "docs.yaml", "--report", "docs.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let rows = output_rows(p, &p.json("docs.json"), "pdfs", "docs");
    assert_eq!(rows.len(), 2);
    let en = rows
        .iter()
        .find(|r| file_name(r) == "digital_en.pdf")
        .unwrap();
    let want = f.truth["digital_en.pdf"].as_ref().unwrap().join("\n\n");
    assert!(cer(en["text"].as_str().unwrap(), &want, false) <= 0.01);
    assert!(en.get("page").is_none(), "document rows have no page: {en}");
    p.write(
        "bad.yaml",
        r#"
name: bad
nodes:
  pdfs:
    op: ingest.pdf
    with: {paths: ["pdfs/*.pdf"], dpi: 20000}
"#,
    );
    let o = p.zest(&["validate", "bad.yaml"]);
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(msg.contains("dpi") && msg.contains("bad.yaml:6:"), "{msg}");
}
