"""Store write access without the key, against real in-process agents and the reconciler.

Someone who can write to the store forges a pointer, the ledger, a report or a
blob. Whatever they write, no server runs it, the controller signs none of
it, and only the server it was written for is marked. Where
``tests/controller/test_trust.py`` plays these against simulated agents, these
play them end to end: the real ``Agent`` verifies, runs hooks and reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from setpoint.agentshim.agent import Agent
from setpoint.agentshim.trust import Trust
from setpoint.controller.converge.reconcile import PassOutcome
from setpoint.controller.rollout.ledger import LEDGER
from setpoint.store.base import Store, blob_key, report_key
from setpoint.store.digest import canonical_json
from setpoint.store.documents import Manifest, ManifestEntry
from setpoint.store.local import LocalStore
from setpoint.store.signing import SigningKey
from tests.controller.fleet import Fleet, component
from tests.controller.test_trust import SERVERS, forge, signed_fleet, signed_manifests, stack

ROLLBACK = "    update_policy: {max_batch_size: 2}\n    on_failure: rollback\n"
# A component whose script fails for version 2, so a rollout of it rolls back.
FAILS_ON_2 = component().replace(
    'config: "#!/bin/sh\\n"', 'config: "#!/bin/sh\\n[ \\"$version\\" != 2 ]\\n"'
)


class Agents:
    """One real agent per server, on the fleet's clock, over a local store."""

    def __init__(self, root: Path, key: SigningKey) -> None:
        self.fleet: Fleet = signed_fleet(root, key, store=LocalStore(root / "store"))
        self.store: Store = self.fleet.store
        trust = Trust(keys={key.name: str(key.public())})
        self.agents = {
            s: Agent(
                LocalStore(root / "store"),
                s,
                root / "agents" / s,
                max_attempts=1,
                trust=trust,
                clock=self.fleet.clock,
            )
            for s in SERVERS
        }

    def cycle(self) -> None:
        for agent in self.agents.values():
            agent.run_once()

    def converge(self) -> PassOutcome:
        for _ in range(6):
            outcome = self.fleet.run_pass()
            if outcome.converged:
                return outcome
            self.cycle()
            self.fleet.now += 1
        raise AssertionError(outcome.summary())


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate("ctl")


@pytest.fixture
def fleet(tmp_path: Path, key: SigningKey) -> Iterator[Agents]:
    agents = Agents(tmp_path, key)
    yield agents
    agents.fleet.close()


def marker_manifest(store: Store, marker: Path, name: str = "s/app") -> tuple[str, str]:
    """(manifest, config) of a manifest whose one config creates ``marker`` if it runs."""
    config = store.put_json_blob(
        {
            "name": "evil",
            "group": "script",
            "config": f"#!/bin/sh\ntouch {marker}\n",
            "inputs": [],
            "outputs": [],
            "options": {},
        }
    )
    entry = ManifestEntry(name=name, config=config, actions=("CREATE", "UPDATE"), timeout=60)
    return store.put_json_blob(Manifest(deployments=(entry,)).to_dict()), config


def names_config(store: Store, key: SigningKey, config: str) -> list[str]:
    """Servers whose signed manifest names ``config``."""
    return [
        server
        for server, manifest in signed_manifests(store, key).items()
        if any(e.config == config for e in manifest.deployments)
    ]


def test_a_forged_pointer_is_not_run_by_the_agent_nor_signed_by_the_controller(
    fleet: Agents, key: SigningKey, tmp_path: Path
) -> None:
    fleet.converge()
    marker = tmp_path / "pwned"
    manifest, config = marker_manifest(fleet.store, marker)
    forged = forge(fleet.store, "app-4", manifest)
    agent = fleet.agents["app-4"]
    result = agent.run_once()
    assert result.error is not None
    assert "not signed" in result.error
    assert agent.state.generation < forged.generation  # not accepted
    with capture_logs() as logs:
        outcome = fleet.fleet.run_pass()
    assert [e["server"] for e in logs if e["event"] == "pointer_not_trusted"] == ["app-4"]
    assert "app-4" in outcome.published.changed  # a signed pointer replaced the forgery
    replaced = fleet.store.read_pointer("app-4")
    assert replaced is not None
    assert replaced.generation > forged.generation
    assert names_config(fleet.store, key, config) == []
    fleet.cycle()
    assert fleet.agents["app-4"].state.error is None
    assert fleet.converge().converged
    assert not marker.exists()


def test_an_unsigned_forged_ledger_is_lost_and_its_rollback_target_never_runs(
    fleet: Agents, key: SigningKey, tmp_path: Path
) -> None:
    fleet.fleet.commit({"components/app/component.yaml": FAILS_ON_2})
    fleet.fleet.commit({"stacks/s.yaml": stack("1", ROLLBACK)})
    fleet.converge()
    fleet.fleet.commit({"stacks/s.yaml": stack("2", ROLLBACK)})
    fleet.fleet.run_pass()  # the first batch (app-1, app-2) gets version 2
    doc = fleet.store.read_controller_doc(LEDGER)
    assert doc is not None
    marker = tmp_path / "pwned"
    _, config = marker_manifest(fleet.store, marker)
    for server in ("app-1", "app-2"):
        doc["rollouts"]["s/app"]["good"][server]["config"] = config
    unsigned = {k: v for k, v in doc.items() if k not in ("key", "signature")}
    fleet.store.write_controller_doc(LEDGER, unsigned)
    fleet.cycle()  # version 2 fails on app-1 and app-2
    with capture_logs() as logs:
        outcome = fleet.fleet.run_pass()
    lost = [e for e in logs if e["event"] == "ledger_not_trusted"]
    assert [e["reason"] for e in lost] == ["the ledger is not signed"]
    assert any("s/app: failed on app-1" in f for f in outcome.failed)
    assert names_config(fleet.store, key, config) == []
    for _ in range(3):
        fleet.cycle()
        fleet.fleet.run_pass()
    assert names_config(fleet.store, key, config) == []
    assert not marker.exists()
    stored = fleet.store.read_controller_doc(LEDGER)
    assert stored is not None
    assert stored.get("signature")  # the controller wrote its own again


def test_a_report_copied_from_another_server_marks_only_its_server_until_its_agent_beats(
    fleet: Agents,
) -> None:
    fleet.converge()
    fleet.fleet.commit({"stacks/s.yaml": stack("2")})
    fleet.fleet.run_pass()
    fleet.cycle()
    # app-4's report replaced by app-1's, which says COMPLETE for version 2.
    copied = fleet.store.read_report("app-1")
    assert copied is not None
    fleet.store._write(report_key("app-4"), canonical_json(copied.to_dict()))
    outcome = fleet.fleet.run_pass()
    assert list(outcome.invalid) == ["app-4"]
    assert "names server 'app-1'" in outcome.invalid["app-4"]
    assert not outcome.servers["app-4"].converged  # the copy does not answer for app-4
    assert all(outcome.servers[s].converged for s in SERVERS if s != "app-4")
    # Its agent rewrites its own report at its next heartbeat.
    fleet.fleet.now += 301
    fleet.cycle()
    outcome = fleet.fleet.run_pass()
    assert outcome.invalid == {}
    assert outcome.converged


def test_a_blob_that_does_not_match_its_digest_is_refused_by_the_agent_and_named_by_the_controller(
    fleet: Agents, tmp_path: Path
) -> None:
    fleet.converge()
    fleet.fleet.commit({"stacks/s.yaml": stack("2")})
    fleet.fleet.run_pass()
    entry = fleet.fleet.entry("app-3", "s/app")
    assert entry is not None
    marker = tmp_path / "pwned"
    evil = canonical_json(
        {"name": "app", "group": "script", "config": f"#!/bin/sh\ntouch {marker}\n"}
    )
    fleet.store._write(blob_key(entry.config), evil)  # same key, other bytes
    fleet.cycle()
    for server, agent in fleet.agents.items():
        assert agent.state.error is not None, server
        assert f"digest mismatch: expected {entry.config}" in agent.state.error
        report = fleet.store.read_report(server)
        assert report is not None
        assert report.error == agent.state.error
    outcome = fleet.fleet.run_pass()
    for server in SERVERS:
        problems = outcome.servers[server].failed
        assert any(entry.config in p and "digest mismatch" in p for p in problems), problems
    assert not outcome.converged
    assert not marker.exists()
