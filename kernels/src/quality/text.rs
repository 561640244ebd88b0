//! String operations with the exact semantics the rules were defined with: what counts as
//! white space, how text splits into lines, which characters are punctuation.

use super::tables::TERMINAL;

/// White space as the rules define it: the ASCII controls `\t`..`\r` and `\x1c`..`\x1f`,
/// space, NEL, no-break space and Unicode's space separators, line and paragraph separators.
pub fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\x1c'..='\x1f'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// `s` without leading and trailing white space.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// The lines of `s`: split at `\n`, `\r`, `\r\n`, `\v`, `\f`, `\x1c`..`\x1e`, NEL, and the
/// line and paragraph separators; the breaks are dropped, and a break at the very end does
/// not start another (empty) line.
pub fn lines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let brk = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if brk {
            out.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = it.peek() {
                    it.next();
                    end = j + 1;
                }
            }
            start = end;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// `s` split at runs of at least `min` newlines (`\n` only).
pub fn split_newline_runs(s: &str, min: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        if b[i] == b'\n' {
            let mut j = i;
            while j < b.len() && b[j] == b'\n' {
                j += 1;
            }
            if j - i >= min {
                out.push(&s[start..i]);
                start = j;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// Length in characters (code points).
pub fn len(s: &str) -> usize {
    s.chars().count()
}

/// Non-overlapping occurrences of `needle` in `hay`.
pub fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// Whether `c` is one of the punctuation characters a "symbol word" is made of: ASCII
/// punctuation and symbols, the C0 and C1 controls other than tab and newline, common
/// typographic and CJK punctuation, and every sentence terminal.
pub fn is_punctuation(c: char) -> bool {
    const OTHER: &str = "«´»–—’“”„…∶━►、。〈〉《》「」【】！％（），．１：；？～";
    let u = c as u32;
    (c.is_ascii_punctuation())
        || u <= 8
        || (11..32).contains(&u)
        || (127..160).contains(&u)
        || OTHER.contains(c)
        || is_terminal(c)
}

/// Whether `c` ends a sentence in some script (`.`, `!`, `?`, `。`, `؟`, `।`, …).
pub fn is_terminal(c: char) -> bool {
    TERMINAL.binary_search(&(c as u32)).is_ok()
}

/// Whether `c` is punctuation in Unicode's sense (general category P*), for the common
/// scripts: ASCII, Latin-1, general punctuation, CJK and full-width forms.
pub fn is_unicode_punct(c: char) -> bool {
    match c {
        '!' | '"' | '#' | '%' | '&' | '\'' | '(' | ')' | '*' | ',' | '-' | '.' | '/' | ':'
        | ';' | '?' | '@' | '[' | '\\' | ']' | '_' | '{' | '}' => true,
        '¡' | '§' | '«' | '¶' | '·' | '»' | '¿' => true,
        _ => {
            let u = c as u32;
            (0x2010..=0x2027).contains(&u)
                || (0x2030..=0x2043).contains(&u)
                || (0x2045..=0x2051).contains(&u)
                || (0x2053..=0x205E).contains(&u)
                || (0x2E00..=0x2E4F).contains(&u)
                || (0x3001..=0x3003).contains(&u)
                || (0x3008..=0x3011).contains(&u)
                || (0x3014..=0x301F).contains(&u)
                || matches!(u, 0xFF01..=0xFF03 | 0xFF05..=0xFF0A | 0xFF0C..=0xFF0F | 0xFF1A | 0xFF1B | 0xFF1F | 0xFF20 | 0xFF3B..=0xFF3D | 0xFF3F | 0xFF5B | 0xFF5D | 0xFF5F..=0xFF65)
                || is_terminal(c)
        }
    }
}

/// Counts of repeated items: (how many items repeat an earlier one, their total length in
/// characters).
pub fn duplicates<'a>(items: impl IntoIterator<Item = &'a str>) -> (usize, usize) {
    let mut seen = std::collections::HashSet::new();
    let (mut n, mut chars) = (0, 0);
    for it in items {
        if !seen.insert(it) {
            n += 1;
            chars += len(it);
        }
    }
    (n, chars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_every_break_kind() {
        assert_eq!(
            lines("a\nb\r\nc\rd\x0be\u{2028}f\n"),
            ["a", "b", "c", "d", "e", "f"]
        );
        assert_eq!(lines("a\n\nb"), ["a", "", "b"]);
        assert!(lines("").is_empty());
    }

    #[test]
    fn newline_runs_and_duplicates() {
        assert_eq!(
            split_newline_runs("a\n\nb\nc\n\n\nd", 2),
            ["a", "b\nc", "d"]
        );
        assert_eq!(split_newline_runs("a\nb\n\nc", 1), ["a", "b", "c"]);
        assert_eq!(duplicates(["ab", "c", "ab", "ab"]), (2, 4));
        assert_eq!(count("......", "..."), 2);
    }

    #[test]
    fn punctuation_sets() {
        for c in ".,;:!?()[]{}#%<>=-—…“”$+".chars() {
            assert!(is_punctuation(c), "{c}");
        }
        for c in "±×°a1μ".chars() {
            assert!(!is_punctuation(c), "{c}");
        }
        assert!(is_terminal('。') && is_terminal('?') && !is_terminal(','));
        assert!(is_unicode_punct('.') && !is_unicode_punct('+') && !is_unicode_punct('$'));
        assert!(is_space('\u{3000}') && is_space('\x1f') && !is_space('\u{200b}'));
    }
}
