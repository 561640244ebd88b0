#!/usr/bin/env bash
# Installs what building zest needs on a Debian machine, skipping what is already there:
# a C toolchain (for crates with C parts), Tesseract OCR (run time) and a Rust toolchain (rustup is not fetched here:
# zest builds with the cargo on PATH, Rust 1.85 or newer).
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# OCR for ingest.pdf: Tesseract 5 with English, Simplified Chinese and script detection.
[ -e /usr/lib/x86_64-linux-gnu/libtesseract.so.5 ] || ldconfig -p 2>/dev/null | grep -q 'libtesseract.so.5 ' || need_apt+=(tesseract-ocr)
for lang in eng chi-sim osd; do
  dpkg -s "tesseract-ocr-$lang" >/dev/null 2>&1 || need_apt+=("tesseract-ocr-$lang")
done

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "cargo is in \$HOME/.cargo/bin but not on PATH: run 'export PATH=\$HOME/.cargo/bin:\$PATH'" >&2
  else
    echo "cargo not found: install Rust 1.85 or newer (Debian: apt-get install cargo, or rustup)" >&2
  fi
  exit 1
fi
