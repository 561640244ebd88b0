//! What follows a failed attempt: another attempt after a backoff, or the node's failure.

use crate::spec::RetryPolicy;
use std::time::Duration;

/// The delay before retry `n` (1-based): `backoff * 2^(n-1)`, capped, with ±25% jitter.
pub fn backoff_delay(p: &RetryPolicy, n: u32) -> Duration {
    let base = p.backoff.as_secs_f64() * 2f64.powi(n.saturating_sub(1).min(30) as i32);
    let capped = base.min(p.max_backoff.as_secs_f64());
    let jitter = 0.75 + rand::random::<f64>() * 0.5;
    Duration::from_secs_f64(capped * jitter)
}

/// The decision on a failed attempt.
#[derive(Debug, PartialEq)]
pub(crate) enum AfterFailure {
    /// Run the node again after this delay.
    Retry(Duration),
    /// The node fails, with this error.
    Fail(String),
}

/// Decides on attempt `attempt`'s failure with `error`: retried while the policy allows,
/// unless the run is stopping or the error is one a retry cannot fix (`permanent`).
pub(crate) fn after_failure(
    policy: &RetryPolicy,
    attempt: u32,
    permanent: bool,
    stopping: bool,
    error: String,
) -> AfterFailure {
    let allowed = attempt <= policy.max;
    if allowed && !stopping && !permanent {
        return AfterFailure::Retry(backoff_delay(policy, attempt));
    }
    AfterFailure::Fail(if attempt > 1 {
        format!("{error} (after {attempt} attempts)")
    } else if permanent && allowed {
        format!("{error} (not retried: running the node again cannot fix this)")
    } else {
        error
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max: u32) -> RetryPolicy {
        RetryPolicy {
            max,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        }
    }

    #[test]
    fn retries_what_can_pass_and_fails_what_cannot() {
        let p = policy(2);
        assert!(matches!(
            after_failure(&p, 1, false, false, "reset".into()),
            AfterFailure::Retry(d) if d >= Duration::from_millis(75) && d <= Duration::from_millis(125)
        ));
        assert!(matches!(
            after_failure(&p, 2, false, false, "reset".into()),
            AfterFailure::Retry(d) if d >= Duration::from_millis(150) && d <= Duration::from_millis(250)
        ));
        assert_eq!(
            after_failure(&p, 3, false, false, "reset".into()),
            AfterFailure::Fail("reset (after 3 attempts)".into())
        );
        assert_eq!(
            after_failure(&p, 1, true, false, "no column `text`".into()),
            AfterFailure::Fail(
                "no column `text` (not retried: running the node again cannot fix this)".into()
            )
        );
        assert_eq!(
            after_failure(&policy(0), 1, true, false, "no column `text`".into()),
            AfterFailure::Fail("no column `text`".into()),
            "nothing to say when no retry was asked for"
        );
        assert_eq!(
            after_failure(&p, 1, false, true, "killed".into()),
            AfterFailure::Fail("killed".into()),
            "a stopping run retries nothing"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = policy(10);
        for n in 1..=8 {
            let d = backoff_delay(&p, n).as_secs_f64();
            let base = (0.1 * 2f64.powi(n as i32 - 1)).min(1.0);
            assert!(
                d >= base * 0.75 - 1e-9 && d <= base * 1.25 + 1e-9,
                "{n}: {d}"
            );
        }
    }
}
