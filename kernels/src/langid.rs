//! Language identification of a document, with ISO 639-1 codes (`en`, `zh`, …) where one
//! exists and ISO 639-3 otherwise. Trigram models (whatlang) for alphabetic scripts; text
//! that is mostly Han characters is Chinese outright (whatlang tells Mandarin from Japanese by
//! kana, which Chinese text lacks).

/// A detected language.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Language {
    /// ISO 639-1 code where one exists (`en`, `zh`, `de`), else ISO 639-3.
    pub code: &'static str,
    /// Confidence in [0, 1].
    pub confidence: f64,
}

/// The code used when no language can be told (empty text, digits and punctuation only).
pub const UNKNOWN: &str = "und";

fn iso639_1(l: whatlang::Lang) -> &'static str {
    use whatlang::Lang::*;
    match l {
        Eng => "en",
        Cmn => "zh",
        Rus => "ru",
        Spa => "es",
        Por => "pt",
        Ita => "it",
        Fra => "fr",
        Deu => "de",
        Ukr => "uk",
        Ara => "ar",
        Hin => "hi",
        Jpn => "ja",
        Heb => "he",
        Pol => "pl",
        Kor => "ko",
        Nob => "nb",
        Dan => "da",
        Swe => "sv",
        Fin => "fi",
        Tur => "tr",
        Nld => "nl",
        Hun => "hu",
        Ces => "cs",
        Ell => "el",
        Bul => "bg",
        Ron => "ro",
        Vie => "vi",
        Tha => "th",
        Ind => "id",
        Pes => "fa",
        Cat => "ca",
        Slk => "sk",
        Hrv => "hr",
        Srp => "sr",
        Lat => "la",
        other => other.code(),
    }
}

/// Whether `c` is a Han (Chinese) character: the unified ideographs, their extensions A–F and
/// the compatibility ideographs.
pub fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2EBEF | 0xF900..=0xFAFF)
}

fn is_kana(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF)
}

/// How many characters of a text are looked at: trigram statistics settle well before this,
/// and detection costs time in proportion (it was the largest cost of reading text layers).
const SAMPLE_CHARS: usize = 1000;

/// Identifies the language of `text`, looking at no more than its first 1,000 characters.
pub fn detect(text: &str) -> Language {
    let sample: String = text.chars().take(SAMPLE_CHARS).collect();
    let (mut han, mut kana, mut letters) = (0usize, 0usize, 0usize);
    for c in sample.chars() {
        if is_han(c) {
            han += 1;
        } else if is_kana(c) {
            kana += 1;
        }
        if c.is_alphabetic() {
            letters += 1;
        }
    }
    if letters == 0 {
        return Language {
            code: UNKNOWN,
            confidence: 0.0,
        };
    }
    if han * 2 >= letters && kana * 20 < han {
        return Language {
            code: "zh",
            confidence: han as f64 / letters as f64,
        };
    }
    match whatlang::detect(&sample) {
        Some(info) => Language {
            code: iso639_1(info.lang()),
            confidence: info.confidence(),
        },
        None => Language {
            code: UNKNOWN,
            confidence: 0.0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_chinese_german_and_nothing() {
        let en = detect("The patient presented with fever and a productive cough for three days, and was treated with antibiotics.");
        assert_eq!(en.code, "en");
        assert!(en.confidence > 0.5);
        assert_eq!(
            detect("患者男性，65岁，因发热伴咳嗽三天入院，既往有高血压病史。").code,
            "zh"
        );
        assert_eq!(
            detect("Der Patient wurde mit Fieber und Husten in das Krankenhaus eingeliefert und behandelt.").code,
            "de"
        );
        assert_eq!(detect("12345 -- 678 !!").code, UNKNOWN);
        assert_eq!(detect("").code, UNKNOWN);
    }

    #[test]
    fn japanese_is_not_chinese() {
        assert_eq!(
            detect("患者は発熱と咳のために入院しました。治療を受けています。").code,
            "ja"
        );
    }
}
