//! Extraction on boilerplate-heavy pages: the sample pages shipped in `dags/data/web/` and
//! pages written here; a GBK page; pages read out of a WARC.

use super::warc::tests::{gz, record};
use super::warc::WarcReader;
use super::*;

const CLEARWELL: &[u8] = include_bytes!("../../../dags/data/web/high-blood-pressure.html");
const NORTHBRIDGE: &[u8] = include_bytes!("../../../dags/data/web/sepsis-guideline.html");
const KANGNING_GBK: &[u8] = include_bytes!("../../../dags/data/web/diabetes-diet-zh.html");
const INDEX: &[u8] = include_bytes!("../../../dags/data/web/conditions-index.html");

fn text_of(bytes: &[u8]) -> Page {
    process(bytes, None).expect("a page").page
}

fn assert_has(text: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(text.contains(w), "missing `{w}` in:\n{text}");
    }
}

fn assert_lacks(text: &str, unwanted: &[&str]) {
    for w in unwanted {
        assert!(!text.contains(w), "boilerplate `{w}` kept in:\n{text}");
    }
}

#[test]
fn health_library_article_without_its_boilerplate() {
    let p = text_of(CLEARWELL);
    assert_eq!(
        p.title.as_deref(),
        Some("High blood pressure (hypertension): what it is and how to lower it")
    );
    assert_eq!(
        p.canonical_url.as_deref(),
        Some("https://clearwell-health.example/conditions/high-blood-pressure")
    );
    assert_eq!(p.lang.as_deref(), Some("en"));
    assert_eq!(p.date.as_deref(), Some("2024-02-14T09:30:00Z"));
    let t = &p.text;
    assert!(
        t.starts_with("High blood pressure (hypertension)\n\n"),
        "{t}"
    );
    assert_has(
        t,
        &[
            "High blood pressure means that the force of blood pushing against the walls of your arteries is higher than it should be.",
            "Both are measured in millimetres of mercury (mmHg).",
            "a reading taken at a clinic of 140/90 mmHg or higher",
            "Lifestyle changes can lower blood pressure by a useful amount",
            "Seek urgent medical help if you have a very high reading",
            // List items on lines of their own, headings kept.
            "Things that raise your risk\n\nbeing over 65 years old\nhaving a close relative with high blood pressure\n",
        ],
    );
    assert_lacks(
        t,
        &[
            "cookies",
            "Skip to main content",
            "Conditions A to Z",
            "Heart and circulation",
            "Share this page",
            "Related articles",
            "Stroke: signs and first aid",
            "weekly health newsletter",
            "Advertisement",
            "Great article",
            "Privacy policy",
            "All rights reserved",
            "dataLayer",
            "does not replace advice",
        ],
    );
}

#[test]
fn guideline_in_a_table_layout_without_menus_and_sidebars() {
    let p = text_of(NORTHBRIDGE);
    assert_eq!(
        p.title.as_deref(),
        Some("Suspected sepsis in adults: recognition and early management")
    );
    assert_eq!(p.date.as_deref(), Some("2023-09-01"));
    assert_eq!(
        p.canonical_url.as_deref(),
        Some("https://guidelines.northbridge.example/ng/sepsis-adults")
    );
    let t = &p.text;
    assert_has(
        t,
        &[
            "1.1 Think sepsis in any adult with a possible infection who is unwell",
            "give a broad-spectrum intravenous antibiotic within one hour",
            "a heart rate above 130 beats per minute;",
            "3 Initial treatment",
            "2 to 4 | Give a fluid bolus and repeat the lactate within one hour.",
            "4.1 Monitor people at high risk continuously",
        ],
    );
    assert_lacks(
        t,
        &[
            "stores cookies",
            "All guidelines",
            "Care pathways",
            "Other infection guidelines",
            "Community-acquired pneumonia",
            "Latest updates",
            "Antimicrobial stewardship",
            "Share on LinkedIn",
            "Terms and conditions",
            "Registered charity",
        ],
    );
}

#[test]
fn gbk_chinese_page() {
    assert!(
        String::from_utf8(KANGNING_GBK.to_vec()).is_err(),
        "the sample is GBK"
    );
    let out = process(KANGNING_GBK, None).unwrap();
    assert_eq!(out.encoding, "GBK");
    let p = out.page;
    assert_eq!(p.title.as_deref(), Some("2型糖尿病患者的饮食管理"));
    assert_eq!(p.lang.as_deref(), Some("zh-CN"));
    assert_eq!(p.date.as_deref(), Some("2024-04-18"));
    assert_eq!(
        p.canonical_url.as_deref(),
        Some("https://www.kangning-health.example/jibing/tangniaobing/yinshi.html")
    );
    let t = &p.text;
    assert_has(
        t,
        &[
            "饮食治疗是2型糖尿病治疗的基础",
            "二、合理搭配主食",
            "每天吃足量的蔬菜，其中深色蔬菜最好占一半以上。\n水果应在两餐之间少量食用",
            "应立即进食含糖食物，并及时测量血糖。",
        ],
    );
    assert_lacks(
        t,
        &[
            "Cookie",
            "疾病百科",
            "下载客户端",
            "分享到",
            "相关阅读",
            "热门文章",
            "春季如何预防过敏性鼻炎",
            "血糖仪限时优惠",
            "版权所有",
            "网站地图",
        ],
    );
    assert_eq!(crate::langid::detect(t).code, "zh");
}

#[test]
fn an_index_page_has_no_main_text() {
    let p = text_of(INDEX);
    assert_eq!(p.title.as_deref(), Some("Conditions A to Z"));
    assert!(p.text.chars().count() < 100, "{}", p.text);
    assert_lacks(&p.text, &["Chickenpox", "cookies", "All rights reserved"]);
}

#[test]
fn blog_page_with_inline_boilerplate() {
    let html = r#"<html><head><title>Sleep and recovery</title></head><body>
      <div id="navigation"><a href="/">Home</a> <a href="/blog">Blog</a> <a href="/shop">Shop</a></div>
      <div class="wrapper has-sidebar">
        <div class="post">
          <h2>Why sleep matters after surgery</h2>
          <p>After an operation, the body repairs tissue mostly during deep sleep, and poor sleep in
             the first week is linked with more pain and a slower return to normal activity.</p>
          <p>Simple measures help: keep the room dark and quiet, limit daytime naps to half an
             hour, and ask the ward team about pain relief before it becomes severe at night.</p>
          <div class="post-tags">Tags: <a href="/t/sleep">sleep</a>, <a href="/t/surgery">surgery</a></div>
        </div>
        <div class="widget-area"><h3>Popular posts</h3><a href="/1">Ten foods for better sleep</a></div>
      </div>
      <div style="display: none">Hidden tracking text that is not content at all, not even close.</div>
      <div id="gdpr-notice">Cookies help us deliver our services.</div>
    </body></html>"#;
    let p = extract(html);
    assert_eq!(
        p.text,
        "Why sleep matters after surgery\n\nAfter an operation, the body repairs tissue mostly during deep sleep, and poor sleep in the first week is linked with more pain and a slower return to normal activity.\n\nSimple measures help: keep the room dark and quiet, limit daytime naps to half an hour, and ask the ward team about pain relief before it becomes severe at night."
    );
}

#[test]
fn pages_out_of_a_warc() {
    let mut block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=GBK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    // The GBK page in 1000-byte chunks, gzip-wrapped in its record.
    for chunk in KANGNING_GBK.chunks(1000) {
        block.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        block.extend_from_slice(chunk);
        block.extend_from_slice(b"\r\n");
    }
    block.extend_from_slice(b"0\r\n\r\n");
    let mut warc = gz(&record("response", "https://zh.example/a", "", &block));
    let mut en = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n".to_vec();
    en.extend_from_slice(NORTHBRIDGE);
    warc.extend(gz(&record("response", "https://en.example/b", "", &en)));
    let mut texts = vec![];
    for rec in WarcReader::new(&warc[..]).unwrap() {
        let rec = rec.unwrap();
        let http = rec.http().unwrap();
        assert!(http.is_html());
        let out = process(&http.body, http.header("Content-Type")).unwrap();
        texts.push((rec.target_uri().unwrap().to_string(), out.page.text));
    }
    assert_eq!(texts.len(), 2);
    assert_eq!(texts[0].0, "https://zh.example/a");
    assert!(texts[0].1.contains("饮食治疗是2型糖尿病治疗的基础"));
    assert!(texts[1].1.contains("1.1 Think sepsis"));
}

#[test]
fn non_html_and_ids() {
    assert_eq!(
        process(b"%PDF-1.7\x00\x01binary", None),
        Err(PageError::NotHtml)
    );
    assert_eq!(process(b"just some words", None), Err(PageError::NotHtml));
    assert!(looks_like_html(b"<!DOCTYPE html><title>x</title>"));
    let a = doc_id("web", "https://a.example/");
    assert_eq!(a.len(), "web-".len() + 16);
    assert_eq!(a, doc_id("web", "https://a.example/"));
    assert_ne!(a, doc_id("web", "https://b.example/"));
}
