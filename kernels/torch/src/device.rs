//! Choosing the device and element type at run time.

use crate::{other, Result};
use tch::{Device, Kind};

/// Parses `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when there is one, else CPU).
pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" => cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => cuda(i),
            _ => Err(other(format!(
                "unknown device `{s}` (expected cpu, cuda, cuda:N or auto)"
            ))),
        },
    }
}

fn cuda(i: usize) -> Result<Device> {
    let n = tch::Cuda::device_count() as usize;
    if i >= n {
        return Err(other(format!(
            "device cuda:{i} asked for, but libtorch sees {n} CUDA device(s)"
        )));
    }
    Ok(Device::Cuda(i))
}

/// Parses an element type name as Hugging Face writes it (`float32`, `bfloat16`, `float16`)
/// or its short form (`f32`, `bf16`, `f16`).
pub fn parse_kind(s: &str) -> Result<Kind> {
    match s {
        "float32" | "f32" | "fp32" => Ok(Kind::Float),
        "bfloat16" | "bf16" => Ok(Kind::BFloat16),
        "float16" | "f16" | "fp16" | "half" => Ok(Kind::Half),
        _ => Err(other(format!(
            "unknown dtype `{s}` (expected float32, bfloat16 or float16)"
        ))),
    }
}

/// The Hugging Face name of an element type.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::BFloat16 => "bfloat16",
        Kind::Half => "float16",
        _ => "float32",
    }
}
