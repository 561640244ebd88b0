//! The C4 rules (Raffel et al. 2020) as datatrove's C4 quality filter applies them, line by
//! line: lines are dropped (the text changes) and some findings drop the whole document.

use super::text::{is_space, len, lines, strip};
use super::words::sentence_count;
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

fn yes() -> bool {
    true
}

/// Settings of the C4 filter (defaults: datatrove's `C4QualityFilter`, lines split at
/// newlines). It removes lines; `null` turns a single rule off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct C4 {
    /// Run this filter.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Remove Wikipedia-style citation marks (`[1]`, `[edit]`, `[citation needed]`).
    pub remove_citations: bool,
    /// Drop lines that do not end in `.`, `?`, `!`, `"` or `'` (or that end in `...`).
    pub filter_no_terminal_punct: bool,
    /// Drop the document when fewer sentences remain (`c4:too_few_sentences`); `None`: off.
    pub min_num_sentences: Option<usize>,
    /// Drop lines with fewer words; `None`: off.
    pub min_words_per_line: Option<usize>,
    /// Drop lines with a longer word (in characters); `None`: off.
    #[schemars(range(min = 1))]
    pub max_word_length: Option<usize>,
    /// Drop the document when a kept line contains "lorem ipsum" (`c4:lorem_ipsum`).
    pub filter_lorem_ipsum: bool,
    /// Drop lines mentioning "javascript".
    pub filter_javascript: bool,
    /// Drop the document when a kept line contains `{` (`c4:curly_bracket`).
    pub filter_curly_bracket: bool,
    /// Drop lines about cookies, terms of use and privacy policies.
    pub filter_policy: bool,
}

impl Default for C4 {
    fn default() -> Self {
        C4 {
            enabled: true,
            remove_citations: true,
            filter_no_terminal_punct: true,
            min_num_sentences: Some(5),
            min_words_per_line: Some(3),
            max_word_length: Some(1000),
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

const POLICY: &[&str] = &[
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

fn citation() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"\[\d*\]|\[edit\]|\[citation needed\]").expect("valid pattern"))
}

/// What the C4 filter made of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct C4Outcome {
    /// The kept lines, joined by newlines.
    pub text: String,
    /// Every reason to drop the document (empty: keep it).
    pub reasons: Vec<String>,
    /// Lines removed.
    pub lines_removed: usize,
}

impl C4 {
    /// Applies the rules to `text`.
    pub fn apply(&self, text: &str) -> C4Outcome {
        let mut kept: Vec<String> = Vec::new();
        let mut reasons: Vec<String> = Vec::new();
        let mut reason = |r: &str| {
            if !reasons.iter().any(|x| x == r) {
                reasons.push(r.to_string());
            }
        };
        let (mut sentences, mut removed) = (0usize, 0usize);
        for line in lines(text) {
            let line = strip(line);
            let n_words = line.split(is_space).filter(|w| !w.is_empty()).count();
            if self
                .max_word_length
                .is_some_and(|m| line.split(is_space).any(|w| len(w) > m))
            {
                removed += 1;
                continue;
            }
            let line = if self.remove_citations {
                citation().replace_all(line, "").into_owned()
            } else {
                line.to_string()
            };
            if self.filter_no_terminal_punct
                && (!line.ends_with(['.', '?', '!', '"', '\'']) || line.ends_with("..."))
            {
                removed += 1;
                continue;
            }
            if self.min_words_per_line.is_some_and(|m| n_words < m) {
                removed += 1;
                continue;
            }
            let lower = line.to_lowercase();
            if self.filter_lorem_ipsum && lower.contains("lorem ipsum") {
                reason("c4:lorem_ipsum");
            }
            if self.filter_javascript && lower.contains("javascript") {
                removed += 1;
                continue;
            }
            if self.filter_curly_bracket && line.contains('{') {
                reason("c4:curly_bracket");
            }
            if self.filter_policy && POLICY.iter().any(|p| lower.contains(p)) {
                removed += 1;
                continue;
            }
            if self.min_num_sentences.is_some() {
                sentences += sentence_count(&line);
            }
            kept.push(line);
        }
        if self.min_num_sentences.is_some_and(|m| sentences < m) {
            reason("c4:too_few_sentences");
        }
        C4Outcome {
            text: strip(&kept.join("\n")).to_string(),
            reasons,
            lines_removed: removed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE: &str = "The trial enrolled adults. They were followed for a year. Blood \
        pressure fell in both arms. Adverse events were rare. The drug was well tolerated.";

    #[test]
    fn keeps_good_lines_and_drops_bad_ones() {
        let text = format!(
            "Home\n{FIVE}\nClick here to read more\nPlease enable JavaScript in your browser.\n\
             This site uses cookies to improve things.\nSee the results [1] below.\nWait for it..."
        );
        let o = C4::default().apply(&text);
        assert!(o.reasons.is_empty(), "{:?}", o.reasons);
        assert_eq!(o.text, format!("{FIVE}\nSee the results  below."));
        assert_eq!(o.lines_removed, 5);
    }

    #[test]
    fn document_level_rules() {
        let o = C4::default().apply("Only one sentence here, really.");
        assert_eq!(o.reasons, ["c4:too_few_sentences"]);
        let o = C4::default().apply(&format!(
            "{FIVE}\nLorem ipsum dolor sit amet.\nThe code is {{x}}."
        ));
        assert_eq!(o.reasons, ["c4:lorem_ipsum", "c4:curly_bracket"]);
        let off = C4 {
            min_num_sentences: None,
            filter_no_terminal_punct: false,
            ..Default::default()
        };
        assert!(off.apply("short line without stop").reasons.is_empty());
    }

    #[test]
    fn long_words_drop_their_line() {
        let c = C4 {
            max_word_length: Some(10),
            min_num_sentences: None,
            ..Default::default()
        };
        let o = c.apply("A supercalifragilistic word is here.\nThis line is fine.");
        assert_eq!(o.text, "This line is fine.");
    }
}
