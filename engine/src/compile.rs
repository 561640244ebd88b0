//! The compiler: a [`DagSpec`] becomes a checked [`Plan`] before anything runs.
//!
//! Checks, each reported at its source position: unknown operators, `with:` blocks against
//! the operator's config schema, dangling and malformed `node.port` references, unknown
//! ports, port type mismatches (including required dataset columns), missing required
//! inputs, `after:` targets, and cycles (naming every node on them).

use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Pos};
use crate::operator::{
    part_port, PortSpec, PortType, Ports, Registry, ShardPos, Sharding, MERGE_STAGE, PARTS_PORT,
};
use crate::plan::{Edge, Plan, PlanNode, PortRef};
use crate::schema_check;
use crate::spec::{self, DagSpec, NodeSpec, RetryPolicy};
use crate::yaml::{YKind, YValue};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Reads, parses and compiles a DAG file.
pub fn compile_file(
    path: &Path,
    overrides: &[(String, String)],
    registry: &Registry,
) -> Result<Plan, Diagnostics> {
    let file = path.display().to_string();
    let source = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            return Err(Diagnostics {
                file,
                source: String::new(),
                items: vec![Diagnostic::global(format!("cannot read the file: {e}"))],
            })
        }
    };
    compile_source(&file, &source, overrides, registry)
}

/// Parses and compiles DAG text; `file` is used in messages and as the default name.
pub fn compile_source(
    file: &str,
    source: &str,
    overrides: &[(String, String)],
    registry: &Registry,
) -> Result<Plan, Diagnostics> {
    let stem = Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("dag")
        .to_string();
    // Strings whose schema marks them as shell scripts get their parameters quoted.
    let quoting = |op: &str, path: &[String]| match registry.get(op) {
        Some(o) => crate::params::quoting_in_schema(o.config_schema(), path),
        None => crate::params::Quoting::Plain,
    };
    let (spec, mut errs) = spec::parse_with(&stem, source, overrides, &quoting);
    let plan = spec.map(|s| compile(&s, registry, &mut errs));
    errs.sort_by_key(|d| d.pos.map(|p| (p.line, p.col)).unwrap_or((0, 0)));
    errs.dedup();
    match plan {
        Some(p) if errs.is_empty() => Ok(p),
        _ => Err(Diagnostics {
            file: file.to_string(),
            source: source.to_string(),
            items: errs,
        }),
    }
}

struct Resolved<'a> {
    spec: &'a NodeSpec,
    op: Option<std::sync::Arc<dyn crate::operator::DynOperator>>,
    config: serde_json::Value,
    ports: Option<Ports>,
}

fn empty_map(pos: Pos) -> YValue {
    YValue {
        pos,
        kind: YKind::Map(vec![]),
    }
}

fn resolve_op<'a>(
    n: &'a NodeSpec,
    registry: &Registry,
    errs: &mut Vec<Diagnostic>,
) -> Resolved<'a> {
    let mut r = Resolved {
        spec: n,
        op: None,
        config: serde_json::Value::Null,
        ports: None,
    };
    let Some(op_name) = &n.op else { return r };
    let Some(op) = registry.get(&op_name.value) else {
        let help = did_you_mean(&op_name.value, registry.names())
            .or_else(|| Some("`zest ops` lists the operators".to_string()));
        errs.push(
            Diagnostic::at(op_name.pos, format!("unknown operator `{}`", op_name.value))
                .with_help(help),
        );
        return r;
    };
    let with = n
        .with
        .clone()
        .filter(|w| !w.is_null())
        .unwrap_or_else(|| empty_map(op_name.pos));
    let schema = op.config_schema();
    let problems = schema_check::check(&with, schema, "");
    let n0 = errs.len();
    for mut p in problems {
        p.message = format!("{}: {}", op.name(), p.message);
        errs.push(p);
    }
    if errs.len() == n0 {
        match op.parse_config(&with.to_json()) {
            Ok(c) => {
                match op.ports(Some(&c)) {
                    Ok(p) => r.ports = Some(p),
                    Err(e) => errs.push(Diagnostic::at(with.pos, format!("{}: {e}", op.name()))),
                }
                r.config = c;
            }
            Err(e) => errs.push(Diagnostic::at(
                with.pos,
                format!("{}: invalid config: {e}", op.name()),
            )),
        }
    }
    r.op = Some(op);
    r
}

fn find_input(ports: &Ports, name: &str) -> Option<PortSpec> {
    if let Some(p) = ports.inputs.iter().find(|p| p.name == name) {
        return Some(p.clone());
    }
    ports.other_inputs.map(|ty| PortSpec {
        name: name.into(),
        ty,
        required: false,
        many: true,
        columns: vec![],
        more_columns: false,
        help: "",
    })
}

/// Compiles a parsed spec, appending problems to `errs`.
pub fn compile(spec: &DagSpec, registry: &Registry, errs: &mut Vec<Diagnostic>) -> Plan {
    let resolved: Vec<Resolved> = spec
        .nodes
        .iter()
        .map(|n| resolve_op(n, registry, errs))
        .collect();
    let by_id: HashMap<&str, usize> = spec
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.value.as_str(), i))
        .collect();
    let ids: Vec<&str> = spec.nodes.iter().map(|n| n.id.value.as_str()).collect();
    let mut suggest = NodeSuggester {
        ids: &ids,
        left: SUGGESTION_BUDGET,
    };
    let mut edges: Vec<(usize, usize, Edge, Pos)> = vec![];
    let mut inputs_of: Vec<Vec<(String, Vec<PortRef>)>> = vec![vec![]; spec.nodes.len()];

    for (ci, r) in resolved.iter().enumerate() {
        let n = r.spec;
        check_env_vars(n, errs);
        let mut connected = std::collections::HashSet::new();
        for input in &n.inputs {
            let in_port = r
                .ports
                .as_ref()
                .map(|p| (p, find_input(p, &input.port.value)));
            if let Some((ports, None)) = &in_port {
                let names: Vec<&str> = ports.inputs.iter().map(|p| p.name.as_str()).collect();
                let help = did_you_mean(&input.port.value, names.iter().copied()).or_else(|| {
                    Some(format!(
                        "its input ports: {}",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ))
                });
                errs.push(
                    Diagnostic::at(
                        input.port.pos,
                        format!("`{}` has no input port `{}`", op_name(r), input.port.value),
                    )
                    .with_help(help),
                );
            }
            let in_spec = in_port.and_then(|(_, s)| s);
            if let Some(s) = &in_spec {
                if !s.many && input.refs.len() > 1 {
                    errs.push(Diagnostic::at(
                        input.port.pos,
                        format!(
                            "input `{}` takes one artifact, found {} references",
                            s.name,
                            input.refs.len()
                        ),
                    ));
                }
            }
            if input.refs.is_empty() {
                errs.push(Diagnostic::at(
                    input.port.pos,
                    format!(
                        "input `{}` has no reference; write `node.port`",
                        input.port.value
                    ),
                ));
            }
            connected.insert(input.port.value.as_str());
            let mut refs = vec![];
            for rf in &input.refs {
                let Some((pn, pp)) = rf.value.rsplit_once('.') else {
                    errs.push(Diagnostic::at(
                        rf.pos,
                        format!(
                            "invalid reference `{}`: write `node.port`, e.g. `load.data`",
                            rf.value
                        ),
                    ));
                    continue;
                };
                let Some(&pi) = by_id.get(pn) else {
                    let help = suggest.suggest(pn);
                    errs.push(
                        Diagnostic::at(
                            rf.pos,
                            format!("reference `{}` names unknown node `{pn}`", rf.value),
                        )
                        .with_help(help),
                    );
                    continue;
                };
                refs.push(PortRef {
                    node: pn.into(),
                    port: pp.into(),
                });
                edges.push((
                    pi,
                    ci,
                    Edge::Data {
                        from: pp.into(),
                        to: input.port.value.clone(),
                    },
                    rf.pos,
                ));
                let producer = &resolved[pi];
                let Some(pports) = &producer.ports else {
                    continue;
                };
                let Some(out) = pports.outputs.iter().find(|o| o.name == pp) else {
                    let names: Vec<&str> = pports.outputs.iter().map(|o| o.name.as_str()).collect();
                    let help = did_you_mean(pp, names.iter().copied())
                        .or_else(|| Some(format!("its output ports: {}", names.join(", "))));
                    errs.push(
                        Diagnostic::at(
                            rf.pos,
                            format!(
                                "node `{pn}` ({}) has no output port `{pp}`",
                                op_name(producer)
                            ),
                        )
                        .with_help(help),
                    );
                    continue;
                };
                if let Some(s) = &in_spec {
                    check_types(rf.pos, &rf.value, out, s, op_name(r), errs);
                }
            }
            inputs_of[ci].push((input.port.value.clone(), refs));
        }
        if let Some(ports) = &r.ports {
            for p in ports.inputs.iter().filter(|p| p.required) {
                if !connected.contains(p.name.as_str()) {
                    let pos = r.spec.op.as_ref().map(|o| o.pos).unwrap_or(n.id.pos);
                    errs.push(Diagnostic::at(
                        pos,
                        format!(
                            "node `{}` ({}) is missing required input `{}` ({})",
                            n.id.value,
                            op_name(r),
                            p.name,
                            p.ty
                        ),
                    ));
                }
            }
        }
        for a in &n.after {
            match by_id.get(a.value.as_str()) {
                Some(&pi) => edges.push((pi, ci, Edge::After, a.pos)),
                None => {
                    let help = suggest.suggest(&a.value);
                    errs.push(
                        Diagnostic::at(a.pos, format!("`after` names unknown node `{}`", a.value))
                            .with_help(help),
                    );
                }
            }
        }
        inputs_of[ci].sort_by(|a, b| a.0.cmp(&b.0));
    }

    let mut graph: DiGraph<PlanNode, Edge> = DiGraph::with_capacity(spec.nodes.len(), edges.len());
    let mut index = HashMap::with_capacity(spec.nodes.len());
    for (i, r) in resolved.iter().enumerate() {
        let n = r.spec;
        let node = PlanNode {
            id: n.id.value.clone(),
            op: r.op.clone().unwrap_or_else(|| std::sync::Arc::new(Missing)),
            config: r.config.clone(),
            inputs: std::mem::take(&mut inputs_of[i]),
            outputs: r
                .ports
                .as_ref()
                .map(|p| p.outputs.clone())
                .unwrap_or_default(),
            after: n.after.iter().map(|a| a.value.clone()).collect(),
            resources: n
                .settings
                .resources
                .or(spec.defaults.resources)
                .unwrap_or_default(),
            retries: n
                .settings
                .retries
                .or(spec.defaults.retries)
                .unwrap_or(RetryPolicy::default()),
            timeout: n.settings.timeout.or(spec.defaults.timeout),
            cache: n.settings.cache.or(spec.defaults.cache).unwrap_or(true),
            executor: n
                .settings
                .executor
                .clone()
                .or_else(|| spec.defaults.executor.clone()),
            line: n.id.pos.line,
            shard: None,
        };
        index.insert(node.id.clone(), graph.add_node(node));
    }
    let sharded = sharded_nodes(&resolved, errs);
    // One edge per pair of nodes, the last written winning (as `update_edge` would do, but
    // without its scan of the producer's edges, which is quadratic for a wide fan-out).
    let mut edge_of: HashMap<(usize, usize), petgraph::graph::EdgeIndex> =
        HashMap::with_capacity(edges.len());
    for (from, to, e, _) in &edges {
        match edge_of.entry((*from, *to)) {
            std::collections::hash_map::Entry::Occupied(o) => graph[*o.get()] = e.clone(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(graph.add_edge(NodeIndex::new(*from), NodeIndex::new(*to), e.clone()));
            }
        }
    }
    report_cycles(&graph, spec, errs);
    for (i, count, sharding) in sharded {
        expand_shards(&mut graph, &mut index, NodeIndex::new(i), count, &sharding);
    }
    let order = stable_topo_order(&graph);
    let params = spec
        .params
        .iter()
        .filter_map(|p| p.value.clone().map(|v| (p.name.clone(), v)))
        .collect();
    Plan {
        name: spec.name.clone(),
        graph,
        index,
        order,
        params,
    }
}

/// The nodes with `shards:` above 1, by index, with their count and their operator's
/// [`Sharding`]; an operator that cannot be sharded is reported at the `shards` key.
fn sharded_nodes(resolved: &[Resolved], errs: &mut Vec<Diagnostic>) -> Vec<(usize, u32, Sharding)> {
    let mut out = vec![];
    for (i, r) in resolved.iter().enumerate() {
        let Some(shards) = &r.spec.shards else {
            continue;
        };
        let Some(op) = &r.op else { continue };
        if r.ports.is_none() {
            continue; // its config is already reported
        }
        match op.sharding(&r.config) {
            Some(_) if shards.value == 1 => {}
            Some(sharding) => {
                if r.spec.inputs.iter().any(|p| p.port.value == PARTS_PORT) {
                    errs.push(Diagnostic::at(
                        shards.pos,
                        format!("a sharded node cannot have an input named `{PARTS_PORT}`"),
                    ));
                    continue;
                }
                out.push((i, shards.value, sharding));
            }
            None => errs.push(
                Diagnostic::at(shards.pos, format!("`{}` cannot be sharded", op.name())).with_help(
                    Some("remove `shards`; `zest ops` says which operators can be sharded".into()),
                ),
            ),
        }
    }
    out
}

/// Replaces sharded node `m` by its instances: for each stage of `sharding`, `count` nodes
/// `<id>[<stage>-<i>]` that take `m`'s inputs (and dependencies) and the previous stage's
/// parts; `m` itself becomes the merge, which takes the last stage's parts, so that nodes
/// downstream of `m` still read its outputs.
fn expand_shards(
    graph: &mut DiGraph<PlanNode, Edge>,
    index: &mut HashMap<String, NodeIndex>,
    m: NodeIndex,
    count: u32,
    sharding: &Sharding,
) {
    use petgraph::visit::EdgeRef;
    let upstream: Vec<(NodeIndex, Edge)> = graph
        .edges_directed(m, petgraph::Direction::Incoming)
        .map(|e| (e.source(), e.weight().clone()))
        .collect();
    let base = graph[m].clone();
    let parts = |prev: &[NodeIndex], graph: &DiGraph<PlanNode, Edge>, j: u32| {
        prev.iter()
            .map(|p| PortRef {
                node: graph[*p].id.clone(),
                port: part_port(j),
            })
            .collect::<Vec<_>>()
    };
    let mut prev: Vec<NodeIndex> = vec![];
    for (k, stage) in sharding.stages.iter().enumerate() {
        let next_width = if k + 1 < sharding.stages.len() {
            count
        } else {
            1
        };
        let mut this = Vec::with_capacity(count as usize);
        for i in 0..count {
            let mut node = base.clone();
            node.id = format!("{}[{stage}-{i}]", base.id);
            node.shard = Some(ShardPos {
                stage: stage.to_string(),
                index: i,
                count,
            });
            node.outputs = (0..next_width)
                .map(|j| {
                    PortSpec::new(
                        &part_port(j),
                        PortType::Files,
                        "one instance's part, for the next stage of a sharded node",
                    )
                })
                .collect();
            if !prev.is_empty() {
                node.inputs
                    .push((PARTS_PORT.to_string(), parts(&prev, graph, i)));
                node.inputs.sort_by(|a, b| a.0.cmp(&b.0));
            }
            let id = node.id.clone();
            let ni = graph.add_node(node);
            index.insert(id, ni);
            for (src, e) in &upstream {
                graph.add_edge(*src, ni, e.clone());
            }
            for p in &prev {
                graph.add_edge(
                    *p,
                    ni,
                    Edge::Data {
                        from: part_port(i),
                        to: PARTS_PORT.into(),
                    },
                );
            }
            this.push(ni);
        }
        prev = this;
    }
    let merge_parts = parts(&prev, graph, 0);
    let merge = &mut graph[m];
    merge.shard = Some(ShardPos {
        stage: MERGE_STAGE.into(),
        index: 0,
        count,
    });
    merge.inputs.push((PARTS_PORT.to_string(), merge_parts));
    merge.inputs.sort_by(|a, b| a.0.cmp(&b.0));
    for p in prev {
        graph.add_edge(
            p,
            m,
            Edge::Data {
                from: part_port(0),
                to: PARTS_PORT.into(),
            },
        );
    }
}

/// How many node ids, in all, "did you mean" may compare misspelt node names with; a file
/// full of dangling references to a huge DAG would otherwise take quadratic time.
const SUGGESTION_BUDGET: usize = 2_000_000;

struct NodeSuggester<'a> {
    ids: &'a [&'a str],
    left: usize,
}

impl NodeSuggester<'_> {
    fn suggest(&mut self, word: &str) -> Option<String> {
        self.left = self.left.checked_sub(self.ids.len())?;
        did_you_mean(word, self.ids.iter().copied())
    }
}

/// The environment variable through which the `shell` operator (and any operator following
/// its convention) passes input port `port`: `ZEST_IN_` and the name uppercased, with every
/// character other than an ASCII letter or digit made `_`. `<var>_DIGEST` holds the digests.
pub fn input_env_var(port: &str) -> String {
    let up: String = port
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("ZEST_IN_{up}")
}

/// Reports input ports of one node whose environment variables (see [`input_env_var`])
/// would be the same, so that one input would silently hide the other.
fn check_env_vars(n: &NodeSpec, errs: &mut Vec<Diagnostic>) {
    if n.inputs.len() < 2 {
        return;
    }
    // Variable → (port, whether the variable holds that port's digests).
    let mut vars: HashMap<String, (&str, bool)> = HashMap::new();
    for input in &n.inputs {
        let port = input.port.value.as_str();
        let var = input_env_var(port);
        let digest = format!("{var}_DIGEST");
        let clash = [(&var, false), (&digest, true)]
            .into_iter()
            .find_map(|(v, is_digest)| vars.get(v).map(|&first| (v.clone(), first, is_digest)));
        if let Some((v, (first, first_digest), digest_var)) = clash {
            let why = if first_digest {
                format!(" (`{v}` holds the digests of `{first}`)")
            } else if digest_var {
                format!(" (`{v}` holds the digests of `{port}`)")
            } else {
                String::new()
            };
            errs.push(
                Diagnostic::at(
                    input.port.pos,
                    format!(
                        "input ports `{first}` and `{port}` of node `{}` both set environment variable `{v}`{why}",
                        n.id.value
                    ),
                )
                .with_help(Some("rename one of the ports".into())),
            );
            continue;
        }
        vars.insert(var, (port, false));
        vars.insert(digest, (port, true));
    }
}

fn op_name(r: &Resolved) -> String {
    r.spec
        .op
        .as_ref()
        .map(|o| o.value.clone())
        .unwrap_or_default()
}

fn check_types(
    pos: Pos,
    reference: &str,
    out: &PortSpec,
    input: &PortSpec,
    consumer_op: String,
    errs: &mut Vec<Diagnostic>,
) {
    if !input.ty.accepts(out.ty) {
        errs.push(Diagnostic::at(
            pos,
            format!("type mismatch: input `{}` of {consumer_op} expects a {}, but `{reference}` is a {}", input.name, input.ty, out.ty),
        ));
        return;
    }
    if input.ty == PortType::Dataset && !input.columns.is_empty() && !out.columns.is_empty() {
        let missing: Vec<&str> = input
            .columns
            .iter()
            .filter(|c| !out.columns.contains(c))
            .map(String::as_str)
            .collect();
        // A pass-through output may still have the missing columns from its own input.
        if !missing.is_empty() && !out.more_columns {
            errs.push(Diagnostic::at(
                pos,
                format!(
                    "type mismatch: input `{}` of {consumer_op} needs a dataset with column(s) {}, but `{reference}` has columns {}",
                    input.name,
                    missing.join(", "),
                    out.columns.join(", ")
                ),
            ));
        }
    }
}

/// Stands in for an operator that failed to resolve, so that the rest of the DAG can still be
/// checked; a plan containing it is never returned.
struct Missing;

impl crate::operator::DynOperator for Missing {
    fn name(&self) -> &'static str {
        "<unknown>"
    }
    fn version(&self) -> &'static str {
        "0"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn config_schema(&self) -> &serde_json::Value {
        static ANY: serde_json::Value = serde_json::Value::Bool(true);
        &ANY
    }
    fn parse_config(&self, c: &serde_json::Value) -> Result<serde_json::Value, String> {
        Ok(c.clone())
    }
    fn ports(&self, _: Option<&serde_json::Value>) -> Result<Ports, String> {
        Ok(Ports::default())
    }
    fn run(&self, _: &serde_json::Value, _: &mut crate::operator::OpContext) -> anyhow::Result<()> {
        anyhow::bail!("unknown operator")
    }
}

/// The strongly connected components of `graph` (Tarjan's algorithm, with an explicit stack
/// so that long chains cannot overflow the call stack), each in no particular order.
fn strongly_connected(graph: &DiGraph<PlanNode, Edge>) -> Vec<Vec<NodeIndex>> {
    const UNSEEN: usize = usize::MAX;
    let n = graph.node_count();
    let mut adj: Vec<Vec<usize>> = vec![vec![]; n];
    for e in graph.raw_edges() {
        adj[e.source().index()].push(e.target().index());
    }
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = vec![];
    let mut next = 0;
    let mut out = vec![];
    // (node, how many of its edges have been followed)
    let mut calls: Vec<(usize, usize)> = vec![];
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        calls.push((root, 0));
        while let Some(&(v, followed)) = calls.last() {
            if let Some(&w) = adj[v].get(followed) {
                calls.last_mut().expect("non-empty").1 += 1;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = vec![];
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp.push(NodeIndex::new(w));
                    if w == v {
                        break;
                    }
                }
                out.push(comp);
            }
        }
    }
    out
}

fn report_cycles(graph: &DiGraph<PlanNode, Edge>, spec: &DagSpec, errs: &mut Vec<Diagnostic>) {
    for scc in strongly_connected(graph) {
        let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let members: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
        let start = *scc.iter().min().expect("non-empty");
        // Walk the cycle from the first node in file order, staying inside the component.
        let mut path = vec![start];
        let mut seen = std::collections::HashSet::from([start]);
        let mut cur = start;
        loop {
            let mut next: Vec<NodeIndex> = graph
                .neighbors(cur)
                .filter(|n| members.contains(n))
                .collect();
            next.sort();
            if next.contains(&start)
                && (path.len() == members.len() || next.iter().all(|n| seen.contains(n)))
            {
                break;
            }
            match next.into_iter().find(|n| !seen.contains(n)) {
                Some(n) => {
                    path.push(n);
                    seen.insert(n);
                    cur = n;
                }
                None => break,
            }
        }
        let mut names: Vec<&str> = path.iter().map(|i| graph[*i].id.as_str()).collect();
        names.push(graph[start].id.as_str());
        let mut all: Vec<&str> = scc.iter().map(|i| graph[*i].id.as_str()).collect();
        all.sort();
        let pos = spec.nodes[start.index()].id.pos;
        let msg = if path.len() == members.len() {
            format!("cycle: {}", names.join(" → "))
        } else {
            format!(
                "cycle among nodes {} (e.g. {})",
                all.join(", "),
                names.join(" → ")
            )
        };
        errs.push(Diagnostic::at(pos, msg));
    }
}

fn stable_topo_order(graph: &DiGraph<PlanNode, Edge>) -> Vec<NodeIndex> {
    let n = graph.node_count();
    let mut indeg: Vec<usize> = vec![0; n];
    for e in graph.raw_edges() {
        indeg[e.target().index()] += 1;
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
        .filter(|i| indeg[*i] == 0)
        .map(std::cmp::Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(std::cmp::Reverse(i)) = ready.pop() {
        order.push(NodeIndex::new(i));
        for m in graph.neighbors(NodeIndex::new(i)) {
            indeg[m.index()] -= 1;
            if indeg[m.index()] == 0 {
                ready.push(std::cmp::Reverse(m.index()));
            }
        }
    }
    order
}

/// Input digests by port, for cache keys: `BTreeMap<port, Vec<digest>>`.
pub type InputDigests = BTreeMap<String, Vec<String>>;
