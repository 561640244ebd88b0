//! Secrets: parameters of `type: secret`, read from environment variables.
//!
//! A secret's value never enters a config: `${params.NAME}` becomes the reference
//! `${secrets.VAR}` ([`crate::params::secret_ref`]), which is what configs, cache keys,
//! manifests, journals and records hold, and the worker resolves it from its environment
//! just before the operator runs. In a `shell` script a secret becomes a quoted expansion of
//! `$VAR` instead, so the script's text never holds it. Whatever zest writes or prints of a
//! node (its log, its error, its outputs' metadata) passes through a [`Redactor`] that
//! replaces every secret's value with `***`.

use anyhow::{bail, Result};
use serde_json::Value as J;

const PREFIX: &str = "${secrets.";

/// The environment variables of the secrets a plan's parameters declare, sorted.
pub fn declared(params: &serde_json::Map<String, J>) -> Vec<String> {
    let mut out: Vec<String> = params
        .values()
        .filter_map(|v| v.as_str())
        .filter_map(|s| s.strip_prefix(PREFIX)?.strip_suffix('}'))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The declared secrets whose environment variable is not set (or empty).
pub fn missing(vars: &[String]) -> Vec<String> {
    vars.iter()
        .filter(|v| std::env::var_os(v).is_none_or(|x| x.is_empty()))
        .cloned()
        .collect()
}

/// `config` with every `${secrets.VAR}` of a declared `VAR` replaced by its value from this
/// process's environment. An undeclared or unset variable is an error naming it.
pub fn resolve(config: &J, declared: &[String]) -> Result<J> {
    Ok(match config {
        J::String(s) if s.contains(PREFIX) => J::String(resolve_str(s, declared)?),
        J::Array(a) => J::Array(
            a.iter()
                .map(|x| resolve(x, declared))
                .collect::<Result<_>>()?,
        ),
        J::Object(m) => J::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), resolve(x, declared)?)))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

fn resolve_str(s: &str, declared: &[String]) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(PREFIX) {
        out.push_str(&rest[..i]);
        let after = &rest[i + PREFIX.len()..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let var = &after[..end];
        if !declared.iter().any(|d| d == var) {
            bail!("`${{secrets.{var}}}` names no secret parameter of this DAG");
        }
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => out.push_str(&v),
            _ => bail!("secret ${var} is not set in the environment of the node's worker"),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces the values of secrets with `***` in text that zest writes or prints.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is replaced whole.
    values: Vec<String>,
}

/// What a secret's value is replaced with.
pub const MASK: &str = "***";

impl Redactor {
    /// A redactor for the values that environment variables `vars` have now.
    pub fn from_env(vars: &[String]) -> Self {
        let mut values: Vec<String> = vars
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .filter(|v| !v.is_empty())
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Redactor { values }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// How many bytes at the end of `data` could be the start of a secret that later data
    /// completes: output that must be held back before it is written.
    pub fn partial_at_end(&self, data: &[u8]) -> usize {
        self.values
            .iter()
            .map(|v| partial_suffix(data, v.as_bytes()))
            .max()
            .unwrap_or(0)
    }

    /// `text` with every secret's value replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }

    /// [`Redactor::redact`] for bytes (logs need not be UTF-8).
    pub fn redact_bytes(&self, data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        for v in &self.values {
            let v = v.as_bytes();
            if out.windows(v.len()).any(|w| w == v) {
                let mut next = Vec::with_capacity(out.len());
                let mut i = 0;
                while i < out.len() {
                    if out[i..].starts_with(v) {
                        next.extend_from_slice(MASK.as_bytes());
                        i += v.len();
                    } else {
                        next.push(out[i]);
                        i += 1;
                    }
                }
                out = next;
            }
        }
        out
    }

    /// Every string in `v` redacted.
    pub fn redact_json(&self, v: &J) -> J {
        match v {
            J::String(s) => J::String(self.redact(s)),
            J::Array(a) => J::Array(a.iter().map(|x| self.redact_json(x)).collect()),
            J::Object(m) => J::Object(
                m.iter()
                    .map(|(k, x)| (self.redact(k), self.redact_json(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// The length of the longest proper prefix of `pattern` that `data` ends with.
pub fn partial_suffix(data: &[u8], pattern: &[u8]) -> usize {
    (1..pattern.len().min(data.len() + 1))
        .rev()
        .find(|&k| data.ends_with(&pattern[..k]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_only_for_declared_secrets() {
        std::env::set_var("ZEST_TEST_SECRET_A", "s3cr3t-value");
        let declared = vec!["ZEST_TEST_SECRET_A".to_string()];
        let c = serde_json::json!({"env": {"T": "Bearer ${secrets.ZEST_TEST_SECRET_A}"}, "n": 1});
        let r = resolve(&c, &declared).unwrap();
        assert_eq!(r["env"]["T"], "Bearer s3cr3t-value");
        let e = resolve(&serde_json::json!("${secrets.HOME}"), &declared).unwrap_err();
        assert!(e.to_string().contains("names no secret"), "{e}");
        let e = resolve(
            &serde_json::json!("${secrets.ZEST_TEST_UNSET_X}"),
            &["ZEST_TEST_UNSET_X".to_string()],
        )
        .unwrap_err();
        assert!(e.to_string().contains("not set"), "{e}");
    }

    #[test]
    fn redaction_masks_every_occurrence() {
        std::env::set_var("ZEST_TEST_SECRET_B", "tok-123456");
        let r = Redactor::from_env(&["ZEST_TEST_SECRET_B".to_string()]);
        assert_eq!(r.redact("a tok-123456 b tok-123456"), "a *** b ***");
        assert_eq!(r.redact_bytes(b"x=tok-123456\n"), b"x=***\n");
        assert_eq!(r.partial_at_end(b"a tok-1"), 5);
        assert_eq!(r.partial_at_end(b"a tok-123456"), 0);
        assert_eq!(r.partial_at_end(b"still going\n"), 0);
        let j = r.redact_json(&serde_json::json!({"k": ["tok-123456"]}));
        assert_eq!(j["k"][0], "***");
        let mut params = serde_json::Map::new();
        params.insert(
            "key".into(),
            J::String("${secrets.ZEST_TEST_SECRET_B}".into()),
        );
        params.insert("n".into(), J::from(3));
        assert_eq!(declared(&params), vec!["ZEST_TEST_SECRET_B".to_string()]);
    }
}
