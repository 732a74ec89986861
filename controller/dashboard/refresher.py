"""The fleet snapshot the dashboard's pages read, kept fresh by a background thread.

Reading a large fleet takes seconds (every pointer, manifest and report: 2.4 s
at 10,000 servers, ``bench/dashboard.py``). Done on demand, the request that
found the snapshot old waited for it; here a thread reads the fleet every
``refresh`` seconds while the dashboard serves, and every request answers from
the last snapshot at once (only the very first waits, for the first read),
its overview already counted.
The pages say how old their snapshot is, and why the last read failed when it
did: a failed read keeps the previous snapshot.

A fleet that takes long to read is read at most a third of the time:
watching the dashboard must never keep the store busy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from setpoint.controller.dashboard.overview import overview
from setpoint.controller.dashboard.snapshot import Snapshot, read_snapshot
from setpoint.controller.errors import SetpointError
from setpoint.controller.rollout.batches import UNREACHABLE_AFTER_BEATS
from setpoint.store.base import Store

log = structlog.get_logger("setpoint.dashboard")

# How long stopping waits for a read in flight (a store that hangs must not hang
# the server's exit; the thread is a daemon, so the process still ends).
STOP_WAIT = 30.0


@dataclass(frozen=True)
class ReadFailure:
    """Why the last read of the fleet failed, and when it started."""

    at: float
    error: str


class FleetUnreadable(SetpointError):
    """The fleet was never read: the first read failed (``failure`` says why)."""

    def __init__(self, failure: ReadFailure) -> None:
        super().__init__(f"cannot read the fleet from the store: {failure.error}")
        self.failure = failure


@dataclass(frozen=True)
class Freshness:
    """What a page says about its data: when the snapshot was read (None: not
    yet), and the failure of the reads since, if the last one failed."""

    read_at: float | None
    failure: ReadFailure | None


class SnapshotRefresher:
    """The last snapshot of the fleet, read again every ``refresh`` seconds by a
    thread started with the server (``start``; ``get`` starts it too, for an
    app served without lifespan events) and ended with it (``stop``)."""

    def __init__(
        self,
        store: Store,
        refresh: float = 2.0,
        unreachable_after: float = UNREACHABLE_AFTER_BEATS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.refresh = refresh
        self.unreachable_after = unreachable_after
        self.clock = clock
        self._changed = threading.Condition()
        self._last: Snapshot | None = None
        self._failure: ReadFailure | None = None
        self._tried = False  # a first read ended, well or not
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> float:
        """Read the fleet once (keeping the previous snapshot if it fails); the
        time the next read is due."""
        start = self.clock()
        try:
            snapshot = read_snapshot(self.store, start, self.unreachable_after)
            # The overview's counts too (a walk over every pair, 0.1 s at 10,000
            # servers): the first request after a read then renders its page only.
            overview(snapshot)
        except Exception as exc:  # the thread outlives any one read: the pages say why
            failure = ReadFailure(start, str(exc) or type(exc).__name__)
            log.warning("dashboard_read_failed", error=failure.error)
            with self._changed:
                self._failure, self._tried = failure, True
                self._changed.notify_all()
        else:
            with self._changed:
                self._last, self._failure, self._tried = snapshot, None, True
                self._changed.notify_all()
        done = self.clock()
        return max(start + self.refresh, done + 2 * (done - start))

    def start(self) -> None:
        """Start reading in the background (once; never again after ``stop``)."""
        with self._changed:
            if self._thread is not None or self._stopping.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name="setpoint-dashboard-refresh", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """End the thread: at once between reads, after the read in flight otherwise."""
        with self._changed:
            self._stopping.set()
            thread = self._thread
        if thread is not None:
            thread.join(STOP_WAIT)

    def _run(self) -> None:
        while True:  # at least one read: ``get`` waits for the first
            due = self.read()
            if self._stopping.wait(max(0.0, due - self.clock())):
                return

    def get(self) -> Snapshot:
        """The last snapshot; before the first read ended, waits for it. Raises
        FleetUnreadable when no read ever succeeded."""
        self.start()
        with self._changed:
            # The thread, once started, always reads once; one never started
            # (stopped first) never will.
            self._changed.wait_for(lambda: self._tried or self._thread is None)
            if self._last is None:
                failure = self._failure or ReadFailure(self.clock(), "the dashboard stopped")
                raise FleetUnreadable(failure)
            return self._last

    def freshness(self) -> Freshness:
        with self._changed:
            return Freshness(self._last.read_at if self._last else None, self._failure)
