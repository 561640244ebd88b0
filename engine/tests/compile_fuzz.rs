//! Property test of the compiler: `compile_source` on mutated DAG files, random bytes and
//! random text must never panic or abort, must point every diagnostic at a place in the file,
//! must render its diagnostics in bounded space, and must keep the process's memory bounded.
//!
//! It runs for `ZEST_FUZZ_SECS` seconds (default 10). The seed is printed; `ZEST_FUZZ_SEED`
//! repeats a run, and `ZEST_FUZZ_SEED` with `ZEST_FUZZ_CASE` regenerates one case. The case
//! being compiled is also kept on disk (the path is printed), so that a case that aborts the
//! process (a stack overflow) can be looked at. `bench/compile_fuzz.sh` runs it for longer.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zest_engine::compile::compile_source;
use zest_engine::diag::{Diagnostics, MAX_RENDERED};
use zest_engine::operator::Registry;

/// Peak resident memory the whole test process may reach.
const MAX_RSS_BYTES: u64 = 1 << 30;
/// Rendered size one diagnostic may take: a message and a hint of at most 400 characters
/// (each possibly escaped to ten bytes), and a source window of about 160 characters.
const MAX_RENDERED_PER_ITEM: usize = 10_000;
/// A case running longer than this is reported as a hang.
const HANG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Random numbers: splitmix64, so that a case depends on (seed, case number) only.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    /// Mostly small sizes, sometimes large ones.
    fn size(&mut self, max: usize) -> usize {
        let bits = self.below(usize::BITS as usize - max.leading_zeros() as usize + 1);
        self.below((1usize << bits).min(max) + 1)
    }
}

fn case_seed(seed: u64, case: u64) -> u64 {
    Rng::new(seed ^ case.wrapping_mul(0xd6e8_feb8_6659_fd93)).next()
}

// ---------------------------------------------------------------------------------------
// Valid DAG files to start from.

const SEEDS: &[&str] = &[
    r#"# A small training pipeline.
name: train-small
description: Load, train two models, compare them
params:
  epochs: {type: int, default: 3, help: "training epochs"}
  lr: 0.001
  data_glob: {type: string, default: "data/*.parquet"}
  tags: {type: list, default: [a, b]}
  fast: {type: bool, default: false}
defaults:
  retries: {max: 2, backoff: 1s, max_backoff: 1m}
  timeout: 30m
  resources: {cpu: 2, memory: 4GiB}
nodes:
  load:
    op: data.load
    description: Every shard
    with:
      paths: ["${params.data_glob}", extra/x.parquet]
      format: parquet
      workers: 4
      columns: [id, text, label]
  tok:
    op: noop
    with: {note: "tokenizer for ${params.epochs} epochs"}
  train_a:
    op: model.train
    in: {data: load.data}
    retries: 3
    resources: {cpu: 0.5, memory: 512MiB, gpu: 1}
    with:
      epochs: "${params.epochs}"
      optimizer: adam
      lr: {warmup_steps: 100, peak: 0.01}
      tags: "${params.tags}"
  train_b:
    op: model.train
    in:
      data: load.data
    after: [tok]
    timeout: 1h30m
    cache: false
    with: {epochs: 1, optimizer: sgd, lr: "${params.lr}"}
  compare:
    op: eval.report
    in: {models: [train_a.model, train_b.model]}
    with: {title: "a vs b ($${not a param})"}
"#,
    r#"name: shell-steps
params:
  n: {type: int, default: 10}
  msg: hello
nodes:
  fetch:
    op: shell
    with:
      run: |
        for i in $(seq ${params.n}); do
          echo "$i" > "$ZEST_OUT/$i.txt"
        done
      env: {GREETING: "${params.msg}"}
  count:
    op: shell
    in: {files: fetch.out}
    with: {run: "ls $ZEST_IN_FILES | wc -l > $ZEST_OUT/n", workdir: /tmp}
    retries: {max: 1}
  report:
    op: shell
    in: {counted: count.out, raw: [fetch.out]}
    after: [count]
    with:
      run: >
        cat $ZEST_IN_COUNTED/n
        > $ZEST_OUT/report.txt
"#,
    r#"defaults: &defaults
  retries: &r {max: 1, backoff: 500ms}
  cache: true
nodes:
  a: &node {op: noop, with: {note: first}}
  b: {op: noop, in: {x: a.out}, retries: *r}
  c:
    op: noop
    in: {x: [a.out, b.out], y: b.out}
    after: [a, b]
    resources: {cpu: 1, memory: 1024, gpu: 0}
  d: *node
  "e-1": {op: noop, after: d, timeout: 10}
"#,
    "name: flow\nnodes: {l: {op: data.load, with: {paths: [p], columns: [text]}}, t: {op: model.train, in: {data: l.data}, with: {epochs: 2, extra: {a: [1, 2, {b: null}], c: ~}}}, r: {op: eval.report, in: {models: t.model}}}\n",
    r#"name: params-heavy
params:
  cpu: {type: float, default: 1.5}
  mem: {type: string, default: 2GiB}
  retries: {type: int, default: 4}
  timeout: {type: string, default: 45s}
  paths: {type: list, default: [x.parquet, y.parquet]}
nodes:
  load:
    op: data.load
    resources: {cpu: "${params.cpu}", memory: "${params.mem}"}
    retries: "${params.retries}"
    timeout: "${params.timeout}"
    with: {paths: "${params.paths}", options: {delimiter: ",", quote: '"'}}
  train:
    op: model.train
    in: {data: load.data}
    with: {epochs: 5, lr: 0.1, extra: {nested: {deeper: [1, 2.5, "three", true]}}}
"#,
];

// ---------------------------------------------------------------------------------------
// Inputs.

const TOKENS: &[&str] = &[
    ":",
    ": ",
    "-",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "&b [",
    "*b",
    "!",
    "!!str ",
    "!!int ",
    "!<tag:x> ",
    "'",
    "\"",
    "\t",
    "\u{feff}",
    "\0",
    "\n",
    "\r",
    "\r\n",
    " ",
    "    ",
    "#",
    "# c\n",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "? ",
    "|",
    ">",
    "|-\n  x\n",
    "<<: *a",
    "99999999999999999999",
    "-99999999999999999999",
    "4294967297",
    "5000000000",
    "-1",
    "0",
    "1e400",
    "-1e400",
    ".inf",
    ".nan",
    "0x7fffffffffffffff",
    "0o777",
    "~",
    "null",
    "true",
    "${params.x}",
    "${params.epochs}",
    "${",
    "$${",
    "${}",
    "${params.}",
    "}",
    "\\",
    "\\u0000",
    "\u{2028}",
    "\u{85}",
    "é",
    "中文",
    "🦀",
    "\u{202e}",
    "\u{1b}[2J",
    "op: ",
    "in: ",
    "after: ",
    "with: ",
    "retries: ",
    "timeout: ",
    "resources: ",
    "cache: ",
    "nodes:",
    "params:",
    "defaults:",
    "noop",
    "shell",
    "data.load",
    "model.train",
    "eval.report",
    "load.data",
    "a.out",
    "train_a.model",
    "x.y.z",
    ".",
    "..",
    "9999999999d",
    "1h30m",
    "5x",
    "0s",
    "512MiB",
    "99999999999999TiB",
    "-1GiB",
];

fn long_run(rng: &mut Rng) -> String {
    let n = rng.size(1 << 20);
    let c = *rng.pick(&["a", "é", " ", "[", "-", ":", "x,", "中"]);
    c.repeat(n / c.len() + 1)
}

fn nesting(rng: &mut Rng) -> String {
    let depth = rng.size(100_000);
    match rng.below(5) {
        0 => format!("{}1{}", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth)),
        2 => format!("\n{}x\n", "- ".repeat(depth)),
        3 => {
            let depth = depth.min(3_000);
            let mut s = String::from("\n");
            for i in 0..depth {
                s.push_str(&" ".repeat(i));
                s.push_str("k:\n");
            }
            s
        }
        _ => "[".repeat(depth),
    }
}

fn aliases(rng: &mut Rng) -> String {
    let levels = 1 + rng.below(10);
    let width = 1 + rng.below(12);
    let mut s = String::from("\nz:\n  l0: &l0 [lol, lol]\n");
    for i in 1..levels {
        let items = vec![format!("*l{}", i - 1); width].join(", ");
        s.push_str(&format!("  l{i}: &l{i} [{items}]\n"));
    }
    if rng.chance(2) {
        s.push_str(&format!("  use: *l{}\n", levels - 1));
    }
    s
}

/// Many uses of a parameter, as whole values or inside text (a template bomb when the
/// parameter is large).
fn template_uses(rng: &mut Rng) -> String {
    let name = rng.pick(&["tags", "paths", "data_glob", "msg", "n", "l"]);
    let one = if rng.chance(2) {
        format!("\"${{params.{name}}}\"")
    } else {
        format!("\"<${{params.{name}}}>\"")
    };
    let n = 1 + rng.size(50_000);
    format!("[{}]", vec![one; n].join(","))
}

/// A parameter with a large default.
fn big_param(rng: &mut Rng) -> String {
    let n = rng.size(50_000);
    if rng.chance(2) {
        format!("\nparams:\n  l: [{}]\n", vec!["x"; n].join(","))
    } else {
        format!("\nparams:\n  l: \"{}\"\n", "y".repeat(n * 10))
    }
}

fn token(rng: &mut Rng) -> String {
    match rng.below(22) {
        0 => long_run(rng),
        1 => nesting(rng),
        2 => aliases(rng),
        20 => template_uses(rng),
        21 => big_param(rng),
        3 => char::from_u32(rng.below(0x11_0000) as u32)
            .unwrap_or('\u{fffd}')
            .to_string(),
        4 => ((rng.next() % 128) as u8 as char).to_string(),
        _ => rng.pick(TOKENS).to_string(),
    }
}

fn char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    for _ in 0..1 + rng.size(16) {
        let n = lines.len();
        let i = rng.below(n);
        match rng.below(13) {
            0 if n > 1 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                let j = rng.below(n);
                lines.swap(i, j);
            }
            3 => {
                let l = lines.remove(i);
                let j = rng.below(lines.len() + 1);
                lines.insert(j, l);
            }
            4 => {
                // Indent or dedent a line.
                if rng.chance(2) {
                    lines[i].insert_str(0, &" ".repeat(1 + rng.below(4)));
                } else {
                    let t = lines[i].trim_start_matches(' ').to_string();
                    lines[i] = t;
                }
            }
            5 => {
                // A line from another seed.
                let other = rng.pick(SEEDS);
                let ls: Vec<&str> = other.split_inclusive('\n').collect();
                lines.insert(i, rng.pick(&ls).to_string());
            }
            6 => {
                // Replace a scalar after `: ` with something else.
                if let Some(k) = lines[i].find(": ") {
                    let end = lines[i].trim_end().len().max(k + 2);
                    let t = token(rng);
                    lines[i].replace_range(k + 2..end, &t);
                }
            }
            7 => {
                // Delete a span of characters.
                let l = &mut lines[i];
                if !l.is_empty() {
                    let a = char_boundary(l, rng.below(l.len()));
                    let b = char_boundary(l, (a + 1 + rng.below(8)).min(l.len()));
                    l.replace_range(a..b, "");
                }
            }
            8 => {
                // Flip a byte, keeping the text UTF-8 (lossily).
                let l = &mut lines[i];
                if !l.is_empty() {
                    let mut b = std::mem::take(l).into_bytes();
                    let k = rng.below(b.len());
                    b[k] ^= 1 << rng.below(8);
                    *l = String::from_utf8_lossy(&b).into_owned();
                }
            }
            9 => {
                // Break a line, continuing it indented (folds plain scalars, for one).
                let l = &mut lines[i];
                let at = char_boundary(l, rng.below(l.len() + 1));
                let indent = " ".repeat(rng.below(10));
                l.insert_str(at, &format!("\n{indent}"));
            }
            _ => {
                // Insert a token anywhere.
                let l = &mut lines[i];
                let at = char_boundary(l, rng.below(l.len() + 1));
                let t = token(rng);
                l.insert_str(at, &t);
            }
        }
    }
    lines.concat()
}

fn random_bytes(rng: &mut Rng) -> String {
    let n = rng.size(4096);
    let b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    String::from_utf8_lossy(&b).into_owned()
}

fn random_text(rng: &mut Rng) -> String {
    const YAMLISH: &[char] = &[
        ':', '-', '[', ']', '{', '}', ',', '&', '*', '!', '\'', '"', '#', '|', '>', '?', '%', '@',
        '`', '\t', '\n', ' ', ' ', ' ', 'a', 'b', 'x', '1', '.', '$', '\u{feff}', '\0',
    ];
    let n = rng.size(4096);
    (0..n)
        .map(|_| match rng.below(4) {
            0 => char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}'),
            1 => (b' ' + rng.below(95) as u8) as char,
            _ => *rng.pick(YAMLISH),
        })
        .collect()
}

/// A structurally valid-looking DAG with random nodes, references, settings and cycles.
fn random_dag(rng: &mut Rng) -> String {
    let ops = [
        "noop",
        "shell",
        "data.load",
        "model.train",
        "eval.report",
        "nope",
    ];
    let ports = ["out", "data", "model", "report", "x", "tokenizer", "models"];
    let max = if rng.chance(20) { 3_000 } else { 40 };
    let n = 1 + rng.size(max);
    let mut s =
        String::from("name: random\nparams:\n  p: {type: int, default: 2}\n  s: str\nnodes:\n");
    for i in 0..n {
        s.push_str(&format!("  n{i}:\n    op: {}\n", rng.pick(&ops)));
        if rng.chance(2) {
            s.push_str("    in:\n");
            for k in 0..1 + rng.below(3) {
                let refs: Vec<String> = (0..1 + rng.below(3))
                    .map(|_| format!("n{}.{}", rng.below(n + 1), rng.pick(&ports)))
                    .collect();
                let port = if k == 0 {
                    *rng.pick(&ports)
                } else {
                    *rng.pick(&["a", "A", "b-c", "b_c", "data", "models", "tokenizer"])
                };
                s.push_str(&format!("      {port}: [{}]\n", refs.join(", ")));
            }
        }
        if rng.chance(3) {
            let after: Vec<String> = (0..1 + rng.below(3))
                .map(|_| format!("n{}", rng.below(n + 1)))
                .collect();
            s.push_str(&format!("    after: [{}]\n", after.join(", ")));
        }
        if rng.chance(4) {
            s.push_str(&format!(
                "    retries: {}\n",
                rng.pick(&[
                    "3",
                    "{max: 2, backoff: 2s}",
                    "${params.p}",
                    "-5",
                    "{max: 1001}"
                ])
            ));
        }
        if rng.chance(4) {
            s.push_str(&format!(
                "    timeout: {}\n",
                rng.pick(&["10m", "0s", "${params.s}", "1h30m", "99999999999d"])
            ));
        }
        if rng.chance(3) {
            s.push_str(&format!(
                "    with: {}\n",
                rng.pick(&[
                    "{note: \"${params.s}\"}",
                    "{run: \"echo ${params.p}\"}",
                    "{paths: [a], columns: [text]}",
                    "{epochs: \"${params.p}\", lr: {warmup_steps: 1, peak: 2}}",
                    "{epochs: 0, optimizer: adamw}",
                    "{models: 1}",
                ])
            ));
        }
    }
    s
}

fn generate(seed: u64, case: u64) -> (String, Vec<(String, String)>) {
    let mut rng = Rng::new(case_seed(seed, case));
    let text = match rng.below(10) {
        0 => random_bytes(&mut rng),
        1 => random_text(&mut rng),
        2 => random_dag(&mut rng),
        3 => {
            let d = random_dag(&mut rng);
            mutate(&mut rng, &d)
        }
        _ => {
            let mut t = rng.pick(SEEDS).to_string();
            for _ in 0..1 + rng.below(3) {
                t = mutate(&mut rng, &t);
            }
            t
        }
    };
    let mut overrides = vec![];
    if rng.chance(8) {
        let name = rng
            .pick(&["epochs", "lr", "n", "x", "tags", "fast", "p"])
            .to_string();
        let value = rng
            .pick(&[
                "3",
                "x",
                "[1, 2]",
                "{a: 1}",
                "99999999999999999999",
                "",
                "${params.x}",
            ])
            .to_string();
        overrides.push((name, value));
    }
    (text, overrides)
}

// ---------------------------------------------------------------------------------------
// Checks.

fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss as u64 * 1024
}

/// Checks one input; `Err` says what property failed.
fn check(registry: &Registry, text: &str, overrides: &[(String, String)]) -> Result<(), String> {
    let got = catch_unwind(AssertUnwindSafe(|| {
        let r = compile_source("fuzz.yaml", text, overrides, registry);
        let rendered = r.as_ref().err().map(Diagnostics::render);
        (r, rendered)
    }));
    let (r, rendered) = got.map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("panicked: {msg}")
    })?;
    let d = match r {
        Ok(plan) => {
            if plan.order.len() != plan.graph.node_count() {
                return Err("a compiled plan has nodes outside its order".into());
            }
            return Ok(());
        }
        Err(d) => d,
    };
    if d.items.is_empty() {
        return Err("compile failed with no diagnostic".into());
    }
    let lines = yaml_lines(text.strip_prefix('\u{feff}').unwrap_or(text));
    for item in &d.items {
        match item.pos {
            None if item.message.starts_with("--param ") => {}
            None => return Err(format!("diagnostic without a position: {}", item.message)),
            Some(p)
                if p.line == 0
                    || p.col == 0
                    || lines.get(p.line - 1).is_none_or(|n| p.col > n + 1) =>
            {
                return Err(format!(
                    "diagnostic at {}:{} outside the file ({} lines, that one {:?} characters long): {}",
                    p.line,
                    p.col,
                    lines.len(),
                    lines.get(p.line - 1),
                    item.message
                ))
            }
            Some(_) => {}
        }
    }
    let rendered = rendered.unwrap_or_default();
    let bound = d.items.len().min(MAX_RENDERED) * MAX_RENDERED_PER_ITEM + 1_000;
    if rendered.len() > bound {
        return Err(format!(
            "{} diagnostics render as {} bytes (bound {bound})",
            d.items.len(),
            rendered.len()
        ));
    }
    Ok(())
}

/// The length in characters of every line of `text`, lines broken as in YAML (`\n`, `\r\n`
/// or a lone `\r`).
fn yaml_lines(text: &str) -> Vec<usize> {
    let mut lines = vec![0];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            lines.push(0);
        } else {
            *lines.last_mut().expect("one line") += 1;
        }
    }
    lines
}

fn show(text: &str) -> String {
    let head: String = text.chars().take(2_000).collect();
    format!(
        "{:?}{}",
        head,
        if head.len() < text.len() {
            format!(" … ({} bytes in all)", text.len())
        } else {
            String::new()
        }
    )
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

#[test]
fn compile_source_survives_mutated_and_random_input() {
    let registry = support::registry();
    let seed = env_u64("ZEST_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let secs = env_u64("ZEST_FUZZ_SECS").unwrap_or(10);
    let only = env_u64("ZEST_FUZZ_CASE");
    let current = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile_fuzz_case.yaml");
    eprintln!(
        "compile_fuzz: ZEST_FUZZ_SEED={seed}, {secs}s; the case being compiled is kept in {}",
        current.display()
    );

    // The seeds themselves must compile.
    for (i, s) in SEEDS.iter().enumerate() {
        if let Err(d) = compile_source("seed.yaml", s, &[], &registry) {
            panic!("seed {i} does not compile:\n{}", d.render());
        }
    }

    // A watchdog for cases that hang: it names the case and ends the process.
    let started = Arc::new(AtomicU64::new(u64::MAX));
    let running = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    {
        let (started, running) = (started.clone(), running.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let s = started.load(Ordering::Relaxed);
            if s != u64::MAX && t0.elapsed().as_secs().saturating_sub(s) > HANG.as_secs() {
                eprintln!(
                    "compile_fuzz: case {} hangs; rerun with ZEST_FUZZ_SEED={seed} ZEST_FUZZ_CASE={}",
                    running.load(Ordering::Relaxed),
                    running.load(Ordering::Relaxed)
                );
                std::process::abort();
            }
        });
    }

    let deadline = t0 + Duration::from_secs(secs);
    let mut cases = 0u64;
    let mut failures = vec![];
    let mut slowest: Vec<(Duration, u64, usize)> = vec![];
    let range: Box<dyn Iterator<Item = u64>> = match only {
        Some(c) => Box::new(std::iter::once(c)),
        None => Box::new(0..),
    };
    for case in range {
        if only.is_none() && Instant::now() >= deadline {
            break;
        }
        let (text, overrides) = generate(seed, case);
        let _ = std::fs::write(&current, &text);
        running.store(case, Ordering::Relaxed);
        started.store(t0.elapsed().as_secs(), Ordering::Relaxed);
        let t = Instant::now();
        let result = check(&registry, &text, &overrides);
        let took = t.elapsed();
        started.store(u64::MAX, Ordering::Relaxed);
        cases += 1;
        slowest.push((took, case, text.len()));
        slowest.sort_by(|a, b| b.cmp(a));
        slowest.truncate(5);
        let result = result.and_then(|()| {
            let rss = peak_rss_bytes();
            if rss > MAX_RSS_BYTES {
                Err(format!("peak RSS reached {} MiB", rss >> 20))
            } else if took > Duration::from_secs(10) {
                Err(format!("took {took:?}"))
            } else {
                Ok(())
            }
        });
        if let Err(why) = result {
            eprintln!(
                "compile_fuzz: case {case} failed: {why}\n  rerun: ZEST_FUZZ_SEED={seed} ZEST_FUZZ_CASE={case}\n  overrides: {overrides:?}\n  input: {}",
                show(&text)
            );
            failures.push(case);
            if failures.len() >= 10 {
                break;
            }
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    eprintln!(
        "compile_fuzz: {cases} cases in {elapsed:.1}s ({:.0} cases/s), peak RSS {} MiB, seed {seed}",
        cases as f64 / elapsed,
        peak_rss_bytes() >> 20
    );
    for (took, case, len) in &slowest {
        eprintln!("compile_fuzz: slow case {case}: {took:?}, {len} bytes");
    }
    assert!(
        failures.is_empty(),
        "failing cases {failures:?} of ZEST_FUZZ_SEED={seed}"
    );
}
