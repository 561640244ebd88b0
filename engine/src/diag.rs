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
            message: message.into(),
            help: None,
        }
    }

    /// A diagnostic with no position (command-line problems).
    pub fn global(message: impl Into<String>) -> Self {
        Diagnostic {
            pos: None,
            message: message.into(),
            help: None,
        }
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
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
    /// source line with a caret under the column.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.items {
            render_one(&mut out, &self.file, &self.source, d);
        }
        out
    }
}

fn render_one(out: &mut String, file: &str, source: &str, d: &Diagnostic) {
    use fmt::Write;
    match d.pos {
        Some(p) => {
            let _ = writeln!(out, "{file}:{}:{}: error: {}", p.line, p.col, d.message);
            if let Some(line) = source.lines().nth(p.line.saturating_sub(1)) {
                let num = p.line.to_string();
                let pad = " ".repeat(num.len());
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{num} | {line}");
                let caret_pad: String = line
                    .chars()
                    .take(p.col.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(out, "{pad} | {caret_pad}^");
            }
        }
        None => {
            let _ = writeln!(out, "{file}: error: {}", d.message);
        }
    }
    if let Some(h) = &d.help {
        let _ = writeln!(out, "  = help: {h}");
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
}
