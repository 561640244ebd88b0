//! A memo of results in the store, keyed by what produced them: the responses of a
//! generation endpoint keyed by the request, say. Unlike checkpoints, which belong to one
//! node execution and go when it commits, memo entries outlive the node, so a rerun with a
//! changed config, a retry and a `zest resume` after a crash all pay nothing for the work a
//! node already did.
//!
//! ```text
//! memo/<namespace>/<key[..2]>/<key>.json
//! ```
//!
//! The key must be a digest of everything that decides the value (the caller's job); an entry
//! is written whole, so a crash leaves it either complete or absent.

use crate::checkpoint::Checkpoints;
use anyhow::{bail, Result};

/// The memo entries of one namespace, in the node's store.
pub struct Memo<'a> {
    store: &'a Checkpoints,
    namespace: String,
}

impl std::fmt::Debug for Memo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Memo(memo/{})", self.namespace)
    }
}

fn valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !s.starts_with('.')
}

impl<'a> Memo<'a> {
    /// The entries of `namespace` (letters, digits, `-`, `_`, `.`), through the store access
    /// of the node's checkpoints.
    pub(crate) fn new(store: &'a Checkpoints, namespace: &str) -> Result<Memo<'a>> {
        if !valid(namespace) {
            bail!("memo namespace `{namespace}` must be letters, digits, `-`, `_` or `.`");
        }
        Ok(Memo {
            store,
            namespace: namespace.to_string(),
        })
    }

    fn path(&self, key: &str) -> Result<String> {
        if !valid(key) || key.len() < 3 {
            bail!("memo key `{key}` must be a digest (letters and digits)");
        }
        Ok(format!("memo/{}/{}/{key}.json", self.namespace, &key[..2]))
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let rel = self.path(key)?;
        self.store.run(|st| st.get_json(&rel))
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn put(&self, key: &str, value: &serde_json::Value) -> Result<()> {
        let rel = self.path(key)?;
        self.store.run(|st| st.put_json(&rel, value))
    }
}
