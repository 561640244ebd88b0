//! PII scrubbing: e-mail addresses, phone numbers, IP addresses, national ID numbers (China's
//! 18-digit resident ID, checked with its ISO 7064 MOD 11-2 check digit and birth date; US
//! social security numbers) and medical record numbers (by their label), each replaced by a
//! tag such as `<EMAIL>`.

use regex::Regex;
use std::sync::OnceLock;

/// Kinds of personal data found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// An IPv4 or IPv6 address.
    Ip,
    /// A national ID number.
    NationalId,
    /// A medical record number.
    MedicalRecord,
}

impl PiiKind {
    /// The tag that replaces it.
    pub fn tag(self) -> &'static str {
        match self {
            PiiKind::Email => "<EMAIL>",
            PiiKind::Phone => "<PHONE>",
            PiiKind::Ip => "<IP>",
            PiiKind::NationalId => "<ID>",
            PiiKind::MedicalRecord => "<MRN>",
        }
    }

    /// Its name: `email`, `phone`, `ip`, `national_id`, `medical_record`.
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Ip => "ip",
            PiiKind::NationalId => "national_id",
            PiiKind::MedicalRecord => "medical_record",
        }
    }
}

struct Patterns {
    list: Vec<(PiiKind, Regex)>,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("valid PII pattern");
        Patterns {
            // Order matters: earlier kinds claim their text first (an ID number is not a phone).
            list: vec![
                (PiiKind::Email, re(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b")),
                (
                    PiiKind::MedicalRecord,
                    re(r"(?i)\b(?:MRN|medical record(?: number| no\.?)?|病历号|住院号)\s*[:：#]?\s*[A-Z]{0,3}\d{5,12}\b"),
                ),
                // Candidates; the check digit and birth date are verified in code.
                (PiiKind::NationalId, re(r"\b\d{17}[\dXx]\b")),
                (PiiKind::NationalId, re(r"\b\d{3}-\d{2}-\d{4}\b")),
                (
                    PiiKind::Ip,
                    re(r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b"),
                ),
                (PiiKind::Ip, re(r"(?i)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b")),
                (
                    PiiKind::Phone,
                    re(r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\b\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}\b"),
                ),
                (PiiKind::Phone, re(r"(?:\+86[ -]?)?\b1[3-9]\d{9}\b")),
            ],
        }
    })
}

/// Whether an 18-character string is a valid Chinese resident ID: a plausible birth date
/// (characters 7–14) and the ISO 7064 MOD 11-2 check character.
pub fn valid_cn_resident_id(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    if b[17].to_ascii_uppercase() != CHECK[(sum % 11) as usize] {
        return false;
    }
    let num = |r: std::ops::Range<usize>| id[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    (1900..=2100).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// What scrubbing found: (kind, byte range in the original text).
pub type Found = Vec<(PiiKind, std::ops::Range<usize>)>;

/// Finds personal data in `text`, leftmost first, without overlaps.
pub fn find(text: &str) -> Found {
    let mut found: Found = Vec::new();
    for (kind, re) in &patterns().list {
        for m in re.find_iter(text) {
            let r = m.range();
            if *kind == PiiKind::NationalId && m.len() == 18 && !valid_cn_resident_id(m.as_str()) {
                continue;
            }
            if found
                .iter()
                .any(|(_, f)| f.start < r.end && r.start < f.end)
            {
                continue;
            }
            found.push((*kind, r));
        }
    }
    found.sort_by_key(|(_, r)| r.start);
    found
}

/// `text` with every piece of personal data replaced by its kind's tag, and what was found.
pub fn scrub(text: &str) -> (String, Found) {
    let found = find(text);
    if found.is_empty() {
        return (text.to_string(), found);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (kind, r) in &found {
        out.push_str(&text[at..r.start]);
        out.push_str(kind.tag());
        at = r.end;
    }
    out.push_str(&text[at..]);
    (out, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_ids_are_checked() {
        // A valid ID (check digit X) and the same with a wrong check digit.
        assert!(valid_cn_resident_id("11010519491231002X"));
        assert!(valid_cn_resident_id("11010519491231002x"));
        assert!(!valid_cn_resident_id("110105194912310021"));
        // Valid checksum is not enough: month 13.
        assert!(!valid_cn_resident_id("110105194913310021"));
    }

    #[test]
    fn scrubs_each_kind_and_leaves_clinical_numbers() {
        let text = "Contact Dr. Li at li.wei@hospital.cn or +1 (415) 555-0132; 手机 13812345678. \
                    Server 192.168.10.254 logged MRN: 00123456. 身份证 11010519491231002X, \
                    SSN 123-45-6789. BP 140/90 mmHg, HbA1c 7.2%, dose 500 mg, year 2024, \
                    invalid id 110105194912310021.";
        let (out, found) = scrub(text);
        let kinds: Vec<&str> = found.iter().map(|(k, _)| k.name()).collect();
        assert_eq!(
            kinds,
            [
                "email",
                "phone",
                "phone",
                "ip",
                "medical_record",
                "national_id",
                "national_id"
            ],
            "{out}"
        );
        for leaked in [
            "li.wei@",
            "555-0132",
            "13812345678",
            "192.168",
            "00123456",
            "1002X",
            "6789",
        ] {
            assert!(!out.contains(leaked), "{leaked} leaked: {out}");
        }
        for kept in ["140/90", "7.2%", "500 mg", "2024", "110105194912310021"] {
            assert!(out.contains(kept), "{kept} lost: {out}");
        }
        assert!(out.contains("<EMAIL>") && out.contains("<MRN>") && out.contains("<ID>"));
    }

    #[test]
    fn text_without_pii_is_unchanged() {
        let t = "Metformin 500 mg twice daily; eGFR 45 mL/min/1.73 m²; follow-up in 3 months.";
        assert_eq!(scrub(t), (t.to_string(), vec![]));
    }
}
