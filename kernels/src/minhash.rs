//! MinHash signatures and LSH banding for near-duplicate detection.
//!
//! Defaults follow datatrove's MinHash deduplication: word 5-gram shingles of normalised text,
//! 14 bands of 8 rows (112 hash functions), 64-bit hashes. Each shingle is hashed once
//! (xxHash64); the 112 hash functions are the universal family `(a·h + b) mod p` with
//! `p = 2⁶¹ − 1` and `a`, `b` drawn from a seed, computed exactly in 128-bit arithmetic.
//! The estimate of the Jaccard similarity of two documents is the fraction of equal
//! signature entries; two documents are candidates when any band of 8 entries is equal.

use crate::rng::Rng;

/// The Mersenne prime 2⁶¹ − 1, the modulus of the hash family.
const P: u64 = (1 << 61) - 1;

/// How signatures are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinHashConfig {
    /// Words per shingle.
    pub ngram: usize,
    /// LSH bands.
    pub bands: usize,
    /// Signature entries per band.
    pub rows: usize,
    /// Seed of the hash family.
    pub seed: u64,
}

impl Default for MinHashConfig {
    fn default() -> Self {
        MinHashConfig {
            ngram: 5,
            bands: 14,
            rows: 8,
            seed: 1,
        }
    }
}

/// A MinHash signer: the hash family for one configuration.
#[derive(Debug, Clone)]
pub struct MinHasher {
    config: MinHashConfig,
    a: Vec<u64>,
    b: Vec<u64>,
}

impl MinHasher {
    /// The signer for `config`.
    pub fn new(config: MinHashConfig) -> Self {
        assert!(config.ngram > 0 && config.bands > 0 && config.rows > 0);
        let n = config.bands * config.rows;
        let mut rng = Rng::new(config.seed);
        let a = (0..n).map(|_| 1 + rng.next_u64() % (P - 1)).collect();
        let b = (0..n).map(|_| rng.next_u64() % P).collect();
        MinHasher { config, a, b }
    }

    /// The configuration.
    pub fn config(&self) -> &MinHashConfig {
        &self.config
    }

    /// The signature of a text: normalised, split into words, shingled.
    pub fn signature(&self, text: &str) -> Vec<u64> {
        let norm = normalize(text);
        let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
        self.signature_of_tokens(&words)
    }

    /// The signature of an already tokenised text (e.g. Chinese segmented into words).
    /// A text shorter than one shingle is one shingle.
    pub fn signature_of_tokens(&self, tokens: &[&str]) -> Vec<u64> {
        let n = self.a.len();
        let mut sig = vec![u64::MAX; n];
        let k = self.config.ngram.min(tokens.len().max(1));
        if tokens.is_empty() {
            return sig;
        }
        let mut buf = Vec::with_capacity(64);
        for window in tokens.windows(k) {
            buf.clear();
            for (i, w) in window.iter().enumerate() {
                if i > 0 {
                    buf.push(b' ');
                }
                buf.extend_from_slice(w.as_bytes());
            }
            let h = xxh64(&buf, 0) % P;
            for ((s, a), b) in sig.iter_mut().zip(&self.a).zip(&self.b) {
                let v = mod_p(u128::from(*a) * u128::from(h) + u128::from(*b));
                if v < *s {
                    *s = v;
                }
            }
        }
        sig
    }

    /// The LSH band keys of a signature: one 64-bit key per band.
    pub fn bands(&self, sig: &[u64]) -> Vec<u64> {
        sig.chunks(self.config.rows)
            .enumerate()
            .map(|(i, rows)| {
                let mut bytes = Vec::with_capacity(8 * rows.len());
                for r in rows {
                    bytes.extend_from_slice(&r.to_le_bytes());
                }
                xxh64(&bytes, i as u64)
            })
            .collect()
    }
}

/// The estimated Jaccard similarity of two signatures.
pub fn jaccard_estimate(a: &[u64], b: &[u64]) -> f64 {
    assert_eq!(a.len(), b.len(), "signatures of different configurations");
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len() as f64
}

/// `x mod (2⁶¹ − 1)` for `x < 2¹²²`.
fn mod_p(x: u128) -> u64 {
    let lo = (x as u64) & P;
    let hi = (x >> 61) as u64;
    let mut r = lo + (hi & P) + (hi >> 61);
    while r >= P {
        r -= P;
    }
    r
}

/// Text normalised as for deduplication: lower case, digits as `0`, punctuation and symbols
/// as spaces, runs of white space as one space.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_numeric() {
                out.push('0');
            } else {
                out.extend(c.to_lowercase());
            }
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// xxHash64 (Yann Collet's specification).
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const P3: u64 = 0x1656_67B1_9E37_79F9;
    const P4: u64 = 0x85EB_CA77_C2B2_AE63;
    const P5: u64 = 0x27D4_EB2F_1656_67C5;
    let read64 = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let read32 = |b: &[u8]| u64::from(u32::from_le_bytes(b[..4].try_into().expect("4 bytes")));
    let round = |acc: u64, lane: u64| {
        acc.wrapping_add(lane.wrapping_mul(P2))
            .rotate_left(31)
            .wrapping_mul(P1)
    };
    let merge = |acc: u64, v: u64| (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4);
    let len = data.len();
    let mut rest = data;
    let mut h = if len >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 32 {
            for (i, vi) in v.iter_mut().enumerate() {
                *vi = round(*vi, read64(&rest[8 * i..]));
            }
            rest = &rest[32..];
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for vi in v {
            h = merge(h, vi);
        }
        h
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(len as u64);
    while rest.len() >= 8 {
        h ^= round(0, read64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= read32(rest).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &byte in rest {
        h ^= u64::from(byte).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_matches_the_reference_values() {
        // Values from the xxHash reference implementation.
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition", 0),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    #[test]
    fn mod_p_is_exact() {
        for x in [
            0u128,
            1,
            P as u128,
            P as u128 + 5,
            u128::from(u64::MAX) * 977,
            (1u128 << 121) + 12345,
        ] {
            assert_eq!(u128::from(mod_p(x)), x % u128::from(P), "{x}");
        }
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            normalize("  Aspirin, 81 mg!  DAILY. "),
            "aspirin 00 mg daily"
        );
    }

    /// Exact Jaccard similarity of the word 5-gram sets of two texts.
    fn jaccard(a: &str, b: &str) -> f64 {
        let set = |t: &str| {
            let n = normalize(t);
            let w: Vec<&str> = n.split(' ').collect();
            w.windows(5)
                .map(|x| x.join(" "))
                .collect::<std::collections::HashSet<_>>()
        };
        let (x, y) = (set(a), set(b));
        x.intersection(&y).count() as f64 / x.union(&y).count() as f64
    }

    #[test]
    fn estimates_track_jaccard_and_bands_find_near_duplicates() {
        let m = MinHasher::new(MinHashConfig::default());
        // Words of letters only (normalisation turns digits into `0`).
        let word = |mut n: usize| {
            let mut w = String::new();
            for _ in 0..4 {
                w.push((b'a' + (n % 26) as u8) as char);
                n /= 26;
            }
            w
        };
        let base: Vec<String> = (0..200).map(|i| word(i * 7919 % 100_003)).collect();
        let a = base.join(" ");
        let mut near = base.clone();
        near[50] = "changed".into();
        near[150] = "edited".into();
        let b = near.join(" ");
        let other: Vec<String> = (0..200).map(|i| word(i * 104_729 % 99_991 + 7)).collect();
        let c = other.join(" ");
        let (sa, sb, sc) = (m.signature(&a), m.signature(&b), m.signature(&c));
        assert_eq!(sa.len(), 112);
        let (est, exact) = (jaccard_estimate(&sa, &sb), jaccard(&a, &b));
        assert!((est - exact).abs() < 0.12, "{est} vs {exact}");
        assert!(jaccard_estimate(&sa, &sc) < 0.05);
        let shared = |x: &[u64], y: &[u64]| {
            m.bands(x)
                .iter()
                .zip(m.bands(y))
                .filter(|(p, q)| *p == q)
                .count()
        };
        assert!(shared(&sa, &sb) > 0, "near duplicates share a band");
        assert_eq!(shared(&sa, &sc), 0);
        // Same text, same signature; signatures do not depend on the order of calls.
        assert_eq!(m.signature(&a), sa);
    }
}
