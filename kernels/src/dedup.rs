//! Deduplication of a whole corpus: exact duplicates (same normalised text) and near
//! duplicates (MinHash LSH candidates confirmed by their Jaccard estimate), merged into
//! clusters with union-find. The first document of each cluster is kept.
//!
//! Memory per document: its exact hash (8 bytes), band keys (8 bytes per band) and a compact
//! signature (4 bytes per hash, for the Jaccard estimate): 568 bytes with datatrove's 14 × 8.
//!
//! Sharded over many machines it is map → shuffle → reduce → merge: each shard hashes its
//! rows ([`DedupIndex::add_all`]) and splits the hashes by reducer ([`DedupIndex::shuffle`]:
//! exact hashes by value, band keys by band and key, so every exact class and every LSH
//! bucket is whole in one reducer); each reducer turns its classes and buckets into edges
//! ([`reduce`]); one merge joins them ([`Clusters::from_edges`]). The clusters are the
//! connected components of the same edges as on one machine ([`DedupIndex::finish`]), with
//! the same representatives (a cluster's first document), so the outputs are identical.
//! A band entry carries its document's signature, so the shuffle moves about
//! `bands × (16 + 4 × bands × rows)` bytes per document (6.5 KB with 14 × 8).

use crate::minhash::{normalize, xxh64, MinHashConfig, MinHasher};

/// Deduplication settings.
#[derive(Debug, Clone)]
pub struct DedupConfig {
    /// MinHash settings (shingle size, bands, rows, seed).
    pub minhash: MinHashConfig,
    /// Candidates are merged only when their estimated Jaccard similarity reaches this.
    pub threshold: f64,
    /// Remove exact duplicates (same normalised text).
    pub exact: bool,
    /// Remove near duplicates.
    pub near: bool,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            minhash: MinHashConfig::default(),
            threshold: 0.7,
            exact: true,
            near: true,
        }
    }
}

/// Why a document was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DupKind {
    /// Same normalised text as the kept document.
    Exact,
    /// Near duplicate of a document of its cluster.
    Near,
}

impl DupKind {
    /// `exact` or `near`.
    pub fn as_str(self) -> &'static str {
        match self {
            DupKind::Exact => "exact",
            DupKind::Near => "near",
        }
    }
}

/// Documents added so far, ready to be clustered.
pub struct DedupIndex {
    config: DedupConfig,
    hasher: MinHasher,
    exact_hashes: Vec<u64>,
    bands: Vec<u64>,
    sigs: Vec<u32>,
}

/// The outcome: for each document, the index of its cluster's kept document (itself when
/// kept) and, for removed documents, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clusters {
    /// Kept document of each document's cluster.
    pub representative: Vec<u32>,
    /// Why each document was removed (`None`: kept).
    pub removed: Vec<Option<DupKind>>,
}

impl Clusters {
    /// Documents kept.
    pub fn kept(&self) -> usize {
        self.removed.iter().filter(|r| r.is_none()).count()
    }
}

struct UnionFind(Vec<u32>);

impl UnionFind {
    fn find(&mut self, mut x: u32) -> u32 {
        while self.0[x as usize] != x {
            let parent = self.0[x as usize];
            self.0[x as usize] = self.0[parent as usize];
            x = parent;
        }
        x
    }

    /// Joins two sets; the root is the smaller index, so a root is its set's first document.
    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.0[hi as usize] = lo;
        }
    }
}

impl DedupIndex {
    /// An empty index.
    pub fn new(config: DedupConfig) -> DedupIndex {
        DedupIndex {
            hasher: MinHasher::new(config.minhash.clone()),
            config,
            exact_hashes: Vec::new(),
            bands: Vec::new(),
            sigs: Vec::new(),
        }
    }

    /// Documents added.
    pub fn len(&self) -> usize {
        self.exact_hashes.len()
    }

    /// Whether no document was added.
    pub fn is_empty(&self) -> bool {
        self.exact_hashes.is_empty()
    }

    /// Adds documents in order, hashing them on up to `threads` threads. Shingles are of
    /// words: white-space separated in alphabetic scripts, jieba's segmentation in Chinese.
    pub fn add_all(&mut self, texts: &[&str], threads: usize) {
        let per = texts.len().div_ceil(threads.max(1)).max(1);
        let hasher = &self.hasher;
        let near = self.config.near;
        let parts: Vec<(Vec<u64>, Vec<u64>, Vec<u32>)> = std::thread::scope(|s| {
            let handles: Vec<_> = texts
                .chunks(per)
                .map(|chunk| {
                    s.spawn(move || {
                        let mut exact = Vec::with_capacity(chunk.len());
                        let mut bands = Vec::new();
                        let mut sigs = Vec::new();
                        for t in chunk {
                            let norm = normalize(t);
                            exact.push(xxh64(norm.as_bytes(), 0));
                            if near {
                                let sig = hasher.signature_of_tokens(&words(&norm));
                                bands.extend(hasher.bands(&sig));
                                sigs.extend(sig.iter().map(|&h| h as u32));
                            }
                        }
                        (exact, bands, sigs)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("hashing thread"))
                .collect()
        });
        for (e, b, s) in parts {
            self.exact_hashes.extend(e);
            self.bands.extend(b);
            self.sigs.extend(s);
        }
    }

    /// Clusters the documents: exact duplicates (equal hashes) are joined, and in every LSH
    /// bucket each document is joined to the bucket's first document when their Jaccard
    /// estimate reaches the threshold, or else to the document before it when theirs does
    /// ([`bucket_edges`]). The clusters are the connected components of those edges, whatever
    /// order they are found in, which is what lets the sharded path (see the module's
    /// documentation) find the same ones on many machines.
    pub fn finish(self) -> Clusters {
        let n = self.len();
        let mut uf = UnionFind((0..n as u32).collect());
        if self.config.exact {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_by_key(|&i| (self.exact_hashes[i as usize], i));
            for w in order.windows(2) {
                if self.exact_hashes[w[0] as usize] == self.exact_hashes[w[1] as usize] {
                    uf.union(w[0], w[1]);
                }
            }
        }
        if self.config.near {
            let nb = self.config.minhash.bands;
            let sig_len = nb * self.config.minhash.rows;
            let sig = |d: u32| &self.sigs[d as usize * sig_len..(d as usize + 1) * sig_len];
            let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(n);
            let mut bucket: Vec<u32> = Vec::new();
            for band in 0..nb {
                keyed.clear();
                keyed.extend((0..n).map(|i| (self.bands[i * nb + band], i as u32)));
                keyed.sort_unstable();
                for group in keyed.chunk_by(|a, b| a.0 == b.0) {
                    if group.len() < 2 {
                        continue;
                    }
                    bucket.clear();
                    bucket.extend(group.iter().map(|e| e.1));
                    bucket_edges(&bucket, sig, self.config.threshold, &mut uf);
                }
            }
        }
        let exact_first = exact_firsts(&self.exact_hashes);
        Clusters::from_union_find(uf, &exact_first)
    }

    /// The documents' hashes split for `reducers` instances of [`reduce`]: exact hashes by
    /// their value, band keys by band and key, each band entry with its document's signature.
    /// Documents are numbered from `first_doc` (this shard's first row in the whole input).
    pub fn shuffle(&self, first_doc: u32, reducers: u32) -> Vec<Vec<u8>> {
        let reducers = reducers.max(1);
        let nb = self.config.minhash.bands;
        let sig_len = if self.config.near {
            nb * self.config.minhash.rows
        } else {
            0
        };
        let mut exact: Vec<Vec<(u64, u32)>> = vec![Vec::new(); reducers as usize];
        for (i, &h) in self.exact_hashes.iter().enumerate() {
            exact[(h % u64::from(reducers)) as usize].push((h, first_doc + i as u32));
        }
        let mut bands: Vec<Vec<(u32, u64, u32)>> = vec![Vec::new(); reducers as usize];
        if self.config.near {
            for i in 0..self.len() {
                for band in 0..nb {
                    let key = self.bands[i * nb + band];
                    let r = band_reducer(band as u32, key, reducers);
                    bands[r as usize].push((band as u32, key, i as u32));
                }
            }
        }
        exact
            .into_iter()
            .zip(bands)
            .map(|(ex, bs)| {
                let mut out =
                    Vec::with_capacity(HEADER + ex.len() * 12 + bs.len() * (16 + 4 * sig_len));
                out.extend_from_slice(SHUFFLE_MAGIC);
                for v in [ex.len(), bs.len(), sig_len] {
                    out.extend_from_slice(&(v as u32).to_le_bytes());
                }
                for (h, d) in ex {
                    out.extend_from_slice(&h.to_le_bytes());
                    out.extend_from_slice(&d.to_le_bytes());
                }
                for (band, key, local) in bs {
                    out.extend_from_slice(&band.to_le_bytes());
                    out.extend_from_slice(&key.to_le_bytes());
                    out.extend_from_slice(&(first_doc + local).to_le_bytes());
                    let l = local as usize;
                    for v in &self.sigs[l * sig_len..(l + 1) * sig_len] {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
                out
            })
            .collect()
    }
}

/// Joins, in one LSH bucket (its documents in increasing order), each document to the
/// bucket's first when their estimate reaches `threshold`, or else to the one before it when
/// theirs does. Pairs already in one cluster are not estimated again, which changes nothing:
/// either edge would join a cluster to itself.
fn bucket_edges<'a>(
    bucket: &[u32],
    sig: impl Fn(u32) -> &'a [u32],
    threshold: f64,
    uf: &mut impl Joins,
) {
    let first = bucket[0];
    for k in 1..bucket.len() {
        let (doc, prev) = (bucket[k], bucket[k - 1]);
        let root = uf.find(first);
        if uf.find(doc) == root && uf.find(prev) == root {
            continue;
        }
        if estimate(sig(doc), sig(first)) >= threshold {
            uf.join(doc, first);
        } else if k > 1 && estimate(sig(doc), sig(prev)) >= threshold {
            uf.join(doc, prev);
        }
    }
}

/// Something [`bucket_edges`] joins documents in: the clusters of one machine, or a
/// reducer's list of edges (with its own union-find to skip what is already joined).
trait Joins {
    fn find(&mut self, x: u32) -> u32;
    fn join(&mut self, a: u32, b: u32);
}

impl Joins for UnionFind {
    fn find(&mut self, x: u32) -> u32 {
        UnionFind::find(self, x)
    }
    fn join(&mut self, a: u32, b: u32) {
        self.union(a, b)
    }
}

/// The fraction of equal entries of two signatures.
fn estimate(a: &[u32], b: &[u32]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}

/// For each document, the first document with the same exact hash (itself when none is
/// earlier).
fn exact_firsts(hashes: &[u64]) -> Vec<u32> {
    let mut first: std::collections::HashMap<u64, u32> =
        std::collections::HashMap::with_capacity(hashes.len());
    hashes
        .iter()
        .enumerate()
        .map(|(i, h)| *first.entry(*h).or_insert(i as u32))
        .collect()
}

/// The reducer of a band key.
fn band_reducer(band: u32, key: u64, reducers: u32) -> u32 {
    let mixed = key ^ u64::from(band).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (crate::minhash::xxh64(&mixed.to_le_bytes(), 0) % u64::from(reducers)) as u32
}

const SHUFFLE_MAGIC: &[u8; 8] = b"ZDDSHUF1";
const EDGES_MAGIC: &[u8; 8] = b"ZDDEDGE1";
const HEADER: usize = 8 + 12;

/// A malformed part of a sharded deduplication.
#[derive(Debug, thiserror::Error)]
#[error("malformed deduplication part: {0}")]
pub struct PartError(String);

/// A little-endian reader over a part's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn open(bytes: &'a [u8], magic: &[u8; 8]) -> Result<Self, PartError> {
        if bytes.len() < 8 || &bytes[..8] != magic {
            return Err(PartError(format!(
                "it does not start with {}",
                String::from_utf8_lossy(magic)
            )));
        }
        Ok(Reader { bytes, at: 8 })
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], PartError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(PartError(format!(
                "truncated at byte {} of {}",
                self.at,
                self.bytes.len()
            )));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, PartError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, PartError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn end(&self) -> Result<(), PartError> {
        if self.at != self.bytes.len() {
            return Err(PartError(format!(
                "{} bytes after its end",
                self.bytes.len() - self.at
            )));
        }
        Ok(())
    }
}

/// The reduce of a sharded deduplication: its share of every shard's [`DedupIndex::shuffle`],
/// in shard order, to the edges of its exact-hash classes and LSH buckets, for
/// [`Clusters::from_edges`]. Every bucket is whole in one reducer, so the edges are those
/// [`DedupIndex::finish`] would find.
pub fn reduce(parts: &[&[u8]], threshold: f64) -> Result<Vec<u8>, PartError> {
    let mut exact: Vec<(u64, u32)> = Vec::new();
    let mut bands: Vec<(u32, u64, u32, usize)> = Vec::new();
    let mut sigs: Vec<u32> = Vec::new();
    let mut sig_len: Option<usize> = None;
    for bytes in parts {
        let mut r = Reader::open(bytes, SHUFFLE_MAGIC)?;
        let (ne, nb, sl) = (r.u32()? as usize, r.u32()? as usize, r.u32()? as usize);
        if nb > 0 && *sig_len.get_or_insert(sl) != sl {
            return Err(PartError(format!("signatures of {sl} hashes among others")));
        }
        for _ in 0..ne {
            exact.push((r.u64()?, r.u32()?));
        }
        for _ in 0..nb {
            let (band, key, doc) = (r.u32()?, r.u64()?, r.u32()?);
            bands.push((band, key, doc, sigs.len()));
            for _ in 0..sl {
                sigs.push(r.u32()?);
            }
        }
        r.end()?;
    }
    let sig_len = sig_len.unwrap_or(0);
    // Exact classes: each document after its class's first, with that first.
    exact.sort_unstable();
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for group in exact.chunk_by(|a, b| a.0 == b.0) {
        for e in &group[1..] {
            pairs.push((e.1, group[0].1));
        }
    }
    // Buckets: the same joins as one machine, recorded as edges.
    let mut edges = EdgeList::default();
    bands.sort_unstable_by_key(|e| (e.0, e.1, e.2));
    let mut bucket: Vec<u32> = Vec::new();
    for group in bands.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        if group.len() < 2 {
            continue;
        }
        bucket.clear();
        bucket.extend(group.iter().map(|e| e.2));
        let at: std::collections::HashMap<u32, usize> = group.iter().map(|e| (e.2, e.3)).collect();
        bucket_edges(
            &bucket,
            |d| &sigs[at[&d]..at[&d] + sig_len],
            threshold,
            &mut edges,
        );
    }
    let mut out = Vec::with_capacity(16 + 8 * (pairs.len() + edges.edges.len()));
    out.extend_from_slice(EDGES_MAGIC);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    out.extend_from_slice(&(edges.edges.len() as u32).to_le_bytes());
    for (a, b) in pairs.iter().chain(&edges.edges) {
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
    }
    Ok(out)
}

/// The edges a reducer found, with a union-find over the documents it has seen so that
/// pairs already joined are skipped as on one machine.
#[derive(Default)]
struct EdgeList {
    parent: std::collections::HashMap<u32, u32>,
    edges: Vec<(u32, u32)>,
}

impl Joins for EdgeList {
    fn find(&mut self, mut x: u32) -> u32 {
        loop {
            let p = *self.parent.entry(x).or_insert(x);
            if p == x {
                return x;
            }
            let gp = *self.parent.entry(p).or_insert(p);
            self.parent.insert(x, gp);
            x = gp;
        }
    }
    fn join(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent.insert(hi, lo);
        }
        self.edges.push((a, b));
    }
}

impl Clusters {
    /// The clusters of `n` documents from the reducers' outputs ([`reduce`]): exact classes
    /// are joined when `exact` is set, bucket edges always. Equal to [`DedupIndex::finish`]
    /// over the same documents with the same settings.
    pub fn from_edges(n: usize, parts: &[&[u8]], exact: bool) -> Result<Clusters, PartError> {
        let mut uf = UnionFind((0..n as u32).collect());
        let mut exact_first: Vec<u32> = (0..n as u32).collect();
        let check = |d: u32| {
            if (d as usize) < n {
                Ok(d)
            } else {
                Err(PartError(format!("document {d} of {n}")))
            }
        };
        for bytes in parts {
            let mut r = Reader::open(bytes, EDGES_MAGIC)?;
            let (np, ne) = (r.u32()?, r.u32()?);
            for _ in 0..np {
                let (d, first) = (check(r.u32()?)?, check(r.u32()?)?);
                exact_first[d as usize] = first;
                if exact {
                    uf.union(d, first);
                }
            }
            for _ in 0..ne {
                let (a, b) = (check(r.u32()?)?, check(r.u32()?)?);
                uf.union(a, b);
            }
            r.end()?;
        }
        Ok(Clusters::from_union_find(uf, &exact_first))
    }

    /// Each document's representative (its cluster's first document) and, for the others,
    /// exact when it has the same text as its representative, near otherwise.
    fn from_union_find(mut uf: UnionFind, exact_first: &[u32]) -> Clusters {
        let n = exact_first.len();
        let mut representative = Vec::with_capacity(n);
        let mut removed = Vec::with_capacity(n);
        for i in 0..n as u32 {
            let root = uf.find(i);
            representative.push(root);
            removed.push(if root == i {
                None
            } else if exact_first[i as usize] == exact_first[root as usize] {
                Some(DupKind::Exact)
            } else {
                Some(DupKind::Near)
            });
        }
        Clusters {
            representative,
            removed,
        }
    }
}

/// The words of normalised text: runs without Han characters as they are, runs with them
/// segmented by jieba (Chinese has no spaces, and one punctuation-delimited clause per word
/// would make shingles far too coarse to find near copies).
fn words(norm: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for w in norm.split(' ').filter(|w| !w.is_empty()) {
        if w.chars().any(crate::langid::is_han) {
            out.extend(crate::quality::chinese_words(w));
        } else {
            out.push(w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    const WORDS: &[&str] = &[
        "patient",
        "fever",
        "cough",
        "blood",
        "pressure",
        "diabetes",
        "insulin",
        "therapy",
        "chronic",
        "acute",
        "renal",
        "cardiac",
        "failure",
        "trial",
        "dose",
        "placebo",
        "risk",
        "outcome",
        "cohort",
        "study",
        "hospital",
        "treatment",
        "infection",
        "antibiotic",
        "symptom",
        "diagnosis",
        "imaging",
        "surgery",
        "recovery",
        "mortality",
        "the",
        "of",
        "and",
        "with",
        "in",
        "was",
        "were",
        "for",
        "after",
        "before",
    ];

    fn doc(rng: &mut Rng, len: usize) -> Vec<&'static str> {
        (0..len)
            .map(|_| WORDS[(rng.next_u64() % WORDS.len() as u64) as usize])
            .collect()
    }

    /// A copy with about `rate` of its words replaced.
    fn perturb(rng: &mut Rng, words: &[&'static str], rate: f64) -> Vec<&'static str> {
        words
            .iter()
            .map(|w| {
                if rng.uniform() < rate {
                    WORDS[(rng.next_u64() % WORDS.len() as u64) as usize]
                } else {
                    w
                }
            })
            .collect()
    }

    #[test]
    fn finds_planted_near_duplicates_with_high_precision_and_recall() {
        let mut rng = Rng::new(42);
        let mut texts: Vec<String> = Vec::new();
        let mut planted = Vec::new(); // (original index, copy index)
        for _ in 0..2000 {
            let words = doc(&mut rng, 200);
            texts.push(words.join(" "));
            if rng.uniform() < 0.25 {
                let copy = perturb(&mut rng, &words, 0.01);
                planted.push((texts.len() - 1, texts.len()));
                texts.push(copy.join(" "));
            }
        }
        // Exact copies with other case and punctuation.
        let exact_of = 3;
        texts.push(format!("{}!!", texts[exact_of].to_uppercase()));
        let exact_idx = texts.len() - 1;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut index = DedupIndex::new(DedupConfig::default());
        index.add_all(&refs, 2);
        let c = index.finish();
        assert_eq!(c.removed[exact_idx], Some(DupKind::Exact));
        assert_eq!(
            c.representative[exact_idx] as usize,
            c.representative[exact_of] as usize
        );
        let found = planted
            .iter()
            .filter(|(a, b)| c.representative[*a] == c.representative[*b])
            .count();
        let recall = found as f64 / planted.len() as f64;
        let removed_near: Vec<usize> = (0..texts.len())
            .filter(|&i| c.removed[i] == Some(DupKind::Near))
            .collect();
        let planted_copies: std::collections::HashSet<usize> =
            planted.iter().map(|p| p.1).collect();
        let true_pos = removed_near
            .iter()
            .filter(|i| planted_copies.contains(i))
            .count();
        let precision = true_pos as f64 / removed_near.len().max(1) as f64;
        eprintln!(
            "{} planted pairs: recall {recall:.4}, precision {precision:.4}",
            planted.len()
        );
        assert!(recall >= 0.95, "recall {recall}");
        assert!(precision >= 0.95, "precision {precision}");
    }

    /// The sharded path over `shards` contiguous shards, as the operator runs it.
    fn sharded(texts: &[&str], config: &DedupConfig, shards: u32) -> Clusters {
        let n = texts.len();
        let s = shards as usize;
        let parts: Vec<Vec<Vec<u8>>> = (0..s)
            .map(|i| {
                let (lo, hi) = (n * i / s, n * (i + 1) / s);
                let mut idx = DedupIndex::new(config.clone());
                idx.add_all(&texts[lo..hi], 2);
                idx.shuffle(lo as u32, shards)
            })
            .collect();
        let edges: Vec<Vec<u8>> = (0..s)
            .map(|j| {
                let mine: Vec<&[u8]> = parts.iter().map(|p| p[j].as_slice()).collect();
                reduce(&mine, config.threshold).unwrap()
            })
            .collect();
        let refs: Vec<&[u8]> = edges.iter().map(Vec::as_slice).collect();
        Clusters::from_edges(n, &refs, config.exact).unwrap()
    }

    #[test]
    fn sharded_clusters_equal_one_machine() {
        let mut rng = Rng::new(7);
        let mut texts: Vec<String> = Vec::new();
        for _ in 0..600 {
            let words = doc(&mut rng, 80);
            texts.push(words.join(" "));
            // Near copies at several distances, some far from their original, and exact
            // copies, so buckets mix all three.
            if rng.uniform() < 0.3 {
                texts.push(perturb(&mut rng, &words, 0.05).join(" "));
            }
            if rng.uniform() < 0.1 {
                texts.push(format!("{}.", words.join(" ").to_uppercase()));
            }
        }
        for i in (0..texts.len()).step_by(50) {
            let t = texts[i].clone();
            texts.push(t);
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for (exact, threshold) in [(true, 0.7), (false, 0.7), (true, 0.5)] {
            let config = DedupConfig {
                exact,
                threshold,
                ..Default::default()
            };
            let mut one = DedupIndex::new(config.clone());
            one.add_all(&refs, 2);
            let one = one.finish();
            assert!(one.kept() < texts.len() * 9 / 10, "duplicates were planted");
            for shards in [1, 2, 3, 4, 7] {
                assert_eq!(
                    sharded(&refs, &config, shards),
                    one,
                    "{shards} shards, exact {exact}, threshold {threshold}"
                );
            }
        }
    }

    #[test]
    fn malformed_parts_are_errors() {
        let mut idx = DedupIndex::new(DedupConfig::default());
        idx.add_all(&["a b c d e f", "a b c d e f"], 1);
        let parts = idx.shuffle(0, 1);
        let good = reduce(&[&parts[0]], 0.7).unwrap();
        let cut = &parts[0][..parts[0].len() - 3];
        assert!(reduce(&[cut], 0.7)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        assert!(reduce(&[b"not a part"], 0.7).is_err());
        assert!(Clusters::from_edges(1, &[&good], true)
            .unwrap_err()
            .to_string()
            .contains("document 1 of 1"));
        let c = Clusters::from_edges(2, &[&good], true).unwrap();
        assert_eq!(c.removed, vec![None, Some(DupKind::Exact)]);
    }

    #[test]
    fn keeps_the_first_document_of_each_cluster() {
        let texts = [
            "a b c d e f g h",
            "x y z w v u t s",
            "A b c d e f g h.",
            "a b c d e f g h",
        ];
        let mut index = DedupIndex::new(DedupConfig::default());
        index.add_all(&texts, 3);
        let c = index.finish();
        assert_eq!(c.representative, vec![0, 1, 0, 0]);
        assert_eq!(
            c.removed,
            vec![None, None, Some(DupKind::Exact), Some(DupKind::Exact)]
        );
        let mut index = DedupIndex::new(DedupConfig {
            exact: false,
            near: false,
            ..Default::default()
        });
        index.add_all(&texts, 1);
        assert_eq!(index.finish().kept(), 4);
    }

    #[test]
    fn chinese_near_copies_are_found_through_word_segmentation() {
        let text = "高血压是最常见的慢性病之一，也是心脑血管疾病最主要的危险因素。长期血压升高会损害心脏、大脑、肾脏和血管，\
                    导致冠心病、脑卒中、心力衰竭和慢性肾脏病等并发症。高血压的诊断以非同日三次测量的诊室血压为依据。\
                    家庭血压监测和动态血压监测有助于发现白大衣高血压和隐匿性高血压。生活方式干预是治疗的基础，\
                    包括减少钠盐摄入、增加钾摄入、控制体重、戒烟限酒、规律运动和保持心理平衡。";
        // One word changed and one clause dropped.
        let copy = text
            .replace("心力衰竭", "心功能不全")
            .replace("戒烟限酒、", "");
        let other = "糖尿病是一组以高血糖为特征的代谢性疾病，典型症状为多饮、多尿、多食和体重下降。\
                     空腹血糖和糖化血红蛋白是诊断和随访的重要指标。二甲双胍通常是二型糖尿病患者的首选药物。";
        assert!(words(&normalize(text)).len() > 60, "segmented into words");
        let mut idx = DedupIndex::new(DedupConfig::default());
        idx.add_all(&[text, &copy, other], 1);
        let c = idx.finish();
        assert_eq!(c.removed[1], Some(DupKind::Near), "{:?}", c.removed);
        assert_eq!(c.representative[1], 0);
        assert_eq!(c.removed[2], None);
    }
}
