#!/usr/bin/env python3
"""Per-node orchestration overhead of Dagster on a layered no-op DAG.

DAG: LAYERS x WIDTH no-op ops. Node (L, i) for L > 0 depends on exactly one
node, (L-1, i).  Every op does no work.

Configuration (see README.md for the reasoning):
  * one job whose graph has one aliased op invocation per node, run with
    ``JobDefinition.execute_in_process`` -- always the single-process
    ``in_process`` executor.  (A job's *default* executor is
    ``multi_or_in_process_executor``, which runs in multiprocess mode, one
    child process per op, e.g. under ``dagster job execute`` or a daemon
    launch; that would be far slower per node and is not measured);
  * ``--instance ephemeral`` (default, what ``execute_in_process`` uses when
    given no instance): run/event storage in memory.
    ``--instance sqlite``: a real DagsterInstance on a temp DAGSTER_HOME
    (SQLite run/event-log storage), i.e. what a persisted run records;
  * ``--deps data`` (default): each op returns a value that the child takes as
    input (in-memory IO manager).  ``--deps order``: ``In(Nothing)`` ordering
    only, no IO-manager handling;
  * the console logger is set to WARNING so 10k ops do not print ~60k lines.

``--cached``: Dagster has no task/op-level result cache across runs (op
memoization/versioning was removed in 1.x; asset ``code_version`` staleness
only *reports* stale assets, it does not skip work in a run; re-execution
"from failure" needs a failed parent run).  So ``--cached`` prints a line with
``"wall_s": null`` and the reason, and runs nothing.

wall_s = from just before ``execute_in_process`` until it returned (includes
building the execution plan).  Graph/job construction time is printed as
``build_s`` and Python import time as ``import_s``.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=100)
    p.add_argument("--width", type=int, default=100)
    p.add_argument("--cached", action="store_true",
                   help="Dagster has no cross-run op result cache: prints a 'skipped' line")
    p.add_argument("--instance", choices=["ephemeral", "sqlite"], default="ephemeral")
    p.add_argument("--deps", choices=["data", "order"], default="data")
    return p.parse_args()


def main():
    args = parse_args()
    L, W = args.layers, args.width
    N = L * W

    state_dir = tempfile.mkdtemp(prefix="zest-bench-dagster-")
    os.environ["DAGSTER_HOME"] = state_dir
    os.environ["DAGSTER_DISABLE_TELEMETRY"] = "1"
    with open(os.path.join(state_dir, "dagster.yaml"), "w") as f:
        f.write("telemetry:\n  enabled: false\n")
    try:
        t0 = time.perf_counter()
        import dagster
        from dagster import (DagsterInstance, In, Nothing, Out, in_process_executor, job, op)
        import_s = time.perf_counter() - t0

        if args.cached:
            print(json.dumps({
                "tool": "dagster", "version": dagster.__version__, "layers": L, "width": W,
                "nodes": N, "mode": "cached", "wall_s": None, "per_node_ms": None,
                "skipped": "Dagster has no op-level result cache across runs "
                           "(memoization removed; asset staleness does not skip execution)",
            }), flush=True)
            return 0

        t0 = time.perf_counter()
        if args.deps == "data":
            @op
            def src():
                return None

            @op
            def step(upstream):
                return None
        else:
            @op(out=Out(Nothing))
            def src():
                return None

            @op(ins={"upstream": In(Nothing)}, out=Out(Nothing))
            def step():
                return None

        @job(name=f"layered_{L}x{W}", executor_def=in_process_executor)
        def layered():
            prev = [src.alias(f"n_0_{i}")() for i in range(W)]
            for layer in range(1, L):
                prev = [step.alias(f"n_{layer}_{i}")(upstream=prev[i]) for i in range(W)]

        run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        build_s = time.perf_counter() - t0

        instance = None
        if args.instance == "sqlite":
            instance = DagsterInstance.get()  # sqlite storage under the temp DAGSTER_HOME

        t0 = time.perf_counter()
        result = layered.execute_in_process(run_config=run_config, instance=instance,
                                            raise_on_error=False)
        wall_s = time.perf_counter() - t0

        succeeded = sum(1 for e in result.all_events if e.event_type_value == "STEP_SUCCESS")
        ok = bool(result.success) and succeeded == N
        print(json.dumps({
            "tool": "dagster",
            "version": dagster.__version__,
            "layers": L,
            "width": W,
            "nodes": N,
            "mode": "first",
            "wall_s": round(wall_s, 4),
            "per_node_ms": round(wall_s * 1000.0 / N, 4),
            "import_s": round(import_s, 4),
            "build_s": round(build_s, 4),
            "config": f"execute_in_process,in_process_executor,instance={args.instance},deps={args.deps}",
            "steps_succeeded": succeeded,
            "ok": ok,
        }), flush=True)
        if instance is not None:
            instance.dispose()
        return 0 if ok else 1
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
