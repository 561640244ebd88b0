#!/usr/bin/env bash
# PDF text layer and OCR: zest's `ingest.pdf` against PyMuPDF (`page.get_text()`, in one process
# and in a pool of PROCS processes) and pytesseract (a pool of PROCS processes, one page a task),
# on a generated corpus (bench/pdf_corpus.py, built with the fixtures of tests/py/make_pdfs.py):
# FILES x PAGES born-digital pages and two scanned English PDFs of SCAN_PAGES pages each, drawn
# at 300 and at 200 dpi. Both sides use the same Tesseract (the system's libtesseract /
# `tesseract` CLI), `eng`, page segmentation mode 3 and OMP_THREAD_LIMIT=1. zest runs with its
# defaults (each scan read from its own image at its own dpi) and with `dpi: 300` (every page
# rendered at 300 dpi and binarised, its behaviour before); pytesseract reads PyMuPDF's 300-dpi
# renderings (PNG) and, separately, each page's embedded image as PNG at its own dpi. zest's OCR
# time includes opening the PDFs and getting the images with PDFium; pytesseract's starts after
# its PNGs were written.
# Each round runs every tool once, in fresh directories with --no-cache; before each measurement
# the script waits for no compiler to be running (QUIET_WAIT seconds of waiting in all, then it
# measures anyway; the load seen during each run is reported). Prints one JSON line
# per tool (median of ROUNDS, every sample, mean and max character error rate against the known
# text, the other work seen on the machine during each run) and a table.
#
# Usage: bash bench/pdf.sh
# Settings: FILES=10 PAGES=50 (text-layer files x pages each), SCAN_PAGES=12, ROUNDS=3, PROCS=2,
# PARAS=3 (paragraphs a page), QUIET_WAIT=600, TEXT=1 OCR=1 (0 skips a bench), KEEP=1 (keep the
# scratch directory, printed on stderr), BENCH_VENV (the Python side), ZEST (the binary; default
# the release build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
FILES="${FILES:-10}"
PAGES="${PAGES:-50}"
SCAN_PAGES="${SCAN_PAGES:-12}"
ROUNDS="${ROUNDS:-3}"
PROCS="${PROCS:-2}"
PARAS="${PARAS:-3}"
QUIET_WAIT="${QUIET_WAIT:-600}"
TEXT="${TEXT:-1}"
OCR="${OCR:-1}"
VENV="${BENCH_VENV:-$HOME/.cache/zest-bench/pdf-venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zest/target}"
zest="${ZEST:-$CARGO_TARGET_DIR/release/zest}"
[ -x "$zest" ] || { echo "build first: make build (or set ZEST)" >&2; exit 1; }
[ -f "$HOME/.cache/zest-tools/pdfium/libpdfium.so" ] || { echo "PDFium missing: bash infra/scripts/install-pdfium.sh" >&2; exit 1; }
command -v tesseract >/dev/null || { echo "tesseract missing (Debian: tesseract-ocr tesseract-ocr-eng libtesseract5)" >&2; exit 1; }
cores="$(getconf _NPROCESSORS_ONLN)"  # before OMP_THREAD_LIMIT, which nproc obeys
export OMP_THREAD_LIMIT=1

# The peers, the corpus builder's reportlab and Pillow, and pyarrow to read zest's output.
reqs="pymupdf==2.0 pytesseract==0.3.13 pillow==13.0.0 reportlab==5.1.0 pyarrow==26.0.1"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if [ "$(cat "$VENV/.pdf-requirements" 2>/dev/null)" != "$reqs" ]; then
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $reqs >&2
  echo "$reqs" > "$VENV/.pdf-requirements"
fi
py="$VENV/bin/python"

scratch="$(mktemp -d)"
if [ "${KEEP:-0}" = "1" ]; then
  echo "scratch: $scratch" >&2
else
  trap 'rm -rf "$scratch"' EXIT
fi
corpus="$scratch/corpus"
results="$scratch/results.jsonl"
"$py" "$here/pdf_corpus.py" gen "$corpus" --files "$FILES" --pages "$PAGES" --scan-pages "$SCAN_PAGES" \
  --paras "$PARAS"
echo "machine: $cores cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; $(uptime)" >&2

# One binary for the whole run, even if the build directory is rebuilt meanwhile.
echo "zest: $zest ($(stat -c '%y, %s bytes' "$zest"))" >&2
cp "$zest" "$scratch/zest"
zest="$scratch/zest"
deadline=$(( $(date +%s) + QUIET_WAIT ))
quiet() { "$py" "$here/pdf_corpus.py" quiet --until "$deadline"; }
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  if [ "$TEXT" = "1" ]; then
    quiet
    "$py" "$here/pdf_corpus.py" zest --zest "$zest" --dir "$scratch/zest-text-$round" --bench text \
      --corpus "$corpus" --results "$results"
    quiet
    "$py" "$here/pdf_peers.py" text --corpus "$corpus" --procs 1 --results "$results" --texts "$scratch/texts"
    quiet
    "$py" "$here/pdf_peers.py" text --corpus "$corpus" --procs "$PROCS" --results "$results" --texts "$scratch/texts"
  fi
  if [ "$OCR" = "1" ] && [ "$SCAN_PAGES" -gt 0 ]; then
    quiet
    "$py" "$here/pdf_corpus.py" zest --zest "$zest" --dir "$scratch/zest-ocr-native-$round" --bench ocr \
      --corpus "$corpus" --results "$results"
    quiet
    "$py" "$here/pdf_corpus.py" zest --zest "$zest" --dir "$scratch/zest-ocr-300-$round" --bench ocr \
      --dpi 300 --corpus "$corpus" --results "$results"
    quiet
    "$py" "$here/pdf_peers.py" ocr --corpus "$corpus" --procs "$PROCS" --results "$results" \
      --texts "$scratch/texts" --png "$scratch/png" --images rendered
    quiet
    "$py" "$here/pdf_peers.py" ocr --corpus "$corpus" --procs "$PROCS" --results "$results" \
      --texts "$scratch/texts" --png "$scratch/png" --images native
  fi
done
"$py" "$here/pdf_corpus.py" report --corpus "$corpus" --results "$results"
