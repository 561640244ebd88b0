//! Run reports for CI: `run.json` and JUnit XML (one test case per node).

use crate::run::{NodeStatus, RunRecord};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Serialize)]
struct JsonOutput<'a> {
    digest: &'a str,
    kind: &'a str,
    uri: &'a str,
}

#[derive(Serialize)]
struct JsonNode<'a> {
    node: &'a str,
    op: &'a str,
    op_version: &'a str,
    status: &'a str,
    attempts: usize,
    start_time: Option<&'a str>,
    end_time: Option<&'a str>,
    duration_s: Option<f64>,
    cache_key: Option<&'a str>,
    error: Option<&'a str>,
    outputs: BTreeMap<&'a str, JsonOutput<'a>>,
    /// The node's log, if it printed anything.
    log: Option<String>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    run_id: &'a str,
    dag: &'a str,
    dag_file: &'a str,
    status: &'a str,
    start_time: &'a str,
    end_time: Option<&'a str>,
    trace_id: Option<&'a str>,
    store: &'a str,
    counts: BTreeMap<&'static str, usize>,
    nodes: Vec<JsonNode<'a>>,
}

/// The `run.json` report. `log_dir` is the run's log directory.
pub fn json(rec: &RunRecord, log_dir: &std::path::Path) -> String {
    let r = JsonReport {
        run_id: &rec.run_id,
        dag: &rec.dag,
        dag_file: &rec.dag_file,
        status: rec.status.as_str(),
        start_time: &rec.started_at,
        end_time: rec.ended_at.as_deref(),
        trace_id: rec.trace_id.as_deref(),
        store: &rec.store,
        counts: rec.counts(),
        nodes: rec
            .nodes
            .iter()
            .map(|n| JsonNode {
                node: &n.node,
                op: &n.op,
                op_version: &n.op_version,
                status: n.status.as_str(),
                attempts: n.attempts.len(),
                start_time: n.started_at.as_deref(),
                end_time: n.ended_at.as_deref(),
                duration_s: n.duration_s,
                cache_key: n.cache_key.as_deref(),
                error: n.error.as_deref(),
                outputs: n
                    .outputs
                    .iter()
                    .map(|(p, o)| {
                        (
                            p.as_str(),
                            JsonOutput {
                                digest: &o.digest,
                                kind: o.kind.as_str(),
                                uri: &o.uri,
                            },
                        )
                    })
                    .collect(),
                log: Some(log_dir.join(format!("{}.log", n.node)))
                    .filter(|p| p.exists())
                    .map(|p| p.display().to_string()),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&r).expect("serialises")
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {}
            c => o.push(c),
        }
    }
    o
}

/// The JUnit XML report: one `<testcase>` per node; failed nodes carry `<failure>`,
/// skipped and cancelled nodes `<skipped>`.
pub fn junit(rec: &RunRecord) -> String {
    let failures = rec
        .nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Failed)
        .count();
    let skipped = rec
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.status,
                NodeStatus::Skipped | NodeStatus::Cancelled | NodeStatus::Pending
            )
        })
        .count();
    let total: f64 = rec.nodes.iter().filter_map(|n| n.duration_s).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(x, "<testsuites name=\"zest\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{total:.3}\">", rec.nodes.len());
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{total:.3}\" timestamp=\"{}\">",
        esc(&rec.dag),
        rec.nodes.len(),
        esc(&rec.started_at)
    );
    let _ = writeln!(x, "    <properties><property name=\"run_id\" value=\"{}\"/><property name=\"status\" value=\"{}\"/></properties>", esc(&rec.run_id), rec.status.as_str());
    for n in &rec.nodes {
        let _ = write!(
            x,
            "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
            esc(&rec.dag),
            esc(&n.op),
            esc(&n.node),
            n.duration_s.unwrap_or(0.0)
        );
        let msg = n.error.as_deref().unwrap_or("");
        match n.status {
            NodeStatus::Failed => {
                let first = msg.lines().next().unwrap_or("");
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{}\" type=\"node failed\">{}</failure>",
                    esc(first),
                    esc(msg)
                );
                let attempts: Vec<String> = n
                    .attempts
                    .iter()
                    .map(|a| {
                        format!(
                            "attempt {}: {} {}",
                            a.attempt,
                            a.outcome.as_deref().unwrap_or("?"),
                            a.error.as_deref().unwrap_or("")
                        )
                    })
                    .collect();
                let _ = writeln!(
                    x,
                    "      <system-out>{}</system-out>\n    </testcase>",
                    esc(&attempts.join("\n"))
                );
            }
            NodeStatus::Skipped | NodeStatus::Cancelled | NodeStatus::Pending => {
                let _ = writeln!(
                    x,
                    ">\n      <skipped message=\"{}: {}\"/>\n    </testcase>",
                    n.status.as_str(),
                    esc(msg)
                );
            }
            NodeStatus::Cached => {
                let _ = writeln!(
                    x,
                    ">\n      <system-out>cached</system-out>\n    </testcase>"
                );
            }
            _ => {
                let _ = writeln!(x, "/>");
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}
