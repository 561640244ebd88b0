#!/usr/bin/env bash
# Installs PDFium (BSD-3-Clause / Apache-2.0), the PDF library `ingest.pdf` loads at run time:
# libpdfium.so from the pinned `pypdfium2` wheel on PyPI, unpacked (not installed) into
# $ZEST_TOOLS_DIR/pdfium with its licence files. `make build` also copies it next to the
# zest binary, where zest looks first. Idempotent.
set -euo pipefail

ZEST_TOOLS_DIR="${ZEST_TOOLS_DIR:-$HOME/.cache/zest-tools}"
PYPDFIUM2_VERSION="${PYPDFIUM2_VERSION:-5.15.2}"
DEST="$ZEST_TOOLS_DIR/pdfium"
STAMP="$DEST/.version"

if [[ -f "$DEST/libpdfium.so" && "$(cat "$STAMP" 2>/dev/null)" == "$PYPDFIUM2_VERSION" ]]; then
    echo "pdfium already installed: $DEST/libpdfium.so (pypdfium2 $PYPDFIUM2_VERSION)" >&2
    exit 0
fi
# Any Python with pip will do (under make, PATH starts with the torch venv's).
PY="${PYTHON:-python3}"
if ! "$PY" -m pip --version >/dev/null 2>&1; then
    PY="${ZEST_TORCH_VENV:-$HOME/.cache/zest-py/torch-venv}/bin/python"
fi
"$PY" -m pip --version >/dev/null 2>&1 || { echo "install-pdfium: no Python with pip (run make torch first)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --platform manylinux_2_17_x86_64 \
    "pypdfium2==$PYPDFIUM2_VERSION" -d "$tmp"
wheel="$(ls "$tmp"/pypdfium2-*.whl)"
mkdir -p "$DEST"
"$PY" - "$wheel" "$DEST" <<'PY'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        name = pathlib.PurePosixPath(n)
        if n == "pypdfium2_raw/libpdfium.so":
            (dest / "libpdfium.so").write_bytes(z.read(n))
        elif ".dist-info/licenses/" in n and not n.endswith("/"):
            out = dest / "licenses" / name.name
            out.parent.mkdir(exist_ok=True)
            out.write_bytes(z.read(n))
PY
echo "$PYPDFIUM2_VERSION" > "$STAMP"
echo "installed $DEST/libpdfium.so (pypdfium2 $PYPDFIUM2_VERSION)" >&2
