//! Dictionary-based recognition of medical entities (diseases, symptoms, drugs, procedures,
//! anatomy, lab tests) in English and Chinese text.
//!
//! A [`Lexicon`] lists entries: a canonical term, a type, an optional code and synonyms. A
//! [`Recognizer`] compiles every surface form of a lexicon into one Aho-Corasick automaton and
//! finds mentions with these rules:
//!
//! - **Case.** Text and terms are case-folded, except short abbreviations written in capitals
//!   in the lexicon (up to five letters, no lower-case letter: `MI`, `CT`, `TB`), which match
//!   only in capitals so that `MI` never matches "mi" nor `ALL` "all".
//! - **Hyphens and spaces** inside a term are interchangeable (`beta-blocker` matches "beta
//!   blocker" and the reverse); a hyphen is a word boundary ("pre-diabetes" mentions "diabetes"
//!   unless the lexicon has a longer term).
//! - **Plurals.** Every English term of more than three letters also matches its regular plural
//!   (`-s`, `-es` after s/x/z/ch/sh, `-ies` after a consonant and `y`); irregular plurals
//!   belong in the synonyms.
//! - **English word boundaries.** A mention whose first (last) character is a Latin letter or a
//!   digit must not be preceded (followed) by one: "insulin" is not found in "insulinoma".
//!   Han characters count as boundaries for Latin mentions, so `CT` is found in "行CT检查".
//! - **Chinese word boundaries.** Chinese is segmented with jieba, whose dictionary is first
//!   extended with every Chinese lexicon term (at a frequency that keeps the term whole), so
//!   that jieba does not split a medical term into pieces. A mention's edge that is a Han
//!   character must then fall on a jieba word boundary: "肝" is not found inside "肝炎" unless
//!   "肝炎" is itself a term. Where a Han edge meets a non-Han character the edge is a boundary.
//! - **Leftmost-longest.** Among the candidate mentions that pass these checks, the leftmost
//!   wins and, at one start, the longest; mentions never overlap. Checking boundaries before
//!   choosing means a long candidate that fails a check does not hide a shorter valid one.
//! - **Language.** In a document whose language is `en` only terms without Han characters are
//!   looked for; in any other document (Chinese text often carries English abbreviations such
//!   as `CT`) every term is.
//!
//! Offsets are character offsets (Unicode scalar values), `[start, end)`.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use jieba_rs::{Jieba, TokenizeMode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

/// The entity types of the default lexicon. A lexicon may use others.
pub const ENTITY_TYPES: [&str; 6] = [
    "disease",
    "symptom",
    "drug",
    "procedure",
    "anatomy",
    "lab_test",
];

/// One lexicon entry: a concept, its canonical term and the other ways to write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LexiconEntry {
    /// The canonical term, reported for every mention of the entry.
    pub term: String,
    /// The entity type (`disease`, `symptom`, `drug`, `procedure`, `anatomy`, `lab_test`, …).
    #[serde(rename = "type")]
    pub entity_type: String,
    /// An optional code (e.g. an ICD-10 category).
    #[serde(default)]
    pub code: Option<String>,
    /// Other surface forms of the same concept.
    #[serde(default)]
    pub synonyms: Vec<String>,
}

/// A lexicon that cannot be used, with the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lexicon {place}: {message}")]
pub struct LexiconError {
    /// Where: `line 12`, `row 3`, `entry 5`.
    pub place: String,
    /// What is wrong.
    pub message: String,
}

/// A list of lexicon entries, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lexicon {
    entries: Vec<LexiconEntry>,
}

fn valid_type(t: &str) -> bool {
    !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Lexicon {
    /// A lexicon of `entries`. Terms and synonyms are trimmed and empty synonyms dropped; a
    /// term must not be empty, and a type is lower-case ASCII letters, digits and `_`.
    pub fn new(entries: Vec<LexiconEntry>) -> Result<Self, LexiconError> {
        let mut out = Vec::with_capacity(entries.len());
        for (i, mut e) in entries.into_iter().enumerate() {
            let place = || format!("entry {}", i + 1);
            e.term = e.term.trim().to_string();
            e.entity_type = e.entity_type.trim().to_string();
            if e.term.is_empty() {
                return Err(LexiconError {
                    place: place(),
                    message: "the term is empty".into(),
                });
            }
            if !valid_type(&e.entity_type) {
                return Err(LexiconError {
                    place: place(),
                    message: format!(
                        "type `{}` of `{}` is not a lower-case name such as {}",
                        e.entity_type,
                        e.term,
                        ENTITY_TYPES.join(", ")
                    ),
                });
            }
            e.code = e
                .code
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty());
            e.synonyms = e
                .synonyms
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty() && *s != e.term)
                .collect();
            out.push(e);
        }
        Ok(Lexicon { entries: out })
    }

    /// Parses a tab-separated lexicon: a header line naming the columns `term` and `type`, and
    /// optionally `code` and `synonyms` (`|`-separated), in any order; blank lines and lines
    /// starting with `#` are skipped.
    pub fn from_tsv(text: &str) -> Result<Self, LexiconError> {
        let mut header: Option<Vec<String>> = None;
        let mut entries = Vec::new();
        let mut places = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let place = format!("line {}", n + 1);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let cells: Vec<&str> = line.split('\t').collect();
            let Some(h) = &header else {
                let h: Vec<String> = cells.iter().map(|c| c.trim().to_lowercase()).collect();
                for need in ["term", "type"] {
                    if !h.iter().any(|c| c == need) {
                        return Err(LexiconError {
                            place,
                            message: format!(
                                "the header has no column `{need}` (columns: {})",
                                h.join(", ")
                            ),
                        });
                    }
                }
                header = Some(h);
                continue;
            };
            let get = |name: &str| {
                h.iter()
                    .position(|c| c == name)
                    .and_then(|i| cells.get(i))
                    .map(|s| s.trim())
                    .unwrap_or("")
            };
            entries.push(LexiconEntry {
                term: get("term").to_string(),
                entity_type: get("type").to_string(),
                code: Some(get("code").to_string()),
                synonyms: split_synonyms(get("synonyms")),
            });
            places.push(place);
        }
        Lexicon::new(entries).map_err(|mut e| {
            if let Some(i) = e
                .place
                .strip_prefix("entry ")
                .and_then(|n| n.parse::<usize>().ok())
            {
                e.place = places[i - 1].clone();
            }
            e
        })
    }

    /// The entries.
    pub fn entries(&self) -> &[LexiconEntry] {
        &self.entries
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the entries of `other`; where both define a surface form, `self`'s entry wins.
    pub fn extend(&mut self, other: Lexicon) {
        self.entries.extend(other.entries);
    }

    /// The entity types used by the entries.
    pub fn types(&self) -> BTreeSet<&str> {
        self.entries
            .iter()
            .map(|e| e.entity_type.as_str())
            .collect()
    }
}

/// Splits a `|`-separated list of synonyms.
pub fn split_synonyms(s: &str) -> Vec<String> {
    s.split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// One entity mention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Start, in characters.
    pub start: u32,
    /// End (exclusive), in characters.
    pub end: u32,
    /// The mention as it appears in the text.
    pub text: String,
    /// The entity type.
    #[serde(rename = "type")]
    pub entity_type: String,
    /// The canonical term of the matched entry.
    pub term: String,
    /// The entry's code, if any.
    pub code: Option<String>,
}

pub use crate::langid::is_han;

/// A character that continues an English word: a letter or digit of an alphabetic script.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !is_han(c) && !matches!(c as u32, 0x3040..=0x30FF | 0xAC00..=0xD7AF)
}

/// Folds one character for matching; every character folds to exactly one character, so
/// character offsets are the same in the folded text.
fn fold(c: char) -> char {
    match c {
        '-' | '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' => ' ',
        '\u{2019}' | '\u{2018}' | '`' => '\'',
        c if c.is_whitespace() => ' ',
        c if c.is_uppercase() => {
            let mut l = c.to_lowercase();
            match (l.next(), l.next()) {
                (Some(one), None) => one,
                _ => c,
            }
        }
        c => c,
    }
}

fn fold_str(s: &str) -> String {
    s.chars().map(fold).collect()
}

/// Short all-capital abbreviations match case-sensitively.
fn is_abbreviation(s: &str) -> bool {
    let letters: Vec<char> = s.chars().filter(|c| c.is_alphabetic()).collect();
    !letters.is_empty()
        && letters.len() <= 5
        && letters.iter().all(|c| !c.is_lowercase())
        && letters.iter().any(|c| c.is_uppercase())
}

/// Regular English plurals of a folded term (none for short terms, abbreviations, terms with
/// Han characters or ending in a digit).
fn plurals(folded: &str) -> Vec<String> {
    let letters = folded.chars().filter(|c| c.is_alphabetic()).count();
    let Some(last) = folded.chars().last() else {
        return vec![];
    };
    if letters <= 3 || folded.chars().any(is_han) || !last.is_ascii_lowercase() {
        return vec![];
    }
    let mut out = Vec::new();
    if let Some(stem) = folded.strip_suffix('y') {
        if stem.chars().last().is_some_and(|b| !"aeiou".contains(b)) {
            out.push(format!("{stem}ies"));
            return out;
        }
    }
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|e| folded.ends_with(e))
    {
        out.push(format!("{folded}es"));
    } else {
        out.push(format!("{folded}s"));
    }
    out
}

#[derive(Debug, Clone)]
struct Form {
    /// The entry it belongs to.
    entry: u32,
    /// For abbreviations: the exact spelling (compared with hyphens and spaces alike).
    exact: Option<Vec<char>>,
    /// Whether the form has Han characters (not looked for in English documents).
    han: bool,
    /// 0 for a term or synonym, 1 for a generated plural.
    rank: u8,
}

/// A compiled lexicon that finds entity mentions; cheap to share between threads.
pub struct Recognizer {
    entries: Vec<LexiconEntry>,
    forms: Vec<Form>,
    ac: AhoCorasick,
    /// Chinese terms, added to jieba's dictionary when it is first needed.
    han_terms: Vec<String>,
    jieba: OnceLock<Jieba>,
}

impl std::fmt::Debug for Recognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recognizer")
            .field("entries", &self.entries.len())
            .field("forms", &self.forms.len())
            .finish()
    }
}

/// A candidate mention, in characters.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    start: usize,
    end: usize,
    form: usize,
    /// 0 for a term or synonym, 1 for a generated plural.
    rank: u8,
}

impl Recognizer {
    /// Compiles `lexicon`, keeping only entries whose type is in `types` when given. Where two
    /// entries share a surface form, the earlier entry wins.
    pub fn new(lexicon: &Lexicon, types: Option<&[String]>) -> Result<Self, LexiconError> {
        let keep = |t: &str| types.is_none_or(|ts| ts.iter().any(|x| x == t));
        let mut entries = Vec::new();
        // folded surface form -> (index in `patterns`, rank)
        let mut seen: HashMap<String, (usize, u8)> = HashMap::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut forms: Vec<Form> = Vec::new();
        let mut han_terms = BTreeSet::new();
        for e in lexicon.entries().iter().filter(|e| keep(&e.entity_type)) {
            let id = entries.len() as u32;
            entries.push(e.clone());
            for surface in std::iter::once(&e.term).chain(&e.synonyms) {
                let folded = fold_str(surface.trim());
                if folded.trim().is_empty() {
                    continue;
                }
                let han = surface.chars().any(is_han);
                if han {
                    han_terms.insert(surface.trim().to_string());
                }
                let exact =
                    is_abbreviation(surface).then(|| surface.chars().map(fold_ws).collect());
                let mut add = |p: String, rank: u8, exact: Option<Vec<char>>| {
                    let form = Form {
                        entry: id,
                        exact,
                        han,
                        rank,
                    };
                    match seen.get(&p) {
                        // An explicit form beats a generated plural of an earlier entry.
                        Some(&(i, r)) if rank < r => {
                            forms[i] = form;
                            seen.insert(p, (i, rank));
                        }
                        Some(_) => {}
                        None => {
                            seen.insert(p.clone(), (patterns.len(), rank));
                            patterns.push(p);
                            forms.push(form);
                        }
                    }
                };
                if exact.is_none() {
                    for p in plurals(&folded) {
                        add(p, 1, None);
                    }
                }
                add(folded, 0, exact);
            }
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|e| LexiconError {
                place: "automaton".into(),
                message: e.to_string(),
            })?;
        Ok(Recognizer {
            entries,
            forms,
            ac,
            han_terms: han_terms.into_iter().collect(),
            jieba: OnceLock::new(),
        })
    }

    /// The entries the recognizer looks for (after the type filter).
    pub fn entries(&self) -> &[LexiconEntry] {
        &self.entries
    }

    /// The Chinese segmenter: jieba's default dictionary plus every Chinese term.
    fn jieba(&self) -> &Jieba {
        self.jieba.get_or_init(|| {
            let mut j = Jieba::new();
            for t in &self.han_terms {
                j.add_word(t, None, None);
            }
            j
        })
    }

    /// Builds the segmenter now rather than on the first Chinese document.
    pub fn prepare_chinese(&self) {
        let _ = self.jieba();
    }

    /// The mentions in `text`, a document in `language` (an ISO 639-1 code such as `en` or
    /// `zh`; anything else looks for every term), in text order.
    pub fn find(&self, text: &str, language: &str) -> Vec<Span> {
        if text.is_empty() || self.forms.is_empty() {
            return vec![];
        }
        let english = language == "en";
        let chars: Vec<char> = text.chars().collect();
        let folded: String = chars.iter().map(|&c| fold(c)).collect();
        // Character index of each byte offset of `folded` that starts a character.
        let mut char_of = vec![0u32; folded.len() + 1];
        for (i, (b, _)) in folded.char_indices().enumerate() {
            char_of[b] = i as u32;
        }
        char_of[folded.len()] = chars.len() as u32;
        let mut jieba_bounds: Option<Vec<bool>> = None;
        let mut found: Vec<Candidate> = Vec::new();
        for m in self.ac.find_overlapping_iter(&folded) {
            let fi = m.pattern().as_usize();
            let form = &self.forms[fi];
            if english && form.han {
                continue;
            }
            let (s, e) = (char_of[m.start()] as usize, char_of[m.end()] as usize);
            if s >= e {
                continue;
            }
            if let Some(exact) = &form.exact {
                if chars[s..e]
                    .iter()
                    .map(|&c| fold_ws(c))
                    .ne(exact.iter().copied())
                {
                    continue;
                }
            }
            if !self.edge_ok(&chars, &folded, s, true, &mut jieba_bounds)
                || !self.edge_ok(&chars, &folded, e, false, &mut jieba_bounds)
            {
                continue;
            }
            found.push(Candidate {
                start: s,
                end: e,
                form: fi,
                rank: form.rank,
            });
        }
        found.sort_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then(b.end.cmp(&a.end))
                .then(a.rank.cmp(&b.rank))
        });
        let mut byte_of: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        byte_of.push(text.len());
        let mut out = Vec::new();
        let mut next_free = 0usize;
        for c in found {
            if c.start < next_free {
                continue;
            }
            next_free = c.end;
            let e = &self.entries[self.forms[c.form].entry as usize];
            out.push(Span {
                start: c.start as u32,
                end: c.end as u32,
                text: text[byte_of[c.start]..byte_of[c.end]].to_string(),
                entity_type: e.entity_type.clone(),
                term: e.term.clone(),
                code: e.code.clone(),
            });
        }
        out
    }

    /// Whether the mention edge at character `at` is a word boundary: the start edge when
    /// `start`, else the end edge.
    fn edge_ok(
        &self,
        chars: &[char],
        folded: &str,
        at: usize,
        start: bool,
        bounds: &mut Option<Vec<bool>>,
    ) -> bool {
        if at == 0 || at == chars.len() {
            return true;
        }
        let (inside, outside) = if start {
            (chars[at], chars[at - 1])
        } else {
            (chars[at - 1], chars[at])
        };
        if is_han(inside) {
            if !is_han(outside) {
                return true;
            }
            let b = bounds.get_or_insert_with(|| {
                let mut b = vec![false; chars.len() + 1];
                for t in self.jieba().tokenize(folded, TokenizeMode::Default, true) {
                    b[t.start] = true;
                    b[t.end] = true;
                }
                b
            });
            return b[at];
        }
        !(is_word_char(inside) && is_word_char(outside))
    }
}

/// Folds hyphens and whitespace to a space, for exact comparisons of abbreviations.
fn fold_ws(c: char) -> char {
    match fold(c) {
        ' ' => ' ',
        _ => c,
    }
}

/// The fraction of the non-whitespace characters of `text` that lie inside one of `spans`
/// (which must not overlap); 0 for a text with no such characters.
pub fn density(text: &str, spans: &[Span]) -> f64 {
    let chars: Vec<char> = text.chars().collect();
    let total = chars.iter().filter(|c| !c.is_whitespace()).count();
    if total == 0 {
        return 0.0;
    }
    let covered: usize = spans
        .iter()
        .map(|s| {
            let (a, b) = (s.start as usize, (s.end as usize).min(chars.len()));
            chars[a.min(b)..b]
                .iter()
                .filter(|c| !c.is_whitespace())
                .count()
        })
        .sum();
    covered as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEXICON: &str = "term\ttype\tcode\tsynonyms
myocardial infarction\tdisease\tI21\theart attack|MI
type 2 diabetes\tdisease\tE11\tT2DM|type II diabetes
diabetes mellitus\tdisease\t\tdiabetes
insulin\tdrug\t\t
metformin\tdrug\t\t
beta blocker\tdrug\t\t
artery\tanatomy\t\t
chest pain\tsymptom\t\t
CT\tprocedure\t\tcomputed tomography
HbA1c\tlab_test\t\tglycated hemoglobin
心肌梗死\tdisease\tI21\t心梗
糖尿病\tdisease\t\t
2型糖尿病\tdisease\tE11\t
二甲双胍\tdrug\t\t
胸痛\tsymptom\t\t
肝\tanatomy\t\t肝脏
";

    fn rec() -> Recognizer {
        Recognizer::new(&Lexicon::from_tsv(LEXICON).unwrap(), None).unwrap()
    }

    fn brief(spans: &[Span]) -> Vec<(u32, u32, &str, &str, &str)> {
        spans
            .iter()
            .map(|s| {
                (
                    s.start,
                    s.end,
                    s.text.as_str(),
                    s.entity_type.as_str(),
                    s.term.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn english_case_synonyms_plurals_and_boundaries() {
        let r = rec();
        let t = "Heart attacks in Type 2 Diabetes: insulin, not insulinoma; MI but not mi or MIND.";
        let s = r.find(t, "en");
        assert_eq!(
            brief(&s),
            vec![
                (0, 13, "Heart attacks", "disease", "myocardial infarction"),
                (17, 32, "Type 2 Diabetes", "disease", "type 2 diabetes"),
                (34, 41, "insulin", "drug", "insulin"),
                (59, 61, "MI", "disease", "myocardial infarction"),
            ]
        );
        assert_eq!(s[0].code.as_deref(), Some("I21"));
        assert_eq!(s[2].code, None);
    }

    #[test]
    fn hyphens_and_spaces_are_alike_and_ies_plurals_match() {
        let r = rec();
        let s = r.find("A beta-blocker narrows no arteries; pre-diabetes.", "en");
        assert_eq!(
            brief(&s),
            vec![
                (2, 14, "beta-blocker", "drug", "beta blocker"),
                (26, 34, "arteries", "anatomy", "artery"),
                (40, 48, "diabetes", "disease", "diabetes mellitus"),
            ]
        );
    }

    #[test]
    fn offsets_are_characters() {
        let r = rec();
        let t = "Ünïcödé → metformin";
        let s = r.find(t, "en");
        assert_eq!(brief(&s), vec![(10, 19, "metformin", "drug", "metformin")]);
        let chars: Vec<char> = t.chars().collect();
        assert_eq!(chars[10..19].iter().collect::<String>(), "metformin");
    }

    #[test]
    fn chinese_follows_jieba_words() {
        let r = rec();
        let t = "患者因胸痛入院，诊断为急性心梗，既往有2型糖尿病，服用二甲双胍。肝炎病史。";
        let s = r.find(t, "zh");
        assert_eq!(
            brief(&s),
            vec![
                (3, 5, "胸痛", "symptom", "胸痛"),
                (13, 15, "心梗", "disease", "心肌梗死"),
                (19, 24, "2型糖尿病", "disease", "2型糖尿病"),
                (27, 31, "二甲双胍", "drug", "二甲双胍"),
            ],
            "{s:?}"
        );
        // "肝" inside "肝炎" is not a mention; "肝脏" is.
        let s = r.find("肝脏功能正常。", "zh");
        assert_eq!(brief(&s), vec![(0, 2, "肝脏", "anatomy", "肝")]);
    }

    #[test]
    fn chinese_text_keeps_english_abbreviations() {
        let r = rec();
        let s = r.find("行CT检查，HbA1c为8%。", "zh");
        assert_eq!(
            brief(&s),
            vec![
                (1, 3, "CT", "procedure", "CT"),
                (6, 11, "HbA1c", "lab_test", "HbA1c"),
            ]
        );
        // English documents skip Chinese terms.
        assert!(r.find("胸痛", "en").is_empty());
        assert_eq!(r.find("胸痛", "und").len(), 1);
    }

    #[test]
    fn type_filter_and_density() {
        let lex = Lexicon::from_tsv(LEXICON).unwrap();
        let r = Recognizer::new(&lex, Some(&["drug".to_string()])).unwrap();
        let t = "metformin for chest pain";
        let s = r.find(t, "en");
        assert_eq!(brief(&s), vec![(0, 9, "metformin", "drug", "metformin")]);
        // 9 of 21 non-whitespace characters.
        assert!((density(t, &s) - 9.0 / 21.0).abs() < 1e-12);
        assert_eq!(density("   ", &[]), 0.0);
    }

    #[test]
    fn bad_lexicons_are_named() {
        let e = Lexicon::from_tsv("term\tcode\nx\ty\n").unwrap_err();
        assert!(e.to_string().contains("no column `type`"), "{e}");
        let e = Lexicon::from_tsv("term\ttype\nfever\tSymptom!\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = Lexicon::from_tsv("# c\nterm\ttype\n\t drug\n").unwrap_err();
        assert!(
            e.to_string().contains("line 3") && e.to_string().contains("empty"),
            "{e}"
        );
    }

    #[test]
    fn the_default_lexicon_parses_and_covers_every_type() {
        let lex =
            Lexicon::from_tsv(include_str!("../../operators/data/lexicon/medical.tsv")).unwrap();
        assert!(lex.len() > 400);
        for t in ENTITY_TYPES {
            assert!(lex.types().contains(t), "{t}");
        }
        let r = Recognizer::new(&lex, None).unwrap();
        let s = r.find(
            "Aspirin reduces the risk of heart attack in patients with high blood pressure.",
            "en",
        );
        let terms: Vec<&str> = s.iter().map(|s| s.term.as_str()).collect();
        assert_eq!(terms, ["aspirin", "myocardial infarction", "hypertension"]);
        let s = r.find("高血压患者出现头痛和恶心，给予阿司匹林治疗。", "zh");
        let terms: Vec<&str> = s.iter().map(|s| s.term.as_str()).collect();
        assert_eq!(terms, ["高血压", "头痛", "恶心", "阿司匹林"]);
    }
}
