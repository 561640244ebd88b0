#!/usr/bin/env python3
"""The Python peers of bench/pdf.sh: PyMuPDF's text layer and pytesseract's OCR.

  pdf_peers.py text --corpus OUT_DIR --procs N --results results.jsonl --texts DIR
      PyMuPDF `page.get_text()` over every page of OUT_DIR/text/*.pdf: in this process
      (N = 1) or in a multiprocessing.Pool(N), one file a task, the texts sent back to the
      parent. The clock covers opening the files, extracting and (N > 1) collecting the texts;
      the pool is started and warmed before it.
  pdf_peers.py ocr --corpus OUT_DIR --procs N --results results.jsonl --texts DIR --png DIR
                  [--images rendered|native]
      pytesseract.image_to_string(png, lang="eng", config="--psm 3 --dpi D") over every page of
      OUT_DIR/scan/*.pdf in a multiprocessing.Pool(N), one page a task, OMP_THREAD_LIMIT=1.
      Before the clock starts (into --png, once), the pages are rendered to greyscale PNGs at
      300 dpi by PyMuPDF (`rendered`, D = 300), or each page's embedded image is saved as it is
      stored (`native`: PyMuPDF's Pixmap of the image's xref, D = its pixel width over the
      page's width in inches). The clock covers OCR only: per page pytesseract's temporary
      output file, one `tesseract` process (which loads eng.traineddata and decodes the PNG),
      and reading the text back.

Each appends one JSON line to RESULTS (seconds, pages, load during the run, where the texts
are) and writes the texts as {file: {page: text}} to DIR/<tool>.json for scoring.
"""
import argparse
import glob
import json
import multiprocessing
import os
import sys
import time

os.environ["OMP_THREAD_LIMIT"] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pymupdf  # noqa: E402
from pdf_corpus import Load  # noqa: E402


def _file_text(path):
    with pymupdf.open(path) as doc:
        return path, [page.get_text() for page in doc]


def _warm(_):
    return os.getpid()


def _ocr(job):
    import pytesseract

    path, png, pno, dpi = job
    return path, pno, pytesseract.image_to_string(png, lang="eng", config=f"--psm 3 --dpi {dpi}")


def _emit(args, tool, version, pages, seconds, load, texts, config):
    os.makedirs(args.texts, exist_ok=True)
    tpath = os.path.join(args.texts, tool.replace(" ", "_") + ".json")
    with open(tpath, "w") as fh:
        json.dump(texts, fh)
    line = {"bench": args.cmd, "tool": tool, "version": version, "pages": pages, "seconds": seconds,
            "texts": tpath, "load": load, "config": config}
    with open(args.results, "a") as fh:
        fh.write(json.dumps(line) + "\n")
    print(f"{tool:28s} {args.cmd:4s} {pages} pages {seconds:.3f} s ({pages / seconds:.1f} pages/s; "
          f"other work {load['other_cores']} cores)", file=sys.stderr)


def text(args):
    corpus = os.path.abspath(args.corpus)
    files = sorted(glob.glob(os.path.join(corpus, "text", "*.pdf")))
    pool = None
    if args.procs > 1:
        pool = multiprocessing.get_context("fork").Pool(args.procs)
        pool.map(_warm, range(args.procs * 4))
    load = Load()
    t0 = time.perf_counter()
    if pool is None:
        results = [_file_text(f) for f in files]
    else:
        results = pool.map(_file_text, files, chunksize=1)
    seconds = time.perf_counter() - t0
    if pool is not None:
        pool.close()
        pool.join()
    load = load.done()
    texts = {os.path.relpath(p, corpus): {i + 1: t for i, t in enumerate(ts)} for p, ts in results}
    pages = sum(len(ts) for _, ts in results)
    tool = "PyMuPDF" if args.procs == 1 else f"PyMuPDF, {args.procs} processes"
    _emit(args, tool, pymupdf.__version__, pages, seconds, load, texts,
          {"call": "page.get_text()", "processes": args.procs, "mupdf": pymupdf.VersionFitz})


def ocr(args):
    import pytesseract

    corpus = os.path.abspath(args.corpus)
    files = sorted(glob.glob(os.path.join(corpus, "scan", "*.pdf")))
    os.makedirs(args.png, exist_ok=True)
    jobs = []
    for f in files:
        with pymupdf.open(f) as doc:
            for i, page in enumerate(doc):
                png = os.path.join(args.png, f"{os.path.basename(f)}-{args.images}-{i + 1:04d}.png")
                if args.images == "native":
                    (xref, *_), = page.get_images(full=True)
                    pix = pymupdf.Pixmap(doc, xref)
                    dpi = round(pix.width / (page.rect.width / 72))
                    if not os.path.exists(png):
                        pix.set_dpi(dpi, dpi)
                        pix.save(png)
                else:
                    dpi = 300
                    if not os.path.exists(png):
                        page.get_pixmap(dpi=300, colorspace=pymupdf.csGRAY).save(png)
                jobs.append((os.path.relpath(f, corpus), png, i + 1, dpi))
    pool = multiprocessing.get_context("fork").Pool(args.procs)
    pool.map(_warm, range(args.procs * 4))
    load = Load()
    t0 = time.perf_counter()
    results = pool.map(_ocr, jobs, chunksize=1)
    seconds = time.perf_counter() - t0
    pool.close()
    pool.join()
    load = load.done()
    texts = {}
    for path, pno, t in results:
        texts.setdefault(path, {})[pno] = t
    tool = f"pytesseract, {args.procs} processes, {args.images} images"
    images = {"rendered": "PyMuPDF get_pixmap(dpi=300, csGRAY) PNGs, rendered before the clock",
              "native": "each page's embedded image (PyMuPDF Pixmap of its xref) as PNG, saved before the clock"}
    _emit(args, tool, pytesseract.__version__, len(jobs), seconds, load, texts,
          {"tesseract": str(pytesseract.get_tesseract_version()), "lang": "eng", "psm": 3,
           "dpi": sorted({j[3] for j in jobs}), "processes": args.procs,
           "OMP_THREAD_LIMIT": os.environ["OMP_THREAD_LIMIT"], "images": images[args.images]})


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("text", "ocr"):
        p = sub.add_parser(name)
        p.add_argument("--corpus", required=True)
        p.add_argument("--procs", type=int, default=1 if name == "text" else 2)
        p.add_argument("--results", required=True)
        p.add_argument("--texts", required=True)
        if name == "ocr":
            p.add_argument("--png", required=True)
            p.add_argument("--images", choices=["rendered", "native"], default="rendered")
    a = ap.parse_args()
    {"text": text, "ocr": ocr}[a.cmd](a)


if __name__ == "__main__":
    main()
