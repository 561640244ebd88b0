//! A YAML tree that remembers where every value came from.
//!
//! DAG files are parsed into [`YValue`]s so that every later check (compiler, config
//! validation, templating) can point at `file:line:col`. Duplicate mapping keys are kept, not
//! merged, so that the compiler can report them.

use crate::diag::{Diagnostic, Pos};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// A scalar after YAML 1.2 core-schema resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string; `plain` is true for unquoted single-line scalars, whose columns map 1:1
    /// (up to [`MAX_PLAIN_COLUMNS`] bytes long).
    Str {
        /// The text.
        value: String,
        /// Whether the scalar was written plain (unquoted).
        plain: bool,
    },
}

/// The shape of a YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum YKind {
    /// A scalar.
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<YValue>),
    /// A mapping, in source order, duplicates kept.
    Map(Vec<(YKey, YValue)>),
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct YKey {
    /// The key's text.
    pub name: String,
    /// Where the key starts.
    pub pos: Pos,
}

/// A YAML value with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct YValue {
    /// Where the value starts.
    pub pos: Pos,
    /// The value.
    pub kind: YKind,
}

impl YValue {
    /// A short English name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            YKind::Scalar(Scalar::Null) => "null",
            YKind::Scalar(Scalar::Bool(_)) => "a boolean",
            YKind::Scalar(Scalar::Int(_)) => "an integer",
            YKind::Scalar(Scalar::Float(_)) => "a number",
            YKind::Scalar(Scalar::Str { .. }) => "a string",
            YKind::Seq(_) => "a list",
            YKind::Map(_) => "a mapping",
        }
    }

    /// The string value, if this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            YKind::Scalar(Scalar::Str { value, .. }) => Some(value),
            _ => None,
        }
    }

    /// The mapping entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(YKey, YValue)]> {
        match &self.kind {
            YKind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Whether this is a null scalar.
    pub fn is_null(&self) -> bool {
        matches!(self.kind, YKind::Scalar(Scalar::Null))
    }

    /// Converts to JSON (positions are dropped; for duplicate keys the last one wins).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            YKind::Scalar(Scalar::Null) => J::Null,
            YKind::Scalar(Scalar::Bool(b)) => J::Bool(*b),
            YKind::Scalar(Scalar::Int(i)) => J::from(*i),
            YKind::Scalar(Scalar::Float(f)) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            YKind::Scalar(Scalar::Str { value, .. }) => J::String(value.clone()),
            YKind::Seq(items) => J::Array(items.iter().map(YValue::to_json).collect()),
            YKind::Map(entries) => {
                let mut m = serde_json::Map::new();
                for (k, v) in entries {
                    m.insert(k.name.clone(), v.to_json());
                }
                J::Object(m)
            }
        }
    }

    /// Builds a value (at `pos`) from JSON; used for values that came from the command line.
    pub fn from_json(v: &serde_json::Value, pos: Pos) -> YValue {
        use serde_json::Value as J;
        let kind = match v {
            J::Null => YKind::Scalar(Scalar::Null),
            J::Bool(b) => YKind::Scalar(Scalar::Bool(*b)),
            J::Number(n) => match n.as_i64() {
                Some(i) => YKind::Scalar(Scalar::Int(i)),
                None => YKind::Scalar(Scalar::Float(n.as_f64().unwrap_or(f64::NAN))),
            },
            J::String(s) => YKind::Scalar(Scalar::Str {
                value: s.clone(),
                plain: false,
            }),
            J::Array(a) => YKind::Seq(a.iter().map(|x| YValue::from_json(x, pos)).collect()),
            J::Object(o) => YKind::Map(
                o.iter()
                    .map(|(k, x)| {
                        (
                            YKey {
                                name: k.clone(),
                                pos,
                            },
                            YValue::from_json(x, pos),
                        )
                    })
                    .collect(),
            ),
        };
        YValue { pos, kind }
    }
}

fn pos_of(m: Marker) -> Pos {
    Pos::new(m.line(), m.col() + 1)
}

/// The position just after the last character of `source` (lines broken as in YAML). The
/// parser's marks for the end of the stream can lie on a line after it.
fn end_of(source: &str) -> Pos {
    let mut end = Pos::new(1, 1);
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            end = Pos::new(end.line + 1, 1);
        } else {
            end.col += 1;
        }
    }
    end
}

fn resolve_plain(text: &str) -> Scalar {
    match Yaml::from_str(text) {
        Yaml::Null => Scalar::Null,
        Yaml::Boolean(b) => Scalar::Bool(b),
        Yaml::Integer(i) => Scalar::Int(i),
        Yaml::Real(r) => match r.parse::<f64>() {
            Ok(f) => Scalar::Float(f),
            Err(_) => match r.to_ascii_lowercase().trim_start_matches('+') {
                ".inf" => Scalar::Float(f64::INFINITY),
                "-.inf" => Scalar::Float(f64::NEG_INFINITY),
                _ => Scalar::Float(f64::NAN),
            },
        },
        _ => Scalar::Str {
            value: text.to_string(),
            plain: !text.contains('\n'),
        },
    }
}

/// Deepest nesting of sequences and mappings a DAG file may have. Every later walk over the
/// tree (templating, schema checks, JSON conversion, `Drop`) recurses, so this bounds them all.
pub const MAX_DEPTH: usize = 128;

/// Most values (scalars, sequences, mappings, keys included) one document may hold, after
/// aliases are expanded, counting the copy kept of each anchored value; far above any real
/// DAG.
pub const MAX_VALUES: usize = 2_000_000;

/// Most values that aliases may copy in one document (each alias copies its anchor's whole
/// value). Bounds "billion laughs" documents.
pub const MAX_ALIAS_VALUES: usize = 100_000;

/// Most string bytes that anchors and aliases may copy in one document.
pub const MAX_ALIAS_BYTES: usize = 32 << 20;

/// Longest plain scalar, in bytes, whose columns are kept ([`Scalar::Str`]'s `plain`).
pub const MAX_PLAIN_COLUMNS: usize = 16 << 10;

/// Size of a finished value: what copying it costs, and how deep it nests.
#[derive(Clone, Copy, Default)]
struct Size {
    /// Values in it, itself included.
    values: usize,
    /// Bytes of string text in it (keys included).
    bytes: usize,
    /// Nesting levels of sequences and mappings (0 for a scalar).
    height: usize,
}

impl Size {
    fn add_child(&mut self, c: Size) {
        self.values += c.values;
        self.bytes += c.bytes;
        self.height = self.height.max(c.height);
    }
}

enum Frame {
    Seq(Pos, usize, Vec<YValue>, Size),
    Map(Pos, usize, Vec<(YKey, YValue)>, Option<YKey>, Size),
}

struct Builder<'s> {
    source: &'s str,
    /// Where the source ends; no position lies beyond.
    end: Pos,
    /// A character index in the source and its byte offset, for [`Builder::written_at`].
    cursor: (usize, usize),
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, (YValue, Size)>,
    docs: Vec<YValue>,
    error: Option<Diagnostic>,
    /// Values made so far, aliases expanded.
    values: usize,
    /// Values copied so far by aliases, and string bytes by anchors and aliases.
    copied: Size,
}

impl<'s> Builder<'s> {
    fn new(source: &'s str) -> Self {
        Builder {
            source,
            end: end_of(source),
            cursor: (0, 0),
            stack: vec![],
            anchors: Default::default(),
            docs: vec![],
            error: None,
            values: 0,
            copied: Size::default(),
        }
    }

    fn fail(&mut self, d: Diagnostic) {
        if self.error.is_none() {
            self.error = Some(d);
        }
    }

    /// Counts `n` new values against [`MAX_VALUES`].
    fn count(&mut self, n: usize, pos: Pos) -> bool {
        self.values = self.values.saturating_add(n);
        if self.values > MAX_VALUES {
            self.fail(Diagnostic::at(
                pos,
                format!("the document holds more than {MAX_VALUES} values; split the DAG"),
            ));
            return false;
        }
        true
    }

    /// Counts the copy an alias makes of a value of size `s` against the alias budgets.
    fn copy_alias(&mut self, s: Size, pos: Pos, mark: Marker) -> bool {
        self.copied.values = self.copied.values.saturating_add(s.values);
        self.copied.bytes = self.copied.bytes.saturating_add(s.bytes);
        if self.copied.values > MAX_ALIAS_VALUES {
            let what = self.alias_name(mark);
            self.fail(Diagnostic::at(
                pos,
                format!(
                    "{what} would make aliases expand to more than {MAX_ALIAS_VALUES} values \
                     in all; write the values out instead"
                ),
            ));
            return false;
        }
        if self.copied.bytes > MAX_ALIAS_BYTES {
            let what = self.alias_name(mark);
            return self.check_copied_bytes(pos, &what);
        }
        true
    }

    /// Counts the copy kept of an anchored value of size `s`.
    fn copy_anchor(&mut self, s: Size, pos: Pos) -> bool {
        self.copied.bytes = self.copied.bytes.saturating_add(s.bytes);
        self.count(s.values, pos) && self.check_copied_bytes(pos, "this anchor")
    }

    fn check_copied_bytes(&mut self, pos: Pos, what: &str) -> bool {
        if self.copied.bytes > MAX_ALIAS_BYTES {
            self.fail(Diagnostic::at(
                pos,
                format!(
                    "{what} would make anchors and aliases copy more than {} MiB of text in \
                     all; write the values out instead",
                    MAX_ALIAS_BYTES >> 20
                ),
            ));
            return false;
        }
        true
    }

    /// Whether `text` is written verbatim at `mark` in the source.
    fn written_at(&mut self, mark: Marker, text: &str) -> bool {
        let (mut ci, mut bi) = self.cursor;
        if mark.index() < ci {
            (ci, bi) = (0, 0);
        }
        let mut rest = self.source[bi..].chars();
        while ci < mark.index() {
            match rest.next() {
                Some(c) => {
                    ci += 1;
                    bi += c.len_utf8();
                }
                None => return false,
            }
        }
        self.cursor = (ci, bi);
        self.source[bi..].starts_with(text)
    }

    /// The name of the alias written at `mark` (`*name`), for messages.
    fn alias_name(&self, mark: Marker) -> String {
        let name: String = self
            .source
            .chars()
            .skip(mark.index())
            .skip_while(|c| *c == '*')
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '[' | ']' | '{' | '}'))
            .take(40)
            .collect();
        format!("alias `*{name}`")
    }

    fn push_value(&mut self, v: YValue, anchor: usize, size: Size) {
        if anchor > 0 {
            if !self.copy_anchor(size, v.pos) {
                return;
            }
            self.anchors.insert(anchor, (v.clone(), size));
        }
        let mut failed = None;
        match self.stack.last_mut() {
            None => self.docs.push(v),
            Some(Frame::Seq(_, _, items, s)) => {
                s.add_child(size);
                items.push(v);
            }
            Some(Frame::Map(_, _, entries, key, s)) => {
                s.add_child(size);
                match key.take() {
                    None => {
                        let name = match &v.kind {
                            YKind::Scalar(Scalar::Str { value, .. }) => value.clone(),
                            YKind::Scalar(Scalar::Int(i)) => i.to_string(),
                            YKind::Scalar(Scalar::Bool(b)) => b.to_string(),
                            YKind::Scalar(Scalar::Float(f)) => f.to_string(),
                            YKind::Scalar(Scalar::Null) => "null".to_string(),
                            _ => {
                                failed = Some(v.pos);
                                String::new()
                            }
                        };
                        *key = Some(YKey { name, pos: v.pos });
                    }
                    Some(k) => entries.push((k, v)),
                }
            }
        }
        if let Some(pos) = failed {
            self.fail(Diagnostic::at(pos, "mapping keys must be scalars"));
        }
    }

    /// Opens a sequence or mapping, refusing to nest deeper than [`MAX_DEPTH`].
    fn open(&mut self, frame: Frame, pos: Pos) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(Diagnostic::at(
                pos,
                format!("values nest more than {MAX_DEPTH} levels deep"),
            ));
            return;
        }
        if self.count(1, pos) {
            self.stack.push(frame);
        }
    }

    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = pos_of(mark).min(self.end);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                if !self.count(1, pos) {
                    return;
                }
                let size = Size {
                    values: 1,
                    bytes: text.len(),
                    height: 0,
                };
                let scalar = if style == TScalarStyle::Plain {
                    match resolve_plain(&text) {
                        // A plain scalar folded from several lines has no 1:1 columns. Nor
                        // do very long ones keep theirs: finding a column in them would take
                        // time in proportion to their length, for every error in them.
                        Scalar::Str { value, plain: true } => Scalar::Str {
                            plain: value.len() <= MAX_PLAIN_COLUMNS
                                && self.written_at(mark, &value),
                            value,
                        },
                        s => s,
                    }
                } else {
                    Scalar::Str {
                        value: text,
                        plain: false,
                    }
                };
                self.push_value(
                    YValue {
                        pos,
                        kind: YKind::Scalar(scalar),
                    },
                    anchor,
                    size,
                );
            }
            Event::SequenceStart(anchor, _) => {
                self.open(Frame::Seq(pos, anchor, vec![], Size::default()), pos)
            }
            Event::MappingStart(anchor, _) => {
                self.open(Frame::Map(pos, anchor, vec![], None, Size::default()), pos)
            }
            // A block collection starts where its first entry does; the parser's mark for it
            // can lie after that entry's key.
            Event::SequenceEnd => {
                if let Some(Frame::Seq(p, anchor, items, s)) = self.stack.pop() {
                    let pos = items.first().map_or(p, |i| i.pos.min(p));
                    self.push_value(
                        YValue {
                            pos,
                            kind: YKind::Seq(items),
                        },
                        anchor,
                        Size {
                            values: s.values + 1,
                            bytes: s.bytes,
                            height: s.height + 1,
                        },
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(p, anchor, entries, _, s)) = self.stack.pop() {
                    let pos = entries.first().map_or(p, |(k, _)| k.pos.min(p));
                    self.push_value(
                        YValue {
                            pos,
                            kind: YKind::Map(entries),
                        },
                        anchor,
                        Size {
                            values: s.values + 1,
                            bytes: s.bytes,
                            height: s.height + 1,
                        },
                    );
                }
            }
            Event::Alias(id) => {
                let Some(size) = self.anchors.get(&id).map(|(_, s)| *s) else {
                    if self.count(1, pos) {
                        let null = YValue {
                            pos,
                            kind: YKind::Scalar(Scalar::Null),
                        };
                        self.push_value(null, 0, Size::default());
                    }
                    return;
                };
                if self.stack.len() + size.height > MAX_DEPTH {
                    let what = self.alias_name(mark);
                    self.fail(Diagnostic::at(
                        pos,
                        format!("{what} makes values nest more than {MAX_DEPTH} levels deep"),
                    ));
                    return;
                }
                if !self.copy_alias(size, pos, mark) || !self.count(size.values, pos) {
                    return;
                }
                let kind = self.anchors[&id].0.kind.clone();
                self.push_value(YValue { pos, kind }, 0, size);
            }
            _ => {}
        }
    }
}

/// Parses one YAML document. An empty file parses as null; several documents are an error.
/// One leading byte-order mark is ignored.
///
/// Nesting deeper than [`MAX_DEPTH`], more than [`MAX_VALUES`] values, or anchors and
/// aliases that copy more than [`MAX_ALIAS_VALUES`] values are errors at the place where the
/// limit is crossed; parsing stops there.
pub fn parse(source: &str) -> Result<YValue, Diagnostic> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut b = Builder::new(source);
    let mut parser = Parser::new_from_str(source);
    // Events are pulled one at a time rather than through `Parser::load`, which recurses once
    // per nesting level, so that parsing can stop at the first limit crossed.
    loop {
        match parser.next_token() {
            Err(e) => {
                return Err(Diagnostic::at(
                    pos_of(*e.marker()).min(b.end),
                    format!("invalid YAML: {}", e.info()),
                ))
            }
            Ok((Event::StreamEnd, _)) => break,
            Ok((ev, mark)) => b.on_event(ev, mark),
        }
        if let Some(e) = b.error.take() {
            return Err(e);
        }
        if b.docs.len() > 1 {
            return Err(Diagnostic::at(
                b.docs[1].pos,
                "a DAG file holds one YAML document, found a second one",
            ));
        }
    }
    match b.docs.pop() {
        None => Ok(YValue {
            pos: Pos::new(1, 1),
            kind: YKind::Scalar(Scalar::Null),
        }),
        Some(d) => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let v = parse("a:\n  b: [1, x]\n  c: 'q'\n").unwrap();
        let m = v.as_map().unwrap();
        assert_eq!(m[0].0.pos, Pos::new(1, 1));
        let inner = m[0].1.as_map().unwrap();
        assert_eq!(inner[0].0.pos, Pos::new(2, 3));
        assert_eq!(inner[0].1.pos, Pos::new(2, 6));
        match &inner[0].1.kind {
            YKind::Seq(items) => {
                assert_eq!(items[0].kind, YKind::Scalar(Scalar::Int(1)));
                assert_eq!(items[1].pos, Pos::new(2, 10));
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(inner[1].1.as_str(), Some("q"));
    }

    #[test]
    fn keeps_duplicate_keys() {
        let v = parse("a: 1\na: 2\n").unwrap();
        assert_eq!(v.as_map().unwrap().len(), 2);
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.is_some());
        assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let v = parse("a: '1'\nb: 1.5\nc: true\nd: ~\n").unwrap();
        let m = v.as_map().unwrap();
        assert_eq!(m[0].1.as_str(), Some("1"));
        assert_eq!(m[1].1.kind, YKind::Scalar(Scalar::Float(1.5)));
        assert_eq!(m[2].1.kind, YKind::Scalar(Scalar::Bool(true)));
        assert!(m[3].1.is_null());
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let v = parse("a: &x {k: [1, 2]}\nb: *x\nc: [*x, *x]\n").unwrap();
        let m = v.as_map().unwrap();
        assert_eq!(m[1].1.kind, m[0].1.kind);
        assert_eq!(m[1].1.pos, Pos::new(2, 4));
        assert_eq!(v.to_json()["c"][1]["k"][1], 2);
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let mut src = String::from("l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n");
        for i in 1..9 {
            src.push_str(&format!(
                "l{i}: &l{i} [{}]\n",
                vec![format!("*l{}", i - 1); 10].join(",")
            ));
        }
        let e = parse(&src).unwrap_err();
        // l3 holds 11111 values: the eighth `*l3` in l4 crosses 100000 copied values.
        assert!(
            e.message
                .starts_with("alias `*l3` would make aliases expand"),
            "{}",
            e.message
        );
        assert_eq!(e.pos, Some(Pos::new(5, 10 + 7 * 4)));
        // Big strings copied by aliases count too.
        let big = "x".repeat(4 << 20);
        let src = format!("a: &a \"{big}\"\nb: [{}]\n", ["*a"; 10].join(", "));
        let e = parse(&src).unwrap_err();
        assert!(e.message.contains("MiB of text"), "{}", e.message);
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        let e = parse(&deep).unwrap_err();
        assert_eq!(e.pos, Some(Pos::new(1, MAX_DEPTH + 1)));
        let e = parse(&format!("{}x", "- ".repeat(100_000))).unwrap_err();
        assert_eq!(e.pos, Some(Pos::new(1, 2 * MAX_DEPTH + 1)));
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let v = parse("\u{feff}a: 1\nb: 2\n").unwrap();
        let m = v.as_map().unwrap();
        assert_eq!(m[0].0.name, "a");
        assert_eq!(m[0].0.pos, Pos::new(1, 1));
        assert_eq!(m[1].0.pos, Pos::new(2, 1));
    }

    #[test]
    fn positions_stay_inside_the_file() {
        assert_eq!(parse("!T").unwrap().pos, Pos::new(1, 3));
        let e = parse("a: 1\n~").unwrap_err();
        assert!(e.pos.unwrap() <= Pos::new(2, 2), "{e:?}");
    }

    #[test]
    fn second_document_is_an_error() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos::new(3, 1)));
    }

    #[test]
    fn folded_plain_scalars_are_not_plain() {
        let v = parse("a: x y\nb: x\n  y\nc: [p,\n  q r]\n").unwrap();
        let m = v.as_map().unwrap();
        let plain =
            |v: &YValue| matches!(v.kind, YKind::Scalar(Scalar::Str { plain, .. }) if plain);
        assert!(plain(&m[0].1));
        assert_eq!(m[1].1.as_str(), Some("x y"));
        assert!(!plain(&m[1].1));
        match &m[2].1.kind {
            YKind::Seq(items) => assert!(plain(&items[0]) && plain(&items[1])),
            k => panic!("{k:?}"),
        }
    }
}
