#!/usr/bin/env python3
"""The corpus of bench/pdf.sh and the scoring of its results.

  pdf_corpus.py gen OUT_DIR [--files 10 --pages 50 --scan-pages 12 --paras 3 --seed 1]
      Writes OUT_DIR/text/doc_NN.pdf (born-digital, FILES x PAGES pages),
      OUT_DIR/scan/scanned_en.pdf (SCAN_PAGES pages drawn at 300 dpi, no text layer),
      OUT_DIR/scan/scanned_200dpi_en.pdf (SCAN_PAGES pages drawn at 200 dpi) and
      OUT_DIR/truth.json: {"text/doc_00.pdf": [page text, ...], ...}.
  pdf_corpus.py quiet [--until EPOCH_SECONDS]
      Waits until no compiler (rustc, cc1, ld, cargo) runs and the machine's other work uses
      under 0.2 cores over 2 s, or the clock passes UNTIL; prints how long it waited.
  pdf_corpus.py zest --zest BIN --dir DIR --bench text|ocr --corpus OUT_DIR [--dpi N]
      Runs `ingest.pdf` once in the fresh project DIR (`zest run --no-cache`) over the corpus's
      text-layer files (`ocr: never`) or its scans (`ocr: always`, eng; defaults otherwise:
      each scan read from its own image at its own dpi; with --dpi, every page rendered at N
      dpi, as zest did before it read scans natively); appends one JSON line: the node's wall
      time from run.json, the whole process's, and the load.
  pdf_corpus.py report --corpus OUT_DIR --results results.jsonl
      Reads the timed runs (one JSON object a line, written by bench/pdf.sh and
      bench/pdf_peers.py), takes the median of each tool's rounds, scores each tool's text
      against the known text (character error rate) and prints one JSON line per tool and a
      table.

Pages are built with the functions of tests/py/make_pdfs.py, the fixtures of the ingest.pdf
tests: born-digital pages are typeset by reportlab with embedded Liberation Serif 11 pt, a
running header, a page-number footer and words hyphenated at line ends; scanned pages are
greyscale Pillow drawings at 300 and 200 dpi with a light blur and sparse specks, embedded as
images.
Every page holds PARAS English abstract paragraphs (300-1100 characters each) from
dags/data/pubmedqa_sample.jsonl, cycled in a shuffled order, so consecutive pages differ.

The character error rate of a page is the Levenshtein distance between the tool's text and
the known text, both with white space collapsed to single spaces, over the length of the
known text; the known text has no header, no page number and no hyphenation, so a tool that
keeps those (PyMuPDF's raw text layer does) pays for them. A tool's CER is the mean over pages,
reported for all its pages and for each file.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "py"))


def gen(args):
    import make_pdfs

    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "text"), exist_ok=True)
    os.makedirs(os.path.join(out, "scan"), exist_ok=True)
    make_pdfs.register_fonts()
    paras = make_pdfs.english_paragraphs(10_000, seed=args.seed)  # every usable one
    k = 0

    def take(n):
        nonlocal k
        got = [paras[(k + i) % len(paras)] for i in range(n)]
        k += n
        return got

    truth = {}
    for f in range(args.files):
        name = f"text/doc_{f:02d}.pdf"
        pages = [take(args.paras) for _ in range(args.pages)]
        truth[name] = make_pdfs.digital(os.path.join(out, name), pages, f"Handbook of Clinical Medicine, volume {f + 1}")
    if args.scan_pages:
        name = "scan/scanned_en.pdf"
        pages = [take(args.paras) for _ in range(args.scan_pages)]
        truth[name] = make_pdfs.scanned(os.path.join(out, name), pages, seed=args.seed)
        name = "scan/scanned_200dpi_en.pdf"
        pages = [take(args.paras) for _ in range(args.scan_pages)]
        truth[name] = make_pdfs.scanned(os.path.join(out, name), pages, dpi=200, seed=args.seed + 1)
    with open(os.path.join(out, "truth.json"), "w") as fh:
        json.dump(truth, fh, indent=1)
    n_text = args.files * args.pages
    print(f"corpus: {n_text} text-layer pages in {args.files} files, {args.scan_pages} scanned pages at "
          f"300 dpi and {args.scan_pages} at 200 dpi "
          f"({len(paras)} distinct paragraphs, {args.paras} a page) in {out}", file=sys.stderr)


HZ = os.sysconf("SC_CLK_TCK")
COMPILERS = {"rustc", "cc1", "cc1plus", "ld", "ld.lld", "mold", "cargo"}


def _busy():
    f = open("/proc/stat").readline().split()[1:]
    v = [int(x) for x in f]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / HZ  # user nice system irq softirq steal


def _own():
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def compilers():
    """Names of compiler processes running now."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                comm = open(f"/proc/{pid}/comm").read().strip()
            except OSError:
                continue
            if comm in COMPILERS:
                found.append(comm)
    return sorted(found)


class Load:
    """What else ran during a measurement: cores busy with processes other than this one and
    its reaped children (from /proc/stat), the 1-minute load average, compilers seen."""

    def __init__(self):
        self.comp0 = compilers()
        self.la0 = float(open("/proc/loadavg").read().split()[0])
        self.t0, self.b0, self.o0 = time.perf_counter(), _busy(), _own()

    def done(self):
        wall = time.perf_counter() - self.t0
        other = (_busy() - self.b0) - (_own() - self.o0)
        return {"other_cores": round(max(0.0, other) / max(wall, 1e-9), 2), "loadavg1": self.la0,
                "compilers": sorted(set(self.comp0) | set(compilers()))}


def quiet(args):
    t0 = time.time()
    while True:
        b0, o0 = _busy(), _own()
        time.sleep(2)
        other = ((_busy() - b0) - (_own() - o0)) / 2
        comp = compilers()
        if (not comp and other < 0.2) or time.time() > args.until:
            break
    waited = time.time() - t0
    state = "quiet" if not comp and other < 0.2 else f"still busy ({other:.2f} cores; {', '.join(comp) or 'no compiler'})"
    print(f"waited {waited:.0f} s for a quiet machine: {state}", file=sys.stderr)


def run_zest(args):
    corpus = os.path.abspath(args.corpus)
    os.makedirs(args.dir)
    if args.bench == "text":
        cfg = {"paths": [f"{corpus}/text/*.pdf"], "ocr": "never"}
    else:
        cfg = {"paths": [f"{corpus}/scan/*.pdf"], "ocr": "always", "ocr_languages": ["eng"]}
        if args.dpi:
            cfg["dpi"] = args.dpi
    dag = {"name": "pdfbench", "nodes": {"pdfs": {"op": "ingest.pdf", "with": cfg}}}
    with open(os.path.join(args.dir, "dag.yaml"), "w") as fh:
        json.dump(dag, fh)  # JSON is YAML
    truth = json.load(open(os.path.join(corpus, "truth.json")))
    pages = sum(len(p) for f, p in truth.items() if f.startswith("text/" if args.bench == "text" else "scan/"))
    subprocess.run(["sync"])
    load = Load()
    t0 = time.perf_counter()
    p = subprocess.run([args.zest, "run", "dag.yaml", "--report", "run.json", "--quiet", "--no-cache"],
                       cwd=args.dir, capture_output=True, text=True)
    process_s = time.perf_counter() - t0
    load = load.done()
    if p.returncode != 0:
        sys.exit(f"zest failed:\n{p.stdout}\n{p.stderr}")
    rep = json.load(open(os.path.join(args.dir, "run.json")))
    node = next(x for x in rep["nodes"] if x["node"] == "pdfs")
    version = subprocess.run([args.zest, "--version"], capture_output=True, text=True).stdout.split()[-1]
    tool = "zest" if args.bench == "text" else (f"zest dpi={args.dpi}" if args.dpi else "zest native")
    line = {"bench": args.bench, "tool": tool, "version": version, "pages": pages,
            "seconds": node["duration_s"], "process_s": process_s, "zest_run": os.path.abspath(args.dir),
            "load": load, "config": cfg | {"paths": "..."}}
    with open(args.results, "a") as fh:
        fh.write(json.dumps(line) + "\n")
    print(f"{tool:28s} {args.bench:4s} {pages} pages {node['duration_s']:.3f} s "
          f"({pages / node['duration_s']:.1f} pages/s; other work {load['other_cores']} cores)", file=sys.stderr)


def levenshtein(a, b):
    """Edit distance by Hyyro's bit-parallel algorithm (Python integers as bit vectors)."""
    if not b:
        return len(a)
    if not a:
        return len(b)
    m = len(b)
    peq = {}
    for i, c in enumerate(b):
        peq[c] = peq.get(c, 0) | (1 << i)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for c in a:
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & mask
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = (mh | ~(xv | ph)) & mask
        mv = ph & xv
    return score


def norm(s):
    return " ".join(s.split())


def cer(got, want):
    g, w = norm(got), norm(want)
    return levenshtein(g, w) / max(1, len(w))


def zest_pages(run_dir, node="pdfs"):
    """{(file relative to the corpus, page): text} of a zest run's docs output."""
    import pyarrow.parquet as pq

    rep = json.load(open(os.path.join(run_dir, "run.json")))
    n = next(x for x in rep["nodes"] if x["node"] == node)
    t = pq.read_table(os.path.join(n["outputs"]["docs"]["uri"], "data.parquet"),
                      columns=["file", "page", "text", "method"]).to_pylist()
    return {(r["file"], r["page"]): (r["text"], r["method"]) for r in t}


def score(truth, pages, corpus):
    """Mean CER over the truth's pages; `pages` maps (relative file, 1-based page) to text."""
    errs, missing = [], 0
    for f, want in truth.items():
        for i, w in enumerate(want):
            got = pages.get((f, i + 1))
            if got is None:
                missing += 1
                got = ""
            errs.append(cer(got, w))
    return (statistics.mean(errs) if errs else None), (max(errs) if errs else None), missing


def report(args):
    corpus = os.path.abspath(args.corpus)
    truth_all = json.load(open(os.path.join(corpus, "truth.json")))
    runs = [json.loads(l) for l in open(args.results) if l.strip()]
    by = {}
    for r in runs:
        by.setdefault((r["bench"], r["tool"]), []).append(r)
    out = []
    for (bench, tool), rs in by.items():
        secs = sorted(r["seconds"] for r in rs)
        med = statistics.median(secs)
        pages = rs[0]["pages"]
        truth = {f: p for f, p in truth_all.items() if f.startswith("text/" if bench == "text" else "scan/")}
        # Text of the last round (every round reads the same pages).
        last = rs[-1]
        if "zest_run" in last:
            got = {}
            for (f, p), (t, m) in zest_pages(last["zest_run"]).items():
                got[(os.path.relpath(f, corpus), p)] = t
        else:
            got = {(f, int(p)): t for f, ps in json.load(open(last["texts"])).items()
                   for p, t in ps.items()}
            got = {(os.path.relpath(f, corpus) if os.path.isabs(f) else f, p): t for (f, p), t in got.items()}
        mean_cer, max_cer, missing = score(truth, got, corpus)
        by_file = {f: round(score({f: p}, got, corpus)[0], 5) for f, p in truth.items()}
        line = {"bench": bench, "tool": tool, "version": last.get("version"), "pages": pages,
                "seconds": round(med, 3), "pages_per_s": round(pages / med, 2),
                "samples_s": [round(s, 3) for s in (r["seconds"] for r in rs)],
                "cer_mean": round(mean_cer, 5), "cer_max": round(max_cer, 5), "cer_by_file": by_file,
                "pages_missing": missing, "load": [r.get("load") for r in rs], "config": last.get("config")}
        if "process_s" in last:
            line["process_s"] = [round(r["process_s"], 3) for r in rs]
        out.append(line)
    for line in out:
        print(json.dumps(line))
    # The table: zest's rows against the first peer row of the same bench.
    print()
    print("| bench | tool | pages | median s | pages/s | zest / peer | mean CER | max CER | mean CER by file |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for bench in ("text", "ocr"):
        rows = [l for l in out if l["bench"] == bench]
        peers = [l for l in rows if not l["tool"].startswith("zest")]
        for l in rows:
            ratio = ""
            if l["tool"].startswith("zest"):
                ratio = ", ".join(f"{l['pages_per_s'] / p['pages_per_s']:.2f}x {p['tool']}" for p in peers)
            files = ", ".join(f"{os.path.basename(f)} {c:.4f}" for f, c in l["cer_by_file"].items()) if bench == "ocr" else ""
            print(f"| {bench} | {l['tool']} | {l['pages']} | {l['seconds']:.3f} | {l['pages_per_s']:.1f} | "
                  f"{ratio} | {l['cer_mean']:.4f} | {l['cer_max']:.4f} | {files} |")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("out")
    g.add_argument("--files", type=int, default=10)
    g.add_argument("--pages", type=int, default=50)
    g.add_argument("--scan-pages", type=int, default=12)
    g.add_argument("--paras", type=int, default=3)
    g.add_argument("--seed", type=int, default=1)
    q = sub.add_parser("quiet")
    q.add_argument("--until", type=float, default=0)
    z = sub.add_parser("zest")
    z.add_argument("--zest", required=True)
    z.add_argument("--dir", required=True)
    z.add_argument("--bench", choices=["text", "ocr"], required=True)
    z.add_argument("--corpus", required=True)
    z.add_argument("--dpi", type=int, default=0)
    z.add_argument("--results", required=True)
    r = sub.add_parser("report")
    r.add_argument("--corpus", required=True)
    r.add_argument("--results", required=True)
    a = ap.parse_args()
    {"gen": gen, "quiet": quiet, "zest": run_zest, "report": report}[a.cmd](a)


if __name__ == "__main__":
    main()
