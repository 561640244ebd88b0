//! Checks a `with:` block against its operator's JSON Schema, reporting every problem at the
//! position of the offending value (missing, unknown, wrongly typed and out-of-range fields).
//!
//! Handles the subset of JSON Schema that `schemars` emits for config structs: `$ref`/`$defs`,
//! `type` (also as a list, e.g. `["string", "null"]`), `properties`, `required`,
//! `additionalProperties`, `items`, `enum`, `const`, `oneOf`/`anyOf`, `minimum`/`maximum`
//! (and exclusive forms), `minLength`, `minItems`.

use crate::diag::{did_you_mean, Diagnostic, Pos};
use crate::yaml::{Scalar, YKind, YValue};
use serde_json::Value as J;

/// Checks `value` against `schema` (whose `$defs` are resolved from `schema` itself).
pub fn check(value: &YValue, schema: &J, path: &str) -> Vec<Diagnostic> {
    let mut errs = vec![];
    check_at(value, schema, schema, path, &mut errs);
    errs
}

fn resolve<'a>(schema: &'a J, root: &'a J) -> &'a J {
    let mut s = schema;
    for _ in 0..16 {
        match s.get("$ref").and_then(J::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or("");
                let defs = root.get("$defs").or_else(|| root.get("definitions"));
                match defs.and_then(|d| d.get(name)) {
                    Some(t) => s = t,
                    None => return s,
                }
            }
            None => return s,
        }
    }
    s
}

fn type_matches(ty: &str, v: &YValue) -> bool {
    match (ty, &v.kind) {
        ("null", YKind::Scalar(Scalar::Null)) => true,
        ("boolean", YKind::Scalar(Scalar::Bool(_))) => true,
        ("integer", YKind::Scalar(Scalar::Int(_))) => true,
        ("integer", YKind::Scalar(Scalar::Float(f))) => f.fract() == 0.0,
        ("number", YKind::Scalar(Scalar::Int(_) | Scalar::Float(_))) => true,
        ("string", YKind::Scalar(Scalar::Str { .. })) => true,
        ("array", YKind::Seq(_)) => true,
        ("object", YKind::Map(_)) => true,
        _ => false,
    }
}

fn type_word(ty: &str) -> &'static str {
    match ty {
        "null" => "null",
        "boolean" => "a boolean",
        "integer" => "an integer",
        "number" => "a number",
        "string" => "a string",
        "array" => "a list",
        "object" => "a mapping",
        _ => "a value",
    }
}

fn field(path: &str) -> String {
    if path.is_empty() {
        "value".into()
    } else {
        format!("`{path}`")
    }
}

fn number(v: &YValue) -> Option<f64> {
    match v.kind {
        YKind::Scalar(Scalar::Int(i)) => Some(i as f64),
        YKind::Scalar(Scalar::Float(f)) => Some(f),
        _ => None,
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn check_at(v: &YValue, schema: &J, root: &J, path: &str, errs: &mut Vec<Diagnostic>) {
    let s = resolve(schema, root);
    if s == &J::Bool(true) || s.as_object().is_some_and(|o| o.is_empty()) {
        return;
    }
    // Alternatives (enums of constants, Option<T>, untagged unions).
    let alts = s
        .get("oneOf")
        .or_else(|| s.get("anyOf"))
        .and_then(J::as_array);
    if let Some(alts) = alts {
        let consts: Vec<&str> = alts
            .iter()
            .filter_map(|a| {
                let a = resolve(a, root);
                a.get("const").and_then(J::as_str).or_else(|| {
                    a.get("enum")
                        .and_then(J::as_array)
                        .filter(|e| e.len() == 1)
                        .and_then(|e| e[0].as_str())
                })
            })
            .collect();
        let mut best: Option<Vec<Diagnostic>> = None;
        for a in alts {
            let mut e = vec![];
            check_at(v, a, root, path, &mut e);
            if e.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|b| e.len() < b.len()) {
                best = Some(e);
            }
        }
        if !consts.is_empty() && consts.len() == alts.len() {
            errs.push(enum_error(v, path, &consts));
        } else if let Some(b) = best {
            errs.extend(b);
        }
        return;
    }
    if let Some(e) = s.get("enum").and_then(J::as_array) {
        let json = v.to_json();
        if !e.contains(&json) {
            let names: Vec<&str> = e.iter().filter_map(J::as_str).collect();
            errs.push(enum_error(v, path, &names));
        }
        return;
    }
    if let Some(c) = s.get("const") {
        if &v.to_json() != c {
            errs.push(Diagnostic::at(
                v.pos,
                format!("{} must be {c}", field(path)),
            ));
        }
        return;
    }
    let types: Vec<&str> = match s.get("type") {
        Some(J::String(t)) => vec![t.as_str()],
        Some(J::Array(ts)) => ts.iter().filter_map(J::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, v)) {
        let want: Vec<&str> = types
            .iter()
            .filter(|t| **t != "null")
            .map(|t| type_word(t))
            .collect();
        let want = if want.is_empty() {
            "null".to_string()
        } else {
            want.join(" or ")
        };
        errs.push(Diagnostic::at(
            v.pos,
            format!("{} must be {want}, found {}", field(path), v.type_name()),
        ));
        return;
    }
    match &v.kind {
        YKind::Map(entries) => check_object(v.pos, entries, s, root, path, errs),
        YKind::Seq(items) => {
            if let Some(min) = s.get("minItems").and_then(J::as_u64) {
                if (items.len() as u64) < min {
                    errs.push(Diagnostic::at(
                        v.pos,
                        format!(
                            "{} needs at least {min} item(s), found {}",
                            field(path),
                            items.len()
                        ),
                    ));
                }
            }
            if let Some(item_schema) = s.get("items") {
                for (i, it) in items.iter().enumerate() {
                    check_at(it, item_schema, root, &format!("{path}[{i}]"), errs);
                }
            }
        }
        YKind::Scalar(Scalar::Str { value, .. }) => {
            if let Some(min) = s.get("minLength").and_then(J::as_u64) {
                if (value.chars().count() as u64) < min {
                    errs.push(Diagnostic::at(
                        v.pos,
                        format!(
                            "{} must not be shorter than {min} character(s)",
                            field(path)
                        ),
                    ));
                }
            }
        }
        _ => {
            if let Some(n) = number(v) {
                check_range(v.pos, n, s, path, errs);
            }
        }
    }
}

fn enum_error(v: &YValue, path: &str, names: &[&str]) -> Diagnostic {
    let list = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let got = match v.as_str() {
        Some(s) => format!("`{s}`"),
        None => v.type_name().to_string(),
    };
    let help = v
        .as_str()
        .and_then(|s| did_you_mean(s, names.iter().copied()));
    Diagnostic::at(
        v.pos,
        format!("{} must be one of {list}, found {got}", field(path)),
    )
    .with_help(help)
}

fn check_range(pos: Pos, n: f64, s: &J, path: &str, errs: &mut Vec<Diagnostic>) {
    let f = |k: &str| s.get(k).and_then(J::as_f64);
    if let Some(min) = f("minimum") {
        if n < min {
            errs.push(Diagnostic::at(
                pos,
                format!(
                    "{} must be at least {}, found {}",
                    field(path),
                    fmt_num(min),
                    fmt_num(n)
                ),
            ));
        }
    }
    if let Some(max) = f("maximum") {
        if n > max {
            errs.push(Diagnostic::at(
                pos,
                format!(
                    "{} must be at most {}, found {}",
                    field(path),
                    fmt_num(max),
                    fmt_num(n)
                ),
            ));
        }
    }
    if let Some(min) = f("exclusiveMinimum") {
        if n <= min {
            errs.push(Diagnostic::at(
                pos,
                format!(
                    "{} must be greater than {}, found {}",
                    field(path),
                    fmt_num(min),
                    fmt_num(n)
                ),
            ));
        }
    }
    if let Some(max) = f("exclusiveMaximum") {
        if n >= max {
            errs.push(Diagnostic::at(
                pos,
                format!(
                    "{} must be less than {}, found {}",
                    field(path),
                    fmt_num(max),
                    fmt_num(n)
                ),
            ));
        }
    }
}

fn check_object(
    pos: Pos,
    entries: &[(crate::yaml::YKey, YValue)],
    s: &J,
    root: &J,
    path: &str,
    errs: &mut Vec<Diagnostic>,
) {
    let props = s.get("properties").and_then(J::as_object);
    let extra = s.get("additionalProperties");
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    let mut seen = std::collections::HashSet::new();
    for (k, val) in entries {
        if !seen.insert(k.name.as_str()) {
            errs.push(Diagnostic::at(
                k.pos,
                format!("duplicate key `{}`", join(&k.name)),
            ));
            continue;
        }
        match props.and_then(|p| p.get(&k.name)) {
            Some(ps) => check_at(val, ps, root, &join(&k.name), errs),
            None => match extra {
                Some(J::Bool(false)) => {
                    let names = props
                        .map(|p| p.keys().map(String::as_str).collect::<Vec<_>>())
                        .unwrap_or_default();
                    let help = did_you_mean(&k.name, names.iter().copied()).or_else(|| {
                        (!names.is_empty()).then(|| format!("known fields: {}", names.join(", ")))
                    });
                    errs.push(
                        Diagnostic::at(k.pos, format!("unknown field `{}`", join(&k.name)))
                            .with_help(help),
                    );
                }
                Some(extra_schema @ J::Object(_)) => {
                    check_at(val, extra_schema, root, &join(&k.name), errs)
                }
                _ => {}
            },
        }
    }
    if let Some(req) = s.get("required").and_then(J::as_array) {
        for r in req.iter().filter_map(J::as_str) {
            if !seen.contains(r) {
                errs.push(Diagnostic::at(
                    pos,
                    format!("missing required field `{}`", join(r)),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        query: String,
        #[schemars(range(min = 1, max = 10))]
        workers: Option<u32>,
        mode: Option<Mode>,
        #[serde(default)]
        paths: Vec<String>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Mode {
        Fast,
        Exact,
    }

    fn errs(src: &str) -> Vec<String> {
        let schema = serde_json::to_value(schemars::schema_for!(Cfg)).unwrap();
        let v = crate::yaml::parse(src).unwrap();
        check(&v, &schema, "")
            .into_iter()
            .map(|d| {
                format!(
                    "{}:{} {}",
                    d.pos.unwrap().line,
                    d.pos.unwrap().col,
                    d.message
                )
            })
            .collect()
    }

    #[test]
    fn valid_config_passes() {
        assert!(errs("query: x\nworkers: 3\nmode: fast\npaths: [a]\n").is_empty());
    }

    #[test]
    fn reports_every_problem_with_position() {
        let e = errs("querry: x\nworkers: 30\nmode: slow\npaths: 3\n");
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e[0].starts_with("1:1 unknown field `querry`"), "{e:?}");
        assert!(
            e[1].starts_with("2:10 `workers` must be at most 10"),
            "{e:?}"
        );
        assert!(e[2].starts_with("3:7 `mode` must be one of"), "{e:?}");
        assert!(e[3].starts_with("4:8 `paths` must be a list"), "{e:?}");
        assert!(e[4].contains("missing required field `query`"), "{e:?}");
    }

    #[test]
    fn wrong_type() {
        let e = errs("query: [1]\nworkers: many\n");
        assert!(
            e[0].contains("`query` must be a string, found a list"),
            "{e:?}"
        );
        assert!(e[1].contains("`workers` must be an integer"), "{e:?}");
    }
}
