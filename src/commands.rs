//! The commands behind each verb.

use crate::cli::{
    Cli, Command, ExecArgs, Global, GraphFormat, ModelAction, NodeAction, RunsAction, StoreAction,
};
use crate::machine;
use crate::output::{err, errln, out, outln};
use std::path::Path;

use zest_engine::compile::{compile_file, compile_source};
use zest_engine::diag::Diagnostics;
use zest_engine::executor::ExecutorConfig;
use zest_engine::operator::Registry;
use zest_engine::plan::Plan;
use zest_engine::progress::{Mode, Progress};
use zest_engine::run::{self, RunRecord, RunStatus};
use zest_engine::scheduler::cache::{Lookup, NotLooked};
use zest_engine::scheduler::{self, ExecOptions, Start};
use zest_engine::store::{ArtifactStore, S3Options};
use zest_engine::telemetry::Telemetry;
use zest_engine::units::format_duration;
use zest_engine::worker::StoreConfig;

/// Exit codes.
const OK: i32 = 0;
const NODE_FAILED: i32 = 1;
const INVALID: i32 = 2;
const INTERRUPTED: i32 = 130;

/// Runs `zest node …` (no runtime of ours around it).
pub fn node(action: &NodeAction, registry: &Registry) -> i32 {
    match action {
        NodeAction::Worker => match zest_engine::worker::serve(registry) {
            Ok(()) => OK,
            Err(e) => {
                errln!("zest node worker: {e:#}");
                NODE_FAILED
            }
        },
        NodeAction::Exec { task } => match zest_engine::worker::exec_task_arg(registry, task) {
            Ok(r) => {
                if !task.starts_with(zest_engine::worker::STORE_TASK) {
                    outln!("{}", serde_json::to_string(&r).unwrap_or_default());
                }
                if r.error.is_some() {
                    NODE_FAILED
                } else {
                    OK
                }
            }
            Err(e) => {
                errln!("zest node exec: {e:#}");
                INVALID
            }
        },
        NodeAction::Rank { task } => match zest_engine::worker::exec_rank(registry, task) {
            Ok(()) => OK,
            Err(e) => {
                errln!("{e:#}");
                NODE_FAILED
            }
        },
    }
}

fn parse_overrides(params: &[String]) -> Result<Vec<(String, String)>, String> {
    params
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(format!("--param `{p}`: write NAME=VALUE")),
        })
        .collect()
}

fn report_diags(d: &Diagnostics) {
    err!("{}", d.render());
    let n = d.items.len();
    errln!("{}: {n} error{}", d.file, if n == 1 { "" } else { "s" });
}

fn store_url(g: &Global) -> String {
    g.store
        .clone()
        .unwrap_or_else(|| g.state.display().to_string())
}

fn open_store(g: &Global, url: &str) -> anyhow::Result<(ArtifactStore, StoreConfig)> {
    let s3 = S3Options {
        endpoint: g.s3_endpoint.clone(),
    };
    std::fs::create_dir_all(&g.state)?;
    let state = g.state.canonicalize()?;
    let download_dir = state.join("downloads");
    let store = ArtifactStore::open(url, &s3, &download_dir)?;
    let cfg = StoreConfig {
        url: store.url().to_string(),
        s3,
        download_dir,
    };
    Ok((store, cfg))
}

/// Dispatches every command but `node`.
pub async fn dispatch(cli: Cli, registry: Registry) -> i32 {
    let g = cli.global.clone();
    match cli.command {
        Command::Validate { files, params } => validate(&files, &params, &registry),
        Command::Plan {
            file,
            params,
            no_cache,
            json,
        } => plan_cmd(&g, &file, &params, no_cache, json, &registry).await,
        Command::Run { file, params, exec } => run_cmd(&g, &file, &params, &exec, &registry).await,
        Command::Resume { run_id, exec } => resume_cmd(&g, &run_id, &exec, &registry).await,
        Command::Runs {
            action: None,
            json,
            limit,
        } => runs_list(&g, json, limit),
        Command::Runs {
            action: Some(RunsAction::Show { run_id, json }),
            ..
        } => runs_show(&g, &run_id, json),
        Command::Lineage { artifact, json } => lineage_cmd(&g, &artifact, json).await,
        Command::Report { run_id, out } => report_cmd(&g, &run_id, out.as_deref()).await,
        Command::Graph {
            file,
            format,
            params,
        } => graph_cmd(&file, format, &params, &registry),
        Command::Ops { name, json } => ops_cmd(name.as_deref(), json, &registry),
        Command::Schema => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&zest_engine::schema::dag_schema(&registry))
                    .unwrap_or_default()
            );
            OK
        }
        Command::Store {
            action: StoreAction::Verify { digests },
        } => verify_cmd(&g, digests).await,
        Command::Store {
            action: StoreAction::Gc,
        } => gc_cmd(&g).await,
        Command::Model {
            action: ModelAction::Info { dir, json },
        } => model_info_cmd(&dir, json),
        Command::Model {
            action: ModelAction::Generate { .. } | ModelAction::Serve { .. },
        } => crate::torch_exec::exec_zest_torch(),
        Command::Node { .. } => unreachable!("handled in main"),
    }
}

/// `zest model info DIR`.
fn model_info_cmd(dir: &std::path::Path, json: bool) -> i32 {
    let info = match zest_kernels::model_info::model_info(dir) {
        Ok(i) => i,
        Err(e) => {
            errln!("zest: {e}");
            return INVALID;
        }
    };
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&info).unwrap_or_default()
        );
        return OK;
    }
    let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "?".into());
    outln!(
        "architecture: {} ({})",
        info.architecture.as_deref().unwrap_or("?"),
        info.model_type.as_deref().unwrap_or("?")
    );
    outln!(
        "layers: {}, hidden: {}, heads: {} (key/value: {}), vocabulary: {}",
        opt(info.layers),
        opt(info.hidden_size),
        opt(info.attention_heads),
        opt(info.kv_heads),
        opt(info.vocab_size)
    );
    if let Some(r) = &info.rope_scaling {
        outln!("rope scaling: {r}");
    }
    let dtypes: Vec<String> = info.dtypes.keys().cloned().collect();
    outln!(
        "parameters: {} ({}) in {} file(s)",
        info.parameters,
        if dtypes.is_empty() {
            "none".to_string()
        } else {
            dtypes.join(", ")
        },
        info.files.len()
    );
    outln!(
        "tokenizer: {}{}",
        if info.tokenizer {
            "tokenizer.json"
        } else {
            "none"
        },
        if info.chat_template {
            ", chat template"
        } else {
            ""
        }
    );
    OK
}

fn compile_with(file: &Path, params: &[String], registry: &Registry) -> Result<Plan, i32> {
    let overrides = parse_overrides(params).map_err(|e| {
        errln!("zest: {e}");
        INVALID
    })?;
    compile_file(file, &overrides, registry).map_err(|d| {
        report_diags(&d);
        INVALID
    })
}

fn validate(files: &[std::path::PathBuf], params: &[String], registry: &Registry) -> i32 {
    let mut code = OK;
    for f in files {
        match compile_with(f, params, registry) {
            Ok(p) => outln!("{}: ok ({} nodes)", f.display(), p.graph.node_count()),
            Err(c) => code = c,
        }
    }
    code
}

fn exec_options(
    g: &Global,
    a: &ExecArgs,
    store_override: Option<&str>,
    resumed: Option<&run::RunDir>,
) -> Result<ExecOptions, String> {
    let url = store_override
        .map(str::to_string)
        .unwrap_or_else(|| store_url(g));
    let (store, store_cfg) = open_store(g, &url).map_err(|e| format!("{e:#}"))?;
    let cpus = a.cpus.unwrap_or_else(machine::cpus);
    if cpus.is_nan() || cpus <= 0.0 {
        return Err("--cpus must be positive".into());
    }
    let memory = match &a.memory {
        Some(m) => zest_engine::units::parse_bytes(m).map_err(|e| format!("--memory: {e}"))?,
        None => machine::memory(),
    };
    let gpus = match &a.gpus {
        Some(s) => machine::parse_gpus(s)?,
        None => machine::gpus(),
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the zest binary: {e}"))?;
    let mut executors = match (&a.executor_config, resumed) {
        (Some(f), _) => ExecutorConfig::from_file(f).map_err(|e| format!("{e:#}"))?,
        // A resumed run keeps its profiles, so its jobs are found where they were sent.
        (None, Some(dir)) => std::fs::read(dir.executors())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default(),
        (None, None) => ExecutorConfig::default(),
    };
    if let Some(e) = &a.executor {
        if executors.profile(e).is_none() {
            return Err(format!(
                "--executor {e}: no such executor profile (defined: {})",
                executors.names().join(", ")
            ));
        }
        executors.default = e.clone();
    }
    Ok(ExecOptions {
        cpus,
        memory,
        gpus,
        fail_fast: a.fail_fast,
        no_cache: a.no_cache,
        state_dir: g.state.canonicalize().unwrap_or_else(|_| g.state.clone()),
        store,
        store_cfg,
        exe,
        executors,
    })
}

async fn run_cmd(
    g: &Global,
    file: &Path,
    params: &[String],
    a: &ExecArgs,
    registry: &Registry,
) -> i32 {
    let plan = match compile_with(file, params, registry) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let source = std::fs::read_to_string(file).unwrap_or_default();
    let overrides = parse_overrides(params).unwrap_or_default();
    let opts = match exec_options(g, a, None, None) {
        Ok(o) => o,
        Err(e) => {
            errln!("zest: {e}");
            return INVALID;
        }
    };
    let start = Start::New {
        run_id: run::new_run_id(),
        dag_file: file.display().to_string(),
        source,
        overrides,
    };
    drive(&plan, start, &opts, a).await
}

async fn resume_cmd(g: &Global, run_id: &str, a: &ExecArgs, registry: &Registry) -> i32 {
    let rec = match run::load_run(&g.state, run_id) {
        Ok(r) => r,
        Err(e) => {
            errln!("zest: {e:#}");
            return INVALID;
        }
    };
    match rec.status {
        RunStatus::Succeeded => {
            outln!("run {run_id} already succeeded; nothing to resume");
            return OK;
        }
        RunStatus::Running => {
            errln!("zest: run {run_id} is still running (pid {})", rec.pid);
            return INVALID;
        }
        _ => {}
    }
    // What an earlier session of this run left running (a zest killed with -9 takes its
    // workers down, but a process that escaped its group would still hold on to outputs).
    let stopped =
        zest_engine::sandbox::stop_run_processes(run_id, std::time::Duration::from_secs(5));
    if stopped > 0 {
        errln!("zest: stopped {stopped} process(es) left running by an earlier session of run {run_id}");
    }
    let dir = run::RunDir::new(&g.state, run_id);
    let source = match std::fs::read_to_string(dir.dag_copy()) {
        Ok(s) => s,
        Err(e) => {
            errln!("zest: cannot read the DAG saved with run {run_id}: {e}");
            return INVALID;
        }
    };
    let overrides: Vec<(String, String)> = std::fs::read(dir.overrides())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let plan = match compile_source(&rec.dag_file, &source, &overrides, registry) {
        Ok(p) => p,
        Err(d) => {
            report_diags(&d);
            return INVALID;
        }
    };
    let store = rec.store.clone();
    let opts = match exec_options(g, a, Some(&store), Some(&dir)) {
        Ok(o) => o,
        Err(e) => {
            errln!("zest: {e}");
            return INVALID;
        }
    };
    drive(&plan, Start::Resume(Box::new(rec)), &opts, a).await
}

async fn drive(plan: &Plan, start: Start, opts: &ExecOptions, a: &ExecArgs) -> i32 {
    let missing = zest_engine::secret::missing(&zest_engine::secret::declared(&plan.params));
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|v| format!("${v}")).collect();
        errln!(
            "zest: the DAG's secret parameters read {}, which {} not set in the environment",
            names.join(", "),
            if names.len() == 1 { "is" } else { "are" }
        );
        return INVALID;
    }
    let tel = match Telemetry::from_env() {
        Ok(t) => t,
        Err(e) => {
            errln!("zest: warning: tracing disabled: {e:#}");
            None
        }
    };
    let mode = if a.quiet { Mode::Quiet } else { Mode::detect() };
    let progress = Progress::new(mode, plan.graph.node_count());
    let t0 = std::time::Instant::now();
    let result = scheduler::execute(plan, start, opts, tel.as_ref(), progress).await;
    if let Some(t) = tel {
        t.shutdown().await;
    }
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            errln!("zest: {e:#}");
            return INVALID;
        }
    };
    let rec = &outcome.record;
    let dir = run::RunDir::new(&opts.state_dir, &rec.run_id);
    for path in &a.reports {
        let body = if path.extension().is_some_and(|e| e == "xml") {
            zest_engine::report::junit(rec)
        } else {
            zest_engine::report::json(rec, &dir.path.join("logs"))
        };
        if let Err(e) = std::fs::write(path, body) {
            errln!("zest: cannot write report {}: {e}", path.display());
        }
    }
    print_summary(rec, t0.elapsed(), &dir);
    match rec.status {
        RunStatus::Succeeded => OK,
        _ if outcome.interrupted => INTERRUPTED,
        _ => NODE_FAILED,
    }
}

fn print_summary(rec: &RunRecord, took: std::time::Duration, dir: &run::RunDir) {
    let counts: Vec<String> = rec
        .counts()
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    outln!(
        "run {} {} in {}: {}",
        rec.run_id,
        rec.status.as_str(),
        format_duration(took),
        counts.join(", ")
    );
    for n in rec
        .nodes
        .iter()
        .filter(|n| n.status == zest_engine::run::NodeStatus::Failed)
    {
        outln!(
            "  failed: {} ({}): {}",
            n.node,
            n.op,
            n.error.as_deref().unwrap_or("")
        );
        let log = dir.log(&n.node);
        if log.exists() {
            outln!("          log: {}", log.display());
        }
    }
    if rec.status != RunStatus::Succeeded {
        outln!("  resume with: zest resume {}", rec.run_id);
    }
}

async fn plan_cmd(
    g: &Global,
    file: &Path,
    params: &[String],
    no_cache: bool,
    json: bool,
    registry: &Registry,
) -> i32 {
    let plan = match compile_with(file, params, registry) {
        Ok(p) => p,
        Err(c) => return c,
    };
    zest_engine::digest::use_file_id_cache(&g.state.join("file-digests.json"));
    let (store, _) = match open_store(g, &store_url(g)) {
        Ok(s) => s,
        Err(e) => {
            errln!("zest: {e:#}");
            return INVALID;
        }
    };
    let mut known: std::collections::HashMap<String, std::collections::BTreeMap<String, String>> =
        Default::default();
    let mut rows = vec![];
    for ix in &plan.order {
        let n = &plan.graph[*ix];
        let mut inputs = std::collections::BTreeMap::new();
        let mut blocked: Option<String> = None;
        for (port, refs) in &n.inputs {
            let mut ds = vec![];
            for r in refs {
                match known.get(&r.node).and_then(|o| o.get(&r.port)) {
                    Some(d) => ds.push(d.clone()),
                    None => blocked = blocked.or(Some(r.node.clone())),
                }
            }
            inputs.insert(port.clone(), ds);
        }
        if blocked.is_none() {
            blocked = n.after.iter().find(|a| !known.contains_key(*a)).cloned();
        }
        let (action, why, key) = if let Some(up) = blocked {
            ("run", format!("upstream `{up}` will run"), None)
        } else {
            // The scheduler's own resolution, so the plan says what the run will do.
            let res = scheduler::cache::resolve(n, &inputs, &store, no_cache, |_| false).await;
            match res.lookup {
                Lookup::Hit(e) => {
                    known.insert(
                        n.id.clone(),
                        e.outputs
                            .iter()
                            .map(|(p, o)| (p.clone(), o.digest.clone()))
                            .collect(),
                    );
                    (
                        "cached",
                        format!(
                            "outputs from run {} ({})",
                            e.provenance.run_id, e.provenance.node
                        ),
                        Some(res.key),
                    )
                }
                Lookup::Miss => (
                    "run",
                    "no cached outputs for this cache key".to_string(),
                    Some(res.key),
                ),
                Lookup::NotLooked(NotLooked::UnreadableFiles(e)) => {
                    ("run", format!("cannot read its files: {e}"), None)
                }
                Lookup::NotLooked(NotLooked::NoCache) => {
                    ("run", "--no-cache".to_string(), Some(res.key))
                }
                Lookup::NotLooked(_) => ("run", "cache: false".to_string(), Some(res.key)),
                Lookup::Failed(e) => {
                    errln!("zest: {e:#}");
                    return INVALID;
                }
            }
        };
        rows.push((n.id.clone(), n.op.name().to_string(), action, why, key));
    }
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(id, op, act, why, key)| serde_json::json!({"node": id, "op": op, "action": act, "reason": why, "cache_key": key}))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(4).max(4);
        let wo = rows.iter().map(|r| r.1.len()).max().unwrap_or(2).max(2);
        outln!("{:w$}  {:wo$}  {:6}  WHY", "NODE", "OP", "ACTION");
        for (id, op, act, why, _) in &rows {
            outln!("{id:w$}  {op:wo$}  {act:6}  {why}");
        }
        let cached = rows.iter().filter(|r| r.2 == "cached").count();
        outln!("{} to run, {cached} cached", rows.len() - cached);
    }
    OK
}

fn runs_list(g: &Global, json: bool, limit: usize) -> i32 {
    let ids = match run::list_runs(&g.state) {
        Ok(i) => i,
        Err(e) => {
            errln!("zest: {e:#}");
            return INVALID;
        }
    };
    let recs: Vec<RunRecord> = ids
        .iter()
        .take(limit)
        .filter_map(|id| run::load_run(&g.state, id).ok())
        .collect();
    if json {
        let v: Vec<serde_json::Value> = recs
            .iter()
            .map(|r| serde_json::json!({"run_id": r.run_id, "dag": r.dag, "status": r.status, "started_at": r.started_at, "ended_at": r.ended_at, "counts": r.counts(), "trace_id": r.trace_id}))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return OK;
    }
    outln!(
        "{:24}  {:20}  {:11}  {:24}  NODES",
        "RUN",
        "DAG",
        "STATUS",
        "STARTED"
    );
    for r in &recs {
        let counts: Vec<String> = r.counts().iter().map(|(k, v)| format!("{v} {k}")).collect();
        outln!(
            "{:24}  {:20}  {:11}  {:24}  {}",
            r.run_id,
            r.dag,
            r.status.as_str(),
            r.started_at,
            counts.join(", ")
        );
    }
    OK
}

fn runs_show(g: &Global, run_id: &str, json: bool) -> i32 {
    let rec = match run::load_run(&g.state, run_id) {
        Ok(r) => r,
        Err(e) => {
            errln!("zest: {e:#}");
            return INVALID;
        }
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&rec).unwrap_or_default());
        return OK;
    }
    outln!(
        "run      {}\ndag      {} ({})\nstatus   {}\nstarted  {}\nended    {}\nstore    {}",
        rec.run_id,
        rec.dag,
        rec.dag_file,
        rec.status.as_str(),
        rec.started_at,
        rec.ended_at.as_deref().unwrap_or("-"),
        rec.store
    );
    if let Some(t) = &rec.trace_id {
        outln!("trace    {t}");
    }
    if !rec.params.is_empty() {
        outln!("params   {}", serde_json::Value::Object(rec.params.clone()));
    }
    outln!();
    let dir = run::RunDir::new(&g.state, run_id);
    for n in &rec.nodes {
        let dur = n
            .duration_s
            .map(|d| format_duration(std::time::Duration::from_secs_f64(d.max(0.0))))
            .unwrap_or_default();
        outln!(
            "{:10} {} ({})  attempts {}  {}",
            n.status.as_str(),
            n.node,
            n.op,
            n.attempts.len(),
            dur
        );
        for (p, o) in &n.outputs {
            outln!("             {p}: {} {}", o.digest, o.uri);
        }
        if let Some(e) = &n.error {
            for l in e.lines() {
                outln!("             ! {l}");
            }
            if n.status == zest_engine::run::NodeStatus::Failed {
                let log = dir.log(&n.node);
                if log.exists() {
                    outln!("             log: {}", log.display());
                }
            }
        }
    }
    OK
}

async fn report_cmd(g: &Global, run_id: &str, out: Option<&Path>) -> i32 {
    let rec = match run::load_run(&g.state, run_id) {
        Ok(r) => r,
        Err(e) => {
            errln!("zest: {e:#}");
            return INVALID;
        }
    };
    let url = g.store.clone().unwrap_or_else(|| rec.store.clone());
    let (store, _) = match open_store(g, &url) {
        Ok(s) => s,
        Err(e) => {
            errln!("zest: {e:#}");
            return INVALID;
        }
    };
    let html = match zest_engine::html_report::render(&rec, &store).await {
        Ok(h) => h,
        Err(e) => {
            errln!("zest: cannot write the report of run {run_id}: {e:#}");
            return NODE_FAILED;
        }
    };
    let path = match out {
        Some(p) if p == Path::new("-") => {
            out!("{html}");
            return OK;
        }
        Some(p) => p.to_path_buf(),
        None => run::RunDir::new(&g.state, run_id).path.join("report.html"),
    };
    if let Err(e) = std::fs::write(&path, html) {
        errln!("zest: cannot write {}: {e}", path.display());
        return INVALID;
    }
    outln!("{}", path.display());
    OK
}

async fn lineage_cmd(g: &Global, artifact: &str, json: bool) -> i32 {
    let digest = match zest_engine::lineage::resolve(artifact, &g.state) {
        Ok(d) => d,
        Err(e) => {
            errln!("zest: {e:#}");
            return INVALID;
        }
    };
    let url = match artifact.split_once(':') {
        Some((run_id, _)) if g.store.is_none() => run::load_run(&g.state, run_id)
            .map(|r| r.store)
            .unwrap_or_else(|_| store_url(g)),
        _ => store_url(g),
    };
    let (store, _) = match open_store(g, &url) {
        Ok(s) => s,
        Err(e) => {
            errln!("zest: {e:#}");
            return INVALID;
        }
    };
    match zest_engine::lineage::trace(&store, &digest).await {
        Ok(tree) if json => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&tree).unwrap_or_default()
            );
            OK
        }
        Ok(tree) => {
            out!("{}", zest_engine::lineage::render(&tree));
            OK
        }
        Err(e) => {
            errln!("zest: {e:#}");
            NODE_FAILED
        }
    }
}

fn graph_cmd(file: &Path, format: GraphFormat, params: &[String], registry: &Registry) -> i32 {
    match compile_with(file, params, registry) {
        Ok(p) => {
            out!(
                "{}",
                if format == GraphFormat::Dot {
                    zest_engine::graph::dot(&p)
                } else {
                    zest_engine::graph::mermaid(&p)
                }
            );
            OK
        }
        Err(c) => c,
    }
}

fn ops_cmd(name: Option<&str>, json: bool, registry: &Registry) -> i32 {
    let Some(name) = name else {
        if json {
            let v: Vec<serde_json::Value> = registry.iter().map(|o| serde_json::json!({"name": o.name(), "version": o.version(), "description": o.description()})).collect();
            outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        } else {
            let w = registry.names().map(str::len).max().unwrap_or(4);
            for o in registry.iter() {
                outln!("{:w$}  v{}  {}", o.name(), o.version(), o.description());
            }
        }
        return OK;
    };
    let Some(op) = registry.get(name) else {
        let help = zest_engine::diag::did_you_mean(name, registry.names())
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        errln!("zest: unknown operator `{name}`{help}");
        return INVALID;
    };
    let schema = op.config_schema();
    let ports = op.ports(None).ok();
    // Whether `shards:` applies, and its stages, as the default config has them.
    let stages: Option<Vec<&str>> = op
        .parse_config(&serde_json::json!({}))
        .ok()
        .and_then(|c| op.sharding(&c))
        .map(|s| s.stages);
    if json {
        outln!("{}", serde_json::to_string_pretty(&serde_json::json!({"name": op.name(), "version": op.version(), "description": op.description(), "worker": op.worker().binary(), "shard_stages": stages, "ports": ports, "config_schema": schema})).unwrap_or_default());
        return OK;
    }
    outln!("{} v{}\n  {}\n", op.name(), op.version(), op.description());
    if let Some(stages) = &stages {
        outln!(
            "shards: yes (stages: {}, N instances each, then one merge)\n",
            stages.join(" → ")
        );
    }
    if op.worker() != zest_engine::operator::WorkerKind::Zest {
        outln!(
            "runs in: {} workers (installed beside zest)\n",
            op.worker().binary()
        );
    }
    if let Some(p) = ports {
        outln!("inputs:");
        for i in &p.inputs {
            outln!(
                "  {} ({}{}){}  {}",
                i.name,
                i.ty,
                if i.many { ", many" } else { "" },
                if i.required { "" } else { " optional" },
                i.help
            );
        }
        if let Some(t) = p.other_inputs {
            outln!("  <any name> ({t}, many)");
        }
        if p.inputs.is_empty() && p.other_inputs.is_none() {
            outln!("  none");
        }
        outln!("outputs:");
        for o in &p.outputs {
            outln!("  {} ({})  {}", o.name, o.ty, o.help);
        }
    } else {
        outln!("ports depend on the config");
    }
    outln!(
        "\nconfig (`with:`), JSON Schema:\n{}",
        serde_json::to_string_pretty(&schema).unwrap_or_default()
    );
    OK
}

/// Opens the store for a command that only inspects or cleans it: it must exist.
fn open_existing_store(g: &Global) -> anyhow::Result<ArtifactStore> {
    let s3 = S3Options {
        endpoint: g.s3_endpoint.clone(),
    };
    let download_dir = g.state.join("downloads");
    ArtifactStore::open_existing(&store_url(g), &s3, &download_dir)
}

/// Leftovers younger than this may belong to a commit in progress.
const GC_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(600);

async fn gc_cmd(g: &Global) -> i32 {
    let store = match open_existing_store(g) {
        Ok(s) => s,
        Err(e) => {
            errln!("zest: {e:#}");
            return INVALID;
        }
    };
    let mut removed = match store.gc(GC_MIN_AGE) {
        Ok(r) => r
            .into_iter()
            .map(|l| (l.path, l.bytes, l.what))
            .collect::<Vec<_>>(),
        Err(e) => {
            errln!("zest: {e:#}");
            return NODE_FAILED;
        }
    };
    // Scratch space of runs that are not running (a zest killed mid-run leaves it).
    let scratch = g.state.join("scratch");
    for e in std::fs::read_dir(&scratch).into_iter().flatten().flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        let running = run::load_run(&g.state, &id).is_ok_and(|r| r.status == RunStatus::Running);
        if !running {
            let bytes = zest_engine::store::tree_bytes(&e.path());
            if zest_engine::store::remove_tree(&e.path()).is_ok() {
                removed.push((e.path(), bytes, "scratch space of a finished run"));
            }
        }
    }
    for (p, b, what) in &removed {
        outln!(
            "removed {} ({}): {what}",
            p.display(),
            zest_engine::units::format_bytes(*b)
        );
    }
    let total: u64 = removed.iter().map(|r| r.1).sum();
    outln!(
        "{} leftover(s) removed, {} freed",
        removed.len(),
        zest_engine::units::format_bytes(total)
    );
    OK
}

async fn verify_cmd(g: &Global, digests: Vec<String>) -> i32 {
    let store = match open_existing_store(g) {
        Ok(s) => s,
        Err(e) => {
            errln!("zest: {e:#}");
            return INVALID;
        }
    };
    let check_all = digests.is_empty();
    let digests = if digests.is_empty() {
        match store.list_artifacts().await {
            Ok(d) => d,
            Err(e) => {
                errln!("zest: {e:#}");
                return NODE_FAILED;
            }
        }
    } else {
        digests
    };
    let mut bad = 0;
    for d in &digests {
        if let Err(e) = store.verify(d).await {
            outln!("BAD  {d}: {e:#}");
            bad += 1;
        }
    }
    outln!("{} artifact(s) checked, {bad} bad", digests.len());
    if check_all {
        match store.leftovers(GC_MIN_AGE) {
            Ok(l) if !l.is_empty() => {
                for x in &l {
                    outln!("LEFT {}: {}", x.path.display(), x.what);
                }
                outln!(
                    "{} leftover(s) of interrupted commits or downloads: `zest store gc` removes them",
                    l.len()
                );
                bad += l.len();
            }
            Ok(_) => {}
            Err(e) => {
                errln!("zest: {e:#}");
                bad += 1;
            }
        }
    }
    if bad > 0 {
        NODE_FAILED
    } else {
        OK
    }
}
