#!/usr/bin/env bash
# The demo DAG on a Ray cluster against the same DAG run locally: a SeaweedFS S3 store and a
# two-node Ray cluster on 127.0.0.1 (a head, and a node with 2 fake GPUs: start_seaweed and
# start_ray in infra/scripts/test-services.sh), then `zest run dags/demo.yaml` twice, each into
# a prefix of its own in the bucket (so the second cannot take the first's cache): once with
# every node local, once with every node a Ray job. Prints both wall times and whether every
# output of every node has the same digest. Extra arguments go to both runs (e.g.
# `-p cpt_steps=20` for a shorter run).
# Usage: bash bench/demo_on_ray.sh [-p NAME=VALUE ...]   (PORT=16400, S3_PORT=18400)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
PORT="${PORT:-16400}"
S3_PORT="${S3_PORT:-18400}"
# shellcheck source=bench/cluster_lib.sh
source "$here/cluster_lib.sh"
start_seaweed "$scratch/services" "$S3_PORT" zest-demo >/dev/null
start_ray "$scratch/services" "$PORT" 2 >/dev/null
export AWS_ACCESS_KEY_ID="$ZEST_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$ZEST_S3_SECRET_KEY"
export AWS_ENDPOINT_URL="$ZEST_S3_ENDPOINT" AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
# The cluster's nodes read the demo's data where this checkout has it (one host here; on a
# real cluster, a shared filesystem's checkout or s3:// paths).
cat >"$scratch/executors.yaml" <<EOF
default: cluster
profiles:
  cluster:
    kind: ray
    cwd: $repo
    work_dir: $scratch/ray-work
EOF
cd "$repo"
run() {
    local name="$1"; shift
    local t0 t1
    t0=$(date +%s.%N)
    "$zest" run dags/demo.yaml --quiet --state "$scratch/state-$name" \
        --store "s3://zest-demo/$name" --report "$scratch/$name.json" "$@" >"$scratch/$name.out" 2>&1 ||
        { cat "$scratch/$name.out"; echo "the $name run failed" >&2; exit 1; }
    t1=$(date +%s.%N)
    echo "$name: $(echo "$t1 - $t0" | bc) s"
}
run local "$@"
run ray --executor-config "$scratch/executors.yaml" "$@"
python3 - "$scratch/local.json" "$scratch/ray.json" <<'EOF'
import json, sys
def outputs(path):
    r = json.load(open(path))
    return {f"{n['node']}.{p}": o["digest"] for n in r["nodes"] for p, o in n["outputs"].items()}, r
a, ra = outputs(sys.argv[1])
b, rb = outputs(sys.argv[2])
same = sorted(k for k in a if b.get(k) == a[k])
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
print(f"nodes: {len(ra['nodes'])} local, {len(rb['nodes'])} on Ray; outputs with the same digest: {len(same)} of {len(set(a) | set(b))}")
for k in diff:
    print(f"  differs: {k}: {a.get(k)} vs {b.get(k)}")
sys.exit(1 if diff else 0)
EOF
