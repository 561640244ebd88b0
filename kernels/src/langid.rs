//! Language identification of a document, with ISO 639-1 codes (`en`, `zh`, …) where one
//! exists and ISO 639-3 otherwise. Trigram models (whatlang) for alphabetic scripts; text
//! that is mostly Han characters is Chinese outright (whatlang tells Mandarin from Japanese by
//! kana, which Chinese text lacks).
//!
//! **English medical text.** Drug names, abbreviations, units and numbers carry the trigrams
//! of Latin, French or Italian (`-ine`, `-ol`, `-um`, `mg`), and whatlang tags English
//! medication lists and lab-heavy notes as those. When whatlang names another Latin-script
//! language, the text's function words decide: English is kept when at least 5% of its
//! words are English function words and they outnumber the named language's own twice over
//! (French, German, Spanish, Italian, Portuguese, Dutch and Latin have lists; a language
//! without one keeps whatlang's verdict only if English function words are under 5%). A text
//! with no words of any language (a bare list of lab values) keeps whatlang's guess.

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

/// Frequent function words by language: English, and the Latin-script languages whatlang
/// mistakes English medical text for.
const FUNCTION_WORDS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "the", "of", "and", "to", "in", "with", "was", "were", "is", "are", "for", "on", "by",
            "a", "an", "at", "or", "as", "from", "that", "this", "be", "been", "after", "not",
            "than", "had", "has", "have", "which", "daily", "twice", "then", "plus",
        ],
    ),
    (
        "fr",
        &[
            "le", "la", "les", "de", "des", "du", "et", "un", "une", "est", "sont", "pour", "dans",
            "sur", "par", "au", "aux", "avec", "que", "qui", "ne", "pas", "il", "elle",
        ],
    ),
    (
        "de",
        &[
            "der", "die", "das", "und", "ist", "sind", "mit", "von", "den", "dem", "des", "ein",
            "eine", "zu", "im", "auf", "für", "nicht", "bei", "wurde", "wurden", "sich",
        ],
    ),
    (
        "es",
        &[
            "el", "la", "los", "las", "de", "del", "y", "en", "un", "una", "es", "son", "para",
            "con", "por", "que", "se", "al", "fue", "lo",
        ],
    ),
    (
        "it",
        &[
            "il", "lo", "la", "gli", "le", "di", "del", "della", "e", "è", "un", "una", "per",
            "con", "che", "sono", "non", "al", "nel", "si",
        ],
    ),
    (
        "pt",
        &[
            "o", "os", "as", "de", "do", "da", "dos", "das", "e", "em", "um", "uma", "é", "para",
            "com", "por", "que", "não", "foi", "se",
        ],
    ),
    (
        "nl",
        &[
            "de", "het", "een", "en", "van", "is", "zijn", "met", "op", "voor", "dat", "niet",
            "werd", "te", "bij",
        ],
    ),
    (
        "la",
        &[
            "et", "est", "non", "ad", "cum", "ex", "quod", "sed", "ut", "sunt", "esse", "enim",
        ],
    ),
];

/// The share of `text`'s words (lower-cased runs of letters) in the function word list of
/// `lang`, and whether there is such a list.
fn function_word_share(text: &str, lang: &str) -> Option<f64> {
    let list = FUNCTION_WORDS.iter().find(|(l, _)| *l == lang)?.1;
    let (mut hits, mut words) = (0usize, 0usize);
    for w in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
    {
        words += 1;
        let w = w.to_lowercase();
        if list.contains(&w.as_str()) {
            hits += 1;
        }
    }
    Some(if words == 0 {
        0.0
    } else {
        hits as f64 / words as f64
    })
}

/// Whether a text whatlang tagged `lang` (Latin script, not English) is English by its
/// function words; with the confidence to report.
fn english_by_function_words(text: &str, lang: &str) -> Option<f64> {
    let en = function_word_share(text, "en")?;
    let other = function_word_share(text, lang).unwrap_or(0.0);
    (en >= 0.05 && en > 2.0 * other).then(|| (en * 8.0).min(1.0))
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
        Some(info) => {
            let code = iso639_1(info.lang());
            if code != "en" && info.script() == whatlang::Script::Latin {
                if let Some(confidence) = english_by_function_words(&sample, code) {
                    return Language {
                        code: "en",
                        confidence,
                    };
                }
            }
            Language {
                code,
                confidence: info.confidence(),
            }
        }
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

    /// English medical text heavy in drug names, doses, abbreviations and numbers, which
    /// whatlang's trigrams alone tag as other languages, and real text in those languages.
    #[test]
    fn drug_heavy_english_is_english() {
        let english = [
            "Metformin 1000 mg bid, sitagliptin 100 mg qd, glimepiride 2 mg, atorvastatin 40 mg qhs, lisinopril 20 mg, amlodipine 5 mg, aspirin 81 mg and pantoprazole 40 mg were continued.",
            "Amoxicillin-clavulanate 875/125 mg PO q12h, then ceftriaxone 2 g IV q24h plus azithromycin 500 mg IV; vancomycin 15 mg/kg IV q12h and piperacillin-tazobactam 4.5 g IV q6h.",
            "Na 134, K 5.6, Cl 101, HCO3 18, BUN 42, Cr 2.1 and glucose 312 on admission; HbA1c was 9.4%, ALT 88, AST 102, INR 1.8, troponin I 0.45 ng/mL and BNP 1,240 pg/mL.",
            "Levothyroxine 75 mcg, furosemide 40 mg, spironolactone 25 mg, carvedilol 12.5 mg, digoxin 0.125 mg and warfarin 5 mg with INR monitoring.",
            "Ondansetron 4 mg IV, metoclopramide 10 mg, dexamethasone 8 mg, fosaprepitant 150 mg, olanzapine 5 mg and lorazepam 0.5 mg for nausea on cisplatin.",
        ];
        for t in english {
            let l = detect(t);
            assert_eq!(l.code, "en", "{t}: {l:?}");
        }
        for (t, code) in [
            ("Le patient a été hospitalisé pour une fièvre et une toux, et il a reçu de l'amoxicilline pendant sept jours.", "fr"),
            ("Il paziente è stato ricoverato per febbre e tosse, e ha ricevuto amoxicillina per sette giorni.", "it"),
            ("El paciente fue ingresado por fiebre y tos, y recibió amoxicilina durante siete días.", "es"),
            ("Der Patient wurde mit Fieber und Husten aufgenommen und erhielt sieben Tage lang Amoxicillin.", "de"),
        ] {
            assert_eq!(detect(t).code, code, "{t}");
        }
    }

    #[test]
    fn japanese_is_not_chinese() {
        assert_eq!(
            detect("患者は発熱と咳のために入院しました。治療を受けています。").code,
            "ja"
        );
    }
}
