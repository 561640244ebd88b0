//! Node execution in child processes.
//!
//! The scheduler never runs operator code itself. Each node attempt is sent as a [`Task`]
//! (one JSON line) to a `zest node worker` process, which runs the operator, commits its
//! outputs to the store and answers with a [`TaskResult`]. Workers are reused between tasks
//! so that small nodes cost little; a worker that panics, aborts, segfaults or is killed
//! (OOM, timeout) takes only its own task down, and the scheduler reports how it died.
//! `zest node exec` runs one task in a fresh process, for remote executors.

use crate::operator::{InputArtifact, OpContext, PortType, Registry};
use crate::store::{ArtifactStore, CacheEntry, OutputRef, Provenance, S3Options};
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// An input artifact reference inside a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputRef {
    /// Digest.
    pub digest: String,
    /// Type.
    pub kind: PortType,
}

/// Where the store is and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreConfig {
    /// Local path or `s3://bucket/prefix`.
    pub url: String,
    /// S3 settings.
    pub s3: S3Options,
    /// Where remote artifacts are downloaded to.
    pub download_dir: PathBuf,
}

impl StoreConfig {
    /// Opens the store.
    pub fn open(&self) -> Result<ArtifactStore> {
        ArtifactStore::open(&self.url, &self.s3, &self.download_dir)
    }
}

/// One node attempt to execute.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    /// Run id.
    pub run_id: String,
    /// DAG name.
    pub dag: String,
    /// Node id.
    pub node: String,
    /// Operator name.
    pub op: String,
    /// Canonical config.
    pub config: serde_json::Value,
    /// Cache key of this execution.
    pub cache_key: String,
    /// 1-based attempt.
    pub attempt: u32,
    /// Inputs by port.
    pub inputs: BTreeMap<String, Vec<InputRef>>,
    /// Output ports and their types.
    pub outputs: Vec<(String, PortType)>,
    /// The store.
    pub store: StoreConfig,
    /// A path prefix for this attempt's scratch space: outputs are written to
    /// `<scratch>.out.<port>`, temporary files to `<scratch>.tmp` (created on demand).
    pub scratch: PathBuf,
    /// The node's log file (appended to).
    pub log: PathBuf,
    /// Extra environment for child processes.
    pub env: BTreeMap<String, String>,
    /// Trace id of the run (hex), empty if untraced.
    pub trace_id: String,
    /// Span id of the node span (hex), empty if untraced.
    pub span_id: String,
}

/// The answer to a [`Task`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskResult {
    /// Committed outputs by port, on success.
    pub outputs: BTreeMap<String, OutputRef>,
    /// The error, on failure.
    pub error: Option<String>,
}

/// `<scratch>.<name>`: scratch paths are siblings rather than children of one task directory,
/// so a task creates (and deletes) as few directories as possible.
fn scratch_path(task: &Task, name: &str) -> PathBuf {
    let mut s = task.scratch.clone().into_os_string();
    s.push(format!(".{name}"));
    PathBuf::from(s)
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".into()
    }
}

/// Executes one task in this process: materialise inputs, run the operator, commit outputs,
/// record the cache entry. Panics in the operator become errors.
pub fn execute(
    task: &Task,
    registry: &Registry,
    rt: &tokio::runtime::Runtime,
    stores: &mut HashMap<String, ArtifactStore>,
) -> TaskResult {
    let r = execute_inner(task, registry, rt, stores);
    // Committed outputs were moved into the store; remove what is left.
    for name in task
        .outputs
        .iter()
        .map(|(p, _)| format!("out.{p}"))
        .chain(["tmp".to_string()])
    {
        let p = scratch_path(task, &name);
        if p.exists() {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
    match r {
        Ok(outputs) => TaskResult {
            outputs,
            error: None,
        },
        Err(e) => TaskResult {
            outputs: BTreeMap::new(),
            error: Some(format!("{e:#}")),
        },
    }
}

fn execute_inner(
    task: &Task,
    registry: &Registry,
    rt: &tokio::runtime::Runtime,
    stores: &mut HashMap<String, ArtifactStore>,
) -> Result<BTreeMap<String, OutputRef>> {
    let op = registry
        .get(&task.op)
        .ok_or_else(|| anyhow!("unknown operator `{}`", task.op))?;
    let store = match stores.get(&task.store.url) {
        Some(s) => s.clone(),
        None => {
            let s = task.store.open()?;
            stores.insert(task.store.url.clone(), s.clone());
            s
        }
    };
    let mut inputs: BTreeMap<String, Vec<InputArtifact>> = BTreeMap::new();
    for (port, refs) in &task.inputs {
        let mut v = vec![];
        for r in refs {
            let (path, manifest) = rt
                .block_on(store.materialize(&r.digest))
                .with_context(|| format!("input `{port}`"))?;
            v.push(InputArtifact {
                digest: r.digest.clone(),
                kind: r.kind,
                path,
                meta: manifest.meta,
            });
        }
        inputs.insert(port.clone(), v);
    }
    let mut outputs = BTreeMap::new();
    for (port, _) in &task.outputs {
        let dir = scratch_path(task, &format!("out.{port}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        outputs.insert(port.clone(), dir);
    }
    let tmp = scratch_path(task, "tmp");
    let mut ctx = OpContext {
        run_id: task.run_id.clone(),
        node: task.node.clone(),
        attempt: task.attempt,
        inputs,
        outputs,
        output_meta: BTreeMap::new(),
        env: task.env.clone(),
        log_path: task.log.clone(),
        scratch: tmp,
        runtime: rt.handle().clone(),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        op.run(&task.config, &mut ctx)
    }));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(p) => return Err(anyhow!("operator panicked: {}", panic_message(p.as_ref()))),
    }
    let provenance = Provenance {
        run_id: task.run_id.clone(),
        dag: task.dag.clone(),
        node: task.node.clone(),
        op: op.name().to_string(),
        op_version: op.version().to_string(),
        config: task.config.clone(),
        cache_key: task.cache_key.clone(),
        inputs: task
            .inputs
            .iter()
            .map(|(p, rs)| (p.clone(), rs.iter().map(|r| r.digest.clone()).collect()))
            .collect(),
        trace_id: task.trace_id.clone(),
        span_id: task.span_id.clone(),
    };
    let mut committed = BTreeMap::new();
    for (port, kind) in &task.outputs {
        let meta = ctx
            .output_meta
            .remove(port)
            .unwrap_or(serde_json::Value::Null);
        let out = rt
            .block_on(store.commit_dir(*kind, &ctx.outputs[port], meta, provenance.clone()))
            .with_context(|| format!("committing output `{port}`"))?;
        committed.insert(port.clone(), out);
    }
    let entry = CacheEntry {
        cache_key: task.cache_key.clone(),
        outputs: committed.clone(),
        provenance,
        created_at: crate::store::now_rfc3339(),
    };
    rt.block_on(store.cache_put(&entry))
        .context("recording the cache entry")?;
    Ok(committed)
}

fn worker_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the worker's runtime")
}

/// Redirects stdout and stderr to `path` (append), returning nothing; used per task.
fn redirect_output(path: &std::path::Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    unsafe {
        libc::dup2(f.as_raw_fd(), 1);
        libc::dup2(f.as_raw_fd(), 2);
    }
    Ok(())
}

/// The `zest node worker` loop: read tasks from stdin, answer on the original stdout.
/// While a task runs, the process's stdout and stderr go to the node's log file.
pub fn serve(registry: &Registry) -> Result<()> {
    // Die with the scheduler, so a `kill -9` of zest leaves no orphans.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() == 1 {
            return Ok(());
        }
    }
    use std::os::fd::FromRawFd;
    let proto_fd = unsafe { libc::dup(1) };
    let stderr_fd = unsafe { libc::dup(2) };
    if proto_fd < 0 || stderr_fd < 0 {
        return Err(anyhow!("cannot duplicate file descriptors"));
    }
    // From here on only `proto` reaches the scheduler; stray prints go to stderr.
    unsafe {
        libc::dup2(stderr_fd, 1);
    }
    let mut proto = unsafe { std::fs::File::from_raw_fd(proto_fd) };
    let rt = worker_runtime()?;
    let mut stores = HashMap::new();
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        let task: Task = serde_json::from_str(&line).context("worker received a malformed task")?;
        redirect_output(&task.log)?;
        let result = execute(&task, registry, &rt, &mut stores);
        let _ = std::io::stdout().flush();
        unsafe {
            libc::dup2(stderr_fd, 1);
            libc::dup2(stderr_fd, 2);
        }
        let mut out = serde_json::to_vec(&result)?;
        out.push(b'\n');
        proto.write_all(&out)?;
    }
}

/// `zest node exec`: runs one task read from a file (or `-` for stdin) and prints the
/// result as JSON. Exits non-zero if the task failed.
pub fn exec_one(registry: &Registry, task_path: &str) -> Result<TaskResult> {
    let text = if task_path == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(task_path)
            .with_context(|| format!("cannot read task {task_path}"))?
    };
    let task: Task = serde_json::from_str(&text).context("malformed task")?;
    let rt = worker_runtime()?;
    Ok(execute(&task, registry, &rt, &mut HashMap::new()))
}
