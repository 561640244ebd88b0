//! Rule-based "textbook" augmentation of annotated medical documents: no model, only the
//! document's entity mentions and relation triples, templates, and a seeded generator, so the
//! same document, annotations and seed always give the same samples.
//!
//! Three kinds of sample are generated from one document:
//!
//! - **cloze**: a sentence with one entity mention replaced by `____`; the answer is the
//!   mention. Up to [`AugmentConfig::distractors`] options of the same entity type are added,
//!   taken first from the document's other mentions and then from a corpus-wide [`TermPool`].
//! - **qa**: a question and answer per relation triple, from a template for the relation
//!   (`treats`, `has_symptom`, `causes_adverse_effect`, `diagnoses`, `located_in`), asked in
//!   both directions (head → tail and tail → head), with the sentence the triple came from as
//!   the explanation. Relations without a template are skipped.
//! - **rewrite**: paragraph-level rewrites: every paragraph of two or more sentences as a
//!   "Key points:" bullet list of its sentences (titled with the paragraph's most frequent
//!   entity when it has one), and every defining sentence — one where an entity mention is
//!   followed by "is", "are", "refers to", "is defined as" (English) or "是", "是指", "指"
//!   (Chinese) — as "Question: What is {mention}? Answer: {sentence}".
//!
//! Templates exist in English and Chinese; other languages get the English templates. All
//! offsets are in characters (Unicode scalar values), as the annotations are.

use crate::rng::Rng;
use std::collections::{BTreeMap, BTreeSet};

/// An entity mention, with character offsets `[start, end)` into its document.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// First character of the mention.
    pub start: usize,
    /// One past the last character of the mention.
    pub end: usize,
    /// The mention as written.
    pub text: String,
    /// The entity type (`disease`, `drug`, …).
    pub ty: String,
    /// The canonical term.
    pub term: String,
}

/// A relation triple between canonical terms, with the sentence it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// The head term.
    pub head: String,
    /// The head's entity type.
    pub head_type: String,
    /// The relation name (`treats`, `has_symptom`, …).
    pub relation: String,
    /// The tail term.
    pub tail: String,
    /// The tail's entity type.
    pub tail_type: String,
    /// The sentence the triple was read from (may be empty).
    pub sentence: String,
}

/// What kind of sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A sentence with an entity blanked.
    Cloze,
    /// A question–answer pair from a relation.
    Qa,
    /// A paragraph rewritten by template.
    Rewrite,
}

impl Kind {
    /// The name written in datasets: `cloze`, `qa` or `rewrite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cloze => "cloze",
            Kind::Qa => "qa",
            Kind::Rewrite => "rewrite",
        }
    }
}

/// The language of the templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English templates.
    En,
    /// Chinese templates.
    Zh,
}

impl Lang {
    /// Chinese for codes starting with `zh` (`zh`, `zh-Hans`, `zh_CN`, …), else English.
    pub fn from_code(code: &str) -> Lang {
        if code.trim().to_ascii_lowercase().starts_with("zh") {
            Lang::Zh
        } else {
            Lang::En
        }
    }
}

/// One generated sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its kind.
    pub kind: Kind,
    /// The training text.
    pub text: String,
    /// The question (cloze: the blanked sentence with its options), if any.
    pub question: Option<String>,
    /// The answer, if any.
    pub answer: Option<String>,
    /// First character of the source passage in the document.
    pub passage_start: usize,
    /// One past the last character of the source passage.
    pub passage_end: usize,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct AugmentConfig {
    /// Kinds to generate.
    pub kinds: Vec<Kind>,
    /// At most this many samples per document, drawn at random (in document order) when more
    /// are possible.
    pub max_per_doc: usize,
    /// The seed; each document's generator is seeded by it and the document's key.
    pub seed: u64,
    /// Options besides the answer offered in a cloze item, at most.
    pub distractors: usize,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            kinds: vec![Kind::Cloze, Kind::Qa, Kind::Rewrite],
            max_per_doc: 16,
            seed: 1,
            distractors: 3,
        }
    }
}

/// Distinct mentions per entity type across a corpus, in first-seen order, as cloze
/// distractors.
#[derive(Debug, Clone, Default)]
pub struct TermPool {
    by_type: BTreeMap<String, (Vec<String>, BTreeSet<String>)>,
    cap: usize,
}

impl TermPool {
    /// A pool keeping at most `cap` mentions per type.
    pub fn new(cap: usize) -> Self {
        TermPool {
            by_type: BTreeMap::new(),
            cap,
        }
    }

    /// Adds a mention of type `ty` (ignored when the type is full or the mention, lower-cased,
    /// is already there).
    pub fn add(&mut self, ty: &str, mention: &str) {
        let mention = mention.trim();
        if mention.is_empty() {
            return;
        }
        let (list, seen) = self.by_type.entry(ty.to_string()).or_default();
        if list.len() < self.cap && seen.insert(mention.to_lowercase()) {
            list.push(mention.to_string());
        }
    }

    /// The mentions of type `ty`.
    pub fn get(&self, ty: &str) -> &[String] {
        self.by_type.get(ty).map_or(&[], |(l, _)| l.as_slice())
    }
}

/// The sentences of `text`, as character ranges `[start, end)` with surrounding whitespace
/// trimmed. A sentence ends after `.`, `!` or `?` followed by whitespace or the end, after
/// `。`, `！`, `？` or `；`, and at every line break.
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    let push = |out: &mut Vec<(usize, usize)>, s: usize, e: usize| {
        let mut s = s;
        let mut e = e;
        while s < e && chars[s].is_whitespace() {
            s += 1;
        }
        while e > s && chars[e - 1].is_whitespace() {
            e -= 1;
        }
        if chars[s..e].iter().any(|c| c.is_alphanumeric()) {
            out.push((s, e));
        }
    };
    for i in 0..chars.len() {
        let c = chars[i];
        let end = match c {
            '.' | '!' | '?' => chars.get(i + 1).is_none_or(|n| n.is_whitespace()),
            '。' | '！' | '？' | '；' | '\n' => true,
            _ => false,
        };
        if end {
            push(&mut out, start, i + 1);
            start = i + 1;
        }
    }
    if start < chars.len() {
        push(&mut out, start, chars.len());
    }
    out
}

/// The paragraphs of `text` (separated by blank lines), as trimmed character ranges.
pub fn paragraphs(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut push = |s: usize, e: usize| {
        let (mut s, mut e) = (s, e);
        while s < e && chars[s].is_whitespace() {
            s += 1;
        }
        while e > s && chars[e - 1].is_whitespace() {
            e -= 1;
        }
        if s < e {
            out.push((s, e));
        }
    };
    while i < chars.len() {
        if chars[i] == '\n' {
            // A line holding only whitespace ends the paragraph.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '\n' && chars[j].is_whitespace() {
                j += 1;
            }
            if j < chars.len() && chars[j] == '\n' {
                push(start, i);
                start = j + 1;
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    push(start, chars.len());
    out
}

/// Whether `s` has a Han, kana or Hangul character: distractors are taken only from
/// mentions written in the answer's script.
fn has_cjk(s: &str) -> bool {
    s.chars().any(|c| {
        matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x3040..=0x30FF | 0xAC00..=0xD7AF)
    })
}

fn key_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// The question templates of a relation: (head → tail, tail → head), in English and Chinese.
/// `{head}` and `{tail}` are replaced by the terms.
pub fn qa_templates(relation: &str, lang: Lang) -> Option<(&'static str, &'static str)> {
    Some(match (relation, lang) {
        ("treats", Lang::En) => (
            "Which condition is {head} used to treat?",
            "Which treatment can be used for {tail}?",
        ),
        ("treats", Lang::Zh) => (
            "{head}可用于治疗哪种疾病？",
            "哪种药物或疗法可用于治疗{tail}？",
        ),
        ("has_symptom", Lang::En) => (
            "What is a symptom of {head}?",
            "Which condition can present with {tail}?",
        ),
        ("has_symptom", Lang::Zh) => ("{head}有什么症状？", "哪种疾病可表现为{tail}？"),
        ("causes_adverse_effect", Lang::En) => (
            "What adverse effect can {head} cause?",
            "Which drug can cause {tail} as an adverse effect?",
        ),
        ("causes_adverse_effect", Lang::Zh) => (
            "{head}可能引起什么不良反应？",
            "哪种药物可能引起{tail}这一不良反应？",
        ),
        ("diagnoses", Lang::En) => (
            "Which condition can {head} help diagnose?",
            "Which test can help diagnose {tail}?",
        ),
        ("diagnoses", Lang::Zh) => ("{head}可用于诊断哪种疾病？", "哪项检查可用于诊断{tail}？"),
        ("located_in", Lang::En) => (
            "Where in the body is {head} found?",
            "Which condition can be found in the {tail}?",
        ),
        ("located_in", Lang::Zh) => ("{head}位于哪个部位？", "哪种病变可见于{tail}？"),
        _ => return None,
    })
}

fn fill(t: &str, head: &str, tail: &str) -> String {
    t.replace("{head}", head).replace("{tail}", tail)
}

fn qa_text(q: &str, a: &str, why: &str, lang: Lang) -> String {
    let (ql, al, wl) = match lang {
        Lang::En => ("Question: ", "Answer: ", "Explanation: "),
        Lang::Zh => ("问题：", "答案：", "解析："),
    };
    if why.is_empty() {
        format!("{ql}{q}\n{al}{a}")
    } else {
        format!("{ql}{q}\n{al}{a}\n{wl}{why}")
    }
}

/// Where `needle` occurs in `chars`, as a character range, searching from the start.
fn find_chars(chars: &[char], needle: &str) -> Option<(usize, usize)> {
    let n: Vec<char> = needle.chars().collect();
    if n.is_empty() || n.len() > chars.len() {
        return None;
    }
    (0..=chars.len() - n.len())
        .find(|&i| chars[i..i + n.len()] == n[..])
        .map(|i| (i, i + n.len()))
}

/// Generates the samples of one document. `key` identifies the document (its id) and, with
/// the seed, determines every random choice; `pool` supplies corpus-wide distractors.
/// Entities whose offsets fall outside the text are ignored; the mention is read from the
/// text at the offsets.
pub fn generate(
    key: &str,
    text: &str,
    entities: &[Entity],
    relations: &[Relation],
    lang: Lang,
    pool: &TermPool,
    config: &AugmentConfig,
) -> Vec<Sample> {
    let mut rng = Rng::new(config.seed ^ key_hash(key).rotate_left(17));
    let chars: Vec<char> = text.chars().collect();
    let slice = |s: usize, e: usize| chars[s..e].iter().collect::<String>();
    let mut ents: Vec<Entity> = entities
        .iter()
        .filter(|e| e.start < e.end && e.end <= chars.len())
        .map(|e| Entity {
            text: slice(e.start, e.end),
            ..e.clone()
        })
        .collect();
    ents.sort_by_key(|e| (e.start, e.end));
    let sents = sentences(text);
    let mut out: Vec<Sample> = Vec::new();
    for kind in [Kind::Cloze, Kind::Qa, Kind::Rewrite] {
        if !config.kinds.contains(&kind) {
            continue;
        }
        match kind {
            Kind::Cloze => {
                for &(s, e) in &sents {
                    let inside: Vec<&Entity> =
                        ents.iter().filter(|x| x.start >= s && x.end <= e).collect();
                    if inside.is_empty() {
                        continue;
                    }
                    let target = inside[(rng.next_u64() % inside.len() as u64) as usize];
                    let answer = target.text.clone();
                    let blanked = format!("{}____{}", slice(s, target.start), slice(target.end, e));
                    // Distractors: other mentions of the type in the document, then the corpus.
                    let mut seen: BTreeSet<String> = BTreeSet::new();
                    seen.insert(answer.to_lowercase());
                    seen.insert(target.term.to_lowercase());
                    let mut doc_c: Vec<String> = Vec::new();
                    for x in &ents {
                        if x.ty == target.ty
                            && x.term.to_lowercase() != target.term.to_lowercase()
                            && has_cjk(&x.text) == has_cjk(&answer)
                            && seen.insert(x.text.to_lowercase())
                        {
                            doc_c.push(x.text.clone());
                        }
                    }
                    shuffle(&mut doc_c, &mut rng);
                    let mut opts: Vec<String> =
                        doc_c.into_iter().take(config.distractors).collect();
                    if opts.len() < config.distractors {
                        let mut corp: Vec<&String> = pool
                            .get(&target.ty)
                            .iter()
                            .filter(|m| {
                                !seen.contains(&m.to_lowercase()) && has_cjk(m) == has_cjk(&answer)
                            })
                            .collect();
                        shuffle(&mut corp, &mut rng);
                        let need = config.distractors - opts.len();
                        opts.extend(corp.into_iter().take(need).cloned());
                    }
                    let (lead, optl, al, sep) = match lang {
                        Lang::En => ("Fill in the blank: ", "Options: ", "Answer: ", "; "),
                        Lang::Zh => ("填空：", "选项：", "答案：", "；"),
                    };
                    let mut question = format!("{lead}{blanked}");
                    if !opts.is_empty() {
                        opts.push(answer.clone());
                        shuffle(&mut opts, &mut rng);
                        let listed: Vec<String> = opts
                            .iter()
                            .enumerate()
                            .map(|(i, o)| format!("{}. {o}", (b'A' + i as u8) as char))
                            .collect();
                        question = format!("{question}\n{optl}{}", listed.join(sep));
                    }
                    out.push(Sample {
                        kind,
                        text: format!("{question}\n{al}{answer}"),
                        question: Some(question),
                        answer: Some(answer),
                        passage_start: s,
                        passage_end: e,
                    });
                }
            }
            Kind::Qa => {
                let mut asked: BTreeSet<String> = BTreeSet::new();
                for r in relations {
                    let Some((fwd, rev)) = qa_templates(&r.relation, lang) else {
                        continue;
                    };
                    if r.head.trim().is_empty() || r.tail.trim().is_empty() {
                        continue;
                    }
                    let span = find_chars(&chars, r.sentence.trim())
                        .or_else(|| {
                            let (h, t) = (r.head.to_lowercase(), r.tail.to_lowercase());
                            sents
                                .iter()
                                .find(|&&(s, e)| {
                                    let l = slice(s, e).to_lowercase();
                                    l.contains(&h) && l.contains(&t)
                                })
                                .copied()
                        })
                        .unwrap_or((0, chars.len()));
                    let why = r.sentence.trim();
                    for (tpl, ans) in [(fwd, &r.tail), (rev, &r.head)] {
                        let q = fill(tpl, &r.head, &r.tail);
                        if !asked.insert(format!("{q}\u{0}{ans}")) {
                            continue;
                        }
                        out.push(Sample {
                            kind,
                            text: qa_text(&q, ans, why, lang),
                            question: Some(q),
                            answer: Some(ans.clone()),
                            passage_start: span.0,
                            passage_end: span.1,
                        });
                    }
                }
            }
            Kind::Rewrite => {
                for (ps, pe) in paragraphs(text) {
                    let ps_sents: Vec<(usize, usize)> = sents
                        .iter()
                        .copied()
                        .filter(|&(s, e)| s >= ps && e <= pe)
                        .collect();
                    if ps_sents.len() < 2 {
                        continue;
                    }
                    // The paragraph's most frequent entity term (first seen wins ties).
                    let mut counts: Vec<(String, usize)> = Vec::new();
                    for x in ents.iter().filter(|x| x.start >= ps && x.end <= pe) {
                        match counts.iter_mut().find(|c| c.0 == x.term) {
                            Some(c) => c.1 += 1,
                            None => counts.push((x.term.clone(), 1)),
                        }
                    }
                    let top = counts
                        .iter()
                        .fold(None::<&(String, usize)>, |b, c| match b {
                            Some(b) if b.1 >= c.1 => Some(b),
                            _ => Some(c),
                        })
                        .map(|c| c.0.clone())
                        .filter(|t| !t.is_empty());
                    let title = match (lang, top) {
                        (Lang::En, Some(t)) => format!("Key points on {t}:"),
                        (Lang::En, None) => "Key points:".to_string(),
                        (Lang::Zh, Some(t)) => format!("{t}要点："),
                        (Lang::Zh, None) => "要点：".to_string(),
                    };
                    let bullets: Vec<String> = ps_sents
                        .iter()
                        .map(|&(s, e)| format!("- {}", slice(s, e)))
                        .collect();
                    out.push(Sample {
                        kind,
                        text: format!("{title}\n{}", bullets.join("\n")),
                        question: None,
                        answer: None,
                        passage_start: ps,
                        passage_end: pe,
                    });
                }
                let mut defined: BTreeSet<String> = BTreeSet::new();
                for &(s, e) in &sents {
                    for x in ents.iter().filter(|x| x.start >= s && x.end <= e) {
                        let before = slice(s, x.start);
                        let after = slice(x.end, e);
                        let opening = before.trim().is_empty()
                            || matches!(before.trim().to_lowercase().as_str(), "the" | "a" | "an");
                        let defining = match lang {
                            Lang::En => [" is ", " are ", " refers to ", " is defined as "]
                                .iter()
                                .any(|v| after.to_lowercase().starts_with(v)),
                            Lang::Zh => ["是", "指"].iter().any(|v| after.starts_with(v)),
                        };
                        if !opening || !defining || !defined.insert(x.term.to_lowercase()) {
                            continue;
                        }
                        let sentence = slice(s, e);
                        let q = match lang {
                            Lang::En => format!("What is {}?", x.text),
                            Lang::Zh => format!("什么是{}？", x.text),
                        };
                        out.push(Sample {
                            kind,
                            text: qa_text(&q, &sentence, "", lang),
                            question: Some(q),
                            answer: Some(sentence),
                            passage_start: s,
                            passage_end: e,
                        });
                    }
                }
            }
        }
    }
    if out.len() > config.max_per_doc {
        let mut idx: Vec<usize> = (0..out.len()).collect();
        shuffle(&mut idx, &mut rng);
        let mut keep: Vec<usize> = idx.into_iter().take(config.max_per_doc).collect();
        keep.sort_unstable();
        let mut all: Vec<Option<Sample>> = out.into_iter().map(Some).collect();
        out = keep.into_iter().filter_map(|i| all[i].take()).collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(text: &str, mention: &str, ty: &str, term: &str) -> Entity {
        let (s, e) = find_chars(&text.chars().collect::<Vec<_>>(), mention).unwrap();
        Entity {
            start: s,
            end: e,
            text: mention.into(),
            ty: ty.into(),
            term: term.into(),
        }
    }

    const DOC: &str = "Metformin is a first-line drug for type 2 diabetes. Metformin treats type 2 diabetes and may cause nausea.\n\nInsulin is used when glucose stays high. Patients report fatigue.";

    fn doc() -> (Vec<Entity>, Vec<Relation>) {
        let e = vec![
            ent(DOC, "Metformin", "drug", "metformin"),
            ent(DOC, "type 2 diabetes", "disease", "type 2 diabetes"),
            ent(DOC, "nausea", "symptom", "nausea"),
            ent(DOC, "Insulin", "drug", "insulin"),
            ent(DOC, "fatigue", "symptom", "fatigue"),
        ];
        let r = vec![Relation {
            head: "metformin".into(),
            head_type: "drug".into(),
            relation: "treats".into(),
            tail: "type 2 diabetes".into(),
            tail_type: "disease".into(),
            sentence: "Metformin treats type 2 diabetes and may cause nausea.".into(),
        }];
        (e, r)
    }

    #[test]
    fn sentences_and_paragraphs_by_character() {
        let t = "Dr. Li saw 3.5 mg. 患者发热。咳嗽！\n\nNext one";
        let s: Vec<String> = sentences(t)
            .iter()
            .map(|&(a, b)| t.chars().skip(a).take(b - a).collect())
            .collect();
        assert_eq!(
            s,
            vec!["Dr.", "Li saw 3.5 mg.", "患者发热。", "咳嗽！", "Next one"]
        );
        assert_eq!(paragraphs(t).len(), 2);
        assert_eq!(paragraphs("a\n \nb\nc"), vec![(0, 1), (4, 7)]);
    }

    #[test]
    fn generates_every_kind_with_right_offsets() {
        let (e, r) = doc();
        let mut pool = TermPool::new(10);
        pool.add("symptom", "headache");
        pool.add("symptom", "Nausea");
        let cfg = AugmentConfig {
            max_per_doc: 100,
            ..AugmentConfig::default()
        };
        let out = generate("d1", DOC, &e, &r, Lang::En, &pool, &cfg);
        let chars: Vec<char> = DOC.chars().collect();
        let cloze: Vec<&Sample> = out.iter().filter(|s| s.kind == Kind::Cloze).collect();
        assert_eq!(cloze.len(), 4, "{out:#?}");
        for c in &cloze {
            let passage: String = chars[c.passage_start..c.passage_end].iter().collect();
            let q = c.question.as_ref().unwrap();
            let first = q
                .lines()
                .next()
                .unwrap()
                .trim_start_matches("Fill in the blank: ");
            assert_eq!(first.replace("____", c.answer.as_ref().unwrap()), passage);
        }
        let qa: Vec<&Sample> = out.iter().filter(|s| s.kind == Kind::Qa).collect();
        assert_eq!(qa.len(), 2);
        assert_eq!(
            qa[0].question.as_deref(),
            Some("Which condition is metformin used to treat?")
        );
        assert_eq!(qa[0].answer.as_deref(), Some("type 2 diabetes"));
        assert_eq!(qa[1].answer.as_deref(), Some("metformin"));
        let p: String = chars[qa[0].passage_start..qa[0].passage_end]
            .iter()
            .collect();
        assert_eq!(p, "Metformin treats type 2 diabetes and may cause nausea.");
        let rw: Vec<&Sample> = out.iter().filter(|s| s.kind == Kind::Rewrite).collect();
        assert!(
            rw[0]
                .text
                .starts_with("Key points on metformin:\n- Metformin is"),
            "{}",
            rw[0].text
        );
        assert!(rw
            .iter()
            .any(|s| s.question.as_deref() == Some("What is Metformin?")
                && s.answer.as_deref()
                    == Some("Metformin is a first-line drug for type 2 diabetes.")));
        assert!(rw
            .iter()
            .any(|s| s.question.as_deref() == Some("What is Insulin?")));
        // Same seed, same samples; another seed, other choices somewhere.
        assert_eq!(out, generate("d1", DOC, &e, &r, Lang::En, &pool, &cfg));
        let differs = (2..20).any(|seed| {
            generate(
                "d1",
                DOC,
                &e,
                &r,
                Lang::En,
                &pool,
                &AugmentConfig {
                    seed,
                    ..cfg.clone()
                },
            ) != out
        });
        assert!(differs);
    }

    #[test]
    fn chinese_templates_and_the_cap() {
        let text = "二甲双胍是治疗糖尿病的一线药物。二甲双胍可用于糖尿病。";
        let e = vec![
            ent(text, "二甲双胍", "drug", "二甲双胍"),
            ent(text, "糖尿病", "disease", "糖尿病"),
        ];
        let r = vec![Relation {
            head: "二甲双胍".into(),
            head_type: "drug".into(),
            relation: "treats".into(),
            tail: "糖尿病".into(),
            tail_type: "disease".into(),
            sentence: "二甲双胍可用于糖尿病。".into(),
        }];
        let cfg = AugmentConfig {
            max_per_doc: 100,
            ..AugmentConfig::default()
        };
        let out = generate("z", text, &e, &r, Lang::Zh, &TermPool::new(4), &cfg);
        assert!(out.iter().any(
            |s| s.question.as_deref() == Some("二甲双胍可用于治疗哪种疾病？")
                && s.text
                    .starts_with("问题：二甲双胍可用于治疗哪种疾病？\n答案：糖尿病")
        ));
        assert!(out
            .iter()
            .any(|s| s.question.as_deref() == Some("什么是二甲双胍？")));
        assert!(out.iter().any(|s| s.text.starts_with("二甲双胍要点：\n- ")));
        let capped = generate(
            "z",
            text,
            &e,
            &r,
            Lang::Zh,
            &TermPool::new(4),
            &AugmentConfig {
                max_per_doc: 2,
                ..cfg
            },
        );
        assert_eq!(capped.len(), 2);
        assert!(capped.iter().all(|c| out.contains(c)));
    }
}
