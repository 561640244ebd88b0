//! What the run's CPUs, memory and GPUs have left, and what a node takes of them.

use super::ExecOptions;
use crate::plan::Plan;
use crate::spec::Resources;
use anyhow::{bail, Result};

/// The free part of the run's resources (`--cpus`, `--memory`, `--gpus`).
#[derive(Debug, Clone)]
pub struct Budget {
    cpu: f64,
    memory: u64,
    total_memory: u64,
    gpus: Vec<u32>,
    /// The least CPU any node of the plan needs: below it, nothing can start.
    min_cpu: f64,
    /// Everything fits ([`Budget::unlimited`]).
    unlimited: bool,
}

impl Budget {
    /// The whole of the run's resources, free, for a plan whose smallest node needs
    /// `min_cpu` cores.
    pub fn new(cpu: f64, memory: u64, gpus: Vec<u32>, min_cpu: f64) -> Self {
        Budget {
            cpu,
            memory,
            total_memory: memory,
            gpus,
            min_cpu,
            unlimited: false,
        }
    }

    /// No budget at all: for a cluster executor, whose cluster decides what fits.
    pub fn unlimited() -> Self {
        Budget {
            cpu: f64::INFINITY,
            memory: u64::MAX,
            total_memory: u64::MAX,
            gpus: vec![],
            min_cpu: 0.0,
            unlimited: true,
        }
    }

    /// The budget of `opts` for `plan`.
    pub fn for_plan(plan: &Plan, opts: &ExecOptions) -> Self {
        let min_cpu = plan
            .graph
            .node_weights()
            .map(|n| n.resources.cpu)
            .fold(f64::INFINITY, f64::min);
        Budget::new(opts.cpus, opts.memory, opts.gpus.clone(), min_cpu)
    }

    /// Whether a node needing `r` can start now. Memory 0 is not accounted.
    pub fn fits(&self, r: &Resources) -> bool {
        if self.unlimited {
            return true;
        }
        self.cpu + 1e-9 >= r.cpu
            && (r.memory == 0 || self.memory >= r.memory)
            && self.gpus.len() >= r.gpu as usize
    }

    /// Whether no node of the plan can start until something ends.
    pub fn exhausted(&self) -> bool {
        !self.unlimited && self.cpu + 1e-9 < self.min_cpu
    }

    /// Takes `r`'s CPU, memory and GPUs; returns the GPUs taken (the lowest free indices).
    pub fn take(&mut self, r: &Resources) -> Vec<u32> {
        if self.unlimited {
            return vec![];
        }
        self.cpu -= r.cpu;
        self.memory = self.memory.saturating_sub(r.memory);
        self.gpus.drain(..r.gpu as usize).collect()
    }

    /// Gives back what [`Budget::take`] took for `r`, and `gpus`.
    pub fn release(&mut self, r: &Resources, gpus: Vec<u32>) {
        if self.unlimited {
            return;
        }
        self.cpu += r.cpu;
        self.memory = (self.memory + r.memory).min(self.total_memory);
        if !gpus.is_empty() {
            self.gpus.extend(gpus);
            self.gpus.sort();
        }
    }
}

/// Checks that every node fits the machine's budgets at all.
pub fn check_resources(plan: &Plan, opts: &ExecOptions) -> Result<()> {
    let mut problems = vec![];
    for ix in &plan.order {
        let n = &plan.graph[*ix];
        let on_cluster = !matches!(
            opts.executors.profile(opts.profile_name(n)),
            Some(crate::executor::Profile::Local) | None
        );
        if on_cluster {
            continue;
        }
        let r = n.resources;
        if r.cpu > opts.cpus + 1e-9 {
            problems.push(format!(
                "node `{}` needs {} CPU(s) but the run has {} (--cpus)",
                n.id, r.cpu, opts.cpus
            ));
        }
        if r.memory > opts.memory {
            problems.push(format!(
                "node `{}` needs {} of memory but the run has {} (--memory)",
                n.id,
                crate::units::format_bytes(r.memory),
                crate::units::format_bytes(opts.memory)
            ));
        }
        if r.gpu as usize > opts.gpus.len() {
            problems.push(format!(
                "node `{}` needs {} GPU(s) but the run has {} (--gpus)",
                n.id,
                r.gpu,
                opts.gpus.len()
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpu: f64, memory: u64, gpu: u32) -> Resources {
        Resources {
            cpu,
            memory,
            gpu,
            ..Default::default()
        }
    }

    #[test]
    fn takes_and_gives_back() {
        let mut b = Budget::new(2.0, 1000, vec![0, 1, 2], 0.5);
        assert!(b.fits(&res(2.0, 1000, 3)));
        assert!(!b.fits(&res(2.5, 0, 0)));
        let g = b.take(&res(1.0, 600, 2));
        assert_eq!(g, vec![0, 1]);
        assert!(!b.fits(&res(1.0, 600, 0)), "memory");
        assert!(b.fits(&res(1.0, 0, 1)), "memory 0 is not accounted");
        assert!(!b.fits(&res(0.5, 0, 2)), "one GPU left");
        let h = b.take(&res(0.75, 0, 1));
        assert_eq!(h, vec![2]);
        assert!(
            b.exhausted(),
            "0.25 cores left, the smallest node needs 0.5"
        );
        b.release(&res(1.0, 600, 2), vec![1, 0]);
        b.release(&res(0.75, 0, 1), h);
        assert!(!b.exhausted());
        assert_eq!(
            b.take(&res(0.0, 0, 3)),
            vec![0, 1, 2],
            "GPUs come back sorted"
        );
        b.release(&res(0.0, 5000, 0), vec![]);
        assert!(
            !b.fits(&res(0.0, 1001, 0)),
            "never more memory than the run has"
        );
        let mut u = Budget::unlimited();
        assert!(u.fits(&res(1e6, u64::MAX, 64)) && !u.exhausted());
        assert!(u.take(&res(8.0, 1 << 40, 8)).is_empty());
    }
}
