#!/usr/bin/env bash
# The cost of running nodes on Ray rather than locally: the same DAG (a chain of N `shell`
# nodes, then a fan of N independent ones, each `true`) with `--executor local` and
# `--executor ray` (polling each job every 1 s, the default, and every 100 ms) against a
# two-node Ray cluster on 127.0.0.1 (start_ray in infra/scripts/test-services.sh), the store a
# local directory both reach; then its peers, the same `true` commands given to Ray directly:
# as Ray jobs through the Jobs API, and as Ray tasks of one long-lived driver
# (bench/ray_peers.py). Prints each wall time and the cost per command.
# Usage: bash bench/executors.sh (N=10, PORT=16000)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
N="${N:-10}"
PORT="${PORT:-16000}"
# shellcheck source=bench/cluster_lib.sh
source "$here/cluster_lib.sh"
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
printf 'profiles:\n  ray-fast: {kind: ray, poll: 100ms}\n' >"$scratch/fast.yaml"
cd "$scratch"
line() {
    python3 -c "import sys; t=float(sys.argv[2]); n=int(sys.argv[3]); print(f'{sys.argv[1]:28}  {2*n} commands ({n} in a chain, {n} in parallel): {t:6.1f} s, {t/(2*n):.2f} s each')" "$@"
}
for ex in local ray ray-fast; do
    t0=$(date +%s.%N)
    "$zest" run dag.yaml --executor "$ex" --executor-config fast.yaml --no-cache --quiet --state "$scratch/state-$ex" >/dev/null
    t1=$(date +%s.%N)
    line "zest --executor $ex" "$(echo "$t1 - $t0" | bc)" "$N"
done
# The peers: the same commands given to Ray without zest (bench/ray_peers.py).
py="${ZEST_TOOLS_DIR:-$HOME/.cache/zest-tools}/ray-venv/bin/python"
line "ray jobs, polled every 1 s" "$("$py" "$here/ray_peers.py" jobs "$RAY_ADDRESS" "$N" 1)" "$N"
line "ray jobs, polled every 0.1 s" "$("$py" "$here/ray_peers.py" jobs "$RAY_ADDRESS" "$N" 0.1)" "$N"
line "ray tasks, one driver" "$(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 "$py" "$here/ray_peers.py" tasks "127.0.0.1:$PORT" "$N")" "$N"
