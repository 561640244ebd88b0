"""The peers of zest's Ray executor in bench/executors.sh: the same trivial work (N `true`
commands in a chain, then N independent ones) given to Ray without zest.

  jobs  ADDRESS N POLL   one Ray job per command through the Jobs REST API (what zest does),
                         polled every POLL seconds; prints the wall time.
  tasks GCS N            one long-lived driver running each command as a Ray task
                         (`subprocess.run` inside a task with one CPU); prints the wall time.

Run with the Python of the Ray venv (infra/scripts/install-test-tools.sh).
"""

import json
import subprocess
import sys
import time
import urllib.request


def _call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def jobs(address, n, poll):
    tag = f"peer-{int(time.time() * 1000)}"
    ids = []

    def submit(i):
        sid = f"{tag}-{i}"
        _call("POST", f"{address}/api/jobs/", {
            "entrypoint": "true", "submission_id": sid, "entrypoint_num_cpus": 1,
        })
        ids.append(sid)
        return sid

    def wait(pending):
        pending = set(pending)
        while pending:
            time.sleep(poll)
            for sid in list(pending):
                st = _call("GET", f"{address}/api/jobs/{sid}")["status"]
                if st in ("SUCCEEDED", "FAILED", "STOPPED"):
                    if st != "SUCCEEDED":
                        raise SystemExit(f"job {sid} {st}")
                    pending.discard(sid)

    t0 = time.monotonic()
    for i in range(n):
        wait([submit(i)])
    wait([submit(n + i) for i in range(n)])
    took = time.monotonic() - t0
    time.sleep(3)  # as zest does: a record deleted at once comes back as FAILED
    for sid in ids:
        try:
            _call("DELETE", f"{address}/api/jobs/{sid}")
        except Exception:  # noqa: BLE001 - best effort
            pass
    return took


def tasks(gcs, n):
    import ray

    ray.init(address=gcs, logging_level="ERROR", log_to_driver=False)

    @ray.remote(num_cpus=1)
    def run():
        return subprocess.run(["true"], check=True).returncode

    ray.get(run.remote())  # the driver's first task starts a worker: not counted
    t0 = time.monotonic()
    for _ in range(n):
        ray.get(run.remote())
    ray.get([run.remote() for _ in range(n)])
    took = time.monotonic() - t0
    ray.shutdown()
    return took


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "jobs":
        print(f"{jobs(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])):.2f}")
    elif mode == "tasks":
        print(f"{tasks(sys.argv[2], int(sys.argv[3])):.2f}")
    else:
        raise SystemExit(__doc__)
