//! The run's telemetry: a span for the run, one per node (with an event per attempt), and
//! links from each node's span to the spans that produced its inputs, so a tracing UI shows
//! lineage across runs.

use super::state::NodeState;
use crate::plan::{Plan, PlanNode};
use crate::run::RunStatus;
use crate::store::{ArtifactStore, OutputRef};
use crate::telemetry::{link_to, SpanHandle, Telemetry};
use opentelemetry::trace::Link;
use opentelemetry::KeyValue;
use petgraph::graph::NodeIndex;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A node's span attributes and links (empty when telemetry is off).
pub(crate) type SpanParts = (Vec<KeyValue>, Vec<Link>);

/// Opens and closes the run's spans as the scheduler moves nodes along.
pub(crate) struct Observer<'a> {
    tel: Option<&'a Telemetry>,
    run: Option<SpanHandle>,
    nodes: HashMap<NodeIndex, SpanHandle>,
}

impl<'a> Observer<'a> {
    /// An observer exporting to `tel`, or doing nothing without it.
    pub fn new(tel: Option<&'a Telemetry>) -> Self {
        Observer {
            tel,
            run: None,
            nodes: HashMap::new(),
        }
    }

    /// Whether spans are recorded (callers skip computing attributes otherwise).
    pub fn enabled(&self) -> bool {
        self.tel.is_some()
    }

    /// Opens the run's span.
    pub fn start_run(&mut self, dag: &str, run_id: &str, resumed: bool) {
        if let Some(t) = self.tel {
            let mut s = t.start_run(
                &format!("run {dag}"),
                vec![
                    KeyValue::new("zest.run_id", run_id.to_string()),
                    KeyValue::new("zest.dag", dag.to_string()),
                ],
            );
            s.set("zest.resumed", resumed);
            self.run = Some(s);
        }
    }

    /// The run span's trace and span ids.
    pub fn run_ids(&self) -> (Option<String>, Option<String>) {
        match &self.run {
            Some(s) => (Some(s.trace_id()), Some(s.span_id())),
            None => (None, None),
        }
    }

    fn child(&self, name: &str, (attrs, links): SpanParts) -> Option<SpanHandle> {
        let t = self.tel?;
        Some(t.child(self.run.as_ref()?, name, attrs, links))
    }

    /// A node served from the cache: a span opened and closed at once, linked to the span
    /// that produced the outputs. Returns its span id.
    pub fn cached(
        &mut self,
        node: &str,
        parts: SpanParts,
        producer: Option<&(String, String)>,
        producer_run: &str,
        outputs: &BTreeMap<String, OutputRef>,
    ) -> Option<String> {
        if !self.enabled() {
            return None;
        }
        let (attrs, mut links) = parts;
        if let Some((tr, sp)) = producer {
            links.extend(link_to(
                tr,
                sp,
                vec![KeyValue::new("zest.link", "cached-producer")],
            ));
        }
        let mut s = self.child(node, (attrs, links))?;
        s.set("zest.producer.run_id", producer_run.to_string());
        set_outputs(&mut s, outputs);
        s.ok();
        let id = s.span_id();
        s.end();
        Some(id)
    }

    /// Attempt `attempt` of `ix` starts: its span (opened at the first attempt) gets an
    /// event. Returns the trace and span ids the attempt's worker continues (empty without
    /// telemetry).
    pub fn attempt(
        &mut self,
        ix: NodeIndex,
        node: &str,
        attempt: u32,
        parts: SpanParts,
    ) -> (String, String) {
        if !self.nodes.contains_key(&ix) {
            if let Some(s) = self.child(node, parts) {
                self.nodes.insert(ix, s);
            }
        }
        match self.nodes.get_mut(&ix) {
            Some(s) => {
                s.event(
                    "attempt.start",
                    vec![KeyValue::new("zest.attempt", attempt as i64)],
                );
                (s.trace_id(), s.span_id())
            }
            None => Default::default(),
        }
    }

    /// The span id of `ix`'s open span.
    pub fn span_id(&self, ix: NodeIndex) -> Option<String> {
        self.nodes.get(&ix).map(|s| s.span_id())
    }

    /// `ix` succeeded: its span closes. Returns the span (trace id, span id) that produced
    /// its outputs.
    pub fn succeeded(
        &mut self,
        ix: NodeIndex,
        outputs: &BTreeMap<String, OutputRef>,
        attempts: u32,
    ) -> Option<(String, String)> {
        let mut s = self.nodes.remove(&ix)?;
        set_outputs(&mut s, outputs);
        s.set("zest.attempts", attempts as i64);
        s.ok();
        let ids = (s.trace_id(), s.span_id());
        s.end();
        Some(ids)
    }

    /// An attempt of `ix` failed; the node may be retried.
    pub fn attempt_failed(&mut self, ix: NodeIndex, attempt: u32, error: &str) {
        if let Some(s) = self.nodes.get_mut(&ix) {
            s.event(
                "attempt.failed",
                vec![
                    KeyValue::new("zest.attempt", attempt as i64),
                    KeyValue::new("error", error.to_string()),
                ],
            );
        }
    }

    /// `ix` failed for good after `attempts` attempts.
    pub fn failed(&mut self, ix: NodeIndex, attempts: u32, error: &str) {
        if let Some(mut s) = self.nodes.remove(&ix) {
            s.set("zest.attempts", attempts as i64);
            s.fail(error);
            s.end();
        }
    }

    /// `ix` was cancelled.
    pub fn cancelled(&mut self, ix: NodeIndex, why: &str) {
        if let Some(mut s) = self.nodes.remove(&ix) {
            s.fail(why);
            s.end();
        }
    }

    /// The run ended with `status`: its span closes.
    pub fn finish_run(&mut self, status: RunStatus) {
        if let Some(mut s) = self.run.take() {
            s.set("zest.status", status.as_str());
            if status == RunStatus::Succeeded {
                s.ok();
            } else {
                s.fail(status.as_str());
            }
            s.end();
        }
    }
}

/// A node span's attributes: what it is, its cache key, and its inputs' digests and URIs.
pub(crate) fn node_attrs(
    node: &PlanNode,
    run_id: &str,
    key: &str,
    inputs: &BTreeMap<String, Vec<String>>,
    store: &ArtifactStore,
    cache_hit: bool,
) -> Vec<KeyValue> {
    let mut a = vec![
        KeyValue::new("zest.node", node.id.clone()),
        KeyValue::new("zest.op", node.op.name()),
        KeyValue::new("zest.op.version", node.op.version()),
        KeyValue::new("zest.run_id", run_id.to_string()),
        KeyValue::new("zest.cache_key", key.to_string()),
        KeyValue::new("zest.cache_hit", cache_hit),
    ];
    for (port, ds) in inputs {
        a.push(KeyValue::new(format!("zest.input.{port}"), ds.join(",")));
        let uris: Vec<String> = ds.iter().map(|d| store.artifact_uri(d)).collect();
        a.push(KeyValue::new(
            format!("zest.input.{port}.uri"),
            uris.join(","),
        ));
    }
    a
}

/// Links from a node's span to the spans that produced its inputs, one per producer and port.
pub(crate) fn input_links(plan: &Plan, node: &PlanNode, nodes: &[NodeState]) -> Vec<Link> {
    let mut seen = HashSet::new();
    let mut links = vec![];
    for (port, refs) in &node.inputs {
        for r in refs {
            let p = plan.index[&r.node];
            if let Some((t, s)) = &nodes[p.index()].producer_span {
                if seen.insert((t.clone(), s.clone(), port.clone())) {
                    links.extend(link_to(
                        t,
                        s,
                        vec![
                            KeyValue::new("zest.input", port.clone()),
                            KeyValue::new("zest.producer", r.to_string()),
                        ],
                    ));
                }
            }
        }
    }
    links
}

fn set_outputs(s: &mut SpanHandle, outs: &BTreeMap<String, OutputRef>) {
    for (port, o) in outs {
        s.set(&format!("zest.output.{port}"), o.digest.clone());
        s.set(&format!("zest.output.{port}.uri"), o.uri.clone());
    }
}
