//! The scheduler's side of worker processes: spawning, sending tasks, timeouts, killing,
//! and telling how a worker died.

use crate::worker::{Task, TaskResult};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

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

/// A running `zest node worker` process.
pub struct WorkerProc {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    pid: u32,
    /// The environment it was started with (workers are reused only for equal environments).
    pub env: BTreeMap<String, String>,
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
            stdin,
            stdout,
            pid,
            env: env.clone(),
        })
    }

    /// Sends a task and waits for its result, the worker's death, the timeout or
    /// cancellation. Returns the worker if it can take another task.
    pub async fn run(
        self,
        task: &Task,
        timeout: Option<Duration>,
        cancel: tokio::sync::watch::Receiver<bool>,
    ) -> (Outcome, Option<Self>) {
        let pid = self.pid;
        let (outcome, worker) = self.run_inner(task, timeout, cancel).await;
        if worker.is_none() {
            // What the node printed before the worker went is in the worker's spool.
            crate::worker::recover_spool(&task.log, pid);
        }
        (outcome, worker)
    }

    async fn run_inner(
        mut self,
        task: &Task,
        timeout: Option<Duration>,
        mut cancel: tokio::sync::watch::Receiver<bool>,
    ) -> (Outcome, Option<Self>) {
        let mut line = match serde_json::to_vec(task) {
            Ok(l) => l,
            Err(e) => {
                return (
                    Outcome::Died(format!("cannot encode task: {e}")),
                    Some(self),
                )
            }
        };
        line.push(b'\n');
        if let Err(e) = self.stdin.write_all(&line).await {
            let how = self.death().await;
            return (
                Outcome::Died(format!("{how} (sending the task failed: {e})")),
                None,
            );
        }
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = self.stdout.next_line() => match r {
                Ok(Some(l)) => match serde_json::from_str::<TaskResult>(&l) {
                    Ok(res) => (Outcome::Done(res), Some(self)),
                    Err(e) => {
                        self.kill().await;
                        (Outcome::Died(format!("worker sent a malformed answer: {e}")), None)
                    }
                },
                _ => {
                    let how = self.death().await;
                    (Outcome::Died(how), None)
                }
            },
            _ = deadline => {
                self.kill().await;
                (Outcome::TimedOut(timeout.unwrap_or_default()), None)
            }
            _ = async { while cancel.changed().await.is_ok() { if *cancel.borrow() { return; } } std::future::pending::<()>().await } => {
                self.kill().await;
                (Outcome::Cancelled, None)
            }
        }
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
}

/// Describes a process exit for people: the exit code, or the signal and what it usually means.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        let what = match sig {
            libc::SIGSEGV => "SIGSEGV: segmentation fault",
            libc::SIGABRT => "SIGABRT: aborted",
            libc::SIGKILL => "SIGKILL: killed, e.g. by the kernel's out-of-memory killer",
            libc::SIGBUS => "SIGBUS: bus error",
            libc::SIGFPE => "SIGFPE: arithmetic error",
            libc::SIGILL => "SIGILL: illegal instruction",
            libc::SIGTERM => "SIGTERM: terminated",
            _ => "signal",
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

/// Idle workers, reused for tasks that need the same environment.
pub struct Pool {
    exe: PathBuf,
    idle: Vec<WorkerProc>,
}

impl Pool {
    /// A pool that starts workers from `exe` (the zest binary).
    pub fn new(exe: PathBuf) -> Self {
        Pool { exe, idle: vec![] }
    }

    /// An idle worker with environment `env`, or a new one.
    pub fn take(&mut self, env: &BTreeMap<String, String>) -> Result<WorkerProc> {
        if let Some(i) = self.idle.iter().position(|w| &w.env == env) {
            return Ok(self.idle.swap_remove(i));
        }
        WorkerProc::spawn(&self.exe, env)
    }

    /// Returns a healthy worker. Workers with GPUs assigned are not kept.
    pub fn give_back(&mut self, w: WorkerProc) {
        if w.env
            .get("CUDA_VISIBLE_DEVICES")
            .is_some_and(|v| !v.is_empty())
        {
            return;
        }
        self.idle.push(w);
    }

    /// Stops all idle workers (closing stdin ends their loop).
    pub fn shutdown(&mut self) {
        self.idle.clear();
    }
}
