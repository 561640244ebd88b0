//! `zest graph`: the plan as Mermaid or Graphviz DOT.

use crate::plan::Plan;
use std::fmt::Write;

fn mermaid_id(id: &str) -> String {
    id.replace('-', "_")
}

/// Mermaid flowchart, edges labelled `port → port`.
pub fn mermaid(plan: &Plan) -> String {
    let mut s = String::from("flowchart TD\n");
    for ix in &plan.order {
        let n = &plan.graph[*ix];
        let _ = writeln!(
            s,
            "    {}[\"{}<br/><small>{}</small>\"]",
            mermaid_id(&n.id),
            n.id,
            n.op.name()
        );
    }
    for ix in &plan.order {
        let n = &plan.graph[*ix];
        for (port, refs) in &n.inputs {
            for r in refs {
                let _ = writeln!(
                    s,
                    "    {} -- \"{} → {}\" --> {}",
                    mermaid_id(&r.node),
                    r.port,
                    port,
                    mermaid_id(&n.id)
                );
            }
        }
        for a in &n.after {
            let _ = writeln!(s, "    {} -.-> {}", mermaid_id(a), mermaid_id(&n.id));
        }
    }
    s
}

/// Graphviz DOT, edges labelled `port → port`.
pub fn dot(plan: &Plan) -> String {
    let mut s = format!(
        "digraph \"{}\" {{\n    rankdir=TB;\n    node [shape=box, style=rounded];\n",
        plan.name.replace('"', "'")
    );
    for ix in &plan.order {
        let n = &plan.graph[*ix];
        let _ = writeln!(
            s,
            "    \"{}\" [label=\"{}\\n({})\"];",
            n.id,
            n.id,
            n.op.name()
        );
    }
    for ix in &plan.order {
        let n = &plan.graph[*ix];
        for (port, refs) in &n.inputs {
            for r in refs {
                let _ = writeln!(
                    s,
                    "    \"{}\" -> \"{}\" [label=\"{} → {}\"];",
                    r.node, n.id, r.port, port
                );
            }
        }
        for a in &n.after {
            let _ = writeln!(s, "    \"{}\" -> \"{}\" [style=dashed];", a, n.id);
        }
    }
    s.push_str("}\n");
    s
}
