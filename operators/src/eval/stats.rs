//! Accuracy with a percentile-bootstrap 95% interval.

use serde::Serialize;
use zest_kernels::rng::Rng;

/// An accuracy over `n` questions with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accuracy {
    /// Questions.
    pub n: usize,
    /// Right answers.
    pub correct: usize,
    /// `correct / n` (0 when `n` is 0).
    pub accuracy: f64,
    /// The 2.5th percentile of the bootstrap accuracies.
    pub ci_low: f64,
    /// The 97.5th percentile.
    pub ci_high: f64,
}

/// The accuracy of `outcomes` with a 95% interval from `resamples` bootstrap resamples drawn
/// with `seed` (the same interval on every run).
pub fn accuracy(outcomes: &[bool], resamples: usize, seed: u64) -> Accuracy {
    let n = outcomes.len();
    let correct = outcomes.iter().filter(|c| **c).count();
    if n == 0 {
        return Accuracy {
            n,
            correct,
            accuracy: 0.0,
            ci_low: 0.0,
            ci_high: 0.0,
        };
    }
    let acc = correct as f64 / n as f64;
    if resamples == 0 {
        return Accuracy {
            n,
            correct,
            accuracy: acc,
            ci_low: acc,
            ci_high: acc,
        };
    }
    let mut rng = Rng::new(seed);
    let mut accs: Vec<f64> = (0..resamples)
        .map(|_| {
            let hits = (0..n)
                .filter(|_| outcomes[((rng.uniform() * n as f64) as usize).min(n - 1)])
                .count();
            hits as f64 / n as f64
        })
        .collect();
    accs.sort_by(f64::total_cmp);
    let at = |q: f64| accs[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    Accuracy {
        n,
        correct,
        accuracy: acc,
        ci_low: at(0.025),
        ci_high: at(0.975),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_brackets_the_accuracy_and_narrows_with_n() {
        let small: Vec<bool> = (0..40).map(|i| i % 4 != 0).collect();
        let big: Vec<bool> = (0..4000).map(|i| i % 4 != 0).collect();
        let a = accuracy(&small, 2000, 1);
        let b = accuracy(&big, 2000, 1);
        assert_eq!((a.correct, a.accuracy), (30, 0.75));
        assert!(a.ci_low < 0.75 && a.ci_high > 0.75, "{a:?}");
        assert!(
            b.ci_high - b.ci_low < (a.ci_high - a.ci_low) / 5.0,
            "{a:?} {b:?}"
        );
        // The normal approximation for n = 40: ± 1.96 · sqrt(.75 · .25 / 40) ≈ ± 0.134.
        assert!((a.ci_high - a.ci_low - 0.268).abs() < 0.06, "{a:?}");
        assert_eq!(a, accuracy(&small, 2000, 1));
        assert_eq!(accuracy(&[], 100, 1).n, 0);
    }
}
