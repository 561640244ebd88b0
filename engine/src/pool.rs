//! The scheduler's side of worker processes: spawning, sending tasks, timeouts, killing,
//! and telling how a worker died.
//!
//! Each worker process is driven by one task on the scheduler's runtime (its *driver*),
//! which writes jobs to the worker's stdin and reads answers from its stdout. A worker runs
//! one job at a time, but the scheduler may queue jobs behind the running one
//! ([`Pool::enqueue`]): the worker then finds its next job waiting when it finishes, instead
//! of idling for a round trip through the scheduler. The scheduler does this only for jobs
//! it has seen to be short (see `scheduler`), the way Dask keeps workers saturated.

use crate::executor::{Executor, ReportFn};
pub use crate::executor::{Job, Outcome, Report, Token};
use crate::operator::WorkerKind;
use crate::worker::TaskResult;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How often the memory of a worker running a job with a memory limit is looked at.
const MEMORY_CHECK: Duration = Duration::from_millis(100);

/// A running `zest node worker` process.
pub struct WorkerProc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    pid: u32,
}

impl WorkerProc {
    /// Starts a worker in its own process group, with `env` added to its environment.
    pub fn spawn(exe: &Path, env: &BTreeMap<String, String>) -> Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.args(["node", "worker"])
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start worker {}", exe.display()))?;
        let pid = child.id().unwrap_or(0);
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        Ok(WorkerProc {
            child,
            stdin: Some(stdin),
            stdout,
            pid,
        })
    }

    /// Stops the worker and everything it started: SIGTERM to its process group, then
    /// SIGKILL after a grace period.
    pub async fn kill(&mut self) {
        let pg = -(self.pid as libc::pid_t);
        unsafe {
            libc::kill(pg, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_err()
        {
            unsafe {
                libc::kill(pg, libc::SIGKILL);
            }
            let _ = self.child.wait().await;
        }
        unsafe {
            // Children of the worker (e.g. shell commands) may outlive it.
            libc::kill(pg, libc::SIGKILL);
        }
    }

    /// Waits for the exited worker and describes how it died.
    async fn death(&mut self) -> String {
        let status = match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(Ok(s)) => s,
            _ => {
                self.kill().await;
                return "worker stopped answering and was killed".into();
            }
        };
        unsafe {
            libc::kill(-(self.pid as libc::pid_t), libc::SIGKILL);
        }
        describe_exit(status)
    }

    /// Ends an idle worker: closes its stdin so that it exits by itself (cleaning up), and
    /// kills it if it does not within a grace period.
    async fn close(mut self) {
        self.stdin = None;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            self.kill().await;
        }
    }
}

/// A signal's name (`SIGKILL`), or `signal N` for one without a name here.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

/// What a signal that ended a process usually means.
fn signal_meaning(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGSEGV => "segmentation fault",
        libc::SIGABRT => "aborted",
        libc::SIGKILL => "killed, e.g. by the kernel's out-of-memory killer",
        libc::SIGBUS => "bus error",
        libc::SIGFPE => "arithmetic error",
        libc::SIGILL => "illegal instruction",
        libc::SIGTERM => "terminated",
        _ => return None,
    })
}

/// Describes a process exit for people: the exit code, or the signal and what it usually means.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        let what = match signal_meaning(sig) {
            Some(m) => format!("{}: {m}", signal_name(sig)),
            None => "signal".to_string(),
        };
        let core = if status.core_dumped() {
            ", core dumped"
        } else {
            ""
        };
        return format!("worker process died with signal {sig} ({what}{core})");
    }
    match status.code() {
        Some(c) => format!("worker process exited with code {c} before answering"),
        None => "worker process ended".into(),
    }
}

/// A live worker, as the pool sees it.
struct Slot {
    id: usize,
    kind: WorkerKind,
    env: BTreeMap<String, String>,
    jobs: mpsc::UnboundedSender<Job>,
    /// Jobs sent and not yet ended.
    inflight: usize,
}

/// The run's worker processes.
pub struct Pool {
    exe: PathBuf,
    slots: Vec<Slot>,
    next_id: usize,
    report: ReportFn,
    cancel: watch::Receiver<bool>,
    drivers: Vec<tokio::task::JoinHandle<()>>,
}

impl Pool {
    /// A pool that starts workers from `exe` (the zest binary; other kinds of worker from the
    /// binaries beside it, see [`WorkerKind::exe_beside`]) and reports through `report`.
    /// Setting `cancel` to true kills every worker and ends its jobs as cancelled.
    pub fn new(
        exe: PathBuf,
        report: impl Fn(Report) + Send + Sync + 'static,
        cancel: watch::Receiver<bool>,
    ) -> Self {
        Pool {
            exe,
            slots: vec![],
            next_id: 0,
            report: Arc::new(report),
            cancel,
            drivers: vec![],
        }
    }

    /// Sends `job` to an idle worker of its kind started with `env`, starting one if there
    /// is none. Returns the worker's id.
    pub fn submit(&mut self, env: &BTreeMap<String, String>, mut job: Job) -> Result<usize> {
        let kind = job.worker;
        while let Some(i) = self
            .slots
            .iter()
            .position(|s| s.inflight == 0 && s.kind == kind && &s.env == env)
        {
            match self.slots[i].jobs.send(job) {
                Ok(()) => {
                    self.slots[i].inflight += 1;
                    return Ok(self.slots[i].id);
                }
                Err(mpsc::error::SendError(j)) => {
                    // The worker went away and its report is still on the way.
                    job = j;
                    self.slots.swap_remove(i);
                }
            }
        }
        let exe = kind.exe_beside(&self.exe);
        if kind != WorkerKind::Zest && !exe.exists() {
            anyhow::bail!(
                "this node runs in a {} worker, and {} is missing: build it beside zest \
                 (`make build`)",
                kind.binary(),
                exe.display()
            );
        }
        let proc = WorkerProc::spawn(&exe, env)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next_id;
        self.next_id += 1;
        let report = self.report.clone();
        let cancel = self.cancel.clone();
        self.drivers
            .push(tokio::spawn(drive(proc, id, rx, report, cancel)));
        tx.send(job).ok();
        self.slots.push(Slot {
            id,
            kind,
            env: env.clone(),
            jobs: tx,
            inflight: 1,
        });
        Ok(id)
    }

    /// Queues `job` behind the jobs worker `id` has. False if the worker cannot take it
    /// (gone, idle, or `depth` jobs already waiting).
    pub fn enqueue(&mut self, id: usize, job: Job, depth: usize) -> bool {
        match self.slots.iter_mut().find(|s| s.id == id) {
            Some(slot)
                if slot.inflight >= 1 && slot.inflight <= depth && slot.kind == job.worker =>
            {
                if slot.jobs.send(job).is_err() {
                    return false;
                }
                slot.inflight += 1;
                true
            }
            _ => false,
        }
    }

    /// Keeps the pool's books on a report; the scheduler calls it for every report.
    pub fn on_report(&mut self, r: &Report) {
        let (id, ended, alive) = match r {
            Report::Ended {
                worker,
                requeue,
                alive,
                ..
            } => (*worker, 1 + requeue.len(), *alive),
            Report::Gone { worker, requeue } => (*worker, requeue.len(), false),
        };
        let Some(i) = self.slots.iter().position(|s| s.id == id) else {
            return;
        };
        let slot = &mut self.slots[i];
        slot.inflight = slot.inflight.saturating_sub(ended);
        // Workers that had GPUs are not reused: another node may get other GPUs.
        let had_gpus = slot
            .env
            .get("CUDA_VISIBLE_DEVICES")
            .is_some_and(|v| !v.is_empty());
        if !alive || (had_gpus && slot.inflight == 0) {
            // Dropping the sender lets an idle driver close its worker.
            self.slots.swap_remove(i);
        }
    }

    /// Ends every worker (after their jobs) and waits for them to exit.
    pub async fn shutdown(&mut self) {
        self.slots.clear();
        for d in self.drivers.drain(..) {
            let _ = d.await;
        }
    }
}

impl Executor for Pool {
    fn submit(&mut self, env: &BTreeMap<String, String>, job: Job) -> Result<usize> {
        Pool::submit(self, env, job)
    }
    fn enqueue(&mut self, id: usize, job: Job, depth: usize) -> bool {
        Pool::enqueue(self, id, job, depth)
    }
    fn on_report(&mut self, r: &Report) {
        Pool::on_report(self, r)
    }
    fn shutdown(&mut self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(Pool::shutdown(self))
    }
}

/// Drives one worker: writes its jobs, reads its answers, enforces time limits, and reports.
async fn drive(
    mut w: WorkerProc,
    id: usize,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    report: ReportFn,
    mut cancel: watch::Receiver<bool>,
) {
    // Jobs written to the worker, oldest (the running one) first.
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut deadline: Option<Instant> = None;
    let mut open = true;
    let mut memory_check = tokio::time::interval(MEMORY_CHECK);
    memory_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let far = || Instant::now() + Duration::from_secs(86_400 * 365);
    loop {
        if !open && queue.is_empty() {
            w.close().await;
            return;
        }
        let ended: Option<Outcome> = tokio::select! {
            job = jobs.recv(), if open => match job {
                None => { open = false; None }
                Some(job) => {
                    // A task is plain data; encoding it cannot fail.
                    let mut line = serde_json::to_vec(&job.task).expect("tasks encode");
                    line.push(b'\n');
                    if queue.is_empty() {
                        deadline = job.timeout.and_then(|t| Instant::now().checked_add(t));
                    }
                    let stdin = w.stdin.as_mut().expect("open while driving");
                    let sent = stdin.write_all(&line).await;
                    queue.push_back(job);
                    match sent {
                        Ok(()) => None,
                        Err(e) => {
                            let how = w.death().await;
                            Some(Outcome::Died(format!("{how} (sending the task failed: {e})")))
                        }
                    }
                }
            },
            r = w.stdout.next_line() => match r {
                Ok(Some(l)) if !queue.is_empty() => match serde_json::from_str::<TaskResult>(&l) {
                    Ok(res) => {
                        let done = queue.pop_front().expect("not empty");
                        let next = queue.front().map(|j| j.token);
                        deadline = queue.front().and_then(|j| j.timeout).and_then(|t| Instant::now().checked_add(t));
                        report(Report::Ended { worker: id, token: done.token, outcome: Outcome::Done(res), next, requeue: vec![], alive: true });
                        None
                    }
                    Err(e) => {
                        w.kill().await;
                        Some(Outcome::Died(format!("worker sent a malformed answer: {e}")))
                    }
                },
                Ok(Some(_)) => {
                    // An answer nobody asked for: the protocol is broken.
                    w.kill().await;
                    report(Report::Gone { worker: id, requeue: unsent(&mut jobs) });
                    return;
                }
                _ => {
                    let how = w.death().await;
                    if queue.is_empty() {
                        report(Report::Gone { worker: id, requeue: unsent(&mut jobs) });
                        return;
                    }
                    Some(Outcome::Died(how))
                }
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(far)), if deadline.is_some() && !queue.is_empty() => {
                w.kill().await;
                let t = queue.front().and_then(|j| j.timeout).unwrap_or_default();
                Some(Outcome::TimedOut(t))
            }
            _ = memory_check.tick(), if queue.front().is_some_and(|j| j.memory > 0) => {
                let limit = queue.front().map(|j| j.memory).unwrap_or(0);
                let used = crate::sandbox::group_rss(w.pid);
                if used > limit {
                    w.kill().await;
                    Some(Outcome::Died(format!(
                        "used {} of memory, over its limit of {} (resources.memory), and was killed",
                        crate::units::format_bytes(used),
                        crate::units::format_bytes(limit)
                    )))
                } else {
                    None
                }
            }
            _ = async { while cancel.changed().await.is_ok() { if *cancel.borrow() { return; } } std::future::pending::<()>().await } => {
                w.kill().await;
                if queue.is_empty() {
                    report(Report::Gone { worker: id, requeue: unsent(&mut jobs) });
                    return;
                }
                Some(Outcome::Cancelled)
            }
        };
        if let Some(outcome) = ended {
            // The worker is gone: its running job ended with `outcome`, queued ones never ran.
            let done = queue.pop_front().expect("a job was running");
            // What the node printed before the worker went is in the worker's spool.
            crate::worker::recover_spool(&done.task.log, w.pid);
            let mut requeue: Vec<Token> = queue.drain(..).map(|j| j.token).collect();
            requeue.extend(unsent(&mut jobs));
            report(Report::Ended {
                worker: id,
                token: done.token,
                outcome,
                next: None,
                requeue,
                alive: false,
            });
            return;
        }
    }
}

/// Closes a dead worker's job channel and returns the jobs still in it.
fn unsent(jobs: &mut mpsc::UnboundedReceiver<Job>) -> Vec<Token> {
    jobs.close();
    let mut out = vec![];
    while let Ok(j) = jobs.try_recv() {
        out.push(j.token);
    }
    out
}
