//! Diagnostics: errors that point at `file:line:col` and show the offending source line.

use std::fmt;

/// A 1-based position in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl Pos {
    /// A position at `line`, `col` (both 1-based).
    pub fn new(line: usize, col: usize) -> Self {
        Pos { line, col }
    }
}

/// One problem found in a DAG file or in the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the problem is; `None` for problems that have no place in a file.
    pub pos: Option<Pos>,
    /// What is wrong.
    pub message: String,
    /// An optional hint, e.g. "did you mean `data.load`?".
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at a position.
    pub fn at(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            pos: Some(pos),
            message: clip(message.into()),
            help: None,
        }
    }

    /// A diagnostic with no position (command-line problems).
    pub fn global(message: impl Into<String>) -> Self {
        Diagnostic {
            pos: None,
            message: clip(message.into()),
            help: None,
        }
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help.map(clip);
        self
    }
}

/// Longest message or hint kept, in characters.
pub const MAX_MESSAGE: usize = 400;

/// Longest `quoted` part of a long message kept, in characters.
pub const MAX_QUOTED: usize = 60;

/// Source characters shown around the caret.
pub const SNIPPET_WIDTH: usize = 160;

/// Most diagnostics [`Diagnostics::render`] writes out; the rest are counted.
pub const MAX_RENDERED: usize = 100;

/// Bounds a message: in a message longer than [`MAX_MESSAGE`] characters, every `quoted`
/// part longer than [`MAX_QUOTED`] is cut with `…`, and then the message itself.
pub fn clip(message: String) -> String {
    if message.len() <= MAX_MESSAGE || message.chars().count() <= MAX_MESSAGE {
        return message;
    }
    let mut out = String::with_capacity(MAX_MESSAGE * 2);
    for (i, part) in message.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        if i % 2 == 1 {
            out.extend(part.chars().take(MAX_QUOTED));
            if part.chars().nth(MAX_QUOTED).is_some() {
                out.push('…');
            }
        } else {
            out.push_str(part);
        }
        if out.len() > 4 * MAX_MESSAGE {
            break;
        }
    }
    if out.chars().nth(MAX_MESSAGE).is_some() {
        out = out.chars().take(MAX_MESSAGE).collect();
        out.push('…');
    }
    out
}

/// Characters that could confuse a terminal (control and bidirectional-formatting
/// characters); tabs are fine.
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A message with unsafe characters escaped (`\n`, `\u{1b}`).
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out.into()
}

/// Line `line` (1-based) of `source`, with lines ending at `\n`, `\r\n` or a lone `\r` as
/// in YAML; the last line may be empty.
pub(crate) fn source_line(source: &str, line: usize) -> Option<&str> {
    let bytes = source.as_bytes();
    let next_break = |from: usize| {
        bytes[from..]
            .iter()
            .position(|b| matches!(b, b'\n' | b'\r'))
    };
    let mut start = 0;
    for _ in 1..line {
        let i = start + next_break(start)?;
        start = if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i + 2
        } else {
            i + 1
        };
    }
    let end = next_break(start).map_or(bytes.len(), |i| start + i);
    Some(&source[start..end])
}

/// The part of `line` to show for a caret at 1-based column `col`, and the padding that puts
/// the caret under that column: at most [`SNIPPET_WIDTH`] characters, with `…` where the line
/// was cut. Unsafe characters are shown as `\u{fffd}`; tabs are kept, in the padding too.
fn snippet(line: &str, col: usize) -> (String, String) {
    let n = line.chars().count();
    let caret = col.saturating_sub(1).min(n);
    let (lo, hi) = if n <= SNIPPET_WIDTH {
        (0, n)
    } else {
        let lo = caret
            .saturating_sub(SNIPPET_WIDTH / 2)
            .min(n - SNIPPET_WIDTH);
        (lo, lo + SNIPPET_WIDTH)
    };
    let mut shown = String::new();
    let mut pad = String::new();
    if lo > 0 {
        shown.push('…');
        pad.push(' ');
    }
    for (i, c) in line.chars().enumerate().skip(lo).take(hi - lo) {
        shown.push(if is_unsafe(c) { '\u{fffd}' } else { c });
        if i < caret {
            pad.push(if c == '\t' { '\t' } else { ' ' });
        }
    }
    if hi < n {
        shown.push('…');
    }
    (shown, pad)
}

/// All diagnostics for one source file, with the text needed to render them.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The file name as the user gave it.
    pub file: String,
    /// The file's text.
    pub source: String,
    /// The problems, in source order.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Renders every diagnostic as `file:line:col: error: message`, followed by the
    /// source line (cut to a window around the column) with a caret under the column. At most
    /// [`MAX_RENDERED`] are written; a last line counts the others.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let source = self.source.strip_prefix('\u{feff}').unwrap_or(&self.source);
        for d in self.items.iter().take(MAX_RENDERED) {
            render_one(&mut out, &self.file, source, d);
        }
        if self.items.len() > MAX_RENDERED {
            use fmt::Write;
            let _ = writeln!(
                out,
                "{}: … and {} more error(s)",
                escape(&self.file),
                self.items.len() - MAX_RENDERED
            );
        }
        out
    }
}

fn render_one(out: &mut String, file: &str, source: &str, d: &Diagnostic) {
    use fmt::Write;
    let file = escape(file);
    let message = escape(&d.message);
    match d.pos {
        Some(p) => {
            let _ = writeln!(out, "{file}:{}:{}: error: {message}", p.line, p.col);
            if let Some(line) = source_line(source, p.line) {
                let (shown, caret_pad) = snippet(line, p.col);
                let num = p.line.to_string();
                let pad = " ".repeat(num.len());
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{num} | {shown}");
                let _ = writeln!(out, "{pad} | {caret_pad}^");
            }
        }
        None => {
            let _ = writeln!(out, "{file}: error: {message}");
        }
    }
    if let Some(h) = &d.help {
        let _ = writeln!(out, "  = help: {}", escape(h));
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Diagnostics {}

/// Suggests the closest candidate to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    // Nobody mistypes a long word into a known name; and comparing long words is slow.
    if word.len() > 100 {
        return None;
    }
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(word, c);
        let close = strsim::levenshtein(word, c) <= (word.len().max(c.len()) / 3).max(1);
        if (score >= 0.8 || close) && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("data.laod", ["data.load", "data.sql", "noop"]),
            Some("did you mean `data.load`?".into())
        );
        assert_eq!(did_you_mean("zzzz", ["data.load", "shell"]), None);
    }

    #[test]
    fn renders_caret_under_column() {
        let d = Diagnostics {
            file: "x.yaml".into(),
            source: "a: 1\nbb: 2\n".into(),
            items: vec![Diagnostic::at(Pos::new(2, 5), "bad")],
        };
        let r = d.render();
        assert!(r.starts_with("x.yaml:2:5: error: bad\n"), "{r}");
        assert!(r.contains("2 | bb: 2\n  |     ^"), "{r}");
    }

    fn render(source: &str, pos: Pos, message: &str) -> String {
        Diagnostics {
            file: "x.yaml".into(),
            source: source.into(),
            items: vec![Diagnostic::at(pos, message)],
        }
        .render()
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let line = format!("{}Z{}", "a".repeat(5_000_000), "b".repeat(5_000_000));
        let r = render(&format!("k: 1\n{line}\n"), Pos::new(2, 5_000_001), "bad");
        assert!(r.len() < 1_000, "{} bytes", r.len());
        let lines: Vec<&str> = r.lines().collect();
        let shown = lines[2].strip_prefix("2 | ").unwrap();
        let caret = lines[3].strip_prefix("  | ").unwrap();
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert_eq!(
            caret.chars().count(),
            shown.chars().position(|c| c == 'Z').unwrap() + 1
        );
        assert!(caret.ends_with('^'));
    }

    #[test]
    fn caret_stays_under_multibyte_and_tab_columns() {
        let line = format!("é\t{}X{}", "ü".repeat(300), "ß".repeat(300));
        let r = render(&line, Pos::new(1, 303), "bad");
        let lines: Vec<&str> = r.lines().collect();
        let shown: Vec<char> = lines[2].strip_prefix("1 | ").unwrap().chars().collect();
        let caret: Vec<char> = lines[3].strip_prefix("  | ").unwrap().chars().collect();
        assert_eq!(shown[caret.len() - 1], 'X', "{r}");
        assert!(shown.len() <= SNIPPET_WIDTH + 2);
        // A short line keeps its tab, in the padding too.
        let r = render("\tab: x\n", Pos::new(1, 3), "bad");
        assert!(r.contains("1 | \tab: x\n  | \t ^\n"), "{r:?}");
    }

    #[test]
    fn messages_and_hints_are_bounded() {
        let key = "k".repeat(1_000_000);
        let d = Diagnostic::at(Pos::new(1, 1), format!("unknown key `{key}` in the DAG"))
            .with_help(Some(format!("did you mean `{key}`?")));
        assert!(
            d.message.chars().count() <= MAX_MESSAGE + 1,
            "{}",
            d.message.len()
        );
        assert!(d.message.ends_with("…` in the DAG"), "{}", d.message);
        assert!(d.help.unwrap().chars().count() <= MAX_MESSAGE + 1);
        let short = Diagnostic::at(Pos::new(1, 1), "unknown key `kk` in the DAG");
        assert_eq!(short.message, "unknown key `kk` in the DAG");
    }

    #[test]
    fn control_characters_are_not_echoed() {
        let r = render(
            "a\u{1b}[2J: 1\n",
            Pos::new(1, 1),
            "unknown key `a\u{1b}[2J`\n",
        );
        assert!(!r.contains('\u{1b}'), "{r:?}");
        assert!(r.contains("unknown key `a\\u{1b}[2J`\\n"), "{r:?}");
    }

    #[test]
    fn lines_break_like_yaml_and_bom_is_skipped() {
        assert_eq!(source_line("a\r\nb\rc\nd", 3), Some("c"));
        assert_eq!(source_line("a\n", 2), Some(""));
        assert_eq!(source_line("a\n", 3), None);
        let r = render("\u{feff}nme: x\n", Pos::new(1, 1), "bad");
        assert!(r.contains("1 | nme: x\n  | ^"), "{r:?}");
    }

    #[test]
    fn rendering_stops_after_many_diagnostics() {
        let d = Diagnostics {
            file: "x.yaml".into(),
            source: "a: 1\n".into(),
            items: vec![Diagnostic::at(Pos::new(1, 1), "bad"); 1000],
        };
        let r = d.render();
        assert_eq!(r.matches("error: bad").count(), MAX_RENDERED);
        assert!(r.ends_with("x.yaml: … and 900 more error(s)\n"), "{r}");
    }
}
