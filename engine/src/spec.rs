//! The DAG file as written: typed structs that keep the source position of every value.
//!
//! [`parse`] reads a YAML file into a [`DagSpec`], substituting `${params.x}` and collecting
//! every problem it finds rather than stopping at the first.

use crate::diag::{did_you_mean, Diagnostic, Pos};
use crate::params::{self, ParamSpec};
use crate::units::{parse_bytes, parse_duration};
use crate::yaml::{self, Scalar, YKey, YKind, YValue};
use std::time::Duration;

/// A value with the position it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub pos: Pos,
}

/// Retry policy: up to `max` retries after the first attempt, waiting
/// `backoff * 2^(n-1)` (capped at `max_backoff`, with jitter) before retry `n`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    /// Number of retries after the first attempt.
    pub max: u32,
    /// Base delay.
    pub backoff: Duration,
    /// Longest delay between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max: 0,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// What a node needs to run: CPU cores (fractions allowed), memory in bytes, GPUs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// CPU cores.
    pub cpu: f64,
    /// Whether `cpu` was written (in the node or in `defaults:`) rather than defaulted: only
    /// then does it also bound the threads an operator starts.
    #[serde(default)]
    pub cpu_declared: bool,
    /// Memory in bytes (0: not accounted).
    pub memory: u64,
    /// Whole GPUs.
    pub gpu: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: 1.0,
            cpu_declared: false,
            memory: 0,
            gpu: 0,
        }
    }
}

/// Per-node settings that `defaults:` may set for every node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSettings {
    /// Retry policy.
    pub retries: Option<RetryPolicy>,
    /// Time limit per attempt.
    pub timeout: Option<Duration>,
    /// Resources.
    pub resources: Option<Resources>,
    /// Whether cached outputs may be reused.
    pub cache: Option<bool>,
    /// The executor profile the node runs on (`local`, or one the run's executor config
    /// defines); the run's default executor when unset.
    pub executor: Option<String>,
}

/// One `in:` entry: an input port and the `node.port` references feeding it.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// The input port.
    pub port: Spanned<String>,
    /// References `node.port`.
    pub refs: Vec<Spanned<String>>,
}

/// One node as written.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Node id, with the position of its key.
    pub id: Spanned<String>,
    /// Operator name.
    pub op: Option<Spanned<String>>,
    /// Inputs.
    pub inputs: Vec<InputSpec>,
    /// The operator's config, after templating.
    pub with: Option<YValue>,
    /// Nodes that must finish first although no data flows from them.
    pub after: Vec<Spanned<String>>,
    /// Settings for this node (falling back to `defaults:`).
    pub settings: NodeSettings,
    /// A description.
    pub description: Option<String>,
    /// `shards: N`: the node runs as N instances over partitions of its input, then one that
    /// merges them (see [`crate::operator::Sharding`]); `None` or 1 runs it whole.
    pub shards: Option<Spanned<u32>>,
}

/// Most instances one sharded node may have per stage.
pub const MAX_SHARDS: i64 = 1024;

/// A whole DAG file as written.
#[derive(Debug, Clone, PartialEq)]
pub struct DagSpec {
    /// The DAG's name (defaults to the file stem).
    pub name: String,
    /// A description.
    pub description: Option<String>,
    /// Declared parameters, with their resolved values.
    pub params: Vec<ParamSpec>,
    /// Defaults for every node.
    pub defaults: NodeSettings,
    /// The nodes, in file order.
    pub nodes: Vec<NodeSpec>,
}

const TOP_KEYS: &[&str] = &["name", "description", "params", "defaults", "nodes"];
const NODE_KEYS: &[&str] = &[
    "op",
    "in",
    "with",
    "after",
    "resources",
    "retries",
    "timeout",
    "cache",
    "executor",
    "shards",
    "description",
];
const DEFAULT_KEYS: &[&str] = &["resources", "retries", "timeout", "cache", "executor"];

/// Reports keys of `entries` that are not in `known`, and duplicates.
pub(crate) fn check_keys(
    entries: &[(YKey, YValue)],
    known: &[&str],
    what: &str,
    errs: &mut Vec<Diagnostic>,
) {
    let mut seen = std::collections::HashSet::new();
    for (k, _) in entries {
        if !known.contains(&k.name.as_str()) {
            let help = did_you_mean(&k.name, known.iter().copied())
                .or_else(|| Some(format!("{what} may have: {}", known.join(", "))));
            errs.push(
                Diagnostic::at(k.pos, format!("unknown key `{}` in {what}", k.name))
                    .with_help(help),
            );
        } else if !seen.insert(k.name.as_str()) {
            errs.push(Diagnostic::at(
                k.pos,
                format!("duplicate key `{}` in {what}", k.name),
            ));
        }
    }
}

fn get<'a>(entries: &'a [(YKey, YValue)], key: &str) -> Option<&'a YValue> {
    entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v)
}

fn want_str(v: &YValue, what: &str, errs: &mut Vec<Diagnostic>) -> Option<Spanned<String>> {
    match v.as_str() {
        Some(s) => Some(Spanned {
            value: s.to_string(),
            pos: v.pos,
        }),
        None => {
            errs.push(Diagnostic::at(
                v.pos,
                format!("{what} must be a string, found {}", v.type_name()),
            ));
            None
        }
    }
}

fn want_map<'a>(
    v: &'a YValue,
    what: &str,
    errs: &mut Vec<Diagnostic>,
) -> Option<&'a [(YKey, YValue)]> {
    match v.as_map() {
        Some(m) => Some(m),
        None if v.is_null() => Some(&[]),
        None => {
            errs.push(Diagnostic::at(
                v.pos,
                format!("{what} must be a mapping, found {}", v.type_name()),
            ));
            None
        }
    }
}

/// Most retries a node may have.
pub const MAX_RETRIES: i64 = 1000;

/// Longest timeout or backoff, in seconds (a year): the scheduler adds it to the clock.
pub const MAX_DURATION_SECS: u64 = 365 * 86_400;

fn want_duration(v: &YValue, what: &str, errs: &mut Vec<Diagnostic>) -> Option<Duration> {
    let too_long = || {
        format!(
            "must be at most {} days, found {}",
            MAX_DURATION_SECS / 86_400,
            describe(v)
        )
    };
    let r = match &v.kind {
        // `parse_duration` cannot represent every number it reads: check the magnitudes first.
        YKind::Scalar(Scalar::Str { value, .. }) if has_huge_number(value) => Err(too_long()),
        YKind::Scalar(Scalar::Str { value, .. }) => parse_duration(value),
        YKind::Scalar(Scalar::Int(i)) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
        _ => Err(format!(
            "must be a duration like 30s, 10m or 1h30m, found {}",
            v.type_name()
        )),
    };
    let r = r.and_then(|d| {
        if d.as_secs() > MAX_DURATION_SECS {
            Err(too_long())
        } else {
            Ok(d)
        }
    });
    r.map_err(|e| errs.push(Diagnostic::at(v.pos, format!("{what}: {e}"))))
        .ok()
}

/// Whether a duration text would be longer than 10^18 seconds even if every number in it
/// were days, which `parse_duration` cannot represent; such a text is longer than allowed
/// whatever its units (even all in milliseconds), and is reported before it is parsed.
fn has_huge_number(text: &str) -> bool {
    let most_secs: f64 = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|n| n.parse::<f64>().ok())
        .map(|x| x * 86_400.0)
        .sum();
    most_secs > 1e18
}

fn parse_retries(v: &YValue, errs: &mut Vec<Diagnostic>) -> Option<RetryPolicy> {
    let mut p = RetryPolicy::default();
    if let YKind::Scalar(Scalar::Int(n)) = v.kind {
        if !(0..=MAX_RETRIES).contains(&n) {
            errs.push(Diagnostic::at(
                v.pos,
                format!("`retries` must be an integer from 0 to {MAX_RETRIES}, found {n}"),
            ));
            return None;
        }
        p.max = n as u32;
        return Some(p);
    }
    let m = want_map(v, "`retries`", errs)?;
    check_keys(m, &["max", "backoff", "max_backoff"], "`retries`", errs);
    let n0 = errs.len();
    if let Some(max) = get(m, "max") {
        match max.kind {
            YKind::Scalar(Scalar::Int(n)) if (0..=MAX_RETRIES).contains(&n) => p.max = n as u32,
            _ => errs.push(Diagnostic::at(
                max.pos,
                format!(
                    "`retries.max` must be an integer from 0 to {MAX_RETRIES}, found {}",
                    describe(max)
                ),
            )),
        }
    }
    if let Some(b) = get(m, "backoff") {
        if let Some(d) = want_duration(b, "`retries.backoff`", errs) {
            p.backoff = d;
        }
    }
    if let Some(b) = get(m, "max_backoff") {
        if let Some(d) = want_duration(b, "`retries.max_backoff`", errs) {
            p.max_backoff = d;
        }
    }
    (errs.len() == n0).then_some(p)
}

fn describe(v: &YValue) -> String {
    match &v.kind {
        YKind::Scalar(Scalar::Int(i)) => i.to_string(),
        YKind::Scalar(Scalar::Float(f)) => f.to_string(),
        YKind::Scalar(Scalar::Str { value, .. }) => format!("`{value}`"),
        _ => v.type_name().to_string(),
    }
}

/// The most cores a node may ask for: more is a typo.
const MAX_CPUS: f64 = 65536.0;

fn parse_resources(v: &YValue, errs: &mut Vec<Diagnostic>) -> Option<Resources> {
    let m = want_map(v, "`resources`", errs)?;
    check_keys(m, &["cpu", "memory", "gpu"], "`resources`", errs);
    let n0 = errs.len();
    let mut r = Resources::default();
    if let Some(c) = get(m, "cpu") {
        r.cpu_declared = true;
        match c.kind {
            YKind::Scalar(Scalar::Int(i)) if i > 0 && i <= MAX_CPUS as i64 => r.cpu = i as f64,
            YKind::Scalar(Scalar::Float(f)) if f > 0.0 && f <= MAX_CPUS => r.cpu = f,
            _ => errs.push(Diagnostic::at(
                c.pos,
                format!(
                    "`resources.cpu` must be a positive number of cores, at most {MAX_CPUS}, found {}",
                    describe(c)
                ),
            )),
        }
    }
    if let Some(mem) = get(m, "memory") {
        match &mem.kind {
            YKind::Scalar(Scalar::Int(i)) if *i >= 0 => r.memory = *i as u64,
            YKind::Scalar(Scalar::Str { value, .. }) => match parse_bytes(value) {
                Ok(b) => r.memory = b,
                Err(e) => errs.push(Diagnostic::at(mem.pos, format!("`resources.memory`: {e}"))),
            },
            _ => errs.push(Diagnostic::at(
                mem.pos,
                format!(
                    "`resources.memory` must be a size like 512MiB or 2GiB, found {}",
                    describe(mem)
                ),
            )),
        }
    }
    if let Some(g) = get(m, "gpu") {
        match g.kind {
            YKind::Scalar(Scalar::Int(i)) if (0..=1024).contains(&i) => r.gpu = i as u32,
            _ => errs.push(Diagnostic::at(
                g.pos,
                format!(
                    "`resources.gpu` must be a whole number of GPUs, found {}",
                    describe(g)
                ),
            )),
        }
    }
    (errs.len() == n0).then_some(r)
}

fn parse_settings(m: &[(YKey, YValue)], errs: &mut Vec<Diagnostic>) -> NodeSettings {
    let mut s = NodeSettings::default();
    if let Some(v) = get(m, "retries") {
        s.retries = parse_retries(v, errs);
    }
    if let Some(v) = get(m, "timeout") {
        s.timeout = want_duration(v, "`timeout`", errs);
        if s.timeout == Some(Duration::ZERO) {
            errs.push(Diagnostic::at(v.pos, "`timeout` must be longer than zero"));
        }
    }
    if let Some(v) = get(m, "resources") {
        s.resources = parse_resources(v, errs);
    }
    if let Some(v) = get(m, "cache") {
        match v.kind {
            YKind::Scalar(Scalar::Bool(b)) => s.cache = Some(b),
            _ => errs.push(Diagnostic::at(
                v.pos,
                format!("`cache` must be true or false, found {}", v.type_name()),
            )),
        }
    }
    if let Some(v) = get(m, "executor") {
        match v.as_str() {
            Some(name) if is_valid_id(name) => s.executor = Some(name.to_string()),
            _ => errs.push(Diagnostic::at(
                v.pos,
                format!(
                    "`executor` must name an executor profile (letters, digits, `_`, `-`), found {}",
                    describe(v)
                ),
            )),
        }
    }
    s
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_refs(v: &YValue, what: &str, errs: &mut Vec<Diagnostic>) -> Vec<Spanned<String>> {
    match &v.kind {
        YKind::Seq(items) => items
            .iter()
            .filter_map(|i| want_str(i, what, errs))
            .collect(),
        _ => want_str(v, what, errs).into_iter().collect(),
    }
}

fn parse_node(key: &YKey, v: &YValue, errs: &mut Vec<Diagnostic>) -> NodeSpec {
    let mut node = NodeSpec {
        id: Spanned {
            value: key.name.clone(),
            pos: key.pos,
        },
        op: None,
        inputs: vec![],
        with: None,
        after: vec![],
        settings: NodeSettings::default(),
        description: None,
        shards: None,
    };
    if !is_valid_id(&key.name) {
        errs.push(Diagnostic::at(
            key.pos,
            format!(
                "invalid node id `{}`: use letters, digits, `_` and `-` only",
                key.name
            ),
        ));
    }
    let Some(m) = want_map(v, &format!("node `{}`", key.name), errs) else {
        return node;
    };
    check_keys(m, NODE_KEYS, &format!("node `{}`", key.name), errs);
    match get(m, "op") {
        Some(op) => node.op = want_str(op, "`op`", errs),
        None => errs.push(Diagnostic::at(
            key.pos,
            format!("node `{}` has no `op`", key.name),
        )),
    }
    if let Some(i) = get(m, "in") {
        if let Some(im) = want_map(i, "`in`", errs) {
            let mut seen = std::collections::HashSet::new();
            for (port, refs) in im {
                if !seen.insert(port.name.as_str()) {
                    errs.push(Diagnostic::at(
                        port.pos,
                        format!("duplicate input port `{}`", port.name),
                    ));
                    continue;
                }
                node.inputs.push(InputSpec {
                    port: Spanned {
                        value: port.name.clone(),
                        pos: port.pos,
                    },
                    refs: parse_refs(refs, "an input reference `node.port`", errs),
                });
            }
        }
    }
    if let Some(w) = get(m, "with") {
        node.with = Some(w.clone());
    }
    if let Some(a) = get(m, "after") {
        node.after = parse_refs(a, "an `after` entry", errs);
    }
    if let Some(d) = get(m, "description") {
        node.description = want_str(d, "`description`", errs).map(|s| s.value);
    }
    if let Some(v) = get(m, "shards") {
        match v.kind {
            YKind::Scalar(Scalar::Int(n)) if (1..=MAX_SHARDS).contains(&n) => {
                node.shards = Some(Spanned {
                    value: n as u32,
                    pos: v.pos,
                })
            }
            _ => errs.push(Diagnostic::at(
                v.pos,
                format!(
                    "`shards` must be a whole number from 1 to {MAX_SHARDS}, found {}",
                    describe(v)
                ),
            )),
        }
    }
    node.settings = parse_settings(m, errs);
    node
}

/// Most values `${params.x}` templates may add to one file: a string that is exactly one
/// reference takes the parameter's value, so a list parameter is copied at every such use.
pub const MAX_TEMPLATE_VALUES: usize = 500_000;

/// Most bytes of text `${params.x}` templates may add to one file.
pub const MAX_TEMPLATE_BYTES: usize = 32 << 20;

/// Most `${…}` templates one file may hold in `defaults` and `nodes`.
pub const MAX_TEMPLATES: usize = 100_000;

/// What substituting a parameter costs: values and string bytes where it is a whole value,
/// bytes where it is formatted into text.
#[derive(Clone, Copy)]
struct ParamCost {
    values: usize,
    bytes: usize,
    text: usize,
}

fn param_cost(v: &serde_json::Value) -> ParamCost {
    use serde_json::Value as J;
    let mut c = ParamCost {
        values: 0,
        bytes: 0,
        text: match v {
            J::String(s) => s.len(),
            other => other.to_string().len(),
        },
    };
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        c.values += 1;
        match v {
            J::String(s) => c.bytes += s.len(),
            J::Array(a) => stack.extend(a),
            J::Object(o) => {
                c.values += o.len();
                c.bytes += o.keys().map(String::len).sum::<usize>();
                stack.extend(o.values());
            }
            _ => {}
        }
    }
    c
}

/// Calls `f(name, whole)` for every `${params.name}` in `s`, as `params::substitute` reads
/// them; `whole` when the string is exactly that reference.
fn template_refs(s: &str, mut f: impl FnMut(&str, bool)) {
    let mut rest = s;
    let mut first = true;
    while let Some(i) = rest.find("${") {
        if i > 0 && rest[..i].ends_with('$') {
            rest = &rest[i + 2..];
            first = false;
            continue;
        }
        let Some(end) = rest[i..].find('}') else {
            return;
        };
        let whole = first && i == 0 && end + 1 == rest.len();
        if let Some(name) = rest[i + 2..i + end].trim().strip_prefix("params.") {
            f(name, whole);
        }
        rest = &rest[i + end + 1..];
        first = false;
    }
}

/// Refuses files with more than [`MAX_TEMPLATES`] templates, or whose templates would grow
/// past [`MAX_TEMPLATE_VALUES`] values or [`MAX_TEMPLATE_BYTES`] bytes once substituted (a few
/// kilobytes of references to a large parameter could otherwise take gigabytes), at the
/// string where the limit is crossed.
fn check_template_growth<'a>(
    roots: impl Iterator<Item = &'a YValue>,
    params: &[ParamSpec],
) -> Option<Diagnostic> {
    let costs: std::collections::HashMap<&str, ParamCost> = params
        .iter()
        .filter_map(|p| Some((p.name.as_str(), param_cost(p.value.as_ref()?))))
        .collect();
    let (mut values, mut bytes, mut templates) = (0usize, 0usize, 0usize);
    let mut stack: Vec<&YValue> = roots.collect();
    while let Some(v) = stack.pop() {
        match &v.kind {
            YKind::Scalar(Scalar::Str { value, .. }) if value.contains("${") => {
                templates += value.matches("${").count();
                if templates > MAX_TEMPLATES {
                    return Some(Diagnostic::at(
                        v.pos,
                        format!("the DAG holds more than {MAX_TEMPLATES} `${{…}}` templates"),
                    ));
                }
                template_refs(value, |name, whole| {
                    if let Some(c) = costs.get(name) {
                        if whole {
                            values = values.saturating_add(c.values);
                            bytes = bytes.saturating_add(c.bytes);
                        } else {
                            bytes = bytes.saturating_add(c.text);
                        }
                    }
                });
                if values > MAX_TEMPLATE_VALUES || bytes > MAX_TEMPLATE_BYTES {
                    return Some(Diagnostic::at(
                        v.pos,
                        format!(
                            "`${{params.…}}` templates would add more than {MAX_TEMPLATE_VALUES} \
                             values or {} MiB of text in all; use large parameters less often",
                            MAX_TEMPLATE_BYTES >> 20
                        ),
                    ));
                }
            }
            YKind::Seq(items) => stack.extend(items),
            YKind::Map(entries) => stack.extend(entries.iter().map(|(_, v)| v)),
            YKind::Scalar(_) => {}
        }
    }
    None
}

/// Chooses how parameters are quoted in a node's config: given the node's `op` and the
/// path of keys below its `with:`, the [`params::Quoting`] of that string.
pub type ConfigQuoting<'a> = &'a dyn Fn(&str, &[String]) -> params::Quoting;

/// Parses a DAG file. `overrides` are `--param name=value` pairs from the command line.
/// Returns the spec (possibly partial) and every problem found.
pub fn parse(
    file_stem: &str,
    source: &str,
    overrides: &[(String, String)],
) -> (Option<DagSpec>, Vec<Diagnostic>) {
    parse_with(file_stem, source, overrides, &|_, _| params::Quoting::Plain)
}

/// [`parse`], with parameters in node configs quoted as `quoting` says (e.g. for the shell
/// scripts of `shell` nodes).
pub fn parse_with(
    file_stem: &str,
    source: &str,
    overrides: &[(String, String)],
    quoting: ConfigQuoting<'_>,
) -> (Option<DagSpec>, Vec<Diagnostic>) {
    let mut errs = vec![];
    let root = match yaml::parse(source) {
        Ok(v) => v,
        Err(e) => return (None, vec![e]),
    };
    let Some(top) = root.as_map() else {
        errs.push(Diagnostic::at(
            root.pos,
            format!(
                "a DAG file must be a mapping with `nodes:`, found {}",
                root.type_name()
            ),
        ));
        return (None, errs);
    };
    check_keys(top, TOP_KEYS, "the DAG", &mut errs);
    let name = get(top, "name")
        .and_then(|v| want_str(v, "`name`", &mut errs))
        .map(|s| s.value);
    let description = get(top, "description")
        .and_then(|v| want_str(v, "`description`", &mut errs))
        .map(|s| s.value);
    let params = params::parse_params(get(top, "params"), overrides, &mut errs);
    let templated = [get(top, "defaults"), get(top, "nodes")];
    if let Some(e) = check_template_growth(templated.into_iter().flatten(), &params) {
        errs.push(e);
        return (None, errs);
    }
    let defaults = match get(top, "defaults") {
        Some(d) => {
            let d = params::substitute(d, &params, &mut errs);
            match want_map(&d, "`defaults`", &mut errs) {
                Some(m) => {
                    check_keys(m, DEFAULT_KEYS, "`defaults`", &mut errs);
                    parse_settings(m, &mut errs)
                }
                None => NodeSettings::default(),
            }
        }
        None => NodeSettings::default(),
    };
    let mut nodes = vec![];
    match get(top, "nodes") {
        None => errs.push(Diagnostic::at(root.pos, "the DAG has no `nodes:`")),
        Some(n) => {
            // Each node's `op`, to choose the quoting of the strings in its `with:`.
            let ops: std::collections::HashMap<&str, &str> = n
                .as_map()
                .unwrap_or(&[])
                .iter()
                .filter_map(|(k, v)| Some((k.name.as_str(), get(v.as_map()?, "op")?.as_str()?)))
                .collect();
            let choose = |path: &[String]| match path {
                [node, with, rest @ ..] if with == "with" => ops
                    .get(node.as_str())
                    .map(|op| quoting(op, rest))
                    .unwrap_or(params::Quoting::Plain),
                _ => params::Quoting::Plain,
            };
            let n = params::substitute_in(n, &params, &mut errs, &mut vec![], &choose);
            if let Some(m) = want_map(&n, "`nodes`", &mut errs) {
                let mut seen: std::collections::HashMap<&str, Pos> = Default::default();
                for (k, v) in m {
                    if let Some(first) = seen.get(k.name.as_str()) {
                        errs.push(Diagnostic::at(
                            k.pos,
                            format!(
                                "duplicate node id `{}` (first defined at line {})",
                                k.name, first.line
                            ),
                        ));
                        continue;
                    }
                    seen.insert(&k.name, k.pos);
                    nodes.push(parse_node(k, v, &mut errs));
                }
                if m.is_empty() {
                    errs.push(Diagnostic::at(n.pos, "`nodes` is empty"));
                }
            }
        }
    }
    let spec = DagSpec {
        name: name.unwrap_or_else(|| file_stem.to_string()),
        description,
        params,
        defaults,
        nodes,
    };
    (Some(spec), errs)
}
