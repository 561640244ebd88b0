//! What this machine offers nodes: CPUs, memory, GPUs.

/// CPU cores available to this process.
pub fn cpus() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0)
}

/// Total memory in bytes, from /proc/meminfo (16 GiB if unknown).
pub fn memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(16 << 30)
}

/// GPU indices: from `CUDA_VISIBLE_DEVICES` if set, else the NVIDIA driver's device list.
pub fn gpus() -> Vec<u32> {
    if let Ok(v) = std::env::var("CUDA_VISIBLE_DEVICES") {
        return v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    }
    let n = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .map(|d| d.count())
        .unwrap_or(0);
    (0..n as u32).collect()
}

/// Parses `--gpus`: a count (`2`) or a list of indices (`0,2`).
pub fn parse_gpus(s: &str) -> Result<Vec<u32>, String> {
    if s.contains(',') {
        return s
            .split(',')
            .map(|x| {
                x.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("--gpus: `{x}` is not a device index"))
            })
            .collect();
    }
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("--gpus: `{s}` is neither a count nor a list of indices"))?;
    Ok((0..n).collect())
}
