"""The fault-injecting store does what it says, and the Store base refuses what it tears."""

from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.store.base import Store, pointer_key
from setpoint.store.documents import Pointer, Report
from setpoint.store.errors import DigestMismatch, InvalidDocument, TransientError
from setpoint.store.local import LocalStore
from setpoint.store.memory import MemoryStore
from setpoint.store.retry import Retry
from tests.faults.faulty import Fault, FaultyStore, Request, Schedule

DIGEST = "blake3:" + "0" * 64


@pytest.fixture(params=["memory", "local"])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return MemoryStore("inner") if request.param == "memory" else LocalStore(tmp_path / "s")


def faulty(inner: Store, **rates: dict[Fault, float]) -> FaultyStore:
    return FaultyStore(inner, Schedule({Request(k): v for k, v in rates.items()}), seed=7)


def pointer(generation: int = 1) -> Pointer:
    return Pointer("web-1", generation, DIGEST, "c0ffee", "2026-01-01T00:00:00Z")


def test_torn_reads_are_refused_by_digest_and_by_parse(inner: Store) -> None:
    digest = inner.put_blob(b"the bytes of a derived config")
    inner.write_pointer(pointer(), None)
    inner.write_report(Report("web-1", 1, DIGEST, "2026-01-01T00:00:00Z"))
    store = faulty(inner, get={Fault.TORN: 1.0}, poll={Fault.TORN: 1.0})
    for _ in range(5):  # whatever length the tear
        with pytest.raises(DigestMismatch):
            store.get_blob(digest)
        with pytest.raises(InvalidDocument, match="pointer"):
            store.read_pointer("web-1")
        with pytest.raises(InvalidDocument, match="pointer"):
            store.poll_pointer("web-1", None)
        with pytest.raises(InvalidDocument, match="report"):
            store.read_report_versioned("web-1")
    assert {s.fault for s in store.struck} == {Fault.TORN}


def test_a_503_does_nothing_and_a_timeout_loses_only_the_answer(inner: Store) -> None:
    store = faulty(inner, put={Fault.UNAVAILABLE: 1.0})
    with pytest.raises(TransientError, match="503"):
        store.write_pointer(pointer(), None)
    assert inner.read_pointer("web-1") is None
    store = faulty(inner, put={Fault.TIMEOUT: 1.0})
    with pytest.raises(TransientError, match="timed out"):
        store.write_pointer(pointer(), None)
    assert inner.read_pointer("web-1") == pointer()  # written all the same


def test_conditional_writes_meet_412_and_409(inner: Store) -> None:
    store = faulty(inner, create={Fault.CONFLICT: 1.0})
    with pytest.raises(TransientError, match="409"):
        store.put_blob(b"blob")
    assert inner._list("blobs/") == []
    store = faulty(inner, create={Fault.PRECONDITION: 1.0})
    digest = store.put_blob(b"blob")  # another writer created the same bytes first
    assert store.stats.bytes_written == 0
    assert inner.get_blob(digest) == b"blob"


def test_retries_absorb_what_a_schedule_throws_at_them(inner: Store) -> None:
    waited: list[float] = []
    store = FaultyStore(
        inner,
        Schedule({Request.PUT: {Fault.UNAVAILABLE: 0.5}}),
        seed=3,
        retry=Retry(attempts=20, sleep=waited.append, clock=lambda: 0.0),
    )
    for generation in range(1, 11):
        store.write_pointer(
            pointer(generation), pointer(generation - 1) if generation > 1 else None
        )
    assert store.stats.requests["retries"] == len(store.struck) > 0
    assert len(waited) == len(store.struck)


def test_a_seed_repeats_its_faults_and_latency_goes_to_the_injected_sleep() -> None:
    slept: list[float] = []

    def run(seed: int) -> list[tuple[Request, Fault, str]]:
        inner = MemoryStore("inner")
        store = FaultyStore(inner, Schedule.uniform(0.1, latency=2.0), seed, sleep=slept.append)
        for i in range(60):
            try:
                store.put_blob(b"%d" % i)
                store.read_pointer("web-1")
            except (TransientError, InvalidDocument):
                pass
        return [(s.request, s.fault, s.key) for s in store.struck]

    first = run(11)
    assert first == run(11)
    assert first != run(12)
    assert slept
    assert set(slept) == {2.0}


def test_a_schedule_refuses_faults_a_request_cannot_meet() -> None:
    with pytest.raises(ValueError, match="put cannot meet"):
        Schedule({Request.PUT: {Fault.TORN: 0.1}})
    with pytest.raises(ValueError, match="more than 1"):
        Schedule({Request.GET: {Fault.TORN: 0.6, Fault.TIMEOUT: 0.6}})
    with pytest.raises(ValueError, match="cannot meet"):
        FaultyStore(MemoryStore(), Schedule({}), 0).fail_next(
            Request.LIST, Fault.TORN, pointer_key("web-1")
        )
