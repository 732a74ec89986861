"""Retry with exponential backoff and jitter, and the timeouts every request carries.

Backends raise ``TransientError`` for what is worth another try (throttling,
5xx, a refused or dropped connection, a timeout) and set its ``delay`` to the
server's hint (``Retry-After``) when there is one. ``Retry.call`` runs an
operation until it succeeds, raises anything else, or runs out of attempts or
time; then the last ``TransientError`` goes up unchanged, so the caller's own
loop (the agent's poll, the controller's next pass) can still honour its delay.

Clock, sleep and randomness are fields, so tests run the loop instantly and
exactly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from setpoint.store.errors import InvalidArgument, TransientError

T = TypeVar("T")

log = structlog.get_logger("setpoint.store")


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection, and then for each read from it."""

    connect: float = 10.0
    read: float = 30.0

    def __post_init__(self) -> None:
        for name in ("connect", "read"):
            if not getattr(self, name) > 0:
                raise InvalidArgument(f"{name} timeout", getattr(self, name), "must be > 0 s")


@dataclass
class Retry:
    """How often and how long to retry one store operation.

    The wait before try ``n + 1`` (``n`` from 0) is drawn uniformly from
    ``[b / 2, b]`` with ``b = min(max_delay, base_delay * 2**n)`` ("equal
    jitter": never zero, never synchronised across agents), or the error's own
    ``delay`` hint if that is longer. A hint longer than ``max_delay``, or a
    wait that would end past ``deadline`` seconds after the first try, stops
    the loop at once: the error then carries the hint to the caller.
    """

    attempts: int = 5
    """Tries in all, the first included; 1 disables retrying."""
    base_delay: float = 0.1
    max_delay: float = 5.0
    deadline: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Retry.attempts must be at least 1")

    def wait_before(self, retry: int, hint: float) -> float:
        """Seconds to sleep before retry number ``retry`` (0 = the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0**retry)
        jittered = ceiling / 2 + self.random() * ceiling / 2
        return max(hint, jittered)

    def call(
        self,
        operation: Callable[[], T],
        what: str = "",
        on_retry: Callable[[TransientError], None] | None = None,
    ) -> T:
        """``operation()``, retried on ``TransientError`` within the bounds;
        ``on_retry`` hears of each error that is retried."""
        start = self.clock()
        tries = 0
        while True:
            try:
                return operation()
            except TransientError as exc:
                tries += 1
                if tries >= self.attempts or exc.delay > self.max_delay:
                    raise
                wait = self.wait_before(tries - 1, exc.delay)
                if self.clock() - start + wait > self.deadline:
                    raise
                log.info(
                    "store.retry", what=what, attempt=tries, wait=round(wait, 3), error=str(exc)
                )
                if on_retry is not None:
                    on_retry(exc)
                self.sleep(wait)


NO_RETRY = Retry(attempts=1)
