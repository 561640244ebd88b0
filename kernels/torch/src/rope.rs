//! Rotary position embeddings, with Llama 3.1's frequency scaling. Angles are computed in
//! float32 whatever the model's element type, as transformers does.

use tch::{Device, Kind, Tensor};
use zest_kernels::model_config::{ModelConfig, RopeScaling};

/// Inverse frequencies, one per pair of head dimensions, as a float32 tensor on the CPU.
/// Computed with the same tensor operations as transformers so the values agree bit for bit.
pub fn inv_freq(config: &ModelConfig) -> Tensor {
    let d = config.head_dim;
    let exponents = Tensor::arange_start_step(0, d, 2, (Kind::Int64, Device::Cpu))
        .to_kind(Kind::Float)
        / d as f64;
    let base = Tensor::from(config.rope_theta as f32)
        .pow(&exponents)
        .reciprocal();
    match &config.rope_scaling {
        RopeScaling::Default => base,
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let old = *original_max_position_embeddings;
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            let wavelen = base.reciprocal() * (2.0 * std::f64::consts::PI);
            let scaled = (&base / *factor).where_self(&wavelen.gt(low_wavelen), &base);
            let smooth = (wavelen.reciprocal() * old - *low_freq_factor)
                / (high_freq_factor - low_freq_factor);
            let smoothed = (smooth.ones_like() - &smooth) * &scaled / *factor + &smooth * &scaled;
            let medium = wavelen
                .ge(high_wavelen)
                .logical_and(&wavelen.le(low_wavelen));
            smoothed.where_self(&medium, &scaled)
        }
    }
}

/// The cosine and sine tables for `positions` (`[batch, seq]`, int64), each
/// `[batch, 1, seq, head_dim]` in `kind`, ready to broadcast over heads.
pub fn cos_sin(inv_freq: &Tensor, positions: &Tensor, kind: Kind) -> (Tensor, Tensor) {
    let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * inv_freq.view([1, 1, -1]);
    let emb = Tensor::cat(&[&freqs, &freqs], -1);
    (
        emb.cos().to_kind(kind).unsqueeze(1),
        emb.sin().to_kind(kind).unsqueeze(1),
    )
}

/// Rotates `x` (`[batch, heads, seq, head_dim]`) by the tables from [`cos_sin`].
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let x1 = x.narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    let rotated = Tensor::cat(&[&(-x2), &x1], 3);
    x * cos + rotated * sin
}

/// `inv_freq` as a float32 tensor on `device`.
pub fn inv_freq_tensor(config: &ModelConfig, device: Device) -> Tensor {
    inv_freq(config).to_device(device)
}
