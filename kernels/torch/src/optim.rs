//! AdamW with decoupled weight decay (PyTorch's update, step for step), no decay on norms and
//! biases, gradient clipping by global norm, and optimizer state that can be saved and resumed.

use crate::{other, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};
use zest_kernels::safetensors::{self, Dtype};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay (applied as `p -= lr * wd * p`).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Whether a parameter is decayed: everything but biases and norm weights, as the Hugging Face
/// trainer groups them.
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.ends_with("norm.weight"))
}

struct Slot {
    name: String,
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    decay: bool,
}

/// AdamW over a fixed list of named parameters.
pub struct AdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    slots: Vec<Slot>,
    step: u64,
}

impl AdamW {
    /// An optimiser for `params` (shared with the model), with zeroed moments.
    pub fn new(params: &[(String, Tensor)], config: AdamWConfig) -> AdamW {
        let slots = params
            .iter()
            .map(|(name, p)| Slot {
                name: name.clone(),
                param: p.shallow_clone(),
                exp_avg: Tensor::zeros_like(p).to_kind(Kind::Float),
                exp_avg_sq: Tensor::zeros_like(p).to_kind(Kind::Float),
                decay: decays(name),
            })
            .collect();
        AdamW {
            config,
            slots,
            step: 0,
        }
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Clears every gradient.
    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            let mut g = s.param.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// One update at learning rate `lr`. Parameters without a gradient are left alone.
    /// Moments are kept in float32 whatever the parameters' type.
    pub fn step(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let c = self.config;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2_sqrt = (1.0 - c.beta2.powi(self.step as i32)).sqrt();
        for s in &mut self.slots {
            let g = s.param.grad();
            if !g.defined() {
                continue;
            }
            let g = g.to_kind(Kind::Float);
            let mut p32 = s.param.to_kind(Kind::Float);
            if s.decay && c.weight_decay != 0.0 {
                let _ = p32.g_mul_scalar_(1.0 - lr * c.weight_decay);
            }
            let _ = s.exp_avg.lerp_(&g, 1.0 - c.beta1);
            let _ = s.exp_avg_sq.g_mul_scalar_(c.beta2);
            let _ = s.exp_avg_sq.addcmul_(&g, &(&g * (1.0 - c.beta2)));
            let mut denom = s.exp_avg_sq.sqrt();
            let _ = denom.g_div_scalar_(bc2_sqrt);
            let _ = denom.g_add_scalar_(c.eps);
            let _ = p32.addcdiv_(&(&s.exp_avg * (-lr / bc1)), &denom);
            // For float32 parameters `p32` is the parameter itself and was updated in place.
            if s.param.kind() != Kind::Float {
                s.param.copy_(&p32);
            }
        }
    }

    /// Saves the moments (`exp_avg.<name>`, `exp_avg_sq.<name>`) and the step count into
    /// `path` (safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut blobs = Vec::new();
        for s in &self.slots {
            for (prefix, t) in [("exp_avg", &s.exp_avg), ("exp_avg_sq", &s.exp_avg_sq)] {
                let t = t.to_device(Device::Cpu).contiguous();
                let n = t.numel();
                let mut buf = vec![0u8; n * 4];
                t.copy_data_u8(&mut buf, n);
                let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
                blobs.push((format!("{prefix}.{}", s.name), shape, buf));
            }
        }
        let entries: Vec<(&str, Dtype, &[usize], &[u8])> = blobs
            .iter()
            .map(|(n, shape, b)| (n.as_str(), Dtype::F32, shape.as_slice(), b.as_slice()))
            .collect();
        let mut meta = BTreeMap::new();
        meta.insert("step".to_string(), self.step.to_string());
        meta.insert(
            "config".to_string(),
            serde_json::to_string(&self.config).expect("JSON"),
        );
        safetensors::write(path, &entries, &meta)?;
        Ok(())
    }

    /// Restores moments and step count saved by [`AdamW::save`] for the same parameters.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let header = safetensors::read_header(path)?;
        let step = header
            .metadata
            .get("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| other(format!("{}: no optimizer step count", path.display())))?;
        let _guard = tch::no_grad_guard();
        for s in &mut self.slots {
            for (prefix, t) in [
                ("exp_avg", &mut s.exp_avg),
                ("exp_avg_sq", &mut s.exp_avg_sq),
            ] {
                let name = format!("{prefix}.{}", s.name);
                let bytes = safetensors::read_tensor_bytes(path, &header, &name)?;
                let saved = Tensor::f_from_data_size(&bytes, &t.size(), Kind::Float)?;
                t.f_copy_(&saved)?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Scales the gradients of `params` so that their global L2 norm is at most `max_norm`
/// (PyTorch's `clip_grad_norm_`); returns the norm before clipping.
pub fn clip_grad_norm(params: &[(String, Tensor)], max_norm: f64) -> f64 {
    let _guard = tch::no_grad_guard();
    let grads: Vec<Tensor> = params
        .iter()
        .map(|(_, p)| p.grad())
        .filter(Tensor::defined)
        .collect();
    if grads.is_empty() {
        return 0.0;
    }
    let norms: Vec<Tensor> = grads
        .iter()
        .map(|g| g.to_kind(Kind::Float).norm().view([1]))
        .collect();
    let total = Tensor::cat(&norms, 0).norm();
    let coef = (total.double_value(&[]) + 1e-6).recip() * max_norm;
    if coef < 1.0 {
        for mut g in grads {
            let _ = g.g_mul_scalar_(coef);
        }
    }
    total.double_value(&[])
}
