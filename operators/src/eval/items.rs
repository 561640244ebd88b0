//! Multiple-choice benchmark records, read as their publishers ship them: MedQA (`question`,
//! `options` by letter, `answer_idx`), the Citrus unified schema (`Q`, `OP`, `A`), MMLU's
//! header-less CSV (question, four options, the letter), PubMedQA (`question`, `contexts`,
//! `final_decision`: yes/no/maybe) and MedMCQA (`question`, `opa`…`opd`, `cop`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A benchmark's record layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Told apart by the record's fields.
    #[default]
    Auto,
    /// MedQA as published: `question`, `options` {letter: text}, `answer_idx`, `meta_info`.
    Medqa,
    /// The Citrus unified schema: `exam_name`, `id`, `Q`, `OP` [{op_idx, op_value}], `A`.
    Unified,
    /// MMLU's CSV without a header (`data.load` with `csv: {header: false}`):
    /// `column_1` the question, `column_2`…`column_5` the options, `column_6` the letter.
    Mmlu,
    /// PubMedQA: `pmid`, `question`, `contexts`, `final_decision` (yes, no, maybe).
    Pubmedqa,
    /// MedMCQA: `id`, `question`, `opa`…`opd`, `cop` (0–3 as on the Hub, 1–4 as in the
    /// original release: told apart per dataset), `subject_name`.
    Medmcqa,
}

/// One multiple-choice question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// The record's id, or its position in the benchmark.
    pub id: String,
    /// The exam (benchmark) it belongs to.
    pub exam: String,
    /// Subject or step, where the benchmark gives one.
    pub subject: Option<String>,
    /// The question (with its context, for PubMedQA).
    pub question: String,
    /// Option texts, in the benchmark's order (A, B, …).
    pub options: Vec<String>,
    /// Index of the right option.
    pub answer: usize,
}

/// The letter of option `i` (A, B, …).
pub fn letter(i: usize) -> char {
    (b'A' + i as u8) as char
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn field(row: &Value, name: &str) -> Option<String> {
    row.get(name)
        .and_then(text)
        .filter(|s| !s.trim().is_empty())
}

fn letter_index(s: &str, n: usize) -> Option<usize> {
    let s = s
        .trim()
        .trim_matches(|c: char| c == '(' || c == ')' || c == '.');
    let mut chars = s.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() || !c.is_ascii_uppercase() {
        return None;
    }
    let i = (c as u8 - b'A') as usize;
    (i < n).then_some(i)
}

/// The layout of `row`, told by its fields.
pub fn detect(row: &Value) -> Result<Layout, String> {
    let has = |k: &str| row.get(k).is_some_and(|v| !v.is_null());
    Ok(if has("OP") && has("Q") {
        Layout::Unified
    } else if has("options") && has("question") {
        Layout::Medqa
    } else if has("opa") && has("cop") {
        Layout::Medmcqa
    } else if has("final_decision") && has("question") {
        Layout::Pubmedqa
    } else if has("column_1") && has("column_6") {
        Layout::Mmlu
    } else {
        let mut keys: Vec<&str> = row
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        return Err(format!(
            "cannot tell the benchmark layout from the fields {keys:?}: set `layout` (medqa, unified, mmlu, pubmedqa, medmcqa)"
        ));
    })
}

/// Reads one record of a benchmark named `exam`; `position` is its index, the id when the
/// record has none; `cop_base` is MedMCQA's first answer index (0 or 1).
pub fn read(
    row: &Value,
    layout: Layout,
    exam: &str,
    position: usize,
    cop_base: usize,
) -> Result<Item, String> {
    let layout = match layout {
        Layout::Auto => detect(row)?,
        l => l,
    };
    let need = |name: &str| field(row, name).ok_or_else(|| format!("no `{name}`"));
    let id = ["id", "pmid", "qid"]
        .iter()
        .find_map(|k| field(row, k))
        .unwrap_or_else(|| position.to_string());
    let item = match layout {
        Layout::Auto => unreachable!("resolved above"),
        Layout::Medqa => {
            let opts = row
                .get("options")
                .and_then(Value::as_object)
                .ok_or("`options` must map letters to texts")?;
            let mut pairs: Vec<(usize, String)> = opts
                .iter()
                .map(|(k, v)| {
                    let i =
                        letter_index(k, 26).ok_or(format!("option key `{k}` is not a letter"))?;
                    Ok((i, text(v).ok_or(format!("option {k} is not text"))?))
                })
                .collect::<Result<_, String>>()?;
            pairs.sort_by_key(|p| p.0);
            if pairs.iter().enumerate().any(|(i, p)| p.0 != i) {
                return Err("option letters must run A, B, C, … without gaps".into());
            }
            let options: Vec<String> = pairs.into_iter().map(|p| p.1).collect();
            let answer = match field(row, "answer_idx") {
                Some(a) => letter_index(&a, options.len())
                    .ok_or(format!("`answer_idx` `{a}` names no option"))?,
                None => {
                    let a = need("answer")?;
                    options
                        .iter()
                        .position(|o| o.trim() == a.trim())
                        .ok_or(format!("`answer` `{a}` is none of the options"))?
                }
            };
            Item {
                id,
                exam: exam.to_string(),
                subject: field(row, "meta_info"),
                question: need("question")?,
                options,
                answer,
            }
        }
        Layout::Unified => {
            let ops = row
                .get("OP")
                .and_then(Value::as_array)
                .ok_or("`OP` must be a list of options")?;
            let mut pairs: Vec<(usize, String)> = ops
                .iter()
                .map(|o| {
                    let idx = o
                        .get("op_idx")
                        .and_then(text)
                        .ok_or("an option has no `op_idx`")?;
                    let i = letter_index(&idx, 26)
                        .ok_or(format!("`op_idx` `{idx}` is not a letter"))?;
                    let v = o
                        .get("op_value")
                        .and_then(text)
                        .ok_or("an option has no `op_value`")?;
                    Ok((i, v))
                })
                .collect::<Result<_, String>>()?;
            pairs.sort_by_key(|p| p.0);
            if pairs.iter().enumerate().any(|(i, p)| p.0 != i) {
                return Err("`op_idx` letters must run A, B, C, … without gaps".into());
            }
            let options: Vec<String> = pairs.into_iter().map(|p| p.1).collect();
            let a = need("A")?;
            let answer =
                letter_index(&a, options.len()).ok_or(format!("`A` `{a}` names no option"))?;
            let question = match field(row, "C") {
                Some(c) => format!("{c}\n\n{}", need("Q")?),
                None => need("Q")?,
            };
            Item {
                id,
                exam: field(row, "exam_name").unwrap_or_else(|| exam.to_string()),
                subject: field(row, "subject"),
                question,
                options,
                answer,
            }
        }
        Layout::Mmlu => {
            let options: Vec<String> = (2..=5)
                .map(|c| need(&format!("column_{c}")))
                .collect::<Result<_, String>>()?;
            let a = need("column_6")?;
            Item {
                id,
                exam: exam.to_string(),
                subject: None,
                question: need("column_1")?,
                answer: letter_index(&a, 4).ok_or(format!("answer `{a}` is not A–D"))?,
                options,
            }
        }
        Layout::Pubmedqa => {
            let contexts: Vec<String> = match row.get("contexts") {
                Some(Value::Array(a)) => a.iter().filter_map(text).collect(),
                Some(Value::Object(o)) => o
                    .get("contexts")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(text).collect())
                    .unwrap_or_default(),
                Some(v) => text(v).into_iter().collect(),
                None => vec![],
            };
            let options: Vec<String> = ["yes", "no", "maybe"].map(String::from).to_vec();
            let d = need("final_decision")?;
            let answer = options
                .iter()
                .position(|o| o.eq_ignore_ascii_case(d.trim()))
                .ok_or(format!("`final_decision` `{d}` is not yes, no or maybe"))?;
            let question = if contexts.is_empty() {
                need("question")?
            } else {
                format!(
                    "Context: {}\n\nQuestion: {}",
                    contexts.join(" "),
                    need("question")?
                )
            };
            Item {
                id,
                exam: exam.to_string(),
                subject: None,
                question,
                options,
                answer,
            }
        }
        Layout::Medmcqa => {
            let options: Vec<String> = ["opa", "opb", "opc", "opd"]
                .iter()
                .map(|k| need(k))
                .collect::<Result<_, String>>()?;
            let cop = row
                .get("cop")
                .and_then(|v| v.as_u64().or_else(|| text(v)?.trim().parse().ok()))
                .ok_or("`cop` must be the right option's number")? as usize;
            let answer = cop.checked_sub(cop_base).filter(|a| *a < 4).ok_or(format!(
                "`cop` {cop} names no option (numbered from {cop_base})"
            ))?;
            Item {
                id,
                exam: exam.to_string(),
                subject: field(row, "subject_name"),
                question: need("question")?,
                options,
                answer,
            }
        }
    };
    if item.options.len() < 2 {
        return Err("a question needs at least two options".into());
    }
    Ok(item)
}

/// MedMCQA's first answer index in `rows`: 1 when some `cop` is 4 and none is 0, else 0.
pub fn medmcqa_cop_base(rows: &[Value]) -> usize {
    let cops: Vec<u64> = rows
        .iter()
        .filter_map(|r| r.get("cop").and_then(Value::as_u64))
        .collect();
    usize::from(cops.contains(&4) && !cops.contains(&0))
}

/// `item` with its options in the order of a permutation drawn from `seed` and its id: the
/// same permutation on every run; the answer follows its option.
pub fn shuffled(item: &Item, seed: u64) -> Item {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in item.exam.bytes().chain([0]).chain(item.id.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = zest_kernels::rng::Rng::new(seed ^ h);
    let mut order: Vec<usize> = (0..item.options.len()).collect();
    for i in (1..order.len()).rev() {
        let j = (rng.uniform() * (i + 1) as f64) as usize;
        order.swap(i, j.min(i));
    }
    Item {
        options: order.iter().map(|&i| item.options[i].clone()).collect(),
        answer: order
            .iter()
            .position(|&i| i == item.answer)
            .expect("a permutation"),
        ..item.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(path: &str) -> Vec<Value> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path);
        let Ok(text) = std::fs::read_to_string(&p) else {
            panic!("{} is missing", p.display());
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_shared_samples_read_unchanged() {
        let medqa = lines("shared/formats/medqa_original.sample.jsonl");
        let unified = lines("shared/formats/mcq_unified.sample.jsonl");
        assert!(!medqa.is_empty() && !unified.is_empty());
        for (i, (m, u)) in medqa.iter().zip(&unified).enumerate() {
            let a = read(m, Layout::Auto, "medqa", i, 0).unwrap();
            let b = read(u, Layout::Auto, "medqa", i, 0).unwrap();
            // The two samples hold the same questions: the same options and answers.
            assert_eq!(a.question, b.question);
            assert_eq!(a.options, b.options);
            assert_eq!(a.answer, b.answer);
            assert_eq!(b.exam, "medqa_train_small");
            assert_eq!(a.options[a.answer], m["answer"].as_str().unwrap());
        }
    }

    #[test]
    fn mmlu_pubmedqa_and_medmcqa_records() {
        let row = json!({"column_1": "Which of the following best describes the structure that collects urine in the body?",
            "column_2": "Bladder", "column_3": "Kidney", "column_4": "Ureter", "column_5": "Urethra", "column_6": "A"});
        let it = read(&row, Layout::Auto, "mmlu", 3, 0).unwrap();
        assert_eq!((it.answer, it.options.len(), it.id.as_str()), (0, 4, "3"));
        let row = json!({"pmid": "21645374", "question": "Do mitochondria play a role?",
            "contexts": ["PCD is regulated.", "Mitochondria were imaged."], "final_decision": "yes"});
        let it = read(&row, Layout::Auto, "pubmedqa", 0, 0).unwrap();
        assert_eq!(it.options, ["yes", "no", "maybe"]);
        assert!(it
            .question
            .starts_with("Context: PCD is regulated. Mitochondria"));
        assert_eq!((it.answer, it.id.as_str()), (0, "21645374"));
        let rows = vec![
            json!({"id": "a", "question": "Q1", "opa": "w", "opb": "x", "opc": "y", "opd": "z", "cop": 4, "subject_name": "Anatomy"}),
            json!({"id": "b", "question": "Q2", "opa": "w", "opb": "x", "opc": "y", "opd": "z", "cop": 1}),
        ];
        let base = medmcqa_cop_base(&rows);
        assert_eq!(base, 1);
        let it = read(&rows[0], Layout::Auto, "medmcqa", 0, base).unwrap();
        assert_eq!((it.answer, it.subject.as_deref()), (3, Some("Anatomy")));
        assert_eq!(medmcqa_cop_base(&[json!({"cop": 0}), json!({"cop": 3})]), 0);
    }

    #[test]
    fn bad_records_name_the_problem() {
        let e = read(&json!({"text": "x"}), Layout::Auto, "x", 0, 0).unwrap_err();
        assert!(e.contains("set `layout`") && e.contains("text"), "{e}");
        let e = read(
            &json!({"question": "q", "options": {"A": "a", "B": "b"}, "answer_idx": "E"}),
            Layout::Auto,
            "x",
            0,
            0,
        )
        .unwrap_err();
        assert!(e.contains("names no option"), "{e}");
        let e = read(
            &json!({"question": "q", "options": {"A": "a", "C": "c"}, "answer_idx": "A"}),
            Layout::Medqa,
            "x",
            0,
            0,
        )
        .unwrap_err();
        assert!(e.contains("without gaps"), "{e}");
    }

    #[test]
    fn shuffling_is_seeded_and_keeps_the_answer() {
        let row = json!({"question": "q", "options": {"A": "a", "B": "b", "C": "c", "D": "d", "E": "e"}, "answer_idx": "C"});
        let it = read(&row, Layout::Auto, "medqa", 0, 0).unwrap();
        let s1 = shuffled(&it, 7);
        assert_eq!(s1, shuffled(&it, 7));
        assert_eq!(s1.options[s1.answer], "c");
        let mut sorted = s1.options.clone();
        sorted.sort();
        assert_eq!(sorted, it.options);
        let moved = (0..20).any(|s| shuffled(&it, s).options != it.options);
        assert!(moved);
    }
}
