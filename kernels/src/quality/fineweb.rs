//! The FineWeb quality rules (Penedo et al. 2024) with datatrove's defaults: lines ending in
//! punctuation, short lines, duplicated line characters, and newlines per word.

use super::text::{count, duplicates, is_terminal, len, strip};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}

/// Thresholds of the FineWeb quality filter (defaults: datatrove's `FineWebQualityFilter`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FineWeb {
    /// Run this filter.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Least fraction of lines ending in sentence-final punctuation (`fineweb:line_punct_ratio`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub line_punct_thr: f64,
    /// Do not apply `line_punct_thr` to documents where no line ends in punctuation.
    pub line_punct_exclude_zero: bool,
    /// Greatest fraction of lines of at most `short_line_length` characters
    /// (`fineweb:short_line_ratio`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub short_line_thr: f64,
    /// What a short line is, in characters.
    pub short_line_length: usize,
    /// Greatest fraction of characters in repeated lines (`fineweb:char_dup_ratio`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub char_duplicates_ratio: f64,
    /// Greatest number of newlines per word (`fineweb:list_ratio`).
    #[schemars(range(min = 0.0))]
    pub new_line_ratio: f64,
}

impl Default for FineWeb {
    fn default() -> Self {
        FineWeb {
            enabled: true,
            line_punct_thr: 0.12,
            line_punct_exclude_zero: false,
            short_line_thr: 0.67,
            short_line_length: 30,
            char_duplicates_ratio: 0.01,
            new_line_ratio: 0.3,
        }
    }
}

impl FineWeb {
    /// Every rule `text` (split into `words`) fails.
    pub fn check(&self, text: &str, words: &[&str]) -> Vec<String> {
        let lines: Vec<&str> = text.split('\n').filter(|l| !strip(l).is_empty()).collect();
        if lines.is_empty() {
            return vec!["fineweb:empty".into()];
        }
        let mut out = Vec::new();
        let n = lines.len() as f64;
        let punct = lines
            .iter()
            .filter(|l| l.chars().next_back().is_some_and(is_terminal))
            .count() as f64
            / n;
        if punct < self.line_punct_thr && !(punct == 0.0 && self.line_punct_exclude_zero) {
            out.push("fineweb:line_punct_ratio".into());
        }
        let short = lines
            .iter()
            .filter(|l| len(l) <= self.short_line_length)
            .count() as f64
            / n;
        if short > self.short_line_thr {
            out.push("fineweb:short_line_ratio".into());
        }
        let chars = len(text) - count(text, "\n");
        let dup = duplicates(lines.iter().copied()).1;
        if chars > 0 && dup as f64 / chars as f64 > self.char_duplicates_ratio {
            out.push("fineweb:char_dup_ratio".into());
        }
        if !words.is_empty() && count(text, "\n") as f64 / words.len() as f64 > self.new_line_ratio
        {
            out.push("fineweb:list_ratio".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::words::words;

    fn f(text: &str) -> Vec<String> {
        FineWeb::default().check(text, &words(text))
    }

    #[test]
    fn prose_passes() {
        let t = "The study enrolled two hundred adults with hypertension in four centres.\n\
                 Blood pressure fell more with the new drug than with placebo at twelve weeks.";
        assert!(f(t).is_empty(), "{:?}", f(t));
    }

    #[test]
    fn each_rule_fails() {
        assert_eq!(f(" \n\n"), ["fineweb:empty"]);
        let nav = "Home\nAbout us\nContact\nNews\nLogin\nA longer line that has no final stop";
        let got = f(nav);
        assert!(
            got.contains(&"fineweb:line_punct_ratio".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(&"fineweb:short_line_ratio".to_string()),
            "{got:?}"
        );
        assert!(got.contains(&"fineweb:list_ratio".to_string()), "{got:?}");
        let dup = "This line is repeated verbatim in the text below it.\n\
                   Another line, with different words, ends the paragraph here.\n\
                   This line is repeated verbatim in the text below it.";
        assert_eq!(f(dup), ["fineweb:char_dup_ratio"]);
        let excl = FineWeb {
            line_punct_exclude_zero: true,
            ..Default::default()
        };
        let t = "a line of reasonable length without a final stop mark at all";
        assert!(excl.check(t, &words(t)).is_empty());
    }
}
