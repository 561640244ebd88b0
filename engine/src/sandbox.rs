//! What keeps a node's processes in their place: input artifacts they cannot write, and no
//! process that outlives its node or its run.
//!
//! - [`ReadOnlyView`]: a child process (a `shell` command) sees its input artifacts through
//!   read-only bind mounts in a mount namespace of its own, so not even root can change a
//!   committed artifact through them. Where the process may not create a namespace (not
//!   root), the store's own permissions (read-only files and directories) apply.
//! - [`become_subreaper`] / [`kill_descendants`]: a worker adopts the orphans of what its
//!   nodes start, and kills every process left when a node ends (a command's `… &`).
//! - [`die_with_parent`]: when the scheduler dies (even by `kill -9`), each worker takes its
//!   whole process group down with it.
//! - [`processes_of_run`]: what an earlier session of a run left running, found by the
//!   `ZEST_RUN_ID` in their environment, for `zest resume` to stop.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Paths a child process sees read-only. Build it before spawning; call
/// [`ReadOnlyView::apply`] in the child (`pre_exec`).
#[derive(Debug, Clone, Default)]
pub struct ReadOnlyView {
    paths: Vec<CString>,
}

impl ReadOnlyView {
    /// A view in which each of `paths` (existing directories or files) is read-only.
    pub fn new(paths: &[PathBuf]) -> Self {
        let mut paths: Vec<CString> = paths
            .iter()
            .filter(|p| p.exists())
            .filter_map(|p| CString::new(p.as_os_str().as_bytes()).ok())
            .collect();
        paths.sort();
        paths.dedup();
        ReadOnlyView { paths }
    }

    /// In the child, after `fork` and before `exec`: a private mount namespace in which
    /// every path is bind-mounted onto itself read-only. Only async-signal-safe system
    /// calls. Where namespaces are not allowed (EPERM), nothing changes and the store's
    /// permissions are what protects it; other failures are returned.
    ///
    /// # Safety
    /// Call only in a forked child before `exec` (it changes the calling process's mounts).
    pub unsafe fn apply(&self) -> io::Result<()> {
        if self.paths.is_empty() {
            return Ok(());
        }
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EINVAL) | Some(libc::ENOSYS) => Ok(()),
                _ => Err(e),
            };
        }
        let root = c"/";
        // Mounts made here must not propagate back to the machine.
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        for p in &self.paths {
            if libc::mount(
                p.as_ptr(),
                p.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ) != 0
                || libc::mount(
                    std::ptr::null(),
                    p.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                    std::ptr::null(),
                ) != 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Makes this process the reaper of its orphaned descendants, so that [`kill_descendants`]
/// finds processes whose parent has exited.
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
}

/// The direct children of this process (all its threads'), from `/proc`.
fn children() -> Vec<libc::pid_t> {
    let mut out = vec![];
    let me = std::process::id();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(
                    s.split_whitespace()
                        .filter_map(|p| p.parse::<libc::pid_t>().ok()),
                );
            }
        }
        if !out.is_empty() || Path::new(&format!("/proc/{me}/task/{me}/children")).exists() {
            out.sort();
            out.dedup();
            return out;
        }
    }
    // Kernels without `children` files: scan every process's parent.
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) {
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(me) {
                out.push(pid);
            }
        }
    }
    out
}

/// Kills every process descended from this one (with [`become_subreaper`], also those whose
/// parent already exited) and reaps them. Returns how many were killed. Bounded: gives up
/// after a second of processes that keep appearing.
pub fn kill_descendants() -> usize {
    let mut killed = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let kids = children();
        if kids.is_empty() || std::time::Instant::now() > deadline {
            return killed;
        }
        for pid in kids {
            unsafe {
                // Its own group first (a child that made one), then itself.
                if libc::getpgid(pid) == pid {
                    libc::kill(-pid, libc::SIGKILL);
                }
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            killed += 1;
        }
    }
}

extern "C" fn on_parent_death(_: libc::c_int) {
    unsafe {
        // The whole process group: this worker and everything its nodes started.
        libc::kill(0, libc::SIGKILL);
    }
}

/// Arranges for this process's whole process group to be killed when its parent (the
/// scheduler) dies, however it dies. Call first thing in a worker, which leads its own
/// process group.
pub fn die_with_parent() {
    #[cfg(target_os = "linux")]
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_parent_death as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGHUP, &sa, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGHUP);
    }
}

/// Processes (other than this one) whose environment says they belong to run `run_id`
/// (`ZEST_RUN_ID`, which workers and node commands inherit). Processes of a cluster
/// executor's job (`ZEST_CLUSTER_JOB`, on a cluster node that is also this machine) are not
/// among them: the cluster owns them, and a resumed run attaches to their job.
pub fn processes_of_run(run_id: &str) -> Vec<u32> {
    let needle = format!("ZEST_RUN_ID={run_id}");
    let cluster = b"ZEST_CLUSTER_JOB=";
    let me = std::process::id();
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(env) = std::fs::read(e.path().join("environ")) {
            let mut vars = env.split(|b| *b == 0);
            if vars.clone().any(|kv| kv == needle.as_bytes())
                && !vars.any(|kv| kv.starts_with(cluster))
            {
                out.push(pid);
            }
        }
    }
    out
}

/// Kills the processes of run `run_id` ([`processes_of_run`]) and waits (up to `wait`) until
/// they are gone. Returns how many there were.
pub fn stop_run_processes(run_id: &str, wait: std::time::Duration) -> usize {
    let found = processes_of_run(run_id);
    for pid in &found {
        unsafe {
            libc::kill(*pid as libc::pid_t, libc::SIGKILL);
        }
    }
    let deadline = std::time::Instant::now() + wait;
    while !processes_of_run(run_id).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    found.len()
}

/// The resident memory, in bytes, of every process in process group `pgid` (a worker and
/// what its node started), from `/proc`.
pub fn group_rss(pgid: u32) -> u64 {
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let mut total = 0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if !e
            .file_name()
            .to_str()
            .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Fields after the command's closing parenthesis: state, ppid, pgrp, …, rss (22nd).
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            total += f.get(21).and_then(|r| r.parse::<u64>().ok()).unwrap_or(0) * page;
        }
    }
    total
}
