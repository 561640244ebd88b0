//! Multi-armed bandits for online data mixing: which data source (arm) to draw the next
//! training batch from, learning from the training loss on that batch (the reward).
//!
//! [`Exp3`] follows Online Data Mixing (Albalak et al., 2023): exploration
//! `ε_t = min(1/K, √(ln K / (K·t)))`, policy
//! `π_t = (1 − K·ε_t) · softmax(ε_{t−1} · R̂) + ε_t`, and after drawing arm `i` with loss `L`,
//! the importance-weighted estimate `L / π_t(i)` added to `R̂_i` (or, with smoothing `α`,
//! `R̂_i ← α·R̂_i + (1 − α)·L / π_t(i)`). [`Ucb1`] and [`Thompson`] are the usual
//! alternatives. All are deterministic under a seed and serialise their whole state, so a
//! training run resumes with the same future choices.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// A bandit: chooses an arm, then learns the reward of that choice.
pub trait Bandit {
    /// How many arms.
    fn arms(&self) -> usize;
    /// Chooses the next arm.
    fn select(&mut self) -> usize;
    /// Learns `reward` for `arm`, the arm last chosen.
    fn update(&mut self, arm: usize, reward: f64);
    /// The current probability of each arm being chosen (one-hot for deterministic
    /// policies), for logging mixture weights.
    fn probabilities(&self) -> Vec<f64>;
}

/// EXP3 as used by Online Data Mixing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exp3 {
    /// Steps taken (selections made).
    pub t: u64,
    /// Importance-weighted reward estimates per arm.
    pub rhat: Vec<f64>,
    /// `ε_{t−1}`, the step size of the softmax at the next selection.
    pub prev_eps: f64,
    /// The policy of the last selection (uniform before the first).
    pub policy: Vec<f64>,
    /// Smoothing `α` of the reward estimate; `None` accumulates (plain EXP3).
    pub smoothing: Option<f64>,
    rng: Rng,
}

impl Exp3 {
    /// `arms` arms, no smoothing.
    pub fn new(arms: usize, seed: u64) -> Self {
        assert!(arms > 0, "a bandit needs at least one arm");
        Exp3 {
            t: 0,
            rhat: vec![0.0; arms],
            prev_eps: 0.0,
            policy: vec![1.0 / arms as f64; arms],
            smoothing: None,
            rng: Rng::new(seed),
        }
    }

    /// With smoothing `alpha` in [0, 1) of the reward estimates.
    pub fn with_smoothing(mut self, alpha: f64) -> Self {
        assert!((0.0..1.0).contains(&alpha), "smoothing must be in [0, 1)");
        self.smoothing = Some(alpha);
        self
    }

    /// `ε_t` for `k` arms at step `t` (1-based).
    pub fn exploration(k: usize, t: u64) -> f64 {
        let k = k as f64;
        (1.0 / k).min((k.ln() / (k * t as f64)).sqrt())
    }

    /// The policy for the next step, without taking it.
    fn next_policy(&self) -> (f64, Vec<f64>) {
        let k = self.rhat.len();
        let eps = Self::exploration(k, self.t + 1);
        let scaled: Vec<f64> = self.rhat.iter().map(|r| self.prev_eps * r).collect();
        let max = scaled.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = scaled.iter().map(|s| (s - max).exp()).collect();
        let z: f64 = exps.iter().sum();
        let policy = exps
            .iter()
            .map(|e| (1.0 - k as f64 * eps) * e / z + eps)
            .collect();
        (eps, policy)
    }
}

impl Bandit for Exp3 {
    fn arms(&self) -> usize {
        self.rhat.len()
    }

    fn select(&mut self) -> usize {
        let (eps, policy) = self.next_policy();
        self.t += 1;
        self.prev_eps = eps;
        self.policy = policy;
        self.rng.categorical(&self.policy)
    }

    fn update(&mut self, arm: usize, reward: f64) {
        let estimate = reward / self.policy[arm];
        self.rhat[arm] = match self.smoothing {
            None => self.rhat[arm] + estimate,
            Some(a) => a * self.rhat[arm] + (1.0 - a) * estimate,
        };
    }

    fn probabilities(&self) -> Vec<f64> {
        self.next_policy().1
    }
}

/// UCB1: the arm with the highest mean reward plus `c·√(ln t / n)`; every arm once first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ucb1 {
    /// Pulls per arm.
    pub pulls: Vec<u64>,
    /// Sum of rewards per arm.
    pub sums: Vec<f64>,
    /// Exploration constant (√2 for rewards in [0, 1]; scale it with the rewards).
    pub c: f64,
}

impl Ucb1 {
    /// `arms` arms with exploration constant `c`.
    pub fn new(arms: usize, c: f64) -> Self {
        assert!(arms > 0, "a bandit needs at least one arm");
        Ucb1 {
            pulls: vec![0; arms],
            sums: vec![0.0; arms],
            c,
        }
    }

    fn best(&self) -> usize {
        if let Some(i) = self.pulls.iter().position(|n| *n == 0) {
            return i;
        }
        let t: u64 = self.pulls.iter().sum();
        let ln_t = (t as f64).ln();
        let score = |i: usize| {
            let n = self.pulls[i] as f64;
            self.sums[i] / n + self.c * (ln_t / n).sqrt()
        };
        (0..self.pulls.len())
            .max_by(|a, b| score(*a).total_cmp(&score(*b)))
            .expect("at least one arm")
    }
}

impl Bandit for Ucb1 {
    fn arms(&self) -> usize {
        self.pulls.len()
    }

    fn select(&mut self) -> usize {
        self.best()
    }

    fn update(&mut self, arm: usize, reward: f64) {
        self.pulls[arm] += 1;
        self.sums[arm] += reward;
    }

    fn probabilities(&self) -> Vec<f64> {
        let mut p = vec![0.0; self.pulls.len()];
        p[self.best()] = 1.0;
        p
    }
}

/// Gaussian Thompson sampling: each arm's mean reward has a normal posterior (prior N(0, σ²),
/// observations with variance σ²); the arm with the highest sampled mean is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thompson {
    /// Pulls per arm.
    pub pulls: Vec<u64>,
    /// Sum of rewards per arm.
    pub sums: Vec<f64>,
    /// Reward noise scale σ.
    pub sigma: f64,
    rng: Rng,
}

impl Thompson {
    /// `arms` arms with reward noise scale `sigma`.
    pub fn new(arms: usize, sigma: f64, seed: u64) -> Self {
        assert!(arms > 0, "a bandit needs at least one arm");
        assert!(sigma > 0.0, "sigma must be positive");
        Thompson {
            pulls: vec![0; arms],
            sums: vec![0.0; arms],
            sigma,
            rng: Rng::new(seed),
        }
    }

    fn posterior(&self, i: usize) -> (f64, f64) {
        let n = self.pulls[i] as f64 + 1.0;
        (self.sums[i] / n, self.sigma / n.sqrt())
    }
}

impl Bandit for Thompson {
    fn arms(&self) -> usize {
        self.pulls.len()
    }

    fn select(&mut self) -> usize {
        let mut best = (0, f64::NEG_INFINITY);
        for i in 0..self.pulls.len() {
            let (mean, sd) = self.posterior(i);
            let draw = mean + sd * self.rng.normal();
            if draw > best.1 {
                best = (i, draw);
            }
        }
        best.0
    }

    fn update(&mut self, arm: usize, reward: f64) {
        self.pulls[arm] += 1;
        self.sums[arm] += reward;
    }

    fn probabilities(&self) -> Vec<f64> {
        // Estimated by sampling from a copy, so the bandit's own draws are unaffected.
        let mut copy = self.clone();
        let mut counts = vec![0.0; self.pulls.len()];
        let n = 1000;
        for _ in 0..n {
            counts[copy.select()] += 1.0;
        }
        counts.iter().map(|c| c / n as f64).collect()
    }
}

/// Any of the bandits, by name in configs and serialised state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AnyBandit {
    /// [`Exp3`].
    Exp3(Exp3),
    /// [`Ucb1`].
    Ucb1(Ucb1),
    /// [`Thompson`].
    Thompson(Thompson),
}

impl AnyBandit {
    fn inner(&self) -> &dyn Bandit {
        match self {
            AnyBandit::Exp3(b) => b,
            AnyBandit::Ucb1(b) => b,
            AnyBandit::Thompson(b) => b,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Bandit {
        match self {
            AnyBandit::Exp3(b) => b,
            AnyBandit::Ucb1(b) => b,
            AnyBandit::Thompson(b) => b,
        }
    }
}

impl Bandit for AnyBandit {
    fn arms(&self) -> usize {
        self.inner().arms()
    }
    fn select(&mut self) -> usize {
        self.inner_mut().select()
    }
    fn update(&mut self, arm: usize, reward: f64) {
        self.inner_mut().update(arm, reward)
    }
    fn probabilities(&self) -> Vec<f64> {
        self.inner().probabilities()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ODM update written out plainly, step by step, for comparison.
    struct Reference {
        k: usize,
        rhat: Vec<f64>,
        prev_eps: f64,
        t: u64,
        alpha: Option<f64>,
    }

    // Indexed loops on purpose: the reference mirrors the paper's per-domain notation.
    #[allow(clippy::needless_range_loop)]
    impl Reference {
        fn policy(&mut self) -> Vec<f64> {
            self.t += 1;
            let k = self.k as f64;
            let eps = f64::min(1.0 / k, (k.ln() / (k * self.t as f64)).sqrt());
            let mut weights = vec![0.0; self.k];
            let mut total = 0.0;
            for i in 0..self.k {
                weights[i] = (self.prev_eps * self.rhat[i]).exp();
                total += weights[i];
            }
            let mut pi = vec![0.0; self.k];
            for i in 0..self.k {
                pi[i] = (1.0 - k * eps) * weights[i] / total + eps;
            }
            self.prev_eps = eps;
            pi
        }

        fn update(&mut self, pi: &[f64], arm: usize, loss: f64) {
            let est = loss / pi[arm];
            self.rhat[arm] = match self.alpha {
                None => self.rhat[arm] + est,
                Some(a) => a * self.rhat[arm] + (1.0 - a) * est,
            };
        }
    }

    fn compare(alpha: Option<f64>) {
        let k = 5;
        let mut b = Exp3::new(k, 42);
        if let Some(a) = alpha {
            b = b.with_smoothing(a);
        }
        let mut r = Reference {
            k,
            rhat: vec![0.0; k],
            prev_eps: 0.0,
            t: 0,
            alpha,
        };
        // A fixed loss sequence: each domain has its own loss curve.
        for step in 0..500 {
            let arm = b.select();
            let pi = r.policy();
            for (x, y) in b.policy.iter().zip(&pi) {
                assert!(
                    (x - y).abs() <= 1e-12 * y.abs().max(1.0),
                    "step {step}: {x} vs {y}"
                );
            }
            let loss = 3.0 - 0.4 * arm as f64 + 1.0 / (1.0 + step as f64);
            b.update(arm, loss);
            r.update(&pi, arm, loss);
            for (x, y) in b.rhat.iter().zip(&r.rhat) {
                assert!((x - y).abs() <= 1e-9 * y.abs().max(1.0), "step {step}");
            }
        }
    }

    #[test]
    fn exp3_matches_the_odm_reference() {
        compare(None);
        compare(Some(0.9));
    }

    /// Plays `b` on arms with mean rewards `means` (Gaussian noise); returns the regret
    /// after each step.
    fn play(b: &mut dyn Bandit, means: &[f64], steps: usize) -> Vec<f64> {
        let mut noise = Rng::new(99);
        let best = means.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut regret = 0.0;
        let mut out = Vec::with_capacity(steps);
        for _ in 0..steps {
            let arm = b.select();
            let reward = (means[arm] + 0.1 * noise.normal()).clamp(0.0, 1.0);
            b.update(arm, reward);
            regret += best - means[arm];
            out.push(regret);
        }
        out
    }

    fn assert_learns(b: &mut dyn Bandit, name: &str) {
        let means = [0.2, 0.35, 0.8, 0.5];
        let r = play(b, &means, 20_000);
        // Sublinear regret: the average regret per step keeps falling.
        let avg = |t: usize| r[t - 1] / t as f64;
        assert!(
            avg(20_000) < 0.5 * avg(2_000),
            "{name}: {} then {}",
            avg(2_000),
            avg(20_000)
        );
        let p = b.probabilities();
        assert!(p[2] > 0.8, "{name}: {p:?}");
    }

    #[test]
    fn bandits_concentrate_on_the_best_arm_with_sublinear_regret() {
        assert_learns(&mut Exp3::new(4, 1), "exp3");
        assert_learns(&mut Ucb1::new(4, 2f64.sqrt()), "ucb1");
        assert_learns(&mut Thompson::new(4, 0.5, 1), "thompson");
    }

    #[test]
    fn state_round_trips_and_resumes_identically() {
        let mut a = AnyBandit::Exp3(Exp3::new(3, 5));
        for i in 0..50 {
            let arm = a.select();
            a.update(arm, (i % 7) as f64 / 7.0);
        }
        let saved = serde_json::to_string(&a).unwrap();
        assert!(saved.contains("\"kind\":\"exp3\""), "{saved}");
        let mut b: AnyBandit = serde_json::from_str(&saved).unwrap();
        for _ in 0..50 {
            let (x, y) = (a.select(), b.select());
            assert_eq!(x, y);
            a.update(x, 0.5);
            b.update(y, 0.5);
        }
        assert_eq!(a, b);
    }
}
