"""``setpoint move``: a fleet of real (in-process) agents moved from one local
store to another, converging there afterwards, with no agent restarted by hand."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from setpoint.agentshim.agent import Agent
from setpoint.agentshim.trust import Trust
from setpoint.controller.cli.common import OK
from setpoint.controller.cli.main import main
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo, commit_all, init_repo_from_dir
from setpoint.controller.fleet.move import MOVE, MoveError, move_fleet, move_status
from setpoint.controller.rollout.ledger import LEDGER
from setpoint.store.documents import Pointer
from setpoint.store.local import LocalStore
from setpoint.store.signing import SigningKey
from tests.controller.published import COMPONENT, INVENTORY, SERVERS, stack


class MovingFleet:
    """A repository, two local stores, a signing key and one agent per server."""

    def __init__(self, root: Path) -> None:
        self.root = root
        src = root / "src"
        (src / "components/app").mkdir(parents=True)
        (src / "stacks").mkdir()
        (src / "inventory.yaml").write_text(INVENTORY)
        (src / "components/app/component.yaml").write_text(COMPONENT)
        (src / "components/app/site").mkdir()
        (src / "components/app/site/index.html").write_text("hello\n")
        (src / "stacks/s.yaml").write_text(stack("1"))
        self.repo_path = root / "repo"
        init_repo_from_dir(src, self.repo_path, "initial")
        self.repo = GitRepo.open(self.repo_path)
        self.old = LocalStore(root / "old")
        self.new = LocalStore(root / "new")
        self.key = SigningKey.generate("ctl")
        self.policy = PointerPolicy(self.key)
        self.trust = Trust(keys={"ctl": str(self.key.public())})
        self.agents = {s: self.make_agent(s) for s in SERVERS}

    def make_agent(self, server: str) -> Agent:
        # Every agent starts from the old store, as its --store / --bootstrap says.
        return Agent(
            LocalStore(self.root / "old"),
            server,
            self.root / "agents" / server,
            max_attempts=1,
            trust=self.trust,
        )

    def commit(self, version: str) -> None:
        (self.repo_path / "stacks/s.yaml").write_text(stack(version))
        commit_all(self.repo_path, f"version {version}")

    def converge(self, store: LocalStore, servers: tuple[str, ...] = SERVERS) -> None:
        reconciler = Reconciler(self.repo, store, policy=self.policy)
        for _ in range(8):
            outcome = reconciler.run_pass()
            assert not outcome.failed, outcome.failed
            if all(p.converged for s, p in outcome.servers.items() if s in servers):
                return
            for server in servers:
                self.agents[server].run_once()
        raise AssertionError(f"not converged on {store.url}: {outcome.summary()}")

    def version_ran(self, store: LocalStore, server: str) -> str:
        report = store.read_report(server)
        assert report is not None
        app = report.deployments["s/app"]
        assert app.status == "COMPLETE", app
        return app.stdout_tail.strip()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[MovingFleet]:
    f = MovingFleet(tmp_path)
    yield f
    f.repo.close()


def test_fleet_moves_and_converges_at_the_new_store(fleet: MovingFleet) -> None:
    fleet.converge(fleet.old)
    ledger = {"kind": "ControllerLedger", "rollouts": {}, "quarantine": {}, "waiting": []}
    fleet.old.write_controller_doc(LEDGER, ledger)

    result = move_fleet(fleet.old, fleet.new, fleet.policy, deadline=600)

    # What the fleet needs is at the new store before any agent is told.
    for server in SERVERS:
        old_pointer = fleet.old.read_pointer(server)
        new_pointer = fleet.new.read_pointer(server)
        assert old_pointer is not None
        assert new_pointer is not None
        assert old_pointer.moved_to == {"url": fleet.new.url}
        assert new_pointer.moved_to is None
        assert new_pointer.manifest == old_pointer.manifest
        assert new_pointer.generation == result.servers[server] > old_pointer.generation
    assert not fleet.new.find_missing(fleet.old.list_blobs())
    assert fleet.new.read_controller_doc(LEDGER) == ledger

    for agent in fleet.agents.values():
        agent.run_once()
    for server, agent in fleet.agents.items():
        assert agent.store.url == fleet.new.url
        report = fleet.new.read_report(server)
        assert report is not None
        assert report.generation == result.servers[server]
        assert report.error is None
    moved = move_status(fleet.new)
    assert moved is not None
    assert moved.followed == list(SERVERS)
    assert not moved.pending

    # A new commit reconciled against the new store reaches every agent.
    fleet.commit("2")
    fleet.converge(fleet.new)
    for server in SERVERS:
        assert fleet.version_ran(fleet.new, server) == "running version 2"

    # A restarted agent, still told --store old, keeps to the new store.
    restarted = fleet.make_agent("m1")
    assert restarted.store.url == fleet.new.url
    assert restarted.run_once().exit_code == 0


def test_agent_offline_during_the_move_follows_when_it_comes_back(fleet: MovingFleet) -> None:
    fleet.converge(fleet.old)
    move_fleet(fleet.old, fleet.new, fleet.policy)
    for server in ("m1", "m2"):
        fleet.agents[server].run_once()
    fleet.commit("2")
    fleet.converge(fleet.new, ("m1", "m2"))
    assert fleet.version_ran(fleet.new, "m3") == "running version 1"  # the copied report

    fleet.agents["m3"] = fleet.make_agent("m3")  # it comes back (a new process)
    fleet.converge(fleet.new)
    assert fleet.version_ran(fleet.new, "m3") == "running version 2"
    assert fleet.agents["m3"].store.url == fleet.new.url


def _redirect(pointer: Pointer, url: str) -> Pointer:
    return dataclasses.replace(
        pointer, generation=pointer.generation + 1, signature=None, moved_to={"url": url}
    )


def test_forged_moved_to_is_refused(fleet: MovingFleet, tmp_path: Path) -> None:
    fleet.converge(fleet.old)
    evil = LocalStore(tmp_path / "evil")
    agent = fleet.agents["m1"]
    current = fleet.old.read_pointer("m1")
    assert current is not None

    unsigned = dataclasses.replace(_redirect(current, evil.url), key=None)
    fleet.old.write_pointer(unsigned, current)
    agent.run_once()
    assert agent.store.url == fleet.old.url
    assert agent.state.location is None
    assert "not signed" in (agent.state.error or "")

    other = SigningKey.generate("ctl")  # same name, another key
    forged = dataclasses.replace(_redirect(unsigned, evil.url), key="ctl")
    forged = dataclasses.replace(forged, signature=other.sign(forged.payload()))
    fleet.old.write_pointer(forged, unsigned)
    agent.run_once()
    assert agent.store.url == fleet.old.url
    assert "does not verify" in (agent.state.error or "")

    # A genuine redirect to a store whose pointer is forged is not followed either.
    genuine = _redirect(forged, evil.url)
    genuine = dataclasses.replace(genuine, signature=fleet.key.sign(genuine.payload()))
    fleet.old.write_pointer(genuine, forged)
    planted = _redirect(genuine, evil.url)
    planted = dataclasses.replace(
        planted, generation=genuine.generation + 1, moved_to=None, signature=None
    )
    planted = dataclasses.replace(planted, signature=other.sign(planted.payload()))
    evil.write_pointer(planted, None)
    agent.run_once()
    assert agent.store.url == fleet.old.url
    assert agent.state.location is None
    assert "is refused" in (agent.state.error or "")


def test_status_lists_servers_not_moved_after_the_deadline(
    fleet: MovingFleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fleet.converge(fleet.old)
    key_file = tmp_path / "ctl.key"
    fleet.key.save(key_file)
    args = ["move", "--from", fleet.old.url, "--to", str(tmp_path / "new")]
    assert main([*args, "--signing-key", str(key_file), "--deadline", "0"]) == OK
    assert "moved 3 servers" in capsys.readouterr().out
    for server in ("m1", "m2"):
        fleet.agents[server].run_once()

    time.sleep(0.01)
    assert main(["status", "--store", str(tmp_path / "new")]) == OK
    out = capsys.readouterr().out
    assert "2 of 3 servers report here" in out
    assert "not moved after the deadline" in out
    assert out.rstrip().endswith(": m3")

    doc = fleet.new.read_controller_doc(MOVE)
    assert doc is not None
    moved = move_status(fleet.new, now=doc["moved_at"] - 1)
    assert moved is not None
    assert moved.pending == ["m3"]
    assert moved.overdue == []


def test_move_refuses_unsigned_redirects_of_a_signed_fleet(fleet: MovingFleet) -> None:
    fleet.converge(fleet.old)
    with pytest.raises(MoveError, match="give --signing-key"):
        move_fleet(fleet.old, fleet.new, PointerPolicy())
    assert fleet.new.list_servers() == []


def test_moving_again_leaves_moved_servers_alone(fleet: MovingFleet) -> None:
    fleet.converge(fleet.old)
    move_fleet(fleet.old, fleet.new, fleet.policy)
    again = move_fleet(fleet.old, fleet.new, fleet.policy)
    assert again.already_moved == list(SERVERS)
    assert not again.servers
    # A pass at the old store keeps the redirect.
    Reconciler(fleet.repo, fleet.old, policy=fleet.policy).run_pass()
    for server in SERVERS:
        pointer = fleet.old.read_pointer(server)
        assert pointer is not None
        assert pointer.moved_to == {"url": fleet.new.url}


def test_an_untrusted_source_pointer_is_not_moved(
    fleet: MovingFleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fleet.converge(fleet.old)
    # Someone with write access to the old store plants m2 a pointer to a
    # manifest of their own, signed by another key of the controller's name.
    planted = fleet.old.put_json_blob({"deployments": [], "bundles": {}})
    current = fleet.old.read_pointer("m2")
    assert current is not None
    forged = dataclasses.replace(
        current, generation=current.generation + 1, manifest=planted, signature=None
    )
    forged = dataclasses.replace(
        forged, signature=SigningKey.generate("ctl").sign(forged.payload())
    )
    fleet.old.write_pointer(forged, current)
    key_file = tmp_path / "ctl.key"
    fleet.key.save(key_file)
    args = ["move", "--from", fleet.old.url, "--to", fleet.new.url, "--signing-key"]
    assert main([*args, str(key_file)]) == OK
    captured = capsys.readouterr()
    assert "moved 2 servers" in captured.out
    assert "not moved: the pointer of m2 at" in captured.err
    assert "is not trusted (signature by key 'ctl' does not verify)" in captured.err
    assert fleet.new.read_pointer("m2") is None, "the forged pointer was copied"
    assert fleet.new.find_missing([planted]) == {planted}
    assert fleet.old.read_pointer("m2") == forged  # no redirect signed over a forgery
    for server in ("m1", "m3"):
        assert fleet.new.read_pointer(server) is not None
