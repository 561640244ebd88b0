//! The filter report: what an operator that drops rows dropped, per source and per rule, with
//! a few examples of each, so that a curator can see what a filter does before trusting it.
//!
//! Written as `report.json` on the operator's `report` output:
//!
//! ```json
//! {"operator": "clean.quality", "source_column": "source",
//!  "documents": 1000, "kept": 970, "dropped": 30,
//!  "rules": {"gopher_short_doc": {"dropped": 12, "first": 9}, …},
//!  "sources": {"guideline": {"documents": 400, "kept": 390, "dropped": 10,
//!               "rules": {"gopher_short_doc": {"dropped": 4, "first": 3,
//!                         "examples": [{"id": "…", "reasons": ["…"], "text": "…"}]}}}}}
//! ```
//!
//! A document fails every rule it fails, so a rule's `dropped` counts every document that
//! failed it and the rules' `dropped` may sum to more than the documents dropped; `first`
//! counts each dropped document once, under the first reason the operator gave, so the rules'
//! `first` always add up to `dropped`, per source and overall. Sources come from the source
//! column (`source` by default) when the input has it, and are all `all` otherwise.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Examples kept per rule and source.
pub const EXAMPLES: usize = 3;
/// Characters of text kept per example.
pub const EXAMPLE_CHARS: usize = 300;
/// The source name used when the input has no source column (or the value is null).
pub const ALL: &str = "all";

/// One dropped document, as an example of a rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Example {
    /// The document's id.
    pub id: String,
    /// Every reason it was dropped for.
    pub reasons: Vec<String>,
    /// The start of its text.
    pub text: String,
}

/// What one rule dropped.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RuleCount {
    /// Documents that failed the rule (possibly among others).
    pub dropped: usize,
    /// Documents whose first reason was this rule.
    pub first: usize,
    /// A few of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Example>,
}

/// The counts of one source.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceCounts {
    /// Documents seen.
    pub documents: usize,
    /// Documents kept.
    pub kept: usize,
    /// Documents dropped.
    pub dropped: usize,
    /// Per rule.
    pub rules: BTreeMap<String, RuleCount>,
}

/// The report, built row by row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FilterReport {
    /// The operator that wrote it.
    pub operator: String,
    /// The column sources were read from, if the input had it.
    pub source_column: Option<String>,
    /// Documents seen.
    pub documents: usize,
    /// Documents kept.
    pub kept: usize,
    /// Documents dropped.
    pub dropped: usize,
    /// Per rule, over every source (no examples: see `sources`).
    pub rules: BTreeMap<String, RuleCount>,
    /// Per source.
    pub sources: BTreeMap<String, SourceCounts>,
}

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXAMPLE_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

impl FilterReport {
    /// An empty report of `operator`, with sources read from `source_column` (None: the input
    /// has no source column).
    pub fn new(operator: &str, source_column: Option<String>) -> Self {
        FilterReport {
            operator: operator.to_string(),
            source_column,
            documents: 0,
            kept: 0,
            dropped: 0,
            rules: BTreeMap::new(),
            sources: BTreeMap::new(),
        }
    }

    /// Records one document of `source` (None: [`ALL`]): kept when `reasons` is empty.
    pub fn add(&mut self, source: Option<&str>, id: &str, text: &str, reasons: &[String]) {
        let s = self
            .sources
            .entry(source.unwrap_or(ALL).to_string())
            .or_default();
        s.documents += 1;
        self.documents += 1;
        let Some(first) = reasons.first() else {
            s.kept += 1;
            self.kept += 1;
            return;
        };
        s.dropped += 1;
        self.dropped += 1;
        let mut seen: Vec<&str> = Vec::with_capacity(reasons.len());
        for r in reasons {
            if seen.contains(&r.as_str()) {
                continue;
            }
            seen.push(r);
            let is_first = r == first;
            let total = self.rules.entry(r.clone()).or_default();
            total.dropped += 1;
            total.first += usize::from(is_first);
            let rule = s.rules.entry(r.clone()).or_default();
            rule.dropped += 1;
            rule.first += usize::from(is_first);
            if rule.examples.len() < EXAMPLES {
                rule.examples.push(Example {
                    id: id.to_string(),
                    reasons: reasons.to_vec(),
                    text: excerpt(text),
                });
            }
        }
    }

    /// Adds the report of the rows that follow this report's (the next shard of a sharded
    /// node): counts add up, and examples are this report's then `next`'s, up to
    /// [`EXAMPLES`], as if one report had seen every row in order.
    pub fn merge(&mut self, next: FilterReport) {
        fn add_rules(to: &mut BTreeMap<String, RuleCount>, from: BTreeMap<String, RuleCount>) {
            for (name, c) in from {
                let r = to.entry(name).or_default();
                r.dropped += c.dropped;
                r.first += c.first;
                let room = EXAMPLES.saturating_sub(r.examples.len());
                r.examples.extend(c.examples.into_iter().take(room));
            }
        }
        self.documents += next.documents;
        self.kept += next.kept;
        self.dropped += next.dropped;
        add_rules(&mut self.rules, next.rules);
        for (name, s) in next.sources {
            let to = self.sources.entry(name).or_default();
            to.documents += s.documents;
            to.kept += s.kept;
            to.dropped += s.dropped;
            add_rules(&mut to.rules, s.rules);
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a report serialises");
        v.push(b'\n');
        v
    }

    /// A one-line summary for the node's log: dropped documents by first reason, most first.
    pub fn summary(&self) -> String {
        let mut rules: Vec<(&String, &RuleCount)> = self.rules.iter().collect();
        rules.sort_by(|a, b| b.1.first.cmp(&a.1.first).then(a.0.cmp(b.0)));
        let parts: Vec<String> = rules
            .iter()
            .filter(|(_, c)| c.first > 0)
            .map(|(r, c)| format!("{r} {}", c.first))
            .collect();
        format!(
            "{} of {} documents dropped{}{}",
            self.dropped,
            self.documents,
            if parts.is_empty() { "" } else { ": " },
            parts.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn counts_add_up_per_source_and_overall() {
        let mut rep = FilterReport::new("clean.quality", Some("source".into()));
        rep.add(Some("web"), "a", "kept", &[]);
        rep.add(Some("web"), "b", "short", &r(&["short", "no_stop"]));
        rep.add(Some("web"), "c", "short", &r(&["no_stop"]));
        rep.add(None, "d", &"x".repeat(1000), &r(&["short", "short"]));
        assert_eq!((rep.documents, rep.kept, rep.dropped), (4, 1, 3));
        let first: usize = rep.rules.values().map(|c| c.first).sum();
        assert_eq!(first, rep.dropped);
        for s in rep.sources.values() {
            assert_eq!(s.kept + s.dropped, s.documents);
            assert_eq!(s.rules.values().map(|c| c.first).sum::<usize>(), s.dropped);
        }
        assert_eq!(rep.rules["short"].dropped, 2);
        assert_eq!(rep.rules["no_stop"].first, 1);
        let all = &rep.sources[ALL].rules["short"];
        assert_eq!((all.dropped, all.first), (1, 1));
        assert!(all.examples[0].text.ends_with('…'));
        assert_eq!(all.examples[0].text.chars().count(), EXAMPLE_CHARS + 1);
        assert_eq!(
            rep.summary(),
            "3 of 4 documents dropped: short 2, no_stop 1"
        );
    }

    #[test]
    fn merged_reports_equal_one_report_over_every_row() {
        let rows: Vec<(Option<&str>, String, Vec<String>)> = (0..40)
            .map(|i| {
                let source = [Some("web"), Some("textbook"), None][i % 3];
                let reasons = match i % 4 {
                    0 => vec![],
                    1 => r(&["short"]),
                    2 => r(&["no_stop", "short"]),
                    _ => r(&["no_stop"]),
                };
                (source, format!("d{i}"), reasons)
            })
            .collect();
        let mut whole = FilterReport::new("clean.quality", Some("source".into()));
        for (s, id, reasons) in &rows {
            whole.add(*s, id, "text", reasons);
        }
        for cuts in [vec![0, 40], vec![0, 1, 20, 40], vec![0, 0, 13, 27, 40]] {
            let mut parts = cuts.windows(2).map(|w| {
                let mut p = FilterReport::new("clean.quality", Some("source".into()));
                for (s, id, reasons) in &rows[w[0]..w[1]] {
                    p.add(*s, id, "text", reasons);
                }
                p
            });
            let mut merged = parts.next().unwrap();
            for p in parts {
                merged.merge(p);
            }
            assert_eq!(merged, whole, "cuts {cuts:?}");
            let back: FilterReport = serde_json::from_slice(&merged.to_json()).unwrap();
            assert_eq!(back.to_json(), whole.to_json());
        }
    }

    #[test]
    fn examples_are_capped() {
        let mut rep = FilterReport::new("x", None);
        for i in 0..10 {
            rep.add(None, &i.to_string(), "t", &r(&["rule"]));
        }
        assert_eq!(rep.sources[ALL].rules["rule"].examples.len(), EXAMPLES);
        assert_eq!(rep.sources[ALL].rules["rule"].dropped, 10);
    }
}
