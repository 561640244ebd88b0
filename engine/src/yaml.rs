//! A YAML tree that remembers where every value came from.
//!
//! DAG files are parsed into [`YValue`]s so that every later check (compiler, config
//! validation, templating) can point at `file:line:col`. Duplicate mapping keys are kept, not
//! merged, so that the compiler can report them.

use crate::diag::{Diagnostic, Pos};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
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
    /// A string; `plain` is true for unquoted single-line scalars, whose columns map 1:1.
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

enum Frame {
    Seq(Pos, usize, Vec<YValue>),
    Map(Pos, usize, Vec<(YKey, YValue)>, Option<YKey>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, YValue>,
    docs: Vec<YValue>,
    error: Option<Diagnostic>,
}

impl Builder {
    fn push_value(&mut self, v: YValue, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, v.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(v),
            Some(Frame::Seq(_, _, items)) => items.push(v),
            Some(Frame::Map(_, _, entries, key)) => match key.take() {
                None => {
                    let name = match &v.kind {
                        YKind::Scalar(Scalar::Str { value, .. }) => value.clone(),
                        YKind::Scalar(Scalar::Int(i)) => i.to_string(),
                        YKind::Scalar(Scalar::Bool(b)) => b.to_string(),
                        YKind::Scalar(Scalar::Float(f)) => f.to_string(),
                        YKind::Scalar(Scalar::Null) => "null".to_string(),
                        _ => {
                            if self.error.is_none() {
                                self.error =
                                    Some(Diagnostic::at(v.pos, "mapping keys must be scalars"));
                            }
                            String::new()
                        }
                    };
                    *key = Some(YKey { name, pos: v.pos });
                }
                Some(k) => entries.push((k, v)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = pos_of(mark);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let scalar = if style == TScalarStyle::Plain {
                    resolve_plain(&text)
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
                );
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(pos, anchor, vec![])),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(pos, anchor, vec![], None))
            }
            // A block collection starts where its first entry does; the parser's mark for it
            // can lie after that entry's key.
            Event::SequenceEnd => {
                if let Some(Frame::Seq(p, anchor, items)) = self.stack.pop() {
                    let pos = items.first().map_or(p, |i| i.pos.min(p));
                    self.push_value(
                        YValue {
                            pos,
                            kind: YKind::Seq(items),
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(p, anchor, entries, _)) = self.stack.pop() {
                    let pos = entries.first().map_or(p, |(k, _)| k.pos.min(p));
                    self.push_value(
                        YValue {
                            pos,
                            kind: YKind::Map(entries),
                        },
                        anchor,
                    );
                }
            }
            Event::Alias(id) => {
                let v = match self.anchors.get(&id) {
                    Some(v) => YValue {
                        pos,
                        kind: v.kind.clone(),
                    },
                    None => YValue {
                        pos,
                        kind: YKind::Scalar(Scalar::Null),
                    },
                };
                self.push_value(v, 0);
            }
            _ => {}
        }
    }
}

/// Parses one YAML document. An empty file parses as null; several documents are an error.
pub fn parse(source: &str) -> Result<YValue, Diagnostic> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(source);
    if let Err(e) = parser.load(&mut b, true) {
        let m = e.marker();
        return Err(Diagnostic::at(
            pos_of(*m),
            format!("invalid YAML: {}", e.info()),
        ));
    }
    if let Some(e) = b.error {
        return Err(e);
    }
    match b.docs.len() {
        0 => Ok(YValue {
            pos: Pos::new(1, 1),
            kind: YKind::Scalar(Scalar::Null),
        }),
        1 => Ok(b.docs.pop().expect("one document")),
        _ => Err(Diagnostic::at(
            b.docs[1].pos,
            "a DAG file holds one YAML document, found a second one",
        )),
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
}
