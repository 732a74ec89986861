"""Reconcile passes and simulated agents over a store that fails on a seeded schedule.

After every pass, whether it finished or a fault stopped it, the store must
hold: no pointer names a missing blob, every pointer verifies, no generation
went down. Once the faults stop, the fleet converges in no more passes than a
fleet that never met a fault needs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.simulate import SimAgent
from bench.synth import FleetShape, change_one_component, change_parameter, init_fleet
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import PassOutcome, Reconciler
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.rollout.ledger import LEDGER, read_ledger
from setpoint.store.base import Store, pointer_key
from setpoint.store.documents import Pointer, loads_object
from setpoint.store.errors import StoreError, TransientError
from setpoint.store.local import LocalStore
from setpoint.store.memory import MemoryStore
from setpoint.store.retry import NO_RETRY, Retry
from setpoint.store.signing import SigningKey
from tests.controller.test_trust import converge, signed_fleet, stack
from tests.faults.faulty import Fault, FaultyStore, Request, Schedule
from tests.faults.invariants import Invariants

SHAPE = FleetShape(servers=6, groups=2, components=2, deployments=2, stacks=1)
T0 = 1_767_225_600.0


@dataclass
class FaultyFleet:
    """A synthetic fleet whose controller and agents each reach the store through faults."""

    repo_path: Path
    inner: Store
    key: SigningKey
    schedule: Schedule
    seed: int
    retry: bool = False
    now: float = T0
    failed_passes: int = 0
    agents: dict[str, SimAgent] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.repo = GitRepo.open(self.repo_path)
        # Retried as an HTTP backend retries, or every fault reaching the caller.
        retry = Retry(attempts=3, sleep=self.advance, clock=self.clock) if self.retry else NO_RETRY
        self.controller_store = FaultyStore(
            self.inner, self.schedule, self.seed, sleep=self.advance, retry=retry
        )
        self.agent_store = FaultyStore(
            self.inner, self.schedule, self.seed + 1, sleep=self.advance, retry=retry
        )
        self.reconciler = Reconciler(
            self.repo, self.controller_store, clock=self.clock, policy=PointerPolicy(self.key)
        )
        self.agents = {s: SimAgent(s, self.agent_store, self.clock) for s in SHAPE.all_servers()}
        self.invariants = Invariants(self.inner, self.key.public())

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def run_pass(self) -> PassOutcome | None:
        """One pass; None when a fault stopped it. The invariants hold either way."""
        try:
            outcome: PassOutcome | None = self.reconciler.run_pass()
        except StoreError:
            self.failed_passes += 1
            outcome = None
        self.invariants.check()
        return outcome

    def agents_cycle(self) -> None:
        for agent in self.agents.values():
            # A failed cycle is retried on the next one, as the agent polls again.
            with contextlib.suppress(StoreError):
                agent.cycle()

    def step(self) -> PassOutcome | None:
        outcome = self.run_pass()
        self.agents_cycle()
        self.advance(1.0)
        return outcome

    def quiet(self) -> None:
        self.controller_store.quiet()
        self.agent_store.quiet()

    def passes_to_converge(self, limit: int = 20) -> int:
        for n in range(1, limit + 1):
            outcome = self.step()
            if outcome is not None and outcome.converged:
                return n
        raise AssertionError(f"not converged in {limit} passes")

    def close(self) -> None:
        self.repo.close()


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("fleet")


def make_store(backend: str, root: Path) -> Store:
    return MemoryStore("faults") if backend == "memory" else LocalStore(root / "store")


@pytest.fixture
def fleet_repo(tmp_path: Path) -> Path:
    return init_fleet(tmp_path, SHAPE)


def fault_free_passes(repo: Path, key: SigningKey) -> int:
    """Passes a fleet that meets no fault needs to converge from scratch."""
    clean = FaultyFleet(repo, MemoryStore("clean"), key, Schedule({}), seed=0)
    try:
        return clean.passes_to_converge()
    finally:
        clean.close()


SCHEDULES = {
    # Every fault each request kind can meet, now and then.
    "every-fault": Schedule.uniform(0.03),
    # Truncated bodies only, often: every read must be refused, none believed.
    "torn-reads": Schedule({Request.GET: {Fault.TORN: 0.2}, Request.POLL: {Fault.TORN: 0.2}}),
    # Writes that happened but whose answer was lost, and lost create races.
    "lost-answers": Schedule(
        {
            Request.PUT: {Fault.TIMEOUT: 0.15},
            Request.CREATE: {
                Fault.TIMEOUT: 0.1,
                Fault.PRECONDITION: 0.1,
                Fault.CONFLICT: 0.1,
            },
        }
    ),
}


@pytest.mark.parametrize("backend", ["memory", "local"])
@pytest.mark.parametrize("retried", [False, True], ids=["unretried", "retried"])
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("seed", [1])
def test_passes_under_faults_keep_the_store_whole_and_converge_once_they_stop(
    tmp_path: Path,
    fleet_repo: Path,
    key: SigningKey,
    backend: str,
    schedule: str,
    seed: int,
    retried: bool,
) -> None:
    baseline = fault_free_passes(fleet_repo, key)
    store = make_store(backend, tmp_path)
    fleet = FaultyFleet(fleet_repo, store, key, SCHEDULES[schedule], seed, retry=retried)
    try:
        for _ in range(8):
            fleet.step()
        change_parameter(fleet_repo, SHAPE, group=1, version="2")
        for _ in range(8):
            fleet.step()
        struck = fleet.controller_store.struck + fleet.agent_store.struck
        assert struck, "the schedule injected nothing: this run tested nothing"
        fleet.quiet()
        assert fleet.passes_to_converge(limit=baseline) <= baseline
        fleet.invariants.check()
        for server, agent in fleet.agents.items():
            assert agent.reports, f"{server} never ran anything"
            for name, report in agent.reports.items():
                assert report.status == "COMPLETE", (server, name)
    finally:
        fleet.close()


def test_a_torn_pointer_read_never_lowers_a_generation(fleet_repo: Path, key: SigningKey) -> None:
    fleet = FaultyFleet(fleet_repo, MemoryStore("torn"), key, Schedule({}), seed=0)
    try:
        fleet.passes_to_converge()
        server = SHAPE.server(1)  # in group 1
        # Two new generations the agent has not answered yet.
        for version in ("2", "3"):
            change_parameter(fleet_repo, SHAPE, group=1, version=version)
            fleet.run_pass()
        pointer, report = fleet.inner.read_pointer(server), fleet.inner.read_report(server)
        assert pointer is not None
        assert report is not None
        assert report.generation < pointer.generation - 1
        # A restarted controller (nothing cached) reads the pointer torn once,
        # on a pass that changes another group only.
        fleet.reconciler = Reconciler(
            fleet.repo, fleet.controller_store, clock=fleet.clock, policy=PointerPolicy(key)
        )
        fleet.controller_store.fail_next(Request.POLL, Fault.TORN, pointer_key(server))
        change_parameter(fleet_repo, SHAPE, group=0, version="4")
        fleet.run_pass()  # checks the invariants
    finally:
        fleet.close()


def pointers(objects: dict[str, bytes]) -> dict[str, Pointer]:
    """The pointers among a memory store's objects, by server."""
    return {
        key.split("/")[1]: Pointer.from_dict(loads_object(data, "pointer"))
        for key, data in objects.items()
        if key.startswith("agents/") and key.endswith("/pointer")
    }


class StopsAtWrite(FaultyStore):
    """A store whose ``n``-th write fails and every later one too: a controller
    that dies at that write, as far as the store can tell."""

    def __init__(self, inner: Store, n: int) -> None:
        super().__init__(inner, Schedule({}), seed=0)
        self.n = n
        self.writes = 0

    def _before(self, request: Request, key: str) -> Fault | None:
        if request in (Request.PUT, Request.CREATE):
            self.writes += 1
            if self.writes >= self.n:
                raise TransientError(f"the controller died before write {self.n}: {key}")
        return super()._before(request, key)


def test_a_pass_stopped_at_any_write_leaves_no_pointer_naming_what_is_missing(
    fleet_repo: Path, key: SigningKey
) -> None:
    """Publication order, write by write: blobs, then manifests, then pointers."""
    inner = MemoryStore("order")
    fleet = FaultyFleet(fleet_repo, inner, key, Schedule({}), seed=0)
    try:
        fleet.passes_to_converge()
    finally:
        fleet.close()
    change_parameter(fleet_repo, SHAPE, group=1, version="2")
    change_one_component(fleet_repo, component=0, revision="2")
    snapshot = dict(inner._objects)
    stopped_at = []
    for n in range(1, 100):
        store = MemoryStore("order")
        store._objects = dict(snapshot)
        stopping = StopsAtWrite(store, n)
        with GitRepo.open(fleet_repo) as repo:
            reconciler = Reconciler(repo, stopping, clock=lambda: T0, policy=PointerPolicy(key))
            try:
                reconciler.run_pass()
            except TransientError:
                stopped_at.append(n)
            else:
                break  # n is past the pass's last write
        invariants = Invariants(store, key.public())
        invariants.generations = {s: p.generation for s, p in pointers(snapshot).items()}
        invariants.check()
    assert len(stopped_at) >= 6  # blobs, manifests, the ledger and pointers were each cut


def test_a_torn_ledger_read_does_not_publish_a_quarantined_digest_again(
    tmp_path: Path, key: SigningKey
) -> None:
    policy = "    update_policy: {max_batch_size: 2}\n    on_failure: rollback\n"
    fleet = signed_fleet(tmp_path, key, policy)
    try:
        converge(fleet)
        fleet.agent("app-1").fail_versions = {"2"}
        fleet.commit({"stacks/s.yaml": stack("2", policy)})
        for _ in range(4):
            fleet.step()
        quarantined = read_ledger(fleet.store).quarantined("s/app", "app-1")
        assert quarantined is not None
        assert fleet.version("app-1", "s/app") == "1"  # rolled back
        faulty = FaultyStore(fleet.store, Schedule({}), seed=0)
        faulty.fail_next(Request.GET, Fault.TORN, "controller/" + LEDGER)
        fleet.reconciler = Reconciler(
            fleet.repo, faulty, clock=fleet.clock, policy=PointerPolicy(key)
        )
        fleet.run_pass()
        entry = fleet.entry("app-1", "s/app")
        assert entry is not None
        assert entry.config != quarantined.config
    finally:
        fleet.close()
