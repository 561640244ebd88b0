//! `generate.reasoning`: Citrus's dual-expert synthesis of long chains of thought for
//! questions with a known answer (stage-3 SFT data).
//!
//! For each multiple-choice question:
//!
//! 1. the reasoner rewrites it as an open question (`rewrite`; off with `rewrite: false`);
//! 2. the reasoner proposes the next step, seeing the open question, the steps accepted so far
//!    and the critic's feedback so far (`reason`);
//! 3. the critic, who is told the answer, rates the step 1 (accept) or 0 with feedback
//!    (`critique`, a JSON object); a rejected step is proposed again, at most `max_rounds`
//!    times in all (Citrus: 2), after which the question is given up;
//! 4. after an accepted step the critic says whether the steps reach the answer (`coverage`);
//!    if so the loop ends, otherwise it goes on, for at most `max_steps` steps;
//! 5. the reasoner rewrites the accepted steps as one self-talking chain of thought (`chain`),
//!    and the record's target is `<think>{chain}</think><answer>{letter}. {option}</answer>`.
//!
//! Questions are worked on together, one round at a time, so each round is one batch of
//! requests per role. Every request is seeded from `seed`, the question and its place in the
//! loop, and its response is kept in the store ([`super::backend::Role`]): a resumed run
//! sends nothing that was answered before. The prompts are templates ([`super::templates`])
//! in the question's language.

use super::backend::{request_seed, ChatRequest, Message, Role, RoleConfig};
use super::io::{self, load_items};
use super::templates::{self, Overrides};
use super::{language_of, Language};
use crate::eval::items::{letter, Item, Layout};
use crate::eval::mcq::{prompt, AnswerFormat};
use anyhow::Result;
use datafusion::arrow::datatypes::DataType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports, WorkerKind};

/// `generate.reasoning`'s config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasoningConfig {
    /// The reasoning expert: proposes steps, rewrites questions and chains.
    #[serde(default = "default_reasoner")]
    pub reasoner: RoleConfig,
    /// The critic, who knows the answer: rates steps and checks coverage.
    #[serde(default = "default_critic")]
    pub critic: RoleConfig,
    /// Most accepted steps per question.
    #[serde(default = "default_max_steps")]
    pub max_steps: usize,
    /// Proposals per step before the question is given up (Citrus: 2).
    #[serde(default = "default_max_rounds")]
    pub max_rounds: usize,
    /// Rewrite each question as an open question first.
    #[serde(default = "yes")]
    pub rewrite: bool,
    /// The questions' record layout.
    #[serde(default)]
    pub layout: Layout,
    /// The exam name of records without `exam_name`.
    #[serde(default = "default_exam")]
    pub exam: String,
    /// At most this many questions (the first ones).
    #[serde(default)]
    pub limit: Option<usize>,
    /// The prompts' language: each question's own, or one for all.
    #[serde(default)]
    pub language: Language,
    /// Templates replacing the defaults, by language (`en`, `zh`) and name (`rewrite`,
    /// `reason`, `critique`, `coverage`, `chain`).
    #[serde(default)]
    pub prompts: Overrides,
    /// Seed of every request.
    #[serde(default)]
    pub seed: u64,
}

fn default_reasoner() -> RoleConfig {
    RoleConfig {
        temperature: 0.7,
        max_tokens: 256,
        ..RoleConfig::default()
    }
}
fn default_critic() -> RoleConfig {
    RoleConfig {
        temperature: 0.0,
        max_tokens: 256,
        ..RoleConfig::default()
    }
}
fn default_max_steps() -> usize {
    8
}
fn default_max_rounds() -> usize {
    2
}
fn yes() -> bool {
    true
}
fn default_exam() -> String {
    "questions".into()
}

/// How one question's loop ended.
#[derive(Debug, Clone, PartialEq)]
enum End {
    /// The critic found the steps reach the answer.
    Covered,
    /// Given up, with the reason.
    Failed(String),
}

/// One question's progress.
#[derive(Debug, Clone)]
struct State {
    item: Item,
    lang: &'static str,
    open: String,
    steps: Vec<String>,
    feedback: Vec<String>,
    proposals: usize,
    end: Option<End>,
}

impl State {
    fn answer(&self) -> String {
        format!(
            "{}. {}",
            letter(self.item.answer),
            self.item.options[self.item.answer].trim()
        )
    }

    fn options(&self) -> String {
        self.item
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| format!("{}. {}", letter(i), o.trim()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn numbered(&self) -> String {
        if self.steps.is_empty() {
            return none(self.lang).into();
        }
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{}. {s}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn feedback_list(&self) -> String {
        if self.feedback.is_empty() {
            return none(self.lang).into();
        }
        self.feedback
            .iter()
            .map(|f| format!("- {f}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The question as asked, options included.
    fn asked(&self) -> String {
        format!("{}\n\n{}", self.item.question.trim(), self.options())
    }

    fn fill(&self, c: &ReasoningConfig, name: &str, step: &str) -> String {
        let t = templates::get(&c.prompts, self.lang, name);
        let (asked, opts, answer, steps, fb) = (
            self.asked(),
            self.options(),
            self.answer(),
            self.numbered(),
            self.feedback_list(),
        );
        templates::fill(
            &t,
            &[
                ("question", &asked),
                ("open_question", &self.open),
                ("options", &opts),
                ("answer", &answer),
                ("steps", &steps),
                ("feedback", &fb),
                ("step", step),
                ("language", self.lang),
            ],
        )
    }

    fn seed(&self, c: &ReasoningConfig, parts: &[&str]) -> u64 {
        let mut all = vec![self.item.exam.as_str(), self.item.id.as_str()];
        all.extend_from_slice(parts);
        request_seed(c.seed, &all)
    }
}

fn none(lang: &str) -> &'static str {
    if lang == "zh" {
        "（暂无）"
    } else {
        "(none yet)"
    }
}

/// A proposed step, without numbering or a "Step 3:" label.
pub fn clean_step(s: &str) -> String {
    let t = s.trim();
    let label = ["next step", "step"].iter().find_map(|p| {
        if !t.get(..p.len())?.eq_ignore_ascii_case(p) {
            return None;
        }
        let rest = &t[p.len()..];
        rest.starts_with(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == ':')
            .then_some(rest)
    });
    let t = label.unwrap_or(t);
    let t = t.trim_start_matches(|c: char| c.is_ascii_digit() || c.is_whitespace());
    let t = t.trim_start_matches([':', '.', ')', '：', '、']).trim();
    t.to_string()
}

/// The critic's rating: accepted or not, and its feedback; `None` when it cannot be read.
pub fn parse_critique(text: &str) -> Option<(bool, String)> {
    let t = text.trim();
    if let (Some(a), Some(b)) = (t.find('{'), t.rfind('}')) {
        if a < b {
            if let Ok(v) = serde_json::from_str::<Value>(&t[a..=b]) {
                let score = match v.get("score") {
                    Some(Value::Number(n)) => n.as_f64(),
                    Some(Value::String(s)) => s.trim().parse().ok(),
                    Some(Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
                    _ => None,
                };
                if let Some(s) = score.filter(|s| *s == 0.0 || *s == 1.0) {
                    let fb = v
                        .get("feedback")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    return Some((s == 1.0, fb));
                }
            }
        }
    }
    // "Score: 1 — feedback" and the like.
    let lower = t.to_lowercase();
    if let Some(i) = lower.find("score") {
        let rest = &t[i + "score".len()..];
        let digits: String = rest
            .trim_start_matches(|c: char| !c.is_ascii_digit() && c != '\n')
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if digits == "0" || digits == "1" {
            let fb = rest
                .split_once(&digits[..])
                .map_or("", |x| x.1)
                .trim_start_matches(|c: char| !c.is_alphanumeric() && !is_cjk(c))
                .trim();
            return Some((digits == "1", fb.to_string()));
        }
    }
    None
}

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// The critic's coverage verdict: yes only when it clearly says so.
pub fn parse_coverage(text: &str) -> bool {
    let t = text.trim().trim_start_matches(['*', '"', '“', '\'']);
    let lower = t.to_lowercase();
    if lower.starts_with("yes") || t.starts_with('是') || t.starts_with("已经") {
        return true;
    }
    if let (Some(a), Some(b)) = (t.find('{'), t.rfind('}')) {
        if a < b {
            if let Ok(v) = serde_json::from_str::<Value>(&t[a..=b]) {
                return v.get("covered").and_then(Value::as_bool).unwrap_or(false);
            }
        }
    }
    false
}

/// Sends one request per state in `which` to `role`, filling template `name` (`{step}` from
/// `step_of`, by state index); `parts` place the request in the loop, for its seed.
#[allow(clippy::too_many_arguments)]
fn ask(
    role: &Role<'_>,
    c: &ReasoningConfig,
    rc: &RoleConfig,
    states: &[State],
    which: &[usize],
    name: &str,
    step_of: &dyn Fn(usize) -> String,
    parts: &[&str],
) -> Result<Vec<String>> {
    let requests: Vec<ChatRequest> = which
        .iter()
        .map(|&i| {
            let s = &states[i];
            let text = s.fill(c, name, &step_of(i));
            ChatRequest::new(rc, vec![Message::user(text)], 1, s.seed(c, parts))
        })
        .collect();
    Ok(role
        .complete(&requests)?
        .into_iter()
        .map(|mut r| r.remove(0))
        .collect())
}

/// The loop over every question (see the module's doc).
fn synthesise(
    c: &ReasoningConfig,
    reasoner: &Role<'_>,
    critic: &Role<'_>,
    states: &mut [State],
    progress: &dyn Fn(&str),
    unreadable: &mut usize,
) -> Result<BTreeMap<usize, String>> {
    let all: Vec<usize> = (0..states.len()).collect();
    if c.rewrite {
        let open = ask(
            reasoner,
            c,
            &c.reasoner,
            states,
            &all,
            "rewrite",
            &no_step,
            &["rewrite"],
        )?;
        for (s, o) in states.iter_mut().zip(open) {
            let o = o.trim();
            if !o.is_empty() {
                s.open = o.to_string();
            }
        }
    }
    for step in 0..c.max_steps {
        for round in 0..c.max_rounds {
            let active: Vec<usize> = (0..states.len())
                .filter(|&i| states[i].end.is_none() && states[i].steps.len() == step)
                .collect();
            if active.is_empty() {
                break;
            }
            progress(&format!(
                "step {}/{} round {}/{}: {} question(s)",
                step + 1,
                c.max_steps,
                round + 1,
                c.max_rounds,
                active.len()
            ));
            let (st, rd) = (step.to_string(), round.to_string());
            let proposed = ask(
                reasoner,
                c,
                &c.reasoner,
                states,
                &active,
                "reason",
                &no_step,
                &["reason", &st, &rd],
            )?;
            let proposed: Vec<String> = proposed.iter().map(|p| clean_step(p)).collect();
            for (&i, p) in active.iter().zip(&proposed) {
                states[i].proposals += 1;
                if p.is_empty() {
                    let fb = if states[i].lang == "zh" {
                        "提议是空的：请写出下一步。"
                    } else {
                        "The proposal was empty: write the next step."
                    };
                    states[i].feedback.push(fb.into());
                }
            }
            let reviewable: Vec<(usize, String)> = active
                .iter()
                .zip(&proposed)
                .filter(|(_, p)| !p.is_empty())
                .map(|(&i, p)| (i, p.clone()))
                .collect();
            let which: Vec<usize> = reviewable.iter().map(|r| r.0).collect();
            let by_state: BTreeMap<usize, String> = reviewable.iter().cloned().collect();
            let step_of = |i: usize| by_state.get(&i).cloned().unwrap_or_default();
            let rated = ask(
                critic,
                c,
                &c.critic,
                states,
                &which,
                "critique",
                &step_of,
                &["critique", &st, &rd],
            )?;
            for ((i, p), r) in reviewable.into_iter().zip(rated) {
                match parse_critique(&r) {
                    Some((true, _)) => states[i].steps.push(p),
                    Some((false, fb)) => {
                        if !fb.is_empty() {
                            states[i].feedback.push(fb);
                        }
                    }
                    None => *unreadable += 1,
                }
            }
        }
        // Questions that got no step accepted this time are given up.
        for s in states.iter_mut() {
            if s.end.is_none() && s.steps.len() == step {
                s.end = Some(End::Failed(format!(
                    "no step accepted in {} round(s)",
                    c.max_rounds
                )));
            }
        }
        let grown: Vec<usize> = (0..states.len())
            .filter(|&i| states[i].end.is_none() && states[i].steps.len() == step + 1)
            .collect();
        if grown.is_empty() {
            break;
        }
        let st = step.to_string();
        let covered = ask(
            critic,
            c,
            &c.critic,
            states,
            &grown,
            "coverage",
            &no_step,
            &["coverage", &st],
        )?;
        for (&i, v) in grown.iter().zip(covered) {
            if parse_coverage(&v) {
                states[i].end = Some(End::Covered);
            }
        }
    }
    for s in states.iter_mut() {
        if s.end.is_none() {
            s.end = Some(End::Failed(format!(
                "the steps did not reach the answer in {} step(s)",
                c.max_steps
            )));
        }
    }
    let done: Vec<usize> = (0..states.len())
        .filter(|&i| states[i].end == Some(End::Covered))
        .collect();
    let chains = ask(
        reasoner,
        c,
        &c.reasoner,
        states,
        &done,
        "chain",
        &no_step,
        &["chain"],
    )?;
    Ok(done.into_iter().zip(chains).collect())
}

fn no_step(_: usize) -> String {
    String::new()
}

/// The operator.
pub struct Reasoning;

impl Operator for Reasoning {
    type Config = ReasoningConfig;
    const NAME: &'static str = "generate.reasoning";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Dual-expert chains of thought (Citrus): a reasoner proposes steps, a critic who knows the answer rates them";
    const WORKER: WorkerKind = WorkerKind::Torch;

    fn ports(_c: Option<&ReasoningConfig>) -> Ports {
        Ports {
            inputs: vec![
                PortSpec::new("questions", PortType::Dataset, "multiple-choice questions with their answers (any layout eval.mcq reads)"),
                PortSpec::new("reasoner", PortType::Model, "the reasoner's model, for `reasoner: {kind: local}`").optional(),
                PortSpec::new("critic", PortType::Model, "the critic's model, for `critic: {kind: local}`").optional(),
            ],
            outputs: vec![
                PortSpec::new("records", PortType::Dataset, "stage-3 SFT records: Citrus `input`/`target` and TRL `messages`, with the steps")
                    .with_columns(&["id", "exam", "input", "target", "messages", "steps"]),
                PortSpec::new("rejected", PortType::Dataset, "questions given up, with the reason")
                    .with_columns(&["id", "exam", "reason"]),
                PortSpec::new("report", PortType::Report, "report.json and report.md: counts, acceptance, requests sent and reused"),
            ],
            other_inputs: None,
        }
    }

    fn check(c: &ReasoningConfig) -> Result<(), String> {
        c.reasoner.check("reasoner")?;
        c.critic.check("critic")?;
        if c.max_steps == 0 || c.max_rounds == 0 {
            return Err("max_steps and max_rounds must be at least 1".into());
        }
        if c.limit == Some(0) {
            return Err("limit: must be at least 1".into());
        }
        templates::check(&c.prompts)
    }

    fn run(c: &ReasoningConfig, ctx: &mut OpContext) -> Result<()> {
        // In `zest-torch`, where the `local` backend is installed.
        crate::train::run_in_torch(Self::NAME, c, ctx)
    }
}

/// Runs the operator (in `zest-torch`, which installs the `local` backend).
pub fn execute(c: &ReasoningConfig, ctx: &mut OpContext) -> Result<()> {
    let items = load_items(ctx, "questions", c.layout, &c.exam, c.limit)?;
    let mut states: Vec<State> = items
        .into_iter()
        .map(|item| State {
            lang: language_of(c.language, &item.question),
            open: item.question.trim().to_string(),
            item,
            steps: vec![],
            feedback: vec![],
            proposals: 0,
            end: None,
        })
        .collect();
    println!("{} question(s)", states.len());
    let (chains, unreadable, counts) = {
        let reasoner = Role::open("reasoner", &c.reasoner, ctx)?;
        let critic = Role::open("critic", &c.critic, ctx)?;
        let mut unreadable = 0;
        let progress = |note: &str| {
            println!("{note}");
            ctx.progress(note);
        };
        let chains = synthesise(
            c,
            &reasoner,
            &critic,
            &mut states,
            &progress,
            &mut unreadable,
        )?;
        let counts = json!({
            "reasoner": {"sent": reasoner.sent.load(Ordering::Relaxed), "reused": reasoner.cached.load(Ordering::Relaxed)},
            "critic": {"sent": critic.sent.load(Ordering::Relaxed), "reused": critic.cached.load(Ordering::Relaxed)},
        });
        (chains, unreadable, counts)
    };
    let mut records = vec![];
    let mut rejected = vec![];
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    for (i, s) in states.iter().enumerate() {
        match (&s.end, chains.get(&i)) {
            (Some(End::Covered), Some(chain)) => {
                let chain = chain.trim();
                let chain = if chain.is_empty() {
                    s.steps.join("\n")
                } else {
                    chain.to_string()
                };
                let input = prompt(&s.item, AnswerFormat::Think);
                let target = format!("<think>{chain}</think><answer>{}</answer>", s.answer());
                records.push(json!({
                    "id": s.item.id, "exam": s.item.exam, "subject": s.item.subject,
                    "language": s.lang, "question": s.item.question, "open_question": s.open,
                    "answer": letter(s.item.answer).to_string(),
                    "input": input, "target": target,
                    "messages": [{"role": "user", "content": input}, {"role": "assistant", "content": target}],
                    "steps": s.steps, "feedback": s.feedback, "proposals": s.proposals,
                }));
            }
            (end, _) => {
                let reason = match end {
                    Some(End::Failed(r)) => r.clone(),
                    _ => "no chain of thought".to_string(),
                };
                *failed.entry(reason.clone()).or_insert(0) += 1;
                rejected.push(json!({
                    "id": s.item.id, "exam": s.item.exam, "question": s.item.question,
                    "reason": reason, "steps": s.steps, "feedback": s.feedback,
                }));
            }
        }
    }
    use io::{column, messages, schema, text, texts};
    let rec_schema = schema(vec![
        text("id"),
        text("exam"),
        text("subject"),
        text("language"),
        text("question"),
        text("open_question"),
        text("answer"),
        text("input"),
        text("target"),
        messages("messages"),
        texts("steps"),
        texts("feedback"),
        column("proposals", DataType::Int64),
    ]);
    io::write_rows(ctx, "records", rec_schema, &records)?;
    let rej_schema = schema(vec![
        text("id"),
        text("exam"),
        text("question"),
        text("reason"),
        texts("steps"),
        texts("feedback"),
    ]);
    io::write_rows(ctx, "rejected", rej_schema, &rejected)?;
    let proposals: usize = states.iter().map(|s| s.proposals).sum();
    let accepted: usize = states.iter().map(|s| s.steps.len()).sum();
    let report = json!({
        "questions": states.len(),
        "records": records.len(),
        "failed": failed,
        "proposals": proposals,
        "accepted_steps": accepted,
        "acceptance_rate": accepted as f64 / proposals.max(1) as f64,
        "mean_steps": records.iter().map(|r| r["steps"].as_array().map_or(0, Vec::len)).sum::<usize>() as f64 / records.len().max(1) as f64,
        "unreadable_critiques": unreadable,
        "requests": counts,
    });
    let md = format!(
        "# generate.reasoning\n\n| questions | records | given up | proposals | accepted | unreadable critiques |\n|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} ({:.0}%) | {} |\n\nRequests: {}\n",
        states.len(),
        records.len(),
        rejected.len(),
        proposals,
        accepted,
        100.0 * accepted as f64 / proposals.max(1) as f64,
        unreadable,
        report["requests"]
    );
    println!("{md}");
    ctx.write_output("report", "report.json", serde_json::to_vec_pretty(&report)?)?;
    ctx.write_output("report", "report.md", md.into_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::backend::Generator;
    use std::sync::Mutex;

    #[test]
    fn steps_lose_their_labels() {
        assert_eq!(
            clean_step("Step 2: Check the potassium."),
            "Check the potassium."
        );
        assert_eq!(clean_step("  3. Rule out sepsis"), "Rule out sepsis");
        assert_eq!(clean_step("Next step: give fluids"), "give fluids");
        assert_eq!(clean_step("第二步：查血钾"), "第二步：查血钾");
        assert_eq!(
            clean_step("Stepwise, the fever points to infection."),
            "Stepwise, the fever points to infection."
        );
    }

    #[test]
    fn critiques_are_read_from_json_or_prose() {
        assert_eq!(
            parse_critique(r#"{"score": 1, "feedback": "Right."}"#),
            Some((true, "Right.".into()))
        );
        assert_eq!(
            parse_critique(
                "Sure:\n```json\n{\"score\": \"0\", \"feedback\": \"Dose is wrong\"}\n```"
            ),
            Some((false, "Dose is wrong".into()))
        );
        assert_eq!(
            parse_critique("Score: 0 - the step ignores the rash"),
            Some((false, "the step ignores the rash".into()))
        );
        assert_eq!(parse_critique("Looks fine to me"), None);
        assert_eq!(parse_critique(r#"{"score": 7}"#), None);
        assert!(parse_coverage("Yes."));
        assert!(parse_coverage("是"));
        assert!(parse_coverage(r#"{"covered": true}"#));
        assert!(!parse_coverage("No, the dose is missing"));
        assert!(!parse_coverage("The reasoning is incomplete"));
    }

    /// A scripted pair of experts: the reasoner proposes "fact N" steps (its first proposal of
    /// the second step is wrong), the critic rejects wrong ones and finds two steps enough.
    struct Script(Mutex<Vec<String>>);

    impl Generator for Script {
        fn identity(&self) -> Value {
            json!("script")
        }
        fn complete(
            &self,
            requests: &[ChatRequest],
            done: &mut dyn FnMut(usize, Vec<String>) -> Result<()>,
        ) -> Result<()> {
            for (i, r) in requests.iter().enumerate() {
                let p = &r.messages[0].content;
                self.0.lock().unwrap().push(p.clone());
                let out = if p.starts_with("Rewrite the following multiple-choice") {
                    "What treats condition X?".to_string()
                } else if p.starts_with("You are a physician") {
                    if p.contains("1. fact one") && !p.contains("wrong step") {
                        "Step 2: wrong step".into()
                    } else if p.contains("1. fact one") {
                        "Step 2: fact two".into()
                    } else {
                        "Step 1: fact one".into()
                    }
                } else if p.starts_with("You are a senior physician") {
                    if p.contains("Proposed next step:\nwrong step") {
                        r#"{"score": 0, "feedback": "wrong step is not supported"}"#.into()
                    } else {
                        r#"{"score": 1, "feedback": "ok"}"#.into()
                    }
                } else if p.starts_with("You know the correct answer") {
                    if p.contains("2. fact two") {
                        "yes"
                    } else {
                        "no"
                    }
                    .into()
                } else if p.starts_with("Rewrite the following reasoning steps") {
                    "First, fact one. So, fact two.".into()
                } else {
                    bail_out(p)
                };
                done(i, vec![out])?;
            }
            Ok(())
        }
    }

    fn bail_out(p: &str) -> String {
        panic!("unexpected prompt: {p}")
    }

    #[test]
    fn the_loop_accumulates_steps_and_feedback_until_covered() {
        let c: ReasoningConfig = serde_json::from_value(json!({})).unwrap();
        let item = Item {
            id: "q1".into(),
            exam: "t".into(),
            subject: None,
            question: "Which drug treats condition X?".into(),
            options: vec!["Alpha".into(), "Beta".into()],
            answer: 1,
        };
        let mut states = vec![State {
            lang: "en",
            open: item.question.clone(),
            item,
            steps: vec![],
            feedback: vec![],
            proposals: 0,
            end: None,
        }];
        let r =
            Role::with_generator("reasoner", Box::new(Script(Mutex::new(vec![]))), None).unwrap();
        let seen = std::sync::Arc::new(Script(Mutex::new(vec![])));
        struct Shared(std::sync::Arc<Script>);
        impl Generator for Shared {
            fn identity(&self) -> Value {
                self.0.identity()
            }
            fn complete(
                &self,
                requests: &[ChatRequest],
                done: &mut dyn FnMut(usize, Vec<String>) -> Result<()>,
            ) -> Result<()> {
                self.0.complete(requests, done)
            }
        }
        let critic = Role::with_generator("critic", Box::new(Shared(seen.clone())), None).unwrap();
        let mut unreadable = 0;
        let chains = synthesise(&c, &r, &critic, &mut states, &|_| {}, &mut unreadable).unwrap();
        let s = &states[0];
        assert_eq!(s.end, Some(End::Covered));
        assert_eq!(s.open, "What treats condition X?");
        assert_eq!(s.steps, vec!["fact one", "fact two"]);
        assert_eq!(s.feedback, vec!["wrong step is not supported"]);
        assert_eq!(s.proposals, 3);
        assert_eq!(chains[&0], "First, fact one. So, fact two.");
        assert_eq!(unreadable, 0);
        // The critic was told the answer; the reasoner never was.
        let critic_prompts = seen.0.lock().unwrap().clone();
        assert!(critic_prompts
            .iter()
            .all(|p| p.contains("Correct answer: B. Beta")));
        // A question whose steps are all rejected is given up after `max_rounds`.
        let mut c2 = c.clone();
        c2.max_rounds = 1;
        c2.rewrite = false;
        let mut again = vec![State {
            steps: vec!["fact one".into()],
            end: None,
            proposals: 0,
            feedback: vec![],
            ..states[0].clone()
        }];
        // From one accepted step, the first proposal ("wrong step") is rejected.
        synthesise(&c2, &r, &critic, &mut again, &|_| {}, &mut unreadable).unwrap();
        assert_eq!(
            again[0].end,
            Some(End::Failed("no step accepted in 1 round(s)".into()))
        );
    }
}
