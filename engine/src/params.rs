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
    /// A secret read from an environment variable: never written anywhere (see
    /// [`secret_ref`]).
    Secret,
}

/// What `${params.NAME}` of a secret parameter becomes in configs: a reference to the
/// environment variable, resolved inside the worker just before the operator runs (see
/// [`crate::secret`]). Configs, cache keys, manifests and records hold only this.
pub fn secret_ref(env: &str) -> String {
    format!("${{secrets.{env}}}")
}

impl ParamType {
    fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "int" | "integer" => ParamType::Int,
            "float" | "number" => ParamType::Float,
            "string" | "str" => ParamType::String,
            "bool" | "boolean" => ParamType::Bool,
            "list" | "array" => ParamType::List,
            "secret" => ParamType::Secret,
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
            ParamType::Secret => "secret",
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
    /// For secrets: the environment variable the value is read from.
    pub env: Option<String>,
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
        if p.ty == ParamType::Secret {
            errs.push(Diagnostic::global(format!(
                "--param {name}: `{name}` is a secret, read from ${} only: a command line is visible to other users and kept in run records",
                p.env.as_deref().unwrap_or("")
            )));
            continue;
        }
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
            env: None,
            value: Some(j),
        });
    };
    crate::spec::check_keys(
        m,
        &["type", "default", "help", "env"],
        &format!("parameter `{name}`"),
        errs,
    );
    let get = |k: &str| m.iter().find(|(kk, _)| kk.name == k).map(|(_, v)| v);
    if get("type").and_then(YValue::as_str) == Some("secret") {
        return parse_secret(name, pos, get("env"), get("default"), get("help"), errs);
    }
    if let Some(e) = get("env") {
        errs.push(Diagnostic::at(
            e.pos,
            format!("parameter `{name}`: `env` is only for `type: secret`"),
        ));
        return None;
    }
    let default = get("default").map(YValue::to_json).filter(|d| !d.is_null());
    let ty = match get("type") {
        Some(t) => match t.as_str().and_then(ParamType::parse) {
            Some(ty) => ty,
            None => {
                let help = t.as_str().and_then(|s| {
                    did_you_mean(s, ["int", "float", "string", "bool", "list", "secret"])
                });
                errs.push(
                    Diagnostic::at(
                        t.pos,
                        "parameter `type` must be one of int, float, string, bool, list, secret",
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
        env: None,
    })
}

fn parse_secret(
    name: &str,
    pos: Pos,
    env: Option<&YValue>,
    default: Option<&YValue>,
    help: Option<&YValue>,
    errs: &mut Vec<Diagnostic>,
) -> Option<ParamSpec> {
    if let Some(d) = default {
        errs.push(Diagnostic::at(
            d.pos,
            format!(
                "secret parameter `{name}` cannot have a default: its value comes from `env` only"
            ),
        ));
        return None;
    }
    let Some(env) = env else {
        errs.push(
            Diagnostic::at(pos, format!("secret parameter `{name}` needs `env`: the environment variable to read it from"))
                .with_help(Some(format!("e.g. `{name}: {{type: secret, env: OPENAI_API_KEY}}`"))),
        );
        return None;
    };
    let var = match env.as_str() {
        Some(v)
            if !v.is_empty()
                && !v.starts_with(|c: char| c.is_ascii_digit())
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            v.to_string()
        }
        _ => {
            errs.push(Diagnostic::at(
                env.pos,
                format!("`env` of secret parameter `{name}` must be an environment variable name (letters, digits, `_`)"),
            ));
            return None;
        }
    };
    let reference = J::String(secret_ref(&var));
    Some(ParamSpec {
        name: name.into(),
        pos,
        ty: ParamType::Secret,
        default: None,
        help: help.and_then(|h| h.as_str().map(str::to_string)),
        env: Some(var),
        value: Some(reference),
    })
}

/// How a parameter's value is written into the text of a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// As it is.
    Plain,
    /// The string is a `sh` script: the value is quoted for the place it stands in (outside
    /// quotes, inside `"…"` or inside `'…'`), so it is always one literal word and can never
    /// run as code. A secret becomes a quoted expansion of its environment variable, so the
    /// script's text never holds its value.
    Shell,
}

/// Replaces `${params.name}` in every string of `v`. A string that is exactly one reference
/// takes the parameter's typed value; otherwise the value is formatted into the text.
/// `$${` stands for a literal `${`.
pub fn substitute(v: &YValue, params: &[ParamSpec], errs: &mut Vec<Diagnostic>) -> YValue {
    substitute_in(v, params, errs, &mut vec![], &|_| Quoting::Plain)
}

/// [`substitute`], with each string's [`Quoting`] chosen by `quoting` from its path of
/// mapping keys (sequence items add no key) below `v`.
pub fn substitute_in(
    v: &YValue,
    params: &[ParamSpec],
    errs: &mut Vec<Diagnostic>,
    path: &mut Vec<String>,
    quoting: &dyn Fn(&[String]) -> Quoting,
) -> YValue {
    match &v.kind {
        YKind::Scalar(Scalar::Str { value, plain }) if value.contains("${") => {
            substitute_str(value, *plain, v.pos, params, errs, quoting(path))
        }
        YKind::Seq(items) => YValue {
            pos: v.pos,
            kind: YKind::Seq(
                items
                    .iter()
                    .map(|i| substitute_in(i, params, errs, path, quoting))
                    .collect(),
            ),
        },
        YKind::Map(entries) => YValue {
            pos: v.pos,
            kind: YKind::Map(
                entries
                    .iter()
                    .map(|(k, x)| {
                        path.push(k.name.clone());
                        let out = substitute_in(x, params, errs, path, quoting);
                        path.pop();
                        (k.clone(), out)
                    })
                    .collect(),
            ),
        },
        _ => v.clone(),
    }
}

/// `n` with `$ref: "#/$defs/Name"` followed (schemars puts nested types there).
fn resolve_ref<'a>(schema: &'a J, mut n: &'a J) -> &'a J {
    for _ in 0..8 {
        let Some(name) = n
            .get("$ref")
            .and_then(J::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        else {
            break;
        };
        match schema.get("$defs").and_then(|d| d.get(name)) {
            Some(t) => n = t,
            None => break,
        }
    }
    n
}

/// The [`Quoting`] of the config field at `path` (mapping keys) under the config's JSON
/// Schema: [`Quoting::Shell`] where the field's schema says `"x-zest-template": "shell"`.
pub fn quoting_in_schema(schema: &J, path: &[String]) -> Quoting {
    let mut node = resolve_ref(schema, schema);
    for key in path {
        match node.get("properties").and_then(|p| p.get(key)) {
            Some(n) => node = resolve_ref(schema, n),
            None => return Quoting::Plain,
        }
    }
    if node.get("x-zest-template").and_then(J::as_str) == Some("shell") {
        Quoting::Shell
    } else {
        Quoting::Plain
    }
}

/// The quoting context `sh` is in at the end of `script`: outside quotes, inside `"…"`, or
/// inside `'…'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShellContext {
    Bare,
    Double,
    Single,
}

fn shell_context(script: &str) -> ShellContext {
    let mut ctx = ShellContext::Bare;
    let mut chars = script.chars();
    while let Some(c) = chars.next() {
        match (ctx, c) {
            (ShellContext::Bare, '\\') | (ShellContext::Double, '\\') => {
                chars.next();
            }
            (ShellContext::Bare, '\'') => ctx = ShellContext::Single,
            (ShellContext::Bare, '"') => ctx = ShellContext::Double,
            (ShellContext::Single, '\'') => ctx = ShellContext::Bare,
            (ShellContext::Double, '"') => ctx = ShellContext::Bare,
            _ => {}
        }
    }
    ctx
}

/// `text` written so that `sh`, reading it at the end of `script_so_far`, takes it
/// literally.
fn shell_quote(text: &str, script_so_far: &str) -> String {
    match shell_context(script_so_far) {
        ShellContext::Bare => format!("'{}'", text.replace('\'', "'\\''")),
        ShellContext::Single => text.replace('\'', "'\\''"),
        ShellContext::Double => {
            let mut out = String::with_capacity(text.len());
            for c in text.chars() {
                if matches!(c, '"' | '\\' | '$' | '`') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
    }
}

/// A quoted expansion of environment variable `var` at the end of `script_so_far`.
fn shell_expansion(var: &str, script_so_far: &str) -> String {
    match shell_context(script_so_far) {
        ShellContext::Bare => format!("\"${{{var}}}\""),
        ShellContext::Double => format!("${{{var}}}"),
        ShellContext::Single => format!("'\"${{{var}}}\"'"),
    }
}

fn substitute_str(
    s: &str,
    plain: bool,
    pos: Pos,
    params: &[ParamSpec],
    errs: &mut Vec<Diagnostic>,
    quoting: Quoting,
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
        let mut secret_env = None;
        let value = match expr.strip_prefix("params.") {
            Some(name) => match params.iter().find(|p| p.name == name) {
                Some(p) => {
                    secret_env = p.env.clone();
                    p.value.clone()
                }
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
        if i == 0 && end + 1 == rest.len() && offset == 0 && quoting == Quoting::Plain {
            whole = value.clone();
        }
        let text = match value {
            Some(J::String(t)) => t,
            Some(J::Array(a)) => serde_json::to_string(&a).unwrap_or_default(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        match (quoting, &secret_env) {
            (Quoting::Plain, _) => out.push_str(&text),
            (Quoting::Shell, Some(var)) => out.push_str(&shell_expansion(var, &out)),
            (Quoting::Shell, None) => out.push_str(&shell_quote(&text, &out)),
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
    fn shell_quoting_follows_the_context() {
        let (p, _) = params("name: \"x'; rm -rf / #\"\n", &[]);
        let sub = |src: &str| {
            let v = crate::yaml::parse(src).unwrap();
            let mut errs = vec![];
            let out = substitute_in(&v, &p, &mut errs, &mut vec![], &|_| Quoting::Shell);
            assert!(errs.is_empty(), "{errs:?}");
            out.to_json()["run"].as_str().unwrap().to_string()
        };
        assert_eq!(
            sub("run: echo ${params.name}\n"),
            r#"echo 'x'\''; rm -rf / #'"#
        );
        assert_eq!(
            sub("run: 'echo \"${params.name}\"'\n"),
            r#"echo "x'; rm -rf / #""#
        );
        assert_eq!(
            sub("run: \"echo '${params.name}'\"\n"),
            r#"echo 'x'\''; rm -rf / #'"#
        );
        let (p, _) = params("n: 'a\"$b`c\\'\n", &[]);
        let v = crate::yaml::parse("run: 'echo \"${params.n}\"'\n").unwrap();
        let out = substitute_in(&v, &p, &mut vec![], &mut vec![], &|_| Quoting::Shell);
        assert_eq!(out.to_json()["run"], J::from(r#"echo "a\"\$b\`c\\""#));
    }

    #[test]
    fn secrets_become_references_and_refuse_overrides() {
        let (p, e) = params("k: {type: secret, env: OPENAI_API_KEY}\n", &[]);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(p[0].value, Some(J::from("${secrets.OPENAI_API_KEY}")));
        let (_, e) = params("k: {type: secret, env: OPENAI_API_KEY}\n", &[("k", "v")]);
        assert!(e[0].message.contains("is a secret"), "{e:?}");
        let (_, e) = params("k: {type: secret}\n", &[]);
        assert!(e[0].message.contains("needs `env`"), "{e:?}");
        let (_, e) = params("k: {type: secret, env: X, default: y}\n", &[]);
        assert!(e[0].message.contains("cannot have a default"), "{e:?}");
        let v =
            crate::yaml::parse("run: 'curl -H \"A: ${params.k}\"'\nenv: ${params.k}\n").unwrap();
        let (p, _) = params("k: {type: secret, env: OPENAI_API_KEY}\n", &[]);
        let out = substitute_in(&v, &p, &mut vec![], &mut vec![], &|path| {
            if path == ["run"] {
                Quoting::Shell
            } else {
                Quoting::Plain
            }
        })
        .to_json();
        assert_eq!(out["run"], J::from(r#"curl -H "A: ${OPENAI_API_KEY}""#));
        assert_eq!(out["env"], J::from("${secrets.OPENAI_API_KEY}"));
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
