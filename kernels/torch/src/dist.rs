//! Data-parallel collectives over libtorch's own c10d: a process group (Gloo for CPU tensors)
//! and the collectives data-parallel training needs (sum all-reduce, broadcast, barrier).
//!
//! tch exposes no distributed API, so `csrc/dist.cpp` is a small C shim over
//! `c10d::ProcessGroupGloo` and `c10d::TCPStore` as they are compiled into the torch wheel's
//! `libtorch_cpu.so`. Processes find each other the way `torchrun` starts them: `RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR` and `MASTER_PORT` ([`Launch::from_env`]); rank 0
//! hosts the store. Collectives must be issued in the same order on every rank, from one
//! thread per group.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use tch::Tensor;

extern "C" {
    fn zest_dist_init(
        backend: *const c_char,
        master_addr: *const c_char,
        master_port: c_int,
        rank: c_int,
        world_size: c_int,
        device_index: c_int,
        timeout_ms: c_int,
        out_pg: *mut *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn zest_dist_all_reduce_sum(
        pg: *mut c_void,
        tensors: *const *mut c_void,
        n: usize,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn zest_dist_broadcast(
        pg: *mut c_void,
        tensors: *const *mut c_void,
        n: usize,
        root: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn zest_dist_barrier(pg: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    fn zest_dist_free(pg: *mut c_void);
}

/// A collective or the rendezvous failed.
#[derive(Debug, thiserror::Error)]
#[error("c10d {what}: {message}")]
pub struct DistError {
    /// What was being done (`init`, `all_reduce`, ...).
    pub what: &'static str,
    /// libtorch's message.
    pub message: String,
}

/// Where this process is in a data-parallel launch (torchrun's environment conventions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// This process's rank, `0..world_size`.
    pub rank: usize,
    /// How many processes train together.
    pub world_size: usize,
    /// This process's rank on its machine (its device index on a GPU machine).
    pub local_rank: usize,
    /// The host of rank 0, which hosts the rendezvous store.
    pub master_addr: String,
    /// The store's port.
    pub master_port: u16,
}

impl Launch {
    /// Reads `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR` and `MASTER_PORT`; `None` when
    /// `WORLD_SIZE` is unset (a single process), an error naming the variable when one is
    /// missing or malformed.
    pub fn from_env() -> Result<Option<Launch>, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`Launch::from_env`] over any lookup (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Launch>, String> {
        let Some(world) = get("WORLD_SIZE") else {
            return Ok(None);
        };
        let num = |k: &str, v: Option<String>| -> Result<usize, String> {
            let v = v.ok_or_else(|| format!("{k} is not set (WORLD_SIZE is)"))?;
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("{k}={v} is not a number"))
        };
        let world_size = num("WORLD_SIZE", Some(world))?;
        if world_size == 0 {
            return Err("WORLD_SIZE must be at least 1".into());
        }
        let rank = num("RANK", get("RANK"))?;
        if rank >= world_size {
            return Err(format!("RANK={rank} is not below WORLD_SIZE={world_size}"));
        }
        let local_rank = match get("LOCAL_RANK") {
            Some(v) => num("LOCAL_RANK", Some(v))?,
            None => rank,
        };
        let master_addr = get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let port = num("MASTER_PORT", get("MASTER_PORT"))?;
        let master_port = u16::try_from(port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("MASTER_PORT={port} is not a port"))?;
        Ok(Some(Launch {
            rank,
            world_size,
            local_rank,
            master_addr,
            master_port,
        }))
    }
}

/// A c10d process group.
pub struct ProcessGroup {
    pg: *mut c_void,
    rank: usize,
    world_size: usize,
}

// The group is used from one thread at a time (`&mut self`); moving it between threads is
// fine.
unsafe impl Send for ProcessGroup {}

const ERR_LEN: usize = 4096;

fn call(what: &'static str, f: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<(), DistError> {
    let mut err = vec![0 as c_char; ERR_LEN];
    if f(err.as_mut_ptr(), ERR_LEN) == 0 {
        return Ok(());
    }
    let message = unsafe { CStr::from_ptr(err.as_ptr()) }
        .to_string_lossy()
        .trim()
        .to_string();
    Err(DistError { what, message })
}

impl ProcessGroup {
    /// Joins the Gloo process group of `launch` (CPU tensors); waits for every rank, up to
    /// `timeout` for the rendezvous and for each collective.
    pub fn gloo(launch: &Launch, timeout: std::time::Duration) -> Result<Self, DistError> {
        let backend = CString::new("gloo").expect("no NUL");
        let addr = CString::new(launch.master_addr.as_str()).map_err(|_| DistError {
            what: "init",
            message: "MASTER_ADDR holds a NUL byte".into(),
        })?;
        let mut pg: *mut c_void = std::ptr::null_mut();
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        call("init", |err, len| unsafe {
            zest_dist_init(
                backend.as_ptr(),
                addr.as_ptr(),
                c_int::from(launch.master_port),
                launch.rank as c_int,
                launch.world_size as c_int,
                -1,
                ms,
                &mut pg,
                err,
                len,
            )
        })?;
        Ok(ProcessGroup {
            pg,
            rank: launch.rank,
            world_size: launch.world_size,
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of processes in the group.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    fn pointers(tensors: &[&Tensor]) -> Vec<*mut c_void> {
        tensors.iter().map(|t| t.as_ptr() as *mut c_void).collect()
    }

    /// Replaces every tensor with its sum over all ranks, in place (small tensors travel
    /// packed together, large ones one collective each).
    pub fn all_reduce_sum(&mut self, tensors: &[&Tensor]) -> Result<(), DistError> {
        let ptrs = Self::pointers(tensors);
        call("all_reduce", |err, len| unsafe {
            zest_dist_all_reduce_sum(self.pg, ptrs.as_ptr(), ptrs.len(), err, len)
        })
    }

    /// Replaces every tensor with rank `root`'s, in place.
    pub fn broadcast(&mut self, tensors: &[&Tensor], root: usize) -> Result<(), DistError> {
        let ptrs = Self::pointers(tensors);
        call("broadcast", |err, len| unsafe {
            zest_dist_broadcast(self.pg, ptrs.as_ptr(), ptrs.len(), root as c_int, err, len)
        })
    }

    /// Waits until every rank has reached this point.
    pub fn barrier(&mut self) -> Result<(), DistError> {
        call("barrier", |err, len| unsafe {
            zest_dist_barrier(self.pg, err, len)
        })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        unsafe { zest_dist_free(self.pg) }
    }
}

/// Data-parallel training over a process group, the way PyTorch's DDP does it: every rank
/// starts from rank 0's weights, computes gradients over its part of each step's batch with
/// the loss divided by the whole step's normaliser, and the gradients are summed over the
/// ranks before the optimiser steps (which every rank then takes identically).
pub struct DataParallel {
    pg: ProcessGroup,
}

impl DataParallel {
    /// Joins the group of `launch` over Gloo; waits up to `timeout` for the others here and
    /// in every collective.
    pub fn join(launch: &Launch, timeout: std::time::Duration) -> Result<Self, DistError> {
        Ok(DataParallel {
            pg: ProcessGroup::gloo(launch, timeout)?,
        })
    }

    /// Gives every rank rank 0's `params`. Each parameter that takes gradients is given a
    /// zero gradient if it has none, so that every rank reduces the same tensors even on a
    /// step where it has no examples.
    pub fn share_parameters(&mut self, params: &[(String, Tensor)]) -> Result<(), DistError> {
        let tensors: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
        tch::no_grad(|| self.pg.broadcast(&tensors, 0))?;
        let unset: Vec<&Tensor> = tensors
            .iter()
            .copied()
            .filter(|t| t.requires_grad() && !t.grad().defined())
            .collect();
        if let Some(zero) = unset
            .iter()
            .map(|t| (t.sum(t.kind()) * 0.0).to_kind(tch::Kind::Float))
            .reduce(|a, b| a + b)
        {
            zero.backward();
        }
        Ok(())
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.pg.rank()
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.pg.world_size()
    }

    /// Sums the gradients of `params` over the ranks, in place.
    pub fn all_reduce_gradients(&mut self, params: &[(String, Tensor)]) -> Result<(), DistError> {
        let grads: Vec<Tensor> = params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .collect();
        let refs: Vec<&Tensor> = grads.iter().collect();
        tch::no_grad(|| self.pg.all_reduce_sum(&refs))
    }

    /// Sums `values` over the ranks (losses, token counts), in place, in float64.
    pub fn sum(&mut self, values: &mut [f64]) -> Result<(), DistError> {
        if values.is_empty() {
            return Ok(());
        }
        let t = Tensor::from_slice(values);
        self.pg.all_reduce_sum(&[&t])?;
        let out = Vec::<f64>::try_from(&t).map_err(|e| DistError {
            what: "all_reduce",
            message: e.to_string(),
        })?;
        values.copy_from_slice(&out);
        Ok(())
    }

    /// Checks that every rank holds the same `value` (a step counter after resuming, say):
    /// an error says which values the ranks hold.
    pub fn agree(&mut self, what: &'static str, value: u64) -> Result<(), DistError> {
        let n = self.world_size();
        let mut slots = vec![0.0; n];
        slots[self.rank()] = value as f64;
        self.sum(&mut slots)?;
        if slots.iter().all(|v| *v == value as f64) {
            return Ok(());
        }
        Err(DistError {
            what,
            message: format!(
                "the ranks disagree: {}",
                slots
                    .iter()
                    .enumerate()
                    .map(|(r, v)| format!("rank {r} has {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// Waits until every rank has reached this point.
    pub fn barrier(&mut self) -> Result<(), DistError> {
        self.pg.barrier()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launch_is_read_as_torchrun_writes_it() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Launch::from_lookup(env(&[])).unwrap(), None);
        let l = Launch::from_lookup(env(&[
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "10.0.0.2"),
            ("MASTER_PORT", "29500"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (l.rank, l.world_size, l.local_rank, l.master_port),
            (3, 4, 1, 29500)
        );
        assert_eq!(l.master_addr, "10.0.0.2");
        let e = Launch::from_lookup(env(&[
            ("WORLD_SIZE", "2"),
            ("RANK", "2"),
            ("MASTER_PORT", "1"),
        ]))
        .unwrap_err();
        assert!(e.contains("not below WORLD_SIZE"), "{e}");
        let e = Launch::from_lookup(env(&[("WORLD_SIZE", "2"), ("RANK", "0")])).unwrap_err();
        assert!(e.contains("MASTER_PORT is not set"), "{e}");
    }

    #[test]
    fn a_group_of_one_reduces_to_itself() {
        let launch = Launch {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            master_addr: "127.0.0.1".into(),
            master_port: 20000 + (std::process::id() % 5000) as u16,
        };
        let mut pg = ProcessGroup::gloo(&launch, std::time::Duration::from_secs(30)).unwrap();
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        pg.all_reduce_sum(&[&t]).unwrap();
        assert_eq!(Vec::<f32>::try_from(&t).unwrap(), vec![1.0, 2.0, 3.0]);
        pg.barrier().unwrap();
    }
}
