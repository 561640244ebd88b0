//! Data-parallel nodes: an operator whose config asks for N processes
//! ([`Operator::processes`](crate::operator::Operator::processes)) runs as N ranks that train
//! together, the way `torchrun --nproc-per-node N` starts them. The worker that executes the
//! node is rank 0: it starts ranks 1…N−1 as `node rank` processes of its own binary, with
//! torchrun's environment (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
//! `MASTER_PORT`), then runs the operator itself. Every rank reads the same inputs; only
//! rank 0 writes checkpoints and commits outputs, so the store sees one node attempt.
//!
//! The other ranks' standard error (warnings, errors, panics) goes to the node's log; their
//! standard output (progress that rank 0 also prints) does not. When a rank fails, the
//! others are stopped, and the attempt fails naming the rank.

use crate::worker::Task;
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The most processes one node may ask for on one machine.
pub const MAX_PROCESSES: usize = 64;

/// How long rank 0 has to stop by itself once another rank has failed.
const LEADER_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Where this process is among the ranks of a data-parallel node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rank {
    /// This process's rank, `0..world_size`.
    pub rank: usize,
    /// How many processes train together.
    pub world_size: usize,
    /// This process's rank on its machine (its device index on a GPU machine).
    pub local_rank: usize,
    /// The host of rank 0, which hosts the rendezvous store.
    pub master_addr: String,
    /// The rendezvous store's port.
    pub master_port: u16,
}

impl Rank {
    /// Whether this is rank 0, the one that saves checkpoints and commits outputs.
    pub fn is_leader(&self) -> bool {
        self.rank == 0
    }

    /// torchrun's environment variables for this rank.
    pub fn env(&self) -> [(&'static str, String); 5] {
        [
            ("RANK", self.rank.to_string()),
            ("WORLD_SIZE", self.world_size.to_string()),
            ("LOCAL_RANK", self.local_rank.to_string()),
            ("MASTER_ADDR", self.master_addr.clone()),
            ("MASTER_PORT", self.master_port.to_string()),
        ]
    }

    /// Reads this process's rank from torchrun's environment variables; an error names the
    /// variable that is missing or malformed.
    pub fn from_env() -> Result<Rank> {
        let get = |k: &str| std::env::var(k).map_err(|_| anyhow!("{k} is not set"));
        let num = |k: &str| -> Result<usize> {
            let v = get(k)?;
            v.trim()
                .parse()
                .map_err(|_| anyhow!("{k}={v} is not a number"))
        };
        let (rank, world_size) = (num("RANK")?, num("WORLD_SIZE")?);
        if rank >= world_size {
            return Err(anyhow!("RANK={rank} is not below WORLD_SIZE={world_size}"));
        }
        let port = num("MASTER_PORT")?;
        Ok(Rank {
            rank,
            world_size,
            local_rank: num("LOCAL_RANK").unwrap_or(rank),
            master_addr: get("MASTER_ADDR").unwrap_or_else(|_| "127.0.0.1".into()),
            master_port: u16::try_from(port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| anyhow!("MASTER_PORT={port} is not a port"))?,
        })
    }
}

/// A port on the loopback interface that nothing listens on now (the rendezvous store's).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("cannot find a free port for the ranks' rendezvous")?;
    Ok(l.local_addr()?.port())
}

/// How a follower rank ended.
#[derive(Debug, Clone)]
enum Exit {
    Running,
    Ok,
    Failed(String),
}

/// Ranks 1…N−1 of a node, started by rank 0.
pub struct Followers {
    children: Arc<Mutex<Vec<(usize, Child, Exit)>>>,
    task_file: PathBuf,
    watcher: Option<std::thread::JoinHandle<()>>,
    done: Arc<std::sync::atomic::AtomicBool>,
}

/// Starts ranks 1…`n`−1 of `task` as `exe node rank --task FILE` on this machine and returns
/// rank 0's place with them. `scratch` is where the task file for them is written.
pub fn launch(task: &Task, n: usize, exe: &Path, scratch: &Path) -> Result<(Rank, Followers)> {
    if !(2..=MAX_PROCESSES).contains(&n) {
        return Err(anyhow!(
            "a node runs on 2 to {MAX_PROCESSES} processes, not {n}"
        ));
    }
    let leader = Rank {
        rank: 0,
        world_size: n,
        local_rank: 0,
        master_addr: "127.0.0.1".into(),
        master_port: free_port()?,
    };
    let task_file = scratch.join("rank-task.json");
    std::fs::create_dir_all(scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    std::fs::write(&task_file, serde_json::to_vec(task)?)
        .with_context(|| format!("cannot write {}", task_file.display()))?;
    let mut children = vec![];
    let followers = |children: Vec<(usize, Child, Exit)>| Followers {
        children: Arc::new(Mutex::new(children)),
        task_file: task_file.clone(),
        watcher: None,
        done: Arc::default(),
    };
    for r in 1..n {
        let rank = Rank {
            rank: r,
            local_rank: r,
            ..leader.clone()
        };
        let mut cmd = Command::new(exe);
        cmd.args(["node", "rank", "--task"])
            .arg(&task_file)
            .envs(rank.env())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match cmd.spawn() {
            Ok(child) => children.push((r, child, Exit::Running)),
            Err(e) => {
                let mut f = followers(children);
                f.stop();
                return Err(anyhow!("cannot start rank {r} ({}): {e}", exe.display()));
            }
        }
    }
    let mut f = followers(children);
    f.watch();
    Ok((leader, f))
}

impl Followers {
    /// Watches the ranks: when one fails, the others are stopped, so that none waits for it
    /// in a collective until the timeout.
    fn watch(&mut self) {
        let (children, done) = (self.children.clone(), self.done.clone());
        self.watcher = std::thread::Builder::new()
            .name("zest-ranks".into())
            .spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    let mut failed = false;
                    {
                        let mut cs = children.lock().unwrap_or_else(|e| e.into_inner());
                        for (r, child, exit) in cs.iter_mut() {
                            if !matches!(exit, Exit::Running) {
                                continue;
                            }
                            if let Ok(Some(status)) = child.try_wait() {
                                *exit = if status.success() {
                                    Exit::Ok
                                } else {
                                    failed = true;
                                    Exit::Failed(format!("rank {r} {}", describe(status)))
                                };
                            }
                        }
                        if failed {
                            kill_running(&mut cs);
                        }
                    }
                    if failed {
                        // Rank 0 notices a dead peer in its next collective; one that
                        // waits in the rendezvous would wait until the timeout. Like
                        // torchrun, end the whole group instead.
                        let t0 = std::time::Instant::now();
                        while !done.load(std::sync::atomic::Ordering::Acquire) {
                            if t0.elapsed() >= LEADER_GRACE {
                                eprintln!(
                                    "a rank failed and rank 0 has not stopped within {} s: \
                                     ending the node's worker",
                                    LEADER_GRACE.as_secs()
                                );
                                crate::sandbox::kill_descendants();
                                unsafe { libc::_exit(1) };
                            }
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            })
            .ok();
    }

    fn join_watcher(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Release);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }

    /// Stops every rank still running (rank 0 failed).
    pub fn stop(&mut self) {
        self.join_watcher();
        let mut cs = self.children.lock().unwrap_or_else(|e| e.into_inner());
        kill_running(&mut cs);
        for (_, child, _) in cs.iter_mut() {
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.task_file);
    }

    /// Waits for every rank to end (rank 0 succeeded); an error names each rank that failed.
    pub fn wait(mut self) -> Result<()> {
        self.join_watcher();
        let mut failures = vec![];
        {
            let mut cs = self.children.lock().unwrap_or_else(|e| e.into_inner());
            for (r, child, exit) in cs.iter_mut() {
                if matches!(exit, Exit::Running) {
                    *exit = match child.wait() {
                        Ok(s) if s.success() => Exit::Ok,
                        Ok(s) => Exit::Failed(format!("rank {r} {}", describe(s))),
                        Err(e) => Exit::Failed(format!("rank {r}: cannot wait for it: {e}")),
                    };
                }
                if let Exit::Failed(m) = exit {
                    failures.push(m.clone());
                }
            }
        }
        let _ = std::fs::remove_file(&self.task_file);
        if failures.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(
                "{} (its error is in the node's log)",
                failures.join("; ")
            ))
        }
    }

    /// What failed among the ranks so far, if anything (to explain rank 0's own error).
    pub fn failures(&self) -> Vec<String> {
        let cs = self.children.lock().unwrap_or_else(|e| e.into_inner());
        cs.iter()
            .filter_map(|(_, _, e)| match e {
                Exit::Failed(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

impl Drop for Followers {
    fn drop(&mut self) {
        self.join_watcher();
        let mut cs = self.children.lock().unwrap_or_else(|e| e.into_inner());
        kill_running(&mut cs);
        for (_, child, _) in cs.iter_mut() {
            let _ = child.wait();
        }
    }
}

fn kill_running(cs: &mut [(usize, Child, Exit)]) {
    for (_, child, exit) in cs.iter_mut() {
        if matches!(exit, Exit::Running) {
            if let Ok(Some(_)) = child.try_wait() {
                continue;
            }
            let _ = child.kill();
        }
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "ended".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_torchruns() {
        let r = Rank {
            rank: 1,
            world_size: 2,
            local_rank: 1,
            master_addr: "127.0.0.1".into(),
            master_port: 29500,
        };
        let env: Vec<(&str, String)> = r.env().into_iter().collect();
        assert!(env.contains(&("RANK", "1".into())));
        assert!(env.contains(&("WORLD_SIZE", "2".into())));
        assert!(env.contains(&("MASTER_PORT", "29500".into())));
        assert!(!r.is_leader());
    }

    #[test]
    fn a_launch_asks_for_two_to_the_most_processes() {
        let e = launch_err(1);
        assert!(e.contains("2 to 64 processes, not 1"), "{e}");
        let e = launch_err(MAX_PROCESSES + 1);
        assert!(e.contains("not 65"), "{e}");
    }

    fn launch_err(n: usize) -> String {
        let task: Task = serde_json::from_value(serde_json::json!({
            "run_id": "r", "dag": "d", "node": "n", "op": "noop", "config": null,
            "cache_key": "k", "attempt": 1, "inputs": {}, "outputs": [],
            "store": {"url": "/tmp/x", "s3": {}, "download_dir": "/tmp/x"},
            "scratch": "/tmp/x", "log": "/tmp/x.log", "env": {}, "trace_id": "", "span_id": ""
        }))
        .unwrap();
        match launch(&task, n, Path::new("/bin/true"), Path::new("/tmp")) {
            Ok(_) => panic!("launched {n}"),
            Err(e) => e.to_string(),
        }
    }
}
