"""Servers enrolled with ``--agent heat``: metadata document, runs, signals as reports.

A fake heat-config plays the server: it reads ``agents/<server>/heat-metadata``
as os-collect-config would, runs each deployment whose ``id`` it has not run
(as 55-heat-config does), and PUTs the hook's JSON to ``deploy_signal_id``.
The store is a memory store that issues TempURL-shaped URLs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from setpoint.controller.converge import heat_agent
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo, revert
from setpoint.store.memory import MemoryStore
from tests.controller.test_reconcile import simulate_agent

NOW = 1_700_000_000.0
PREFIX = "https://swift.example/v1/AUTH_t/c/"


class SwiftishStore(MemoryStore):
    capability_kind = "swift"

    def temp_url(self, method: str, key: str, expires_at: int, *, prefix: bool = False) -> str:
        return f"{PREFIX}{key}?temp_url_sig={method}&temp_url_expires={expires_at}"


class FakeHeatConfig:
    """55-heat-config + heat-config-notify, in process."""

    def __init__(self, store: SwiftishStore, server: str) -> None:
        self.store = store
        self.server = server
        self.deployed: list[dict[str, Any]] = []
        self.fail: set[str] = set()

    def poll(self) -> list[dict[str, Any]]:
        data = self.store.read_agent_object(self.server, heat_agent.METADATA)
        assert data is not None
        ran = []
        for c in json.loads(data)["deployments"]:
            if c["id"] in {d["id"] for d in self.deployed}:
                continue
            self.deployed.append(c)
            ran.append(c)
            iv = {i["name"]: i["value"] for i in c["inputs"]}
            assert iv["deploy_signal_transport"] == "TEMP_URL_SIGNAL"
            assert iv["deploy_signal_verb"] == "PUT"
            failed = c["name"] in self.fail
            signal: dict[str, Any] = {
                "deploy_stdout": f"{iv['deploy_action']} {c['name']}",
                "deploy_stderr": "boom" if failed else "",
                "deploy_status_code": 1 if failed else 0,
            }
            for o in c["outputs"]:
                if o["name"] == "host_and_port":
                    signal[o["name"]] = f"{iv['deploy_server_id']}:{iv.get('port')}"
                else:
                    signal[o["name"]] = str(iv.get(o["name"], o["name"]))
            key = urlsplit(iv["deploy_signal_id"]).path.split("/c/", 1)[1]
            self.store._put(key, json.dumps(signal).encode())
        return ran


@pytest.fixture
def store() -> SwiftishStore:
    return SwiftishStore("heat")


@pytest.fixture
def reconciler(example_repo: Path, store: SwiftishStore) -> Iterator[Reconciler]:
    with GitRepo.open(example_repo) as repo:
        yield Reconciler(repo, store, clock=lambda: NOW)


def converge(reconciler: Reconciler, store: SwiftishStore, heat: FakeHeatConfig) -> None:
    for _ in range(10):
        outcome = reconciler.run_pass()
        if outcome.converged:
            return
        heat.poll()
        for server in ("web-1", "web-2"):
            simulate_agent(store, server)
    raise AssertionError(outcome.summary())


def test_enroll_prints_os_collect_config(store: SwiftishStore) -> None:
    conf = heat_agent.collect_config(store, "db-1", NOW)
    assert heat_agent.enrolled(store) == ["db-1"]
    text = conf.text()
    assert "[request]\nmetadata_url = " + PREFIX + "agents/db-1/heat-metadata?" in text
    assert "command = os-refresh-config" in text
    assert "55-heat-config" in text


def test_a_heat_server_converges_and_feeds_data_flow(
    reconciler: Reconciler,
    store: SwiftishStore,
    example_repo: Path,
    commit_files: Callable[..., str],
) -> None:
    heat_agent.enroll(store, "db-1")
    heat = FakeHeatConfig(store, "db-1")
    converge(reconciler, store, heat)
    actions = [(d["name"], _iv(d)["deploy_action"]) for d in heat.deployed]
    assert actions == [("web%2Fbackend", "CREATE"), ("web%2Fmotd", "CREATE")]
    report = store.read_report("db-1")
    assert report is not None
    assert report.deployments["web/backend"].outputs["host_and_port"] == "db-1:5432"
    # The output reached the setpoint-agent servers through get_attr.
    web = store.read_report("web-1")
    assert web is not None
    assert web.deployments["web/frontend"].status == "COMPLETE"

    # An idle pass writes nothing and hands heat-config nothing new.
    store.stats.reset()
    assert reconciler.run_pass().converged
    assert store.stats.writes == 0
    assert heat.poll() == []

    first = next(d for d in heat.deployed if d["name"] == "web%2Fbackend")
    text = (example_repo / "stacks/web.yaml").read_text().replace('"1.0.0"', '"2.0.0"')
    commit_files(example_repo, {"stacks/web.yaml": text}, "backend 2.0.0")
    converge(reconciler, store, heat)
    second = heat.deployed[-1]
    assert (second["name"], _iv(second)["deploy_action"]) == ("web%2Fbackend", "UPDATE")
    assert second["id"] != first["id"]
    assert _iv(second)["deploy_signal_id"] != _iv(first)["deploy_signal_id"]

    # The revert names the first digest again: a new run (new id, new signal
    # URL), so the first run's signal is not taken as its answer.
    revert(example_repo, "HEAD")
    assert not reconciler.run_pass().converged
    assert not reconciler.run_pass().converged  # heat-config has not run it yet
    report = store.read_report("db-1")
    assert report is not None
    assert report.deployments["web/backend"].status == "IN_PROGRESS"
    converge(reconciler, store, heat)
    third = heat.deployed[-1]
    assert (third["name"], _iv(third)["deploy_action"]) == ("web%2Fbackend", "UPDATE")
    assert third["id"] not in (first["id"], second["id"])
    assert third["id"].endswith(first["id"].rsplit("-", 1)[1])  # the same digest
    assert _iv(third)["version"] == "1.0.0"
    web = store.read_report("web-1")
    assert web is not None
    assert web.deployments["web/frontend"].status == "COMPLETE"


def test_a_failed_signal_is_a_failed_report(reconciler: Reconciler, store: SwiftishStore) -> None:
    heat_agent.enroll(store, "db-1")
    heat = FakeHeatConfig(store, "db-1")
    heat.fail.add("web%2Fmotd")
    reconciler.run_pass()
    heat.poll()
    outcome = reconciler.run_pass()
    assert any("web/motd" in f and "boom" in f for f in outcome.failed), outcome.failed


def test_a_removed_deployment_gets_a_delete_run(
    reconciler: Reconciler,
    store: SwiftishStore,
    example_repo: Path,
    commit_files: Callable[..., str],
) -> None:
    heat_agent.enroll(store, "db-1")
    heat = FakeHeatConfig(store, "db-1")
    converge(reconciler, store, heat)
    text = (example_repo / "stacks/web.yaml").read_text()
    start = text.index("  motd:")
    end = text.index("  metrics:")
    commit_files(example_repo, {"stacks/web.yaml": text[:start] + text[end:]}, "no motd")
    converge(reconciler, store, heat)
    assert [(d["name"], _iv(d)["deploy_action"]) for d in heat.deployed][-1] == (
        "web%2Fmotd",
        "DELETE",
    )
    report = store.read_report("db-1")
    assert report is not None
    assert "web/motd" not in report.deployments
    data = store.read_agent_object("db-1", heat_agent.METADATA)
    assert data is not None
    assert [d["name"] for d in json.loads(data)["deployments"]] == ["web%2Fbackend"]


def _iv(c: dict[str, Any]) -> dict[str, Any]:
    return {i["name"]: i["value"] for i in c["inputs"]}


def test_preflight_on_a_heat_server_fails_its_check_instead_of_waiting(
    reconciler: Reconciler,
    store: SwiftishStore,
    example_repo: Path,
    commit_files: Callable[..., str],
) -> None:
    heat_agent.enroll(store, "db-1")
    text = (example_repo / "stacks/web.yaml").read_text()
    stack = text.replace("kind: Stack\n", "kind: Stack\npreflight: true\n", 1)
    commit_files(example_repo, {"stacks/web.yaml": stack}, "Check every change first")
    outcome = reconciler.run_pass()
    assert (
        "web/backend: preflight failed on db-1 (Heat's agent runs it, which cannot check a "
        "change first); rollout halted (nothing of it applied)"
    ) in outcome.failed
