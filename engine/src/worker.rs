//! Node execution in child processes.
//!
//! The scheduler never runs operator code itself. Each node attempt is sent as a [`Task`]
//! (one JSON line) to a `zest node worker` process, which runs the operator, commits its
//! outputs to the store and answers with a [`TaskResult`]. Workers are reused between tasks
//! so that small nodes cost little; a worker that panics, aborts, segfaults or is killed
//! (OOM, timeout) takes only its own task down, and the scheduler reports how it died.
//! `zest node exec` runs one task in a fresh process, for remote executors.

use crate::operator::{InputArtifact, OpContext, PortType, Registry, Resolver};
use crate::store::{ArtifactStore, CacheEntry, OutputRef, Provenance, S3Options};
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An input artifact reference inside a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputRef {
    /// Digest.
    pub digest: String,
    /// Type.
    pub kind: PortType,
    /// Metadata its producer reported.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub meta: serde_json::Value,
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
    /// The node's log file (appended to; created only if the node writes output).
    pub log: PathBuf,
    /// Extra environment for child processes.
    pub env: BTreeMap<String, String>,
    /// Trace id of the run (hex), empty if untraced.
    pub trace_id: String,
    /// Span id of the node span (hex), empty if untraced.
    pub span_id: String,
}

/// The answer to a [`Task`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskResult {
    /// Committed outputs by port, on success.
    pub outputs: BTreeMap<String, OutputRef>,
    /// Ports whose artifact this attempt created (rather than found committed already).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
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
    let mut made = vec![];
    let r = execute_inner(task, registry, rt, stores, &mut made);
    // Committed outputs were moved into the store; remove what is left.
    for p in made {
        let _ = std::fs::remove_dir_all(&p);
    }
    match r {
        Ok((outputs, created)) => TaskResult {
            outputs,
            created,
            error: None,
        },
        Err(e) => TaskResult {
            error: Some(format!("{e:#}")),
            ..Default::default()
        },
    }
}

fn execute_inner(
    task: &Task,
    registry: &Registry,
    rt: &tokio::runtime::Runtime,
    stores: &mut HashMap<String, ArtifactStore>,
    made: &mut Vec<PathBuf>,
) -> Result<(BTreeMap<String, OutputRef>, Vec<String>)> {
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
            if store.is_local() {
                // Files are looked at only if the operator asks for them.
                let s = store.clone();
                let resolver: Resolver =
                    Arc::new(move |d: &str| s.materialize_local(d).map(|(p, _)| p));
                v.push(InputArtifact::lazy(
                    r.digest.clone(),
                    r.kind,
                    r.meta.clone(),
                    resolver,
                ));
            } else {
                let (path, manifest) = rt
                    .block_on(store.materialize(&r.digest))
                    .with_context(|| format!("input `{port}`"))?;
                v.push(InputArtifact::at(
                    r.digest.clone(),
                    r.kind,
                    manifest.meta,
                    path,
                ));
            }
        }
        inputs.insert(port.clone(), v);
    }
    let mut outputs = BTreeMap::new();
    for (port, _) in &task.outputs {
        outputs.insert(port.clone(), scratch_path(task, &format!("out.{port}")));
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
        small: BTreeMap::new(),
        dirs_made: Default::default(),
        tmp_made: Default::default(),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        op.run(&task.config, &mut ctx)
    }));
    // What to remove afterwards: directories that exist, unless committed (moved) first.
    for (port, dir) in &ctx.outputs {
        if ctx.has_dir(port) {
            made.push(dir.clone());
        }
    }
    if ctx.tmp_made.load(std::sync::atomic::Ordering::Relaxed) {
        made.push(ctx.scratch.clone());
    }
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
    let mut created = vec![];
    // The last small output is committed together with the cache entry.
    let mut last_inline = None;
    for (port, kind) in &task.outputs {
        let meta = ctx
            .output_meta
            .remove(port)
            .unwrap_or(serde_json::Value::Null);
        let out = if ctx.has_dir(port) {
            ctx.spill(port)?;
            let (out, new) = rt
                .block_on(store.commit_dir(*kind, &ctx.outputs[port], meta, provenance.clone()))
                .with_context(|| format!("committing output `{port}`"))?;
            if new {
                created.push(port.clone());
            }
            out
        } else {
            let files = ctx.small.remove(port).unwrap_or_default();
            let (out, manifest) = store.prepare_inline(*kind, &files, meta, provenance.clone());
            if let Some((p, m)) = last_inline.replace((port.clone(), manifest)) {
                if rt
                    .block_on(store.put_manifest(&m))
                    .with_context(|| format!("committing output `{p}`"))?
                {
                    created.push(p);
                }
            }
            out
        };
        committed.insert(port.clone(), out);
    }
    let mut entry = CacheEntry {
        cache_key: task.cache_key.clone(),
        outputs: committed.clone(),
        provenance,
        created_at: crate::store::now_rfc3339(),
    };
    match last_inline {
        Some((port, manifest)) => {
            entry.created_at = manifest.created_at.clone();
            if rt
                .block_on(store.commit_with_entry(&manifest, &entry))
                .with_context(|| format!("committing output `{port}` and the cache entry"))?
            {
                created.push(port);
            }
        }
        None => rt
            .block_on(store.cache_put(&entry))
            .context("recording the cache entry")?,
    }
    Ok((committed, created))
}

fn worker_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the worker's runtime")
}

/// How long a node runs before its log file appears under its own name while it runs.
const LIVE_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// The spool file a worker's stdout and stderr point at, in the run's log directory.
pub fn spool_path(log_dir: &Path, worker_pid: u32) -> PathBuf {
    log_dir.join(format!(".worker-{worker_pid}.out"))
}

/// Where node output goes. The worker's stdout and stderr point at a spool file; a node's
/// output becomes `logs/<node>.log` by renaming the spool, which writers (child processes
/// included) do not notice. That happens when the node ends having printed something, or
/// while it still runs after [`LIVE_AFTER`], so long nodes can be followed live. Nodes that
/// print nothing cost no file. If the worker dies, the scheduler moves the spool
/// ([`recover_spool`]).
struct NodeLogs {
    state: Arc<std::sync::Mutex<LogState>>,
}

#[derive(Default)]
struct LogState {
    /// The spool's path, once the first task has named the log directory.
    spool: Option<PathBuf>,
    /// The running node's log and when it started.
    task: Option<(PathBuf, std::time::Instant)>,
    /// Whether the spool was already moved (or tried to be) to the running node's log.
    moved: Option<bool>,
}

impl NodeLogs {
    fn new() -> Self {
        let state: Arc<std::sync::Mutex<LogState>> = Arc::default();
        let weak = Arc::downgrade(&state);
        // Makes long-running nodes' logs visible under their names; wakes a few times a
        // second and does nothing for short nodes.
        std::thread::Builder::new()
            .name("zest-logs".into())
            .spawn(move || loop {
                std::thread::sleep(LIVE_AFTER / 2);
                let Some(state) = weak.upgrade() else { return };
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                let st = &mut *st;
                if let (Some(spool), Some((log, started)), None) = (&st.spool, &st.task, st.moved) {
                    if started.elapsed() >= LIVE_AFTER {
                        st.moved = Some(crate::localfs::rename_noreplace(spool, log).is_ok());
                    }
                }
            })
            .ok();
        NodeLogs { state }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Points stdout and stderr at `path` (appended to, created if missing).
    fn open_spool(path: &Path) -> Result<()> {
        use std::os::fd::AsRawFd;
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        unsafe {
            libc::dup2(f.as_raw_fd(), 1);
            libc::dup2(f.as_raw_fd(), 2);
        }
        Ok(())
    }

    fn start(&self, log: &Path) -> Result<()> {
        let mut st = self.lock();
        if st.spool.is_none() {
            let dir = log.parent().unwrap_or(Path::new("."));
            let spool = spool_path(dir, std::process::id());
            Self::open_spool(&spool)?;
            st.spool = Some(spool);
        }
        st.task = Some((log.to_path_buf(), std::time::Instant::now()));
        st.moved = None;
        Ok(())
    }

    fn end(&self) -> Result<()> {
        let _ = std::io::stdout().flush();
        let mut st = self.lock();
        let Some((log, _)) = st.task.take() else {
            return Ok(());
        };
        let spool = st.spool.clone().expect("started");
        match st.moved.take() {
            Some(true) => return Self::open_spool(&spool),
            Some(false) => {}
            None => {
                let mut meta: libc::stat = unsafe { std::mem::zeroed() };
                if unsafe { libc::fstat(1, &mut meta) } != 0 || meta.st_size == 0 {
                    return Ok(());
                }
                if crate::localfs::rename_noreplace(&spool, &log).is_ok() {
                    return Self::open_spool(&spool);
                }
            }
        }
        // The node's log already exists (an earlier attempt, or an operator that writes it
        // itself): append the spool to it and empty the spool.
        append_spool(&spool, &log)?;
        unsafe {
            libc::ftruncate(1, 0);
        }
        Ok(())
    }

    /// Removes the spool if nothing is in it (at worker exit).
    fn close(&self) {
        let st = self.lock();
        if let Some(spool) = &st.spool {
            if std::fs::metadata(spool).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(spool);
            }
        }
    }
}

fn append_spool(spool: &Path, log: &Path) -> Result<()> {
    let mut from = std::fs::File::open(spool)?;
    let mut to = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    std::io::copy(&mut from, &mut to)?;
    Ok(())
}

/// After worker `worker_pid` died running a node: moves what the node printed from the
/// worker's spool to the node's log.
pub fn recover_spool(log: &Path, worker_pid: u32) {
    let Some(dir) = log.parent() else { return };
    let spool = spool_path(dir, worker_pid);
    match std::fs::metadata(&spool) {
        Ok(m) if m.len() > 0 => {}
        Ok(_) => {
            let _ = std::fs::remove_file(&spool);
            return;
        }
        Err(_) => return,
    }
    if crate::localfs::rename_noreplace(&spool, log).is_err() && append_spool(&spool, log).is_ok() {
        let _ = std::fs::remove_file(&spool);
    }
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
    // Close-on-exec: processes that operators start must not hold the scheduler's pipe
    // open, or the scheduler would not see this worker die until they exit.
    let proto_fd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    if proto_fd < 0 {
        return Err(anyhow!("cannot duplicate file descriptors"));
    }
    // From here on only `proto` reaches the scheduler; stray prints go to stderr until the
    // first task, and to the node logs after that.
    unsafe {
        libc::dup2(2, 1);
    }
    let mut proto = unsafe { std::fs::File::from_raw_fd(proto_fd) };
    let rt = worker_runtime()?;
    let mut stores = HashMap::new();
    let logs = NodeLogs::new();
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            logs.close();
            return Ok(());
        }
        let task: Task = serde_json::from_str(&line).context("worker received a malformed task")?;
        let mut result = match logs.start(&task.log) {
            Ok(()) => execute(&task, registry, &rt, &mut stores),
            Err(e) => TaskResult {
                error: Some(format!("{e:#}")),
                ..Default::default()
            },
        };
        if let Err(e) = logs.end() {
            if result.error.is_none() {
                result = TaskResult {
                    error: Some(format!("saving the node's log: {e:#}")),
                    ..Default::default()
                };
            }
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
    // What the operator prints goes to the node's log, not into the answer on stdout.
    let saved = unsafe {
        [
            libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3),
            libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3),
        ]
    };
    if saved.iter().any(|fd| *fd < 0) {
        return Err(anyhow!("cannot duplicate file descriptors"));
    }
    let redirected = NodeLogs::open_spool(&task.log);
    let result = match redirected {
        Ok(()) => execute(&task, registry, &rt, &mut HashMap::new()),
        Err(e) => TaskResult {
            error: Some(format!("{e:#}")),
            ..Default::default()
        },
    };
    let _ = std::io::stdout().flush();
    unsafe {
        libc::dup2(saved[0], 1);
        libc::dup2(saved[1], 2);
        libc::close(saved[0]);
        libc::close(saved[1]);
    }
    Ok(result)
}
