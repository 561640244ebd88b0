#!/usr/bin/env bash
# MinHash signatures per second: zest-kernels against datatrove's MinhashDedupSignature stage,
# both on one thread, on the same documents (PubMedQA abstracts from ../shared/corpus by
# default, repeated REPEAT times). Prints one JSON line per tool.
# Usage: bash bench/minhash.sh [CORPUS.jsonl]   (REPEAT=10; BENCH_VENV for the Python side)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
corpus="${1:-$repo/../shared/corpus/pubmedqa_pqal.jsonl}"
REPEAT="${REPEAT:-10}"
VENV="${BENCH_VENV:-$HOME/.cache/zest-bench/dt-venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zest/target}"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.minhash-requirements"
if ! cmp -s "$here/minhash-requirements.txt" "$stamp" 2>/dev/null; then
  "$VENV/bin/pip" install -q -r "$here/minhash-requirements.txt" >&2
  cp "$here/minhash-requirements.txt" "$stamp"
fi

cargo build --release -q -p zest-kernels --example minhash_bench >&2
"$CARGO_TARGET_DIR/release/examples/minhash_bench" "$corpus" "$REPEAT"
"$VENV/bin/python" "$here/minhash_datatrove.py" "$corpus" "$REPEAT"
