//! The artifact store: immutable, content-addressed artifacts on object_store.
//!
//! Layout under the store root (a local directory or `s3://bucket/prefix`):
//!
//! ```text
//! artifacts/<digest>/<path>   payload, written first (absent for small artifacts)
//! manifests/<digest>.json      written last with put-if-absent: the commit point
//!                              (small artifacts carry their payload inline here)
//! cache/<cache-key>.json            outputs of a node execution, keyed by its cache key
//! runs/<run-id>.json                run records (remote stores; local runs live in the state dir)
//! checkpoints/<cache-key>/…         checkpoints a node saves while it runs (see `checkpoint`)
//! ```
//!
//! An artifact exists once its manifest exists. Readers never look at payload without a
//! manifest, so a crash between payload and manifest leaves only unreferenced payload, and two
//! writers of the same content write identical bytes.

use crate::digest::{self, FileEntry};
use crate::localfs;
use crate::operator::PortType;
use anyhow::{anyhow, bail, Context, Result};
use object_store::path::Path as OPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Who produced an artifact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Run id.
    pub run_id: String,
    /// DAG name.
    pub dag: String,
    /// Node id.
    pub node: String,
    /// Operator name.
    pub op: String,
    /// Operator version.
    pub op_version: String,
    /// Fingerprint of the operator's code.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op_code: String,
    /// Files read from outside the store, with the identity of their content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<crate::operator::ExternalFile>,
    /// Canonical config.
    pub config: serde_json::Value,
    /// The node execution's cache key.
    pub cache_key: String,
    /// Input artifact digests by port.
    pub inputs: BTreeMap<String, Vec<String>>,
    /// Trace id of the producing span (hex), if traced.
    #[serde(default)]
    pub trace_id: String,
    /// Span id of the producing node span (hex), if traced.
    #[serde(default)]
    pub span_id: String,
}

/// The committed description of one artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactManifest {
    /// Content digest.
    pub digest: String,
    /// Artifact type.
    pub kind: PortType,
    /// Files, sorted by path.
    pub files: Vec<FileEntry>,
    /// Total size in bytes.
    pub size: u64,
    /// Operator-reported metadata (dataset columns and rows, ...).
    #[serde(default)]
    pub meta: serde_json::Value,
    /// Small artifacts carry their payload here (base64 by path) instead of in `artifacts/`:
    /// one object per artifact, committed in one step.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inline: BTreeMap<String, String>,
    /// Who produced it first.
    pub provenance: Provenance,
    /// When it was committed (RFC 3339).
    pub created_at: String,
}

/// A committed output, as recorded in run records and cache entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRef {
    /// Content digest.
    pub digest: String,
    /// Artifact type.
    pub kind: PortType,
    /// Where it lives: a local path for local stores, an `s3://` URI otherwise.
    pub uri: String,
    /// Operator-reported metadata.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub meta: serde_json::Value,
}

/// The outputs of one node execution, stored under its cache key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The cache key.
    pub cache_key: String,
    /// Outputs by port.
    pub outputs: BTreeMap<String, OutputRef>,
    /// The execution that produced them.
    pub provenance: Provenance,
    /// When (RFC 3339).
    pub created_at: String,
}

/// An artifact store.
#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    /// The store's URL as given (absolute path for local stores).
    url: String,
    /// For local stores, the root directory.
    local_root: Option<PathBuf>,
    /// Prefix inside the bucket for remote stores.
    prefix: String,
    /// Where remote artifacts are downloaded to.
    download_dir: PathBuf,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ArtifactStore({})", self.url)
    }
}

/// Settings for S3-compatible stores beyond the standard AWS environment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct S3Options {
    /// A custom endpoint (e.g. `http://127.0.0.1:8333`).
    pub endpoint: Option<String>,
}

impl ArtifactStore {
    /// Opens a store: a local directory (created if missing) or `s3://bucket/prefix`.
    /// `download_dir` holds local copies of remote artifacts.
    pub fn open(url: &str, s3: &S3Options, download_dir: &Path) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("invalid store `{url}`: expected s3://bucket/prefix");
            }
            let store = crate::s3::build(bucket, s3)?;
            return Ok(ArtifactStore {
                store: Arc::new(store),
                url: url.trim_end_matches('/').to_string(),
                local_root: None,
                prefix: prefix.trim_matches('/').to_string(),
                download_dir: download_dir.to_path_buf(),
            });
        }
        if url.contains("://") {
            bail!("unsupported store `{url}`: use a local path or s3://bucket/prefix");
        }
        let root = PathBuf::from(url);
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create store directory {}", root.display()))?;
        let root = root.canonicalize()?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&root)?;
        Ok(ArtifactStore {
            store: Arc::new(store),
            url: root.display().to_string(),
            local_root: Some(root),
            prefix: String::new(),
            download_dir: download_dir.to_path_buf(),
        })
    }

    /// Opens a store that must exist already: for commands that only read or check it, so
    /// that a mistyped path is an error rather than a new, empty store.
    pub fn open_existing(url: &str, s3: &S3Options, download_dir: &Path) -> Result<Self> {
        if !url.contains("://") && !Path::new(url).is_dir() {
            bail!("no store at {url}: the directory does not exist (check --store / ZEST_STORE)");
        }
        Self::open(url, s3, download_dir)
    }

    /// The store's URL (absolute path for local stores).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The root directory of a local store.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Whether the store is a local directory.
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    fn key(&self, rel: &str) -> OPath {
        if self.prefix.is_empty() {
            OPath::from(rel)
        } else {
            OPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// Where an artifact lives, for people: a local path or an `s3://` URI.
    pub fn artifact_uri(&self, digest: &str) -> String {
        match &self.local_root {
            Some(r) => r.join("artifacts").join(digest).display().to_string(),
            None => format!("{}/artifacts/{digest}", self.url),
        }
    }

    fn describe_err(&self, what: &str, e: object_store::Error) -> anyhow::Error {
        // object_store's message stops at the outermost error; the cause (connection
        // refused, DNS, TLS) is further down the chain.
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            let t = s.to_string();
            if !msg.contains(&t) {
                msg.push_str(": ");
                msg.push_str(&t);
            }
            src = s.source();
        }
        anyhow!("store {}: {what}: {msg}", self.url)
    }

    /// Reads a JSON object; `Ok(None)` if it does not exist.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, rel: &str) -> Result<Option<T>> {
        if let Some(root) = &self.local_root {
            // Local fast path: small reads on the calling thread, no blocking-pool handoff.
            return match std::fs::read(root.join(rel)) {
                Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                    format!("store {}: {rel} is not valid JSON", self.url)
                })?)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(anyhow!("store {}: reading {rel}: {e}", self.url)),
            };
        }
        match self.store.get(&self.key(rel)).await {
            Ok(r) => {
                let bytes = r
                    .bytes()
                    .await
                    .map_err(|e| self.describe_err(&format!("reading {rel}"), e))?;
                let v = serde_json::from_slice(&bytes)
                    .with_context(|| format!("store {}: {rel} is not valid JSON", self.url))?;
                Ok(Some(v))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.describe_err(&format!("reading {rel}"), e)),
        }
    }

    /// Writes a JSON object, replacing any previous one.
    pub async fn put_json<T: Serialize>(&self, rel: &str, v: &T) -> Result<()> {
        let body = serde_json::to_vec_pretty(v)?;
        if let Some(root) = &self.local_root {
            return localfs::put_replace(&root.join(rel), &body)
                .with_context(|| format!("store {}: writing {rel}", self.url));
        }
        self.store
            .put(&self.key(rel), PutPayload::from(body))
            .await
            .map_err(|e| self.describe_err(&format!("writing {rel}"), e))?;
        Ok(())
    }

    /// Writes a JSON object only if none exists. Returns false if one already existed.
    pub async fn put_json_if_absent<T: Serialize>(&self, rel: &str, v: &T) -> Result<bool> {
        if let Some(root) = &self.local_root {
            return localfs::put_new(&root.join(rel), serde_json::to_vec_pretty(v)?)
                .with_context(|| format!("store {}: writing {rel}", self.url));
        }
        let body = PutPayload::from(serde_json::to_vec_pretty(v)?);
        match self
            .store
            .put_opts(&self.key(rel), body.clone(), PutMode::Create.into())
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) => {
                // The server cannot do conditional writes; content-addressed objects are
                // identical for every writer, so check-then-write is safe for them.
                if self.exists(rel).await? {
                    return Ok(false);
                }
                self.store
                    .put(&self.key(rel), body)
                    .await
                    .map_err(|e| self.describe_err(&format!("writing {rel}"), e))?;
                Ok(true)
            }
            Err(e) => Err(self.describe_err(&format!("writing {rel}"), e)),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, rel: &str) -> Result<bool> {
        if let Some(root) = &self.local_root {
            return Ok(root.join(rel).exists());
        }
        match self.store.head(&self.key(rel)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.describe_err(&format!("checking {rel}"), e)),
        }
    }

    /// The manifest of a committed artifact, or `None` if no such artifact is committed.
    pub async fn manifest(&self, digest: &str) -> Result<Option<ArtifactManifest>> {
        if !is_digest(digest) {
            bail!("`{digest}` is not an artifact digest (64 hex characters)");
        }
        self.get_json(&manifest_key(digest)).await
    }

    /// The reference to the artifact of type `kind` made of `files`.
    fn output_ref(
        &self,
        kind: PortType,
        files: &[FileEntry],
        meta: &serde_json::Value,
    ) -> OutputRef {
        let digest = digest::tree_digest(kind.as_str(), files);
        OutputRef {
            uri: self.artifact_uri(&digest),
            digest,
            kind,
            meta: meta.clone(),
        }
    }

    /// Commits the files under `dir` as an artifact of type `kind`: payload first, manifest
    /// last (put-if-absent). Identical content already committed is not written again.
    /// The directory's files are moved (local stores) or uploaded (remote stores). Also
    /// says whether this call created the artifact (false: it was committed before).
    pub async fn commit_dir(
        &self,
        kind: PortType,
        dir: &Path,
        meta: serde_json::Value,
        provenance: Provenance,
    ) -> Result<(OutputRef, bool)> {
        let scanned = digest::scan_dir(dir)
            .with_context(|| format!("cannot read output directory {}", dir.display()))?;
        let files: Vec<FileEntry> = scanned.iter().map(|(_, f)| f.clone()).collect();
        let out = self.output_ref(kind, &files, &meta);
        let digest = out.digest.clone();
        let mkey = manifest_key(&digest);
        // An artifact committed before is kept unless its bytes were damaged since: then
        // these new, verified files replace them.
        let existing = self.exists(&mkey).await?;
        if existing && self.payload_intact(&digest, &files).await? {
            return Ok((out, false));
        }
        if let Some(root) = &self.local_root {
            let art = root.join("artifacts").join(&digest);
            if existing {
                remove_tree(&art).with_context(|| {
                    format!("store {}: removing the damaged {}", self.url, art.display())
                })?;
            }
            // Move the whole directory into place: no copy, and no inode churn, which
            // ext4 makes slow when many small nodes create and delete files. A payload
            // directory that is already there was moved there whole by an earlier writer.
            if std::fs::rename(dir, &art).is_err() && !art.exists() {
                // Another file system: copy into a staging directory, then move it.
                let tmp = localfs::staging_name(&art);
                for (src, f) in &scanned {
                    let dst = tmp.join(&f.path);
                    std::fs::create_dir_all(dst.parent().expect("has parent"))?;
                    std::fs::copy(src, &dst)
                        .with_context(|| format!("copying {} into the store", src.display()))?;
                }
                std::fs::create_dir_all(&tmp)?;
                if std::fs::rename(&tmp, &art).is_err() {
                    let _ = remove_tree(&tmp);
                    if !art.exists() {
                        bail!(
                            "store {}: cannot move {} into place",
                            self.url,
                            art.display()
                        );
                    }
                }
            }
            seal(root, &digest, &files)
                .with_context(|| format!("store {}: sealing {}", self.url, art.display()))?;
        } else {
            for (src, f) in &scanned {
                self.put_file(src, &format!("artifacts/{digest}/{}", f.path))
                    .await?;
            }
        }
        let manifest = ArtifactManifest {
            digest: digest.clone(),
            kind,
            size: files.iter().map(|f| f.size).sum(),
            files,
            meta,
            inline: BTreeMap::new(),
            provenance,
            created_at: now_rfc3339(),
        };
        if existing {
            // Repaired: the manifest too is written again, in case it was the damaged part.
            self.put_json(&mkey, &manifest).await?;
            return Ok((out, true));
        }
        let created = self.put_json_if_absent(&mkey, &manifest).await?;
        Ok((out, created))
    }

    /// Whether the committed artifact `digest`, whose content is `files`, is still whole:
    /// its manifest parses and hashes to its digest, and every payload file has the recorded
    /// content (re-hashed locally; sizes checked remotely).
    async fn payload_intact(&self, digest: &str, files: &[FileEntry]) -> Result<bool> {
        let Ok(Some(m)) = self
            .get_json::<ArtifactManifest>(&manifest_key(digest))
            .await
        else {
            return Ok(false);
        };
        if m.files != files || digest::tree_digest(m.kind.as_str(), &m.files) != digest {
            return Ok(false);
        }
        match &self.local_root {
            Some(root) => {
                let dir = root.join("artifacts").join(digest);
                for f in files {
                    match digest::file_sha256(&dir.join(&f.path)) {
                        Ok((size, sha)) if size == f.size && sha == f.sha256 => {}
                        _ => return Ok(false),
                    }
                }
                Ok(true)
            }
            None => {
                for f in files {
                    let rel = format!("artifacts/{digest}/{}", f.path);
                    match self.store.head(&self.key(&rel)).await {
                        Ok(meta) if meta.size == f.size => {}
                        Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(false),
                        Err(e) => return Err(self.describe_err(&format!("checking {rel}"), e)),
                    }
                }
                Ok(true)
            }
        }
    }

    /// The cheap check made before a committed artifact is used (a cache hit, a resumed
    /// node's output, an input): in a local store, the payload's files still have the size,
    /// modification time and inode they were sealed with. A damaged artifact fails it, so
    /// its producer runs again and replaces it.
    pub fn quick_check(&self, digest: &str) -> Result<(), String> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        check_seal(root, digest)
    }

    /// Describes a small artifact given in memory (`(path, bytes)` pairs) whose payload goes
    /// inline into its manifest; commit it with [`ArtifactStore::put_manifest`] or
    /// [`ArtifactStore::commit_with_entry`]. Its digest is the one
    /// [`ArtifactStore::commit_dir`] gives the same files.
    pub fn prepare_inline(
        &self,
        kind: PortType,
        files: &BTreeMap<String, Vec<u8>>,
        meta: serde_json::Value,
        provenance: Provenance,
    ) -> (OutputRef, ArtifactManifest) {
        use base64::Engine as _;
        let entries: Vec<FileEntry> = files
            .iter()
            .map(|(path, bytes)| FileEntry {
                path: path.clone(),
                size: bytes.len() as u64,
                sha256: digest::sha256_hex(bytes),
            })
            .collect();
        let out = self.output_ref(kind, &entries, &meta);
        let manifest = ArtifactManifest {
            digest: out.digest.clone(),
            kind,
            size: entries.iter().map(|f| f.size).sum(),
            files: entries,
            meta,
            inline: files
                .iter()
                .map(|(p, b)| {
                    (
                        p.clone(),
                        base64::engine::general_purpose::STANDARD.encode(b),
                    )
                })
                .collect(),
            provenance,
            created_at: now_rfc3339(),
        };
        (out, manifest)
    }

    /// Commits an inline artifact: its manifest, put-if-absent (no existence check first:
    /// put-if-absent answers that in the same step). True if this call created it.
    pub async fn put_manifest(&self, manifest: &ArtifactManifest) -> Result<bool> {
        let key = manifest_key(&manifest.digest);
        if self.put_json_if_absent(&key, manifest).await? {
            return Ok(true);
        }
        self.repair_inline(manifest).await
    }

    /// After an inline artifact was found committed already: if that manifest (or the files
    /// written out from it) was damaged since, replace it with `manifest`. True if repaired.
    async fn repair_inline(&self, manifest: &ArtifactManifest) -> Result<bool> {
        let key = manifest_key(&manifest.digest);
        let intact = match self.get_json::<ArtifactManifest>(&key).await {
            Ok(Some(old)) => old.files == manifest.files && old.inline == manifest.inline,
            _ => false,
        };
        let files_ok = self.quick_check(&manifest.digest).is_ok();
        if intact && files_ok {
            return Ok(false);
        }
        if let Some(root) = &self.local_root {
            // Files written out from the manifest are written again from the new one.
            remove_tree(&root.join("artifacts").join(&manifest.digest))?;
            let _ = std::fs::remove_file(seal_path(root, &manifest.digest));
        }
        if !intact {
            self.put_json(&key, manifest).await?;
        }
        Ok(true)
    }

    /// Commits an inline artifact and then the cache entry of the node that produced it.
    /// In a local store both are one document (the union of their fields) under two names,
    /// so a node with a small output costs one file: it is linked as the manifest first (the
    /// commit point) and as the cache entry second. True if this call created the artifact.
    pub async fn commit_with_entry(
        &self,
        manifest: &ArtifactManifest,
        entry: &CacheEntry,
    ) -> Result<bool> {
        let Some(root) = &self.local_root else {
            let created = self.put_manifest(manifest).await?;
            self.cache_put(entry).await?;
            return Ok(created);
        };
        let mkey = manifest_key(&manifest.digest);
        let mut doc = serde_json::to_value(manifest)?;
        if let (Some(d), serde_json::Value::Object(e)) =
            (doc.as_object_mut(), serde_json::to_value(entry)?)
        {
            d.extend(e);
        }
        let mut u =
            localfs::Unnamed::new(&root.join("manifests"), serde_json::to_vec_pretty(&doc)?)
                .with_context(|| format!("store {}: writing {mkey}", self.url))?;
        let new = u
            .link(&root.join(&mkey))
            .with_context(|| format!("store {}: writing {mkey}", self.url))?;
        let ckey = cache_key_path(&entry.cache_key);
        // An artifact committed before carries another producer's provenance: record the
        // cache entry on its own then.
        if new && u.link(&root.join(&ckey)).unwrap_or(false) {
            return Ok(true);
        }
        let repaired = !new && self.repair_inline(manifest).await?;
        self.cache_put(entry).await?;
        Ok(new || repaired)
    }

    async fn put_file(&self, src: &Path, rel: &str) -> Result<()> {
        let size = std::fs::metadata(src)?.len();
        const PART: u64 = 16 << 20;
        if size <= PART {
            let data = tokio::fs::read(src).await?;
            self.store
                .put(&self.key(rel), PutPayload::from(data))
                .await
                .map_err(|e| self.describe_err(&format!("uploading {rel}"), e))?;
            return Ok(());
        }
        use tokio::io::AsyncReadExt;
        let upload = self
            .store
            .put_multipart(&self.key(rel))
            .await
            .map_err(|e| self.describe_err(&format!("uploading {rel}"), e))?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART as usize);
        let mut f = tokio::fs::File::open(src).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(4)
                .await
                .map_err(|e| self.describe_err(&format!("uploading {rel}"), e))?;
            w.write(&buf[..n]);
        }
        w.finish()
            .await
            .map_err(|e| self.describe_err(&format!("uploading {rel}"), e))?;
        Ok(())
    }

    /// A local directory holding the artifact's files, and its manifest: the store itself for
    /// local stores, a verified download (kept for later tasks) otherwise.
    pub async fn materialize(&self, digest: &str) -> Result<(PathBuf, ArtifactManifest)> {
        if self.local_root.is_some() {
            return self.materialize_local(digest);
        }
        let dest = self.download_dir.join(digest);
        if let Ok(text) = std::fs::read(dest.join("manifest.json")) {
            if let Ok(m) = serde_json::from_slice::<ArtifactManifest>(&text) {
                let files = dest.join("files");
                let whole = m.files.iter().all(|f| {
                    std::fs::metadata(files.join(&f.path)).is_ok_and(|md| md.len() == f.size)
                });
                if whole && check_seal_at(&dest.join("seal.json"), &files).is_ok() {
                    return Ok((files, m));
                }
            }
            // A damaged download is fetched again.
            remove_tree(&dest)?;
        }
        let manifest = self
            .manifest(digest)
            .await?
            .ok_or_else(|| anyhow!("artifact {digest} is not committed in store {}", self.url))?;
        let tmp = self
            .download_dir
            .join(format!(".{digest}.{}.tmp", localfs::pid()));
        let _ = remove_tree(&tmp);
        std::fs::create_dir_all(tmp.join("files"))?;
        for f in &manifest.files {
            let rel = format!("artifacts/{digest}/{}", f.path);
            let bytes = match inline_payload(&manifest, &f.path)? {
                Some(b) => bytes::Bytes::from(b),
                None => {
                    let r = self
                        .store
                        .get(&self.key(&rel))
                        .await
                        .map_err(|e| self.describe_err(&format!("downloading {rel}"), e))?;
                    r.bytes()
                        .await
                        .map_err(|e| self.describe_err(&format!("downloading {rel}"), e))?
                }
            };
            if digest::sha256_hex(&bytes) != f.sha256 {
                bail!(
                    "store {}: {rel} does not match its manifest digest (corrupt or tampered)",
                    self.url
                );
            }
            let p = tmp.join("files").join(&f.path);
            std::fs::create_dir_all(p.parent().expect("has parent"))?;
            std::fs::write(&p, &bytes)?;
        }
        make_read_only(&tmp.join("files"))?;
        std::fs::write(
            tmp.join("seal.json"),
            serde_json::to_vec(&seal_of(&tmp.join("files"), &manifest.files)?)?,
        )?;
        // The manifest is written last: its presence marks a complete download.
        std::fs::write(tmp.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
        match std::fs::rename(&tmp, &dest) {
            Ok(()) => {}
            Err(_) if dest.join("manifest.json").exists() => {
                let _ = remove_tree(&tmp);
            }
            Err(e) => return Err(e.into()),
        }
        Ok((dest.join("files"), manifest))
    }

    /// [`ArtifactStore::materialize`] for local stores, without a runtime: the artifact's
    /// payload directory, written out from the manifest first for inline artifacts.
    pub fn materialize_local(&self, digest: &str) -> Result<(PathBuf, ArtifactManifest)> {
        let root = self
            .local_root
            .as_ref()
            .ok_or_else(|| anyhow!("store {} is not local", self.url))?;
        if !is_digest(digest) {
            bail!("`{digest}` is not an artifact digest (64 hex characters)");
        }
        let manifest: ArtifactManifest = match std::fs::read(root.join(manifest_key(digest))) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| {
                format!("store {}: manifest of {digest} is not valid JSON", self.url)
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("artifact {digest} is not committed in store {}", self.url)
            }
            Err(e) => bail!("store {}: reading the manifest of {digest}: {e}", self.url),
        };
        let files_dir = root.join("artifacts").join(digest);
        if files_dir.exists() || (manifest.inline.is_empty() && !manifest.files.is_empty()) {
            if let Err(e) = check_seal(root, digest) {
                bail!(
                    "store {}: artifact {digest} is damaged ({e}); run its producer again to replace it",
                    self.url
                );
            }
            return Ok((files_dir, manifest));
        }
        // Inline (or empty) artifact seen for the first time: write its files next to the
        // manifest, verified, under a temporary name, then move them into place.
        let tmp = localfs::staging_name(&files_dir);
        std::fs::create_dir_all(&tmp)?;
        for f in &manifest.files {
            let bytes = inline_payload(&manifest, &f.path)?.ok_or_else(|| {
                anyhow!(
                    "store {}: artifact {digest} has no payload for {}",
                    self.url,
                    f.path
                )
            })?;
            if digest::sha256_hex(&bytes) != f.sha256 {
                let _ = remove_tree(&tmp);
                bail!(
                    "store {}: inline payload {} of {digest} does not match its digest (corrupt or tampered)",
                    self.url,
                    f.path
                );
            }
            let p = tmp.join(&f.path);
            std::fs::create_dir_all(p.parent().expect("has parent"))?;
            std::fs::write(&p, &bytes)?;
        }
        if std::fs::rename(&tmp, &files_dir).is_err() {
            let _ = remove_tree(&tmp);
            if !files_dir.exists() {
                bail!("store {}: cannot write the files of {digest}", self.url);
            }
        } else {
            seal(root, digest, &manifest.files)?;
        }
        Ok((files_dir, manifest))
    }

    /// The cache entry for a key, if its outputs are all still committed.
    pub async fn cache_lookup(&self, key: &str) -> Result<Option<CacheEntry>> {
        let Some(entry) = self.get_json::<CacheEntry>(&cache_key_path(key)).await? else {
            return Ok(None);
        };
        if !self.all_committed(&entry.outputs).await? {
            return Ok(None);
        }
        Ok(Some(entry))
    }

    /// Whether every output's artifact is committed (its manifest exists) and passes the
    /// [`ArtifactStore::quick_check`].
    pub async fn all_committed(&self, outputs: &BTreeMap<String, OutputRef>) -> Result<bool> {
        for o in outputs.values() {
            if !self.exists(&manifest_key(&o.digest)).await? || self.quick_check(&o.digest).is_err()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Records the outputs of a node execution under its cache key. An existing entry with
    /// the same outputs is kept as it is; one with other outputs (a `--no-cache` rerun of a
    /// nondeterministic node) is replaced, so the cache names the newest outputs.
    pub async fn cache_put(&self, entry: &CacheEntry) -> Result<()> {
        let rel = cache_key_path(&entry.cache_key);
        if self.put_json_if_absent(&rel, entry).await? {
            return Ok(());
        }
        if let Ok(Some(old)) = self.get_json::<CacheEntry>(&rel).await {
            if old.outputs == entry.outputs {
                return Ok(());
            }
        }
        self.put_json(&rel, entry).await
    }

    /// Re-hashes every file of an artifact and compares with its manifest.
    pub async fn verify(&self, digest: &str) -> Result<()> {
        if self.local_root.is_none() {
            // Check the store's bytes, not an earlier download.
            let _ = remove_tree(&self.download_dir.join(digest));
        }
        let (files_dir, m) = self.materialize(digest).await?;
        for f in &m.files {
            if let Some(bytes) = inline_payload(&m, &f.path)? {
                if bytes.len() as u64 != f.size || digest::sha256_hex(&bytes) != f.sha256 {
                    bail!(
                        "artifact {digest}: inline {} does not match its manifest",
                        f.path
                    );
                }
            }
            let (size, sha) = digest::file_sha256(&files_dir.join(&f.path))
                .with_context(|| format!("artifact {digest}: {}", f.path))?;
            if size != f.size || sha != f.sha256 {
                bail!("artifact {digest}: {} does not match its manifest", f.path);
            }
        }
        if digest::tree_digest(m.kind.as_str(), &m.files) != digest {
            bail!("artifact {digest}: manifest does not hash to its digest");
        }
        if files_dir.exists() {
            let mut found = 0usize;
            let mut stack = vec![files_dir.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d)? {
                    let e = e?;
                    if e.file_type()?.is_dir() {
                        stack.push(e.path());
                    } else {
                        found += 1;
                    }
                }
            }
            if found != m.files.len() {
                bail!(
                    "artifact {digest}: {found} files in {} but {} in its manifest",
                    files_dir.display(),
                    m.files.len()
                );
            }
        }
        Ok(())
    }

    /// Copies a local file to object `rel`, replacing any previous one: for a local store a
    /// staged copy renamed into place, for a remote one an upload (multipart above 16 MiB, so
    /// large files never sit in memory whole).
    pub async fn put_object_file(&self, rel: &str, src: &Path) -> Result<()> {
        if let Some(root) = &self.local_root {
            let dst = root.join(rel);
            if let Some(dir) = dst.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("store {}: creating {}", self.url, dir.display()))?;
            }
            let tmp = localfs::staging_name(&dst);
            std::fs::copy(src, &tmp)
                .with_context(|| format!("store {}: writing {rel}", self.url))?;
            std::fs::File::open(&tmp).and_then(|f| f.sync_all()).ok();
            return std::fs::rename(&tmp, &dst)
                .with_context(|| format!("store {}: writing {rel}", self.url));
        }
        self.put_file(src, rel).await
    }

    /// Copies object `rel` to the local file `dst` (replaced). `Ok(false)` if there is no
    /// such object.
    pub async fn get_file(&self, rel: &str, dst: &Path) -> Result<bool> {
        if let Some(dir) = dst.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if let Some(root) = &self.local_root {
            return match std::fs::copy(root.join(rel), dst) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(anyhow!("store {}: reading {rel}: {e}", self.url)),
            };
        }
        use futures::StreamExt;
        use std::io::Write;
        let r = match self.store.get(&self.key(rel)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(self.describe_err(&format!("reading {rel}"), e)),
        };
        let mut out =
            std::fs::File::create(dst).with_context(|| format!("writing {}", dst.display()))?;
        let mut stream = r.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.describe_err(&format!("reading {rel}"), e))?;
            out.write_all(&chunk)
                .with_context(|| format!("writing {}", dst.display()))?;
        }
        Ok(true)
    }

    /// The objects under `prefix` (relative names, sorted).
    pub async fn list_under(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.trim_end_matches('/');
        if let Some(root) = &self.local_root {
            let mut out = vec![];
            let base = root.join(prefix);
            let mut stack = vec![base.clone()];
            while let Some(d) = stack.pop() {
                let rd = match std::fs::read_dir(&d) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(anyhow!("store {}: listing {prefix}: {e}", self.url)),
                };
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if let Ok(rel) = p.strip_prefix(root) {
                        // Staged copies (`localfs::staging_name`) are not objects yet.
                        let name = e.file_name().to_string_lossy().into_owned();
                        if !(name.starts_with('.') && name.ends_with(".tmp")) {
                            out.push(rel.to_string_lossy().into_owned());
                        }
                    }
                }
            }
            out.sort();
            return Ok(out);
        }
        use futures::TryStreamExt;
        let metas: Vec<_> = self
            .store
            .list(Some(&self.key(prefix)))
            .try_collect()
            .await
            .map_err(|e| self.describe_err(&format!("listing {prefix}"), e))?;
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut out: Vec<String> = metas
            .iter()
            .map(|m| {
                let l = m.location.to_string();
                l.strip_prefix(&strip).map(str::to_string).unwrap_or(l)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Deletes object `rel`; a missing object is not an error.
    pub async fn delete(&self, rel: &str) -> Result<()> {
        if let Some(root) = &self.local_root {
            return match std::fs::remove_file(root.join(rel)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(anyhow!("store {}: deleting {rel}: {e}", self.url)),
            };
        }
        match self.store.delete(&self.key(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.describe_err(&format!("deleting {rel}"), e)),
        }
    }

    /// Digests of all committed artifacts.
    pub async fn list_artifacts(&self) -> Result<Vec<String>> {
        use futures::TryStreamExt;
        let prefix = self.key("manifests");
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.describe_err("listing artifacts", e))?;
        let mut out: Vec<String> = metas
            .iter()
            .filter_map(|m| {
                m.location
                    .filename()?
                    .strip_suffix(".json")
                    .map(str::to_string)
            })
            .filter(|d| is_digest(d))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// What a local artifact's payload looked like when it was committed: every file's and
/// directory's size, modification time and inode. Edits, truncation, removed and added files
/// change one of them, so comparing is a cheap check before use; `store verify` re-hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Seal {
    entries: Vec<(String, u64, i64, u64)>,
}

fn seal_path(root: &Path, digest: &str) -> PathBuf {
    root.join("seals").join(format!("{digest}.json"))
}

fn stat_entry(p: &Path) -> std::io::Result<(u64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p)?;
    let size = if m.is_dir() { 0 } else { m.size() };
    Ok((size, m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.ino()))
}

/// Makes the payload in `dir` read-only and records its seal.
fn seal_of(dir: &Path, files: &[FileEntry]) -> Result<Seal> {
    let mut paths: std::collections::BTreeSet<String> = Default::default();
    paths.insert(String::new());
    for f in files {
        let mut p = f.path.as_str();
        paths.insert(p.to_string());
        while let Some((parent, _)) = p.rsplit_once('/') {
            paths.insert(parent.to_string());
            p = parent;
        }
    }
    let mut entries = vec![];
    for p in paths {
        let (size, mtime, ino) = stat_entry(&dir.join(&p))
            .with_context(|| format!("reading {}", dir.join(&p).display()))?;
        entries.push((p, size, mtime, ino));
    }
    Ok(Seal { entries })
}

/// Makes a committed local payload read-only and writes its seal.
fn seal(root: &Path, digest: &str, files: &[FileEntry]) -> Result<()> {
    let dir = root.join("artifacts").join(digest);
    if !dir.exists() {
        return Ok(());
    }
    make_read_only(&dir)?;
    let seal = seal_of(&dir, files)?;
    localfs::put_replace(&seal_path(root, digest), &serde_json::to_vec(&seal)?)?;
    Ok(())
}

fn check_seal(root: &Path, digest: &str) -> std::result::Result<(), String> {
    check_seal_at(
        &seal_path(root, digest),
        &root.join("artifacts").join(digest),
    )
}

/// Compares `dir` with the seal at `seal`; no seal (an artifact never written out, or one
/// from an older store) passes.
fn check_seal_at(seal: &Path, dir: &Path) -> std::result::Result<(), String> {
    let Ok(bytes) = std::fs::read(seal) else {
        return Ok(());
    };
    let seal: Seal =
        serde_json::from_slice(&bytes).map_err(|e| format!("its seal is unreadable: {e}"))?;
    for (p, size, mtime, ino) in &seal.entries {
        let name = if p.is_empty() { "its directory" } else { p };
        match stat_entry(&dir.join(p)) {
            Ok(now) if now == (*size, *mtime, *ino) => {}
            Ok(_) if p.is_empty() || !dir.join(p).is_file() => {
                return Err(format!("files were added or removed in {name}"))
            }
            Ok(_) => return Err(format!("`{name}` was changed after it was committed")),
            Err(_) => return Err(format!("`{name}` was removed after it was committed")),
        }
    }
    Ok(())
}

/// Removes write permission from every file and directory under `dir`.
fn make_read_only(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    let mut dirs = vec![];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let ty = e.file_type()?;
            if ty.is_dir() {
                stack.push(e.path());
            } else if ty.is_file() {
                std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o444))?;
            }
        }
        dirs.push(d);
    }
    // Directories last, deepest first, so that their mtimes are final when sealed.
    for d in dirs.iter().rev() {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555))?;
    }
    Ok(())
}

/// Removes a tree that may be read-only (a sealed payload); a missing one is fine.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    std::fs::remove_dir_all(path)
}

/// Whether process `pid` is alive.
fn pid_alive(pid: u32) -> bool {
    pid != 0
        && unsafe {
            libc::kill(pid as libc::pid_t, 0) == 0 || *libc::__errno_location() == libc::EPERM
        }
}

/// The pid in a staging name `.<name>.<pid>-<n>.tmp` or a download's `.<digest>.<pid>.tmp`.
fn staging_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, tail) = inner.rsplit_once('.')?;
    tail.split('-').next()?.parse().ok()
}

/// Something an interrupted commit or download left in a local store.
#[derive(Debug, Clone, PartialEq)]
pub struct Leftover {
    /// The path.
    pub path: PathBuf,
    /// Bytes it holds.
    pub bytes: u64,
    /// What it is.
    pub what: &'static str,
}

/// The bytes held by the files under `p` (or the file `p`).
pub fn tree_bytes(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

impl ArtifactStore {
    /// What interrupted commits and downloads left behind in a local store: staging files
    /// and directories of processes that are gone, and payload directories older than
    /// `min_age` that no manifest names (a crash between payload and manifest). Remote
    /// stores: only the local downloads directory is looked at.
    pub fn leftovers(&self, min_age: std::time::Duration) -> Result<Vec<Leftover>> {
        let mut out = vec![];
        let mut dirs = vec![(self.download_dir.clone(), "interrupted download")];
        if let Some(root) = &self.local_root {
            for d in ["artifacts", "manifests", "cache", "seals", "runs"] {
                dirs.push((root.join(d), "temporary file of an interrupted commit"));
            }
        }
        for (dir, what) in dirs {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = staging_pid(&name) {
                    if !pid_alive(pid) {
                        out.push(Leftover {
                            bytes: tree_bytes(&e.path()),
                            path: e.path(),
                            what,
                        });
                    }
                }
            }
        }
        if let Some(root) = &self.local_root {
            for e in std::fs::read_dir(root.join("artifacts"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                if !is_digest(&name) || root.join(manifest_key(&name)).exists() {
                    continue;
                }
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|a| a >= min_age);
                if old {
                    out.push(Leftover {
                        bytes: tree_bytes(&e.path()),
                        path: e.path(),
                        what: "payload without a manifest (an interrupted commit)",
                    });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Removes [`ArtifactStore::leftovers`]; returns what was removed.
    pub fn gc(&self, min_age: std::time::Duration) -> Result<Vec<Leftover>> {
        let found = self.leftovers(min_age)?;
        for l in &found {
            remove_tree(&l.path).with_context(|| format!("removing {}", l.path.display()))?;
        }
        Ok(found)
    }
}

/// Where a cache entry lives, relative to the store root.
fn cache_key_path(key: &str) -> String {
    format!("cache/{key}.json")
}

/// Where an artifact's manifest lives, relative to the store root.
fn manifest_key(digest: &str) -> String {
    format!("manifests/{digest}.json")
}

/// The decoded inline payload of `path`, if the manifest carries one.
/// The bytes of file `path` of an artifact committed inline in its manifest, if it was.
pub fn inline_payload(m: &ArtifactManifest, path: &str) -> Result<Option<Vec<u8>>> {
    use base64::Engine as _;
    match m.inline.get(path) {
        None => Ok(None),
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(Some)
            .map_err(|e| {
                anyhow!(
                    "artifact {}: inline {path} is not valid base64: {e}",
                    m.digest
                )
            }),
    }
}

/// Whether `s` looks like an artifact digest.
pub fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The current time in RFC 3339 with milliseconds, UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
