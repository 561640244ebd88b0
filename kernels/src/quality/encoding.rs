//! Encoding damage: text decoded with the wrong character set (UTF-8 read as Latin-1 or
//! Windows-1252, "mojibake": `Ã©` for `é`, `â€™` for `’`, `æ‚£è€…` for `患者`), replacement
//! characters (`�`, where a decoder gave up) and C1 control characters. None of the web
//! filters notice it: mojibake is made of letters, so it passes the alphabetic-word and word
//! length rules.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Thresholds of the encoding filter; `null` turns a single rule off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Encoding {
    /// Run this filter.
    pub enabled: bool,
    /// Greatest fraction of the text's non-space characters that are mojibake sequences,
    /// replacement characters or C1 controls (`encoding:mojibake`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_mojibake_ratio: Option<f64>,
}

impl Default for Encoding {
    /// Off, as in datatrove's web filters; the literature and textbook presets turn it on.
    fn default() -> Self {
        Encoding {
            enabled: false,
            max_mojibake_ratio: Some(0.01),
        }
    }
}

/// Whether `c` is what a UTF-8 continuation byte (0x80–0xBF) becomes when read as Latin-1 or
/// Windows-1252.
fn is_continuation(c: char) -> bool {
    matches!(c as u32, 0x80..=0xBF)
        || matches!(
            c,
            '€' | '‚'
                | 'ƒ'
                | '„'
                | '…'
                | '†'
                | '‡'
                | 'ˆ'
                | '‰'
                | 'Š'
                | '‹'
                | 'Œ'
                | 'Ž'
                | '\u{2018}'
                | '\u{2019}'
                | '\u{201C}'
                | '\u{201D}'
                | '•'
                | '–'
                | '—'
                | '˜'
                | '™'
                | 'š'
                | '›'
                | 'œ'
                | 'ž'
                | 'Ÿ'
        )
}

/// How many continuation bytes follow a UTF-8 lead byte read as Latin-1 (`Â`–`ß`: one,
/// `à`–`ï`: two, `ð`–`ô`: three); `None` for other characters.
fn continuations_after(c: char) -> Option<usize> {
    match c as u32 {
        0xC2..=0xDF => Some(1),
        0xE0..=0xEF => Some(2),
        0xF0..=0xF4 => Some(3),
        _ => None,
    }
}

/// Characters of `text` that are part of mojibake sequences, replacement characters or C1
/// controls, and its non-space characters.
pub fn mojibake_chars(text: &str) -> (usize, usize) {
    let chars: Vec<char> = text.chars().collect();
    let (mut bad, mut total, mut i) = (0usize, 0usize, 0usize);
    while i < chars.len() {
        let c = chars[i];
        if !c.is_whitespace() {
            total += 1;
        }
        if c == '\u{FFFD}' || matches!(c as u32, 0x80..=0x9F) {
            bad += 1;
            i += 1;
            continue;
        }
        if let Some(k) = continuations_after(c) {
            let seq = &chars[i + 1..(i + 1 + k).min(chars.len())];
            // Only whole sequences: an accented letter before a closing quote or a degree
            // sign is ordinary text.
            let run = seq.iter().take_while(|&&x| is_continuation(x)).count();
            if run == k {
                bad += 1 + run;
                total += run;
                i += 1 + run;
                continue;
            }
        }
        i += 1;
    }
    (bad, total)
}

impl Encoding {
    /// Every rule `text` fails.
    pub fn check(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = self.max_mojibake_ratio {
            let (bad, total) = mojibake_chars(text);
            if total > 0 && bad as f64 / total as f64 > m {
                out.push("encoding:mojibake".into());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `s` encoded as UTF-8 and decoded as Windows-1252 (bytes it leaves undefined as the
    /// Latin-1 C1 controls, as Python's `errors="replace"`-free decoders in the wild do).
    fn mojibake(s: &str) -> String {
        let (d, _, _) = encoding_rs::WINDOWS_1252.decode(s.as_bytes());
        d.into_owned()
    }

    #[test]
    fn finds_mojibake_and_leaves_clean_text_alone() {
        let zh = mojibake("患者男性，六十五岁，因发热伴咳嗽三天入院。");
        let (bad, total) = mojibake_chars(&zh);
        assert!(bad as f64 / total as f64 > 0.9, "{zh}: {bad}/{total}");
        let en = mojibake("The patient’s “fever” resolved — café staff, naïve T cells, 5 µg.");
        assert!(mojibake_chars(&en).0 >= 12, "{en}");
        for clean in [
            "The patient’s “fever” resolved — café staff, naïve T cells, 5 µg ± 2 °C.",
            "Über die Behandlung von Patienten mit Diabetes: à la carte, ça va, déjà vu.",
            "患者男性，六十五岁，因发热伴咳嗽三天入院。",
            "",
        ] {
            assert_eq!(mojibake_chars(clean).0, 0, "{clean}");
        }
        let e = Encoding {
            enabled: true,
            ..Encoding::default()
        };
        assert_eq!(e.check(&zh), ["encoding:mojibake"]);
        assert!(e.check("Replacement \u{FFFD}\u{FFFD}\u{FFFD} chars.").len() == 1);
        assert!(e.check("A clean sentence about insulin dosing.").is_empty());
    }
}
