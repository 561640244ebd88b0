//! Deduplication of a whole corpus: exact duplicates (same normalised text) and near
//! duplicates (MinHash LSH candidates confirmed by their Jaccard estimate), merged into
//! clusters with union-find. The first document of each cluster is kept.
//!
//! Memory per document: its exact hash (8 bytes), band keys (8 bytes per band) and a compact
//! signature (4 bytes per hash, for the Jaccard estimate): 568 bytes with datatrove's 14 × 8.

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

    fn estimate(&self, a: u32, b: u32) -> f64 {
        let n = self.config.minhash.bands * self.config.minhash.rows;
        let sa = &self.sigs[a as usize * n..(a as usize + 1) * n];
        let sb = &self.sigs[b as usize * n..(b as usize + 1) * n];
        sa.iter().zip(sb).filter(|(x, y)| x == y).count() as f64 / n as f64
    }

    /// Clusters the documents.
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
            let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(n);
            for band in 0..nb {
                keyed.clear();
                keyed.extend((0..n).map(|i| (self.bands[i * nb + band], i as u32)));
                keyed.sort_unstable();
                let mut start = 0;
                while start < keyed.len() {
                    let mut end = start + 1;
                    while end < keyed.len() && keyed[end].0 == keyed[start].0 {
                        end += 1;
                    }
                    let first = keyed[start].1;
                    for k in start + 1..end {
                        let (doc, prev) = (keyed[k].1, keyed[k - 1].1);
                        if uf.find(doc) == uf.find(first) {
                            continue;
                        }
                        if self.estimate(doc, first) >= self.config.threshold {
                            uf.union(doc, first);
                        } else if self.estimate(doc, prev) >= self.config.threshold {
                            uf.union(doc, prev);
                        }
                    }
                    start = end;
                }
            }
        }
        let mut representative = Vec::with_capacity(n);
        let mut removed = Vec::with_capacity(n);
        for i in 0..n as u32 {
            let root = uf.find(i);
            representative.push(root);
            removed.push(if root == i {
                None
            } else if self.exact_hashes[i as usize] == self.exact_hashes[root as usize] {
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
