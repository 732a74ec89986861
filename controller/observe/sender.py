"""The background thread that sends notifications, so that no pass ever waits for one.

A pass hands each notification to ``Sender.submit``, which only puts it on a
bounded queue (a full queue drops it, with a warning: a receiver that is down
for hours must not grow the controller's memory). One thread takes them in
order and POSTs each (``delivery.post``, a short timeout per try), retried
with backoff on a 5xx, a 429 or a network error (``store.retry.Retry``, the
one retry loop of setpoint) and given up after its attempts and deadline.

A daemon never waits for the thread. A one-shot ``setpoint reconcile`` calls
``drain`` before it exits, which waits at most a given time budget.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from setpoint.controller.definitions.model import NotifyTarget
from setpoint.controller.observe.delivery import DeliveryRefused, post
from setpoint.controller.observe.events import Event
from setpoint.store.errors import TransientError
from setpoint.store.retry import Retry

log = structlog.get_logger("setpoint.notify")

# Notifications waiting to be sent; beyond this, new ones are dropped.
QUEUE_SIZE = 1000
# What ``setpoint reconcile`` waits, at most, for the last notifications to go.
DRAIN_BUDGET = 10.0


def default_retry() -> Retry:
    """4 tries, 1 s then 2 s then 4 s apart (jittered), all within 30 s."""
    return Retry(attempts=4, base_delay=1.0, max_delay=10.0, deadline=30.0)


Post = Callable[[NotifyTarget, Event], None]


@dataclass
class Sender:
    retry: Retry = field(default_factory=default_retry)
    post: Post = field(default=post)
    size: int = QUEUE_SIZE
    # What was delivered, and given up, by this sender (for tests and logs).
    sent: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: queue.Queue[tuple[NotifyTarget, Event]] = queue.Queue(self.size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, target: NotifyTarget, event: Event) -> bool:
        """Queue ``event`` for ``target`` and return at once; False if the queue is full."""
        try:
            self._queue.put_nowait((target, event))
        except queue.Full:
            log.warning(
                "notification_dropped",
                target=target.name,
                notification=event.key,
                reason=f"{self.size} notifications already wait",
            )
            return False
        self._start()
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="setpoint-notify", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            target, event = self._queue.get()
            try:
                self._deliver(target, event)
            except Exception:  # a bug must not kill the thread every later event needs
                self.failed.append((target.name, event.key))
                log.exception("notification_failed", target=target.name, notification=event.key)
            finally:
                self._queue.task_done()

    def _deliver(self, target: NotifyTarget, event: Event) -> None:
        try:
            self.retry.call(lambda: self.post(target, event), f"notify {target.name}")
        except (TransientError, DeliveryRefused) as exc:
            self.failed.append((target.name, event.key))
            log.error(
                "notification_failed", target=target.name, notification=event.key, error=str(exc)
            )
            return
        self.sent.append((target.name, event.key))
        log.info("notification_sent", target=target.name, notification=event.key)

    def drain(self, budget: float = DRAIN_BUDGET) -> bool:
        """Wait until every queued notification was sent or given up, or ``budget``
        seconds passed; whether the queue emptied."""
        deadline = time.monotonic() + budget
        done = self._queue.all_tasks_done
        with done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("notifications_unsent", waiting=self._queue.unfinished_tasks)
                    return False
                done.wait(left)
        return True
