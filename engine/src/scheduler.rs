//! The local executor: runs a [`Plan`] on this machine.
//!
//! Ready nodes start as CPU, memory and GPU budgets allow; each attempt runs in a worker
//! process ([`crate::pool`]). Nodes whose cache key already has committed outputs are not
//! run. Failures are retried with exponential backoff and jitter; a node that fails for good
//! skips its descendants while independent branches go on (`--fail-fast` stops everything).
//! Every transition is journaled before the scheduler waits for the next event.

use crate::digest::canonical_json;
use crate::operator::ExternalFile;
use crate::plan::{Plan, PlanNode};
use crate::pool::{Job, Outcome, Pool, Report};
use crate::progress::Progress;
use crate::run::{self, Event, Journal, RunDir, RunRecord, RunStatus};
use crate::spec::RetryPolicy;
use crate::store::{ArtifactStore, OutputRef};
use crate::telemetry::{link_to, SpanHandle, Telemetry};
use crate::worker::{InputRef, StoreConfig, Task};
use anyhow::{bail, Result};
use opentelemetry::KeyValue;
use petgraph::graph::NodeIndex;
use petgraph::Direction;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to execute.
#[derive(Clone)]
pub struct ExecOptions {
    /// CPU cores available to nodes.
    pub cpus: f64,
    /// Memory available to nodes, in bytes.
    pub memory: u64,
    /// GPU indices available to nodes.
    pub gpus: Vec<u32>,
    /// Stop everything at the first failed node.
    pub fail_fast: bool,
    /// Ignore cached outputs (results are still recorded in the cache).
    pub no_cache: bool,
    /// Where runs, logs and scratch space live.
    pub state_dir: PathBuf,
    /// The artifact store.
    pub store: ArtifactStore,
    /// How workers reach the store.
    pub store_cfg: StoreConfig,
    /// The zest binary, started as `zest node worker`.
    pub exe: PathBuf,
}

/// Computes a node execution's cache key from everything it reads: its operator's name,
/// version and code fingerprint, its canonical config, its input artifacts' digests and the
/// content identities of the files it reads from outside the store.
pub fn cache_key(
    node: &PlanNode,
    inputs: &BTreeMap<String, Vec<String>>,
    files: &[ExternalFile],
) -> String {
    let v = serde_json::json!({
        "op": node.op.name(),
        "version": node.op.version(),
        "code": node.op.code(),
        "config": node.config,
        "inputs": inputs,
        "files": files,
    });
    crate::digest::sha256_hex(canonical_json(&v).as_bytes())
}

/// The files outside the store that `node` reads, with their content identities (see
/// [`crate::operator::Operator::external_files`]); hashed on a blocking thread.
pub async fn external_files(node: &PlanNode) -> Result<Vec<ExternalFile>> {
    if !node.op.reads_files() {
        return Ok(vec![]);
    }
    let op = node.op.clone();
    let config = node.config.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || op.external_files(&config, &rt))
        .await
        .map_err(|e| anyhow::anyhow!("reading the node's files: {e}"))?
}

/// The cache key of a node whose files could not be read: it matches nothing, so the node
/// runs (and reports the problem itself) and its outputs are never served for other files.
fn unmatched_key() -> String {
    crate::digest::sha256_hex(
        format!(
            "unreadable files {} {:?}",
            rand::random::<u64>(),
            Instant::now()
        )
        .as_bytes(),
    )
}

/// The delay before retry `n` (1-based): `backoff * 2^(n-1)`, capped, with ±25% jitter.
pub fn backoff_delay(p: &RetryPolicy, n: u32) -> Duration {
    let base = p.backoff.as_secs_f64() * 2f64.powi(n.saturating_sub(1).min(30) as i32);
    let capped = base.min(p.max_backoff.as_secs_f64());
    let jitter = 0.75 + rand::random::<f64>() * 0.5;
    Duration::from_secs_f64(capped * jitter)
}

/// Checks that every node fits the machine's budgets at all.
pub fn check_resources(plan: &Plan, opts: &ExecOptions) -> Result<()> {
    let mut problems = vec![];
    for ix in &plan.order {
        let n = &plan.graph[*ix];
        let r = n.resources;
        if r.cpu > opts.cpus + 1e-9 {
            problems.push(format!(
                "node `{}` needs {} CPU(s) but the run has {} (--cpus)",
                n.id, r.cpu, opts.cpus
            ));
        }
        if r.memory > opts.memory {
            problems.push(format!(
                "node `{}` needs {} of memory but the run has {} (--memory)",
                n.id,
                crate::units::format_bytes(r.memory),
                crate::units::format_bytes(opts.memory)
            ));
        }
        if r.gpu as usize > opts.gpus.len() {
            problems.push(format!(
                "node `{}` needs {} GPU(s) but the run has {} (--gpus)",
                n.id,
                r.gpu,
                opts.gpus.len()
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// How a run is entered: fresh, or resuming an earlier record.
pub enum Start {
    /// A new run.
    New {
        /// Run id.
        run_id: String,
        /// The DAG file as given.
        dag_file: String,
        /// The DAG text (kept with the run for `resume`).
        source: String,
        /// Command-line overrides (kept with the run for `resume`).
        overrides: Vec<(String, String)>,
    },
    /// Continue an interrupted or failed run.
    Resume(Box<RunRecord>),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Waiting,
    Runnable,
    Running,
    /// Sent to a worker, behind the node it is running.
    Queued,
    BackingOff,
    Done,
    Failed,
    Skipped,
    Cancelled,
}

enum Msg {
    Pool(Report),
    Retry(NodeIndex),
}

/// Nodes whose operator has averaged less than this (over a few attempts in this run) are
/// short: the scheduler queues a node behind a worker that runs a short one.
const SHORT: Duration = Duration::from_millis(20);

/// How often a node without a timeout is named while it runs.
const LONG_RUN_NOTE: Duration = Duration::from_secs(600);

/// How many nodes may wait on a worker behind the one it runs.
const QUEUE_DEPTH: usize = 2;

struct Runner<'a> {
    plan: &'a Plan,
    opts: &'a ExecOptions,
    tel: Option<&'a Telemetry>,
    progress: Arc<Progress>,
    run_id: String,
    run_dir: RunDir,
    journal: Journal,
    record: Option<RunRecord>,
    st: Vec<St>,
    outputs: Vec<Option<BTreeMap<String, OutputRef>>>,
    keys: Vec<String>,
    /// Files each node reads from outside the store (part of its key).
    files: Vec<Vec<ExternalFile>>,
    /// The environment variables of the DAG's secrets, and what hides their values.
    secrets: Vec<String>,
    redactor: crate::secret::Redactor,
    /// Per running node without a timeout: how many [`LONG_RUN_NOTE`] periods were named.
    long_notes: HashMap<NodeIndex, u32>,
    attempts: Vec<u32>,
    remaining: Vec<usize>,
    started_at: Vec<Option<Instant>>,
    attempt_started: Vec<Option<Instant>>,
    /// Per operator: successful attempts in this run and their total seconds.
    op_stats: HashMap<&'static str, (u32, f64)>,
    /// Worker id → the node it runs, and the node queued behind it.
    running_on: HashMap<usize, NodeIndex>,
    queued_on: HashMap<usize, VecDeque<NodeIndex>>,
    /// Artifacts that attempts of this run created: no cache entry can name them as inputs
    /// yet, so nodes reading them skip the cache lookup.
    fresh: std::collections::HashSet<String>,
    producer_span: Vec<Option<(String, String)>>,
    spans: HashMap<NodeIndex, SpanHandle>,
    gpus_held: HashMap<NodeIndex, Vec<u32>>,
    runnable: VecDeque<NodeIndex>,
    free_cpu: f64,
    free_mem: u64,
    free_gpus: Vec<u32>,
    min_cpu: f64,
    running: usize,
    backing_off: usize,
    stopping: Option<String>,
    interrupted: bool,
    pool: Pool,
    tx: tokio::sync::mpsc::UnboundedSender<Msg>,
    cancel: tokio::sync::watch::Sender<bool>,
    run_span: Option<SpanHandle>,
}

/// The result of [`execute`].
pub struct RunOutcome {
    /// The final record.
    pub record: RunRecord,
    /// Whether the run was stopped by a signal.
    pub interrupted: bool,
}

/// Executes a plan. Returns the final run record; node failures are in the record, not errors.
pub async fn execute(
    plan: &Plan,
    start: Start,
    opts: &ExecOptions,
    tel: Option<&Telemetry>,
    progress: Arc<Progress>,
) -> Result<RunOutcome> {
    check_resources(plan, opts)?;
    let n = plan.graph.node_count();
    let (run_id, prior) = match &start {
        Start::New { run_id, .. } => (run_id.clone(), None),
        Start::Resume(r) => (r.run_id.clone(), Some(r.as_ref().clone())),
    };
    let run_dir = RunDir::new(&opts.state_dir, &run_id);
    crate::digest::use_file_id_cache(&opts.state_dir.join("file-digests.json"));
    let journal = Journal::open(&run_dir)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (cancel, _) = tokio::sync::watch::channel(false);
    let mut remaining = vec![0usize; n];
    for ix in plan.graph.node_indices() {
        remaining[ix.index()] = plan
            .graph
            .neighbors_directed(ix, Direction::Incoming)
            .count();
    }
    let min_cpu = plan
        .graph
        .node_weights()
        .map(|n| n.resources.cpu)
        .fold(f64::INFINITY, f64::min);
    let mut r = Runner {
        plan,
        opts,
        tel,
        progress,
        run_id: run_id.clone(),
        run_dir: run_dir.clone(),
        journal,
        record: prior.clone(),
        st: vec![St::Waiting; n],
        outputs: vec![None; n],
        keys: vec![String::new(); n],
        files: vec![vec![]; n],
        secrets: crate::secret::declared(&plan.params),
        redactor: crate::secret::Redactor::from_env(&crate::secret::declared(&plan.params)),
        long_notes: HashMap::new(),
        attempts: vec![0; n],
        remaining,
        started_at: vec![None; n],
        attempt_started: vec![None; n],
        op_stats: HashMap::new(),
        running_on: HashMap::new(),
        queued_on: HashMap::new(),
        fresh: std::collections::HashSet::new(),
        producer_span: vec![None; n],
        spans: HashMap::new(),
        gpus_held: HashMap::new(),
        runnable: VecDeque::new(),
        free_cpu: opts.cpus,
        free_mem: opts.memory,
        free_gpus: opts.gpus.clone(),
        min_cpu,
        running: 0,
        backing_off: 0,
        stopping: None,
        interrupted: false,
        pool: Pool::new(
            opts.exe.clone(),
            {
                let tx = tx.clone();
                move |r| {
                    let _ = tx.send(Msg::Pool(r));
                }
            },
            cancel.subscribe(),
        ),
        tx,
        cancel,
        run_span: None,
    };
    if let Some(t) = tel {
        let mut s = t.start_run(
            &format!("run {}", plan.name),
            vec![
                KeyValue::new("zest.run_id", run_id.clone()),
                KeyValue::new("zest.dag", plan.name.clone()),
            ],
        );
        s.set("zest.resumed", prior.is_some());
        r.run_span = Some(s);
    }
    let (trace_id, span_id) = match &r.run_span {
        Some(s) => (Some(s.trace_id()), Some(s.span_id())),
        None => (None, None),
    };
    match start {
        Start::New {
            dag_file,
            source,
            overrides,
            ..
        } => {
            std::fs::write(run_dir.dag_copy(), source)?;
            std::fs::write(run_dir.overrides(), serde_json::to_vec(&overrides)?)?;
            r.emit(Event::RunStarted {
                run_id: run_id.clone(),
                dag: plan.name.clone(),
                dag_file,
                params: plan.params.clone(),
                store: opts.store.url().to_string(),
                at: run::now(),
                pid: std::process::id(),
                trace_id,
                span_id,
                nodes: plan
                    .order
                    .iter()
                    .map(|ix| {
                        let n = &plan.graph[*ix];
                        (
                            n.id.clone(),
                            n.op.name().to_string(),
                            n.op.version().to_string(),
                        )
                    })
                    .collect(),
            })?;
        }
        Start::Resume(_) => {
            r.emit(Event::RunResumed {
                at: run::now(),
                pid: std::process::id(),
                trace_id,
                span_id,
            })?;
        }
    }
    // Nodes finished in an earlier session of this run keep their outputs.
    let mut initial = vec![];
    for ix in plan.order.iter().copied() {
        if let Some(prev) = prior.as_ref().and_then(|p| p.node(&plan.graph[ix].id)) {
            if prev.status.is_done() && r.opts.store.all_committed(&prev.outputs).await? {
                r.st[ix.index()] = St::Done;
                r.outputs[ix.index()] = Some(prev.outputs.clone());
                r.producer_span[ix.index()] = prior
                    .as_ref()
                    .and_then(|p| p.trace_id.clone())
                    .zip(prev.span_id.clone());
                r.progress.cached(&prev.node);
                continue;
            }
        }
        if r.remaining[ix.index()] == 0 {
            initial.push(ix);
        }
    }
    for ix in plan.order.iter().copied() {
        if r.st[ix.index()] == St::Done {
            for m in plan.graph.neighbors_directed(ix, Direction::Outgoing) {
                r.remaining[m.index()] -= 1;
                if r.remaining[m.index()] == 0 && r.st[m.index()] == St::Waiting {
                    initial.push(m);
                }
            }
        }
    }
    initial.sort();
    initial.dedup();
    r.make_ready(initial).await?;

    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        r.start_runnable()?;
        // The step's transitions reach the journal before the scheduler waits for anything.
        r.journal.flush()?;
        if r.running == 0 && r.backing_off == 0 && (r.runnable.is_empty() || r.stopping.is_some()) {
            break;
        }
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Pool(rep)) => r.on_report(rep).await?,
                // A node cancelled while it waited has been counted out already.
                Some(Msg::Retry(ix)) if r.st[ix.index()] != St::BackingOff => {}
                Some(Msg::Retry(ix)) => {
                    r.backing_off -= 1;
                    if r.stopping.is_none() {
                        r.st[ix.index()] = St::Runnable;
                        r.runnable.push_back(ix);
                    } else {
                        let why = r.stopping.clone().unwrap_or_default();
                        r.cancel_node(ix, &why)?;
                    }
                }
                None => break,
            },
            _ = &mut ctrl_c, if !r.interrupted => r.interrupt("interrupted (Ctrl-C)")?,
            _ = sigterm.recv(), if !r.interrupted => r.interrupt("terminated (SIGTERM)")?,
            _ = ticker.tick() => {
                r.progress.draw();
                r.name_long_runners();
            }
        }
    }
    r.finish().await
}

impl<'a> Runner<'a> {
    fn emit(&mut self, ev: Event) -> Result<()> {
        self.journal.write(&ev)?;
        run::apply(&mut self.record, ev);
        Ok(())
    }

    /// The committed outputs feeding each input port of `ix`.
    fn input_outputs(&self, ix: NodeIndex) -> BTreeMap<String, Vec<&OutputRef>> {
        let node = &self.plan.graph[ix];
        node.inputs
            .iter()
            .map(|(port, refs)| {
                let outs = refs
                    .iter()
                    .filter_map(|r| {
                        let p = self.plan.index[&r.node];
                        self.outputs[p.index()]
                            .as_ref()
                            .and_then(|o| o.get(&r.port))
                    })
                    .collect();
                (port.clone(), outs)
            })
            .collect()
    }

    fn input_digests(&self, ix: NodeIndex) -> BTreeMap<String, Vec<String>> {
        self.input_outputs(ix)
            .into_iter()
            .map(|(port, outs)| (port, outs.iter().map(|o| o.digest.clone()).collect()))
            .collect()
    }

    /// Nodes whose dependencies are all done: reuse cached outputs or queue them to run.
    async fn make_ready(&mut self, mut queue: Vec<NodeIndex>) -> Result<()> {
        let mut q: VecDeque<NodeIndex> = queue.drain(..).collect();
        while let Some(ix) = q.pop_front() {
            if self.st[ix.index()] != St::Waiting {
                continue;
            }
            let node = &self.plan.graph[ix];
            let inputs = self.input_digests(ix);
            let key = match external_files(node).await {
                Ok(files) => {
                    let key = cache_key(node, &inputs, &files);
                    self.files[ix.index()] = files;
                    key
                }
                Err(e) => {
                    self.progress.note(&format!(
                        "warning: `{}`: cannot read its files for the cache key, so it runs uncached: {e:#}",
                        node.id
                    ));
                    unmatched_key()
                }
            };
            self.keys[ix.index()] = key.clone();
            // A cache entry is written after its inputs exist, so none can name an artifact
            // that this run has just created, unless the artifact was deleted and made
            // again. Skipping the lookup then only costs a rerun: a miss is always safe.
            let fresh_input = inputs.values().flatten().any(|d| self.fresh.contains(d));
            if node.cache && !self.opts.no_cache && !fresh_input {
                let found = match self.opts.store.cache_lookup(&key).await {
                    Ok(f) => f,
                    Err(e) => {
                        // The node runs (and reports the store problem itself, with retries).
                        self.progress.note(&format!(
                            "warning: cache lookup for `{}` failed: {e:#}",
                            node.id
                        ));
                        None
                    }
                };
                if let Some(entry) = found {
                    let producer = (!entry.provenance.trace_id.is_empty()).then(|| {
                        (
                            entry.provenance.trace_id.clone(),
                            entry.provenance.span_id.clone(),
                        )
                    });
                    let mut span_id = None;
                    if let Some(t) = self.tel {
                        let mut links = self.input_links(ix);
                        if let Some((tr, sp)) = &producer {
                            links.extend(link_to(
                                tr,
                                sp,
                                vec![KeyValue::new("zest.link", "cached-producer")],
                            ));
                        }
                        let mut s = t.child(
                            self.run_span.as_ref().expect("run span"),
                            &node.id,
                            self.node_attrs(ix, &inputs, true),
                            links,
                        );
                        s.set("zest.producer.run_id", entry.provenance.run_id.clone());
                        set_outputs(&mut s, &entry.outputs);
                        s.ok();
                        span_id = Some(s.span_id());
                        s.end();
                    }
                    let id = node.id.clone();
                    self.emit(Event::NodeSucceeded {
                        node: id.clone(),
                        attempt: 0,
                        at: run::now(),
                        cached: true,
                        cache_key: key,
                        outputs: entry.outputs.clone(),
                        span_id,
                    })?;
                    self.producer_span[ix.index()] = producer;
                    self.st[ix.index()] = St::Done;
                    self.outputs[ix.index()] = Some(entry.outputs);
                    self.progress.cached(&id);
                    q.extend(self.release_dependents(ix));
                    continue;
                }
            }
            self.st[ix.index()] = St::Runnable;
            self.runnable.push_back(ix);
        }
        Ok(())
    }

    fn release_dependents(&mut self, ix: NodeIndex) -> Vec<NodeIndex> {
        let mut out = vec![];
        for m in self.plan.graph.neighbors_directed(ix, Direction::Outgoing) {
            self.remaining[m.index()] -= 1;
            if self.remaining[m.index()] == 0 && self.st[m.index()] == St::Waiting {
                out.push(m);
            }
        }
        out.sort();
        out
    }

    fn input_links(&self, ix: NodeIndex) -> Vec<opentelemetry::trace::Link> {
        let node = &self.plan.graph[ix];
        let mut seen = std::collections::HashSet::new();
        let mut links = vec![];
        for (port, refs) in &node.inputs {
            for r in refs {
                let p = self.plan.index[&r.node];
                if let Some((t, s)) = &self.producer_span[p.index()] {
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

    fn node_attrs(
        &self,
        ix: NodeIndex,
        inputs: &BTreeMap<String, Vec<String>>,
        cache_hit: bool,
    ) -> Vec<KeyValue> {
        let node = &self.plan.graph[ix];
        let mut a = vec![
            KeyValue::new("zest.node", node.id.clone()),
            KeyValue::new("zest.op", node.op.name()),
            KeyValue::new("zest.op.version", node.op.version()),
            KeyValue::new("zest.run_id", self.run_id.clone()),
            KeyValue::new("zest.cache_key", self.keys[ix.index()].clone()),
            KeyValue::new("zest.cache_hit", cache_hit),
        ];
        for (port, ds) in inputs {
            a.push(KeyValue::new(format!("zest.input.{port}"), ds.join(",")));
            let uris: Vec<String> = ds.iter().map(|d| self.opts.store.artifact_uri(d)).collect();
            a.push(KeyValue::new(
                format!("zest.input.{port}.uri"),
                uris.join(","),
            ));
        }
        a
    }

    fn fits(&self, ix: NodeIndex) -> bool {
        let r = self.plan.graph[ix].resources;
        self.free_cpu + 1e-9 >= r.cpu
            && (r.memory == 0 || self.free_mem >= r.memory)
            && self.free_gpus.len() >= r.gpu as usize
    }

    fn start_runnable(&mut self) -> Result<()> {
        if self.stopping.is_some() {
            return Ok(());
        }
        let mut i = 0;
        while i < self.runnable.len() {
            if self.free_cpu + 1e-9 < self.min_cpu {
                break;
            }
            let ix = self.runnable[i];
            if self.fits(ix) {
                self.runnable.remove(i);
                self.start(ix)?;
            } else {
                i += 1;
            }
        }
        // Keep workers busy: queue a node behind a worker that runs a short one, so that it
        // finds its next task waiting instead of idling for a round trip. Bounded work per
        // call: only the first few runnable nodes are considered.
        let mut i = 0;
        while i < self.runnable.len().min(64) {
            let ix = self.runnable[i];
            match self.pipeline_worker(ix) {
                Some(w) => {
                    self.runnable.remove(i);
                    if !self.enqueue(ix, w) {
                        // The worker is going away; its report will bring the books up to date.
                        break;
                    }
                }
                None => i += 1,
            }
        }
        Ok(())
    }

    /// Says which nodes without a timeout have run for another [`LONG_RUN_NOTE`], so a node
    /// that hangs is not silent.
    fn name_long_runners(&mut self) {
        let mut notes = vec![];
        let running: Vec<NodeIndex> = self.running_on.values().copied().collect();
        for ix in running {
            let node = &self.plan.graph[ix];
            if node.timeout.is_some() || self.st[ix.index()] != St::Running {
                continue;
            }
            let Some(t) = self.attempt_started[ix.index()] else {
                continue;
            };
            let periods = (t.elapsed().as_secs() / LONG_RUN_NOTE.as_secs()) as u32;
            let said = self.long_notes.entry(ix).or_insert(0);
            if periods > *said {
                *said = periods;
                notes.push(format!(
                    "`{}` has been running for {} and has no timeout (set `timeout:` to bound it)",
                    node.id,
                    crate::units::format_duration(t.elapsed())
                ));
            }
        }
        for n in notes {
            self.progress.note(&n);
        }
    }

    /// Whether attempts of `op` have been short in this run.
    fn is_short(&self, op: &str) -> bool {
        self.op_stats
            .get(op)
            .is_some_and(|(n, secs)| *n >= 3 && secs / f64::from(*n) < SHORT.as_secs_f64())
    }

    /// A worker that `ix` may be queued behind: it runs a short node, recently started,
    /// has room in its queue, and the last node in its queue (which `ix` takes the resources
    /// over from) needs at least what `ix` needs.
    fn pipeline_worker(&self, ix: NodeIndex) -> Option<usize> {
        let b = &self.plan.graph[ix].resources;
        if b.gpu > 0 || self.running_on.is_empty() {
            return None;
        }
        self.running_on.iter().find_map(|(&w, &a)| {
            let queued = self.queued_on.get(&w);
            if queued.is_some_and(|q| q.len() >= QUEUE_DEPTH) {
                return None;
            }
            let running = &self.plan.graph[a];
            let last = queued.and_then(|q| q.back()).copied().unwrap_or(a);
            let r = &self.plan.graph[last].resources;
            let ok = r.gpu == 0
                && r.cpu + 1e-9 >= b.cpu
                && r.memory >= b.memory
                && self.is_short(running.op.name())
                && self.attempt_started[a.index()].is_some_and(|t| t.elapsed() < SHORT);
            ok.then_some(w)
        })
    }

    /// The task for the next attempt of `ix` (its attempt counter advanced), with its span.
    fn prepare(&mut self, ix: NodeIndex, gpus: &[u32]) -> (Task, BTreeMap<String, String>) {
        let node = &self.plan.graph[ix];
        self.attempts[ix.index()] += 1;
        let attempt = self.attempts[ix.index()];
        let inputs = self.input_digests(ix);
        if !self.spans.contains_key(&ix) {
            if let Some(t) = self.tel {
                let s = t.child(
                    self.run_span.as_ref().expect("run span"),
                    &node.id,
                    self.node_attrs(ix, &inputs, false),
                    self.input_links(ix),
                );
                self.spans.insert(ix, s);
            }
        }
        if let Some(s) = self.spans.get_mut(&ix) {
            s.event(
                "attempt.start",
                vec![KeyValue::new("zest.attempt", attempt as i64)],
            );
        }
        let (trace_id, span_id) = self
            .spans
            .get(&ix)
            .map(|s| (s.trace_id(), s.span_id()))
            .unwrap_or_default();
        let mut env = BTreeMap::new();
        // Marks every process of the run (workers and what they start), for `resume`.
        env.insert("ZEST_RUN_ID".to_string(), self.run_id.clone());
        env.insert(
            "CUDA_VISIBLE_DEVICES".to_string(),
            gpus.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
        let task = Task {
            run_id: self.run_id.clone(),
            dag: self.plan.name.clone(),
            node: node.id.clone(),
            op: node.op.name().to_string(),
            config: node.config.clone(),
            cache_key: self.keys[ix.index()].clone(),
            files: self.files[ix.index()].clone(),
            attempt,
            cpus: node.resources.cpu_declared.then_some(node.resources.cpu),
            inputs: self
                .input_outputs(ix)
                .into_iter()
                .map(|(port, outs)| {
                    let refs = outs
                        .iter()
                        .map(|o| InputRef {
                            digest: o.digest.clone(),
                            kind: o.kind,
                            meta: o.meta.clone(),
                        })
                        .collect();
                    (port, refs)
                })
                .collect(),
            outputs: node
                .outputs
                .iter()
                .map(|p| (p.name.clone(), p.ty))
                .collect(),
            store: self.opts.store_cfg.clone(),
            scratch: self
                .opts
                .state_dir
                .join("scratch")
                .join(&self.run_id)
                .join(format!("{}-{attempt}", node.id)),
            log: self.run_dir.log(&node.id),
            env: env.clone(),
            secrets: self.secrets.clone(),
            trace_id,
            span_id,
        };
        (task, env)
    }

    /// Takes `ix`'s resources and records that its attempt has started.
    fn began(&mut self, ix: NodeIndex, gpus: Vec<u32>) -> Result<()> {
        let node = &self.plan.graph[ix];
        let res = node.resources;
        self.free_cpu -= res.cpu;
        self.free_mem = self.free_mem.saturating_sub(res.memory);
        self.gpus_held.insert(ix, gpus);
        self.st[ix.index()] = St::Running;
        self.running += 1;
        let now = Instant::now();
        self.started_at[ix.index()].get_or_insert(now);
        self.attempt_started[ix.index()] = Some(now);
        let span_id = self.spans.get(&ix).map(|s| s.span_id());
        let attempt = self.attempts[ix.index()];
        self.emit(Event::NodeStarted {
            node: node.id.clone(),
            attempt,
            at: run::now(),
            cache_key: self.keys[ix.index()].clone(),
            span_id,
        })?;
        self.progress.started(
            &node.id,
            node.op.name(),
            attempt,
            &self.run_dir.log(&node.id),
        );
        Ok(())
    }

    fn start(&mut self, ix: NodeIndex) -> Result<()> {
        let gpu = self.plan.graph[ix].resources.gpu as usize;
        let gpus: Vec<u32> = self.free_gpus.drain(..gpu).collect();
        let (task, env) = self.prepare(ix, &gpus);
        self.began(ix, gpus)?;
        let job = Job {
            token: ix.index(),
            task,
            timeout: self.plan.graph[ix].timeout,
            memory: self.plan.graph[ix].resources.memory,
            worker: self.plan.graph[ix].op.worker(),
        };
        match self.pool.submit(&env, job) {
            Ok(w) => {
                self.running_on.insert(w, ix);
            }
            Err(e) => {
                let _ = self.tx.send(Msg::Pool(Report::Ended {
                    worker: usize::MAX,
                    token: ix.index(),
                    outcome: Outcome::Died(format!("{e:#}")),
                    next: None,
                    requeue: vec![],
                    alive: false,
                }));
            }
        }
        Ok(())
    }

    /// Sends `ix` to worker `w`, to run after the node it is running. False (and `ix` back
    /// at the head of the runnable queue) if the worker cannot take it.
    fn enqueue(&mut self, ix: NodeIndex, w: usize) -> bool {
        let (task, _) = self.prepare(ix, &[]);
        let job = Job {
            token: ix.index(),
            task,
            timeout: self.plan.graph[ix].timeout,
            memory: self.plan.graph[ix].resources.memory,
            worker: self.plan.graph[ix].op.worker(),
        };
        if self.pool.enqueue(w, job, QUEUE_DEPTH) {
            self.st[ix.index()] = St::Queued;
            self.queued_on.entry(w).or_default().push_back(ix);
            true
        } else {
            self.attempts[ix.index()] -= 1;
            self.runnable.push_front(ix);
            false
        }
    }

    /// Handles what a worker's driver reports.
    async fn on_report(&mut self, rep: Report) -> Result<()> {
        self.pool.on_report(&rep);
        let (worker, requeue) = match rep {
            Report::Ended {
                worker,
                token,
                outcome,
                next,
                requeue,
                alive,
            } => {
                self.running_on.remove(&worker);
                // The node queued behind the one that ended starts now: either the worker
                // had it already, or it is on its way and the worker, idle, takes it at once.
                let queued = self.queued_on.entry(worker).or_default().pop_front();
                let next = next
                    .map(NodeIndex::new)
                    .or(if alive { queued } else { None });
                debug_assert!(next.is_none() || next == queued);
                self.finished(NodeIndex::new(token), outcome).await?;
                if let Some(b) = next {
                    // It takes over the resources of the node that ended before anything
                    // else can.
                    self.running_on.insert(worker, b);
                    self.began(b, vec![])?;
                }
                (worker, requeue)
            }
            Report::Gone { worker, requeue } => {
                self.running_on.remove(&worker);
                self.queued_on.remove(&worker);
                (worker, requeue)
            }
        };
        if !requeue.is_empty() {
            self.queued_on.remove(&worker);
        }
        for t in requeue {
            let b = NodeIndex::new(t);
            if self.st[b.index()] == St::Running {
                // Counted as started, but its worker went before receiving it.
                let r = self.plan.graph[b].resources;
                self.running -= 1;
                self.free_cpu += r.cpu;
                self.free_mem = (self.free_mem + r.memory).min(self.opts.memory);
                self.gpus_held.remove(&b);
                self.running_on.retain(|_, n| *n != b);
            }
            self.attempts[b.index()] -= 1;
            if let Some(why) = self.stopping.clone() {
                self.cancel_node(b, &why)?;
            } else {
                self.st[b.index()] = St::Runnable;
                self.runnable.push_front(b);
            }
        }
        Ok(())
    }

    async fn finished(&mut self, ix: NodeIndex, outcome: Outcome) -> Result<()> {
        let node = &self.plan.graph[ix];
        let id = node.id.clone();
        self.running -= 1;
        self.free_cpu += node.resources.cpu;
        self.free_mem = (self.free_mem + node.resources.memory).min(self.opts.memory);
        if let Some(g) = self.gpus_held.remove(&ix) {
            self.free_gpus.extend(g);
            self.free_gpus.sort();
        }
        if let (Outcome::Done(res), Some(t)) = (&outcome, self.attempt_started[ix.index()]) {
            if res.error.is_none() {
                let e = self.op_stats.entry(node.op.name()).or_default();
                e.0 += 1;
                e.1 += t.elapsed().as_secs_f64();
            }
        }
        let attempt = self.attempts[ix.index()];
        let error = match outcome {
            Outcome::Done(res) if res.error.is_none() => {
                let secs = self.started_at[ix.index()]
                    .map(|t| t.elapsed().as_secs_f64())
                    .unwrap_or(0.0);
                if let Some(mut s) = self.spans.remove(&ix) {
                    set_outputs(&mut s, &res.outputs);
                    s.set("zest.attempts", attempt as i64);
                    s.ok();
                    self.producer_span[ix.index()] = Some((s.trace_id(), s.span_id()));
                    s.end();
                }
                let span_id = self.producer_span[ix.index()].as_ref().map(|p| p.1.clone());
                self.emit(Event::NodeSucceeded {
                    node: id.clone(),
                    attempt,
                    at: run::now(),
                    cached: false,
                    cache_key: self.keys[ix.index()].clone(),
                    outputs: res.outputs.clone(),
                    span_id,
                })?;
                for port in &res.created {
                    if let Some(o) = res.outputs.get(port) {
                        self.fresh.insert(o.digest.clone());
                    }
                }
                self.st[ix.index()] = St::Done;
                self.outputs[ix.index()] = Some(res.outputs);
                self.progress.succeeded(&id, secs);
                let next = self.release_dependents(ix);
                return self.make_ready(next).await;
            }
            Outcome::Done(res) => self.redactor.redact(&res.error.unwrap_or_default()),
            Outcome::Died(how) => how,
            Outcome::TimedOut(d) => format!(
                "timed out after {} and was killed",
                crate::units::format_duration(d)
            ),
            Outcome::Cancelled => {
                let why = self.stopping.clone().unwrap_or_else(|| "cancelled".into());
                return self.cancel_node(ix, &why);
            }
        };
        if let Some(s) = self.spans.get_mut(&ix) {
            s.event(
                "attempt.failed",
                vec![
                    KeyValue::new("zest.attempt", attempt as i64),
                    KeyValue::new("error", error.clone()),
                ],
            );
        }
        let policy = node.retries;
        if attempt <= policy.max && self.stopping.is_none() {
            let delay = backoff_delay(&policy, attempt);
            self.emit(Event::AttemptFailed {
                node: id.clone(),
                attempt,
                at: run::now(),
                error: error.clone(),
            })?;
            self.progress.retrying(&id, attempt, &error, delay);
            self.st[ix.index()] = St::BackingOff;
            self.backing_off += 1;
            let tx = self.tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(Msg::Retry(ix));
            });
            return Ok(());
        }
        let error = if attempt > 1 {
            format!("{error} (after {attempt} attempts)")
        } else {
            error
        };
        if let Some(mut s) = self.spans.remove(&ix) {
            s.set("zest.attempts", attempt as i64);
            s.fail(&error);
            s.end();
        }
        self.emit(Event::NodeFailed {
            node: id.clone(),
            at: run::now(),
            error: error.clone(),
        })?;
        self.st[ix.index()] = St::Failed;
        self.progress.failed(&id, &error);
        self.skip_descendants(ix)?;
        if self.opts.fail_fast && self.stopping.is_none() {
            self.stop(format!("stopped by --fail-fast after `{id}` failed"))?;
        }
        Ok(())
    }

    fn skip_descendants(&mut self, ix: NodeIndex) -> Result<()> {
        let failed = self.plan.graph[ix].id.clone();
        let mut stack = vec![ix];
        while let Some(n) = stack.pop() {
            for m in self.plan.graph.neighbors_directed(n, Direction::Outgoing) {
                if self.st[m.index()] == St::Waiting {
                    self.st[m.index()] = St::Skipped;
                    let id = self.plan.graph[m].id.clone();
                    let reason = format!("upstream node `{failed}` failed");
                    self.emit(Event::NodeSkipped {
                        node: id.clone(),
                        at: run::now(),
                        reason: reason.clone(),
                    })?;
                    self.progress.not_run(&id, &reason);
                    stack.push(m);
                }
            }
        }
        Ok(())
    }

    fn cancel_node(&mut self, ix: NodeIndex, why: &str) -> Result<()> {
        let id = self.plan.graph[ix].id.clone();
        if let Some(mut s) = self.spans.remove(&ix) {
            s.fail(why);
            s.end();
        }
        self.st[ix.index()] = St::Cancelled;
        self.emit(Event::NodeCancelled {
            node: id.clone(),
            at: run::now(),
            reason: why.to_string(),
        })?;
        self.progress.not_run(&id, why);
        Ok(())
    }

    fn interrupt(&mut self, why: &str) -> Result<()> {
        self.interrupted = true;
        self.progress.note(&format!("{why}: stopping running nodes; finished artifacts are kept (resume with `zest resume {}`)", self.run_id));
        self.stop(format!("run {why}"))
    }

    fn stop(&mut self, why: String) -> Result<()> {
        self.stopping = Some(why.clone());
        let _ = self.cancel.send(true);
        // Nodes waiting to retry are cancelled now, not when their backoff ends.
        let pending: Vec<NodeIndex> = self
            .plan
            .order
            .iter()
            .copied()
            .filter(|ix| {
                matches!(
                    self.st[ix.index()],
                    St::Waiting | St::Runnable | St::BackingOff
                )
            })
            .collect();
        self.backing_off = 0;
        self.runnable.clear();
        for ix in pending {
            self.cancel_node(ix, &why)?;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<RunOutcome> {
        self.pool.shutdown().await;
        let any_failed = self.st.contains(&St::Failed);
        let status = if self.interrupted {
            RunStatus::Cancelled
        } else if any_failed || self.st.iter().any(|s| *s != St::Done) {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        self.emit(Event::RunFinished {
            at: run::now(),
            status,
        })?;
        self.journal.flush()?;
        if let Some(mut s) = self.run_span.take() {
            s.set("zest.status", status.as_str());
            if status == RunStatus::Succeeded {
                s.ok();
            } else {
                s.fail(status.as_str());
            }
            s.end();
        }
        let _ = std::fs::remove_dir_all(self.opts.state_dir.join("scratch").join(&self.run_id));
        if let Err(e) = crate::digest::save_file_id_cache() {
            self.progress
                .note(&format!("warning: cannot save the file digest cache: {e}"));
        }
        self.progress.finish();
        let record = self.record.take().expect("run started");
        run::write_record(&self.run_dir, &record)?;
        if !self.opts.store.is_local() {
            self.opts
                .store
                .put_json(&format!("runs/{}.json", record.run_id), &record)
                .await
                .ok();
        }
        Ok(RunOutcome {
            record,
            interrupted: self.interrupted,
        })
    }
}

fn set_outputs(s: &mut SpanHandle, outs: &BTreeMap<String, OutputRef>) {
    for (port, o) in outs {
        s.set(&format!("zest.output.{port}"), o.digest.clone());
        s.set(&format!("zest.output.{port}.uri"), o.uri.clone());
    }
}
