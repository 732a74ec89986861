"""Fleet convergence: real agent processes, a commit, the time until every server is COMPLETE.

``agents`` ``setpoint-agent`` processes poll the store every ``interval``
seconds (trivial script configs). The controller runs passes back to back;
each server's time is when a pass first found it converged, counted from the
start of the first pass after the commit. Controller CPU (process time of the
passes) and peak memory are recorded.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.synth import FleetShape, change_one_component, init_fleet
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.fleet.enroll import bootstrap_for
from setpoint.store.base import Store
from setpoint.store.signing import SigningKey


def bootstrap_command(boot: Path, state_dir: Path, interval: float) -> list[str]:
    return [
        sys.executable, "-m", "setpoint.agentshim", "--bootstrap", str(boot),
        "--state-dir", str(state_dir), "--interval", str(interval), "--log-format", "json",
    ]  # fmt: skip


def _converge(reconciler: Reconciler, servers: list[str], timeout: float) -> dict[str, Any]:
    done: dict[str, float] = {}
    cpu0, start = time.process_time(), time.monotonic()
    passes = 0
    while time.monotonic() - start < timeout:
        outcome = reconciler.run_pass()
        passes += 1
        now = time.monotonic() - start
        for server, progress in outcome.servers.items():
            if progress.converged and server not in done:
                done[server] = now
        if outcome.converged and len(done) >= len(servers):
            break
        time.sleep(0.2)
    times = sorted(done.values())
    if len(times) < len(servers):
        return {"error": f"{len(servers) - len(times)} servers not COMPLETE after {timeout}s"}
    return {
        "p50_s": statistics.median(times),
        "p99_s": times[min(len(times) - 1, int(len(times) * 0.99))],
        "max_s": times[-1],
        "passes": passes,
        "controller_cpu_s": time.process_time() - cpu0,
    }


def measure(make_store: Callable[[], Store], agents: int, interval: float = 1.0) -> dict[str, Any]:
    shape = FleetShape(servers=agents, groups=max(1, agents // 50), deployments=3)
    servers = shape.all_servers()
    store = make_store()
    # As in production: signed pointers, agents started from enrolled bootstraps
    # (on Swift or S3 that is the only way an agent reaches the store).
    policy = PointerPolicy(SigningKey.generate("bench"))
    with tempfile.TemporaryDirectory(prefix="setpoint-bench-fleet-") as tmp:
        root = Path(tmp)
        repo_path = init_fleet(root, shape)
        procs = []
        for server in servers:
            boot = root / "boot" / f"{server}.json"
            boot.parent.mkdir(exist_ok=True)
            boot.write_text(
                json.dumps(bootstrap_for(store, server, policy.trust() or {}).to_dict())
            )
            procs.append(
                subprocess.Popen(
                    bootstrap_command(boot, root / "agents" / server, interval),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        try:
            with GitRepo.open(repo_path) as repo:
                reconciler = Reconciler(repo, store, policy=policy)
                initial = _converge(reconciler, servers, 300)
                change_one_component(repo_path)
                change = _converge(reconciler, servers, 300)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)
    return {
        "agents": agents,
        "interval_s": interval,
        "initial": initial,
        "one_component_changed": change,
        "controller_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
