"""``python -m bench.dashboard``: how fast ``setpoint serve`` shows a large fleet.

A memory store is filled as a controller and its agents leave it mid-rollout:
``--servers`` servers (10,000), each with ``--deployments`` deployments (10);
two deployments roll out (batch 3 of 10, the rest waiting on pause_time), and
some pairs run, failed, are quarantined, or have an unreachable agent. The
dashboard (``create_app``) is then served by uvicorn on 127.0.0.1 and each
page is fetched over HTTP:

- the first overview reads the fleet (what one reconcile pass reads: every
  pointer, manifest and report) and renders it;
- later requests share that snapshot and the counts made from it, so they
  time the page itself: the template, and the paged lists.

The read and the overview's counts (one walk over every pair) are also timed
on their own, in process.

Each figure is the median of ``--runs`` requests.

Then, served with ``--refresh`` seconds between reads of the fleet, the
overview is fetched ``--refresh`` seconds after the previous fetch, ``--runs``
times: the request that used to find the snapshot old and read the fleet
itself. The fleet is read in the background now, so it answers from the last
snapshot, sometimes while a read is in flight (sharing the interpreter with
it). The median and the slowest of these are printed.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from setpoint.controller.cli.serve import listen
from setpoint.controller.dashboard.app import create_app
from setpoint.controller.dashboard.metrics import fleet_metrics
from setpoint.controller.dashboard.overview import overview
from setpoint.controller.dashboard.snapshot import Snapshot, read_snapshot
from setpoint.controller.rollout.ledger import Ledger, Rollout, write_ledger
from setpoint.store.base import Store
from setpoint.store.documents import DeploymentReport, Manifest, ManifestEntry, Pointer, Report
from setpoint.store.memory import MemoryStore
from setpoint.store.timestamps import format_timestamp

COMMIT = "c0ffee" + "0" * 34
ROLLING = 2  # deployments with a rollout in flight


def config(name: str, version: int) -> dict[str, object]:
    return {
        "name": name,
        "group": "script",
        "config": {"configs": [{"actions": ["CREATE"], "tool": "script", "config": "#!/bin/sh\n"}]},
        "inputs": [{"name": "version", "type": "String", "value": str(version)}],
        "outputs": [],
        "options": {},
        "files": {},
    }


def _state(i: int, d: int, rolled: bool) -> tuple[str, bool]:
    """The status of deployment ``d`` on server ``i`` and whether its config is
    the new one: a mix of the states a large fleet shows mid-rollout."""
    if i % 97 == 0 and d == 0:
        return "FAILED", True
    if i % 211 == 0:
        return "IN_PROGRESS", True
    return "COMPLETE", rolled


def fill(store: Store, servers: int, deployments: int) -> None:
    now = time.time()
    names = [f"stack{d % 5}/dep{d:02d}" for d in range(deployments)]
    old = {n: store.put_json_blob(config(n, 1)) for n in names}
    new = {n: store.put_json_blob(config(n, 2)) for n in names}
    waiting_from = servers * 3 // 10  # batches 1-3 of 10 went out
    ledger = Ledger()
    for n in names[:ROLLING]:
        rollout = ledger.rollouts[n] = Rollout(n, COMMIT, batches=3)
        done = [f"node-{i:05d}" for i in range(waiting_from)]
        rollout.started = dict.fromkeys(done, now - 600)
        rollout.targets = dict.fromkeys(done, new[n])
        rollout.progress = {
            "batch": 3,
            "batches": 10,
            "done": done,
            "in_progress": [],
            "failed": {},
            "waiting": [f"node-{i:05d}" for i in range(waiting_from, servers)],
        }
        for i in range(waiting_from, servers):
            ledger.waiting.append(
                {"deployment": n, "server": f"node-{i:05d}", "reason": "pause_time"}
            )
    manifests: dict[bool, str] = {}
    for rolled in (False, True):
        entries = tuple(
            ManifestEntry(n, new[n] if rolled and k < ROLLING else old[n], ("CREATE",), 60.0)
            for k, n in enumerate(names)
        )
        manifests[rolled] = store.put_json_blob(Manifest(entries).to_dict())
    stamp = format_timestamp(now - 30)
    for i in range(servers):
        server = f"node-{i:05d}"
        rolled = i < waiting_from
        pointer = Pointer(server, 2 if rolled else 1, manifests[rolled], COMMIT, stamp)
        store.write_pointer(pointer, None)
        got = {}
        for k, n in enumerate(names):
            status, is_new = _state(i, k, rolled and k < ROLLING)
            digest = new[n] if is_new and k < ROLLING else old[n]
            got[n] = DeploymentReport(n, digest, "UPDATE", status, final=status != "IN_PROGRESS")
            if status == "FAILED" and i % 2 == 0:
                ledger.quarantine_add(n, server, digest, "failed")
        beats = 10.0 if i % 499 == 0 else None  # these stopped beating 20 minutes ago
        updated = format_timestamp(now - 1200) if beats else stamp
        store.write_report(
            Report(server, pointer.generation, pointer.manifest, updated, got, heartbeat=beats)
        )
    write_ledger(store, ledger)


@contextmanager
def serving(store: Store, refresh: float) -> Iterator[str]:
    app = create_app(store, refresh=refresh, metrics=fleet_metrics(store))
    sock = listen("127.0.0.1", 0)
    # As ``setpoint serve`` runs it: lifespan events start and stop the background read.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def fetch(url: str) -> tuple[float, int]:
    """Seconds to fetch ``url`` whole, and its size in bytes."""
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
        assert response.status == 200, url
    return time.perf_counter() - start, len(body)


PAGES = (
    ("overview", "/"),
    ("servers, page 1", "/servers"),
    ("servers in trouble, page 1", "/servers?state=trouble"),
    ("a server", "/servers/node-00097"),
    ("a rolling deployment, page 1", "/deployments/stack0/dep00"),
    ("/metrics", "/metrics"),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--refresh", type=float, default=3.0, help="seconds between reads (3)")
    args = parser.parse_args(argv)
    store = MemoryStore("bench-dashboard")
    start = time.perf_counter()
    fill(store, args.servers, args.deployments)
    filled = time.perf_counter() - start
    pairs = args.servers * args.deployments
    print(f"fleet: {args.servers:,} servers x {args.deployments} deployments ({pairs:,} pairs), "
          f"memory store filled in {filled:.1f} s")  # fmt: skip
    start = time.perf_counter()
    snapshot = read_snapshot(store, time.time())
    read = time.perf_counter() - start
    print(f"{'read the fleet (what one pass reads)':<48} {read * 1000:8.1f} ms")
    counts = []
    for _ in range(args.runs):
        fresh = Snapshot(snapshot.statuses, snapshot.ledger, snapshot.read_at)
        start = time.perf_counter()
        overview(fresh)
        counts.append(time.perf_counter() - start)
    label = f"overview counts of {pairs:,} pairs (median)"
    print(f"{label:<48} {statistics.median(counts) * 1000:8.1f} ms")
    with serving(store, refresh=3600.0) as base:
        first, size = fetch(base + "/")
        label = "overview, first (reads the fleet, then renders)"
        print(f"{label:<48} {first * 1000:8.1f} ms  {size / 1024:7.0f} KB")
        for label, path in PAGES:
            times = []
            for _ in range(args.runs):
                took, size = fetch(base + path)
                times.append(took)
            median = statistics.median(times)
            print(f"{label + ' (median)':<48} {median * 1000:8.1f} ms  {size / 1024:7.0f} KB")
    after_refresh(store, args.refresh, args.runs)


def after_refresh(store: Store, refresh: float, runs: int) -> None:
    """The overview fetched ``refresh`` seconds after the previous fetch, ``runs`` times."""
    with serving(store, refresh=refresh) as base:
        fetch(base + "/")  # the first read, which every request waits for
        times = []
        for _ in range(runs):
            time.sleep(refresh)
            took, _size = fetch(base + "/")
            times.append(took)
    label = f"overview {refresh:g} s after the last (median)"
    print(f"{label:<48} {statistics.median(times) * 1000:8.1f} ms")
    label = f"overview {refresh:g} s after the last (slowest)"
    print(f"{label:<48} {max(times) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
