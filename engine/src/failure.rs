//! Whether a failed attempt is worth retrying.
//!
//! An operator's error is retried by default (`retries:`), since most run-time failures in
//! a pipeline are of the kind that passes: a dropped connection, an object store that did not
//! answer, a process killed for memory. Some cannot pass: a missing column, a query that
//! names no such table, a config the operator rejects, a corrupt input. An operator marks
//! those with [`permanent`] (or by returning a [`Permanent`] anywhere in its error's chain),
//! and the scheduler fails the node at once instead of running it again.

use std::fmt;

/// An error that running the node again cannot fix.
#[derive(Debug)]
pub struct Permanent(pub String);

impl fmt::Display for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Permanent {}

/// An error that running the node again cannot fix, with this message.
pub fn permanent(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Permanent(message.into()))
}

/// Whether `e`, or any error in its chain, is [`Permanent`].
pub fn is_permanent(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Permanent>())
}

/// Marks the error of a `Result` as [`Permanent`], keeping its message and context.
pub trait PermanentExt<T> {
    /// The result, its error made permanent.
    fn permanent(self) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> PermanentExt<T> for Result<T, E> {
    fn permanent(self) -> anyhow::Result<T> {
        self.map_err(|e| permanent(format!("{:#}", e.into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn permanence_is_found_through_context() {
        let e = permanent("input `docs` has no column `text`");
        assert!(is_permanent(&e));
        let wrapped = Err::<(), _>(e).context("reading input `docs`").unwrap_err();
        assert!(is_permanent(&wrapped));
        assert_eq!(
            format!("{wrapped:#}"),
            "reading input `docs`: input `docs` has no column `text`"
        );
        assert!(!is_permanent(&anyhow::anyhow!("connection reset by peer")));
        let io: std::io::Result<()> = Err(std::io::Error::other("disk full"));
        let made = io.context("writing").permanent().unwrap_err();
        assert!(is_permanent(&made));
        assert_eq!(format!("{made:#}"), "writing: disk full");
    }
}
