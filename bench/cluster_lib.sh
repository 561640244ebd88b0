# Sourced by the benchmarks that start local services (bench/executors.sh, bench/sharded.sh,
# bench/demo_on_ray.sh) after they set `repo`: finds the release `zest` (or $ZEST), makes a
# scratch directory, loads infra/scripts/test-services.sh, and on exit stops whatever of Ray
# (head, GPU node) and SeaweedFS was started under "$scratch/services" and removes the scratch.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zest/target}"
zest="${ZEST:-$CARGO_TARGET_DIR/release/zest}"
[ -x "$zest" ] || { echo "build first: make build (or set ZEST)" >&2; exit 1; }
scratch="$(mktemp -d)"
# shellcheck source=/dev/null
source "$repo/infra/scripts/test-services.sh"
cleanup() {
    local s
    for s in ray-gpu ray-head seaweed; do
        stop_service "$scratch/services" "$s" >/dev/null 2>&1 || true
    done
    rm -rf "$scratch"
}
trap cleanup EXIT
