//! Run records: an append-only journal of node transitions per run, folded into a
//! [`RunRecord`] for `zest runs`, reports and `zest resume`.
//!
//! Each transition is one JSON line in `runs/<id>/journal.jsonl` in the state directory. The
//! scheduler writes the lines of one step (a node ended, its dependents started) with one
//! `write(2)` before it waits for anything, so `kill -9` of zest loses at most the nodes
//! that were in flight: those are run again on `zest resume`.

use crate::store::{now_rfc3339, OutputRef};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A node's state in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Not started.
    Pending,
    /// Running (or waiting to retry).
    Running,
    /// Ran and committed its outputs.
    Succeeded,
    /// Outputs reused from the cache.
    Cached,
    /// Failed after its retries.
    Failed,
    /// Not run because an upstream node failed.
    Skipped,
    /// Stopped by an interrupt or `--fail-fast`.
    Cancelled,
}

impl NodeStatus {
    /// Whether the node's outputs are available.
    pub fn is_done(self) -> bool {
        matches!(self, NodeStatus::Succeeded | NodeStatus::Cached)
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Running => "running",
            NodeStatus::Succeeded => "succeeded",
            NodeStatus::Cached => "cached",
            NodeStatus::Failed => "failed",
            NodeStatus::Skipped => "skipped",
            NodeStatus::Cancelled => "cancelled",
        }
    }
}

/// A run's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Still running.
    Running,
    /// Every node succeeded or was cached.
    Succeeded,
    /// At least one node failed.
    Failed,
    /// Stopped by an interrupt.
    Cancelled,
    /// The zest process died without finishing the run (resume it).
    Interrupted,
}

impl RunStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// One attempt of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based attempt number.
    pub attempt: u32,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339), if it ended.
    pub ended_at: Option<String>,
    /// Outcome: `succeeded`, `failed`, `cancelled`, or absent while running.
    pub outcome: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A node in a run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node id.
    pub node: String,
    /// Operator name.
    pub op: String,
    /// Operator version.
    pub op_version: String,
    /// State.
    pub status: NodeStatus,
    /// Cache key of the execution, once known.
    pub cache_key: Option<String>,
    /// Attempts, in order.
    pub attempts: Vec<Attempt>,
    /// First start.
    pub started_at: Option<String>,
    /// End.
    pub ended_at: Option<String>,
    /// Seconds from first start to end.
    pub duration_s: Option<f64>,
    /// Outputs by port.
    pub outputs: BTreeMap<String, OutputRef>,
    /// Why it failed, was skipped or cancelled.
    pub error: Option<String>,
    /// Span id of the node's span (hex), if traced.
    pub span_id: Option<String>,
}

/// A run as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id.
    pub run_id: String,
    /// DAG name.
    pub dag: String,
    /// The DAG file as given.
    pub dag_file: String,
    /// Parameter values.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The store URL.
    pub store: String,
    /// State.
    pub status: RunStatus,
    /// Start.
    pub started_at: String,
    /// End.
    pub ended_at: Option<String>,
    /// Trace id (hex), if traced.
    pub trace_id: Option<String>,
    /// Root span id (hex), if traced.
    pub span_id: Option<String>,
    /// PID of the zest process that last drove the run.
    pub pid: u32,
    /// How many times it was resumed.
    pub resumed: u32,
    /// Nodes in plan order.
    pub nodes: Vec<NodeRecord>,
    /// Node id to position in `nodes`.
    #[serde(skip)]
    index: std::collections::HashMap<String, usize>,
}

impl RunRecord {
    /// The record of node `id`.
    pub fn node(&self, id: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.node == id)
    }

    fn node_mut(&mut self, id: &str) -> Option<&mut NodeRecord> {
        if self.index.len() != self.nodes.len() {
            self.index = self
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.node.clone(), i))
                .collect();
        }
        let i = *self.index.get(id)?;
        self.nodes.get_mut(i)
    }

    /// Counts of nodes by status.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for n in &self.nodes {
            *m.entry(n.status.as_str()).or_default() += 1;
        }
        m
    }
}

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Event {
    RunStarted {
        run_id: String,
        dag: String,
        dag_file: String,
        params: serde_json::Map<String, serde_json::Value>,
        store: String,
        at: String,
        pid: u32,
        trace_id: Option<String>,
        span_id: Option<String>,
        /// (node, op, op version) in plan order.
        nodes: Vec<(String, String, String)>,
    },
    RunResumed {
        at: String,
        pid: u32,
        trace_id: Option<String>,
        span_id: Option<String>,
    },
    NodeStarted {
        node: String,
        attempt: u32,
        at: String,
        cache_key: String,
        span_id: Option<String>,
    },
    AttemptFailed {
        node: String,
        attempt: u32,
        at: String,
        error: String,
    },
    NodeSucceeded {
        node: String,
        attempt: u32,
        at: String,
        cached: bool,
        cache_key: String,
        outputs: BTreeMap<String, OutputRef>,
        span_id: Option<String>,
    },
    NodeFailed {
        node: String,
        at: String,
        error: String,
    },
    NodeSkipped {
        node: String,
        at: String,
        reason: String,
    },
    NodeCancelled {
        node: String,
        at: String,
        reason: String,
    },
    RunFinished {
        at: String,
        status: RunStatus,
    },
}

/// Applies one event to a record.
pub fn apply(rec: &mut Option<RunRecord>, ev: Event) {
    if let Event::RunStarted {
        run_id,
        dag,
        dag_file,
        params,
        store,
        at,
        pid,
        trace_id,
        span_id,
        nodes,
    } = ev
    {
        *rec = Some(RunRecord {
            run_id,
            dag,
            dag_file,
            params,
            store,
            status: RunStatus::Running,
            started_at: at,
            ended_at: None,
            trace_id,
            span_id,
            pid,
            resumed: 0,
            nodes: nodes
                .into_iter()
                .map(|(node, op, op_version)| NodeRecord {
                    node,
                    op,
                    op_version,
                    status: NodeStatus::Pending,
                    cache_key: None,
                    attempts: vec![],
                    started_at: None,
                    ended_at: None,
                    duration_s: None,
                    outputs: BTreeMap::new(),
                    error: None,
                    span_id: None,
                })
                .collect(),
            index: Default::default(),
        });
        return;
    }
    let Some(r) = rec.as_mut() else { return };
    let end = |n: &mut NodeRecord, at: &str| {
        n.ended_at = Some(at.to_string());
        n.duration_s = n.started_at.as_deref().and_then(|s| seconds_between(s, at));
    };
    match ev {
        Event::RunStarted { .. } => {}
        Event::RunResumed {
            pid,
            trace_id,
            span_id,
            ..
        } => {
            r.pid = pid;
            r.resumed += 1;
            r.status = RunStatus::Running;
            r.ended_at = None;
            if trace_id.is_some() {
                r.trace_id = trace_id;
                r.span_id = span_id;
            }
            for n in &mut r.nodes {
                if !n.status.is_done() {
                    n.status = NodeStatus::Pending;
                    n.error = None;
                }
            }
        }
        Event::NodeStarted {
            node,
            attempt,
            at,
            cache_key,
            span_id,
        } => {
            if let Some(n) = r.node_mut(&node) {
                n.status = NodeStatus::Running;
                n.cache_key = Some(cache_key);
                if n.started_at.is_none() || attempt == 1 {
                    n.started_at = Some(at.clone());
                }
                n.span_id = span_id.or(n.span_id.take());
                let attempt = Attempt {
                    attempt,
                    started_at: at,
                    ended_at: None,
                    outcome: None,
                    error: None,
                };
                // A resumed run starts again the attempt that was running when it stopped.
                match n.attempts.last_mut() {
                    Some(last) if last.attempt == attempt.attempt && last.ended_at.is_none() => {
                        *last = attempt
                    }
                    _ => n.attempts.push(attempt),
                }
            }
        }
        Event::AttemptFailed {
            node,
            attempt,
            at,
            error,
        } => {
            if let Some(n) = r.node_mut(&node) {
                if let Some(a) = n.attempts.iter_mut().rev().find(|a| a.attempt == attempt) {
                    a.ended_at = Some(at);
                    a.outcome = Some("failed".into());
                    a.error = Some(error);
                }
            }
        }
        Event::NodeSucceeded {
            node,
            attempt,
            at,
            cached,
            cache_key,
            outputs,
            span_id,
        } => {
            if let Some(n) = r.node_mut(&node) {
                n.status = if cached {
                    NodeStatus::Cached
                } else {
                    NodeStatus::Succeeded
                };
                n.cache_key = Some(cache_key);
                n.outputs = outputs;
                n.error = None;
                if span_id.is_some() {
                    n.span_id = span_id;
                }
                if cached {
                    n.started_at.get_or_insert_with(|| at.clone());
                } else if let Some(a) = n.attempts.iter_mut().rev().find(|a| a.attempt == attempt) {
                    a.ended_at = Some(at.clone());
                    a.outcome = Some("succeeded".into());
                }
                end(n, &at);
            }
        }
        Event::NodeFailed { node, at, error } => {
            if let Some(n) = r.node_mut(&node) {
                n.status = NodeStatus::Failed;
                if let Some(a) = n.attempts.last_mut() {
                    if a.outcome.is_none() {
                        a.ended_at = Some(at.clone());
                        a.outcome = Some("failed".into());
                        a.error = Some(error.clone());
                    }
                }
                n.error = Some(error);
                end(n, &at);
            }
        }
        Event::NodeSkipped { node, at, reason } => {
            if let Some(n) = r.node_mut(&node) {
                n.status = NodeStatus::Skipped;
                n.error = Some(reason);
                n.ended_at = Some(at);
            }
        }
        Event::NodeCancelled { node, at, reason } => {
            if let Some(n) = r.node_mut(&node) {
                n.status = NodeStatus::Cancelled;
                if let Some(a) = n.attempts.last_mut() {
                    if a.outcome.is_none() {
                        a.ended_at = Some(at.clone());
                        a.outcome = Some("cancelled".into());
                    }
                }
                n.error = Some(reason);
                end(n, &at);
            }
        }
        Event::RunFinished { at, status } => {
            r.status = status;
            r.ended_at = Some(at);
        }
    }
}

fn seconds_between(a: &str, b: &str) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b).ok()?;
    Some((b - a).num_milliseconds() as f64 / 1000.0)
}

/// Where a run keeps its journal, DAG copy and logs.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// `<state>/runs/<run-id>`.
    pub path: PathBuf,
}

impl RunDir {
    /// The run directory of `run_id` under `state_dir`.
    pub fn new(state_dir: &Path, run_id: &str) -> Self {
        RunDir {
            path: state_dir.join("runs").join(run_id),
        }
    }
    /// The journal file.
    pub fn journal(&self) -> PathBuf {
        self.path.join("journal.jsonl")
    }
    /// The copy of the DAG source the run was started from.
    pub fn dag_copy(&self) -> PathBuf {
        self.path.join("dag.yaml")
    }
    /// Command-line parameter overrides the run was started with.
    pub fn overrides(&self) -> PathBuf {
        self.path.join("overrides.json")
    }
    /// The executor profiles the run was started with (names of variables, no values).
    pub fn executors(&self) -> PathBuf {
        self.path.join("executors.json")
    }
    /// The log file of a node.
    pub fn log(&self, node: &str) -> PathBuf {
        self.path.join("logs").join(format!("{node}.log"))
    }
    /// The final record, written when the run finishes.
    pub fn record(&self) -> PathBuf {
        self.path.join("record.json")
    }
}

/// Appends events to a run's journal.
pub struct Journal {
    file: std::fs::File,
    buf: Vec<u8>,
}

impl Journal {
    /// Opens (creating) the journal for appending.
    pub fn open(dir: &RunDir) -> Result<Self> {
        std::fs::create_dir_all(dir.path.join("logs"))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.journal())
            .with_context(|| format!("cannot open run journal {}", dir.journal().display()))?;
        Ok(Journal {
            file,
            buf: Vec::with_capacity(1024),
        })
    }

    /// Adds one event as one line; it reaches the file with the next [`Journal::flush`].
    pub fn write(&mut self, ev: &Event) -> Result<()> {
        serde_json::to_writer(&mut self.buf, ev)?;
        self.buf.push(b'\n');
        Ok(())
    }

    /// Writes the pending lines, in one write.
    pub fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.buf);
        self.buf.clear();
        r.context("cannot write run journal")
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Reads a journal and folds it into a record. A last line cut short by a crash is ignored.
pub fn read_journal(path: &Path) -> Result<RunRecord> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut rec = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Event>(line) {
            Ok(ev) => apply(&mut rec, ev),
            Err(_) if !text.ends_with('\n') || line == text.lines().last().unwrap_or_default() => {
                break
            }
            Err(e) => bail!("{}: corrupt journal line: {e}", path.display()),
        }
    }
    let mut rec =
        rec.ok_or_else(|| anyhow::anyhow!("{}: journal has no run_started event", path.display()))?;
    if rec.status == RunStatus::Running && !pid_alive(rec.pid) {
        rec.status = RunStatus::Interrupted;
        for n in &mut rec.nodes {
            if n.status == NodeStatus::Running {
                n.status = NodeStatus::Pending;
            }
        }
    }
    Ok(rec)
}

fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // Signal 0 checks existence; a recycled PID is possible but then the journal's process
    // would also be gone, which only makes a dead run look alive until the PID is reused.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Checks that `run_id` is a run id (letters, digits, `-`, `_`, `.`, not starting with
/// `.`), so that it can never name a path outside the state directory.
pub fn check_run_id(run_id: &str) -> Result<()> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 128
        && !run_id.starts_with('.')
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("`{run_id}` is not a run id (like 20261125-121300-123-ab12); `zest runs` lists them");
    }
    Ok(())
}

/// Loads a run record: the final `record.json` if present, else the journal.
pub fn load_run(state_dir: &Path, run_id: &str) -> Result<RunRecord> {
    check_run_id(run_id)?;
    let dir = RunDir::new(state_dir, run_id);
    if !dir.path.exists() {
        bail!("no run `{run_id}` in {}", state_dir.join("runs").display());
    }
    if let Ok(text) = std::fs::read_to_string(dir.record()) {
        if let Ok(r) = serde_json::from_str::<RunRecord>(&text) {
            return Ok(r);
        }
    }
    read_journal(&dir.journal())
}

/// Ids of all runs under `state_dir`, newest first.
pub fn list_runs(state_dir: &Path) -> Result<Vec<String>> {
    let dir = state_dir.join("runs");
    let mut ids = vec![];
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.path().join("journal.jsonl").exists() {
                ids.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    ids.sort_by(|a, b| b.cmp(a));
    Ok(ids)
}

/// A new run id: UTC time, sortable, with a random suffix.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    format!(
        "{}-{:04x}",
        now.format("%Y%m%d-%H%M%S-%3f"),
        rand::random::<u16>()
    )
}

/// Writes the final record next to the journal (temp file, then rename).
pub fn write_record(dir: &RunDir, rec: &RunRecord) -> Result<()> {
    let tmp = dir.path.join("record.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(rec)?)?;
    std::fs::rename(&tmp, dir.record())?;
    Ok(())
}

/// The current time, for events.
pub fn now() -> String {
    now_rfc3339()
}
