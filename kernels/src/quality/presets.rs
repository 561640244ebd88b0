//! Threshold presets by kind of text.
//!
//! datatrove's defaults were tuned on web crawl. Scientific and medical prose breaks several
//! of their assumptions: numbers, units, p-values and confidence intervals make up a large
//! share of its tokens; abstracts are short (three or four sentences is common); terms and
//! phrases repeat ("in vitro fertilization outcome"); textbooks are full of headings, lists
//! and dosing tables. The `literature` and `textbook` presets keep the rules and change the
//! thresholds where real medical text failed them, and add the encoding rule, which web
//! crawl filters lack. How they were calibrated, and what each rule does to real medical text
//! and to junk, is in the README (`clean.quality`).

use super::gopher::limits;
use super::Filters;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A kind of text, with thresholds chosen for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Web crawl: datatrove's defaults for every filter (the encoding filter off), which
    /// make datatrove's decisions.
    #[default]
    Web,
    /// Papers, abstracts and clinical guidelines: the alphabetic-word share counted over
    /// words rather than punctuation tokens, shorter documents, fewer sentences and more
    /// repeated phrasing allowed; curly brackets allowed; mojibake dropped.
    Literature,
    /// Textbook pages: as `literature`, and also lists (bullet lines, lines without final
    /// punctuation, which C4 would remove) and the repeated terms of a chapter allowed.
    Textbook,
}

impl Preset {
    /// The filters and thresholds of this preset.
    pub fn filters(self) -> Filters {
        let mut f = Filters::default();
        if self == Preset::Web {
            return f;
        }
        // Gopher quality.
        let q = &mut f.gopher_quality;
        q.min_doc_words = Some(30);
        q.alpha_ratio_ignores_punctuation = true;
        q.max_non_alpha_words_ratio = Some(0.65);
        // Gopher repetition: scientific prose repeats its terms and phrases.
        let r = &mut f.gopher_repetition;
        r.top_n_grams = limits(&[(2, 0.25), (3, 0.22), (4, 0.2)]);
        r.dup_n_grams = limits(&[
            (5, 0.25),
            (6, 0.24),
            (7, 0.23),
            (8, 0.22),
            (9, 0.21),
            (10, 0.2),
        ]);
        // C4: short abstracts; set notation and formulas.
        f.c4.min_num_sentences = Some(3);
        f.c4.filter_curly_bracket = false;
        // Encoding.
        f.encoding.enabled = true;
        if self == Preset::Textbook {
            f.gopher_quality.max_bullet_lines_ratio = None;
            f.gopher_quality.max_non_alpha_words_ratio = Some(0.55);
            f.c4.filter_no_terminal_punct = false;
            f.c4.min_words_per_line = None;
            f.c4.min_num_sentences = Some(2);
            f.fineweb.short_line_thr = 0.8;
            f.fineweb.new_line_ratio = 0.5;
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::gopher::NGramLimit;

    /// `web` is datatrove's defaults, written out from datatrove 0.10's filter signatures, so
    /// that a change to them cannot pass unnoticed.
    #[test]
    fn web_is_datatrove() {
        let f = Preset::Web.filters();
        assert_eq!(f, Filters::default());
        let q = &f.gopher_quality;
        assert!(q.enabled && !q.alpha_ratio_ignores_punctuation);
        assert_eq!(
            (q.min_doc_words, q.max_doc_words),
            (Some(50), Some(100_000))
        );
        assert_eq!(
            (q.min_avg_word_length, q.max_avg_word_length),
            (Some(3.0), Some(10.0))
        );
        assert_eq!(q.max_symbol_word_ratio, Some(0.1));
        assert_eq!(q.max_bullet_lines_ratio, Some(0.9));
        assert_eq!(q.max_ellipsis_lines_ratio, Some(0.3));
        assert_eq!(q.max_non_alpha_words_ratio, Some(0.8));
        assert_eq!(q.min_stop_words, Some(2));
        assert_eq!(
            q.stop_words,
            ["the", "be", "to", "of", "and", "that", "have", "with"]
        );
        let r = &f.gopher_repetition;
        assert_eq!(
            (
                r.dup_line_frac,
                r.dup_para_frac,
                r.dup_line_char_frac,
                r.dup_para_char_frac
            ),
            (Some(0.3), Some(0.3), Some(0.2), Some(0.2))
        );
        let lim = |v: &[NGramLimit]| v.iter().map(|l| (l.n, l.max_frac)).collect::<Vec<_>>();
        assert_eq!(lim(&r.top_n_grams), [(2, 0.2), (3, 0.18), (4, 0.16)]);
        assert_eq!(
            lim(&r.dup_n_grams),
            [
                (5, 0.15),
                (6, 0.14),
                (7, 0.13),
                (8, 0.12),
                (9, 0.11),
                (10, 0.10)
            ]
        );
        let c = &f.c4;
        assert!(c.enabled && c.remove_citations && c.filter_no_terminal_punct);
        assert_eq!(
            (c.min_num_sentences, c.min_words_per_line, c.max_word_length),
            (Some(5), Some(3), Some(1000))
        );
        assert!(c.filter_lorem_ipsum && c.filter_javascript && c.filter_curly_bracket);
        assert!(c.filter_policy);
        let w = &f.fineweb;
        assert!(w.enabled && !w.line_punct_exclude_zero);
        assert_eq!(
            (w.line_punct_thr, w.short_line_thr, w.short_line_length),
            (0.12, 0.67, 30)
        );
        assert_eq!((w.char_duplicates_ratio, w.new_line_ratio), (0.01, 0.3));
        assert!(!f.encoding.enabled, "datatrove has no encoding filter");
    }

    #[test]
    fn presets_change_only_what_they_say() {
        let web = Preset::Web.filters();
        let lit = Preset::Literature.filters();
        let book = Preset::Textbook.filters();
        assert!(lit.encoding.enabled && book.encoding.enabled);
        assert!(lit.gopher_quality.alpha_ratio_ignores_punctuation);
        assert_eq!(lit.gopher_quality.stop_words, web.gopher_quality.stop_words);
        assert_eq!(lit.fineweb, web.fineweb);
        assert!(lit.c4.filter_no_terminal_punct && !book.c4.filter_no_terminal_punct);
        assert_eq!(book.gopher_quality.max_bullet_lines_ratio, None);
        let v: Preset = serde_json::from_str("\"literature\"").unwrap();
        assert_eq!(v, Preset::Literature);
    }
}
