//! `ingest.html` end to end: the sample pages in `dags/data/web/` (two English pages, a GBK
//! Chinese page and a boilerplate-only index page) and a gzip WARC built here go through
//! `ingest.html`; `data.sql` nodes select the rows that must (or must not) be there, and the
//! run's manifests give their counts.

mod common;
use common::{node, text, Project};
use std::io::Write;

fn rows(p: &Project, r: &serde_json::Value, n: &str, port: &str) -> u64 {
    let digest = node(r, n)["outputs"][port]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no output {n}.{port} in {r}"));
    p.json(&format!(".zest/manifests/{digest}.json"))["meta"]["rows"]
        .as_u64()
        .unwrap()
}

/// The log of `node` in the project's (only) run.
fn log(p: &Project, node: &str) -> String {
    std::fs::read_dir(p.path().join(".zest/runs"))
        .map(|d| {
            d.flatten()
                .map(|d| d.path().join(format!("logs/{node}.log")))
                .filter(|l| l.exists())
                .map(|l| std::fs::read_to_string(l).unwrap())
                .collect::<String>()
        })
        .unwrap_or_default()
}

fn gz(data: &[u8]) -> Vec<u8> {
    // A gzip member with stored (uncompressed) deflate blocks, so that the test needs no
    // compression library: header, blocks of at most 65535 bytes, CRC-32 and length.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let mut chunks = data.chunks(65535).peekable();
    if data.is_empty() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = c.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn record(kind: &str, uri: &str, block: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "WARC/1.1\r\nWARC-Type: {kind}\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2024-06-01T12:00:00Z\r\nWARC-Record-ID: <urn:uuid:{kind}-{}>\r\nContent-Length: {}\r\n\r\n",
        uri.len(),
        block.len()
    )
    .into_bytes();
    r.extend_from_slice(block);
    r.extend_from_slice(b"\r\n\r\n");
    r
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(700) {
        write!(out, "{:x}\r\n", c.len()).unwrap();
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn crawl() -> Vec<u8> {
    let page = std::fs::read(common::repo().join("dags/data/web/sepsis-guideline.html")).unwrap();
    let mut ok =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    ok.extend(chunked(&page));
    let gone = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\r\n<html><body><p>This page could not be found on the Northbridge site.</p></body></html>";
    let png = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n";
    let mut w = Vec::new();
    w.extend(gz(&record("warcinfo", "", b"software: zest-test\r\n")));
    w.extend(gz(&record(
        "request",
        "https://mirror.example/sepsis",
        b"GET /sepsis HTTP/1.1\r\nHost: mirror.example\r\n\r\n",
    )));
    w.extend(gz(&record(
        "response",
        "https://mirror.example/sepsis",
        &ok,
    )));
    w.extend(gz(&record(
        "metadata",
        "https://mirror.example/sepsis",
        b"fetchTimeMs: 12\r\n",
    )));
    w.extend(gz(&record(
        "response",
        "https://mirror.example/missing",
        gone,
    )));
    w.extend(gz(&record(
        "response",
        "https://mirror.example/logo.png",
        png,
    )));
    w.extend(gz(
        b"WARC/1.1\r\nWARC-Type: response\r\nWARC-Target-URI: https://mirror.example/broken\r\nContent-Length: many\r\n\r\nnot a record\r\n",
    ));
    w
}

#[test]
fn sample_pages_and_a_warc() {
    let p = Project::new();
    let web = common::repo().join("dags/data/web");
    std::fs::write(p.path().join("crawl.warc.gz"), crawl()).unwrap();
    let dag = format!(
        r#"
name: web
nodes:
  pages:
    op: ingest.html
    with: {{paths: ["{web}/*.html"]}}
  crawl:
    op: ingest.html
    with: {{paths: ["crawl.warc.gz"], source: crawl, min_chars: 100}}
  clearwell:
    op: data.sql
    in: {{docs: pages.docs}}
    with: {{query: "SELECT doc_id FROM docs WHERE title = 'High blood pressure (hypertension): what it is and how to lower it' AND language = 'en' AND language_score > 0.5 AND url = 'https://clearwell-health.example/conditions/high-blood-pressure' AND date = '2024-02-14T09:30:00Z' AND file LIKE '%/high-blood-pressure.html' AND text LIKE 'High blood pressure (hypertension)%Both are measured in millimetres of mercury (mmHg).%being over 65 years old%Seek urgent medical help%'"}}
  northbridge:
    op: data.sql
    in: {{docs: pages.docs}}
    with: {{query: "SELECT doc_id FROM docs WHERE title = 'Suspected sepsis in adults: recognition and early management' AND language = 'en' AND date = '2023-09-01' AND text LIKE '%1.1 Think sepsis in any adult%2 to 4 | Give a fluid bolus%4.1 Monitor people at high risk%'"}}
  kangning:
    op: data.sql
    in: {{docs: pages.docs}}
    with: {{query: "SELECT doc_id FROM docs WHERE title = '2型糖尿病患者的饮食管理' AND language = 'zh' AND date = '2024-04-18' AND url = 'https://www.kangning-health.example/jibing/tangniaobing/yinshi.html' AND text LIKE '%饮食治疗是2型糖尿病治疗的基础%应立即进食含糖食物，并及时测量血糖。%'"}}
  boilerplate:
    op: data.sql
    in: {{docs: pages.docs}}
    with: {{query: "SELECT doc_id FROM docs WHERE lower(text) LIKE '%cookie%' OR text LIKE '%All rights reserved%' OR text LIKE '%Related articles%' OR text LIKE '%Skip to main content%' OR text LIKE '%Care pathways%' OR text LIKE '%Latest updates%' OR text LIKE '%Share this page%' OR text LIKE '%热门文章%' OR text LIKE '%版权所有%' OR text LIKE '%疾病百科%' OR text LIKE '%分享到%'"}}
  well_formed:
    op: data.sql
    in: {{docs: pages.docs}}
    with: {{query: "SELECT doc_id FROM docs WHERE doc_id LIKE 'web-%' AND length(doc_id) = 20 AND source = 'web' AND chars = character_length(text) AND chars >= 200"}}
  index_rejected:
    op: data.sql
    in: {{rej: pages.rejected}}
    with: {{query: "SELECT doc_id FROM rej WHERE file LIKE '%/conditions-index.html' AND url = 'https://clearwell-health.example/conditions' AND (array_element(reasons, 1) = 'no main text' OR array_element(reasons, 1) LIKE 'too short: % characters < min_chars 200')"}}
  crawled:
    op: data.sql
    in: {{docs: crawl.docs}}
    with: {{query: "SELECT doc_id FROM docs WHERE url = 'https://mirror.example/sepsis' AND source = 'crawl' AND doc_id LIKE 'crawl-%' AND file LIKE '%crawl.warc.gz' AND language = 'en' AND date = '2023-09-01' AND text LIKE '%3.1 For adults at high risk, take blood cultures%' AND text NOT LIKE '%Other infection guidelines%'"}}
  corrupt:
    op: data.sql
    in: {{rej: crawl.rejected}}
    with: {{query: "SELECT doc_id FROM rej WHERE url = 'https://mirror.example/broken' AND array_element(reasons, 1) LIKE 'corrupt WARC record%Content-Length%'"}}
"#,
        web = web.display()
    );
    p.write("dag.yaml", &dag);
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    assert_eq!(rows(&p, &r, "pages", "docs"), 3);
    assert_eq!(rows(&p, &r, "pages", "rejected"), 1);
    assert_eq!(rows(&p, &r, "clearwell", "data"), 1);
    assert_eq!(rows(&p, &r, "northbridge", "data"), 1);
    assert_eq!(rows(&p, &r, "kangning", "data"), 1);
    assert_eq!(rows(&p, &r, "boilerplate", "data"), 0);
    assert_eq!(rows(&p, &r, "well_formed", "data"), 3);
    assert_eq!(rows(&p, &r, "index_rejected", "data"), 1);
    // The WARC: one page kept; the 404 and the image skipped; the corrupt record rejected.
    assert_eq!(rows(&p, &r, "crawl", "docs"), 1);
    assert_eq!(rows(&p, &r, "crawl", "rejected"), 1);
    assert_eq!(rows(&p, &r, "crawled", "data"), 1);
    assert_eq!(rows(&p, &r, "corrupt", "data"), 1);
    let l = log(&p, "crawl");
    for want in [
        "1 HTTP status 404",
        "1 not HTML (image/png)",
        "1 WARC request records",
        "1 WARC warcinfo records",
        "1 WARC metadata records",
    ] {
        assert!(l.contains(want), "`{want}` not in the log:\n{l}");
    }
}

#[test]
fn a_missing_path_fails_the_node_clearly() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        "name: web\nnodes:\n  pages:\n    op: ingest.html\n    with: {paths: [\"pages/nowhere.html\"]}\n",
    );
    let o = p.zest(&["run", "dag.yaml"]);
    assert!(!o.status.success());
    let all = format!("{}{}", text(&o), log(&p, "pages"));
    assert!(
        all.contains("pages/nowhere.html") && all.contains("no such file"),
        "{all}"
    );
}

#[test]
fn an_unknown_extension_needs_a_format() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        "name: web\nnodes:\n  pages:\n    op: ingest.html\n    with: {paths: [\"pages/*.txt\"]}\n",
    );
    let o = p.zest(&["run", "dag.yaml"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("set `format`"), "{}", text(&o));
}
