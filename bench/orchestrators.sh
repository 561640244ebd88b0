#!/usr/bin/env bash
# Per-node orchestration overhead: zest against Prefect 3 and Dagster on the same DAG shape,
# LAYERS x WIDTH no-op nodes, node (l, i) depending on (l-1, i). Prints one JSON line per
# measurement. Usage: bash bench/orchestrators.sh   (LAYERS=100 WIDTH=100 by default;
# PEERS=0 measures zest only).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
LAYERS="${LAYERS:-100}"
WIDTH="${WIDTH:-100}"
PEERS="${PEERS:-1}"
zest="$repo/target/release/zest"
[ -x "$zest" ] || { echo "build first: make build" >&2; exit 1; }
nodes=$((LAYERS * WIDTH))

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 "$here/gen_dag.py" "$LAYERS" "$WIDTH" > "$work/dag.yaml"

now() { date +%s.%N; }
measure() { # mode
  local t0 t1
  t0=$(now)
  (cd "$work" && "$zest" run dag.yaml --quiet >/dev/null)
  t1=$(now)
  python3 - "$1" "$t0" "$t1" "$nodes" "$LAYERS" "$WIDTH" "$("$zest" --version | cut -d' ' -f2)" <<'PY'
import json, sys
mode, t0, t1, n, l, w, v = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
wall = t1 - t0
print(json.dumps({"tool": "zest", "version": v, "layers": l, "width": w, "nodes": n, "mode": mode,
                  "wall_s": round(wall, 3), "per_node_ms": round(wall * 1000 / n, 4)}))
PY
}
measure first
measure cached

if [ "$PEERS" = "1" ]; then
  LAYERS="$LAYERS" WIDTH="$WIDTH" bash "$here/peers/run.sh"
fi
