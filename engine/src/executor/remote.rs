//! What the cluster executors share: a node attempt as one job of a cluster engine.
//!
//! The attempt's task goes to the artifact store, the cluster runs `zest node exec --task
//! store:KEY` somewhere, the node reads and writes artifacts through the store and writes
//! its result beside the task; the scheduler alone writes the run's journal. A [`Backend`]
//! (Ray's Jobs API, the Kubernetes API) says how to submit, watch, stop and read the log of
//! a job; [`RemoteExecutor`] does the rest the same way for each: a cap on jobs in flight,
//! attaching to a job that exists already (a resumed run's attempt), the node's timeout
//! counted from when the job runs, stop on cancel, the job's log copied into the node's log
//! while it runs, and the attempt's outcome from its result (or from how the job ended).

use super::{Executor, Job, Outcome, Report, ReportFn};
use crate::store::ArtifactStore;
use crate::worker::{remote_task_keys, rendezvous_key, Task, TaskResult};
use anyhow::{bail, Context, Result};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};

/// The `AWS_*` variables a node needs to reach the store.
pub(crate) const STORE_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ALLOW_HTTP",
    "ZEST_S3_MAX_RETRIES",
];

/// Those of [`STORE_ENV`] whose values are secret.
pub(crate) const STORE_SECRETS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// How a submission went.
pub(crate) enum Submitted {
    /// The job was created.
    New,
    /// A job with this id exists already (a resumed run's attempt): attach to it.
    Exists,
}

/// What the cluster says of a job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobState {
    /// It has ended (succeeded, failed or was stopped).
    pub ended: bool,
    /// Its process runs (the node's timeout counts from then).
    pub running: bool,
    /// How it ended, in words, for an attempt that left no result.
    pub how: String,
}

/// A cluster engine's side of a job.
pub(crate) trait Backend: Send + Sync + 'static {
    /// What a job is called there, for logs and errors (`Ray job`, `Kubernetes Job`).
    const WHAT: &'static str;

    /// The job's name for an attempt: the same for the same run, node and attempt.
    fn job_id(&self, task: &Task) -> String;

    /// How long to wait before asking again after a failed request.
    fn poll(&self) -> Duration;

    /// Creates the job that runs `job`'s task from the store at `task_key`.
    fn submit(
        &self,
        job: &Job,
        id: &str,
        task_key: &str,
    ) -> impl Future<Output = Result<Submitted>> + Send;

    /// Waits a while (a poll interval, or until the job changes) and says how the job is.
    fn state(&self, id: &str) -> impl Future<Output = Result<JobState>> + Send;

    /// The job's output so far.
    fn logs(&self, id: &str) -> impl Future<Output = Result<String>> + Send;

    /// Ends a job that is still running, and waits (bounded) until it has.
    fn stop(&self, id: &str) -> impl Future<Output = ()> + Send;

    /// Tidies up after a job whose end was seen and whose log was copied.
    fn cleanup(&self, id: &str) -> impl Future<Output = ()> + Send;

    /// Environment variables whose values are hidden in the copied log.
    fn secret_names(&self) -> Vec<String>;
}

/// Polls or watches in a row that may fail (the API restarting, a dropped connection)
/// before the attempt is given up as lost.
const LOST_AFTER: u32 = 30;

/// How often a running job's log is copied into the node's log.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Runs node attempts as jobs of a cluster engine.
pub(crate) struct RemoteExecutor<B: Backend> {
    backend: Arc<B>,
    store: ArtifactStore,
    permits: Arc<Semaphore>,
    report: ReportFn,
    cancel: watch::Receiver<bool>,
    next_id: usize,
    drivers: Vec<tokio::task::JoinHandle<()>>,
}

impl<B: Backend> RemoteExecutor<B> {
    /// An executor submitting at most `max_in_flight` jobs at once through `backend`;
    /// `drivers` are tasks it already started (and waits for at shutdown).
    pub fn new(
        backend: B,
        store: ArtifactStore,
        max_in_flight: usize,
        report: ReportFn,
        cancel: watch::Receiver<bool>,
        drivers: Vec<tokio::task::JoinHandle<()>>,
    ) -> Self {
        RemoteExecutor {
            backend: Arc::new(backend),
            store,
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            report,
            cancel,
            next_id: 0,
            drivers,
        }
    }
}

impl<B: Backend> Executor for RemoteExecutor<B> {
    fn submit(&mut self, _env: &BTreeMap<String, String>, job: Job) -> Result<usize> {
        let id = self.next_id;
        self.next_id += 1;
        let mut d = Driver {
            backend: self.backend.clone(),
            store: self.store.clone(),
            cancel: self.cancel.clone(),
        };
        let permits = self.permits.clone();
        let report = self.report.clone();
        self.drivers.push(tokio::spawn(async move {
            let token = job.token;
            let sid = d.backend.job_id(&job.task);
            let (outcome, ended) = d.run(job, &sid, permits).await;
            report(Report::Ended {
                worker: id,
                token,
                outcome,
                next: None,
                requeue: vec![],
                alive: false,
            });
            if ended {
                d.backend.cleanup(&sid).await;
            }
        }));
        Ok(id)
    }

    fn shutdown(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for d in self.drivers.drain(..) {
                let _ = d.await;
            }
        })
    }

    fn local(&self) -> bool {
        false
    }
}

/// Takes one attempt through its cluster job.
struct Driver<B: Backend> {
    backend: Arc<B>,
    store: ArtifactStore,
    cancel: watch::Receiver<bool>,
}

impl<B: Backend> Driver<B> {
    /// Takes `job` through its cluster job `sid`: how the attempt ended, and whether the
    /// job was submitted and ended (so it is to be tidied up).
    async fn run(&mut self, job: Job, sid: &str, permits: Arc<Semaphore>) -> (Outcome, bool) {
        let permit = tokio::select! {
            p = permits.acquire_owned() => p,
            _ = wait_cancelled(&mut self.cancel) => return (Outcome::Cancelled, false),
        };
        let _permit = permit.expect("the semaphore is never closed");
        let (task_key, result_key) = remote_task_keys(&job.task);
        let (outcome, ended) = match self.attempt(&job, sid, &task_key, &result_key).await {
            Ok(o) => (o, true),
            Err(e) => (Outcome::Died(format!("{e:#}")), false),
        };
        let _ = self.store.delete(&task_key).await;
        let _ = self.store.delete(&result_key).await;
        if job.task.machines > 1 {
            let _ = self.store.delete(&rendezvous_key(&job.task)).await;
        }
        (outcome, ended)
    }

    async fn attempt(
        &mut self,
        job: &Job,
        sid: &str,
        task_key: &str,
        result_key: &str,
    ) -> Result<Outcome> {
        let task = &job.task;
        // The task goes to the store before the job that reads it.
        self.store
            .put_json(task_key, task)
            .await
            .with_context(|| format!("cannot put the task in the store {}", self.store.url()))?;
        let attached = matches!(
            self.backend.submit(job, sid, task_key).await?,
            Submitted::Exists
        );
        let mut log = LogCopy::new(
            &task.log,
            format!(
                "[zest: attempt {} ran as {} {sid}{}]",
                task.attempt,
                B::WHAT,
                if attached {
                    ", found running from an earlier session of this run"
                } else {
                    ""
                }
            ),
            self.backend
                .secret_names()
                .into_iter()
                .chain(task.secrets.iter().cloned()),
        );
        let mut failures = 0;
        let mut running_since: Option<Instant> = None;
        let mut copied_at = Instant::now();
        let state = loop {
            let asked = tokio::select! {
                s = self.backend.state(sid) => s,
                _ = wait_cancelled(&mut self.cancel) => {
                    self.stop(sid, &mut log).await;
                    return Ok(Outcome::Cancelled);
                }
            };
            match asked {
                Ok(s) if s.ended => break s,
                Ok(s) => {
                    failures = 0;
                    if s.running {
                        running_since.get_or_insert_with(Instant::now);
                    }
                    if let (Some(limit), Some(t)) = (job.timeout, running_since) {
                        if t.elapsed() > limit {
                            self.stop(sid, &mut log).await;
                            return Ok(Outcome::TimedOut(limit));
                        }
                    }
                    if running_since.is_some() && copied_at.elapsed() >= LOG_EVERY {
                        if let Ok(text) = self.backend.logs(sid).await {
                            log.copy(&text, false);
                        }
                        copied_at = Instant::now();
                    }
                }
                Err(e) => {
                    failures += 1;
                    if failures >= LOST_AFTER {
                        // It may still run: stop it, so that the retry is the only one.
                        self.backend.stop(sid).await;
                        bail!(
                            "lost contact with {} {sid} ({LOST_AFTER} requests failed): {e:#}",
                            B::WHAT
                        );
                    }
                    tokio::time::sleep(self.backend.poll()).await;
                }
            }
        };
        match self.backend.logs(sid).await {
            Ok(text) => log.copy(&text, true),
            Err(e) => log.note(&format!("[zest: cannot fetch the job's log: {e:#}]")),
        }
        Ok(match self.store.get_json::<TaskResult>(result_key).await {
            Ok(Some(r)) => Outcome::Done(r),
            Ok(None) => Outcome::Died(state.how),
            Err(e) => Outcome::Died(format!("{}; reading its result failed: {e:#}", state.how)),
        })
    }

    /// Stops a job that is to end early, keeping its log: what it wrote before the stop
    /// (a cluster may delete the log with the job), then whatever more is left after it.
    async fn stop(&self, sid: &str, log: &mut LogCopy) {
        if let Ok(text) = self.backend.logs(sid).await {
            log.copy(&text, false);
        }
        self.backend.stop(sid).await;
        if let Ok(text) = self.backend.logs(sid).await {
            log.copy(&text, true);
        }
    }
}

/// Copies a job's log into the node's log as it grows, secrets hidden.
struct LogCopy {
    path: std::path::PathBuf,
    header: Option<String>,
    redactor: crate::secret::Redactor,
    /// Bytes of the job's log copied so far.
    copied: usize,
}

impl LogCopy {
    fn new(path: &Path, header: String, secrets: impl Iterator<Item = String>) -> Self {
        let names: Vec<String> = secrets.collect();
        LogCopy {
            path: path.to_path_buf(),
            header: Some(header),
            redactor: crate::secret::Redactor::from_env(&names),
            copied: 0,
        }
    }

    /// Appends what `text` (the job's whole log so far) has beyond what was copied: its
    /// whole lines, or everything when `all` (the job has ended). A log that does not
    /// continue the copied one (a restarted pod's) is copied whole.
    fn copy(&mut self, text: &str, all: bool) {
        if text.len() < self.copied || !text.is_char_boundary(self.copied) {
            self.copied = 0;
        }
        let new = &text[self.copied..];
        let take = if all {
            new.len()
        } else {
            new.rfind('\n').map_or(0, |i| i + 1)
        };
        if take == 0 {
            if self.header.is_some() && all {
                self.write("");
            }
            return;
        }
        let chunk = self.redactor.redact(&new[..take]);
        if self.write(&chunk) {
            self.copied += take;
        }
    }

    /// Appends a line of zest's own.
    fn note(&mut self, line: &str) {
        self.write(&format!("{line}\n"));
    }

    fn write(&mut self, text: &str) -> bool {
        let Ok(mut f) = crate::worker::open_append(&self.path) else {
            return false;
        };
        if let Some(h) = self.header.take() {
            if writeln!(f, "{h}").is_err() {
                return false;
            }
        }
        f.write_all(text.as_bytes()).is_ok()
    }
}

/// Returns once `rx` says the run is cancelled.
pub(crate) async fn wait_cancelled(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The variables every cluster node gets: the store (`ZEST_STORE`, `ZEST_S3_ENDPOINT`), its
/// work directory, and the job's id (`ZEST_CLUSTER_JOB` marks its processes as the
/// cluster's: see `sandbox::processes_of_run`).
pub(crate) fn node_env(
    store: &ArtifactStore,
    endpoint: Option<&str>,
    work_dir: &str,
    job_id: &str,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("ZEST_STORE".into(), store.url().to_string());
    if let Some(e) = endpoint {
        env.insert("ZEST_S3_ENDPOINT".into(), e.to_string());
    }
    env.insert("ZEST_WORK_DIR".into(), work_dir.to_string());
    env.insert("ZEST_CLUSTER_JOB".into(), job_id.to_string());
    env
}

/// A duration setting of an executor profile (`poll`), checked.
pub(crate) fn parse_poll(what: &str, value: Option<&str>, default: Duration) -> Result<Duration> {
    let poll = match value {
        Some(p) => {
            crate::units::parse_duration(p).map_err(|e| anyhow::anyhow!("{what} `poll`: {e}"))?
        }
        None => default,
    };
    if poll.is_zero() {
        bail!("{what} `poll` must be longer than zero");
    }
    Ok(poll)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_copied_as_they_grow_with_secrets_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        std::env::set_var("ZEST_TEST_REMOTE_TOKEN", "hunter2-secret");
        let mut log = LogCopy::new(
            &path,
            "[zest: attempt 1 ran as Test job j]".into(),
            ["ZEST_TEST_REMOTE_TOKEN".to_string()].into_iter(),
        );
        log.copy("step 1\nstep 2 with hunter2-secret\npart", false);
        let read = || std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            read(),
            "[zest: attempt 1 ran as Test job j]\nstep 1\nstep 2 with ***\n"
        );
        // Only whole lines until the job ends; nothing twice.
        log.copy("step 1\nstep 2 with hunter2-secret\npartial", false);
        assert!(read().ends_with("***\n"), "{}", read());
        log.copy(
            "step 1\nstep 2 with hunter2-secret\npartial line\nend",
            true,
        );
        assert!(read().ends_with("***\npartial line\nend"), "{}", read());
        // A log that does not continue the copied one is copied whole.
        log.copy("new pod\n", true);
        assert!(read().ends_with("endnew pod\n"), "{}", read());
        let mut empty = LogCopy::new(&dir.path().join("e.log"), "[h]".into(), std::iter::empty());
        empty.copy("", true);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("e.log")).unwrap(),
            "[h]\n"
        );
    }
}
