//! The operator interface: a config type, typed ports, a version, and `run`.
//!
//! Operators are plain types implementing [`Operator`]; they are registered by name in a
//! [`Registry`], which the compiler uses to validate DAGs and the worker uses to run nodes.
//! An operator never touches the scheduler: it reads its inputs from local directories and
//! writes each output port into a directory that the engine then commits to the store.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The type of a port, and of the artifact that flows through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortType {
    /// Accepts any artifact (inputs only).
    Any,
    /// A directory of files.
    Files,
    /// A table stored as Parquet.
    Dataset,
    /// A model in Hugging Face layout.
    Model,
    /// A tokenizer.
    Tokenizer,
    /// A JSON report, possibly with pictures.
    Report,
}

impl PortType {
    /// The lowercase name used in YAML and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            PortType::Any => "any",
            PortType::Files => "files",
            PortType::Dataset => "dataset",
            PortType::Model => "model",
            PortType::Tokenizer => "tokenizer",
            PortType::Report => "report",
        }
    }

    /// Whether an input port of type `self` accepts an artifact of type `produced`.
    /// `any` accepts everything; a `files` input accepts any artifact, since every artifact
    /// is a directory of files; otherwise the types must match.
    pub fn accepts(self, produced: PortType) -> bool {
        matches!(self, PortType::Any | PortType::Files)
            || produced == PortType::Any
            || self == produced
    }
}

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declared port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortSpec {
    /// The port name.
    pub name: String,
    /// The artifact type.
    #[serde(rename = "type")]
    pub ty: PortType,
    /// For inputs: whether the port must be connected.
    pub required: bool,
    /// For inputs: whether the port takes several artifacts.
    pub many: bool,
    /// For dataset inputs: columns the dataset must have. For dataset outputs: columns the
    /// dataset is known to have (empty when not known before running).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// For dataset outputs: `columns` are some of the dataset's columns, not all (an operator
    /// that passes its input's columns through and adds its own).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more_columns: bool,
    /// What the port is for.
    pub help: &'static str,
}

impl PortSpec {
    /// A required, single-artifact port.
    pub fn new(name: &str, ty: PortType, help: &'static str) -> Self {
        PortSpec {
            name: name.into(),
            ty,
            required: true,
            many: false,
            columns: vec![],
            more_columns: false,
            help,
        }
    }

    /// Marks the port optional.
    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    /// Lets the port take several artifacts.
    pub fn many(mut self) -> Self {
        self.many = true;
        self
    }

    /// Declares dataset columns (required for inputs, known for outputs).
    pub fn with_columns(mut self, cols: &[&str]) -> Self {
        self.columns = cols.iter().map(|c| c.to_string()).collect();
        self
    }

    /// For outputs that pass their input's columns through: the columns the operator adds,
    /// which the dataset has on top of its input's.
    pub fn with_added_columns(mut self, cols: &[&str]) -> Self {
        self.columns = cols.iter().map(|c| c.to_string()).collect();
        self.more_columns = true;
        self
    }
}

/// The ports of one node, which may depend on its config.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ports {
    /// Declared input ports.
    pub inputs: Vec<PortSpec>,
    /// Declared output ports.
    pub outputs: Vec<PortSpec>,
    /// If set, input ports with any other name are accepted too, with this type and
    /// taking several artifacts (e.g. `noop`, `shell`, `data.sql`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_inputs: Option<PortType>,
}

/// One file a node reads from outside the store, with the identity of its content: part of
/// the node's cache key and of its outputs' provenance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExternalFile {
    /// An absolute local path or an `s3://bucket/key` URL.
    pub location: String,
    /// The content's identity: `sha256:<hex>` for local files, `etag:<etag>:<size>` for
    /// objects in S3.
    pub content: String,
}

/// Resolves an artifact digest to a local directory holding its files.
pub type Resolver = Arc<dyn Fn(&str) -> anyhow::Result<PathBuf> + Send + Sync>;

/// One input artifact. Its files are made available as a local directory on first
/// [`InputArtifact::path`], so operators that only look at digests or metadata cost no I/O.
#[derive(Clone)]
pub struct InputArtifact {
    /// Content digest (hex sha256).
    pub digest: String,
    /// Artifact type.
    pub kind: PortType,
    /// Metadata recorded when it was produced (e.g. dataset columns and row count).
    pub meta: serde_json::Value,
    path: Arc<std::sync::OnceLock<PathBuf>>,
    resolver: Option<Resolver>,
}

impl fmt::Debug for InputArtifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputArtifact")
            .field("digest", &self.digest)
            .field("kind", &self.kind)
            .field("path", &self.path.get())
            .finish()
    }
}

impl InputArtifact {
    /// An artifact whose files are already in `path`.
    pub fn at(digest: String, kind: PortType, meta: serde_json::Value, path: PathBuf) -> Self {
        InputArtifact {
            digest,
            kind,
            meta,
            path: Arc::new(std::sync::OnceLock::from(path)),
            resolver: None,
        }
    }

    /// An artifact whose files `resolver` materialises when first asked for.
    pub fn lazy(
        digest: String,
        kind: PortType,
        meta: serde_json::Value,
        resolver: Resolver,
    ) -> Self {
        InputArtifact {
            digest,
            kind,
            meta,
            path: Arc::new(std::sync::OnceLock::new()),
            resolver: Some(resolver),
        }
    }

    /// The local directory holding the artifact's files (materialised on first call).
    pub fn path(&self) -> anyhow::Result<&Path> {
        if let Some(p) = self.path.get() {
            return Ok(p);
        }
        let resolver = self
            .resolver
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("artifact {} has no local path", self.digest))?;
        let p = resolver(&self.digest)?;
        Ok(self.path.get_or_init(|| p))
    }
}

/// Payloads up to this size that an operator hands over with [`OpContext::write_output`]
/// are committed without touching the local file system.
pub const SMALL_OUTPUT_LIMIT: usize = 64 << 10;

/// Which worker binary runs an operator's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerKind {
    /// `zest node worker`, the binary that schedules.
    Zest,
    /// `zest-torch node worker`, installed beside `zest`: the binary that links libtorch, for
    /// operators that train or run models. `zest` itself never loads libtorch.
    Torch,
}

impl WorkerKind {
    /// The worker binary's file name.
    pub fn binary(self) -> &'static str {
        match self {
            WorkerKind::Zest => "zest",
            WorkerKind::Torch => "zest-torch",
        }
    }

    /// The binary of this kind that lives beside `zest_exe` (the running `zest`, symlinks
    /// resolved).
    pub fn exe_beside(self, zest_exe: &Path) -> PathBuf {
        match self {
            WorkerKind::Zest => zest_exe.to_path_buf(),
            WorkerKind::Torch => {
                let real = std::fs::canonicalize(zest_exe).unwrap_or_else(|_| zest_exe.into());
                real.with_file_name(self.binary())
            }
        }
    }
}

/// The stage name of the instance that merges a sharded node's parts into its outputs.
pub const MERGE_STAGE: &str = "merge";

/// The input port through which a sharded node's instance receives the previous stage's parts.
pub const PARTS_PORT: &str = "parts";

/// The output port of a stage instance that holds its part for instance `j` of the next stage.
pub fn part_port(j: u32) -> String {
    format!("part{j}")
}

/// How an operator runs under `shards: N`: one or more stages, each run as `N` node instances
/// in order, and then one instance of stage [`MERGE_STAGE`] that writes the node's declared
/// outputs. Instance `i` of a stage writes one artifact per instance `j` of the next stage, to
/// output port [`part_port`]`(j)`; instance `j` receives them on input port [`PARTS_PORT`], in
/// instance order. Every instance also receives the node's own inputs. The operator finds its
/// place in [`OpContext::shard`] and must make the merged outputs byte-identical to an
/// unsharded run's, so that the node's digests, and every downstream cache key, do not depend
/// on how it was sharded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharding {
    /// The parallel stages' names, in order (e.g. `["map"]`, or `["map", "reduce"]`).
    pub stages: Vec<&'static str>,
}

/// Where a node instance stands in a sharded node (see [`Sharding`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardPos {
    /// The stage: one of [`Sharding::stages`], or [`MERGE_STAGE`].
    pub stage: String,
    /// The instance, `0..count` (0 for the merge).
    pub index: u32,
    /// The node's `shards`.
    pub count: u32,
}

impl ShardPos {
    /// Whether this is the merging instance.
    pub fn is_merge(&self) -> bool {
        self.stage == MERGE_STAGE
    }

    /// The rows `lo..hi` of `total` that instance `index` of `count` takes: contiguous ranges
    /// in order, sizes differing by at most one.
    pub fn rows(&self, total: usize) -> std::ops::Range<usize> {
        let (i, n) = (self.index as usize, self.count.max(1) as usize);
        (total * i / n)..(total * (i + 1) / n)
    }
}

/// Threads for a node declaring `cpus` cores (every core when it declares none).
pub fn threads_for(cpus: Option<f64>) -> usize {
    match cpus {
        Some(c) if c.is_finite() && c > 0.0 => (c.ceil() as usize).max(1),
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// What an operator sees while it runs.
pub struct OpContext {
    /// The run id.
    pub run_id: String,
    /// The node id.
    pub node: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// The node's declared `resources.cpu`, if any (see [`OpContext::threads`]).
    pub cpus: Option<f64>,
    /// Input artifacts by port.
    pub inputs: BTreeMap<String, Vec<InputArtifact>>,
    /// Output directories by port; see [`OpContext::output_dir`].
    pub outputs: BTreeMap<String, PathBuf>,
    /// Metadata the operator reports for its outputs (e.g. dataset columns, row counts).
    pub output_meta: BTreeMap<String, serde_json::Value>,
    /// Environment to pass to child processes (e.g. `CUDA_VISIBLE_DEVICES`).
    pub env: BTreeMap<String, String>,
    /// The node's log file; child processes may append to it.
    pub log_path: PathBuf,
    /// A directory for temporary files, removed after the node finishes. It is created by
    /// [`OpContext::tmp_dir`], not before.
    pub scratch: PathBuf,
    /// A tokio runtime handle for async work (`block_on` is allowed inside `run`).
    pub runtime: tokio::runtime::Handle,
    /// Small output files held in memory, by port (see [`OpContext::write_output`]).
    pub(crate) small: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Ports whose output directory exists.
    pub(crate) dirs_made: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Whether the temporary directory was created.
    pub(crate) tmp_made: std::sync::atomic::AtomicBool,
    /// The end of what the node has printed so far, by lines (see [`OpContext::output_tail`]).
    pub(crate) tail: Option<Arc<dyn Fn(usize) -> String + Send + Sync>>,
    /// The checkpoints of this execution (see [`OpContext::checkpoints`]).
    pub(crate) checkpoints: Option<Arc<crate::checkpoint::Checkpoints>>,
    /// Where this instance stands in a sharded node; `None` for a node run whole.
    pub shard: Option<ShardPos>,
    /// This process's place among the ranks of a data-parallel node
    /// ([`Operator::processes`], [`Operator::machines`]); `None` when the node runs as one
    /// process.
    pub rank: Option<crate::ranks::Rank>,
}

impl OpContext {
    /// How many threads the operator may keep busy: the node's `resources.cpu` rounded up
    /// when it declares one (the scheduler reserves that much for it), otherwise every core
    /// of the machine; divided among the ranks of a data-parallel node on this machine.
    pub fn threads(&self) -> usize {
        let ranks = self.rank.as_ref().map_or(1, |r| r.world_size);
        (threads_for(self.cpus) / ranks).max(1)
    }

    /// Whether this process commits the node's outputs and saves its checkpoints: always,
    /// except on the follower ranks of a data-parallel node.
    pub fn is_leader(&self) -> bool {
        self.rank.as_ref().is_none_or(|r| r.is_leader())
    }

    /// The artifacts connected to `port` (empty when unconnected).
    pub fn inputs(&self, port: &str) -> &[InputArtifact] {
        self.inputs.get(port).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The single artifact connected to a required, single-artifact port.
    pub fn input(&self, port: &str) -> anyhow::Result<&InputArtifact> {
        self.inputs(port)
            .first()
            .ok_or_else(|| anyhow::anyhow!("input port `{port}` is not connected"))
    }

    /// The directory to write output `port` into, created (empty) on first call. Everything
    /// in it when `run` returns becomes the output artifact.
    pub fn output_dir(&self, port: &str) -> anyhow::Result<&Path> {
        let dir = self
            .outputs
            .get(port)
            .map(PathBuf::as_path)
            .ok_or_else(|| anyhow::anyhow!("operator has no output port `{port}`"))?;
        let mut made = self.dirs_made.lock().unwrap_or_else(|e| e.into_inner());
        if !made.contains(port) {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            made.insert(port.to_string());
        }
        Ok(dir)
    }

    /// Adds one file to output `port`, at `rel_path` inside the artifact. Small outputs
    /// (up to [`SMALL_OUTPUT_LIMIT`] per port) stay in memory and are committed without
    /// touching the local file system; larger ones go to [`OpContext::output_dir`].
    pub fn write_output(
        &mut self,
        port: &str,
        rel_path: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<()> {
        if !self.outputs.contains_key(port) {
            anyhow::bail!("operator has no output port `{port}`");
        }
        let rel = Path::new(rel_path);
        if rel_path.is_empty()
            || !rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            anyhow::bail!("output file name `{rel_path}` must be a relative path without `..`");
        }
        let held: usize = self
            .small
            .get(port)
            .map(|m| m.values().map(Vec::len).sum())
            .unwrap_or(0);
        let has_dir = self
            .dirs_made
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(port);
        if has_dir || held + bytes.len() > SMALL_OUTPUT_LIMIT {
            self.spill(port)?;
            let path = self.output_dir(port)?.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, bytes)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            return Ok(());
        }
        self.small
            .entry(port.to_string())
            .or_default()
            .insert(rel_path.to_string(), bytes);
        Ok(())
    }

    /// Writes the in-memory files of `port` into its output directory.
    pub(crate) fn spill(&mut self, port: &str) -> anyhow::Result<()> {
        let Some(files) = self.small.remove(port) else {
            return Ok(());
        };
        let dir = self.output_dir(port)?.to_path_buf();
        for (rel, bytes) in files {
            let path = dir.join(&rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, bytes)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Whether output `port` has a directory on disk (as opposed to only in-memory files).
    pub(crate) fn has_dir(&self, port: &str) -> bool {
        self.dirs_made
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(port)
    }

    /// Records metadata for an output (stored in the artifact manifest).
    pub fn set_output_meta(&mut self, port: &str, meta: serde_json::Value) {
        self.output_meta.insert(port.to_string(), meta);
    }

    /// The checkpoints of this node execution, in the store under its cache key: a long
    /// node saves with [`Checkpoints::save`](crate::checkpoint::Checkpoints::save) as it goes
    /// and starts from [`Checkpoints::latest`](crate::checkpoint::Checkpoints::latest), so
    /// that a retry, a resume or a rerun continues where the last attempt stopped.
    pub fn checkpoints(&self) -> anyhow::Result<&crate::checkpoint::Checkpoints> {
        self.checkpoints
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("this node runs without a store for checkpoints"))
    }

    /// The memo entries of `namespace` in the node's store (see [`crate::memo`]): results
    /// keyed by what produced them, kept after the node commits, so that a retry, a resume or
    /// a rerun finds the work already done.
    pub fn memo(&self, namespace: &str) -> anyhow::Result<crate::memo::Memo<'_>> {
        crate::memo::Memo::new(self.checkpoints()?, namespace)
    }

    /// Leaves a one-line progress note (say `step 120/400 | loss 3.21 | ETA 4m`), which the
    /// terminal's status line shows while the node runs (and line mode prints every 30 s).
    /// Cheap enough to call every step; errors are ignored.
    pub fn progress(&self, note: &str) {
        let path = crate::progress::note_path(&self.log_path);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::localfs::put_replace(&path, note.as_bytes());
    }

    /// The node's temporary directory, created on first use.
    pub fn tmp_dir(&self) -> anyhow::Result<&Path> {
        std::fs::create_dir_all(&self.scratch)?;
        self.tmp_made
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(&self.scratch)
    }

    /// The last `lines` lines of what the node (its child processes included) has printed
    /// so far, with secrets redacted: for error messages.
    pub fn output_tail(&self, lines: usize) -> String {
        if let Some(f) = &self.tail {
            return f(lines);
        }
        // Not under a worker's log capture: the end of the log file.
        use std::io::{Read, Seek, SeekFrom};
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if f.seek(SeekFrom::Start(len.saturating_sub(8192))).is_ok() {
                let mut b = vec![];
                let _ = f.read_to_end(&mut b);
                s = String::from_utf8_lossy(&b).into_owned();
            }
        }
        last_lines(&s, lines)
    }

    /// Runs a future to completion on the worker's runtime.
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.runtime.block_on(fut)
    }
}

/// The last `n` lines of `s`.
pub(crate) fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A typed operator. Implement this; the registry wraps it as a [`DynOperator`].
pub trait Operator: Send + Sync + 'static {
    /// The operator's config, the `with:` block. Use `#[serde(deny_unknown_fields)]` so
    /// that unknown keys are reported.
    type Config: DeserializeOwned + JsonSchema + Serialize;
    /// The name used in `op:`.
    const NAME: &'static str;
    /// Bump when the operator's outputs change for the same inputs: it is part of the cache key.
    const VERSION: &'static str;
    /// One line on what it does.
    const DESCRIPTION: &'static str;

    /// The node's ports, given its config; `None` asks for the ports in general (for
    /// `zest ops`), describing config-dependent ports as best it can.
    fn ports(config: Option<&Self::Config>) -> Ports;

    /// Checks the config beyond what its type says (cross-field rules). Errors name the field.
    fn check(_config: &Self::Config) -> Result<(), String> {
        Ok(())
    }

    /// Runs the node.
    fn run(config: &Self::Config, ctx: &mut OpContext) -> anyhow::Result<()>;

    /// How a node with this config runs under `shards: N`; `None` (the default) means it
    /// cannot be sharded, which the compiler reports.
    fn sharding(_config: &Self::Config) -> Option<Sharding> {
        None
    }

    /// How many processes on one machine run a node with this config together (data
    /// parallelism, [`crate::ranks`]); 1, the default, runs it as one. Above 1, the worker
    /// starts the others and every process runs [`Operator::run`] with [`OpContext::rank`]
    /// set; rank 0's outputs are committed.
    fn processes(_config: &Self::Config) -> usize {
        1
    }

    /// How many machines run a node with this config together, each with
    /// [`Operator::processes`] processes (`torchrun --nnodes`); 1, the default, runs it on
    /// one. A cluster executor starts one job per machine; the local executor runs every
    /// machine's processes on this one.
    fn machines(_config: &Self::Config) -> usize {
        1
    }

    /// Whether the operator reads files from outside the store (then
    /// [`Operator::external_files`] is asked for them before every cache lookup).
    const READS_FILES: bool = false;

    /// The binary whose workers run this operator's nodes. Operators that need libtorch say
    /// [`WorkerKind::Torch`]; `zest` still validates and plans them from their config type
    /// and ports, and hands their nodes to `zest-torch` workers.
    const WORKER: WorkerKind = WorkerKind::Zest;

    /// The files outside the store that a node with this config reads, each with the
    /// identity of its content, sorted. Their identities are part of the node's cache key, so
    /// that a changed, added or removed file is a cache miss. Called by the scheduler (not in
    /// a worker) when the node's upstream nodes are done; `rt` runs async work.
    fn external_files(
        _config: &Self::Config,
        _rt: &tokio::runtime::Handle,
    ) -> anyhow::Result<Vec<ExternalFile>> {
        Ok(vec![])
    }
}

/// An operator with its config type erased; what the registry holds.
pub trait DynOperator: Send + Sync {
    /// See [`Operator::NAME`].
    fn name(&self) -> &'static str;
    /// See [`Operator::VERSION`].
    fn version(&self) -> &'static str;
    /// See [`Operator::DESCRIPTION`].
    fn description(&self) -> &'static str;
    /// A fingerprint of the code the operator is built from (empty when the registry was
    /// given none): part of every cache key, so that changed code never serves old results.
    fn code(&self) -> &str {
        ""
    }
    /// See [`Operator::READS_FILES`].
    fn reads_files(&self) -> bool {
        false
    }
    /// See [`Operator::WORKER`].
    fn worker(&self) -> WorkerKind {
        WorkerKind::Zest
    }
    /// See [`Operator::external_files`].
    fn external_files(
        &self,
        _config: &serde_json::Value,
        _rt: &tokio::runtime::Handle,
    ) -> anyhow::Result<Vec<ExternalFile>> {
        Ok(vec![])
    }
    /// The config's JSON Schema.
    fn config_schema(&self) -> &serde_json::Value;
    /// Parses and checks a config, returning it in canonical form (defaults filled in).
    fn parse_config(&self, config: &serde_json::Value) -> Result<serde_json::Value, String>;
    /// The ports for a parsed config, or in general when `config` is `None`.
    fn ports(&self, config: Option<&serde_json::Value>) -> Result<Ports, String>;
    /// Runs with a parsed config.
    fn run(&self, config: &serde_json::Value, ctx: &mut OpContext) -> anyhow::Result<()>;
    /// How a node with this parsed config runs sharded ([`Operator::sharding`]).
    fn sharding(&self, _config: &serde_json::Value) -> Option<Sharding> {
        None
    }
    /// How many processes run a node with this parsed config ([`Operator::processes`]).
    fn processes(&self, _config: &serde_json::Value) -> usize {
        1
    }
    /// How many machines run a node with this parsed config ([`Operator::machines`]).
    fn machines(&self, _config: &serde_json::Value) -> usize {
        1
    }
}

struct Erased<T> {
    /// See [`DynOperator::code`].
    code: String,
    /// The config's JSON Schema, generated once.
    schema: std::sync::OnceLock<serde_json::Value>,
    _op: std::marker::PhantomData<fn() -> T>,
}

impl<T: Operator> Erased<T> {
    fn typed(config: &serde_json::Value) -> Result<T::Config, String> {
        serde_json::from_value(config.clone()).map_err(|e| e.to_string())
    }
}

impl<T: Operator> DynOperator for Erased<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }
    fn version(&self) -> &'static str {
        T::VERSION
    }
    fn description(&self) -> &'static str {
        T::DESCRIPTION
    }
    fn code(&self) -> &str {
        &self.code
    }
    fn reads_files(&self) -> bool {
        T::READS_FILES
    }
    fn worker(&self) -> WorkerKind {
        T::WORKER
    }
    fn external_files(
        &self,
        config: &serde_json::Value,
        rt: &tokio::runtime::Handle,
    ) -> anyhow::Result<Vec<ExternalFile>> {
        if !T::READS_FILES {
            return Ok(vec![]);
        }
        let c = Self::typed(config).map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
        let mut files = T::external_files(&c, rt)?;
        files.sort();
        files.dedup();
        Ok(files)
    }
    fn config_schema(&self) -> &serde_json::Value {
        self.schema.get_or_init(|| {
            serde_json::to_value(schemars::schema_for!(T::Config)).unwrap_or_default()
        })
    }
    fn parse_config(&self, config: &serde_json::Value) -> Result<serde_json::Value, String> {
        let c = Self::typed(config)?;
        T::check(&c)?;
        serde_json::to_value(&c).map_err(|e| e.to_string())
    }
    fn ports(&self, config: Option<&serde_json::Value>) -> Result<Ports, String> {
        match config {
            Some(c) => Ok(T::ports(Some(&Self::typed(c)?))),
            None => Ok(T::ports(None)),
        }
    }
    fn run(&self, config: &serde_json::Value, ctx: &mut OpContext) -> anyhow::Result<()> {
        let c = Self::typed(config)
            .map_err(|e| crate::failure::permanent(format!("invalid config: {e}")))?;
        T::run(&c, ctx)
    }
    fn sharding(&self, config: &serde_json::Value) -> Option<Sharding> {
        T::sharding(&Self::typed(config).ok()?)
    }
    fn processes(&self, config: &serde_json::Value) -> usize {
        Self::typed(config).map_or(1, |c| T::processes(&c))
    }
    fn machines(&self, config: &serde_json::Value) -> usize {
        Self::typed(config).map_or(1, |c| T::machines(&c))
    }
}

/// Gives the code fingerprint of an operator from its Rust type name
/// (`std::any::type_name`, e.g. `zest_operators::clean::dedup::Dedup`).
pub type CodeFingerprint = fn(type_name: &str) -> String;

/// Operators by name.
#[derive(Clone, Default)]
pub struct Registry {
    ops: BTreeMap<&'static str, Arc<dyn DynOperator>>,
    fingerprint: Option<CodeFingerprint>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry whose operators get their code fingerprint from `f` (see
    /// [`DynOperator::code`]). Register operators after this.
    pub fn with_code_fingerprint(f: CodeFingerprint) -> Self {
        Registry {
            ops: BTreeMap::new(),
            fingerprint: Some(f),
        }
    }

    /// Registers an operator under its name.
    pub fn register<T: Operator>(&mut self) -> &mut Self {
        let code = self
            .fingerprint
            .map(|f| f(std::any::type_name::<T>()))
            .unwrap_or_default();
        self.ops.insert(
            T::NAME,
            Arc::new(Erased::<T> {
                code,
                schema: std::sync::OnceLock::new(),
                _op: std::marker::PhantomData,
            }),
        );
        self
    }

    /// Looks an operator up by name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn DynOperator>> {
        self.ops.get(name).cloned()
    }

    /// All operator names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.ops.keys().copied()
    }

    /// All operators, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn DynOperator>> + '_ {
        self.ops.values()
    }
}
