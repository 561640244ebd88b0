//! The English word split the quality rules count with: the rules of spaCy's English
//! tokenizer (the tokenizer datatrove's `split_into_words(text, "eng")` uses), reimplemented
//! so that word counts, lengths and n-grams come out the same.
//!
//! The text is cut at white space; each piece is then looked up among the special cases
//! (`en_specials.tsv`: contractions such as "don't" → "do" "n't", abbreviations such as
//! "e.g." and "Dr." that keep their period, emoticons), and otherwise peeled: prefixes
//! (opening punctuation, quotes, currency signs, symbols, `+` before a non-digit, runs of
//! periods) and suffixes (closing punctuation, quotes, `'s`, units and currency after a
//! number, a period after a lower-case letter, digit or punctuation, or after two
//! capitals) come off one at a time, the special cases being checked again after each
//! step. What remains is kept whole when it is a URL, and otherwise split at infixes:
//! runs of periods, symbols, `+ - * ^` between digits, a period between a lower-case and an
//! upper-case letter, a comma between letters, hyphens (`-`, `–`, `—`, `--`, `~`, …) after a
//! letter or digit and before a letter, and `: < > = /` before a letter.
//!
//! The special-case table is spaCy's English exception list (MIT licence, © Explosion AI),
//! regenerated with `bench/quality_datatrove.py specials`.

use super::tables::{ALPHA, ICONS};
use super::text::{is_space, is_unicode_punct};
use regex::Regex;
use std::collections::HashMap;
use std::sync::OnceLock;

fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let u = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < u {
                std::cmp::Ordering::Less
            } else if lo > u {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn is_alpha(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    in_ranges(ALPHA, c)
}

fn is_lower(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_lowercase();
    }
    is_alpha(c) && (c.is_lowercase() || !c.is_uppercase())
}

fn is_upper(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_uppercase();
    }
    is_alpha(c) && (c.is_uppercase() || !c.is_lowercase())
}

fn is_icon(c: char) -> bool {
    !c.is_ascii() && in_ranges(ICONS, c)
}

const QUOTES: &str = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧";
const PUNCT: &str = "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪";
const CURRENCY: &str = "$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿";
const UNITS: &[&str] = &[
    "km",
    "km²",
    "km³",
    "m",
    "m²",
    "m³",
    "dm",
    "dm²",
    "dm³",
    "cm",
    "cm²",
    "cm³",
    "mm",
    "mm²",
    "mm³",
    "ha",
    "µm",
    "nm",
    "yd",
    "in",
    "ft",
    "kg",
    "g",
    "mg",
    "µg",
    "t",
    "lb",
    "oz",
    "m/s",
    "km/h",
    "kmh",
    "mph",
    "hPa",
    "Pa",
    "mbar",
    "mb",
    "MB",
    "kb",
    "KB",
    "gb",
    "GB",
    "tb",
    "TB",
    "T",
    "G",
    "M",
    "K",
    "%",
    "км",
    "км²",
    "км³",
    "м",
    "м²",
    "м³",
    "дм",
    "дм²",
    "дм³",
    "см",
    "см²",
    "см³",
    "мм",
    "мм²",
    "мм³",
    "нм",
    "кг",
    "г",
    "мг",
    "м/с",
    "км/ч",
    "кПа",
    "Па",
    "мбар",
    "Кб",
    "КБ",
    "кб",
    "Мб",
    "МБ",
    "мб",
    "Гб",
    "ГБ",
    "гб",
    "Тб",
    "ТБ",
    "тбكم",
    "كم²",
    "كم³",
    "م",
    "م²",
    "م³",
    "سم",
    "سم²",
    "سم³",
    "مم",
    "مم²",
    "مم³",
    "كم",
    "غرام",
    "جرام",
    "جم",
    "كغ",
    "ملغ",
    "كوب",
    "اكواب",
];
const CURRENCY_WORDS: &[&str] = &["US$", "C$", "A$"];

fn is_quote(c: char) -> bool {
    QUOTES.contains(c)
}

/// Characters that may precede a period that comes off as a suffix.
fn before_suffix_period(c: char) -> bool {
    c.is_ascii_digit()
        || is_lower(c)
        || "%²-+|(?:)!".contains(c)
        || PUNCT.contains(c)
        || is_quote(c)
}

fn specials() -> &'static HashMap<&'static str, Vec<&'static str>> {
    static S: OnceLock<HashMap<&'static str, Vec<&'static str>>> = OnceLock::new();
    S.get_or_init(|| {
        include_str!("en_specials.tsv")
            .lines()
            .filter_map(|l| {
                let mut it = l.split('\t');
                let key = it.next()?;
                Some((key, it.collect()))
            })
            .collect()
    })
}

fn url_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        let host = r"[A-Za-z0-9\x{a1}-\x{ffff}]";
        Regex::new(&format!(
            r"^(?:[\w+\-.]{{2,}}://)?(?:\S+(?::\S*)?@)?(?:(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{{1,2}}|2[0-4]\d|25[0-5])){{2}}\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4])|(?:(?:{host}[A-Za-z0-9\x{{a1}}-\x{{ffff}}_-]{{0,62}})?{host}\.)+\p{{Ll}}{{2,63}})(?::\d{{2,5}})?(?:[/?#]\S*)?$"
        ))
        .expect("valid URL pattern")
    })
}

/// Whether `s` is a URL (kept whole); private-network IP addresses are not excluded.
fn is_url(s: &str) -> bool {
    s.contains('.') && url_re().is_match(s)
}

/// Byte length of the prefix that comes off `s`, or 0.
fn prefix_len(s: &str) -> usize {
    let mut cs = s.chars();
    let Some(c0) = cs.next() else { return 0 };
    let c1 = cs.next();
    if c0 == '.' {
        if c1 == Some('.') {
            return s.bytes().take_while(|&b| b == b'.').count();
        }
        return 0;
    }
    if c0 == '+' {
        return if c1.is_some_and(|c| c.is_ascii_digit()) {
            0
        } else {
            1
        };
    }
    if "§%=—–".contains(c0) || PUNCT.contains(c0) || is_quote(c0) {
        return c0.len_utf8();
    }
    for w in CURRENCY_WORDS {
        if s.starts_with(w) {
            return w.len();
        }
    }
    if CURRENCY.contains(c0) || is_icon(c0) {
        return c0.len_utf8();
    }
    0
}

/// Whether `rest` (a tail of a word, preceded by `before`) comes off as one suffix.
fn is_suffix(rest: &str, before: Option<char>, before2: Option<char>) -> bool {
    let mut cs = rest.chars();
    let Some(c0) = cs.next() else { return false };
    let single = cs.next().is_none();
    if single && (PUNCT.contains(c0) || is_quote(c0) || is_icon(c0) || c0 == '—' || c0 == '–') {
        return true;
    }
    if rest == "……" || matches!(rest, "'s" | "'S" | "’s" | "’S") {
        return true;
    }
    if rest.len() >= 2 && rest.bytes().all(|b| b == b'.') {
        return true;
    }
    let after_digit = before.is_some_and(|c| c.is_ascii_digit());
    if after_digit
        && (rest == "+"
            || UNITS.contains(&rest)
            || CURRENCY_WORDS.contains(&rest)
            || (single && CURRENCY.contains(c0)))
    {
        return true;
    }
    if rest == "." {
        if let Some(b) = before {
            if before_suffix_period(b) || (is_upper(b) && before2.is_some_and(is_upper)) {
                return true;
            }
        }
    }
    false
}

/// Byte length of the suffix that comes off `s`, or 0: the leftmost position from which
/// the rest of `s` is one suffix (look-behind sees only `s`).
fn suffix_len(s: &str) -> usize {
    // A run of periods can be long; every other suffix is at most 5 characters.
    let dots = s.bytes().rev().take_while(|&b| b == b'.').count();
    let mut starts: Vec<usize> = s.char_indices().rev().take(5).map(|(i, _)| i).collect();
    if dots >= 2 {
        starts.push(s.len() - dots);
    }
    starts.sort_unstable();
    for i in starts {
        let mut back = s[..i].chars().rev();
        let (before, before2) = (back.next(), back.next());
        if is_suffix(&s[i..], before, before2) {
            return s.len() - i;
        }
    }
    0
}

/// Whether `c` (between `prev` and `next`) is a one-character infix: an ellipsis or symbol,
/// `+ - * ^` between digits, a period between a lower-case and an upper-case letter, or a
/// comma between letters.
fn one_char_infix(c: char, prev: Option<char>, next: Option<char>) -> bool {
    (c == '…' || is_icon(c))
        || (prev.is_some_and(|p| p.is_ascii_digit())
            && "+-*^".contains(c)
            && next.is_some_and(|x| x.is_ascii_digit() || x == '-'))
        || (c == '.'
            && prev.is_some_and(|p| is_lower(p) || is_quote(p))
            && next.is_some_and(|x| is_upper(x) || is_quote(x)))
        || (c == ',' && prev.is_some_and(is_alpha) && next.is_some_and(is_alpha))
}

/// Infix matches in `s`: (start, end) byte ranges, left to right, non-overlapping.
fn infixes(s: &str) -> Vec<(usize, usize)> {
    let cs: Vec<(usize, char)> = s.char_indices().collect();
    let n = cs.len();
    let at = |k: usize| cs.get(k).map(|&(_, c)| c);
    let byte = |k: usize| if k < n { cs[k].0 } else { s.len() };
    let mut out = Vec::new();
    let mut k = 0;
    while k < n {
        let c = cs[k].1;
        let prev = if k > 0 { at(k - 1) } else { None };
        let next = at(k + 1);
        let mut m: Option<usize> = None; // end (char index) of a match at k
        if c == '.' && next == Some('.') {
            let mut e = k;
            while at(e) == Some('.') {
                e += 1;
            }
            m = Some(e);
        } else if one_char_infix(c, prev, next) {
            m = Some(k + 1);
        } else if prev.is_some_and(|p| is_alpha(p) || p.is_ascii_digit()) {
            // Hyphens, in the order they are tried, each before a letter.
            for h in ["-", "–", "—", "--", "---", "——", "~"] {
                let hl = h.chars().count();
                if s[cs[k].0..].starts_with(h) && at(k + hl).is_some_and(is_alpha) {
                    m = Some(k + hl);
                    break;
                }
            }
            if m.is_none() && ":<>=/".contains(c) && next.is_some_and(is_alpha) {
                m = Some(k + 1);
            }
        }
        match m {
            Some(e) => {
                out.push((byte(k), byte(e)));
                k = e;
            }
            None => k += 1,
        }
    }
    out
}

fn push_special<'a>(out: &mut Vec<&'a str>, s: &'a str, pieces: &[&str]) {
    let mut at = 0;
    for p in pieces {
        let end = (at + p.len()).min(s.len());
        out.push(&s[at..end]);
        at = end;
    }
}

fn tokenize_piece<'a>(s: &'a str, out: &mut Vec<&'a str>) {
    let from = out.len();
    affixes(s, out, true);
    if out.len() - from >= 2 {
        merge_specials(s, out, from);
    }
}

/// Splits one piece without white space by the affix and infix rules; with `specials`, the
/// special cases are applied as pieces are peeled.
fn affixes<'a>(s: &'a str, out: &mut Vec<&'a str>, with_specials: bool) {
    let all = specials();
    let none = HashMap::new();
    let sp = if with_specials { all } else { &none };
    if let Some(p) = sp.get(s) {
        push_special(out, s, p);
        return;
    }
    let mut prefixes: Vec<&'a str> = Vec::new();
    let mut suffixes: Vec<&'a str> = Vec::new();
    let mut string = s;
    let mut last = usize::MAX;
    while !string.is_empty() && string.len() != last {
        if sp.contains_key(string) {
            break;
        }
        last = string.len();
        let pre = prefix_len(string);
        if pre != 0 {
            let minus = &string[pre..];
            if !minus.is_empty() && sp.contains_key(minus) {
                prefixes.push(&string[..pre]);
                string = minus;
                break;
            }
        }
        let suf = suffix_len(&string[pre..]);
        if suf != 0 {
            let minus = &string[..string.len() - suf];
            if !minus.is_empty() && sp.contains_key(minus) {
                suffixes.push(&string[string.len() - suf..]);
                string = minus;
                break;
            }
        }
        if pre != 0 && suf != 0 && pre + suf <= string.len() {
            prefixes.push(&string[..pre]);
            suffixes.push(&string[string.len() - suf..]);
            string = &string[pre..string.len() - suf];
        } else if pre != 0 {
            prefixes.push(&string[..pre]);
            string = &string[pre..];
        } else if suf != 0 {
            suffixes.push(&string[string.len() - suf..]);
            string = &string[..string.len() - suf];
        }
        if !string.is_empty() && sp.contains_key(string) {
            break;
        }
    }
    out.extend(prefixes);
    if !string.is_empty() {
        if let Some(p) = sp.get(string) {
            push_special(out, string, p);
        } else {
            let found = infixes(string);
            if found.is_empty() || is_url(string) {
                out.push(string);
            } else {
                let mut start = 0;
                for (a, b) in found {
                    if a == 0 {
                        continue;
                    }
                    if a != start {
                        out.push(&string[start..a]);
                    }
                    out.push(&string[a..b]);
                    start = b;
                }
                if start < string.len() {
                    out.push(&string[start..]);
                }
            }
        }
    }
    out.extend(suffixes.into_iter().rev());
}

/// Special cases that contain affixes or infixes, by their text, with the tokens the affix
/// rules alone make of them: a run of such tokens with no space between them becomes the
/// special case's pieces.
fn matchable() -> &'static (HashMap<&'static str, Vec<&'static str>>, usize) {
    static M: OnceLock<(HashMap<&'static str, Vec<&'static str>>, usize)> = OnceLock::new();
    M.get_or_init(|| {
        let mut map = HashMap::new();
        let mut longest = 0;
        for &key in specials().keys() {
            if prefix_len(key) == 0 && suffix_len(key) == 0 && infixes(key).is_empty() {
                continue;
            }
            let mut toks = Vec::new();
            affixes(key, &mut toks, false);
            longest = longest.max(toks.len());
            map.insert(key, toks);
        }
        (map, longest)
    })
}

/// Replaces runs of `out[from..]` (tokens of `piece`) that spell a special case with its
/// pieces: longest runs first, then leftmost, never overlapping.
fn merge_specials<'a>(piece: &'a str, out: &mut Vec<&'a str>, from: usize) {
    let (map, longest) = matchable();
    let toks = &out[from..];
    let n = toks.len();
    let base = piece.as_ptr() as usize;
    let start = |t: &str| t.as_ptr() as usize - base;
    let mut found: Vec<(usize, usize)> = Vec::new();
    for i in 0..n {
        for len in 1..=(*longest).min(n - i) {
            let (a, b) = (
                start(toks[i]),
                start(toks[i + len - 1]) + toks[i + len - 1].len(),
            );
            if let Some(pat) = map.get(&piece[a..b]) {
                if pat.len() == len && pat.iter().zip(&toks[i..i + len]).all(|(p, t)| p == t) {
                    found.push((i, len));
                }
            }
        }
    }
    if found.is_empty() {
        return;
    }
    found.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let mut seen = vec![false; n];
    let mut keep: Vec<(usize, usize)> = Vec::new();
    for (i, len) in found {
        if !seen[i] && !seen[i + len - 1] {
            keep.push((i, len));
        }
        for s in &mut seen[i..i + len] {
            *s = true;
        }
    }
    keep.sort_unstable();
    let old: Vec<&'a str> = out.drain(from..).collect();
    let mut k = 0;
    for (i, len) in keep {
        out.extend_from_slice(&old[k..i]);
        let (a, b) = (
            start(old[i]),
            start(old[i + len - 1]) + old[i + len - 1].len(),
        );
        push_special(out, &piece[a..b], &specials()[&piece[a..b]]);
        k = i + len;
    }
    out.extend_from_slice(&old[k..]);
}

/// The words of English `text`, punctuation tokens included, white space excluded.
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(text.len() / 5);
    for piece in text.split(is_space).filter(|p| !p.is_empty()) {
        tokenize_piece(piece, &mut out);
    }
    out
}

/// The number of sentences in `text` by the sentence-boundary rule the C4 filter counts
/// with: a sentence ends after a token of sentence-final punctuation, at the next token
/// that is not punctuation.
pub fn sentence_count(text: &str) -> usize {
    let mut n = 0;
    let mut seen_final = false;
    for (i, t) in words(text).into_iter().enumerate() {
        let is_final = t.chars().count() == 1 && t.chars().all(super::text::is_terminal);
        if i == 0 {
            n = 1;
        } else if seen_final && !is_final && !t.chars().all(is_unicode_punct) {
            n += 1;
            seen_final = false;
            continue;
        }
        if is_final {
            seen_final = true;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<&str> {
        words(s)
    }

    #[test]
    fn prefixes_suffixes_and_specials() {
        assert_eq!(w("$5 ©2010"), ["$", "5", "©", "2010"]);
        assert_eq!(w("(©2010) US$5"), ["(", "©", "2010", ")", "US$", "5"]);
        assert_eq!(
            w("+5 +a ...abc x..."),
            ["+5", "+", "a", "...", "abc", "x", "..."]
        );
        assert_eq!(
            w("e.g., Fig. 5mg."),
            ["e.g.", ",", "Fig", ".", "5", "mg", "."]
        );
        assert_eq!(
            w("don't can't. it's"),
            ["do", "n't", "ca", "n't", ".", "it", "'s"]
        );
        assert_eq!(
            w("'hello' 10%, PCD; U.S.A."),
            ["'", "hello", "'", "10", "%", ",", "PCD", ";", "U.S.A."]
        );
    }

    #[test]
    fn infixes_and_urls() {
        assert_eq!(
            w("37°C p<0.05 (n=25)"),
            ["37", "°", "C", "p<0.05", "(", "n=25", ")"]
        );
        assert_eq!(
            w("1.5-2.0 well-known M1-M4 A.B"),
            ["1.5", "-", "2.0", "well", "-", "known", "M1", "-", "M4", "A.B"]
        );
        assert_eq!(
            w("http://www.example.com/a-b www.nih.gov."),
            ["http://www.example.com/a-b", "www.nih.gov", "."]
        );
        assert_eq!(
            w("±5 —abc ΔΨm end.Next a,b"),
            ["±5", "—", "abc", "ΔΨm", "end", ".", "Next", "a", ",", "b"]
        );
        assert_eq!(w("  a\n\tb \u{3000}c  "), ["a", "b", "c"]);
    }

    #[test]
    fn periods_after_capitals_and_merged_specials() {
        assert_eq!(w("with JAS. The"), ["with", "JAS", ".", "The"]);
        assert_eq!(
            w("interval (CI): 1.04"),
            ["interval", "(", "CI", "):", "1.04"]
        );
        assert_eq!(w("smile :) ok"), ["smile", ":)", "ok"]);
    }

    #[test]
    fn sentences() {
        assert_eq!(sentence_count("One. Two! Three? Four"), 4);
        assert_eq!(sentence_count("Values were 1.5 and 2.0 mg."), 1);
        assert_eq!(sentence_count("He said \"no.\" Then left."), 2);
    }

    /// Compares with a dump of datatrove's own word split (`bench/quality_datatrove.py
    /// tokens`): set `ZEST_SPACY_TOKENS` to the dump's path.
    #[test]
    #[ignore]
    fn agrees_with_a_datatrove_dump() {
        let path = std::env::var("ZEST_SPACY_TOKENS").expect("ZEST_SPACY_TOKENS");
        let text = std::fs::read_to_string(path).unwrap();
        let (mut docs, mut bad) = (0, 0);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let t = v["text"].as_str().unwrap();
            let want: Vec<&str> = v["words"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap())
                .collect();
            let got = words(t);
            docs += 1;
            if got != want {
                bad += 1;
                let i = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
                eprintln!(
                    "differs at {i}: got {:?} want {:?}",
                    &got[i.saturating_sub(3)..(i + 4).min(got.len())],
                    &want[i.saturating_sub(3)..(i + 4).min(want.len())]
                );
            }
        }
        assert_eq!(bad, 0, "{bad} of {docs} documents split differently");
    }
}
