#!/usr/bin/env python3
"""The corpus of bench/dedup.sh and the scoring of its results.

  dedup_corpus.py gen OUT_DIR --n N [--min-words 80 --max-words 300 --shards 2 --seed 1]
      Writes OUT_DIR/data/part-NNNNN.jsonl ({"doc_id", "text"} per line) and
      OUT_DIR/planted.jsonl, the planted duplicate pairs ({"a", "b", "kind", "edits",
      "jaccard"}: `b` is a copy of `a`; kind `near` or `exact`; `jaccard` is the exact
      Jaccard similarity of the two documents' word 5-gram sets after lower-casing and
      dropping punctuation).
  dedup_corpus.py watch OUT.run -- COMMAND...
      Runs COMMAND, writes its wall time and the peak memory of its process tree (polled
      every 0.1 s) to OUT.run (JSON).
  dedup_corpus.py report --corpus OUT_DIR [--zest-report run.json --zest-run PREFIX]
                         [--datatrove-removed DIR --datatrove-run PREFIX --datatrove-stages F]
      Scores each tool's removed documents against the planted pairs and against each other;
      prints one JSON line per tool and one comparison line. PREFIX.run is written by `watch`,
      PREFIX.time by `/usr/bin/time -v`.

Documents are deterministic for a seed. Base documents are windows of MIN..MAX words of the
PubMedQA abstracts (contexts and long answer of ../shared/corpus/pubmedqa_pqal.jsonl, read as
one stream of words), each word replaced with probability 0.2 by a word drawn from the same
stream, so two base documents share almost no 5-gram even when their windows overlap. After
each base document, with probability 0.10 a near copy (1-4% of its words, at least one, are
replaced, inserted or deleted) and with probability 0.02 a byte-identical copy are added; the
corpus is then shuffled, so a copy may come before its original.
"""
import argparse
import json
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PUBMEDQA = os.path.join(HERE, "..", "..", "shared", "corpus", "pubmedqa_pqal.jsonl")
SUBST = 0.2
NEAR = 0.10
EXACT = 0.02
EDIT_MIN, EDIT_MAX = 0.01, 0.04


def word_stream(path):
    words = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            v = json.loads(line)
            parts = [c for c in v.get("contexts", []) if isinstance(c, str)]
            if isinstance(v.get("long_answer"), str):
                parts.append(v["long_answer"])
            if isinstance(v.get("text"), str):
                parts.append(v["text"])
            words.extend(" ".join(parts).split())
    return words


_PUNCT = re.compile(r"[^\w\s]+")


def shingles(text, n=5):
    w = _PUNCT.sub(" ", text.lower()).split()
    if len(w) < n:
        return {" ".join(w)}
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def jaccard(a, b):
    x, y = shingles(a), shingles(b)
    return len(x & y) / max(1, len(x | y))


def gen(args):
    rng = random.Random(args.seed)
    stream = word_stream(args.source)
    m = len(stream)
    rand, randrange = rng.random, rng.randrange

    def base():
        n = rng.randint(args.min_words, args.max_words)
        start = randrange(m - n)
        return [stream[randrange(m)] if rand() < SUBST else w for w in stream[start:start + n]]

    def near_copy(words):
        words = list(words)
        edits = max(1, round(rng.uniform(EDIT_MIN, EDIT_MAX) * len(words)))
        for _ in range(edits):
            op = randrange(3)
            if op == 0 or len(words) < 2:
                words[randrange(len(words))] = stream[randrange(m)]
            elif op == 1:
                words.insert(randrange(len(words) + 1), stream[randrange(m)])
            else:
                del words[randrange(len(words))]
        return words, edits

    docs = []  # texts
    pairs = []  # (index of original, index of copy, kind, edits)
    while len(docs) < args.n:
        words = base()
        orig = len(docs)
        docs.append(" ".join(words))
        if rand() < NEAR and len(docs) < args.n:
            copy, edits = near_copy(words)
            pairs.append((orig, len(docs), "near", edits))
            docs.append(" ".join(copy))
        if rand() < EXACT and len(docs) < args.n:
            pairs.append((orig, len(docs), "exact", 0))
            docs.append(docs[orig])
    order = list(range(len(docs)))
    rng.shuffle(order)
    # position[i]: where document i lands; its doc_id is made from that position.
    position = [0] * len(docs)
    for pos, i in enumerate(order):
        position[i] = pos
    did = lambda i: f"d{position[i]:08d}"  # noqa: E731
    os.makedirs(os.path.join(args.out, "data"), exist_ok=True)
    per = -(-len(docs) // args.shards)
    for s in range(args.shards):
        with open(os.path.join(args.out, "data", f"part-{s:05d}.jsonl"), "w") as f:
            for pos in range(s * per, min(len(docs), (s + 1) * per)):
                i = order[pos]
                f.write(json.dumps({"doc_id": did(i), "text": docs[i]}) + "\n")
    with open(os.path.join(args.out, "planted.jsonl"), "w") as f:
        for a, b, kind, edits in pairs:
            j = 1.0 if kind == "exact" else round(jaccard(docs[a], docs[b]), 4)
            f.write(json.dumps({"a": did(a), "b": did(b), "kind": kind, "edits": edits, "jaccard": j}) + "\n")
    words = sum(d.count(" ") + 1 for d in docs)
    info = {"docs": len(docs), "shards": args.shards, "words": words,
            "mean_words": round(words / len(docs), 1), "seed": args.seed,
            "near_pairs": sum(p[2] == "near" for p in pairs),
            "exact_pairs": sum(p[2] == "exact" for p in pairs)}
    with open(os.path.join(args.out, "corpus.json"), "w") as f:
        json.dump(info, f)
    print(json.dumps({"corpus": info}), file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Scoring


def _tree(root):
    """root and its descendants (pids), from the parent pids in /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _kib(path, keys):
    vals = {}
    try:
        with open(path) as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in keys:
                    vals[k] = int(line.split()[1])
    except OSError:
        pass
    return vals


def watch(args):
    """Runs a command, polls its process tree every 0.1 s, writes a JSON file: wall_s, the exit
    code, the largest high-water RSS of any one process (VmHWM) and the largest sum over the
    tree of RSS and of PSS (shared pages split between processes) seen at one poll."""
    import subprocess
    import time

    t0 = time.perf_counter()
    proc = subprocess.Popen(args.command)
    hwm, tree_rss, tree_pss, procs = {}, 0, 0, 0
    while True:
        rc = proc.poll()
        if rc is not None:
            break
        pids = _tree(proc.pid)
        procs = max(procs, len(pids))
        rss = pss = 0
        for pid in pids:
            st = _kib(f"/proc/{pid}/status", ("VmHWM", "VmRSS"))
            if "VmHWM" in st:
                hwm[pid] = max(hwm.get(pid, 0), st["VmHWM"])
            rss += st.get("VmRSS", 0)
            pss += _kib(f"/proc/{pid}/smaps_rollup", ("Pss",)).get("Pss", 0)
        tree_rss, tree_pss = max(tree_rss, rss), max(tree_pss, pss)
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    with open(args.out, "w") as f:
        json.dump({"wall_s": wall, "rc": rc, "max_process_hwm_kib": max(hwm.values(), default=0),
                   "tree_rss_kib": tree_rss, "tree_pss_kib": tree_pss, "max_processes": procs}, f)
    sys.exit(rc)


def run_info(prefix):
    """What bench/dedup.sh measured of one run: PREFIX.run (from `watch`) and PREFIX.time
    (/usr/bin/time -v)."""
    with open(prefix + ".run") as f:
        info = json.load(f)
    with open(prefix + ".time") as f:
        for line in f:
            line = line.strip()
            if line.startswith("Maximum resident set size (kbytes):"):
                info["time_max_rss_kib"] = int(line.rsplit(":", 1)[1])
    return info


class Groups:
    """Planted duplicate groups: an original with its copies (union of the planted pairs)."""

    def __init__(self, path):
        self.pairs = [json.loads(line) for line in open(path) if line.strip()]
        parent = {}

        def find(x):
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for p in self.pairs:
            ra, rb = find(p["a"]), find(p["b"])
            if ra != rb:
                parent[rb] = ra
        self.group_of = {d: find(d) for d in parent}
        self.size = {}
        for g in self.group_of.values():
            self.size[g] = self.size.get(g, 0) + 1
        # Documents that should go: all but one of each group.
        self.removable = sum(s - 1 for s in self.size.values())


BINS = [(0.0, 0.6), (0.6, 0.7), (0.7, 0.75), (0.75, 0.8), (0.8, 0.85), (0.85, 0.9), (0.9, 1.01)]


def score(groups, removed):
    """Recall and precision of a removed set against the planted groups. A removed document
    is a true positive when it belongs to a planted group and at most |group| - 1 of the
    group's documents are counted so; removing every member of a group counts one false
    positive."""
    per_group = {}
    outside = 0
    for d in removed:
        g = groups.group_of.get(d)
        if g is None:
            outside += 1
        else:
            per_group[g] = per_group.get(g, 0) + 1
    tp = sum(min(c, groups.size[g] - 1) for g, c in per_group.items())
    emptied = sum(1 for g, c in per_group.items() if c >= groups.size[g])
    out = {
        "removed": len(removed),
        "true_positives": tp,
        "false_positives": len(removed) - tp,
        "removed_outside_planted": outside,
        "groups_emptied": emptied,
        "recall": round(tp / max(1, groups.removable), 4),
        "precision": round(tp / max(1, len(removed)), 4),
    }
    # Pair recall: a planted pair counts as found when one of its two documents is removed.
    for kind in ("near", "exact"):
        ps = [p for p in groups.pairs if p["kind"] == kind]
        found = sum(1 for p in ps if p["a"] in removed or p["b"] in removed)
        out[f"{kind}_pair_recall"] = round(found / max(1, len(ps)), 4)
    bins = {}
    for lo, hi in BINS:
        ps = [p for p in groups.pairs if p["kind"] == "near" and lo <= p["jaccard"] < hi]
        found = sum(1 for p in ps if p["a"] in removed or p["b"] in removed)
        bins[f"{lo:.2f}-{min(hi, 1.0):.2f}"] = [found, len(ps)]
    out["near_pair_recall_by_jaccard"] = {k: {"found": f, "pairs": n, "recall": round(f / n, 4) if n else None}
                                          for k, (f, n) in bins.items()}
    return out


def zest_removed(path):
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["doc_id", "kept_doc_id", "dup_reason"])
    ids = t.column("doc_id").to_pylist()
    kept = t.column("kept_doc_id").to_pylist()
    reasons = t.column("dup_reason").to_pylist()
    return ids, kept, reasons


def datatrove_removed(folder):
    ids = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".jsonl"):
            continue
        with open(os.path.join(folder, name)) as f:
            for line in f:
                if line.strip():
                    ids.append(json.loads(line)["id"])
    return ids


def report(args):
    with open(os.path.join(args.corpus, "corpus.json")) as f:
        info = json.load(f)
    n = info["docs"]
    groups = Groups(os.path.join(args.corpus, "planted.jsonl"))
    sets = {}
    base = {"docs": n, "mean_words": info["mean_words"], "near_pairs": info["near_pairs"],
            "exact_pairs": info["exact_pairs"], "removable": groups.removable}

    def timing(prefix):
        r = run_info(prefix)
        mib = lambda k: round(r[k] / 1024, 1)  # noqa: E731
        return {"wall_s": round(r["wall_s"], 3), "docs_per_s": round(n / r["wall_s"]),
                "peak_rss_mib": mib("time_max_rss_kib"), "peak_process_hwm_mib": mib("max_process_hwm_kib"),
                "peak_tree_rss_mib": mib("tree_rss_kib"), "peak_tree_pss_mib": mib("tree_pss_kib"),
                "max_processes": r["max_processes"]}

    if args.zest_report:
        with open(args.zest_report) as f:
            run = json.load(f)
        nodes = {x["node"]: x for x in run["nodes"]}
        dups = os.path.join(nodes["dedup"]["outputs"]["duplicates"]["uri"], "data.parquet")
        ids, kept, reasons = zest_removed(dups)
        removed = set(ids)
        assert len(removed) == len(ids), "a document removed twice"
        sets["zest"] = removed
        line = {"tool": "zest", "version": args.zest_version, **timing(args.zest_run),
                "node_s": {k: v["duration_s"] for k, v in nodes.items()},
                "threads": os.cpu_count(), **base, **score(groups, removed)}
        # The kept document zest names for each removed true duplicate is from its group.
        named = [(d, k) for d, k in zip(ids, kept) if d in groups.group_of]
        line["kept_doc_id_in_group"] = round(
            sum(1 for d, k in named if groups.group_of.get(k) == groups.group_of[d]) / max(1, len(named)), 4)
        line["dup_reason"] = {r: reasons.count(r) for r in sorted(set(reasons))}
        line["config"] = "clean.dedup defaults: word 5-grams, 14 bands x 8 rows, threshold 0.7, exact on"
        print(json.dumps(line))
    if args.datatrove_removed:
        with open(args.datatrove_stages) as f:
            st = json.load(f)
        stages = {"stage_s": st["stage_s"], "tasks": st["tasks"]}
        removed_list = datatrove_removed(args.datatrove_removed)
        removed = set(removed_list)
        assert len(removed) == len(removed_list), "a document removed twice"
        sets["datatrove"] = removed
        line = {"tool": "datatrove", "version": args.datatrove_version, **timing(args.datatrove_run),
                "workers": st["workers"], **base, **score(groups, removed),
                "config": args.datatrove_config,
                **stages}
        print(json.dumps(line))
    if len(sets) == 2:
        z, d = sets["zest"], sets["datatrove"]
        both, either = len(z & d), len(z | d)
        # Planted near pairs: found (one of the two removed) by both, one or neither tool.
        near = {"both": 0, "only_zest": 0, "only_datatrove": 0, "neither": 0}
        other_member = 0  # found by both, but not the same document(s) removed
        for p in groups.pairs:
            zr, dr = (p["a"] in z, p["b"] in z), (p["a"] in d, p["b"] in d)
            if any(zr) and any(dr) and zr != dr:
                other_member += 1
            if p["kind"] == "near":
                near[{(True, True): "both", (True, False): "only_zest", (False, True): "only_datatrove",
                      (False, False): "neither"}[(any(zr), any(dr))]] += 1
        print(json.dumps({"comparison": "zest vs datatrove", "docs": n,
                          "same_decision": round((n - len(z ^ d)) / n, 5),
                          "removed_jaccard": round(both / max(1, either), 4),
                          "removed_by_both": both, "only_zest": len(z - d), "only_datatrove": len(d - z),
                          "near_pairs": near,
                          "near_pairs_same_outcome": round((near["both"] + near["neither"]) / max(1, sum(near.values())), 4),
                          "pairs_found_by_both_other_member_removed": other_member}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("out")
    g.add_argument("--n", type=int, default=100_000)
    g.add_argument("--min-words", type=int, default=80)
    g.add_argument("--max-words", type=int, default=300)
    g.add_argument("--shards", type=int, default=2)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--source", default=PUBMEDQA)
    r = sub.add_parser("report")
    r.add_argument("--corpus", required=True)
    r.add_argument("--zest-report", help="zest's run.json")
    r.add_argument("--zest-run", help="prefix of the .run and .time files")
    r.add_argument("--zest-version", default="")
    r.add_argument("--datatrove-removed")
    r.add_argument("--datatrove-run", help="prefix of the .run and .time files")
    r.add_argument("--datatrove-stages", help="the line printed by dedup_datatrove.py")
    r.add_argument("--datatrove-version", default="")
    r.add_argument("--datatrove-config", default="")
    w = sub.add_parser("watch")
    w.add_argument("out")
    w.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.cmd == "watch" and args.command[:1] == ["--"]:
        args.command = args.command[1:]
    {"gen": gen, "report": report, "watch": watch}[args.cmd](args)


if __name__ == "__main__":
    main()
