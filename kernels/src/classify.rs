//! A fastText-style supervised text classifier: hashed word unigrams, word n-grams and
//! character n-grams are looked up in an embedding table, averaged into a document vector, and
//! passed through a linear layer and a softmax over the labels. Training is plain SGD on the
//! cross-entropy loss with a learning rate that decays linearly to zero, one example at a time
//! on one thread, so a model is a pure function of its examples, its config and its seed.
//!
//! # Features
//!
//! Text is lower-cased and split into words on every character that is not alphanumeric; each
//! CJK character (Han, kana, Hangul) is a word of its own, so Chinese and Japanese text needs no
//! segmenter. A document's features are, each hashed (FNV-1a, 64-bit) into one of `buckets`
//! rows:
//!
//! - every word;
//! - every run of 2..=`word_ngrams` consecutive words;
//! - every character n-gram, `min_char_ngram..=max_char_ngram` characters long, of each word
//!   wrapped as `<word>` (none when `max_char_ngram` is 0).
//!
//! Rows of the embedding table start at zero and only rows that training touched are stored,
//! so a model with 2^20 buckets costs memory and disk in proportion to the vocabulary it saw.
//! An unseen feature at prediction time counts as a zero vector.
//!
//! # File format (version 1)
//!
//! All integers and floats are little-endian.
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `ZESTCLS1` |
//! | 4 | `u32` length `H` of the header |
//! | H | UTF-8 JSON header: `{"format_version": 1, "labels": [...], "config": {...}, "rows": R}` |
//! | 4·L·D | output weights, `f32`, label-major (L labels, D = `config.dim`) |
//! | 4·L | output biases, `f32` |
//! | 4·R | bucket ids of the stored embedding rows, `u32`, strictly increasing |
//! | 4·R·D | the embedding rows, `f32`, in the same order |
//! | 8 | FNV-1a 64 checksum of every byte before it |

use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The magic bytes that open a classifier file.
pub const MAGIC: &[u8; 8] = b"ZESTCLS1";
/// The version of the file format written by [`Classifier::to_bytes`].
pub const FORMAT_VERSION: u32 = 1;

/// Errors of training, loading and saving classifiers.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// The config is out of range; the message names the field.
    #[error("invalid classifier config: {0}")]
    Config(String),
    /// The training data cannot train a model.
    #[error("cannot train: {0}")]
    Data(String),
    /// A model file is malformed.
    #[error("not a valid classifier file: {0}")]
    Format(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Hyperparameters of a classifier: its features and its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Dimension of the embeddings and the document vector.
    pub dim: usize,
    /// Rows of the hashed embedding table.
    pub buckets: usize,
    /// The longest run of words hashed as one feature (1: unigrams only).
    pub word_ngrams: usize,
    /// The shortest character n-gram (inside `<word>`).
    pub min_char_ngram: usize,
    /// The longest character n-gram; 0 turns character n-grams off.
    pub max_char_ngram: usize,
    /// Passes over the training examples.
    pub epochs: usize,
    /// The initial learning rate, decayed linearly to zero over training.
    pub lr: f64,
    /// Seed of the initial output weights and of the order of examples.
    pub seed: u64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            dim: 32,
            buckets: 1 << 20,
            word_ngrams: 2,
            min_char_ngram: 3,
            max_char_ngram: 5,
            epochs: 10,
            lr: 0.5,
            seed: 1,
        }
    }
}

impl ClassifierConfig {
    /// Checks the ranges of every field; the error names the field.
    pub fn validate(&self) -> Result<(), ClassifyError> {
        let bad = |m: &str| Err(ClassifyError::Config(m.to_string()));
        if self.dim == 0 || self.dim > 1024 {
            return bad("`dim` must be in 1..=1024");
        }
        if self.buckets == 0 || self.buckets > u32::MAX as usize {
            return bad("`buckets` must be in 1..=4294967295");
        }
        if self.word_ngrams == 0 {
            return bad("`word_ngrams` must be at least 1");
        }
        if self.max_char_ngram > 0
            && (self.min_char_ngram == 0 || self.min_char_ngram > self.max_char_ngram)
        {
            return bad("`min_char_ngram` must be in 1..=`max_char_ngram`");
        }
        if self.epochs == 0 {
            return bad("`epochs` must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("`lr` must be a positive number");
        }
        Ok(())
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF
        | 0x3040..=0x30FF | 0xAC00..=0xD7AF)
}

/// Splits `text` into lower-cased words: runs of alphanumeric characters, with every CJK
/// character a word of its own.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            words.push(c.to_string());
        } else if c.is_alphanumeric() {
            cur.extend(c.to_lowercase());
        } else if !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// A final mix so that nearby hashes land in unrelated buckets.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The bucket ids of the features of `text` under `config` (see the module docs), with
/// repeats: a word that occurs twice counts twice.
pub fn features(text: &str, config: &ClassifierConfig) -> Vec<u32> {
    let words = tokenize(text);
    let buckets = config.buckets as u64;
    let word_hash: Vec<u64> = words
        .iter()
        .map(|w| fnv(fnv(FNV_OFFSET, b"w"), w.as_bytes()))
        .collect();
    let mut out = Vec::with_capacity(words.len() * 8);
    for (i, &h) in word_hash.iter().enumerate() {
        out.push((mix(h) % buckets) as u32);
        // Word n-grams ending here.
        let mut g = h;
        for n in 2..=config.word_ngrams {
            if i + 1 < n {
                break;
            }
            g = g
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(word_hash[i + 1 - n]);
            out.push((mix(g ^ ((n as u64) << 56)) % buckets) as u32);
        }
    }
    if config.max_char_ngram > 0 {
        let mut chars: Vec<char> = Vec::new();
        for w in &words {
            chars.clear();
            chars.push('<');
            chars.extend(w.chars());
            chars.push('>');
            for n in config.min_char_ngram..=config.max_char_ngram {
                if n > chars.len() {
                    break;
                }
                for s in 0..=chars.len() - n {
                    // A whole `<word>` is already the word feature.
                    if n == chars.len() && n > 3 {
                        continue;
                    }
                    let mut h = fnv(FNV_OFFSET, b"c");
                    let mut buf = [0u8; 4];
                    for c in &chars[s..s + n] {
                        h = fnv(h, c.encode_utf8(&mut buf).as_bytes());
                    }
                    out.push((mix(h) % buckets) as u32);
                }
            }
        }
    }
    out
}

/// Accuracy and per-label precision and recall of a classifier on labelled examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Examples evaluated.
    pub examples: usize,
    /// Share of examples whose top label is right.
    pub accuracy: f64,
    /// Precision, recall and support of each label, by label.
    pub per_label: BTreeMap<String, LabelMetrics>,
}

/// Precision and recall of one label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelMetrics {
    /// Of the examples predicted as this label, the share that have it (0 when none are).
    pub precision: f64,
    /// Of the examples that have this label, the share predicted as it (0 when none have it).
    pub recall: f64,
    /// Examples that have this label.
    pub support: usize,
}

/// A trained classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    config: ClassifierConfig,
    labels: Vec<String>,
    /// Output weights, `labels.len() × dim`, label-major.
    weights: Vec<f32>,
    /// Output biases, one per label.
    bias: Vec<f32>,
    /// Stored embedding rows by bucket id → index into `rows`.
    index: HashMap<u32, usize>,
    /// Stored embedding rows, `dim` floats each.
    rows: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format_version: u32,
    labels: Vec<String>,
    config: ClassifierConfig,
    rows: usize,
}

fn softmax(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for l in logits.iter_mut() {
        *l = (*l - max).exp();
        sum += *l;
    }
    for l in logits.iter_mut() {
        *l /= sum;
    }
}

impl Classifier {
    /// Trains a classifier on `texts` labelled by `labels` (the same length). The label set
    /// is the distinct labels, sorted; at least two are needed.
    pub fn train<S: AsRef<str>, L: AsRef<str>>(
        config: &ClassifierConfig,
        texts: &[S],
        labels: &[L],
    ) -> Result<Classifier, ClassifyError> {
        config.validate()?;
        if texts.len() != labels.len() {
            return Err(ClassifyError::Data(format!(
                "{} texts but {} labels",
                texts.len(),
                labels.len()
            )));
        }
        let names: Vec<String> = labels
            .iter()
            .map(|l| l.as_ref().to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if names.len() < 2 {
            return Err(ClassifyError::Data(format!(
                "need examples of at least two labels, found {:?}",
                names
            )));
        }
        if names.iter().any(|n| n.is_empty()) {
            return Err(ClassifyError::Data("a label is empty".into()));
        }
        let dim = config.dim;
        let label_of: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        // Features of every example, as dense row indices.
        let mut index: HashMap<u32, usize> = HashMap::new();
        let mut examples: Vec<(Vec<u32>, usize)> = Vec::with_capacity(texts.len());
        for (t, l) in texts.iter().zip(labels) {
            let f = features(t.as_ref(), config);
            if f.is_empty() {
                continue;
            }
            let dense: Vec<u32> = f
                .into_iter()
                .map(|b| {
                    let next = index.len();
                    *index.entry(b).or_insert(next) as u32
                })
                .collect();
            examples.push((dense, label_of[l.as_ref()]));
        }
        if examples.is_empty() {
            return Err(ClassifyError::Data("every text is empty".into()));
        }
        let n_labels = names.len();
        let mut rng = Rng::new(config.seed);
        let scale = 1.0 / dim as f64;
        let mut weights: Vec<f32> = (0..n_labels * dim)
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * scale) as f32)
            .collect();
        let mut bias = vec![0f32; n_labels];
        let mut rows = vec![0f32; index.len() * dim];
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let total = (examples.len() * config.epochs) as f64;
        let mut step = 0usize;
        let mut hidden = vec![0f32; dim];
        let mut grad = vec![0f32; dim];
        let mut probs = vec![0f32; n_labels];
        for _ in 0..config.epochs {
            // Fisher–Yates with the seeded generator.
            for i in (1..order.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            for &e in &order {
                let (feats, y) = &examples[e];
                let lr = (config.lr * (1.0 - step as f64 / total)) as f32;
                step += 1;
                hidden.iter_mut().for_each(|h| *h = 0.0);
                for &r in feats {
                    let row = &rows[r as usize * dim..(r as usize + 1) * dim];
                    for (h, v) in hidden.iter_mut().zip(row) {
                        *h += v;
                    }
                }
                let inv = 1.0 / feats.len() as f32;
                hidden.iter_mut().for_each(|h| *h *= inv);
                for (k, p) in probs.iter_mut().enumerate() {
                    let w = &weights[k * dim..(k + 1) * dim];
                    *p = bias[k] + w.iter().zip(&hidden).map(|(a, b)| a * b).sum::<f32>();
                }
                softmax(&mut probs);
                grad.iter_mut().for_each(|g| *g = 0.0);
                for (k, &p) in probs.iter().enumerate() {
                    // d(loss)/d(logit_k) = p_k - [k == y]
                    let g = p - if k == *y { 1.0 } else { 0.0 };
                    let w = &mut weights[k * dim..(k + 1) * dim];
                    for ((gi, wi), hi) in grad.iter_mut().zip(w.iter_mut()).zip(&hidden) {
                        *gi += g * *wi;
                        *wi -= lr * g * hi;
                    }
                    bias[k] -= lr * g;
                }
                let step_size = lr * inv;
                for &r in feats {
                    let row = &mut rows[r as usize * dim..(r as usize + 1) * dim];
                    for (v, g) in row.iter_mut().zip(&grad) {
                        *v -= step_size * g;
                    }
                }
            }
        }
        // Canonical layout: rows in increasing bucket order, as a loaded model has them.
        let mut ids: Vec<(u32, usize)> = index.iter().map(|(&b, &r)| (b, r)).collect();
        ids.sort_unstable();
        let mut sorted = Vec::with_capacity(rows.len());
        for (_, r) in &ids {
            sorted.extend_from_slice(&rows[r * dim..(r + 1) * dim]);
        }
        let index = ids.iter().enumerate().map(|(i, (b, _))| (*b, i)).collect();
        Ok(Classifier {
            config: config.clone(),
            labels: names,
            weights,
            bias,
            index,
            rows: sorted,
        })
    }

    /// The labels, sorted; probabilities are reported in this order by [`Classifier::probabilities`].
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The hyperparameters the model was trained with.
    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    /// Embedding rows the model stores.
    pub fn stored_rows(&self) -> usize {
        self.index.len()
    }

    /// The probability of every label (in the order of [`Classifier::labels`]); uniform for a
    /// text without features.
    pub fn probabilities(&self, text: &str) -> Vec<f64> {
        let dim = self.config.dim;
        let feats = features(text, &self.config);
        let n = self.labels.len();
        if feats.is_empty() {
            return vec![1.0 / n as f64; n];
        }
        let mut hidden = vec![0f32; dim];
        for b in &feats {
            if let Some(&r) = self.index.get(b) {
                let row = &self.rows[r * dim..(r + 1) * dim];
                for (h, v) in hidden.iter_mut().zip(row) {
                    *h += v;
                }
            }
        }
        let inv = 1.0 / feats.len() as f32;
        hidden.iter_mut().for_each(|h| *h *= inv);
        let mut logits: Vec<f32> = (0..n)
            .map(|k| {
                let w = &self.weights[k * dim..(k + 1) * dim];
                self.bias[k] + w.iter().zip(&hidden).map(|(a, b)| a * b).sum::<f32>()
            })
            .collect();
        softmax(&mut logits);
        logits.into_iter().map(f64::from).collect()
    }

    /// The `k` most probable labels with their probabilities, most probable first (ties by
    /// label order).
    pub fn predict(&self, text: &str, k: usize) -> Vec<(String, f64)> {
        let p = self.probabilities(text);
        let mut idx: Vec<usize> = (0..p.len()).collect();
        idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        idx.into_iter()
            .take(k)
            .map(|i| (self.labels[i].clone(), p[i]))
            .collect()
    }

    /// Accuracy and per-label precision and recall on `texts` labelled by `labels`. Labels
    /// the model does not know count as wrong predictions.
    pub fn evaluate<S: AsRef<str>, L: AsRef<str>>(&self, texts: &[S], labels: &[L]) -> Evaluation {
        let mut per: BTreeMap<String, (usize, usize, usize)> =
            self.labels.iter().map(|l| (l.clone(), (0, 0, 0))).collect(); // (true positives, predicted, support)
        let mut right = 0usize;
        for (t, l) in texts.iter().zip(labels) {
            let truth = l.as_ref();
            let pred = self
                .predict(t.as_ref(), 1)
                .into_iter()
                .next()
                .map(|p| p.0)
                .unwrap_or_default();
            per.entry(truth.to_string()).or_default().2 += 1;
            let e = per.entry(pred.clone()).or_default();
            e.1 += 1;
            if pred == truth {
                e.0 += 1;
                right += 1;
            }
        }
        let n = texts.len().min(labels.len());
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Evaluation {
            examples: n,
            accuracy: ratio(right, n),
            per_label: per
                .into_iter()
                .map(|(l, (tp, pred, sup))| {
                    (
                        l,
                        LabelMetrics {
                            precision: ratio(tp, pred),
                            recall: ratio(tp, sup),
                            support: sup,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The model in the binary format described in the module docs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&Header {
            format_version: FORMAT_VERSION,
            labels: self.labels.clone(),
            config: self.config.clone(),
            rows: self.index.len(),
        })
        .expect("the header serialises");
        let dim = self.config.dim;
        // Rows are kept in increasing bucket order (see `train` and `from_bytes`).
        let mut ids: Vec<(u32, usize)> = self.index.iter().map(|(&b, &r)| (b, r)).collect();
        ids.sort_unstable();
        let mut out = Vec::with_capacity(
            16 + header.len() + 4 * (self.weights.len() + self.bias.len() + ids.len() * (dim + 1)),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for v in self.weights.iter().chain(&self.bias) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for (b, _) in &ids {
            out.extend_from_slice(&b.to_le_bytes());
        }
        for (_, r) in &ids {
            for v in &self.rows[r * dim..(r + 1) * dim] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        let sum = fnv(FNV_OFFSET, &out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Reads a model written by [`Classifier::to_bytes`], checking every part of it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Classifier, ClassifyError> {
        let bad = |m: String| Err(ClassifyError::Format(m));
        if bytes.len() < 12 + 8 || &bytes[..8] != MAGIC {
            return bad("it does not start with the magic bytes `ZESTCLS1`".into());
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        let sum = u64::from_le_bytes(tail.try_into().expect("8 bytes"));
        if fnv(FNV_OFFSET, body) != sum {
            return bad("the checksum does not match (the file is truncated or corrupt)".into());
        }
        let hlen = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes")) as usize;
        if 12 + hlen > body.len() {
            return bad(format!("the header length {hlen} runs past the end"));
        }
        let header: Header = serde_json::from_slice(&body[12..12 + hlen])
            .map_err(|e| ClassifyError::Format(format!("bad JSON header: {e}")))?;
        if header.format_version != FORMAT_VERSION {
            return bad(format!(
                "format version {} is not supported (this build reads version {FORMAT_VERSION})",
                header.format_version
            ));
        }
        header
            .config
            .validate()
            .map_err(|e| ClassifyError::Format(format!("header config: {e}")))?;
        if header.labels.len() < 2 {
            return bad(format!(
                "the header lists {} labels; at least two are needed",
                header.labels.len()
            ));
        }
        let dim = header.config.dim;
        let n = header.labels.len();
        let r = header.rows;
        let expect = n * dim + n + r + r * dim;
        let data = &body[12 + hlen..];
        if data.len() != expect * 4 {
            return bad(format!(
                "the header promises {} bytes of weights ({n} labels, {r} rows of dimension \
                 {dim}), the file holds {}",
                expect * 4,
                data.len()
            ));
        }
        let mut floats = data.chunks_exact(4).map(|c| c.try_into().expect("4 bytes"));
        let mut take_f =
            |k: usize| -> Vec<f32> { floats.by_ref().take(k).map(f32::from_le_bytes).collect() };
        let weights = take_f(n * dim);
        let bias = take_f(n);
        let ids: Vec<u32> = data[4 * (n * dim + n)..4 * (n * dim + n + r)]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        if ids.windows(2).any(|w| w[0] >= w[1]) {
            return bad("row ids are not strictly increasing".into());
        }
        if ids
            .last()
            .is_some_and(|&b| b as usize >= header.config.buckets)
        {
            return bad("a row id is not below `buckets`".into());
        }
        let rows: Vec<f32> = data[4 * (n * dim + n + r)..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        if weights
            .iter()
            .chain(&bias)
            .chain(&rows)
            .any(|v| !v.is_finite())
        {
            return bad("a weight is not a finite number".into());
        }
        let index = ids.into_iter().enumerate().map(|(i, b)| (b, i)).collect();
        Ok(Classifier {
            config: header.config,
            labels: header.labels,
            weights,
            bias,
            index,
            rows,
        })
    }

    /// Writes the model to `path`.
    pub fn save(&self, path: &Path) -> Result<(), ClassifyError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| ClassifyError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads a model from `path`.
    pub fn load(path: &Path) -> Result<Classifier, ClassifyError> {
        let bytes = std::fs::read(path).map_err(|source| ClassifyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Classifier::from_bytes(&bytes).map_err(|e| match e {
            ClassifyError::Format(m) => ClassifyError::Format(format!("{}: {m}", path.display())),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPICS: [&[&str]; 3] = [
        &[
            "patient",
            "fever",
            "insulin",
            "diabetes",
            "therapy",
            "dose",
            "renal",
            "cardiac",
            "symptom",
            "diagnosis",
            "antibiotic",
            "tumor",
        ],
        &[
            "goal",
            "match",
            "striker",
            "league",
            "coach",
            "season",
            "referee",
            "stadium",
            "tournament",
            "penalty",
            "keeper",
            "derby",
        ],
        &[
            "stock",
            "market",
            "bond",
            "dividend",
            "investor",
            "inflation",
            "bank",
            "loan",
            "equity",
            "portfolio",
            "yield",
            "currency",
        ],
    ];
    const COMMON: &[&str] = &[
        "the", "a", "of", "and", "in", "was", "with", "for", "to", "on",
    ];

    fn corpus(seed: u64, n: usize) -> (Vec<String>, Vec<String>) {
        let mut rng = Rng::new(seed);
        let names = ["medical", "sport", "finance"];
        let (mut texts, mut labels) = (vec![], vec![]);
        for i in 0..n {
            let t = i % 3;
            let words: Vec<&str> = (0..15)
                .map(|_| {
                    // Mostly shared filler, a few topic words, and some noise from other topics.
                    let u = rng.uniform();
                    let pick = |r: &mut Rng, l: &[&'static str]| {
                        l[(r.next_u64() % l.len() as u64) as usize]
                    };
                    if u < 0.55 {
                        pick(&mut rng, COMMON)
                    } else if u < 0.95 {
                        pick(&mut rng, TOPICS[t])
                    } else {
                        let other = (t + 1 + (rng.next_u64() % 2) as usize) % 3;
                        pick(&mut rng, TOPICS[other])
                    }
                })
                .collect();
            texts.push(words.join(" "));
            labels.push(names[t].to_string());
        }
        (texts, labels)
    }

    fn small() -> ClassifierConfig {
        ClassifierConfig {
            buckets: 1 << 16,
            epochs: 5,
            ..ClassifierConfig::default()
        }
    }

    #[test]
    fn tokenizes_words_and_cjk_characters() {
        assert_eq!(
            tokenize("Type-2 Diabetes, 患者发热!"),
            vec!["type", "2", "diabetes", "患", "者", "发", "热"]
        );
        assert!(tokenize(" .,; ").is_empty());
        let c = ClassifierConfig::default();
        // one word: unigram + char n-grams of "<ab>" (3-grams "<ab", "ab>"; 4-gram skipped).
        assert_eq!(features("ab", &c).len(), 1 + 2);
        // two words: 2 unigrams + 1 bigram + char n-grams.
        let f = features("ab cd", &c);
        assert_eq!(f.len(), 2 + 1 + 4);
        assert!(f.iter().all(|&b| (b as usize) < c.buckets));
    }

    #[test]
    fn learns_a_separable_task() {
        let (tr_t, tr_l) = corpus(1, 600);
        let (te_t, te_l) = corpus(2, 300);
        let t0 = std::time::Instant::now();
        let m = Classifier::train(&small(), &tr_t, &tr_l).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let e = m.evaluate(&te_t, &te_l);
        eprintln!(
            "held-out accuracy {:.3}, trained 600×5 examples in {secs:.2}s",
            e.accuracy
        );
        assert!(e.accuracy >= 0.95, "{e:?}");
        assert_eq!(e.examples, 300);
        assert_eq!(e.per_label["sport"].support, 100);
        let top = m.predict("the insulin dose for diabetes", 3);
        assert_eq!(top.len(), 3);
        assert_eq!(top[0].0, "medical");
        let total: f64 = top.iter().map(|p| p.1).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert!(top[0].1 >= top[1].1 && top[1].1 >= top[2].1);
    }

    #[test]
    fn chinese_text_is_learnt() {
        let med = [
            "患者发热咳嗽三天",
            "糖尿病需要胰岛素治疗",
            "医生诊断为肺炎",
            "高血压患者服药",
        ];
        let fin = [
            "股票市场今天上涨",
            "银行提高贷款利率",
            "投资者买入债券",
            "通货膨胀影响货币",
        ];
        let mut texts = vec![];
        let mut labels = vec![];
        for _ in 0..20 {
            for m in med {
                texts.push(m);
                labels.push("med");
            }
            for f in fin {
                texts.push(f);
                labels.push("fin");
            }
        }
        let m = Classifier::train(&small(), &texts, &labels).unwrap();
        assert_eq!(m.predict("患者需要治疗", 1)[0].0, "med");
        assert_eq!(m.predict("市场利率上涨", 1)[0].0, "fin");
    }

    #[test]
    fn deterministic_under_a_seed() {
        let (t, l) = corpus(3, 150);
        let a = Classifier::train(&small(), &t, &l).unwrap();
        let b = Classifier::train(&small(), &t, &l).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        let c = Classifier::train(&ClassifierConfig { seed: 2, ..small() }, &t, &l).unwrap();
        assert_ne!(a.to_bytes(), c.to_bytes());
    }

    #[test]
    fn save_and_load_round_trip() {
        let (t, l) = corpus(4, 150);
        let m = Classifier::train(&small(), &t, &l).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        m.save(&path).unwrap();
        let back = Classifier::load(&path).unwrap();
        assert!(back == m, "the loaded model differs");
        for text in t
            .iter()
            .take(30)
            .chain(["unseen words entirely".to_string()].iter())
        {
            assert_eq!(back.probabilities(text), m.probabilities(text));
        }
        // Compact: only touched rows are stored.
        let size = std::fs::metadata(&path).unwrap().len() as usize;
        assert!(size < 4 * 32 * 4096, "{size} bytes");
    }

    #[test]
    fn bad_files_and_configs_are_refused_clearly() {
        let (t, l) = corpus(5, 30);
        let m = Classifier::train(&small(), &t, &l).unwrap();
        let bytes = m.to_bytes();
        let err = |b: &[u8]| Classifier::from_bytes(b).unwrap_err().to_string();
        assert!(err(b"hello world, not a model").contains("magic"));
        assert!(err(&bytes[..bytes.len() - 3]).contains("checksum"));
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert!(err(&flipped).contains("checksum"));
        let bad = ClassifierConfig {
            min_char_ngram: 6,
            ..small()
        };
        let e = Classifier::train(&bad, &t, &l).unwrap_err().to_string();
        assert!(e.contains("min_char_ngram"), "{e}");
        let e = Classifier::train(&small(), &["a", "b"], &["x", "x"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("two labels"), "{e}");
    }
}
