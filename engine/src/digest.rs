//! Content digests: of files, of artifact directories, and of canonical JSON (cache keys).

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One file of an artifact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    /// Path relative to the artifact root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex sha256 of the content.
    pub sha256: String,
}

/// Hex sha256 of a byte string.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Hex sha256 of a file's content, read in chunks.
pub fn file_sha256(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, hex::encode(h.finalize())))
}

/// Lists the regular files under `dir`, sorted by relative path, with their digests.
/// Symbolic links are followed; other special files are an error.
pub fn scan_dir(dir: &Path) -> std::io::Result<Vec<(PathBuf, FileEntry)>> {
    let mut out = vec![];
    if dir.exists() {
        walk(dir, dir, &mut out)?;
    }
    out.sort_by(|a, b| a.1.path.cmp(&b.1.path));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, FileEntry)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path.strip_prefix(root).expect("under root");
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let (size, sha256) = file_sha256(&path)?;
            out.push((
                path,
                FileEntry {
                    path: rel.join("/"),
                    size,
                    sha256,
                },
            ));
        } else {
            return Err(std::io::Error::other(format!(
                "{} is not a regular file or directory",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The digest of an artifact: its type and the sorted list of (path, size, content digest).
pub fn tree_digest(kind: &str, files: &[FileEntry]) -> String {
    let mut h = Sha256::new();
    h.update(b"zest-artifact-v1\0");
    h.update(kind.as_bytes());
    h.update(b"\0");
    for f in files {
        h.update(f.path.as_bytes());
        h.update(b"\0");
        h.update(f.size.to_string().as_bytes());
        h.update(b"\0");
        h.update(f.sha256.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Serialises JSON with object keys sorted at every level, so equal values hash equally.
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sort(&m[k]));
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sort(v)).expect("JSON serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,{"q":1,"p":2}]}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":[1,{"p":2,"q":1}],"y":2},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }

    #[test]
    fn tree_digest_depends_on_content_and_kind() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/a.txt"), b"hello").unwrap();
        std::fs::write(d.path().join("b.txt"), b"world").unwrap();
        let files: Vec<FileEntry> = scan_dir(d.path())
            .unwrap()
            .into_iter()
            .map(|f| f.1)
            .collect();
        assert_eq!(files[0].path, "b.txt");
        assert_eq!(files[1].path, "sub/a.txt");
        let d1 = tree_digest("files", &files);
        assert_ne!(d1, tree_digest("dataset", &files));
        std::fs::write(d.path().join("b.txt"), b"World").unwrap();
        let files2: Vec<FileEntry> = scan_dir(d.path())
            .unwrap()
            .into_iter()
            .map(|f| f.1)
            .collect();
        assert_ne!(d1, tree_digest("files", &files2));
    }
}
