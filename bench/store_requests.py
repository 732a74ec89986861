"""Store requests and bytes per reconcile pass, counted through the store layer.

Scenarios on a synthetic fleet: the initial publish, an idle pass, a commit
that changes one component, its revert (straight after it), a parameter
change, a file rename, and an idle agent poll. The
controller and the simulated agents use separate store objects over the same
storage, so the controller's counters hold only its own requests.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import simulate
from bench.synth import FleetShape, change_one_component, change_parameter, init_fleet, rename_file
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo, revert
from setpoint.store.base import Store
from setpoint.store.signing import SigningKey

StoreFactory = Callable[[], Store]


def _converge(reconciler: Reconciler, agents: Store, servers: list[str]) -> list[dict[str, Any]]:
    """Passes (with simulated agents answering between them) until converged."""
    passes = []
    for _ in range(20):
        reconciler.store.stats.reset()
        outcome = reconciler.run_pass()
        passes.append(reconciler.store.stats.as_dict())
        if outcome.converged:
            return passes
        for server in servers:
            simulate.answer(agents, server)
    raise RuntimeError("did not converge in 20 passes")


def _sum(passes: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("total", "http", "writes", "bytes_read", "bytes_written")
    out: dict[str, Any] = {k: sum(p[k] for p in passes) for k in keys}
    out["blob_uploads"] = sum(p["requests"].get("put_if_absent", 0) for p in passes)
    out["passes"] = len(passes)
    out["publish_pass"] = passes[0]
    return out


def measure(make_store: StoreFactory, shape: FleetShape) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="setpoint-bench-") as tmp:
        repo_path = init_fleet(Path(tmp), shape)
        servers = [shape.server(i) for i in range(shape.servers)]
        controller_store, agent_store = make_store(), make_store()
        results: dict[str, Any] = {"servers": shape.servers}
        with GitRepo.open(repo_path) as repo:
            policy = PointerPolicy(SigningKey.generate("bench"))
            reconciler = Reconciler(repo, controller_store, policy=policy)
            results["initial"] = _sum(_converge(reconciler, agent_store, servers))
            results["idle"] = _converge(reconciler, agent_store, servers)[0]
            change = change_one_component(repo_path)
            results["one_component_changed"] = _sum(_converge(reconciler, agent_store, servers))
            # Straight after the change: every digest it brings back is already stored.
            revert(repo_path, change)
            results["revert"] = _sum(_converge(reconciler, agent_store, servers))
            change_parameter(repo_path, shape)
            results["one_parameter_changed"] = _sum(_converge(reconciler, agent_store, servers))
            rename_file(repo_path)
            results["file_renamed"] = _sum(_converge(reconciler, agent_store, servers))

        poller = make_store()
        got = poller.poll_pointer(servers[0], None)
        assert got is not None
        poller.stats.reset()
        assert poller.poll_pointer(servers[0], got[1]) is None
        results["idle_agent_poll"] = poller.stats.as_dict()
        return results


def _row(label: str, passes: int | str, r: dict[str, Any]) -> str:
    return (
        f"  {label:<24}{passes:>7}{r['total']:>7}{r['http'] or '-':>7}{r['writes']:>8}"
        f"{r['bytes_read']:>12}{r['bytes_written']:>15}"
    )


def table(name: str, results: dict[str, Any]) -> str:
    rows = [f"{name}: {results['servers']} servers"]
    rows.append(
        f"  {'scenario':<24}{'passes':>7}{'ops':>7}{'http':>7}{'writes':>8}{'bytes read':>12}"
        f"{'bytes written':>15}"
    )
    for scenario in (
        "initial",
        "one_component_changed",
        "revert",
        "one_parameter_changed",
        "file_renamed",
    ):
        r = results[scenario]
        rows.append(_row(scenario, r["passes"], r))
        rows.append(_row("  of which publish pass", 1, r["publish_pass"]))
    rows.append(_row("idle pass", 1, results["idle"]))
    agent = results["idle_agent_poll"]
    rows.append(_row("idle agent poll", "", agent) + f"  (not modified: {agent['not_modified']})")
    return "\n".join(rows)
