//! `zest validate`: every kind of broken DAG exits 2 and points at the right line and column.

mod common;
use common::{text, Project};

/// Validates `dag` and returns (exit code, stderr).
fn validate(dag: &str, extra: &[&str]) -> (i32, String) {
    let p = Project::new();
    p.write("dag.yaml", dag);
    let mut args = vec!["validate", "dag.yaml"];
    args.extend_from_slice(extra);
    let o = p.zest(&args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Asserts exit 2 and an error at `line:col` whose message contains `needle`.
fn expect_error(dag: &str, extra: &[&str], line: usize, col: usize, needle: &str) {
    let (code, err) = validate(dag, extra);
    assert_eq!(code, 2, "expected exit 2 for:\n{dag}\n{err}");
    let prefix = format!("dag.yaml:{line}:{col}: error: ");
    assert!(
        err.lines()
            .any(|l| l.starts_with(&prefix) && l.contains(needle)),
        "expected `{prefix}…{needle}…` in:\n{err}"
    );
}

const OK_DAG: &str = "\
name: ok
params:
  n: {type: int, default: 5}
nodes:
  load:
    op: data.load
    with: {paths: [\"x.jsonl\"]}
  sql:
    op: data.sql
    in: {t: load.data}
    with: {query: \"SELECT * FROM t LIMIT ${params.n}\"}
  done:
    op: noop
    in: {a: sql.data}
    after: [load]
    retries: {max: 2, backoff: 1s}
    timeout: 90s
    resources: {cpu: 0.5, memory: 1GiB, gpu: 0}
";

#[test]
fn valid_dag_exits_0() {
    let (code, err) = validate(OK_DAG, &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn shipped_dags_are_valid() {
    for entry in std::fs::read_dir(common::repo().join("dags")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let o = std::process::Command::new(common::bin())
                .arg("validate")
                .arg(&path)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}: {}", path.display(), text(&o));
        }
    }
}

#[test]
fn yaml_syntax_error() {
    expect_error(
        "nodes:\n  a:\n    op: noop\n    with: {sleep_ms: [1, 2}\n",
        &[],
        4,
        27,
        "invalid YAML",
    );
}

#[test]
fn unknown_top_level_and_node_keys_suggest() {
    let dag = "name: x\nnodez: {}\nnodes:\n  a:\n    op: noop\n    retires: 3\n";
    expect_error(dag, &[], 2, 1, "unknown key `nodez`");
    expect_error(dag, &[], 6, 5, "unknown key `retires` in node `a`");
    let (_, err) = validate(dag, &[]);
    assert!(err.contains("did you mean `nodes`?"), "{err}");
    assert!(err.contains("did you mean `retries`?"), "{err}");
}

#[test]
fn duplicate_node_ids() {
    expect_error(
        "nodes:\n  a:\n    op: noop\n  a:\n    op: noop\n",
        &[],
        4,
        3,
        "duplicate node id `a`",
    );
}

#[test]
fn unknown_operator_suggests() {
    expect_error(
        "nodes:\n  a:\n    op: data.laod\n",
        &[],
        3,
        9,
        "unknown operator `data.laod`",
    );
    let (_, err) = validate("nodes:\n  a:\n    op: data.laod\n", &[]);
    assert!(err.contains("did you mean `data.load`?"), "{err}");
}

#[test]
fn with_block_checked_against_config_type() {
    let dag = "\
nodes:
  a:
    op: data.load
    with:
      pathz: [a.jsonl]
      format: xml
  b:
    op: noop
    with: {sleep_ms: -5}
  c:
    op: noop
    with: {sleep_ms: 100000000000}
  d:
    op: data.sql
    with: {query: 42}
";
    expect_error(dag, &[], 5, 7, "unknown field `pathz`");
    expect_error(
        dag,
        &[],
        6,
        15,
        "`format` must be one of `jsonl`, `csv`, `parquet`",
    );
    expect_error(dag, &[], 5, 7, "missing required field `paths`");
    expect_error(dag, &[], 9, 22, "`sleep_ms` must be at least 0");
    expect_error(dag, &[], 12, 22, "`sleep_ms` must be at most 86400000");
    expect_error(
        dag,
        &[],
        15,
        19,
        "`query` must be a string, found an integer",
    );
}

#[test]
fn undefined_param_and_param_type_errors() {
    let dag = "params:\n  n: {type: int, default: 3}\nnodes:\n  a:\n    op: noop\n    with: {sleep_ms: \"${params.nn}\"}\n";
    expect_error(dag, &[], 6, 22, "undefined parameter `nn`");
    let bad_default = "params:\n  n: {type: int, default: abc}\nnodes:\n  a:\n    op: noop\n";
    expect_error(bad_default, &[], 2, 27, "expected int, found a string");
    let ok = "params:\n  n: {type: int, default: 3}\nnodes:\n  a:\n    op: noop\n    with: {sleep_ms: \"${params.n}\"}\n";
    let (code, err) = validate(ok, &["--param", "n=seven"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--param n=seven: expected int, found a string"),
        "{err}"
    );
    let (code, err) = validate(ok, &["--param", "m=1"]);
    assert_eq!(code, 2);
    assert!(err.contains("declares no parameter `m`"), "{err}");
    let (code, err) = validate(ok, &["--param", "n=7"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn param_substitution_is_type_checked() {
    let dag = "params:\n  name: {type: string, default: x}\nnodes:\n  a:\n    op: noop\n    with: {sleep_ms: \"${params.name}\"}\n";
    expect_error(
        dag,
        &[],
        6,
        22,
        "`sleep_ms` must be an integer, found a string",
    );
}

#[test]
fn dangling_and_malformed_references() {
    let dag = "\
nodes:
  load:
    op: data.load
    with: {paths: [a.jsonl]}
  q:
    op: data.sql
    in: {t: lod.data, u: load.dat, v: justanode}
    with: {query: SELECT 1}
";
    expect_error(
        dag,
        &[],
        7,
        13,
        "reference `lod.data` names unknown node `lod`",
    );
    expect_error(
        dag,
        &[],
        7,
        26,
        "node `load` (data.load) has no output port `dat`",
    );
    expect_error(dag, &[], 7, 39, "invalid reference `justanode`");
    let (_, err) = validate(dag, &[]);
    assert!(err.contains("did you mean `load`?"), "{err}");
    assert!(err.contains("did you mean `data`?"), "{err}");
}

#[test]
fn unknown_input_port_and_missing_input() {
    let dag = "\
nodes:
  load:
    op: data.load
    in: {x: other.out}
    with: {paths: [a.jsonl]}
  other:
    op: noop
";
    expect_error(dag, &[], 4, 10, "`data.load` has no input port `x`");
}

#[test]
fn port_type_mismatch() {
    let dag = "\
nodes:
  files:
    op: shell
    with: {run: \"true\"}
  q:
    op: data.sql
    in: {t: files.out}
    with: {query: SELECT 1}
";
    expect_error(
        dag,
        &[],
        7,
        13,
        "type mismatch: input `t` of data.sql expects a dataset, but `files.out` is a files",
    );
}

#[test]
fn cycles_name_every_node() {
    let dag = "\
nodes:
  a:
    op: noop
    in: {x: c.out}
  b:
    op: noop
    in: {x: a.out}
  c:
    op: noop
    in: {x: b.out}
  d:
    op: noop
    after: d
";
    expect_error(dag, &[], 2, 3, "cycle: a → b → c → a");
    expect_error(dag, &[], 11, 3, "cycle: d → d");
}

#[test]
fn invalid_resources_and_durations() {
    let dag = "\
defaults:
  timeout: 10 minutes
nodes:
  a:
    op: noop
    resources: {cpu: 0, memory: lots, gpu: 1.5}
    retries: {max: -1, backoff: soon}
    timeout: 5x
";
    expect_error(dag, &[], 2, 12, "invalid duration `10 minutes`");
    expect_error(dag, &[], 6, 22, "`resources.cpu` must be a positive number");
    expect_error(dag, &[], 6, 33, "invalid memory size `lots`");
    expect_error(dag, &[], 6, 44, "`resources.gpu` must be a whole number");
    expect_error(
        dag,
        &[],
        7,
        20,
        "`retries.max` must be an integer from 0 to 1000",
    );
    expect_error(dag, &[], 7, 33, "invalid duration `soon`");
    expect_error(dag, &[], 8, 14, "unknown unit `x`");
}

#[test]
fn executor_names_are_checked_where_written() {
    let dag = "\
defaults:
  executor: [ray]
nodes:
  a:
    op: noop
    executor: gpu cluster
  b:
    op: noop
    executor: gpu-cluster
";
    expect_error(dag, &[], 2, 13, "`executor` must name an executor profile");
    expect_error(dag, &[], 6, 15, "`executor` must name an executor profile");
    let (code, err) = validate(
        "nodes:\n  b:\n    op: noop\n    executor: gpu-cluster\n",
        &[],
    );
    assert_eq!(
        code, 0,
        "a profile is defined at run time, not in the DAG: {err}"
    );
}

#[test]
fn sql_syntax_checked_before_running() {
    let dag = "nodes:\n  a:\n    op: data.sql\n    with: {query: \"SELEC * FROM t\"}\n";
    expect_error(dag, &[], 4, 11, "SQL syntax error");
}

#[test]
fn all_errors_reported_at_once_with_source_line() {
    let dag = "nodes:\n  a:\n    op: nope\n  b:\n    op: noop\n    in: {x: zz.out}\n";
    let (code, err) = validate(dag, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("dag.yaml:3:9: error: unknown operator `nope`"),
        "{err}"
    );
    assert!(
        err.contains("dag.yaml:6:13: error: reference `zz.out` names unknown node `zz`"),
        "{err}"
    );
    assert!(err.contains("3 |     op: nope"), "{err}");
    assert!(err.contains("2 errors"), "{err}");
}
