//! Which keys each query may attend to: causal, causal with padding, or causal within packed
//! sequences.

use tch::{Device, Kind, Tensor};

/// The attention pattern of one forward pass.
#[derive(Debug)]
pub enum Attention<'a> {
    /// Causal over the whole row, no padding: the fused kernels' `is_causal` path.
    Causal,
    /// Causal, with `mask` (`[batch, past + seq]`, 1 for real tokens, 0 for padding) covering
    /// the cached keys and the new ones.
    Padded(&'a Tensor),
    /// Several sequences packed in one row: `segments` (`[batch, seq]`) numbers them, and a
    /// token sees only earlier tokens of its own sequence. Padding has segment `-1`.
    Packed(&'a Tensor),
}

/// The boolean mask (`[batch, 1, q, k]`, true where attention is allowed) for `q` new queries
/// after `past` cached positions, or `None` where the causal kernel needs none.
pub fn build(attn: &Attention, q: i64, past: i64, device: Device) -> Option<Tensor> {
    let k = past + q;
    let causal = || {
        let qi = Tensor::arange_start(past, k, (Kind::Int64, device)).view([q, 1]);
        let ki = Tensor::arange(k, (Kind::Int64, device)).view([1, k]);
        (ki.le_tensor(&qi), ki.eq_tensor(&qi))
    };
    match attn {
        Attention::Causal if q == 1 || past == 0 => None,
        Attention::Causal => Some(causal().0.view([1, 1, q, k])),
        Attention::Padded(mask) => {
            let (allowed, diagonal) = causal();
            let valid = mask
                .to_device(device)
                .to_kind(Kind::Bool)
                .view([-1, 1, 1, k]);
            let allowed = allowed.view([1, 1, q, k]).logical_and(&valid);
            // A padding query before any real token sees no key at all, and softmax over
            // nothing is NaN: let such a query see itself. Its output is never used.
            let blind = allowed.any_dim(-1, true).logical_not();
            Some(allowed.logical_or(&diagonal.view([1, 1, q, k]).logical_and(&blind)))
        }
        Attention::Packed(segments) => {
            let (allowed, diagonal) = causal();
            let s = segments.to_device(device);
            let same = s.unsqueeze(2).eq_tensor(&s.unsqueeze(1)).unsqueeze(1);
            Some(
                same.logical_and(&allowed.view([1, 1, q, k]))
                    .logical_or(&diagonal.view([1, 1, q, k])),
            )
        }
    }
}

/// Position ids `0..seq` for every row, as transformers uses when given none.
pub fn positions_from_start(batch: i64, seq: i64, device: Device) -> Tensor {
    Tensor::arange(seq, (Kind::Int64, device))
        .unsqueeze(0)
        .expand([batch, seq], true)
}

/// Position ids for a padded batch, as transformers' `generate` makes them: the count of real
/// tokens before each one, and 1 on padding.
pub fn positions_from_mask(mask: &Tensor) -> Tensor {
    let m = mask.to_kind(Kind::Int64);
    let pos = m.cumsum(-1, Kind::Int64) - 1;
    pos.masked_fill(&m.eq(0), 1)
}
