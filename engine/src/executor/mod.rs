//! The seam between the scheduler and what runs node attempts.
//!
//! The scheduler decides *what* runs and *when* (readiness, budgets, cache, retries); an
//! [`Executor`] decides *where*: today's local worker processes ([`crate::pool::Pool`]),
//! or a cluster engine. An executor takes [`Job`]s and tells how each ended through the
//! report function it was built with, as a [`Report`]; the scheduler never learns more of
//! it than that, so executors differ only behind this trait.

use crate::operator::WorkerKind;
use crate::worker::{Task, TaskResult};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub mod ray;

/// How one attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// The worker answered (success or an operator error).
    Done(TaskResult),
    /// The worker process died; how.
    Died(String),
    /// The attempt ran past its timeout and was killed.
    TimedOut(Duration),
    /// The run was cancelled and the attempt killed.
    Cancelled,
}

/// The scheduler's name for a job (a node index).
pub type Token = usize;

/// One attempt to run on a worker.
pub struct Job {
    /// Who the job is, for the scheduler.
    pub token: Token,
    /// What to run.
    pub task: Task,
    /// Its time limit, counted from when the worker starts it.
    pub timeout: Option<Duration>,
    /// Its memory limit in bytes (0: none): the worker's process group is killed when its
    /// resident memory goes over it.
    pub memory: u64,
    /// The CPU cores it was given (`resources.cpu`).
    pub cpu: f64,
    /// The GPUs it needs (`resources.gpu`); a local executor has set `CUDA_VISIBLE_DEVICES`
    /// to the ones it holds, a cluster executor asks the cluster for this many.
    pub gpu: u32,
    /// Which binary's workers run it.
    pub worker: WorkerKind,
}

/// What a driver tells the scheduler.
#[derive(Debug)]
pub enum Report {
    /// The job the worker was running ended.
    Ended {
        /// The worker.
        worker: usize,
        /// The job.
        token: Token,
        /// How it ended.
        outcome: Outcome,
        /// The queued job the worker has started in its place, if any.
        next: Option<Token>,
        /// Queued jobs that never started because the worker is gone; run them elsewhere.
        requeue: Vec<Token>,
        /// Whether the worker can take more jobs.
        alive: bool,
    },
    /// An idle worker went away.
    Gone {
        /// The worker.
        worker: usize,
        /// Jobs sent to it that it never received; run them elsewhere.
        requeue: Vec<Token>,
    },
}

/// How an executor tells the scheduler what happened.
pub type ReportFn = Arc<dyn Fn(Report) + Send + Sync>;

/// Runs node attempts somewhere and reports how they ended.
///
/// Every [`Job`] accepted by [`Executor::submit`] or [`Executor::enqueue`] ends in exactly
/// one [`Report`] naming its token: `Ended` with its outcome, or in the `requeue` list of a
/// report when it never started (the scheduler then runs it again elsewhere, with the same
/// attempt number).
pub trait Executor: Send {
    /// Starts `job` on a slot (a worker process, a cluster job) whose processes get `env`,
    /// and returns the slot's id; an error if it cannot start at all.
    fn submit(&mut self, env: &BTreeMap<String, String>, job: Job) -> anyhow::Result<usize>;

    /// Queues `job` behind what slot `id` runs, so that it starts without a round trip
    /// through the scheduler. False when the executor cannot (the default: only local
    /// workers pipeline).
    fn enqueue(&mut self, id: usize, job: Job, depth: usize) -> bool {
        let _ = (id, job, depth);
        false
    }

    /// Keeps the executor's books on a report; the scheduler calls it for every report.
    fn on_report(&mut self, report: &Report) {
        let _ = report;
    }

    /// Ends every slot (after their jobs) and waits for them to go.
    fn shutdown(&mut self) -> BoxFuture<'_, ()>;

    /// Whether its attempts run on this machine, within the run's `--cpus`, `--memory` and
    /// `--gpus` (and with `CUDA_VISIBLE_DEVICES` set by the scheduler). A cluster executor
    /// says no: the cluster places nodes and gives them GPUs.
    fn local(&self) -> bool {
        true
    }
}

/// Where nodes run: named executor profiles and the one nodes use unless they name another
/// (`executor:` in the DAG). Read from `--executor-config FILE`; `local` always exists, and
/// `ray` does too (from `RAY_ADDRESS`) unless the file defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// The profile of nodes that name none [default: `local`].
    #[serde(default = "local_name")]
    pub default: String,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileSpec>,
}

fn local_name() -> String {
    "local".to_string()
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            default: local_name(),
            profiles: BTreeMap::new(),
        }
    }
}

/// One executor profile, as written: its `kind` and that kind's settings. (One flat struct
/// rather than a tagged enum, so that serde reports a misspelt key at its own line.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// `local` or `ray`.
    pub kind: Kind,
    /// `ray`: see [`ray::RayConfig::address`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `ray`: see [`ray::RayConfig::max_in_flight`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// `ray`: see [`ray::RayConfig::poll`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<String>,
    /// `ray`: see [`ray::RayConfig::zest`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zest: Option<String>,
    /// `ray`: see [`ray::RayConfig::work_dir`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
    /// `ray`: see [`ray::RayConfig::env`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `ray`: see [`ray::RayConfig::resources`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, f64>,
}

/// The kinds of executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Worker processes on this machine.
    Local,
    /// One Ray job per node attempt.
    Ray,
}

/// One executor profile, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Profile {
    /// Worker processes on this machine.
    Local,
    /// One Ray job per node attempt.
    Ray(ray::RayConfig),
}

impl ProfileSpec {
    /// The profile, or what is wrong with it.
    fn check(&self) -> Result<Profile, String> {
        match self.kind {
            Kind::Ray => Ok(Profile::Ray(ray::RayConfig {
                address: self.address.clone(),
                max_in_flight: self.max_in_flight,
                poll: self.poll.clone(),
                zest: self.zest.clone(),
                work_dir: self.work_dir.clone(),
                env: self.env.clone(),
                resources: self.resources.clone(),
            })),
            Kind::Local => {
                let local = ProfileSpec {
                    kind: Kind::Local,
                    address: None,
                    max_in_flight: None,
                    poll: None,
                    zest: None,
                    work_dir: None,
                    env: vec![],
                    resources: BTreeMap::new(),
                };
                if *self != local {
                    return Err(
                        "a `kind: local` profile takes no settings (they are for `kind: ray`)"
                            .into(),
                    );
                }
                Ok(Profile::Local)
            }
        }
    }
}

impl ExecutorConfig {
    /// Reads a config file (YAML); errors name the file, line and column.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let cfg: ExecutorConfig =
            serde_yaml_ng::from_str(&text).map_err(|e| match e.location() {
                Some(l) => anyhow::anyhow!(
                    "{}:{}:{}: {}",
                    path.display(),
                    l.line(),
                    l.column(),
                    e.to_string().split(" at line ").next().unwrap_or_default()
                ),
                None => anyhow::anyhow!("{}: {e}", path.display()),
            })?;
        for (name, p) in &cfg.profiles {
            p.check()
                .map_err(|e| anyhow::anyhow!("{}: profile `{name}`: {e}", path.display()))?;
        }
        if !cfg.has(&cfg.default) {
            anyhow::bail!(
                "{}: `default: {}` names no profile (defined: {})",
                path.display(),
                cfg.default,
                cfg.names().join(", ")
            );
        }
        Ok(cfg)
    }

    /// The profile called `name`: one the file defines, or the built-in `local` and `ray`.
    pub fn profile(&self, name: &str) -> Option<Profile> {
        match (self.profiles.get(name), name) {
            (Some(p), _) => p.check().ok(),
            (None, "local") => Some(Profile::Local),
            (None, "ray") => Some(Profile::Ray(ray::RayConfig::default())),
            _ => None,
        }
    }

    fn has(&self, name: &str) -> bool {
        self.profile(name).is_some()
    }

    /// Every profile name, built-in ones included.
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.profiles.keys().cloned().collect();
        for b in ["local", "ray"] {
            if !self.profiles.contains_key(b) {
                n.push(b.to_string());
            }
        }
        n.sort();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<ExecutorConfig> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("executors.yaml");
        std::fs::write(&f, text)?;
        ExecutorConfig::from_file(&f)
    }

    #[test]
    fn profiles_parse_and_builtins_exist() {
        let c = parse(
            "default: gpu\nprofiles:\n  gpu:\n    kind: ray\n    address: http://ray:8265\n    max_in_flight: 4\n    env: [HF_TOKEN]\n  here:\n    kind: local\n",
        )
        .unwrap();
        assert_eq!(c.default, "gpu");
        match c.profile("gpu") {
            Some(Profile::Ray(r)) => {
                assert_eq!(r.address.as_deref(), Some("http://ray:8265"));
                assert_eq!(r.max_in_flight, Some(4));
                assert_eq!(r.env, vec!["HF_TOKEN".to_string()]);
            }
            p => panic!("{p:?}"),
        }
        assert_eq!(c.profile("here"), Some(Profile::Local));
        assert_eq!(c.profile("local"), Some(Profile::Local));
        assert!(matches!(c.profile("ray"), Some(Profile::Ray(_))));
        assert_eq!(c.profile("nope"), None);
        assert_eq!(c.names(), vec!["gpu", "here", "local", "ray"]);
        assert_eq!(ExecutorConfig::default().default, "local");
    }

    #[test]
    fn bad_files_say_where() {
        let e = parse("profiles:\n  gpu:\n    kind: ray\n    adress: http://ray:8265\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("executors.yaml:4:") && e.contains("adress"),
            "{e}"
        );
        let e = parse("profiles:\n  gpu:\n    kind: slurm\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("executors.yaml:3:") && e.contains("slurm"),
            "{e}"
        );
        let e = parse("profiles:\n  here:\n    kind: local\n    max_in_flight: 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("profile `here`") && e.contains("no settings"),
            "{e}"
        );
        let e = parse("default: gpu\n").unwrap_err().to_string();
        assert!(
            e.contains("names no profile") && e.contains("local, ray"),
            "{e}"
        );
    }
}
