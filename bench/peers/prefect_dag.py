#!/usr/bin/env python3
"""Per-node orchestration overhead of Prefect 3 on a layered no-op DAG.

DAG: LAYERS x WIDTH no-op tasks. Node (L, i) for L > 0 depends on exactly one
node, (L-1, i).  Every task does no work.

Configuration (see README.md for the reasoning):
  * one flow, all tasks submitted with ``Task.submit`` to a bounded
    ``ThreadPoolTaskRunner`` (``--workers``, default 16);
  * the API is Prefect's local *ephemeral* server (a subprocess uvicorn server
    on 127.0.0.1 backed by SQLite in a temp PREFECT_HOME).  Prefect 3 has no
    server-less mode: with no PREFECT_API_URL and ephemeral mode off it
    refuses to run.  The server is started *before* the timer starts and its
    start-up time is printed as ``server_start_s``;
  * ``--deps data`` (default): the upstream future is passed as an argument
    (its result flows to the child, and the INPUTS cache key chains through
    the DAG).  ``--deps order``: ``wait_for=[upstream]`` only;
  * console/API logging at WARNING (PREFECT_LOGGING_LEVEL), otherwise every
    task run writes an INFO line to the console and to the API.

Modes:
  * default            -> mode "first": no result persistence, NO_CACHE.
  * ``--cached``       -> runs two child processes sharing one temp
    PREFECT_HOME: (1) a populate run with ``cache_policy=INPUTS + TASK_SOURCE``
    and ``persist_result=True`` (printed as mode "first", config
    "persist"), then (2) a fresh process re-running the same flow, where
    every task must come back in state "Cached" (mode "cached").

wall_s = from just before calling the flow until it returned *and* the
client-side event/log queues were drained to the server (flow_return_s is
printed as well).  settled_s = until the server had recorded every task run
as COMPLETED (it ingests task-run state events asynchronously), polled every
0.25 s, bounded by --settle-timeout and by --settle-stall (no progress for
that long; the ephemeral server drops events under load, see README).  Python import time is printed separately (import_s).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=100)
    p.add_argument("--width", type=int, default=100)
    p.add_argument("--cached", action="store_true",
                   help="populate a persisted INPUTS+TASK_SOURCE cache, then time a fully cached rerun")
    p.add_argument("--workers", type=int, default=16,
                   help="ThreadPoolTaskRunner max_workers (default 16)")
    p.add_argument("--deps", choices=["data", "order"], default="data")
    p.add_argument("--log-level", default="WARNING")
    p.add_argument("--settle-timeout", type=float, default=900.0,
                   help="max seconds to wait for the server to record all task runs")
    p.add_argument("--settle-stall", type=float, default=60.0,
                   help="stop waiting once the recorded count has not grown for this many seconds")
    # internal: used by --cached to run each phase in its own process
    p.add_argument("--phase", choices=["first", "populate", "cached"], default=None,
                   help=argparse.SUPPRESS)
    p.add_argument("--state-dir", default=None, help=argparse.SUPPRESS)
    return p.parse_args()


def run_phase(args, phase, state_dir):
    # All Prefect state lives in the temp dir: settings must be set before import.
    os.environ["PREFECT_HOME"] = state_dir
    os.environ["PREFECT_PROFILES_PATH"] = os.path.join(state_dir, "profiles.toml")
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "true"
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["PREFECT_LOGGING_LEVEL"] = args.log_level
    os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = os.path.join(state_dir, "storage")

    t0 = time.perf_counter()
    import prefect
    from prefect import flow, task
    from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (TaskRunFilter, TaskRunFilterFlowRunId,
                                                TaskRunFilterState, TaskRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.futures import wait
    from prefect.task_runners import ThreadPoolTaskRunner
    import_s = time.perf_counter() - t0

    L, W = args.layers, args.width
    N = L * W

    def noop(layer: int, idx: int, upstream=None):
        return None

    if phase == "first":
        node = task(noop, name="noop", cache_policy=NO_CACHE, persist_result=False)
        config = "no-cache"
    else:
        node = task(noop, name="noop", cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
        config = "persist"

    @flow(name=f"layered-{L}x{W}", task_runner=ThreadPoolTaskRunner(max_workers=args.workers),
          persist_result=False, log_prints=False, validate_parameters=False)
    def layered():
        futs = []
        prev = [node.submit(0, i) for i in range(W)]
        futs.extend(prev)
        for layer in range(1, L):
            if args.deps == "data":
                cur = [node.submit(layer, i, prev[i]) for i in range(W)]
            else:
                cur = [node.submit(layer, i, wait_for=[prev[i]]) for i in range(W)]
            futs.extend(cur)
            prev = cur
        wait(futs)
        states = {}
        for f in futs:
            st = f.state
            states[st.name] = states.get(st.name, 0) + 1
        return states

    # Start the ephemeral API server outside the timed region.
    t0 = time.perf_counter()
    with get_client(sync_client=True) as client:
        client.api_healthcheck()
    server_start_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    flow_state = layered(return_state=True)
    flow_return_s = time.perf_counter() - t0
    # Flush client-side queues (task-run state events, logs) to the server.
    try:
        from prefect.events.worker import EventsWorker
        EventsWorker.drain_all(timeout=600)
    except Exception as e:  # pragma: no cover - best effort across versions
        print(f"warning: could not drain events: {e!r}", file=sys.stderr)
    try:
        from prefect.logging.handlers import APILogWorker
        APILogWorker.drain_all(timeout=600)
    except Exception as e:  # pragma: no cover
        print(f"warning: could not drain logs: {e!r}", file=sys.stderr)
    wall_s = time.perf_counter() - t0
    states = flow_state.result()

    # Prefect 3 orchestrates task runs client-side and ships their states to
    # the server as events; the server's task-run recorder persists them
    # asynchronously.  Poll (bounded) until every task run is recorded in a
    # terminal COMPLETED state: settled_s is "durable in the server DB".
    settled_s = None
    body = {"task_runs": TaskRunFilter(
        flow_run_id=TaskRunFilterFlowRunId(any_=[flow_state.state_details.flow_run_id]),
        state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.COMPLETED])),
    ).model_dump(mode="json", exclude_unset=True)}
    recorded = 0
    settle_note = None
    with get_client(sync_client=True) as client:
        deadline = time.perf_counter() + args.settle_timeout
        last_change, last = time.perf_counter(), -1
        while True:
            r = client._client.post("/task_runs/count", json=body)
            r.raise_for_status()
            recorded = int(r.json())
            now = time.perf_counter()
            if recorded >= N:
                settled_s = now - t0
                break
            if recorded != last:
                last_change, last = now, recorded
            if now - last_change > args.settle_stall:
                # The ephemeral server's in-memory broker drops events when a
                # subscriber queue (10,000 messages) is full; those task runs
                # are never recorded, so stop once progress has stalled.
                settle_note = f"stalled at {recorded}/{N} for {args.settle_stall:g}s"
                break
            if now > deadline:
                settle_note = f"timeout at {recorded}/{N}"
                break
            time.sleep(0.25)

    want = "Cached" if phase == "cached" else "Completed"
    ok = states.get(want, 0) == N and sum(states.values()) == N
    out = {
        "tool": "prefect",
        "version": prefect.__version__,
        "layers": L,
        "width": W,
        "nodes": N,
        "mode": "cached" if phase == "cached" else "first",
        "wall_s": round(wall_s, 4),
        "per_node_ms": round(wall_s * 1000.0 / N, 4),
        "flow_return_s": round(flow_return_s, 4),
        "settled_s": None if settled_s is None else round(settled_s, 4),
        "recorded_task_runs": recorded,
        "settle_note": settle_note,
        "import_s": round(import_s, 4),
        "server_start_s": round(server_start_s, 4),
        "config": f"{config},deps={args.deps},workers={args.workers},ephemeral-server",
        "states": states,
        "ok": ok,
    }
    print(json.dumps(out), flush=True)
    return 0 if ok else 1


def main():
    args = parse_args()
    if args.phase is not None:
        return run_phase(args, args.phase, args.state_dir)

    state_dir = tempfile.mkdtemp(prefix="zest-bench-prefect-")
    try:
        if not args.cached:
            return run_phase(args, "first", state_dir)
        # Each phase in its own process: the rerun shares nothing with the
        # populate run except PREFECT_HOME (DB + result storage) on disk.
        base = [sys.executable, os.path.abspath(__file__),
                "--layers", str(args.layers), "--width", str(args.width),
                "--workers", str(args.workers), "--deps", args.deps,
                "--log-level", args.log_level, "--settle-timeout", str(args.settle_timeout),
                "--settle-stall", str(args.settle_stall),
                "--state-dir", state_dir]
        rc = 0
        for phase in ("populate", "cached"):
            r = subprocess.run(base + ["--phase", phase])
            rc = rc or r.returncode
            if r.returncode != 0:
                break
        return rc
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
