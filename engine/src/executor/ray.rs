//! The `ray` executor: one Ray job per node attempt, through Ray's Jobs REST API.
//!
//! A job's entrypoint is `zest node exec --task store:KEY` (or `zest-torch …` for libtorch
//! operators) on whichever node Ray places it: the task goes to the artifact store first, the
//! node reads and writes artifacts through the store, and writes its result beside the task;
//! the scheduler alone writes the run's journal. The node's resources become the job's
//! `entrypoint_num_cpus`, `entrypoint_num_gpus` and `entrypoint_memory` (Ray sets
//! `CUDA_VISIBLE_DEVICES` for the GPUs it gives), plus the profile's custom `resources`.
//!
//! The submission id is `zest-<run>-<node>-<attempt>`: a resumed run numbers attempts on
//! from its record, so the attempt that was running when zest died is submitted under the
//! same id, and Ray's answer (HTTP 500, "already exists") means the job is attached to
//! instead of run twice. Jobs are polled until they end, their log is copied into the node's
//! log, and finished jobs are deleted (a few seconds later: see [`Api::delete_finished`]). At most `max_in_flight` jobs are submitted at once:
//! Ray fails a job that waits for resources longer than `RAY_JOB_START_TIMEOUT_SECONDS`
//! (900 s by default), so zest queues them itself.

use super::remote::{
    node_env, parse_poll, Backend, JobState, RemoteExecutor, Submitted, STORE_ENV, STORE_SECRETS,
};
use super::{Executor, Job, ReportFn};
use crate::pool::signal_name;
use crate::store::ArtifactStore;
use crate::worker::{Task, STORE_TASK};
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

/// A `kind: ray` executor profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RayConfig {
    /// The Ray dashboard's HTTP address, e.g. `http://127.0.0.1:8265` [default: `RAY_ADDRESS`].
    pub address: Option<String>,
    /// The most jobs submitted at once [default: 16].
    pub max_in_flight: Option<usize>,
    /// How often a job's status is asked for [default: 1s].
    pub poll: Option<String>,
    /// The `zest` binary on the cluster's nodes (`zest-torch` is looked for beside it)
    /// [default: this zest's path].
    pub zest: Option<String>,
    /// A directory on the cluster's nodes for scratch space and downloads
    /// [default: `/tmp/zest-work`].
    pub work_dir: Option<String>,
    /// The directory relative paths in nodes' configs resolve against on the cluster's
    /// nodes, e.g. a checkout on a shared filesystem [default: `work_dir`].
    pub cwd: Option<String>,
    /// Environment variables passed from zest's environment to every job, by name: their
    /// values are read when a job is submitted and stored nowhere. The `AWS_*` variables of
    /// the store and the DAG's secrets are always passed.
    pub env: Vec<String>,
    /// Custom Ray resources every job asks for (e.g. `{"accelerator_type:A100": 0.001}`).
    pub resources: BTreeMap<String, f64>,
}

/// A [`RayConfig`] with its defaults filled in and checked.
#[derive(Debug, Clone)]
struct Settings {
    address: String,
    max_in_flight: usize,
    poll: Duration,
    zest: PathBuf,
    work_dir: String,
    cwd: Option<String>,
    env: Vec<String>,
    resources: BTreeMap<String, f64>,
}

impl RayConfig {
    fn settings(&self, local_zest: &Path) -> Result<Settings> {
        let address = match &self.address {
            Some(a) => a.clone(),
            None => std::env::var("RAY_ADDRESS").map_err(|_| {
                anyhow!("the ray executor needs the Ray dashboard's address: set `address:` in its profile or RAY_ADDRESS (e.g. http://127.0.0.1:8265)")
            })?,
        };
        let address = address.trim_end_matches('/').to_string();
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            bail!("the Ray address `{address}` must be the dashboard's http(s):// URL (the Jobs API), not a GCS address");
        }
        let poll = parse_poll("ray executor", self.poll.as_deref(), Duration::from_secs(1))?;
        let max_in_flight = self.max_in_flight.unwrap_or(16);
        if max_in_flight == 0 {
            bail!("ray executor `max_in_flight` must be at least 1");
        }
        Ok(Settings {
            address,
            max_in_flight,
            poll,
            zest: self
                .zest
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| local_zest.to_path_buf()),
            work_dir: self
                .work_dir
                .clone()
                .unwrap_or_else(|| "/tmp/zest-work".to_string()),
            cwd: self.cwd.clone(),
            env: self.env.clone(),
            resources: self.resources.clone(),
        })
    }
}

/// What the Jobs API says of a job (`GET /api/jobs/{id}`).
#[derive(Debug, Clone, Deserialize)]
struct JobInfo {
    status: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    driver_exit_code: Option<i64>,
}

impl JobInfo {
    fn terminal(&self) -> bool {
        matches!(self.status.as_str(), "SUCCEEDED" | "FAILED" | "STOPPED")
    }

    /// How a job that left no result ended, in words.
    fn describe(&self, id: &str) -> String {
        let mut s = format!("Ray job {id} {}", self.status.to_lowercase());
        match self.driver_exit_code {
            Some(c) if c < 0 => s.push_str(&format!(
                " (its command was killed by {})",
                signal_name(-c as i32)
            )),
            Some(c) if c > 128 => s.push_str(&format!(
                " (the node's process was killed by {})",
                signal_name(c as i32 - 128)
            )),
            Some(c) => s.push_str(&format!(" (exit code {c})")),
            None => {}
        }
        if let Some(t) = &self.error_type {
            s.push_str(&format!(" [{t}]"));
        }
        if let Some(m) = self
            .message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            s.push_str(": ");
            s.push_str(&crate::operator::last_lines(m, 12));
        }
        s
    }
}

/// A Jobs API client.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot build the HTTP client for Ray")?;
        Ok(Api {
            http,
            base: base.to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/jobs/{path}", self.base)
    }

    async fn text(resp: reqwest::Response) -> (reqwest::StatusCode, String) {
        let status = resp.status();
        (status, resp.text().await.unwrap_or_default())
    }

    async fn submit(&self, body: &serde_json::Value) -> Result<Submitted> {
        let resp = self
            .http
            .post(self.url(""))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach Ray's Jobs API at {}: {e}", self.base))?;
        let (status, text) = Self::text(resp).await;
        if status.is_success() {
            return Ok(Submitted::New);
        }
        // Ray answers a duplicate submission id with a 500 and a traceback.
        if status.as_u16() == 500 && text.contains("already exists") {
            return Ok(Submitted::Exists);
        }
        bail!(
            "Ray refused the job (HTTP {status}): {}",
            crate::operator::last_lines(text.trim(), 5)
        )
    }

    async fn info(&self, id: &str) -> Result<JobInfo> {
        let resp = self
            .http
            .get(self.url(id))
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach Ray's Jobs API at {}: {e}", self.base))?;
        let (status, text) = Self::text(resp).await;
        if !status.is_success() {
            bail!("Ray's status of job {id}: HTTP {status}: {}", text.trim());
        }
        serde_json::from_str(&text)
            .with_context(|| format!("Ray's status of job {id}: malformed answer"))
    }

    async fn logs(&self, id: &str) -> Result<String> {
        #[derive(Deserialize)]
        struct Logs {
            logs: String,
        }
        let resp = self
            .http
            .get(self.url(&format!("{id}/logs")))
            .send()
            .await?;
        let (status, text) = Self::text(resp).await;
        if !status.is_success() {
            bail!("HTTP {status}: {}", text.trim());
        }
        Ok(serde_json::from_str::<Logs>(&text)?.logs)
    }

    async fn stop(&self, id: &str) -> Result<()> {
        let resp = self
            .http
            .post(self.url(&format!("{id}/stop")))
            .send()
            .await?;
        let (status, text) = Self::text(resp).await;
        if !status.is_success() {
            bail!("HTTP {status}: {}", text.trim());
        }
        Ok(())
    }

    /// Deletes a job that has ended. Ray's job manager writes a job's record once more when
    /// its supervisor actor exits, a moment after the job ends: a record deleted before that
    /// comes back as FAILED (`JOB_SUPERVISOR_ACTOR_DIED`). So the delete waits a little, and
    /// is repeated if the record came back.
    async fn delete_finished(&self, id: &str) {
        for _ in 0..3 {
            tokio::time::sleep(SUPERVISOR_EXIT).await;
            if self.delete(id).await.is_err() {
                return;
            }
            tokio::time::sleep(SUPERVISOR_EXIT).await;
            if self.info(id).await.is_err() {
                return;
            }
        }
    }

    /// Deletes the ended jobs of run `run` (found by their metadata).
    async fn sweep(&self, run: &str) {
        #[derive(Deserialize)]
        struct Listed {
            submission_id: Option<String>,
            status: String,
            #[serde(default)]
            metadata: BTreeMap<String, String>,
        }
        let Ok(resp) = self.http.get(self.url("")).send().await else {
            return;
        };
        let Ok(jobs) = resp.json_text::<Vec<Listed>>().await else {
            return;
        };
        let ended = jobs.into_iter().filter(|j| {
            j.metadata.get("zest_run_id").map(String::as_str) == Some(run)
                && matches!(j.status.as_str(), "SUCCEEDED" | "FAILED" | "STOPPED")
        });
        let deletes = ended
            .filter_map(|j| j.submission_id)
            .map(|id| async move { self.delete_finished(&id).await });
        futures::future::join_all(deletes).await;
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let resp = self.http.delete(self.url(id)).send().await?;
        let (status, text) = Self::text(resp).await;
        if !status.is_success() {
            bail!("HTTP {status}: {}", text.trim());
        }
        Ok(())
    }
}

/// Reading a JSON answer without reqwest's `json` feature.
trait JsonText {
    async fn json_text<T: serde::de::DeserializeOwned>(self) -> Result<T>;
}

impl JsonText for reqwest::Response {
    async fn json_text<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        let text = self.text().await?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// How long a job's supervisor actor may outlive the job (measured: under 3 s).
const SUPERVISOR_EXIT: Duration = Duration::from_secs(3);

/// The Ray job id of a task's attempt.
pub fn submission_id(run_id: &str, node: &str, attempt: u32) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("zest-{}-{}-{attempt}", clean(run_id), clean(node))
}

/// `s` quoted for `/bin/sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The Ray side of a node attempt's job.
struct RayBackend {
    settings: Settings,
    api: Api,
    /// The store's URL and endpoint (`ZEST_STORE`, `ZEST_S3_ENDPOINT`), for the nodes.
    store: ArtifactStore,
    endpoint: Option<String>,
    /// The machines of each attempt submitted (a data-parallel node on several runs as one
    /// job a machine: [`machine_job`]).
    machines: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// The Ray job of machine `m` of an attempt whose first machine's job is `sid`.
pub fn machine_job(sid: &str, m: usize) -> String {
    if m == 0 {
        sid.to_string()
    } else {
        format!("{sid}-m{m}")
    }
}

/// The log of machine `m` of `n` (Ray job `mid`) as it follows machine 0's in the node's log.
fn machine_log(m: usize, n: usize, mid: &str, log: Result<String>) -> String {
    let mut s = format!("[zest: machine {m} of {n}, Ray job {mid}]\n");
    match log {
        Ok(l) => {
            s.push_str(&l);
            if !l.is_empty() && !l.ends_with('\n') {
                s.push('\n');
            }
        }
        Err(e) => s.push_str(&format!("[zest: cannot fetch its log: {e:#}]\n")),
    }
    s
}

/// An executor running node attempts as Ray jobs for `config`, its nodes reaching `store`
/// (at `endpoint`, for S3-compatible servers); `local_zest` is the default for the binary on
/// the cluster (a cluster on this machine). Reports through `report`; setting `cancel` stops
/// every job.
///
/// For a resumed run (`resumed_run`), the jobs of its earlier sessions that have ended but
/// were not deleted yet (zest was killed in between) are deleted.
pub fn executor(
    config: &RayConfig,
    store: ArtifactStore,
    endpoint: Option<String>,
    local_zest: &Path,
    report: ReportFn,
    cancel: watch::Receiver<bool>,
    resumed_run: Option<&str>,
) -> Result<Box<dyn Executor>> {
    let settings = config.settings(local_zest)?;
    let api = Api::new(&settings.address)?;
    let mut drivers = vec![];
    if let Some(run) = resumed_run {
        let (api, run) = (api.clone(), run.to_string());
        drivers.push(tokio::spawn(async move { api.sweep(&run).await }));
    }
    let max_in_flight = settings.max_in_flight;
    let backend = RayBackend {
        settings,
        api,
        store: store.clone(),
        endpoint,
        machines: Default::default(),
    };
    Ok(Box::new(RemoteExecutor::new(
        backend,
        store,
        max_in_flight,
        report,
        cancel,
        drivers,
    )))
}

impl RayBackend {
    /// How many machines the attempt with job `id` runs on.
    fn machines_of(&self, id: &str) -> usize {
        self.machines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied()
            .unwrap_or(1)
    }

    fn body(
        &self,
        job: &Job,
        sid: &str,
        task_key: &str,
        machine: Option<usize>,
    ) -> serde_json::Value {
        let s = &self.settings;
        let task = &job.task;
        let exe = job.worker.exe_beside(&s.zest);
        // The machine in the command as well as in the environment: Ray's log of the job then
        // says which machine it is in its first lines.
        let machine_var = machine.map(|m| format!("{}={m}", crate::ranks::MACHINE_ENV));
        let entrypoint = format!(
            "mkdir -p {wd} && cd {cwd} && exec {env}{exe} node exec --task {task}",
            env = machine_var
                .as_ref()
                .map_or(String::new(), |v| format!("env {v} ")),
            wd = sh_quote(&s.work_dir),
            cwd = sh_quote(s.cwd.as_deref().unwrap_or(&s.work_dir)),
            exe = sh_quote(&exe.to_string_lossy()),
            task = sh_quote(&format!("{STORE_TASK}{task_key}")),
        );
        let mut env = serde_json::Map::new();
        let names = STORE_ENV
            .iter()
            .map(|n| n.to_string())
            .chain(s.env.iter().cloned())
            .chain(task.secrets.iter().cloned());
        for name in names {
            if let Ok(v) = std::env::var(&name) {
                env.insert(name, v.into());
            }
        }
        for (k, v) in node_env(&self.store, self.endpoint.as_deref(), &s.work_dir, sid) {
            env.insert(k, v.into());
        }
        if let Some(m) = machine {
            env.insert(crate::ranks::MACHINE_ENV.into(), m.to_string().into());
        }
        // A job without GPUs sees none (Ray leaves CUDA_VISIBLE_DEVICES unset otherwise).
        env.insert("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO".into(), "1".into());
        let mut body = serde_json::json!({
            "entrypoint": entrypoint,
            "submission_id": sid,
            "runtime_env": {"env_vars": env},
            "metadata": {
                "zest_run_id": task.run_id,
                "zest_node": task.node,
                "zest_attempt": task.attempt.to_string(),
            },
            // Ray places a job without resources on the head node.
            "entrypoint_num_cpus": job.cpu,
        });
        if job.gpu > 0 {
            body["entrypoint_num_gpus"] = job.gpu.into();
        }
        if job.memory > 0 {
            body["entrypoint_memory"] = job.memory.into();
        }
        if !s.resources.is_empty() {
            body["entrypoint_resources"] = serde_json::to_value(&s.resources).unwrap_or_default();
        }
        body
    }
}

impl Backend for RayBackend {
    const WHAT: &'static str = "Ray job";

    fn job_id(&self, task: &Task) -> String {
        submission_id(&task.run_id, &task.node, task.attempt)
    }

    fn poll(&self) -> Duration {
        self.settings.poll
    }

    /// Submits the attempt's job, or one job a machine for a node on several machines, each
    /// told which it is ([`crate::ranks::MACHINE_ENV`]); should one fail to start, those
    /// started are stopped.
    async fn submit(&self, job: &Job, id: &str, task_key: &str) -> Result<Submitted> {
        let n = job.task.machines.max(1);
        self.machines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), n);
        let mut first = Submitted::New;
        for m in 0..n {
            let mid = machine_job(id, m);
            let body = self.body(job, &mid, task_key, (n > 1).then_some(m));
            match self.api.submit(&body).await {
                Ok(s) if m == 0 => first = s,
                Ok(_) => {}
                Err(e) => {
                    for started in 0..m {
                        let _ = self.api.stop(&machine_job(id, started)).await;
                    }
                    return Err(if n > 1 {
                        e.context(format!("machine {m} of {n}"))
                    } else {
                        e
                    });
                }
            }
        }
        Ok(first)
    }

    /// How the attempt's job is; for a node on several machines, how machine 0's is, or
    /// how another's failed (then the rest are stopped, so that none waits for it).
    async fn state(&self, id: &str) -> Result<JobState> {
        tokio::time::sleep(self.settings.poll).await;
        let info = self.api.info(id).await?;
        let n = self.machines_of(id);
        let mut state = JobState {
            ended: info.terminal(),
            running: info.status == "RUNNING",
            how: info.describe(id),
        };
        if n > 1 && !state.ended {
            for m in 1..n {
                let mid = machine_job(id, m);
                let Ok(other) = self.api.info(&mid).await else {
                    continue;
                };
                if other.terminal() && other.status != "SUCCEEDED" {
                    state = JobState {
                        ended: true,
                        running: false,
                        how: format!("{} (machine {m} of {n})", other.describe(&mid)),
                    };
                    self.stop(id).await;
                    break;
                }
            }
        }
        Ok(state)
    }

    /// Machine 0's log: it prints the node's progress and its result. For a node on several
    /// machines, once machine 0's job has ended, every other machine's log follows it, each
    /// under a line that names the machine and its job.
    async fn logs(&self, id: &str) -> Result<String> {
        let mut text = self.api.logs(id).await?;
        let n = self.machines_of(id);
        if n > 1 && self.api.info(id).await.is_ok_and(|i| i.terminal()) {
            for m in 1..n {
                let mid = machine_job(id, m);
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&machine_log(m, n, &mid, self.api.logs(&mid).await));
            }
        }
        Ok(text)
    }

    /// Stops the attempt's jobs and waits (bounded) until Ray says they ended.
    async fn stop(&self, id: &str) {
        let ids: Vec<String> = (0..self.machines_of(id))
            .map(|m| machine_job(id, m))
            .collect();
        for mid in &ids {
            let _ = self.api.stop(mid).await;
        }
        let until = std::time::Instant::now() + Duration::from_secs(30);
        for mid in &ids {
            while std::time::Instant::now() < until {
                if self.api.info(mid).await.is_ok_and(|i| i.terminal()) {
                    break;
                }
                tokio::time::sleep(self.settings.poll.min(Duration::from_millis(500))).await;
            }
        }
    }

    async fn cleanup(&self, id: &str) {
        let n = self.machines_of(id);
        for m in 1..n {
            // Machines 1… end with machine 0; one that has not is stopped.
            let mid = machine_job(id, m);
            if !self.api.info(&mid).await.is_ok_and(|i| i.terminal()) {
                let _ = self.api.stop(&mid).await;
            }
        }
        let deletes = (0..n).map(|m| {
            let mid = machine_job(id, m);
            async move { self.api.delete_finished(&mid).await }
        });
        futures::future::join_all(deletes).await;
        self.machines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    fn secret_names(&self) -> Vec<String> {
        STORE_SECRETS
            .iter()
            .map(|s| s.to_string())
            .chain(self.settings.env.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_machine_log_is_headed_by_its_machine_and_ends_its_last_line() {
        assert_eq!(
            machine_log(1, 2, "zest-r-n-1-m1", Ok("a\nb".into())),
            "[zest: machine 1 of 2, Ray job zest-r-n-1-m1]\na\nb\n"
        );
        assert_eq!(
            machine_log(2, 3, "j", Err(anyhow!("HTTP 404"))),
            "[zest: machine 2 of 3, Ray job j]\n[zest: cannot fetch its log: HTTP 404]\n"
        );
    }

    #[test]
    fn settings_have_defaults_and_are_checked() {
        let here = Path::new("/opt/zest/bin/zest");
        let c = RayConfig {
            address: Some("http://127.0.0.1:8265/".into()),
            ..Default::default()
        };
        let s = c.settings(here).unwrap();
        assert_eq!(s.address, "http://127.0.0.1:8265");
        assert_eq!(s.max_in_flight, 16);
        assert_eq!(s.poll, Duration::from_secs(1));
        assert_eq!(s.zest, here);
        assert_eq!(s.work_dir, "/tmp/zest-work");
        let bad = |c: RayConfig| c.settings(here).unwrap_err().to_string();
        assert!(bad(RayConfig {
            address: Some("127.0.0.1:6379".into()),
            ..Default::default()
        })
        .contains("dashboard's http(s):// URL"));
        assert!(bad(RayConfig {
            address: Some("http://x:8265".into()),
            max_in_flight: Some(0),
            ..Default::default()
        })
        .contains("max_in_flight"));
        assert!(bad(RayConfig {
            address: Some("http://x:8265".into()),
            poll: Some("soon".into()),
            ..Default::default()
        })
        .contains("poll"));
    }

    #[test]
    fn ids_and_endings_read_well() {
        assert_eq!(
            submission_id("20261203-101500-123-ab12", "train.cpt", 2),
            "zest-20261203-101500-123-ab12-train_cpt-2"
        );
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        let info = |status: &str, code: Option<i64>, msg: &str| JobInfo {
            status: status.into(),
            message: Some(msg.into()),
            error_type: (status == "FAILED").then(|| "JOB_ENTRYPOINT_COMMAND_ERROR".into()),
            driver_exit_code: code,
        };
        let d = info("FAILED", Some(-9), "Job entrypoint command failed").describe("zest-r-n-1");
        assert!(
            d.starts_with("Ray job zest-r-n-1 failed (its command was killed by SIGKILL) [JOB_ENTRYPOINT_COMMAND_ERROR]: Job entrypoint"),
            "{d}"
        );
        let d = info("FAILED", Some(137), "").describe("j");
        assert!(
            d.contains("the node's process was killed by SIGKILL"),
            "{d}"
        );
        assert!(info("FAILED", Some(3), "")
            .describe("j")
            .contains("exit code 3"));
        assert_eq!(
            info("STOPPED", None, " ").describe("j"),
            "Ray job j stopped"
        );
        assert!(info("SUCCEEDED", Some(0), "").terminal());
        assert!(!info("PENDING", None, "").terminal());
    }
}
