//! `generate.rejection`: rejection sampling from a policy into preference pairs, as Citrus
//! builds them for its preference stage.
//!
//! Each question is asked as `eval.mcq` asks it; the policy answers `n` times (Citrus: 10 at
//! temperature 0.7). Every sample is scored:
//!
//! - the verifier: the chosen option ([`crate::eval::extract`]) against the key — 60 points
//!   when right, plus 20 when the response keeps the format and 20 when it passes the filters;
//! - the filters (Citrus's): a `<think>` of at least `min_think_chars` characters, a non-empty
//!   answer, the question's language, no refusal, at most `max_chars` characters;
//! - optionally an LLM judge with a 0–100 rubric (Citrus's: 60 for a right answer, 30–50 for
//!   a partly right one, bonuses for reasoning and clarity, penalties for unsafe or invented
//!   claims), whose score then replaces the verifier's.
//!
//! Pairs: chosen is the best sample scoring at least `min_score` (60) that the verifier finds
//! right and that passes the filters; rejected ones are drawn (seeded) from the `lowest` (5)
//! lowest samples under `min_score`; at most `max_pairs` (3) pairs per question. Out come
//! TRL's conversational preference rows, every sample with its scores, and a report of pass
//! rates.

use super::backend::{request_seed, ChatRequest, Message, Role, RoleConfig};
use super::io::{self, load_items};
use super::templates::{self, Overrides};
use super::{has_cjk, language_of, Language};
use crate::eval::extract::{answer_block, extract, follows_format};
use crate::eval::items::{letter, Item, Layout};
use crate::eval::mcq::{prompt, AnswerFormat};
use anyhow::Result;
use datafusion::arrow::datatypes::DataType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports, WorkerKind};

/// The filters a chosen response must pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Fewest characters inside `<think>` (answer format `think`).
    #[serde(default = "default_min_think")]
    pub min_think_chars: usize,
    /// Most characters in a response.
    #[serde(default = "default_max_chars")]
    pub max_chars: usize,
    /// The response must be in the question's language.
    #[serde(default = "yes")]
    pub language_match: bool,
    /// Phrases that make a response a refusal (compared in lower case).
    #[serde(default = "default_refusals")]
    pub refusals: Vec<String>,
}

impl Default for Filters {
    fn default() -> Self {
        serde_json::from_value(json!({})).expect("every field has a default")
    }
}

fn default_min_think() -> usize {
    200
}
fn default_max_chars() -> usize {
    8192
}
fn yes() -> bool {
    true
}
fn default_refusals() -> Vec<String> {
    [
        "i cannot answer",
        "i can't answer",
        "i cannot help",
        "i can't help",
        "i cannot provide",
        "i'm sorry, but",
        "i am sorry, but",
        "as an ai",
        "i am unable to",
        "i'm unable to",
        "consult a doctor instead",
        "我无法回答",
        "无法提供",
        "作为一个人工智能",
        "抱歉，我不能",
    ]
    .map(String::from)
    .to_vec()
}

/// `generate.rejection`'s config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectionConfig {
    /// The model sampled (the SFT model).
    #[serde(default = "default_policy")]
    pub policy: RoleConfig,
    /// Samples per question (Citrus: 10).
    #[serde(default = "default_n")]
    pub n: usize,
    /// An LLM judge with a 0–100 rubric; unset: the verifier's score.
    #[serde(default)]
    pub judge: Option<RoleConfig>,
    /// What the policy is asked to write.
    #[serde(default)]
    pub answer_format: AnswerFormat,
    /// The lowest score of a chosen response.
    #[serde(default = "default_min_score")]
    pub min_score: f64,
    /// Rejected responses are drawn from this many lowest-scoring ones under `min_score`.
    #[serde(default = "default_lowest")]
    pub lowest: usize,
    /// Most pairs per question.
    #[serde(default = "default_max_pairs")]
    pub max_pairs: usize,
    /// Citrus's filters.
    #[serde(default)]
    pub filters: Filters,
    /// The questions' record layout.
    #[serde(default)]
    pub layout: Layout,
    /// The exam name of records without `exam_name`.
    #[serde(default = "default_exam")]
    pub exam: String,
    /// At most this many questions (the first ones).
    #[serde(default)]
    pub limit: Option<usize>,
    /// The judge prompt's language: each question's own, or one for all.
    #[serde(default)]
    pub language: Language,
    /// Templates replacing the defaults, by language (`en`, `zh`): `judge`.
    #[serde(default)]
    pub prompts: Overrides,
    /// Seed of the samples and of the draw of rejected responses.
    #[serde(default)]
    pub seed: u64,
}

fn default_policy() -> RoleConfig {
    RoleConfig {
        temperature: 0.7,
        max_tokens: 1024,
        ..RoleConfig::default()
    }
}
fn default_n() -> usize {
    10
}
fn default_min_score() -> f64 {
    60.0
}
fn default_lowest() -> usize {
    5
}
fn default_max_pairs() -> usize {
    3
}
fn default_exam() -> String {
    "questions".into()
}

/// One sample, scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    /// Its index among the question's samples.
    pub sample: usize,
    /// The response.
    pub response: String,
    /// The letter the verifier read, if any.
    pub predicted: Option<String>,
    /// Whether that is the key.
    pub correct: bool,
    /// Whether the response keeps the answer format.
    pub format_ok: bool,
    /// The first filter it fails, if any.
    pub failed_filter: Option<&'static str>,
    /// The verifier's score (0–100).
    pub verifier_score: f64,
    /// The judge's score, when there is a judge and its verdict could be read.
    pub judge_score: Option<f64>,
}

impl Scored {
    /// The score pairs are built on.
    pub fn score(&self) -> f64 {
        self.judge_score.unwrap_or(self.verifier_score)
    }
}

/// The language of a response's prose: Chinese when at least a tenth of its letters are.
fn language_of_text(s: &str) -> &'static str {
    let (mut cjk, mut letters) = (0usize, 0usize);
    for c in s.chars() {
        if has_cjk(c.encode_utf8(&mut [0; 4])) {
            cjk += 1;
            letters += 1;
        } else if c.is_alphabetic() {
            letters += 1;
        }
    }
    if letters > 0 && cjk * 10 >= letters {
        "zh"
    } else {
        "en"
    }
}

fn think_block(r: &str) -> Option<&str> {
    let a = r.find("<think>")? + "<think>".len();
    let b = r[a..].find("</think>")? + a;
    Some(&r[a..b])
}

/// The first filter `response` fails.
pub fn failed_filter(
    f: &Filters,
    format: AnswerFormat,
    question_lang: &str,
    response: &str,
) -> Option<&'static str> {
    let lower = response.to_lowercase();
    if response.chars().count() > f.max_chars {
        return Some("too_long");
    }
    if f.refusals.iter().any(|p| lower.contains(&p.to_lowercase())) {
        return Some("refusal");
    }
    if format == AnswerFormat::Think {
        if think_block(response).is_none_or(|t| t.trim().chars().count() < f.min_think_chars) {
            return Some("short_think");
        }
        if answer_block(response).is_none_or(|a| a.trim().is_empty()) {
            return Some("empty_answer");
        }
    } else if response.trim().is_empty() {
        return Some("empty_answer");
    }
    if f.language_match {
        let prose = think_block(response).unwrap_or(response);
        if language_of_text(prose) != question_lang {
            return Some("language");
        }
    }
    None
}

/// Scores one sample with the verifier and the filters.
pub fn score(
    c: &RejectionConfig,
    item: &Item,
    lang: &str,
    sample: usize,
    response: &str,
) -> Scored {
    let e = extract(response, &item.options);
    let correct = e.is_some_and(|e| e.option == item.answer);
    let format_ok = follows_format(
        response,
        c.answer_format == AnswerFormat::Think,
        item.options.len(),
    );
    let failed = failed_filter(&c.filters, c.answer_format, lang, response);
    let verifier = if correct { 60.0 } else { 0.0 }
        + if format_ok { 20.0 } else { 0.0 }
        + if failed.is_none() { 20.0 } else { 0.0 };
    Scored {
        sample,
        response: response.to_string(),
        predicted: e.map(|e| letter(e.option).to_string()),
        correct,
        format_ok,
        failed_filter: failed,
        verifier_score: verifier,
        judge_score: None,
    }
}

/// The judge's score: the number after the last "score" (or 评分, 得分), 0–100.
pub fn parse_judge(text: &str) -> Option<f64> {
    let lower = text.to_lowercase();
    let at = ["score", "评分", "得分", "分数"]
        .iter()
        .filter_map(|k| lower.rfind(k).map(|i| i + k.len()))
        .max()?;
    let rest = &lower[at..];
    let start = rest.find(|c: char| c.is_ascii_digit())?;
    // Only separators between the word and the number.
    if !rest[..start]
        .chars()
        .all(|c| c.is_whitespace() || ":：=*是为-".contains(c))
    {
        return None;
    }
    let num: String = rest[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let v: f64 = num.trim_end_matches('.').parse().ok()?;
    (0.0..=100.0).contains(&v).then_some(v)
}

/// The (chosen, rejected) sample indices of one question, as the module says.
pub fn pairs(c: &RejectionConfig, key: &str, samples: &[Scored]) -> Vec<(usize, usize)> {
    let chosen = samples
        .iter()
        .filter(|s| s.correct && s.failed_filter.is_none() && s.score() >= c.min_score)
        .max_by(|a, b| {
            a.score()
                .total_cmp(&b.score())
                .then(b.sample.cmp(&a.sample))
        });
    let Some(chosen) = chosen else {
        return vec![];
    };
    let mut low: Vec<&Scored> = samples
        .iter()
        .filter(|s| s.score() < c.min_score && s.response != chosen.response)
        .collect();
    low.sort_by(|a, b| {
        a.score()
            .total_cmp(&b.score())
            .then(a.sample.cmp(&b.sample))
    });
    // Distinct texts only: the same wrong answer twice makes the same pair twice.
    let mut seen = std::collections::HashSet::new();
    low.retain(|s| seen.insert(s.response.as_str()));
    low.truncate(c.lowest);
    low.sort_by_key(|s| request_seed(c.seed, &[key, "draw", &s.sample.to_string()]));
    low.into_iter()
        .take(c.max_pairs)
        .map(|r| (chosen.sample, r.sample))
        .collect()
}

/// The operator.
pub struct Rejection;

impl Operator for Rejection {
    type Config = RejectionConfig;
    const NAME: &'static str = "generate.rejection";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Rejection sampling (Citrus): n samples per question, verified, filtered and judged into preference pairs";
    const WORKER: WorkerKind = WorkerKind::Torch;

    fn ports(_c: Option<&RejectionConfig>) -> Ports {
        Ports {
            inputs: vec![
                PortSpec::new(
                    "prompts",
                    PortType::Dataset,
                    "multiple-choice questions with their answers (any layout eval.mcq reads)",
                ),
                PortSpec::new(
                    "policy",
                    PortType::Model,
                    "the model sampled, for `policy: {kind: local}`",
                )
                .optional(),
                PortSpec::new(
                    "judge",
                    PortType::Model,
                    "the judge's model, for `judge: {kind: local}`",
                )
                .optional(),
            ],
            outputs: vec![
                PortSpec::new(
                    "pairs",
                    PortType::Dataset,
                    "TRL conversational preference rows: prompt, chosen, rejected",
                )
                .with_columns(&["id", "exam", "prompt", "chosen", "rejected"]),
                PortSpec::new(
                    "samples",
                    PortType::Dataset,
                    "every sample with its verifier, filter and judge results",
                )
                .with_columns(&["id", "exam", "sample", "response", "correct", "score"]),
                PortSpec::new(
                    "report",
                    PortType::Report,
                    "report.json and report.md: pass rates, pairs, requests",
                ),
            ],
            other_inputs: None,
        }
    }

    fn check(c: &RejectionConfig) -> Result<(), String> {
        c.policy.check("policy")?;
        if let Some(j) = &c.judge {
            j.check("judge")?;
        }
        if !(1..=128).contains(&c.n) {
            return Err("n: must be between 1 and 128".into());
        }
        if c.max_pairs == 0 || c.lowest == 0 {
            return Err("max_pairs and lowest must be at least 1".into());
        }
        if !(0.0..=100.0).contains(&c.min_score) {
            return Err("min_score: must be between 0 and 100".into());
        }
        if c.limit == Some(0) {
            return Err("limit: must be at least 1".into());
        }
        templates::check(&c.prompts)
    }

    fn run(c: &RejectionConfig, ctx: &mut OpContext) -> Result<()> {
        // In `zest-torch`, where the `local` backend is installed.
        crate::train::run_in_torch(Self::NAME, c, ctx)
    }
}

/// Runs the operator (in `zest-torch`, which installs the `local` backend).
pub fn execute(c: &RejectionConfig, ctx: &mut OpContext) -> Result<()> {
    let items = load_items(ctx, "prompts", c.layout, &c.exam, c.limit)?;
    let langs: Vec<&'static str> = items
        .iter()
        .map(|i| language_of(Language::Auto, &i.question))
        .collect();
    let prompts: Vec<String> = items.iter().map(|i| prompt(i, c.answer_format)).collect();
    println!("{} question(s) × {} samples", items.len(), c.n);
    let seed_of = |i: &Item, parts: &[&str]| {
        let mut all = vec![i.exam.as_str(), i.id.as_str()];
        all.extend_from_slice(parts);
        request_seed(c.seed, &all)
    };
    let (scored, counts, unreadable) = {
        let policy = Role::open("policy", &c.policy, ctx)?;
        let requests: Vec<ChatRequest> = items
            .iter()
            .zip(&prompts)
            .map(|(it, p)| {
                ChatRequest::new(
                    &c.policy,
                    vec![Message::user(p.clone())],
                    c.n,
                    seed_of(it, &["policy"]),
                )
            })
            .collect();
        ctx.progress(&format!("sampling {} × {}", items.len(), c.n));
        let responses = policy.complete(&requests)?;
        let mut scored: Vec<Vec<Scored>> = items
            .iter()
            .zip(&responses)
            .zip(&langs)
            .map(|((it, rs), lang)| {
                rs.iter()
                    .enumerate()
                    .map(|(k, r)| score(c, it, lang, k, r))
                    .collect()
            })
            .collect();
        let mut counts = json!({"policy": {"sent": policy.sent.load(Ordering::Relaxed), "reused": policy.cached.load(Ordering::Relaxed)}});
        let mut unreadable = 0usize;
        if let Some(jc) = &c.judge {
            let judge = Role::open("judge", jc, ctx)?;
            let mut reqs = vec![];
            let mut at = vec![];
            for (q, it) in items.iter().enumerate() {
                let lang = language_of(c.language, &it.question);
                let t = templates::get(&c.prompts, lang, "judge");
                let asked = prompt(it, c.answer_format);
                let answer = format!("{}. {}", letter(it.answer), it.options[it.answer].trim());
                for (k, r) in responses[q].iter().enumerate() {
                    let text = templates::fill(
                        &t,
                        &[
                            ("question", &asked),
                            ("answer", &answer),
                            ("response", r),
                            ("language", lang),
                        ],
                    );
                    let ks = k.to_string();
                    reqs.push(ChatRequest::new(
                        jc,
                        vec![Message::user(text)],
                        1,
                        seed_of(it, &["judge", &ks]),
                    ));
                    at.push((q, k));
                }
            }
            ctx.progress(&format!("judging {} samples", reqs.len()));
            for ((q, k), v) in at.into_iter().zip(judge.complete(&reqs)?) {
                match parse_judge(&v[0]) {
                    Some(s) => scored[q][k].judge_score = Some(s),
                    None => unreadable += 1,
                }
            }
            counts["judge"] = json!({"sent": judge.sent.load(Ordering::Relaxed), "reused": judge.cached.load(Ordering::Relaxed)});
        }
        (scored, counts, unreadable)
    };
    let mut pair_rows = vec![];
    let mut sample_rows = vec![];
    let mut with_chosen = 0usize;
    let mut filters: BTreeMap<&str, usize> = BTreeMap::new();
    for (q, it) in items.iter().enumerate() {
        let key = format!("{}/{}", it.exam, it.id);
        let ps = pairs(c, &key, &scored[q]);
        if scored[q]
            .iter()
            .any(|s| s.correct && s.failed_filter.is_none() && s.score() >= c.min_score)
        {
            with_chosen += 1;
        }
        for (ch, rj) in &ps {
            let (a, b) = (&scored[q][*ch], &scored[q][*rj]);
            pair_rows.push(json!({
                "id": it.id, "exam": it.exam,
                "prompt": [{"role": "user", "content": prompts[q]}],
                "chosen": [{"role": "assistant", "content": a.response}],
                "rejected": [{"role": "assistant", "content": b.response}],
                "chosen_score": a.score(), "rejected_score": b.score(),
            }));
        }
        for s in &scored[q] {
            if let Some(f) = s.failed_filter {
                *filters.entry(f).or_insert(0) += 1;
            }
            sample_rows.push(json!({
                "id": it.id, "exam": it.exam, "sample": s.sample as i64,
                "response": s.response, "answer": letter(it.answer).to_string(),
                "predicted": s.predicted, "correct": s.correct, "format_ok": s.format_ok,
                "failed_filter": s.failed_filter, "verifier_score": s.verifier_score,
                "judge_score": s.judge_score, "score": s.score(),
            }));
        }
    }
    use io::{column, messages, schema, text};
    let pair_schema = schema(vec![
        text("id"),
        text("exam"),
        messages("prompt"),
        messages("chosen"),
        messages("rejected"),
        column("chosen_score", DataType::Float64),
        column("rejected_score", DataType::Float64),
    ]);
    io::write_rows(ctx, "pairs", pair_schema, &pair_rows)?;
    let sample_schema = schema(vec![
        text("id"),
        text("exam"),
        column("sample", DataType::Int64),
        text("response"),
        text("answer"),
        text("predicted"),
        column("correct", DataType::Boolean),
        column("format_ok", DataType::Boolean),
        text("failed_filter"),
        column("verifier_score", DataType::Float64),
        column("judge_score", DataType::Float64),
        column("score", DataType::Float64),
    ]);
    io::write_rows(ctx, "samples", sample_schema, &sample_rows)?;
    let total = sample_rows.len().max(1) as f64;
    let rate = |f: &dyn Fn(&Scored) -> bool| {
        scored.iter().flatten().filter(|s| f(s)).count() as f64 / total
    };
    let report = json!({
        "questions": items.len(),
        "samples": sample_rows.len(),
        "correct_rate": rate(&|s| s.correct),
        "format_rate": rate(&|s| s.format_ok),
        "filter_pass_rate": rate(&|s| s.failed_filter.is_none()),
        "filter_failures": filters,
        "questions_with_chosen": with_chosen,
        "questions_with_pairs": pair_rows.iter().map(|p| (p["exam"].as_str(), p["id"].as_str())).collect::<std::collections::HashSet<_>>().len(),
        "pairs": pair_rows.len(),
        "judge_unreadable": unreadable,
        "requests": counts,
    });
    let pct = |k: &str| 100.0 * report[k].as_f64().unwrap_or(0.0);
    let md = format!(
        "# generate.rejection\n\n| questions | samples | right | format | filters passed | with chosen | pairs |\n|---|---|---|---|---|---|---|\n| {} | {} | {:.1}% | {:.1}% | {:.1}% | {} | {} |\n\nFilter failures: {}\n\nRequests: {}\n",
        items.len(),
        sample_rows.len(),
        pct("correct_rate"),
        pct("format_rate"),
        pct("filter_pass_rate"),
        with_chosen,
        pair_rows.len(),
        report["filter_failures"],
        report["requests"],
    );
    println!("{md}");
    ctx.write_output("report", "report.json", serde_json::to_vec_pretty(&report)?)?;
    ctx.write_output("report", "report.md", md.into_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        Item {
            id: "1".into(),
            exam: "t".into(),
            subject: None,
            question: "Which drug treats condition X?".into(),
            options: vec!["Alpha".into(), "Beta".into(), "Gamma".into()],
            answer: 1,
        }
    }

    fn cfg() -> RejectionConfig {
        serde_json::from_value(json!({})).unwrap()
    }

    fn think(n: usize, answer: &str) -> String {
        format!(
            "<think>{}</think><answer>{answer}</answer>",
            "reasoning ".repeat(n)
        )
    }

    #[test]
    fn defaults_are_citrus() {
        let c = cfg();
        assert_eq!(
            (
                c.n,
                c.policy.temperature,
                c.min_score,
                c.lowest,
                c.max_pairs
            ),
            (10, 0.7, 60.0, 5, 3)
        );
        assert_eq!(
            (c.filters.min_think_chars, c.filters.max_chars),
            (200, 8192)
        );
    }

    #[test]
    fn the_verifier_and_the_filters_score_samples() {
        let c = cfg();
        let s = score(&c, &item(), "en", 0, &think(30, "B"));
        assert!(s.correct && s.format_ok && s.failed_filter.is_none());
        assert_eq!(s.score(), 100.0);
        let s = score(&c, &item(), "en", 1, &think(3, "B"));
        assert_eq!(s.failed_filter, Some("short_think"));
        assert_eq!(s.score(), 80.0);
        let s = score(&c, &item(), "en", 2, &think(30, "A"));
        assert!(!s.correct);
        assert_eq!(s.score(), 40.0);
        let s = score(
            &c,
            &item(),
            "en",
            3,
            &format!("I'm sorry, but I cannot say. {}", think(30, "B")),
        );
        assert_eq!(s.failed_filter, Some("refusal"));
        let zh = format!(
            "<think>{}</think><answer>B</answer>",
            "这是推理过程。".repeat(40)
        );
        assert_eq!(
            score(&c, &item(), "en", 4, &zh).failed_filter,
            Some("language")
        );
        let long = think(1000, "B");
        assert_eq!(
            score(&c, &item(), "en", 5, &long).failed_filter,
            Some("too_long")
        );
        let empty = format!("<think>{}</think><answer> </answer>", "r ".repeat(150));
        assert_eq!(
            score(&c, &item(), "en", 6, &empty).failed_filter,
            Some("empty_answer")
        );
    }

    #[test]
    fn pairs_take_the_best_and_draw_from_the_lowest() {
        let c = cfg();
        let it = item();
        let responses = [
            think(30, "B"),
            think(40, "B"),
            think(30, "A"),
            think(31, "C"),
            "no idea".to_string(),
            think(32, "A"),
            think(33, "C"),
            think(34, "A"),
            think(30, "A"),
        ];
        let scored: Vec<Scored> = responses
            .iter()
            .enumerate()
            .map(|(k, r)| score(&c, &it, "en", k, r))
            .collect();
        let p = pairs(&c, "t/1", &scored);
        assert_eq!(p.len(), 3);
        // The best right answer, the earliest of equals.
        assert!(p.iter().all(|(ch, _)| *ch == 0), "{p:?}");
        // Drawn from the five lowest distinct texts: "no idea" (0 points) and four at 40;
        // sample 8 repeats sample 2's text.
        let allowed = [4, 2, 3, 5, 6];
        assert!(p.iter().all(|(_, r)| allowed.contains(r)), "{p:?}");
        assert_eq!(p, pairs(&c, "t/1", &scored));
        // No right answer: no pairs.
        assert!(pairs(&c, "t/1", &scored[2..]).is_empty());
    }

    #[test]
    fn a_judge_score_replaces_the_verifiers() {
        assert_eq!(parse_judge("Sound reasoning.\nScore: 85"), Some(85.0));
        assert_eq!(parse_judge("**Score**: 42/100"), Some(42.0));
        assert_eq!(parse_judge("评分：70"), Some(70.0));
        assert_eq!(parse_judge("I would score it highly"), None);
        assert_eq!(parse_judge("Score: 150"), None);
        let c = cfg();
        let mut s = score(&c, &item(), "en", 0, &think(30, "B"));
        s.judge_score = Some(55.0);
        assert_eq!(s.score(), 55.0);
        // A right answer the judge scores under 60 cannot be chosen.
        assert!(pairs(&c, "k", &[s]).is_empty());
    }
}
