//! Cache resolution: a node's cache key, from everything it reads, and whether the store
//! already holds outputs for it. `zest run` and `zest plan` both ask [`resolve`], so the
//! plan says exactly what the run will do.

use crate::digest::canonical_json;
use crate::operator::ExternalFile;
use crate::plan::PlanNode;
use crate::store::{ArtifactStore, CacheEntry};
use anyhow::Result;
use std::collections::BTreeMap;
use std::time::Instant;

/// Computes a node execution's cache key from everything it reads: its operator's name,
/// version and code fingerprint, its canonical config, its input artifacts' digests and the
/// content identities of the files it reads from outside the store; and, for an instance of a
/// sharded node, its stage, index and shard count.
pub fn cache_key(
    node: &PlanNode,
    inputs: &BTreeMap<String, Vec<String>>,
    files: &[ExternalFile],
) -> String {
    let mut v = serde_json::json!({
        "op": node.op.name(),
        "version": node.op.version(),
        "code": node.op.code(),
        "config": node.config,
        "inputs": inputs,
        "files": files,
    });
    // Only sharded instances carry it, so the keys of nodes run whole are unchanged.
    if let Some(s) = &node.shard {
        v["shard"] = serde_json::json!(s);
    }
    crate::digest::sha256_hex(canonical_json(&v).as_bytes())
}

/// The files outside the store that `node` reads, with their content identities (see
/// [`crate::operator::Operator::external_files`]); hashed on a blocking thread.
pub async fn external_files(node: &PlanNode) -> Result<Vec<ExternalFile>> {
    if !node.op.reads_files() {
        return Ok(vec![]);
    }
    let op = node.op.clone();
    let config = node.config.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || op.external_files(&config, &rt))
        .await
        .map_err(|e| anyhow::anyhow!("reading the node's files: {e}"))?
}

/// The cache key of a node whose files could not be read: it matches nothing, so the node
/// runs (and reports the problem itself) and its outputs are never served for other files.
fn unmatched_key() -> String {
    crate::digest::sha256_hex(
        format!(
            "unreadable files {} {:?}",
            rand::random::<u64>(),
            Instant::now()
        )
        .as_bytes(),
    )
}

/// Why the cache was not asked for a node's outputs.
#[derive(Debug)]
pub enum NotLooked {
    /// The node says `cache: false`.
    CacheOff,
    /// The run ignores cached outputs (`--no-cache`).
    NoCache,
    /// An input was created by this run, so no cache entry can name it yet (unless it was
    /// deleted and made again: skipping the lookup then only costs a rerun).
    FreshInput,
    /// The node's files could not be read, so its key matches nothing.
    UnreadableFiles(String),
}

/// What the cache said of a node.
#[derive(Debug)]
pub enum Lookup {
    /// Committed outputs of an earlier execution with the same key.
    Hit(Box<CacheEntry>),
    /// No outputs for this key.
    Miss,
    /// Not asked.
    NotLooked(NotLooked),
    /// The store did not answer.
    Failed(anyhow::Error),
}

/// A node's cache key and what the cache holds for it.
#[derive(Debug)]
pub struct Resolution {
    /// The key of the node's execution.
    pub key: String,
    /// The files it reads from outside the store (part of the key).
    pub files: Vec<ExternalFile>,
    /// What the cache said.
    pub lookup: Lookup,
}

/// Resolves `node` with the digests of its `inputs` against `store`. `fresh` tells which
/// input digests this run has just created.
pub async fn resolve(
    node: &PlanNode,
    inputs: &BTreeMap<String, Vec<String>>,
    store: &ArtifactStore,
    no_cache: bool,
    fresh: impl Fn(&str) -> bool,
) -> Resolution {
    let files = match external_files(node).await {
        Ok(f) => f,
        Err(e) => {
            return Resolution {
                key: unmatched_key(),
                files: vec![],
                lookup: Lookup::NotLooked(NotLooked::UnreadableFiles(format!("{e:#}"))),
            }
        }
    };
    let key = cache_key(node, inputs, &files);
    let not_looked = if no_cache {
        Some(NotLooked::NoCache)
    } else if !node.cache {
        Some(NotLooked::CacheOff)
    } else if inputs.values().flatten().any(|d| fresh(d)) {
        Some(NotLooked::FreshInput)
    } else {
        None
    };
    let lookup = match not_looked {
        Some(why) => Lookup::NotLooked(why),
        None => match store.cache_lookup(&key).await {
            Ok(Some(entry)) => Lookup::Hit(Box::new(entry)),
            Ok(None) => Lookup::Miss,
            Err(e) => Lookup::Failed(e),
        },
    };
    Resolution { key, files, lookup }
}
