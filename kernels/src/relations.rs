//! Relations between entity mentions that share a sentence, found with typed cue patterns:
//! `drug —treats→ disease` when "treat" or "治疗" lies between a drug and a disease, and so on.
//!
//! A [`Pattern`] names a head type, a relation, a tail type, cue words (and optionally a
//! regular expression), the order the two mentions may come in, where the cue must be (between
//! the mentions or anywhere in the sentence) and how far apart the mentions may be. The rules:
//!
//! - Text is cut into sentences at `.`, `?`, `!` (followed by a space and not closing an
//!   abbreviation such as "e.g.", "Dr." or an initial, nor followed by a lower-case letter), at
//!   `。`, `？`, `！`, `；` (and their half-width forms `;`, `?`, `!` next to Chinese), and at
//!   blank lines.
//! - Mentions of one type separated only by commas, `and`, `or`, `、`, `和`, `及`, `与`, `或`
//!   form a group ("metformin and insulin"); each member of a group gets the relation.
//! - A pair is blocked when another mention of the head or tail type lies between the two, so
//!   that "A treats B and C treats D" does not give "A treats D".
//! - English cues are word stems matched case-insensitively at the start of a word ("treat"
//!   matches "treated" and "treatment" but not "retreat"); cues with Han characters match
//!   anywhere.

use crate::entities::{is_han, Span};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Which mention comes first in the sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// The head comes before the tail.
    HeadFirst,
    /// The tail comes before the head.
    TailFirst,
    /// Either.
    #[default]
    Either,
}

/// Where a pattern's cue must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CueScope {
    /// Between the two mentions.
    #[default]
    Between,
    /// Anywhere in the sentence.
    Sentence,
}

fn default_window() -> usize {
    120
}

/// One relation pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pattern {
    /// The head's entity type.
    pub head: String,
    /// The relation name (`treats`, `has_symptom`, …).
    pub relation: String,
    /// The tail's entity type.
    pub tail: String,
    /// Cue words: English stems (matched at a word start, case-insensitively) or Chinese words.
    #[serde(default)]
    pub cues: Vec<String>,
    /// A regular expression that also counts as a cue (case-insensitive).
    #[serde(default)]
    pub regex: Option<String>,
    /// Which mention comes first.
    #[serde(default)]
    pub order: Order,
    /// Where the cue must be.
    #[serde(default)]
    pub scope: CueScope,
    /// The most characters between the two mentions.
    #[serde(default = "default_window")]
    pub window: usize,
}

/// A relation found in a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// The head's canonical term.
    pub head: String,
    /// The head's type.
    pub head_type: String,
    /// The relation name.
    pub relation: String,
    /// The tail's canonical term.
    pub tail: String,
    /// The tail's type.
    pub tail_type: String,
    /// The sentence the relation was read from.
    pub sentence: String,
}

/// A pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("relation pattern {index} ({head} —{relation}→ {tail}): {message}")]
pub struct PatternError {
    /// 1-based position of the pattern.
    pub index: usize,
    /// Its head type.
    pub head: String,
    /// Its relation.
    pub relation: String,
    /// Its tail type.
    pub tail: String,
    /// What is wrong.
    pub message: String,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn pattern(
    head: &str,
    relation: &str,
    tail: &str,
    cues: &[&str],
    regex: Option<&str>,
    scope: CueScope,
    window: usize,
) -> Pattern {
    Pattern {
        head: head.into(),
        relation: relation.into(),
        tail: tail.into(),
        cues: strings(cues),
        regex: regex.map(String::from),
        order: Order::Either,
        scope,
        window,
    }
}

/// The built-in patterns, in English and Chinese.
pub fn default_patterns() -> Vec<Pattern> {
    use CueScope::*;
    let treat = [
        "treat",
        "therap",
        "manag",
        "prescrib",
        "indicated",
        "cure",
        "治疗",
        "用于",
        "控制",
        "治愈",
        "主治",
    ];
    let adverse = [
        "cause",
        "caused",
        "induc",
        "side effect",
        "adverse",
        "result in",
        "resulted in",
        "lead to",
        "led to",
        "引起",
        "导致",
        "不良反应",
        "副作用",
        "诱发",
    ];
    vec![
        pattern(
            "drug",
            "treats",
            "disease",
            &treat,
            Some(r"\b(for|against)\b"),
            Between,
            120,
        ),
        pattern(
            "procedure",
            "treats",
            "disease",
            &treat,
            Some(r"\bfor\b"),
            Between,
            120,
        ),
        pattern(
            "disease",
            "has_symptom",
            "symptom",
            &[
                "present",
                "characteri",
                "manifest",
                "accompan",
                "complain",
                "symptom",
                "sign",
                "表现为",
                "表现",
                "症状",
                "伴有",
                "伴",
                "出现",
                "主诉",
            ],
            None,
            Between,
            120,
        ),
        pattern(
            "disease",
            "has_symptom",
            "symptom",
            &["symptom", "症状"],
            None,
            Sentence,
            120,
        ),
        pattern(
            "drug",
            "causes_adverse_effect",
            "symptom",
            &adverse,
            None,
            Between,
            120,
        ),
        pattern(
            "drug",
            "causes_adverse_effect",
            "disease",
            &adverse,
            None,
            Between,
            120,
        ),
        pattern(
            "lab_test",
            "diagnoses",
            "disease",
            &[
                "diagnos", "detect", "screen", "confirm", "诊断", "筛查", "确诊", "检出",
            ],
            None,
            Between,
            120,
        ),
        pattern(
            "disease",
            "located_in",
            "anatomy",
            &[
                "in the",
                "of the",
                "affect",
                "involv",
                "located",
                "位于",
                "累及",
                "发生于",
                "侵犯",
                "侵及",
            ],
            None,
            Between,
            60,
        ),
    ]
}

struct Compiled {
    p: Pattern,
    cues: Vec<(String, bool)>,
    regex: Option<Regex>,
}

/// Compiled patterns; cheap to share between threads.
pub struct Extractor {
    patterns: Vec<Compiled>,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

fn lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut l = c.to_lowercase();
            match (l.next(), l.next()) {
                (Some(one), None) => one,
                _ => c,
            }
        })
        .collect()
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !is_han(c)
}

impl Extractor {
    /// Compiles `patterns`; an error names the pattern with an empty field or a bad regex, or
    /// without any cue.
    pub fn new(patterns: Vec<Pattern>) -> Result<Self, PatternError> {
        let mut out = Vec::new();
        for (i, p) in patterns.into_iter().enumerate() {
            let err = |m: String| PatternError {
                index: i + 1,
                head: p.head.clone(),
                relation: p.relation.clone(),
                tail: p.tail.clone(),
                message: m,
            };
            for (name, v) in [
                ("head", &p.head),
                ("relation", &p.relation),
                ("tail", &p.tail),
            ] {
                if v.trim().is_empty() {
                    return Err(err(format!("`{name}` is empty")));
                }
            }
            let regex = p
                .regex
                .as_deref()
                .map(|r| Regex::new(&format!("(?i){r}")))
                .transpose()
                .map_err(|e| err(format!("bad `regex`: {e}")))?;
            let cues: Vec<(String, bool)> = p
                .cues
                .iter()
                .map(|c| lower(c.trim()))
                .filter(|c| !c.is_empty())
                .map(|c| {
                    let word = c.chars().next().is_some_and(is_word_char);
                    (c, word)
                })
                .collect();
            if cues.is_empty() && regex.is_none() {
                return Err(err("it has neither `cues` nor `regex`".into()));
            }
            out.push(Compiled { p, cues, regex });
        }
        Ok(Extractor { patterns: out })
    }

    /// The relations among `spans` (mentions in `text`, in text order, not overlapping), one
    /// per head, relation, tail and sentence.
    pub fn extract(&self, text: &str, spans: &[Span]) -> Vec<Relation> {
        let mut out: Vec<Relation> = Vec::new();
        if spans.len() < 2 {
            return out;
        }
        let chars: Vec<char> = text.chars().collect();
        let slice = |a: usize, b: usize| -> String { chars[a..b].iter().collect() };
        for (ss, se) in sentences(text) {
            let inside: Vec<&Span> = spans
                .iter()
                .filter(|s| s.start as usize >= ss && s.end as usize <= se)
                .collect();
            if inside.len() < 2 {
                continue;
            }
            let groups = group(&chars, &inside);
            let sentence = slice(ss, se).trim().to_string();
            let sentence_lower = lower(&sentence);
            for (gi, a) in groups.iter().enumerate() {
                for b in &groups[gi + 1..] {
                    let (ta, tb) = (&inside[a[0]].entity_type, &inside[b[0]].entity_type);
                    let gap_start = inside[*a.last().expect("groups are not empty")].end as usize;
                    let gap_end = inside[b[0]].start as usize;
                    let gap = gap_end.saturating_sub(gap_start);
                    let mut gap_lower: Option<String> = None;
                    for c in &self.patterns {
                        let head_first = *ta == c.p.head && *tb == c.p.tail;
                        let tail_first = *ta == c.p.tail && *tb == c.p.head;
                        let fits = match c.p.order {
                            Order::HeadFirst => head_first,
                            Order::TailFirst => tail_first,
                            Order::Either => head_first || tail_first,
                        };
                        if !fits || gap > c.p.window {
                            continue;
                        }
                        let blocked = inside.iter().any(|s| {
                            s.start as usize >= gap_start
                                && (s.end as usize) <= gap_end
                                && (s.entity_type == c.p.head || s.entity_type == c.p.tail)
                        });
                        if blocked {
                            continue;
                        }
                        let cued = match c.p.scope {
                            CueScope::Between => {
                                let g = gap_lower
                                    .get_or_insert_with(|| lower(&slice(gap_start, gap_end)));
                                has_cue(c, g)
                            }
                            CueScope::Sentence => has_cue(c, &sentence_lower),
                        };
                        if !cued {
                            continue;
                        }
                        let (heads, tails) = if head_first { (a, b) } else { (b, a) };
                        for &h in heads {
                            for &t in tails {
                                let r = Relation {
                                    head: inside[h].term.clone(),
                                    head_type: inside[h].entity_type.clone(),
                                    relation: c.p.relation.clone(),
                                    tail: inside[t].term.clone(),
                                    tail_type: inside[t].entity_type.clone(),
                                    sentence: sentence.clone(),
                                };
                                if !out.contains(&r) {
                                    out.push(r);
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

fn has_cue(c: &Compiled, region_lower: &str) -> bool {
    let stem = c.cues.iter().any(|(cue, word)| {
        region_lower.match_indices(cue.as_str()).any(|(i, _)| {
            !*word
                || region_lower[..i]
                    .chars()
                    .next_back()
                    .is_none_or(|p| !is_word_char(p))
        })
    });
    stem || c.regex.as_ref().is_some_and(|r| r.is_match(region_lower))
}

/// Groups consecutive mentions of one type separated only by list connectors; returns indexes
/// into `spans`.
fn group(chars: &[char], spans: &[&Span]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        if let Some(g) = groups.last_mut() {
            let prev = spans[*g.last().expect("groups are not empty")];
            if prev.entity_type == s.entity_type {
                let between: String = chars[prev.end as usize..s.start as usize].iter().collect();
                if is_connector(&between) {
                    g.push(i);
                    continue;
                }
            }
        }
        groups.push(vec![i]);
    }
    groups
}

fn is_connector(s: &str) -> bool {
    let mut rest = lower(s);
    for w in [
        "as well as",
        "and/or",
        "and",
        "or",
        "以及",
        "和",
        "及",
        "与",
        "或",
        "跟",
    ] {
        rest = rest.replace(w, " ");
    }
    rest.chars()
        .all(|c| c.is_whitespace() || matches!(c, ',' | '，' | '、' | '/'))
}

const ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "etc", "vs", "dr", "mr", "mrs", "ms", "prof", "fig", "figs", "al", "approx",
    "no", "st", "jr", "sr", "cf", "ca", "resp", "incl", "eq", "ref", "vol", "pp", "mg", "ml",
    "min", "max", "mo", "yr", "yrs", "wk", "wks", "hr", "hrs", "sec", "inc", "ltd", "co",
];

/// Sentences of `text` as character ranges `[start, end)`, leading whitespace skipped and the
/// closing punctuation included.
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut i = 0usize;
    let push = |a: usize, b: usize, out: &mut Vec<(usize, usize)>| {
        let mut a = a;
        while a < b && chars[a].is_whitespace() {
            a += 1;
        }
        if a < b {
            out.push((a, b));
        }
    };
    while i < n {
        let c = chars[i];
        let mut end = None;
        match c {
            '。' | '？' | '！' | '；' => end = Some(i + 1),
            ';' | '?' | '!' if i > 0 && is_han(chars[i - 1]) => end = Some(i + 1),
            '\n' if chars[i + 1..]
                .iter()
                .take_while(|c| **c != '\n')
                .all(|c| c.is_whitespace())
                && i + 1 < n =>
            {
                end = Some(i + 1)
            }
            '.' | '?' | '!' => {
                // Closing quotes and brackets stay with the sentence.
                let mut j = i + 1;
                while j < n && matches!(chars[j], '"' | '\'' | ')' | ']' | '”' | '’') {
                    j += 1;
                }
                let followed = j == n || chars[j].is_whitespace();
                let next = chars[j..].iter().find(|c| !c.is_whitespace());
                let lower_next = next.is_some_and(|c| c.is_lowercase());
                if followed && !lower_next && !(c == '.' && abbreviation_before(&chars, i)) {
                    end = Some(j);
                }
            }
            _ => {}
        }
        if let Some(e) = end {
            push(start, e, &mut out);
            start = e;
            i = e;
        } else {
            i += 1;
        }
    }
    push(start, n, &mut out);
    out
}

/// Whether the `.` at `dot` closes an abbreviation or an initial.
fn abbreviation_before(chars: &[char], dot: usize) -> bool {
    let mut a = dot;
    while a > 0 && (chars[a - 1].is_alphanumeric() || chars[a - 1] == '.') {
        a -= 1;
    }
    let word: String = chars[a..dot].iter().collect();
    let word = lower(&word);
    if word.is_empty() {
        return false;
    }
    // An initial: one capital letter ("J. Smith").
    if word.chars().count() == 1 && chars[dot - 1].is_uppercase() {
        return true;
    }
    ABBREVIATIONS.contains(&word.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::{Lexicon, Recognizer};

    fn setup() -> (Recognizer, Extractor) {
        let lex =
            Lexicon::from_tsv(include_str!("../../operators/data/lexicon/medical.tsv")).unwrap();
        (
            Recognizer::new(&lex, None).unwrap(),
            Extractor::new(default_patterns()).unwrap(),
        )
    }

    fn triples(r: &Recognizer, x: &Extractor, text: &str, lang: &str) -> Vec<String> {
        let spans = r.find(text, lang);
        x.extract(text, &spans)
            .into_iter()
            .map(|r| format!("{} -{}-> {}", r.head, r.relation, r.tail))
            .collect()
    }

    #[test]
    fn english_relations() {
        let (r, x) = setup();
        assert_eq!(
            triples(
                &r,
                &x,
                "Metformin and insulin are used to treat type 2 diabetes.",
                "en"
            ),
            [
                "metformin -treats-> type 2 diabetes",
                "insulin -treats-> type 2 diabetes"
            ]
        );
        assert_eq!(
            triples(&r, &x, "Myocardial infarction often presents with chest pain. Nausea is a common side effect of metformin.", "en"),
            [
                "myocardial infarction -has_symptom-> chest pain",
                "metformin -causes_adverse_effect-> nausea"
            ]
        );
        assert_eq!(
            triples(&r, &x, "HbA1c is used to diagnose diabetes, e.g. in screening. Appendectomy is the treatment of appendicitis.", "en"),
            [
                "HbA1c -diagnoses-> diabetes mellitus",
                "appendectomy -treats-> appendicitis"
            ]
        );
        // Blocked by a closer mention of the same type.
        assert_eq!(
            triples(
                &r,
                &x,
                "Metformin treats diabetes and lisinopril treats hypertension.",
                "en"
            ),
            [
                "metformin -treats-> diabetes mellitus",
                "lisinopril -treats-> hypertension"
            ]
        );
        // No cue, no relation; different sentences, no relation.
        assert!(triples(&r, &x, "Metformin. Diabetes.", "en").is_empty());
        assert!(triples(&r, &x, "Metformin was stopped in diabetes.", "en").is_empty());
    }

    #[test]
    fn chinese_relations() {
        let (r, x) = setup();
        assert_eq!(
            triples(&r, &x, "二甲双胍用于治疗2型糖尿病。", "zh"),
            ["二甲双胍 -treats-> 2型糖尿病"]
        );
        assert_eq!(
            triples(
                &r,
                &x,
                "心肌梗死表现为胸痛、呼吸困难；阿司匹林可引起恶心。",
                "zh"
            ),
            [
                "心肌梗死 -has_symptom-> 胸痛",
                "心肌梗死 -has_symptom-> 呼吸困难",
                "阿司匹林 -causes_adverse_effect-> 恶心"
            ]
        );
        assert_eq!(
            triples(
                &r,
                &x,
                "胸痛是心肌梗死的常见症状。糖化血红蛋白可用于诊断糖尿病。",
                "zh"
            ),
            [
                "心肌梗死 -has_symptom-> 胸痛",
                "糖化血红蛋白 -diagnoses-> 糖尿病"
            ]
        );
    }

    #[test]
    fn sentences_respect_abbreviations() {
        let t =
            "Dr. Smith saw the patient, e.g. on day 2.5 of care. J. Doe agreed! Next? 好。再见；完";
        let s: Vec<String> = sentences(t)
            .into_iter()
            .map(|(a, b)| t.chars().skip(a).take(b - a).collect())
            .collect();
        assert_eq!(
            s,
            [
                "Dr. Smith saw the patient, e.g. on day 2.5 of care.",
                "J. Doe agreed!",
                "Next?",
                "好。",
                "再见；",
                "完"
            ]
        );
    }

    #[test]
    fn user_patterns_and_their_errors() {
        let (r, _) = setup();
        let x = Extractor::new(vec![Pattern {
            head: "drug".into(),
            relation: "prevents".into(),
            tail: "disease".into(),
            cues: vec!["prevent".into(), "预防".into()],
            regex: None,
            order: Order::HeadFirst,
            scope: CueScope::Between,
            window: 50,
        }])
        .unwrap();
        assert_eq!(
            triples(
                &r,
                &x,
                "Aspirin prevents stroke. Stroke is prevented by aspirin.",
                "en"
            ),
            ["aspirin -prevents-> stroke"]
        );
        let e = Extractor::new(vec![Pattern {
            head: "drug".into(),
            relation: "x".into(),
            tail: "disease".into(),
            cues: vec![],
            regex: Some("(".into()),
            order: Order::Either,
            scope: CueScope::Sentence,
            window: 10,
        }])
        .unwrap_err();
        assert!(
            e.to_string().contains("pattern 1") && e.to_string().contains("regex"),
            "{e}"
        );
    }
}
