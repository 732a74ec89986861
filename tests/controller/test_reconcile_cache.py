"""An idle reconcile pass reads no pointer and no report: one listing of
``agents/`` gives every version, and only what changed since the last pass is
read again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bench import simulate
from bench.synth import FleetShape, init_fleet
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo
from setpoint.store.base import AGENTS
from setpoint.store.local import LocalStore

SHAPE = FleetShape(servers=50)


class RecordingStore(LocalStore):
    """A local store that remembers which keys it read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read: list[str] = []

    def _get(self, key: str) -> bytes:
        self.read.append(key)
        return super()._get(key)

    def _get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        self.read.append(key)
        return super()._get_if_changed(key, etag)

    def agent_reads(self) -> list[str]:
        return [k for k in self.read if k.startswith(AGENTS)]

    def reset(self) -> None:
        self.read.clear()
        self.stats.reset()


def test_idle_pass_reads_no_pointer_or_report(tmp_path: Path) -> None:
    repo_path = init_fleet(tmp_path, SHAPE)
    servers = SHAPE.all_servers()
    store, agents = RecordingStore(tmp_path / "store"), LocalStore(tmp_path / "store")
    with GitRepo.open(repo_path) as repo:
        reconciler = Reconciler(repo, store)
        for _ in range(10):
            store.reset()
            written = {AGENTS + s + "/report" for s in servers if agents.read_report(s)}
            if reconciler.run_pass().converged:
                break
            # The pointers this controller wrote are known from the write: it
            # never reads one back, and reads a report only when it changed.
            assert set(store.agent_reads()) <= written
            assert len(store.agent_reads()) == len(set(store.agent_reads()))
            for server in servers:
                simulate.answer(agents, server)
        else:
            raise AssertionError("did not converge")
        assert not [k for k in store.agent_reads() if k.endswith("/pointer")]

        # Idle: a listing of agents/, one of the plans' preflight requests
        # (controller/), and the controller's own documents, whatever the fleet size.
        store.reset()
        idle = reconciler.run_pass()
        assert idle.converged
        assert not idle.published.changed
        assert store.agent_reads() == []
        assert store.stats.requests["list"] == 2
        assert store.stats.requests["get"] == len(store.read) <= 3
        assert store.stats.writes == 0

        # One agent reports again, now failed: that report alone is read.
        report = agents.read_report(servers[7])
        assert report is not None
        name, dep = next(iter(report.deployments.items()))
        failed = replace(dep, status="FAILED", reason="boom", final=True)
        agents.write_report(replace(report, deployments={**report.deployments, name: failed}))
        store.reset()
        outcome = reconciler.run_pass()
        assert store.agent_reads() == [f"{AGENTS}{servers[7]}/report"]
        assert not outcome.servers[servers[7]].converged
        assert f"{servers[7]}: {name}: boom" in outcome.failed

        # A restarted controller holds nothing: it reads everything once.
        store.reset()
        fresh = Reconciler(repo, store).run_pass()
        assert len(store.agent_reads()) == 2 * len(servers)
        assert fresh.failed == outcome.failed


def test_deleted_report_is_forgotten(tmp_path: Path) -> None:
    repo_path = init_fleet(tmp_path, FleetShape(servers=4))
    store = LocalStore(tmp_path / "store")
    server = FleetShape().server(1)
    with GitRepo.open(repo_path) as repo:
        reconciler = Reconciler(repo, store)
        before = reconciler.run_pass().servers[server].pending
        simulate.answer(store, server)
        assert reconciler.run_pass().servers[server].pending != before
        store._delete(f"{AGENTS}{server}/report")
        cached = reconciler.run_pass().servers[server]
        fresh = Reconciler(repo, store).run_pass().servers[server]
        assert cached == fresh
        assert not any("deleted" in p for p in cached.pending)
