#!/usr/bin/env bash
# Corpus deduplication end to end: zest's `clean.dedup` (after `data.load`) against datatrove's
# four MinHash stages (signatures, buckets, cluster, filter; default MinhashConfig) on the same
# generated corpus with planted exact and near duplicates (bench/dedup_corpus.py). Both on this
# machine's cores: zest hashes on every core, datatrove runs 2 tasks at a time (WORKERS).
# Prints one JSON line per tool (wall clock of the whole process, peak RSS, recall and precision
# against the planted pairs) and one line comparing the two tools' removed sets.
#
# Usage: bash bench/dedup.sh                        100,000 documents of 80-300 words, both tools
#        MODE=rss N=1000000 bash bench/dedup.sh     zest alone on 1,000,000 documents of 30-60
#                                                   words: wall time and peak RSS
# Settings: N, SHARDS=2 (JSONL files; datatrove's stages 1 and 4 run one task per file),
# WORKERS=2, SEED=1, DATATROVE=0 (zest only), KEEP=1 (keep the scratch directory, printed on
# stderr), BENCH_VENV (the Python side), ZEST (the binary; default the release build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
MODE="${MODE:-compare}"
case "$MODE" in
  compare) N="${N:-100000}"; MIN_WORDS=80; MAX_WORDS=300; DATATROVE="${DATATROVE:-1}" ;;
  rss) N="${N:-1000000}"; MIN_WORDS=30; MAX_WORDS=60; DATATROVE=0 ;;
  *) echo "MODE is compare or rss" >&2; exit 2 ;;
esac
SHARDS="${SHARDS:-2}"
WORKERS="${WORKERS:-2}"
SEED="${SEED:-1}"
VENV="${BENCH_VENV:-$HOME/.cache/zest-bench/dt-venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zest/target}"
zest="${ZEST:-$CARGO_TARGET_DIR/release/zest}"
[ -x "$zest" ] || { echo "build first: make build (or set ZEST)" >&2; exit 1; }
version="$("$zest" --version | cut -d' ' -f2)"

# The venv of bench/minhash.sh, plus what reading zest's Parquet and datatrove's JSONL writer need.
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.minhash-requirements"
if ! cmp -s "$here/minhash-requirements.txt" "$stamp" 2>/dev/null; then
  "$VENV/bin/pip" install -q -r "$here/minhash-requirements.txt" >&2
  cp "$here/minhash-requirements.txt" "$stamp"
fi
extra="pyarrow==26.0.1 orjson==3.13.0"
if [ "$(cat "$VENV/.dedup-extra" 2>/dev/null)" != "$extra" ]; then
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $extra >&2
  echo "$extra" > "$VENV/.dedup-extra"
fi
py="$VENV/bin/python"
dt_version="$("$py" -c 'import importlib.metadata as m; print(m.version("datatrove"))')"

scratch="$(mktemp -d)"
if [ "${KEEP:-0}" = "1" ]; then
  echo "scratch: $scratch" >&2
else
  trap 'rm -rf "$scratch"' EXIT
fi
corpus="$scratch/corpus"
"$py" "$here/dedup_corpus.py" gen "$corpus" --n "$N" --shards "$SHARDS" --seed "$SEED" \
  --min-words "$MIN_WORDS" --max-words "$MAX_WORDS"

measure() { # name dir command... -> dir/name.run (wall, process tree) and dir/name.time
  local name="$1" dir="$2"
  shift 2
  sync
  (cd "$dir" && "$py" "$here/dedup_corpus.py" watch "$name.run" -- \
    /usr/bin/time -v -o "$name.time" "$@")
}

mkdir -p "$scratch/zest"
cat > "$scratch/zest/dag.yaml" <<EOF
name: dedup
nodes:
  load:
    op: data.load
    with: {paths: ["$corpus/data/*.jsonl"]}
  dedup:
    op: clean.dedup
    in: {docs: load.data}
EOF
measure zest "$scratch/zest" "$zest" run dag.yaml --report run.json --quiet >&2

args=(--corpus "$corpus" --zest-report "$scratch/zest/run.json" --zest-run "$scratch/zest/zest"
      --zest-version "$version")
if [ "$DATATROVE" = "1" ]; then
  mkdir -p "$scratch/dt"
  measure datatrove "$scratch/dt" "$py" "$here/dedup_datatrove.py" "$corpus/data" "$scratch/dt/out" \
    "$WORKERS" > "$scratch/dt/stages.json" 2> "$scratch/dt/log.txt" \
    || { tail -30 "$scratch/dt/log.txt" >&2; exit 1; }
  args+=(--datatrove-removed "$scratch/dt/out/removed" --datatrove-run "$scratch/dt/datatrove"
         --datatrove-stages "$scratch/dt/stages.json" --datatrove-version "$dt_version"
         --datatrove-config "MinhashConfig() defaults: 5-grams, 14x8, 64-bit; LocalPipelineExecutor, workers=$WORKERS; JsonlReader/JsonlWriter uncompressed")
fi
"$py" "$here/dedup_corpus.py" report "${args[@]}"
