"""Reconcile passes against a memory store, with agents simulated in-process.

The simulated agent is a working fake: it reads its pointer and manifest from
the store and reports every deployment COMPLETE with outputs derived from the
config's inputs, the way a real agent would after running the hooks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import simulate
from bench.simulate import input_values
from setpoint.controller.converge.reconcile import Reconciler, assess
from setpoint.controller.converge.status import fleet_status, format_table
from setpoint.controller.definitions.repository import GitRepo, revert
from setpoint.controller.errors import InvalidDefinitions
from setpoint.store.documents import DeploymentReport, Manifest, Report
from setpoint.store.memory import MemoryStore

WEB = ("web-1", "web-2")


def port_outputs(server: str, digest: str, body: dict[str, Any]) -> dict[str, Any]:
    """``host_and_port`` is ``<server>:<port input>``; any other output echoes the
    input of its name (or its own name)."""
    inputs = input_values(body)
    return {
        o["name"]: f"{server}:{inputs.get('port', 0)}"
        if o["name"] == "host_and_port"
        else str(inputs.get(o["name"], o["name"]))
        for o in body["outputs"]
    }


def simulate_agent(store: MemoryStore, server: str, fail: frozenset[str] = frozenset()) -> None:
    simulate.answer(store, server, outputs_for=port_outputs, fail_deployments=fail)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore("test")


@pytest.fixture
def reconciler(example_repo: Path, store: MemoryStore) -> Iterator[Reconciler]:
    with GitRepo.open(example_repo) as repo:
        yield Reconciler(repo, store, clock=lambda: 1_700_000_000.0)


def converge(reconciler: Reconciler, store: MemoryStore, limit: int = 10) -> int:
    """Alternate passes and simulated agents until converged; return the pass count."""
    for n in range(1, limit + 1):
        outcome = reconciler.run_pass()
        if outcome.converged:
            return n
        for server in store.list_servers():
            simulate_agent(store, server)
    raise AssertionError(f"not converged after {limit} passes: {outcome.summary()}")


def test_data_flow_publishes_consumers_after_producers_report(
    reconciler: Reconciler, store: MemoryStore
) -> None:
    first = reconciler.run_pass()
    names = {s: [e.name for e in m.deployments] for s, m in first.desired.manifests.items()}
    assert names["db-1"] == ["web/backend", "web/motd"]
    assert names["web-1"] == ["web/motd"]  # frontend and metrics wait
    waiting = {(w.deployment, w.server) for w in first.waiting}
    assert ("web/frontend", "web-1") in waiting
    assert ("web/metrics", "web-2") in waiting
    assert not first.converged

    simulate_agent(store, "db-1")
    second = reconciler.run_pass()
    assert [e.name for e in second.desired.manifests["web-1"].deployments] == [
        "web/frontend",
        "web/motd",
    ]
    frontend = second.desired.manifests["web-1"].deployments[0]
    body = store.get_json_blob(frontend.config)
    values = {i["name"]: i["value"] for i in body["inputs"]}
    assert values["backend_url"] == "db-1:5432"
    assert values["backend_version"] == "1.0.0"
    assert converge(reconciler, store) >= 2


def test_idle_pass_writes_nothing(reconciler: Reconciler, store: MemoryStore) -> None:
    converge(reconciler, store)
    store.stats.reset()
    outcome = reconciler.run_pass()
    assert outcome.converged
    assert outcome.published.changed == []
    assert store.stats.writes == 0
    assert store.stats.bytes_written == 0


def test_update_touches_only_what_changed_and_revert_uploads_nothing(
    reconciler: Reconciler, store: MemoryStore, example_repo: Path, commit_files: Callable[..., str]
) -> None:
    converge(reconciler, store)
    before = {s: store.read_pointer(s) for s in store.list_servers()}
    digests_before = {
        s: {e.name: e.config for e in reconciler.run_pass().desired.manifests[s].deployments}
        for s in before
    }
    blobs_before = set(store.list_blobs())

    stack = (example_repo / "stacks/web.yaml").read_text()
    bump = commit_files(
        example_repo, {"stacks/web.yaml": stack.replace('"1.0.0"', '"1.1.0"')}, "bump"
    )
    converge(reconciler, store)
    after = reconciler.run_pass().desired.manifests
    changed = {
        (s, e.name)
        for s, m in after.items()
        for e in m.deployments
        if digests_before[s][e.name] != e.config
    }
    assert changed == {
        ("db-1", "web/backend"),
        ("web-1", "web/frontend"),
        ("web-2", "web/frontend"),
    }
    bumped_blobs = set(store.list_blobs())

    revert(example_repo, bump)
    store.stats.reset()
    converge(reconciler, store)
    assert store.stats.requests["put_if_absent"] == 0, "a revert must upload no blob"
    assert set(store.list_blobs()) == bumped_blobs
    reverted = reconciler.run_pass().desired.manifests
    assert {s: {e.name: e.config for e in m.deployments} for s, m in reverted.items()} == (
        digests_before
    )
    for server, old in before.items():
        new = store.read_pointer(server)
        assert old is not None
        assert new is not None
        assert new.generation > old.generation  # a rollback is a new generation
    assert blobs_before <= bumped_blobs


def test_invalid_commit_publishes_nothing(
    reconciler: Reconciler, store: MemoryStore, example_repo: Path, commit_files: Callable[..., str]
) -> None:
    converge(reconciler, store)
    pointers = {s: store.read_pointer(s) for s in store.list_servers()}
    commit_files(example_repo, {"stacks/web.yaml": "kind: Stack\ndeployments: {x: {}}\n"})
    store.stats.reset()
    with pytest.raises(InvalidDefinitions) as info:
        reconciler.run_pass()
    assert any("missing required key 'component'" in p.message for p in info.value.problems)
    assert store.stats.writes == 0
    assert {s: store.read_pointer(s) for s in store.list_servers()} == pointers


def test_removed_deployment_leaves_the_manifest(
    reconciler: Reconciler, store: MemoryStore, example_repo: Path, commit_files: Callable[..., str]
) -> None:
    converge(reconciler, store)
    stack = (example_repo / "stacks/web.yaml").read_text()
    commit_files(example_repo, {"stacks/web.yaml": stack[: stack.index("  metrics:")]})
    outcome = reconciler.run_pass()
    assert sorted(outcome.published.changed) == list(WEB)
    for server in WEB:
        progress = outcome.servers[server]
        assert progress.pending == ["web/metrics: being deleted"]
    converge(reconciler, store)


def test_server_dropped_from_inventory_gets_an_empty_manifest(
    reconciler: Reconciler, store: MemoryStore, example_repo: Path, commit_files: Callable[..., str]
) -> None:
    converge(reconciler, store)
    inventory = (example_repo / "inventory.yaml").read_text()
    stack = (example_repo / "stacks/web.yaml").read_text()
    commit_files(
        example_repo,
        {
            "inventory.yaml": inventory.replace("web: [web-1, web-2]", "web: [web-1]"),
            "stacks/web.yaml": stack.replace("[db-1, web-1, web-2]", "[db-1, web-1]"),
        },
    )
    outcome = reconciler.run_pass()
    assert outcome.desired.manifests.get("web-2") is None
    pointer = store.read_pointer("web-2")
    assert pointer is not None
    assert Manifest.from_dict(store.get_json_blob(pointer.manifest)).deployments == ()


def test_waiting_deployment_keeps_its_previous_entry(
    reconciler: Reconciler, store: MemoryStore, example_repo: Path, commit_files: Callable[..., str]
) -> None:
    converge(reconciler, store)
    old = store.read_pointer("web-1")
    assert old is not None
    old_manifest = Manifest.from_dict(store.get_json_blob(old.manifest))
    stack = (example_repo / "stacks/web.yaml").read_text()
    commit_files(example_repo, {"stacks/web.yaml": stack.replace('"1.0.0"', '"2.0.0"')})
    outcome = reconciler.run_pass()
    # The backend changed; until it reports, the front ends keep what they run.
    assert ("web/frontend", "web-1") in {(w.deployment, w.server) for w in outcome.waiting}
    assert outcome.desired.manifests["web-1"] == old_manifest
    assert "web-1" not in outcome.published.changed


def test_failure_is_assessed_and_shown(reconciler: Reconciler, store: MemoryStore) -> None:
    reconciler.run_pass()
    simulate_agent(store, "db-1", fail=frozenset({"web/motd"}))
    outcome = reconciler.run_pass()
    assert outcome.failed == [
        "web/motd: failed on db-1 (failed); rollout halted",
        "db-1: web/motd: failed",
    ]
    table = format_table(fleet_status(store))
    assert "FAILED" in table.splitlines()[2] or "FAILED" in table


def test_assess_counts_a_pending_delete() -> None:
    manifest = Manifest(deployments=())
    report = Report(
        server="s",
        generation=2,
        manifest=None,
        updated_at="x",
        deployments={
            "a/b": DeploymentReport(
                name="a/b", config="blake3:" + "0" * 64, action="CREATE", status="COMPLETE"
            )
        },
    )
    progress = assess("s", manifest, report)
    assert not progress.converged
    assert progress.pending == ["a/b: being deleted"]


def test_status_json_names_desired_and_reported(reconciler: Reconciler, store: MemoryStore) -> None:
    converge(reconciler, store)
    statuses = [s.to_dict() for s in fleet_status(store, now=1_700_000_100.0)]
    db = next(s for s in statuses if s["server"] == "db-1")
    assert [d["name"] for d in db["deployments"]] == ["web/backend", "web/motd"]
    assert all(d["desired"] == d["reported"] for d in db["deployments"])
    assert json.loads(json.dumps(statuses)) == statuses


def test_status_marks_an_agent_that_stopped_answering_as_stale(
    reconciler: Reconciler, store: MemoryStore, example_repo: Path, commit_files: Callable[..., str]
) -> None:
    converge(reconciler, store)
    stack = (example_repo / "stacks/web.yaml").read_text()
    commit_files(example_repo, {"stacks/web.yaml": stack.replace("Managed by", "Run by")})
    reconciler.run_pass()  # publishes generation n+1 at the reconciler's clock
    published = 1_700_000_000.0
    fresh = {s.server: s.agent for s in fleet_status(store, now=published + 5)}
    assert fresh == {"db-1": "behind", "web-1": "behind", "web-2": "behind"}
    later = fleet_status(store, now=published + 3600)
    assert {s.server: s.agent for s in later} == dict.fromkeys(fresh, "stale")
    assert "STALE" in format_table(later)
    for server in fresh:
        simulate_agent(store, server)
    assert {s.agent for s in fleet_status(store, now=published + 3600)} == {"current"}
