//! Where each node of a run stands: one [`NodeState`] per node.

use crate::operator::ExternalFile;
use crate::store::OutputRef;
use std::collections::BTreeMap;
use std::time::Instant;

/// A node's place in the run's state machine.
///
/// `Waiting` (upstream not done) → `Runnable` (ready, waiting for resources) → `Running`
/// (or `Queued` behind another node on a worker, then `Running`) → `Done`, or `BackingOff`
/// before another attempt, or `Failed`. `Skipped` (upstream failed) and `Cancelled` (the run
/// stopped) end nodes that never finished.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum St {
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

/// Everything the scheduler knows of one node in this run.
#[derive(Debug)]
pub(crate) struct NodeState {
    pub st: St,
    /// Committed outputs, once done.
    pub outputs: Option<BTreeMap<String, OutputRef>>,
    /// The cache key of its execution, once its inputs are known.
    pub key: String,
    /// Files it reads from outside the store (part of its key).
    pub files: Vec<ExternalFile>,
    /// The number of its latest attempt (numbered on across the sessions of a run).
    pub attempts: u32,
    /// Attempts of earlier sessions of the run: the retry policy counts the rest.
    pub base: u32,
    /// Upstream nodes not done yet.
    pub remaining: usize,
    /// When its first attempt started.
    pub started_at: Option<Instant>,
    /// When its current attempt started.
    pub attempt_started: Option<Instant>,
    /// The span (trace id, span id) that produced its outputs, for lineage links.
    pub producer_span: Option<(String, String)>,
    /// GPUs its running attempt holds.
    pub gpus: Vec<u32>,
    /// How many long-run periods without a timeout were named while it ran.
    pub long_notes: u32,
}

impl NodeState {
    /// A node waiting for `upstream` nodes.
    pub fn waiting(upstream: usize) -> Self {
        NodeState {
            st: St::Waiting,
            outputs: None,
            key: String::new(),
            files: vec![],
            attempts: 0,
            base: 0,
            remaining: upstream,
            started_at: None,
            attempt_started: None,
            producer_span: None,
            gpus: vec![],
            long_notes: 0,
        }
    }
}
