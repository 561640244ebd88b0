//! `compile_source` on hostile and unusual DAG files: alias bombs, deep nesting, huge DAGs,
//! byte-order marks, huge lines and values, out-of-range settings, colliding input ports.

mod support;

use std::time::{Duration, Instant};
use zest_engine::compile::compile_source;
use zest_engine::diag::{Diagnostic, Diagnostics, Pos};
use zest_engine::plan::Plan;

fn compile(src: &str) -> Result<Plan, Diagnostics> {
    compile_source("t.yaml", src, &[], &support::registry())
}

fn errors(src: &str) -> Vec<Diagnostic> {
    match compile(src) {
        Ok(_) => panic!("compiled, expected errors"),
        Err(d) => d.items,
    }
}

fn only_error(src: &str) -> Diagnostic {
    let e = errors(src);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.into_iter().next().unwrap()
}

/// The classic "billion laughs": nine levels of nine aliases each, 9^9 strings once expanded.
fn alias_bomb() -> String {
    let mut s = String::from("name: lol\nnodes:\n  a:\n    op: noop\n    with:\n      note: x\n");
    s.push_str("bomb:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let prev = format!("*l{}", i - 1);
        let items = [prev.as_str(); 9].join(", ");
        s.push_str(&format!("  l{i}: &l{i} [{items}]\n"));
    }
    s
}

#[test]
fn alias_bomb_is_refused_at_the_alias() {
    let src = alias_bomb();
    assert!(src.len() < 700, "{}", src.len());
    let t = Instant::now();
    let d = only_error(&src);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(d.message.contains("alias `*l"), "{}", d.message);
    assert!(
        d.message.contains("more than 100000 values"),
        "{}",
        d.message
    );
    let pos = d.pos.expect("has a position");
    let line = src.lines().nth(pos.line - 1).unwrap();
    let at: String = line.chars().skip(pos.col - 1).take(2).collect();
    assert_eq!(&at[..2], "*l", "{pos:?} in {line}");
}

#[test]
fn small_aliases_still_work() {
    let src = "\
defaults:
  retries: &retry {max: 2, backoff: 1s}
nodes:
  load:
    op: data.load
    with: &load_cfg
      paths: [a.parquet, b.parquet]
      columns: &cols [id, text]
  load2:
    op: data.load
    retries: *retry
    with: *load_cfg
  train:
    op: model.train
    in: {data: load.data}
    with: {epochs: 3, tags: *cols}
  train2:
    op: model.train
    retries: *retry
    in: {data: load2.data}
    with: {epochs: 3, tags: *cols}
";
    let plan = compile(src).unwrap_or_else(|d| panic!("{}", d.render()));
    let load2 = &plan.graph[plan.index["load2"]];
    assert_eq!(load2.config["paths"][1], "b.parquet");
    assert_eq!(load2.retries.max, 2);
    let train2 = &plan.graph[plan.index["train2"]];
    assert_eq!(train2.config["tags"][1], "text");
}

#[test]
fn deep_block_nesting_is_refused_where_the_limit_is_crossed() {
    let depth = 100_000;
    let src = format!(
        "nodes:\n  a:\n    op: model.train\n    with:\n      extra:\n        {}x\n",
        "- ".repeat(depth)
    );
    let d = only_error(&src);
    assert!(
        d.message.contains("nest more than 128 levels"),
        "{}",
        d.message
    );
    let pos = d.pos.unwrap();
    assert_eq!(pos.line, 6);
    // Four mappings (the file, `nodes`, `a`, `with`) hold the list, so the 125th `- ` opens
    // the 129th level.
    assert_eq!(pos.col, 9 + 2 * 124, "{pos:?}");
}

#[test]
fn deep_flow_nesting_is_refused() {
    for (open, close) in [("[", "]"), ("{a: ", "}")] {
        let src = format!(
            "nodes:\n  a:\n    op: model.train\n    with: {{epochs: 1, extra: {}1{}}}\n",
            open.repeat(200),
            close.repeat(200)
        );
        let e = errors(&src);
        assert!(e[0].message.contains("nest more than 128 levels"), "{e:?}");
    }
}

#[test]
fn nesting_below_the_limit_is_kept() {
    let depth = 120;
    let src = format!(
        "nodes:\n  l: {{op: data.load, with: {{paths: [x], columns: [text]}}}}\n  a:\n    op: model.train\n    in: {{data: l.data}}\n    with: {{epochs: 1, extra: {}1{}}}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let plan = compile(&src).unwrap_or_else(|d| panic!("{}", d.render()));
    let mut v = &plan.graph[plan.index["a"]].config["extra"];
    let mut n = 0;
    while let Some(a) = v.as_array() {
        v = &a[0];
        n += 1;
    }
    assert_eq!(n, depth);
}

#[test]
fn aliases_cannot_nest_past_the_limit() {
    let mut src = String::from("nodes:\n  a: {op: noop}\nx:\n  a0: &a0 [1]\n");
    for i in 1..200 {
        src.push_str(&format!("  a{i}: &a{i} [*a{}]\n", i - 1));
    }
    let d = only_error(&src);
    assert!(
        d.message.contains("nest more than 128 levels"),
        "{}",
        d.message
    );
    assert!(d.message.contains("alias `*a"), "{}", d.message);
}

fn chain(n: usize, cycle: bool) -> String {
    let mut s = String::with_capacity(n * 40);
    s.push_str("name: chain\nnodes:\n");
    s.push_str(if cycle {
        "  n0: {op: noop, after: [n_last]}\n"
    } else {
        "  n0: {op: noop}\n"
    });
    for i in 1..n {
        let id = if cycle && i == n - 1 {
            "n_last".to_string()
        } else {
            format!("n{i}")
        };
        s.push_str(&format!("  {id}:\n    op: noop\n    after: [n{}]\n", i - 1));
    }
    s
}

#[test]
fn after_chain_of_100k_nodes_validates() {
    let src = chain(100_000, false);
    let t = Instant::now();
    let plan = compile(&src).unwrap_or_else(|d| panic!("{}", d.render()));
    let took = t.elapsed();
    assert_eq!(plan.order.len(), 100_000);
    assert_eq!(plan.graph[plan.order[0]].id, "n0");
    assert_eq!(plan.graph[plan.order[99_999]].id, "n99999");
    let limit = Duration::from_secs(if cfg!(debug_assertions) { 60 } else { 10 });
    assert!(took < limit, "{took:?}");
    drop(plan);
}

#[test]
fn cycle_through_100k_nodes_is_reported_briefly() {
    let src = chain(100_000, true);
    let d = only_error(&src);
    assert!(
        d.message.starts_with("cycle: n0 → n1 → n2"),
        "{}",
        d.message
    );
    assert_eq!(d.pos, Some(Pos::new(3, 3)));
    let r = Diagnostics {
        file: "t.yaml".into(),
        source: src,
        items: vec![d],
    }
    .render();
    assert!(r.len() < 2_000, "{}", r.len());
}

#[test]
fn byte_order_mark_is_ignored() {
    let src = "\u{feff}name: bom\nnodes:\n  a: {op: noop}\n";
    let plan = compile(src).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(plan.name, "bom");
    // Positions are those an editor shows: unchanged on later lines, and from the first
    // character after the mark on the first.
    let d = only_error("\u{feff}nme: bom\nnodes:\n  a: {op: noop}\n");
    assert_eq!(d.pos, Some(Pos::new(1, 1)));
    assert!(d.message.contains("unknown key `nme`"), "{}", d.message);
    let d = only_error("\u{feff}name: bom\nnodes:\n  a: {op: nop}\n");
    assert_eq!(d.pos, Some(Pos::new(3, 11)));
    let r = compile("\u{feff}nme: bom\nnodes:\n  a: {op: noop}\n")
        .unwrap_err()
        .render();
    assert!(r.contains("1 | nme: bom\n  | ^\n"), "{r}");
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

#[test]
fn scalar_retries_are_range_checked() {
    for (v, ok) in [
        ("5000000000", false),
        ("-1", false),
        ("1001", false),
        ("1000", true),
        ("0", true),
    ] {
        let src = format!("nodes:\n  a:\n    op: noop\n    retries: {v}\n");
        match compile(&src) {
            Ok(plan) => {
                assert!(ok, "{v} accepted");
                assert_eq!(plan.graph[plan.index["a"]].retries.max.to_string(), v);
            }
            Err(d) => {
                assert!(!ok, "{v}: {}", d.render());
                assert_eq!(d.items.len(), 1);
                assert_eq!(d.items[0].pos, Some(Pos::new(4, 14)));
                assert_eq!(
                    d.items[0].message,
                    format!("`retries` must be an integer from 0 to 1000, found {v}")
                );
            }
        }
    }
    let e = only_error("defaults:\n  retries: 4294967297\nnodes:\n  a: {op: noop}\n");
    assert!(e.message.contains("from 0 to 1000"), "{}", e.message);
}

#[test]
fn huge_durations_are_refused() {
    for v in [
        "99999999999999999999999d",
        "1e400",
        "9223372036854775807",
        &"9999999999d".repeat(10_000),
        "400d",
    ] {
        for key in [
            "timeout",
            "retries: {max: 1, backoff",
            "retries: {max: 1, max_backoff",
        ] {
            let close = if key.starts_with("retries") { "}" } else { "" };
            let src = format!("nodes:\n  a:\n    op: noop\n    {key}: {v}{close}\n");
            let e = errors(&src);
            assert_eq!(e.len(), 1, "{e:?}");
            assert_eq!(e[0].pos.map(|p| p.line), Some(4), "{e:?}");
            let word = if key.contains("max_backoff") {
                "`retries.max_backoff`"
            } else if key.contains("backoff") {
                "`retries.backoff`"
            } else {
                "`timeout`"
            };
            assert!(e[0].message.starts_with(word), "{}", e[0].message);
            if !v.contains('e') {
                assert!(
                    e[0].message.contains("at most 365 days"),
                    "{}",
                    e[0].message
                );
            }
        }
    }
    let plan = compile("nodes:\n  a: {op: noop, timeout: 30d}\n").unwrap();
    assert_eq!(
        plan.graph[plan.index["a"]].timeout,
        Some(Duration::from_secs(30 * 86_400))
    );
}

#[test]
fn input_ports_with_one_environment_variable_are_refused() {
    let head = "nodes:\n  a: {op: noop}\n  b: {op: noop}\n  c:\n    op: shell\n    with: {run: ls}\n    in:\n";
    for (p1, p2, var) in [
        ("myPort", "MYPORT", "ZEST_IN_MYPORT"),
        ("my-x", "my_x", "ZEST_IN_MY_X"),
        ("x.y", "X-Y", "ZEST_IN_X_Y"),
    ] {
        let src = format!("{head}      {p1}: a.out\n      {p2}: b.out\n");
        let d = only_error(&src);
        assert_eq!(d.pos, Some(Pos::new(9, 7)), "{}", d.message);
        assert_eq!(
            d.message,
            format!(
                "input ports `{p1}` and `{p2}` of node `c` both set environment variable `{var}`"
            )
        );
    }
    // A port named like another port's digest variable.
    let d = only_error(&format!("{head}      a: a.out\n      a_digest: b.out\n"));
    assert!(
        d.message.contains("`a` and `a_digest`")
            && d.message
                .contains("`ZEST_IN_A_DIGEST` holds the digests of `a`"),
        "{}",
        d.message
    );
    let d = only_error(&format!("{head}      a-digest: a.out\n      a: b.out\n"));
    assert!(d.message.contains("`a-digest` and `a`"), "{}", d.message);
    // Distinct variables are fine.
    compile(&format!("{head}      my_x: a.out\n      myx: b.out\n"))
        .unwrap_or_else(|d| panic!("{}", d.render()));
}

#[test]
fn template_errors_in_folded_scalars_point_at_the_scalar() {
    // A plain scalar over two lines folds into one; its columns no longer match the text.
    let d = only_error(
        "nodes:\n  a:\n    op: shell\n    with:\n      run: echo a long\n        command ${params.n}\n",
    );
    assert!(
        d.message.contains("undefined parameter `n`"),
        "{}",
        d.message
    );
    assert_eq!(d.pos, Some(Pos::new(5, 12)));
    // On one line, the error points at the template itself.
    let d = only_error("nodes:\n  a:\n    op: shell\n    with:\n      run: echo ${params.n}\n");
    assert_eq!(d.pos, Some(Pos::new(5, 17)));
}

#[test]
fn template_expansion_is_bounded() {
    // 50 KB of text: a list of 3,000 items, used as a whole value 3,000 times.
    let src = format!(
        "params:\n  l: {{type: list, default: [{}]}}\nnodes:\n  a: {{op: model.train, with: {{epochs: 1, extra: [{}]}}}}\n",
        vec!["x"; 3000].join(","),
        vec!["\"${params.l}\""; 3000].join(",")
    );
    let t = Instant::now();
    let d = only_error(&src);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        d.message.contains("templates would add more than"),
        "{}",
        d.message
    );
    assert_eq!(d.pos.map(|p| p.line), Some(4));
    // A 100 KB string formatted into one value 3,000 times.
    let src = format!(
        "params:\n  s: \"{}\"\nnodes:\n  a: {{op: noop, with: {{note: \"{}\"}}}}\n",
        "y".repeat(100_000),
        "${params.s}".repeat(3000)
    );
    let d = only_error(&src);
    assert!(d.message.contains("MiB of text"), "{}", d.message);
    // Ordinary use of list and text parameters is fine.
    let src = format!(
        "params:\n  l: [a, b, c]\n  s: hello\nnodes:\n{}",
        (0..1000)
            .map(|i| format!("  n{i}: {{op: data.load, with: {{paths: \"${{params.l}}\", options: {{k: \"${{params.s}} ${{params.l}}\"}}}}}}\n"))
            .collect::<String>()
    );
    let plan = compile(&src).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(plan.graph[plan.index["n999"]].config["paths"][2], "c");
}

#[test]
fn many_templates_are_refused_quickly() {
    // Every undefined reference is an error whose column is found in the line: with 100,000
    // of them on one 1.2 MB line that was quadratic.
    let src = format!(
        "nodes:\n  a:\n    op: noop\n    with:\n      note: x{}\n",
        "${params.m}".repeat(110_000)
    );
    let t = Instant::now();
    let d = only_error(&src);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        d.message.contains("more than 100000 `${…}` templates"),
        "{}",
        d.message
    );
    // Below the limit, errors in a long plain scalar point at the scalar.
    let src = format!(
        "nodes:\n  a:\n    op: noop\n    with:\n      note: x{}\n",
        "${params.m}".repeat(50_000)
    );
    let t = Instant::now();
    let e = compile(&src).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(e.items[0].pos, Some(Pos::new(5, 13)), "{:?}", e.items[0]);
}
