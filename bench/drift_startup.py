"""What an agent's start-up costs with N applied configs and a drift interval.

``python -m bench.drift_startup [--configs N ...]`` applies N script configs
(each with a CHECK config) on one agent, then starts a new agent over the
same state directory (a restart: a fleet restarted at once does this on
every server) and measures the CPU (agent and child processes) and wall time
of its first cycle, and of the cycle one drift interval later, when the
checks are due. The agent used to run every drift check at its first cycle,
so the due cycle's cost is what start-up cost before; now start-up only
reads its pointer and state, and the checks come one jittered interval after.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from setpoint.agentshim.agent import Agent
from setpoint.store import Manifest, ManifestEntry, Pointer
from setpoint.store.memory import MemoryStore

SERVER = "bench-1"
INTERVAL = 600.0


def derived(target: Path) -> dict[str, Any]:
    apply = f"#!/bin/sh\nprintf 'managed\\n' > {target}\n"
    check = f'#!/bin/sh\n[ "$(cat {target})" = managed ] || echo "{target} differs"\n'
    return {
        "name": "bench",
        "group": "component",
        "config": {
            "configs": [
                {"actions": ["CREATE", "UPDATE"], "tool": "script", "config": apply},
                {"actions": ["CHECK"], "tool": "script", "config": check},
            ]
        },
        "inputs": [],
        "outputs": [],
        "options": {},
    }


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(agent: Agent) -> tuple[float, float]:
    cpu, wall = _cpu(), time.monotonic()
    agent.run_once()
    return _cpu() - cpu, time.monotonic() - wall


def measure(configs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="setpoint-bench-startup-") as tmp:
        store = MemoryStore("bench")
        entries = tuple(
            ManifestEntry(
                f"bench/c{i}",
                store.put_json_blob(derived(Path(tmp) / f"managed-{i}")),
                ("CREATE", "UPDATE"),
                600.0,
            )
            for i in range(configs)
        )
        manifest = store.put_json_blob(Manifest(entries).to_dict())
        store.write_pointer(Pointer(SERVER, 1, manifest, "bench", "2026-01-01T00:00:00Z"), None)
        now = [1_700_000_000.0]
        state = Path(tmp) / "state"
        Agent(store, SERVER, state, clock=lambda: now[0], drift_interval=INTERVAL).run_once()
        now[0] += 3600
        restarted = Agent(store, SERVER, state, clock=lambda: now[0], drift_interval=INTERVAL)
        start_cpu, start_wall = _timed(restarted)
        report = store.read_report(SERVER)
        at_start = len(report.drift) if report else 0
        now[0] += INTERVAL * 1.2  # past the jittered interval: every check is due
        due_cpu, due_wall = _timed(restarted)
        report = store.read_report(SERVER)
        checked = len(report.drift) if report else 0
    return {
        "configs": configs,
        "startup_cpu_s": round(start_cpu, 3),
        "startup_wall_s": round(start_wall, 3),
        "drift_results_after_startup": at_start,
        "due_cycle_cpu_s": round(due_cpu, 3),
        "due_cycle_wall_s": round(due_wall, 3),
        "drift_results_after_due_cycle": checked,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift_startup", description=__doc__)
    parser.add_argument(
        "--configs", type=int, nargs="+", default=[1, 10, 50], help="applied configs (1 10 50)"
    )
    args = parser.parse_args(argv)
    for n in args.configs:
        print(json.dumps(measure(n), sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
