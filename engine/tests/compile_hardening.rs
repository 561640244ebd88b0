//! `compile_source` on hostile and unusual DAG files: alias bombs, deep nesting, huge DAGs,
//! byte-order marks, huge lines and values, out-of-range settings, colliding input ports.

mod support;

use zest_engine::compile::compile_source;
use zest_engine::diag::Diagnostics;
use zest_engine::plan::Plan;

fn compile(src: &str) -> Result<Plan, Diagnostics> {
    compile_source("t.yaml", src, &[], &support::registry())
}

#[test]
fn errors_on_huge_lines_render_briefly() {
    let big = "x".repeat(20 << 20);
    let src = format!("nodes:\n  a: {{op: noop, with: {{note: \"{big}\"}}, bogus: 1}}\n");
    let e = compile(&src).unwrap_err();
    assert_eq!(e.items.len(), 1, "{:?}", e.items[0].message);
    let r = e.render();
    assert!(r.len() < 1_000, "{} bytes", r.len());
    assert!(r.contains("unknown key `bogus`"), "{r}");
    let lines: Vec<&str> = r.lines().collect();
    let caret = lines[3].strip_prefix("  | ").unwrap().chars().count();
    let shown: Vec<char> = lines[2].strip_prefix("2 | ").unwrap().chars().collect();
    let at: String = shown[caret - 1..caret - 1 + 5].iter().collect();
    assert_eq!(at, "bogus", "{r}");
}

#[test]
fn huge_values_in_messages_are_cut() {
    // YAML keeps plain keys under 1024 characters; values have no such limit.
    let key = "k".repeat(1000);
    let big = "q".repeat(1 << 20);
    let src = format!(
        "nodes:\n  a:\n    op: noop\n    {key}: 1\n  b: {{op: \"{big}\"}}\n  c: {{op: noop, after: [\"{big}\"]}}\n"
    );
    let e = compile(&src).unwrap_err();
    let r = e.render();
    assert_eq!(e.items.len(), 3, "{r}");
    assert!(r.len() < 3_000, "{} bytes", r.len());
    assert!(r.contains("unknown key `kkkkkkkkkk"), "{r}");
    assert!(r.contains("…` in node `a`"), "{r}");
    assert!(r.contains("unknown operator `qqqqqqqq"), "{r}");
    assert!(r.contains("`after` names unknown node `qqqqqqqq"), "{r}");
}
