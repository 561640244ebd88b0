#!/usr/bin/env bash
# Online data mixing on three sources of different learnability: PubMedQA abstracts and
# PubMedQA long answers (the embedded samples; clean), and a source that is mostly noise
# (random letters, one real sentence in ten). Validation is the held-out mixture of the two
# clean sources (validation.sources). Strategies: exp3 with ODM's reward (the batch's loss),
# exp3 with learning_progress, uniform, proportional (to tokens); the same budget; SEEDS seeds.
# For each run: the first validation step at which the mixture's loss reaches uniform's final
# validation loss (same seed), and the final loss. Prints one JSON line per run and a summary.
# Usage: bash bench/mixing.sh   (STEPS=300, EVERY=10, SEEDS="1 2 3", SEQ=64, BATCH=8, LR=0.002,
# WARMUP=10, SIZE=tiny,
# RUNS="uniform:loss proportional:loss exp3:loss exp3:learning_progress", KEEP=1 keeps the
# scratch directory)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
STEPS="${STEPS:-300}"
EVERY="${EVERY:-10}"
SEEDS="${SEEDS:-1 2 3}"
SEQ="${SEQ:-64}"
BATCH="${BATCH:-8}"
LR="${LR:-0.002}"
WARMUP="${WARMUP:-10}"
SIZE="${SIZE:-tiny}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zest/target}"
VENV="${ZEST_TORCH_VENV:-$HOME/.cache/zest-py/torch-venv}"
py="$VENV/bin/python"
zest="${ZEST:-$CARGO_TARGET_DIR/release/zest}"
[ -x "$zest" ] || { echo "build first: make build (or set ZEST)" >&2; exit 1; }
RUNS="${RUNS:-uniform:loss proportional:loss exp3:loss exp3:learning_progress}"
scratch="$(mktemp -d)"
if [ "${KEEP:-0}" = "1" ]; then
  echo "scratch: $scratch" >&2
else
  trap 'rm -rf "$scratch"' EXIT
fi
cd "$scratch"
"$py" - "$repo/dags/data/pubmedqa_sample.jsonl" > noise.jsonl <<'PY'
import json, random, sys
rng = random.Random(7)
sentences = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    sentences += [s.strip() + "." for s in " ".join(r["contexts"]).split(". ") if len(s) > 40]
letters = "abcdefghijklmnopqrstuvwxyz      "
for i in range(400):
    parts = []
    for _ in range(10):
        if rng.random() < 0.1:
            parts.append(rng.choice(sentences))
        else:
            parts.append("".join(rng.choice(letters) for _ in range(120)))
    print(json.dumps({"text": " ".join(parts)}))
PY
cat > dag.yaml <<YAML
name: bench-mixing
params:
  strategy: {type: string, default: uniform}
  reward: {type: string, default: loss}
  seed: {type: int, default: 1}
nodes:
  pubmedqa:
    op: data.load
    with: {paths: ["$repo/dags/data/pubmedqa_sample.jsonl"]}
  noise_data:
    op: data.load
    with: {paths: ["$scratch/noise.jsonl"]}
  abstracts:
    op: data.sql
    in: {p: pubmedqa.data}
    with: {query: "SELECT array_to_string(contexts, ' ') AS text FROM p ORDER BY pmid"}
  answers:
    op: data.sql
    in: {p: pubmedqa.data}
    with: {query: "SELECT long_answer AS text FROM p ORDER BY pmid"}
  tok:
    op: train.tokenizer
    in: {data: [abstracts.data, answers.data]}
    with: {vocab_size: 1024}
  init:
    op: model.init
    in: {tokenizer: tok.tokenizer}
    with: {size: $SIZE, seed: 1}
  cpt:
    op: train.cpt
    in: {model: init.model, abstracts: abstracts.data, answers: answers.data, noise: noise_data.data}
    with:
      sources: [abstracts, answers, noise]
      seq_len: $SEQ
      batch_size: $BATCH
      max_steps: $STEPS
      optim: {lr: $LR, warmup_steps: $WARMUP}
      mixing: {strategy: "\${params.strategy}", reward: "\${params.reward}"}
      validation: {every_steps: $EVERY, holdout_sequences: 16, sources: [abstracts, answers]}
      checkpoint: {every_steps: 0}
      log_every: 100
      device: cpu
      seed: "\${params.seed}"
YAML
for seed in $SEEDS; do
  for run in $RUNS; do
    set -- ${run/:/ }
    "$zest" run dag.yaml --quiet --param strategy="$1" --param reward="$2" --param seed="$seed" \
      --report "run-$1-$2-$seed.json" >&2
    "$py" - "run-$1-$2-$seed.json" "$1" "$2" "$seed" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n = [n for n in r["nodes"] if n["node"] == "cpt"][0]
rep = json.load(open(n["outputs"]["report"]["uri"] + "/report.json"))
val = [(v["step"], v["mean"]) for v in rep["validation"]]
draws = {}
seq = [src for s in rep["steps"] for src in s["sources"]]
for src in seq:
    draws[src] = draws.get(src, 0) + 1
switches = sum(1 for a, b in zip(seq, seq[1:]) if a != b)
print(json.dumps({"strategy": sys.argv[2], "reward": sys.argv[3], "seed": int(sys.argv[4]),
                  "validation": val, "draws": draws, "mean_run_length": len(seq) / (switches + 1),
                  "seconds": n["duration_s"]}))
PY
  done
done | tee runs.jsonl
"$py" - runs.jsonl <<'PY'
import json, sys, statistics
runs = [json.loads(l) for l in open(sys.argv[1])]
target = {r["seed"]: r["validation"][-1][1] for r in runs if r["strategy"] == "uniform"}
out = {}
for r in runs:
    t = target[r["seed"]]
    hit = next((s for s, v in r["validation"] if v <= t), None)
    key = f'{r["strategy"]}/{r["reward"]}'
    out.setdefault(key, []).append((hit, r["validation"][-1][1], r["draws"]))
for key, rs in out.items():
    hits = [h for h, _, _ in rs]
    reached = [h for h in hits if h is not None]
    print(json.dumps({"run": key, "steps_to_uniform_final": hits,
                      "mean_steps": statistics.mean(reached) if len(reached) == len(hits) else None,
                      "final_loss": [round(f, 4) for _, f, _ in rs], "draws": [d for _, _, d in rs]}))
PY
