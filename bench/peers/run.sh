#!/usr/bin/env bash
# Peer benchmark: per-node orchestration overhead of Prefect 3 and Dagster on
# the layered no-op DAG (LAYERS x WIDTH, node (L,i) depends on (L-1,i)).
#
#   bench/peers/run.sh                      # 100 x 100 = 10,000 nodes
#   LAYERS=10 WIDTH=10 bench/peers/run.sh   # quick smoke run
#
# Env:
#   BENCH_VENV     venv to create/reuse (default $HOME/.cache/zest-bench/venv)
#   PYTHON         interpreter for creating the venv (default python3.11, else python3)
#   LAYERS, WIDTH  DAG size (default 100, 100)
#   TOOLS          subset of "prefect dagster" (default both)
#   PREFECT_ARGS   extra args for prefect_dag.py (e.g. "--workers 8 --deps order")
#   DAGSTER_ARGS   extra args for dagster_dag.py (e.g. "--instance sqlite")
#   NICE           niceness for the benchmark processes (default 0)
#
# Prints one JSON line per measurement on stdout; tool chatter goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${BENCH_VENV:-$HOME/.cache/zest-bench/venv}"
LAYERS="${LAYERS:-100}"
WIDTH="${WIDTH:-100}"
TOOLS="${TOOLS:-prefect dagster}"
NICE="${NICE:-0}"
PREFECT_ARGS="${PREFECT_ARGS:-}"
DAGSTER_ARGS="${DAGSTER_ARGS:-}"

if [[ -z "${PYTHON:-}" ]]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating venv at $VENV with $PYTHON" >&2
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi

# Install only when requirements.txt changed since the last successful install.
REQ="$HERE/requirements.txt"
STAMP="$VENV/.zest-bench-requirements"
if ! cmp -s "$REQ" "$STAMP"; then
  echo "installing $REQ into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >&2
  cp "$REQ" "$STAMP"
fi

PY=(nice -n "$NICE" "$VENV/bin/python")
SIZE=(--layers "$LAYERS" --width "$WIDTH")
rc=0
for tool in $TOOLS; do
  case "$tool" in
    prefect)
      # (a) first run, no caching; (b) populate a persisted cache, then a fully cached rerun
      # shellcheck disable=SC2086
      "${PY[@]}" "$HERE/prefect_dag.py" "${SIZE[@]}" $PREFECT_ARGS || rc=1
      # shellcheck disable=SC2086
      "${PY[@]}" "$HERE/prefect_dag.py" "${SIZE[@]}" --cached $PREFECT_ARGS || rc=1
      ;;
    dagster)
      # (a) first run; (b) Dagster has no cross-run op cache: prints a 'skipped' line
      # shellcheck disable=SC2086
      "${PY[@]}" "$HERE/dagster_dag.py" "${SIZE[@]}" $DAGSTER_ARGS || rc=1
      "${PY[@]}" "$HERE/dagster_dag.py" "${SIZE[@]}" --cached || rc=1
      ;;
    *)
      echo "unknown tool: $tool" >&2; rc=2 ;;
  esac
done
exit "$rc"
