#!/usr/bin/env bash
# The compiler's property test (engine/tests/compile_fuzz.rs) run long: mutated DAG files,
# random bytes and random text through `compile_source`, checking that nothing panics or
# aborts, that every diagnostic has a position, that rendering stays bounded and that peak RSS
# stays under 1 GiB. Builds only the engine crate, in release. Prints the seed, cases/s, peak
# RSS and the slowest cases; a failure prints the case and how to rerun it.
#
# Usage: bash bench/compile_fuzz.sh                      300 s, a fresh seed
#        ZEST_FUZZ_SECS=3600 bash bench/compile_fuzz.sh  an hour
#        ZEST_FUZZ_SEED=42 ZEST_FUZZ_CASE=1234 bash bench/compile_fuzz.sh   one case again
set -euo pipefail
cd "$(dirname "$0")/.."
export ZEST_FUZZ_SECS="${ZEST_FUZZ_SECS:-300}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zest/target}"
cargo test --release -p zest-engine --test compile_fuzz -- --nocapture 2>&1 |
  grep -v '^\s*$' | grep -E 'compile_fuzz|test result|panicked|rerun|input:|overrides:|overflow|abort'
