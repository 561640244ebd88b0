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

use crate::store::ArtifactStore;
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

/// The variable that tells a cluster job which of a node's machines it is (0, the first,
/// hosts the rendezvous and commits). The local executor sets none: it runs every
/// machine's processes on this one.
pub const MACHINE_ENV: &str = "ZEST_MACHINE";

/// An address of this machine that a node's other machines can reach (on Kubernetes, the
/// pod's IP); without it, the address this machine reaches the store from is used.
pub const NODE_ADDR_ENV: &str = "ZEST_NODE_ADDR";

/// The most machines one node may ask for.
pub const MAX_MACHINES: usize = 1024;

/// How long the ranks of machines 1… wait for machine 0 to say where it listens.
const RENDEZVOUS_WAIT: std::time::Duration = std::time::Duration::from_secs(1800);

/// Where the ranks of a data-parallel node run: `machines` × `processes` of them, ranks
/// numbered machine by machine (`RANK = machine × processes + LOCAL_RANK`), as torchrun
/// numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Machines that run the node together.
    pub machines: usize,
    /// Processes on each machine.
    pub processes: usize,
    /// Which machine this job is, when the machines are a cluster's jobs; `None` when every
    /// machine's processes run here (the local executor, or one machine).
    pub machine: Option<usize>,
}

impl Placement {
    /// The placement of a node on `machines` × `processes`, with this job's machine read
    /// from [`MACHINE_ENV`]; an error names a malformed or out-of-range value.
    pub fn from_env(machines: usize, processes: usize) -> Result<Placement> {
        let machines = machines.max(1);
        let processes = processes.max(1);
        let machine = match std::env::var(MACHINE_ENV) {
            Ok(v) if machines > 1 && !v.trim().is_empty() => {
                let m: usize = v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("{MACHINE_ENV}={v} is not a number"))?;
                if m >= machines {
                    return Err(anyhow!(
                        "{MACHINE_ENV}={m} is not below the node's {machines} machines"
                    ));
                }
                Some(m)
            }
            _ => None,
        };
        let p = Placement {
            machines,
            processes,
            machine,
        };
        if p.world_size() > 1 {
            if processes > MAX_PROCESSES {
                return Err(anyhow!(
                    "a node runs on at most {MAX_PROCESSES} processes a machine, not {processes}"
                ));
            }
            if machines > MAX_MACHINES {
                return Err(anyhow!(
                    "a node runs on at most {MAX_MACHINES} machines, not {machines}"
                ));
            }
        }
        Ok(p)
    }

    /// How many processes train together.
    pub fn world_size(&self) -> usize {
        self.machines * self.processes
    }

    /// Whether this job is one of machines 1…, which run ranks only (machine 0 commits).
    pub fn is_follower_machine(&self) -> bool {
        self.machine.is_some_and(|m| m > 0)
    }

    /// The ranks that run here: one machine's, or every machine's when they all run here.
    fn ranks_here(&self) -> std::ops::Range<usize> {
        match self.machine {
            Some(m) => m * self.processes..(m + 1) * self.processes,
            None => 0..self.world_size(),
        }
    }
}

/// Where machine 0 of a node's attempt listens for the others' ranks (it puts it in the
/// store for them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendezvous {
    /// Machine 0's address.
    pub addr: String,
    /// The rendezvous store's port there.
    pub port: u16,
}

/// A port that nothing listens on now on `ip` (the rendezvous store's).
pub fn free_port(ip: std::net::IpAddr) -> Result<u16> {
    let l = std::net::TcpListener::bind((ip, 0))
        .context("cannot find a free port for the ranks' rendezvous")?;
    Ok(l.local_addr()?.port())
}

/// An address of this machine that the node's other machines can reach: [`NODE_ADDR_ENV`]
/// when set; else the one this machine reaches the store's endpoint `endpoint` from (a
/// connected UDP socket: nothing is sent); else the first that isn't loopback of those
/// this host's name resolves to; else loopback.
pub fn node_addr(endpoint: Option<&str>) -> String {
    if let Some(a) = std::env::var(NODE_ADDR_ENV)
        .ok()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
    {
        return a;
    }
    let toward = |target: &str| -> Option<std::net::IpAddr> {
        use std::net::ToSocketAddrs;
        let addr = target.to_socket_addrs().ok()?.next()?;
        let any: std::net::IpAddr = if addr.is_ipv4() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        };
        let sock = std::net::UdpSocket::bind((any, 0)).ok()?;
        sock.connect(addr).ok()?;
        Some(sock.local_addr().ok()?.ip())
    };
    if let Some(ip) = endpoint.and_then(endpoint_host).and_then(|h| toward(&h)) {
        return ip.to_string();
    }
    let mut name = [0u8; 256];
    if unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } == 0 {
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        if let Ok(host) = std::str::from_utf8(&name[..end]) {
            use std::net::ToSocketAddrs;
            if let Ok(addrs) = (host, 0).to_socket_addrs() {
                let mut addrs: Vec<_> = addrs.map(|a| a.ip()).collect();
                addrs.sort_by_key(|a| !a.is_ipv4());
                if let Some(ip) = addrs.into_iter().find(|a| !a.is_loopback()) {
                    return ip.to_string();
                }
            }
        }
    }
    "127.0.0.1".into()
}

/// `host:port` of an endpoint URL (`http://10.0.0.5:8333` → `10.0.0.5:8333`).
fn endpoint_host(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    let port = u.port_or_known_default()?;
    Some(if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// Puts machine 0's rendezvous where the other machines' jobs look for it (`key` in `store`).
pub async fn publish(store: &ArtifactStore, key: &str, at: &Rendezvous) -> Result<()> {
    store
        .put_json(key, at)
        .await
        .with_context(|| format!("cannot put the ranks' rendezvous in {}", store.url()))
}

/// Waits (bounded) for machine 0's rendezvous at `key` in `store`.
pub async fn wait_for(store: &ArtifactStore, key: &str) -> Result<Rendezvous> {
    let t0 = std::time::Instant::now();
    let mut failures = 0;
    loop {
        match store.get_json::<Rendezvous>(key).await {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => failures = 0,
            Err(e) => {
                failures += 1;
                if failures >= 30 {
                    return Err(e.context("cannot read the ranks' rendezvous from the store"));
                }
            }
        }
        if t0.elapsed() >= RENDEZVOUS_WAIT {
            return Err(anyhow!(
                "machine 0 of this node did not say where it listens within {} s",
                RENDEZVOUS_WAIT.as_secs()
            ));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// How a follower rank ended.
#[derive(Debug, Clone)]
enum Exit {
    Running,
    Ok,
    Failed(String),
}

/// The ranks of a node that this process started (all but rank 0 on machine 0; all of
/// its machine's on machines 1…).
pub struct Followers {
    children: Arc<Mutex<Vec<(usize, Child, Exit)>>>,
    task_file: PathBuf,
    watcher: Option<std::thread::JoinHandle<()>>,
    done: Arc<std::sync::atomic::AtomicBool>,
}

/// Starts the ranks of `task` placed here by `place` as `exe node rank --task FILE`, every
/// one meeting at `master` (machine 0's rendezvous), and returns the rank this process runs
/// itself, rank 0, on machine 0 (`None` on machines 1…, whose ranks are all started here).
/// `scratch` is where the task file for them is written.
pub fn launch(
    task: &Task,
    place: Placement,
    master: &Rendezvous,
    exe: &Path,
    scratch: &Path,
) -> Result<(Option<Rank>, Followers)> {
    if place.world_size() < 2 {
        return Err(anyhow!(
            "a data-parallel node runs on 2 processes or more, not {}",
            place.world_size()
        ));
    }
    let here = place.ranks_here();
    let first = here.start;
    let rank = |r: usize| Rank {
        rank: r,
        world_size: place.world_size(),
        local_rank: r - first,
        master_addr: master.addr.clone(),
        master_port: master.port,
    };
    let own = (first == 0).then(|| rank(0));
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
    for r in here.filter(|r| *r != 0) {
        let mut cmd = Command::new(exe);
        cmd.args(["node", "rank", "--task"])
            .arg(&task_file)
            .envs(rank(r).env())
            .stdin(Stdio::null())
            // Rank 0 prints the node's progress; a machine without it prints its first
            // rank's.
            .stdout(if r == first && first > 0 {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        match cmd.spawn() {
            Ok(child) => children.push((r, child, Exit::Running)),
            Err(e) => {
                drop(followers(children));
                let _ = std::fs::remove_file(&task_file);
                return Err(anyhow!("cannot start rank {r} ({}): {e}", exe.display()));
            }
        }
    }
    let mut f = followers(children);
    f.watch(own.is_some());
    Ok((own, f))
}

impl Followers {
    /// Watches the ranks: when one fails, the others are stopped, so that none waits for it
    /// in a collective until the timeout; and when rank 0 runs in this process
    /// (`leader_here`), the process is ended if rank 0 does not stop by itself.
    fn watch(&mut self, leader_here: bool) {
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
                    if failed && !leader_here {
                        return;
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
    pub fn stop(self) {
        drop(self);
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
        let _ = std::fs::remove_file(&self.task_file);
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
    fn ranks_are_numbered_machine_by_machine_and_checked() {
        let p = |machines, processes, machine| Placement {
            machines,
            processes,
            machine,
        };
        assert_eq!(p(2, 4, Some(1)).ranks_here(), 4..8);
        assert_eq!(p(2, 4, Some(0)).ranks_here(), 0..4);
        assert_eq!(p(2, 4, None).ranks_here(), 0..8);
        assert!(p(3, 1, Some(2)).is_follower_machine());
        assert!(!p(3, 1, Some(0)).is_follower_machine());
        assert!(!p(3, 1, None).is_follower_machine());
        std::env::set_var(MACHINE_ENV, "1");
        assert_eq!(Placement::from_env(2, 2).unwrap(), p(2, 2, Some(1)));
        // One machine runs here whatever the job says.
        assert_eq!(Placement::from_env(1, 2).unwrap(), p(1, 2, None));
        let e = Placement::from_env(1, MAX_PROCESSES + 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 64 processes a machine, not 65"), "{e}");
        std::env::set_var(MACHINE_ENV, "2");
        let e = Placement::from_env(2, 1).unwrap_err().to_string();
        assert!(
            e.contains("ZEST_MACHINE=2 is not below the node's 2 machines"),
            "{e}"
        );
        std::env::set_var(MACHINE_ENV, "x");
        let e = Placement::from_env(2, 1).unwrap_err().to_string();
        assert!(e.contains("ZEST_MACHINE=x is not a number"), "{e}");
        std::env::remove_var(MACHINE_ENV);
        assert_eq!(Placement::from_env(2, 2).unwrap(), p(2, 2, None));
        let e = launch_err(p(1, 1, None));
        assert!(e.contains("2 processes or more, not 1"), "{e}");
    }

    #[test]
    fn the_node_address_is_the_one_that_reaches_the_store() {
        assert_eq!(
            endpoint_host("http://127.0.0.1:8333").as_deref(),
            Some("127.0.0.1:8333")
        );
        assert_eq!(
            endpoint_host("https://s3.example.com").as_deref(),
            Some("s3.example.com:443")
        );
        assert_eq!(node_addr(Some("http://127.0.0.1:8333")), "127.0.0.1");
        std::env::set_var(NODE_ADDR_ENV, "10.1.2.3");
        assert_eq!(node_addr(Some("http://127.0.0.1:8333")), "10.1.2.3");
        std::env::remove_var(NODE_ADDR_ENV);
    }

    fn launch_err(place: Placement) -> String {
        let task: Task = serde_json::from_value(serde_json::json!({
            "run_id": "r", "dag": "d", "node": "n", "op": "noop", "config": null,
            "cache_key": "k", "attempt": 1, "inputs": {}, "outputs": [],
            "store": {"url": "/tmp/x", "s3": {}, "download_dir": "/tmp/x"},
            "scratch": "/tmp/x", "log": "/tmp/x.log", "env": {}, "trace_id": "", "span_id": ""
        }))
        .unwrap();
        let at = Rendezvous {
            addr: "127.0.0.1".into(),
            port: 1,
        };
        match launch(&task, place, &at, Path::new("/bin/true"), Path::new("/tmp")) {
            Ok(_) => panic!("launched {place:?}"),
            Err(e) => e.to_string(),
        }
    }
}
