#!/usr/bin/env bash
# Install the Python environment zest's model code builds and tests against:
#   libtorch from the `torch` wheel (linked by tch with LIBTORCH_USE_PYTORCH=1), and
#   transformers + TRL for the parity tests and benchmarks.
# Everything comes from PyPI (infra/python/torch-requirements.txt). The Linux wheel of torch is
# the CUDA build: it brings NVIDIA's runtime libraries (about 4 GiB installed) and runs on the
# CPU where there is no GPU.
#
# Idempotent: skipped when the venv already holds the pinned torch.
# Env:
#   ZEST_TORCH_VENV   the venv (default: $HOME/.cache/zest-py/torch-venv)
set -euo pipefail

here="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${ZEST_TORCH_VENV:-$HOME/.cache/zest-py/torch-venv}"
REQS="$here/infra/python/torch-requirements.txt"
log() { printf '[install-torch] %s\n' "$*" >&2; }

want_torch="$(sed -n 's/^torch==//p' "$REQS")"
stamp="$VENV/.zest-requirements.sha256"
sum="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
    log "torch $want_torch environment already installed: $VENV"
    exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
fi
log "installing $(grep -cv '^#' "$REQS") pinned packages (torch $want_torch with its CUDA runtime wheels; a few minutes)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
got="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"
[[ "$got" == "$want_torch" ]] || { log "expected torch $want_torch, found $got"; exit 1; }
echo "$sum" > "$stamp"
log "done: torch $got in $VENV"
