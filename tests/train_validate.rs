//! The training operators in the libtorch-free `zest`: `validate`, `ops` and `plan` know their
//! ports and config schemas and check their `with:` blocks at the right line and column.

mod common;
use common::{text, Project};

const DAG: &str = "\
name: train
nodes:
  docs:
    op: data.load
    with: {paths: [\"x.jsonl\"]}
  tok:
    op: train.tokenizer
    in: {data: docs.data}
    with: {vocab_size: 1000, chat_template: qwen2.5}
  init:
    op: model.init
    in: {tokenizer: tok.tokenizer}
    with: {size: tiny}
  cpt:
    op: train.cpt
    in: {model: init.model, web: docs.data, books: docs.data}
    with:
      sources: [web, books]
      max_steps: 10
  sft:
    op: train.sft
    in: {model: cpt.model, data: docs.data}
    with: {format: citrus, loss_on: last}
  pref:
    op: train.preference
    in: {model: sft.model, data: docs.data}
    with: {preset: citrus}
";

fn validate(p: &Project, dag: &str) -> (i32, String) {
    p.write("dag.yaml", dag);
    let o = p.zest(&["validate", "dag.yaml"]);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_training_dag_validates_without_libtorch() {
    let p = Project::new();
    let (code, err) = validate(&p, DAG);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn bad_training_configs_point_at_the_value() {
    let p = Project::new();
    let cases = [
        // An unknown chat template.
        (
            "chat_template: qwen2.5",
            "chat_template: chatml",
            &[9][..],
            "chatml",
        ),
        // A budget missing (a cross-field rule: reported at the `with:` block).
        (
            "      max_steps: 10\n",
            "      seq_len: 64\n",
            &[14, 17, 18],
            "max_steps or max_tokens",
        ),
        // A source without its port.
        (
            "sources: [web, books]",
            "sources: [web, books, papers]",
            &[15],
            "papers",
        ),
        // An unknown size preset.
        ("{size: tiny}", "{size: huge}", &[13], "huge"),
        // An unknown SFT format.
        ("format: citrus", "format: csv", &[23], "csv"),
    ];
    for (from, to, lines, needle) in cases {
        let dag = DAG.replace(from, to);
        assert_ne!(dag, DAG, "{from}");
        let (code, err) = validate(&p, &dag);
        assert_eq!(code, 2, "{to}: {err}");
        let at = |l: &str| {
            lines
                .iter()
                .any(|n| l.starts_with(&format!("dag.yaml:{n}:")))
        };
        assert!(
            err.lines().any(|l| at(l) && l.contains(needle)),
            "{to}: expected an error at line {lines:?} naming `{needle}`:\n{err}"
        );
    }
}

#[test]
fn ops_lists_the_training_operators_and_where_they_run() {
    let p = Project::new();
    let o = p.zest(&["ops"]);
    let all = String::from_utf8_lossy(&o.stdout);
    for op in [
        "model.load",
        "model.init",
        "train.tokenizer",
        "train.cpt",
        "train.sft",
        "train.preference",
    ] {
        assert!(all.contains(op), "{op} missing from `zest ops`:\n{all}");
    }
    let o = p.zest(&["ops", "train.cpt"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.contains("runs in: zest-torch workers"), "{out}");
    assert!(
        out.contains("learning_progress") && out.contains("holdout_sequences"),
        "{out}"
    );
    let o = p.zest(&["ops", "train.tokenizer"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("runs in:"));
}
