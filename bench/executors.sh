#!/usr/bin/env bash
# The cost of running nodes on Ray rather than locally: the same DAG (a chain of N `shell`
# nodes, then a fan of N independent ones, each `true`) with `--executor local` and
# `--executor ray` against a two-node Ray cluster on 127.0.0.1 (start_ray in
# infra/scripts/test-services.sh), the store a local directory both reach. Prints the wall
# time of each run and the per-node overhead. Usage: bash bench/executors.sh (N=10, PORT=16000)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
N="${N:-10}"
PORT="${PORT:-16000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zest/target}"
zest="${ZEST:-$CARGO_TARGET_DIR/release/zest}"
[ -x "$zest" ] || { echo "build first: make build (or set ZEST)" >&2; exit 1; }
scratch="$(mktemp -d)"
# shellcheck source=/dev/null
source "$repo/infra/scripts/test-services.sh"
cleanup() {
    stop_service "$scratch/services" ray-gpu || true
    stop_service "$scratch/services" ray-head || true
    rm -rf "$scratch"
}
trap cleanup EXIT
start_ray "$scratch/services" "$PORT" 2 >/dev/null
{
    echo "nodes:"
    for i in $(seq 1 "$N"); do
        echo "  chain$i: {op: shell, with: {run: 'true'}$([ "$i" -gt 1 ] && echo ", after: [chain$((i - 1))]")}"
    done
    for i in $(seq 1 "$N"); do
        echo "  fan$i: {op: shell, with: {run: 'true'}}"
    done
} >"$scratch/dag.yaml"
cd "$scratch"
for ex in local ray; do
    t0=$(date +%s.%N)
    "$zest" run dag.yaml --executor "$ex" --no-cache --quiet --state "$scratch/state-$ex" >/dev/null
    t1=$(date +%s.%N)
    python3 -c "import sys; t=float(sys.argv[2]); n=int(sys.argv[3]); print(f'{sys.argv[1]:5}  {2*n} nodes ({n} in a chain, {n} in parallel): {t:.1f} s, {t/(2*n):.2f} s per node')" "$ex" "$(echo "$t1 - $t0" | bc)" "$N"
done
