#!/usr/bin/env bash
# Per-node orchestration overhead: zest against Prefect 3 and Dagster on the same DAG shape,
# LAYERS x WIDTH no-op nodes, node (l, i) depending on (l-1, i), every node distinct.
# Prints one JSON line per measurement. Usage: bash bench/orchestrators.sh
# (LAYERS=100 WIDTH=100 by default; REPEAT=5 zest runs of each mode, summarised by their
# median; PEERS=0 measures zest only).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
LAYERS="${LAYERS:-100}"
WIDTH="${WIDTH:-100}"
PEERS="${PEERS:-1}"
REPEAT="${REPEAT:-5}"
zest="$repo/target/release/zest"
[ -x "$zest" ] || { echo "build first: make build" >&2; exit 1; }
nodes=$((LAYERS * WIDTH))
version="$("$zest" --version | cut -d' ' -f2)"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python3 "$here/gen_dag.py" "$LAYERS" "$WIDTH" > "$scratch/dag.yaml"

now() { date +%s.%N; }
timed() { # dir -> seconds of one `zest run`
  local t0 t1
  # Dirty pages of the previous run are written back first, so runs do not pay for each
  # other's writeback.
  sync
  t0=$(now)
  (cd "$1" && "$zest" run dag.yaml --quiet >/dev/null)
  t1=$(now)
  python3 -c "print(round($t1 - $t0, 4))"
}

first=(); cached=()
for i in $(seq "$REPEAT"); do
  # Each first run starts from an empty state directory and store.
  work="$scratch/run-$i"
  mkdir -p "$work" && cp "$scratch/dag.yaml" "$work/"
  first+=("$(timed "$work")")
  cached+=("$(timed "$work")")
done

report() { # mode samples...
  python3 - "$nodes" "$LAYERS" "$WIDTH" "$version" "$@" <<'PY'
import json, statistics, sys
n, l, w, v, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
samples = [float(x) for x in sys.argv[6:]]
wall = statistics.median(samples)
print(json.dumps({"tool": "zest", "version": v, "layers": l, "width": w, "nodes": n, "mode": mode,
                  "wall_s": round(wall, 3), "per_node_ms": round(wall * 1000 / n, 4),
                  "samples_s": samples, "summary": "median"}))
PY
}
report first "${first[@]}"
report cached "${cached[@]}"

if [ "$PEERS" = "1" ]; then
  LAYERS="$LAYERS" WIDTH="$WIDTH" bash "$here/peers/run.sh"
fi
