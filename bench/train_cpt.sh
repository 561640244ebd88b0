#!/usr/bin/env bash
# train.cpt throughput on CPU, whole node included, against a PyTorch + transformers loop doing
# the same steps (bench/train_cpt_pytorch.py): the same ~10M-parameter Llama (model.init, size
# 10m, vocabulary 8,192 from train.tokenizer), the same rows (the embedded PubMedQA abstracts,
# tokenized, joined with the end-of-text token, cut into rows of SEQ tokens), batch BATCH,
# AdamW with warmup and cosine decay, clipping at 1.0, float32, THREADS intra-op threads.
# zest's figure is the train.cpt node's wall time from run.json (worker start, libtorch, model
# load, tokenization, training, saving); PyTorch's is its process's wall time from the same
# starting point (imports, model load, tokenization, training, saving).
# Also the node's fixed cost: a 1-step run's node time minus its one step.
# Usage: bash bench/train_cpt.sh   (STEPS=20, BATCH=8, SEQ=256, THREADS=2, ROUNDS=3)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
STEPS="${STEPS:-20}"
BATCH="${BATCH:-8}"
SEQ="${SEQ:-256}"
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zest/target}"
VENV="${ZEST_TORCH_VENV:-$HOME/.cache/zest-py/torch-venv}"
zest="${ZEST:-$CARGO_TARGET_DIR/release/zest}"
[ -x "$zest" ] || { echo "build first: make build (or set ZEST)" >&2; exit 1; }
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
dag() {
  cat <<YAML
name: bench-train-cpt
nodes:
  pubmedqa:
    op: data.load
    with: {paths: ["$repo/dags/data/pubmedqa_sample.jsonl"]}
  abstracts:
    op: data.sql
    in: {p: pubmedqa.data}
    with: {query: "SELECT array_to_string(contexts, ' ') AS text FROM p ORDER BY pmid"}
  tok:
    op: train.tokenizer
    in: {data: abstracts.data}
    with: {vocab_size: 8192}
  init:
    op: model.init
    in: {tokenizer: tok.tokenizer}
    with: {size: 10m, seed: 1}
  cpt:
    op: train.cpt
    in: {model: init.model, abstracts: abstracts.data}
    resources: {cpu: $THREADS}
    with:
      sources: [abstracts]
      seq_len: $SEQ
      batch_size: $BATCH
      max_steps: $1
      optim: {lr: 0.0003, warmup_steps: 2}
      validation: {every_steps: 0, holdout_sequences: 1}
      checkpoint: {every_steps: 0}
      log_every: 1000
      device: cpu
      seed: $2
YAML
}
node_secs() { "$VENV/bin/python" -c 'import json,sys; r=json.load(open(sys.argv[1])); print([n for n in r["nodes"] if n["node"]=="cpt"][0]["duration_s"])' "$1"; }
# The upstream nodes once (cached afterwards); the model directory for PyTorch.
dag 1 0 > dag.yaml
"$zest" run dag.yaml --quiet --report warm.json >&2
model="$("$VENV/bin/python" -c 'import json; r=json.load(open("warm.json")); print([n for n in r["nodes"] if n["node"]=="init"][0]["outputs"]["model"]["uri"])')"
# Fixed cost: a 1-step node minus its step.
for seed in 101 102 103; do
  dag 1 "$seed" > dag.yaml
  "$zest" run dag.yaml --quiet --report one.json >&2
  step="$("$VENV/bin/python" -c 'import json,sys; r=json.load(open(sys.argv[1])); d=[n for n in r["nodes"] if n["node"]=="cpt"][0]["outputs"]["report"]["uri"]; s=json.load(open(d+"/report.json"))["steps"][0]; print(s["tokens"]/s["tokens_per_s"])' one.json)"
  echo "{\"impl\":\"zest\",\"mode\":\"fixed_cost\",\"node_s\":$(node_secs one.json),\"step_s\":$step}"
done
for round in $(seq "$ROUNDS"); do
  dag "$STEPS" "$round" > dag.yaml
  "$zest" run dag.yaml --quiet --report run.json >&2
  s="$(node_secs run.json)"
  echo "{\"impl\":\"zest\",\"mode\":\"train_cpt\",\"steps\":$STEPS,\"tokens\":$((STEPS*BATCH*SEQ)),\"seconds\":$s,\"tokens_per_s\":$("$VENV/bin/python" -c "print($STEPS*$BATCH*$SEQ/$s)")}"
  "$VENV/bin/python" "$here/train_cpt_pytorch.py" --model "$model" --data "$repo/dags/data/pubmedqa_sample.jsonl" \
    --steps "$STEPS" --batch "$BATCH" --seq "$SEQ" --threads "$THREADS" --out "$scratch/pt-model"
done
