"""The one bounded worker pool for store requests a pass can make side by side.

Every request the controller makes costs a round trip (10-30 ms on S3 or
Swift), so a fleet-wide pass of 10,000 pointer writes done one by one takes
minutes. Independent requests (existence probes, uploads, pointer writes,
report and pointer reads, copies) go through ``Store.pool`` instead of each
call site starting threads of its own.

``map`` is a barrier: it returns only when every call has finished, and
raises the first failure (in input order) after all of them ended. That is
what keeps the publication order an invariant under concurrency: a caller
writes pointers only after ``map`` over the blobs they name returned.

Each call keeps its own retries and back-off (``Retry`` inside the backend);
the pool only decides how many run at once. A pool of size 1 runs the calls
in the caller's thread, one after the other: the sequential baseline.

A call running on the pool that maps again (a pointer write whose backend
fans out a probe, say) runs that inner map in its own thread: waiting for
workers of the same pool from one of them could wait for ever.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar, cast

from setpoint.store.errors import InvalidArgument

T = TypeVar("T")
R = TypeVar("R")

# Enough to hide a 20 ms round trip behind the next few thousand requests of a
# pass, few enough that one controller never looks like a flood to the store.
DEFAULT_WORKERS = 32
WORKERS_ENV = "SETPOINT_STORE_WORKERS"


def default_workers() -> int:
    """``$SETPOINT_STORE_WORKERS`` when set, else ``DEFAULT_WORKERS``."""
    text = os.environ.get(WORKERS_ENV)
    if text is None:
        return DEFAULT_WORKERS
    try:
        size = int(text)
    except ValueError:
        raise InvalidArgument(WORKERS_ENV, text, "must be a whole number >= 1") from None
    return check_size(size)


def check_size(size: int) -> int:
    if size < 1:
        raise InvalidArgument("store workers", size, "must be >= 1")
    return size


class WorkerPool:
    """Up to ``size`` store calls at once; threads start on first use."""

    def __init__(self, size: int | None = None) -> None:
        self.size = check_size(size) if size is not None else default_workers()
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._worker = threading.local()

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]``, up to ``size`` at once.

        Returns the results in input order once every call finished. If any
        call raised, the first such exception (in input order) is raised,
        still only after every call finished, so nothing runs on behind the
        caller's back.
        """
        todo = list(items)
        if self.size == 1 or len(todo) <= 1 or getattr(self._worker, "busy", False):
            return [fn(item) for item in todo]
        # One task per worker, each taking the next item not yet taken until
        # none is left: a future per item cost more than a 20 ms request's
        # share of CPU at 10,000 items, and taking items one at a time (not a
        # fixed slice each) keeps one slow call from holding back the rest.
        results: list[R | None] = [None] * len(todo)
        errors: list[BaseException | None] = [None] * len(todo)
        taken = iter(range(len(todo)))
        taking = threading.Lock()

        def drain() -> None:
            self._worker.busy = True  # this thread is one of the pool's
            while True:
                with taking:
                    i = next(taken, None)
                if i is None:
                    return
                try:
                    results[i] = fn(todo[i])
                except BaseException as exc:  # raised below, in input order, as a future would
                    errors[i] = exc

        tasks = [self._pool().submit(drain) for _ in range(min(self.size, len(todo)))]
        wait(tasks)
        for error in errors:
            if error is not None:
                raise error
        return cast("list[R]", results)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="store-io")
            return self._executor

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
