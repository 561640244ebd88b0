//! `dags/cpt_corpus.yaml` end to end on the embedded sample data (the first part of
//! `make demo`): PDFs (born-digital and scanned, English and Chinese) and web pages are
//! ingested, cleaned and written as one corpus per source.

mod common;
use common::{output_rows, repo, text, Project};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn embedded_sources_become_per_source_corpora() {
    let p = Project::new();
    copy_dir(&repo().join("dags"), &p.path().join("dags"));
    let o = p.zest(&["run", "dags/cpt_corpus.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");

    // Every PDF page is read, the scanned ones by OCR, in both languages.
    let mut pages = output_rows(&p, &r, "textbooks", "docs");
    pages.extend(output_rows(&p, &r, "guidelines", "docs"));
    assert_eq!(pages.len(), 8, "{pages:?}");
    let ocr: Vec<_> = pages.iter().filter(|r| r["method"] == "ocr").collect();
    assert_eq!(ocr.len(), 3, "scanned pages: {ocr:?}");
    assert!(pages
        .iter()
        .any(|r| r["language"] == "zh" && r["method"] == "ocr"));
    assert!(pages
        .iter()
        .any(|r| r["language"] == "zh" && r["method"] == "text"));
    for r in &pages {
        let t = r["text"].as_str().unwrap();
        assert!(t.chars().count() > 200, "short page: {r}");
        assert!(
            !t.contains("Principles of Internal Medicine"),
            "header kept: {t}"
        );
    }

    // Web pages: the index page has no main text and is rejected with its reason.
    let rejected = output_rows(&p, &r, "web", "rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0]["reasons"].to_string().contains("main text"));

    // Per-source corpora, annotated and scored upstream.
    for (node, min) in [("cpt_textbook", 4), ("cpt_guideline", 4), ("cpt_web", 3)] {
        let rows = output_rows(&p, &r, node, "data");
        assert!(rows.len() >= min, "{node}: {} rows", rows.len());
        assert!(rows.iter().all(|r| !r["text"].as_str().unwrap().is_empty()));
    }
    let textbook = output_rows(&p, &r, "cpt_textbook", "data");
    assert!(
        textbook
            .iter()
            .any(|r| r["doc_id"].as_str().unwrap().contains("/cloze/")),
        "no augmented samples: {textbook:?}"
    );
    let medical = output_rows(&p, &r, "medical", "docs");
    assert!(medical
        .iter()
        .all(|r| r["entity_count"].as_u64().unwrap() > 0
            && r["medical_score"].as_f64().unwrap() > 0.0));
}
