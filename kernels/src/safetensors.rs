//! The safetensors file format (Hugging Face): an 8-byte little-endian header length, a JSON
//! header naming each tensor's dtype, shape and byte range, then the raw little-endian data.
//! Sharded checkpoints add `model.safetensors.index.json`, mapping tensor names to files.
//!
//! This module reads headers and tensor bytes and writes files; turning bytes into device
//! tensors is the model code's business.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Element types that checkpoints use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dtype {
    /// 64-bit float.
    F64,
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit integer.
    I64,
    /// 32-bit integer.
    I32,
    /// 16-bit integer.
    I16,
    /// 8-bit integer.
    I8,
    /// 8-bit unsigned integer.
    U8,
    /// Boolean (one byte).
    BOOL,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::BOOL => 1,
        }
    }
}

/// One tensor's entry in a header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Byte range in the data section, `[start, end)`.
    pub data_offsets: [u64; 2],
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A safetensors file's header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Tensors by name.
    pub tensors: BTreeMap<String, TensorInfo>,
    /// Free-form string metadata (`__metadata__`).
    pub metadata: BTreeMap<String, String>,
    /// Where the data section starts in the file.
    pub data_start: u64,
}

/// Errors reading checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a valid safetensors file.
    #[error("{path}: not a valid safetensors file: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad(path: &Path, why: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// The largest header accepted (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100 << 20;

/// Reads and checks the header of `path`.
pub fn read_header(path: &Path) -> Result<Header, Error> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let file_len = f.metadata().map_err(io(path))?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| bad(path, "shorter than its 8-byte header length"))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER || 8 + n > file_len {
        return Err(bad(
            path,
            format!("header length {n} does not fit the file"),
        ));
    }
    let mut json = vec![0u8; n as usize];
    f.read_exact(&mut json).map_err(io(path))?;
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&json).map_err(|e| bad(path, format!("header: {e}")))?;
    let mut tensors = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for (name, v) in raw {
        if name == "__metadata__" {
            metadata =
                serde_json::from_value(v).map_err(|e| bad(path, format!("__metadata__: {e}")))?;
            continue;
        }
        let t: TensorInfo =
            serde_json::from_value(v).map_err(|e| bad(path, format!("tensor `{name}`: {e}")))?;
        let want = (t.numel() * t.dtype.size()) as u64;
        let [a, b] = t.data_offsets;
        if b < a || b - a != want || 8 + n + b > file_len {
            return Err(bad(
                path,
                format!(
                    "tensor `{name}`: byte range {a}..{b} does not hold {want} bytes in the file"
                ),
            ));
        }
        tensors.insert(name, t);
    }
    Ok(Header {
        tensors,
        metadata,
        data_start: 8 + n,
    })
}

/// Reads the raw bytes of one tensor.
pub fn read_tensor_bytes(path: &Path, header: &Header, name: &str) -> Result<Vec<u8>, Error> {
    let t = header
        .tensors
        .get(name)
        .ok_or_else(|| bad(path, format!("no tensor `{name}`")))?;
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::Start(header.data_start + t.data_offsets[0]))
        .map_err(io(path))?;
    let mut buf = vec![0u8; (t.data_offsets[1] - t.data_offsets[0]) as usize];
    f.read_exact(&mut buf).map_err(io(path))?;
    Ok(buf)
}

/// Writes tensors (name, dtype, shape, little-endian bytes) as one safetensors file.
pub fn write(
    path: &Path,
    tensors: &[(&str, Dtype, &[usize], &[u8])],
    metadata: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::json!(metadata));
    }
    let mut offset = 0u64;
    for (name, dtype, shape, bytes) in tensors {
        let want = shape.iter().product::<usize>() * dtype.size();
        if bytes.len() != want {
            return Err(bad(
                path,
                format!(
                    "tensor `{name}` has {} bytes, its shape needs {want}",
                    bytes.len()
                ),
            ));
        }
        let end = offset + bytes.len() as u64;
        header.insert(
            (*name).to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut json = serde_json::to_vec(&header).expect("JSON");
    // The data section starts 8-byte aligned.
    while !(8 + json.len()).is_multiple_of(8) {
        json.push(b' ');
    }
    // Written under a temporary name and renamed: a crash never leaves a truncated
    // checkpoint under the real name.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".partial-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(&(json.len() as u64).to_le_bytes())?;
        f.write_all(&json)?;
        for (_, _, _, bytes) in tensors {
            f.write_all(bytes)?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io(path))
}

/// The safetensors files of a checkpoint directory: the shards named by
/// `model.safetensors.index.json`, else `model.safetensors`, else every `*.safetensors`.
pub fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(io(&index))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(&index, e.to_string()))?;
        let map = v["weight_map"]
            .as_object()
            .ok_or_else(|| bad(&index, "no `weight_map` object"))?;
        let mut files: Vec<PathBuf> = map
            .values()
            .filter_map(|f| f.as_str())
            .map(|f| dir.join(f))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_back() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.safetensors");
        let a: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let b = vec![7u8, 0, 9, 0];
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        write(
            &p,
            &[
                ("a.weight", Dtype::F32, &[2, 3], &a),
                ("b", Dtype::BF16, &[2], &b),
            ],
            &meta,
        )
        .unwrap();
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
        let h = read_header(&p).unwrap();
        assert_eq!(h.data_start % 8, 0);
        assert_eq!(h.metadata, meta);
        assert_eq!(h.tensors["a.weight"].shape, vec![2, 3]);
        assert_eq!(h.tensors["b"].dtype, Dtype::BF16);
        assert_eq!(read_tensor_bytes(&p, &h, "a.weight").unwrap(), a);
        assert_eq!(read_tensor_bytes(&p, &h, "b").unwrap(), b);
    }

    #[test]
    fn corrupt_files_are_rejected_with_reasons() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bad.safetensors");
        std::fs::write(&p, b"abc").unwrap();
        assert!(read_header(&p).unwrap_err().to_string().contains("8-byte"));
        std::fs::write(&p, [255u8; 16]).unwrap();
        assert!(read_header(&p)
            .unwrap_err()
            .to_string()
            .contains("does not fit"));
        let json = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#;
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(json);
        bytes.extend_from_slice(&[0u8; 8]);
        std::fs::write(&p, &bytes).unwrap();
        let e = read_header(&p).unwrap_err().to_string();
        assert!(e.contains("tensor `w`"), "{e}");
    }
}
