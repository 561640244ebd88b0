//! Atomic file operations for local stores and run directories.
//!
//! Content-addressed objects are written once and never change, so the basic operation is
//! *put-if-absent*: a complete file appears under its name, or nothing happens because the
//! name is taken. On Linux this is an unnamed file (`O_TMPFILE`) given its name with
//! `linkat(2)`, which fails if the name exists; elsewhere, or where the file system cannot
//! do that, a staging file renamed with `renameat2(RENAME_NOREPLACE)` or, failing that,
//! hard-linked into place. No variant leaves a file to delete on success: deleted inodes
//! make later file creation slow on ext4.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static STAGING: AtomicU64 = AtomicU64::new(0);

/// This process's id (cached: it is part of every staging name).
pub fn pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// A unique hidden name next to `dst`, for staging a file or directory.
pub fn staging_name(dst: &Path) -> PathBuf {
    let n = STAGING.fetch_add(1, Ordering::Relaxed);
    dst.with_file_name(format!(
        ".{}.{}-{n}.tmp",
        dst.file_name().and_then(|f| f.to_str()).unwrap_or("x"),
        pid()
    ))
}

/// Writes `body` to the new file `path`, creating its parent directories only if they are
/// missing (an existing directory, the common case, costs no extra system call).
pub fn write_new(path: &Path, body: &[u8]) -> io::Result<()> {
    match std::fs::write(path, body) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path.parent().expect("has parent"))?;
            std::fs::write(path, body)
        }
        r => r,
    }
}

/// `rename(2)` that fails with `AlreadyExists` instead of replacing `dst`.
pub fn rename_noreplace(src: &Path, dst: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let s = cstr(src)?;
        let d = cstr(dst)?;
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                s.as_ptr(),
                libc::AT_FDCWD,
                d.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
            return Err(e);
        }
        // The file system cannot rename without replacing: fall through to link(2).
    }
    std::fs::hard_link(src, dst)?;
    std::fs::remove_file(src)
}

#[cfg(target_os = "linux")]
fn cstr(p: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// A file with content but no name yet, to be named with [`Unnamed::link`]: written once,
/// it can appear under several names (each put-if-absent) without being copied.
pub struct Unnamed {
    file: Option<File>,
    body: Vec<u8>,
    dir: PathBuf,
}

impl Unnamed {
    /// Prepares `body` in directory `dir` (created if missing).
    pub fn new(dir: &Path, body: Vec<u8>) -> io::Result<Self> {
        let file = match Self::open(dir, &body) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                Self::open(dir, &body)?
            }
            Err(e) => return Err(e),
        };
        Ok(Unnamed {
            file,
            body,
            dir: dir.to_path_buf(),
        })
    }

    #[cfg(target_os = "linux")]
    fn open(dir: &Path, body: &[u8]) -> io::Result<Option<File>> {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .open(dir)
        {
            Ok(mut f) => {
                f.write_all(body)?;
                Ok(Some(f))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
            // No O_TMPFILE here: fall back to staging files.
            Err(_) => Ok(None),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn open(_: &Path, _: &[u8]) -> io::Result<Option<File>> {
        Ok(None)
    }

    /// Gives the content the name `dst` unless the name is taken (then `Ok(false)`).
    /// `dst` must be on the same file system as the directory given to [`Unnamed::new`].
    pub fn link(&mut self, dst: &Path) -> io::Result<bool> {
        #[cfg(target_os = "linux")]
        if let Some(f) = &self.file {
            use std::os::fd::AsRawFd;
            let src =
                std::ffi::CString::new(format!("/proc/self/fd/{}", f.as_raw_fd())).expect("no NUL");
            let d = cstr(dst)?;
            let r = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    src.as_ptr(),
                    libc::AT_FDCWD,
                    d.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            if r == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::AlreadyExists => return Ok(false),
                io::ErrorKind::NotFound => match dst.parent() {
                    Some(parent) if !parent.exists() => {
                        std::fs::create_dir_all(parent)?;
                        return self.link(dst);
                    }
                    // No /proc: name files through staging from now on.
                    _ => self.file = None,
                },
                _ => return Err(e),
            }
        }
        let tmp = staging_name(&self.dir.join("x"));
        write_new(&tmp, &self.body)?;
        match rename_noreplace(&tmp, dst) {
            Ok(()) => Ok(true),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }
}

/// Writes `body` as the new file `dst` unless it exists (then `Ok(false)`): a complete
/// file or nothing.
pub fn put_new(dst: &Path, body: Vec<u8>) -> io::Result<bool> {
    let dir = dst.parent().expect("has parent");
    Unnamed::new(dir, body)?.link(dst)
}

/// Writes `body` to `dst`, replacing it atomically (staging file, then rename).
pub fn put_replace(dst: &Path, body: &[u8]) -> io::Result<()> {
    let tmp = staging_name(dst);
    write_new(&tmp, body)?;
    std::fs::rename(&tmp, dst).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_new_is_put_if_absent() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/a.json");
        assert!(put_new(&p, b"one".to_vec()).unwrap());
        assert!(!put_new(&p, b"two".to_vec()).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        // Nothing else is left in the directory.
        let names: Vec<_> = std::fs::read_dir(d.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn one_content_under_two_names() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("m")).unwrap();
        std::fs::create_dir_all(d.path().join("c")).unwrap();
        let mut u = Unnamed::new(&d.path().join("m"), b"doc".to_vec()).unwrap();
        assert!(u.link(&d.path().join("m/x.json")).unwrap());
        assert!(u.link(&d.path().join("c/y.json")).unwrap());
        assert!(!u.link(&d.path().join("c/y.json")).unwrap());
        assert_eq!(std::fs::read(d.path().join("c/y.json")).unwrap(), b"doc");
        assert_eq!(std::fs::read(d.path().join("m/x.json")).unwrap(), b"doc");
    }

    #[test]
    fn rename_noreplace_refuses_to_replace() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
        std::fs::remove_file(&b).unwrap();
        rename_noreplace(&a, &b).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"a");
    }

    #[test]
    fn put_replace_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x/e.json");
        put_replace(&p, b"1").unwrap();
        put_replace(&p, b"2").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"2");
    }
}
