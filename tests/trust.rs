//! A cache and a store users can trust: every file a node reads is in its cache key, inputs
//! cannot be changed through a node, damaged artifacts are detected and repaired, outputs
//! cannot smuggle links or undecodable names, secrets stay out of everything zest writes,
//! parameters cannot inject shell code, and hostile input, signals and closed pipes are
//! handled.

mod common;
use common::{node, text, Project};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn run(p: &Project, dag: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["run", dag, "--report", "run.json"];
    args.extend_from_slice(extra);
    let o = p.zest(&args);
    assert!(o.status.success(), "{}", text(&o));
    p.json("run.json")
}

fn cached(r: &serde_json::Value, n: &str) -> bool {
    node(r, n)["status"] == "cached"
}

fn rows(p: &Project, r: &serde_json::Value, n: &str, port: &str) -> serde_json::Value {
    let d = node(r, n)["outputs"][port]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    p.json(&format!(".zest/manifests/{d}.json"))["meta"]["rows"].clone()
}

fn plan_action(p: &Project, dag: &str, n: &str) -> String {
    let o = p.zest(&["plan", dag, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|r| r["node"] == n)
        .unwrap_or_else(|| panic!("no {n} in {v}"))["action"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every file under `dir`, recursively, with its content.
fn tree(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push((
                    e.path().strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------- 1. files in cache keys

#[test]
fn changed_added_and_removed_input_files_are_cache_misses() {
    let p = Project::new();
    p.write("in/a.jsonl", "{\"id\": 1, \"text\": \"aspirin\"}\n");
    p.write(
        "dag.yaml",
        "nodes:\n  load:\n    op: data.load\n    with: {paths: [\"in/*.jsonl\"], format: jsonl}\n  html:\n    op: ingest.html\n    with: {paths: [\"web/*.html\"], min_chars: 1}\n",
    );
    p.write(
        "web/a.html",
        "<html><head><title>A</title></head><body><p>Metformin lowers hepatic glucose output in adults with type 2 diabetes mellitus.</p></body></html>",
    );
    let r1 = run(&p, "dag.yaml", &[]);
    assert_eq!(rows(&p, &r1, "load", "data"), 1, "{r1}");
    assert_eq!(plan_action(&p, "dag.yaml", "load"), "cached");
    // A row added to the same file: a miss, and the new row is in the output.
    std::fs::write(
        p.path().join("in/a.jsonl"),
        "{\"id\": 1, \"text\": \"aspirin\"}\n{\"id\": 2, \"text\": \"insulin\"}\n",
    )
    .unwrap();
    assert_eq!(plan_action(&p, "dag.yaml", "load"), "run");
    let r2 = run(&p, "dag.yaml", &[]);
    assert!(!cached(&r2, "load"), "{r2}");
    assert_eq!(rows(&p, &r2, "load", "data"), 2);
    assert!(cached(&r2, "html"), "{r2}");
    // A file added to a glob.
    p.write(
        "web/b.html",
        "<html><head><title>B</title></head><body><p>Sepsis is a life-threatening organ dysfunction caused by a dysregulated host response to infection.</p></body></html>",
    );
    let r3 = run(&p, "dag.yaml", &[]);
    assert!(!cached(&r3, "html") && cached(&r3, "load"), "{r3}");
    // A file removed: back to the first run's files, so its outputs (from the cache).
    std::fs::remove_file(p.path().join("web/b.html")).unwrap();
    let r4 = run(&p, "dag.yaml", &[]);
    assert_ne!(
        node(&r4, "html")["outputs"]["docs"]["digest"],
        node(&r3, "html")["outputs"]["docs"]["digest"]
    );
    assert_eq!(
        node(&r4, "html")["outputs"]["docs"]["digest"],
        node(&r1, "html")["outputs"]["docs"]["digest"]
    );
    // Unchanged: hits, and the files are named in the manifest's provenance.
    let r5 = run(&p, "dag.yaml", &[]);
    assert!(cached(&r5, "html") && cached(&r5, "load"), "{r5}");
    let d = node(&r5, "load")["outputs"]["data"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let m = p.json(&format!(".zest/manifests/{d}.json"));
    let files = m["provenance"]["files"].as_array().unwrap();
    assert!(
        files[0]["location"]
            .as_str()
            .unwrap()
            .ends_with("in/a.jsonl"),
        "{m}"
    );
    assert!(
        files[0]["content"].as_str().unwrap().starts_with("sha256:"),
        "{m}"
    );
}

#[test]
fn shell_reads_are_in_the_cache_key() {
    let p = Project::new();
    p.write("conf/x.txt", "one\n");
    p.write(
        "dag.yaml",
        "nodes:\n  s:\n    op: shell\n    with: {run: 'cp conf/x.txt \"$ZEST_OUT/\"', reads: [\"conf/*.txt\"]}\n",
    );
    run(&p, "dag.yaml", &[]);
    assert_eq!(plan_action(&p, "dag.yaml", "s"), "cached");
    std::fs::write(p.path().join("conf/x.txt"), "two\n").unwrap();
    let r = run(&p, "dag.yaml", &[]);
    assert!(!cached(&r, "s"), "{r}");
    let out = node(&r, "s")["outputs"]["out"]["uri"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(format!("{out}/x.txt")).unwrap(),
        "two\n"
    );
}

// ---------------------------------------------------------------- 2. code in cache keys

#[test]
fn the_code_fingerprint_is_part_of_the_cache_key() {
    let p = Project::new();
    p.write("dag.yaml", "nodes:\n  a:\n    op: noop\n");
    let r = run(&p, "dag.yaml", &[]);
    let d = node(&r, "a")["outputs"]["out"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let m = p.json(&format!(".zest/manifests/{d}.json"));
    let code = m["provenance"]["op_code"].as_str().unwrap_or("");
    assert_eq!(code.len(), 32, "{m}");
}

// ---------------------------------------------------------------- 3. read-only inputs

const TAMPER: &str = r#"
nodes:
  make:
    op: shell
    with: {run: 'printf "%01000d" 0 > "$ZEST_OUT/file"; printf "%01000d" 1 > "$ZEST_OUT/other"'}
  tamper:
    op: shell
    in: {x: make.out}
    with: {run: 'echo X >> "$ZEST_IN_X/file"; rm -f "$ZEST_IN_X/other"; touch "$ZEST_IN_X/new"; echo done > "$ZEST_OUT/r"'}
"#;

#[test]
fn nodes_cannot_change_their_inputs() {
    let p = Project::new();
    p.write("dag.yaml", TAMPER);
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    let r = p.json("run.json");
    let art = node(&r, "make")["outputs"]["out"]["uri"]
        .as_str()
        .unwrap()
        .to_string();
    // The writes fail (read-only file system or permission denied) …
    let log = std::fs::read_to_string(p.path().join(format!(
        ".zest/runs/{}/logs/tamper.log",
        r["run_id"].as_str().unwrap()
    )))
    .unwrap_or_default();
    assert!(
        log.contains("Read-only") || log.contains("ermission denied"),
        "{log}\n{}",
        text(&o)
    );
    // … and the committed artifact is as it was.
    let files = tree(std::path::Path::new(&art));
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[0].1.len(), 1000);
    let v = p.zest(&["store", "verify"]);
    assert!(v.status.success(), "{}", text(&v));
}

// ---------------------------------------------------------------- 4. damage is repaired

#[test]
fn damaged_artifacts_are_detected_and_repaired_by_the_next_run() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        "nodes:\n  make:\n    op: shell\n    with: {run: 'seq 1 20000 > \"$ZEST_OUT/n.txt\"'}\n  use:\n    op: shell\n    in: {x: make.out}\n    with: {run: 'wc -l < \"$ZEST_IN_X/n.txt\" > \"$ZEST_OUT/count\"'}\n",
    );
    let r1 = run(&p, "dag.yaml", &[]);
    let art = node(&r1, "make")["outputs"]["out"]["uri"]
        .as_str()
        .unwrap()
        .to_string();
    let file = std::path::Path::new(&art).join("n.txt");
    let good = std::fs::read(&file).unwrap();
    // Damage it as a careless user with write access would: truncate it.
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "chmod u+w '{0}' '{1}' && truncate -s 100 '{1}'",
            art,
            file.display()
        ))
        .status()
        .unwrap();
    let v = p.zest(&["store", "verify"]);
    assert!(!v.status.success(), "{}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("BAD"),
        "{}",
        text(&v)
    );
    // Not a cache hit: the producer runs again and its output replaces the damaged bytes.
    assert_eq!(plan_action(&p, "dag.yaml", "make"), "run");
    let r2 = run(&p, "dag.yaml", &[]);
    assert!(!cached(&r2, "make"), "{r2}");
    assert_eq!(std::fs::read(&file).unwrap(), good);
    let v = p.zest(&["store", "verify"]);
    assert!(v.status.success(), "{}", text(&v));
    let r3 = run(&p, "dag.yaml", &[]);
    assert!(cached(&r3, "make") && cached(&r3, "use"), "{r3}");
}

#[test]
fn a_no_cache_rerun_replaces_an_edited_payload() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        "nodes:\n  make:\n    op: shell\n    with: {run: 'seq 1 30000 > \"$ZEST_OUT/n.txt\"'}\n",
    );
    let r1 = run(&p, "dag.yaml", &[]);
    let art = node(&r1, "make")["outputs"]["out"]["uri"]
        .as_str()
        .unwrap()
        .to_string();
    let file = std::path::Path::new(&art).join("n.txt");
    let good = std::fs::read(&file).unwrap();
    // Same size, other bytes.
    let mut bad = good.clone();
    bad[10] = b'X';
    std::process::Command::new("chmod")
        .arg("u+w")
        .arg(&file)
        .status()
        .unwrap();
    std::fs::write(&file, &bad).unwrap();
    run(&p, "dag.yaml", &["--no-cache"]);
    assert_eq!(std::fs::read(&file).unwrap(), good);
    let v = p.zest(&["store", "verify"]);
    assert!(v.status.success(), "{}", text(&v));
}

// ---------------------------------------------------------------- 5, 6. links and names

#[test]
fn links_out_of_an_output_are_refused_and_inner_links_stored_as_files() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        "nodes:\n  out:\n    op: shell\n    with: {run: 'ln -s /etc/passwd \"$ZEST_OUT/p\"'}\n  dir:\n    op: shell\n    with: {run: 'ln -s /etc \"$ZEST_OUT/etc\"'}\n  inner:\n    op: shell\n    with: {run: 'echo hi > \"$ZEST_OUT/a\"; ln -s a \"$ZEST_OUT/b\"; ln -s \"$ZEST_OUT/a\" \"$ZEST_OUT/c\"'}\n",
    );
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = p.json("run.json");
    let e = node(&r, "out")["error"].as_str().unwrap();
    assert!(
        e.contains("`p` is a symbolic link to /etc/passwd") && e.contains("outside"),
        "{e}"
    );
    let e = node(&r, "dir")["error"].as_str().unwrap();
    assert!(e.contains("`etc` is a symbolic link"), "{e}");
    assert_eq!(node(&r, "inner")["status"], "succeeded", "{r}");
    let art = node(&r, "inner")["outputs"]["out"]["uri"]
        .as_str()
        .unwrap()
        .to_string();
    for f in ["a", "b", "c"] {
        let path = std::path::Path::new(&art).join(f);
        assert!(
            !path.symlink_metadata().unwrap().file_type().is_symlink(),
            "{f}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hi\n");
    }
    let v = p.zest(&["store", "verify"]);
    assert!(v.status.success(), "{}", text(&v));
}

#[test]
fn non_utf8_output_names_are_refused() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        "nodes:\n  bad:\n    op: shell\n    with: {run: 'touch \"$ZEST_OUT/$(printf \"caf\\351\")\"'}\n",
    );
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = p.json("run.json");
    let e = node(&r, "bad")["error"].as_str().unwrap();
    assert!(e.contains("not valid UTF-8") && e.contains("caf"), "{e}");
    let v = p.zest(&["store", "verify"]);
    assert!(v.status.success(), "{}", text(&v));
}

// ---------------------------------------------------------------- 7. store paths, leftovers

#[test]
fn verify_of_a_missing_store_fails_without_creating_it() {
    let p = Project::new();
    let missing = p.path().join("nonexistent/dir");
    let o = p.zest(&["--store", missing.to_str().unwrap(), "store", "verify"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no store at"),
        "{}",
        text(&o)
    );
    assert!(!missing.exists());
}

#[test]
fn leftovers_of_interrupted_commits_are_reported_and_collected() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        "nodes:\n  a:\n    op: shell\n    with: {run: 'echo x > \"$ZEST_OUT/x\"'}\n",
    );
    run(&p, "dag.yaml", &[]);
    // What a commit killed mid-copy leaves: a staging payload of a process that is gone.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let staging = p
        .path()
        .join(format!(".zest/artifacts/.{}.{dead}-0.tmp", "ab".repeat(32)));
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("part"), vec![0u8; 100_000]).unwrap();
    let v = p.zest(&["store", "verify"]);
    assert!(!v.status.success(), "{}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("zest store gc"),
        "{}",
        text(&v)
    );
    let g = p.zest(&["store", "gc"]);
    assert!(g.status.success(), "{}", text(&g));
    assert!(!staging.exists());
    let v = p.zest(&["store", "verify"]);
    assert!(v.status.success(), "{}", text(&v));
}

// ---------------------------------------------------------------- 8. secrets

const SECRET_DAG: &str = r#"
params:
  api_key: {type: secret, env: ZEST_TEST_API_KEY, help: "the endpoint's key"}
nodes:
  use:
    op: shell
    with:
      run: 'echo "key is ${params.api_key}"; echo "env is $TOKEN"; test "$TOKEN" = "$ZEST_TEST_API_KEY" && echo ok > "$ZEST_OUT/ok"'
      env: {TOKEN: "${params.api_key}"}
  fail:
    op: shell
    with:
      run: 'echo "failing with $TOKEN" >&2; exit 3'
      env: {TOKEN: "Bearer ${params.api_key}"}
"#;

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(b) = std::fs::read(&path) {
                if b.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    out.push(path.display().to_string());
                }
            }
        }
    }
    out
}

#[test]
fn secrets_reach_nodes_and_nothing_zest_writes() {
    let secret = "sk-test-7f3a9c1e5b";
    let p = Project::new();
    p.write("dag.yaml", SECRET_DAG);
    // Without the variable the run does not start.
    let o = p.zest(&["run", "dag.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("$ZEST_TEST_API_KEY"),
        "{}",
        text(&o)
    );
    // On the command line it is refused.
    let o = p.zest(&["run", "dag.yaml", "--param", &format!("api_key={secret}")]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is a secret"),
        "{}",
        text(&o)
    );
    let o = p
        .cmd()
        .env("ZEST_TEST_API_KEY", secret)
        .args([
            "run",
            "dag.yaml",
            "--report",
            "run.json",
            "--report",
            "junit.xml",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = p.json("run.json");
    assert_eq!(node(&r, "use")["status"], "succeeded", "{r}");
    let ok = node(&r, "use")["outputs"]["out"]["uri"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        std::path::Path::new(&ok).join("ok").exists(),
        "the node got the secret"
    );
    let run_id = r["run_id"].as_str().unwrap().to_string();
    let log = std::fs::read_to_string(p.path().join(format!(".zest/runs/{run_id}/logs/use.log")))
        .unwrap();
    assert!(
        log.contains("key is ***") && log.contains("env is ***"),
        "{log}"
    );
    let err = node(&r, "fail")["error"].as_str().unwrap();
    assert!(err.contains("failing with Bearer ***"), "{err}");
    // Nowhere in the state directory (journal, records, logs, manifests, cache entries,
    // the DAG copy), the reports or zest's own output.
    assert_eq!(files_containing(p.path(), secret), Vec::<String>::new());
    assert!(!String::from_utf8_lossy(&o.stdout).contains(secret));
    assert!(!String::from_utf8_lossy(&o.stderr).contains(secret));
    let show = p.zest(&["runs", "show", &run_id, "--json"]);
    assert!(!String::from_utf8_lossy(&show.stdout).contains(secret));
    // The cache key names the secret, not its value: another value is still a hit.
    let o2 = p
        .cmd()
        .env("ZEST_TEST_API_KEY", "sk-other-value-123")
        .args(["run", "dag.yaml", "--report", "run2.json"])
        .output()
        .unwrap();
    assert_eq!(o2.status.code(), Some(1), "{}", text(&o2));
    assert!(cached(&p.json("run2.json"), "use"));
}

// ---------------------------------------------------------------- 9. no shell injection

#[test]
fn parameters_cannot_inject_shell_commands() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        r#"
params:
  name: {type: string, default: x}
nodes:
  bare:
    op: shell
    with: {run: 'echo hello ${params.name} > "$ZEST_OUT/bare"'}
  double:
    op: shell
    with: {run: 'echo "hello ${params.name}" > "$ZEST_OUT/double"'}
  single:
    op: shell
    with: {run: "echo 'hello ${params.name}' > \"$ZEST_OUT/single\""}
"#,
    );
    for value in [
        "x; touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "a'b\"c $HOME",
    ] {
        let r = run(&p, "dag.yaml", &["--param", &format!("name={value}")]);
        assert!(!p.path().join("pwned").exists(), "{value} ran as code");
        for n in ["bare", "double", "single"] {
            let art = node(&r, n)["outputs"]["out"]["uri"]
                .as_str()
                .unwrap()
                .to_string();
            let got = std::fs::read_to_string(format!("{art}/{n}")).unwrap();
            assert_eq!(got, format!("hello {value}\n"), "{n} with {value}");
        }
    }
}

// ---------------------------------------------------------------- 12. data.sql

#[test]
fn data_sql_accepts_queries_only() {
    let p = Project::new();
    for (q, what) in [
        ("COPY (SELECT 1) TO 'out.csv'", "COPY"),
        ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
        ("INSERT INTO docs VALUES (1)", "INSERT INTO"),
        ("DROP TABLE docs", "DROP TABLE"),
    ] {
        p.write(
            "dag.yaml",
            &format!("nodes:\n  q:\n    op: data.sql\n    with: {{query: \"{q}\"}}\n"),
        );
        let o = p.zest(&["validate", "dag.yaml"]);
        assert_eq!(o.status.code(), Some(2), "{q}: {}", text(&o));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains("must be a query") && e.contains(what),
            "{q}: {e}"
        );
        assert!(e.contains("dag.yaml:4:"), "{e}");
    }
    assert!(!p.path().join("out.csv").exists());
}

// ---------------------------------------------------------------- 15. log caps

#[test]
fn node_logs_are_capped_with_a_note_and_the_tail() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        "nodes:\n  loud:\n    op: shell\n    with: {run: 'head -c 30000000 /dev/zero | tr \"\\\\0\" a; echo; echo THE-END'}\n",
    );
    let o = p
        .cmd()
        .env("ZEST_LOG_LIMIT", "1MiB")
        .args(["run", "dag.yaml", "--report", "run.json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let r = p.json("run.json");
    let log = p.path().join(format!(
        ".zest/runs/{}/logs/loud.log",
        r["run_id"].as_str().unwrap()
    ));
    let len = std::fs::metadata(&log).unwrap().len();
    assert!(len < (1 << 20) + (1 << 17), "log is {len} bytes");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("more bytes were dropped"),
        "{}",
        &text[text.len() - 300..]
    );
    assert!(text.trim_end().ends_with("THE-END"));
}

// ---------------------------------------------------------------- 16. run ids

#[test]
fn run_ids_cannot_name_paths() {
    let p = Project::new();
    std::fs::create_dir_all(p.path().join("x/ID")).unwrap();
    std::fs::write(p.path().join("x/ID/journal.jsonl"), "{}\n").unwrap();
    for id in ["../../x/ID", "../x", "/etc", ".hidden", "a/b"] {
        for args in [vec!["runs", "show", id], vec!["resume", id]] {
            let o = p.zest(&args);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("is not a run id"),
                "{args:?}: {}",
                text(&o)
            );
        }
    }
}

// ---------------------------------------------------------------- 17. signals in backoff

#[test]
fn sigterm_during_a_retry_backoff_exits_at_once() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        "nodes:\n  flaky:\n    op: shell\n    retries: {max: 3, backoff: 10m, max_backoff: 10m}\n    with: {run: 'exit 1'}\n",
    );
    let mut child = p
        .cmd()
        .args(["run", "dag.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first attempt failed and the retry waits.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let journal = std::fs::read_dir(p.path().join(".zest/runs"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.unwrap().path().join("journal.jsonl")).ok())
            .unwrap_or_default();
        if journal.contains("attempt_failed") {
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempt");
        std::thread::sleep(Duration::from_millis(20));
    }
    let t0 = Instant::now();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(status.code(), Some(130));
}

// ---------------------------------------------------------------- 18. no orphans

fn alive_with_marker(marker: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(marker) && !c.contains("pgrep") {
                // Zombies have no command line; this one runs.
                n += 1;
            }
        }
    }
    n
}

#[test]
fn background_children_of_a_finished_node_are_killed() {
    let p = Project::new();
    // A unique command line to look for: `sleep 300.<pid>`.
    let marker = format!("sleep 300.{}", std::process::id());
    p.write(
        "dag.yaml",
        &format!("nodes:\n  bg:\n    op: shell\n    with: {{run: '{marker} & echo started'}}\n"),
    );
    run(&p, "dag.yaml", &[]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive_with_marker(&marker) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        alive_with_marker(&marker),
        0,
        "the node's background child outlived it"
    );
}

#[test]
fn kill_9_of_zest_takes_its_nodes_down_and_resume_runs_them_once() {
    let p = Project::new();
    let marker = format!("sleep 3.{}", std::process::id());
    p.write(
        "dag.yaml",
        &format!("nodes:\n  long:\n    op: shell\n    with: {{run: '{marker}; echo done > \"$ZEST_OUT/d\"'}}\n"),
    );
    let mut child = p
        .cmd()
        .args(["run", "dag.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive_with_marker(&marker) == 0 {
        assert!(Instant::now() < deadline, "the node did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive_with_marker(&marker) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(alive_with_marker(&marker), 0, "the node outlived zest");
    let runs: serde_json::Value =
        serde_json::from_slice(&p.zest(&["runs", "--json"]).stdout).unwrap();
    let id = runs[0]["run_id"].as_str().unwrap().to_string();
    let o = p.zest(&["resume", &id, "--report", "run.json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(node(&p.json("run.json"), "long")["status"], "succeeded");
}

// ---------------------------------------------------------------- 19. closed pipes

#[test]
fn closed_stdout_is_not_a_panic() {
    let p = Project::new();
    let mut dag = String::from("nodes:\n");
    for i in 0..300 {
        dag.push_str(&format!(
            "  n{i}:\n    op: noop\n    with: {{tag: \"{i}\"}}\n"
        ));
    }
    p.write("dag.yaml", &dag);
    for args in [
        "run dag.yaml",
        "plan dag.yaml",
        "graph dag.yaml --format dot",
        "runs --limit 700",
        "ops",
    ] {
        let o = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("set -o pipefail; '{}' {args} | head -c 1 >/dev/null; echo \"rc=${{PIPESTATUS[0]}}\"", common::bin().display()))
            .current_dir(p.path())
            .env("CI", "1")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args}: {err}");
        assert!(out.contains("rc=0"), "{args}: {out} {err}");
    }
}

// ---------------------------------------------------------------- 20. memory limits

#[test]
fn memory_limits_are_enforced_and_absurd_ones_refused() {
    let p = Project::new();
    p.write(
        "dag.yaml",
        "nodes:\n  hog:\n    op: shell\n    resources: {memory: 64MiB}\n    with: {run: 'python3 -c \"import time; b = b''x'' * (400 << 20); time.sleep(5)\"'}\n",
    );
    let t0 = Instant::now();
    let o = p.zest(&["run", "dag.yaml", "--report", "run.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let e = p.json("run.json");
    let e = node(&e, "hog")["error"].as_str().unwrap().to_string();
    assert!(
        e.contains("over its limit of 64") && e.contains("resources.memory"),
        "{e}"
    );
    p.write(
        "dag.yaml",
        "nodes:\n  a:\n    op: noop\n    resources: {memory: 100000000TiB}\n",
    );
    let o = p.zest(&["validate", "dag.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("larger than any machine"),
        "{}",
        text(&o)
    );
}
