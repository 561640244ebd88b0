//! Checkpoints a node saves while it runs, so that a retry, a `zest resume` after a crash, or
//! a rerun with the same cache key continues from the newest one instead of from the start.
//!
//! They live in the store, beside the artifacts, so they work on S3 and for nodes that run on
//! other machines:
//!
//! ```text
//! checkpoints/<cache-key>/<step>/<path>    the files, written first
//! checkpoints/<cache-key>/<step>.json      the commit marker: every file's size and sha256
//! ```
//!
//! A checkpoint exists once its marker exists, and is used only if its files match the marker,
//! so a crash while saving leaves at worst an unmarked directory that the next save prunes.
//! The key is the node's cache key, which covers its operator's code, config and inputs: a
//! checkpoint is never picked up by a node that would compute something else. When the node
//! has committed its outputs, the worker prunes its checkpoints to
//! [`Checkpoints::keep_after_commit`] (none by default).

use crate::store::ArtifactStore;
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The store prefix of the checkpoints of the execution with `cache_key`.
pub fn prefix_for(cache_key: &str) -> String {
    format!("checkpoints/{cache_key}")
}

/// One file of a checkpoint, as its marker records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MarkedFile {
    path: String,
    size: u64,
    sha256: String,
}

/// A checkpoint's commit marker.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    step: u64,
    created_at: String,
    files: Vec<MarkedFile>,
    #[serde(default)]
    meta: serde_json::Value,
}

/// A checkpoint brought back to a local directory.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The step it was saved at.
    pub step: u64,
    /// A local directory holding its files (verified against the marker).
    pub dir: PathBuf,
    /// What the operator attached when saving.
    pub meta: serde_json::Value,
}

/// The checkpoints of one node execution.
pub struct Checkpoints {
    store: ArtifactStore,
    rt: tokio::runtime::Handle,
    /// For a remote store: a runtime and a client of their own, opened on first use. The
    /// worker's runtime is a current-thread one that only its own `block_on` drives, and an
    /// operator calling in from its synchronous `run` cannot drive it, so network I/O through
    /// it would wait forever.
    remote: Option<(
        crate::worker::StoreConfig,
        std::sync::OnceLock<(tokio::runtime::Runtime, ArtifactStore)>,
    )>,
    prefix: String,
    local: PathBuf,
    keep_after_commit: AtomicUsize,
    /// A follower rank of a data-parallel node ([`crate::ranks`]): it restores checkpoints,
    /// and rank 0 alone saves and prunes them.
    follower: bool,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Checkpoints({}/{})", self.store.url(), self.prefix)
    }
}

fn step_name(step: u64) -> String {
    format!("{step:012}")
}

impl Checkpoints {
    /// The checkpoints of the execution with `cache_key` in `store`; restored ones are copied
    /// under `local` (for remote stores).
    pub fn new(
        store: ArtifactStore,
        rt: tokio::runtime::Handle,
        cache_key: &str,
        local: PathBuf,
    ) -> Checkpoints {
        Checkpoints {
            store,
            rt,
            remote: None,
            prefix: prefix_for(cache_key),
            local,
            keep_after_commit: AtomicUsize::new(0),
            follower: false,
        }
    }

    /// The checkpoints of the execution with `cache_key` in the store `config` opens: a local
    /// store through `store` and `rt` (its operations need no I/O driver), a remote one through
    /// a runtime and client of its own.
    pub fn for_task(
        config: &crate::worker::StoreConfig,
        store: ArtifactStore,
        rt: tokio::runtime::Handle,
        cache_key: &str,
        local: PathBuf,
    ) -> Checkpoints {
        let mut c = Checkpoints::new(store, rt, cache_key, local);
        if !c.store.is_local() {
            c.remote = Some((config.clone(), std::sync::OnceLock::new()));
        }
        c
    }

    /// These checkpoints as a follower rank sees them: [`Checkpoints::save`] and
    /// [`Checkpoints::prune`] do nothing, since rank 0 saves the same state.
    pub fn for_follower(mut self) -> Checkpoints {
        self.follower = true;
        self
    }

    /// Runs `f` on the store: the remote path on its own runtime.
    pub(crate) fn run<'a, T, Fut>(&'a self, f: impl FnOnce(&'a ArtifactStore) -> Fut) -> Result<T>
    where
        Fut: std::future::Future<Output = Result<T>> + 'a,
    {
        match &self.remote {
            None => self.rt.block_on(f(&self.store)),
            Some((config, cell)) => {
                if cell.get().is_none() {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("cannot start a runtime for checkpoints")?;
                    let store = config.open()?;
                    let _ = cell.set((rt, store));
                }
                let (rt, store) = cell.get().expect("set above");
                rt.block_on(f(store))
            }
        }
    }

    /// Where in the store these checkpoints live, for messages.
    pub fn location(&self) -> String {
        format!("{}/{}", self.store.url(), self.prefix)
    }

    /// The steps of committed checkpoints, oldest first.
    pub fn steps(&self) -> Result<Vec<u64>> {
        let names = self.run(|st| st.list_under(&self.prefix))?;
        let mut steps: Vec<u64> = names
            .iter()
            .filter_map(|n| n.strip_prefix(&self.prefix)?.strip_prefix('/'))
            .filter(|n| !n.contains('/'))
            .filter_map(|n| n.strip_suffix(".json")?.parse().ok())
            .collect();
        steps.sort_unstable();
        steps.dedup();
        Ok(steps)
    }

    /// The newest checkpoint whose files match its marker, copied to a local directory;
    /// `None` when there is none. A damaged checkpoint is reported on stderr (the node's log)
    /// and the one before it is tried.
    pub fn latest(&self) -> Result<Option<Restored>> {
        for step in self.steps()?.into_iter().rev() {
            match self.restore(step) {
                Ok(r) => return Ok(Some(r)),
                Err(e) => eprintln!(
                    "checkpoint at step {step} in {} is unusable, trying an older one: {e:#}",
                    self.location()
                ),
            }
        }
        Ok(None)
    }

    fn restore(&self, step: u64) -> Result<Restored> {
        let name = step_name(step);
        let key = format!("{}/{name}.json", self.prefix);
        let marker: Marker = self
            .run(|st| st.get_json(&key))?
            .ok_or_else(|| anyhow!("its marker is gone"))?;
        let dir = self.local.join(&name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        for f in &marker.files {
            let dst = dir.join(&f.path);
            let rel = format!("{}/{name}/{}", self.prefix, f.path);
            if !self.run(|st| st.get_file(&rel, &dst))? {
                return Err(anyhow!("{} is missing", f.path));
            }
            let (size, sha) = crate::digest::file_sha256(&dst)?;
            if size != f.size || sha != f.sha256 {
                return Err(anyhow!(
                    "{} does not match its marker ({size} bytes, sha256 {sha}; expected {} bytes, \
                     sha256 {})",
                    f.path,
                    f.size,
                    f.sha256
                ));
            }
        }
        Ok(Restored {
            step,
            dir,
            meta: marker.meta,
        })
    }

    /// Saves the files under `dir` as the checkpoint of `step` with `meta` attached, commits
    /// it (marker last), then deletes all but the newest `keep` (at least one is kept).
    /// On a follower rank it does nothing.
    pub fn save(&self, step: u64, dir: &Path, meta: serde_json::Value, keep: usize) -> Result<()> {
        if self.follower {
            return Ok(());
        }
        let name = step_name(step);
        let mut files = vec![];
        for (rel, entry) in crate::digest::scan_dir(dir)
            .with_context(|| format!("reading checkpoint {}", dir.display()))?
        {
            let path = dir.join(&rel);
            let key = format!("{}/{name}/{}", self.prefix, entry.path);
            self.run(|st| st.put_object_file(&key, &path))
                .with_context(|| format!("saving checkpoint of step {step}"))?;
            files.push(MarkedFile {
                path: entry.path,
                size: entry.size,
                sha256: entry.sha256,
            });
        }
        let marker = Marker {
            step,
            created_at: crate::store::now_rfc3339(),
            files,
            meta,
        };
        let key = format!("{}/{name}.json", self.prefix);
        self.run(|st| st.put_json(&key, &marker))
            .with_context(|| format!("committing checkpoint of step {step}"))?;
        self.prune(keep.max(1))
    }

    /// Deletes every checkpoint but the newest `keep`, and files of unfinished saves older
    /// than the newest committed checkpoint.
    /// On a follower rank it does nothing.
    pub fn prune(&self, keep: usize) -> Result<()> {
        if self.follower {
            return Ok(());
        }
        let names = self.run(|st| st.list_under(&self.prefix))?;
        let steps = self.steps()?;
        let kept: Vec<String> = steps
            .iter()
            .rev()
            .take(keep)
            .map(|s| step_name(*s))
            .collect();
        let newest = steps.last().map(|s| step_name(*s));
        // Markers first, so that a checkpoint stops existing before its files go.
        let mut doomed: Vec<&String> = vec![];
        for n in &names {
            let Some(rest) = n
                .strip_prefix(&self.prefix)
                .and_then(|r| r.strip_prefix('/'))
            else {
                continue;
            };
            let head = rest.split('/').next().unwrap_or("");
            let step = head.strip_suffix(".json").unwrap_or(head);
            let keep_it = kept.iter().any(|k| k == step)
                || newest.as_ref().is_none_or(|nw| step > nw.as_str());
            if !keep_it {
                doomed.push(n);
            }
        }
        doomed.sort_by_key(|n| !n.ends_with(".json"));
        let mut dirs = std::collections::BTreeSet::new();
        for n in doomed {
            self.run(|st| st.delete(n))?;
            if let Some((dir, _)) = n.rsplit_once('/') {
                if dir != self.prefix {
                    dirs.insert(dir.to_string());
                }
            }
        }
        // A local store keeps empty directories; remove the pruned checkpoints' ones.
        if let Some(root) = self.store.local_root() {
            for d in dirs {
                let mut p = root.join(&d);
                while p != root.join(&self.prefix) && std::fs::remove_dir(&p).is_ok() {
                    p.pop();
                }
            }
        }
        Ok(())
    }

    /// How many checkpoints to keep once the node has committed its outputs (0, the
    /// default: all are deleted).
    pub fn keep_after_commit(&self, n: usize) {
        self.keep_after_commit.store(n, Ordering::Relaxed);
    }

    /// Called by the worker once the node's outputs are committed.
    pub(crate) fn finish(&self) -> Result<()> {
        match self.keep_after_commit.load(Ordering::Relaxed) {
            0 => {
                for n in self.run(|st| st.list_under(&self.prefix))? {
                    self.run(|st| st.delete(&n))?;
                }
                if let Some(root) = self.store.local_root() {
                    let _ = crate::store::remove_tree(&root.join(&self.prefix));
                }
                Ok(())
            }
            n => self.prune(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, tokio::runtime::Runtime, Checkpoints) {
        let tmp = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(
            tmp.path().join("store").to_str().unwrap(),
            &Default::default(),
            &tmp.path().join("dl"),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let c = Checkpoints::new(
            store,
            rt.handle().clone(),
            "key1",
            tmp.path().join("restore"),
        );
        (tmp, rt, c)
    }

    fn files(dir: &Path, step: u64) {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("weights.bin"), vec![step as u8; 1000]).unwrap();
        std::fs::write(dir.join("sub/state.json"), format!("{{\"step\":{step}}}")).unwrap();
    }

    #[test]
    fn the_newest_intact_checkpoint_comes_back_and_old_ones_are_pruned() {
        let (tmp, _rt, c) = setup();
        assert!(c.latest().unwrap().is_none());
        for step in [10, 20, 30] {
            let d = tmp.path().join(format!("save{step}"));
            files(&d, step);
            c.save(step, &d, serde_json::json!({"step": step}), 2)
                .unwrap();
        }
        assert_eq!(c.steps().unwrap(), vec![20, 30]);
        let r = c.latest().unwrap().unwrap();
        assert_eq!((r.step, r.meta["step"].as_u64()), (30, Some(30)));
        assert_eq!(
            std::fs::read(r.dir.join("weights.bin")).unwrap(),
            vec![30u8; 1000]
        );
        assert_eq!(
            std::fs::read_to_string(r.dir.join("sub/state.json")).unwrap(),
            "{\"step\":30}"
        );
        // A damaged newest checkpoint is skipped for the one before.
        let stored = tmp
            .path()
            .join("store/checkpoints/key1/000000000030/weights.bin");
        std::fs::write(&stored, b"torn").unwrap();
        assert_eq!(c.latest().unwrap().unwrap().step, 20);
        // Files of a save that never got its marker are not a checkpoint.
        let d = tmp.path().join("save40");
        files(&d, 40);
        c.save(40, &d, serde_json::Value::Null, 2).unwrap();
        std::fs::remove_file(tmp.path().join("store/checkpoints/key1/000000000040.json")).unwrap();
        assert_eq!(c.steps().unwrap(), vec![30]);
    }

    #[test]
    fn finishing_deletes_them_unless_asked_to_keep_some() {
        let (tmp, _rt, c) = setup();
        for step in [1, 2, 3] {
            let d = tmp.path().join(format!("s{step}"));
            files(&d, step);
            c.save(step, &d, serde_json::Value::Null, 3).unwrap();
        }
        c.keep_after_commit(1);
        c.finish().unwrap();
        assert_eq!(c.steps().unwrap(), vec![3]);
        c.keep_after_commit(0);
        c.finish().unwrap();
        assert!(c.steps().unwrap().is_empty());
        assert!(!tmp.path().join("store/checkpoints/key1").exists());
    }
}
