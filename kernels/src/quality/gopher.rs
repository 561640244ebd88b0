//! The Gopher rules (Rae et al. 2021, table A1 and section A.1.1) with datatrove's
//! defaults: a quality filter on word counts, word lengths, symbols, bullets, ellipses,
//! alphabetic words and stop words, and a repetition filter on duplicate lines,
//! paragraphs and word n-grams.

use super::text::{count, duplicates, is_punctuation, len, lines, split_newline_runs, strip};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

fn yes() -> bool {
    true
}

/// Thresholds of the Gopher quality filter (defaults: datatrove's `GopherQualityFilter`);
/// `null` turns a single rule off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GopherQuality {
    /// Run this filter.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Fewest words that are not only punctuation (`gopher_short_doc`).
    pub min_doc_words: Option<usize>,
    /// Most words that are not only punctuation (`gopher_long_doc`).
    pub max_doc_words: Option<usize>,
    /// Least mean length of those words, in characters (`gopher_below_avg_threshold`).
    #[schemars(range(min = 0.0))]
    pub min_avg_word_length: Option<f64>,
    /// Greatest mean length of those words (`gopher_above_avg_threshold`).
    #[schemars(range(min = 0.0))]
    pub max_avg_word_length: Option<f64>,
    /// Greatest ratio of `#` to words (`gopher_too_many_hashes`), and of ellipses (`...`
    /// or `…`) to words (`gopher_too_many_ellipsis`).
    #[schemars(range(min = 0.0))]
    pub max_symbol_word_ratio: Option<f64>,
    /// Greatest fraction of lines starting with `•` or `-` (`gopher_too_many_bullets`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_bullet_lines_ratio: Option<f64>,
    /// Greatest fraction of lines ending with an ellipsis (`gopher_too_many_end_ellipsis`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_ellipsis_lines_ratio: Option<f64>,
    /// Least fraction of words with a letter (`gopher_below_alpha_threshold`; datatrove's
    /// name, although it is a lower bound on alphabetic words).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_non_alpha_words_ratio: Option<f64>,
    /// Leave words that are only punctuation out of that fraction. datatrove counts them
    /// (its words are tokenizer tokens, so `(`, `,` and `%` are non-alphabetic words), which
    /// puts prose with numbers, units and citations below the threshold; Gopher's words were
    /// white-space separated.
    pub alpha_ratio_ignores_punctuation: bool,
    /// Fewest distinct stop words present (`gopher_enough_stop_words`).
    pub min_stop_words: Option<usize>,
    /// The stop words (matched case-sensitively, as whole words).
    pub stop_words: Vec<String>,
}

impl Default for GopherQuality {
    fn default() -> Self {
        GopherQuality {
            enabled: true,
            min_doc_words: Some(50),
            max_doc_words: Some(100_000),
            min_avg_word_length: Some(3.0),
            max_avg_word_length: Some(10.0),
            max_symbol_word_ratio: Some(0.1),
            max_bullet_lines_ratio: Some(0.9),
            max_ellipsis_lines_ratio: Some(0.3),
            max_non_alpha_words_ratio: Some(0.8),
            alpha_ratio_ignores_punctuation: false,
            min_stop_words: Some(2),
            stop_words: ["the", "be", "to", "of", "and", "that", "have", "with"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl GopherQuality {
    /// Every rule `text` (split into `words`, punctuation tokens included) fails.
    pub fn check(&self, text: &str, words: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        let n_words = words.len();
        let content: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| w.chars().any(|c| !is_punctuation(c)))
            .collect();
        let n = content.len();
        if self.min_doc_words.is_some_and(|m| n < m) {
            out.push("gopher_short_doc".into());
        }
        if self.max_doc_words.is_some_and(|m| n > m) {
            out.push("gopher_long_doc".into());
        }
        if n > 0 {
            let avg = content.iter().map(|w| len(w)).sum::<usize>() as f64 / n as f64;
            if self.min_avg_word_length.is_some_and(|m| avg < m) {
                out.push("gopher_below_avg_threshold".into());
            }
            if self.max_avg_word_length.is_some_and(|m| avg > m) {
                out.push("gopher_above_avg_threshold".into());
            }
        }
        if n_words > 0 {
            if let Some(m) = self.max_symbol_word_ratio {
                if count(text, "#") as f64 / n_words as f64 > m {
                    out.push("gopher_too_many_hashes".into());
                }
                let ellipses = count(text, "...") + count(text, "…");
                if ellipses as f64 / n_words as f64 > m {
                    out.push("gopher_too_many_ellipsis".into());
                }
            }
        }
        let ls = lines(text);
        if !ls.is_empty() {
            let frac = |f: &dyn Fn(&str) -> bool| {
                ls.iter().filter(|l| f(l)).count() as f64 / ls.len() as f64
            };
            if let Some(m) = self.max_bullet_lines_ratio {
                let start = |l: &str| {
                    let l = l.trim_start_matches(super::text::is_space);
                    l.starts_with('•') || l.starts_with('-')
                };
                if frac(&start) > m {
                    out.push("gopher_too_many_bullets".into());
                }
            }
            if let Some(m) = self.max_ellipsis_lines_ratio {
                let end = |l: &str| {
                    let l = l.trim_end_matches(super::text::is_space);
                    l.ends_with("...") || l.ends_with('…')
                };
                if frac(&end) > m {
                    out.push("gopher_too_many_end_ellipsis".into());
                }
            }
        }
        if n_words > 0 {
            if let Some(m) = self.max_non_alpha_words_ratio {
                let counted: &[&str] = if self.alpha_ratio_ignores_punctuation {
                    &content
                } else {
                    words
                };
                let alpha = counted
                    .iter()
                    .filter(|w| w.chars().any(char::is_alphabetic))
                    .count();
                if !counted.is_empty() && (alpha as f64 / counted.len() as f64) < m {
                    out.push("gopher_below_alpha_threshold".into());
                }
            }
        }
        if let Some(m) = self.min_stop_words {
            let present: HashSet<&str> = words
                .iter()
                .copied()
                .filter(|w| self.stop_words.iter().any(|s| s == w))
                .collect();
            if present.len() < m {
                out.push("gopher_enough_stop_words".into());
            }
        }
        out
    }
}

/// An n-gram size and the greatest fraction of the text's characters it may cover.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NGramLimit {
    /// Words per n-gram.
    #[schemars(range(min = 1))]
    pub n: usize,
    /// Greatest fraction of characters.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_frac: f64,
}

/// Limits from (n, fraction) pairs.
pub fn limits(pairs: &[(usize, f64)]) -> Vec<NGramLimit> {
    pairs
        .iter()
        .map(|&(n, max_frac)| NGramLimit { n, max_frac })
        .collect()
}

/// Thresholds of the Gopher repetition filter (defaults: datatrove's
/// `GopherRepetitionFilter`); `null` turns a single rule off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GopherRepetition {
    /// Run this filter.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Greatest fraction of lines that repeat an earlier line (`dup_line_frac`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub dup_line_frac: Option<f64>,
    /// Greatest fraction of paragraphs that repeat an earlier one (`dup_para_frac`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub dup_para_frac: Option<f64>,
    /// Greatest fraction of characters in repeated lines (`dup_line_char_frac`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub dup_line_char_frac: Option<f64>,
    /// Greatest fraction of characters in repeated paragraphs (`dup_para_char_frac`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub dup_para_char_frac: Option<f64>,
    /// Limits on the characters covered by the most frequent word n-gram (`top_{n}_gram`).
    pub top_n_grams: Vec<NGramLimit>,
    /// Limits on the characters in repeated word n-grams (`duplicated_{n}_n_grams`).
    pub dup_n_grams: Vec<NGramLimit>,
}

impl Default for GopherRepetition {
    fn default() -> Self {
        GopherRepetition {
            enabled: true,
            dup_line_frac: Some(0.3),
            dup_para_frac: Some(0.3),
            dup_line_char_frac: Some(0.2),
            dup_para_char_frac: Some(0.2),
            top_n_grams: limits(&[(2, 0.2), (3, 0.18), (4, 0.16)]),
            dup_n_grams: limits(&[
                (5, 0.15),
                (6, 0.14),
                (7, 0.13),
                (8, 0.12),
                (9, 0.11),
                (10, 0.10),
            ]),
        }
    }
}

/// Characters covered by the most frequent n-gram (words joined by spaces): its length times
/// its count; among equally frequent n-grams, the one seen first.
fn top_ngram_chars(words: &[&str], n: usize) -> Option<usize> {
    if words.len() < n || n == 0 {
        return None;
    }
    let mut counts: HashMap<&[&str], (usize, usize)> = HashMap::new();
    for (i, g) in words.windows(n).enumerate() {
        counts.entry(g).or_insert((0, i)).0 += 1;
    }
    let (g, (c, _)) = counts
        .into_iter()
        .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))?;
    let chars = g.iter().map(|w| len(w)).sum::<usize>() + (n - 1);
    Some(chars * c)
}

/// Characters in repeated n-grams (words joined without separator), scanning left to right
/// and skipping past each repeat.
fn repeated_ngram_chars(words: &[&str], n: usize) -> usize {
    if n == 0 || words.len() < n {
        return 0;
    }
    let mut seen: HashSet<String> = HashSet::new();
    let (mut chars, mut i) = (0, 0);
    while i + n <= words.len() {
        let g: String = words[i..i + n].concat();
        if seen.contains(&g) {
            chars += len(&g);
            i += n;
        } else {
            seen.insert(g);
            i += 1;
        }
    }
    chars
}

impl GopherRepetition {
    /// Every rule `text` (split into `words`) fails. With `lines_only`, the word n-gram rules
    /// are skipped.
    pub fn check(&self, text: &str, words: &[&str], lines_only: bool) -> Vec<String> {
        let mut out = Vec::new();
        if text.is_empty() {
            out.push("empty".into());
            return out;
        }
        let total = len(text) as f64;
        let paragraphs = split_newline_runs(strip(text), 2);
        let (dup, chars) = duplicates(paragraphs.iter().copied());
        if self
            .dup_para_frac
            .is_some_and(|m| dup as f64 / paragraphs.len() as f64 > m)
        {
            out.push("dup_para_frac".into());
        }
        if self
            .dup_para_char_frac
            .is_some_and(|m| chars as f64 / total > m)
        {
            out.push("dup_para_char_frac".into());
        }
        let ls = split_newline_runs(text, 1);
        let (dup, chars) = duplicates(ls.iter().copied());
        if self
            .dup_line_frac
            .is_some_and(|m| dup as f64 / ls.len() as f64 > m)
        {
            out.push("dup_line_frac".into());
        }
        if self
            .dup_line_char_frac
            .is_some_and(|m| chars as f64 / total > m)
        {
            out.push("dup_line_char_frac".into());
        }
        if lines_only {
            return out;
        }
        for &NGramLimit { n, max_frac: frac } in &self.top_n_grams {
            if let Some(c) = top_ngram_chars(words, n) {
                if c as f64 / total > frac {
                    out.push(format!("top_{n}_gram"));
                }
            }
        }
        for &NGramLimit { n, max_frac: frac } in &self.dup_n_grams {
            if repeated_ngram_chars(words, n) as f64 / total > frac {
                out.push(format!("duplicated_{n}_n_grams"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::words::words;

    const GOOD: &str = "The patients were randomly assigned to receive the study drug or a \
        placebo for twelve weeks, and the primary outcome was the change in blood pressure \
        from baseline. Secondary outcomes included heart rate, body weight and the rate of \
        adverse events that led to discontinuation. Analyses were done with the intention to \
        treat principle, and missing values were imputed with the last observation carried \
        forward.";

    fn q(text: &str) -> Vec<String> {
        GopherQuality::default().check(text, &words(text))
    }

    fn r(text: &str) -> Vec<String> {
        GopherRepetition::default().check(text, &words(text), false)
    }

    #[test]
    fn good_text_passes_both() {
        assert!(q(GOOD).is_empty(), "{:?}", q(GOOD));
        assert!(r(GOOD).is_empty(), "{:?}", r(GOOD));
    }

    #[test]
    fn short_and_long_docs() {
        assert_eq!(q("The cat and the dog sat with me."), ["gopher_short_doc"]);
        let long = GopherQuality {
            max_doc_words: Some(20),
            ..Default::default()
        };
        assert_eq!(long.check(GOOD, &words(GOOD)), ["gopher_long_doc"]);
    }

    #[test]
    fn word_length_bounds() {
        let short = "a of to be it is an as at by ".repeat(8) + "the and";
        assert!(q(&short).contains(&"gopher_below_avg_threshold".to_string()));
        let long = "pharmacokinetically interdisciplinary ".repeat(30) + "the and";
        assert!(q(&long).contains(&"gopher_above_avg_threshold".to_string()));
    }

    #[test]
    fn hashes_ellipses_bullets_and_end_ellipses() {
        let hashes = format!("{GOOD} {}", "#tag ".repeat(12));
        assert!(q(&hashes).contains(&"gopher_too_many_hashes".to_string()));
        let ell = format!("{GOOD} {}", "wait... ".repeat(12));
        assert!(q(&ell).contains(&"gopher_too_many_ellipsis".to_string()));
        let bullets: String = GOOD.split(". ").map(|s| format!("- {s}\n")).collect();
        assert_eq!(q(&bullets), ["gopher_too_many_bullets"]);
        let end: String = GOOD.split(". ").map(|s| format!("{s}…\n")).collect();
        assert!(q(&end).contains(&"gopher_too_many_end_ellipsis".to_string()));
    }

    #[test]
    fn alpha_and_stop_words() {
        let numbers = format!("{GOOD} {}", "12.5 13 14 15 16 ".repeat(20));
        assert!(q(&numbers).contains(&"gopher_below_alpha_threshold".to_string()));
        let nostop: String = GOOD
            .split(' ')
            .filter(|w| {
                ![
                    "the", "The", "and", "to", "with", "of", "that", "be", "have",
                ]
                .contains(w)
            })
            .collect::<Vec<_>>()
            .join(" ");
        assert!(q(&nostop).contains(&"gopher_enough_stop_words".to_string()));
        // Stop words are case-sensitive: "The" is not "the".
        assert_eq!(
            GopherQuality {
                min_doc_words: None,
                ..Default::default()
            }
            .check("The And", &["The", "And"]),
            ["gopher_enough_stop_words"]
        );
    }

    #[test]
    fn every_reason_is_reported() {
        let bad = "... ... ...\n... ...";
        let got = q(bad);
        for want in [
            "gopher_short_doc",
            "gopher_too_many_ellipsis",
            "gopher_enough_stop_words",
        ] {
            assert!(got.contains(&want.to_string()), "{got:?}");
        }
    }

    #[test]
    fn duplicate_lines_and_paragraphs() {
        let lines = "First line of text here.\nSecond line is different.\nFirst line of text here.\nFirst line of text here.";
        let got = r(lines);
        assert!(got.contains(&"dup_line_frac".to_string()), "{got:?}");
        assert!(got.contains(&"dup_line_char_frac".to_string()), "{got:?}");
        let paras = format!("{GOOD}\n\n{GOOD}\n\nA short closing paragraph.");
        let got = r(&paras);
        assert!(got.contains(&"dup_para_frac".to_string()), "{got:?}");
        assert!(got.contains(&"dup_para_char_frac".to_string()), "{got:?}");
        assert_eq!(r(""), ["empty"]);
    }

    #[test]
    fn ngram_repetition() {
        let top = format!("{GOOD} {}", "blood pressure ".repeat(30));
        assert!(r(&top).contains(&"top_2_gram".to_string()), "{:?}", r(&top));
        let dup = format!("{GOOD} {GOOD}");
        let got = r(&dup);
        assert!(
            got.contains(&"duplicated_10_n_grams".to_string()),
            "{got:?}"
        );
        assert!(!got.contains(&"dup_line_frac".to_string()));
        // Lines-only mode skips the word rules.
        assert!(GopherRepetition::default()
            .check(&dup, &words(&dup), true)
            .is_empty());
    }

    #[test]
    fn ngram_counting_details() {
        // Ties go to the n-gram seen first: "aaaa b" (6 chars) twice before "c d" twice.
        assert_eq!(
            top_ngram_chars(&["aaaa", "b", "c", "d", "aaaa", "b", "c", "d"], 2),
            Some(12)
        );
        // Repeats are skipped past: "a b" "a b" "a b" → two repeats of 2 characters.
        assert_eq!(repeated_ngram_chars(&["a", "b", "a", "b", "a", "b"], 2), 4);
        // Joined without a separator, "ab"+"c" equals "a"+"bc".
        assert_eq!(repeated_ngram_chars(&["ab", "c", "a", "bc"], 2), 3);
    }
}
