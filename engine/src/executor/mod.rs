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

pub mod kubernetes;
pub mod ray;
pub(crate) mod remote;

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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// `local`, `ray` or `kubernetes`.
    pub kind: Kind,
    /// `ray`: see [`ray::RayConfig::address`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `ray`, `kubernetes`: the most jobs in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// `ray`, `kubernetes`: how often a job is looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<String>,
    /// `ray`, `kubernetes`: the `zest` binary on the cluster's nodes or in the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zest: Option<String>,
    /// `ray`, `kubernetes`: the nodes' scratch directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
    /// `ray`, `kubernetes`: where relative paths in configs resolve on the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// `ray`, `kubernetes`: variables passed from zest's environment, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `ray`: custom Ray resources; `kubernetes`: extended resources.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, f64>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::image`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::namespace`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::kubeconfig`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::context`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::image_pull_policy`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::image_pull_secrets`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::service_account`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::secrets`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::node_selector`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::tolerations`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<kubernetes::Toleration>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::gpu_node_selector`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gpu_node_selector: BTreeMap<String, String>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::gpu_tolerations`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_tolerations: Vec<kubernetes::Toleration>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::ttl_seconds_after_finished`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
    /// `kubernetes`: see [`kubernetes::KubernetesConfig::labels`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The kinds of executor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Worker processes on this machine.
    #[default]
    Local,
    /// One Ray job per node attempt.
    Ray,
    /// One Kubernetes Job per node attempt.
    Kubernetes,
}

/// One executor profile, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Profile {
    /// Worker processes on this machine.
    Local,
    /// One Ray job per node attempt.
    Ray(ray::RayConfig),
    /// One Kubernetes Job per node attempt.
    Kubernetes(Box<kubernetes::KubernetesConfig>),
}

impl ProfileSpec {
    /// The settings that are written but mean nothing for this profile's kind.
    fn foreign_keys(&self) -> Vec<&'static str> {
        let set = [
            ("address", self.address.is_some(), &[Kind::Ray][..]),
            (
                "max_in_flight",
                self.max_in_flight.is_some(),
                &[Kind::Ray, Kind::Kubernetes],
            ),
            ("poll", self.poll.is_some(), &[Kind::Ray, Kind::Kubernetes]),
            ("zest", self.zest.is_some(), &[Kind::Ray, Kind::Kubernetes]),
            (
                "work_dir",
                self.work_dir.is_some(),
                &[Kind::Ray, Kind::Kubernetes],
            ),
            ("cwd", self.cwd.is_some(), &[Kind::Ray, Kind::Kubernetes]),
            ("env", !self.env.is_empty(), &[Kind::Ray, Kind::Kubernetes]),
            (
                "resources",
                !self.resources.is_empty(),
                &[Kind::Ray, Kind::Kubernetes],
            ),
            ("image", self.image.is_some(), &[Kind::Kubernetes]),
            ("namespace", self.namespace.is_some(), &[Kind::Kubernetes]),
            ("kubeconfig", self.kubeconfig.is_some(), &[Kind::Kubernetes]),
            ("context", self.context.is_some(), &[Kind::Kubernetes]),
            (
                "image_pull_policy",
                self.image_pull_policy.is_some(),
                &[Kind::Kubernetes],
            ),
            (
                "image_pull_secrets",
                !self.image_pull_secrets.is_empty(),
                &[Kind::Kubernetes],
            ),
            (
                "service_account",
                self.service_account.is_some(),
                &[Kind::Kubernetes],
            ),
            ("secrets", !self.secrets.is_empty(), &[Kind::Kubernetes]),
            (
                "node_selector",
                !self.node_selector.is_empty(),
                &[Kind::Kubernetes],
            ),
            (
                "tolerations",
                !self.tolerations.is_empty(),
                &[Kind::Kubernetes],
            ),
            (
                "gpu_node_selector",
                !self.gpu_node_selector.is_empty(),
                &[Kind::Kubernetes],
            ),
            (
                "gpu_tolerations",
                !self.gpu_tolerations.is_empty(),
                &[Kind::Kubernetes],
            ),
            (
                "ttl_seconds_after_finished",
                self.ttl_seconds_after_finished.is_some(),
                &[Kind::Kubernetes],
            ),
            ("labels", !self.labels.is_empty(), &[Kind::Kubernetes]),
        ];
        set.into_iter()
            .filter(|(_, written, kinds)| *written && !kinds.contains(&self.kind))
            .map(|(k, _, _)| k)
            .collect()
    }

    /// The profile, or what is wrong with it.
    fn check(&self) -> Result<Profile, String> {
        let foreign = self.foreign_keys();
        if !foreign.is_empty() {
            let kind = serde_json::to_value(self.kind).unwrap_or_default();
            return Err(format!(
                "a `kind: {}` profile does not take {}",
                kind.as_str().unwrap_or_default(),
                foreign
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        match self.kind {
            Kind::Local => Ok(Profile::Local),
            Kind::Ray => Ok(Profile::Ray(ray::RayConfig {
                address: self.address.clone(),
                max_in_flight: self.max_in_flight,
                poll: self.poll.clone(),
                zest: self.zest.clone(),
                work_dir: self.work_dir.clone(),
                cwd: self.cwd.clone(),
                env: self.env.clone(),
                resources: self.resources.clone(),
            })),
            Kind::Kubernetes => {
                let k = kubernetes::KubernetesConfig {
                    image: self.image.clone(),
                    namespace: self.namespace.clone(),
                    kubeconfig: self.kubeconfig.clone(),
                    context: self.context.clone(),
                    image_pull_policy: self.image_pull_policy.clone(),
                    image_pull_secrets: self.image_pull_secrets.clone(),
                    service_account: self.service_account.clone(),
                    secrets: self.secrets.clone(),
                    node_selector: self.node_selector.clone(),
                    tolerations: self.tolerations.clone(),
                    gpu_node_selector: self.gpu_node_selector.clone(),
                    gpu_tolerations: self.gpu_tolerations.clone(),
                    ttl_seconds_after_finished: self.ttl_seconds_after_finished,
                    labels: self.labels.clone(),
                    max_in_flight: self.max_in_flight,
                    poll: self.poll.clone(),
                    zest: self.zest.clone(),
                    work_dir: self.work_dir.clone(),
                    cwd: self.cwd.clone(),
                    env: self.env.clone(),
                    resources: self.resources.clone(),
                };
                k.settings().map_err(|e| format!("{e:#}"))?;
                Ok(Profile::Kubernetes(Box::new(k)))
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
            e.contains("profile `here`")
                && e.contains("a `kind: local` profile does not take `max_in_flight`"),
            "{e}"
        );
        let e = parse(
            "profiles:\n  gpu:\n    kind: ray\n    image: zest:1\n    address: http://r:8265\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`kind: ray` profile does not take `image`"),
            "{e}"
        );
        let e = parse("profiles:\n  k:\n    kind: kubernetes\n    namespace: zest\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("profile `k`") && e.contains("needs `image:`"),
            "{e}"
        );
        let e = parse("profiles:\n  k:\n    kind: kubernetes\n    image: z\n    tolerations: [{key: a, operatr: Exists}]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("executors.yaml:5:") && e.contains("operatr"),
            "{e}"
        );
        let e = parse("default: gpu\n").unwrap_err().to_string();
        assert!(
            e.contains("names no profile") && e.contains("local, ray"),
            "{e}"
        );
    }
}
