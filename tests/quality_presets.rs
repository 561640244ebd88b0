//! `clean.quality`'s presets on real medical text and on junk, end to end: the 1,000 real
//! PubMedQA abstracts of ../shared/corpus and a junk set built here from a fixed seed (the
//! kinds a curator drops: navigation boilerplate, tables of numbers, repeated lines,
//! mojibake, keyword stuffing, random characters) go through `data.load` → `clean.quality`.
//! `preset: literature` must keep ≥ 97% of the abstracts and reject ≥ 95% of the junk; the
//! filter report must list every rule that dropped something, with counts that add up.

mod common;
use common::{artifact_file, node, output_rows, text, Lcg, Project};
use std::collections::BTreeMap;

/// The sentences of `texts` (split at ". "), for junk made of real prose.
fn sentences(texts: &[(String, String)]) -> Vec<String> {
    texts
        .iter()
        .flat_map(|(_, t)| t.split(". ").map(|s| s.trim().to_string()))
        .filter(|s| s.len() > 40)
        .map(|s| if s.ends_with('.') { s } else { s + "." })
        .collect()
}

const NAV: &[&str] = &[
    "Home",
    "About us",
    "Contact",
    "Log in",
    "Register",
    "Subscribe to our newsletter",
    "Search",
    "Health A-Z",
    "Conditions",
    "Drugs & Supplements",
    "Find a doctor",
    "Book an appointment",
    "Patient portal",
    "Careers",
    "Donate",
    "News",
    "Events",
    "Privacy policy",
    "Terms of use",
    "Cookie settings",
    "Accessibility",
    "Sitemap",
    "Follow us on Facebook",
    "Follow us on Twitter",
    "Share",
    "Print",
    "Email this page",
    "Back to top",
    "Skip to main content",
    "Related articles",
    "Next article",
    "Previous article",
    "Read more",
    "Sign up for free",
    "© 2024 Health Media Group. All rights reserved.",
];

const TOPICS: &[&str] = &[
    "Diabetes",
    "Heart disease",
    "Asthma",
    "Breast cancer",
    "COVID-19",
    "Mental health",
    "Pregnancy",
    "Vaccines",
    "High blood pressure",
    "Arthritis",
    "Migraine",
    "Kidney disease",
    "Sleep disorders",
    "Allergies",
    "Healthy eating",
];

const ROWS: &[&str] = &[
    "Age, years",
    "Male sex, n (%)",
    "BMI, kg/m2",
    "Systolic BP, mmHg",
    "Diastolic BP, mmHg",
    "HbA1c, %",
    "LDL cholesterol, mmol/L",
    "eGFR, mL/min/1.73 m2",
    "Current smoker, n (%)",
    "Heart rate, bpm",
    "CRP, mg/L",
    "Hemoglobin, g/dL",
];

const SPAM: &[&str] = &[
    "best diabetes treatment",
    "diabetes cure",
    "cheap insulin",
    "buy insulin online",
    "natural diabetes remedy",
    "lower blood sugar fast",
    "diabetes diet plan",
    "type 2 diabetes reversal",
    "weight loss pills",
    "lose weight fast",
    "fat burner",
    "keto diet pills",
    "cheap viagra",
    "buy cialis online",
    "hair loss cure",
    "CBD oil for pain",
    "best CBD gummies",
    "online pharmacy no prescription",
    "discount pharmacy",
    "free shipping",
];

const ZH: &[&str] = &[
    "患者男性，六十五岁，因发热伴咳嗽三天入院。",
    "既往有高血压病史十年，规律服用降压药物。",
    "入院后给予抗感染及对症支持治疗，体温逐渐恢复正常。",
    "胸部影像学检查提示右下肺炎症，血常规白细胞计数升高。",
    "糖尿病是一组以高血糖为特征的代谢性疾病。",
    "长期高血糖可导致眼、肾、心脏和神经的慢性损害。",
    "治疗包括饮食控制、运动、口服降糖药及胰岛素。",
];

/// `s` encoded as UTF-8 and read as Windows-1252: mojibake.
fn mojibake(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            0x80 => '€',
            0x82 => '‚',
            0x83 => 'ƒ',
            0x84 => '„',
            0x85 => '…',
            0x86 => '†',
            0x87 => '‡',
            0x88 => 'ˆ',
            0x89 => '‰',
            0x8A => 'Š',
            0x8B => '‹',
            0x8C => 'Œ',
            0x8E => 'Ž',
            0x91 => '\u{2018}',
            0x92 => '\u{2019}',
            0x93 => '\u{201C}',
            0x94 => '\u{201D}',
            0x95 => '•',
            0x96 => '–',
            0x97 => '—',
            0x98 => '˜',
            0x99 => '™',
            0x9A => 'š',
            0x9B => '›',
            0x9C => 'œ',
            0x9E => 'ž',
            0x9F => 'Ÿ',
            b => char::from(b),
        })
        .collect()
}

fn navigation(r: &mut Lcg, prose: &[String]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for _ in 0..r.range(12, 35) {
        match r.below(4) {
            0 => {
                let n = r.range(3, 7);
                let bar: Vec<&str> = (0..n).map(|_| *r.pick(NAV)).collect();
                lines.push(bar.join(" | "));
            }
            1 => lines.push(format!("{} > {}", r.pick(TOPICS), r.pick(TOPICS))),
            2 => lines.push(r.pick(TOPICS).to_string()),
            _ => lines.push(r.pick(NAV).to_string()),
        }
    }
    if r.below(2) == 0 {
        // A teaser sentence, as real pages have.
        let at = r.below(lines.len());
        lines.insert(at, r.pick(prose).clone());
    }
    lines.join("\n")
}

fn number_table(r: &mut Lcg) -> String {
    let mut lines = vec![format!(
        "Table {}. Baseline characteristics of the patients",
        r.range(1, 6)
    )];
    let labelled = r.below(3) != 0;
    lines.push(if labelled {
        format!(
            "Variable  Control (n={})  Treatment (n={})  p",
            r.range(40, 400),
            r.range(40, 400)
        )
    } else {
        "ID  V1  V2  V3  V4  V5".to_string()
    });
    for i in 0..r.range(10, 30) {
        let num = |r: &mut Lcg| format!("{}.{}", r.range(0, 300), r.below(10));
        let mut row = if labelled {
            ROWS[i % ROWS.len()].to_string()
        } else {
            format!("{}", i + 1)
        };
        for _ in 0..r.range(3, 5) {
            let v = num(r);
            let sd = num(r);
            row.push_str(&format!("  {v} ± {sd}"));
        }
        row.push_str(&format!("  0.{:02}", r.below(100)));
        lines.push(row);
    }
    lines.join("\n")
}

fn repeated_lines(r: &mut Lcg, prose: &[String]) -> String {
    let block: Vec<String> = (0..r.range(1, 3)).map(|_| r.pick(prose).clone()).collect();
    let times = r.range(4, 12);
    if r.below(2) == 0 {
        // The same lines over and over.
        (0..times)
            .flat_map(|_| block.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        // One paragraph repeating itself.
        (0..times)
            .map(|_| block.join(" "))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn mojibake_doc(r: &mut Lcg, prose: &[String]) -> String {
    if r.below(2) == 0 {
        let zh: String = (0..r.range(6, 15)).map(|_| *r.pick(ZH)).collect();
        mojibake(&zh)
    } else {
        // English with typographic quotes, dashes and units (as web and word-processor text
        // has), read with the wrong character set.
        let text: Vec<String> = (0..r.range(5, 9))
            .map(|_| {
                let s = r.pick(prose).clone();
                format!(
                    "“{}” — {} µg, ±2 °C",
                    s.trim_end_matches('.'),
                    r.range(1, 99)
                )
            })
            .collect();
        mojibake(&text.join(" ").replace('\'', "’"))
    }
}

fn keyword_stuffing(r: &mut Lcg) -> String {
    let topic: Vec<&str> = (0..r.range(3, 6)).map(|_| *r.pick(SPAM)).collect();
    let n = r.range(40, 120);
    let words: Vec<String> = (0..n)
        .map(|_| {
            if r.below(8) == 0 {
                r.pick(SPAM).to_string()
            } else {
                r.pick(&topic).to_string()
            }
        })
        .collect();
    let sep = [", ", " | ", " "][r.below(3)];
    let mut t = words.join(sep);
    if r.below(2) == 0 {
        t = format!(
            "Buy now and save on the {}! {t}. Order the {} today.",
            topic[0], topic[1]
        );
    }
    t
}

fn random_chars(r: &mut Lcg) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const SYM: &[u8] = b"!@#$%^&*()_+-=[]{};:,.<>/?~";
    match r.below(3) {
        0 => (0..r.range(8, 25))
            .map(|_| {
                (0..r.range(6, 12))
                    .map(|_| {
                        (0..r.range(2, 11))
                            .map(|_| {
                                if r.below(5) == 0 {
                                    *r.pick(SYM) as char
                                } else {
                                    *r.pick(ALNUM) as char
                                }
                            })
                            .collect::<String>()
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n"),
        1 => (0..r.range(10, 30))
            .map(|_| {
                (0..76)
                    .map(|_| {
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                            [r.below(64)] as char
                    })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => (0..r.range(10, 30))
            .map(|i| {
                let bytes: Vec<String> = (0..16).map(|_| format!("{:02x}", r.below(256))).collect();
                format!("{:08x}  {}", i * 16, bytes.join(" "))
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Junk documents by kind: (id, text, kind).
pub fn junk(seed: u64, per_kind: usize, prose: &[String]) -> Vec<(String, String, &'static str)> {
    let mut r = Lcg(seed);
    let mut out = Vec::new();
    for kind in [
        "navigation",
        "number_table",
        "repeated_lines",
        "mojibake",
        "keyword_stuffing",
        "random_chars",
    ] {
        for i in 0..per_kind {
            let t = match kind {
                "navigation" => navigation(&mut r, prose),
                "number_table" => number_table(&mut r),
                "repeated_lines" => repeated_lines(&mut r, prose),
                "mojibake" => mojibake_doc(&mut r, prose),
                "keyword_stuffing" => keyword_stuffing(&mut r),
                _ => random_chars(&mut r),
            };
            out.push((format!("{kind}-{i}"), t, kind));
        }
    }
    out
}

fn jsonl(rows: &[(String, String, String)]) -> String {
    rows.iter()
        .map(|(id, t, s)| {
            serde_json::json!({"doc_id": id, "text": t, "source": s}).to_string() + "\n"
        })
        .collect()
}

/// Runs `clean.quality` with `with` over `rows`; returns (kept ids, rejected rows, report).
fn run(
    p: &Project,
    rows: &[(String, String, String)],
    with: &str,
) -> (
    std::collections::BTreeSet<String>,
    Vec<serde_json::Value>,
    serde_json::Value,
) {
    p.write("docs.jsonl", &jsonl(rows));
    p.write(
        "dag.yaml",
        &format!(
            "name: presets\nnodes:\n  load:\n    op: data.load\n    with: {{paths: [docs.jsonl]}}\n  \
             q:\n    op: clean.quality\n    in: {{docs: load.data}}\n    with: {with}\n"
        ),
    );
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let rep = p.json("run.json");
    let kept = output_rows(p, &rep, "q", "docs")
        .into_iter()
        .map(|r| r["doc_id"].as_str().unwrap().to_string())
        .collect();
    let rejected = output_rows(p, &rep, "q", "rejected");
    let digest = node(&rep, "q")["outputs"]["report"]["digest"]
        .as_str()
        .expect("clean.quality has a report output")
        .to_string();
    let report: serde_json::Value =
        serde_json::from_slice(&artifact_file(p, &digest, "report.json")).unwrap();
    (kept, rejected, report)
}

/// Checks that the report names every rule of `rejected` and that its counts add up.
fn check_report(report: &serde_json::Value, rejected: &[serde_json::Value], total: usize) {
    let n = |v: &serde_json::Value| v.as_u64().unwrap() as usize;
    assert_eq!(n(&report["documents"]), total);
    assert_eq!(n(&report["dropped"]), rejected.len());
    assert_eq!(n(&report["kept"]) + n(&report["dropped"]), total);
    let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_first: BTreeMap<String, usize> = BTreeMap::new();
    for r in rejected {
        let reasons: Vec<String> = r["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        *by_first.entry(reasons[0].clone()).or_default() += 1;
        let mut distinct = reasons.clone();
        distinct.sort();
        distinct.dedup();
        for x in distinct {
            *by_rule.entry(x).or_default() += 1;
        }
    }
    let rules = report["rules"].as_object().unwrap();
    assert_eq!(
        rules.keys().cloned().collect::<Vec<_>>(),
        by_rule.keys().cloned().collect::<Vec<_>>(),
        "the report lists exactly the rules that dropped something"
    );
    for (rule, count) in &by_rule {
        assert_eq!(n(&rules[rule]["dropped"]), *count, "{rule}");
        assert_eq!(
            n(&rules[rule]["first"]),
            by_first.get(rule).copied().unwrap_or(0),
            "{rule}"
        );
    }
    let firsts: usize = rules.values().map(|v| n(&v["first"])).sum();
    assert_eq!(
        firsts,
        rejected.len(),
        "first reasons add up to the documents dropped"
    );
    let mut sources_total = 0;
    for (name, s) in report["sources"].as_object().unwrap() {
        assert_eq!(
            n(&s["kept"]) + n(&s["dropped"]),
            n(&s["documents"]),
            "{name}"
        );
        let f: usize = s["rules"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| n(&v["first"]))
            .sum();
        assert_eq!(f, n(&s["dropped"]), "{name}");
        for (rule, v) in s["rules"].as_object().unwrap() {
            let ex = v["examples"].as_array().unwrap();
            assert!(!ex.is_empty() && ex.len() <= 3, "{name} {rule}");
        }
        sources_total += n(&s["documents"]);
    }
    assert_eq!(sources_total, total);
}

#[test]
fn literature_keeps_real_abstracts_and_drops_junk_and_the_report_adds_up() {
    let abs = common::pubmed_abstracts("\n");
    assert_eq!(abs.len(), 1000, "the corpus has 1,000 abstracts");
    let prose = sentences(&abs);
    let junk = junk(20261201, 60, &prose);
    let mut rows: Vec<(String, String, String)> = abs
        .iter()
        .map(|(id, t)| (format!("pubmed-{id}"), t.clone(), "pubmed".to_string()))
        .collect();
    rows.extend(
        junk.iter()
            .map(|(id, t, k)| (id.clone(), t.clone(), format!("junk:{k}"))),
    );
    let p = Project::new();
    let mut summary = String::new();
    let mut results = BTreeMap::new();
    for preset in ["literature", "textbook", "web"] {
        let (kept, rejected, report) = run(&p, &rows, &format!("{{preset: {preset}}}"));
        check_report(&report, &rejected, rows.len());
        let kept_abs = abs
            .iter()
            .filter(|(id, _)| kept.contains(&format!("pubmed-{id}")))
            .count();
        let mut per_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (id, _, k) in &junk {
            let e = per_kind.entry(k).or_default();
            e.0 += 1;
            e.1 += usize::from(!kept.contains(id));
        }
        let junk_rejected: usize = per_kind.values().map(|v| v.1).sum();
        summary.push_str(&format!(
            "{preset}: abstracts kept {kept_abs}/1000, junk rejected {junk_rejected}/{} ({})\n",
            junk.len(),
            per_kind
                .iter()
                .map(|(k, (n, r))| format!("{k} {r}/{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        // What dropped what, by first reason (the README's per-rule table comes from here).
        for (source, counts) in report["sources"].as_object().unwrap() {
            let mut rules: Vec<(String, u64, u64)> = counts["rules"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v["first"].as_u64().unwrap(),
                        v["dropped"].as_u64().unwrap(),
                    )
                })
                .collect();
            rules.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)));
            let shown: Vec<String> = rules
                .iter()
                .map(|(k, f, d)| format!("{k} {f}/{d}"))
                .collect();
            summary.push_str(&format!(
                "  {source}: {} of {} dropped; by rule (first/any): {}\n",
                counts["dropped"],
                counts["documents"],
                shown.join(", ")
            ));
        }
        results.insert(preset, (kept_abs, junk_rejected));
    }
    eprintln!("{summary}");
    let (kept_abs, junk_rejected) = results["literature"];
    assert!(
        kept_abs >= 970,
        "literature keeps ≥ 97% of the abstracts\n{summary}"
    );
    assert!(
        junk_rejected * 100 >= junk.len() * 95,
        "literature rejects ≥ 95% of the junk\n{summary}"
    );
    let (kept_abs, junk_rejected) = results["textbook"];
    assert!(
        kept_abs >= 970,
        "textbook keeps ≥ 97% of the abstracts\n{summary}"
    );
    assert!(
        junk_rejected * 100 >= junk.len() * 90,
        "textbook rejects ≥ 90% of the junk\n{summary}"
    );
}

#[test]
fn junk_is_reproducible() {
    let prose =
        vec!["The trial enrolled adults with high blood pressure in four centres.".to_string()];
    assert_eq!(junk(7, 3, &prose), junk(7, 3, &prose));
    assert_ne!(junk(7, 3, &prose), junk(8, 3, &prose));
}
