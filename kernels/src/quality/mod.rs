//! Heuristic quality filters for web and document text, each returning every rule a
//! document fails (not just the first), with the rule names datatrove uses:
//!
//! - [`gopher::GopherQuality`]: word counts and lengths, `#` and ellipsis ratios, bullet and
//!   ellipsis lines, alphabetic words, stop words (`gopher_short_doc`, …);
//! - [`gopher::GopherRepetition`]: duplicate lines and paragraphs, most frequent and
//!   repeated word n-grams (`dup_line_frac`, `top_2_gram`, `duplicated_5_n_grams`, …);
//! - [`c4::C4`]: C4's line filters (which remove lines, changing the text) and its
//!   document rules (`c4:too_few_sentences`, `c4:lorem_ipsum`, `c4:curly_bracket`);
//! - [`fineweb::FineWeb`]: FineWeb's line rules (`fineweb:line_punct_ratio`, …);
//! - [`encoding::Encoding`]: text decoded with the wrong character set (`encoding:mojibake`).
//!
//! Thresholds come in [`Preset`]s by kind of text: `web` (datatrove's defaults, for which
//! zest makes datatrove's decisions), `literature` and `textbook` (calibrated on medical
//! text; see [`Preset`]).
//!
//! Words are counted with [`words::words`], which splits English exactly as datatrove's
//! English word tokenizer does, so that decisions near a threshold come out the same.
//!
//! **Chinese.** The thresholds above assume space-separated words (mean word length 3–10
//! characters, English stop words, lines of 30 characters), so [`assess`] applies to
//! documents in Chinese only the rules that mean the same there: the duplicate line and
//! paragraph rules and the repeated n-gram rules (`duplicated_{n}_n_grams`) of the Gopher
//! repetition filter, with words from jieba's segmentation. The most-frequent n-gram rules
//! (`top_{n}_gram`) are skipped too: a short Chinese text's most frequent n-gram covers a
//! large share of its few characters even when nothing repeats. The Gopher quality, C4 and FineWeb rules are skipped.

pub mod c4;
pub mod encoding;
pub mod fineweb;
pub mod gopher;
mod presets;
mod tables;
pub mod text;
pub mod words;

use jieba_rs::{Jieba, TokenizeMode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

pub use presets::Preset;

/// Which filters run, with their thresholds. The default is [`Preset::Web`]: datatrove's
/// filters with datatrove's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    /// The Gopher quality filter.
    pub gopher_quality: gopher::GopherQuality,
    /// The Gopher repetition filter.
    pub gopher_repetition: gopher::GopherRepetition,
    /// The C4 filter (removes lines).
    pub c4: c4::C4,
    /// The FineWeb filter.
    pub fineweb: fineweb::FineWeb,
    /// The encoding filter (mojibake).
    pub encoding: encoding::Encoding,
}

impl Filters {
    /// Every filter turned off.
    pub fn none() -> Self {
        let mut f = Filters::default();
        f.gopher_quality.enabled = false;
        f.gopher_repetition.enabled = false;
        f.c4.enabled = false;
        f.fineweb.enabled = false;
        f.encoding.enabled = false;
        f
    }
}

/// The verdict on one document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    /// The text after the C4 filter removed lines, when it removed any.
    pub text: Option<String>,
    /// Every reason to drop the document (empty: keep it).
    pub reasons: Vec<String>,
}

/// The words of Chinese `text` (jieba's segmentation, white space dropped).
pub fn chinese_words(text: &str) -> Vec<&str> {
    static J: OnceLock<Jieba> = OnceLock::new();
    J.get_or_init(Jieba::new)
        .tokenize(text, TokenizeMode::Default, false)
        .into_iter()
        .map(|t| text::strip(t.word))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Runs `filters` on `text`: Gopher repetition and Gopher quality on the text as given,
/// then C4 (which may remove lines), then FineWeb on what C4 left. `chinese` selects the
/// rules that apply to Chinese (see the module documentation).
pub fn assess(filters: &Filters, text: &str, chinese: bool) -> Assessment {
    let mut out = Assessment::default();
    if filters.encoding.enabled {
        out.reasons.extend(filters.encoding.check(text));
    }
    if chinese {
        let r = &filters.gopher_repetition;
        if r.enabled {
            // The most frequent n-gram of a short Chinese text covers a large share of its
            // few characters even when nothing repeats: only repeats count here.
            let r = gopher::GopherRepetition {
                top_n_grams: Vec::new(),
                ..r.clone()
            };
            out.reasons
                .extend(r.check(text, &chinese_words(text), false));
        }
        return out;
    }
    let ws = words::words(text);
    if filters.gopher_repetition.enabled {
        out.reasons
            .extend(filters.gopher_repetition.check(text, &ws, false));
    }
    if filters.gopher_quality.enabled {
        out.reasons.extend(filters.gopher_quality.check(text, &ws));
    }
    let mut current: Option<String> = None;
    if filters.c4.enabled {
        let o = filters.c4.apply(text);
        out.reasons.extend(o.reasons);
        if o.text != text {
            current = Some(o.text);
        }
    }
    let f = &filters.fineweb;
    if f.enabled {
        match &current {
            Some(t) => out.reasons.extend(f.check(t, &words::words(t))),
            None => out.reasons.extend(f.check(text, &ws)),
        }
    }
    out.text = current;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Filters {
        Filters::default()
    }

    #[test]
    fn reasons_from_every_filter_and_c4_changes_the_text() {
        // C4 removes every line, so FineWeb sees an empty text.
        let a = assess(&all(), "Buy now\nBuy now\nBuy now", false);
        for r in [
            "dup_line_frac",
            "gopher_short_doc",
            "c4:too_few_sentences",
            "fineweb:empty",
        ] {
            assert!(a.reasons.contains(&r.to_string()), "{r}: {:?}", a.reasons);
        }
        let good = "The trial enrolled adults with high blood pressure in four centres. They \
            were followed for a year and seen every three months by the study nurses. Blood \
            pressure fell in both arms of the trial, more with the new drug than with the \
            placebo. Adverse events were rare and mostly mild. The drug was well tolerated by \
            most of the patients, and few of them stopped taking it.\nShare this page";
        let a = assess(&all(), good, false);
        assert!(a.reasons.is_empty(), "{:?}", a.reasons);
        assert_eq!(a.text.as_deref(), good.strip_suffix("\nShare this page"));
    }

    #[test]
    fn chinese_gets_only_the_repetition_rules() {
        let zh = "患者男性，六十五岁，因发热伴咳嗽三天入院。";
        let a = assess(&all(), zh, true);
        assert!(a.reasons.is_empty(), "{:?}", a.reasons);
        let rep = [zh; 4].join("\n");
        let a = assess(&all(), &rep, true);
        assert!(
            a.reasons.contains(&"dup_line_frac".to_string()),
            "{:?}",
            a.reasons
        );
        assert!(chinese_words(zh).len() > 5);
    }
}
