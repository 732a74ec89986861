"""How the controller daemon stops on SIGTERM (systemd's stop, a rolling upgrade).

The pass in flight finishes (its writes are fenced by the lease, but a pass cut
short leaves worker threads still writing while the lease is released), then
the daemon releases its lease, so a standby takes over at once rather than
after the lease's ttl, sends what notifications are queued, and exits 0. A
second SIGTERM stops at once, as Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType


@contextlib.contextmanager
def finish_pass_on_sigterm(stop: threading.Event, wake: Callable[[], None]) -> Iterator[None]:
    """While inside: SIGTERM sets ``stop`` and calls ``wake`` (to cut the wait
    between passes short); a second SIGTERM raises ``KeyboardInterrupt``."""

    def stop_and_wake() -> None:
        stop.set()
        wake()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        # Event.set takes a lock the interrupted main thread may be holding (it
        # may be inside Event.wait itself): set it from another thread.
        threading.Thread(target=stop_and_wake, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
