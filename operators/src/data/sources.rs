//! Input files named by paths or globs, local or `s3://bucket/key`: expanded to a sorted list
//! of sources that can be sized and read, for the loaders and the ingest operators.

use anyhow::{anyhow, bail, Context, Result};
use object_store::{ObjectStore, ObjectStoreExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use zest_engine::operator::ExternalFile;

/// One input file, local or in an S3 bucket.
#[derive(Clone)]
pub struct Source {
    location: String,
    s3: Option<(String, Arc<dyn ObjectStore>)>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location)
    }
}

impl Source {
    /// The absolute local path, or the `s3://bucket/key` URL.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// For an S3 source: the bucket's URL and its store, to register with DataFusion.
    pub fn object_store(&self) -> Option<(url::Url, Arc<dyn ObjectStore>)> {
        let (bucket, store) = self.s3.as_ref()?;
        let url = url::Url::parse(&format!("s3://{bucket}")).ok()?;
        Some((url, store.clone()))
    }

    fn key(&self) -> object_store::path::Path {
        let (bucket, _) = self.s3.as_ref().expect("s3 source");
        let key = &self.location["s3://".len() + bucket.len() + 1..];
        object_store::path::Path::from(key)
    }

    /// The size in bytes.
    pub async fn size(&self) -> Result<u64> {
        match &self.s3 {
            None => Ok(std::fs::metadata(&self.location)
                .with_context(|| format!("cannot read {}", self.location))?
                .len()),
            Some((_, store)) => Ok(store
                .head(&self.key())
                .await
                .with_context(|| format!("cannot read {}", self.location))?
                .size),
        }
    }

    /// The whole content.
    pub async fn read(&self) -> Result<Vec<u8>> {
        match &self.s3 {
            None => std::fs::read(&self.location)
                .with_context(|| format!("cannot read {}", self.location)),
            Some((_, store)) => Ok(store
                .get(&self.key())
                .await
                .with_context(|| format!("cannot read {}", self.location))?
                .bytes()
                .await
                .with_context(|| format!("cannot read {}", self.location))?
                .to_vec()),
        }
    }
}

/// The files that `patterns` name now, each with the identity of its content (local: its
/// sha256, cached by size, times and inode; S3: its ETag and size), for cache keys.
pub async fn fingerprint(patterns: &[String]) -> Result<Vec<ExternalFile>> {
    let mut out = vec![];
    for s in expand(patterns).await? {
        let content = match &s.s3 {
            None => zest_engine::digest::local_file_id(std::path::Path::new(&s.location))
                .with_context(|| format!("cannot read {}", s.location))?,
            Some((_, store)) => {
                let m = store
                    .head(&s.key())
                    .await
                    .with_context(|| format!("cannot read {}", s.location))?;
                match m.e_tag {
                    Some(tag) => format!("etag:{}:{}", tag.trim_matches('"'), m.size),
                    // No ETag: the content itself.
                    None => format!(
                        "sha256:{}",
                        zest_engine::digest::sha256_hex(&s.read().await?)
                    ),
                }
            }
        };
        out.push(ExternalFile {
            location: s.location,
            content,
        });
    }
    Ok(out)
}

/// [`fingerprint`] of local files that exist (missing ones are left out), for files that
/// change what an operator does without being its data: libraries, models.
pub fn fingerprint_present(paths: &[std::path::PathBuf]) -> Result<Vec<ExternalFile>> {
    let mut out = vec![];
    for p in paths.iter().filter(|p| p.is_file()) {
        let p = p.canonicalize()?;
        out.push(ExternalFile {
            content: zest_engine::digest::local_file_id(&p)
                .with_context(|| format!("cannot read {}", p.display()))?,
            location: p.display().to_string(),
        });
    }
    Ok(out)
}

/// Whether a path is a glob pattern.
pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands paths and globs, local or `s3://`, to sources: each pattern's matches sorted, in
/// the order of the patterns, without repeats. A plain path must exist; a glob must match.
pub async fn expand(patterns: &[String]) -> Result<Vec<Source>> {
    let mut stores: BTreeMap<String, Arc<dyn ObjectStore>> = BTreeMap::new();
    let mut out: Vec<Source> = vec![];
    let mut seen = std::collections::HashSet::new();
    for p in patterns {
        let found = if let Some(rest) = p.strip_prefix("s3://") {
            let bucket = rest.split('/').next().unwrap_or("").to_string();
            let store = match stores.get(&bucket) {
                Some(s) => s.clone(),
                None => {
                    let s: Arc<dyn ObjectStore> =
                        Arc::new(zest_engine::s3::build(&bucket, &Default::default())?);
                    stores.insert(bucket.clone(), s.clone());
                    s
                }
            };
            expand_s3(p, &store)
                .await?
                .into_iter()
                .map(|location| Source {
                    location,
                    s3: Some((bucket.clone(), store.clone())),
                })
                .collect::<Vec<_>>()
        } else {
            expand_local(p)?
                .into_iter()
                .map(|location| Source { location, s3: None })
                .collect()
        };
        for s in found {
            if seen.insert(s.location.clone()) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Expands a local glob (sorted) or checks that a plain path exists.
fn expand_local(pattern: &str) -> Result<Vec<String>> {
    if !has_glob(pattern) {
        let p = std::path::Path::new(pattern);
        if !p.is_file() {
            bail!("`{pattern}`: no such file");
        }
        return Ok(vec![std::fs::canonicalize(p)?.display().to_string()]);
    }
    let mut out = vec![];
    for entry in glob::glob(pattern).map_err(|e| anyhow!("bad glob `{pattern}`: {e}"))? {
        let p = entry?;
        if p.is_file() {
            out.push(std::fs::canonicalize(&p)?.display().to_string());
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("`{pattern}` matches no files");
    }
    Ok(out)
}

/// Expands an `s3://bucket/key-or-glob` against the bucket listing.
async fn expand_s3(pattern: &str, store: &Arc<dyn ObjectStore>) -> Result<Vec<String>> {
    use futures::TryStreamExt;
    let rest = pattern.strip_prefix("s3://").expect("s3 url");
    let (bucket, key) = rest
        .split_once('/')
        .ok_or_else(|| anyhow!("`{pattern}`: expected s3://bucket/key"))?;
    let prefix: String = key
        .chars()
        .take_while(|c| !matches!(c, '*' | '?' | '['))
        .collect();
    let dir = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let pat = glob::Pattern::new(key).map_err(|e| anyhow!("bad glob `{pattern}`: {e}"))?;
    let list_prefix = (!dir.is_empty()).then(|| object_store::path::Path::from(dir));
    let metas: Vec<_> = store
        .list(list_prefix.as_ref())
        .try_collect()
        .await
        .with_context(|| format!("listing s3://{bucket}/{dir}"))?;
    let mut out: Vec<String> = metas
        .into_iter()
        .map(|m| m.location.to_string())
        .filter(|k| {
            if has_glob(key) {
                pat.matches(k)
            } else {
                k == key
            }
        })
        .map(|k| format!("s3://{bucket}/{k}"))
        .collect();
    out.sort();
    if out.is_empty() {
        bail!("`{pattern}` matches no objects");
    }
    Ok(out)
}
