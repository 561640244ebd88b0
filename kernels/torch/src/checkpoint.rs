//! Loading and saving Hugging Face model directories: `config.json` plus safetensors weights,
//! one file or shards with `model.safetensors.index.json`, in float32, bfloat16 or float16.

use crate::device::kind_name;
use crate::model::Transformer;
use crate::{other, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};
use zest_kernels::model_config::ModelConfig;
use zest_kernels::safetensors::{self, Dtype};

fn kind_of(d: Dtype) -> Option<Kind> {
    Some(match d {
        Dtype::F64 => Kind::Double,
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
    })
}

fn dtype_of(k: Kind) -> Result<Dtype> {
    Ok(match k {
        Kind::Double => Dtype::F64,
        Kind::Float => Dtype::F32,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        other_kind => return Err(other(format!("cannot store {other_kind:?} in safetensors"))),
    })
}

/// Reads every tensor of the safetensors files of `dir` onto `device` as `kind` (floating-point
/// tensors only; others keep their type).
pub fn read_tensors(dir: &Path, device: Device, kind: Kind) -> Result<Vec<(String, Tensor)>> {
    let files = safetensors::checkpoint_files(dir)?;
    if files.is_empty() {
        return Err(other(format!(
            "{}: no model.safetensors, model.safetensors.index.json or *.safetensors",
            dir.display()
        )));
    }
    let _guard = tch::no_grad_guard();
    let mut out = Vec::new();
    for file in files {
        let header = safetensors::read_header(&file)?;
        for (name, info) in &header.tensors {
            let bytes = safetensors::read_tensor_bytes(&file, &header, name)?;
            let shape: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
            let stored = kind_of(info.dtype).expect("every dtype maps");
            let t = Tensor::f_from_data_size(&bytes, &shape, stored)?;
            let t = if t.is_floating_point() {
                t.to_device(device).to_kind(kind)
            } else {
                t.to_device(device)
            };
            out.push((name.clone(), t));
        }
    }
    Ok(out)
}

/// Loads the model in `dir` onto `device` in `kind` (`None`: the checkpoint's own type).
pub fn load(dir: &Path, device: Device, kind: Option<Kind>) -> Result<Transformer> {
    let config = ModelConfig::from_dir(dir)?;
    let kind = match kind {
        Some(k) => k,
        None => crate::device::parse_kind(&config.dtype)?,
    };
    let params = read_tensors(dir, device, kind)?;
    Transformer::from_params(config, params, device, kind).map_err(|e| match e {
        crate::LlmError::Other(why) => other(format!("{}: {why}", dir.display())),
        e => e,
    })
}

/// How to save.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// Element type of the stored weights.
    pub kind: Kind,
    /// Largest shard in bytes; a model above it is split into `model-0000i-of-0000n.safetensors`
    /// files with an index, as transformers does.
    pub max_shard_bytes: u64,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            kind: Kind::Float,
            max_shard_bytes: 5 << 30,
        }
    }
}

/// A tensor ready to write: name, shape, little-endian bytes.
type Stored = (String, Vec<usize>, Vec<u8>);

fn tensor_bytes(t: &Tensor, kind: Kind) -> Vec<u8> {
    let t = t.detach().to_device(Device::Cpu).to_kind(kind).contiguous();
    let n = t.numel();
    let mut buf = vec![0u8; n * t.kind().elt_size_in_bytes()];
    t.copy_data_u8(&mut buf, n);
    buf
}

/// Saves `model` into `dir` as transformers lays a model out: `config.json` and the weights
/// (tied output weights are not written twice). Each file is written under a temporary name
/// and renamed; the index, written last, is the commit point of a sharded checkpoint.
pub fn save(model: &Transformer, dir: &Path, opts: &SaveOptions) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| other(format!("{}: {e}", dir.display())))?;
    let dtype = dtype_of(opts.kind)?;
    let mut shards: Vec<Vec<Stored>> = vec![Vec::new()];
    let mut shard_bytes = 0u64;
    let mut total = 0u64;
    for (name, t) in model.parameters() {
        let bytes = tensor_bytes(t, opts.kind);
        let n = bytes.len() as u64;
        if shard_bytes > 0 && shard_bytes + n > opts.max_shard_bytes {
            shards.push(Vec::new());
            shard_bytes = 0;
        }
        shard_bytes += n;
        total += n;
        let shape = t.size().iter().map(|&d| d as usize).collect();
        shards
            .last_mut()
            .expect("one shard")
            .push((name.clone(), shape, bytes));
    }
    let mut config = model.config.clone();
    config.dtype = kind_name(opts.kind).to_string();
    let config_path = dir.join("config.json");
    let text = serde_json::to_string_pretty(&config.to_json()).expect("JSON");
    write_atomic(&config_path, text.as_bytes())?;
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let n = shards.len();
    let mut weight_map = serde_json::Map::new();
    for (i, shard) in shards.iter().enumerate() {
        let file = if n == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", i + 1, n)
        };
        let entries: Vec<(&str, Dtype, &[usize], &[u8])> = shard
            .iter()
            .map(|(name, shape, bytes)| (name.as_str(), dtype, shape.as_slice(), bytes.as_slice()))
            .collect();
        safetensors::write(&dir.join(&file), &entries, &meta)?;
        for (name, _, _) in shard {
            weight_map.insert(name.clone(), serde_json::json!(file));
        }
    }
    let index_path = dir.join("model.safetensors.index.json");
    if n == 1 {
        // A stale index from an earlier, sharded save would otherwise win over the new file.
        match std::fs::remove_file(&index_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(other(format!("{}: {e}", index_path.display())))
            }
            _ => {}
        }
    } else {
        let index =
            serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        let text = serde_json::to_string_pretty(&index).expect("JSON");
        write_atomic(&index_path, text.as_bytes())?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            other(format!("{}: {e}", path.display()))
        })
}
