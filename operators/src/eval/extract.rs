//! The option a model's answer picks: the last `<answer>…</answer>` first, then phrases such
//! as "the answer is (C)" or "答案是C", then the text of exactly one option (several are no
//! answer); and whether the
//! response kept the format it was asked for.

use serde::Serialize;

/// How the option was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A letter inside the last `<answer>` block.
    AnswerTag,
    /// The text of one option inside the last `<answer>` block.
    AnswerTagText,
    /// A phrase naming a letter ("answer is (B)", "Answer: B", "答案：B").
    Phrase,
    /// The response is a letter alone ("B", "(B)", "B.").
    Letter,
    /// The text of exactly one option.
    OptionText,
    /// Nothing extracted: the option the model finds most likely (`answer_format: loglik`).
    Likelihood,
}

/// An extracted answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Extracted {
    /// The option's index.
    pub option: usize,
    /// How it was found.
    pub method: Method,
}

/// The text inside the last `<answer>…</answer>` of `response` (an unclosed last tag runs to
/// the end).
pub fn answer_block(response: &str) -> Option<&str> {
    let start = response.rfind("<answer>")? + "<answer>".len();
    let rest = &response[start..];
    Some(rest.find("</answer>").map_or(rest, |e| &rest[..e]).trim())
}

fn is_letter_at(s: &str, i: usize, n: usize) -> Option<usize> {
    let c = *s.as_bytes().get(i)?;
    let up = c.to_ascii_uppercase();
    if !up.is_ascii_uppercase() || (up - b'A') as usize >= n {
        return None;
    }
    // A letter standing alone: not inside a word.
    let before = s[..i].chars().next_back();
    let after = s[i + 1..].chars().next();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() && c.is_ascii());
    if word(before) || word(after) {
        return None;
    }
    // A lower-case letter counts only in brackets: "(b)", not the article "a".
    if c.is_ascii_lowercase() && !(before == Some('(') && after == Some(')')) {
        return None;
    }
    Some((up - b'A') as usize)
}

/// A letter alone: "C", "(C)", "C.", "C)", "**C**", "Option C".
fn lone_letter(s: &str, n: usize) -> Option<usize> {
    let t = s
        .trim()
        .trim_matches(|c: char| "*()[].:：。 \n\t".contains(c))
        .trim();
    let t = t
        .strip_prefix("Option ")
        .or_else(|| t.strip_prefix("option "))
        .or_else(|| t.strip_prefix("选项"))
        .unwrap_or(t)
        .trim();
    if t.len() == 1 {
        return is_letter_at(t, 0, n);
    }
    // "C. Nitrofurantoin" or "C) Nitrofurantoin": a letter, then a separator, then text.
    let b = t.as_bytes();
    if b.len() > 2 && (b[1] == b'.' || b[1] == b')' || b[1] == b':') && b[2] == b' ' {
        return is_letter_at(t, 0, n);
    }
    None
}

/// Phrases that name the chosen letter, English and Chinese; the last one in `s` wins.
fn phrase_letter(s: &str, n: usize) -> Option<usize> {
    const CUES: &[&str] = &[
        "answer is",
        "answer:",
        "answer would be",
        "correct option is",
        "correct choice is",
        "option is",
        "choice is",
        "answer is option",
        "答案是",
        "答案为",
        "答案：",
        "答案:",
        "选择",
        "正确选项是",
        "故选",
    ];
    let lower = s.to_lowercase();
    // Lower-casing keeps byte offsets only for ASCII; fall back to the original otherwise.
    let hay = if lower.len() == s.len() { &lower } else { s };
    let mut best: Option<(usize, usize)> = None;
    for cue in CUES {
        for (at, _) in hay.match_indices(cue) {
            let rest = &s[at + cue.len()..];
            let skipped = rest.len()
                - rest
                    .trim_start_matches(|c: char| c.is_whitespace() || "*:：(（[「\"'".contains(c))
                    .len();
            let rest = &rest[skipped..];
            let rest = rest
                .strip_prefix("option ")
                .or_else(|| rest.strip_prefix("Option "))
                .or_else(|| rest.strip_prefix("选项"))
                .unwrap_or(rest);
            let offset = s.len() - rest.len();
            if let Some(i) = is_letter_at(s, offset, n).or_else(|| {
                // "(c)" after the cue.
                (s[..offset].ends_with('(') || s[..offset].ends_with('（'))
                    .then(|| {
                        let c = s.as_bytes()[offset].to_ascii_uppercase();
                        (c.is_ascii_uppercase() && ((c - b'A') as usize) < n)
                            .then_some((c - b'A') as usize)
                    })
                    .flatten()
            }) {
                if best.is_none_or(|(p, _)| offset > p) {
                    best = Some((offset, i));
                }
            }
        }
    }
    best.map(|(_, i)| i)
}

fn normalise(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The one option whose text appears in `s` (an option inside another that appears too does
/// not count); none where several do.
fn option_text(s: &str, options: &[String]) -> Option<usize> {
    let hay = format!(" {} ", normalise(s));
    let mut found: Vec<(usize, usize, usize)> = vec![];
    for (i, o) in options.iter().enumerate() {
        let o = normalise(o);
        if o.is_empty() {
            continue;
        }
        if let Some(at) = hay.rfind(&format!(" {o} ")) {
            found.push((at, o.len(), i));
        }
    }
    // Drop options whose text lies inside another found option's text.
    let kept: Vec<&(usize, usize, usize)> = found
        .iter()
        .filter(|a| {
            !found.iter().any(|b| {
                b.2 != a.2
                    && b.1 > a.1
                    && normalise(&options[b.2]).contains(&normalise(&options[a.2]))
            })
        })
        .collect();
    match kept.as_slice() {
        [one] => Some(one.2),
        _ => None,
    }
}

/// The option `response` picks among `options`, if it picks one.
pub fn extract(response: &str, options: &[String]) -> Option<Extracted> {
    let n = options.len();
    let hit = |option, method| Some(Extracted { option, method });
    if let Some(block) = answer_block(response) {
        if let Some(i) = lone_letter(block, n) {
            return hit(i, Method::AnswerTag);
        }
        if let Some(i) = phrase_letter(block, n) {
            return hit(i, Method::AnswerTag);
        }
        if let Some(i) = option_text(block, options) {
            return hit(i, Method::AnswerTagText);
        }
        // A letter leading the block: "B, because …".
        if let Some(i) = is_letter_at(block, 0, n) {
            return hit(i, Method::AnswerTag);
        }
    }
    // Outside the reasoning: what follows `</think>`, if there is one.
    let tail = response
        .rfind("</think>")
        .map_or(response, |e| &response[e + "</think>".len()..]);
    if let Some(i) = lone_letter(tail, n) {
        return hit(i, Method::Letter);
    }
    if let Some(i) = phrase_letter(tail, n).or_else(|| phrase_letter(response, n)) {
        return hit(i, Method::Phrase);
    }
    if let Some(i) = option_text(tail, options) {
        return hit(i, Method::OptionText);
    }
    None
}

/// Whether `response` keeps the format asked for: `<think>…</think><answer>…</answer>` (each
/// once, in that order, non-empty, nothing outside but white space) under `think`; a letter
/// alone under `letter`.
pub fn follows_format(response: &str, think: bool, n_options: usize) -> bool {
    if !think {
        return lone_letter(response, n_options).is_some() && response.trim().len() <= 12;
    }
    let r = response.trim();
    let once = |tag: &str| r.matches(tag).count() == 1;
    if !(once("<think>") && once("</think>") && once("<answer>") && once("</answer>")) {
        return false;
    }
    let (t0, t1) = (r.find("<think>").unwrap(), r.find("</think>").unwrap());
    let (a0, a1) = (r.find("<answer>").unwrap(), r.find("</answer>").unwrap());
    t0 == 0
        && t1 > t0
        && a0 > t1
        && a1 > a0
        && r[a1 + "</answer>".len()..].trim().is_empty()
        && r[t1 + "</think>".len()..a0].trim().is_empty()
        && !r[t0 + "<think>".len()..t1].trim().is_empty()
        && !r[a0 + "<answer>".len()..a1].trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Vec<String> {
        ["Ampicillin", "Ceftriaxone", "Doxycycline", "Nitrofurantoin"]
            .map(String::from)
            .to_vec()
    }

    fn pick(r: &str) -> Option<(char, Method)> {
        extract(r, &opts()).map(|e| ((b'A' + e.option as u8) as char, e.method))
    }

    #[test]
    fn outputs_as_models_write_them() {
        use Method::*;
        let cases: &[(&str, Option<(char, Method)>)] = &[
            ("<think>\nUncomplicated cystitis in pregnancy; avoid doxycycline.\n</think>\n<answer>\nD. Nitrofurantoin\n</answer>", Some(('D', AnswerTag))),
            ("<think>Cystitis.</think><answer>The answer is (D).</answer>", Some(('D', AnswerTag))),
            ("<think>...</think>\n<answer>Nitrofurantoin</answer>", Some(('D', AnswerTagText))),
            ("<think>Ceftriaxone is for pyelonephritis, not this.</think><answer>nitrofurantoin, since it is safe in the second trimester</answer>", Some(('D', AnswerTagText))),
            ("<think>A first</think><answer>A</answer> wait <answer>B</answer>", Some(('B', AnswerTag))),
            ("<answer>**C**</answer>", Some(('C', AnswerTag))),
            ("The patient has cystitis. The answer is (B).", Some(('B', Phrase))),
            ("Answer: C", Some(('C', Phrase))),
            ("Therefore, the correct option is D: Nitrofurantoin.", Some(('D', Phrase))),
            ("So the answer is a.", None),
            ("So the answer is (a).", Some(('A', Phrase))),
            ("B", Some(('B', Letter))),
            ("(C)", Some(('C', Letter))),
            ("D.", Some(('D', Letter))),
            ("该患者为妊娠期膀胱炎。答案是D", Some(('D', Phrase))),
            ("答案：B", Some(('B', Phrase))),
            ("I would treat with nitrofurantoin.", Some(('D', OptionText))),
            ("A urinary tract infection in a pregnant woman.", None),
            ("I am not sure.", None),
            ("<think>Between ampicillin and nitrofurantoin", None),
            ("The answer is E.", None),
        ];
        for (r, want) in cases {
            assert_eq!(pick(r), *want, "{r:?}");
        }
    }

    #[test]
    fn an_option_inside_another_is_not_picked_for_it() {
        let o: Vec<String> = ["Hypertension", "Pulmonary hypertension", "Asthma"]
            .map(String::from)
            .to_vec();
        let e = extract("This is pulmonary hypertension.", &o).unwrap();
        assert_eq!(e.option, 1);
    }

    #[test]
    fn format_adherence() {
        assert!(follows_format(
            "<think>\nx\n</think>\n<answer>\nB\n</answer>\n",
            true,
            4
        ));
        assert!(!follows_format("<think>x</think>B", true, 4));
        assert!(!follows_format(
            "<think></think><answer>B</answer>",
            true,
            4
        ));
        assert!(!follows_format(
            "Sure! <think>x</think><answer>B</answer>",
            true,
            4
        ));
        assert!(!follows_format(
            "<think>x</think><answer>B</answer><answer>C</answer>",
            true,
            4
        ));
        assert!(follows_format("B", false, 4));
        assert!(follows_format(" (B) ", false, 4));
        assert!(!follows_format("The answer is B", false, 4));
        assert!(!follows_format("E", false, 4));
    }
}
