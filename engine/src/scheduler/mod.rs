//! The scheduler: runs a [`Plan`] through an [`Executor`].
//!
//! Ready nodes start as CPU, memory and GPU budgets allow ([`budget`]); each attempt is a
//! [`Task`](crate::worker::Task) ([`task`]) that the executor runs somewhere (locally, in
//! a worker process of [`crate::pool`]). Nodes whose cache key already has committed
//! outputs are not run ([`cache`]). Failures are retried with exponential backoff and
//! jitter unless a retry cannot help ([`retry`]); a node that fails for good skips its
//! descendants while independent branches go on (`--fail-fast` stops everything). Every
//! transition is journaled before the scheduler waits for the next event, and mirrored as
//! spans ([`observer`]).

mod budget;
pub mod cache;
mod observer;
mod retry;
mod state;
mod task;

pub use budget::{check_resources, Budget};
pub use cache::{cache_key, external_files};
pub use retry::backoff_delay;

use crate::executor::{Executor, ExecutorConfig, Outcome, Profile, Report};
use crate::plan::Plan;
use crate::pool::Pool;
use crate::progress::Progress;
use crate::run::{self, Event, Journal, RunDir, RunRecord, RunStatus};
use crate::store::{ArtifactStore, OutputRef};
use crate::telemetry::Telemetry;
use crate::worker::StoreConfig;
use anyhow::Result;
use cache::{Lookup, NotLooked};
use observer::{input_links, node_attrs, Observer};
use petgraph::graph::NodeIndex;
use petgraph::Direction;
use retry::AfterFailure;
use state::{NodeState, St};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use task::TaskBuilder;

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
    /// Where nodes run (`--executor`, `--executor-config`, `executor:` in the DAG).
    pub executors: ExecutorConfig,
}

impl ExecOptions {
    /// The name of the executor profile `node` runs on.
    pub fn profile_name<'n>(&'n self, node: &'n crate::plan::PlanNode) -> &'n str {
        node.executor.as_deref().unwrap_or(&self.executors.default)
    }

    /// Checks that every node's executor profile exists.
    pub fn check_profiles(&self, plan: &Plan) -> Result<()> {
        let mut problems = vec![];
        for ix in &plan.order {
            let n = &plan.graph[*ix];
            let name = self.profile_name(n);
            if self.executors.profile(name).is_none() {
                problems.push(format!(
                    "node `{}` (line {}) runs on executor `{name}`, which is not defined (defined: {}; see --executor-config)",
                    n.id,
                    n.line,
                    self.executors.names().join(", ")
                ));
            }
        }
        if !problems.is_empty() {
            anyhow::bail!("{}", problems.join("\n"));
        }
        Ok(())
    }
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

enum Msg {
    /// A report from the executor of lane `.0`.
    Exec(usize, Report),
    Retry(NodeIndex),
}

/// One executor of the run, with the resources it has left to give.
struct Lane {
    name: String,
    exec: Box<dyn Executor>,
    budget: Budget,
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
    progress: Arc<Progress>,
    run_id: String,
    run_dir: RunDir,
    journal: Journal,
    record: Option<RunRecord>,
    /// One per node, by node index.
    nodes: Vec<NodeState>,
    redactor: crate::secret::Redactor,
    /// Per operator: successful attempts in this run and their total seconds.
    op_stats: HashMap<&'static str, (u32, f64)>,
    /// (lane, executor slot) → the node it runs, and the nodes queued behind it.
    running_on: HashMap<(usize, usize), NodeIndex>,
    queued_on: HashMap<(usize, usize), VecDeque<NodeIndex>>,
    /// Artifacts that attempts of this run created: no cache entry can name them as inputs
    /// yet, so nodes reading them skip the cache lookup.
    fresh: HashSet<String>,
    runnable: VecDeque<NodeIndex>,
    /// The run's executors, and the lane of each node (by node index).
    lanes: Vec<Lane>,
    lane_of: Vec<usize>,
    running: usize,
    backing_off: usize,
    stopping: Option<String>,
    interrupted: bool,
    tasks: TaskBuilder,
    obs: Observer<'a>,
    tx: tokio::sync::mpsc::UnboundedSender<Msg>,
    cancel: tokio::sync::watch::Sender<bool>,
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
    opts.check_profiles(plan)?;
    check_resources(plan, opts)?;
    let (run_id, prior) = match &start {
        Start::New { run_id, .. } => (run_id.clone(), None),
        Start::Resume(r) => (r.run_id.clone(), Some(r.as_ref().clone())),
    };
    let run_dir = RunDir::new(&opts.state_dir, &run_id);
    crate::digest::use_file_id_cache(&opts.state_dir.join("file-digests.json"));
    let journal = Journal::open(&run_dir)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (cancel, _) = tokio::sync::watch::channel(false);
    let nodes = plan
        .graph
        .node_indices()
        .map(|ix| {
            NodeState::waiting(
                plan.graph
                    .neighbors_directed(ix, Direction::Incoming)
                    .count(),
            )
        })
        .collect();
    let secrets = crate::secret::declared(&plan.params);
    let resumed_run = prior.as_ref().map(|p| p.run_id.as_str());
    let (lanes, lane_of) = open_lanes(plan, opts, &tx, &cancel, resumed_run).await?;
    let mut r = Runner {
        plan,
        opts,
        progress,
        run_id: run_id.clone(),
        run_dir: run_dir.clone(),
        journal,
        record: prior.clone(),
        nodes,
        redactor: crate::secret::Redactor::from_env(&secrets),
        op_stats: HashMap::new(),
        running_on: HashMap::new(),
        queued_on: HashMap::new(),
        fresh: HashSet::new(),
        runnable: VecDeque::new(),
        lanes,
        lane_of,
        running: 0,
        backing_off: 0,
        stopping: None,
        interrupted: false,
        tasks: TaskBuilder {
            run_id: run_id.clone(),
            dag: plan.name.clone(),
            store: opts.store_cfg.clone(),
            scratch: opts.state_dir.join("scratch").join(&run_id),
            run_dir: run_dir.clone(),
            secrets,
        },
        obs: Observer::new(tel),
        tx,
        cancel,
    };
    r.obs.start_run(&plan.name, &run_id, prior.is_some());
    let (trace_id, span_id) = r.obs.run_ids();
    match start {
        Start::New {
            dag_file,
            source,
            overrides,
            ..
        } => {
            std::fs::write(run_dir.dag_copy(), source)?;
            std::fs::write(run_dir.overrides(), serde_json::to_vec(&overrides)?)?;
            std::fs::write(run_dir.executors(), serde_json::to_vec(&opts.executors)?)?;
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
            // Attempts are numbered on from the record; an attempt that was running when the
            // run stopped keeps its number, so a cluster executor finds its job again.
            let ended = prev
                .attempts
                .iter()
                .filter(|a| a.ended_at.is_some())
                .map(|a| a.attempt)
                .max()
                .unwrap_or(0);
            r.nodes[ix.index()].attempts = ended;
            r.nodes[ix.index()].base = ended;
            if prev.status.is_done() && r.opts.store.all_committed(&prev.outputs).await? {
                let n = &mut r.nodes[ix.index()];
                n.st = St::Done;
                n.outputs = Some(prev.outputs.clone());
                n.producer_span = prior
                    .as_ref()
                    .and_then(|p| p.trace_id.clone())
                    .zip(prev.span_id.clone());
                r.progress.cached(&prev.node);
                continue;
            }
        }
        if r.nodes[ix.index()].remaining == 0 {
            initial.push(ix);
        }
    }
    for ix in plan.order.iter().copied() {
        if r.nodes[ix.index()].st == St::Done {
            for m in plan.graph.neighbors_directed(ix, Direction::Outgoing) {
                let n = &mut r.nodes[m.index()];
                n.remaining -= 1;
                if n.remaining == 0 && n.st == St::Waiting {
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
                Some(Msg::Exec(lane, rep)) => r.on_report(lane, rep).await?,
                // A node cancelled while it waited has been counted out already.
                Some(Msg::Retry(ix)) if r.nodes[ix.index()].st != St::BackingOff => {}
                Some(Msg::Retry(ix)) => {
                    r.backing_off -= 1;
                    if r.stopping.is_none() {
                        r.nodes[ix.index()].st = St::Runnable;
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

/// The executors the plan's nodes run on, one lane per profile used, and each node's lane.
async fn open_lanes(
    plan: &Plan,
    opts: &ExecOptions,
    tx: &tokio::sync::mpsc::UnboundedSender<Msg>,
    cancel: &tokio::sync::watch::Sender<bool>,
    resumed_run: Option<&str>,
) -> Result<(Vec<Lane>, Vec<usize>)> {
    let mut lanes: Vec<Lane> = vec![];
    let mut lane_of = vec![0; plan.graph.node_count()];
    for ix in plan.graph.node_indices() {
        let name = opts.profile_name(&plan.graph[ix]);
        if let Some(i) = lanes.iter().position(|l| l.name == name) {
            lane_of[ix.index()] = i;
            continue;
        }
        let i = lanes.len();
        let report: crate::executor::ReportFn = {
            let tx = tx.clone();
            Arc::new(move |r| {
                let _ = tx.send(Msg::Exec(i, r));
            })
        };
        let profile = opts
            .executors
            .profile(name)
            .ok_or_else(|| anyhow::anyhow!("no executor profile `{name}`"))?;
        let (exec, budget): (Box<dyn Executor>, Budget) = match profile {
            Profile::Local => (
                Box::new(Pool::new(
                    opts.exe.clone(),
                    move |r| report(r),
                    cancel.subscribe(),
                )),
                Budget::for_plan(plan, opts),
            ),
            Profile::Ray(cfg) => (
                crate::executor::ray::executor(
                    &cfg,
                    opts.store.clone(),
                    opts.store_cfg.s3.endpoint.clone(),
                    &opts.exe,
                    report,
                    cancel.subscribe(),
                    resumed_run,
                )
                .map_err(|e| anyhow::anyhow!("executor `{name}`: {e:#}"))?,
                Budget::unlimited(),
            ),
            Profile::Kubernetes(cfg) => (
                crate::executor::kubernetes::executor(
                    &cfg,
                    opts.store.clone(),
                    opts.store_cfg.s3.endpoint.clone(),
                    report,
                    cancel.subscribe(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("executor `{name}`: {e:#}"))?,
                Budget::unlimited(),
            ),
        };
        lanes.push(Lane {
            name: name.to_string(),
            exec,
            budget,
        });
        lane_of[ix.index()] = i;
    }
    Ok((lanes, lane_of))
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
                        self.nodes[p.index()]
                            .outputs
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

    /// The attributes and input links of `ix`'s span (for [`Observer`]; none when
    /// telemetry is off).
    fn span_parts(
        &self,
        ix: NodeIndex,
        inputs: &BTreeMap<String, Vec<String>>,
        cache_hit: bool,
    ) -> observer::SpanParts {
        if !self.obs.enabled() {
            return Default::default();
        }
        let node = &self.plan.graph[ix];
        (
            node_attrs(
                node,
                &self.run_id,
                &self.nodes[ix.index()].key,
                inputs,
                &self.opts.store,
                cache_hit,
            ),
            input_links(self.plan, node, &self.nodes),
        )
    }

    /// Nodes whose dependencies are all done: reuse cached outputs or queue them to run.
    async fn make_ready(&mut self, mut queue: Vec<NodeIndex>) -> Result<()> {
        let mut q: VecDeque<NodeIndex> = queue.drain(..).collect();
        while let Some(ix) = q.pop_front() {
            if self.nodes[ix.index()].st != St::Waiting {
                continue;
            }
            let plan = self.plan;
            let node = &plan.graph[ix];
            let inputs = self.input_digests(ix);
            let res = cache::resolve(node, &inputs, &self.opts.store, self.opts.no_cache, |d| {
                self.fresh.contains(d)
            })
            .await;
            let state = &mut self.nodes[ix.index()];
            state.key = res.key.clone();
            state.files = res.files;
            let entry = match res.lookup {
                Lookup::Hit(entry) => entry,
                Lookup::NotLooked(NotLooked::UnreadableFiles(e)) => {
                    self.progress.note(&format!(
                        "warning: `{}`: cannot read its files for the cache key, so it runs uncached: {e}",
                        node.id
                    ));
                    self.runnable_now(ix);
                    continue;
                }
                Lookup::Failed(e) => {
                    // The node runs (and reports the store problem itself, with retries).
                    self.progress.note(&format!(
                        "warning: cache lookup for `{}` failed: {e:#}",
                        node.id
                    ));
                    self.runnable_now(ix);
                    continue;
                }
                Lookup::Miss | Lookup::NotLooked(_) => {
                    self.runnable_now(ix);
                    continue;
                }
            };
            let producer = (!entry.provenance.trace_id.is_empty()).then(|| {
                (
                    entry.provenance.trace_id.clone(),
                    entry.provenance.span_id.clone(),
                )
            });
            let parts = self.span_parts(ix, &inputs, true);
            let span_id = self.obs.cached(
                &node.id,
                parts,
                producer.as_ref(),
                &entry.provenance.run_id,
                &entry.outputs,
            );
            let id = node.id.clone();
            self.emit(Event::NodeSucceeded {
                node: id.clone(),
                attempt: 0,
                at: run::now(),
                cached: true,
                cache_key: res.key,
                outputs: entry.outputs.clone(),
                span_id,
            })?;
            let state = &mut self.nodes[ix.index()];
            state.producer_span = producer;
            state.st = St::Done;
            state.outputs = Some(entry.outputs);
            self.progress.cached(&id);
            q.extend(self.release_dependents(ix));
        }
        Ok(())
    }

    fn runnable_now(&mut self, ix: NodeIndex) {
        self.nodes[ix.index()].st = St::Runnable;
        self.runnable.push_back(ix);
    }

    fn release_dependents(&mut self, ix: NodeIndex) -> Vec<NodeIndex> {
        let mut out = vec![];
        for m in self.plan.graph.neighbors_directed(ix, Direction::Outgoing) {
            let n = &mut self.nodes[m.index()];
            n.remaining -= 1;
            if n.remaining == 0 && n.st == St::Waiting {
                out.push(m);
            }
        }
        out.sort();
        out
    }

    fn start_runnable(&mut self) -> Result<()> {
        if self.stopping.is_some() {
            return Ok(());
        }
        let mut i = 0;
        while i < self.runnable.len() {
            if self.lanes.iter().all(|l| l.budget.exhausted()) {
                break;
            }
            let ix = self.runnable[i];
            if self.lanes[self.lane_of[ix.index()]]
                .budget
                .fits(&self.plan.graph[ix].resources)
            {
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
        let running: Vec<NodeIndex> = self.running_on.values().copied().collect();
        let plan = self.plan;
        for ix in running {
            let node = &plan.graph[ix];
            let state = &mut self.nodes[ix.index()];
            if node.timeout.is_some() || state.st != St::Running {
                continue;
            }
            let Some(t) = state.attempt_started else {
                continue;
            };
            let periods = (t.elapsed().as_secs() / LONG_RUN_NOTE.as_secs()) as u32;
            if periods > state.long_notes {
                state.long_notes = periods;
                self.progress.note(&format!(
                    "`{}` has been running for {} and has no timeout (set `timeout:` to bound it)",
                    node.id,
                    crate::units::format_duration(t.elapsed())
                ));
            }
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
    fn pipeline_worker(&self, ix: NodeIndex) -> Option<(usize, usize)> {
        let b = &self.plan.graph[ix].resources;
        let lane = self.lane_of[ix.index()];
        if b.gpu > 0 || self.running_on.is_empty() || !self.lanes[lane].exec.local() {
            return None;
        }
        self.running_on.iter().find_map(|(&w, &a)| {
            if w.0 != lane {
                return None;
            }
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
                && self.nodes[a.index()]
                    .attempt_started
                    .is_some_and(|t| t.elapsed() < SHORT);
            ok.then_some(w)
        })
    }

    /// The job for the next attempt of `ix` (its attempt counter advanced) on `gpus`, and
    /// the environment of the processes that run it.
    fn next_job(
        &mut self,
        ix: NodeIndex,
        gpus: &[u32],
    ) -> (crate::executor::Job, BTreeMap<String, String>) {
        self.nodes[ix.index()].attempts += 1;
        let attempt = self.nodes[ix.index()].attempts;
        let plan = self.plan;
        let node = &plan.graph[ix];
        // The span opens at the first attempt; later attempts add events to it.
        let parts = match self.obs.span_id(ix) {
            None => self.span_parts(ix, &self.input_digests(ix), false),
            Some(_) => Default::default(),
        };
        let span = self.obs.attempt(ix, &node.id, attempt, parts);
        let local = self.lanes[self.lane_of[ix.index()]].exec.local();
        let env = self.tasks.env(local.then_some(gpus));
        let job = self.tasks.job(
            ix.index(),
            node,
            &self.nodes[ix.index()],
            self.input_outputs(ix),
            env.clone(),
            span,
        );
        (job, env)
    }

    /// Records that `ix`'s attempt has started, holding `gpus` (its CPU and memory are
    /// already taken from the budget).
    fn began(&mut self, ix: NodeIndex, gpus: Vec<u32>) -> Result<()> {
        let plan = self.plan;
        let node = &plan.graph[ix];
        let now = Instant::now();
        let state = &mut self.nodes[ix.index()];
        state.gpus = gpus;
        state.st = St::Running;
        state.started_at.get_or_insert(now);
        state.attempt_started = Some(now);
        let attempt = state.attempts;
        let cache_key = state.key.clone();
        self.running += 1;
        let span_id = self.obs.span_id(ix);
        self.emit(Event::NodeStarted {
            node: node.id.clone(),
            attempt,
            at: run::now(),
            cache_key,
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
        let lane = self.lane_of[ix.index()];
        let gpus = self.lanes[lane].budget.take(&self.plan.graph[ix].resources);
        let (job, env) = self.next_job(ix, &gpus);
        self.began(ix, gpus)?;
        match self.lanes[lane].exec.submit(&env, job) {
            Ok(w) => {
                self.running_on.insert((lane, w), ix);
            }
            Err(e) => {
                let _ = self.tx.send(Msg::Exec(
                    lane,
                    Report::Ended {
                        worker: usize::MAX,
                        token: ix.index(),
                        outcome: Outcome::Died(format!("{e:#}")),
                        next: None,
                        requeue: vec![],
                        alive: false,
                    },
                ));
            }
        }
        Ok(())
    }

    /// Sends `ix` to worker `w`, to run after the node it is running. False (and `ix` back
    /// at the head of the runnable queue) if the worker cannot take it.
    fn enqueue(&mut self, ix: NodeIndex, w: (usize, usize)) -> bool {
        let (job, _) = self.next_job(ix, &[]);
        if self.lanes[w.0].exec.enqueue(w.1, job, QUEUE_DEPTH) {
            self.nodes[ix.index()].st = St::Queued;
            self.queued_on.entry(w).or_default().push_back(ix);
            true
        } else {
            self.nodes[ix.index()].attempts -= 1;
            self.runnable.push_front(ix);
            false
        }
    }

    /// Handles what the executor reports.
    async fn on_report(&mut self, lane: usize, rep: Report) -> Result<()> {
        self.lanes[lane].exec.on_report(&rep);
        let (worker, requeue) = match rep {
            Report::Ended {
                worker,
                token,
                outcome,
                next,
                requeue,
                alive,
            } => {
                let worker = (lane, worker);
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
                    let gpus = self.lanes[lane].budget.take(&self.plan.graph[b].resources);
                    self.began(b, gpus)?;
                }
                (worker, requeue)
            }
            Report::Gone { worker, requeue } => {
                let worker = (lane, worker);
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
            if self.nodes[b.index()].st == St::Running {
                // Counted as started, but its worker went before receiving it.
                self.running -= 1;
                let gpus = std::mem::take(&mut self.nodes[b.index()].gpus);
                self.lanes[lane]
                    .budget
                    .release(&self.plan.graph[b].resources, gpus);
                self.running_on.retain(|_, n| *n != b);
            }
            self.nodes[b.index()].attempts -= 1;
            if let Some(why) = self.stopping.clone() {
                self.cancel_node(b, &why)?;
            } else {
                self.nodes[b.index()].st = St::Runnable;
                self.runnable.push_front(b);
            }
        }
        Ok(())
    }

    async fn finished(&mut self, ix: NodeIndex, outcome: Outcome) -> Result<()> {
        let plan = self.plan;
        let node = &plan.graph[ix];
        let id = node.id.clone();
        self.running -= 1;
        let gpus = std::mem::take(&mut self.nodes[ix.index()].gpus);
        self.lanes[self.lane_of[ix.index()]]
            .budget
            .release(&node.resources, gpus);
        let state = &self.nodes[ix.index()];
        if let (Outcome::Done(res), Some(t)) = (&outcome, state.attempt_started) {
            if res.error.is_none() {
                let e = self.op_stats.entry(node.op.name()).or_default();
                e.0 += 1;
                e.1 += t.elapsed().as_secs_f64();
            }
        }
        let attempt = state.attempts;
        // The operator said running it again cannot help (a missing column, a bad query).
        let mut permanent = false;
        let error = match outcome {
            Outcome::Done(res) if res.error.is_none() => {
                let secs = state
                    .started_at
                    .map(|t| t.elapsed().as_secs_f64())
                    .unwrap_or(0.0);
                let producer = self.obs.succeeded(ix, &res.outputs, attempt);
                let span_id = producer.as_ref().map(|p| p.1.clone());
                if producer.is_some() {
                    self.nodes[ix.index()].producer_span = producer;
                }
                self.emit(Event::NodeSucceeded {
                    node: id.clone(),
                    attempt,
                    at: run::now(),
                    cached: false,
                    cache_key: self.nodes[ix.index()].key.clone(),
                    outputs: res.outputs.clone(),
                    span_id,
                })?;
                for port in &res.created {
                    if let Some(o) = res.outputs.get(port) {
                        self.fresh.insert(o.digest.clone());
                    }
                }
                let state = &mut self.nodes[ix.index()];
                state.st = St::Done;
                state.outputs = Some(res.outputs);
                self.progress.succeeded(&id, secs);
                let next = self.release_dependents(ix);
                return self.make_ready(next).await;
            }
            Outcome::Done(res) => {
                permanent = res.permanent;
                self.redactor.redact(&res.error.unwrap_or_default())
            }
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
        self.obs.attempt_failed(ix, attempt, &error);
        match retry::after_failure(
            &node.retries,
            attempt - self.nodes[ix.index()].base,
            permanent,
            self.stopping.is_some(),
            error.clone(),
        ) {
            AfterFailure::Retry(delay) => {
                self.emit(Event::AttemptFailed {
                    node: id.clone(),
                    attempt,
                    at: run::now(),
                    error: error.clone(),
                })?;
                self.progress.retrying(&id, attempt, &error, delay);
                self.nodes[ix.index()].st = St::BackingOff;
                self.backing_off += 1;
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(Msg::Retry(ix));
                });
                Ok(())
            }
            AfterFailure::Fail(error) => {
                self.obs.failed(ix, attempt, &error);
                self.emit(Event::NodeFailed {
                    node: id.clone(),
                    at: run::now(),
                    error: error.clone(),
                })?;
                self.nodes[ix.index()].st = St::Failed;
                self.progress.failed(&id, &error);
                self.skip_descendants(ix)?;
                if self.opts.fail_fast && self.stopping.is_none() {
                    self.stop(format!("stopped by --fail-fast after `{id}` failed"))?;
                }
                Ok(())
            }
        }
    }

    fn skip_descendants(&mut self, ix: NodeIndex) -> Result<()> {
        let failed = self.plan.graph[ix].id.clone();
        let mut stack = vec![ix];
        while let Some(n) = stack.pop() {
            for m in self.plan.graph.neighbors_directed(n, Direction::Outgoing) {
                if self.nodes[m.index()].st == St::Waiting {
                    self.nodes[m.index()].st = St::Skipped;
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
        self.obs.cancelled(ix, why);
        self.nodes[ix.index()].st = St::Cancelled;
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
                    self.nodes[ix.index()].st,
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
        for l in &mut self.lanes {
            l.exec.shutdown().await;
        }
        let any_failed = self.nodes.iter().any(|n| n.st == St::Failed);
        let status = if self.interrupted {
            RunStatus::Cancelled
        } else if any_failed || self.nodes.iter().any(|n| n.st != St::Done) {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        self.emit(Event::RunFinished {
            at: run::now(),
            status,
        })?;
        self.journal.flush()?;
        self.obs.finish_run(status);
        let _ = std::fs::remove_dir_all(&self.tasks.scratch);
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
