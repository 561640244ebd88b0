//! Replay of pre-training text during `train.sft`: the `replay` input's documents tokenized as
//! `train.cpt` tokenizes them, cut into rows that carry the loss on every token, and drawn
//! under the seed so that they make up `replay.ratio` of every epoch's units.

use crate::common::order;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use zest_engine::operator::OpContext;
use zest_kernels::text_tokenizer::TextTokenizer;
use zest_operators::train::data::read_texts;
use zest_operators::train::sft::ReplayConfig;

/// The order stream of replayed rows (the fine-tuning units use stream 0).
const STREAM: usize = 2;

/// What replay added, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayStats {
    /// Documents read from the `replay` input.
    pub documents: usize,
    /// Rows of `seq_len` tokens they gave.
    pub rows: usize,
    /// Rows added to the training units (repeating rows when there are fewer).
    pub used: usize,
    /// The share of the units they make up.
    pub ratio: f64,
    /// Tokens per row.
    pub seq_len: usize,
}

/// `tokens` cut into rows of `seq_len` (a shorter last row is dropped, unless it is the only
/// one).
pub fn cut(tokens: &[i64], seq_len: usize) -> Vec<&[i64]> {
    let mut rows: Vec<&[i64]> = tokens.chunks_exact(seq_len).collect();
    if rows.is_empty() && tokens.len() >= 2 {
        rows.push(tokens);
    }
    rows
}

/// `k` of `rows` drawn in a seeded order, the order repeated (redrawn) when `k` exceeds them.
pub fn draw(rows: &[&[i64]], k: usize, seed: u64) -> Vec<Vec<i64>> {
    if rows.is_empty() {
        return vec![];
    }
    let mut out = Vec::with_capacity(k);
    let mut pass = 0;
    while out.len() < k {
        for i in order(rows.len(), seed, STREAM, pass) {
            if out.len() == k {
                break;
            }
            out.push(rows[i as usize].to_vec());
        }
        pass += 1;
    }
    out
}

/// The replayed rows for `units` fine-tuning units, read from the `replay` input.
pub fn rows(
    ctx: &OpContext,
    tok: &TextTokenizer,
    c: &ReplayConfig,
    max_length: usize,
    units: usize,
    seed: u64,
) -> Result<(Vec<Vec<i64>>, ReplayStats)> {
    let texts = read_texts(ctx, "replay", "replay.text_column", &c.text_column)?;
    if texts.is_empty() {
        bail!("input `replay`: no document has text to replay");
    }
    let tokens =
        crate::cpt::tokenize(tok, &texts, ctx.threads()).context("tokenizing input `replay`")?;
    let seq_len = c.seq_len(max_length);
    let all = cut(&tokens, seq_len);
    let picked = draw(&all, c.rows_for(units), seed);
    let stats = ReplayStats {
        documents: texts.len(),
        rows: all.len(),
        used: picked.len(),
        ratio: c.ratio,
        seq_len,
    };
    Ok((picked, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_cut_drawn_under_the_seed_and_repeated_when_few() {
        let tokens: Vec<i64> = (0..10).collect();
        // Three rows of 3 (the tenth token is dropped), five drawn: one pass, then two more.
        let rows = cut(&tokens, 3);
        assert_eq!(rows.len(), 3);
        let a = draw(&rows, 5, 7);
        assert_eq!(a.len(), 5);
        let mut first: Vec<Vec<i64>> = a[..3].to_vec();
        first.sort();
        assert_eq!(first, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8]]);
        assert!(a.iter().all(|r| r.len() == 3 && !r.contains(&9)));
        assert_eq!(a, draw(&rows, 5, 7), "the same seed draws the same rows");
        assert_ne!(
            a[..3],
            draw(&rows, 5, 8)[..3],
            "another seed, another order"
        );
        assert!(draw(&rows, 0, 7).is_empty());
        // Shorter than one row: the text itself is the row.
        assert_eq!(draw(&cut(&tokens[..4], 8), 2, 1), vec![vec![0, 1, 2, 3]; 2]);
    }

    #[test]
    fn the_ratio_sets_the_share_of_replayed_rows() {
        let c = |ratio| ReplayConfig {
            ratio,
            ..ReplayConfig::default()
        };
        assert_eq!(c(0.0).rows_for(100), 0);
        assert_eq!(c(0.25).rows_for(90), 30);
        assert_eq!(c(0.5).rows_for(64), 64);
    }
}
