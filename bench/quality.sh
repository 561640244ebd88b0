#!/usr/bin/env bash
# Gopher quality filtering end to end: zest's `clean.quality` (after `data.load`, with only the
# two Gopher filters on: no C4, no FineWeb, no PII scrubbing, every language kept) against
# datatrove's GopherQualityFilter + GopherRepetitionFilter (default thresholds, English; a
# JsonlReader and JsonlWriters around them) on the same corpus: real PubMedQA sentences, about
# 40% of the documents degraded to fail or nearly fail a rule (bench/quality_datatrove.py gen).
# Both on this machine's cores: zest splits each record batch over every core, datatrove runs
# one task per shard, WORKERS at a time.
# Prints one JSON line per tool (documents, removed, wall clock of the whole process,
# documents/s, peak RSS) and one line with the keep/drop agreement and the disagreeing doc ids
# with both tools' reasons.
#
# Usage: bash bench/quality.sh
# Settings: N=20000 (documents), SHARDS=2, WORKERS=2, SEED=1, KEEP=1 (keep the scratch
# directory, printed on stderr), BENCH_VENV (datatrove's venv), ZEST (the binary; default the
# release build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
N="${N:-20000}"
SHARDS="${SHARDS:-2}"
WORKERS="${WORKERS:-2}"
SEED="${SEED:-1}"
VENV="${BENCH_VENV:-$HOME/.cache/zest-bench/dt-venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zest/target}"
zest="${ZEST:-$CARGO_TARGET_DIR/release/zest}"
[ -x "$zest" ] || { echo "build first: make build (or set ZEST)" >&2; exit 1; }
py="$VENV/bin/python"
[ -x "$py" ] || { echo "no venv at $VENV: run bench/dedup.sh once (it creates it)" >&2; exit 1; }
# datatrove's English word split is spaCy's tokenizer; reading Parquet needs pyarrow.
"$py" -c 'import datatrove, spacy, pyarrow' 2>/dev/null \
  || "$VENV/bin/pip" install -q "spacy==3.8.18" "pyarrow==26.0.1" >&2
version="$("$zest" --version | cut -d' ' -f2)"
dt_version="$("$py" -c 'import importlib.metadata as m; print(m.version("datatrove"))')"

scratch="$(mktemp -d)"
if [ "${KEEP:-0}" = "1" ]; then
  echo "scratch: $scratch" >&2
else
  trap 'rm -rf "$scratch"' EXIT
fi
corpus="$scratch/corpus"
"$py" "$here/quality_datatrove.py" gen "$corpus" --n "$N" --shards "$SHARDS" --seed "$SEED"

wall_rss() { # FILE.time -> "wall_s peak_rss_mib" from /usr/bin/time -v
  awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]}
              /Maximum resident/ {r=$2/1024} END {printf "%.3f %.1f\n", s, r}' "$1"
}

mkdir -p "$scratch/zest"
cat > "$scratch/zest/dag.yaml" <<EOF
name: quality
nodes:
  load:
    op: data.load
    with: {paths: ["$corpus/data/*.jsonl"]}
  quality:
    op: clean.quality
    in: {docs: load.data}
    with:
      languages: []
      pii: off
      c4: {enabled: false}
      fineweb: {enabled: false}
EOF
sync
(cd "$scratch/zest" && /usr/bin/time -v -o zest.time "$zest" run dag.yaml --report run.json --quiet >&2)
read -r z_wall z_rss < <(wall_rss "$scratch/zest/zest.time")
digest() { "$py" -c 'import json,sys; r=json.load(open(sys.argv[1]))
print(next(n for n in r["nodes"] if n["node"]=="quality")["outputs"][sys.argv[2]]["digest"])' "$scratch/zest/run.json" "$1"; }
z_kept=$(find "$scratch/zest/.zest/artifacts/$(digest docs)" -name '*.parquet')
z_rej=$(find "$scratch/zest/.zest/artifacts/$(digest rejected)" -name '*.parquet')

mkdir -p "$scratch/dt"
sync
/usr/bin/time -v -o "$scratch/dt/dt.time" "$py" "$here/quality_datatrove.py" run "$corpus/data" \
  "$scratch/dt/out" "$WORKERS" > "$scratch/dt/pipeline.json" 2> "$scratch/dt/log.txt" \
  || { tail -30 "$scratch/dt/log.txt" >&2; exit 1; }
read -r d_wall d_rss < <(wall_rss "$scratch/dt/dt.time")

runs=$(printf '{"zest": {"wall_s": %s, "peak_rss_mib": %s, "version": "%s"}, "datatrove": {"wall_s": %s, "peak_rss_mib": %s, "version": "%s"}}' \
  "$z_wall" "$z_rss" "$version" "$d_wall" "$d_rss" "$dt_version")
# shellcheck disable=SC2086
"$py" "$here/quality_datatrove.py" report --corpus "$corpus" --datatrove-out "$scratch/dt/out" \
  --zest-kept $z_kept --zest-rejected $z_rej --runs "$runs"
