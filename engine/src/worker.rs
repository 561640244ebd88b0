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
    /// Files the node reads from outside the store (in the cache key), for provenance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<crate::operator::ExternalFile>,
    /// 1-based attempt.
    pub attempt: u32,
    /// The node's declared `resources.cpu`, if any: the most threads its operator should run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Where this instance stands in a sharded node (`shards:`); `None` for a node run whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::operator::ShardPos>,
    /// The machines a data-parallel node runs on ([`crate::operator::Operator::machines`]):
    /// a cluster executor starts one job for each.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub machines: usize,
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
    /// Environment variables holding the DAG's secrets (names only: the worker reads the
    /// values from its own environment, resolves `${secrets.VAR}` in the config with them and
    /// redacts them from everything it writes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Trace id of the run (hex), empty if untraced.
    pub trace_id: String,
    /// Span id of the node span (hex), empty if untraced.
    pub span_id: String,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
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
    /// The error is one that running the node again cannot fix ([`crate::failure`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub permanent: bool,
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
    execute_with_tail(task, registry, rt, stores, None)
}

fn execute_with_tail(
    task: &Task,
    registry: &Registry,
    rt: &tokio::runtime::Runtime,
    stores: &mut HashMap<String, ArtifactStore>,
    tail: Option<Arc<dyn Fn(usize) -> String + Send + Sync>>,
) -> TaskResult {
    let mut made = vec![];
    let redactor = crate::secret::Redactor::from_env(&task.secrets);
    let r = execute_inner(task, registry, rt, stores, &mut made, &redactor, tail);
    // Committed outputs were moved into the store; remove what is left.
    for p in made {
        let _ = std::fs::remove_dir_all(&p);
    }
    match r {
        Ok((outputs, created)) => TaskResult {
            outputs,
            created,
            ..Default::default()
        },
        Err(e) => TaskResult {
            error: Some(redactor.redact(&format!("{e:#}"))),
            permanent: crate::failure::is_permanent(&e),
            ..Default::default()
        },
    }
}

/// The operator's context for `task`: its inputs from `store`, its outputs and temporary
/// files at the task's scratch paths with `prefix` (empty, or a follower rank's own), and
/// its checkpoints.
fn op_context(
    task: &Task,
    store: &ArtifactStore,
    rt: &tokio::runtime::Runtime,
    prefix: &str,
    tail: Option<Arc<dyn Fn(usize) -> String + Send + Sync>>,
) -> Result<OpContext> {
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
        outputs.insert(
            port.clone(),
            scratch_path(task, &format!("{prefix}out.{port}")),
        );
    }
    let tmp = scratch_path(task, &format!("{prefix}tmp"));
    Ok(OpContext {
        run_id: task.run_id.clone(),
        node: task.node.clone(),
        attempt: task.attempt,
        cpus: task.cpus,
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
        tail,
        checkpoints: Some(Arc::new(crate::checkpoint::Checkpoints::for_task(
            &task.store,
            store.clone(),
            rt.handle().clone(),
            &task.cache_key,
            scratch_path(task, &format!("{prefix}ckpt")),
        ))),
        shard: task.shard.clone(),
        rank: None,
    })
}

fn execute_inner(
    task: &Task,
    registry: &Registry,
    rt: &tokio::runtime::Runtime,
    stores: &mut HashMap<String, ArtifactStore>,
    made: &mut Vec<PathBuf>,
    redactor: &crate::secret::Redactor,
    tail: Option<Arc<dyn Fn(usize) -> String + Send + Sync>>,
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
    // A data-parallel node: this process is rank 0, the others are started here; or, on
    // machines 1… of a node that runs on several, every rank here is started here.
    let place = crate::ranks::Placement::from_env(task.machines, op.processes(&task.config))
        .map_err(|e| crate::failure::permanent(format!("{e:#}")))?;
    let mut followers = None;
    let mut own_rank = None;
    if place.world_size() > 1 {
        let dir = scratch_path(task, "ranks");
        made.push(dir.clone());
        let exe = std::env::current_exe().context("cannot find this binary to start ranks")?;
        let key = rendezvous_key(task);
        let master = match place.machine {
            None => crate::ranks::Rendezvous {
                addr: "127.0.0.1".into(),
                port: crate::ranks::free_port(std::net::Ipv4Addr::LOCALHOST.into())?,
            },
            Some(0) => {
                let at = crate::ranks::Rendezvous {
                    addr: crate::ranks::node_addr(task.store.s3.endpoint.as_deref()),
                    port: crate::ranks::free_port(std::net::Ipv4Addr::UNSPECIFIED.into())?,
                };
                rt.block_on(crate::ranks::publish(&store, &key, &at))?;
                at
            }
            Some(_) => rt.block_on(crate::ranks::wait_for(&store, &key))?,
        };
        let (rank, f) = crate::ranks::launch(task, place, &master, &exe, &dir)?;
        println!(
            "data parallel: {} processes on {} machine(s){}, rendezvous on {}:{}",
            place.world_size(),
            place.machines,
            place
                .machine
                .map_or(String::new(), |m| format!(", this is machine {m}")),
            master.addr,
            master.port
        );
        match rank {
            Some(r) => {
                own_rank = Some(r);
                followers = Some(f);
            }
            // Machines 1… only train: their ranks end when rank 0 does.
            None => {
                f.wait()?;
                return Ok((BTreeMap::new(), vec![]));
            }
        }
    }
    let mut ctx = op_context(task, &store, rt, "", tail)?;
    ctx.rank = own_rank;
    // Secrets reach the operator here, and only here.
    let config = crate::secret::resolve(&task.config, &task.secrets)?;
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op.run(&config, &mut ctx)));
    let result = match (result, followers) {
        (r, None) => r,
        (Ok(Ok(())), Some(f)) => Ok(f.wait()),
        (r, Some(f)) => {
            // Rank 0 failed: a failed follower is the likelier cause; say so first.
            std::thread::sleep(std::time::Duration::from_millis(300));
            let failed = f.failures();
            f.stop();
            match r {
                Ok(Err(e)) if !failed.is_empty() => Ok(Err(e.context(format!(
                    "{} (its error is in the node's log)",
                    failed.join("; ")
                )))),
                r => r,
            }
        }
    };
    // What to remove afterwards: directories that exist, unless committed (moved) first.
    for (port, dir) in &ctx.outputs {
        if ctx.has_dir(port) {
            made.push(dir.clone());
        }
    }
    if ctx.tmp_made.load(std::sync::atomic::Ordering::Relaxed) {
        made.push(ctx.scratch.clone());
    }
    let restored = scratch_path(task, "ckpt");
    if restored.exists() {
        made.push(restored);
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
        op_code: op.code().to_string(),
        files: task.files.clone(),
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
            .map(|m| redactor.redact_json(&m))
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
    // The outputs are safe; checkpoints are not needed any more (an error here loses
    // nothing, so it is only reported).
    if let Some(c) = &ctx.checkpoints {
        if let Err(e) = c.finish() {
            eprintln!(
                "could not remove the node's checkpoints in {}: {e:#}",
                c.location()
            );
        }
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

/// The most a node's log keeps of what it prints (`ZEST_LOG_LIMIT`, in bytes; default
/// 64 MiB). Past it, output is counted and dropped, and the log ends with a note and the
/// last [`DROPPED_TAIL`] bytes.
pub const DEFAULT_LOG_LIMIT: u64 = 64 << 20;

/// How much of the dropped end of an over-long log is kept.
pub const DROPPED_TAIL: usize = 64 << 10;

/// How much of the end of a node's output is kept for error messages.
const TAIL: usize = 16 << 10;

/// Written into the capture pipe to learn that everything before it was copied.
const SYNC: &[u8; 12] = b"\0\0ZEST-SYNC\0";

fn log_limit() -> u64 {
    std::env::var("ZEST_LOG_LIMIT")
        .ok()
        .and_then(|v| crate::units::parse_bytes(&v).ok())
        .unwrap_or(DEFAULT_LOG_LIMIT)
}

/// Where node output goes. The worker's stdout and stderr (and so every child process's)
/// are a pipe; a copier thread writes what comes through it to a spool file in the run's log
/// directory, redacting secrets and keeping at most [`log_limit`] bytes per node. A node's
/// output becomes `logs/<node>.log` by renaming the spool, which the copier does not
/// notice. That happens when the node ends having printed something, or while it still
/// runs after [`LIVE_AFTER`], so long nodes can be followed live. Nodes that print nothing
/// cost no file. If the worker dies, the scheduler moves the spool ([`recover_spool`]).
struct NodeLogs {
    state: Arc<(std::sync::Mutex<LogState>, std::sync::Condvar)>,
}

#[derive(Default)]
struct LogState {
    /// The spool's path, once the first task has named the log directory.
    spool: Option<PathBuf>,
    /// The spool, open for appending.
    file: Option<std::fs::File>,
    /// The running node's log and when it started.
    task: Option<(PathBuf, std::time::Instant)>,
    /// Whether the spool was already moved (or tried to be) to the running node's log.
    moved: Option<bool>,
    /// Bytes read from the pipe and not yet written: a possible start of a sync mark or of
    /// a secret.
    pending: Vec<u8>,
    /// Bytes the running node has had written to its log, and dropped past the limit.
    written: u64,
    dropped: u64,
    limit: u64,
    /// The end of the dropped output, and of all output.
    dropped_tail: std::collections::VecDeque<u8>,
    tail: std::collections::VecDeque<u8>,
    redactor: crate::secret::Redactor,
    /// Sync marks sent and seen.
    sent: u32,
    seen: u32,
    /// A write error of the copier, reported at the node's end.
    error: Option<String>,
}

fn push_bounded(q: &mut std::collections::VecDeque<u8>, data: &[u8], cap: usize) {
    if data.len() >= cap {
        q.clear();
        q.extend(&data[data.len() - cap..]);
        return;
    }
    let over = (q.len() + data.len()).saturating_sub(cap);
    q.drain(..over);
    q.extend(data);
}

impl LogState {
    /// Writes node output to the spool, within the limit.
    fn emit(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        push_bounded(&mut self.tail, data, TAIL);
        let room = self.limit.saturating_sub(self.written) as usize;
        let (keep, drop) = data.split_at(room.min(data.len()));
        if !keep.is_empty() {
            if let Some(f) = self.file.as_mut() {
                if let Err(e) = f.write_all(keep) {
                    self.error.get_or_insert(e.to_string());
                }
            }
            self.written += keep.len() as u64;
        }
        if !drop.is_empty() {
            self.dropped += drop.len() as u64;
            push_bounded(&mut self.dropped_tail, drop, DROPPED_TAIL);
        }
    }

    /// Takes in bytes from the pipe: sync marks are acknowledged, secrets redacted, and what
    /// may still be the start of either is held back.
    fn take(&mut self, data: &[u8], cv: &std::sync::Condvar) {
        self.pending.extend_from_slice(data);
        loop {
            let found = self.pending.windows(SYNC.len()).position(|w| w == SYNC);
            match found {
                Some(i) if self.pending.len() >= i + SYNC.len() + 4 => {
                    let before: Vec<u8> = self.pending[..i].to_vec();
                    let seq = u32::from_le_bytes(
                        self.pending[i + SYNC.len()..i + SYNC.len() + 4]
                            .try_into()
                            .expect("4 bytes"),
                    );
                    self.pending.drain(..i + SYNC.len() + 4);
                    let out = self.redactor.redact_bytes(&before);
                    self.emit(&out);
                    self.seen = self.seen.max(seq);
                    cv.notify_all();
                }
                Some(i) => {
                    // An incomplete mark: write what precedes it, wait for the rest.
                    let before: Vec<u8> = self.pending[..i].to_vec();
                    self.pending.drain(..i);
                    let out = self.redactor.redact_bytes(&before);
                    self.emit(&out);
                    return;
                }
                None => {
                    let redacted = self.redactor.redact_bytes(&self.pending);
                    // Hold back only what may be the start of a mark or of a secret.
                    let hold = crate::secret::partial_suffix(&redacted, SYNC)
                        .max(self.redactor.partial_at_end(&redacted));
                    let cut = redacted.len() - hold;
                    self.emit(&redacted[..cut]);
                    self.pending = redacted[cut..].to_vec();
                    return;
                }
            }
        }
    }
}

impl NodeLogs {
    /// Points stdout and stderr at a pipe whose copier thread writes the running node's log.
    fn new() -> Result<Self> {
        let state: Arc<(std::sync::Mutex<LogState>, std::sync::Condvar)> = Arc::default();
        let mut fds = [0 as libc::c_int; 2];
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(anyhow!(
                "cannot create the log pipe: {}",
                std::io::Error::last_os_error()
            ));
        }
        unsafe {
            libc::dup2(fds[1], 1);
            libc::dup2(fds[1], 2);
            libc::close(fds[1]);
        }
        let read_fd = fds[0];
        let copier = state.clone();
        std::thread::Builder::new()
            .name("zest-log-copier".into())
            .spawn(move || {
                use std::os::fd::FromRawFd;
                let mut pipe = unsafe { std::fs::File::from_raw_fd(read_fd) };
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = match std::io::Read::read(&mut pipe, &mut buf) {
                        Ok(0) => return,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => return,
                    };
                    let (lock, cv) = &*copier;
                    let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
                    st.take(&buf[..n], cv);
                }
            })
            .context("cannot start the log copier")?;
        let weak = Arc::downgrade(&state);
        // Makes long-running nodes' logs visible under their names; wakes a few times a
        // second and does nothing for short nodes.
        std::thread::Builder::new()
            .name("zest-logs".into())
            .spawn(move || loop {
                std::thread::sleep(LIVE_AFTER / 2);
                let Some(state) = weak.upgrade() else { return };
                let mut st = state.0.lock().unwrap_or_else(|e| e.into_inner());
                let st = &mut *st;
                if let (Some(spool), Some((log, started)), None) = (&st.spool, &st.task, st.moved) {
                    if started.elapsed() >= LIVE_AFTER {
                        st.moved = Some(crate::localfs::rename_noreplace(spool, log).is_ok());
                    }
                }
            })
            .ok();
        Ok(NodeLogs { state })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Points stdout and stderr at `path` (appended to, created if missing).
    fn open_spool(path: &Path) -> Result<()> {
        use std::os::fd::AsRawFd;
        let f = open_append(path)?;
        unsafe {
            libc::dup2(f.as_raw_fd(), 1);
            libc::dup2(f.as_raw_fd(), 2);
        }
        Ok(())
    }

    /// Waits until everything written to stdout and stderr so far has been copied.
    fn sync(&self) {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let seq = {
            let mut st = self.lock();
            st.sent += 1;
            st.sent
        };
        let mut mark = SYNC.to_vec();
        mark.extend_from_slice(&seq.to_le_bytes());
        // One write of less than PIPE_BUF bytes: never interleaved with other writers.
        let n = unsafe { libc::write(1, mark.as_ptr().cast(), mark.len()) };
        if n != mark.len() as isize {
            return;
        }
        let (lock, cv) = &*self.state;
        let st = lock.lock().unwrap_or_else(|e| e.into_inner());
        let _ = cv.wait_timeout_while(st, std::time::Duration::from_secs(10), |st| st.seen < seq);
    }

    /// The last `lines` lines the running node printed.
    fn tail(&self, lines: usize) -> String {
        self.sync();
        let st = self.lock();
        let bytes: Vec<u8> = st.tail.iter().copied().collect();
        crate::operator::last_lines(&String::from_utf8_lossy(&bytes), lines)
    }

    fn start(&self, task: &Task) -> Result<()> {
        let mut st = self.lock();
        if st.spool.is_none() {
            let dir = task.log.parent().unwrap_or(Path::new("."));
            let spool = spool_path(dir, std::process::id());
            st.file = Some(open_append(&spool)?);
            st.spool = Some(spool);
        }
        st.task = Some((task.log.to_path_buf(), std::time::Instant::now()));
        st.moved = None;
        st.written = 0;
        st.dropped = 0;
        st.limit = log_limit();
        st.dropped_tail.clear();
        st.tail.clear();
        st.error = None;
        st.redactor = crate::secret::Redactor::from_env(&task.secrets);
        Ok(())
    }

    fn end(&self) -> Result<()> {
        self.sync();
        let mut st = self.lock();
        // Whatever is still held back is output too.
        let rest = std::mem::take(&mut st.pending);
        let rest = st.redactor.redact_bytes(&rest);
        st.emit(&rest);
        let Some((log, _)) = st.task.take() else {
            return Ok(());
        };
        if st.dropped > 0 {
            let note = format!(
                "\n[zest: this log keeps the first {} of the node's output; {} more bytes were dropped (ZEST_LOG_LIMIT); the last {} follow]\n",
                crate::units::format_bytes(st.limit),
                st.dropped,
                st.dropped_tail.len()
            );
            let tail: Vec<u8> = st.dropped_tail.iter().copied().collect();
            if let Some(f) = st.file.as_mut() {
                f.write_all(note.as_bytes())?;
                f.write_all(&tail)?;
            }
        }
        if let Some(e) = st.error.take() {
            return Err(anyhow!("writing the node's log: {e}"));
        }
        let spool = st.spool.clone().expect("started");
        match st.moved.take() {
            Some(true) => {
                st.file = Some(open_append(&spool)?);
                return Ok(());
            }
            Some(false) => {}
            None => {
                let size = st
                    .file
                    .as_ref()
                    .and_then(|f| f.metadata().ok())
                    .map(|m| m.len())
                    .unwrap_or(0);
                if size == 0 {
                    return Ok(());
                }
                if crate::localfs::rename_noreplace(&spool, &log).is_ok() {
                    st.file = Some(open_append(&spool)?);
                    return Ok(());
                }
            }
        }
        // The node's log already exists (an earlier attempt, or an operator that writes it
        // itself): append the spool to it and empty the spool.
        append_spool(&spool, &log)?;
        if let Some(f) = st.file.as_ref() {
            f.set_len(0)?;
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
    // Die with the scheduler, taking everything nodes started along, so a `kill -9` of
    // zest leaves no orphans; adopt what nodes leave behind, to kill it when they end.
    crate::sandbox::die_with_parent();
    if unsafe { libc::getppid() } == 1 {
        return Ok(());
    }
    crate::sandbox::become_subreaper();
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
    let logs = Arc::new(NodeLogs::new()?);
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            logs.close();
            return Ok(());
        }
        let task: Task = serde_json::from_str(&line).context("worker received a malformed task")?;
        let tail: Arc<dyn Fn(usize) -> String + Send + Sync> = {
            let logs = logs.clone();
            Arc::new(move |n| logs.tail(n))
        };
        let mut result = match logs.start(&task) {
            Ok(()) => execute_with_tail(&task, registry, &rt, &mut stores, Some(tail)),
            Err(e) => TaskResult {
                error: Some(format!("{e:#}")),
                ..Default::default()
            },
        };
        // Nothing a node started outlives it (`cmd &` in a shell node, say).
        crate::sandbox::kill_descendants();
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

/// `node rank --task FILE`: runs one follower rank of a data-parallel node ([`crate::ranks`])
/// in this process, with its place read from torchrun's environment. Its outputs and
/// temporary files are its own and removed when it ends; nothing is committed.
pub fn exec_rank(registry: &Registry, task_path: &Path) -> Result<()> {
    crate::sandbox::die_with_parent();
    let rank = crate::ranks::Rank::from_env().context("a rank's environment")?;
    if rank.is_leader() {
        return Err(anyhow!("rank 0 is the worker that started the others"));
    }
    let text = std::fs::read_to_string(task_path)
        .with_context(|| format!("cannot read task {}", task_path.display()))?;
    let task: Task = serde_json::from_str(&text).context("malformed task")?;
    let op = registry
        .get(&task.op)
        .ok_or_else(|| anyhow!("unknown operator `{}`", task.op))?;
    let rt = worker_runtime()?;
    let store = task.store.open()?;
    let prefix = format!("rank{}.", rank.rank);
    let mut ctx = op_context(&task, &store, &rt, &prefix, None)?;
    if let Some(c) = ctx.checkpoints.take() {
        let c = Arc::try_unwrap(c).map_err(|_| anyhow!("checkpoints shared"))?;
        ctx.checkpoints = Some(Arc::new(c.for_follower()));
    }
    ctx.rank = Some(rank.clone());
    let redactor = crate::secret::Redactor::from_env(&task.secrets);
    let config = crate::secret::resolve(&task.config, &task.secrets)?;
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op.run(&config, &mut ctx)));
    let mut leftovers: Vec<PathBuf> = ctx.outputs.values().cloned().collect();
    leftovers.push(ctx.scratch.clone());
    leftovers.push(scratch_path(&task, &format!("{prefix}ckpt")));
    for p in leftovers {
        let _ = std::fs::remove_dir_all(p);
    }
    let r = match result {
        Ok(r) => r,
        Err(p) => Err(anyhow!("operator panicked: {}", panic_message(p.as_ref()))),
    };
    r.map_err(|e| anyhow!("{}", redactor.redact(&format!("rank {}: {e:#}", rank.rank))))
}

/// Opens `path` for appending (its folder and the file created if missing).
pub(crate) fn open_append(path: &Path) -> Result<std::fs::File> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Where a task and its result live in the store, for executors whose nodes run on other
/// machines: `tasks/<run>/<node>.<attempt>.json` and `….result.json`.
pub fn remote_task_keys(task: &Task) -> (String, String) {
    let base = remote_key_base(task);
    (format!("{base}.json"), format!("{base}.result.json"))
}

/// `tasks/<run>/<node>.<attempt>`: what the store keys of an attempt's files begin with.
fn remote_key_base(task: &Task) -> String {
    format!("tasks/{}/{}.{}", task.run_id, task.node, task.attempt)
}

/// Where machine 0 of a data-parallel node's attempt says where it listens for the other
/// machines' ranks ([`crate::ranks::Rendezvous`]): `tasks/<run>/<node>.<attempt>.rendezvous.json`.
pub fn rendezvous_key(task: &Task) -> String {
    format!("{}.rendezvous.json", remote_key_base(task))
}

/// The prefix of `zest node exec --task store:KEY`: the task is read from the store that
/// `ZEST_STORE` (and `ZEST_S3_ENDPOINT`) name, as executors whose nodes run on other
/// machines put it there.
pub const STORE_TASK: &str = "store:";

/// Copies a node's log, as it grows, to the process's standard output as it was before the
/// node's own output was pointed at the log (`zest node exec` on a cluster node).
struct LogEcho {
    done: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl LogEcho {
    fn start(log: &Path) -> Result<Self> {
        use std::os::fd::FromRawFd;
        // A copy of stdout as it is now (the node's logs point fd 1 at themselves), closed
        // on exec so that the node's child processes do not hold it open.
        let fd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(anyhow!(
                "cannot duplicate stdout: {}",
                std::io::Error::last_os_error()
            ));
        }
        let mut console = unsafe { std::fs::File::from_raw_fd(fd) };
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (log, stop) = (log.to_path_buf(), done.clone());
        let thread = std::thread::Builder::new()
            .name("zest-log-echo".into())
            .spawn(move || {
                use std::io::{Read, Seek};
                let mut at = 0u64;
                loop {
                    let last = stop.load(std::sync::atomic::Ordering::Acquire);
                    if let Ok(mut f) = std::fs::File::open(&log) {
                        let mut buf = vec![];
                        if f.seek(std::io::SeekFrom::Start(at)).is_ok()
                            && f.read_to_end(&mut buf).is_ok()
                            && !buf.is_empty()
                        {
                            at += buf.len() as u64;
                            let _ = console.write_all(&buf);
                            let _ = console.flush();
                        }
                    }
                    if last {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
            })
            .context("cannot start the log echo")?;
        Ok(LogEcho { done, thread })
    }

    /// Copies the rest and stops.
    fn finish(self) {
        self.done.store(true, std::sync::atomic::Ordering::Release);
        let _ = self.thread.join();
    }
}

/// Runs the task that `zest node exec --task ARG` names: a JSON file, `-` for stdin, or
/// `store:KEY` ([`exec_from_store`], with the store and work directory from the
/// environment). The caller prints the result unless the task came from the store.
pub fn exec_task_arg(registry: &Registry, arg: &str) -> Result<TaskResult> {
    let Some(key) = arg.strip_prefix(STORE_TASK) else {
        return exec_one(registry, arg);
    };
    let url = std::env::var("ZEST_STORE")
        .map_err(|_| anyhow!("`--task {arg}` needs ZEST_STORE: the store the task is in"))?;
    let store = StoreConfig {
        url,
        s3: S3Options {
            endpoint: std::env::var("ZEST_S3_ENDPOINT")
                .ok()
                .filter(|e| !e.is_empty()),
        },
        download_dir: PathBuf::new(),
    };
    let work_dir = std::env::var_os("ZEST_WORK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("zest-work"));
    exec_from_store(registry, &store, key, &work_dir)
}

/// Runs the task stored at `key` in `store` on this machine (a cluster node), with scratch
/// space, downloads and the log under `work_dir`; prints the node's log on stdout (the
/// cluster keeps it as the job's log) and writes the result beside the task
/// ([`remote_task_keys`]). Returns the result.
pub fn exec_from_store(
    registry: &Registry,
    store: &StoreConfig,
    key: &str,
    work_dir: &Path,
) -> Result<TaskResult> {
    let rt = worker_runtime()?;
    let st = store.open()?;
    let mut task: Task = rt
        .block_on(st.get_json::<Task>(key))
        .with_context(|| format!("cannot read task {key} from {}", store.url))?
        .ok_or_else(|| anyhow!("no task {key} in {}", store.url))?;
    // Machines of one data-parallel node may share a host (two Ray nodes on one machine,
    // or two of the node's jobs on one big Ray node) or a work_dir on a shared filesystem:
    // each keeps its own log, scratch and task file, named as its Ray job is.
    let machine = crate::ranks::Placement::from_env(task.machines, 1)
        .ok()
        .and_then(|p| p.machine);
    let attempt = match machine {
        Some(m) if m > 0 => format!("{}-{}-m{m}", task.node, task.attempt),
        _ => format!("{}-{}", task.node, task.attempt),
    };
    task.scratch = work_dir.join("scratch").join(&task.run_id).join(&attempt);
    task.log = work_dir
        .join("logs")
        .join(&task.run_id)
        .join(format!("{attempt}.log"));
    task.store.download_dir = work_dir.join("downloads");
    let _ = std::fs::remove_file(&task.log);
    let path = work_dir
        .join("tasks")
        .join(format!("{}-{attempt}.json", task.run_id));
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
    }
    std::fs::write(&path, serde_json::to_vec(&task)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // The job's log is the node's log (secrets hidden), printed as it grows, so that the
    // executor can follow it and a job that is killed keeps what it wrote.
    let console = LogEcho::start(&task.log)?;
    let result = exec_one(registry, &path.to_string_lossy());
    let _ = std::fs::remove_file(&path);
    console.finish();
    let result = result?;
    let _ = std::fs::remove_file(&task.log);
    // Machines 1… of a data-parallel node train only; machine 0 answers for the node.
    if machine.is_some_and(|m| m > 0) {
        return Ok(result);
    }
    let (_, result_key) = remote_task_keys(&task);
    rt.block_on(st.put_json(&result_key, &result))
        .with_context(|| format!("cannot write the result to {}", store.url))?;
    Ok(result)
}
