//! `resources.cpu` bounds the threads of a data operator: `clean.quality` over a few thousand
//! real abstracts uses one core with `cpu: 1` (CPU time ÷ wall time ≈ 1) and every core
//! without it. Its own test binary, so that no other test's processes share the CPU time
//! read from `getrusage(RUSAGE_CHILDREN)`.

mod common;
use common::{text, Project};
use std::time::Instant;

/// CPU seconds (user + system) of this process's waited-for descendants.
fn children_cpu() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) }, 0);
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn corpus(copies: usize) -> String {
    let abstracts = common::pubmed_abstracts("\n");
    let mut out = String::new();
    for c in 0..copies {
        for (pmid, text) in &abstracts {
            let row = serde_json::json!({"doc_id": format!("{pmid}-{c}"), "text": text});
            out.push_str(&row.to_string());
            out.push('\n');
        }
    }
    out
}

/// CPU time over wall time of a whole `zest run` of `clean.quality` with `resources`.
fn cores_used(p: &Project, resources: &str) -> (f64, f64) {
    p.write(
        "dag.yaml",
        &format!(
            "name: cpu\nnodes:\n  load:\n    op: data.load\n    with: {{paths: [docs.jsonl]}}\n  \
             q:\n    op: clean.quality\n    in: {{docs: load.data}}\n    with: {{preset: literature}}\n{resources}"
        ),
    );
    let before = children_cpu();
    let t0 = Instant::now();
    let o = p.zest(&["run", "dag.yaml", "--no-cache"]);
    let wall = t0.elapsed().as_secs_f64();
    let cpu = children_cpu() - before;
    assert!(o.status.success(), "{}", text(&o));
    (cpu / wall, wall)
}

#[test]
fn cpu_1_uses_one_core_and_no_declaration_uses_every_core() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let p = Project::new();
    p.write("docs.jsonl", &corpus(3));
    let (one, wall_one) = cores_used(&p, "    resources: {cpu: 1}\n");
    let (all, wall_all) = cores_used(&p, "");
    eprintln!(
        "cpu: 1 → {one:.2} cores ({wall_one:.1}s); undeclared → {all:.2} cores ({wall_all:.1}s); \
         {cores} cores here"
    );
    assert!(
        (0.7..=1.25).contains(&one),
        "with cpu: 1 the run used {one:.2} cores"
    );
    assert!(
        cores >= 2,
        "this test needs a machine with at least 2 cores to tell the cases apart"
    );
    assert!(
        all >= 1.5_f64.min(0.75 * cores as f64),
        "without resources.cpu the run used only {all:.2} of {cores} cores"
    );
}
