//! `shards: N`: a sharded `clean.quality`, `clean.entities` and `clean.relations` (one stage
//! over ranges of rows, then a merge) and a sharded `clean.dedup` (signatures → bands →
//! merge) give byte-identical outputs to the same nodes run whole, on real PubMed abstracts with planted exact and near copies; the shard
//! instances are nodes of their own in the run; an operator that cannot be sharded, and a
//! bad `shards` value, are compile errors at their position.

mod common;
use common::{digests, node, planted_corpus, text, Project};

const DAG: &str = r#"
name: sharded
nodes:
  load:
    op: data.load
    with: {paths: ["data/docs.jsonl"]}
  tiny:
    op: data.sql
    in: {docs: load.data}
    with: {query: "SELECT * FROM docs ORDER BY doc_id LIMIT 3"}
  quality:
    op: clean.quality
    in: {docs: load.data}
    with: {preset: literature}
  quality4:
    op: clean.quality
    in: {docs: load.data}
    with: {preset: literature}
    shards: 4
  quality_tiny:
    op: clean.quality
    in: {docs: tiny.data}
  quality_tiny5:
    op: clean.quality
    in: {docs: tiny.data}
    shards: 5
  dedup:
    op: clean.dedup
    in: {docs: load.data}
  dedup3:
    op: clean.dedup
    in: {docs: load.data}
    shards: 3
  dedup4:
    op: clean.dedup
    in: {docs: quality4.docs}
    shards: 4
  dedup_after_quality:
    op: clean.dedup
    in: {docs: quality.docs}
  entities:
    op: clean.entities
    in: {docs: load.data}
    with: {min_density: 0.02}
  entities3:
    op: clean.entities
    in: {docs: load.data}
    with: {min_density: 0.02}
    shards: 3
  relations:
    op: clean.relations
    in: {docs: entities.docs}
  relations2:
    op: clean.relations
    in: {docs: entities3.docs}
    shards: 2
"#;

fn digest(r: &serde_json::Value, n: &str, port: &str) -> String {
    node(r, n)["outputs"][port]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("{n}.{port} in {r}"))
        .to_string()
}

#[test]
fn sharded_nodes_write_what_unsharded_ones_do() {
    let p = Project::new();
    p.write("data/docs.jsonl", &planted_corpus());
    p.write("dag.yaml", DAG);
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    // (unsharded, sharded, ports): `quality_tiny5` has more shards than rows.
    let filtered = ["docs", "rejected", "report"];
    let deduped = ["docs", "duplicates", "report"];
    let pairs: [(&str, &str, &[&str]); 6] = [
        ("quality", "quality4", &filtered),
        ("quality_tiny", "quality_tiny5", &filtered),
        ("entities", "entities3", &filtered),
        ("relations", "relations2", &["docs"]),
        ("dedup", "dedup3", &deduped),
        ("dedup_after_quality", "dedup4", &deduped),
    ];
    for (whole, sharded, ports) in pairs {
        for port in ports {
            assert_eq!(
                digest(&r, whole, port),
                digest(&r, sharded, port),
                "{whole}.{port} against {sharded}.{port}"
            );
        }
    }
    // The copies were found, so the comparison is not between two empty outputs.
    let dups = p.json(&format!(
        ".zest/manifests/{}.json",
        digest(&r, "dedup", "duplicates")
    ));
    let removed = dups["meta"]["rows"].as_u64().unwrap();
    assert!(removed >= 150, "{removed} duplicates removed");
    // Every instance ran as a node of its own.
    let ids: Vec<String> = digests(&r).into_iter().map(|(k, _)| k).collect();
    for i in 0..4 {
        assert!(
            ids.contains(&format!("quality4[rows-{i}].part0")),
            "{ids:?}"
        );
        assert!(
            ids.contains(&format!("dedup4[signatures-{i}].part3")),
            "{ids:?}"
        );
        assert!(ids.contains(&format!("dedup4[bands-{i}].part0")), "{ids:?}");
    }
    assert!(!ids.iter().any(|k| k.starts_with("dedup3[bands-3]")));

    // Run again: every node, instances included, comes from the cache.
    let o = p.zest(&["run", "dag.yaml", "--report", "again.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let again = p.json("again.json");
    assert_eq!(digests(&again), digests(&r));
    for n in again["nodes"].as_array().unwrap() {
        assert_eq!(n["status"], "cached", "{n}");
    }
}

#[test]
fn shards_are_checked_where_they_are_written() {
    let p = Project::new();
    p.write("data/docs.jsonl", "{\"doc_id\": \"a\", \"text\": \"x\"}\n");
    p.write(
        "dag.yaml",
        "name: bad\nnodes:\n  load:\n    op: data.load\n    with: {paths: [data/docs.jsonl]}\n  \
         q:\n    op: data.sql\n    in: {docs: load.data}\n    with: {query: SELECT 1}\n    shards: 2\n  \
         d:\n    op: clean.dedup\n    in: {docs: load.data}\n    shards: 0\n",
    );
    let o = p.zest(&["ops", "clean.dedup"]);
    assert!(
        text(&o).contains("shards: yes (stages: signatures → bands,"),
        "{}",
        text(&o)
    );
    let o = p.zest(&["ops", "data.sql"]);
    assert!(!text(&o).contains("shards:"), "{}", text(&o));
    let o = p.zest(&["validate", "dag.yaml"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("dag.yaml:10:13") && t.contains("`data.sql` cannot be sharded"),
        "{t}"
    );
    assert!(
        t.contains("dag.yaml:14:13")
            && t.contains("`shards` must be a whole number from 1 to 1024"),
        "{t}"
    );
}
