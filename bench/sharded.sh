#!/usr/bin/env bash
# Throughput of sharded `clean.quality` and `clean.dedup` from 1 to 4 shards, locally and on a
# two-node Ray cluster on 127.0.0.1 (start_ray in infra/scripts/test-services.sh; the store a
# local directory both reach). The corpus: the real PubMed abstracts of
# ../shared/corpus/pubmedqa_pqal.jsonl, each written COPIES times with about 3% of its words
# changed (so dedup has near copies to find). For each executor and shard count, one run
# into a fresh store; a node's time is from the first of its instances starting to its merge
# ending (from the run report). Every instance declares `resources: {cpu: CPU}` (default 1:
# its operator then runs on one thread, so N shards are N one-core workers; CPU=0 declares
# nothing and every instance uses every core). Also checks that every shard count wrote the
# same digests.
# Usage: bash bench/sharded.sh (COPIES=20, SHARDS="1 2 4", EXECUTORS="local ray", CPU=1,
#        PORT=16600)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
COPIES="${COPIES:-20}"
SHARDS="${SHARDS:-1 2 4}"
EXECUTORS="${EXECUTORS:-local ray}"
PORT="${PORT:-16600}"
CPU="${CPU:-1}"
# shellcheck source=bench/cluster_lib.sh
source "$here/cluster_lib.sh"
case " $EXECUTORS " in *" ray "*) start_ray "$scratch/services" "$PORT" 2 >/dev/null ;; esac
python3 - "$repo/../shared/corpus/pubmedqa_pqal.jsonl" "$COPIES" >"$scratch/docs.jsonl" <<'EOF'
import json, random, sys
rng = random.Random(5)
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for c in range(int(sys.argv[2])):
    for r in rows:
        words = "\n\n".join(r["contexts"]).split(" ")
        if c:
            words = [w if rng.random() > 0.03 else rng.choice(words) for w in words]
        print(json.dumps({"doc_id": f"{r['pmid']}-{c}", "source": "literature", "text": " ".join(words)}))
EOF
docs=$(wc -l <"$scratch/docs.jsonl")
res=""
[ "$CPU" != 0 ] && res="resources: {cpu: $CPU}"
cat >"$scratch/dag.yaml" <<EOF
params:
  shards: {type: int, default: 1}
defaults:
  $res
nodes:
  load:
    op: data.load
    with: {paths: ["$scratch/docs.jsonl"]}
  quality:
    op: clean.quality
    in: {docs: load.data}
    with: {preset: literature}
    shards: \${params.shards}
  dedup:
    op: clean.dedup
    in: {docs: quality.docs}
    shards: \${params.shards}
EOF
echo "corpus: $docs documents ($(du -h "$scratch/docs.jsonl" | cut -f1)); ${res:-no resources declared}; machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
cd "$scratch"
for ex in $EXECUTORS; do
    for n in $SHARDS; do
        t0=$(date +%s.%N)
        "$zest" run dag.yaml -p "shards=$n" --executor "$ex" --quiet --state "$scratch/state-$ex-$n" \
            --store "$scratch/store-$ex-$n" --report "$scratch/$ex-$n.json" >"$scratch/$ex-$n.out" 2>&1 ||
            { cat "$scratch/$ex-$n.out"; exit 1; }
        t1=$(date +%s.%N)
        python3 - "$scratch/$ex-$n.json" "$ex" "$n" "$docs" "$(echo "$t1 - $t0" | bc)" <<'EOF'
import json, sys
from datetime import datetime
r = json.load(open(sys.argv[1]))
ex, n, docs, wall = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
parts = []
for name in ("quality", "dedup"):
    mine = [x for x in r["nodes"] if x["node"] == name or x["node"].startswith(name + "[")]
    span = max(t(x["end_time"]) for x in mine) - min(t(x["start_time"]) for x in mine)
    parts.append(f"{name} {span:6.1f} s ({docs / span:6.0f} docs/s, {len(mine)} nodes)")
print(f"{ex:5} shards={n}: " + ", ".join(parts) + f"; run {wall:.1f} s")
EOF
    done
done
python3 - "$scratch" $EXECUTORS -- $SHARDS <<'EOF'
import json, sys
d = sys.argv[1]; i = sys.argv.index("--")
exs, ns = sys.argv[2:i], sys.argv[i + 1:]
def outs(ex, n):
    r = json.load(open(f"{d}/{ex}-{n}.json"))
    return {f"{x['node']}.{p}": o["digest"] for x in r["nodes"] if "[" not in x["node"] for p, o in x["outputs"].items()}
runs = {(e, n): outs(e, n) for e in exs for n in ns}
first = next(iter(runs.values()))
same = all(v == first for v in runs.values())
print(f"outputs of quality and dedup: {'the same digests' if same else 'DIFFERENT digests'} in all {len(runs)} runs")
sys.exit(0 if same else 1)
EOF
