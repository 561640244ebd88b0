#!/usr/bin/env bash
# Training-step and generation tokens/s of a ~10M-parameter Llama (vocab 8192, hidden 256,
# 8 layers, 8 heads / 4 KV heads) on CPU: zest's kernels (kernels/torch/examples/model_bench.rs)
# against PyTorch + transformers (bench/model_pytorch.py), same libtorch, same thread count,
# alternating, ROUNDS times each. Training: batch 8 x 256 tokens, loss, backward, clipping,
# AdamW. Generation: 4 prompts of 16 tokens, 128 new tokens each, greedy, KV cache.
# Prints one JSON line per run.
# Usage: bash bench/model.sh [THREADS]   (ROUNDS=3, TRAIN_STEPS=10, GEN_ROUNDS=3)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
THREADS="${1:-2}"
ROUNDS="${ROUNDS:-3}"
TRAIN_STEPS="${TRAIN_STEPS:-10}"
GEN_ROUNDS="${GEN_ROUNDS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zest/target}"
VENV="${ZEST_TORCH_VENV:-$HOME/.cache/zest-py/torch-venv}"
bash "$repo/infra/scripts/install-torch.sh"
export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" LIBTORCH_USE_PYTORCH=1
cargo build --release -q -p zest-kernels-torch --example model_bench >&2
zest="$CARGO_TARGET_DIR/release/examples/model_bench"
for _ in $(seq "$ROUNDS"); do
  "$zest" train "$THREADS" "$TRAIN_STEPS"
  "$VENV/bin/python" "$here/model_pytorch.py" train "$THREADS" "$TRAIN_STEPS"
  "$zest" generate "$THREADS" "$GEN_ROUNDS"
  "$VENV/bin/python" "$here/model_pytorch.py" generate "$THREADS" "$GEN_ROUNDS"
done
