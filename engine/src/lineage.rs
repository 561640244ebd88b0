//! Lineage: the upstream tree of an artifact, from the provenance in artifact manifests.

use crate::store::{is_digest, ArtifactStore};
use anyhow::{anyhow, bail, Result};
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

/// One artifact in a lineage tree.
#[derive(Debug, Clone, Serialize)]
pub struct LineageNode {
    /// Digest.
    pub digest: String,
    /// Type.
    pub kind: String,
    /// Where it lives.
    pub uri: String,
    /// Producing run.
    pub run_id: String,
    /// Producing node.
    pub node: String,
    /// Operator and version.
    pub op: String,
    /// Operator version.
    pub op_version: String,
    /// Trace and span of the producing node, if traced.
    pub span: Option<String>,
    /// Inputs: (port, subtree). A subtree already shown elsewhere has `repeated` set.
    pub inputs: Vec<(String, LineageNode)>,
    /// Whether this artifact's inputs were already listed earlier in the tree.
    pub repeated: bool,
}

/// Resolves `ARTIFACT` (a digest, or `RUN_ID:node.port`) to a digest.
pub fn resolve(spec: &str, state_dir: &Path) -> Result<String> {
    if is_digest(spec) {
        return Ok(spec.to_string());
    }
    let Some((run_id, rest)) = spec.split_once(':') else {
        bail!("`{spec}` is neither a digest (64 hex characters) nor RUN_ID:node.port");
    };
    let (node, port) = rest
        .rsplit_once('.')
        .ok_or_else(|| anyhow!("`{rest}`: write node.port"))?;
    let rec = crate::run::load_run(state_dir, run_id)?;
    let n = rec
        .node(node)
        .ok_or_else(|| anyhow!("run {run_id} has no node `{node}`"))?;
    let o = n.outputs.get(port).ok_or_else(|| {
        anyhow!(
            "node `{node}` of run {run_id} has no committed output `{port}` (status: {})",
            n.status.as_str()
        )
    })?;
    Ok(o.digest.clone())
}

/// Builds the upstream tree of `digest`.
pub async fn trace(store: &ArtifactStore, digest: &str) -> Result<LineageNode> {
    let mut seen = HashSet::new();
    walk(store, digest, &mut seen, 0).await
}

fn walk<'a>(
    store: &'a ArtifactStore,
    digest: &'a str,
    seen: &'a mut HashSet<String>,
    depth: usize,
) -> futures::future::BoxFuture<'a, Result<LineageNode>> {
    Box::pin(async move {
        let m = store.manifest(digest).await?.ok_or_else(|| {
            anyhow!(
                "artifact {digest} is not committed in store {}",
                store.url()
            )
        })?;
        let p = &m.provenance;
        let mut node = LineageNode {
            digest: digest.to_string(),
            kind: m.kind.as_str().to_string(),
            uri: store.artifact_uri(digest),
            run_id: p.run_id.clone(),
            node: p.node.clone(),
            op: p.op.clone(),
            op_version: p.op_version.clone(),
            span: (!p.span_id.is_empty()).then(|| format!("{}/{}", p.trace_id, p.span_id)),
            inputs: vec![],
            repeated: false,
        };
        if !seen.insert(digest.to_string()) || depth > 256 {
            node.repeated = true;
            return Ok(node);
        }
        for (port, ds) in &p.inputs {
            for d in ds {
                let child = walk(store, d, seen, depth + 1).await?;
                node.inputs.push((port.clone(), child));
            }
        }
        Ok(node)
    })
}

/// Renders the tree for a terminal.
pub fn render(n: &LineageNode) -> String {
    let mut out = String::new();
    line(&mut out, n, "", "", "");
    out
}

fn line(out: &mut String, n: &LineageNode, port: &str, lead: &str, child_lead: &str) {
    use std::fmt::Write;
    let port = if port.is_empty() {
        String::new()
    } else {
        format!("{port} ← ")
    };
    let _ = writeln!(
        out,
        "{lead}{port}{} ({})  {}",
        &n.digest[..16.min(n.digest.len())],
        n.kind,
        n.uri
    );
    let _ = writeln!(
        out,
        "{child_lead}    produced by node `{}` ({} v{}) in run {}",
        n.node, n.op, n.op_version, n.run_id
    );
    if let Some(s) = &n.span {
        let _ = writeln!(out, "{child_lead}    span {s}");
    }
    if n.repeated && !n.inputs.is_empty() {
        return;
    }
    if n.repeated {
        let _ = writeln!(out, "{child_lead}    (inputs shown above)");
        return;
    }
    let count = n.inputs.len();
    for (i, (p, c)) in n.inputs.iter().enumerate() {
        let last = i + 1 == count;
        let (l, cl) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        line(
            out,
            c,
            p,
            &format!("{child_lead}{l}"),
            &format!("{child_lead}{cl}"),
        );
    }
}
