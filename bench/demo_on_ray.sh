#!/usr/bin/env bash
# The demo DAG on a Ray cluster against the same DAG run locally: a SeaweedFS S3 store and a
# two-node Ray cluster on 127.0.0.1 (a head, and a node with 2 fake GPUs: start_seaweed and
# start_ray in infra/scripts/test-services.sh), then `zest run dags/demo.yaml` twice, each into
# a prefix of its own in the bucket (so the second cannot take the first's cache): once with
# every node local, once with every node a Ray job. Prints both wall times and whether every
# output of every node has the same digest. Extra arguments go to both runs (e.g.
# `-p cpt_steps=20` for a shorter run). Needs curl with --aws-sigv4 (7.75 or later).
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
# Outputs whose digests differ are fetched from the store (curl's SigV4) and compared leaf
# by leaf: a training report records wall-clock times, which no two runs share; anything else
# that differs fails the comparison.
python3 - "$scratch/local.json" "$scratch/ray.json" <<'EOF'
import base64, json, os, re, subprocess, sys
def outputs(path):
    r = json.load(open(path))
    return {f"{n['node']}.{p}": o["digest"] for n in r["nodes"] for p, o in n["outputs"].items()}, r
def get(prefix, key):
    url = f"{os.environ['AWS_ENDPOINT_URL']}/zest-demo/{prefix}/{key}"
    auth = f"{os.environ['AWS_ACCESS_KEY_ID']}:{os.environ['AWS_SECRET_ACCESS_KEY']}"
    return subprocess.run(["curl", "-fsS", "--max-time", "30", "--aws-sigv4", "aws:amz:us-east-1:s3",
                           "--user", auth, url], check=True, capture_output=True).stdout
def files(prefix, digest):
    m = json.loads(get(prefix, f"manifests/{digest}.json"))
    out = {}
    for f in m.get("files", []):
        p = f["path"]
        inline = (m.get("inline") or {}).get(p)
        out[p] = base64.b64decode(inline) if inline is not None else get(prefix, f"artifacts/{digest}/{p}")
    return out
TIMING = re.compile(r"(^|_)(seconds|secs|elapsed|wall|ms|per_s|per_sec|time|started|ended)$|_per_s_|tokens_per_s")
def leaves(v, path=()):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from leaves(x, path + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from leaves(x, path + (str(i),))
    else:
        yield path, v
def timing(path):
    return any(TIMING.search(k) for k in path if not k.isdigit())
a, ra = outputs(sys.argv[1])
b, rb = outputs(sys.argv[2])
same = sorted(k for k in a if b.get(k) == a[k])
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
print(f"nodes: {len(ra['nodes'])} local, {len(rb['nodes'])} on Ray; outputs with the same digest: {len(same)} of {len(set(a) | set(b))}")
bad = 0
for k in diff:
    if k not in a or k not in b:
        print(f"  only in one run: {k}"); bad += 1; continue
    fa, fb = files("local", a[k]), files("ray", b[k])
    keys = set()
    for p in sorted(set(fa) | set(fb)):
        if fa.get(p) == fb.get(p):
            continue
        try:
            ja, jb = dict(leaves(json.loads(fa[p]))), dict(leaves(json.loads(fb[p])))
        except Exception:
            print(f"  differs: {k}: file {p}"); bad += 1; continue
        for leaf in set(ja) | set(jb):
            if ja.get(leaf) != jb.get(leaf):
                keys.add(leaf)
    other = sorted(".".join(l) for l in keys if not timing(l))
    times = sorted({l[-1] for l in keys if timing(l)})
    if other:
        bad += 1
        print(f"  differs: {k}: {', '.join(other[:10])}")
    else:
        print(f"  {k}: only wall-clock times differ ({', '.join(times)})")
sys.exit(1 if bad else 0)
EOF
