//! `zest report RUN_ID`: one self-contained HTML page for a run, readable offline — the DAG
//! drawn from the artifacts' provenance, each node's timing and cache use, and every `report`
//! output the nodes wrote (their `report.md` rendered, their PNG plots embedded, the scalar
//! metrics of their `report.json`).
//!
//! The engine knows nothing of losses or accuracies: it shows what the operators put in their
//! reports, so a new operator's report appears without changes here. Nothing is written to the
//! store.

use crate::operator::PortType;
use crate::run::{NodeStatus, RunRecord};
use crate::store::{inline_payload, ArtifactManifest, ArtifactStore};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Seconds since the epoch of an RFC 3339 time.
pub fn epoch_seconds(t: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis() as f64 / 1000.0)
}

/// Markdown as HTML: headings, pipe tables, bullet lists and paragraphs (what reports use).
pub fn markdown(md: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    let mut para: Vec<String> = vec![];
    let flush = |para: &mut Vec<String>, out: &mut String| {
        if !para.is_empty() {
            let _ = write!(out, "<p>{}</p>", para.join(" "));
            para.clear();
        }
    };
    while i < lines.len() {
        let l = lines[i].trim_end();
        if l.trim().is_empty() {
            flush(&mut para, &mut out);
        } else if let Some(h) = l.strip_prefix('#') {
            flush(&mut para, &mut out);
            let level = 1 + h.chars().take_while(|c| *c == '#').count();
            let level = (level + 2).min(6);
            let _ = write!(
                out,
                "<h{level}>{}</h{level}>",
                esc(h.trim_start_matches('#').trim())
            );
        } else if l.trim_start().starts_with('|') {
            flush(&mut para, &mut out);
            out.push_str("<table>");
            let mut row = 0;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                let cells: Vec<&str> = lines[i]
                    .trim()
                    .trim_matches('|')
                    .split('|')
                    .map(str::trim)
                    .collect();
                let rule = cells
                    .iter()
                    .all(|c| !c.is_empty() && c.chars().all(|x| "-:".contains(x)));
                if !rule {
                    let tag = if row == 0 { "th" } else { "td" };
                    out.push_str("<tr>");
                    for c in cells {
                        let _ = write!(out, "<{tag}>{}</{tag}>", esc(c));
                    }
                    out.push_str("</tr>");
                    row += 1;
                }
                i += 1;
            }
            out.push_str("</table>");
            continue;
        } else if let Some(item) = l.trim_start().strip_prefix("- ") {
            flush(&mut para, &mut out);
            out.push_str("<ul>");
            let _ = write!(out, "<li>{}</li>", esc(item));
            while i + 1 < lines.len() && lines[i + 1].trim_start().starts_with("- ") {
                i += 1;
                let _ = write!(out, "<li>{}</li>", esc(&lines[i].trim_start()[2..]));
            }
            out.push_str("</ul>");
        } else {
            para.push(esc(l));
        }
        i += 1;
    }
    flush(&mut para, &mut out);
    out
}

/// The bytes of file `path` of the artifact with `manifest`.
async fn file_bytes(store: &ArtifactStore, m: &ArtifactManifest, path: &str) -> Result<Vec<u8>> {
    if let Some(b) = inline_payload(m, path)? {
        return Ok(b);
    }
    let rel = format!("artifacts/{}/{path}", m.digest);
    if let Some(root) = store.local_root() {
        return std::fs::read(root.join(&rel)).with_context(|| format!("reading {rel}"));
    }
    let tmp = tempfile_path(&m.digest, path);
    if !store.get_file(&rel, &tmp).await? {
        anyhow::bail!("{rel} is missing from the store");
    }
    let b = std::fs::read(&tmp)?;
    let _ = std::fs::remove_file(&tmp);
    Ok(b)
}

fn tempfile_path(digest: &str, path: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "zest-report-{}-{}-{}",
        std::process::id(),
        &digest[..12.min(digest.len())],
        path.replace('/', "_")
    ))
}

/// A layered drawing of the DAG as SVG: each node at the depth of its longest path from a
/// source, coloured by its state.
fn dag_svg(rec: &RunRecord, edges: &[(usize, usize)]) -> String {
    let n = rec.nodes.len();
    let mut depth = vec![0usize; n];
    // Nodes are in plan (topological) order, so one pass settles every depth.
    for _ in 0..2 {
        for &(a, b) in edges {
            depth[b] = depth[b].max(depth[a] + 1);
        }
    }
    let mut columns: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, d) in depth.iter().enumerate() {
        columns.entry(*d).or_default().push(i);
    }
    let (w, h, gx, gy) = (170.0, 34.0, 60.0, 14.0);
    let mut pos = vec![(0.0, 0.0); n];
    let rows = columns.values().map(Vec::len).max().unwrap_or(1);
    for (d, col) in &columns {
        for (k, &i) in col.iter().enumerate() {
            pos[i] = (10.0 + *d as f64 * (w + gx), 10.0 + k as f64 * (h + gy));
        }
    }
    let width = 20.0 + columns.len() as f64 * (w + gx);
    let height = 20.0 + rows as f64 * (h + gy);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         font-family=\"sans-serif\" font-size=\"11\">"
    );
    for &(a, b) in edges {
        let (x1, y1) = (pos[a].0 + w, pos[a].1 + h / 2.0);
        let (x2, y2) = (pos[b].0, pos[b].1 + h / 2.0);
        let _ = write!(
            s,
            "<path d=\"M{x1:.0},{y1:.0} C{:.0},{y1:.0} {:.0},{y2:.0} {x2:.0},{y2:.0}\" \
             fill=\"none\" stroke=\"#9aa\" stroke-width=\"1\"/>",
            x1 + gx / 2.0,
            x2 - gx / 2.0
        );
    }
    for (i, node) in rec.nodes.iter().enumerate() {
        let fill = match node.status {
            NodeStatus::Succeeded => "#d8f3dc",
            NodeStatus::Cached => "#dbe9f6",
            NodeStatus::Failed => "#f8d7da",
            NodeStatus::Skipped => "#eeeeee",
            _ => "#fff3cd",
        };
        let (x, y) = pos[i];
        let _ = write!(
            s,
            "<g><title>{} ({}): {}</title><rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{w}\" height=\"{h}\" \
             rx=\"5\" fill=\"{fill}\" stroke=\"#667\"/><text x=\"{:.0}\" y=\"{:.0}\">{}</text>\
             <text x=\"{:.0}\" y=\"{:.0}\" fill=\"#556\" font-size=\"9\">{}</text></g>",
            esc(&node.node),
            esc(&node.op),
            node.status.as_str(),
            x + 6.0,
            y + 14.0,
            esc(&truncate(&node.node, 26)),
            x + 6.0,
            y + 27.0,
            esc(&truncate(&node.op, 30)),
        );
    }
    s.push_str("</svg>");
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}

/// The scalar fields of a report's JSON (nested objects flattened with dots), at most 40.
fn scalars(v: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>, depth: usize) {
        match v {
            serde_json::Value::Object(m) if depth < 3 => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, x, out, depth + 1);
                }
            }
            serde_json::Value::Number(n) => out.push((prefix.into(), n.to_string())),
            serde_json::Value::String(s) if s.len() <= 80 => out.push((prefix.into(), s.clone())),
            serde_json::Value::Bool(b) => out.push((prefix.into(), b.to_string())),
            _ => {}
        }
    }
    let mut out = vec![];
    walk("", v, &mut out, 0);
    out.truncate(40);
    out
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:24px;color:#223;max-width:1400px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccd}\
h3{font-size:15px}table{border-collapse:collapse;margin:8px 0;font-size:13px}\
td,th{border:1px solid #ccd;padding:3px 8px;text-align:left}th{background:#f2f4f8}\
.meta td:first-child{font-weight:600}.bar{background:#7aa6d8;height:10px}\
.bar.cached{background:#b9cde6}.bar.failed{background:#e08a93}.scroll{overflow-x:auto}\
section.node{border:1px solid #dde;border-radius:6px;padding:4px 14px;margin:14px 0}\
img{max-width:640px;border:1px solid #eee;margin:4px}.err{color:#a12;white-space:pre-wrap}";

/// The HTML page of run `rec`, reading its artifacts from `store`.
pub async fn render(rec: &RunRecord, store: &ArtifactStore) -> Result<String> {
    // Producers of this run's artifacts, and the manifests of their outputs.
    let mut producer: HashMap<String, usize> = HashMap::new();
    for (i, n) in rec.nodes.iter().enumerate() {
        for o in n.outputs.values() {
            producer.insert(o.digest.clone(), i);
        }
    }
    let mut manifests: HashMap<String, ArtifactManifest> = HashMap::new();
    let mut edges = vec![];
    for (i, n) in rec.nodes.iter().enumerate() {
        for o in n.outputs.values() {
            if let Ok(Some(m)) = store.manifest(&o.digest).await {
                for digests in m.provenance.inputs.values() {
                    for d in digests {
                        if let Some(&p) = producer.get(d) {
                            if p != i && !edges.contains(&(p, i)) {
                                edges.push((p, i));
                            }
                        }
                    }
                }
                manifests.insert(o.digest.clone(), m);
            }
        }
    }
    let t0 = epoch_seconds(&rec.started_at).unwrap_or(0.0);
    let t_end = rec
        .ended_at
        .as_deref()
        .and_then(epoch_seconds)
        .unwrap_or_else(|| {
            rec.nodes
                .iter()
                .filter_map(|n| n.ended_at.as_deref().and_then(epoch_seconds))
                .fold(t0, f64::max)
        });
    let span = (t_end - t0).max(1e-3);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>zest run {}</title>\
         <style>{STYLE}</style></head><body><h1>{} — run {}</h1><table class=\"meta\">",
        esc(&rec.run_id),
        esc(&rec.dag),
        esc(&rec.run_id)
    );
    let params = serde_json::Value::Object(rec.params.clone()).to_string();
    for (k, v) in [
        ("status", rec.status.as_str().to_string()),
        ("DAG file", rec.dag_file.clone()),
        ("started", rec.started_at.clone()),
        ("ended", rec.ended_at.clone().unwrap_or_else(|| "-".into())),
        ("duration", format!("{span:.1} s")),
        ("params", params),
        ("store", rec.store.clone()),
        (
            "trace id",
            rec.trace_id.clone().unwrap_or_else(|| "-".into()),
        ),
    ] {
        let _ = write!(h, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v));
    }
    h.push_str("</table><h2>DAG</h2><div class=\"scroll\">");
    h.push_str(&dag_svg(rec, &edges));
    h.push_str(
        "</div><h2>Timings</h2><table><tr><th>node</th><th>operator</th><th>state</th>\
                <th>attempts</th><th>duration</th><th style=\"width:420px\">when</th></tr>",
    );
    for n in &rec.nodes {
        let start = n.started_at.as_deref().and_then(epoch_seconds);
        let end = n.ended_at.as_deref().and_then(epoch_seconds);
        let bar = match (start, end) {
            (Some(s), Some(e)) => format!(
                "<div style=\"margin-left:{:.1}%;width:{:.1}%;min-width:1px\" class=\"bar {}\"></div>",
                100.0 * (s - t0).max(0.0) / span,
                100.0 * (e - s).max(0.0) / span,
                n.status.as_str()
            ),
            _ => String::new(),
        };
        let _ = write!(
            h,
            "<tr><td><a href=\"#node-{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>{bar}</td></tr>",
            esc(&n.node),
            esc(&n.op),
            n.status.as_str(),
            n.attempts.len(),
            n.duration_s.map(|d| format!("{d:.2} s")).unwrap_or_default()
        );
    }
    h.push_str("</table><h2>Reports</h2>");
    for n in &rec.nodes {
        let reports: Vec<&ArtifactManifest> = n
            .outputs
            .values()
            .filter(|o| o.kind == PortType::Report)
            .filter_map(|o| manifests.get(&o.digest))
            .collect();
        if reports.is_empty() && n.error.is_none() {
            continue;
        }
        let _ = write!(
            h,
            "<section class=\"node\" id=\"node-{0}\"><h3>{0} <small>({1}, {2})</small></h3>",
            esc(&n.node),
            esc(&n.op),
            n.status.as_str()
        );
        if let Some(e) = &n.error {
            let _ = write!(h, "<div class=\"err\">{}</div>", esc(e));
        }
        for m in reports {
            let mut files: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
            files.sort();
            if files.contains(&"report.md") {
                let md = file_bytes(store, m, "report.md").await?;
                h.push_str(&markdown(&String::from_utf8_lossy(&md)));
            } else if files.contains(&"report.json") {
                let j = file_bytes(store, m, "report.json").await?;
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&j) {
                    h.push_str("<table>");
                    for (k, v) in scalars(&v) {
                        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(&k), esc(&v));
                    }
                    h.push_str("</table>");
                }
            }
            for f in files.iter().filter(|f| f.ends_with(".png")) {
                let b = file_bytes(store, m, f).await?;
                let _ = write!(
                    h,
                    "<img alt=\"{0}\" title=\"{0}\" src=\"data:image/png;base64,{1}\">",
                    esc(f),
                    base64(&b)
                );
            }
        }
        h.push_str("</section>");
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_markdown() {
        assert_eq!(epoch_seconds("1970-01-02T00:00:01Z"), Some(86401.0));
        let a = epoch_seconds("2026-12-01T23:24:11.403Z").unwrap();
        let b = epoch_seconds("2026-12-02T00:00:00Z").unwrap();
        assert!((b - a - 2148.597).abs() < 1e-6, "{}", b - a);
        let html = markdown("# Title\n\n| a | b |\n|---|---|\n| 1 | <x> |\n\n- one\n- two\ntext");
        assert!(html.contains("<h3>Title</h3>"), "{html}");
        assert!(
            html.contains("<tr><th>a</th><th>b</th></tr><tr><td>1</td><td>&lt;x&gt;</td></tr>"),
            "{html}"
        );
        assert!(
            html.contains("<ul><li>one</li><li>two</li></ul><p>text</p>"),
            "{html}"
        );
    }
}
