//! Sequence packing: several training sequences share one row, each with its own position ids
//! (restarting at 0) and a segment number, so that attention never crosses sequences
//! ([`crate::mask::Attention::Packed`]) and no token is scored against another sequence.

use crate::loss::IGNORE;

/// One packed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedRow {
    /// Token ids, padded to the row width with `pad_id`.
    pub input_ids: Vec<i64>,
    /// Labels (`IGNORE` on padding and on each sequence's first token).
    pub labels: Vec<i64>,
    /// Position ids, restarting at 0 for each sequence.
    pub positions: Vec<i64>,
    /// Which sequence of the row each token belongs to; `-1` on padding.
    pub segments: Vec<i64>,
}

/// Packs `(input_ids, labels)` sequences into rows of `width` tokens, best-fit decreasing
/// (longest first, each into the fullest row it fits in). A sequence longer than `width` is
/// truncated to it.
pub fn pack(sequences: &[(Vec<i64>, Vec<i64>)], width: usize, pad_id: i64) -> Vec<PackedRow> {
    let mut order: Vec<usize> = (0..sequences.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sequences[i].0.len().min(width)));
    let mut rows: Vec<(usize, Vec<usize>)> = Vec::new(); // (used, members)
    for i in order {
        let len = sequences[i].0.len().min(width);
        if len == 0 {
            continue;
        }
        let best = rows
            .iter_mut()
            .filter(|(used, _)| used + len <= width)
            .max_by_key(|(used, _)| *used);
        match best {
            Some((used, members)) => {
                *used += len;
                members.push(i);
            }
            None => rows.push((len, vec![i])),
        }
    }
    rows.into_iter()
        .map(|(_, members)| {
            let mut row = PackedRow {
                input_ids: Vec::with_capacity(width),
                labels: Vec::with_capacity(width),
                positions: Vec::with_capacity(width),
                segments: Vec::with_capacity(width),
            };
            for (seg, &i) in members.iter().enumerate() {
                let (ids, labels) = &sequences[i];
                let len = ids.len().min(width);
                row.input_ids.extend_from_slice(&ids[..len]);
                // The first token is never predicted from the previous sequence's last one.
                row.labels.push(IGNORE);
                row.labels.extend_from_slice(&labels[1..len]);
                row.positions.extend(0..len as i64);
                row.segments.extend(std::iter::repeat_n(seg as i64, len));
            }
            let pad = width - row.input_ids.len();
            row.input_ids.extend(std::iter::repeat_n(pad_id, pad));
            row.labels.extend(std::iter::repeat_n(IGNORE, pad));
            row.positions.extend(std::iter::repeat_n(0, pad));
            row.segments.extend(std::iter::repeat_n(-1, pad));
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_best_fit_with_restarting_positions() {
        let seq = |n: i64| {
            (
                (0..n).map(|t| 100 + t).collect(),
                (0..n).map(|t| 100 + t).collect(),
            )
        };
        let rows = pack(&[seq(5), seq(3), seq(2), seq(6)], 8, 0);
        assert_eq!(rows.len(), 2);
        // 6 + 2 in one row, 5 + 3 in the other.
        let r0 = &rows[0];
        assert_eq!(r0.segments, vec![0, 0, 0, 0, 0, 0, 1, 1]);
        assert_eq!(r0.positions, vec![0, 1, 2, 3, 4, 5, 0, 1]);
        assert_eq!(r0.labels[0], IGNORE);
        assert_eq!(r0.labels[6], IGNORE);
        assert_eq!(r0.labels[7], 101);
        assert_eq!(rows[1].segments, vec![0, 0, 0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn pads_and_truncates() {
        let rows = pack(
            &[(vec![1; 10], vec![1; 10]), (vec![2; 3], vec![IGNORE, 2, 2])],
            4,
            9,
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].input_ids, vec![1; 4]);
        assert_eq!(rows[1].input_ids, vec![2, 2, 2, 9]);
        assert_eq!(rows[1].segments, vec![0, 0, 0, -1]);
        assert_eq!(rows[1].labels, vec![IGNORE, 2, 2, IGNORE]);
    }
}
