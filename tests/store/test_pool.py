"""The store's worker pool: bounded, ordered, a barrier that raises after all ended."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from setpoint.store.errors import InvalidArgument, NotFound
from setpoint.store.listing import MIN_KEYS_PER_SLICE, probe_side_by_side
from setpoint.store.local import LocalStore
from setpoint.store.memory import MemoryStore
from setpoint.store.pool import WORKERS_ENV, WorkerPool, default_workers
from setpoint.store.url import open_store


def test_results_come_back_in_input_order_whatever_order_calls_finish() -> None:
    pool = WorkerPool(4)

    def slow_first(n: int) -> int:
        time.sleep(0.05 if n == 0 else 0.0)
        return n * 10

    assert pool.map(slow_first, range(6)) == [0, 10, 20, 30, 40, 50]
    pool.close()


def test_no_more_than_size_calls_run_at_once() -> None:
    pool = WorkerPool(3)
    running = 0
    most = 0
    lock = threading.Lock()
    three_in = threading.Event()

    def call(_: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            if running == 3:
                three_in.set()
        # The first calls wait for a third to start (a 20 ms sleep alone can pass
        # on a loaded machine before the third thread runs): three do overlap.
        # Then each stays 20 ms, time for a fourth, if the pool let one in, to count.
        three_in.wait(timeout=30)
        time.sleep(0.02)
        with lock:
            running -= 1

    pool.map(call, range(12))
    pool.close()
    assert most == 3


def test_a_failure_is_raised_only_after_every_call_ended() -> None:
    """The barrier publish relies on: nothing runs on after map raised."""
    pool = WorkerPool(4)
    finished: list[int] = []

    def call(n: int) -> int:
        if n == 1:
            raise NotFound(f"blobs/{n}")
        time.sleep(0.05)
        finished.append(n)
        return n

    with pytest.raises(NotFound) as caught:
        pool.map(call, range(5))
    assert caught.value.key == "blobs/1"
    assert sorted(finished) == [0, 2, 3, 4]
    pool.close()


def test_the_first_failure_in_input_order_is_the_one_raised() -> None:
    pool = WorkerPool(4)

    def call(n: int) -> int:
        if n in (1, 3):
            time.sleep(0.05 if n == 1 else 0.0)  # 3 fails first in time
            raise NotFound(f"k{n}")
        return n

    with pytest.raises(NotFound) as caught:
        pool.map(call, range(5))
    assert caught.value.key == "k1"
    pool.close()


def test_a_pool_of_one_runs_in_the_callers_thread() -> None:
    pool = WorkerPool(1)
    threads = pool.map(lambda _: threading.current_thread(), range(3))
    assert threads == [threading.current_thread()] * 3


def test_size_comes_from_the_environment_and_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(WORKERS_ENV, "7")
    assert default_workers() == 7
    assert WorkerPool().size == 7
    monkeypatch.setenv(WORKERS_ENV, "0")
    with pytest.raises(InvalidArgument):
        default_workers()
    monkeypatch.setenv(WORKERS_ENV, "many")
    with pytest.raises(InvalidArgument):
        default_workers()


def test_a_call_on_the_pool_that_maps_again_runs_that_map_in_its_thread() -> None:
    """Two workers each mapping over two items would otherwise wait for ever on
    each other: every worker is busy waiting for a free one."""
    pool = WorkerPool(2)

    def outer(n: int) -> list[str]:
        return pool.map(lambda _: threading.current_thread().name, range(2))

    names = pool.map(outer, range(2))
    pool.close()
    for inner in names:
        assert len(set(inner)) == 1  # both inner calls in the caller's worker thread


def test_every_store_has_one_pool_sized_by_workers_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(WORKERS_ENV, "5")
    assert LocalStore(tmp_path).pool.size == 5
    assert LocalStore(tmp_path, workers=2).pool.size == 2
    assert open_store(str(tmp_path), workers=3).pool.size == 3
    assert open_store("memory://pool-size").pool.size == 5
    assert open_store("memory://pool-size", workers=9).pool.size == 9
    with pytest.raises(InvalidArgument):
        MemoryStore(workers=0)


def test_a_long_probe_is_cut_into_contiguous_slices_up_to_the_pool_size() -> None:
    pool = WorkerPool(4)
    keys = [f"blobs/{i:03d}" for i in range(100)]
    seen: list[list[str]] = []
    lock = threading.Lock()

    def probe_slice(part: list[str]) -> set[str]:
        with lock:
            seen.append(part)
        return {k for k in part if k.endswith("7")}

    assert probe_side_by_side(list(reversed(keys)), pool, probe_slice) == {
        k for k in keys if k.endswith("7")
    }
    assert len(seen) == 4
    assert sorted(k for part in seen for k in part) == keys
    assert all(part == sorted(part) for part in seen)
    seen.clear()
    few = keys[: MIN_KEYS_PER_SLICE * 2 - 1]
    probe_side_by_side(few, pool, probe_slice)
    assert seen == [few]  # too few keys to gain anything from a second slice
    pool.close()


def test_a_slow_call_does_not_hold_back_the_calls_after_it() -> None:
    """The first call ends only once every other one has: the other workers
    must take them all, whichever worker the first call holds."""
    pool = WorkerPool(2)
    others_done = threading.Event()
    done = 0
    lock = threading.Lock()

    def call(n: int) -> int:
        nonlocal done
        if n == 0:
            return int(others_done.wait(timeout=30))  # a hang guard
        with lock:
            done += 1
            if done == 9:
                others_done.set()
        return n

    assert pool.map(call, range(10)) == [1, *range(1, 10)]
    pool.close()


def test_a_call_that_raised_leaves_its_worker_taking_the_next_ones() -> None:
    pool = WorkerPool(2)
    ran: list[int] = []

    def call(n: int) -> int:
        ran.append(n)
        if n % 2:
            raise NotFound(f"k{n}")
        return n

    with pytest.raises(NotFound) as caught:
        pool.map(call, range(20))
    assert caught.value.key == "k1"
    assert sorted(ran) == list(range(20))
    pool.close()
