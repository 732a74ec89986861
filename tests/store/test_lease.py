"""The controllers' lease on every backend that can hold one: memory, local,
S3 (moto), Swift (numbered create-only objects), and a store that cannot."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_backends import BACKENDS, Harness

from setpoint.store.base import Store
from setpoint.store.errors import ConditionalWriteUnsupported, ConditionFailed
from setpoint.store.lease import (
    KEEP_NUMBERED,
    Lease,
    LeaseBusy,
    LeaseLost,
    lease_status,
    write_heartbeat,
)
from setpoint.store.local import LocalStore
from setpoint.store.memory import MemoryStore

TTL = 30.0
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CreateOnlyMemoryStore(MemoryStore):
    """A memory store with Swift's conditional writes: create-if-absent only."""

    create_only_leases = True

    def _put_if_match(self, key: str, data: bytes, version: str | None) -> str:
        return Store._put_if_match(self, key, data, version)


class NoConditionsMemoryStore(MemoryStore):
    """A store with no conditional write a lease could use (s3api on Swift 2.30)."""

    def _put_if_match(self, key: str, data: bytes, version: str | None) -> str:
        return Store._put_if_match(self, key, data, version)


@contextlib.contextmanager
def _create_only(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    store = CreateOnlyMemoryStore(f"numbered-{tmp_path.name}")
    yield Harness(store, store.corrupt)


LEASE_BACKENDS = {
    **{name: BACKENDS[name] for name in ("memory", "local", "s3-moto", "swift")},
    "numbered-memory": _create_only,
}


@pytest.fixture(params=sorted(LEASE_BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with LEASE_BACKENDS[request.param](tmp_path, request) as h:
        yield h.store


def lease(store: Store, holder: str, clock: Clock, **kw: object) -> Lease:
    return Lease(store, holder, ttl=TTL, clock=clock, **kw)  # type: ignore[arg-type]


def test_first_contender_leads_and_second_waits(store: Store) -> None:
    clock = Clock()
    a, b = lease(store, "a", clock), lease(store, "b", clock)
    assert a.try_acquire()
    assert a.epoch == 1
    assert not b.try_acquire()
    assert b.epoch is None
    assert b.seen is not None
    assert b.seen.holder == "a"


def test_renew_keeps_the_lease_past_its_ttl(store: Store) -> None:
    clock = Clock()
    a, b = lease(store, "a", clock), lease(store, "b", clock)
    assert a.try_acquire()
    for _ in range(4):
        assert not b.try_acquire()
        clock.now += TTL / 2
        assert a.renew()
    assert a.epoch == 1
    assert not b.try_acquire()


def test_takeover_after_ttl_raises_the_epoch_and_deposes_the_old_holder(store: Store) -> None:
    clock = Clock()
    a, b = lease(store, "a", clock), lease(store, "b", clock)
    assert a.try_acquire()
    assert not b.try_acquire()
    clock.now += TTL - 1
    assert not b.try_acquire(), "taken over before the ttl ran out"
    clock.now += 1
    assert b.try_acquire()
    assert b.epoch == 2
    # a was paused all along: its renewal is a conditional write over what it
    # last saw, and loses.
    assert not a.renew()
    assert a.epoch is None
    with pytest.raises(LeaseLost) as caught:
        a.hold()
    assert caught.value.current == "b"
    assert caught.value.current_epoch == 2
    assert b.hold() == 2


def test_release_hands_over_at_once(store: Store) -> None:
    clock = Clock()
    a, b = lease(store, "a", clock), lease(store, "b", clock)
    assert a.try_acquire()
    a.release()
    assert b.try_acquire()
    assert b.epoch == 2


def test_a_reader_whose_clock_lags_still_takes_over_within_ttl(store: Store) -> None:
    writer_clock, reader_clock = Clock(), Clock(T0 - 3600)  # the reader is an hour behind
    a, b = lease(store, "a", writer_clock), lease(store, "b", reader_clock)
    assert a.try_acquire()
    assert not b.try_acquire()
    reader_clock.now += TTL
    assert b.try_acquire(), "the reader judges by how long it saw the same version"


def test_epoch_floor_starts_a_new_lease_above_the_stores_documents(store: Store) -> None:
    a = lease(store, "a", Clock(), epoch_floor=lambda: 7)
    assert a.try_acquire()
    assert a.epoch == 8


def test_acquire_waits_then_gives_up_with_the_holder(store: Store) -> None:
    clock = Clock()
    a, b = lease(store, "a", clock), lease(store, "b", clock)
    a.acquire(wait=0)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds
        a.renew()  # the holder stays alive

    with pytest.raises(LeaseBusy) as caught:
        b.acquire(wait=25, sleep=sleep)
    assert caught.value.holder == "a"
    assert sum(slept) >= 25
    assert all(s <= TTL / 3 for s in slept), "one look per renewal interval"


def test_status_names_leader_and_standbys(store: Store) -> None:
    clock = Clock()
    assert lease_status(store, clock()) is None
    a = lease(store, "a", clock)
    assert a.try_acquire()
    write_heartbeat(store, "b", "standby", clock(), TTL)
    write_heartbeat(store, "c", "standby", clock() - 10 * TTL, TTL)
    status = lease_status(store, clock())
    assert status is not None
    assert (status.leader, status.epoch, status.expired) == ("a", 1, False)
    assert [(r.name, r.alive) for r in status.standbys] == [("b", True), ("c", False)]
    assert "a leading (epoch 1)" in status.lines()[0]
    clock.now += TTL
    expired = lease_status(store, clock())
    assert expired is not None
    assert expired.leader is None
    assert expired.expired


@pytest.mark.parametrize("contenders", [8])
def test_simultaneous_contenders_elect_exactly_one(tmp_path: Path, contenders: int) -> None:
    for store in (MemoryStore("race"), LocalStore(tmp_path / "store"), CreateOnlyMemoryStore()):
        clock = Clock()
        leases = [lease(store, f"r{i}", clock) for i in range(contenders)]
        go = threading.Barrier(contenders)
        won: list[str] = []

        def contend(one: Lease, go: threading.Barrier, won: list[str]) -> None:
            go.wait()
            if one.try_acquire():
                won.append(one.holder)

        threads = [threading.Thread(target=contend, args=(one, go, won)) for one in leases]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1, (store, won)


def test_local_conditional_write_loses_over_a_stale_version(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    first = store.write_controller_doc_if("doc", {"n": 1}, None)
    with pytest.raises(ConditionFailed):
        store.write_controller_doc_if("doc", {"n": 2}, None)
    second = store.write_controller_doc_if("doc", {"n": 2}, first)
    with pytest.raises(ConditionFailed):
        store.write_controller_doc_if("doc", {"n": 3}, first)
    assert store.read_controller_doc_versioned("doc") == ({"n": 2}, second)
    assert store.list_controller_docs("") == ["doc"], "the lock file is not listed"
    # Nor is it a leftover temporary file, which gc would remove under a holder.
    assert store.temp_files() == {}


def test_numbered_lease_prunes_old_numbers_and_a_late_writer_loses() -> None:
    store = CreateOnlyMemoryStore()
    clock = Clock()
    a, b = lease(store, "a", clock), lease(store, "b", clock)
    assert a.try_acquire()
    assert not b.try_acquire()
    for _ in range(3 * KEEP_NUMBERED):
        clock.now += 1
        assert a.renew()
    names = store.list_controller_docs("lease-n")
    assert len(names) == KEEP_NUMBERED + 1
    # b was paused after reading an old number; the number after it was pruned,
    # so creating it succeeds, but a higher number exists: b has not won.
    b._version = "1"
    clock.now += TTL
    assert not b._write(2, "b", clock())
    assert b.epoch is None
    assert a.hold() == 1


def test_a_store_without_conditional_writes_says_so() -> None:
    with pytest.raises(ConditionalWriteUnsupported):
        lease(NoConditionsMemoryStore(), "a", Clock()).try_acquire()


@pytest.mark.parametrize("fixture", ["swift_server", "swift_new_server"])
def test_swift_s3api_without_conditional_replace_says_so(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    """Swift 2.30's s3api refuses every conditional PUT, 2.36's takes
    ``If-None-Match: *`` but not ``If-Match``: either way, no lease there, and
    the first attempt says so rather than losing the lease at its first renewal."""
    from setpoint.store.s3 import S3Store

    server = request.getfixturevalue(fixture)
    store = S3Store(f"lease-{abs(hash(request.node.nodeid))}", client=server.s3_client())
    with pytest.raises(ConditionalWriteUnsupported) as caught:
        lease(store, "a", Clock()).try_acquire()
    assert "501" in caught.value.reason
    assert store.read_controller_doc("lease") is None


def test_status_only_reads_even_where_no_lease_can_be_held() -> None:
    store = NoConditionsMemoryStore()
    assert lease_status(store, T0) is None
    assert store.stats.writes == 0


class LostAnswerMemoryStore(MemoryStore):
    """The first conditional write lands but its answer is lost, and the retry
    finds the object changed (by that very write): a 412 to a winner."""

    lose_next = True

    def _put_if_match(self, key: str, data: bytes, version: str | None) -> str:
        new = super()._put_if_match(key, data, version)
        if self.lose_next and key.endswith("/lease"):
            self.lose_next = False
            raise ConditionFailed(key, version)
        return new


def test_a_winner_whose_answer_was_lost_knows_it_won() -> None:
    store = LostAnswerMemoryStore()
    clock = Clock()
    a, b = lease(store, "a", clock), lease(store, "b", clock)
    assert a.try_acquire(), "its own write, recognised by its token"
    assert a.epoch == 1
    assert not b.try_acquire()
    clock.now += TTL / 3
    assert a.renew()
