"""``/metrics`` of a large fleet: the cost of one exposition from a pass's data.

``python -m bench.metrics [--servers N] [--deployments D] [--runs R]`` builds
the data one reconcile pass hands on (pointers, manifests, reports, a ledger
with a halted rollout and a quarantine) for N servers with D deployments each,
in memory, then times ``exposition(store, outcome)``: counting the fleet and
writing the text, as a daemon does at each scrape after a pass. Also timed:
deriving the pass's notification events. Prints JSON; figures are medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from setpoint.controller.converge.publish import PublishResult
from setpoint.controller.converge.reconcile import PassOutcome
from setpoint.controller.observe.events import pass_events
from setpoint.controller.observe.metrics import exposition
from setpoint.controller.rollout.desired import DesiredState
from setpoint.controller.rollout.ledger import Ledger, Rollout
from setpoint.store.digest import digest_bytes
from setpoint.store.documents import DeploymentReport, Manifest, ManifestEntry, Pointer, Report
from setpoint.store.memory import MemoryStore
from setpoint.store.timestamps import format_timestamp

NOW = 1_700_000_000.0


def synthetic_pass(servers: int, deployments: int) -> PassOutcome:
    """One pass's data: every server COMPLETE on every deployment, but the last
    deployment FAILED (and quarantined) on every tenth server."""
    commit = "c" * 40
    names = [f"stack/dep-{d}" for d in range(deployments)]
    configs = {n: digest_bytes(n.encode()) for n in names}
    failed_digest = digest_bytes(b"failed")
    ledger = Ledger()
    ledger.rollouts[names[-1]] = Rollout(names[-1], commit, batches=3, outcome="halted")
    desired = DesiredState(commit)
    published = PublishResult()
    reports: dict[str, Report] = {}
    for i in range(servers):
        server = f"srv-{i:05d}"
        failing = i % 10 == 0
        entries = tuple(
            ManifestEntry(
                n,
                failed_digest if failing and n == names[-1] else configs[n],
                ("CREATE", "UPDATE"),
                600.0,
            )
            for n in names
        )
        desired.manifests[server] = Manifest(deployments=entries)
        published.pointers[server] = Pointer(
            server, 1, digest_bytes(server.encode()), commit, format_timestamp(NOW)
        )
        reports[server] = Report(
            server,
            1,
            None,
            format_timestamp(NOW),
            heartbeat=30.0,
            deployments={
                e.name: DeploymentReport(
                    e.name,
                    e.config,
                    "CREATE",
                    "FAILED" if e.config == failed_digest else "COMPLETE",
                    final=True,
                )
                for e in entries
            },
        )
        if failing:
            ledger.quarantine_add(names[-1], server, failed_digest, "failed")
    outcome = PassOutcome(commit=commit, desired=desired, published=published, ledger=ledger)
    outcome.reports = reports
    return outcome


def measure(servers: int, deployments: int, runs: int) -> dict[str, Any]:
    outcome = synthetic_pass(servers, deployments)
    store = MemoryStore("bench-metrics")
    timings: list[float] = []
    events: list[float] = []
    body = b""
    for _ in range(runs):
        start = time.perf_counter()
        body, _ = exposition(store, outcome, now=NOW)
        timings.append(time.perf_counter() - start)
        start = time.perf_counter()
        pass_events(outcome, NOW)
        events.append(time.perf_counter() - start)
    return {
        "servers": servers,
        "deployments": deployments,
        "runs": runs,
        "cores": os.cpu_count(),
        "exposition_seconds": round(statistics.median(timings), 4),
        "events_seconds": round(statistics.median(events), 4),
        "body_bytes": len(body),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.servers, args.deployments, args.runs), indent=2))


if __name__ == "__main__":
    main()
