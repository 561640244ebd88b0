#!/usr/bin/env python3
"""The corpus, the datatrove side and the scoring of bench/quality.sh.

  quality_datatrove.py gen OUT_DIR --n N [--shards 2 --seed 1]
      Writes OUT_DIR/data/part-NNNNN.jsonl ({"doc_id", "text", "variant"} per line): documents
      built from the real sentences of the PubMedQA abstracts (../shared/corpus/
      pubmedqa_pqal.jsonl), about 60% left as they are and the rest degraded so that they
      fail (or come close to failing) a Gopher rule: too short, bullet lists, lines ending in
      an ellipsis, hash tags, number tables, no stop words, run-together words, repeated
      lines, paragraphs and phrases. `variant` names the degradation (`clean` for none).
  quality_datatrove.py run IN_DIR OUT_DIR WORKERS
      datatrove's GopherQualityFilter + GopherRepetitionFilter (default thresholds, English)
      between a JsonlReader and a JsonlWriter, one task per input file, WORKERS at a time;
      removed documents go to OUT_DIR/removed/{quality,repetition}, kept ones to
      OUT_DIR/kept. Prints one JSON line with the wall time of the pipeline.
  quality_datatrove.py report --corpus DIR --datatrove-out DIR --zest-kept F --zest-rejected F ...
      Compares the keep/drop decisions of both tools document by document; prints one JSON
      line per tool and one comparison line listing every disagreeing doc_id with both
      tools' reasons.
  quality_datatrove.py specials OUT.tsv
      Writes spaCy's English tokenizer exceptions (the special cases datatrove's English word
      tokenizer applies), one per line: the string, then its pieces, tab-separated. This is
      how kernels/src/quality/en_specials.tsv is regenerated when spaCy changes.
  quality_datatrove.py tokens IN.jsonl OUT.jsonl
      datatrove's English word split (split_into_words) of every document, one JSON list
      per line, to compare with zest's tokenizer (kernels quality tests, ZEST_SPACY_TOKENS).
"""
import argparse
import glob
import json
import os
import random
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PUBMEDQA = os.path.join(HERE, "..", "..", "shared", "corpus", "pubmedqa_pqal.jsonl")
STOP = {"the", "be", "to", "of", "and", "that", "have", "with", "The", "With", "And"}


def sentences(path):
    out = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            v = json.loads(line)
            parts = [c for c in v.get("contexts", []) if isinstance(c, str)]
            for k in ("long_answer", "question"):
                if isinstance(v.get(k), str):
                    parts.append(v[k])
            for p in parts:
                out.extend(s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(])", p.strip()) if s)
    return out


def build(rng, pool, n_sent, n_par):
    start = rng.randrange(len(pool))
    sents = [pool[(start + i) % len(pool)] for i in range(n_sent)]
    if rng.random() < 0.5:
        # A mix of windows: consecutive sentences from a few places of the corpus.
        cut = rng.randrange(1, max(2, n_sent))
        other = rng.randrange(len(pool))
        sents = sents[:cut] + [pool[(other + i) % len(pool)] for i in range(n_sent - cut)]
    pars = [[] for _ in range(n_par)]
    for i, s in enumerate(sents):
        pars[min(n_par - 1, i * n_par // max(1, len(sents)))].append(s)
    return [" ".join(p) for p in pars if p]


def degrade(rng, pars, pool):
    """One degradation of a document given as paragraphs; returns (variant, text)."""
    kind = rng.choice(
        ["short", "bullets", "ellipsis", "hashes", "numbers", "nostop", "glued", "dup_lines",
         "dup_paras", "ngram", "ellipsis_inline", "longwords", "mixed_lines"]
    )
    text = "\n\n".join(pars)
    words = text.split()
    if kind == "short":
        k = rng.randint(10, 70)
        return kind, " ".join(words[:k])
    if kind == "bullets":
        lines = re.split(r"(?<=[.!?])\s+", text)
        frac = rng.choice([0.5, 0.85, 0.92, 1.0])
        return kind, "\n".join(("- " if rng.random() < 0.5 else "• ") + l if rng.random() < frac else l
                               for l in lines)
    if kind == "ellipsis":
        lines = re.split(r"(?<=[.!?])\s+", text)
        frac = rng.choice([0.2, 0.3, 0.4, 0.8])
        return kind, "\n".join(l.rstrip(".") + rng.choice(["...", "…"]) if rng.random() < frac else l
                               for l in lines)
    if kind == "hashes":
        frac = rng.choice([0.05, 0.1, 0.15, 0.3])
        return kind, " ".join(w + " #" + rng.choice(["health", "med", "pubmed"]) if rng.random() < frac else w
                              for w in words)
    if kind == "ellipsis_inline":
        frac = rng.choice([0.05, 0.1, 0.12, 0.2])
        return kind, " ".join(w + "..." if rng.random() < frac else w for w in words)
    if kind == "numbers":
        rows = rng.randint(5, 60)
        table = "\n".join(
            " ".join(f"{rng.uniform(0, 100):.{rng.randint(0, 2)}f}" for _ in range(rng.randint(3, 8)))
            for _ in range(rows)
        )
        return kind, text + "\n\n" + table
    if kind == "nostop":
        keep = rng.choice([0, 1, 2])
        seen = set()
        out = []
        for w in words:
            if w in STOP:
                if w.lower() in seen or len(seen) >= keep:
                    continue
                seen.add(w.lower())
            out.append(w)
        return kind, " ".join(out)
    if kind == "glued":
        frac = rng.choice([0.3, 0.6, 0.9])
        out = []
        for w in words:
            if out and rng.random() < frac:
                out[-1] += w
            else:
                out.append(w)
        return kind, " ".join(out)
    if kind == "longwords":
        return kind, " ".join(w if len(w) > 3 or rng.random() < 0.3 else "" for w in words)
    if kind == "dup_lines":
        lines = re.split(r"(?<=[.!?])\s+", text)
        k = rng.randint(1, max(1, len(lines) // 2))
        for _ in range(k):
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(lines))
        return kind, "\n".join(lines)
    if kind == "dup_paras":
        pars = list(pars)
        for _ in range(rng.randint(1, 3)):
            pars.insert(rng.randrange(len(pars) + 1), rng.choice(pars))
        return kind, "\n\n".join(pars)
    if kind == "ngram":
        phrase = " ".join(words[rng.randrange(max(1, len(words) - 8)):][: rng.randint(2, 10)])
        reps = rng.randint(2, 12)
        at = rng.randrange(len(words) + 1)
        return kind, " ".join(words[:at] + [phrase] * reps + words[at:])
    # mixed_lines: short navigation-like lines between the paragraphs
    extra = ["Home", "Login | Register", "Share this article", "Read more", "Related articles:"]
    lines = []
    for p in pars:
        lines.append(p)
        lines.extend(rng.sample(extra, rng.randint(1, 4)))
    return kind, "\n".join(lines)


def cmd_gen(a):
    rng = random.Random(a.seed)
    pool = sentences(PUBMEDQA)
    data = os.path.join(a.out, "data")
    os.makedirs(data, exist_ok=True)
    files = [open(os.path.join(data, f"part-{i:05d}.jsonl"), "w") for i in range(a.shards)]
    for i in range(a.n):
        pars = build(rng, pool, rng.randint(3, 24), rng.randint(1, 5))
        if rng.random() < 0.6:
            variant, text = "clean", "\n\n".join(pars)
        else:
            variant, text = degrade(rng, pars, pool)
        rec = {"doc_id": f"d{i:07d}", "text": text, "variant": variant}
        files[i % a.shards].write(json.dumps(rec, ensure_ascii=False) + "\n")
    for f in files:
        f.close()


def cmd_run(a):
    from datatrove.executor.local import LocalPipelineExecutor
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    n_files = len(glob.glob(os.path.join(a.input, "*.jsonl")))
    out = a.output

    def writer(d):
        return JsonlWriter(os.path.join(out, d), compression=None)

    t0 = time.time()
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(a.input, id_key="doc_id", compression=None),
            GopherQualityFilter(exclusion_writer=writer("removed/quality")),
            GopherRepetitionFilter(exclusion_writer=writer("removed/repetition")),
            writer("kept"),
        ],
        tasks=n_files,
        workers=a.workers,
        logging_dir=os.path.join(out, "logs"),
    ).run()
    print(json.dumps({"pipeline_s": round(time.time() - t0, 3)}))


def read_jsonl_dir(d):
    for p in sorted(glob.glob(os.path.join(d, "*.jsonl"))):
        with open(p) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


def cmd_report(a):
    import pyarrow.parquet as pq

    corpus = {r["doc_id"]: r for r in read_jsonl_dir(os.path.join(a.corpus, "data"))}
    dt_removed = {}
    for stage in ("quality", "repetition"):
        for r in read_jsonl_dir(os.path.join(a.datatrove_out, "removed", stage)):
            dt_removed[r["id"]] = r.get("metadata", {}).get("filter_reason", stage)
    dt_kept = {r["id"] for r in read_jsonl_dir(os.path.join(a.datatrove_out, "kept"))}
    z_kept = set()
    for f in a.zest_kept:
        z_kept.update(pq.read_table(f, columns=["doc_id"]).column("doc_id").to_pylist())
    z_removed = {}
    for f in a.zest_rejected:
        t = pq.read_table(f, columns=["doc_id", "reasons"]).to_pydict()
        z_removed.update(zip(t["doc_id"], t["reasons"]))
    n = len(corpus)
    assert len(dt_kept) + len(dt_removed) == n, (len(dt_kept), len(dt_removed), n)
    assert len(z_kept) + len(z_removed) == n, (len(z_kept), len(z_removed), n)
    differ = sorted(d for d in corpus if (d in dt_removed) != (d in z_removed))
    runs = json.loads(a.runs)
    for tool, removed in (("zest", z_removed), ("datatrove", dt_removed)):
        wall = runs[tool]["wall_s"]
        print(json.dumps({
            "tool": tool, "version": runs[tool].get("version"), "documents": n,
            "removed": len(removed), "wall_s": wall, "docs_per_s": round(n / wall, 1),
            "peak_rss_mib": runs[tool].get("peak_rss_mib"),
        }))
    variants = {}
    for d, r in corpus.items():
        v = variants.setdefault(r["variant"], [0, 0])
        v[0] += 1
        v[1] += d in dt_removed
    print(json.dumps({
        "agreement": round(1 - len(differ) / n, 6), "disagreeing": len(differ),
        "removed_by_variant_datatrove": {k: f"{v[1]}/{v[0]}" for k, v in sorted(variants.items())},
        "differences": [{"doc_id": d, "variant": corpus[d]["variant"],
                         "datatrove": dt_removed.get(d, "kept"),
                         "zest": z_removed.get(d, "kept")} for d in differ[:50]],
    }))


def cmd_specials(a):
    import spacy

    rules = spacy.blank("en").tokenizer.rules
    with open(a.out, "w") as f:
        for key in sorted(rules):
            if not key.strip() or any(c in key for c in "\t\n"):
                continue  # whitespace is never a word
            pieces = [p[65] if 65 in p else p["ORTH"] for p in rules[key]]
            f.write("\t".join([key] + pieces) + "\n")


def cmd_tokens(a):
    from datatrove.utils.text import split_into_words

    with open(a.input) as f, open(a.out, "w") as out:
        for line in f:
            if line.strip():
                r = json.loads(line)
                out.write(json.dumps({"text": r["text"], "words": split_into_words(r["text"], "eng")},
                                     ensure_ascii=False) + "\n")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("out")
    g.add_argument("--n", type=int, default=20000)
    g.add_argument("--shards", type=int, default=2)
    g.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("run")
    r.add_argument("input")
    r.add_argument("output")
    r.add_argument("workers", type=int)
    rep = sub.add_parser("report")
    rep.add_argument("--corpus", required=True)
    rep.add_argument("--datatrove-out", required=True)
    rep.add_argument("--zest-kept", nargs="+", required=True)
    rep.add_argument("--zest-rejected", nargs="+", required=True)
    rep.add_argument("--runs", required=True, help="JSON: {tool: {wall_s, version, peak_rss_mib}}")
    s = sub.add_parser("specials")
    s.add_argument("out")
    t = sub.add_parser("tokens")
    t.add_argument("input")
    t.add_argument("out")
    a = p.parse_args()
    {"gen": cmd_gen, "run": cmd_run, "report": cmd_report, "specials": cmd_specials,
     "tokens": cmd_tokens}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
