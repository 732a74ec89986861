"""What a pass's Heat-agent bookkeeping costs on a store with a round trip.

``python -m bench.heat_agents [SERVERS] [MS]`` enrols SERVERS servers (default
200) as running Heat's agent on an in-memory store answering each request
after MS milliseconds (default 20, as S3 or Swift), then times the two steps a
pass takes for them, ``publish_metadata`` (each server's first metadata
document) and ``sync_reports`` (each server's first report), with a store pool
of one worker (one request after the other) and of the default size. Prints
one line of JSON per pool size.
"""

from __future__ import annotations

import json
import sys
import time

from bench.latency import LatencyStore, fixed
from setpoint.controller import logs
from setpoint.controller.converge import heat_agent
from setpoint.controller.rollout.desired import DesiredState
from setpoint.store.memory import MemoryStore
from setpoint.store.pool import DEFAULT_WORKERS

NOW = 1_700_000_000.0


def measure(servers: int, latency: float, workers: int) -> dict[str, object]:
    store = LatencyStore(MemoryStore(f"heat-{workers}"), fixed(latency), workers=workers)
    names = [f"h{i:05d}" for i in range(servers)]
    desired = DesiredState(commit="bench")
    start = time.perf_counter()
    written = heat_agent.publish_metadata(store, desired, names, NOW)
    metadata = time.perf_counter() - start
    start = time.perf_counter()
    reported = heat_agent.sync_reports(store, names, {}, NOW)
    reports = time.perf_counter() - start
    assert len(written) == len(reported) == servers
    return {
        "servers": servers,
        "latency_ms": latency * 1000,
        "workers": workers,
        "publish_metadata_s": round(metadata, 3),
        "sync_reports_s": round(reports, 3),
        "requests": store.stats.http,
    }


def main(argv: list[str]) -> int:
    servers = int(argv[0]) if argv else 200
    latency = float(argv[1]) / 1000 if len(argv) > 1 else 0.02
    logs.configure("warning", "console")  # one line per pool size, not one per server
    for workers in (1, DEFAULT_WORKERS):
        print(json.dumps(measure(servers, latency, workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
