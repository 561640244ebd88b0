//! Choosing each micro-batch's source: a bandit (EXP3 as in Online Data Mixing, UCB1,
//! Thompson sampling) rewarded by the batch's loss or by the source's learning progress, or a
//! fixed distribution. The whole state serialises, so a resumed run makes the same choices.

use serde::{Deserialize, Serialize};
use zest_kernels::bandit::{AnyBandit, Bandit, Exp3, Thompson, Ucb1};
use zest_kernels::rng::Rng;
use zest_operators::train::cpt::{MixingConfig, Reward, Strategy};

/// Moving averages of one source's batch losses, for `learning_progress`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The fast average (recent level).
    pub fast: Option<f64>,
    /// The slow average (older level).
    pub slow: Option<f64>,
}

/// The mixer's whole state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mixer {
    strategy: Strategy,
    reward: Reward,
    lp_fast: f64,
    lp_slow: f64,
    /// Micro-batches of uniform warm-up left.
    warmup_left: u64,
    bandit: Option<AnyBandit>,
    /// The distribution of fixed strategies (and of warm-up: uniform).
    fixed: Vec<f64>,
    rng: Rng,
    progress: Vec<Progress>,
}

impl Mixer {
    /// A mixer over sources with `tokens` training tokens each and optional static `weights`.
    pub fn new(c: &MixingConfig, tokens: &[u64], weights: &[Option<f64>], seed: u64) -> Mixer {
        let k = tokens.len();
        let uniform = vec![1.0 / k as f64; k];
        let normalise = |v: Vec<f64>| {
            let s: f64 = v.iter().sum();
            v.into_iter().map(|x| x / s).collect::<Vec<f64>>()
        };
        let fixed = match c.strategy {
            Strategy::Static => normalise(weights.iter().map(|w| w.unwrap_or(0.0)).collect()),
            Strategy::Proportional => normalise(tokens.iter().map(|t| *t as f64).collect()),
            _ => uniform,
        };
        // Distinct streams for the bandit and for fixed draws.
        let bandit_seed = seed ^ 0x6d69_7865_7262_616e;
        let bandit = match c.strategy {
            Strategy::Exp3 => {
                let b = Exp3::new(k, bandit_seed);
                Some(AnyBandit::Exp3(if c.smoothing > 0.0 {
                    b.with_smoothing(c.smoothing)
                } else {
                    b
                }))
            }
            Strategy::Ucb1 => Some(AnyBandit::Ucb1(Ucb1::new(k, c.ucb_c))),
            Strategy::Thompson => Some(AnyBandit::Thompson(Thompson::new(
                k,
                c.thompson_sigma,
                bandit_seed,
            ))),
            _ => None,
        };
        Mixer {
            strategy: c.strategy,
            reward: c.reward,
            lp_fast: c.lp_fast,
            lp_slow: c.lp_slow,
            warmup_left: if c.strategy.is_bandit() {
                c.warmup_steps
            } else {
                0
            },
            bandit,
            fixed,
            rng: Rng::new(seed ^ 0x6669_7865_6473_7263),
            progress: vec![Progress::default(); k],
        }
    }

    /// The source of the next micro-batch.
    pub fn select(&mut self) -> usize {
        if self.warmup_left > 0 {
            self.warmup_left -= 1;
            let k = self.progress.len();
            return self.rng.categorical(&vec![1.0 / k as f64; k]);
        }
        match &mut self.bandit {
            Some(b) => b.select(),
            None => self.rng.categorical(&self.fixed),
        }
    }

    /// Learns from the loss of a batch of source `arm`; returns the reward given.
    pub fn update(&mut self, arm: usize, loss: f64) -> f64 {
        let reward = match self.reward {
            Reward::Loss => loss,
            Reward::LearningProgress => {
                let p = &mut self.progress[arm];
                let ema = |prev: Option<f64>, w: f64| prev.map_or(loss, |v| v + w * (loss - v));
                p.fast = Some(ema(p.fast, self.lp_fast));
                p.slow = Some(ema(p.slow, self.lp_slow));
                let (fast, slow) = (p.fast.unwrap_or(loss), p.slow.unwrap_or(loss));
                if slow > 0.0 {
                    100.0 * (slow - fast) / slow
                } else {
                    0.0
                }
            }
        };
        if let Some(b) = &mut self.bandit {
            b.update(arm, reward);
        }
        reward
    }

    /// The current probability of each source.
    pub fn weights(&self) -> Vec<f64> {
        if self.warmup_left > 0 {
            let k = self.progress.len();
            return vec![1.0 / k as f64; k];
        }
        match &self.bandit {
            Some(b) => b.probabilities(),
            None => self.fixed.clone(),
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(strategy: Strategy, reward: Reward) -> MixingConfig {
        MixingConfig {
            strategy,
            reward,
            ..MixingConfig::default()
        }
    }

    #[test]
    fn fixed_strategies_draw_their_distribution() {
        let tokens = [100, 300, 600];
        let m = Mixer::new(
            &cfg(Strategy::Proportional, Reward::Loss),
            &tokens,
            &[None; 3],
            1,
        );
        assert_eq!(m.weights(), vec![0.1, 0.3, 0.6]);
        let mut m = Mixer::new(
            &cfg(Strategy::Static, Reward::Loss),
            &tokens,
            &[Some(1.0), Some(0.0), Some(3.0)],
            1,
        );
        let mut counts = [0; 3];
        for _ in 0..4000 {
            counts[m.select()] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!(
            (counts[2] as f64 / 4000.0 - 0.75).abs() < 0.03,
            "{counts:?}"
        );
    }

    #[test]
    fn exp3_with_the_loss_reward_is_drawn_to_the_highest_loss() {
        let mut m = Mixer::new(
            &cfg(Strategy::Exp3, Reward::Loss),
            &[1, 1, 1],
            &[None; 3],
            3,
        );
        let loss = [2.0, 3.0, 9.0];
        for _ in 0..3000 {
            let a = m.select();
            m.update(a, loss[a]);
        }
        let w = m.weights();
        assert!(w[2] > w[0] && w[2] > w[1], "{w:?}");
    }

    /// Draws per source over 3000 micro-batches: source 0 learnable (its loss falls), 1 learnt
    /// already (flat), 2 noise at a high loss.
    fn draws(reward: Reward) -> [u32; 3] {
        let mut m = Mixer::new(&cfg(Strategy::Exp3, reward), &[1, 1, 1], &[None; 3], 3);
        let mut noise = Rng::new(5);
        let mut level = 6.0f64;
        let mut counts = [0; 3];
        for _ in 0..3000 {
            let a = m.select();
            counts[a] += 1;
            let l = match a {
                0 => {
                    level = (level * 0.996).max(1.0);
                    level
                }
                1 => 6.0,
                _ => 9.0 + 0.5 * noise.normal(),
            };
            m.update(a, l);
        }
        counts
    }

    #[test]
    fn learning_progress_prefers_the_source_whose_loss_falls() {
        let lp = draws(Reward::LearningProgress);
        assert!(lp[0] > lp[2], "{lp:?}");
        let loss = draws(Reward::Loss);
        assert!(loss[2] > loss[0], "{loss:?}");
    }

    #[test]
    fn the_state_round_trips_and_continues_alike() {
        let mut a = Mixer::new(
            &cfg(Strategy::Thompson, Reward::Loss),
            &[1, 2],
            &[None; 2],
            9,
        );
        for i in 0..50 {
            let s = a.select();
            a.update(s, (i % 7) as f64);
        }
        let mut b: Mixer = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        for _ in 0..50 {
            let (x, y) = (a.select(), b.select());
            assert_eq!(x, y);
            a.update(x, 1.0);
            b.update(y, 1.0);
        }
    }
}
