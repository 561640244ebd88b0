//! The task a worker runs for one node attempt: everything the attempt needs, as data, so
//! that any executor can carry it to wherever the attempt runs.

use super::state::NodeState;
use crate::executor::Job;
use crate::plan::PlanNode;
use crate::run::RunDir;
use crate::store::OutputRef;
use crate::worker::{InputRef, StoreConfig, Task};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Builds the tasks of one run.
pub(crate) struct TaskBuilder {
    pub run_id: String,
    pub dag: String,
    pub store: StoreConfig,
    /// `<state>/scratch/<run>`: each attempt gets a directory under it.
    pub scratch: PathBuf,
    pub run_dir: RunDir,
    /// The environment variables of the DAG's secrets.
    pub secrets: Vec<String>,
}

impl TaskBuilder {
    /// The environment of an attempt's processes: the run's mark and, on this machine, the
    /// GPUs it holds (`None`: a cluster executor's node, whose GPUs the cluster sets).
    pub fn env(&self, gpus: Option<&[u32]>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        // Marks every process of the run (workers and what they start), for `resume`.
        env.insert("ZEST_RUN_ID".to_string(), self.run_id.clone());
        if let Some(gpus) = gpus {
            env.insert(
                "CUDA_VISIBLE_DEVICES".to_string(),
                gpus.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        env
    }

    /// The job for `state`'s current attempt of `node` (token `token`), reading `inputs`,
    /// in the environment `env`, continuing the span `(trace_id, span_id)`.
    pub fn job(
        &self,
        token: usize,
        node: &PlanNode,
        state: &NodeState,
        inputs: BTreeMap<String, Vec<&OutputRef>>,
        env: BTreeMap<String, String>,
        (trace_id, span_id): (String, String),
    ) -> Job {
        let attempt = state.attempts;
        let task = Task {
            run_id: self.run_id.clone(),
            dag: self.dag.clone(),
            node: node.id.clone(),
            op: node.op.name().to_string(),
            config: node.config.clone(),
            cache_key: state.key.clone(),
            files: state.files.clone(),
            attempt,
            cpus: node.resources.cpu_declared.then_some(node.resources.cpu),
            shard: node.shard.clone(),
            machines: node.op.machines(&node.config).max(1),
            inputs: inputs
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
            store: self.store.clone(),
            scratch: self.scratch.join(format!("{}-{attempt}", node.id)),
            log: self.run_dir.log(&node.id),
            env,
            secrets: self.secrets.clone(),
            trace_id,
            span_id,
        };
        Job {
            token,
            task,
            timeout: node.timeout,
            memory: node.resources.memory,
            cpu: node.resources.cpu,
            gpu: node.resources.gpu,
            worker: node.op.worker(),
        }
    }
}
