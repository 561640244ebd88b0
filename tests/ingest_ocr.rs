//! `ingest.pdf` OCR at the scan's own resolution, end to end, against Tesseract's own CLI on
//! the very page images the PDFs hold.
//!
//! `tests/py/make_pdfs.py --set ocr` draws English pages from known text at 200 and 300 dpi
//! (light blur and specks), embeds each as the only object of its page and saves the same
//! images as PNGs. zest reads the PDFs (`ocr_languages: [eng]`, defaults otherwise); the
//! `tesseract` CLI reads the PNGs (`--psm 3 -l eng --dpi <the scan's dpi>`,
//! `OMP_THREAD_LIMIT=1`). Character error rates are pooled over a file's pages (edits over the
//! known text's length, whitespace collapsed). Pages that are not one upright image (turned by
//! `/Rotate`, or with typeset text beside the image) are rendered instead, at 300 dpi or at the
//! `dpi` the config sets, and an explicit `dpi` renders image pages too. A Chinese scan (default
//! languages) is read again binarised; a grainy 200-dpi scan in which Tesseract finds nothing
//! is read again enlarged to 300 dpi.
//!
//! The tesseract CLI is required (CI installs it with `make deps`); without it the tests fail
//! and say so rather than skip.

mod common;
use common::{cer_counts, output_rows, text, tools_dir, Project};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// CER of zest's default on the 300-dpi scans before pages were read at their own resolution
/// (every OCR page rendered by PDFium at 300 dpi and binarised with Otsu's threshold):
/// measured with this file's fixture and `ocr_languages: [eng]` on commit cf1e85b: 4 edits
/// over 4,568 characters (0.00088, rounded up here), Tesseract 5.3.0 (Debian). Reading the
/// scans natively must be no worse. (On the same pages the tesseract CLI also made 4 edits;
/// at 200 dpi both made none.)
const CER_300_BEFORE: f64 = 0.0009;

/// How far zest may trail the tesseract CLI on the same 200-dpi page images.
const CER_SLACK: f64 = 0.003;

type Pages = BTreeMap<(String, u64), serde_json::Value>;

struct Fixture {
    truth: BTreeMap<String, Vec<String>>,
    /// The default run: (file, page) → docs row.
    pages: Pages,
    /// The run with `dpi: 200` set.
    overridden: Pages,
    /// The Chinese scan with the default languages (eng, chi_sim).
    chinese: Pages,
    /// The tesseract CLI's text of each page PNG: (file, page) → text.
    cli: BTreeMap<(String, u64), String>,
}

fn file_name(row: &serde_json::Value) -> String {
    Path::new(row["file"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn run(p: &Project, name: &str, with: &str) -> Pages {
    p.write(
        &format!("{name}.yaml"),
        &format!("name: {name}\nnodes:\n  pdfs:\n    op: ingest.pdf\n    with: {with}\n"),
    );
    let report = format!("{name}.json");
    let o = p.zest(&["run", &format!("{name}.yaml"), "--report", &report]);
    assert!(o.status.success(), "{}", text(&o));
    output_rows(p, &p.json(&report), "pdfs", "docs")
        .into_iter()
        .map(|r| ((file_name(&r), r["page"].as_u64().unwrap()), r))
        .collect()
}

/// The tesseract CLI on one PNG, as the peers run it.
fn tesseract_cli(png: &Path, dpi: u32, langs: &str) -> String {
    let o = std::process::Command::new("tesseract")
        .arg(png)
        .arg("-")
        .args(["--psm", "3", "-l", langs, "--dpi", &dpi.to_string()])
        .env("OMP_THREAD_LIMIT", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the tesseract CLI cannot be run ({e}); these tests compare against it: \
                 install it (Debian: apt-get install tesseract-ocr tesseract-ocr-eng, or `make deps`)"
            )
        });
    assert!(
        o.status.success(),
        "tesseract {}: {}",
        png.display(),
        text(&o)
    );
    String::from_utf8(o.stdout).unwrap()
}

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
        let out = std::process::Command::new(&python)
            .arg(common::repo().join("tests/py/make_pdfs.py"))
            .arg(p.path().join("ocr"))
            .args(["--set", "ocr"])
            .output()
            .unwrap();
        assert!(out.status.success(), "make_pdfs.py: {}", text(&out));
        let truth: BTreeMap<String, Vec<String>> = serde_json::from_str(
            &std::fs::read_to_string(p.path().join("ocr/truth.json")).unwrap(),
        )
        .unwrap();
        // The CLI reads the 200- and 300-dpi page images, two at a time, while zest runs.
        let pngs: Vec<(String, u64, u32, PathBuf)> = truth
            .iter()
            .filter_map(|(f, pages)| {
                let dpi = if f.contains("200dpi") {
                    200
                } else if f.contains("300dpi") {
                    300
                } else {
                    return None;
                };
                let stem = f.trim_end_matches(".pdf").to_string();
                Some((1..=pages.len() as u64).map(move |i| {
                    let png = format!("ocr/png/{stem}-{i}.png");
                    (f.clone(), i, dpi, PathBuf::from(png))
                }))
            })
            .flatten()
            .map(|(f, i, dpi, png)| (f, i, dpi, p.path().join(png)))
            .collect();
        let (cli, (pages, overridden, chinese)) = std::thread::scope(|s| {
            let cli = s.spawn(|| {
                let halves: Vec<_> = pngs.chunks(pngs.len().div_ceil(2).max(1)).collect();
                std::thread::scope(|s| {
                    let hs: Vec<_> = halves
                        .iter()
                        .map(|half| {
                            s.spawn(move || {
                                half.iter()
                                    .map(|(f, i, dpi, png)| {
                                        let langs = if f.ends_with("_zh.pdf") {
                                            "eng+chi_sim"
                                        } else {
                                            "eng"
                                        };
                                        ((f.clone(), *i), tesseract_cli(png, *dpi, langs))
                                    })
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    hs.into_iter()
                        .flat_map(|h| h.join().unwrap())
                        .collect::<BTreeMap<_, _>>()
                })
            });
            let pages = run(
                &p,
                "native",
                r#"{paths: ["ocr/*_en.pdf"], ocr_languages: [eng]}"#,
            );
            let overridden = run(
                &p,
                "dpi",
                r#"{paths: ["ocr/scan_200dpi_en.pdf"], ocr_languages: [eng], dpi: 200}"#,
            );
            let chinese = run(&p, "zh", r#"{paths: ["ocr/*_zh.pdf"]}"#);
            (cli.join().unwrap(), (pages, overridden, chinese))
        });
        Fixture {
            truth,
            pages,
            overridden,
            chinese,
            cli,
        }
    })
}

/// Pooled CER over a file's pages of `texts`.
fn pooled(file: &str, text_of: impl Fn(u64) -> String) -> f64 {
    let f = fixture();
    let (mut edits, mut len) = (0, 0);
    for (i, want) in f.truth[file].iter().enumerate() {
        let page = i as u64 + 1;
        let got = text_of(page);
        let (e, n) = cer_counts(&got, want, file.ends_with("_zh.pdf"));
        eprintln!("{file} page {page}: {e} edits over {n} characters");
        edits += e;
        len += n;
    }
    edits as f64 / len.max(1) as f64
}

fn zest_text(pages: &Pages, file: &str, page: u64) -> String {
    let r = pages
        .get(&(file.to_string(), page))
        .unwrap_or_else(|| panic!("{file} page {page} missing from the docs output"));
    assert_eq!(r["method"], "ocr", "{r}");
    r["text"].as_str().unwrap().to_string()
}

fn cli_text(file: &str, page: u64) -> String {
    fixture().cli[&(file.to_string(), page)].clone()
}

#[test]
fn scans_at_200_dpi_read_within_0_3_points_of_the_tesseract_cli() {
    let f = fixture();
    let file = "scan_200dpi_en.pdf";
    let zest = pooled(file, |i| zest_text(&f.pages, file, i));
    let cli = pooled(file, |i| cli_text(file, i));
    let rendered = pooled(file, |i| zest_text(&f.overridden, file, i));
    eprintln!(
        "200 dpi: zest CER {zest:.4}, tesseract CLI {cli:.4}, zest rendering at 200 dpi {rendered:.4}"
    );
    assert!(
        zest <= cli + CER_SLACK,
        "200-dpi scans: zest's CER {zest:.4} is more than {CER_SLACK} above the tesseract CLI's {cli:.4}"
    );
}

#[test]
fn scans_at_300_dpi_read_no_worse_than_before() {
    let f = fixture();
    let file = "scan_300dpi_en.pdf";
    let zest = pooled(file, |i| zest_text(&f.pages, file, i));
    let cli = pooled(file, |i| cli_text(file, i));
    eprintln!("300 dpi: zest CER {zest:.4}, tesseract CLI {cli:.4}, before {CER_300_BEFORE}");
    assert!(
        zest <= CER_300_BEFORE,
        "300-dpi scans: zest's CER {zest:.4} is above {CER_300_BEFORE}, its CER before native-resolution OCR"
    );
}

#[test]
fn image_pages_are_read_at_their_own_resolution() {
    let f = fixture();
    for (file, dpi) in [("scan_200dpi_en.pdf", 200), ("scan_300dpi_en.pdf", 300)] {
        for i in 1..=f.truth[file].len() as u64 {
            let r = &f.pages[&(file.to_string(), i)];
            assert_eq!(r["ocr_image"], "native", "{file} page {i}: {r}");
            assert_eq!(r["ocr_dpi"], dpi, "{file} page {i}: {r}");
            // English scans are left to Tesseract's own thresholding.
            assert_eq!(r["ocr_binarized"], false, "{file} page {i}: {r}");
        }
    }
}

#[test]
fn an_explicit_dpi_renders_image_pages_at_that_dpi() {
    let f = fixture();
    let file = "scan_200dpi_en.pdf";
    for i in 1..=f.truth[file].len() as u64 {
        let r = &f.overridden[&(file.to_string(), i)];
        assert_eq!(r["ocr_image"], "rendered", "{file} page {i}: {r}");
        assert_eq!(r["ocr_dpi"], 200, "{file} page {i}: {r}");
        assert_eq!(r["ocr_binarized"], true, "{file} page {i}: {r}");
    }
}

#[test]
fn chinese_scans_are_binarised_and_read_within_0_3_points_of_the_tesseract_cli() {
    let f = fixture();
    let file = "scan_200dpi_zh.pdf";
    let zest = pooled(file, |i| zest_text(&f.chinese, file, i));
    let cli = pooled(file, |i| cli_text(file, i));
    eprintln!("Chinese, 200 dpi: zest CER {zest:.4}, tesseract CLI (eng+chi_sim) {cli:.4}");
    assert!(
        zest <= cli + CER_SLACK,
        "Chinese 200-dpi scan: zest's CER {zest:.4} is more than {CER_SLACK} above the tesseract CLI's {cli:.4}"
    );
    for i in 1..=f.truth[file].len() as u64 {
        let r = &f.chinese[&(file.to_string(), i)];
        assert_eq!(r["ocr_image"], "native", "{r}");
        assert_eq!(r["ocr_dpi"], 200, "{r}");
        assert_eq!(r["ocr_binarized"], true, "{r}");
        assert_eq!(r["language"], "zh", "{r}");
    }
}

#[test]
fn grainy_low_resolution_scans_are_read_enlarged_when_tesseract_finds_nothing() {
    let f = fixture();
    let file = "scan_grainy_200dpi_en.pdf";
    let zest = pooled(file, |i| zest_text(&f.pages, file, i));
    let cli = pooled(file, |i| cli_text(file, i));
    eprintln!("grainy 200 dpi: zest CER {zest:.4}, tesseract CLI {cli:.4}");
    let r = &f.pages[&(file.to_string(), 1)];
    assert_eq!(r["ocr_image"], "upscaled", "{r}");
    assert_eq!(r["ocr_dpi"], 300, "{r}");
    assert_eq!(r["ocr_binarized"], true, "{r}");
    assert!(zest <= 0.03, "{file}: CER {zest:.4}\n{}", r["text"]);
}

#[test]
fn rotated_pages_and_pages_with_more_than_an_image_are_rendered_at_300_dpi() {
    let f = fixture();
    for file in ["scan_rotated_en.pdf", "scan_with_text_en.pdf"] {
        let r = &f.pages[&(file.to_string(), 1)];
        assert_eq!(r["ocr_image"], "rendered", "{file}: {r}");
        assert_eq!(r["ocr_dpi"], 300, "{file}: {r}");
        assert_eq!(r["ocr_binarized"], true, "{file}: {r}");
        // Rendered as shown: the rotated page reads upright, the typeset line is read too.
        let e = pooled(file, |i| zest_text(&f.pages, file, i));
        assert!(e <= 0.03, "{file}: CER {e:.4}\n{}", r["text"]);
    }
}
