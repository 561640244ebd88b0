//! Learning-rate schedules with linear warmup, as the Hugging Face trainer defines them.

use serde::{Deserialize, Serialize};

/// A schedule's shape after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Constant after warmup.
    Constant,
    /// Linear down to zero at the last step.
    Linear,
    /// Half a cosine down to zero at the last step.
    Cosine,
}

/// A learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: f64,
    /// Steps of linear warmup from 0.
    pub warmup_steps: u64,
    /// Total optimisation steps.
    pub total_steps: u64,
    /// Shape after warmup.
    pub decay: Decay,
}

impl Schedule {
    /// The learning rate of optimizer step `step` (0-based: the first update uses step 0).
    pub fn lr_at(&self, step: u64) -> f64 {
        let (s, w, t) = (
            step as f64,
            self.warmup_steps as f64,
            self.total_steps as f64,
        );
        if step < self.warmup_steps {
            return self.lr * s / w.max(1.0);
        }
        let factor = match self.decay {
            Decay::Constant => 1.0,
            Decay::Linear => ((t - s) / (t - w).max(1.0)).max(0.0),
            Decay::Cosine => {
                let progress = (s - w) / (t - w).max(1.0);
                (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
            }
        };
        self.lr * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_as_transformers() {
        let s = Schedule {
            lr: 1.0,
            warmup_steps: 10,
            total_steps: 110,
            decay: Decay::Linear,
        };
        assert_eq!(s.lr_at(0), 0.0);
        assert_eq!(s.lr_at(5), 0.5);
        assert_eq!(s.lr_at(10), 1.0);
        assert_eq!(s.lr_at(60), 0.5);
        assert_eq!(s.lr_at(110), 0.0);
        assert_eq!(s.lr_at(200), 0.0);
        let c = Schedule {
            decay: Decay::Cosine,
            ..s
        };
        assert!((c.lr_at(60) - 0.5).abs() < 1e-12);
        assert!((c.lr_at(35) - 0.5 * (1.0 + (std::f64::consts::PI * 0.25).cos())).abs() < 1e-12);
        assert!(c.lr_at(110).abs() < 1e-12);
    }
}
