//! The `kubernetes` executor: one `batch/v1` Job per node attempt, through the Kubernetes
//! API (kube-rs).
//!
//! The Job runs `zest node exec --task store:KEY` (or `zest-torch …` for libtorch operators)
//! in the profile's image: the task goes to the artifact store first, the pod reads and
//! writes artifacts through the store and writes its result beside the task; the scheduler
//! alone writes the run's journal (see [`super::remote`]). The store's credentials and the
//! DAG's secrets reach the pod from Kubernetes Secrets (`secrets:`, as `envFrom`), never
//! from the manifest, which holds no secret value.
//!
//! A node's `resources` become the container's requests and limits (`cpu` requested,
//! `memory` requested and limited, `gpu` as `nvidia.com/gpu`); GPU nodes get the profile's
//! `gpu_node_selector` and `gpu_tolerations` as well. zest owns retries, so `backoffLimit`
//! is 0; a `podFailurePolicy` lets Kubernetes replace a pod that was disrupted (preempted,
//! evicted, its node drained) within the same attempt. The Job's name is
//! `zest-<run>-<node>-<attempt>`, so a resumed run finds the Job an earlier session left
//! (the API answers 409 AlreadyExists) and attaches to it. Jobs are watched until Complete
//! or Failed, their pods' logs copied into the node's log; a cancelled or timed-out attempt's
//! Job is deleted with its pods, a finished one is left to `ttlSecondsAfterFinished`.

use super::remote::{node_env, parse_poll, Backend, JobState, RemoteExecutor, Submitted};
use super::remote::{STORE_ENV, STORE_SECRETS};
use super::{Executor, Job, ReportFn};
use crate::store::ArtifactStore;
use crate::worker::{Task, STORE_TASK};
use anyhow::{anyhow, bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job as K8sJob;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A toleration of a node taint, as Kubernetes writes it (`key`, `operator`, `value`,
/// `effect`, `tolerationSeconds`); a misspelt key is an error, not ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Toleration {
    /// The taint's key (none: every taint, with `operator: Exists`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Equal` (default) or `Exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The taint's value, for `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute` (none: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// For `NoExecute`: how long the pod stays once the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// A `kind: kubernetes` executor profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubernetesConfig {
    /// The container image with zest's binaries (required).
    pub image: Option<String>,
    /// The namespace Jobs are created in [default: the kubeconfig context's, else `default`].
    pub namespace: Option<String>,
    /// A kubeconfig file [default: `KUBECONFIG`, `~/.kube/config`, or the pod's service
    /// account when zest itself runs in the cluster].
    pub kubeconfig: Option<String>,
    /// The kubeconfig context [default: its current context].
    pub context: Option<String>,
    /// The pods' `imagePullPolicy` [default: Kubernetes' own].
    pub image_pull_policy: Option<String>,
    /// Secrets holding the registry's credentials (`imagePullSecrets`).
    pub image_pull_secrets: Vec<String>,
    /// The service account pods run as [default: the namespace's `default`]. Pods get no
    /// API token: zest's nodes do not talk to Kubernetes.
    pub service_account: Option<String>,
    /// Secrets whose keys become the pods' environment (`envFrom`): the store's `AWS_*`
    /// credentials and the DAG's `${secrets.…}` variables come from here.
    pub secrets: Vec<String>,
    /// Labels every pod's node must have (`nodeSelector`).
    pub node_selector: BTreeMap<String, String>,
    /// Taints every pod tolerates.
    pub tolerations: Vec<Toleration>,
    /// Labels the node of a pod with GPUs must have as well.
    pub gpu_node_selector: BTreeMap<String, String>,
    /// Taints a pod with GPUs tolerates as well.
    pub gpu_tolerations: Vec<Toleration>,
    /// Seconds a finished Job is kept (with its pods and their logs) [default: 3600].
    pub ttl_seconds_after_finished: Option<i32>,
    /// Labels put on every Job and pod, besides zest's own.
    pub labels: BTreeMap<String, String>,
    /// The most Jobs in flight at once [default: 32].
    pub max_in_flight: Option<usize>,
    /// How long one watch of a Job lasts before zest looks again (its timeout, log copy)
    /// [default: 10s].
    pub poll: Option<String>,
    /// The `zest` binary in the image (`zest-torch` beside it) [default: `/usr/local/bin/zest`].
    pub zest: Option<String>,
    /// The pods' scratch directory (downloads, temporary files), an `emptyDir` volume
    /// [default: `/scratch`].
    pub work_dir: Option<String>,
    /// The directory relative paths in nodes' configs resolve against [default: the
    /// image's `WORKDIR`].
    pub cwd: Option<String>,
    /// Variables passed from zest's environment to every pod, by name, as plain values in
    /// the manifest: secret values belong in `secrets:` instead.
    pub env: Vec<String>,
    /// Extended resources every pod's container is limited to (e.g. `{"rdma/ib": 1}`).
    pub resources: BTreeMap<String, f64>,
}

/// A [`KubernetesConfig`] with its defaults filled in and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    image: String,
    namespace: Option<String>,
    image_pull_policy: Option<String>,
    image_pull_secrets: Vec<String>,
    service_account: Option<String>,
    secrets: Vec<String>,
    node_selector: BTreeMap<String, String>,
    tolerations: Vec<Toleration>,
    gpu_node_selector: BTreeMap<String, String>,
    gpu_tolerations: Vec<Toleration>,
    ttl: i32,
    labels: BTreeMap<String, String>,
    max_in_flight: usize,
    poll: Duration,
    zest: PathBuf,
    work_dir: String,
    cwd: Option<String>,
    env: Vec<String>,
    resources: BTreeMap<String, f64>,
}

impl KubernetesConfig {
    /// The settings, or what is wrong with them.
    pub fn settings(&self) -> Result<Settings> {
        let what = "kubernetes executor";
        let image = self
            .image
            .clone()
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| {
                anyhow!("the {what} needs `image:`, the container image with zest's binaries")
            })?;
        if let Some(p) = &self.image_pull_policy {
            if !matches!(p.as_str(), "Always" | "IfNotPresent" | "Never") {
                bail!("{what} `image_pull_policy: {p}` must be Always, IfNotPresent or Never");
            }
        }
        let ttl = self.ttl_seconds_after_finished.unwrap_or(3600);
        if ttl < 0 {
            bail!("{what} `ttl_seconds_after_finished` must not be negative");
        }
        let max_in_flight = self.max_in_flight.unwrap_or(32);
        if max_in_flight == 0 {
            bail!("{what} `max_in_flight` must be at least 1");
        }
        for (k, v) in self
            .labels
            .iter()
            .chain(&self.node_selector)
            .chain(&self.gpu_node_selector)
        {
            check_label(k, v).map_err(|e| anyhow!("{what}: {e}"))?;
        }
        let work_dir = self
            .work_dir
            .clone()
            .unwrap_or_else(|| "/scratch".to_string());
        for (key, dir) in [("work_dir", Some(&work_dir)), ("cwd", self.cwd.as_ref())] {
            if let Some(d) = dir.filter(|d| !d.starts_with('/')) {
                bail!("{what} `{key}: {d}` must be an absolute path in the container");
            }
        }
        Ok(Settings {
            image,
            namespace: self.namespace.clone(),
            image_pull_policy: self.image_pull_policy.clone(),
            image_pull_secrets: self.image_pull_secrets.clone(),
            service_account: self.service_account.clone(),
            secrets: self.secrets.clone(),
            node_selector: self.node_selector.clone(),
            tolerations: self.tolerations.clone(),
            gpu_node_selector: self.gpu_node_selector.clone(),
            gpu_tolerations: self.gpu_tolerations.clone(),
            ttl,
            labels: self.labels.clone(),
            max_in_flight,
            poll: parse_poll(what, self.poll.as_deref(), Duration::from_secs(10))?,
            zest: PathBuf::from(self.zest.as_deref().unwrap_or("/usr/local/bin/zest")),
            work_dir,
            cwd: self.cwd.clone(),
            env: self.env.clone(),
            resources: self.resources.clone(),
        })
    }
}

/// Checks a label's key and value as Kubernetes would.
fn check_label(key: &str, value: &str) -> Result<(), String> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let name = key.rsplit('/').next().unwrap_or(key);
    if !name_ok(name) || key.matches('/').count() > 1 {
        return Err(format!("`{key}` is not a valid label key"));
    }
    if !value.is_empty() && !name_ok(value) {
        return Err(format!("`{key}: {value}`: not a valid label value (at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit)"));
    }
    Ok(())
}

/// `s` as a DNS-1123 label fragment: lower case letters, digits and `-`.
fn dns_part(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// The Job name of a task's attempt: `zest-<run>-<node>-<attempt>`, a DNS-1123 label of at
/// most 63 characters (a long node name is cut and a digest of it added, so that names
/// stay distinct).
pub fn job_name(run_id: &str, node: &str, attempt: u32) -> String {
    let head = format!("zest-{}-", dns_part(run_id));
    let tail = format!("-{attempt}");
    let n = dns_part(node);
    let room = 63usize.saturating_sub(head.len() + tail.len());
    let n = if n.len() <= room && n == node {
        n
    } else {
        // Different node names can meet in one fragment (`a.b`, `a_b`): a digest keeps them apart.
        let digest = &crate::digest::sha256_hex(node.as_bytes())[..8];
        let keep = room.saturating_sub(digest.len() + 1).min(n.len());
        format!("{}-{digest}", n[..keep].trim_end_matches('-'))
            .trim_start_matches('-')
            .to_string()
    };
    format!("{head}{n}{tail}")
}

/// A label value for `s`: at most 63 letters, digits, `-`, `_` or `.`.
fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// A CPU count as a Kubernetes quantity (`2`, `500m`).
fn cpu_quantity(cpu: f64) -> String {
    let milli = (cpu * 1000.0).round() as u64;
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// A number of an extended resource as a quantity.
fn count_quantity(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        format!("{}m", (n * 1000.0).round() as i64)
    }
}

/// The pieces of a node attempt's Job that come from outside the profile.
pub struct JobParts<'a> {
    /// The Job's name ([`job_name`]).
    pub name: &'a str,
    /// The task's key in the store.
    pub task_key: &'a str,
    /// The attempt's job (its task, resources and worker binary).
    pub job: &'a Job,
    /// Plain (not secret) environment variables for the pod.
    pub env: BTreeMap<String, String>,
}

/// The manifest of a node attempt's Job.
pub fn manifest(s: &Settings, namespace: &str, parts: &JobParts) -> serde_json::Value {
    let job = parts.job;
    let task = &job.task;
    let mut labels: BTreeMap<String, String> = s.labels.clone();
    labels.insert("app.kubernetes.io/managed-by".into(), "zest".into());
    labels.insert("zest/run-id".into(), label_value(&task.run_id));
    labels.insert("zest/node".into(), label_value(&task.node));
    labels.insert("zest/attempt".into(), task.attempt.to_string());
    let annotations = serde_json::json!({
        "zest/node": task.node,
        "zest/dag": task.dag,
        "zest/operator": task.op,
    });
    let exe = job.worker.exe_beside(&s.zest);
    let command = vec![
        exe.to_string_lossy().to_string(),
        "node".into(),
        "exec".into(),
        "--task".into(),
        format!("{STORE_TASK}{}", parts.task_key),
    ];
    let mut env = parts.env.clone();
    if job.gpu == 0 {
        // A pod without GPUs sees none, even on a GPU node whose runtime shows them all.
        env.insert("NVIDIA_VISIBLE_DEVICES".into(), "void".into());
    }
    let mut env: Vec<serde_json::Value> = env
        .into_iter()
        .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
        .collect();
    let machines = task.machines.max(1);
    if machines > 1 {
        // One pod a machine: its index says which; machine 0 tells the others its IP
        // through the store (so no Service is needed).
        let field = |path: &str| serde_json::json!({"fieldRef": {"fieldPath": path}});
        env.push(serde_json::json!({
            "name": crate::ranks::MACHINE_ENV,
            "valueFrom": field("metadata.annotations['batch.kubernetes.io/job-completion-index']"),
        }));
        env.push(serde_json::json!({
            "name": crate::ranks::NODE_ADDR_ENV,
            "valueFrom": field("status.podIP"),
        }));
    }
    let env_from: Vec<serde_json::Value> = s
        .secrets
        .iter()
        .map(|name| serde_json::json!({"secretRef": {"name": name}}))
        .collect();
    let mut requests = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    if job.cpu > 0.0 {
        requests.insert("cpu".into(), cpu_quantity(job.cpu).into());
    }
    if job.memory > 0 {
        requests.insert("memory".into(), job.memory.to_string().into());
        limits.insert("memory".into(), job.memory.to_string().into());
    }
    if job.gpu > 0 {
        limits.insert("nvidia.com/gpu".into(), job.gpu.to_string().into());
    }
    for (k, v) in &s.resources {
        limits.insert(k.clone(), count_quantity(*v).into());
    }
    let mut resources = serde_json::Map::new();
    if !requests.is_empty() {
        resources.insert("requests".into(), requests.into());
    }
    if !limits.is_empty() {
        resources.insert("limits".into(), limits.into());
    }
    let mut container = serde_json::json!({
        "name": "node",
        "image": s.image,
        "command": command,
        "env": env,
        "resources": resources,
        "volumeMounts": [{"name": "work", "mountPath": s.work_dir}],
    });
    if !env_from.is_empty() {
        container["envFrom"] = env_from.into();
    }
    if let Some(p) = &s.image_pull_policy {
        container["imagePullPolicy"] = p.clone().into();
    }
    if let Some(d) = &s.cwd {
        container["workingDir"] = d.clone().into();
    }
    let mut selector = s.node_selector.clone();
    let mut tolerations = s.tolerations.clone();
    if job.gpu > 0 {
        selector.extend(s.gpu_node_selector.clone());
        tolerations.extend(s.gpu_tolerations.clone());
    }
    let mut pod = serde_json::json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "containers": [container],
        "volumes": [{"name": "work", "emptyDir": {}}],
    });
    if let Some(sa) = &s.service_account {
        pod["serviceAccountName"] = sa.clone().into();
    }
    if !selector.is_empty() {
        pod["nodeSelector"] = serde_json::to_value(&selector).unwrap_or_default();
    }
    if !tolerations.is_empty() {
        pod["tolerations"] = serde_json::to_value(&tolerations).unwrap_or_default();
    }
    if !s.image_pull_secrets.is_empty() {
        pod["imagePullSecrets"] = s
            .image_pull_secrets
            .iter()
            .map(|n| serde_json::json!({"name": n}))
            .collect::<Vec<_>>()
            .into();
    }
    let mut m = serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": parts.name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            // zest retries a failed attempt itself, as a new Job.
            "backoffLimit": 0,
            // A disrupted pod (preempted, evicted, its node drained) is replaced within the
            // attempt instead of failing it.
            "podFailurePolicy": {"rules": [{
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            }]},
            "ttlSecondsAfterFinished": s.ttl,
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod,
            },
        },
    });
    if machines > 1 {
        // An Indexed Job of one pod a machine, all at once; with `backoffLimit: 0` one
        // pod's failure fails the Job, and Kubernetes ends the others.
        m["spec"]["completionMode"] = "Indexed".into();
        m["spec"]["completions"] = machines.into();
        m["spec"]["parallelism"] = machines.into();
    }
    m
}

/// The Kubernetes side of a node attempt's Job.
struct KubeBackend {
    settings: Settings,
    jobs: Api<K8sJob>,
    pods: Api<Pod>,
    namespace: String,
    store: ArtifactStore,
    endpoint: Option<String>,
}

/// An executor running node attempts as Kubernetes Jobs for `config`, its nodes reaching
/// `store` (at `endpoint`, for S3-compatible servers). Reports through `report`; setting
/// `cancel` deletes every Job still running.
pub async fn executor(
    config: &KubernetesConfig,
    store: ArtifactStore,
    endpoint: Option<String>,
    report: ReportFn,
    cancel: watch::Receiver<bool>,
) -> Result<Box<dyn Executor>> {
    let settings = config.settings()?;
    let kube_cfg = client_config(config).await?;
    let namespace = settings
        .namespace
        .clone()
        .unwrap_or_else(|| kube_cfg.default_namespace.clone());
    let client = kube::Client::try_from(kube_cfg).context("cannot build the Kubernetes client")?;
    let max_in_flight = settings.max_in_flight;
    let backend = KubeBackend {
        jobs: Api::namespaced(client.clone(), &namespace),
        pods: Api::namespaced(client, &namespace),
        namespace,
        settings,
        store: store.clone(),
        endpoint,
    };
    Ok(Box::new(RemoteExecutor::new(
        backend,
        store,
        max_in_flight,
        report,
        cancel,
        vec![],
    )))
}

/// The client's configuration: the profile's kubeconfig and context, or kube-rs' inference
/// (`KUBECONFIG`, `~/.kube/config`, the in-cluster service account).
async fn client_config(config: &KubernetesConfig) -> Result<kube::Config> {
    let opts = kube::config::KubeConfigOptions {
        context: config.context.clone(),
        ..Default::default()
    };
    match (&config.kubeconfig, &config.context) {
        (Some(path), _) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {path}"))?;
            kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .with_context(|| format!("the kubeconfig {path}"))
        }
        (None, Some(ctx)) => kube::Config::from_kubeconfig(&opts)
            .await
            .with_context(|| format!("the kubeconfig context `{ctx}`")),
        (None, None) => kube::Config::infer().await.context(
            "no Kubernetes configuration: set `kubeconfig:` in the profile or KUBECONFIG, or run zest in the cluster",
        ),
    }
}

/// Says what a Job's status means.
fn job_state(name: &str, job: Option<&K8sJob>) -> JobState {
    let Some(job) = job else {
        return JobState {
            ended: true,
            running: false,
            how: format!("Kubernetes Job {name} was deleted while it ran"),
        };
    };
    let status = job.status.clone().unwrap_or_default();
    let cond = |t: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t && c.status == "True")
            .cloned()
    };
    if cond("Complete").is_some() {
        return JobState {
            ended: true,
            running: false,
            how: format!("Kubernetes Job {name} completed"),
        };
    }
    if let Some(c) = cond("Failed") {
        let mut how = format!("Kubernetes Job {name} failed");
        if let Some(r) = c.reason.filter(|r| !r.is_empty()) {
            how.push_str(&format!(" [{r}]"));
        }
        if let Some(m) = c.message.filter(|m| !m.trim().is_empty()) {
            how.push_str(&format!(": {}", m.trim()));
        }
        return JobState {
            ended: true,
            running: false,
            how,
        };
    }
    let running = match status.ready {
        Some(r) => r > 0,
        None => status.active.unwrap_or(0) > 0,
    };
    JobState {
        ended: false,
        running,
        how: String::new(),
    }
}

/// How a pod's container ended, in words (`exit code 1`, `killed by SIGKILL, OOMKilled`).
fn describe_pod(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let mut parts = vec![];
    if let Some(r) = status.reason.as_deref().filter(|r| !r.is_empty()) {
        parts.push(r.to_string());
    }
    let term = status
        .container_statuses
        .iter()
        .flatten()
        .find_map(|c| c.state.as_ref()?.terminated.clone());
    if let Some(t) = term {
        let code = t.exit_code;
        parts.push(match (t.signal, code) {
            (Some(s), _) if s > 0 => format!("killed by {}", crate::pool::signal_name(s)),
            (_, c) if c > 128 => format!(
                "the node's process was killed by {}",
                crate::pool::signal_name(c - 128)
            ),
            (_, c) => format!("exit code {c}"),
        });
        if let Some(r) = t
            .reason
            .filter(|r| !r.is_empty() && r != "Error" && r != "Completed")
        {
            parts.push(r);
        }
    }
    if let Some(m) = status.message.as_deref().filter(|m| !m.trim().is_empty()) {
        parts.push(m.trim().to_string());
    }
    (!parts.is_empty()).then(|| format!("pod {name}: {}", parts.join(", ")))
}

impl KubeBackend {
    /// The Job's pods, oldest first.
    async fn pods_of(&self, name: &str) -> Result<Vec<Pod>> {
        let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}"));
        let mut pods = self.pods.list(&lp).await?.items;
        pods.sort_by(|a, b| {
            (&a.metadata.creation_timestamp, &a.metadata.name)
                .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
        });
        Ok(pods)
    }

    /// `state` with what the Job's pods say of a failure.
    async fn explained(&self, name: &str, mut state: JobState) -> JobState {
        if state.how.contains(" failed") {
            if let Ok(pods) = self.pods_of(name).await {
                let said: Vec<String> = pods.iter().filter_map(describe_pod).collect();
                if !said.is_empty() {
                    state.how = format!("{} ({})", state.how, said.join("; "));
                }
            }
        }
        state
    }

    fn plain_env(&self, job_id: &str) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let names = STORE_ENV
            .iter()
            .filter(|n| !STORE_SECRETS.contains(n))
            .map(|n| n.to_string())
            .chain(self.settings.env.iter().cloned());
        for name in names {
            if let Ok(v) = std::env::var(&name) {
                env.insert(name, v);
            }
        }
        env.extend(node_env(
            &self.store,
            self.endpoint.as_deref(),
            &self.settings.work_dir,
            job_id,
        ));
        env
    }
}

impl Backend for KubeBackend {
    const WHAT: &'static str = "Kubernetes Job";

    fn job_id(&self, task: &Task) -> String {
        job_name(&task.run_id, &task.node, task.attempt)
    }

    fn poll(&self) -> Duration {
        self.settings.poll.min(Duration::from_secs(2))
    }

    async fn submit(&self, job: &Job, id: &str, task_key: &str) -> Result<Submitted> {
        let parts = JobParts {
            name: id,
            task_key,
            job,
            env: self.plain_env(id),
        };
        let manifest = manifest(&self.settings, &self.namespace, &parts);
        let k8s: K8sJob = serde_json::from_value(manifest).context("the Job manifest")?;
        match self.jobs.create(&PostParams::default(), &k8s).await {
            Ok(_) => Ok(Submitted::New),
            Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(Submitted::Exists),
            Err(kube::Error::Api(s)) => bail!(
                "Kubernetes refused Job {id} in namespace {} (HTTP {} {}): {}",
                self.namespace,
                s.code,
                s.reason,
                s.message
            ),
            Err(e) => Err(anyhow!("cannot reach the Kubernetes API: {e}")),
        }
    }

    /// Reads the Job, then watches it for up to `poll` until it changes.
    async fn state(&self, id: &str) -> Result<JobState> {
        let job = self.jobs.get_opt(id).await?;
        let state = job_state(id, job.as_ref());
        if state.ended {
            return Ok(self.explained(id, state).await);
        }
        let version = job
            .and_then(|j| j.metadata.resource_version)
            .unwrap_or_else(|| "0".into());
        let wp = WatchParams::default()
            .fields(&format!("metadata.name={id}"))
            .timeout(self.settings.poll.as_secs().max(1) as u32);
        let mut events = self.jobs.watch(&wp, &version).await?.boxed();
        let until = Instant::now() + self.settings.poll + Duration::from_secs(5);
        while let Ok(next) = tokio::time::timeout_at(until.into(), events.try_next()).await {
            let changed = match next? {
                Some(WatchEvent::Added(j) | WatchEvent::Modified(j)) => job_state(id, Some(&j)),
                Some(WatchEvent::Deleted(_)) => job_state(id, None),
                // 410 Gone (the version is too old) and the like: read the Job again.
                Some(WatchEvent::Error(_)) | None => return Ok(state),
                Some(WatchEvent::Bookmark(_)) => continue,
            };
            if changed != state {
                return Ok(if changed.ended {
                    self.explained(id, changed).await
                } else {
                    changed
                });
            }
        }
        Ok(state)
    }

    /// The logs of the Job's pods, oldest first (a replaced pod's, then its replacement's).
    async fn logs(&self, id: &str) -> Result<String> {
        let mut pods = self.pods_of(id).await?;
        // A node on several machines: machine 0's pod prints the node's progress and
        // result (how another failed is in the Job's state).
        let index = |p: &Pod| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("batch.kubernetes.io/job-completion-index").cloned())
        };
        if pods.iter().any(|p| index(p).is_some_and(|i| i != "0")) {
            pods.retain(|p| index(p).as_deref() == Some("0"));
        }
        let lp = LogParams {
            container: Some("node".into()),
            ..Default::default()
        };
        let mut out = String::new();
        let many = pods.len() > 1;
        for pod in &pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            // A pod that has not started has no log yet.
            let Ok(text) = self.pods.logs(&name, &lp).await else {
                continue;
            };
            if many {
                out.push_str(&format!("[zest: pod {name}]\n"));
            }
            out.push_str(&text);
            if many && !text.ends_with('\n') {
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// Deletes the Job and its pods, waiting (bounded) until they are gone.
    async fn stop(&self, id: &str) {
        if self
            .jobs
            .delete(id, &DeleteParams::foreground())
            .await
            .is_err()
        {
            return;
        }
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            if matches!(self.jobs.get_opt(id).await, Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A finished Job stays for `ttlSecondsAfterFinished`, for `kubectl logs` and `describe`.
    async fn cleanup(&self, _id: &str) {}

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
    fn job_names_are_dns_labels_and_distinct() {
        assert_eq!(
            job_name("20261203-101500-123-ab12", "clean", 2),
            "zest-20261203-101500-123-ab12-clean-2"
        );
        let a = job_name("20261203-101500-123-ab12", "train.cpt", 1);
        let b = job_name("20261203-101500-123-ab12", "train_cpt", 1);
        assert_ne!(a, b);
        assert!(
            a.starts_with("zest-20261203-101500-123-ab12-train-cpt-"),
            "{a}"
        );
        let long = job_name(
            "20261203-101500-123-ab12",
            "a_very_long_node_name_that_goes_on.and_on_and_on",
            12,
        );
        assert!(long.len() <= 63, "{long} ({})", long.len());
        assert!(long.ends_with("-12"), "{long}");
        for n in [&a, &b, &long] {
            assert!(n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
    }

    #[test]
    fn settings_are_checked() {
        let ok = KubernetesConfig {
            image: Some("ghcr.io/x/zest:1".into()),
            ..Default::default()
        };
        let s = ok.settings().unwrap();
        assert_eq!(
            (s.ttl, s.max_in_flight, s.work_dir.as_str()),
            (3600, 32, "/scratch")
        );
        assert_eq!(s.poll, Duration::from_secs(10));
        let bad = |c: KubernetesConfig| c.settings().unwrap_err().to_string();
        assert!(bad(KubernetesConfig::default()).contains("needs `image:`"));
        assert!(bad(KubernetesConfig {
            image_pull_policy: Some("Sometimes".into()),
            ..ok.clone()
        })
        .contains("Always, IfNotPresent or Never"));
        assert!(bad(KubernetesConfig {
            node_selector: [("gpu".to_string(), "a b".to_string())].into(),
            ..ok.clone()
        })
        .contains("not a valid label value"));
        assert!(bad(KubernetesConfig {
            work_dir: Some("work".into()),
            ..ok.clone()
        })
        .contains("absolute path"));
        assert_eq!(cpu_quantity(2.0), "2");
        assert_eq!(cpu_quantity(0.5), "500m");
        assert_eq!(count_quantity(1.0), "1");
    }

    fn job(
        node: &str,
        cpu: f64,
        memory: u64,
        gpu: u32,
        worker: crate::operator::WorkerKind,
    ) -> Job {
        let task: Task = serde_json::from_value(serde_json::json!({
            "run_id": "20261203-101500-123-ab12",
            "dag": "demo",
            "node": node,
            "op": if gpu > 0 { "train.cpt" } else { "clean.quality" },
            "config": {},
            "cache_key": "k",
            "attempt": 1,
            "inputs": {},
            "outputs": [],
            "store": {"url": "s3://team-zest/runs", "s3": {"endpoint": null}, "download_dir": "/tmp/d"},
            "scratch": "/tmp/s",
            "log": "/tmp/l.log",
            "env": {},
            "trace_id": "",
            "span_id": "",
        }))
        .unwrap();
        Job {
            token: 0,
            task,
            timeout: None,
            memory,
            cpu,
            gpu,
            worker,
        }
    }

    /// The profile of `infra/k8s/scheduler-job.yaml`'s executors file, in short.
    fn cluster_settings() -> Settings {
        let toleration = |key: &str| Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        };
        KubernetesConfig {
            image: Some("ghcr.io/example/zest:0.1.0-cuda".into()),
            namespace: Some("zest".into()),
            service_account: Some("zest-runner".into()),
            secrets: vec!["zest-s3".into()],
            image_pull_secrets: vec!["registry".into()],
            node_selector: [("kubernetes.io/arch".to_string(), "amd64".to_string())].into(),
            tolerations: vec![toleration("zest.dev/batch")],
            gpu_node_selector: [("nvidia.com/gpu.present".to_string(), "true".to_string())].into(),
            gpu_tolerations: vec![toleration("nvidia.com/gpu")],
            labels: [("team".to_string(), "med-llm".to_string())].into(),
            resources: [("example.com/fast-disk".to_string(), 1.0)].into(),
            ..Default::default()
        }
        .settings()
        .unwrap()
    }

    /// The generated manifests are kept as golden files (`ZEST_UPDATE_GOLDEN=1` rewrites
    /// them) and are checked against the Kubernetes API types: read as a `batch/v1` Job and
    /// written again, nothing is lost or changed (a misspelt or misplaced field would be).
    #[test]
    fn manifests_match_golden_files_and_the_api_types() {
        use crate::operator::WorkerKind;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/kubernetes");
        let s = cluster_settings();
        let env: BTreeMap<String, String> = [
            ("AWS_REGION", "eu-west-1"),
            ("ZEST_STORE", "s3://team-zest/runs"),
            ("ZEST_WORK_DIR", "/work"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cases = [
            (
                "data-node",
                job("clean.quality", 2.0, 4 << 30, 0, WorkerKind::Zest),
            ),
            (
                "gpu-node",
                job("train.cpt", 7.5, 64 << 30, 2, WorkerKind::Torch),
            ),
            ("gpu-node-2-machines", {
                let mut j = job("sft", 7.5, 64 << 30, 8, WorkerKind::Torch);
                j.task.machines = 2;
                j
            }),
        ];
        let update = std::env::var_os("ZEST_UPDATE_GOLDEN").is_some();
        for (name, job) in &cases {
            let id = job_name(&job.task.run_id, &job.task.node, job.task.attempt);
            let parts = JobParts {
                name: &id,
                task_key: "tasks/20261203-101500-123-ab12/n.1.json",
                job,
                env: env.clone(),
            };
            let m = manifest(&s, "zest", &parts);
            let typed: K8sJob = serde_json::from_value(m.clone()).unwrap();
            assert_eq!(
                serde_json::to_value(&typed).unwrap(),
                m,
                "{name}: not a valid Job"
            );
            let path = dir.join(format!("{name}.yaml"));
            let text = format!(
                "# Generated by zest's kubernetes executor (see engine/src/executor/kubernetes.rs).\n{}",
                serde_yaml_ng::to_string(&m).unwrap()
            );
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            }
            let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (ZEST_UPDATE_GOLDEN=1 writes it)", path.display())
            });
            assert_eq!(
                golden,
                text,
                "{} differs (ZEST_UPDATE_GOLDEN=1 rewrites it)",
                path.display()
            );
            // The golden file itself is a valid Job.
            let back: K8sJob = serde_yaml_ng::from_str(&golden).unwrap();
            assert_eq!(back.metadata.name.as_deref(), Some(id.as_str()));
        }
        let gpu = manifest(
            &s,
            "zest",
            &JobParts {
                name: "j",
                task_key: "t",
                job: &cases[1].1,
                env: BTreeMap::new(),
            },
        );
        let pod = &gpu["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
            "2"
        );
        assert_eq!(
            pod["containers"][0]["command"][0],
            "/usr/local/bin/zest-torch"
        );
        assert_eq!(pod["nodeSelector"]["nvidia.com/gpu.present"], "true");
        assert_eq!(pod["tolerations"].as_array().unwrap().len(), 2);
        assert!(gpu["spec"].get("completionMode").is_none());
        let two = manifest(
            &s,
            "zest",
            &JobParts {
                name: "j",
                task_key: "t",
                job: &cases[2].1,
                env: BTreeMap::new(),
            },
        );
        assert_eq!(two["spec"]["completionMode"], "Indexed");
        assert_eq!(two["spec"]["completions"], 2);
        let env = &two["spec"]["template"]["spec"]["containers"][0]["env"];
        let machine = env
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == crate::ranks::MACHINE_ENV)
            .unwrap();
        assert!(machine["valueFrom"]["fieldRef"]["fieldPath"]
            .as_str()
            .unwrap()
            .contains("job-completion-index"));
        let data = &cases[0].1;
        let cpu = manifest(
            &s,
            "zest",
            &JobParts {
                name: "j",
                task_key: "t",
                job: data,
                env: BTreeMap::new(),
            },
        );
        let pod = &cpu["spec"]["template"]["spec"];
        assert!(pod["nodeSelector"].get("nvidia.com/gpu.present").is_none());
        assert_eq!(
            pod["containers"][0]["env"][0]["name"],
            "NVIDIA_VISIBLE_DEVICES"
        );
        // No secret value is ever in a manifest: credentials come from `envFrom`.
        assert_eq!(
            pod["containers"][0]["envFrom"][0]["secretRef"]["name"],
            "zest-s3"
        );
    }
}
