//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// zest: a workflow engine for LLM data and training pipelines.
#[derive(Parser, Debug)]
#[command(name = "zest", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Where runs, logs and scratch space live.
    #[arg(long, global = true, env = "ZEST_STATE_DIR", default_value = ".zest")]
    pub state: PathBuf,
    /// The artifact store: a local directory or s3://bucket/prefix [default: the state directory]
    #[arg(long, global = true, env = "ZEST_STORE")]
    pub store: Option<String>,
    /// A custom S3 endpoint for S3-compatible servers (also AWS_ENDPOINT_URL).
    #[arg(long, global = true, env = "ZEST_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check DAG files without running them (exit 0 when valid, 2 otherwise).
    Validate {
        /// DAG files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override a parameter: NAME=VALUE.
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
    /// Show what a run would do: per node, whether it would run or is cached, and why.
    Plan {
        /// The DAG file.
        file: PathBuf,
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Ignore cached outputs.
        #[arg(long)]
        no_cache: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run a DAG.
    Run {
        /// The DAG file.
        file: PathBuf,
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
        #[command(flatten)]
        exec: ExecArgs,
    },
    /// Finish a failed, cancelled or killed run without re-running its finished nodes.
    Resume {
        /// The run id (see `zest runs`).
        run_id: String,
        #[command(flatten)]
        exec: ExecArgs,
    },
    /// List runs, newest first; `zest runs show RUN_ID` details one.
    Runs {
        #[command(subcommand)]
        action: Option<RunsAction>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Show at most this many runs.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Write a run's report as one self-contained HTML page: the DAG, timings, and every
    /// node's report (metrics, plots, eval tables).
    Report {
        /// The run id (see `zest runs`).
        run_id: String,
        /// Where to write it (default: `RUN_DIR/report.html`; `-` for standard output).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Print the upstream tree of an artifact: a digest, or RUN_ID:node.port.
    Lineage {
        /// A digest or RUN_ID:node.port.
        artifact: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print the DAG as a Mermaid or DOT graph.
    Graph {
        /// The DAG file.
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
    /// List operators, or show one's ports and config schema.
    Ops {
        /// An operator name.
        name: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of DAG files (for yaml-language-server and other editors).
    Schema,
    /// Inspect the artifact store.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// Model directories (Hugging Face layout).
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// Node execution, used by executors.
    #[command(hide = true)]
    Node {
        #[command(subcommand)]
        action: NodeAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunsAction {
    /// Details of one run.
    Show {
        /// The run id.
        run_id: String,
        /// Machine-readable output (the full run record).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum StoreAction {
    /// Re-hash every committed artifact (or the given ones) and compare with its manifest.
    Verify {
        /// Digests to check (default: all, and leftovers of interrupted commits).
        digests: Vec<String>,
    },
    /// Remove what interrupted commits and downloads left behind (older than 10 minutes,
    /// of processes that are gone) and the scratch space of runs that are not running.
    Gc,
}

#[derive(Subcommand, Debug)]
pub enum ModelAction {
    /// Architecture, parameter count, dtypes and tokenizer of a model directory.
    Info {
        /// The directory (config.json, *.safetensors, tokenizer files).
        dir: std::path::PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Generate text from a prompt (greedy unless --temperature > 0); run by zest-torch, see
    /// `zest model generate --help`.
    #[command(disable_help_flag = true)]
    Generate {
        /// --model DIR --prompt TEXT [--chat] [--max-new-tokens N] [--temperature T] [--top-p P]
        /// [--seed S] [--json] ...
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions,
    /// /v1/completions, /v1/models) on 127.0.0.1; run by zest-torch, see
    /// `zest model serve --help`.
    #[command(disable_help_flag = true)]
    Serve {
        /// --model DIR [--port 8000] [--host 127.0.0.1] [--max-batch 32] ...
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Subcommand, Debug)]
pub enum NodeAction {
    /// Serve tasks on stdin/stdout (started by the local executor).
    Worker,
    /// Execute one task and print the result (written to the store instead for `store:KEY`).
    Exec {
        /// The task: a JSON file, `-` for stdin, or `store:KEY` (in the store ZEST_STORE names,
        /// run in ZEST_WORK_DIR; how cluster executors start nodes).
        #[arg(long)]
        task: String,
    },
    /// Run one follower rank of a data-parallel node (started by its rank 0, with torchrun's
    /// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT).
    Rank {
        /// The task file rank 0 wrote.
        #[arg(long)]
        task: std::path::PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

/// Options for running.
#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// CPU cores for nodes [default: this machine's]
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Memory for nodes, e.g. 16GiB [default: this machine's]
    #[arg(long)]
    pub memory: Option<String>,
    /// GPUs for nodes: a count, or a comma-separated list of device indices [default: detected]
    #[arg(long)]
    pub gpus: Option<String>,
    /// The executor profile of nodes that name none: `local`, `ray` (RAY_ADDRESS), or one of
    /// --executor-config [default: the config's `default`, else local]
    #[arg(long, env = "ZEST_EXECUTOR")]
    pub executor: Option<String>,
    /// A YAML file of executor profiles (`default:` and `profiles:`; see the README). A resumed
    /// run keeps the profiles it started with unless this is given.
    #[arg(long, env = "ZEST_EXECUTOR_CONFIG", value_name = "FILE")]
    pub executor_config: Option<PathBuf>,
    /// Stop everything at the first failed node.
    #[arg(long)]
    pub fail_fast: bool,
    /// Run every node, ignoring cached outputs.
    #[arg(long)]
    pub no_cache: bool,
    /// Write a report: run.json (JSON) or *.xml (JUnit). May be repeated.
    #[arg(long = "report", value_name = "PATH")]
    pub reports: Vec<PathBuf>,
    /// Only print the summary.
    #[arg(long, short)]
    pub quiet: bool,
}
