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

/// What a cached content digest of a local file is valid for: the file's size, modification
/// and change times and inode, as Bazel and DVC check them before re-hashing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            ino: m.ino(),
        }
    }

    /// A file changed in the last two seconds may change again within the clock's
    /// granularity without its stamp changing: its digest is not cached.
    fn settled(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        now - self.mtime_ns.max(self.ctime_ns) > 2_000_000_000
    }
}

#[derive(Default)]
struct FileIdCache {
    path: Option<PathBuf>,
    entries: std::collections::HashMap<String, (Stamp, String)>,
    dirty: bool,
}

static FILE_IDS: std::sync::Mutex<Option<FileIdCache>> = std::sync::Mutex::new(None);

/// Keeps the digests that [`local_file_id`] computes in `path` (a JSON file, loaded now and
/// written by [`save_file_id_cache`]), so that unchanged files are not hashed again by later
/// runs.
pub fn use_file_id_cache(path: &Path) {
    let entries = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    *FILE_IDS.lock().unwrap_or_else(|e| e.into_inner()) = Some(FileIdCache {
        path: Some(path.to_path_buf()),
        entries,
        dirty: false,
    });
}

/// Writes the digest cache named by [`use_file_id_cache`] if it changed.
pub fn save_file_id_cache() -> std::io::Result<()> {
    let mut g = FILE_IDS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(c) = g.as_mut() else { return Ok(()) };
    let Some(path) = c.path.clone() else {
        return Ok(());
    };
    if !c.dirty {
        return Ok(());
    }
    // Bounded: a cache that grew past this starts again.
    if c.entries.len() > 500_000 {
        c.entries.clear();
    }
    let body = serde_json::to_vec(&c.entries).map_err(std::io::Error::other)?;
    c.dirty = false;
    crate::localfs::put_replace(&path, &body)
}

/// The content identity of a local file, `sha256:<hex>`: from the digest cache when the
/// file's size, times and inode are those it was hashed with, else hashed now.
pub fn local_file_id(path: &Path) -> std::io::Result<String> {
    let key = path.display().to_string();
    let stamp = Stamp::of(&std::fs::metadata(path)?);
    {
        let g = FILE_IDS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, id)) = g.as_ref().and_then(|c| c.entries.get(&key)) {
            if *s == stamp {
                return Ok(id.clone());
            }
        }
    }
    let (_, sha) = file_sha256(path)?;
    let id = format!("sha256:{sha}");
    // The file may have changed while it was read: cache only what was stable throughout.
    let after = Stamp::of(&std::fs::metadata(path)?);
    if after == stamp && stamp.settled() {
        let mut g = FILE_IDS.lock().unwrap_or_else(|e| e.into_inner());
        let c = g.get_or_insert_with(FileIdCache::default);
        c.entries.insert(key, (stamp, id.clone()));
        c.dirty = true;
    }
    Ok(id)
}

/// Lists the regular files under `dir`, sorted by relative path, with their digests: what
/// an output directory commits as an artifact. A symbolic link to a file inside `dir` is
/// replaced by a copy of that file (the artifact must not depend on where it was written);
/// any other link (outside `dir`, to a directory, dangling), a special file, or a name that
/// is not UTF-8 is an error naming it.
pub fn scan_dir(dir: &Path) -> std::io::Result<Vec<(PathBuf, FileEntry)>> {
    let mut out = vec![];
    if dir.exists() {
        let root = dir.canonicalize()?;
        // Iterative: output trees may be deep.
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d)? {
                let entry = entry?;
                let path = entry.path();
                let rel = path.strip_prefix(dir).expect("under root");
                let Some(rel_str) = rel.to_str() else {
                    return Err(std::io::Error::other(format!(
                        "output file name `{}` is not valid UTF-8: artifacts need UTF-8 file names; rename it",
                        rel.to_string_lossy()
                    )));
                };
                let ty = entry.file_type()?;
                if ty.is_dir() {
                    stack.push(path);
                    continue;
                }
                if ty.is_symlink() {
                    resolve_link(&root, &path, rel_str)?;
                } else if !ty.is_file() {
                    return Err(std::io::Error::other(format!(
                        "output `{rel_str}` is not a regular file or directory"
                    )));
                }
                let (size, sha256) = file_sha256(&path)?;
                out.push((
                    path.clone(),
                    FileEntry {
                        path: rel_str.replace(std::path::MAIN_SEPARATOR, "/"),
                        size,
                        sha256,
                    },
                ));
            }
        }
    }
    out.sort_by(|a, b| a.1.path.cmp(&b.1.path));
    Ok(out)
}

/// Replaces the symbolic link `path` (at `rel` in the output `root`) by a copy of the file it
/// points to, if that file is inside `root`; otherwise an error naming the link.
fn resolve_link(root: &Path, path: &Path, rel: &str) -> std::io::Result<()> {
    let target = std::fs::read_link(path)?;
    let refuse = |why: &str| {
        Err(std::io::Error::other(format!(
            "output `{rel}` is a symbolic link to {}{why}; write the file itself into the output",
            target.display()
        )))
    };
    let Ok(resolved) = path.canonicalize() else {
        return refuse(", which does not exist");
    };
    if !resolved.starts_with(root) {
        return refuse(", outside the output directory: links may point only to files inside it");
    }
    if resolved.is_dir() {
        return refuse(", a directory: links to directories are not stored");
    }
    let tmp = path.with_file_name(format!(".{}.link.tmp", crate::localfs::pid()));
    std::fs::copy(&resolved, &tmp)?;
    std::fs::rename(&tmp, path)
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
