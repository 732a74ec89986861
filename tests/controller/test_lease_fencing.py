"""Fencing: a controller deposed while paused writes nothing over its successor.

Two reconcilers share one store, each with its own lease and an injected clock.
The old leader is paused (its clock stands still while the new one's runs past
the lease's ttl), then resumes and runs a pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.rollout.ledger import LEDGER, Ledger, read_ledger, write_ledger
from setpoint.store.base import Store, pointer_key
from setpoint.store.errors import ConditionFailed
from setpoint.store.lease import Lease, LeaseLost
from setpoint.store.local import LocalStore
from setpoint.store.memory import MemoryStore
from tests.controller.test_reconcile import simulate_agent

TTL = 30.0
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return MemoryStore("fencing") if request.param == "memory" else LocalStore(tmp_path / "s")


@pytest.fixture
def repo(example_repo: Path) -> Iterator[GitRepo]:
    with GitRepo.open(example_repo) as repo:
        yield repo


def controller(repo: GitRepo, store: Store, name: str, clock: Clock) -> Reconciler:
    lease = Lease(store, name, ttl=TTL, clock=clock)
    return Reconciler(repo, store, clock=clock, lease=lease)


def snapshot(store: Store) -> dict[str, str]:
    return store.list_versions("agents/") | store.list_versions("controller/ledger")


def test_a_paused_leader_that_resumes_publishes_nothing(repo: GitRepo, store: Store) -> None:
    old_clock, new_clock = Clock(), Clock()
    old = controller(repo, store, "old", old_clock)
    new = controller(repo, store, "new", new_clock)
    assert old.lease is not None
    assert new.lease is not None
    assert old.lease.try_acquire()
    assert not new.lease.try_acquire()
    # old pauses here; the standby sees the lease go unrenewed and takes it.
    new_clock.now += TTL
    assert new.lease.try_acquire()
    assert new.lease.epoch == 2
    before = snapshot(store)
    old_clock.now += TTL  # old wakes, still believing it leads
    with pytest.raises(LeaseLost) as caught:
        old.run_pass()
    assert (caught.value.current, caught.value.current_epoch) == ("new", 2)
    assert snapshot(store) == before, "the deposed leader wrote something"
    # The new leader's pass publishes, and records its epoch in the ledger.
    outcome = new.run_pass()
    assert outcome.published.changed
    assert read_ledger(store).epoch == 2


class PausingLease(Lease):
    """A lease whose holder pauses right after a successful check, long enough
    for ``meanwhile`` (a successor taking over and publishing) to happen."""

    meanwhile: Callable[[], None] | None = None

    def hold(self) -> int:
        epoch = super().hold()
        if self.meanwhile is not None:
            act, self.meanwhile = self.meanwhile, None
            act()
        return epoch


def test_pointers_written_after_the_last_check_lose_to_the_new_leader(
    repo: GitRepo, store: Store
) -> None:
    old_clock, new_clock = Clock(), Clock()
    old_lease = PausingLease(store, "old", ttl=TTL, clock=old_clock)
    old = Reconciler(repo, store, clock=old_clock, lease=old_lease)
    new = controller(repo, store, "new", new_clock)
    assert new.lease is not None
    assert old_lease.try_acquire()
    assert not new.lease.try_acquire()
    taken: list[dict[str, str]] = []

    def successor_publishes() -> None:
        new_clock.now += TTL
        assert new.lease is not None
        assert new.lease.try_acquire()
        assert new.run_pass().published.changed
        taken.append(snapshot(store))

    old_lease.meanwhile = successor_publishes
    with pytest.raises(ConditionFailed):
        old.run_pass()
    assert taken, "the successor never ran"
    assert snapshot(store) == taken[0], "the deposed leader replaced the new leader's writes"
    assert read_ledger(store).epoch == 2


def test_a_ledger_of_a_newer_epoch_is_never_replaced(store: Store) -> None:
    newer = Ledger(waiting=[{"why": "newer"}])
    write_ledger(store, newer, epoch=5)
    stale = read_ledger(store, versioned=True)
    stale.waiting = [{"why": "older"}]
    with pytest.raises(LeaseLost):
        write_ledger(store, stale, epoch=4, conditional=True)
    assert store.read_controller_doc(LEDGER) == {**newer.to_dict(), "epoch": 5}


def test_a_ledger_written_since_the_read_is_not_replaced(store: Store) -> None:
    first = Ledger(waiting=[{"why": "first"}])
    write_ledger(store, first, epoch=1, conditional=True)
    mine, theirs = read_ledger(store, versioned=True), read_ledger(store, versioned=True)
    theirs.waiting = [{"why": "theirs"}]
    write_ledger(store, theirs, epoch=1, conditional=True)
    mine.waiting = [{"why": "mine"}]
    with pytest.raises(ConditionFailed):
        write_ledger(store, mine, epoch=1, conditional=True)
    assert read_ledger(store).waiting == [{"why": "theirs"}]


def test_an_idle_pass_costs_the_lease_nothing(repo: GitRepo, store: Store) -> None:
    clock = Clock()
    leader = controller(repo, store, "a", clock)
    assert leader.lease is not None
    assert leader.lease.try_acquire()
    leader.run_pass()
    leader.run_pass()  # reads back the manifests it published
    plain = Reconciler(repo, store, clock=clock)  # no lease: what an idle pass reads anyway
    plain.run_pass()
    store.stats.reset()
    plain.run_pass()
    baseline = dict(store.stats.requests)
    store.stats.reset()
    leader.run_pass()
    assert store.stats.writes == 0
    assert dict(store.stats.requests) == baseline, "an idle pass touched the lease"


def test_a_bad_pointer_is_replaced_under_the_lease_too(repo: GitRepo, store: Store) -> None:
    """One bad document, one server: the fenced write goes over the bad object's
    version (as listed), not over "absent", so the pass still publishes."""
    clock = Clock()
    leader = controller(repo, store, "a", clock)
    assert leader.lease is not None
    assert leader.lease.try_acquire()
    for _ in range(6):  # converge, so that nothing waits on db-1
        if leader.run_pass().converged:
            break
        for server in store.list_servers():
            simulate_agent(store, server)  # type: ignore[arg-type]
    store._put(pointer_key("db-1"), b"{not a pointer")
    outcome = leader.run_pass()
    assert "db-1" in outcome.published.changed
    pointer = store.read_pointer("db-1")
    assert pointer is not None


def test_a_signing_leader_signs_the_ledger_with_its_epoch(repo: GitRepo, store: Store) -> None:
    from setpoint.controller.converge.publish import PointerPolicy
    from setpoint.store.signing import SigningKey

    clock = Clock()
    policy = PointerPolicy(signing_key=SigningKey.generate("ctl"))
    lease = Lease(store, "a", ttl=TTL, clock=clock)
    leader = Reconciler(repo, store, clock=clock, policy=policy, lease=lease)
    assert lease.try_acquire()
    assert leader.run_pass().published.changed
    trusted = policy.verifier()
    ledger = read_ledger(store, trusted)
    assert ledger.signed_by == "ctl", "the fenced ledger write kept its signature"
    assert ledger.epoch == 1
    # A successor with the same key signs its own epoch over it.
    clock.now += TTL
    lease_b = Lease(store, "b", ttl=TTL, clock=clock)
    successor = Reconciler(repo, store, clock=clock, policy=policy, lease=lease_b)
    assert lease_b.try_acquire()
    successor.run_pass()
    assert read_ledger(store, trusted).epoch == 2


def test_a_pass_under_the_lease_encodes_the_ledger_once(
    repo: GitRepo, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twice a pass in all: once to remember the ledger read, once for the ledger
    the pass leaves (whether it changed, and what is written, come from that one)."""
    from setpoint.controller.rollout import ledger as ledger_module
    from setpoint.store.digest import canonical_json

    clock = Clock()
    leader = controller(repo, store, "a", clock)
    assert leader.lease is not None
    assert leader.lease.try_acquire()
    leader.run_pass()
    assert store.read_controller_doc(LEDGER) is not None
    encoded: list[object] = []

    def counted(doc: object) -> bytes:
        encoded.append(doc.get("kind") if isinstance(doc, dict) else doc)
        return canonical_json(doc)

    monkeypatch.setattr(ledger_module, "canonical_json", counted)
    for server in store.list_servers():
        simulate_agent(store, server)  # type: ignore[arg-type]
    written = store.read_controller_doc_versioned(LEDGER)
    clock.now += 60
    leader.run_pass()  # the rollout moves on: the ledger is written
    assert store.read_controller_doc_versioned(LEDGER) != written
    assert encoded == ["ControllerLedger"] * 2, f"{len(encoded)} encodings"
    encoded.clear()
    written = store.read_controller_doc_versioned(LEDGER)
    clock.now += 60
    leader.run_pass()  # nothing new: the ledger is not written
    assert store.read_controller_doc_versioned(LEDGER) == written
    assert encoded == ["ControllerLedger"] * 2, f"{len(encoded)} encodings"
