//! DAG parameters: declarations, `--param name=value` overrides, and `${params.name}`
//! substitution.

use crate::diag::{did_you_mean, Diagnostic, Pos};
use crate::yaml::{Scalar, YKind, YValue};
use serde_json::Value as J;

/// A parameter's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A whole number.
    Int,
    /// A number.
    Float,
    /// Text.
    String,
    /// true / false.
    Bool,
    /// A list of values.
    List,
}

impl ParamType {
    fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "int" | "integer" => ParamType::Int,
            "float" | "number" => ParamType::Float,
            "string" | "str" => ParamType::String,
            "bool" | "boolean" => ParamType::Bool,
            "list" | "array" => ParamType::List,
            _ => return None,
        })
    }

    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::String => "string",
            ParamType::Bool => "bool",
            ParamType::List => "list",
        }
    }

    fn of(v: &J) -> ParamType {
        match v {
            J::Bool(_) => ParamType::Bool,
            J::Number(n) if n.is_i64() || n.is_u64() => ParamType::Int,
            J::Number(_) => ParamType::Float,
            J::Array(_) => ParamType::List,
            _ => ParamType::String,
        }
    }

    /// Checks (and, for ints given to a float, converts) a value.
    fn coerce(self, v: J) -> Result<J, String> {
        let ok = match (self, &v) {
            (ParamType::Int, J::Number(n)) => n.is_i64() || n.is_u64(),
            (ParamType::Float, J::Number(_)) => true,
            (ParamType::String, J::String(_)) => true,
            (ParamType::Bool, J::Bool(_)) => true,
            (ParamType::List, J::Array(_)) => true,
            _ => false,
        };
        if ok {
            Ok(v)
        } else {
            Err(format!(
                "expected {}, found {}",
                self.as_str(),
                json_type(&v)
            ))
        }
    }
}

fn json_type(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "a list",
        J::Object(_) => "a mapping",
    }
}

/// A declared parameter and its value for this run.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// The name.
    pub name: String,
    /// Where it is declared.
    pub pos: Pos,
    /// Its type.
    pub ty: ParamType,
    /// The declared default.
    pub default: Option<J>,
    /// Help text.
    pub help: Option<String>,
    /// The value in force: the override, else the default. `None` if neither was given.
    pub value: Option<J>,
}

/// Parses `params:` and applies command-line overrides.
pub fn parse_params(
    node: Option<&YValue>,
    overrides: &[(String, String)],
    errs: &mut Vec<Diagnostic>,
) -> Vec<ParamSpec> {
    let mut out: Vec<ParamSpec> = vec![];
    if let Some(node) = node {
        match &node.kind {
            YKind::Map(entries) => {
                for (k, v) in entries {
                    if out.iter().any(|p| p.name == k.name) {
                        errs.push(Diagnostic::at(
                            k.pos,
                            format!("duplicate parameter `{}`", k.name),
                        ));
                        continue;
                    }
                    if let Some(p) = parse_one(&k.name, k.pos, v, errs) {
                        out.push(p);
                    }
                }
            }
            YKind::Scalar(Scalar::Null) => {}
            _ => errs.push(Diagnostic::at(
                node.pos,
                format!("`params` must be a mapping, found {}", node.type_name()),
            )),
        }
    }
    for (name, raw) in overrides {
        let Some(p) = out.iter_mut().find(|p| &p.name == name) else {
            continue; // reported below
        };
        let parsed = parse_cli_value(raw, p.ty);
        match parsed.and_then(|v| p.ty.coerce(v)) {
            Ok(v) => p.value = Some(v),
            Err(e) => errs.push(Diagnostic::global(format!(
                "--param {name}={raw}: {e} (declared at line {})",
                p.pos.line
            ))),
        }
    }
    let declared: Vec<String> = out.iter().map(|p| p.name.clone()).collect();
    for (name, _) in overrides {
        if !declared.contains(name) {
            let help = did_you_mean(name, declared.iter().map(String::as_str));
            errs.push(
                Diagnostic::global(format!(
                    "--param {name}: the DAG declares no parameter `{name}`"
                ))
                .with_help(help),
            );
        }
    }
    for p in &out {
        if p.value.is_none() {
            errs.push(Diagnostic::at(
                p.pos,
                format!(
                    "parameter `{}` has no default and no --param {}=… was given",
                    p.name, p.name
                ),
            ));
        }
    }
    out
}

fn parse_cli_value(raw: &str, ty: ParamType) -> Result<J, String> {
    if ty == ParamType::String {
        return Ok(J::String(raw.to_string()));
    }
    let v: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(raw).map_err(|e| format!("not a valid {}: {e}", ty.as_str()))?;
    serde_json::to_value(v).map_err(|e| e.to_string())
}

fn parse_one(name: &str, pos: Pos, v: &YValue, errs: &mut Vec<Diagnostic>) -> Option<ParamSpec> {
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        errs.push(Diagnostic::at(
            pos,
            format!("invalid parameter name `{name}`: use letters, digits and `_`"),
        ));
        return None;
    }
    let Some(m) = v.as_map() else {
        // Shorthand: `name: value` declares a parameter of the value's type.
        let j = v.to_json();
        if j.is_null() || j.is_object() {
            errs.push(Diagnostic::at(
                v.pos,
                format!("parameter `{name}` needs a default value or a mapping with `type`"),
            ));
            return None;
        }
        return Some(ParamSpec {
            name: name.into(),
            pos,
            ty: ParamType::of(&j),
            default: Some(j.clone()),
            help: None,
            value: Some(j),
        });
    };
    crate::spec::check_keys(
        m,
        &["type", "default", "help"],
        &format!("parameter `{name}`"),
        errs,
    );
    let get = |k: &str| m.iter().find(|(kk, _)| kk.name == k).map(|(_, v)| v);
    let default = get("default").map(YValue::to_json).filter(|d| !d.is_null());
    let ty = match get("type") {
        Some(t) => match t.as_str().and_then(ParamType::parse) {
            Some(ty) => ty,
            None => {
                let help = t
                    .as_str()
                    .and_then(|s| did_you_mean(s, ["int", "float", "string", "bool", "list"]));
                errs.push(
                    Diagnostic::at(
                        t.pos,
                        "parameter `type` must be one of int, float, string, bool, list",
                    )
                    .with_help(help),
                );
                return None;
            }
        },
        None => match &default {
            Some(d) => ParamType::of(d),
            None => {
                errs.push(Diagnostic::at(
                    pos,
                    format!("parameter `{name}` needs a `type` or a `default`"),
                ));
                return None;
            }
        },
    };
    let default = match default.map(|d| ty.coerce(d)) {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            let p = get("default").map(|d| d.pos).unwrap_or(pos);
            errs.push(Diagnostic::at(
                p,
                format!("default of parameter `{name}`: {e}"),
            ));
            return None;
        }
        None => None,
    };
    let help = get("help").and_then(|h| h.as_str().map(str::to_string));
    Some(ParamSpec {
        name: name.into(),
        pos,
        ty,
        value: default.clone(),
        default,
        help,
    })
}

/// Replaces `${params.name}` in every string of `v`. A string that is exactly one reference
/// takes the parameter's typed value; otherwise the value is formatted into the text.
/// `$${` stands for a literal `${`.
pub fn substitute(v: &YValue, params: &[ParamSpec], errs: &mut Vec<Diagnostic>) -> YValue {
    match &v.kind {
        YKind::Scalar(Scalar::Str { value, plain }) if value.contains("${") => {
            substitute_str(value, *plain, v.pos, params, errs)
        }
        YKind::Seq(items) => YValue {
            pos: v.pos,
            kind: YKind::Seq(items.iter().map(|i| substitute(i, params, errs)).collect()),
        },
        YKind::Map(entries) => YValue {
            pos: v.pos,
            kind: YKind::Map(
                entries
                    .iter()
                    .map(|(k, x)| (k.clone(), substitute(x, params, errs)))
                    .collect(),
            ),
        },
        _ => v.clone(),
    }
}

fn substitute_str(
    s: &str,
    plain: bool,
    pos: Pos,
    params: &[ParamSpec],
    errs: &mut Vec<Diagnostic>,
) -> YValue {
    let mut out = String::new();
    let mut rest = s;
    let mut offset = 0usize;
    let mut whole: Option<J> = None;
    while let Some(i) = rest.find("${") {
        if i > 0 && rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            offset += i + 2;
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let at = if plain {
            Pos::new(pos.line, pos.col + s[..offset + i].chars().count())
        } else {
            pos
        };
        let Some(end) = rest[i..].find('}') else {
            errs.push(Diagnostic::at(at, "unclosed `${` in template"));
            return YValue {
                pos,
                kind: YKind::Scalar(Scalar::Str {
                    value: s.into(),
                    plain,
                }),
            };
        };
        let expr = rest[i + 2..i + end].trim();
        let value = match expr.strip_prefix("params.") {
            Some(name) => match params.iter().find(|p| p.name == name) {
                Some(p) => p.value.clone(),
                None => {
                    let help = did_you_mean(name, params.iter().map(|p| p.name.as_str()));
                    errs.push(
                        Diagnostic::at(
                            at,
                            format!("undefined parameter `{name}` in `${{{expr}}}`"),
                        )
                        .with_help(help),
                    );
                    None
                }
            },
            None => {
                errs.push(Diagnostic::at(at, format!("unknown template `${{{expr}}}`: only `${{params.NAME}}` is supported (write `$${{` for a literal `${{`)")));
                None
            }
        };
        if i == 0 && end + 1 == rest.len() && offset == 0 {
            whole = value.clone();
        }
        match value {
            Some(J::String(t)) => out.push_str(&t),
            Some(J::Array(a)) => out.push_str(&serde_json::to_string(&a).unwrap_or_default()),
            Some(other) => out.push_str(&other.to_string()),
            None => {}
        }
        offset += i + end + 1;
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    if let Some(w) = whole {
        return YValue::from_json(&w, pos);
    }
    YValue {
        pos,
        kind: YKind::Scalar(Scalar::Str { value: out, plain }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(src: &str, ov: &[(&str, &str)]) -> (Vec<ParamSpec>, Vec<Diagnostic>) {
        let v = crate::yaml::parse(src).unwrap();
        let ov: Vec<(String, String)> = ov
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let mut errs = vec![];
        let p = parse_params(Some(&v), &ov, &mut errs);
        (p, errs)
    }

    #[test]
    fn overrides_are_type_checked() {
        let (p, e) = params("n: {type: int, default: 3}\ns: hello\n", &[("n", "7")]);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(p[0].value, Some(J::from(7)));
        let (_, e) = params("n: {type: int, default: 3}\n", &[("n", "seven")]);
        assert!(
            e[0].message.contains("expected int, found a string"),
            "{e:?}"
        );
        let (_, e) = params("n: {type: int, default: 3}\n", &[("m", "1")]);
        assert_eq!(e[0].help.as_deref(), Some("did you mean `n`?"));
        assert!(e[0].message.contains("declares no parameter `m`"));
    }

    #[test]
    fn substitution_keeps_types_and_positions() {
        let (p, _) = params("n: 5\nname: x\n", &[]);
        let v =
            crate::yaml::parse("a: ${params.n}\nb: q<${params.n}\nc: ${params.nn}\nd: $${lit}\n")
                .unwrap();
        let mut errs = vec![];
        let out = substitute(&v, &p, &mut errs).to_json();
        assert_eq!(out["a"], J::from(5));
        assert_eq!(out["b"], J::from("q<5"));
        assert_eq!(out["d"], J::from("${lit}"));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].pos, Some(Pos::new(3, 4)));
        assert_eq!(errs[0].help.as_deref(), Some("did you mean `n`?"));
    }
}
