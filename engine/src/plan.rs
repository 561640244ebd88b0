//! The compiled, checked DAG: a petgraph graph of nodes with resolved configs.

use crate::operator::{DynOperator, PortSpec};
use crate::spec::{Resources, RetryPolicy};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A reference to an output port of another node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortRef {
    /// The producing node.
    pub node: String,
    /// Its output port.
    pub port: String,
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.node, self.port)
    }
}

/// One node, ready to run.
#[derive(Clone)]
pub struct PlanNode {
    /// Node id.
    pub id: String,
    /// The operator.
    pub op: Arc<dyn DynOperator>,
    /// The canonical config (defaults filled in).
    pub config: serde_json::Value,
    /// Input ports and the outputs feeding them, sorted by port.
    pub inputs: Vec<(String, Vec<PortRef>)>,
    /// Output ports.
    pub outputs: Vec<PortSpec>,
    /// Ordering-only dependencies.
    pub after: Vec<String>,
    /// Resources.
    pub resources: Resources,
    /// Retry policy.
    pub retries: RetryPolicy,
    /// Time limit per attempt.
    pub timeout: Option<Duration>,
    /// Whether cached outputs may be reused.
    pub cache: bool,
    /// The executor profile it runs on; the run's default when `None`. Not part of the
    /// cache key: a node's outputs are the same wherever it runs.
    pub executor: Option<String>,
    /// Line in the DAG file where the node is defined.
    pub line: usize,
    /// Where this instance stands in a sharded node (`shards:`): the instances of a node
    /// `x` are `x[<stage>-<i>]`, and `x` itself is the merge; `None` for a node run whole.
    pub shard: Option<crate::operator::ShardPos>,
}

impl std::fmt::Debug for PlanNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanNode")
            .field("id", &self.id)
            .field("op", &self.op.name())
            .finish()
    }
}

/// Why one node depends on another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edge {
    /// Data flows from an output port to an input port.
    Data {
        /// Producer's output port.
        from: String,
        /// Consumer's input port.
        to: String,
    },
    /// Ordering only (`after:`).
    After,
}

/// A compiled DAG.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The DAG's name.
    pub name: String,
    /// The graph; edges point from producer to consumer.
    pub graph: DiGraph<PlanNode, Edge>,
    /// Node ids to graph indices.
    pub index: HashMap<String, NodeIndex>,
    /// All nodes in a topological order (file order among independent nodes).
    pub order: Vec<NodeIndex>,
    /// Parameter values in force, for the run record.
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl Plan {
    /// The node with id `id`.
    pub fn node(&self, id: &str) -> Option<&PlanNode> {
        self.index.get(id).map(|i| &self.graph[*i])
    }
}
